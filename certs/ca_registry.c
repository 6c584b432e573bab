#include "certs/ca_registry.h"

#include "certs/x509.h"
#include "clock.h"
#include "err.h"
#include "etag.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "svcauth.h"
#include "textenc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 128

struct ca_registry {
	struct store *st;
	store_table table;
	const struct svcauth *auth;
};

/* ARM resource timestamps are RFC 1123 ("Sat, 22 Nov 2036 04:00:00 GMT"). */
static void rfc1123(time_t t, char out[40])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
			return 0;
	return 1;
}

static void name_key(const char *name, char out[NAME_MAX_LEN + 1])
{
	size_t i;
	for (i = 0; name[i] && i < NAME_MAX_LEN; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[i] = '\0';
}

/* If-Match on a certificate: none (or blank) imposes no condition. */
static int if_match_ok(const json_t *rec, const char *if_match)
{
	return etag_is_absent(if_match) ||
	       etag_matches(json_string_value(json_object_get(rec, "etag")), if_match);
}

/* The certificate text from {"certificate": ...} or {"properties": {"certificate": ...}}. */
static const char *body_certificate(json_t *body, int *is_verified)
{
	json_t *props = json_object_get(body, "properties");
	json_t *c = json_object_get(body, "certificate");

	if (!c && json_is_object(props))
		c = json_object_get(props, "certificate");
	if (is_verified) {
		json_t *v = json_object_get(body, "isVerified");
		if (!v && json_is_object(props))
			v = json_object_get(props, "isVerified");
		*is_verified = json_is_true(v);
	}
	return json_string_value(c);
}

/* Parses the request body as a JSON object; answers 400 and returns NULL otherwise. */
static json_t *request_json(struct http_req *r)
{
	char why[256];
	json_t *j = http_req_json_object(r, 0, why, sizeof(why));

	if (!j)
		http_respond_error(r, 400, 400004, "%s", why);
	return j;
}

/* Loads the stored record for the route's {name}; answers 404 when missing. */
static json_t *load_record(struct ca_registry *reg, struct http_req *r, const char *name)
{
	struct store_txn *txn = NULL;
	char key[NAME_MAX_LEN + 1];
	json_t *rec = NULL;
	int rc;

	name_key(name, key);
	if (store_txn_begin(reg->st, 0, &txn) != EMU_OK) {
		http_respond_error(r, 500, 500000, "storage unavailable");
		return NULL;
	}
	rc = store_get_json(txn, reg->table, key, &rec);
	store_txn_abort(txn);
	if (rc == EMU_ENOTFOUND)
		http_respond_error(r, 404, 404001, "certificate '%s' is not registered", name);
	else if (rc != EMU_OK)
		http_respond_error(r, 500, 500000, "storage error reading certificate '%s'", name);
	return rc == EMU_OK ? rec : NULL;
}

static int save_record(struct ca_registry *reg, const char *name, json_t *rec)
{
	struct store_txn *txn = NULL;
	char key[NAME_MAX_LEN + 1];
	int rc;

	name_key(name, key);
	if ((rc = store_txn_begin(reg->st, 1, &txn)) != EMU_OK)
		return rc;
	if ((rc = store_put_json(txn, reg->table, key, rec)) != EMU_OK) {
		store_txn_abort(txn);
		return rc;
	}
	return store_txn_commit(txn);
}

static void respond_record(struct http_req *r, json_t *rec)
{
	http_resp_header(r, "ETag", json_string_value(json_object_get(rec, "etag")));
	http_respond_json(r, 200, rec);
}

static void touch(json_t *rec)
{
	char now[40], etag[ETAG_UUID_LEN];
	json_t *props = json_object_get(rec, "properties");

	rfc1123(time(NULL), now);
	etag_new_uuid(etag);
	json_object_set_new(props, "updated", json_string(now));
	json_object_set_new(rec, "etag", json_string(etag));
}

static int auth_and_name(struct ca_registry *reg, struct http_req *r, const char **name)
{
	if (svcauth_require(reg->auth, r) != EMU_OK)
		return EMU_EAUTH;
	*name = http_req_param(r, 0);
	if (!name_valid(*name)) {
		http_respond_error(r, 400, 400004, "certificate name '%s' is invalid: use 1-%d "
				   "letters, digits, '-', '_' or '.'", *name, NAME_MAX_LEN);
		return EMU_EINVAL;
	}
	return EMU_OK;
}

static void put_certificate(void *arg, struct http_req *r)
{
	struct ca_registry *reg = arg;
	const char *name, *text, *if_match = http_req_header(r, "If-Match");
	json_t *body = NULL, *old = NULL, *rec = NULL;
	X509 *cert = NULL;
	char *pem = NULL, *subject = NULL, sha1[41], now[40], expiry[40], etag[ETAG_UUID_LEN];
	char key[NAME_MAX_LEN + 1];
	int verified = 0, rc;
	struct store_txn *txn = NULL;

	if (auth_and_name(reg, r, &name) != EMU_OK || !(body = request_json(r)))
		goto out;
	text = body_certificate(body, &verified);
	if (!text) {
		http_respond_error(r, 400, 400004, "body needs \"certificate\" (PEM or base64 DER)");
		goto out;
	}
	if (x509_parse_any(text, &cert) != EMU_OK) {
		http_respond_error(r, 400, 400004, "certificate '%s' is not a PEM or base64 DER "
				   "X.509 certificate", name);
		goto out;
	}
	if (!x509_is_ca(cert)) {
		http_respond_error(r, 400, 400004, "certificate '%s' is not a CA certificate "
				   "(basicConstraints CA:TRUE is missing)", name);
		goto out;
	}
	name_key(name, key);
	if (store_txn_begin(reg->st, 1, &txn) != EMU_OK) {
		http_respond_error(r, 500, 500000, "storage unavailable");
		goto out;
	}
	rc = store_get_json(txn, reg->table, key, &old);
	if (rc == EMU_ENOTFOUND && !etag_is_absent(if_match) && !etag_is_any(if_match)) {
		http_respond_error(r, 412, 412002, "If-Match given but certificate '%s' does not "
				   "exist", name);
		goto out;
	}
	if (old && !if_match_ok(old, if_match)) {
		http_respond_error(r, 412, 412002, "If-Match '%s' does not match the etag of "
				   "certificate '%s'", if_match, name);
		goto out;
	}
	pem = x509_to_pem(cert);
	subject = x509_subject_string(cert);
	x509_thumbprint_sha1(cert, sha1);
	rfc1123(time(NULL), now);
	rfc1123(x509_not_after(cert), expiry);
	etag_new_uuid(etag);
	rec = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:b, s:s, s:s, s:s, s:s}}",
			"id", "", "name", name, "type",
			"Microsoft.Devices/provisioningServices/certificates", "etag", etag,
			"properties", "subject", subject ? subject : "", "thumbprint", sha1,
			"isVerified", verified, "expiry", expiry, "created", now, "updated", now,
			"certificate", pem ? pem : "");
	if (!rec) {
		http_respond_error(r, 500, 500000, "out of memory");
		goto out;
	}
	{
		char id[NAME_MAX_LEN + 16];
		snprintf(id, sizeof(id), "/certificates/%s", name);
		json_object_set_new(rec, "id", json_string(id));
	}
	if (old) {
		json_t *created = json_object_get(json_object_get(old, "properties"), "created");
		if (json_is_string(created))
			json_object_set(json_object_get(rec, "properties"), "created", created);
	}
	if (store_put_json(txn, reg->table, key, rec) != EMU_OK || store_txn_commit(txn) != EMU_OK) {
		txn = NULL;
		http_respond_error(r, 500, 500000, "storage error saving certificate '%s'", name);
		goto out;
	}
	txn = NULL;
	log_info("ca", "certificate '%s' registered (%s, thumbprint %s)%s", name,
		 subject ? subject : "?", sha1, verified ? ", verified on upload" : "");
	respond_record(r, json_incref(rec));
out:
	store_txn_abort(txn);
	json_decref(body);
	json_decref(old);
	json_decref(rec);
	X509_free(cert);
	free(pem);
	free(subject);
}

static void get_certificate(void *arg, struct http_req *r)
{
	struct ca_registry *reg = arg;
	const char *name;
	json_t *rec;

	if (auth_and_name(reg, r, &name) != EMU_OK || !(rec = load_record(reg, r, name)))
		return;
	respond_record(r, rec);
}

static void delete_certificate(void *arg, struct http_req *r)
{
	struct ca_registry *reg = arg;
	const char *name, *if_match = http_req_header(r, "If-Match");
	char key[NAME_MAX_LEN + 1];
	struct store_txn *txn = NULL;
	json_t *rec = NULL;

	if (auth_and_name(reg, r, &name) != EMU_OK)
		return;
	name_key(name, key);
	if (store_txn_begin(reg->st, 1, &txn) != EMU_OK) {
		http_respond_error(r, 500, 500000, "storage unavailable");
		return;
	}
	if (store_get_json(txn, reg->table, key, &rec) != EMU_OK) {
		http_respond_error(r, 404, 404001, "certificate '%s' is not registered", name);
	} else if (!if_match_ok(rec, if_match)) {
		http_respond_error(r, 412, 412002, "If-Match '%s' does not match the etag of "
				   "certificate '%s'", if_match, name);
	} else if (store_del(txn, reg->table, key) != EMU_OK || store_txn_commit(txn) != EMU_OK) {
		txn = NULL;
		http_respond_error(r, 500, 500000, "storage error deleting certificate '%s'", name);
	} else {
		txn = NULL;
		log_info("ca", "certificate '%s' deleted", name);
		http_respond(r, 204, NULL, NULL, 0);
	}
	store_txn_abort(txn);
	json_decref(rec);
}

static int list_one(const char *key, const void *val, size_t len, void *arg)
{
	json_t *j = json_loadb(val, len, 0, NULL);
	(void)key;
	if (j)
		json_array_append_new(arg, j);
	return 0;
}

static void list_certificates(void *arg, struct http_req *r)
{
	struct ca_registry *reg = arg;
	struct store_txn *txn = NULL;
	json_t *arr;

	if (svcauth_require(reg->auth, r) != EMU_OK)
		return;
	arr = json_array();
	if (!arr || store_txn_begin(reg->st, 0, &txn) != EMU_OK) {
		json_decref(arr);
		http_respond_error(r, 500, 500000, "storage unavailable");
		return;
	}
	store_iter(txn, reg->table, NULL, list_one, arr);
	store_txn_abort(txn);
	http_respond_json(r, 200, json_pack("{s:o}", "value", arr));
}

static void generate_code(void *arg, struct http_req *r)
{
	struct ca_registry *reg = arg;
	const char *name, *if_match = http_req_header(r, "If-Match");
	unsigned char rnd[16];
	char code[33];
	json_t *rec;

	if (auth_and_name(reg, r, &name) != EMU_OK || !(rec = load_record(reg, r, name)))
		return;
	if (!if_match_ok(rec, if_match)) {
		http_respond_error(r, 412, 412002, "If-Match '%s' does not match the etag of "
				   "certificate '%s'", if_match, name);
		json_decref(rec);
		return;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), 1, code);
	json_object_set_new(json_object_get(rec, "properties"), "verificationCode", json_string(code));
	touch(rec);
	if (save_record(reg, name, rec) != EMU_OK) {
		http_respond_error(r, 500, 500000, "storage error saving certificate '%s'", name);
		json_decref(rec);
		return;
	}
	log_info("ca", "certificate '%s': verification code issued", name);
	respond_record(r, rec);
}

static void verify_certificate(void *arg, struct http_req *r)
{
	struct ca_registry *reg = arg;
	const char *name, *text, *code, *if_match = http_req_header(r, "If-Match");
	json_t *rec = NULL, *body = NULL, *props;
	X509 *ca = NULL, *proof = NULL;
	char cn[256];

	if (auth_and_name(reg, r, &name) != EMU_OK || !(rec = load_record(reg, r, name)))
		goto out;
	if (!(body = request_json(r)))
		goto out;
	props = json_object_get(rec, "properties");
	if (!if_match_ok(rec, if_match)) {
		http_respond_error(r, 412, 412002, "If-Match '%s' does not match the etag of "
				   "certificate '%s'", if_match, name);
		goto out;
	}
	code = json_string_value(json_object_get(props, "verificationCode"));
	if (!code) {
		http_respond_error(r, 400, 400004, "certificate '%s' has no verification code: call "
				   "generateVerificationCode first", name);
		goto out;
	}
	text = body_certificate(body, NULL);
	if (!text || x509_parse_any(text, &proof) != EMU_OK) {
		http_respond_error(r, 400, 400004, "body needs \"certificate\": the verification "
				   "certificate (PEM or base64 DER)");
		goto out;
	}
	if (x509_common_name(proof, cn, sizeof(cn)) != EMU_OK || strcmp(cn, code) != 0) {
		http_respond_error(r, 400, 400004, "verification certificate CN '%s' is not the "
				   "verification code '%s' of certificate '%s'", cn, code, name);
		goto out;
	}
	if (x509_parse_any(json_string_value(json_object_get(props, "certificate")), &ca) !=
		    EMU_OK ||
	    !x509_signed_by(proof, ca)) {
		http_respond_error(r, 400, 400004, "verification certificate is not signed by the "
				   "private key of certificate '%s'", name);
		goto out;
	}
	json_object_set_new(props, "isVerified", json_true());
	json_object_del(props, "verificationCode");
	touch(rec);
	if (save_record(reg, name, rec) != EMU_OK) {
		http_respond_error(r, 500, 500000, "storage error saving certificate '%s'", name);
		goto out;
	}
	log_info("ca", "certificate '%s' verified (proof of possession)", name);
	respond_record(r, json_incref(rec));
out:
	json_decref(rec);
	json_decref(body);
	X509_free(ca);
	X509_free(proof);
}

int ca_registry_new(struct store *st, struct http_server *http, const struct svcauth *auth,
		    struct ca_registry **out)
{
	struct ca_registry *reg = calloc(1, sizeof(*reg));
	int rc;

	*out = NULL;
	if (!reg)
		return EMU_ENOMEM;
	reg->st = st;
	reg->auth = auth;
	if ((rc = store_table_open(st, "certificates", &reg->table)) != EMU_OK)
		goto fail;
	if (http && ((rc = http_route(http, "GET", "/certificates", list_certificates, reg)) ||
		     (rc = http_route(http, "PUT", "/certificates/*", put_certificate, reg)) ||
		     (rc = http_route(http, "GET", "/certificates/*", get_certificate, reg)) ||
		     (rc = http_route(http, "DELETE", "/certificates/*", delete_certificate, reg)) ||
		     (rc = http_route(http, "POST", "/certificates/*/generateVerificationCode",
				      generate_code, reg)) ||
		     (rc = http_route(http, "POST", "/certificates/*/verify", verify_certificate,
				      reg))))
		goto fail;
	*out = reg;
	return EMU_OK;
fail:
	free(reg);
	return rc;
}

void ca_registry_free(struct ca_registry *reg)
{
	free(reg);
}

int ca_registry_find_verified(struct ca_registry *reg, const char *name, X509 **out, char *why,
			      size_t whylen)
{
	struct store_txn *txn = NULL;
	char key[NAME_MAX_LEN + 1];
	json_t *rec = NULL, *props;
	int rc;

	*out = NULL;
	name_key(name, key);
	if ((rc = store_txn_begin(reg->st, 0, &txn)) != EMU_OK)
		return rc;
	rc = store_get_json(txn, reg->table, key, &rec);
	store_txn_abort(txn);
	if (rc == EMU_ENOTFOUND) {
		snprintf(why, whylen, "CA reference '%s' is not a registered certificate", name);
		return rc;
	}
	if (rc != EMU_OK)
		return rc;
	props = json_object_get(rec, "properties");
	if (!json_is_true(json_object_get(props, "isVerified"))) {
		snprintf(why, whylen, "CA reference '%s' is registered but not verified (proof of "
			 "possession pending)", name);
		rc = EMU_EAUTH;
	} else {
		rc = x509_parse_any(json_string_value(json_object_get(props, "certificate")), out);
	}
	json_decref(rec);
	return rc;
}

static int collect_verified(const char *key, const void *val, size_t len, void *arg)
{
	json_t *rec = json_loadb(val, len, 0, NULL), *props = json_object_get(rec, "properties");
	X509 *x = NULL;
	(void)key;

	if (json_is_true(json_object_get(props, "isVerified")) &&
	    x509_parse_any(json_string_value(json_object_get(props, "certificate")), &x) == EMU_OK &&
	    !sk_X509_push(arg, x))
		X509_free(x);
	json_decref(rec);
	return 0;
}

int ca_registry_all_verified(struct ca_registry *reg, STACK_OF(X509) **out)
{
	struct store_txn *txn = NULL;
	int rc;

	*out = sk_X509_new_null();
	if (!*out)
		return EMU_ENOMEM;
	if ((rc = store_txn_begin(reg->st, 0, &txn)) != EMU_OK)
		return rc;
	rc = store_iter(txn, reg->table, NULL, collect_verified, *out);
	store_txn_abort(txn);
	return rc < 0 ? rc : EMU_OK;
}
