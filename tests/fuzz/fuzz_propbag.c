/* Fuzz target for hub-sim/propbag: parses the input as a property bag; a bag
 * that parses must keep its promises (bounds, UTF-8, JSON), and encoding it must
 * give a topic-safe string that parses back to the same properties. Any broken
 * promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "hub-sim/propbag.h"
#include "textenc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

static void check_props(const struct propbag *pb)
{
	require(propbag_count(pb) <= PROPBAG_MAX_PROPS);
	for (size_t i = 0; i < propbag_count(pb); i++) {
		const struct propbag_prop *p = propbag_at(pb, i);
		const char *key = p->system ? propbag_system_key(p->name) : p->name;

		require(p->name[0] != '\0');
		require(key != NULL && strlen(key) <= PROPBAG_KEY_MAX);
		require(utf8_valid(p->name, strlen(p->name)));
		require(!p->value || utf8_valid(p->value, strlen(p->value)));
		/* an application name never reads back as a system key */
		require(p->system ||
		        (strncmp(p->name, "$.", 2) != 0 && strcmp(p->name, "iothub-ack") != 0 &&
		         strcmp(p->name, "iothub-operation") != 0));
		require(propbag_find(pb, p->system, p->name) != NULL);
	}
	require(propbag_at(pb, propbag_count(pb)) == NULL);
}

static void same(const struct propbag *a, const struct propbag *b)
{
	require(propbag_count(a) == propbag_count(b));
	for (size_t i = 0; i < propbag_count(a); i++) {
		const struct propbag_prop *x = propbag_at(a, i), *y = propbag_at(b, i);

		require(x->system == y->system);
		require(strcmp(x->name, y->name) == 0);
		require((x->value == NULL) == (y->value == NULL));
		require(!x->value || strcmp(x->value, y->value) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct propbag *pb = NULL, *again = NULL, *from = NULL;
	char err[256] = "";
	struct buf b;
	json_t *j;
	int rc = propbag_parse((const char *)data, size, &pb, err, sizeof(err));

	if (rc != EMU_OK) {
		require(pb == NULL && err[0] != '\0');
		require(rc == EMU_EINVAL || rc == EMU_ETOOBIG || rc == EMU_ENOMEM);
		return 0;
	}
	check_props(pb);

	j = propbag_to_json(pb);
	require(j != NULL);
	require(json_object_size(json_object_get(j, "properties")) +
	            json_object_size(json_object_get(j, "systemProperties")) <=
	        propbag_count(pb));
	/* what the JSON holds builds a bag again */
	rc = propbag_from_json(json_object_get(j, "properties"),
	                       json_object_get(j, "systemProperties"), &from, err, sizeof(err));
	require(rc == EMU_OK);
	json_decref(j);

	buf_init(&b, 0);
	require(propbag_encode(pb, &b) == EMU_OK);
	if (b.len > 0) {
		require(memchr(b.data, '/', b.len) == NULL && memchr(b.data, '+', b.len) == NULL);
		require(memchr(b.data, '#', b.len) == NULL && memchr(b.data, '?', b.len) == NULL);
		require(memchr(b.data, ' ', b.len) == NULL);
	}
	rc = propbag_parse(b.data ? (const char *)b.data : "", b.len, &again, err, sizeof(err));
	if (b.len <= PROPBAG_MAX_BYTES) {
		require(rc == EMU_OK);
		same(pb, again);
	} else {
		/* escaping can push a large bag past the input bound */
		require(rc == EMU_ETOOBIG);
	}
	buf_free(&b);
	propbag_free(again);
	propbag_free(from);
	propbag_free(pb);
	return 0;
}
