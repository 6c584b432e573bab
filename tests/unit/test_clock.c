/* Unit tests for common/clock: identifiers, random and deterministic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "err.h"

#include <regex.h>
#include <string.h>

#define N 8

static void draw(enum rand_id_kind kind, char out[N][37])
{
	for (int i = 0; i < N; i++)
		rand_uuid(kind, out[i]);
}

static void uuid_shape(const char *u)
{
	regex_t re;

	assert_int_equal(regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
				 "[0-9a-f]{12}$", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, u, 0, NULL, 0), 0);
	regfree(&re);
}

/* Runs first: before any seed, ids are random (two draws differ). */
static void random_by_default(void **state)
{
	char a[N][37], b[N][37];
	(void)state;

	assert_false(rand_id_seeded());
	draw(RAND_ID_REQUEST, a);
	draw(RAND_ID_REQUEST, b);
	for (int i = 0; i < N; i++) {
		uuid_shape(a[i]);
		assert_string_not_equal(a[i], b[i]);
	}
}

static void same_seed_same_sequence(void **state)
{
	char a[N][37], b[N][37], c[N][37];
	(void)state;

	rand_id_seed(42);
	assert_true(rand_id_seeded());
	draw(RAND_ID_OPERATION, a);
	rand_id_seed(42);
	draw(RAND_ID_OPERATION, b);
	for (int i = 0; i < N; i++) {
		uuid_shape(a[i]);
		assert_string_equal(a[i], b[i]);
		if (i)
			assert_string_not_equal(a[i], a[i - 1]);
	}
	/* Another seed gives another sequence. */
	rand_id_seed(43);
	draw(RAND_ID_OPERATION, c);
	for (int i = 0; i < N; i++)
		assert_string_not_equal(a[i], c[i]);
}

static void kinds_do_not_shift_each_other(void **state)
{
	char a[N][37], b[N][37], other[37];
	(void)state;

	rand_id_seed(7);
	draw(RAND_ID_ETAG, a);
	rand_id_seed(7);
	/* Health checks and polls draw request ids in between: etags stay. */
	for (int i = 0; i < N; i++) {
		rand_uuid(RAND_ID_REQUEST, other);
		rand_uuid(RAND_ID_REQUEST, other);
		rand_uuid(RAND_ID_ETAG, b[i]);
	}
	for (int i = 0; i < N; i++)
		assert_string_equal(a[i], b[i]);
	/* And the kinds' sequences differ. */
	rand_id_seed(7);
	rand_uuid(RAND_ID_REQUEST, other);
	assert_string_not_equal(other, a[0]);
}

static void bytes_are_stable(void **state)
{
	unsigned char x[32], y[32], z[8];
	(void)state;

	rand_id_seed(1);
	rand_id_bytes(RAND_ID_MESSAGE, x, sizeof(x));
	rand_id_bytes(RAND_ID_MESSAGE, z, sizeof(z));
	rand_id_seed(1);
	rand_id_bytes(RAND_ID_MESSAGE, y, sizeof(y));
	assert_memory_equal(x, y, sizeof(x));
	/* One block per call: a short draw is the next block's prefix. */
	rand_id_bytes(RAND_ID_MESSAGE, y, sizeof(z));
	assert_memory_equal(z, y, sizeof(z));
	assert_memory_not_equal(x, z, sizeof(z));
}

static void secrets_unaffected(void **state)
{
	unsigned char a[32], b[32];
	(void)state;

	rand_id_seed(99);
	assert_int_equal(rand_bytes(a, sizeof(a)), EMU_OK);
	rand_id_seed(99);
	assert_int_equal(rand_bytes(b, sizeof(b)), EMU_OK);
	assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_by_default),
		cmocka_unit_test(same_seed_same_sequence),
		cmocka_unit_test(kinds_do_not_shift_each_other),
		cmocka_unit_test(bytes_are_stable),
		cmocka_unit_test(secrets_unaffected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
