/* Replays fuzz inputs without libFuzzer: each file named on the command line is
 * read and passed once to LLVMFuzzerTestOneInput. `make fuzz-replay` links this
 * into every fuzz target so the seed corpora run under gcc and the sanitizers. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file; returns a malloc'd buffer (non-NULL even when empty). */
static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL, *p;
	size_t cap = 0, n = 0, got;

	*len = 0;
	if (!f)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			p = realloc(data, cap);
			if (!p) {
				free(data);
				data = NULL;
				goto out;
			}
			data = p;
		}
		got = fread(data + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		free(data);
		data = NULL;
		goto out;
	}
	*len = n;
out:
	fclose(f);
	return data;
}

int main(int argc, char **argv)
{
	size_t total = 0;
	int files = 0;

	for (int i = 1; i < argc; i++) {
		size_t len;
		uint8_t *data = read_file(argv[i], &len);

		if (!data) {
			fprintf(stderr, "%s: cannot read: %s\n", argv[i], strerror(errno));
			return 1;
		}
		/* an exact-size copy, so ASan catches a read one past the input */
		uint8_t *exact = malloc(len ? len : 1);
		if (!exact) {
			free(data);
			fprintf(stderr, "out of memory\n");
			return 1;
		}
		memcpy(exact, data, len);
		free(data);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
		total += len;
		files++;
	}
	printf("%s: replayed %d inputs (%zu bytes)\n", argc > 0 ? argv[0] : "replay", files, total);
	return 0;
}
