/* Unit tests for hub-sim/auth: who may connect as which device. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "certs/x509.h"
#include "err.h"
#include "hub-sim/auth.h"
#include "sas.h"
#include "testcerts.h"
#include "textenc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *device(const char *type, const char *status, X509 *thumb_of)
{
	json_t *d = json_pack("{s:s, s:s, s:{s:s, s:{s:n, s:n}, s:{s:n, s:n}}}", "deviceId", "d1",
			      "status", status, "authentication", "type", type, "x509Thumbprint",
			      "primaryThumbprint", "secondaryThumbprint", "symmetricKey", "primaryKey",
			      "secondaryKey");
	if (thumb_of) {
		char t[65];
		x509_thumbprint_sha256(thumb_of, t);
		json_object_set_new(json_object_get(json_object_get(d, "authentication"),
						    "x509Thumbprint"),
				    "primaryThumbprint", json_string(t));
	}
	return d;
}

/* The class of the last check's decision. */
static enum auth_reason cls;

static int check(const char *id, json_t *dev, X509 *leaf, STACK_OF(X509) *chain,
		 STACK_OF(X509) *trusted, int require_cn, char *why)
{
	struct hub_auth_input in = { .device_id = id, .module_id = "", .device = dev,
				     .leaf = leaf, .chain = chain, .trusted = trusted,
				     .hub_host = "localhost", .require_cn = require_cn };
	uint64_t exp;
	cls = AUTH_OTHER;
	return hub_auth_check(&in, &exp, &cls, why, 256);
}

static void thumbprint_devices(void **state)
{
	struct testcert *d1 = testcert_self_signed("d1"), *other = testcert_self_signed("d1");
	struct testcert *wrongcn = testcert_self_signed("d2");
	json_t *dev = device("selfSigned", "enabled", d1->cert);
	json_t *dev2 = device("selfSigned", "enabled", wrongcn->cert);
	char why[256];
	(void)state;

	assert_int_equal(check("d1", dev, d1->cert, NULL, NULL, 1, why), EMU_OK);
	assert_int_equal(cls, AUTH_OK);
	assert_string_equal(why, "X.509 thumbprint");
	assert_int_equal(check("d1", dev, other->cert, NULL, NULL, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "thumbprint"));
	assert_int_equal(cls, AUTH_THUMBPRINT);
	/* The thumbprint matches but the CN is not the device id: refused by
	 * default, accepted under Azure's rule. */
	assert_int_equal(check("d1", dev2, wrongcn->cert, NULL, NULL, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "CN 'd2'"));
	assert_int_equal(cls, AUTH_CN_MISMATCH);
	assert_int_equal(check("d1", dev2, wrongcn->cert, NULL, NULL, 0, why), EMU_OK);
	assert_int_equal(cls, AUTH_OK);
	/* No certificate, unknown or disabled device. */
	assert_int_equal(check("d1", dev, NULL, NULL, NULL, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "no client certificate"));
	assert_int_equal(cls, AUTH_NO_CERTIFICATE);
	assert_int_equal(check("d1", NULL, d1->cert, NULL, NULL, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "not registered"));
	assert_int_equal(cls, AUTH_UNKNOWN_DEVICE);
	json_object_set_new(dev, "status", json_string("disabled"));
	assert_int_equal(check("d1", dev, d1->cert, NULL, NULL, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "disabled"));
	assert_int_equal(cls, AUTH_DISABLED);
	json_decref(dev);
	json_decref(dev2);
	testcert_free(d1);
	testcert_free(other);
	testcert_free(wrongcn);
}

static void expired_thumbprint_device(void **state)
{
	struct testcert_opts o = { .pathlen = -1, .not_before = -10 * 86400, .not_after = -86400 };
	struct testcert *old = testcert_new("d1", NULL, &o);
	json_t *dev = device("selfSigned", "enabled", old->cert);
	char why[256];
	(void)state;

	assert_int_equal(check("d1", dev, old->cert, NULL, NULL, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "expired"));
	assert_int_equal(cls, AUTH_EXPIRED);
	json_decref(dev);
	testcert_free(old);
}

static void ca_devices(void **state)
{
	struct testcert *root = testcert_root("root"), *inter = testcert_ca("inter", root);
	struct testcert *leaf = testcert_leaf("d1", inter), *bad = testcert_leaf("d9", inter);
	struct testcert *stranger = testcert_root("stranger");
	STACK_OF(X509) *trusted = testcert_stack(1, root->cert);
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	STACK_OF(X509) *wrong = testcert_stack(1, stranger->cert);
	json_t *dev = device("certificateAuthority", "enabled", NULL);
	char why[256];
	(void)state;

	assert_int_equal(check("d1", dev, leaf->cert, chain, trusted, 1, why), EMU_OK);
	assert_int_equal(cls, AUTH_OK);
	assert_string_equal(why, "X.509 CA chain");
	/* The CN rule holds for CA devices whatever the setting. */
	assert_int_equal(check("d1", dev, bad->cert, chain, trusted, 0, why), EMU_EAUTH);
	assert_non_null(strstr(why, "CN 'd9'"));
	assert_int_equal(cls, AUTH_CN_MISMATCH);
	/* Intermediate not sent: the chain cannot be built. */
	assert_int_equal(check("d1", dev, leaf->cert, NULL, trusted, 1, why), EMU_EAUTH);
	assert_non_null(strstr(why, "verified CA"));
	assert_int_equal(cls, AUTH_CHAIN);
	assert_int_equal(check("d1", dev, leaf->cert, chain, wrong, 1, why), EMU_EAUTH);
	assert_int_equal(check("d1", dev, leaf->cert, chain, NULL, 1, why), EMU_EAUTH);
	assert_int_equal(cls, AUTH_CHAIN);
	json_decref(dev);
	sk_X509_pop_free(trusted, X509_free);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(wrong, X509_free);
	testcert_free(root);
	testcert_free(inter);
	testcert_free(leaf);
	testcert_free(bad);
	testcert_free(stranger);
}

static void sas_devices(void **state)
{
	const char *key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
	json_t *dev = device("sas", "enabled", NULL);
	unsigned char *raw;
	size_t rawlen;
	char *tok, *other;
	uint64_t exp = 0;
	enum auth_reason c = AUTH_OTHER;
	char why[256];
	struct hub_auth_input in = { .device_id = "d1", .module_id = "", .hub_host = "localhost",
				     .require_cn = 1 };
	(void)state;

	json_object_set_new(json_object_get(json_object_get(dev, "authentication"), "symmetricKey"),
			    "secondaryKey", json_string(key));
	assert_int_equal(b64_decode(key, strlen(key), &raw, &rawlen), EMU_OK);
	tok = sas_create("localhost/devices/d1", raw, rawlen, (uint64_t)time(NULL) + 3600, NULL);
	other = sas_create("localhost/devices/d2", raw, rawlen, (uint64_t)time(NULL) + 3600, NULL);
	in.device = dev;
	in.password = tok;
	in.password_len = strlen(tok);
	assert_int_equal(hub_auth_check(&in, &exp, &c, why, sizeof(why)), EMU_OK);
	assert_true(exp > (uint64_t)time(NULL));
	assert_int_equal(c, AUTH_OK);
	assert_string_equal(why, "SAS token");
	in.password = other;
	in.password_len = strlen(other);
	assert_int_equal(hub_auth_check(&in, &exp, &c, why, sizeof(why)), EMU_EAUTH);
	assert_non_null(strstr(why, "does not cover"));
	assert_int_equal(c, AUTH_SAS);
	in.password = NULL;
	c = AUTH_OK;
	assert_int_equal(hub_auth_check(&in, &exp, &c, why, sizeof(why)), EMU_EAUTH);
	assert_int_equal(c, AUTH_SAS);
	free(tok);
	free(other);
	free(raw);
	json_decref(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(thumbprint_devices),
		cmocka_unit_test(expired_thumbprint_device),
		cmocka_unit_test(ca_devices),
		cmocka_unit_test(sas_devices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
