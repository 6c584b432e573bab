/* authlog.c - a ring buffer of authentication decisions (see authlog.h). */
#include "authlog.h"

#include "clock.h"
#include "err.h"
#include "metrics.h"
#include "textenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTHLOG_MAX_CAPACITY 100000

struct entry {
	char time[32];
	char service[4];
	char id[129];
	char peer[64];
	bool accepted;
	enum auth_reason cls;
	char reason[385];
};

struct authlog {
	struct entry *ring;
	size_t cap;
	size_t head;  /* where the next entry goes */
	size_t count; /* entries held (<= cap) */
	struct metrics_family *refusals;
};

const char *auth_reason_name(enum auth_reason r)
{
	static const char *const names[AUTH_REASONS] = {
		"accepted", "cn_mismatch", "unknown_device", "no_certificate", "chain",
		"thumbprint", "expired", "disabled", "sas", "other",
	};
	return (unsigned)r < AUTH_REASONS ? names[r] : "other";
}

int authlog_new(size_t capacity, struct metrics *m, struct authlog **out)
{
	struct authlog *l;

	*out = NULL;
	if (capacity == 0 || capacity > AUTHLOG_MAX_CAPACITY)
		return EMU_EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l || !(l->ring = calloc(capacity, sizeof(*l->ring)))) {
		free(l);
		return EMU_ENOMEM;
	}
	l->cap = capacity;
	l->refusals = metrics_counter(m, "dpsemu_auth_refusals_total",
				      "Device authentications refused, by service and reason "
				      "class.", "service,reason");
	*out = l;
	return EMU_OK;
}

void authlog_free(struct authlog *l)
{
	if (!l)
		return;
	free(l->ring);
	free(l);
}

/* Makes s valid UTF-8 for JSON: a character cut by truncation is dropped,
 * other bytes that are not UTF-8 become '?'. */
static void keep_utf8(char *s)
{
	size_t n = strlen(s), cut = n;

	if (utf8_valid(s, n))
		return;
	/* Back off over a trailing partial character (at most 3 bytes). */
	while (cut > 0 && n - cut < 3 && ((unsigned char)s[cut - 1] & 0xc0) == 0x80)
		cut--;
	if (cut > 0 && (unsigned char)s[cut - 1] >= 0xc0 && utf8_valid(s, cut - 1)) {
		s[cut - 1] = '\0';
		return;
	}
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			*s = '?';
}

void authlog_add(struct authlog *l, const char *service, const char *id, const char *peer,
		 bool accepted, enum auth_reason cls, const char *reason)
{
	struct entry *e;

	if (!l)
		return;
	if (accepted)
		cls = AUTH_OK;
	else if (cls == AUTH_OK || (unsigned)cls >= AUTH_REASONS)
		cls = AUTH_OTHER;
	e = &l->ring[l->head];
	clock_iso8601_now(e->time);
	snprintf(e->service, sizeof(e->service), "%s", service ? service : "");
	snprintf(e->id, sizeof(e->id), "%s", id ? id : "");
	snprintf(e->peer, sizeof(e->peer), "%s", peer ? peer : "");
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "");
	keep_utf8(e->id);
	keep_utf8(e->peer);
	keep_utf8(e->reason);
	e->accepted = accepted;
	e->cls = cls;
	l->head = (l->head + 1) % l->cap;
	if (l->count < l->cap)
		l->count++;
	if (!accepted)
		metrics_inc(l->refusals, METRICS_LABELS(e->service, auth_reason_name(cls)));
}

void authlog_clear(struct authlog *l)
{
	if (!l)
		return;
	l->head = 0;
	l->count = 0;
}

static bool wanted(const struct entry *e, const char *registration_id, const char *device_id)
{
	bool dps = strcmp(e->service, "dps") == 0;

	if (!registration_id && !device_id)
		return true;
	if (dps)
		return registration_id && strcasecmp(e->id, registration_id) == 0;
	return device_id && strcmp(e->id, device_id) == 0;
}

json_t *authlog_query(const struct authlog *l, const char *registration_id,
		      const char *device_id, size_t max)
{
	json_t *out = json_array();
	size_t first, matches = 0, skip;

	if (!out || !l)
		return out;
	first = (l->head + l->cap - l->count) % l->cap;
	for (size_t i = 0; i < l->count; i++)
		matches += wanted(&l->ring[(first + i) % l->cap], registration_id, device_id);
	skip = max && matches > max ? matches - max : 0;
	for (size_t i = 0; i < l->count; i++) {
		const struct entry *e = &l->ring[(first + i) % l->cap];
		bool dps = strcmp(e->service, "dps") == 0;
		json_t *item;

		if (!wanted(e, registration_id, device_id))
			continue;
		if (skip) {
			skip--;
			continue;
		}
		item = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s}", "timeUtc", e->time,
				 "service", e->service, dps ? "registrationId" : "deviceId", e->id,
				 "peer", e->peer, "accepted", e->accepted, "reason", e->reason,
				 "reasonClass", auth_reason_name(e->cls));
		if (!item || json_array_append_new(out, item) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}
