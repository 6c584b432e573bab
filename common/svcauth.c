#include "svcauth.h"

#include "err.h"
#include "http.h"
#include "sas.h"
#include "textenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_POLICIES 4

struct policy {
	char name[64];
	unsigned char *key;
	size_t keylen;
};

struct svcauth {
	struct policy p[MAX_POLICIES];
	int n;
};

int svcauth_new(struct svcauth **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? EMU_OK : EMU_ENOMEM;
}

void svcauth_free(struct svcauth *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->n; i++)
		free(a->p[i].key);
	free(a);
}

int svcauth_add_policy(struct svcauth *a, const char *name, const char *key_b64)
{
	struct policy *p;
	int rc;

	if (a->n == MAX_POLICIES || strlen(name) >= sizeof(p->name))
		return EMU_EINVAL;
	p = &a->p[a->n];
	rc = b64_decode(key_b64, strlen(key_b64), &p->key, &p->keylen);
	if (rc != EMU_OK)
		return rc;
	if (p->keylen == 0) {
		free(p->key);
		return EMU_EINVAL;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	a->n++;
	return EMU_OK;
}

int svcauth_check(const struct svcauth *a, const char *authorization, uint64_t now, char *why,
		  size_t whylen)
{
	struct sas_token t;

	if (!authorization || !*authorization) {
		snprintf(why, whylen, "no Authorization header (expected a SharedAccessSignature "
			 "made from the service connection string)");
		return EMU_EAUTH;
	}
	if (sas_parse(authorization, strlen(authorization), &t) != EMU_OK) {
		snprintf(why, whylen, "malformed SharedAccessSignature: %s",
			 t.error ? t.error : "unparseable");
		return EMU_EAUTH;
	}
	/* The resource (sr) is the host name the client used; any name that
	 * reaches this emulator is fine, the key is what proves the caller. */
	for (int i = 0; i < a->n; i++) {
		if (!t.has_skn || strcasecmp(t.skn, a->p[i].name) != 0)
			continue;
		if (t.se < now) {
			snprintf(why, whylen, "SharedAccessSignature for policy '%s' expired at %llu",
				 t.skn, (unsigned long long)t.se);
			return EMU_EAUTH;
		}
		if (sas_verify(&t, a->p[i].key, a->p[i].keylen, now) != EMU_OK) {
			snprintf(why, whylen, "SharedAccessSignature signature does not match the key "
				 "of policy '%s'", t.skn);
			return EMU_EAUTH;
		}
		return EMU_OK;
	}
	snprintf(why, whylen, "SharedAccessSignature names policy '%s', which is not a policy "
		 "of this service", t.has_skn ? t.skn : "(none: skn missing)");
	return EMU_EAUTH;
}

int svcauth_require(const struct svcauth *a, struct http_req *r)
{
	char why[256];

	if (svcauth_check(a, http_req_header(r, "Authorization"), (uint64_t)time(NULL), why,
			  sizeof(why)) == EMU_OK)
		return EMU_OK;
	http_respond_error(r, 401, 401002, "Unauthorized: %s", why);
	return EMU_EAUTH;
}
