/* Unit tests for certs/tool: `dpsemu certs ...` run in-process on a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "textenc.h"

#include "certs/gen.h"
#include "certs/tool.h"
#include "certs/x509.h"

#include <fcntl.h>
#include <ftw.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY      86400
#define MAX_ARGS 24

static char dir[256];
static char out_text[8192], err_text[8192];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/dpsemu-test-tool-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* "<dir>/<name>" in a rotating set of static buffers (several per call). */
static const char *P(const char *name)
{
	static char bufs[16][512];
	static int next;
	char *b = bufs[next++ % 16];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

static void read_into(int fd, char *buf, size_t n)
{
	ssize_t k;

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	k = read(fd, buf, n - 1);
	assert_true(k >= 0);
	buf[k] = '\0';
}

/* Runs certs_tool_main with the NULL-terminated arguments after "certs",
 * capturing stdout and stderr into out_text and err_text. */
static int run(const char *first, ...)
{
	char *argv[MAX_ARGS];
	int argc = 0, rc, saved_out, saved_err, fo, fe;
	char tmpl_o[] = "/tmp/dpsemu-tool-out-XXXXXX", tmpl_e[] = "/tmp/dpsemu-tool-err-XXXXXX";
	va_list ap;

	argv[argc++] = (char *)"certs";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc < MAX_ARGS - 1);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;

	fo = mkstemp(tmpl_o);
	fe = mkstemp(tmpl_e);
	assert_true(fo >= 0 && fe >= 0);
	unlink(tmpl_o);
	unlink(tmpl_e);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	dup2(fo, 1);
	dup2(fe, 2);
	rc = certs_tool_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	read_into(fo, out_text, sizeof(out_text));
	read_into(fe, err_text, sizeof(err_text));
	close(fo);
	close(fe);
	return rc;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static STACK_OF(X509) *chain_of(const char *path)
{
	STACK_OF(X509) *sk = NULL;

	assert_int_equal(gen_read_chain_file(path, &sk), EMU_OK);
	return sk;
}

static X509 *cert_of(const char *path)
{
	X509 *x = NULL;

	assert_int_equal(gen_read_cert_file(path, &x), EMU_OK);
	return x;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void expect_cn(X509 *x, const char *want)
{
	char cn[128];

	assert_int_equal(x509_common_name(x, cn, sizeof(cn)), EMU_OK);
	assert_string_equal(cn, want);
}

static void test_root_intermediate_device(void **state)
{
	STACK_OF(X509) *chain, *rootchain, *anchors;
	X509 *root, *inter, *dev, *anchor = NULL;
	EVP_PKEY *key = NULL;
	int depth = -1;
	char why[256];

	assert_int_equal(run("root", "--cn", "Test Root", "--out", P("root"), NULL), 0);
	assert_int_equal(count_lines(out_text), 3);
	assert_non_null(strstr(out_text, P("root.pem")));
	assert_non_null(strstr(out_text, P("root.key")));
	assert_non_null(strstr(out_text, P("root-chain.pem")));
	assert_int_equal(mode_of(P("root.key")), 0600);
	root = cert_of(P("root.pem"));
	assert_true(x509_is_ca(root));
	assert_true(x509_is_self_signed(root));
	expect_cn(root, "Test Root");
	assert_true(x509_not_after(root) > time(NULL) + 3649LL * DAY);
	rootchain = chain_of(P("root-chain.pem"));
	assert_int_equal(sk_X509_num(rootchain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(rootchain, 0), root), 0);

	assert_int_equal(run("intermediate", "--cn", "Test Intermediate", "--ca", P("root"),
	                     "--out", P("inter"), "--pathlen", "0", "--key-type", "p384", NULL),
	                 0);
	inter = cert_of(P("inter.pem"));
	assert_true(x509_is_ca(inter));
	assert_int_equal(X509_get_pathlen(inter), 0);
	assert_true(x509_signed_by(inter, root));
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(inter)), 384);
	assert_true(x509_not_after(inter) < time(NULL) + 366LL * DAY);
	chain = chain_of(P("inter-chain.pem"));
	/* the self-signed root is left out */
	assert_int_equal(sk_X509_num(chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), inter), 0);
	sk_X509_pop_free(chain, X509_free);

	assert_int_equal(run("device", "--cn", "dev1", "--ca", P("inter"), "--out", P("dev1"),
	                     "--days", "30", NULL),
	                 0);
	assert_int_equal(count_lines(out_text), 3);
	assert_int_equal(mode_of(P("dev1.key")), 0600);
	dev = cert_of(P("dev1.pem"));
	expect_cn(dev, "dev1");
	assert_false(x509_is_ca(dev));
	assert_true(X509_get_extension_flags(dev) & EXFLAG_BCONS);
	assert_int_equal(X509_get_extended_key_usage(dev), XKU_SSL_CLIENT);
	assert_int_equal(X509_get_key_usage(dev), KU_DIGITAL_SIGNATURE);
	assert_true(x509_not_after(dev) <= time(NULL) + 30LL * DAY);
	assert_true(x509_not_after(dev) > time(NULL) + 29LL * DAY);
	assert_int_equal(gen_read_key_file(P("dev1.key"), &key), EMU_OK);
	assert_true(gen_key_matches_cert(key, dev));
	EVP_PKEY_free(key);

	/* dev1-chain.pem = device + intermediate: what the device presents */
	chain = chain_of(P("dev1-chain.pem"));
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), dev), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), inter), 0);

	/* and it validates up to the root */
	anchors = sk_X509_new_null();
	assert_true(sk_X509_push(anchors, root) > 0);
	X509_free(sk_X509_shift(chain));
	assert_int_equal(
	    x509_verify_chain(dev, chain, anchors, 0, &anchor, &depth, why, sizeof(why)), EMU_OK);
	assert_ptr_equal(anchor, root);
	assert_int_equal(depth, 2);
	sk_X509_free(anchors);
	sk_X509_pop_free(chain, X509_free);

	/* a device directly under the root: chain = device alone */
	assert_int_equal(run("device", "--cn", "dev2", "--ca", P("root"), "--out", P("dev2"),
	                     "--key-type", "rsa2048", NULL),
	                 0);
	chain = chain_of(P("dev2-chain.pem"));
	assert_int_equal(sk_X509_num(chain), 1);
	assert_int_equal(X509_get_key_usage(sk_X509_value(chain, 0)),
	                 KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	sk_X509_pop_free(chain, X509_free);

	/* a second intermediate under the pathlen-0 one is made, but devices below it fail */
	assert_int_equal(
	    run("intermediate", "--cn", "Too Deep", "--ca", P("inter"), "--out", P("deep"), NULL),
	    0);
	chain = chain_of(P("deep-chain.pem"));
	assert_int_equal(sk_X509_num(chain), 2);
	sk_X509_pop_free(chain, X509_free);
	assert_int_equal(run("device", "--cn", "dev3", "--ca", P("deep"), "--out", P("dev3"), NULL),
	                 0);
	chain = chain_of(P("dev3-chain.pem"));
	assert_int_equal(sk_X509_num(chain), 3);
	X509 *dev3 = sk_X509_shift(chain);
	anchors = sk_X509_new_null();
	assert_true(sk_X509_push(anchors, root) > 0);
	assert_int_equal(x509_verify_chain(dev3, chain, anchors, 0, NULL, NULL, why, sizeof(why)),
	                 EMU_ECRYPTO);
	assert_non_null(strstr(why, "path length constraint exceeded"));
	sk_X509_free(anchors);
	sk_X509_pop_free(chain, X509_free);
	X509_free(dev3);

	sk_X509_pop_free(rootchain, X509_free);
	X509_free(root);
	X509_free(inter);
	X509_free(dev);
}

static void test_self_signed_and_dates(void **state)
{
	STACK_OF(X509) *chain, *anchors;
	X509 *x, *anchor = NULL;
	int depth = -1;
	char why[256];

	assert_int_equal(run("device", "--cn", "lonely", "--self-signed", "--out", P("ss"), NULL),
	                 0);
	x = cert_of(P("ss.pem"));
	assert_true(x509_is_self_signed(x));
	assert_false(x509_is_ca(x));
	chain = chain_of(P("ss-chain.pem"));
	assert_int_equal(sk_X509_num(chain), 1);
	sk_X509_pop_free(chain, X509_free);
	anchors = sk_X509_new_null();
	assert_true(sk_X509_push(anchors, x) > 0);
	assert_int_equal(x509_verify_chain(x, NULL, anchors, 0, &anchor, &depth, NULL, 0), EMU_OK);
	assert_int_equal(depth, 0);
	sk_X509_free(anchors);
	X509_free(x);

	/* expired: started 30 days ago, valid 10 */
	assert_int_equal(run("device", "--cn", "old", "--self-signed", "--out", P("old"),
	                     "--start-offset-days", "-30", "--days", "10", NULL),
	                 0);
	x = cert_of(P("old.pem"));
	assert_true(x509_not_after(x) < time(NULL) - 19LL * DAY);
	anchors = sk_X509_new_null();
	assert_true(sk_X509_push(anchors, x) > 0);
	assert_int_equal(x509_verify_chain(x, NULL, anchors, 0, NULL, NULL, why, sizeof(why)),
	                 EMU_ECRYPTO);
	assert_string_equal(why, "depth 0 CN=old: certificate has expired");
	sk_X509_free(anchors);
	X509_free(x);

	/* not yet valid (option=value form) */
	assert_int_equal(run("device", "--cn=future", "--self-signed", "--out", P("future"),
	                     "--start-offset-days=5", NULL),
	                 0);
	x = cert_of(P("future.pem"));
	anchors = sk_X509_new_null();
	assert_true(sk_X509_push(anchors, x) > 0);
	assert_int_equal(x509_verify_chain(x, NULL, anchors, 0, NULL, NULL, why, sizeof(why)),
	                 EMU_ECRYPTO);
	assert_string_equal(why, "depth 0 CN=future: certificate is not yet valid");
	sk_X509_free(anchors);
	X509_free(x);
}

static void test_verification_cert(void **state)
{
	X509 *ca, *pop, *other;

	assert_int_equal(run("root", "--cn", "PoP Root", "--out", P("poproot"), NULL), 0);
	assert_int_equal(run("root", "--cn", "Other Root", "--out", P("otherroot"), NULL), 0);
	assert_int_equal(run("verification", "--code", "7A1B2C3D4E5F", "--ca", P("poproot"),
	                     "--out", P("pop"), NULL),
	                 0);
	ca = cert_of(P("poproot.pem"));
	other = cert_of(P("otherroot.pem"));
	pop = cert_of(P("pop.pem"));
	expect_cn(pop, "7A1B2C3D4E5F");
	assert_true(x509_signed_by(pop, ca));
	assert_false(x509_signed_by(pop, other));
	X509_free(ca);
	X509_free(other);
	X509_free(pop);
	/* --code is required, --cn is not accepted */
	assert_int_equal(run("verification", "--ca", P("poproot"), "--out", P("pop2"), NULL), 2);
	assert_non_null(strstr(err_text, "--code"));
	assert_int_equal(run("verification", "--code", "X", "--cn", "Y", "--ca", P("poproot"),
	                     "--out", P("pop2"), NULL),
	                 2);
}

static void test_csr(void **state)
{
	char *b64 = NULL, *pem;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t derlen = 0, n;
	X509_REQ *req;
	EVP_PKEY *key = NULL;
	FILE *f;
	char name[64];

	assert_int_equal(run("csr", "--cn", "my-device", "--out", P("req"), NULL), 0);
	assert_int_equal(count_lines(out_text), 3);
	assert_int_equal(mode_of(P("req.key")), 0600);

	f = fopen(P("req.csr.b64"), "r");
	assert_non_null(f);
	b64 = calloc(1, 4096);
	n = fread(b64, 1, 4095, f);
	fclose(f);
	assert_true(n > 100);
	assert_null(strpbrk(b64, "\r\n -"));
	assert_int_equal(b64_decode(b64, n, &der, &derlen), EMU_OK);
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)derlen);
	assert_non_null(req);
	assert_int_equal(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
	                                           name, sizeof(name)),
	                 9);
	assert_string_equal(name, "my-device");
	assert_int_equal(gen_read_key_file(P("req.key"), &key), EMU_OK);
	assert_int_equal(X509_REQ_verify(req, key), 1);
	X509_REQ_free(req);
	free(der);
	der = NULL;

	f = fopen(P("req.csr.pem"), "r");
	assert_non_null(f);
	pem = calloc(1, 4096);
	assert_true(fread(pem, 1, 4095, f) > 36);
	fclose(f);
	assert_memory_equal(pem, "-----BEGIN CERTIFICATE REQUEST-----\n", 36);
	free(pem);

	/* --key reuses the key and writes no key file */
	assert_int_equal(
	    run("csr", "--cn", "my-device", "--out", P("req2"), "--key", P("req.key"), NULL), 0);
	assert_int_equal(count_lines(out_text), 2);
	assert_int_equal(access(P("req2.key"), F_OK), -1);
	f = fopen(P("req2.csr.b64"), "r");
	assert_non_null(f);
	memset(b64, 0, 4096);
	n = fread(b64, 1, 4095, f);
	fclose(f);
	assert_int_equal(b64_decode(b64, n, &der, &derlen), EMU_OK);
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)derlen);
	assert_non_null(req);
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
	X509_REQ_free(req);
	free(der);
	free(b64);

	/* a certificate for that same key */
	assert_int_equal(run("device", "--cn", "my-device", "--self-signed", "--key", P("req.key"),
	                     "--out", P("req-cert"), NULL),
	                 0);
	{
		X509 *x = cert_of(P("req-cert.pem"));
		assert_true(gen_key_matches_cert(key, x));
		X509_free(x);
	}
	EVP_PKEY_free(key);
}

static void test_overwrite(void **state)
{
	X509 *a, *b;

	assert_int_equal(run("device", "--cn", "ow", "--self-signed", "--out", P("ow"), NULL), 0);
	a = cert_of(P("ow.pem"));
	assert_int_equal(run("device", "--cn", "ow", "--self-signed", "--out", P("ow"), NULL), 1);
	assert_non_null(strstr(err_text, "already exists"));
	assert_non_null(strstr(err_text, "--force"));
	assert_string_equal(out_text, "");
	b = cert_of(P("ow.pem"));
	assert_int_equal(X509_cmp(a, b), 0);
	X509_free(b);
	assert_int_equal(
	    run("device", "--cn", "ow", "--self-signed", "--out", P("ow"), "--force", NULL), 0);
	b = cert_of(P("ow.pem"));
	assert_int_not_equal(X509_cmp(a, b), 0);
	assert_int_equal(mode_of(P("ow.key")), 0600);
	X509_free(a);
	X509_free(b);
}

static void test_usage_errors(void **state)
{
	assert_int_equal(run(NULL), 2);
	assert_non_null(strstr(err_text, "usage:"));
	assert_int_equal(run("help", NULL), 0);
	assert_non_null(strstr(out_text, "intermediate"));
	assert_non_null(strstr(out_text, "--start-offset-days"));

	assert_int_equal(run("bogus", NULL), 2);
	assert_non_null(strstr(err_text, "bogus"));
	assert_int_equal(run("root", "--out", P("x"), NULL), 2);
	assert_non_null(strstr(err_text, "--cn"));
	assert_int_equal(run("root", "--cn", "x", NULL), 2);
	assert_non_null(strstr(err_text, "--out"));
	assert_int_equal(run("root", "--cn", "x", "--out", P("x"), "--bogus", NULL), 2);
	assert_non_null(strstr(err_text, "--bogus"));
	assert_int_equal(run("root", "--cn", "x", "--out", P("x"), "stray", NULL), 2);
	assert_int_equal(run("root", "--cn", "x", "--out", NULL), 2);
	assert_int_equal(run("root", "--cn", "x", "--cn", "y", "--out", P("x"), NULL), 2);
	assert_int_equal(run("root", "--cn", "x", "--out", P("x"), "--ca", P("root"), NULL), 2);
	assert_int_equal(run("root", "--cn", "x", "--out", P("x"), "--key-type", "dsa", NULL), 2);
	assert_non_null(strstr(err_text, "--key-type"));
	assert_int_equal(run("root", "--cn", "x", "--out", P("x"), "--days", "0", NULL), 2);
	assert_non_null(strstr(err_text, "--days"));
	assert_int_equal(run("root", "--cn", "x", "--out", P("x"), "--days", "12x", NULL), 2);
	assert_int_equal(run("intermediate", "--cn", "x", "--out", P("x"), NULL), 2);
	assert_non_null(strstr(err_text, "--ca"));
	assert_int_equal(run("intermediate", "--cn", "x", "--ca", P("root"), "--out", P("x"),
	                     "--pathlen", "-1", NULL),
	                 2);
	assert_int_equal(run("device", "--cn", "x", "--out", P("x"), NULL), 2);
	assert_int_equal(
	    run("device", "--cn", "x", "--out", P("x"), "--ca", P("root"), "--self-signed", NULL),
	    2);
	assert_int_equal(run("device", "--cn", "x", "--out", P("x"), "--self-signed=yes", NULL), 2);
	assert_int_equal(
	    run("csr", "--cn", "x", "--out", P("x"), "--key", P("a"), "--key-type", "p256", NULL),
	    2);
	assert_int_equal(run("csr", "--cn", "x", "--out", P("x"), "--days", "3", NULL), 2);
	/* nothing was written by any of these */
	assert_int_equal(access(P("x.key"), F_OK), -1);
	assert_int_equal(access(P("x.pem"), F_OK), -1);
}

static void test_failures(void **state)
{
	/* CA files missing or unusable: exit 1 with the file named */
	assert_int_equal(run("device", "--cn", "d", "--ca", P("nope"), "--out", P("d"), NULL), 1);
	assert_non_null(strstr(err_text, P("nope.pem")));
	assert_int_equal(access(P("d.key"), F_OK), -1);

	/* a leaf is not a CA */
	assert_int_equal(run("device", "--cn", "leaf", "--self-signed", "--out", P("leaf"), NULL),
	                 0);
	assert_int_equal(run("device", "--cn", "d", "--ca", P("leaf"), "--out", P("d"), NULL), 1);
	assert_non_null(strstr(err_text, "not a CA"));

	/* CA key missing */
	assert_int_equal(run("root", "--cn", "R", "--out", P("r"), NULL), 0);
	assert_int_equal(unlink(P("r.key")), 0);
	assert_int_equal(run("device", "--cn", "d", "--ca", P("r"), "--out", P("d"), NULL), 1);
	assert_non_null(strstr(err_text, P("r.key")));

	/* over-long CN (65 characters) */
	assert_int_equal(run("device", "--self-signed", "--out", P("long"), "--cn",
	                     "01234567890123456789012345678901234567890123456789"
	                     "012345678901234",
	                     NULL),
	                 1);
	assert_non_null(strstr(err_text, "cannot create the certificate"));
	/* output directory missing */
	assert_int_equal(
	    run("device", "--cn", "d", "--self-signed", "--out", P("no/such/dir"), NULL), 1);
	/* --key unreadable */
	assert_int_equal(run("csr", "--cn", "d", "--out", P("c"), "--key", P("missing.key"), NULL),
	                 1);
}

static void test_ca_chain_file(void **state)
{
	STACK_OF(X509) *chain;
	X509 *inter;

	assert_int_equal(run("root", "--cn", "CR", "--out", P("cr"), NULL), 0);
	assert_int_equal(run("intermediate", "--cn", "CI", "--ca", P("cr"), "--out", P("ci"), NULL),
	                 0);
	inter = cert_of(P("ci.pem"));

	/* a CA made elsewhere has no -chain.pem: its certificate alone is used */
	assert_int_equal(unlink(P("ci-chain.pem")), 0);
	assert_int_equal(run("device", "--cn", "cd", "--ca", P("ci"), "--out", P("cd"), NULL), 0);
	chain = chain_of(P("cd-chain.pem"));
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), inter), 0);
	sk_X509_pop_free(chain, X509_free);

	/* a chain file that belongs to another CA is refused */
	assert_int_equal(rename(P("cr-chain.pem"), P("ci-chain.pem")), 0);
	assert_int_equal(run("device", "--cn", "cd2", "--ca", P("ci"), "--out", P("cd2"), NULL), 1);
	assert_non_null(strstr(err_text, "does not start with the CA certificate"));
	assert_int_equal(access(P("cd2.key"), F_OK), -1);
	X509_free(inter);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_intermediate_device),
	    cmocka_unit_test(test_self_signed_and_dates),
	    cmocka_unit_test(test_verification_cert),
	    cmocka_unit_test(test_csr),
	    cmocka_unit_test(test_overwrite),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_failures),
	    cmocka_unit_test(test_ca_chain_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
