/*
 * comm wire protocol v3: framing and message shapes (docs/protocol.md §1).
 *
 * The framer finds where the first element of the stream list ends
 * without parsing it twice: it walks the bytes once, remembering its
 * position and brace depth between calls, so a message that arrives one
 * byte at a time costs one pass, not one pass per byte.  Only when the
 * element is complete is it handed to the list parser.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commwire.h"

enum {
	FS_SPACE,     /* skipping whitespace before an element */
	FS_BRACE,     /* inside {...}, depth > 0 */
	FS_BRACE_END, /* closing brace seen, need the separator */
	FS_QUOTE,     /* inside "..." */
	FS_QUOTE_END, /* closing quote seen, need the separator */
	FS_BARE,      /* bare word, ends at whitespace */
};

void
comm_framer_init(struct comm_framer *f, size_t max)
{
	memset(f, 0, sizeof *f);
	f->max = max ? max : COMM_DEFAULT_MAX_MESSAGE;
	f->state = FS_SPACE;
}

static void
framer_reset(struct comm_framer *f)
{
	f->pos = f->start = 0;
	f->depth = 0;
	f->state = FS_SPACE;
	f->open1 = f->close1 = 0;
}

/* Thread-local scratch so the hot path does not allocate per message. */
static __thread struct tbuf scratch_elem;

/*
 * The element buf[start..end) is complete: turn it into the message's
 * words.  A braced element's content is literal, so it is parsed directly;
 * a bare or quoted one is unescaped first (comm never sends those, but the
 * stream is a Tcl list and any element form is legal).
 */
static int
frame_words(const char *buf, size_t start, size_t end, int braced, size_t open1,
    size_t close1, struct tlist *msg, const char **err)
{
	size_t a = start + 1, z = end - 1, q;
	bool plain;

	/*
	 * The usual message, {KIND SERIAL {PAYLOAD}}: the framer saw where
	 * the last element in braces opens and closes.  When the words
	 * before it are plain and only white space follows it, the payload
	 * (all but a few bytes of a big reply) is not scanned a second time.
	 */
	if (braced && open1 > a && close1 > open1 && close1 < z &&
	    tl_isspace((unsigned char)buf[open1 - 1])) {
		plain = true;
		for (q = close1 + 1; q < z; q++) /* white space after it */
			plain = plain && tl_isspace((unsigned char)buf[q]);
		for (q = a; q < open1; q++) /* plain words before it */
			plain = plain && buf[q] != '{' && buf[q] != '}' &&
			        buf[q] != '"' && buf[q] != '\\';
		if (plain)
			return tlist_parse_braced_tail(msg, buf + a, z - a,
			    open1 - a, close1 - a, err);
	}
	if (braced)
		return tlist_parse(msg, buf + start + 1, end - start - 2, err);
	if (tlist_parse(msg, buf + start, end - start, err) == -1)
		return -1;
	if (msg->n != 1) {
		*err = "malformed message element";
		return -1;
	}
	tbuf_reset(&scratch_elem);
	tbuf_add(&scratch_elem, msg->v[0].p, msg->v[0].len);
	if (scratch_elem.failed) {
		*err = TL_NOMEM;
		return -1;
	}
	return tlist_parse(msg, scratch_elem.p, scratch_elem.len, err);
}

static enum comm_frame_status
frame_done(struct comm_framer *f, const char *buf, size_t end, size_t sep,
    int braced, size_t *consumed, struct tlist *msg, const char **err)
{
	size_t start = f->start, open1 = f->open1, close1 = f->close1;

	framer_reset(f);
	if (frame_words(buf, start, end, braced, open1, close1, msg, err) == -1)
		return COMM_FRAME_ERROR;
	*consumed = sep;
	return COMM_FRAME_OK;
}

enum comm_frame_status
comm_frame_next(struct comm_framer *f, const char *buf, size_t len,
    size_t *consumed, struct tlist *msg, const char **err)
{
	static char errbuf[128];
	size_t i = f->pos, lim;
	int c;

	for (; i < len; i++) {
		if (i - f->start >= f->max) {
			snprintf(errbuf, sizeof errbuf,
			    "message longer than the limit of %zu bytes",
			    f->max);
			*err = errbuf;
			framer_reset(f);
			return COMM_FRAME_ERROR;
		}
		c = (unsigned char)buf[i];
		switch (f->state) {
		case FS_SPACE:
			if (tl_isspace(c)) {
				/* Leading separators count against the limit
				 * only until an element starts. */
				continue;
			}
			f->start = i;
			f->open1 = f->close1 = 0;
			if (c == '{') {
				f->state = FS_BRACE;
				f->depth = 1;
			} else if (c == '"')
				f->state = FS_QUOTE;
			else {
				f->state = FS_BARE;
				if (c == '\\')
					i++; /* escaped char belongs to word */
			}
			break;
		case FS_BRACE:
			/* Only braces and backslashes count here (\{ and \} do
			 * not): count them up to the close or the limit. */
			lim = len - f->start > f->max ? f->start + f->max : len;
			i = tl_match_brace_mark(buf, i, lim, &f->depth,
			    &f->open1, &f->close1);
			if (i < lim)
				f->state = FS_BRACE_END; /* i is the '}' */
			else
				i--; /* the loop checks where it stopped */
			break;
		case FS_BRACE_END:
		case FS_QUOTE_END:
			if (!tl_isspace(c)) {
				*err = f->state == FS_BRACE_END
				           ? "message in braces followed by "
				             "garbage "
				             "instead of a line end"
				           : "message in quotes followed by "
				             "garbage "
				             "instead of a line end";
				framer_reset(f);
				return COMM_FRAME_ERROR;
			}
			return frame_done(f, buf, i, i + 1,
			    f->state == FS_BRACE_END, consumed, msg, err);
		case FS_QUOTE:
			if (c == '\\')
				i++;
			else if (c == '"')
				f->state = FS_QUOTE_END;
			break;
		case FS_BARE:
			if (c == '\\')
				i++;
			else if (tl_isspace(c))
				return frame_done(f, buf, i, i + 1, 0, consumed,
				    msg, err);
			break;
		}
	}
	/* A backslash as the last byte skipped past len: look at it again
	 * when more bytes have come. */
	f->pos = i > len ? len - 1 : i;
	if (f->state == FS_SPACE)
		f->pos = f->start = 0; /* caller may keep the spaces; rescan */
	return COMM_FRAME_MORE;
}

enum comm_frame_status
comm_frame_line(struct comm_framer *f, const char *buf, size_t len,
    size_t *consumed, struct tlist *msg, const char **err)
{
	static char errbuf[128];
	const char *lf;
	size_t n = len < f->max ? len : f->max;

	lf = memchr(buf, '\n', n);
	if (lf == NULL) {
		if (len >= f->max) {
			snprintf(errbuf, sizeof errbuf,
			    "first line longer than the limit of %zu bytes",
			    f->max);
			*err = errbuf;
			return COMM_FRAME_ERROR;
		}
		return COMM_FRAME_MORE;
	}
	if (tlist_parse(msg, buf, lf - buf, err) == -1)
		return COMM_FRAME_ERROR;
	*consumed = lf - buf + 1;
	return COMM_FRAME_OK;
}

void
comm_format_hello(struct tbuf *out, int listen_port)
{
	size_t start = out->len;

	tl_append_str(out, start, "3");
	tl_append_int(out, start, listen_port);
	tbuf_addc(out, '\n');
}

void
comm_format_vers(struct tbuf *out, int version)
{
	tbuf_printf(out, "{vers %d}\n", version);
}

/*
 * Why the formatters below write the outer list levels without scanning
 * them: an element quoted by tl_append (as is, in braces, or escaped) is
 * balanced by construction.  Scanned as Tcl does (TclScanElement), its
 * braces never close more than they opened and end even, it holds no
 * backslash-newline and does not end in a lone backslash, and it ends
 * where a backslash sequence ends.  A list of such elements joined by
 * spaces is balanced the same way, and it holds a space, so Tcl_Merge
 * quotes it in braces: "{" LIST "}", whatever the elements are.  Only the
 * one caller-supplied text (the payload, the result) has to be scanned.
 * tests/unit/test_commwire.c checks this against the three-level
 * formatting on random input.
 */

/* "{KIND SERIAL", as [list [list KIND SERIAL ...]] begins; returns
 * where the inner list starts. */
static size_t
message_head(struct tbuf *out, const char *kind, int64_t serial)
{
	size_t inner;
	char *o;

	tbuf_addc(out, '{');
	inner = out->len;
	tl_append_str(out, inner, kind);
	if (!tbuf_reserve(out, 1 + TL_INT_MAX))
		return inner; /* failed: the caller's check sees it */
	o = out->p + out->len;
	*o++ = ' ';
	o += tl_format_int(o, serial);
	*o = '\0';
	out->len = (size_t)(o - out->p);
	return inner;
}

void
comm_format_message(struct tbuf *out, const char *kind, int64_t serial,
    const char *payload, size_t plen)
{
	size_t inner;

	/* comm writes puts $fid [list [list $cmd $ser $payload]]. */
	inner = message_head(out, kind, serial);
	tl_append(out, inner, payload, plen);
	tbuf_add(out, "}\n", 2);
}

static __thread struct tbuf scratch_cmd;

void
comm_format_command(struct tbuf *payload, const char *const *words,
    const size_t *lens, size_t n)
{
	size_t i;

	tbuf_reset(&scratch_cmd);
	for (i = 0; i < n; i++)
		tl_append(&scratch_cmd, 0, words[i],
		    lens ? lens[i] : strlen(words[i]));
	if (scratch_cmd.failed) {
		/* Nothing of a command cut short goes out: the payload
		 * fails too, and its sender sees it. */
		payload->failed = true;
		return;
	}
	tl_append_list(payload, payload->len, scratch_cmd.p, scratch_cmd.len);
}

static void
format_reply(struct tbuf *out, const char *kind, int64_t serial, int code,
    const char *result, size_t rlen, const char *errorcode, bool listed)
{
	void (*append)(struct tbuf *, size_t, const char *, size_t) =
	    listed ? tl_append_list : tl_append;
	size_t script;

	/* The payload is the script "return -code CODE ... RESULT", a list
	 * of quoted words, braced as a whole (see above). */
	message_head(out, kind, serial);
	tbuf_add(out, " {return -code", 14);
	script = out->len - 12; /* at "return" */
	tl_append_int(out, script, code);
	if (code == 1) {
		tl_append_str(out, script, "-errorinfo");
		append(out, script, result, rlen);
		tl_append_str(out, script, "-errorcode");
		tl_append_str(out, script, errorcode ? errorcode : "NONE");
	}
	append(out, script, result, rlen);
	tbuf_add(out, "}}\n", 3);
}

void
comm_format_reply(struct tbuf *out, const char *kind, int64_t serial, int code,
    const char *result, size_t rlen, const char *errorcode)
{
	format_reply(out, kind, serial, code, result, rlen, errorcode, false);
}

void
comm_format_reply_list(struct tbuf *out, const char *kind, int64_t serial,
    int code, const char *result, size_t rlen, const char *errorcode)
{
	format_reply(out, kind, serial, code, result, rlen, errorcode, true);
}

bool
comm_format_reply_parts(struct tbuf *head, struct tbuf *tail, const char *kind,
    int64_t serial, const char *result, size_t rlen)
{
	/* tl_append_list braces such a result as it is: "{" RESULT "}". */
	if (rlen == 0 || memchr(result, ' ', rlen) == NULL)
		return false;
	message_head(head, kind, serial);
	tbuf_add(head, " {return -code 0 {", 18);
	tbuf_add(tail, "}}}\n", 4);
	return true;
}

int
comm_parse_return(const struct tlist *w, int *code, struct tl_elem *result)
{
	size_t i;
	char *end;

	/* return ?-opt value ...? RESULT: an odd count of words after
	 * "return" is options plus the result. */
	if (w->n < 2 || strcmp(w->v[0].p, "return") != 0 || w->n % 2 != 0)
		return -1;
	*code = 0;
	for (i = 1; i + 1 < w->n; i += 2) {
		if (strcmp(w->v[i].p, "-code") != 0)
			continue;
		if (strcmp(w->v[i + 1].p, "ok") == 0)
			*code = 0;
		else if (strcmp(w->v[i + 1].p, "error") == 0)
			*code = 1;
		else {
			*code = (int)strtol(w->v[i + 1].p, &end, 10);
			if (end == w->v[i + 1].p || *end != '\0')
				return -1;
		}
	}
	*result = w->v[w->n - 1];
	return 0;
}

int
comm_payload_command(const char *payload, size_t plen, struct tlist *frags,
    struct tbuf *scratch, struct tlist *words, struct tbuf *err)
{
	/*
	 * comm evaluates [concat [list uplevel #0] $payload]: the payload's
	 * own words are the fragments, uplevel concats them into the
	 * script.  Both levels are parsed with the literal-only rules, so
	 * nothing is ever substituted at either.
	 */
	if (tl_parse_command(frags, payload, plen, err) == -1)
		return -1;
	tbuf_reset(scratch);
	tl_concat(scratch, frags);
	if (scratch->failed) {
		tbuf_reset(err);
		tbuf_adds(err, TL_NOMEM);
		return -1;
	}
	return tl_parse_command(words, scratch->p, scratch->len, err);
}
