/* dps_internal.h - what the DPS modules share; not for use outside dps/. */
#ifndef DPSEMU_DPS_INTERNAL_H
#define DPSEMU_DPS_INTERNAL_H

#include "dps/dps.h"
#include "enrollments/enr_store.h"
#include "store.h"

#include <jansson.h>
#include <openssl/x509.h>

#define DPS_MAX_LINKED_HUBS 16
#define DPS_HUB_NAME_MAX 256
#define DPS_MAX_POLICIES 16

/* Certificate-issuance errors: Azure has not published its codes, these are
 * dpsemu's (all HTTP 400). */
#define DPS_ERR_CSR_INVALID 400240     /* not base64 of a DER PKCS#10 request */
#define DPS_ERR_CSR_SIGNATURE 400241   /* the CSR's signature does not verify */
#define DPS_ERR_CSR_CN 400242          /* subject CN is not the registration id */
#define DPS_ERR_CSR_KEY 400243         /* key type or size not accepted */
#define DPS_ERR_CSR_TOO_LARGE 400244
#define DPS_ERR_CSR_NO_POLICY 400245   /* the enrollment has no credential policy */
#define DPS_ERR_CSR_API_VERSION 400246 /* csr sent with a GA api-version */
#define DPS_ERR_CSR_KEY_REUSED 400247  /* public key already used by another device */

struct svcauth;
struct http_client;
struct issue_ca;
struct authlog;
struct metrics_family;

/* A service-API route argument: which kind of enrollment it serves. */
struct dps_kind_route {
	struct dps *d;
	enum enr_kind kind;
};

struct dps {
	const struct cfg *cfg;
	struct loop *lp;
	struct store *st;
	struct ca_registry *cas;
	struct enr_store *es;
	struct svcauth *auth;        /* provisioningserviceowner */
	store_table registrations;   /* lower-cased registration id -> registration state */
	store_table operations;      /* operation id -> {registrationId, result, created} */
	struct enr_list *groups;     /* parsed groups, rebuilt when the generation moves */
	char linked_hubs[DPS_MAX_LINKED_HUBS][DPS_HUB_NAME_MAX]; /* host names DPS assigns */
	int nlinked;
	struct dps_kind_route kind_routes[2]; /* indexed by enum enr_kind */
	struct http_client *hub_client;      /* calls to the hubs' service APIs */
	int hub_port;                        /* HTTPS port in the URLs of the hubs' APIs */
	struct issue_ca *issuer;             /* signs certificates from CSRs (borrowed) */
	int csr_keys;                        /* enum issue_keys */
	struct {
		char name[64];
		int64_t validity;            /* seconds */
	} policies[DPS_MAX_POLICIES];
	int npolicies;
	store_table issued;                  /* serial -> issued certificate record */
	store_table issued_keys;             /* public key SHA-256 -> {registrationId} */
	struct authlog *authlog;             /* attestation decisions (borrowed, may be NULL) */
	struct metrics_family *registrations_total; /* {transport, outcome} (may be NULL) */
	uint64_t reset_epoch;                /* bumped by dps_reset */
};

/* The answer to a device request, the same for MQTT and HTTPS. */
struct dps_answer {
	int status;       /* HTTP status: 202, 200, 4xx, 5xx */
	json_t *body;     /* owned; RegistrationOperationStatus or an error body */
	int retry_after;  /* seconds, or -1 for none */
};

/* A register request as the transports hand it over. */
struct dps_reg_request {
	const char *registration_id; /* from the MQTT username or the URL path */
	X509 *leaf;                  /* client certificate or NULL */
	STACK_OF(X509) *chain;       /* what the device sent after the leaf */
	const char *body;            /* request body as sent (may be empty) */
	size_t body_len;
	const char *api_version;     /* may be NULL */
	const char *transport;       /* "mqtt" or "https", for logs and metrics */
	const char *tracking_id;     /* request id for error bodies */
	const char *peer;            /* "ip:port" of the device, for the auth log */
};

/* register.c: attestation, allocation and the registration record. */
void dps_register(struct dps *d, const struct dps_reg_request *rq, struct dps_answer *ans);
/* The operation's state; the presented leaf must be the one that registered. */
void dps_operation_status(struct dps *d, const char *registration_id, const char *operation_id,
			  X509 *leaf, const char *tracking_id, struct dps_answer *ans);
/* The registration state of a device (service view; new reference) or NULL. */
json_t *dps_registration_get(struct dps *d, const char *registration_id);
/* Sets ans to an error: status, Azure body {errorCode, trackingId, message, timestampUtc}. */
void dps_answer_error(struct dps_answer *ans, int status, int error_code, const char *tracking_id,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void dps_answer_free(struct dps_answer *ans);
/* The current parsed enrollment groups (rebuilt after writes). Borrowed. */
struct enr_list *dps_groups(struct dps *d);

/* hub_link.c: creates or updates the device in its hub (and applies the
 * enrollment's initialTwin when apply_twin); a device with an issued
 * certificate authenticates by CA (the issuing CA), others by the thumbprint
 * of their certificate. Then calls done(arg, ok, why)
 * from the loop. Returns EMU_OK when started (done will be called), or an
 * error (done will not be called). */
typedef void (*dps_hub_done_fn)(void *arg, int ok, const char *why);
int dps_hub_sync(struct dps *d, const char *hub, const char *device_id,
		 const struct enrollment *e, X509 *leaf, int apply_twin, int issued,
		 dps_hub_done_fn done, void *arg);

/* issuance.c: certificates from CSRs. */
int dps_issuance_init(struct dps *d, struct http_server *http, char *why, size_t whylen);
/* enr_validate_opts callback: non-zero when name is a configured policy. */
int dps_policy_known(const char *name, void *arg);
/* Validity in seconds of the named policy, -1 if unknown. */
int64_t dps_policy_validity(const struct dps *d, const char *name);
/* Checks csr (the register body's member) and issues a certificate for
 * registration_id under e's credential policy. EMU_OK with *chain_out (base64
 * DER array [leaf, issuing CA, root]) and *info_out (X509CertificateInfo of the
 * leaf), both new references; otherwise *code (an Azure-style error code) and
 * why say what was wrong, and nothing was issued. */
int dps_issue_certificate(struct dps *d, const char *registration_id, const char *device_id,
			  const struct enrollment *e, const json_t *csr, json_t **chain_out,
			  json_t **info_out, int *code, char *why, size_t whylen);

/* Transports and the service API register themselves. */
int dps_mqtt_init(struct dps *d, struct mqtt_server *mqtt);
int dps_https_init(struct dps *d, struct http_server *http);
int dps_service_api_init(struct dps *d, struct http_server *http);

#endif
