#include "dps/wire.h"

#include "err.h"
#include "query.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define REGISTER_PREFIX "$dps/registrations/PUT/iotdps-register/?"
#define STATUS_PREFIX "$dps/registrations/GET/iotdps-get-operationstatus/?"

static int copy_part(char *dst, size_t dstlen, const char *src, size_t n)
{
	if (n == 0 || n >= dstlen)
		return EMU_EINVAL;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return EMU_OK;
}

int dps_wire_parse_username(const char *u, struct dps_username *out)
{
	const char *reg = strstr(u, "/registrations/"), *ver;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!reg)
		return EMU_EINVAL;
	/* Search after "/registrations/": its own trailing '/' must not match. */
	ver = strstr(reg + strlen("/registrations"), "/api-version=");
	if (!ver)
		return EMU_EINVAL;
	if (copy_part(out->scope, sizeof(out->scope), u, (size_t)(reg - u)) != EMU_OK)
		return EMU_EINVAL;
	reg += strlen("/registrations/");
	if (ver < reg || memchr(reg, '/', (size_t)(ver - reg)) ||
	    copy_part(out->registration_id, sizeof(out->registration_id), reg, (size_t)(ver - reg)) !=
		    EMU_OK)
		return EMU_EINVAL;
	ver += strlen("/api-version=");
	n = strcspn(ver, "&");
	if (n >= sizeof(out->api_version))
		return EMU_EINVAL;
	memcpy(out->api_version, ver, n);
	out->api_version[n] = '\0';
	return EMU_OK;
}

int dps_wire_parse_request_topic(const char *topic, struct dps_request_topic *out)
{
	struct query_pair rid, opid;
	const char *q;

	memset(out, 0, sizeof(*out));
	if (strncmp(topic, REGISTER_PREFIX, strlen(REGISTER_PREFIX)) == 0) {
		out->kind = DPS_REQ_REGISTER;
		q = topic + strlen(REGISTER_PREFIX);
	} else if (strncmp(topic, STATUS_PREFIX, strlen(STATUS_PREFIX)) == 0) {
		out->kind = DPS_REQ_STATUS;
		q = topic + strlen(STATUS_PREFIX);
	} else {
		return EMU_ENOTFOUND;
	}
	if (query_find(q, strlen(q), "$rid", false, &rid) != EMU_OK || rid.value_len == 0 ||
	    rid.value_len > DPS_WIRE_RID_MAX)
		return EMU_EINVAL;
	out->rid = rid.value;
	out->rid_len = rid.value_len;
	if (out->kind == DPS_REQ_STATUS &&
	    query_find(q, strlen(q), "operationId", false, &opid) == EMU_OK) {
		if (opid.value_len > DPS_WIRE_OPID_MAX)
			return EMU_EINVAL;
		memcpy(out->operation_id, opid.value, opid.value_len);
		out->operation_id[opid.value_len] = '\0';
	}
	return EMU_OK;
}

int dps_wire_response_topic(char *out, size_t outlen, int status, const char *rid, size_t rid_len,
			    int retry_after)
{
	int n;

	if (rid_len > DPS_WIRE_RID_MAX)
		return EMU_ETOOBIG;
	if (retry_after >= 0)
		n = snprintf(out, outlen, "$dps/registrations/res/%d/?$rid=%.*s&retry-after=%d", status,
			     (int)rid_len, rid, retry_after);
	else
		n = snprintf(out, outlen, "$dps/registrations/res/%d/?$rid=%.*s", status, (int)rid_len,
			     rid);
	return n < 0 || (size_t)n >= outlen ? EMU_ETOOBIG : EMU_OK;
}
