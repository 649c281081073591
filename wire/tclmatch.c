/*
 * Tcl's [string match] on UTF-8 (tclmatch.h).
 *
 * [string match] on Tcl 8.6 is TclUniCharMatch (generic/tclUtf.c): the
 * pattern and the string are arrays of UTF-16 code units.  We walk the
 * UTF-8 bytes with a cursor that yields the same units, so a character
 * beyond U+FFFF is two units (a surrogate pair) exactly as in tclsh 8.6:
 * '?' matches half of it, and [string match {[😀]} 😀] is 0 there too.
 * Bytes that are not UTF-8 count as one unit each (Latin-1), as a Tcl
 * peer's utf-8 channel would decode them.
 *
 * The matching steps are Tcl's, quirks included: '[' without ']' runs to
 * the end of the pattern, "[a-" at the end never matches, a '\' at the end
 * never matches, ranges may be written high-low, there is no negation.
 *
 * Tcl tries every position after each '*' recursively, which is
 * exponential for patterns like "*a*a*a*a*b".  A peer chooses the pattern,
 * so we remember which (star, string position) pairs already failed: the
 * answer is the same, the work polynomial.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tclmatch.h"

/* A position in a UTF-8 string, counted in UTF-16 units. */
struct cur {
	size_t	off;	/* byte offset of the current character */
	size_t	idx;	/* units before this position */
	bool	low;	/* at the second unit of a 4-byte character */
};

struct match {
	const unsigned char	*pat, *str;
	size_t			 plen, slen;
	size_t			 npos;	/* string positions: units + 1 */
	unsigned char		*memo;	/* failed (star, position) bits */
};

#define MEMO_STACK	1024

static size_t	 decode(const unsigned char *, size_t, uint32_t *);
static int	 peek(const unsigned char *, size_t, const struct cur *);
static int	 next(const unsigned char *, size_t, struct cur *);
static size_t	 count_stars(const unsigned char *, size_t);
static bool	 match_at(struct match *, struct cur, size_t, struct cur);
static int	 match_class(struct match *, struct cur *, int);

/* One character: its length in bytes and code point. */
static size_t
decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] >= 0xc2 && s[0] <= 0xdf && n >= 2 &&
	    (s[1] & 0xc0) == 0x80) {
		*cp = (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
		return 2;
	}
	if (s[0] >= 0xe0 && s[0] <= 0xef && n >= 3 &&
	    (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
	    (s[0] != 0xe0 || s[1] >= 0xa0)) {
		*cp = (uint32_t)(s[0] & 0x0f) << 12 |
		    (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4 && n >= 4 &&
	    (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
	    (s[3] & 0xc0) == 0x80) {
		*cp = (uint32_t)(s[0] & 0x07) << 18 |
		    (uint32_t)(s[1] & 0x3f) << 12 |
		    (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
		if (*cp >= 0x10000 && *cp <= 0x10ffff)
			return 4;
	}
	*cp = s[0];
	return 1;
}

/* The unit at c, or -1 at the end. */
static int
peek(const unsigned char *s, size_t n, const struct cur *c)
{
	uint32_t cp;

	if (c->off >= n)
		return -1;
	if (s[c->off] < 0x80)
		return s[c->off];
	decode(s + c->off, n - c->off, &cp);
	if (cp < 0x10000)
		return (int)cp;
	cp -= 0x10000;
	return (int)(c->low ? 0xdc00 + (cp & 0x3ff) : 0xd800 + (cp >> 10));
}

/* The unit at c, and move past it; -1 (and no move) at the end. */
static int
next(const unsigned char *s, size_t n, struct cur *c)
{
	uint32_t	cp;
	size_t		k;
	int		u;

	if (c->off >= n)
		return -1;
	if (s[c->off] < 0x80) {
		u = s[c->off++];
		c->idx++;
		return u;
	}
	u = peek(s, n, c);
	k = decode(s + c->off, n - c->off, &cp);
	if (k == 4 && !c->low)
		c->low = true;
	else {
		c->low = false;
		c->off += k;
	}
	c->idx++;
	return u;
}

static size_t
count_stars(const unsigned char *s, size_t n)
{
	const unsigned char	*p, *end = s + n;
	size_t			 k = 0;

	while ((p = memchr(s, '*', (size_t)(end - s))) != NULL) {
		k++;
		s = p + 1;
	}
	return k;
}

/*
 * '[' ... ']' against unit ch; p is just past the '['.  Returns 1 on a
 * match (p past the class), 0 on a mismatch.  As in Tcl, after a match
 * the class ends at the next ']', wherever that is.
 */
static int
match_class(struct match *m, struct cur *p, int ch)
{
	int	start, end;

	for (;;) {
		start = peek(m->pat, m->plen, p);
		if (start == ']' || start < 0)
			return 0;
		next(m->pat, m->plen, p);
		if (peek(m->pat, m->plen, p) == '-') {
			next(m->pat, m->plen, p);
			if ((end = next(m->pat, m->plen, p)) < 0)
				return 0;
			if ((start <= ch && ch <= end) ||
			    (end <= ch && ch <= start))
				break;
		} else if (start == ch)
			break;
	}
	for (;;) {
		start = next(m->pat, m->plen, p);
		if (start == ']' || start < 0)
			return 1;
	}
}

/*
 * TclUniCharMatch from pattern position p (prank '*' bytes before it) and
 * string position s.
 */
static bool
match_at(struct match *m, struct cur p, size_t prank, struct cur s)
{
	size_t	from = p.off, rank, bit;
	int	pc, sc;

	for (;;) {
		pc = peek(m->pat, m->plen, &p);
		sc = peek(m->str, m->slen, &s);
		if (pc < 0)
			return sc < 0;
		if (sc < 0 && pc != '*')
			return false;
		switch (pc) {
		case '*':
			while (peek(m->pat, m->plen, &p) == '*')
				next(m->pat, m->plen, &p);
			if ((pc = peek(m->pat, m->plen, &p)) < 0)
				return true;
			rank = prank + count_stars(m->pat + from, p.off - from);
			for (;;) {
				/* Cruise to the next place a literal fits. */
				if (pc != '[' && pc != '?' && pc != '\\') {
					while ((sc = peek(m->str, m->slen,
					    &s)) >= 0 && sc != pc)
						next(m->str, m->slen, &s);
				}
				bit = (rank - 1) * m->npos + s.idx;
				if (m->memo == NULL ||
				    !(m->memo[bit / 8] & (1 << (bit % 8)))) {
					if (match_at(m, p, rank, s))
						return true;
					if (m->memo != NULL)
						m->memo[bit / 8] |=
						    1 << (bit % 8);
				}
				if (next(m->str, m->slen, &s) < 0)
					return false;
			}
		case '?':
			next(m->pat, m->plen, &p);
			next(m->str, m->slen, &s);
			continue;
		case '[':
			next(m->pat, m->plen, &p);
			if (!match_class(m, &p, next(m->str, m->slen, &s)))
				return false;
			continue;
		case '\\':
			next(m->pat, m->plen, &p);
			if (peek(m->pat, m->plen, &p) < 0)
				return false;
			break;
		}
		if (next(m->pat, m->plen, &p) != next(m->str, m->slen, &s))
			return false;
	}
}

bool
tcl_string_match(const char *pat, size_t plen, const char *str, size_t slen)
{
	unsigned char	 stack[MEMO_STACK];
	struct match	 m;
	struct cur	 start = { 0, 0, false }, c = start;
	size_t		 nstars, bits;
	bool		 r;

	m.pat = (const unsigned char *)pat;
	m.plen = plen;
	m.str = (const unsigned char *)str;
	m.slen = slen;
	m.memo = NULL;

	/* Backtracking only matters from the second star on. */
	if ((nstars = count_stars(m.pat, plen)) >= 2) {
		while (next(m.str, slen, &c) >= 0)
			;
		m.npos = c.idx + 1;
		if (m.npos <= (SIZE_MAX - 7) / nstars) {
			bits = nstars * m.npos;
			if (bits <= 8 * sizeof(stack))
				m.memo = stack;
			else
				m.memo = malloc((bits + 7) / 8);
			/* Without memory, the answer is the same, only slower. */
			if (m.memo != NULL)
				memset(m.memo, 0, (bits + 7) / 8);
		}
	}
	r = match_at(&m, start, 0, start);
	if (m.memo != stack)
		free(m.memo);
	return r;
}

bool
tcl_pattern_is_literal(const char *pat, size_t plen)
{
	size_t i;

	for (i = 0; i < plen; i++) {
		switch (pat[i]) {
		case '*':
		case '?':
		case '[':
		case '\\':
			return false;
		}
	}
	return true;
}
