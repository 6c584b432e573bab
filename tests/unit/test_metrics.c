/* Unit tests for common/metrics: families, series and the exposition text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(struct metrics *m)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(metrics_render(m, &b), EMU_OK);
	return b.data ? buf_steal(&b) : strdup("");
}

static void exposition_is_exact(void **state)
{
	static const double bounds[] = { 0.005, 0.1, 1 };
	struct metrics *m = NULL;
	struct metrics_family *regs, *conns, *lat;
	char *text;
	(void)state;

	assert_int_equal(metrics_new(&m), EMU_OK);
	regs = metrics_counter(m, "t_registrations_total", "Registrations.", "transport,outcome");
	conns = metrics_gauge(m, "t_connections", "Open \\ connections\nnow.", NULL);
	lat = metrics_histogram(m, "t_seconds", "Latency.", "method", bounds, 3);
	assert_non_null(regs);
	assert_non_null(conns);
	assert_non_null(lat);
	metrics_inc(regs, METRICS_LABELS("mqtt", "assigned"));
	metrics_inc(regs, METRICS_LABELS("https", "refused"));
	metrics_add(regs, METRICS_LABELS("mqtt", "assigned"), 2);
	metrics_add(conns, NULL, 3);
	metrics_add(conns, NULL, -1);
	metrics_observe(lat, METRICS_LABELS("GET"), 0.005); /* on a bound: counts in it */
	metrics_observe(lat, METRICS_LABELS("GET"), 0.25);
	metrics_observe(lat, METRICS_LABELS("GET"), 7);
	text = render(m);
	assert_string_equal(text,
			    "# HELP t_registrations_total Registrations.\n"
			    "# TYPE t_registrations_total counter\n"
			    "t_registrations_total{transport=\"mqtt\",outcome=\"assigned\"} 3\n"
			    "t_registrations_total{transport=\"https\",outcome=\"refused\"} 1\n"
			    "# HELP t_connections Open \\\\ connections\\nnow.\n"
			    "# TYPE t_connections gauge\n"
			    "t_connections 2\n"
			    "# HELP t_seconds Latency.\n"
			    "# TYPE t_seconds histogram\n"
			    "t_seconds_bucket{method=\"GET\",le=\"0.005\"} 1\n"
			    "t_seconds_bucket{method=\"GET\",le=\"0.1\"} 1\n"
			    "t_seconds_bucket{method=\"GET\",le=\"1\"} 2\n"
			    "t_seconds_bucket{method=\"GET\",le=\"+Inf\"} 3\n"
			    "t_seconds_sum{method=\"GET\"} 7.255\n"
			    "t_seconds_count{method=\"GET\"} 3\n");
	free(text);
	assert_true(metrics_value(regs, METRICS_LABELS("mqtt", "assigned")) == 3);
	assert_true(metrics_value(regs, METRICS_LABELS("mqtt", "failed")) == 0);
	assert_true(metrics_value(lat, METRICS_LABELS("GET")) == 3);
	metrics_free(m);
}

static void empty_families(void **state)
{
	struct metrics *m = NULL;
	char *text;
	(void)state;

	assert_int_equal(metrics_new(&m), EMU_OK);
	/* Unlabelled counters show 0 at once; labelled ones have no series yet. */
	assert_non_null(metrics_counter(m, "a_total", "A.", NULL));
	assert_non_null(metrics_counter(m, "b_total", "B.", "x"));
	text = render(m);
	assert_string_equal(text, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
				  "# HELP b_total B.\n# TYPE b_total counter\n");
	free(text);
	metrics_free(m);
}

static void label_values_are_escaped(void **state)
{
	struct metrics *m = NULL;
	struct metrics_family *f;
	char *text;
	(void)state;

	assert_int_equal(metrics_new(&m), EMU_OK);
	f = metrics_counter(m, "e_total", "E.", "v");
	metrics_inc(f, METRICS_LABELS("a\"b\\c\nd"));
	metrics_inc(f, METRICS_LABELS(NULL)); /* NULL reads as "" */
	text = render(m);
	assert_non_null(strstr(text, "e_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
	assert_non_null(strstr(text, "e_total{v=\"\"} 1\n"));
	free(text);
	metrics_free(m);
}

static void same_name_same_family(void **state)
{
	static const double b1[] = { 1, 2 }, b2[] = { 1, 3 }, bad[] = { 2, 1 };
	struct metrics *m = NULL;
	struct metrics_family *f;
	(void)state;

	assert_int_equal(metrics_new(&m), EMU_OK);
	f = metrics_counter(m, "s_total", "S.", "service,reason");
	assert_ptr_equal(metrics_counter(m, "s_total", "other help", "service,reason"), f);
	/* Another type, other labels or other buckets: refused. */
	assert_null(metrics_gauge(m, "s_total", "S.", "service,reason"));
	assert_null(metrics_counter(m, "s_total", "S.", "service"));
	assert_non_null(metrics_histogram(m, "h", "H.", NULL, b1, 2));
	assert_null(metrics_histogram(m, "h", "H.", NULL, b2, 2));
	assert_null(metrics_histogram(m, "h2", "H.", NULL, bad, 2));
	/* Invalid names. */
	assert_null(metrics_counter(m, "9x", "X.", NULL));
	assert_null(metrics_counter(m, "a-b", "X.", NULL));
	assert_null(metrics_counter(m, "ok", "X.", "le"));
	assert_null(metrics_counter(m, "ok2", "X.", "a,b,c,d,e"));
	metrics_free(m);
}

static void wrong_updates_are_ignored(void **state)
{
	static const double b[] = { 1 };
	struct metrics *m = NULL;
	struct metrics_family *c, *g, *h;
	(void)state;

	/* Without a registry everything is a no-op. */
	assert_null(metrics_counter(NULL, "x_total", "X.", NULL));
	metrics_inc(NULL, NULL);
	metrics_observe(NULL, NULL, 1);
	assert_true(metrics_value(NULL, NULL) == 0);

	assert_int_equal(metrics_new(&m), EMU_OK);
	c = metrics_counter(m, "c_total", "C.", NULL);
	g = metrics_gauge(m, "g", "G.", NULL);
	h = metrics_histogram(m, "h", "H.", NULL, b, 1);
	metrics_add(c, NULL, -1);   /* counters only go up */
	metrics_set(c, NULL, 5);    /* and are not set */
	metrics_observe(c, NULL, 1);
	metrics_add(h, NULL, 1);
	metrics_set(g, NULL, -4.5);
	assert_true(metrics_value(c, NULL) == 0);
	assert_true(metrics_value(g, NULL) == -4.5);
	assert_true(metrics_value(h, NULL) == 0);
	metrics_free(m);
}

static void series_are_bounded(void **state)
{
	struct metrics *m = NULL;
	struct metrics_family *f;
	char v[32];
	(void)state;

	assert_int_equal(metrics_new(&m), EMU_OK);
	f = metrics_counter(m, "n_total", "N.", "v");
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		metrics_inc(f, METRICS_LABELS(v));
	}
	assert_true(metrics_value(f, METRICS_LABELS("v0")) == 1);
	snprintf(v, sizeof(v), "v%d", METRICS_MAX_SERIES - 1);
	assert_true(metrics_value(f, METRICS_LABELS(v)) == 1);
	snprintf(v, sizeof(v), "v%d", METRICS_MAX_SERIES);
	assert_true(metrics_value(f, METRICS_LABELS(v)) == 0);
	/* An existing series still counts. */
	metrics_inc(f, METRICS_LABELS("v0"));
	assert_true(metrics_value(f, METRICS_LABELS("v0")) == 2);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exposition_is_exact),
		cmocka_unit_test(empty_families),
		cmocka_unit_test(label_values_are_escaped),
		cmocka_unit_test(same_name_same_family),
		cmocka_unit_test(wrong_updates_are_ignored),
		cmocka_unit_test(series_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
