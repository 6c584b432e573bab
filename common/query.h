/* query.h - `key=value&key=value` strings: MQTT topic properties, usernames, SAS.
 *
 * The input is the part after '?' (the caller splits it off), given as pointer and
 * length; no terminator is needed and nothing is allocated. Pairs are separated
 * by '&'; empty pairs ("a=1&&b=2") are skipped; a pair without '=' has an empty
 * value. Percent-escapes are decoded on request only; '+' stays '+' (SAS
 * signatures are base64 and embedded clients do not send form encoding). */
#ifndef DPSEMU_QUERY_H
#define DPSEMU_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* One pair exactly as sent: slices of the input, not NUL-terminated. */
struct query_pair {
	const char *key;
	size_t key_len;
	const char *value; /* empty (value_len 0) when the pair has no '=' */
	size_t value_len;
	bool has_value;    /* the pair contained '=' */
};

/* Iterates over the pairs of [*cursor, end). Start with *cursor = q and
 * end = q + qlen. Returns EMU_OK with the next pair in kv and *cursor advanced,
 * or EMU_ENOTFOUND when no pair is left. The value runs from the first '=' to the
 * next '&', so it may itself contain '='. */
int query_next(const char **cursor, const char *end, struct query_pair *kv);

/* Finds the first pair whose key, percent-decoded, equals key (a C string):
 * byte for byte, or ASCII case-insensitively when icase. Keys with a malformed
 * escape never match. Returns EMU_OK with the raw pair in kv, or EMU_ENOTFOUND. */
int query_find(const char *q, size_t qlen, const char *key, bool icase, struct query_pair *kv);

/* Looks up key (case-sensitive; query_get_icase: ASCII case-insensitive) and
 * writes its percent-decoded value, NUL-terminated, to out (outlen bytes).
 * Returns EMU_OK; EMU_ENOTFOUND; EMU_ETOOBIG when the decoded value and its
 * terminator do not fit (out then holds ""); EMU_EINVAL for a malformed escape or
 * a NUL byte, raw or escaped (%00), which a C string cannot carry. */
int query_get(const char *q, size_t qlen, const char *key, char *out, size_t outlen);
int query_get_icase(const char *q, size_t qlen, const char *key, char *out, size_t outlen);

/* Percent-decodes s[0..len) into out (outlen bytes), NUL-terminated, and stores
 * the decoded length in *outn (may be NULL). Errors as for query_get. */
int query_decode(const char *s, size_t len, char *out, size_t outlen, size_t *outn);

#endif
