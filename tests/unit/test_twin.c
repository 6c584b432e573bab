/* Unit tests for hub-sim/twin: creation, reported patches, service updates,
 * versions and etags, metadata, limits, and the exact shapes of both views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "hub-sim/twin.h"

#define T1 "2021-09-06T08:49:54.8803577Z"
#define T2 "2021-09-06T08:52:44.9300429Z"
#define T3 "2021-09-06T08:52:44.9962991Z"

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	if (!j)
		fail_msg("bad test JSON: %s: %s", s, e.text);
	return j;
}

static void assert_json(const json_t *j, const char *expected)
{
	char *s = json_dumps(j, JSON_COMPACT);

	assert_non_null(s);
	assert_string_equal(s, expected);
	free(s);
}

static json_t *new_twin(const char *initial, const char *now)
{
	json_t *init = initial ? parse(initial) : NULL, *t = NULL;
	char err[256] = "";

	assert_int_equal(twin_new(init, now, &t, err, sizeof(err)), EMU_OK);
	assert_string_equal(err, "");
	assert_int_equal(twin_check(t), EMU_OK);
	json_decref(init);
	return t;
}

static json_int_t patch_ok(json_t *t, const char *patch, const char *now)
{
	json_t *p = parse(patch);
	json_int_t v = -1;
	char err[256] = "";

	assert_int_equal(twin_patch_reported(t, p, now, &v, err, sizeof(err)), EMU_OK);
	assert_string_equal(err, "");
	json_decref(p);
	return v;
}

/* Runs a service update that must succeed; returns the notification (or NULL). */
static json_t *update_ok(json_t *t, const char *body, enum twin_update_mode mode, const char *now)
{
	json_t *b = parse(body), *note = (json_t *)1;
	char err[256] = "";

	assert_int_equal(twin_service_update(t, b, mode, now, &note, err, sizeof(err)), EMU_OK);
	assert_string_equal(err, "");
	json_decref(b);
	return note;
}

static void new_empty_twin(void **state)
{
	json_t *t = new_twin(NULL, T1), *v;
	char etag[TWIN_ETAG_LEN];

	assert_int_equal(twin_version(t), 1);
	assert_int_equal(twin_desired_version(t), 1);
	assert_int_equal(twin_reported_version(t), 1);
	assert_int_equal(twin_etag(t, etag), EMU_OK);
	assert_string_equal(etag, "AAAAAAAAAAE=");
	v = twin_device_view(t);
	assert_json(v, "{\"desired\":{\"$version\":1},\"reported\":{\"$version\":1}}");
	json_decref(v);
	/* the stored format, as documented */
	assert_json(t, "{\"schema\":1,\"version\":1,\"etagCounter\":1,\"tags\":{},\"desired\":{},"
	               "\"desiredVersion\":1,\"desiredMetadata\":{\"$lastUpdated\":"
	               "\"0001-01-01T00:00:00Z\"},\"reported\":{},\"reportedVersion\":1,"
	               "\"reportedMetadata\":{\"$lastUpdated\":\"0001-01-01T00:00:00Z\"}}");
	json_decref(t);
}

static void new_from_initial_twin(void **state)
{
	/* what a DPS enrollment GET returns, $metadata and $version included */
	json_t *t =
	    new_twin("{\"tags\":{\"site\":\"lab\",\"$version\":3},\"properties\":{\"desired\":"
	             "{\"fw\":{\"v\":\"1.0\"},\"n\":1,\"$metadata\":{\"$lastUpdated\":\"x\"},"
	             "\"$version\":7}},\"deviceId\":\"ignored\"}",
	             T1);
	json_t *v = twin_device_view(t);

	assert_json(v, "{\"desired\":{\"fw\":{\"v\":\"1.0\"},\"n\":1,\"$version\":1},"
	               "\"reported\":{\"$version\":1}}");
	json_decref(v);
	assert_json(json_object_get(t, "tags"), "{\"site\":\"lab\"}");
	assert_json(json_object_get(t, "desiredMetadata"),
	            "{\"$lastUpdated\":\"" T1
	            "\",\"$lastUpdatedVersion\":1,\"fw\":{\"$lastUpdated\":"
	            "\"" T1 "\",\"$lastUpdatedVersion\":1,\"v\":{\"$lastUpdated\":\"" T1 "\","
	            "\"$lastUpdatedVersion\":1}},\"n\":{\"$lastUpdated\":\"" T1 "\","
	            "\"$lastUpdatedVersion\":1}}");
	json_decref(t);

	/* null parts count as absent */
	t = new_twin("{\"tags\":null,\"properties\":{\"desired\":null}}", T1);
	assert_json(json_object_get(t, "desired"), "{}");
	json_decref(t);
}

static void new_refusals(void **state)
{
	static const char *bad[] = {
	    "[]",
	    "{\"tags\":1}",
	    "{\"properties\":\"x\"}",
	    "{\"properties\":{\"desired\":[1]}}",
	    "{\"properties\":{\"desired\":{\"a.b\":1}}}",
	    "{\"tags\":{\"$other\":1}}",
	};
	json_t *init, *t;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		init = parse(bad[i]);
		err[0] = '\0';
		t = (json_t *)1;
		assert_int_equal(twin_new(init, T1, &t, err, sizeof(err)), EMU_EINVAL);
		assert_null(t);
		assert_true(strlen(err) > 0);
		json_decref(init);
	}
}

static void reported_patches(void **state)
{
	json_t *t = new_twin(NULL, T1), *v;

	assert_int_equal(patch_ok(t, "{\"device_count\":0}", T1), 2);
	assert_int_equal(twin_reported_version(t), 2);
	assert_int_equal(twin_version(t), 2);
	v = twin_device_view(t);
	/* the real hub's MQTT GET body, byte for byte */
	assert_json(v, "{\"desired\":{\"$version\":1},\"reported\":{\"device_count\":0,"
	               "\"$version\":2}}");
	json_decref(v);

	/* nested merge, replace, delete */
	assert_int_equal(patch_ok(t, "{\"fw\":{\"version\":\"1.0\",\"state\":\"ok\"},\"x\":1}", T2),
	                 3);
	assert_int_equal(patch_ok(t,
	                          "{\"fw\":{\"state\":\"updating\",\"progress\":{\"pct\":5}},"
	                          "\"x\":null,\"gone\":null}",
	                          T3),
	                 4);
	assert_json(json_object_get(t, "reported"),
	            "{\"device_count\":0,\"fw\":{\"version\":\"1.0\",\"state\":\"updating\","
	            "\"progress\":{\"pct\":5}}}");
	/* metadata: every object level stamped; untouched members keep their stamps;
	 * deleted members lose theirs */
	assert_json(json_object_get(t, "reportedMetadata"),
	            "{\"$lastUpdated\":\"" T3 "\",\"device_count\":{\"$lastUpdated\":\"" T1 "\"},"
	            "\"fw\":{\"$lastUpdated\":\"" T3 "\",\"version\":{\"$lastUpdated\":\"" T2 "\"},"
	            "\"state\":{\"$lastUpdated\":\"" T3 "\"},\"progress\":{\"$lastUpdated\":\"" T3
	            "\",\"pct\":{\"$lastUpdated\":\"" T3 "\"}}}}");

	/* a leaf becomes an object and back */
	patch_ok(t, "{\"device_count\":{\"a\":1}}", T1);
	assert_json(json_object_get(json_object_get(t, "reportedMetadata"), "device_count"),
	            "{\"$lastUpdated\":\"" T1 "\",\"a\":{\"$lastUpdated\":\"" T1 "\"}}");
	patch_ok(t, "{\"device_count\":[1,2]}", T2);
	assert_json(json_object_get(json_object_get(t, "reportedMetadata"), "device_count"),
	            "{\"$lastUpdated\":\"" T2 "\"}");
	assert_json(json_object_get(json_object_get(t, "reported"), "device_count"), "[1,2]");

	/* read-only keys clients echo back are ignored; an empty patch still counts */
	assert_int_equal(patch_ok(t, "{\"$version\":99,\"$metadata\":{},\"k\":true}", T1), 7);
	assert_null(json_object_get(json_object_get(t, "reported"), "$version"));
	assert_int_equal(patch_ok(t, "{}", T1), 8);
	assert_int_equal(twin_version(t), 8);
	/* reported writes never move the etag or the desired version */
	assert_int_equal(twin_desired_version(t), 1);
	assert_true(twin_etag_matches(t, "\"AAAAAAAAAAE=\""));
	json_decref(t);
}

/* A JSON object text of at least bytes bytes: "kN" keys with 4000-byte strings
 * (under the 4 KiB value limit). */
static char *big_object(size_t bytes)
{
	size_t n = bytes / 4000 + 1, cap = n * 4020 + 16, len = 1;
	char *s = malloc(cap);

	assert_non_null(s);
	s[0] = '{';
	for (size_t i = 0; i < n; i++) {
		len += (size_t)snprintf(s + len, cap - len, "%s\"k%zu\":\"", i ? "," : "", i);
		memset(s + len, 'x', 4000);
		len += 4000;
		s[len++] = '"';
	}
	s[len++] = '}';
	s[len] = '\0';
	return s;
}

static void reported_refusals_change_nothing(void **state)
{
	static const struct {
		const char *patch;
		int rc;
		const char *msg;
	} bad[] = {
	    {"\"a string\"", EMU_EINVAL, "reported properties patch is not a JSON object"},
	    {"[1,2]", EMU_EINVAL, "reported properties patch is not a JSON object"},
	    {"42", EMU_EINVAL, NULL},
	    {"null", EMU_EINVAL, NULL},
	    {"{\"a.b\":1}", EMU_EINVAL,
	     "reported property name 'a.b' contains '.', '$' or a space"},
	    {"{\"ok\":1,\"x\":{\"$y\":1}}", EMU_EINVAL, NULL},
	    {"{\"$other\":1}", EMU_EINVAL, NULL},
	    {"{\"a b\":1}", EMU_EINVAL, NULL},
	    {"{\"a\\tb\":1}", EMU_EINVAL,
	     "reported property name 'a\tb' contains a control "
	     "character"},
	    {"{\"a\\u0085b\":1}", EMU_EINVAL, NULL}, /* C1 control */
	    {"{\"a\\u007fb\":1}", EMU_EINVAL, NULL},
	    {"{\"\":1}", EMU_EINVAL, "reported property name '' is empty"},
	    {"{\"n\":4503599627370496}", EMU_EINVAL, NULL},
	    {"{\"n\":-4503599627370496}", EMU_EINVAL, NULL},
	    {"{\"1\":{\"2\":{\"3\":{\"4\":{\"5\":{\"6\":{\"7\":{\"8\":{\"9\":{\"10\":{\"11\":{}}}}}"
	     "}"
	     "}}}}}}",
	     EMU_EINVAL, "reported properties are nested deeper than 10 levels"},
	    {"{\"a\":[[[[[[[[[[[1]]]]]]]]]]]}", EMU_EINVAL, NULL},
	};
	json_t *t = new_twin(NULL, T1), *p;
	char *before, *after, err[300];
	char key[1100];

	patch_ok(t, "{\"keep\":{\"me\":1}}", T1);
	before = json_dumps(t, JSON_COMPACT);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_int_t v = -7;

		p = json_loads(bad[i].patch, JSON_DECODE_ANY, NULL);
		assert_non_null(p);
		err[0] = '\0';
		assert_int_equal(twin_patch_reported(t, p, T2, &v, err, sizeof(err)), bad[i].rc);
		assert_int_equal(v, -7);
		if (bad[i].msg)
			assert_string_equal(err, bad[i].msg);
		else
			assert_true(strlen(err) > 0);
		json_decref(p);
	}
	/* key length: 1024 bytes pass, 1025 do not */
	memset(key, 'k', 1025);
	key[1025] = '\0';
	p = json_pack("{s:i}", key, 1);
	assert_int_equal(twin_patch_reported(t, p, T2, NULL, err, sizeof(err)), EMU_EINVAL);
	json_decref(p);
	/* string values: 4096 bytes pass (below), 4097 do not */
	{
		char *s4097 = malloc(4098);

		memset(s4097, 'v', 4097);
		s4097[4097] = '\0';
		p = json_pack("{s:s}", "s", s4097);
		assert_int_equal(twin_patch_reported(t, p, T2, NULL, err, sizeof(err)), EMU_EINVAL);
		json_decref(p);
		free(s4097);
	}
	/* a 33 KB patch is refused for its size */
	{
		char *big = big_object(33 * 1024);

		p = parse(big);
		assert_int_equal(twin_patch_reported(t, p, T2, NULL, err, sizeof(err)),
		                 EMU_ETOOBIG);
		assert_non_null(strstr(err, "more than the 32768 allowed"));
		json_decref(p);
		free(big);
	}
	after = json_dumps(t, JSON_COMPACT);
	assert_string_equal(before, after);
	free(after);

	/* limits themselves pass: depth 10, 1024-byte key, 4096-byte string, 2^52-1 */
	key[1024] = '\0';
	memset(key, 'k', 1024);
	p = json_pack("{s:i}", key, 1);
	assert_int_equal(twin_patch_reported(t, p, T2, NULL, err, sizeof(err)), EMU_OK);
	json_decref(p);
	patch_ok(
	    t,
	    "{\"1\":{\"2\":{\"3\":{\"4\":{\"5\":{\"6\":{\"7\":{\"8\":{\"9\":{\"10\":{\"p\":1}}}"
	    "}}}}}}}}",
	    T2);
	patch_ok(t, "{\"n\":4503599627370495,\"m\":-4503599627370495,\"r\":1.5}", T2);
	{
		char *s4096 = malloc(4097);

		memset(s4096, 'v', 4096);
		s4096[4096] = '\0';
		p = json_pack("{s:s}", "s", s4096);
		assert_int_equal(twin_patch_reported(t, p, T2, NULL, err, sizeof(err)), EMU_OK);
		json_decref(p);
		free(s4096);
	}
	free(before);
	json_decref(t);
}

static void reported_size_counts_the_result(void **state)
{
	/* two patches that fit alone but not together */
	json_t *t = new_twin(NULL, T1), *p;
	char *a = big_object(17000), *before;
	char err[200];

	patch_ok(t, a, T1);
	before = json_dumps(t, JSON_COMPACT);
	/* same keys again: replaces, still fits */
	patch_ok(t, a, T2);
	free(a);
	a = big_object(17000);
	/* rename the keys so they add up: k0 -> j0 ... */
	for (char *q = a; (q = strstr(q, "\"k")); q += 2)
		q[1] = 'j';
	p = parse(a);
	assert_int_equal(twin_patch_reported(t, p, T3, NULL, err, sizeof(err)), EMU_ETOOBIG);
	json_decref(p);
	free(a);
	assert_int_equal(twin_reported_version(t), 3);
	free(before);
	json_decref(t);
}

static void desired_patch(void **state)
{
	json_t *t = new_twin("{\"properties\":{\"desired\":{\"a\":1,\"b\":2}}}", T1), *note;
	char etag[TWIN_ETAG_LEN];

	/* the hub does not diff: every named property is in the push, even unchanged */
	note = update_ok(t,
	                 "{\"properties\":{\"desired\":{\"a\":1,\"b\":2,\"route\":null,"
	                 "\"$version\":1}}}",
	                 TWIN_UPDATE_PATCH, T2);
	assert_json(note, "{\"a\":1,\"b\":2,\"route\":null,\"$version\":2}");
	json_decref(note);
	assert_int_equal(twin_desired_version(t), 2);
	assert_int_equal(twin_version(t), 2);
	twin_etag(t, etag);
	assert_string_equal(etag, "AAAAAAAAAAI=");

	note = update_ok(t,
	                 "{\"properties\":{\"desired\":{\"telemetrySendFrequency\":\"5m\","
	                 "\"b\":null,\"nest\":{\"x\":{\"y\":1}}}}}",
	                 TWIN_UPDATE_PATCH, T3);
	assert_json(note,
	            "{\"telemetrySendFrequency\":\"5m\",\"b\":null,\"nest\":{\"x\":{\"y\":1}},"
	            "\"$version\":3}");
	json_decref(note);
	assert_json(json_object_get(t, "desired"),
	            "{\"a\":1,\"telemetrySendFrequency\":\"5m\",\"nest\":{\"x\":{\"y\":1}}}");
	assert_json(json_object_get(t, "desiredMetadata"),
	            "{\"$lastUpdated\":\"" T3
	            "\",\"$lastUpdatedVersion\":3,\"a\":{\"$lastUpdated\":"
	            "\"" T2 "\",\"$lastUpdatedVersion\":2},\"telemetrySendFrequency\":{"
	            "\"$lastUpdated\":\"" T3 "\",\"$lastUpdatedVersion\":3},\"nest\":{"
	            "\"$lastUpdated\":\"" T3 "\",\"$lastUpdatedVersion\":3,\"x\":{\"$lastUpdated\":"
	            "\"" T3 "\",\"$lastUpdatedVersion\":3,\"y\":{\"$lastUpdated\":\"" T3 "\","
	            "\"$lastUpdatedVersion\":3}}}}");

	/* tags only: etag and version move, desired $version does not, nothing to push */
	note = update_ok(t, "{\"tags\":{\"site\":{\"building\":\"43\"}},\"etag\":\"x\"}",
	                 TWIN_UPDATE_PATCH, T1);
	assert_null(note);
	assert_int_equal(twin_desired_version(t), 3);
	assert_int_equal(twin_version(t), 4);
	twin_etag(t, etag);
	assert_string_equal(etag, "AAAAAAAAAAQ=");
	note =
	    update_ok(t, "{\"tags\":{\"site\":{\"floor\":1},\"x\":null}}", TWIN_UPDATE_PATCH, T1);
	assert_null(note);
	assert_json(json_object_get(t, "tags"), "{\"site\":{\"building\":\"43\",\"floor\":1}}");

	/* an empty desired patch still pushes (no-op updates notify) */
	note = update_ok(t, "{\"properties\":{\"desired\":{}}}", TWIN_UPDATE_PATCH, T1);
	assert_json(note, "{\"$version\":4}");
	json_decref(note);

	/* nothing at all: nothing changes; reported in a service body is ignored */
	note = update_ok(t, "{\"properties\":{\"reported\":{\"r\":1}}}", TWIN_UPDATE_PATCH, T1);
	assert_null(note);
	assert_int_equal(twin_version(t), 6);
	assert_json(json_object_get(t, "reported"), "{}");

	/* notify NULL: the caller pushes nothing */
	json_t *b = parse("{\"properties\":{\"desired\":{\"q\":1}}}");
	assert_int_equal(twin_service_update(t, b, TWIN_UPDATE_PATCH, T1, NULL, NULL, 0), EMU_OK);
	assert_int_equal(twin_desired_version(t), 5);
	json_decref(b);
	json_decref(t);
}

static void desired_replace(void **state)
{
	json_t *t = new_twin("{\"tags\":{\"old\":1},\"properties\":{\"desired\":{\"a\":1,\"b\":2,"
	                     "\"o\":{\"x\":1,\"y\":2},\"l\":3}}}",
	                     T1),
	       *note;

	/* PUT {a:1,c:100} over {a:1,b:2}: {"a":1,"c":100,"b":null}, recursively in objects */
	note = update_ok(t,
	                 "{\"deviceId\":\"d\",\"tags\":{\"new\":2},\"properties\":{\"desired\":"
	                 "{\"a\":1,\"c\":100,\"o\":{\"x\":1},\"l\":{\"z\":1},\"n\":null,"
	                 "\"$metadata\":{},\"$version\":1}}}",
	                 TWIN_UPDATE_REPLACE, T2);
	assert_json(note,
	            "{\"a\":1,\"c\":100,\"o\":{\"x\":1,\"y\":null},\"l\":{\"z\":1},\"b\":null,"
	            "\"$version\":2}");
	json_decref(note);
	assert_json(json_object_get(t, "desired"),
	            "{\"a\":1,\"c\":100,\"o\":{\"x\":1},\"l\":{\"z\":1}}");
	assert_json(json_object_get(t, "tags"), "{\"new\":2}");
	assert_json(json_object_get(t, "desiredMetadata"),
	            "{\"$lastUpdated\":\"" T2
	            "\",\"$lastUpdatedVersion\":2,\"a\":{\"$lastUpdated\":"
	            "\"" T2 "\",\"$lastUpdatedVersion\":2},\"c\":{\"$lastUpdated\":\"" T2 "\","
	            "\"$lastUpdatedVersion\":2},\"o\":{\"$lastUpdated\":\"" T2 "\","
	            "\"$lastUpdatedVersion\":2,\"x\":{\"$lastUpdated\":\"" T2 "\","
	            "\"$lastUpdatedVersion\":2}},\"l\":{\"$lastUpdated\":\"" T2 "\","
	            "\"$lastUpdatedVersion\":2,\"z\":{\"$lastUpdated\":\"" T2 "\","
	            "\"$lastUpdatedVersion\":2}}}");
	assert_int_equal(twin_version(t), 2);

	/* PUT without parts clears both and still bumps the desired version */
	note = update_ok(t, "{}", TWIN_UPDATE_REPLACE, T3);
	assert_json(note, "{\"a\":null,\"c\":null,\"o\":null,\"l\":null,\"$version\":3}");
	json_decref(note);
	assert_json(json_object_get(t, "tags"), "{}");
	assert_json(json_object_get(t, "desired"), "{}");
	assert_json(json_object_get(t, "desiredMetadata"),
	            "{\"$lastUpdated\":\"" T3 "\",\"$lastUpdatedVersion\":3}");
	json_decref(t);
}

static void service_refusals_change_nothing(void **state)
{
	static const char *bad[] = {
	    "[]",
	    "\"x\"",
	    "{\"tags\":[]}",
	    "{\"properties\":1}",
	    "{\"properties\":{\"desired\":\"x\"}}",
	    "{\"properties\":{\"desired\":{\"a.b\":1}}}",
	    "{\"tags\":{\"ok\":1},\"properties\":{\"desired\":{\"bad key\":1}}}",
	    "{\"tags\":{\"$x\":1}}",
	};
	json_t *t = new_twin("{\"tags\":{\"t\":1},\"properties\":{\"desired\":{\"a\":1}}}", T1);
	json_t *b, *note;
	char *before, *after, err[256];

	before = json_dumps(t, JSON_COMPACT);
	for (int mode = 0; mode < 2; mode++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
			note = (json_t *)1;
			err[0] = '\0';
			assert_int_equal(twin_service_update(
			                     t, b, mode ? TWIN_UPDATE_REPLACE : TWIN_UPDATE_PATCH,
			                     T2, &note, err, sizeof(err)),
			                 EMU_EINVAL);
			assert_null(note);
			assert_true(strlen(err) > 0);
			json_decref(b);
		}
	}
	/* tags over 8 KiB, desired over 32 KiB */
	{
		char *big = big_object(9000);
		json_t *tags = parse(big);

		b = json_pack("{s:o}", "tags", tags);
		assert_int_equal(
		    twin_service_update(t, b, TWIN_UPDATE_PATCH, T2, &note, err, sizeof(err)),
		    EMU_ETOOBIG);
		assert_null(note);
		json_decref(b);
		free(big);
		big = big_object(33000);
		b = json_pack("{s:{s:o}}", "properties", "desired", parse(big));
		assert_int_equal(
		    twin_service_update(t, b, TWIN_UPDATE_REPLACE, T2, &note, err, sizeof(err)),
		    EMU_ETOOBIG);
		assert_non_null(strstr(err, "desired properties would take"));
		json_decref(b);
		free(big);
	}
	after = json_dumps(t, JSON_COMPACT);
	assert_string_equal(before, after);
	free(before);
	free(after);
	json_decref(t);
}

static void etags(void **state)
{
	json_t *t = new_twin(NULL, T1);
	char etag[TWIN_ETAG_LEN];

	assert_true(twin_etag_matches(t, NULL));
	assert_true(twin_etag_matches(t, ""));
	assert_true(twin_etag_matches(t, "*"));
	assert_true(twin_etag_matches(t, "\"*\""));
	assert_true(twin_etag_matches(t, "AAAAAAAAAAE="));
	assert_true(twin_etag_matches(t, "\"AAAAAAAAAAE=\""));
	assert_true(twin_etag_matches(t, " W/\"AAAAAAAAAAE=\" "));
	assert_false(twin_etag_matches(t, "AAAAAAAAAAI="));
	assert_false(twin_etag_matches(t, "\"AAAAAAAAAAE\""));
	assert_false(twin_etag_matches(t, "\"\""));
	assert_false(twin_etag_matches(t, "**"));
	assert_false(twin_etag_matches(t, "\""));

	/* 8 big-endian bytes: 256 -> AAAAAAAAAQA= */
	json_object_set_new(t, "etagCounter", json_integer(256));
	assert_int_equal(twin_etag(t, etag), EMU_OK);
	assert_string_equal(etag, "AAAAAAAAAQA=");
	json_decref(t);
}

static void service_view_shape(void **state)
{
	json_t *t = new_twin(NULL, T1), *v, *note;
	struct twin_identity id = {
	    .device_id = "VxDev1",
	    .device_etag = "NjU4ODE3NDIy",
	    .connection_state = "Connected",
	    .last_activity_time = "2021-09-06T08:49:54.8803577Z",
	};

	note = update_ok(t, "{\"properties\":{\"desired\":{\"device_count\":100}}}",
	                 TWIN_UPDATE_PATCH, T2);
	json_decref(note);
	patch_ok(t, "{\"device_count\":100}", T3);
	v = twin_service_view(t, &id);
	assert_json(
	    v, "{\"deviceId\":\"VxDev1\",\"etag\":\"AAAAAAAAAAI=\",\"deviceEtag\":"
	       "\"NjU4ODE3NDIy\",\"status\":\"enabled\",\"statusUpdateTime\":"
	       "\"0001-01-01T00:00:00Z\",\"connectionState\":\"Connected\","
	       "\"lastActivityTime\":\"2021-09-06T08:49:54.8803577Z\","
	       "\"cloudToDeviceMessageCount\":0,\"authenticationType\":\"sas\","
	       "\"x509Thumbprint\":{\"primaryThumbprint\":null,\"secondaryThumbprint\":null},"
	       "\"modelId\":\"\",\"version\":3,\"tags\":{},\"properties\":{\"desired\":{"
	       "\"device_count\":100,\"$metadata\":{\"$lastUpdated\":\"" T2 "\","
	       "\"$lastUpdatedVersion\":2,\"device_count\":{\"$lastUpdated\":\"" T2 "\","
	       "\"$lastUpdatedVersion\":2}},\"$version\":2},\"reported\":{\"device_count\":100,"
	       "\"$metadata\":{\"$lastUpdated\":\"" T3 "\",\"device_count\":{\"$lastUpdated\":"
	       "\"" T3 "\"}},\"$version\":2}},\"capabilities\":{\"iotEdge\":false}}");
	json_decref(v);

	/* a module twin, X.509, every field given */
	struct twin_identity mid = {
	    .device_id = "d",
	    .module_id = "m",
	    .status = "disabled",
	    .status_reason = "why",
	    .status_update_time = T1,
	    .c2d_message_count = 3,
	    .authentication_type = "selfSigned",
	    .primary_thumbprint = "AB",
	    .secondary_thumbprint = "CD",
	    .model_id = "dtmi:a:b;1",
	    .iot_edge = true,
	};
	v = twin_service_view(t, &mid);
	assert_json(json_object_get(v, "x509Thumbprint"),
	            "{\"primaryThumbprint\":\"AB\",\"secondaryThumbprint\":\"CD\"}");
	assert_string_equal(json_string_value(json_object_get(v, "moduleId")), "m");
	assert_string_equal(json_string_value(json_object_get(v, "statusReason")), "why");
	assert_string_equal(json_string_value(json_object_get(v, "modelId")), "dtmi:a:b;1");
	assert_null(json_object_get(v, "capabilities"));
	assert_null(json_object_get(v, "deviceEtag"));
	assert_int_equal(json_integer_value(json_object_get(v, "cloudToDeviceMessageCount")), 3);
	/* the view is a copy: changing it leaves the twin alone */
	json_object_set_new(json_object_get(json_object_get(v, "properties"), "desired"), "zz",
	                    json_true());
	assert_null(json_object_get(json_object_get(t, "desired"), "zz"));
	json_decref(v);
	id.device_id = NULL;
	assert_null(twin_service_view(t, &id));
	json_decref(t);
}

static void malformed_stored_twin(void **state)
{
	json_t *bad = parse("{\"schema\":1,\"version\":1}"), *p = parse("{}"), *note;
	struct twin_identity id = {.device_id = "d"};
	char etag[TWIN_ETAG_LEN], err[100];

	assert_int_equal(twin_check(bad), EMU_EINVAL);
	assert_int_equal(twin_version(bad), -1);
	assert_int_equal(twin_desired_version(bad), -1);
	assert_int_equal(twin_reported_version(bad), -1);
	assert_int_equal(twin_etag(bad, etag), EMU_EINVAL);
	assert_false(twin_etag_matches(bad, "*"));
	assert_null(twin_device_view(bad));
	assert_null(twin_service_view(bad, &id));
	assert_int_equal(twin_patch_reported(bad, p, T1, NULL, err, sizeof(err)), EMU_EINVAL);
	assert_int_equal(
	    twin_service_update(bad, p, TWIN_UPDATE_PATCH, T1, &note, err, sizeof(err)),
	    EMU_EINVAL);
	assert_null(note);
	assert_int_equal(twin_check(NULL), EMU_EINVAL);
	json_decref(bad);
	json_decref(p);

	/* a stored twin round-trips through JSON text (as the store keeps it) */
	json_t *t = new_twin("{\"properties\":{\"desired\":{\"a\":{\"b\":1}}}}", T1);
	char *s = json_dumps(t, JSON_COMPACT);
	json_t *again = parse(s);

	assert_int_equal(twin_check(again), EMU_OK);
	assert_true(json_equal(t, again));
	free(s);
	json_decref(again);
	json_decref(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(new_empty_twin),
	    cmocka_unit_test(new_from_initial_twin),
	    cmocka_unit_test(new_refusals),
	    cmocka_unit_test(reported_patches),
	    cmocka_unit_test(reported_refusals_change_nothing),
	    cmocka_unit_test(reported_size_counts_the_result),
	    cmocka_unit_test(desired_patch),
	    cmocka_unit_test(desired_replace),
	    cmocka_unit_test(service_refusals_change_nothing),
	    cmocka_unit_test(etags),
	    cmocka_unit_test(service_view_shape),
	    cmocka_unit_test(malformed_stored_twin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
