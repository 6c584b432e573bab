/* tls.h - TLS listeners and connections (OpenSSL) driven by the event loop.
 *
 * The server requests a client certificate but accepts any chain at the
 * handshake: the protocol layer decides (CONNACK 5, HTTP 401) and can log why.
 * Session tickets and the session cache are off so every connection carries the
 * full chain the device sent. Protocol code sees plaintext bytes through three
 * callbacks and writes with tls_conn_send. */
#ifndef DPSEMU_TLS_H
#define DPSEMU_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct tls_server;
struct tls_conn;

struct tls_handlers {
	/* Handshake finished. Return EMU_OK to keep the connection, anything else
	 * closes it (on_close is then not called). */
	int (*on_open)(void *arg, struct tls_conn *c);
	/* Plaintext arrived. The bytes are valid during the call only. */
	void (*on_data)(void *arg, struct tls_conn *c, const unsigned char *p, size_t n);
	/* The connection is going away (after a successful on_open): release
	 * everything tied to it. c is freed when this returns. */
	void (*on_close)(void *arg, struct tls_conn *c);
};

/* Creates a server SSL_CTX from a PEM chain file (server certificate first) and
 * a key file. Returns EMU_OK, or EMU_ETLS with the OpenSSL reason logged. */
int tls_ctx_new(const char *chain_file, const char *key_file, SSL_CTX **out);

/* Listens on bind_addr:port (port 0 picks a free port) and serves connections
 * through h. name labels log lines ("mqtt", "https"). The server borrows ctx and
 * lp. Returns EMU_OK, EMU_EIO (bind failure, logged with advice) or EMU_ENOMEM. */
int tls_server_new(struct loop *lp, SSL_CTX *ctx, const char *bind_addr, int port,
		   const char *name, const struct tls_handlers *h, void *arg,
		   struct tls_server **out);
/* Closes the listener and every connection (calling on_close). NULL is fine. */
void tls_server_free(struct tls_server *s);
/* The port actually bound. */
int tls_server_port(const struct tls_server *s);
/* Number of connections that completed the handshake and are open. */
int tls_server_connections(const struct tls_server *s);

/* Queues n bytes and writes what the socket takes now. Returns EMU_OK, or
 * EMU_ETOOBIG when the peer is not reading and the output queue is full (the
 * connection is then being closed), EMU_ECLOSED if it is already closing. */
int tls_conn_send(struct tls_conn *c, const void *p, size_t n);
/* Closes the connection once queued output is written. reason is logged at
 * debug level. Safe to call from inside the handlers, and more than once. */
void tls_conn_close(struct tls_conn *c, const char *reason);
/* True once tls_conn_close was called or the peer went away. */
int tls_conn_closing(const struct tls_conn *c);

void tls_conn_set_data(struct tls_conn *c, void *data);
void *tls_conn_data(const struct tls_conn *c);

/* The client's certificate (NULL if none) and the certificates it sent after
 * it, in its order (may be empty). Borrowed: valid while the connection lives. */
X509 *tls_conn_peer_leaf(const struct tls_conn *c);
STACK_OF(X509) *tls_conn_peer_chain(const struct tls_conn *c);
/* "127.0.0.1:54321", for logs. */
const char *tls_conn_peer_name(const struct tls_conn *c);
/* The peer's socket address. */
const struct sockaddr *tls_conn_peer_addr(const struct tls_conn *c, socklen_t *len);

/* Closes the connection ("timeout") if it is still open at the monotonic time
 * deadline_ms (see clock_mono_ms); 0 removes the deadline. */
void tls_conn_set_deadline(struct tls_conn *c, uint64_t deadline_ms);
/* Stops (paused = 1) or resumes reading from the peer. */
void tls_conn_pause(struct tls_conn *c, int paused);

#endif
