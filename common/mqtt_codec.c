#include "mqtt_codec.h"

#include "textenc.h"

#include "err.h"

#include <string.h>

/* A bounds-checked cursor over one packet's variable header and payload. */
struct reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	const char *why; /* reason of the first failure */
};

static int rd_fail(struct reader *r, const char *why)
{
	if (!r->why)
		r->why = why;
	return EMU_EPROTO;
}

static size_t rd_left(const struct reader *r)
{
	return r->len - r->pos;
}

static int rd_u8(struct reader *r, uint8_t *v, const char *why)
{
	if (rd_left(r) < 1)
		return rd_fail(r, why);
	*v = r->p[r->pos++];
	return EMU_OK;
}

static int rd_u16(struct reader *r, uint16_t *v, const char *why)
{
	if (rd_left(r) < 2)
		return rd_fail(r, why);
	*v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
	r->pos += 2;
	return EMU_OK;
}

/* A length-prefixed field; why is used both for a missing prefix and for a length
 * running past the packet. */
static int rd_str(struct reader *r, struct mqtt_str *s, const char *why)
{
	uint16_t n;

	if (rd_u16(r, &n, why))
		return EMU_EPROTO;
	if (rd_left(r) < n)
		return rd_fail(r, why);
	s->p = (const char *)r->p + r->pos;
	s->len = n;
	r->pos += n;
	return EMU_OK;
}

static bool has_wildcard(const char *s, size_t n)
{
	return memchr(s, '+', n) || memchr(s, '#', n);
}

/* Wildcards in a topic filter: '+' fills a whole level, '#' fills the last one. */
static bool filter_wildcards_ok(const char *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool starts = i == 0 || f[i - 1] == '/';
		bool ends = i + 1 == n || f[i + 1] == '/';

		if (f[i] == '+' && !(starts && ends))
			return false;
		if (f[i] == '#' && !(starts && i + 1 == n))
			return false;
	}
	return true;
}

/* The low nibble each type must carry (PUBLISH is checked separately). */
static int fixed_flags(int type)
{
	switch (type) {
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return 0x2;
	default:
		return 0x0;
	}
}

static const char *flags_reason(int type)
{
	switch (type) {
	case MQTT_CONNECT: return "reserved flag bits set in CONNECT";
	case MQTT_CONNACK: return "reserved flag bits set in CONNACK";
	case MQTT_PUBACK: return "reserved flag bits set in PUBACK";
	case MQTT_PUBREC: return "reserved flag bits set in PUBREC";
	case MQTT_PUBREL: return "PUBREL flags are not 0x2";
	case MQTT_PUBCOMP: return "reserved flag bits set in PUBCOMP";
	case MQTT_SUBSCRIBE: return "reserved flag bits set in SUBSCRIBE (must be 0x2)";
	case MQTT_SUBACK: return "reserved flag bits set in SUBACK";
	case MQTT_UNSUBSCRIBE: return "reserved flag bits set in UNSUBSCRIBE (must be 0x2)";
	case MQTT_UNSUBACK: return "reserved flag bits set in UNSUBACK";
	case MQTT_PINGREQ: return "reserved flag bits set in PINGREQ";
	case MQTT_PINGRESP: return "reserved flag bits set in PINGRESP";
	case MQTT_DISCONNECT: return "reserved flag bits set in DISCONNECT";
	}
	return "reserved flag bits set";
}

const char *mqtt_type_name(int type)
{
	switch (type) {
	case MQTT_CONNECT: return "CONNECT";
	case MQTT_CONNACK: return "CONNACK";
	case MQTT_PUBLISH: return "PUBLISH";
	case MQTT_PUBACK: return "PUBACK";
	case MQTT_PUBREC: return "PUBREC";
	case MQTT_PUBREL: return "PUBREL";
	case MQTT_PUBCOMP: return "PUBCOMP";
	case MQTT_SUBSCRIBE: return "SUBSCRIBE";
	case MQTT_SUBACK: return "SUBACK";
	case MQTT_UNSUBSCRIBE: return "UNSUBSCRIBE";
	case MQTT_UNSUBACK: return "UNSUBACK";
	case MQTT_PINGREQ: return "PINGREQ";
	case MQTT_PINGRESP: return "PINGRESP";
	case MQTT_DISCONNECT: return "DISCONNECT";
	}
	return "UNKNOWN";
}

static bool str_is(const struct mqtt_str *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && memcmp(s->p, lit, n) == 0;
}

static int parse_connect(struct reader *r, struct mqtt_connect *c)
{
	uint8_t flags;
	bool strict;

	if (rd_str(r, &c->protocol_name, "protocol name length exceeds packet"))
		return EMU_EPROTO;
	if (rd_u8(r, &c->level, "CONNECT too short for protocol level"))
		return EMU_EPROTO;
	c->protocol_ok = (str_is(&c->protocol_name, "MQTT") && c->level == 4) ||
			 (str_is(&c->protocol_name, "MQIsdp") && c->level == 3);
	if (!c->protocol_ok) {
		/* Another protocol's layout follows: skip it, the server refuses. */
		r->pos = r->len;
		return EMU_OK;
	}
	/* 3.1 clients only need to get a CONNACK back: check its flags loosely. */
	strict = c->level == 4;
	if (rd_u8(r, &flags, "CONNECT too short for connect flags"))
		return EMU_EPROTO;
	if (strict && (flags & 0x01))
		return rd_fail(r, "reserved connect flag bit set");
	c->clean_session = flags & 0x02;
	c->will = flags & 0x04;
	c->will_qos = (flags >> 3) & 0x03;
	c->will_retain = flags & 0x20;
	c->has_password = flags & 0x40;
	c->has_username = flags & 0x80;
	if (c->will_qos == 3)
		return rd_fail(r, "will QoS 3 in CONNECT");
	if (!c->will && (c->will_qos || c->will_retain))
		return rd_fail(r, "will QoS or retain set without will flag");
	if (strict && c->has_password && !c->has_username)
		return rd_fail(r, "password flag without username flag");
	if (rd_u16(r, &c->keepalive, "CONNECT too short for keepalive"))
		return EMU_EPROTO;
	if (rd_str(r, &c->client_id, "client id length exceeds packet"))
		return EMU_EPROTO;
	if (!utf8_valid(c->client_id.p, c->client_id.len))
		return rd_fail(r, "invalid UTF-8 in client id");
	if (c->will) {
		if (rd_str(r, &c->will_topic, "will topic length exceeds packet"))
			return EMU_EPROTO;
		if (c->will_topic.len == 0)
			return rd_fail(r, "empty will topic");
		if (!utf8_valid(c->will_topic.p, c->will_topic.len))
			return rd_fail(r, "invalid UTF-8 in will topic");
		if (has_wildcard(c->will_topic.p, c->will_topic.len))
			return rd_fail(r, "will topic contains wildcard");
		if (rd_str(r, &c->will_message, "will message length exceeds packet"))
			return EMU_EPROTO;
	}
	if (c->has_username) {
		if (rd_str(r, &c->username, "username length exceeds packet"))
			return EMU_EPROTO;
		if (!utf8_valid(c->username.p, c->username.len))
			return rd_fail(r, "invalid UTF-8 in username");
	}
	if (c->has_password && rd_str(r, &c->password, "password length exceeds packet"))
		return EMU_EPROTO;
	return EMU_OK;
}

static int parse_connack(struct reader *r, struct mqtt_connack *ca)
{
	uint8_t ackflags;

	if (r->len != 2)
		return rd_fail(r, "CONNACK remaining length is not 2");
	rd_u8(r, &ackflags, "");
	rd_u8(r, &ca->rc, "");
	if (ackflags & 0xfe)
		return rd_fail(r, "reserved acknowledge flag bits set in CONNACK");
	ca->session_present = ackflags & 0x01;
	if (ca->rc > MQTT_CONNACK_NOT_AUTHORIZED)
		return rd_fail(r, "unknown CONNACK return code");
	if (ca->rc != MQTT_CONNACK_ACCEPTED && ca->session_present)
		return rd_fail(r, "session present set in refusing CONNACK");
	return EMU_OK;
}

static int parse_publish(struct reader *r, uint8_t flags, struct mqtt_packet *pkt)
{
	struct mqtt_publish *p = &pkt->publish;

	p->dup = flags & 0x08;
	p->qos = (flags >> 1) & 0x03;
	p->retain = flags & 0x01;
	if (p->qos == 3)
		return rd_fail(r, "QoS 3 in PUBLISH");
	if (p->dup && p->qos == 0)
		return rd_fail(r, "DUP set in QoS 0 PUBLISH");
	if (rd_str(r, &p->topic, "topic length exceeds packet"))
		return EMU_EPROTO;
	if (p->topic.len == 0)
		return rd_fail(r, "empty topic in PUBLISH");
	if (!utf8_valid(p->topic.p, p->topic.len))
		return rd_fail(r, "invalid UTF-8 in topic");
	if (has_wildcard(p->topic.p, p->topic.len))
		return rd_fail(r, "topic contains wildcard");
	if (p->qos > 0) {
		if (rd_u16(r, &pkt->packet_id, "PUBLISH too short for packet id"))
			return EMU_EPROTO;
		if (pkt->packet_id == 0)
			return rd_fail(r, "packet id 0 in PUBLISH");
	}
	p->payload = r->p + r->pos;
	p->payload_len = rd_left(r);
	r->pos = r->len;
	return EMU_OK;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id and nothing else. */
static int parse_ack(struct reader *r, struct mqtt_packet *pkt)
{
	if (r->len != 2)
		return rd_fail(r, "acknowledgement remaining length is not 2");
	rd_u16(r, &pkt->packet_id, "");
	if (pkt->packet_id == 0)
		return rd_fail(r, "packet id 0 in acknowledgement");
	return EMU_OK;
}

static int parse_filter(struct reader *r, struct mqtt_str *f)
{
	if (rd_str(r, f, "topic filter length exceeds packet"))
		return EMU_EPROTO;
	if (f->len == 0)
		return rd_fail(r, "empty topic filter");
	if (!utf8_valid(f->p, f->len))
		return rd_fail(r, "invalid UTF-8 in topic filter");
	if (!filter_wildcards_ok(f->p, f->len))
		return rd_fail(r, "wildcard misplaced in topic filter");
	return EMU_OK;
}

static int parse_subscribe(struct reader *r, struct mqtt_packet *pkt)
{
	struct mqtt_subscribe *s = &pkt->subscribe;

	if (rd_u16(r, &pkt->packet_id, "SUBSCRIBE too short for packet id"))
		return EMU_EPROTO;
	if (pkt->packet_id == 0)
		return rd_fail(r, "packet id 0 in SUBSCRIBE");
	if (rd_left(r) == 0)
		return rd_fail(r, "SUBSCRIBE without topic filters");
	while (rd_left(r) > 0) {
		uint8_t qos;

		if (s->count == MQTT_MAX_FILTERS)
			return rd_fail(r, "too many topic filters in SUBSCRIBE");
		if (parse_filter(r, &s->filters[s->count]))
			return EMU_EPROTO;
		if (rd_u8(r, &qos, "SUBSCRIBE filter without requested QoS"))
			return EMU_EPROTO;
		if (qos & 0xfc)
			return rd_fail(r, "reserved bits set in SUBSCRIBE requested QoS");
		if (qos == 3)
			return rd_fail(r, "requested QoS 3 in SUBSCRIBE");
		s->qos[s->count++] = qos;
	}
	return EMU_OK;
}

static int parse_unsubscribe(struct reader *r, struct mqtt_packet *pkt)
{
	struct mqtt_unsubscribe *u = &pkt->unsubscribe;

	if (rd_u16(r, &pkt->packet_id, "UNSUBSCRIBE too short for packet id"))
		return EMU_EPROTO;
	if (pkt->packet_id == 0)
		return rd_fail(r, "packet id 0 in UNSUBSCRIBE");
	if (rd_left(r) == 0)
		return rd_fail(r, "UNSUBSCRIBE without topic filters");
	while (rd_left(r) > 0) {
		if (u->count == MQTT_MAX_FILTERS)
			return rd_fail(r, "too many topic filters in UNSUBSCRIBE");
		if (parse_filter(r, &u->filters[u->count]))
			return EMU_EPROTO;
		u->count++;
	}
	return EMU_OK;
}

static int parse_suback(struct reader *r, struct mqtt_packet *pkt)
{
	struct mqtt_suback *s = &pkt->suback;

	if (rd_u16(r, &pkt->packet_id, "SUBACK too short for packet id"))
		return EMU_EPROTO;
	if (pkt->packet_id == 0)
		return rd_fail(r, "packet id 0 in SUBACK");
	if (rd_left(r) == 0)
		return rd_fail(r, "SUBACK without return codes");
	while (rd_left(r) > 0) {
		uint8_t code;

		if (s->count == MQTT_MAX_FILTERS)
			return rd_fail(r, "too many return codes in SUBACK");
		rd_u8(r, &code, "");
		if (code > 2 && code != MQTT_SUBACK_FAILURE)
			return rd_fail(r, "invalid SUBACK return code");
		s->codes[s->count++] = code;
	}
	return EMU_OK;
}

static int parse_body(struct reader *r, uint8_t type, uint8_t flags, struct mqtt_packet *pkt)
{
	switch (type) {
	case MQTT_CONNECT:
		return parse_connect(r, &pkt->connect);
	case MQTT_CONNACK:
		return parse_connack(r, &pkt->connack);
	case MQTT_PUBLISH:
		return parse_publish(r, flags, pkt);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		return parse_ack(r, pkt);
	case MQTT_SUBSCRIBE:
		return parse_subscribe(r, pkt);
	case MQTT_UNSUBSCRIBE:
		return parse_unsubscribe(r, pkt);
	case MQTT_SUBACK:
		return parse_suback(r, pkt);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
	case MQTT_DISCONNECT:
		if (r->len != 0)
			return rd_fail(r,
				       "non-zero remaining length in PINGREQ/PINGRESP/DISCONNECT");
		return EMU_OK;
	}
	return rd_fail(r, "reserved packet type");
}

int mqtt_parse(const uint8_t *buf, size_t len, size_t max_packet, struct mqtt_packet *out,
	       size_t *consumed, const char **why)
{
	struct reader r = { 0 };
	uint8_t type, flags;
	size_t remaining = 0, hdr, i;
	int rc;

	memset(out, 0, sizeof(*out));
	*consumed = 0;
	if (why)
		*why = NULL;
	if (len < 1)
		return EMU_EAGAIN;
	type = buf[0] >> 4;
	flags = buf[0] & 0x0f;
	/* Decide what the first byte alone can tell, so garbage is refused early. */
	if (type == 0 || type == 15) {
		r.why = "reserved packet type";
		rc = EMU_EPROTO;
		goto out;
	}
	if (type != MQTT_PUBLISH && flags != fixed_flags(type)) {
		r.why = flags_reason(type);
		rc = EMU_EPROTO;
		goto out;
	}
	for (i = 1;; i++) {
		if (i > 4) {
			r.why = "remaining length uses more than 4 bytes";
			rc = EMU_EPROTO;
			goto out;
		}
		if (i >= len) {
			rc = EMU_EAGAIN;
			goto out;
		}
		remaining |= (size_t)(buf[i] & 0x7f) << (7 * (i - 1));
		if (!(buf[i] & 0x80))
			break;
	}
	hdr = i + 1;
	if (max_packet && (remaining > max_packet || hdr + remaining > max_packet)) {
		r.why = "packet exceeds maximum size";
		rc = EMU_ETOOBIG;
		goto out;
	}
	if (len - hdr < remaining) {
		rc = EMU_EAGAIN;
		goto out;
	}
	r.p = buf + hdr;
	r.len = remaining;
	out->type = type;
	out->flags = flags;
	rc = parse_body(&r, type, flags, out);
	if (rc == EMU_OK && rd_left(&r) != 0)
		rc = rd_fail(&r, "trailing bytes after packet fields");
	if (rc == EMU_OK)
		*consumed = hdr + remaining;
out:
	if (rc != EMU_OK) {
		memset(out, 0, sizeof(*out));
		if (why && rc != EMU_EAGAIN)
			*why = r.why;
	}
	return rc;
}

int mqtt_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen)
{
	size_t fi = 0, ti = 0;
	bool tdone = false;

	if (flen == 0 || tlen == 0 || !filter_wildcards_ok(filter, flen) ||
	    has_wildcard(topic, tlen))
		return 0;
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return 0;
	for (;;) {
		const char *fs = memchr(filter + fi, '/', flen - fi);
		size_t fe = fs ? (size_t)(fs - filter) : flen;
		const char *ts;
		size_t te;

		/* '#' also matches the parent level: "a/#" matches "a". */
		if (fe - fi == 1 && filter[fi] == '#')
			return 1;
		if (tdone)
			return 0;
		ts = memchr(topic + ti, '/', tlen - ti);
		te = ts ? (size_t)(ts - topic) : tlen;
		if (!(fe - fi == 1 && filter[fi] == '+') &&
		    (fe - fi != te - ti || memcmp(filter + fi, topic + ti, fe - fi) != 0))
			return 0;
		if (fe == flen)
			return te == tlen;
		fi = fe + 1;
		if (te == tlen)
			tdone = true;
		else
			ti = te + 1;
	}
}

/* ---- encoders ---- */

static void rollback(struct buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

static int put_u8(struct buf *b, uint8_t v)
{
	return buf_append(b, &v, 1);
}

static int put_u16(struct buf *b, uint16_t v)
{
	uint8_t be[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	return buf_append(b, be, 2);
}

static int put_str(struct buf *b, const void *p, size_t n)
{
	int rc = put_u16(b, (uint16_t)n);
	if (rc == EMU_OK && n)
		rc = buf_append(b, p, n);
	return rc;
}

static int put_header(struct buf *b, uint8_t first, size_t remaining)
{
	uint8_t hdr[5];
	size_t n = 0;
	int rc;

	if (remaining > MQTT_MAX_REMAINING)
		return EMU_EINVAL;
	hdr[n++] = first;
	do {
		uint8_t byte = remaining & 0x7f;
		remaining >>= 7;
		if (remaining)
			byte |= 0x80;
		hdr[n++] = byte;
	} while (remaining);
	rc = buf_append(b, hdr, n);
	return rc;
}

/* Packet id only: PUBACK, UNSUBACK. */
static int write_ack(struct buf *b, uint8_t first, uint16_t packet_id)
{
	size_t start = b->len;
	int rc;

	if (packet_id == 0)
		return EMU_EINVAL;
	rc = put_header(b, first, 2);
	if (rc == EMU_OK)
		rc = put_u16(b, packet_id);
	if (rc)
		rollback(b, start);
	return rc;
}

static int write_empty(struct buf *b, uint8_t first)
{
	uint8_t p[2] = { first, 0 };
	return buf_append(b, p, 2);
}

int mqtt_write_connack(struct buf *b, bool session_present, int rc)
{
	uint8_t p[4];

	if (rc < MQTT_CONNACK_ACCEPTED || rc > MQTT_CONNACK_NOT_AUTHORIZED)
		return EMU_EINVAL;
	if (session_present && rc != MQTT_CONNACK_ACCEPTED)
		return EMU_EINVAL;
	p[0] = MQTT_CONNACK << 4;
	p[1] = 2;
	p[2] = session_present ? 1 : 0;
	p[3] = (uint8_t)rc;
	return buf_append(b, p, sizeof(p));
}

int mqtt_write_publish(struct buf *b, const char *topic, size_t topic_len, const void *payload,
		       size_t len, int qos, uint16_t packet_id, bool dup, bool retain)
{
	size_t start = b->len, remaining;
	uint8_t first;
	int rc;

	if (topic_len == 0 || topic_len > 65535 || qos < 0 || qos > 2 ||
	    (qos > 0 && packet_id == 0) || (dup && qos == 0))
		return EMU_EINVAL;
	if (!utf8_valid(topic, topic_len) || has_wildcard(topic, topic_len))
		return EMU_EINVAL;
	remaining = 2 + topic_len + (qos > 0 ? 2 : 0);
	if (len > MQTT_MAX_REMAINING - remaining)
		return EMU_EINVAL;
	remaining += len;
	first = (uint8_t)(MQTT_PUBLISH << 4 | (dup ? 0x08 : 0) | qos << 1 | (retain ? 0x01 : 0));
	rc = put_header(b, first, remaining);
	if (rc == EMU_OK)
		rc = put_str(b, topic, topic_len);
	if (rc == EMU_OK && qos > 0)
		rc = put_u16(b, packet_id);
	if (rc == EMU_OK && len)
		rc = buf_append(b, payload, len);
	if (rc)
		rollback(b, start);
	return rc;
}

int mqtt_write_puback(struct buf *b, uint16_t packet_id)
{
	return write_ack(b, MQTT_PUBACK << 4, packet_id);
}

int mqtt_write_unsuback(struct buf *b, uint16_t packet_id)
{
	return write_ack(b, MQTT_UNSUBACK << 4, packet_id);
}

int mqtt_write_suback(struct buf *b, uint16_t packet_id, const uint8_t *codes, size_t n)
{
	size_t start = b->len;
	int rc;

	if (packet_id == 0 || n == 0 || n > MQTT_MAX_FILTERS)
		return EMU_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (codes[i] > 2 && codes[i] != MQTT_SUBACK_FAILURE)
			return EMU_EINVAL;
	}
	rc = put_header(b, MQTT_SUBACK << 4, 2 + n);
	if (rc == EMU_OK)
		rc = put_u16(b, packet_id);
	if (rc == EMU_OK)
		rc = buf_append(b, codes, n);
	if (rc)
		rollback(b, start);
	return rc;
}

int mqtt_write_pingresp(struct buf *b)
{
	return write_empty(b, MQTT_PINGRESP << 4);
}

int mqtt_write_pingreq(struct buf *b)
{
	return write_empty(b, MQTT_PINGREQ << 4);
}

int mqtt_write_disconnect(struct buf *b)
{
	return write_empty(b, MQTT_DISCONNECT << 4);
}

int mqtt_write_connect(struct buf *b, const struct mqtt_connect *c)
{
	struct mqtt_str name = c->protocol_name;
	size_t start = b->len, remaining;
	uint8_t flags = 0;
	int rc;

	if (!name.p) {
		if (c->level == 4)
			name = (struct mqtt_str){ "MQTT", 4 };
		else if (c->level == 3)
			name = (struct mqtt_str){ "MQIsdp", 6 };
		else
			return EMU_EINVAL;
	}
	if (c->will_qos > 2 || (!c->will && (c->will_qos || c->will_retain)))
		return EMU_EINVAL;
	if (c->level == 4 && c->has_password && !c->has_username)
		return EMU_EINVAL;
	flags |= c->clean_session ? 0x02 : 0;
	flags |= c->will ? (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0)) : 0;
	flags |= c->has_password ? 0x40 : 0;
	flags |= c->has_username ? 0x80 : 0;
	/* Every field is at most 2 + 65535 bytes: no overflow possible here. */
	remaining = 2 + (size_t)name.len + 1 + 1 + 2 + 2 + c->client_id.len;
	if (c->will)
		remaining += 4 + (size_t)c->will_topic.len + c->will_message.len;
	if (c->has_username)
		remaining += 2 + (size_t)c->username.len;
	if (c->has_password)
		remaining += 2 + (size_t)c->password.len;
	rc = put_header(b, MQTT_CONNECT << 4, remaining);
	if (rc == EMU_OK)
		rc = put_str(b, name.p, name.len);
	if (rc == EMU_OK)
		rc = put_u8(b, c->level);
	if (rc == EMU_OK)
		rc = put_u8(b, flags);
	if (rc == EMU_OK)
		rc = put_u16(b, c->keepalive);
	if (rc == EMU_OK)
		rc = put_str(b, c->client_id.p, c->client_id.len);
	if (rc == EMU_OK && c->will) {
		rc = put_str(b, c->will_topic.p, c->will_topic.len);
		if (rc == EMU_OK)
			rc = put_str(b, c->will_message.p, c->will_message.len);
	}
	if (rc == EMU_OK && c->has_username)
		rc = put_str(b, c->username.p, c->username.len);
	if (rc == EMU_OK && c->has_password)
		rc = put_str(b, c->password.p, c->password.len);
	if (rc)
		rollback(b, start);
	return rc;
}

static int write_filters(struct buf *b, uint8_t first, uint16_t packet_id,
			 const struct mqtt_str *filters, const uint8_t *qos, size_t n)
{
	size_t start = b->len, remaining = 2;
	int rc;

	if (packet_id == 0 || n == 0 || n > MQTT_MAX_FILTERS)
		return EMU_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (filters[i].len == 0 || !filter_wildcards_ok(filters[i].p, filters[i].len))
			return EMU_EINVAL;
		if (qos && qos[i] > 2)
			return EMU_EINVAL;
		remaining += 2 + (size_t)filters[i].len + (qos ? 1 : 0);
	}
	rc = put_header(b, first, remaining);
	if (rc == EMU_OK)
		rc = put_u16(b, packet_id);
	for (size_t i = 0; i < n && rc == EMU_OK; i++) {
		rc = put_str(b, filters[i].p, filters[i].len);
		if (rc == EMU_OK && qos)
			rc = put_u8(b, qos[i]);
	}
	if (rc)
		rollback(b, start);
	return rc;
}

int mqtt_write_subscribe(struct buf *b, uint16_t packet_id, const struct mqtt_str *filters,
			 const uint8_t *qos, size_t n)
{
	if (!qos)
		return EMU_EINVAL;
	return write_filters(b, MQTT_SUBSCRIBE << 4 | 0x2, packet_id, filters, qos, n);
}

int mqtt_write_unsubscribe(struct buf *b, uint16_t packet_id, const struct mqtt_str *filters,
			   size_t n)
{
	return write_filters(b, MQTT_UNSUBSCRIBE << 4 | 0x2, packet_id, filters, NULL, n);
}
