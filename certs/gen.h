/* gen.h - key, certificate and CSR generation, and PEM files.
 *
 * Shared by the emulator's own PKI (devpki), the certificate tool, CSR issuance and
 * the tests. EVP_PKEY, X509 and X509_REQ follow OpenSSL reference counting: a
 * function that returns one through an out pointer hands the caller one reference,
 * which the caller releases with EVP_PKEY_free / X509_free / X509_REQ_free.
 * Errors are EMU_* codes from err.h; OpenSSL and errno details go to the log. */
#ifndef DPSEMU_GEN_H
#define DPSEMU_GEN_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum gen_key_type {
	GEN_KEY_P256 = 0, /* EC prime256v1, the default */
	GEN_KEY_P384,     /* EC secp384r1 */
	GEN_KEY_RSA2048,  /* RSA 2048 bits, e = 65537 */
};

/* Parses a key type name, case-insensitively: "p256", "ec256", "prime256v1",
 * "secp256r1", "p384", "ec384", "secp384r1", "rsa2048", "rsa".
 * Returns EMU_OK and sets *out, or EMU_EINVAL for anything else. */
int gen_key_type_parse(const char *name, enum gen_key_type *out);

/* Canonical name of a key type ("p256", "p384", "rsa2048"); "?" if unknown. */
const char *gen_key_type_name(enum gen_key_type type);

/* Generates a new private key. Returns EMU_OK and a new key in *out, EMU_EINVAL for
 * an unknown type, EMU_ECRYPTO if OpenSSL fails. */
int gen_key(enum gen_key_type type, EVP_PKEY **out);

/* Extended key usage of a generated certificate (a bit set). */
enum gen_eku {
	GEN_EKU_NONE = 0,
	GEN_EKU_SERVER = 1, /* id-kp-serverAuth */
	GEN_EKU_CLIENT = 2, /* id-kp-clientAuth */
	GEN_EKU_BOTH = 3,
};

/* What gen_cert puts into a certificate. Zero-initialise and fill in; nothing in
 * here is retained after gen_cert returns. */
struct gen_cert_opts {
	const char *cn;            /* subject commonName, 1..64 characters UTF-8; required */
	const char *org;           /* subject organizationName, or NULL */
	EVP_PKEY *key;             /* subject public key (a private key also works); required */
	X509 *issuer;              /* issuing CA certificate, or NULL for self-signed */
	EVP_PKEY *issuer_key;      /* private key of issuer; with issuer == NULL it must be
	                            * NULL and key (then a private key) signs */
	int64_t not_before_offset; /* notBefore = now + this many seconds (may be negative) */
	int64_t validity;          /* notAfter = notBefore + this many seconds; > 0 */
	int is_ca;                 /* basicConstraints CA:TRUE and keyCertSign/cRLSign */
	int pathlen;               /* CA path length constraint, -1 for none */
	int eku;                   /* enum gen_eku bits; GEN_EKU_NONE omits the extension */
	const char *const *sans;   /* subjectAltName entries: an IPv4/IPv6 literal becomes an
	                            * IP address, anything else a DNS name; may be NULL */
	size_t n_sans;
};

/* Checks a subjectAltName entry the way gen_cert does: EMU_OK for an IPv4/IPv6
 * literal or a DNS name (1..253 characters of letters, digits, '-', '.', '_', '*'),
 * EMU_EINVAL otherwise. */
int gen_san_check(const char *name);

/* Creates and signs a version 3 certificate described by o.
 *
 * The serial is 127 random bits, positive and never 0. Extensions:
 * basicConstraints (critical; CA:FALSE for leaves), keyUsage (critical; CA:
 * keyCertSign + cRLSign, leaf: digitalSignature, plus keyEncipherment for an RSA
 * key), extendedKeyUsage when o->eku is not GEN_EKU_NONE, subjectKeyIdentifier,
 * authorityKeyIdentifier (keyid) and subjectAltName when o->n_sans > 0. The issuer
 * name is the issuer's subject (or the new subject when self-signed). The
 * signature uses SHA-384 when the signing key is P-384, SHA-256 otherwise.
 *
 * Returns EMU_OK and a new certificate in *out; EMU_EINVAL for missing or invalid
 * options (no cn, a cn over 64 characters, issuer_key not matching issuer, a bad
 * SAN, validity <= 0); EMU_ECRYPTO if OpenSSL fails. */
int gen_cert(const struct gen_cert_opts *o, X509 **out);

/* Building blocks gen_cert uses, shared with certificate issuance (issue.c): */
/* A random positive 127-bit serial (never 0) into serial; its upper-case hex
 * into hex when not NULL. Returns EMU_OK or EMU_ECRYPTO. */
int gen_serial(ASN1_INTEGER *serial, char hex[41]);
/* Adds extension nid (an OpenSSL extension structure in value) to x.
 * Returns EMU_OK or EMU_ECRYPTO (logged). */
int gen_add_ext(X509 *x, int nid, void *value, int crit);
/* The signature digest for a signing key: SHA-384 for EC P-384 and above,
 * SHA-256 otherwise. */
const EVP_MD *gen_sign_digest(EVP_PKEY *key);

/* Creates a PKCS#10 request for key with subject CN = cn, signed with SHA-256 by key.
 * Returns EMU_OK and a new request in *out, EMU_EINVAL for an empty or over-long cn,
 * EMU_ECRYPTO if OpenSSL fails. */
int gen_csr(EVP_PKEY *key, const char *cn, X509_REQ **out);

/* PEM text (unencrypted PKCS#8 "PRIVATE KEY") of a private key, as a new string the
 * caller frees (and should clear: it is a secret), or NULL. */
char *gen_key_to_pem(EVP_PKEY *key);
/* PEM text ("CERTIFICATE REQUEST") of a CSR, as a new string (caller frees), or NULL. */
char *gen_csr_to_pem(X509_REQ *req);
/* base64 of the CSR's DER encoding, no line breaks (the DPS register body's "csr"
 * form), as a new string (caller frees), or NULL. */
char *gen_csr_to_b64der(X509_REQ *req);

/* Flags for the gen_write_* functions. */
#define GEN_WRITE_EXCL 0x1 /* fail with EMU_EEXIST if the file already exists */

/* Writes len bytes to path with permissions mode (for a new file; an existing file
 * is truncated, and when mode grants nothing to group and others it is chmod-ed to
 * mode before any byte is written).
 * Symbolic links at path are not followed. Returns EMU_OK; EMU_EEXIST with
 * GEN_WRITE_EXCL when path exists; EMU_EIO otherwise (errno is logged). */
int gen_write_file(const char *path, const void *data, size_t len, mode_t mode, int flags);

/* Writes key as an unencrypted PKCS#8 PEM file with mode 0600 (never readable by
 * others, also when overwriting). Same returns as gen_write_file, plus EMU_ECRYPTO
 * if the key cannot be encoded. */
int gen_write_key_file(const char *path, EVP_PKEY *key, int flags);

/* Writes n certificates as consecutive PEM blocks (mode 0644). Same returns as
 * gen_write_file, plus EMU_ECRYPTO if a certificate cannot be encoded. */
int gen_write_certs_file(const char *path, X509 *const *certs, size_t n, int flags);

/* Reads a PEM private key (PKCS#8, traditional EC or RSA; encrypted keys are refused
 * rather than prompting). Returns EMU_OK and a new key in *out; EMU_ENOTFOUND if the
 * file does not exist; EMU_EIO if it cannot be read; EMU_ETOOBIG over 64 KiB;
 * EMU_ECRYPTO if it holds no usable key. */
int gen_read_key_file(const char *path, EVP_PKEY **out);

/* Reads the first certificate of a PEM file. Returns EMU_OK and a new certificate in
 * *out; EMU_ENOTFOUND, EMU_EIO, EMU_ETOOBIG (over 1 MiB) as above; EMU_EINVAL if it
 * holds no valid certificate. */
int gen_read_cert_file(const char *path, X509 **out);

/* Reads every certificate of a PEM file (a chain). Returns EMU_OK and a new stack in
 * *out (free with sk_X509_pop_free(s, X509_free)); errors as gen_read_cert_file. */
int gen_read_chain_file(const char *path, STACK_OF(X509) **out);

/* True if key is the private key belonging to cert. */
int gen_key_matches_cert(EVP_PKEY *key, X509 *cert);

#endif
