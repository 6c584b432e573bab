/* clock.h - time stamps and identifiers in the shapes Azure uses. */
#ifndef DPSEMU_CLOCK_H
#define DPSEMU_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock (for deadlines). */
uint64_t clock_mono_ms(void);

/* Formats now (UTC) as "2022-08-31T22:02:50.5163352Z" (7 fractional digits) into out[32]. */
void clock_iso8601_now(char out[32]);
/* Formats t (UTC, whole seconds) as "2022-08-31T22:02:50Z" into out[32]. */
void clock_iso8601(time_t t, char out[32]);

/* Fills out with n cryptographically random bytes; returns EMU_OK or EMU_ECRYPTO. */
int rand_bytes(void *out, size_t n);
/* Writes a random v4 UUID "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" into out[37]. */
void rand_uuid(char out[37]);

#endif
