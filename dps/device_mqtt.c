/* device_mqtt.c - the DPS device API over MQTT.
 *
 * CONNECT username {idScope}/registrations/{registrationId}/api-version=...
 * [&ClientVersion=...], client id = registration id, X.509 in the TLS
 * handshake. Requests are PUBLISHes to $dps/registrations/PUT/iotdps-register/
 * and .../GET/iotdps-get-operationstatus/; answers go to
 * $dps/registrations/res/{status}/?$rid={rid}[&retry-after=N] with $rid first
 * (some SDKs parse the topic positionally). */
#include "dps/dps_internal.h"

#include "cfg.h"
#include "clock.h"
#include "enrollments/enrollment.h"
#include "err.h"
#include "log.h"
#include "mqtt_codec.h"
#include "mqtt_server.h"
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REGISTER_PREFIX "$dps/registrations/PUT/iotdps-register/?"
#define STATUS_PREFIX "$dps/registrations/GET/iotdps-get-operationstatus/?"
#define RESPONSE_FILTER "$dps/registrations/res/#"
#define RID_MAX 128

struct dps_mqtt_session {
	char registration_id[ENR_ID_MAX + 1];
	char api_version[64];
	char tracking[40];
};

/* Splits "{scope}/registrations/{id}/api-version=..." into its parts.
 * Returns EMU_OK or EMU_EINVAL. */
static int parse_username(const char *u, char *scope, size_t slen, char *regid, size_t rlen,
			  char *api, size_t alen)
{
	const char *ver = strstr(u, "/api-version="), *reg = strstr(u, "/registrations/");
	size_t n;

	if (!ver || !reg || reg > ver)
		return EMU_EINVAL;
	n = (size_t)(reg - u);
	if (n == 0 || n >= slen)
		return EMU_EINVAL;
	memcpy(scope, u, n);
	scope[n] = '\0';
	reg += strlen("/registrations/");
	n = (size_t)(ver - reg);
	if (n == 0 || n >= rlen)
		return EMU_EINVAL;
	memcpy(regid, reg, n);
	regid[n] = '\0';
	ver += strlen("/api-version=");
	n = strcspn(ver, "&");
	snprintf(api, alen, "%.*s", (int)n, ver);
	return EMU_OK;
}

static int dps_claims(void *arg, const struct mqtt_connect_info *ci)
{
	char scope[128], regid[ENR_ID_MAX + 1], api[64];
	(void)arg;
	return parse_username(ci->username, scope, sizeof(scope), regid, sizeof(regid), api,
			      sizeof(api)) == EMU_OK;
}

static int dps_connect(void *arg, struct mqtt_session *s, const struct mqtt_connect_info *ci)
{
	struct dps *d = arg;
	struct dps_mqtt_session *ds;
	char scope[128], regid[ENR_ID_MAX + 1], api[64];

	parse_username(ci->username, scope, sizeof(scope), regid, sizeof(regid), api, sizeof(api));
	if (strcmp(scope, d->cfg->id_scope) != 0) {
		log_info("dps", "registration '%s' from %s refused at CONNECT: ID scope '%s' is not "
			 "this DPS's scope '%s' (DPSEMU_ID_SCOPE)", regid, ci->peer, scope,
			 d->cfg->id_scope);
		return MQTT_CONNACK_NOT_AUTHORIZED;
	}
	if (strcmp(ci->client_id, regid) != 0) {
		log_info("dps", "registration '%s' from %s refused at CONNECT: client id '%s' must be "
			 "the registration id of the username", regid, ci->peer, ci->client_id);
		return MQTT_CONNACK_NOT_AUTHORIZED;
	}
	if (ci->has_password) {
		log_info("dps", "registration '%s' from %s refused at CONNECT: symmetric-key (SAS) "
			 "attestation is not supported yet; use X.509", regid, ci->peer);
		return MQTT_CONNACK_NOT_AUTHORIZED;
	}
	if (!ci->leaf) {
		log_info("dps", "registration '%s' from %s refused at CONNECT: no client certificate "
			 "in the TLS handshake and no SAS token", regid, ci->peer);
		return MQTT_CONNACK_NOT_AUTHORIZED;
	}
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return MQTT_CONNACK_SERVER_UNAVAILABLE;
	snprintf(ds->registration_id, sizeof(ds->registration_id), "%s", regid);
	snprintf(ds->api_version, sizeof(ds->api_version), "%s", api);
	mqtt_session_set_data(s, ds);
	log_debug("dps", "registration '%s' connected over MQTT from %s (api-version %s)", regid,
		  ci->peer, api);
	return MQTT_CONNACK_ACCEPTED;
}

static int dps_subscribe(void *arg, struct mqtt_session *s, const char *filter, int qos)
{
	(void)arg;
	if (strcmp(filter, RESPONSE_FILTER) != 0) {
		log_info("dps", "registration '%s': subscription to '%s' refused: DPS devices may "
			 "only subscribe to " RESPONSE_FILTER, mqtt_session_client_id(s), filter);
		return -1;
	}
	return qos > 1 ? 1 : qos;
}

static void send_answer(struct mqtt_session *s, const char *rid, size_t rid_len,
			struct dps_answer *ans)
{
	char topic[256];
	char *body = ans->body ? json_dumps(ans->body, JSON_COMPACT) : NULL;
	int n;

	if (ans->retry_after >= 0)
		n = snprintf(topic, sizeof(topic), "$dps/registrations/res/%d/?$rid=%.*s&retry-after=%d",
			     ans->status, (int)rid_len, rid, ans->retry_after);
	else
		n = snprintf(topic, sizeof(topic), "$dps/registrations/res/%d/?$rid=%.*s", ans->status,
			     (int)rid_len, rid);
	if (n > 0 && (size_t)n < sizeof(topic) &&
	    mqtt_session_publish(s, topic, body ? body : "", body ? strlen(body) : 0, 1, NULL) ==
		    EMU_ENOTFOUND)
		log_info("dps", "registration '%s': answer dropped: the device is not subscribed to "
			 RESPONSE_FILTER, mqtt_session_client_id(s));
	free(body);
}

static int dps_publish(void *arg, struct mqtt_session *s, const char *topic,
		       const unsigned char *payload, size_t len, int qos)
{
	struct dps *d = arg;
	struct dps_mqtt_session *ds = mqtt_session_data(s);
	struct query_pair rid, opid;
	struct dps_answer ans;
	const char *q;
	int is_register = strncmp(topic, REGISTER_PREFIX, strlen(REGISTER_PREFIX)) == 0;
	(void)qos;

	if (!is_register && strncmp(topic, STATUS_PREFIX, strlen(STATUS_PREFIX)) != 0) {
		log_info("dps", "registration '%s': publish to '%s' refused: not a DPS request topic",
			 ds->registration_id, topic);
		return EMU_EPROTO;
	}
	q = topic + strlen(is_register ? REGISTER_PREFIX : STATUS_PREFIX);
	if (query_find(q, strlen(q), "$rid", false, &rid) != EMU_OK || !rid.value_len ||
	    rid.value_len > RID_MAX) {
		log_info("dps", "registration '%s': request '%s' has no usable $rid", ds->registration_id,
			 topic);
		return EMU_EPROTO;
	}
	rand_uuid(ds->tracking);
	if (is_register) {
		struct dps_reg_request rq = {
			.registration_id = ds->registration_id,
			.leaf = mqtt_session_peer_leaf(s),
			.chain = mqtt_session_peer_chain(s),
			.body = (const char *)payload,
			.body_len = len,
			.api_version = ds->api_version,
			.transport = "mqtt",
			.tracking_id = ds->tracking,
		};
		dps_register(d, &rq, &ans);
	} else {
		char id[64] = "";
		if (query_find(q, strlen(q), "operationId", false, &opid) == EMU_OK &&
		    opid.value_len < sizeof(id))
			snprintf(id, sizeof(id), "%.*s", (int)opid.value_len, opid.value);
		dps_operation_status(d, ds->registration_id, id, ds->tracking, &ans);
	}
	send_answer(s, rid.value, rid.value_len, &ans);
	dps_answer_free(&ans);
	return EMU_OK;
}

static void dps_close(void *arg, struct mqtt_session *s)
{
	(void)arg;
	free(mqtt_session_data(s));
	mqtt_session_set_data(s, NULL);
}

int dps_mqtt_init(struct dps *d, struct mqtt_server *mqtt)
{
	struct mqtt_service svc = {
		.name = "dps",
		.arg = d,
		.claims = dps_claims,
		.on_connect = dps_connect,
		.on_subscribe = dps_subscribe,
		.on_publish = dps_publish,
		.on_puback = NULL,
		.on_close = dps_close,
	};
	return mqtt_server_add_service(mqtt, &svc);
}
