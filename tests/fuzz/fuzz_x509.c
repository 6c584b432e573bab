/* Fuzz target for certs/x509 parsing: the input is tried as any certificate
 * text (PEM, base64 DER, base64 of PEM), as a PEM chain and as DER. Whatever
 * parses must survive every helper DPS applies to a device certificate and
 * round-trip through PEM and base64 DER. Any broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"

#include "certs/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

static int parse_rc_ok(int rc)
{
	return rc == EMU_OK || rc == EMU_EINVAL || rc == EMU_ETOOBIG || rc == EMU_ENOMEM;
}

/* The re-encoded form parses back to the same certificate. */
static void round_trip(X509 *x)
{
	STACK_OF(X509) *sk = NULL;
	X509 *again = NULL;
	char *pem = x509_to_pem(x);
	char *b64 = x509_to_b64der(x);

	if (pem && x509_parse_pem_chain(pem, strlen(pem), &sk) == EMU_OK) {
		require(sk_X509_num(sk) == 1);
		require(X509_cmp(sk_X509_value(sk, 0), x) == 0);
	}
	if (b64 && x509_parse_any(b64, &again) == EMU_OK)
		require(X509_cmp(again, x) == 0);
	sk_X509_pop_free(sk, X509_free);
	X509_free(again);
	free(pem);
	free(b64);
}

static void check_cert(X509 *x)
{
	char sha1[41], sha256[65], cn[65];
	char *subject, *issuer;
	json_t *info;
	int rc;

	x509_thumbprint_sha1(x, sha1);
	x509_thumbprint_sha256(x, sha256);
	require(sha1[0] == '\0' || strlen(sha1) == 40);
	require(sha256[0] == '\0' || strlen(sha256) == 64);
	if (sha1[0])
		require(x509_thumbprint_matches(x, sha1));
	if (sha256[0])
		require(x509_thumbprint_matches(x, sha256));
	rc = x509_common_name(x, cn, sizeof(cn));
	require(rc == EMU_OK || rc == EMU_ENOTFOUND || rc == EMU_ETOOBIG || rc == EMU_EINVAL);
	if (rc == EMU_OK)
		require(strlen(cn) < sizeof(cn));
	subject = x509_subject_string(x);
	issuer = x509_issuer_string(x);
	free(subject);
	free(issuer);
	(void)x509_is_ca(x);
	(void)x509_is_self_signed(x);
	(void)x509_not_after(x);
	info = x509_info_json(x);
	if (info) {
		require(json_is_object(info));
		require(json_string_length(json_object_get(info, "sha256Thumbprint")) == 64);
		require(json_is_string(json_object_get(info, "serialNumber")));
		json_decref(info);
	}
	round_trip(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	STACK_OF(X509) *sk = NULL;
	X509 *x = NULL;
	char *s;
	int rc;

	if (!quiet) {
		log_set_level(LOG_ERROR);
		quiet = 1;
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	rc = x509_parse_any(s, &x);
	require(parse_rc_ok(rc) && (rc == EMU_OK) == (x != NULL));
	if (x)
		check_cert(x);
	X509_free(x);
	x = NULL;

	rc = x509_parse_pem_chain((const char *)data, size, &sk);
	require(parse_rc_ok(rc) && (rc == EMU_OK) == (sk != NULL));
	if (sk) {
		require(sk_X509_num(sk) >= 1 && sk_X509_num(sk) <= 32);
		for (int i = 0; i < sk_X509_num(sk); i++)
			check_cert(sk_X509_value(sk, i));
		sk_X509_pop_free(sk, X509_free);
	}

	rc = x509_parse_der(data, size, &x);
	require((rc == EMU_OK || rc == EMU_EINVAL) && (rc == EMU_OK) == (x != NULL));
	if (x)
		check_cert(x);
	X509_free(x);
	free(s);
	return 0;
}
