/* Unit tests for hub-sim/propbag: parsing telemetry property bags, the system
 * property table, limits, encoding for cloud-to-device topics and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "hub-sim/propbag.h"

static struct propbag *parse_ok(const char *s)
{
	struct propbag *pb = NULL;
	char err[256] = "";

	assert_int_equal(propbag_parse(s, strlen(s), &pb, err, sizeof(err)), EMU_OK);
	assert_non_null(pb);
	assert_string_equal(err, "");
	return pb;
}

static void assert_prop(const struct propbag *pb, size_t i, bool system, const char *name,
                        const char *value)
{
	const struct propbag_prop *p = propbag_at(pb, i);

	assert_non_null(p);
	assert_int_equal(p->system, system);
	assert_string_equal(p->name, name);
	if (value)
		assert_string_equal(p->value, value);
	else
		assert_null(p->value);
}

static void parse_node_telemetry(void **state)
{
	struct propbag *pb = parse_ok("%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&"
	                              "%24.ce=utf-8&alert=true&sp%20ace=a%2Fb");

	assert_int_equal(propbag_count(pb), 6);
	assert_prop(pb, 0, true, "messageId", "m-1");
	assert_prop(pb, 1, true, "correlationId", "c-1");
	assert_prop(pb, 2, true, "contentType", "application/json");
	assert_prop(pb, 3, true, "contentEncoding", "utf-8");
	assert_prop(pb, 4, false, "alert", "true");
	assert_prop(pb, 5, false, "sp ace", "a/b");
	assert_null(propbag_at(pb, 6));
	assert_string_equal(propbag_find(pb, true, "contentType")->value, "application/json");
	assert_null(propbag_find(pb, false, "contentType"));
	assert_null(propbag_find(pb, true, "alert"));
	propbag_free(pb);
}

static void parse_system_table(void **state)
{
	/* raw "$." as the docs and raw MQTT users send it, every mapped key */
	struct propbag *pb =
	    parse_ok("$.mid=1&$.cid=2&$.uid=3&$.ct=4&$.ce=5&$.exp=6&$.to=7&"
	             "$.ctime=8&$.on=9&$.ifid=10&$.sub=thermostat1&$.schema=12&"
	             "$.diagid=13&$.diagctx=14&iothub-operation=15&iothub-ack=full&"
	             "%24.future=x&$.MID=upper&iothub-creation-time-utc=t");
	static const char *names[] = {
	    "messageId",   "correlationId",          "userId",
	    "contentType", "contentEncoding",        "expiryTimeUtc",
	    "to",          "creationTimeUtc",        "outputName",
	    "interfaceId", "componentName",          "messageSchema",
	    "diagId",      "diagCorrelationContext", "operation",
	    "ack",
	};

	assert_int_equal(propbag_count(pb), 19);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_true(propbag_at(pb, i)->system &&
		            strcmp(propbag_at(pb, i)->name, names[i]) == 0);
	assert_string_equal(propbag_find(pb, true, "componentName")->value, "thermostat1");
	/* unknown "$." keys stay system properties under their decoded key */
	assert_prop(pb, 16, true, "$.future", "x");
	assert_prop(pb, 17, true, "$.MID", "upper");
	/* other iothub- keys are application properties */
	assert_prop(pb, 18, false, "iothub-creation-time-utc", "t");
	propbag_free(pb);

	assert_string_equal(propbag_system_key("messageId"), "$.mid");
	assert_string_equal(propbag_system_key("ack"), "iothub-ack");
	assert_string_equal(propbag_system_key("$.x"), "$.x");
	assert_null(propbag_system_key("alert"));
}

static void parse_null_empty_and_duplicates(void **state)
{
	struct propbag *pb = parse_ok("prop1&prop2=&prop3=a%20string&&%24.cid&a=1&a=2&k=x=y");
	json_t *j;

	assert_int_equal(propbag_count(pb), 7);
	assert_prop(pb, 0, false, "prop1", NULL);
	assert_prop(pb, 1, false, "prop2", "");
	assert_prop(pb, 2, false, "prop3", "a string");
	assert_prop(pb, 3, true, "correlationId", NULL);
	assert_prop(pb, 6, false, "k", "x=y");
	assert_string_equal(propbag_find(pb, false, "a")->value, "1");

	j = propbag_to_json(pb);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s,
	                    "{\"properties\":{\"prop1\":null,\"prop2\":\"\",\"prop3\":\"a string\","
	                    "\"a\":\"1\",\"k\":\"x=y\"},\"systemProperties\":{\"correlationId\":"
	                    "null}}");
	free(s);
	json_decref(j);
	propbag_free(pb);

	pb = parse_ok("");
	assert_int_equal(propbag_count(pb), 0);
	j = propbag_to_json(pb);
	s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, "{\"properties\":{},\"systemProperties\":{}}");
	free(s);
	json_decref(j);
	propbag_free(pb);
}

static void parse_plus_and_utf8(void **state)
{
	/* '+' is not form-encoded space; percent-encoded UTF-8 decodes */
	struct propbag *pb = parse_ok("a+b=1+2&caf%C3%A9=%E2%82%AC");

	assert_prop(pb, 0, false, "a+b", "1+2");
	assert_prop(pb, 1, false, "caf\xc3\xa9", "\xe2\x82\xac");
	propbag_free(pb);
}

static void expect_error(const char *bag, size_t len, int code, const char *msg)
{
	struct propbag *pb = (struct propbag *)1;
	char err[256] = "";

	assert_int_equal(propbag_parse(bag, len, &pb, err, sizeof(err)), code);
	assert_null(pb);
	if (msg)
		assert_string_equal(err, msg);
	else
		assert_true(strlen(err) > 0);
}

static void parse_errors(void **state)
{
	expect_error("a%zz=1", 6, EMU_EINVAL, "malformed property bag: bad %-escape in key 'a%zz'");
	expect_error("k=ab%2", 6, EMU_EINVAL,
	             "malformed property bag: bad %-escape in the value of 'k'");
	expect_error("k=%", 3, EMU_EINVAL, NULL);
	expect_error("k=a%00b", 7, EMU_EINVAL,
	             "malformed property bag: NUL byte in the value of 'k'");
	expect_error("k\0=1", 4, EMU_EINVAL, NULL);
	expect_error("=v", 2, EMU_EINVAL, "malformed property bag: empty key");
	expect_error("a=1&=v", 6, EMU_EINVAL, NULL);
	expect_error("k=%C3", 5, EMU_EINVAL,
	             "malformed property bag: the value of 'k' is not UTF-8");
	expect_error("%FF=1", 5, EMU_EINVAL, NULL);
	/* err may be NULL */
	struct propbag *pb;
	assert_int_equal(propbag_parse("a%zz", 4, &pb, NULL, 0), EMU_EINVAL);
	assert_null(pb);
}

static void parse_limits(void **state)
{
	struct buf b;
	struct propbag *pb;
	char *big;

	/* 64 properties pass, 65 do not */
	buf_init(&b, 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(buf_printf(&b, "%sk%d=v", i ? "&" : "", i), EMU_OK);
	assert_int_equal(propbag_parse((char *)b.data, b.len, &pb, NULL, 0), EMU_OK);
	assert_int_equal(propbag_count(pb), 64);
	propbag_free(pb);
	assert_int_equal(buf_append_str(&b, "&k64=v"), EMU_OK);
	expect_error((char *)b.data, b.len, EMU_ETOOBIG,
	             "property bag has more than 64 properties");
	buf_free(&b);

	/* key of 1024 decoded bytes passes (even written as 3072 escaped ones), 1025 not */
	big = malloc(70000);
	if (!big) {
		fail();
		return; /* tells the compiler big is the 70000-byte block below */
	}
	for (int i = 0; i < 1024; i++)
		memcpy(big + 3 * i, "%41", 3);
	memcpy(big + 3072, "=v", 3);
	assert_int_equal(propbag_parse(big, strlen(big), &pb, NULL, 0), EMU_OK);
	assert_int_equal(strlen(propbag_at(pb, 0)->name), 1024);
	propbag_free(pb);
	memset(big, 'k', 1025);
	memcpy(big + 1025, "=v", 3);
	assert_int_equal(propbag_parse(big, strlen(big), &pb, NULL, 0), EMU_ETOOBIG);

	/* the whole bag: 64 KiB passes, one byte more does not */
	memcpy(big, "k=", 2);
	memset(big + 2, 'v', 65536 - 2);
	assert_int_equal(propbag_parse(big, 65536, &pb, NULL, 0), EMU_OK);
	assert_int_equal(strlen(propbag_at(pb, 0)->value), 65534);
	propbag_free(pb);
	big[65536] = 'v';
	expect_error(big, 65537, EMU_ETOOBIG, "property bag is longer than 65536 bytes");
	free(big);
}

static char *encode(const struct propbag *pb)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(propbag_encode(pb, &b), EMU_OK);
	if (!b.data)
		return strdup("");
	return buf_steal(&b);
}

static void encode_c2d(void **state)
{
	struct propbag *pb;
	char *s;

	assert_int_equal(propbag_new(&pb), EMU_OK);
	assert_int_equal(propbag_add(pb, false, "propName", "PropValue"), EMU_OK);
	assert_int_equal(propbag_add(pb, true, "messageId", "ee06e90f-1"), EMU_OK);
	assert_int_equal(propbag_add(pb, true, "to", "/devices/VxDev1/messages/devicebound"),
	                 EMU_OK);
	assert_int_equal(propbag_add(pb, true, "ack", "full"), EMU_OK);
	assert_int_equal(propbag_add(pb, true, "correlationId", NULL), EMU_OK);
	assert_int_equal(propbag_add(pb, false, "empty", ""), EMU_OK);
	assert_int_equal(propbag_add(pb, false, "sp ace&=/%$+?#", "a b&c=d/e%f$g+h?i#j\xc3\xa9"),
	                 EMU_OK);
	s = encode(pb);
	assert_string_equal(s, "propName=PropValue&%24.mid=ee06e90f-1&%24.to=%2Fdevices%2FVxDev1%2F"
	                       "messages%2Fdevicebound&iothub-ack=full&%24.cid&empty=&"
	                       "sp%20ace%26%3D%2F%25%24%2B%3F%23=a%20b%26c%3Dd%2Fe%25f%24g%2Bh%3Fi"
	                       "%23j%C3%A9");
	free(s);

	/* set replaces the first match, or adds */
	assert_int_equal(propbag_set(pb, true, "messageId", "m2"), EMU_OK);
	assert_int_equal(propbag_set(pb, true, "userId", "u"), EMU_OK);
	assert_string_equal(propbag_find(pb, true, "messageId")->value, "m2");
	assert_int_equal(propbag_count(pb), 8);
	propbag_free(pb);

	assert_int_equal(propbag_new(&pb), EMU_OK);
	s = encode(pb);
	assert_string_equal(s, "");
	free(s);
	propbag_free(pb);
}

static void add_refusals(void **state)
{
	struct propbag *pb;
	char key[1100];

	assert_int_equal(propbag_new(&pb), EMU_OK);
	assert_int_equal(propbag_add(pb, true, "nonsense", "x"), EMU_EINVAL);
	assert_int_equal(propbag_add(pb, false, "$.mid", "x"), EMU_EINVAL);
	assert_int_equal(propbag_add(pb, false, "iothub-ack", "x"), EMU_EINVAL);
	assert_int_equal(propbag_add(pb, false, "", "x"), EMU_EINVAL);
	assert_int_equal(propbag_add(pb, false, "k", "\xff"), EMU_EINVAL);
	assert_int_equal(propbag_add(pb, true, "$.custom", "x"), EMU_OK);
	memset(key, 'k', 1025);
	key[1025] = '\0';
	assert_int_equal(propbag_add(pb, false, key, "x"), EMU_ETOOBIG);
	key[1024] = '\0';
	assert_int_equal(propbag_add(pb, false, key, "x"), EMU_OK);
	for (int i = 2; i < 64; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", i);
		assert_int_equal(propbag_add(pb, false, k, NULL), EMU_OK);
	}
	assert_int_equal(propbag_add(pb, false, "one-too-many", "x"), EMU_ETOOBIG);
	assert_int_equal(propbag_set(pb, false, "one-too-many", "x"), EMU_ETOOBIG);
	assert_int_equal(propbag_set(pb, false, "k2", "now set"), EMU_OK);
	assert_int_equal(propbag_count(pb), 64);
	propbag_free(pb);
	propbag_free(NULL);
}

/* encode -> parse gives back the same properties */
static void assert_same(const struct propbag *a, const struct propbag *b)
{
	assert_int_equal(propbag_count(a), propbag_count(b));
	for (size_t i = 0; i < propbag_count(a); i++) {
		const struct propbag_prop *x = propbag_at(a, i), *y = propbag_at(b, i);

		assert_int_equal(x->system, y->system);
		assert_string_equal(x->name, y->name);
		if (x->value)
			assert_string_equal(x->value, y->value);
		else
			assert_null(y->value);
	}
}

static void round_trips(void **state)
{
	static const char *bags[] = {
	    "%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true&"
	    "sp%20ace=a%2Fb",
	    "$.ct=application%2Fjson&$.ce=utf-8&ts=2021-09-06T08:49:54Z&mac=00:11:22:33",
	    "iothub-ack=full&propName=PropValue&%24.to=%2Fdevices%2FmyDeviceId%2Fmessages%2F"
	    "deviceBound&%24.cid&%24.uid",
	    "a&b=&c=%26%3D%2F%25%24%2B%3F%23&%24.unknown=1&caf%C3%A9=%F0%9F%98%80",
	    "",
	};

	for (size_t i = 0; i < sizeof(bags) / sizeof(bags[0]); i++) {
		struct propbag *a = parse_ok(bags[i]), *b;
		char *s = encode(a);

		/* nothing an MQTT topic or Node's split('/') cannot carry */
		assert_null(strpbrk(s, "/+#? "));
		b = parse_ok(s);
		assert_same(a, b);
		free(s);
		propbag_free(a);
		propbag_free(b);
	}
}

static void json_round_trip(void **state)
{
	json_t *props = json_pack("{s:s,s:n,s:i,s:b,s:s}", "name", "v a/l", "nothing", "count", 42,
	                          "flag", 1, "empty", "");
	json_t *sys = json_pack("{s:s,s:s,s:s}", "messageId", "m-9", "contentType",
	                        "application/json", "ack", "positive");
	struct propbag *pb, *again;
	char err[200];
	json_t *j;
	char *s;

	assert_int_equal(propbag_from_json(props, sys, &pb, err, sizeof(err)), EMU_OK);
	assert_prop(pb, 2, false, "count", "42");
	assert_prop(pb, 3, false, "flag", "true");
	s = encode(pb);
	again = parse_ok(s);
	assert_same(pb, again);
	j = propbag_to_json(again);
	assert_true(json_equal(json_object_get(j, "systemProperties"), sys));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "properties"), "count")), "42");
	json_decref(j);
	free(s);
	propbag_free(pb);
	propbag_free(again);
	json_decref(props);
	json_decref(sys);

	/* refusals */
	sys = json_pack("{s:s}", "noSuchProperty", "x");
	assert_int_equal(propbag_from_json(NULL, sys, &pb, err, sizeof(err)), EMU_EINVAL);
	assert_null(pb);
	assert_string_equal(err, "unknown system property 'noSuchProperty'");
	json_decref(sys);
	props = json_pack("{s:f}", "real", 1.5);
	assert_int_equal(propbag_from_json(props, NULL, &pb, err, sizeof(err)), EMU_EINVAL);
	assert_non_null(strstr(err, "properties.real must be"));
	json_decref(props);
	props = json_pack("[]");
	assert_int_equal(propbag_from_json(props, NULL, &pb, err, sizeof(err)), EMU_EINVAL);
	assert_string_equal(err, "properties must be a JSON object");
	json_decref(props);
	props = json_pack("{s:s}", "$.mid", "x");
	assert_int_equal(propbag_from_json(props, NULL, &pb, err, sizeof(err)), EMU_EINVAL);
	json_decref(props);
	assert_int_equal(propbag_from_json(NULL, NULL, &pb, err, sizeof(err)), EMU_OK);
	assert_int_equal(propbag_count(pb), 0);
	propbag_free(pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_node_telemetry),
	    cmocka_unit_test(parse_system_table),
	    cmocka_unit_test(parse_null_empty_and_duplicates),
	    cmocka_unit_test(parse_plus_and_utf8),
	    cmocka_unit_test(parse_errors),
	    cmocka_unit_test(parse_limits),
	    cmocka_unit_test(encode_c2d),
	    cmocka_unit_test(add_refusals),
	    cmocka_unit_test(round_trips),
	    cmocka_unit_test(json_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
