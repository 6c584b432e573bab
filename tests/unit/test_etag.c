/* Unit tests for common/etag: the If-Match comparison and quoted-UUID etags. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "etag.h"

#include <stdio.h>
#include <string.h>

/* A hub etag (base64 of a counter) and an enrollment etag (a quoted UUID). */
#define HUB  "MTIz"
#define ENR  "\"0b6f1c56-5a0e-4c5f-9c3e-2a1e4f0d7b11\""
#define BARE "0b6f1c56-5a0e-4c5f-9c3e-2a1e4f0d7b11"

static void absent(void **state)
{
	(void)state;
	assert_true(etag_is_absent(NULL));
	assert_true(etag_is_absent(""));
	assert_true(etag_is_absent(" \t "));
	assert_false(etag_is_absent("\"\""));
	assert_false(etag_is_absent("*"));
	assert_false(etag_is_absent(" x"));
	/* No precondition is not a match: the caller decides what it means. */
	assert_false(etag_matches(HUB, NULL));
	assert_false(etag_matches(HUB, ""));
	assert_false(etag_matches(HUB, "  "));
	assert_false(etag_matches(NULL, NULL));
}

static void wildcard(void **state)
{
	static const char *const yes[] = { "*", "\"*\"", " \"*\" ", "W/\"*\"", "\t*\t",
					   "\\\"*\\\"", "\"a\", *" };
	static const char *const no[] = { "**", "\"**\"", "\"\"", "\"", "", NULL, "x", "* *",
					   "\"*,\"" };

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!etag_is_any(yes[i]))
			fail_msg("'%s' should be the wildcard", yes[i]);
		assert_true(etag_matches(HUB, yes[i]));
		assert_true(etag_matches(NULL, yes[i])); /* even when nothing exists */
		assert_true(etag_matches("", yes[i]));
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if (etag_is_any(no[i]))
			fail_msg("'%s' should not be the wildcard", no[i] ? no[i] : "(null)");
		assert_false(etag_matches(NULL, no[i]));
	}
}

static void quoting_and_weak(void **state)
{
	(void)state;
	/* Every way clients send an etag back, against bare and quoted stored etags. */
	assert_true(etag_matches(HUB, HUB));
	assert_true(etag_matches(HUB, "\"" HUB "\""));
	assert_true(etag_matches(HUB, " \"" HUB "\"\t"));
	assert_true(etag_matches(HUB, "W/\"" HUB "\""));
	assert_true(etag_matches(HUB, "\\\"" HUB "\\\"")); /* JSON-escaped once more */
	assert_true(etag_matches("\"" HUB "\"", HUB));
	assert_true(etag_matches(ENR, ENR));
	assert_true(etag_matches(ENR, BARE));
	assert_true(etag_matches(BARE, ENR));
	assert_true(etag_matches(ENR, "W/" ENR));
	assert_true(etag_matches("W/" ENR, ENR));

	/* The core itself compares exactly. */
	assert_false(etag_matches(HUB, "MTI0"));
	assert_false(etag_matches(HUB, "mtiz"));
	assert_false(etag_matches(HUB, "MTIz="));
	assert_false(etag_matches(HUB, "MTI"));
	assert_false(etag_matches(HUB, "\"MTI\""));
	assert_false(etag_matches(HUB, "\" MTIz\""));
	assert_false(etag_matches(HUB, "w/\"" HUB "\""));
	assert_false(etag_matches(ENR, "\"0b6f1c56-5a0e-4c5f-9c3e-2a1e4f0d7b12\""));

	/* Nothing stored, or an empty etag stored: only the wildcard matches. */
	assert_false(etag_matches(NULL, HUB));
	assert_false(etag_matches("", "\"\""));
	assert_false(etag_matches("\"\"", "\"\""));
	assert_false(etag_matches("\"\"", "W/"));
}

static void lists(void **state)
{
	(void)state;
	assert_true(etag_matches(HUB, "\"x\", \"" HUB "\""));
	assert_true(etag_matches(HUB, "\"" HUB "\",\"y\""));
	assert_true(etag_matches(HUB, "W/\"x\" , W/\"" HUB "\""));
	assert_false(etag_matches(HUB, "\"x\", \"y\""));
	/* A comma inside quotes does not split: one entry, which names something else. */
	assert_false(etag_matches(HUB, "\"x," HUB "\""));
	/* Empty entries are skipped, not matched. */
	assert_false(etag_matches(HUB, ",,"));
	assert_true(etag_matches(HUB, ", ," HUB));
}

static void new_uuid(void **state)
{
	char a[ETAG_UUID_LEN], b[ETAG_UUID_LEN], bare[40];

	(void)state;
	etag_new_uuid(a);
	etag_new_uuid(b);
	assert_int_equal(strlen(a), ETAG_UUID_LEN - 1);
	assert_int_equal(a[0], '"');
	assert_int_equal(a[ETAG_UUID_LEN - 2], '"');
	assert_int_equal(a[9], '-');
	assert_int_equal(a[14], '-');
	assert_int_equal(a[19], '-');
	assert_int_equal(a[24], '-');
	for (size_t i = 1; i < ETAG_UUID_LEN - 2; i++)
		if (!strchr("0123456789abcdef-", a[i]))
			fail_msg("'%c' at %zu in %s", a[i], i, a);
	assert_string_not_equal(a, b);
	assert_true(etag_matches(a, a));
	assert_false(etag_matches(a, b));
	snprintf(bare, sizeof(bare), "%.36s", a + 1);
	assert_true(etag_matches(a, bare)); /* Node sends it bare */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(absent),
		cmocka_unit_test(wildcard),
		cmocka_unit_test(quoting_and_weak),
		cmocka_unit_test(lists),
		cmocka_unit_test(new_uuid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
