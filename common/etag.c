/* etag.c - If-Match comparison and quoted-UUID etags (see etag.h). */
#include "etag.h"

#include "clock.h"

#include <stdio.h>
#include <string.h>

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Narrows [*s, *e) to its core: no surrounding whitespace, no W/ prefix, no
 * quotes or backslashes around it. */
static void core(const char **s, const char **e)
{
	const char *a = *s, *b = *e;

	while (a < b && is_ows(*a))
		a++;
	while (b > a && is_ows(b[-1]))
		b--;
	if (b - a >= 2 && a[0] == 'W' && a[1] == '/')
		a += 2;
	while (a < b && (*a == '"' || *a == '\\'))
		a++;
	while (b > a && (b[-1] == '"' || b[-1] == '\\'))
		b--;
	*s = a;
	*e = b;
}

/* The end of the entry starting at p: the next comma outside double quotes,
 * or the terminating NUL. */
static const char *entry_end(const char *p)
{
	bool quoted = false;

	for (; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == ',' && !quoted)
			break;
	}
	return p;
}

/* True when some entry of if_match is the wildcard or, with want non-NULL,
 * has the core want[0..want_len). */
static bool scan(const char *if_match, const char *want, size_t want_len)
{
	const char *p = if_match;

	for (;;) {
		const char *end = entry_end(p), *a = p, *b = end;

		core(&a, &b);
		if (b - a == 1 && *a == '*')
			return true;
		if (want && (size_t)(b - a) == want_len && memcmp(a, want, want_len) == 0)
			return true;
		if (!*end)
			return false;
		p = end + 1;
	}
}

bool etag_is_absent(const char *if_match)
{
	if (!if_match)
		return true;
	while (is_ows(*if_match))
		if_match++;
	return *if_match == '\0';
}

bool etag_is_any(const char *if_match)
{
	return !etag_is_absent(if_match) && scan(if_match, NULL, 0);
}

bool etag_matches(const char *etag, const char *if_match)
{
	const char *a, *b;

	if (etag_is_absent(if_match))
		return false;
	if (!etag)
		return scan(if_match, NULL, 0);
	a = etag;
	b = etag + strlen(etag);
	core(&a, &b);
	/* An empty core names nothing: only the wildcard can match it. */
	return scan(if_match, b > a ? a : NULL, (size_t)(b - a));
}

void etag_new_uuid(char out[ETAG_UUID_LEN])
{
	char uuid[37];

	rand_uuid(RAND_ID_ETAG, uuid);
	snprintf(out, ETAG_UUID_LEN, "\"%s\"", uuid);
}
