/* enrollment.h - individual enrollments and enrollment groups: validation of the
 * service-API JSON documents and the parsed form used for attestation.
 *
 * A document arrives as the JSON body of the DPS service API (IndividualEnrollment
 * or EnrollmentGroup). enrollment_from_json validates every field, fills in the
 * service defaults and builds the *stored document*: the canonical JSON that
 * enr_store persists (with symmetric keys and raw certificates, which the API never
 * echoes back). enrollment_to_api_json turns it into what GET/PUT answer.
 *
 * Defaults when absent: provisioningStatus "enabled", allocationPolicy "hashed",
 * reprovisionPolicy {"updateHubAssignment":true,"migrateDeviceData":true},
 * capabilities {"iotEdge":false}. Unknown top-level members and read-only ones
 * (etag, timestamps, registrationState) in a request body are ignored; the
 * stored document carries only known members, in a fixed order.
 *
 * Registration and group IDs: 1..128 characters out of letters, digits and
 * '-', '.', '_', ':'; the last one a letter, digit or '-'. They are compared
 * case-insensitively: enrollment_id_key gives the lower-cased storage key and the
 * document keeps the spelling the client used. */
#ifndef DPSEMU_ENROLLMENT_H
#define DPSEMU_ENROLLMENT_H

#include "etag.h"

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>

#define ENR_ID_MAX   128
#define ENR_ETAG_LEN ETAG_UUID_LEN /* an enrollment's etag is a quoted UUID (etag_new_uuid) */

enum enr_kind { ENR_INDIVIDUAL = 0, ENR_GROUP = 1 };

enum enr_attestation { ENR_ATT_X509 = 0, ENR_ATT_SYMMETRIC_KEY, ENR_ATT_TPM, ENR_ATT_NONE };

/* Tells whether name is a configured credential policy (non-zero = known). */
typedef int (*enr_policy_known_fn)(const char *name, void *arg);

struct enr_validate_opts {
	/* NULL means no credential policy is configured: every credentialPolicyName
	 * (or certificatePolicyName / clientCertificateIssuancePolicy) is refused. */
	enr_policy_known_fn policy_known;
	void *policy_arg;
};

/* A parsed, validated enrollment. Everything is owned by the struct and released
 * by enrollment_free; pointers into doc stay valid as long as the struct lives. */
struct enrollment {
	enum enr_kind kind;
	char *id;        /* registrationId / enrollmentGroupId as given */
	char *device_id; /* individual only; NULL when not set */
	int enabled;     /* provisioningStatus == "enabled" */
	enum enr_attestation att;
	/* x509: client certificates (individual) or signing certificates (group),
	 * primary first, then secondary if set; NULL when the group uses caReferences
	 * or the attestation is not x509. */
	STACK_OF(X509) *certs;
	char *ca_refs[2];          /* group caReferences primary/secondary; NULL if unused */
	char *sym_keys[2];         /* symmetricKey primary/secondary (base64); NULL otherwise */
	char *allocation_policy;   /* "hashed", "geoLatency", "static" or "custom" */
	const json_t *iot_hubs;    /* array of strings, points into doc; NULL if absent */
	char *iot_hub_host_name;   /* NULL if absent */
	int iot_edge;              /* capabilities.iotEdge */
	int update_hub_assignment; /* reprovisionPolicy */
	int migrate_device_data;
	/* Name of the credential policy that issues certificates to this enrollment's
	 * devices: credentialPolicyName, or certificatePolicyName of the
	 * namespaceName/certificateAuthorityName/certificatePolicyName trio, or
	 * clientCertificateIssuancePolicy.certificateAuthorityName. NULL = no issuance. */
	char *credential_policy;
	char *etag;  /* NULL until enrollment_stamp */
	json_t *doc; /* the stored document */
};

/* Checks a registration or group ID (rules above). Returns EMU_OK, or EMU_EINVAL
 * with a reason in why that does not name the field ("must be 1 to 128 ...").
 * why may be NULL. */
int enrollment_id_valid(const char *id, char *why, size_t whylen);

/* Writes the lower-cased storage key of a valid id into out. */
void enrollment_id_key(const char *id, char out[ENR_ID_MAX + 1]);

/* "registrationId" or "enrollmentGroupId". */
const char *enrollment_id_field(enum enr_kind kind);

/* Validates a request body and builds a new enrollment.
 *   kind     individual or group;
 *   path_id  the ID from the URL, or NULL (seeds, bulk): then the body's ID member
 *            is required; otherwise the body's ID may be absent (the path is used)
 *            and must equal path_id case-insensitively when present;
 *   body     the request JSON (not modified);
 *   opts     credential policy validation (NULL = no policy configured).
 * Symmetric keys absent from the body are generated (64 random bytes each).
 * The result has no etag or timestamps: enr_store stamps it before writing.
 * Returns EMU_OK and *out (free with enrollment_free); EMU_EINVAL with a reason
 * naming the member ("attestation.x509.clientCertificates.primary.certificate: not a
 * PEM or base64 DER certificate"); EMU_ENOMEM; EMU_ECRYPTO if random bytes fail. */
int enrollment_from_json(enum enr_kind kind, const char *path_id, const json_t *body,
                         const struct enr_validate_opts *opts, struct enrollment **out, char *why,
                         size_t whylen);

/* Rebuilds an enrollment from a stored document (as written by enr_store). The
 * credential policy is not checked again and nothing is generated.
 * Returns EMU_OK and *out, EMU_ESTORE when the document is not a valid stored
 * enrollment (the reason is logged), EMU_ENOMEM. */
int enrollment_from_stored(enum enr_kind kind, const json_t *doc, struct enrollment **out);

/* Returns a new request body: body with the secrets an API client cannot send
 * back filled in from old, so that GET-modify-PUT keeps them:
 *   - symmetric keys absent from body are taken from old (when both use
 *     symmetricKey attestation) instead of being generated again;
 *   - a certificate entry carrying only "info" (as GET returns it) gets old's
 *     certificate when info.sha256Thumbprint or info.sha1Thumbprint names it.
 * old may be NULL (then a plain copy). Returns NULL on allocation failure. */
json_t *enrollment_merge_secrets(const json_t *body, const struct enrollment *old);

/* Gives e a new etag and lastUpdatedDateTimeUtc (now), and createdDateTimeUtc =
 * created, or now when created is NULL. Returns EMU_OK or EMU_ENOMEM. */
int enrollment_stamp(struct enrollment *e, const char *created);

/* True when a and b hold the same stored document, ignoring etag and timestamps. */
int enrollment_same_content(const struct enrollment *a, const struct enrollment *b);

/* The API view of e as a new reference (NULL on allocation failure): every
 * certificate is replaced by {"info": X509CertificateInfo}; symmetric keys are
 * included only when with_keys is non-zero (PUT responses), GET leaves them out. */
json_t *enrollment_to_api_json(const struct enrollment *e, int with_keys);

/* The AttestationMechanism for the attestationmechanism call, keys included, as a
 * new reference (NULL on allocation failure). */
json_t *enrollment_attestation_json(const struct enrollment *e);


/* Frees e and everything it owns; NULL is fine. */
void enrollment_free(struct enrollment *e);

#endif
