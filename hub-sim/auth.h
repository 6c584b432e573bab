/* auth.h - may this certificate (or SAS token) connect as this device?
 *
 * A pure decision over the registry record and what the device presented, so
 * every refusal reason can be unit-tested. The hub answers a refusal with
 * CONNACK 5 and logs the reason. */
#ifndef DPSEMU_HUB_AUTH_H
#define DPSEMU_HUB_AUTH_H

#include "authlog.h"

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct hub_auth_input {
	const char *device_id;
	const char *module_id;      /* "" for a device connection */
	const json_t *device;       /* the registry record, or NULL when unknown */
	X509 *leaf;                 /* client certificate, or NULL */
	STACK_OF(X509) *chain;      /* what the client sent after the leaf */
	STACK_OF(X509) *trusted;    /* verified CAs and the DPS issuing chain (may be NULL) */
	const char *password;       /* SAS token, or NULL */
	size_t password_len;
	const char *hub_host;       /* the host name in the username (the SAS resource) */
	int require_cn;             /* thumbprint devices too must have CN = device id */
	time_t now;                 /* 0 = current time */
};

/* Returns EMU_OK when the device may connect, with how it authenticated in why
 * ("X.509 thumbprint", "X.509 CA chain", "SAS token") and *cls AUTH_OK;
 * otherwise EMU_EAUTH (EMU_ENOMEM) with the reason in why ("leaf certificate
 * CN 'd2' is not the device id 'd1'") and its class in *cls. For SAS, *expiry
 * receives the token's se (0 for certificates). */
int hub_auth_check(const struct hub_auth_input *in, uint64_t *expiry, enum auth_reason *cls,
		   char *why, size_t whylen);

#endif
