/* Unit tests for enrollments/seed: loading DPSEMU_ENROLLMENTS_DIR. Each test
 * gets a temporary seed directory and a temporary store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "store.h"

#include "enrollments/enr_store.h"
#include "enrollments/seed.h"
#include "testcerts.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct testcert *root, *dev1;

struct fx {
	char tmp[64];
	char seeds[96];
	char data[96];
	struct store *st;
	struct enr_store *es;
};

static int group_setup(void **state)
{
	root = testcert_root("Seed Root");
	dev1 = testcert_self_signed("dev1");
	assert_non_null(root);
	assert_non_null(dev1);
	return 0;
}

static int group_teardown(void **state)
{
	testcert_free(root);
	testcert_free(dev1);
	return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/dpsemu-seed-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->seeds, sizeof(f->seeds), "%s/seeds", f->tmp);
	snprintf(f->data, sizeof(f->data), "%s/data", f->tmp);
	assert_int_equal(mkdir(f->seeds, 0700), 0);
	assert_int_equal(store_open(f->data, 16, &f->st), EMU_OK);
	assert_int_equal(enr_store_new(f->st, NULL, &f->es), EMU_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	enr_store_free(f->es);
	store_close(f->st);
	nftw(f->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void write_json(const char *dir, const char *name, json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(2));

	assert_non_null(text);
	write_text(dir, name, text);
	free(text);
	json_decref(doc);
}

/* Looks id up in a fresh read transaction; returns the etag (caller frees) or NULL. */
static char *stored_etag(struct fx *f, enum enr_kind kind, const char *id)
{
	struct store_txn *txn = NULL;
	struct enrollment *e = NULL;
	char *etag = NULL;

	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	if (enr_store_get(f->es, txn, kind, id, &e) == EMU_OK) {
		etag = strdup(e->etag);
		enrollment_free(e);
	}
	store_txn_abort(txn);
	return etag;
}

static struct enrollment *stored(struct fx *f, enum enr_kind kind, const char *id)
{
	struct store_txn *txn = NULL;
	struct enrollment *e = NULL;

	assert_int_equal(store_txn_begin(f->st, 0, &txn), EMU_OK);
	assert_int_equal(enr_store_get(f->es, txn, kind, id, &e), EMU_OK);
	store_txn_abort(txn);
	return e;
}

/* A valid directory: an individual with a relative PEM path, a group with inline
 * PEM, a group on a CA reference, a symmetric-key individual and a stray file. */
static void populate(struct fx *f)
{
	char sub[160], path[200];
	char *root_pem = testcert_pem(root);

	snprintf(sub, sizeof(sub), "%s/certs", f->seeds);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/dev1.pem", sub);
	assert_int_equal(testcert_write_pem(dev1, path), 0);
	write_json(f->seeds, "10-dev1.json",
	           json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "registrationId", "Dev1",
	                     "attestation", "type", "x509", "x509", "clientCertificates", "primary",
	                     "certificate", "certs/dev1.pem"));
	write_json(f->seeds, "20-group.json",
	           json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "enrollmentGroupId", "seed-group",
	                     "attestation", "type", "x509", "x509", "signingCertificates",
	                     "primary", "certificate", root_pem));
	write_text(f->seeds, "30-refs.json",
	           "{\"enrollmentGroupId\":\"by-ref\",\"attestation\":{\"type\":\"x509\","
	           "\"x509\":{\"caReferences\":{\"primary\":\"myca\"}}}}");
	write_text(f->seeds, "40-sym.json",
	           "{\"registrationId\":\"sym1\",\"attestation\":{\"type\":\"symmetricKey\"}}");
	write_text(f->seeds, "README.md", "not a seed");
	write_text(f->seeds, ".hidden.json", "{broken");
	free(root_pem);
}

static void test_load_valid_dir(void **state)
{
	struct fx *f = *state;
	struct seed_counts c;
	struct enrollment *e;
	char why[512];

	populate(f);
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)), EMU_OK);
	assert_int_equal(c.individuals, 2);
	assert_int_equal(c.groups, 2);
	assert_int_equal(c.written, 4);

	e = stored(f, ENR_INDIVIDUAL, "dev1");
	assert_string_equal(e->id, "Dev1");
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), dev1->cert), 0);
	enrollment_free(e);
	e = stored(f, ENR_GROUP, "seed-group");
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), root->cert), 0);
	enrollment_free(e);
	e = stored(f, ENR_GROUP, "BY-REF");
	assert_string_equal(e->ca_refs[0], "myca");
	enrollment_free(e);
}

static void test_reload_keeps_etags_and_keys(void **state)
{
	struct fx *f = *state;
	struct seed_counts c;
	struct enrollment *a, *b;
	char why[512];
	char *etag1, *etag2;

	populate(f);
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)), EMU_OK);
	etag1 = stored_etag(f, ENR_INDIVIDUAL, "dev1");
	a = stored(f, ENR_INDIVIDUAL, "sym1");
	/* SIGHUP with nothing changed: nothing written */
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)), EMU_OK);
	assert_int_equal(c.written, 0);
	assert_int_equal(c.individuals, 2);
	etag2 = stored_etag(f, ENR_INDIVIDUAL, "dev1");
	assert_string_equal(etag1, etag2);
	b = stored(f, ENR_INDIVIDUAL, "sym1");
	assert_string_equal(a->sym_keys[0], b->sym_keys[0]);
	enrollment_free(b);
	free(etag2);

	/* a changed file is written again */
	write_text(f->seeds, "40-sym.json",
	           "{\"registrationId\":\"sym1\",\"attestation\":{\"type\":\"symmetricKey\"},"
	           "\"provisioningStatus\":\"disabled\"}");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)), EMU_OK);
	assert_int_equal(c.written, 1);
	b = stored(f, ENR_INDIVIDUAL, "sym1");
	assert_false(b->enabled);
	assert_string_equal(a->sym_keys[0], b->sym_keys[0]); /* generated keys survive */
	enrollment_free(a);
	enrollment_free(b);
	free(etag1);
}

static void test_bad_file_names_file_and_applies_nothing(void **state)
{
	struct fx *f = *state;
	char why[512];
	char *etag;

	populate(f);
	write_text(f->seeds, "50-bad.json",
	           "{\"registrationId\":\"bad1\",\"attestation\":{\"type\":\"x509\",\"x509\":"
	           "{\"clientCertificates\":{\"primary\":{\"certificate\":\"-----BEGIN CERTIFICATE"
	           "-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"}}}}}");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_EINVAL);
	if (!strstr(why, "50-bad.json: attestation.x509.clientCertificates.primary.certificate: "
	                 "not a PEM or base64 DER certificate"))
		fail_msg("unexpected reason: %s", why);
	/* the valid files before it were not applied either */
	etag = stored_etag(f, ENR_INDIVIDUAL, "dev1");
	assert_null(etag);
}

static void test_error_messages(void **state)
{
	struct fx *f = *state;
	char why[512];

	write_text(f->seeds, "a.json", "{\"registrationId\": \"x\",");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "a.json: line "));

	write_text(f->seeds, "a.json",
	           "{\"registrationId\":\"x\",\"attestation\":{\"type\":\"x509\","
	           "\"x509\":{\"clientCertificates\":{\"primary\":{\"certificate\":"
	           "\"certs/missing.pem\"}}}}}");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_EINVAL);
	if (!strstr(why, "a.json: attestation.x509.clientCertificates.primary.certificate: "
	                 "cannot read certificate file ") ||
	    !strstr(why, "certs/missing.pem"))
		fail_msg("unexpected reason: %s", why);

	write_text(f->seeds, "a.json", "{\"attestation\":{\"type\":\"none\"}}");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "a.json: needs either registrationId"));

	write_text(f->seeds, "a.json", "[1]");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "a.json: must hold one enrollment"));

	/* the same ID twice, in different case */
	write_text(f->seeds, "a.json",
	           "{\"registrationId\":\"twin\",\"attestation\":{\"type\":"
	           "\"none\"}}");
	write_text(f->seeds, "b.json",
	           "{\"registrationId\":\"TWIN\",\"attestation\":{\"type\":"
	           "\"none\"}}");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_EINVAL);
	assert_non_null(strstr(why, "b.json: registrationId 'TWIN' is also defined in a.json"));

	/* a group and an individual may share an ID */
	write_text(f->seeds, "b.json",
	           "{\"enrollmentGroupId\":\"TWIN\",\"attestation\":{\"type\":"
	           "\"none\"}}");
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, NULL, why, sizeof(why)), EMU_OK);

	assert_int_equal(seed_load_dir("/nonexistent/seeds", f->st, f->es, NULL, why, sizeof(why)),
	                 EMU_ENOTFOUND);
	assert_non_null(strstr(why, "/nonexistent/seeds"));
}

static void test_certificate_forms(void **state)
{
	struct fx *f = *state;
	struct seed_counts c;
	struct enrollment *e;
	char path[256], why[512];
	unsigned char *der = NULL;
	char *b64 = testcert_b64der(dev1);
	FILE *fp;
	int n;

	/* an absolute path to a DER file */
	n = i2d_X509(root->cert, &der);
	assert_true(n > 0);
	snprintf(path, sizeof(path), "%s/root.der", f->tmp);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(der, 1, (size_t)n, fp), (size_t)n);
	assert_int_equal(fclose(fp), 0);
	OPENSSL_free(der);
	write_json(f->seeds, "g.json",
	           json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "enrollmentGroupId", "der-group",
	                     "attestation", "type", "x509", "x509", "signingCertificates",
	                     "primary", "certificate", path));
	/* inline base64 DER */
	write_json(f->seeds, "i.json",
	           json_pack("{s:s,s:{s:s,s:{s:{s:{s:s}}}}}", "registrationId", "dev1",
	                     "attestation", "type", "x509", "x509", "clientCertificates", "primary",
	                     "certificate", b64));
	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)), EMU_OK);
	assert_int_equal(c.groups, 1);
	assert_int_equal(c.individuals, 1);
	e = stored(f, ENR_GROUP, "der-group");
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), root->cert), 0);
	enrollment_free(e);
	e = stored(f, ENR_INDIVIDUAL, "dev1");
	assert_int_equal(X509_cmp(sk_X509_value(e->certs, 0), dev1->cert), 0);
	enrollment_free(e);
	free(b64);
}

static void test_empty_dir(void **state)
{
	struct fx *f = *state;
	struct seed_counts c = {9, 9, 9};
	char why[128];

	assert_int_equal(seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)), EMU_OK);
	assert_int_equal(c.individuals + c.groups + c.written, 0);
}

/* Creates the certificate files an example refers to, then loads the examples. */
static void make_example_certs(const char *dir, json_t *doc)
{
	static const char *pairs[2] = {"clientCertificates", "signingCertificates"};
	json_t *x = json_object_get(json_object_get(doc, "attestation"), "x509");
	const char *regid = json_string_value(json_object_get(doc, "registrationId"));

	for (int p = 0; p < 2; p++) {
		const char *ref = json_string_value(json_object_get(
		    json_object_get(json_object_get(x, pairs[p]), "primary"), "certificate"));
		char path[512], *slash;
		struct testcert *c;

		if (!ref || strncmp(ref, "-----", 5) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, ref);
		slash = strrchr(path, '/');
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
		c = p == 0 ? testcert_self_signed(regid) : testcert_root("Example Root");
		assert_non_null(c);
		assert_int_equal(testcert_write_pem(c, path), 0);
		testcert_free(c);
	}
}

static void test_examples_are_valid(void **state)
{
	struct fx *f = *state;
	struct dirent *d;
	struct seed_counts c;
	char why[512], path[512];
	size_t files = 0;
	DIR *dir = opendir("enrollments/examples");

	if (!dir)
		skip(); /* run from somewhere other than the repository root */
	while ((d = readdir(dir)) != NULL) {
		size_t n = strlen(d->d_name);
		json_error_t err;
		json_t *doc;

		if (n < 6 || strcmp(d->d_name + n - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "enrollments/examples/%s", d->d_name);
		doc = json_load_file(path, 0, &err);
		if (!doc)
			fail_msg("%s: %s", path, err.text);
		make_example_certs(f->seeds, doc);
		write_json(f->seeds, d->d_name, doc);
		files++;
	}
	closedir(dir);
	assert_true(files >= 3);
	if (seed_load_dir(f->seeds, f->st, f->es, &c, why, sizeof(why)) != EMU_OK)
		fail_msg("examples do not load: %s", why);
	assert_int_equal(c.individuals + c.groups, files);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_valid_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_keeps_etags_and_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_file_names_file_and_applies_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_error_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_certificate_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_examples_are_valid, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
