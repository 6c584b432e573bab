/* mqtt_server.h - the MQTT 3.1.1 server on a TLS listener, shared by services.
 *
 * Not a general broker: each connection belongs to the service that claims its
 * CONNECT (DPS and the hub tell their usernames apart), and the service decides
 * what a client may subscribe to and publish. The server handles framing,
 * keep-alive (closing after 1.5x the client's interval), PUBACK ordering (a
 * QoS 1 publish is acknowledged before anything the service sends in answer)
 * and delivery at the QoS granted on the matching subscription. */
#ifndef DPSEMU_MQTT_SERVER_H
#define DPSEMU_MQTT_SERVER_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct metrics;
struct mqtt_server;
struct mqtt_session;

/* What a CONNECT said, NUL-terminated copies valid during the callbacks. */
struct mqtt_connect_info {
	const char *client_id;
	const char *username;        /* "" when absent */
	const unsigned char *password;
	size_t password_len;
	int has_password;
	int level;                   /* 4 = MQTT 3.1.1, 3 = MQTT 3.1 */
	int keepalive;               /* seconds */
	int clean_session;
	X509 *leaf;                  /* client certificate or NULL (borrowed) */
	STACK_OF(X509) *chain;       /* what the client sent after the leaf (borrowed) */
	const char *peer;            /* "ip:port" */
};

struct mqtt_service {
	const char *name;
	void *arg;
	/* 1 if this service owns a connection with this CONNECT (by username). */
	int (*claims)(void *arg, const struct mqtt_connect_info *ci);
	/* Authenticates; returns a CONNACK code (0 accepts). Log the reason for a
	 * refusal here. May attach data with mqtt_session_set_data. */
	int (*on_connect)(void *arg, struct mqtt_session *s, const struct mqtt_connect_info *ci);
	/* Returns the granted QoS (0 or 1), 0x80 to refuse this filter, or a
	 * negative value to disconnect the client. */
	int (*on_subscribe)(void *arg, struct mqtt_session *s, const char *filter, int qos);
	/* A PUBLISH from the client (QoS 0 or 1; QoS 2 disconnects before this).
	 * Return EMU_OK to acknowledge it; anything else disconnects the client. */
	int (*on_publish)(void *arg, struct mqtt_session *s, const char *topic,
			  const unsigned char *payload, size_t len, int qos);
	/* The client acknowledged our QoS 1 publish packet_id. May be NULL. */
	void (*on_puback)(void *arg, struct mqtt_session *s, uint16_t packet_id);
	/* The session ends (after an accepted CONNECT). Release its data. */
	void (*on_close)(void *arg, struct mqtt_session *s);
};

/* Listens on bind_addr:port with TLS context ctx (borrowed). max_packet bounds
 * every incoming packet. The sessions whose CONNECT was accepted are counted
 * in metrics' (borrowed, may be NULL) gauge dpsemu_mqtt_connections. Returns
 * EMU_OK or an emu_err (bind failure logged). */
int mqtt_server_new(struct loop *lp, SSL_CTX *ctx, const char *bind_addr, int port,
		    size_t max_packet, struct metrics *metrics, struct mqtt_server **out);
/* Adds a service (copied; its arg is borrowed). Services are asked in the order
 * added. Returns EMU_OK or EMU_ENOMEM. */
int mqtt_server_add_service(struct mqtt_server *srv, const struct mqtt_service *svc);
/* Closes every connection and the listener. NULL is fine. */
void mqtt_server_free(struct mqtt_server *srv);
/* Disconnects every client (reason goes to the log); the listener stays. The
 * services' on_close run later, from the loop. */
void mqtt_server_close_all(struct mqtt_server *srv, const char *reason);
int mqtt_server_port(const struct mqtt_server *srv);

/* Sends a PUBLISH to the client if one of its subscriptions matches topic, at
 * min(qos, granted QoS). Returns EMU_OK, EMU_ENOTFOUND when no subscription
 * matches (nothing sent), EMU_ECLOSED when the session is closing, or the
 * encoder's error. For QoS 1, *packet_id (if not NULL) receives the id. */
int mqtt_session_publish(struct mqtt_session *s, const char *topic, const void *payload,
			 size_t len, int qos, uint16_t *packet_id);
/* Disconnects the client after pending output; reason goes to the log. */
void mqtt_session_close(struct mqtt_session *s, const char *reason);

void mqtt_session_set_data(struct mqtt_session *s, void *data);
void *mqtt_session_data(const struct mqtt_session *s);
const char *mqtt_session_client_id(const struct mqtt_session *s);
const char *mqtt_session_peer(const struct mqtt_session *s);
X509 *mqtt_session_peer_leaf(const struct mqtt_session *s);
STACK_OF(X509) *mqtt_session_peer_chain(const struct mqtt_session *s);

#endif
