/* buf.h - a growable byte buffer with a hard maximum.
 *
 * Every buffer that grows from network input is a struct buf with a max set,
 * so an oversized peer gets EMU_ETOOBIG instead of our memory. */
#ifndef DPSEMU_BUF_H
#define DPSEMU_BUF_H

#include <stddef.h>

struct buf {
	unsigned char *data; /* owned; NUL-terminated one past len when non-NULL */
	size_t len;          /* bytes in use */
	size_t cap;          /* bytes allocated (excluding the terminator) */
	size_t max;          /* growth limit; 0 means unlimited */
};

/* Initialises an empty buffer with the given growth limit (0 = none). */
void buf_init(struct buf *b, size_t max);
/* Appends n bytes. Returns EMU_OK, EMU_ETOOBIG past max, EMU_ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Appends a C string (without its terminator). */
int buf_append_str(struct buf *b, const char *s);
/* Appends printf-formatted text. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Empties the buffer, keeping its allocation. */
void buf_reset(struct buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Transfers ownership of the data (NUL-terminated) to the caller; b becomes empty. */
char *buf_steal(struct buf *b);

#endif
