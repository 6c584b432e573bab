#include "hub-sim/propbag.h"

#include "buf.h"
#include "err.h"
#include "query.h"
#include "textenc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define SYS_PREFIX "$."
/* How much of a raw key an error message quotes. */
#define QUOTE_MAX 64

struct propbag {
	struct propbag_prop *props;
	size_t count;
	size_t cap;
};

static const struct {
	const char *key;
	const char *name;
} system_keys[] = {
    {"$.mid", "messageId"},
    {"$.cid", "correlationId"},
    {"$.uid", "userId"},
    {"$.ct", "contentType"},
    {"$.ce", "contentEncoding"},
    {"$.exp", "expiryTimeUtc"},
    {"$.to", "to"},
    {"$.ctime", "creationTimeUtc"},
    {"$.on", "outputName"},
    {"$.ifid", "interfaceId"},
    {"$.sub", "componentName"},
    {"$.schema", "messageSchema"},
    {"$.diagid", "diagId"},
    {"$.diagctx", "diagCorrelationContext"},
    {"iothub-operation", "operation"},
    {"iothub-ack", "ack"},
};
#define NSYSTEM (sizeof(system_keys) / sizeof(system_keys[0]))

/* The system name for a decoded wire key, or NULL for an application key. */
static const char *system_name_for_key(const char *key)
{
	for (size_t i = 0; i < NSYSTEM; i++) {
		if (strcmp(key, system_keys[i].key) == 0)
			return system_keys[i].name;
	}
	if (strncmp(key, SYS_PREFIX, strlen(SYS_PREFIX)) == 0)
		return key;
	return NULL;
}

const char *propbag_system_key(const char *name)
{
	for (size_t i = 0; i < NSYSTEM; i++) {
		if (strcmp(name, system_keys[i].name) == 0)
			return system_keys[i].key;
	}
	if (strncmp(name, SYS_PREFIX, strlen(SYS_PREFIX)) == 0)
		return name;
	return NULL;
}

/* Positive, so they never collide with an emu_err. */
enum decode_result { DEC_OK = 0, DEC_BAD_ESCAPE = 1, DEC_NUL = 2 };

/* Percent-decodes s[0..len) into a new NUL-terminated string (*out, *outlen).
 * Returns DEC_OK, DEC_BAD_ESCAPE, DEC_NUL (a raw or %00 NUL), or EMU_ENOMEM. */
static int decode(const char *s, size_t len, char **out, size_t *outlen)
{
	char *d = malloc(len + 1);
	size_t i = 0, j = 0;
	int rc = DEC_OK;

	*out = NULL;
	if (!d)
		return EMU_ENOMEM;
	while (i < len) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi = len - i >= 3 ? hex_digit_value((unsigned char)s[i + 1]) : -1;
			int lo = len - i >= 3 ? hex_digit_value((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0) {
				rc = DEC_BAD_ESCAPE;
				goto out;
			}
			c = hi << 4 | lo;
			i += 3;
		} else {
			i++;
		}
		if (c == 0) {
			rc = DEC_NUL;
			goto out;
		}
		d[j++] = (char)c;
	}
	d[j] = '\0';
	*out = d;
	*outlen = j;
	d = NULL;
out:
	free(d);
	return rc;
}

int propbag_new(struct propbag **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? EMU_OK : EMU_ENOMEM;
}

void propbag_free(struct propbag *pb)
{
	if (!pb)
		return;
	for (size_t i = 0; i < pb->count; i++) {
		free(pb->props[i].name);
		free(pb->props[i].value);
	}
	free(pb->props);
	free(pb);
}

/* Appends a property, taking ownership of name and value (freed on error). */
static int push(struct propbag *pb, bool system, char *name, char *value)
{
	int rc = EMU_OK;

	if (pb->count >= PROPBAG_MAX_PROPS) {
		rc = EMU_ETOOBIG;
		goto out;
	}
	if (pb->count == pb->cap) {
		size_t ncap = pb->cap ? pb->cap * 2 : 8;
		struct propbag_prop *p = realloc(pb->props, ncap * sizeof(*p));

		if (!p) {
			rc = EMU_ENOMEM;
			goto out;
		}
		pb->props = p;
		pb->cap = ncap;
	}
	pb->props[pb->count].name = name;
	pb->props[pb->count].value = value;
	pb->props[pb->count].system = system;
	pb->count++;
	return EMU_OK;
out:
	free(name);
	free(value);
	return rc;
}

static int decode_err(int rc, const char *what, const char *raw, size_t rawlen, char *err,
                      size_t errlen)
{
	int n = (int)(rawlen > QUOTE_MAX ? QUOTE_MAX : rawlen);

	if (rc == DEC_BAD_ESCAPE)
		emu_why(err, errlen, "malformed property bag: bad %%-escape in %s '%.*s'", what, n,
		        raw);
	else if (rc == DEC_NUL)
		emu_why(err, errlen, "malformed property bag: NUL byte in %s '%.*s'", what, n, raw);
	else
		emu_why(err, errlen, "out of memory");
	return rc == EMU_ENOMEM ? EMU_ENOMEM : EMU_EINVAL;
}

/* Decodes and appends one raw pair. */
static int parse_pair(struct propbag *pb, const struct query_pair *kv, char *err, size_t errlen)
{
	char *key = NULL, *value = NULL, *name = NULL;
	const char *sys;
	size_t klen = 0, vlen = 0;
	int rc;

	if (kv->key_len == 0) {
		emu_why(err, errlen, "malformed property bag: empty key");
		rc = EMU_EINVAL;
		goto out;
	}
	rc = decode(kv->key, kv->key_len, &key, &klen);
	if (rc) {
		rc = decode_err(rc, "key", kv->key, kv->key_len, err, errlen);
		goto out;
	}
	if (klen > PROPBAG_KEY_MAX) {
		emu_why(err, errlen, "property bag key '%.*s...' is longer than %d bytes",
		        QUOTE_MAX, key, PROPBAG_KEY_MAX);
		rc = EMU_ETOOBIG;
		goto out;
	}
	if (!utf8_valid(key, klen)) {
		emu_why(err, errlen, "malformed property bag: key '%.*s' is not UTF-8",
		        (int)(kv->key_len > QUOTE_MAX ? QUOTE_MAX : kv->key_len), kv->key);
		rc = EMU_EINVAL;
		goto out;
	}
	if (kv->has_value) {
		rc = decode(kv->value, kv->value_len, &value, &vlen);
		if (rc) {
			rc = decode_err(rc, "the value of", key, klen, err, errlen);
			goto out;
		}
		if (!utf8_valid(value, vlen)) {
			emu_why(err, errlen,
			        "malformed property bag: the value of '%.*s' is not "
			        "UTF-8",
			        QUOTE_MAX, key);
			rc = EMU_EINVAL;
			goto out;
		}
	}
	sys = system_name_for_key(key);
	if (sys && sys != key) {
		name = strdup(sys);
		if (!name) {
			rc = EMU_ENOMEM;
			goto out;
		}
		free(key);
	} else {
		name = key;
	}
	key = NULL;
	rc = push(pb, sys != NULL, name, value);
	name = value = NULL;
	if (rc == EMU_ETOOBIG)
		emu_why(err, errlen, "property bag has more than %d properties", PROPBAG_MAX_PROPS);
	else if (rc)
		emu_why(err, errlen, "out of memory");
out:
	free(key);
	free(value);
	return rc;
}

int propbag_parse(const char *bag, size_t len, struct propbag **out, char *err, size_t errlen)
{
	struct propbag *pb = NULL;
	const char *cur = bag, *end = bag + len;
	struct query_pair kv;
	int rc;

	*out = NULL;
	if (len > PROPBAG_MAX_BYTES) {
		emu_why(err, errlen, "property bag is longer than %d bytes", PROPBAG_MAX_BYTES);
		return EMU_ETOOBIG;
	}
	rc = propbag_new(&pb);
	if (rc) {
		emu_why(err, errlen, "out of memory");
		goto out;
	}
	while (query_next(&cur, end, &kv) == EMU_OK) {
		rc = parse_pair(pb, &kv, err, errlen);
		if (rc)
			goto out;
	}
	*out = pb;
	pb = NULL;
out:
	propbag_free(pb);
	return rc;
}

size_t propbag_count(const struct propbag *pb)
{
	return pb->count;
}

const struct propbag_prop *propbag_at(const struct propbag *pb, size_t i)
{
	return i < pb->count ? &pb->props[i] : NULL;
}

static ssize_t find_index(const struct propbag *pb, bool system, const char *name)
{
	for (size_t i = 0; i < pb->count; i++) {
		if (pb->props[i].system == system && strcmp(pb->props[i].name, name) == 0)
			return (ssize_t)i;
	}
	return -1;
}

const struct propbag_prop *propbag_find(const struct propbag *pb, bool system, const char *name)
{
	ssize_t i = find_index(pb, system, name);

	return i < 0 ? NULL : &pb->props[i];
}

/* Checks a name/value pair for propbag_add and propbag_set. */
static int check_prop(bool system, const char *name, const char *value)
{
	const char *wire = system ? propbag_system_key(name) : name;

	if (!wire || name[0] == '\0')
		return EMU_EINVAL;
	/* an application key that would come back as a system property */
	if (!system && system_name_for_key(name))
		return EMU_EINVAL;
	if (strlen(wire) > PROPBAG_KEY_MAX)
		return EMU_ETOOBIG;
	if (!utf8_valid(name, strlen(name)))
		return EMU_EINVAL;
	if (value && strlen(value) > PROPBAG_MAX_BYTES)
		return EMU_ETOOBIG;
	if (value && !utf8_valid(value, strlen(value)))
		return EMU_EINVAL;
	return EMU_OK;
}

int propbag_add(struct propbag *pb, bool system, const char *name, const char *value)
{
	char *n = NULL, *v = NULL;
	int rc = check_prop(system, name, value);

	if (rc)
		return rc;
	if (pb->count >= PROPBAG_MAX_PROPS)
		return EMU_ETOOBIG;
	n = strdup(name);
	v = value ? strdup(value) : NULL;
	if (!n || (value && !v)) {
		free(n);
		free(v);
		return EMU_ENOMEM;
	}
	return push(pb, system, n, v);
}

int propbag_set(struct propbag *pb, bool system, const char *name, const char *value)
{
	ssize_t i = find_index(pb, system, name);
	char *v = NULL;
	int rc;

	if (i < 0)
		return propbag_add(pb, system, name, value);
	rc = check_prop(system, name, value);
	if (rc)
		return rc;
	if (value) {
		v = strdup(value);
		if (!v)
			return EMU_ENOMEM;
	}
	free(pb->props[i].value);
	pb->props[i].value = v;
	return EMU_OK;
}

static int append_encoded(struct buf *out, const char *s)
{
	char *e = url_encode(s);
	int rc;

	if (!e)
		return EMU_ENOMEM;
	rc = buf_append_str(out, e);
	free(e);
	return rc;
}

int propbag_encode(const struct propbag *pb, struct buf *out)
{
	int rc = EMU_OK;

	for (size_t i = 0; i < pb->count && rc == EMU_OK; i++) {
		const struct propbag_prop *p = &pb->props[i];
		const char *key = p->system ? propbag_system_key(p->name) : p->name;

		if (!key)
			return EMU_EINVAL; /* not reachable through the API */
		if (i > 0)
			rc = buf_append(out, "&", 1);
		if (rc == EMU_OK)
			rc = append_encoded(out, key);
		if (rc == EMU_OK && p->value) {
			rc = buf_append(out, "=", 1);
			if (rc == EMU_OK)
				rc = append_encoded(out, p->value);
		}
	}
	return rc;
}

json_t *propbag_to_json(const struct propbag *pb)
{
	json_t *root = json_object(), *app = json_object(), *sys = json_object();

	if (!root || !app || !sys)
		goto fail;
	for (size_t i = 0; i < pb->count; i++) {
		const struct propbag_prop *p = &pb->props[i];
		json_t *target = p->system ? sys : app;
		json_t *v;

		if (json_object_get(target, p->name))
			continue; /* the first of duplicate keys wins */
		v = p->value ? json_string(p->value) : json_null();
		if (!v || json_object_set_new(target, p->name, v))
			goto fail;
	}
	if (json_object_set_new(root, "properties", app)) {
		app = NULL;
		goto fail;
	}
	app = NULL;
	if (json_object_set_new(root, "systemProperties", sys)) {
		sys = NULL;
		goto fail;
	}
	return root;
fail:
	json_decref(app);
	json_decref(sys);
	json_decref(root);
	return NULL;
}

/* Adds every member of obj (may be NULL) to pb. */
static int add_json_members(struct propbag *pb, bool system, const json_t *obj, char *err,
                            size_t errlen)
{
	const char *what = system ? "systemProperties" : "properties";
	const char *key;
	json_t *v;

	if (!obj)
		return EMU_OK;
	if (!json_is_object(obj)) {
		emu_why(err, errlen, "%s must be a JSON object", what);
		return EMU_EINVAL;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		char text[32];
		const char *value;
		int rc;

		if (json_is_string(v)) {
			value = json_string_value(v);
			if (strlen(value) != json_string_length(v)) {
				emu_why(err, errlen, "%s.%.*s has a NUL character", what, QUOTE_MAX,
				        key);
				return EMU_EINVAL;
			}
		} else if (json_is_null(v)) {
			value = NULL;
		} else if (json_is_integer(v)) {
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT,
			         json_integer_value(v));
			value = text;
		} else if (json_is_boolean(v)) {
			value = json_is_true(v) ? "true" : "false";
		} else {
			emu_why(err, errlen,
			        "%s.%.*s must be a string, an integer, a boolean or "
			        "null",
			        what, QUOTE_MAX, key);
			return EMU_EINVAL;
		}
		rc = propbag_add(pb, system, key, value);
		if (rc == EMU_EINVAL)
			emu_why(err, errlen,
			        system ? "unknown system property '%.*s'"
			               : "application property name '%.*s' is reserved or "
			                 "empty",
			        QUOTE_MAX, key);
		else if (rc == EMU_ETOOBIG)
			emu_why(err, errlen, "%s.%.*s: too many properties or too long", what,
			        QUOTE_MAX, key);
		else if (rc)
			emu_why(err, errlen, "out of memory");
		if (rc)
			return rc;
	}
	return EMU_OK;
}

int propbag_from_json(const json_t *properties, const json_t *system_properties,
                      struct propbag **out, char *err, size_t errlen)
{
	struct propbag *pb = NULL;
	int rc;

	*out = NULL;
	rc = propbag_new(&pb);
	if (rc) {
		emu_why(err, errlen, "out of memory");
		goto out;
	}
	rc = add_json_members(pb, false, properties, err, errlen);
	if (rc == EMU_OK)
		rc = add_json_members(pb, true, system_properties, err, errlen);
	if (rc == EMU_OK) {
		*out = pb;
		pb = NULL;
	}
out:
	propbag_free(pb);
	return rc;
}
