/* twin.h - device and module twins as pure JSON transforms: creation from an
 * initial twin, reported patches from the device, desired/tags updates from the
 * service, and the two views (MQTT GET body, REST twin). No I/O and no clock:
 * every change takes the time stamp to record.
 *
 * Stored format. A twin is a JSON object the caller keeps (in the store, as is)
 * and passes back; only this module looks inside:
 *   {"schema":1,
 *    "version":N,          grows by 1 on every change
 *    "etagCounter":N,      grows by 1 when tags or desired change; the etag is
 *                          base64 of it as 8 big-endian bytes ("AAAAAAAAAAQ=" = 4)
 *    "tags":{...},
 *    "desired":{...},  "desiredVersion":N,  "desiredMetadata":{...},
 *    "reported":{...}, "reportedVersion":N, "reportedMetadata":{...}}
 * desired, reported and tags hold no '$' keys. A metadata tree mirrors its
 * property tree: every object level has "$lastUpdated" (the time stamp given by
 * the caller) and, on the desired side, "$lastUpdatedVersion" (the desired
 * version of that change); each property has an object with the same stamps,
 * plus its children's when it is an object. A deleted property loses its
 * metadata; its parent's stamps record the deletion. A side never written has
 * root metadata {"$lastUpdated":"0001-01-01T00:00:00Z"}.
 *
 * A new twin starts at version 1, etag counter 1, desired and reported $version
 * 1 (initial desired properties included).
 *
 * Limits (checked on every write; a refused write changes nothing): keys 1..1024
 * bytes without '.', '$', space or control characters (C0, DEL, C1); nesting of
 * objects and arrays at most 10 levels below tags/desired/reported; strings at
 * most 4096 bytes; integers within +-4503599627370495; serialized size (compact,
 * without $metadata/$version) at most 32 KiB for desired and for reported, 8 KiB
 * for tags. The keys "$metadata" and "$version" at the top of a desired, tags or
 * reported object are ignored (service SDKs send back what GET returned), any
 * other '$' key is refused.
 *
 * Error text: functions that take err/errlen write a message there (may be NULL)
 * when they fail. */
#ifndef DPSEMU_TWIN_H
#define DPSEMU_TWIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define TWIN_NEVER        "0001-01-01T00:00:00Z"
#define TWIN_KEY_MAX      1024
#define TWIN_DEPTH_MAX    10
#define TWIN_STRING_MAX   4096
#define TWIN_INT_MAX      4503599627370495LL
#define TWIN_DESIRED_MAX  32768
#define TWIN_REPORTED_MAX 32768
#define TWIN_TAGS_MAX     8192
#define TWIN_ETAG_LEN     13 /* 12 base64 characters and the terminator */

/* Creates a twin from an enrollment's initialTwin, {"tags":{..},"properties":
 * {"desired":{..}}} (NULL for an empty twin; other members are ignored), with
 * now (an ISO-8601 time stamp, e.g. clock_iso8601_now) as the time of the
 * initial desired properties. Returns EMU_OK with *out a new reference owned by
 * the caller; EMU_EINVAL (a part is not an object, a key or value breaks the
 * limits) or EMU_ETOOBIG (a section is too large), *out NULL and err set;
 * EMU_ENOMEM. */
int twin_new(const json_t *initial, const char *now, json_t **out, char *err, size_t errlen);

/* Returns EMU_OK when twin has the stored shape, else EMU_EINVAL. Every function
 * below checks this first and fails with EMU_EINVAL (or returns NULL / -1). */
int twin_check(const json_t *twin);

/* The overall version, the desired and reported $version; -1 for a malformed twin. */
json_int_t twin_version(const json_t *twin);
json_int_t twin_desired_version(const json_t *twin);
json_int_t twin_reported_version(const json_t *twin);

/* Writes the twin's etag ("AAAAAAAAAAE=") into out. Returns EMU_OK or EMU_EINVAL. */
int twin_etag(const json_t *twin, char out[TWIN_ETAG_LEN]);

/* Checks an If-Match header value against the twin's etag: no precondition
 * (etag_is_absent: NULL, "" or blank) and the wildcard match; otherwise
 * etag_matches (etag.h) decides. A malformed twin never matches. */
bool twin_etag_matches(const json_t *twin, const char *if_match);

/* The MQTT twin GET body: {"desired":{...,"$version":N},"reported":{...,"$version":M}}
 * with no metadata and no tags. Returns a new reference, or NULL (malformed twin,
 * out of memory). */
json_t *twin_device_view(const json_t *twin);

/* What the REST twin needs from the identity record. NULL strings take the
 * defaults given. */
struct twin_identity {
	const char *device_id;          /* required */
	const char *module_id;          /* NULL or "" for a device twin */
	const char *device_etag;        /* identity etag; NULL: omitted */
	const char *status;             /* NULL: "enabled" */
	const char *status_reason;      /* NULL: omitted */
	const char *status_update_time; /* NULL: TWIN_NEVER */
	const char *connection_state;   /* "Connected"/"Disconnected"; NULL: "Disconnected" */
	const char *last_activity_time; /* NULL: TWIN_NEVER */
	json_int_t c2d_message_count;
	const char *authentication_type;  /* "sas", "selfSigned", "certificateAuthority",
	                                     "none"; NULL: "sas" */
	const char *primary_thumbprint;   /* NULL: JSON null */
	const char *secondary_thumbprint; /* NULL: JSON null */
	const char *model_id;             /* NULL: "" */
	bool iot_edge;                    /* capabilities.iotEdge (device twins only) */
};

/* The REST twin (GET/PATCH/PUT /twins/{id} and module twins), members in the
 * order the hub writes them: deviceId, [moduleId,] etag, [deviceEtag,] status,
 * [statusReason,] statusUpdateTime, connectionState, lastActivityTime,
 * cloudToDeviceMessageCount, authenticationType, x509Thumbprint, modelId,
 * version, tags, properties {desired:{...,$metadata,$version}, reported:{...}},
 * and capabilities for a device twin. Returns a new reference, or NULL
 * (malformed twin, no device_id, out of memory). */
json_t *twin_service_view(const json_t *twin, const struct twin_identity *id);

/* Applies a reported-properties patch from the device: an object whose members
 * are merged into reported (null deletes, objects merge recursively, anything
 * else replaces). Metadata of every property named is stamped with now.
 * reported $version and version grow by 1. On EMU_OK *new_version (may be NULL)
 * is the new reported $version, for "$iothub/twin/res/204/?$rid=..&$version=".
 * Errors leave twin untouched: EMU_EINVAL for a patch that is not an object
 * ("reported properties patch is not a JSON object") or breaks a key/value/depth
 * limit, EMU_ETOOBIG when reported would exceed TWIN_REPORTED_MAX, EMU_ENOMEM. */
int twin_patch_reported(json_t *twin, const json_t *patch, const char *now, json_int_t *new_version,
                        char *err, size_t errlen);

enum twin_update_mode {
	TWIN_UPDATE_PATCH,   /* PATCH /twins/{id}: merge tags and desired */
	TWIN_UPDATE_REPLACE, /* PUT /twins/{id}: replace tags and desired */
};

/* Applies a service update, body {"tags":{..},"properties":{"desired":{..}}}
 * (other members, properties.reported included, are ignored; a null tags,
 * properties or desired counts as absent).
 *   PATCH: tags and desired, where present, merge as in twin_patch_reported.
 *     The desired $version grows when body has properties.desired (even {}).
 *     *notify is that desired patch as given -- the hub does not diff, so every
 *     property named is in it -- plus "$version": the new desired version; NULL
 *     when body had no desired part.
 *   REPLACE: tags and desired become body's (missing ones become {}; null
 *     members are dropped); the desired $version always grows. *notify is the
 *     difference to the old desired: every new property, and null for each one
 *     removed (recursively inside objects present on both sides), plus
 *     "$version".
 * The etag counter grows when tags or desired were written, the version when
 * anything was. notify may be NULL when the caller pushes nothing; otherwise
 * *notify is a new reference (or NULL) owned by the caller. The If-Match check
 * (twin_etag_matches) is the caller's, before calling this.
 * Errors leave twin untouched and *notify NULL: EMU_EINVAL (body, tags,
 * properties or desired not an object, a limit broken), EMU_ETOOBIG (desired or
 * tags too large), EMU_ENOMEM. */
int twin_service_update(json_t *twin, const json_t *body, enum twin_update_mode mode,
                        const char *now, json_t **notify, char *err, size_t errlen);

#endif
