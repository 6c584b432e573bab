/* Unit tests for common/store: the LMDB wrapper. Each test gets a fresh
 * temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "store.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
	char dir[64];
	char sub[96]; /* dir/data/nested: created by store_open */
	struct store *st;
	store_table t;
};

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dpsemu-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sub, sizeof(f->sub), "%s/data/nested", f->dir);
	assert_int_equal(store_open(f->sub, 8, &f->st), EMU_OK);
	assert_int_equal(store_table_open(f->st, "things", &f->t), EMU_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void put_str(struct store_txn *txn, store_table t, const char *k, const char *v)
{
	assert_int_equal(store_put(txn, t, k, v, strlen(v)), EMU_OK);
}

static void check_value(struct store_txn *txn, store_table t, const char *k, const char *v)
{
	const void *val = NULL;
	size_t len = 0;

	assert_int_equal(store_get(txn, t, k, &val, &len), EMU_OK);
	assert_int_equal(len, strlen(v));
	assert_memory_equal(val, v, len);
}

static void test_dir_created_private(void **state)
{
	struct fx *f = *state;
	struct stat sb;

	assert_int_equal(stat(f->sub, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
}

static void test_put_get_del(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	const void *val;
	size_t len;

	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "a", &val, &len), EMU_ENOTFOUND);
	put_str(txn, f->t, "a", "one");
	check_value(txn, f->t, "a", "one");
	put_str(txn, f->t, "a", "uno"); /* replace */
	check_value(txn, f->t, "a", "uno");
	/* zero-length values are values too */
	assert_int_equal(store_put(txn, f->t, "empty", "", 0), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "empty", &val, &len), EMU_OK);
	assert_int_equal(len, 0);
	assert_int_equal(store_del(txn, f->t, "a"), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "a", &val, &len), EMU_ENOTFOUND);
	assert_int_equal(store_del(txn, f->t, "a"), EMU_ENOTFOUND);
	assert_int_equal(store_txn_commit(txn), EMU_OK);

	/* committed state is visible to a read transaction */
	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "empty", &val, &len), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "a", &val, &len), EMU_ENOTFOUND);
	/* a read-only transaction refuses writes */
	assert_int_not_equal(store_put(txn, f->t, "b", "x", 1), EMU_OK);
	store_txn_abort(txn);
}

static void test_bad_keys(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	char longkey[1200];
	const void *val;
	size_t len;

	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	assert_int_equal(store_put(txn, f->t, "", "x", 1), EMU_EINVAL);
	assert_int_equal(store_put(txn, f->t, longkey, "x", 1), EMU_EINVAL);
	assert_int_equal(store_get(txn, f->t, longkey, &val, &len), EMU_ENOTFOUND);
	assert_int_equal(store_del(txn, f->t, ""), EMU_ENOTFOUND);
	store_txn_abort(txn);
}

struct collect {
	char keys[16][16];
	char vals[16][16];
	int n;
	int stop_at; /* return 7 after this many entries; 0 = never */
};

static int collect_cb(const char *key, const void *val, size_t len, void *arg)
{
	struct collect *c = arg;

	assert_true(c->n < 16);
	snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
	snprintf(c->vals[c->n], sizeof(c->vals[0]), "%.*s", (int)len, (const char *)val);
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

static void test_iter_order_and_after(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	struct collect c;
	static const char *ins[] = {"b", "ab", "a", "c", "a:b", "aa"};

	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++)
		put_str(txn, f->t, ins[i], ins[i]);

	memset(&c, 0, sizeof(c));
	assert_int_equal(store_iter(txn, f->t, NULL, collect_cb, &c), 0);
	assert_int_equal(c.n, 6);
	/* byte order: a prefix sorts before its extensions */
	assert_string_equal(c.keys[0], "a");
	assert_string_equal(c.keys[1], "a:b");
	assert_string_equal(c.keys[2], "aa");
	assert_string_equal(c.keys[3], "ab");
	assert_string_equal(c.keys[4], "b");
	assert_string_equal(c.keys[5], "c");
	assert_string_equal(c.vals[3], "ab");

	/* strictly after an existing key */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_iter(txn, f->t, "aa", collect_cb, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.keys[0], "ab");

	/* after a key that does not exist: from the next greater one */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_iter(txn, f->t, "a;", collect_cb, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.keys[0], "aa");

	/* after the prefix "a" skips "a" itself but not "a:b" */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_iter(txn, f->t, "a", collect_cb, &c), 0);
	assert_string_equal(c.keys[0], "a:b");

	/* past the end */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_iter(txn, f->t, "zzz", collect_cb, &c), 0);
	assert_int_equal(c.n, 0);

	/* the callback stops the iteration and its value comes back */
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	assert_int_equal(store_iter(txn, f->t, NULL, collect_cb, &c), 7);
	assert_int_equal(c.n, 2);
	store_txn_abort(txn);
}

static void test_clear_and_tables_separate(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	store_table other;
	struct collect c;
	const void *val;
	size_t len;

	assert_int_equal(store_table_open(f->st, "other", &other), EMU_OK);
	assert_int_not_equal(other, f->t);
	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	put_str(txn, f->t, "k1", "v1");
	put_str(txn, f->t, "k2", "v2");
	put_str(txn, other, "k1", "other");
	assert_int_equal(store_clear(txn, f->t), EMU_OK);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_iter(txn, f->t, NULL, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(store_get(txn, other, "k1", &val, &len), EMU_OK);
	assert_int_equal(len, 5);
	assert_int_equal(store_txn_commit(txn), EMU_OK);
}

static void test_clear_all(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	store_table other, again;
	const void *val;
	size_t len;

	assert_int_equal(store_table_open(f->st, "other", &other), EMU_OK);
	/* Opening a table twice registers it once. */
	assert_int_equal(store_table_open(f->st, "other", &again), EMU_OK);
	assert_int_equal(again, other);
	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	put_str(txn, f->t, "a", "1");
	put_str(txn, f->t, "b", "2");
	put_str(txn, other, "c", "3");
	assert_int_equal(store_txn_commit(txn), EMU_OK);
	assert_int_equal(store_clear_all(f->st), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "a", &val, &len), EMU_ENOTFOUND);
	assert_int_equal(store_get(txn, f->t, "b", &val, &len), EMU_ENOTFOUND);
	assert_int_equal(store_get(txn, other, "c", &val, &len), EMU_ENOTFOUND);
	store_txn_abort(txn);
	/* The tables stay usable. */
	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	put_str(txn, other, "d", "4");
	assert_int_equal(store_txn_commit(txn), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	check_value(txn, other, "d", "4");
	store_txn_abort(txn);
}

static void test_json_values(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	json_t *in, *out = NULL;
	const void *val;
	size_t len;

	in = json_pack("{s:s,s:i,s:[b,n],s:{s:s}}", "registrationId", "dev1", "n", 42, "arr", 1,
	               "obj", "k", "v");
	assert_non_null(in);
	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	assert_int_equal(store_put_json(txn, f->t, "doc", in), EMU_OK);
	/* stored compactly */
	assert_int_equal(store_get(txn, f->t, "doc", &val, &len), EMU_OK);
	assert_null(memchr(val, ' ', len));
	assert_int_equal(store_get_json(txn, f->t, "doc", &out), EMU_OK);
	assert_true(json_equal(in, out));
	json_decref(out);
	/* key order is kept */
	assert_memory_equal(val, "{\"registrationId\"", 17);

	assert_int_equal(store_get_json(txn, f->t, "missing", &out), EMU_ENOTFOUND);
	assert_null(out);
	put_str(txn, f->t, "garbage", "{not json");
	assert_int_equal(store_get_json(txn, f->t, "garbage", &out), EMU_ESTORE);
	assert_null(out);
	/* a scalar is valid JSON too */
	put_str(txn, f->t, "num", "17");
	assert_int_equal(store_get_json(txn, f->t, "num", &out), EMU_OK);
	assert_int_equal(json_integer_value(out), 17);
	json_decref(out);
	store_txn_abort(txn);
	json_decref(in);
}

static void test_abort_discards(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	const void *val;
	size_t len;

	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	put_str(txn, f->t, "keep", "1");
	assert_int_equal(store_txn_commit(txn), EMU_OK);

	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	put_str(txn, f->t, "gone", "2");
	assert_int_equal(store_del(txn, f->t, "keep"), EMU_OK);
	store_txn_abort(txn);

	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	assert_int_equal(store_get(txn, f->t, "gone", &val, &len), EMU_ENOTFOUND);
	check_value(txn, f->t, "keep", "1");
	store_txn_abort(txn);
	store_txn_abort(NULL);
}

static void test_read_snapshot(void **state)
{
	struct fx *f = *state;
	struct store_txn *r = NULL, *w = NULL;
	const void *val;
	size_t len;

	assert_int_equal(store_txn_begin(f->st, 0, &r), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 1, &w), EMU_OK);
	put_str(w, f->t, "late", "x");
	assert_int_equal(store_txn_commit(w), EMU_OK);
	/* a read transaction keeps the snapshot it started with */
	assert_int_equal(store_get(r, f->t, "late", &val, &len), EMU_ENOTFOUND);
	store_txn_abort(r);
}

static void test_reopen_persists(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	json_t *out = NULL;

	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	put_str(txn, f->t, "persist", "{\"v\":1}");
	assert_int_equal(store_txn_commit(txn), EMU_OK);
	store_close(f->st);
	f->st = NULL;

	assert_int_equal(store_open(f->sub, 8, &f->st), EMU_OK);
	assert_int_equal(store_table_open(f->st, "things", &f->t), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	assert_int_equal(store_get_json(txn, f->t, "persist", &out), EMU_OK);
	assert_int_equal(json_integer_value(json_object_get(out, "v")), 1);
	json_decref(out);
	store_txn_abort(txn);
}

static void test_map_full(void **state)
{
	struct fx *f = *state;
	struct store_txn *txn = NULL;
	char key[32];
	char *big;
	int rc = EMU_OK;

	/* The fixture's map is 8 MiB: 16 values of 1 MiB cannot fit. */
	big = calloc(1, 1 << 20);
	assert_non_null(big);
	assert_int_equal(store_txn_begin(f->st, 1, &txn), EMU_OK);
	for (int i = 0; i < 16 && rc == EMU_OK; i++) {
		snprintf(key, sizeof(key), "big%d", i);
		rc = store_put(txn, f->t, key, big, 1 << 20);
	}
	assert_int_equal(rc, EMU_ETOOBIG);
	store_txn_abort(txn);
	free(big);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct store *st = NULL;
	char path[160];
	FILE *fp;

	/* a file where the directory should be */
	snprintf(path, sizeof(path), "%s/plainfile", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(store_open(path, 8, &st), EMU_EIO);
	assert_null(st);
	assert_int_equal(store_open("", 8, &st), EMU_EINVAL);
	store_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dir_created_private, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iter_order_and_after, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clear_and_tables_separate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clear_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_discards, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_snapshot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
