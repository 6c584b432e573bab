/* store.h - LMDB storage: named tables of key -> bytes, in transactions.
 *
 * One LMDB environment per data directory. Tables are LMDB named databases
 * opened once at start-up. Values read inside a transaction are valid only until
 * that transaction ends: copy out before commit/abort. Every state change a
 * client is told about must be committed first (store_txn_commit returns). */
#ifndef DPSEMU_STORE_H
#define DPSEMU_STORE_H

#include <jansson.h>
#include <stddef.h>

struct store;
struct store_txn;
typedef unsigned int store_table; /* an opened table handle */

/* Opens (creating if needed) the LMDB environment in directory dir (created
 * too), with a map size of map_mb MiB. Returns EMU_OK and a new store, or
 * EMU_EIO / EMU_ESTORE with the reason logged. */
int store_open(const char *dir, size_t map_mb, struct store **out);
/* Closes the environment. store_close(NULL) is fine. */
void store_close(struct store *st);

/* Opens (creating) the named table; call at start-up before concurrent use.
 * Returns EMU_OK and the handle in *out, or EMU_ESTORE. */
int store_table_open(struct store *st, const char *name, store_table *out);

/* Empties every table opened so far (store_table_open) in one write
 * transaction, committed when this returns EMU_OK; the tables stay open. On
 * error nothing is changed: EMU_ESTORE (logged). No other write transaction
 * may be open. */
int store_clear_all(struct store *st);

/* Begins a read-only (write = 0) or read-write transaction. Only one write
 * transaction exists at a time (LMDB serialises them). */
int store_txn_begin(struct store *st, int write, struct store_txn **out);
/* Commits and frees the transaction. Returns EMU_OK or EMU_ESTORE (the
 * transaction is freed either way). */
int store_txn_commit(struct store_txn *txn);
/* Aborts and frees the transaction. store_txn_abort(NULL) is fine. */
void store_txn_abort(struct store_txn *txn);

/* Looks key up. On EMU_OK *val and *len point into the map (valid until the
 * transaction ends). EMU_ENOTFOUND if absent. */
int store_get(struct store_txn *txn, store_table t, const char *key, const void **val, size_t *len);
/* Inserts or replaces key. EMU_OK or EMU_ESTORE (EMU_ETOOBIG if the map is full). */
int store_put(struct store_txn *txn, store_table t, const char *key, const void *val, size_t len);
/* Deletes key. EMU_OK, or EMU_ENOTFOUND if absent. */
int store_del(struct store_txn *txn, store_table t, const char *key);
/* Deletes every key of the table. */
int store_clear(struct store_txn *txn, store_table t);

/* Calls cb for each entry in key order, starting at the first key strictly
 * greater than after (NULL = from the start). key is NUL-terminated. Stops
 * when cb returns non-zero and returns that value; 0 after the last entry;
 * negative emu_err on failure. */
typedef int (*store_iter_cb)(const char *key, const void *val, size_t len, void *arg);
int store_iter(struct store_txn *txn, store_table t, const char *after, store_iter_cb cb, void *arg);

/* JSON convenience: parses the stored value (EMU_ENOTFOUND, EMU_ESTORE if the
 * stored bytes are not JSON) into a new reference; serialises compactly. */
int store_get_json(struct store_txn *txn, store_table t, const char *key, json_t **out);
int store_put_json(struct store_txn *txn, store_table t, const char *key, const json_t *val);

#endif
