/* c2d.c - cloud-to-device messages: a bounded queue per device in LMDB,
 * delivered at QoS 1 on devices/{id}/messages/devicebound/{properties} while
 * the device is connected and subscribed, completed (deleted) by its PUBACK,
 * and delivered again after a reconnect if it never acknowledged them.
 *
 * The official service SDKs send C2D over AMQP; until that exists, tests and
 * tools send with
 *   POST /_emulator/devices/{id}/messages   {"body": "...", "properties": {..},
 *        "messageId", "correlationId", "contentType", "contentEncoding", ...}
 *   GET  /_emulator/devices/{id}/messages   (the queue, oldest first) */
#include "hub-sim/hub_internal.h"

#include "buf.h"
#include "cfg.h"
#include "clock.h"
#include "err.h"
#include "http.h"
#include "hub-sim/hub_wire.h"
#include "hub-sim/propbag.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_server.h"
#include "textenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_C2D_BODY 65536 /* Azure's C2D size limit */

static const char *const system_names[] = { "messageId", "correlationId", "userId",
					    "contentType", "contentEncoding", "expiryTimeUtc",
					    "ack" };

struct queue_scan {
	const char *prefix;
	size_t prefix_len;
	json_t *items; /* [key, message] pairs when collecting messages, else NULL */
	json_t *keys;  /* the keys alone when collecting keys, else NULL */
	size_t count;
};

static int scan_queue(const char *key, const void *val, size_t len, void *arg)
{
	struct queue_scan *q = arg;

	if (strncmp(key, q->prefix, q->prefix_len) != 0)
		return 1;
	q->count++;
	if (q->items) {
		json_t *msg = json_loadb(val, len, 0, NULL);
		if (msg)
			json_array_append_new(q->items, json_pack("{s:s, s:o}", "key", key, "message",
								  msg));
	}
	if (q->keys && json_array_append_new(q->keys, json_string_nocheck(key)) != 0)
		return EMU_ENOMEM;
	return 0;
}

/* Reads the device's queue into q (with neither items nor keys: just counts).
 * Keys are "<id>/<seq>" and ids never contain '/', so the prefix names exactly
 * this device's messages. EMU_OK, EMU_EINVAL (id too long), EMU_ENOMEM, EMU_ESTORE. */
static int read_queue(struct hub *h, struct store_txn *txn, const char *device_id,
		      struct queue_scan *q, char *prefix, size_t prefix_len)
{
	int rc;

	q->count = 0;
	/* A truncated prefix would name other devices' messages too. */
	if (strlen(device_id) > HUB_DEVICE_ID_MAX || prefix_len < strlen(device_id) + 2)
		return EMU_EINVAL;
	snprintf(prefix, prefix_len, "%s/", device_id);
	q->prefix = prefix;
	q->prefix_len = strlen(prefix);
	rc = store_iter(txn, h->c2d, prefix, scan_queue, q);
	return rc < 0 ? rc : EMU_OK;
}

int hub_c2d_count(struct hub *h, struct store_txn *txn, const char *device_id, size_t *count)
{
	struct queue_scan q = { .items = NULL };
	char prefix[HUB_DEVICE_ID_MAX + 2];
	int rc = read_queue(h, txn, device_id, &q, prefix, sizeof(prefix));

	*count = rc == EMU_OK ? q.count : 0;
	return rc;
}

int hub_c2d_purge(struct hub *h, struct store_txn *txn, const char *device_id, size_t *purged)
{
	struct queue_scan q = { .keys = json_array() };
	char prefix[HUB_DEVICE_ID_MAX + 2];
	size_t i = 0;
	int rc = EMU_ENOMEM;

	if (purged)
		*purged = 0;
	if (!q.keys)
		goto out;
	/* Keys first, deletes after: the cursor never walks over its own deletions. */
	rc = read_queue(h, txn, device_id, &q, prefix, sizeof(prefix));
	for (i = 0; rc == EMU_OK && i < json_array_size(q.keys); i++)
		rc = store_del(txn, h->c2d, json_string_value(json_array_get(q.keys, i)));
	if (rc == EMU_OK && purged)
		*purged = i;
out:
	json_decref(q.keys);
	return rc;
}

int hub_c2d_enqueue(struct hub *h, struct store_txn *txn, const char *device_id, json_t *msg,
		    int64_t *seq)
{
	char meta_key[HUB_DEVICE_ID_MAX + 16], key[HUB_DEVICE_ID_MAX + 32];
	const void *val;
	size_t vlen;
	int64_t n = 0;
	int rc;

	*seq = 0;
	if (strlen(device_id) > HUB_DEVICE_ID_MAX)
		return EMU_EINVAL;
	/* The counter outlives purges and deletions, so a number is never reused:
	 * a late PUBACK for an old message cannot complete a new one. */
	snprintf(meta_key, sizeof(meta_key), "c2d-seq/%s", device_id);
	rc = store_get(txn, h->meta, meta_key, &val, &vlen);
	if (rc == EMU_OK && vlen == sizeof(n))
		memcpy(&n, val, sizeof(n));
	else if (rc != EMU_OK && rc != EMU_ENOTFOUND)
		return rc;
	n++;
	snprintf(key, sizeof(key), "%s/%020lld", device_id, (long long)n);
	if (json_object_set_new(msg, "sequenceNumber", json_integer(n)) != 0)
		return EMU_ENOMEM;
	if ((rc = store_put_json(txn, h->c2d, key, msg)) != EMU_OK ||
	    (rc = store_put(txn, h->meta, meta_key, &n, sizeof(n))) != EMU_OK)
		return rc;
	*seq = n;
	return EMU_OK;
}

static int inflight_has(const struct hub_conn *c, const char *key)
{
	for (int i = 0; i < HUB_C2D_INFLIGHT; i++)
		if (c->inflight[i].packet_id && strcmp(c->inflight[i].key, key) == 0)
			return 1;
	return 0;
}

static int free_slot(const struct hub_conn *c)
{
	for (int i = 0; i < HUB_C2D_INFLIGHT; i++)
		if (!c->inflight[i].packet_id)
			return i;
	return -1;
}

/* Removes a delivered or expired message from the queue. */
static void delete_message(struct hub *h, const char *key)
{
	struct store_txn *txn = NULL;

	if (store_txn_begin(h->st, 1, &txn) != EMU_OK)
		return;
	if (store_del(txn, h->c2d, key) == EMU_OK)
		store_txn_commit(txn);
	else
		store_txn_abort(txn);
}

/* True when the message's expiryTimeUtc has passed. */
static int expired(const json_t *msg, time_t now)
{
	const char *exp = json_string_value(
		json_object_get(json_object_get(msg, "systemProperties"), "expiryTimeUtc"));
	time_t t;

	return exp && clock_parse_iso8601(exp, &t) == EMU_OK && t <= now;
}

/* Publishes one queued message; returns EMU_OK or an error (logged). */
static int send_one(struct hub_conn *c, const char *key, const json_t *msg, int slot)
{
	struct propbag *bag = NULL;
	struct buf bagtext, topic;
	unsigned char *body = NULL;
	size_t body_len = 0;
	const char *b64 = json_string_value(json_object_get(msg, "body"));
	char err[256];
	uint16_t pid = 0;
	int rc;

	buf_init(&bagtext, 64 * 1024);
	buf_init(&topic, 70 * 1024);
	rc = propbag_from_json(json_object_get(msg, "properties"),
			       json_object_get(msg, "systemProperties"), &bag, err, sizeof(err));
	if (rc == EMU_OK)
		rc = propbag_encode(bag, &bagtext);
	if (rc == EMU_OK)
		rc = hub_wire_c2d_topic(&topic, c->device_id,
					bagtext.data ? (const char *)bagtext.data : "");
	if (rc == EMU_OK)
		rc = b64_decode(b64 ? b64 : "", b64 ? strlen(b64) : 0, &body, &body_len);
	if (rc == EMU_OK)
		rc = mqtt_session_publish(c->s, (const char *)topic.data, body, body_len, 1, &pid);
	if (rc == EMU_OK && pid) {
		c->inflight[slot].packet_id = pid;
		snprintf(c->inflight[slot].key, sizeof(c->inflight[slot].key), "%s", key);
		log_debug("hub", "device '%s': C2D %s delivered (packet %u)", c->device_id, key, pid);
	} else if (rc == EMU_OK) {
		/* Subscribed at QoS 0: delivered at most once, nothing will acknowledge it. */
		delete_message(c->h, key);
		log_info("hub", "device '%s': C2D message %s delivered at QoS 0 (complete)",
			 c->device_id, key);
	} else {
		log_warn("hub", "device '%s': C2D %s not deliverable: %s", c->device_id, key,
			 emu_strerror(rc));
	}
	if (rc == EMU_OK)
		metrics_inc(c->h->c2d_total, METRICS_LABELS("delivered"));
	free(body);
	propbag_free(bag);
	buf_free(&bagtext);
	buf_free(&topic);
	return rc;
}

void hub_c2d_deliver(struct hub *h, struct hub_conn *c)
{
	struct queue_scan q = { .items = json_array() };
	struct store_txn *txn = NULL;
	char prefix[HUB_DEVICE_ID_MAX + 2];
	size_t i;

	if (!c->sub_c2d || !q.items || store_txn_begin(h->st, 0, &txn) != EMU_OK) {
		json_decref(q.items);
		return;
	}
	if (read_queue(h, txn, c->device_id, &q, prefix, sizeof(prefix)) != EMU_OK)
		log_warn("hub", "device '%s': C2D queue unreadable", c->device_id);
	store_txn_abort(txn);
	for (i = 0; i < json_array_size(q.items); i++) {
		json_t *it = json_array_get(q.items, i);
		const char *key = json_string_value(json_object_get(it, "key"));
		int slot;
		if (inflight_has(c, key))
			continue;
		if (expired(json_object_get(it, "message"), time(NULL))) {
			delete_message(h, key);
			log_info("hub", "device '%s': C2D message %s expired undelivered", c->device_id,
				 key);
			continue;
		}
		if ((slot = free_slot(c)) < 0)
			break; /* the rest goes out as the device acknowledges */
		if (send_one(c, key, json_object_get(it, "message"), slot) != EMU_OK)
			break;
	}
	json_decref(q.items);
}

void hub_c2d_acked(struct hub *h, struct hub_conn *c, uint16_t packet_id)
{
	for (int i = 0; i < HUB_C2D_INFLIGHT; i++) {
		if (c->inflight[i].packet_id != packet_id)
			continue;
		c->inflight[i].packet_id = 0;
		delete_message(h, c->inflight[i].key);
		log_info("hub", "device '%s': C2D message %s completed", c->device_id,
			 c->inflight[i].key);
		metrics_inc(h->c2d_total, METRICS_LABELS("completed"));
		hub_c2d_deliver(h, c);
		return;
	}
}

/* Builds the stored message from the request body; answers 400 on bad input. */
static json_t *message_from_request(struct hub *h, struct http_req *r, const char *device_id)
{
	size_t len;
	const char *text = http_req_body(r, &len);
	json_error_t jerr;
	json_t *req = json_loadb(text, len, 0, &jerr), *sys, *props, *msg = NULL, *body;
	const char *enc;
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	char uuid[37], now[32], to[HUB_DEVICE_ID_MAX + 40], *b64 = NULL;
	(void)h;

	if (!json_is_object(req)) {
		hub_respond_error(r, 400, "ArgumentInvalid", "body must be a JSON object with "
				  "\"body\": %s", req ? "got another JSON value" : jerr.text);
		goto out;
	}
	body = json_object_get(req, "body");
	enc = json_string_value(json_object_get(req, "bodyEncoding"));
	props = json_object_get(req, "properties");
	if (!json_is_string(body) || (props && !json_is_object(props))) {
		hub_respond_error(r, 400, "ArgumentInvalid", "\"body\" must be a string and "
				  "\"properties\" an object");
		goto out;
	}
	if (enc && strcmp(enc, "base64") == 0) {
		if (b64_decode(json_string_value(body), json_string_length(body), &raw, &raw_len) !=
		    EMU_OK) {
			hub_respond_error(r, 400, "ArgumentInvalid", "\"body\" is not base64");
			goto out;
		}
		b64 = b64_encode(raw, raw_len);
	} else {
		raw_len = json_string_length(body);
		b64 = b64_encode(json_string_value(body), raw_len);
	}
	if (raw_len > MAX_C2D_BODY) {
		hub_respond_error(r, 400, "MessageTooLarge", "message body of %zu bytes exceeds %d",
				  raw_len, MAX_C2D_BODY);
		goto out;
	}
	{
		json_t *exp = json_object_get(req, "expiryTimeUtc");
		time_t t;
		if (exp && (!json_is_string(exp) ||
			    clock_parse_iso8601(json_string_value(exp), &t) != EMU_OK)) {
			hub_respond_error(r, 400, "ArgumentInvalid", "\"expiryTimeUtc\" must be an "
					  "ISO-8601 time such as 2026-11-23T04:00:00Z");
			goto out;
		}
	}
	sys = json_object();
	for (size_t i = 0; i < sizeof(system_names) / sizeof(system_names[0]); i++) {
		json_t *v = json_object_get(req, system_names[i]);
		if (json_is_string(v))
			json_object_set(sys, system_names[i], v);
	}
	if (!json_object_get(sys, "messageId")) {
		rand_uuid(RAND_ID_MESSAGE, uuid);
		json_object_set_new(sys, "messageId", json_string(uuid));
	}
	snprintf(to, sizeof(to), "/devices/%s/messages/devicebound", device_id);
	json_object_set_new(sys, "to", json_string(to));
	clock_iso8601_now(now);
	msg = json_pack("{s:s, s:o, s:o, s:s}", "body", b64 ? b64 : "", "systemProperties", sys,
			"properties", props ? json_incref(props) : json_object(), "enqueuedTimeUtc",
			now);
out:
	free(raw);
	free(b64);
	json_decref(req);
	return msg;
}

static void send_message(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *device_id = http_req_param(r, 0);
	size_t queued = 0;
	struct store_txn *txn = NULL;
	json_t *msg = NULL, *device = NULL;
	struct hub_conn *c;
	int64_t seq = 0;

	if (hub_require_auth(h, r) != EMU_OK || !(msg = message_from_request(h, r, device_id)))
		goto out;
	if (store_txn_begin(h->st, 1, &txn) != EMU_OK) {
		hub_respond_error(r, 500, "ServerError", "storage unavailable");
		goto out;
	}
	if (hub_registry_get(h, txn, device_id, &device) != EMU_OK) {
		hub_respond_error(r, 404, "DeviceNotFound", "device '%s' is not registered", device_id);
		goto out;
	}
	if (hub_c2d_count(h, txn, device_id, &queued) != EMU_OK) {
		hub_respond_error(r, 500, "ServerError", "storage error");
		goto out;
	}
	if (queued >= (size_t)h->cfg->c2d_queue_max) {
		hub_respond_error(r, 403, "DeviceMaximumQueueDepthExceeded", "device '%s' already has "
				  "%zu queued messages (DPSEMU_C2D_QUEUE_MAX)", device_id, queued);
		goto out;
	}
	if (hub_c2d_enqueue(h, txn, device_id, msg, &seq) != EMU_OK) {
		hub_respond_error(r, 500, "ServerError", "storage error");
		goto out;
	}
	if (store_txn_commit(txn) != EMU_OK) {
		txn = NULL;
		hub_respond_error(r, 500, "ServerError", "storage error");
		goto out;
	}
	txn = NULL;
	metrics_inc(h->c2d_total, METRICS_LABELS("queued"));
	log_info("hub", "device '%s': C2D message %s queued", device_id,
		 json_string_value(json_object_get(json_object_get(msg, "systemProperties"),
						   "messageId")));
	http_respond_json(r, 200, json_pack("{s:s, s:O, s:I}", "deviceId", device_id, "messageId",
					    json_object_get(json_object_get(msg, "systemProperties"),
							    "messageId"),
					    "sequenceNumber", (json_int_t)seq));
	if ((c = hub_conn_find(h, device_id, NULL)))
		hub_c2d_deliver(h, c);
out:
	store_txn_abort(txn);
	json_decref(device);
	json_decref(msg);
}

static void list_messages(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *device_id = http_req_param(r, 0);
	struct queue_scan q = { .items = json_array() };
	struct store_txn *txn = NULL;
	char prefix[HUB_DEVICE_ID_MAX + 2];
	json_t *out = json_array();

	if (hub_require_auth(h, r) != EMU_OK || !q.items || !out ||
	    store_txn_begin(h->st, 0, &txn) != EMU_OK) {
		if (q.items && out)
			hub_respond_error(r, 500, "ServerError", "storage unavailable");
		json_decref(q.items);
		json_decref(out);
		return;
	}
	read_queue(h, txn, device_id, &q, prefix, sizeof(prefix));
	store_txn_abort(txn);
	for (size_t i = 0; i < json_array_size(q.items); i++)
		json_array_append(out, json_object_get(json_array_get(q.items, i), "message"));
	json_decref(q.items);
	http_respond_json(r, 200, json_pack("{s:s, s:o}", "deviceId", device_id, "messages", out));
}

int hub_c2d_init(struct hub *h, struct http_server *http)
{
	int rc = http_route(http, "POST", "/_emulator/devices/*/messages", send_message, h);
	return rc ? rc : http_route(http, "GET", "/_emulator/devices/*/messages", list_messages, h);
}
