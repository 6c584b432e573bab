#include "hub-sim/hub_wire.h"

#include "buf.h"
#include "err.h"
#include "textenc.h"
#include "query.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DPS_MARK      "/registrations/"
#define DPS_API_MARK  "/api-version="
#define LEGACY_QUERY  "api-version="
#define TWIN_GET      "$iothub/twin/GET/?"
#define TWIN_REPORTED "$iothub/twin/PATCH/properties/reported/?"
#define METHOD_RES    "$iothub/methods/res/"
#define SUB_TWIN_RES  "$iothub/twin/res/#"
#define SUB_DESIRED   "$iothub/twin/PATCH/properties/desired/#"
#define SUB_METHODS   "$iothub/methods/POST/#"
#define EVENTS        "messages/events"
#define DEVICEBOUND   "messages/devicebound/#"
/* How much of a topic a log reason quotes. */
#define SNIP 120

static bool starts_with(const char *s, const char *prefix)
{
	/* a loop rather than strncmp: stops at the end of s whatever the prefix */
	while (*prefix) {
		if (*s++ != *prefix++)
			return false;
	}
	return true;
}

static bool starts_with_icase(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool hub_wire_valid_id(const char *id, size_t len)
{
	if (len == 0 || len > HUB_WIRE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c == '\0' || (!is_alnum(c) && !strchr("-.+%_#*?!(),=@$':;", c)))
			return false;
	}
	return true;
}

static bool valid_host(const char *h, size_t len)
{
	if (len == 0 || len > HUB_WIRE_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];

		/* names, IPv4, [IPv6] and a :port */
		if (c == '\0' || (!is_alnum(c) && !strchr("-._:[]", c)))
			return false;
	}
	return true;
}

/* Decodes the valid, non-NUL %XX escapes of s[0..len) and copies every other byte
 * as is, into out (outlen bytes, NUL-terminated). Returns false when the result
 * did not fit (out then holds what fitted). */
static bool decode_lenient(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i = 0, j = 0;

	while (i < len) {
		int c = (unsigned char)s[i], hi, lo;

		if (c == '%' && len - i >= 3 && (hi = hex_digit_value((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hex_digit_value((unsigned char)s[i + 2])) >= 0 && (hi | lo) != 0) {
			c = hi << 4 | lo;
			i += 3;
		} else {
			i++;
		}
		if (j + 1 >= outlen) {
			out[j] = '\0';
			return false;
		}
		out[j++] = (char)c;
	}
	out[j] = '\0';
	return true;
}

static bool is_dps_username(const char *u)
{
	const char *r = strstr(u, DPS_MARK);

	return r && strstr(r + strlen(DPS_MARK), DPS_API_MARK) != NULL;
}

static int parse_query(const char *q, struct hub_username *out)
{
	size_t qlen = strlen(q);
	struct query_pair kv;

	if (query_find(q, qlen, "api-version", true, &kv) == EMU_OK) {
		if (!decode_lenient(kv.value, kv.value_len, out->api_version,
		                    sizeof(out->api_version))) {
			out->error = "api-version is too long";
			return EMU_EINVAL;
		}
		out->has_api_version = out->api_version[0] != '\0';
	}
	if (query_find(q, qlen, "model-id", true, &kv) == EMU_OK) {
		if (!decode_lenient(kv.value, kv.value_len, out->model_id, sizeof(out->model_id))) {
			out->error = "model-id is too long";
			return EMU_EINVAL;
		}
		for (const char *p = out->model_id; *p; p++) {
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
				out->error = "model-id has a character outside printable ASCII";
				return EMU_EINVAL;
			}
		}
	}
	if (query_find(q, qlen, "DeviceClientType", true, &kv) == EMU_OK) {
		/* informational only: a long user agent is cut, not refused */
		decode_lenient(kv.value, kv.value_len, out->client_type, sizeof(out->client_type));
		for (char *p = out->client_type; *p; p++) {
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				*p = '?';
		}
	}
	return EMU_OK;
}

static int fail_username(struct hub_username *out, const char *why)
{
	memset(out, 0, sizeof(*out));
	out->error = why;
	return EMU_EINVAL;
}

/* After an id segment: no query, a '?' query or a legacy one. Sets *q (or NULL)
 * and returns true when p is one of those. */
static bool query_start(const char *p, const char **q, bool *legacy)
{
	*q = NULL;
	if (*p == '\0')
		return true;
	if (*p == '?') {
		*q = p + 1;
		return true;
	}
	if (starts_with_icase(p, LEGACY_QUERY)) {
		*q = p;
		*legacy = true;
		return true;
	}
	return false;
}

int hub_wire_parse_username(const char *u, struct hub_username *out)
{
	const char *slash, *dev, *p, *q = NULL;
	size_t hostlen, devlen, modlen;
	int rc;

	memset(out, 0, sizeof(*out));
	if (is_dps_username(u))
		return fail_username(out,
		                     "a DPS username ({scope}/registrations/{id}/api-version=)");
	slash = strchr(u, '/');
	if (!slash)
		return fail_username(out, "no '/' after the host name");
	hostlen = (size_t)(slash - u);
	if (!valid_host(u, hostlen))
		return fail_username(out, "empty, over-long or malformed host name");
	memcpy(out->host, u, hostlen);
	dev = slash + 1;
	devlen = strcspn(dev, "/");
	if (!hub_wire_valid_id(dev, devlen))
		return fail_username(out, "empty, over-long or malformed device id");
	memcpy(out->device_id, dev, devlen);
	p = dev + devlen;
	if (*p == '/')
		p++;
	if (!query_start(p, &q, &out->legacy)) {
		/* a module segment */
		modlen = strcspn(p, "/");
		if (!hub_wire_valid_id(p, modlen))
			return fail_username(out, "empty, over-long or malformed module id");
		memcpy(out->module_id, p, modlen);
		p += modlen;
		if (*p == '/')
			p++;
		if (!query_start(p, &q, &out->legacy))
			return fail_username(out, "too many segments before the query");
	}
	if (q) {
		rc = parse_query(q, out);
		if (rc) {
			const char *why = out->error;

			return fail_username(out, why);
		}
	}
	return EMU_OK;
}

bool hub_wire_client_id_matches(const struct hub_username *u, const char *client_id)
{
	size_t dlen = strlen(u->device_id);

	if (u->module_id[0] == '\0')
		return strcmp(client_id, u->device_id) == 0;
	return strncmp(client_id, u->device_id, dlen) == 0 && client_id[dlen] == '/' &&
	       strcmp(client_id + dlen + 1, u->module_id) == 0;
}

static void set_reason(char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_reason(char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, HUB_WIRE_REASON_MAX, fmt, ap);
	va_end(ap);
}

/* "topic" quoted for a reason, cut with "..." past SNIP bytes. */
#define SNIP_ARGS(s)                                                                               \
	(int)(strlen(s) > SNIP ? SNIP : strlen(s)), (s), (strlen(s) > SNIP ? "..." : "")

static int not_allowed(struct hub_publish_topic *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int not_allowed(struct hub_publish_topic *out, const char *fmt, ...)
{
	va_list ap;

	memset(out, 0, sizeof(*out));
	out->kind = HUB_PUB_NOT_ALLOWED;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	return EMU_EPROTO;
}

/* Finds $rid in the query q; EMU_OK or a NOT_ALLOWED verdict. */
static int take_rid(const char *topic, const char *q, struct hub_publish_topic *out)
{
	struct query_pair kv;

	if (query_find(q, strlen(q), "$rid", false, &kv) != EMU_OK || kv.value_len == 0)
		return not_allowed(out, "topic '%.*s%s' has no $rid", SNIP_ARGS(topic));
	if (kv.value_len > HUB_WIRE_RID_MAX)
		return not_allowed(out, "topic '%.*s%s' has a $rid longer than %d bytes",
		                   SNIP_ARGS(topic), HUB_WIRE_RID_MAX);
	out->rid = kv.value;
	out->rid_len = kv.value_len;
	return EMU_OK;
}

/* Parses 1..digits decimal digits (an optional '-' when neg_ok) of s[0..len). */
static bool parse_int(const char *s, size_t len, bool neg_ok, int digits, long long *v)
{
	bool neg = false;
	long long x = 0;

	if (len > 0 && s[0] == '-' && neg_ok) {
		neg = true;
		s++;
		len--;
	}
	if (len == 0 || len > (size_t)digits)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (s[i] - '0');
	}
	*v = neg ? -x : x;
	return true;
}

static int parse_twin_or_method(const char *topic, struct hub_publish_topic *out)
{
	const char *q;
	struct query_pair kv;
	long long v;
	int rc;

	if (starts_with(topic, TWIN_GET)) {
		rc = take_rid(topic, topic + strlen(TWIN_GET), out);
		if (rc == EMU_OK)
			out->kind = HUB_PUB_TWIN_GET;
		return rc;
	}
	if (starts_with(topic, TWIN_REPORTED)) {
		q = topic + strlen(TWIN_REPORTED);
		rc = take_rid(topic, q, out);
		if (rc)
			return rc;
		if (query_find(q, strlen(q), "$version", false, &kv) == EMU_OK) {
			if (!parse_int(kv.value, kv.value_len, false, 18, &v))
				return not_allowed(out,
				                   "topic '%.*s%s' has a $version that is not a "
				                   "number",
				                   SNIP_ARGS(topic));
			out->has_version = true;
			out->version = v;
		}
		out->kind = HUB_PUB_TWIN_REPORTED;
		return EMU_OK;
	}
	if (starts_with(topic, METHOD_RES)) {
		const char *st = topic + strlen(METHOD_RES);
		const char *end = strstr(st, "/?");

		if (!end || !parse_int(st, (size_t)(end - st), true, 9, &v))
			return not_allowed(out,
			                   "topic '%.*s%s' is not $iothub/methods/res/{status}/"
			                   "?$rid={rid} with a numeric status",
			                   SNIP_ARGS(topic));
		rc = take_rid(topic, end + 2, out);
		if (rc)
			return rc;
		out->kind = HUB_PUB_METHOD_RESPONSE;
		out->status = (int)v;
		return EMU_OK;
	}
	return not_allowed(out, "topic '%.*s%s' is not one devices may publish to",
	                   SNIP_ARGS(topic));
}

/* rest follows "devices/{d}/[modules/{m}/]": the telemetry forms. */
static int parse_events(const char *topic, const char *rest, struct hub_publish_topic *out)
{
	const char *bag;
	size_t n;

	if (!starts_with(rest, EVENTS))
		goto bad;
	rest += strlen(EVENTS);
	out->kind = HUB_PUB_TELEMETRY;
	if (*rest == '\0')
		return EMU_OK;
	if (*rest != '/')
		goto bad;
	bag = rest + 1;
	n = strcspn(bag, "/");
	if (bag[n] == '/' && bag[n + 1] != '\0')
		goto bad; /* more than one trailing segment */
	if (n == 0 && bag[n] == '/')
		goto bad; /* "events//" */
	if (n > 0 && bag[0] == '?') {
		bag++;
		n--;
	}
	out->bag = bag;
	out->bag_len = n;
	return EMU_OK;
bad:
	return not_allowed(out, "topic '%.*s%s' is not a telemetry topic", SNIP_ARGS(topic));
}

int hub_wire_parse_publish(const char *device_id, const char *module_id, const char *topic,
                           struct hub_publish_topic *out)
{
	const char *seg, *rest;
	size_t n, dlen = strlen(device_id);
	bool is_module = module_id && module_id[0];

	memset(out, 0, sizeof(*out));
	if (strpbrk(topic, "+#"))
		return not_allowed(out, "topic '%.*s%s' contains a wildcard", SNIP_ARGS(topic));
	if (starts_with(topic, "$iothub/"))
		return parse_twin_or_method(topic, out);
	if (!starts_with(topic, "devices/"))
		return not_allowed(out, "topic '%.*s%s' is not one devices may publish to",
		                   SNIP_ARGS(topic));
	seg = topic + strlen("devices/");
	n = strcspn(seg, "/");
	if (n != dlen || memcmp(seg, device_id, n) != 0)
		return not_allowed(out, "topic '%.*s%s' belongs to device '%.*s'", SNIP_ARGS(topic),
		                   (int)(n > HUB_WIRE_ID_MAX ? HUB_WIRE_ID_MAX : n), seg);
	if (seg[n] != '/')
		return not_allowed(out, "topic '%.*s%s' is not a telemetry topic",
		                   SNIP_ARGS(topic));
	rest = seg + n + 1;
	if (starts_with(rest, "modules/")) {
		const char *m = rest + strlen("modules/");
		size_t mlen = strcspn(m, "/");

		if (!is_module || mlen != strlen(module_id) || memcmp(m, module_id, mlen) != 0)
			return not_allowed(
			    out, "topic '%.*s%s' belongs to module '%s/%.*s'", SNIP_ARGS(topic),
			    device_id, (int)(mlen > HUB_WIRE_ID_MAX ? HUB_WIRE_ID_MAX : mlen), m);
		if (m[mlen] != '/')
			return not_allowed(out, "topic '%.*s%s' is not a telemetry topic",
			                   SNIP_ARGS(topic));
		rest = m + mlen + 1;
	} else if (is_module) {
		return not_allowed(out,
		                   "topic '%.*s%s' belongs to device '%s', not to its module "
		                   "'%s'",
		                   SNIP_ARGS(topic), device_id, module_id);
	}
	return parse_events(topic, rest, out);
}

static int sub_verdict(struct hub_subscription *out, enum hub_sub_kind kind)
{
	out->kind = kind;
	return EMU_OK;
}

int hub_wire_check_subscribe(const char *device_id, const char *module_id, const char *filter,
                             struct hub_subscription *out)
{
	const char *seg, *rest;
	size_t n, dlen = strlen(device_id);
	bool is_module = module_id && module_id[0];

	memset(out, 0, sizeof(*out));
	if (strcmp(filter, SUB_TWIN_RES) == 0)
		return sub_verdict(out, HUB_SUB_TWIN_RESPONSES);
	if (strcmp(filter, SUB_DESIRED) == 0)
		return sub_verdict(out, HUB_SUB_DESIRED);
	if (strcmp(filter, SUB_METHODS) == 0)
		return sub_verdict(out, HUB_SUB_METHODS);
	if (!starts_with(filter, "devices/"))
		goto bad;
	seg = filter + strlen("devices/");
	n = strcspn(seg, "/");
	if (n != dlen || memcmp(seg, device_id, n) != 0) {
		set_reason(out->reason, "filter '%.*s%s' belongs to device '%.*s'",
		           SNIP_ARGS(filter), (int)(n > HUB_WIRE_ID_MAX ? HUB_WIRE_ID_MAX : n),
		           seg);
		return EMU_EPROTO;
	}
	if (seg[n] != '/')
		goto bad;
	rest = seg + n + 1;
	if (strcmp(rest, DEVICEBOUND) == 0) {
		if (!is_module)
			return sub_verdict(out, HUB_SUB_C2D);
		set_reason(out->reason,
		           "filter '%.*s%s': modules cannot receive cloud-to-device "
		           "messages",
		           SNIP_ARGS(filter));
		return EMU_EPROTO;
	}
	if (starts_with(rest, "modules/")) {
		const char *m = rest + strlen("modules/");
		size_t mlen = strcspn(m, "/");

		if (!is_module || mlen != strlen(module_id) || memcmp(m, module_id, mlen) != 0) {
			set_reason(out->reason, "filter '%.*s%s' belongs to module '%s/%.*s'",
			           SNIP_ARGS(filter), device_id,
			           (int)(mlen > HUB_WIRE_ID_MAX ? HUB_WIRE_ID_MAX : mlen), m);
			return EMU_EPROTO;
		}
		if (strcmp(m + mlen, "/#") == 0 || strcmp(m + mlen, "/inputs/#") == 0)
			return sub_verdict(out, HUB_SUB_MODULE_INPUTS);
	}
bad:
	set_reason(out->reason, "filter '%.*s%s' is not one the hub allows", SNIP_ARGS(filter));
	return EMU_EPROTO;
}

/* A rid or method name the hub writes into a topic: printable ASCII, and none
 * of the characters SDKs split topics on or MQTT forbids in names. */
static bool topic_safe(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("/?+#", c))
			return false;
	}
	return true;
}

static int fit(char *out, size_t outlen, int n)
{
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			out[0] = '\0';
		return EMU_ETOOBIG;
	}
	return EMU_OK;
}

int hub_wire_twin_response_topic(char *out, size_t outlen, int status, const char *rid,
                                 size_t rid_len, long long version)
{
	int n;

	if (rid_len == 0 || rid_len > HUB_WIRE_RID_MAX || memchr(rid, '\0', rid_len))
		return EMU_EINVAL;
	if (version >= 0)
		n = snprintf(out, outlen, "$iothub/twin/res/%d/?$rid=%.*s&$version=%lld", status,
		             (int)rid_len, rid, version);
	else
		n = snprintf(out, outlen, "$iothub/twin/res/%d/?$rid=%.*s", status, (int)rid_len,
		             rid);
	return fit(out, outlen, n);
}

int hub_wire_desired_topic(char *out, size_t outlen, long long version)
{
	if (version < 0)
		return EMU_EINVAL;
	return fit(
	    out, outlen,
	    snprintf(out, outlen, "$iothub/twin/PATCH/properties/desired/?$version=%lld", version));
}

int hub_wire_method_request_topic(char *out, size_t outlen, const char *name, const char *rid)
{
	if (!topic_safe(name, strlen(name), HUB_WIRE_METHOD_MAX) ||
	    !topic_safe(rid, strlen(rid), HUB_WIRE_RID_MAX) || strchr(rid, '&'))
		return EMU_EINVAL;
	return fit(out, outlen,
	           snprintf(out, outlen, "$iothub/methods/POST/%s/?$rid=%s", name, rid));
}

int hub_wire_c2d_topic(struct buf *out, const char *device_id, const char *bag)
{
	if (!hub_wire_valid_id(device_id, strlen(device_id)) || strpbrk(device_id, "+#") ||
	    strpbrk(bag, "/+#"))
		return EMU_EINVAL;
	return buf_printf(out, "devices/%s/messages/devicebound/%s", device_id, bag);
}
