/*
 * Tcl's [string match] on UTF-8 (tclmatch.h): Tcl 8.6's
 * Tcl_StringCaseMatch, case-sensitive, on the characters of the UTF-8
 * text.  A character is one code point whatever its length in bytes, so
 * '?' matches "é" or "😀" and ranges compare code points.  Bytes that are
 * not UTF-8 count as one character each, with their own value (Latin-1),
 * as a Tcl peer's utf-8 channel decodes them.  Lengths are explicit: a
 * NUL is an ordinary character.
 *
 * (tclsh 8.6 uses this function for [string match] on plain strings; on a
 * value that already holds Tcl's UTF-16 form it uses TclUniCharMatch,
 * which differs only for characters beyond U+FFFF: there they are two
 * units each.)
 *
 * The matching steps are Tcl's, quirks included: '[' without ']' runs to
 * the end of the pattern, "[a-" at the end never matches, a '\' at the end
 * never matches, ranges may be written high-low, there is no negation,
 * and after a match inside '[...]' the set ends at the next ']' even when
 * that ']' was the end of a range ("[ab-]c]" matches "ac]").
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

struct match {
	const unsigned char *pat, *str;
	size_t plen, slen;
	unsigned char *memo; /* failed (star, offset) */
};

#define MEMO_STACK 1024

static size_t decode(const unsigned char *, size_t, uint32_t *);
static int32_t peek(const unsigned char *, size_t, size_t);
static int32_t next(const unsigned char *, size_t, size_t *);
static size_t count_stars(const unsigned char *, size_t);
static bool match_class(struct match *, size_t *, int32_t);
static bool match_at(struct match *, size_t, size_t, size_t);

/* One character: its length in bytes and code point. */
static size_t
decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] >= 0xc2 && s[0] <= 0xdf && n >= 2 && (s[1] & 0xc0) == 0x80) {
		*cp = (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
		return 2;
	}
	if (s[0] >= 0xe0 && s[0] <= 0xef && n >= 3 && (s[1] & 0xc0) == 0x80 &&
	    (s[2] & 0xc0) == 0x80 && (s[0] != 0xe0 || s[1] >= 0xa0)) {
		*cp = (uint32_t)(s[0] & 0x0f) << 12 |
		      (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4 && n >= 4 && (s[1] & 0xc0) == 0x80 &&
	    (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80) {
		*cp = (uint32_t)(s[0] & 0x07) << 18 |
		      (uint32_t)(s[1] & 0x3f) << 12 |
		      (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
		if (*cp >= 0x10000 && *cp <= 0x10ffff)
			return 4;
	}
	*cp = s[0];
	return 1;
}

/* The character at offset off, or -1 at the end. */
static int32_t
peek(const unsigned char *s, size_t n, size_t off)
{
	uint32_t cp;

	if (off >= n)
		return -1;
	if (s[off] < 0x80)
		return s[off];
	decode(s + off, n - off, &cp);
	return (int32_t)cp;
}

/* The character at *off, and move past it; -1 (no move) at the end. */
static int32_t
next(const unsigned char *s, size_t n, size_t *off)
{
	uint32_t cp;

	if (*off >= n)
		return -1;
	if (s[*off] < 0x80)
		return s[(*off)++];
	*off += decode(s + *off, n - *off, &cp);
	return (int32_t)cp;
}

static size_t
count_stars(const unsigned char *s, size_t n)
{
	const unsigned char *p, *end = s + n;
	size_t k = 0;

	while ((p = memchr(s, '*', (size_t)(end - s))) != NULL) {
		k++;
		s = p + 1;
	}
	return k;
}

/*
 * '[' ... ']' against character ch; *p is just past the '['.  On a match
 * *p moves past the set.
 */
static bool
match_class(struct match *m, size_t *p, int32_t ch)
{
	int32_t start, end;

	for (;;) {
		start = peek(m->pat, m->plen, *p);
		if (start == ']' || start < 0)
			return false;
		next(m->pat, m->plen, p);
		if (peek(m->pat, m->plen, *p) == '-') {
			(*p)++;
			if ((end = next(m->pat, m->plen, p)) < 0)
				return false;
			if ((start <= ch && ch <= end) ||
			    (end <= ch && ch <= start))
				break;
		} else if (start == ch)
			break;
	}
	/* Without a ']' the set ends with the pattern. */
	while (*p < m->plen && m->pat[*p] != ']')
		(*p)++;
	if (*p < m->plen)
		(*p)++;
	return true;
}

/*
 * Match pattern from offset p (prank '*' bytes before it) against the
 * string from offset s.
 */
static bool
match_at(struct match *m, size_t p, size_t prank, size_t s)
{
	size_t from = p, rank, bit;
	int32_t pc, sc;

	for (;;) {
		pc = peek(m->pat, m->plen, p);
		if (pc < 0)
			return s == m->slen;
		if (s == m->slen && pc != '*')
			return false;
		switch (pc) {
		case '*':
			while (p < m->plen && m->pat[p] == '*')
				p++;
			if ((pc = peek(m->pat, m->plen, p)) < 0)
				return true;
			rank = prank + count_stars(m->pat + from, p - from);
			for (;;) {
				/* Cruise to the next place a literal fits. */
				if (pc != '[' && pc != '?' && pc != '\\') {
					while ((sc = peek(m->str, m->slen,
					            s)) >= 0 &&
					       sc != pc)
						next(m->str, m->slen, &s);
				}
				bit = (rank - 1) * (m->slen + 1) + s;
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
			p++;
			next(m->str, m->slen, &s);
			continue;
		case '[':
			p++;
			if (!match_class(m, &p, next(m->str, m->slen, &s)))
				return false;
			continue;
		case '\\':
			if (++p == m->plen)
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
	unsigned char stack[MEMO_STACK];
	struct match m;
	size_t nstars, bytes;
	bool r;

	m.pat = (const unsigned char *)pat;
	m.plen = plen;
	m.str = (const unsigned char *)str;
	m.slen = slen;
	m.memo = NULL;

	/* Backtracking only matters from the second star on. */
	if ((nstars = count_stars(m.pat, plen)) >= 2 &&
	    slen < SIZE_MAX / 2 / nstars) {
		bytes = (nstars * (slen + 1) + 7) / 8;
		if (bytes <= sizeof(stack))
			m.memo = stack;
		else
			m.memo = malloc(bytes);
		/* Without memory the answer is the same, only slower. */
		if (m.memo != NULL)
			memset(m.memo, 0, bytes);
	}
	r = match_at(&m, 0, 0, 0);
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
