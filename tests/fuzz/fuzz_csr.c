/* Fuzz target for certs/issue: the input is tried as the "csr" string of a
 * register body (registration ID "dev1", default and strict key policies) and,
 * base64-encoded, as DER. A refusal must name its reason; an accepted request
 * must match the registration ID and yield a certificate chain of exactly three
 * that carries the request's key. Any broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "log.h"
#include "textenc.h"

#include "certs/gen.h"
#include "certs/issue.h"
#include "certs/x509.h"

#define RID "dev1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

/* An in-memory root and issuing CA, made on the first accepted request. */
static struct issue_ca *test_ca(void)
{
	static struct issue_ca *ca;
	struct gen_cert_opts o = {0};
	EVP_PKEY *rk = NULL, *ik = NULL;
	X509 *root = NULL, *issuing = NULL;
	STACK_OF(X509) *chain = NULL;
	char why[256];

	if (ca)
		return ca;
	require(gen_key(GEN_KEY_P384, &rk) == EMU_OK && gen_key(GEN_KEY_P384, &ik) == EMU_OK);
	o.cn = "Fuzz Root";
	o.key = rk;
	o.not_before_offset = -3600;
	o.validity = 86400;
	o.is_ca = 1;
	o.pathlen = 1;
	require(gen_cert(&o, &root) == EMU_OK);
	o.cn = "Fuzz Issuing CA";
	o.key = ik;
	o.issuer = root;
	o.issuer_key = rk;
	o.pathlen = 0;
	require(gen_cert(&o, &issuing) == EMU_OK);
	chain = sk_X509_new_null();
	require(chain && sk_X509_push(chain, root));
	require(issue_ca_new(issuing, ik, chain, &ca, why, sizeof(why)) == EMU_OK);
	sk_X509_free(chain);
	X509_free(root);
	X509_free(issuing);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	return ca;
}

static void check_accepted(X509_REQ *req)
{
	struct issue_ca *ca = test_ca();
	struct issue_record rec;
	char pk[65];
	X509 *leaf = NULL;
	json_t *chain;

	require(issue_pubkey_sha256(X509_REQ_get0_pubkey(req), pk) == EMU_OK);
	require(issue_certificate(ca, req, RID, 3600, NULL, NULL, &leaf) == EMU_OK);
	require(EVP_PKEY_eq(X509_get0_pubkey(leaf), X509_REQ_get0_pubkey(req)) == 1);
	require(X509_verify(leaf, X509_get0_pubkey(issue_ca_cert(ca))) == 1);
	require(issue_record_fill(leaf, &rec) == EMU_OK);
	require(strcmp(rec.pubkey_sha256, pk) == 0);
	require(strlen(rec.serial) == 32);
	chain = issue_chain_json(ca, leaf);
	require(chain && json_array_size(chain) == 3);
	json_decref(chain);
	X509_free(leaf);
}

static void try_csr(const char *b64, size_t len, enum issue_keys policy)
{
	enum issue_error e = ISSUE_ERR_INTERNAL;
	X509_REQ *req = NULL;
	char why[512];
	int rc = issue_csr_parse(b64, len, RID, policy, &req, &e, why, sizeof(why));

	if (rc == EMU_OK) {
		require(req && e == ISSUE_ERR_NONE && why[0] == '\0');
		check_accepted(req);
		X509_REQ_free(req);
		return;
	}
	require(!req && e != ISSUE_ERR_NONE && why[0] != '\0');
	require(issue_error_string(e)[0] != '\0');
	if (e == ISSUE_ERR_TOO_LARGE)
		require(rc == EMU_ETOOBIG && len > ISSUE_CSR_MAX_B64);
	else if (e == ISSUE_ERR_INTERNAL)
		require(rc == EMU_ENOMEM || rc == EMU_ECRYPTO);
	else
		require(rc == EMU_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	char *b64;

	if (!quiet) {
		log_set_level(LOG_ERROR);
		quiet = 1;
	}
	try_csr((const char *)data, size, ISSUE_KEYS_DEFAULT);
	try_csr((const char *)data, size, ISSUE_KEYS_STRICT);
	/* the same bytes as DER, past the base64 layer */
	b64 = b64_encode(data, size);
	if (b64) {
		try_csr(b64, strlen(b64), ISSUE_KEYS_DEFAULT);
		free(b64);
	}
	return 0;
}
