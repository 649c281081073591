/*
 * tbuf: a growable byte buffer, the one output and scratch type of the wire
 * layer.  Every formatter appends to a tbuf; p is always NUL-terminated
 * (cap > len) so a buffer holding text can be handed to C string functions,
 * but len is authoritative: Tcl strings may hold NUL bytes.
 *
 * Allocation failure follows a process-wide policy (tbuf_oom_fatal).  The
 * daemons keep the default, fatal: a registry that cannot allocate a few
 * bytes cannot do anything useful.  The client library turns it off, since
 * the process is the application's: then a buffer that cannot grow is
 * marked failed and every later append writes nothing, so that appends
 * stay unchecked and the consumer looks once, at the message's end
 * (failed), and sends nothing truncated.
 */
#ifndef WIRE_TBUF_H
#define WIRE_TBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct tbuf {
	char *p;
	size_t len;
	size_t cap;
	/*
	 * How far the bytes are known to be one Tcl list written by
	 * tl_append alone, from offset 0 (tcllist.h).  When listed == len
	 * the whole buffer is such a list, and quoting it as an element needs
	 * no scan.  Only tl_append (and tl_append_int, tl_append_str) move
	 * it forward; every other append leaves it behind len, and reset and
	 * consume set it to 0.  A tbuf made by hand, not by tbuf_init, must
	 * not be asked.
	 */
	size_t listed;
	/* An append could not get memory (the policy off): nothing more is
	 * written until reset or free.  The contents are whatever came
	 * before, so they must not be used as a whole. */
	bool failed;
};

/*
 * The policy: true (the default), out of memory ends the process with a
 * message; false, the buffer fails (above), and the table and the engine
 * return their errors instead.  A program that says which (the daemons
 * and the commreg command say true, at start) keeps it.  Otherwise the
 * library makes it false when a handle is opened
 * (tbuf_oom_library_default), as the process is not the library's to end.
 */
void tbuf_oom_fatal(bool);
void tbuf_oom_library_default(void);
bool tbuf_oom_is_fatal(void);
/* An allocation of the wire, the table or the engine failed: the end of
 * the process (msg on the log) under the fatal policy; else it returns,
 * and the caller returns its error. */
void tbuf_oom(const char *msg);

void tbuf_init(struct tbuf *);
void tbuf_free(struct tbuf *);
/* Forget the contents, keep the memory (hot paths reuse one buffer). */
void tbuf_reset(struct tbuf *);
/* Room for extra more bytes and the NUL.  Inline where there is room
 * already, which on a hot path is nearly always.  False when the buffer
 * failed (now or before): a writer that asked must write nothing. */
bool tbuf_grow(struct tbuf *, size_t extra);
static inline bool
tbuf_reserve(struct tbuf *b, size_t extra)
{
	if (b->failed)
		return false;
	if (extra < b->cap - b->len) /* cap > len always holds once grown */
		return true;
	return tbuf_grow(b, extra);
}
void tbuf_add(struct tbuf *, const void *, size_t);
void tbuf_addc(struct tbuf *, char);
void tbuf_adds(struct tbuf *, const char *);
void tbuf_printf(struct tbuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void tbuf_vprintf(struct tbuf *, const char *, va_list);
/*
 * A word that came from a peer, for an error reply or a log line: in
 * double quotes, control characters, quotes and backslashes escaped (so
 * no forged line or terminal escape gets through), at most
 * TBUF_QUOTE_MAX bytes of it.  The one way the project quotes such words.
 */
#define TBUF_QUOTE_MAX 200
void tbuf_add_quoted(struct tbuf *, const char *, size_t);
/* Drop the first n bytes. */
void tbuf_consume(struct tbuf *, size_t n);

#endif
