/* telemetry.c - the per-device telemetry log and its observation API.
 *
 * Every device-to-cloud message is committed to LMDB before the device gets
 * its PUBACK, under "<device id>/<20-digit per-device sequence number>", so a
 * test can read what a device sent, in order, across restarts:
 *
 *   GET /_emulator/telemetry?deviceId=d1[&since=N][&wait=S][&max=M]
 *
 * answers {"deviceId", "messages": [{sequenceNumber, enqueuedTimeUtc, body |
 * body + bodyEncoding "base64", properties, systemProperties, moduleId?}]}
 * with the messages after sequence number `since`; with `wait` it holds the
 * request until a message arrives or S seconds pass.
 *
 * With DPSEMU_FORWARD_MQTT each committed message also goes to a broker, as the
 * same JSON plus its deviceId (forward.h). */
#include "hub-sim/hub_internal.h"

#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "svcauth.h"
#include "textenc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WAIT_SECONDS 300
#define DEFAULT_MAX 1000

struct hub_waiter {
	struct hub *h;
	struct hub_waiter *prev, *next;
	struct http_req *req;
	struct loop_timer *timer;
	char device_id[HUB_DEVICE_ID_MAX + 1];
	int64_t since;
	size_t max;
};

static void seq_key(const char *device_id, int64_t seq, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%020lld", device_id, (long long)seq);
}

int hub_telemetry_add(struct hub *h, struct store_txn *txn, const char *device_id,
		      const char *module_id, const void *body, size_t len, const json_t *properties,
		      const json_t *system_properties, int64_t *seq)
{
	char meta_key[HUB_DEVICE_ID_MAX + 16], key[HUB_DEVICE_ID_MAX + 32], now[32];
	const void *val;
	size_t vlen;
	int64_t n = 0;
	json_t *msg;
	int rc;

	snprintf(meta_key, sizeof(meta_key), "telemetry-seq/%s", device_id);
	if (store_get(txn, h->meta, meta_key, &val, &vlen) == EMU_OK && vlen == sizeof(n))
		memcpy(&n, val, sizeof(n));
	n++;
	clock_iso8601_now(now);
	msg = json_pack("{s:I, s:s}", "sequenceNumber", (json_int_t)n, "enqueuedTimeUtc", now);
	if (!msg)
		return EMU_ENOMEM;
	if (module_id && *module_id)
		json_object_set_new(msg, "moduleId", json_string(module_id));
	if (utf8_valid(body, len)) {
		json_object_set_new(msg, "body", json_stringn(body, len));
	} else {
		char *b64 = b64_encode(body, len);
		json_object_set_new(msg, "body", json_string(b64 ? b64 : ""));
		json_object_set_new(msg, "bodyEncoding", json_string("base64"));
		free(b64);
	}
	json_object_set_new(msg, "properties",
			    properties ? json_deep_copy(properties) : json_object());
	json_object_set_new(msg, "systemProperties",
			    system_properties ? json_deep_copy(system_properties) : json_object());
	seq_key(device_id, n, key, sizeof(key));
	rc = store_put_json(txn, h->telemetry, key, msg);
	if (rc == EMU_OK)
		rc = store_put(txn, h->meta, meta_key, &n, sizeof(n));
	if (rc == EMU_OK && n > h->telemetry_keep) {
		/* The log is bounded: forget the message that just fell out of it. */
		seq_key(device_id, n - h->telemetry_keep, key, sizeof(key));
		store_del(txn, h->telemetry, key);
	}
	/* The broker gets this same JSON, once the transaction commits
	 * (hub_telemetry_notify). */
	if (rc == EMU_OK)
		hub_forward_stage(h->forward, device_id, msg);
	json_decref(msg);
	if (rc == EMU_OK && seq)
		*seq = n;
	return rc;
}

struct collect {
	const char *prefix;
	size_t prefix_len;
	size_t max;
	json_t *messages;
};

static int collect_message(const char *key, const void *val, size_t len, void *arg)
{
	struct collect *c = arg;
	json_t *msg;

	if (strncmp(key, c->prefix, c->prefix_len) != 0)
		return 1; /* past this device's keys */
	if (json_array_size(c->messages) >= c->max)
		return 1;
	msg = json_loadb(val, len, 0, NULL);
	if (msg)
		json_array_append_new(c->messages, msg);
	return 0;
}

/* The device's messages after since, or NULL on a storage error. */
static json_t *read_messages(struct hub *h, const char *device_id, int64_t since, size_t max)
{
	char prefix[HUB_DEVICE_ID_MAX + 2], after[HUB_DEVICE_ID_MAX + 32];
	struct collect c = { prefix, 0, max, json_array() };
	struct store_txn *txn = NULL;
	int rc;

	snprintf(prefix, sizeof(prefix), "%s/", device_id);
	c.prefix_len = strlen(prefix);
	seq_key(device_id, since, after, sizeof(after));
	if (!c.messages || store_txn_begin(h->st, 0, &txn) != EMU_OK) {
		json_decref(c.messages);
		return NULL;
	}
	rc = store_iter(txn, h->telemetry, after, collect_message, &c);
	store_txn_abort(txn);
	if (rc < 0) {
		json_decref(c.messages);
		return NULL;
	}
	return c.messages;
}

static void respond_messages(struct http_req *r, const char *device_id, json_t *messages)
{
	http_respond_json(r, 200, json_pack("{s:s, s:o}", "deviceId", device_id, "messages",
					    messages));
}

static void waiter_free(struct hub_waiter *w)
{
	struct hub *h = w->h;

	if (w->prev)
		w->prev->next = w->next;
	else
		h->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	loop_timer_cancel(h->lp, w->timer);
	free(w);
}

static void waiter_timeout(void *arg)
{
	struct hub_waiter *w = arg;

	w->timer = NULL; /* fired: the loop frees it */
	respond_messages(w->req, w->device_id, json_array());
	waiter_free(w);
}

void hub_telemetry_notify(struct hub *h, const char *device_id)
{
	struct hub_waiter *w, *next;

	hub_forward_commit(h->forward, device_id);
	for (w = h->waiters; w; w = next) {
		json_t *messages;
		next = w->next;
		if (strcmp(w->device_id, device_id) != 0)
			continue;
		messages = read_messages(h, w->device_id, w->since, w->max);
		if (!messages || json_array_size(messages) == 0) {
			json_decref(messages);
			continue;
		}
		respond_messages(w->req, w->device_id, messages);
		waiter_free(w);
	}
}

void hub_telemetry_cancel_waiters(struct hub *h)
{
	while (h->waiters) {
		hub_respond_error(h->waiters->req, 503, "ServiceUnavailable", "the emulator is shutting down");
		waiter_free(h->waiters);
	}
}

/* Parses a non-negative integer query parameter; answers 400 and returns -1 when bad. */
static long long query_number(struct http_req *r, const char *name, long long def, long long max)
{
	const char *v = http_req_query(r, name);
	char *end;
	long long n;

	if (!v || !*v)
		return def;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || n < 0 || n > max) {
		hub_respond_error(r, 400, "ArgumentInvalid", "query parameter %s='%s' is not a number from 0 "
				   "to %lld", name, v, max);
		return -1;
	}
	return n;
}

static void get_telemetry(void *arg, struct http_req *r)
{
	struct hub *h = arg;
	const char *device_id = http_req_query(r, "deviceId");
	long long since, wait, max;
	struct hub_waiter *w;
	json_t *messages;

	if (hub_require_auth(h, r) != EMU_OK)
		return;
	if (!device_id || !*device_id || strlen(device_id) > HUB_DEVICE_ID_MAX) {
		hub_respond_error(r, 400, "ArgumentInvalid", "query parameter deviceId is required");
		return;
	}
	if ((since = query_number(r, "since", 0, INT64_MAX)) < 0 ||
	    (wait = query_number(r, "wait", 0, MAX_WAIT_SECONDS)) < 0 ||
	    (max = query_number(r, "max", DEFAULT_MAX, 100000)) < 0)
		return;
	messages = read_messages(h, device_id, since, max ? (size_t)max : DEFAULT_MAX);
	if (!messages) {
		hub_respond_error(r, 500, "ServerError", "storage error reading telemetry");
		return;
	}
	if (json_array_size(messages) || wait == 0) {
		respond_messages(r, device_id, messages);
		return;
	}
	json_decref(messages);
	w = calloc(1, sizeof(*w));
	if (!w) {
		hub_respond_error(r, 500, "ServerError", "out of memory");
		return;
	}
	w->h = h;
	w->req = r;
	w->since = since;
	w->max = max ? (size_t)max : DEFAULT_MAX;
	snprintf(w->device_id, sizeof(w->device_id), "%s", device_id);
	w->timer = loop_timer_add(h->lp, (uint64_t)wait * 1000u, waiter_timeout, w);
	w->next = h->waiters;
	if (h->waiters)
		h->waiters->prev = w;
	h->waiters = w;
	http_req_suspend(r);
}

int hub_telemetry_init(struct hub *h, struct http_server *http)
{
	return http_route(http, "GET", "/_emulator/telemetry", get_telemetry, h);
}
