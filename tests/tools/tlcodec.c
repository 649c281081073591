/*
 * tlcodec: the C side of the differential test against tclsh
 * (tests/unit/tcllist_diff.test.tcl).  Reads all of stdin, answers on
 * stdout; binary safe.
 *
 * Every string on either side is a record: its length in bytes as decimal
 * digits, a ':', then the bytes (so NUL and LF need no escaping).
 *
 *   tlcodec format    in: "N" then N element records, repeated
 *                     out: one record per list, the list as tl_append
 *                          writes it
 *   tlcodec parse     in: list strings
 *   tlcodec command   in: scripts
 *                     out per input: "ok N" then N element/word records,
 *                          or "error" then the message record
 *   tlcodec concat    in: as for format; out: one record per tl_concat
 *   tlcodec match     in: pattern, string, repeated
 *                     out: one byte per pair, '1' or '0', then LF
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tbuf.h"
#include "tclmatch.h"
#include "tcllist.h"

struct input {
	const char *p;
	size_t len;
	size_t off;
};

static void read_all(struct tbuf *);
static int next_record(struct input *, const char **, size_t *);
static void put_record(const char *, size_t);
static size_t record_count(struct input *);
static void do_format(struct input *, int);
static void do_parse(struct input *, int);
static void do_match(struct input *);

static void
read_all(struct tbuf *b)
{
	size_t n;

	for (;;) {
		tbuf_reserve(b, 65536);
		n = fread(b->p + b->len, 1, b->cap - b->len - 1, stdin);
		b->len += n;
		b->p[b->len] = '\0';
		if (n == 0)
			break;
	}
	if (ferror(stdin))
		fatal("read stdin");
}

/* Returns 0 at the end of input, 1 with a record. */
static int
next_record(struct input *in, const char **p, size_t *len)
{
	size_t n = 0;

	if (in->off == in->len)
		return 0;
	while (
	    in->off < in->len && in->p[in->off] >= '0' && in->p[in->off] <= '9')
		n = n * 10 + (size_t)(in->p[in->off++] - '0');
	if (in->off == in->len || in->p[in->off] != ':' ||
	    n > in->len - in->off - 1)
		fatalx("bad record at byte %zu", in->off);
	in->off++;
	*p = in->p + in->off;
	*len = n;
	in->off += n;
	return 1;
}

static void
put_record(const char *p, size_t len)
{
	printf("%zu:", len);
	if (len > 0 && fwrite(p, 1, len, stdout) != len)
		fatal("write stdout");
}

static size_t
record_count(struct input *in)
{
	const char *p;
	size_t len, i, n = 0;

	if (!next_record(in, &p, &len))
		fatalx("missing element count");
	for (i = 0; i < len; i++)
		n = n * 10 + (size_t)(p[i] - '0');
	return n;
}

/* format (concat == 0) or concat (concat == 1). */
static void
do_format(struct input *in, int concat)
{
	struct tbuf out;
	struct tlist l;
	const char *p;
	size_t n, i, len;

	tbuf_init(&out);
	tlist_init(&l);
	while (in->off < in->len) {
		n = record_count(in);
		tbuf_reset(&out);
		l.n = 0;
		for (i = 0; i < n; i++) {
			if (!next_record(in, &p, &len))
				fatalx("missing element");
			if (!concat) {
				tl_append(&out, 0, p, len);
				continue;
			}
			/* The input buffer does not move: point into it. */
			if (l.n == l.cap) {
				l.cap = l.cap ? 2 * l.cap : 16;
				if ((l.v = realloc(l.v,
				         l.cap * sizeof(*l.v))) == NULL)
					fatal("realloc");
			}
			l.v[l.n].p = p;
			l.v[l.n++].len = len;
		}
		if (concat)
			tl_concat(&out, &l);
		put_record(out.p, out.len);
	}
	tlist_free(&l);
	tbuf_free(&out);
}

/* parse (command == 0) or command (command == 1). */
static void
do_parse(struct input *in, int command)
{
	struct tlist l;
	struct tbuf err;
	const char *p, *msg;
	char head[32];
	size_t len, i;
	int r, n;

	tlist_init(&l);
	tbuf_init(&err);
	while (next_record(in, &p, &len)) {
		if (command) {
			r = tl_parse_command(&l, p, len, &err);
			msg = err.p;
		} else
			r = tlist_parse(&l, p, len, &msg);
		if (r != 0) {
			put_record("error", 5);
			put_record(msg, strlen(msg));
			continue;
		}
		n = snprintf(head, sizeof(head), "ok %zu", l.n);
		put_record(head, (size_t)n);
		for (i = 0; i < l.n; i++)
			put_record(l.v[i].p, l.v[i].len);
	}
	tbuf_free(&err);
	tlist_free(&l);
}

static void
do_match(struct input *in)
{
	const char *pat, *str;
	size_t plen, slen;

	while (next_record(in, &pat, &plen)) {
		if (!next_record(in, &str, &slen))
			fatalx("pattern without string");
		putchar(tcl_string_match(pat, plen, str, slen) ? '1' : '0');
	}
	putchar('\n');
}

int
main(int argc, char *argv[])
{
	struct tbuf all;
	struct input in;

	log_init("tlcodec", LOG_LVL_WARN);
	if (argc != 2) {
		fprintf(stderr, "usage: tlcodec format|parse|command|concat|"
		                "match < records\n");
		return 2;
	}
	tbuf_init(&all);
	read_all(&all);
	in.p = all.p;
	in.len = all.len;
	in.off = 0;
	if (strcmp(argv[1], "format") == 0)
		do_format(&in, 0);
	else if (strcmp(argv[1], "concat") == 0)
		do_format(&in, 1);
	else if (strcmp(argv[1], "parse") == 0)
		do_parse(&in, 0);
	else if (strcmp(argv[1], "command") == 0)
		do_parse(&in, 1);
	else if (strcmp(argv[1], "match") == 0)
		do_match(&in);
	else
		fatalx("unknown mode %s", argv[1]);
	if (fflush(stdout) != 0)
		fatal("write stdout");
	tbuf_free(&all);
	return 0;
}
