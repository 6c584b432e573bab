/* Fuzz target for dps/wire: the input is tried as a DPS username and as a
 * request topic; whatever parses must round-trip into a response topic. */
#include "dps/wire.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dps_username u;
	struct dps_request_topic t;
	char *s = malloc(size + 1), topic[512];

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (dps_wire_parse_username(s, &u) == EMU_OK &&
	    (!u.scope[0] || !u.registration_id[0] || strchr(u.registration_id, '/')))
		abort(); /* a parsed username always has a scope and a single-segment id */
	if (dps_wire_parse_request_topic(s, &t) == EMU_OK) {
		if (t.rid_len == 0 || t.rid_len > DPS_WIRE_RID_MAX || t.rid < s ||
		    t.rid + t.rid_len > s + size)
			abort();
		if (dps_wire_response_topic(topic, sizeof(topic), 202, t.rid, t.rid_len, 3) != EMU_OK)
			abort();
	}
	free(s);
	return 0;
}
