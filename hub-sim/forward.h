/* forward.h - a copy of every accepted device-to-cloud message, published to an
 * external MQTT broker (DPSEMU_FORWARD_MQTT=host:port) so that other tools can
 * watch telemetry with any MQTT client.
 *
 * Topic dpsemu/telemetry/{deviceId} (a module's: .../{deviceId}/{moduleId}),
 * QoS 0, not retained. The payload is the message as GET /_emulator/telemetry
 * shows it, with the device id in front:
 *   {"deviceId", "moduleId"?, "sequenceNumber", "enqueuedTimeUtc", "body",
 *    "bodyEncoding"?, "properties", "systemProperties"}
 *
 * The forwarder is a libmosquitto client driven by the emulator's one event loop
 * (its socket is watched with loop_watch, a loop timer runs keep-alive and
 * reconnection), never by a thread of its own: hub state is owned by the loop's
 * thread and nothing in the hub takes locks, so the forwarder runs where
 * everything else runs. It never waits for the broker: without a connection, or
 * when the broker stops reading, messages are dropped (counted, with a warning at
 * most every few seconds) and the client reconnects with a growing delay. A
 * device's PUBACK never depends on the broker. */
#ifndef DPSEMU_HUB_FORWARD_H
#define DPSEMU_HUB_FORWARD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct hub_forward;

/* Longest host name accepted in a target (DNS limit). */
#define HUB_FORWARD_HOST_MAX 253

struct hub_forward_stats {
	uint64_t forwarded; /* messages handed to the broker connection */
	uint64_t dropped;   /* messages not forwarded (no connection, backlog full, no memory) */
	uint64_t attempts;  /* connection attempts started */
	uint64_t connects;  /* connections the broker accepted (CONNACK 0) */
	int connected;      /* 1 while a connection is up */
};

/* Parses a target "host:port": a host name, an IPv4 address or a bracketed IPv6
 * address ("[::1]:1883"), and a port 1..65535. host receives the host without
 * brackets (hostlen >= HUB_FORWARD_HOST_MAX + 1 holds any valid one). Returns
 * EMU_OK, or EMU_EINVAL with the reason in why (why may be NULL). */
int hub_forward_parse_target(const char *spec, char *host, size_t hostlen, int *port, char *why,
                             size_t whylen);

/* Writes the topic of a message of device_id (and module_id, NULL or "" for a
 * device's own message) into out. '+', '#' and '%' in the ids are written %2B,
 * %23 and %25: MQTT topic names cannot carry wildcards, and the envelope has
 * the exact ids. Returns EMU_OK, EMU_EINVAL (empty device_id) or EMU_ETOOBIG
 * (out is too small; out is then ""). */
int hub_forward_topic(const char *device_id, const char *module_id, char *out, size_t outlen);

/* The envelope for msg, a message as the telemetry log stores it (borrowed):
 * "deviceId", then msg's "moduleId" if any, then msg's other members in their
 * order. Returns compact JSON text (caller frees, *len its length) or NULL when
 * out of memory or msg is not an object. */
char *hub_forward_envelope(const char *device_id, const json_t *msg, size_t *len);

/* Creates the forwarder for target ("host:port", see hub_forward_parse_target)
 * on lp (borrowed, must outlive it) and starts connecting in the background.
 * Returns EMU_OK; EMU_EINVAL for a bad target (logged, naming
 * DPSEMU_FORWARD_MQTT); EMU_ENOMEM. An unreachable broker is not an error. */
int hub_forward_new(struct loop *lp, const char *target, struct hub_forward **out);

/* Closes the connection (a DISCONNECT is sent if the socket takes it at once)
 * and frees the forwarder; staged messages are dropped. NULL is fine. Call it
 * before lp is freed. */
void hub_forward_free(struct hub_forward *f);

/* Two steps, because a message is accepted only once its store transaction
 * commits:
 * hub_forward_stage keeps msg (a stored telemetry message; a reference is
 * taken) for device_id while its transaction is open, replacing any message
 * staged before (a transaction that never committed). hub_forward_commit
 * publishes the message staged for device_id, if any, after the commit. Neither
 * blocks; failures are counted as drops. f may be NULL (no forwarding). */
void hub_forward_stage(struct hub_forward *f, const char *device_id, json_t *msg);
void hub_forward_commit(struct hub_forward *f, const char *device_id);

/* Counters since hub_forward_new. */
void hub_forward_get_stats(const struct hub_forward *f, struct hub_forward_stats *out);

#endif
