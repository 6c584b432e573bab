/* Unit tests for enrollments/enrollment (documents, defaults, views, etags) and
 * enrollments/enr_store (persistence, etag rules, queries, bulk operations). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "etag.h"
#include "store.h"
#include "textenc.h"

#include "certs/x509.h"
#include "enrollments/enr_store.h"
#include "enrollments/enrollment.h"
#include "testcerts.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Certificates shared by all tests. */
static struct testcert *root, *inter, *leaf, *leaf2;
static char *leaf_pem, *leaf2_pem, *root_pem, *leaf_b64;

static int known_policy(const char *name, void *arg)
{
	return strcmp(name, "issue-p256") == 0;
}

static const struct enr_validate_opts policy_opts = {known_policy, NULL};

static int group_setup(void **state)
{
	root = testcert_root("Contoso Root");
	inter = testcert_ca("Contoso Intermediate", root);
	leaf = testcert_leaf("dev1", inter);
	leaf2 = testcert_self_signed("dev1");
	assert_non_null(root);
	assert_non_null(inter);
	assert_non_null(leaf);
	assert_non_null(leaf2);
	leaf_pem = testcert_pem(leaf);
	leaf2_pem = testcert_pem(leaf2);
	root_pem = testcert_pem(root);
	leaf_b64 = testcert_b64der(leaf);
	assert_non_null(leaf_pem);
	assert_non_null(leaf2_pem);
	assert_non_null(root_pem);
	assert_non_null(leaf_b64);
	return 0;
}

static int group_teardown(void **state)
{
	testcert_free(root);
	testcert_free(inter);
	testcert_free(leaf);
	testcert_free(leaf2);
	free(leaf_pem);
	free(leaf2_pem);
	free(root_pem);
	free(leaf_b64);
	return 0;
}

static json_t *x509_individual(const char *id, const char *cert)
{
	json_t *j =
	    json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "registrationId", id, "attestation", "type",
	              "x509", "x509", "clientCertificates", "primary", "certificate", cert);
	assert_non_null(j);
	return j;
}

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (!j)
		fail_msg("bad test JSON: %s: %s", err.text, text);
	return j;
}

static struct enrollment *parse_ok(enum enr_kind kind, const char *path_id, json_t *body)
{
	struct enrollment *e = NULL;
	char why[256] = "";
	int rc = enrollment_from_json(kind, path_id, body, &policy_opts, &e, why, sizeof(why));

	if (rc != EMU_OK)
		fail_msg("unexpected failure (%d): %s", rc, why);
	assert_non_null(e);
	return e;
}

/* Expects EMU_EINVAL with a reason containing want. */
static void parse_bad(enum enr_kind kind, const char *path_id, json_t *body, const char *want)
{
	struct enrollment *e = NULL;
	char why[256] = "";
	int rc = enrollment_from_json(kind, path_id, body, &policy_opts, &e, why, sizeof(why));

	assert_int_equal(rc, EMU_EINVAL);
	assert_null(e);
	if (!strstr(why, want))
		fail_msg("reason '%s' does not contain '%s'", why, want);
}

/* ---- enrollment documents ---- */

static void test_individual_x509_defaults(void **state)
{
	json_t *body = x509_individual("Dev1", leaf_pem);
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	const json_t *d = e->doc;

	assert_int_equal(e->kind, ENR_INDIVIDUAL);
	assert_string_equal(e->id, "Dev1"); /* spelling kept */
	assert_null(e->device_id);
	assert_int_equal(e->att, ENR_ATT_X509);
	assert_int_equal(sk_X509_num(e->certs), 1);
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), leaf->cert), 0);
	assert_true(e->enabled);
	assert_string_equal(e->allocation_policy, "hashed");
	assert_true(e->update_hub_assignment);
	assert_true(e->migrate_device_data);
	assert_false(e->iot_edge);
	assert_null(e->credential_policy);
	assert_null(e->etag);
	assert_string_equal(json_string_value(json_object_get(d, "provisioningStatus")), "enabled");
	assert_string_equal(json_string_value(json_object_get(d, "allocationPolicy")), "hashed");
	assert_true(json_is_false(json_object_get(json_object_get(d, "capabilities"), "iotEdge")));
	assert_true(json_is_true(
	    json_object_get(json_object_get(d, "reprovisionPolicy"), "updateHubAssignment")));
	assert_true(json_is_true(
	    json_object_get(json_object_get(d, "reprovisionPolicy"), "migrateDeviceData")));
	assert_null(json_object_get(d, "initialTwin"));
	enrollment_free(e);
	json_decref(body);
}

static void test_individual_full_document(void **state)
{
	json_t *body =
	    load("{\"registrationId\":\"dev-1.a_b:c\",\"deviceId\":\"device@1\","
	         "\"attestation\":{\"type\":\"symmetricKey\"},"
	         "\"capabilities\":{\"iotEdge\":true},"
	         "\"iotHubHostName\":\"hub1.local\",\"iotHubs\":[\"hub1.local\",\"hub2\"],"
	         "\"allocationPolicy\":\"GeoLatency\","
	         "\"initialTwin\":{\"tags\":{\"a\":1},\"properties\":{\"desired\":"
	         "{\"x\":1,\"$metadata\":{\"$lastUpdated\":\"t\"},\"$version\":4}}},"
	         "\"reprovisionPolicy\":{\"updateHubAssignment\":false},"
	         "\"provisioningStatus\":\"disabled\","
	         "\"optionalDeviceInformation\":{\"k\":\"v\"},"
	         "\"credentialPolicyName\":\"issue-p256\","
	         "\"unknownField\":1,\"etag\":\"\\\"client-sent\\\"\","
	         "\"createdDateTimeUtc\":\"1999-01-01T00:00:00Z\"}");
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, "DEV-1.A_B:C", body);
	const json_t *d = e->doc, *desired;

	assert_string_equal(e->device_id, "device@1");
	assert_true(e->iot_edge);
	assert_false(e->enabled);
	assert_false(e->update_hub_assignment);
	assert_true(e->migrate_device_data);
	assert_string_equal(e->allocation_policy, "geoLatency");
	assert_string_equal(e->iot_hub_host_name, "hub1.local");
	assert_int_equal(json_array_size(e->iot_hubs), 2);
	assert_string_equal(e->credential_policy, "issue-p256");
	desired = json_object_get(json_object_get(json_object_get(d, "initialTwin"), "properties"),
	                          "desired");
	assert_int_equal(json_integer_value(json_object_get(desired, "$version")), 4);
	assert_non_null(json_object_get(desired, "$metadata"));
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(d, "optionalDeviceInformation"), "k")),
	                    "v");
	/* unknown and read-only members are dropped */
	assert_null(json_object_get(d, "unknownField"));
	assert_null(json_object_get(d, "etag"));
	assert_null(json_object_get(d, "createdDateTimeUtc"));
	assert_null(e->etag);
	enrollment_free(e);
	json_decref(body);
}

static void test_certificate_forms(void **state)
{
	json_t *body;
	struct enrollment *e;
	char *b64pem = b64_encode(leaf_pem, strlen(leaf_pem));

	assert_non_null(b64pem);
	/* base64 DER */
	body = x509_individual("dev1", leaf_b64);
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), leaf->cert), 0);
	/* stored as PEM whatever the input form */
	assert_non_null(strstr(
	    json_string_value(json_object_get(
	        json_object_get(
	            json_object_get(json_object_get(json_object_get(e->doc, "attestation"), "x509"),
	                            "clientCertificates"),
	            "primary"),
	        "certificate")),
	    "-----BEGIN CERTIFICATE-----"));
	enrollment_free(e);
	json_decref(body);
	/* base64 of PEM text (the C service client's form) */
	body = x509_individual("dev1", b64pem);
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), leaf->cert), 0);
	enrollment_free(e);
	json_decref(body);
	free(b64pem);
}

static void test_api_view_certificate_info(void **state)
{
	json_t *body = load("{\"registrationId\":\"dev1\",\"attestation\":{\"type\":\"x509\","
	                    "\"x509\":{\"clientCertificates\":{\"primary\":{\"certificate\":\"\"},"
	                    "\"secondary\":{\"certificate\":\"\"}}}}}");
	json_t *cc = json_object_get(json_object_get(json_object_get(body, "attestation"), "x509"),
	                             "clientCertificates");
	struct enrollment *e;
	json_t *view, *prim, *sec;
	char fp[65];

	json_object_set_new(json_object_get(cc, "primary"), "certificate", json_string(leaf_pem));
	json_object_set_new(json_object_get(cc, "secondary"), "certificate",
	                    json_string(leaf2_pem));
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_int_equal(sk_X509_num(e->certs), 2);
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 1), leaf2->cert), 0);
	view = enrollment_to_api_json(e, 0);
	assert_non_null(view);
	cc = json_object_get(json_object_get(json_object_get(view, "attestation"), "x509"),
	                     "clientCertificates");
	prim = json_object_get(cc, "primary");
	sec = json_object_get(cc, "secondary");
	assert_null(json_object_get(prim, "certificate"));
	x509_thumbprint_sha256(leaf->cert, fp);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(prim, "info"), "sha256Thumbprint")),
	    fp);
	x509_thumbprint_sha256(leaf2->cert, fp);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(sec, "info"), "sha256Thumbprint")),
	    fp);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(prim, "info"), "subjectName")),
	    "CN=dev1");
	/* the stored document still has the certificates */
	{
		char *dump = json_dumps(e->doc, 0);
		assert_non_null(dump);
		assert_non_null(strstr(dump, "BEGIN CERTIFICATE"));
		free(dump);
		dump = json_dumps(view, 0);
		assert_null(strstr(dump, "BEGIN CERTIFICATE"));
		free(dump);
	}
	json_decref(view);
	enrollment_free(e);
	json_decref(body);
}

static void test_symmetric_keys(void **state)
{
	static const char *k16 = "AAECAwQFBgcICQoLDA0ODw=="; /* 16 bytes */
	json_t *body =
	    load("{\"registrationId\":\"sym1\",\"attestation\":{\"type\":\"symmetricKey\","
	         "\"symmetricKey\":{}}}");
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	unsigned char *bin = NULL;
	size_t n = 0;
	json_t *view, *att, *sk;

	/* generated: 64 random bytes each, distinct */
	assert_int_equal(strlen(e->sym_keys[0]), 88);
	assert_int_equal(b64_decode(e->sym_keys[0], 88, &bin, &n), EMU_OK);
	assert_int_equal(n, 64);
	free(bin);
	assert_string_not_equal(e->sym_keys[0], e->sym_keys[1]);

	/* GET hides them, PUT responses and attestationmechanism show them */
	view = enrollment_to_api_json(e, 0);
	sk = json_object_get(json_object_get(view, "attestation"), "symmetricKey");
	assert_true(json_is_object(sk));
	assert_int_equal(json_object_size(sk), 0);
	{
		char *dump = json_dumps(view, 0);
		assert_non_null(dump);
		assert_null(strstr(dump, e->sym_keys[0]));
		assert_null(strstr(dump, e->sym_keys[1]));
		free(dump);
	}
	json_decref(view);
	view = enrollment_to_api_json(e, 1);
	sk = json_object_get(json_object_get(view, "attestation"), "symmetricKey");
	assert_string_equal(json_string_value(json_object_get(sk, "primaryKey")), e->sym_keys[0]);
	assert_string_equal(json_string_value(json_object_get(sk, "secondaryKey")), e->sym_keys[1]);
	json_decref(view);
	att = enrollment_attestation_json(e);
	assert_string_equal(json_string_value(json_object_get(att, "type")), "symmetricKey");
	assert_string_equal(json_string_value(json_object_get(json_object_get(att, "symmetricKey"),
	                                                      "secondaryKey")),
	                    e->sym_keys[1]);
	json_decref(att);
	enrollment_free(e);
	json_decref(body);

	/* user keys: kept when valid, one side generated when absent */
	body = json_pack("{s:s,s:{s:s,s:{s:s}}}", "registrationId", "sym2", "attestation", "type",
	                 "symmetricKey", "symmetricKey", "primaryKey", k16);
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_string_equal(e->sym_keys[0], k16);
	assert_int_equal(strlen(e->sym_keys[1]), 88);
	enrollment_free(e);
	json_decref(body);

	/* 15 bytes, 65 bytes and not base64 are refused */
	body = load("{\"registrationId\":\"s\",\"attestation\":{\"type\":\"symmetricKey\","
	            "\"symmetricKey\":{\"primaryKey\":\"AAECAwQFBgcICQoLDA0O\"}}}");
	parse_bad(ENR_INDIVIDUAL, NULL, body,
	          "attestation.symmetricKey.primaryKey: must be "
	          "base64 of 16 to 64 bytes");
	json_decref(body);
	body = load("{\"registrationId\":\"s\",\"attestation\":{\"type\":\"symmetricKey\","
	            "\"symmetricKey\":{\"secondaryKey\":\"not base64!\"}}}");
	parse_bad(ENR_INDIVIDUAL, NULL, body, "attestation.symmetricKey.secondaryKey");
	json_decref(body);
	{
		unsigned char raw[65] = {0};
		char *b = b64_encode(raw, sizeof(raw));
		body = json_pack("{s:s,s:{s:s,s:{s:s}}}", "registrationId", "s", "attestation",
		                 "type", "symmetricKey", "symmetricKey", "primaryKey", b);
		parse_bad(ENR_INDIVIDUAL, NULL, body, "16 to 64 bytes");
		json_decref(body);
		free(b);
	}
}

static void test_groups(void **state)
{
	json_t *body = json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "enrollmentGroupId", "Contoso",
	                         "attestation", "type", "x509", "x509", "signingCertificates",
	                         "primary", "certificate", root_pem);
	struct enrollment *e = parse_ok(ENR_GROUP, "contoso", body);
	json_t *view;

	assert_int_equal(e->kind, ENR_GROUP);
	assert_string_equal(e->id, "Contoso");
	assert_int_equal(sk_X509_num(e->certs), 1);
	assert_null(e->ca_refs[0]);
	assert_non_null(json_object_get(e->doc, "enrollmentGroupId"));
	assert_null(json_object_get(e->doc, "registrationId"));
	view = enrollment_to_api_json(e, 0);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(
	            json_object_get(
	                json_object_get(
	                    json_object_get(json_object_get(view, "attestation"), "x509"),
	                    "signingCertificates"),
	                "primary"),
	            "info"),
	        "subjectName")),
	    "CN=Contoso Root");
	json_decref(view);
	enrollment_free(e);
	json_decref(body);

	body = load("{\"enrollmentGroupId\":\"refs\",\"attestation\":{\"type\":\"x509\",\"x509\":"
	            "{\"caReferences\":{\"primary\":\"myca\",\"secondary\":\"otherca\"}}}}");
	e = parse_ok(ENR_GROUP, NULL, body);
	assert_null(e->certs);
	assert_string_equal(e->ca_refs[0], "myca");
	assert_string_equal(e->ca_refs[1], "otherca");
	view = enrollment_to_api_json(e, 0);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(json_object_get(view, "attestation"), "x509"),
	                        "caReferences"),
	        "primary")),
	    "myca");
	json_decref(view);
	enrollment_free(e);
	json_decref(body);

	body =
	    load("{\"enrollmentGroupId\":\"symgrp\",\"attestation\":{\"type\":\"symmetricKey\"}}");
	e = parse_ok(ENR_GROUP, NULL, body);
	assert_int_equal(e->att, ENR_ATT_SYMMETRIC_KEY);
	assert_non_null(e->sym_keys[0]);
	enrollment_free(e);
	json_decref(body);
}

/* Unused alternatives serialised as nulls (as some service clients do) are ignored. */
static void test_null_alternatives(void **state)
{
	json_t *body = x509_individual("dev1", leaf_pem);
	json_t *x = json_object_get(json_object_get(body, "attestation"), "x509");
	struct enrollment *e;

	json_object_set_new(x, "signingCertificates", json_null());
	json_object_set_new(x, "caReferences", json_pack("{s:n,s:n}", "primary", "secondary"));
	json_object_set_new(json_object_get(body, "attestation"), "symmetricKey", json_null());
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_int_equal(sk_X509_num(e->certs), 1);
	assert_null(json_object_get(json_object_get(json_object_get(e->doc, "attestation"), "x509"),
	                            "caReferences"));
	enrollment_free(e);
	json_decref(body);

	body = json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}},s:{s:n},s:{s:n}}}}", "enrollmentGroupId", "g",
	                 "attestation", "type", "x509", "x509", "signingCertificates", "primary",
	                 "certificate", root_pem, "caReferences", "primary", "clientCertificates",
	                 "primary");
	assert_non_null(body);
	e = parse_ok(ENR_GROUP, NULL, body);
	assert_int_equal(sk_X509_num(e->certs), 1);
	assert_null(e->ca_refs[0]);
	enrollment_free(e);
	json_decref(body);
}

struct bad_case {
	enum enr_kind kind;
	const char *path_id;
	const char *json;
	const char *want;
};

static void test_invalid_documents(void **state)
{
	static const struct bad_case cases[] = {
	    {ENR_INDIVIDUAL, NULL, "[]", "must be a JSON object"},
	    {ENR_INDIVIDUAL, NULL, "{\"attestation\":{\"type\":\"none\"}}",
	     "registrationId: required"},
	    {ENR_INDIVIDUAL, NULL, "{\"registrationId\":5,\"attestation\":{\"type\":\"none\"}}",
	     "registrationId: must be a string"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"dev 1\",\"attestation\":{\"type\":"
	     "\"none\"}}",
	     "registrationId 'dev 1': character ' ' is not allowed"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"dev1.\",\"attestation\":{\"type\":"
	     "\"none\"}}",
	     "must end with a letter, a digit or '-'"},
	    {ENR_INDIVIDUAL, "dev1",
	     "{\"registrationId\":\"dev2\",\"attestation\":{\"type\":"
	     "\"none\"}}",
	     "registrationId 'dev2' in the body does not match 'dev1' in the path"},
	    {ENR_INDIVIDUAL, "bad/id", "{\"attestation\":{\"type\":\"none\"}}",
	     "registrationId 'bad/id' in the path"},
	    {ENR_INDIVIDUAL, NULL, "{\"registrationId\":\"d\"}", "attestation: required"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":"
	     "\"magic\"}}",
	     "attestation.type: 'magic' is not one of"},
	    {ENR_INDIVIDUAL, NULL, "{\"registrationId\":\"d\",\"attestation\":{}}",
	     "attestation.type: required"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{\"clientCertificates\":{\"primary\":{\"certificate\":\"hello\"}}}}}",
	     "attestation.x509.clientCertificates.primary.certificate: not a PEM or base64 "
	     "DER certificate"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{\"clientCertificates\":{}}}}",
	     "attestation.x509.clientCertificates.primary: required"},
	    {ENR_INDIVIDUAL, NULL, "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"x509\"}}",
	     "attestation.x509: required"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{\"caReferences\":{\"primary\":\"a\"}}}}",
	     "attestation.x509.caReferences: not allowed in an individual enrollment"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{\"clientCertificates\":{\"primary\":{\"certificate\":\"x\"}}}}}",
	     "attestation.x509.clientCertificates: not allowed in an enrollment group"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{\"caReferences\":{\"primary\":\"a\"},\"signingCertificates\":"
	     "{\"primary\":{\"certificate\":\"x\"}}}}}",
	     "signingCertificates and caReferences cannot both be set"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{}}}",
	     "signingCertificates or caReferences is required"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"attestation\":{\"type\":\"x509\","
	     "\"x509\":{\"caReferences\":{\"secondary\":\"a\"}}}}",
	     "attestation.x509.caReferences.primary: required"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"attestation\":{\"type\":\"tpm\","
	     "\"tpm\":{\"endorsementKey\":\"AAAA\"}}}",
	     "tpm is not supported for enrollment groups"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"registrationId\":\"d\","
	     "\"attestation\":{\"type\":\"none\"}}",
	     "registrationId: not allowed in an "
	     "enrollment group"},
	    {ENR_GROUP, NULL,
	     "{\"enrollmentGroupId\":\"g\",\"deviceId\":\"d\","
	     "\"attestation\":{\"type\":\"none\"}}",
	     "deviceId: not allowed"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"enrollmentGroupId\":\"g\","
	     "\"attestation\":{\"type\":\"none\"}}",
	     "enrollmentGroupId: not allowed"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"provisioningStatus\":5}",
	     "provisioningStatus: must be a string"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"provisioningStatus\":\"paused\"}",
	     "provisioningStatus: 'paused' is not enabled "
	     "or disabled"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"iotHubs\":\"x\"}",
	     "iotHubs: must be an array"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"iotHubs\":[\"a\",3]}",
	     "iotHubs[1]"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"allocationPolicy\":\"random\"}",
	     "allocationPolicy: 'random' is not one of"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"allocationPolicy\":\"custom\"}",
	     "customAllocationDefinition: required"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"capabilities\":{\"iotEdge\":\"yes\"}}",
	     "capabilities.iotEdge: must be true or "
	     "false"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"reprovisionPolicy\":[]}",
	     "reprovisionPolicy: must be an object"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"initialTwin\":{\"properties\":{\"desired\":1}}}",
	     "initialTwin.properties.desired: must be an object"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"deviceId\":\"has space\"}",
	     "deviceId 'has space'"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"credentialPolicyName\":\"x\"}",
	     "credentialPolicyName 'x' is not a configured credential policy"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"namespaceName\":\"ns\",\"certificateAuthorityName\":\"ca\"}",
	     "must be set together (certificatePolicyName is missing)"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	     "\"namespaceName\":\"ns\",\"certificateAuthorityName\":\"ca\","
	     "\"certificatePolicyName\":\"nope\"}",
	     "certificatePolicyName 'nope' is not a configured credential policy"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"tpm\","
	     "\"tpm\":{}}}",
	     "attestation.tpm.endorsementKey: required"},
	    {ENR_INDIVIDUAL, NULL,
	     "{\"registrationId\":\"d\",\"attestation\":{\"type\":\"tpm\","
	     "\"tpm\":{\"endorsementKey\":\"@@@@\"}}}",
	     "attestation.tpm.endorsementKey: not valid base64"},
	};
	char longid[140];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *body = load(cases[i].json);
		parse_bad(cases[i].kind, cases[i].path_id, body, cases[i].want);
		json_decref(body);
	}
	memset(longid, 'a', 129);
	longid[129] = '\0';
	{
		json_t *body = json_pack("{s:s,s:{s:s}}", "registrationId", longid, "attestation",
		                         "type", "none");
		parse_bad(ENR_INDIVIDUAL, NULL, body, "must be 1 to 128 characters");
		json_decref(body);
	}
}

static void test_tpm_and_none(void **state)
{
	json_t *body = load("{\"registrationId\":\"t\",\"attestation\":{\"type\":\"TPM\",\"tpm\":"
	                    "{\"endorsementKey\":\"AAECAw==\",\"storageRootKey\":\"BAUG\"}}}");
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	json_t *att;

	assert_int_equal(e->att, ENR_ATT_TPM);
	att = enrollment_attestation_json(e);
	assert_string_equal(json_string_value(json_object_get(att, "type")), "tpm");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(att, "tpm"), "storageRootKey")),
	    "BAUG");
	json_decref(att);
	enrollment_free(e);
	json_decref(body);

	body = load("{\"registrationId\":\"n\",\"attestation\":{\"type\":\"none\"}}");
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_int_equal(e->att, ENR_ATT_NONE);
	enrollment_free(e);
	json_decref(body);
}

static void test_issuance_spellings(void **state)
{
	json_t *body = load("{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	                    "\"namespaceName\":\"ns\",\"certificateAuthorityName\":\"ica\","
	                    "\"certificatePolicyName\":\"issue-p256\"}");
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, NULL, body);

	assert_string_equal(e->credential_policy, "issue-p256");
	assert_string_equal(json_string_value(json_object_get(e->doc, "namespaceName")), "ns");
	assert_string_equal(json_string_value(json_object_get(e->doc, "certificateAuthorityName")),
	                    "ica");
	enrollment_free(e);
	json_decref(body);

	/* without a validator, no policy is configured */
	body = load("{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	            "\"credentialPolicyName\":\"issue-p256\"}");
	{
		char why[200];
		e = NULL;
		assert_int_equal(
		    enrollment_from_json(ENR_INDIVIDUAL, NULL, body, NULL, &e, why, sizeof(why)),
		    EMU_EINVAL);
		assert_non_null(strstr(why, "not a configured credential policy"));
	}
	json_decref(body);

	/* an empty name means no issuance */
	body = load("{\"registrationId\":\"d\",\"attestation\":{\"type\":\"none\"},"
	            "\"credentialPolicyName\":\"\"}");
	e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	assert_null(e->credential_policy);
	enrollment_free(e);
	json_decref(body);
}

static void test_id_rules(void **state)
{
	char why[128], key[ENR_ID_MAX + 1];

	assert_int_equal(enrollment_id_valid("a", why, sizeof(why)), EMU_OK);
	assert_int_equal(enrollment_id_valid("Dev-1.x_y:z", why, sizeof(why)), EMU_OK);
	assert_int_equal(enrollment_id_valid("ends-", why, sizeof(why)), EMU_OK);
	assert_int_equal(enrollment_id_valid("ends_", why, sizeof(why)), EMU_EINVAL);
	assert_int_equal(enrollment_id_valid("ends:", why, sizeof(why)), EMU_EINVAL);
	assert_int_equal(enrollment_id_valid("", why, sizeof(why)), EMU_EINVAL);
	assert_int_equal(enrollment_id_valid("caf\xc3\xa9", why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "0xc3"));
	assert_int_equal(enrollment_id_valid(NULL, NULL, 0), EMU_EINVAL);
	enrollment_id_key("MiXeD-Case.1", key);
	assert_string_equal(key, "mixed-case.1");
}

/* The comparison itself is etag.c's (test_etag); this checks the enrollment's
 * etag shape and that the wrapper dps still calls answers the same. */
static void test_etags(void **state)
{
	json_t *body = x509_individual("dev1", leaf_pem);
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, NULL, body);
	char first[ENR_ETAG_LEN], unquoted[64];

	assert_int_equal(enrollment_stamp(e, NULL), EMU_OK);
	assert_int_equal(strlen(e->etag), ENR_ETAG_LEN - 1);
	assert_int_equal(e->etag[0], '"');
	assert_int_equal(e->etag[ENR_ETAG_LEN - 2], '"');
	assert_int_equal(e->etag[9], '-');
	snprintf(first, sizeof(first), "%s", e->etag);
	snprintf(unquoted, sizeof(unquoted), "%.36s", first + 1);
	assert_int_equal(enrollment_stamp(e, NULL), EMU_OK);
	assert_string_not_equal(e->etag, first);

	assert_int_equal(etag_matches(first, unquoted), 1); /* Node sends it bare */
	assert_int_equal(etag_matches(first, " \"*\" "), 1);
	assert_int_equal(etag_matches(NULL, "*"), 1);
	assert_int_equal(etag_matches(e->etag, first), 0);
	assert_int_equal(etag_matches(first, NULL), 0);
	assert_int_equal(etag_matches(first, ""), 0);
	assert_int_equal(etag_matches(NULL, first), 0);
	enrollment_free(e);
	json_decref(body);
}

static void test_stamp_and_stored_roundtrip(void **state)
{
	json_t *body = x509_individual("dev1", leaf_pem);
	struct enrollment *e = parse_ok(ENR_INDIVIDUAL, NULL, body), *s = NULL;
	const char *created;

	assert_int_equal(enrollment_stamp(e, "2020-01-01T00:00:00.0000000Z"), EMU_OK);
	assert_non_null(e->etag);
	assert_string_equal(json_string_value(json_object_get(e->doc, "etag")), e->etag);
	created = json_string_value(json_object_get(e->doc, "createdDateTimeUtc"));
	assert_string_equal(created, "2020-01-01T00:00:00.0000000Z");
	assert_int_equal(
	    strlen(json_string_value(json_object_get(e->doc, "lastUpdatedDateTimeUtc"))), 28);
	assert_int_equal(enrollment_from_stored(ENR_INDIVIDUAL, e->doc, &s), EMU_OK);
	assert_string_equal(s->etag, e->etag);
	assert_true(json_equal(s->doc, e->doc));
	assert_true(enrollment_same_content(s, e));
	assert_int_equal(X509_cmp(sk_X509_value(s->certs, 0), leaf->cert), 0);
	enrollment_free(s);

	/* a stored document without etag is not a stored document */
	json_object_del(e->doc, "etag");
	s = NULL;
	assert_int_equal(enrollment_from_stored(ENR_INDIVIDUAL, e->doc, &s), EMU_ESTORE);
	assert_null(s);
	enrollment_free(e);
	json_decref(body);
}

/* ---- enr_store ---- */

struct fx {
	char dir[64];
	struct store *st;
	struct enr_store *es;
	struct store_txn *txn;
};

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dpsemu-enr-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, 32, &f->st), EMU_OK);
	assert_int_equal(enr_store_new(f->st, &policy_opts, &f->es), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 1, &f->txn), EMU_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_txn_abort(f->txn);
	enr_store_free(f->es);
	store_close(f->st);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static uint64_t generation(struct fx *f)
{
	uint64_t g = 99;

	assert_int_equal(enr_store_generation(f->es, f->txn, &g), EMU_OK);
	return g;
}

static void test_store_put_rules(void **state)
{
	struct fx *f = *state;
	json_t *body = x509_individual("Dev1", leaf_pem);
	struct enrollment *e = NULL, *g = NULL;
	char why[256], etag1[ENR_ETAG_LEN], created[40];

	assert_int_equal(generation(f), 0);
	/* create */
	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, "dev1", body, NULL, 0, &e,
	                               why, sizeof(why)),
	                 EMU_OK);
	assert_string_equal(e->id, "Dev1");
	assert_non_null(e->etag);
	snprintf(etag1, sizeof(etag1), "%s", e->etag);
	snprintf(created, sizeof(created), "%s",
	         json_string_value(json_object_get(e->doc, "createdDateTimeUtc")));
	enrollment_free(e);
	assert_int_equal(generation(f), 1);

	/* create again: conflict */
	e = NULL;
	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, "DEV1", body, NULL, 0, &e,
	                               why, sizeof(why)),
	                 EMU_EEXIST);
	assert_null(e);
	assert_non_null(strstr(why, "already exists"));
	assert_int_equal(generation(f), 1);

	/* found case-insensitively */
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_INDIVIDUAL, "DEV1", &g), EMU_OK);
	assert_string_equal(g->etag, etag1);
	enrollment_free(g);
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_GROUP, "dev1", &g), EMU_ENOTFOUND);
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_INDIVIDUAL, "no such!", &g),
	                 EMU_ENOTFOUND);

	/* wrong etag: 412; matching etag without quotes: replaced with a new etag */
	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, "dev1", body,
	                               "\"00000000-0000-0000-0000-000000000000\"", 0, NULL, why,
	                               sizeof(why)),
	                 EMU_EPRECOND);
	{
		char bare[64];
		snprintf(bare, sizeof(bare), "%.36s", etag1 + 1);
		json_object_set_new(body, "provisioningStatus", json_string("disabled"));
		assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, "dev1", body, bare, 0,
		                               &e, why, sizeof(why)),
		                 EMU_OK);
	}
	assert_string_not_equal(e->etag, etag1);
	assert_false(e->enabled);
	assert_string_equal(json_string_value(json_object_get(e->doc, "createdDateTimeUtc")),
	                    created);
	enrollment_free(e);
	assert_int_equal(generation(f), 2);

	/* "*" upserts; an etag on a missing record is 404 */
	{
		json_t *b2 = x509_individual("dev2", leaf_pem);
		assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, b2, "*", 0,
		                               NULL, why, sizeof(why)),
		                 EMU_OK);
		json_decref(b2);
	}
	assert_int_equal(generation(f), 3);
	{
		json_t *b3 = x509_individual("dev3", leaf_pem);
		assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, b3, etag1, 0,
		                               NULL, why, sizeof(why)),
		                 EMU_ENOTFOUND);
		assert_non_null(strstr(why, "does not exist"));
		json_decref(b3);
	}
	/* an invalid body writes nothing */
	{
		json_t *bad =
		    load("{\"registrationId\":\"dev4\",\"attestation\":{\"type\":\"x\"}}");
		uint64_t g0 = generation(f);
		assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, bad, "*", 0,
		                               NULL, why, sizeof(why)),
		                 EMU_EINVAL);
		assert_non_null(strstr(why, "attestation.type"));
		assert_int_equal(generation(f), g0);
		json_decref(bad);
	}
	json_decref(body);
}

static void test_store_keep_unchanged(void **state)
{
	struct fx *f = *state;
	json_t *body = x509_individual("dev1", leaf_pem);
	struct enrollment *e = NULL;
	char why[256], etag1[ENR_ETAG_LEN];

	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, body, "*",
	                               ENR_PUT_KEEP_UNCHANGED, &e, why, sizeof(why)),
	                 EMU_OK);
	snprintf(etag1, sizeof(etag1), "%s", e->etag);
	enrollment_free(e);
	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, body, "*",
	                               ENR_PUT_KEEP_UNCHANGED, &e, why, sizeof(why)),
	                 EMU_OK);
	assert_string_equal(e->etag, etag1);
	enrollment_free(e);
	assert_int_equal(generation(f), 1);
	/* without the flag every write is a new version */
	assert_int_equal(
	    enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, body, "*", 0, &e, why, sizeof(why)),
	    EMU_OK);
	assert_string_not_equal(e->etag, etag1);
	enrollment_free(e);
	assert_int_equal(generation(f), 2);
	json_decref(body);
}

static void test_store_secrets_kept_on_update(void **state)
{
	struct fx *f = *state;
	json_t *body =
	    load("{\"registrationId\":\"sym\",\"attestation\":{\"type\":\"symmetricKey\"}}");
	struct enrollment *e = NULL, *e2 = NULL;
	json_t *view;
	char why[256];

	assert_int_equal(
	    enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, body, NULL, 0, &e, why, sizeof(why)),
	    EMU_OK);
	/* GET view (no keys) sent back with a change: the keys survive */
	view = enrollment_to_api_json(e, 0);
	json_object_set_new(view, "provisioningStatus", json_string("disabled"));
	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, view, e->etag, 0, &e2,
	                               why, sizeof(why)),
	                 EMU_OK);
	assert_string_equal(e2->sym_keys[0], e->sym_keys[0]);
	assert_string_equal(e2->sym_keys[1], e->sym_keys[1]);
	json_decref(view);
	enrollment_free(e);
	enrollment_free(e2);
	json_decref(body);

	/* certificates: the info-only view is matched back by thumbprint */
	body = x509_individual("x1", leaf_pem);
	assert_int_equal(
	    enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, body, NULL, 0, &e, why, sizeof(why)),
	    EMU_OK);
	view = enrollment_to_api_json(e, 0);
	json_object_set_new(view, "iotHubs", json_pack("[s]", "hubA"));
	assert_int_equal(
	    enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, view, "*", 0, &e2, why, sizeof(why)),
	    EMU_OK);
	assert_int_equal(X509_cmp(sk_X509_value(e2->certs, 0), leaf->cert), 0);
	assert_int_equal(json_array_size(e2->iot_hubs), 1);
	json_decref(view);
	enrollment_free(e);
	enrollment_free(e2);
	/* but an info-only entry on a new record has no certificate */
	view = load(
	    "{\"registrationId\":\"x2\",\"attestation\":{\"type\":\"x509\",\"x509\":"
	    "{\"clientCertificates\":{\"primary\":{\"info\":{\"sha256Thumbprint\":\"AA\"}}}}}}");
	assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, view, NULL, 0, NULL,
	                               why, sizeof(why)),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "primary.certificate: required"));
	json_decref(view);
	json_decref(body);
}

static void test_store_delete(void **state)
{
	struct fx *f = *state;
	json_t *body = load("{\"enrollmentGroupId\":\"Grp\",\"attestation\":{\"type\":\"x509\","
	                    "\"x509\":{\"caReferences\":{\"primary\":\"ca\"}}}}");
	struct enrollment *e = NULL;
	char why[256];

	assert_int_equal(
	    enr_store_put(f->es, f->txn, ENR_GROUP, "grp", body, NULL, 0, &e, why, sizeof(why)),
	    EMU_OK);
	assert_int_equal(enr_store_delete(f->es, f->txn, ENR_GROUP, "GRP", "\"nope\""),
	                 EMU_EPRECOND);
	assert_int_equal(enr_store_delete(f->es, f->txn, ENR_INDIVIDUAL, "grp", NULL),
	                 EMU_ENOTFOUND);
	assert_int_equal(enr_store_delete(f->es, f->txn, ENR_GROUP, "GRP", e->etag), EMU_OK);
	assert_int_equal(enr_store_delete(f->es, f->txn, ENR_GROUP, "grp", NULL), EMU_ENOTFOUND);
	assert_int_equal(enr_store_delete(f->es, f->txn, ENR_GROUP, "grp", "*"), EMU_ENOTFOUND);
	assert_int_equal(generation(f), 2);
	enrollment_free(e);
	json_decref(body);
}

static void test_store_query_pages(void **state)
{
	struct fx *f = *state;
	char id[16], why[256];
	json_t *items = NULL;
	char *next = NULL, *cont = NULL;
	size_t total = 0;
	int pages = 0;

	for (int i = 0; i < 7; i++) {
		json_t *b;
		snprintf(id, sizeof(id), "Sym%02d", 6 - i);
		b = json_pack("{s:s,s:{s:s}}", "registrationId", id, "attestation", "type",
		              "symmetricKey");
		assert_int_equal(enr_store_put(f->es, f->txn, ENR_INDIVIDUAL, NULL, b, NULL, 0,
		                               NULL, why, sizeof(why)),
		                 EMU_OK);
		json_decref(b);
	}
	do {
		assert_int_equal(
		    enr_store_query(f->es, f->txn, ENR_INDIVIDUAL, cont, 3, &items, &next), EMU_OK);
		for (size_t i = 0; i < json_array_size(items); i++) {
			json_t *it = json_array_get(items, i);
			char want[16];
			snprintf(want, sizeof(want), "Sym%02zu", total + i);
			assert_string_equal(
			    json_string_value(json_object_get(it, "registrationId")), want);
			/* keys never leave in a query */
			assert_int_equal(json_object_size(json_object_get(
			                     json_object_get(it, "attestation"), "symmetricKey")),
			                 0);
		}
		total += json_array_size(items);
		pages++;
		json_decref(items);
		free(cont);
		cont = next;
	} while (cont);
	assert_int_equal(total, 7);
	assert_int_equal(pages, 3);

	/* an exact fit has no continuation */
	assert_int_equal(enr_store_query(f->es, f->txn, ENR_INDIVIDUAL, NULL, 7, &items, &next),
	                 EMU_OK);
	assert_int_equal(json_array_size(items), 7);
	assert_null(next);
	json_decref(items);
	assert_int_equal(enr_store_query(f->es, f->txn, ENR_GROUP, NULL, 0, &items, &next), EMU_OK);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);
	assert_int_equal(
	    enr_store_query(f->es, f->txn, ENR_INDIVIDUAL, "bad token!", 3, &items, &next),
	    EMU_EINVAL);
	{
		size_t n = 0;
		assert_int_equal(enr_store_count(f->es, f->txn, ENR_INDIVIDUAL, &n), EMU_OK);
		assert_int_equal(n, 7);
	}
}

static void test_store_bulk(void **state)
{
	struct fx *f = *state;
	json_t *op, *res = NULL, *errs;
	struct enrollment *e = NULL;
	char why[256];

	op = load("{\"mode\":\"create\",\"enrollments\":["
	          "{\"registrationId\":\"b1\",\"attestation\":{\"type\":\"symmetricKey\"}},"
	          "{\"registrationId\":\"b2\",\"attestation\":{\"type\":\"bogus\"}},"
	          "{\"registrationId\":\"b3\",\"attestation\":{\"type\":\"none\"}}]}");
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_OK);
	assert_true(json_is_false(json_object_get(res, "isSuccessful")));
	errs = json_object_get(res, "errors");
	assert_int_equal(json_array_size(errs), 1);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(errs, 0), "registrationId")), "b2");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "errorCode")),
	                 400004);
	assert_non_null(
	    strstr(json_string_value(json_object_get(json_array_get(errs, 0), "errorStatus")),
	           "attestation.type"));
	json_decref(res);
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_INDIVIDUAL, "b3", &e), EMU_OK);
	enrollment_free(e);
	/* create again: conflicts */
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_OK);
	errs = json_object_get(res, "errors");
	assert_int_equal(json_array_size(errs), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "errorCode")),
	                 409201);
	json_decref(res);
	json_decref(op);

	/* updateIfMatchETag uses each item's etag */
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_INDIVIDUAL, "b1", &e), EMU_OK);
	op = json_pack("{s:s,s:[{s:s,s:s,s:{s:s}},{s:s,s:s,s:{s:s}},{s:s,s:{s:s}}]}", "mode",
	               "updateIfMatchETag", "enrollments", "registrationId", "b1", "etag", e->etag,
	               "attestation", "type", "none", "registrationId", "b3", "etag", "\"stale\"",
	               "attestation", "type", "none", "registrationId", "b3", "attestation", "type",
	               "none");
	enrollment_free(e);
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_OK);
	errs = json_object_get(res, "errors");
	assert_int_equal(json_array_size(errs), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "errorCode")),
	                 412201);
	assert_non_null(
	    strstr(json_string_value(json_object_get(json_array_get(errs, 1), "errorStatus")),
	           "etag: required"));
	json_decref(res);
	json_decref(op);
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_INDIVIDUAL, "b1", &e), EMU_OK);
	assert_int_equal(e->att, ENR_ATT_NONE);
	enrollment_free(e);

	/* delete, including a missing one */
	op = load("{\"mode\":\"Delete\",\"enrollments\":[{\"registrationId\":\"b1\"},"
	          "{\"registrationId\":\"zz\"}]}");
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_OK);
	errs = json_object_get(res, "errors");
	assert_int_equal(json_array_size(errs), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "errorCode")),
	                 404201);
	json_decref(res);
	json_decref(op);
	assert_int_equal(enr_store_get(f->es, f->txn, ENR_INDIVIDUAL, "b1", &e), EMU_ENOTFOUND);

	/* groups use enrollmentGroups / enrollmentGroupId */
	op = load("{\"mode\":\"update\",\"enrollmentGroups\":[{\"enrollmentGroupId\":\"g1\","
	          "\"attestation\":{\"type\":\"symmetricKey\"}}]}");
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_GROUP, op, &res, why, sizeof(why)),
	                 EMU_OK);
	assert_true(json_is_true(json_object_get(res, "isSuccessful")));
	assert_int_equal(json_array_size(json_object_get(res, "errors")), 0);
	json_decref(res);
	json_decref(op);

	/* malformed operations */
	op = load("{\"mode\":\"merge\",\"enrollments\":[{}]}");
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "mode: 'merge'"));
	json_decref(op);
	op = load("{\"mode\":\"create\",\"enrollments\":[{},{},{},{},{},{},{},{},{},{},{}]}");
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "at most 10"));
	json_decref(op);
	op = load("{\"mode\":\"create\",\"enrollmentGroups\":[{}]}");
	assert_int_equal(enr_store_bulk(f->es, f->txn, ENR_INDIVIDUAL, op, &res, why, sizeof(why)),
	                 EMU_EINVAL);
	assert_non_null(strstr(why, "enrollments: required"));
	json_decref(op);
}

static void test_store_load_groups_and_persistence(void **state)
{
	struct fx *f = *state;
	struct enr_list *l = NULL;
	char why[256];
	static const char *ids[] = {"zeta", "Alpha", "mid"};

	for (int i = 0; i < 3; i++) {
		json_t *b = json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "enrollmentGroupId", ids[i],
		                      "attestation", "type", "x509", "x509", "signingCertificates",
		                      "primary", "certificate", root_pem);
		assert_int_equal(enr_store_put(f->es, f->txn, ENR_GROUP, NULL, b, NULL, 0, NULL,
		                               why, sizeof(why)),
		                 EMU_OK);
		json_decref(b);
	}
	assert_int_equal(store_txn_commit(f->txn), EMU_OK);
	f->txn = NULL;

	/* reopen everything: state survives */
	enr_store_free(f->es);
	store_close(f->st);
	assert_int_equal(store_open(f->dir, 32, &f->st), EMU_OK);
	assert_int_equal(enr_store_new(f->st, NULL, &f->es), EMU_OK);
	assert_int_equal(store_txn_begin(f->st, 0, &f->txn), EMU_OK);
	assert_int_equal(enr_store_load_groups(f->es, f->txn, &l), EMU_OK);
	assert_int_equal(l->count, 3);
	assert_int_equal(l->generation, 3);
	assert_string_equal(l->items[0]->id, "Alpha");
	assert_string_equal(l->items[1]->id, "mid");
	assert_string_equal(l->items[2]->id, "zeta");
	assert_int_equal(X509_cmp(sk_X509_value(l->items[0]->certs, 0), root->cert), 0);
	enr_list_free(l);
	enr_list_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_individual_x509_defaults),
	    cmocka_unit_test(test_individual_full_document),
	    cmocka_unit_test(test_certificate_forms),
	    cmocka_unit_test(test_api_view_certificate_info),
	    cmocka_unit_test(test_symmetric_keys),
	    cmocka_unit_test(test_groups),
	    cmocka_unit_test(test_null_alternatives),
	    cmocka_unit_test(test_invalid_documents),
	    cmocka_unit_test(test_tpm_and_none),
	    cmocka_unit_test(test_issuance_spellings),
	    cmocka_unit_test(test_id_rules),
	    cmocka_unit_test(test_etags),
	    cmocka_unit_test(test_stamp_and_stored_roundtrip),
	    cmocka_unit_test_setup_teardown(test_store_put_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_keep_unchanged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_secrets_kept_on_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_query_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_bulk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_load_groups_and_persistence, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
