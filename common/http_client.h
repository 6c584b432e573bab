/* http_client.h - asynchronous HTTPS requests (libcurl) on the event loop.
 *
 * DPS uses it to create devices through a hub's service API, which may be this
 * very process: a blocking call would wait for itself, so every request runs
 * on the loop and reports through a callback. */
#ifndef DPSEMU_HTTP_CLIENT_H
#define DPSEMU_HTTP_CLIENT_H

#include <stddef.h>

struct loop;
struct http_client;

/* Called once per request. status is the HTTP status, or 0 when no answer came
 * (err then says why: connection refused, TLS failure, timeout). The body is
 * valid during the call only. */
typedef void (*http_client_cb)(void *arg, int status, const char *body, size_t len,
			       const char *err);

/* Creates a client that trusts the CA certificates in ca_file (PEM).
 * Returns EMU_OK or EMU_ENOMEM / EMU_EIO. */
int http_client_new(struct loop *lp, const char *ca_file, struct http_client **out);
/* Cancels outstanding requests (their callbacks are not called) and frees. */
void http_client_free(struct http_client *c);

/* Makes requests for host:port connect to to_host:to_port instead (the server
 * certificate is still checked against host), like curl --connect-to. Used to
 * reach a hub in this very process through the listen address, or a hub whose
 * name is not in DNS. Returns EMU_OK or EMU_ENOMEM. */
int http_client_connect_to(struct http_client *c, const char *host, int port, const char *to_host,
			   int to_port);

/* Starts a request. headers is a NULL-terminated list of "Name: value" lines (may
 * be NULL); body may be NULL. timeout_ms bounds the whole exchange. cb is always
 * called later from the loop, never from inside this call. Returns EMU_OK or
 * EMU_ENOMEM / EMU_EINVAL. */
int http_client_request(struct http_client *c, const char *method, const char *url,
			const char *const *headers, const char *body, long timeout_ms,
			http_client_cb cb, void *arg);

#endif
