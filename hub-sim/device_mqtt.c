/* device_mqtt.c - the hub's device protocol over MQTT.
 *
 * A CONNECT whose username is {host}/{deviceId}[/{moduleId}]/?api-version=...
 * belongs to the hub. The device or module authenticates with its certificate
 * (thumbprint or CA chain, CN = device id or "deviceId/moduleId") or a SAS
 * token, against its own registry record; a refusal is CONNACK 5 with the
 * reason in the log. An identity reaches only its own topics: anything else
 * disconnects it. A module's twin topics act on the module twin; modules
 * receive no C2D.
 * Telemetry is committed before its PUBACK; twin requests are answered on
 * $iothub/twin/res/...; C2D and direct methods go out when the device has
 * subscribed to them. */
#include "hub-sim/hub_internal.h"

#include "authlog.h"
#include "certs/ca_registry.h"
#include "cfg.h"
#include "clock.h"
#include "err.h"
#include "hub-sim/auth.h"
#include "hub-sim/hub_wire.h"
#include "hub-sim/propbag.h"
#include "hub-sim/twin.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt_codec.h"
#include "mqtt_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_D2C_MESSAGE 262144 /* Azure's device-to-cloud limit */
#define MAX_SAS_TIMER_S (366u * 86400u) /* tokens valid longer are not timed */

static const char *mod_or_empty(const char *module_id)
{
	return module_id ? module_id : "";
}

struct hub_conn *hub_conn_find(struct hub *h, const char *device_id, const char *module_id)
{
	const char *m = mod_or_empty(module_id);

	for (struct hub_conn *c = h->conns; c; c = c->next)
		if (strcmp(c->module_id, m) == 0 && strcmp(c->device_id, device_id) == 0)
			return c;
	return NULL;
}

int hub_conn_is_connected(struct hub *h, const char *device_id, const char *module_id)
{
	return hub_conn_find(h, device_id, module_id) != NULL;
}

int64_t hub_conn_last_activity(struct hub *h, const char *device_id, const char *module_id)
{
	struct hub_conn *c = hub_conn_find(h, device_id, module_id);
	return c ? c->last_activity : 0; /* disconnected: the stored value stands */
}

void hub_conn_close(struct hub *h, const char *device_id, const char *module_id,
		    const char *reason)
{
	for (struct hub_conn *c = h->conns; c; c = c->next)
		if (strcmp(c->device_id, device_id) == 0 &&
		    (!module_id || strcmp(c->module_id, module_id) == 0)) {
			log_info("hub", "device '%s': disconnecting: %s", c->key, reason);
			mqtt_session_close(c->s, reason);
		}
}

void hub_conn_push_desired(struct hub *h, const char *device_id, const char *module_id,
			   const json_t *patch, int64_t version)
{
	struct hub_conn *c = hub_conn_find(h, device_id, module_id);
	char topic[128], *body;

	if (!c || !c->sub_desired)
		return;
	if (hub_wire_desired_topic(topic, sizeof(topic), version) != EMU_OK)
		return;
	body = json_dumps(patch, JSON_COMPACT);
	if (body) {
		/* Desired pushes go out at QoS 0, as the real hub sends them. */
		mqtt_session_publish(c->s, topic, body, strlen(body), 0, NULL);
		log_debug("hub", "device '%s': desired properties $version %lld pushed", c->key,
			  (long long)version);
	}
	free(body);
}

static int hub_claims(void *arg, const struct mqtt_connect_info *ci)
{
	struct hub_username u;
	(void)arg;
	return hub_wire_parse_username(ci->username, &u) == EMU_OK;
}

/* Verified CAs and DPS's issuing chain: what CA-authenticated devices chain to. */
static STACK_OF(X509) *trusted_cas(struct hub *h)
{
	STACK_OF(X509) *all = NULL;

	if (ca_registry_all_verified(h->cas, &all) != EMU_OK)
		return NULL;
	if (h->issuing_chain) {
		STACK_OF(X509) *issuing = h->issuing_chain;
		for (int i = 0; i < sk_X509_num(issuing); i++) {
			X509 *x = sk_X509_value(issuing, i);
			if (X509_up_ref(x) && !sk_X509_push(all, x))
				X509_free(x);
		}
	}
	return all;
}

static void sas_expired(void *arg)
{
	struct hub_conn *c = arg;

	c->sas_expiry = NULL; /* fired: the loop frees it */
	log_info("hub", "device '%s': SAS token expired, disconnecting", c->key);
	mqtt_session_close(c->s, "SAS token expired");
}

static int hub_connect(void *arg, struct mqtt_session *s, const struct mqtt_connect_info *ci)
{
	struct hub *h = arg;
	struct hub_username u;
	struct hub_auth_input in;
	struct store_txn *txn = NULL;
	struct hub_conn *c, *old;
	json_t *device = NULL; /* the record that authenticates: device or module */
	json_t *parent = NULL; /* a module's device */
	STACK_OF(X509) *trusted = NULL;
	const char *status;
	char key[HUB_IDENTITY_KEY_MAX + 1];
	uint64_t expiry = 0;
	enum auth_reason cls = AUTH_OTHER;
	char why[384];
	int rc;

	hub_wire_parse_username(ci->username, &u);
	if (!hub_wire_client_id_matches(&u, ci->client_id)) {
		snprintf(why, sizeof(why), "client id '%s' is not the identity of the username",
			 ci->client_id);
		log_info("hub", "device '%s' from %s refused: %s", u.device_id, ci->peer, why);
		authlog_add(h->authlog, "hub", u.device_id, ci->peer, false, AUTH_OTHER, why);
		return MQTT_CONNACK_NOT_AUTHORIZED;
	}
	if (store_txn_begin(h->st, 0, &txn) == EMU_OK) {
		hub_registry_get(h, txn, u.device_id, &device);
		/* A module authenticates with its own record; its device must be
		 * registered and enabled. */
		if (u.module_id[0] && device) {
			parent = device;
			device = NULL;
			hub_module_get(h, txn, u.device_id, u.module_id, &device);
		}
		store_txn_abort(txn);
	}
	hub_identity_key(u.device_id, u.module_id, key, NULL, 0);
	if (u.module_id[0] && (!parent || !device)) {
		snprintf(why, sizeof(why), "%s '%s' is not registered in the hub",
			 parent ? "module" : "device", parent ? key : u.device_id);
		cls = AUTH_UNKNOWN_DEVICE;
		goto refuse;
	}
	status = json_string_value(json_object_get(parent, "status"));
	if (status && strcmp(status, "enabled") != 0) {
		snprintf(why, sizeof(why), "device '%s' is %s", u.device_id, status);
		cls = AUTH_DISABLED;
		goto refuse;
	}
	trusted = trusted_cas(h);
	memset(&in, 0, sizeof(in));
	in.device_id = u.device_id;
	in.module_id = u.module_id;
	in.device = device;
	in.leaf = ci->leaf;
	in.chain = ci->chain;
	in.trusted = trusted;
	in.password = ci->has_password ? (const char *)ci->password : NULL;
	in.password_len = ci->password_len;
	in.hub_host = u.host;
	in.require_cn = h->cfg->hub_require_cn;
	rc = hub_auth_check(&in, &expiry, &cls, why, sizeof(why));
	if (trusted)
		sk_X509_pop_free(trusted, X509_free);
	if (rc != EMU_OK)
		goto refuse;
	json_decref(device);
	json_decref(parent);
	/* One connection per identity: the newcomer wins, as on Azure. A module's
	 * connection replaces only that module's. */
	if ((old = hub_conn_find(h, u.device_id, u.module_id)))
		mqtt_session_close(old->s,
				   u.module_id[0] ? "a new connection for the same module replaced it"
						  : "a new connection for the same device replaced it");
	c = calloc(1, sizeof(*c));
	if (!c)
		return MQTT_CONNACK_SERVER_UNAVAILABLE;
	c->h = h;
	c->s = s;
	snprintf(c->device_id, sizeof(c->device_id), "%s", u.device_id);
	snprintf(c->module_id, sizeof(c->module_id), "%s", u.module_id);
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	mqtt_session_set_data(s, c);
	c->last_activity = (int64_t)time(NULL);
	hub_registry_note_connection(h, c->device_id, c->module_id, 0);
	/* MQTT cannot renew a token in-band: the hub drops the connection when the
	 * token expires and the SDK reconnects with a new one. */
	if (expiry && expiry < (uint64_t)time(NULL) + MAX_SAS_TIMER_S)
		c->sas_expiry = loop_timer_add(h->lp, (expiry - (uint64_t)time(NULL)) * 1000u,
					       sas_expired, c);
	authlog_add(h->authlog, "hub", c->key, ci->peer, true, AUTH_OK, why);
	metrics_add(h->connected_devices, NULL, 1);
	log_info("hub", "%s '%s' connected from %s (%s%s)", c->module_id[0] ? "module" : "device",
		 c->key, ci->peer, ci->leaf ? "X.509" : "SAS",
		 u.has_api_version ? "" : ", no api-version");
	return MQTT_CONNACK_ACCEPTED;
refuse:
	log_info("hub", "%s '%s' from %s refused: %s", u.module_id[0] ? "module" : "device",
		 key[0] ? key : u.device_id, ci->peer, why);
	authlog_add(h->authlog, "hub", key[0] ? key : u.device_id, ci->peer, false, cls, why);
	json_decref(device);
	json_decref(parent);
	return MQTT_CONNACK_NOT_AUTHORIZED;
}

static void after_subscribe(void *arg)
{
	struct hub_conn *c = arg;

	c->after_subscribe = NULL;
	if (c->sub_c2d)
		hub_c2d_deliver(c->h, c);
	if (c->sub_methods)
		hub_methods_device_online(c->h, c);
}

static int hub_subscribe(void *arg, struct mqtt_session *s, const char *filter, int qos)
{
	struct hub_conn *c = mqtt_session_data(s);
	struct hub_subscription sub;
	(void)arg;

	if (hub_wire_check_subscribe(c->device_id, c->module_id, filter, &sub) != EMU_OK) {
		log_info("hub", "device '%s': %s", c->key, sub.reason);
		return -1;
	}
	switch (sub.kind) {
	case HUB_SUB_C2D: c->sub_c2d = 1; break;
	case HUB_SUB_TWIN_RESPONSES: c->sub_twin = 1; break;
	case HUB_SUB_DESIRED: c->sub_desired = 1; break;
	case HUB_SUB_METHODS: c->sub_methods = 1; break;
	default: break;
	}
	/* Queued C2D messages and waiting methods go out after the SUBACK. */
	if ((sub.kind == HUB_SUB_C2D || sub.kind == HUB_SUB_METHODS) && !c->after_subscribe)
		c->after_subscribe = loop_timer_add(c->h->lp, 0, after_subscribe, c);
	return qos > 1 ? 1 : qos;
}

static void twin_answer(struct hub_conn *c, const struct hub_publish_topic *t, int status,
			long long version, const json_t *body)
{
	char topic[256], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	if (hub_wire_twin_response_topic(topic, sizeof(topic), status, t->rid, t->rid_len,
					 version) == EMU_OK)
		mqtt_session_publish(c->s, topic, text ? text : "", text ? strlen(text) : 0, 0,
				     NULL);
	free(text);
}

static void twin_error(struct hub_conn *c, const struct hub_publish_topic *t, int status,
		       int code, const char *message)
{
	char ts[32], rid[40];
	json_t *body;

	clock_iso8601_now(ts);
	rand_uuid(RAND_ID_TRACKING, rid);
	log_info("hub", "device '%s': twin request refused: %d %s", c->key, status, message);
	/* Node ignores the status and looks for errorCode in the body. */
	body = json_pack("{s:i, s:s, s:s, s:s}", "errorCode", code, "trackingId", rid, "message",
			 message, "timestampUtc", ts);
	twin_answer(c, t, status, -1, body);
	json_decref(body);
}

static void twin_get(struct hub_conn *c, const struct hub_publish_topic *t)
{
	struct store_txn *txn = NULL;
	json_t *twin = NULL, *view;

	if (store_txn_begin(c->h->st, 0, &txn) == EMU_OK) {
		store_get_json(txn, c->h->twins, c->key, &twin);
		store_txn_abort(txn);
	}
	view = twin ? twin_device_view(twin) : NULL;
	if (!view)
		twin_error(c, t, 404, 404001, "the device has no twin");
	else
		twin_answer(c, t, 200, -1, view);
	json_decref(view);
	json_decref(twin);
}

static void twin_reported(struct hub_conn *c, const struct hub_publish_topic *t,
			  const unsigned char *payload, size_t len)
{
	struct store_txn *txn = NULL;
	json_t *twin = NULL, *patch;
	json_int_t version = 0;
	json_error_t jerr;
	char now[32], err[256];
	int rc;

	patch = json_loadb((const char *)payload, len, JSON_DECODE_ANY, &jerr);
	if (!patch) {
		snprintf(err, sizeof(err), "reported properties patch is not JSON: %s", jerr.text);
		twin_error(c, t, 400, 400004, err);
		return;
	}
	clock_iso8601_now(now);
	if (store_txn_begin(c->h->st, 1, &txn) != EMU_OK) {
		twin_error(c, t, 500, 500000, "storage unavailable");
		goto out;
	}
	if (store_get_json(txn, c->h->twins, c->key, &twin) != EMU_OK) {
		store_txn_abort(txn);
		twin_error(c, t, 404, 404001, "the device has no twin");
		goto out;
	}
	rc = twin_patch_reported(twin, patch, now, &version, err, sizeof(err));
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		twin_error(c, t, rc == EMU_ETOOBIG ? 413 : 400, rc == EMU_ETOOBIG ? 413002 : 400004,
			   err);
		goto out;
	}
	if (store_put_json(txn, c->h->twins, c->key, twin) != EMU_OK) {
		store_txn_abort(txn);
		twin_error(c, t, 500, 500000, "storage error");
		goto out;
	}
	if (store_txn_commit(txn) != EMU_OK) {
		twin_error(c, t, 500, 500000, "storage error");
		goto out;
	}
	twin_answer(c, t, 204, (long long)version, NULL);
out:
	json_decref(twin);
	json_decref(patch);
}

static int telemetry(struct hub_conn *c, const struct hub_publish_topic *t,
		     const unsigned char *payload, size_t len)
{
	struct propbag *bag = NULL;
	struct store_txn *txn = NULL;
	json_t *props = NULL;
	char err[256];
	int64_t seq = 0;
	int rc = EMU_EPROTO;

	if (len > MAX_D2C_MESSAGE) {
		log_info("hub", "device '%s': message of %zu bytes exceeds the %d-byte limit",
			 c->key, len, MAX_D2C_MESSAGE);
		return EMU_ETOOBIG;
	}
	if (propbag_parse(t->bag, t->bag_len, &bag, err, sizeof(err)) != EMU_OK) {
		log_info("hub", "device '%s': %s", c->key, err);
		return EMU_EPROTO;
	}
	props = propbag_to_json(bag);
	if (!props || store_txn_begin(c->h->st, 1, &txn) != EMU_OK)
		goto out;
	rc = hub_telemetry_add(c->h, txn, c->device_id, c->module_id, payload, len,
			       json_object_get(props, "properties"),
			       json_object_get(props, "systemProperties"), &seq);
	if (rc != EMU_OK) {
		store_txn_abort(txn);
		goto out;
	}
	/* Committed before the PUBACK: an acknowledged message is never lost. */
	if ((rc = store_txn_commit(txn)) != EMU_OK)
		goto out;
	log_debug("hub", "device '%s': telemetry #%lld (%zu bytes)", c->key, (long long)seq,
		  len);
	metrics_inc(c->h->telemetry_total, NULL);
	hub_telemetry_notify(c->h, c->device_id);
out:
	if (rc != EMU_OK && rc != EMU_EPROTO)
		log_error("hub", "device '%s': telemetry not stored: %s", c->key,
			  emu_strerror(rc));
	json_decref(props);
	propbag_free(bag);
	return rc;
}

static int hub_publish(void *arg, struct mqtt_session *s, const char *topic,
		       const unsigned char *payload, size_t len, int qos)
{
	struct hub_conn *c = mqtt_session_data(s);
	struct hub_publish_topic t;
	(void)arg;
	(void)qos;

	c->last_activity = (int64_t)time(NULL);
	if (hub_wire_parse_publish(c->device_id, c->module_id, topic, &t) != EMU_OK) {
		log_info("hub", "device '%s': publish refused: %s", c->key, t.reason);
		return EMU_EPROTO;
	}
	switch (t.kind) {
	case HUB_PUB_TELEMETRY:
		return telemetry(c, &t, payload, len);
	case HUB_PUB_TWIN_GET:
		twin_get(c, &t);
		return EMU_OK;
	case HUB_PUB_TWIN_REPORTED:
		twin_reported(c, &t, payload, len);
		return EMU_OK;
	case HUB_PUB_METHOD_RESPONSE:
		hub_methods_device_response(c->h, c, t.rid, t.rid_len, t.status, payload, len);
		return EMU_OK;
	default:
		return EMU_EPROTO;
	}
}

static void hub_puback(void *arg, struct mqtt_session *s, uint16_t packet_id)
{
	struct hub_conn *c = mqtt_session_data(s);
	(void)arg;

	hub_c2d_acked(c->h, c, packet_id);
}

static void hub_close(void *arg, struct mqtt_session *s)
{
	struct hub_conn *c = mqtt_session_data(s);
	struct hub *h = arg;

	if (!c)
		return;
	log_info("hub", "%s '%s' disconnected", c->module_id[0] ? "module" : "device", c->key);
	hub_registry_note_connection(h, c->device_id, c->module_id, c->last_activity);
	metrics_add(h->connected_devices, NULL, -1);
	loop_timer_cancel(h->lp, c->after_subscribe);
	loop_timer_cancel(h->lp, c->sas_expiry);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	mqtt_session_set_data(s, NULL);
}

int hub_mqtt_init(struct hub *h, struct mqtt_server *mqtt)
{
	struct mqtt_service svc = {
		.name = "hub",
		.arg = h,
		.claims = hub_claims,
		.on_connect = hub_connect,
		.on_subscribe = hub_subscribe,
		.on_publish = hub_publish,
		.on_puback = hub_puback,
		.on_close = hub_close,
	};
	return mqtt_server_add_service(mqtt, &svc);
}
