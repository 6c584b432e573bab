/* dpsemu - a local Azure IoT Hub Device Provisioning Service and IoT Hub.
 *
 * main reads the configuration, makes sure the TLS PKI exists, opens the store,
 * binds the two shared listeners (MQTT and HTTPS), wires the services to them
 * and runs the event loop until SIGINT/SIGTERM. */
#include "authlog.h"
#include "buf.h"
#include "cfg.h"
#include "certs/ca_registry.h"
#include "certs/devpki.h"
#include "certs/issue.h"
#include "certs/tool.h"
#include "clock.h"
#include "dps/dps.h"
#include "err.h"
#include "health.h"
#include "http.h"
#include "hub-sim/hub.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt_server.h"
#include "store.h"
#include "svcauth.h"
#include "tls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct app {
	struct cfg cfg;
	struct devpki_files pki;
	struct devpki_issuer_files issuing; /* the CA that signs certificates from CSRs */
	struct issue_ca *issuer;
	struct loop *lp;
	struct store *st;
	SSL_CTX *ctx;
	struct mqtt_server *mqtt;
	struct http_server *http;
	struct svcauth *any_owner; /* DPS or hub owner key: for /certificates */
	struct ca_registry *cas;
	struct dps *dps;
	struct hub *hub;
	char *check_store; /* --check: temporary store directory, else NULL */
	struct metrics *metrics;  /* GET /metrics */
	struct authlog *authlog;  /* GET /_emulator/auth-log */
	int deterministic;        /* ids from the seeded generator (DPSEMU_DETERMINISTIC/SEED) */
	uint64_t seed;
	int sigfd;
};

static void on_health(void *arg, struct http_req *r)
{
	struct app *a = arg;
	json_t *services = json_array();

	if (a->dps)
		json_array_append_new(services, json_string("dps"));
	if (a->hub)
		json_array_append_new(services, json_string("hub"));
	/* The loop only runs once every listener is bound and the store and the
	 * seed files are loaded, so answering at all means healthy. */
	http_respond_json(r, 200, json_pack("{s:s, s:o, s:i, s:i}", "status", "ok", "services",
					    services, "mqttPort", mqtt_server_port(a->mqtt),
					    "httpsPort", http_server_port(a->http)));
}

/* Prometheus scrapes without credentials: the counters are read-only and say
 * nothing a test log would not. */
static void on_metrics(void *arg, struct http_req *r)
{
	struct app *a = arg;
	struct buf text;

	buf_init(&text, 0);
	if (metrics_render(a->metrics, &text) != EMU_OK) {
		buf_free(&text);
		http_respond_error(r, 500, 500000, "out of memory");
		return;
	}
	http_respond(r, 200, METRICS_CONTENT_TYPE, text.data ? text.data : (unsigned char *)"",
		     text.len);
	buf_free(&text);
}

static void on_auth_log(void *arg, struct http_req *r)
{
	struct app *a = arg;
	const char *max = http_req_query(r, "max");
	unsigned long n = 0;
	json_t *entries;
	char *end;

	if (svcauth_require(a->any_owner, r) != EMU_OK)
		return;
	if (max) {
		errno = 0;
		n = strtoul(max, &end, 10);
		if (errno || end == max || *end || *max == '-' || n == 0 ||
		    n > AUTHLOG_DEFAULT_CAPACITY) {
			http_respond_error(r, 400, 400004, "max='%s' is not a whole number from 1 "
					   "to %d", max, AUTHLOG_DEFAULT_CAPACITY);
			return;
		}
	}
	entries = authlog_query(a->authlog, http_req_query(r, "registrationId"),
				http_req_query(r, "deviceId"), n);
	if (!entries) {
		http_respond_error(r, 500, 500000, "out of memory");
		return;
	}
	http_respond_json(r, 200, json_pack("{s:o}", "value", entries));
}

/* Back to a fresh start without a restart: every table emptied (the PKI in the
 * data dir stays), every MQTT client disconnected, waiting requests answered,
 * caches and the auth log dropped, deterministic ids restarted; with
 * reseed=true the seed files are applied again. */
static void on_reset(void *arg, struct http_req *r)
{
	struct app *a = arg;
	const char *reseed = http_req_query(r, "reseed");
	int want_seed = 0, reseeded = 0, rc;

	if (svcauth_require(a->any_owner, r) != EMU_OK)
		return;
	if (reseed && strcmp(reseed, "true") == 0) {
		want_seed = 1;
	} else if (reseed && strcmp(reseed, "false") != 0) {
		http_respond_error(r, 400, 400004, "reseed='%s' is not true or false", reseed);
		return;
	}
	mqtt_server_close_all(a->mqtt, "the emulator was reset");
	if ((rc = store_clear_all(a->st)) != EMU_OK) {
		http_respond_error(r, 500, 500000, "the store could not be emptied: %s",
				   emu_strerror(rc));
		return;
	}
	dps_reset(a->dps);
	hub_reset(a->hub);
	authlog_clear(a->authlog);
	if (a->deterministic)
		rand_id_seed(a->seed);
	if (want_seed && a->dps && a->cfg.enrollments_dir) {
		if (dps_reload_seeds(a->dps) != EMU_OK) {
			http_respond_error(r, 500, 500000, "the store was emptied but the seed "
					   "files in %s could not be applied (see the log)",
					   a->cfg.enrollments_dir);
			return;
		}
		reseeded = 1;
	}
	log_info("main", "reset: every table emptied, MQTT clients disconnected%s",
		 reseeded ? ", seed files applied" : "");
	http_respond_json(r, 200, json_pack("{s:b, s:b}", "reset", 1, "reseeded", reseeded));
}

static void on_signal(void *arg, int fd, uint32_t events)
{
	struct app *a = arg;
	struct signalfd_siginfo si;
	(void)events;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("main", "SIGHUP: reloading enrollment seed files");
			if (a->dps)
				dps_reload_seeds(a->dps);
		} else {
			log_info("main", "signal %u: shutting down", si.ssi_signo);
			loop_stop(a->lp);
		}
	}
}

static int setup_signals(struct app *a)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return EMU_EIO;
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sigfd < 0)
		return EMU_EIO;
	return loop_watch(a->lp, a->sigfd, EPOLLIN, on_signal, a);
}

struct names {
	const char *v[32];
	size_t n;
	char store[32][256];
};

static void add_name(const char *item, void *arg)
{
	struct names *ns = arg;
	if (ns->n < 32) {
		snprintf(ns->store[ns->n], sizeof(ns->store[0]), "%s", item);
		ns->v[ns->n] = ns->store[ns->n];
		ns->n++;
	}
}

static void print_banner(struct app *a)
{
	const struct cfg *c = &a->cfg;
	int mport = mqtt_server_port(a->mqtt), hport = http_server_port(a->http);
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b,
		   "\n"
		   "dpsemu is running (services: %s%s%s)\n"
		   "  MQTT over TLS   %s:%d   (devices: DPS and hub)\n"
		   "  HTTPS           %s:%d   (device and service REST APIs, GET /health, "
		   "GET /metrics)\n"
		   "  hostname        %s   (server certificate names; the assignedHub DPS hands "
		   "out)\n"
		   "  trust root      %s\n"
		   "  issuing CA      %s   (chain of the certificates issued from CSRs)\n",
		   a->dps ? "dps" : "", a->dps && a->hub ? "," : "", a->hub ? "hub" : "", c->bind,
		   mport, c->bind, hport, c->hostname, a->pki.server_ca, a->issuing.chain);
	if (c->run_dps)
		buf_printf(&b,
			   "  ID scope        %s\n"
			   "  DPS service     HostName=%s;"
			   "SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=%s\n",
			   c->id_scope, c->hostname, c->dps_key);
	if (a->hub)
		buf_printf(&b,
			   "  hub service     HostName=%s;SharedAccessKeyName=iothubowner;"
			   "SharedAccessKey=%s\n",
			   c->hostname, c->hub_key);
	if (a->deterministic)
		buf_printf(&b, "  deterministic   ids repeat from run to run (seed %llu)\n",
			   (unsigned long long)a->seed);
	buf_printf(&b, "  data            %s\n\n", c->data_dir);
	log_banner("main", b.data ? (const char *)b.data : "");
	buf_free(&b);
}

/* DPSEMU_SEED (a whole number) or DPSEMU_DETERMINISTIC=1 (seed 0) switch the
 * identifiers in API answers to the deterministic generator. */
static int parse_seed(struct app *a)
{
	char *end;

	a->deterministic = a->cfg.deterministic;
	if (a->cfg.seed) {
		errno = 0;
		a->seed = strtoull(a->cfg.seed, &end, 10);
		if (errno || end == a->cfg.seed || *end || a->cfg.seed[0] == '-') {
			fprintf(stderr, "dpsemu: DPSEMU_SEED: '%s' is not a whole number from 0 to "
				"18446744073709551615\n", a->cfg.seed);
			return EMU_EINVAL;
		}
		a->deterministic = 1;
	}
	if (a->deterministic)
		rand_id_seed(a->seed);
	return EMU_OK;
}

static int app_start(struct app *a)
{
	struct names extra = { .n = 0 };
	char path[1200], why[512];
	int rc;

	cfg_list_each(a->cfg.extra_names, add_name, &extra);
	if ((!a->cfg.server_ca_cert) != (!a->cfg.server_ca_key)) {
		log_error("main", "DPSEMU_SERVER_CA_CERT and DPSEMU_SERVER_CA_KEY go together");
		return EMU_EINVAL;
	}
	if ((rc = devpki_ensure_with_ca(a->cfg.data_dir, a->cfg.hostname, extra.v, extra.n,
					a->cfg.server_ca_cert, a->cfg.server_ca_key, &a->pki)))
		return rc;
	if ((!a->cfg.issuing_ca_cert) != (!a->cfg.issuing_ca_key)) {
		log_error("main", "DPSEMU_ISSUING_CA_CERT and DPSEMU_ISSUING_CA_KEY go together");
		return EMU_EINVAL;
	}
	if ((rc = devpki_ensure_issuer(a->cfg.data_dir, a->cfg.issuing_ca_cert, a->cfg.issuing_ca_key,
				       a->cfg.issuing_ca_chain, &a->issuing, &a->issuer, why,
				       sizeof(why)))) {
		log_error("main", "issuing CA: %s", why);
		return rc;
	}
	if (a->check_store) {
		/* --check: seed files are loaded into a throw-away store. */
		snprintf(path, sizeof(path), "%s", a->check_store);
	} else {
		snprintf(path, sizeof(path), "%s/store", a->cfg.data_dir);
	}
	if ((rc = store_open(path, (size_t)a->cfg.store_map_mb, &a->st)))
		return rc;
	if ((rc = loop_new(&a->lp)) || (rc = setup_signals(a)))
		return rc;
	if ((rc = tls_ctx_new(a->pki.server_chain, a->pki.server_key, &a->ctx)))
		return rc;
	if ((rc = metrics_new(&a->metrics)) ||
	    (rc = authlog_new(AUTHLOG_DEFAULT_CAPACITY, a->metrics, &a->authlog)))
		return rc;
	if ((rc = mqtt_server_new(a->lp, a->ctx, a->cfg.bind, a->cfg.mqtt_port,
				  (size_t)a->cfg.max_mqtt_packet, a->metrics, &a->mqtt)) ||
	    (rc = http_server_new(a->lp, a->ctx, a->cfg.bind, a->cfg.https_port,
				  (size_t)a->cfg.max_http_body, a->metrics, &a->http)))
		return rc;
	if ((rc = http_route(a->http, "GET", "/health", on_health, a)))
		return rc;
	if ((rc = svcauth_new(&a->any_owner)) || (rc = svcauth_add_cfg_names(a->any_owner, &a->cfg)))
		return rc;
	if (a->cfg.run_dps &&
	    (rc = svcauth_add_policy(a->any_owner, "provisioningserviceowner", a->cfg.dps_key))) {
		log_error("main", "DPSEMU_DPS_KEY is not valid base64");
		return rc;
	}
	if (a->cfg.run_hub &&
	    (rc = svcauth_add_policy(a->any_owner, "iothubowner", a->cfg.hub_key))) {
		log_error("main", "DPSEMU_HUB_KEY is not valid base64");
		return rc;
	}
	if ((rc = ca_registry_new(a->st, a->http, a->any_owner, &a->cas)))
		return rc;
	if ((rc = http_route(a->http, "GET", "/metrics", on_metrics, a)) ||
	    (rc = http_route(a->http, "GET", "/_emulator/auth-log", on_auth_log, a)) ||
	    (rc = http_route(a->http, "POST", "/_emulator/reset", on_reset, a)))
		return rc;
	if (a->cfg.run_dps) {
		struct dps_deps deps = { &a->cfg, a->lp, a->st, a->cas, a->http, a->mqtt,
					 a->pki.server_ca, a->cfg.run_hub, a->issuer,
					 a->metrics, a->authlog };
		if ((rc = dps_new(&deps, &a->dps)))
			return rc;
	}
	if (a->cfg.run_hub) {
		struct hub_deps deps = { &a->cfg, a->lp, a->st, a->cas, a->http, a->mqtt,
					 a->issuing.chain, a->metrics, a->authlog };
		if ((rc = hub_new(&deps, &a->hub)))
			return rc;
	}
	return EMU_OK;
}

static void app_stop(struct app *a)
{
	/* MQTT first: closing a session calls into its service (hub_close), which
	 * must still exist. */
	mqtt_server_free(a->mqtt);
	dps_free(a->dps);
	hub_free(a->hub);
	ca_registry_free(a->cas);
	svcauth_free(a->any_owner);
	http_server_free(a->http);
	SSL_CTX_free(a->ctx);
	if (a->sigfd > 0)
		close(a->sigfd);
	loop_free(a->lp);
	store_close(a->st);
	authlog_free(a->authlog);
	metrics_free(a->metrics);
	issue_ca_free(a->issuer);
	cfg_free(&a->cfg);
}

/* Removes the --check store (LMDB files in one flat directory). */
static void remove_tree(const char *dir)
{
	static const char *const files[] = { "data.mdb", "lock.mdb" };
	char path[1100];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	struct app a;
	char why[512], tmp[] = "/tmp/dpsemu-check-XXXXXX";
	int help = 0, check = 0, rc, level;

	if (argc > 1 && strcmp(argv[1], "certs") == 0)
		return certs_tool_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "health") == 0)
		return health_main(argc - 1, argv + 1);
	memset(&a, 0, sizeof(a));
	a.sigfd = -1;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--check") == 0) {
			/* Not a setting: take it out before the settings are read. */
			check = 1;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
			argc--;
			break;
		}
	if (cfg_load(&a.cfg, argc, argv, &help, why, sizeof(why)) != EMU_OK) {
		fprintf(stderr, "dpsemu: %s\n", why);
		cfg_free(&a.cfg);
		return 2;
	}
	if (help) {
		cfg_print_help(stdout);
		cfg_free(&a.cfg);
		return 0;
	}
	level = log_level_parse(a.cfg.log_level);
	if (level < 0) {
		fprintf(stderr, "dpsemu: DPSEMU_LOG_LEVEL: '%s' is not debug, info, warn or error\n",
			a.cfg.log_level);
		cfg_free(&a.cfg);
		return 2;
	}
	log_set_level((enum log_level)level);
	level = log_format_parse(a.cfg.log_format);
	if (level < 0) {
		fprintf(stderr, "dpsemu: DPSEMU_LOG_FORMAT: '%s' is not text or json\n",
			a.cfg.log_format);
		cfg_free(&a.cfg);
		return 2;
	}
	log_set_format((enum log_format)level);
	if (parse_seed(&a) != EMU_OK) {
		cfg_free(&a.cfg);
		return 2;
	}
	if (check) {
		/* Everything a start does -- settings, PKI, seed files, listeners -- on
		 * free ports and with a throw-away store, then stop. */
		a.cfg.mqtt_port = 0;
		a.cfg.https_port = 0;
		if (!mkdtemp(tmp)) {
			fprintf(stderr, "dpsemu: --check: cannot create a temporary directory\n");
			cfg_free(&a.cfg);
			return 1;
		}
		a.check_store = tmp;
	}
	rc = app_start(&a);
	if (check) {
		app_stop(&a);
		remove_tree(tmp);
		if (rc != EMU_OK) {
			fprintf(stderr, "dpsemu: configuration check failed: %s (see above)\n",
				emu_strerror(rc));
			return 1;
		}
		fprintf(stderr, "dpsemu: configuration OK\n");
		return 0;
	}
	if (rc != EMU_OK) {
		log_error("main", "start-up failed: %s", emu_strerror(rc));
		app_stop(&a);
		return 1;
	}
	print_banner(&a);
	rc = loop_run(a.lp);
	app_stop(&a);
	log_info("main", "stopped");
	return rc == EMU_OK ? 0 : 1;
}
