/* hub.c - the hub service: its tables and its registrations with the shared
 * listeners. */
#include "hub-sim/hub_internal.h"

#include "certs/x509.h"
#include "cfg.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "svcauth.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>

/* DPS's issuing CA chain: devices with certificates DPS issued authenticate
 * against it like against a verified CA. */
static int load_issuing_chain(struct hub *h, const char *path)
{
	STACK_OF(X509) *chain = NULL;
	FILE *f;
	char *text = NULL;
	long n;
	int rc = EMU_EIO;

	if (!path)
		return EMU_OK;
	f = fopen(path, "rb");
	if (!f) {
		log_error("hub", "cannot read the issuing CA chain %s", path);
		return EMU_EIO;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < 1024 * 1024 &&
	    fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) &&
	    fread(text, 1, (size_t)n, f) == (size_t)n) {
		text[n] = '\0';
		rc = x509_parse_pem_chain(text, (size_t)n, &chain);
	}
	fclose(f);
	free(text);
	if (rc != EMU_OK) {
		log_error("hub", "%s is not a PEM certificate chain", path);
		return rc;
	}
	h->issuing_chain = chain;
	return EMU_OK;
}

int hub_new(const struct hub_deps *deps, struct hub **out)
{
	struct hub *h = calloc(1, sizeof(*h));
	int rc;

	*out = NULL;
	if (!h)
		return EMU_ENOMEM;
	h->cfg = deps->cfg;
	h->lp = deps->lp;
	h->st = deps->st;
	h->cas = deps->cas;
	h->http = deps->http;
	h->telemetry_keep = deps->cfg->telemetry_keep;
	h->authlog = deps->authlog;
	h->connected_devices = metrics_gauge(deps->metrics, "dpsemu_connected_devices",
					     "Devices connected to the hub over MQTT.", NULL);
	h->telemetry_total = metrics_counter(deps->metrics, "dpsemu_telemetry_messages_total",
					     "Device-to-cloud messages the hub accepted.", NULL);
	h->c2d_total = metrics_counter(deps->metrics, "dpsemu_c2d_messages_total",
				       "Cloud-to-device messages by event (queued, delivered, "
				       "completed).", "event");
	h->methods_total = metrics_counter(deps->metrics, "dpsemu_direct_methods_total",
					   "Direct method invocations by result (answered, "
					   "timeout, offline, cancelled).", "result");
	if ((rc = store_table_open(h->st, "devices", &h->devices)) ||
	    (rc = store_table_open(h->st, "modules", &h->modules)) ||
	    (rc = store_table_open(h->st, "twins", &h->twins)) ||
	    (rc = store_table_open(h->st, "telemetry", &h->telemetry)) ||
	    (rc = store_table_open(h->st, "c2d", &h->c2d)) ||
	    (rc = store_table_open(h->st, "hubMeta", &h->meta)) || (rc = svcauth_new(&h->auth)))
		goto fail;
	if ((rc = svcauth_add_cfg_names(h->auth, h->cfg)))
		goto fail;
	if ((rc = svcauth_add_policy(h->auth, "iothubowner", h->cfg->hub_key))) {
		log_error("hub", "DPSEMU_HUB_KEY is not valid base64");
		goto fail;
	}
	if ((rc = load_issuing_chain(h, deps->issuing_chain_file)))
		goto fail;
	if (h->cfg->forward_mqtt && *h->cfg->forward_mqtt &&
	    (rc = hub_forward_new(h->lp, h->cfg->forward_mqtt, &h->forward)))
		goto fail;
	if ((rc = hub_service_api_init(h, deps->http)) || (rc = hub_telemetry_init(h, deps->http)) ||
	    (rc = hub_c2d_init(h, deps->http)) || (rc = hub_methods_init(h, deps->http)) ||
	    (rc = hub_mqtt_init(h, deps->mqtt)))
		goto fail;
	*out = h;
	return EMU_OK;
fail:
	hub_free(h);
	return rc;
}

void hub_reset(struct hub *h)
{
	if (!h)
		return;
	hub_methods_cancel(h, "the emulator was reset");
	hub_telemetry_cancel_waiters(h);
}

void hub_free(struct hub *h)
{
	if (!h)
		return;
	hub_telemetry_cancel_waiters(h);
	hub_methods_cancel(h, "the emulator is shutting down");
	hub_forward_free(h->forward);
	if (h->issuing_chain)
		sk_X509_pop_free(h->issuing_chain, X509_free);
	svcauth_free(h->auth);
	free(h);
}
