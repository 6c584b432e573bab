/* hub_internal.h - what the hub modules share; not for use outside hub-sim/. */
#ifndef DPSEMU_HUB_INTERNAL_H
#define DPSEMU_HUB_INTERNAL_H

#include "hub-sim/hub.h"
#include "store.h"

#include <jansson.h>
#include <stdint.h>

#define HUB_DEVICE_ID_MAX 128

struct svcauth;
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
	store_table twins;        /* device id -> stored twin (twin.c format) */
	store_table telemetry;    /* "<device id>/<20-digit seq>" -> message JSON */
	store_table c2d;          /* "<device id>/<20-digit seq>" -> queued C2D message */
	store_table meta;         /* counters */
	struct hub_conn *conns;   /* connected devices (device_mqtt.c) */
	void *issuing_chain;      /* STACK_OF(X509) * trusted for CA-signed devices, or NULL */
	struct hub_method_call *calls; /* direct methods waiting for a device (methods.c) */
	uint32_t next_method_rid;
	struct hub_waiter *waiters;    /* telemetry readers waiting for a message (telemetry.c) */
	int telemetry_keep;            /* messages kept per device */
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

/* The API view of a stored device: connection state and activity merged in
 * from the live connection table. New reference. */
json_t *hub_registry_view(struct hub *h, const json_t *device);

/* --- device_mqtt.c: connected devices ------------------------------------- */

/* True when device_id has an open MQTT connection. */
int hub_conn_is_connected(struct hub *h, const char *device_id);
/* Last activity (unix seconds) of a connected or recently connected device, 0 if none. */
int64_t hub_conn_last_activity(struct hub *h, const char *device_id);
/* Closes the device's connection (device deleted or disabled). */
void hub_conn_close(struct hub *h, const char *device_id, const char *reason);
/* Pushes a desired-properties patch (with "$version") to the device if it is
 * connected and subscribed. */
void hub_conn_push_desired(struct hub *h, const char *device_id, const json_t *patch, int64_t version);

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
/* After the commit: answers readers waiting for this device's messages. */
void hub_telemetry_notify(struct hub *h, const char *device_id);
int hub_telemetry_init(struct hub *h, struct http_server *http);
/* Answers every waiting reader (shutdown). */
void hub_telemetry_cancel_waiters(struct hub *h);

/* Route registration of each module. */
int hub_mqtt_init(struct hub *h, struct mqtt_server *mqtt);
int hub_service_api_init(struct hub *h, struct http_server *http);

#endif
