#include "enrollments/match.h"

#include "certs/x509.h"
#include "err.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAR_DEPTH 1000 /* a name seen in the chain but not on the walk up from the leaf */

static void set_reason(struct match_result *res, enum auth_reason cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Says why (or how) the decision was made, and its class. */
static void set_reason(struct match_result *res, enum auth_reason cls, const char *fmt, ...)
{
	va_list ap;

	res->cls = cls;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

static const char *att_name(enum enr_attestation a)
{
	switch (a) {
	case ENR_ATT_X509:
		return "x509";
	case ENR_ATT_SYMMETRIC_KEY:
		return "symmetricKey";
	case ENR_ATT_TPM:
		return "tpm";
	case ENR_ATT_NONE:
		return "none";
	}
	return "unknown";
}

/* Validity of the leaf at now, in the words x509_verify_chain uses. */
static int leaf_time_ok(X509 *leaf, time_t now, const char *cn, struct match_result *res)
{
	time_t t = now ? now : time(NULL);

	if (X509_cmp_time(X509_get0_notBefore(leaf), &t) > 0) {
		set_reason(res, AUTH_EXPIRED, "depth 0 CN=%s: certificate is not yet valid", cn);
		return 0;
	}
	if (X509_cmp_time(X509_get0_notAfter(leaf), &t) < 0) {
		set_reason(res, AUTH_EXPIRED, "depth 0 CN=%s: certificate has expired", cn);
		return 0;
	}
	return 1;
}

static void match_individual(const struct enrollment *e, X509 *leaf, const char *cn, time_t now,
                             struct match_result *res)
{
	char leaf_fp[65], fp[65];
	X509 *hit = NULL;

	if (e->att != ENR_ATT_X509 || !e->certs) {
		set_reason(res, AUTH_OTHER, "enrollment '%s' uses %s attestation, not X.509", e->id,
		           att_name(e->att));
		return;
	}
	x509_thumbprint_sha256(leaf, leaf_fp);
	for (int i = 0; i < sk_X509_num(e->certs) && !hit; i++) {
		X509 *c = sk_X509_value(e->certs, i);
		x509_thumbprint_sha256(c, fp);
		if (strcmp(fp, leaf_fp) == 0)
			hit = c;
	}
	if (!hit) {
		set_reason(res, AUTH_THUMBPRINT,
		           "certificate thumbprint %s does not match enrollment '%s'", leaf_fp,
		           e->id);
		return;
	}
	if (!leaf_time_ok(leaf, now, cn, res))
		return;
	if (!X509_up_ref(hit)) {
		set_reason(res, AUTH_OTHER, "out of memory");
		return;
	}
	res->anchor = hit;
	res->depth = 0;
	res->enrollment = e;
	if (e->enabled) {
		res->outcome = MATCH_OK;
		set_reason(res, AUTH_OK, "individual enrollment '%s'", e->id);
	} else {
		res->outcome = MATCH_DISABLED;
		set_reason(res, AUTH_DISABLED, "enrollment '%s' is disabled", e->id);
	}
}

/* The issuer names reachable from the leaf through the presented certificates.
 * walk[d - 1] is the name expected at depth d; extra holds every other subject
 * and issuer name presented. Names are borrowed from the certificates. */
struct names {
	const X509_NAME **walk;
	int nwalk;
	const X509_NAME **extra;
	int nextra;
};

static int names_build(X509 *leaf, STACK_OF(X509) *chain, struct names *n)
{
	int nchain = chain ? sk_X509_num(chain) : 0;
	const X509_NAME *cur;

	memset(n, 0, sizeof(*n));
	n->walk = calloc((size_t)nchain + 1, sizeof(*n->walk));
	n->extra = calloc(2 * (size_t)nchain + 1, sizeof(*n->extra));
	if (!n->walk || !n->extra)
		return EMU_ENOMEM;
	cur = X509_get_issuer_name(leaf);
	n->walk[n->nwalk++] = cur;
	/* Follow issuer links through the presented certificates, in any order. The
	 * walk is at most nchain long, so a loop in the names cannot run away. */
	while (n->nwalk <= nchain) {
		X509 *next = NULL;
		for (int i = 0; i < nchain; i++) {
			X509 *c = sk_X509_value(chain, i);
			if (X509_NAME_cmp(X509_get_subject_name(c), cur) == 0) {
				next = c;
				break;
			}
		}
		if (!next ||
		    X509_NAME_cmp(X509_get_issuer_name(next), X509_get_subject_name(next)) == 0)
			break;
		cur = X509_get_issuer_name(next);
		n->walk[n->nwalk++] = cur;
	}
	for (int i = 0; i < nchain; i++) {
		X509 *c = sk_X509_value(chain, i);
		n->extra[n->nextra++] = X509_get_subject_name(c);
		n->extra[n->nextra++] = X509_get_issuer_name(c);
	}
	return EMU_OK;
}

static void names_free(struct names *n)
{
	free(n->walk);
	free(n->extra);
}

/* Expected depth of an anchor with this subject: 1.. on the walk, FAR_DEPTH when
 * only presented somewhere, -1 when it cannot be in the chain at all. */
static int name_depth(const struct names *n, const X509_NAME *subject)
{
	for (int i = 0; i < n->nwalk; i++)
		if (X509_NAME_cmp(n->walk[i], subject) == 0)
			return i + 1;
	for (int i = 0; i < n->nextra; i++)
		if (X509_NAME_cmp(n->extra[i], subject) == 0)
			return FAR_DEPTH;
	return -1;
}

struct group_scan {
	const struct enrollment *best;
	X509 *best_anchor; /* owned reference */
	int best_depth;
	char fail[256]; /* verification failure of the nearest failing candidate */
	int fail_depth;
	char unresolved[200]; /* first CA reference that could not be used */
	int x509_groups;
	int candidates;
};

/* Anchors of one group: its signing certificates, or its resolved CA references. */
static STACK_OF(X509) *group_anchors(const struct enrollment *g, match_ca_resolve_fn resolve,
                                     void *arg, struct group_scan *s)
{
	STACK_OF(X509) *a = sk_X509_new_null();

	if (!a)
		return NULL;
	if (g->certs) {
		for (int i = 0; i < sk_X509_num(g->certs); i++) {
			X509 *c = sk_X509_value(g->certs, i);
			if (!X509_up_ref(c))
				continue;
			if (!sk_X509_push(a, c))
				X509_free(c);
		}
		return a;
	}
	for (int i = 0; i < 2; i++) {
		char why[160] = "";
		X509 *c;

		if (!g->ca_refs[i])
			continue;
		c = resolve ? resolve(g->ca_refs[i], arg, why, sizeof(why)) : NULL;
		if (!c) {
			if (!s->unresolved[0]) {
				if (why[0])
					snprintf(s->unresolved, sizeof(s->unresolved), "%s", why);
				else
					snprintf(s->unresolved, sizeof(s->unresolved),
					         "CA reference '%s' is not a verified CA",
					         g->ca_refs[i]);
			}
			continue;
		}
		if (!sk_X509_push(a, c))
			X509_free(c);
	}
	return a;
}

static void scan_group(const struct enrollment *g, X509 *leaf, STACK_OF(X509) *chain,
                       const struct names *names, match_ca_resolve_fn resolve, void *arg,
                       time_t now, struct group_scan *s)
{
	STACK_OF(X509) *anchors;
	X509 *anchor = NULL;
	char why[200];
	int est = INT_MAX, depth = -1;

	if (g->att != ENR_ATT_X509)
		return;
	s->x509_groups++;
	anchors = group_anchors(g, resolve, arg, s);
	if (!anchors)
		return;
	for (int i = 0; i < sk_X509_num(anchors); i++) {
		int d = name_depth(names, X509_get_subject_name(sk_X509_value(anchors, i)));
		if (d > 0 && d < est)
			est = d;
	}
	if (est == INT_MAX)
		goto out; /* this group's CA is not in the chain: skip the verification */
	s->candidates++;
	if (x509_verify_chain(leaf, chain, anchors, now, &anchor, &depth, why, sizeof(why)) !=
	    EMU_OK) {
		if (est < s->fail_depth) {
			s->fail_depth = est;
			snprintf(s->fail, sizeof(s->fail), "enrollment group '%s': %s", g->id, why);
		}
		goto out;
	}
	if (depth < s->best_depth && X509_up_ref(anchor)) {
		X509_free(s->best_anchor);
		s->best = g;
		s->best_anchor = anchor;
		s->best_depth = depth;
	}
out:
	sk_X509_pop_free(anchors, X509_free);
}

static void match_groups(X509 *leaf, STACK_OF(X509) *chain, struct enrollment *const *groups,
                         size_t ngroups, match_ca_resolve_fn resolve, void *arg, time_t now,
                         const char *regid, struct match_result *res)
{
	struct group_scan s;
	struct names names;
	char *issuer;

	memset(&s, 0, sizeof(s));
	s.best_depth = INT_MAX;
	s.fail_depth = INT_MAX;
	if (names_build(leaf, chain, &names) != EMU_OK) {
		names_free(&names);
		set_reason(res, AUTH_OTHER, "out of memory");
		return;
	}
	for (size_t i = 0; i < ngroups; i++)
		if (groups[i])
			scan_group(groups[i], leaf, chain, &names, resolve, arg, now, &s);
	names_free(&names);
	res->tried = s.candidates;
	if (s.best) {
		res->enrollment = s.best;
		res->anchor = s.best_anchor;
		res->depth = s.best_depth;
		if (s.best->enabled) {
			res->outcome = MATCH_OK;
			set_reason(res, AUTH_OK, "enrollment group '%s'", s.best->id);
		} else {
			res->outcome = MATCH_DISABLED;
			set_reason(res, AUTH_DISABLED, "enrollment group '%s' is disabled",
			           s.best->id);
		}
		return;
	}
	if (s.fail[0]) {
		/* An out-of-date leaf fails every chain: say so in the class. */
		time_t t = now ? now : time(NULL);
		int dated = X509_cmp_time(X509_get0_notBefore(leaf), &t) > 0 ||
			    X509_cmp_time(X509_get0_notAfter(leaf), &t) < 0;
		set_reason(res, dated ? AUTH_EXPIRED : AUTH_CHAIN, "%s", s.fail);
		return;
	}
	if (s.x509_groups == 0) {
		set_reason(res, AUTH_UNKNOWN_DEVICE,
		           "no individual enrollment for '%s' and no X.509 enrollment group",
		           regid);
		return;
	}
	issuer = x509_issuer_string(leaf);
	if (s.unresolved[0])
		set_reason(res, AUTH_CHAIN,
		           "no enrollment group CA is in the certificate chain (leaf issuer "
		           "%s); %s",
		           issuer ? issuer : "?", s.unresolved);
	else
		set_reason(res, AUTH_UNKNOWN_DEVICE,
		           "no enrollment group CA is in the certificate chain (leaf issuer "
		           "%s)",
		           issuer ? issuer : "?");
	free(issuer);
}

void match_x509(const char *registration_id, X509 *leaf, STACK_OF(X509) *chain,
                const struct enrollment *individual, struct enrollment *const *groups,
                size_t ngroups, match_ca_resolve_fn resolve, void *arg, time_t now,
                struct match_result *res)
{
	char cn[ENR_ID_MAX + 1];
	int rc;

	memset(res, 0, sizeof(*res));
	res->outcome = MATCH_REFUSED;
	res->cls = AUTH_OTHER;
	res->depth = -1;
	if (!leaf) {
		set_reason(res, AUTH_NO_CERTIFICATE, "no client certificate");
		return;
	}
	if (!registration_id || !*registration_id) {
		set_reason(res, AUTH_OTHER, "no registration ID");
		return;
	}
	rc = x509_common_name(leaf, cn, sizeof(cn));
	if (rc == EMU_ENOTFOUND) {
		set_reason(res, AUTH_CN_MISMATCH,
		           "leaf certificate has no CN (registration ID '%.128s')",
		           registration_id);
		return;
	}
	if (rc != EMU_OK) {
		set_reason(res, AUTH_CN_MISMATCH,
		           "leaf certificate CN is longer than %d characters", ENR_ID_MAX);
		return;
	}
	/* CNs were once lower-case only; DPS now compares them case-insensitively. */
	if (strcasecmp(cn, registration_id) != 0) {
		set_reason(res, AUTH_CN_MISMATCH,
		           "leaf certificate CN '%s' does not match registration ID '%.128s'", cn,
		           registration_id);
		return;
	}
	if (individual) {
		match_individual(individual, leaf, cn, now, res);
		return;
	}
	match_groups(leaf, chain, groups, ngroups, resolve, arg, now, registration_id, res);
}

void match_result_clear(struct match_result *res)
{
	if (!res)
		return;
	X509_free(res->anchor);
	memset(res, 0, sizeof(*res));
}
