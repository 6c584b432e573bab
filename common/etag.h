/* etag.h - entity tags: the one If-Match comparison every service uses, and
 * the quoted-UUID etags that DPS enrollments and CA certificates carry.
 *
 * Clients differ in how they send an etag back: Node quotes it ("\"abc\""),
 * some send it bare, the enrollment bulk API puts it in a JSON body (sometimes
 * JSON-escaped once more), and HTTP allows a weak W/ prefix and a list. So an
 * If-Match value is compared by its core: each comma-separated entry without
 * surrounding whitespace, without a W/ prefix and without the double quotes
 * (and backslashes) around it. Cores compare byte for byte (case-sensitively).
 *
 * What a missing If-Match means differs per operation (create only, upsert,
 * delete unconditionally), so etag_matches never decides it: callers check
 * etag_is_absent first. */
#ifndef DPSEMU_ETAG_H
#define DPSEMU_ETAG_H

#include <stdbool.h>

#define ETAG_UUID_LEN 39 /* '"' + 36-character UUID + '"' + NUL */

/* True when if_match imposes no condition: NULL, "" or only spaces and tabs. */
bool etag_is_absent(const char *if_match);

/* True when if_match is the wildcard: an entry whose core is "*" (so *, "*",
 * W/"*" and " \"*\" " all are; "**" and "" are not). */
bool etag_is_any(const char *if_match);

/* True when if_match names etag: the wildcard names anything (etag may then be
 * NULL); otherwise some entry's core must equal etag's core, and empty cores
 * never match. if_match absent (see etag_is_absent) or etag NULL: false.
 * Neither string is modified; both are read only up to their NUL. */
bool etag_matches(const char *etag, const char *if_match);

/* Writes a new etag "\"<random UUID>\"" (quotes included) into out. */
void etag_new_uuid(char out[ETAG_UUID_LEN]);

#endif
