#include "mqtt_server.h"

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_codec.h"
#include "tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERVICES 4
#define MAX_SUBSCRIPTIONS 16
#define CONNECT_TIMEOUT_MS 10000
#define MAX_FILTER_LEN 512

struct subscription {
	char *filter;
	int qos;
};

struct mqtt_server {
	struct tls_server *tls;
	size_t max_packet;
	struct mqtt_service services[MAX_SERVICES];
	int nservices;
	struct mqtt_session *sessions;      /* every open connection */
	struct metrics_family *connections; /* dpsemu_mqtt_connections, or NULL */
};

struct mqtt_session {
	struct mqtt_server *srv;
	struct mqtt_session *prev, *next; /* srv->sessions */
	struct tls_conn *conn;
	const struct mqtt_service *svc; /* set once CONNECT was accepted */
	struct buf in;
	struct buf out;                 /* one packet at a time, then handed to TLS */
	int keepalive;
	uint16_t next_pid;
	uint16_t pending_puback;        /* QoS 1 publish being handled: ack it first */
	struct subscription subs[MAX_SUBSCRIPTIONS];
	int nsubs;
	char *client_id;
	void *data;
};

/* Azure closes a connection after 1.5 times the client's keep-alive, and after
 * 1767 s at most (also when the client asked for none). */
#define MAX_IDLE_MS 1767000u

static uint64_t keepalive_ms(int keepalive)
{
	uint64_t ms = (uint64_t)keepalive * 1500u;
	return keepalive == 0 || ms > MAX_IDLE_MS ? MAX_IDLE_MS : ms;
}

static int session_flush(struct mqtt_session *s)
{
	int rc = tls_conn_send(s->conn, s->out.data, s->out.len);
	buf_reset(&s->out);
	return rc;
}

static void send_pending_puback(struct mqtt_session *s)
{
	if (!s->pending_puback)
		return;
	if (mqtt_write_puback(&s->out, s->pending_puback) == EMU_OK)
		session_flush(s);
	s->pending_puback = 0;
}

static void session_fail(struct mqtt_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void session_fail(struct mqtt_session *s, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_info("mqtt", "%s (client '%s'): disconnecting: %s", tls_conn_peer_name(s->conn),
		 s->client_id ? s->client_id : "", reason);
	tls_conn_close(s->conn, reason);
}

static char *str_dup(struct mqtt_str v)
{
	char *p = malloc((size_t)v.len + 1);
	if (p) {
		memcpy(p, v.p, v.len);
		p[v.len] = '\0';
	}
	return p;
}

static void refuse_connect(struct mqtt_session *s, int rc)
{
	if (mqtt_write_connack(&s->out, false, rc) == EMU_OK)
		session_flush(s);
	tls_conn_close(s->conn, "connection refused");
}

static void handle_connect(struct mqtt_session *s, const struct mqtt_connect *c)
{
	struct mqtt_server *srv = s->srv;
	struct mqtt_connect_info ci;
	char *username = NULL;
	const struct mqtt_service *svc = NULL;
	int rc;

	if (!c->protocol_ok) {
		log_info("mqtt", "%s: refused: protocol '%.*s' level %u is not MQTT 3.1.1 or 3.1",
			 tls_conn_peer_name(s->conn), c->protocol_name.len, c->protocol_name.p,
			 c->level);
		refuse_connect(s, MQTT_CONNACK_BAD_PROTOCOL);
		return;
	}
	s->client_id = str_dup(c->client_id);
	username = c->has_username ? str_dup(c->username) : strdup("");
	if (!s->client_id || !username) {
		refuse_connect(s, MQTT_CONNACK_SERVER_UNAVAILABLE);
		goto out;
	}
	memset(&ci, 0, sizeof(ci));
	ci.client_id = s->client_id;
	ci.username = username;
	ci.password = (const unsigned char *)c->password.p;
	ci.password_len = c->password.len;
	ci.has_password = c->has_password;
	ci.level = c->level;
	ci.keepalive = c->keepalive;
	ci.clean_session = c->clean_session;
	ci.leaf = tls_conn_peer_leaf(s->conn);
	ci.chain = tls_conn_peer_chain(s->conn);
	ci.peer = tls_conn_peer_name(s->conn);
	for (int i = 0; i < srv->nservices && !svc; i++)
		if (srv->services[i].claims(srv->services[i].arg, &ci))
			svc = &srv->services[i];
	if (!svc) {
		log_info("mqtt", "%s: client '%s' refused: username '%s' is neither a DPS username "
			 "({idScope}/registrations/{registrationId}/api-version=...) nor a hub "
			 "username ({hostname}/{deviceId}/?api-version=...) of a service running here",
			 ci.peer, ci.client_id, username);
		refuse_connect(s, MQTT_CONNACK_NOT_AUTHORIZED);
		goto out;
	}
	rc = svc->on_connect(svc->arg, s, &ci);
	if (rc != MQTT_CONNACK_ACCEPTED) {
		refuse_connect(s, rc);
		goto out;
	}
	s->svc = svc;
	s->keepalive = c->keepalive;
	metrics_add(srv->connections, NULL, 1);
	if (mqtt_write_connack(&s->out, false, MQTT_CONNACK_ACCEPTED) == EMU_OK)
		session_flush(s);
out:
	free(username);
}

static void handle_subscribe(struct mqtt_session *s, const struct mqtt_packet *p)
{
	uint8_t codes[MQTT_MAX_FILTERS];
	char filter[MAX_FILTER_LEN];

	for (size_t i = 0; i < p->subscribe.count; i++) {
		struct mqtt_str f = p->subscribe.filters[i];
		int granted, j;

		if (f.len >= sizeof(filter)) {
			codes[i] = MQTT_SUBACK_FAILURE;
			continue;
		}
		memcpy(filter, f.p, f.len);
		filter[f.len] = '\0';
		granted = s->svc->on_subscribe(s->svc->arg, s, filter, p->subscribe.qos[i]);
		if (granted < 0) {
			session_fail(s, "subscription to '%s' is not allowed", filter);
			return;
		}
		codes[i] = (uint8_t)granted;
		if (granted == MQTT_SUBACK_FAILURE)
			continue;
		for (j = 0; j < s->nsubs && strcmp(s->subs[j].filter, filter) != 0; j++)
			;
		if (j == s->nsubs) {
			if (s->nsubs == MAX_SUBSCRIPTIONS || !(s->subs[j].filter = strdup(filter))) {
				codes[i] = MQTT_SUBACK_FAILURE;
				continue;
			}
			s->nsubs++;
		}
		s->subs[j].qos = granted;
	}
	if (mqtt_write_suback(&s->out, p->packet_id, codes, p->subscribe.count) == EMU_OK)
		session_flush(s);
}

static void handle_unsubscribe(struct mqtt_session *s, const struct mqtt_packet *p)
{
	for (size_t i = 0; i < p->unsubscribe.count; i++) {
		struct mqtt_str f = p->unsubscribe.filters[i];
		for (int j = 0; j < s->nsubs; j++) {
			if (strlen(s->subs[j].filter) == f.len &&
			    memcmp(s->subs[j].filter, f.p, f.len) == 0) {
				free(s->subs[j].filter);
				s->subs[j] = s->subs[--s->nsubs];
				break;
			}
		}
	}
	if (mqtt_write_unsuback(&s->out, p->packet_id) == EMU_OK)
		session_flush(s);
}

static void handle_publish(struct mqtt_session *s, const struct mqtt_packet *p)
{
	char *topic;
	int rc;

	if (p->publish.qos == 2) {
		session_fail(s, "%s", "QoS 2 is not supported (Azure IoT speaks QoS 0 and 1)");
		return;
	}
	topic = str_dup(p->publish.topic);
	if (!topic) {
		tls_conn_close(s->conn, "out of memory");
		return;
	}
	s->pending_puback = p->publish.qos == 1 ? p->packet_id : 0;
	rc = s->svc->on_publish(s->svc->arg, s, topic, p->publish.payload, p->publish.payload_len,
				p->publish.qos);
	if (rc != EMU_OK) {
		s->pending_puback = 0;
		if (!tls_conn_closing(s->conn))
			session_fail(s, "publish to '%s' refused", topic);
	} else {
		send_pending_puback(s);
	}
	free(topic);
}

/* Handles one parsed packet. */
static void handle_packet(struct mqtt_session *s, const struct mqtt_packet *p)
{
	if (!s->svc && p->type != MQTT_CONNECT) {
		session_fail(s, "%s before CONNECT", mqtt_type_name(p->type));
		return;
	}
	switch (p->type) {
	case MQTT_CONNECT:
		if (s->svc) {
			session_fail(s, "%s", "second CONNECT on one connection");
			return;
		}
		handle_connect(s, &p->connect);
		break;
	case MQTT_PUBLISH:
		handle_publish(s, p);
		break;
	case MQTT_PUBACK:
		if (s->svc->on_puback)
			s->svc->on_puback(s->svc->arg, s, p->packet_id);
		break;
	case MQTT_SUBSCRIBE:
		handle_subscribe(s, p);
		break;
	case MQTT_UNSUBSCRIBE:
		handle_unsubscribe(s, p);
		break;
	case MQTT_PINGREQ:
		if (mqtt_write_pingresp(&s->out) == EMU_OK)
			session_flush(s);
		break;
	case MQTT_DISCONNECT:
		tls_conn_close(s->conn, "client sent DISCONNECT");
		break;
	default:
		session_fail(s, "unexpected %s from a client", mqtt_type_name(p->type));
		break;
	}
}

static void on_data(void *arg, struct tls_conn *c, const unsigned char *p, size_t n)
{
	struct mqtt_session *s = tls_conn_data(c);
	(void)arg;

	if (tls_conn_closing(c))
		return;
	if (buf_append(&s->in, p, n) != EMU_OK) {
		session_fail(s, "%s", "input buffer limit exceeded");
		return;
	}
	while (s->in.len && !tls_conn_closing(c)) {
		struct mqtt_packet pkt;
		size_t used = 0;
		const char *why = NULL;
		int rc = mqtt_parse(s->in.data, s->in.len, s->srv->max_packet, &pkt, &used, &why);

		if (rc == EMU_EAGAIN)
			break;
		if (rc == EMU_ETOOBIG) {
			session_fail(s, "packet too large: %s (limit %zu bytes)",
				     why ? why : "remaining length", s->srv->max_packet);
			return;
		}
		if (rc != EMU_OK) {
			session_fail(s, "malformed packet: %s", why ? why : "unparseable");
			return;
		}
		handle_packet(s, &pkt);
		buf_consume(&s->in, used);
		if (s->svc)
			tls_conn_set_deadline(c, clock_mono_ms() + keepalive_ms(s->keepalive));
	}
}

static int on_open(void *arg, struct tls_conn *c)
{
	struct mqtt_server *srv = arg;
	struct mqtt_session *s = calloc(1, sizeof(*s));

	if (!s)
		return EMU_ENOMEM;
	s->srv = srv;
	s->conn = c;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	/* Room for one whole packet plus the start of the next. */
	buf_init(&s->in, srv->max_packet + 65536);
	buf_init(&s->out, 0);
	tls_conn_set_data(c, s);
	tls_conn_set_deadline(c, clock_mono_ms() + CONNECT_TIMEOUT_MS);
	return EMU_OK;
}

static void on_close(void *arg, struct tls_conn *c)
{
	struct mqtt_session *s = tls_conn_data(c);
	struct mqtt_server *srv = arg;

	if (!s)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->svc)
		metrics_add(srv->connections, NULL, -1);
	if (s->svc && s->svc->on_close)
		s->svc->on_close(s->svc->arg, s);
	for (int i = 0; i < s->nsubs; i++)
		free(s->subs[i].filter);
	buf_free(&s->in);
	buf_free(&s->out);
	free(s->client_id);
	free(s);
	tls_conn_set_data(c, NULL);
}

int mqtt_server_new(struct loop *lp, SSL_CTX *ctx, const char *bind_addr, int port,
		    size_t max_packet, struct metrics *metrics, struct mqtt_server **out)
{
	static const struct tls_handlers handlers = { on_open, on_data, on_close };
	struct mqtt_server *srv = calloc(1, sizeof(*srv));
	int rc;

	*out = NULL;
	if (!srv)
		return EMU_ENOMEM;
	srv->max_packet = max_packet;
	srv->connections = metrics_gauge(metrics, "dpsemu_mqtt_connections",
					 "Open MQTT sessions (accepted CONNECT), DPS and hub.",
					 NULL);
	rc = tls_server_new(lp, ctx, bind_addr, port, "mqtt", &handlers, srv, &srv->tls);
	if (rc != EMU_OK) {
		free(srv);
		return rc;
	}
	*out = srv;
	return EMU_OK;
}

int mqtt_server_add_service(struct mqtt_server *srv, const struct mqtt_service *svc)
{
	if (srv->nservices == MAX_SERVICES)
		return EMU_ENOMEM;
	srv->services[srv->nservices++] = *svc;
	return EMU_OK;
}

void mqtt_server_free(struct mqtt_server *srv)
{
	if (!srv)
		return;
	tls_server_free(srv->tls);
	free(srv);
}

void mqtt_server_close_all(struct mqtt_server *srv, const char *reason)
{
	int n = 0;

	/* Closing is deferred (on_close runs from the loop), so the list holds still. */
	for (struct mqtt_session *s = srv->sessions; s; s = s->next)
		if (!tls_conn_closing(s->conn)) {
			tls_conn_close(s->conn, reason);
			n++;
		}
	if (n)
		log_info("mqtt", "closing %d connection%s: %s", n, n == 1 ? "" : "s", reason);
}

int mqtt_server_port(const struct mqtt_server *srv)
{
	return tls_server_port(srv->tls);
}

int mqtt_session_publish(struct mqtt_session *s, const char *topic, const void *payload,
			 size_t len, int qos, uint16_t *packet_id)
{
	size_t tlen = strlen(topic);
	int granted = -1, rc;
	uint16_t pid = 0;

	if (tls_conn_closing(s->conn))
		return EMU_ECLOSED;
	for (int i = 0; i < s->nsubs; i++)
		if (mqtt_topic_matches(s->subs[i].filter, strlen(s->subs[i].filter), topic, tlen) &&
		    s->subs[i].qos > granted)
			granted = s->subs[i].qos;
	if (granted < 0)
		return EMU_ENOTFOUND;
	if (qos > granted)
		qos = granted;
	send_pending_puback(s);
	if (qos > 0) {
		if (++s->next_pid == 0)
			s->next_pid = 1;
		pid = s->next_pid;
	}
	rc = mqtt_write_publish(&s->out, topic, tlen, payload, len, qos, pid, false, false);
	if (rc != EMU_OK)
		return rc;
	if (packet_id)
		*packet_id = pid;
	return session_flush(s);
}

void mqtt_session_close(struct mqtt_session *s, const char *reason)
{
	tls_conn_close(s->conn, reason);
}

void mqtt_session_set_data(struct mqtt_session *s, void *data)
{
	s->data = data;
}

void *mqtt_session_data(const struct mqtt_session *s)
{
	return s->data;
}

const char *mqtt_session_client_id(const struct mqtt_session *s)
{
	return s->client_id ? s->client_id : "";
}

const char *mqtt_session_peer(const struct mqtt_session *s)
{
	return tls_conn_peer_name(s->conn);
}

X509 *mqtt_session_peer_leaf(const struct mqtt_session *s)
{
	return tls_conn_peer_leaf(s->conn);
}

STACK_OF(X509) *mqtt_session_peer_chain(const struct mqtt_session *s)
{
	return tls_conn_peer_chain(s->conn);
}
