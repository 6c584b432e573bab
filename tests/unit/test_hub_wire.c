/* Unit tests for hub-sim/hub_wire: CONNECT usernames as the SDKs send them,
 * the line between hub and DPS usernames, publish topics, subscription filters
 * and the topics the hub builds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "dps/wire.h"
#include "err.h"
#include "hub-sim/hub_wire.h"

static bool slice_eq(const char *p, size_t n, const char *lit)
{
	return p && n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* ---- usernames ---- */

static void username_c_sdk(void **state)
{
	struct hub_username u;

	assert_int_equal(hub_wire_parse_username(
	                     "iotc-1.azure-devices.net/sample-device-01/?api-version=2020-09-30&"
	                     "DeviceClientType=iothubclient%2f1.6.0%20(native%3b%20Linux%3b%20"
	                     "x86_64)&model-id=dtmi%3acom%3aexample%3aTemperatureController%3b1",
	                     &u),
	                 EMU_OK);
	assert_string_equal(u.host, "iotc-1.azure-devices.net");
	assert_string_equal(u.device_id, "sample-device-01");
	assert_string_equal(u.module_id, "");
	assert_string_equal(u.api_version, "2020-09-30");
	assert_true(u.has_api_version);
	assert_false(u.legacy);
	assert_string_equal(u.client_type, "iothubclient/1.6.0 (native; Linux; x86_64)");
	assert_string_equal(u.model_id, "dtmi:com:example:TemperatureController;1");
	assert_null(u.error);
}

static void username_node_raw_model_and_port(void **state)
{
	struct hub_username u;

	/* Node: host with port, model-id raw and before DeviceClientType */
	assert_int_equal(hub_wire_parse_username(
	                     "localhost:8884/dev-x509-01/?api-version=2021-04-12&model-id=dtmi:com:"
	                     "example:Thermostat;1&DeviceClientType=azure-iot-device%2F1.18.4%20("
	                     "node%20v20.20.2%3B%20Debian%2012%3B%20x64)",
	                     &u),
	                 EMU_OK);
	assert_string_equal(u.host, "localhost:8884");
	assert_string_equal(u.device_id, "dev-x509-01");
	assert_string_equal(u.model_id, "dtmi:com:example:Thermostat;1");
	assert_string_equal(u.client_type,
	                    "azure-iot-device/1.18.4 (node v20.20.2; Debian 12; x64)");
	assert_string_equal(u.api_version, "2021-04-12");

	assert_int_equal(
	    hub_wire_parse_username("127.0.0.1:8884/dev-x509-01/?api-version=2021-04-12"
	                            "&DeviceClientType=x",
	                            &u),
	    EMU_OK);
	assert_string_equal(u.host, "127.0.0.1:8884");
}

static void username_module_python_embedded(void **state)
{
	struct hub_username u;

	assert_int_equal(hub_wire_parse_username("hub.example/dev1/mod-a/?api-version=2020-09-30&"
	                                         "DeviceClientType=azsdk-c%2F1.5.0",
	                                         &u),
	                 EMU_OK);
	assert_string_equal(u.device_id, "dev1");
	assert_string_equal(u.module_id, "mod-a");
	assert_string_equal(u.client_type, "azsdk-c/1.5.0");
	assert_true(hub_wire_client_id_matches(&u, "dev1/mod-a"));
	assert_false(hub_wire_client_id_matches(&u, "dev1"));
	assert_false(hub_wire_client_id_matches(&u, "dev1/mod-b"));
	assert_false(hub_wire_client_id_matches(&u, "dev1/mod-a/x"));

	/* embedded trace: raw characters, not encoded */
	assert_int_equal(hub_wire_parse_username("h.net/d/?api-version=2020-09-30&DeviceClientType="
	                                         "c%2F1.3.1(ard;portentaH7)",
	                                         &u),
	                 EMU_OK);
	assert_string_equal(u.client_type, "c/1.3.1(ard;portentaH7)");
	assert_true(hub_wire_client_id_matches(&u, "d"));
	assert_false(hub_wire_client_id_matches(&u, "d/"));
	assert_false(hub_wire_client_id_matches(&u, "D"));
}

static void username_legacy_and_missing_api(void **state)
{
	struct hub_username u;

	assert_int_equal(hub_wire_parse_username("Kohler-Test.azure-devices.net/seank-sample/"
	                                         "api-version=2016-11-14&DeviceClientType="
	                                         "iothubclient%2f1.1.0",
	                                         &u),
	                 EMU_OK);
	assert_true(u.legacy);
	assert_string_equal(u.device_id, "seank-sample");
	assert_string_equal(u.api_version, "2016-11-14");
	assert_string_equal(u.client_type, "iothubclient/1.1.0");

	assert_int_equal(hub_wire_parse_username("h/d/m/api-version=2017-11-08-preview", &u),
	                 EMU_OK);
	assert_true(u.legacy);
	assert_string_equal(u.module_id, "m");
	assert_string_equal(u.api_version, "2017-11-08-preview");

	/* no api-version at all: accepted, flagged */
	assert_int_equal(hub_wire_parse_username("h/d/?DeviceClientType=raw", &u), EMU_OK);
	assert_false(u.has_api_version);
	assert_string_equal(u.api_version, "");
	assert_int_equal(hub_wire_parse_username("h/d/", &u), EMU_OK);
	assert_false(u.has_api_version);
	assert_string_equal(u.device_id, "d");
	assert_int_equal(hub_wire_parse_username("h/d", &u), EMU_OK);
	assert_string_equal(u.device_id, "d");
	assert_int_equal(hub_wire_parse_username("h/d/?", &u), EMU_OK);
	assert_int_equal(hub_wire_parse_username("h/d/?api-version=", &u), EMU_OK);
	assert_false(u.has_api_version);
	assert_int_equal(hub_wire_parse_username("h/d/m/", &u), EMU_OK);
	assert_string_equal(u.module_id, "m");
}

static void username_query_details(void **state)
{
	struct hub_username u;

	/* first duplicate wins, keys case-insensitive, unknown keys ignored, a '/'
	 * inside the query is part of it */
	assert_int_equal(hub_wire_parse_username("h/d/?x=1&API-VERSION=2021-04-12&api-version=bad&"
	                                         "auth-chain=a/b&DeviceClientType=ua/1",
	                                         &u),
	                 EMU_OK);
	assert_string_equal(u.api_version, "2021-04-12");
	assert_string_equal(u.client_type, "ua/1");
	/* a malformed escape is kept literally; valid ones around it decode */
	assert_int_equal(hub_wire_parse_username("h/d/?DeviceClientType=a%2Fb%zz%41", &u), EMU_OK);
	assert_string_equal(u.client_type, "a/b%zzA");
	/* non-printable bytes in the user agent are masked */
	assert_int_equal(hub_wire_parse_username("h/d/?DeviceClientType=a%0Ab%C3%A9", &u), EMU_OK);
	assert_string_equal(u.client_type, "a?b??");
	/* device ids use the registry's set, '?' included */
	assert_int_equal(hub_wire_parse_username("h/we!rd(id)=@$'?/?api-version=1", &u), EMU_OK);
	assert_string_equal(u.device_id, "we!rd(id)=@$'?");
}

static void username_long_client_type_is_cut(void **state)
{
	char u8[1200];
	struct hub_username u;

	snprintf(u8, sizeof(u8), "h/d/?api-version=1&DeviceClientType=");
	memset(u8 + strlen(u8), 'x', 1000);
	u8[sizeof(u8) - 1] = '\0';
	u8[strlen("h/d/?api-version=1&DeviceClientType=") + 1000] = '\0';
	assert_int_equal(hub_wire_parse_username(u8, &u), EMU_OK);
	assert_int_equal(strlen(u.client_type), HUB_WIRE_CLIENT_TYPE_MAX);
}

static void username_rejects(void **state)
{
	static const char *bad[] = {
	    "",
	    "hostonly",
	    "/dev/?api-version=1",    /* empty host */
	    "h//?api-version=1",      /* empty device */
	    "h/d//?api-version=1",    /* empty module */
	    "h/d/m/x/?api-version=1", /* too many segments */
	    "h/d/m/x",
	    "h o/d/?api-version=1",                 /* space in host */
	    "h/d v/?api-version=1",                 /* space in device id */
	    "h/d?api-version=1&DeviceClientType=x", /* '&' in the device id */
	    "h/d/?model-id=dtmi%3Aa%20b",           /* space in model-id */
	    "h/d/?model-id=dtmi%0A",
	};
	struct hub_username u;
	char longid[400];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hub_wire_parse_username(bad[i], &u), EMU_EINVAL);
		assert_non_null(u.error);
		assert_string_equal(u.device_id, "");
	}
	/* 128 is the limit for ids */
	memcpy(longid, "h/", 2);
	memset(longid + 2, 'a', 128);
	memcpy(longid + 130, "/?api-version=1", 16);
	assert_int_equal(hub_wire_parse_username(longid, &u), EMU_OK);
	memset(longid + 2, 'a', 129);
	memcpy(longid + 131, "/?api-version=1", 16);
	assert_int_equal(hub_wire_parse_username(longid, &u), EMU_EINVAL);
	/* over-long api-version is refused, not cut */
	memcpy(longid, "h/d/?api-version=", 17);
	memset(longid + 17, '1', 100);
	longid[117] = '\0';
	assert_int_equal(hub_wire_parse_username(longid, &u), EMU_EINVAL);
}

/* DPS and the hub share a port: no username may be claimed by both. */
static void username_dps_hub_exclusive(void **state)
{
	static const char *dps_names[] = {
	    "0ne00000A0A/registrations/dev1/api-version=2019-03-31",
	    "0ne00000001/registrations/dev-x509-01/api-version=2019-03-31&ClientVersion=a%2F1",
	    "0ne00000001/registrations/d.1:x/api-version=2025-07-01-preview&ClientVersion=1",
	    "0ne00000001/registrations/e1/api-version=",
	};
	static const char *hub_names[] = {
	    "localhost/dev1/?api-version=2021-04-12",
	    "h/registrations/?api-version=2021-04-12",       /* a device named registrations */
	    "h/registrations/mod/?api-version=2021-04-12",   /* ... with a module */
	    "0ne00000001/registrations/dev1/?api-version=1", /* '?' makes it a hub module */
	};
	struct hub_username u;
	struct dps_username d;

	for (size_t i = 0; i < sizeof(dps_names) / sizeof(dps_names[0]); i++) {
		assert_int_equal(dps_wire_parse_username(dps_names[i], &d), EMU_OK);
		assert_int_equal(hub_wire_parse_username(dps_names[i], &u), EMU_EINVAL);
		assert_non_null(strstr(u.error, "DPS"));
	}
	for (size_t i = 0; i < sizeof(hub_names) / sizeof(hub_names[0]); i++) {
		assert_int_equal(hub_wire_parse_username(hub_names[i], &u), EMU_OK);
		assert_int_equal(dps_wire_parse_username(hub_names[i], &d), EMU_EINVAL);
	}
	/* legacy form of a device called "registrations": the hub's (DPS needs an id
	 * segment after "registrations/") */
	assert_int_equal(hub_wire_parse_username("h/registrations/api-version=2016-11-14", &u),
	                 EMU_OK);
	assert_string_equal(u.device_id, "registrations");
	assert_true(u.legacy);
	assert_int_equal(hub_wire_parse_username("h/registrations/mod/?api-version=1", &u), EMU_OK);
	assert_string_equal(u.device_id, "registrations");
	assert_string_equal(u.module_id, "mod");
	/* the legacy module form of a device called "registrations" is DPS's shape */
	assert_int_equal(hub_wire_parse_username("h/registrations/mod/api-version=1", &u),
	                 EMU_EINVAL);
}

static void valid_ids(void **state)
{
	assert_true(hub_wire_valid_id("a", 1));
	assert_true(hub_wire_valid_id("-.+%_#*?!(),=@$':;", 18));
	assert_false(hub_wire_valid_id("", 0));
	assert_false(hub_wire_valid_id("a/b", 3));
	assert_false(hub_wire_valid_id("a b", 3));
	assert_false(hub_wire_valid_id("a&b", 3));
	assert_false(hub_wire_valid_id("a\0b", 3));
	assert_false(hub_wire_valid_id("\xc3\xa9", 2));
}

/* ---- publish topics ---- */

static void publish_telemetry_forms(void **state)
{
	static const struct {
		const char *topic, *bag;
	} ok[] = {
	    {"devices/dev1/messages/events", ""},
	    {"devices/dev1/messages/events/", ""},
	    {"devices/dev1/messages/events/a=1&b=2", "a=1&b=2"},
	    {"devices/dev1/messages/events/a=1&b=2/", "a=1&b=2"},
	    {"devices/dev1/messages/events/?a=1", "a=1"},
	    {"devices/dev1/messages/events/%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&"
	     "%24.ce=utf-8&alert=true&sp%20ace=a%2Fb",
	     "%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true&"
	     "sp%20ace=a%2Fb"},
	    {"devices/dev1/messages/events/$.ct=application%2Fjson&$.ce=utf-8",
	     "$.ct=application%2Fjson&$.ce=utf-8"},
	};
	struct hub_publish_topic t;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(hub_wire_parse_publish("dev1", NULL, ok[i].topic, &t), EMU_OK);
		assert_int_equal(t.kind, HUB_PUB_TELEMETRY);
		assert_int_equal(t.bag_len, strlen(ok[i].bag));
		if (t.bag_len)
			assert_memory_equal(t.bag, ok[i].bag, t.bag_len);
	}
	/* module form, from the module's connection ("" and NULL both mean device) */
	assert_int_equal(
	    hub_wire_parse_publish("dev1", "m1",
	                           "devices/dev1/modules/m1/messages/events/%24.on=out1", &t),
	    EMU_OK);
	assert_int_equal(t.kind, HUB_PUB_TELEMETRY);
	assert_true(slice_eq(t.bag, t.bag_len, "%24.on=out1"));
	assert_int_equal(hub_wire_parse_publish("dev1", "", "devices/dev1/messages/events/", &t),
	                 EMU_OK);
}

static void publish_not_allowed(void **state)
{
	struct hub_publish_topic t;

	assert_int_equal(hub_wire_parse_publish("dev1", NULL, "devices/other/messages/events/", &t),
	                 EMU_EPROTO);
	assert_int_equal(t.kind, HUB_PUB_NOT_ALLOWED);
	assert_string_equal(t.reason, "topic 'devices/other/messages/events/' belongs to device "
	                              "'other'");
	/* a prefix of the id is another device */
	assert_int_equal(hub_wire_parse_publish("dev1", NULL, "devices/dev/messages/events", &t),
	                 EMU_EPROTO);
	assert_int_equal(hub_wire_parse_publish("dev", NULL, "devices/dev1/messages/events", &t),
	                 EMU_EPROTO);
	/* case matters */
	assert_int_equal(hub_wire_parse_publish("dev1", NULL, "devices/DEV1/messages/events", &t),
	                 EMU_EPROTO);
	/* device publishing as a module, module as the device, module as another module */
	assert_int_equal(
	    hub_wire_parse_publish("dev1", NULL, "devices/dev1/modules/m1/messages/events/", &t),
	    EMU_EPROTO);
	assert_string_equal(t.reason, "topic 'devices/dev1/modules/m1/messages/events/' belongs "
	                              "to module 'dev1/m1'");
	assert_int_equal(hub_wire_parse_publish("dev1", "m1", "devices/dev1/messages/events/", &t),
	                 EMU_EPROTO);
	assert_non_null(strstr(t.reason, "not to its module 'm1'"));
	assert_int_equal(
	    hub_wire_parse_publish("dev1", "m1", "devices/dev1/modules/m2/messages/events/", &t),
	    EMU_EPROTO);
	static const char *bad[] = {
	    "devices/dev1/messages/events/a=1/b=2", /* two bag segments */
	    "devices/dev1/messages/events//",
	    "devices/dev1/messages/eventsX",
	    "devices/dev1/messages/devicebound/", /* the hub's, not the device's */
	    "devices/dev1/messages/events/a+b",   /* wildcards are never topic names */
	    "devices/dev1/messages/events/#",
	    "devices/dev1",
	    "devices/dev1/",
	    "devices/",
	    "",
	    "other/topic",
	    "$iothub/twin/GET/", /* no $rid */
	    "$iothub/twin/GET/?$rid=",
	    "$iothub/twin/GET?$rid=1",
	    "$iothub/twin/PATCH/properties/desired/?$rid=1",
	    "$iothub/twin/PATCH/properties/reported/?$rid=1&$version=x",
	    "$iothub/methods/res/abc/?$rid=1",
	    "$iothub/methods/res//?$rid=1",
	    "$iothub/methods/res/200?$rid=1",
	    "$iothub/methods/res/200/?x=1",
	    "$iothub/methods/POST/m/?$rid=1",
	    "$iothub/unknown",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hub_wire_parse_publish("dev1", NULL, bad[i], &t), EMU_EPROTO);
		assert_int_equal(t.kind, HUB_PUB_NOT_ALLOWED);
		assert_true(strlen(t.reason) > 0);
	}
}

static void publish_twin_and_methods(void **state)
{
	struct hub_publish_topic t;
	char topic[300];

	assert_int_equal(hub_wire_parse_publish("d", NULL, "$iothub/twin/GET/?$rid=42", &t),
	                 EMU_OK);
	assert_int_equal(t.kind, HUB_PUB_TWIN_GET);
	assert_true(slice_eq(t.rid, t.rid_len, "42"));

	/* Node: UUID rid; the rid is echoed raw, even percent-escaped */
	assert_int_equal(hub_wire_parse_publish("d", "m", "$iothub/twin/GET/?$rid=a%2Db-c&x=1", &t),
	                 EMU_OK);
	assert_true(slice_eq(t.rid, t.rid_len, "a%2Db-c"));

	assert_int_equal(
	    hub_wire_parse_publish("d", NULL, "$iothub/twin/PATCH/properties/reported/?$rid=7", &t),
	    EMU_OK);
	assert_int_equal(t.kind, HUB_PUB_TWIN_REPORTED);
	assert_false(t.has_version);
	assert_true(slice_eq(t.rid, t.rid_len, "7"));
	assert_int_equal(
	    hub_wire_parse_publish(
	        "d", NULL, "$iothub/twin/PATCH/properties/reported/?$version=12&$rid=uuid-1", &t),
	    EMU_OK);
	assert_true(t.has_version);
	assert_int_equal(t.version, 12);
	assert_true(slice_eq(t.rid, t.rid_len, "uuid-1"));

	assert_int_equal(hub_wire_parse_publish("d", NULL, "$iothub/methods/res/200/?$rid=1", &t),
	                 EMU_OK);
	assert_int_equal(t.kind, HUB_PUB_METHOD_RESPONSE);
	assert_int_equal(t.status, 200);
	assert_true(slice_eq(t.rid, t.rid_len, "1"));
	assert_int_equal(
	    hub_wire_parse_publish("d", NULL, "$iothub/methods/res/-3/?$rid=9&extra=%20x", &t),
	    EMU_OK);
	assert_int_equal(t.status, -3);
	assert_true(slice_eq(t.rid, t.rid_len, "9"));
	assert_int_equal(
	    hub_wire_parse_publish("d", NULL, "$iothub/methods/res/1234567890/?$rid=1", &t),
	    EMU_EPROTO);

	/* rid bounds */
	snprintf(topic, sizeof(topic), "$iothub/twin/GET/?$rid=%0128d", 0);
	assert_int_equal(hub_wire_parse_publish("d", NULL, topic, &t), EMU_OK);
	assert_int_equal(t.rid_len, 128);
	snprintf(topic, sizeof(topic), "$iothub/twin/GET/?$rid=%0129d", 0);
	assert_int_equal(hub_wire_parse_publish("d", NULL, topic, &t), EMU_EPROTO);
}

static void publish_reason_is_bounded(void **state)
{
	char topic[2000];
	struct hub_publish_topic t;

	memcpy(topic, "devices/", 8);
	memset(topic + 8, 'x', sizeof(topic) - 9);
	topic[sizeof(topic) - 1] = '\0';
	assert_int_equal(hub_wire_parse_publish("d", NULL, topic, &t), EMU_EPROTO);
	assert_true(strlen(t.reason) < HUB_WIRE_REASON_MAX);
	assert_non_null(strstr(t.reason, "...' belongs to device 'xxx"));
}

/* ---- subscriptions ---- */

static void subscribe_filters(void **state)
{
	struct hub_subscription s;

	assert_int_equal(
	    hub_wire_check_subscribe("d1", NULL, "devices/d1/messages/devicebound/#", &s), EMU_OK);
	assert_int_equal(s.kind, HUB_SUB_C2D);
	assert_int_equal(hub_wire_check_subscribe("d1", NULL, "$iothub/twin/res/#", &s), EMU_OK);
	assert_int_equal(s.kind, HUB_SUB_TWIN_RESPONSES);
	assert_int_equal(
	    hub_wire_check_subscribe("d1", "m", "$iothub/twin/PATCH/properties/desired/#", &s),
	    EMU_OK);
	assert_int_equal(s.kind, HUB_SUB_DESIRED);
	assert_int_equal(hub_wire_check_subscribe("d1", NULL, "$iothub/methods/POST/#", &s),
	                 EMU_OK);
	assert_int_equal(s.kind, HUB_SUB_METHODS);
	assert_int_equal(hub_wire_check_subscribe("d1", "m", "devices/d1/modules/m/inputs/#", &s),
	                 EMU_OK);
	assert_int_equal(s.kind, HUB_SUB_MODULE_INPUTS);
	assert_int_equal(hub_wire_check_subscribe("d1", "m", "devices/d1/modules/m/#", &s), EMU_OK);
	assert_int_equal(s.kind, HUB_SUB_MODULE_INPUTS);

	assert_int_equal(
	    hub_wire_check_subscribe("d1", NULL, "devices/d2/messages/devicebound/#", &s),
	    EMU_EPROTO);
	assert_int_equal(s.kind, HUB_SUB_NOT_ALLOWED);
	assert_string_equal(s.reason, "filter 'devices/d2/messages/devicebound/#' belongs to "
	                              "device 'd2'");
	assert_int_equal(
	    hub_wire_check_subscribe("d1", "m", "devices/d1/messages/devicebound/#", &s),
	    EMU_EPROTO);
	assert_non_null(strstr(s.reason, "modules cannot receive"));
	assert_int_equal(hub_wire_check_subscribe("d1", NULL, "devices/d1/modules/m/#", &s),
	                 EMU_EPROTO);
	assert_int_equal(hub_wire_check_subscribe("d1", "m", "devices/d1/modules/n/#", &s),
	                 EMU_EPROTO);
	static const char *bad[] = {
	    "#",
	    "+/#",
	    "devices/+/messages/devicebound/#",
	    "devices/d1/messages/devicebound/+",
	    "devices/d1/messages/devicebound",
	    "devices/d1/messages/#",
	    "$iothub/#",
	    "$iothub/twin/res/+",
	    "$iothub/twin/res",
	    "$iothub/methods/POST/+/#",
	    "$iothub/twin/PATCH/properties/reported/#",
	    "",
	    "devices/d1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hub_wire_check_subscribe("d1", NULL, bad[i], &s), EMU_EPROTO);
		assert_int_equal(s.kind, HUB_SUB_NOT_ALLOWED);
		assert_true(strlen(s.reason) > 0);
	}
}

/* ---- builders ---- */

static void build_topics(void **state)
{
	char out[256], small[20];
	struct buf b;

	assert_int_equal(hub_wire_twin_response_topic(out, sizeof(out), 200, "4", 1, -1), EMU_OK);
	assert_string_equal(out, "$iothub/twin/res/200/?$rid=4");
	assert_int_equal(hub_wire_twin_response_topic(out, sizeof(out), 204, "4xyz", 1, 12),
	                 EMU_OK);
	assert_string_equal(out, "$iothub/twin/res/204/?$rid=4&$version=12");
	assert_int_equal(hub_wire_twin_response_topic(small, sizeof(small), 204, "4", 1, 12),
	                 EMU_ETOOBIG);
	assert_string_equal(small, "");
	assert_int_equal(hub_wire_twin_response_topic(out, sizeof(out), 200, "", 0, -1),
	                 EMU_EINVAL);

	assert_int_equal(hub_wire_desired_topic(out, sizeof(out), 4), EMU_OK);
	assert_string_equal(out, "$iothub/twin/PATCH/properties/desired/?$version=4");
	assert_int_equal(hub_wire_desired_topic(out, sizeof(out), -1), EMU_EINVAL);

	assert_int_equal(
	    hub_wire_method_request_topic(out, sizeof(out), "thermostat1*getMaxMinReport", "1"),
	    EMU_OK);
	assert_string_equal(out, "$iothub/methods/POST/thermostat1*getMaxMinReport/?$rid=1");
	assert_int_equal(hub_wire_method_request_topic(out, sizeof(out), "a/b", "1"), EMU_EINVAL);
	assert_int_equal(hub_wire_method_request_topic(out, sizeof(out), "", "1"), EMU_EINVAL);
	assert_int_equal(hub_wire_method_request_topic(out, sizeof(out), "a b", "1"), EMU_EINVAL);
	assert_int_equal(hub_wire_method_request_topic(out, sizeof(out), "a+", "1"), EMU_EINVAL);
	assert_int_equal(hub_wire_method_request_topic(out, sizeof(out), "m", "1&x"), EMU_EINVAL);

	buf_init(&b, 1024);
	assert_int_equal(hub_wire_c2d_topic(&b, "dev_c", ""), EMU_OK);
	assert_string_equal((char *)b.data, "devices/dev_c/messages/devicebound/");
	buf_reset(&b);
	assert_int_equal(hub_wire_c2d_topic(&b, "dev_c",
	                                    "propertyName=propertyValue&%24.to="
	                                    "%2Fdevices%2Fdev_c%2Fmessages%2FdeviceBound"),
	                 EMU_OK);
	assert_string_equal((char *)b.data, "devices/dev_c/messages/devicebound/propertyName="
	                                    "propertyValue&%24.to=%2Fdevices%2Fdev_c%2Fmessages%2F"
	                                    "deviceBound");
	buf_reset(&b);
	assert_int_equal(hub_wire_c2d_topic(&b, "a+b", ""), EMU_EINVAL);
	assert_int_equal(hub_wire_c2d_topic(&b, "a/b", ""), EMU_EINVAL);
	assert_int_equal(hub_wire_c2d_topic(&b, "d", "a=b/c"), EMU_EINVAL);
	buf_free(&b);
}

/* What we build, a device's topic parser reads back: the method request and the
 * twin response carry the rid they were given. */
static void built_topics_parse_back(void **state)
{
	char out[256];
	struct hub_publish_topic t;

	assert_int_equal(hub_wire_method_request_topic(out, sizeof(out), "reboot", "17"), EMU_OK);
	/* the C SDK's 5th '/' token is "?$rid=17" */
	assert_non_null(strstr(out, "/reboot/?$rid=17"));
	/* a device answering with the rid it got is accepted */
	snprintf(out, sizeof(out), "$iothub/methods/res/%d/?$rid=%s", 200, "17");
	assert_int_equal(hub_wire_parse_publish("d", NULL, out, &t), EMU_OK);
	assert_true(slice_eq(t.rid, t.rid_len, "17"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(username_c_sdk),
	    cmocka_unit_test(username_node_raw_model_and_port),
	    cmocka_unit_test(username_module_python_embedded),
	    cmocka_unit_test(username_legacy_and_missing_api),
	    cmocka_unit_test(username_query_details),
	    cmocka_unit_test(username_long_client_type_is_cut),
	    cmocka_unit_test(username_rejects),
	    cmocka_unit_test(username_dps_hub_exclusive),
	    cmocka_unit_test(valid_ids),
	    cmocka_unit_test(publish_telemetry_forms),
	    cmocka_unit_test(publish_not_allowed),
	    cmocka_unit_test(publish_twin_and_methods),
	    cmocka_unit_test(publish_reason_is_bounded),
	    cmocka_unit_test(subscribe_filters),
	    cmocka_unit_test(build_topics),
	    cmocka_unit_test(built_topics_parse_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
