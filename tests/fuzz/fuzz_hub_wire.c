/* Fuzz target for hub-sim/hub_wire: the input is tried as a CONNECT username, a
 * PUBLISH topic and a SUBSCRIBE filter (for a device and for a module), and as a
 * device id and method name for the builders. Whatever parses must keep the
 * header's promises; a hub username must never also be a DPS one (they share a
 * port). Any broken promise aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dps/wire.h"
#include "err.h"
#include "hub-sim/hub_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

static void check_username(const char *s)
{
	struct hub_username u;
	struct dps_username d;
	char cid[2 * HUB_WIRE_ID_MAX + 2];
	int rc = hub_wire_parse_username(s, &u);

	if (rc != EMU_OK) {
		require(rc == EMU_EINVAL && u.error != NULL && u.device_id[0] == '\0');
		return;
	}
	require(u.error == NULL);
	require(u.host[0] != '\0' && strlen(u.host) <= HUB_WIRE_HOST_MAX);
	require(hub_wire_valid_id(u.device_id, strlen(u.device_id)));
	require(u.module_id[0] == '\0' || hub_wire_valid_id(u.module_id, strlen(u.module_id)));
	require(strlen(u.api_version) <= HUB_WIRE_API_MAX);
	require(u.has_api_version == (u.api_version[0] != '\0'));
	require(strlen(u.model_id) <= HUB_WIRE_MODEL_MAX);
	require(strlen(u.client_type) <= HUB_WIRE_CLIENT_TYPE_MAX);
	for (const char *p = u.client_type; *p; p++)
		require(*p >= 0x20 && *p <= 0x7e);
	snprintf(cid, sizeof(cid), "%s%s%s", u.device_id, u.module_id[0] ? "/" : "", u.module_id);
	require(hub_wire_client_id_matches(&u, cid));
	/* DPS must not claim what the hub claims */
	require(dps_wire_parse_username(s, &d) != EMU_OK);
}

static void check_publish(const char *dev, const char *mod, const char *s)
{
	struct hub_publish_topic t;
	char topic[512];
	int rc = hub_wire_parse_publish(dev, mod, s, &t);
	size_t n = strlen(s);

	if (rc != EMU_OK) {
		require(rc == EMU_EPROTO && t.kind == HUB_PUB_NOT_ALLOWED);
		require(t.reason[0] != '\0' && strlen(t.reason) < HUB_WIRE_REASON_MAX);
		return;
	}
	require(t.kind != HUB_PUB_NOT_ALLOWED);
	require(strpbrk(s, "+#") == NULL);
	if (t.kind == HUB_PUB_TELEMETRY) {
		require(t.bag_len == 0 || (t.bag >= s && t.bag + t.bag_len <= s + n));
		require(t.bag_len == 0 || memchr(t.bag, '/', t.bag_len) == NULL);
		require(t.rid == NULL);
		return;
	}
	require(t.rid >= s && t.rid + t.rid_len <= s + n);
	require(t.rid_len >= 1 && t.rid_len <= HUB_WIRE_RID_MAX);
	/* the rid echoes into the response topic */
	require(hub_wire_twin_response_topic(topic, sizeof(topic), 200, t.rid, t.rid_len,
	                                     t.has_version ? t.version : -1) == EMU_OK);
	require(strncmp(topic, "$iothub/twin/res/200/?$rid=", 27) == 0);
	require(memcmp(topic + 27, t.rid, t.rid_len) == 0);
}

static void check_subscribe(const char *dev, const char *mod, const char *s)
{
	struct hub_subscription sub;
	int rc = hub_wire_check_subscribe(dev, mod, s, &sub);

	if (rc != EMU_OK) {
		require(rc == EMU_EPROTO && sub.kind == HUB_SUB_NOT_ALLOWED);
		require(sub.reason[0] != '\0');
		return;
	}
	require(sub.kind != HUB_SUB_NOT_ALLOWED && sub.reason[0] == '\0');
	require(sub.kind != HUB_SUB_C2D || !mod);
	require(sub.kind != HUB_SUB_MODULE_INPUTS || mod);
}

/* The input as a device id: what we build for it, its own topics accept. */
static void check_as_id(const char *s)
{
	struct hub_publish_topic t;
	struct hub_subscription sub;
	char topic[512];
	struct buf b;

	if (!hub_wire_valid_id(s, strlen(s)))
		return;
	buf_init(&b, 0);
	if (hub_wire_c2d_topic(&b, s, "a=1") == EMU_OK) {
		require(strpbrk(s, "+#") == NULL);
		snprintf(topic, sizeof(topic), "devices/%s/messages/devicebound/#", s);
		require(hub_wire_check_subscribe(s, NULL, topic, &sub) == EMU_OK &&
		        sub.kind == HUB_SUB_C2D);
		snprintf(topic, sizeof(topic), "devices/%s/messages/events/", s);
		require(hub_wire_parse_publish(s, NULL, topic, &t) == EMU_OK &&
		        t.kind == HUB_PUB_TELEMETRY);
		/* and nobody else's */
		require(hub_wire_parse_publish("other-device", NULL, topic, &t) == EMU_EPROTO ||
		        strcmp(s, "other-device") == 0);
	}
	buf_free(&b);
	if (hub_wire_method_request_topic(topic, sizeof(topic), s, "1") == EMU_OK) {
		size_t n = strlen(topic);

		require(n > 8 && strcmp(topic + n - 8, "/?$rid=1") == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_username(s);
	check_publish("dev1", NULL, s);
	check_publish("dev1", "m1", s);
	check_subscribe("dev1", NULL, s);
	check_subscribe("dev1", "m1", s);
	check_as_id(s);
	free(s);
	return 0;
}
