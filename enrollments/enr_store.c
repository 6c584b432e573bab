#include "enrollments/enr_store.h"

#include "err.h"
#include "etag.h"
#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GENERATION_KEY "generation"

struct enr_store {
	struct store *st;
	store_table tables[2]; /* indexed by enum enr_kind */
	store_table meta;
	struct enr_validate_opts opts;
};

static const char *kind_noun(enum enr_kind kind)
{
	return kind == ENR_GROUP ? "enrollment group" : "enrollment";
}

int enr_store_new(struct store *st, const struct enr_validate_opts *opts, struct enr_store **out)
{
	struct enr_store *es;
	int rc;

	*out = NULL;
	es = calloc(1, sizeof(*es));
	if (!es)
		return EMU_ENOMEM;
	es->st = st;
	if (opts)
		es->opts = *opts;
	rc = store_table_open(st, "enrollments", &es->tables[ENR_INDIVIDUAL]);
	if (rc == EMU_OK)
		rc = store_table_open(st, "enrollmentGroups", &es->tables[ENR_GROUP]);
	if (rc == EMU_OK)
		rc = store_table_open(st, "enrollmentMeta", &es->meta);
	if (rc != EMU_OK) {
		free(es);
		return rc;
	}
	*out = es;
	return EMU_OK;
}

void enr_store_free(struct enr_store *es)
{
	free(es);
}

int enr_store_generation(struct enr_store *es, struct store_txn *txn, uint64_t *out)
{
	const void *val;
	char text[32];
	size_t len;
	char *end;
	int rc;

	*out = 0;
	rc = store_get(txn, es->meta, GENERATION_KEY, &val, &len);
	if (rc == EMU_ENOTFOUND)
		return EMU_OK;
	if (rc != EMU_OK)
		return rc;
	if (len == 0 || len >= sizeof(text)) {
		log_error("enrollments", "stored generation counter is malformed");
		return EMU_ESTORE;
	}
	memcpy(text, val, len);
	text[len] = '\0';
	*out = strtoull(text, &end, 10);
	if (*end != '\0') {
		log_error("enrollments", "stored generation counter is malformed");
		return EMU_ESTORE;
	}
	return EMU_OK;
}

static int bump_generation(struct enr_store *es, struct store_txn *txn)
{
	uint64_t g;
	char text[32];
	int rc, n;

	rc = enr_store_generation(es, txn, &g);
	if (rc != EMU_OK)
		return rc;
	n = snprintf(text, sizeof(text), "%" PRIu64, g + 1);
	return store_put(txn, es->meta, GENERATION_KEY, text, (size_t)n);
}

/* Reads and parses the record stored under key. */
static int load(struct enr_store *es, struct store_txn *txn, enum enr_kind kind, const char *key,
                struct enrollment **out)
{
	json_t *doc = NULL;
	int rc;

	*out = NULL;
	rc = store_get_json(txn, es->tables[kind], key, &doc);
	if (rc != EMU_OK)
		return rc;
	rc = enrollment_from_stored(kind, doc, out);
	if (rc != EMU_OK)
		log_error("enrollments", "record '%s' cannot be read", key);
	json_decref(doc);
	return rc;
}

int enr_store_get(struct enr_store *es, struct store_txn *txn, enum enr_kind kind, const char *id,
                  struct enrollment **out)
{
	char key[ENR_ID_MAX + 1];

	*out = NULL;
	if (enrollment_id_valid(id, NULL, 0) != EMU_OK)
		return EMU_ENOTFOUND;
	enrollment_id_key(id, key);
	return load(es, txn, kind, key, out);
}

int enr_store_put(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                  const char *path_id, const json_t *body, const char *if_match, unsigned flags,
                  struct enrollment **out, char *why, size_t whylen)
{
	const char *field = enrollment_id_field(kind);
	struct enrollment *old = NULL, *e = NULL;
	json_t *merged = NULL;
	char key[ENR_ID_MAX + 1];
	const char *id;
	int rc;

	if (out)
		*out = NULL;
	emu_why(why, whylen, "%s", "");
	id = path_id ? path_id : json_string_value(json_object_get(body, field));
	if (id && enrollment_id_valid(id, NULL, 0) == EMU_OK) {
		enrollment_id_key(id, key);
		rc = load(es, txn, kind, key, &old);
		if (rc != EMU_OK && rc != EMU_ENOTFOUND)
			goto out;
	}
	merged = enrollment_merge_secrets(body, old);
	if (!merged) {
		rc = EMU_ENOMEM;
		goto out;
	}
	rc = enrollment_from_json(kind, path_id, merged, &es->opts, &e, why, whylen);
	if (rc != EMU_OK)
		goto out;
	enrollment_id_key(e->id, key);
	if (etag_is_absent(if_match)) {
		if (old) {
			emu_why(why, whylen, "%s '%s' already exists", kind_noun(kind), e->id);
			rc = EMU_EEXIST;
			goto out;
		}
	} else if (!etag_is_any(if_match)) {
		if (!old) {
			emu_why(why, whylen, "%s '%s' does not exist", kind_noun(kind), e->id);
			rc = EMU_ENOTFOUND;
			goto out;
		}
		if (!etag_matches(old->etag, if_match)) {
			emu_why(why, whylen, "etag %s does not match the current etag of %s '%s'",
			        if_match, kind_noun(kind), e->id);
			rc = EMU_EPRECOND;
			goto out;
		}
	}
	if (old && (flags & ENR_PUT_KEEP_UNCHANGED) && enrollment_same_content(old, e)) {
		if (out) {
			*out = old;
			old = NULL;
		}
		rc = EMU_OK;
		goto out;
	}
	rc = enrollment_stamp(
	    e, old ? json_string_value(json_object_get(old->doc, "createdDateTimeUtc")) : NULL);
	if (rc == EMU_OK)
		rc = store_put_json(txn, es->tables[kind], key, e->doc);
	if (rc == EMU_OK)
		rc = bump_generation(es, txn);
	if (rc != EMU_OK)
		goto out;
	log_info("enrollments", "%s '%s' %s (etag %s)", kind_noun(kind), e->id,
	         old ? "replaced" : "created", e->etag);
	if (out) {
		*out = e;
		e = NULL;
	}
out:
	enrollment_free(old);
	enrollment_free(e);
	json_decref(merged);
	return rc;
}

int enr_store_delete(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                     const char *id, const char *if_match)
{
	struct enrollment *old = NULL;
	char key[ENR_ID_MAX + 1];
	int rc;

	if (enrollment_id_valid(id, NULL, 0) != EMU_OK)
		return EMU_ENOTFOUND;
	enrollment_id_key(id, key);
	if (!etag_is_absent(if_match) && !etag_is_any(if_match)) {
		rc = load(es, txn, kind, key, &old);
		if (rc != EMU_OK)
			return rc;
		rc = etag_matches(old->etag, if_match) ? EMU_OK : EMU_EPRECOND;
		enrollment_free(old);
		if (rc != EMU_OK)
			return rc;
	}
	rc = store_del(txn, es->tables[kind], key);
	if (rc == EMU_OK)
		rc = bump_generation(es, txn);
	if (rc == EMU_OK)
		log_info("enrollments", "%s '%s' deleted", kind_noun(kind), id);
	return rc;
}

struct query_ctx {
	enum enr_kind kind;
	size_t max;
	json_t *items;
	char last[ENR_ID_MAX + 1];
	int more;
	int err;
};

static int query_cb(const char *key, const void *val, size_t len, void *arg)
{
	struct query_ctx *q = arg;
	struct enrollment *e = NULL;
	json_error_t jerr;
	json_t *doc, *view;

	if (json_array_size(q->items) >= q->max) {
		q->more = 1;
		return 1;
	}
	doc = json_loadb(val, len, 0, &jerr);
	if (!doc || enrollment_from_stored(q->kind, doc, &e) != EMU_OK) {
		/* One unreadable record must not hide all the others. */
		log_error("enrollments", "query: skipping unreadable record '%s'", key);
		json_decref(doc);
		return 0;
	}
	json_decref(doc);
	view = enrollment_to_api_json(e, 0);
	enrollment_free(e);
	if (!view || json_array_append_new(q->items, view) != 0) {
		q->err = EMU_ENOMEM;
		return 1;
	}
	snprintf(q->last, sizeof(q->last), "%s", key);
	return 0;
}

int enr_store_query(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                    const char *continuation, size_t max_items, json_t **items, char **next)
{
	struct query_ctx q = {.kind = kind};
	int rc;

	*items = NULL;
	*next = NULL;
	if (continuation && *continuation && enrollment_id_valid(continuation, NULL, 0) != EMU_OK)
		return EMU_EINVAL;
	q.max = max_items == 0 ? ENR_QUERY_DEFAULT : max_items;
	if (q.max > ENR_QUERY_MAX)
		q.max = ENR_QUERY_MAX;
	q.items = json_array();
	if (!q.items)
		return EMU_ENOMEM;
	rc = store_iter(txn, es->tables[kind], continuation && *continuation ? continuation : NULL,
	                query_cb, &q);
	if (rc < 0 || q.err) {
		json_decref(q.items);
		return rc < 0 ? rc : q.err;
	}
	if (q.more && q.last[0]) {
		*next = strdup(q.last);
		if (!*next) {
			json_decref(q.items);
			return EMU_ENOMEM;
		}
	}
	*items = q.items;
	return EMU_OK;
}

static int count_cb(const char *key, const void *val, size_t len, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

int enr_store_count(struct enr_store *es, struct store_txn *txn, enum enr_kind kind, size_t *out)
{
	int rc;

	*out = 0;
	rc = store_iter(txn, es->tables[kind], NULL, count_cb, out);
	return rc < 0 ? rc : EMU_OK;
}

int enr_store_error_code(int err)
{
	switch (err) {
	case EMU_EINVAL:
		return ENR_ERRCODE_BAD_REQUEST;
	case EMU_ENOTFOUND:
		return ENR_ERRCODE_NOT_FOUND;
	case EMU_EEXIST:
		return ENR_ERRCODE_CONFLICT;
	case EMU_EPRECOND:
		return ENR_ERRCODE_PRECONDITION;
	default:
		return ENR_ERRCODE_INTERNAL;
	}
}

/* Errors after which the transaction cannot be trusted: the whole call fails. */
static int fatal(int rc)
{
	return rc == EMU_ESTORE || rc == EMU_ETOOBIG || rc == EMU_ENOMEM || rc == EMU_ECRYPTO ||
	       rc == EMU_EIO;
}

enum bulk_mode { BULK_CREATE, BULK_UPDATE, BULK_UPDATE_IF_MATCH, BULK_DELETE };

static int bulk_item(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                     enum bulk_mode mode, const json_t *item, size_t idx, const char *list,
                     char *why, size_t whylen)
{
	const char *field = enrollment_id_field(kind);
	const char *id, *etag;

	if (!json_is_object(item)) {
		emu_why(why, whylen, "%s[%zu]: must be an object", list, idx);
		return EMU_EINVAL;
	}
	id = json_string_value(json_object_get(item, field));
	etag = json_string_value(json_object_get(item, "etag"));
	switch (mode) {
	case BULK_CREATE:
		return enr_store_put(es, txn, kind, NULL, item, NULL, 0, NULL, why, whylen);
	case BULK_UPDATE:
		return enr_store_put(es, txn, kind, NULL, item, "*", 0, NULL, why, whylen);
	case BULK_UPDATE_IF_MATCH:
		if (!etag || !*etag) {
			emu_why(why, whylen, "etag: required with mode updateIfMatchETag");
			return EMU_EINVAL;
		}
		return enr_store_put(es, txn, kind, NULL, item, etag, 0, NULL, why, whylen);
	case BULK_DELETE:
		if (!id) {
			emu_why(why, whylen, "%s: required", field);
			return EMU_EINVAL;
		}
		{
			int rc = enr_store_delete(es, txn, kind, id, etag);
			if (rc == EMU_ENOTFOUND)
				emu_why(why, whylen, "%s '%s' does not exist", kind_noun(kind), id);
			else if (rc == EMU_EPRECOND)
				emu_why(why, whylen,
				        "etag %s does not match the current etag of "
				        "%s '%s'",
				        etag, kind_noun(kind), id);
			return rc;
		}
	}
	return EMU_EINVAL;
}

int enr_store_bulk(struct enr_store *es, struct store_txn *txn, enum enr_kind kind,
                   const json_t *op, json_t **result, char *why, size_t whylen)
{
	static const char *modes[] = {"create", "update", "updateIfMatchETag", "delete"};
	const char *list = kind == ENR_GROUP ? "enrollmentGroups" : "enrollments";
	const char *field = enrollment_id_field(kind);
	const json_t *items, *item;
	json_t *res = NULL, *errors;
	enum bulk_mode mode = BULK_CREATE;
	const char *m;
	size_t i;
	int found = 0, rc = EMU_OK;

	*result = NULL;
	emu_why(why, whylen, "%s", "");
	if (!json_is_object(op)) {
		emu_why(why, whylen, "the bulk operation must be a JSON object");
		return EMU_EINVAL;
	}
	m = json_string_value(json_object_get(op, "mode"));
	if (!m) {
		emu_why(why, whylen,
		        "mode: required (create, update, updateIfMatchETag or delete)");
		return EMU_EINVAL;
	}
	for (size_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++) {
		if (strcasecmp(m, modes[k]) == 0) {
			mode = (enum bulk_mode)k;
			found = 1;
		}
	}
	if (!found) {
		emu_why(why, whylen,
		        "mode: '%.64s' is not one of create, update, "
		        "updateIfMatchETag, delete",
		        m);
		return EMU_EINVAL;
	}
	items = json_object_get(op, list);
	if (!json_is_array(items) || json_array_size(items) == 0) {
		emu_why(why, whylen, "%s: required, an array of 1 to %d items", list, ENR_BULK_MAX);
		return EMU_EINVAL;
	}
	if (json_array_size(items) > ENR_BULK_MAX) {
		emu_why(why, whylen, "%s: %zu items, at most %d are allowed per operation", list,
		        json_array_size(items), ENR_BULK_MAX);
		return EMU_EINVAL;
	}
	res = json_object();
	errors = json_array();
	if (!res || !errors || json_object_set_new(res, "errors", errors) != 0) {
		json_decref(res);
		return EMU_ENOMEM;
	}
	json_array_foreach(items, i, item)
	{
		char reason[512];
		const char *id;
		json_t *err;

		rc = bulk_item(es, txn, kind, mode, item, i, list, reason, sizeof(reason));
		if (rc == EMU_OK)
			continue;
		if (fatal(rc))
			goto fail;
		id = json_string_value(json_object_get(item, field));
		err = json_pack("{s:s?,s:i,s:s}", field, id, "errorCode", enr_store_error_code(rc),
		                "errorStatus", reason);
		if (!err || json_array_append_new(errors, err) != 0) {
			rc = EMU_ENOMEM;
			goto fail;
		}
	}
	if (json_object_set_new(res, "isSuccessful", json_boolean(json_array_size(errors) == 0))) {
		rc = EMU_ENOMEM;
		goto fail;
	}
	*result = res;
	return EMU_OK;
fail:
	emu_why(why, whylen, "%s", emu_strerror(rc));
	json_decref(res);
	return rc;
}

struct groups_ctx {
	struct enr_list *l;
	size_t cap;
	int err;
};

static int groups_cb(const char *key, const void *val, size_t len, void *arg)
{
	struct groups_ctx *g = arg;
	struct enrollment *e = NULL;
	json_error_t jerr;
	json_t *doc;

	doc = json_loadb(val, len, 0, &jerr);
	if (!doc || enrollment_from_stored(ENR_GROUP, doc, &e) != EMU_OK) {
		log_error("enrollments", "skipping unreadable enrollment group '%s'", key);
		json_decref(doc);
		return 0;
	}
	json_decref(doc);
	if (g->l->count == g->cap) {
		size_t ncap = g->cap ? 2 * g->cap : 16;
		struct enrollment **n = realloc(g->l->items, ncap * sizeof(*n));
		if (!n) {
			enrollment_free(e);
			g->err = EMU_ENOMEM;
			return 1;
		}
		g->l->items = n;
		g->cap = ncap;
	}
	g->l->items[g->l->count++] = e;
	return 0;
}

int enr_store_load_groups(struct enr_store *es, struct store_txn *txn, struct enr_list **out)
{
	struct groups_ctx g = {0};
	int rc;

	*out = NULL;
	g.l = calloc(1, sizeof(*g.l));
	if (!g.l)
		return EMU_ENOMEM;
	rc = enr_store_generation(es, txn, &g.l->generation);
	if (rc == EMU_OK)
		rc = store_iter(txn, es->tables[ENR_GROUP], NULL, groups_cb, &g);
	if (rc == 0 && g.err)
		rc = g.err;
	if (rc != EMU_OK) {
		enr_list_free(g.l);
		return rc < 0 ? rc : EMU_ESTORE;
	}
	*out = g.l;
	return EMU_OK;
}

void enr_list_free(struct enr_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		enrollment_free(l->items[i]);
	free(l->items);
	free(l);
}
