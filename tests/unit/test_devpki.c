/* Unit tests for certs/devpki: the emulator's own server PKI in the data dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"

#include "certs/devpki.h"
#include "certs/gen.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_run_and_reuse),
	    cmocka_unit_test(test_extra_names),
	    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_reissue_conditions),
	    cmocka_unit_test(test_ca_key_missing),
	    cmocka_unit_test(test_stale_ca_key_without_cert),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
