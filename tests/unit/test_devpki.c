/* Unit tests for certs/devpki: the emulator's own server and device PKI in the data dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"

#include "certs/devpki.h"
#include "certs/gen.h"
#include "certs/issue.h"
#include "certs/x509.h"

#include <ftw.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400

static char base[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	snprintf(base, sizeof(base), "/tmp/dpsemu-test-devpki-XXXXXX");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* A fresh data dir (not created yet) for one test. */
static void data_dir(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", base, name);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Reads a whole file into a new string. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Checks server.pem = [server, CA], its key, names and purpose; returns the server cert. */
static X509 *check_server(const struct devpki_files *f, const char *want_cn)
{
	STACK_OF(X509) *chain = NULL, *anchors;
	X509_STORE_CTX *ctx;
	EVP_PKEY *key = NULL;
	X509 *ca = NULL, *srv;
	char cn[128];
	time_t na;

	assert_int_equal(gen_read_cert_file(f->server_ca, &ca), EMU_OK);
	assert_int_equal(gen_read_chain_file(f->server_chain, &chain), EMU_OK);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), ca), 0);
	srv = sk_X509_shift(chain);
	assert_int_equal(gen_read_key_file(f->server_key, &key), EMU_OK);
	assert_true(gen_key_matches_cert(key, srv));
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	assert_int_equal(mode_of(f->server_key), 0600);

	assert_int_equal(x509_common_name(srv, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, want_cn);
	assert_false(x509_is_ca(srv));
	assert_int_equal(X509_get_extended_key_usage(srv), XKU_SSL_SERVER);
	assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
	/* one year: well under the 825 days some TLS clients insist on */
	na = x509_not_after(srv);
	assert_true(na > time(NULL) + 360 * DAY);
	assert_true(na < time(NULL) + 366 * DAY);
	assert_int_equal(f->server_not_after, na);

	/* a TLS client trusting only server-ca.pem accepts it */
	anchors = sk_X509_new_null();
	assert_true(sk_X509_push(anchors, ca) > 0);
	ctx = X509_STORE_CTX_new();
	assert_true(X509_STORE_CTX_init(ctx, NULL, srv, chain));
	X509_STORE_CTX_set0_trusted_stack(ctx, anchors);
	assert_true(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER));
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	sk_X509_free(anchors);

	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	X509_free(ca);
	return srv;
}

static void test_first_run_and_reuse(void **state)
{
	struct devpki_files f, g;
	char dir[512], sha256[65], cn[64], key_path[600], *pem1, *pem2, *ca1, *ca2;
	X509 *ca = NULL, *srv;

	data_dir(dir, sizeof(dir), "first");
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &f), EMU_OK);
	assert_true(f.created_ca);
	assert_true(f.issued_server);
	assert_int_equal(mode_of(f.dir), 0700);
	assert_int_equal(mode_of(f.server_key), 0600);

	/* the CA */
	snprintf(key_path, sizeof(key_path), "%s/certs/server-ca.key", dir);
	assert_int_equal(mode_of(key_path), 0600);
	assert_int_equal(gen_read_cert_file(f.server_ca, &ca), EMU_OK);
	assert_true(x509_is_ca(ca));
	assert_true(x509_is_self_signed(ca));
	assert_int_equal(x509_common_name(ca, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, "dpsemu server CA");
	assert_true(x509_not_after(ca) > time(NULL) + 3640LL * DAY);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(ca)), 256);
	x509_thumbprint_sha256(ca, sha256);
	assert_string_equal(f.server_ca_sha256, sha256);
	X509_free(ca);

	srv = check_server(&f, "localhost");
	X509_free(srv);

	/* second start: everything reused, byte for byte */
	ca1 = slurp(f.server_ca);
	pem1 = slurp(f.server_chain);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_false(g.created_ca);
	assert_false(g.issued_server);
	assert_string_equal(g.server_ca_sha256, f.server_ca_sha256);
	assert_string_equal(g.server_ca_sha1, f.server_ca_sha1);
	assert_string_equal(g.server_chain, f.server_chain);
	assert_int_equal(g.server_not_after, f.server_not_after);
	ca2 = slurp(g.server_ca);
	pem2 = slurp(g.server_chain);
	assert_string_equal(ca1, ca2);
	assert_string_equal(pem1, pem2);
	free(ca1);
	free(ca2);
	free(pem1);
	free(pem2);
}

static void test_extra_names(void **state)
{
	static const char *const extra[] = {"dps.example.test", "10.1.2.3", "[::1]", "LOCALHOST"};
	struct devpki_files f, g, h;
	char dir[512];
	X509 *srv;

	data_dir(dir, sizeof(dir), "extra/nested");
	assert_int_equal(devpki_ensure(dir, NULL, NULL, 0, &f), EMU_OK);
	assert_true(f.created_ca);

	assert_int_equal(devpki_ensure(dir, "localhost", extra, 4, &g), EMU_OK);
	assert_false(g.created_ca);
	assert_true(g.issued_server);
	assert_string_equal(g.server_ca_sha256, f.server_ca_sha256);
	srv = check_server(&g, "localhost");
	assert_int_equal(X509_check_host(srv, "dps.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.1.2.3", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "::1", 0), 1);
	X509_free(srv);

	/* same names again, or fewer: reused */
	assert_int_equal(devpki_ensure(dir, "localhost", extra, 4, &h), EMU_OK);
	assert_false(h.issued_server);
	assert_int_equal(devpki_ensure(dir, "localhost", extra, 1, &h), EMU_OK);
	assert_false(h.issued_server);
	assert_int_equal(devpki_ensure(dir, "127.0.0.1", NULL, 0, &h), EMU_OK);
	assert_false(h.issued_server);

	/* a new host name: re-issued with it as CN, same CA */
	assert_int_equal(devpki_ensure(dir, "emu.internal", NULL, 0, &h), EMU_OK);
	assert_true(h.issued_server);
	assert_false(h.created_ca);
	assert_string_equal(h.server_ca_sha256, f.server_ca_sha256);
	srv = check_server(&h, "emu.internal");
	assert_int_equal(X509_check_host(srv, "emu.internal", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(srv, "dps.example.test", 0, 0, NULL), 0);
	X509_free(srv);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {"has space"};
	static const char *const empty[] = {""};
	struct devpki_files f;
	char dir[512];

	data_dir(dir, sizeof(dir), "badnames");
	assert_int_equal(devpki_ensure(dir, "localhost", bad, 1, &f), EMU_EINVAL);
	assert_int_equal(devpki_ensure(dir, "bad/host", NULL, 0, &f), EMU_EINVAL);
	assert_int_equal(devpki_ensure(dir, "localhost", empty, 1, &f), EMU_EINVAL);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 1, &f), EMU_EINVAL);
	assert_int_equal(devpki_ensure("", "localhost", NULL, 0, &f), EMU_EINVAL);
	/* nothing was created for a refused configuration */
	assert_int_equal(access(dir, F_OK), -1);
}

/* Replaces the server files with a certificate of our choosing. */
static void plant_server(const struct devpki_files *f, X509 *issuer, EVP_PKEY *issuer_key,
                         int64_t offset, int64_t validity, X509 *chain_ca)
{
	static const char *const sans[] = {"localhost", "127.0.0.1"};
	struct gen_cert_opts o = {0};
	EVP_PKEY *key = NULL;
	X509 *srv = NULL;
	X509 *pair[2];

	assert_int_equal(gen_key(GEN_KEY_P256, &key), EMU_OK);
	o.cn = "localhost";
	o.key = key;
	o.issuer = issuer;
	o.issuer_key = issuer_key;
	o.not_before_offset = offset;
	o.validity = validity;
	o.pathlen = -1;
	o.eku = GEN_EKU_SERVER;
	o.sans = sans;
	o.n_sans = 2;
	assert_int_equal(gen_cert(&o, &srv), EMU_OK);
	pair[0] = srv;
	pair[1] = chain_ca;
	assert_int_equal(gen_write_key_file(f->server_key, key, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(f->server_chain, pair, 2, 0), EMU_OK);
	X509_free(srv);
	EVP_PKEY_free(key);
}

static void test_reissue_conditions(void **state)
{
	struct devpki_files f, g;
	char dir[512], ca_key_path[DEVPKI_PATH_MAX + 32];
	EVP_PKEY *ca_key = NULL, *rogue_key = NULL, *k = NULL;
	X509 *ca = NULL, *rogue = NULL, *srv;
	struct gen_cert_opts o = {0};

	data_dir(dir, sizeof(dir), "reissue");
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &f), EMU_OK);
	snprintf(ca_key_path, sizeof(ca_key_path), "%s/server-ca.key", f.dir);
	assert_int_equal(gen_read_cert_file(f.server_ca, &ca), EMU_OK);
	assert_int_equal(gen_read_key_file(ca_key_path, &ca_key), EMU_OK);

	/* a planted certificate that fits is kept */
	plant_server(&f, ca, ca_key, -60, 200LL * DAY, ca);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_false(g.issued_server);

	/* expiring within 30 days */
	plant_server(&f, ca, ca_key, -60, 10LL * DAY, ca);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);
	X509_free(check_server(&g, "localhost"));

	/* already expired */
	plant_server(&f, ca, ca_key, -20LL * DAY, 10LL * DAY, ca);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);

	/* issued by another CA (chain file claims ours) */
	assert_int_equal(gen_key(GEN_KEY_P256, &rogue_key), EMU_OK);
	o.cn = "dpsemu server CA";
	o.key = rogue_key;
	o.validity = 365LL * DAY;
	o.is_ca = 1;
	o.pathlen = -1;
	assert_int_equal(gen_cert(&o, &rogue), EMU_OK);
	plant_server(&f, rogue, rogue_key, -60, 200LL * DAY, ca);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);
	/* chain file ending in another CA */
	plant_server(&f, ca, ca_key, -60, 200LL * DAY, rogue);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);

	/* key replaced */
	assert_int_equal(gen_key(GEN_KEY_P256, &k), EMU_OK);
	assert_int_equal(gen_write_key_file(f.server_key, k, 0), EMU_OK);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);

	/* garbage chain file, then a missing one */
	assert_int_equal(gen_write_file(f.server_chain, "junk", 4, 0644, 0), EMU_OK);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);
	assert_int_equal(unlink(f.server_chain), 0);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_OK);
	assert_true(g.issued_server);
	srv = check_server(&g, "localhost");
	assert_true(x509_signed_by(srv, ca));
	X509_free(srv);

	/* through all of that the CA never changed */
	assert_false(g.created_ca);
	assert_string_equal(g.server_ca_sha256, f.server_ca_sha256);

	X509_free(ca);
	X509_free(rogue);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(rogue_key);
	EVP_PKEY_free(k);
}

static void test_ca_key_missing(void **state)
{
	struct devpki_files f, g;
	char dir[512], ca_key_path[DEVPKI_PATH_MAX + 32], *before, *after;
	EVP_PKEY *k = NULL;

	data_dir(dir, sizeof(dir), "cakey");
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &f), EMU_OK);
	snprintf(ca_key_path, sizeof(ca_key_path), "%s/server-ca.key", f.dir);
	before = strdup(f.server_ca_sha256);

	/* a key that does not belong to the CA */
	assert_int_equal(gen_key(GEN_KEY_P256, &k), EMU_OK);
	assert_int_equal(gen_write_key_file(ca_key_path, k, 0), EMU_OK);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_ECRYPTO);

	/* no key at all: refused, and server-ca.pem is left alone */
	assert_int_equal(unlink(ca_key_path), 0);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_ECRYPTO);
	assert_int_equal(access(ca_key_path, F_OK), -1);
	{
		X509 *ca = NULL;
		char sha256[65];
		assert_int_equal(gen_read_cert_file(f.server_ca, &ca), EMU_OK);
		x509_thumbprint_sha256(ca, sha256);
		after = sha256;
		assert_string_equal(before, after);
		X509_free(ca);
	}

	/* a damaged CA certificate is not replaced either */
	assert_int_equal(gen_write_file(f.server_ca, "junk", 4, 0644, 0), EMU_OK);
	assert_int_equal(gen_write_key_file(ca_key_path, k, 0), EMU_OK);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &g), EMU_ECRYPTO);
	after = slurp(f.server_ca);
	assert_string_equal(after, "junk");
	free(after);
	free(before);
	EVP_PKEY_free(k);
}

static void test_stale_ca_key_without_cert(void **state)
{
	struct devpki_files f;
	char dir[512], certs[600], key_path[700];
	EVP_PKEY *k = NULL, *back = NULL;
	X509 *ca = NULL;

	/* a key left from an interrupted first start is replaced by a fresh CA */
	data_dir(dir, sizeof(dir), "stale");
	snprintf(certs, sizeof(certs), "%s/certs", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(certs, 0700), 0);
	snprintf(key_path, sizeof(key_path), "%s/server-ca.key", certs);
	assert_int_equal(gen_key(GEN_KEY_P256, &k), EMU_OK);
	assert_int_equal(gen_write_key_file(key_path, k, 0), EMU_OK);
	assert_int_equal(devpki_ensure(dir, "localhost", NULL, 0, &f), EMU_OK);
	assert_true(f.created_ca);
	assert_int_equal(gen_read_cert_file(f.server_ca, &ca), EMU_OK);
	assert_int_equal(gen_read_key_file(key_path, &back), EMU_OK);
	assert_true(gen_key_matches_cert(back, ca));
	X509_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(back);
}

/* ---- device PKI (issuing CA for CSR issuance) ------------------------------- */

static void check_device_ca(X509 *c, const char *want_cn, int want_pathlen, long days)
{
	BASIC_CONSTRAINTS *bc;
	char cn[80];
	int crit = 0;

	assert_int_equal(x509_common_name(c, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, want_cn);
	assert_true(x509_is_ca(c));
	assert_true(X509_get_key_usage(c) & KU_KEY_CERT_SIGN);
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(c)), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(c)), 384);
	assert_int_equal(X509_get_signature_nid(c), NID_ecdsa_with_SHA384);
	bc = X509_get_ext_d2i(c, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_non_null(bc->pathlen);
	assert_int_equal(ASN1_INTEGER_get(bc->pathlen), want_pathlen);
	BASIC_CONSTRAINTS_free(bc);
	assert_true(x509_not_after(c) > time(NULL) + (days - 1) * DAY);
	assert_true(x509_not_after(c) < time(NULL) + (days + 1) * DAY);
}

static void test_issuer_first_run_and_reuse(void **state)
{
	struct devpki_issuer_files f, g;
	struct issue_ca *ca = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *root = NULL, *iss = NULL;
	char dir[512], why[512], path[DEVPKI_PATH_MAX + 32], sha256[65];
	char *chain1, *chain2, *root1, *root2;

	data_dir(dir, sizeof(dir), "issuer");
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &f, &ca, why, sizeof(why)),
	                 EMU_OK);
	assert_string_equal(why, "");
	assert_non_null(ca);
	assert_true(f.created_root);
	assert_true(f.created_issuing);
	assert_false(f.user_supplied);
	snprintf(path, sizeof(path), "%s/certs/device-issuing-ca.pem", dir);
	assert_string_equal(f.issuing_cert, path);
	snprintf(path, sizeof(path), "%s/certs/device-issuing-ca.key", dir);
	assert_string_equal(f.issuing_key, path);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof(path), "%s/certs/device-root.key", dir);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof(path), "%s/certs/device-ca-chain.pem", dir);
	assert_string_equal(f.chain, path);
	snprintf(path, sizeof(path), "%s/certs/device-root.pem", dir);
	assert_string_equal(f.root_cert, path);
	snprintf(path, sizeof(path), "%s/certs", dir);
	assert_int_equal(mode_of(path), 0700);

	/* root: self-signed P-384, 10 years; issuing CA under it: P-384, 5 years, pathlen 0 */
	assert_int_equal(gen_read_cert_file(f.root_cert, &root), EMU_OK);
	assert_int_equal(gen_read_cert_file(f.issuing_cert, &iss), EMU_OK);
	assert_true(x509_is_self_signed(root));
	check_device_ca(root, "dpsemu device root CA", 1, 3650);
	check_device_ca(iss, "dpsemu device issuing CA", 0, 1826);
	assert_true(x509_signed_by(iss, root));
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(iss), X509_get_subject_name(root)), 0);
	x509_thumbprint_sha256(root, sha256);
	assert_string_equal(f.root_sha256, sha256);
	x509_thumbprint_sha256(iss, sha256);
	assert_string_equal(f.issuing_sha256, sha256);
	assert_int_equal(strlen(f.issuing_sha1), 40);
	assert_int_equal(f.issuing_not_after, x509_not_after(iss));

	/* the chain file is [issuing CA, root], and so is what the CA exposes */
	assert_int_equal(gen_read_chain_file(f.chain, &chain), EMU_OK);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), iss), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), root), 0);
	assert_int_equal(X509_cmp(sk_X509_value(issue_ca_chain(ca), 0), iss), 0);
	assert_int_equal(X509_cmp(sk_X509_value(issue_ca_chain(ca), 1), root), 0);
	sk_X509_pop_free(chain, X509_free);
	issue_ca_free(ca);
	ca = NULL;

	/* the server PKI is separate and unaffected */
	snprintf(path, sizeof(path), "%s/certs/server-ca.pem", dir);
	assert_int_equal(access(path, F_OK), -1);

	/* second start: everything reused byte for byte; ca_out and why may be NULL */
	chain1 = slurp(f.chain);
	root1 = slurp(f.root_cert);
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &g, NULL, NULL, 0), EMU_OK);
	assert_false(g.created_root);
	assert_false(g.created_issuing);
	assert_string_equal(g.root_sha256, f.root_sha256);
	assert_string_equal(g.issuing_sha256, f.issuing_sha256);
	assert_string_equal(g.issuing_sha1, f.issuing_sha1);
	chain2 = slurp(g.chain);
	root2 = slurp(g.root_cert);
	assert_string_equal(chain1, chain2);
	assert_string_equal(root1, root2);
	free(chain1);
	free(chain2);
	free(root1);
	free(root2);

	/* an empty string means "not given" */
	assert_int_equal(devpki_ensure_issuer(dir, "", "", "", &g, NULL, why, sizeof(why)), EMU_OK);
	assert_false(g.user_supplied);
	assert_string_equal(g.issuing_sha256, f.issuing_sha256);
	X509_free(root);
	X509_free(iss);
}

static void test_issuer_repairs_and_refusals(void **state)
{
	struct devpki_issuer_files f, g;
	char dir[512], why[1024], *before;
	EVP_PKEY *k = NULL;

	data_dir(dir, sizeof(dir), "issuer-repair");
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &f, NULL, why, sizeof(why)),
	                 EMU_OK);

	/* a damaged chain file is derived data: rewritten */
	assert_int_equal(gen_write_file(f.chain, "junk", 4, 0644, 0), EMU_OK);
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &g, NULL, why, sizeof(why)),
	                 EMU_OK);
	assert_false(g.created_root || g.created_issuing);
	before = slurp(f.chain);
	assert_non_null(strstr(before, "BEGIN CERTIFICATE"));
	free(before);

	/* a key that does not belong to the issuing CA: refused, file named, nothing replaced */
	assert_int_equal(gen_key(GEN_KEY_P384, &k), EMU_OK);
	assert_int_equal(gen_write_key_file(f.issuing_key, k, 0), EMU_OK);
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &g, NULL, why, sizeof(why)),
	                 EMU_ECRYPTO);
	assert_non_null(strstr(why, f.issuing_key));
	assert_non_null(strstr(why, "does not belong to"));

	/* issuing CA removed: a new one from the same root */
	assert_int_equal(unlink(f.issuing_cert), 0);
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &g, NULL, why, sizeof(why)),
	                 EMU_OK);
	assert_false(g.created_root);
	assert_true(g.created_issuing);
	assert_string_equal(g.root_sha256, f.root_sha256);
	assert_string_not_equal(g.issuing_sha256, f.issuing_sha256);

	/* root removed while the issuing CA stays: refused rather than orphaning it */
	assert_int_equal(unlink(f.root_cert), 0);
	assert_int_equal(devpki_ensure_issuer(dir, NULL, NULL, NULL, &g, NULL, why, sizeof(why)),
	                 EMU_ECRYPTO);
	assert_non_null(strstr(why, "exists without its root"));
	assert_non_null(strstr(why, f.root_cert));
	assert_int_equal(access(f.root_cert, F_OK), -1);

	/* no data dir */
	assert_int_equal(devpki_ensure_issuer(NULL, NULL, NULL, NULL, &g, NULL, why, sizeof(why)),
	                 EMU_EINVAL);
	EVP_PKEY_free(k);
}

/* A user's PKI written to files: root -> issuing CA, plus odd ones for refusals. */
struct user_pki {
	char root[600], issuing[600], key[600], chain[600], bundle[600], both[600];
	char other_key[600], leaf[600], leaf_key[600], other_root[600], deep[600], deep_key[600];
	char deep_chain[600], mid_only[600];
};

static X509 *ucert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int is_ca,
                   int pathlen)
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
	o.not_before_offset = -3600;
	o.validity = 365LL * DAY;
	assert_int_equal(gen_cert(&o, &x), EMU_OK);
	return x;
}

static void user_pki(const char *dir, struct user_pki *p)
{
	EVP_PKEY *rk = NULL, *ik = NULL, *ok = NULL, *lk = NULL, *mk = NULL, *dk = NULL;
	X509 *root, *iss, *leaf, *other, *mid, *deep;
	X509 *two[2];

	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(p->root, sizeof(p->root), "%s/root.pem", dir);
	snprintf(p->issuing, sizeof(p->issuing), "%s/issuing.pem", dir);
	snprintf(p->key, sizeof(p->key), "%s/issuing.key", dir);
	snprintf(p->chain, sizeof(p->chain), "%s/chain.pem", dir);
	snprintf(p->bundle, sizeof(p->bundle), "%s/issuing-bundle.pem", dir);
	snprintf(p->both, sizeof(p->both), "%s/issuing-and-root.pem", dir);
	snprintf(p->other_key, sizeof(p->other_key), "%s/other.key", dir);
	snprintf(p->leaf, sizeof(p->leaf), "%s/leaf.pem", dir);
	snprintf(p->leaf_key, sizeof(p->leaf_key), "%s/leaf.key", dir);
	snprintf(p->other_root, sizeof(p->other_root), "%s/other-root.pem", dir);
	snprintf(p->deep, sizeof(p->deep), "%s/deep.pem", dir);
	snprintf(p->deep_key, sizeof(p->deep_key), "%s/deep.key", dir);
	snprintf(p->deep_chain, sizeof(p->deep_chain), "%s/deep-chain.pem", dir);
	snprintf(p->mid_only, sizeof(p->mid_only), "%s/mid-only.pem", dir);
	assert_int_equal(gen_key(GEN_KEY_P384, &rk), EMU_OK);
	assert_int_equal(gen_key(GEN_KEY_P256, &ik), EMU_OK);
	assert_int_equal(gen_key(GEN_KEY_P256, &ok), EMU_OK);
	assert_int_equal(gen_key(GEN_KEY_P256, &lk), EMU_OK);
	assert_int_equal(gen_key(GEN_KEY_P256, &mk), EMU_OK);
	assert_int_equal(gen_key(GEN_KEY_P256, &dk), EMU_OK);
	root = ucert("User Root", rk, NULL, NULL, 1, -1);
	iss = ucert("User Issuing", ik, root, rk, 1, 0);
	leaf = ucert("not-a-ca", lk, root, rk, 0, -1);
	other = ucert("User Root", ok, NULL, NULL, 1, -1); /* same name, other key */
	mid = ucert("User Mid", mk, root, rk, 1, 1);
	deep = ucert("User Deep", dk, mid, mk, 1, 0);
	assert_int_equal(gen_write_certs_file(p->root, &root, 1, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->issuing, &iss, 1, 0), EMU_OK);
	assert_int_equal(gen_write_key_file(p->key, ik, 0), EMU_OK);
	assert_int_equal(gen_write_key_file(p->other_key, ok, 0), EMU_OK);
	two[0] = iss;
	two[1] = root;
	assert_int_equal(gen_write_certs_file(p->bundle, two, 2, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->both, two, 2, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->chain, &root, 1, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->leaf, &leaf, 1, 0), EMU_OK);
	assert_int_equal(gen_write_key_file(p->leaf_key, lk, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->other_root, &other, 1, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->deep, &deep, 1, 0), EMU_OK);
	assert_int_equal(gen_write_key_file(p->deep_key, dk, 0), EMU_OK);
	two[0] = mid;
	two[1] = root;
	assert_int_equal(gen_write_certs_file(p->deep_chain, two, 2, 0), EMU_OK);
	assert_int_equal(gen_write_certs_file(p->mid_only, &mid, 1, 0), EMU_OK);
	X509_free(root);
	X509_free(iss);
	X509_free(leaf);
	X509_free(other);
	X509_free(mid);
	X509_free(deep);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	EVP_PKEY_free(ok);
	EVP_PKEY_free(lk);
	EVP_PKEY_free(mk);
	EVP_PKEY_free(dk);
}

static void test_issuer_user_supplied(void **state)
{
	struct devpki_issuer_files f;
	struct issue_ca *ca = NULL;
	struct user_pki p;
	char dir[512], udir[512], why[1024], sha256[65];
	X509 *root = NULL;

	data_dir(dir, sizeof(dir), "issuer-user-data");
	data_dir(udir, sizeof(udir), "issuer-user-files");
	user_pki(udir, &p);
	assert_int_equal(gen_read_cert_file(p.root, &root), EMU_OK);
	x509_thumbprint_sha256(root, sha256);

	/* certificate, key and a chain file holding the root */
	assert_int_equal(
	    devpki_ensure_issuer(dir, p.issuing, p.key, p.chain, &f, &ca, why, sizeof(why)),
	    EMU_OK);
	assert_string_equal(why, "");
	assert_true(f.user_supplied);
	assert_false(f.created_root || f.created_issuing);
	assert_string_equal(f.issuing_cert, p.issuing);
	assert_string_equal(f.issuing_key, p.key);
	assert_string_equal(f.chain, p.chain);
	assert_string_equal(f.root_cert, "");
	assert_string_equal(f.root_sha256, sha256);
	assert_int_equal(X509_cmp(issue_ca_root(ca), root), 0);
	assert_int_equal(sk_X509_num(issue_ca_chain(ca)), 2);
	issue_ca_free(ca);
	ca = NULL;
	/* nothing was created in the data dir */
	assert_int_equal(access(dir, F_OK), -1);

	/* the chain inside the certificate file, no chain file */
	assert_int_equal(
	    devpki_ensure_issuer(dir, p.bundle, p.key, NULL, &f, &ca, why, sizeof(why)), EMU_OK);
	assert_string_equal(f.chain, p.bundle);
	assert_string_equal(f.root_sha256, sha256);
	issue_ca_free(ca);
	ca = NULL;
	/* a chain file that starts with the issuing CA itself */
	assert_int_equal(
	    devpki_ensure_issuer(dir, p.issuing, p.key, p.both, &f, NULL, why, sizeof(why)),
	    EMU_OK);
	assert_string_equal(f.root_sha256, sha256);
	/* the same files through issue_ca_load, as DPS would load them */
	assert_int_equal(
	    issue_ca_load(f.issuing_cert, f.issuing_key, f.chain, &ca, why, sizeof(why)), EMU_OK);
	issue_ca_free(ca);
	assert_int_equal(access(dir, F_OK), -1);
	X509_free(root);
}

static void user_refused(const char *cert, const char *key, const char *chain, int want_rc,
                         const char *want1, const char *want2)
{
	struct devpki_issuer_files f;
	struct issue_ca *ca = (struct issue_ca *)1;
	char dir[512], why[1024] = "";
	int rc;

	data_dir(dir, sizeof(dir), "issuer-user-refused");
	rc = devpki_ensure_issuer(dir, cert, key, chain, &f, &ca, why, sizeof(why));
	if (rc != want_rc || !strstr(why, want1) || !strstr(why, want2))
		fprintf(stderr, "rc %d, why '%s'; wanted %d, '%s' and '%s'\n", rc, why, want_rc,
		        want1, want2);
	assert_int_equal(rc, want_rc);
	assert_null(ca);
	assert_non_null(strstr(why, want1));
	assert_non_null(strstr(why, want2));
	assert_int_equal(access(dir, F_OK), -1);
}

static void test_issuer_user_refused(void **state)
{
	struct user_pki p;
	char udir[512], missing[600];

	data_dir(udir, sizeof(udir), "issuer-user-bad");
	user_pki(udir, &p);
	snprintf(missing, sizeof(missing), "%s/nope.pem", udir);

	user_refused(p.issuing, p.other_key, p.chain, EMU_ECRYPTO, p.other_key,
	             "does not belong to");
	user_refused(p.leaf, p.leaf_key, p.chain, EMU_ECRYPTO, p.leaf, "is not a CA certificate");
	/* a root with the right name but another key: the chain does not verify */
	user_refused(p.issuing, p.key, p.other_root, EMU_ECRYPTO, p.other_root, "does not lead");
	user_refused(p.issuing, p.key, p.mid_only, EMU_ECRYPTO, p.mid_only,
	             "holds no self-signed root");
	user_refused(p.issuing, p.key, NULL, EMU_ECRYPTO, p.issuing, "holds no self-signed root");
	user_refused(p.deep, p.deep_key, p.deep_chain, EMU_ECRYPTO, p.deep,
	             "is 2 levels below its root");
	user_refused(p.root, p.other_key, NULL, EMU_ECRYPTO, p.other_key, "does not belong");
	user_refused(missing, p.key, p.chain, EMU_ENOTFOUND, missing, "file not found");
	user_refused(p.issuing, missing, p.chain, EMU_ENOTFOUND, missing, "file not found");
	user_refused(p.issuing, p.key, missing, EMU_ENOTFOUND, missing, "file not found");
	user_refused(p.issuing, p.issuing, p.chain, EMU_ECRYPTO, p.issuing,
	             "no valid unencrypted PEM private key");
	user_refused(p.key, p.key, p.chain, EMU_EINVAL, p.key, "no valid PEM certificate");
	user_refused(p.issuing, NULL, p.chain, EMU_EINVAL, "needs its certificate and its key",
	             "key none");
	user_refused(NULL, p.key, NULL, EMU_EINVAL, "certificate none", p.key);
	user_refused(NULL, NULL, p.chain, EMU_EINVAL, "needs its certificate", p.chain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_run_and_reuse),
	    cmocka_unit_test(test_extra_names),
	    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_reissue_conditions),
	    cmocka_unit_test(test_ca_key_missing),
	    cmocka_unit_test(test_stale_ca_key_without_cert),
	    cmocka_unit_test(test_issuer_first_run_and_reuse),
	    cmocka_unit_test(test_issuer_repairs_and_refusals),
	    cmocka_unit_test(test_issuer_user_supplied),
	    cmocka_unit_test(test_issuer_user_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
