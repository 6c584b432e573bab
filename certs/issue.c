#include "certs/issue.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "textenc.h"

#include "certs/gen.h"
#include "certs/x509.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RSA_MIN_BITS 2048
/* Larger RSA keys only cost verification time and no device needs them. */
#define RSA_MAX_BITS 8192
/* How much of a device-chosen string goes into a message. */
#define SHOW_MAX 64

static const char pem_begin[] = "-----BEGIN";

struct issue_ca {
	X509 *cert;
	EVP_PKEY *key;
	X509 *root;
	STACK_OF(X509) *chain; /* [cert, root], holding its own references */
};

/* Writes a message into why (which may be NULL). */
/* Copies at most SHOW_MAX bytes of s[0..n) into out for a message, printable
 * ASCII as is and everything else as \xNN, so device input cannot forge log lines. */
static void show(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		int k;

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
			k = snprintf(out + o, outlen - o, "%c", c);
		else
			k = snprintf(out + o, outlen - o, "\\x%02X", c);
		if (k < 0 || (size_t)k >= outlen - o)
			break;
		o += (size_t)k;
	}
	out[o] = '\0';
	if (n > SHOW_MAX && o + 4 <= outlen - 1)
		memcpy(out + o, "...", 4);
}

static time_t asn1_time_to_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

/* ---- key descriptions ------------------------------------------------------ */

/* "P-256" for the NIST curves devices use, OpenSSL's name for the others. */
static const char *curve_display(const char *group)
{
	if (strcmp(group, "prime256v1") == 0)
		return "P-256";
	if (strcmp(group, "secp384r1") == 0)
		return "P-384";
	if (strcmp(group, "secp521r1") == 0)
		return "P-521";
	return group;
}

/* Curve name of an EC key into group; 0 if the curve is unnamed (explicit
 * parameters) or cannot be read. */
static int ec_group(EVP_PKEY *k, char *group, size_t grouplen)
{
	int explicit_params = 0;
	size_t n = 0;

	if (EVP_PKEY_get_int_param(k, OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS,
	                           &explicit_params) &&
	    explicit_params) {
		ERR_clear_error();
		return 0;
	}
	if (!EVP_PKEY_get_group_name(k, group, grouplen, &n) || n == 0) {
		ERR_clear_error();
		return 0;
	}
	return 1;
}

/* Describes k as "EC P-256", "EC secp256k1", "RSA 1024 bits", "ED25519". */
static void describe_key(EVP_PKEY *k, char *out, size_t outlen)
{
	char group[64];
	const char *name;

	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_EC:
		if (ec_group(k, group, sizeof(group)))
			snprintf(out, outlen, "EC %s", curve_display(group));
		else
			snprintf(out, outlen, "EC with explicit curve parameters");
		return;
	case EVP_PKEY_RSA:
		snprintf(out, outlen, "RSA %d bits", EVP_PKEY_get_bits(k));
		return;
	default:
		name = EVP_PKEY_get0_type_name(k);
		snprintf(out, outlen, "%s", name ? name : "of an unknown type");
	}
}

/* ---- issuing CA ------------------------------------------------------------ */

static void ca_free_fields(struct issue_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	X509_free(ca->root);
	sk_X509_pop_free(ca->chain, X509_free);
}

void issue_ca_free(struct issue_ca *ca)
{
	if (!ca)
		return;
	ca_free_fields(ca);
	free(ca);
}

X509 *issue_ca_cert(const struct issue_ca *ca)
{
	return ca ? ca->cert : NULL;
}

X509 *issue_ca_root(const struct issue_ca *ca)
{
	return ca ? ca->root : NULL;
}

STACK_OF(X509) *issue_ca_chain(const struct issue_ca *ca)
{
	return ca ? ca->chain : NULL;
}

/* Names of what is being checked: file paths, or words for memory objects. */
struct ca_labels {
	const char *cert;
	const char *key;
	const char *chain;
};

/* "depth 1 CN=root: certificate has expired" for a failed verification. */
static void verify_reason(X509_STORE_CTX *ctx, char *out, size_t outlen)
{
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	const char *reason = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
	char cn[128];

	if (cur && x509_common_name(cur, cn, sizeof(cn)) == EMU_OK)
		snprintf(out, outlen, "depth %d CN=%s: %s", X509_STORE_CTX_get_error_depth(ctx), cn,
		         reason);
	else
		snprintf(out, outlen, "depth %d: %s", X509_STORE_CTX_get_error_depth(ctx), reason);
}

/* Checks everything about cert and key that does not involve the chain. */
static int ca_check_self(X509 *cert, EVP_PKEY *key, const struct ca_labels *l, char *why,
                         size_t whylen)
{
	char desc[80], group[64], when[32];
	time_t now = time(NULL);
	time_t t;

	if (!gen_key_matches_cert(key, cert)) {
		emu_why(why, whylen, "%s does not belong to %s", l->key, l->cert);
		return EMU_ECRYPTO;
	}
	if (!x509_is_ca(cert)) {
		emu_why(why, whylen, "%s is not a CA certificate (basicConstraints CA:TRUE is missing)",
		    l->cert);
		return EMU_ECRYPTO;
	}
	/* RFC 5280 requires keyUsage in CA certificates; without keyCertSign, relying
	 * parties refuse what it signs. */
	if (!(X509_get_extension_flags(cert) & EXFLAG_KUSAGE) ||
	    !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
		emu_why(why, whylen, "%s cannot sign certificates (keyUsage lacks keyCertSign)",
		    l->cert);
		return EMU_ECRYPTO;
	}
	describe_key(key, desc, sizeof(desc));
	if (!((EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && ec_group(key, group, sizeof(group))) ||
	      (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
	       EVP_PKEY_get_bits(key) >= RSA_MIN_BITS))) {
		emu_why(why, whylen,
		    "%s has a key that cannot issue device certificates (%s): use EC on a named"
		    " curve or RSA >= 2048",
		    l->key, desc);
		return EMU_ECRYPTO;
	}
	t = asn1_time_to_time_t(X509_get0_notBefore(cert));
	if (t > now) {
		clock_iso8601(t, when);
		emu_why(why, whylen, "%s is not valid before %s", l->cert, when);
		return EMU_ECRYPTO;
	}
	t = x509_not_after(cert);
	if (t <= now) {
		clock_iso8601(t, when);
		emu_why(why, whylen, "%s expired on %s", l->cert, when);
		return EMU_ECRYPTO;
	}
	if (x509_is_self_signed(cert)) {
		emu_why(why, whylen,
		    "%s is self-signed: the issuing CA must be signed by a root, as DPS returns"
		    " leaf, issuing CA and root",
		    l->cert);
		return EMU_ECRYPTO;
	}
	return EMU_OK;
}

/* Verifies cert up to a self-signed root among candidates; sets *root_out to a new
 * reference to that root. */
static int ca_check_chain(X509 *cert, STACK_OF(X509) *candidates, const struct ca_labels *l,
                          X509 **root_out, char *why, size_t whylen)
{
	STACK_OF(X509) *anchors = sk_X509_new_null();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	STACK_OF(X509) *built;
	X509_STORE_CTX *ctx = NULL;
	char reason[256];
	int rc = EMU_ENOMEM;

	*root_out = NULL;
	if (!anchors || !untrusted)
		goto out;
	for (int i = 0; i < sk_X509_num(candidates); i++) {
		X509 *c = sk_X509_value(candidates, i);

		if (!sk_X509_push(x509_is_self_signed(c) ? anchors : untrusted, c))
			goto out;
	}
	rc = EMU_ECRYPTO;
	if (sk_X509_num(anchors) == 0) {
		emu_why(why, whylen,
		    "%s holds no self-signed root for %s: give the chain up to the root", l->chain,
		    l->cert);
		goto out;
	}
	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, NULL, cert, untrusted)) {
		log_openssl_errors("issue", "verify context");
		rc = EMU_ENOMEM;
		goto out;
	}
	/* No purpose: cert is a CA, not a TLS peer; CA flags and dates are still checked. */
	X509_STORE_CTX_set0_trusted_stack(ctx, anchors);
	if (X509_verify_cert(ctx) != 1) {
		verify_reason(ctx, reason, sizeof(reason));
		emu_why(why, whylen, "%s does not lead %s to a root: %s", l->chain, l->cert, reason);
		ERR_clear_error();
		goto out;
	}
	built = X509_STORE_CTX_get0_chain(ctx);
	if (sk_X509_num(built) != 2) {
		emu_why(why, whylen,
		    "%s is %d levels below its root: DPS returns exactly leaf, issuing CA and root,"
		    " so the issuing CA must be signed by the root directly",
		    l->cert, sk_X509_num(built) - 1);
		goto out;
	}
	if (!x509_is_ca(sk_X509_value(built, 1))) {
		emu_why(why, whylen,
		    "the root in %s is not a CA certificate (basicConstraints CA:TRUE)", l->chain);
		goto out;
	}
	/* a reference of our own: the built chain goes with ctx */
	if (!X509_up_ref(sk_X509_value(built, 1))) {
		rc = EMU_ENOMEM;
		goto out;
	}
	*root_out = sk_X509_value(built, 1);
	rc = EMU_OK;
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(anchors);
	sk_X509_free(untrusted);
	return rc;
}

/* Builds a CA from borrowed objects; candidates may hold copies of cert. */
static int ca_build(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *candidates,
                    const struct ca_labels *l, struct issue_ca **out, char *why, size_t whylen)
{
	STACK_OF(X509) *others = NULL;
	struct issue_ca *ca = NULL;
	X509 *root = NULL;
	int rc;

	*out = NULL;
	rc = ca_check_self(cert, key, l, why, whylen);
	if (rc != EMU_OK)
		return rc;
	rc = EMU_ENOMEM;
	others = sk_X509_new_null();
	if (!others)
		goto out;
	for (int i = 0; i < sk_X509_num(candidates); i++) {
		X509 *c = sk_X509_value(candidates, i);

		if (X509_cmp(c, cert) != 0 && !sk_X509_push(others, c))
			goto out;
	}
	rc = ca_check_chain(cert, others, l, &root, why, whylen);
	if (rc != EMU_OK)
		goto out;
	rc = EMU_ENOMEM;
	ca = calloc(1, sizeof(*ca));
	if (!ca || !X509_up_ref(cert))
		goto out;
	ca->cert = cert;
	ca->root = root;
	root = NULL;
	if (!EVP_PKEY_up_ref(key))
		goto out;
	ca->key = key;
	ca->chain = sk_X509_new_null();
	if (!ca->chain)
		goto out;
	for (int i = 0; i < 2; i++) {
		X509 *c = i == 0 ? ca->cert : ca->root;

		if (!X509_up_ref(c))
			goto out;
		if (!sk_X509_push(ca->chain, c)) {
			X509_free(c);
			goto out;
		}
	}
	*out = ca;
	ca = NULL;
	rc = EMU_OK;
out:
	if (rc == EMU_ENOMEM)
		emu_why(why, whylen, "out of memory");
	issue_ca_free(ca);
	X509_free(root);
	sk_X509_free(others);
	return rc;
}

int issue_ca_new(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, struct issue_ca **out, char *why,
                 size_t whylen)
{
	static const struct ca_labels labels = {"the issuing CA certificate", "the issuing CA key",
	                                        "the chain"};
	STACK_OF(X509) *empty = NULL;
	int rc;

	if (out)
		*out = NULL;
	emu_why(why, whylen, "%s", "");
	if (!cert || !key || !out) {
		emu_why(why, whylen, "no issuing CA certificate or key");
		return EMU_EINVAL;
	}
	if (!chain) {
		empty = sk_X509_new_null();
		if (!empty)
			return EMU_ENOMEM;
		chain = empty;
	}
	rc = ca_build(cert, key, chain, &labels, out, why, whylen);
	sk_X509_free(empty);
	return rc;
}

/* why for a file that could not be read. */
static void say_read_error(char *why, size_t whylen, const char *path, const char *what, int rc)
{
	switch (rc) {
	case EMU_ENOTFOUND:
		emu_why(why, whylen, "%s: file not found", path);
		break;
	case EMU_ETOOBIG:
		emu_why(why, whylen, "%s: file too large for %s", path, what);
		break;
	case EMU_EIO:
		emu_why(why, whylen, "%s: cannot read it (see the log)", path);
		break;
	default:
		emu_why(why, whylen, "%s: no valid %s in it", path, what);
	}
}

int issue_ca_load(const char *cert_path, const char *key_path, const char *chain_path,
                  struct issue_ca **out, char *why, size_t whylen)
{
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	struct ca_labels l;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc;

	if (out)
		*out = NULL;
	emu_why(why, whylen, "%s", "");
	if (!cert_path || !*cert_path || !key_path || !*key_path || !out) {
		emu_why(why, whylen, "the issuing CA needs both a certificate file and a key file");
		return EMU_EINVAL;
	}
	if (chain_path && !*chain_path)
		chain_path = NULL;
	l.cert = cert_path;
	l.key = key_path;
	l.chain = chain_path ? chain_path : cert_path;

	rc = gen_read_chain_file(cert_path, &certs);
	if (rc != EMU_OK) {
		say_read_error(why, whylen, cert_path, "PEM certificate", rc);
		goto out;
	}
	rc = gen_read_key_file(key_path, &key);
	if (rc != EMU_OK) {
		say_read_error(why, whylen, key_path, "unencrypted PEM private key", rc);
		goto out;
	}
	if (chain_path) {
		rc = gen_read_chain_file(chain_path, &chain);
		if (rc != EMU_OK) {
			say_read_error(why, whylen, chain_path, "PEM certificate", rc);
			goto out;
		}
		/* the issuing CA's own file may carry a chain too: consider both */
		for (int i = 1; i < sk_X509_num(certs); i++) {
			X509 *c = sk_X509_value(certs, i);

			if (!X509_up_ref(c))
				goto nomem;
			if (!sk_X509_push(chain, c)) {
				X509_free(c);
				goto nomem;
			}
		}
	}
	cert = sk_X509_value(certs, 0);
	rc = ca_build(cert, key, chain ? chain : certs, &l, out, why, whylen);
	if (rc == EMU_OK)
		log_info("issue", "issuing CA %s loaded (chain from %s)", cert_path, l.chain);
	goto out;
nomem:
	emu_why(why, whylen, "out of memory");
	rc = EMU_ENOMEM;
out:
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

/* ---- CSR ------------------------------------------------------------------ */

const char *issue_error_string(enum issue_error e)
{
	switch (e) {
	case ISSUE_ERR_NONE:
		return "";
	case ISSUE_ERR_NOT_BASE64:
		return "CSR is not base64";
	case ISSUE_ERR_NOT_DER:
		return "CSR is not a DER PKCS#10 request";
	case ISSUE_ERR_TOO_LARGE:
		return "CSR is too large";
	case ISSUE_ERR_BAD_SIGNATURE:
		return "CSR signature does not verify";
	case ISSUE_ERR_CN_MISMATCH:
		return "CSR subject CN does not match the registration ID";
	case ISSUE_ERR_CN_TOO_LONG:
		return "registration ID is too long for a certificate CN";
	case ISSUE_ERR_UNSUPPORTED_KEY:
		return "CSR key type is not accepted";
	case ISSUE_ERR_INTERNAL:
		return "internal error while checking the CSR";
	}
	return "unknown CSR error";
}

static int is_b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Decodes the base64 text into *der; on failure sets why and returns the error. */
static enum issue_error csr_decode(const char *b64, size_t len, unsigned char **der, size_t *derlen,
                                   char *why, size_t whylen)
{
	enum issue_error e = ISSUE_ERR_NOT_BASE64;
	char *s = NULL;
	size_t n = 0, pad = 0;
	char c[8];

	*der = NULL;
	*derlen = 0;
	s = malloc(len + 3);
	if (!s) {
		emu_why(why, whylen, "out of memory");
		return ISSUE_ERR_INTERNAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)b64[i];

		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
			continue;
		if (n == 0 && len - i >= sizeof(pem_begin) - 1 &&
		    memcmp(b64 + i, pem_begin, sizeof(pem_begin) - 1) == 0) {
			emu_why(why, whylen,
			    "CSR is PEM text: send base64 of the DER request without the -----BEGIN"
			    " and -----END lines");
			goto out;
		}
		/* offsets count in the text as sent, whitespace included */
		if (ch != '=' && is_b64_char(ch) && pad > 0) {
			emu_why(why, whylen, "CSR is not base64: data after '=' padding at offset %zu",
			    i);
			goto out;
		}
		if (ch == '=' ? pad >= 2 : !is_b64_char(ch)) {
			show((const char *)&b64[i], 1, c, sizeof(c));
			emu_why(why, whylen, "CSR is not base64: character '%s' at offset %zu", c, i);
			goto out;
		}
		if (ch == '=')
			pad++;
		else
			s[n++] = (char)ch;
	}
	if (n % 4 == 1 || (pad && (n + pad) % 4 != 0)) {
		emu_why(why, whylen, "CSR is not base64: its length does not fit base64 groups");
		goto out;
	}
	while (n % 4 != 0)
		s[n++] = '=';
	if (b64_decode(s, n, der, derlen) != EMU_OK) {
		emu_why(why, whylen, "CSR is not base64");
		goto out;
	}
	e = ISSUE_ERR_NONE;
out:
	free(s);
	return e;
}

/* Checks k against policy; on refusal writes why. */
static int csr_key_ok(EVP_PKEY *k, enum issue_keys policy, char *why, size_t whylen)
{
	char desc[80], group[64];
	int id = EVP_PKEY_get_base_id(k);

	describe_key(k, desc, sizeof(desc));
	if (policy == ISSUE_KEYS_STRICT) {
		if (id == EVP_PKEY_EC && ec_group(k, group, sizeof(group)) &&
		    strcmp(group, "secp384r1") == 0)
			return 1;
		emu_why(why, whylen, "CSR key is %s: only EC P-384 is accepted", desc);
		return 0;
	}
	if (id == EVP_PKEY_EC && ec_group(k, group, sizeof(group)) &&
	    (strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0))
		return 1;
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) >= RSA_MIN_BITS &&
	    EVP_PKEY_get_bits(k) <= RSA_MAX_BITS)
		return 1;
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) > RSA_MAX_BITS)
		emu_why(why, whylen, "CSR key is %s: RSA keys of %d to %d bits are accepted", desc,
		    RSA_MIN_BITS, RSA_MAX_BITS);
	else
		emu_why(why, whylen,
		    "CSR key is %s: accepted keys are EC P-256, EC P-384 and RSA >= %d", desc,
		    RSA_MIN_BITS);
	return 0;
}

/* Checks the subject CN against the registration ID. */
static enum issue_error csr_cn_ok(X509_REQ *req, const char *rid, char *why, size_t whylen)
{
	X509_NAME *name = X509_REQ_get_subject_name(req);
	unsigned char *utf8 = NULL;
	char shown[SHOW_MAX * 4 + 4], rid_shown[SHOW_MAX * 4 + 4];
	enum issue_error e = ISSUE_ERR_CN_MISMATCH;
	size_t rid_len = strlen(rid);
	int idx, count = 0, n;

	show(rid, rid_len, rid_shown, sizeof(rid_shown));
	for (idx = -1; (idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >= 0;)
		count++;
	if (count != 1) {
		if (count == 0)
			emu_why(why, whylen,
			    "CSR subject has no CN: it must be the registration ID '%s'",
			    rid_shown);
		else
			emu_why(why, whylen,
			    "CSR subject has %d CNs: it must have one, the registration ID '%s'",
			    count, rid_shown);
		return e;
	}
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
	if (n < 0) {
		ERR_clear_error();
		emu_why(why, whylen, "CSR subject CN cannot be read as UTF-8");
		return e;
	}
	show((const char *)utf8, (size_t)n, shown, sizeof(shown));
	/* a NUL inside the CN must not let "dev1\0x" pass for "dev1" */
	if ((size_t)n != rid_len || memchr(utf8, '\0', (size_t)n) ||
	    strncasecmp((const char *)utf8, rid, rid_len) != 0) {
		emu_why(why, whylen, "CSR subject CN '%s' does not match registration ID '%s'", shown,
		    rid_shown);
		goto out;
	}
	if (rid_len > ISSUE_CN_MAX) {
		emu_why(why, whylen,
		    "registration ID '%s' is %zu characters: a certificate CN holds at most %d",
		    rid_shown, rid_len, ISSUE_CN_MAX);
		e = ISSUE_ERR_CN_TOO_LONG;
		goto out;
	}
	e = ISSUE_ERR_NONE;
out:
	OPENSSL_free(utf8);
	return e;
}

int issue_csr_parse(const char *b64, size_t len, const char *registration_id,
                    enum issue_keys policy, X509_REQ **out, enum issue_error *err_out, char *why,
                    size_t whylen)
{
	enum issue_error e = ISSUE_ERR_INTERNAL;
	unsigned char *der = NULL;
	const unsigned char *p;
	X509_REQ *req = NULL;
	EVP_PKEY *pk;
	size_t derlen = 0;
	int rc = EMU_EINVAL;
	int v;

	if (out)
		*out = NULL;
	emu_why(why, whylen, "%s", "");
	if (!b64 || !registration_id || !out) {
		emu_why(why, whylen, "no CSR or registration ID");
		goto out;
	}
	if (len > ISSUE_CSR_MAX_B64) {
		e = ISSUE_ERR_TOO_LARGE;
		rc = EMU_ETOOBIG;
		emu_why(why, whylen, "CSR is %zu characters: the limit is %d", len, ISSUE_CSR_MAX_B64);
		goto out;
	}
	e = csr_decode(b64, len, &der, &derlen, why, whylen);
	if (e != ISSUE_ERR_NONE) {
		rc = e == ISSUE_ERR_INTERNAL ? EMU_ENOMEM : EMU_EINVAL;
		goto out;
	}
	e = ISSUE_ERR_NOT_DER;
	if (derlen == 0) {
		emu_why(why, whylen, "CSR is empty");
		goto out;
	}
	if (derlen >= sizeof(pem_begin) - 1 && memcmp(der, pem_begin, sizeof(pem_begin) - 1) == 0) {
		emu_why(why, whylen,
		    "CSR is base64 of PEM text: send base64 of the DER request instead");
		goto out;
	}
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)derlen);
	if (!req) {
		log_openssl_errors("issue", "CSR DER");
		emu_why(why, whylen, "CSR is not a DER PKCS#10 request");
		goto out;
	}
	if (p != der + derlen) {
		emu_why(why, whylen, "CSR has %zu bytes after the DER request",
		    (size_t)(der + derlen - p));
		goto out;
	}
	e = ISSUE_ERR_UNSUPPORTED_KEY;
	pk = X509_REQ_get0_pubkey(req);
	if (!pk) {
		log_openssl_errors("issue", "CSR public key");
		emu_why(why, whylen,
		    "CSR key cannot be read: accepted keys are EC P-256, EC P-384 and"
		    " RSA >= 2048");
		goto out;
	}
	if (!csr_key_ok(pk, policy, why, whylen))
		goto out;
	e = ISSUE_ERR_BAD_SIGNATURE;
	v = X509_REQ_verify(req, pk);
	if (v != 1) {
		log_openssl_errors("issue", "CSR signature");
		emu_why(why, whylen,
		    v == 0 ? "CSR signature does not verify with its own key"
		           : "CSR signature cannot be checked (unsupported algorithm or"
		             " malformed signature)");
		goto out;
	}
	e = csr_cn_ok(req, registration_id, why, whylen);
	if (e != ISSUE_ERR_NONE)
		goto out;
	*out = req;
	req = NULL;
	rc = EMU_OK;
out:
	if (err_out)
		*err_out = rc == EMU_OK ? ISSUE_ERR_NONE : e;
	ERR_clear_error();
	X509_REQ_free(req);
	free(der);
	return rc;
}

/* ---- issuance ------------------------------------------------------------- */

/* basicConstraints CA:FALSE, keyUsage, extendedKeyUsage clientAuth. */
static int add_usage(X509 *x, EVP_PKEY *key)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	int rc = EMU_ENOMEM;

	if (!bc || !ku || !eku)
		goto out;
	bc->ca = 0;
	/* RFC 5280 4.2.1.3 bits: 0 digitalSignature, 2 keyEncipherment (RSA key transport) */
	if (!ASN1_BIT_STRING_set_bit(ku, 0, 1))
		goto out;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA && !ASN1_BIT_STRING_set_bit(ku, 2, 1))
		goto out;
	if (!sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		goto out;
	rc = gen_add_ext(x, NID_basic_constraints, bc, 1);
	if (rc == EMU_OK)
		rc = gen_add_ext(x, NID_key_usage, ku, 1);
	if (rc == EMU_OK)
		rc = gen_add_ext(x, NID_ext_key_usage, eku, 0);
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	/* the object is OpenSSL's static table entry: free only the stack */
	sk_ASN1_OBJECT_free(eku);
	return rc;
}

/* subjectKeyIdentifier of x and authorityKeyIdentifier pointing at issuer. */
static int add_key_ids(X509 *x, X509 *issuer)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	ASN1_OCTET_STRING *ski = ASN1_OCTET_STRING_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	const ASN1_OCTET_STRING *iski = X509_get0_subject_key_id(issuer);
	int rc = EMU_ENOMEM;

	if (!ski || !akid)
		goto out;
	/* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits */
	if (!X509_pubkey_digest(x, EVP_sha1(), md, &len) ||
	    !ASN1_OCTET_STRING_set(ski, md, (int)len))
		goto crypto;
	akid->keyid = ASN1_OCTET_STRING_new();
	if (!akid->keyid)
		goto out;
	if (iski) {
		if (!ASN1_OCTET_STRING_set(akid->keyid, ASN1_STRING_get0_data(iski),
		                           ASN1_STRING_length(iski)))
			goto out;
	} else if (!X509_pubkey_digest(issuer, EVP_sha1(), md, &len) ||
	           !ASN1_OCTET_STRING_set(akid->keyid, md, (int)len)) {
		goto crypto;
	}
	rc = gen_add_ext(x, NID_subject_key_identifier, ski, 0);
	if (rc == EMU_OK)
		rc = gen_add_ext(x, NID_authority_key_identifier, akid, 0);
	goto out;
crypto:
	log_openssl_errors("issue", "key identifier");
	rc = EMU_ECRYPTO;
out:
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(akid);
	return rc;
}

/* Draws a serial: 16 bytes, top bit clear and the next one set, so it is positive
 * and always 127 bits (32 hex digits). hex receives BN_bn2hex's upper-case form. */
int issue_certificate(const struct issue_ca *ca, X509_REQ *csr, const char *cn,
                      int64_t validity_seconds, issue_serial_used_fn serial_used, void *arg,
                      X509 **leaf_out)
{
	X509_NAME *subject = NULL;
	ASN1_INTEGER *serial = NULL;
	X509 *x = NULL;
	EVP_PKEY *pk;
	char hex[41], cn_shown[SHOW_MAX * 4 + 4];
	time_t now, nb, na, ca_na;
	int rc = EMU_EINVAL, tries;

	if (leaf_out)
		*leaf_out = NULL;
	if (!ca || !csr || !cn || !leaf_out || validity_seconds < 1 ||
	    validity_seconds > ISSUE_MAX_VALIDITY)
		return EMU_EINVAL;
	pk = X509_REQ_get0_pubkey(csr);
	if (!pk) {
		ERR_clear_error();
		return EMU_EINVAL;
	}
	show(cn, strlen(cn), cn_shown, sizeof(cn_shown));
	subject = X509_NAME_new();
	if (!subject)
		return EMU_ENOMEM;
	/* MBSTRING_UTF8 checks the encoding and ub-common-name (1..64 characters). */
	if (!X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
	                                (const unsigned char *)cn, -1, -1, 0)) {
		log_openssl_errors("issue", "subject");
		log_error("issue", "cannot issue for CN '%s': not 1-%d UTF-8 characters", cn_shown,
		          ISSUE_CN_MAX);
		rc = EMU_EINVAL;
		goto out;
	}
	now = time(NULL);
	ca_na = x509_not_after(ca->cert);
	if (ca_na <= now) {
		log_error("issue", "cannot issue for CN '%s': the issuing CA has expired",
		          cn_shown);
		rc = EMU_ECRYPTO;
		goto out;
	}
	nb = now - ISSUE_BACKDATE;
	na = now + (time_t)validity_seconds;
	/* a certificate outliving its issuer would be refused when the issuer expires */
	if (na > ca_na)
		na = ca_na;

	rc = EMU_ENOMEM;
	x = X509_new();
	serial = ASN1_INTEGER_new();
	if (!x || !serial)
		goto out;
	rc = EMU_ECRYPTO;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) || !X509_set_pubkey(x, pk) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na)) {
		log_openssl_errors("issue", "certificate fields");
		goto out;
	}
	rc = add_usage(x, pk);
	if (rc == EMU_OK)
		rc = add_key_ids(x, ca->cert);
	if (rc != EMU_OK)
		goto out;

	for (tries = 0;; tries++) {
		if (tries == ISSUE_SERIAL_TRIES) {
			log_error("issue", "no free serial after %d draws for CN '%s'", tries,
			          cn_shown);
			rc = EMU_EEXIST;
			goto out;
		}
		rc = gen_serial(serial, hex);
		if (rc != EMU_OK)
			goto out;
		rc = serial_used ? serial_used(hex, arg) : 0;
		if (rc < 0)
			goto out;
		if (rc == 0)
			break;
		log_warn("issue", "serial %s already issued; drawing another", hex);
	}
	rc = EMU_ECRYPTO;
	if (!X509_set_serialNumber(x, serial)) {
		log_openssl_errors("issue", "serial");
		goto out;
	}
	if (X509_sign(x, ca->key, gen_sign_digest(ca->key)) <= 0) {
		log_openssl_errors("issue", "signature");
		log_error("issue", "cannot sign the certificate for CN '%s'", cn_shown);
		goto out;
	}
	*leaf_out = x;
	x = NULL;
	rc = EMU_OK;
out:
	X509_free(x);
	X509_NAME_free(subject);
	ASN1_INTEGER_free(serial);
	return rc;
}

json_t *issue_chain_json(const struct issue_ca *ca, X509 *leaf)
{
	X509 *certs[3];
	json_t *arr;

	if (!ca || !leaf)
		return NULL;
	certs[0] = leaf;
	certs[1] = ca->cert;
	certs[2] = ca->root;
	arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < 3; i++) {
		char *b64 = x509_to_b64der(certs[i]);

		if (!b64 || json_array_append_new(arr, json_string(b64)) != 0) {
			free(b64);
			json_decref(arr);
			return NULL;
		}
		free(b64);
	}
	return arr;
}

int issue_pubkey_sha256(EVP_PKEY *key, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned char *der = NULL;
	EVP_PKEY *dup = NULL;
	int n, rc = EMU_ECRYPTO;

	if (!out)
		return EMU_EINVAL;
	out[0] = '\0';
	if (!key)
		return EMU_EINVAL;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		/* a compressed point is the same key: hash one canonical encoding */
		dup = EVP_PKEY_dup(key);
		if (!dup || !EVP_PKEY_set_utf8_string_param(
		                dup, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
		                OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED))
			goto out;
		key = dup;
	}
	n = i2d_PUBKEY(key, &der);
	if (n <= 0 || !EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL))
		goto out;
	hex_encode(md, sizeof(md), 1, out);
	rc = EMU_OK;
out:
	if (rc != EMU_OK)
		log_openssl_errors("issue", "public key digest");
	OPENSSL_free(der);
	EVP_PKEY_free(dup);
	return rc;
}

int issue_record_fill(X509 *cert, struct issue_record *rec)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int rc = EMU_EINVAL;

	if (!cert || !rec)
		return EMU_EINVAL;
	memset(rec, 0, sizeof(*rec));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (!hex) {
		rc = EMU_ENOMEM;
		goto out;
	}
	if (strlen(hex) >= sizeof(rec->serial))
		goto out;
	memcpy(rec->serial, hex, strlen(hex) + 1);
	rc = EMU_ECRYPTO;
	x509_thumbprint_sha1(cert, rec->sha1);
	x509_thumbprint_sha256(cert, rec->sha256);
	if (!rec->sha1[0] || !rec->sha256[0])
		goto out;
	clock_iso8601(asn1_time_to_time_t(X509_get0_notBefore(cert)), rec->not_before);
	clock_iso8601(x509_not_after(cert), rec->not_after);
	rc = issue_pubkey_sha256(X509_get0_pubkey(cert), rec->pubkey_sha256);
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}
