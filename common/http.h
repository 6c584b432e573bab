/* http.h - the HTTPS server: OpenSSL TLS in our loop, HTTP/1.1 by libmicrohttpd.
 *
 * TLS is terminated by common/tls (the same code as MQTT, so client
 * certificates are read the same way); each connection's plaintext is handed
 * to libmicrohttpd over a socketpair. Services register routes; a handler gets
 * the complete request (body included, bounded) and answers it once with one of
 * the http_respond* calls. JSON answers always carry Content-Type
 * application/json. */
#ifndef DPSEMU_HTTP_H
#define DPSEMU_HTTP_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stddef.h>

struct loop;
struct metrics;
struct http_server;
struct http_req;

typedef void (*http_handler)(void *arg, struct http_req *req);

/* Listens on bind_addr:port with TLS context ctx (borrowed). Request bodies over
 * max_body bytes get 413. Every answer is timed into metrics' (borrowed, may be
 * NULL) dpsemu_http_request_duration_seconds{method,status="2xx"...}, from the
 * request's first callback to its answer being queued. Returns EMU_OK or an
 * emu_err (logged). */
int http_server_new(struct loop *lp, SSL_CTX *ctx, const char *bind_addr, int port,
		    size_t max_body, struct metrics *metrics, struct http_server **out);
/* Closes every connection and the listener. NULL is fine. */
void http_server_free(struct http_server *s);
int http_server_port(const struct http_server *s);

/* Adds a route. method is "GET", "PUT", ...; pattern is a path whose segments
 * are literals, compared case-insensitively, or "*" for one captured segment
 * ("/enrollments/ *" without the space). A trailing slash in a request path is
 * ignored. Routes are tried in the order added. Returns EMU_OK or EMU_ENOMEM. */
int http_route(struct http_server *s, const char *method, const char *pattern, http_handler h,
	       void *arg);

const char *http_req_method(const struct http_req *r);
/* The decoded path, without the query string. */
const char *http_req_path(const struct http_req *r);
/* The i-th captured "*" segment (0-based), decoded, or NULL. */
const char *http_req_param(const struct http_req *r, int i);
/* A query parameter (case-sensitive name), decoded, or NULL. */
const char *http_req_query(const struct http_req *r, const char *name);
/* A request header (case-insensitive name), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* The request body (NUL-terminated) and its length; "" when there is none. */
const char *http_req_body(const struct http_req *r, size_t *len);
/* The body parsed as a JSON object (a new reference). An empty body is {} when
 * allow_empty, an error otherwise. On error returns NULL with the reason in
 * why ("the request body is not a JSON object: ..."); the caller answers in
 * its service's error shape. */
json_t *http_req_json_object(const struct http_req *r, int allow_empty, char *why,
			     size_t whylen);
/* The client certificate and what the client sent after it (borrowed; NULL /
 * empty when none was presented). */
X509 *http_req_peer_leaf(const struct http_req *r);
STACK_OF(X509) *http_req_peer_chain(const struct http_req *r);
/* "ip:port" of the client, for logs. */
const char *http_req_peer(const struct http_req *r);
/* A fresh UUID for this request: the x-ms-request-id and the trackingId of
 * error bodies. */
const char *http_req_id(const struct http_req *r);

/* Keeps the request open after the handler returns: answer it later, from a
 * timer or another connection's event, with one of the http_respond* calls
 * (which resume it). Other traffic goes on meanwhile. The request stays valid
 * until it is answered; the caller needs its own deadline, as a client that
 * leaves while suspended is not noticed. Call only from inside the handler. */
void http_req_suspend(struct http_req *r);

/* Adds a response header for the answer to come. Returns EMU_OK or EMU_ENOMEM. */
int http_resp_header(struct http_req *r, const char *name, const char *value);
/* Answers with a body of the given content type (copied). */
void http_respond(struct http_req *r, int status, const char *content_type, const void *body,
		  size_t len);
/* Answers with JSON (steals body; NULL sends no body). */
void http_respond_json(struct http_req *r, int status, json_t *body);
/* Answers with an Azure error body {"errorCode","trackingId","message",
 * "timestampUtc"} and the x-ms-error-code header, and logs the reason with the
 * request id, method and path. error_code is Azure's six-digit code. */
void http_respond_error(struct http_req *r, int status, int error_code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
