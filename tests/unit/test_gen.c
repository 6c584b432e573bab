/* Unit tests for certs/gen: keys, certificates, CSRs and PEM files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "textenc.h"

#include "certs/gen.h"
#include "certs/x509.h"

#include <ftw.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY 86400

static char tmpdir[256];
static EVP_PKEY *ca_key, *leaf_key;
static X509 *ca;

static X509 *make(struct gen_cert_opts *o)
{
	X509 *x = NULL;

	assert_int_equal(gen_cert(o, &x), EMU_OK);
	assert_non_null(x);
	return x;
}

static int setup(void **state)
{
	struct gen_cert_opts o = {0};

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dpsemu-test-gen-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	if (gen_key(GEN_KEY_P256, &ca_key) != EMU_OK || gen_key(GEN_KEY_P256, &leaf_key) != EMU_OK)
		return -1;
	o.cn = "Gen Test CA";
	o.key = ca_key;
	o.validity = 3650LL * DAY;
	o.is_ca = 1;
	o.pathlen = 1;
	return gen_cert(&o, &ca) == EMU_OK ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void test_key_type_parse(void **state)
{
	static const struct {
		const char *name;
		enum gen_key_type want;
	} ok[] = {
	    {"p256", GEN_KEY_P256},       {"P256", GEN_KEY_P256},      {"ec256", GEN_KEY_P256},
	    {"prime256v1", GEN_KEY_P256}, {"secp256r1", GEN_KEY_P256}, {"p384", GEN_KEY_P384},
	    {"secp384r1", GEN_KEY_P384},  {"ec384", GEN_KEY_P384},     {"rsa2048", GEN_KEY_RSA2048},
	    {"RSA", GEN_KEY_RSA2048},
	};
	enum gen_key_type t = GEN_KEY_RSA2048;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		t = (enum gen_key_type)99;
		assert_int_equal(gen_key_type_parse(ok[i].name, &t), EMU_OK);
		assert_int_equal(t, ok[i].want);
	}
	assert_int_equal(gen_key_type_parse("p521", &t), EMU_EINVAL);
	assert_int_equal(gen_key_type_parse("", &t), EMU_EINVAL);
	assert_int_equal(gen_key_type_parse("rsa4096", &t), EMU_EINVAL);
	assert_int_equal(gen_key_type_parse(NULL, &t), EMU_EINVAL);
	assert_string_equal(gen_key_type_name(GEN_KEY_P256), "p256");
	assert_string_equal(gen_key_type_name(GEN_KEY_P384), "p384");
	assert_string_equal(gen_key_type_name(GEN_KEY_RSA2048), "rsa2048");
}

static void test_key_types(void **state)
{
	static const struct {
		enum gen_key_type type;
		int base_id, bits;
	} want[] = {
	    {GEN_KEY_P256, EVP_PKEY_EC, 256},
	    {GEN_KEY_P384, EVP_PKEY_EC, 384},
	    {GEN_KEY_RSA2048, EVP_PKEY_RSA, 2048},
	};
	EVP_PKEY *k = NULL;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(gen_key(want[i].type, &k), EMU_OK);
		assert_int_equal(EVP_PKEY_get_base_id(k), want[i].base_id);
		assert_int_equal(EVP_PKEY_get_bits(k), want[i].bits);
		EVP_PKEY_free(k);
		k = NULL;
	}
	assert_int_equal(gen_key((enum gen_key_type)42, &k), EMU_EINVAL);
	assert_null(k);
}

static int ext_critical(X509 *x, int nid)
{
	int idx = X509_get_ext_by_NID(x, nid, -1);

	assert_true(idx >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, idx));
}

static void test_ca_fields(void **state)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(ca);
	char cn[64];

	assert_int_equal(X509_get_version(ca), X509_VERSION_3);
	assert_true(x509_is_ca(ca));
	assert_true(x509_is_self_signed(ca));
	assert_int_equal(X509_get_pathlen(ca), 1);
	assert_true(ext_critical(ca, NID_basic_constraints));
	assert_true(ext_critical(ca, NID_key_usage));
	assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(X509_get_ext_by_NID(ca, NID_ext_key_usage, -1), -1);
	assert_int_equal(X509_get_ext_by_NID(ca, NID_subject_alt_name, -1), -1);
	/* self-signed: AKI keyid = SKI */
	assert_non_null(ski);
	assert_non_null(akid);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	assert_int_equal(ASN1_OCTET_STRING_cmp(ski, akid), 0);
	assert_int_equal(x509_common_name(ca, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, "Gen Test CA");
	assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
}

static void test_leaf_fields(void **state)
{
	static const char *const sans[] = {"dps.example.com", "localhost", "10.0.0.7", "::1"};
	struct gen_cert_opts o = {0};
	X509 *x;
	GENERAL_NAMES *gens;
	time_t before = time(NULL);
	time_t nb, na;
	struct tm tm;
	char *s;

	o.cn = "dev1";
	o.org = "Contoso";
	o.key = leaf_key;
	o.issuer = ca;
	o.issuer_key = ca_key;
	o.not_before_offset = -3600;
	o.validity = 7LL * DAY;
	o.pathlen = -1;
	o.eku = GEN_EKU_CLIENT;
	o.sans = sans;
	o.n_sans = 4;
	x = make(&o);

	assert_false(x509_is_ca(x));
	/* basicConstraints present (CA:FALSE) and critical */
	assert_true(X509_get_extension_flags(x) & EXFLAG_BCONS);
	assert_true(ext_critical(x, NID_basic_constraints));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
	assert_false(ext_critical(x, NID_ext_key_usage));
	/* AKI keyid = issuer's SKI; own SKI differs */
	assert_int_equal(
	    ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(ca)), 0);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_not_equal(
	    ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(x), X509_get0_subject_key_id(ca)), 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)), 0);
	s = x509_subject_string(x);
	assert_string_equal(s, "CN=dev1,O=Contoso");
	free(s);
	assert_true(x509_signed_by(x, ca));

	/* validity: notBefore = now - 1 h, notAfter = notBefore + 7 days */
	assert_true(ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm));
	nb = timegm(&tm);
	na = x509_not_after(x);
	assert_true(nb >= before - 3600 && nb <= time(NULL) - 3600);
	assert_int_equal(na - nb, 7 * DAY);

	/* subjectAltName: exactly the four entries */
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 4);
	assert_int_equal(sk_GENERAL_NAME_value(gens, 0)->type, GEN_DNS);
	assert_int_equal(sk_GENERAL_NAME_value(gens, 1)->type, GEN_DNS);
	assert_int_equal(sk_GENERAL_NAME_value(gens, 2)->type, GEN_IPADD);
	assert_int_equal(sk_GENERAL_NAME_value(gens, 3)->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(gens, 3)->d.iPAddress), 16);
	GENERAL_NAMES_free(gens);
	assert_int_equal(X509_check_host(x, "dps.example.com", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.example.com", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.7", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 0);
	X509_free(x);
}

static void test_eku_and_rsa(void **state)
{
	struct gen_cert_opts o = {0};
	EVP_PKEY *rsa = NULL;
	X509 *x;

	o.cn = "srv";
	o.key = leaf_key;
	o.issuer = ca;
	o.issuer_key = ca_key;
	o.validity = DAY;
	o.pathlen = -1;
	o.eku = GEN_EKU_SERVER;
	x = make(&o);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
	X509_free(x);

	o.eku = GEN_EKU_BOTH;
	x = make(&o);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	X509_free(x);

	o.eku = GEN_EKU_NONE;
	x = make(&o);
	assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
	X509_free(x);

	/* RSA leaf: keyEncipherment too */
	assert_int_equal(gen_key(GEN_KEY_RSA2048, &rsa), EMU_OK);
	o.key = rsa;
	o.eku = GEN_EKU_CLIENT;
	x = make(&o);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	X509_free(x);

	/* self-signed RSA CA signs with sha256WithRSAEncryption */
	o.issuer = NULL;
	o.issuer_key = NULL;
	o.is_ca = 1;
	o.eku = GEN_EKU_NONE;
	x = make(&o);
	assert_int_equal(X509_get_signature_nid(x), NID_sha256WithRSAEncryption);
	assert_int_equal(X509_get_pathlen(x), -1);
	X509_free(x);
	EVP_PKEY_free(rsa);
}

static void test_p384_issuer(void **state)
{
	struct gen_cert_opts o = {0};
	EVP_PKEY *k = NULL;
	X509 *root, *leaf;

	assert_int_equal(gen_key(GEN_KEY_P384, &k), EMU_OK);
	o.cn = "P-384 Root";
	o.key = k;
	o.validity = DAY;
	o.is_ca = 1;
	o.pathlen = -1;
	root = make(&o);
	assert_int_equal(X509_get_signature_nid(root), NID_ecdsa_with_SHA384);

	memset(&o, 0, sizeof(o));
	o.cn = "leaf";
	o.key = leaf_key;
	o.issuer = root;
	o.issuer_key = k;
	o.validity = DAY;
	o.pathlen = -1;
	leaf = make(&o);
	assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA384);
	assert_true(x509_signed_by(leaf, root));
	X509_free(leaf);
	X509_free(root);
	EVP_PKEY_free(k);
}

static void test_serials(void **state)
{
	struct gen_cert_opts o = {0};
	X509 *a, *b;
	BIGNUM *x, *y;

	o.cn = "serial";
	o.key = leaf_key;
	o.issuer = ca;
	o.issuer_key = ca_key;
	o.validity = DAY;
	o.pathlen = -1;
	a = make(&o);
	b = make(&o);
	x = ASN1_INTEGER_to_BN(X509_get0_serialNumber(a), NULL);
	y = ASN1_INTEGER_to_BN(X509_get0_serialNumber(b), NULL);
	assert_false(BN_is_zero(x));
	assert_false(BN_is_negative(x));
	assert_false(BN_is_zero(y));
	assert_true(BN_num_bits(x) <= 127);
	assert_int_not_equal(BN_cmp(x, y), 0);
	BN_free(x);
	BN_free(y);
	X509_free(a);
	X509_free(b);
}

static void test_cert_invalid_opts(void **state)
{
	static const char *const bad_san[] = {"has space.example"};
	struct gen_cert_opts o = {0};
	EVP_PKEY *other = NULL;
	X509 *x = (X509 *)&x;
	char long_cn[70];

	o.cn = "x";
	o.key = leaf_key;
	o.issuer = ca;
	o.issuer_key = ca_key;
	o.validity = DAY;
	o.pathlen = -1;

	o.validity = 0;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	assert_null(x);
	o.validity = DAY;

	o.cn = "";
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	memset(long_cn, 'a', 65);
	long_cn[65] = '\0';
	o.cn = long_cn;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	long_cn[64] = '\0';
	assert_int_equal(gen_cert(&o, &x), EMU_OK);
	X509_free(x);
	o.cn = "x";

	o.issuer_key = NULL;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	assert_int_equal(gen_key(GEN_KEY_P256, &other), EMU_OK);
	o.issuer_key = other;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	o.issuer_key = ca_key;

	o.sans = bad_san;
	o.n_sans = 1;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	o.sans = NULL;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	o.n_sans = 0;

	o.key = NULL;
	assert_int_equal(gen_cert(&o, &x), EMU_EINVAL);
	assert_null(x);
	EVP_PKEY_free(other);
}

static void test_csr(void **state)
{
	X509_REQ *req = NULL, *back;
	char *pem, *b64;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t derlen = 0;
	char cn[64];
	int idx;

	assert_int_equal(gen_csr(leaf_key, "my-device-01", &req), EMU_OK);
	assert_int_equal(X509_REQ_verify(req, leaf_key), 1);
	assert_int_equal(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);
	assert_true(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), leaf_key) == 1);
	idx = X509_NAME_get_index_by_NID(X509_REQ_get_subject_name(req), NID_commonName, -1);
	assert_true(idx >= 0);
	assert_int_equal(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
	                                           cn, sizeof(cn)),
	                 12);
	assert_string_equal(cn, "my-device-01");

	pem = gen_csr_to_pem(req);
	assert_non_null(pem);
	assert_memory_equal(pem, "-----BEGIN CERTIFICATE REQUEST-----\n", 36);
	b64 = gen_csr_to_b64der(req);
	assert_non_null(b64);
	assert_null(strpbrk(b64, "\r\n -"));
	assert_int_equal(b64_decode(b64, strlen(b64), &der, &derlen), EMU_OK);
	p = der;
	back = d2i_X509_REQ(NULL, &p, (long)derlen);
	assert_non_null(back);
	assert_ptr_equal(p, der + derlen);
	assert_int_equal(X509_REQ_verify(back, leaf_key), 1);
	X509_REQ_free(back);
	free(der);
	free(pem);
	free(b64);
	X509_REQ_free(req);
	req = NULL;
	assert_int_equal(gen_csr(leaf_key, "", &req), EMU_EINVAL);
	assert_null(req);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_key_file(void **state)
{
	char path[512], other[512];
	EVP_PKEY *k = NULL, *back = NULL;
	FILE *f;

	path_of(path, sizeof(path), "k1.key");
	assert_int_equal(gen_key(GEN_KEY_P384, &k), EMU_OK);
	umask(0);
	assert_int_equal(gen_write_key_file(path, k, GEN_WRITE_EXCL), EMU_OK);
	umask(022);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(gen_read_key_file(path, &back), EMU_OK);
	assert_int_equal(EVP_PKEY_eq(k, back), 1);
	EVP_PKEY_free(back);
	back = NULL;
	/* no accidental overwrite */
	assert_int_equal(gen_write_key_file(path, leaf_key, GEN_WRITE_EXCL), EMU_EEXIST);
	assert_int_equal(gen_read_key_file(path, &back), EMU_OK);
	assert_int_equal(EVP_PKEY_eq(k, back), 1);
	EVP_PKEY_free(back);
	back = NULL;

	/* overwriting a world-readable file makes it 0600 */
	path_of(other, sizeof(other), "k2.key");
	f = fopen(other, "w");
	assert_non_null(f);
	fputs("old", f);
	fclose(f);
	assert_int_equal(chmod(other, 0644), 0);
	assert_int_equal(gen_write_key_file(other, leaf_key, 0), EMU_OK);
	assert_int_equal(mode_of(other), 0600);
	assert_int_equal(gen_read_key_file(other, &back), EMU_OK);
	assert_int_equal(EVP_PKEY_eq(leaf_key, back), 1);
	assert_true(gen_key_matches_cert(ca_key, ca));
	assert_false(gen_key_matches_cert(back, ca));
	EVP_PKEY_free(back);
	back = NULL;

	/* a symbolic link is not followed */
	path_of(other, sizeof(other), "link.key");
	assert_int_equal(symlink(path, other), 0);
	assert_int_equal(gen_write_key_file(other, leaf_key, 0), EMU_EIO);

	path_of(other, sizeof(other), "missing.key");
	assert_int_equal(gen_read_key_file(other, &back), EMU_ENOTFOUND);
	assert_null(back);
	EVP_PKEY_free(k);
}

static void test_key_file_bad(void **state)
{
	char path[512];
	EVP_PKEY *back = NULL;
	BIO *bio;
	FILE *f;

	/* garbage */
	path_of(path, sizeof(path), "garbage.key");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	assert_int_equal(gen_read_key_file(path, &back), EMU_ECRYPTO);
	assert_null(back);

	/* an encrypted key is refused without prompting for a passphrase */
	path_of(path, sizeof(path), "encrypted.key");
	bio = BIO_new_file(path, "w");
	assert_non_null(bio);
	assert_true(PEM_write_bio_PrivateKey(bio, leaf_key, EVP_aes_128_cbc(),
	                                     (unsigned char *)"secret", 6, NULL, NULL));
	BIO_free(bio);
	assert_int_equal(gen_read_key_file(path, &back), EMU_ECRYPTO);
	assert_null(back);

	/* a directory */
	assert_int_equal(gen_read_key_file(tmpdir, &back), EMU_EIO);
}

static void test_cert_files(void **state)
{
	struct gen_cert_opts o = {0};
	char path[512];
	STACK_OF(X509) *sk = NULL;
	X509 *leaf, *back = NULL;
	X509 *pair[2];

	o.cn = "files";
	o.key = leaf_key;
	o.issuer = ca;
	o.issuer_key = ca_key;
	o.validity = DAY;
	o.pathlen = -1;
	leaf = make(&o);
	pair[0] = leaf;
	pair[1] = ca;
	path_of(path, sizeof(path), "chain.pem");
	assert_int_equal(gen_write_certs_file(path, pair, 2, 0), EMU_OK);
	assert_int_equal(mode_of(path) & 0600, 0600);
	assert_int_equal(gen_read_chain_file(path, &sk), EMU_OK);
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), ca), 0);
	sk_X509_pop_free(sk, X509_free);
	assert_int_equal(gen_read_cert_file(path, &back), EMU_OK);
	assert_int_equal(X509_cmp(back, leaf), 0);
	X509_free(back);
	back = NULL;
	assert_int_equal(gen_write_certs_file(path, pair, 1, GEN_WRITE_EXCL), EMU_EEXIST);

	path_of(path, sizeof(path), "nothing.pem");
	assert_int_equal(gen_read_cert_file(path, &back), EMU_ENOTFOUND);
	assert_int_equal(gen_write_file(path, "hello\n", 6, 0644, 0), EMU_OK);
	assert_int_equal(gen_read_cert_file(path, &back), EMU_EINVAL);
	assert_null(back);
	X509_free(leaf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_type_parse),
	    cmocka_unit_test(test_key_types),
	    cmocka_unit_test(test_ca_fields),
	    cmocka_unit_test(test_leaf_fields),
	    cmocka_unit_test(test_eku_and_rsa),
	    cmocka_unit_test(test_p384_issuer),
	    cmocka_unit_test(test_serials),
	    cmocka_unit_test(test_cert_invalid_opts),
	    cmocka_unit_test(test_csr),
	    cmocka_unit_test(test_key_file),
	    cmocka_unit_test(test_key_file_bad),
	    cmocka_unit_test(test_cert_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
