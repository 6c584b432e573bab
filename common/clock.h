/* clock.h - time stamps and identifiers in the shapes Azure uses.
 *
 * Two sources of randomness, kept apart on purpose:
 *   rand_bytes  the real RNG (OpenSSL), for anything secret or unguessable:
 *               symmetric keys (enrollment.c, registry.c), certificate serials
 *               (gen.c, issue.c), CA verification codes (ca_registry.c), the
 *               telemetry forwarder's client id (forward.c). Never seeded.
 *   rand_id_*   identifiers that appear in API answers: request ids and
 *               trackingIds (http.c, DPS MQTT, hub twin errors), DPS operation
 *               ids and registration etags (register.c), enrollment and CA
 *               etags (etag.c), generated C2D message ids (c2d.c), hub
 *               generationIds (registry.c). Random by default; after
 *               rand_id_seed they come from a deterministic generator, so two
 *               runs that make the same requests hand out the same ids
 *               (DPSEMU_DETERMINISTIC / DPSEMU_SEED). Never use them for secrets.
 * Timestamps always come from the real clock. */
#ifndef DPSEMU_CLOCK_H
#define DPSEMU_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds / microseconds on the monotonic clock (for deadlines, durations). */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);

/* Formats now (UTC) as "2022-08-31T22:02:50.5163352Z" (7 fractional digits) into out[32]. */
void clock_iso8601_now(char out[32]);
/* Formats t (UTC, whole seconds) as "2022-08-31T22:02:50Z" into out[32]. */
void clock_iso8601(time_t t, char out[32]);
/* Parses "2026-11-23T04:00:00Z", with optional fractional seconds and a Z or
 * +hh:mm / -hh:mm offset, into *out. Returns EMU_OK or EMU_EINVAL. */
int clock_parse_iso8601(const char *s, time_t *out);

/* Fills out with n cryptographically random bytes; returns EMU_OK or EMU_ECRYPTO.
 * Not affected by rand_id_seed: use it for keys, serials and codes. */
int rand_bytes(void *out, size_t n);

/* The kinds of identifier: each has its own deterministic sequence, so ids of
 * one kind do not shift when a client sends more requests of another kind
 * (health checks, polls). */
enum rand_id_kind {
	RAND_ID_REQUEST = 0, /* x-ms-request-id of HTTP answers and their error trackingId */
	RAND_ID_TRACKING,    /* trackingIds of MQTT answers (DPS, hub twin errors) */
	RAND_ID_OPERATION,   /* DPS operation ids */
	RAND_ID_ETAG,        /* enrollment, CA and registration-state etags */
	RAND_ID_MESSAGE,     /* generated message ids (C2D) */
	RAND_ID_GENERATION,  /* hub device generationIds */
	RAND_ID_KINDS
};

/* Switches identifiers to the deterministic generator with this seed and
 * restarts every kind's sequence (called again, e.g. by a reset, it starts
 * over). Block i of kind k is SHA-256(seed, k, i). */
void rand_id_seed(uint64_t seed);
/* True after rand_id_seed. */
bool rand_id_seeded(void);
/* Fills out with n identifier bytes of the given kind: random, or the next
 * block of the kind's sequence (one block per call, n <= 32 bytes). */
void rand_id_bytes(enum rand_id_kind kind, void *out, size_t n);
/* Writes a v4-shaped UUID "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" from
 * rand_id_bytes(kind) into out[37]. */
void rand_uuid(enum rand_id_kind kind, char out[37]);

#endif
