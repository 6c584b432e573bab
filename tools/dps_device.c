/* dps_device.c - a DPS device client over MQTT (libmosquitto), for tests and the README.
 *
 * Registers one device the way firmware does: MQTT 3.1.1 over TLS with the device's
 * client certificate chain, SUBSCRIBE $dps/registrations/res/#, PUBLISH the register
 * request, then follow 202 + retry-after with operation-status polls until a terminal
 * answer. The final response body goes to stdout as one line of JSON, a human line to
 * stderr.
 *
 * Exit status: 0 assigned, 2 terminal status failed/disabled (or another non-assigned
 * terminal status), 3 the server answered with an error status or refused the
 * connection (CONNACK != 0), 1 anything else (usage, timeout, TLS, lost connection). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG                  "dps-device"
#define RES_PREFIX            "$dps/registrations/res/"
#define RES_FILTER            "$dps/registrations/res/#"
#define REGISTER_TOPIC        "$dps/registrations/PUT/iotdps-register/?$rid="
#define POLL_TOPIC            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
#define DEFAULT_API_VERSION   "2019-03-31"
#define DEFAULT_TIMEOUT_S     30
#define DEFAULT_RETRY_AFTER_S 1
#define MAX_RETRY_AFTER_S     300
#define KEEPALIVE_S           60
#define LOOP_SLICE_MS         100
#define DISCONNECT_GRACE_MS   1000
#define TOPIC_MAX             512
#define RID_MAX               64

enum exit_code {
	EXIT_ASSIGNED = 0,
	EXIT_ERROR = 1,
	EXIT_NOT_ASSIGNED = 2,
	EXIT_SERVER_ERROR = 3,
};

enum body_mode { BODY_JSON, BODY_EMPTY };

struct options {
	const char *host;
	int port;
	const char *ca;
	const char *cert;
	const char *key;
	const char *scope;
	const char *registration_id;
	const char *api_version;
	const char *payload; /* JSON text for the register body's "payload", or NULL */
	enum body_mode body_mode;
	int timeout_s;
	int qos;
	int verbose;
};

/* Where the registration stands; one request is outstanding at a time. */
enum phase {
	PHASE_CONNECTING,  /* waiting for CONNACK */
	PHASE_SUBSCRIBING, /* waiting for SUBACK */
	PHASE_WAITING,     /* a request is out, waiting for its response */
	PHASE_BACKOFF,     /* waiting retry-after before the next poll */
	PHASE_DONE,
};

struct session {
	const struct options *opt;
	enum phase phase;
	int exit_code;
	int connected; /* CONNACK 0 received */
	int sub_mid;
	unsigned int rid_counter;
	char rid[RID_MAX];  /* $rid of the outstanding request */
	char *operation_id; /* from the last 202, used by polls */
	int64_t next_request_ms;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void debug(const struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void debug(const struct session *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->opt->verbose)
		return;
	fputs(PROG ": debug: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Logs what is left in OpenSSL's error queue (e.g. a key or CA file that does not load);
 * handshake failures reach us through libmosquitto's log instead (on_log). */
static void say_openssl_errors(void)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		say("tls: %s", buf);
	}
}

static void finish(struct session *s, int code)
{
	s->phase = PHASE_DONE;
	s->exit_code = code;
}

/* ---- command line ---- */

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: " PROG " --host H --port P --ca CA.pem [--cert CHAIN.pem --key KEY]\n"
	        "         --scope SCOPE --registration-id ID [--api-version V]\n"
	        "         [--payload JSON] [--body-mode json|empty] [--timeout SECONDS]\n"
	        "         [--qos 0|1] [--verbose]\n"
	        "\n"
	        "Registers a device with DPS over MQTT/TLS and prints the final response.\n"
	        "--cert is the client certificate chain (leaf first); without --cert/--key\n"
	        "no client certificate is sent.\n"
	        "exit: 0 assigned, 2 failed/disabled, 3 error response or connection refused,\n"
	        "      1 other errors (timeout, TLS, usage)\n");
}

/* Parses a decimal int in [min, max]. Returns 0, or -1 when text is not one. */
static int parse_int(const char *text, long min, long max, int *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* Returns 0 when path (if given) can be read, else says why and returns -1. */
static int check_readable(const char *option, const char *path)
{
	if (path && access(path, R_OK) != 0) {
		say("%s %s: %s", option, path, strerror(errno));
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"ca", required_argument, NULL, 'a'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"scope", required_argument, NULL, 's'},
	    {"registration-id", required_argument, NULL, 'r'},
	    {"api-version", required_argument, NULL, 'V'},
	    {"payload", required_argument, NULL, 'P'},
	    {"body-mode", required_argument, NULL, 'b'},
	    {"timeout", required_argument, NULL, 't'},
	    {"qos", required_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(opt, 0, sizeof(*opt));
	opt->api_version = DEFAULT_API_VERSION;
	opt->body_mode = BODY_JSON;
	opt->timeout_s = DEFAULT_TIMEOUT_S;
	opt->qos = 1;
	opt->port = -1;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			opt->host = optarg;
			break;
		case 'a':
			opt->ca = optarg;
			break;
		case 'c':
			opt->cert = optarg;
			break;
		case 'k':
			opt->key = optarg;
			break;
		case 's':
			opt->scope = optarg;
			break;
		case 'r':
			opt->registration_id = optarg;
			break;
		case 'V':
			opt->api_version = optarg;
			break;
		case 'P':
			opt->payload = optarg;
			break;
		case 'v':
			opt->verbose = 1;
			break;
		case 'p':
			if (parse_int(optarg, 1, 65535, &opt->port) != 0) {
				say("--port: not a port number: '%s'", optarg);
				return -1;
			}
			break;
		case 't':
			if (parse_int(optarg, 1, 3600, &opt->timeout_s) != 0) {
				say("--timeout: expected 1..3600 seconds, got '%s'", optarg);
				return -1;
			}
			break;
		case 'q':
			if (parse_int(optarg, 0, 1, &opt->qos) != 0) {
				say("--qos: expected 0 or 1, got '%s'", optarg);
				return -1;
			}
			break;
		case 'b':
			if (strcmp(optarg, "json") == 0) {
				opt->body_mode = BODY_JSON;
			} else if (strcmp(optarg, "empty") == 0) {
				opt->body_mode = BODY_EMPTY;
			} else {
				say("--body-mode: expected json or empty, got '%s'", optarg);
				return -1;
			}
			break;
		case 'H':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		say("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (!opt->host || opt->port < 0 || !opt->ca || !opt->scope || !opt->registration_id) {
		say("--host, --port, --ca, --scope and --registration-id are required");
		usage(stderr);
		return -1;
	}
	if ((opt->cert == NULL) != (opt->key == NULL)) {
		say("--cert and --key go together");
		return -1;
	}
	if (opt->payload && opt->body_mode == BODY_EMPTY) {
		say("--payload needs --body-mode json");
		return -1;
	}
	/* libmosquitto only says "invalid arguments" for a file it cannot read. */
	if (check_readable("--ca", opt->ca) != 0 || check_readable("--cert", opt->cert) != 0 ||
	    check_readable("--key", opt->key) != 0)
		return -1;
	return 0;
}

/* ---- requests ---- */

/* The register body: {"registrationId":ID[,"payload":...]}, or NULL for an empty body.
 * Returns 0 and a new string in *out (caller frees), or -1. */
static int build_register_body(const struct options *opt, char **out)
{
	json_t *body = NULL;
	json_t *payload = NULL;
	json_error_t jerr;
	int ret = -1;

	*out = NULL;
	if (opt->body_mode == BODY_EMPTY)
		return 0;
	body = json_object();
	if (!body ||
	    json_object_set_new(body, "registrationId", json_string(opt->registration_id)) != 0)
		goto cleanup;
	if (opt->payload) {
		payload = json_loads(opt->payload, JSON_DECODE_ANY, &jerr);
		if (!payload) {
			say("--payload is not JSON: %s", jerr.text);
			goto cleanup;
		}
		if (json_object_set_new(body, "payload", payload) != 0)
			goto cleanup;
	}
	*out = json_dumps(body, JSON_COMPACT);
	if (*out)
		ret = 0;
cleanup:
	json_decref(body);
	return ret;
}

/* Takes a fresh $rid and publishes topic_prefix + rid [+ suffix] with body. */
static int publish_request(struct mosquitto *mosq, struct session *s, const char *topic_prefix,
                           const char *suffix, const char *body)
{
	char topic[TOPIC_MAX];
	size_t len = body ? strlen(body) : 0;
	int n;
	int rc;

	s->rid_counter++;
	snprintf(s->rid, sizeof(s->rid), "%u", s->rid_counter);
	n = snprintf(topic, sizeof(topic), "%s%s%s", topic_prefix, s->rid, suffix ? suffix : "");
	if (n < 0 || (size_t)n >= sizeof(topic)) {
		say("topic too long");
		return -1;
	}
	if (len > INT_MAX) {
		say("request body too large");
		return -1;
	}
	debug(s, "PUBLISH %s (%zu bytes, qos %d)", topic, len, s->opt->qos);
	rc = mosquitto_publish(mosq, NULL, topic, (int)len, body, s->opt->qos, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("publish failed: %s", mosquitto_strerror(rc));
		return -1;
	}
	s->phase = PHASE_WAITING;
	return 0;
}

static void send_register(struct mosquitto *mosq, struct session *s)
{
	char *body = NULL;

	if (build_register_body(s->opt, &body) != 0 ||
	    publish_request(mosq, s, REGISTER_TOPIC, NULL, body) != 0)
		finish(s, EXIT_ERROR);
	free(body);
}

static void send_poll(struct mosquitto *mosq, struct session *s)
{
	char suffix[TOPIC_MAX];
	int n;

	n = snprintf(suffix, sizeof(suffix), "&operationId=%s", s->operation_id);
	if (n < 0 || (size_t)n >= sizeof(suffix)) {
		say("operationId too long");
		finish(s, EXIT_ERROR);
		return;
	}
	if (publish_request(mosq, s, POLL_TOPIC, suffix, NULL) != 0)
		finish(s, EXIT_ERROR);
}

/* ---- responses ---- */

/* What a response topic says: $dps/registrations/res/{status}/?$rid=..&retry-after=.. */
struct response_topic {
	int status;
	char rid[RID_MAX];
	int has_rid;
	int retry_after_s; /* -1 when absent */
};

/* Parses a response topic. Returns 0, or -1 when topic is not a DPS response. */
static int parse_response_topic(const char *topic, struct response_topic *rt)
{
	const char *p = topic + strlen(RES_PREFIX);
	const char *q;
	char *end = NULL;
	long status;

	memset(rt, 0, sizeof(*rt));
	rt->retry_after_s = -1;
	if (strncmp(topic, RES_PREFIX, strlen(RES_PREFIX)) != 0)
		return -1;
	errno = 0;
	status = strtol(p, &end, 10);
	if (errno != 0 || end == p || status < 100 || status > 999 || strncmp(end, "/?", 2) != 0)
		return -1;
	rt->status = (int)status;
	for (q = end + 2; *q != '\0';) {
		const char *amp = strchr(q, '&');
		size_t pair_len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', pair_len);

		if (eq) {
			size_t key_len = (size_t)(eq - q);
			size_t val_len = pair_len - key_len - 1;

			if (key_len == 4 && strncmp(q, "$rid", 4) == 0 &&
			    val_len < sizeof(rt->rid)) {
				memcpy(rt->rid, eq + 1, val_len);
				rt->rid[val_len] = '\0';
				rt->has_rid = 1;
			} else if (key_len == 11 && strncmp(q, "retry-after", 11) == 0) {
				char num[16];
				int v;

				if (val_len < sizeof(num)) {
					memcpy(num, eq + 1, val_len);
					num[val_len] = '\0';
					if (parse_int(num, 0, MAX_RETRY_AFTER_S, &v) == 0)
						rt->retry_after_s = v;
				}
			}
		}
		q += pair_len;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* Prints the response body as one line on stdout: compact JSON when it parses,
 * otherwise the raw bytes with line breaks flattened. */
static void print_body(const json_t *body, const char *raw, size_t len)
{
	char *text = NULL;
	size_t i;

	if (body)
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text) {
		fputs(text, stdout);
	} else {
		for (i = 0; i < len; i++)
			fputc(raw[i] == '\n' || raw[i] == '\r' ? ' ' : raw[i], stdout);
	}
	fputc('\n', stdout);
	fflush(stdout);
	free(text);
}

static const char *json_str(const json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	return v ? v : "";
}

/* Handles an error response (status >= 300): the body is Azure's error details. */
static void on_error_response(struct session *s, int status, const json_t *body)
{
	json_int_t code = json_integer_value(json_object_get(body, "errorCode"));

	say("server answered %d for %s: errorCode %lld: %s", status, s->opt->registration_id,
	    (long long)code, json_str(body, "message"));
	finish(s, EXIT_SERVER_ERROR);
}

/* Handles a terminal (or pending) operation status. */
static void on_status_response(struct mosquitto *mosq, struct session *s, int status,
                               int retry_after_s, const json_t *body)
{
	const char *op_status = json_str(body, "status");
	const char *op_id = json_string_value(json_object_get(body, "operationId"));
	const json_t *state = json_object_get(body, "registrationState");

	if (status == 202 || strcmp(op_status, "assigning") == 0 ||
	    strcmp(op_status, "registering") == 0) {
		if (op_id && op_id[0] != '\0') {
			free(s->operation_id);
			s->operation_id = strdup(op_id);
		}
		if (!s->operation_id) {
			say("response %d without operationId", status);
			finish(s, EXIT_ERROR);
			return;
		}
		if (retry_after_s < 0)
			retry_after_s = DEFAULT_RETRY_AFTER_S;
		debug(s, "status '%s', polling in %d s", op_status, retry_after_s);
		s->phase = PHASE_BACKOFF;
		s->next_request_ms = now_ms() + (int64_t)retry_after_s * 1000;
		if (retry_after_s == 0)
			send_poll(mosq, s);
		return;
	}
	if (strcmp(op_status, "assigned") == 0) {
		say("%s assigned to %s as device %s", s->opt->registration_id,
		    json_str(state, "assignedHub"), json_str(state, "deviceId"));
		finish(s, EXIT_ASSIGNED);
		return;
	}
	say("%s registration ended with status '%s'%s%s", s->opt->registration_id, op_status,
	    json_object_get(state, "errorMessage") ? ": " : "", json_str(state, "errorMessage"));
	finish(s, EXIT_NOT_ASSIGNED);
}

static void on_message(struct mosquitto *mosq, void *userdata, const struct mosquitto_message *m)
{
	struct session *s = userdata;
	struct response_topic rt;
	json_t *body = NULL;
	json_error_t jerr;
	const char *raw = m->payload ? m->payload : "";
	size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;

	debug(s, "message on %s (%zu bytes)", m->topic, len);
	if (s->phase != PHASE_WAITING)
		return;
	if (parse_response_topic(m->topic, &rt) != 0) {
		debug(s, "ignoring message on %s", m->topic);
		return;
	}
	if (!rt.has_rid || strcmp(rt.rid, s->rid) != 0) {
		debug(s, "ignoring response for $rid '%s' (waiting for '%s')", rt.rid, s->rid);
		return;
	}
	body = json_loadb(raw, len, JSON_DECODE_ANY, &jerr);
	if (rt.status >= 300) {
		print_body(body, raw, len);
		on_error_response(s, rt.status, body);
		goto cleanup;
	}
	if (!json_is_object(body)) {
		print_body(body, raw, len);
		say("response %d body is not a JSON object", rt.status);
		finish(s, EXIT_ERROR);
		goto cleanup;
	}
	on_status_response(mosq, s, rt.status, rt.retry_after_s, body);
	if (s->phase == PHASE_DONE)
		print_body(body, raw, len);
cleanup:
	json_decref(body);
}

/* ---- connection ---- */

static void on_connect(struct mosquitto *mosq, void *userdata, int rc)
{
	struct session *s = userdata;
	int qos = s->opt->qos;
	int err;

	if (rc != 0) {
		say("connection refused: %d (%s)", rc, mosquitto_connack_string(rc));
		finish(s, EXIT_SERVER_ERROR);
		return;
	}
	s->connected = 1;
	debug(s, "connected, subscribing to " RES_FILTER);
	err = mosquitto_subscribe(mosq, &s->sub_mid, RES_FILTER, qos);
	if (err != MOSQ_ERR_SUCCESS) {
		say("subscribe failed: %s", mosquitto_strerror(err));
		finish(s, EXIT_ERROR);
		return;
	}
	s->phase = PHASE_SUBSCRIBING;
}

static void on_subscribe(struct mosquitto *mosq, void *userdata, int mid, int count,
                         const int *granted)
{
	struct session *s = userdata;

	if (s->phase != PHASE_SUBSCRIBING || mid != s->sub_mid)
		return;
	if (count < 1 || granted[0] > 2) {
		say("subscription to " RES_FILTER " refused");
		finish(s, EXIT_SERVER_ERROR);
		return;
	}
	debug(s, "subscribed (granted qos %d)", granted[0]);
	send_register(mosq, s);
}

/* libmosquitto reports TLS failures (e.g. "certificate verify failed") only through its
 * log, so errors are always shown; the rest only with --verbose. */
static void on_log(struct mosquitto *mosq, void *userdata, int level, const char *str)
{
	const struct session *s = userdata;

	if (level & MOSQ_LOG_ERR)
		say("mosquitto: %s", str);
	else
		debug(s, "mosquitto: %s", str);
}

/* Creates the client: client id = registration id, clean session, MQTT 3.1.1, TLS with
 * the server CA and the optional client chain, username per the DPS protocol. */
static struct mosquitto *client_new(const struct options *opt, struct session *s)
{
	struct mosquitto *mosq = NULL;
	char username[TOPIC_MAX];
	int n;
	int rc;

	n = snprintf(username, sizeof(username), "%s/registrations/%s/api-version=%s", opt->scope,
	             opt->registration_id, opt->api_version);
	if (n < 0 || (size_t)n >= sizeof(username)) {
		say("username too long");
		return NULL;
	}
	mosq = mosquitto_new(opt->registration_id, true, s);
	if (!mosq) {
		say("mosquitto_new: %s", strerror(errno));
		return NULL;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	rc = mosquitto_tls_set(mosq, opt->ca, NULL, opt->cert, opt->key, NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_tls_opts_set(mosq, 1, NULL, NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_username_pw_set(mosq, username, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("client setup: %s", mosquitto_strerror(rc));
		say_openssl_errors();
		mosquitto_destroy(mosq);
		return NULL;
	}
	mosquitto_connect_callback_set(mosq, on_connect);
	mosquitto_subscribe_callback_set(mosq, on_subscribe);
	mosquitto_message_callback_set(mosq, on_message);
	mosquitto_log_callback_set(mosq, on_log);
	return mosq;
}

static const char *phase_name(enum phase p)
{
	switch (p) {
	case PHASE_CONNECTING:
		return "CONNACK";
	case PHASE_SUBSCRIBING:
		return "SUBACK";
	case PHASE_WAITING:
		return "a response";
	case PHASE_BACKOFF:
		return "retry-after";
	case PHASE_DONE:
		return "nothing";
	}
	return "?";
}

/* Drives the network until the registration ends or the deadline passes. */
static void run_session(struct mosquitto *mosq, struct session *s)
{
	int64_t deadline = now_ms() + (int64_t)s->opt->timeout_s * 1000;
	int rc;

	while (s->phase != PHASE_DONE) {
		int64_t now = now_ms();
		int64_t wait = LOOP_SLICE_MS;

		if (now >= deadline) {
			say("timed out after %d s waiting for %s", s->opt->timeout_s,
			    phase_name(s->phase));
			finish(s, EXIT_ERROR);
			break;
		}
		if (s->phase == PHASE_BACKOFF) {
			if (now >= s->next_request_ms) {
				send_poll(mosq, s);
				continue;
			}
			if (s->next_request_ms - now < wait)
				wait = s->next_request_ms - now;
		}
		rc = mosquitto_loop(mosq, (int)wait, 1);
		if (rc != MOSQ_ERR_SUCCESS && s->phase != PHASE_DONE) {
			say("connection lost while waiting for %s: %s", phase_name(s->phase),
			    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
			say_openssl_errors();
			finish(s, EXIT_ERROR);
		}
	}
}

/* Sends DISCONNECT and gives the library a moment to flush it. */
static void disconnect_politely(struct mosquitto *mosq)
{
	int64_t until = now_ms() + DISCONNECT_GRACE_MS;

	if (mosquitto_disconnect(mosq) != MOSQ_ERR_SUCCESS)
		return;
	while (now_ms() < until) {
		if (mosquitto_loop(mosq, LOOP_SLICE_MS, 1) != MOSQ_ERR_SUCCESS)
			break;
	}
}

int main(int argc, char **argv)
{
	struct options opt;
	struct session s;
	struct mosquitto *mosq = NULL;
	int rc;

	memset(&s, 0, sizeof(s));
	s.opt = &opt;
	s.exit_code = EXIT_ERROR;
	if (parse_args(argc, argv, &opt) != 0)
		return EXIT_ERROR;

	mosquitto_lib_init();
	mosq = client_new(&opt, &s);
	if (!mosq)
		goto cleanup;
	s.phase = PHASE_CONNECTING;
	debug(&s, "connecting to %s:%d as %s", opt.host, opt.port, opt.registration_id);
	rc = mosquitto_connect(mosq, opt.host, opt.port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("cannot connect to %s:%d: %s", opt.host, opt.port,
		    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		say_openssl_errors();
		goto cleanup;
	}
	run_session(mosq, &s);
	if (s.connected)
		disconnect_politely(mosq);
cleanup:
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	free(s.operation_id);
	return s.exit_code;
}
