/* seed.h - enrollments declared as files (DPSEMU_ENROLLMENTS_DIR).
 *
 * Every *.json file directly in the directory (hidden files excluded, read in
 * byte order of their names) holds ONE enrollment in the service-API shape: a
 * document with "registrationId" is an individual enrollment, one with
 * "enrollmentGroupId" an enrollment group. A certificate member
 * (attestation.x509.{clientCertificates|signingCertificates}.{primary|secondary}
 * .certificate) holds inline PEM text, inline base64 DER (at least 100 base64
 * characters and nothing else), or otherwise the path of a certificate file,
 * relative to the JSON file's directory unless absolute. The file may be PEM
 * (the first certificate is used) or DER.
 *
 * Seeds are the source of truth for their IDs: each document is written with
 * If-Match "*" (created or replaced); a document whose content has not changed
 * keeps its etag. Enrollments not named by any file are left alone. The whole
 * directory is applied in one transaction: one bad file and nothing changes. */
#ifndef DPSEMU_SEED_H
#define DPSEMU_SEED_H

#include "enrollments/enr_store.h"
#include "store.h"

#include <stddef.h>

#define SEED_MAX_FILE (1024 * 1024) /* bytes per JSON or certificate file */

struct seed_counts {
	size_t individuals; /* individual enrollments in the directory */
	size_t groups;      /* enrollment groups in the directory */
	size_t written;     /* how many of them were created or changed by this load */
};

/* Loads every seed file of dir into es (whose store is st) in one write
 * transaction, committed only if every file is valid. Called at start-up and
 * again on SIGHUP. Writes are logged by enr_store; the summary and the failure
 * are left to the caller to log.
 * Returns EMU_OK and fills *counts (may be NULL). On failure nothing is written
 * and why says which file and what is wrong ("dev1.json: attestation.type: ..."):
 * EMU_EINVAL (a file is invalid, two files define the same ID, a certificate file
 * is missing), EMU_ENOTFOUND (dir does not exist), EMU_EIO, EMU_ETOOBIG (a file
 * over SEED_MAX_FILE), EMU_ESTORE, EMU_ENOMEM. */
int seed_load_dir(const char *dir, struct store *st, struct enr_store *es,
                  struct seed_counts *counts, char *why, size_t whylen);

#endif
