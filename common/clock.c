#include "clock.h"

#include "err.h"
#include "textenc.h"

#include <openssl/rand.h>
#include <stdio.h>

uint64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void clock_iso8601_now(char out[32])
{
	struct timespec ts;
	struct tm tm;
	char date[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.20s.%07ldZ", date, (long)(ts.tv_nsec / 100) % 10000000);
}

void clock_iso8601(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int rand_bytes(void *out, size_t n)
{
	return RAND_bytes(out, (int)n) == 1 ? EMU_OK : EMU_ECRYPTO;
}

void rand_uuid(char out[37])
{
	unsigned char b[16];
	char hex[33];

	if (rand_bytes(b, sizeof(b)) != EMU_OK) {
		/* RAND_bytes only fails when the OS entropy source is gone; ids then
		 * still need to be unique within this process. */
		static unsigned long counter;
		snprintf(out, 37, "00000000-0000-4000-8000-%012lx", ++counter);
		return;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	hex_encode(b, 16, 0, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}
