/* device_mqtt.c - the DPS device API over MQTT.
 *
 * CONNECT username {idScope}/registrations/{registrationId}/api-version=...
 * [&ClientVersion=...], client id = registration id, X.509 in the TLS
 * handshake. Requests are PUBLISHes to $dps/registrations/PUT/iotdps-register/
 * and .../GET/iotdps-get-operationstatus/; answers go to
 * $dps/registrations/res/{status}/?$rid={rid}[&retry-after=N] with $rid first
 * (some SDKs parse the topic positionally). */
#include "dps/dps_internal.h"
#include "dps/wire.h"

#include "authlog.h"
#include "cfg.h"
#include "clock.h"
#include "enrollments/enrollment.h"
#include "err.h"
#include "log.h"
#include "mqtt_codec.h"
#include "mqtt_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESPONSE_FILTER "$dps/registrations/res/#"

struct dps_mqtt_session {
	char registration_id[DPS_WIRE_ID_MAX + 1];
	char api_version[DPS_WIRE_API_MAX + 1];
	char tracking[40];
};

static int dps_claims(void *arg, const struct mqtt_connect_info *ci)
{
	struct dps_username u;
	(void)arg;
	return dps_wire_parse_username(ci->username, &u) == EMU_OK;
}

static int dps_connect(void *arg, struct mqtt_session *s, const struct mqtt_connect_info *ci)
{
	struct dps *d = arg;
	struct dps_mqtt_session *ds;
	struct dps_username u;
	const char *scope = u.scope, *regid = u.registration_id, *api = u.api_version;
	char why[384];
	enum auth_reason cls = AUTH_OK;

	dps_wire_parse_username(ci->username, &u);
	if (strcmp(scope, d->cfg->id_scope) != 0) {
		cls = AUTH_OTHER;
		snprintf(why, sizeof(why), "ID scope '%s' is not this DPS's scope '%s' "
			 "(DPSEMU_ID_SCOPE)", scope, d->cfg->id_scope);
	} else if (strcmp(ci->client_id, regid) != 0) {
		cls = AUTH_OTHER;
		snprintf(why, sizeof(why), "client id '%s' must be the registration id of the "
			 "username", ci->client_id);
	} else if (ci->has_password) {
		cls = AUTH_SAS;
		snprintf(why, sizeof(why), "symmetric-key (SAS) attestation is not supported yet; "
			 "use X.509");
	} else if (!ci->leaf) {
		cls = AUTH_NO_CERTIFICATE;
		snprintf(why, sizeof(why), "no client certificate in the TLS handshake and no SAS "
			 "token");
	}
	if (cls != AUTH_OK) {
		log_info("dps", "registration '%s' from %s refused at CONNECT: %s", regid, ci->peer,
			 why);
		authlog_add(d->authlog, "dps", regid, ci->peer, false, cls, why);
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

	if (dps_wire_response_topic(topic, sizeof(topic), ans->status, rid, rid_len,
				    ans->retry_after) == EMU_OK &&
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
	struct dps_request_topic rt;
	struct dps_answer ans;
	int rc = dps_wire_parse_request_topic(topic, &rt);
	(void)qos;

	if (rc == EMU_ENOTFOUND) {
		log_info("dps", "registration '%s': publish to '%s' refused: not a DPS request topic",
			 ds->registration_id, topic);
		return EMU_EPROTO;
	}
	if (rc != EMU_OK) {
		log_info("dps", "registration '%s': request '%s' has no usable $rid or operationId",
			 ds->registration_id, topic);
		return EMU_EPROTO;
	}
	rand_uuid(RAND_ID_TRACKING, ds->tracking);
	if (rt.kind == DPS_REQ_REGISTER) {
		struct dps_reg_request rq = {
			.registration_id = ds->registration_id,
			.leaf = mqtt_session_peer_leaf(s),
			.chain = mqtt_session_peer_chain(s),
			.body = (const char *)payload,
			.body_len = len,
			.api_version = ds->api_version,
			.transport = "mqtt",
			.tracking_id = ds->tracking,
			.peer = mqtt_session_peer(s),
		};
		dps_register(d, &rq, &ans);
	} else {
		dps_operation_status(d, ds->registration_id, rt.operation_id,
				     mqtt_session_peer_leaf(s), ds->tracking, &ans);
	}
	send_answer(s, rt.rid, rt.rid_len, &ans);
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
