/*
 * Federation's rules for names (fedname.h): moved out of fed.c as they
 * were, so that they can be tested without a TLS link.
 */
#include <stdbool.h>
#include <string.h>

#include "fedname.h"
#include "tcllist.h"
#include "tclmatch.h"

size_t
fedname_app_len(const char *name)
{
	const char *at = strchr(name, '@');

	return at != NULL ? (size_t)(at - name) : strlen(name);
}

bool
fedname_answers_before(const struct reg_entry *x, const struct reg_entry *y)
{
	if (y == NULL)
		return true;
	if ((x->path[0] == '\0') != (y->path[0] == '\0'))
		return x->path[0] == '\0';
	return strcmp(x->name, y->name) < 0;
}

bool
fedname_patterns_match(char *const *pats, size_t n, const char *name)
{
	size_t i, len = fedname_app_len(name);

	for (i = 0; i < n; i++)
		if (tcl_string_match(pats[i], strlen(pats[i]), name, len))
			return true;
	return false;
}

bool
fedname_path_has(const char *path, const char *who)
{
	size_t n = strlen(who);
	const char *p = path;

	if (n == 0)
		return false; /* no gateway has no name (and strstr would
		                 match at once, for ever) */
	while ((p = strstr(p, who)) != NULL) {
		if ((p == path || p[-1] == ' ') &&
		    (p[n] == ' ' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

bool
fedname_exportable(const char *self, const struct gwconf_remote *r,
    const struct reg_entry *e)
{
	if (e->scope != REG_SCOPE_GLOBAL ||
	    !fedname_patterns_match(r->exports, r->nexports, e->name))
		return false;
	if (e->path[0] == '\0')
		return true;
	/* Learned elsewhere: passed on only where configured, and never
	 * back to a gateway it came through. */
	return r->reexport && !fedname_path_has(e->path, r->peer_name) &&
	       !fedname_path_has(e->path, self);
}

bool
fedname_well_formed(const char *self, const char *peer_name, const char *name,
    const char *path)
{
	const char *at1 = strchr(name, '@'), *at2;
	const char *sp = strchr(path, ' '), *last;
	size_t olen = sp != NULL ? (size_t)(sp - path) : strlen(path);

	if (at1 == NULL || (at2 = strchr(at1 + 1, '@')) == NULL ||
	    strchr(at2 + 1, '@') != NULL || at1 == name || at2 == at1 + 1)
		return false;
	if (strlen(at2 + 1) != olen || strncmp(at2 + 1, path, olen) != 0)
		return false;
	if (olen == 0 || strcmp(at2 + 1, self) == 0)
		return false;
	/* The last gateway of the path is the one that sent it to us: the
	 * remote itself (its own entries, one hop), or the path is a lie and
	 * a remote would speak for gateways it is not. */
	last = strrchr(path, ' ');
	last = last != NULL ? last + 1 : path;
	if (strcmp(last, peer_name) != 0)
		return false;
	return true;
}

void
fedname_export_dict(const char *self, const char *advertise,
    const struct reg_entry *e, struct tbuf *d)
{
	bool local = e->path[0] == '\0';
	const char *host = local ? advertise : e->host;

	tbuf_reset(d);
	tl_append_str(d, 0, "name");
	if (local) {
		struct tbuf n;

		tbuf_init(&n);
		tbuf_add(&n, e->name, e->namelen);
		tbuf_addc(&n, '@');
		tbuf_adds(&n, self);
		tl_append(d, 0, n.p, n.len);
		tbuf_free(&n);
	} else
		tl_append(d, 0, e->name, e->namelen);
	tl_append_str(d, 0, "serial");
	tl_append_int(d, 0, e->serial);
	tl_append_str(d, 0, "base");
	tl_append(d, 0, e->base, e->baselen);
	tl_append_str(d, 0, "port");
	tl_append_int(d, 0, e->port > 0 ? e->port : 0);
	tl_append_str(d, 0, "host");
	tl_append_str(d, 0, host);
	tl_append_str(d, 0, "data");
	if (e->port > 0) {
		struct tbuf id;

		tbuf_init(&id);
		tl_append_int(&id, 0, e->port);
		tl_append_str(&id, 0, host);
		tl_append(d, 0, id.p, id.len);
		tbuf_free(&id);
	} else
		tl_append(d, 0, e->data, e->datalen);
	tl_append_str(d, 0, "scope");
	tl_append_str(d, 0, "global");
	tl_append_str(d, 0, "pid");
	if (e->pid > 0)
		tl_append_int(d, 0, (long long)e->pid);
	else
		tl_append_str(d, 0, "");
	tl_append_str(d, 0, "since");
	tl_append_int(d, 0, (long long)e->since);
	tl_append_str(d, 0, "path");
	if (local)
		tl_append_str(d, 0, self);
	else {
		struct tbuf p;

		tbuf_init(&p);
		tbuf_adds(&p, e->path);
		tbuf_addc(&p, ' ');
		tbuf_adds(&p, self);
		tl_append(d, 0, p.p, p.len);
		tbuf_free(&p);
	}
}
