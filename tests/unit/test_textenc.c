/* Unit tests for common/textenc and common/buf. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "textenc.h"

#include <stdlib.h>
#include <string.h>

static void base64_round_trip(void **state)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	(void)state;

	for (size_t i = 0; i < 7; i++) {
		char *e = b64_encode(plain[i], strlen(plain[i]));
		unsigned char *d = NULL;
		size_t dlen = 99;
		assert_string_equal(e, enc[i]);
		assert_int_equal(b64_decode(e, strlen(e), &d, &dlen), EMU_OK);
		assert_int_equal(dlen, strlen(plain[i]));
		assert_memory_equal(d, plain[i], dlen);
		free(e);
		free(d);
	}
}

static void base64_rejects(void **state)
{
	static const char *bad[] = { "Zg=", "Z===", "Zm9v!", "Zg==Zg==", "Zm 9v", "=Zm9" };
	unsigned char *d;
	size_t dlen;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(b64_decode(bad[i], strlen(bad[i]), &d, &dlen), EMU_EINVAL);
		assert_null(d);
	}
}

static void hex_and_url(void **state)
{
	unsigned char b[3] = { 0x00, 0xab, 0xff };
	char hex[7];
	char *enc;
	(void)state;

	hex_encode(b, 3, 1, hex);
	assert_string_equal(hex, "00ABFF");
	hex_encode(b, 3, 0, hex);
	assert_string_equal(hex, "00abff");
	assert_int_equal(hex_digit_value('0'), 0);
	assert_int_equal(hex_digit_value('f'), 15);
	assert_int_equal(hex_digit_value('F'), 15);
	assert_int_equal(hex_digit_value('g'), -1);
	assert_int_equal(hex_digit_value('%'), -1);
	enc = url_encode("0ne/registrations/d 1~");
	assert_string_equal(enc, "0ne%2Fregistrations%2Fd%201~");
	free(enc);
}

static void buf_limits(void **state)
{
	struct buf b;
	char *s;
	(void)state;

	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "12345", 5), EMU_OK);
	assert_int_equal(buf_append(&b, "6789", 4), EMU_ETOOBIG);
	assert_int_equal(b.len, 5); /* a refused append changes nothing */
	assert_int_equal(buf_printf(&b, "%d", 678), EMU_OK);
	assert_string_equal((char *)b.data, "12345678");
	buf_consume(&b, 3);
	assert_string_equal((char *)b.data, "45678");
	s = buf_steal(&b);
	assert_string_equal(s, "45678");
	assert_null(b.data);
	free(s);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_round_trip),
		cmocka_unit_test(base64_rejects),
		cmocka_unit_test(hex_and_url),
		cmocka_unit_test(buf_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
