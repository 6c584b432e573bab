/* propbag.h - message property bags: the `k=v&k=v` segment of telemetry and
 * cloud-to-device topics.
 *
 * A bag holds properties in the order they were sent or added. Each is either an
 * application property or a system property:
 *   wire key          system name              wire key          system name
 *   $.mid             messageId                $.on              outputName
 *   $.cid             correlationId            $.ifid            interfaceId
 *   $.uid             userId                   $.sub             componentName
 *   $.ct              contentType              $.schema          messageSchema
 *   $.ce              contentEncoding          $.diagid          diagId
 *   $.exp             expiryTimeUtc            $.diagctx         diagCorrelationContext
 *   $.to              to                       iothub-operation  operation
 *   $.ctime           creationTimeUtc          iothub-ack        ack
 * Keys are matched after percent-decoding, so "%24.mid" and "$.mid" are the same.
 * Any other key starting with "$." is a system property too, named by its
 * decoded key ("$.foo"): the prefix is the hub's namespace, so such a key is
 * never an application property; keeping it visible helps debugging. Everything
 * else is an application property, named by its decoded key.
 *
 * Values are decoded UTF-8 strings, or NULL for a key sent without '=' ("key=" is
 * the empty string). Duplicate keys are all kept; lookups and JSON output use the
 * first. */
#ifndef DPSEMU_PROPBAG_H
#define DPSEMU_PROPBAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;

#define PROPBAG_MAX_PROPS 64
#define PROPBAG_KEY_MAX   1024  /* decoded key bytes */
#define PROPBAG_MAX_BYTES 65536 /* raw bag bytes accepted by propbag_parse */

struct propbag_prop {
	char *name;  /* application: decoded key; system: name from the table above */
	char *value; /* decoded; NULL for a key without '=' */
	bool system;
};

struct propbag;

/* Creates an empty bag. Returns EMU_OK or EMU_ENOMEM; the caller frees *out with
 * propbag_free. */
int propbag_new(struct propbag **out);
/* Frees a bag and every string in it. NULL is fine. */
void propbag_free(struct propbag *pb);

/* Parses bag[0..len) (no terminator needed; empty pairs "a=1&&b=2" are skipped).
 * On EMU_OK *out is a new bag the caller frees. On error *out is NULL and err
 * (errlen bytes, may be NULL) says why, e.g. "malformed property bag: bad
 * %-escape in key 'a%zz'":
 *   EMU_EINVAL   a malformed or NUL (%00) escape, an empty key, a key or value
 *                that is not UTF-8;
 *   EMU_ETOOBIG  more than PROPBAG_MAX_BYTES bytes, more than PROPBAG_MAX_PROPS
 *                properties, a key longer than PROPBAG_KEY_MAX bytes once decoded;
 *   EMU_ENOMEM. */
int propbag_parse(const char *bag, size_t len, struct propbag **out, char *err, size_t errlen);

/* Number of properties, and the i-th (i < count; borrowed, valid until the bag
 * changes or is freed). */
size_t propbag_count(const struct propbag *pb);
const struct propbag_prop *propbag_at(const struct propbag *pb, size_t i);
/* The first property of that class and name, or NULL. Borrowed as above. */
const struct propbag_prop *propbag_find(const struct propbag *pb, bool system, const char *name);

/* Appends a property (copies name and value; value NULL = a null value). A system
 * name must be one of the table's names or start with "$."; an application name
 * must not be one that would parse as a system key ("$...." or the iothub- keys
 * above). Returns EMU_OK; EMU_EINVAL for an empty, unknown or reserved name, or a
 * name or value that is not UTF-8; EMU_ETOOBIG past PROPBAG_MAX_PROPS, for a
 * wire key longer than PROPBAG_KEY_MAX or a value longer than PROPBAG_MAX_BYTES;
 * EMU_ENOMEM. The bag is unchanged on error. */
int propbag_add(struct propbag *pb, bool system, const char *name, const char *value);
/* Like propbag_add, but replaces the value of the first property of that class
 * and name when there is one. */
int propbag_set(struct propbag *pb, bool system, const char *name, const char *value);

/* The wire key of a system property name ("messageId" -> "$.mid"; "$.foo" ->
 * "$.foo"), or NULL when name is not a system property name. Static storage. */
const char *propbag_system_key(const char *name);

/* Appends the bag to out as "k=v&k=v" in bag order: keys and values
 * percent-encoded except for RFC 3986 unreserved characters (so '&', '=', '/',
 * '%', '$', '+', '?', '#', spaces and non-ASCII are always escaped; "$.mid" is
 * written "%24.mid"), a null value as the key alone. An empty bag appends
 * nothing. Returns EMU_OK, or buf_append's EMU_ETOOBIG / EMU_ENOMEM (out may then
 * hold part of the bag). */
int propbag_encode(const struct propbag *pb, struct buf *out);

/* {"properties":{name:value,...},"systemProperties":{name:value,...}} with null
 * for null values. Returns a new reference, or NULL when out of memory. */
json_t *propbag_to_json(const struct propbag *pb);

/* Builds a bag from two JSON objects (either may be NULL): application
 * properties, then system properties by system name ("messageId", ...). Values
 * may be strings, null, integers or booleans (written as their JSON text). On
 * EMU_OK *out is a new bag the caller frees; otherwise *out is NULL, err says why
 * and the code is EMU_EINVAL (not an object, another value type, a name
 * propbag_add refuses), EMU_ETOOBIG or EMU_ENOMEM. */
int propbag_from_json(const json_t *properties, const json_t *system_properties,
                      struct propbag **out, char *err, size_t errlen);

#endif
