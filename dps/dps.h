/* dps.h - the Device Provisioning Service: device APIs (MQTT, HTTPS) and the
 * service API (enrollments, enrollment groups, registration states). */
#ifndef DPSEMU_DPS_H
#define DPSEMU_DPS_H

struct cfg;
struct loop;
struct store;
struct ca_registry;
struct http_server;
struct mqtt_server;
struct issue_ca;
struct metrics;
struct authlog;
struct dps;

/* What DPS runs on; everything is borrowed and must outlive the service. */
struct dps_deps {
	const struct cfg *cfg;
	struct loop *lp;
	struct store *st;
	struct ca_registry *cas;
	struct http_server *http;
	struct mqtt_server *mqtt;
	const char *ca_file;  /* trust for calls to the hubs (their server CA) */
	int hub_in_process;   /* the hub runs in this process: reach it via the bind address */
	struct issue_ca *issuer; /* signs certificates from CSRs */
	struct metrics *metrics; /* dpsemu_registrations_total (may be NULL) */
	struct authlog *authlog; /* attestation decisions and CONNECT refusals (may be NULL) */
};

/* Opens DPS's tables, loads the seed enrollments (DPSEMU_ENROLLMENTS_DIR) and
 * registers the MQTT service and the HTTPS routes. A seed file that fails
 * validation is an error (logged, naming the file). Returns EMU_OK or an emu_err. */
int dps_new(const struct dps_deps *deps, struct dps **out);
/* Re-applies the seed directory (SIGHUP). Errors are logged; state already
 * loaded stays. Returns EMU_OK or the first error. */
int dps_reload_seeds(struct dps *d);
/* After the store was emptied (store_clear_all): drops what DPS keeps in
 * memory (the parsed enrollment groups) and forgets registrations still
 * waiting for their hub, so they cannot write into the empty store. */
void dps_reset(struct dps *d);
/* Frees the service. NULL is fine. */
void dps_free(struct dps *d);

#endif
