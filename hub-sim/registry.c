/* registry.c - the hub's device identity registry: Device records as the
 * service API shows them, their validation and etag rules, and the twin (and
 * C2D queue) that lives and dies with each device. */
#include "hub-sim/hub_internal.h"
#include "hub-sim/hub_wire.h"
#include "hub-sim/twin.h"

#include "clock.h"
#include "err.h"
#include "etag.h"
#include "log.h"
#include "textenc.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NEVER             TWIN_NEVER /* a time the hub has not seen yet */
#define KEY_GEN_BYTES     32
#define KEY_MIN_BYTES     16
#define KEY_MAX_BYTES     64
#define STATUS_REASON_MAX 128
#define DEVICE_SCOPE_MAX  512
#define MANAGED_BY_MAX    128
#define ID_PUNCT          "- . + % _ # * ? ! ( ) , = @ $ ' : ;"
#define ETAG_COUNTER_KEY  "registry.etag"
/* .NET ticks (100 ns since 0001-01-01) at the Unix epoch. */
#define TICKS_AT_EPOCH 621355968000000000ULL

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the reason (when wanted) and returns EMU_EINVAL. */
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return EMU_EINVAL;
}

/* The id rule of devices and modules; what names the kind in the reason. */
static int id_valid(const char *what, const char *id, char *why, size_t whylen)
{
	size_t n;

	if (!id || !*id)
		return fail(why, whylen, "the %s id is empty", what);
	n = strlen(id);
	if (hub_wire_valid_id(id, n))
		return EMU_OK;
	if (n > HUB_DEVICE_ID_MAX)
		return fail(why, whylen, "the %s id is %zu characters long; at most %d are allowed",
		            what, n, HUB_DEVICE_ID_MAX);
	/* The set is hub_wire's (ids are topic segments); name the first outsider. */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];
		if (hub_wire_valid_id(id + i, 1))
			continue;
		if (ch < 0x20 || ch >= 0x7f)
			return fail(why, whylen,
			            "the %s id contains the byte 0x%02x at offset %zu; "
			            "only ASCII letters, digits and %s are allowed",
			            what, ch, i, ID_PUNCT);
		return fail(why, whylen,
		            "the %s id contains '%c' at offset %zu; only ASCII "
		            "letters, digits and %s are allowed",
		            what, ch, i, ID_PUNCT);
	}
	return fail(why, whylen, "the %s id is not valid", what);
}

int hub_device_id_valid(const char *id, char *why, size_t whylen)
{
	return id_valid("device", id, why, whylen);
}

int hub_module_id_valid(const char *id, char *why, size_t whylen)
{
	return id_valid("module", id, why, whylen);
}

int hub_identity_key(const char *device_id, const char *module_id,
                     char out[HUB_IDENTITY_KEY_MAX + 1], char *why, size_t whylen)
{
	int rc;

	out[0] = '\0';
	if ((rc = hub_device_id_valid(device_id, why, whylen)) != EMU_OK)
		return rc;
	if (!module_id || !*module_id) {
		snprintf(out, HUB_IDENTITY_KEY_MAX + 1, "%s", device_id);
		return EMU_OK;
	}
	if ((rc = hub_module_id_valid(module_id, why, whylen)) != EMU_OK)
		return rc;
	snprintf(out, HUB_IDENTITY_KEY_MAX + 1, "%s/%s", device_id, module_id);
	return EMU_OK;
}

/* The next value of the registry's etag counter, as the hub shows it: base64
 * of an ASCII decimal number. New string in *out. */
static int next_etag(struct hub *h, struct store_txn *txn, char **out)
{
	const void *val;
	size_t len;
	char num[24];
	unsigned long long n = 0;
	int rc;

	rc = store_get(txn, h->meta, ETAG_COUNTER_KEY, &val, &len);
	if (rc == EMU_OK && len > 0 && len < sizeof(num)) {
		memcpy(num, val, len);
		num[len] = '\0';
		n = strtoull(num, NULL, 10);
	} else if (rc != EMU_OK && rc != EMU_ENOTFOUND) {
		return rc;
	}
	snprintf(num, sizeof(num), "%llu", n + 1);
	rc = store_put(txn, h->meta, ETAG_COUNTER_KEY, num, strlen(num));
	if (rc != EMU_OK)
		return rc;
	*out = b64_encode(num, strlen(num));
	return *out ? EMU_OK : EMU_ENOMEM;
}

/* An 18-digit generation id: the current time in .NET ticks, as the hub makes
 * them; in deterministic mode an 18-digit number from the id sequence. */
static void new_generation_id(char out[24])
{
	struct timespec ts;
	unsigned long long ticks;

	if (rand_id_seeded()) {
		unsigned char b[8];
		rand_id_bytes(RAND_ID_GENERATION, b, sizeof(b));
		ticks = 0;
		for (int i = 0; i < 8; i++)
			ticks = ticks << 8 | b[i];
		snprintf(out, 24, "%llu", 600000000000000000ULL + ticks % 100000000000000000ULL);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ticks = TICKS_AT_EPOCH + (unsigned long long)ts.tv_sec * 10000000ULL +
	        (unsigned long long)ts.tv_nsec / 100;
	snprintf(out, 24, "%llu", ticks);
}

static json_t *new_key(void)
{
	unsigned char raw[KEY_GEN_BYTES];
	char *b64;
	json_t *j;

	if (rand_bytes(raw, sizeof(raw)) != EMU_OK)
		return NULL;
	b64 = b64_encode(raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	if (!b64)
		return NULL;
	j = json_string(b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	return j;
}

/* A string member that may be missing or null (*out = NULL) or a string;
 * "" counts as missing, as Node sends empty keys when it has none. */
static int opt_string(const json_t *obj, const char *name, const char *path, const char **out,
                      char *why, size_t whylen)
{
	json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (!v || json_is_null(v))
		return EMU_OK;
	if (!json_is_string(v))
		return fail(why, whylen, "%s.%s must be a string or null", path, name);
	if (json_string_length(v) > 0)
		*out = json_string_value(v);
	return EMU_OK;
}

/* An optional sub-object: missing or null gives *out = NULL. */
static int opt_object(const json_t *obj, const char *name, const char *path, const json_t **out,
                      char *why, size_t whylen)
{
	json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (!v || json_is_null(v))
		return EMU_OK;
	if (!json_is_object(v))
		return fail(why, whylen, "%s%s%s must be an object or null", path, *path ? "." : "",
		            name);
	*out = v;
	return EMU_OK;
}

static int check_key(const char *key, const char *field, char *why, size_t whylen)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	int rc;

	rc = b64_decode(key, strlen(key), &raw, &len);
	if (raw) {
		OPENSSL_cleanse(raw, len);
		free(raw);
	}
	if (rc != EMU_OK)
		return fail(why, whylen, "authentication.symmetricKey.%s is not valid base64",
		            field);
	if (len < KEY_MIN_BYTES || len > KEY_MAX_BYTES)
		return fail(why, whylen,
		            "authentication.symmetricKey.%s decodes to %zu bytes; a key "
		            "must be %d to %d bytes",
		            field, len, KEY_MIN_BYTES, KEY_MAX_BYTES);
	return EMU_OK;
}

/* Normalises a thumbprint: ':' and spaces removed, upper case, 40 or 64 hex digits. */
static int normalize_thumbprint(const char *in, const char *field, char out[65], char *why,
                                size_t whylen)
{
	size_t n = 0;

	for (const char *p = in; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == ':' || ch == ' ')
			continue;
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		      (ch >= 'A' && ch <= 'F')))
			return fail(why, whylen,
			            "authentication.x509Thumbprint.%s is not hexadecimal", field);
		if (n == 64)
			return fail(why, whylen,
			            "authentication.x509Thumbprint.%s is longer than a "
			            "SHA-256 thumbprint (64 hex digits)",
			            field);
		out[n++] = (char)(ch >= 'a' ? ch - 'a' + 'A' : ch);
	}
	out[n] = '\0';
	if (n != 40 && n != 64)
		return fail(why, whylen,
		            "authentication.x509Thumbprint.%s has %zu hex digits; a "
		            "thumbprint is SHA-1 (40) or SHA-256 (64)",
		            field, n);
	return EMU_OK;
}

static const char *const auth_types[] = {"sas", "selfSigned", "certificateAuthority", "none"};

/* Builds the stored authentication object from the body's (may be NULL) and,
 * on update, the stored one (old, may be NULL). New reference in *out. */
static int build_auth(const json_t *body, const json_t *old, json_t **out, char *why, size_t whylen)
{
	const json_t *auth = NULL, *sk = NULL, *tp = NULL;
	const char *type = NULL, *keys[2] = {NULL, NULL}, *thumbs[2] = {NULL, NULL};
	static const char *const key_names[2] = {"primaryKey", "secondaryKey"};
	static const char *const thumb_names[2] = {"primaryThumbprint", "secondaryThumbprint"};
	char norm[2][65];
	json_t *a = NULL, *jkeys[2] = {NULL, NULL}, *jthumbs[2] = {NULL, NULL};
	json_t *tv;
	int rc;

	*out = NULL;
	if ((rc = opt_object(body, "authentication", "", &auth, why, whylen)) != EMU_OK)
		return rc;
	if (!auth && old) {
		/* An update that leaves authentication out keeps it. */
		*out = json_deep_copy(old);
		return *out ? EMU_OK : EMU_ENOMEM;
	}
	if (auth) {
		if ((rc = opt_object(auth, "symmetricKey", "authentication", &sk, why, whylen)) ||
		    (rc = opt_object(auth, "x509Thumbprint", "authentication", &tp, why, whylen)))
			return rc;
		for (int i = 0; i < 2; i++)
			if ((rc = opt_string(sk, key_names[i], "authentication.symmetricKey",
			                     &keys[i], why, whylen)) ||
			    (rc = opt_string(tp, thumb_names[i], "authentication.x509Thumbprint",
			                     &thumbs[i], why, whylen)))
				return rc;
		tv = json_object_get(auth, "type");
		if (tv && !json_is_null(tv) && !json_is_string(tv))
			return fail(why, whylen, "authentication.type must be a string");
		for (size_t i = 0; tv && json_is_string(tv) && i < 4; i++)
			if (strcasecmp(json_string_value(tv), auth_types[i]) == 0)
				type = auth_types[i];
		if (tv && json_is_string(tv) && !type)
			return fail(why, whylen,
			            "authentication.type '%s' is not one of sas, "
			            "selfSigned, certificateAuthority, none",
			            json_string_value(tv));
	}
	/* Without a type, a thumbprint means selfSigned (as the SDKs infer it). */
	if (!type)
		type = thumbs[0] ? "selfSigned" : "sas";

	if (strcmp(type, "sas") == 0) {
		json_t *old_sk = NULL;
		const char *old_type = json_string_value(json_object_get(old, "type"));
		if (thumbs[0] || thumbs[1])
			return fail(why, whylen,
			            "authentication.x509Thumbprint must be empty for "
			            "authentication type sas");
		if (old_type && strcmp(old_type, "sas") == 0)
			old_sk = json_object_get(old, "symmetricKey");
		for (int i = 0; i < 2; i++)
			if (keys[i] && (rc = check_key(keys[i], key_names[i], why, whylen)))
				return rc;
		for (int i = 0; i < 2; i++) {
			json_t *kept = json_object_get(old_sk, key_names[i]);
			if (keys[i]) {
				jkeys[i] = json_string(keys[i]);
			} else if (json_is_string(kept)) {
				/* Keys are kept unless the update changes them. */
				jkeys[i] = json_copy(kept);
			} else {
				jkeys[i] = new_key();
			}
		}
		jthumbs[0] = json_null();
		jthumbs[1] = json_null();
	} else if (strcmp(type, "selfSigned") == 0) {
		if (keys[0] || keys[1])
			return fail(why, whylen,
			            "authentication.symmetricKey must be empty for "
			            "authentication type selfSigned");
		if (!thumbs[0])
			return fail(why, whylen,
			            "authentication.x509Thumbprint.primaryThumbprint is "
			            "required for authentication type selfSigned");
		if ((rc = normalize_thumbprint(thumbs[0], thumb_names[0], norm[0], why, whylen)))
			return rc;
		/* A missing secondary is the primary, as clients usually set both. */
		if (!thumbs[1])
			memcpy(norm[1], norm[0], sizeof(norm[1]));
		else if ((rc = normalize_thumbprint(thumbs[1], thumb_names[1], norm[1], why,
		                                    whylen)))
			return rc;
		jkeys[0] = json_null();
		jkeys[1] = json_null();
		jthumbs[0] = json_string(norm[0]);
		jthumbs[1] = json_string(norm[1]);
	} else {
		if (keys[0] || keys[1] || thumbs[0] || thumbs[1])
			return fail(
			    why, whylen,
			    "authentication.symmetricKey and "
			    "authentication.x509Thumbprint must be empty for authentication "
			    "type %s",
			    type);
		for (int i = 0; i < 2; i++) {
			jkeys[i] = json_null();
			jthumbs[i] = json_null();
		}
	}
	a = json_pack("{s:{s:o, s:o}, s:{s:o, s:o}, s:s}", "symmetricKey", key_names[0], jkeys[0],
	              key_names[1], jkeys[1], "x509Thumbprint", thumb_names[0], jthumbs[0],
	              thumb_names[1], jthumbs[1], "type", type);
	/* json_pack's "o" took the references, whatever the outcome. */
	if (!a)
		return EMU_ENOMEM;
	*out = a;
	return EMU_OK;
}

/* The members a body may set besides authentication, checked and resolved
 * against the stored record (old, NULL on create). */
struct settable {
	const char *status;
	json_t *status_reason;
	int iot_edge;
	json_t *device_scope;
};

static int read_settable(const json_t *body, const json_t *old, struct settable *s, char *why,
                         size_t whylen)
{
	json_t *v;
	const json_t *caps = NULL;
	int rc;

	s->status = old ? json_string_value(json_object_get(old, "status")) : "enabled";
	if (!s->status)
		s->status = "enabled";
	v = json_object_get(body, "status");
	if (v && !json_is_null(v)) {
		if (json_is_string(v) && strcasecmp(json_string_value(v), "enabled") == 0)
			s->status = "enabled";
		else if (json_is_string(v) && strcasecmp(json_string_value(v), "disabled") == 0)
			s->status = "disabled";
		else
			return fail(why, whylen, "status must be \"enabled\" or \"disabled\"");
	}

	s->status_reason = json_object_get(old, "statusReason");
	v = json_object_get(body, "statusReason");
	if (v) {
		if (!json_is_null(v) && !json_is_string(v))
			return fail(why, whylen, "statusReason must be a string or null");
		if (json_is_string(v) && json_string_length(v) > STATUS_REASON_MAX)
			return fail(why, whylen, "statusReason is longer than %d characters",
			            STATUS_REASON_MAX);
		s->status_reason = v;
	}

	s->iot_edge =
	    json_is_true(json_object_get(json_object_get(old, "capabilities"), "iotEdge"));
	if ((rc = opt_object(body, "capabilities", "", &caps, why, whylen)) != EMU_OK)
		return rc;
	if (caps) {
		v = json_object_get(caps, "iotEdge");
		if (v && !json_is_null(v) && !json_is_boolean(v))
			return fail(why, whylen, "capabilities.iotEdge must be true or false");
		s->iot_edge = json_is_true(v);
	}

	s->device_scope = json_object_get(old, "deviceScope");
	v = json_object_get(body, "deviceScope");
	if (v) {
		if (!json_is_null(v) && !json_is_string(v))
			return fail(why, whylen, "deviceScope must be a string or null");
		if (json_is_string(v) && json_string_length(v) > DEVICE_SCOPE_MAX)
			return fail(why, whylen, "deviceScope is longer than %d characters",
			            DEVICE_SCOPE_MAX);
		s->device_scope = v;
	}
	return EMU_OK;
}

static const char *str_or(const json_t *obj, const char *name, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, name));
	return s ? s : dflt;
}

/* Assembles the stored Device JSON in the member order the hub uses. */
static json_t *assemble(const char *id, const char *generation_id, const char *etag,
                        const json_t *old, const struct settable *s, const char *status_time,
                        json_t *auth)
{
	json_t *c2d = json_object_get(old, "cloudToDeviceMessageCount");

	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:O, s:s, s:s, s:s, s:I, s:{s:b}, s:O, s:o}", "deviceId", id,
	    "generationId", generation_id, "etag", etag, "connectionState", "Disconnected",
	    "status", s->status, "statusReason", s->status_reason ? s->status_reason : json_null(),
	    "connectionStateUpdatedTime", str_or(old, "connectionStateUpdatedTime", NEVER),
	    "statusUpdatedTime", status_time, "lastActivityTime",
	    str_or(old, "lastActivityTime", NEVER), "cloudToDeviceMessageCount",
	    json_integer_value(c2d), "capabilities", "iotEdge", s->iot_edge, "deviceScope",
	    s->device_scope ? s->device_scope : json_null(), "authentication", auth);
}

/* "device 'd'" or "module 'm' of device 'd'", for messages. */
static const char *describe(const char *device_id, const char *module_id, char *buf, size_t len)
{
	if (module_id)
		snprintf(buf, len, "module '%s' of device '%s'", module_id, device_id);
	else
		snprintf(buf, len, "device '%s'", device_id);
	return buf;
}

/* Decides what If-Match allows given whether the identity (module_id NULL for a
 * device) exists. */
static int check_precondition(const char *device_id, const char *module_id, const json_t *old,
                              const char *if_match, char *why, size_t whylen)
{
	char name[2 * HUB_DEVICE_ID_MAX + 40];

	describe(device_id, module_id, name, sizeof(name));
	if (etag_is_absent(if_match)) {
		if (old && module_id) {
			snprintf(why, whylen,
			         "A module with ID '%s' is already registered on device '%s'.",
			         module_id, device_id);
			return EMU_EEXIST;
		}
		if (old) {
			snprintf(why, whylen, "A device with ID '%s' is already registered.",
			         device_id);
			return EMU_EEXIST;
		}
		return EMU_OK;
	}
	if (etag_is_any(if_match))
		return EMU_OK; /* "*": create or replace */
	if (!old) {
		snprintf(why, whylen, "If-Match names an etag but %s does not exist", name);
		return EMU_ENOTFOUND;
	}
	if (!etag_matches(json_string_value(json_object_get(old, "etag")), if_match)) {
		snprintf(why, whylen, "If-Match %s does not match the etag of %s", if_match, name);
		return EMU_EPRECOND;
	}
	return EMU_OK;
}

/* A body's id member (deviceId, moduleId) may be absent or null, else must be
 * the id in the path. */
static int check_body_id(const json_t *body, const char *member, const char *id, char *why,
                         size_t whylen)
{
	json_t *v = json_object_get(body, member);

	if (!v || json_is_null(v) ||
	    (json_is_string(v) && strcmp(json_string_value(v), id) == 0))
		return EMU_OK;
	return fail(why, whylen, "%s %s%s%s in the body does not match '%s' in the path", member,
	            json_is_string(v) ? "'" : "",
	            json_is_string(v) ? json_string_value(v) : "(not a string)",
	            json_is_string(v) ? "'" : "", id);
}

/* A module's managedBy: kept unless the body sets it (a string or null). */
static int read_managed_by(const json_t *body, const json_t *old, json_t **out, char *why,
                           size_t whylen)
{
	json_t *v = json_object_get(body, "managedBy");

	*out = json_object_get(old, "managedBy");
	if (!v)
		return EMU_OK;
	if (!json_is_null(v) && !json_is_string(v))
		return fail(why, whylen, "managedBy must be a string or null");
	if (json_is_string(v) && json_string_length(v) > MANAGED_BY_MAX)
		return fail(why, whylen, "managedBy is longer than %d characters", MANAGED_BY_MAX);
	*out = v;
	return EMU_OK;
}

/* Assembles the stored Module JSON in the member order the hub uses. */
static json_t *assemble_module(const char *device_id, const char *module_id,
                               const char *generation_id, const char *etag, const json_t *old,
                               json_t *managed_by, json_t *auth)
{
	return json_pack("{s:s, s:O, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o}", "moduleId",
	                 module_id, "managedBy", managed_by ? managed_by : json_null(),
	                 "deviceId", device_id, "generationId", generation_id, "etag", etag,
	                 "connectionState", "Disconnected", "connectionStateUpdatedTime",
	                 str_or(old, "connectionStateUpdatedTime", NEVER), "lastActivityTime",
	                 str_or(old, "lastActivityTime", NEVER), "cloudToDeviceMessageCount", 0,
	                 "authentication", auth);
}

int hub_registry_get(struct hub *h, struct store_txn *txn, const char *device_id, json_t **out)
{
	*out = NULL;
	if (hub_device_id_valid(device_id, NULL, 0) != EMU_OK)
		return EMU_ENOTFOUND;
	return store_get_json(txn, h->devices, device_id, out);
}

/* PUT of a device (module_id NULL) or module: what both share, with the
 * record's own members (read_settable/assemble, read_managed_by/
 * assemble_module) the only difference. */
static int put_identity(struct hub *h, struct store_txn *txn, const char *device_id,
                        const char *module_id, const json_t *body, const char *if_match,
                        json_t **out, char *why, size_t whylen)
{
	json_t *old = NULL, *auth = NULL, *rec = NULL, *twin = NULL, *dev = NULL;
	json_t *managed_by = NULL;
	const char *old_status = NULL, *status_time;
	struct settable s = {NULL, NULL, 0, NULL};
	store_table table = module_id ? h->modules : h->devices;
	char gen[24] = "", now[32], stamp[32], key[HUB_IDENTITY_KEY_MAX + 1], *etag = NULL;
	int rc;

	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if ((rc = hub_identity_key(device_id, module_id, key, why, whylen)) != EMU_OK)
		return rc;
	if (!json_is_object(body))
		return fail(why, whylen, "the request body is not a JSON object");
	if ((rc = check_body_id(body, "deviceId", device_id, why, whylen)) != EMU_OK ||
	    (module_id && (rc = check_body_id(body, "moduleId", module_id, why, whylen))))
		return rc;
	if (module_id) {
		rc = hub_registry_get(h, txn, device_id, &dev);
		json_decref(dev);
		if (rc == EMU_ENOTFOUND)
			snprintf(why, whylen, "Module '%s' cannot be written without its device.",
			         module_id);
		if (rc != EMU_OK)
			return rc;
	}

	rc = store_get_json(txn, table, key, &old);
	if (rc != EMU_OK && rc != EMU_ENOTFOUND)
		goto out;
	if ((rc = check_precondition(device_id, module_id, old, if_match, why, whylen)) != EMU_OK)
		goto out;
	if (module_id)
		rc = read_managed_by(body, old, &managed_by, why, whylen);
	else
		rc = read_settable(body, old, &s, why, whylen);
	if (rc != EMU_OK ||
	    (rc = build_auth(body, json_object_get(old, "authentication"), &auth, why, whylen)))
		goto out;

	if (old) {
		snprintf(gen, sizeof(gen), "%s", str_or(old, "generationId", ""));
		old_status = json_string_value(json_object_get(old, "status"));
	}
	if (!old || !gen[0])
		new_generation_id(gen);
	if ((rc = next_etag(h, txn, &etag)) != EMU_OK)
		goto out;
	if (module_id) {
		rec = assemble_module(device_id, module_id, gen, etag, old, managed_by, auth);
	} else {
		status_time = str_or(old, "statusUpdatedTime", NEVER);
		if (old_status && strcmp(old_status, s.status) != 0) {
			clock_iso8601_now(now);
			status_time = now;
		}
		rec = assemble(device_id, gen, etag, old, &s, status_time, auth);
	}
	auth = NULL; /* assemble's "o" took it */
	if (!rec) {
		rc = EMU_ENOMEM;
		goto out;
	}
	if ((rc = store_put_json(txn, table, key, rec)) != EMU_OK)
		goto out;
	if (!old) {
		/* Every device and module has a twin from the start. */
		clock_iso8601_now(stamp);
		if ((rc = twin_new(NULL, stamp, &twin, why, whylen)) != EMU_OK ||
		    (rc = store_put_json(txn, h->twins, key, twin)) != EMU_OK)
			goto out;
		if (strpbrk(key, "+#"))
			log_warn("hub",
			         "id '%s' contains '+' or '#': valid in the registry, "
			         "but MQTT topic filters cannot name it",
			         key);
	}
	if (!module_id && old_status && strcmp(old_status, "enabled") == 0 &&
	    strcmp(s.status, "disabled") == 0)
		hub_conn_close(h, device_id, NULL, "device disabled");
	*out = json_incref(rec);
out:
	json_decref(old);
	json_decref(auth);
	json_decref(rec);
	json_decref(twin);
	free(etag);
	return rc;
}

int hub_registry_put(struct hub *h, struct store_txn *txn, const char *device_id,
                     const json_t *body, const char *if_match, json_t **out, char *why,
                     size_t whylen)
{
	return put_identity(h, txn, device_id, NULL, body, if_match, out, why, whylen);
}

int hub_module_put(struct hub *h, struct store_txn *txn, const char *device_id,
                   const char *module_id, const json_t *body, const char *if_match, json_t **out,
                   char *why, size_t whylen)
{
	if (!module_id || !*module_id) {
		*out = NULL;
		return hub_module_id_valid(module_id, why, whylen);
	}
	return put_identity(h, txn, device_id, module_id, body, if_match, out, why, whylen);
}

/* Collects the keys of a device's modules (store_iter callback). */
struct module_keys {
	const char *prefix; /* "<device id>/" */
	size_t prefix_len;
	json_t *keys;
};

static int collect_module_key(const char *key, const void *val, size_t len, void *arg)
{
	struct module_keys *m = arg;
	(void)val;
	(void)len;

	if (strncmp(key, m->prefix, m->prefix_len) != 0)
		return 1; /* past the device's modules */
	return json_array_append_new(m->keys, json_string(key)) ? EMU_ENOMEM : 0;
}

/* Deletes every module of device_id and their twins in txn. */
static int delete_modules(struct hub *h, struct store_txn *txn, const char *device_id)
{
	char prefix[HUB_DEVICE_ID_MAX + 2];
	struct module_keys m = {prefix, 0, json_array()};
	size_t i;
	json_t *k;
	int rc;

	if (!m.keys)
		return EMU_ENOMEM;
	m.prefix_len = (size_t)snprintf(prefix, sizeof(prefix), "%s/", device_id);
	/* Collected first: the cursor must not walk over its own deletions. */
	rc = store_iter(txn, h->modules, prefix, collect_module_key, &m);
	if (rc < 0)
		goto out;
	rc = EMU_OK;
	json_array_foreach(m.keys, i, k) {
		if ((rc = store_del(txn, h->modules, json_string_value(k))) != EMU_OK)
			goto out;
		rc = store_del(txn, h->twins, json_string_value(k));
		if (rc != EMU_OK && rc != EMU_ENOTFOUND)
			goto out;
		rc = EMU_OK;
	}
	if (json_array_size(m.keys))
		log_info("hub", "device '%s': %zu module(s) deleted with it", device_id,
		         json_array_size(m.keys));
out:
	json_decref(m.keys);
	return rc;
}

/* DELETE of a device (module_id NULL: its modules, C2D queue and connections
 * go too) or of a module. */
static int delete_identity(struct hub *h, struct store_txn *txn, const char *device_id,
                           const char *module_id, const char *if_match, char *why,
                           size_t whylen)
{
	json_t *old = NULL;
	size_t purged = 0;
	char key[HUB_IDENTITY_KEY_MAX + 1], name[2 * HUB_DEVICE_ID_MAX + 40];
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if (module_id)
		rc = hub_module_get(h, txn, device_id, module_id, &old);
	else
		rc = hub_registry_get(h, txn, device_id, &old);
	if (rc != EMU_OK)
		return rc;
	hub_identity_key(device_id, module_id, key, NULL, 0); /* valid: the record exists */
	if (!etag_is_absent(if_match) &&
	    !etag_matches(json_string_value(json_object_get(old, "etag")), if_match)) {
		snprintf(why, whylen, "If-Match %s does not match the etag of %s", if_match,
		         describe(device_id, module_id, name, sizeof(name)));
		rc = EMU_EPRECOND;
		goto out;
	}
	if ((rc = store_del(txn, module_id ? h->modules : h->devices, key)) != EMU_OK)
		goto out;
	rc = store_del(txn, h->twins, key);
	if (rc != EMU_OK && rc != EMU_ENOTFOUND)
		goto out;
	rc = EMU_OK;
	if (!module_id) {
		if ((rc = delete_modules(h, txn, device_id)) != EMU_OK)
			goto out;
		/* A device created again under this id must not inherit the old queue. */
		if ((rc = hub_c2d_purge(h, txn, device_id, &purged)) != EMU_OK)
			goto out;
		if (purged)
			log_info("hub", "device '%s': %zu queued C2D message(s) dropped with it",
			         device_id, purged);
	}
	hub_conn_close(h, device_id, module_id, module_id ? "module deleted" : "device deleted");
out:
	json_decref(old);
	return rc;
}

int hub_registry_delete(struct hub *h, struct store_txn *txn, const char *device_id,
                        const char *if_match, char *why, size_t whylen)
{
	return delete_identity(h, txn, device_id, NULL, if_match, why, whylen);
}

int hub_module_delete(struct hub *h, struct store_txn *txn, const char *device_id,
                      const char *module_id, const char *if_match, char *why, size_t whylen)
{
	return delete_identity(h, txn, device_id, module_id, if_match, why, whylen);
}

int hub_module_get(struct hub *h, struct store_txn *txn, const char *device_id,
                   const char *module_id, json_t **out)
{
	char key[HUB_IDENTITY_KEY_MAX + 1];

	*out = NULL;
	if (!module_id || !*module_id ||
	    hub_identity_key(device_id, module_id, key, NULL, 0) != EMU_OK)
		return EMU_ENOTFOUND;
	return store_get_json(txn, h->modules, key, out);
}

struct module_foreach_ctx {
	const char *prefix;
	size_t prefix_len;
	hub_registry_cb cb;
	void *arg;
	int past; /* reached a key after the device's modules */
};

static int module_foreach_one(const char *key, const void *val, size_t len, void *arg)
{
	struct module_foreach_ctx *c = arg;
	json_t *mod;
	int rc;

	if (strncmp(key, c->prefix, c->prefix_len) != 0) {
		c->past = 1;
		return 1;
	}
	mod = json_loadb(val, len, 0, NULL);
	if (!json_is_object(mod)) {
		log_warn("hub", "module record '%s' is not a JSON object: skipped", key);
		json_decref(mod);
		return 0;
	}
	rc = c->cb(key + c->prefix_len, mod, c->arg);
	json_decref(mod);
	return rc;
}

int hub_module_foreach(struct hub *h, struct store_txn *txn, const char *device_id,
                       hub_registry_cb cb, void *arg)
{
	char prefix[HUB_DEVICE_ID_MAX + 2];
	struct module_foreach_ctx c = {prefix, 0, cb, arg, 0};
	int rc;

	if (hub_device_id_valid(device_id, NULL, 0) != EMU_OK)
		return 0;
	c.prefix_len = (size_t)snprintf(prefix, sizeof(prefix), "%s/", device_id);
	rc = store_iter(txn, h->modules, prefix, module_foreach_one, &c);
	return c.past ? 0 : rc;
}

void hub_registry_note_connection(struct hub *h, const char *device_id, const char *module_id,
                                  int64_t last_activity)
{
	struct store_txn *txn = NULL;
	json_t *rec = NULL;
	char ts[32], key[HUB_IDENTITY_KEY_MAX + 1];
	int is_module = module_id && *module_id;

	if (hub_identity_key(device_id, module_id, key, NULL, 0) != EMU_OK)
		return;
	if (store_txn_begin(h->st, 1, &txn) != EMU_OK)
		goto fail;
	if (store_get_json(txn, is_module ? h->modules : h->devices, key, &rec) != EMU_OK) {
		store_txn_abort(txn); /* deleted meanwhile: nothing to note */
		return;
	}
	clock_iso8601(time(NULL), ts);
	json_object_set_new(rec, "connectionStateUpdatedTime", json_string(ts));
	if (last_activity > 0) {
		clock_iso8601((time_t)last_activity, ts);
		json_object_set_new(rec, "lastActivityTime", json_string(ts));
	}
	if (store_put_json(txn, is_module ? h->modules : h->devices, key, rec) != EMU_OK) {
		store_txn_abort(txn);
		goto fail;
	}
	json_decref(rec);
	if (store_txn_commit(txn) == EMU_OK)
		return;
	log_warn("hub", "'%s': connection time stamps not saved", key);
	return;
fail:
	json_decref(rec);
	log_warn("hub", "'%s': connection time stamps not saved", key);
}

/* Merges the live connection state of an identity into its API view v. */
static void merge_connection(struct hub *h, json_t *v, const char *device_id,
                             const char *module_id)
{
	int64_t last;
	char ts[32];

	json_object_set_new(v, "connectionState",
	                    json_string(hub_conn_is_connected(h, device_id, module_id)
	                                    ? "Connected"
	                                    : "Disconnected"));
	last = hub_conn_last_activity(h, device_id, module_id);
	if (last > 0) {
		clock_iso8601((time_t)last, ts);
		json_object_set_new(v, "lastActivityTime", json_string(ts));
	}
}

json_t *hub_module_view(struct hub *h, const json_t *module)
{
	const char *dev = json_string_value(json_object_get(module, "deviceId"));
	const char *mod = json_string_value(json_object_get(module, "moduleId"));
	json_t *v = json_deep_copy(module);

	if (v && dev && mod)
		merge_connection(h, v, dev, mod);
	return v;
}

json_t *hub_registry_view(struct hub *h, struct store_txn *txn, const json_t *device)
{
	const char *id = json_string_value(json_object_get(device, "deviceId"));
	json_t *v = json_deep_copy(device);
	size_t queued = 0;

	if (!v || !id)
		return v;
	merge_connection(h, v, id, NULL);
	if (hub_c2d_count(h, txn, id, &queued) == EMU_OK)
		json_object_set_new(v, "cloudToDeviceMessageCount",
		                    json_integer((json_int_t)queued));
	else
		log_warn("hub", "device '%s': C2D queue unreadable, message count not updated",
		         id);
	return v;
}

struct foreach_ctx {
	hub_registry_cb cb;
	void *arg;
};

static int foreach_one(const char *key, const void *val, size_t len, void *arg)
{
	struct foreach_ctx *c = arg;
	json_t *dev = json_loadb(val, len, 0, NULL);
	int rc;

	if (!json_is_object(dev)) {
		log_warn("hub", "registry record '%s' is not a JSON object: skipped", key);
		json_decref(dev);
		return 0;
	}
	rc = c->cb(key, dev, c->arg);
	json_decref(dev);
	return rc;
}

int hub_registry_foreach(struct hub *h, struct store_txn *txn, const char *after,
                         hub_registry_cb cb, void *arg)
{
	struct foreach_ctx c = {cb, arg};

	return store_iter(txn, h->devices, after, foreach_one, &c);
}

static int count_one(const char *id, const json_t *device, void *arg)
{
	long *n = arg;
	const char *status = json_string_value(json_object_get(device, "status"));

	n[0]++;
	if (status && strcmp(status, "disabled") == 0)
		n[2]++;
	else
		n[1]++;
	return 0;
}

int hub_registry_stats(struct hub *h, struct store_txn *txn, json_t **out)
{
	long n[3] = {0, 0, 0}; /* total, enabled, disabled */
	int rc;

	*out = NULL;
	if ((rc = hub_registry_foreach(h, txn, NULL, count_one, n)) < 0)
		return rc;
	*out =
	    json_pack("{s:I, s:I, s:I}", "totalDeviceCount", (json_int_t)n[0], "enabledDeviceCount",
	              (json_int_t)n[1], "disabledDeviceCount", (json_int_t)n[2]);
	return *out ? EMU_OK : EMU_ENOMEM;
}
