/* Unit tests for hub-sim/registry: Device and Module records, their validation
 * and etag rules, and the twin and C2D queue that come and go with each device (with
 * hub-sim/c2d's queue functions). The connection table (device_mqtt.c) is
 * replaced by the fakes below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "hub-sim/hub_internal.h"
#include "hub-sim/twin.h"
#include "store.h"
#include "textenc.h"

#include <ctype.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --- link-time fakes for the connection table ------------------------------ */

/* The one connected identity: a device id, or "device/module". */
static char fake_connected[HUB_IDENTITY_KEY_MAX + 1];
static int64_t fake_last_activity;
static int fake_closes;
static char fake_closed_id[HUB_IDENTITY_KEY_MAX + 1];
static char fake_close_reason[64];

static int fake_is(const char *device_id, const char *module_id)
{
	char key[HUB_IDENTITY_KEY_MAX + 1];

	if (module_id && *module_id)
		snprintf(key, sizeof(key), "%s/%s", device_id, module_id);
	else
		snprintf(key, sizeof(key), "%s", device_id);
	return strcmp(key, fake_connected) == 0;
}

int hub_conn_is_connected(struct hub *h, const char *device_id, const char *module_id)
{
	return fake_is(device_id, module_id);
}

int64_t hub_conn_last_activity(struct hub *h, const char *device_id, const char *module_id)
{
	return fake_is(device_id, module_id) ? fake_last_activity : 0;
}

/* Records the close as "device" or "device/module". */
void hub_conn_close(struct hub *h, const char *device_id, const char *module_id,
                    const char *reason)
{
	fake_closes++;
	if (module_id)
		snprintf(fake_closed_id, sizeof(fake_closed_id), "%s/%s", device_id, module_id);
	else
		snprintf(fake_closed_id, sizeof(fake_closed_id), "%s", device_id);
	snprintf(fake_close_reason, sizeof(fake_close_reason), "%s", reason);
}

void hub_conn_push_desired(struct hub *h, const char *device_id, const char *module_id,
                           const json_t *patch, int64_t version)
{
}

/* c2d.c delivers to connected devices; here none is ever connected over MQTT. */
struct hub_conn *hub_conn_find(struct hub *h, const char *device_id, const char *module_id)
{
	return NULL;
}

/* --- fixture ---------------------------------------------------------------- */

struct fx {
	char dir[64];
	struct store *st;
	struct hub h;
	struct store_txn *txn; /* an open write transaction */
};

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dpsemu-registry-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, 8, &f->st), EMU_OK);
	f->h.st = f->st;
	assert_int_equal(store_table_open(f->st, "devices", &f->h.devices), EMU_OK);
	assert_int_equal(store_table_open(f->st, "modules", &f->h.modules), EMU_OK);
	assert_int_equal(store_table_open(f->st, "twins", &f->h.twins), EMU_OK);
	assert_int_equal(store_table_open(f->st, "c2d", &f->h.c2d), EMU_OK);
	assert_int_equal(store_table_open(f->st, "hubMeta", &f->h.meta), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 1, &f->txn), EMU_OK);
	fake_connected[0] = '\0';
	fake_last_activity = 0;
	fake_closes = 0;
	fake_closed_id[0] = fake_close_reason[0] = '\0';
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_txn_abort(f->txn);
	store_close(f->st);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* --- helpers ---------------------------------------------------------------- */

static json_t *parse(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (!j)
		fail_msg("bad test JSON: %s: %s", err.text, text);
	return j;
}

/* PUT body (JSON text) as device id; returns the rc, *out the record or NULL. */
static int put(struct fx *f, const char *id, const char *body, const char *if_match, json_t **out,
               char *why)
{
	json_t *b = parse(body), *rec = NULL;
	int rc;

	why[0] = '\0';
	rc = hub_registry_put(&f->h, f->txn, id, b, if_match, &rec, why, 512);
	json_decref(b);
	if (out)
		*out = rec;
	else
		json_decref(rec);
	return rc;
}

static json_t *put_ok(struct fx *f, const char *id, const char *body, const char *if_match)
{
	char why[512];
	json_t *rec = NULL;
	int rc = put(f, id, body, if_match, &rec, why);

	if (rc != EMU_OK)
		fail_msg("PUT %s %s: %s (%s)", id, body, emu_strerror(rc), why);
	return rec;
}

/* Asserts a refusal with rc whose reason mentions needle. */
static void put_refused(struct fx *f, const char *id, const char *body, const char *if_match,
                        int want, const char *needle)
{
	char why[512];
	json_t *rec = NULL;
	int rc = put(f, id, body, if_match, &rec, why);

	if (rc != want)
		fail_msg("PUT %s %s: got %s, want %s (%s)", id, body, emu_strerror(rc),
		         emu_strerror(want), why);
	assert_null(rec);
	if (!strstr(why, needle))
		fail_msg("PUT %s %s: reason \"%s\" does not mention \"%s\"", id, body, why, needle);
}

static const char *str(const json_t *j, const char *path)
{
	char buf[256];
	const json_t *v = j;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *p = strtok_r(buf, ".", &save); p && v;
	     p = strtok_r(NULL, ".", &save))
		v = json_object_get(v, p);
	return json_string_value(v);
}

static const json_t *get(const json_t *j, const char *a, const char *b)
{
	const json_t *v = json_object_get(j, a);
	return b ? json_object_get(v, b) : v;
}

static void assert_key_32_bytes(const char *b64)
{
	unsigned char *raw = NULL;
	size_t len = 0;

	assert_non_null(b64);
	assert_int_equal(b64_decode(b64, strlen(b64), &raw, &len), EMU_OK);
	assert_int_equal(len, 32);
	free(raw);
}

static int stored(struct fx *f, store_table t, const char *id)
{
	const void *v;
	size_t len;
	return store_get(f->txn, t, id, &v, &len) == EMU_OK;
}

/* --- tests ------------------------------------------------------------------ */

static void create_sas_generates_keys(void **state)
{
	struct fx *f = *state;
	/* What Node's Registry.create sends for a device without credentials. */
	json_t *rec = put_ok(f, "dev1",
	                     "{\"deviceId\":\"dev1\",\"authentication\":{\"type\":\"sas\","
	                     "\"symmetricKey\":{\"primaryKey\":\"\",\"secondaryKey\":\"\"}}}",
	                     NULL);
	const char *gen = str(rec, "generationId"), *etag = str(rec, "etag");
	unsigned char *raw = NULL;
	size_t len = 0;
	json_t *twin = NULL;

	assert_string_equal(str(rec, "deviceId"), "dev1");
	assert_non_null(gen);
	assert_int_equal(strlen(gen), 18);
	for (const char *p = gen; *p; p++)
		assert_true(isdigit((unsigned char)*p));
	/* The etag is base64 of an ASCII decimal number. */
	assert_non_null(etag);
	assert_int_equal(b64_decode(etag, strlen(etag), &raw, &len), EMU_OK);
	assert_true(len > 0);
	for (size_t i = 0; i < len; i++)
		assert_true(isdigit(raw[i]));
	free(raw);
	assert_string_equal(str(rec, "status"), "enabled");
	assert_true(json_is_null(get(rec, "statusReason", NULL)));
	assert_string_equal(str(rec, "connectionState"), "Disconnected");
	assert_string_equal(str(rec, "connectionStateUpdatedTime"), "0001-01-01T00:00:00Z");
	assert_string_equal(str(rec, "statusUpdatedTime"), "0001-01-01T00:00:00Z");
	assert_string_equal(str(rec, "lastActivityTime"), "0001-01-01T00:00:00Z");
	assert_int_equal(json_integer_value(get(rec, "cloudToDeviceMessageCount", NULL)), 0);
	assert_true(json_is_false(get(rec, "capabilities", "iotEdge")));
	assert_true(json_is_null(get(rec, "deviceScope", NULL)));
	assert_string_equal(str(rec, "authentication.type"), "sas");
	assert_key_32_bytes(str(rec, "authentication.symmetricKey.primaryKey"));
	assert_key_32_bytes(str(rec, "authentication.symmetricKey.secondaryKey"));
	assert_string_not_equal(str(rec, "authentication.symmetricKey.primaryKey"),
	                        str(rec, "authentication.symmetricKey.secondaryKey"));
	assert_true(json_is_null(
	    get(get(rec, "authentication", NULL), "x509Thumbprint", "primaryThumbprint")));
	assert_true(json_is_null(
	    get(get(rec, "authentication", NULL), "x509Thumbprint", "secondaryThumbprint")));

	/* The twin was created in the same transaction: an empty, version 1 twin. */
	assert_int_equal(store_get_json(f->txn, f->h.twins, "dev1", &twin), EMU_OK);
	assert_int_equal(twin_check(twin), EMU_OK);
	assert_int_equal(twin_version(twin), 1);
	assert_int_equal(twin_desired_version(twin), 1);
	json_decref(twin);

	/* What is stored is what was returned. */
	{
		json_t *again = NULL;
		assert_int_equal(hub_registry_get(&f->h, f->txn, "dev1", &again), EMU_OK);
		assert_true(json_equal(again, rec));
		json_decref(again);
	}
	json_decref(rec);

	/* A body without authentication gets SAS keys too; given keys are kept as given. */
	rec = put_ok(f, "dev2", "{}", NULL);
	assert_string_equal(str(rec, "authentication.type"), "sas");
	assert_key_32_bytes(str(rec, "authentication.symmetricKey.primaryKey"));
	json_decref(rec);
	rec = put_ok(f, "dev3",
	             "{\"authentication\":{\"type\":\"sas\",\"symmetricKey\":{"
	             "\"primaryKey\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"secondaryKey\":null}}}",
	             NULL);
	assert_string_equal(str(rec, "authentication.symmetricKey.primaryKey"),
	                    "AAAAAAAAAAAAAAAAAAAAAA==");
	assert_key_32_bytes(str(rec, "authentication.symmetricKey.secondaryKey"));
	json_decref(rec);
}

static void create_existing_conflicts(void **state)
{
	struct fx *f = *state;
	json_t *rec = put_ok(f, "dev1", "{}", NULL), *after = NULL;

	put_refused(f, "dev1", "{}", NULL, EMU_EEXIST,
	            "A device with ID 'dev1' is already registered.");
	put_refused(f, "dev1", "{}", "", EMU_EEXIST, "already registered");
	/* Ids are case-sensitive: DEV1 is another device. */
	json_decref(put_ok(f, "DEV1", "{}", NULL));
	assert_int_equal(hub_registry_get(&f->h, f->txn, "dev1", &after), EMU_OK);
	assert_true(json_equal(after, rec));
	json_decref(after);
	json_decref(rec);
}

static void self_signed_thumbprints(void **state)
{
	struct fx *f = *state;
	const char *sha1 = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12";
	json_t *rec;

	/* ':' and spaces stripped, upper-cased; the secondary defaults to the primary. */
	rec =
	    put_ok(f, "x1",
	           "{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
	           "\"primaryThumbprint\":\"ab:12:cd:34:ef:56:ab:12:cd:34 ef:56:ab:12:cd:34:ef:56:"
	           "ab:12\"}}}",
	           NULL);
	assert_string_equal(str(rec, "authentication.type"), "selfSigned");
	assert_string_equal(str(rec, "authentication.x509Thumbprint.primaryThumbprint"), sha1);
	assert_string_equal(str(rec, "authentication.x509Thumbprint.secondaryThumbprint"), sha1);
	assert_true(
	    json_is_null(get(get(rec, "authentication", NULL), "symmetricKey", "primaryKey")));
	assert_true(
	    json_is_null(get(get(rec, "authentication", NULL), "symmetricKey", "secondaryKey")));
	json_decref(rec);

	/* SHA-256, a distinct secondary, and the type inferred from the thumbprint. */
	rec = put_ok(f, "x2",
	             "{\"authentication\":{\"x509Thumbprint\":{\"primaryThumbprint\":"
	             "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
	             "\"secondaryThumbprint\":\""
	             "ffffffffffffffffffffffffffffffffffffffff"
	             "\"}}}",
	             NULL);
	assert_string_equal(str(rec, "authentication.type"), "selfSigned");
	assert_string_equal(str(rec, "authentication.x509Thumbprint.primaryThumbprint"),
	                    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
	assert_string_equal(str(rec, "authentication.x509Thumbprint.secondaryThumbprint"),
	                    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
	json_decref(rec);

	put_refused(f, "x3", "{\"authentication\":{\"type\":\"selfSigned\"}}", NULL, EMU_EINVAL,
	            "primaryThumbprint is required");
	put_refused(f, "x3",
	            "{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
	            "\"primaryThumbprint\":\"\"}}}",
	            NULL, EMU_EINVAL, "primaryThumbprint");
	put_refused(f, "x3",
	            "{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
	            "\"primaryThumbprint\":\"ABCD\"}}}",
	            NULL, EMU_EINVAL, "primaryThumbprint has 4");
	put_refused(f, "x3",
	            "{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
	            "\"primaryThumbprint\":\"AB12CD34EF56AB12CD34EF56AB12CD34EF56AB1G\"}}}",
	            NULL, EMU_EINVAL, "primaryThumbprint is not hexadecimal");
	put_refused(f, "x3",
	            "{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
	            "\"primaryThumbprint\":\"AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12\","
	            "\"secondaryThumbprint\":\"12\"}}}",
	            NULL, EMU_EINVAL, "secondaryThumbprint");
	put_refused(f, "x3",
	            "{\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{"
	            "\"primaryThumbprint\":\"AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12\"},"
	            "\"symmetricKey\":{\"primaryKey\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}}",
	            NULL, EMU_EINVAL, "symmetricKey must be empty");
	assert_false(stored(f, f->h.devices, "x3"));
	assert_false(stored(f, f->h.twins, "x3"));
}

static void certificate_authority_and_none(void **state)
{
	struct fx *f = *state;
	json_t *rec = put_ok(f, "ca1",
	                     "{\"authentication\":{\"type\":\"certificateAuthority\","
	                     "\"x509Thumbprint\":{\"primaryThumbprint\":null}}}",
	                     NULL);
	json_t *auth = json_object_get(rec, "authentication");

	assert_string_equal(str(rec, "authentication.type"), "certificateAuthority");
	assert_true(json_is_null(get(auth, "symmetricKey", "primaryKey")));
	assert_true(json_is_null(get(auth, "symmetricKey", "secondaryKey")));
	assert_true(json_is_null(get(auth, "x509Thumbprint", "primaryThumbprint")));
	assert_true(json_is_null(get(auth, "x509Thumbprint", "secondaryThumbprint")));
	json_decref(rec);
	put_refused(f, "ca2",
	            "{\"authentication\":{\"type\":\"certificateAuthority\","
	            "\"symmetricKey\":{\"primaryKey\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}}",
	            NULL, EMU_EINVAL, "must be empty for authentication type certificateAuthority");
	rec = put_ok(f, "none1", "{\"authentication\":{\"type\":\"none\"}}", NULL);
	assert_string_equal(str(rec, "authentication.type"), "none");
	assert_true(
	    json_is_null(get(get(rec, "authentication", NULL), "symmetricKey", "primaryKey")));
	json_decref(rec);
}

static void update_rules(void **state)
{
	struct fx *f = *state;
	json_t *v1 = put_ok(f, "dev1", "{\"deviceId\":\"dev1\"}", NULL), *v2, *v3;
	char quoted[64], why[512];

	/* Node's update: If-Match "*" (quoted), keys left empty: kept, not regenerated. */
	v2 = put_ok(
	    f, "dev1",
	    "{\"deviceId\":\"dev1\",\"status\":\"enabled\",\"authentication\":{"
	    "\"type\":\"sas\",\"symmetricKey\":{\"primaryKey\":\"\",\"secondaryKey\":\"\"}}}",
	    "\"*\"");
	assert_string_equal(str(v2, "generationId"), str(v1, "generationId"));
	assert_string_not_equal(str(v2, "etag"), str(v1, "etag"));
	assert_string_equal(str(v2, "authentication.symmetricKey.primaryKey"),
	                    str(v1, "authentication.symmetricKey.primaryKey"));
	assert_string_equal(str(v2, "authentication.symmetricKey.secondaryKey"),
	                    str(v1, "authentication.symmetricKey.secondaryKey"));
	assert_string_equal(str(v2, "statusUpdatedTime"), "0001-01-01T00:00:00Z");
	assert_int_equal(fake_closes, 0);

	/* A stale etag: 412, nothing written; the current one (quoted or not) works. */
	snprintf(quoted, sizeof(quoted), "\"%s\"", str(v1, "etag"));
	put_refused(f, "dev1", "{\"status\":\"disabled\"}", quoted, EMU_EPRECOND, "If-Match");
	snprintf(quoted, sizeof(quoted), "\"%s\"", str(v2, "etag"));
	/* Disabling: statusUpdatedTime moves, the connection is closed. */
	v3 =
	    put_ok(f, "dev1", "{\"status\":\"disabled\",\"statusReason\":\"maintenance\"}", quoted);
	assert_string_equal(str(v3, "status"), "disabled");
	assert_string_equal(str(v3, "statusReason"), "maintenance");
	assert_string_not_equal(str(v3, "statusUpdatedTime"), "0001-01-01T00:00:00Z");
	assert_string_equal(str(v3, "generationId"), str(v1, "generationId"));
	/* Authentication left out of the body is kept. */
	assert_string_equal(str(v3, "authentication.symmetricKey.primaryKey"),
	                    str(v1, "authentication.symmetricKey.primaryKey"));
	assert_int_equal(fake_closes, 1);
	assert_string_equal(fake_closed_id, "dev1");
	assert_string_equal(fake_close_reason, "device disabled");

	/* An unquoted etag matches too; enabling again closes nothing; a changed key is
	 * stored; the status case is normalised. */
	json_decref(put_ok(f, "dev1",
	                   "{\"status\":\"Enabled\",\"authentication\":{\"symmetricKey\":"
	                   "{\"primaryKey\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}}",
	                   str(v3, "etag")));
	assert_int_equal(fake_closes, 1);
	json_decref(v2);
	assert_int_equal(hub_registry_get(&f->h, f->txn, "dev1", &v2), EMU_OK);
	assert_string_equal(str(v2, "status"), "enabled");
	assert_string_equal(str(v2, "authentication.symmetricKey.primaryKey"),
	                    "AAAAAAAAAAAAAAAAAAAAAA==");
	assert_string_equal(str(v2, "authentication.symmetricKey.secondaryKey"),
	                    str(v1, "authentication.symmetricKey.secondaryKey"));

	/* Switching to selfSigned drops the keys; back to sas generates new ones. */
	json_decref(v3);
	v3 = put_ok(f, "dev1",
	            "{\"authentication\":{\"x509Thumbprint\":{\"primaryThumbprint\":"
	            "\"AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12\"}}}",
	            "*");
	assert_true(
	    json_is_null(get(get(v3, "authentication", NULL), "symmetricKey", "primaryKey")));
	json_decref(v3);
	v3 = put_ok(f, "dev1", "{\"authentication\":{\"type\":\"sas\"}}", "*");
	assert_key_32_bytes(str(v3, "authentication.symmetricKey.primaryKey"));
	assert_string_not_equal(str(v3, "authentication.symmetricKey.secondaryKey"),
	                        str(v1, "authentication.symmetricKey.secondaryKey"));

	/* An etag (not "*") for a device that does not exist: not found. */
	assert_int_equal(put(f, "ghost", "{}", quoted, NULL, why), EMU_ENOTFOUND);
	assert_false(stored(f, f->h.devices, "ghost"));
	/* "*" creates. */
	json_decref(put_ok(f, "ghost", "{}", "*"));
	assert_true(stored(f, f->h.twins, "ghost"));
	json_decref(v1);
	json_decref(v2);
	json_decref(v3);
}

static void invalid_ids(void **state)
{
	struct fx *f = *state;
	char long_id[HUB_DEVICE_ID_MAX + 2], why[256];
	json_t *rec;

	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	put_refused(f, long_id, "{}", NULL, EMU_EINVAL, "129 characters");
	long_id[HUB_DEVICE_ID_MAX] = '\0';
	json_decref(put_ok(f, long_id, "{}", NULL));
	put_refused(f, "", "{}", NULL, EMU_EINVAL, "empty");
	put_refused(f, "a/b", "{}", NULL, EMU_EINVAL, "'/' at offset 1");
	put_refused(f, "a b", "{}", NULL, EMU_EINVAL, "' ' at offset 1");
	put_refused(f, "caf\xc3\xa9", "{}", NULL, EMU_EINVAL, "0xc3 at offset 3");
	put_refused(f, "a\"b", "{}", NULL, EMU_EINVAL, "'\"'");
	/* Every listed punctuation character is accepted ('+' and '#' with a warning). */
	rec = put_ok(f, "a-.+%_#*?!(),=@$':;z", "{}", NULL);
	assert_string_equal(str(rec, "deviceId"), "a-.+%_#*?!(),=@$':;z");
	json_decref(rec);
	assert_int_equal(hub_device_id_valid("Dev-1", why, sizeof(why)), EMU_OK);
	assert_int_equal(hub_device_id_valid(NULL, why, sizeof(why)), EMU_EINVAL);
	assert_int_equal(hub_device_id_valid("a&b", NULL, 0), EMU_EINVAL);
	/* Lookups of invalid ids are simply "not found". */
	assert_int_equal(hub_registry_get(&f->h, f->txn, "a/b", &rec), EMU_ENOTFOUND);
	assert_null(rec);
}

static void invalid_bodies(void **state)
{
	struct fx *f = *state;
	json_t *arr = json_array(), *rec = NULL;
	char why[256];

	put_refused(f, "d", "{\"deviceId\":\"other\"}", NULL, EMU_EINVAL,
	            "deviceId 'other' in the body does not match 'd'");
	put_refused(f, "d", "{\"deviceId\":\"D\"}", NULL, EMU_EINVAL, "deviceId");
	put_refused(f, "d", "{\"deviceId\":5}", NULL, EMU_EINVAL, "deviceId");
	put_refused(f, "d", "{\"status\":\"on\"}", NULL, EMU_EINVAL, "status");
	put_refused(f, "d", "{\"status\":1}", NULL, EMU_EINVAL, "status");
	put_refused(f, "d", "{\"statusReason\":5}", NULL, EMU_EINVAL, "statusReason");
	put_refused(f, "d", "{\"capabilities\":[]}", NULL, EMU_EINVAL, "capabilities");
	put_refused(f, "d", "{\"capabilities\":{\"iotEdge\":\"yes\"}}", NULL, EMU_EINVAL,
	            "capabilities.iotEdge");
	put_refused(f, "d", "{\"deviceScope\":{}}", NULL, EMU_EINVAL, "deviceScope");
	put_refused(f, "d", "{\"authentication\":\"sas\"}", NULL, EMU_EINVAL,
	            "authentication must be an object");
	put_refused(f, "d", "{\"authentication\":{\"type\":\"password\"}}", NULL, EMU_EINVAL,
	            "authentication.type 'password'");
	put_refused(f, "d", "{\"authentication\":{\"type\":7}}", NULL, EMU_EINVAL,
	            "authentication.type");
	put_refused(f, "d", "{\"authentication\":{\"symmetricKey\":[]}}", NULL, EMU_EINVAL,
	            "authentication.symmetricKey");
	put_refused(f, "d", "{\"authentication\":{\"symmetricKey\":{\"primaryKey\":1}}}", NULL,
	            EMU_EINVAL, "authentication.symmetricKey.primaryKey");
	put_refused(f, "d",
	            "{\"authentication\":{\"symmetricKey\":{\"primaryKey\":\"not base64\"}}}", NULL,
	            EMU_EINVAL, "primaryKey is not valid base64");
	put_refused(f, "d", "{\"authentication\":{\"symmetricKey\":{\"secondaryKey\":\"AAAA\"}}}",
	            NULL, EMU_EINVAL, "secondaryKey decodes to 3 bytes");
	put_refused(f, "d",
	            "{\"authentication\":{\"type\":\"sas\",\"x509Thumbprint\":{"
	            "\"primaryThumbprint\":\"AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12\"}}}",
	            NULL, EMU_EINVAL, "x509Thumbprint must be empty for authentication type sas");
	/* Not an object at all. */
	assert_int_equal(hub_registry_put(&f->h, f->txn, "d", arr, NULL, &rec, why, sizeof(why)),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "not a JSON object"));
	json_decref(arr);
	/* Nothing was written by any refusal; unknown and read-only members are ignored. */
	assert_false(stored(f, f->h.devices, "d"));
	assert_false(stored(f, f->h.twins, "d"));
	rec = put_ok(
	    f, "d",
	    "{\"generationId\":\"1\",\"etag\":\"x\",\"connectionState\":"
	    "\"Connected\",\"cloudToDeviceMessageCount\":9,\"whatever\":1,"
	    "\"capabilities\":{\"iotEdge\":true},\"deviceScope\":\"ms-azure-iot-edge://e-1\"}",
	    NULL);
	assert_string_not_equal(str(rec, "generationId"), "1");
	assert_string_not_equal(str(rec, "etag"), "x");
	assert_string_equal(str(rec, "connectionState"), "Disconnected");
	assert_int_equal(json_integer_value(get(rec, "cloudToDeviceMessageCount", NULL)), 0);
	assert_null(json_object_get(rec, "whatever"));
	assert_true(json_is_true(get(rec, "capabilities", "iotEdge")));
	assert_string_equal(str(rec, "deviceScope"), "ms-azure-iot-edge://e-1");
	json_decref(rec);
}

static void delete_removes_twin(void **state)
{
	struct fx *f = *state;
	json_t *rec = put_ok(f, "dev1", "{}", NULL);
	char why[256], quoted[64];

	json_decref(put_ok(f, "dev2", "{}", NULL));
	assert_true(stored(f, f->h.twins, "dev1"));
	assert_int_equal(
	    hub_registry_delete(&f->h, f->txn, "dev1", "\"bm9wZQ==\"", why, sizeof(why)),
	    EMU_EPRECOND);
	assert_non_null(strstr(why, "If-Match"));
	assert_true(stored(f, f->h.devices, "dev1"));
	assert_int_equal(fake_closes, 0);

	snprintf(quoted, sizeof(quoted), "\"%s\"", str(rec, "etag"));
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev1", quoted, why, sizeof(why)),
	                 EMU_OK);
	assert_false(stored(f, f->h.devices, "dev1"));
	assert_false(stored(f, f->h.twins, "dev1"));
	assert_int_equal(fake_closes, 1);
	assert_string_equal(fake_closed_id, "dev1");
	assert_string_equal(fake_close_reason, "device deleted");
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev1", "*", why, sizeof(why)),
	                 EMU_ENOTFOUND);
	/* "*" and no If-Match both delete unconditionally. */
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev2", "\"*\"", why, sizeof(why)),
	                 EMU_OK);
	assert_false(stored(f, f->h.twins, "dev2"));
	json_decref(put_ok(f, "dev2", "{}", NULL));
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev2", NULL, why, sizeof(why)),
	                 EMU_OK);
	/* A re-created device gets a new generation and a fresh twin. */
	{
		json_t *again = put_ok(f, "dev1", "{}", NULL), *twin = NULL;
		assert_string_not_equal(str(again, "etag"), str(rec, "etag"));
		assert_int_equal(store_get_json(f->txn, f->h.twins, "dev1", &twin), EMU_OK);
		assert_int_equal(twin_version(twin), 1);
		json_decref(twin);
		json_decref(again);
	}
	json_decref(rec);
}

static void view_merges_connection_state(void **state)
{
	struct fx *f = *state;
	json_t *rec = put_ok(f, "dev1", "{}", NULL), *v;

	v = hub_registry_view(&f->h, f->txn, rec);
	assert_string_equal(str(v, "connectionState"), "Disconnected");
	assert_string_equal(str(v, "lastActivityTime"), "0001-01-01T00:00:00Z");
	json_decref(v);
	snprintf(fake_connected, sizeof(fake_connected), "dev1");
	fake_last_activity = 1700000000; /* 2023-11-14T22:13:20Z */
	v = hub_registry_view(&f->h, f->txn, rec);
	assert_string_equal(str(v, "connectionState"), "Connected");
	assert_string_equal(str(v, "lastActivityTime"), "2023-11-14T22:13:20Z");
	/* The rest is the record, and the record itself is untouched. */
	assert_string_equal(str(v, "etag"), str(rec, "etag"));
	assert_int_equal(json_integer_value(get(v, "cloudToDeviceMessageCount", NULL)), 0);
	assert_string_equal(str(rec, "connectionState"), "Disconnected");
	json_decref(v);
	json_decref(rec);
}

/* Queues one C2D message for id; returns its sequence number. */
static int64_t enqueue(struct fx *f, const char *id, const char *message_id)
{
	json_t *msg = json_pack("{s:s, s:{s:s}, s:{}}", "body", "eA==", "systemProperties",
	                        "messageId", message_id, "properties");
	int64_t seq = -1;

	assert_non_null(msg);
	assert_int_equal(hub_c2d_enqueue(&f->h, f->txn, id, msg, &seq), EMU_OK);
	assert_int_equal(json_integer_value(json_object_get(msg, "sequenceNumber")), seq);
	json_decref(msg);
	return seq;
}

static size_t queued(struct fx *f, const char *id)
{
	size_t n = 999;

	assert_int_equal(hub_c2d_count(&f->h, f->txn, id, &n), EMU_OK);
	return n;
}

static json_int_t view_count(struct fx *f, const char *id)
{
	json_t *rec = NULL, *v;
	json_int_t n;

	assert_int_equal(hub_registry_get(&f->h, f->txn, id, &rec), EMU_OK);
	v = hub_registry_view(&f->h, f->txn, rec);
	assert_non_null(v);
	n = json_integer_value(get(v, "cloudToDeviceMessageCount", NULL));
	/* The stored record does not carry the count; only the view does. */
	assert_int_equal(json_integer_value(get(rec, "cloudToDeviceMessageCount", NULL)), 0);
	json_decref(v);
	json_decref(rec);
	return n;
}

static void c2d_count_in_view(void **state)
{
	struct fx *f = *state;

	/* "dev1" is a prefix of the other ids: its queue must not count theirs. */
	json_decref(put_ok(f, "dev1", "{}", NULL));
	json_decref(put_ok(f, "dev10", "{}", NULL));
	json_decref(put_ok(f, "dev1!", "{}", NULL));
	assert_int_equal(view_count(f, "dev1"), 0);
	assert_int_equal(enqueue(f, "dev1", "m1"), 1);
	assert_int_equal(enqueue(f, "dev1", "m2"), 2);
	assert_int_equal(enqueue(f, "dev10", "n1"), 1);
	assert_int_equal(enqueue(f, "dev1!", "o1"), 1);
	assert_int_equal(enqueue(f, "dev1", "m3"), 3);
	assert_int_equal(queued(f, "dev1"), 3);
	assert_int_equal(view_count(f, "dev1"), 3);
	assert_int_equal(view_count(f, "dev10"), 1);
	assert_int_equal(view_count(f, "dev1!"), 1);
	assert_int_equal(queued(f, "nobody"), 0);
}

static void c2d_purge(void **state)
{
	struct fx *f = *state;
	char long_id[HUB_DEVICE_ID_MAX + 2];
	size_t purged = 99;

	json_decref(put_ok(f, "dev1", "{}", NULL));
	json_decref(put_ok(f, "dev10", "{}", NULL));
	enqueue(f, "dev1", "m1");
	enqueue(f, "dev1", "m2");
	enqueue(f, "dev10", "n1");
	assert_int_equal(hub_c2d_purge(&f->h, f->txn, "dev1", &purged), EMU_OK);
	assert_int_equal(purged, 2);
	assert_int_equal(queued(f, "dev1"), 0);
	assert_int_equal(queued(f, "dev10"), 1);
	/* Nothing left: purging again is fine and purges nothing; NULL count is fine. */
	assert_int_equal(hub_c2d_purge(&f->h, f->txn, "dev1", &purged), EMU_OK);
	assert_int_equal(purged, 0);
	assert_int_equal(hub_c2d_purge(&f->h, f->txn, "dev10", NULL), EMU_OK);
	assert_int_equal(queued(f, "dev10"), 0);
	/* Numbers go on after a purge: an old acknowledgement cannot hit a new message. */
	assert_int_equal(enqueue(f, "dev1", "m3"), 3);
	/* An id too long to be a device's could only name others' messages. */
	memset(long_id, 'd', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(hub_c2d_purge(&f->h, f->txn, long_id, &purged), EMU_EINVAL);
	assert_int_equal(queued(f, "dev1"), 1);
}

static void delete_purges_c2d(void **state)
{
	struct fx *f = *state;
	char why[256];
	json_t *again;

	json_decref(put_ok(f, "dev1", "{}", NULL));
	json_decref(put_ok(f, "dev10", "{}", NULL));
	enqueue(f, "dev1", "m1");
	enqueue(f, "dev1", "m2");
	enqueue(f, "dev10", "n1");
	/* A refused delete keeps the queue. */
	assert_int_equal(
	    hub_registry_delete(&f->h, f->txn, "dev1", "\"bm9wZQ==\"", why, sizeof(why)),
	    EMU_EPRECOND);
	assert_int_equal(queued(f, "dev1"), 2);

	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev1", "*", why, sizeof(why)), EMU_OK);
	assert_int_equal(queued(f, "dev1"), 0);
	assert_int_equal(queued(f, "dev10"), 1);
	/* Created again under the same id: an empty queue. */
	again = put_ok(f, "dev1", "{}", NULL);
	assert_int_equal(view_count(f, "dev1"), 0);
	assert_int_equal(enqueue(f, "dev1", "m3"), 3);
	assert_int_equal(view_count(f, "dev1"), 1);
	json_decref(again);

	/* All of it is one transaction: aborted, the messages are back. */
	assert_int_equal(store_txn_commit(f->txn), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 1, &f->txn), EMU_OK);
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev10", NULL, why, sizeof(why)),
	                 EMU_OK);
	assert_int_equal(queued(f, "dev10"), 0);
	store_txn_abort(f->txn);
	f->txn = NULL;
	assert_int_equal(store_txn_begin(f->st, 1, &f->txn), EMU_OK);
	assert_int_equal(queued(f, "dev10"), 1);
	assert_int_equal(view_count(f, "dev10"), 1);
}

static int collect(const char *id, const json_t *device, void *arg)
{
	json_t *ids = arg;
	json_array_append_new(ids, json_string(id));
	return json_array_size(ids) == 3;
}

static void foreach_and_stats(void **state)
{
	struct fx *f = *state;
	json_t *ids = json_array(), *stats = NULL;
	const char *order[] = {"a", "b", "c", "d"};

	for (int i = 3; i >= 0; i--)
		json_decref(put_ok(f, order[i], i == 1 ? "{\"status\":\"disabled\"}" : "{}", NULL));
	assert_int_equal(hub_registry_foreach(&f->h, f->txn, NULL, collect, ids), 1);
	assert_int_equal(json_array_size(ids), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(json_string_value(json_array_get(ids, i)), order[i]);
	json_array_clear(ids);
	assert_int_equal(hub_registry_foreach(&f->h, f->txn, "b", collect, ids), 0);
	assert_int_equal(json_array_size(ids), 2);
	assert_string_equal(json_string_value(json_array_get(ids, 0)), "c");
	json_decref(ids);

	assert_int_equal(hub_registry_stats(&f->h, f->txn, &stats), EMU_OK);
	assert_int_equal(json_integer_value(json_object_get(stats, "totalDeviceCount")), 4);
	assert_int_equal(json_integer_value(json_object_get(stats, "enabledDeviceCount")), 3);
	assert_int_equal(json_integer_value(json_object_get(stats, "disabledDeviceCount")), 1);
	json_decref(stats);
}

static void etags_survive_reopen(void **state)
{
	struct fx *f = *state;
	json_t *a = put_ok(f, "a", "{}", NULL), *b;

	/* The counter lives in the store: a new process does not reuse etags. */
	assert_int_equal(store_txn_commit(f->txn), EMU_OK);
	store_close(f->st);
	assert_int_equal(store_open(f->dir, 8, &f->st), EMU_OK);
	f->h.st = f->st;
	assert_int_equal(store_table_open(f->st, "devices", &f->h.devices), EMU_OK);
	assert_int_equal(store_table_open(f->st, "modules", &f->h.modules), EMU_OK);
	assert_int_equal(store_table_open(f->st, "twins", &f->h.twins), EMU_OK);
	assert_int_equal(store_table_open(f->st, "c2d", &f->h.c2d), EMU_OK);
	assert_int_equal(store_table_open(f->st, "hubMeta", &f->h.meta), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 1, &f->txn), EMU_OK);
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "a", NULL, NULL, 0), EMU_OK);
	b = put_ok(f, "a", "{}", NULL);
	assert_string_not_equal(str(a, "etag"), str(b, "etag"));
	json_decref(a);
	json_decref(b);
}

/* --- modules ----------------------------------------------------------------- */

static int mput(struct fx *f, const char *dev, const char *mod, const char *body,
                const char *if_match, json_t **out, char *why)
{
	json_t *b = parse(body), *rec = NULL;
	int rc;

	why[0] = '\0';
	rc = hub_module_put(&f->h, f->txn, dev, mod, b, if_match, &rec, why, 512);
	json_decref(b);
	if (out)
		*out = rec;
	else
		json_decref(rec);
	return rc;
}

static void identity_keys(void **state)
{
	char key[HUB_IDENTITY_KEY_MAX + 1], why[256];

	assert_int_equal(hub_identity_key("d1", NULL, key, why, sizeof(why)), EMU_OK);
	assert_string_equal(key, "d1");
	assert_int_equal(hub_identity_key("d1", "", key, why, sizeof(why)), EMU_OK);
	assert_string_equal(key, "d1");
	assert_int_equal(hub_identity_key("d1", "m1", key, why, sizeof(why)), EMU_OK);
	assert_string_equal(key, "d1/m1");
	/* '/' is in no id, so "d/m" cannot be a device's key. */
	assert_int_equal(hub_identity_key("d/m", NULL, key, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "device id contains '/'"));
	assert_int_equal(hub_identity_key("d", "m/x", key, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "module id contains '/'"));
	assert_int_equal(hub_module_id_valid("", why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "module id is empty"));
}

static void module_create_and_rules(void **state)
{
	struct fx *f = *state;
	json_t *d = put_ok(f, "dev1", "{}", NULL), *m = NULL, *m2 = NULL, *twin = NULL;
	char why[512], quoted[64];

	/* The device must exist. */
	assert_int_equal(mput(f, "nodev", "m1", "{}", NULL, &m, why), EMU_ENOTFOUND);
	assert_null(m);
	assert_int_equal(mput(f, "dev1", "m1", "{\"managedBy\":\"edge\"}", NULL, &m, why),
	                 EMU_OK);
	assert_string_equal(str(m, "moduleId"), "m1");
	assert_string_equal(str(m, "deviceId"), "dev1");
	assert_string_equal(str(m, "managedBy"), "edge");
	assert_string_equal(str(m, "authentication.type"), "sas");
	assert_non_null(str(m, "authentication.symmetricKey.primaryKey"));
	assert_int_equal(strlen(str(m, "generationId")), 18);
	assert_string_not_equal(str(m, "etag"), str(d, "etag"));
	assert_int_equal(json_integer_value(json_object_get(m, "cloudToDeviceMessageCount")), 0);
	assert_null(json_object_get(m, "status"));
	/* Stored apart from devices, with a twin under "dev1/m1". */
	assert_int_equal(store_get_json(f->txn, f->h.twins, "dev1/m1", &twin), EMU_OK);
	json_decref(twin);
	json_decref(d);
	assert_int_equal(hub_registry_get(&f->h, f->txn, "dev1/m1", &d), EMU_ENOTFOUND);

	assert_int_equal(mput(f, "dev1", "m1", "{}", NULL, NULL, why), EMU_EEXIST);
	assert_non_null(strstr(why, "A module with ID 'm1' is already registered on device "
	                            "'dev1'"));
	assert_int_equal(mput(f, "dev1", "m1", "{}", "\"bm9wZQ==\"", NULL, why), EMU_EPRECOND);
	assert_int_equal(mput(f, "dev1", "m2", "{}", "\"bm9wZQ==\"", NULL, why), EMU_ENOTFOUND);
	assert_int_equal(mput(f, "dev1", "m1", "{\"moduleId\":\"other\"}", "*", NULL, why),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "moduleId 'other' in the body does not match 'm1'"));
	assert_int_equal(mput(f, "dev1", "m1", "{\"managedBy\":5}", "*", NULL, why), EMU_EINVAL);
	assert_int_equal(mput(f, "dev1", "m#x/", "{}", NULL, NULL, why), EMU_EINVAL);
	assert_int_equal(mput(f, "dev1", "m1",
	                      "{\"authentication\":{\"type\":\"selfSigned\"}}", "*", NULL,
	                      why),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "primaryThumbprint is required"));

	/* An update with the etag: keys and generation stay, managedBy kept. */
	snprintf(quoted, sizeof(quoted), "\"%s\"", str(m, "etag"));
	assert_int_equal(mput(f, "dev1", "m1", "{}", quoted, &m2, why), EMU_OK);
	assert_string_equal(str(m2, "generationId"), str(m, "generationId"));
	assert_string_equal(str(m2, "managedBy"), "edge");
	assert_string_equal(str(m2, "authentication.symmetricKey.primaryKey"),
	                    str(m, "authentication.symmetricKey.primaryKey"));
	assert_string_not_equal(str(m2, "etag"), str(m, "etag"));
	json_decref(m);
	json_decref(m2);
}

static int collect_ids(const char *id, const json_t *rec, void *arg)
{
	json_t *ids = arg;

	json_array_append_new(ids, json_string(id));
	return 0;
}

static void module_list_view_delete(void **state)
{
	struct fx *f = *state;
	json_t *ids = json_array(), *m = NULL, *v, *twin = NULL;
	char why[512];

	json_decref(put_ok(f, "dev", "{}", NULL));
	json_decref(put_ok(f, "dev-x", "{}", NULL));
	json_decref(put_ok(f, "devx", "{}", NULL));
	assert_int_equal(mput(f, "dev", "b",
	                      "{\"authentication\":{\"x509Thumbprint\":{\"primaryThumbprint\":"
	                      "\"" "0123456789abcdef0123456789abcdef01234567\"}}}",
	                      NULL, &m, why),
	                 EMU_OK);
	assert_string_equal(str(m, "authentication.type"), "selfSigned");
	assert_int_equal(mput(f, "dev", "a", "{}", NULL, NULL, why), EMU_OK);
	/* Neighbours whose ids sort around "dev/" are not dev's modules. */
	assert_int_equal(mput(f, "dev-x", "z", "{}", NULL, NULL, why), EMU_OK);
	assert_int_equal(mput(f, "devx", "a", "{}", NULL, NULL, why), EMU_OK);
	assert_int_equal(hub_module_foreach(&f->h, f->txn, "dev", collect_ids, ids), 0);
	assert_int_equal(json_array_size(ids), 2);
	assert_string_equal(json_string_value(json_array_get(ids, 0)), "a");
	assert_string_equal(json_string_value(json_array_get(ids, 1)), "b");

	snprintf(fake_connected, sizeof(fake_connected), "dev/b");
	fake_last_activity = 1700000000;
	v = hub_module_view(&f->h, m);
	assert_string_equal(str(v, "connectionState"), "Connected");
	assert_string_equal(str(v, "lastActivityTime"), "2023-11-14T22:13:20Z");
	json_decref(v);

	assert_int_equal(hub_module_delete(&f->h, f->txn, "dev", "b", "\"bm9wZQ==\"", why, 512),
	                 EMU_EPRECOND);
	assert_int_equal(hub_module_delete(&f->h, f->txn, "dev", "b", "*", why, 512), EMU_OK);
	assert_int_equal(fake_closes, 1);
	assert_string_equal(fake_closed_id, "dev/b");
	assert_string_equal(fake_close_reason, "module deleted");
	assert_int_equal(hub_module_delete(&f->h, f->txn, "dev", "b", "*", why, 512),
	                 EMU_ENOTFOUND);
	assert_int_equal(store_get_json(f->txn, f->h.twins, "dev/b", &twin), EMU_ENOTFOUND);

	/* Deleting the device takes its modules and their twins, not the neighbours'. */
	assert_int_equal(hub_registry_delete(&f->h, f->txn, "dev", NULL, why, 512), EMU_OK);
	assert_string_equal(fake_closed_id, "dev");
	assert_int_equal(hub_module_get(&f->h, f->txn, "dev", "a", &twin), EMU_ENOTFOUND);
	assert_int_equal(store_get_json(f->txn, f->h.twins, "dev/a", &twin), EMU_ENOTFOUND);
	assert_int_equal(hub_module_get(&f->h, f->txn, "dev-x", "z", &twin), EMU_OK);
	json_decref(twin);
	assert_int_equal(hub_module_get(&f->h, f->txn, "devx", "a", &twin), EMU_OK);
	json_decref(twin);
	json_array_clear(ids);
	assert_int_equal(hub_module_foreach(&f->h, f->txn, "dev", collect_ids, ids), 0);
	assert_int_equal(json_array_size(ids), 0);
	/* Modules are not devices: listing and statistics see three devices less one. */
	assert_int_equal(hub_registry_foreach(&f->h, f->txn, NULL, collect_ids, ids), 0);
	assert_int_equal(json_array_size(ids), 2);
	json_decref(ids);
	json_decref(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(create_sas_generates_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(create_existing_conflicts, setup, teardown),
	    cmocka_unit_test_setup_teardown(self_signed_thumbprints, setup, teardown),
	    cmocka_unit_test_setup_teardown(certificate_authority_and_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(update_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(invalid_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(invalid_bodies, setup, teardown),
	    cmocka_unit_test_setup_teardown(delete_removes_twin, setup, teardown),
	    cmocka_unit_test_setup_teardown(view_merges_connection_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(c2d_count_in_view, setup, teardown),
	    cmocka_unit_test_setup_teardown(c2d_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(delete_purges_c2d, setup, teardown),
	    cmocka_unit_test_setup_teardown(foreach_and_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(etags_survive_reopen, setup, teardown),
	    cmocka_unit_test(identity_keys),
	    cmocka_unit_test_setup_teardown(module_create_and_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(module_list_view_delete, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
