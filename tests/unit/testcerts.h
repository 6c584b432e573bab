/* testcerts.h - EC P-256 keys and certificates made in memory for unit tests
 * (a thin layer over certs/gen.h with test-friendly defaults).
 *
 * Nothing is written to disk unless a test asks for it (testcert_write_pem).
 * Every certificate gets a fresh key and a random serial, so two calls with the
 * same names still give distinct certificates. */
#ifndef DPSEMU_TESTCERTS_H
#define DPSEMU_TESTCERTS_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <time.h>

struct testcert {
	X509 *cert;    /* owned */
	EVP_PKEY *key; /* owned: the certificate's private key */
};

struct testcert_opts {
	int ca;             /* basicConstraints CA:TRUE, keyUsage keyCertSign/cRLSign */
	int pathlen;        /* pathLenConstraint for CAs; -1 = none */
	long not_before;    /* seconds relative to now (e.g. -3600) */
	long not_after;     /* seconds relative to now (e.g. 86400) */
	int no_client_auth; /* leaf: leave out extendedKeyUsage clientAuth */
	const char *org;    /* optional O= in the subject */
};

/* Makes a certificate for subject CN=cn, signed by issuer (NULL = self-signed)
 * with the options o (NULL = defaults: leaf, valid from an hour ago for a year).
 * Returns a new testcert (free with testcert_free) or NULL. */
struct testcert *testcert_new(const char *cn, const struct testcert *issuer,
                              const struct testcert_opts *o);
/* Shorthands: a self-signed root CA, a CA signed by issuer, a client leaf signed
 * by issuer, and a self-signed client certificate. */
struct testcert *testcert_root(const char *cn);
struct testcert *testcert_ca(const char *cn, const struct testcert *issuer);
struct testcert *testcert_leaf(const char *cn, const struct testcert *issuer);
struct testcert *testcert_self_signed(const char *cn);
/* Frees c; NULL is fine. */
void testcert_free(struct testcert *c);

/* PEM text of the certificate as a new string (caller frees), or NULL. */
char *testcert_pem(const struct testcert *c);
/* base64 of the DER as a new string (caller frees), or NULL. */
char *testcert_b64der(const struct testcert *c);
/* Writes the certificate as PEM to path. Returns 0 or -1. */
int testcert_write_pem(const struct testcert *c, const char *path);

/* A new stack holding new references to the given certificates (n of them),
 * in order. Caller frees with sk_X509_pop_free(s, X509_free). */
STACK_OF(X509) *testcert_stack(int n, ...);

#endif
