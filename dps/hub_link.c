/* hub_link.c - DPS registers assigned devices in their hub, through the hub's
 * service API (PUT /devices/{id}, then PUT /twins/{id} with the enrollment's
 * initialTwin on a first assignment or a data reset), exactly as it would
 * call a hub in another container. Calls are asynchronous: the hub may be
 * this very process, answering on the same event loop. */
#include "dps/dps_internal.h"

#include "certs/x509.h"
#include "cfg.h"
#include "err.h"
#include "http_client.h"
#include "log.h"
#include "sas.h"
#include "textenc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HUB_API_VERSION "2021-04-12"
#define HUB_CALL_TIMEOUT_MS 10000

struct hub_sync {
	struct dps *d;
	char hub[DPS_HUB_NAME_MAX];
	char *device_id;
	json_t *device;       /* PUT /devices body */
	json_t *twin;         /* PUT /twins body, or NULL */
	dps_hub_done_fn done;
	void *arg;
};

/* Thumbprints the hub should accept: the enrollment's certificates for an
 * individual enrollment, the presented leaf for a group (as Azure DPS does). */
static json_t *device_body(const struct enrollment *e, const char *device_id, X509 *leaf,
			   int issued)
{
	char primary[65], secondary[65];

	/* Its next certificates come from the issuing CA: trust that, not one key. */
	if (issued)
		return json_pack("{s:s, s:s, s:{s:s}, s:{s:b}}", "deviceId", device_id, "status",
				 "enabled", "authentication", "type", "certificateAuthority",
				 "capabilities", "iotEdge", e->iot_edge);

	if (e->kind == ENR_INDIVIDUAL && e->certs && sk_X509_num(e->certs) > 0) {
		x509_thumbprint_sha256(sk_X509_value(e->certs, 0), primary);
		x509_thumbprint_sha256(sk_X509_value(e->certs, sk_X509_num(e->certs) > 1 ? 1 : 0),
				       secondary);
	} else {
		x509_thumbprint_sha256(leaf, primary);
		memcpy(secondary, primary, sizeof(primary));
	}
	return json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s}}, s:{s:b}}", "deviceId", device_id,
			 "status", "enabled", "authentication", "type", "selfSigned",
			 "x509Thumbprint", "primaryThumbprint", primary, "secondaryThumbprint",
			 secondary, "capabilities", "iotEdge", e->iot_edge);
}

static void sync_free(struct hub_sync *s)
{
	free(s->device_id);
	json_decref(s->device);
	json_decref(s->twin);
	free(s);
}

static void sync_ok(struct hub_sync *s)
{
	s->done(s->arg, 1, "");
	sync_free(s);
}

static void sync_fail(struct hub_sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sync_fail(struct hub_sync *s, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	s->done(s->arg, 0, why);
	sync_free(s);
}

static int send_call(struct hub_sync *s, const char *method, const char *what, json_t *body,
		     http_client_cb cb)
{
	const struct cfg *cfg = s->d->cfg;
	unsigned char *key = NULL;
	size_t keylen = 0;
	char url[1024], auth[1200], *enc = url_encode(s->device_id), *text = NULL, *token = NULL;
	const char *headers[5];
	int rc = EMU_ENOMEM;

	if (!enc || b64_decode(cfg->hub_key, strlen(cfg->hub_key), &key, &keylen) != EMU_OK)
		goto out;
	token = sas_create(s->hub, key, keylen, (uint64_t)time(NULL) + 3600, "iothubowner");
	text = json_dumps(body, JSON_COMPACT);
	if (!token || !text)
		goto out;
	snprintf(url, sizeof(url), "https://%s:%d/%s/%s?api-version=" HUB_API_VERSION, s->hub,
		 s->d->hub_port, what, enc);
	snprintf(auth, sizeof(auth), "Authorization: %s", token);
	headers[0] = auth;
	headers[1] = "Content-Type: application/json; charset=utf-8";
	headers[2] = "If-Match: \"*\"";
	headers[3] = "User-Agent: dpsemu-dps";
	headers[4] = NULL;
	rc = http_client_request(s->d->hub_client, method, url, headers, text, HUB_CALL_TIMEOUT_MS,
				 cb, s);
out:
	free(enc);
	free(key);
	free(text);
	free(token);
	return rc;
}

static void twin_done(void *arg, int status, const char *body, size_t len, const char *err)
{
	struct hub_sync *s = arg;
	(void)len;

	if (status == 200)
		sync_ok(s);
	else if (!status)
		sync_fail(s, "setting the initial twin in hub %s failed: %s", s->hub, err);
	else
		sync_fail(s, "hub %s refused the initial twin (status %d): %.300s", s->hub, status,
			  body);
}

static void device_done(void *arg, int status, const char *body, size_t len, const char *err)
{
	struct hub_sync *s = arg;
	(void)len;

	if (status != 200) {
		if (!status)
			sync_fail(s, "hub %s did not answer: %s", s->hub, err);
		else
			sync_fail(s, "hub %s refused the device (status %d): %.300s", s->hub, status,
				  body);
		return;
	}
	if (!s->twin) {
		sync_ok(s);
		return;
	}
	if (send_call(s, "PUT", "twins", s->twin, twin_done) != EMU_OK)
		sync_fail(s, "out of memory");
}

int dps_hub_sync(struct dps *d, const char *hub, const char *device_id,
		 const struct enrollment *e, X509 *leaf, int apply_twin, int issued,
		 dps_hub_done_fn done, void *arg)
{
	struct hub_sync *s = calloc(1, sizeof(*s));
	json_t *initial = json_object_get(e->doc, "initialTwin");

	if (!s)
		return EMU_ENOMEM;
	s->d = d;
	snprintf(s->hub, sizeof(s->hub), "%s", hub);
	s->device_id = strdup(device_id);
	s->device = device_body(e, device_id, leaf, issued);
	if (apply_twin && json_is_object(initial))
		s->twin = json_deep_copy(initial);
	s->done = done;
	s->arg = arg;
	if (!s->device_id || !s->device || (apply_twin && json_is_object(initial) && !s->twin) ||
	    send_call(s, "PUT", "devices", s->device, device_done) != EMU_OK) {
		sync_free(s);
		return EMU_ENOMEM;
	}
	log_debug("dps", "registering device '%s' in hub %s%s", device_id, hub,
		  s->twin ? " with its initial twin" : "");
	return EMU_OK;
}
