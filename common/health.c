#include "health.h"

#include "buf.h"
#include "cfg.h"
#include "err.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG              "dpsemu health"
#define BODY_MAX          4096 /* /health answers a few dozen bytes; the rest is not shown */
#define URL_MAX           1024
#define DEFAULT_TIMEOUT_S 5
#define MAX_TIMEOUT_S     300
/* Docker reads 0 as healthy and 1 as unhealthy, and reserves 2: every failure is 1. */
#define EXIT_HEALTHY   0
#define EXIT_UNHEALTHY 1

struct health_opts {
	const char *url; /* --url, or NULL: built from the settings */
	const char *ca;  /* --ca, or NULL: the data dir's server-ca.pem */
	long timeout_s;
	int help;
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: dpsemu health [--url URL] [--ca FILE] [--timeout SECONDS] [daemon flags]\n"
	        "\n"
	        "Asks the dpsemu daemon described by the same settings as the daemon's own\n"
	        "(DPSEMU_* variables, or flags such as --https-port, --data-dir) for GET /health:\n"
	        "https://{DPSEMU_HOSTNAME}:{DPSEMU_HTTPS_PORT}/health, reached at DPSEMU_BIND\n"
	        "(127.0.0.1 when it is 0.0.0.0), trusting {DPSEMU_DATA_DIR}/certs/server-ca.pem.\n"
	        "\n"
	        "  --url URL          ask URL instead\n"
	        "  --ca FILE          trust FILE instead of the data dir's server-ca.pem\n"
	        "  --timeout SECONDS  give up after SECONDS (1..%d, default %d)\n"
	        "\n"
	        "exit: 0 when the answer is HTTP 200 (printed on stdout), 1 otherwise, with\n"
	        "      one line on stderr saying why. Meant for HEALTHCHECK and --health-cmd.\n",
	        MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S);
}

/* Matches argv[*i] against --name or --name=value. Returns 1 with *val set (and *i
 * moved past a separate value), 0 when it is another argument, -1 when the value
 * is missing. */
static int take_value(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *arg = argv[*i];
	size_t n = strlen(name);

	if (strncmp(arg, name, n) != 0)
		return 0;
	if (arg[n] == '=') {
		*val = arg + n + 1;
		return 1;
	}
	if (arg[n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/* Splits argv into our options and the daemon's flags (fwd, with fwd[0] = "dpsemu"
 * as cfg_load expects). fwd has room for argc + 1 pointers. Returns EMU_OK or
 * EMU_EINVAL with why. */
static int parse_args(int argc, char **argv, struct health_opts *o, char **fwd, int *nfwd,
                      char *why, size_t whylen)
{
	static const char *const names[] = {"--url", "--ca", "--timeout"};
	const char *vals[3] = {NULL, NULL, NULL};

	memset(o, 0, sizeof(*o));
	o->timeout_s = DEFAULT_TIMEOUT_S;
	*nfwd = 0;
	fwd[(*nfwd)++] = (char *)"dpsemu";
	for (int i = 1; i < argc; i++) {
		int matched = 0;

		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			o->help = 1;
			return EMU_OK;
		}
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && !matched; k++) {
			int rc = take_value(argc, argv, &i, names[k], &vals[k]);
			if (rc < 0) {
				snprintf(why, whylen, "%s needs a value", names[k]);
				return EMU_EINVAL;
			}
			matched = rc;
		}
		if (!matched)
			fwd[(*nfwd)++] = argv[i];
	}
	fwd[*nfwd] = NULL;
	o->url = vals[0];
	o->ca = vals[1];
	if (vals[2]) {
		char *end = NULL;

		errno = 0;
		o->timeout_s = strtol(vals[2], &end, 10);
		if (errno || end == vals[2] || *end || o->timeout_s < 1 ||
		    o->timeout_s > MAX_TIMEOUT_S) {
			snprintf(why, whylen, "--timeout: '%s' is not a whole number from 1 to %d",
			         vals[2], MAX_TIMEOUT_S);
			return EMU_EINVAL;
		}
	}
	return EMU_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb, room = b->len < BODY_MAX ? BODY_MAX - b->len : 0;

	/* Keep what fits and swallow the rest: the status decides, not the body. */
	buf_append(b, data, n < room ? n : room);
	return n;
}

/* The address the daemon's listener answers on: a wildcard bind is reached over
 * loopback. */
static const char *connect_address(const char *bind)
{
	if (strcmp(bind, "0.0.0.0") == 0 || *bind == '\0')
		return "127.0.0.1";
	if (strcmp(bind, "::") == 0 || strcmp(bind, "[::]") == 0)
		return "::1";
	return bind;
}

/* Writes "host" or "[host]" (an IPv6 literal) into out. Returns EMU_OK or EMU_ETOOBIG. */
static int url_host(char *out, size_t outlen, const char *host)
{
	int ipv6 = strchr(host, ':') != NULL && host[0] != '[';
	int n = snprintf(out, outlen, ipv6 ? "[%s]" : "%s", host);

	return n < 0 || (size_t)n >= outlen ? EMU_ETOOBIG : EMU_OK;
}

/* Trailing white space (and a stray newline from a library) off a one-line reason. */
static void trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* Does the request. Returns the exit code; says why on stderr when it is not 0. */
static int check(const struct cfg *cfg, const struct health_opts *o)
{
	char url[URL_MAX], host[300], addr[300], connect_to[700], ca[1200];
	char err[CURL_ERROR_SIZE] = "";
	const char *via = NULL;
	struct curl_slist *redirect = NULL;
	struct buf body;
	CURL *curl = NULL;
	CURLcode rc;
	long status = 0;
	int code = EXIT_UNHEALTHY;

	buf_init(&body, BODY_MAX);
	if (o->ca)
		snprintf(ca, sizeof(ca), "%s", o->ca);
	else
		snprintf(ca, sizeof(ca), "%s/certs/server-ca.pem", cfg->data_dir);
	if (o->url) {
		snprintf(url, sizeof(url), "%s", o->url);
	} else {
		via = connect_address(cfg->bind);
		/* The URL names the host the server certificate is issued for; the
		 * connection goes to the listener's address. */
		if (url_host(host, sizeof(host), cfg->hostname) != EMU_OK ||
		    url_host(addr, sizeof(addr), via) != EMU_OK) {
			fprintf(stderr, PROG ": DPSEMU_HOSTNAME or DPSEMU_BIND is too long\n");
			goto cleanup;
		}
		snprintf(url, sizeof(url), "https://%s:%d/health", host, cfg->https_port);
		snprintf(connect_to, sizeof(connect_to), "::%s:", addr);
		redirect = curl_slist_append(NULL, connect_to);
		if (!redirect) {
			fprintf(stderr, PROG ": out of memory\n");
			goto cleanup;
		}
	}
	if (access(ca, R_OK) != 0) {
		fprintf(stderr,
		        PROG ": %s: cannot read the trust root %s: %s (has the daemon "
		             "started with this DPSEMU_DATA_DIR?)\n",
		        url, ca, strerror(errno));
		goto cleanup;
	}
	curl = curl_easy_init();
	if (!curl) {
		fprintf(stderr, PROG ": %s: cannot initialise libcurl\n", url);
		goto cleanup;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (redirect)
		curl_easy_setopt(curl, CURLOPT_CONNECT_TO, redirect);
	/* A proxy from the environment (CI runners set them) must not see this. */
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
#else
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP));
#endif
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, o->timeout_s * 1000L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "dpsemu-health");
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", curl_easy_strerror(rc));
		trim(err);
		fprintf(stderr, PROG ": %s%s%s%s: %s\n", url, via ? " (connecting to " : "",
		        via ? via : "", via ? ")" : "", err);
		goto cleanup;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		fprintf(stderr, PROG ": %s: HTTP %ld\n", url, status);
		goto cleanup;
	}
	if (body.data)
		trim((char *)body.data);
	printf("%s\n", body.data ? (char *)body.data : "");
	code = EXIT_HEALTHY;
cleanup:
	curl_easy_cleanup(curl);
	curl_slist_free_all(redirect);
	buf_free(&body);
	return code;
}

int health_main(int argc, char **argv)
{
	struct health_opts o;
	struct cfg cfg;
	char why[512];
	char **fwd = NULL;
	int nfwd = 0, help = 0, code = EXIT_UNHEALTHY;

	memset(&cfg, 0, sizeof(cfg));
	fwd = calloc((size_t)argc + 2, sizeof(*fwd));
	if (!fwd) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_UNHEALTHY;
	}
	if (parse_args(argc, argv, &o, fwd, &nfwd, why, sizeof(why)) != EMU_OK) {
		fprintf(stderr, PROG ": %s (see dpsemu health --help)\n", why);
		goto cleanup;
	}
	if (o.help) {
		usage(stdout);
		code = EXIT_HEALTHY;
		goto cleanup;
	}
	/* The daemon's own settings parser: the check finds the daemon the way the
	 * daemon configured itself, and rejects what the daemon would reject. */
	if (cfg_load(&cfg, nfwd, fwd, &help, why, sizeof(why)) != EMU_OK) {
		fprintf(stderr, PROG ": %s\n", why);
		goto cleanup;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, PROG ": cannot initialise libcurl\n");
		goto cleanup;
	}
	code = check(&cfg, &o);
	curl_global_cleanup();
cleanup:
	cfg_free(&cfg);
	free(fwd);
	return code;
}
