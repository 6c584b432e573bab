/* devpki.h - the emulator's own PKI, kept in <data_dir>/certs/.
 *
 * On first start devpki_ensure creates a server CA (the root clients must trust)
 * and a server certificate for the configured host names; afterwards it reuses
 * them. The CA is never replaced once it exists: clients have been told to trust
 * it. The server certificate is re-issued from the same CA whenever it no longer
 * fits (a name missing, close to expiry, not issued by the CA, key mismatch).
 *
 * devpki_ensure_issuer does the same for the device PKI that signs certificates
 * issued from CSRs: a device root and an issuing CA under it, both created once
 * and never replaced (hubs and devices trust them), unless the user supplies an
 * issuing CA of their own.
 *
 * Files in <data_dir>/certs/ (directory mode 0700, keys 0600):
 *   server-ca.pem  server-ca.key   CN "dpsemu server CA", P-256, 10 years
 *   server.pem     server.key      server certificate followed by the CA
 *                                  certificate (the chain the TLS server sends),
 *                                  EKU serverAuth, 1 year
 *   device-root.pem        device-root.key        CN "dpsemu device root CA",
 *                                                 P-384/SHA-384, 10 years, pathlen 1
 *   device-issuing-ca.pem  device-issuing-ca.key  CN "dpsemu device issuing CA",
 *                                                 P-384/SHA-384, 5 years, pathlen 0
 *   device-ca-chain.pem    issuing CA then root (rewritten if it says otherwise) */
#ifndef DPSEMU_DEVPKI_H
#define DPSEMU_DEVPKI_H

#include <stddef.h>
#include <time.h>

struct issue_ca;

#define DEVPKI_PATH_MAX 1024

/* What devpki_ensure reports back: paths for the TLS server and the banner. */
struct devpki_files {
	char dir[DEVPKI_PATH_MAX];          /* <data_dir>/certs */
	char server_ca[DEVPKI_PATH_MAX];    /* server-ca.pem: the trust root for clients */
	char server_chain[DEVPKI_PATH_MAX]; /* server.pem: server certificate + CA */
	char server_key[DEVPKI_PATH_MAX];   /* server.key */
	char server_ca_sha1[41];            /* thumbprints of the server CA certificate */
	char server_ca_sha256[65];
	time_t server_not_after; /* expiry of the server certificate */
	int created_ca;          /* 1 if this call created the server CA */
	int issued_server;       /* 1 if this call issued a new server certificate */
};

/* Makes sure the server PKI exists in data_dir (created, like its certs/
 * subdirectory, if missing) and fits the names the server answers to: hostname
 * (NULL or "" means "localhost"), "localhost", "127.0.0.1" and each of
 * extra_names[0..n_extra). An IPv4/IPv6 literal (optionally in [brackets]) becomes an
 * IP subjectAltName, anything else a DNS one. Concurrent callers on the same data
 * dir are serialised with a lock file (certs/.lock).
 *
 * Returns EMU_OK and fills *out; EMU_EINVAL for an invalid name; EMU_ETOOBIG if a
 * path exceeds DEVPKI_PATH_MAX; EMU_EIO for file system errors; EMU_ECRYPTO when
 * the existing server CA cannot be used (server-ca.pem unreadable or not a CA,
 * server-ca.key missing or not matching) - it is never replaced automatically.
 * Every outcome is logged (component "pki"). */
int devpki_ensure(const char *data_dir, const char *hostname, const char *const *extra_names,
                  size_t n_extra, struct devpki_files *out);

/* The same with a server CA of the caller's (PEM files; both NULL = the data
 * dir's own): the server certificate is issued by it, and a copy of ca_cert
 * (never the key) is written to the data dir's server-ca.pem, where clients
 * look for the trust root. Lets several processes (DPS and hub in separate containers) chain
 * to one trust root. A CA that does not match its key is an error. */
int devpki_ensure_with_ca(const char *data_dir, const char *hostname,
                          const char *const *extra_names, size_t n_extra, const char *ca_cert,
                          const char *ca_key, struct devpki_files *out);

/* What devpki_ensure_issuer reports back. */
struct devpki_issuer_files {
	char issuing_cert[DEVPKI_PATH_MAX]; /* issuing CA certificate (PEM) */
	char issuing_key[DEVPKI_PATH_MAX];  /* its private key */
	char chain[DEVPKI_PATH_MAX];        /* PEM chain up to the root: device-ca-chain.pem,
	                                     * the user's chain file, or (without one) the
	                                     * user's certificate file */
	char root_cert[DEVPKI_PATH_MAX];    /* device-root.pem; "" for a user-supplied CA */
	char issuing_sha1[41];              /* thumbprints, upper-case hex */
	char issuing_sha256[65];
	char root_sha1[41];
	char root_sha256[65];
	time_t issuing_not_after;
	int user_supplied;   /* 1 if the user's files are used */
	int created_root;    /* 1 if this call created device-root.{pem,key} */
	int created_issuing; /* 1 if this call created device-issuing-ca.{pem,key} */
};

/* Makes sure there is an issuing CA for device certificates and checks it.
 *
 * Without user files (user_cert, user_key and user_chain all NULL or ""), the
 * emulator's device PKI in <data_dir>/certs/ is used: created on first call
 * (directory included), reused afterwards, never regenerated: a damaged or
 * mismatched file is an error to fix by hand, and an issuing CA whose root is
 * missing is refused rather than orphaned. device-ca-chain.pem is rewritten when
 * it does not hold exactly [issuing CA, root]. Serialised with the same lock file
 * as devpki_ensure.
 *
 * With user files, user_cert (the issuing CA, PEM, optionally followed by its
 * chain) and user_key are required; user_chain (PEM up to a self-signed root) is
 * optional when user_cert carries the chain. Nothing is created or copied; data_dir
 * is not used.
 *
 * Either way the result is checked with issue_ca_load (key matches, CA:TRUE with
 * keyCertSign, valid now, signed directly by a self-signed root of the chain).
 *
 * Returns EMU_OK, fills *out and, if ca_out is non-NULL, hands over the loaded CA
 * in *ca_out (free with issue_ca_free). On failure why (may be NULL) receives one
 * line naming the file and the problem, which is also logged (component "pki"):
 * EMU_EINVAL for a certificate without a key or the reverse, or no data_dir;
 * EMU_ETOOBIG for a path over DEVPKI_PATH_MAX; EMU_EIO for file system errors;
 * EMU_ENOTFOUND for a user file that does not exist; EMU_ECRYPTO for files that do
 * not make a usable issuing CA. */
int devpki_ensure_issuer(const char *data_dir, const char *user_cert, const char *user_key,
                         const char *user_chain, struct devpki_issuer_files *out,
                         struct issue_ca **ca_out, char *why, size_t whylen);

#endif
