/* methods.c - direct methods: POST /twins/{id}/methods and, for a module,
 * POST /twins/{id}/modules/{mid}/methods (sent over the module's connection).
 *
 * The request waits (suspended, other traffic goes on) while the method
 * travels to the device on $iothub/methods/POST/{name}/?$rid={n} and the
 * device answers on $iothub/methods/res/{status}/?$rid={n}. A device is online
 * for methods while it is connected and subscribed to $iothub/methods/POST/#.
 * Offline with connectTimeoutInSeconds 0: 404 / 404103 at once; no answer
 * within responseTimeoutInSeconds: 504 / 504101. */
#include "hub-sim/hub_internal.h"

#include "err.h"
#include "http.h"
#include "hub-sim/hub_wire.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_RESPONSE_TIMEOUT 5
#define MAX_TIMEOUT 300
#define DEFAULT_RESPONSE_TIMEOUT 30

struct hub_method_call {
	struct hub *h;
	struct hub_method_call *prev, *next;
	struct http_req *req;
	struct loop_timer *timer;
	char device_id[HUB_DEVICE_ID_MAX + 1];
	char module_id[HUB_DEVICE_ID_MAX + 1]; /* "" for the device itself */
	char name[HUB_WIRE_METHOD_MAX + 1];
	char rid[16];
	char *payload;        /* JSON text sent to the device */
	int sent;
	int response_timeout; /* seconds */
};

static void call_free(struct hub_method_call *m)
{
	struct hub *h = m->h;

	if (m->prev)
		m->prev->next = m->next;
	else
		h->calls = m->next;
	if (m->next)
		m->next->prev = m->prev;
	loop_timer_cancel(h->lp, m->timer);
	free(m->payload);
	free(m);
}

/* One invocation's end in dpsemu_direct_methods_total. */
static void count_result(struct hub *h, const char *result)
{
	metrics_inc(h->methods_total, METRICS_LABELS(result));
}

static void on_timeout(void *arg)
{
	struct hub_method_call *m = arg;

	m->timer = NULL; /* the loop frees a fired timer */
	count_result(m->h, m->sent ? "timeout" : "offline");
	if (m->sent)
		hub_respond_method_error(m->req, 504, 504101, "Timed out waiting for the response "
					 "from device '%s' to method '%s'.", m->device_id, m->name);
	else
		hub_respond_method_error(m->req, 404, 404103, "Timed out waiting for device '%s' to "
					 "connect.", m->device_id);
	call_free(m);
}

/* Publishes the method to the device and starts the response timer. */
static int send_call(struct hub_method_call *m, struct hub_conn *c)
{
	char topic[HUB_WIRE_METHOD_MAX + 64];

	snprintf(m->rid, sizeof(m->rid), "%u", ++m->h->next_method_rid);
	if (hub_wire_method_request_topic(topic, sizeof(topic), m->name, m->rid) != EMU_OK)
		return EMU_EINVAL;
	/* Method requests travel at QoS 0, as on Azure. */
	if (mqtt_session_publish(c->s, topic, m->payload, strlen(m->payload), 0, NULL) != EMU_OK)
		return EMU_ECLOSED;
	m->sent = 1;
	loop_timer_cancel(m->h->lp, m->timer);
	m->timer = loop_timer_add(m->h->lp, (uint64_t)m->response_timeout * 1000u, on_timeout, m);
	log_info("hub", "device '%s': method '%s' invoked ($rid %s)", m->device_id, m->name, m->rid);
	return EMU_OK;
}

void hub_methods_device_online(struct hub *h, struct hub_conn *c)
{
	struct hub_method_call *m, *next;

	for (m = h->calls; m; m = next) {
		next = m->next;
		if (!m->sent && strcmp(m->device_id, c->device_id) == 0 &&
		    strcmp(m->module_id, c->module_id) == 0 && send_call(m, c) != EMU_OK) {
			count_result(h, "offline");
			hub_respond_method_error(m->req, 404, 404103, "device '%s' went away",
						 m->device_id);
			call_free(m);
		}
	}
}

void hub_methods_device_response(struct hub *h, struct hub_conn *c, const char *rid,
				 size_t rid_len, int status, const unsigned char *payload,
				 size_t len)
{
	struct hub_method_call *m;
	json_t *body;

	for (m = h->calls; m; m = m->next)
		if (m->sent && strlen(m->rid) == rid_len && memcmp(m->rid, rid, rid_len) == 0 &&
		    strcmp(m->device_id, c->device_id) == 0 &&
		    strcmp(m->module_id, c->module_id) == 0)
			break;
	if (!m) {
		log_info("hub", "device '%s': method response for unknown or expired $rid %.*s "
			 "ignored", c->device_id, (int)rid_len, rid);
		return;
	}
	body = len ? json_loadb((const char *)payload, len, JSON_DECODE_ANY, NULL) : json_null();
	if (!body) /* not JSON: hand it over as text rather than lose it */
		body = json_stringn((const char *)payload, len);
	log_info("hub", "device '%s': method '%s' answered %d", m->device_id, m->name, status);
	count_result(h, "answered");
	http_respond_json(m->req, 200, json_pack("{s:i, s:o}", "status", status, "payload",
						 body ? body : json_null()));
	call_free(m);
}

void hub_methods_cancel(struct hub *h, const char *why)
{
	while (h->calls) {
		count_result(h, "cancelled");
		hub_respond_method_error(h->calls->req, 503, 503000, "%s", why);
		call_free(h->calls);
	}
}

/* Reads an optional integer member in [lo, hi]; -1 when invalid. */
static int timeout_member(const json_t *req, const char *name, int def, int lo, int hi)
{
	json_t *v = json_object_get(req, name);
	json_int_t n;

	if (!v || json_is_null(v))
		return def;
	if (!json_is_integer(v))
		return -1;
	n = json_integer_value(v);
	return n < lo || n > hi ? -1 : (int)n;
}

/* module_id NULL: the device's own methods. */
static void invoke(struct hub *h, struct http_req *r, const char *module_id)
{
	const char *device_id = http_req_param(r, 0), *name;
	size_t len;
	const char *text = http_req_body(r, &len);
	struct store_txn *txn = NULL;
	struct hub_method_call *m = NULL;
	struct hub_conn *c;
	json_t *req = NULL, *device = NULL;
	int response_timeout, connect_timeout, found;

	if (hub_require_auth(h, r) != EMU_OK)
		return;
	req = json_loadb(text, len, 0, NULL);
	name = json_string_value(json_object_get(req, "methodName"));
	response_timeout = timeout_member(req, "responseTimeoutInSeconds", DEFAULT_RESPONSE_TIMEOUT,
					  MIN_RESPONSE_TIMEOUT, MAX_TIMEOUT);
	connect_timeout = timeout_member(req, "connectTimeoutInSeconds", 0, 0, MAX_TIMEOUT);
	if (!json_is_object(req) || !name || !*name || strlen(name) > HUB_WIRE_METHOD_MAX ||
	    strpbrk(name, "/?+#") || response_timeout < 0 || connect_timeout < 0) {
		hub_respond_error(r, 400, "ArgumentInvalid", "body must be {\"methodName\": a name "
				  "without / ? + #, \"payload\": JSON, \"responseTimeoutInSeconds\": "
				  "%d..%d, \"connectTimeoutInSeconds\": 0..%d}", MIN_RESPONSE_TIMEOUT,
				  MAX_TIMEOUT, MAX_TIMEOUT);
		goto out;
	}
	found = store_txn_begin(h->st, 0, &txn) == EMU_OK &&
		hub_registry_get(h, txn, device_id, &device) == EMU_OK;
	if (found && module_id) {
		json_decref(device);
		device = NULL;
		if (hub_module_get(h, txn, device_id, module_id, &device) != EMU_OK) {
			store_txn_abort(txn);
			hub_respond_error(r, 404, "ModuleNotFound", "module '%s' of device '%s' is "
					  "not registered", module_id, device_id);
			goto out;
		}
	}
	store_txn_abort(txn);
	if (!found) {
		hub_respond_error(r, 404, "DeviceNotFound", "device '%s' is not registered", device_id);
		goto out;
	}
	c = hub_conn_find(h, device_id, module_id);
	if ((!c || !c->sub_methods) && connect_timeout == 0) {
		count_result(h, "offline");
		hub_respond_method_error(r, 404, 404103, "Timed out waiting for device '%s' to "
					 "connect.", device_id);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m || !(m->payload = json_dumps(json_object_get(req, "payload") ?
						    json_object_get(req, "payload") : json_null(),
					    JSON_COMPACT | JSON_ENCODE_ANY))) {
		free(m);
		hub_respond_error(r, 500, "ServerError", "out of memory");
		goto out;
	}
	m->h = h;
	m->req = r;
	m->response_timeout = response_timeout;
	snprintf(m->device_id, sizeof(m->device_id), "%s", device_id);
	snprintf(m->module_id, sizeof(m->module_id), "%s", module_id ? module_id : "");
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->next = h->calls;
	if (h->calls)
		h->calls->prev = m;
	h->calls = m;
	http_req_suspend(r);
	if (c && c->sub_methods) {
		if (send_call(m, c) != EMU_OK) {
			count_result(h, "offline");
			hub_respond_method_error(r, 404, 404103, "device '%s' is not reachable",
						 device_id);
			call_free(m);
		}
	} else {
		m->timer = loop_timer_add(h->lp, (uint64_t)connect_timeout * 1000u, on_timeout, m);
	}
out:
	json_decref(req);
	json_decref(device);
}

static void invoke_device(void *arg, struct http_req *r)
{
	invoke(arg, r, NULL);
}

static void invoke_module(void *arg, struct http_req *r)
{
	invoke(arg, r, http_req_param(r, 1));
}

int hub_methods_init(struct hub *h, struct http_server *http)
{
	int rc = http_route(http, "POST", "/twins/*/methods", invoke_device, h);

	return rc ? rc : http_route(http, "POST", "/twins/*/modules/*/methods", invoke_module, h);
}
