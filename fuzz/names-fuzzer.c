/*
 * libFuzzer target for the pure parsers of names and entries: the entry
 * table's serial reader and name rules (engine/registry.c), strict UTF-8
 * (wire/utf8.c), the quoting of a peer's words (wire/tbuf.c),
 * Commreg/Register's options (local/handlers.c), federation's rules for
 * names (gateway/fedname.c) and the client library's entry dicts
 * (lib/client.c).
 *
 * The first byte picks the function (and a few flags); the rest is its
 * argument.  What a function takes with a length is given a buffer of
 * exactly that length, so that ASan sees a read past it; what it takes
 * as a C string is given a NUL-terminated copy.  Each function's answer
 * is checked against what its documentation promises, mostly by a small
 * independent version of the rule written here.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commreg.h"
#include "fedname.h"
#include "gwconf.h"
#include "handlers.h"
#include "registry.h"
#include "tbuf.h"
#include "tcllist.h"
#include "tclmatch.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum mode {
	M_SERIAL,
	M_UTF8,
	M_QUOTE,
	M_NAME,
	M_REGISTER,
	M_ENTRY,
	M_ENTRIES,
	M_WELL_FORMED,
	M_EXPORTABLE,
	NMODES
};

#define SERIAL_MAX 100000 /* the registry's (registry.c) */
#define MAX_LINES  8

/* ---- buffers ------------------------------------------------------------ */

/* Exactly n bytes, no NUL after them. */
static char *
copy_exact(const uint8_t *p, size_t n)
{
	char *s;

	if ((s = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(s, p, n);
	return s;
}

static char *
copy_str(const uint8_t *p, size_t n)
{
	char *s;

	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The input's lines as C strings (a missing one is ""); returns how many
 * lines there were. */
static size_t
split_lines(const uint8_t *p, size_t n, char **v, size_t max)
{
	const uint8_t *nl;
	size_t i, k = 0;

	for (i = 0; i < max; i++) {
		if (n == 0) {
			v[i] = copy_str(p, 0);
			continue;
		}
		k++;
		nl = memchr(p, '\n', n);
		if (nl == NULL || i + 1 == max) {
			v[i] = copy_str(p, nl != NULL ? (size_t)(nl - p) : n);
			n = 0;
			continue;
		}
		v[i] = copy_str(p, (size_t)(nl - p));
		n -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	return k;
}

static void
free_lines(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
}

static bool
has_control(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] == 0x7f)
			return true;
	return false;
}

/* ---- references --------------------------------------------------------- */

/*
 * RFC 3629's table of well-formed sequences (its section 4), byte
 * ranges rather than decoding: the length of the one at p[0..n), or 0.
 */
static size_t
ref_utf8_len(const unsigned char *p, size_t n)
{
	static const struct {
		unsigned char lo0, hi0, lo1, hi1;
		size_t len;
	} t[] = {
	    {0x00, 0x7f, 0, 0, 1},
	    {0xc2, 0xdf, 0x80, 0xbf, 2},
	    {0xe0, 0xe0, 0xa0, 0xbf, 3},
	    {0xe1, 0xec, 0x80, 0xbf, 3},
	    {0xed, 0xed, 0x80, 0x9f, 3},
	    {0xee, 0xef, 0x80, 0xbf, 3},
	    {0xf0, 0xf0, 0x90, 0xbf, 4},
	    {0xf1, 0xf3, 0x80, 0xbf, 4},
	    {0xf4, 0xf4, 0x80, 0x8f, 4},
	};
	size_t i, j;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (p[0] < t[i].lo0 || p[0] > t[i].hi0)
			continue;
		if (t[i].len == 1)
			return 1;
		if (n < t[i].len || p[1] < t[i].lo1 || p[1] > t[i].hi1)
			return 0;
		for (j = 2; j < t[i].len; j++)
			if (p[j] < 0x80 || p[j] > 0xbf)
				return 0;
		return t[i].len;
	}
	return 0;
}

static bool
ref_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if ((k = ref_utf8_len(p + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

/*
 * "base #N": the last " #" of the name, only digits after it, no
 * leading zero, N from 2 to SERIAL_MAX, a base of a byte or more.  The
 * base's length and *serial, or len and 1.
 */
static size_t
ref_split_serial(const char *s, size_t len, int *serial)
{
	size_t at = len, i;
	long v = 0;

	*serial = 1;
	for (i = len; i >= 2; i--) {
		if (s[i - 2] == ' ' && s[i - 1] == '#') {
			at = i - 2;
			break;
		}
	}
	if (at == len || at == 0 || at + 2 == len || s[at + 2] == '0' ||
	    len - (at + 2) > 6)
		return len;
	for (i = at + 2; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return len;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 2 || v > SERIAL_MAX)
		return len;
	*serial = (int)v;
	return at;
}

/* Is who a whole word of the space-separated path? */
static bool
ref_has_word(const char *path, const char *who)
{
	const char *p = path, *sp;
	size_t n;

	for (;;) {
		sp = strchr(p, ' ');
		n = sp != NULL ? (size_t)(sp - p) : strlen(p);
		if (n == strlen(who) && strncmp(p, who, n) == 0)
			return true;
		if (sp == NULL)
			return false;
		p = sp + 1;
	}
}

/* ---- the checks --------------------------------------------------------- */

static void
check_serial(const uint8_t *p, size_t n)
{
	char *s = copy_exact(p, n);
	int serial, want;
	size_t base;

	base = registry_split_serial(s, n, &serial);
	if (base > n || base != ref_split_serial(s, n, &want) || serial != want)
		abort();
	if (base == n && serial != 1)
		abort();
	if (base < n) {
		char tail[16];
		int k = snprintf(tail, sizeof tail, " #%d", serial);

		if (serial < 2 || serial > SERIAL_MAX || base == 0 ||
		    n - base != (size_t)k || memcmp(s + base, tail, k) != 0)
			abort();
	}
	free(s);
}

static void
check_utf8(const uint8_t *p, size_t n)
{
	char *s = copy_exact(p, n);
	size_t i;

	if (utf8_valid(s, n) != ref_utf8_valid(s, n))
		abort();
	for (i = 0; i < n; i++)
		if (utf8_char_len((const unsigned char *)s + i, n - i) !=
		    ref_utf8_len((const unsigned char *)s + i, n - i))
			abort();
	free(s);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The quoted form must give back the bytes it quotes, and say how many
 * it left out. */
static void
check_quote(const uint8_t *p, size_t n, bool prefix)
{
	char *s = copy_exact(p, n), more[48];
	struct tbuf b;
	size_t start, i, j = 0, shown = n > TBUF_QUOTE_MAX ? TBUF_QUOTE_MAX : n;
	const char *q;
	int hi, lo;

	tbuf_init(&b);
	if (prefix)
		tbuf_adds(&b, "name ");
	start = b.len;
	tbuf_add_quoted(&b, s, n);
	q = b.p + start;
	if (b.len - start > TBUF_QUOTE_MAX * 4 + 40 ||
	    has_control(q, b.len - start) || q[0] != '"' ||
	    strlen(b.p) != b.len)
		abort();
	for (i = 1; i < b.len - start && q[i] != '"'; i++, j++) {
		char c = q[i];

		if (c == '\\') {
			if (++i == b.len - start)
				abort();
			switch (q[i]) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case '"':
			case '\\':
				c = q[i];
				break;
			case 'x':
				if (i + 2 >= b.len - start ||
				    (hi = hexval(q[i + 1])) == -1 ||
				    (lo = hexval(q[i + 2])) == -1)
					abort();
				c = (char)(hi * 16 + lo);
				i += 2;
				break;
			default:
				abort();
			}
		}
		if (j >= shown || s[j] != c)
			abort();
	}
	if (i == b.len - start || j != shown)
		abort();
	if (n > shown)
		snprintf(more, sizeof more, " (%zu bytes more)", n - shown);
	else
		more[0] = '\0';
	if (strcmp(q + i + 1, more) != 0)
		abort();
	tbuf_free(&b);
	free(s);
}

static void
check_name(const uint8_t *p, size_t n, bool nns)
{
	char *s = copy_exact(p, n);
	struct tbuf err;
	bool ok, want;
	size_t i;
	int serial;

	tbuf_init(&err);
	ok = registry_check_name(s, n, nns, &err) == 0;
	if (ok != (err.len == 0) || has_control(err.p, err.len))
		abort();
	want = n > 0 && n <= REG_NAME_MAX && ref_utf8_valid(s, n) &&
	       !has_control(s, n);
	/* Nor C1 controls, U+0080 to U+009F. */
	for (i = 0; want && i + 1 < n; i++)
		if ((unsigned char)s[i] == 0xc2 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			want = false;
	if (want && !nns &&
	    (memchr(s, '@', n) != NULL || ref_split_serial(s, n, &serial) != n))
		want = false;
	if (ok != want)
		abort();
	tbuf_free(&err);
	free(s);
}

static void
check_register(const uint8_t *p, size_t n)
{
	char *s = copy_exact(p, n);
	struct reg_request r;
	struct tlist w;
	struct tbuf err;
	const char *why;
	int rc;

	tlist_init(&w);
	tbuf_init(&err);
	/* The engine has counted the words against the row: a name and a
	 * port at least. */
	if (tlist_parse(&w, s, n, &why) == 0 && w.n >= 3) {
		rc = handlers_register_parse(&w, &r, &err);
		if (rc == -1) {
			if (err.len == 0 || has_control(err.p, err.len))
				abort();
		} else if (rc != 0 || err.len != 0 || r.name != w.v[1].p ||
		           r.namelen != w.v[1].len || r.port < 1 ||
		           r.port > 65535 || r.host == NULL ||
		           strlen(r.host) > 255 ||
		           strpbrk(r.host, " \t\r\n{}\"\\") != NULL ||
		           r.serial < 0 || r.serial > 1000000 || r.pid < 0 ||
		           (r.data == NULL && r.datalen != 0) ||
		           (r.scope != NULL &&
		               (r.scope < w.v || r.scope >= w.v + w.n)))
			abort();
	}
	tlist_free(&w);
	tbuf_free(&err);
	free(s);
}

static void
check_entry_fields(const struct commreg_entry *e)
{
	if (e->name == NULL || e->name[0] == '\0' || e->base == NULL ||
	    e->host == NULL || e->data == NULL || e->scope == NULL ||
	    e->user == NULL || e->path == NULL || e->port < 0 ||
	    e->port > 65535)
		abort();
}

static void
check_entry(const uint8_t *p, size_t n)
{
	char *s = copy_exact(p, n), *err;
	struct commreg_entry e;
	size_t errlen = 48;

	/* A small message buffer of its own: a reason longer than it must
	 * be cut, not written past it. */
	if ((err = malloc(errlen)) == NULL)
		abort();
	memset(&e, 0, sizeof e);
	if (commreg_entry_parse(s, n, &e, err, errlen) == 0) {
		check_entry_fields(&e);
		commreg_entry_clear(&e);
	} else if (memchr(err, '\0', errlen) == NULL || err[0] == '\0')
		abort();
	free(err);
	free(s);
}

static void
check_entries(const uint8_t *p, size_t n)
{
	char *s = copy_exact(p, n), err[256];
	struct commreg_entry *v = NULL;
	size_t nv = 12345, i;

	if (commreg_entries_parse(s, n, &v, &nv, err, sizeof err) == 0) {
		if (nv > 0 && v == NULL)
			abort();
		for (i = 0; i < nv; i++)
			check_entry_fields(&v[i]);
		commreg_entries_free(v, nv);
	} else if (v != NULL || nv != 0 || err[0] == '\0')
		abort();
	free(s);
}

/*
 * NAME@USER@ORIGIN from peer_name with path: the parts non-empty, no
 * third '@', ORIGIN the path's first word and not us, the path's last
 * word the remote.  self and peer_name are never empty (a gateway's
 * certificate names it; a [remote]'s peer_name is one word).
 */
static void
check_well_formed(const uint8_t *p, size_t n)
{
	char *l[4];
	const char *self, *peer, *name, *path, *at1, *at2, *sp, *last;
	size_t olen;
	bool got, want;

	split_lines(p, n, l, 4);
	self = l[0];
	peer = l[1];
	name = l[2];
	path = l[3];
	if (self[0] == '\0' || peer[0] == '\0') {
		free_lines(l, 4);
		return;
	}
	got = fedname_well_formed(self, peer, name, path);
	want = false;
	at1 = strchr(name, '@');
	at2 = at1 != NULL ? strchr(at1 + 1, '@') : NULL;
	if (at2 != NULL && strchr(at2 + 1, '@') == NULL && at1 > name &&
	    at2 > at1 + 1 && at2[1] != '\0') {
		sp = strchr(path, ' ');
		olen = sp != NULL ? (size_t)(sp - path) : strlen(path);
		last = strrchr(path, ' ');
		last = last != NULL ? last + 1 : path;
		want = strlen(at2 + 1) == olen &&
		       memcmp(at2 + 1, path, olen) == 0 &&
		       strcmp(at2 + 1, self) != 0 && strcmp(last, peer) == 0;
	}
	if (got != want)
		abort();
	if (got) {
		/* Exactly two '@', and the path ends with the remote. */
		size_t ats = 0, pl = strlen(path), ql = strlen(peer);
		const char *c;

		for (c = name; *c != '\0'; c++)
			ats += *c == '@';
		if (ats != 2 || pl < ql || strcmp(path + pl - ql, peer) != 0 ||
		    (pl > ql && path[pl - ql - 1] != ' '))
			abort();
	}
	free_lines(l, 4);
}

/*
 * Lines: self, the remote's peer_name, the entry's name, its path, then
 * the remote's export patterns.  Flags: reexport, and the entry's scope.
 * A gateway's name is one word, never empty: a path is made of them.
 */
static void
check_exportable(const uint8_t *p, size_t n, unsigned flags)
{
	char *l[MAX_LINES];
	struct gwconf_remote r;
	struct reg_entry e;
	size_t nl, i, app;
	bool got, want;

	nl = split_lines(p, n, l, MAX_LINES);
	if (l[0][0] == '\0' || l[1][0] == '\0' || strchr(l[0], ' ') != NULL ||
	    strchr(l[1], ' ') != NULL) {
		free_lines(l, MAX_LINES);
		return;
	}
	memset(&r, 0, sizeof r);
	r.peer_name = l[1];
	r.exports = &l[4];
	r.nexports = nl > 4 ? nl - 4 : 0;
	r.reexport = flags & 1;
	memset(&e, 0, sizeof e);
	e.name = l[2];
	e.namelen = (uint32_t)strlen(l[2]);
	e.base = l[2];
	e.baselen = e.namelen;
	e.host = "";
	e.data = "";
	e.path = l[3];
	e.scope = (uint8_t)((flags >> 1) & 3);

	got = fedname_exportable(l[0], &r, &e);
	app = strcspn(e.name, "@");
	want = false;
	for (i = 0; i < r.nexports; i++)
		if (tcl_string_match(r.exports[i], strlen(r.exports[i]), e.name,
		        app))
			want = true;
	if (e.scope != REG_SCOPE_GLOBAL)
		want = false;
	if (e.path[0] != '\0' &&
	    (!r.reexport || ref_has_word(e.path, r.peer_name) ||
	        ref_has_word(e.path, l[0])))
		want = false;
	if (got != want)
		abort();
	free_lines(l, MAX_LINES);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned flags;

	if (size == 0)
		return 0;
	flags = data[0] / NMODES;
	switch (data[0] % NMODES) {
	case M_SERIAL:
		check_serial(data + 1, size - 1);
		break;
	case M_UTF8:
		check_utf8(data + 1, size - 1);
		break;
	case M_QUOTE:
		check_quote(data + 1, size - 1, flags & 1);
		break;
	case M_NAME:
		check_name(data + 1, size - 1, flags & 1);
		break;
	case M_REGISTER:
		check_register(data + 1, size - 1);
		break;
	case M_ENTRY:
		check_entry(data + 1, size - 1);
		break;
	case M_ENTRIES:
		check_entries(data + 1, size - 1);
		break;
	case M_WELL_FORMED:
		check_well_formed(data + 1, size - 1);
		break;
	case M_EXPORTABLE:
		check_exportable(data + 1, size - 1, flags);
		break;
	}
	return 0;
}
