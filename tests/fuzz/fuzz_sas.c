/* Fuzz target for common/sas and the query parser under it: parses the input as
 * a token, checks what a parsed token promises, re-creates a token for the same
 * resource and verifies it, and walks the input as a query string. Any broken
 * promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "query.h"
#include "sas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 32 key bytes; the string terminator is not part of the key */
static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
#define KEY_LEN (sizeof(key) - 1)

static void require(int cond)
{
	if (!cond)
		abort();
}

static void check_token(const struct sas_token *t)
{
	struct sas_token again;
	char *tok;
	int rc;

	require(t->error == NULL);
	require(t->sr_raw_len >= 1 && t->sr_raw_len <= SAS_MAX_SR);
	require(strlen(t->sr_raw) == t->sr_raw_len);
	require(strlen(t->sr) >= 1 && strlen(t->sr) <= t->sr_raw_len);
	require(t->sig_len >= 1 && t->sig_len <= SAS_MAX_SIG);
	require(strlen(t->se_raw) >= 1 && strlen(t->se_raw) <= 20);
	require(sas_resource_matches(t, t->sr) == 1);
	rc = sas_verify(t, key, KEY_LEN, 0);
	require(rc == EMU_OK || rc == EMU_EAUTH);

	/* a token we create for the same resource and key name verifies */
	tok = sas_create(t->sr, key, KEY_LEN, t->se, t->has_skn ? t->skn : NULL);
	require(tok != NULL);
	rc = sas_parse(tok, strlen(tok), &again);
	if (rc == EMU_OK) {
		require(strcmp(again.sr, t->sr) == 0);
		require(again.se == t->se && again.has_skn == t->has_skn);
		require(strcmp(again.skn, t->skn) == 0);
		require(sas_verify(&again, key, KEY_LEN, t->se) == EMU_OK);
		require(t->se == UINT64_MAX || sas_verify(&again, key, KEY_LEN, t->se + 1) ==
						       EMU_EAUTH);
	} else {
		/* encoding can push sr, skn or the token past their bounds */
		require(rc == EMU_ETOOBIG);
	}
	free(tok);
}

static void walk_query(const char *q, size_t len)
{
	const char *cur = q, *end = q + len;
	struct query_pair kv;
	char out[64];
	int rc;

	while (query_next(&cur, end, &kv) == EMU_OK) {
		require(kv.key >= q && kv.key + kv.key_len <= end);
		require(kv.value >= q && kv.value + kv.value_len <= end);
		require(kv.key_len > 0 || kv.has_value);
		rc = query_decode(kv.value, kv.value_len, out, sizeof(out), NULL);
		require(rc == EMU_OK || rc == EMU_EINVAL || rc == EMU_ETOOBIG);
	}
	require(cur == end);
	rc = query_get(q, len, "sr", out, sizeof(out));
	require(rc == EMU_OK || rc == EMU_ENOTFOUND || rc == EMU_EINVAL || rc == EMU_ETOOBIG);
	if (rc == EMU_OK)
		require(strlen(out) < sizeof(out));
	rc = query_get_icase(q, len, "Api-Version", out, sizeof(out));
	require(rc == EMU_OK || rc == EMU_ENOTFOUND || rc == EMU_EINVAL || rc == EMU_ETOOBIG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sas_token t;
	int rc = sas_parse((const char *)data, size, &t);

	if (rc == EMU_OK)
		check_token(&t);
	else
		require(t.error != NULL && (rc == EMU_EINVAL || rc == EMU_ETOOBIG ||
					    rc == EMU_ENOMEM));
	walk_query((const char *)data, size);
	return 0;
}
