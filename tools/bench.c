/* bench.c - the client side of `make bench`: times X.509 registrations over MQTT, bare TLS
 * handshakes with the same client certificate, and QoS 1 telemetry, each as a rate.
 *
 *   bench register  --port P --ca CA --certs DIR --count N [--first F] [--jobs J] [--scope S]
 *   bench handshake --port P --ca CA --certs DIR --count N [--jobs J]
 *   bench telemetry --port P --ca CA --certs DIR --count M [--window W] [--hub H]
 *
 * DIR holds dev-0000.pem/.key, dev-0001.pem/.key, ... (leaves issued directly by the
 * enrollment group's root, CN = the file name). register uses dev-(F+i) for the i-th
 * registration (F = --first, 0 by default); handshake uses dev-0000 for every
 * connection; telemetry connects as dev-0000 (registered beforehand). Every certificate
 * is loaded before the clock starts, and every connection is a new TCP connection and a
 * full TLS handshake with no session resumption, so both sides of a ratio pay the same
 * TLS costs.
 *
 * Prints one line: "<mode> ops=N seconds=S rate=R" (ops per second). Exits 0, or 1
 * with a message on stderr when anything fails: a benchmark of errors is no benchmark. */
#include "err.h"
#include "mqtt_codec.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define PROG           "bench"
#define DPS_API        "2019-03-31"
#define HUB_API        "2021-04-12"
#define RES_FILTER     "$dps/registrations/res/#"
#define RES_PREFIX     "$dps/registrations/res/"
#define REGISTER_TOPIC "$dps/registrations/PUT/iotdps-register/?$rid="
#define POLL_TOPIC     "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
#define MAX_JOBS       16
#define MAX_WINDOW     1024
#define MAX_POLLS      50
#define IO_TIMEOUT_S   15
#define READ_CHUNK     16384
#define TOPIC_MAX      512
#define PAYLOAD_MAX    80

struct options {
	const char *mode;
	const char *ca;
	const char *certs;
	const char *scope;
	const char *hub;
	int port;
	int count;
	int jobs;
	int window;
	int first; /* register: index of the first certificate */
};

/* A device credential, loaded before timing. */
struct cred {
	char id[64];
	X509 *cert;
	EVP_PKEY *key;
};

/* One MQTT-over-TLS connection with a read buffer. */
struct conn {
	int fd;
	SSL *ssl;
	struct buf in;
	struct buf out;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cred_load(const char *dir, int i, struct cred *c)
{
	char path[1024];
	FILE *f = NULL;

	snprintf(c->id, sizeof(c->id), "dev-%04d", i);
	snprintf(path, sizeof(path), "%s/%s.pem", dir, c->id);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	c->cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.key", dir, c->id);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	c->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!c->cert || !c->key)
		die("cannot read the certificate or key of %s", c->id);
}

/* One client context: trusts the server CA, verifies the server, never resumes. */
static SSL_CTX *client_ctx(const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		die("cannot load the server CA %s", ca);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	return ctx;
}

/* TCP connect to 127.0.0.1:port and a full TLS handshake presenting c. */
static void conn_open(struct conn *k, SSL_CTX *ctx, int port, const struct cred *c)
{
	struct sockaddr_in sa;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	int one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	k->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (k->fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(k->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect to port %d: %s", port, strerror(errno));
	k->ssl = SSL_new(ctx);
	if (!k->ssl || SSL_use_certificate(k->ssl, c->cert) != 1 ||
	    SSL_use_PrivateKey(k->ssl, c->key) != 1 || SSL_set1_host(k->ssl, "localhost") != 1 ||
	    SSL_set_tlsext_host_name(k->ssl, "localhost") != 1 || SSL_set_fd(k->ssl, k->fd) != 1)
		die("SSL setup failed");
	if (SSL_connect(k->ssl) != 1)
		die("TLS handshake with port %d failed (verify: %s)", port,
		    X509_verify_cert_error_string(SSL_get_verify_result(k->ssl)));
	buf_init(&k->in, 0);
	buf_init(&k->out, 0);
}

/* Sends close_notify and waits for the server to close. With TLS 1.3 SSL_connect returns
 * before the server has checked the client certificate: waiting makes every measured
 * connection include the server's whole handshake and tear-down. */
static void conn_close(struct conn *k)
{
	unsigned char chunk[READ_CHUNK];

	SSL_shutdown(k->ssl);
	while (SSL_read(k->ssl, chunk, sizeof(chunk)) > 0)
		;
	SSL_free(k->ssl);
	close(k->fd);
	buf_free(&k->in);
	buf_free(&k->out);
}

/* Writes and empties k->out. */
static void conn_flush(struct conn *k)
{
	if (k->out.len == 0)
		return;
	if (SSL_write(k->ssl, k->out.data, (int)k->out.len) != (int)k->out.len)
		die("TLS write failed");
	buf_reset(&k->out);
}

/* Reads until one whole packet is buffered; parses it into p. The packet's bytes stay in
 * k->in until the next call (the caller's strings point there). */
static void conn_next(struct conn *k, struct mqtt_packet *p, size_t *used)
{
	unsigned char chunk[READ_CHUNK];
	const char *why = NULL;
	int rc;
	int n;

	if (*used) {
		buf_consume(&k->in, *used);
		*used = 0;
	}
	for (;;) {
		rc = mqtt_parse(k->in.data, k->in.len, 0, p, used, &why);
		if (rc == EMU_OK)
			return;
		if (rc != EMU_EAGAIN)
			die("bad packet from the server: %s", why ? why : emu_strerror(rc));
		n = SSL_read(k->ssl, chunk, sizeof(chunk));
		if (n <= 0)
			die("connection closed or timed out while waiting for a packet");
		if (buf_append(&k->in, chunk, (size_t)n) != EMU_OK)
			die("out of memory");
	}
}

/* CONNECT and wait for an accepting CONNACK. */
static void mqtt_connect(struct conn *k, const char *client_id, const char *username)
{
	struct mqtt_connect c;
	struct mqtt_packet p;
	size_t used = 0;

	memset(&c, 0, sizeof(c));
	c.level = 4;
	c.clean_session = true;
	c.keepalive = 60;
	c.client_id.p = client_id;
	c.client_id.len = (uint16_t)strlen(client_id);
	c.has_username = true;
	c.username.p = username;
	c.username.len = (uint16_t)strlen(username);
	if (mqtt_write_connect(&k->out, &c) != EMU_OK)
		die("cannot encode CONNECT");
	conn_flush(k);
	conn_next(k, &p, &used);
	if (p.type != MQTT_CONNACK || p.connack.rc != MQTT_CONNACK_ACCEPTED)
		die("CONNECT of %s refused (%s rc %d)", client_id, mqtt_type_name(p.type),
		    p.type == MQTT_CONNACK ? p.connack.rc : -1);
	buf_consume(&k->in, used);
}

static void mqtt_disconnect(struct conn *k)
{
	if (mqtt_write_disconnect(&k->out) != EMU_OK)
		die("cannot encode DISCONNECT");
	conn_flush(k);
}

/* Waits for the DPS response to request rid; PUBACKs and SUBACKs on the way are skipped.
 * Returns the status and, for 202, copies the operationId into op. */
static int dps_wait(struct conn *k, unsigned rid, char *op, size_t op_size)
{
	char want[64];
	struct mqtt_packet p;
	size_t used = 0;
	json_t *body = NULL;
	const char *s;
	const char *q;
	int status;

	snprintf(want, sizeof(want), "$rid=%u", rid);
	for (;;) {
		conn_next(k, &p, &used);
		if (p.type != MQTT_PUBLISH)
			continue;
		if (p.publish.qos > 0 && mqtt_write_puback(&k->out, p.packet_id) == EMU_OK)
			conn_flush(k);
		s = p.publish.topic.p;
		if (p.publish.topic.len <= strlen(RES_PREFIX) ||
		    strncmp(s, RES_PREFIX, strlen(RES_PREFIX)) != 0)
			continue;
		q = memmem(s, p.publish.topic.len, want, strlen(want));
		if (!q)
			continue;
		/* "$rid=1" must not match "$rid=12". */
		if ((size_t)(q - s) + strlen(want) < p.publish.topic.len &&
		    s[q - s + (long)strlen(want)] != '&')
			continue;
		break;
	}
	status = (int)strtol(s + strlen(RES_PREFIX), NULL, 10);
	if (status == 202) {
		body = json_loadb((const char *)p.publish.payload, p.publish.payload_len, 0, NULL);
		s = json_string_value(json_object_get(body, "operationId"));
		if (!s)
			die("202 without operationId");
		snprintf(op, op_size, "%s", s);
		json_decref(body);
	} else if (status == 200) {
		body = json_loadb((const char *)p.publish.payload, p.publish.payload_len, 0, NULL);
		s = json_string_value(json_object_get(body, "status"));
		if (!s || strcmp(s, "assigned") != 0)
			die("registration ended with status %s", s ? s : "(none)");
		json_decref(body);
	} else {
		die("DPS answered %d: %.*s", status, (int)p.publish.payload_len,
		    (const char *)p.publish.payload);
	}
	buf_consume(&k->in, used);
	return status;
}

static void dps_publish(struct conn *k, const char *topic, const char *body, uint16_t pid)
{
	if (mqtt_write_publish(&k->out, topic, strlen(topic), body, strlen(body), 1, pid, false,
	                       false) != EMU_OK)
		die("cannot encode PUBLISH");
	conn_flush(k);
}

/* One whole registration: new TLS connection, CONNECT, SUBSCRIBE, register, poll until
 * assigned, DISCONNECT, close. */
static void one_registration(SSL_CTX *ctx, const struct options *o, const struct cred *c)
{
	struct conn k;
	struct mqtt_str filter = {RES_FILTER, sizeof(RES_FILTER) - 1};
	uint8_t qos = 1;
	char user[256];
	char topic[TOPIC_MAX];
	char body[128];
	char op[128] = "";
	unsigned rid = 1;
	int polls = 0;
	int status;

	conn_open(&k, ctx, o->port, c);
	snprintf(user, sizeof(user), "%s/registrations/%s/api-version=" DPS_API, o->scope, c->id);
	mqtt_connect(&k, c->id, user);
	if (mqtt_write_subscribe(&k.out, 1, &filter, &qos, 1) != EMU_OK)
		die("cannot encode SUBSCRIBE");
	conn_flush(&k);
	snprintf(topic, sizeof(topic), REGISTER_TOPIC "%u", rid);
	snprintf(body, sizeof(body), "{\"registrationId\":\"%s\"}", c->id);
	dps_publish(&k, topic, body, 2);
	status = dps_wait(&k, rid, op, sizeof(op));
	while (status == 202) {
		if (++polls > MAX_POLLS)
			die("%s: still not assigned after %d polls", c->id, MAX_POLLS);
		rid++;
		snprintf(topic, sizeof(topic), POLL_TOPIC "%u&operationId=%s", rid, op);
		dps_publish(&k, topic, "", (uint16_t)(rid + 1));
		status = dps_wait(&k, rid, op, sizeof(op));
	}
	mqtt_disconnect(&k);
	conn_close(&k);
}

/* The baseline: the same connection set-up and tear-down without MQTT. */
static void one_handshake(SSL_CTX *ctx, const struct options *o, const struct cred *c)
{
	struct conn k;

	conn_open(&k, ctx, o->port, c);
	conn_close(&k);
}

/* Runs count operations split over o->jobs processes; returns the wall time. */
static double run_jobs(const struct options *o, const struct cred *creds, bool reg)
{
	pid_t pids[MAX_JOBS];
	SSL_CTX *ctx = client_ctx(o->ca);
	double t0 = now_s();
	int status;
	int j;
	int i;
	bool failed = false;

	for (j = 0; j < o->jobs; j++) {
		pids[j] = fork();
		if (pids[j] < 0)
			die("fork: %s", strerror(errno));
		if (pids[j] > 0)
			continue;
		/* Job j takes every jobs-th operation, so registrations stay distinct. */
		for (i = j; i < o->count; i += o->jobs) {
			if (reg)
				one_registration(ctx, o, &creds[i]);
			else
				one_handshake(ctx, o, &creds[0]);
		}
		_exit(0);
	}
	for (j = 0; j < o->jobs; j++) {
		if (waitpid(pids[j], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			failed = true;
	}
	if (failed)
		die("a job failed");
	SSL_CTX_free(ctx);
	return now_s() - t0;
}

/* One connection publishing count QoS 1 messages with at most o->window unacknowledged.
 * Returns the time from the first PUBLISH to the last PUBACK. */
static double run_telemetry(const struct options *o, const struct cred *c)
{
	SSL_CTX *ctx = client_ctx(o->ca);
	struct conn k;
	struct mqtt_packet p;
	char user[256];
	char topic[TOPIC_MAX];
	char payload[PAYLOAD_MAX];
	size_t used = 0;
	int sent = 0;
	int acked = 0;
	int inflight = 0;
	uint16_t pid = 0;
	double t0;

	conn_open(&k, ctx, o->port, c);
	snprintf(user, sizeof(user), "%s/%s/?api-version=" HUB_API, o->hub, c->id);
	mqtt_connect(&k, c->id, user);
	snprintf(topic, sizeof(topic), "devices/%s/messages/events/", c->id);
	t0 = now_s();
	while (acked < o->count) {
		while (sent < o->count && inflight < o->window) {
			snprintf(payload, sizeof(payload),
			         "{\"temperature\":21.5,\"humidity\":40,\"seq\":%010d}", sent);
			pid = (uint16_t)(pid % 65535 + 1);
			if (mqtt_write_publish(&k.out, topic, strlen(topic), payload,
			                       strlen(payload), 1, pid, false, false) != EMU_OK)
				die("cannot encode PUBLISH");
			sent++;
			inflight++;
		}
		conn_flush(&k);
		conn_next(&k, &p, &used);
		if (p.type == MQTT_PUBACK) {
			acked++;
			inflight--;
		}
	}
	t0 = now_s() - t0;
	mqtt_disconnect(&k);
	conn_close(&k);
	SSL_CTX_free(ctx);
	return t0;
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr,
	        "usage: " PROG " register|handshake|telemetry --port P --ca CA --certs DIR\n"
	        "       --count N [--jobs J (register, handshake)] [--window W (telemetry)]\n"
	        "       [--first F (register)] [--scope S] [--hub H]\n");
	exit(2);
}

static int int_arg(const char *s, int lo, int hi)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		usage();
	return (int)v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"port", required_argument, NULL, 'p'},  {"ca", required_argument, NULL, 'a'},
	    {"certs", required_argument, NULL, 'd'}, {"count", required_argument, NULL, 'n'},
	    {"jobs", required_argument, NULL, 'j'},  {"window", required_argument, NULL, 'w'},
	    {"scope", required_argument, NULL, 's'}, {"hub", required_argument, NULL, 'h'},
	    {"first", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
	struct options o = {.scope = "0ne00000000", .hub = "localhost", .jobs = 1, .window = 1};
	struct cred *creds = NULL;
	double secs;
	int ncreds;
	int ch;
	int i;

	if (argc < 2)
		usage();
	o.mode = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			o.port = int_arg(optarg, 1, 65535);
			break;
		case 'a':
			o.ca = optarg;
			break;
		case 'd':
			o.certs = optarg;
			break;
		case 'n':
			o.count = int_arg(optarg, 1, 10000000);
			break;
		case 'j':
			o.jobs = int_arg(optarg, 1, MAX_JOBS);
			break;
		case 'w':
			o.window = int_arg(optarg, 1, MAX_WINDOW);
			break;
		case 's':
			o.scope = optarg;
			break;
		case 'h':
			o.hub = optarg;
			break;
		case 'f':
			o.first = int_arg(optarg, 0, 9999);
			break;
		default:
			usage();
		}
	}
	if (!o.port || !o.ca || !o.certs || !o.count)
		usage();
	ncreds = strcmp(o.mode, "register") == 0 ? o.count : 1;
	creds = calloc((size_t)ncreds, sizeof(*creds));
	if (!creds)
		die("out of memory");
	for (i = 0; i < ncreds; i++)
		cred_load(o.certs, strcmp(o.mode, "register") == 0 ? o.first + i : 0, &creds[i]);

	if (strcmp(o.mode, "register") == 0)
		secs = run_jobs(&o, creds, true);
	else if (strcmp(o.mode, "handshake") == 0)
		secs = run_jobs(&o, creds, false);
	else if (strcmp(o.mode, "telemetry") == 0)
		secs = run_telemetry(&o, &creds[0]);
	else
		usage();
	printf("%s ops=%d seconds=%.3f rate=%.1f\n", o.mode, o.count, secs,
	       secs > 0 ? o.count / secs : 0.0);
	for (i = 0; i < ncreds; i++) {
		X509_free(creds[i].cert);
		EVP_PKEY_free(creds[i].key);
	}
	free(creds);
	return 0;
}
