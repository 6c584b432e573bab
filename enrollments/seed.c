#include "enrollments/seed.h"

#include "err.h"
#include "log.h"
#include "textenc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MIN_INLINE_B64 100 /* a DER certificate is longer than this in base64 */

/* Reads a whole regular file of at most SEED_MAX_FILE bytes; *out is NUL-terminated.
 * On failure the errno text (or the size problem) is in err. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat sb;
	char *data = NULL;
	size_t n = 0;
	FILE *f;
	int rc = EMU_EIO;

	*out = NULL;
	*len = 0;
	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s", strerror(errno));
		return errno == ENOENT ? EMU_ENOTFOUND : EMU_EIO;
	}
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		goto out;
	}
	if (sb.st_size > SEED_MAX_FILE) {
		snprintf(err, errlen, "larger than %d bytes", SEED_MAX_FILE);
		rc = EMU_ETOOBIG;
		goto out;
	}
	data = malloc((size_t)sb.st_size + 1);
	if (!data) {
		rc = EMU_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	n = fread(data, 1, (size_t)sb.st_size, f);
	if (ferror(f)) {
		snprintf(err, errlen, "read error");
		goto out;
	}
	data[n] = '\0';
	*out = data;
	*len = n;
	data = NULL;
	rc = EMU_OK;
out:
	free(data);
	fclose(f);
	return rc;
}

static int is_b64_char(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/' || ch == '=';
}

/* Inline certificate text (PEM or long base64), as opposed to a file path. */
static int is_inline_cert(const char *s)
{
	size_t n = 0;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	if (strncmp(s, "-----BEGIN", 10) == 0)
		return 1;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			continue;
		if (!is_b64_char((unsigned char)*s))
			return 0;
		n++;
	}
	return n >= MIN_INLINE_B64;
}

/* Replaces a certificate path by the file's content (PEM kept, DER base64-encoded). */
static int inline_cert_file(json_t *entry, const char *field, const char *dir, const char *file,
                            char *why, size_t whylen)
{
	const char *ref = json_string_value(json_object_get(entry, "certificate"));
	char path[PATH_MAX], err[128];
	char *data = NULL, *b64 = NULL;
	size_t len;
	int rc;

	if (!ref || is_inline_cert(ref))
		return EMU_OK;
	if (!*ref) {
		emu_why(why, whylen, "%s: %s: empty", file, field);
		return EMU_EINVAL;
	}
	if (ref[0] == '/')
		rc = snprintf(path, sizeof(path), "%s", ref);
	else
		rc = snprintf(path, sizeof(path), "%s/%s", dir, ref);
	if (rc < 0 || (size_t)rc >= sizeof(path)) {
		emu_why(why, whylen, "%s: %s: path too long", file, field);
		return EMU_EINVAL;
	}
	rc = read_file(path, &data, &len, err, sizeof(err));
	if (rc != EMU_OK) {
		emu_why(why, whylen, "%s: %s: cannot read certificate file %s: %s", file, field,
		        path, err);
		return rc == EMU_ENOTFOUND ? EMU_EINVAL : rc;
	}
	if (len >= 10 && strstr(data, "-----BEGIN") != NULL) {
		rc = json_object_set_new(entry, "certificate", json_string(data));
	} else {
		b64 = b64_encode(data, len);
		rc = b64 ? json_object_set_new(entry, "certificate", json_string(b64)) : -1;
	}
	free(data);
	free(b64);
	if (rc != 0) {
		/* json_string refuses invalid UTF-8: the file is not a certificate */
		emu_why(why, whylen, "%s: %s: %s is not a PEM or DER certificate file", file, field,
		        path);
		return EMU_EINVAL;
	}
	return EMU_OK;
}

static int inline_certs(json_t *doc, const char *dir, const char *file, char *why, size_t whylen)
{
	static const char *pairs[2] = {"clientCertificates", "signingCertificates"};
	static const char *slots[2] = {"primary", "secondary"};
	json_t *x509 = json_object_get(json_object_get(doc, "attestation"), "x509");

	if (!json_is_object(x509))
		return EMU_OK;
	for (int p = 0; p < 2; p++) {
		json_t *pair = json_object_get(x509, pairs[p]);
		if (!json_is_object(pair))
			continue;
		for (int s = 0; s < 2; s++) {
			json_t *entry = json_object_get(pair, slots[s]);
			char field[96];
			int rc;

			if (!json_is_object(entry))
				continue;
			snprintf(field, sizeof(field), "attestation.x509.%s.%s.certificate",
			         pairs[p], slots[s]);
			rc = inline_cert_file(entry, field, dir, file, why, whylen);
			if (rc != EMU_OK)
				return rc;
		}
	}
	return EMU_OK;
}

static int seed_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

static int seed_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* IDs already defined in this load, to catch two files declaring the same one. */
struct seen {
	char (*keys)[ENR_ID_MAX + 2]; /* kind digit + lower-cased id */
	const char **files;
	size_t n;
};

static const char *seen_find(struct seen *s, enum enr_kind kind, const char *id)
{
	char key[ENR_ID_MAX + 2];

	key[0] = (char)('0' + kind);
	enrollment_id_key(id, key + 1);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return s->files[i];
	snprintf(s->keys[s->n], sizeof(s->keys[s->n]), "%s", key);
	return NULL;
}

static int load_file(const char *dir, const char *name, struct enr_store *es, struct store_txn *txn,
                     struct seen *seen, struct seed_counts *c, char *why, size_t whylen)
{
	char path[PATH_MAX], err[128], reason[400];
	struct enrollment *e = NULL;
	json_t *doc = NULL;
	json_error_t jerr;
	char *text = NULL;
	enum enr_kind kind;
	uint64_t g0 = 0, g1 = 0;
	const char *other;
	size_t len;
	int rc, ind, grp;

	rc = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (rc < 0 || (size_t)rc >= sizeof(path)) {
		emu_why(why, whylen, "%s: path too long", name);
		return EMU_EINVAL;
	}
	rc = read_file(path, &text, &len, err, sizeof(err));
	if (rc != EMU_OK) {
		emu_why(why, whylen, "%s: %s", name, err);
		return rc == EMU_ENOTFOUND ? EMU_EIO : rc;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!doc) {
		emu_why(why, whylen, "%s: line %d column %d: %s", name, jerr.line, jerr.column,
		        jerr.text);
		return EMU_EINVAL;
	}
	rc = EMU_EINVAL;
	if (!json_is_object(doc)) {
		emu_why(why, whylen, "%s: must hold one enrollment (a JSON object)", name);
		goto out;
	}
	ind = json_is_string(json_object_get(doc, "registrationId"));
	grp = json_is_string(json_object_get(doc, "enrollmentGroupId"));
	if (ind == grp) {
		emu_why(why, whylen,
		        "%s: needs either registrationId (individual enrollment) or "
		        "enrollmentGroupId (enrollment group)",
		        name);
		goto out;
	}
	kind = ind ? ENR_INDIVIDUAL : ENR_GROUP;
	rc = inline_certs(doc, dir, name, why, whylen);
	if (rc != EMU_OK)
		goto out;
	rc = enr_store_generation(es, txn, &g0);
	if (rc != EMU_OK)
		goto out;
	rc = enr_store_put(es, txn, kind, NULL, doc, "*", ENR_PUT_KEEP_UNCHANGED, &e, reason,
	                   sizeof(reason));
	if (rc != EMU_OK) {
		emu_why(why, whylen, "%s: %s", name, reason[0] ? reason : emu_strerror(rc));
		goto out;
	}
	other = seen_find(seen, kind, e->id);
	if (other) {
		emu_why(why, whylen, "%s: %s '%s' is also defined in %s", name,
		        enrollment_id_field(kind), e->id, other);
		rc = EMU_EINVAL;
		goto out;
	}
	seen->files[seen->n++] = name;
	rc = enr_store_generation(es, txn, &g1);
	if (rc != EMU_OK)
		goto out;
	if (kind == ENR_INDIVIDUAL)
		c->individuals++;
	else
		c->groups++;
	if (g1 != g0)
		c->written++;
	log_debug("enrollments", "seed %s: %s '%s' %s", name, enrollment_id_field(kind), e->id,
	          g1 != g0 ? "written" : "unchanged");
out:
	enrollment_free(e);
	json_decref(doc);
	return rc;
}

int seed_load_dir(const char *dir, struct store *st, struct enr_store *es,
                  struct seed_counts *counts, char *why, size_t whylen)
{
	struct seed_counts c = {0};
	struct store_txn *txn = NULL;
	struct dirent **names = NULL;
	struct seen seen = {0};
	int n, rc;

	emu_why(why, whylen, "%s", "");
	if (counts)
		memset(counts, 0, sizeof(*counts));
	n = scandir(dir, &names, seed_filter, seed_cmp);
	if (n < 0) {
		emu_why(why, whylen, "%s: %s", dir, strerror(errno));
		return errno == ENOENT ? EMU_ENOTFOUND : EMU_EIO;
	}
	seen.keys = calloc((size_t)n + 1, sizeof(*seen.keys));
	seen.files = calloc((size_t)n + 1, sizeof(*seen.files));
	if (!seen.keys || !seen.files) {
		rc = EMU_ENOMEM;
		goto out;
	}
	rc = store_txn_begin(st, 1, &txn);
	if (rc != EMU_OK) {
		emu_why(why, whylen, "%s: %s", dir, emu_strerror(rc));
		goto out;
	}
	for (int i = 0; i < n; i++) {
		rc = load_file(dir, names[i]->d_name, es, txn, &seen, &c, why, whylen);
		if (rc != EMU_OK)
			goto out;
	}
	rc = store_txn_commit(txn);
	txn = NULL;
	if (rc != EMU_OK) {
		emu_why(why, whylen, "%s: %s", dir, emu_strerror(rc));
		goto out;
	}
	log_debug("enrollments", "seeded %zu enrollments and %zu groups from %s (%zu written)",
	          c.individuals, c.groups, dir, c.written);
	if (counts)
		*counts = c;
out:
	store_txn_abort(txn);
	if (rc != EMU_OK)
		log_debug("enrollments", "seed directory not applied: %s", why ? why : "");
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(seen.keys);
	free(seen.files);
	return rc;
}
