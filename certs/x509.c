#include "certs/x509.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "textenc.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A certificate is a few KiB; these bounds keep hostile input from costing more. */
#define X509_MAX_DER         (64 * 1024)
#define X509_MAX_TEXT        (128 * 1024)
#define X509_MAX_PEM_CHAIN   (1024 * 1024)
#define X509_MAX_CHAIN_CERTS 32

static const char pem_begin[] = "-----BEGIN";

int x509_parse_pem_chain(const char *pem, size_t len, STACK_OF(X509) **out)
{
	STACK_OF(X509) *sk = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	int rc = EMU_EINVAL;

	*out = NULL;
	if (len > X509_MAX_PEM_CHAIN)
		return EMU_ETOOBIG;
	ERR_clear_error();
	bio = BIO_new_mem_buf(pem, (int)len);
	sk = sk_X509_new_null();
	if (!bio || !sk) {
		rc = EMU_ENOMEM;
		goto out;
	}
	for (;;) {
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x) {
			unsigned long e = ERR_peek_last_error();
			/* "no start line" after the last block is the normal end of input. */
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE && sk_X509_num(sk) > 0) {
				ERR_clear_error();
				break;
			}
			log_openssl_errors("x509", "PEM certificate chain");
			rc = EMU_EINVAL;
			goto out;
		}
		if (sk_X509_num(sk) >= X509_MAX_CHAIN_CERTS) {
			rc = EMU_ETOOBIG;
			goto out;
		}
		if (!sk_X509_push(sk, x)) {
			rc = EMU_ENOMEM;
			goto out;
		}
		x = NULL;
	}
	*out = sk;
	sk = NULL;
	rc = EMU_OK;
out:
	X509_free(x);
	sk_X509_pop_free(sk, X509_free);
	BIO_free(bio);
	return rc;
}

/* First certificate of a PEM text of len bytes. */
static int parse_first_pem(const char *pem, size_t len, X509 **out)
{
	BIO *bio = NULL;

	if (len > X509_MAX_TEXT)
		return EMU_ETOOBIG;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return EMU_ENOMEM;
	*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!*out) {
		log_openssl_errors("x509", "PEM certificate");
		return EMU_EINVAL;
	}
	return EMU_OK;
}

int x509_parse_der(const unsigned char *der, size_t len, X509 **out)
{
	const unsigned char *p = der;
	X509 *x;

	*out = NULL;
	if (len == 0 || len > X509_MAX_DER)
		return EMU_EINVAL;
	x = d2i_X509(NULL, &p, (long)len);
	if (!x) {
		log_openssl_errors("x509", "DER certificate");
		return EMU_EINVAL;
	}
	if (p != der + len) {
		/* Trailing bytes mean this is not one certificate. */
		X509_free(x);
		return EMU_EINVAL;
	}
	*out = x;
	return EMU_OK;
}

int x509_parse_any(const char *text, X509 **out)
{
	unsigned char *der = NULL;
	char *b64 = NULL;
	size_t len, start, end, n = 0, derlen = 0;
	int rc;

	*out = NULL;
	if (!text)
		return EMU_EINVAL;
	len = strnlen(text, X509_MAX_TEXT + 1);
	if (len > X509_MAX_TEXT)
		return EMU_ETOOBIG;
	for (start = 0; start < len && isspace((unsigned char)text[start]); start++)
		;
	for (end = len; end > start && isspace((unsigned char)text[end - 1]); end--)
		;
	if (end == start)
		return EMU_EINVAL;
	if (end - start >= sizeof(pem_begin) - 1 &&
	    memcmp(text + start, pem_begin, sizeof(pem_begin) - 1) == 0)
		return parse_first_pem(text + start, end - start, out);

	/* base64, possibly wrapped over several lines and missing its padding */
	b64 = malloc(end - start + 3);
	if (!b64)
		return EMU_ENOMEM;
	for (size_t i = start; i < end; i++)
		if (!isspace((unsigned char)text[i]))
			b64[n++] = text[i];
	if (n % 4 == 1) {
		rc = EMU_EINVAL;
		goto out;
	}
	while (n % 4 != 0)
		b64[n++] = '=';
	rc = b64_decode(b64, n, &der, &derlen);
	if (rc != EMU_OK)
		goto out;
	if (derlen >= sizeof(pem_begin) - 1 && memcmp(der, pem_begin, sizeof(pem_begin) - 1) == 0)
		rc = parse_first_pem((const char *)der, derlen, out);
	else
		rc = x509_parse_der(der, derlen, out);
out:
	free(b64);
	free(der);
	return rc;
}

static void thumbprint(X509 *cert, const EVP_MD *md, char *out, size_t hexlen)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (!X509_digest(cert, md, d, &n) || (size_t)n * 2 != hexlen) {
		log_openssl_errors("x509", "certificate digest");
		return;
	}
	hex_encode(d, n, 1, out);
}

void x509_thumbprint_sha1(X509 *cert, char out[41])
{
	thumbprint(cert, EVP_sha1(), out, 40);
}

void x509_thumbprint_sha256(X509 *cert, char out[65])
{
	thumbprint(cert, EVP_sha256(), out, 64);
}

int x509_thumbprint_matches(X509 *cert, const char *thumb)
{
	char norm[65], mine[65];
	size_t n = 0;

	if (!cert || !thumb)
		return 0;
	for (const char *p = thumb; *p; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p) || n >= 64)
			return 0;
		norm[n++] = (char)toupper((unsigned char)*p);
	}
	norm[n] = '\0';
	if (n == 40)
		x509_thumbprint_sha1(cert, mine);
	else if (n == 64)
		x509_thumbprint_sha256(cert, mine);
	else
		return 0;
	return mine[0] != '\0' && strcmp(norm, mine) == 0;
}

int x509_common_name(X509 *cert, char *out, size_t outlen)
{
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	int idx, n, rc;

	if (outlen > 0)
		out[0] = '\0';
	idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if (idx < 0)
		return EMU_ENOTFOUND;
	e = X509_NAME_get_entry(name, idx);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	if (n < 0) {
		log_openssl_errors("x509", "commonName");
		return EMU_EINVAL;
	}
	if (memchr(utf8, '\0', (size_t)n)) {
		/* "dev1\0evil" must not compare equal to "dev1" */
		rc = EMU_EINVAL;
	} else if ((size_t)n >= outlen) {
		rc = EMU_ETOOBIG;
	} else {
		memcpy(out, utf8, (size_t)n);
		out[n] = '\0';
		rc = EMU_OK;
	}
	OPENSSL_free(utf8);
	return rc;
}

/* RFC 2253 order (most specific first) in UTF-8; spaced adds a blank after each comma,
 * the way Azure displays names. */
/* The contents of a memory BIO as a new NUL-terminated string (caller frees),
 * or NULL; an empty BIO gives "" when allow_empty, else NULL. */
static char *bio_string(BIO *bio, int allow_empty)
{
	char *p, *s;
	long n = BIO_get_mem_data(bio, &p);

	if (n < 0 || (n == 0 && !allow_empty))
		return NULL;
	s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, p, (size_t)n);
		s[n] = '\0';
	}
	return s;
}

static char *name_string(const X509_NAME *name, int spaced)
{
	unsigned long flags = (XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	BIO *bio = NULL;
	char *s = NULL;

	if (!name)
		return NULL;
	if (spaced)
		flags = (flags & ~XN_FLAG_SEP_MASK) | XN_FLAG_SEP_CPLUS_SPC;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return NULL;
	if (X509_NAME_print_ex(bio, name, 0, flags) >= 0)
		s = bio_string(bio, 1);
	BIO_free(bio);
	return s;
}

char *x509_subject_string(X509 *cert)
{
	return name_string(X509_get_subject_name(cert), 0);
}

char *x509_issuer_string(X509 *cert)
{
	return name_string(X509_get_issuer_name(cert), 0);
}

char *x509_to_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (!bio)
		return NULL;
	if (PEM_write_bio_X509(bio, cert))
		s = bio_string(bio, 0);
	BIO_free(bio);
	return s;
}

char *x509_to_b64der(X509 *cert)
{
	unsigned char *der = NULL;
	char *s;
	int n = i2d_X509(cert, &der);

	if (n <= 0)
		return NULL;
	s = b64_encode(der, (size_t)n);
	OPENSSL_free(der);
	return s;
}

static time_t asn1_time_to_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

time_t x509_not_after(X509 *cert)
{
	return asn1_time_to_time_t(X509_get0_notAfter(cert));
}

json_t *x509_info_json(X509 *cert)
{
	char sha1[41], sha256[65], nb[32], na[32];
	char *subject = NULL, *issuer = NULL, *serial = NULL;
	BIGNUM *bn = NULL;
	json_t *j = NULL;

	subject = name_string(X509_get_subject_name(cert), 1);
	issuer = name_string(X509_get_issuer_name(cert), 1);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	serial = bn ? BN_bn2hex(bn) : NULL;
	if (!subject || !issuer || !serial)
		goto out;
	x509_thumbprint_sha1(cert, sha1);
	x509_thumbprint_sha256(cert, sha256);
	clock_iso8601(asn1_time_to_time_t(X509_get0_notBefore(cert)), nb);
	clock_iso8601(asn1_time_to_time_t(X509_get0_notAfter(cert)), na);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "subjectName", subject,
	              "sha1Thumbprint", sha1, "sha256Thumbprint", sha256, "issuerName", issuer,
	              "notBeforeUtc", nb, "notAfterUtc", na, "serialNumber", serial, "version",
	              (json_int_t)X509_get_version(cert) + 1);
out:
	free(subject);
	free(issuer);
	OPENSSL_free(serial);
	BN_free(bn);
	return j;
}

int x509_is_ca(X509 *cert)
{
	return (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
}

int x509_is_self_signed(X509 *cert)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	int ok;

	if (!pk || X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) != 0)
		return 0;
	ok = X509_verify(cert, pk) == 1;
	ERR_clear_error();
	return ok;
}

/* Writes "depth D CN=name: reason" for the certificate the verifier stopped at. */
static void verify_reason(X509_STORE_CTX *ctx, char *why, size_t whylen)
{
	int err = X509_STORE_CTX_get_error(ctx);
	int depth = X509_STORE_CTX_get_error_depth(ctx);
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	char cn[128];
	char *subj = NULL;
	const char *reason = X509_verify_cert_error_string(err);

	if (!why || whylen == 0)
		return;
	if (cur && x509_common_name(cur, cn, sizeof(cn)) == EMU_OK) {
		snprintf(why, whylen, "depth %d CN=%s: %s", depth, cn, reason);
	} else if (cur && (subj = x509_subject_string(cur)) != NULL) {
		snprintf(why, whylen, "depth %d %s: %s", depth, subj[0] ? subj : "(empty subject)",
		         reason);
		free(subj);
	} else {
		snprintf(why, whylen, "depth %d: %s", depth, reason);
	}
}

int x509_verify_chain(X509 *leaf, STACK_OF(X509) *untrusted, STACK_OF(X509) *anchors, time_t now,
                      X509 **anchor_out, int *depth_out, char *why, size_t whylen)
{
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *empty = NULL;
	STACK_OF(X509) *chain;
	int rc = EMU_ECRYPTO;
	int n;

	if (anchor_out)
		*anchor_out = NULL;
	if (depth_out)
		*depth_out = -1;
	if (why && whylen)
		why[0] = '\0';
	if (!leaf) {
		if (why && whylen)
			snprintf(why, whylen, "no certificate");
		return EMU_EINVAL;
	}
	if (!anchors) {
		empty = sk_X509_new_null();
		if (!empty)
			return EMU_ENOMEM;
		anchors = empty;
	}
	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, NULL, leaf, untrusted)) {
		log_openssl_errors("x509", "verify context");
		rc = EMU_ENOMEM;
		goto out;
	}
	X509_STORE_CTX_set0_trusted_stack(ctx, anchors);
	/* A registered intermediate is trusted on its own, as DPS does. */
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	if (!X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT)) {
		log_openssl_errors("x509", "verify purpose");
		goto out;
	}
	if (now != 0)
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	if (X509_verify_cert(ctx) != 1) {
		verify_reason(ctx, why, whylen);
		ERR_clear_error();
		goto out;
	}
	chain = X509_STORE_CTX_get0_chain(ctx);
	n = sk_X509_num(chain);
	/* The built chain ends at a trusted certificate; report the outermost anchor. */
	for (int i = n - 1; i >= 0; i--) {
		X509 *c = sk_X509_value(chain, i);
		for (int k = 0; k < sk_X509_num(anchors); k++) {
			X509 *a = sk_X509_value(anchors, k);
			if (X509_cmp(c, a) == 0) {
				if (anchor_out)
					*anchor_out = a;
				if (depth_out)
					*depth_out = i;
				rc = EMU_OK;
				goto out;
			}
		}
	}
	if (why && whylen)
		snprintf(why, whylen, "chain does not end at a trusted certificate");
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(empty);
	return rc;
}

int x509_signed_by(X509 *sig_cert, X509 *ca)
{
	EVP_PKEY *pk;
	int ok;

	if (!sig_cert || !ca)
		return 0;
	pk = X509_get0_pubkey(ca);
	if (!pk)
		return 0;
	ok = X509_verify(sig_cert, pk) == 1;
	ERR_clear_error();
	return ok;
}
