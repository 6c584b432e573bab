/* Unit tests for common/sas. The vectors are Microsoft's group-key derivation
 * example and tokens signed over each sr encoding the SDKs send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "sas.h"
#include "textenc.h"

#define GROUP_KEY                                                                          \
	"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
#define REG_ID "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
#define DEVICE_KEY "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
#define SERVICE_KEY "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define RESOURCE "0ne00000A0A/registrations/" REG_ID
#define SE 1700000000u
#define BEFORE (SE - 3600u)

/* sr encodings and their signatures (sig already url-encoded for the token). */
#define SR_UPPER "0ne00000A0A%2Fregistrations%2F" REG_ID
#define SIG_UPPER "t6%2F8JHWQuQgM9mXdYf%2FuIqa3dKECOEk9Rr4WrFV19q0%3D"
#define SR_LOWER "0ne00000A0A%2fregistrations%2f" REG_ID
#define SIG_LOWER "d0v1ROtrJfDl1lL%2B6Gm6mCyZUBsvFsT3HgNEOWfYmE0%3D"
#define SR_RAW RESOURCE
#define SIG_RAW "hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D"
#define SERVICE_SR "mydps.azure-devices-provisioning.net"
#define SERVICE_SIG "xXBqEKztXMACe9dg1gMBreO%2F8CMn3ovt%2B%2BxDvPb6Xl0%3D"

struct key {
	unsigned char *p;
	size_t n;
};

static struct key key_from_b64(const char *b64)
{
	struct key k = { NULL, 0 };

	assert_int_equal(b64_decode(b64, strlen(b64), &k.p, &k.n), EMU_OK);
	return k;
}

static void parse_ok(const char *token, struct sas_token *t)
{
	int rc = sas_parse(token, strlen(token), t);

	if (rc != EMU_OK)
		fail_msg("'%s' refused: %s", token, t->error ? t->error : "(no reason)");
	assert_null(t->error);
}

static void parse_fails(const char *token, int want, const char *why)
{
	struct sas_token *t = malloc(sizeof(*t));
	int rc = sas_parse(token, strlen(token), t);

	if (rc != want)
		fail_msg("'%s': got %d (%s), want %d", token, rc, t->error ? t->error : "-", want);
	assert_non_null(t->error);
	assert_string_equal(t->error, why);
	assert_int_equal(t->sr_raw_len, 0);
	assert_int_equal(t->sig_len, 0);
	free(t);
}

static void test_derive_device_key(void **state)
{
	char out[45];

	assert_int_equal(sas_derive_device_key(GROUP_KEY, REG_ID, out), EMU_OK);
	assert_string_equal(out, DEVICE_KEY);
	assert_int_equal(sas_derive_device_key("not base64!", REG_ID, out), EMU_EINVAL);
	assert_string_equal(out, "");
	assert_int_equal(sas_derive_device_key("", REG_ID, out), EMU_EINVAL);
}

/* Parses token, checks it verifies with the device key before SE, and that a
 * wrong key, a changed sr, an expired se and a tampered sig all fail. */
static void check_vector(const char *token, const char *key_b64, const char *sr_raw,
			 const char *expected_resource)
{
	struct key k = key_from_b64(key_b64), other = key_from_b64(SERVICE_KEY);
	struct sas_token t, changed;

	parse_ok(token, &t);
	assert_string_equal(t.sr_raw, sr_raw);
	assert_int_equal(t.sr_raw_len, strlen(sr_raw));
	assert_string_equal(t.sr, expected_resource);
	assert_int_equal(t.se, SE);
	assert_string_equal(t.se_raw, "1700000000");
	assert_int_equal(t.sig_len, 32);
	assert_int_equal(sas_resource_matches(&t, expected_resource), 1);

	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_OK);
	assert_int_equal(sas_verify(&t, k.p, k.n, SE), EMU_OK); /* valid up to se itself */
	assert_int_equal(sas_verify(&t, k.p, k.n, SE + 1), EMU_EAUTH);
	if (strcmp(key_b64, SERVICE_KEY) != 0)
		assert_int_equal(sas_verify(&t, other.p, other.n, BEFORE), EMU_EAUTH);
	/* key one byte short */
	assert_int_equal(sas_verify(&t, k.p, k.n - 1, BEFORE), EMU_EAUTH);

	changed = t;
	changed.sr_raw[0] ^= 1;
	assert_int_equal(sas_verify(&changed, k.p, k.n, BEFORE), EMU_EAUTH);
	changed = t;
	changed.sig[31] ^= 0x80;
	assert_int_equal(sas_verify(&changed, k.p, k.n, BEFORE), EMU_EAUTH);
	changed = t;
	changed.sig_len = 31;
	assert_int_equal(sas_verify(&changed, k.p, k.n, BEFORE), EMU_EAUTH);
	/* se is signed as sent: another spelling of the same number fails */
	changed = t;
	memcpy(changed.se_raw, "01700000000", 12);
	assert_int_equal(sas_verify(&changed, k.p, k.n, BEFORE), EMU_EAUTH);
	free(k.p);
	free(other.p);
}

static void test_vector_sr_upper_hex(void **state)
{
	check_vector("SharedAccessSignature sr=" SR_UPPER "&sig=" SIG_UPPER
		     "&se=1700000000&skn=registration",
		     DEVICE_KEY, SR_UPPER, RESOURCE);
}

static void test_vector_sr_lower_hex(void **state)
{
	check_vector("SharedAccessSignature sr=" SR_LOWER "&sig=" SIG_LOWER
		     "&se=1700000000&skn=registration",
		     DEVICE_KEY, SR_LOWER, RESOURCE);
}

static void test_vector_sr_raw_node_order(void **state)
{
	/* Node's order: sr, sig, skn, se; sr not encoded */
	check_vector("SharedAccessSignature sr=" SR_RAW "&sig=" SIG_RAW
		     "&skn=registration&se=1700000000",
		     DEVICE_KEY, SR_RAW, RESOURCE);
}

static void test_vector_service(void **state)
{
	check_vector("SharedAccessSignature sr=" SERVICE_SR "&sig=" SERVICE_SIG
		     "&se=1700000000&skn=provisioningserviceowner",
		     SERVICE_KEY, SERVICE_SR, SERVICE_SR);
}

static void test_tampered_token_text(void **state)
{
	struct key k = key_from_b64(DEVICE_KEY);
	struct sas_token t;

	/* the same token with one sr character changed, and with sig's first char
	 * (the last one before '=' carries bits that padding discards) */
	parse_ok("SharedAccessSignature sr=0ne00000A0B%2Fregistrations%2F" REG_ID "&sig=" SIG_UPPER
		 "&se=1700000000",
		 &t);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_EAUTH);
	parse_ok("SharedAccessSignature sr=" SR_UPPER
		 "&sig=u6%2F8JHWQuQgM9mXdYf%2FuIqa3dKECOEk9Rr4WrFV19q0%3D&se=1700000000",
		 &t);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_EAUTH);
	/* the sr decodes to the same resource, but the signed bytes differ */
	parse_ok("SharedAccessSignature sr=" SR_RAW "&sig=" SIG_UPPER "&se=1700000000", &t);
	assert_int_equal(sas_resource_matches(&t, RESOURCE), 1);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_EAUTH);
	/* a later se than the one signed */
	parse_ok("SharedAccessSignature sr=" SR_UPPER "&sig=" SIG_UPPER "&se=1700000001", &t);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_EAUTH);
	free(k.p);
}

static void test_fields_any_order_skn_optional(void **state)
{
	struct sas_token t;

	parse_ok("SharedAccessSignature sig=" SIG_UPPER
		 "&se=1700000000&skn=registration&sr=" SR_UPPER,
		 &t);
	assert_string_equal(t.sr, RESOURCE);
	assert_true(t.has_skn);
	assert_string_equal(t.skn, "registration");
	parse_ok("SharedAccessSignature se=1700000000&sr=" SR_UPPER "&sig=" SIG_UPPER, &t);
	assert_false(t.has_skn);
	assert_string_equal(t.skn, "");
	/* unknown fields are ignored */
	parse_ok("SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1&future=x", &t);
	assert_string_equal(t.sr, "a");
	/* an empty skn is present but empty */
	parse_ok("SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1&skn=", &t);
	assert_true(t.has_skn);
	assert_string_equal(t.skn, "");
}

static void test_huge_se_milliseconds(void **state)
{
	struct sas_token t;

	/* Node's service client: milliseconds, never refused */
	parse_ok("SharedAccessSignature sr=localhost&sig=" SIG_UPPER
		 "&skn=provisioningserviceowner&se=1795406678000",
		 &t);
	assert_true(t.se == 1795406678000ull);
	parse_ok("SharedAccessSignature sr=x&sig=" SIG_UPPER "&se=18446744073709551615", &t);
	assert_true(t.se == UINT64_MAX);
	parse_ok("SharedAccessSignature sr=x&sig=" SIG_UPPER "&se=0", &t);
	assert_true(t.se == 0);
}

static void test_sig_unencoded_base64(void **state)
{
	/* hand-made tokens sometimes carry sig without url-encoding: '+' stays '+' */
	struct key k = key_from_b64(DEVICE_KEY);
	struct sas_token t;

	parse_ok("SharedAccessSignature sr=" SR_LOWER
		 "&sig=d0v1ROtrJfDl1lL+6Gm6mCyZUBsvFsT3HgNEOWfYmE0=&se=1700000000",
		 &t);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_OK);
	free(k.p);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *token;
		int rc;
		const char *why;
	} cases[] = {
		{ "sr=a&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "missing 'SharedAccessSignature ' prefix" },
		{ "sharedaccesssignature sr=a&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "missing 'SharedAccessSignature ' prefix" },
		{ "SharedAccessSignature", EMU_EINVAL, "missing 'SharedAccessSignature ' prefix" },
		{ "SharedAccessSignature  sr=a&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "space or control character in token" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1 ",
		  EMU_EINVAL,
		  "space or control character in token" },
		{ "SharedAccessSignature sr=a\t&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "space or control character in token" },
		{ "SharedAccessSignature ", EMU_EINVAL, "missing sr" },
		{ "SharedAccessSignature sig=" SIG_UPPER "&se=1", EMU_EINVAL, "missing sr" },
		{ "SharedAccessSignature sr=a&se=1", EMU_EINVAL, "missing sig" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER, EMU_EINVAL, "missing se" },
		{ "SharedAccessSignature sr=a&sr=a&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "duplicate field in token" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "duplicate field in token" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1&se=1",
		  EMU_EINVAL,
		  "duplicate field in token" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1&skn=a&skn=a",
		  EMU_EINVAL,
		  "duplicate field in token" },
		{ "SharedAccessSignature sr&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "field without '=' in token" },
		{ "SharedAccessSignature sr=&sig=" SIG_UPPER "&se=1", EMU_EINVAL, "empty sr" },
		{ "SharedAccessSignature sr=a%2&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "bad percent-escape in sr" },
		{ "SharedAccessSignature sr=a%00b&sig=" SIG_UPPER "&se=1",
		  EMU_EINVAL,
		  "bad percent-escape in sr" },
		{ "SharedAccessSignature sr=a&sig=&se=1", EMU_EINVAL, "empty sig" },
		{ "SharedAccessSignature sr=a&sig=abc&se=1", EMU_EINVAL, "sig is not base64" },
		{ "SharedAccessSignature sr=a&sig=ab*d&se=1", EMU_EINVAL, "sig is not base64" },
		{ "SharedAccessSignature sr=a&sig=%zz&se=1",
		  EMU_EINVAL,
		  "bad percent-escape in sig" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=", EMU_EINVAL, "empty se" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=12x",
		  EMU_EINVAL,
		  "se is not a decimal number" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=-1",
		  EMU_EINVAL,
		  "se is not a decimal number" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1.5",
		  EMU_EINVAL,
		  "se is not a decimal number" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=18446744073709551616",
		  EMU_EINVAL,
		  "se out of range" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=000000000000000000001",
		  EMU_EINVAL,
		  "se out of range" },
		{ "SharedAccessSignature sr=a&sig=" SIG_UPPER "&se=1&skn=%G0",
		  EMU_EINVAL,
		  "bad percent-escape in skn" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].token, cases[i].rc, cases[i].why);
}

static void test_length_bounds(void **state)
{
	size_t n = SAS_MAX_TOKEN + 1, at;
	char *tok = malloc(n + 1), *sig64;
	struct sas_token *t = malloc(sizeof(*t));
	unsigned char zeros[SAS_MAX_SIG + 3] = { 0 };

	/* one byte over the token bound */
	at = (size_t)snprintf(tok, n + 1, "%s", "SharedAccessSignature sig=" SIG_UPPER "&se=1&sr=");
	memset(tok + at, 'a', n - at);
	tok[n] = '\0';
	assert_int_equal(sas_parse(tok, n, t), EMU_ETOOBIG);
	assert_string_equal(t->error, "token longer than 4096 bytes");
	/* sr at its bound parses, one more byte does not */
	at = (size_t)snprintf(tok, n + 1, "%s", "SharedAccessSignature sig=" SIG_UPPER "&se=1&sr=");
	memset(tok + at, 'a', SAS_MAX_SR);
	assert_int_equal(sas_parse(tok, at + SAS_MAX_SR, t), EMU_OK);
	assert_int_equal(t->sr_raw_len, SAS_MAX_SR);
	tok[at + SAS_MAX_SR] = 'a';
	assert_int_equal(sas_parse(tok, at + SAS_MAX_SR + 1, t), EMU_ETOOBIG);
	assert_string_equal(t->error, "sr too long");
	/* skn over its bound */
	at = (size_t)snprintf(tok, n + 1, "%s",
			      "SharedAccessSignature sig=" SIG_UPPER "&se=1&sr=a&skn=");
	memset(tok + at, 'k', SAS_MAX_SKN + 1);
	assert_int_equal(sas_parse(tok, at + SAS_MAX_SKN + 1, t), EMU_ETOOBIG);
	assert_string_equal(t->error, "skn too long");
	/* sig decoding to more than SAS_MAX_SIG bytes */
	sig64 = b64_encode(zeros, sizeof(zeros));
	at = (size_t)snprintf(tok, n + 1, "SharedAccessSignature se=1&sr=a&sig=%s", sig64);
	assert_int_equal(sas_parse(tok, at, t), EMU_ETOOBIG);
	assert_string_equal(t->error, "sig too long");
	free(sig64);
	/* a NUL inside the given length is a control character */
	at = sizeof("SharedAccessSignature sr=a\0b&sig=" SIG_UPPER "&se=1") - 1;
	memcpy(tok, "SharedAccessSignature sr=a\0b&sig=" SIG_UPPER "&se=1", at);
	assert_int_equal(sas_parse(tok, at, t), EMU_EINVAL);
	assert_string_equal(t->error, "space or control character in token");
	free(tok);
	free(t);
}

static void test_resource_matches(void **state)
{
	struct sas_token t;

	parse_ok("SharedAccessSignature sr=" SR_LOWER "&sig=" SIG_UPPER "&se=1", &t);
	assert_int_equal(sas_resource_matches(&t, RESOURCE), 1);
	/* case-insensitive, as the docs ask for lower-cased URIs and no SDK sends them */
	assert_int_equal(sas_resource_matches(&t, "0NE00000a0a/REGISTRATIONS/" REG_ID), 1);
	assert_int_equal(sas_resource_matches(&t, "0ne00000A0A/registrations/sn-007"), 0);
	assert_int_equal(sas_resource_matches(&t, RESOURCE "x"), 0);
	assert_int_equal(sas_resource_matches(&t, RESOURCE "/"), 0);
	assert_int_equal(sas_resource_matches(&t, ""), 0);
	/* a longer URI below the expected one */
	parse_ok("SharedAccessSignature sr=myhub.example%2Fdevices&sig=" SIG_UPPER "&se=1", &t);
	assert_int_equal(sas_resource_matches(&t, "myhub.example"), 1);
	assert_int_equal(sas_resource_matches(&t, "myhub.exam"), 0);
	assert_int_equal(sas_resource_matches(&t, "myhub.example/devices/d1"), 0);
}

static void test_create_matches_vectors(void **state)
{
	struct key k = key_from_b64(DEVICE_KEY), sk = key_from_b64(SERVICE_KEY);
	struct sas_token t;
	char *tok;

	tok = sas_create(RESOURCE, k.p, k.n, SE, "registration");
	assert_non_null(tok);
	assert_string_equal(tok, "SharedAccessSignature sr=" SR_UPPER "&sig=" SIG_UPPER
				 "&se=1700000000&skn=registration");
	parse_ok(tok, &t);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_OK);
	free(tok);

	tok = sas_create(SERVICE_SR, sk.p, sk.n, SE, NULL);
	assert_non_null(tok);
	assert_string_equal(tok, "SharedAccessSignature sr=" SERVICE_SR "&sig=" SERVICE_SIG
				 "&se=1700000000");
	parse_ok(tok, &t);
	assert_false(t.has_skn);
	assert_int_equal(sas_verify(&t, sk.p, sk.n, BEFORE), EMU_OK);
	assert_int_equal(sas_verify(&t, k.p, k.n, BEFORE), EMU_EAUTH);
	free(tok);

	/* skn is encoded too */
	tok = sas_create("h/d", sk.p, sk.n, 5, "a b&c");
	assert_non_null(tok);
	parse_ok(tok, &t);
	assert_string_equal(t.skn, "a b&c");
	assert_string_equal(t.sr, "h/d");
	assert_int_equal(sas_verify(&t, sk.p, sk.n, 5), EMU_OK);
	free(tok);

	assert_null(sas_create(RESOURCE, k.p, 0, SE, NULL));
	assert_null(sas_create(NULL, k.p, k.n, SE, NULL));
	assert_int_equal(sas_verify(&t, k.p, 0, 0), EMU_EINVAL);
	assert_int_equal(sas_verify(&t, NULL, 32, 0), EMU_EINVAL);
	free(k.p);
	free(sk.p);
}

static void test_derived_key_end_to_end(void **state)
{
	/* the group key derives the device key that signs the device's token */
	char derived[45];
	struct key k;
	struct sas_token t;
	char *tok;

	assert_int_equal(sas_derive_device_key(GROUP_KEY, REG_ID, derived), EMU_OK);
	k = key_from_b64(derived);
	tok = sas_create(RESOURCE, k.p, k.n, 4102444800u, "registration");
	assert_non_null(tok);
	parse_ok(tok, &t);
	assert_int_equal(sas_verify(&t, k.p, k.n, SE), EMU_OK);
	free(tok);
	free(k.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_derive_device_key),
		cmocka_unit_test(test_vector_sr_upper_hex),
		cmocka_unit_test(test_vector_sr_lower_hex),
		cmocka_unit_test(test_vector_sr_raw_node_order),
		cmocka_unit_test(test_vector_service),
		cmocka_unit_test(test_tampered_token_text),
		cmocka_unit_test(test_fields_any_order_skn_optional),
		cmocka_unit_test(test_huge_se_milliseconds),
		cmocka_unit_test(test_sig_unencoded_base64),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_resource_matches),
		cmocka_unit_test(test_create_matches_vectors),
		cmocka_unit_test(test_derived_key_end_to_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
