/*
 * Tcl lists and literal commands, with Tcl's exact rules.
 *
 * Everything on a comm link is a Tcl list (docs/protocol.md §1): the stream
 * of messages, each message, each payload.  This module is the only place
 * that knows Tcl's quoting.  It is checked against a real tclsh by the
 * differential test in tests/unit/tcllist_diff.test.tcl.
 *
 * Parsing follows Tcl_SplitList (TclFindElement / TclCopyAndCollapse):
 * elements separated by Tcl whitespace (space, \t, \n, \v, \f, \r), braced
 * elements taken literally, quoted and bare elements with every backslash
 * sequence substituted.  Formatting follows Tcl_Merge (TclScanElement /
 * TclConvertElement) so that tclsh prints the same string for the same
 * elements, and the result re-parses to the same elements.
 */
#ifndef WIRE_TCLLIST_H
#define WIRE_TCLLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "tbuf.h"

/* One element: p points into the owning tlist's storage, NUL-terminated,
 * but len is authoritative (elements may contain NUL). */
struct tl_elem {
	const char *p;
	size_t len;
};

struct tlist {
	struct tl_elem *v;
	size_t n;
	size_t cap;
	struct tbuf store; /* unescaped element bytes */
};

void tlist_init(struct tlist *);
void tlist_free(struct tlist *);

/*
 * Split s[0..len) into elements as Tcl_SplitList does.  The tlist is reset
 * first and its memory reused.  On error returns -1, sets *err to Tcl's own
 * message ("unmatched open brace in list", "unmatched open quote in list",
 * "list element in braces followed by \"x\" instead of space", ...; or
 * TL_NOMEM) and leaves n == 0.
 */
int tlist_parse(struct tlist *, const char *s, size_t len, const char **err);
/* The error of a parse that could not get memory (with the library's
 * policy, tbuf.h): *err, or the text in err, of every parser. */
#define TL_NOMEM "out of memory"

/*
 * Append one element to the list being built in out, quoted as Tcl_Merge
 * would quote it.  list_start is the offset in out where this list began:
 * when out->len > list_start a single space is written first; when the
 * element is the first one, a leading '#' is quoted as Tcl does.
 */
void tl_append(struct tbuf *out, size_t list_start, const char *s, size_t len);
void tl_append_str(struct tbuf *out, size_t list_start, const char *s);
void tl_append_int(struct tbuf *out, size_t list_start, long long v);

/*
 * tl_append for s[0..len) known to be a list that tl_append wrote (a tbuf
 * whose listed == len, see tbuf.h).  Same output, but such a list is
 * balanced by construction, so when it holds a space it is braced
 * without a scan.  Given anything else it may quote wrongly.
 */
void tl_append_list(struct tbuf *out, size_t list_start, const char *s,
    size_t len);

/*
 * An integer as Tcl writes it (decimal, '-' when negative), into buf,
 * which has room for TL_INT_MAX bytes; no NUL.  Returns the length.
 * Such a string never needs quoting in a list.
 */
#define TL_INT_MAX 24
size_t tl_format_int(char *buf, long long v);

/*
 * Inside braces, as TclFindElement counts them: from s[i], with *depth
 * braces open, find the '}' that closes the last one; a backslash makes
 * the byte after it not count.  Returns its index (and *depth 0), or,
 * when s[i..len) does not close them, where the scan stopped with *depth
 * updated: len, or len + 1 when s[len - 1] is a backslash (the byte it
 * escapes is still to come).  64 bytes per step where SSE2 is available.
 */
size_t tl_match_brace(const char *s, size_t i, size_t len, int *depth);
/* The same, and *open1 / *close1 set to the index of every '{' that takes
 * the depth from 1 to 2 and every '}' that takes it from 2 to 1 (so they
 * end as the last ones). */
size_t tl_match_brace_mark(const char *s, size_t i, size_t len, int *depth,
    size_t *open1, size_t *close1);

/*
 * tlist_parse(s, len) for a caller who knows that s[open] opens a braced
 * element whose matching brace is s[close], that only white space follows
 * it, and that s[0..open) holds no brace, quote or backslash and ends in
 * white space: s[0..open) is parsed, the element's bytes are taken
 * without a scan.
 */
int tlist_parse_braced_tail(struct tlist *, const char *s, size_t len,
    size_t open, size_t close, const char **err);

/*
 * Parse script[0..len) as exactly one Tcl command made of literal words
 * (Tcl's script rules: braces, double quotes, backslash sequences including
 * backslash-newline, '#' comments, ';' and newline as command separators).
 * Anything that Tcl would substitute or evaluate is refused, never run:
 * "$..." variable substitution, "[...]" command substitution, "{*}"
 * expansion, a second command.  On refusal returns -1 and writes a message
 * for the peer into err (reset first).  An empty script or a comment gives
 * 0 words.
 */
int tl_parse_command(struct tlist *, const char *script, size_t len,
    struct tbuf *err);

/* Tcl's [concat]: trim Tcl whitespace from each element, skip empty ones,
 * join with one space.  Appends to out. */
void tl_concat(struct tbuf *out, const struct tlist *);

/* Tcl's whitespace for list parsing. */
static inline bool
tl_isspace(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	       c == '\r';
}

#endif
