/* Unit tests for common/query: iteration, lookup, decoding and its limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "query.h"

static bool slice_eq(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

static void test_next_iterates_raw_pairs(void **state)
{
	static const char q[] = "$rid=abc&retry-after=3&&flag&k=a=b&e=&x%41=%2F";
	const char *cur = q, *end = q + strlen(q);
	struct query_pair kv;

	assert_int_equal(query_next(&cur, end, &kv), EMU_OK);
	assert_true(slice_eq(kv.key, kv.key_len, "$rid"));
	assert_true(slice_eq(kv.value, kv.value_len, "abc"));
	assert_true(kv.has_value);
	assert_int_equal(query_next(&cur, end, &kv), EMU_OK);
	assert_true(slice_eq(kv.key, kv.key_len, "retry-after"));
	assert_true(slice_eq(kv.value, kv.value_len, "3"));
	/* the empty pair between "&&" is skipped */
	assert_int_equal(query_next(&cur, end, &kv), EMU_OK);
	assert_true(slice_eq(kv.key, kv.key_len, "flag"));
	assert_false(kv.has_value);
	assert_int_equal(kv.value_len, 0);
	assert_int_equal(query_next(&cur, end, &kv), EMU_OK);
	assert_true(slice_eq(kv.key, kv.key_len, "k"));
	assert_true(slice_eq(kv.value, kv.value_len, "a=b"));
	assert_int_equal(query_next(&cur, end, &kv), EMU_OK);
	assert_true(slice_eq(kv.key, kv.key_len, "e"));
	assert_true(kv.has_value);
	assert_int_equal(kv.value_len, 0);
	/* raw: nothing decoded */
	assert_int_equal(query_next(&cur, end, &kv), EMU_OK);
	assert_true(slice_eq(kv.key, kv.key_len, "x%41"));
	assert_true(slice_eq(kv.value, kv.value_len, "%2F"));
	assert_int_equal(query_next(&cur, end, &kv), EMU_ENOTFOUND);
	assert_ptr_equal(cur, end);
	assert_int_equal(query_next(&cur, end, &kv), EMU_ENOTFOUND);
}

static void test_next_empty_and_separators_only(void **state)
{
	static const char q[] = "&&&";
	const char *cur = q;
	struct query_pair kv;

	assert_int_equal(query_next(&cur, q, &kv), EMU_ENOTFOUND);
	cur = q;
	assert_int_equal(query_next(&cur, q + 3, &kv), EMU_ENOTFOUND);
}

static void test_next_respects_end(void **state)
{
	/* the value stops at end even without '&' or a terminator */
	static const char q[] = "a=12345";
	const char *cur = q;
	struct query_pair kv;

	assert_int_equal(query_next(&cur, q + 4, &kv), EMU_OK);
	assert_true(slice_eq(kv.value, kv.value_len, "12"));
}

static void test_get_dps_topic_properties(void **state)
{
	static const char q[] = "$rid=1&operationId=4.abc.5f6c-uuid&retry-after=3";
	char out[64];

	assert_int_equal(query_get(q, strlen(q), "$rid", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "1");
	assert_int_equal(query_get(q, strlen(q), "operationId", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "4.abc.5f6c-uuid");
	assert_int_equal(query_get(q, strlen(q), "retry-after", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "3");
	assert_int_equal(query_get(q, strlen(q), "operationid", out, sizeof(out)), EMU_ENOTFOUND);
	assert_string_equal(out, "");
	assert_int_equal(query_get(q, strlen(q), "rid", out, sizeof(out)), EMU_ENOTFOUND);
	assert_int_equal(query_get(q, strlen(q), "$ri", out, sizeof(out)), EMU_ENOTFOUND);
	assert_int_equal(query_get(q, strlen(q), "$rid=", out, sizeof(out)), EMU_ENOTFOUND);
}

static void test_get_username_tail(void **state)
{
	static const char q[] =
		"api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1";
	char out[64];

	assert_int_equal(query_get(q, strlen(q), "ClientVersion", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "azure-iot-provisioning-device/1.9.1");
	assert_int_equal(query_get(q, strlen(q), "api-version", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "2019-03-31");
}

static void test_get_icase(void **state)
{
	static const char q[] = "API-Version=2021-06-01&x=1";
	char out[32];

	assert_int_equal(query_get(q, strlen(q), "api-version", out, sizeof(out)), EMU_ENOTFOUND);
	assert_int_equal(query_get_icase(q, strlen(q), "api-version", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "2021-06-01");
	assert_int_equal(query_get_icase(q, strlen(q), "X", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "1");
	assert_int_equal(query_get_icase(q, strlen(q), "api-versio", out, sizeof(out)),
			 EMU_ENOTFOUND);
}

static void test_get_first_occurrence_wins(void **state)
{
	static const char q[] = "a=first&a=second";
	char out[16];

	assert_int_equal(query_get(q, strlen(q), "a", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "first");
}

static void test_get_decodes_keys(void **state)
{
	static const char q[] = "%24rid=7&bad%zz=1";
	char out[16];

	assert_int_equal(query_get(q, strlen(q), "$rid", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "7");
	/* a key with a malformed escape matches nothing */
	assert_int_equal(query_get(q, strlen(q), "bad%zz", out, sizeof(out)), EMU_ENOTFOUND);
}

static void test_get_value_without_equals(void **state)
{
	static const char q[] = "flag&v=";
	char out[8] = "junk";

	assert_int_equal(query_get(q, strlen(q), "flag", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "");
	memcpy(out, "junk", 5);
	assert_int_equal(query_get(q, strlen(q), "v", out, sizeof(out)), EMU_OK);
	assert_string_equal(out, "");
}

static void test_get_too_big(void **state)
{
	static const char q[] = "k=abcd&p=%41%42%43";
	char out[5];

	/* "abcd" needs 5 bytes with its terminator */
	assert_int_equal(query_get(q, strlen(q), "k", out, 5), EMU_OK);
	assert_string_equal(out, "abcd");
	assert_int_equal(query_get(q, strlen(q), "k", out, 4), EMU_ETOOBIG);
	assert_string_equal(out, "");
	/* the bound is on the decoded length, not on the raw one */
	assert_int_equal(query_get(q, strlen(q), "p", out, 4), EMU_OK);
	assert_string_equal(out, "ABC");
	assert_int_equal(query_get(q, strlen(q), "k", out, 0), EMU_ETOOBIG);
}

static void test_get_bad_escapes(void **state)
{
	static const char *bad[] = { "v=%", "v=%4", "v=%4g", "v=%g4", "v=ab%", "v=%00", "v=a%00b" };
	char out[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (query_get(bad[i], strlen(bad[i]), "v", out, sizeof(out)) != EMU_EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_string_equal(out, "");
	}
}

static void test_get_raw_nul_refused(void **state)
{
	static const char q[] = { 'v', '=', 'a', '\0', 'b' };
	char out[16];

	assert_int_equal(query_get(q, sizeof(q), "v", out, sizeof(out)), EMU_EINVAL);
}

static void test_decode(void **state)
{
	char out[32];
	size_t n = 99;

	assert_int_equal(query_decode("a%2Fb%2fc+d%7E", 14, out, sizeof(out), &n), EMU_OK);
	/* '+' is not a space here */
	assert_string_equal(out, "a/b/c+d~");
	assert_int_equal(n, 8);
	assert_int_equal(query_decode("", 0, out, 1, &n), EMU_OK);
	assert_string_equal(out, "");
	assert_int_equal(n, 0);
	assert_int_equal(query_decode("%C3%BC", 6, out, sizeof(out), NULL), EMU_OK);
	assert_string_equal(out, "\xc3\xbc");
	assert_int_equal(query_decode("%zz", 3, out, sizeof(out), &n), EMU_EINVAL);
	assert_int_equal(n, 0);
	/* only the given length is read */
	assert_int_equal(query_decode("ab%41", 2, out, sizeof(out), &n), EMU_OK);
	assert_string_equal(out, "ab");
	assert_int_equal(query_decode("ab%41", 4, out, sizeof(out), &n), EMU_EINVAL);
}

static void test_find_returns_raw(void **state)
{
	static const char q[] = "sr=a%2Fb&sig=x%3D";
	struct query_pair kv;

	assert_int_equal(query_find(q, strlen(q), "sig", false, &kv), EMU_OK);
	assert_true(slice_eq(kv.value, kv.value_len, "x%3D"));
	assert_int_equal(query_find(q, strlen(q), "SR", true, &kv), EMU_OK);
	assert_true(slice_eq(kv.value, kv.value_len, "a%2Fb"));
	assert_int_equal(query_find(q, strlen(q), "SR", false, &kv), EMU_ENOTFOUND);
	assert_null(kv.key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_iterates_raw_pairs),
		cmocka_unit_test(test_next_empty_and_separators_only),
		cmocka_unit_test(test_next_respects_end),
		cmocka_unit_test(test_get_dps_topic_properties),
		cmocka_unit_test(test_get_username_tail),
		cmocka_unit_test(test_get_icase),
		cmocka_unit_test(test_get_first_occurrence_wins),
		cmocka_unit_test(test_get_decodes_keys),
		cmocka_unit_test(test_get_value_without_equals),
		cmocka_unit_test(test_get_too_big),
		cmocka_unit_test(test_get_bad_escapes),
		cmocka_unit_test(test_get_raw_nul_refused),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_find_returns_raw),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
