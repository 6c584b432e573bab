#include "query.h"

#include "err.h"
#include "textenc.h"

#include <string.h>

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Decodes the byte at s[*i], advancing *i; -1 for a malformed escape or a NUL
 * byte, raw or escaped: decoded values become C strings and must not be cut. */
static int decode_one(const char *s, size_t len, size_t *i)
{
	int hi, lo;

	if (s[*i] == '\0')
		return -1;
	if (s[*i] != '%')
		return (unsigned char)s[(*i)++];
	if (len - *i < 3)
		return -1;
	hi = hex_digit_value((unsigned char)s[*i + 1]);
	lo = hex_digit_value((unsigned char)s[*i + 2]);
	if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
		return -1;
	*i += 3;
	return hi << 4 | lo;
}

int query_next(const char **cursor, const char *end, struct query_pair *kv)
{
	const char *p = *cursor;

	memset(kv, 0, sizeof(*kv));
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq;

		if (stop == p) {
			p++; /* empty pair */
			continue;
		}
		eq = memchr(p, '=', (size_t)(stop - p));
		kv->key = p;
		kv->key_len = (size_t)((eq ? eq : stop) - p);
		kv->has_value = eq != NULL;
		kv->value = eq ? eq + 1 : stop;
		kv->value_len = (size_t)(stop - kv->value);
		*cursor = amp ? amp + 1 : end;
		return EMU_OK;
	}
	*cursor = end;
	return EMU_ENOTFOUND;
}

static bool key_equals(const char *raw, size_t len, const char *key, bool icase)
{
	size_t i = 0;

	while (i < len) {
		int c = decode_one(raw, len, &i);

		if (c < 0 || *key == '\0')
			return false;
		if (icase ? ascii_lower(c) != ascii_lower((unsigned char)*key)
			  : c != (unsigned char)*key)
			return false;
		key++;
	}
	return *key == '\0';
}

int query_find(const char *q, size_t qlen, const char *key, bool icase, struct query_pair *kv)
{
	const char *cur = q, *end = q + qlen;

	while (query_next(&cur, end, kv) == EMU_OK) {
		if (key_equals(kv->key, kv->key_len, key, icase))
			return EMU_OK;
	}
	memset(kv, 0, sizeof(*kv));
	return EMU_ENOTFOUND;
}

int query_decode(const char *s, size_t len, char *out, size_t outlen, size_t *outn)
{
	size_t i = 0, j = 0;
	int rc = EMU_OK;

	if (outn)
		*outn = 0;
	if (outlen == 0)
		return EMU_ETOOBIG;
	while (i < len) {
		int c = decode_one(s, len, &i);

		if (c < 0) {
			rc = EMU_EINVAL;
			goto out;
		}
		if (j + 1 >= outlen) {
			rc = EMU_ETOOBIG;
			goto out;
		}
		out[j++] = (char)c;
	}
out:
	if (rc) {
		out[0] = '\0';
		return rc;
	}
	out[j] = '\0';
	if (outn)
		*outn = j;
	return EMU_OK;
}

static int get(const char *q, size_t qlen, const char *key, bool icase, char *out, size_t outlen)
{
	struct query_pair kv;
	int rc;

	if (outlen)
		out[0] = '\0';
	rc = query_find(q, qlen, key, icase, &kv);
	if (rc)
		return rc;
	return query_decode(kv.value, kv.value_len, out, outlen, NULL);
}

int query_get(const char *q, size_t qlen, const char *key, char *out, size_t outlen)
{
	return get(q, qlen, key, false, out, outlen);
}

int query_get_icase(const char *q, size_t qlen, const char *key, char *out, size_t outlen)
{
	return get(q, qlen, key, true, out, outlen);
}
