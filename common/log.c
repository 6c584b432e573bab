#include "log.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LINE_MAX_TEXT 2048
/* A JSON line escapes at most 6 output bytes per input byte. */
#define LINE_MAX_JSON (LINE_MAX_TEXT * 6 + 256)
#define COMPONENT_BUDGET 48

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;

static const char *level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
static const char *level_json[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, level_json[i]) == 0)
			return i;
	return -1;
}

void log_set_format(enum log_format f)
{
	format = f;
}

enum log_format log_get_format(void)
{
	return format;
}

int log_format_parse(const char *name)
{
	if (strcasecmp(name, "text") == 0)
		return LOG_FORMAT_TEXT;
	if (strcasecmp(name, "json") == 0)
		return LOG_FORMAT_JSON;
	return -1;
}

/* A bounded writer: every piece goes in whole or not at all, and the last
 * `keep` bytes of the buffer (plus the NUL) stay free for what must follow. */
struct jw {
	char *out;
	size_t cap, len;
};

static int jw_put(struct jw *w, const char *p, size_t n, size_t keep)
{
	if (w->len + n + keep + 1 > w->cap)
		return 0;
	memcpy(w->out + w->len, p, n);
	w->len += n;
	w->out[w->len] = '\0';
	return 1;
}

/* Length of the well-formed UTF-8 sequence at s (up to end), 0 if ill-formed. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
	size_t n, avail = (size_t)(end - s);
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Appends s as the inside of a JSON string, at most `budget` bytes of output,
 * keeping `keep` bytes free. Stops at the first piece that does not fit. */
static void jw_string(struct jw *w, const char *s, size_t budget, size_t keep)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
	size_t start = w->len;

	while (p < end) {
		char esc[8];
		const char *piece = esc;
		size_t n, used = 1;

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			n = 2;
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[0] = '\\';
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
			n = 2;
		} else if (*p < 0x20) {
			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
		} else if ((used = utf8_seq(p, end)) == 0) {
			memcpy(esc, "\\ufffd", 6);
			n = 6;
			used = 1;
		} else {
			piece = (const char *)p;
			n = used;
		}
		if (w->len - start + n > budget || !jw_put(w, piece, n, keep))
			return;
		p += used;
	}
}

size_t log_format_json(char *out, size_t outlen, const char *time, enum log_level level,
		       const char *component, const char *message)
{
	struct jw w = { out, outlen, 0 };
	const char *lvl = level >= LOG_DEBUG && level <= LOG_ERROR ? level_json[level] : "info";

	if (!out || outlen == 0)
		return 0;
	out[0] = '\0';
	/* Everything before the message is short and bounded; the message gets the
	 * rest, less the 2 bytes that close the line. */
	jw_put(&w, "{\"time\":\"", 9, 2);
	jw_string(&w, time, 40, 2);
	jw_put(&w, "\",\"level\":\"", 11, 2);
	jw_put(&w, lvl, strlen(lvl), 2);
	jw_put(&w, "\",\"component\":\"", 15, 2);
	jw_string(&w, component, COMPONENT_BUDGET, 2);
	jw_put(&w, "\",\"message\":\"", 13, 2);
	jw_string(&w, message, outlen, 2);
	jw_put(&w, "\"}", 2, 0);
	return w.len;
}

/* Now, "2026-11-23T04:00:00.123Z", into out[64]. */
static void log_stamp(char out[64])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
	char line[LINE_MAX_TEXT], stamp[64], json[LINE_MAX_JSON];
	va_list ap;
	int n;

	if (level < min_level)
		return;
	log_stamp(stamp);
	if (format == LOG_FORMAT_JSON) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		log_format_json(json, sizeof(json), stamp, level, component, line);
		/* One write per line keeps lines whole when several processes share stderr. */
		fprintf(stderr, "%s\n", json);
		return;
	}
	n = snprintf(line, sizeof(line), "%s %-5s %s: ", stamp, level_names[level], component);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

void log_banner(const char *component, const char *text)
{
	char line[LINE_MAX_TEXT], stamp[64], json[LINE_MAX_JSON];

	if (format != LOG_FORMAT_JSON) {
		fputs(text, stderr);
		return;
	}
	log_stamp(stamp);
	while (*text) {
		size_t n = strcspn(text, "\n");
		if (n) {
			int keep = (int)(n < sizeof(line) ? n : sizeof(line) - 1);
			snprintf(line, sizeof(line), "%.*s", keep, text);
			log_format_json(json, sizeof(json), stamp, LOG_INFO, component, line);
			fprintf(stderr, "%s\n", json);
		}
		text += n;
		if (*text == '\n')
			text++;
	}
}

void log_openssl_errors(const char *component, const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_debug(component, "%s: %s", what, buf);
	}
}
