/*
 * Unit tests of wire/tcllist.c: Tcl list parsing and formatting, literal
 * command parsing, concat.  Expected values are what tclsh 8.6.13 gives
 * (the differential test tcllist_diff.test.tcl checks the same code
 * against a live tclsh on random input; these pin the edge cases down by
 * name).
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "tbuf.h"
#include "tcllist.h"

/* A string literal as pointer and length: literals may hold NUL. */
#define S(x)                                                                   \
	{                                                                      \
		(x), sizeof(x) - 1                                             \
	}
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Checks report the line of the case, not of the helper. */
#define PARSE_OK(in, ...)                                                      \
	do {                                                                   \
		static const struct tl_elem want_[] = {__VA_ARGS__};           \
		check_parse(__LINE__, in, sizeof(in) - 1, want_,               \
		    NELEM(want_));                                             \
	} while (0)
#define PARSE_NONE(in)     check_parse(__LINE__, in, sizeof(in) - 1, NULL, 0)
#define PARSE_ERR(in, msg) check_parse_err(__LINE__, in, sizeof(in) - 1, msg)
#define FORMAT(want, ...)                                                      \
	do {                                                                   \
		static const struct tl_elem in_[] = {__VA_ARGS__};             \
		check_format(__LINE__, in_, NELEM(in_), want,                  \
		    sizeof(want) - 1);                                         \
	} while (0)
#define CMD_OK(in, ...)                                                        \
	do {                                                                   \
		static const struct tl_elem want_[] = {__VA_ARGS__};           \
		check_cmd(__LINE__, in, sizeof(in) - 1, want_, NELEM(want_));  \
	} while (0)
#define CMD_NONE(in)     check_cmd(__LINE__, in, sizeof(in) - 1, NULL, 0)
#define CMD_ERR(in, msg) check_cmd_err(__LINE__, in, sizeof(in) - 1, msg)
#define CONCAT(want, ...)                                                      \
	do {                                                                   \
		static const struct tl_elem in_[] = {__VA_ARGS__};             \
		check_concat(__LINE__, in_, NELEM(in_), want,                  \
		    sizeof(want) - 1);                                         \
	} while (0)

#define REFUSED ": the registry takes literal commands only"

static struct tlist l;
static struct tbuf buf, err;

static void
check(int line, int ok, const char *what)
{
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what,
	    __FILE__, "", CU_FALSE);
}

static int
same_elems(const struct tlist *t, const struct tl_elem *want, size_t n)
{
	size_t i;

	if (t->n != n)
		return 0;
	for (i = 0; i < n; i++) {
		if (t->v[i].len != want[i].len ||
		    memcmp(t->v[i].p, want[i].p, want[i].len) != 0 ||
		    t->v[i].p[t->v[i].len] != '\0')
			return 0;
	}
	return 1;
}

static void
check_parse(int line, const char *in, size_t len, const struct tl_elem *want,
    size_t n)
{
	const char *e = NULL;
	int r;

	r = tlist_parse(&l, in, len, &e);
	check(line, r == 0, "tlist_parse succeeds");
	check(line, r == 0 && same_elems(&l, want, n), "tlist_parse elements");
}

static void
check_parse_err(int line, const char *in, size_t len, const char *msg)
{
	const char *e = NULL;
	int r;

	r = tlist_parse(&l, in, len, &e);
	check(line, r == -1 && l.n == 0, "tlist_parse fails");
	check(line, r == -1 && e != NULL && strcmp(e, msg) == 0,
	    "tlist_parse error message");
}

static void
check_format(int line, const struct tl_elem *in, size_t n, const char *want,
    size_t wlen)
{
	const char *e;
	size_t i;

	tbuf_reset(&buf);
	for (i = 0; i < n; i++)
		tl_append(&buf, 0, in[i].p, in[i].len);
	check(line,
	    buf.len == wlen && memcmp(buf.p, want, wlen) == 0 &&
	        buf.p[buf.len] == '\0',
	    "tl_append output");
	/* And it must read back as the same elements. */
	check(line,
	    tlist_parse(&l, buf.p, buf.len, &e) == 0 && same_elems(&l, in, n),
	    "tl_append round trip");
}

static void
check_cmd(int line, const char *in, size_t len, const struct tl_elem *want,
    size_t n)
{
	int r;

	tbuf_reset(&err);
	tbuf_adds(&err, "stale");
	r = tl_parse_command(&l, in, len, &err);
	check(line, r == 0, "tl_parse_command succeeds");
	check(line, r == 0 && same_elems(&l, want, n),
	    "tl_parse_command words");
}

static void
check_cmd_err(int line, const char *in, size_t len, const char *msg)
{
	int r;

	tbuf_reset(&err);
	tbuf_adds(&err, "stale text that must go: ");
	r = tl_parse_command(&l, in, len, &err);
	check(line, r == -1 && l.n == 0, "tl_parse_command refuses");
	check(line,
	    r == -1 && strcmp(err.p, msg) == 0 && err.len == strlen(msg),
	    "tl_parse_command message");
}

static void
check_concat(int line, const struct tl_elem *in, size_t n, const char *want,
    size_t wlen)
{
	struct tlist t;

	t.v = (struct tl_elem *)in;
	t.n = t.cap = n;
	tbuf_init(&t.store);
	tbuf_reset(&buf);
	tl_concat(&buf, &t);
	check(line, buf.len == wlen && memcmp(buf.p, want, wlen) == 0,
	    "tl_concat output");
}

/* ------------------------------------------------------------ parsing */

static void
test_parse_basic(void)
{
	PARSE_NONE("");
	PARSE_NONE(" \t\n\v\f\r ");
	PARSE_OK("a", S("a"));
	PARSE_OK("  a  b\tc\nd\re\vf\fg  ", S("a"), S("b"), S("c"), S("d"),
	    S("e"), S("f"), S("g"));
	PARSE_OK("{} \"\" {}", S(""), S(""), S(""));
	PARSE_OK("{a b} \"c d\" e", S("a b"), S("c d"), S("e"));
	/* Unicode white space does not separate. */
	PARSE_OK("a\xc2\xa0"
	         "b",
	    S("a\xc2\xa0"
	      "b"));
	PARSE_OK("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", S("caf\xc3\xa9"),
	    S("\xe4\xb8\xad"), S("\xf0\x9f\x98\x80"));
}

static void
test_parse_braces(void)
{
	PARSE_OK("{a {b c} d}", S("a {b c} d"));
	PARSE_OK("{{{}}}", S("{{}}"));
	/* Literal inside braces: no substitution, backslashes kept. */
	PARSE_OK("{a\\nb $x [y]}", S("a\\nb $x [y]"));
	/* A backslash hides a brace from the count but stays. */
	PARSE_OK("{a\\}b}", S("a\\}b"));
	PARSE_OK("{a\\{b}", S("a\\{b"));
	PARSE_OK("{a\\\\}", S("a\\\\"));
	/* In a list, backslash-newline inside braces is kept as is. */
	PARSE_OK("{a\\\n  b}", S("a\\\n  b"));
	PARSE_OK("{a\nb}", S("a\nb"));
	PARSE_OK("{a\0b} c", S("a\0b"), S("c"));
	/* Quotes mean nothing inside braces, braces mid-word nothing. */
	PARSE_OK("{\"} a{b a\"b", S("\""), S("a{b"), S("a\"b"));
	PARSE_OK("a} }", S("a}"), S("}"));
}

static void
test_parse_quotes(void)
{
	PARSE_OK("\"a b\" c", S("a b"), S("c"));
	PARSE_OK("\"a\\\"b\"", S("a\"b"));
	PARSE_OK("\"{\" \"}\"", S("{"), S("}"));
	PARSE_OK("\"a\nb\"", S("a\nb"));
	PARSE_OK("\"\\x41\\n\"", S("A\n"));
	PARSE_OK("a\"b\" c", S("a\"b\""), S("c"));
}

static void
test_parse_backslash(void)
{
	PARSE_OK("\\a\\b\\f\\n\\r\\t\\v", S("\a\b\f\n\r\t\v"));
	PARSE_OK("a\\ b \\{ \\} \\\" \\\\ \\$", S("a b"), S("{"), S("}"),
	    S("\""), S("\\"), S("$"));
	/* Other characters stand for themselves. */
	PARSE_OK("\\q\\#\\]", S("q#]"));
	PARSE_OK("\\\xc3\xa9", S("\xc3\xa9"));
	/* A trailing lone backslash stays a backslash. */
	PARSE_OK("a\\", S("a\\"));
	PARSE_OK("\\", S("\\"));
	/* Backslash-newline and following blanks: one space. */
	PARSE_OK("a\\\n \t b", S("a b"));
	PARSE_OK("a\\\n", S("a "));
	PARSE_OK("\"a\\\n   b\"", S("a b"));
	/* \x: Tcl 8.6 takes at most two hex digits. */
	PARSE_OK("\\x41\\x4\\xg\\x", S("A\x04xgx"));
	PARSE_OK("\\x414", S("A4"));
	PARSE_OK("\\xff", S("\xc3\xbf"));
	PARSE_OK("\\x00", S("\0"));
	/* Octal: up to three digits, at most \377. */
	PARSE_OK("\\101\\7\\77", S("A\a?"));
	PARSE_OK("\\377", S("\xc3\xbf"));
	PARSE_OK("\\777", S("?7"));
	PARSE_OK("\\400", S(" 0"));
	PARSE_OK("\\0", S("\0"));
	PARSE_OK("\\8", S("8"));
	/* \u: 1 to 4 hex digits, UTF-8 out. */
	PARSE_OK("\\u00e9\\u4e2d\\u41\\u", S("\xc3\xa9\xe4\xb8\xad"
	                                     "Au"));
	PARSE_OK("\\u00e9f", S("\xc3\xa9"
	                       "f"));
	PARSE_OK("\\u0", S("\0"));
	/* \U: up to 8 digits but never past 0x10FFFF. */
	PARSE_OK("\\U41\\U", S("AU"));
	PARSE_OK("\\U0000004142", S("A42"));
	PARSE_OK("\\U110000", S("\xef\xbf\xbd"
	                        "0"));
	/* A NUL byte is an ordinary character, escaped or not. */
	PARSE_OK("a\0b \\\0", S("a\0b"), S("\0"));
}

/*
 * Beyond the BMP, Tcl 8.6 (UTF-16 inside) and a tclsh peer on a socket:
 * \U1F600 and "\😀" come out as U+FFFD, a pair of \u surrogates as the
 * 4-byte character, a lone surrogate as its 3-byte form.
 */
static void
test_parse_nonbmp(void)
{
	PARSE_OK("\\U1F600", S("\xef\xbf\xbd"));
	PARSE_OK("\\U10FFFF", S("\xef\xbf\xbd"));
	PARSE_OK("\\\xf0\x9f\x98\x80"
	         "a",
	    S("\xef\xbf\xbd"
	      "a"));
	PARSE_OK("\\uD83D\\uDE00", S("\xf0\x9f\x98\x80"));
	PARSE_OK("\\U0000D83D\\U0000DE00", S("\xf0\x9f\x98\x80"));
	PARSE_OK("\\uDBFF\\uDFFF", S("\xf4\x8f\xbf\xbf"));
	PARSE_OK("\\uD83D", S("\xed\xa0\xbd"));
	PARSE_OK("\\uDE00\\uD83D", S("\xed\xb8\x80\xed\xa0\xbd"));
	PARSE_OK("\\uD83D\\uD83D\\uDE00", S("\xed\xa0\xbd\xf0\x9f\x98\x80"));
	PARSE_OK("\\uD83Dx\\uDE00", S("\xed\xa0\xbdx\xed\xb8\x80"));
	/* Separate elements never pair. */
	PARSE_OK("\\uD83D \\uDE00", S("\xed\xa0\xbd"), S("\xed\xb8\x80"));
	PARSE_OK("\xf0\x9f\x98\x80", S("\xf0\x9f\x98\x80"));
}

static void
test_parse_errors(void)
{
	PARSE_ERR("{a", "unmatched open brace in list");
	PARSE_ERR("a {b {c}", "unmatched open brace in list");
	PARSE_ERR("{a\\}", "unmatched open brace in list");
	PARSE_ERR("\"a", "unmatched open quote in list");
	PARSE_ERR("a \"b\\\"", "unmatched open quote in list");
	PARSE_ERR("{a}b c",
	    "list element in braces followed by \"b\" instead of space");
	PARSE_ERR("{a}{b}",
	    "list element in braces followed by \"{b}\" instead of space");
	PARSE_ERR("\"a\"b",
	    "list element in quotes followed by \"b\" instead of space");
	PARSE_ERR("\"a\"bcdefghijklmnopqrstuvwxyz0123456789 c",
	    "list element in quotes followed by \"bcdefghijklmnopqrstu\""
	    " instead of space");
	/* 20 bytes of Tcl's form; a character cut by the limit goes. */
	PARSE_ERR("{a}xxxxxxxxxxxxxxxxxx\xc3\xa9z",
	    "list element in braces followed by \"xxxxxxxxxxxxxxxxxx\xc3\xa9\""
	    " instead of space");
	PARSE_ERR("{a}xxxxxxxxxxxxxxxxxxx\xc3\xa9z",
	    "list element in braces followed by \"xxxxxxxxxxxxxxxxxxx\""
	    " instead of space");
	/* 😀 is 6 bytes there; its high half may survive the cut. */
	PARSE_ERR("{a}xxxxxxxxxxxxxx\xf0\x9f\x98\x80z",
	    "list element in braces followed by \"xxxxxxxxxxxxxx"
	    "\xf0\x9f\x98\x80\" instead of space");
	PARSE_ERR("{a}xxxxxxxxxxxxxxx\xf0\x9f\x98\x80z",
	    "list element in braces followed by \"xxxxxxxxxxxxxxx"
	    "\xed\xa0\xbd\" instead of space");
	PARSE_ERR("{a}xxxxxxxxxxxxxxxxxx\xf0\x9f\x98\x80z",
	    "list element in braces followed by \"xxxxxxxxxxxxxxxxxx\""
	    " instead of space");
	/* The message is a C string: it stops at a NUL. */
	PARSE_ERR("{a}b\0c",
	    "list element in braces followed by \"b\" instead of space");
	/* A later good parse works after an error. */
	PARSE_OK("a b", S("a"), S("b"));
}

/* The tlist's memory is reused, and elements stay valid when many. */
static void
test_parse_reuse(void)
{
	struct tbuf in;
	const char *e;
	size_t i;
	int ok = 1;

	tbuf_init(&in);
	for (i = 0; i < 1000; i++)
		tbuf_printf(&in, "{e%zu} \\x41%zu ", i, i);
	CU_ASSERT(tlist_parse(&l, in.p, in.len, &e) == 0);
	CU_ASSERT(l.n == 2000);
	for (i = 0; i < 1000 && l.n == 2000; i++) {
		tbuf_reset(&buf);
		tbuf_printf(&buf, "e%zu", i);
		ok &= l.v[2 * i].len == buf.len &&
		      strcmp(l.v[2 * i].p, buf.p) == 0;
		tbuf_reset(&buf);
		tbuf_printf(&buf, "A%zu", i);
		ok &= strcmp(l.v[2 * i + 1].p, buf.p) == 0;
	}
	CU_ASSERT(ok);
	PARSE_OK("x", S("x"));
	tbuf_free(&in);
}

/* ------------------------------------------------------------ formatting */

static void
test_format(void)
{
	tbuf_reset(&buf);
	tl_append(&buf, 0, "", 0);
	CU_ASSERT(buf.len == 2 && strcmp(buf.p, "{}") == 0);
	FORMAT("{}", S(""));
	FORMAT("a b c", S("a"), S("b"), S("c"));
	FORMAT("{a b} {} {\t}", S("a b"), S(""), S("\t"));
	FORMAT("{\n}", S("\n"));
	FORMAT("{a$b} {[x]} {a;b}", S("a$b"), S("[x]"), S("a;b"));
	FORMAT("caf\xc3\xa9 \xf0\x9f\x98\x80", S("caf\xc3\xa9"),
	    S("\xf0\x9f\x98\x80"));
	/* Leading '#' is quoted in the first element only. */
	FORMAT("{#a} #b", S("#a"), S("#b"));
	FORMAT("{#}", S("#"));
	FORMAT("\\#\\{ #\\{", S("#{"), S("#{"));
	FORMAT("{#a]}", S("#a]"));
	/* Braces when balanced; backslashes when not. */
	FORMAT("{{a}}", S("{a}"));
	FORMAT("\\{", S("{"));
	FORMAT("a\\}", S("a}"));
	FORMAT("\\{a\\ b", S("{a b"));
	FORMAT("{\"}", S("\""));
	FORMAT("{\"a\"}", S("\"a\""));
	/* ']' or '"' alone: Tcl's mixed mode, braces left bare. */
	FORMAT("a\\]", S("a]"));
	FORMAT("a\\\"b", S("a\"b"));
	FORMAT("a{b\\]c}d", S("a{b]c}d"));
	FORMAT("x #{a\\\"b}", S("x"), S("#{a\"b}"));
	/* A final backslash or backslash-newline forces backslashes. */
	FORMAT("\\\\", S("\\"));
	FORMAT("a\\\\", S("a\\"));
	FORMAT("a\\\\\\nb", S("a\\\nb"));
	FORMAT("{a\\nb}", S("a\\nb"));
	FORMAT("{\\{}", S("\\{"));
	FORMAT("\\{\\\\\\ \\n\\t\\r\\v\\f\\$\\[\\]\\;\\\"",
	    S("{\\ \n\t\r\v\f$[];\""));
	FORMAT("{{\\ \n\t\r\v\f$[];\"}}", S("{\\ \n\t\r\v\f$[];\"}"));
	/* NUL is an ordinary character. */
	FORMAT("x\0y {a\0 b}", S("x\0y"), S("a\0 b"));
	/* An element that is itself a list. */
	FORMAT("{a {b c}} d", S("a {b c}"), S("d"));
}

static void
test_format_start(void)
{
	tbuf_reset(&buf);
	tbuf_adds(&buf, "prefix ");
	tl_append(&buf, buf.len, "#x", 2);
	tl_append_str(&buf, 7, "y z");
	tl_append_int(&buf, 7, -42);
	tl_append_int(&buf, 7, 9223372036854775807LL);
	CU_ASSERT_STRING_EQUAL(buf.p, "prefix {#x} {y z} -42 "
	                              "9223372036854775807");

	/* A nested list: the inner one is one element of the outer. */
	tbuf_reset(&buf);
	tl_append_str(&buf, 0, "send");
	tl_append_int(&buf, 0, 8);
	{
		struct tbuf inner;

		tbuf_init(&inner);
		tl_append_str(&inner, 0, "Bind");
		tl_append_str(&inner, 0, "app");
		tl_append_str(&inner, 0, "5555 host");
		tl_append(&buf, 0, inner.p, inner.len);
		tbuf_free(&inner);
	}
	CU_ASSERT_STRING_EQUAL(buf.p, "send 8 {Bind app {5555 host}}");
}

/*
 * The formatter scans 16 bytes at a time; this is the byte-by-byte
 * TclScanElement / TclConvertElement it replaced (itself checked against
 * tclsh), kept as the reference for random strings of every length
 * around the block size.
 */
static int
ref_scan(const char *s, size_t len, int first)
{
	size_t i;
	long nest = 0;
	int forbid_none = 0, require_escape = 0, prefer_escape = 0;
	int prefer_brace = 0;

	if (len == 0)
		return 1;
	if (first && s[0] == '#')
		prefer_brace = 1;
	if (s[0] == '{' || s[0] == '"')
		forbid_none = prefer_brace = 1;
	for (i = 0; i < len; i++) {
		switch (s[i]) {
		case '{':
			nest++;
			break;
		case '}':
			if (--nest < 0)
				require_escape = 1;
			break;
		case ']':
		case '"':
			forbid_none = prefer_escape = 1;
			break;
		case '[':
		case '$':
		case ';':
		case ' ':
		case '\f':
		case '\n':
		case '\r':
		case '\t':
		case '\v':
			forbid_none = prefer_brace = 1;
			break;
		case '\\':
			if (i + 1 == len) {
				require_escape = 1;
				break;
			}
			if (s[i + 1] == '\n') {
				require_escape = 1;
				i++;
				break;
			}
			if (s[i + 1] == '{' || s[i + 1] == '}' ||
			    s[i + 1] == '\\')
				i++;
			forbid_none = prefer_brace = 1;
			break;
		}
	}
	if (nest != 0 || require_escape)
		return 2;
	if (!forbid_none)
		return 0;
	if (prefer_escape && !prefer_brace)
		return 3;
	return 1;
}

static void
ref_append(struct tbuf *out, size_t list_start, const char *s, size_t len)
{
	int first = out->len <= list_start, conv = ref_scan(s, len, first);
	size_t i = 0;

	if (!first)
		tbuf_addc(out, ' ');
	if (first && len > 0 && s[0] == '#') {
		if (conv == 2) {
			tbuf_add(out, "\\#", 2);
			i = 1;
		} else
			conv = 1;
	}
	if (conv == 0) {
		tbuf_add(out, s, len);
		return;
	}
	if (conv == 1) {
		tbuf_addc(out, '{');
		tbuf_add(out, s, len);
		tbuf_addc(out, '}');
		return;
	}
	for (; i < len; i++) {
		const char *esc = strchr("][$; \\\"", s[i]);

		if (s[i] != '\0' && esc != NULL)
			tbuf_addc(out, '\\');
		else if ((s[i] == '{' || s[i] == '}') && conv == 2)
			tbuf_addc(out, '\\');
		else if (s[i] != '\0' && strchr("\f\n\r\t\v", s[i]) != NULL) {
			tbuf_addc(out, '\\');
			tbuf_addc(out,
			    "fnrtv"[strchr("\f\n\r\t\v", s[i]) - "\f\n\r\t\v"]);
			continue;
		}
		tbuf_addc(out, s[i]);
	}
}

static unsigned long rnd_state = 20240611;

static unsigned
rnd(unsigned n)
{
	rnd_state = rnd_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)((rnd_state >> 33) % n);
}

/* A random string, some runs plain, some dense in specials. */
static size_t
rnd_string(char *s, size_t max)
{
	static const char special[] = "{}\\\\\"][$; \t\n\r\v\f#";
	size_t len = rnd(4) == 0 ? rnd(40) : rnd((unsigned)max), i;
	unsigned density = 1 + rnd(30);

	for (i = 0; i < len; i++) {
		if (rnd(density) == 0)
			s[i] = special[rnd(sizeof special - 1)];
		else if (rnd(50) == 0)
			s[i] = (char)rnd(256);
		else
			s[i] = (char)('a' + rnd(26));
	}
	return len;
}

static void
test_format_random(void)
{
	struct tbuf got, want;
	char s[200];
	size_t len, n, bad = 0;
	int k, j;

	tbuf_init(&got);
	tbuf_init(&want);
	for (k = 0; k < 200000; k++) {
		tbuf_reset(&got);
		tbuf_reset(&want);
		/* A short list: the first element gets the '#' rule. */
		n = 1 + rnd(3);
		for (j = 0; j < (int)n; j++) {
			len = rnd_string(s, sizeof s);
			tl_append(&got, 0, s, len);
			ref_append(&want, 0, s, len);
		}
		if (got.len != want.len ||
		    memcmp(got.p, want.p, got.len) != 0 ||
		    got.p[got.len] != '\0') {
			if (bad++ < 5)
				fprintf(stderr, "format differs: [%s] [%s]\n",
				    got.p, want.p);
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	tbuf_free(&got);
	tbuf_free(&want);
}

/* listed follows tl_append, and nothing else; tl_append_list gives what
 * tl_append gives for every list tl_append wrote. */
static void
test_listed(void)
{
	struct tbuf l1, got, want;
	char s[200];
	size_t len, bad = 0;
	int k, j, n;

	tbuf_init(&l1);
	tbuf_init(&got);
	tbuf_init(&want);
	CU_ASSERT_EQUAL(l1.listed, l1.len); /* empty: a list */
	tl_append_str(&l1, 0, "a b");
	tl_append_int(&l1, 0, 7);
	CU_ASSERT_EQUAL(l1.listed, l1.len);
	tbuf_addc(&l1, 'x');
	CU_ASSERT(l1.listed != l1.len);
	tl_append_str(&l1, 0, "c");
	CU_ASSERT(l1.listed != l1.len);
	tbuf_reset(&l1);
	CU_ASSERT_EQUAL(l1.listed, 0);
	tbuf_adds(&l1, "prefix ");
	tl_append_str(&l1, 7, "a"); /* a list, but not from 0 */
	CU_ASSERT(l1.listed != l1.len);
	tbuf_reset(&l1);
	tl_append_str(&l1, 0, "a");
	tl_append_str(&l1, 0, "b");
	tbuf_consume(&l1, 2);
	CU_ASSERT(l1.listed != l1.len);
	tbuf_printf(&l1, "%s", "");
	for (k = 0; k < 100000; k++) {
		tbuf_reset(&l1);
		n = (int)rnd(4);
		for (j = 0; j < n; j++) {
			len = rnd_string(s, sizeof s);
			tl_append(&l1, 0, s, len);
		}
		if (l1.listed != l1.len) {
			bad++;
			continue;
		}
		tbuf_reset(&got);
		tbuf_reset(&want);
		if (rnd(2)) {
			tl_append_str(&got, 0, "x");
			tl_append_str(&want, 0, "x");
		}
		tl_append_list(&got, 0, l1.p, l1.len);
		tl_append(&want, 0, l1.p, l1.len);
		if (got.len != want.len ||
		    memcmp(got.p, want.p, got.len) != 0 ||
		    got.listed != want.listed) {
			if (bad++ < 5)
				fprintf(stderr,
				    "list element differs: [%s] [%s]\n", got.p,
				    want.p);
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	tbuf_free(&l1);
	tbuf_free(&got);
	tbuf_free(&want);
}

static size_t
ref_match(const char *s, size_t i, size_t len, int *depth)
{
	for (; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '{')
			++*depth;
		else if (s[i] == '}' && --*depth == 0)
			return i;
	}
	return i;
}

static void
test_match_brace(void)
{
	char s[200];
	size_t len, i, want, got, bad = 0;
	int k, d0, dw, dg;

	for (k = 0; k < 200000; k++) {
		len = rnd_string(s, sizeof s);
		i = len ? rnd((unsigned)len + 1) : 0;
		d0 = 1 + (int)rnd(k % 2 ? 3 : 30);
		dw = dg = d0;
		want = ref_match(s, i, len, &dw);
		got = tl_match_brace(s, i, len, &dg);
		if (got != want || dg != (want < len ? 0 : dw)) {
			if (bad++ < 5)
				fprintf(stderr,
				    "match_brace from %zu depth %d in "
				    "%zu bytes: %zu/%d, want %zu/%d\n",
				    i, d0, len, got, dg, want, dw);
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
}

static void
test_format_int(void)
{
	static const long long v[] = {0, 1, -1, 9, 10, -10, 99, 100, 12345,
	    2147483647LL, -2147483648LL, 9223372036854775807LL,
	    -9223372036854775807LL - 1};
	char got[TL_INT_MAX + 1], want[32];
	size_t i, n;

	for (i = 0; i < NELEM(v); i++) {
		n = tl_format_int(got, v[i]);
		got[n] = '\0';
		snprintf(want, sizeof want, "%lld", v[i]);
		CU_ASSERT_STRING_EQUAL(got, want);
		tbuf_reset(&buf);
		tl_append_int(&buf, 0, v[i]);
		tl_append_int(&buf, 0, v[i]);
		CU_ASSERT_EQUAL(buf.len, 2 * n + 1);
		CU_ASSERT(buf.p[buf.len] == '\0');
	}
}

/* ------------------------------------------------------------ commands */

static void
test_command(void)
{
	CMD_NONE("");
	CMD_NONE("  \t\n\n ");
	CMD_NONE("# just a comment");
	CMD_NONE("# comment \\\n continued\n  # another\n");
	CMD_NONE(";;\n;");
	CMD_OK("Search *", S("Search"), S("*"));
	CMD_OK("  Search   *  ", S("Search"), S("*"));
	CMD_OK("Bind app {5555 host}", S("Bind"), S("app"), S("5555 host"));
	CMD_OK("a \"b c\" {d e} f\\ g", S("a"), S("b c"), S("d e"), S("f g"));
	CMD_OK("{} \"\"", S(""), S(""));
	CMD_OK("a\tb\vc\fd\re", S("a"), S("b"), S("c"), S("d"), S("e"));
	/* Braces are literal, except backslash-newline: one space. */
	CMD_OK("a {b $x [y] \\n}", S("a"), S("b $x [y] \\n"));
	CMD_OK("a {b\\\n   \tc}", S("a"), S("b c"));
	CMD_OK("a {b\\\\\nc}", S("a"), S("b\\\\\nc"));
	CMD_OK("a {{b} \\}}", S("a"), S("{b} \\}"));
	/* Quotes and bare words get backslash substitution. */
	CMD_OK("a \"b\\n\\x41\\\"\"", S("a"), S("b\nA\""));
	CMD_OK("a \"b\\\n   c\"", S("a"), S("b c"));
	CMD_OK("a \"b\nc;d\"", S("a"), S("b\nc;d"));
	CMD_OK("a \\$x \\[y\\] \\{", S("a"), S("$x"), S("[y]"), S("{"));
	CMD_OK("a b\\;c", S("a"), S("b;c"));
	/* Backslash-newline separates words. */
	CMD_OK("a\\\nb", S("a"), S("b"));
	CMD_OK("a \\\n  b", S("a"), S("b"));
	/* Mid-word braces and quotes are literal; ']' too. */
	CMD_OK("a b{c d\"e f]", S("a"), S("b{c"), S("d\"e"), S("f]"));
	/* '#' starts a comment only where a command starts. */
	CMD_OK("a #b", S("a"), S("#b"));
	CMD_OK("# c\nSearch *", S("Search"), S("*"));
	CMD_OK("# c \\\n Search *\nSearch x", S("Search"), S("x"));
	CMD_OK("a;", S("a"));
	CMD_OK("a\n", S("a"));
	CMD_OK("a ;\n# done\n", S("a"));
	CMD_OK(";a", S("a"));
	/* {*} followed by a separator is the word "*". */
	CMD_OK("a {*} b", S("a"), S("*"), S("b"));
	CMD_OK("a {*}", S("a"), S("*"));
	CMD_OK("a {*};", S("a"), S("*"));
	/* NUL and non-ASCII are ordinary. */
	CMD_OK("a\0b \"c\0\" {\0}", S("a\0b"), S("c\0"), S("\0"));
	CMD_OK("Commreg/Register caf\xc3\xa9 \\u00e9", S("Commreg/Register"),
	    S("caf\xc3\xa9"), S("\xc3\xa9"));
	CMD_OK("a \\uD83D\\uDE00", S("a"), S("\xf0\x9f\x98\x80"));
	CMD_OK("a b\\", S("a"), S("b\\"));
}

static void
test_command_refused(void)
{
	CMD_ERR("a $x", "variable substitution is not allowed" REFUSED);
	CMD_ERR("a b$", "variable substitution is not allowed" REFUSED);
	CMD_ERR("a \"b $x\"", "variable substitution is not allowed" REFUSED);
	CMD_ERR("a [b]", "command substitution is not allowed" REFUSED);
	CMD_ERR("a x[b]", "command substitution is not allowed" REFUSED);
	CMD_ERR("a \"[b]\"", "command substitution is not allowed" REFUSED);
	CMD_ERR("a {*}b", "argument expansion {*} is not allowed" REFUSED);
	CMD_ERR("a {*}{b c}", "argument expansion {*} is not allowed" REFUSED);
	CMD_ERR("a {*}\"b\"", "argument expansion {*} is not allowed" REFUSED);
	CMD_ERR("{*}$x", "argument expansion {*} is not allowed" REFUSED);
	CMD_ERR("a; b", "only one command may be sent");
	CMD_ERR("a\nb", "only one command may be sent");
	CMD_ERR("a\n# c\nb", "only one command may be sent");
	CMD_ERR("a;{", "only one command may be sent");
}

static void
test_command_syntax(void)
{
	CMD_ERR("a {b", "missing close-brace");
	CMD_ERR("a {b\\}", "missing close-brace");
	CMD_ERR("a {b\n # x {\n", "missing close-brace:"
	                          " possible unbalanced brace in comment");
	CMD_ERR("a \"b", "missing \"");
	CMD_ERR("a \"b\\\"", "missing \"");
	CMD_ERR("a \"b\"c", "extra characters after close-quote");
	CMD_ERR("a {b}c", "extra characters after close-brace");
	CMD_ERR("a {b}\"c\"", "extra characters after close-brace");
	CMD_ERR("a {**}b", "extra characters after close-brace");
}

/* ------------------------------------------------------------ concat */

static void
test_concat(void)
{
	CONCAT("", S(""), S("  "), S("\t\n"));
	CONCAT("a b", S("a"), S("b"));
	CONCAT("a b c", S("  a "), S("\tb\n"), S(""), S("c\r\v\f"));
	CONCAT("{a b} c", S("{a b}"), S("c"));
	CONCAT("a b c d", S("a b"), S("c d"));
	/* Trimming must not expose a final backslash. */
	CONCAT("a\\  b", S("a\\ "), S("b"));
	CONCAT("a\\\t b", S("a\\\t\t"), S("b"));
	CONCAT("a\\ b", S("a\\"), S("b"));
	/* Only list white space is trimmed. */
	CONCAT("\xc2\xa0"
	       "a \0",
	    S("\xc2\xa0"
	      "a"),
	    S("\0"));
	/* The comm payload of nameserv's Bind: one fragment. */
	CONCAT("Bind app {5555 host}", S("Bind app {5555 host}"));
	/* No elements: nothing appended; otherwise no leading space. */
	tbuf_reset(&buf);
	tbuf_adds(&buf, "x");
	l.n = 0;
	tl_concat(&buf, &l);
	CU_ASSERT_STRING_EQUAL(buf.p, "x");
	CU_ASSERT(tlist_parse(&l, "y", 1, &(const char *){NULL}) == 0);
	tl_concat(&buf, &l);
	CU_ASSERT_STRING_EQUAL(buf.p, "xy");
}

int
main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
	    {"parse: basics", test_parse_basic},
	    {"parse: braces", test_parse_braces},
	    {"parse: quotes", test_parse_quotes},
	    {"parse: every backslash sequence", test_parse_backslash},
	    {"parse: beyond the BMP", test_parse_nonbmp},
	    {"parse: errors", test_parse_errors},
	    {"parse: memory reuse", test_parse_reuse},
	    {"format: Tcl_Merge quoting", test_format},
	    {"format: list_start and nesting", test_format_start},
	    {"format: random strings against the byte-wise scan",
	        test_format_random},
	    {"parse: tl_match_brace", test_match_brace},
	    {"format: listed, tl_append_list", test_listed},
	    {"format: integers", test_format_int},
	    {"command: literal words", test_command},
	    {"command: refusals", test_command_refused},
	    {"command: Tcl syntax errors", test_command_syntax},
	    {"concat", test_concat},
	};
	CU_pSuite suite;
	size_t i;
	unsigned failures, error;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if ((suite = CU_add_suite("tcllist", NULL, NULL)) == NULL)
		return 1;
	for (i = 0; i < NELEM(tests); i++) {
		if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL)
			return 1;
	}
	tlist_init(&l);
	tbuf_init(&buf);
	tbuf_init(&err);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	error = CU_get_error();
	CU_cleanup_registry();
	tlist_free(&l);
	tbuf_free(&buf);
	tbuf_free(&err);
	return failures || error ? 1 : 0;
}
