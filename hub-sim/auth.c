#include "hub-sim/auth.h"

#include "certs/x509.h"
#include "err.h"
#include "sas.h"
#include "textenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *auth_field(const json_t *device, const char *a, const char *b)
{
	json_t *auth = json_object_get(device, "authentication");
	return json_string_value(json_object_get(json_object_get(auth, a), b));
}

/* The class of a chain or date failure: the leaf itself out of date, or else the chain. */
static enum auth_reason dated_or_chain(const struct hub_auth_input *in)
{
	time_t t = in->now ? in->now : time(NULL);

	if (X509_cmp_time(X509_get0_notBefore(in->leaf), &t) > 0 ||
	    X509_cmp_time(X509_get0_notAfter(in->leaf), &t) < 0)
		return AUTH_EXPIRED;
	return AUTH_CHAIN;
}

static int check_cn(const struct hub_auth_input *in, enum auth_reason *cls, char *why,
		    size_t whylen)
{
	char cn[256], want[2 * 128 + 2];

	if (in->module_id && *in->module_id)
		snprintf(want, sizeof(want), "%s/%s", in->device_id, in->module_id);
	else
		snprintf(want, sizeof(want), "%s", in->device_id);
	*cls = AUTH_CN_MISMATCH;
	if (x509_common_name(in->leaf, cn, sizeof(cn)) != EMU_OK) {
		snprintf(why, whylen, "the client certificate has no CN; it must be '%s'", want);
		return EMU_EAUTH;
	}
	/* Device ids are case-sensitive, so is this comparison. */
	if (strcmp(cn, want) != 0) {
		snprintf(why, whylen, "leaf certificate CN '%s' is not the device id '%s'", cn, want);
		return EMU_EAUTH;
	}
	*cls = AUTH_OK;
	return EMU_OK;
}

static int check_thumbprint(const struct hub_auth_input *in, enum auth_reason *cls, char *why,
			    size_t whylen)
{
	const char *p = auth_field(in->device, "x509Thumbprint", "primaryThumbprint");
	const char *s = auth_field(in->device, "x509Thumbprint", "secondaryThumbprint");
	STACK_OF(X509) *self = NULL;
	char sha256[65];
	int rc;

	if (!(p && x509_thumbprint_matches(in->leaf, p)) && !(s && x509_thumbprint_matches(in->leaf, s))) {
		x509_thumbprint_sha256(in->leaf, sha256);
		snprintf(why, whylen, "certificate thumbprint %s matches neither registered thumbprint "
			 "of device '%s' (primary %s)", sha256, in->device_id, p ? p : "none");
		*cls = AUTH_THUMBPRINT;
		return EMU_EAUTH;
	}
	/* Thumbprint devices: only the dates (and client-auth use) are checked, as
	 * the real hub does; the leaf is its own anchor. */
	self = sk_X509_new_null();
	if (!self || !sk_X509_push(self, in->leaf)) {
		sk_X509_free(self);
		snprintf(why, whylen, "out of memory");
		*cls = AUTH_OTHER;
		return EMU_ENOMEM;
	}
	rc = x509_verify_chain(in->leaf, NULL, self, in->now, NULL, NULL, why, whylen);
	sk_X509_free(self);
	if (rc != EMU_OK) {
		*cls = dated_or_chain(in);
		return EMU_EAUTH;
	}
	if (in->require_cn && (rc = check_cn(in, cls, why, whylen)) != EMU_OK)
		return rc;
	*cls = AUTH_OK;
	snprintf(why, whylen, "X.509 thumbprint");
	return EMU_OK;
}

static int check_ca(const struct hub_auth_input *in, enum auth_reason *cls, char *why,
		    size_t whylen)
{
	char reason[256];
	int rc;

	*cls = AUTH_CHAIN;
	if (!in->trusted || sk_X509_num(in->trusted) == 0) {
		snprintf(why, whylen, "device '%s' authenticates by CA but no verified CA is "
			 "registered (PUT /certificates/{name}, then prove possession)", in->device_id);
		return EMU_EAUTH;
	}
	if (x509_verify_chain(in->leaf, in->chain, in->trusted, in->now, NULL, NULL, reason,
			      sizeof(reason)) != EMU_OK) {
		snprintf(why, whylen, "certificate chain does not reach a verified CA: %s", reason);
		*cls = dated_or_chain(in);
		return EMU_EAUTH;
	}
	if ((rc = check_cn(in, cls, why, whylen)) != EMU_OK)
		return rc;
	snprintf(why, whylen, "X.509 CA chain");
	return EMU_OK;
}

static int check_sas(const struct hub_auth_input *in, uint64_t *expiry, char *why, size_t whylen)
{
	const char *keys[2] = { auth_field(in->device, "symmetricKey", "primaryKey"),
				auth_field(in->device, "symmetricKey", "secondaryKey") };
	char resource[512];
	struct sas_token t;

	if (sas_parse(in->password, in->password_len, &t) != EMU_OK) {
		snprintf(why, whylen, "password is not a SharedAccessSignature: %s",
			 t.error ? t.error : "unparseable");
		return EMU_EAUTH;
	}
	if (in->module_id && *in->module_id)
		snprintf(resource, sizeof(resource), "%s/devices/%s/modules/%s", in->hub_host,
			 in->device_id, in->module_id);
	else
		snprintf(resource, sizeof(resource), "%s/devices/%s", in->hub_host, in->device_id);
	/* The token's resource must cover this device: equal, or a parent path. */
	if (strncasecmp(t.sr, resource, strlen(t.sr)) != 0 ||
	    (resource[strlen(t.sr)] != '\0' && resource[strlen(t.sr)] != '/')) {
		snprintf(why, whylen, "SAS resource '%s' does not cover '%s'", t.sr, resource);
		return EMU_EAUTH;
	}
	for (int i = 0; i < 2; i++) {
		unsigned char *key = NULL;
		size_t keylen = 0;
		int ok;
		if (!keys[i] || b64_decode(keys[i], strlen(keys[i]), &key, &keylen) != EMU_OK)
			continue;
		ok = sas_verify(&t, key, keylen, in->now ? (uint64_t)in->now : (uint64_t)time(NULL)) ==
		     EMU_OK;
		free(key);
		if (ok) {
			*expiry = t.se;
			snprintf(why, whylen, "SAS token");
			return EMU_OK;
		}
	}
	snprintf(why, whylen, "SAS token for '%s' is expired or not signed with a key of device "
		 "'%s'", t.sr, in->device_id);
	return EMU_EAUTH;
}

int hub_auth_check(const struct hub_auth_input *in, uint64_t *expiry, enum auth_reason *cls,
		   char *why, size_t whylen)
{
	const char *type, *status;
	int rc;

	*expiry = 0;
	*cls = AUTH_UNKNOWN_DEVICE;
	if (!in->device) {
		snprintf(why, whylen, "device '%s' is not registered in the hub", in->device_id);
		return EMU_EAUTH;
	}
	*cls = AUTH_DISABLED;
	status = json_string_value(json_object_get(in->device, "status"));
	if (status && strcmp(status, "enabled") != 0) {
		snprintf(why, whylen, "device '%s' is %s", in->device_id, status);
		return EMU_EAUTH;
	}
	*cls = AUTH_SAS;
	type = json_string_value(json_object_get(json_object_get(in->device, "authentication"), "type"));
	if (!type)
		type = "sas";
	if (strcmp(type, "sas") == 0) {
		if (!in->password) {
			snprintf(why, whylen, "device '%s' authenticates with SAS but the CONNECT has "
				 "no password", in->device_id);
			return EMU_EAUTH;
		}
		if ((rc = check_sas(in, expiry, why, whylen)) == EMU_OK)
			*cls = AUTH_OK;
		return rc;
	}
	*cls = AUTH_OTHER;
	if (strcmp(type, "selfSigned") != 0 && strcmp(type, "certificateAuthority") != 0) {
		snprintf(why, whylen, "device '%s' has authentication type '%s', which cannot connect",
			 in->device_id, type);
		return EMU_EAUTH;
	}
	if (!in->leaf) {
		snprintf(why, whylen, "device '%s' authenticates with X.509 (%s) but presented no client "
			 "certificate", in->device_id, type);
		*cls = AUTH_NO_CERTIFICATE;
		return EMU_EAUTH;
	}
	return strcmp(type, "selfSigned") == 0 ? check_thumbprint(in, cls, why, whylen)
					       : check_ca(in, cls, why, whylen);
}
