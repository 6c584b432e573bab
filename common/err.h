/* err.h - the project's one error enum and its strerror.
 *
 * Every function that can fail returns 0 (EMU_OK) on success or one of these
 * negative codes. errno, OpenSSL and LMDB codes are translated at the boundary
 * where they happen; the detail goes to the log, the code goes up. */
#ifndef DPSEMU_ERR_H
#define DPSEMU_ERR_H

enum emu_err {
	EMU_OK = 0,
	EMU_ENOMEM = -1,     /* allocation failed */
	EMU_EINVAL = -2,     /* malformed or out-of-range input */
	EMU_EIO = -3,        /* system call or file failure (errno logged) */
	EMU_ENOTFOUND = -4,  /* no such record / file */
	EMU_EEXIST = -5,     /* record already exists */
	EMU_ETOOBIG = -6,    /* input exceeds a configured bound */
	EMU_EPROTO = -7,     /* protocol violation by the peer */
	EMU_ETLS = -8,       /* TLS failure */
	EMU_ESTORE = -9,     /* LMDB failure */
	EMU_ECRYPTO = -10,   /* OpenSSL failure or invalid certificate/key */
	EMU_EAUTH = -11,     /* authentication refused */
	EMU_EPRECOND = -12,  /* etag / If-Match mismatch */
	EMU_EAGAIN = -13,    /* incomplete input: call again with more data */
	EMU_ECLOSED = -14,   /* peer closed the connection */
};

/* Returns a static, human-readable description of an emu_err code. */
const char *emu_strerror(int err);

#include <stddef.h>

/* Writes the reason for a refusal into why (whylen bytes); why may be NULL or
 * whylen 0, then nothing is written. The one helper every module uses to fill
 * its "why" out-parameter. */
void emu_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
