#include "certs/devpki.h"

#include "clock.h"
#include "err.h"
#include "log.h"

#include "certs/gen.h"
#include "certs/issue.h"
#include "certs/x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY          86400
#define CA_DAYS      3650
#define SERVER_DAYS  365
#define ISSUING_DAYS (5 * 365 + 1)
/* A certificate this close to its end is replaced before clients start refusing it. */
#define RENEW_BEFORE (30 * DAY)
/* Backdating covers clocks that differ a little between containers and hosts. */
#define BACKDATE     (-3600)
#define MAX_NAMES    64
#define NAME_MAX_LEN 253

/* A CA this module keeps: file names under certs/ and how to create it. */
struct ca_spec {
	const char *name; /* file stem: <name>.pem, <name>.key */
	const char *cn;
	int pathlen; /* -1 = unconstrained */
	int days;
	enum gen_key_type key_type;
};

static const struct ca_spec server_ca_spec = {"server-ca", "dpsemu server CA", 0, CA_DAYS,
                                              GEN_KEY_P256};
/* The device PKI follows Azure's certificate issuance: ECDSA P-384 / SHA-384, a root
 * and one issuing CA directly under it. */
static const struct ca_spec device_root_spec = {"device-root", "dpsemu device root CA", 1, CA_DAYS,
                                                GEN_KEY_P384};
static const struct ca_spec device_issuing_spec = {"device-issuing-ca", "dpsemu device issuing CA",
                                                   0, ISSUING_DAYS, GEN_KEY_P384};

static int join_path(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= outlen) {
		log_error("pki", "path too long: %s/%s", dir, name);
		return EMU_ETOOBIG;
	}
	return EMU_OK;
}

static int file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* mkdir -p with mode for every directory it creates. */
static int make_dirs(const char *path, mode_t mode)
{
	char tmp[DEVPKI_PATH_MAX];
	struct stat st;
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return len == 0 ? EMU_EINVAL : EMU_ETOOBIG;
	memcpy(tmp, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
			log_error("pki", "cannot create directory %s: %s", tmp, strerror(errno));
			return EMU_EIO;
		}
		tmp[i] = path[i];
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		log_error("pki", "%s is not a directory", path);
		return EMU_EIO;
	}
	return EMU_OK;
}

static void log_time(time_t t, char out[32])
{
	clock_iso8601(t, out);
}

/* Logs an error and keeps it for the caller's why (which may be NULL). */
static void fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *why, size_t whylen, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("pki", "%s", msg);
	if (why && whylen)
		snprintf(why, whylen, "%s", msg);
}

/* Loads <dir>/<spec->name>.{pem,key}, or creates them (signed by parent, or
 * self-signed when parent is NULL). An existing CA certificate is never replaced. */
static int ensure_ca(const char *dir, const struct ca_spec *spec, X509 *parent,
                     EVP_PKEY *parent_key, X509 **cert_out, EVP_PKEY **key_out, int *created,
                     char *why, size_t whylen)
{
	char cert_path[DEVPKI_PATH_MAX], key_path[DEVPKI_PATH_MAX], file[128];
	char sha256[65], when[32];
	struct gen_cert_opts o;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	time_t na;
	int rc;

	*cert_out = NULL;
	*key_out = NULL;
	*created = 0;
	snprintf(file, sizeof(file), "%s.pem", spec->name);
	rc = join_path(cert_path, sizeof(cert_path), dir, file);
	if (rc != EMU_OK)
		return rc;
	snprintf(file, sizeof(file), "%s.key", spec->name);
	rc = join_path(key_path, sizeof(key_path), dir, file);
	if (rc != EMU_OK)
		return rc;

	if (file_exists(cert_path)) {
		rc = gen_read_cert_file(cert_path, &cert);
		if (rc != EMU_OK) {
			fail(why, whylen,
			     "cannot use %s (%s); it is kept because clients may"
			     " trust it: fix or remove it",
			     cert_path, emu_strerror(rc));
			rc = EMU_ECRYPTO;
			goto out;
		}
		rc = gen_read_key_file(key_path, &key);
		if (rc == EMU_ENOTFOUND) {
			fail(why, whylen,
			     "%s exists but its key %s is missing; restore the key, or"
			     " remove %s to create a new CA (clients must then trust the new"
			     " one)",
			     cert_path, key_path, cert_path);
			rc = EMU_ECRYPTO;
			goto out;
		}
		if (rc != EMU_OK) {
			fail(why, whylen, "cannot use CA key %s (%s)", key_path, emu_strerror(rc));
			rc = EMU_ECRYPTO;
			goto out;
		}
		if (!gen_key_matches_cert(key, cert)) {
			fail(why, whylen, "%s does not belong to %s", key_path, cert_path);
			rc = EMU_ECRYPTO;
			goto out;
		}
		if (!x509_is_ca(cert)) {
			fail(why, whylen, "%s is not a CA certificate (basicConstraints CA:TRUE)",
			     cert_path);
			rc = EMU_ECRYPTO;
			goto out;
		}
		if (parent && !x509_signed_by(cert, parent))
			log_warn("pki", "%s is not signed by its parent CA", cert_path);
		x509_thumbprint_sha256(cert, sha256);
		na = x509_not_after(cert);
		log_time(na, when);
		if (na <= time(NULL) + RENEW_BEFORE)
			log_warn("pki",
			         "%s expires %s; remove %s and %s to create a new one"
			         " (clients must then trust the new one)",
			         cert_path, when, cert_path, key_path);
		log_info("pki", "using %s (SHA-256 %s, expires %s)", cert_path, sha256, when);
		goto done;
	}

	/* No certificate: nobody can trust this CA yet, so a stale key may go. */
	rc = gen_key(spec->key_type, &key);
	if (rc != EMU_OK)
		goto out;
	memset(&o, 0, sizeof(o));
	o.cn = spec->cn;
	o.key = key;
	o.issuer = parent;
	o.issuer_key = parent ? parent_key : NULL;
	o.not_before_offset = BACKDATE;
	o.validity = (int64_t)spec->days * DAY;
	o.is_ca = 1;
	o.pathlen = spec->pathlen;
	o.eku = GEN_EKU_NONE;
	rc = gen_cert(&o, &cert);
	if (rc != EMU_OK)
		goto out;
	rc = gen_write_key_file(key_path, key, 0);
	if (rc == EMU_OK)
		rc = gen_write_certs_file(cert_path, &cert, 1, GEN_WRITE_EXCL);
	if (rc != EMU_OK) {
		fail(why, whylen, "cannot write %s / %s", cert_path, key_path);
		goto out;
	}
	*created = 1;
	x509_thumbprint_sha256(cert, sha256);
	log_time(x509_not_after(cert), when);
	log_info("pki", "created %s (CN=%s, SHA-256 %s, expires %s)", cert_path, spec->cn, sha256,
	         when);
done:
	*cert_out = cert;
	*key_out = key;
	cert = NULL;
	key = NULL;
	rc = EMU_OK;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* Takes the lock file that serialises everyone creating files in certs/: two
 * services sharing a data dir must not each create a different CA. */
static int lock_dir(const char *lock_path, int *fd, char *why, size_t whylen)
{
	*fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0 || flock(*fd, LOCK_EX) != 0) {
		fail(why, whylen, "cannot lock %s: %s", lock_path, strerror(errno));
		return EMU_EIO;
	}
	return EMU_OK;
}

/* Fills names[] with the deduplicated names the server certificate must carry. */
static int collect_names(const char *hostname, const char *const *extra, size_t n_extra,
                         char names[][NAME_MAX_LEN + 1], size_t *n_out)
{
	const char *fixed[2] = {"localhost", "127.0.0.1"};
	size_t n = 0;

	if (n_extra > MAX_NAMES - 3) {
		log_error("pki", "too many server names (%zu, limit %d)", n_extra, MAX_NAMES - 3);
		return EMU_EINVAL;
	}
	for (size_t i = 0; i < 3 + n_extra; i++) {
		const char *s = i == 0 ? hostname : i < 3 ? fixed[i - 1] : extra[i - 3];
		size_t len;

		if (i == 0 && (!s || !*s))
			s = "localhost";
		if (!s || !*s) {
			log_error("pki", "empty server name");
			return EMU_EINVAL;
		}
		len = strlen(s);
		if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
			s++;
			len -= 2;
		}
		if (len == 0 || len > NAME_MAX_LEN) {
			log_error("pki", "invalid server name '%.80s'", s);
			return EMU_EINVAL;
		}
		memcpy(names[n], s, len);
		names[n][len] = '\0';
		if (gen_san_check(names[n]) != EMU_OK) {
			log_error("pki", "invalid server name '%s': not an IP address or DNS name",
			          names[n]);
			return EMU_EINVAL;
		}
		for (size_t k = 0; k < n; k++) {
			if (strcasecmp(names[k], names[n]) == 0) {
				n--;
				break;
			}
		}
		n++;
	}
	*n_out = n;
	return EMU_OK;
}

/* True if cert's subjectAltName lists name literally (IP by value, DNS ignoring case). */
static int san_covers(GENERAL_NAMES *gens, const char *name)
{
	unsigned char ip[16];
	int iplen = 0;
	size_t len = strlen(name);

	if (inet_pton(AF_INET, name, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, name, ip) == 1)
		iplen = 16;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		int type;
		ASN1_STRING *v = GENERAL_NAME_get0_value(gn, &type);

		if (!v)
			continue;
		if (iplen && type == GEN_IPADD && ASN1_STRING_length(v) == iplen &&
		    memcmp(ASN1_STRING_get0_data(v), ip, (size_t)iplen) == 0)
			return 1;
		if (!iplen && type == GEN_DNS && (size_t)ASN1_STRING_length(v) == len &&
		    strncasecmp((const char *)ASN1_STRING_get0_data(v), name, len) == 0)
			return 1;
	}
	return 0;
}

/* Signature, dates and server purpose of cert under ca. */
static int server_chains_to(X509 *cert, X509 *ca, char *why, size_t whylen)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *anchors = sk_X509_new_null();
	int ok = 0;

	if (!ctx || !anchors || !sk_X509_push(anchors, ca) ||
	    !X509_STORE_CTX_init(ctx, NULL, cert, NULL))
		goto out;
	X509_STORE_CTX_set0_trusted_stack(ctx, anchors);
	if (!X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER))
		goto out;
	ok = X509_verify_cert(ctx) == 1;
	if (!ok)
		snprintf(why, whylen, "the previous one did not verify under the server CA: %s",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_free(anchors);
	return ok;
}

/* Returns 1 if the existing server files are fine; otherwise 0 and why. */
static int server_fits(const struct devpki_files *f, X509 *ca, char names[][NAME_MAX_LEN + 1],
                       size_t n_names, char *why, size_t whylen)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	GENERAL_NAMES *gens = NULL;
	X509 *cert;
	char when[32];
	time_t na;
	int ok = 0;

	if (!file_exists(f->server_chain) || !file_exists(f->server_key)) {
		snprintf(why, whylen, "there was none");
		return 0;
	}
	if (gen_read_chain_file(f->server_chain, &chain) != EMU_OK ||
	    gen_read_key_file(f->server_key, &key) != EMU_OK) {
		snprintf(why, whylen, "the previous files were unreadable");
		goto out;
	}
	cert = sk_X509_value(chain, 0);
	if (!gen_key_matches_cert(key, cert)) {
		snprintf(why, whylen, "the previous key did not match its certificate");
		goto out;
	}
	if (sk_X509_num(chain) != 2 || X509_cmp(sk_X509_value(chain, 1), ca) != 0) {
		snprintf(why, whylen, "the previous chain was not server certificate + server CA");
		goto out;
	}
	if (!server_chains_to(cert, ca, why, whylen))
		goto out;
	na = x509_not_after(cert);
	if (na <= time(NULL) + RENEW_BEFORE) {
		log_time(na, when);
		snprintf(why, whylen, "the previous one expires %s", when);
		goto out;
	}
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (size_t i = 0; i < n_names; i++) {
		if (!gens || !san_covers(gens, names[i])) {
			snprintf(why, whylen, "the previous one did not cover '%s'", names[i]);
			goto out;
		}
	}
	ok = 1;
out:
	GENERAL_NAMES_free(gens);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return ok;
}

static int issue_server(struct devpki_files *f, X509 *ca, EVP_PKEY *ca_key,
                        char names[][NAME_MAX_LEN + 1], size_t n_names, X509 **out)
{
	const char *sans[MAX_NAMES];
	struct gen_cert_opts o;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509 *pair[2];
	int rc;

	*out = NULL;
	for (size_t i = 0; i < n_names; i++)
		sans[i] = names[i];
	rc = gen_key(GEN_KEY_P256, &key);
	if (rc != EMU_OK)
		goto out;
	memset(&o, 0, sizeof(o));
	/* The CN is informational (clients match SANs) and limited to 64 characters. */
	o.cn = strlen(names[0]) <= 64 ? names[0] : "dpsemu server";
	o.key = key;
	o.issuer = ca;
	o.issuer_key = ca_key;
	o.not_before_offset = BACKDATE;
	o.validity = (int64_t)SERVER_DAYS * DAY;
	o.pathlen = -1;
	o.eku = GEN_EKU_SERVER;
	o.sans = sans;
	o.n_sans = n_names;
	rc = gen_cert(&o, &cert);
	if (rc != EMU_OK)
		goto out;
	/* Key first: a crash in between leaves a mismatch, which the next start repairs. */
	pair[0] = cert;
	pair[1] = ca;
	rc = gen_write_key_file(f->server_key, key, 0);
	if (rc == EMU_OK)
		rc = gen_write_certs_file(f->server_chain, pair, 2, 0);
	if (rc != EMU_OK)
		goto out;
	*out = cert;
	cert = NULL;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int devpki_ensure(const char *data_dir, const char *hostname, const char *const *extra_names,
                  size_t n_extra, struct devpki_files *out)
{
	return devpki_ensure_with_ca(data_dir, hostname, extra_names, n_extra, NULL, NULL, out);
}

/* Loads a user-supplied server CA; EMU_OK or an error with the reason logged. */
static int load_user_ca(const char *cert_path, const char *key_path, X509 **ca, EVP_PKEY **key)
{
	int rc = gen_read_cert_file(cert_path, ca);

	if (rc != EMU_OK) {
		log_error("pki", "DPSEMU_SERVER_CA_CERT %s: not a readable PEM certificate (%s)",
		          cert_path, emu_strerror(rc));
		return rc;
	}
	rc = gen_read_key_file(key_path, key);
	if (rc != EMU_OK) {
		log_error("pki", "DPSEMU_SERVER_CA_KEY %s: not a readable PEM private key (%s)",
		          key_path, emu_strerror(rc));
		return rc;
	}
	if (!gen_key_matches_cert(*key, *ca) || !x509_is_ca(*ca)) {
		log_error("pki", "DPSEMU_SERVER_CA_CERT %s: not a CA certificate matching the key %s",
		          cert_path, key_path);
		return EMU_ECRYPTO;
	}
	return EMU_OK;
}

int devpki_ensure_with_ca(const char *data_dir, const char *hostname,
                          const char *const *extra_names, size_t n_extra, const char *ca_cert,
                          const char *ca_key_path, struct devpki_files *out)
{
	char names[MAX_NAMES][NAME_MAX_LEN + 1];
	char lock_path[DEVPKI_PATH_MAX], why[256], when[32], list[512];
	size_t n_names = 0, used = 0;
	STACK_OF(X509) *chain = NULL;
	X509 *ca = NULL, *server = NULL;
	EVP_PKEY *ca_key = NULL;
	int lock_fd = -1, rc;

	memset(out, 0, sizeof(*out));
	if (!data_dir || !*data_dir || (n_extra && !extra_names))
		return EMU_EINVAL;
	rc = collect_names(hostname, extra_names, n_extra, names, &n_names);
	if (rc != EMU_OK)
		return rc;
	rc = join_path(out->dir, sizeof(out->dir), data_dir, "certs");
	if (rc == EMU_OK)
		rc = join_path(out->server_ca, sizeof(out->server_ca), out->dir, "server-ca.pem");
	if (rc == EMU_OK)
		rc =
		    join_path(out->server_chain, sizeof(out->server_chain), out->dir, "server.pem");
	if (rc == EMU_OK)
		rc = join_path(out->server_key, sizeof(out->server_key), out->dir, "server.key");
	if (rc == EMU_OK)
		rc = join_path(lock_path, sizeof(lock_path), out->dir, ".lock");
	if (rc != EMU_OK)
		return rc;
	rc = make_dirs(out->dir, 0700);
	if (rc != EMU_OK)
		return rc;

	rc = lock_dir(lock_path, &lock_fd, NULL, 0);
	if (rc != EMU_OK)
		goto out;

	if (ca_cert) {
		/* Several processes (DPS and hub containers) can share one server CA. */
		rc = load_user_ca(ca_cert, ca_key_path, &ca, &ca_key);
		/* Clients find the trust root where they always do. */
		if (rc == EMU_OK)
			rc = gen_write_certs_file(out->server_ca, &ca, 1, 0);
	} else {
		rc = ensure_ca(out->dir, &server_ca_spec, NULL, NULL, &ca, &ca_key, &out->created_ca,
		               NULL, 0);
	}
	if (rc != EMU_OK)
		goto out;
	x509_thumbprint_sha1(ca, out->server_ca_sha1);
	x509_thumbprint_sha256(ca, out->server_ca_sha256);

	if (server_fits(out, ca, names, n_names, why, sizeof(why))) {
		rc = gen_read_chain_file(out->server_chain, &chain);
		if (rc != EMU_OK)
			goto out;
		out->server_not_after = x509_not_after(sk_X509_value(chain, 0));
		log_time(out->server_not_after, when);
		log_info("pki", "using %s (expires %s)", out->server_chain, when);
		goto out;
	}
	rc = issue_server(out, ca, ca_key, names, n_names, &server);
	if (rc != EMU_OK) {
		log_error("pki", "cannot issue the server certificate %s: %s", out->server_chain,
		          emu_strerror(rc));
		goto out;
	}
	out->issued_server = 1;
	out->server_not_after = x509_not_after(server);
	list[0] = '\0';
	for (size_t i = 0; i < n_names && used < sizeof(list); i++) {
		int k = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
		if (k < 0)
			break;
		used += (size_t)k;
	}
	log_time(out->server_not_after, when);
	log_info("pki", "issued %s for %s, expires %s (%s)", out->server_chain, list, when, why);
out:
	if (lock_fd >= 0)
		close(lock_fd);
	sk_X509_pop_free(chain, X509_free);
	X509_free(server);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

/* Writes <dir>/device-ca-chain.pem = [issuing, root] unless it already says exactly that. */
static int ensure_chain_file(const char *path, X509 *issuing, X509 *root, char *why, size_t whylen)
{
	STACK_OF(X509) *have = NULL;
	X509 *pair[2];
	int rc;

	if (file_exists(path) && gen_read_chain_file(path, &have) == EMU_OK &&
	    sk_X509_num(have) == 2 && X509_cmp(sk_X509_value(have, 0), issuing) == 0 &&
	    X509_cmp(sk_X509_value(have, 1), root) == 0) {
		sk_X509_pop_free(have, X509_free);
		return EMU_OK;
	}
	sk_X509_pop_free(have, X509_free);
	pair[0] = issuing;
	pair[1] = root;
	rc = gen_write_certs_file(path, pair, 2, 0);
	if (rc != EMU_OK)
		fail(why, whylen, "cannot write %s: %s", path, emu_strerror(rc));
	else
		log_info("pki", "wrote %s (issuing CA, then root)", path);
	return rc;
}

/* The emulator's own device root and issuing CA, created on first use. */
static int ensure_dev_issuer(const char *data_dir, struct devpki_issuer_files *out, char *why,
                             size_t whylen)
{
	char dir[DEVPKI_PATH_MAX], lock_path[DEVPKI_PATH_MAX];
	X509 *root = NULL, *issuing = NULL;
	EVP_PKEY *root_key = NULL, *issuing_key = NULL;
	int lock_fd = -1, rc;

	rc = join_path(dir, sizeof(dir), data_dir, "certs");
	if (rc == EMU_OK)
		rc = join_path(out->root_cert, sizeof(out->root_cert), dir, "device-root.pem");
	if (rc == EMU_OK)
		rc = join_path(out->issuing_cert, sizeof(out->issuing_cert), dir,
		               "device-issuing-ca.pem");
	if (rc == EMU_OK)
		rc = join_path(out->issuing_key, sizeof(out->issuing_key), dir,
		               "device-issuing-ca.key");
	if (rc == EMU_OK)
		rc = join_path(out->chain, sizeof(out->chain), dir, "device-ca-chain.pem");
	if (rc == EMU_OK)
		rc = join_path(lock_path, sizeof(lock_path), dir, ".lock");
	if (rc != EMU_OK) {
		fail(why, whylen, "data directory path too long: %s", data_dir);
		return rc;
	}
	rc = make_dirs(dir, 0700);
	if (rc != EMU_OK) {
		fail(why, whylen, "cannot create %s", dir);
		return rc;
	}
	rc = lock_dir(lock_path, &lock_fd, why, whylen);
	if (rc != EMU_OK)
		goto out;

	/* A new root would not have signed the existing issuing CA. */
	if (!file_exists(out->root_cert) && file_exists(out->issuing_cert)) {
		fail(why, whylen,
		     "%s exists without its root %s; restore the root, or remove %s and %s to"
		     " create a new device PKI (hubs and devices must then trust the new one)",
		     out->issuing_cert, out->root_cert, out->issuing_cert, out->issuing_key);
		rc = EMU_ECRYPTO;
		goto out;
	}
	rc = ensure_ca(dir, &device_root_spec, NULL, NULL, &root, &root_key, &out->created_root,
	               why, whylen);
	if (rc == EMU_OK)
		rc = ensure_ca(dir, &device_issuing_spec, root, root_key, &issuing, &issuing_key,
		               &out->created_issuing, why, whylen);
	if (rc == EMU_OK)
		rc = ensure_chain_file(out->chain, issuing, root, why, whylen);
out:
	if (lock_fd >= 0)
		close(lock_fd);
	X509_free(root);
	X509_free(issuing);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuing_key);
	return rc;
}

static int copy_path(char *out, const char *path, char *why, size_t whylen)
{
	size_t n = strlen(path);

	if (n >= DEVPKI_PATH_MAX) {
		fail(why, whylen, "path too long: %.80s...", path);
		return EMU_ETOOBIG;
	}
	memcpy(out, path, n + 1);
	return EMU_OK;
}

int devpki_ensure_issuer(const char *data_dir, const char *user_cert, const char *user_key,
                         const char *user_chain, struct devpki_issuer_files *out,
                         struct issue_ca **ca_out, char *why, size_t whylen)
{
	struct issue_ca *ca = NULL;
	char reason[1024], when[32];
	int user, rc;

	reason[0] = '\0';
	if (ca_out)
		*ca_out = NULL;
	if (!out) {
		rc = EMU_EINVAL;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	if (user_cert && !*user_cert)
		user_cert = NULL;
	if (user_key && !*user_key)
		user_key = NULL;
	if (user_chain && !*user_chain)
		user_chain = NULL;
	user = user_cert || user_key || user_chain;
	if (user && (!user_cert || !user_key)) {
		fail(reason, sizeof(reason),
		     "an issuing CA needs its certificate and its key (given: certificate %s, key "
		     "%s,"
		     " chain %s)",
		     user_cert ? user_cert : "none", user_key ? user_key : "none",
		     user_chain ? user_chain : "none");
		rc = EMU_EINVAL;
		goto out;
	}
	if (!user && (!data_dir || !*data_dir)) {
		fail(reason, sizeof(reason), "no data directory for the device PKI");
		rc = EMU_EINVAL;
		goto out;
	}

	if (user) {
		out->user_supplied = 1;
		rc = copy_path(out->issuing_cert, user_cert, reason, sizeof(reason));
		if (rc == EMU_OK)
			rc = copy_path(out->issuing_key, user_key, reason, sizeof(reason));
		/* without a chain file the certificate file carries the chain */
		if (rc == EMU_OK)
			rc = copy_path(out->chain, user_chain ? user_chain : user_cert, reason,
			               sizeof(reason));
	} else {
		rc = ensure_dev_issuer(data_dir, out, reason, sizeof(reason));
	}
	if (rc != EMU_OK)
		goto out;

	rc = issue_ca_load(out->issuing_cert, out->issuing_key, out->chain, &ca, reason,
	                   sizeof(reason));
	if (rc != EMU_OK) {
		log_error("pki", "issuing CA refused: %s", reason);
		goto out;
	}
	x509_thumbprint_sha1(issue_ca_cert(ca), out->issuing_sha1);
	x509_thumbprint_sha256(issue_ca_cert(ca), out->issuing_sha256);
	x509_thumbprint_sha1(issue_ca_root(ca), out->root_sha1);
	x509_thumbprint_sha256(issue_ca_root(ca), out->root_sha256);
	out->issuing_not_after = x509_not_after(issue_ca_cert(ca));
	log_time(out->issuing_not_after, when);
	log_info("pki",
	         "device certificates are issued by %s (%s, SHA-256 %s, expires %s), root"
	         " SHA-256 %s",
	         out->issuing_cert, user ? "user-supplied" : "the emulator's own",
	         out->issuing_sha256, when, out->root_sha256);
	if (ca_out) {
		*ca_out = ca;
		ca = NULL;
	}
out:
	if (why && whylen)
		snprintf(why, whylen, "%s",
		         rc == EMU_OK ? ""
		         : reason[0]  ? reason
		                      : emu_strerror(rc));
	issue_ca_free(ca);
	return rc;
}
