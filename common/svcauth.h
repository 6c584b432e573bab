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

/* Adds a host name a token's resource (sr) may name. With none added any sr
 * is accepted; otherwise the host part of sr (before any '/' or ':port') must
 * be one of them. Returns EMU_OK or EMU_ENOMEM / EMU_EINVAL. */
int svcauth_add_resource(struct svcauth *a, const char *host);
/* Adds the names this emulator answers to: the host name, localhost,
 * 127.0.0.1, ::1, DPSEMU_EXTRA_NAMES and DPSEMU_LINKED_HUBS (the names its
 * server certificate carries, so the only ones a TLS client can use). */
struct cfg;
int svcauth_add_cfg_names(struct svcauth *a, const struct cfg *cfg);

/* Checks an Authorization header value at time now (unix seconds). Returns
 * EMU_OK, or EMU_EAUTH with the reason in why. */
int svcauth_check(const struct svcauth *a, const char *authorization, uint64_t now, char *why,
		  size_t whylen);

/* Checks the request's Authorization header; on failure answers it with 401 and
 * an Azure error body (errorCode 401002) and returns EMU_EAUTH. */
int svcauth_require(const struct svcauth *a, struct http_req *r);

#endif
