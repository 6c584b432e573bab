/* Unit tests for enrollments/match: the X.509 attestation decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"

#include "enrollments/enrollment.h"
#include "enrollments/match.h"
#include "testcerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400L

/* root -> inter -> leaf (CN=dev1); a self-signed dev1; an unrelated root. */
static struct testcert *root, *inter, *leaf, *self1, *self1b, *other_root, *inter2;

static int group_setup(void **state)
{
	root = testcert_root("Contoso Root");
	inter = testcert_ca("Contoso Intermediate", root);
	inter2 = testcert_ca("Contoso Intermediate 2", root);
	leaf = testcert_leaf("dev1", inter);
	self1 = testcert_self_signed("dev1");
	self1b = testcert_self_signed("dev1");
	other_root = testcert_root("Fabrikam Root");
	assert_non_null(root);
	assert_non_null(inter);
	assert_non_null(inter2);
	assert_non_null(leaf);
	assert_non_null(self1);
	assert_non_null(self1b);
	assert_non_null(other_root);
	return 0;
}

static int group_teardown(void **state)
{
	testcert_free(root);
	testcert_free(inter);
	testcert_free(inter2);
	testcert_free(leaf);
	testcert_free(self1);
	testcert_free(self1b);
	testcert_free(other_root);
	return 0;
}

static struct enrollment *parse(enum enr_kind kind, json_t *body)
{
	struct enrollment *e = NULL;
	char why[256] = "";

	if (enrollment_from_json(kind, NULL, body, NULL, &e, why, sizeof(why)) != EMU_OK)
		fail_msg("test enrollment invalid: %s", why);
	json_decref(body);
	return e;
}

/* Individual X.509 enrollment with one or two client certificates. */
static struct enrollment *individual(const char *id, const struct testcert *prim,
                                     const struct testcert *sec, int enabled)
{
	char *p = testcert_pem(prim), *s = sec ? testcert_pem(sec) : NULL;
	json_t *body =
	    json_pack("{s:s,s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "registrationId", id,
	              "provisioningStatus", enabled ? "enabled" : "disabled", "attestation", "type",
	              "x509", "x509", "clientCertificates", "primary", "certificate", p);

	assert_non_null(body);
	if (s) {
		json_t *cc =
		    json_object_get(json_object_get(json_object_get(body, "attestation"), "x509"),
		                    "clientCertificates");
		assert_int_equal(
		    json_object_set_new(cc, "secondary", json_pack("{s:s}", "certificate", s)), 0);
	}
	free(p);
	free(s);
	return parse(ENR_INDIVIDUAL, body);
}

/* Group on a signing certificate. */
static struct enrollment *group_cert(const char *id, const struct testcert *ca, int enabled)
{
	char *p = testcert_pem(ca);
	json_t *body =
	    json_pack("{s:s,s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "enrollmentGroupId", id,
	              "provisioningStatus", enabled ? "enabled" : "disabled", "attestation", "type",
	              "x509", "x509", "signingCertificates", "primary", "certificate", p);

	free(p);
	return parse(ENR_GROUP, body);
}

/* Group on a CA reference. */
static struct enrollment *group_ref(const char *id, const char *ref, int enabled)
{
	json_t *body =
	    json_pack("{s:s,s:s,s:{s:s,s:{s:{s:s}}}}", "enrollmentGroupId", id,
	              "provisioningStatus", enabled ? "enabled" : "disabled", "attestation", "type",
	              "x509", "x509", "caReferences", "primary", ref);

	return parse(ENR_GROUP, body);
}

/* CA references: "verified-root" resolves to root; anything else is refused. */
struct resolver {
	int calls;
};

static X509 *resolve(const char *name, void *arg, char *why, size_t whylen)
{
	struct resolver *r = arg;

	r->calls++;
	if (strcmp(name, "verified-root") == 0) {
		X509_up_ref(root->cert);
		return root->cert;
	}
	if (strcmp(name, "unverified-root") == 0)
		snprintf(why, whylen, "CA reference '%s' is not verified", name);
	else
		snprintf(why, whylen, "CA reference '%s' is not registered", name);
	return NULL;
}

static void expect_reason(const struct match_result *r, const char *want)
{
	if (!strstr(r->reason, want))
		fail_msg("reason '%s' does not contain '%s'", r->reason, want);
}

static void test_individual_match(void **state)
{
	struct enrollment *e = individual("dev1", self1, NULL, 1);
	struct match_result r;

	match_x509("dev1", self1->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, e);
	assert_non_null(r.anchor);
	assert_int_equal(X509_cmp(r.anchor, self1->cert), 0);
	assert_int_equal(r.depth, 0);
	assert_int_equal(r.cls, AUTH_OK);
	match_result_clear(&r);
	assert_null(r.anchor);

	/* the CN comparison ignores case */
	match_x509("DEV1", self1->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	match_result_clear(&r);
	enrollment_free(e);

	/* secondary certificate */
	e = individual("dev1", self1b, self1, 1);
	match_x509("dev1", self1->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_int_equal(X509_cmp(r.anchor, self1->cert), 0);
	match_result_clear(&r);
	enrollment_free(e);
}

static void test_individual_mismatch_beats_groups(void **state)
{
	struct enrollment *e = individual("dev1", self1b, NULL, 1);
	struct enrollment *g = group_cert("inter-group", inter, 1);
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct match_result r;

	/* the leaf would verify against the group, but the individual enrollment decides */
	match_x509("dev1", leaf->cert, chain, e, &g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	assert_null(r.enrollment);
	assert_null(r.anchor);
	expect_reason(&r, "does not match enrollment 'dev1'");
	expect_reason(&r, "certificate thumbprint ");
	assert_int_equal(r.cls, AUTH_THUMBPRINT);
	match_result_clear(&r);
	enrollment_free(e);
	enrollment_free(g);
	sk_X509_pop_free(chain, X509_free);
}

static void test_individual_disabled(void **state)
{
	struct enrollment *e = individual("dev1", self1, NULL, 0);
	struct match_result r;

	match_x509("dev1", self1->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_DISABLED);
	assert_ptr_equal(r.enrollment, e);
	expect_reason(&r, "enrollment 'dev1' is disabled");
	assert_int_equal(r.cls, AUTH_DISABLED);
	match_result_clear(&r);
	enrollment_free(e);
}

static void test_individual_other_attestation(void **state)
{
	json_t *body = json_pack("{s:s,s:{s:s}}", "registrationId", "dev1", "attestation", "type",
	                         "symmetricKey");
	struct enrollment *e = parse(ENR_INDIVIDUAL, body);
	struct match_result r;

	match_x509("dev1", self1->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "uses symmetricKey attestation, not X.509");
	assert_int_equal(r.cls, AUTH_OTHER);
	match_result_clear(&r);
	enrollment_free(e);
}

static void test_individual_expired(void **state)
{
	struct testcert_opts o = {.pathlen = -1, .not_before = -10 * DAY, .not_after = -DAY};
	struct testcert *old = testcert_new("dev1", NULL, &o);
	struct enrollment *e;
	struct match_result r;

	assert_non_null(old);
	e = individual("dev1", old, NULL, 1);
	match_x509("dev1", old->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "certificate has expired");
	assert_int_equal(r.cls, AUTH_EXPIRED);
	match_result_clear(&r);
	/* valid when "now" is inside the validity period */
	match_x509("dev1", old->cert, NULL, e, NULL, 0, NULL, NULL, time(NULL) - 5 * DAY, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	match_result_clear(&r);
	enrollment_free(e);
	testcert_free(old);
}

static void test_cn_mismatch(void **state)
{
	struct enrollment *e = individual("dev2", self1, NULL, 1);
	struct match_result r;

	match_x509("dev2", self1->cert, NULL, e, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "leaf certificate CN 'dev1' does not match registration ID 'dev2'");
	assert_int_equal(r.cls, AUTH_CN_MISMATCH);
	match_result_clear(&r);
	enrollment_free(e);

	match_x509("dev1", NULL, NULL, NULL, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "no client certificate");
	assert_int_equal(r.cls, AUTH_NO_CERTIFICATE);
	match_result_clear(&r);
}

static void test_group_nearest_wins(void **state)
{
	struct enrollment *g[3];
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct match_result r;

	/* the root group comes first in the list: nearness beats order */
	g[0] = group_cert("a-root", root, 1);
	g[1] = group_cert("b-inter", inter, 1);
	g[2] = group_cert("c-other", other_root, 1);
	match_x509("dev1", leaf->cert, chain, NULL, g, 3, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[1]);
	assert_int_equal(X509_cmp(r.anchor, inter->cert), 0);
	assert_int_equal(r.depth, 1);
	match_result_clear(&r);

	/* and in the other order too */
	{
		struct enrollment *rev[2] = {g[1], g[0]};
		match_x509("dev1", leaf->cert, chain, NULL, rev, 2, NULL, NULL, 0, &r);
		assert_int_equal(r.outcome, MATCH_OK);
		assert_ptr_equal(r.enrollment, g[1]);
		match_result_clear(&r);
	}

	/* only the root group: depth 2 */
	match_x509("dev1", leaf->cert, chain, NULL, g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[0]);
	assert_int_equal(r.depth, 2);
	match_result_clear(&r);

	/* chain sent with the root and in reverse order still works */
	sk_X509_pop_free(chain, X509_free);
	chain = testcert_stack(2, root->cert, inter->cert);
	match_x509("dev1", leaf->cert, chain, NULL, g, 3, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[1]);
	match_result_clear(&r);

	for (int i = 0; i < 3; i++)
		enrollment_free(g[i]);
	sk_X509_pop_free(chain, X509_free);
}

static void test_group_tie_first_wins(void **state)
{
	struct enrollment *g[2];
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct match_result r;

	g[0] = group_cert("first", inter, 1);
	g[1] = group_cert("second", inter, 0);
	match_x509("dev1", leaf->cert, chain, NULL, g, 2, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[0]);
	match_result_clear(&r);
	enrollment_free(g[0]);
	enrollment_free(g[1]);
	sk_X509_pop_free(chain, X509_free);
}

static void test_group_disabled_nearest_refuses(void **state)
{
	struct enrollment *g[2];
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct match_result r;

	g[0] = group_cert("root-enabled", root, 1);
	g[1] = group_cert("inter-disabled", inter, 0);
	match_x509("dev1", leaf->cert, chain, NULL, g, 2, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_DISABLED);
	assert_ptr_equal(r.enrollment, g[1]);
	expect_reason(&r, "enrollment group 'inter-disabled' is disabled");
	assert_int_equal(r.cls, AUTH_DISABLED);
	match_result_clear(&r);
	{
		struct enrollment *rev[2] = {g[1], g[0]};
		match_x509("dev1", leaf->cert, chain, NULL, rev, 2, NULL, NULL, 0, &r);
		assert_int_equal(r.outcome, MATCH_DISABLED);
		assert_ptr_equal(r.enrollment, g[1]);
		match_result_clear(&r);
	}
	enrollment_free(g[0]);
	enrollment_free(g[1]);
	sk_X509_pop_free(chain, X509_free);
}

static void test_group_ca_references(void **state)
{
	struct enrollment *g[2];
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct resolver res = {0};
	struct match_result r;

	g[0] = group_ref("by-ref", "verified-root", 1);
	match_x509("dev1", leaf->cert, chain, NULL, g, 1, resolve, &res, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[0]);
	assert_int_equal(X509_cmp(r.anchor, root->cert), 0);
	assert_int_equal(r.depth, 2);
	assert_int_equal(res.calls, 1);
	match_result_clear(&r);
	enrollment_free(g[0]);

	/* unverified CA: refused, and the reason says so */
	g[0] = group_ref("unverified", "unverified-root", 1);
	match_x509("dev1", leaf->cert, chain, NULL, g, 1, resolve, &res, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "CA reference 'unverified-root' is not verified");
	expect_reason(&r, "no enrollment group CA is in the certificate chain");
	assert_int_equal(r.cls, AUTH_CHAIN);
	match_result_clear(&r);

	/* without a resolver every reference is unusable */
	match_x509("dev1", leaf->cert, chain, NULL, g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "unverified-root");
	match_result_clear(&r);

	/* an unverified reference does not stop a verified group from matching */
	g[1] = group_ref("verified", "verified-root", 1);
	match_x509("dev1", leaf->cert, chain, NULL, g, 2, resolve, &res, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[1]);
	match_result_clear(&r);
	enrollment_free(g[0]);
	enrollment_free(g[1]);
	sk_X509_pop_free(chain, X509_free);
}

static void test_group_missing_intermediate(void **state)
{
	struct enrollment *g = group_cert("root-group", root, 1);
	struct match_result r;

	/* the device sends only its leaf: the root is not reachable */
	match_x509("dev1", leaf->cert, NULL, NULL, &g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "no enrollment group CA is in the certificate chain (leaf issuer "
	                  "CN=Contoso Intermediate)");
	assert_int_equal(r.cls, AUTH_UNKNOWN_DEVICE);
	match_result_clear(&r);
	enrollment_free(g);

	/* a group on the issuing intermediate works without a chain */
	g = group_cert("inter-group", inter, 1);
	match_x509("dev1", leaf->cert, NULL, NULL, &g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_int_equal(r.depth, 1);
	match_result_clear(&r);
	enrollment_free(g);

	/* no X.509 groups at all */
	match_x509("dev1", leaf->cert, NULL, NULL, NULL, 0, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "no individual enrollment for 'dev1' and no X.509 enrollment group");
	assert_int_equal(r.cls, AUTH_UNKNOWN_DEVICE);
	match_result_clear(&r);
}

static void test_group_wrong_intermediate_sent(void **state)
{
	struct enrollment *g = group_cert("root-group", root, 1);
	STACK_OF(X509) *chain = testcert_stack(1, inter2->cert);
	struct match_result r;

	/* inter2 names the root, so the group is tried, but the path is broken */
	match_x509("dev1", leaf->cert, chain, NULL, &g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "enrollment group 'root-group': depth 0 CN=dev1");
	assert_int_equal(r.cls, AUTH_CHAIN);
	match_result_clear(&r);
	enrollment_free(g);
	sk_X509_pop_free(chain, X509_free);
}

static void test_group_expired_leaf(void **state)
{
	struct testcert_opts o = {.pathlen = -1, .not_before = -10 * DAY, .not_after = -DAY};
	struct testcert *old = testcert_new("dev1", inter, &o);
	struct enrollment *g = group_cert("inter-group", inter, 1);
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct match_result r;

	assert_non_null(old);
	match_x509("dev1", old->cert, chain, NULL, &g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "enrollment group 'inter-group': depth 0 CN=dev1: certificate has "
	                  "expired");
	assert_int_equal(r.cls, AUTH_EXPIRED);
	match_result_clear(&r);
	enrollment_free(g);
	testcert_free(old);
	sk_X509_pop_free(chain, X509_free);
}

static void test_group_expired_intermediate(void **state)
{
	struct testcert_opts o = {
	    .ca = 1, .pathlen = -1, .not_before = -10 * DAY, .not_after = -DAY};
	struct testcert *old_inter = testcert_new("Old Intermediate", root, &o);
	struct testcert *dev;
	struct enrollment *g = group_cert("root-group", root, 1);
	STACK_OF(X509) *chain;
	struct match_result r;

	assert_non_null(old_inter);
	dev = testcert_leaf("dev1", old_inter);
	assert_non_null(dev);
	chain = testcert_stack(1, old_inter->cert);
	match_x509("dev1", dev->cert, chain, NULL, &g, 1, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "CN=Old Intermediate: certificate has expired");
	assert_int_equal(r.cls, AUTH_CHAIN);
	match_result_clear(&r);
	enrollment_free(g);
	testcert_free(dev);
	testcert_free(old_inter);
	sk_X509_pop_free(chain, X509_free);
}

static void test_many_groups_one_matches(void **state)
{
	enum { N = 200 };
	struct enrollment **g = calloc(N, sizeof(*g));
	STACK_OF(X509) *chain = testcert_stack(1, inter->cert);
	struct match_result r;
	char id[32], cn[32];

	assert_non_null(g);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "group-%03d", i);
		if (i == 137) {
			g[i] = group_cert(id, inter, 1);
			continue;
		}
		snprintf(cn, sizeof(cn), "Unrelated CA %03d", i);
		struct testcert *ca = testcert_root(cn);
		assert_non_null(ca);
		g[i] = group_cert(id, ca, 1);
		testcert_free(ca);
	}
	match_x509("dev1", leaf->cert, chain, NULL, g, N, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_OK);
	assert_ptr_equal(r.enrollment, g[137]);
	assert_string_equal(r.enrollment->id, "group-137");
	assert_int_equal(r.tried, 1); /* the other 199 were ruled out without verifying */
	match_result_clear(&r);

	/* a device of another PKI is refused with the plain reason */
	match_x509("dev1", self1->cert, NULL, NULL, g, N, NULL, NULL, 0, &r);
	assert_int_equal(r.outcome, MATCH_REFUSED);
	expect_reason(&r, "no enrollment group CA is in the certificate chain (leaf issuer "
	                  "CN=dev1)");
	match_result_clear(&r);
	for (int i = 0; i < N; i++)
		enrollment_free(g[i]);
	free(g);
	sk_X509_pop_free(chain, X509_free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_individual_match),
	    cmocka_unit_test(test_individual_mismatch_beats_groups),
	    cmocka_unit_test(test_individual_disabled),
	    cmocka_unit_test(test_individual_other_attestation),
	    cmocka_unit_test(test_individual_expired),
	    cmocka_unit_test(test_cn_mismatch),
	    cmocka_unit_test(test_group_nearest_wins),
	    cmocka_unit_test(test_group_tie_first_wins),
	    cmocka_unit_test(test_group_disabled_nearest_refuses),
	    cmocka_unit_test(test_group_ca_references),
	    cmocka_unit_test(test_group_missing_intermediate),
	    cmocka_unit_test(test_group_wrong_intermediate_sent),
	    cmocka_unit_test(test_group_expired_leaf),
	    cmocka_unit_test(test_group_expired_intermediate),
	    cmocka_unit_test(test_many_groups_one_matches),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
