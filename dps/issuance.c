/* issuance.c - device certificates issued from the CSR in a register request
 * (the 2025-07-01-preview certificate-issuance contract).
 *
 * The enrollment names a credential policy (credentialPolicyName); the policy
 * gives the validity. The CSR (base64 DER PKCS#10, subject CN = registration
 * id) is checked, a certificate is signed by the issuing CA and every issued
 * certificate is recorded, so tests can list them:
 *   GET /_emulator/issuedCertificates[?registrationId=...]
 * Errors carry emulator-specific 4002xx codes (Azure has not published its own). */
#include "dps/dps_internal.h"

#include "buf.h"
#include "certs/issue.h"
#include "certs/x509.h"
#include "cfg.h"
#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "svcauth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_POLICY "default"
#define DEFAULT_VALIDITY (30 * 86400)

struct policy_parse {
	struct dps *d;
	int bad;
	char why[256];
};

/* "30d", "12h", "15m", "90s" or plain seconds; -1 when malformed. */
static int64_t parse_duration(const char *s)
{
	char *end;
	long long n;
	int64_t unit = 1;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || end == s || n <= 0)
		return -1;
	if (*end) {
		if (end[1])
			return -1;
		switch (tolower((unsigned char)*end)) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		default: return -1;
		}
	}
	return n > INT64_MAX / unit ? -1 : n * unit;
}

static void add_policy(const char *item, void *arg)
{
	struct policy_parse *pp = arg;
	struct dps *d = pp->d;
	const char *eq = strchr(item, '=');
	int64_t validity;
	size_t n;
	int i;

	if (pp->bad)
		return;
	validity = eq ? parse_duration(eq + 1) : -1;
	n = eq ? (size_t)(eq - item) : 0;
	if (!eq || n == 0 || n >= sizeof(d->policies[0].name) || validity < 0) {
		pp->bad = 1;
		snprintf(pp->why, sizeof(pp->why), "DPSEMU_CREDENTIAL_POLICIES: '%s' is not "
			 "name=validity (e.g. short=10m, long=90d)", item);
		return;
	}
	for (i = 0; i < d->npolicies; i++)
		if (strncasecmp(d->policies[i].name, item, n) == 0 && !d->policies[i].name[n])
			break;
	if (i == d->npolicies) {
		if (d->npolicies == DPS_MAX_POLICIES) {
			pp->bad = 1;
			snprintf(pp->why, sizeof(pp->why), "DPSEMU_CREDENTIAL_POLICIES: more than %d "
				 "policies", DPS_MAX_POLICIES);
			return;
		}
		d->npolicies++;
	}
	memcpy(d->policies[i].name, item, n);
	d->policies[i].name[n] = '\0';
	d->policies[i].validity = validity;
}

int dps_policy_known(const char *name, void *arg)
{
	return dps_policy_validity(arg, name) > 0;
}

int64_t dps_policy_validity(const struct dps *d, const char *name)
{
	for (int i = 0; i < d->npolicies; i++)
		if (strcasecmp(d->policies[i].name, name) == 0)
			return d->policies[i].validity;
	return -1;
}

/* Maps the library's refusal to our code. */
static int csr_error_code(enum issue_error e)
{
	switch (e) {
	case ISSUE_ERR_NOT_BASE64:
	case ISSUE_ERR_NOT_DER: return DPS_ERR_CSR_INVALID;
	case ISSUE_ERR_TOO_LARGE: return DPS_ERR_CSR_TOO_LARGE;
	case ISSUE_ERR_BAD_SIGNATURE: return DPS_ERR_CSR_SIGNATURE;
	case ISSUE_ERR_CN_MISMATCH:
	case ISSUE_ERR_CN_TOO_LONG: return DPS_ERR_CSR_CN;
	case ISSUE_ERR_UNSUPPORTED_KEY: return DPS_ERR_CSR_KEY;
	default: return 500000;
	}
}

struct serial_check {
	struct store_txn *txn;
	store_table table;
};

static int serial_used(const char *serial_hex, void *arg)
{
	struct serial_check *sc = arg;
	const void *v;
	size_t n;

	return store_get(sc->txn, sc->table, serial_hex, &v, &n) == EMU_OK;
}

int dps_issue_certificate(struct dps *d, const char *registration_id, const char *device_id,
			  const struct enrollment *e, const json_t *csr, json_t **chain_out,
			  json_t **info_out, int *code, char *why, size_t whylen)
{
	struct store_txn *txn = NULL;
	struct serial_check sc;
	struct issue_record rec;
	enum issue_error ierr = ISSUE_ERR_NONE;
	X509_REQ *req = NULL;
	X509 *leaf = NULL;
	json_t *chain = NULL, *record = NULL, *owner = NULL;
	char pubkey[65], reason[384], now[32];
	int64_t validity = dps_policy_validity(d, e->credential_policy);
	int rc = EMU_EINVAL;

	*chain_out = NULL;
	*info_out = NULL;
	*code = 400004;
	if (!json_is_string(csr)) {
		*code = DPS_ERR_CSR_INVALID;
		snprintf(why, whylen, "\"csr\" must be a string: base64 of the DER PKCS#10 request");
		return EMU_EINVAL;
	}
	if (validity <= 0) {
		*code = DPS_ERR_CSR_NO_POLICY;
		snprintf(why, whylen, "credential policy '%s' is not configured", e->credential_policy);
		return EMU_EINVAL;
	}
	if (issue_csr_parse(json_string_value(csr), json_string_length(csr), registration_id,
			    d->csr_keys, &req, &ierr, reason, sizeof(reason)) != EMU_OK) {
		*code = csr_error_code(ierr);
		snprintf(why, whylen, "%s", reason);
		return ierr == ISSUE_ERR_INTERNAL ? EMU_ECRYPTO : EMU_EINVAL;
	}
	if (issue_pubkey_sha256(X509_REQ_get0_pubkey(req), pubkey) != EMU_OK ||
	    store_txn_begin(d->st, 1, &txn) != EMU_OK) {
		*code = 500000;
		snprintf(why, whylen, "internal error");
		rc = EMU_ECRYPTO;
		goto out;
	}
	/* One key, one device: a key seen with another registration is refused. */
	if (store_get_json(txn, d->issued_keys, pubkey, &owner) == EMU_OK &&
	    strcasecmp(json_string_value(json_object_get(owner, "registrationId")),
		       registration_id) != 0) {
		*code = DPS_ERR_CSR_KEY_REUSED;
		snprintf(why, whylen, "the CSR's public key is already used by device '%s'",
			 json_string_value(json_object_get(owner, "registrationId")));
		goto out;
	}
	sc.txn = txn;
	sc.table = d->issued;
	/* CN = the device id the hub will check (the registration id, unless an
	 * individual enrollment names another device id). */
	if ((rc = issue_certificate(d->issuer, req, device_id, validity, serial_used, &sc,
				    &leaf)) != EMU_OK ||
	    (rc = issue_record_fill(leaf, &rec)) != EMU_OK || !(chain = issue_chain_json(d->issuer, leaf))) {
		*code = 500000;
		snprintf(why, whylen, "signing the certificate failed");
		rc = rc ? rc : EMU_ENOMEM;
		goto out;
	}
	clock_iso8601_now(now);
	record = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "serialNumber",
			   rec.serial, "registrationId", registration_id, "deviceId", device_id,
			   e->kind == ENR_GROUP ? "enrollmentGroupId" : "enrollmentId", e->id,
			   "credentialPolicyName", e->credential_policy, "sha1Thumbprint", rec.sha1,
			   "sha256Thumbprint", rec.sha256, "notBeforeUtc", rec.not_before,
			   "notAfterUtc", rec.not_after, "publicKeySha256", pubkey, "issuedUtc", now);
	json_decref(owner);
	owner = json_pack("{s:s}", "registrationId", registration_id);
	if (!record || !owner || store_put_json(txn, d->issued, rec.serial, record) != EMU_OK ||
	    store_put_json(txn, d->issued_keys, pubkey, owner) != EMU_OK) {
		*code = 500000;
		snprintf(why, whylen, "storage error");
		rc = EMU_ESTORE;
		goto out;
	}
	/* Recorded before anyone can see the certificate. */
	rc = store_txn_commit(txn);
	txn = NULL;
	if (rc != EMU_OK) {
		*code = 500000;
		snprintf(why, whylen, "storage error");
		goto out;
	}
	log_info("dps", "registration '%s': issued certificate %s (policy '%s', until %s)",
		 registration_id, rec.serial, e->credential_policy, rec.not_after);
	*info_out = x509_info_json(leaf);
	*chain_out = chain;
	chain = NULL;
out:
	store_txn_abort(txn);
	json_decref(chain);
	json_decref(record);
	json_decref(owner);
	X509_REQ_free(req);
	X509_free(leaf);
	return rc;
}

struct list {
	const char *regid;
	json_t *items;
};

static int list_one(const char *key, const void *val, size_t len, void *arg)
{
	struct list *l = arg;
	json_t *rec = json_loadb(val, len, 0, NULL);
	(void)key;

	if (rec && (!l->regid || strcasecmp(json_string_value(json_object_get(rec, "registrationId")),
					     l->regid) == 0))
		json_array_append(l->items, rec);
	json_decref(rec);
	return 0;
}

static void list_issued(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	struct list l = { http_req_query(r, "registrationId"), json_array() };
	struct store_txn *txn = NULL;

	if (svcauth_require(d->auth, r) != EMU_OK) {
		json_decref(l.items);
		return;
	}
	if (!l.items || store_txn_begin(d->st, 0, &txn) != EMU_OK) {
		json_decref(l.items);
		http_respond_error(r, 500, 500000, "storage unavailable");
		return;
	}
	store_iter(txn, d->issued, NULL, list_one, &l);
	store_txn_abort(txn);
	http_respond_json(r, 200, json_pack("{s:o}", "value", l.items));
}

/* The chain devices' issued certificates lead to: the issuing CA, then the
 * root, as PEM (the same as the data dir's device-ca-chain.pem). */
static void get_issuing_chain(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	STACK_OF(X509) *chain = issue_ca_chain(d->issuer);
	struct buf pem;

	if (svcauth_require(d->auth, r) != EMU_OK)
		return;
	buf_init(&pem, 0);
	for (int i = 0; chain && i < sk_X509_num(chain); i++) {
		char *one = x509_to_pem(sk_X509_value(chain, i));
		if (!one || buf_append_str(&pem, one) != EMU_OK) {
			free(one);
			buf_free(&pem);
			http_respond_error(r, 500, 500000, "out of memory");
			return;
		}
		free(one);
	}
	http_respond(r, 200, "application/x-pem-file", pem.data ? (char *)pem.data : "", pem.len);
	buf_free(&pem);
}

int dps_issuance_init(struct dps *d, struct http_server *http, char *why, size_t whylen)
{
	struct policy_parse pp = { .d = d };
	int rc;

	snprintf(d->policies[0].name, sizeof(d->policies[0].name), DEFAULT_POLICY);
	d->policies[0].validity = DEFAULT_VALIDITY;
	d->npolicies = 1;
	cfg_list_each(d->cfg->credential_policies, add_policy, &pp);
	if (pp.bad) {
		snprintf(why, whylen, "%s", pp.why);
		return EMU_EINVAL;
	}
	if (strcmp(d->cfg->csr_keys, "strict") == 0) {
		d->csr_keys = ISSUE_KEYS_STRICT;
	} else if (strcmp(d->cfg->csr_keys, "default") == 0) {
		d->csr_keys = ISSUE_KEYS_DEFAULT;
	} else {
		snprintf(why, whylen, "DPSEMU_CSR_KEYS: '%s' is not default or strict",
			 d->cfg->csr_keys);
		return EMU_EINVAL;
	}
	if ((rc = store_table_open(d->st, "issuedCertificates", &d->issued)) ||
	    (rc = store_table_open(d->st, "issuedKeys", &d->issued_keys)))
		return rc;
	if ((rc = http_route(http, "GET", "/_emulator/issuedCertificates", list_issued, d)))
		return rc;
	return http_route(http, "GET", "/_emulator/issuingCaChain", get_issuing_chain, d);
}
