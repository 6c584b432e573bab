/* log.h - one line per event on stderr.
 *
 * Text lines read "2026-11-23T04:00:00.123Z INFO  dps: registration dev1 assigned ..."
 * JSON lines (log_set_format(LOG_FORMAT_JSON), DPSEMU_LOG_FORMAT=json) are one
 * object each: {"time":"2026-11-23T04:00:00.123Z","level":"info","component":
 * "dps","message":"registration dev1 assigned ..."}.
 * Keep the id (registration, device, request) and the reason in every line. */
#ifndef DPSEMU_LOG_H
#define DPSEMU_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

/* Lines below this level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *name);
/* Text (default) or JSON lines. */
void log_set_format(enum log_format format);
enum log_format log_get_format(void);
/* Parses "text" or "json"; returns -1 if unknown. */
int log_format_parse(const char *name);

/* Writes one line: timestamp, level, component ("dps", "hub", "mqtt", ...), message. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes text (several lines, the start-up banner) whatever the level: as it
 * is in text format; in JSON, one info line per non-empty line. */
void log_banner(const char *component, const char *text);

/* Logs the OpenSSL error queue (and clears it) at LOG_DEBUG, prefixed with what. */
void log_openssl_errors(const char *component, const char *what);

/* Formats one JSON log line (without the newline) into out (outlen >= 128):
 * {"time":..,"level":..,"component":..,"message":..} with every string escaped
 * for JSON (quote, backslash, control characters as \uXXXX; bytes that are not
 * UTF-8 become U+FFFD). A message too long for out is cut at a character
 * boundary; the line stays valid JSON. Returns the line's length. */
size_t log_format_json(char *out, size_t outlen, const char *time, enum log_level level,
		       const char *component, const char *message);

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
