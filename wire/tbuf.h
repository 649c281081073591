/*
 * tbuf: a growable byte buffer, the one output and scratch type of the wire
 * layer.  Every formatter appends to a tbuf; p is always NUL-terminated
 * (cap > len) so a buffer holding text can be handed to C string functions,
 * but len is authoritative: Tcl strings may hold NUL bytes.
 *
 * Allocation failure is fatal (fatalx): a registry that cannot allocate a
 * few bytes cannot do anything useful, and checking every append would hide
 * the protocol logic.
 */
#ifndef WIRE_TBUF_H
#define WIRE_TBUF_H

#include <stdarg.h>
#include <stddef.h>

struct tbuf {
	char *p;
	size_t len;
	size_t cap;
};

void tbuf_init(struct tbuf *);
void tbuf_free(struct tbuf *);
/* Forget the contents, keep the memory (hot paths reuse one buffer). */
void tbuf_reset(struct tbuf *);
void tbuf_reserve(struct tbuf *, size_t extra);
void tbuf_add(struct tbuf *, const void *, size_t);
void tbuf_addc(struct tbuf *, char);
void tbuf_adds(struct tbuf *, const char *);
void tbuf_printf(struct tbuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void tbuf_vprintf(struct tbuf *, const char *, va_list);
/* Drop the first n bytes. */
void tbuf_consume(struct tbuf *, size_t n);

#endif
