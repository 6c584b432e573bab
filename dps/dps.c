/* dps.c - the DPS service: its tables, seed enrollments and registrations
 * with the shared listeners. */
#include "dps/dps_internal.h"

#include "cfg.h"
#include "enrollments/seed.h"
#include "err.h"
#include "http_client.h"
#include "log.h"
#include "metrics.h"
#include "svcauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Operations are only polled right after a register; a day is generous. */
#define OPERATION_TTL_SECONDS (24 * 3600)

/* A linked hub is "name" or "name@host:port": the name is what DPS assigns
 * (assignedHub, the hub's certificate name); host:port is where its service
 * API answers when the name alone does not lead there. */
static void add_linked_hub(const char *item, void *arg)
{
	struct dps *d = arg;
	const char *at = strchr(item, '@');
	char *name;

	if (d->nlinked == DPS_MAX_LINKED_HUBS) {
		log_warn("dps", "DPSEMU_LINKED_HUBS: more than %d hubs; '%s' ignored",
			 DPS_MAX_LINKED_HUBS, item);
		return;
	}
	name = d->linked_hubs[d->nlinked];
	snprintf(name, DPS_HUB_NAME_MAX, "%.*s", at ? (int)(at - item) : (int)strlen(item), item);
	if (at) {
		char host[DPS_HUB_NAME_MAX];
		const char *colon = strrchr(at + 1, ':');
		char *end;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;
		if (!colon || *end || port <= 0 || port > 65535 || colon == at + 1) {
			log_warn("dps", "DPSEMU_LINKED_HUBS: '%s' is not name@host:port; ignored", item);
			return;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(colon - at - 1), at + 1);
		if (http_client_connect_to(d->hub_client, name, d->hub_port, host, (int)port) != EMU_OK)
			return;
	}
	d->nlinked++;
}

struct prune {
	time_t before;
	char (*keys)[64];
	size_t n, cap;
};

static int collect_old_operation(const char *key, const void *val, size_t len, void *arg)
{
	struct prune *p = arg;
	json_t *op = json_loadb(val, len, 0, NULL);
	json_int_t created = json_integer_value(json_object_get(op, "created"));

	json_decref(op);
	if (created < p->before && strlen(key) < 64) {
		if (p->n == p->cap) {
			size_t cap = p->cap ? p->cap * 2 : 64;
			char (*k)[64] = realloc(p->keys, cap * sizeof(*k));
			if (!k)
				return 1;
			p->keys = k;
			p->cap = cap;
		}
		snprintf(p->keys[p->n++], 64, "%s", key);
	}
	return 0;
}

/* Drops operation records nobody will poll any more. */
static void prune_operations(struct dps *d)
{
	struct prune p = { .before = time(NULL) - OPERATION_TTL_SECONDS };
	struct store_txn *txn = NULL;

	if (store_txn_begin(d->st, 1, &txn) != EMU_OK)
		return;
	store_iter(txn, d->operations, NULL, collect_old_operation, &p);
	for (size_t i = 0; i < p.n; i++)
		store_del(txn, d->operations, p.keys[i]);
	if (store_txn_commit(txn) == EMU_OK && p.n)
		log_info("dps", "dropped %zu finished operations older than a day", p.n);
	free(p.keys);
}

int dps_reload_seeds(struct dps *d)
{
	struct seed_counts counts;
	char why[512];
	int rc;

	if (!d->cfg->enrollments_dir)
		return EMU_OK;
	rc = seed_load_dir(d->cfg->enrollments_dir, d->st, d->es, &counts, why, sizeof(why));
	if (rc != EMU_OK) {
		log_error("dps", "DPSEMU_ENROLLMENTS_DIR %s: %s", d->cfg->enrollments_dir, why);
		return rc;
	}
	log_info("dps", "seed enrollments from %s: %zu individual, %zu groups (%zu written)",
		 d->cfg->enrollments_dir, counts.individuals, counts.groups, counts.written);
	return EMU_OK;
}

int dps_new(const struct dps_deps *deps, struct dps **out)
{
	struct dps *d = calloc(1, sizeof(*d));
	int rc;

	*out = NULL;
	if (!d)
		return EMU_ENOMEM;
	d->cfg = deps->cfg;
	d->lp = deps->lp;
	d->st = deps->st;
	d->cas = deps->cas;
	d->issuer = deps->issuer;
	d->authlog = deps->authlog;
	d->registrations_total = metrics_counter(deps->metrics, "dpsemu_registrations_total",
						 "DPS registrations by transport and outcome "
						 "(assigned, failed, disabled, refused).",
						 "transport,outcome");
	d->hub_port = d->cfg->https_port;
	if ((rc = http_client_new(d->lp, deps->ca_file, &d->hub_client)))
		goto fail;
	cfg_list_each(d->cfg->linked_hubs, add_linked_hub, d);
	if (deps->hub_in_process) {
		/* Our own hub listens on the bind address, whatever names it has. */
		const char *addr = strcmp(d->cfg->bind, "0.0.0.0") == 0 ? "127.0.0.1"
				   : strcmp(d->cfg->bind, "::") == 0	 ? "::1"
									 : d->cfg->bind;
		for (int i = 0; i < d->nlinked && rc == EMU_OK; i++)
			rc = http_client_connect_to(d->hub_client, d->linked_hubs[i], d->hub_port,
						    addr, d->cfg->https_port);
		if (rc)
			goto fail;
	}
	if ((rc = store_table_open(d->st, "registrations", &d->registrations)) ||
	    (rc = store_table_open(d->st, "operations", &d->operations)) ||
	    (rc = svcauth_new(&d->auth)))
		goto fail;
	{
		char why[300];
		if ((rc = dps_issuance_init(d, deps->http, why, sizeof(why)))) {
			log_error("dps", "%s", why);
			goto fail;
		}
	}
	{
		struct enr_validate_opts opts = { dps_policy_known, d };
		if ((rc = enr_store_new(d->st, &opts, &d->es)))
			goto fail;
	}
	if ((rc = svcauth_add_cfg_names(d->auth, d->cfg)))
		goto fail;
	if ((rc = svcauth_add_policy(d->auth, "provisioningserviceowner", d->cfg->dps_key))) {
		log_error("dps", "DPSEMU_DPS_KEY is not valid base64");
		goto fail;
	}
	prune_operations(d);
	if ((rc = dps_reload_seeds(d)))
		goto fail;
	/* Service routes first: their literal paths must win over the device API's
	 * "/{idScope}/registrations/{id}" pattern. */
	if ((rc = dps_service_api_init(d, deps->http)) || (rc = dps_https_init(d, deps->http)) ||
	    (rc = dps_mqtt_init(d, deps->mqtt)))
		goto fail;
	*out = d;
	return EMU_OK;
fail:
	dps_free(d);
	return rc;
}

void dps_reset(struct dps *d)
{
	if (!d)
		return;
	enr_list_free(d->groups);
	d->groups = NULL;
	d->reset_epoch++;
}

void dps_free(struct dps *d)
{
	if (!d)
		return;
	http_client_free(d->hub_client);
	enr_list_free(d->groups);
	enr_store_free(d->es);
	svcauth_free(d->auth);
	free(d);
}
