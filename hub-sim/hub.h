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
};

/* Opens the hub's tables and registers its MQTT service and HTTPS routes.
 * Returns EMU_OK or an emu_err. */
int hub_new(const struct hub_deps *deps, struct hub **out);
/* Frees the service (connected devices are closed by the MQTT server). NULL is fine. */
void hub_free(struct hub *h);

#endif
