/* Unit tests for certs/issue: CSR checks, the issuing CA and issued certificates.
 * Every key, CSR and certificate is generated at run time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "err.h"
#include "textenc.h"

#include "certs/gen.h"
#include "certs/issue.h"
#include "certs/x509.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DAY 86400

/* A two-tier P-384 PKI like the emulator's own, built once. */
static EVP_PKEY *root_key, *issuing_key;
static X509 *root, *issuing;
static struct issue_ca *CA;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int is_ca,
                       int pathlen, int64_t offset, int64_t validity)
{
	struct gen_cert_opts o = {0};
	X509 *x = NULL;

	o.cn = cn;
	o.key = key;
	o.issuer = issuer;
	o.issuer_key = issuer_key;
	o.is_ca = is_ca;
	o.pathlen = pathlen;
	o.eku = is_ca ? GEN_EKU_NONE : GEN_EKU_CLIENT;
	o.not_before_offset = offset;
	o.validity = validity;
	assert_int_equal(gen_cert(&o, &x), EMU_OK);
	return x;
}

static EVP_PKEY *key_of(enum gen_key_type t)
{
	EVP_PKEY *k = NULL;

	assert_int_equal(gen_key(t, &k), EMU_OK);
	return k;
}

static EVP_PKEY *key_named(const char *alg, const char *curve, size_t bits)
{
	EVP_PKEY *k;

	if (curve)
		k = EVP_PKEY_Q_keygen(NULL, NULL, alg, curve);
	else if (bits)
		k = EVP_PKEY_Q_keygen(NULL, NULL, alg, bits);
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	assert_non_null(k);
	return k;
}

static STACK_OF(X509) *stack_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	assert_non_null(s);
	if (a) {
		assert_true(X509_up_ref(a));
		assert_true(sk_X509_push(s, a) > 0);
	}
	if (b) {
		assert_true(X509_up_ref(b));
		assert_true(sk_X509_push(s, b) > 0);
	}
	return s;
}

static int setup(void **state)
{
	STACK_OF(X509) *chain;
	char why[256];
	int rc;

	root_key = key_of(GEN_KEY_P384);
	issuing_key = key_of(GEN_KEY_P384);
	root = make_cert("Issue Test Root", root_key, NULL, NULL, 1, 1, -3600, 3650LL * DAY);
	issuing = make_cert("Issue Test Issuing CA", issuing_key, root, root_key, 1, 0, -3600,
	                    1826LL * DAY);
	chain = stack_of(root, NULL);
	rc = issue_ca_new(issuing, issuing_key, chain, &CA, why, sizeof(why));
	sk_X509_pop_free(chain, X509_free);
	if (rc != EMU_OK)
		fprintf(stderr, "issue_ca_new: %s\n", why);
	return rc == EMU_OK ? 0 : -1;
}

static int teardown(void **state)
{
	issue_ca_free(CA);
	X509_free(root);
	X509_free(issuing);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuing_key);
	return 0;
}

/* base64 DER of a CSR for key with CN=cn (new string). */
static char *csr_b64(EVP_PKEY *key, const char *cn)
{
	X509_REQ *req = NULL;
	char *s;

	assert_int_equal(gen_csr(key, cn, &req), EMU_OK);
	s = gen_csr_to_b64der(req);
	assert_non_null(s);
	X509_REQ_free(req);
	return s;
}

/* A CSR built by hand: raw CN entries (no length checks), any key, md NULL for EdDSA. */
static char *csr_custom(EVP_PKEY *key, const char *const *cns, const int *cn_lens, int n_cns,
                        const EVP_MD *md)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	char *s;

	assert_non_null(req);
	assert_non_null(name);
	assert_true(X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_ASC,
	                                       (const unsigned char *)"Contoso", -1, -1, 0));
	for (int i = 0; i < n_cns; i++)
		assert_true(X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
		                                       (const unsigned char *)cns[i], cn_lens[i],
		                                       -1, 0));
	assert_true(X509_REQ_set_subject_name(req, name));
	assert_true(X509_REQ_set_pubkey(req, key));
	assert_true(X509_REQ_sign(req, key, md) > 0);
	s = gen_csr_to_b64der(req);
	assert_non_null(s);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return s;
}

static X509_REQ *parse_ok(const char *b64, const char *rid, enum issue_keys policy)
{
	enum issue_error e = ISSUE_ERR_INTERNAL;
	X509_REQ *req = NULL;
	char why[256] = "unset";
	int rc = issue_csr_parse(b64, strlen(b64), rid, policy, &req, &e, why, sizeof(why));

	if (rc != EMU_OK)
		fprintf(stderr, "unexpected refusal: %s\n", why);
	assert_int_equal(rc, EMU_OK);
	assert_int_equal(e, ISSUE_ERR_NONE);
	assert_string_equal(why, "");
	assert_non_null(req);
	return req;
}

/* Expects a refusal with error e, return code rc and a reason containing want. */
static void parse_refused(const char *b64, size_t len, const char *rid, enum issue_keys policy,
                          enum issue_error want_e, int want_rc, const char *want)
{
	enum issue_error e = ISSUE_ERR_NONE;
	X509_REQ *req = (X509_REQ *)1;
	char why[512] = "";
	int rc = issue_csr_parse(b64, len, rid, policy, &req, &e, why, sizeof(why));

	if (e != want_e || !strstr(why, want))
		fprintf(stderr, "got error %d, reason '%s'; wanted %d, '%s'\n", e, why, want_e,
		        want);
	assert_int_equal(rc, want_rc);
	assert_int_equal(e, want_e);
	assert_null(req);
	assert_non_null(strstr(why, want));
}

static void refused(const char *b64, const char *rid, enum issue_keys policy,
                    enum issue_error want_e, const char *want)
{
	parse_refused(b64, strlen(b64), rid, policy, want_e, EMU_EINVAL, want);
}

/* ---- CSR ------------------------------------------------------------------ */

static void test_csr_accepted_keys(void **state)
{
	static const enum gen_key_type types[] = {GEN_KEY_P256, GEN_KEY_P384, GEN_KEY_RSA2048};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		EVP_PKEY *k = key_of(types[i]);
		char *b64 = csr_b64(k, "dev1");
		X509_REQ *req = parse_ok(b64, "dev1", ISSUE_KEYS_DEFAULT);

		assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), k), 1);
		X509_REQ_free(req);
		free(b64);
		EVP_PKEY_free(k);
	}
}

static void test_csr_refused_keys(void **state)
{
	static const char *const cn[] = {"dev1"};
	static const int len[] = {4};
	EVP_PKEY *rsa1024 = key_named("RSA", NULL, 1024);
	EVP_PKEY *k1 = key_named("EC", "secp256k1", 0);
	EVP_PKEY *p521 = key_named("EC", "P-521", 0);
	EVP_PKEY *ed = key_named("ED25519", NULL, 0);
	char *b64;

	b64 = csr_b64(rsa1024, "dev1");
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_UNSUPPORTED_KEY,
	        "CSR key is RSA 1024 bits: accepted keys are EC P-256, EC P-384 and RSA >= 2048");
	free(b64);
	b64 = csr_b64(k1, "dev1");
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_UNSUPPORTED_KEY,
	        "CSR key is EC secp256k1: accepted keys are EC P-256, EC P-384 and RSA >= 2048");
	free(b64);
	b64 = csr_b64(p521, "dev1");
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_UNSUPPORTED_KEY, "CSR key is EC P-521");
	free(b64);
	b64 = csr_custom(ed, cn, len, 1, NULL);
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_UNSUPPORTED_KEY,
	        "CSR key is ED25519: accepted keys are");
	free(b64);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(p521);
	EVP_PKEY_free(ed);
}

static void test_csr_explicit_curve_refused(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256);
	char *b64;

	/* the same P-256 key, but its SubjectPublicKeyInfo spells the curve out */
	assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING,
	                                                OSSL_PKEY_EC_ENCODING_EXPLICIT),
	                 1);
	b64 = csr_b64(k, "dev1");
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_UNSUPPORTED_KEY,
	        "CSR key is EC with explicit curve parameters");
	free(b64);
	EVP_PKEY_free(k);
}

static void test_csr_strict_policy(void **state)
{
	EVP_PKEY *p384 = key_of(GEN_KEY_P384);
	EVP_PKEY *p256 = key_of(GEN_KEY_P256);
	EVP_PKEY *rsa = key_of(GEN_KEY_RSA2048);
	char *b64;
	X509_REQ *req;

	b64 = csr_b64(p384, "dev1");
	req = parse_ok(b64, "dev1", ISSUE_KEYS_STRICT);
	X509_REQ_free(req);
	free(b64);
	b64 = csr_b64(p256, "dev1");
	refused(b64, "dev1", ISSUE_KEYS_STRICT, ISSUE_ERR_UNSUPPORTED_KEY,
	        "CSR key is EC P-256: only EC P-384 is accepted");
	free(b64);
	b64 = csr_b64(rsa, "dev1");
	refused(b64, "dev1", ISSUE_KEYS_STRICT, ISSUE_ERR_UNSUPPORTED_KEY,
	        "CSR key is RSA 2048 bits: only EC P-384 is accepted");
	free(b64);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(rsa);
}

/* Decodes b64, lets edit change the DER, and re-encodes it (new string). */
static char *tamper(const char *b64, void (*edit)(unsigned char *, size_t))
{
	unsigned char *der = NULL;
	size_t n = 0;
	char *s;

	assert_int_equal(b64_decode(b64, strlen(b64), &der, &n), EMU_OK);
	edit(der, n);
	s = b64_encode(der, n);
	assert_non_null(s);
	free(der);
	return s;
}

/* The signature BIT STRING ends the DER: its last byte belongs to the signature. */
static void flip_last(unsigned char *der, size_t n)
{
	der[n - 1] ^= 0x01;
}

/* Changes "dev1" in the signed subject to "dev9". */
static void edit_cn(unsigned char *der, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++) {
		if (memcmp(der + i, "dev1", 4) == 0) {
			der[i + 3] = '9';
			return;
		}
	}
	fail_msg("CN not found in the DER");
}

static void test_csr_tampered(void **state)
{
	static const enum gen_key_type types[] = {GEN_KEY_P256, GEN_KEY_P384, GEN_KEY_RSA2048};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		EVP_PKEY *k = key_of(types[i]);
		char *b64 = csr_b64(k, "dev1");
		char *bad = tamper(b64, flip_last);
		char *renamed = tamper(b64, edit_cn);

		refused(bad, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_BAD_SIGNATURE, "CSR signature");
		/* the signature is checked before the name: a forged subject is a bad signature */
		refused(renamed, "dev9", ISSUE_KEYS_DEFAULT, ISSUE_ERR_BAD_SIGNATURE,
		        "CSR signature");
		free(b64);
		free(bad);
		free(renamed);
		EVP_PKEY_free(k);
	}
}

static void test_csr_cn(void **state)
{
	static const char *const two[] = {"dev1", "dev1"};
	static const int two_len[] = {4, 4};
	static const char *const nul[] = {"dev1\0x"};
	static const int nul_len[] = {6};
	static const char *const lng[] = {
	    "a123456789b123456789c123456789d123456789e123456789f123456789g12345"};
	static const int lng_len[] = {66};
	EVP_PKEY *k = key_of(GEN_KEY_P256);
	char *b64;
	X509_REQ *req;

	b64 = csr_b64(k, "dev2");
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_MISMATCH,
	        "CSR subject CN 'dev2' does not match registration ID 'dev1'");
	refused(b64, "dev", ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_MISMATCH, "does not match");
	refused(b64, "dev22", ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_MISMATCH, "does not match");
	free(b64);

	/* case-insensitive, like every other CN comparison of the emulator */
	b64 = csr_b64(k, "Dev-Kitchen.01");
	req = parse_ok(b64, "dev-kitchen.01", ISSUE_KEYS_DEFAULT);
	X509_REQ_free(req);
	free(b64);

	b64 = csr_custom(k, NULL, NULL, 0, EVP_sha256());
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_MISMATCH,
	        "CSR subject has no CN: it must be the registration ID 'dev1'");
	free(b64);
	b64 = csr_custom(k, two, two_len, 2, EVP_sha256());
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_MISMATCH, "CSR subject has 2 CNs");
	free(b64);
	b64 = csr_custom(k, nul, nul_len, 1, EVP_sha256());
	refused(b64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_MISMATCH,
	        "CSR subject CN 'dev1\\x00x' does not match registration ID 'dev1'");
	free(b64);

	/* a matching CN longer than a certificate can carry */
	b64 = csr_custom(k, lng, lng_len, 1, EVP_sha256());
	refused(b64, lng[0], ISSUE_KEYS_DEFAULT, ISSUE_ERR_CN_TOO_LONG,
	        "is 66 characters: a certificate CN holds at most 64");
	free(b64);
	EVP_PKEY_free(k);
}

static void test_csr_encoding(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256);
	X509_REQ *req = NULL;
	char *b64 = csr_b64(k, "dev1");
	char *pem, *b64pem, *wrapped, *with_tail;
	size_t n = strlen(b64), w = 0;

	assert_int_equal(gen_csr(k, "dev1", &req), EMU_OK);

	/* PEM armour is refused with a reason that says what to send */
	pem = gen_csr_to_pem(req);
	refused(pem, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64, "CSR is PEM text");
	b64pem = b64_encode(pem, strlen(pem));
	refused(b64pem, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER, "base64 of PEM text");

	/* line-wrapped base64 (openssl base64 style) and missing padding are fine */
	wrapped = malloc(n * 2 + 8);
	assert_non_null(wrapped);
	for (size_t i = 0; i < n; i++) {
		if (i && i % 64 == 0) {
			wrapped[w++] = '\r';
			wrapped[w++] = '\n';
		}
		wrapped[w++] = b64[i];
	}
	wrapped[w++] = '\n';
	wrapped[w] = '\0';
	X509_REQ_free(parse_ok(wrapped, "dev1", ISSUE_KEYS_DEFAULT));
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = '\0';
	X509_REQ_free(parse_ok(b64, "dev1", ISSUE_KEYS_DEFAULT));

	/* not base64 */
	refused("not base64!", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "CSR is not base64: character '!' at offset 10");
	refused("MIIB-_xx", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "character '-' at offset 4");
	refused("MIIBx", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "does not fit base64 groups");
	refused("MI=B", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "data after '=' padding at offset 3");
	refused("MIIB===", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "character '=' at offset 6");
	refused("MIIBAA=", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "does not fit base64 groups");
	refused("\"MIIB\"", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64,
	        "character '\"' at offset 0");
	parse_refused("MII\0AAAA", 8, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_BASE64, EMU_EINVAL,
	              "character '\\x00' at offset 3");

	/* base64, but not one DER request */
	refused("", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER, "CSR is empty");
	refused("AAAA", "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER,
	        "CSR is not a DER PKCS#10 request");
	{
		char *full = csr_b64(k, "dev1");
		unsigned char *bytes = NULL;
		size_t blen = 0;

		assert_int_equal(b64_decode(full, strlen(full), &bytes, &blen), EMU_OK);
		/* truncated */
		with_tail = b64_encode(bytes, blen - 10);
		refused(with_tail, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER,
		        "not a DER PKCS#10 request");
		free(with_tail);
		/* trailing bytes */
		bytes = realloc(bytes, blen + 3);
		assert_non_null(bytes);
		memcpy(bytes + blen, "\x00\x00\x00", 3);
		with_tail = b64_encode(bytes, blen + 3);
		refused(with_tail, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER,
		        "CSR has 3 bytes after the DER request");
		free(with_tail);
		/* a certificate is DER too, but not a request */
		free(bytes);
		free(full);
	}
	{
		char *cert = x509_to_b64der(issuing);

		refused(cert, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER, "not a DER PKCS#10");
		free(cert);
	}
	free(pem);
	free(b64pem);
	free(wrapped);
	free(b64);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
}

static void test_csr_size_and_args(void **state)
{
	char *big = malloc(ISSUE_CSR_MAX_B64 + 2);
	enum issue_error e = ISSUE_ERR_NONE;
	X509_REQ *req = NULL;
	char why[128];

	assert_non_null(big);
	memset(big, 'A', ISSUE_CSR_MAX_B64 + 1);
	big[ISSUE_CSR_MAX_B64 + 1] = '\0';
	parse_refused(big, ISSUE_CSR_MAX_B64 + 1, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_TOO_LARGE,
	              EMU_ETOOBIG, "CSR is 8193 characters: the limit is 8192");
	/* at the limit the size is fine; the content is what is wrong */
	parse_refused(big, ISSUE_CSR_MAX_B64, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_NOT_DER,
	              EMU_EINVAL, "not a DER");
	/* len is what counts, not a terminator */
	parse_refused(big, SIZE_MAX, "dev1", ISSUE_KEYS_DEFAULT, ISSUE_ERR_TOO_LARGE, EMU_ETOOBIG,
	              "the limit is 8192");
	free(big);

	assert_int_equal(
	    issue_csr_parse(NULL, 0, "dev1", ISSUE_KEYS_DEFAULT, &req, &e, why, sizeof(why)),
	    EMU_EINVAL);
	assert_int_equal(e, ISSUE_ERR_INTERNAL);
	assert_int_equal(
	    issue_csr_parse("AAAA", 4, NULL, ISSUE_KEYS_DEFAULT, &req, &e, why, sizeof(why)),
	    EMU_EINVAL);
	assert_int_equal(
	    issue_csr_parse("AAAA", 4, "dev1", ISSUE_KEYS_DEFAULT, NULL, &e, why, sizeof(why)),
	    EMU_EINVAL);
	/* err_out and why may be NULL */
	assert_int_equal(issue_csr_parse("!!", 2, "dev1", ISSUE_KEYS_DEFAULT, &req, NULL, NULL, 0),
	                 EMU_EINVAL);
	assert_null(req);
}

static void test_error_strings(void **state)
{
	const char *seen[ISSUE_ERR_INTERNAL + 1];

	assert_string_equal(issue_error_string(ISSUE_ERR_NONE), "");
	for (int e = ISSUE_ERR_NOT_BASE64; e <= ISSUE_ERR_INTERNAL; e++) {
		seen[e] = issue_error_string((enum issue_error)e);
		assert_true(strlen(seen[e]) > 8);
		for (int k = ISSUE_ERR_NOT_BASE64; k < e; k++)
			assert_string_not_equal(seen[k], seen[e]);
	}
	assert_string_equal(issue_error_string(ISSUE_ERR_BAD_SIGNATURE),
	                    "CSR signature does not verify");
}

/* ---- issuance ------------------------------------------------------------- */

static X509 *issue_for(EVP_PKEY *k, const char *cn, int64_t validity, time_t *t0, time_t *t1)
{
	char *b64 = csr_b64(k, cn);
	X509_REQ *req = parse_ok(b64, cn, ISSUE_KEYS_DEFAULT);
	X509 *leaf = NULL;

	*t0 = time(NULL);
	assert_int_equal(issue_certificate(CA, req, cn, validity, NULL, NULL, &leaf), EMU_OK);
	*t1 = time(NULL);
	assert_non_null(leaf);
	X509_REQ_free(req);
	free(b64);
	return leaf;
}

static time_t not_before(X509 *x)
{
	struct tm tm;

	assert_true(ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm));
	return timegm(&tm);
}

/* Every field of the certificate profile. */
static void check_profile(X509 *leaf, EVP_PKEY *key, const char *cn, int key_enc)
{
	BASIC_CONSTRAINTS *bc;
	EXTENDED_KEY_USAGE *eku;
	ASN1_OCTET_STRING *ski;
	AUTHORITY_KEYID *akid;
	ASN1_BIT_STRING *ku;
	X509_NAME *subj = X509_get_subject_name(leaf);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	BIGNUM *serial;
	char got_cn[80];
	int crit = -1;

	assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
	/* subject: exactly CN=<cn> */
	assert_int_equal(X509_NAME_entry_count(subj), 1);
	assert_int_equal(x509_common_name(leaf, got_cn, sizeof(got_cn)), EMU_OK);
	assert_string_equal(got_cn, cn);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(issuing)),
	                 0);
	/* serial: positive, 127 bits */
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	assert_non_null(serial);
	assert_false(BN_is_negative(serial));
	assert_int_equal(BN_num_bits(serial), 127);
	BN_free(serial);

	/* exactly five extensions */
	assert_int_equal(X509_get_ext_count(leaf), 5);
	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca, 0);
	assert_null(bc->pathlen);
	BASIC_CONSTRAINTS_free(bc);
	ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
	assert_non_null(ku);
	assert_int_equal(crit, 1);
	ASN1_BIT_STRING_free(ku);
	assert_int_equal(X509_get_key_usage(leaf),
	                 key_enc ? (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)
	                         : KU_DIGITAL_SIGNATURE);
	eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, &crit, NULL);
	assert_non_null(eku);
	assert_int_equal(crit, 0);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	/* SKI = SHA-1 of the key; AKI keyid = the issuing CA's SKI, nothing else */
	ski = X509_get_ext_d2i(leaf, NID_subject_key_identifier, &crit, NULL);
	assert_non_null(ski);
	assert_int_equal(crit, 0);
	assert_true(X509_pubkey_digest(leaf, EVP_sha1(), md, &mdlen));
	assert_int_equal(ASN1_STRING_length(ski), (int)mdlen);
	assert_memory_equal(ASN1_STRING_get0_data(ski), md, mdlen);
	ASN1_OCTET_STRING_free(ski);
	akid = X509_get_ext_d2i(leaf, NID_authority_key_identifier, &crit, NULL);
	assert_non_null(akid);
	assert_int_equal(crit, 0);
	assert_non_null(akid->keyid);
	assert_null(akid->issuer);
	assert_null(akid->serial);
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(issuing)), 0);
	AUTHORITY_KEYID_free(akid);

	/* the CSR's key, signed by the issuing CA with SHA-384 */
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
	assert_int_equal(X509_verify(leaf, issuing_key), 1);
	assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA384);
}

static void test_issue_profile_ec(void **state)
{
	static const enum gen_key_type types[] = {GEN_KEY_P256, GEN_KEY_P384};

	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *k = key_of(types[i]);
		time_t t0, t1;
		X509 *leaf = issue_for(k, "dev1", 30LL * DAY, &t0, &t1);

		check_profile(leaf, k, "dev1", 0);
		/* notBefore = now - 5 min, notAfter = now + validity */
		assert_true(not_before(leaf) >= t0 - 300 && not_before(leaf) <= t1 - 300);
		assert_true(x509_not_after(leaf) >= t0 + 30 * DAY);
		assert_true(x509_not_after(leaf) <= t1 + 30 * DAY);
		X509_free(leaf);
		EVP_PKEY_free(k);
	}
}

static void test_issue_profile_rsa(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_RSA2048);
	time_t t0, t1;
	X509 *leaf = issue_for(k, "rsa-device", 7LL * DAY, &t0, &t1);

	check_profile(leaf, k, "rsa-device", 1);
	X509_free(leaf);
	EVP_PKEY_free(k);
}

static void test_issue_cn_from_caller(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256);
	X509_REQ *req = NULL;
	X509 *leaf = NULL;
	char cn[80];
	X509_NAME *name = X509_NAME_new();

	/* a CSR with more in its subject: only the caller's CN reaches the certificate */
	assert_true(X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_ASC,
	                                       (const unsigned char *)"Evil Corp", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
	                                       (const unsigned char *)"DEV1", -1, -1, 0));
	req = X509_REQ_new();
	assert_true(X509_REQ_set_subject_name(req, name));
	assert_true(X509_REQ_set_pubkey(req, k));
	assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
	assert_int_equal(issue_certificate(CA, req, "dev1", DAY, NULL, NULL, &leaf), EMU_OK);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 1);
	assert_int_equal(x509_common_name(leaf, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, "dev1");
	X509_free(leaf);

	/* bad arguments */
	leaf = (X509 *)1;
	assert_int_equal(issue_certificate(CA, req, "", DAY, NULL, NULL, &leaf), EMU_EINVAL);
	assert_null(leaf);
	assert_int_equal(
	    issue_certificate(CA, req,
	                      "a123456789b123456789c123456789d123456789e123456789f1234567890", DAY,
	                      NULL, NULL, &leaf),
	    EMU_OK);
	X509_free(leaf);
	assert_int_equal(
	    issue_certificate(CA, req,
	                      "a123456789b123456789c123456789d123456789e123456789f123456789012345",
	                      DAY, NULL, NULL, &leaf),
	    EMU_EINVAL);
	assert_int_equal(issue_certificate(CA, req, "bad\xff", DAY, NULL, NULL, &leaf), EMU_EINVAL);
	assert_int_equal(issue_certificate(CA, req, "dev1", 0, NULL, NULL, &leaf), EMU_EINVAL);
	assert_int_equal(issue_certificate(CA, req, "dev1", -5, NULL, NULL, &leaf), EMU_EINVAL);
	assert_int_equal(
	    issue_certificate(CA, req, "dev1", ISSUE_MAX_VALIDITY + 1, NULL, NULL, &leaf),
	    EMU_EINVAL);
	assert_int_equal(issue_certificate(NULL, req, "dev1", DAY, NULL, NULL, &leaf), EMU_EINVAL);
	assert_int_equal(issue_certificate(CA, NULL, "dev1", DAY, NULL, NULL, &leaf), EMU_EINVAL);
	assert_int_equal(issue_certificate(CA, req, NULL, DAY, NULL, NULL, &leaf), EMU_EINVAL);
	assert_null(leaf);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
}

/* Serial callback: answers "taken" for the first `taken` calls, records what it saw. */
struct serial_log {
	int calls;
	int taken;
	int fail_with;
	char seen[16][41];
};

static int serial_used(const char *hex, void *arg)
{
	struct serial_log *l = arg;

	assert_true(l->calls < 16);
	assert_int_equal(strlen(hex), 32);
	snprintf(l->seen[l->calls], sizeof(l->seen[0]), "%s", hex);
	l->calls++;
	if (l->fail_with)
		return l->fail_with;
	return l->calls <= l->taken ? 1 : 0;
}

static void test_issue_serials(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256);
	char *b64 = csr_b64(k, "dev1");
	X509_REQ *req = parse_ok(b64, "dev1", ISSUE_KEYS_DEFAULT);
	struct serial_log l;
	struct issue_record r1, r2;
	X509 *a = NULL, *b = NULL;

	/* two issues for the same CSR: different serials, the callback saw the final one */
	memset(&l, 0, sizeof(l));
	assert_int_equal(issue_certificate(CA, req, "dev1", DAY, serial_used, &l, &a), EMU_OK);
	assert_int_equal(l.calls, 1);
	assert_int_equal(issue_record_fill(a, &r1), EMU_OK);
	assert_string_equal(r1.serial, l.seen[0]);
	assert_int_equal(issue_certificate(CA, req, "dev1", DAY, NULL, NULL, &b), EMU_OK);
	assert_int_equal(issue_record_fill(b, &r2), EMU_OK);
	assert_string_not_equal(r1.serial, r2.serial);
	assert_int_equal(strlen(r1.serial), 32);
	X509_free(a);
	X509_free(b);

	/* taken twice: the third draw is used */
	memset(&l, 0, sizeof(l));
	l.taken = 2;
	assert_int_equal(issue_certificate(CA, req, "dev1", DAY, serial_used, &l, &a), EMU_OK);
	assert_int_equal(l.calls, 3);
	assert_int_equal(issue_record_fill(a, &r1), EMU_OK);
	assert_string_equal(r1.serial, l.seen[2]);
	assert_string_not_equal(l.seen[0], l.seen[1]);
	assert_string_not_equal(l.seen[1], l.seen[2]);
	assert_int_equal(X509_verify(a, issuing_key), 1);
	X509_free(a);

	/* always taken: gives up */
	memset(&l, 0, sizeof(l));
	l.taken = 100;
	a = (X509 *)1;
	assert_int_equal(issue_certificate(CA, req, "dev1", DAY, serial_used, &l, &a), EMU_EEXIST);
	assert_int_equal(l.calls, ISSUE_SERIAL_TRIES);
	assert_null(a);

	/* the store fails: its code comes back */
	memset(&l, 0, sizeof(l));
	l.fail_with = EMU_ESTORE;
	assert_int_equal(issue_certificate(CA, req, "dev1", DAY, serial_used, &l, &a), EMU_ESTORE);
	assert_int_equal(l.calls, 1);
	assert_null(a);

	X509_REQ_free(req);
	free(b64);
	EVP_PKEY_free(k);
}

/* An issuing CA under the test root that lives `life` more seconds. */
static struct issue_ca *short_ca(EVP_PKEY *key, int64_t life, X509 **cert_out)
{
	STACK_OF(X509) *chain = stack_of(root, NULL);
	struct issue_ca *ca = NULL;
	char why[256];
	X509 *c = make_cert("Short CA", key, root, root_key, 1, 0, -600, 600 + life);

	assert_int_equal(issue_ca_new(c, key, chain, &ca, why, sizeof(why)), EMU_OK);
	sk_X509_pop_free(chain, X509_free);
	*cert_out = c;
	return ca;
}

static void test_issue_validity(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256), *ck = key_of(GEN_KEY_P256);
	char *b64 = csr_b64(k, "dev1");
	X509_REQ *req = parse_ok(b64, "dev1", ISSUE_KEYS_DEFAULT);
	struct issue_ca *ca;
	X509 *leaf = NULL, *c = NULL;
	time_t t0, t1;

	/* a minute: short periods are allowed so tests can watch a certificate expire */
	t0 = time(NULL);
	assert_int_equal(issue_certificate(CA, req, "dev1", 60, NULL, NULL, &leaf), EMU_OK);
	t1 = time(NULL);
	assert_true(x509_not_after(leaf) >= t0 + 60 && x509_not_after(leaf) <= t1 + 60);
	assert_true(not_before(leaf) >= t0 - 300 && not_before(leaf) <= t1 - 300);
	X509_free(leaf);

	/* clamped to the issuing CA's notAfter; P-256 issuer signs with SHA-256 */
	ca = short_ca(ck, DAY, &c);
	assert_int_equal(issue_certificate(ca, req, "dev1", 30LL * DAY, NULL, NULL, &leaf), EMU_OK);
	assert_int_equal(x509_not_after(leaf), x509_not_after(c));
	assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_verify(leaf, ck), 1);
	X509_free(leaf);
	issue_ca_free(ca);
	X509_free(c);

	/* an issuing CA that expired after it was loaded refuses to sign */
	ca = short_ca(ck, 1, &c);
	sleep(2);
	leaf = (X509 *)1;
	assert_int_equal(issue_certificate(ca, req, "dev1", DAY, NULL, NULL, &leaf), EMU_ECRYPTO);
	assert_null(leaf);
	issue_ca_free(ca);
	X509_free(c);

	X509_REQ_free(req);
	free(b64);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ck);
}

static void test_chain_json_and_record(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P384);
	char *b64 = csr_b64(k, "dev1");
	X509_REQ *req = parse_ok(b64, "dev1", ISSUE_KEYS_STRICT);
	X509 *leaf = NULL, *got[3] = {NULL, NULL, NULL}, *anchor = NULL;
	STACK_OF(X509) *untrusted, *anchors;
	struct issue_record rec;
	char sha1[41], sha256[65], pk[65], when[32], why[256];
	json_t *arr;
	BIGNUM *bn;
	char *hex;
	int depth = -1;

	assert_int_equal(issue_certificate(CA, req, "dev1", 7LL * DAY, NULL, NULL, &leaf), EMU_OK);
	arr = issue_chain_json(CA, leaf);
	assert_non_null(arr);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 3);
	for (size_t i = 0; i < 3; i++) {
		const char *s = json_string_value(json_array_get(arr, i));
		unsigned char *der = NULL;
		size_t n = 0;

		assert_non_null(s);
		assert_null(strchr(s, '\n'));
		assert_null(strstr(s, "BEGIN"));
		assert_int_equal(b64_decode(s, strlen(s), &der, &n), EMU_OK);
		assert_int_equal(x509_parse_der(der, n, &got[i]), EMU_OK);
		free(der);
	}
	assert_int_equal(X509_cmp(got[0], leaf), 0);
	assert_int_equal(X509_cmp(got[1], issuing), 0);
	assert_int_equal(X509_cmp(got[2], root), 0);
	untrusted = stack_of(got[1], NULL);
	anchors = stack_of(got[2], NULL);
	assert_int_equal(
	    x509_verify_chain(got[0], untrusted, anchors, 0, &anchor, &depth, why, sizeof(why)),
	    EMU_OK);
	assert_int_equal(X509_cmp(anchor, root), 0);
	assert_int_equal(depth, 2);
	sk_X509_pop_free(untrusted, X509_free);
	sk_X509_pop_free(anchors, X509_free);
	json_decref(arr);
	assert_null(issue_chain_json(CA, NULL));
	assert_null(issue_chain_json(NULL, leaf));

	/* the record DPS keeps */
	assert_int_equal(issue_record_fill(leaf, &rec), EMU_OK);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	hex = BN_bn2hex(bn);
	assert_string_equal(rec.serial, hex);
	OPENSSL_free(hex);
	BN_free(bn);
	x509_thumbprint_sha1(leaf, sha1);
	x509_thumbprint_sha256(leaf, sha256);
	assert_string_equal(rec.sha1, sha1);
	assert_string_equal(rec.sha256, sha256);
	clock_iso8601(not_before(leaf), when);
	assert_string_equal(rec.not_before, when);
	clock_iso8601(x509_not_after(leaf), when);
	assert_string_equal(rec.not_after, when);
	assert_int_equal(strlen(rec.not_after), 20);
	assert_int_equal(issue_pubkey_sha256(X509_REQ_get0_pubkey(req), pk), EMU_OK);
	assert_string_equal(rec.pubkey_sha256, pk);
	assert_int_equal(issue_record_fill(NULL, &rec), EMU_EINVAL);

	/* the issuing chain the CA exposes */
	assert_int_equal(sk_X509_num(issue_ca_chain(CA)), 2);
	assert_ptr_equal(sk_X509_value(issue_ca_chain(CA), 0), issue_ca_cert(CA));
	assert_ptr_equal(sk_X509_value(issue_ca_chain(CA), 1), issue_ca_root(CA));
	assert_int_equal(X509_cmp(issue_ca_cert(CA), issuing), 0);
	assert_int_equal(X509_cmp(issue_ca_root(CA), root), 0);

	for (size_t i = 0; i < 3; i++)
		X509_free(got[i]);
	X509_free(leaf);
	X509_REQ_free(req);
	free(b64);
	EVP_PKEY_free(k);
}

static void test_pubkey_sha256(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256), *other = key_of(GEN_KEY_P256);
	EVP_PKEY *rsa = key_of(GEN_KEY_RSA2048);
	EVP_PKEY *compressed = EVP_PKEY_dup(k);
	unsigned char md[32], *der = NULL;
	char a[65], b[65], c[65], want[65];
	char *b64;
	X509_REQ *req;
	int n;

	assert_int_equal(issue_pubkey_sha256(k, a), EMU_OK);
	assert_int_equal(strlen(a), 64);
	/* it is the SHA-256 of the DER SubjectPublicKeyInfo, upper-case */
	n = i2d_PUBKEY(k, &der);
	assert_true(n > 0);
	assert_true(EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL));
	OPENSSL_free(der);
	hex_encode(md, sizeof(md), 1, want);
	assert_string_equal(a, want);

	assert_int_equal(issue_pubkey_sha256(other, b), EMU_OK);
	assert_string_not_equal(a, b);
	assert_int_equal(issue_pubkey_sha256(rsa, c), EMU_OK);
	assert_int_equal(strlen(c), 64);

	/* the same key sent as a compressed point gives the same value */
	assert_non_null(compressed);
	assert_int_equal(
	    EVP_PKEY_set_utf8_string_param(compressed, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
	                                   OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
	    1);
	b64 = csr_b64(compressed, "dev1");
	req = parse_ok(b64, "dev1", ISSUE_KEYS_DEFAULT);
	der = NULL;
	n = i2d_PUBKEY(X509_REQ_get0_pubkey(req), &der);
	assert_int_equal(n, 59); /* 26 bytes of header + 33-byte compressed point */
	OPENSSL_free(der);
	assert_int_equal(issue_pubkey_sha256(X509_REQ_get0_pubkey(req), b), EMU_OK);
	assert_string_equal(a, b);
	X509_REQ_free(req);
	free(b64);

	assert_int_equal(issue_pubkey_sha256(NULL, b), EMU_EINVAL);
	assert_string_equal(b, "");
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(compressed);
}

/* ---- issuing CA checks ----------------------------------------------------- */

/* A certificate with extensions given in openssl config syntax (NULL = leave out). */
static X509 *custom_ca(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *bc, const char *ku)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	ASN1_INTEGER *serial;

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	serial = ASN1_INTEGER_new();
	assert_true(ASN1_INTEGER_set(serial, 4242));
	assert_true(X509_set_serialNumber(x, serial));
	ASN1_INTEGER_free(serial);
	assert_true(X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
	                                       MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)));
	assert_true(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_true(X509_gmtime_adj(X509_getm_notAfter(x), 365L * DAY));
	assert_true(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if (bc) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, bc);
		assert_non_null(ext);
		assert_true(X509_add_ext(x, ext, -1));
		X509_EXTENSION_free(ext);
	}
	if (ku) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, ku);
		assert_non_null(ext);
		assert_true(X509_add_ext(x, ext, -1));
		X509_EXTENSION_free(ext);
	}
	assert_true(
	    X509_sign(x, issuer_key ? issuer_key : key,
	              EVP_PKEY_get_base_id(issuer_key ? issuer_key : key) == EVP_PKEY_ED25519
	                  ? NULL
	                  : EVP_sha256()) > 0);
	return x;
}

static void ca_refused(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, const char *want)
{
	struct issue_ca *ca = (struct issue_ca *)1;
	char why[512] = "";
	int rc = issue_ca_new(cert, key, chain, &ca, why, sizeof(why));

	if (!strstr(why, want))
		fprintf(stderr, "reason '%s', wanted '%s'\n", why, want);
	assert_int_equal(rc, EMU_ECRYPTO);
	assert_null(ca);
	assert_non_null(strstr(why, want));
}

static void test_ca_checks(void **state)
{
	EVP_PKEY *k = key_of(GEN_KEY_P256), *k2 = key_of(GEN_KEY_P256);
	EVP_PKEY *ed = key_named("ED25519", NULL, 0), *rsa1024 = key_named("RSA", NULL, 1024);
	STACK_OF(X509) *with_root = stack_of(root, NULL), *chain;
	X509 *leaf, *no_kcs, *self, *mid, *deep, *expired, *young, *edca, *weak, *other_root;
	X509 *under_root;
	struct issue_ca *ca = NULL;
	char why[512];

	/* copies of the issuing CA in the chain are ignored */
	chain = stack_of(issuing, root);
	assert_int_equal(issue_ca_new(issuing, issuing_key, chain, &ca, why, sizeof(why)), EMU_OK);
	assert_string_equal(why, "");
	assert_int_equal(X509_cmp(issue_ca_root(ca), root), 0);
	issue_ca_free(ca);
	sk_X509_pop_free(chain, X509_free);

	ca_refused(issuing, k, with_root,
	           "the issuing CA key does not belong to the issuing CA certificate");
	leaf = make_cert("leaf", k, root, root_key, 0, -1, -60, DAY);
	ca_refused(leaf, k, with_root, "is not a CA certificate (basicConstraints CA:TRUE");
	no_kcs = custom_ca("no kcs", k, root, root_key, "critical,CA:TRUE", "digitalSignature");
	ca_refused(no_kcs, k, with_root, "cannot sign certificates (keyUsage lacks keyCertSign)");
	X509_free(no_kcs);
	no_kcs = custom_ca("no ku", k, root, root_key, "critical,CA:TRUE", NULL);
	ca_refused(no_kcs, k, with_root, "keyUsage lacks keyCertSign");
	self = make_cert("self", k, NULL, NULL, 1, 0, -60, DAY);
	ca_refused(self, k, with_root, "is self-signed: the issuing CA must be signed by a root");
	expired = make_cert("expired", k, root, root_key, 1, 0, -10 * DAY, DAY);
	ca_refused(expired, k, with_root, "expired on ");
	young = make_cert("young", k, root, root_key, 1, 0, DAY, DAY);
	ca_refused(young, k, with_root, "is not valid before ");
	edca = custom_ca("ed", ed, root, root_key, "critical,CA:TRUE", "keyCertSign");
	ca_refused(edca, ed, with_root, "cannot issue device certificates (ED25519)");
	weak = custom_ca("weak", rsa1024, root, root_key, "critical,CA:TRUE", "keyCertSign");
	ca_refused(weak, rsa1024, with_root, "(RSA 1024 bits)");

	/* chain problems */
	mid = make_cert("mid", k2, root, root_key, 1, 1, -60, DAY);
	deep = make_cert("deep", k, mid, k2, 1, 0, -60, DAY);
	chain = stack_of(mid, root);
	ca_refused(deep, k, chain, "is 2 levels below its root");
	sk_X509_pop_free(chain, X509_free);
	chain = stack_of(mid, NULL);
	ca_refused(deep, k, chain, "the chain holds no self-signed root for");
	sk_X509_pop_free(chain, X509_free);
	ca_refused(deep, k, NULL, "holds no self-signed root");
	other_root = make_cert("other root", k2, NULL, NULL, 1, 1, -60, DAY);
	chain = stack_of(other_root, NULL);
	under_root = make_cert("under root", k, root, root_key, 1, 0, -60, DAY);
	ca_refused(under_root, k, chain,
	           "the chain does not lead the issuing CA certificate to a root");
	sk_X509_pop_free(chain, X509_free);
	/* the right root among unrelated certificates is found */
	chain = stack_of(other_root, mid);
	assert_true(X509_up_ref(root));
	assert_true(sk_X509_push(chain, root) > 0);
	assert_int_equal(issue_ca_new(under_root, k, chain, &ca, why, sizeof(why)), EMU_OK);
	assert_int_equal(X509_cmp(issue_ca_root(ca), root), 0);
	issue_ca_free(ca);
	sk_X509_pop_free(chain, X509_free);

	assert_int_equal(issue_ca_new(NULL, k, NULL, &ca, why, sizeof(why)), EMU_EINVAL);
	assert_int_equal(issue_ca_new(issuing, NULL, NULL, &ca, why, sizeof(why)), EMU_EINVAL);
	issue_ca_free(NULL);
	assert_null(issue_ca_cert(NULL));
	assert_null(issue_ca_chain(NULL));

	X509_free(under_root);
	X509_free(other_root);
	X509_free(leaf);
	X509_free(no_kcs);
	X509_free(self);
	X509_free(mid);
	X509_free(deep);
	X509_free(expired);
	X509_free(young);
	X509_free(edca);
	X509_free(weak);
	sk_X509_pop_free(with_root, X509_free);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csr_accepted_keys),
	    cmocka_unit_test(test_csr_refused_keys),
	    cmocka_unit_test(test_csr_explicit_curve_refused),
	    cmocka_unit_test(test_csr_strict_policy),
	    cmocka_unit_test(test_csr_tampered),
	    cmocka_unit_test(test_csr_cn),
	    cmocka_unit_test(test_csr_encoding),
	    cmocka_unit_test(test_csr_size_and_args),
	    cmocka_unit_test(test_error_strings),
	    cmocka_unit_test(test_issue_profile_ec),
	    cmocka_unit_test(test_issue_profile_rsa),
	    cmocka_unit_test(test_issue_cn_from_caller),
	    cmocka_unit_test(test_issue_serials),
	    cmocka_unit_test(test_issue_validity),
	    cmocka_unit_test(test_chain_json_and_record),
	    cmocka_unit_test(test_pubkey_sha256),
	    cmocka_unit_test(test_ca_checks),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
