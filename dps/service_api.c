/* service_api.c - the DPS service API: enrollments, enrollment groups and
 * registration states over HTTPS, authorized with the provisioningserviceowner
 * SharedAccessSignature. Paths are matched case-insensitively and any
 * api-version is accepted. */
#include "dps/dps_internal.h"

#include "err.h"
#include "etag.h"
#include "http.h"
#include "log.h"
#include "svcauth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *kind_noun(enum enr_kind kind)
{
	return kind == ENR_GROUP ? "enrollment group" : "enrollment";
}

/* Parses the body as JSON; answers 400 and returns NULL if it is not an object. */
static json_t *body_object(struct http_req *r, int allow_empty)
{
	size_t len;
	const char *body = http_req_body(r, &len);
	json_error_t err;
	json_t *j;

	if (len == 0 && allow_empty)
		return json_object();
	j = json_loadb(body, len, 0, &err);
	if (!json_is_object(j)) {
		http_respond_error(r, 400, ENR_ERRCODE_BAD_REQUEST,
				   "request body is not a JSON object%s%s", j ? "" : ": ",
				   j ? "" : (len ? err.text : "empty body"));
		json_decref(j);
		return NULL;
	}
	return j;
}

static void respond_store_error(struct http_req *r, int rc, enum enr_kind kind, const char *id,
				const char *why)
{
	int status;

	switch (rc) {
	case EMU_EINVAL: status = 400; break;
	case EMU_EEXIST: status = 409; break;
	case EMU_ENOTFOUND: status = 404; break;
	case EMU_EPRECOND: status = 412; break;
	default: status = 500; break;
	}
	if (why && *why)
		http_respond_error(r, status, enr_store_error_code(rc), "%s", why);
	else if (rc == EMU_ENOTFOUND)
		http_respond_error(r, 404, enr_store_error_code(rc), "%s '%s' not found",
				   kind_noun(kind), id);
	else
		http_respond_error(r, status, enr_store_error_code(rc), "%s '%s': %s",
				   kind_noun(kind), id, emu_strerror(rc));
}

static int begin(struct dps *d, struct http_req *r, int write, struct store_txn **txn)
{
	if (store_txn_begin(d->st, write, txn) == EMU_OK)
		return EMU_OK;
	http_respond_error(r, 500, ENR_ERRCODE_INTERNAL, "storage unavailable");
	return EMU_ESTORE;
}

static int commit(struct http_req *r, struct store_txn *txn)
{
	if (store_txn_commit(txn) == EMU_OK)
		return EMU_OK;
	http_respond_error(r, 500, ENR_ERRCODE_INTERNAL, "storage error: the change was not saved");
	return EMU_ESTORE;
}

static void put_enrollment(void *arg, struct http_req *r)
{
	struct dps_kind_route *kr = arg;
	struct dps *d = kr->d;
	const char *id = http_req_param(r, 0), *if_match = http_req_header(r, "If-Match");
	struct store_txn *txn = NULL;
	struct enrollment *e = NULL;
	json_t *body = NULL;
	char why[512] = "";
	int rc;

	if (svcauth_require(d->auth, r) != EMU_OK)
		return;
	if (enrollment_id_valid(id, why, sizeof(why)) != EMU_OK) {
		http_respond_error(r, 400, ENR_ERRCODE_BAD_REQUEST, "%s '%s' is invalid: %s",
				   enrollment_id_field(kr->kind), id, why);
		return;
	}
	if (!(body = body_object(r, 0)) || begin(d, r, 1, &txn) != EMU_OK)
		goto out;
	rc = enr_store_put(d->es, txn, kr->kind, id, body, if_match, 0, &e, why, sizeof(why));
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_store_error(r, rc, kr->kind, id, why);
		goto out;
	}
	if (commit(r, txn) != EMU_OK)
		goto out;
	http_resp_header(r, "ETag", e->etag);
	http_respond_json(r, 200, enrollment_to_api_json(e, 1));
out:
	json_decref(body);
	enrollment_free(e);
}

/* Loads the {id} of the route; answers 404/500 itself and returns NULL on failure. */
static struct enrollment *load(struct dps_kind_route *kr, struct http_req *r, const char *id)
{
	struct store_txn *txn = NULL;
	struct enrollment *e = NULL;
	int rc;

	if (begin(kr->d, r, 0, &txn) != EMU_OK)
		return NULL;
	rc = enr_store_get(kr->d->es, txn, kr->kind, id, &e);
	store_txn_abort(txn);
	if (rc != EMU_OK)
		respond_store_error(r, rc, kr->kind, id, NULL);
	return e;
}

static void get_enrollment(void *arg, struct http_req *r)
{
	struct dps_kind_route *kr = arg;
	struct enrollment *e;

	if (svcauth_require(kr->d->auth, r) != EMU_OK || !(e = load(kr, r, http_req_param(r, 0))))
		return;
	http_resp_header(r, "ETag", e->etag);
	http_respond_json(r, 200, enrollment_to_api_json(e, 0));
	enrollment_free(e);
}

static void get_attestation(void *arg, struct http_req *r)
{
	struct dps_kind_route *kr = arg;
	struct enrollment *e;

	if (svcauth_require(kr->d->auth, r) != EMU_OK || !(e = load(kr, r, http_req_param(r, 0))))
		return;
	http_respond_json(r, 200, enrollment_attestation_json(e));
	enrollment_free(e);
}

static void delete_enrollment(void *arg, struct http_req *r)
{
	struct dps_kind_route *kr = arg;
	const char *id = http_req_param(r, 0);
	struct store_txn *txn = NULL;
	int rc;

	if (svcauth_require(kr->d->auth, r) != EMU_OK || begin(kr->d, r, 1, &txn) != EMU_OK)
		return;
	rc = enr_store_delete(kr->d->es, txn, kr->kind, id, http_req_header(r, "If-Match"));
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_store_error(r, rc, kr->kind, id,
				    rc == EMU_EPRECOND ? "If-Match does not match the current etag"
						       : NULL);
		return;
	}
	if (commit(r, txn) != EMU_OK)
		return;
	http_respond(r, 204, NULL, NULL, 0);
}

/* True for "*" and "SELECT * FROM <table>" in any case and spacing. */
static int query_selects_all(const char *q, const char *table)
{
	char words[4][64];
	int n = 0;

	while (*q && n < 4) {
		size_t len;
		while (isspace((unsigned char)*q))
			q++;
		len = strcspn(q, " \t\r\n");
		if (!len)
			break;
		if (len >= sizeof(words[0]))
			return 0;
		memcpy(words[n], q, len);
		words[n++][len] = '\0';
		q += len;
	}
	while (isspace((unsigned char)*q))
		q++;
	if (*q)
		return 0;
	if (n == 1)
		return strcmp(words[0], "*") == 0;
	return n == 4 && strcasecmp(words[0], "select") == 0 && strcmp(words[1], "*") == 0 &&
	       strcasecmp(words[2], "from") == 0 && strcasecmp(words[3], table) == 0;
}

/* Reads x-ms-max-item-count; answers 400 and returns -1 when malformed. */
static long page_size(struct http_req *r)
{
	const char *v = http_req_header(r, "x-ms-max-item-count");
	char *end;
	long n;

	if (!v || !*v)
		return 0;
	n = strtol(v, &end, 10);
	if (*end || n < 0) {
		http_respond_error(r, 400, ENR_ERRCODE_BAD_REQUEST,
				   "x-ms-max-item-count '%s' is not a non-negative number", v);
		return -1;
	}
	return n;
}

static void respond_page(struct http_req *r, const char *item_type, json_t *items, char *next,
			 long max)
{
	char n[24];

	http_resp_header(r, "x-ms-item-type", item_type);
	/* Only when another page exists: an empty header makes some SDKs loop. */
	if (next)
		http_resp_header(r, "x-ms-continuation", next);
	if (max > 0) {
		snprintf(n, sizeof(n), "%ld", max);
		http_resp_header(r, "x-ms-max-item-count", n);
	}
	http_respond_json(r, 200, items);
	free(next);
}

static void query_enrollments(void *arg, struct http_req *r)
{
	struct dps_kind_route *kr = arg;
	const char *table = kr->kind == ENR_GROUP ? "enrollmentGroups" : "enrollments";
	struct store_txn *txn = NULL;
	json_t *body = NULL, *items = NULL;
	const char *q;
	char *next = NULL;
	long max;
	int rc;

	if (svcauth_require(kr->d->auth, r) != EMU_OK || !(body = body_object(r, 1)))
		goto out;
	q = json_string_value(json_object_get(body, "query"));
	if (q && !query_selects_all(q, table)) {
		http_respond_error(r, 400, ENR_ERRCODE_BAD_REQUEST, "query '%s' is not supported: "
				   "use \"*\" or \"SELECT * FROM %s\"", q, table);
		goto out;
	}
	if ((max = page_size(r)) < 0 || begin(kr->d, r, 0, &txn) != EMU_OK)
		goto out;
	rc = enr_store_query(kr->d->es, txn, kr->kind, http_req_header(r, "x-ms-continuation"),
			     (size_t)max, &items, &next);
	store_txn_abort(txn);
	if (rc == EMU_EINVAL) {
		http_respond_error(r, 400, ENR_ERRCODE_BAD_REQUEST, "x-ms-continuation is not a "
				   "token this service returned");
		goto out;
	}
	if (rc != EMU_OK) {
		http_respond_error(r, 500, ENR_ERRCODE_INTERNAL, "query failed: %s", emu_strerror(rc));
		goto out;
	}
	respond_page(r, kr->kind == ENR_GROUP ? "EnrollmentGroup" : "Enrollment", items, next, max);
out:
	json_decref(body);
}

static void bulk_enrollments(void *arg, struct http_req *r)
{
	struct dps_kind_route *kr = arg;
	struct store_txn *txn = NULL;
	json_t *body = NULL, *result = NULL;
	char why[512] = "";
	int rc;

	if (svcauth_require(kr->d->auth, r) != EMU_OK || !(body = body_object(r, 0)) ||
	    begin(kr->d, r, 1, &txn) != EMU_OK)
		goto out;
	rc = enr_store_bulk(kr->d->es, txn, kr->kind, body, &result, why, sizeof(why));
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		respond_store_error(r, rc, kr->kind, "bulk", why);
		goto out;
	}
	if (commit(r, txn) != EMU_OK) {
		json_decref(result);
		goto out;
	}
	log_info("dps", "bulk %s operation: %s", kind_noun(kr->kind),
		 json_is_true(json_object_get(result, "isSuccessful")) ? "all succeeded"
								      : "some items failed");
	http_respond_json(r, 200, result);
out:
	json_decref(body);
}

/* --- registration states ------------------------------------------------ */

/* The service view of a stored registration state: internal members removed. */
static json_t *registration_view(const json_t *stored)
{
	json_t *v = json_deep_copy(stored);
	const char *key;
	json_t *val;
	void *tmp;

	json_object_foreach_safe(v, tmp, key, val)
		if (key[0] == '_' || strcmp(key, "x509") == 0)
			json_object_del(v, key);
	return v;
}

static void get_registration(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	const char *id = http_req_param(r, 0);
	json_t *st;

	if (svcauth_require(d->auth, r) != EMU_OK)
		return;
	st = dps_registration_get(d, id);
	if (!st) {
		http_respond_error(r, 404, 404202, "registration '%s' not found", id);
		return;
	}
	http_resp_header(r, "ETag", json_string_value(json_object_get(st, "etag")));
	http_respond_json(r, 200, registration_view(st));
	json_decref(st);
}

static void delete_registration(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	const char *id = http_req_param(r, 0), *if_match = http_req_header(r, "If-Match");
	char key[ENR_ID_MAX + 1];
	struct store_txn *txn = NULL;
	json_t *st = NULL;

	if (svcauth_require(d->auth, r) != EMU_OK)
		return;
	if (enrollment_id_valid(id, NULL, 0) != EMU_OK) {
		http_respond_error(r, 404, 404202, "registration '%s' not found", id);
		return;
	}
	enrollment_id_key(id, key);
	if (begin(d, r, 1, &txn) != EMU_OK)
		return;
	if (store_get_json(txn, d->registrations, key, &st) != EMU_OK) {
		http_respond_error(r, 404, 404202, "registration '%s' not found", id);
	} else if (!etag_is_absent(if_match) &&
		   !etag_matches(json_string_value(json_object_get(st, "etag")), if_match)) {
		http_respond_error(r, 412, ENR_ERRCODE_PRECONDITION,
				   "If-Match does not match the registration's etag");
	} else if (store_del(txn, d->registrations, key) != EMU_OK) {
		http_respond_error(r, 500, ENR_ERRCODE_INTERNAL, "storage error");
	} else {
		if (commit(r, txn) == EMU_OK) {
			log_info("dps", "registration '%s' deleted", id);
			http_respond(r, 204, NULL, NULL, 0);
		}
		txn = NULL;
	}
	store_txn_abort(txn);
	json_decref(st);
}

struct reg_query {
	const char *group_key; /* lower-cased group id */
	size_t max;
	json_t *items;
	int more;              /* an item beyond the page exists */
	char last[ENR_ID_MAX + 1];
};

static int collect_registration(const char *key, const void *val, size_t len, void *arg)
{
	struct reg_query *q = arg;
	json_t *st = json_loadb(val, len, 0, NULL);
	const char *g = json_string_value(json_object_get(st, "_enrollmentGroupKey"));
	int stop = 0;

	if (g && strcmp(g, q->group_key) == 0) {
		if (json_array_size(q->items) == q->max) {
			q->more = 1;
			stop = 1;
		} else {
			json_array_append_new(q->items, registration_view(st));
			snprintf(q->last, sizeof(q->last), "%s", key);
		}
	}
	json_decref(st);
	return stop;
}

static void query_registrations(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	const char *gid = http_req_param(r, 0), *cont = http_req_header(r, "x-ms-continuation");
	char gkey[ENR_ID_MAX + 1];
	struct reg_query q = { .group_key = gkey };
	struct store_txn *txn = NULL;
	long max;
	int rc;

	if (svcauth_require(d->auth, r) != EMU_OK)
		return;
	if (enrollment_id_valid(gid, NULL, 0) != EMU_OK) {
		http_respond_error(r, 400, ENR_ERRCODE_BAD_REQUEST, "enrollment group id '%s' is "
				   "invalid", gid);
		return;
	}
	/* The body (a QuerySpecification some SDKs send) selects nothing more. */
	if ((max = page_size(r)) < 0 || begin(d, r, 0, &txn) != EMU_OK)
		return;
	enrollment_id_key(gid, gkey);
	q.max = max > 0 ? (size_t)max : ENR_QUERY_DEFAULT;
	q.items = json_array();
	rc = store_iter(txn, d->registrations, cont && *cont ? cont : NULL, collect_registration, &q);
	store_txn_abort(txn);
	if (rc < 0 || !q.items) {
		json_decref(q.items);
		http_respond_error(r, 500, ENR_ERRCODE_INTERNAL, "query failed");
		return;
	}
	respond_page(r, "DeviceRegistration", q.items, q.more ? strdup(q.last) : NULL, max);
}

int dps_service_api_init(struct dps *d, struct http_server *http)
{
	static const char *const bases[2] = { "/enrollments", "/enrollmentGroups" };
	char p[96];
	int rc = EMU_OK;

	for (int k = 0; k < 2 && rc == EMU_OK; k++) {
		const char *b = bases[k];
		struct dps_kind_route *kr = &d->kind_routes[k];
		kr->d = d;
		kr->kind = k == 0 ? ENR_INDIVIDUAL : ENR_GROUP;
		snprintf(p, sizeof(p), "%s/query", b);
		if ((rc = http_route(http, "POST", p, query_enrollments, kr)))
			break;
		if ((rc = http_route(http, "POST", b, bulk_enrollments, kr)))
			break;
		snprintf(p, sizeof(p), "%s/*", b);
		if ((rc = http_route(http, "PUT", p, put_enrollment, kr)) ||
		    (rc = http_route(http, "GET", p, get_enrollment, kr)) ||
		    (rc = http_route(http, "DELETE", p, delete_enrollment, kr)))
			break;
		snprintf(p, sizeof(p), "%s/*/attestationmechanism", b);
		rc = http_route(http, "POST", p, get_attestation, kr);
	}
	if (rc == EMU_OK && !(rc = http_route(http, "GET", "/registrations/*", get_registration, d)) &&
	    !(rc = http_route(http, "DELETE", "/registrations/*", delete_registration, d)))
		rc = http_route(http, "POST", "/registrations/*/query", query_registrations, d);
	return rc;
}
