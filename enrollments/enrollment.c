#include "enrollments/enrollment.h"

#include "certs/x509.h"
#include "clock.h"
#include "err.h"
#include "etag.h"
#include "log.h"
#include "textenc.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bounds on what a document may carry; the HTTP layer bounds the body as a whole. */
#define MAX_NAME      256   /* hub names, policy names, CA reference names */
#define MAX_CERT_TEXT 65536 /* one certificate as PEM or base64 */
#define MAX_TPM_KEY   8192  /* base64 of a TPM public key */
#define MAX_HUBS      64
#define SYM_KEY_GEN   64 /* bytes of a generated symmetric key */
#define SYM_KEY_MIN   16
#define SYM_KEY_MAX   64

struct pctx {
	int stored; /* parsing a stored document rather than a request body */
	const struct enr_validate_opts *opts;
	char *why;
	size_t whylen;
};

static int fail(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first reason and returns EMU_EINVAL. */
static int fail(struct pctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->why && c->whylen) {
		va_start(ap, fmt);
		vsnprintf(c->why, c->whylen, fmt, ap);
		va_end(ap);
	}
	return EMU_EINVAL;
}

static int is_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

int enrollment_id_valid(const char *id, char *why, size_t whylen)
{
	size_t n, i;
	unsigned char last;

	if (!id) {
		if (why && whylen)
			snprintf(why, whylen, "missing");
		return EMU_EINVAL;
	}
	n = strnlen(id, ENR_ID_MAX + 1);
	if (n == 0 || n > ENR_ID_MAX) {
		if (why && whylen)
			snprintf(why, whylen, "must be 1 to %d characters", ENR_ID_MAX);
		return EMU_EINVAL;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];
		if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == ':')
			continue;
		if (why && whylen) {
			if (ch >= 0x20 && ch < 0x7f)
				snprintf(why, whylen,
				         "character '%c' is not allowed (letters, digits, "
				         "'-', '.', '_' and ':' are)",
				         ch);
			else
				snprintf(why, whylen,
				         "character 0x%02x is not allowed (letters, "
				         "digits, '-', '.', '_' and ':' are)",
				         ch);
		}
		return EMU_EINVAL;
	}
	last = (unsigned char)id[n - 1];
	if (!is_alnum(last) && last != '-') {
		if (why && whylen)
			snprintf(why, whylen, "must end with a letter, a digit or '-'");
		return EMU_EINVAL;
	}
	return EMU_OK;
}

void enrollment_id_key(const char *id, char out[ENR_ID_MAX + 1])
{
	size_t i;

	for (i = 0; i < ENR_ID_MAX && id[i]; i++) {
		char ch = id[i];
		out[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
	}
	out[i] = '\0';
}

const char *enrollment_id_field(enum enr_kind kind)
{
	return kind == ENR_GROUP ? "enrollmentGroupId" : "registrationId";
}

/* IoT Hub device ID rules: up to 128 ASCII letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ' */
static int device_id_valid(const char *id)
{
	size_t n = strnlen(id, ENR_ID_MAX + 1);

	if (n == 0 || n > ENR_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];
		if (!is_alnum(ch) && !strchr("-.+%_#*?!(),:=@$'", ch))
			return 0;
	}
	return 1;
}

/* Reads an optional string member: absent or null leaves *out NULL. */
static int opt_string(struct pctx *c, const json_t *obj, const char *key, const char *field,
                      size_t maxlen, const char **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return EMU_OK;
	if (!json_is_string(v))
		return fail(c, "%s: must be a string", field);
	if (json_string_length(v) > maxlen)
		return fail(c, "%s: longer than %zu characters", field, maxlen);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(c, "%s: contains a NUL character", field);
	*out = json_string_value(v);
	return EMU_OK;
}

/* Reads an optional object member: absent or null leaves *out NULL. */
static int opt_object(struct pctx *c, const json_t *obj, const char *key, const char *field,
                      const json_t **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return EMU_OK;
	if (!json_is_object(v))
		return fail(c, "%s: must be an object", field);
	*out = v;
	return EMU_OK;
}

static int opt_bool(struct pctx *c, const json_t *obj, const char *key, const char *field, int def,
                    int *out)
{
	const json_t *v = json_object_get(obj, key);

	*out = def;
	if (!v || json_is_null(v))
		return EMU_OK;
	if (!json_is_boolean(v))
		return fail(c, "%s: must be true or false", field);
	*out = json_is_true(v);
	return EMU_OK;
}

static int present(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return v && !json_is_null(v);
}

/* Like present, but an object whose members are all null counts as absent: some
 * service clients serialise unused alternatives as {"primary": null, ...}. */
static int in_use(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key), *m;
	const char *k;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return 1;
	json_object_foreach((json_t *)v, k, m)
	{
		if (!json_is_null(m))
			return 1;
	}
	return 0;
}

/* json_object_set_new that reports allocation failure as EMU_ENOMEM. */
static int put(json_t *obj, const char *key, json_t *v)
{
	if (!v)
		return EMU_ENOMEM;
	return json_object_set_new(obj, key, v) == 0 ? EMU_OK : EMU_ENOMEM;
}

static int put_str(json_t *obj, const char *key, const char *s)
{
	return put(obj, key, json_string(s));
}

/* ---- attestation ---- */

/* Parses {"certificate": "..."} into cert and its stored form {"certificate": PEM}. */
static int parse_cert_entry(struct pctx *c, const json_t *entry, const char *field,
                            STACK_OF(X509) *certs, json_t *dst_pair, const char *slot)
{
	const char *text;
	X509 *x = NULL;
	char *pem = NULL;
	json_t *o = NULL;
	int rc;

	if (!json_is_object(entry))
		return fail(c, "%s.%s: must be an object with a certificate", field, slot);
	rc = opt_string(c, entry, "certificate", "certificate", MAX_CERT_TEXT, &text);
	if (rc != EMU_OK)
		return fail(c, "%s.%s.certificate: must be a string of at most %d characters",
		            field, slot, MAX_CERT_TEXT);
	if (!text || !*text)
		return fail(c, "%s.%s.certificate: required", field, slot);
	if (x509_parse_any(text, &x) != EMU_OK)
		return fail(c, "%s.%s.certificate: not a PEM or base64 DER certificate", field,
		            slot);
	rc = EMU_ENOMEM;
	pem = x509_to_pem(x);
	if (!pem)
		goto out;
	o = json_object();
	if (!o || put_str(o, "certificate", pem) != EMU_OK)
		goto out;
	if (!sk_X509_push(certs, x))
		goto out;
	x = NULL;
	rc = put(dst_pair, slot, o);
	o = NULL;
out:
	X509_free(x);
	json_decref(o);
	free(pem);
	return rc;
}

/* {"primary": {...}, "secondary": {...}} of client or signing certificates. */
static int parse_cert_pair(struct pctx *c, struct enrollment *e, const json_t *pair,
                           const char *field, json_t *dst_x509, const char *name)
{
	const json_t *prim, *sec;
	json_t *dst = NULL;
	int rc;

	if (!json_is_object(pair))
		return fail(c, "%s: must be an object", field);
	prim = json_object_get(pair, "primary");
	sec = json_object_get(pair, "secondary");
	if (!prim || json_is_null(prim))
		return fail(c, "%s.primary: required", field);
	e->certs = sk_X509_new_null();
	dst = json_object();
	if (!e->certs || !dst) {
		json_decref(dst);
		return EMU_ENOMEM;
	}
	rc = parse_cert_entry(c, prim, field, e->certs, dst, "primary");
	if (rc == EMU_OK && sec && !json_is_null(sec))
		rc = parse_cert_entry(c, sec, field, e->certs, dst, "secondary");
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(dst_x509, name, dst);
}

static int parse_ca_refs(struct pctx *c, struct enrollment *e, const json_t *refs, json_t *dst_x509)
{
	static const char *slots[2] = {"primary", "secondary"};
	json_t *dst;
	int rc = EMU_OK;

	if (!json_is_object(refs))
		return fail(c, "attestation.x509.caReferences: must be an object");
	dst = json_object();
	if (!dst)
		return EMU_ENOMEM;
	for (int i = 0; i < 2 && rc == EMU_OK; i++) {
		char field[64];
		const char *name;

		snprintf(field, sizeof(field), "attestation.x509.caReferences.%s", slots[i]);
		rc = opt_string(c, refs, slots[i], field, MAX_NAME, &name);
		if (rc != EMU_OK)
			break;
		if (!name || !*name) {
			if (i == 0)
				rc = fail(c, "%s: required", field);
			continue;
		}
		e->ca_refs[i] = strdup(name);
		if (!e->ca_refs[i])
			rc = EMU_ENOMEM;
		else
			rc = put_str(dst, slots[i], name);
	}
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(dst_x509, "caReferences", dst);
}

static int parse_x509(struct pctx *c, struct enrollment *e, const json_t *x, json_t *dst_att)
{
	const json_t *cc, *sc, *cr;
	json_t *dst;
	int rc;

	if (!x || json_is_null(x))
		return fail(c, "attestation.x509: required when attestation.type is x509");
	if (!json_is_object(x))
		return fail(c, "attestation.x509: must be an object");
	/* The member an enrollment kind requires is taken as given (so that {} gets a
	 * precise error); the alternatives count only when they carry something. */
	if (e->kind == ENR_INDIVIDUAL) {
		cc = present(x, "clientCertificates") ? json_object_get(x, "clientCertificates")
		                                      : NULL;
		sc = in_use(x, "signingCertificates") ? json_object_get(x, "signingCertificates")
		                                      : NULL;
		cr = in_use(x, "caReferences") ? json_object_get(x, "caReferences") : NULL;
	} else {
		cc = in_use(x, "clientCertificates") ? json_object_get(x, "clientCertificates")
		                                     : NULL;
		sc = present(x, "signingCertificates") ? json_object_get(x, "signingCertificates")
		                                       : NULL;
		cr = present(x, "caReferences") ? json_object_get(x, "caReferences") : NULL;
		if (sc && cr && !in_use(x, "signingCertificates"))
			sc = NULL;
		else if (sc && cr && !in_use(x, "caReferences"))
			cr = NULL;
	}
	if (e->kind == ENR_INDIVIDUAL) {
		if (sc)
			return fail(c, "attestation.x509.signingCertificates: not allowed in an "
			               "individual enrollment (use clientCertificates)");
		if (cr)
			return fail(c, "attestation.x509.caReferences: not allowed in an "
			               "individual enrollment (use clientCertificates)");
		if (!cc)
			return fail(c, "attestation.x509.clientCertificates: required");
	} else {
		if (cc)
			return fail(c,
			            "attestation.x509.clientCertificates: not allowed in an "
			            "enrollment group (use signingCertificates or caReferences)");
		if (sc && cr)
			return fail(c, "attestation.x509: signingCertificates and caReferences "
			               "cannot both be set");
		if (!sc && !cr)
			return fail(c, "attestation.x509: signingCertificates or caReferences is "
			               "required");
	}
	dst = json_object();
	if (!dst)
		return EMU_ENOMEM;
	if (cc)
		rc = parse_cert_pair(c, e, cc, "attestation.x509.clientCertificates", dst,
		                     "clientCertificates");
	else if (sc)
		rc = parse_cert_pair(c, e, sc, "attestation.x509.signingCertificates", dst,
		                     "signingCertificates");
	else
		rc = parse_ca_refs(c, e, cr, dst);
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(dst_att, "x509", dst);
}

/* Checks that s is standard base64 of min..max bytes. */
static int b64_len_ok(const char *s, size_t min, size_t max)
{
	unsigned char *bin = NULL;
	size_t n = 0, slen = strlen(s);
	int ok;

	if (slen > 4 * ((max + 2) / 3))
		return 0;
	if (b64_decode(s, slen, &bin, &n) != EMU_OK)
		return 0;
	ok = n >= min && n <= max;
	free(bin);
	return ok;
}

static int new_sym_key(char **out)
{
	unsigned char b[SYM_KEY_GEN];

	if (rand_bytes(b, sizeof(b)) != EMU_OK)
		return EMU_ECRYPTO;
	*out = b64_encode(b, sizeof(b));
	OPENSSL_cleanse(b, sizeof(b));
	return *out ? EMU_OK : EMU_ENOMEM;
}

static int parse_symkey(struct pctx *c, struct enrollment *e, const json_t *sk, json_t *dst_att)
{
	static const char *names[2] = {"primaryKey", "secondaryKey"};
	json_t *dst;
	int rc = EMU_OK;

	if (sk && !json_is_null(sk) && !json_is_object(sk))
		return fail(c, "attestation.symmetricKey: must be an object");
	dst = json_object();
	if (!dst)
		return EMU_ENOMEM;
	for (int i = 0; i < 2 && rc == EMU_OK; i++) {
		char field[64];
		const char *key = NULL;

		snprintf(field, sizeof(field), "attestation.symmetricKey.%s", names[i]);
		if (json_is_object(sk))
			rc = opt_string(c, sk, names[i], field, 4096, &key);
		if (rc != EMU_OK)
			break;
		if (key && *key) {
			if (!b64_len_ok(key, SYM_KEY_MIN, SYM_KEY_MAX)) {
				rc = fail(c, "%s: must be base64 of %d to %d bytes", field,
				          SYM_KEY_MIN, SYM_KEY_MAX);
				break;
			}
			e->sym_keys[i] = strdup(key);
			if (!e->sym_keys[i])
				rc = EMU_ENOMEM;
		} else if (c->stored) {
			rc = fail(c, "%s: missing in the stored document", field);
		} else {
			rc = new_sym_key(&e->sym_keys[i]);
		}
		if (rc == EMU_OK)
			rc = put_str(dst, names[i], e->sym_keys[i]);
	}
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(dst_att, "symmetricKey", dst);
}

static int parse_tpm(struct pctx *c, struct enrollment *e, const json_t *t, json_t *dst_att)
{
	const char *ek, *srk;
	json_t *dst;
	int rc;

	if (e->kind == ENR_GROUP)
		return fail(c, "attestation.type: tpm is not supported for enrollment groups");
	if (!t || json_is_null(t))
		return fail(c, "attestation.tpm: required when attestation.type is tpm");
	if (!json_is_object(t))
		return fail(c, "attestation.tpm: must be an object");
	rc = opt_string(c, t, "endorsementKey", "attestation.tpm.endorsementKey", MAX_TPM_KEY, &ek);
	if (rc != EMU_OK)
		return rc;
	if (!ek || !*ek)
		return fail(c, "attestation.tpm.endorsementKey: required");
	if (!b64_len_ok(ek, 1, MAX_TPM_KEY))
		return fail(c, "attestation.tpm.endorsementKey: not valid base64");
	rc =
	    opt_string(c, t, "storageRootKey", "attestation.tpm.storageRootKey", MAX_TPM_KEY, &srk);
	if (rc != EMU_OK)
		return rc;
	if (srk && *srk && !b64_len_ok(srk, 1, MAX_TPM_KEY))
		return fail(c, "attestation.tpm.storageRootKey: not valid base64");
	dst = json_object();
	if (!dst)
		return EMU_ENOMEM;
	rc = put_str(dst, "endorsementKey", ek);
	if (rc == EMU_OK && srk && *srk)
		rc = put_str(dst, "storageRootKey", srk);
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(dst_att, "tpm", dst);
}

static int parse_attestation(struct pctx *c, struct enrollment *e, const json_t *att, json_t *doc)
{
	const char *type;
	json_t *dst;
	int rc;

	if (!att || json_is_null(att))
		return fail(c, "attestation: required");
	if (!json_is_object(att))
		return fail(c, "attestation: must be an object");
	rc = opt_string(c, att, "type", "attestation.type", 64, &type);
	if (rc != EMU_OK)
		return rc;
	if (!type)
		return fail(c, "attestation.type: required");
	if (strcasecmp(type, "x509") == 0)
		e->att = ENR_ATT_X509;
	else if (strcasecmp(type, "symmetricKey") == 0)
		e->att = ENR_ATT_SYMMETRIC_KEY;
	else if (strcasecmp(type, "tpm") == 0)
		e->att = ENR_ATT_TPM;
	else if (strcasecmp(type, "none") == 0)
		e->att = ENR_ATT_NONE;
	else
		return fail(c, "attestation.type: '%s' is not one of x509, symmetricKey, tpm, none",
		            type);
	dst = json_object();
	if (!dst)
		return EMU_ENOMEM;
	switch (e->att) {
	case ENR_ATT_X509:
		rc = put_str(dst, "type", "x509");
		if (rc == EMU_OK)
			rc = parse_x509(c, e, json_object_get(att, "x509"), dst);
		break;
	case ENR_ATT_SYMMETRIC_KEY:
		rc = put_str(dst, "type", "symmetricKey");
		if (rc == EMU_OK)
			rc = parse_symkey(c, e, json_object_get(att, "symmetricKey"), dst);
		break;
	case ENR_ATT_TPM:
		rc = put_str(dst, "type", "tpm");
		if (rc == EMU_OK)
			rc = parse_tpm(c, e, json_object_get(att, "tpm"), dst);
		break;
	case ENR_ATT_NONE:
		rc = put_str(dst, "type", "none");
		break;
	}
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(doc, "attestation", dst);
}

/* ---- top-level members ---- */

static int parse_id(struct pctx *c, enum enr_kind kind, const char *path_id, const json_t *body,
                    struct enrollment *e, json_t *doc)
{
	const char *field = enrollment_id_field(kind);
	const char *id;
	char reason[160];
	int rc;

	rc = opt_string(c, body, field, field, 4096, &id);
	if (rc != EMU_OK)
		return rc;
	if (path_id) {
		if (enrollment_id_valid(path_id, reason, sizeof(reason)) != EMU_OK)
			return fail(c, "%s '%.*s' in the path: %s", field, ENR_ID_MAX, path_id,
			            reason);
		if (id && strcasecmp(id, path_id) != 0)
			return fail(c, "%s '%.*s' in the body does not match '%s' in the path",
			            field, ENR_ID_MAX, id, path_id);
		if (!id)
			id = path_id;
	}
	if (!id)
		return fail(c, "%s: required", field);
	if (enrollment_id_valid(id, reason, sizeof(reason)) != EMU_OK)
		return fail(c, "%s '%.*s': %s", field, ENR_ID_MAX, id, reason);
	e->id = strdup(id);
	if (!e->id)
		return EMU_ENOMEM;
	return put_str(doc, field, id);
}

static int parse_hubs(struct pctx *c, struct enrollment *e, const json_t *body, json_t *doc)
{
	const json_t *hubs = json_object_get(body, "iotHubs");
	const char *host;
	size_t i;
	json_t *v;
	int rc;

	rc = opt_string(c, body, "iotHubHostName", "iotHubHostName", MAX_NAME, &host);
	if (rc != EMU_OK)
		return rc;
	if (host && *host) {
		e->iot_hub_host_name = strdup(host);
		if (!e->iot_hub_host_name)
			return EMU_ENOMEM;
		rc = put_str(doc, "iotHubHostName", host);
		if (rc != EMU_OK)
			return rc;
	}
	if (!hubs || json_is_null(hubs))
		return EMU_OK;
	if (!json_is_array(hubs))
		return fail(c, "iotHubs: must be an array of hub host names");
	if (json_array_size(hubs) > MAX_HUBS)
		return fail(c, "iotHubs: more than %d hubs", MAX_HUBS);
	json_array_foreach(hubs, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > MAX_NAME)
			return fail(c, "iotHubs[%zu]: must be a hub host name (1 to %d characters)",
			            i, MAX_NAME);
	}
	v = json_deep_copy(hubs);
	rc = put(doc, "iotHubs", v);
	if (rc == EMU_OK)
		e->iot_hubs = v;
	return rc;
}

static int parse_allocation(struct pctx *c, struct enrollment *e, const json_t *body, json_t *doc)
{
	static const char *policies[] = {"hashed", "geoLatency", "static", "custom"};
	const json_t *cad;
	const char *p, *url, *ver;
	json_t *dst;
	int rc;

	rc = opt_string(c, body, "allocationPolicy", "allocationPolicy", 64, &p);
	if (rc != EMU_OK)
		return rc;
	if (!p || !*p)
		p = "hashed";
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		if (strcasecmp(p, policies[i]) == 0) {
			e->allocation_policy = strdup(policies[i]);
			if (!e->allocation_policy)
				return EMU_ENOMEM;
			break;
		}
	}
	if (!e->allocation_policy)
		return fail(c,
		            "allocationPolicy: '%s' is not one of hashed, geoLatency, static, "
		            "custom",
		            p);
	rc = put_str(doc, "allocationPolicy", e->allocation_policy);
	if (rc != EMU_OK)
		return rc;
	rc = opt_object(c, body, "customAllocationDefinition", "customAllocationDefinition", &cad);
	if (rc != EMU_OK)
		return rc;
	if (!cad) {
		if (strcmp(e->allocation_policy, "custom") == 0)
			return fail(c, "customAllocationDefinition: required when allocationPolicy "
			               "is custom");
		return EMU_OK;
	}
	rc = opt_string(c, cad, "webhookUrl", "customAllocationDefinition.webhookUrl", 2048, &url);
	if (rc != EMU_OK)
		return rc;
	if (!url || !*url)
		return fail(c, "customAllocationDefinition.webhookUrl: required");
	rc = opt_string(c, cad, "apiVersion", "customAllocationDefinition.apiVersion", 64, &ver);
	if (rc != EMU_OK)
		return rc;
	dst = json_object();
	if (!dst)
		return EMU_ENOMEM;
	rc = put_str(dst, "webhookUrl", url);
	if (rc == EMU_OK && ver)
		rc = put_str(dst, "apiVersion", ver);
	if (rc != EMU_OK) {
		json_decref(dst);
		return rc;
	}
	return put(doc, "customAllocationDefinition", dst);
}

static int parse_initial_twin(struct pctx *c, const json_t *body, json_t *doc)
{
	const json_t *tw, *tags, *props, *desired;
	int rc;

	rc = opt_object(c, body, "initialTwin", "initialTwin", &tw);
	if (rc != EMU_OK || !tw)
		return rc;
	rc = opt_object(c, tw, "tags", "initialTwin.tags", &tags);
	if (rc == EMU_OK)
		rc = opt_object(c, tw, "properties", "initialTwin.properties", &props);
	if (rc == EMU_OK && props)
		rc = opt_object(c, props, "desired", "initialTwin.properties.desired", &desired);
	if (rc != EMU_OK)
		return rc;
	/* Kept as given, $metadata and $version included. */
	return put(doc, "initialTwin", json_deep_copy(tw));
}

static int parse_flags(struct pctx *c, struct enrollment *e, const json_t *body, json_t *doc,
                       int capabilities)
{
	const json_t *cap, *rp;
	const char *st;
	int rc;

	if (capabilities) {
		rc = opt_object(c, body, "capabilities", "capabilities", &cap);
		if (rc == EMU_OK)
			rc = opt_bool(c, cap, "iotEdge", "capabilities.iotEdge", 0, &e->iot_edge);
		if (rc == EMU_OK)
			rc = put(doc, "capabilities", json_pack("{s:b}", "iotEdge", e->iot_edge));
		return rc;
	}
	rc = opt_object(c, body, "reprovisionPolicy", "reprovisionPolicy", &rp);
	if (rc == EMU_OK)
		rc = opt_bool(c, rp, "updateHubAssignment", "reprovisionPolicy.updateHubAssignment",
		              1, &e->update_hub_assignment);
	if (rc == EMU_OK)
		rc = opt_bool(c, rp, "migrateDeviceData", "reprovisionPolicy.migrateDeviceData", 1,
		              &e->migrate_device_data);
	if (rc == EMU_OK)
		rc = put(doc, "reprovisionPolicy",
		         json_pack("{s:b,s:b}", "updateHubAssignment", e->update_hub_assignment,
		                   "migrateDeviceData", e->migrate_device_data));
	if (rc != EMU_OK)
		return rc;
	rc = opt_string(c, body, "provisioningStatus", "provisioningStatus", 64, &st);
	if (rc != EMU_OK)
		return rc;
	if (!st || !*st || strcasecmp(st, "enabled") == 0)
		e->enabled = 1;
	else if (strcasecmp(st, "disabled") == 0)
		e->enabled = 0;
	else
		return fail(c, "provisioningStatus: '%s' is not enabled or disabled", st);
	return put_str(doc, "provisioningStatus", e->enabled ? "enabled" : "disabled");
}

static int policy_known(struct pctx *c, const char *name)
{
	return c->opts && c->opts->policy_known && c->opts->policy_known(name, c->opts->policy_arg);
}

/* credentialPolicyName, the namespaceName/certificateAuthorityName/certificatePolicyName
 * trio, or the older clientCertificateIssuancePolicy: at most one of them. */
static int parse_issuance(struct pctx *c, struct enrollment *e, const json_t *body, json_t *doc)
{
	static const char *trio[3] = {"namespaceName", "certificateAuthorityName",
	                              "certificatePolicyName"};
	const char *cp, *tv[3], *old_ca = NULL, *name, *field;
	const json_t *ccip;
	int ntrio = 0, rc;

	rc = opt_string(c, body, "credentialPolicyName", "credentialPolicyName", MAX_NAME, &cp);
	for (int i = 0; i < 3 && rc == EMU_OK; i++) {
		rc = opt_string(c, body, trio[i], trio[i], MAX_NAME, &tv[i]);
		if (tv[i] && !*tv[i])
			tv[i] = NULL;
		ntrio += tv[i] != NULL;
	}
	if (rc == EMU_OK)
		rc = opt_object(c, body, "clientCertificateIssuancePolicy",
		                "clientCertificateIssuancePolicy", &ccip);
	if (rc == EMU_OK && ccip)
		rc = opt_string(c, ccip, "certificateAuthorityName",
		                "clientCertificateIssuancePolicy.certificateAuthorityName",
		                MAX_NAME, &old_ca);
	if (rc != EMU_OK)
		return rc;
	if (cp && !*cp)
		cp = NULL;
	if (old_ca && !*old_ca)
		old_ca = NULL;
	if (ntrio != 0 && ntrio != 3) {
		for (int i = 0; i < 3; i++)
			if (!tv[i])
				return fail(c,
				            "namespaceName, certificateAuthorityName and "
				            "certificatePolicyName must be set together (%s is "
				            "missing)",
				            trio[i]);
	}
	if ((cp != NULL) + (ntrio == 3) + (old_ca != NULL) > 1)
		return fail(c, "credentialPolicyName, certificatePolicyName and "
		               "clientCertificateIssuancePolicy are alternatives: set only one");
	if (cp) {
		name = cp;
		field = "credentialPolicyName";
	} else if (ntrio == 3) {
		name = tv[2];
		field = "certificatePolicyName";
	} else if (old_ca) {
		name = old_ca;
		field = "clientCertificateIssuancePolicy.certificateAuthorityName";
	} else {
		return EMU_OK;
	}
	if (!c->stored && !policy_known(c, name))
		return fail(c, "%s '%s' is not a configured credential policy", field, name);
	e->credential_policy = strdup(name);
	if (!e->credential_policy)
		return EMU_ENOMEM;
	if (cp)
		return put_str(doc, "credentialPolicyName", cp);
	if (ntrio == 3) {
		for (int i = 0; i < 3; i++) {
			rc = put_str(doc, trio[i], tv[i]);
			if (rc != EMU_OK)
				return rc;
		}
		return EMU_OK;
	}
	return put(doc, "clientCertificateIssuancePolicy",
	           json_pack("{s:s}", "certificateAuthorityName", old_ca));
}

static int parse_stamps(struct pctx *c, struct enrollment *e, const json_t *body, json_t *doc)
{
	static const char *names[3] = {"etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc"};
	int rc;

	for (int i = 0; i < 3; i++) {
		const char *v;
		rc = opt_string(c, body, names[i], names[i], 128, &v);
		if (rc != EMU_OK)
			return rc;
		if (!v) {
			if (i == 0)
				return fail(c, "etag: missing in the stored document");
			continue;
		}
		if (i == 0) {
			e->etag = strdup(v);
			if (!e->etag)
				return EMU_ENOMEM;
		}
		rc = put_str(doc, names[i], v);
		if (rc != EMU_OK)
			return rc;
	}
	return EMU_OK;
}

static int parse_doc(struct pctx *c, enum enr_kind kind, const char *path_id, const json_t *body,
                     struct enrollment **out)
{
	static const char *individual_only[] = {"registrationId", "deviceId",
	                                        "optionalDeviceInformation"};
	struct enrollment *e = NULL;
	const json_t *odi;
	const char *dev;
	int rc;

	*out = NULL;
	if (!json_is_object(body))
		return fail(c, "the enrollment must be a JSON object");
	if (kind == ENR_GROUP) {
		for (size_t i = 0; i < 3; i++)
			if (present(body, individual_only[i]))
				return fail(c, "%s: not allowed in an enrollment group",
				            individual_only[i]);
	} else if (present(body, "enrollmentGroupId")) {
		return fail(c, "enrollmentGroupId: not allowed in an individual enrollment");
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return EMU_ENOMEM;
	e->kind = kind;
	e->doc = json_object();
	if (!e->doc) {
		rc = EMU_ENOMEM;
		goto out;
	}
	rc = parse_id(c, kind, path_id, body, e, e->doc);
	if (rc != EMU_OK)
		goto out;
	if (kind == ENR_INDIVIDUAL) {
		rc = opt_string(c, body, "deviceId", "deviceId", 4096, &dev);
		if (rc != EMU_OK)
			goto out;
		if (dev && *dev) {
			if (!device_id_valid(dev)) {
				rc = fail(c,
				          "deviceId '%.*s': must be 1 to 128 letters, digits or "
				          "- . + %% _ # * ? ! ( ) , : = @ $ '",
				          ENR_ID_MAX, dev);
				goto out;
			}
			e->device_id = strdup(dev);
			rc = e->device_id ? put_str(e->doc, "deviceId", dev) : EMU_ENOMEM;
			if (rc != EMU_OK)
				goto out;
		}
	}
	rc = parse_attestation(c, e, json_object_get(body, "attestation"), e->doc);
	if (rc == EMU_OK)
		rc = parse_flags(c, e, body, e->doc, 1);
	if (rc == EMU_OK)
		rc = parse_hubs(c, e, body, e->doc);
	if (rc == EMU_OK)
		rc = parse_allocation(c, e, body, e->doc);
	if (rc == EMU_OK)
		rc = parse_initial_twin(c, body, e->doc);
	if (rc == EMU_OK)
		rc = parse_flags(c, e, body, e->doc, 0);
	if (rc == EMU_OK && kind == ENR_INDIVIDUAL) {
		rc = opt_object(c, body, "optionalDeviceInformation", "optionalDeviceInformation",
		                &odi);
		if (rc == EMU_OK && odi)
			rc = put(e->doc, "optionalDeviceInformation", json_deep_copy(odi));
	}
	if (rc == EMU_OK)
		rc = parse_issuance(c, e, body, e->doc);
	if (rc == EMU_OK && c->stored)
		rc = parse_stamps(c, e, body, e->doc);
out:
	if (rc != EMU_OK) {
		enrollment_free(e);
		return rc;
	}
	*out = e;
	return EMU_OK;
}

int enrollment_from_json(enum enr_kind kind, const char *path_id, const json_t *body,
                         const struct enr_validate_opts *opts, struct enrollment **out, char *why,
                         size_t whylen)
{
	struct pctx c = {.stored = 0, .opts = opts, .why = why, .whylen = whylen};

	if (why && whylen)
		why[0] = '\0';
	return parse_doc(&c, kind, path_id, body, out);
}

int enrollment_from_stored(enum enr_kind kind, const json_t *doc, struct enrollment **out)
{
	char why[256] = "";
	struct pctx c = {.stored = 1, .opts = NULL, .why = why, .whylen = sizeof(why)};
	int rc;

	rc = parse_doc(&c, kind, NULL, doc, out);
	if (rc == EMU_EINVAL) {
		log_error("enrollments", "stored %s is invalid: %s",
		          kind == ENR_GROUP ? "enrollment group" : "enrollment", why);
		return EMU_ESTORE;
	}
	return rc;
}

/* ---- merging, stamping, output ---- */

/* Fills {"info":{...thumbprint...}} entries of one certificate pair from old. */
static int merge_cert_pair(json_t *pair, const struct enrollment *old)
{
	static const char *slots[2] = {"primary", "secondary"};

	if (!json_is_object(pair) || !old->certs)
		return EMU_OK;
	for (int i = 0; i < 2; i++) {
		json_t *entry = json_object_get(pair, slots[i]);
		const json_t *info, *thumb;
		char *pem;

		if (!json_is_object(entry) || present(entry, "certificate"))
			continue;
		info = json_object_get(entry, "info");
		if (!json_is_object(info))
			continue;
		thumb = json_object_get(info, "sha256Thumbprint");
		if (!json_is_string(thumb))
			thumb = json_object_get(info, "sha1Thumbprint");
		if (!json_is_string(thumb))
			continue;
		for (int k = 0; k < sk_X509_num(old->certs); k++) {
			X509 *x = sk_X509_value(old->certs, k);
			if (!x509_thumbprint_matches(x, json_string_value(thumb)))
				continue;
			pem = x509_to_pem(x);
			if (!pem)
				return EMU_ENOMEM;
			if (put_str(entry, "certificate", pem) != EMU_OK) {
				free(pem);
				return EMU_ENOMEM;
			}
			free(pem);
			break;
		}
	}
	return EMU_OK;
}

json_t *enrollment_merge_secrets(const json_t *body, const struct enrollment *old)
{
	json_t *copy, *att, *x, *sk;
	const char *type;

	copy = json_deep_copy(body);
	if (!copy || !old || !json_is_object(copy))
		return copy;
	att = json_object_get(copy, "attestation");
	if (!json_is_object(att))
		return copy;
	type = json_string_value(json_object_get(att, "type"));
	if (!type)
		return copy;
	if (strcasecmp(type, "symmetricKey") == 0 && old->att == ENR_ATT_SYMMETRIC_KEY) {
		static const char *names[2] = {"primaryKey", "secondaryKey"};
		sk = json_object_get(att, "symmetricKey");
		if (!sk || json_is_null(sk)) {
			sk = json_object();
			if (put(att, "symmetricKey", sk) != EMU_OK)
				goto nomem;
		}
		if (!json_is_object(sk))
			return copy; /* validation reports it */
		for (int i = 0; i < 2; i++) {
			const json_t *v = json_object_get(sk, names[i]);
			if (v && !json_is_null(v) &&
			    !(json_is_string(v) && json_string_length(v) == 0))
				continue;
			if (old->sym_keys[i] && put_str(sk, names[i], old->sym_keys[i]) != EMU_OK)
				goto nomem;
		}
	} else if (strcasecmp(type, "x509") == 0 && old->att == ENR_ATT_X509) {
		x = json_object_get(att, "x509");
		if (!json_is_object(x))
			return copy;
		if (merge_cert_pair(json_object_get(x, "clientCertificates"), old) != EMU_OK ||
		    merge_cert_pair(json_object_get(x, "signingCertificates"), old) != EMU_OK)
			goto nomem;
	}
	return copy;
nomem:
	json_decref(copy);
	return NULL;
}

int enrollment_stamp(struct enrollment *e, const char *created)
{
	char etag[ENR_ETAG_LEN], now[32];
	char *dup;

	etag_new_uuid(etag);
	clock_iso8601_now(now);
	dup = strdup(etag);
	if (!dup)
		return EMU_ENOMEM;
	if (put_str(e->doc, "etag", etag) != EMU_OK ||
	    put_str(e->doc, "createdDateTimeUtc", created ? created : now) != EMU_OK ||
	    put_str(e->doc, "lastUpdatedDateTimeUtc", now) != EMU_OK) {
		free(dup);
		return EMU_ENOMEM;
	}
	free(e->etag);
	e->etag = dup;
	return EMU_OK;
}

static json_t *without_stamps(const json_t *doc)
{
	json_t *c = json_deep_copy(doc);

	if (c) {
		json_object_del(c, "etag");
		json_object_del(c, "createdDateTimeUtc");
		json_object_del(c, "lastUpdatedDateTimeUtc");
	}
	return c;
}

int enrollment_same_content(const struct enrollment *a, const struct enrollment *b)
{
	json_t *ca, *cb;
	int same;

	if (!a || !b || a->kind != b->kind)
		return 0;
	ca = without_stamps(a->doc);
	cb = without_stamps(b->doc);
	same = ca && cb && json_equal(ca, cb);
	json_decref(ca);
	json_decref(cb);
	return same;
}

/* Replaces every stored certificate of a pair by {"info": ...}. */
static int certs_to_info(json_t *pair, const struct enrollment *e)
{
	static const char *slots[2] = {"primary", "secondary"};

	if (!json_is_object(pair))
		return EMU_OK;
	for (int i = 0; i < 2; i++) {
		json_t *info;
		X509 *x;

		if (!json_object_get(pair, slots[i]))
			continue;
		x = e->certs && i < sk_X509_num(e->certs) ? sk_X509_value(e->certs, i) : NULL;
		info = x ? x509_info_json(x) : NULL;
		if (!info)
			info = json_object();
		if (put(pair, slots[i], json_pack("{s:o}", "info", info)) != EMU_OK)
			return EMU_ENOMEM;
	}
	return EMU_OK;
}

/* The attestation object of the API view (a new reference). */
static json_t *api_attestation(const struct enrollment *e, int with_keys)
{
	json_t *att = json_deep_copy(json_object_get(e->doc, "attestation"));
	json_t *x, *sk;

	if (!att)
		return NULL;
	x = json_object_get(att, "x509");
	if (x && (certs_to_info(json_object_get(x, "clientCertificates"), e) != EMU_OK ||
	          certs_to_info(json_object_get(x, "signingCertificates"), e) != EMU_OK)) {
		json_decref(att);
		return NULL;
	}
	sk = json_object_get(att, "symmetricKey");
	if (sk && !with_keys)
		json_object_clear(sk);
	return att;
}

json_t *enrollment_to_api_json(const struct enrollment *e, int with_keys)
{
	json_t *doc, *att;

	doc = json_deep_copy(e->doc);
	if (!doc)
		return NULL;
	att = api_attestation(e, with_keys);
	if (put(doc, "attestation", att) != EMU_OK) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

json_t *enrollment_attestation_json(const struct enrollment *e)
{
	return api_attestation(e, 1);
}

void enrollment_free(struct enrollment *e)
{
	if (!e)
		return;
	free(e->id);
	free(e->device_id);
	if (e->certs)
		sk_X509_pop_free(e->certs, X509_free);
	for (int i = 0; i < 2; i++) {
		free(e->ca_refs[i]);
		if (e->sym_keys[i]) {
			OPENSSL_cleanse(e->sym_keys[i], strlen(e->sym_keys[i]));
			free(e->sym_keys[i]);
		}
	}
	free(e->allocation_policy);
	free(e->iot_hub_host_name);
	free(e->credential_policy);
	free(e->etag);
	json_decref(e->doc);
	free(e);
}
