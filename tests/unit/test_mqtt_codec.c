/* Unit tests for common/mqtt_codec: golden bytes, split delivery, limits, every
 * malformed case the parser refuses, encoders and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "mqtt_codec.h"

#define NODE_ID "dev-x509-01"
#define NODE_USER                                                                              \
	"0ne00000001/registrations/dev-x509-01/api-version=2019-03-31&ClientVersion=azure-iot-" \
	"provisioning-device%2F1.9.1"

/* The provisioning CONNECT the Node SDK (X.509) sent on the wire. */
static size_t node_connect(uint8_t *out)
{
	static const uint8_t head[] = { 0x10, 0x89, 0x01, 0x00, 0x04, 'M',  'Q',  'T',
					'T',  0x04, 0x82, 0x00, 0xb4, 0x00, 0x0b };
	size_t n = 0;

	memcpy(out + n, head, sizeof(head));
	n += sizeof(head);
	memcpy(out + n, NODE_ID, strlen(NODE_ID));
	n += strlen(NODE_ID);
	out[n++] = 0x00;
	out[n++] = 0x70;
	memcpy(out + n, NODE_USER, strlen(NODE_USER));
	n += strlen(NODE_USER);
	return n;
}

static bool str_eq(struct mqtt_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static struct mqtt_str cstr(const char *s)
{
	return (struct mqtt_str){ s, (uint16_t)strlen(s) };
}

/* Parses p[0..n) and expects exactly one complete packet. */
static void parse_ok(const uint8_t *p, size_t n, struct mqtt_packet *pkt)
{
	size_t used = 99;
	const char *why = "unset";

	assert_int_equal(mqtt_parse(p, n, 0, pkt, &used, &why), EMU_OK);
	assert_int_equal(used, n);
	assert_null(why);
}

static void parse_proto(const uint8_t *p, size_t n, const char *reason)
{
	struct mqtt_packet pkt;
	size_t used = 99;
	const char *why = NULL;

	assert_int_equal(mqtt_parse(p, n, 0, &pkt, &used, &why), EMU_EPROTO);
	assert_int_equal(used, 0);
	assert_non_null(why);
	assert_string_equal(why, reason);
}

static void test_node_connect(void **state)
{
	uint8_t raw[200];
	size_t n = node_connect(raw);
	struct mqtt_packet pkt;
	const struct mqtt_connect *c = &pkt.connect;

	assert_int_equal(strlen(NODE_USER), 0x70);
	assert_int_equal(n, 3 + 137);
	parse_ok(raw, n, &pkt);
	assert_int_equal(pkt.type, MQTT_CONNECT);
	assert_int_equal(pkt.packet_id, 0);
	assert_true(str_eq(c->protocol_name, "MQTT"));
	assert_int_equal(c->level, 4);
	assert_true(c->protocol_ok);
	assert_true(c->clean_session);
	assert_true(c->has_username);
	assert_false(c->has_password);
	assert_false(c->will);
	assert_int_equal(c->keepalive, 180);
	assert_true(str_eq(c->client_id, NODE_ID));
	assert_true(str_eq(c->username, NODE_USER));
	/* zero-copy: the strings point into the input */
	assert_ptr_equal(c->client_id.p, (const char *)raw + 15);
}

static void test_node_connect_reencodes_identically(void **state)
{
	uint8_t raw[200];
	size_t n = node_connect(raw);
	struct mqtt_connect c = {
		.level = 4,
		.clean_session = true,
		.has_username = true,
		.keepalive = 180,
		.client_id = cstr(NODE_ID),
		.username = cstr(NODE_USER),
	};
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mqtt_write_connect(&b, &c), EMU_OK);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, raw, n);
	buf_free(&b);
}

static void test_split_delivery(void **state)
{
	uint8_t raw[200];
	size_t n = node_connect(raw), used;
	struct mqtt_packet pkt;
	const char *why;

	for (size_t i = 0; i < n; i++) {
		/* a copy of exactly i bytes, so ASan sees any read past len */
		uint8_t *part = malloc(i ? i : 1);

		memcpy(part, raw, i);
		why = "unset";
		assert_int_equal(mqtt_parse(part, i, 0, &pkt, &used, &why), EMU_EAGAIN);
		assert_int_equal(used, 0);
		assert_null(why);
		free(part);
	}
	parse_ok(raw, n, &pkt);
	assert_true(str_eq(pkt.connect.username, NODE_USER));
}

static void test_two_packets_in_one_buffer(void **state)
{
	uint8_t raw[220];
	size_t n = node_connect(raw), used;
	struct mqtt_packet pkt;

	raw[n] = 0xc0; /* PINGREQ */
	raw[n + 1] = 0x00;
	raw[n + 2] = 0xe0; /* half a DISCONNECT */
	assert_int_equal(mqtt_parse(raw, n + 3, 0, &pkt, &used, NULL), EMU_OK);
	assert_int_equal(used, n);
	assert_int_equal(mqtt_parse(raw + n, 3, 0, &pkt, &used, NULL), EMU_OK);
	assert_int_equal(pkt.type, MQTT_PINGREQ);
	assert_int_equal(used, 2);
	assert_int_equal(mqtt_parse(raw + n + 2, 1, 0, &pkt, &used, NULL), EMU_EAGAIN);
}

static void test_too_big_decided_from_header(void **state)
{
	/* PUBLISH announcing 1000 bytes; only the fixed header has arrived */
	static const uint8_t hdr[] = { 0x30, 0xe8, 0x07 };
	struct mqtt_packet pkt;
	size_t used = 5;
	const char *why = NULL;

	assert_int_equal(mqtt_parse(hdr, 2, 100, &pkt, &used, &why), EMU_EAGAIN);
	assert_int_equal(mqtt_parse(hdr, 3, 100, &pkt, &used, &why), EMU_ETOOBIG);
	assert_int_equal(used, 0);
	assert_string_equal(why, "packet exceeds maximum size");
	/* 3 + 1000 bytes: the limit counts the fixed header too */
	assert_int_equal(mqtt_parse(hdr, 3, 1002, &pkt, &used, &why), EMU_ETOOBIG);
	assert_int_equal(mqtt_parse(hdr, 3, 1003, &pkt, &used, &why), EMU_EAGAIN);
	assert_int_equal(mqtt_parse(hdr, 3, 0, &pkt, &used, &why), EMU_EAGAIN);
}

static void test_packet_exactly_at_limit(void **state)
{
	static const uint8_t p[] = { 0x30, 0x05, 0x00, 0x01, 'a', 'x', 'y' };
	struct mqtt_packet pkt;
	size_t used;

	assert_int_equal(mqtt_parse(p, sizeof(p), sizeof(p), &pkt, &used, NULL), EMU_OK);
	assert_int_equal(mqtt_parse(p, sizeof(p), sizeof(p) - 1, &pkt, &used, NULL), EMU_ETOOBIG);
}

static void test_remaining_length_limits(void **state)
{
	static const uint8_t five[] = { 0x30, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t four[] = { 0x30, 0xff, 0xff, 0xff, 0x7f };
	struct mqtt_packet pkt;
	size_t used;
	const char *why = NULL;

	/* decided on the fifth byte, without waiting for a sixth */
	assert_int_equal(mqtt_parse(five, 5, 0, &pkt, &used, &why), EMU_EPROTO);
	assert_string_equal(why, "remaining length uses more than 4 bytes");
	/* 268435455 is legal: wait for it, or refuse it as too big */
	assert_int_equal(mqtt_parse(four, sizeof(four), 0, &pkt, &used, NULL), EMU_EAGAIN);
	assert_int_equal(mqtt_parse(four, sizeof(four), 1 << 20, &pkt, &used, NULL),
			 EMU_ETOOBIG);
	assert_int_equal(mqtt_parse(four, 0, 0, &pkt, &used, NULL), EMU_EAGAIN);
}

static void test_reserved_types(void **state)
{
	static const uint8_t t0[] = { 0x00, 0x00 };
	static const uint8_t t15[] = { 0xf0, 0x00 };

	parse_proto(t0, sizeof(t0), "reserved packet type");
	parse_proto(t15, 1, "reserved packet type");
}

static void test_fixed_header_flags(void **state)
{
	static const uint8_t conn[] = { 0x11, 0x00 };
	static const uint8_t sub0[] = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00 };
	static const uint8_t unsub0[] = { 0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, 'a' };
	static const uint8_t pubrel0[] = { 0x60, 0x02, 0x00, 0x01 };
	static const uint8_t puback2[] = { 0x42, 0x02, 0x00, 0x01 };
	static const uint8_t ping1[] = { 0xc1, 0x00 };

	/* decided from the first byte alone */
	parse_proto(conn, 1, "reserved flag bits set in CONNECT");
	parse_proto(sub0, 1, "reserved flag bits set in SUBSCRIBE (must be 0x2)");
	parse_proto(unsub0, sizeof(unsub0), "reserved flag bits set in UNSUBSCRIBE (must be 0x2)");
	parse_proto(pubrel0, sizeof(pubrel0), "PUBREL flags are not 0x2");
	parse_proto(puback2, sizeof(puback2), "reserved flag bits set in PUBACK");
	parse_proto(ping1, sizeof(ping1), "reserved flag bits set in PINGREQ");
}

/* Builds CONNECT bytes around the variable header after the protocol level. */
static size_t connect_bytes(uint8_t *out, const char *name, uint8_t level, const uint8_t *rest,
			    size_t rest_len)
{
	size_t nl = strlen(name), rl = 2 + nl + 1 + rest_len, n = 0;

	out[n++] = 0x10;
	out[n++] = (uint8_t)rl; /* tests keep it under 128 */
	out[n++] = 0;
	out[n++] = (uint8_t)nl;
	memcpy(out + n, name, nl);
	n += nl;
	out[n++] = level;
	if (rest_len)
		memcpy(out + n, rest, rest_len);
	return n + rest_len;
}

static void test_connect_mqtt31(void **state)
{
	/* Paho's retry: MQIsdp level 3, clean session, keepalive 240, client id "d1" */
	static const uint8_t rest[] = { 0x02, 0x00, 0xf0, 0x00, 0x02, 'd', '1' };
	uint8_t raw[64];
	size_t n = connect_bytes(raw, "MQIsdp", 3, rest, sizeof(rest));
	struct mqtt_packet pkt;

	parse_ok(raw, n, &pkt);
	assert_true(pkt.connect.protocol_ok);
	assert_int_equal(pkt.connect.level, 3);
	assert_true(str_eq(pkt.connect.protocol_name, "MQIsdp"));
	assert_int_equal(pkt.connect.keepalive, 240);
	assert_true(str_eq(pkt.connect.client_id, "d1"));
}

static void test_connect_mqtt31_password_without_username(void **state)
{
	/* 3.1 clients get a CONNACK, so 3.1 flags are read loosely */
	static const uint8_t rest[] = { 0x42, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x02, 'p', 'w' };
	uint8_t raw[64];
	size_t n = connect_bytes(raw, "MQIsdp", 3, rest, sizeof(rest));
	struct mqtt_packet pkt;

	parse_ok(raw, n, &pkt);
	assert_true(pkt.connect.has_password);
	assert_true(str_eq(pkt.connect.password, "pw"));
	n = connect_bytes(raw, "MQTT", 4, rest, sizeof(rest));
	parse_proto(raw, n, "password flag without username flag");
}

static void test_connect_unknown_protocol(void **state)
{
	/* MQTT 5 adds properties after the keepalive: we only read name and level */
	static const uint8_t v5[] = { 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'd' };
	uint8_t raw[64];
	size_t n = connect_bytes(raw, "MQTT", 5, v5, sizeof(v5));
	struct mqtt_packet pkt;

	parse_ok(raw, n, &pkt);
	assert_int_equal(pkt.type, MQTT_CONNECT);
	assert_false(pkt.connect.protocol_ok);
	assert_int_equal(pkt.connect.level, 5);
	assert_int_equal(pkt.connect.client_id.len, 0);

	n = connect_bytes(raw, "MQIsdp", 4, v5, sizeof(v5));
	parse_ok(raw, n, &pkt);
	assert_false(pkt.connect.protocol_ok);
	n = connect_bytes(raw, "MQTT", 3, v5, sizeof(v5));
	parse_ok(raw, n, &pkt);
	assert_false(pkt.connect.protocol_ok);
	n = connect_bytes(raw, "AMQP", 4, NULL, 0);
	parse_ok(raw, n, &pkt);
	assert_false(pkt.connect.protocol_ok);
	assert_true(str_eq(pkt.connect.protocol_name, "AMQP"));
}

static void test_connect_full_roundtrip(void **state)
{
	static const char pw[] = { 'S', 0x00, (char)0xff, 'x' }; /* binary password */
	struct mqtt_connect in = {
		.level = 4,
		.will = true,
		.will_qos = 1,
		.will_retain = true,
		.has_username = true,
		.has_password = true,
		.keepalive = 65535,
		.client_id = cstr("client-\xc3\xbc"),
		.will_topic = cstr("devices/d1/lwt"),
		.will_message = { "\x00\x01", 2 },
		.username = cstr("hub/d1/?api-version=2021-04-12"),
		.password = { pw, sizeof(pw) },
	};
	struct mqtt_packet pkt;
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mqtt_write_connect(&b, &in), EMU_OK);
	parse_ok(b.data, b.len, &pkt);
	assert_true(pkt.connect.protocol_ok);
	assert_false(pkt.connect.clean_session);
	assert_true(pkt.connect.will);
	assert_int_equal(pkt.connect.will_qos, 1);
	assert_true(pkt.connect.will_retain);
	assert_int_equal(pkt.connect.keepalive, 65535);
	assert_true(str_eq(pkt.connect.client_id, "client-\xc3\xbc"));
	assert_true(str_eq(pkt.connect.will_topic, "devices/d1/lwt"));
	assert_int_equal(pkt.connect.will_message.len, 2);
	assert_memory_equal(pkt.connect.will_message.p, "\x00\x01", 2);
	assert_true(str_eq(pkt.connect.username, "hub/d1/?api-version=2021-04-12"));
	assert_int_equal(pkt.connect.password.len, sizeof(pw));
	assert_memory_equal(pkt.connect.password.p, pw, sizeof(pw));
	buf_free(&b);
}

static void test_connect_empty_client_id(void **state)
{
	static const uint8_t rest[] = { 0x02, 0x00, 0x00, 0x00, 0x00 };
	uint8_t raw[64];
	size_t n = connect_bytes(raw, "MQTT", 4, rest, sizeof(rest));
	struct mqtt_packet pkt;

	parse_ok(raw, n, &pkt);
	assert_int_equal(pkt.connect.client_id.len, 0);
	assert_int_equal(pkt.connect.keepalive, 0);
}

static void test_connect_malformed(void **state)
{
	static const struct {
		uint8_t rest[24];
		size_t len;
		const char *why;
	} cases[] = {
		{ { 0x03, 0x00, 0x3c, 0x00, 0x01, 'd' }, 6, "reserved connect flag bit set" },
		{ { 0x1c, 0x00, 0x3c, 0x00, 0x01, 'd' }, 6, "will QoS 3 in CONNECT" },
		{ { 0x08, 0x00, 0x3c, 0x00, 0x01, 'd' },
		  6,
		  "will QoS or retain set without will flag" },
		{ { 0x20, 0x00, 0x3c, 0x00, 0x01, 'd' },
		  6,
		  "will QoS or retain set without will flag" },
		{ { 0x40, 0x00, 0x3c, 0x00, 0x01, 'd', 0, 0 },
		  8,
		  "password flag without username flag" },
		{ { 0x02 }, 1, "CONNECT too short for keepalive" },
		{ { 0x02, 0x00, 0x3c, 0x00, 0x05, 'd' }, 6, "client id length exceeds packet" },
		{ { 0x02, 0x00, 0x3c, 0x00 }, 4, "client id length exceeds packet" },
		{ { 0x02, 0x00, 0x3c, 0x00, 0x01, 'd', 'x' },
		  7,
		  "trailing bytes after packet fields" },
		{ { 0x02, 0x00, 0x3c, 0x00, 0x02, 0xc0, 0x80 }, 7, "invalid UTF-8 in client id" },
		{ { 0x02, 0x00, 0x3c, 0x00, 0x01, 0x00 }, 6, "invalid UTF-8 in client id" },
		{ { 0x06, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x03, 'a', '/', '#', 0x00, 0x00 },
		  13,
		  "will topic contains wildcard" },
		{ { 0x06, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x00, 0x00, 0x00 },
		  10,
		  "empty will topic" },
		{ { 0x06, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x01, 'a' },
		  9,
		  "will message length exceeds packet" },
		{ { 0x82, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x09, 'u' },
		  9,
		  "username length exceeds packet" },
		{ { 0x82, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x01, 0xff },
		  9,
		  "invalid UTF-8 in username" },
		{ { 0xc2, 0x00, 0x3c, 0x00, 0x01, 'd', 0x00, 0x01, 'u', 0x00 },
		  10,
		  "password length exceeds packet" },
	};
	uint8_t raw[64];
	static const uint8_t no_level[] = { 0x10, 0x06, 0x00, 0x04, 'M', 'Q', 'T', 'T' };
	static const uint8_t bad_name[] = { 0x10, 0x03, 0x00, 0x04, 'M' };
	static const uint8_t no_flags[] = { 0x10, 0x07, 0x00, 0x04, 'M', 'Q', 'T', 'T', 4 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = connect_bytes(raw, "MQTT", 4, cases[i].rest, cases[i].len);
		parse_proto(raw, n, cases[i].why);
	}
	parse_proto(no_level, sizeof(no_level), "CONNECT too short for protocol level");
	parse_proto(bad_name, sizeof(bad_name), "protocol name length exceeds packet");
	parse_proto(no_flags, sizeof(no_flags), "CONNECT too short for connect flags");
}

static void test_publish_golden(void **state)
{
	/* QoS 1 register request as the SDKs send it (topic shortened) */
	static const uint8_t p[] = { 0x32, 0x13, 0x00, 0x0c, '$', 'd', 'p', 's', '/', '?', '$',
				     'r',  'i',  'd',  '=',  '1', 0x97, 0x07, '{', '}', 0x0a };
	struct mqtt_packet pkt;

	parse_ok(p, sizeof(p), &pkt);
	assert_int_equal(pkt.type, MQTT_PUBLISH);
	assert_int_equal(pkt.publish.qos, 1);
	assert_false(pkt.publish.dup);
	assert_false(pkt.publish.retain);
	assert_int_equal(pkt.packet_id, 0x9707);
	assert_true(str_eq(pkt.publish.topic, "$dps/?$rid=1"));
	assert_int_equal(pkt.publish.payload_len, 3);
	assert_memory_equal(pkt.publish.payload, "{}\n", 3);
}

static void test_publish_qos0_qos2_and_flags(void **state)
{
	static const uint8_t q0[] = { 0x31, 0x03, 0x00, 0x01, 't' };
	static const uint8_t q2[] = { 0x3c, 0x05, 0x00, 0x01, 't', 0x00, 0x02 };
	struct mqtt_packet pkt;

	parse_ok(q0, sizeof(q0), &pkt);
	assert_int_equal(pkt.publish.qos, 0);
	assert_true(pkt.publish.retain);
	assert_int_equal(pkt.packet_id, 0);
	assert_int_equal(pkt.publish.payload_len, 0);
	/* QoS 2 parses: refusing it is the server's decision */
	parse_ok(q2, sizeof(q2), &pkt);
	assert_int_equal(pkt.publish.qos, 2);
	assert_true(pkt.publish.dup);
	assert_int_equal(pkt.packet_id, 2);
}

static void test_publish_utf8_topic(void **state)
{
	/* u-umlaut, euro sign, G clef (4 bytes) */
	static const char topic[] = "\xc3\xbc/\xe2\x82\xac/\xf0\x9d\x84\x9e";
	struct mqtt_packet pkt;
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mqtt_write_publish(&b, topic, strlen(topic), "x", 1, 0, 0, false, false),
			 EMU_OK);
	parse_ok(b.data, b.len, &pkt);
	assert_true(str_eq(pkt.publish.topic, topic));
	buf_free(&b);
}

static void test_publish_malformed(void **state)
{
	static const struct {
		uint8_t p[16];
		size_t len;
		const char *why;
	} cases[] = {
		{ { 0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01 }, 7, "QoS 3 in PUBLISH" },
		{ { 0x38, 0x03, 0x00, 0x01, 't' }, 5, "DUP set in QoS 0 PUBLISH" },
		{ { 0x30, 0x02, 0x00, 0x00 }, 4, "empty topic in PUBLISH" },
		{ { 0x30, 0x05, 0x00, 0x03, 'a', '/', '+' }, 7, "topic contains wildcard" },
		{ { 0x30, 0x03, 0x00, 0x01, '#' }, 5, "topic contains wildcard" },
		{ { 0x30, 0x03, 0x00, 0x01, 0x00 }, 5, "invalid UTF-8 in topic" },
		/* overlong '/', surrogate U+D800, above U+10FFFF, truncated sequence,
		 * lone continuation byte */
		{ { 0x30, 0x04, 0x00, 0x02, 0xc0, 0xaf }, 6, "invalid UTF-8 in topic" },
		{ { 0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80 }, 7, "invalid UTF-8 in topic" },
		{ { 0x30, 0x06, 0x00, 0x04, 0xf4, 0x90, 0x80, 0x80 }, 8, "invalid UTF-8 in topic" },
		{ { 0x30, 0x04, 0x00, 0x02, 0xe2, 0x82 }, 6, "invalid UTF-8 in topic" },
		{ { 0x30, 0x03, 0x00, 0x01, 0x80 }, 5, "invalid UTF-8 in topic" },
		{ { 0x30, 0x05, 0x00, 0x03, 0xe0, 0x80, 0xaf }, 7, "invalid UTF-8 in topic" },
		{ { 0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00 }, 7, "packet id 0 in PUBLISH" },
		{ { 0x32, 0x04, 0x00, 0x01, 't', 0x00 }, 6, "PUBLISH too short for packet id" },
		{ { 0x30, 0x03, 0x00, 0x05, 't' }, 5, "topic length exceeds packet" },
		{ { 0x30, 0x01, 0x00 }, 3, "topic length exceeds packet" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_proto(cases[i].p, cases[i].len, cases[i].why);
}

static void test_acks(void **state)
{
	static const uint8_t types[] = { 0x40, 0x50, 0x62, 0x70, 0xb0 };
	struct mqtt_packet pkt;

	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t ok[] = { types[i], 0x02, 0x12, 0x34 };
		uint8_t zero[] = { types[i], 0x02, 0x00, 0x00 };
		uint8_t longer[] = { types[i], 0x03, 0x12, 0x34, 0x00 };
		uint8_t shorter[] = { types[i], 0x01, 0x12 };

		parse_ok(ok, sizeof(ok), &pkt);
		assert_int_equal(pkt.type, types[i] >> 4);
		assert_int_equal(pkt.packet_id, 0x1234);
		parse_proto(zero, sizeof(zero), "packet id 0 in acknowledgement");
		parse_proto(longer, sizeof(longer), "acknowledgement remaining length is not 2");
		parse_proto(shorter, sizeof(shorter), "acknowledgement remaining length is not 2");
	}
}

static void test_subscribe(void **state)
{
	/* the DPS subscription, plus a second filter at QoS 0 */
	static const uint8_t p[] = { 0x82, 0x21, 0x00, 0x01, 0x00, 0x18, '$', 'd', 'p', 's', '/',
				     'r',  'e',  'g',  'i',  's',  't',  'r', 'a', 't', 'i', 'o',
				     'n',  's',  '/',  'r',  'e',  's',  '/', '#', 0x01, 0x00,
				     0x01, '+',  0x00 };
	struct mqtt_packet pkt;

	parse_ok(p, sizeof(p), &pkt);
	assert_int_equal(pkt.type, MQTT_SUBSCRIBE);
	assert_int_equal(pkt.packet_id, 1);
	assert_int_equal(pkt.subscribe.count, 2);
	assert_true(str_eq(pkt.subscribe.filters[0], "$dps/registrations/res/#"));
	assert_int_equal(pkt.subscribe.qos[0], 1);
	assert_true(str_eq(pkt.subscribe.filters[1], "+"));
	assert_int_equal(pkt.subscribe.qos[1], 0);
}

static void test_subscribe_malformed(void **state)
{
	static const struct {
		uint8_t p[16];
		size_t len;
		const char *why;
	} cases[] = {
		{ { 0x82, 0x02, 0x00, 0x01 }, 4, "SUBSCRIBE without topic filters" },
		{ { 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00 },
		  8,
		  "packet id 0 in SUBSCRIBE" },
		{ { 0x82, 0x01, 0x00 }, 3, "SUBSCRIBE too short for packet id" },
		{ { 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03 },
		  8,
		  "requested QoS 3 in SUBSCRIBE" },
		{ { 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04 },
		  8,
		  "reserved bits set in SUBSCRIBE requested QoS" },
		{ { 0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a' },
		  7,
		  "SUBSCRIBE filter without requested QoS" },
		{ { 0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00 }, 7, "empty topic filter" },
		{ { 0x82, 0x06, 0x00, 0x01, 0x00, 0x05, 'a', 0x00 },
		  8,
		  "topic filter length exceeds packet" },
		{ { 0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 0xff, 0x00 },
		  10,
		  "invalid UTF-8 in topic filter" },
		{ { 0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 'a', '#', 0x00 },
		  9,
		  "wildcard misplaced in topic filter" },
		{ { 0x82, 0x08, 0x00, 0x01, 0x00, 0x03, '#', '/', 'a', 0x00 },
		  10,
		  "wildcard misplaced in topic filter" },
		{ { 0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '+', '/', 0x00 },
		  10,
		  "wildcard misplaced in topic filter" },
		{ { 0x82, 0x08, 0x00, 0x01, 0x00, 0x03, '+', '+', '/', 0x00 },
		  10,
		  "wildcard misplaced in topic filter" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_proto(cases[i].p, cases[i].len, cases[i].why);
}

static void test_subscribe_filter_count_bound(void **state)
{
	struct mqtt_str f[MQTT_MAX_FILTERS];
	uint8_t qos[MQTT_MAX_FILTERS] = { 0 };
	struct mqtt_packet pkt;
	struct buf b;

	for (size_t i = 0; i < MQTT_MAX_FILTERS; i++)
		f[i] = cstr("a/+/c");
	buf_init(&b, 0);
	assert_int_equal(mqtt_write_subscribe(&b, 7, f, qos, MQTT_MAX_FILTERS), EMU_OK);
	parse_ok(b.data, b.len, &pkt);
	assert_int_equal(pkt.subscribe.count, MQTT_MAX_FILTERS);
	assert_true(str_eq(pkt.subscribe.filters[MQTT_MAX_FILTERS - 1], "a/+/c"));
	buf_reset(&b);
	assert_int_equal(mqtt_write_unsubscribe(&b, 7, f, MQTT_MAX_FILTERS), EMU_OK);
	parse_ok(b.data, b.len, &pkt);
	assert_int_equal(pkt.unsubscribe.count, MQTT_MAX_FILTERS);
	assert_int_equal(mqtt_write_subscribe(&b, 7, f, qos, MQTT_MAX_FILTERS + 1), EMU_EINVAL);
	buf_free(&b);
}

/* SUBSCRIBE/UNSUBSCRIBE (first byte `first`) with packet id 1 and 33 filters "x". */
static size_t many_filters(uint8_t *raw, uint8_t first, bool with_qos)
{
	size_t per = with_qos ? 4 : 3, remaining = 2 + 33 * per, n = 0;

	raw[n++] = first;
	raw[n++] = (uint8_t)(0x80 | (remaining & 0x7f));
	raw[n++] = (uint8_t)(remaining >> 7);
	raw[n++] = 0x00;
	raw[n++] = 0x01;
	for (int i = 0; i < 33; i++) {
		raw[n++] = 0x00;
		raw[n++] = 0x01;
		raw[n++] = 'x';
		if (with_qos)
			raw[n++] = 0x00;
	}
	return n;
}

static void test_subscribe_33_filters(void **state)
{
	uint8_t raw[3 + 2 + 33 * 4];
	size_t n;

	n = many_filters(raw, 0x82, true);
	assert_int_equal(n, sizeof(raw));
	parse_proto(raw, n, "too many topic filters in SUBSCRIBE");
	n = many_filters(raw, 0xa2, false);
	parse_proto(raw, n, "too many topic filters in UNSUBSCRIBE");
}

static void test_unsubscribe(void **state)
{
	static const uint8_t p[] = { 0xa2, 0x0a, 0x00, 0x05, 0x00, 0x01, '#',
				     0x00, 0x03, 'a',  '/',  'b' };
	static const uint8_t empty[] = { 0xa2, 0x02, 0x00, 0x05 };
	static const uint8_t id0[] = { 0xa2, 0x05, 0x00, 0x00, 0x00, 0x01, '#' };
	static const uint8_t bad[] = { 0xa2, 0x06, 0x00, 0x01, 0x00, 0x02, '#', '#' };
	struct mqtt_packet pkt;

	parse_ok(p, sizeof(p), &pkt);
	assert_int_equal(pkt.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(pkt.packet_id, 5);
	assert_int_equal(pkt.unsubscribe.count, 2);
	assert_true(str_eq(pkt.unsubscribe.filters[0], "#"));
	assert_true(str_eq(pkt.unsubscribe.filters[1], "a/b"));
	parse_proto(empty, sizeof(empty), "UNSUBSCRIBE without topic filters");
	parse_proto(id0, sizeof(id0), "packet id 0 in UNSUBSCRIBE");
	parse_proto(bad, sizeof(bad), "wildcard misplaced in topic filter");
}

static void test_client_side_acks(void **state)
{
	static const uint8_t connack[] = { 0x20, 0x02, 0x01, 0x00 };
	static const uint8_t refused[] = { 0x20, 0x02, 0x00, 0x05 };
	static const uint8_t bad_rc[] = { 0x20, 0x02, 0x00, 0x06 };
	static const uint8_t bad_ack_flags[] = { 0x20, 0x02, 0x02, 0x00 };
	static const uint8_t sp_refused[] = { 0x20, 0x02, 0x01, 0x04 };
	static const uint8_t connack_len[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
	static const uint8_t suback[] = { 0x90, 0x05, 0x00, 0x09, 0x00, 0x02, 0x80 };
	static const uint8_t suback_bad[] = { 0x90, 0x03, 0x00, 0x09, 0x03 };
	static const uint8_t suback_empty[] = { 0x90, 0x02, 0x00, 0x09 };
	static const uint8_t pingresp[] = { 0xd0, 0x00 };
	static const uint8_t ping_len[] = { 0xd0, 0x01, 0x00 };
	static const uint8_t disc_len[] = { 0xe0, 0x01, 0x00 };
	struct mqtt_packet pkt;

	parse_ok(connack, sizeof(connack), &pkt);
	assert_int_equal(pkt.type, MQTT_CONNACK);
	assert_true(pkt.connack.session_present);
	assert_int_equal(pkt.connack.rc, MQTT_CONNACK_ACCEPTED);
	parse_ok(refused, sizeof(refused), &pkt);
	assert_int_equal(pkt.connack.rc, MQTT_CONNACK_NOT_AUTHORIZED);
	parse_proto(bad_rc, sizeof(bad_rc), "unknown CONNACK return code");
	parse_proto(bad_ack_flags, sizeof(bad_ack_flags),
		    "reserved acknowledge flag bits set in CONNACK");
	parse_proto(sp_refused, sizeof(sp_refused), "session present set in refusing CONNACK");
	parse_proto(connack_len, sizeof(connack_len), "CONNACK remaining length is not 2");
	parse_ok(suback, sizeof(suback), &pkt);
	assert_int_equal(pkt.packet_id, 9);
	assert_int_equal(pkt.suback.count, 3);
	assert_int_equal(pkt.suback.codes[0], 0);
	assert_int_equal(pkt.suback.codes[1], 2);
	assert_int_equal(pkt.suback.codes[2], MQTT_SUBACK_FAILURE);
	parse_proto(suback_bad, sizeof(suback_bad), "invalid SUBACK return code");
	parse_proto(suback_empty, sizeof(suback_empty), "SUBACK without return codes");
	parse_ok(pingresp, sizeof(pingresp), &pkt);
	assert_int_equal(pkt.type, MQTT_PINGRESP);
	parse_proto(ping_len, sizeof(ping_len),
		    "non-zero remaining length in PINGREQ/PINGRESP/DISCONNECT");
	parse_proto(disc_len, sizeof(disc_len),
		    "non-zero remaining length in PINGREQ/PINGRESP/DISCONNECT");
}

static void test_why_may_be_null(void **state)
{
	static const uint8_t bad[] = { 0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01 };
	struct mqtt_packet pkt;
	size_t used;

	assert_int_equal(mqtt_parse(bad, sizeof(bad), 0, &pkt, &used, NULL), EMU_EPROTO);
}

static void test_write_server_packets(void **state)
{
	static const uint8_t want[] = {
		0x20, 0x02, 0x00, 0x00,                   /* CONNACK accepted */
		0x20, 0x02, 0x00, 0x05,                   /* CONNACK not authorized */
		0x40, 0x02, 0xbe, 0xef,                   /* PUBACK */
		0x90, 0x05, 0x00, 0x02, 0x01, 0x00, 0x80, /* SUBACK */
		0xb0, 0x02, 0x00, 0x03,                   /* UNSUBACK */
		0xd0, 0x00,                               /* PINGRESP */
		0xc0, 0x00,                               /* PINGREQ */
		0xe0, 0x00,                               /* DISCONNECT */
		0x32, 0x07, 0x00, 0x01, 't', 0x00, 0x2a, 'h', 'i', /* PUBLISH QoS 1 */
		0x31, 0x05, 0x00, 0x03, 'a', '/', 'b',    /* PUBLISH QoS 0 retain */
	};
	static const uint8_t codes[] = { 1, 0, MQTT_SUBACK_FAILURE };
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mqtt_write_connack(&b, false, MQTT_CONNACK_ACCEPTED), EMU_OK);
	assert_int_equal(mqtt_write_connack(&b, false, MQTT_CONNACK_NOT_AUTHORIZED), EMU_OK);
	assert_int_equal(mqtt_write_puback(&b, 0xbeef), EMU_OK);
	assert_int_equal(mqtt_write_suback(&b, 2, codes, 3), EMU_OK);
	assert_int_equal(mqtt_write_unsuback(&b, 3), EMU_OK);
	assert_int_equal(mqtt_write_pingresp(&b), EMU_OK);
	assert_int_equal(mqtt_write_pingreq(&b), EMU_OK);
	assert_int_equal(mqtt_write_disconnect(&b), EMU_OK);
	assert_int_equal(mqtt_write_publish(&b, "t", 1, "hi", 2, 1, 42, false, false), EMU_OK);
	assert_int_equal(mqtt_write_publish(&b, "a/b", 3, NULL, 0, 0, 0, false, true), EMU_OK);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	buf_free(&b);
}

static void test_write_invalid_arguments(void **state)
{
	static const uint8_t bad_code[] = { 3 };
	static const uint8_t ok_code[] = { 0 };
	struct mqtt_str empty = { "", 0 }, hash_mid = cstr("a/#/b");
	uint8_t q3 = 3, q0 = 0;
	struct mqtt_connect c = { .level = 4 };
	char *big = calloc(1, 70000);
	struct buf b;

	memset(big, 'a', 69999);
	buf_init(&b, 0);
	assert_int_equal(mqtt_write_connack(&b, false, 6), EMU_EINVAL);
	assert_int_equal(mqtt_write_connack(&b, false, -1), EMU_EINVAL);
	assert_int_equal(mqtt_write_connack(&b, true, MQTT_CONNACK_BAD_PROTOCOL), EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, big, 65536, NULL, 0, 0, 0, false, false),
			 EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, "", 0, NULL, 0, 0, 0, false, false), EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, "a/+", 3, NULL, 0, 0, 0, false, false), EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, "\xff", 1, NULL, 0, 0, 0, false, false),
			 EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, "t", 1, NULL, 0, 1, 0, false, false), EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, "t", 1, NULL, 0, 3, 1, false, false), EMU_EINVAL);
	assert_int_equal(mqtt_write_publish(&b, "t", 1, NULL, 0, 0, 0, true, false), EMU_EINVAL);
	/* the payload is never read when the packet cannot be encoded */
	assert_int_equal(mqtt_write_publish(&b, "t", 1, NULL, MQTT_MAX_REMAINING, 0, 0, false,
					    false),
			 EMU_EINVAL);
	assert_int_equal(mqtt_write_puback(&b, 0), EMU_EINVAL);
	assert_int_equal(mqtt_write_unsuback(&b, 0), EMU_EINVAL);
	assert_int_equal(mqtt_write_suback(&b, 1, bad_code, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_suback(&b, 1, ok_code, 0), EMU_EINVAL);
	assert_int_equal(mqtt_write_suback(&b, 0, ok_code, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_suback(&b, 1, ok_code, MQTT_MAX_FILTERS + 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_subscribe(&b, 1, &empty, &q0, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_subscribe(&b, 1, &hash_mid, &q0, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_subscribe(&b, 1, &hash_mid, NULL, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_subscribe(&b, 0, &empty, &q3, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_unsubscribe(&b, 1, &empty, 1), EMU_EINVAL);
	assert_int_equal(mqtt_write_unsubscribe(&b, 1, &hash_mid, 0), EMU_EINVAL);
	c.has_password = true;
	assert_int_equal(mqtt_write_connect(&b, &c), EMU_EINVAL);
	c.has_password = false;
	c.will_qos = 1;
	assert_int_equal(mqtt_write_connect(&b, &c), EMU_EINVAL);
	c.will = true;
	c.will_qos = 3;
	assert_int_equal(mqtt_write_connect(&b, &c), EMU_EINVAL);
	c = (struct mqtt_connect){ .level = 5 };
	assert_int_equal(mqtt_write_connect(&b, &c), EMU_EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	free(big);
}

static void test_write_respects_buffer_max(void **state)
{
	char payload[300];
	struct buf b;

	memset(payload, 'p', sizeof(payload));
	buf_init(&b, 64);
	assert_int_equal(mqtt_write_pingresp(&b), EMU_OK);
	assert_int_equal(mqtt_write_publish(&b, "t", 1, payload, sizeof(payload), 0, 0, false,
					    false),
			 EMU_ETOOBIG);
	/* nothing half-written */
	assert_int_equal(b.len, 2);
	assert_int_equal(mqtt_write_publish(&b, "t", 1, payload, 40, 0, 0, false, false), EMU_OK);
	assert_int_equal(b.len, 2 + 2 + 3 + 40);
	buf_free(&b);
}

static void test_publish_large_roundtrip(void **state)
{
	/* 20000-byte payload: a three-byte remaining length */
	size_t n = 20000;
	uint8_t *payload = malloc(n);
	struct mqtt_packet pkt;
	size_t used;
	struct buf b;

	for (size_t i = 0; i < n; i++)
		payload[i] = (uint8_t)(i * 7);
	buf_init(&b, 0);
	assert_int_equal(mqtt_write_publish(&b, "devices/d1/messages/events/", 27, payload, n, 1,
					    65535, true, false),
			 EMU_OK);
	assert_int_equal(b.data[1] & 0x80, 0x80);
	assert_int_equal(b.data[2] & 0x80, 0x80);
	assert_int_equal(b.data[3] & 0x80, 0);
	assert_int_equal(mqtt_parse(b.data, b.len - 1, 0, &pkt, &used, NULL), EMU_EAGAIN);
	parse_ok(b.data, b.len, &pkt);
	assert_int_equal(pkt.publish.qos, 1);
	assert_true(pkt.publish.dup);
	assert_int_equal(pkt.packet_id, 65535);
	assert_int_equal(pkt.publish.payload_len, n);
	assert_memory_equal(pkt.publish.payload, payload, n);
	buf_free(&b);
	free(payload);
}

static void test_subscribe_unsubscribe_roundtrip(void **state)
{
	struct mqtt_str f[3] = { cstr("$dps/registrations/res/#"), cstr("+/x/+"), cstr("#") };
	uint8_t qos[3] = { 1, 2, 0 };
	struct mqtt_packet pkt;
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mqtt_write_subscribe(&b, 300, f, qos, 3), EMU_OK);
	parse_ok(b.data, b.len, &pkt);
	assert_int_equal(pkt.type, MQTT_SUBSCRIBE);
	assert_int_equal(pkt.flags, 0x2);
	assert_int_equal(pkt.packet_id, 300);
	assert_int_equal(pkt.subscribe.count, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pkt.subscribe.filters[i].len, f[i].len);
		assert_memory_equal(pkt.subscribe.filters[i].p, f[i].p, f[i].len);
		assert_int_equal(pkt.subscribe.qos[i], qos[i]);
	}
	buf_reset(&b);
	assert_int_equal(mqtt_write_unsubscribe(&b, 301, f, 2), EMU_OK);
	parse_ok(b.data, b.len, &pkt);
	assert_int_equal(pkt.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(pkt.packet_id, 301);
	assert_int_equal(pkt.unsubscribe.count, 2);
	assert_true(str_eq(pkt.unsubscribe.filters[1], "+/x/+"));
	buf_free(&b);
}

static void test_connect_31_roundtrip(void **state)
{
	struct mqtt_connect in = { .level = 3, .clean_session = true, .client_id = cstr("r1") };
	struct mqtt_packet pkt;
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(mqtt_write_connect(&b, &in), EMU_OK);
	assert_memory_equal(b.data + 2, "\x00\x06MQIsdp\x03\x02", 10);
	parse_ok(b.data, b.len, &pkt);
	assert_true(pkt.connect.protocol_ok);
	assert_int_equal(pkt.connect.level, 3);
	assert_true(str_eq(pkt.connect.client_id, "r1"));
	buf_free(&b);
}

static void test_topic_matches(void **state)
{
	static const struct {
		const char *filter, *topic;
		int want;
	} cases[] = {
		{ "a/b", "a/b", 1 },
		{ "a/b", "a/c", 0 },
		{ "a/b", "a/b/c", 0 },
		{ "a/b/c", "a/b", 0 },
		{ "a/+", "a/b", 1 },
		{ "a/+", "a/b/c", 0 },
		{ "a/+", "a", 0 },
		{ "a/+", "a/", 1 },
		{ "+/+", "/a", 1 },
		{ "+", "/a", 0 },
		{ "+", "a", 1 },
		{ "#", "a/b/c", 1 },
		{ "#", "/", 1 },
		{ "a/#", "a", 1 },
		{ "a/#", "a/b/c", 1 },
		{ "a/#", "ab", 0 },
		{ "a/+/c/#", "a/x/c", 1 },
		{ "a/+/c/#", "a/x/d/e", 0 },
		{ "$dps/registrations/res/#", "$dps/registrations/res/202/?$rid=1&retry-after=3",
		  1 },
		{ "#", "$dps/registrations/res/200", 0 },
		{ "+/registrations/res/#", "$dps/registrations/res/200", 0 },
		{ "$SYS/#", "$SYS/x", 1 },
		{ "A/b", "a/b", 0 },
		/* misplaced wildcards never match */
		{ "a#", "a#", 0 },
		{ "a/b+", "a/b+", 0 },
		{ "#/a", "x/a", 0 },
		/* topics with wildcards are not topic names */
		{ "a/+", "a/+", 0 },
		{ "", "a", 0 },
		{ "a", "", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = mqtt_topic_matches(cases[i].filter, strlen(cases[i].filter),
					     cases[i].topic, strlen(cases[i].topic));
		if (got != cases[i].want)
			fail_msg("filter '%s' topic '%s': got %d", cases[i].filter,
				 cases[i].topic, got);
	}
}

static void test_type_names(void **state)
{
	assert_string_equal(mqtt_type_name(MQTT_CONNECT), "CONNECT");
	assert_string_equal(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
	assert_string_equal(mqtt_type_name(0), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_connect),
		cmocka_unit_test(test_node_connect_reencodes_identically),
		cmocka_unit_test(test_split_delivery),
		cmocka_unit_test(test_two_packets_in_one_buffer),
		cmocka_unit_test(test_too_big_decided_from_header),
		cmocka_unit_test(test_packet_exactly_at_limit),
		cmocka_unit_test(test_remaining_length_limits),
		cmocka_unit_test(test_reserved_types),
		cmocka_unit_test(test_fixed_header_flags),
		cmocka_unit_test(test_connect_mqtt31),
		cmocka_unit_test(test_connect_mqtt31_password_without_username),
		cmocka_unit_test(test_connect_unknown_protocol),
		cmocka_unit_test(test_connect_full_roundtrip),
		cmocka_unit_test(test_connect_empty_client_id),
		cmocka_unit_test(test_connect_malformed),
		cmocka_unit_test(test_connect_31_roundtrip),
		cmocka_unit_test(test_publish_golden),
		cmocka_unit_test(test_publish_qos0_qos2_and_flags),
		cmocka_unit_test(test_publish_utf8_topic),
		cmocka_unit_test(test_publish_malformed),
		cmocka_unit_test(test_publish_large_roundtrip),
		cmocka_unit_test(test_acks),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_subscribe_malformed),
		cmocka_unit_test(test_subscribe_filter_count_bound),
		cmocka_unit_test(test_subscribe_33_filters),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_subscribe_unsubscribe_roundtrip),
		cmocka_unit_test(test_client_side_acks),
		cmocka_unit_test(test_why_may_be_null),
		cmocka_unit_test(test_write_server_packets),
		cmocka_unit_test(test_write_invalid_arguments),
		cmocka_unit_test(test_write_respects_buffer_max),
		cmocka_unit_test(test_topic_matches),
		cmocka_unit_test(test_type_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
