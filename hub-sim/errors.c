/* errors.c - the IoT Hub's error envelope, shared by every hub route. */
#include "hub-sim/hub_internal.h"

#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "svcauth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void respond(struct http_req *r, int status, const char *code, const char *message)
{
	char ts[32], exception[128];

	clock_iso8601_now(ts);
	snprintf(exception, sizeof(exception), "Tracking ID:%s-TimeStamp:%s", http_req_id(r), ts);
	log_info("hub", "request %s %s %s from %s refused: %d %s: %s", http_req_id(r),
		 http_req_method(r), http_req_path(r), http_req_peer(r), status, code, message);
	http_resp_header(r, "iothub-errorcode", code);
	http_respond_json(r, status, json_pack("{s:s, s:s}", "Message", message, "ExceptionMessage",
					       exception));
}

void hub_respond_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
	char text[768], message[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(message, sizeof(message), "ErrorCode:%s;%s", code, text);
	respond(r, status, code, message);
}

void hub_respond_method_error(struct http_req *r, int status, int error_code, const char *fmt, ...)
{
	char text[768], ts[32], *inner;
	const char *code = error_code == 404103 ? "DeviceNotOnline"
			   : error_code == 504101 ? "GatewayTimeout"
			   : error_code == 404001 ? "DeviceNotFound"
						  : "ArgumentInvalid";
	json_t *j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	clock_iso8601_now(ts);
	j = json_pack("{s:i, s:s, s:s, s:{}, s:s}", "errorCode", error_code, "trackingId",
		      http_req_id(r), "message", text, "info", "timestampUtc", ts);
	inner = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	log_info("hub", "request %s %s %s refused: %d %d: %s", http_req_id(r), http_req_method(r),
		 http_req_path(r), status, error_code, text);
	http_resp_header(r, "iothub-errorcode", code);
	http_respond_json(r, status, json_pack("{s:s, s:s}", "Message", inner ? inner : text,
					       "ExceptionMessage", ""));
	free(inner);
}

int hub_require_auth(struct hub *h, struct http_req *r)
{
	char why[256];

	if (svcauth_check(h->auth, http_req_header(r, "Authorization"), (uint64_t)time(NULL), why,
			  sizeof(why)) == EMU_OK)
		return EMU_OK;
	hub_respond_error(r, 401, "IotHubUnauthorizedAccess", "Unauthorized: %s", why);
	return EMU_EAUTH;
}
