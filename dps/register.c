/* register.c - a device registration: attestation, hub allocation, the
 * registration record and the operation the device polls.
 *
 * The outcome is decided when the register request arrives and committed to
 * the store (registration state and operation) before the device is answered
 * 202 "assigning"; the first poll returns the terminal state. Every stock SDK
 * polls at least once, and devices that require 202 on register get it. */
#include "dps/dps_internal.h"

#include "authlog.h"
#include "certs/ca_registry.h"
#include "certs/x509.h"
#include "cfg.h"
#include "clock.h"
#include "enrollments/match.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "textenc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ERR_BAD_REQUEST 400004
#define ERR_UNAUTHORIZED 401002
#define ERR_NO_HUB 400208
#define ERR_HUB_UNAUTHORIZED 400209
#define ERR_CUSTOM_ALLOCATION 400207
#define ERR_NOT_FOUND 404203
#define ERR_INTERNAL 500000

void dps_answer_free(struct dps_answer *ans)
{
	json_decref(ans->body);
	ans->body = NULL;
}

void dps_answer_error(struct dps_answer *ans, int status, int error_code, const char *tracking_id,
		      const char *fmt, ...)
{
	char msg[768], ts[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_iso8601_now(ts);
	ans->status = status;
	ans->retry_after = status == 429 || status >= 500 ? 1 : -1;
	ans->body = json_pack("{s:i, s:s, s:s, s:s}", "errorCode", error_code, "trackingId",
			      tracking_id ? tracking_id : "", "message", msg, "timestampUtc", ts);
}

struct enr_list *dps_groups(struct dps *d)
{
	struct store_txn *txn = NULL;
	struct enr_list *fresh = NULL;
	uint64_t gen = 0;

	if (store_txn_begin(d->st, 0, &txn) != EMU_OK)
		return d->groups;
	if (enr_store_generation(d->es, txn, &gen) == EMU_OK &&
	    (!d->groups || d->groups->generation != gen) &&
	    enr_store_load_groups(d->es, txn, &fresh) == EMU_OK) {
		enr_list_free(d->groups);
		d->groups = fresh;
	}
	store_txn_abort(txn);
	return d->groups;
}

json_t *dps_registration_get(struct dps *d, const char *registration_id)
{
	char key[ENR_ID_MAX + 1];
	struct store_txn *txn = NULL;
	json_t *st = NULL;

	if (enrollment_id_valid(registration_id, NULL, 0) != EMU_OK)
		return NULL;
	enrollment_id_key(registration_id, key);
	if (store_txn_begin(d->st, 0, &txn) != EMU_OK)
		return NULL;
	store_get_json(txn, d->registrations, key, &st);
	store_txn_abort(txn);
	return st;
}

static X509 *resolve_ca(const char *name, void *arg, char *why, size_t whylen)
{
	struct dps *d = arg;
	X509 *ca = NULL;

	ca_registry_find_verified(d->cas, name, &ca, why, whylen);
	return ca;
}

/* DPS's etag shape: base64 of a quoted GUID. */
static void new_state_etag(char out[64])
{
	char uuid[37], quoted[40], *b64;

	rand_uuid(RAND_ID_ETAG, uuid);
	snprintf(quoted, sizeof(quoted), "\"%s\"", uuid);
	b64 = b64_encode(quoted, strlen(quoted));
	snprintf(out, 64, "%s", b64 ? b64 : uuid);
	free(b64);
}

/* Operation ids look like DPS's "4.d0a671905ea5b2c8.e7173b7b-0e54-...": URL-safe. */
static void new_operation_id(char out[64])
{
	unsigned char r[8];
	char hex[17], uuid[37];

	rand_id_bytes(RAND_ID_OPERATION, r, sizeof(r));
	hex_encode(r, sizeof(r), 0, hex);
	rand_uuid(RAND_ID_OPERATION, uuid);
	snprintf(out, 64, "4.%s.%s", hex, uuid);
}

static int hub_is_linked(struct dps *d, const char *hub)
{
	for (int i = 0; i < d->nlinked; i++)
		if (strcasecmp(d->linked_hubs[i], hub) == 0)
			return 1;
	return 0;
}

static uint32_t fnv1a_lower(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (uint8_t)tolower((unsigned char)*s);
		h *= 16777619u;
	}
	return h;
}

/* Picks the hub for e. Returns EMU_OK with the name in out, or an error with
 * *code (400208, 400207) and the reason in why. */
static int choose_hub(struct dps *d, const struct enrollment *e, const char *regid,
		      const char *current, char *out, size_t outlen, int *code, char *why,
		      size_t whylen)
{
	const char *cand[DPS_MAX_LINKED_HUBS];
	size_t n = 0, pick = 0;

	if (strcmp(e->allocation_policy, "custom") == 0) {
		*code = ERR_CUSTOM_ALLOCATION;
		snprintf(why, whylen, "custom allocation (webhooks) is not supported by dpsemu: use "
			 "hashed or static");
		return EMU_EINVAL;
	}
	if (e->iot_hubs && json_array_size(e->iot_hubs)) {
		for (size_t i = 0; i < json_array_size(e->iot_hubs) && n < DPS_MAX_LINKED_HUBS; i++) {
			const char *h = json_string_value(json_array_get(e->iot_hubs, i));
			if (h)
				cand[n++] = h;
		}
	} else if (e->iot_hub_host_name) {
		cand[n++] = e->iot_hub_host_name;
	} else {
		for (int i = 0; i < d->nlinked; i++)
			cand[n++] = d->linked_hubs[i];
	}
	for (size_t i = 0; i < n; i++)
		if (!hub_is_linked(d, cand[i])) {
			*code = ERR_NO_HUB;
			snprintf(why, whylen, "IoT hub '%s' of %s '%s' is not linked to this DPS (linked "
				 "hubs: %s; see DPSEMU_LINKED_HUBS)", cand[i],
				 e->kind == ENR_GROUP ? "enrollment group" : "enrollment", e->id,
				 d->cfg->linked_hubs);
			return EMU_EINVAL;
		}
	if (n == 0) {
		*code = ERR_NO_HUB;
		snprintf(why, whylen, "no IoT hub is linked to this DPS (see DPSEMU_LINKED_HUBS)");
		return EMU_EINVAL;
	}
	/* A device keeps its hub unless its reprovision policy re-evaluates it. */
	if (current && *current && hub_is_linked(d, current) && !e->update_hub_assignment) {
		snprintf(out, outlen, "%s", current);
		return EMU_OK;
	}
	if (strcmp(e->allocation_policy, "static") != 0)
		pick = fnv1a_lower(regid) % n; /* hashed; geoLatency has one location here */
	snprintf(out, outlen, "%s", cand[pick]);
	return EMU_OK;
}

/* Copies the device-facing registration state: internal members dropped. */
static json_t *device_state(const json_t *stored)
{
	json_t *v = json_deep_copy(stored), *val;
	const char *key;
	void *tmp;

	json_object_foreach_safe(v, tmp, key, val)
		if (key[0] == '_')
			json_object_del(v, key);
	return v;
}

/* Builds the new registration state for an attested device. */
static json_t *build_state(struct dps *d, const struct dps_reg_request *rq,
			   const struct enrollment *e, const json_t *old, json_t *payload,
			   int *failed)
{
	char hub[DPS_HUB_NAME_MAX], why[512], now[32], etag[64], thumb[65];
	const char *old_hub = json_string_value(json_object_get(old, "assignedHub"));
	const char *old_status = json_string_value(json_object_get(old, "status"));
	const char *created = json_string_value(json_object_get(old, "createdDateTimeUtc"));
	const char *device_id = e->kind == ENR_INDIVIDUAL && e->device_id ? e->device_id
									   : rq->registration_id;
	json_t *st;
	int code = 0;

	clock_iso8601_now(now);
	new_state_etag(etag);
	x509_thumbprint_sha256(rq->leaf, thumb);
	st = json_object();
	if (!st)
		return NULL;
	/* Real DPS puts x509 first. */
	if (e->kind == ENR_GROUP)
		json_object_set_new(st, "x509", json_pack("{s:s}", "enrollmentGroupId", e->id));
	else
		json_object_set_new(st, "x509", json_object());
	json_object_set_new(st, "registrationId", json_string(rq->registration_id));
	json_object_set_new(st, "createdDateTimeUtc", json_string(created ? created : now));
	if (choose_hub(d, e, rq->registration_id,
		       old_status && strcmp(old_status, "assigned") == 0 ? old_hub : NULL, hub,
		       sizeof(hub), &code, why, sizeof(why)) != EMU_OK) {
		*failed = 1;
		json_object_set_new(st, "status", json_string("failed"));
		json_object_set_new(st, "errorCode", json_integer(code));
		json_object_set_new(st, "errorMessage", json_string(why));
		log_info("dps", "registration '%s' failed: %d %s", rq->registration_id, code, why);
	} else {
		const char *substatus = "initialAssignment";
		if (old_hub && old_status && strcmp(old_status, "assigned") == 0) {
			if (strcasecmp(old_hub, hub) != 0)
				substatus = e->migrate_device_data ? "deviceDataMigrated"
								   : "deviceDataReset";
			else if (json_is_string(json_object_get(old, "substatus")))
				substatus = json_string_value(json_object_get(old, "substatus"));
		}
		*failed = 0;
		json_object_set_new(st, "assignedHub", json_string(hub));
		json_object_set_new(st, "deviceId", json_string(device_id));
		json_object_set_new(st, "status", json_string("assigned"));
		json_object_set_new(st, "substatus", json_string(substatus));
	}
	json_object_set_new(st, "lastUpdatedDateTimeUtc", json_string(now));
	json_object_set_new(st, "etag", json_string(etag));
	if (payload && !json_is_null(payload))
		json_object_set(st, "payload", payload);
	/* Internal members (never sent): for queries by group and for the hub. */
	if (e->kind == ENR_GROUP) {
		char gkey[ENR_ID_MAX + 1];
		enrollment_id_key(e->id, gkey);
		json_object_set_new(st, "_enrollmentGroupKey", json_string(gkey));
	}
	json_object_set_new(st, "_enrollmentKind",
			    json_string(e->kind == ENR_GROUP ? "group" : "individual"));
	json_object_set_new(st, "_thumbprint", json_string(thumb));
	return st;
}

/* A device that registers again without a CSR keeps the certificate it was
 * issued while that is valid and its enrollment still issues: the hub goes on
 * trusting the issuing CA for it (devices re-provision at every boot). */
static void keep_issued_certificate(json_t *state, const json_t *old, const struct enrollment *e)
{
	json_t *prev = json_object_get(old, "issuedCertificate");
	const char *not_after = json_string_value(json_object_get(prev, "notAfterUtc"));
	char now[32];

	clock_iso8601(time(NULL), now);
	/* Same ISO-8601 shape on both sides: the strings compare as times. */
	if (e->credential_policy && not_after && strcmp(not_after, now) > 0)
		json_object_set(state, "issuedCertificate", prev);
}

/* The operation record: what polls of operation opid answer. */
static json_t *operation_record(const char *opid, const char *key, const char *thumb,
				const json_t *state, json_t *chain)
{
	json_t *view = device_state(state);

	/* The issued chain goes to the device once, in this answer only. */
	if (view && chain)
		json_object_set(view, "issuedCertificateChain", chain);
	/* The thumbprint binds the operation to the certificate that asked. */
	return json_pack("{s:s, s:s, s:o, s:I}", "registrationKey", key, "thumbprint", thumb,
			 "result",
			 json_pack("{s:s, s:s, s:o}", "operationId", opid, "status",
				   json_string_value(json_object_get(state, "status")),
				   "registrationState", view),
			 "created", (json_int_t)time(NULL));
}

/* Commits the outcome: the operation and, when save_state, the registration. */
static int save_outcome(struct dps *d, const char *opid, const char *key, const char *thumb,
			const json_t *state, int save_state, json_t *chain)
{
	struct store_txn *txn = NULL;
	json_t *op = operation_record(opid, key, thumb, state, chain);
	int rc = EMU_ENOMEM;

	if (op && (rc = store_txn_begin(d->st, 1, &txn)) == EMU_OK) {
		if ((save_state && (rc = store_put_json(txn, d->registrations, key, state))) ||
		    (rc = store_put_json(txn, d->operations, opid, op)))
			store_txn_abort(txn);
		else
			rc = store_txn_commit(txn);
	}
	json_decref(op);
	return rc;
}

/* One registration's outcome in dpsemu_registrations_total. */
static void count_outcome(struct dps *d, const char *transport, const char *outcome)
{
	metrics_inc(d->registrations_total, METRICS_LABELS(transport, outcome));
}

struct assignment {
	struct dps *d;
	uint64_t epoch;    /* d->reset_epoch when started */
	char transport[8]; /* for the metric */
	char opid[64];
	char key[ENR_ID_MAX + 1];
	char thumb[65];
	json_t *state;
	json_t *chain; /* issued certificate chain, or NULL */
};

static void assignment_done(void *arg, int ok, const char *why)
{
	struct assignment *a = arg;
	const char *regid = json_string_value(json_object_get(a->state, "registrationId"));

	if (a->epoch != a->d->reset_epoch) {
		/* The emulator was reset meanwhile: this registration no longer exists. */
		log_info("dps", "registration '%s': outcome dropped (reset while assigning)",
			 regid);
		goto out;
	}
	count_outcome(a->d, a->transport, ok ? "assigned" : "failed");
	if (ok) {
		log_info("dps", "registration '%s': assigned to %s as device '%s'", regid,
			 json_string_value(json_object_get(a->state, "assignedHub")),
			 json_string_value(json_object_get(a->state, "deviceId")));
	} else {
		json_object_del(a->state, "assignedHub");
		json_object_del(a->state, "deviceId");
		json_object_del(a->state, "substatus");
		json_object_set_new(a->state, "status", json_string("failed"));
		json_object_set_new(a->state, "errorCode", json_integer(ERR_HUB_UNAUTHORIZED));
		json_object_set_new(a->state, "errorMessage", json_string(why));
		log_info("dps", "registration '%s' failed: %d %s", regid, ERR_HUB_UNAUTHORIZED, why);
	}
	if (save_outcome(a->d, a->opid, a->key, a->thumb, a->state, 1, ok ? a->chain : NULL) !=
	    EMU_OK)
		log_error("dps", "registration '%s': storage error saving the outcome", regid);
out:
	json_decref(a->state);
	json_decref(a->chain);
	free(a);
}

/* Commits the operation as "assigning" and starts registering the device in
 * its hub; assignment_done records the outcome. */
static int start_assignment(struct dps *d, const char *transport, const char *opid,
			    const char *key, const char *thumb, json_t *state, json_t *chain,
			    const json_t *old, const struct enrollment *e, X509 *leaf)
{
	const char *old_status = json_string_value(json_object_get(old, "status"));
	const char *substatus = json_string_value(json_object_get(state, "substatus"));
	json_t *pending = json_pack("{s:s, s:s}", "registrationId",
				    json_string_value(json_object_get(state, "registrationId")),
				    "status", "assigning");
	struct assignment *a = calloc(1, sizeof(*a));
	int first = !old_status || strcmp(old_status, "assigned") != 0;
	int rc = EMU_ENOMEM;

	if (!a || !pending)
		goto fail;
	a->d = d;
	a->epoch = d->reset_epoch;
	snprintf(a->transport, sizeof(a->transport), "%s", transport);
	snprintf(a->opid, sizeof(a->opid), "%s", opid);
	snprintf(a->key, sizeof(a->key), "%s", key);
	snprintf(a->thumb, sizeof(a->thumb), "%s", thumb);
	a->state = json_incref(state);
	a->chain = json_incref(chain);
	if ((rc = save_outcome(d, opid, key, thumb, pending, 0, NULL)) != EMU_OK)
		goto fail;
	/* The initial twin applies to a new device and to a data reset. */
	rc = dps_hub_sync(d, json_string_value(json_object_get(state, "assignedHub")),
			  json_string_value(json_object_get(state, "deviceId")), e, leaf,
			  first || (substatus && strcmp(substatus, "deviceDataReset") == 0),
			  json_object_get(state, "issuedCertificate") != NULL, assignment_done, a);
	if (rc == EMU_OK) {
		json_decref(pending);
		return EMU_OK;
	}
fail:
	if (a) {
		json_decref(a->state);
		json_decref(a->chain);
	}
	free(a);
	json_decref(pending);
	return rc;
}

/* Validates the register body. Returns EMU_OK (with *payload and *csr set,
 * borrowed from *doc) or answers 400 and returns EMU_EINVAL. */
static int parse_body(const struct dps_reg_request *rq, json_t **doc, json_t **payload,
		      json_t **csr, struct dps_answer *ans)
{
	size_t i = 0;
	json_error_t err;
	json_t *rid;

	*doc = NULL;
	*payload = NULL;
	*csr = NULL;
	while (i < rq->body_len && isspace((unsigned char)rq->body[i]))
		i++;
	if (i == rq->body_len)
		return EMU_OK; /* empty: C# and Embedded C send nothing */
	*doc = json_loadb(rq->body + i, rq->body_len - i, 0, &err);
	if (!json_is_object(*doc)) {
		dps_answer_error(ans, 400, ERR_BAD_REQUEST, rq->tracking_id,
				 "register body is not a JSON object%s%s", *doc ? "" : ": ",
				 *doc ? "" : err.text);
		json_decref(*doc);
		*doc = NULL;
		return EMU_EINVAL;
	}
	rid = json_object_get(*doc, "registrationId");
	if (rid && !json_is_null(rid) &&
	    (!json_is_string(rid) || strcasecmp(json_string_value(rid), rq->registration_id) != 0)) {
		dps_answer_error(ans, 400, ERR_BAD_REQUEST, rq->tracking_id,
				 "registrationId in the body (%s) differs from the registration "
				 "'%s' of the connection", json_is_string(rid) ? json_string_value(rid)
									      : "not a string",
				 rq->registration_id);
		return EMU_EINVAL;
	}
	*payload = json_object_get(*doc, "payload");
	*csr = json_object_get(*doc, "csr");
	if (json_is_null(*csr))
		*csr = NULL;
	/* Issuance is a 2025-07-01-preview feature: older versions don't know csr. */
	if (*csr && (!rq->api_version || strncmp(rq->api_version, "2025-07-01", 10) < 0)) {
		dps_answer_error(ans, 400, DPS_ERR_CSR_API_VERSION, rq->tracking_id,
				 "the register request has a csr, which needs api-version "
				 "2025-07-01-preview or later (this request used %s)",
				 rq->api_version && *rq->api_version ? rq->api_version : "none");
		return EMU_EINVAL;
	}
	return EMU_OK;
}

void dps_register(struct dps *d, const struct dps_reg_request *rq, struct dps_answer *ans)
{
	struct match_result m;
	struct enrollment *individual = NULL;
	struct enr_list *groups;
	struct store_txn *txn = NULL;
	json_t *doc = NULL, *payload = NULL, *csr = NULL, *old = NULL, *state = NULL;
	json_t *chain = NULL, *issued = NULL;
	char key[ENR_ID_MAX + 1], why[512], opid[64], thumb[65];
	int failed = 0, code;

	memset(&m, 0, sizeof(m));
	memset(ans, 0, sizeof(*ans));
	ans->retry_after = -1;
	if (enrollment_id_valid(rq->registration_id, why, sizeof(why)) != EMU_OK) {
		dps_answer_error(ans, 400, ERR_BAD_REQUEST, rq->tracking_id,
				 "Invalid RegistrationId '%s': %s", rq->registration_id, why);
		goto out;
	}
	if (parse_body(rq, &doc, &payload, &csr, ans) != EMU_OK)
		goto out;
	if (!rq->leaf) {
		dps_answer_error(ans, 401, ERR_UNAUTHORIZED, rq->tracking_id,
				 "no client certificate was presented in the TLS handshake (X.509 "
				 "attestation needs the device certificate and its intermediates)");
		authlog_add(d->authlog, "dps", rq->registration_id, rq->peer, false,
			    AUTH_NO_CERTIFICATE, "no client certificate was presented");
		goto out;
	}
	enrollment_id_key(rq->registration_id, key);
	x509_thumbprint_sha256(rq->leaf, thumb);
	if (store_txn_begin(d->st, 0, &txn) == EMU_OK) {
		enr_store_get(d->es, txn, ENR_INDIVIDUAL, rq->registration_id, &individual);
		store_txn_abort(txn);
		txn = NULL;
	}
	groups = dps_groups(d);
	match_x509(rq->registration_id, rq->leaf, rq->chain, individual,
		   groups ? groups->items : NULL, groups ? groups->count : 0, resolve_ca, d, 0, &m);
	authlog_add(d->authlog, "dps", rq->registration_id, rq->peer, m.outcome == MATCH_OK,
		    m.cls, m.reason);
	if (m.outcome == MATCH_REFUSED) {
		dps_answer_error(ans, 401, ERR_UNAUTHORIZED, rq->tracking_id, "%s", m.reason);
		goto out;
	}
	if (csr && !m.enrollment->credential_policy) {
		dps_answer_error(ans, 400, DPS_ERR_CSR_NO_POLICY, rq->tracking_id,
				 "the register request has a csr but %s '%s' has no "
				 "credentialPolicyName: certificate issuance is not enabled for it",
				 m.enrollment->kind == ENR_GROUP ? "enrollment group" : "enrollment",
				 m.enrollment->id);
		goto out;
	}
	/* A disabled enrollment issues nothing. */
	if (csr && m.outcome == MATCH_OK &&
	    dps_issue_certificate(d, rq->registration_id,
				  m.enrollment->kind == ENR_INDIVIDUAL && m.enrollment->device_id
					  ? m.enrollment->device_id
					  : rq->registration_id,
				  m.enrollment, csr, &chain, &issued, &code, why, sizeof(why)) != EMU_OK) {
		dps_answer_error(ans, code >= 500000 ? 500 : 400, code, rq->tracking_id, "%s", why);
		goto out;
	}
	new_operation_id(opid);
	if (m.outcome == MATCH_DISABLED) {
		log_info("dps", "registration '%s' (%s %s): %s '%s' is disabled", rq->registration_id,
			 rq->transport, rq->api_version ? rq->api_version : "",
			 m.enrollment->kind == ENR_GROUP ? "enrollment group" : "enrollment",
			 m.enrollment->id);
		state = json_pack("{s:s, s:s}", "registrationId", rq->registration_id, "status",
				  "disabled");
	} else {
		if (store_txn_begin(d->st, 0, &txn) == EMU_OK) {
			store_get_json(txn, d->registrations, key, &old);
			store_txn_abort(txn);
			txn = NULL;
		}
		state = build_state(d, rq, m.enrollment, old, payload, &failed);
		/* The registration shows the current certificate: thumbprint, expiry. */
		if (state && issued)
			json_object_set(state, "issuedCertificate", issued);
		else if (state)
			keep_issued_certificate(state, old, m.enrollment);
	}
	if (!state) {
		dps_answer_error(ans, 500, ERR_INTERNAL, rq->tracking_id, "out of memory");
		goto out;
	}
	if (m.outcome == MATCH_OK && !failed) {
		/* The device must exist in its hub before DPS says "assigned": answer
		 * "assigning" now and finish when the hub has it. */
		if (start_assignment(d, rq->transport, opid, key, thumb, state, chain, old,
				     m.enrollment, rq->leaf) != EMU_OK) {
			dps_answer_error(ans, 500, ERR_INTERNAL, rq->tracking_id, "storage error");
			goto out;
		}
	} else if (save_outcome(d, opid, key, thumb, state, m.outcome == MATCH_OK, NULL) != EMU_OK) {
		dps_answer_error(ans, 500, ERR_INTERNAL, rq->tracking_id, "storage error");
		goto out;
	}
	ans->status = 202;
	ans->retry_after = d->cfg->retry_after;
	ans->body = json_pack("{s:s, s:s}", "operationId", opid, "status", "assigning");
	/* Assignments are counted when the hub has answered (assignment_done). */
	if (m.outcome == MATCH_DISABLED)
		count_outcome(d, rq->transport, "disabled");
	else if (failed)
		count_outcome(d, rq->transport, "failed");
out:
	if (ans->status >= 400) {
		count_outcome(d, rq->transport, "refused");
		log_info("dps", "registration '%s' (%s) refused: %d %s", rq->registration_id,
			 rq->transport, ans->status,
			 json_string_value(json_object_get(ans->body, "message")));
	}
	match_result_clear(&m);
	enrollment_free(individual);
	json_decref(doc);
	json_decref(old);
	json_decref(state);
	json_decref(chain);
	json_decref(issued);
}

void dps_operation_status(struct dps *d, const char *registration_id, const char *operation_id,
			  X509 *leaf, const char *tracking_id, struct dps_answer *ans)
{
	char key[ENR_ID_MAX + 1];
	struct store_txn *txn = NULL;
	json_t *op = NULL;
	const char *owner, *status, *thumb;
	char have[65] = "";

	memset(ans, 0, sizeof(*ans));
	ans->retry_after = -1;
	if (enrollment_id_valid(registration_id, NULL, 0) != EMU_OK || !operation_id ||
	    strlen(operation_id) >= 64) {
		dps_answer_error(ans, 404, ERR_NOT_FOUND, tracking_id, "operation '%s' not found",
				 operation_id ? operation_id : "");
		return;
	}
	enrollment_id_key(registration_id, key);
	if (store_txn_begin(d->st, 0, &txn) == EMU_OK) {
		store_get_json(txn, d->operations, operation_id, &op);
		store_txn_abort(txn);
	}
	owner = json_string_value(json_object_get(op, "registrationKey"));
	if (!op || !owner || strcmp(owner, key) != 0) {
		dps_answer_error(ans, 404, ERR_NOT_FOUND, tracking_id,
				 "operation '%s' not found for registration '%s'", operation_id,
				 registration_id);
		json_decref(op);
		return;
	}
	thumb = json_string_value(json_object_get(op, "thumbprint"));
	if (leaf)
		x509_thumbprint_sha256(leaf, have);
	if (!thumb || strcmp(thumb, have) != 0) {
		dps_answer_error(ans, 401, ERR_UNAUTHORIZED, tracking_id,
				 "operation '%s' was started with another certificate than the one "
				 "presented", operation_id);
		json_decref(op);
		return;
	}
	ans->body = json_incref(json_object_get(op, "result"));
	status = json_string_value(json_object_get(ans->body, "status"));
	if (status && strcmp(status, "assigning") == 0) {
		ans->status = 202; /* the hub has not confirmed the device yet */
		ans->retry_after = d->cfg->retry_after;
	} else {
		ans->status = 200;
	}
	json_decref(op);
}
