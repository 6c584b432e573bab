#include "http.h"

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "tls.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ROUTES 96
#define MAX_PARAMS 4
#define MAX_SEGMENTS 12
#define MAX_RESP_HEADERS 8
#define TO_MHD_HIGH_WATER (256u * 1024)
#define JSON_TYPE "application/json; charset=utf-8"

struct route {
	char method[8];
	char *segs[MAX_SEGMENTS];
	int nsegs;
	http_handler h;
	void *arg;
};

/* One TLS connection relayed to libmicrohttpd through a socketpair. */
struct bridge {
	struct http_server *srv;
	struct tls_conn *conn;
	int fd;            /* our end of the socketpair */
	int mhd_fd;        /* libmicrohttpd's end (it owns and closes it) */
	struct buf to_mhd; /* plaintext not yet taken by the socketpair */
};

struct http_server {
	struct loop *lp;
	struct tls_server *tls;
	struct MHD_Daemon *mhd;
	int mhd_epoll_fd;
	size_t max_body;
	struct route routes[MAX_ROUTES];
	int nroutes;
	struct bridge **by_mhd_fd; /* indexed by libmicrohttpd's socket */
	int nby;
	struct http_req *suspended; /* requests waiting for an answer */
	struct metrics_family *durations; /* dpsemu_http_request_duration_seconds, or NULL */
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *mc;
	char method[16];
	char *path;
	struct buf body;
	int too_big;
	int responded;
	int suspended;                 /* waiting for http_respond from outside the handler */
	struct MHD_Response *pending;  /* answer made while suspended, queued on resume */
	unsigned int pending_status;
	struct http_req *susp_prev, *susp_next;
	char *params[MAX_PARAMS];
	int nparams;
	char id[37];
	uint64_t start_us; /* first callback, for the duration histogram */
	char *hdr_names[MAX_RESP_HEADERS], *hdr_values[MAX_RESP_HEADERS];
	int nhdrs;
};

/* --- the socketpair relay ------------------------------------------------- */

static struct bridge *bridge_for(const struct http_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	int fd;

	if (!ci)
		return NULL;
	fd = ci->connect_fd;
	if (fd < 0 || fd >= r->srv->nby)
		return NULL;
	return r->srv->by_mhd_fd[fd];
}

static void bridge_watch(struct bridge *b);

static void bridge_event(void *arg, int fd, uint32_t events)
{
	struct bridge *b = arg;
	unsigned char chunk[65536];

	if (events & EPOLLOUT && b->to_mhd.len) {
		ssize_t n = send(b->fd, b->to_mhd.data, b->to_mhd.len, MSG_NOSIGNAL);
		if (n > 0)
			buf_consume(&b->to_mhd, (size_t)n);
		if (b->to_mhd.len < TO_MHD_HIGH_WATER)
			tls_conn_pause(b->conn, 0);
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
			if (n > 0) {
				if (tls_conn_send(b->conn, chunk, (size_t)n) != EMU_OK)
					return; /* connection is being torn down */
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n < 0 && errno == EINTR)
				continue;
			/* libmicrohttpd closed its end: the HTTP exchange is over. */
			loop_unwatch(b->srv->lp, b->fd);
			tls_conn_close(b->conn, "HTTP connection closed by server");
			return;
		}
	}
	bridge_watch(b);
}

static void bridge_watch(struct bridge *b)
{
	loop_watch(b->srv->lp, b->fd, EPOLLIN | (b->to_mhd.len ? EPOLLOUT : 0), bridge_event, b);
}

static int bridge_open(void *arg, struct tls_conn *c)
{
	struct http_server *s = arg;
	struct bridge *b = calloc(1, sizeof(*b));
	const struct sockaddr *sa;
	socklen_t salen;
	int sv[2];

	if (!b)
		return EMU_ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("https", "socketpair: %s", strerror(errno));
		free(b);
		return EMU_EIO;
	}
	if (sv[1] >= s->nby) {
		int n = s->nby ? s->nby : 256;
		struct bridge **nb;
		while (n <= sv[1])
			n *= 2;
		nb = realloc(s->by_mhd_fd, (size_t)n * sizeof(*nb));
		if (!nb) {
			close(sv[0]);
			close(sv[1]);
			free(b);
			return EMU_ENOMEM;
		}
		memset(nb + s->nby, 0, (size_t)(n - s->nby) * sizeof(*nb));
		s->by_mhd_fd = nb;
		s->nby = n;
	}
	b->srv = s;
	b->conn = c;
	b->fd = sv[0];
	b->mhd_fd = sv[1];
	buf_init(&b->to_mhd, 0);
	s->by_mhd_fd[sv[1]] = b;
	sa = tls_conn_peer_addr(c, &salen);
	/* libmicrohttpd owns sv[1] from here on, and closes it even on failure. */
	if (MHD_add_connection(s->mhd, sv[1], sa, salen) != MHD_YES) {
		log_error("https", "libmicrohttpd refused a connection from %s", tls_conn_peer_name(c));
		s->by_mhd_fd[sv[1]] = NULL;
		close(sv[0]);
		free(b);
		return EMU_EIO;
	}
	tls_conn_set_data(c, b);
	bridge_watch(b);
	return EMU_OK;
}

static void bridge_data(void *arg, struct tls_conn *c, const unsigned char *p, size_t n)
{
	struct bridge *b = tls_conn_data(c);
	(void)arg;

	if (!b->to_mhd.len) {
		ssize_t w = send(b->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			tls_conn_close(c, "HTTP side closed");
			return;
		}
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	if (n && buf_append(&b->to_mhd, p, n) != EMU_OK) {
		tls_conn_close(c, "out of memory");
		return;
	}
	if (b->to_mhd.len >= TO_MHD_HIGH_WATER)
		tls_conn_pause(c, 1);
	if (b->to_mhd.len)
		bridge_watch(b);
}

static void bridge_close(void *arg, struct tls_conn *c)
{
	struct http_server *s = arg;
	struct bridge *b = tls_conn_data(c);

	if (!b)
		return;
	loop_unwatch(s->lp, b->fd);
	close(b->fd); /* libmicrohttpd sees EOF on its end and cleans up */
	if (b->mhd_fd < s->nby && s->by_mhd_fd[b->mhd_fd] == b)
		s->by_mhd_fd[b->mhd_fd] = NULL;
	buf_free(&b->to_mhd);
	free(b);
	tls_conn_set_data(c, NULL);
}

/* --- routing and requests ------------------------------------------------- */

static int split_path(const char *path, char *copy, size_t copylen, char **segs, int max)
{
	int n = 0;
	char *p, *save = NULL;

	snprintf(copy, copylen, "%s", path);
	for (p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return -1;
		segs[n++] = p;
	}
	return n;
}

int http_route(struct http_server *s, const char *method, const char *pattern, http_handler h,
	       void *arg)
{
	struct route *rt;
	char copy[512], *segs[MAX_SEGMENTS];
	int n;

	if (s->nroutes == MAX_ROUTES)
		return EMU_ENOMEM;
	n = split_path(pattern, copy, sizeof(copy), segs, MAX_SEGMENTS);
	if (n < 0)
		return EMU_EINVAL;
	rt = &s->routes[s->nroutes];
	memset(rt, 0, sizeof(*rt));
	snprintf(rt->method, sizeof(rt->method), "%s", method);
	for (int i = 0; i < n; i++)
		if (!(rt->segs[i] = strdup(segs[i])))
			return EMU_ENOMEM;
	rt->nsegs = n;
	rt->h = h;
	rt->arg = arg;
	s->nroutes++;
	return EMU_OK;
}

static void dispatch(struct http_req *r)
{
	struct http_server *s = r->srv;
	char copy[2048], *segs[MAX_SEGMENTS];
	int n = split_path(r->path, copy, sizeof(copy), segs, MAX_SEGMENTS), path_matched = 0;

	if (n < 0 || strlen(r->path) >= sizeof(copy)) {
		http_respond_error(r, 404, 404000, "no such resource: %s", r->path);
		return;
	}
	for (int i = 0; i < s->nroutes; i++) {
		struct route *rt = &s->routes[i];
		int np = 0, ok = rt->nsegs == n;
		for (int k = 0; ok && k < n; k++) {
			if (strcmp(rt->segs[k], "*") == 0) {
				if (np == MAX_PARAMS)
					ok = 0;
				else
					r->params[np++] = segs[k];
			} else if (strcasecmp(rt->segs[k], segs[k]) != 0) {
				ok = 0;
			}
		}
		if (!ok)
			continue;
		path_matched = 1;
		if (strcmp(rt->method, r->method) != 0)
			continue;
		for (int k = 0; k < np; k++)
			if (!(r->params[k] = strdup(r->params[k]))) {
				r->nparams = k;
				http_respond_error(r, 500, 500000, "out of memory");
				return;
			}
		r->nparams = np;
		rt->h(rt->arg, r);
		if (!r->responded && !r->suspended)
			http_respond_error(r, 500, 500000, "handler gave no answer");
		return;
	}
	if (path_matched)
		http_respond_error(r, 405, 405000, "method %s is not allowed on %s", r->method, r->path);
	else
		http_respond_error(r, 404, 404000, "no such resource: %s %s", r->method, r->path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *r = *con_cls;
	(void)version;

	if (!r) {
		const char *cl;
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->srv = s;
		r->mc = mc;
		snprintf(r->method, sizeof(r->method), "%s", method);
		r->path = strdup(url);
		buf_init(&r->body, s->max_body);
		r->start_us = clock_mono_us();
		rand_uuid(RAND_ID_REQUEST, r->id);
		*con_cls = r;
		if (!r->path)
			return MHD_NO;
		cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > s->max_body) {
			/* Decided before the body is read: no 100-continue, no upload. */
			http_respond_error(r, 413, 413000, "request body of %s bytes exceeds the "
					   "limit of %zu bytes", cl, s->max_body);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!r->too_big && buf_append(&r->body, upload_data, *upload_data_size) != EMU_OK)
			r->too_big = 1; /* keep draining; answer after the last piece */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->pending) {
		/* Resumed: the answer was made while the request was suspended. */
		MHD_queue_response(mc, r->pending_status, r->pending);
		MHD_destroy_response(r->pending);
		r->pending = NULL;
		return MHD_YES;
	}
	if (r->responded || r->suspended)
		return MHD_YES;
	if (r->too_big)
		http_respond_error(r, 413, 413000, "request body exceeds the limit of %zu bytes",
				   s->max_body);
	else
		dispatch(r);
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *con_cls;
	(void)cls;
	(void)mc;
	(void)toe;

	if (!r)
		return;
	if (r->pending)
		MHD_destroy_response(r->pending);
	for (int i = 0; i < r->nparams; i++)
		free(r->params[i]);
	for (int i = 0; i < r->nhdrs; i++) {
		free(r->hdr_names[i]);
		free(r->hdr_values[i]);
	}
	buf_free(&r->body);
	free(r->path);
	free(r);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("https", "libmicrohttpd: %s", line);
}

static int mhd_timeout(void *arg)
{
	struct http_server *s = arg;
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(s->mhd, &ms) != MHD_YES)
		return -1;
	return ms > 60000 ? 60000 : (int)ms;
}

static void mhd_run(void *arg)
{
	struct http_server *s = arg;
	MHD_run(s->mhd);
}

static void mhd_event(void *arg, int fd, uint32_t events)
{
	/* Work happens in mhd_run, after every wakeup. */
	(void)arg;
	(void)fd;
	(void)events;
}

int http_server_new(struct loop *lp, SSL_CTX *ctx, const char *bind_addr, int port,
		    size_t max_body, struct metrics *metrics, struct http_server **out)
{
	static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
	static const struct tls_handlers handlers = { bridge_open, bridge_data, bridge_close };
	struct http_server *s = calloc(1, sizeof(*s));
	const union MHD_DaemonInfo *di;
	int rc = EMU_EIO;

	*out = NULL;
	if (!s)
		return EMU_ENOMEM;
	s->lp = lp;
	s->max_body = max_body;
	s->durations = metrics_histogram(metrics, "dpsemu_http_request_duration_seconds",
					 "HTTPS requests: time from the request's arrival to its "
					 "answer being queued, by method and status class.",
					 "method,status", buckets,
					 sizeof(buckets) / sizeof(buckets[0]));
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME |
					  MHD_USE_ERROR_LOG,
				  0, NULL, NULL, on_request, s,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)10000,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
				  MHD_OPTION_END);
	if (!s->mhd) {
		log_error("https", "cannot start libmicrohttpd");
		goto fail;
	}
	di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di) {
		log_error("https", "libmicrohttpd has no epoll descriptor");
		goto fail;
	}
	s->mhd_epoll_fd = di->epoll_fd;
	if ((rc = loop_watch(lp, s->mhd_epoll_fd, EPOLLIN, mhd_event, s)) != EMU_OK ||
	    (rc = loop_add_hook(lp, mhd_timeout, mhd_run, s)) != EMU_OK)
		goto fail;
	rc = tls_server_new(lp, ctx, bind_addr, port, "https", &handlers, s, &s->tls);
	if (rc != EMU_OK)
		goto fail;
	*out = s;
	return EMU_OK;
fail:
	if (s->mhd) {
		loop_unwatch(lp, s->mhd_epoll_fd);
		MHD_stop_daemon(s->mhd);
	}
	free(s);
	return rc;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	/* libmicrohttpd must not be stopped with suspended connections. */
	while (s->suspended)
		http_respond_error(s->suspended, 503, 503000, "the emulator is shutting down");
	MHD_run(s->mhd);
	tls_server_free(s->tls);
	loop_unwatch(s->lp, s->mhd_epoll_fd);
	MHD_stop_daemon(s->mhd);
	for (int i = 0; i < s->nroutes; i++)
		for (int k = 0; k < s->routes[i].nsegs; k++)
			free(s->routes[i].segs[k]);
	free(s->by_mhd_fd);
	free(s);
}

int http_server_port(const struct http_server *s)
{
	return tls_server_port(s->tls);
}

const char *http_req_method(const struct http_req *r)
{
	return r->method;
}

const char *http_req_path(const struct http_req *r)
{
	return r->path;
}

const char *http_req_param(const struct http_req *r, int i)
{
	return i >= 0 && i < r->nparams ? r->params[i] : NULL;
}

const char *http_req_query(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->mc, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->mc, MHD_HEADER_KIND, name);
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return r->body.data ? (const char *)r->body.data : "";
}

json_t *http_req_json_object(const struct http_req *r, int allow_empty, char *why,
			     size_t whylen)
{
	size_t len;
	const char *body = http_req_body(r, &len);
	json_error_t err;
	json_t *j;

	if (len == 0 && allow_empty)
		return json_object();
	j = len ? json_loadb(body, len, 0, &err) : NULL;
	if (json_is_object(j))
		return j;
	emu_why(why, whylen, "the request body is not a JSON object%s%s", j ? "" : ": ",
		j ? "" : (len ? err.text : "empty body"));
	json_decref(j);
	return NULL;
}

X509 *http_req_peer_leaf(const struct http_req *r)
{
	struct bridge *b = bridge_for(r);
	return b ? tls_conn_peer_leaf(b->conn) : NULL;
}

STACK_OF(X509) *http_req_peer_chain(const struct http_req *r)
{
	struct bridge *b = bridge_for(r);
	return b ? tls_conn_peer_chain(b->conn) : NULL;
}

const char *http_req_peer(const struct http_req *r)
{
	struct bridge *b = bridge_for(r);
	return b ? tls_conn_peer_name(b->conn) : "?";
}

const char *http_req_id(const struct http_req *r)
{
	return r->id;
}

void http_req_suspend(struct http_req *r)
{
	if (r->responded || r->suspended)
		return;
	r->suspended = 1;
	r->susp_prev = NULL;
	r->susp_next = r->srv->suspended;
	if (r->susp_next)
		r->susp_next->susp_prev = r;
	r->srv->suspended = r;
	MHD_suspend_connection(r->mc);
}

int http_resp_header(struct http_req *r, const char *name, const char *value)
{
	if (r->nhdrs == MAX_RESP_HEADERS)
		return EMU_ENOMEM;
	r->hdr_names[r->nhdrs] = strdup(name);
	r->hdr_values[r->nhdrs] = strdup(value);
	if (!r->hdr_names[r->nhdrs] || !r->hdr_values[r->nhdrs]) {
		free(r->hdr_names[r->nhdrs]);
		free(r->hdr_values[r->nhdrs]);
		return EMU_ENOMEM;
	}
	r->nhdrs++;
	return EMU_OK;
}

/* Counts the answer in the duration histogram. Methods outside the standard
 * set share one label value, so clients cannot grow the series. */
static void observe(const struct http_req *r, int status)
{
	static const char *const methods[] = { "GET", "PUT", "POST", "PATCH", "DELETE", "HEAD",
					       "OPTIONS" };
	const char *method = "other";
	char cls[8];

	if (!r->srv->durations)
		return;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(r->method, methods[i]) == 0)
			method = methods[i];
	snprintf(cls, sizeof(cls), "%dxx", status >= 100 && status < 600 ? status / 100 : 5);
	metrics_observe(r->srv->durations, METRICS_LABELS(method, cls),
			(double)(clock_mono_us() - r->start_us) / 1e6);
}

void http_respond(struct http_req *r, int status, const char *content_type, const void *body,
		  size_t len)
{
	struct MHD_Response *resp;

	if (r->responded)
		return;
	r->responded = 1;
	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return;
	if (content_type)
		MHD_add_response_header(resp, "Content-Type", content_type);
	MHD_add_response_header(resp, "x-ms-request-id", r->id);
	for (int i = 0; i < r->nhdrs; i++)
		MHD_add_response_header(resp, r->hdr_names[i], r->hdr_values[i]);
	if (r->suspended) {
		r->suspended = 0;
		if (r->susp_prev)
			r->susp_prev->susp_next = r->susp_next;
		else
			r->srv->suspended = r->susp_next;
		if (r->susp_next)
			r->susp_next->susp_prev = r->susp_prev;
		r->pending = resp;
		r->pending_status = (unsigned int)status;
		MHD_resume_connection(r->mc);
	} else {
		MHD_queue_response(r->mc, (unsigned int)status, resp);
		MHD_destroy_response(resp);
	}
	observe(r, status);
	log_debug("https", "%s %s %s -> %d", http_req_peer(r), r->method, r->path, status);
}

void http_respond_json(struct http_req *r, int status, json_t *body)
{
	char *text = NULL;

	if (body)
		text = json_dumps(body, JSON_COMPACT);
	if (body && !text) {
		json_decref(body);
		http_respond(r, 500, NULL, NULL, 0);
		return;
	}
	/* Node's REST client parses a body only when the type says JSON: always send it. */
	http_respond(r, status, JSON_TYPE, text ? text : "", text ? strlen(text) : 0);
	free(text);
	json_decref(body);
}

void http_respond_error(struct http_req *r, int status, int error_code, const char *fmt, ...)
{
	char msg[1024], code[16], ts[32];
	va_list ap;
	json_t *body;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_iso8601_now(ts);
	snprintf(code, sizeof(code), "%d", error_code);
	log_info("https", "request %s %s %s from %s refused: %d %d: %s", r->id, r->method, r->path,
		 http_req_peer(r), status, error_code, msg);
	http_resp_header(r, "x-ms-error-code", code);
	body = json_pack("{s:i, s:s, s:s, s:s}", "errorCode", error_code, "trackingId", r->id,
			 "message", msg, "timestampUtc", ts);
	http_respond_json(r, status, body);
}
