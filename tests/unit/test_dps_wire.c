/* Unit tests for dps/wire: DPS usernames and request/response topics, with the
 * variants the SDKs really send. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dps/wire.h"
#include "err.h"

#include <string.h>

static void username_variants(void **state)
{
	static const struct {
		const char *username, *regid, *api;
	} ok[] = {
		{ "0ne00000A0A/registrations/dev1/api-version=2019-03-31", "dev1", "2019-03-31" },
		{ "0ne00000001/registrations/dev-x509-01/api-version=2019-03-31&ClientVersion="
		  "azure-iot-provisioning-device%2F1.9.1", "dev-x509-01", "2019-03-31" },
		{ "0ne00000001/registrations/d.1:x/api-version=2025-07-01-preview&ClientVersion=1.15.0",
		  "d.1:x", "2025-07-01-preview" },
		/* Java sends the API version twice. */
		{ "0ne00000001/registrations/j1/api-version=2019-03-31&ClientVersion=2019-03-31", "j1",
		  "2019-03-31" },
		{ "0ne00000001/registrations/e1/api-version=", "e1", "" },
	};
	struct dps_username u;
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(dps_wire_parse_username(ok[i].username, &u), EMU_OK);
		assert_string_equal(u.scope, strncmp(ok[i].username, "0ne00000A0A", 11) == 0
						     ? "0ne00000A0A"
						     : "0ne00000001");
		assert_string_equal(u.registration_id, ok[i].regid);
		assert_string_equal(u.api_version, ok[i].api);
	}
}

static void username_rejects(void **state)
{
	static const char *bad[] = {
		"localhost/dev1/?api-version=2021-04-12",          /* a hub username */
		"0ne00000001/registrations/dev1",                  /* no api-version */
		"/registrations/dev1/api-version=1",               /* no scope */
		"0ne00000001/registrations//api-version=1",        /* no registration id */
		"0ne00000001/registrations/a/b/api-version=1",     /* '/' in the id */
		"s/registrations/api-version=1",                   /* found by fuzzing */
		"",
	};
	struct dps_username u;
	char longid[300];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dps_wire_parse_username(bad[i], &u), EMU_EINVAL);
	memset(longid, 'a', sizeof(longid));
	memcpy(longid, "s/registrations/", 16);
	memcpy(longid + 250, "/api-version=1", 15);
	assert_int_equal(dps_wire_parse_username(longid, &u), EMU_EINVAL);
}

static void request_topics(void **state)
{
	struct dps_request_topic t;
	(void)state;

	assert_int_equal(dps_wire_parse_request_topic(
				 "$dps/registrations/PUT/iotdps-register/?$rid=1", &t), EMU_OK);
	assert_int_equal(t.kind, DPS_REQ_REGISTER);
	assert_int_equal(t.rid_len, 1);
	assert_memory_equal(t.rid, "1", 1);

	/* Node and Python use UUIDs; the value is echoed exactly as sent. */
	assert_int_equal(dps_wire_parse_request_topic("$dps/registrations/GET/iotdps-get-"
						      "operationstatus/?$rid=5b1f%2d9&operationId="
						      "4.d0a671905ea5b2c8.e7173b7b-0e54", &t),
			 EMU_OK);
	assert_int_equal(t.kind, DPS_REQ_STATUS);
	assert_int_equal(t.rid_len, 8);
	assert_memory_equal(t.rid, "5b1f%2d9", 8);
	assert_string_equal(t.operation_id, "4.d0a671905ea5b2c8.e7173b7b-0e54");

	/* operationId before $rid is fine for parsing. */
	assert_int_equal(dps_wire_parse_request_topic("$dps/registrations/GET/iotdps-get-"
						      "operationstatus/?operationId=x&$rid=7", &t),
			 EMU_OK);
	assert_string_equal(t.operation_id, "x");

	assert_int_equal(dps_wire_parse_request_topic("devices/d1/messages/events/", &t),
			 EMU_ENOTFOUND);
	assert_int_equal(dps_wire_parse_request_topic("$dps/registrations/PUT/iotdps-register/?", &t),
			 EMU_EINVAL);
	assert_int_equal(dps_wire_parse_request_topic(
				 "$dps/registrations/PUT/iotdps-register/?$rid=", &t), EMU_EINVAL);
}

static void response_topics(void **state)
{
	char topic[128];
	(void)state;

	assert_int_equal(dps_wire_response_topic(topic, sizeof(topic), 202, "abc", 3, 3), EMU_OK);
	assert_string_equal(topic, "$dps/registrations/res/202/?$rid=abc&retry-after=3");
	assert_int_equal(dps_wire_response_topic(topic, sizeof(topic), 200, "1", 1, -1), EMU_OK);
	assert_string_equal(topic, "$dps/registrations/res/200/?$rid=1");
	assert_int_equal(dps_wire_response_topic(topic, 20, 200, "1", 1, -1), EMU_ETOOBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(username_variants),
		cmocka_unit_test(username_rejects),
		cmocka_unit_test(request_topics),
		cmocka_unit_test(response_topics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
