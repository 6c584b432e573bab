#include "certs/gen.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "textenc.h"

#include "certs/x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define GEN_MAX_KEY_FILE  (64 * 1024)
#define GEN_MAX_CERT_FILE (1024 * 1024)
/* Beyond this the dates leave what X.509 times can express comfortably. */
#define GEN_MAX_SPAN    ((int64_t)100 * 366 * 86400)
#define GEN_MAX_SAN_LEN 253

static const struct {
	const char *name;
	enum gen_key_type type;
} key_names[] = {
    {"p256", GEN_KEY_P256},      {"ec256", GEN_KEY_P256},      {"prime256v1", GEN_KEY_P256},
    {"secp256r1", GEN_KEY_P256}, {"p384", GEN_KEY_P384},       {"ec384", GEN_KEY_P384},
    {"secp384r1", GEN_KEY_P384}, {"rsa2048", GEN_KEY_RSA2048}, {"rsa", GEN_KEY_RSA2048},
};

int gen_key_type_parse(const char *name, enum gen_key_type *out)
{
	if (!name)
		return EMU_EINVAL;
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		if (strcasecmp(name, key_names[i].name) == 0) {
			*out = key_names[i].type;
			return EMU_OK;
		}
	}
	return EMU_EINVAL;
}

const char *gen_key_type_name(enum gen_key_type type)
{
	switch (type) {
	case GEN_KEY_P256:
		return "p256";
	case GEN_KEY_P384:
		return "p384";
	case GEN_KEY_RSA2048:
		return "rsa2048";
	}
	return "?";
}

int gen_key(enum gen_key_type type, EVP_PKEY **out)
{
	EVP_PKEY *k = NULL;

	*out = NULL;
	switch (type) {
	case GEN_KEY_P256:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case GEN_KEY_P384:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case GEN_KEY_RSA2048:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	default:
		return EMU_EINVAL;
	}
	if (!k) {
		log_openssl_errors("gen", "key generation");
		log_error("gen", "cannot generate a %s key", gen_key_type_name(type));
		return EMU_ECRYPTO;
	}
	*out = k;
	return EMU_OK;
}

int gen_key_matches_cert(EVP_PKEY *key, X509 *cert)
{
	int ok;

	if (!key || !cert)
		return 0;
	ok = X509_check_private_key(cert, key) == 1;
	ERR_clear_error();
	return ok;
}

/* Builds "O=org, CN=cn" (RFC 2253 prints it as "CN=cn,O=org"). */
static int build_name(const char *cn, const char *org, X509_NAME **out)
{
	X509_NAME *name = X509_NAME_new();

	*out = NULL;
	if (!name)
		return EMU_ENOMEM;
	if (org && *org &&
	    !X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
	                                (const unsigned char *)org, -1, -1, 0))
		goto bad;
	/* MBSTRING_UTF8 validates the encoding and enforces ub-common-name (64). */
	if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	                                (const unsigned char *)cn, -1, -1, 0))
		goto bad;
	*out = name;
	return EMU_OK;
bad:
	log_openssl_errors("gen", "subject name");
	log_error("gen", "invalid subject name (CN '%.80s'): must be 1-64 UTF-8 characters", cn);
	X509_NAME_free(name);
	return EMU_EINVAL;
}

int gen_serial(ASN1_INTEGER *serial, char hex[41])
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	char *h = NULL;
	int rc = EMU_ECRYPTO;

	if (rand_bytes(b, sizeof(b)) != EMU_OK)
		return EMU_ECRYPTO;
	/* Top bit clear (positive), next bit set: always 127 bits, never 0. */
	b[0] = (unsigned char)((b[0] & 0x3f) | 0x40);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, serial))
		goto out;
	if (hex) {
		if (!(h = BN_bn2hex(bn)) || strlen(h) > 40)
			goto out;
		memcpy(hex, h, strlen(h) + 1);
	}
	rc = EMU_OK;
out:
	OPENSSL_free(h);
	BN_free(bn);
	return rc;
}

int gen_add_ext(X509 *x, int nid, void *value, int crit)
{
	if (X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_DEFAULT) != 1) {
		log_openssl_errors("gen", OBJ_nid2sn(nid));
		return EMU_ECRYPTO;
	}
	return EMU_OK;
}

static int add_basic_constraints(X509 *x, int is_ca, int pathlen)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	int rc = EMU_ENOMEM;

	if (!bc)
		return EMU_ENOMEM;
	bc->ca = is_ca ? 0xFF : 0;
	if (is_ca && pathlen >= 0) {
		bc->pathlen = ASN1_INTEGER_new();
		if (!bc->pathlen || !ASN1_INTEGER_set(bc->pathlen, pathlen))
			goto out;
	}
	rc = gen_add_ext(x, NID_basic_constraints, bc, 1);
out:
	BASIC_CONSTRAINTS_free(bc);
	return rc;
}

static int add_key_usage(X509 *x, int is_ca, EVP_PKEY *key)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	int rc = EMU_ENOMEM;
	int ok;

	if (!ku)
		return EMU_ENOMEM;
	/* bit numbers from RFC 5280 4.2.1.3 */
	if (is_ca) {
		ok = ASN1_BIT_STRING_set_bit(ku, 5, 1) && ASN1_BIT_STRING_set_bit(ku, 6, 1);
	} else {
		ok = ASN1_BIT_STRING_set_bit(ku, 0, 1);
		if (ok && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
			ok = ASN1_BIT_STRING_set_bit(ku, 2, 1);
	}
	if (ok)
		rc = gen_add_ext(x, NID_key_usage, ku, 1);
	ASN1_BIT_STRING_free(ku);
	return rc;
}

static int add_eku(X509 *x, int eku)
{
	EXTENDED_KEY_USAGE *ext;
	int rc = EMU_ENOMEM;

	if ((eku & GEN_EKU_BOTH) == 0)
		return EMU_OK;
	ext = sk_ASN1_OBJECT_new_null();
	if (!ext)
		return EMU_ENOMEM;
	if ((eku & GEN_EKU_SERVER) && !sk_ASN1_OBJECT_push(ext, OBJ_nid2obj(NID_server_auth)))
		goto out;
	if ((eku & GEN_EKU_CLIENT) && !sk_ASN1_OBJECT_push(ext, OBJ_nid2obj(NID_client_auth)))
		goto out;
	rc = gen_add_ext(x, NID_ext_key_usage, ext, 0);
out:
	/* the objects are OpenSSL's static table entries: free only the stack */
	sk_ASN1_OBJECT_free(ext);
	return rc;
}

/* SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 method 1). */
static int key_id(X509 *x, unsigned char md[EVP_MAX_MD_SIZE], unsigned int *len)
{
	if (!X509_pubkey_digest(x, EVP_sha1(), md, len)) {
		log_openssl_errors("gen", "key identifier");
		return EMU_ECRYPTO;
	}
	return EMU_OK;
}

static int add_key_ids(X509 *x, X509 *issuer)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *akid = NULL;
	const ASN1_OCTET_STRING *iski;
	int rc;

	rc = key_id(x, md, &len);
	if (rc != EMU_OK)
		return rc;
	rc = EMU_ENOMEM;
	ski = ASN1_OCTET_STRING_new();
	akid = AUTHORITY_KEYID_new();
	if (!ski || !akid || !ASN1_OCTET_STRING_set(ski, md, (int)len))
		goto out;
	rc = gen_add_ext(x, NID_subject_key_identifier, ski, 0);
	if (rc != EMU_OK)
		goto out;
	rc = EMU_ENOMEM;
	akid->keyid = ASN1_OCTET_STRING_new();
	if (!akid->keyid)
		goto out;
	iski = issuer ? X509_get0_subject_key_id(issuer) : NULL;
	if (iski) {
		if (!ASN1_OCTET_STRING_set(akid->keyid, ASN1_STRING_get0_data(iski),
		                           ASN1_STRING_length(iski)))
			goto out;
	} else {
		/* self-signed, or an issuer without SKI: derive the id from its key */
		if (issuer && (rc = key_id(issuer, md, &len)) != EMU_OK)
			goto out;
		rc = EMU_ENOMEM;
		if (!ASN1_OCTET_STRING_set(akid->keyid, md, (int)len))
			goto out;
	}
	rc = gen_add_ext(x, NID_authority_key_identifier, akid, 0);
out:
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(akid);
	return rc;
}

/* Length of the IP address s as bytes in ip (4 or 16), or 0 if s is no IP literal. */
static int ip_literal(const char *s, unsigned char ip[16])
{
	if (inet_pton(AF_INET, s, ip) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, ip) == 1)
		return 16;
	return 0;
}

int gen_san_check(const char *name)
{
	unsigned char ip[16];
	size_t len;

	if (!name)
		return EMU_EINVAL;
	if (ip_literal(name, ip))
		return EMU_OK;
	len = strlen(name);
	if (len == 0 || len > GEN_MAX_SAN_LEN)
		return EMU_EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == '*'))
			return EMU_EINVAL;
	}
	return EMU_OK;
}

static int san_entry(const char *s, GENERAL_NAME **out)
{
	unsigned char ip[16];
	size_t len = strlen(s);
	GENERAL_NAME *gn = NULL;
	ASN1_STRING *v = NULL;
	int iplen;

	*out = NULL;
	if (gen_san_check(s) != EMU_OK) {
		log_error("gen", "invalid subjectAltName '%.80s': not an IP address or DNS name",
		          s);
		return EMU_EINVAL;
	}
	iplen = ip_literal(s, ip);
	gn = GENERAL_NAME_new();
	v = iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
	if (!gn || !v ||
	    !ASN1_STRING_set(v, iplen ? (const void *)ip : (const void *)s,
	                     iplen ? iplen : (int)len)) {
		GENERAL_NAME_free(gn);
		ASN1_STRING_free(v);
		return EMU_ENOMEM;
	}
	GENERAL_NAME_set0_value(gn, iplen ? GEN_IPADD : GEN_DNS, v);
	*out = gn;
	return EMU_OK;
}

static int add_sans(X509 *x, const char *const *sans, size_t n)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *gn = NULL;
	int rc = EMU_OK;

	if (n == 0)
		return EMU_OK;
	if (!sans)
		return EMU_EINVAL;
	gens = sk_GENERAL_NAME_new_null();
	if (!gens)
		return EMU_ENOMEM;
	for (size_t i = 0; i < n && rc == EMU_OK; i++) {
		rc = sans[i] ? san_entry(sans[i], &gn) : EMU_EINVAL;
		if (rc == EMU_OK && !sk_GENERAL_NAME_push(gens, gn)) {
			GENERAL_NAME_free(gn);
			rc = EMU_ENOMEM;
		}
	}
	if (rc == EMU_OK)
		rc = gen_add_ext(x, NID_subject_alt_name, gens, 0);
	GENERAL_NAMES_free(gens);
	return rc;
}

const EVP_MD *gen_sign_digest(EVP_PKEY *key)
{
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) >= 384)
		return EVP_sha384();
	return EVP_sha256();
}

static int set_validity(X509 *x, int64_t offset, int64_t validity)
{
	time_t nb, na;

	if (offset > GEN_MAX_SPAN || offset < -GEN_MAX_SPAN || validity <= 0 ||
	    validity > GEN_MAX_SPAN) {
		log_error("gen", "certificate validity out of range");
		return EMU_EINVAL;
	}
	nb = time(NULL) + (time_t)offset;
	na = nb + (time_t)validity;
	if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na)) {
		log_openssl_errors("gen", "validity");
		return EMU_ECRYPTO;
	}
	return EMU_OK;
}

int gen_cert(const struct gen_cert_opts *o, X509 **out)
{
	X509 *x = NULL;
	X509_NAME *subject = NULL;
	EVP_PKEY *signkey;
	int rc = EMU_EINVAL;

	*out = NULL;
	if (!o || !o->cn || !*o->cn || !o->key || o->pathlen < -1)
		goto out;
	if (o->issuer ? !o->issuer_key : o->issuer_key != NULL)
		goto out;
	if (o->issuer && !gen_key_matches_cert(o->issuer_key, o->issuer)) {
		log_error("gen", "issuer key does not belong to the issuer certificate");
		goto out;
	}
	signkey = o->issuer ? o->issuer_key : o->key;
	rc = build_name(o->cn, o->org, &subject);
	if (rc != EMU_OK)
		goto out;
	rc = EMU_ENOMEM;
	x = X509_new();
	if (!x)
		goto out;
	rc = EMU_ECRYPTO;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, o->issuer ? X509_get_subject_name(o->issuer) : subject) ||
	    !X509_set_pubkey(x, o->key)) {
		log_openssl_errors("gen", "certificate fields");
		goto out;
	}
	rc = gen_serial(X509_get_serialNumber(x), NULL);
	if (rc == EMU_OK)
		rc = set_validity(x, o->not_before_offset, o->validity);
	if (rc == EMU_OK)
		rc = add_basic_constraints(x, o->is_ca, o->pathlen);
	if (rc == EMU_OK)
		rc = add_key_usage(x, o->is_ca, o->key);
	if (rc == EMU_OK)
		rc = add_eku(x, o->eku);
	if (rc == EMU_OK)
		rc = add_key_ids(x, o->issuer);
	if (rc == EMU_OK)
		rc = add_sans(x, o->sans, o->n_sans);
	if (rc != EMU_OK)
		goto out;
	if (X509_sign(x, signkey, gen_sign_digest(signkey)) <= 0) {
		log_openssl_errors("gen", "certificate signature");
		log_error("gen", "cannot sign certificate CN=%s", o->cn);
		rc = EMU_ECRYPTO;
		goto out;
	}
	*out = x;
	x = NULL;
	rc = EMU_OK;
out:
	X509_free(x);
	X509_NAME_free(subject);
	return rc;
}

int gen_csr(EVP_PKEY *key, const char *cn, X509_REQ **out)
{
	X509_REQ *req = NULL;
	X509_NAME *subject = NULL;
	int rc = EMU_EINVAL;

	*out = NULL;
	if (!key || !cn || !*cn)
		return EMU_EINVAL;
	rc = build_name(cn, NULL, &subject);
	if (rc != EMU_OK)
		return rc;
	rc = EMU_ECRYPTO;
	req = X509_REQ_new();
	if (!req || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, subject) || !X509_REQ_set_pubkey(req, key) ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		log_openssl_errors("gen", "certificate request");
		goto out;
	}
	*out = req;
	req = NULL;
	rc = EMU_OK;
out:
	X509_REQ_free(req);
	X509_NAME_free(subject);
	return rc;
}

/* Copies a memory BIO's contents into a new NUL-terminated string. */
static char *bio_string(BIO *bio)
{
	char *p, *s;
	long n = BIO_get_mem_data(bio, &p);

	if (n <= 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return s;
}

char *gen_key_to_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *s = NULL;

	if (!bio)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		s = bio_string(bio);
	else
		log_openssl_errors("gen", "private key PEM");
	BIO_free(bio);
	return s;
}

char *gen_csr_to_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (!bio)
		return NULL;
	if (PEM_write_bio_X509_REQ(bio, req))
		s = bio_string(bio);
	BIO_free(bio);
	return s;
}

char *gen_csr_to_b64der(X509_REQ *req)
{
	unsigned char *der = NULL;
	char *s;
	int n = i2d_X509_REQ(req, &der);

	if (n <= 0)
		return NULL;
	s = b64_encode(der, (size_t)n);
	OPENSSL_free(der);
	return s;
}

int gen_write_file(const char *path, const void *data, size_t len, mode_t mode, int flags)
{
	const unsigned char *p = data;
	int oflags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
	int fd, rc = EMU_EIO;

	oflags |= (flags & GEN_WRITE_EXCL) ? O_EXCL : O_TRUNC;
	fd = open(path, oflags, mode);
	if (fd < 0) {
		if (errno == EEXIST && (flags & GEN_WRITE_EXCL))
			return EMU_EEXIST;
		log_error("gen", "cannot create %s: %s", path, strerror(errno));
		return EMU_EIO;
	}
	/* An existing file keeps its permissions on open; a secret must not. */
	if ((mode & 077) == 0 && fchmod(fd, mode) != 0) {
		log_error("gen", "cannot chmod %s: %s", path, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("gen", "cannot write %s: %s", path, strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	rc = EMU_OK;
out:
	if (close(fd) != 0 && rc == EMU_OK) {
		log_error("gen", "cannot write %s: %s", path, strerror(errno));
		rc = EMU_EIO;
	}
	if (rc != EMU_OK)
		unlink(path);
	return rc;
}

int gen_write_key_file(const char *path, EVP_PKEY *key, int flags)
{
	char *pem = gen_key_to_pem(key);
	size_t n;
	int rc;

	if (!pem)
		return EMU_ECRYPTO;
	n = strlen(pem);
	rc = gen_write_file(path, pem, n, 0600, flags);
	OPENSSL_cleanse(pem, n);
	free(pem);
	return rc;
}

int gen_write_certs_file(const char *path, X509 *const *certs, size_t n, int flags)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long len;
	int rc = EMU_ECRYPTO;

	if (!bio)
		return EMU_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!PEM_write_bio_X509(bio, certs[i]))
			goto out;
	len = BIO_get_mem_data(bio, &p);
	if (len < 0)
		goto out;
	rc = gen_write_file(path, p, (size_t)len, 0644, flags);
out:
	if (rc == EMU_ECRYPTO)
		log_openssl_errors("gen", "certificate PEM");
	BIO_free(bio);
	return rc;
}

/* Reads a whole regular file of at most max bytes into a new NUL-terminated buffer. */
static int read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0;
	int fd, rc = EMU_EIO;

	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return EMU_ENOTFOUND;
		log_error("gen", "cannot open %s: %s", path, strerror(errno));
		return EMU_EIO;
	}
	if (fstat(fd, &st) != 0) {
		log_error("gen", "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("gen", "%s is not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		log_error("gen", "%s is too large (%lld bytes, limit %zu)", path,
		          (long long)st.st_size, max);
		rc = EMU_ETOOBIG;
		goto out;
	}
	data = malloc(max + 1);
	if (!data) {
		rc = EMU_ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, data + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("gen", "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			/* the file grew after fstat */
			rc = EMU_ETOOBIG;
			goto out;
		}
	}
	data[len] = '\0';
	*out = data;
	*outlen = len;
	data = NULL;
	rc = EMU_OK;
out:
	if (data) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	close(fd);
	return rc;
}

/* Refuses encrypted keys instead of letting OpenSSL prompt on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

int gen_read_key_file(const char *path, EVP_PKEY **out)
{
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = read_file(path, GEN_MAX_KEY_FILE, &data, &len);
	if (rc != EMU_OK)
		return rc;
	rc = EMU_ECRYPTO;
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio)
		*out = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (*out) {
		rc = EMU_OK;
	} else {
		log_openssl_errors("gen", path);
		log_error("gen", "%s holds no usable unencrypted private key", path);
	}
	BIO_free(bio);
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

int gen_read_chain_file(const char *path, STACK_OF(X509) **out)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = read_file(path, GEN_MAX_CERT_FILE, &data, &len);
	if (rc != EMU_OK)
		return rc;
	rc = x509_parse_pem_chain(data, len, out);
	if (rc != EMU_OK) {
		log_error("gen", "%s: no valid PEM certificate (%s)", path, emu_strerror(rc));
		rc = EMU_EINVAL;
	}
	free(data);
	return rc;
}

int gen_read_cert_file(const char *path, X509 **out)
{
	STACK_OF(X509) *sk = NULL;
	int rc;

	*out = NULL;
	rc = gen_read_chain_file(path, &sk);
	if (rc != EMU_OK)
		return rc;
	*out = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return EMU_OK;
}
