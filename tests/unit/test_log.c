/* Unit tests for common/log: the JSON line format and its escaping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T "2026-11-23T04:00:00.123Z"

static void json_line_exact(void **state)
{
	char out[512];
	size_t n;
	(void)state;

	n = log_format_json(out, sizeof(out), T, LOG_WARN, "hub",
			    "device 'd1' said \"hi\\\" \n\tand\x01 left");
	assert_string_equal(out, "{\"time\":\"" T "\",\"level\":\"warn\",\"component\":\"hub\","
				 "\"message\":\"device 'd1' said \\\"hi\\\\\\\" \\n\\tand\\u0001 "
				 "left\"}");
	assert_int_equal(n, strlen(out));
	n = log_format_json(out, sizeof(out), T, LOG_DEBUG, "dps", "");
	assert_string_equal(out, "{\"time\":\"" T "\",\"level\":\"debug\",\"component\":\"dps\","
				 "\"message\":\"\"}");
}

static void utf8_kept_and_repaired(void **state)
{
	char out[512];
	json_t *j;
	(void)state;

	/* Valid UTF-8 passes as is; stray bytes, overlong forms and surrogates
	 * become U+FFFD, one per byte. */
	log_format_json(out, sizeof(out), T, LOG_INFO, "x", "caf\xc3\xa9 \xe2\x82\xac \xff"
			"\xc0\xaf \xed\xa0\x80!");
	assert_non_null(strstr(out, "\"message\":\"caf\xc3\xa9 \xe2\x82\xac \\ufffd\\ufffd\\ufffd "
				    "\\ufffd\\ufffd\\ufffd!\"}"));
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "message")),
			    "caf\xc3\xa9 \xe2\x82\xac \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
	json_decref(j);
}

static void truncated_lines_stay_json(void **state)
{
	char msg[400], out[160];
	json_t *j;
	(void)state;

	/* Two-byte characters and quotes in a message longer than the line. */
	for (size_t i = 0; i + 2 < sizeof(msg); i += 3) {
		msg[i] = '"';
		msg[i + 1] = (char)0xc3;
		msg[i + 2] = (char)0xa9;
	}
	msg[sizeof(msg) - 1] = '\0';
	for (size_t len = 128; len <= sizeof(out); len++) {
		size_t n = log_format_json(out, len, T, LOG_ERROR, "component", msg);
		assert_true(n < len);
		assert_int_equal(n, strlen(out));
		j = json_loads(out, 0, NULL);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
		assert_string_equal(json_string_value(json_object_get(j, "component")),
				    "component");
		json_decref(j);
	}
}

static void formats_parse(void **state)
{
	(void)state;
	assert_int_equal(log_format_parse("text"), LOG_FORMAT_TEXT);
	assert_int_equal(log_format_parse("JSON"), LOG_FORMAT_JSON);
	assert_int_equal(log_format_parse("yaml"), -1);
	assert_int_equal(log_level_parse("warn"), LOG_WARN);
}

/* Runs fn with stderr sent to a temporary file; returns what was written. */
static char *capture_stderr(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	char *text;
	long n;

	assert_non_null(tmp);
	fflush(stderr);
	assert_true(dup2(fileno(tmp), 2) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	n = ftell(tmp);
	assert_true(n > 0);
	text = calloc(1, (size_t)n + 1);
	rewind(tmp);
	assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
	fclose(tmp);
	return text;
}

static void emit_json(void)
{
	log_set_format(LOG_FORMAT_JSON);
	log_set_level(LOG_INFO);
	log_debug("t", "dropped");
	log_info("t", "registration '%s' refused: %s", "r\"1", "no\ncertificate");
	log_banner("main", "\nfirst line\n  second line\n\n");
	log_set_format(LOG_FORMAT_TEXT);
}

static void every_line_is_json(void **state)
{
	char *text = capture_stderr(emit_json), *line, *save = NULL;
	const char *want[] = { "registration 'r\"1' refused: no\ncertificate", "first line",
			       "  second line" };
	size_t i = 0;
	(void)state;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		assert_true(i < 3);
		assert_string_equal(json_string_value(json_object_get(j, "message")), want[i]);
		assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
		json_decref(j);
	}
	assert_int_equal(i, 3);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_line_exact),
		cmocka_unit_test(utf8_kept_and_repaired),
		cmocka_unit_test(truncated_lines_stay_json),
		cmocka_unit_test(formats_parse),
		cmocka_unit_test(every_line_is_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
