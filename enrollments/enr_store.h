/* enr_store.h - persistence of enrollments and enrollment groups, with the
 * service API's etag rules.
 *
 * Tables (common/store): "enrollments" and "enrollmentGroups" map the lower-cased
 * ID (enrollment_id_key) to the stored document (JSON, see enrollment.h), so that
 * lookups are case-insensitive; "enrollmentMeta" holds the generation counter.
 *
 * Every function works inside a transaction the caller owns (store_txn_begin):
 * writes need a write transaction, and the caller commits before telling a
 * client about the change (or aborts on error). This lets the seed loader apply
 * a whole directory atomically and the service API commit before answering.
 *
 * The generation counter is bumped by every write (put, delete, bulk) in the
 * same transaction, so a cache of parsed groups built from one read transaction
 * (enr_store_load_groups) knows exactly which state it reflects. */
#ifndef DPSEMU_ENR_STORE_H
#define DPSEMU_ENR_STORE_H

#include "enrollments/enrollment.h"
#include "store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct enr_store;

#define ENR_BULK_MAX      10   /* items per bulk operation, as DPS allows */
#define ENR_QUERY_DEFAULT 100  /* page size when the caller gives none */
#define ENR_QUERY_MAX     1000 /* larger page sizes are reduced to this */

/* Service-API error codes (errorCode = HTTP status * 1000 + sub-code). The
 * sub-codes are this emulator's; clients look at the HTTP part. */
#define ENR_ERRCODE_BAD_REQUEST  400004
#define ENR_ERRCODE_NOT_FOUND    404201
#define ENR_ERRCODE_CONFLICT     409201
#define ENR_ERRCODE_PRECONDITION 412201
#define ENR_ERRCODE_INTERNAL     500000

/* Flags for enr_store_put. */
enum enr_put_flags {
	/* When the record exists and the new document has the same content (ignoring
	 * etag and timestamps), keep the stored record untouched (same etag, no
	 * generation bump). The seed loader uses it so restarts do not churn etags. */
	ENR_PUT_KEEP_UNCHANGED = 1,
};

/* Opens the tables in st (at start-up, before other use). opts is copied; it
 * validates credential policy names on put (NULL = no policy configured).
 * Returns EMU_OK and a new handle (free with enr_store_free), EMU_ESTORE, EMU_ENOMEM. */
int enr_store_new(struct store *st, const struct enr_validate_opts *opts, struct enr_store **out);
/* Frees the handle (not the store); NULL is fine. */
void enr_store_free(struct enr_store *es);

/* Creates or replaces the enrollment of the given kind.
 *   path_id   the ID from the URL, or NULL to take it from body (see enrollment_from_json);
 *   body      the service-API document (not modified);
 *   if_match  NULL or "" - create only: EMU_EEXIST if the record exists (HTTP 409);
 *             "*"        - create or replace;
 *             an etag    - replace only: the record must exist (else EMU_ENOTFOUND,
 *                          HTTP 404) and carry that etag (else EMU_EPRECOND, HTTP 412),
 *                          compared with etag_matches (etag.h);
 *   flags     enum enr_put_flags bits.
 * On replace, createdDateTimeUtc is kept and secrets the client cannot send back are
 * kept (enrollment_merge_secrets); a new etag and lastUpdatedDateTimeUtc are set.
 * Returns EMU_OK and, if out is non-NULL, the stored enrollment in *out (caller
 * frees with enrollment_free). Errors: EMU_EINVAL with a reason in why; EMU_EEXIST,
 * EMU_ENOTFOUND, EMU_EPRECOND (reason in why too); EMU_ESTORE / EMU_ETOOBIG (map
 * full) / EMU_ENOMEM - then the caller should abort the transaction. */
int enr_store_put(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                  const char *path_id, const json_t *body, const char *if_match, unsigned flags,
                  struct enrollment **out, char *why, size_t whylen);

/* Looks id up (case-insensitively). Returns EMU_OK and a new enrollment in *out
 * (caller frees), EMU_ENOTFOUND (also for an invalid id), EMU_ESTORE, EMU_ENOMEM. */
int enr_store_get(struct enr_store *es, struct store_txn *txn, enum enr_kind kind, const char *id,
                  struct enrollment **out);

/* Deletes id. if_match NULL, "" or "*" deletes unconditionally; otherwise the etag
 * must match. Returns EMU_OK, EMU_ENOTFOUND, EMU_EPRECOND, EMU_ESTORE. */
int enr_store_delete(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                     const char *id, const char *if_match);

/* One page of a query ("SELECT * FROM enrollments" / "enrollmentGroups"), in ID
 * order (lower-cased). continuation is NULL for the first page or a value returned
 * by the previous call; max_items 0 means ENR_QUERY_DEFAULT.
 * Returns EMU_OK, *items = a new JSON array of API views (keys hidden), and
 * *next = a new string to pass for the next page (caller frees) or NULL when no
 * item follows. EMU_EINVAL for a malformed continuation, EMU_ESTORE, EMU_ENOMEM. */
int enr_store_query(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                    const char *continuation, size_t max_items, json_t **items, char **next);

/* A bulk operation {"mode": "create"|"update"|"updateIfMatchETag"|"delete",
 * "enrollments": [...]} (groups: "enrollmentGroups": [...]) of 1..ENR_BULK_MAX
 * items. Items are applied in order, each on its own: a failing item writes
 * nothing and is reported; the others are still applied. create = put with
 * if_match NULL, update = put with "*", updateIfMatchETag = put with the item's
 * etag (required), delete = delete with the item's etag when it has one.
 * Returns EMU_OK and *result = {"isSuccessful": bool, "errors": [{"registrationId" |
 * "enrollmentGroupId": id, "errorCode": int, "errorStatus": reason}]};
 * EMU_EINVAL (reason in why) when the operation itself is malformed; storage
 * errors as enr_store_put (then the caller aborts the whole transaction). */
int enr_store_bulk(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                   const json_t *op, json_t **result, char *why, size_t whylen);

/* Maps an emu_err from put/delete to an ENR_ERRCODE_* value. */
int enr_store_error_code(int err);

/* Counts the records of a kind. EMU_OK or EMU_ESTORE. */
int enr_store_count(struct enr_store *es, struct store_txn *txn, enum enr_kind kind, size_t *out);

/* Reads the generation counter (0 before the first write). EMU_OK or EMU_ESTORE. */
int enr_store_generation(struct enr_store *es, struct store_txn *txn, uint64_t *out);

/* Every enrollment group, parsed, in group-ID order (lower-cased), and the
 * generation it reflects. Unreadable records are skipped and logged. */
struct enr_list {
	struct enrollment **items;
	size_t count;
	uint64_t generation;
};

/* Loads every group. Returns EMU_OK and a new list (free with enr_list_free),
 * EMU_ESTORE, EMU_ENOMEM. */
int enr_store_load_groups(struct enr_store *es, struct store_txn *txn, struct enr_list **out);
/* Frees the list and its enrollments; NULL is fine. */
void enr_list_free(struct enr_list *l);

#endif
