#include "hub-sim/twin.h"

#include "err.h"
#include "etag.h"
#include "textenc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA               1
#define LAST_UPDATED         "$lastUpdated"
#define LAST_UPDATED_VERSION "$lastUpdatedVersion"
/* How much of a key an error message quotes. */
#define QUOTE_MAX 64

/* Which section a write goes to: limits, metadata flavour, names for errors. */
struct section {
	const char *name; /* for messages: "reported", "desired", "tags" */
	size_t max_bytes;
	bool metadata;
	bool versioned; /* metadata carries $lastUpdatedVersion */
};

static const struct section SEC_REPORTED = {"reported", TWIN_REPORTED_MAX, true, false};
static const struct section SEC_DESIRED = {"desired", TWIN_DESIRED_MAX, true, true};
static const struct section SEC_TAGS = {"tags", TWIN_TAGS_MAX, false, false};

/* ---- stored shape ---- */

static bool has_int(const json_t *t, const char *k)
{
	const json_t *v = json_object_get(t, k);

	return json_is_integer(v) && json_integer_value(v) >= 0;
}

static bool has_obj(const json_t *t, const char *k)
{
	return json_is_object(json_object_get(t, k));
}

int twin_check(const json_t *twin)
{
	const json_t *schema = json_object_get(twin, "schema");

	if (!json_is_object(twin) || !json_is_integer(schema) ||
	    json_integer_value(schema) != SCHEMA || !has_int(twin, "version") ||
	    !has_int(twin, "etagCounter") || !has_int(twin, "desiredVersion") ||
	    !has_int(twin, "reportedVersion") || !has_obj(twin, "tags") ||
	    !has_obj(twin, "desired") || !has_obj(twin, "desiredMetadata") ||
	    !has_obj(twin, "reported") || !has_obj(twin, "reportedMetadata"))
		return EMU_EINVAL;
	return EMU_OK;
}

static json_int_t int_member(const json_t *twin, const char *k)
{
	if (twin_check(twin) != EMU_OK)
		return -1;
	return json_integer_value(json_object_get(twin, k));
}

json_int_t twin_version(const json_t *twin)
{
	return int_member(twin, "version");
}

json_int_t twin_desired_version(const json_t *twin)
{
	return int_member(twin, "desiredVersion");
}

json_int_t twin_reported_version(const json_t *twin)
{
	return int_member(twin, "reportedVersion");
}

/* ---- validation ---- */

static const char *key_problem(const char *k)
{
	size_t n = strlen(k);

	if (n == 0)
		return "is empty";
	if (n > TWIN_KEY_MAX)
		return "is longer than 1024 bytes";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];

		if (c == '.' || c == '$' || c == ' ')
			return "contains '.', '$' or a space";
		if (c < 0x20 || c == 0x7f)
			return "contains a control character";
		/* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8 */
		if (c == 0xc2 && i + 1 < n && (unsigned char)k[i + 1] <= 0x9f)
			return "contains a control character";
	}
	return NULL;
}

/* Checks keys, values and nesting of v, which sits depth levels below the
 * section root. */
static int validate(const json_t *v, int depth, const char *sec, char *err, size_t errlen)
{
	const char *key, *why;
	json_t *child;
	size_t i;
	int rc;

	if (json_is_object(v) || json_is_array(v)) {
		if (depth > TWIN_DEPTH_MAX) {
			emu_why(err, errlen, "%s properties are nested deeper than %d levels", sec,
			        TWIN_DEPTH_MAX);
			return EMU_EINVAL;
		}
	}
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, child)
		{
			why = key_problem(key);
			if (why) {
				emu_why(err, errlen, "%s property name '%.*s' %s", sec, QUOTE_MAX,
				        key, why);
				return EMU_EINVAL;
			}
			rc = validate(child, depth + 1, sec, err, errlen);
			if (rc)
				return rc;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child)
		{
			rc = validate(child, depth + 1, sec, err, errlen);
			if (rc)
				return rc;
		}
	} else if (json_is_string(v)) {
		if (json_string_length(v) > TWIN_STRING_MAX) {
			emu_why(err, errlen, "a %s string value is longer than %d bytes", sec,
			        TWIN_STRING_MAX);
			return EMU_EINVAL;
		}
	} else if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);

		if (x > TWIN_INT_MAX || x < -TWIN_INT_MAX) {
			emu_why(err, errlen, "a %s integer is outside +-%lld", sec, TWIN_INT_MAX);
			return EMU_EINVAL;
		}
	}
	return EMU_OK;
}

/* A copy of a section object without the read-only "$metadata"/"$version" keys
 * clients echo back; NULL when out of memory. */
static json_t *strip_readonly(const json_t *obj)
{
	json_t *copy = json_deep_copy(obj);

	if (copy) {
		json_object_del(copy, "$metadata");
		json_object_del(copy, "$version");
	}
	return copy;
}

/* Validates a section patch as sent: an object, within the limits. On EMU_OK
 * *out is the stripped copy (new reference). */
static int prepare_patch(const json_t *patch, const struct section *sec, json_t **out, char *err,
                         size_t errlen)
{
	json_t *p;
	int rc;

	*out = NULL;
	if (!json_is_object(patch)) {
		emu_why(err, errlen, "%s%s is not a JSON object", sec->name,
		        sec == &SEC_TAGS ? "" : " properties patch");
		return EMU_EINVAL;
	}
	p = strip_readonly(patch);
	if (!p) {
		emu_why(err, errlen, "out of memory");
		return EMU_ENOMEM;
	}
	rc = validate(p, 0, sec->name, err, errlen);
	if (rc) {
		json_decref(p);
		return rc;
	}
	*out = p;
	return EMU_OK;
}

static int check_size(const json_t *obj, const struct section *sec, char *err, size_t errlen)
{
	size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);

	if (n == 0) {
		emu_why(err, errlen, "out of memory");
		return EMU_ENOMEM;
	}
	if (n > sec->max_bytes) {
		emu_why(err, errlen,
		        "%s properties would take %zu bytes, more than the %zu allowed", sec->name,
		        n, sec->max_bytes);
		return EMU_ETOOBIG;
	}
	return EMU_OK;
}

/* ---- merging with metadata ---- */

/* Sets the stamps of one metadata level (existing keys keep their place). */
static int stamp(json_t *meta, const struct section *sec, const char *now, json_int_t ver)
{
	if (json_object_set_new(meta, LAST_UPDATED, json_string(now)))
		return EMU_ENOMEM;
	if (sec->versioned && json_object_set_new(meta, LAST_UPDATED_VERSION, json_integer(ver)))
		return EMU_ENOMEM;
	return EMU_OK;
}

static json_t *new_meta(const struct section *sec, const char *now, json_int_t ver)
{
	json_t *m = json_object();

	if (m && stamp(m, sec, now, ver) != EMU_OK) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

/* Merges patch (validated) into target, keeping meta (NULL for tags) in step. */
static int merge(json_t *target, json_t *meta, const json_t *patch, const struct section *sec,
                 const char *now, json_int_t ver)
{
	const char *key;
	json_t *pv;
	int rc;

	if (meta) {
		rc = stamp(meta, sec, now, ver);
		if (rc)
			return rc;
	}
	json_object_foreach((json_t *)patch, key, pv)
	{
		json_t *tv = json_object_get(target, key);
		json_t *mv = meta ? json_object_get(meta, key) : NULL;

		if (json_is_null(pv)) {
			json_object_del(target, key);
			if (meta)
				json_object_del(meta, key);
			continue;
		}
		if (!json_is_object(pv)) {
			if (json_object_set_new(target, key, json_deep_copy(pv)))
				return EMU_ENOMEM;
			if (meta && json_object_set_new(meta, key, new_meta(sec, now, ver)))
				return EMU_ENOMEM;
			continue;
		}
		if (!json_is_object(tv)) {
			tv = json_object();
			if (json_object_set_new(target, key, tv))
				return EMU_ENOMEM;
			mv = NULL; /* the old metadata described a leaf */
		}
		if (meta && !json_is_object(mv)) {
			mv = json_object();
			if (json_object_set_new(meta, key, mv))
				return EMU_ENOMEM;
		}
		rc = merge(tv, mv, pv, sec, now, ver);
		if (rc)
			return rc;
	}
	return EMU_OK;
}

/* The PUT notification: new's members, and null for members only old has. */
static json_t *diff(const json_t *old, const json_t *new)
{
	json_t *d = json_object();
	const char *key;
	json_t *v;

	if (!d)
		return NULL;
	json_object_foreach((json_t *)new, key, v)
	{
		json_t *o = json_object_get(old, key);
		json_t *x = json_is_object(o) && json_is_object(v) ? diff(o, v) : json_deep_copy(v);

		if (json_object_set_new(d, key, x))
			goto fail;
	}
	json_object_foreach((json_t *)old, key, v)
	{
		if (!json_object_get(new, key) && json_object_set_new(d, key, json_null()))
			goto fail;
	}
	return d;
fail:
	json_decref(d);
	return NULL;
}

/* ---- creation ---- */

static int set_int(json_t *t, const char *k, json_int_t v)
{
	return json_object_set_new(t, k, json_integer(v)) ? EMU_ENOMEM : EMU_OK;
}

/* Bumps an integer member by one. */
static int bump(json_t *t, const char *k)
{
	return set_int(t, k, json_integer_value(json_object_get(t, k)) + 1);
}

/* A member, or NULL when it is absent or null (serializers write null for an
 * unset collection). */
static const json_t *present(const json_t *v)
{
	return json_is_null(v) ? NULL : v;
}

static json_t *never_meta(void)
{
	return json_pack("{s:s}", LAST_UPDATED, TWIN_NEVER);
}

int twin_new(const json_t *initial, const char *now, json_t **out, char *err, size_t errlen)
{
	const json_t *tags = NULL, *props = NULL, *desired = NULL;
	json_t *t = NULL, *ptags = NULL, *pdesired = NULL;
	int rc;

	*out = NULL;
	if (initial && !json_is_object(initial)) {
		emu_why(err, errlen, "initial twin is not a JSON object");
		return EMU_EINVAL;
	}
	if (initial) {
		tags = present(json_object_get(initial, "tags"));
		props = present(json_object_get(initial, "properties"));
		if (props && !json_is_object(props)) {
			emu_why(err, errlen, "initial twin properties is not a JSON object");
			return EMU_EINVAL;
		}
		desired = props ? present(json_object_get(props, "desired")) : NULL;
	}
	if (tags) {
		rc = prepare_patch(tags, &SEC_TAGS, &ptags, err, errlen);
		if (rc)
			goto out;
	}
	if (desired) {
		rc = prepare_patch(desired, &SEC_DESIRED, &pdesired, err, errlen);
		if (rc)
			goto out;
	}
	t = json_pack("{s:i,s:i,s:i,s:o,s:o,s:i,s:o,s:o,s:i,s:o}", "schema", SCHEMA, "version", 1,
	              "etagCounter", 1, "tags", json_object(), "desired", json_object(),
	              "desiredVersion", 1, "desiredMetadata", never_meta(), "reported",
	              json_object(), "reportedVersion", 1, "reportedMetadata", never_meta());
	if (!t) {
		rc = EMU_ENOMEM;
		emu_why(err, errlen, "out of memory");
		goto out;
	}
	if (ptags) {
		rc = merge(json_object_get(t, "tags"), NULL, ptags, &SEC_TAGS, now, 1);
		if (rc == EMU_OK)
			rc = check_size(json_object_get(t, "tags"), &SEC_TAGS, err, errlen);
		if (rc)
			goto out;
	}
	if (pdesired && json_object_size(pdesired) > 0) {
		rc = merge(json_object_get(t, "desired"), json_object_get(t, "desiredMetadata"),
		           pdesired, &SEC_DESIRED, now, 1);
		if (rc == EMU_OK)
			rc = check_size(json_object_get(t, "desired"), &SEC_DESIRED, err, errlen);
		if (rc)
			goto out;
	}
	*out = t;
	t = NULL;
	rc = EMU_OK;
out:
	if (rc == EMU_ENOMEM)
		emu_why(err, errlen, "out of memory");
	json_decref(t);
	json_decref(ptags);
	json_decref(pdesired);
	return rc;
}

/* ---- etags ---- */

int twin_etag(const json_t *twin, char out[TWIN_ETAG_LEN])
{
	unsigned char be[8];
	uint64_t c;
	char *b;

	out[0] = '\0';
	if (twin_check(twin) != EMU_OK)
		return EMU_EINVAL;
	c = (uint64_t)json_integer_value(json_object_get(twin, "etagCounter"));
	for (int i = 7; i >= 0; i--) {
		be[i] = (unsigned char)(c & 0xff);
		c >>= 8;
	}
	b = b64_encode(be, sizeof(be));
	if (!b)
		return EMU_ENOMEM;
	snprintf(out, TWIN_ETAG_LEN, "%s", b);
	free(b);
	return EMU_OK;
}

bool twin_etag_matches(const json_t *twin, const char *if_match)
{
	char etag[TWIN_ETAG_LEN];

	if (twin_etag(twin, etag) != EMU_OK)
		return false;
	return etag_is_absent(if_match) || etag_matches(etag, if_match);
}

/* ---- views ---- */

/* section members, then extra members (metadata) and "$version". */
static json_t *section_view(const json_t *twin, const char *sec, const char *meta, const char *ver)
{
	json_t *v = json_deep_copy(json_object_get(twin, sec));

	if (!v)
		return NULL;
	if (meta &&
	    json_object_set_new(v, "$metadata", json_deep_copy(json_object_get(twin, meta))))
		goto fail;
	if (json_object_set_new(v, "$version",
	                        json_integer(json_integer_value(json_object_get(twin, ver)))))
		goto fail;
	return v;
fail:
	json_decref(v);
	return NULL;
}

json_t *twin_device_view(const json_t *twin)
{
	if (twin_check(twin) != EMU_OK)
		return NULL;
	return json_pack("{s:o,s:o}", "desired",
	                 section_view(twin, "desired", NULL, "desiredVersion"), "reported",
	                 section_view(twin, "reported", NULL, "reportedVersion"));
}

static json_t *str_or(const char *s, const char *dflt)
{
	return json_string(s ? s : dflt);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *twin_service_view(const json_t *twin, const struct twin_identity *id)
{
	bool module = id->module_id && id->module_id[0];
	char etag[TWIN_ETAG_LEN];
	json_t *v = NULL;
	int rc = 0;

	if (twin_check(twin) != EMU_OK || !id->device_id || twin_etag(twin, etag) != EMU_OK)
		return NULL;
	v = json_object();
	if (!v)
		return NULL;
	rc |= json_object_set_new(v, "deviceId", json_string(id->device_id));
	if (module)
		rc |= json_object_set_new(v, "moduleId", json_string(id->module_id));
	rc |= json_object_set_new(v, "etag", json_string(etag));
	if (id->device_etag)
		rc |= json_object_set_new(v, "deviceEtag", json_string(id->device_etag));
	rc |= json_object_set_new(v, "status", str_or(id->status, "enabled"));
	if (id->status_reason)
		rc |= json_object_set_new(v, "statusReason", json_string(id->status_reason));
	rc |=
	    json_object_set_new(v, "statusUpdateTime", str_or(id->status_update_time, TWIN_NEVER));
	rc |=
	    json_object_set_new(v, "connectionState", str_or(id->connection_state, "Disconnected"));
	rc |=
	    json_object_set_new(v, "lastActivityTime", str_or(id->last_activity_time, TWIN_NEVER));
	rc |= json_object_set_new(v, "cloudToDeviceMessageCount",
	                          json_integer(id->c2d_message_count));
	rc |= json_object_set_new(v, "authenticationType", str_or(id->authentication_type, "sas"));
	rc |= json_object_set_new(
	    v, "x509Thumbprint",
	    json_pack("{s:o,s:o}", "primaryThumbprint", str_or_null(id->primary_thumbprint),
	              "secondaryThumbprint", str_or_null(id->secondary_thumbprint)));
	rc |= json_object_set_new(v, "modelId", str_or(id->model_id, ""));
	rc |= json_object_set_new(v, "version", json_integer(twin_version(twin)));
	rc |= json_object_set_new(v, "tags", json_deep_copy(json_object_get(twin, "tags")));
	rc |= json_object_set_new(
	    v, "properties",
	    json_pack("{s:o,s:o}", "desired",
	              section_view(twin, "desired", "desiredMetadata", "desiredVersion"),
	              "reported",
	              section_view(twin, "reported", "reportedMetadata", "reportedVersion")));
	if (!module)
		rc |= json_object_set_new(v, "capabilities",
		                          json_pack("{s:b}", "iotEdge", id->iot_edge));
	if (rc) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* ---- writes ---- */

int twin_patch_reported(json_t *twin, const json_t *patch, const char *now, json_int_t *new_version,
                        char *err, size_t errlen)
{
	json_t *p = NULL, *work = NULL;
	json_int_t ver;
	int rc;

	if (twin_check(twin) != EMU_OK) {
		emu_why(err, errlen, "stored twin is malformed");
		return EMU_EINVAL;
	}
	rc = prepare_patch(patch, &SEC_REPORTED, &p, err, errlen);
	if (rc)
		return rc;
	/* all work on a copy, so a refused patch leaves the twin as it was */
	work = json_deep_copy(twin);
	if (!work) {
		rc = EMU_ENOMEM;
		goto out;
	}
	rc = merge(json_object_get(work, "reported"), json_object_get(work, "reportedMetadata"), p,
	           &SEC_REPORTED, now, 0);
	if (rc)
		goto out;
	rc = check_size(json_object_get(work, "reported"), &SEC_REPORTED, err, errlen);
	if (rc)
		goto out;
	rc = bump(work, "reportedVersion");
	if (rc == EMU_OK)
		rc = bump(work, "version");
	if (rc)
		goto out;
	ver = json_integer_value(json_object_get(work, "reportedVersion"));
	/* every key already exists in twin: replacing values cannot fail */
	if (json_object_update(twin, work)) {
		rc = EMU_ENOMEM;
		goto out;
	}
	if (new_version)
		*new_version = ver;
out:
	if (rc == EMU_ENOMEM)
		emu_why(err, errlen, "out of memory");
	json_decref(p);
	json_decref(work);
	return rc;
}

/* Finds body's tags and desired parts (NULL when absent). */
static int body_parts(const json_t *body, const json_t **tags, const json_t **desired, char *err,
                      size_t errlen)
{
	const json_t *props;

	*tags = *desired = NULL;
	if (!json_is_object(body)) {
		emu_why(err, errlen, "twin update is not a JSON object");
		return EMU_EINVAL;
	}
	*tags = present(json_object_get(body, "tags"));
	props = present(json_object_get(body, "properties"));
	if (props && !json_is_object(props)) {
		emu_why(err, errlen, "properties is not a JSON object");
		return EMU_EINVAL;
	}
	if (props)
		*desired = present(json_object_get(props, "desired"));
	return EMU_OK;
}

/* Replaces section sec of work (and its metadata) with patch applied to an empty
 * object. */
static int replace_section(json_t *work, const char *name, const char *meta_name,
                           const json_t *patch, const struct section *sec, const char *now,
                           json_int_t ver)
{
	json_t *fresh = json_object(), *meta = NULL;
	int rc = EMU_ENOMEM;

	if (!fresh)
		return EMU_ENOMEM;
	if (meta_name) {
		meta = json_object();
		if (!meta)
			goto out;
	}
	rc = merge(fresh, meta, patch, sec, now, ver);
	if (rc)
		goto out;
	rc = EMU_ENOMEM;
	if (json_object_set(work, name, fresh))
		goto out;
	if (meta_name && json_object_set(work, meta_name, meta))
		goto out;
	rc = EMU_OK;
out:
	json_decref(fresh);
	json_decref(meta);
	return rc;
}

int twin_service_update(json_t *twin, const json_t *body, enum twin_update_mode mode,
                        const char *now, json_t **notify, char *err, size_t errlen)
{
	const json_t *tags, *desired;
	json_t *ptags = NULL, *pdesired = NULL, *work = NULL, *note = NULL, *empty = NULL;
	bool replace = mode == TWIN_UPDATE_REPLACE;
	json_int_t dver;
	int rc;

	if (notify)
		*notify = NULL;
	if (twin_check(twin) != EMU_OK) {
		emu_why(err, errlen, "stored twin is malformed");
		return EMU_EINVAL;
	}
	rc = body_parts(body, &tags, &desired, err, errlen);
	if (rc)
		return rc;
	if (replace) {
		empty = json_object();
		if (!empty) {
			rc = EMU_ENOMEM;
			goto out;
		}
		tags = tags ? tags : empty;
		desired = desired ? desired : empty;
	}
	if (tags) {
		rc = prepare_patch(tags, &SEC_TAGS, &ptags, err, errlen);
		if (rc)
			goto out;
	}
	if (desired) {
		rc = prepare_patch(desired, &SEC_DESIRED, &pdesired, err, errlen);
		if (rc)
			goto out;
	}
	if (!ptags && !pdesired)
		goto out; /* nothing to write */
	work = json_deep_copy(twin);
	if (!work) {
		rc = EMU_ENOMEM;
		goto out;
	}
	dver = json_integer_value(json_object_get(work, "desiredVersion")) + 1;
	if (ptags) {
		rc = replace
		         ? replace_section(work, "tags", NULL, ptags, &SEC_TAGS, now, dver)
		         : merge(json_object_get(work, "tags"), NULL, ptags, &SEC_TAGS, now, dver);
		if (rc == EMU_OK)
			rc = check_size(json_object_get(work, "tags"), &SEC_TAGS, err, errlen);
		if (rc)
			goto out;
	}
	if (pdesired) {
		rc = replace ? replace_section(work, "desired", "desiredMetadata", pdesired,
		                               &SEC_DESIRED, now, dver)
		             : merge(json_object_get(work, "desired"),
		                     json_object_get(work, "desiredMetadata"), pdesired,
		                     &SEC_DESIRED, now, dver);
		if (rc == EMU_OK)
			rc =
			    check_size(json_object_get(work, "desired"), &SEC_DESIRED, err, errlen);
		if (rc)
			goto out;
		rc = set_int(work, "desiredVersion", dver);
		if (rc)
			goto out;
		if (notify) {
			note = replace ? diff(json_object_get(twin, "desired"),
			                      json_object_get(work, "desired"))
			               : json_deep_copy(pdesired);
			if (!note || json_object_set_new(note, "$version", json_integer(dver))) {
				rc = EMU_ENOMEM;
				goto out;
			}
		}
	}
	rc = bump(work, "etagCounter");
	if (rc == EMU_OK)
		rc = bump(work, "version");
	if (rc)
		goto out;
	if (json_object_update(twin, work)) {
		rc = EMU_ENOMEM;
		goto out;
	}
	if (notify) {
		*notify = note;
		note = NULL;
	}
out:
	if (rc == EMU_ENOMEM)
		emu_why(err, errlen, "out of memory");
	json_decref(ptags);
	json_decref(pdesired);
	json_decref(work);
	json_decref(note);
	json_decref(empty);
	return rc;
}
