/* issue.h - device certificates issued from a CSR (DPS certificate issuance).
 *
 * A device sends a PKCS#10 request with its registration; DPS checks it
 * (issue_csr_parse), signs a client certificate with an issuing CA
 * (issue_certificate) and answers with [leaf, issuing CA, root] (issue_chain_json).
 * Everything here is pure: no store, no network; the caller decides whether a
 * serial or a public key is already taken.
 *
 * EVP_PKEY, X509 and X509_REQ follow OpenSSL reference counting: a function that
 * returns one through an out pointer hands the caller one reference. Errors are
 * EMU_* codes from err.h; OpenSSL details go to the log (component "issue"). */
#ifndef DPSEMU_ISSUE_H
#define DPSEMU_ISSUE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on the "csr" string of a register body. */
#define ISSUE_CSR_MAX_B64 8192 /* characters, whitespace included */
#define ISSUE_CN_MAX      64   /* ub-common-name: longer IDs cannot be a certificate CN */

/* Validity applied to issued certificates. */
#define ISSUE_BACKDATE     300 /* notBefore = now - 5 minutes, for clock skew */
#define ISSUE_MAX_VALIDITY ((int64_t)100 * 366 * 86400)
#define ISSUE_SERIAL_TRIES 8

/* ---- issuing CA ------------------------------------------------------------ */

/* An issuing CA ready to sign: its certificate, its private key and the root
 * that signed it. Immutable once created; share it freely between callers. */
struct issue_ca;

/* Builds an issuing CA from files: cert_path holds the issuing CA certificate
 * (PEM; further certificates after it are taken as chain), key_path its private
 * key (PEM, unencrypted), chain_path the chain up to a self-signed root (PEM; the
 * issuing CA itself may be included, as in "issuing CA then root"). chain_path
 * may be NULL or "" when cert_path already holds the chain.
 *
 * The CA is checked as issue_ca_new does. On failure why receives one line naming
 * the file and the problem, e.g.
 *   "/etc/ca/issuing.key: key does not belong to the certificate /etc/ca/issuing.pem".
 * Returns EMU_OK and a new CA in *out (free with issue_ca_free); EMU_EINVAL for
 * missing arguments; EMU_ENOTFOUND, EMU_EIO, EMU_ETOOBIG when a file cannot be
 * read; EMU_ECRYPTO when the files are readable but do not make a usable CA;
 * EMU_ENOMEM. */
int issue_ca_load(const char *cert_path, const char *key_path, const char *chain_path,
                  struct issue_ca **out, char *why, size_t whylen);

/* Builds an issuing CA from memory. cert is the issuing CA, key its private key,
 * chain the other certificates up to the root (any order; copies of cert are
 * ignored; may be NULL if empty). The function takes its own references; the
 * caller keeps and frees its arguments.
 *
 * Checks, each with its own message in why: the key belongs to cert; cert is a
 * CA (basicConstraints CA:TRUE) whose keyUsage includes keyCertSign; its key is
 * EC on a named curve or RSA of at least 2048 bits; cert is valid now; cert is
 * not self-signed; and cert verifies directly under a self-signed root CA found
 * in chain (root -> issuing CA: DPS hands out exactly three certificates, so a
 * deeper hierarchy is refused). Extra certificates in chain are ignored.
 * Returns EMU_OK and a new CA in *out; EMU_EINVAL for NULL arguments; EMU_ECRYPTO
 * when a check fails; EMU_ENOMEM. */
int issue_ca_new(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, struct issue_ca **out, char *why,
                 size_t whylen);

/* Frees ca; NULL is a no-op. */
void issue_ca_free(struct issue_ca *ca);

/* The issuing CA certificate and its root, borrowed from ca (valid until
 * issue_ca_free; take a reference with X509_up_ref to keep one longer). */
X509 *issue_ca_cert(const struct issue_ca *ca);
X509 *issue_ca_root(const struct issue_ca *ca);

/* The issuing chain [issuing CA, root], borrowed from ca: the certificates a
 * device presents after its leaf, and the anchors a hub trusts. */
STACK_OF(X509) *issue_ca_chain(const struct issue_ca *ca);

/* ---- CSR ------------------------------------------------------------------ */

/* Which CSR keys are accepted. */
enum issue_keys {
	ISSUE_KEYS_DEFAULT = 0, /* EC P-256, EC P-384, RSA 2048..8192 bits */
	ISSUE_KEYS_STRICT,      /* EC P-384 only, as Azure DPS */
};

/* Why a CSR was refused: distinct values so DPS can map them to its error codes. */
enum issue_error {
	ISSUE_ERR_NONE = 0,
	ISSUE_ERR_NOT_BASE64,      /* not base64 (includes PEM text with its armour) */
	ISSUE_ERR_NOT_DER,         /* base64, but not one DER PKCS#10 request */
	ISSUE_ERR_TOO_LARGE,       /* more than ISSUE_CSR_MAX_B64 characters */
	ISSUE_ERR_BAD_SIGNATURE,   /* the request's self-signature does not verify */
	ISSUE_ERR_CN_MISMATCH,     /* subject CN missing, repeated or not the registration ID */
	ISSUE_ERR_CN_TOO_LONG,     /* registration ID over ISSUE_CN_MAX characters */
	ISSUE_ERR_UNSUPPORTED_KEY, /* key type or size outside the policy */
	ISSUE_ERR_INTERNAL,        /* allocation or OpenSSL failure, not the device's fault */
};

/* Static one-line description of e ("CSR signature does not verify"); "" for
 * ISSUE_ERR_NONE. */
const char *issue_error_string(enum issue_error e);

/* Parses and checks the "csr" value of a register body: base64 of a DER PKCS#10
 * request without PEM armour. b64 is len bytes (need not be NUL-terminated);
 * spaces, tabs and line breaks are skipped and missing '=' padding is tolerated.
 *
 * Checks in this order: size (at most ISSUE_CSR_MAX_B64 characters), base64,
 * exactly one DER request with no trailing bytes, key type under policy (EC on
 * named curves only; a point in compressed form is fine), the request's
 * signature (X509_REQ_verify), then the subject: exactly one commonName, equal to
 * registration_id compared case-insensitively (ASCII), as the rest of the
 * emulator compares registration IDs and certificate CNs; a registration ID over
 * ISSUE_CN_MAX characters is refused since no certificate could carry it. The rest
 * of the subject and any requested extensions are ignored: the certificate's
 * content is decided by issue_certificate.
 *
 * Returns EMU_OK and a new request in *out (caller frees with X509_REQ_free) with
 * *err_out = ISSUE_ERR_NONE. On refusal *out is NULL, *err_out says why and why
 * (may be NULL) receives a precise reason such as
 *   "CSR subject CN 'dev2' does not match registration ID 'dev1'"
 *   "CSR key is EC secp256k1: accepted keys are EC P-256, EC P-384 and RSA >= 2048"
 * and the return is EMU_ETOOBIG (ISSUE_ERR_TOO_LARGE), EMU_ENOMEM or EMU_ECRYPTO
 * (ISSUE_ERR_INTERNAL), or EMU_EINVAL (everything else, also for NULL arguments). */
int issue_csr_parse(const char *b64, size_t len, const char *registration_id,
                    enum issue_keys policy, X509_REQ **out, enum issue_error *err_out, char *why,
                    size_t whylen);

/* ---- issuance ------------------------------------------------------------- */

/* Serial-number check supplied by the caller (the store): returns 0 if serial_hex
 * (upper-case hex, as issue_record.serial) is free, 1 if it was issued before, or a
 * negative EMU_E* code to abort issuance with that code. */
typedef int (*issue_serial_used_fn)(const char *serial_hex, void *arg);

/* Issues a client certificate for the public key of csr (a request that passed
 * issue_csr_parse), signed by ca:
 *   version 3; subject CN = cn (only; the CSR's subject is not copied); issuer =
 *   the issuing CA's subject; serial 16 random bytes, positive, 127 bits long
 *   (always 32 hex digits), redrawn while serial_used reports it taken (up to
 *   ISSUE_SERIAL_TRIES draws); notBefore = now - ISSUE_BACKDATE; notAfter = now +
 *   validity_seconds, but no later than the issuing CA's notAfter;
 *   basicConstraints CA:FALSE (critical); keyUsage digitalSignature (critical),
 *   plus keyEncipherment for an RSA key; extendedKeyUsage clientAuth;
 *   subjectKeyIdentifier (SHA-1 of the key); authorityKeyIdentifier = the issuing
 *   CA's subjectKeyIdentifier (or the SHA-1 of its key when it has none). Signed
 *   with SHA-384 by an EC key of 384 bits or more, SHA-256 otherwise.
 * serial_used may be NULL (no uniqueness check). validity_seconds is 1 ..
 * ISSUE_MAX_VALIDITY: short periods are allowed so tests can reach expiry.
 *
 * Returns EMU_OK and a new certificate in *leaf_out; EMU_EINVAL for NULL
 * arguments, a cn of 0 or more than ISSUE_CN_MAX characters or invalid UTF-8, a
 * validity out of range, or a csr without a public key; EMU_ECRYPTO when the
 * issuing CA has expired or OpenSSL fails to sign; EMU_EEXIST when every serial
 * drawn was taken; a negative code returned by serial_used; EMU_ENOMEM. */
int issue_certificate(const struct issue_ca *ca, X509_REQ *csr, const char *cn,
                      int64_t validity_seconds, issue_serial_used_fn serial_used, void *arg,
                      X509 **leaf_out);

/* The "issuedCertificateChain" value of a registration state: a JSON array of
 * exactly three strings, base64 DER without line breaks, [leaf, issuing CA, root].
 * Returns a new reference, or NULL on allocation failure or NULL arguments. */
json_t *issue_chain_json(const struct issue_ca *ca, X509 *leaf);

/* What DPS stores about an issued certificate. */
struct issue_record {
	char serial[41]; /* upper-case hex, no leading zeros (as x509_info_json) */
	char sha1[41];   /* thumbprints of the DER certificate, upper-case hex */
	char sha256[65];
	char not_before[32]; /* "2026-11-23T04:00:00Z" */
	char not_after[32];
	char pubkey_sha256[65]; /* issue_pubkey_sha256 of the certificate's key */
};

/* Fills rec from cert. Returns EMU_OK; EMU_EINVAL for NULL arguments or a serial
 * longer than 20 bytes; EMU_ECRYPTO if a digest fails; EMU_ENOMEM. */
int issue_record_fill(X509 *cert, struct issue_record *rec);

/* SHA-256 (upper-case hex, 64 digits) of key's DER SubjectPublicKeyInfo, with EC
 * points in uncompressed form so the same key always gives the same value
 * whichever encoding the device used. For a request pass X509_REQ_get0_pubkey(req),
 * for a certificate X509_get0_pubkey(cert). Lets DPS refuse a CSR whose key another
 * device already holds. Returns EMU_OK; EMU_EINVAL for NULL; EMU_ECRYPTO if the key
 * cannot be encoded (out is then ""). */
int issue_pubkey_sha256(EVP_PKEY *key, char out[65]);

#endif
