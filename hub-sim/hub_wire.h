/* hub_wire.h - the IoT Hub MQTT wire format as pure functions: CONNECT usernames,
 * the topics a connected device may publish to, the filters it may subscribe to,
 * and the topics the hub publishes on. No I/O and no allocation, so every
 * function can be unit-tested and fuzzed on its own.
 *
 * Identifiers in topics are compared byte for byte and never percent-decoded:
 * the hub decodes property bags only. */
#ifndef DPSEMU_HUB_WIRE_H
#define DPSEMU_HUB_WIRE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

#define HUB_WIRE_HOST_MAX        255
#define HUB_WIRE_ID_MAX          128 /* device and module ids */
#define HUB_WIRE_API_MAX         64
#define HUB_WIRE_MODEL_MAX       512 /* dtmi:... */
#define HUB_WIRE_CLIENT_TYPE_MAX 256 /* longer DeviceClientType values are cut */
#define HUB_WIRE_RID_MAX         128
#define HUB_WIRE_METHOD_MAX      128
#define HUB_WIRE_REASON_MAX      256

/* Returns true when id[0..len) is a usable device or module id: 1..128 bytes of
 * ASCII letters, digits and - . + % _ # * ? ! ( ) , = @ $ ' : ; (the registry's
 * set). '/' is never allowed: ids are topic segments. */
bool hub_wire_valid_id(const char *id, size_t len);

/* A parsed CONNECT username. Every string is NUL-terminated; "" when absent. */
struct hub_username {
	char host[HUB_WIRE_HOST_MAX + 1]; /* as sent, port included ("localhost:8884") */
	char device_id[HUB_WIRE_ID_MAX + 1];
	char module_id[HUB_WIRE_ID_MAX + 1]; /* "" for a device connection */
	char api_version[HUB_WIRE_API_MAX + 1];
	char model_id[HUB_WIRE_MODEL_MAX + 1];
	char client_type[HUB_WIRE_CLIENT_TYPE_MAX + 1]; /* bytes outside 0x20..0x7e become '?' */
	bool has_api_version;                           /* api-version present and non-empty */
	bool legacy;                                    /* no '?' before the query (old C SDKs) */
	const char *error; /* static text when parsing failed, else NULL */
};

/* Parses a hub CONNECT username. Accepted shapes ({q} is k=v&k=v):
 *   {host}/{device}/?{q}          {host}/{device}/{module}/?{q}
 *   {host}/{device}/api-version=..[&..]   (legacy: the query starts right
 *   {host}/{device}/{module}/api-version=..[&..]  after the id, without '?')
 *   {host}/{device}[/]            {host}/{device}/{module}[/]   (no query)
 * The query starts at the first segment after the device id that begins with
 * '?' (or "api-version=" in the legacy form) and runs to the end of the
 * username, '/' included. Keys are matched ASCII case-insensitively after
 * percent-decoding; the first of duplicate keys wins; unknown keys are ignored.
 * Values are percent-decoded; a value with a malformed escape is kept as sent
 * (Node sends model-id raw, embedded clients send raw user agents).
 *
 * DPS shares the MQTT port, so a username that contains "/registrations/" and,
 * somewhere after it (not sharing its last '/'), "/api-version=" -- the DPS
 * form {scope}/registrations/{id}/api-version=... -- is never claimed here. The
 * only hub username of that shape is the legacy form for a module of a device
 * named "registrations"; it is left to DPS. ("h/registrations/api-version=1",
 * a legacy device named "registrations", stays the hub's.)
 *
 * Returns EMU_OK; EMU_EINVAL (out->error says why) when the shape is wrong, the
 * username is DPS's, an id or host has a character outside its set, or a field
 * is longer than its HUB_WIRE_*_MAX. A missing api-version is not an error:
 * check has_api_version. */
int hub_wire_parse_username(const char *u, struct hub_username *out);

/* Returns true when the MQTT ClientId is the username's identity: "{device}" for a
 * device connection, "{device}/{module}" for a module. */
bool hub_wire_client_id_matches(const struct hub_username *u, const char *client_id);

enum hub_publish_kind {
	HUB_PUB_NOT_ALLOWED = 0,
	HUB_PUB_TELEMETRY,       /* devices/{d}[/modules/{m}]/messages/events[/[{bag}[/]]] */
	HUB_PUB_TWIN_GET,        /* $iothub/twin/GET/?$rid=.. */
	HUB_PUB_TWIN_REPORTED,   /* $iothub/twin/PATCH/properties/reported/?$rid=..[&$version=n] */
	HUB_PUB_METHOD_RESPONSE, /* $iothub/methods/res/{status}/?$rid=.. */
};

struct hub_publish_topic {
	enum hub_publish_kind kind;
	const char *rid; /* into the topic: $rid exactly as sent (echo it as is) */
	size_t rid_len;
	const char *bag; /* TELEMETRY: the raw property bag, into the topic; len 0 if none */
	size_t bag_len;
	int status;       /* METHOD_RESPONSE: the device's status */
	bool has_version; /* TWIN_REPORTED: $version given */
	long long version;
	char reason[HUB_WIRE_REASON_MAX]; /* NOT_ALLOWED: why, for the log */
};

/* Classifies a PUBLISH topic from a connected identity (module_id NULL or "" for
 * a device). A leading '?' on a telemetry property bag is dropped. Extra query
 * parameters after $rid are ignored.
 * Returns EMU_OK with the kind and its fields, or EMU_EPROTO with kind
 * HUB_PUB_NOT_ALLOWED and a reason: another identity's topic, an unknown topic, a
 * wildcard ('+', '#') in the name, a missing/empty/over-long $rid, a status or
 * $version that is not a number. The slices point into topic, which must
 * outlive them. */
int hub_wire_parse_publish(const char *device_id, const char *module_id, const char *topic,
                           struct hub_publish_topic *out);

enum hub_sub_kind {
	HUB_SUB_NOT_ALLOWED = 0,
	HUB_SUB_C2D,            /* devices/{d}/messages/devicebound/# (devices only) */
	HUB_SUB_TWIN_RESPONSES, /* $iothub/twin/res/# */
	HUB_SUB_DESIRED,        /* $iothub/twin/PATCH/properties/desired/# */
	HUB_SUB_METHODS,        /* $iothub/methods/POST/# */
	HUB_SUB_MODULE_INPUTS,  /* devices/{d}/modules/{m}/inputs/# or devices/{d}/modules/{m}/# */
};

struct hub_subscription {
	enum hub_sub_kind kind;
	char reason[HUB_WIRE_REASON_MAX]; /* NOT_ALLOWED: why */
};

/* Checks one SUBSCRIBE filter from a connected identity. Filters are matched
 * exactly; the hub allows no other wildcard use.
 * Returns EMU_OK with the feature the filter enables, or EMU_EPROTO with kind
 * HUB_SUB_NOT_ALLOWED and a reason. */
int hub_wire_check_subscribe(const char *device_id, const char *module_id, const char *filter,
                             struct hub_subscription *out);

/* Builders. Each writes a NUL-terminated topic into out (outlen bytes) and returns
 * EMU_OK, EMU_ETOOBIG when it does not fit, or EMU_EINVAL for a bad argument. */

/* "$iothub/twin/res/{status}/?$rid={rid}[&$version={version}]"; version < 0 leaves
 * it out. rid is echoed as given (1..HUB_WIRE_RID_MAX bytes). */
int hub_wire_twin_response_topic(char *out, size_t outlen, int status, const char *rid,
                                 size_t rid_len, long long version);
/* "$iothub/twin/PATCH/properties/desired/?$version={version}" (version >= 0). */
int hub_wire_desired_topic(char *out, size_t outlen, long long version);
/* "$iothub/methods/POST/{name}/?$rid={rid}". name: 1..HUB_WIRE_METHOD_MAX printable
 * ASCII bytes without '/', '?', '+', '#' (so every SDK's topic split holds);
 * rid: 1..HUB_WIRE_RID_MAX bytes, same rule. */
int hub_wire_method_request_topic(char *out, size_t outlen, const char *name, const char *rid);
/* Appends "devices/{device_id}/messages/devicebound/{bag}" to out; bag is an
 * encoded property bag (propbag_encode) or "" -- the '/' after devicebound is
 * written either way, since Node's topic match requires it. Returns EMU_OK;
 * EMU_EINVAL for an invalid device id, one with '+' or '#' (legal in the
 * registry, impossible in a topic name), or a bag containing '/', '+' or '#';
 * or buf_printf's error (EMU_ETOOBIG past out's max, EMU_ENOMEM). */
int hub_wire_c2d_topic(struct buf *out, const char *device_id, const char *bag);

#endif
