/*
 * tbuf: the growable byte buffer of the wire layer (see tbuf.h).
 *
 * An initialised but unused buffer points at a shared empty string and has
 * cap 0, so tbuf_init never allocates and p is a valid C string at all
 * times; the first append allocates.  Growth doubles, so a buffer reused
 * on a hot path settles at its high-water mark and stops allocating.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tbuf.h"

#define TBUF_MIN 64

/* Never written: reserve allocates before anything is stored (cap 0). */
static char tbuf_empty[1];

/* Written at start or when a handle opens, read only when an allocation
 * failed. */
static _Atomic bool oom_fatal = true;
static _Atomic bool oom_chosen;

void
tbuf_oom_fatal(bool on)
{
	oom_fatal = on;
	oom_chosen = true;
}

void
tbuf_oom_library_default(void)
{
	if (!oom_chosen)
		oom_fatal = false;
}

bool
tbuf_oom_is_fatal(void)
{
	return oom_fatal;
}

void
tbuf_oom(const char *msg)
{
	if (oom_fatal)
		fatalx("%s", msg);
}

void
tbuf_init(struct tbuf *b)
{
	b->p = tbuf_empty;
	b->len = 0;
	b->cap = 0;
	b->listed = 0;
	b->failed = false;
}

void
tbuf_free(struct tbuf *b)
{
	if (b->cap != 0)
		free(b->p);
	tbuf_init(b);
}

void
tbuf_reset(struct tbuf *b)
{
	b->len = 0;
	b->listed = 0;
	b->failed = false;
	if (b->cap != 0)
		b->p[0] = '\0';
}

bool
tbuf_grow(struct tbuf *b, size_t extra)
{
	size_t need, ncap;
	char *np;

	if (b->failed)
		return false;
	if (extra > SIZE_MAX - b->len - 1) {
		tbuf_oom("tbuf: size overflow");
		b->failed = true;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	ncap = b->cap < TBUF_MIN ? TBUF_MIN : b->cap;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	np = b->cap == 0 ? malloc(ncap) : realloc(b->p, ncap);
	if (np == NULL) {
		if (oom_fatal)
			fatalx("tbuf: out of memory (%zu bytes)", ncap);
		/* The old memory and contents stay; free releases them. */
		b->failed = true;
		return false;
	}
	if (b->cap == 0)
		np[0] = '\0';
	b->p = np;
	b->cap = ncap;
	return true;
}

void
tbuf_add(struct tbuf *b, const void *data, size_t len)
{
	if (len == 0 || !tbuf_reserve(b, len))
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void
tbuf_addc(struct tbuf *b, char c)
{
	if (!tbuf_reserve(b, 1))
		return;
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

void
tbuf_adds(struct tbuf *b, const char *s)
{
	tbuf_add(b, s, strlen(s));
}

void
tbuf_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

void
tbuf_vprintf(struct tbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	size_t room;
	int n;

	if (b->failed)
		return;
	/* Try in the space we have; only a long result costs a second pass. */
	room = b->cap > b->len ? b->cap - b->len : 0;
	va_copy(ap2, ap);
	n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		goto bad;
	if ((size_t)n >= room) {
		if (!tbuf_reserve(b, (size_t)n)) {
			/* The first pass may have written into the room:
			 * the NUL goes back where the contents end. */
			if (b->cap != 0)
				b->p[b->len] = '\0';
			return;
		}
		va_copy(ap2, ap);
		n = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
		va_end(ap2);
		if (n < 0)
			goto bad;
	}
	b->len += (size_t)n;
	return;
bad:
	/* A format the C library refuses is a bug of ours; a daemon stops
	 * on it, the library's buffer fails as if out of memory. */
	if (oom_fatal)
		fatalx("tbuf: bad format \"%s\"", fmt);
	if (b->cap != 0)
		b->p[b->len] = '\0';
	b->failed = true;
}

void
tbuf_consume(struct tbuf *b, size_t n)
{
	if (n >= b->len) {
		tbuf_reset(b);
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	b->listed = 0;
	b->p[b->len] = '\0';
}

void
tbuf_add_quoted(struct tbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = len > TBUF_QUOTE_MAX ? TBUF_QUOTE_MAX : len;
	unsigned char c;

	tbuf_addc(b, '"');
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			tbuf_addc(b, '\\');
			tbuf_addc(b, (char)c);
		} else if (c == '\n')
			tbuf_adds(b, "\\n");
		else if (c == '\t')
			tbuf_adds(b, "\\t");
		else if (c < 0x20 || c == 0x7f) {
			tbuf_adds(b, "\\x");
			tbuf_addc(b, hex[c >> 4]);
			tbuf_addc(b, hex[c & 15]);
		} else
			tbuf_addc(b, (char)c);
	}
	tbuf_addc(b, '"');
	if (n < len)
		tbuf_printf(b, " (%zu bytes more)", len - n);
}
