/* mqtt_codec.h - MQTT 3.1.1 (and 3.1 CONNECT) packet parser and encoders, no I/O.
 *
 * The parser works on bytes the caller has already read: it decodes at most one
 * packet from the start of a buffer, says how many bytes it used, and never
 * allocates. Strings and payloads in a parsed packet point into that buffer
 * (zero-copy): they are valid while the buffer is unchanged, so the caller copies
 * what it keeps before consuming the bytes.
 *
 * Encoders append one complete packet to a struct buf; on failure the buffer is
 * left exactly as it was. */
#ifndef DPSEMU_MQTT_CODEC_H
#define DPSEMU_MQTT_CODEC_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest remaining length the 4-byte variable length encoding can carry. */
#define MQTT_MAX_REMAINING 268435455u
/* Most topic filters accepted in one SUBSCRIBE/UNSUBSCRIBE (and codes in a SUBACK). */
#define MQTT_MAX_FILTERS 32

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
};

/* CONNACK return codes (MQTT 3.1.1 section 3.2.2.3). */
enum mqtt_connack_rc {
	MQTT_CONNACK_ACCEPTED = 0,
	MQTT_CONNACK_BAD_PROTOCOL = 1,        /* unacceptable protocol version */
	MQTT_CONNACK_ID_REJECTED = 2,         /* identifier rejected */
	MQTT_CONNACK_SERVER_UNAVAILABLE = 3,
	MQTT_CONNACK_BAD_CREDENTIALS = 4,     /* bad user name or password */
	MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

/* SUBACK failure code; success codes are the granted QoS 0..2. */
#define MQTT_SUBACK_FAILURE 0x80

/* A length-prefixed MQTT string or binary field. Not NUL-terminated. In a parsed
 * packet p points into the parser's input buffer. */
struct mqtt_str {
	const char *p;
	uint16_t len;
};

struct mqtt_connect {
	struct mqtt_str protocol_name; /* "MQTT" (level 4) or "MQIsdp" (level 3) */
	uint8_t level;                 /* protocol level byte as sent */
	/* false: the name/level pair is one we do not speak. Only protocol_name and
	 * level are filled then; answer CONNACK MQTT_CONNACK_BAD_PROTOCOL. */
	bool protocol_ok;
	bool clean_session;
	bool will;          /* will flag: will_topic/will_message are present */
	uint8_t will_qos;
	bool will_retain;
	bool has_username;  /* username present (may still be empty) */
	bool has_password;  /* password present (may still be empty) */
	uint16_t keepalive; /* seconds; 0 = no keep-alive */
	struct mqtt_str client_id; /* may be empty */
	struct mqtt_str will_topic;
	struct mqtt_str will_message; /* binary */
	struct mqtt_str username;
	struct mqtt_str password;     /* binary */
};

struct mqtt_connack {
	bool session_present;
	uint8_t rc; /* enum mqtt_connack_rc */
};

struct mqtt_publish {
	struct mqtt_str topic; /* non-empty, valid UTF-8, no wildcards */
	const uint8_t *payload; /* may be empty; points into the input */
	size_t payload_len;
	uint8_t qos; /* 0..2 */
	bool dup;
	bool retain;
};

struct mqtt_subscribe {
	size_t count; /* 1..MQTT_MAX_FILTERS */
	struct mqtt_str filters[MQTT_MAX_FILTERS];
	uint8_t qos[MQTT_MAX_FILTERS]; /* requested QoS 0..2 */
};

struct mqtt_unsubscribe {
	size_t count; /* 1..MQTT_MAX_FILTERS */
	struct mqtt_str filters[MQTT_MAX_FILTERS];
};

struct mqtt_suback {
	size_t count; /* 1..MQTT_MAX_FILTERS */
	uint8_t codes[MQTT_MAX_FILTERS]; /* 0, 1, 2 or MQTT_SUBACK_FAILURE */
};

struct mqtt_packet {
	enum mqtt_type type;
	uint8_t flags; /* low nibble of the fixed header as sent */
	/* PUBLISH with QoS > 0, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK,
	 * UNSUBSCRIBE, UNSUBACK: never 0. Other types: 0. */
	uint16_t packet_id;
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_subscribe subscribe;
		struct mqtt_unsubscribe unsubscribe;
		struct mqtt_suback suback;
	};
};

/* Parses one packet from the start of buf[0..len).
 *   max_packet  largest accepted packet, fixed header included; 0 = only the
 *               protocol limit.
 *   out         filled on EMU_OK; its strings point into buf.
 *   consumed    on EMU_OK the size of the packet (drop that many bytes after use);
 *               0 otherwise.
 *   why         may be NULL; on EMU_EPROTO/EMU_ETOOBIG set to a static string
 *               saying what was wrong (for the log), NULL otherwise.
 * Returns EMU_OK; EMU_EAGAIN when the packet is not complete yet (nothing past len
 * is read; call again with more bytes); EMU_ETOOBIG as soon as the fixed header
 * shows the packet exceeds max_packet, before the body arrives; EMU_EPROTO for a
 * malformed packet (disconnect the peer). A CONNECT with an unknown protocol name
 * or level is EMU_OK with out->connect.protocol_ok false. */
int mqtt_parse(const uint8_t *buf, size_t len, size_t max_packet, struct mqtt_packet *out,
	       size_t *consumed, const char **why);

/* Returns the packet type's name ("CONNECT", ...) or "UNKNOWN". Static string. */
const char *mqtt_type_name(int type);

/* Returns 1 if topic (a topic name, no wildcards) matches filter under MQTT rules:
 * '+' matches one level, a trailing '#' matches the parent and every level below,
 * and a filter starting with a wildcard does not match a topic starting with '$'.
 * Returns 0 otherwise, also when the filter's wildcards are misplaced or either
 * string is empty. Neither string needs a terminator. */
int mqtt_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

/* Encoders. Each appends one packet to b and returns EMU_OK; EMU_EINVAL for
 * arguments the protocol cannot carry (see each function); EMU_ETOOBIG when the
 * packet would exceed b's maximum; EMU_ENOMEM. On error b is unchanged. */

/* CONNACK. rc is an enum mqtt_connack_rc (0..5, else EMU_EINVAL);
 * session_present must be false unless rc is accepted (EMU_EINVAL). */
int mqtt_write_connack(struct buf *b, bool session_present, int rc);

/* PUBLISH. topic must be 1..65535 bytes of valid UTF-8 without wildcards, qos
 * 0..2, packet_id non-zero when qos > 0 (ignored for qos 0), dup only with
 * qos > 0, and the packet within MQTT_MAX_REMAINING; otherwise EMU_EINVAL. */
int mqtt_write_publish(struct buf *b, const char *topic, size_t topic_len, const void *payload,
		       size_t len, int qos, uint16_t packet_id, bool dup, bool retain);

/* PUBACK / UNSUBACK for packet_id (non-zero, else EMU_EINVAL). */
int mqtt_write_puback(struct buf *b, uint16_t packet_id);
int mqtt_write_unsuback(struct buf *b, uint16_t packet_id);

/* SUBACK with n (1..MQTT_MAX_FILTERS) return codes, each 0..2 or
 * MQTT_SUBACK_FAILURE; packet_id non-zero. Otherwise EMU_EINVAL. */
int mqtt_write_suback(struct buf *b, uint16_t packet_id, const uint8_t *codes, size_t n);

/* PINGRESP, PINGREQ, DISCONNECT: two fixed bytes each. */
int mqtt_write_pingresp(struct buf *b);
int mqtt_write_pingreq(struct buf *b);
int mqtt_write_disconnect(struct buf *b);

/* CONNECT from c (client side, for tests and tools). The protocol name is
 * c->protocol_name when its p is non-NULL, else "MQTT" for level 4 and "MQIsdp"
 * for level 3 (EMU_EINVAL for other levels). protocol_ok is ignored. will_topic
 * and will_message are written only with will set, username/password only with
 * has_username/has_password. EMU_EINVAL: will_qos > 2, will_qos or will_retain
 * without will, or (level 4) a password without a username. */
int mqtt_write_connect(struct buf *b, const struct mqtt_connect *c);

/* SUBSCRIBE with n (1..MQTT_MAX_FILTERS) filters, each with a requested QoS
 * 0..2; packet_id non-zero. Filters must be non-empty and wildcards legally
 * placed (not otherwise checked). Otherwise EMU_EINVAL. */
int mqtt_write_subscribe(struct buf *b, uint16_t packet_id, const struct mqtt_str *filters,
			 const uint8_t *qos, size_t n);

/* UNSUBSCRIBE with n (1..MQTT_MAX_FILTERS) non-empty filters; packet_id non-zero. */
int mqtt_write_unsubscribe(struct buf *b, uint16_t packet_id, const struct mqtt_str *filters,
			   size_t n);

#endif
