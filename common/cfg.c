#include "cfg.h"

#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

enum opt_type { OPT_STR, OPT_INT };

struct opt {
	const char *name;     /* flag name; env var is DPSEMU_ + upper-cased name with '-' -> '_' */
	enum opt_type type;
	size_t offset;
	const char *def;      /* NULL = unset */
	long min, max;        /* OPT_INT bounds */
	const char *help;
};

#define S(field) OPT_STR, offsetof(struct cfg, field)
#define I(field) OPT_INT, offsetof(struct cfg, field)

static const struct opt opts[] = {
	{ "data-dir", S(data_dir), "./.dpsemu", 0, 0, "LMDB environment and generated PKI" },
	{ "services", S(services), "dps,hub", 0, 0, "which services this process runs: dps, hub or both" },
	{ "hostname", S(hostname), "localhost", 0, 0,
	  "name in the server certificates, and the assignedHub DPS hands out" },
	{ "extra-names", S(extra_names), "", 0, 0,
	  "more DNS names or IP addresses for the server certificate (comma-separated)" },
	{ "bind", S(bind), "127.0.0.1", 0, 0, "listen address (0.0.0.0 in containers)" },
	{ "mqtt-port", I(mqtt_port), "8883", 0, 65535, "MQTT over TLS port" },
	{ "https-port", I(https_port), "443", 0, 65535,
	  "HTTPS port: device and service REST APIs, health" },
	{ "id-scope", S(id_scope), "0ne00000000", 0, 0, "the DPS ID scope" },
	{ "enrollments-dir", S(enrollments_dir), NULL, 0, 0,
	  "folder of enrollment JSON files loaded at start and on SIGHUP" },
	{ "dps-key", S(dps_key), CFG_DEFAULT_DPS_KEY, 0, 0,
	  "key of the provisioningserviceowner policy (base64)" },
	{ "hub-key", S(hub_key), CFG_DEFAULT_HUB_KEY, 0, 0, "key of the iothubowner policy (base64)" },
	{ "linked-hubs", S(linked_hubs), NULL, 0, 0,
	  "hub host names DPS may assign devices to (comma-separated; default: the hostname)" },
	{ "retry-after", I(retry_after), "1", 0, 300,
	  "seconds DPS asks devices to wait before polling (0 makes some SDKs poll at once)" },
	{ "log-level", S(log_level), "info", 0, 0, "debug, info, warn or error" },
	{ "log-format", S(log_format), "text", 0, 0,
	  "text, or json: one object per line {time, level, component, message}" },
	{ "deterministic", I(deterministic), "0", 0, 1,
	  "1: ids in API answers (operation ids, etags, request ids, message ids) repeat "
	  "from run to run for the same requests; keys and serials stay random" },
	{ "seed", S(seed), NULL, 0, 0,
	  "seed of the deterministic ids (a whole number; implies DPSEMU_DETERMINISTIC=1)" },
	{ "max-mqtt-packet", I(max_mqtt_packet), "266240", 1024, 16777216,
	  "largest MQTT packet accepted, in bytes" },
	{ "max-http-body", I(max_http_body), "1048576", 1024, 67108864,
	  "largest HTTP request body accepted, in bytes" },
	{ "store-map-mb", I(store_map_mb), "1024", 16, 1048576, "LMDB map size in MiB" },
	{ "hub-require-cn", I(hub_require_cn), "1", 0, 1,
	  "1: every X.509 device needs CN = device id; 0: Azure's rule (thumbprint devices are "
	  "matched by thumbprint alone)" },
	{ "telemetry-keep", I(telemetry_keep), "1000", 1, 1000000,
	  "telemetry messages kept per device for GET /_emulator/telemetry" },
	{ "c2d-queue-max", I(c2d_queue_max), "50", 1, 10000,
	  "cloud-to-device messages queued per device (Azure allows 50)" },
	{ "server-ca-cert", S(server_ca_cert), NULL, 0, 0,
	  "PEM CA certificate that signs the server certificate (default: generated); lets "
	  "DPS and hub in separate containers share one trust root" },
	{ "server-ca-key", S(server_ca_key), NULL, 0, 0, "its private key (PEM)" },
	{ "issuing-ca-cert", S(issuing_ca_cert), NULL, 0, 0,
	  "PEM certificate of your own CA for certificates issued from CSRs (default: generated)" },
	{ "issuing-ca-key", S(issuing_ca_key), NULL, 0, 0, "its private key (PEM)" },
	{ "issuing-ca-chain", S(issuing_ca_chain), NULL, 0, 0,
	  "its chain up to the root (PEM), if not in the certificate file" },
	{ "credential-policies", S(credential_policies), "", 0, 0,
	  "credential policies for certificate issuance, name=validity (s, m, h, d), "
	  "comma-separated; 'default' (30d) always exists" },
	{ "csr-keys", S(csr_keys), "default", 0, 0,
	  "keys accepted in CSRs: default (EC P-256, P-384, RSA >= 2048) or strict (P-384 only, "
	  "as Azure)" },
	{ "forward-mqtt", S(forward_mqtt), NULL, 0, 0,
	  "copy every telemetry message the hub accepts to the MQTT broker at host:port (topic "
	  "dpsemu/telemetry/{deviceId}, QoS 0); unset: off" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void env_name(const struct opt *o, char *out, size_t outlen)
{
	size_t i = 0, j;

	j = (size_t)snprintf(out, outlen, "DPSEMU_");
	for (; o->name[i] && j + 1 < outlen; i++, j++)
		out[j] = o->name[i] == '-' ? '_' : (char)toupper((unsigned char)o->name[i]);
	out[j] = '\0';
}

static int set_value(struct cfg *cfg, const struct opt *o, const char *v, const char *source,
		     char *why, size_t whylen)
{
	char *dup, *end;
	long n;

	if (o->type == OPT_STR) {
		char **slot = (char **)((char *)cfg + o->offset);
		dup = strdup(v);
		if (!dup)
			return EMU_ENOMEM;
		free(*slot);
		*slot = dup;
		return EMU_OK;
	}
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < o->min || n > o->max) {
		snprintf(why, whylen, "%s: '%s' is not a whole number from %ld to %ld", source, v,
			 o->min, o->max);
		return EMU_EINVAL;
	}
	*(int *)((char *)cfg + o->offset) = (int)n;
	return EMU_OK;
}

static int check_services(struct cfg *cfg, char *why, size_t whylen)
{
	char *copy = strdup(cfg->services), *p, *save = NULL;
	int rc = EMU_OK;

	if (!copy)
		return EMU_ENOMEM;
	cfg->run_dps = cfg->run_hub = 0;
	for (p = strtok_r(copy, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
		if (strcmp(p, "dps") == 0) {
			cfg->run_dps = 1;
		} else if (strcmp(p, "hub") == 0) {
			cfg->run_hub = 1;
		} else {
			snprintf(why, whylen, "DPSEMU_SERVICES: unknown service '%s' (use dps, hub)", p);
			rc = EMU_EINVAL;
			break;
		}
	}
	if (rc == EMU_OK && !cfg->run_dps && !cfg->run_hub) {
		snprintf(why, whylen, "DPSEMU_SERVICES: no service named (use dps, hub or dps,hub)");
		rc = EMU_EINVAL;
	}
	free(copy);
	return rc;
}

int cfg_load(struct cfg *cfg, int argc, char **argv, int *want_help, char *why, size_t whylen)
{
	char envname[64];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	*want_help = 0;
	for (size_t i = 0; i < NOPTS; i++) {
		const char *v;
		env_name(&opts[i], envname, sizeof(envname));
		v = getenv(envname);
		if (!v)
			v = opts[i].def;
		if (v && (rc = set_value(cfg, &opts[i], v, envname, why, whylen)) != EMU_OK)
			return rc;
	}
	/* A misspelt variable silently ignored is the worst kind of config bug. */
	for (char **e = environ; *e; e++) {
		int known = 0;
		if (strncmp(*e, "DPSEMU_", 7) != 0)
			continue;
		for (size_t i = 0; i < NOPTS && !known; i++) {
			size_t n;
			env_name(&opts[i], envname, sizeof(envname));
			n = strlen(envname);
			known = strncmp(*e, envname, n) == 0 && (*e)[n] == '=';
		}
		if (!known) {
			snprintf(why, whylen, "unknown setting %.*s (see dpsemu --help)",
				 (int)strcspn(*e, "="), *e);
			return EMU_EINVAL;
		}
	}
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a], *val = NULL, *eq;
		size_t nlen;
		const struct opt *o = NULL;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			*want_help = 1;
			return EMU_OK;
		}
		if (strncmp(arg, "--", 2) != 0) {
			snprintf(why, whylen, "unexpected argument '%s' (see dpsemu --help)", arg);
			return EMU_EINVAL;
		}
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		for (size_t i = 0; i < NOPTS; i++)
			if (strlen(opts[i].name) == nlen && strncmp(opts[i].name, arg + 2, nlen) == 0)
				o = &opts[i];
		if (!o) {
			snprintf(why, whylen, "unknown flag '%.*s' (see dpsemu --help)",
				 (int)(nlen + 2), arg);
			return EMU_EINVAL;
		}
		if (eq) {
			val = eq + 1;
		} else if (a + 1 < argc) {
			val = argv[++a];
		} else {
			snprintf(why, whylen, "flag '%s' needs a value", arg);
			return EMU_EINVAL;
		}
		if ((rc = set_value(cfg, o, val, arg, why, whylen)) != EMU_OK)
			return rc;
	}
	if (!cfg->linked_hubs && !(cfg->linked_hubs = strdup(cfg->hostname)))
		return EMU_ENOMEM;
	if (!*cfg->hostname || !*cfg->id_scope || !*cfg->data_dir) {
		snprintf(why, whylen, "DPSEMU_HOSTNAME, DPSEMU_ID_SCOPE and DPSEMU_DATA_DIR must not be empty");
		return EMU_EINVAL;
	}
	return check_services(cfg, why, whylen);
}

void cfg_free(struct cfg *cfg)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].type == OPT_STR) {
			char **slot = (char **)((char *)cfg + opts[i].offset);
			free(*slot);
			*slot = NULL;
		}
}

void cfg_print_help(FILE *out)
{
	char envname[64], flag[64];

	fprintf(out, "Usage: dpsemu [--flag value ...]\n"
		     "       dpsemu --check              (validate the configuration and exit)\n"
		     "       dpsemu certs <command> ...   (certificate tool; dpsemu certs help)\n"
		     "       dpsemu health [--url URL] [--ca FILE]   (query /health; exit 0 when healthy)\n\n"
		     "Every setting is a flag and an environment variable:\n\n");
	for (size_t i = 0; i < NOPTS; i++) {
		env_name(&opts[i], envname, sizeof(envname));
		snprintf(flag, sizeof(flag), "--%s", opts[i].name);
		fprintf(out, "  %-20s %-24s %s\n  %-45s (default: %s)\n", flag, envname,
			opts[i].help, "", opts[i].def ? opts[i].def : "none");
	}
}

int cfg_list_each(const char *list, void (*cb)(const char *item, void *arg), void *arg)
{
	char item[512];
	int count = 0;

	while (list && *list) {
		size_t n = strcspn(list, ","), b = 0, e = n;
		while (b < e && isspace((unsigned char)list[b]))
			b++;
		while (e > b && isspace((unsigned char)list[e - 1]))
			e--;
		if (e > b && e - b < sizeof(item)) {
			memcpy(item, list + b, e - b);
			item[e - b] = '\0';
			cb(item, arg);
			count++;
		}
		list += n;
		if (*list == ',')
			list++;
	}
	return count;
}
