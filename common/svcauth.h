/* svcauth.h - service-API authentication with SharedAccessSignature tokens.
 *
 * A set of shared access policies (name + key), like an Azure resource's
 * "provisioningserviceowner" or "iothubowner". A request is authorized when its
 * Authorization header holds a token that names one of the policies (skn) and
 * whose HMAC verifies with that policy's key and has not expired. */
#ifndef DPSEMU_SVCAUTH_H
#define DPSEMU_SVCAUTH_H

#include <stddef.h>
#include <stdint.h>

struct svcauth;
struct http_req;

/* Creates an empty policy set. Returns EMU_OK or EMU_ENOMEM. */
int svcauth_new(struct svcauth **out);
/* Frees it. NULL is fine. */
void svcauth_free(struct svcauth *a);
/* Adds a policy. key_b64 must be valid base64 (EMU_EINVAL otherwise). */
int svcauth_add_policy(struct svcauth *a, const char *name, const char *key_b64);

/* Checks an Authorization header value at time now (unix seconds). Returns
 * EMU_OK, or EMU_EAUTH with the reason in why. */
int svcauth_check(const struct svcauth *a, const char *authorization, uint64_t now, char *why,
		  size_t whylen);

/* Checks the request's Authorization header; on failure answers it with 401 and
 * an Azure error body (errorCode 401002) and returns EMU_EAUTH. */
int svcauth_require(const struct svcauth *a, struct http_req *r);

#endif
