/* log.h - one line per event on stderr.
 *
 * Lines read "2026-11-23T04:00:00.123Z INFO  dps: registration dev1 assigned ..."
 * Keep the id (registration, device, request) and the reason in every line. */
#ifndef DPSEMU_LOG_H
#define DPSEMU_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Lines below this level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *name);

/* Writes one line: timestamp, level, component ("dps", "hub", "mqtt", ...), message. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logs the OpenSSL error queue (and clears it) at LOG_DEBUG, prefixed with what. */
void log_openssl_errors(const char *component, const char *what);

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
