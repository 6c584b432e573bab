/* forward.c - telemetry copied to an external MQTT broker (see forward.h).
 *
 * libmosquitto runs in its "external loop" mode: no thread, no mosquitto_loop().
 * Its socket is non-blocking and watched on the emulator's epoll loop; readiness
 * calls mosquitto_loop_read/_write, a loop timer calls mosquitto_loop_misc
 * (keep-alive) and drives reconnection. Its callbacks only record what happened;
 * the code after each library call acts on it (after_io), so nothing is torn
 * down while libmosquitto is still on the stack.
 *
 * The library closes its socket by itself when a connection fails; the epoll
 * registration is dropped right after that call returns (before anything else
 * can be handed the same descriptor number). Every connection attempt uses a
 * fresh client object, so no state of a dead connection carries over.
 *
 * Host names are resolved with getaddrinfo_a (glibc's resolver thread fills a
 * request the timer polls), so a slow DNS server does not stall the loop;
 * addresses are then handed to libmosquitto in numeric form. Each attempt tries
 * the next address; a host name is resolved again once all failed, and after a
 * lost connection (a restarted broker container may have a new address). */
#include "hub-sim/forward.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "textenc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define KEEPALIVE_S        30
#define CONNECT_TIMEOUT_MS 10000 /* TCP connect + CONNACK */
#define BACKOFF_MIN_MS     500
#define BACKOFF_MAX_MS     5000
#define MISC_INTERVAL_MS   1000 /* mosquitto_loop_misc: keep-alive, dead peer */
#define RESOLVE_POLL_MS    50
#define RESOLVE_ABANDON_S  2     /* at shutdown: wait this long for a lookup in flight */
#define WARN_INTERVAL_MS   10000 /* at most one drop warning this often */
/* Bytes published while libmosquitto's queue was not draining: a broker that
 * stops reading must not make the emulator's memory grow without bound. */
#define BACKLOG_MAX (4u * 1024u * 1024u)
#define MAX_ADDRS   8
#define TOPIC_MAX   1024

static const char topic_prefix[] = "dpsemu/telemetry/";

enum fwd_state {
	FWD_IDLE,       /* waiting for the next attempt (timer) */
	FWD_RESOLVING,  /* getaddrinfo_a in flight (timer polls) */
	FWD_CONNECTING, /* socket open, CONNECT sent or pending, no CONNACK yet */
	FWD_UP,         /* CONNACK 0: messages are published */
};

/* A host name lookup in flight. Separate from the forwarder because the
 * resolver thread writes into it: if it cannot be cancelled at shutdown it is
 * left behind rather than freed under that thread. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char name[HUB_FORWARD_HOST_MAX + 1];
};

struct hub_forward {
	struct loop *lp;
	char host[HUB_FORWARD_HOST_MAX + 1];
	int port;
	int numeric; /* host is an IP address: addrs never change */
	char client_id[32];
	int lib_ready; /* mosquitto_lib_init succeeded */
	enum fwd_state state;
	struct mosquitto *mosq; /* the current attempt's client, or NULL */
	int fd;                 /* the socket registered with the loop, or -1 */
	uint32_t fd_events;
	struct loop_timer *timer;
	uint64_t deadline;   /* FWD_CONNECTING: give up then */
	uint64_t backoff_ms; /* delay before the next attempt after a failure */
	int quiet;           /* this run of failures was already reported */
	size_t backlog;      /* see BACKLOG_MAX */
	/* Set by libmosquitto's callbacks, acted on in after_io. */
	int connack_seen, connack_rc;
	int lost, lost_rc, lost_errno;
	/* Addresses to try, numeric. */
	struct lookup *lookup;
	char addrs[MAX_ADDRS][NI_MAXHOST];
	int naddrs, next_addr;
	char cur_addr[NI_MAXHOST];
	/* The message of the store transaction in progress (hub_forward_stage). */
	json_t *staged;
	char *staged_id;
	struct hub_forward_stats stats;
	uint64_t unwarned;  /* drops since the last warning */
	uint64_t last_warn; /* clock_mono_ms of the last warning */
	int warned;
};

static void on_timer(void *arg);
static void after_io(struct hub_forward *f);

/* --- pure parts ------------------------------------------------------------ */

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

int hub_forward_parse_target(const char *spec, char *host, size_t hostlen, int *port, char *why,
                             size_t whylen)
{
	const char *hb, *he, *ps;
	unsigned char v6[16];
	char *end;
	size_t n;
	long p;

	if (!spec || !*spec) {
		set_why(why, whylen, "empty (expected host:port)");
		return EMU_EINVAL;
	}
	if (spec[0] == '[') {
		hb = spec + 1;
		he = strchr(hb, ']');
		if (!he || he[1] != ':') {
			set_why(why, whylen, "'%s' is not [IPv6 address]:port", spec);
			return EMU_EINVAL;
		}
		ps = he + 2;
	} else {
		he = strrchr(spec, ':');
		if (!he) {
			set_why(why, whylen, "'%s' has no port (expected host:port)", spec);
			return EMU_EINVAL;
		}
		if (memchr(spec, ':', (size_t)(he - spec))) {
			set_why(why, whylen, "'%s': an IPv6 address goes in brackets, [addr]:port",
			        spec);
			return EMU_EINVAL;
		}
		hb = spec;
		ps = he + 1;
	}
	n = (size_t)(he - hb);
	if (n == 0) {
		set_why(why, whylen, "'%s' has no host (expected host:port)", spec);
		return EMU_EINVAL;
	}
	if (n > HUB_FORWARD_HOST_MAX || n >= hostlen) {
		set_why(why, whylen, "the host name is longer than %d characters",
		        HUB_FORWARD_HOST_MAX);
		return EMU_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)hb[i];
		int ok = spec[0] == '[' ? (isxdigit(c) || c == ':' || c == '.')
		                        : (isalnum(c) || c == '-' || c == '.' || c == '_');
		if (!ok) {
			set_why(why, whylen, "'%s': the host has an invalid character '%c'", spec,
			        isprint(c) ? (char)c : '?');
			return EMU_EINVAL;
		}
	}
	if (!isdigit((unsigned char)ps[0])) {
		set_why(why, whylen, "'%s': the port must be a number from 1 to 65535", spec);
		return EMU_EINVAL;
	}
	errno = 0;
	p = strtol(ps, &end, 10);
	if (errno || *end || p < 1 || p > 65535) {
		set_why(why, whylen, "'%s': the port must be a number from 1 to 65535", spec);
		return EMU_EINVAL;
	}
	memcpy(host, hb, n);
	host[n] = '\0';
	if (spec[0] == '[' && inet_pton(AF_INET6, host, v6) != 1) {
		set_why(why, whylen, "'%s': '%s' is not an IPv6 address", spec, host);
		host[0] = '\0';
		return EMU_EINVAL;
	}
	*port = (int)p;
	return EMU_OK;
}

/* Appends s to out at *n, escaping what a topic level cannot carry. */
static int topic_append(char *out, size_t outlen, size_t *n, const char *s, int escape)
{
	for (; *s; s++) {
		char enc[4];
		const char *piece = s;
		size_t plen = 1;

		if (escape && (*s == '+' || *s == '#' || *s == '%' || *s == '/')) {
			snprintf(enc, sizeof(enc), "%%%02X", (unsigned)(unsigned char)*s);
			piece = enc;
			plen = 3;
		}
		if (*n + plen >= outlen)
			return EMU_ETOOBIG;
		memcpy(out + *n, piece, plen);
		*n += plen;
	}
	out[*n] = '\0';
	return EMU_OK;
}

int hub_forward_topic(const char *device_id, const char *module_id, char *out, size_t outlen)
{
	size_t n = 0;
	int rc;

	if (!outlen)
		return EMU_ETOOBIG;
	out[0] = '\0';
	if (!device_id || !*device_id)
		return EMU_EINVAL;
	rc = topic_append(out, outlen, &n, topic_prefix, 0);
	if (rc == EMU_OK)
		rc = topic_append(out, outlen, &n, device_id, 1);
	if (rc == EMU_OK && module_id && *module_id) {
		rc = topic_append(out, outlen, &n, "/", 0);
		if (rc == EMU_OK)
			rc = topic_append(out, outlen, &n, module_id, 1);
	}
	if (rc != EMU_OK)
		out[0] = '\0';
	return rc;
}

char *hub_forward_envelope(const char *device_id, const json_t *msg, size_t *len)
{
	/* jansson iterates without changing the object; its API is not const. */
	json_t *src = (json_t *)msg, *env = NULL, *mod;
	char *text = NULL;
	const char *key;
	void *it;

	if (!json_is_object(src) || !device_id || !(env = json_object()))
		return NULL;
	if (json_object_set_new(env, "deviceId", json_string(device_id)))
		goto out;
	mod = json_object_get(src, "moduleId");
	if (mod && json_object_set(env, "moduleId", mod))
		goto out;
	for (it = json_object_iter(src); it; it = json_object_iter_next(src, it)) {
		key = json_object_iter_key(it);
		if (strcmp(key, "moduleId") == 0 || strcmp(key, "deviceId") == 0)
			continue;
		if (json_object_set(env, key, json_object_iter_value(it)))
			goto out;
	}
	text = json_dumps(env, JSON_COMPACT);
	if (text && len)
		*len = strlen(text);
out:
	json_decref(env);
	return text;
}

/* --- counting and warnings ------------------------------------------------- */

static void drop(struct hub_forward *f, const char *device_id, const char *why)
{
	uint64_t now = clock_mono_ms();

	f->stats.dropped++;
	f->unwarned++;
	if (f->warned && now - f->last_warn < WARN_INTERVAL_MS) {
		log_debug("forward", "telemetry of '%s' not forwarded: %s", device_id, why);
		return;
	}
	if (!f->warned)
		log_warn("forward",
		         "telemetry not forwarded to %s:%d: %s (drops are counted; this "
		         "warning repeats at most every %d s)",
		         f->host, f->port, why, WARN_INTERVAL_MS / 1000);
	else
		log_warn("forward",
		         "telemetry not forwarded to %s:%d: %s (%llu dropped since the "
		         "last warning, %llu in all)",
		         f->host, f->port, why, (unsigned long long)f->unwarned,
		         (unsigned long long)f->stats.dropped);
	f->warned = 1;
	f->last_warn = now;
	f->unwarned = 0;
}

/* libmosquitto's text for rc (errno's for MOSQ_ERR_ERRNO), without the final
 * full stop its messages have, for use inside a log line. */
static const char *mosq_why(int rc, int err, char *out, size_t outlen)
{
	size_t n;

	snprintf(out, outlen, "%s", rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc));
	n = strlen(out);
	if (n && out[n - 1] == '.')
		out[n - 1] = '\0';
	return out;
}

/* --- connection life cycle ------------------------------------------------- */

static void arm(struct hub_forward *f, uint64_t ms)
{
	loop_timer_cancel(f->lp, f->timer);
	f->timer = loop_timer_add(f->lp, ms, on_timer, f);
	if (!f->timer)
		log_error("forward", "out of memory: telemetry forwarding stalls");
}

/* Drops the current client: the loop stops watching its socket first, then
 * mosquitto_destroy closes it. */
static void teardown(struct hub_forward *f)
{
	if (f->fd >= 0)
		loop_unwatch(f->lp, f->fd);
	f->fd = -1;
	f->fd_events = 0;
	if (f->mosq)
		mosquitto_destroy(f->mosq);
	f->mosq = NULL;
	f->connack_seen = f->lost = 0;
	f->backlog = 0;
}

/* The attempt or the connection failed: tear down and try again later. */
static void retry_later(struct hub_forward *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void retry_later(struct hub_forward *f, const char *fmt, ...)
{
	int was_up = f->state == FWD_UP;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	teardown(f);
	f->state = FWD_IDLE;
	if (was_up) {
		log_warn("forward", "connection to the broker %s:%d lost: %s; reconnecting",
		         f->host, f->port, why);
		f->backoff_ms = BACKOFF_MIN_MS;
		f->quiet = 0;
		if (!f->numeric)
			f->naddrs = 0; /* resolve again: the broker may have moved */
	} else if (f->next_addr < f->naddrs) {
		/* More addresses for this name (IPv6 and IPv4): try the next at once. */
		log_debug("forward", "broker %s:%d at %s: %s", f->host, f->port, f->cur_addr, why);
		arm(f, 0);
		return;
	} else if (!f->quiet) {
		log_warn("forward",
		         "cannot connect to the broker %s:%d: %s; telemetry is not "
		         "forwarded until it answers (retrying)",
		         f->host, f->port, why);
		f->quiet = 1;
	} else {
		log_debug("forward", "broker %s:%d: %s; retrying in %llu ms", f->host, f->port, why,
		          (unsigned long long)f->backoff_ms);
	}
	arm(f, f->backoff_ms);
	f->backoff_ms = f->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : f->backoff_ms * 2;
}

static void take_addrs(struct hub_forward *f, const struct addrinfo *res)
{
	f->naddrs = 0;
	f->next_addr = 0;
	for (const struct addrinfo *ai = res; ai && f->naddrs < MAX_ADDRS; ai = ai->ai_next)
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, f->addrs[f->naddrs], NI_MAXHOST, NULL,
		                0, NI_NUMERICHOST) == 0)
			f->naddrs++;
}

/* IP addresses need no lookup (and no thread): filled in at once. */
static int resolve_numeric(struct hub_forward *f)
{
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(f->host, NULL, &hints, &res) != 0)
		return 0;
	take_addrs(f, res);
	freeaddrinfo(res);
	return f->naddrs > 0;
}

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
	struct hub_forward *f = arg;
	(void)m;

	f->connack_seen = 1;
	f->connack_rc = rc;
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc)
{
	struct hub_forward *f = arg;
	(void)m;

	f->lost_errno = errno;
	f->lost = 1;
	f->lost_rc = rc;
}

static void on_socket(void *arg, int fd, uint32_t events)
{
	struct hub_forward *f = arg;
	int rc = MOSQ_ERR_SUCCESS;
	(void)fd;

	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = mosquitto_loop_read(f->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS && !f->lost && mosquitto_socket(f->mosq) >= 0 &&
	    (events & EPOLLOUT))
		rc = mosquitto_loop_write(f->mosq, 1);
	if (rc != MOSQ_ERR_SUCCESS && !f->lost) {
		f->lost_errno = errno;
		f->lost = 1;
		f->lost_rc = rc;
	}
	/* A hang-up or socket error the library did not act on would wake the loop
	 * forever (level-triggered): treat it as the end of the connection. */
	if (!f->lost && !f->connack_seen && mosquitto_socket(f->mosq) >= 0 &&
	    (events & (EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t elen = sizeof(err);
		getsockopt(mosquitto_socket(f->mosq), SOL_SOCKET, SO_ERROR, &err, &elen);
		f->lost = 1;
		f->lost_rc = err ? MOSQ_ERR_ERRNO : MOSQ_ERR_CONN_LOST;
		f->lost_errno = err;
	}
	after_io(f);
}

/* After every call into libmosquitto: act on what its callbacks reported and
 * keep the loop's registration in step with its socket. */
static void after_io(struct hub_forward *f)
{
	uint32_t want;
	int sock;

	if (f->connack_seen && f->state == FWD_CONNECTING) {
		f->connack_seen = 0;
		if (f->connack_rc != 0) {
			char text[128];
			size_t n;

			snprintf(text, sizeof(text), "%s", mosquitto_connack_string(f->connack_rc));
			n = strlen(text);
			if (n && text[n - 1] == '.')
				text[n - 1] = '\0';
			retry_later(f, "the broker refused the connection (%s)", text);
			return;
		}
		f->state = FWD_UP;
		f->stats.connects++;
		f->backoff_ms = BACKOFF_MIN_MS;
		f->quiet = 0;
		f->backlog = 0;
		if (f->next_addr > 0)
			f->next_addr--; /* reconnect to this address first */
		log_info("forward", "connected to the broker %s:%d (%s): forwarding telemetry",
		         f->host, f->port, f->cur_addr);
	}
	sock = mosquitto_socket(f->mosq);
	if (f->lost || sock < 0) {
		char text[128];
		retry_later(f, "%s",
		            f->lost ? mosq_why(f->lost_rc, f->lost_errno, text, sizeof(text))
		                    : "socket closed");
		return;
	}
	want = EPOLLIN | (mosquitto_want_write(f->mosq) ? EPOLLOUT : 0);
	if (sock != f->fd && f->fd >= 0) {
		loop_unwatch(f->lp, f->fd);
		f->fd = -1;
	}
	if (f->fd < 0 || want != f->fd_events) {
		if (loop_watch(f->lp, sock, want, on_socket, f) != EMU_OK) {
			retry_later(f, "cannot watch the socket");
			return;
		}
		f->fd = sock;
		f->fd_events = want;
	}
	if (!(want & EPOLLOUT))
		f->backlog = 0; /* everything queued has gone out */
}

static void connect_next(struct hub_forward *f)
{
	char text[128];
	int rc, err;

	snprintf(f->cur_addr, sizeof(f->cur_addr), "%s", f->addrs[f->next_addr++]);
	f->stats.attempts++;
	f->mosq = mosquitto_new(f->client_id, true, f);
	if (!f->mosq) {
		retry_later(f, "out of memory");
		return;
	}
	mosquitto_connect_callback_set(f->mosq, on_connect);
	mosquitto_disconnect_callback_set(f->mosq, on_disconnect);
	f->connack_seen = f->lost = 0;
	/* Non-blocking: the address is numeric, the socket is non-blocking and
	 * the CONNECT goes out when it becomes writable. */
	rc = mosquitto_connect_async(f->mosq, f->cur_addr, f->port, KEEPALIVE_S);
	err = errno;
	if (rc != MOSQ_ERR_SUCCESS) {
		retry_later(f, "%s", mosq_why(rc, err, text, sizeof(text)));
		return;
	}
	f->state = FWD_CONNECTING;
	f->deadline = clock_mono_ms() + CONNECT_TIMEOUT_MS;
	arm(f, MISC_INTERVAL_MS);
	after_io(f);
}

static void lookup_start(struct hub_forward *f)
{
	struct gaicb *list[1];
	struct lookup *l = calloc(1, sizeof(*l));
	int rc;

	if (!l) {
		retry_later(f, "out of memory");
		return;
	}
	snprintf(l->name, sizeof(l->name), "%s", f->host);
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->name;
	l->cb.ar_request = &l->hints;
	list[0] = &l->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rc != 0) {
		free(l);
		retry_later(f, "cannot resolve %s: %s", f->host, gai_strerror(rc));
		return;
	}
	f->lookup = l;
	f->state = FWD_RESOLVING;
	arm(f, RESOLVE_POLL_MS);
}

static void lookup_poll(struct hub_forward *f)
{
	struct lookup *l = f->lookup;
	int rc = gai_error(&l->cb);

	if (rc == EAI_INPROGRESS) {
		arm(f, RESOLVE_POLL_MS);
		return;
	}
	f->lookup = NULL;
	if (rc == 0) {
		take_addrs(f, l->cb.ar_result);
		freeaddrinfo(l->cb.ar_result);
	}
	free(l);
	if (rc != 0 || f->naddrs == 0) {
		f->naddrs = f->next_addr = 0;
		retry_later(f, "cannot resolve %s: %s", f->host,
		            rc ? gai_strerror(rc) : "no usable address");
		return;
	}
	connect_next(f);
}

/* Shutdown with a lookup in flight: cancel it or wait for it, briefly. */
static void lookup_abandon(struct hub_forward *f)
{
	struct lookup *l = f->lookup;

	f->lookup = NULL;
	if (!l)
		return;
	if (gai_cancel(&l->cb) == EAI_NOTCANCELED) {
		const struct gaicb *list[1] = {&l->cb};
		struct timespec ts = {RESOLVE_ABANDON_S, 0};

		gai_suspend(list, 1, &ts);
		if (gai_error(&l->cb) == EAI_INPROGRESS) {
			/* The resolver thread still owns it: leave it to the process exit. */
			log_warn("forward", "lookup of %s still running at shutdown", l->name);
			return;
		}
	}
	if (gai_error(&l->cb) == 0 && l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

static void start_attempt(struct hub_forward *f)
{
	if (f->next_addr >= f->naddrs && f->numeric)
		f->next_addr = 0;
	if (f->next_addr < f->naddrs)
		connect_next(f);
	else
		lookup_start(f);
}

static void on_timer(void *arg)
{
	struct hub_forward *f = arg;

	f->timer = NULL; /* fired: the loop frees it */
	switch (f->state) {
	case FWD_IDLE:
		start_attempt(f);
		break;
	case FWD_RESOLVING:
		lookup_poll(f);
		break;
	case FWD_CONNECTING:
		if (clock_mono_ms() >= f->deadline) {
			retry_later(f, "no CONNACK within %d s", CONNECT_TIMEOUT_MS / 1000);
			break;
		}
		/* fall through */
	case FWD_UP:
		arm(f, MISC_INTERVAL_MS);
		if (mosquitto_loop_misc(f->mosq) != MOSQ_ERR_SUCCESS && !f->lost) {
			f->lost = 1;
			f->lost_rc = MOSQ_ERR_KEEPALIVE;
		}
		after_io(f);
		break;
	}
}

/* --- public API ------------------------------------------------------------- */

int hub_forward_new(struct loop *lp, const char *target, struct hub_forward **out)
{
	struct hub_forward *f;
	unsigned char rnd[6];
	char why[300], hex[2 * sizeof(rnd) + 1];

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return EMU_ENOMEM;
	f->lp = lp;
	f->fd = -1;
	f->backoff_ms = BACKOFF_MIN_MS;
	if (hub_forward_parse_target(target, f->host, sizeof(f->host), &f->port, why,
	                             sizeof(why)) != EMU_OK) {
		log_error("forward", "DPSEMU_FORWARD_MQTT: %s", why);
		free(f);
		return EMU_EINVAL;
	}
	/* A client id of its own, so that two emulators on one broker do not
	 * disconnect each other. */
	if (rand_bytes(rnd, sizeof(rnd)) != EMU_OK) {
		free(f);
		return EMU_ECRYPTO;
	}
	hex_encode(rnd, sizeof(rnd), 0, hex);
	snprintf(f->client_id, sizeof(f->client_id), "dpsemu-%s", hex);
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		log_error("forward", "libmosquitto failed to initialise");
		free(f);
		return EMU_EIO;
	}
	f->lib_ready = 1;
	f->numeric = resolve_numeric(f);
	arm(f, 0);
	if (!f->timer) {
		hub_forward_free(f);
		return EMU_ENOMEM;
	}
	log_info("forward", "telemetry is forwarded to mqtt://%s:%d (topic %s{deviceId}, QoS 0)",
	         f->host, f->port, topic_prefix);
	*out = f;
	return EMU_OK;
}

void hub_forward_free(struct hub_forward *f)
{
	if (!f)
		return;
	loop_timer_cancel(f->lp, f->timer);
	f->timer = NULL;
	/* Best effort: libmosquitto writes the DISCONNECT now if the socket takes it. */
	if (f->state == FWD_UP && f->mosq)
		mosquitto_disconnect(f->mosq);
	teardown(f);
	lookup_abandon(f);
	json_decref(f->staged);
	free(f->staged_id);
	log_info("forward", "telemetry forwarding stopped: %llu forwarded, %llu dropped",
	         (unsigned long long)f->stats.forwarded, (unsigned long long)f->stats.dropped);
	if (f->lib_ready)
		mosquitto_lib_cleanup();
	free(f);
}

void hub_forward_stage(struct hub_forward *f, const char *device_id, json_t *msg)
{
	if (!f)
		return;
	json_decref(f->staged);
	free(f->staged_id);
	f->staged = NULL;
	f->staged_id = strdup(device_id);
	if (!f->staged_id) {
		drop(f, device_id, "out of memory");
		return;
	}
	f->staged = json_incref(msg);
}

static void publish(struct hub_forward *f, const char *device_id, const json_t *msg)
{
	const char *module_id = json_string_value(json_object_get(msg, "moduleId"));
	char topic[TOPIC_MAX], text[128];
	char *payload;
	size_t len = 0;
	int rc, err;

	if (f->state != FWD_UP) {
		drop(f, device_id, "not connected to the broker");
		return;
	}
	if (f->backlog >= BACKLOG_MAX) {
		drop(f, device_id, "the broker is not reading fast enough");
		return;
	}
	if (hub_forward_topic(device_id, module_id, topic, sizeof(topic)) != EMU_OK) {
		drop(f, device_id, "the device id does not fit in a topic");
		return;
	}
	payload = hub_forward_envelope(device_id, msg, &len);
	if (!payload) {
		drop(f, device_id, "out of memory");
		return;
	}
	if (len > INT_MAX || f->backlog + len > BACKLOG_MAX) {
		free(payload);
		drop(f, device_id, "the broker is not reading fast enough");
		return;
	}
	/* QoS 0 is written to the socket at once, or queued in libmosquitto when the
	 * socket is full (drained on EPOLLOUT). */
	rc = mosquitto_publish(f->mosq, NULL, topic, (int)len, payload, 0, false);
	err = errno;
	free(payload);
	if (rc != MOSQ_ERR_SUCCESS) {
		drop(f, device_id, mosq_why(rc, err, text, sizeof(text)));
		if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO) {
			f->lost = 1;
			f->lost_rc = rc;
			f->lost_errno = err;
		}
	} else {
		f->stats.forwarded++;
		if (mosquitto_want_write(f->mosq))
			f->backlog += len;
	}
	after_io(f);
}

void hub_forward_commit(struct hub_forward *f, const char *device_id)
{
	json_t *msg;
	char *id;

	if (!f || !f->staged)
		return;
	msg = f->staged;
	id = f->staged_id;
	f->staged = NULL;
	f->staged_id = NULL;
	if (strcmp(id, device_id) == 0)
		publish(f, device_id, msg);
	/* else: left from a transaction that never committed; it was not accepted */
	json_decref(msg);
	free(id);
}

void hub_forward_get_stats(const struct hub_forward *f, struct hub_forward_stats *out)
{
	*out = f->stats;
	out->connected = f->state == FWD_UP;
}
