#include "tls.h"

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDSHAKE_TIMEOUT_MS 10000
#define SWEEP_INTERVAL_MS 250
#define MAX_OUTPUT (16u * 1024 * 1024) /* queued bytes before a slow reader is dropped */
#define READ_CHUNK 16384

struct tls_server {
	struct loop *lp;
	SSL_CTX *ctx;
	int fd;
	int port;
	char name[16];
	struct tls_handlers h;
	void *arg;
	struct tls_conn *conns; /* doubly linked */
	struct loop_timer *sweep;
	int nopen;
};

struct tls_conn {
	struct tls_server *srv;
	struct tls_conn *prev, *next;
	int fd;
	SSL *ssl;
	int established;   /* handshake done and on_open accepted */
	int closing;       /* flush output, then destroy */
	int dead;          /* destroy as soon as no callback is running */
	int busy;          /* inside a handler callback */
	int paused;
	int want_write;    /* SSL needs EPOLLOUT */
	uint32_t events;   /* currently watched */
	uint64_t deadline;
	struct loop_timer *resume; /* pending re-read after tls_conn_pause(c, 0) */
	struct loop_timer *reap;   /* pending close decided outside the connection's event */
	struct buf out;
	X509 *leaf;
	void *data;
	char peer[64];
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

static void conn_event(void *arg, int fd, uint32_t events);

/* Accepting every chain here is deliberate (see tls_ctx_new). */
static int accept_any_chain(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}


int tls_ctx_new(const char *chain_file, const char *key_file, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	STACK_OF(X509_NAME) *no_names = NULL;

	*out = NULL;
	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, chain_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_error("tls", "cannot load server certificate %s / key %s", chain_file, key_file);
		goto fail;
	}
	/* Ask for a client certificate, never require one, accept any chain: the
	 * protocol layer validates it against enrollments and registered CAs. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any_chain, NULL);
	no_names = sk_X509_NAME_new_null();
	if (no_names)
		SSL_CTX_set_client_CA_list(ctx, no_names);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Resumed sessions lose the intermediates the device sent: no resumption. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	*out = ctx;
	return EMU_OK;
fail:
	log_openssl_errors("tls", "tls_ctx_new");
	SSL_CTX_free(ctx);
	return EMU_ETLS;
}

static void conn_watch(struct tls_conn *c)
{
	uint32_t ev = 0;

	if (!c->paused && !c->closing)
		ev |= EPOLLIN;
	if (c->want_write || c->out.len)
		ev |= EPOLLOUT | EPOLLIN; /* SSL may need to read to make write progress */
	if (ev == c->events)
		return;
	c->events = ev;
	loop_watch(c->srv->lp, c->fd, ev, conn_event, c);
}

static void conn_destroy(struct tls_conn *c)
{
	struct tls_server *s = c->srv;

	if (c->established) {
		s->nopen--;
		c->established = 0;
		if (s->h.on_close)
			s->h.on_close(s->arg, c);
	}
	loop_timer_cancel(s->lp, c->resume);
	loop_timer_cancel(s->lp, c->reap);
	loop_unwatch(s->lp, c->fd);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	X509_free(c->leaf);
	buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* Writes queued output. Returns EMU_OK (maybe partially written) or EMU_ECLOSED. */
static int conn_flush(struct tls_conn *c)
{
	c->want_write = 0;
	while (c->out.len) {
		int n, err;
		ERR_clear_error();
		n = SSL_write(c->ssl, c->out.data, (int)(c->out.len > 65536 ? 65536 : c->out.len));
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
			c->want_write = 1;
			return EMU_OK;
		}
		log_debug(c->srv->name, "%s: write failed (%d)", c->peer, err);
		return EMU_ECLOSED;
	}
	return EMU_OK;
}

static void conn_check_done(struct tls_conn *c)
{
	if (!c->dead && c->closing && c->out.len == 0 && !c->want_write) {
		if (c->established) {
			ERR_clear_error();
			SSL_shutdown(c->ssl); /* best effort close_notify */
		}
		c->dead = 1;
	}
	if (c->dead && !c->busy)
		conn_destroy(c);
	else if (!c->dead)
		conn_watch(c);
}

static void conn_reap(void *arg)
{
	struct tls_conn *c = arg;

	c->reap = NULL;
	conn_check_done(c);
}

/* After a call made outside this connection's own event handler (another
 * connection's request writing to it, a timer): write what the socket takes
 * now; if the connection has to go, destroy it on the loop's next turn, never
 * inside the caller's stack, which may hold pointers that on_close frees. */
static void conn_settle(struct tls_conn *c)
{
	if (c->busy)
		return; /* the event handler running now settles it */
	if (!c->dead && (c->out.len || c->want_write) && conn_flush(c) != EMU_OK)
		c->dead = 1;
	if (c->dead || (c->closing && !c->out.len && !c->want_write)) {
		if (!c->reap)
			c->reap = loop_timer_add(c->srv->lp, 0, conn_reap, c);
	} else {
		conn_watch(c);
	}
}

static void log_handshake_failure(struct tls_conn *c, int err)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "connection closed";

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	else if (err == SSL_ERROR_SYSCALL && errno)
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
	if (e && strstr(reason, "unknown ca"))
		log_info(c->srv->name, "TLS handshake with %s failed: %s (the client does not trust "
			 "the server CA: give it server-ca.pem from the data directory)", c->peer, reason);
	else
		log_info(c->srv->name, "TLS handshake with %s failed: %s", c->peer, reason);
	ERR_clear_error();
}

static void conn_handshake(struct tls_conn *c)
{
	int n, err;

	ERR_clear_error();
	n = SSL_do_handshake(c->ssl);
	if (n == 1) {
		c->leaf = SSL_get1_peer_certificate(c->ssl);
		c->deadline = 0;
		c->established = 1;
		c->srv->nopen++;
		c->busy++;
		if (c->srv->h.on_open && c->srv->h.on_open(c->srv->arg, c) != EMU_OK) {
			c->established = 0;
			c->srv->nopen--;
			c->dead = 1;
		}
		c->busy--;
		return;
	}
	err = SSL_get_error(c->ssl, n);
	if (err == SSL_ERROR_WANT_READ)
		return;
	if (err == SSL_ERROR_WANT_WRITE) {
		c->want_write = 1;
		return;
	}
	log_handshake_failure(c, err);
	c->dead = 1;
}

static void conn_read(struct tls_conn *c)
{
	unsigned char chunk[READ_CHUNK];

	while (!c->paused && !c->closing && !c->dead) {
		int n, err;
		ERR_clear_error();
		n = SSL_read(c->ssl, chunk, sizeof(chunk));
		if (n > 0) {
			c->busy++;
			c->srv->h.on_data(c->srv->arg, c, chunk, (size_t)n);
			c->busy--;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			return;
		if (err == SSL_ERROR_WANT_WRITE) {
			c->want_write = 1;
			return;
		}
		if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
			log_debug(c->srv->name, "%s closed the connection", c->peer);
		else
			log_openssl_errors(c->srv->name, c->peer);
		c->dead = 1; /* the peer is gone: nothing more can be written */
		return;
	}
}

static void conn_event(void *arg, int fd, uint32_t events)
{
	struct tls_conn *c = arg;
	(void)fd;

	c->busy++;
	if (!SSL_is_init_finished(c->ssl))
		conn_handshake(c);
	if (!c->dead && c->established) {
		if ((c->out.len || c->want_write) && conn_flush(c) != EMU_OK)
			c->dead = 1;
		if (!c->dead)
			conn_read(c);
		if (!c->dead && c->out.len && conn_flush(c) != EMU_OK)
			c->dead = 1;
	}
	if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN))
		c->dead = 1;
	c->busy--;
	conn_check_done(c);
}

static void server_accept(void *arg, int fd, uint32_t events)
{
	struct tls_server *s = arg;
	(void)events;

	for (;;) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		struct tls_conn *c;
		char host[INET6_ADDRSTRLEN] = "?";
		int cfd = accept4(fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn(s->name, "accept: %s", strerror(errno));
			return;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c || !(c->ssl = SSL_new(s->ctx))) {
			log_error(s->name, "out of memory accepting a connection");
			free(c);
			close(cfd);
			continue;
		}
		c->srv = s;
		c->fd = cfd;
		c->addr = sa;
		c->addrlen = salen;
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(in->sin_port));
		} else if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, ntohs(in6->sin6_port));
		}
		buf_init(&c->out, MAX_OUTPUT);
		SSL_set_fd(c->ssl, cfd);
		SSL_set_accept_state(c->ssl);
		c->deadline = clock_mono_ms() + HANDSHAKE_TIMEOUT_MS;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		conn_watch(c);
	}
}

static void server_sweep(void *arg)
{
	struct tls_server *s = arg;
	uint64_t now = clock_mono_ms();
	struct tls_conn *c, *next;

	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->deadline && c->deadline <= now && !c->dead) {
			log_info(s->name, "%s: %s timed out", c->peer,
				 c->established ? "connection" : "TLS handshake");
			c->deadline = 0;
			c->closing = 1;
			c->out.len = 0; /* an unresponsive peer gets nothing more */
			c->dead = 1;
			conn_check_done(c);
		}
	}
	s->sweep = loop_timer_add(s->lp, SWEEP_INTERVAL_MS, server_sweep, s);
}

int tls_server_new(struct loop *lp, SSL_CTX *ctx, const char *bind_addr, int port,
		   const char *name, const struct tls_handlers *h, void *arg,
		   struct tls_server **out)
{
	struct tls_server *s = NULL;
	struct sockaddr_storage sa;
	socklen_t salen;
	int one = 1, rc = EMU_EIO;

	*out = NULL;
	memset(&sa, 0, sizeof(sa));
	if (inet_pton(AF_INET, bind_addr, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
		((struct sockaddr_in *)&sa)->sin_family = AF_INET;
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
		salen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, bind_addr, &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
		salen = sizeof(struct sockaddr_in6);
	} else {
		log_error(name, "DPSEMU_BIND: '%s' is not an IPv4 or IPv6 address", bind_addr);
		return EMU_EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return EMU_ENOMEM;
	s->lp = lp;
	s->ctx = ctx;
	s->h = *h;
	s->arg = arg;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		goto fail;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno == EACCES && port < 1024)
			log_error(name, "cannot listen on %s:%d: permission denied. Ports below 1024 need "
				  "root or CAP_NET_BIND_SERVICE (sudo setcap cap_net_bind_service=+ep "
				  "build/dpsemu), or choose another port", bind_addr, port);
		else
			log_error(name, "cannot listen on %s:%d: %s", bind_addr, port, strerror(errno));
		goto fail;
	}
	if (listen(s->fd, 1024) < 0) {
		log_error(name, "listen on %s:%d: %s", bind_addr, port, strerror(errno));
		goto fail;
	}
	salen = sizeof(sa);
	getsockname(s->fd, (struct sockaddr *)&sa, &salen);
	s->port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
						: ((struct sockaddr_in6 *)&sa)->sin6_port);
	if ((rc = loop_watch(lp, s->fd, EPOLLIN, server_accept, s)) != EMU_OK)
		goto fail;
	s->sweep = loop_timer_add(lp, SWEEP_INTERVAL_MS, server_sweep, s);
	if (!s->sweep) {
		rc = EMU_ENOMEM;
		goto fail;
	}
	*out = s;
	return EMU_OK;
fail:
	if (s->fd >= 0) {
		loop_unwatch(lp, s->fd);
		close(s->fd);
	}
	free(s);
	return rc;
}

void tls_server_free(struct tls_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_destroy(s->conns);
	loop_timer_cancel(s->lp, s->sweep);
	loop_unwatch(s->lp, s->fd);
	close(s->fd);
	free(s);
}

int tls_server_port(const struct tls_server *s)
{
	return s->port;
}

int tls_server_connections(const struct tls_server *s)
{
	return s->nopen;
}

int tls_conn_send(struct tls_conn *c, const void *p, size_t n)
{
	int rc;

	if (c->closing || c->dead)
		return EMU_ECLOSED;
	rc = buf_append(&c->out, p, n);
	if (rc != EMU_OK) {
		log_warn(c->srv->name, "%s: peer is not reading; %zu bytes queued, closing", c->peer,
			 c->out.len);
		c->out.len = 0;
		c->dead = 1;
		conn_settle(c);
		return rc;
	}
	conn_settle(c);
	return EMU_OK;
}

void tls_conn_close(struct tls_conn *c, const char *reason)
{
	if (c->closing || c->dead)
		return;
	log_debug(c->srv->name, "%s: closing: %s", c->peer, reason);
	c->closing = 1;
	conn_settle(c);
}

int tls_conn_closing(const struct tls_conn *c)
{
	return c->closing || c->dead;
}

void tls_conn_set_data(struct tls_conn *c, void *data)
{
	c->data = data;
}

void *tls_conn_data(const struct tls_conn *c)
{
	return c->data;
}

X509 *tls_conn_peer_leaf(const struct tls_conn *c)
{
	return c->leaf;
}

STACK_OF(X509) *tls_conn_peer_chain(const struct tls_conn *c)
{
	return SSL_get_peer_cert_chain(c->ssl);
}

const char *tls_conn_peer_name(const struct tls_conn *c)
{
	return c->peer;
}

const struct sockaddr *tls_conn_peer_addr(const struct tls_conn *c, socklen_t *len)
{
	*len = c->addrlen;
	return (const struct sockaddr *)&c->addr;
}

void tls_conn_set_deadline(struct tls_conn *c, uint64_t deadline_ms)
{
	c->deadline = deadline_ms;
}

static void conn_resume(void *arg)
{
	struct tls_conn *c = arg;

	c->resume = NULL;
	conn_event(c, c->fd, EPOLLIN);
}

void tls_conn_pause(struct tls_conn *c, int paused)
{
	if (c->paused == paused)
		return;
	c->paused = paused;
	if (c->dead)
		return;
	if (!c->busy)
		conn_watch(c);
	/* Data may already sit decrypted inside OpenSSL, where epoll can't see it:
	 * read it on the next loop turn, not inside the caller's stack. */
	if (!paused && SSL_pending(c->ssl) && !c->resume)
		c->resume = loop_timer_add(c->srv->lp, 0, conn_resume, c);
}
