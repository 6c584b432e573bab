/* device_https.c - the DPS device API over HTTPS.
 *
 *   PUT  /{idScope}/registrations/{id}/register?api-version=...      -> 202
 *   GET  /{idScope}/registrations/{id}/operations/{operationId}      -> 200 / 202
 *   POST /{idScope}/registrations/{id}                               -> 200 state
 * X.509 devices authenticate with their TLS client certificate. */
#include "dps/dps_internal.h"

#include "certs/x509.h"
#include "cfg.h"
#include "err.h"
#include "http.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void send_answer(struct http_req *r, struct dps_answer *ans)
{
	char n[16];
	const json_t *code = json_object_get(ans->body, "errorCode");

	if (ans->retry_after >= 0) {
		snprintf(n, sizeof(n), "%d", ans->retry_after);
		http_resp_header(r, "Retry-After", n);
	}
	if (ans->status >= 400 && json_is_integer(code)) {
		snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(code));
		http_resp_header(r, "x-ms-error-code", n);
	}
	http_respond_json(r, ans->status, ans->body);
	ans->body = NULL;
}

/* Answers 404 and returns EMU_ENOTFOUND when the path's scope is not ours. */
static int check_scope(struct dps *d, struct http_req *r)
{
	const char *scope = http_req_param(r, 0);

	if (strcmp(scope, d->cfg->id_scope) == 0)
		return EMU_OK;
	http_respond_error(r, 404, 404201, "ID scope '%s' is not this DPS's scope '%s' "
			   "(DPSEMU_ID_SCOPE)", scope, d->cfg->id_scope);
	return EMU_ENOTFOUND;
}

static void put_register(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	struct dps_answer ans;
	size_t len;
	const char *body;
	struct dps_reg_request rq;

	if (check_scope(d, r) != EMU_OK)
		return;
	body = http_req_body(r, &len);
	rq = (struct dps_reg_request){
		.registration_id = http_req_param(r, 1),
		.leaf = http_req_peer_leaf(r),
		.chain = http_req_peer_chain(r),
		.body = body,
		.body_len = len,
		.api_version = http_req_query(r, "api-version"),
		.transport = "https",
		.tracking_id = http_req_id(r),
		.peer = http_req_peer(r),
	};
	dps_register(d, &rq, &ans);
	if (ans.status == 202) {
		char loc[512];
		snprintf(loc, sizeof(loc), "https://%s/%s/registrations/%s/register", d->cfg->hostname,
			 d->cfg->id_scope, rq.registration_id);
		http_resp_header(r, "Location", loc);
	}
	send_answer(r, &ans);
}

static void get_operation(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	struct dps_answer ans;

	if (check_scope(d, r) != EMU_OK)
		return;
	dps_operation_status(d, http_req_param(r, 1), http_req_param(r, 2), http_req_peer_leaf(r),
			     http_req_id(r), &ans);
	send_answer(r, &ans);
}

/* The registration status lookup: the device's own current state. */
static void post_status(void *arg, struct http_req *r)
{
	struct dps *d = arg;
	const char *id = http_req_param(r, 1);
	X509 *leaf = http_req_peer_leaf(r);
	json_t *st, *view, *val;
	const char *key, *thumb;
	char have[65];
	void *tmp;

	if (check_scope(d, r) != EMU_OK)
		return;
	if (!leaf) {
		http_respond_error(r, 401, 401002, "no client certificate was presented");
		return;
	}
	st = dps_registration_get(d, id);
	thumb = json_string_value(json_object_get(st, "_thumbprint"));
	x509_thumbprint_sha256(leaf, have);
	if (!st || !thumb || strcmp(thumb, have) != 0) {
		http_respond_error(r, 401, 401002, "registration '%s' is unknown or was made with "
				   "another certificate", id);
		json_decref(st);
		return;
	}
	view = json_deep_copy(st);
	json_object_foreach_safe(view, tmp, key, val)
		if (key[0] == '_')
			json_object_del(view, key);
	http_respond_json(r, 200, view);
	json_decref(st);
}

int dps_https_init(struct dps *d, struct http_server *http)
{
	int rc;

	if ((rc = http_route(http, "PUT", "/*/registrations/*/register", put_register, d)) ||
	    (rc = http_route(http, "GET", "/*/registrations/*/operations/*", get_operation, d)))
		return rc;
	return http_route(http, "POST", "/*/registrations/*", post_status, d);
}
