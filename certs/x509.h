/* x509.h - certificate parsing, thumbprints, names and chain validation.
 *
 * Pure OpenSSL helpers: nothing here knows about enrollments, DPS or the hub.
 * X509 objects follow OpenSSL reference counting; functions say who owns what. */
#ifndef DPSEMU_X509_H
#define DPSEMU_X509_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

/* Parses every certificate in a PEM text (one or more BEGIN CERTIFICATE blocks;
 * other PEM blocks and text between blocks are skipped).
 * Returns EMU_OK and a new stack (caller frees with sk_X509_pop_free(s, X509_free)),
 * EMU_EINVAL when there is no certificate or a block is malformed, or EMU_ETOOBIG
 * when len exceeds 1 MiB or there are more than 32 certificates. */
int x509_parse_pem_chain(const char *pem, size_t len, STACK_OF(X509) **out);

/* Parses one certificate given the way the Azure APIs accept it: PEM text, base64
 * of DER, or base64 of PEM text (the C service client does that). Surrounding
 * whitespace, line breaks inside base64 and missing base64 padding are tolerated;
 * bytes after the DER certificate are not. Of a PEM text with several certificates
 * the first is taken.
 * Returns EMU_OK and a new X509 (caller frees), EMU_EINVAL, or EMU_ETOOBIG when the
 * text exceeds 128 KiB. */
int x509_parse_any(const char *text, X509 **out);

/* Parses DER bytes: exactly one certificate, at most 64 KiB, no trailing bytes.
 * Returns EMU_OK and a new X509 (caller frees) or EMU_EINVAL. */
int x509_parse_der(const unsigned char *der, size_t len, X509 **out);

/* Writes the SHA-1 (40 hex) / SHA-256 (64 hex) thumbprint of the DER encoding in
 * upper-case hex, as Azure shows them. out needs 41 / 65 bytes; it is set to ""
 * if the digest fails. */
void x509_thumbprint_sha1(X509 *cert, char out[41]);
void x509_thumbprint_sha256(X509 *cert, char out[65]);

/* True if thumb (hex, either case, SHA-1 or SHA-256 by length, ':' separators
 * allowed) equals cert's thumbprint. */
int x509_thumbprint_matches(X509 *cert, const char *thumb);

/* Copies the subject's first commonName (UTF-8) into out. Returns EMU_OK,
 * EMU_ENOTFOUND when the subject has no CN, EMU_ETOOBIG when it does not fit,
 * EMU_EINVAL when it cannot be converted or contains a NUL byte (so "dev1\0x"
 * never passes for "dev1"). */
int x509_common_name(X509 *cert, char *out, size_t outlen);

/* One-line RFC 2253 form of the subject / issuer ("CN=dev1,O=Contoso").
 * Returns a new string (caller frees) or NULL. */
char *x509_subject_string(X509 *cert);
char *x509_issuer_string(X509 *cert);

/* PEM text of cert as a new string (caller frees), or NULL. */
char *x509_to_pem(X509 *cert);
/* base64 of the DER encoding, no line breaks, as a new string (caller frees), or NULL. */
char *x509_to_b64der(X509 *cert);

/* Azure's X509CertificateInfo object for cert: subjectName, sha1Thumbprint,
 * sha256Thumbprint, issuerName, notBeforeUtc, notAfterUtc, serialNumber, version.
 * Names read "CN=dev1, O=Contoso", times "2026-11-23T04:00:00Z", the serial is
 * upper-case hex and version is 3 for a v3 certificate.
 * Returns a new reference or NULL. */
json_t *x509_info_json(X509 *cert);

/* notAfter of cert as time_t; 0 if it cannot be read. */
time_t x509_not_after(X509 *cert);

/* True if cert is a CA certificate (basicConstraints CA:TRUE). */
int x509_is_ca(X509 *cert);
/* True if cert's subject equals its issuer and its own key verifies its signature. */
int x509_is_self_signed(X509 *cert);

/* Checks that leaf, with the untrusted certificates the peer presented (any order,
 * may include a root, may be NULL), chains to one of anchors. An anchor may be a
 * root or an intermediate (partial chains are allowed). Validity dates are checked
 * against now (0 = current time), path length and CA flags are enforced, and the
 * leaf must be usable for TLS client authentication.
 *
 * Returns EMU_OK and, if anchor_out is non-NULL, sets *anchor_out to the anchor
 * that matched (borrowed from anchors) and *depth_out (if non-NULL) to its
 * distance from the leaf (1 = the leaf's issuer; 0 = the leaf itself is the anchor).
 * Returns EMU_ECRYPTO on failure and writes a reason such as
 * "depth 1 CN=intermediate: certificate has expired" into why (may be NULL);
 * EMU_EINVAL without a leaf, EMU_ENOMEM if OpenSSL cannot allocate. When several
 * anchors are in the built chain (root and intermediate both registered), the one
 * farthest from the leaf is reported. */
int x509_verify_chain(X509 *leaf, STACK_OF(X509) *untrusted, STACK_OF(X509) *anchors, time_t now,
                      X509 **anchor_out, int *depth_out, char *why, size_t whylen);

/* True if sig_cert (e.g. a proof-of-possession certificate) is signed by ca's key.
 * Only the signature is checked, not names or dates, as Azure's proof of possession. */
int x509_signed_by(X509 *sig_cert, X509 *ca);

#endif
