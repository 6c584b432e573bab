/* authlog.h - the recent device authentication decisions, for
 * GET /_emulator/auth-log, and their refusal counts.
 *
 * DPS records each registration's attestation (accepted or refused) and each
 * CONNECT it refuses; the hub records each device CONNECT. Entries live in a
 * ring buffer in memory (the oldest goes when it is full) and are not stored.
 * Each refusal also counts in dpsemu_auth_refusals_total{service,reason},
 * reason being its class (auth_reason_name), decided where the refusal is. */
#ifndef DPSEMU_AUTHLOG_H
#define DPSEMU_AUTHLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct authlog;
struct metrics;

/* Why an authentication was refused, in classes small enough for a metric label. */
enum auth_reason {
	AUTH_OK = 0,          /* accepted */
	AUTH_CN_MISMATCH,     /* the certificate's CN is not the registration / device id */
	AUTH_UNKNOWN_DEVICE,  /* no enrollment / no device for it */
	AUTH_NO_CERTIFICATE,  /* X.509 expected, none presented */
	AUTH_CHAIN,           /* the chain does not reach an enrolled or verified CA */
	AUTH_THUMBPRINT,      /* the certificate is not the enrolled / registered one */
	AUTH_EXPIRED,         /* the certificate is expired or not yet valid */
	AUTH_DISABLED,        /* the enrollment or device is disabled */
	AUTH_SAS,             /* a SAS token was refused (or SAS is not supported) */
	AUTH_OTHER,           /* anything else (wrong scope, client id, ...) */
	AUTH_REASONS
};

/* "accepted", "cn_mismatch", ..., "other" (the metric's reason label). */
const char *auth_reason_name(enum auth_reason r);

#define AUTHLOG_DEFAULT_CAPACITY 1000

/* Creates a log keeping the last capacity entries (1..100000). With m not
 * NULL, refusals are counted in m's dpsemu_auth_refusals_total. Returns EMU_OK,
 * EMU_EINVAL or EMU_ENOMEM. */
int authlog_new(size_t capacity, struct metrics *m, struct authlog **out);
/* Frees the log. NULL is fine. */
void authlog_free(struct authlog *l);

/* Records one decision at the current time. service is "dps" (id is a
 * registration id) or "hub" (id is a device id); peer is "ip:port" (NULL:
 * unknown); reason says why (refused) or how (accepted), and is cut at 384
 * bytes. accepted entries take cls AUTH_OK. l NULL is a no-op. */
void authlog_add(struct authlog *l, const char *service, const char *id, const char *peer,
		 bool accepted, enum auth_reason cls, const char *reason);

/* Removes every entry (the counters stay: they are cumulative). */
void authlog_clear(struct authlog *l);

/* The entries, oldest first / newest last, as a new JSON array of
 * {"timeUtc", "service", "registrationId" (dps) or "deviceId" (hub), "peer",
 * "accepted", "reason", "reasonClass"}. With registration_id (compared
 * case-insensitively, as DPS does) and/or device_id (case-sensitive) given,
 * only DPS entries for that registration and hub entries for that device are
 * kept; max > 0 keeps the newest max of them. NULL when out of memory. */
json_t *authlog_query(const struct authlog *l, const char *registration_id,
		      const char *device_id, size_t max);

#endif
