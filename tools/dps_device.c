/* dps_device.c - a DPS device client over MQTT (libmosquitto), for tests and the README.
 *
 * Registers one device the way firmware does: MQTT 3.1.1 over TLS with the device's
 * client certificate chain, SUBSCRIBE $dps/registrations/res/#, PUBLISH the register
 * request, then follow 202 + retry-after with operation-status polls until a terminal
 * answer. The final response body goes to stdout as one line of JSON, a human line to
 * stderr.
 *
 * First boot (--csr-key-type): the device generates a fresh key, sends a CSR for it with
 * the registration (authenticating with its bootstrap certificate), and saves the key and
 * the certificate chain DPS issued in --out-dir. --hub-check then connects to the
 * assigned hub with the issued certificate (or, without a CSR, with --cert) and sends one
 * telemetry message, proving the credentials work.
 *
 * Exit status: 0 assigned (and, with --hub-check, the message was acknowledged), 2
 * terminal status failed/disabled (or another non-assigned terminal status), 3 the server
 * answered with an error status or refused the connection (CONNACK != 0), 4 the hub
 * refused the device (--hub-check), 1 anything else (usage, timeout, TLS, lost connection,
 * an unusable issued certificate). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <mosquitto.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG                  "dps-device"
#define RES_PREFIX            "$dps/registrations/res/"
#define RES_FILTER            "$dps/registrations/res/#"
#define REGISTER_TOPIC        "$dps/registrations/PUT/iotdps-register/?$rid="
#define POLL_TOPIC            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
#define DEFAULT_API_VERSION   "2019-03-31"
#define CSR_API_VERSION       "2025-07-01-preview" /* the first that takes "csr" */
#define HUB_API_VERSION       "2021-04-12"
#define DEFAULT_MESSAGE       "{\"firstBoot\":true}"
#define CHAIN_MAX             8     /* certificates accepted in issuedCertificateChain */
#define CERT_B64_MAX          16384 /* characters of one base64 certificate */
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
	EXIT_HUB_REFUSED = 4,
};

enum body_mode { BODY_JSON, BODY_EMPTY };

/* The key a first-boot device generates for its CSR. */
enum csr_key { CSR_NONE, CSR_P256, CSR_P384, CSR_RSA2048 };

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
	enum csr_key csr_key; /* CSR_NONE: no certificate is requested */
	const char *out_dir;  /* where the issued credentials go */
	int hub_check;
	const char *hub_host; /* where the hub answers: --hub-host, default --host */
	int hub_port;         /* --hub-port, default --port */
	const char *message; /* telemetry body for --hub-check */
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
	const char *csr_b64; /* the register body's "csr", or NULL */
	json_t *result;      /* the final answer when assigned */
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

static void debug(const struct options *opt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void debug(const struct options *opt, const char *fmt, ...)
{
	va_list ap;

	if (!opt->verbose)
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
	        "         [--csr-key-type p256|p384|rsa2048 | --csr] [--out-dir DIR]\n"
	        "         [--hub-check [--hub-host H] [--hub-port P] [--message TEXT]]\n"
	        "\n"
	        "Registers a device with DPS over MQTT/TLS and prints the final response.\n"
	        "--cert is the client certificate chain (leaf first); without --cert/--key\n"
	        "no client certificate is sent.\n"
	        "\n"
	        "First boot: --csr-key-type generates a new key (--csr: p384), sends a CSR with\n"
	        "CN = the registration ID (api-version " CSR_API_VERSION " unless --api-version\n"
	        "says otherwise) and, once assigned, writes DIR/device.key (mode 0600),\n"
	        "DIR/device.pem (the issued certificate) and DIR/device-chain.pem (certificate,\n"
	        "issuing CA, root). --out-dir is required with a CSR.\n"
	        "--hub-check: after the assignment, connects to the assigned hub (at --hub-host\n"
	        "--hub-port, which default to --host --port: DPS and hub share them unless they\n"
	        "run apart) as the device, with the issued certificate (or --cert without a CSR),\n"
	        "and sends one telemetry message at QoS 1 (--message, default " DEFAULT_MESSAGE
	        ").\n"
	        "\n"
	        "exit: 0 assigned (and the hub acknowledged the message), 2 failed/disabled,\n"
	        "      3 error response or connection refused, 4 the hub refused the device,\n"
	        "      1 other errors (timeout, TLS, usage, unusable issued certificate)\n");
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

static int parse_csr_key(const char *text, enum csr_key *out)
{
	if (strcmp(text, "p256") == 0)
		*out = CSR_P256;
	else if (strcmp(text, "p384") == 0)
		*out = CSR_P384;
	else if (strcmp(text, "rsa2048") == 0)
		*out = CSR_RSA2048;
	else
		return -1;
	return 0;
}

/* mkdir -p: creates dir and its missing parents (mode 0700). Returns 0 or -1 with errno. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	size_t i;

	if (len == 0 || len >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		if (i < len)
			path[i] = '/';
	}
	return 0;
}

/* Creates dir unless it exists and checks it can be written: checked before registering,
 * since a certificate whose key cannot be kept is lost. */
static int prepare_out_dir(const char *dir)
{
	struct stat st;

	if (make_dirs(dir) != 0) {
		say("--out-dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		say("--out-dir %s: not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		say("--out-dir %s: %s", dir, strerror(errno));
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
	    {"csr-key-type", required_argument, NULL, 'K'},
	    {"csr", no_argument, NULL, 'C'},
	    {"out-dir", required_argument, NULL, 'o'},
	    {"hub-check", no_argument, NULL, 'u'},
	    {"hub-host", required_argument, NULL, 'g'},
	    {"hub-port", required_argument, NULL, 'G'},
	    {"message", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	int api_version_set = 0;
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
			api_version_set = 1;
			break;
		case 'P':
			opt->payload = optarg;
			break;
		case 'v':
			opt->verbose = 1;
			break;
		case 'K':
			if (parse_csr_key(optarg, &opt->csr_key) != 0) {
				say("--csr-key-type: expected p256, p384 or rsa2048, got '%s'",
				    optarg);
				return -1;
			}
			break;
		case 'C':
			/* P-384: the one key type every DPS accepts in a CSR. */
			opt->csr_key = CSR_P384;
			break;
		case 'o':
			opt->out_dir = optarg;
			break;
		case 'u':
			opt->hub_check = 1;
			break;
		case 'g':
			opt->hub_host = optarg;
			break;
		case 'G':
			if (parse_int(optarg, 1, 65535, &opt->hub_port) != 0) {
				say("--hub-port: '%s' is not a port number", optarg);
				return -1;
			}
			break;
		case 'm':
			opt->message = optarg;
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
	if (opt->csr_key != CSR_NONE) {
		if (opt->body_mode == BODY_EMPTY) {
			say("a CSR travels in the register body: it needs --body-mode json");
			return -1;
		}
		if (!opt->out_dir) {
			say("--csr-key-type needs --out-dir for the key and the issued "
			    "certificate");
			return -1;
		}
		if (!api_version_set)
			opt->api_version = CSR_API_VERSION;
	} else if (opt->out_dir) {
		say("--out-dir is only used with --csr-key-type");
		return -1;
	}
	if (opt->hub_check && opt->csr_key == CSR_NONE && !opt->cert) {
		say("--hub-check needs a certificate: --csr-key-type, or --cert and --key");
		return -1;
	}
	if ((opt->hub_host || opt->hub_port) && !opt->hub_check) {
		say("--hub-host and --hub-port need --hub-check");
		return -1;
	}
	if (opt->message && !opt->hub_check) {
		say("--message needs --hub-check");
		return -1;
	}
	if (!opt->message)
		opt->message = DEFAULT_MESSAGE;
	/* libmosquitto only says "invalid arguments" for a file it cannot read. */
	if (check_readable("--ca", opt->ca) != 0 || check_readable("--cert", opt->cert) != 0 ||
	    check_readable("--key", opt->key) != 0)
		return -1;
	return opt->out_dir ? prepare_out_dir(opt->out_dir) : 0;
}

/* ---- requests ---- */

/* The register body: {"registrationId":ID[,"payload":...][,"csr":...]}, or NULL for an
 * empty body. csr_b64 may be NULL. Returns 0 and a new string in *out (caller frees),
 * or -1. */
static int build_register_body(const struct options *opt, const char *csr_b64, char **out)
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
	if (csr_b64 && json_object_set_new(body, "csr", json_string(csr_b64)) != 0)
		goto cleanup;
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
	debug(s->opt, "PUBLISH %s (%zu bytes, qos %d)", topic, len, s->opt->qos);
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

	if (build_register_body(s->opt, s->csr_b64, &body) != 0 ||
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
                               int retry_after_s, json_t *body)
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
		debug(s->opt, "status '%s', polling in %d s", op_status, retry_after_s);
		s->phase = PHASE_BACKOFF;
		s->next_request_ms = now_ms() + (int64_t)retry_after_s * 1000;
		if (retry_after_s == 0)
			send_poll(mosq, s);
		return;
	}
	if (strcmp(op_status, "assigned") == 0) {
		say("%s assigned to %s as device %s", s->opt->registration_id,
		    json_str(state, "assignedHub"), json_str(state, "deviceId"));
		s->result = json_incref(body);
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

	debug(s->opt, "message on %s (%zu bytes)", m->topic, len);
	if (s->phase != PHASE_WAITING)
		return;
	if (parse_response_topic(m->topic, &rt) != 0) {
		debug(s->opt, "ignoring message on %s", m->topic);
		return;
	}
	if (!rt.has_rid || strcmp(rt.rid, s->rid) != 0) {
		debug(s->opt, "ignoring response for $rid '%s' (waiting for '%s')", rt.rid, s->rid);
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
	debug(s->opt, "connected, subscribing to " RES_FILTER);
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
	debug(s->opt, "subscribed (granted qos %d)", granted[0]);
	send_register(mosq, s);
}

/* libmosquitto reports TLS failures (e.g. "certificate verify failed") only through its
 * log, so errors are always shown; the rest only with --verbose. */
static void log_mosquitto(const struct options *opt, int level, const char *str)
{
	if (level & MOSQ_LOG_ERR)
		say("mosquitto: %s", str);
	else
		debug(opt, "mosquitto: %s", str);
}

static void on_log(struct mosquitto *mosq, void *userdata, int level, const char *str)
{
	const struct session *s = userdata;

	log_mosquitto(s->opt, level, str);
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

/* ---- first boot: key, CSR, issued credentials ---- */

static const char *csr_key_name(enum csr_key k)
{
	switch (k) {
	case CSR_P256:
		return "EC P-256";
	case CSR_P384:
		return "EC P-384";
	case CSR_RSA2048:
		return "RSA 2048";
	case CSR_NONE:
		break;
	}
	return "none";
}

/* A fresh key of the requested type, or NULL after saying why. */
static EVP_PKEY *generate_key(enum csr_key type)
{
	EVP_PKEY *key = NULL;

	switch (type) {
	case CSR_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case CSR_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CSR_RSA2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case CSR_NONE:
		break;
	}
	if (!key) {
		say("cannot generate a %s key", csr_key_name(type));
		say_openssl_errors();
	}
	return key;
}

/* Base64 of der without line breaks (the form DPS takes and gives), or NULL. */
static char *b64_of(const unsigned char *der, int len)
{
	char *out = NULL;

	if (len <= 0 || len > INT_MAX / 4 - 4)
		return NULL;
	out = malloc((size_t)(len + 2) / 3 * 4 + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, der, len);
	return out;
}

/* The "csr" of the register body: base64 of a DER PKCS#10 request for key with subject
 * CN = cn, signed with SHA-384 for P-384 (the digest that matches the curve) and SHA-256
 * otherwise. Returns a new string (caller frees) or NULL after saying why. */
static char *build_csr_b64(EVP_PKEY *key, enum csr_key type, const char *cn)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	unsigned char *der = NULL;
	char *b64 = NULL;
	int len;

	req = X509_REQ_new();
	name = X509_NAME_new();
	if (!req || !name || !X509_REQ_set_version(req, X509_REQ_VERSION_1))
		goto cleanup;
	/* OpenSSL refuses a CN over 64 characters here, as DPS would. */
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
	                                -1, 0)) {
		say("'%s' cannot be a certificate subject CN (at most 64 characters)", cn);
		goto cleanup;
	}
	if (!X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key) ||
	    !X509_REQ_sign(req, key, type == CSR_P384 ? EVP_sha384() : EVP_sha256()))
		goto cleanup;
	len = i2d_X509_REQ(req, &der);
	b64 = b64_of(der, len);
cleanup:
	if (!b64) {
		say("cannot build the CSR");
		say_openssl_errors();
	}
	OPENSSL_free(der);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return b64;
}

/* One certificate from base64 DER (no line breaks, padded), or NULL. */
static X509 *cert_from_b64(const char *b64)
{
	size_t len = strlen(b64);
	size_t pad = 0;
	unsigned char *der = NULL;
	const unsigned char *p;
	X509 *x = NULL;
	int n;

	if (len == 0 || len > CERT_B64_MAX || len % 4 != 0)
		return NULL;
	while (pad < 2 && b64[len - 1 - pad] == '=')
		pad++;
	der = malloc(len / 4 * 3);
	if (!der)
		return NULL;
	/* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
	n = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)len);
	if (n < 0 || (size_t)n < pad)
		goto cleanup;
	n -= (int)pad;
	p = der;
	x = d2i_X509(NULL, &p, n);
	if (x && p != der + n) {
		X509_free(x);
		x = NULL;
	}
cleanup:
	free(der);
	return x;
}

/* The registration state's issuedCertificateChain, decoded. Returns a new stack (caller
 * frees with sk_X509_pop_free) or NULL after saying why. */
static STACK_OF(X509) *decode_issued_chain(const json_t *state)
{
	const json_t *arr = json_object_get(state, "issuedCertificateChain");
	STACK_OF(X509) *chain = NULL;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		say("the assigned answer has no issuedCertificateChain: no certificate was issued");
		return NULL;
	}
	if (json_array_size(arr) > CHAIN_MAX) {
		say("issuedCertificateChain has %zu certificates (at most %d expected)",
		    json_array_size(arr), CHAIN_MAX);
		return NULL;
	}
	chain = sk_X509_new_null();
	if (!chain)
		return NULL;
	for (i = 0; i < json_array_size(arr); i++) {
		const char *b64 = json_string_value(json_array_get(arr, i));
		X509 *x = b64 ? cert_from_b64(b64) : NULL;

		if (!x || !sk_X509_push(chain, x)) {
			say("issuedCertificateChain[%zu] is not a base64 DER certificate", i);
			X509_free(x);
			sk_X509_pop_free(chain, X509_free);
			return NULL;
		}
	}
	return chain;
}

static int is_self_signed(X509 *x)
{
	return (X509_get_extension_flags(x) & EXFLAG_SS) != 0;
}

/* What a device checks before it relies on what it was given: the leaf is for its own
 * key, and each certificate is signed by the next one, the last by itself. Returns 0, or
 * -1 after saying why. */
static int check_issued_chain(STACK_OF(X509) *chain, EVP_PKEY *key)
{
	int n = sk_X509_num(chain);
	int i;

	if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(chain, 0)), key) != 1) {
		say("the issued certificate is not for the key this device generated");
		return -1;
	}
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		X509 *issuer = i + 1 < n ? sk_X509_value(chain, i + 1) : x;
		EVP_PKEY *pk = X509_get0_pubkey(issuer);

		if (!pk || X509_verify(x, pk) != 1) {
			if (i + 1 < n)
				say("issuedCertificateChain[%d] is not signed by the certificate "
				    "after it",
				    i);
			else
				say("issuedCertificateChain ends with a certificate that is not "
				    "self-signed");
			ERR_clear_error();
			return -1;
		}
	}
	return 0;
}

/* Writes len bytes to dir/name through a temporary file renamed into place, so a reader
 * never sees half a key. Returns 0, or -1 after saying why. */
static int write_file(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
	char path[PATH_MAX];
	char tmp[PATH_MAX];
	const char *p = data;
	int fd = -1;
	int ret = -1;
	int n1 = snprintf(path, sizeof(path), "%s/%s", dir, name);
	int n2 = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);

	if (n1 < 0 || (size_t)n1 >= sizeof(path) || n2 < 0 || (size_t)n2 >= sizeof(tmp)) {
		say("%s/%s: path too long", dir, name);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	/* A temporary file left by an earlier run may carry other permissions. */
	if (fd < 0 || fchmod(fd, mode) != 0)
		goto cleanup;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto cleanup;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto cleanup;
	ret = close(fd);
	fd = -1;
	if (ret == 0)
		ret = rename(tmp, path);
cleanup:
	if (ret != 0) {
		say("%s: %s", path, strerror(errno));
		unlink(tmp);
	}
	if (fd >= 0)
		close(fd);
	return ret == 0 ? 0 : -1;
}

/* Writes what a memory BIO holds to dir/name. */
static int write_bio(const char *dir, const char *name, BIO *mem, mode_t mode)
{
	char *data = NULL;
	long len = BIO_get_mem_data(mem, &data);

	if (len <= 0 || !data) {
		say("%s/%s: nothing to write", dir, name);
		return -1;
	}
	return write_file(dir, name, data, (size_t)len, mode);
}

/* Saves the device's credentials in dir: device.key (PKCS#8, 0600), device.pem (the
 * issued certificate) and device-chain.pem (the whole issued chain). */
static int save_credentials(const char *dir, EVP_PKEY *key, STACK_OF(X509) *chain)
{
	BIO *key_pem = BIO_new(BIO_s_mem());
	BIO *leaf_pem = BIO_new(BIO_s_mem());
	BIO *chain_pem = BIO_new(BIO_s_mem());
	int ret = -1;
	int i;

	if (!key_pem || !leaf_pem || !chain_pem ||
	    !PEM_write_bio_PrivateKey(key_pem, key, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(leaf_pem, sk_X509_value(chain, 0)))
		goto cleanup;
	for (i = 0; i < sk_X509_num(chain); i++)
		if (!PEM_write_bio_X509(chain_pem, sk_X509_value(chain, i)))
			goto cleanup;
	/* The key first: a certificate without its key is useless. */
	ret = write_bio(dir, "device.key", key_pem, 0600);
	if (ret == 0)
		ret = write_bio(dir, "device.pem", leaf_pem, 0644);
	if (ret == 0)
		ret = write_bio(dir, "device-chain.pem", chain_pem, 0644);
cleanup:
	if (ret != 0)
		say_openssl_errors();
	BIO_free(key_pem);
	BIO_free(leaf_pem);
	BIO_free(chain_pem);
	return ret;
}

/* One line about the leaf for the human on stderr. */
static void describe_issued(X509 *leaf, const char *dir)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	char *serial = bn ? BN_bn2hex(bn) : NULL;
	struct tm tm;
	char until[32] = "?";

	if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1)
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	say("issued certificate %s, valid until %s, saved in %s", serial ? serial : "?", until,
	    dir);
	OPENSSL_free(serial);
	BN_free(bn);
}

/* ---- hub check ---- */

struct hub_session {
	const struct options *opt;
	const char *device_id;
	int done;
	int exit_code;
	int connected;
	int pub_mid;
};

static void hub_finish(struct hub_session *h, int code)
{
	h->done = 1;
	h->exit_code = code;
}

static void on_hub_connect(struct mosquitto *mosq, void *userdata, int rc)
{
	struct hub_session *h = userdata;
	char topic[TOPIC_MAX];
	size_t len = strlen(h->opt->message);
	int n;
	int err;

	if (rc != 0) {
		say("hub refused device %s: CONNACK %d (%s)", h->device_id, rc,
		    mosquitto_connack_string(rc));
		hub_finish(h, EXIT_HUB_REFUSED);
		return;
	}
	h->connected = 1;
	n = snprintf(topic, sizeof(topic), "devices/%s/messages/events/", h->device_id);
	if (n < 0 || (size_t)n >= sizeof(topic) || len > INT_MAX) {
		say("telemetry topic or message too long");
		hub_finish(h, EXIT_ERROR);
		return;
	}
	debug(h->opt, "hub: connected, PUBLISH %s (%zu bytes, qos 1)", topic, len);
	err = mosquitto_publish(mosq, &h->pub_mid, topic, (int)len, h->opt->message, 1, false);
	if (err != MOSQ_ERR_SUCCESS) {
		say("hub: publish failed: %s", mosquitto_strerror(err));
		hub_finish(h, EXIT_ERROR);
	}
}

static void on_hub_publish(struct mosquitto *mosq, void *userdata, int mid)
{
	struct hub_session *h = userdata;

	if (h->done || mid != h->pub_mid)
		return;
	say("hub accepted device %s: telemetry message acknowledged", h->device_id);
	hub_finish(h, EXIT_ASSIGNED);
}

static void on_hub_log(struct mosquitto *mosq, void *userdata, int level, const char *str)
{
	const struct hub_session *h = userdata;

	log_mosquitto(h->opt, level, str);
}

/* A TLS context presenting the issued certificate and its intermediates (the chain
 * without its root) with key. Returns a new context or NULL after saying why. */
static SSL_CTX *issued_tls_ctx(EVP_PKEY *key, STACK_OF(X509) *chain)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok = ctx != NULL;
	int i;

	ok = ok && SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) == 1;
	for (i = 1; ok && i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);

		if (!is_self_signed(x))
			ok = SSL_CTX_add1_chain_cert(ctx, x) == 1;
	}
	ok = ok && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
	if (!ok) {
		say("cannot set up TLS with the issued certificate");
		say_openssl_errors();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The hub client: client id = device id, username {hub}/{device}/?api-version=..., TLS
 * with the server CA and either the issued credentials (chain != NULL) or --cert/--key. */
static struct mosquitto *hub_client_new(const struct options *opt, struct hub_session *h,
                                        const char *hub, EVP_PKEY *key, STACK_OF(X509) *chain)
{
	struct mosquitto *mosq = NULL;
	SSL_CTX *ctx = NULL;
	char username[TOPIC_MAX];
	int n;
	int rc;

	n = snprintf(username, sizeof(username), "%s/%s/?api-version=" HUB_API_VERSION, hub,
	             h->device_id);
	if (n < 0 || (size_t)n >= sizeof(username)) {
		say("hub username too long");
		return NULL;
	}
	mosq = mosquitto_new(h->device_id, true, h);
	if (!mosq) {
		say("mosquitto_new: %s", strerror(errno));
		return NULL;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	if (chain) {
		/* The issued credentials live in memory: hand libmosquitto a context that
		 * carries them, and let it add the CA and server verification. */
		ctx = issued_tls_ctx(key, chain);
		if (!ctx)
			goto fail;
		rc = mosquitto_void_option(mosq, MOSQ_OPT_SSL_CTX, ctx);
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_int_option(mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 1);
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_tls_set(mosq, opt->ca, NULL, NULL, NULL, NULL);
	} else {
		rc = mosquitto_tls_set(mosq, opt->ca, NULL, opt->cert, opt->key, NULL);
	}
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_tls_opts_set(mosq, 1, NULL, NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_username_pw_set(mosq, username, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("hub client setup: %s", mosquitto_strerror(rc));
		say_openssl_errors();
		goto fail;
	}
	SSL_CTX_free(ctx); /* libmosquitto holds its own reference */
	mosquitto_connect_callback_set(mosq, on_hub_connect);
	mosquitto_publish_callback_set(mosq, on_hub_publish);
	mosquitto_log_callback_set(mosq, on_hub_log);
	return mosq;
fail:
	SSL_CTX_free(ctx);
	mosquitto_destroy(mosq);
	return NULL;
}

/* Connects to the assigned hub as device_id and sends one telemetry message at QoS 1.
 * Returns EXIT_ASSIGNED once it is acknowledged, EXIT_HUB_REFUSED on a refused CONNECT,
 * EXIT_ERROR otherwise. */
static int hub_check(const struct options *opt, const char *hub, const char *device_id,
                     EVP_PKEY *key, STACK_OF(X509) *chain)
{
	struct hub_session h;
	struct mosquitto *mosq = NULL;
	int64_t deadline = now_ms() + (int64_t)opt->timeout_s * 1000;
	const char *hub_host = opt->hub_host ? opt->hub_host : opt->host;
	int hub_port = opt->hub_port ? opt->hub_port : opt->port;
	int rc;

	memset(&h, 0, sizeof(h));
	h.opt = opt;
	h.device_id = device_id;
	h.exit_code = EXIT_ERROR;
	if (!hub || !*hub || !device_id || !*device_id) {
		say("the assigned answer has no assignedHub or deviceId");
		return EXIT_ERROR;
	}
	mosq = hub_client_new(opt, &h, hub, key, chain);
	if (!mosq)
		return EXIT_ERROR;
	say("connecting to hub %s at %s:%d as device %s (%s)", hub, hub_host, hub_port, device_id,
	    chain ? "issued certificate" : "--cert");
	rc = mosquitto_connect(mosq, hub_host, hub_port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		say("cannot connect to %s:%d: %s", hub_host, hub_port,
		    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		say_openssl_errors();
		goto cleanup;
	}
	while (!h.done) {
		if (now_ms() >= deadline) {
			say("hub: timed out after %d s waiting for %s", opt->timeout_s,
			    h.connected ? "the PUBACK" : "CONNACK");
			break;
		}
		rc = mosquitto_loop(mosq, LOOP_SLICE_MS, 1);
		if (rc != MOSQ_ERR_SUCCESS && !h.done) {
			say("hub: connection lost while waiting for %s: %s",
			    h.connected ? "the PUBACK" : "CONNACK",
			    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
			say_openssl_errors();
			break;
		}
	}
	if (h.connected)
		disconnect_politely(mosq);
cleanup:
	mosquitto_destroy(mosq);
	return h.exit_code;
}

/* After an assignment: keep the issued credentials (with a CSR) and try the hub (with
 * --hub-check). Returns the exit code. */
static int after_assignment(const struct options *opt, const json_t *result, EVP_PKEY *key)
{
	const json_t *state = json_object_get(result, "registrationState");
	STACK_OF(X509) *chain = NULL;
	int code = EXIT_ERROR;

	if (opt->csr_key != CSR_NONE) {
		chain = decode_issued_chain(state);
		if (!chain || check_issued_chain(chain, key) != 0 ||
		    save_credentials(opt->out_dir, key, chain) != 0)
			goto cleanup;
		describe_issued(sk_X509_value(chain, 0), opt->out_dir);
	}
	code = EXIT_ASSIGNED;
	if (opt->hub_check)
		code = hub_check(opt, json_str(state, "assignedHub"), json_str(state, "deviceId"),
		                 key, chain);
cleanup:
	sk_X509_pop_free(chain, X509_free);
	return code;
}

int main(int argc, char **argv)
{
	struct options opt;
	struct session s;
	struct mosquitto *mosq = NULL;
	EVP_PKEY *key = NULL;
	char *csr_b64 = NULL;
	int rc;

	memset(&s, 0, sizeof(s));
	s.opt = &opt;
	s.exit_code = EXIT_ERROR;
	if (parse_args(argc, argv, &opt) != 0)
		return EXIT_ERROR;

	mosquitto_lib_init();
	if (opt.csr_key != CSR_NONE) {
		/* First boot: the key is made here and never leaves the device. */
		key = generate_key(opt.csr_key);
		csr_b64 = key ? build_csr_b64(key, opt.csr_key, opt.registration_id) : NULL;
		if (!csr_b64)
			goto cleanup;
		s.csr_b64 = csr_b64;
		debug(&opt, "CSR for a new %s key: %zu base64 characters",
		      csr_key_name(opt.csr_key), strlen(csr_b64));
	}
	mosq = client_new(&opt, &s);
	if (!mosq)
		goto cleanup;
	s.phase = PHASE_CONNECTING;
	debug(&opt, "connecting to %s:%d as %s", opt.host, opt.port, opt.registration_id);
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
	if (s.exit_code == EXIT_ASSIGNED && s.result)
		s.exit_code = after_assignment(&opt, s.result, key);
cleanup:
	mosquitto_destroy(mosq);
	EVP_PKEY_free(key);
	mosquitto_lib_cleanup();
	free(s.operation_id);
	json_decref(s.result);
	free(csr_b64);
	return s.exit_code;
}
