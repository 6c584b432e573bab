/* hub_internal.h - what the hub modules share; not for use outside hub-sim/. */
#ifndef DPSEMU_HUB_INTERNAL_H
#define DPSEMU_HUB_INTERNAL_H

#include "hub-sim/forward.h"
#include "hub-sim/hub.h"
#include "store.h"

#include <jansson.h>
#include <stdint.h>

#define HUB_DEVICE_ID_MAX 128
/* "<device id>/<module id>": the store key of a module's record and twin. Device
 * ids cannot contain '/', so it never collides with a device's key. */
#define HUB_IDENTITY_KEY_MAX (2 * HUB_DEVICE_ID_MAX + 1)

struct svcauth;
struct authlog;
struct metrics_family;
struct http_req;
struct mqtt_session;
struct hub_conn;

struct hub {
	const struct cfg *cfg;
	struct loop *lp;
	struct store *st;
	struct ca_registry *cas;
	struct http_server *http;
	struct svcauth *auth;     /* iothubowner */
	store_table devices;      /* device id (case-sensitive) -> Device JSON (registry.c) */
	store_table modules;      /* "<device id>/<module id>" -> Module JSON (registry.c) */
	store_table twins;        /* device id or "<device id>/<module id>" -> stored twin
	                             (twin.c format) */
	store_table telemetry;    /* "<device id>/<20-digit seq>" -> message JSON */
	store_table c2d;          /* "<device id>/<20-digit seq>" -> queued C2D message */
	store_table meta;         /* counters */
	struct hub_conn *conns;   /* connected devices (device_mqtt.c) */
	void *issuing_chain;      /* STACK_OF(X509) * trusted for CA-signed devices, or NULL */
	struct hub_method_call *calls; /* direct methods waiting for a device (methods.c) */
	uint32_t next_method_rid;
	struct hub_waiter *waiters;    /* telemetry readers waiting for a message (telemetry.c) */
	int telemetry_keep;            /* messages kept per device */
	struct authlog *authlog;       /* device CONNECT decisions (borrowed, may be NULL) */
	struct metrics_family *connected_devices;  /* gauge (metrics families may be NULL) */
	struct metrics_family *telemetry_total;
	struct metrics_family *c2d_total;          /* {event} */
	struct metrics_family *methods_total;      /* {result} */
	struct hub_forward *forward;   /* copies telemetry to a broker (forward.h), or NULL */
};

/* --- registry.c: the device identity registry ------------------------------ */

/* Reads a device record (the stored Device JSON, new reference) in txn.
 * EMU_OK, EMU_ENOTFOUND, EMU_ESTORE. */
int hub_registry_get(struct hub *h, struct store_txn *txn, const char *device_id, json_t **out);

/* Creates or updates a device from a service-API body (PUT /devices/{id}).
 * if_match: NULL/"" = create only (EMU_EEXIST -> 409), "*" = upsert, an etag =
 * update only (EMU_ENOTFOUND -> 404, EMU_EPRECOND -> 412). Validates the body
 * (EMU_EINVAL with why). Generates what the hub generates (generationId, etag,
 * SAS keys when missing). On success *out is the stored record (new reference)
 * and, for a new device, an empty twin is created in the same transaction. */
int hub_registry_put(struct hub *h, struct store_txn *txn, const char *device_id,
		     const json_t *body, const char *if_match, json_t **out, char *why,
		     size_t whylen);

/* Records a connect or disconnect on the stored device record (module_id NULL
 * or "") or module record: connectionStateUpdatedTime = now and, when
 * last_activity > 0, lastActivityTime. These are runtime fields: the etag
 * stays. Errors are logged (a lost time stamp must not fail a connection). */
void hub_registry_note_connection(struct hub *h, const char *device_id, const char *module_id,
				  int64_t last_activity);

/* The API view of a stored device: connection state and activity merged in
 * from the live connection table, and cloudToDeviceMessageCount counted in txn
 * (read or write; the stored count stays when the queue is unreadable, logged).
 * New reference (NULL when out of memory). */
json_t *hub_registry_view(struct hub *h, struct store_txn *txn, const json_t *device);

/* Checks a device id: 1..HUB_DEVICE_ID_MAX ASCII letters, digits and
 * - . + % _ # * ? ! ( ) , = @ $ ' : ; (case-sensitive). Returns EMU_OK or
 * EMU_EINVAL with the offending character in why (why may be NULL). */
int hub_device_id_valid(const char *id, char *why, size_t whylen);

/* Deletes a device, its twin, its modules and their twins and its queued C2D
 * messages (hub_c2d_purge; its telemetry log stays readable) in txn, then
 * closes its connections and its modules' (hub_conn_close, "device deleted").
 * if_match NULL, "" or "*" deletes
 * unconditionally; an etag must match (etag_matches). Returns EMU_OK,
 * EMU_ENOTFOUND, EMU_EPRECOND (why says so), EMU_ENOMEM or EMU_ESTORE.
 * hub_registry_put likewise calls hub_conn_close ("device disabled") when a
 * device goes from enabled to disabled; both call it with txn still open, so it
 * must not open a store transaction of its own. */
int hub_registry_delete(struct hub *h, struct store_txn *txn, const char *device_id,
			const char *if_match, char *why, size_t whylen);

/* Calls cb for each stored device in id order, starting after the id `after`
 * (NULL = from the first). device is borrowed for the call. Stops when cb returns
 * non-zero and returns that value; 0 after the last; a negative emu_err when the
 * store fails. Records that are not JSON objects are skipped (logged). */
typedef int (*hub_registry_cb)(const char *device_id, const json_t *device, void *arg);
int hub_registry_foreach(struct hub *h, struct store_txn *txn, const char *after,
			 hub_registry_cb cb, void *arg);

/* Device counts {"totalDeviceCount","enabledDeviceCount","disabledDeviceCount"}
 * (new reference in *out). EMU_OK, EMU_ENOMEM or a store error. */
int hub_registry_stats(struct hub *h, struct store_txn *txn, json_t **out);

/* --- registry.c: module identities ---------------------------------------
 * Modules live in their own table under hub_identity_key's "<device>/<module>"
 * (so a device's modules are adjacent and listed in id order); a module's twin
 * is in the twins table under the same key. Records have Azure's Module shape:
 * moduleId, managedBy, deviceId, generationId, etag, connectionState,
 * connectionStateUpdatedTime, lastActivityTime, cloudToDeviceMessageCount (0:
 * modules receive no C2D) and authentication, validated and generated as a
 * device's. */

/* Writes device_id (module_id NULL or "") or "<device_id>/<module_id>" into out.
 * Returns EMU_OK, or EMU_EINVAL when an id is invalid (hub_device_id_valid's
 * rule; why may be NULL). */
int hub_identity_key(const char *device_id, const char *module_id,
		     char out[HUB_IDENTITY_KEY_MAX + 1], char *why, size_t whylen);

/* Checks a module id (the device id rule). EMU_OK or EMU_EINVAL with why. */
int hub_module_id_valid(const char *id, char *why, size_t whylen);

/* Reads a module record (new reference in *out). EMU_OK, EMU_ENOTFOUND (device
 * or module unknown, invalid ids), EMU_ESTORE. */
int hub_module_get(struct hub *h, struct store_txn *txn, const char *device_id,
		   const char *module_id, json_t **out);

/* Creates or updates a module from a service-API body (PUT
 * /devices/{id}/modules/{mid}); If-Match, validation and generated fields as
 * hub_registry_put. The device must exist: EMU_ENOTFOUND with why saying so
 * (also returned for an etag If-Match on a missing module; check the device
 * first to tell them apart). A new module gets an empty twin. */
int hub_module_put(struct hub *h, struct store_txn *txn, const char *device_id,
		   const char *module_id, const json_t *body, const char *if_match, json_t **out,
		   char *why, size_t whylen);

/* Deletes a module and its twin, then closes its connection. If-Match and
 * returns as hub_registry_delete. */
int hub_module_delete(struct hub *h, struct store_txn *txn, const char *device_id,
		      const char *module_id, const char *if_match, char *why, size_t whylen);

/* Calls cb (module_id, record borrowed for the call, arg) for each module of
 * device_id in module id order. Stops when cb returns non-zero and returns
 * that value; 0 after the last; a negative emu_err when the store fails. */
int hub_module_foreach(struct hub *h, struct store_txn *txn, const char *device_id,
		       hub_registry_cb cb, void *arg);

/* The API view of a stored module: connection state and activity merged in
 * from the live connection table. New reference (NULL when out of memory). */
json_t *hub_module_view(struct hub *h, const json_t *module);

/* --- device_mqtt.c: connected identities ---------------------------------
 * module_id NULL or "" names the device's own connection, anything else the
 * module's. */

/* True when the identity has an open MQTT connection. */
int hub_conn_is_connected(struct hub *h, const char *device_id, const char *module_id);
/* Last activity (unix seconds) of a connected identity, 0 if none. */
int64_t hub_conn_last_activity(struct hub *h, const char *device_id, const char *module_id);
/* Closes a connection: module_id NULL closes the device's and every one of its
 * modules' (device deleted or disabled); a module id only that module's. */
void hub_conn_close(struct hub *h, const char *device_id, const char *module_id,
		    const char *reason);
/* Pushes a desired-properties patch (with "$version") to the identity if it is
 * connected and subscribed. */
void hub_conn_push_desired(struct hub *h, const char *device_id, const char *module_id,
			   const json_t *patch, int64_t version);

/* --- errors.c: the hub's error answers ------------------------------------ */

/* Answers with the IoT Hub error envelope the service SDKs parse:
 * header iothub-errorcode: <code>, body {"Message":"ErrorCode:<code>;<text>",
 * "ExceptionMessage":"Tracking ID:<id>-TimeStamp:<ts>"}, and logs the reason.
 * code is Azure's name ("DeviceNotFound", "DeviceAlreadyExists",
 * "PreconditionFailed", "ArgumentInvalid", "IotHubUnauthorizedAccess", ...). */
void hub_respond_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Direct-method failures nest a JSON error in Message: {"errorCode":404103,
 * "trackingId","message","info":{},"timestampUtc"} (what the SDKs expect). */
void hub_respond_method_error(struct http_req *r, int status, int error_code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Checks the iothubowner SAS; on failure answers 401 in the hub's envelope. */
int hub_require_auth(struct hub *h, struct http_req *r);

/* --- telemetry.c: what devices sent, kept for tests to read ---------------- */

/* Appends a device-to-cloud message to the device's log in txn (bounded: the
 * oldest beyond telemetry_keep is dropped). properties/system_properties are
 * borrowed JSON objects (may be NULL). *seq receives its sequence number. */
int hub_telemetry_add(struct hub *h, struct store_txn *txn, const char *device_id,
		      const char *module_id, const void *body, size_t len, const json_t *properties,
		      const json_t *system_properties, int64_t *seq);
/* After the commit: answers readers waiting for this device's messages and
 * forwards the message hub_telemetry_add stored to the broker, if any
 * (hub_forward_stage / hub_forward_commit: a message is forwarded only once
 * its transaction committed). */
void hub_telemetry_notify(struct hub *h, const char *device_id);
int hub_telemetry_init(struct hub *h, struct http_server *http);
/* Answers every waiting reader (shutdown). */
void hub_telemetry_cancel_waiters(struct hub *h);

/* --- c2d.c: cloud-to-device queues ---------------------------------------- */

/* Appends msg, a stored C2D message ({"body": base64, "systemProperties",
 * "properties", "enqueuedTimeUtc"}), to device_id's queue in txn and sets its
 * "sequenceNumber" (also in *seq; numbers grow per device id and are never
 * reused, even after a purge or the device's deletion). Checks neither that the
 * device exists nor the queue's depth. EMU_OK, EMU_EINVAL (id longer than
 * HUB_DEVICE_ID_MAX), EMU_ENOMEM or a store error. msg stays the caller's. */
int hub_c2d_enqueue(struct hub *h, struct store_txn *txn, const char *device_id, json_t *msg,
		    int64_t *seq);
/* The number of messages queued for device_id in txn (0 for an unknown device),
 * including ones delivered but not yet acknowledged. EMU_OK, EMU_EINVAL (id too
 * long), EMU_ENOMEM or a store error (*count is then 0). */
int hub_c2d_count(struct hub *h, struct store_txn *txn, const char *device_id, size_t *count);
/* Deletes every message queued for device_id in txn (write), delivered or not;
 * *purged (may be NULL) receives how many. A connected device may still
 * acknowledge what it received: that completes nothing. EMU_OK, EMU_EINVAL,
 * EMU_ENOMEM or a store error (nothing is purged once txn is aborted). */
int hub_c2d_purge(struct hub *h, struct store_txn *txn, const char *device_id, size_t *purged);

/* Sends the device's queued messages it does not have yet (it is connected
 * and subscribed to devicebound). */
void hub_c2d_deliver(struct hub *h, struct hub_conn *c);
/* The device acknowledged packet_id: the message is complete (deleted). */
void hub_c2d_acked(struct hub *h, struct hub_conn *c, uint16_t packet_id);
int hub_c2d_init(struct hub *h, struct http_server *http);

/* --- methods.c: direct methods -------------------------------------------- */

/* The device subscribed to methods: send it the invocations waiting for it. */
void hub_methods_device_online(struct hub *h, struct hub_conn *c);
/* The device answered invocation rid with status and a JSON (or empty) body. */
void hub_methods_device_response(struct hub *h, struct hub_conn *c, const char *rid,
				 size_t rid_len, int status, const unsigned char *payload,
				 size_t len);
int hub_methods_init(struct hub *h, struct http_server *http);
/* Fails every pending invocation with 503 and why (shutdown, reset). */
void hub_methods_cancel(struct hub *h, const char *why);

/* --- device_mqtt.c: per-connection state, shared with c2d.c and methods.c -- */

#define HUB_C2D_INFLIGHT 8

struct hub_conn {
	struct hub *h;
	struct hub_conn *prev, *next;
	struct mqtt_session *s;
	char device_id[HUB_DEVICE_ID_MAX + 1];
	char module_id[HUB_DEVICE_ID_MAX + 1]; /* "" for a device connection */
	char key[HUB_IDENTITY_KEY_MAX + 1];    /* hub_identity_key: twin key, log name */
	int sub_c2d, sub_twin, sub_desired, sub_methods;
	struct loop_timer *after_subscribe; /* deliver C2D / methods once SUBACK is out */
	struct loop_timer *sas_expiry;      /* closes a SAS connection when its token expires */
	int64_t last_activity;              /* unix seconds of the last packet from the device */
	struct {
		uint16_t packet_id;            /* 0 = free slot */
		char key[HUB_DEVICE_ID_MAX + 32];
	} inflight[HUB_C2D_INFLIGHT];
};

/* The connection of the device (module_id NULL or "") or of the module, or NULL. */
struct hub_conn *hub_conn_find(struct hub *h, const char *device_id, const char *module_id);

/* Route registration of each module. */
int hub_mqtt_init(struct hub *h, struct mqtt_server *mqtt);
int hub_service_api_init(struct hub *h, struct http_server *http);

#endif
