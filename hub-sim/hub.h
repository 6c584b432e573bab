/* hub.h - the simulated IoT Hub: device registry, device MQTT protocol
 * (telemetry, twins, direct methods, C2D) and the hub service API. */
#ifndef DPSEMU_HUB_H
#define DPSEMU_HUB_H

struct cfg;
struct loop;
struct store;
struct ca_registry;
struct http_server;
struct mqtt_server;
struct metrics;
struct authlog;
struct hub;

/* What the hub runs on; everything is borrowed and must outlive the service. */
struct hub_deps {
	const struct cfg *cfg;
	struct loop *lp;
	struct store *st;
	struct ca_registry *cas;
	struct http_server *http;
	struct mqtt_server *mqtt;
	const char *issuing_chain_file; /* DPS's device-certificate issuing CA chain (trusted), or NULL */
	struct metrics *metrics;        /* connections, telemetry, C2D, methods (may be NULL) */
	struct authlog *authlog;        /* device CONNECT decisions (may be NULL) */
};

/* Opens the hub's tables and registers its MQTT service and HTTPS routes.
 * Returns EMU_OK or an emu_err. */
int hub_new(const struct hub_deps *deps, struct hub **out);
/* After the store was emptied (store_clear_all) and the MQTT clients were
 * told to disconnect: answers every waiting direct-method call and telemetry
 * reader (503), so no request waits on state that is gone. NULL is fine. */
void hub_reset(struct hub *h);
/* Frees the service (connected devices are closed by the MQTT server). NULL is fine. */
void hub_free(struct hub *h);

#endif
