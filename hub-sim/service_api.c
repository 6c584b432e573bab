/* service_api.c - the hub's service REST API: device and module identities,
 * their twins, queries, statistics and the C2D queue purge, authorized with the iothubowner
 * SharedAccessSignature. Errors use the hub's envelope (errors.c). Every change
 * is committed before it is answered; any api-version is accepted and paths
 * are matched case-insensitively. */
#include "hub-sim/hub_internal.h"
#include "hub-sim/twin.h"

#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "textenc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_MAX        1000 /* GET /devices?top= */
#define PAGE_DEFAULT    100  /* POST /devices/query without x-ms-max-item-count */
#define PAGE_MAX        1000
#define QUERY_TEXT_MAX  4096
#define QUERY_CONDS_MAX 16
#define QUERY_PATH_MAX  256

/* Parses the body as a JSON object; answers 400 and returns NULL otherwise. */
static json_t *body_object(struct http_req *r, int allow_empty)
{
	char why[256];
	json_t *j = http_req_json_object(r, allow_empty, why, sizeof(why));

	if (!j)
		hub_respond_error(r, 400, "ArgumentInvalid", "%s", why);
	return j;
}

static int begin(struct hub *h, struct http_req *r, int write, struct store_txn **txn)
{
	if (store_txn_begin(h->st, write, txn) == EMU_OK)
		return EMU_OK;
	hub_respond_error(r, 500, "ServerError", "storage unavailable");
	return EMU_ESTORE;
}

static int commit(struct http_req *r, struct store_txn *txn)
{
	if (store_txn_commit(txn) == EMU_OK)
		return EMU_OK;
	hub_respond_error(r, 500, "ServerError", "storage error: the change was not saved");
	return EMU_ESTORE;
}

static void respond_rc(struct http_req *r, int rc, const char *id, const char *why);

/* Answers a module failure: the module's own codes for a missing or existing
 * module (the caller answers a missing device with respond_rc first). */
static void respond_module_rc(struct http_req *r, int rc, const char *device_id,
			      const char *module_id, const char *why)
{
	int has_why = why && *why;

	if (rc == EMU_EEXIST)
		hub_respond_error(r, 409, "ModuleAlreadyExistsOnDevice", "%s",
				  has_why ? why : "the module is already registered");
	else if (rc == EMU_ENOTFOUND)
		hub_respond_error(r, 404, "ModuleNotFound",
				  "Module '%s' is not registered on device '%s'.%s%s", module_id,
				  device_id, has_why ? " " : "", has_why ? why : "");
	else
		respond_rc(r, rc, device_id, why);
}

/* Answers a registry or twin failure; why (may be empty) is the detail. */
static void respond_rc(struct http_req *r, int rc, const char *id, const char *why)
{
	int has_why = why && *why;

	switch (rc) {
	case EMU_EINVAL:
	case EMU_ETOOBIG:
		hub_respond_error(r, 400, "ArgumentInvalid", "%s",
		                  has_why ? why : emu_strerror(rc));
		break;
	case EMU_EEXIST:
		hub_respond_error(r, 409, "DeviceAlreadyExists", "%s",
		                  has_why ? why : "the device is already registered");
		break;
	case EMU_ENOTFOUND:
		/* The SDKs map 404 to DeviceNotFound only for this exact code. */
		hub_respond_error(r, 404, "DeviceNotFound", "Device '%s' is not registered.%s%s",
		                  id, has_why ? " " : "", has_why ? why : "");
		break;
	case EMU_EPRECOND:
		hub_respond_error(r, 412, "PreconditionFailed", "%s",
		                  has_why ? why : "If-Match does not match the current etag");
		break;
	default:
		hub_respond_error(r, 500, "ServerError", "%s", emu_strerror(rc));
		break;
	}
}

static void set_etag_header(struct http_req *r, const char *etag)
{
	char quoted[128];

	if (!etag)
		return;
	snprintf(quoted, sizeof(quoted), "\"%s\"", etag);
	http_resp_header(r, "ETag", quoted);
}

/* --- devices -------------------------------------------------------------- */

static void put_device(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0);
	struct store_txn *txn = NULL;
	json_t *body = NULL, *rec = NULL, *view = NULL;
	char why[512] = "";
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || !(body = body_object(r, 0)) ||
	    begin(h, r, 1, &txn) != EMU_OK)
		goto out;
	rc = hub_registry_put(h, txn, id, body, http_req_header(r, "If-Match"), &rec, why,
	                      sizeof(why));
	if (rc == EMU_OK && !(view = hub_registry_view(h, txn, rec)))
		rc = EMU_ENOMEM;
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_rc(r, rc, id, why);
		goto out;
	}
	if (commit(r, txn) != EMU_OK)
		goto out;
	log_info(
	    "hub", "device '%s' written (etag %s, %s, %s)", id,
	    json_string_value(json_object_get(rec, "etag")),
	    json_string_value(json_object_get(rec, "status")),
	    json_string_value(json_object_get(json_object_get(rec, "authentication"), "type")));
	set_etag_header(r, json_string_value(json_object_get(rec, "etag")));
	http_respond_json(r, 200, view);
	view = NULL;
out:
	json_decref(body);
	json_decref(rec);
	json_decref(view);
}

static void get_device(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0);
	struct store_txn *txn = NULL;
	json_t *rec = NULL, *view = NULL;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 0, &txn) != EMU_OK)
		return;
	rc = hub_registry_get(h, txn, id, &rec);
	if (rc == EMU_OK && !(view = hub_registry_view(h, txn, rec)))
		rc = EMU_ENOMEM;
	store_txn_abort(txn);
	if (rc != EMU_OK) {
		respond_rc(r, rc, id, NULL);
	} else {
		set_etag_header(r, json_string_value(json_object_get(rec, "etag")));
		http_respond_json(r, 200, view);
	}
	json_decref(rec);
}

static void delete_device(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0);
	struct store_txn *txn = NULL;
	char why[512] = "";
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 1, &txn) != EMU_OK)
		return;
	rc = hub_registry_delete(h, txn, id, http_req_header(r, "If-Match"), why, sizeof(why));
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_rc(r, rc, id, why);
		return;
	}
	if (commit(r, txn) != EMU_OK)
		return;
	log_info("hub", "device '%s' deleted", id);
	http_respond(r, 204, NULL, NULL, 0);
}

/* DELETE /devices/{id}/commands: purges the device's C2D queue. */
static void purge_commands(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0);
	struct store_txn *txn = NULL;
	json_t *dev = NULL;
	size_t purged = 0;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 1, &txn) != EMU_OK)
		return;
	rc = hub_registry_get(h, txn, id, &dev);
	if (rc == EMU_OK)
		rc = hub_c2d_purge(h, txn, id, &purged);
	json_decref(dev);
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_rc(r, rc, id, NULL);
		return;
	}
	if (commit(r, txn) != EMU_OK)
		return;
	log_info("hub", "device '%s': C2D queue purged (%zu message(s))", id, purged);
	http_respond_json(r, 200,
	                  json_pack("{s:s, s:I}", "deviceId", id, "totalMessagesPurged",
	                            (json_int_t)purged));
}

/* --- modules --------------------------------------------------------------- */

/* Answers 404 DeviceNotFound (or the store error) unless device id is in txn. */
static int require_device(struct hub *h, struct http_req *r, struct store_txn *txn,
			  const char *id)
{
	json_t *dev = NULL;
	int rc = hub_registry_get(h, txn, id, &dev);

	json_decref(dev);
	if (rc != EMU_OK)
		respond_rc(r, rc, id, NULL);
	return rc;
}

static void put_module(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0), *mid = http_req_param(r, 1);
	struct store_txn *txn = NULL;
	json_t *body = NULL, *rec = NULL, *view = NULL;
	char why[512] = "";
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || !(body = body_object(r, 0)) ||
	    begin(h, r, 1, &txn) != EMU_OK)
		goto out;
	if (require_device(h, r, txn, id) != EMU_OK) {
		store_txn_abort(txn);
		goto out;
	}
	rc = hub_module_put(h, txn, id, mid, body, http_req_header(r, "If-Match"), &rec, why,
			    sizeof(why));
	if (rc == EMU_OK && !(view = hub_module_view(h, rec)))
		rc = EMU_ENOMEM;
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_module_rc(r, rc, id, mid, why);
		goto out;
	}
	if (commit(r, txn) != EMU_OK)
		goto out;
	log_info("hub", "module '%s' of device '%s' written (etag %s, %s)", mid, id,
		 json_string_value(json_object_get(rec, "etag")),
		 json_string_value(
		     json_object_get(json_object_get(rec, "authentication"), "type")));
	set_etag_header(r, json_string_value(json_object_get(rec, "etag")));
	http_respond_json(r, 200, view);
	view = NULL;
out:
	json_decref(body);
	json_decref(rec);
	json_decref(view);
}

static void get_module(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0), *mid = http_req_param(r, 1);
	struct store_txn *txn = NULL;
	json_t *rec = NULL, *view = NULL;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 0, &txn) != EMU_OK)
		return;
	if (require_device(h, r, txn, id) != EMU_OK) {
		store_txn_abort(txn);
		return;
	}
	rc = hub_module_get(h, txn, id, mid, &rec);
	store_txn_abort(txn);
	if (rc == EMU_OK && !(view = hub_module_view(h, rec)))
		rc = EMU_ENOMEM;
	if (rc != EMU_OK) {
		respond_module_rc(r, rc, id, mid, NULL);
	} else {
		set_etag_header(r, json_string_value(json_object_get(rec, "etag")));
		http_respond_json(r, 200, view);
	}
	json_decref(rec);
}

static void delete_module(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0), *mid = http_req_param(r, 1);
	struct store_txn *txn = NULL;
	char why[512] = "";
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 1, &txn) != EMU_OK)
		return;
	if (require_device(h, r, txn, id) != EMU_OK) {
		store_txn_abort(txn);
		return;
	}
	rc = hub_module_delete(h, txn, id, mid, http_req_header(r, "If-Match"), why,
			       sizeof(why));
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_module_rc(r, rc, id, mid, why);
		return;
	}
	if (commit(r, txn) != EMU_OK)
		return;
	log_info("hub", "module '%s' of device '%s' deleted", mid, id);
	http_respond(r, 204, NULL, NULL, 0);
}

struct module_list_ctx {
	struct hub *h;
	json_t *items;
};

static int list_module_one(const char *mid, const json_t *module, void *arg)
{
	struct module_list_ctx *c = arg;
	(void)mid;

	return json_array_append_new(c->items, hub_module_view(c->h, module)) ? EMU_ENOMEM : 0;
}

static void list_modules(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *id = http_req_param(r, 0);
	struct module_list_ctx c = {h, NULL};
	struct store_txn *txn = NULL;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK)
		return;
	if (!(c.items = json_array())) {
		hub_respond_error(r, 500, "ServerError", "out of memory");
		return;
	}
	if (begin(h, r, 0, &txn) != EMU_OK)
		goto out;
	if (require_device(h, r, txn, id) != EMU_OK) {
		store_txn_abort(txn);
		goto out;
	}
	rc = hub_module_foreach(h, txn, id, list_module_one, &c);
	store_txn_abort(txn);
	if (rc < 0) {
		respond_rc(r, rc, id, NULL);
		goto out;
	}
	http_respond_json(r, 200, c.items);
	c.items = NULL;
out:
	json_decref(c.items);
}

struct list_ctx {
	struct hub *h;
	struct store_txn *txn;
	json_t *items;
	size_t max;
};

static int list_one(const char *id, const json_t *device, void *arg)
{
	struct list_ctx *c = arg;

	if (json_array_append_new(c->items, hub_registry_view(c->h, c->txn, device)) != 0)
		return EMU_ENOMEM;
	return json_array_size(c->items) >= c->max;
}

static void list_devices(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *top = http_req_query(r, "top");
	struct list_ctx c = {h, NULL, NULL, LIST_MAX};
	char *end;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK)
		return;
	if (top && *top) {
		long n = strtol(top, &end, 10);
		if (*end || n < 1 || n > LIST_MAX) {
			hub_respond_error(r, 400, "ArgumentInvalid",
			                  "top '%s' must be a number from 1 "
			                  "to %d",
			                  top, LIST_MAX);
			return;
		}
		c.max = (size_t)n;
	}
	if (!(c.items = json_array())) {
		hub_respond_error(r, 500, "ServerError", "out of memory");
		return;
	}
	if (begin(h, r, 0, &c.txn) != EMU_OK)
		goto out;
	rc = hub_registry_foreach(h, c.txn, NULL, list_one, &c);
	store_txn_abort(c.txn);
	if (rc < 0) {
		respond_rc(r, rc, "", NULL);
		goto out;
	}
	http_respond_json(r, 200, c.items);
	c.items = NULL;
out:
	json_decref(c.items);
}

static void device_statistics(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	struct store_txn *txn = NULL;
	json_t *stats = NULL;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 0, &txn) != EMU_OK)
		return;
	rc = hub_registry_stats(h, txn, &stats);
	store_txn_abort(txn);
	if (rc != EMU_OK) {
		respond_rc(r, rc, "", NULL);
		return;
	}
	http_respond_json(r, 200, stats);
}

/* --- queries ---------------------------------------------------------------
 * SELECT * FROM devices [WHERE <path> = <literal> [AND ...]]: enough for the
 * SDKs' "list every twin" and simple filters. <path> is a dotted member path
 * of the twin (deviceId, status, tags.site, properties.reported.fw, ...);
 * <literal> is a 'string', a number, true, false or null; = != and <> compare. */

enum q_tok { Q_END, Q_WORD, Q_STAR, Q_EQ, Q_NE, Q_STRING, Q_NUMBER, Q_BAD };

struct q_lex {
	const char *p;
	enum q_tok kind;
	char text[QUERY_PATH_MAX];
};

struct q_cond {
	char path[QUERY_PATH_MAX];
	int negate;
	json_t *value;
};

struct q_filter {
	int n;
	struct q_cond c[QUERY_CONDS_MAX];
};

static int is_word_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '$' || ch == '.';
}

/* Reads the next token into l; text is bounded (Q_BAD when it does not fit). */
static enum q_tok q_next(struct q_lex *l)
{
	size_t n = 0;

	while (isspace((unsigned char)*l->p))
		l->p++;
	l->text[0] = '\0';
	if (!*l->p)
		return l->kind = Q_END;
	if (*l->p == '*') {
		l->p++;
		return l->kind = Q_STAR;
	}
	if (*l->p == '=') {
		l->p++;
		return l->kind = Q_EQ;
	}
	if (strncmp(l->p, "!=", 2) == 0 || strncmp(l->p, "<>", 2) == 0) {
		l->p += 2;
		return l->kind = Q_NE;
	}
	if (*l->p == '\'' || *l->p == '"') {
		char quote = *l->p++;
		for (;;) {
			if (!*l->p)
				return l->kind = Q_BAD;
			if (*l->p == quote) {
				if (l->p[1] != quote)
					break;
				l->p++; /* '' is a quote inside the string */
			}
			if (n + 1 >= sizeof(l->text))
				return l->kind = Q_BAD;
			l->text[n++] = *l->p++;
		}
		l->p++;
		l->text[n] = '\0';
		return l->kind = Q_STRING;
	}
	if (*l->p == '-' || isdigit((unsigned char)*l->p)) {
		while (*l->p == '-' || *l->p == '+' || *l->p == '.' ||
		       isalnum((unsigned char)*l->p)) {
			if (n + 1 >= sizeof(l->text))
				return l->kind = Q_BAD;
			l->text[n++] = *l->p++;
		}
		l->text[n] = '\0';
		return l->kind = Q_NUMBER;
	}
	if (!is_word_char((unsigned char)*l->p))
		return l->kind = Q_BAD;
	while (is_word_char((unsigned char)*l->p)) {
		if (n + 1 >= sizeof(l->text))
			return l->kind = Q_BAD;
		l->text[n++] = *l->p++;
	}
	l->text[n] = '\0';
	return l->kind = Q_WORD;
}

static int q_keyword(struct q_lex *l, const char *kw)
{
	return q_next(l) == Q_WORD && strcasecmp(l->text, kw) == 0;
}

static void q_filter_clear(struct q_filter *f)
{
	for (int i = 0; i < f->n; i++)
		json_decref(f->c[i].value);
	f->n = 0;
}

static json_t *q_literal(struct q_lex *l)
{
	char *end;

	switch (q_next(l)) {
	case Q_STRING:
		return json_string(l->text);
	case Q_NUMBER: {
		long long i = strtoll(l->text, &end, 10);
		double d;
		if (!*end)
			return json_integer(i);
		d = strtod(l->text, &end);
		return *end ? NULL : json_real(d);
	}
	case Q_WORD:
		if (strcasecmp(l->text, "true") == 0)
			return json_true();
		if (strcasecmp(l->text, "false") == 0)
			return json_false();
		if (strcasecmp(l->text, "null") == 0)
			return json_null();
		return NULL;
	default:
		return NULL;
	}
}

/* Parses q into f. Returns EMU_OK or EMU_EINVAL with the reason. */
static int q_parse(const char *q, struct q_filter *f, char *why, size_t whylen)
{
	struct q_lex l = {.p = q};

	f->n = 0;
	if (!q_keyword(&l, "select") || q_next(&l) != Q_STAR || !q_keyword(&l, "from") ||
	    !q_keyword(&l, "devices")) {
		snprintf(why, whylen,
		         "only \"SELECT * FROM devices [WHERE <path> = <value> "
		         "[AND ...]]\" is supported");
		return EMU_EINVAL;
	}
	if (q_next(&l) == Q_END)
		return EMU_OK;
	if (l.kind != Q_WORD || strcasecmp(l.text, "where") != 0) {
		snprintf(why, whylen, "expected WHERE or the end of the query after FROM devices");
		return EMU_EINVAL;
	}
	do {
		struct q_cond *c = &f->c[f->n];
		if (f->n == QUERY_CONDS_MAX) {
			snprintf(why, whylen, "at most %d conditions are supported",
			         QUERY_CONDS_MAX);
			goto bad;
		}
		if (q_next(&l) != Q_WORD) {
			snprintf(why, whylen, "expected a property path in the WHERE clause");
			goto bad;
		}
		memcpy(c->path, l.text, sizeof(c->path));
		q_next(&l);
		if (l.kind != Q_EQ && l.kind != Q_NE) {
			snprintf(why, whylen,
			         "only = and != comparisons are supported (after '%.100s')",
			         c->path);
			goto bad;
		}
		c->negate = l.kind == Q_NE;
		if (!(c->value = q_literal(&l))) {
			snprintf(why, whylen,
			         "expected a 'string', number, true, false or null after "
			         "'%.100s %s'",
			         c->path, c->negate ? "!=" : "=");
			goto bad;
		}
		f->n++;
	} while (q_keyword(&l, "and"));
	if (l.kind != Q_END) {
		snprintf(why, whylen, "only AND may join conditions; unexpected '%.64s'",
		         l.kind == Q_WORD ? l.text : "token");
		goto bad;
	}
	return EMU_OK;
bad:
	q_filter_clear(f);
	return EMU_EINVAL;
}

/* Member lookup: exact name first, then ASCII case-insensitively. */
static json_t *member(const json_t *obj, const char *name, size_t len)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return NULL;
	v = json_object_getn(obj, name, len);
	if (v)
		return v;
	json_object_foreach((json_t *)obj, key,
	                    v) if (strlen(key) == len && strncasecmp(key, name, len) == 0) return v;
	return NULL;
}

static int q_matches(const struct q_filter *f, const json_t *twin)
{
	for (int i = 0; i < f->n; i++) {
		const struct q_cond *c = &f->c[i];
		const json_t *v = twin;
		const char *p = c->path;
		int eq;
		while (v && *p) {
			size_t len = strcspn(p, ".");
			v = member(v, p, len);
			p += len;
			if (*p == '.')
				p++;
		}
		if (!v)
			return 0; /* an absent property compares as neither equal nor unequal */
		if (json_is_number(v) && json_is_number(c->value))
			eq = json_number_value(v) == json_number_value(c->value);
		else
			eq = json_equal((json_t *)v, c->value);
		if (eq == c->negate)
			return 0;
	}
	return 1;
}

/* Reads x-ms-max-item-count; answers 400 and returns 0 when malformed. */
static size_t page_size(struct http_req *r)
{
	const char *v = http_req_header(r, "x-ms-max-item-count");
	char *end;
	long n;

	if (!v || !*v)
		return PAGE_DEFAULT;
	n = strtol(v, &end, 10);
	if (*end || n < 1) {
		hub_respond_error(r, 400, "ArgumentInvalid",
		                  "x-ms-max-item-count '%s' is not a "
		                  "positive number",
		                  v);
		return 0;
	}
	return n > PAGE_MAX ? PAGE_MAX : (size_t)n;
}

struct query_ctx {
	struct hub *h;
	struct store_txn *txn;
	const struct q_filter *filter;
	size_t max;
	json_t *items;
	char last[HUB_DEVICE_ID_MAX + 1]; /* the id of the page's last item */
	int more;
};

static json_t *twin_rest_view(struct hub *h, struct store_txn *txn, const json_t *device);

static int query_one(const char *id, const json_t *device, void *arg)
{
	struct query_ctx *c = arg;
	json_t *twin = twin_rest_view(c->h, c->txn, device);

	if (!twin)
		return EMU_ENOMEM;
	if (!q_matches(c->filter, twin)) {
		json_decref(twin);
		return 0;
	}
	if (json_array_size(c->items) == c->max) {
		c->more = 1;
		json_decref(twin);
		return 1;
	}
	if (json_array_append_new(c->items, twin) != 0)
		return EMU_ENOMEM;
	snprintf(c->last, sizeof(c->last), "%s", id);
	return 0;
}

/* Decodes a continuation token (base64 of the last device id of the previous
 * page) into after. Returns EMU_OK or EMU_EINVAL. */
static int decode_continuation(const char *token, char after[HUB_DEVICE_ID_MAX + 1])
{
	unsigned char *raw = NULL;
	size_t len = 0;
	int rc = EMU_EINVAL;

	if (strlen(token) > 4 * ((HUB_DEVICE_ID_MAX + 2) / 3))
		return EMU_EINVAL;
	if (b64_decode(token, strlen(token), &raw, &len) != EMU_OK)
		return EMU_EINVAL;
	if (len > 0 && len <= HUB_DEVICE_ID_MAX) {
		memcpy(after, raw, len);
		after[len] = '\0';
		if (hub_device_id_valid(after, NULL, 0) == EMU_OK)
			rc = EMU_OK;
	}
	free(raw);
	return rc;
}

static void query_devices(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	struct q_filter f = {0};
	struct query_ctx c = {.h = h, .filter = &f};
	const char *q, *token = http_req_header(r, "x-ms-continuation");
	char after[HUB_DEVICE_ID_MAX + 1], why[512];
	json_t *body = NULL;
	char *next = NULL;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || !(body = body_object(r, 0)))
		goto out;
	q = json_string_value(json_object_get(body, "query"));
	if (!q || strlen(q) > QUERY_TEXT_MAX) {
		hub_respond_error(r, 400, "ArgumentInvalid",
		                  "the body needs \"query\": a string of "
		                  "at most %d characters",
		                  QUERY_TEXT_MAX);
		goto out;
	}
	if (q_parse(q, &f, why, sizeof(why)) != EMU_OK) {
		hub_respond_error(r, 400, "ArgumentInvalid", "query '%s': %s", q, why);
		goto out;
	}
	if (token && *token && decode_continuation(token, after) != EMU_OK) {
		hub_respond_error(r, 400, "ArgumentInvalid",
		                  "x-ms-continuation is not a token "
		                  "this hub returned");
		goto out;
	}
	if (!(c.max = page_size(r)))
		goto out;
	if (!(c.items = json_array())) {
		hub_respond_error(r, 500, "ServerError", "out of memory");
		goto out;
	}
	if (begin(h, r, 0, &c.txn) != EMU_OK)
		goto out;
	rc = hub_registry_foreach(h, c.txn, token && *token ? after : NULL, query_one, &c);
	store_txn_abort(c.txn);
	if (rc < 0) {
		respond_rc(r, rc, "", NULL);
		goto out;
	}
	http_resp_header(r, "x-ms-item-type", "twin");
	/* Only when another page exists: an empty header makes the SDKs loop. */
	if (c.more) {
		if (!(next = b64_encode(c.last, strlen(c.last)))) {
			hub_respond_error(r, 500, "ServerError", "out of memory");
			goto out;
		}
		http_resp_header(r, "x-ms-continuation", next);
	}
	http_respond_json(r, 200, c.items);
	c.items = NULL;
out:
	q_filter_clear(&f);
	json_decref(body);
	json_decref(c.items);
	free(next);
}

/* --- twins ----------------------------------------------------------------- */

/* Loads the stored twin of a registered device; a device stored without one
 * (older data) gets an empty twin. EMU_OK or a store/twin error. */
static int load_twin(struct store_txn *txn, struct hub *h, const char *id, json_t **out)
{
	char now[32];
	int rc = store_get_json(txn, h->twins, id, out);

	if (rc != EMU_ENOTFOUND)
		return rc;
	clock_iso8601_now(now);
	return twin_new(NULL, now, out, NULL, 0);
}

/* The REST twin: the stored twin with the fields of its identity's API view
 * (a device or a module view; what a module lacks takes twin.c's defaults).
 * Takes ident_view. New reference, or NULL. */
static json_t *identity_twin_view(json_t *ident_view, const json_t *twin)
{
	json_t *auth, *tp, *out;
	struct twin_identity ident;

	if (!ident_view)
		return NULL;
	auth = json_object_get(ident_view, "authentication");
	tp = json_object_get(auth, "x509Thumbprint");
	ident = (struct twin_identity){
	    .device_id = json_string_value(json_object_get(ident_view, "deviceId")),
	    .module_id = json_string_value(json_object_get(ident_view, "moduleId")),
	    .device_etag = json_string_value(json_object_get(ident_view, "etag")),
	    .status = json_string_value(json_object_get(ident_view, "status")),
	    .status_reason = json_string_value(json_object_get(ident_view, "statusReason")),
	    .status_update_time =
	        json_string_value(json_object_get(ident_view, "statusUpdatedTime")),
	    .connection_state = json_string_value(json_object_get(ident_view, "connectionState")),
	    .last_activity_time =
	        json_string_value(json_object_get(ident_view, "lastActivityTime")),
	    .c2d_message_count =
	        json_integer_value(json_object_get(ident_view, "cloudToDeviceMessageCount")),
	    .authentication_type = json_string_value(json_object_get(auth, "type")),
	    .primary_thumbprint = json_string_value(json_object_get(tp, "primaryThumbprint")),
	    .secondary_thumbprint = json_string_value(json_object_get(tp, "secondaryThumbprint")),
	    .iot_edge = json_is_true(
	        json_object_get(json_object_get(ident_view, "capabilities"), "iotEdge")),
	};
	out = twin_service_view(twin, &ident);
	json_decref(ident_view);
	return out;
}

/* The REST twin of a device, with live connection state and the queued C2D
 * count (in txn). New reference, or NULL. */
static json_t *twin_view_of(struct hub *h, struct store_txn *txn, const json_t *device,
                            const json_t *twin)
{
	return identity_twin_view(hub_registry_view(h, txn, device), twin);
}

static json_t *twin_rest_view(struct hub *h, struct store_txn *txn, const json_t *device)
{
	const char *id = json_string_value(json_object_get(device, "deviceId"));
	json_t *twin = NULL, *view;

	if (!id || load_twin(txn, h, id, &twin) != EMU_OK) {
		log_warn("hub", "twin of device '%s' is unreadable", id ? id : "?");
		return NULL;
	}
	view = twin_view_of(h, txn, device, twin);
	json_decref(twin);
	return view;
}

/* Answers with view (twin_view_of, stolen; NULL: 500) and twin's etag. */
static void respond_twin(struct http_req *r, const json_t *twin, json_t *view)
{
	char etag[TWIN_ETAG_LEN];

	if (!view) {
		hub_respond_error(r, 500, "ServerError", "the stored twin is malformed");
		return;
	}
	if (twin_etag(twin, etag) == EMU_OK)
		set_etag_header(r, etag);
	http_respond_json(r, 200, view);
}

/* The REST twin of a module, with its live connection state. New reference, or NULL. */
static json_t *module_twin_view_of(struct hub *h, const json_t *module, const json_t *twin)
{
	return identity_twin_view(hub_module_view(h, module), twin);
}

/* What a twin request names: the device, or (mid non-NULL) one of its modules. */
struct twin_target {
	const char *id, *mid;
	char key[HUB_IDENTITY_KEY_MAX + 1]; /* the twin's store key */
	json_t *rec;                        /* the device or module record */
};

/* Reads the target's record into t->rec; answers 404 (DeviceNotFound or
 * ModuleNotFound) or the store error otherwise. */
static int load_target(struct hub *h, struct http_req *r, struct store_txn *txn,
		       struct twin_target *t)
{
	int rc;

	if ((rc = require_device(h, r, txn, t->id)) != EMU_OK)
		return rc;
	if (t->mid) {
		rc = hub_module_get(h, txn, t->id, t->mid, &t->rec);
		if (rc != EMU_OK)
			respond_module_rc(r, rc, t->id, t->mid, NULL);
	} else {
		rc = hub_registry_get(h, txn, t->id, &t->rec);
		if (rc != EMU_OK)
			respond_rc(r, rc, t->id, NULL);
	}
	if (rc == EMU_OK)
		hub_identity_key(t->id, t->mid, t->key, NULL, 0); /* valid: the record exists */
	return rc;
}

static json_t *target_view(struct hub *h, struct store_txn *txn, const struct twin_target *t,
			   const json_t *twin)
{
	return t->mid ? module_twin_view_of(h, t->rec, twin) : twin_view_of(h, txn, t->rec, twin);
}

static void get_twin_of(struct hub *h, struct http_req *r, const char *mid)
{
	struct twin_target t = {http_req_param(r, 0), mid, "", NULL};
	struct store_txn *txn = NULL;
	json_t *twin = NULL, *view = NULL;
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || begin(h, r, 0, &txn) != EMU_OK)
		return;
	if (load_target(h, r, txn, &t) != EMU_OK) {
		store_txn_abort(txn);
		return;
	}
	rc = load_twin(txn, h, t.key, &twin);
	if (rc == EMU_OK)
		view = target_view(h, txn, &t, twin);
	store_txn_abort(txn);
	if (rc != EMU_OK)
		respond_rc(r, rc, t.id, NULL);
	else
		respond_twin(r, twin, view);
	json_decref(t.rec);
	json_decref(twin);
}

static void get_twin(void *arg, struct http_req *r)
{
	get_twin_of(arg, r, NULL);
}

static void get_module_twin(void *arg, struct http_req *r)
{
	get_twin_of(arg, r, http_req_param(r, 1));
}

/* Answers 400 unless the body's member (deviceId, moduleId) is absent, null or id. */
static int body_id_matches(struct http_req *r, const json_t *body, const char *member,
			   const char *id)
{
	json_t *v = json_object_get(body, member);

	if (!v || json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), id) == 0))
		return 1;
	hub_respond_error(r, 400, "ArgumentInvalid",
			  "%s in the body does not match '%s' in the path", member, id);
	return 0;
}

/* PATCH (merge) and PUT (replace) /twins/{id}[/modules/{mid}]: tags and desired
 * properties. */
static void update_twin(struct hub *h, struct http_req *r, const char *mid,
			enum twin_update_mode mode)
{
	const char *if_match = http_req_header(r, "If-Match");
	struct twin_target t = {http_req_param(r, 0), mid, "", NULL};
	struct store_txn *txn = NULL;
	json_t *body = NULL, *twin = NULL, *notify = NULL, *view = NULL;
	char why[512] = "", now[32];
	int rc;

	if (hub_require_auth(h, r) != EMU_OK || !(body = body_object(r, 0)))
		goto out;
	if (!body_id_matches(r, body, "deviceId", t.id) ||
	    (mid && !body_id_matches(r, body, "moduleId", mid)))
		goto out;
	if (begin(h, r, 1, &txn) != EMU_OK)
		goto out;
	if (load_target(h, r, txn, &t) != EMU_OK) {
		store_txn_abort(txn);
		goto out;
	}
	if ((rc = load_twin(txn, h, t.key, &twin)) != EMU_OK)
		goto fail;
	if (!twin_etag_matches(twin, if_match)) {
		snprintf(why, sizeof(why),
			 "If-Match %s does not match the etag of the twin of '%s'", if_match,
			 t.key);
		rc = EMU_EPRECOND;
		goto fail;
	}
	clock_iso8601_now(now);
	if ((rc = twin_service_update(twin, body, mode, now, &notify, why, sizeof(why))) !=
		EMU_OK ||
	    (rc = store_put_json(txn, h->twins, t.key, twin)) != EMU_OK)
		goto fail;
	view = target_view(h, txn, &t, twin);
	if (commit(r, txn) != EMU_OK)
		goto out;
	log_info("hub", "twin of '%s' %s (version %lld, desired $version %lld)", t.key,
		 mode == TWIN_UPDATE_PATCH ? "patched" : "replaced", (long long)twin_version(twin),
		 (long long)twin_desired_version(twin));
	/* Devices and modules hear of it only once it is stored. */
	if (notify)
		hub_conn_push_desired(h, t.id, mid, notify, twin_desired_version(twin));
	respond_twin(r, twin, view);
	view = NULL;
	goto out;
fail:
	store_txn_abort(txn);
	respond_rc(r, rc, t.id, why);
out:
	json_decref(body);
	json_decref(t.rec);
	json_decref(twin);
	json_decref(notify);
	json_decref(view);
}

static void patch_twin(void *arg, struct http_req *r)
{
	update_twin(arg, r, NULL, TWIN_UPDATE_PATCH);
}

static void replace_twin(void *arg, struct http_req *r)
{
	update_twin(arg, r, NULL, TWIN_UPDATE_REPLACE);
}

static void patch_module_twin(void *arg, struct http_req *r)
{
	update_twin(arg, r, http_req_param(r, 1), TWIN_UPDATE_PATCH);
}

static void replace_module_twin(void *arg, struct http_req *r)
{
	update_twin(arg, r, http_req_param(r, 1), TWIN_UPDATE_REPLACE);
}

int hub_service_api_init(struct hub *h, struct http_server *http)
{
	static const struct {
		const char *method, *pattern;
		http_handler fn;
	} routes[] = {
	    {"POST", "/devices/query", query_devices},
	    {"GET", "/devices", list_devices},
	    {"PUT", "/devices/*", put_device},
	    {"GET", "/devices/*", get_device},
	    {"DELETE", "/devices/*", delete_device},
	    {"DELETE", "/devices/*/commands", purge_commands},
	    {"GET", "/devices/*/modules", list_modules},
	    {"PUT", "/devices/*/modules/*", put_module},
	    {"GET", "/devices/*/modules/*", get_module},
	    {"DELETE", "/devices/*/modules/*", delete_module},
	    {"GET", "/statistics/devices", device_statistics},
	    {"GET", "/twins/*", get_twin},
	    {"PATCH", "/twins/*", patch_twin},
	    {"PUT", "/twins/*", replace_twin},
	    {"GET", "/twins/*/modules/*", get_module_twin},
	    {"PATCH", "/twins/*/modules/*", patch_module_twin},
	    {"PUT", "/twins/*/modules/*", replace_module_twin},
	};
	int rc;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if ((rc = http_route(http, routes[i].method, routes[i].pattern, routes[i].fn, h)))
			return rc;
	return EMU_OK;
}
