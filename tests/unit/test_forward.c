/* Unit tests for hub-sim/forward: target parsing, topics, the envelope, and the
 * client on the real event loop against a small in-process broker (connect,
 * publish, broker gone, reconnect, refusal, a broker that stops reading, a
 * host name resolved in the background). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "mqtt_codec.h"
#include "hub-sim/forward.h"

/* --- target parsing ---------------------------------------------------------- */

static void parse_ok(const char *spec, const char *host, int port)
{
	char h[HUB_FORWARD_HOST_MAX + 1] = "x", why[256] = "";
	int p = -1;

	assert_int_equal(hub_forward_parse_target(spec, h, sizeof(h), &p, why, sizeof(why)),
	                 EMU_OK);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	assert_string_equal(why, "");
}

static void parse_bad(const char *spec, const char *why_part)
{
	char h[HUB_FORWARD_HOST_MAX + 1], why[256] = "";
	int p = -1;

	assert_int_equal(hub_forward_parse_target(spec, h, sizeof(h), &p, why, sizeof(why)),
	                 EMU_EINVAL);
	assert_int_equal(p, -1);
	if (!strstr(why, why_part))
		fail_msg("'%s': reason '%s' lacks '%s'", spec ? spec : "(null)", why, why_part);
}

static void parse_targets(void **state)
{
	char longname[300], h[8];
	int p = 0;

	parse_ok("127.0.0.1:1883", "127.0.0.1", 1883);
	parse_ok("mosquitto:1", "mosquitto", 1);
	parse_ok("broker.example-1.local:65535", "broker.example-1.local", 65535);
	parse_ok("my_broker:8883", "my_broker", 8883);
	parse_ok("[::1]:1883", "::1", 1883);
	parse_ok("[fe80::1:2]:10", "fe80::1:2", 10);

	parse_bad(NULL, "empty");
	parse_bad("", "empty");
	parse_bad("broker", "no port");
	parse_bad(":1883", "no host");
	parse_bad("broker:", "port");
	parse_bad("broker:0", "port");
	parse_bad("broker:65536", "port");
	parse_bad("broker:-1", "port");
	parse_bad("broker:+1", "port");
	parse_bad("broker:18x", "port");
	parse_bad("broker:99999999999999999999", "port");
	parse_bad("::1:1883", "brackets");
	parse_bad("[::1]1883", "[IPv6 address]:port");
	parse_bad("[::1:1883", "[IPv6 address]:port");
	parse_bad("[]:1883", "no host");
	parse_bad("[zz::1]:1883", "invalid character");
	parse_bad("[1::2::3]:1883", "not an IPv6 address");
	parse_bad("mqtt://broker:1883", "brackets"); /* two colons */
	parse_bad("bro ker:1883", "invalid character ' '");
	parse_bad("bro/ker:1883", "invalid character '/'");

	memset(longname, 'a', sizeof(longname));
	snprintf(longname + 254, sizeof(longname) - 254, ":1883");
	parse_bad(longname, "longer than 253");
	/* A valid target that does not fit the caller's buffer. */
	assert_int_equal(hub_forward_parse_target("broker:1", h, 6, &p, NULL, 0), EMU_EINVAL);
	assert_int_equal(hub_forward_parse_target("brok:1", h, 5, &p, NULL, 0), EMU_OK);
	assert_string_equal(h, "brok");
}

/* --- topics ------------------------------------------------------------------- */

static void topics(void **state)
{
	char t[64];

	assert_int_equal(hub_forward_topic("dev-1", NULL, t, sizeof(t)), EMU_OK);
	assert_string_equal(t, "dpsemu/telemetry/dev-1");
	assert_int_equal(hub_forward_topic("dev-1", "", t, sizeof(t)), EMU_OK);
	assert_string_equal(t, "dpsemu/telemetry/dev-1");
	assert_int_equal(hub_forward_topic("dev-1", "mod.a", t, sizeof(t)), EMU_OK);
	assert_string_equal(t, "dpsemu/telemetry/dev-1/mod.a");
	/* Wildcards (and the escape character itself) cannot appear in a topic name. */
	assert_int_equal(hub_forward_topic("a+b#c%d", "m/x$", t, sizeof(t)), EMU_OK);
	assert_string_equal(t, "dpsemu/telemetry/a%2Bb%23c%25d/m%2Fx$");
	/* Exactly fitting, one byte short, nothing at all. */
	assert_int_equal(hub_forward_topic("abc", NULL, t, 21), EMU_OK);
	assert_string_equal(t, "dpsemu/telemetry/abc");
	assert_int_equal(hub_forward_topic("abcd", NULL, t, 21), EMU_ETOOBIG);
	assert_string_equal(t, "");
	assert_int_equal(hub_forward_topic("a+", NULL, t, 21), EMU_ETOOBIG);
	assert_string_equal(t, "");
	assert_int_equal(hub_forward_topic("a", NULL, t, 0), EMU_ETOOBIG);
	assert_int_equal(hub_forward_topic("", NULL, t, sizeof(t)), EMU_EINVAL);
	assert_int_equal(hub_forward_topic(NULL, NULL, t, sizeof(t)), EMU_EINVAL);
}

/* --- the envelope ------------------------------------------------------------- */

/* A message as telemetry.c stores it. */
static json_t *stored_message(int module, int binary)
{
	json_t *m = json_pack("{s:I, s:s}", "sequenceNumber", (json_int_t)7, "enqueuedTimeUtc",
	                      "2026-01-02T03:04:05.1234567Z");

	assert_non_null(m);
	if (module)
		json_object_set_new(m, "moduleId", json_string("mod-1"));
	if (binary) {
		json_object_set_new(m, "body", json_string("/wA="));
		json_object_set_new(m, "bodyEncoding", json_string("base64"));
	} else {
		json_object_set_new(m, "body", json_string("{\"t\":21.5,\"é\":1}"));
	}
	json_object_set_new(m, "properties", json_pack("{s:s}", "alert", "true"));
	json_object_set_new(m, "systemProperties",
	                    json_pack("{s:s}", "contentType", "application/json"));
	return m;
}

static void envelope(void **state)
{
	json_t *m = stored_message(0, 0);
	size_t len = 0;
	char *text = hub_forward_envelope("dev-1", m, &len);

	assert_non_null(text);
	assert_string_equal(text, "{\"deviceId\":\"dev-1\",\"sequenceNumber\":7,"
	                          "\"enqueuedTimeUtc\":\"2026-01-02T03:04:05.1234567Z\","
	                          "\"body\":\"{\\\"t\\\":21.5,\\\"é\\\":1}\","
	                          "\"properties\":{\"alert\":\"true\"},"
	                          "\"systemProperties\":{\"contentType\":\"application/json\"}}");
	assert_int_equal(len, strlen(text));
	free(text);
	/* The stored message is unchanged (the telemetry log keeps it). */
	assert_null(json_object_get(m, "deviceId"));
	assert_int_equal(json_object_size(m), 5);
	json_decref(m);

	m = stored_message(1, 1);
	text = hub_forward_envelope("dev-2", m, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"deviceId\":\"dev-2\",\"moduleId\":\"mod-1\","
	                          "\"sequenceNumber\":7,\"enqueuedTimeUtc\":\"2026-01-02T03:04:05."
	                          "1234567Z\",\"body\":\"/wA=\",\"bodyEncoding\":\"base64\","
	                          "\"properties\":{\"alert\":\"true\"},"
	                          "\"systemProperties\":{\"contentType\":\"application/json\"}}");
	free(text);
	json_decref(m);

	m = json_array();
	assert_null(hub_forward_envelope("dev-1", m, NULL));
	json_decref(m);
	assert_null(hub_forward_envelope("dev-1", NULL, NULL));
}

/* --- an in-process broker on the same loop --------------------------------- */

#define MAX_PUBS 64

struct broker {
	struct loop *lp;
	int lfd, cfd;
	int port;
	struct buf in;
	int connects, disconnects, pingreqs;
	int refuse; /* CONNACK return code to answer with */
	char client_id[64];
	int npubs;
	char *topics[MAX_PUBS];
	char *payloads[MAX_PUBS];
	int qos[MAX_PUBS];
	int retain[MAX_PUBS];
};

static void broker_drop_client(struct broker *b)
{
	if (b->cfd < 0)
		return;
	loop_unwatch(b->lp, b->cfd);
	close(b->cfd);
	b->cfd = -1;
	buf_reset(&b->in);
}

static void send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void broker_packet(struct broker *b, const struct mqtt_packet *pk)
{
	struct buf out;

	buf_init(&out, 0);
	switch (pk->type) {
	case MQTT_CONNECT:
		b->connects++;
		snprintf(b->client_id, sizeof(b->client_id), "%.*s", pk->connect.client_id.len,
		         pk->connect.client_id.p);
		assert_int_equal(mqtt_write_connack(&out, false, b->refuse), EMU_OK);
		break;
	case MQTT_PUBLISH:
		assert_true(b->npubs < MAX_PUBS);
		b->topics[b->npubs] = strndup(pk->publish.topic.p, pk->publish.topic.len);
		b->payloads[b->npubs] =
		    strndup((const char *)pk->publish.payload, pk->publish.payload_len);
		b->qos[b->npubs] = pk->publish.qos;
		b->retain[b->npubs] = pk->publish.retain;
		b->npubs++;
		break;
	case MQTT_PINGREQ:
		b->pingreqs++;
		assert_int_equal(mqtt_write_pingresp(&out), EMU_OK);
		break;
	case MQTT_DISCONNECT:
		b->disconnects++;
		break;
	default:
		fail_msg("unexpected %s from the forwarder", mqtt_type_name(pk->type));
	}
	if (out.len)
		send_all(b->cfd, out.data, out.len);
	buf_free(&out);
}

static void broker_read(void *arg, int fd, uint32_t events)
{
	struct broker *b = arg;
	unsigned char tmp[65536];
	ssize_t n;

	n = read(fd, tmp, sizeof(tmp));
	if (n <= 0) {
		broker_drop_client(b);
		return;
	}
	assert_int_equal(buf_append(&b->in, tmp, (size_t)n), EMU_OK);
	for (;;) {
		struct mqtt_packet pk;
		size_t used = 0;
		const char *why = NULL;
		int rc = mqtt_parse((const uint8_t *)b->in.data, b->in.len, 0, &pk, &used, &why);

		if (rc == EMU_EAGAIN)
			break;
		assert_int_equal(rc, EMU_OK);
		broker_packet(b, &pk);
		if (b->cfd < 0)
			return;
		buf_consume(&b->in, used);
		if (pk.type == MQTT_DISCONNECT || b->refuse) {
			broker_drop_client(b);
			return;
		}
	}
}

static void broker_accept(void *arg, int fd, uint32_t events)
{
	struct broker *b = arg;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (c < 0)
		return;
	broker_drop_client(b); /* one client at a time, like a broker with one id */
	b->cfd = c;
	assert_int_equal(loop_watch(b->lp, c, EPOLLIN, broker_read, b), EMU_OK);
}

static void broker_listen(struct broker *b, struct loop *lp, int port)
{
	struct sockaddr_in sa;
	socklen_t slen = sizeof(sa);
	int one = 1;

	memset(b, 0, sizeof(*b));
	b->lp = lp;
	b->cfd = -1;
	buf_init(&b->in, 0);
	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(b->lfd >= 0);
	setsockopt(b->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(b->lfd, 8), 0);
	assert_int_equal(getsockname(b->lfd, (struct sockaddr *)&sa, &slen), 0);
	b->port = ntohs(sa.sin_port);
	assert_int_equal(loop_watch(lp, b->lfd, EPOLLIN, broker_accept, b), EMU_OK);
}

static void broker_close(struct broker *b)
{
	broker_drop_client(b);
	if (b->lfd >= 0) {
		loop_unwatch(b->lp, b->lfd);
		close(b->lfd);
		b->lfd = -1;
	}
	for (int i = 0; i < b->npubs; i++) {
		free(b->topics[i]);
		free(b->payloads[i]);
	}
	b->npubs = 0;
	buf_free(&b->in);
}

/* --- running the loop until something happens ------------------------------ */

typedef int (*cond_fn)(void *arg);

struct waiter {
	struct loop *lp;
	cond_fn cond;
	void *arg;
	uint64_t deadline;
	int met;
};

static void waiter_tick(void *arg)
{
	struct waiter *w = arg;

	if (w->cond(w->arg)) {
		w->met = 1;
		loop_stop(w->lp);
	} else if (clock_mono_ms() >= w->deadline) {
		loop_stop(w->lp);
	} else {
		assert_non_null(loop_timer_add(w->lp, 5, waiter_tick, w));
	}
}

/* Runs the loop until cond(arg) or timeout_ms; returns whether cond was met. */
static int run_until(struct loop *lp, cond_fn cond, void *arg, uint64_t timeout_ms)
{
	struct waiter w = {lp, cond, arg, clock_mono_ms() + timeout_ms, 0};

	assert_non_null(loop_timer_add(lp, 0, waiter_tick, &w));
	assert_int_equal(loop_run(lp), EMU_OK);
	return w.met;
}

struct fwd_ctx {
	struct hub_forward *f;
	struct broker *b;
	uint64_t n; /* target value */
};

static struct hub_forward_stats stats_of(struct hub_forward *f)
{
	struct hub_forward_stats s;

	hub_forward_get_stats(f, &s);
	return s;
}

static int is_connected(void *arg)
{
	struct fwd_ctx *c = arg;
	return stats_of(c->f).connected && stats_of(c->f).connects >= c->n;
}

static int is_disconnected(void *arg)
{
	struct fwd_ctx *c = arg;
	return !stats_of(c->f).connected;
}

static int has_pubs(void *arg)
{
	struct fwd_ctx *c = arg;
	return (uint64_t)c->b->npubs >= c->n;
}

static int has_attempts(void *arg)
{
	struct fwd_ctx *c = arg;
	return stats_of(c->f).attempts >= c->n;
}

static int broker_disconnected(void *arg)
{
	struct fwd_ctx *c = arg;
	return c->b->cfd < 0 && (c->b->disconnects > 0 || c->n == 0);
}

static void forward_one(struct hub_forward *f, const char *device_id, json_t *msg)
{
	hub_forward_stage(f, device_id, msg);
	hub_forward_commit(f, device_id);
}

static void forward_round_trip(void **state)
{
	struct loop *lp = NULL;
	struct hub_forward *f = NULL;
	struct broker b;
	struct fwd_ctx c;
	char target[64];
	json_t *m = stored_message(0, 0), *got;
	struct hub_forward_stats s;
	int port;

	assert_int_equal(loop_new(&lp), EMU_OK);
	broker_listen(&b, lp, 0);
	snprintf(target, sizeof(target), "127.0.0.1:%d", b.port);
	assert_int_equal(hub_forward_new(lp, target, &f), EMU_OK);
	c = (struct fwd_ctx){f, &b, 1};
	assert_true(run_until(lp, is_connected, &c, 5000));
	assert_int_equal(b.connects, 1);
	assert_int_equal(strncmp(b.client_id, "dpsemu-", 7), 0);
	assert_int_equal(strlen(b.client_id), 7 + 12);

	/* A committed message arrives as its envelope, QoS 0, not retained. */
	forward_one(f, "dev-1", m);
	c.n = 1;
	assert_true(run_until(lp, has_pubs, &c, 5000));
	assert_string_equal(b.topics[0], "dpsemu/telemetry/dev-1");
	assert_int_equal(b.qos[0], 0);
	assert_int_equal(b.retain[0], 0);
	got = json_loads(b.payloads[0], 0, NULL);
	assert_non_null(got);
	assert_string_equal(json_string_value(json_object_get(got, "deviceId")), "dev-1");
	json_object_del(got, "deviceId");
	assert_true(json_equal(got, m));
	json_decref(got);

	/* Staged but never committed (an aborted transaction): replaced, not sent. */
	hub_forward_stage(f, "dev-aborted", m);
	forward_one(f, "dev-2", m);
	hub_forward_commit(f, "dev-2"); /* nothing staged any more: no second copy */
	c.n = 2;
	assert_true(run_until(lp, has_pubs, &c, 5000));
	assert_string_equal(b.topics[1], "dpsemu/telemetry/dev-2");
	assert_false(run_until(lp, has_pubs, &(struct fwd_ctx){f, &b, 3}, 100));
	hub_forward_commit(NULL, "dev-2"); /* no forwarder: nothing to do */
	hub_forward_stage(NULL, "dev-2", m);

	/* The broker goes away: messages are dropped (counted) until it is back. */
	port = b.port;
	broker_close(&b);
	c.n = 0;
	assert_true(run_until(lp, is_disconnected, &c, 5000));
	forward_one(f, "dev-1", m);
	forward_one(f, "dev-1", m);
	s = stats_of(f);
	assert_int_equal(s.forwarded, 2);
	assert_int_equal(s.dropped, 2);
	assert_int_equal(s.connected, 0);
	/* It keeps trying in the background... */
	c.n = s.attempts + 2;
	assert_true(run_until(lp, has_attempts, &c, 5000));
	/* ...and reconnects once the broker is back on the same port. */
	broker_listen(&b, lp, port);
	c.n = 2;
	assert_true(run_until(lp, is_connected, &c, 8000));
	forward_one(f, "dev-3", m);
	c.n = 1;
	assert_true(run_until(lp, has_pubs, &c, 5000));
	assert_string_equal(b.topics[0], "dpsemu/telemetry/dev-3");
	s = stats_of(f);
	assert_int_equal(s.forwarded, 3);
	assert_int_equal(s.dropped, 2);
	assert_int_equal(s.connects, 2);

	/* Shutting down says goodbye to the broker. */
	hub_forward_free(f);
	c.n = 1;
	assert_true(run_until(lp, broker_disconnected, &c, 5000));
	assert_int_equal(b.disconnects, 1);
	broker_close(&b);
	json_decref(m);
	loop_free(lp);
}

static void forward_refused(void **state)
{
	struct loop *lp = NULL;
	struct hub_forward *f = NULL;
	struct broker b;
	struct fwd_ctx c;
	char target[64];
	json_t *m = stored_message(0, 0);
	struct hub_forward_stats s;

	assert_int_equal(loop_new(&lp), EMU_OK);
	broker_listen(&b, lp, 0);
	b.refuse = MQTT_CONNACK_NOT_AUTHORIZED;
	snprintf(target, sizeof(target), "127.0.0.1:%d", b.port);
	assert_int_equal(hub_forward_new(lp, target, &f), EMU_OK);
	c = (struct fwd_ctx){f, &b, 2};
	assert_true(run_until(lp, has_attempts, &c, 5000));
	assert_true(b.connects >= 1);
	forward_one(f, "dev-1", m);
	s = stats_of(f);
	assert_int_equal(s.connects, 0);
	assert_int_equal(s.connected, 0);
	assert_int_equal(s.forwarded, 0);
	assert_int_equal(s.dropped, 1);
	/* Accepted from the next attempt on. */
	b.refuse = 0;
	c.n = 1;
	assert_true(run_until(lp, is_connected, &c, 8000));
	hub_forward_free(f);
	broker_close(&b);
	json_decref(m);
	loop_free(lp);
}

static void forward_broker_down(void **state)
{
	struct loop *lp = NULL;
	struct hub_forward *f = NULL;
	struct broker b;
	struct fwd_ctx c;
	char target[64];
	json_t *m = stored_message(0, 0);
	uint64_t t0;

	/* A port nobody listens on. */
	assert_int_equal(loop_new(&lp), EMU_OK);
	broker_listen(&b, lp, 0);
	snprintf(target, sizeof(target), "127.0.0.1:%d", b.port);
	broker_close(&b);
	assert_int_equal(hub_forward_new(lp, target, &f), EMU_OK);
	c = (struct fwd_ctx){f, NULL, 3};
	assert_true(run_until(lp, has_attempts, &c, 5000));
	t0 = clock_mono_ms();
	for (int i = 0; i < 1000; i++)
		forward_one(f, "dev-1", m);
	assert_true(clock_mono_ms() - t0 < 1000);
	assert_int_equal(stats_of(f).dropped, 1000);
	assert_int_equal(stats_of(f).forwarded, 0);
	hub_forward_free(f);
	json_decref(m);
	loop_free(lp);

	/* Bad targets are refused at creation. */
	assert_int_equal(loop_new(&lp), EMU_OK);
	f = (struct hub_forward *)1;
	assert_int_equal(hub_forward_new(lp, "no-port", &f), EMU_EINVAL);
	assert_null(f);
	hub_forward_free(NULL);
	loop_free(lp);
}

static void forward_slow_broker(void **state)
{
	struct loop *lp = NULL;
	struct hub_forward *f = NULL;
	struct broker b;
	struct fwd_ctx c;
	char target[64], *big;
	json_t *m = stored_message(0, 0);
	struct hub_forward_stats s;
	uint64_t t0;
	size_t n = 200 * 1024;
	int small = 4096;

	assert_int_equal(loop_new(&lp), EMU_OK);
	broker_listen(&b, lp, 0);
	/* A small receive window (inherited by the accepted socket), so a broker
	 * that does not read fills up fast. */
	setsockopt(b.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	snprintf(target, sizeof(target), "127.0.0.1:%d", b.port);
	assert_int_equal(hub_forward_new(lp, target, &f), EMU_OK);
	c = (struct fwd_ctx){f, &b, 1};
	assert_true(run_until(lp, is_connected, &c, 5000));
	/* The broker stops reading: the forwarder neither blocks nor queues
	 * without bound; past the backlog limit messages are dropped. */
	loop_unwatch(lp, b.cfd);
	big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	json_object_set_new(m, "body", json_string(big));
	free(big);
	t0 = clock_mono_ms();
	for (int i = 0; i < 200; i++)
		forward_one(f, "dev-1", m);
	assert_true(clock_mono_ms() - t0 < 2000);
	s = stats_of(f);
	assert_int_equal(s.forwarded + s.dropped, 200);
	assert_true(s.forwarded > 0);
	assert_true(s.dropped > 0);
	assert_int_equal(s.connected, 1);
	hub_forward_free(f);
	broker_close(&b);
	json_decref(m);
	loop_free(lp);
}

static void forward_host_name(void **state)
{
	struct loop *lp = NULL;
	struct hub_forward *f = NULL;
	struct broker b;
	struct fwd_ctx c;
	char target[64];
	json_t *m = stored_message(0, 0);

	/* "localhost" goes through the background lookup; it may list ::1 first,
	 * where nothing listens: the next address is tried. */
	assert_int_equal(loop_new(&lp), EMU_OK);
	broker_listen(&b, lp, 0);
	snprintf(target, sizeof(target), "localhost:%d", b.port);
	assert_int_equal(hub_forward_new(lp, target, &f), EMU_OK);
	c = (struct fwd_ctx){f, &b, 1};
	assert_true(run_until(lp, is_connected, &c, 8000));
	forward_one(f, "dev-1", m);
	assert_true(run_until(lp, has_pubs, &c, 5000));
	assert_string_equal(b.topics[0], "dpsemu/telemetry/dev-1");
	hub_forward_free(f);
	broker_close(&b);
	json_decref(m);
	loop_free(lp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_targets),
	    cmocka_unit_test(topics),
	    cmocka_unit_test(envelope),
	    cmocka_unit_test(forward_round_trip),
	    cmocka_unit_test(forward_refused),
	    cmocka_unit_test(forward_broker_down),
	    cmocka_unit_test(forward_slow_broker),
	    cmocka_unit_test(forward_host_name),
	};

	signal(SIGPIPE, SIG_IGN); /* as the daemon does: a closed broker is an error code */
	log_set_level(LOG_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
