/* match.h - which enrollment an X.509 device belongs to.
 *
 * A pure decision: the caller supplies the registration ID the device asked for,
 * the certificates it presented, the individual enrollment for that ID (if any),
 * the enrollment groups and a way to resolve caReferences. Nothing is read or
 * written here. The order of operations follows DPS:
 *
 *  1. The leaf's subject CN must equal the registration ID (case-insensitively).
 *  2. An individual enrollment for the registration ID is decisive: the leaf must be
 *     its primary or secondary client certificate (SHA-256 of the DER) and be
 *     within its validity period. A disabled enrollment that matches gives
 *     MATCH_DISABLED; a mismatch is refused without looking at groups.
 *  3. Otherwise every X.509 group whose CA could be in the presented chain (a
 *     signing certificate or resolved CA reference whose subject is the leaf's
 *     issuer or the subject/issuer of a presented certificate) is verified with
 *     x509_verify_chain. Among groups that verify, the one whose anchor is
 *     nearest to the leaf wins (smallest depth: a group on the issuing
 *     intermediate beats a group on the root); on a tie, the first group in the
 *     order given (enr_store_load_groups gives group-ID order). A disabled winner
 *     gives MATCH_DISABLED even when a broader group is enabled.
 *     Groups on a CA that is not the leaf's issuer or in the presented chain are
 *     never tried: devices must send their intermediates.
 *  4. Nothing matched: MATCH_REFUSED with the most useful reason (the verification
 *     failure of the nearest candidate, an unverified CA reference, or that no
 *     group CA is in the chain).
 * Refusals become HTTP 401 / errorCode 401002 in DPS. */
#ifndef DPSEMU_MATCH_H
#define DPSEMU_MATCH_H

#include "authlog.h"
#include "enrollments/enrollment.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

enum match_outcome { MATCH_OK = 0, MATCH_DISABLED, MATCH_REFUSED };

struct match_result {
	enum match_outcome outcome;
	/* The enrollment that decided (borrowed from the inputs): set for MATCH_OK and
	 * MATCH_DISABLED, NULL for MATCH_REFUSED. */
	const struct enrollment *enrollment;
	/* The matched client certificate (individual) or group anchor: a reference owned
	 * by the result, released by match_result_clear; NULL when refused. */
	X509 *anchor;
	int depth;        /* anchor's distance from the leaf: 0 for individual matches */
	int tried;        /* groups whose chain was verified (the others were ruled out by name) */
	char reason[320]; /* why it was refused or disabled; a short note otherwise */
	/* The class of a refusal (AUTH_DISABLED for MATCH_DISABLED, AUTH_OK for
	 * MATCH_OK): for the auth log and its metric. */
	enum auth_reason cls;
};

/* Resolves a caReferences name to the CA certificate, only if it is registered and
 * verified. Returns a new reference the caller frees, or NULL with a reason in why
 * (e.g. "CA reference 'myca' is not verified"). */
typedef X509 *(*match_ca_resolve_fn)(const char *name, void *arg, char *why, size_t whylen);

/* Decides the enrollment for an X.509 registration.
 *   registration_id  the ID the device sent (connection / request);
 *   leaf             the device certificate (required);
 *   chain            the other certificates the device presented, any order, may
 *                    include the root; NULL or empty when it sent none;
 *   individual       the individual enrollment stored under registration_id, or NULL;
 *   groups, ngroups  the enrollment groups (non-X.509 ones are skipped);
 *   resolve, arg     resolves caReferences (NULL: every CA reference is unusable);
 *   now              time to check validity against (0 = current time).
 * Always fills *res (outcome MATCH_REFUSED with a reason on any problem); release
 * it with match_result_clear. */
void match_x509(const char *registration_id, X509 *leaf, STACK_OF(X509) *chain,
                const struct enrollment *individual, struct enrollment *const *groups,
                size_t ngroups, match_ca_resolve_fn resolve, void *arg, time_t now,
                struct match_result *res);

/* Releases what res holds (the anchor reference) and zeroes it; NULL is fine. */
void match_result_clear(struct match_result *res);

#endif
