/* Unit tests for common/cfg: defaults, environment, flags, validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void clear_env(void)
{
	extern char **environ;
	char name[128];

	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++)
			if (strncmp(*e, "DPSEMU_", 7) == 0) {
				size_t n = strcspn(*e, "=");
				memcpy(name, *e, n < sizeof(name) ? n : sizeof(name) - 1);
				name[n < sizeof(name) ? n : sizeof(name) - 1] = '\0';
				unsetenv(name);
				again = 1;
				break;
			}
	}
}

static int setup(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

static void defaults(void **state)
{
	struct cfg c;
	char why[256];
	int help;
	char *argv[] = { "dpsemu", NULL };
	(void)state;

	assert_int_equal(cfg_load(&c, 1, argv, &help, why, sizeof(why)), EMU_OK);
	assert_false(help);
	assert_string_equal(c.data_dir, "./.dpsemu");
	assert_string_equal(c.hostname, "localhost");
	assert_string_equal(c.bind, "127.0.0.1");
	assert_int_equal(c.mqtt_port, 8883);
	assert_int_equal(c.https_port, 443);
	assert_string_equal(c.id_scope, "0ne00000000");
	assert_null(c.enrollments_dir);
	assert_string_equal(c.dps_key, CFG_DEFAULT_DPS_KEY);
	assert_string_equal(c.linked_hubs, "localhost"); /* follows the host name */
	assert_true(c.run_dps);
	assert_true(c.run_hub);
	assert_int_equal(c.retry_after, 1);
	cfg_free(&c);
}

static void env_and_flags(void **state)
{
	struct cfg c;
	char why[256];
	int help;
	char *argv[] = { "dpsemu", "--mqtt-port", "1884", "--hostname=emu.local", "--services", "dps",
			 NULL };
	(void)state;

	setenv("DPSEMU_MQTT_PORT", "9999", 1);
	setenv("DPSEMU_HTTPS_PORT", "8443", 1);
	assert_int_equal(cfg_load(&c, 6, argv, &help, why, sizeof(why)), EMU_OK);
	assert_int_equal(c.mqtt_port, 1884); /* the flag beats the variable */
	assert_int_equal(c.https_port, 8443);
	assert_string_equal(c.hostname, "emu.local");
	assert_string_equal(c.linked_hubs, "emu.local");
	assert_true(c.run_dps);
	assert_false(c.run_hub);
	cfg_free(&c);
}

static void errors_name_the_setting(void **state)
{
	struct cfg c;
	char why[256];
	int help;
	char *argv1[] = { "dpsemu", NULL };
	char *argv2[] = { "dpsemu", "--no-such-flag", "1", NULL };
	char *argv3[] = { "dpsemu", "--mqtt-port", NULL };
	(void)state;

	setenv("DPSEMU_MQTT_PORT", "70000", 1);
	assert_int_equal(cfg_load(&c, 1, argv1, &help, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "DPSEMU_MQTT_PORT"));
	cfg_free(&c);
	unsetenv("DPSEMU_MQTT_PORT");

	setenv("DPSEMU_MQTT_PROT", "1", 1); /* a typo must not pass silently */
	assert_int_equal(cfg_load(&c, 1, argv1, &help, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "DPSEMU_MQTT_PROT"));
	cfg_free(&c);
	unsetenv("DPSEMU_MQTT_PROT");

	setenv("DPSEMU_SERVICES", "dps,cloud", 1);
	assert_int_equal(cfg_load(&c, 1, argv1, &help, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "cloud"));
	cfg_free(&c);
	unsetenv("DPSEMU_SERVICES");

	assert_int_equal(cfg_load(&c, 3, argv2, &help, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "--no-such-flag"));
	cfg_free(&c);
	assert_int_equal(cfg_load(&c, 2, argv3, &help, why, sizeof(why)), EMU_EINVAL);
	cfg_free(&c);
}

struct seen {
	char items[4][32];
	int n;
};

static void collect(const char *item, void *arg)
{
	struct seen *s = arg;
	if (s->n < 4)
		snprintf(s->items[s->n++], sizeof(s->items[0]), "%s", item);
}

static void list_each_trims(void **state)
{
	struct seen s = { .n = 0 };
	(void)state;

	assert_int_equal(cfg_list_each(" a.example , ,b ,c", collect, &s), 3);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.items[0], "a.example");
	assert_string_equal(s.items[1], "b");
	assert_string_equal(s.items[2], "c");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(defaults, setup),
		cmocka_unit_test_setup(env_and_flags, setup),
		cmocka_unit_test_setup(errors_name_the_setting, setup),
		cmocka_unit_test(list_each_trims),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
