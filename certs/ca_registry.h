/* ca_registry.h - CA certificates registered with proof of possession.
 *
 * The ARM-shaped /certificates routes: upload a CA, get a verification code,
 * prove possession of the CA's key with a certificate whose CN is that code and
 * which the CA signed, and the CA is verified. Enrollment groups' caReferences
 * and the hub's CA-authenticated devices trust only verified CAs. One registry
 * serves both services when they run in one process. */
#ifndef DPSEMU_CA_REGISTRY_H
#define DPSEMU_CA_REGISTRY_H

#include <openssl/x509.h>
#include <stddef.h>

struct ca_registry;
struct store;
struct svcauth;
struct http_server;

/* Opens the registry in st (table "certificates"). Routes are added to http
 * (when not NULL), authorized by auth (borrowed). Returns EMU_OK or an emu_err. */
int ca_registry_new(struct store *st, struct http_server *http, const struct svcauth *auth,
		    struct ca_registry **out);
void ca_registry_free(struct ca_registry *reg);

/* Looks name up (case-insensitive). EMU_OK with a new X509 in *out (caller
 * frees) when it is registered and verified; EMU_ENOTFOUND when unknown;
 * EMU_EAUTH when registered but not verified. why says which, for the log. */
int ca_registry_find_verified(struct ca_registry *reg, const char *name, X509 **out, char *why,
			      size_t whylen);

/* Every verified CA (new stack, caller frees with sk_X509_pop_free), for
 * services that trust any registered CA (the hub). */
int ca_registry_all_verified(struct ca_registry *reg, STACK_OF(X509) **out);

#endif
