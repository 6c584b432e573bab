/* wire.h - the DPS MQTT wire format, as pure functions: usernames, request
 * topics and response topics. No I/O, so it can be unit-tested and fuzzed. */
#ifndef DPSEMU_DPS_WIRE_H
#define DPSEMU_DPS_WIRE_H

#include <stddef.h>

#define DPS_WIRE_SCOPE_MAX 64
#define DPS_WIRE_ID_MAX 128
#define DPS_WIRE_API_MAX 64
#define DPS_WIRE_RID_MAX 128
#define DPS_WIRE_OPID_MAX 64

struct dps_username {
	char scope[DPS_WIRE_SCOPE_MAX + 1];
	char registration_id[DPS_WIRE_ID_MAX + 1];
	char api_version[DPS_WIRE_API_MAX + 1]; /* "" when the value is empty */
};

/* Parses "{idScope}/registrations/{registrationId}/api-version={v}[&k=v...]".
 * Everything after the api-version value (ClientVersion, ...) is ignored.
 * Returns EMU_OK, or EMU_EINVAL when u is not a DPS username or a part is too
 * long. */
int dps_wire_parse_username(const char *u, struct dps_username *out);

enum dps_request_kind { DPS_REQ_REGISTER = 1, DPS_REQ_STATUS = 2 };

struct dps_request_topic {
	enum dps_request_kind kind;
	const char *rid;      /* points into the topic: $rid exactly as sent */
	size_t rid_len;
	char operation_id[DPS_WIRE_OPID_MAX + 1]; /* DPS_REQ_STATUS; "" when absent */
};

/* Parses $dps/registrations/PUT/iotdps-register/?$rid=... and
 * $dps/registrations/GET/iotdps-get-operationstatus/?$rid=...&operationId=...
 * Returns EMU_OK; EMU_ENOTFOUND for any other topic; EMU_EINVAL when $rid is
 * missing, empty or longer than DPS_WIRE_RID_MAX, or operationId too long. */
int dps_wire_parse_request_topic(const char *topic, struct dps_request_topic *out);

/* Writes "$dps/registrations/res/{status}/?$rid={rid}[&retry-after={n}]" ($rid
 * first: some SDKs parse the topic positionally); retry_after < 0 omits it.
 * Returns EMU_OK or EMU_ETOOBIG when out is too small. */
int dps_wire_response_topic(char *out, size_t outlen, int status, const char *rid, size_t rid_len,
			    int retry_after);

#endif
