#include "svcauth.h"

#include "cfg.h"
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
#define MAX_RESOURCES 48

struct policy {
	char name[64];
	unsigned char *key;
	size_t keylen;
};

struct svcauth {
	struct policy p[MAX_POLICIES];
	int n;
	char *resources[MAX_RESOURCES];
	int nres;
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
	for (int i = 0; i < a->nres; i++)
		free(a->resources[i]);
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

int svcauth_add_resource(struct svcauth *a, const char *host)
{
	for (int i = 0; i < a->nres; i++)
		if (strcasecmp(a->resources[i], host) == 0)
			return EMU_OK;
	if (a->nres == MAX_RESOURCES || !*host)
		return EMU_EINVAL;
	a->resources[a->nres] = strdup(host);
	if (!a->resources[a->nres])
		return EMU_ENOMEM;
	a->nres++;
	return EMU_OK;
}

static void add_name(const char *item, void *arg)
{
	char name[256];

	/* A linked hub may be "name@host:port": the name is what tokens carry. */
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(item, "@"), item);
	svcauth_add_resource(arg, name);
}

int svcauth_add_cfg_names(struct svcauth *a, const struct cfg *cfg)
{
	static const char *const fixed[] = { "localhost", "127.0.0.1", "::1", "[::1]" };
	int rc = svcauth_add_resource(a, cfg->hostname);

	for (size_t i = 0; rc == EMU_OK && i < sizeof(fixed) / sizeof(fixed[0]); i++)
		rc = svcauth_add_resource(a, fixed[i]);
	cfg_list_each(cfg->extra_names, add_name, a);
	cfg_list_each(cfg->linked_hubs, add_name, a);
	return rc;
}

/* True when the host part of sr (up to '/' or a ':port') is a known name. */
static int resource_known(const struct svcauth *a, const char *sr)
{
	size_t n = strcspn(sr, "/");
	const char *colon = memchr(sr, ':', n);

	if (a->nres == 0)
		return 1;
	/* An IPv6 literal has colons of its own; only strip a trailing :port. */
	if (colon && sr[0] != '[' && !memchr(colon + 1, ':', n - (size_t)(colon - sr) - 1))
		n = (size_t)(colon - sr);
	for (int i = 0; i < a->nres; i++)
		if (strlen(a->resources[i]) == n && strncasecmp(a->resources[i], sr, n) == 0)
			return 1;
	return 0;
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
	/* The resource is the host name the client used: one of ours. */
	if (!resource_known(a, t.sr)) {
		snprintf(why, whylen, "SharedAccessSignature is for '%s', which is not a name of this "
			 "emulator (add it to DPSEMU_EXTRA_NAMES)", t.sr);
		return EMU_EAUTH;
	}
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
