#include "testcerts.h"

#include "certs/gen.h"
#include "err.h"
#include "textenc.h"

#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct testcert *testcert_new(const char *cn, const struct testcert *issuer,
                              const struct testcert_opts *o)
{
	struct testcert_opts def = {
	    .ca = 0, .pathlen = -1, .not_before = -3600, .not_after = 365L * 86400};
	struct gen_cert_opts g;
	struct testcert *c;

	if (!o)
		o = &def;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (gen_key(GEN_KEY_P256, &c->key) != EMU_OK)
		goto fail;
	memset(&g, 0, sizeof(g));
	g.cn = cn;
	g.org = o->org;
	g.key = c->key;
	g.issuer = issuer ? issuer->cert : NULL;
	g.issuer_key = issuer ? issuer->key : NULL;
	g.not_before_offset = o->not_before;
	g.validity = o->not_after - o->not_before;
	g.is_ca = o->ca;
	g.pathlen = o->ca ? o->pathlen : -1;
	g.eku = o->ca || o->no_client_auth ? GEN_EKU_NONE : GEN_EKU_CLIENT;
	if (gen_cert(&g, &c->cert) != EMU_OK)
		goto fail;
	return c;
fail:
	testcert_free(c);
	return NULL;
}

struct testcert *testcert_root(const char *cn)
{
	struct testcert_opts o = {
	    .ca = 1, .pathlen = -1, .not_before = -3600, .not_after = 10L * 365 * 86400};
	return testcert_new(cn, NULL, &o);
}

struct testcert *testcert_ca(const char *cn, const struct testcert *issuer)
{
	struct testcert_opts o = {
	    .ca = 1, .pathlen = -1, .not_before = -3600, .not_after = 5L * 365 * 86400};
	return testcert_new(cn, issuer, &o);
}

struct testcert *testcert_leaf(const char *cn, const struct testcert *issuer)
{
	return testcert_new(cn, issuer, NULL);
}

struct testcert *testcert_self_signed(const char *cn)
{
	return testcert_new(cn, NULL, NULL);
}

void testcert_free(struct testcert *c)
{
	if (!c)
		return;
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	free(c);
}

char *testcert_pem(const struct testcert *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (!b)
		return NULL;
	if (PEM_write_bio_X509(b, c->cert)) {
		n = BIO_get_mem_data(b, &data);
		out = malloc((size_t)n + 1);
		if (out) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

char *testcert_b64der(const struct testcert *c)
{
	unsigned char *der = NULL;
	char *out;
	int n = i2d_X509(c->cert, &der);

	if (n <= 0)
		return NULL;
	out = b64_encode(der, (size_t)n);
	OPENSSL_free(der);
	return out;
}

int testcert_write_pem(const struct testcert *c, const char *path)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = PEM_write_X509(f, c->cert);
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

STACK_OF(X509) *testcert_stack(int n, ...)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	va_list ap;

	if (!s)
		return NULL;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		X509 *x = va_arg(ap, X509 *);
		if (!X509_up_ref(x)) {
			va_end(ap);
			sk_X509_pop_free(s, X509_free);
			return NULL;
		}
		if (!sk_X509_push(s, x)) {
			X509_free(x);
			va_end(ap);
			sk_X509_pop_free(s, X509_free);
			return NULL;
		}
	}
	va_end(ap);
	return s;
}
