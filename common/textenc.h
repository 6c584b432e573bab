/* textenc.h - base64, hex and percent-encoding, with explicit output sizes. */
#ifndef DPSEMU_TEXTENC_H
#define DPSEMU_TEXTENC_H

#include <stdbool.h>
#include <stddef.h>

/* Base64-encodes n bytes into a new NUL-terminated string (no line breaks).
 * Returns NULL on allocation failure. Caller frees. */
char *b64_encode(const void *p, size_t n);
/* Decodes standard base64 (padding required, whitespace not allowed).
 * On success *out is a new buffer of *outlen bytes (caller frees) and EMU_OK is
 * returned; EMU_EINVAL for malformed input. */
int b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen);

/* Writes n bytes as hex (upper case if upper) into out, which needs 2n+1 bytes. */
void hex_encode(const unsigned char *p, size_t n, int upper, char *out);

/* The value of hex digit c (either case), or -1. (Percent-decoding of query
 * strings, tokens and property bags is query_decode in query.h.) */
int hex_digit_value(int c);
/* Percent-encodes everything but unreserved characters (RFC 3986) into a new string. */
char *url_encode(const char *s);

/* True if s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF) without U+0000: MQTT's rule for strings, and what
 * can travel as a JSON string. */
bool utf8_valid(const char *s, size_t n);

#endif
