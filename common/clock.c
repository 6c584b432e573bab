#include "clock.h"

#include "err.h"
#include "textenc.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* The deterministic identifier generator: process-wide, like the clock it
 * sits next to (identifiers are drawn deep inside code that has no context
 * pointer to carry it). One thread owns all state. */
static struct {
	bool seeded;
	uint64_t seed;
	uint64_t next[RAND_ID_KINDS];
} ids;

uint64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
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

void rand_id_seed(uint64_t seed)
{
	ids.seeded = true;
	ids.seed = seed;
	memset(ids.next, 0, sizeof(ids.next));
}

bool rand_id_seeded(void)
{
	return ids.seeded;
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* SHA-256(seed || kind || counter), all little-endian 64-bit. */
static void id_block(enum rand_id_kind kind, uint64_t counter, unsigned char out[32])
{
	unsigned char in[24];
	unsigned int len = 32;

	put_le64(in, ids.seed);
	put_le64(in + 8, (uint64_t)kind);
	put_le64(in + 16, counter);
	if (EVP_Digest(in, sizeof(in), out, &len, EVP_sha256(), NULL) != 1) {
		/* SHA-256 does not fail short of memory exhaustion; stay deterministic. */
		memset(out, 0, 32);
		memcpy(out, in, sizeof(in));
	}
}

void rand_id_bytes(enum rand_id_kind kind, void *out, size_t n)
{
	static unsigned long fallback;
	unsigned char block[32];

	if ((unsigned)kind >= RAND_ID_KINDS)
		kind = RAND_ID_REQUEST;
	if (n > sizeof(block))
		n = sizeof(block);
	if (ids.seeded) {
		id_block(kind, ids.next[kind]++, block);
		memcpy(out, block, n);
		return;
	}
	if (rand_bytes(out, n) == EMU_OK)
		return;
	/* RAND_bytes only fails when the OS entropy source is gone; ids then
	 * still need to be unique within this process. */
	memset(out, 0, n);
	fallback++;
	for (size_t i = 0; i < n && i < sizeof(fallback); i++)
		((unsigned char *)out)[n - 1 - i] = (unsigned char)(fallback >> (8 * i));
}

void rand_uuid(enum rand_id_kind kind, char out[37])
{
	unsigned char b[16];
	char hex[33];

	rand_id_bytes(kind, b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	hex_encode(b, 16, 0, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int clock_parse_iso8601(const char *s, time_t *out)
{
	struct tm tm;
	int n = 0, oh = 0, om = 0, sign = 0;
	const char *p;

	memset(&tm, 0, sizeof(tm));
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
		return EMU_EINVAL;
	p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
			return EMU_EINVAL;
		p += 6;
	} else {
		return EMU_EINVAL;
	}
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return EMU_EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm) - sign * (oh * 3600 + om * 60);
	return EMU_OK;
}
