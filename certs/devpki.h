/* devpki.h - the emulator's own TLS PKI, kept in <data_dir>/certs/.
 *
 * On first start devpki_ensure creates a server CA (the root clients must trust)
 * and a server certificate for the configured host names; afterwards it reuses
 * them. The CA is never replaced once it exists: clients have been told to trust
 * it. The server certificate is re-issued from the same CA whenever it no longer
 * fits (a name missing, close to expiry, not issued by the CA, key mismatch).
 *
 * Files in <data_dir>/certs/ (directory mode 0700, keys 0600):
 *   server-ca.pem  server-ca.key   CN "dpsemu server CA", P-256, 10 years
 *   server.pem     server.key      server certificate followed by the CA
 *                                  certificate (the chain the TLS server sends),
 *                                  EKU serverAuth, 1 year */
#ifndef DPSEMU_DEVPKI_H
#define DPSEMU_DEVPKI_H

#include <stddef.h>
#include <time.h>

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

#endif
