/*
 * The machine form of what commreg prints (--json), made with jansson:
 * no quoting of our own.  Output is ASCII (JSON_ENSURE_ASCII): every
 * character beyond it, and every control character, travels as \uXXXX,
 * so a name cannot reach a terminal raw this way either, and a reader
 * gets back exactly the registry's text.  Text that is not UTF-8 (a
 * Bind's data may be any bytes) cannot be a JSON string: it is given in
 * its shown form (\xNN escapes, shown.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "log.h"
#include "tcllist.h"
#include "utf8.h"

static json_t *
must(json_t *j)
{
	if (j == NULL)
		fatalx("out of memory (JSON)");
	return j;
}

static void
put(json_t *obj, const char *key, json_t *v)
{
	if (json_object_set_new(obj, key, must(v)) == -1)
		fatalx("out of memory (JSON)");
}

json_t *
json_text(const char *s, size_t len)
{
	json_t *j;
	char *copy, *sh;

	if ((j = json_stringn(s, len)) != NULL)
		return j;
	/* Not UTF-8, or a NUL inside: the shown form (up to the NUL). */
	if ((copy = strndup(s, len)) == NULL)
		fatal("strndup");
	sh = shown(copy);
	j = must(json_string(sh));
	free(sh);
	free(copy);
	return j;
}

static json_t *
str(const char *s)
{
	return json_text(s, strlen(s));
}

/* A decimal integer as Tcl writes one, else 0. */
static int
integer_of(const char *s, size_t len, json_int_t *v)
{
	char *end;
	long long x;

	if (len == 0 || len > 20 || (s[0] != '-' && (s[0] < '0' || s[0] > '9')))
		return 0;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno != 0 || end != s + len || end == s || s[len - 1] == '-')
		return 0;
	*v = (json_int_t)x;
	return 1;
}

/*
 * An entry as the registry gave it (docs/protocol.md §4); what is not
 * known is null.  since: ISO 8601 UTC, as everywhere commreg shows a
 * time.
 */
json_t *
json_entry(const struct commreg_entry *e)
{
	json_t *o = must(json_object());
	char since[32];

	put(o, "name", str(e->name));
	put(o, "base", str(e->base));
	put(o, "serial", json_integer(e->serial));
	put(o, "port", e->port > 0 ? json_integer(e->port) : json_null());
	put(o, "host", str(e->host));
	put(o, "data", str(e->data));
	put(o, "scope", str(e->scope));
	put(o, "user", e->user[0] != '\0' ? str(e->user) : json_null());
	put(o, "uid", e->uid >= 0 ? json_integer(e->uid) : json_null());
	put(o, "pid", e->pid >= 0 ? json_integer(e->pid) : json_null());
	time_iso(e->since, since, sizeof since);
	put(o, "since", e->since > 0 ? json_string(since) : json_null());
	if (e->path[0] != '\0')
		put(o, "path", str(e->path));
	return o;
}

/*
 * A Tcl dict (Commreg/Stats, Commreg/Hello) as an object: integers as
 * numbers, `links` (the gateway's federation links) as an array of
 * objects, anything else as text.  A reply that is not a dict is text.
 */
json_t *
json_tcl_dict(const char *s, size_t len)
{
	struct tlist d, l;
	const char *err;
	json_t *o, *a;
	json_int_t v;
	size_t i, k;

	tlist_init(&d);
	if (tlist_parse(&d, s, len, &err) != 0 || d.n % 2 != 0) {
		tlist_free(&d);
		return json_text(s, len);
	}
	o = must(json_object());
	for (i = 0; i < d.n; i += 2) {
		const char *key = d.v[i].p, *val = d.v[i + 1].p;
		size_t vlen = d.v[i + 1].len;

		/* A key must be UTF-8 text to be one in JSON. */
		if (strlen(key) != d.v[i].len || !utf8_valid(key, d.v[i].len))
			continue;
		if (strcmp(key, "links") == 0) {
			a = must(json_array());
			tlist_init(&l);
			if (tlist_parse(&l, val, vlen, &err) == 0)
				for (k = 0; k < l.n; k++)
					json_array_append_new(a,
					    json_tcl_dict(l.v[k].p,
					        l.v[k].len));
			tlist_free(&l);
			put(o, key, a);
		} else if (integer_of(val, vlen, &v))
			put(o, key, json_integer(v));
		else
			put(o, key, json_text(val, vlen));
	}
	tlist_free(&d);
	return o;
}

/* Print j on stdout, one line (watch) or indented; takes j over. */
void
json_print(json_t *j, bool one_line)
{
	size_t flags = JSON_ENSURE_ASCII;

	flags |= one_line ? JSON_COMPACT : JSON_INDENT(2);
	if (json_dumpf(j, stdout, flags) == -1)
		fatalx("cannot write JSON to stdout");
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(j);
}
