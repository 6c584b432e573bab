/* sas.h - Azure SharedAccessSignature tokens: parse, verify, create, derive keys.
 *
 * A token reads "SharedAccessSignature sr=<resource>&sig=<url-encoded base64
 * HMAC>&se=<expiry>[&skn=<key name>]" with the fields in any order. The signature
 * is HMAC-SHA256(key, <sr exactly as it appears in the token> + "\n" + <se as it
 * appears>): clients differ in how they encode sr (raw, %2F, %2f), so the raw
 * form is what gets verified and the decoded form is what gets compared. */
#ifndef DPSEMU_SAS_H
#define DPSEMU_SAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAS_MAX_TOKEN 4096 /* whole token, prefix included */
#define SAS_MAX_SR 1024    /* sr as sent */
#define SAS_MAX_SKN 256    /* skn as sent */
#define SAS_MAX_SIG 64     /* decoded signature bytes (SHA-256 gives 32) */

/* A parsed token. Self-contained: it does not point into the parsed string. */
struct sas_token {
	char sr_raw[SAS_MAX_SR + 1]; /* sr exactly as sent (what was signed) */
	size_t sr_raw_len;
	char sr[SAS_MAX_SR + 1];     /* sr percent-decoded */
	char se_raw[21];             /* se digits exactly as sent */
	/* Expiry. Seconds since the epoch, but Node's service client sends
	 * milliseconds: such a value is simply far in the future. */
	uint64_t se;
	unsigned char sig[SAS_MAX_SIG]; /* signature, url- and base64-decoded */
	size_t sig_len;
	char skn[SAS_MAX_SKN + 1]; /* key name percent-decoded; "" when absent */
	bool has_skn;
	const char *error; /* after a failed sas_parse: static reason, for the log */
};

/* Parses token[0..len) (no terminator needed) into *out.
 * Requires the case-sensitive prefix "SharedAccessSignature " (one space), then
 * sr, sig and se exactly once each, skn at most once; unknown fields are ignored.
 * Returns EMU_OK; EMU_EINVAL for a malformed token (missing prefix or field,
 * duplicate field, field without '=', space or control character, bad escape,
 * sig not base64, se not a decimal number that fits 64 bits); EMU_ETOOBIG for a
 * token over SAS_MAX_TOKEN or a field over its bound; EMU_ENOMEM. On error
 * out->error says why and the other fields are zero. */
int sas_parse(const char *token, size_t len, struct sas_token *out);

/* Checks the signature of a parsed token against key (the raw key bytes, i.e.
 * already base64-decoded) at time now (seconds since the epoch).
 * Returns EMU_OK; EMU_EAUTH when the signature does not match (compared in
 * constant time) or the token expired (t->se < now; compare them to tell which);
 * EMU_EINVAL for an empty key; EMU_ECRYPTO if OpenSSL fails (logged). */
int sas_verify(const struct sas_token *t, const unsigned char *key, size_t keylen, uint64_t now);

/* Returns 1 if the token's decoded sr equals expected (ASCII case-insensitive),
 * or is expected followed by '/' and more (Azure accepts a longer resource URI in
 * service tokens); 0 otherwise, and for an empty expected. */
int sas_resource_matches(const struct sas_token *t, const char *expected);

/* Creates "SharedAccessSignature sr=..&sig=..&se=..[&skn=..]" for resource sr
 * (percent-encoded in the token, and signed in that form), signed with key
 * (raw bytes), expiring at expiry; skn is omitted when NULL.
 * Returns a new NUL-terminated string the caller frees with free(), or NULL for
 * a NULL sr or an empty key, and on allocation or OpenSSL failure (logged). */
char *sas_create(const char *sr, const unsigned char *key, size_t keylen, uint64_t expiry,
		 const char *skn);

/* Derives a group enrollment's device key:
 * base64(HMAC-SHA256(base64decode(group_key_b64), registration_id)), written
 * NUL-terminated to out_b64 (44 characters and the terminator).
 * Returns EMU_OK; EMU_EINVAL when the group key is not valid, non-empty base64;
 * EMU_ENOMEM; EMU_ECRYPTO if OpenSSL fails. */
int sas_derive_device_key(const char *group_key_b64, const char *registration_id,
			  char out_b64[45]);

#endif
