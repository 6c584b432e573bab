/* Unit tests for common/authlog: the ring buffer, filters and refusal counts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "authlog.h"
#include "err.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *field(json_t *entries, size_t i, const char *name)
{
	return json_string_value(json_object_get(json_array_get(entries, i), name));
}

static void entry_shape(void **state)
{
	struct authlog *l = NULL;
	json_t *e;
	(void)state;

	assert_int_equal(authlog_new(10, NULL, &l), EMU_OK);
	authlog_add(l, "dps", "dev-1", "127.0.0.1:5000", true, AUTH_OK, "enrollment group 'g'");
	authlog_add(l, "hub", "dev-1", "127.0.0.1:5001", false, AUTH_CN_MISMATCH,
		    "leaf certificate CN 'x' is not the device id 'dev-1'");
	e = authlog_query(l, NULL, NULL, 0);
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(field(e, 0, "service"), "dps");
	assert_string_equal(field(e, 0, "registrationId"), "dev-1");
	assert_null(field(e, 0, "deviceId"));
	assert_string_equal(field(e, 0, "peer"), "127.0.0.1:5000");
	assert_true(json_is_true(json_object_get(json_array_get(e, 0), "accepted")));
	assert_string_equal(field(e, 0, "reason"), "enrollment group 'g'");
	assert_string_equal(field(e, 0, "reasonClass"), "accepted");
	assert_string_equal(field(e, 1, "deviceId"), "dev-1");
	assert_null(field(e, 1, "registrationId"));
	assert_true(json_is_false(json_object_get(json_array_get(e, 1), "accepted")));
	assert_string_equal(field(e, 1, "reasonClass"), "cn_mismatch");
	assert_int_equal(strlen(field(e, 1, "timeUtc")), 28); /* 2026-11-23T04:00:00.1234567Z */
	json_decref(e);
	authlog_free(l);
}

static void ring_wraps(void **state)
{
	struct authlog *l = NULL;
	char id[16];
	json_t *e;
	(void)state;

	assert_int_equal(authlog_new(3, NULL, &l), EMU_OK);
	for (int i = 1; i <= 5; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		authlog_add(l, "hub", id, NULL, true, AUTH_OK, "SAS token");
	}
	/* The oldest two are gone; newest last. */
	e = authlog_query(l, NULL, NULL, 0);
	assert_int_equal(json_array_size(e), 3);
	assert_string_equal(field(e, 0, "deviceId"), "d3");
	assert_string_equal(field(e, 2, "deviceId"), "d5");
	assert_string_equal(field(e, 0, "peer"), "");
	json_decref(e);
	/* max keeps the newest. */
	e = authlog_query(l, NULL, NULL, 2);
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(field(e, 0, "deviceId"), "d4");
	assert_string_equal(field(e, 1, "deviceId"), "d5");
	json_decref(e);
	authlog_clear(l);
	e = authlog_query(l, NULL, NULL, 0);
	assert_int_equal(json_array_size(e), 0);
	json_decref(e);
	authlog_free(l);
}

static void filters(void **state)
{
	struct authlog *l = NULL;
	json_t *e;
	(void)state;

	assert_int_equal(authlog_new(100, NULL, &l), EMU_OK);
	authlog_add(l, "dps", "Dev-A", "p1", false, AUTH_THUMBPRINT, "r1");
	authlog_add(l, "hub", "dev-a", "p2", false, AUTH_UNKNOWN_DEVICE, "r2");
	authlog_add(l, "dps", "dev-b", "p3", true, AUTH_OK, "r3");
	authlog_add(l, "dps", "dev-a", "p4", true, AUTH_OK, "r4");
	authlog_add(l, "hub", "Dev-A", "p5", true, AUTH_OK, "r5");
	/* Registration ids compare case-insensitively and select DPS entries only. */
	e = authlog_query(l, "DEV-A", NULL, 0);
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(field(e, 0, "reason"), "r1");
	assert_string_equal(field(e, 1, "reason"), "r4");
	json_decref(e);
	/* Device ids are case-sensitive and select hub entries only. */
	e = authlog_query(l, NULL, "dev-a", 0);
	assert_int_equal(json_array_size(e), 1);
	assert_string_equal(field(e, 0, "reason"), "r2");
	json_decref(e);
	/* Both: either. */
	e = authlog_query(l, "dev-b", "Dev-A", 0);
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(field(e, 0, "reason"), "r3");
	assert_string_equal(field(e, 1, "reason"), "r5");
	json_decref(e);
	e = authlog_query(l, "DEV-A", NULL, 1);
	assert_int_equal(json_array_size(e), 1);
	assert_string_equal(field(e, 0, "reason"), "r4");
	json_decref(e);
	e = authlog_query(l, "nobody", NULL, 0);
	assert_int_equal(json_array_size(e), 0);
	json_decref(e);
	authlog_free(l);
}

static void refusals_are_counted(void **state)
{
	struct metrics *m = NULL;
	struct metrics_family *f;
	struct authlog *l = NULL;
	(void)state;

	assert_int_equal(metrics_new(&m), EMU_OK);
	assert_int_equal(authlog_new(2, m, &l), EMU_OK);
	f = metrics_counter(m, "dpsemu_auth_refusals_total", "", "service,reason");
	authlog_add(l, "dps", "a", NULL, false, AUTH_CHAIN, "x");
	authlog_add(l, "dps", "a", NULL, false, AUTH_CHAIN, "x");
	authlog_add(l, "hub", "a", NULL, false, AUTH_SAS, "x");
	authlog_add(l, "hub", "a", NULL, true, AUTH_OK, "x");
	/* A refusal without a class is "other"; the ring wrapping loses no count. */
	authlog_add(l, "hub", "a", NULL, false, AUTH_OK, "x");
	assert_true(metrics_value(f, METRICS_LABELS("dps", "chain")) == 2);
	assert_true(metrics_value(f, METRICS_LABELS("hub", "sas")) == 1);
	assert_true(metrics_value(f, METRICS_LABELS("hub", "other")) == 1);
	assert_true(metrics_value(f, METRICS_LABELS("hub", "accepted")) == 0);
	authlog_free(l);
	metrics_free(m);
}

static void text_stays_utf8(void **state)
{
	struct authlog *l = NULL;
	char reason[600];
	json_t *e;
	(void)state;

	assert_int_equal(authlog_new(4, NULL, &l), EMU_OK);
	/* A reason cut inside a two-byte character, and a stray byte in an id. */
	memset(reason, 'a', sizeof(reason));
	for (size_t i = 301; i + 1 < sizeof(reason); i += 2) {
		reason[i] = (char)0xc3;
		reason[i + 1] = (char)0xa9;
	}
	reason[sizeof(reason) - 1] = '\0';
	authlog_add(l, "dps", "bad\xff-id", NULL, false, AUTH_OTHER, reason);
	e = authlog_query(l, NULL, NULL, 0);
	assert_int_equal(json_array_size(e), 1);
	assert_string_equal(field(e, 0, "registrationId"), "bad?-id");
	/* 384 bytes kept would end inside the character at 383: it is dropped. */
	assert_int_equal(strlen(field(e, 0, "reason")), 383);
	json_decref(e);
	authlog_free(l);
	assert_int_equal(authlog_new(0, NULL, &l), EMU_EINVAL);
	assert_null(l);
	authlog_free(NULL);
	authlog_add(NULL, "dps", "a", NULL, true, AUTH_OK, "x");
}

static void reason_names(void **state)
{
	(void)state;
	assert_string_equal(auth_reason_name(AUTH_OK), "accepted");
	assert_string_equal(auth_reason_name(AUTH_CN_MISMATCH), "cn_mismatch");
	assert_string_equal(auth_reason_name(AUTH_UNKNOWN_DEVICE), "unknown_device");
	assert_string_equal(auth_reason_name(AUTH_NO_CERTIFICATE), "no_certificate");
	assert_string_equal(auth_reason_name(AUTH_CHAIN), "chain");
	assert_string_equal(auth_reason_name(AUTH_THUMBPRINT), "thumbprint");
	assert_string_equal(auth_reason_name(AUTH_EXPIRED), "expired");
	assert_string_equal(auth_reason_name(AUTH_DISABLED), "disabled");
	assert_string_equal(auth_reason_name(AUTH_SAS), "sas");
	assert_string_equal(auth_reason_name(AUTH_OTHER), "other");
	assert_string_equal(auth_reason_name((enum auth_reason)99), "other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(entry_shape),
		cmocka_unit_test(ring_wraps),
		cmocka_unit_test(filters),
		cmocka_unit_test(refusals_are_counted),
		cmocka_unit_test(text_stays_utf8),
		cmocka_unit_test(reason_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
