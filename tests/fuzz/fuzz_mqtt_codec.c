/* Fuzz target for common/mqtt_codec: parses consecutive packets, checks the
 * parser's promises, re-encodes every packet that has an encoder and parses the
 * result again, and runs the topic matcher on the raw input. Any broken
 * promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "mqtt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

/* Size of the fixed header of a complete packet at p. */
static size_t header_len(const uint8_t *p)
{
	size_t i = 1;

	while (p[i] & 0x80)
		i++;
	return i + 1;
}

static bool str_same(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void check_connect_fields(const struct mqtt_connect *a, const struct mqtt_connect *b)
{
	require(a->level == b->level && a->protocol_ok == b->protocol_ok);
	require(str_same(a->protocol_name, b->protocol_name));
	require(a->clean_session == b->clean_session && a->will == b->will);
	require(a->will_qos == b->will_qos && a->will_retain == b->will_retain);
	require(a->has_username == b->has_username && a->has_password == b->has_password);
	require(a->keepalive == b->keepalive);
	require(str_same(a->client_id, b->client_id));
	require(str_same(a->will_topic, b->will_topic));
	require(str_same(a->will_message, b->will_message));
	require(str_same(a->username, b->username));
	require(str_same(a->password, b->password));
}

/* Encodes pkt again; returns false for types without an encoder. */
static bool reencode(const struct mqtt_packet *pkt, struct buf *b)
{
	const struct mqtt_publish *pub = &pkt->publish;
	int rc;

	switch (pkt->type) {
	case MQTT_CONNECT:
		if (!pkt->connect.protocol_ok)
			return false;
		rc = mqtt_write_connect(b, &pkt->connect);
		break;
	case MQTT_CONNACK:
		rc = mqtt_write_connack(b, pkt->connack.session_present, pkt->connack.rc);
		break;
	case MQTT_PUBLISH:
		rc = mqtt_write_publish(b, pub->topic.p, pub->topic.len, pub->payload,
					pub->payload_len, pub->qos, pkt->packet_id, pub->dup,
					pub->retain);
		break;
	case MQTT_PUBACK:
		rc = mqtt_write_puback(b, pkt->packet_id);
		break;
	case MQTT_SUBSCRIBE:
		rc = mqtt_write_subscribe(b, pkt->packet_id, pkt->subscribe.filters,
					  pkt->subscribe.qos, pkt->subscribe.count);
		break;
	case MQTT_SUBACK:
		rc = mqtt_write_suback(b, pkt->packet_id, pkt->suback.codes, pkt->suback.count);
		break;
	case MQTT_UNSUBSCRIBE:
		rc = mqtt_write_unsubscribe(b, pkt->packet_id, pkt->unsubscribe.filters,
					    pkt->unsubscribe.count);
		break;
	case MQTT_UNSUBACK:
		rc = mqtt_write_unsuback(b, pkt->packet_id);
		break;
	case MQTT_PINGREQ:
		rc = mqtt_write_pingreq(b);
		break;
	case MQTT_PINGRESP:
		rc = mqtt_write_pingresp(b);
		break;
	case MQTT_DISCONNECT:
		rc = mqtt_write_disconnect(b);
		break;
	default:
		return false;
	}
	/* whatever the parser accepts, the encoders can write */
	require(rc == EMU_OK);
	return true;
}

static void roundtrip(const uint8_t *orig, size_t used, const struct mqtt_packet *pkt)
{
	struct mqtt_packet again;
	struct buf b;
	size_t used2, h1, h2;

	buf_init(&b, 0);
	if (!reencode(pkt, &b))
		goto out;
	require(mqtt_parse(b.data, b.len, 0, &again, &used2, NULL) == EMU_OK);
	require(used2 == b.len);
	require(again.type == pkt->type && again.packet_id == pkt->packet_id);
	if (pkt->type == MQTT_CONNECT) {
		check_connect_fields(&pkt->connect, &again.connect);
		/* a 3.1 CONNECT may carry a reserved flag bit the encoder drops */
		if (pkt->connect.level == 3)
			goto out;
	}
	/* same first byte and body; only a non-minimal length encoding may differ */
	h1 = header_len(orig);
	h2 = header_len(b.data);
	require(orig[0] == b.data[0]);
	require(used - h1 == b.len - h2);
	require(memcmp(orig + h1, b.data + h2, used - h1) == 0);
out:
	buf_free(&b);
}

static void check_packet(const uint8_t *p, size_t n, size_t used, const struct mqtt_packet *pkt)
{
	struct mqtt_packet tmp;
	size_t u;

	require(used >= 2 && used <= n);
	/* the size limit counts the whole packet */
	require(mqtt_parse(p, n, used, &tmp, &u, NULL) == EMU_OK && u == used);
	require(mqtt_parse(p, n, used - 1, &tmp, &u, NULL) == EMU_ETOOBIG && u == 0);
	/* every prefix of a complete packet is merely incomplete */
	require(mqtt_parse(p, used - 1, 0, &tmp, &u, NULL) == EMU_EAGAIN && u == 0);
	if (pkt->type == MQTT_PUBLISH) {
		require(pkt->publish.topic.len > 0);
		require(mqtt_topic_matches(pkt->publish.topic.p, pkt->publish.topic.len,
					   pkt->publish.topic.p, pkt->publish.topic.len));
		if (pkt->publish.topic.p[0] != '$')
			require(mqtt_topic_matches("#", 1, pkt->publish.topic.p,
						   pkt->publish.topic.len));
	}
	if (pkt->type == MQTT_SUBSCRIBE)
		require(pkt->subscribe.count >= 1 && pkt->subscribe.count <= MQTT_MAX_FILTERS);
	roundtrip(p, used, pkt);
}

/* First byte: filter length; then the filter, then the topic. */
static void fuzz_matcher(const uint8_t *data, size_t size)
{
	size_t flen, tlen;
	const char *f, *t;
	int m;

	if (size < 1 || (size_t)data[0] + 1 > size)
		return;
	flen = data[0];
	f = (const char *)data + 1;
	t = f + flen;
	tlen = size - 1 - flen;
	m = mqtt_topic_matches(f, flen, t, tlen);
	require(m == 0 || m == 1);
	/* without wildcards a filter matches exactly its own text */
	if (flen && !memchr(f, '+', flen) && !memchr(f, '#', flen) && tlen &&
	    !memchr(t, '+', tlen) && !memchr(t, '#', tlen))
		require(m == (flen == tlen && memcmp(f, t, flen) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct mqtt_packet pkt;
		size_t used = 1;
		const char *why = NULL;
		int rc = mqtt_parse(data + off, size - off, 0, &pkt, &used, &why);

		if (rc != EMU_OK) {
			require(used == 0);
			require(rc == EMU_EAGAIN || rc == EMU_EPROTO);
			require((rc == EMU_EAGAIN) == (why == NULL));
			break;
		}
		check_packet(data + off, size - off, used, &pkt);
		off += used;
	}
	fuzz_matcher(data, size);
	return 0;
}
