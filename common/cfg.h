/* cfg.h - the emulator's settings: one table feeds env vars, flags and --help.
 *
 * Each setting is an environment variable DPSEMU_<NAME> and a flag --<name>;
 * a flag beats the variable, the variable beats the default. Parsed once at
 * start into a read-only struct cfg. */
#ifndef DPSEMU_CFG_H
#define DPSEMU_CFG_H

#include <stdio.h>

/* The well-known default service keys, like Azurite's: documented in the README,
 * replaceable with DPSEMU_DPS_KEY / DPSEMU_HUB_KEY. */
#define CFG_DEFAULT_DPS_KEY "qfJM9SpiJwy/CDjRC6qrpH1y6dpusl850Cer3qtuEBw="
#define CFG_DEFAULT_HUB_KEY "WCdbwTJRIhYWz5ifxUZTbHaebipHjXkPlFxahEEdpKM="

struct cfg {
	char *data_dir;
	char *services;        /* "dps,hub", "dps" or "hub" */
	int run_dps, run_hub;  /* derived from services */
	char *hostname;
	char *extra_names;     /* comma-separated extra server certificate names */
	char *bind;
	int mqtt_port;
	int https_port;
	char *id_scope;
	char *enrollments_dir; /* NULL when unset */
	char *dps_key;
	char *hub_key;
	char *linked_hubs;     /* comma-separated; defaults to hostname */
	int retry_after;       /* seconds in DPS 202 answers */
	char *log_level;
	char *log_format;      /* "text" or "json" */
	int deterministic;     /* 1: identifiers from a seeded generator (clock.h) */
	char *seed;            /* that generator's seed (decimal); implies deterministic */
	int max_mqtt_packet;   /* bytes */
	int max_http_body;     /* bytes */
	int store_map_mb;
	int hub_require_cn;    /* thumbprint devices too need CN = device id */
	int telemetry_keep;    /* messages kept per device for the observation API */
	int c2d_queue_max;     /* cloud-to-device messages queued per device */
	char *server_ca_cert;  /* user-supplied server CA (NULL: generated in the data dir) */
	char *server_ca_key;
	char *issuing_ca_cert; /* user-supplied issuing CA for CSRs (NULL: the dev PKI's) */
	char *issuing_ca_key;
	char *issuing_ca_chain;
	char *credential_policies; /* "name=30d,short=10m"; "default" (30 days) always exists */
	char *csr_keys;        /* "default" (P-256, P-384, RSA >= 2048) or "strict" (P-384) */
	char *forward_mqtt;    /* host:port of a broker that gets all telemetry (NULL: off) */
};

/* Fills cfg from defaults, the environment and argv (argv[0] is skipped).
 * Unknown flags, unknown DPSEMU_* variables and invalid values are errors:
 * returns EMU_EINVAL with a message naming the setting in why. --help is
 * reported as EMU_OK with *want_help set. Strings in cfg are owned by cfg. */
int cfg_load(struct cfg *cfg, int argc, char **argv, int *want_help, char *why, size_t whylen);
/* Frees the strings held by cfg. */
void cfg_free(struct cfg *cfg);
/* Writes the generated settings reference (flags, variables, defaults, help). */
void cfg_print_help(FILE *out);

/* Splits a comma-separated list: calls cb for each trimmed, non-empty item.
 * Returns the number of items. */
int cfg_list_each(const char *list, void (*cb)(const char *item, void *arg), void *arg);

#endif
