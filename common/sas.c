#include "sas.h"

#include "buf.h"
#include "err.h"
#include "log.h"
#include "query.h"
#include "textenc.h"

#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAS_PREFIX "SharedAccessSignature "
#define SHA256_LEN 32

static int hmac_sha256(const unsigned char *key, size_t keylen, const void *data, size_t n,
		       unsigned char out[SHA256_LEN])
{
	unsigned int outlen = 0;

	if (keylen == 0 || keylen > INT_MAX)
		return EMU_EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &outlen) || outlen != SHA256_LEN) {
		log_openssl_errors("sas", "HMAC-SHA256");
		log_error("sas", "HMAC-SHA256 failed");
		return EMU_ECRYPTO;
	}
	return EMU_OK;
}

static bool key_is(const struct query_pair *kv, const char *name)
{
	size_t n = strlen(name);
	return kv->key_len == n && memcmp(kv->key, name, n) == 0;
}

static int parse_sr(const struct query_pair *kv, struct sas_token *t)
{
	if (kv->value_len == 0) {
		t->error = "empty sr";
		return EMU_EINVAL;
	}
	if (kv->value_len > SAS_MAX_SR) {
		t->error = "sr too long";
		return EMU_ETOOBIG;
	}
	memcpy(t->sr_raw, kv->value, kv->value_len);
	t->sr_raw[kv->value_len] = '\0';
	t->sr_raw_len = kv->value_len;
	if (query_decode(kv->value, kv->value_len, t->sr, sizeof(t->sr), NULL)) {
		t->error = "bad percent-escape in sr";
		return EMU_EINVAL;
	}
	return EMU_OK;
}

static int parse_sig(const struct query_pair *kv, struct sas_token *t)
{
	/* base64 of SAS_MAX_SIG bytes, plus room to reject longer input cleanly. */
	char b64[4 * SAS_MAX_SIG / 3 + 8];
	unsigned char *raw = NULL;
	size_t b64len, rawlen = 0;
	int rc;

	if (kv->value_len == 0) {
		t->error = "empty sig";
		return EMU_EINVAL;
	}
	rc = query_decode(kv->value, kv->value_len, b64, sizeof(b64), &b64len);
	if (rc == EMU_ETOOBIG) {
		t->error = "sig too long";
		goto out;
	}
	if (rc) {
		t->error = "bad percent-escape in sig";
		goto out;
	}
	rc = b64_decode(b64, b64len, &raw, &rawlen);
	if (rc == EMU_EINVAL) {
		t->error = "sig is not base64";
		goto out;
	}
	if (rc) {
		t->error = "out of memory decoding sig";
		goto out;
	}
	if (rawlen == 0 || rawlen > SAS_MAX_SIG) {
		t->error = rawlen ? "sig too long" : "empty sig";
		rc = rawlen ? EMU_ETOOBIG : EMU_EINVAL;
		goto out;
	}
	memcpy(t->sig, raw, rawlen);
	t->sig_len = rawlen;
out:
	free(raw);
	return rc;
}

static int parse_se(const struct query_pair *kv, struct sas_token *t)
{
	uint64_t v = 0;

	if (kv->value_len == 0 || kv->value_len >= sizeof(t->se_raw)) {
		t->error = kv->value_len ? "se out of range" : "empty se";
		return EMU_EINVAL;
	}
	for (size_t i = 0; i < kv->value_len; i++) {
		unsigned d = (unsigned char)kv->value[i] - '0';

		if (d > 9) {
			t->error = "se is not a decimal number";
			return EMU_EINVAL;
		}
		if (v > (UINT64_MAX - d) / 10) {
			t->error = "se out of range";
			return EMU_EINVAL;
		}
		v = v * 10 + d;
	}
	memcpy(t->se_raw, kv->value, kv->value_len);
	t->se_raw[kv->value_len] = '\0';
	t->se = v;
	return EMU_OK;
}

static int parse_skn(const struct query_pair *kv, struct sas_token *t)
{
	if (kv->value_len > SAS_MAX_SKN) {
		t->error = "skn too long";
		return EMU_ETOOBIG;
	}
	if (query_decode(kv->value, kv->value_len, t->skn, sizeof(t->skn), NULL)) {
		t->error = "bad percent-escape in skn";
		return EMU_EINVAL;
	}
	t->has_skn = true;
	return EMU_OK;
}

int sas_parse(const char *token, size_t len, struct sas_token *out)
{
	const size_t plen = sizeof(SAS_PREFIX) - 1;
	const char *cur, *end = token + len;
	bool have_sr = false, have_sig = false, have_se = false;
	struct query_pair kv;
	const char *error = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > SAS_MAX_TOKEN) {
		error = "token longer than 4096 bytes";
		rc = EMU_ETOOBIG;
		goto out;
	}
	if (len < plen || memcmp(token, SAS_PREFIX, plen) != 0) {
		error = "missing 'SharedAccessSignature ' prefix";
		rc = EMU_EINVAL;
		goto out;
	}
	for (size_t i = plen; i < len; i++) {
		unsigned char c = (unsigned char)token[i];

		if (c <= 0x20 || c == 0x7f) {
			error = "space or control character in token";
			rc = EMU_EINVAL;
			goto out;
		}
	}
	cur = token + plen;
	while (query_next(&cur, end, &kv) == EMU_OK) {
		bool *seen = NULL;

		if (!kv.has_value) {
			error = "field without '=' in token";
			rc = EMU_EINVAL;
			goto out;
		}
		if (key_is(&kv, "sr"))
			seen = &have_sr;
		else if (key_is(&kv, "sig"))
			seen = &have_sig;
		else if (key_is(&kv, "se"))
			seen = &have_se;
		else if (key_is(&kv, "skn"))
			seen = &out->has_skn;
		else
			continue; /* room for fields we do not know */
		if (*seen) {
			error = "duplicate field in token";
			rc = EMU_EINVAL;
			goto out;
		}
		if (seen == &have_sr)
			rc = parse_sr(&kv, out);
		else if (seen == &have_sig)
			rc = parse_sig(&kv, out);
		else if (seen == &have_se)
			rc = parse_se(&kv, out);
		else
			rc = parse_skn(&kv, out);
		if (rc) {
			error = out->error;
			goto out;
		}
		*seen = true;
	}
	rc = EMU_EINVAL;
	if (!have_sr)
		error = "missing sr";
	else if (!have_sig)
		error = "missing sig";
	else if (!have_se)
		error = "missing se";
	else
		rc = EMU_OK;
out:
	if (rc) {
		memset(out, 0, sizeof(*out));
		out->error = error;
	}
	return rc;
}

/* HMAC-SHA256 over "<sr>\n<se>". */
static int sign(const unsigned char *key, size_t keylen, const char *sr, size_t srlen,
		const char *se, unsigned char mac[SHA256_LEN])
{
	struct buf msg;
	int rc;

	buf_init(&msg, 0);
	rc = buf_append(&msg, sr, srlen);
	if (rc == EMU_OK)
		rc = buf_append(&msg, "\n", 1);
	if (rc == EMU_OK)
		rc = buf_append_str(&msg, se);
	if (rc == EMU_OK)
		rc = hmac_sha256(key, keylen, msg.data, msg.len, mac);
	buf_free(&msg);
	return rc;
}

int sas_verify(const struct sas_token *t, const unsigned char *key, size_t keylen, uint64_t now)
{
	unsigned char mac[SHA256_LEN];
	int rc;

	if (!key || keylen == 0)
		return EMU_EINVAL;
	rc = sign(key, keylen, t->sr_raw, t->sr_raw_len, t->se_raw, mac);
	if (rc)
		return rc;
	if (t->sig_len != SHA256_LEN || CRYPTO_memcmp(mac, t->sig, SHA256_LEN) != 0)
		return EMU_EAUTH;
	if (t->se < now)
		return EMU_EAUTH;
	return EMU_OK;
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int sas_resource_matches(const struct sas_token *t, const char *expected)
{
	size_t i;

	if (!expected || !*expected)
		return 0;
	for (i = 0; expected[i]; i++) {
		if (ascii_lower((unsigned char)t->sr[i]) != ascii_lower((unsigned char)expected[i]))
			return 0;
	}
	return t->sr[i] == '\0' || t->sr[i] == '/';
}

char *sas_create(const char *sr, const unsigned char *key, size_t keylen, uint64_t expiry,
		 const char *skn)
{
	unsigned char mac[SHA256_LEN];
	char se[24];
	char *enc_sr = NULL, *sig_b64 = NULL, *enc_sig = NULL, *enc_skn = NULL, *token = NULL;
	struct buf b;

	buf_init(&b, 0);
	if (!sr || !key || keylen == 0)
		goto out;
	snprintf(se, sizeof(se), "%" PRIu64, expiry);
	enc_sr = url_encode(sr);
	if (!enc_sr)
		goto out;
	if (sign(key, keylen, enc_sr, strlen(enc_sr), se, mac))
		goto out;
	sig_b64 = b64_encode(mac, sizeof(mac));
	if (!sig_b64)
		goto out;
	enc_sig = url_encode(sig_b64);
	if (!enc_sig)
		goto out;
	if (skn) {
		enc_skn = url_encode(skn);
		if (!enc_skn)
			goto out;
	}
	if (buf_printf(&b, SAS_PREFIX "sr=%s&sig=%s&se=%s", enc_sr, enc_sig, se))
		goto out;
	if (enc_skn && buf_printf(&b, "&skn=%s", enc_skn))
		goto out;
	token = buf_steal(&b);
out:
	buf_free(&b);
	free(enc_sr);
	free(sig_b64);
	free(enc_sig);
	free(enc_skn);
	return token;
}

int sas_derive_device_key(const char *group_key_b64, const char *registration_id,
			  char out_b64[45])
{
	unsigned char *key = NULL;
	unsigned char mac[SHA256_LEN];
	size_t keylen = 0;
	int rc;

	out_b64[0] = '\0';
	rc = b64_decode(group_key_b64, strlen(group_key_b64), &key, &keylen);
	if (rc)
		goto out;
	if (keylen == 0) {
		rc = EMU_EINVAL;
		goto out;
	}
	rc = hmac_sha256(key, keylen, registration_id, strlen(registration_id), mac);
	if (rc)
		goto out;
	EVP_EncodeBlock((unsigned char *)out_b64, mac, sizeof(mac));
out:
	if (key) {
		OPENSSL_cleanse(key, keylen);
		free(key);
	}
	return rc;
}
