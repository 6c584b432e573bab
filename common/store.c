#include "store.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define STORE_MAX_DBS        16
#define STORE_DEFAULT_MAP_MB 64

struct store {
	MDB_env *env;
	size_t max_key; /* LMDB's key size limit, bytes (including our NUL) */
	MDB_dbi opened[STORE_MAX_DBS]; /* every table opened, for store_clear_all */
	int nopened;
};

struct store_txn {
	MDB_txn *txn;
	struct store *st;
};

/* Translates an LMDB (negative) or errno (positive) code and logs the detail. */
static int store_err(int rc, const char *what)
{
	if (rc == MDB_MAP_FULL) {
		log_error("store", "%s: %s (raise the map size)", what, mdb_strerror(rc));
		return EMU_ETOOBIG;
	}
	log_error("store", "%s: %s", what, mdb_strerror(rc));
	return EMU_ESTORE;
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int make_dirs(const char *dir)
{
	char *p = NULL, *s;
	struct stat sb;
	int rc = EMU_OK;

	p = strdup(dir);
	if (!p)
		return EMU_ENOMEM;
	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			log_error("store", "mkdir %s: %s", p, strerror(errno));
			rc = EMU_EIO;
			goto out;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		log_error("store", "%s is not a directory", dir);
		rc = EMU_EIO;
	}
out:
	free(p);
	return rc;
}

int store_open(const char *dir, size_t map_mb, struct store **out)
{
	struct store *st = NULL;
	int rc;

	*out = NULL;
	if (!dir || !*dir)
		return EMU_EINVAL;
	if (map_mb == 0)
		map_mb = STORE_DEFAULT_MAP_MB;
	if (map_mb > SIZE_MAX >> 20)
		return EMU_EINVAL;
	rc = make_dirs(dir);
	if (rc != EMU_OK)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return EMU_ENOMEM;
	rc = mdb_env_create(&st->env);
	if (rc != 0) {
		st->env = NULL;
		rc = store_err(rc, "mdb_env_create");
		goto fail;
	}
	rc = mdb_env_set_maxdbs(st->env, STORE_MAX_DBS);
	if (rc == 0)
		rc = mdb_env_set_mapsize(st->env, map_mb << 20);
	if (rc != 0) {
		rc = store_err(rc, "mdb_env configure");
		goto fail;
	}
	/* One thread owns the state; MDB_NOTLS ties read slots to transactions,
	 * not threads, so a read transaction may be passed around freely. */
	rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
	if (rc != 0) {
		log_error("store", "opening %s: %s", dir, mdb_strerror(rc));
		/* Positive codes are errno values: a file system problem. */
		rc = rc > 0 ? EMU_EIO : EMU_ESTORE;
		goto fail;
	}
	st->max_key = (size_t)mdb_env_get_maxkeysize(st->env);
	*out = st;
	return EMU_OK;
fail:
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->env)
		mdb_env_close(st->env);
	free(st);
}

int store_table_open(struct store *st, const char *name, store_table *out)
{
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	int rc;

	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc != 0)
		return store_err(rc, "mdb_txn_begin");
	rc = mdb_dbi_open(txn, name, MDB_CREATE, &dbi);
	if (rc != 0) {
		mdb_txn_abort(txn);
		log_error("store", "table %s", name);
		return store_err(rc, "mdb_dbi_open");
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		return store_err(rc, "mdb_txn_commit (table open)");
	*out = dbi;
	for (int i = 0; i < st->nopened; i++)
		if (st->opened[i] == dbi)
			return EMU_OK;
	/* LMDB allows at most STORE_MAX_DBS named tables, so this cannot overflow. */
	if (st->nopened < STORE_MAX_DBS)
		st->opened[st->nopened++] = dbi;
	return EMU_OK;
}

int store_clear_all(struct store *st)
{
	struct store_txn *txn = NULL;
	int rc;

	if ((rc = store_txn_begin(st, 1, &txn)) != EMU_OK)
		return rc;
	for (int i = 0; i < st->nopened; i++)
		if ((rc = store_clear(txn, st->opened[i])) != EMU_OK) {
			store_txn_abort(txn);
			return rc;
		}
	return store_txn_commit(txn);
}

int store_txn_begin(struct store *st, int write, struct store_txn **out)
{
	struct store_txn *t;
	int rc;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return EMU_ENOMEM;
	rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc != 0) {
		free(t);
		return store_err(rc, "mdb_txn_begin");
	}
	t->st = st;
	*out = t;
	return EMU_OK;
}

int store_txn_commit(struct store_txn *txn)
{
	int rc;

	if (!txn)
		return EMU_EINVAL;
	rc = mdb_txn_commit(txn->txn);
	free(txn);
	if (rc != 0)
		return store_err(rc, "mdb_txn_commit");
	return EMU_OK;
}

void store_txn_abort(struct store_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

/* Keys are stored with their NUL so that iteration can hand out C strings that
 * point into the map; NUL sorts first, so the order stays lexicographic. */
static int make_key(struct store_txn *txn, const char *key, MDB_val *k)
{
	size_t n;

	if (!key)
		return EMU_EINVAL;
	n = strlen(key) + 1;
	if (n < 2 || n > txn->st->max_key)
		return EMU_EINVAL;
	k->mv_data = (void *)key;
	k->mv_size = n;
	return EMU_OK;
}

int store_get(struct store_txn *txn, store_table t, const char *key, const void **val, size_t *len)
{
	MDB_val k, v;
	int rc;

	rc = make_key(txn, key, &k);
	if (rc != EMU_OK)
		return rc == EMU_EINVAL ? EMU_ENOTFOUND : rc; /* such a key cannot exist */
	rc = mdb_get(txn->txn, t, &k, &v);
	if (rc == MDB_NOTFOUND)
		return EMU_ENOTFOUND;
	if (rc != 0)
		return store_err(rc, "mdb_get");
	*val = v.mv_data;
	*len = v.mv_size;
	return EMU_OK;
}

int store_put(struct store_txn *txn, store_table t, const char *key, const void *val, size_t len)
{
	MDB_val k, v;
	int rc;

	rc = make_key(txn, key, &k);
	if (rc != EMU_OK) {
		log_error("store", "put: key empty or longer than %zu bytes", txn->st->max_key - 1);
		return rc;
	}
	v.mv_data = (void *)val;
	v.mv_size = len;
	rc = mdb_put(txn->txn, t, &k, &v, 0);
	if (rc != 0)
		return store_err(rc, "mdb_put");
	return EMU_OK;
}

int store_del(struct store_txn *txn, store_table t, const char *key)
{
	MDB_val k;
	int rc;

	rc = make_key(txn, key, &k);
	if (rc != EMU_OK)
		return EMU_ENOTFOUND;
	rc = mdb_del(txn->txn, t, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return EMU_ENOTFOUND;
	if (rc != 0)
		return store_err(rc, "mdb_del");
	return EMU_OK;
}

int store_clear(struct store_txn *txn, store_table t)
{
	int rc = mdb_drop(txn->txn, t, 0);

	if (rc != 0)
		return store_err(rc, "mdb_drop");
	return EMU_OK;
}

int store_iter(struct store_txn *txn, store_table t, const char *after, store_iter_cb cb, void *arg)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn->txn, t, &cur);
	if (rc != 0)
		return store_err(rc, "mdb_cursor_open");
	if (after && *after) {
		size_t alen = strlen(after) + 1;
		k.mv_data = (void *)after;
		k.mv_size = alen;
		/* SET_RANGE wants a key within LMDB's limit; a longer 'after' is
		 * truncated, which can only position us earlier: the equality check
		 * below and the skip loop keep "strictly greater" exact. */
		if (k.mv_size > txn->st->max_key)
			k.mv_size = txn->st->max_key;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		while (rc == 0) {
			size_t n = k.mv_size < alen ? k.mv_size : alen;
			int c = memcmp(k.mv_data, after, n);
			if (c > 0 || (c == 0 && k.mv_size > alen))
				break;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (rc == 0) {
		const char *key = k.mv_data;
		/* Only keys written by store_put exist; anything else is corruption. */
		if (k.mv_size == 0 || key[k.mv_size - 1] != '\0') {
			log_error("store", "iter: stored key is not NUL-terminated");
			ret = EMU_ESTORE;
			goto out;
		}
		ret = cb(key, v.mv_data, v.mv_size, arg);
		if (ret != 0)
			goto out;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc != MDB_NOTFOUND)
		ret = store_err(rc, "mdb_cursor_get");
out:
	mdb_cursor_close(cur);
	return ret;
}

int store_get_json(struct store_txn *txn, store_table t, const char *key, json_t **out)
{
	const void *val;
	json_error_t jerr;
	size_t len;
	int rc;

	*out = NULL;
	rc = store_get(txn, t, key, &val, &len);
	if (rc != EMU_OK)
		return rc;
	*out = json_loadb(val, len, JSON_DECODE_ANY, &jerr);
	if (!*out) {
		log_error("store", "value of %s is not JSON: %s", key, jerr.text);
		return EMU_ESTORE;
	}
	return EMU_OK;
}

int store_put_json(struct store_txn *txn, store_table t, const char *key, const json_t *val)
{
	char *s;
	int rc;

	s = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return EMU_ENOMEM;
	rc = store_put(txn, t, key, s, strlen(s));
	free(s);
	return rc;
}
