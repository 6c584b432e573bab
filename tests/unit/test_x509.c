/* Unit tests for certs/x509: parsing, thumbprints, names, chain validation.
 * Every key and certificate is generated at run time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "err.h"
#include "textenc.h"

#include "certs/gen.h"
#include "certs/x509.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400

/* A small PKI built once for all tests. */
struct pki {
	EVP_PKEY *root_key, *inter_key, *other_key, *leaf_key;
	X509 *root;       /* CN=Test Root */
	X509 *inter;      /* CN=Test Intermediate, issued by root */
	X509 *leaf;       /* CN=dev1, O=Contoso, issued by inter, clientAuth */
	X509 *leaf_root;  /* CN=dev2, issued by root */
	X509 *other_root; /* an unrelated root */
};

static struct pki P;

static X509 *make_cert(const char *cn, const char *org, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *issuer_key, int is_ca, int pathlen, int eku, int64_t offset,
                       int64_t validity)
{
	struct gen_cert_opts o = {0};
	X509 *x = NULL;

	o.cn = cn;
	o.org = org;
	o.key = key;
	o.issuer = issuer;
	o.issuer_key = issuer_key;
	o.is_ca = is_ca;
	o.pathlen = pathlen;
	o.eku = eku;
	o.not_before_offset = offset;
	o.validity = validity;
	assert_int_equal(gen_cert(&o, &x), EMU_OK);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *make_key(void)
{
	EVP_PKEY *k = NULL;

	assert_int_equal(gen_key(GEN_KEY_P256, &k), EMU_OK);
	return k;
}

static STACK_OF(X509) *stack_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	assert_non_null(sk);
	if (a)
		assert_true(sk_X509_push(sk, a) > 0);
	if (b)
		assert_true(sk_X509_push(sk, b) > 0);
	return sk;
}

static int setup(void **state)
{
	P.root_key = make_key();
	P.inter_key = make_key();
	P.other_key = make_key();
	P.leaf_key = make_key();
	P.root = make_cert("Test Root", NULL, P.root_key, NULL, NULL, 1, -1, GEN_EKU_NONE, -60,
	                   3650LL * DAY);
	P.inter = make_cert("Test Intermediate", NULL, P.inter_key, P.root, P.root_key, 1, -1,
	                    GEN_EKU_NONE, -60, 365LL * DAY);
	P.leaf = make_cert("dev1", "Contoso", P.leaf_key, P.inter, P.inter_key, 0, -1,
	                   GEN_EKU_CLIENT, -60, 30LL * DAY);
	P.leaf_root = make_cert("dev2", NULL, P.leaf_key, P.root, P.root_key, 0, -1, GEN_EKU_CLIENT,
	                        -60, 30LL * DAY);
	P.other_root = make_cert("Other Root", NULL, P.other_key, NULL, NULL, 1, -1, GEN_EKU_NONE,
	                         -60, 3650LL * DAY);
	return 0;
}

static int teardown(void **state)
{
	X509_free(P.root);
	X509_free(P.inter);
	X509_free(P.leaf);
	X509_free(P.leaf_root);
	X509_free(P.other_root);
	EVP_PKEY_free(P.root_key);
	EVP_PKEY_free(P.inter_key);
	EVP_PKEY_free(P.other_key);
	EVP_PKEY_free(P.leaf_key);
	return 0;
}

/* Replaces every "\n" with "\r\n". */
static char *crlf(const char *s)
{
	size_t n = strlen(s), k = 0;
	char *o = malloc(2 * n + 1);

	assert_non_null(o);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	return o;
}

static void expect_same(const char *text, X509 *want)
{
	X509 *x = NULL;

	assert_int_equal(x509_parse_any(text, &x), EMU_OK);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, want), 0);
	X509_free(x);
}

static void expect_invalid(const char *text)
{
	X509 *x = (X509 *)&x; /* must be reset to NULL */

	assert_int_not_equal(x509_parse_any(text, &x), EMU_OK);
	assert_null(x);
}

static void test_parse_pem(void **state)
{
	char *pem = x509_to_pem(P.leaf);
	char *w, *c;
	size_t n;

	assert_non_null(pem);
	assert_memory_equal(pem, "-----BEGIN CERTIFICATE-----\n", 28);
	expect_same(pem, P.leaf);

	n = strlen(pem) + 16;
	w = malloc(n);
	assert_non_null(w);
	snprintf(w, n, "  \r\n\t%s\r\n  ", pem ? pem : ""); /* gcc cannot see the assert */
	expect_same(w, P.leaf);

	c = crlf(pem);
	expect_same(c, P.leaf);
	free(c);
	free(w);
	free(pem);
}

static void test_parse_b64_der(void **state)
{
	char *b64 = x509_to_b64der(P.leaf);
	unsigned char *der = NULL;
	size_t n, k = 0;
	char *wrapped, *nopad;
	int len;

	assert_non_null(b64);
	assert_null(strchr(b64, '\n'));
	expect_same(b64, P.leaf);

	/* same DER as i2d_X509 */
	len = i2d_X509(P.leaf, &der);
	assert_true(len > 0);
	{
		char *mine = b64_encode(der, (size_t)len);
		assert_string_equal(mine, b64);
		free(mine);
	}
	OPENSSL_free(der);

	/* wrapped at 64 columns with CRLF and surrounding blanks */
	n = strlen(b64);
	wrapped = malloc(n + n / 64 * 2 + 16);
	assert_non_null(wrapped);
	wrapped[k++] = ' ';
	for (size_t i = 0; i < n; i++) {
		wrapped[k++] = b64[i];
		if (i % 64 == 63) {
			wrapped[k++] = '\r';
			wrapped[k++] = '\n';
		}
	}
	wrapped[k++] = '\n';
	wrapped[k] = '\0';
	expect_same(wrapped, P.leaf);

	/* padding stripped */
	nopad = strdup(b64);
	assert_non_null(nopad);
	while (n > 0 && nopad[n - 1] == '=')
		nopad[--n] = '\0';
	expect_same(nopad, P.leaf);

	free(nopad);
	free(wrapped);
	free(b64);
}

static void test_parse_b64_pem(void **state)
{
	char *pem = x509_to_pem(P.inter);
	char *b64;

	assert_non_null(pem);
	b64 = b64_encode(pem, strlen(pem));
	assert_non_null(b64);
	expect_same(b64, P.inter);
	free(b64);
	free(pem);
}

static void test_parse_garbage(void **state)
{
	unsigned char *der = NULL, *der2;
	char *b64;
	int len;
	X509 *x = NULL;

	expect_invalid("");
	expect_invalid("   \r\n ");
	expect_invalid("not base64 at all!");
	expect_invalid("QUJDRA==");         /* "ABCD" */
	expect_invalid("LS0tLS1CRUdJTiBD"); /* "-----BEGIN C" */
	expect_invalid("-----BEGIN CERTIFICATE-----\nQUJDRA==\n-----END CERTIFICATE-----\n");
	expect_invalid("-----BEGIN CERTIFICATE-----\nMIIB");
	assert_int_equal(x509_parse_any(NULL, &x), EMU_EINVAL);

	/* DER followed by one more byte */
	len = i2d_X509(P.leaf, &der);
	assert_true(len > 0);
	der2 = malloc((size_t)len + 1);
	assert_non_null(der2);
	memcpy(der2, der, (size_t)len);
	der2[len] = 0;
	b64 = b64_encode(der2, (size_t)len + 1);
	expect_invalid(b64);
	assert_int_equal(x509_parse_der(der2, (size_t)len + 1, &x), EMU_EINVAL);
	assert_null(x);
	assert_int_equal(x509_parse_der(der2, (size_t)len, &x), EMU_OK);
	assert_int_equal(X509_cmp(x, P.leaf), 0);
	X509_free(x);
	x = NULL;
	/* truncated DER */
	assert_int_equal(x509_parse_der(der2, (size_t)len - 1, &x), EMU_EINVAL);
	assert_int_equal(x509_parse_der(der2, 0, &x), EMU_EINVAL);
	free(b64);
	free(der2);
	OPENSSL_free(der);

	/* oversized input is refused before decoding */
	{
		size_t big = 200 * 1024;
		char *s = malloc(big + 1);
		assert_non_null(s);
		memset(s, 'A', big);
		s[big] = '\0';
		assert_int_equal(x509_parse_any(s, &x), EMU_ETOOBIG);
		free(s);
	}
}

static void test_parse_pem_chain(void **state)
{
	char *a = x509_to_pem(P.leaf), *b = x509_to_pem(P.inter), *c = x509_to_pem(P.root);
	char *key = gen_key_to_pem(P.leaf_key);
	char buf[16384];
	STACK_OF(X509) *sk = NULL;
	int n;

	n = snprintf(buf, sizeof(buf), "%s%s\n%s%s", a, key, b, c);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_int_equal(x509_parse_pem_chain(buf, (size_t)n, &sk), EMU_OK);
	assert_int_equal(sk_X509_num(sk), 3);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), P.leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), P.inter), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 2), P.root), 0);
	sk_X509_pop_free(sk, X509_free);
	sk = NULL;

	/* no certificate */
	assert_int_equal(x509_parse_pem_chain("hello", 5, &sk), EMU_EINVAL);
	assert_null(sk);
	assert_int_equal(x509_parse_pem_chain(key, strlen(key), &sk), EMU_EINVAL);

	/* second block malformed */
	n = snprintf(buf, sizeof(buf),
	             "%s-----BEGIN CERTIFICATE-----\nQUJDRA==\n"
	             "-----END CERTIFICATE-----\n",
	             a);
	assert_int_equal(x509_parse_pem_chain(buf, (size_t)n, &sk), EMU_EINVAL);
	assert_null(sk);

	/* length is honoured: only the first block */
	assert_int_equal(x509_parse_pem_chain(buf, strlen(a), &sk), EMU_OK);
	assert_int_equal(sk_X509_num(sk), 1);
	sk_X509_pop_free(sk, X509_free);

	OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(a);
	free(b);
	free(c);
}

/* Independent digest: DER bytes through EVP_Digest, upper-case hex. */
static void digest_hex(X509 *x, const EVP_MD *md, char *out)
{
	unsigned char *der = NULL, d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;
	int len = i2d_X509(x, &der);

	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, d, &dn, md, NULL), 1);
	for (unsigned int i = 0; i < dn; i++)
		snprintf(out + 2 * i, 3, "%02X", d[i]);
	OPENSSL_free(der);
}

static void test_thumbprints(void **state)
{
	char sha1[41], sha256[65], want1[41], want256[65], alt[200];
	size_t k = 0;

	x509_thumbprint_sha1(P.leaf, sha1);
	x509_thumbprint_sha256(P.leaf, sha256);
	digest_hex(P.leaf, EVP_sha1(), want1);
	digest_hex(P.leaf, EVP_sha256(), want256);
	assert_int_equal(strlen(sha1), 40);
	assert_int_equal(strlen(sha256), 64);
	assert_string_equal(sha1, want1);
	assert_string_equal(sha256, want256);

	assert_true(x509_thumbprint_matches(P.leaf, sha1));
	assert_true(x509_thumbprint_matches(P.leaf, sha256));
	/* lower case with ':' separators, as `openssl x509 -fingerprint` prints */
	for (size_t i = 0; i < 40; i++) {
		alt[k++] = (char)tolower((unsigned char)sha1[i]);
		if (i % 2 == 1 && i < 39)
			alt[k++] = ':';
	}
	alt[k] = '\0';
	assert_true(x509_thumbprint_matches(P.leaf, alt));
	assert_false(x509_thumbprint_matches(P.inter, alt));
	assert_false(x509_thumbprint_matches(P.inter, sha256));

	/* wrong lengths and characters */
	memcpy(alt, sha1, 39);
	alt[39] = '\0';
	assert_false(x509_thumbprint_matches(P.leaf, alt));
	memcpy(alt, sha1, 41);
	alt[0] = 'G';
	assert_false(x509_thumbprint_matches(P.leaf, alt));
	assert_false(x509_thumbprint_matches(P.leaf, ""));
	snprintf(alt, sizeof(alt), "%s00", sha256);
	assert_false(x509_thumbprint_matches(P.leaf, alt));
}

static void test_common_name(void **state)
{
	char cn[64], small[4], fit[5];
	X509 *x;
	X509_NAME *name;

	assert_int_equal(x509_common_name(P.leaf, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, "dev1");
	assert_int_equal(x509_common_name(P.inter, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, "Test Intermediate");
	assert_int_equal(x509_common_name(P.leaf, small, sizeof(small)), EMU_ETOOBIG);
	assert_int_equal(x509_common_name(P.leaf, fit, sizeof(fit)), EMU_OK);
	assert_string_equal(fit, "dev1");

	/* a certificate whose subject has no CN */
	x = X509_new();
	assert_non_null(x);
	name = X509_NAME_new();
	assert_true(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	                                       (const unsigned char *)"NoCN Inc", -1, -1, 0));
	assert_true(X509_set_subject_name(x, name));
	assert_true(X509_set_issuer_name(x, name));
	assert_true(X509_set_pubkey(x, P.leaf_key));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_true(X509_sign(x, P.leaf_key, EVP_sha256()) > 0);
	assert_int_equal(x509_common_name(x, cn, sizeof(cn)), EMU_ENOTFOUND);
	X509_NAME_free(name);
	X509_free(x);
}

static void test_names_strings(void **state)
{
	char *s = x509_subject_string(P.leaf);
	char *i = x509_issuer_string(P.leaf);

	assert_string_equal(s, "CN=dev1,O=Contoso");
	assert_string_equal(i, "CN=Test Intermediate");
	free(s);
	free(i);
}

static void test_info_json(void **state)
{
	json_t *j = x509_info_json(P.leaf);
	char sha1[41], sha256[65], na[32], nb_want[32];
	BIGNUM *bn;
	char *serial;
	const char *nb;

	assert_non_null(j);
	x509_thumbprint_sha1(P.leaf, sha1);
	x509_thumbprint_sha256(P.leaf, sha256);
	assert_string_equal(json_string_value(json_object_get(j, "subjectName")),
	                    "CN=dev1, O=Contoso");
	assert_string_equal(json_string_value(json_object_get(j, "issuerName")),
	                    "CN=Test Intermediate");
	assert_string_equal(json_string_value(json_object_get(j, "sha1Thumbprint")), sha1);
	assert_string_equal(json_string_value(json_object_get(j, "sha256Thumbprint")), sha256);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);

	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(P.leaf), NULL);
	serial = BN_bn2hex(bn);
	assert_string_equal(json_string_value(json_object_get(j, "serialNumber")), serial);
	for (const char *p = serial; *p; p++)
		assert_false(islower((unsigned char)*p));
	OPENSSL_free(serial);
	BN_free(bn);

	clock_iso8601(x509_not_after(P.leaf), na);
	assert_string_equal(json_string_value(json_object_get(j, "notAfterUtc")), na);
	/* the leaf was made with notBefore = now - 60 s */
	nb = json_string_value(json_object_get(j, "notBeforeUtc"));
	assert_non_null(nb);
	assert_int_equal(strlen(nb), 20);
	assert_int_equal(nb[19], 'Z');
	assert_int_equal(nb[10], 'T');
	clock_iso8601(x509_not_after(P.leaf) - 30LL * DAY, nb_want);
	assert_string_equal(nb, nb_want);
	json_decref(j);
}

static void test_flags(void **state)
{
	assert_true(x509_is_ca(P.root));
	assert_true(x509_is_ca(P.inter));
	assert_false(x509_is_ca(P.leaf));
	assert_true(x509_is_self_signed(P.root));
	assert_false(x509_is_self_signed(P.inter));
	assert_false(x509_is_self_signed(P.leaf));
	assert_true(x509_not_after(P.root) > time(NULL) + 3649LL * DAY);
}

static void test_verify_root_leaf(void **state)
{
	STACK_OF(X509) *anchors = stack_of(P.other_root, P.root);
	X509 *anchor = NULL;
	int depth = -5;
	char why[256];

	assert_int_equal(
	    x509_verify_chain(P.leaf_root, NULL, anchors, 0, &anchor, &depth, why, sizeof(why)),
	    EMU_OK);
	assert_ptr_equal(anchor, P.root);
	assert_int_equal(depth, 1);
	/* NULL outputs are fine */
	assert_int_equal(x509_verify_chain(P.leaf_root, NULL, anchors, 0, NULL, NULL, NULL, 0),
	                 EMU_OK);
	sk_X509_free(anchors);
}

static void test_verify_with_intermediate(void **state)
{
	STACK_OF(X509) *anchors = stack_of(P.root, NULL);
	STACK_OF(X509) *untrusted = stack_of(P.inter, NULL);
	STACK_OF(X509) *reversed = stack_of(P.root, P.inter);
	X509 *anchor = NULL;
	int depth = -5;
	char why[256];

	assert_int_equal(
	    x509_verify_chain(P.leaf, untrusted, anchors, 0, &anchor, &depth, why, sizeof(why)),
	    EMU_OK);
	assert_ptr_equal(anchor, P.root);
	assert_int_equal(depth, 2);

	/* the device also sends the root, out of order */
	anchor = NULL;
	assert_int_equal(
	    x509_verify_chain(P.leaf, reversed, anchors, 0, &anchor, &depth, why, sizeof(why)),
	    EMU_OK);
	assert_ptr_equal(anchor, P.root);
	assert_int_equal(depth, 2);

	/* intermediate missing */
	assert_int_equal(
	    x509_verify_chain(P.leaf, NULL, anchors, 0, &anchor, &depth, why, sizeof(why)),
	    EMU_ECRYPTO);
	assert_null(anchor);
	assert_string_equal(why, "depth 0 CN=dev1: unable to get local issuer certificate");
	sk_X509_free(anchors);
	sk_X509_free(untrusted);
	sk_X509_free(reversed);
}

static void test_verify_partial_chain(void **state)
{
	STACK_OF(X509) *anchors = stack_of(P.inter, NULL);
	STACK_OF(X509) *untrusted = stack_of(P.inter, NULL);
	X509 *anchor = NULL;
	int depth = -5;
	char why[256];

	assert_int_equal(
	    x509_verify_chain(P.leaf, NULL, anchors, 0, &anchor, &depth, why, sizeof(why)), EMU_OK);
	assert_ptr_equal(anchor, P.inter);
	assert_int_equal(depth, 1);
	/* also when the device sends the intermediate itself */
	assert_int_equal(
	    x509_verify_chain(P.leaf, untrusted, anchors, 0, &anchor, &depth, why, sizeof(why)),
	    EMU_OK);
	assert_ptr_equal(anchor, P.inter);
	assert_int_equal(depth, 1);
	sk_X509_free(anchors);
	sk_X509_free(untrusted);
}

static void expect_fail(X509 *leaf, STACK_OF(X509) *untrusted, STACK_OF(X509) *anchors, time_t now,
                        const char *want_why)
{
	char why[256] = "unchanged";
	X509 *anchor = P.leaf;
	int depth = 7;

	assert_int_equal(
	    x509_verify_chain(leaf, untrusted, anchors, now, &anchor, &depth, why, sizeof(why)),
	    EMU_ECRYPTO);
	assert_null(anchor);
	assert_int_equal(depth, -1);
	assert_string_equal(why, want_why);
}

static void test_verify_dates(void **state)
{
	STACK_OF(X509) *anchors = stack_of(P.root, NULL);
	X509 *expired = make_cert("old", NULL, P.leaf_key, P.root, P.root_key, 0, -1,
	                          GEN_EKU_CLIENT, -10LL * DAY, 1LL * DAY);
	X509 *future = make_cert("new", NULL, P.leaf_key, P.root, P.root_key, 0, -1, GEN_EKU_CLIENT,
	                         10LL * DAY, 30LL * DAY);
	X509 *old_inter = make_cert("Old Intermediate", NULL, P.inter_key, P.root, P.root_key, 1,
	                            -1, GEN_EKU_NONE, -10LL * DAY, 1LL * DAY);
	X509 *leaf = make_cert("dev3", NULL, P.leaf_key, old_inter, P.inter_key, 0, -1,
	                       GEN_EKU_CLIENT, -60, 30LL * DAY);
	STACK_OF(X509) *untrusted = stack_of(old_inter, NULL);
	/* valid since 20 days, for checks at an explicit time in the past */
	X509 *old_root = make_cert("Old Root", NULL, P.other_key, NULL, NULL, 1, -1, GEN_EKU_NONE,
	                           -20LL * DAY, 3650LL * DAY);
	X509 *old_leaf = make_cert("old2", NULL, P.leaf_key, old_root, P.other_key, 0, -1,
	                           GEN_EKU_CLIENT, -10LL * DAY, 1LL * DAY);
	STACK_OF(X509) *old_anchors = stack_of(old_root, NULL);

	expect_fail(expired, NULL, anchors, 0, "depth 0 CN=old: certificate has expired");
	expect_fail(future, NULL, anchors, 0, "depth 0 CN=new: certificate is not yet valid");
	expect_fail(leaf, untrusted, anchors, 0,
	            "depth 1 CN=Old Intermediate: certificate has expired");
	/* an explicit time: old2 was valid 9.5 days ago, the future one is in 11 days */
	assert_int_equal(x509_verify_chain(old_leaf, NULL, old_anchors,
	                                   time(NULL) - 9 * DAY - DAY / 2, NULL, NULL, NULL, 0),
	                 EMU_OK);
	expect_fail(old_leaf, NULL, old_anchors, 0, "depth 0 CN=old2: certificate has expired");
	assert_int_equal(
	    x509_verify_chain(future, NULL, anchors, time(NULL) + 11 * DAY, NULL, NULL, NULL, 0),
	    EMU_OK);
	expect_fail(P.leaf_root, NULL, anchors, time(NULL) + 31 * DAY,
	            "depth 0 CN=dev2: certificate has expired");
	sk_X509_free(untrusted);
	sk_X509_free(anchors);
	sk_X509_free(old_anchors);
	X509_free(old_root);
	X509_free(old_leaf);
	X509_free(expired);
	X509_free(future);
	X509_free(leaf);
	X509_free(old_inter);
}

static void test_verify_pathlen(void **state)
{
	X509 *root0 = make_cert("Root pathlen 0", NULL, P.root_key, NULL, NULL, 1, 0, GEN_EKU_NONE,
	                        -60, 365LL * DAY);
	X509 *inter = make_cert("Inter under pathlen 0", NULL, P.inter_key, root0, P.root_key, 1,
	                        -1, GEN_EKU_NONE, -60, 365LL * DAY);
	X509 *leaf = make_cert("dev4", NULL, P.leaf_key, inter, P.inter_key, 0, -1, GEN_EKU_CLIENT,
	                       -60, 30LL * DAY);
	X509 *direct = make_cert("dev5", NULL, P.leaf_key, root0, P.root_key, 0, -1, GEN_EKU_CLIENT,
	                         -60, 30LL * DAY);
	STACK_OF(X509) *anchors = stack_of(root0, NULL);
	STACK_OF(X509) *untrusted = stack_of(inter, NULL);
	char why[256];

	assert_int_equal(
	    x509_verify_chain(leaf, untrusted, anchors, 0, NULL, NULL, why, sizeof(why)),
	    EMU_ECRYPTO);
	assert_non_null(strstr(why, "path length constraint exceeded"));
	/* a leaf directly under it is fine */
	assert_int_equal(x509_verify_chain(direct, NULL, anchors, 0, NULL, NULL, why, sizeof(why)),
	                 EMU_OK);
	sk_X509_free(anchors);
	sk_X509_free(untrusted);
	X509_free(root0);
	X509_free(inter);
	X509_free(leaf);
	X509_free(direct);
}

static void test_verify_purpose(void **state)
{
	STACK_OF(X509) *anchors = stack_of(P.root, NULL);
	X509 *server = make_cert("srv", NULL, P.leaf_key, P.root, P.root_key, 0, -1, GEN_EKU_SERVER,
	                         -60, 30LL * DAY);
	X509 *both = make_cert("both", NULL, P.leaf_key, P.root, P.root_key, 0, -1, GEN_EKU_BOTH,
	                       -60, 30LL * DAY);
	X509 *none = make_cert("none", NULL, P.leaf_key, P.root, P.root_key, 0, -1, GEN_EKU_NONE,
	                       -60, 30LL * DAY);

	expect_fail(server, NULL, anchors, 0, "depth 0 CN=srv: unsuitable certificate purpose");
	assert_int_equal(x509_verify_chain(both, NULL, anchors, 0, NULL, NULL, NULL, 0), EMU_OK);
	assert_int_equal(x509_verify_chain(none, NULL, anchors, 0, NULL, NULL, NULL, 0), EMU_OK);
	sk_X509_free(anchors);
	X509_free(server);
	X509_free(both);
	X509_free(none);
}

static void test_verify_self_signed_leaf(void **state)
{
	X509 *ss = make_cert("selfie", NULL, P.leaf_key, NULL, NULL, 0, -1, GEN_EKU_CLIENT, -60,
	                     30LL * DAY);
	STACK_OF(X509) *self = stack_of(ss, NULL);
	STACK_OF(X509) *root = stack_of(P.root, NULL);
	X509 *anchor = NULL;
	int depth = -5;

	assert_true(x509_is_self_signed(ss));
	assert_int_equal(x509_verify_chain(ss, NULL, self, 0, &anchor, &depth, NULL, 0), EMU_OK);
	assert_ptr_equal(anchor, ss);
	assert_int_equal(depth, 0);
	expect_fail(ss, NULL, root, 0, "depth 0 CN=selfie: self-signed certificate");
	expect_fail(ss, NULL, NULL, 0, "depth 0 CN=selfie: self-signed certificate");
	sk_X509_free(self);
	sk_X509_free(root);
	X509_free(ss);
}

static void test_verify_wrong_anchor(void **state)
{
	STACK_OF(X509) *other = stack_of(P.other_root, NULL);
	STACK_OF(X509) *empty = stack_of(NULL, NULL);
	STACK_OF(X509) *untrusted = stack_of(P.inter, P.root);

	expect_fail(P.leaf_root, NULL, other, 0,
	            "depth 0 CN=dev2: unable to get local issuer certificate");
	/* the device sends its root, but nothing is trusted */
	expect_fail(P.leaf, untrusted, empty, 0,
	            "depth 2 CN=Test Root: self-signed certificate in certificate chain");
	expect_fail(P.leaf, untrusted, other, 0,
	            "depth 2 CN=Test Root: self-signed certificate in certificate chain");
	sk_X509_free(other);
	sk_X509_free(empty);
	sk_X509_free(untrusted);
}

static void test_signed_by(void **state)
{
	X509 *pop = make_cert("ABCDEF0123", NULL, P.leaf_key, P.root, P.root_key, 0, -1,
	                      GEN_EKU_CLIENT, -60, DAY);
	/* same names as the root's child, but signed by another key */
	X509 *fake = make_cert("ABCDEF0123", NULL, P.leaf_key, P.other_root, P.other_key, 0, -1,
	                       GEN_EKU_CLIENT, -60, DAY);

	assert_true(x509_signed_by(pop, P.root));
	assert_false(x509_signed_by(pop, P.other_root));
	assert_false(x509_signed_by(pop, P.inter));
	assert_false(x509_signed_by(fake, P.root));
	assert_true(x509_signed_by(fake, P.other_root));
	assert_true(x509_signed_by(P.root, P.root));
	assert_true(x509_signed_by(P.inter, P.root));
	assert_false(x509_signed_by(NULL, P.root));
	X509_free(pop);
	X509_free(fake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_pem),
	    cmocka_unit_test(test_parse_b64_der),
	    cmocka_unit_test(test_parse_b64_pem),
	    cmocka_unit_test(test_parse_garbage),
	    cmocka_unit_test(test_parse_pem_chain),
	    cmocka_unit_test(test_thumbprints),
	    cmocka_unit_test(test_common_name),
	    cmocka_unit_test(test_names_strings),
	    cmocka_unit_test(test_info_json),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_verify_root_leaf),
	    cmocka_unit_test(test_verify_with_intermediate),
	    cmocka_unit_test(test_verify_partial_chain),
	    cmocka_unit_test(test_verify_dates),
	    cmocka_unit_test(test_verify_pathlen),
	    cmocka_unit_test(test_verify_purpose),
	    cmocka_unit_test(test_verify_self_signed_leaf),
	    cmocka_unit_test(test_verify_wrong_anchor),
	    cmocka_unit_test(test_signed_by),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
