/*
 * Tcl lists and literal commands with Tcl 8.6's exact rules (tcllist.h).
 *
 * The functions below follow Tcl 8.6.13's generic/tclUtil.c
 * (TclFindElement, TclCopyAndCollapse, TclScanElement, TclConvertElement,
 * Tcl_Concat) and generic/tclParse.c (TclParseBackslash, ParseWhiteSpace,
 * ParseComment, Tcl_ParseCommand, Tcl_ParseBraces) closely enough that the
 * differential test (tests/unit/tcllist_diff.test.tcl) can demand
 * byte-identical results from a real tclsh.
 *
 * Bytes, not Tcl's internal strings: Tcl holds NUL as C0 80 and characters
 * beyond U+FFFF as UTF-16 surrogate pairs, and writes them to a utf-8
 * socket as 00 and as the 4-byte sequence.  We work on the wire bytes, so
 * a 0 byte is an ordinary character, and where Tcl 8.6's internal form
 * shows through on the wire (backslash escapes beyond the BMP, the byte
 * limit of an error message) we reproduce what a tclsh peer would send.
 *
 * Memory: a parse reserves the tlist's store once (unescaped text is
 * never longer than its source plus one NUL per element) and writes the
 * elements into it, so elements cost no allocation of their own.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tbuf.h"
#include "tcllist.h"

/* Scans go 16 or 64 bytes at a time where the compiler offers SSE2
 * (every x86-64); TCLLIST_NO_SIMD builds the portable loops alone, to
 * test them. */
#if defined(__SSE2__) && !defined(TCLLIST_NO_SIMD)
#define TL_SIMD 1
#include <emmintrin.h>
#endif

/* A decoded backslash sequence (TclParseBackslash). */
struct bsq {
	size_t len;  /* bytes read, backslash included */
	uint32_t cp; /* the character (BSQ_CHAR, BSQ_UNI) */
	int how;
};
#define BSQ_CHAR 0 /* emit cp */
#define BSQ_UNI  1 /* emit cp; from \u, \U: may pair */
#define BSQ_RAW  2 /* copy the bytes after the backslash */

/* Output state of one element being unescaped. */
struct emit {
	char *o;
	bool hi; /* last written: a high surrogate from \u */
};

#define REFUSE_TAIL ": the registry takes literal commands only"

static void tlist_reset(struct tlist *);
static int tlist_push(struct tlist *, const char *, size_t);
static size_t utf8_seqlen(const unsigned char *, size_t);
static char *utf8_put(char *, uint32_t);
static size_t parse_hex(const char *, size_t, uint32_t *);
static void bs_scan(const char *, size_t, struct bsq *);
static void emit_bs(struct emit *, const char *, const struct bsq *);
static char *collapse(char *, const char *, size_t);
static void junk_message(struct tlist *, const char *, const char *,
    const char *, const char **);
static int find_element(struct tlist *, const char *, size_t, size_t *,
    const char **);
static int scan_element(const char *, size_t, bool);
static bool script_space(int);
static size_t skip_ws(const char *, size_t, size_t);
static size_t skip_comments(const char *, size_t, size_t);
static int refuse(struct tbuf *, const char *);
static bool brace_in_comment(const char *, size_t, size_t);
static int parse_bare(struct emit *, const char *, size_t, size_t *,
    struct tbuf *);
static int parse_quoted(struct emit *, const char *, size_t, size_t *,
    struct tbuf *);
static int parse_braced(struct emit *, const char *, size_t, size_t *,
    struct tbuf *);
static int parse_words(struct tlist *, struct emit *, const char *, size_t,
    size_t *, struct tbuf *);

void
tlist_init(struct tlist *l)
{
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
	tbuf_init(&l->store);
}

void
tlist_free(struct tlist *l)
{
	free(l->v);
	tbuf_free(&l->store);
	tlist_init(l);
}

static void
tlist_reset(struct tlist *l)
{
	l->n = 0;
	tbuf_reset(&l->store);
}

/* Record an element already written into the store; -1 when there is no
 * memory for it (tbuf_oom: the daemons end there). */
static int
tlist_push(struct tlist *l, const char *p, size_t len)
{
	struct tl_elem *nv;
	size_t ncap;

	if (l->n == l->cap) {
		ncap = l->cap == 0 ? 16 : l->cap * 2;
		if (ncap > SIZE_MAX / sizeof(*nv) ||
		    (nv = realloc(l->v, ncap * sizeof(*nv))) == NULL) {
			tbuf_oom("tlist: out of memory");
			return -1;
		}
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n].p = p;
	l->v[l->n].len = len;
	l->n++;
	return 0;
}

/*
 * Length of the UTF-8 sequence at s, or 0 when s does not start one.  Like
 * Tcl we take 3-byte encodings of surrogates as characters: that is how
 * Tcl 8.6 itself writes an unpaired surrogate.
 */
static size_t
utf8_seqlen(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		return s[0] == 0xe0 && s[1] < 0xa0 ? 0 : 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) ||
		    (s[0] == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

/* Tcl_UniCharToUtf for cp <= 0x10FFFF; NUL is a plain 0 on the wire. */
static char *
utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80)
		*o++ = (char)cp;
	else if (cp < 0x800) {
		*o++ = (char)(0xc0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/*
 * TclParseHex: at most max hex digits; like Tcl 8.6.13 it stops before a
 * digit that would take the value past 0x10FFFF ("\U110000" is "\U11000"
 * followed by "0").
 */
static size_t
parse_hex(const char *s, size_t max, uint32_t *v)
{
	size_t i;
	uint32_t r = 0;
	int c;

	for (i = 0; i < max; i++) {
		c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			break;
		if (r > 0x10fff)
			break;
		r = (r << 4) | (uint32_t)c;
	}
	*v = r;
	return i;
}

/* TclParseBackslash: s[0] is a backslash, n >= 1 bytes are available. */
static void
bs_scan(const char *s, size_t n, struct bsq *b)
{
	size_t k;
	int c;

	b->how = BSQ_CHAR;
	b->len = 2;
	if (n == 1) {
		/* A lone backslash at the end stays a backslash. */
		b->cp = '\\';
		b->len = 1;
		return;
	}
	switch (c = (unsigned char)s[1]) {
	case 'a':
		b->cp = 0x7;
		return;
	case 'b':
		b->cp = 0x8;
		return;
	case 'f':
		b->cp = 0xc;
		return;
	case 'n':
		b->cp = 0xa;
		return;
	case 'r':
		b->cp = 0xd;
		return;
	case 't':
		b->cp = 0x9;
		return;
	case 'v':
		b->cp = 0xb;
		return;
	case 'x':
		/* Tcl 8.6: at most two hex digits. */
		k = parse_hex(s + 2, n > 3 ? 2 : n - 2, &b->cp);
		b->len += k;
		if (k == 0)
			b->cp = 'x';
		return;
	case 'u':
		k = parse_hex(s + 2, n > 5 ? 4 : n - 2, &b->cp);
		b->len += k;
		if (k == 0)
			b->cp = 'u';
		else
			b->how = BSQ_UNI;
		return;
	case 'U':
		k = parse_hex(s + 2, n > 9 ? 8 : n - 2, &b->cp);
		b->len += k;
		if (k == 0)
			b->cp = 'U';
		else if (b->cp > 0xffff) {
			/*
			 * Tcl 8.6 (TCL_UTF_MAX 3) cannot hold this character:
			 * a tclsh peer writes U+FFFD for it.
			 */
			b->cp = 0xfffd;
		} else
			b->how = BSQ_UNI;
		return;
	case '\n':
		/* Backslash-newline and the spaces and tabs after it. */
		while (b->len < n && (s[b->len] == ' ' || s[b->len] == '\t'))
			b->len++;
		b->cp = ' ';
		return;
	}
	if (c >= '0' && c <= '7') {
		/* \o, \oo, \ooo; a third digit only while the value fits. */
		b->cp = (uint32_t)(c - '0');
		if (n == 2 || s[2] < '0' || s[2] > '7')
			return;
		b->cp = (b->cp << 3) + (uint32_t)(s[2] - '0');
		b->len = 3;
		if (n == 3 || s[3] < '0' || s[3] > '7' || b->cp >= 0x20)
			return;
		b->cp = ((b->cp << 3) + (uint32_t)(s[3] - '0')) & 0xff;
		b->len = 4;
		return;
	}
	/*
	 * Any other character stands for itself.  Tcl 8.6 reads only the
	 * first half of a character beyond the BMP here, and a tclsh peer
	 * ends up writing U+FFFD for the whole thing.
	 */
	k = utf8_seqlen((const unsigned char *)s + 1, n - 1);
	if (k == 4) {
		b->cp = 0xfffd;
		b->len = 5;
		return;
	}
	b->how = BSQ_RAW;
	b->len = 1 + (k == 0 ? 1 : k);
}

/*
 * Write a backslash sequence.  Tcl 8.6 keeps \uD83D\uDE00 as two UTF-16
 * halves and a tclsh writes them to a socket as one 4-byte character, so a
 * high surrogate written by an escape joins a low one that follows it.
 */
static void
emit_bs(struct emit *e, const char *s, const struct bsq *b)
{
	const unsigned char *h;
	uint32_t hi;

	switch (b->how) {
	case BSQ_RAW:
		memcpy(e->o, s + 1, b->len - 1);
		e->o += b->len - 1;
		e->hi = false;
		return;
	case BSQ_UNI:
		if (e->hi && b->cp >= 0xdc00 && b->cp <= 0xdfff) {
			h = (const unsigned char *)e->o - 3;
			hi = ((uint32_t)(h[0] & 0x0f) << 12) |
			     ((uint32_t)(h[1] & 0x3f) << 6) | (h[2] & 0x3f);
			e->o = utf8_put(e->o - 3,
			    0x10000 + ((hi - 0xd800) << 10) + (b->cp - 0xdc00));
			e->hi = false;
			return;
		}
		e->o = utf8_put(e->o, b->cp);
		e->hi = b->cp >= 0xd800 && b->cp <= 0xdbff;
		return;
	default:
		e->o = utf8_put(e->o, b->cp);
		e->hi = false;
		return;
	}
}

/* TclCopyAndCollapse: copy s[0..n) to o with backslash substitution. */
static char *
collapse(char *o, const char *s, size_t n)
{
	struct emit e = {o, false};
	struct bsq b;
	const char *bs;
	size_t i = 0;

	while (i < n) {
		if ((bs = memchr(s + i, '\\', n - i)) == NULL) {
			memcpy(e.o, s + i, n - i);
			e.o += n - i;
			break;
		}
		if (bs > s + i) {
			memcpy(e.o, s + i, (size_t)(bs - (s + i)));
			e.o += bs - (s + i);
			e.hi = false;
		}
		i = (size_t)(bs - s);
		bs_scan(s + i, n - i, &b);
		emit_bs(&e, s + i, &b);
		i += b.len;
	}
	return e.o;
}

/*
 * "list element in braces followed by "X" instead of space".  Tcl shows at
 * most 20 bytes of its internal form (a character beyond the BMP is 6
 * there: two 3-byte surrogates) and a character cut by that limit
 * disappears, except that a whole high surrogate survives alone.  Our
 * message is a C string, so X stops early at a NUL byte, where Tcl's
 * would hold the NUL.
 */
static void
junk_message(struct tlist *l, const char *what, const char *p,
    const char *limit, const char **err)
{
	const unsigned char *q = (const unsigned char *)p;
	const unsigned char *lim = (const unsigned char *)limit;
	struct tbuf *m = &l->store;
	size_t used = 0, k, ik;
	uint32_t cp;
	char hi[4]; /* a surrogate is 3 bytes; room for any */

	tbuf_reset(m);
	tbuf_printf(m, "list element in %s followed by \"", what);
	while (q < lim && !tl_isspace(*q) && *q != '\0' && used < 20) {
		if ((k = utf8_seqlen(q, (size_t)(lim - q))) == 0) {
			/* Invalid byte: Tcl holds it as a 2-byte char. */
			k = 1;
			ik = *q >= 0x80 ? 2 : 1;
		} else if (k == 4)
			ik = 6;
		else
			ik = k;
		if (used + ik > 20) {
			if (k == 4 && used + 3 <= 20) {
				cp = (uint32_t)(q[0] & 0x07) << 18 |
				     (uint32_t)(q[1] & 0x3f) << 12 |
				     (uint32_t)(q[2] & 0x3f) << 6 |
				     (q[3] & 0x3f);
				utf8_put(hi, 0xd800 + ((cp - 0x10000) >> 10));
				tbuf_add(m, hi, 3);
			}
			break;
		}
		tbuf_add(m, q, k);
		q += k;
		used += ik;
	}
	tbuf_adds(m, "\" instead of space");
	*err = m->failed ? TL_NOMEM : m->p;
}

/*
 * TclFindElement and TclCopyAndCollapse: find the element at *pos, append
 * it to the list, move *pos past the whitespace after it.  Returns 1 for
 * an element, 0 at the end of the string, -1 with *err set.
 */
static int
find_element(struct tlist *l, const char *s, size_t len, size_t *pos,
    const char **err)
{
	struct bsq b;
	size_t p = *pos, start, size;
	int braces = 0;
	bool quotes = false, literal = true;
	char *o, *end;

	while (p < len && tl_isspace((unsigned char)s[p]))
		p++;
	if (p == len)
		return 0;
	if (s[p] == '{') {
		braces = 1;
		p++;
	} else if (s[p] == '"') {
		quotes = true;
		p++;
	}
	start = p;
	if (braces != 0) {
		/* In braces only braces and backslashes count. */
		if ((p = tl_match_brace(s, p, len, &braces)) >= len) {
			*err = "unmatched open brace in list";
			return -1;
		}
		size = p - start;
		if (++p < len && !tl_isspace((unsigned char)s[p])) {
			junk_message(l, "braces", s + p, s + len, err);
			return -1;
		}
		goto done;
	}
	for (;; p++) {
		if (p == len) {
			if (braces != 0) {
				*err = "unmatched open brace in list";
				return -1;
			}
			if (quotes) {
				*err = "unmatched open quote in list";
				return -1;
			}
			size = p - start;
			break;
		}
		switch (s[p]) {
		case '{':
			if (braces != 0)
				braces++;
			continue;
		case '}':
			if (braces == 0 || --braces != 0)
				continue;
			size = p - start;
			if (++p < len && !tl_isspace((unsigned char)s[p])) {
				junk_message(l, "braces", s + p, s + len, err);
				return -1;
			}
			goto done;
		case '\\':
			/* Skip the sequence: "\{" does not count as a brace. */
			if (braces == 0)
				literal = false;
			bs_scan(s + p, len - p, &b);
			p += b.len - 1;
			continue;
		case '"':
			if (!quotes)
				continue;
			size = p - start;
			if (++p < len && !tl_isspace((unsigned char)s[p])) {
				junk_message(l, "quotes", s + p, s + len, err);
				return -1;
			}
			goto done;
		default:
			if (tl_isspace((unsigned char)s[p]) && braces == 0 &&
			    !quotes) {
				size = p - start;
				goto done;
			}
			continue;
		}
	}
done:
	while (p < len && tl_isspace((unsigned char)s[p]))
		p++;
	*pos = p;

	o = l->store.p + l->store.len;
	if (literal) {
		memcpy(o, s + start, size);
		end = o + size;
	} else
		end = collapse(o, s + start, size);
	*end = '\0';
	if (tlist_push(l, o, (size_t)(end - o)) == -1) {
		*err = TL_NOMEM;
		return -1;
	}
	l->store.len += (size_t)(end - o) + 1;
	return 1;
}

int
tlist_parse(struct tlist *l, const char *s, size_t len, const char **err)
{
	size_t pos = 0;
	int r;

	tlist_reset(l);
	/* Unescaping never grows text; +1 per element pays for the NULs. */
	if (!tbuf_reserve(&l->store, len + 1)) {
		*err = TL_NOMEM;
		return -1;
	}
	while ((r = find_element(l, s, len, &pos, err)) == 1)
		;
	if (r < 0) {
		l->n = 0;
		return -1;
	}
	l->store.p[l->store.len] = '\0';
	return 0;
}

int
tlist_parse_braced_tail(struct tlist *l, const char *s, size_t len, size_t open,
    size_t close, const char **err)
{
	size_t pos = 0;
	int r;
	char *o;

	tlist_reset(l);
	if (!tbuf_reserve(&l->store, len + 1)) {
		*err = TL_NOMEM;
		return -1;
	}
	while ((r = find_element(l, s, open, &pos, err)) == 1)
		;
	if (r < 0) {
		l->n = 0;
		return -1;
	}
	/* The braced element's bytes, literal. */
	o = l->store.p + l->store.len;
	memcpy(o, s + open + 1, close - open - 1);
	o[close - open - 1] = '\0';
	if (tlist_push(l, o, close - open - 1) == -1) {
		l->n = 0;
		*err = TL_NOMEM;
		return -1;
	}
	l->store.len += close - open;
	l->store.p[l->store.len] = '\0';
	return 0;
}

/*
 * Formatting: TclScanElement chooses one of four ways to write an element,
 * TclConvertElement writes it.  CONV_MASK is Tcl's historical mode for
 * elements that need quoting only because of ']' or '"': escape the
 * specials but not the braces (a{b]c}d -> a{b\]c}d).
 */
#define CONV_NONE   0
#define CONV_BRACE  1
#define CONV_ESCAPE 2
#define CONV_MASK   3

/*
 * Bytes that matter to TclScanElement.  SE_BRACEQ bytes make an element
 * need quoting and prefer braces; SE_MASKQ bytes (']' and '"') need
 * quoting and prefer backslashes.  Once braces are preferred, only '{',
 * '}' and '\' can still change the outcome.
 */
#define SE_OPEN   1
#define SE_CLOSE  2
#define SE_BS     3
#define SE_MASKQ  4
#define SE_BRACEQ 5

static const unsigned char se_class[256] = {
    ['{'] = SE_OPEN,
    ['}'] = SE_CLOSE,
    ['\\'] = SE_BS,
    [']'] = SE_MASKQ,
    ['"'] = SE_MASKQ,
    ['['] = SE_BRACEQ,
    ['$'] = SE_BRACEQ,
    [';'] = SE_BRACEQ,
    [' '] = SE_BRACEQ,
    ['\f'] = SE_BRACEQ,
    ['\n'] = SE_BRACEQ,
    ['\r'] = SE_BRACEQ,
    ['\t'] = SE_BRACEQ,
    ['\v'] = SE_BRACEQ,
};

#ifdef TL_SIMD
static inline __m128i
eq8(__m128i v, char c)
{
	return _mm_cmpeq_epi8(v, _mm_set1_epi8(c));
}

/* Bits set in x, without the library call that __builtin_popcountll
 * becomes where the CPU baseline has no POPCNT. */
static inline int
pop64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (int)((x * 0x0101010101010101ULL) >> 56);
}

/* Bit k of *o, *c, *b set where p[k] is '{', '}', '\'; n is 16 or 64. */
static inline void
brace_bits(const char *p, size_t n, uint64_t *o, uint64_t *c, uint64_t *b)
{
	__m128i v;
	size_t k;

	*o = *c = *b = 0;
	for (k = 0; k < n; k += 16) {
		v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
		*o |= (uint64_t)(unsigned)_mm_movemask_epi8(eq8(v, '{')) << k;
		*c |= (uint64_t)(unsigned)_mm_movemask_epi8(eq8(v, '}')) << k;
		*b |= (uint64_t)(unsigned)_mm_movemask_epi8(eq8(v, '\\')) << k;
	}
}

/* Bytes by class, one bit per byte: braces and backslashes
 * (SE_OPEN..SE_BS), SE_BRACEQ and SE_MASKQ. */
struct se_masks {
	unsigned brace, braceq, maskq;
};

static inline void
se_classify_v(__m128i v, struct se_masks *m)
{
	/* \t \n \v \f \r are 9..13: v - 9 <= 4, unsigned. */
	__m128i t = _mm_sub_epi8(v, _mm_set1_epi8(9));
	__m128i ws = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(4)), t);

	m->brace = (unsigned)_mm_movemask_epi8(
	    _mm_or_si128(_mm_or_si128(eq8(v, '{'), eq8(v, '}')), eq8(v, '\\')));
	m->braceq = (unsigned)_mm_movemask_epi8(
	    _mm_or_si128(_mm_or_si128(_mm_or_si128(eq8(v, ' '), eq8(v, '[')),
	                     _mm_or_si128(eq8(v, '$'), eq8(v, ';'))),
	        ws));
	m->maskq =
	    (unsigned)_mm_movemask_epi8(_mm_or_si128(eq8(v, ']'), eq8(v, '"')));
}

/*
 * The n <= 16 bytes at p.  Shorter than a block, they are read in two
 * overlapping halves (the first and the last 8 or 4 bytes) into registers,
 * the overlap shifted out: never past the end, and without the stall of
 * storing a padded copy and loading it at once.  Lanes past n are NUL,
 * which is no special.
 */
static inline void
se_classify(const char *p, size_t n, struct se_masks *m)
{
	uint64_t a8, b8;
	uint32_t a4, b4;

	if (n == 16) {
		se_classify_v(_mm_loadu_si128((const __m128i *)(const void *)p),
		    m);
		return;
	}
	if (n > 8) {
		memcpy(&a8, p, 8);
		memcpy(&b8, p + n - 8, 8);
		b8 >>= 8 * (16 - n); /* keep bytes 8..n-1 */
	} else if (n >= 4) {
		memcpy(&a4, p, 4);
		memcpy(&b4, p + n - 4, 4);
		a8 = a4 | ((uint64_t)b4 >> (8 * (8 - n))) << 32;
		b8 = 0;
	} else {
		a8 = (unsigned char)p[0];
		if (n > 1)
			a8 |= (uint64_t)(unsigned char)p[1] << 8;
		if (n > 2)
			a8 |= (uint64_t)(unsigned char)p[2] << 16;
		b8 = 0;
	}
	se_classify_v(_mm_set_epi64x((long long)b8, (long long)a8), m);
}
#endif

/*
 * Brace counting, 64 (or at the end 16) bytes at a time.  In a block
 * without a backslash the braces are all that counts: deeper than the
 * block is long, nothing in it can close the element, and only the counts
 * matter; otherwise its braces are taken one by one from the bit masks.  A
 * block with a backslash goes byte by byte, as does the tail.
 */
#ifdef TL_SIMD
static inline size_t
simd_block(size_t left)
{
	return left >= 64 ? 64 : left >= 16 ? 16 : 0;
}
#endif

/* With track, *open1 and *close1 follow the last '{' that took the depth
 * from 1 to 2 and the last '}' that took it from 2 to 1. */
static inline size_t
match_brace(const char *s, size_t i, size_t len, int *depth, bool track,
    size_t *open1, size_t *close1)
{
	int d = *depth, c;
	size_t stop;
#ifdef TL_SIMD
	uint64_t o, cl, b, bits;
	size_t n;
	int k;
#endif

	while (i < len) {
		stop = len;
#ifdef TL_SIMD
		if ((n = simd_block(len - i)) != 0) {
			brace_bits(s + i, n, &o, &cl, &b);
			if (b == 0) {
				/* (Tracking: not even down to 1.) */
				if (d > (int)n + (track ? 1 : 0))
					d += pop64(o) - pop64(cl);
				else {
					for (bits = o | cl; bits != 0;
					     bits &= bits - 1) {
						k = __builtin_ctzll(bits);
						d += (int)(o >> k & 1) * 2 - 1;
						if (track && d == 2 &&
						    (o >> k & 1))
							*open1 = i + (size_t)k;
						if (track && d == 1)
							*close1 = i + (size_t)k;
						if (d == 0) {
							*depth = 0;
							return i + (size_t)k;
						}
					}
				}
				i += n;
				continue;
			}
			stop = i + n;
		}
#endif
		for (; i < stop; i++) {
			c = (unsigned char)s[i];
			if (c == '\\')
				i++; /* "\{" and "\}" do not count */
			else if (c == '{') {
				if (++d == 2 && track)
					*open1 = i;
			} else if (c == '}') {
				if (--d == 0) {
					*depth = 0;
					return i;
				}
				if (d == 1 && track)
					*close1 = i;
			}
		}
	}
	*depth = d;
	return i;
}

size_t
tl_match_brace(const char *s, size_t i, size_t len, int *depth)
{
	return match_brace(s, i, len, depth, false, NULL, NULL);
}

size_t
tl_match_brace_mark(const char *s, size_t i, size_t len, int *depth,
    size_t *open1, size_t *close1)
{
	return match_brace(s, i, len, depth, true, open1, close1);
}

/*
 * The rest of TclScanElement once braces are preferred: from s[i], only
 * the nesting and the backslashes that forbid braces are left to see.
 * Returns false when the element must be escaped (a '}' closing more than
 * was opened, a final backslash, a backslash-newline), else true with
 * *nest the final depth.
 */
static bool
scan_nest(const char *s, size_t i, size_t len, long *nest)
{
	long d = *nest;
	size_t stop;
#ifdef TL_SIMD
	uint64_t o, c, b, bits;
	size_t n;
#endif

	while (i < len) {
		stop = len;
#ifdef TL_SIMD
		if ((n = simd_block(len - i)) != 0) {
			brace_bits(s + i, n, &o, &c, &b);
			if (b == 0) {
				if (d >= (long)n)
					d += pop64(o) - pop64(c);
				else {
					for (bits = o | c; bits != 0;
					     bits &= bits - 1) {
						d +=
						    (long)(o >> __builtin_ctzll(
						                    bits) &
						           1) *
						        2 -
						    1;
						if (d < 0)
							return false;
					}
				}
				i += n;
				continue;
			}
			stop = i + n;
		}
#endif
		for (; i < stop; i++) {
			switch (s[i]) {
			case '{':
				d++;
				break;
			case '}':
				if (--d < 0)
					return false;
				break;
			case '\\':
				if (i + 1 == len || s[i + 1] == '\n')
					return false;
				if (s[i + 1] == '{' || s[i + 1] == '}' ||
				    s[i + 1] == '\\')
					i++;
				break;
			}
		}
	}
	*nest = d;
	return true;
}

/*
 * TclScanElement.  A final backslash, a backslash-newline or a '}' that
 * closes more than was opened can only be escaped, whatever follows, so
 * they end the scan at once.
 */
static int
scan_element(const char *s, size_t len, bool first)
{
	size_t i = 0;
	long nest = 0;
	bool forbid_none = false, prefer_escape = false, prefer_brace = false;

	if (len == 0)
		return CONV_BRACE;
	if (first && s[0] == '#')
		prefer_brace = true;
	if (s[0] == '{' || s[0] == '"')
		forbid_none = prefer_brace = true;
#ifdef TL_SIMD
	/* 16 bytes at a time up to the first brace or backslash: the bytes
	 * before it only set flags. */
	while (i < len && !prefer_brace) {
		struct se_masks m;
		size_t n = len - i < 16 ? len - i : 16;
		unsigned before;

		se_classify(s + i, n, &m);
		before =
		    m.brace != 0 ? (1u << __builtin_ctz(m.brace)) - 1 : 0xffffu;
		if ((m.braceq & before) != 0)
			forbid_none = prefer_brace = true;
		if ((m.maskq & before) != 0)
			forbid_none = prefer_escape = true;
		if (m.brace != 0) {
			i += (size_t)__builtin_ctz(m.brace);
			break;
		}
		i += n;
	}
#endif
	for (; i < len && !prefer_brace; i++) {
		switch (se_class[(unsigned char)s[i]]) {
		case 0:
			break;
		case SE_OPEN:
			nest++;
			break;
		case SE_CLOSE:
			if (--nest < 0)
				return CONV_ESCAPE;
			break;
		case SE_MASKQ:
			forbid_none = prefer_escape = true;
			break;
		case SE_BRACEQ:
			forbid_none = prefer_brace = true;
			break;
		default: /* SE_BS */
			/* A final backslash or backslash-newline cannot be
			 * braced: both would change meaning. */
			if (i + 1 == len || s[i + 1] == '\n')
				return CONV_ESCAPE;
			if (s[i + 1] == '{' || s[i + 1] == '}' ||
			    s[i + 1] == '\\')
				i++;
			forbid_none = prefer_brace = true;
			break;
		}
	}
	/* Braces preferred (or the end): only the nesting is left to see. */
	if (!scan_nest(s, i, len, &nest))
		return CONV_ESCAPE;
	if (nest != 0)
		return CONV_ESCAPE;
	if (!forbid_none)
		return CONV_NONE;
	if (prefer_escape && !prefer_brace)
		return CONV_MASK;
	return CONV_BRACE;
}

/* memcpy, but a short element (most are) in two overlapping moves, not
 * a library call. */
static inline char *
copy_bytes(char *o, const char *s, size_t len)
{
	if (len >= 8 && len <= 16) {
		memcpy(o, s, 8);
		memcpy(o + len - 8, s + len - 8, 8);
	} else if (len >= 4 && len < 8) {
		memcpy(o, s, 4);
		memcpy(o + len - 4, s + len - 4, 4);
	} else
		memcpy(o, s, len);
	return o + len;
}

void
tl_append(struct tbuf *out, size_t list_start, const char *s, size_t len)
{
	const char *end = s + len;
	char *o;
	bool first, listed;
	int conv;

	first = out->len <= list_start;
	listed = list_start == 0 && out->listed == out->len;
	conv = -1;
#ifdef TL_SIMD
	if (len - 1 < 16) {
		/* Most elements are short and hold no brace or backslash:
		 * then one look at their bytes decides, as scan_element
		 * would. */
		struct se_masks m;

		se_classify(s, len, &m);
		if (m.brace == 0)
			conv = m.braceq != 0 || s[0] == '"' ||
			               (first && s[0] == '#')
			           ? CONV_BRACE
			       : m.maskq != 0 ? CONV_MASK
			                      : CONV_NONE;
	}
#endif
	if (conv < 0)
		conv = scan_element(s, len, first);
	if (first && len > 0 && s[0] == '#' && conv != CONV_ESCAPE)
		conv = CONV_BRACE; /* [eval] would see a comment */
	/* A space, then the element: as is, in braces, or every byte
	 * escaped at worst. */
	if (!tbuf_reserve(out, 1 + (conv == CONV_NONE       ? len
	                               : conv == CONV_BRACE ? len + 2
	                                                    : 2 * len)))
		return;
	o = out->p + out->len;
	if (!first)
		*o++ = ' ';
	switch (conv) {
	case CONV_NONE:
		o = copy_bytes(o, s, len);
		break;
	case CONV_BRACE:
		*o++ = '{';
		o = copy_bytes(o, s, len);
		*o++ = '}';
		break;
	default:
		if (first && len > 0 && s[0] == '#') {
			/* A leading '#' would make [eval] see a comment. */
			*o++ = '\\';
			*o++ = *s++;
		}
		for (; s < end; s++) {
			switch (*s) {
			case ']':
			case '[':
			case '$':
			case ';':
			case ' ':
			case '\\':
			case '"':
				*o++ = '\\';
				break;
			case '{':
			case '}':
				if (conv == CONV_ESCAPE)
					*o++ = '\\';
				break;
			case '\f':
				*o++ = '\\';
				*o++ = 'f';
				continue;
			case '\n':
				*o++ = '\\';
				*o++ = 'n';
				continue;
			case '\r':
				*o++ = '\\';
				*o++ = 'r';
				continue;
			case '\t':
				*o++ = '\\';
				*o++ = 't';
				continue;
			case '\v':
				*o++ = '\\';
				*o++ = 'v';
				continue;
			}
			*o++ = *s;
		}
		break;
	}
	*o = '\0';
	out->len = (size_t)(o - out->p);
	if (listed)
		out->listed = out->len;
}

/*
 * An element that is itself a list written by tl_append: balanced by
 * construction (commwire.c says why), so when it holds a space Tcl_Merge
 * braces it, and no scan is needed to know.
 */
void
tl_append_list(struct tbuf *out, size_t list_start, const char *s, size_t len)
{
	bool listed = list_start == 0 && out->listed == out->len;
	char *o;

	if (len == 0 || memchr(s, ' ', len) == NULL) {
		tl_append(out, list_start, s, len);
		return;
	}
	if (!tbuf_reserve(out, len + 3))
		return;
	o = out->p + out->len;
	if (out->len > list_start)
		*o++ = ' ';
	*o++ = '{';
	memcpy(o, s, len);
	o += len;
	*o++ = '}';
	*o = '\0';
	out->len = (size_t)(o - out->p);
	if (listed)
		out->listed = out->len;
}

void
tl_append_str(struct tbuf *out, size_t list_start, const char *s)
{
	tl_append(out, list_start, s, strlen(s));
}

size_t
tl_format_int(char *buf, long long v)
{
	unsigned long long u =
	    v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	unsigned long long t = u;
	size_t n = v < 0, k;

	/* Count the digits, then write them from the last one. */
	do {
		n++;
		t /= 10;
	} while (t != 0);
	k = n;
	do {
		buf[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		buf[0] = '-';
	return n;
}

void
tl_append_int(struct tbuf *out, size_t list_start, long long v)
{
	char *o;
	bool listed = list_start == 0 && out->listed == out->len;

	/* Digits and a minus sign never need quoting, even first. */
	if (!tbuf_reserve(out, 1 + TL_INT_MAX))
		return;
	o = out->p + out->len;
	if (out->len > list_start)
		*o++ = ' ';
	o += tl_format_int(o, v);
	*o = '\0';
	out->len = (size_t)(o - out->p);
	if (listed)
		out->listed = out->len;
}

/*
 * Script parsing.  Unlike in a list, newline and ';' end a command, only
 * space, \t, \v, \f and \r separate words (Tcl's TYPE_SPACE), and
 * backslash-newline counts as a separator between words.
 */
static bool
script_space(int c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* ParseWhiteSpace: separators and backslash-newlines from p. */
static size_t
skip_ws(const char *s, size_t len, size_t p)
{
	for (;;) {
		while (p < len && script_space((unsigned char)s[p]))
			p++;
		if (p + 1 < len && s[p] == '\\' && s[p + 1] == '\n') {
			p += 2;
			continue;
		}
		return p;
	}
}

/*
 * ParseComment: white space, newlines and whole comments where a command
 * may start.  In a comment a backslash escapes the next character, so
 * backslash-newline continues the comment on the next line.
 */
static size_t
skip_comments(const char *s, size_t len, size_t p)
{
	struct bsq b;
	size_t q;

	for (;;) {
		p = skip_ws(s, len, p);
		if (p < len && s[p] == '\n') {
			p++;
			continue;
		}
		if (p == len || s[p] != '#')
			return p;
		while (p < len) {
			if (s[p] == '\\') {
				if ((q = skip_ws(s, len, p)) > p)
					p = q;
				else {
					bs_scan(s + p, len - p, &b);
					p += b.len;
				}
			} else if (s[p++] == '\n')
				break;
		}
	}
}

static int
refuse(struct tbuf *err, const char *msg)
{
	tbuf_reset(err);
	tbuf_adds(err, msg);
	return -1;
}

/* The bytes a bare word in a script ends at or treats specially. */
static const bool bare_special[256] = {
    [' '] = true,
    ['\t'] = true,
    ['\v'] = true,
    ['\f'] = true,
    ['\r'] = true,
    ['\n'] = true,
    [';'] = true,
    ['$'] = true,
    ['['] = true,
    ['\\'] = true,
};

/* A bare word: backslash substitution; '$' and '[' refused. */
static int
parse_bare(struct emit *e, const char *s, size_t len, size_t *pos,
    struct tbuf *err)
{
	struct bsq b;
	size_t p = *pos, q;

	while (p < len) {
		/* A run of bytes that stand for themselves, copied at once. */
		for (q = p; q < len && !bare_special[(unsigned char)s[q]]; q++)
			;
		if (q > p) {
			memcpy(e->o, s + p, q - p);
			e->o += q - p;
			e->hi = false;
			p = q;
			if (p == len)
				break;
		}
		switch (s[p]) {
		case ' ':
		case '\t':
		case '\v':
		case '\f':
		case '\r':
		case '\n':
		case ';':
			goto out;
		case '$':
			return refuse(err, "variable substitution is not"
			                   " allowed" REFUSE_TAIL);
		case '[':
			return refuse(err, "command substitution is not"
			                   " allowed" REFUSE_TAIL);
		case '\\':
			/* Backslash-newline separates words. */
			if (p + 1 < len && s[p + 1] == '\n')
				goto out;
			bs_scan(s + p, len - p, &b);
			emit_bs(e, s + p, &b);
			p += b.len;
			break;
		default:
			*e->o++ = s[p++];
			e->hi = false;
			break;
		}
	}
out:
	*pos = p;
	return 0;
}

/* A word in double quotes (Tcl_ParseQuotedString). */
static int
parse_quoted(struct emit *e, const char *s, size_t len, size_t *pos,
    struct tbuf *err)
{
	struct bsq b;
	size_t p = *pos + 1;

	for (;;) {
		if (p == len)
			return refuse(err, "missing \"");
		switch (s[p]) {
		case '"':
			*pos = p + 1;
			return 0;
		case '$':
			return refuse(err, "variable substitution is not"
			                   " allowed" REFUSE_TAIL);
		case '[':
			return refuse(err, "command substitution is not"
			                   " allowed" REFUSE_TAIL);
		case '\\':
			bs_scan(s + p, len - p, &b);
			emit_bs(e, s + p, &b);
			p += b.len;
			break;
		default:
			*e->o++ = s[p++];
			e->hi = false;
			break;
		}
	}
}

/*
 * Tcl_ParseBraces guesses why a brace is missing: scanning back from the
 * end of the script to the open brace, a '#' after white space with a '{'
 * later on its line looks like a brace in a comment, and Tcl says so.
 */
static bool
brace_in_comment(const char *s, size_t open, size_t len)
{
	size_t i;
	bool brace = false;

	for (i = len - 1; i > open; i--) {
		switch (s[i]) {
		case '{':
			brace = true;
			break;
		case '\n':
			brace = false;
			break;
		case '#':
			if (brace && tl_isspace((unsigned char)s[i - 1]))
				return true;
			break;
		}
	}
	return false;
}

/*
 * A word in braces (Tcl_ParseBraces): literal, but in a script (not in a
 * list) backslash-newline and the blanks after it become one space.
 */
static int
parse_braced(struct emit *e, const char *s, size_t len, size_t *pos,
    struct tbuf *err)
{
	struct bsq b;
	size_t p = *pos + 1, level = 1, end;
	int depth = 1;

	/* No backslash up to the close: the word is the bytes as they are. */
	end = tl_match_brace(s, p, len, &depth);
	if (end < len && memchr(s + p, '\\', end - p) == NULL) {
		memcpy(e->o, s + p, end - p);
		e->o += end - p;
		*pos = end + 1;
		return 0;
	}
	for (;;) {
		if (p == len) {
			if (brace_in_comment(s, *pos, len))
				return refuse(err,
				    "missing close-brace:"
				    " possible unbalanced brace in comment");
			return refuse(err, "missing close-brace");
		}
		switch (s[p]) {
		case '{':
			level++;
			break;
		case '}':
			if (--level == 0) {
				*pos = p + 1;
				return 0;
			}
			break;
		case '\\':
			bs_scan(s + p, len - p, &b);
			if (b.len > 1 && s[p + 1] == '\n') {
				*e->o++ = ' ';
				p += b.len;
			} else {
				memcpy(e->o, s + p, b.len);
				e->o += b.len;
				p += b.len;
			}
			continue;
		}
		*e->o++ = s[p++];
	}
}

/*
 * Tcl_ParseCommand for one command at *pos (which is not white space, a
 * separator or a comment): words until ';', newline or the end.
 */
static int
parse_words(struct tlist *l, struct emit *e, const char *s, size_t len,
    size_t *pos, struct tbuf *err)
{
	size_t p = *pos;
	char *w;
	int r;

	for (;;) {
		p = skip_ws(s, len, p);
		if (p == len)
			break;
		if (s[p] == '\n' || s[p] == ';') {
			p++;
			break;
		}
		w = e->o;
		e->hi = false;
		if (s[p] == '"')
			r = parse_quoted(e, s, len, &p, err);
		else if (s[p] == '{')
			r = parse_braced(e, s, len, &p, err);
		else
			r = parse_bare(e, s, len, &p, err);
		if (r != 0)
			return -1;
		*e->o = '\0';
		if (tlist_push(l, w, (size_t)(e->o - w)) == -1)
			return refuse(err, TL_NOMEM);
		e->o++;

		/* After a quoted or braced word: a separator or the end. */
		if (p == len || s[p] == '\n' || s[p] == ';' ||
		    skip_ws(s, len, p) > p)
			continue;
		if (s[p - 1] == '"')
			return refuse(err,
			    "extra characters after close-quote");
		/* {*} followed by a word is Tcl's argument expansion. */
		if (e->o - w == 2 && w[0] == '*')
			return refuse(err, "argument expansion {*} is not"
			                   " allowed" REFUSE_TAIL);
		return refuse(err, "extra characters after close-brace");
	}
	*pos = p;
	return 0;
}

int
tl_parse_command(struct tlist *l, const char *script, size_t len,
    struct tbuf *err)
{
	struct emit e;
	size_t p = 0;
	bool seen = false;

	tlist_reset(l);
	tbuf_reset(err);
	if (!tbuf_reserve(&l->store, len + 1))
		return refuse(err, TL_NOMEM);
	e.o = l->store.p;
	e.hi = false;
	for (;;) {
		p = skip_comments(script, len, p);
		if (p == len)
			break;
		if (script[p] == ';') {
			/* An empty command: harmless, as in Tcl. */
			p++;
			continue;
		}
		if (seen) {
			l->n = 0;
			return refuse(err, "only one command may be sent");
		}
		if (parse_words(l, &e, script, len, &p, err) != 0) {
			l->n = 0;
			return -1;
		}
		seen = true;
	}
	*e.o = '\0';
	l->store.len = (size_t)(e.o - l->store.p);
	return 0;
}

/*
 * Tcl_Concat: trim list white space from both ends of each element, but
 * do not let trimming expose a final backslash (it would escape the
 * joining space); skip what is left empty; join with single spaces.
 */
void
tl_concat(struct tbuf *out, const struct tlist *l)
{
	const char *p;
	size_t i, n, trimr;
	bool sep = false;

	for (i = 0; i < l->n; i++) {
		p = l->v[i].p;
		n = l->v[i].len;
		while (n > 0 && tl_isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		trimr = 0;
		while (n > 0 && tl_isspace((unsigned char)p[n - 1])) {
			n--;
			trimr++;
		}
		if (trimr > 0 && p[n - 1] == '\\')
			n++;
		if (n == 0)
			continue;
		if (sep)
			tbuf_addc(out, ' ');
		tbuf_add(out, p, n);
		sep = true;
	}
}
