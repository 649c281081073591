/*
 * What commreg shows a person: whatever a registry says (names, hosts,
 * a Bind's data) reaches a terminal only escaped, and a table's cells
 * are Tcl list elements, so that a name with spaces ("foo #2", or one
 * made to look like more columns) stays one cell and a row of the table
 * reads back as a Tcl list.  Times are ISO 8601 in UTC, the same on
 * every machine and in every log.
 */
#define _GNU_SOURCE /* uselocale, newlocale */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "cli.h"
#include "log.h"
#include "tbuf.h"
#include "tcllist.h"
#include "utf8.h"

/*
 * Anything that is not printable on a terminal (control characters,
 * escapes, C1 codes, bytes that are not UTF-8) is shown as \xNN, and a
 * backslash as \\, so no name can forge a line or move the cursor.
 */
char *
shown(const char *in)
{
	const unsigned char *p = (const unsigned char *)in;
	struct tbuf b;
	size_t i, n, len = strlen(in);
	char *out;

	tbuf_init(&b);
	for (i = 0; i < len; i += n) {
		n = utf8_char_len(p + i, len - i);
		if (n > 1 && !(p[i] == 0xc2 && p[i + 1] < 0xa0)) {
			tbuf_add(&b, p + i, n);
			continue;
		}
		n = 1;
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			tbuf_addc(&b, (char)p[i]);
		else if (p[i] == '\\')
			tbuf_adds(&b, "\\\\");
		else
			tbuf_printf(&b, "\\x%02x", p[i]);
	}
	if ((out = strdup(b.len > 0 ? b.p : "")) == NULL)
		fatal("strdup");
	tbuf_free(&b);
	return out;
}

/* A table cell: the shown text as one Tcl list element ({foo #2}). */
char *
shown_cell(const char *in)
{
	char *s = shown(in), *out;
	struct tbuf b;

	tbuf_init(&b);
	tl_append_str(&b, 0, s);
	free(s);
	if ((out = strdup(b.len > 0 ? b.p : "")) == NULL)
		fatal("strdup");
	tbuf_free(&b);
	return out;
}

/*
 * Columns on a terminal: a wide character takes two, a combining one
 * none.  Counted in C.UTF-8 whatever the caller's locale (the text is
 * UTF-8 by now); where that locale is missing, one per character.
 */
int
shown_width(const char *s)
{
	static locale_t utf8;
	static int tried;
	locale_t old;
	mbstate_t st;
	wchar_t wc;
	size_t n, len = strlen(s);
	int w = 0, cw;

	if (!tried) {
		tried = 1;
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	}
	if (utf8 == (locale_t)0) {
		for (; *s != '\0'; s++)
			if (((unsigned char)*s & 0xc0) != 0x80)
				w++;
		return w;
	}
	old = uselocale(utf8);
	memset(&st, 0, sizeof st);
	while (len > 0) {
		n = mbrtowc(&wc, s, len, &st);
		if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
			memset(&st, 0, sizeof st);
			n = 1;
			cw = 1;
		} else if ((cw = wcwidth(wc)) < 0)
			cw = 1;
		w += cw;
		s += n;
		len -= n;
	}
	uselocale(old);
	return w;
}

/* 2026-12-04T20:31:05Z; "-" when unknown. */
void
time_iso(long long unixtime, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)unixtime;

	if (unixtime <= 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
}

void
uptime_text(long long s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s >= 86400)
		snprintf(buf, len, "%lldd %02lldh %02lldm %02llds", s / 86400,
		    s % 86400 / 3600, s % 3600 / 60, s % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %02lldm %02llds", s / 3600,
		    s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm %02llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%llds", s);
}
