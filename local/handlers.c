/*
 * Protocol commands of the user registry: tcllib's nns protocol v1 with
 * Search/Continuous (docs/protocol.md §3) and the Commreg/1 extension
 * (§4).  One handler and one table row per command.
 */
#include <errno.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gwlink.h"
#include "handlers.h"
#include "log.h"
#include "standby.h"
#include "upstream.h"

static int reply_listing(struct cmd_ctx *, const char *, size_t, bool);
static int later(struct cmd_ctx *, int kind, const char *pat, size_t plen,
    const struct tl_elem *tag);

/* What waits for the host gateway's entries (later). */
enum { LATER_LIST, LATER_SEARCH, LATER_WATCH, LATER_NNS_WATCH };

static int
arg_is(const struct tl_elem *e, const char *s)
{
	return strcmp(e->p, s) == 0;
}

static int
error_too_many(struct cmd_ctx *c, const char *what, size_t limit)
{
	tbuf_printf(c->result, "too many %s on this connection (limit %zu)",
	    what, limit);
	return CMD_ERROR;
}

/* Memory ran out (the library's policy, tbuf.h; a daemon has ended). */
static int
error_nomem(struct cmd_ctx *c)
{
	tbuf_reset(c->result);
	tbuf_adds(c->result, "out of memory");
	return CMD_ERROR;
}

static int
cmd_bind(struct cmd_ctx *c)
{
	const struct tlist *w = c->words;
	struct peer *p = c->peer;
	struct reg_add a;

	if (p->nentries >= c->srv->o.max_names)
		return error_too_many(c, "names", c->srv->o.max_names);
	memset(&a, 0, sizeof a);
	a.base = w->v[1].p;
	a.baselen = w->v[1].len;
	a.nns = true;
	a.data = w->v[2].p;
	a.datalen = w->v[2].len;
	a.uid = p->uid;
	a.scope = c->srv->scope;
	/* Its own entry, held since a failover: taken back silently. */
	if (c->srv->holdover != NULL && holdover_reclaim(c, &a) == CMD_OK)
		return CMD_OK;
	if (registry_add(c->srv->reg, &a, p, &p->entries, c->result) == NULL)
		return CMD_ERROR;
	p->nentries++;
	tbuf_reset(c->result);
	return CMD_OK;
}

static int
cmd_release(struct cmd_ctx *c)
{
	struct peer *p = c->peer;
	struct reg_entry *e, *next;

	TAILQ_FOREACH_SAFE(e, &p->entries, owner_link, next)
		registry_remove(c->srv->reg, e, &p->entries);
	p->nentries = 0;
	return CMD_OK;
}

struct search_ctx {
	struct tbuf *out;
	size_t start;
	struct registry *shadow; /* entries named here hide the mirror's */
};

static void
search_add(const struct reg_entry *e, void *arg)
{
	struct search_ctx *sc = arg;

	if (sc->shadow != NULL &&
	    registry_find(sc->shadow, e->name, e->namelen) != NULL)
		return;
	tl_append(sc->out, sc->start, e->name, e->namelen);
	tl_append(sc->out, sc->start, e->data, e->datalen);
}

/*
 * nns Search answers a dict, where a name may appear once: a
 * semi-private registry's own entries, then the mirror's that no own
 * entry hides.
 */
static void
search_all(struct server *s, const char *pat, size_t plen, struct tbuf *out)
{
	struct search_ctx sc = {out, 0, NULL};

	registry_match(s->reg, pat, plen, search_add, &sc);
	if (s->mirror != NULL) {
		sc.shadow = s->reg;
		registry_match(s->mirror, pat, plen, search_add, &sc);
	}
}

static int
cmd_search(struct cmd_ctx *c)
{
	const struct tl_elem *pat = &c->words->v[1];
	int r;

	if ((r = later(c, LATER_SEARCH, pat->p, pat->len, NULL)) != -1)
		return r;
	return reply_listing(c, pat->p, pat->len, true);
}

static int
cmd_protocol_version(struct cmd_ctx *c)
{
	tbuf_adds(c->result, "1");
	return CMD_OK;
}

static int
cmd_protocol_features(struct cmd_ctx *c)
{
	tbuf_adds(c->result, "Core Search/Continuous Commreg/1");
	return CMD_OK;
}

static struct reg_watch *
watch_find_tag(struct peer *p, enum reg_watch_kind kind, const char *tag,
    size_t taglen)
{
	struct reg_watch *w;

	TAILQ_FOREACH(w, &p->watches, owner_link) {
		if (w->kind == kind && w->taglen == taglen &&
		    memcmp(w->tag, tag, taglen) == 0)
			return w;
	}
	return NULL;
}

static struct reg_watch *
watch_find(struct peer *p, enum reg_watch_kind kind, const struct tl_elem *tag)
{
	return watch_find_tag(p, kind, tag->p, tag->len);
}

/* The first Search/Continuous/Change of an nns watch: the current
 * matches, empty or not (nns_protocol, Search/Continuous).  False when
 * memory ran out. */
static bool
nns_first_change(struct server *s, struct peer *p, const struct reg_watch *w)
{
	struct tbuf snap;
	const char *words[4];
	size_t lens[4];

	tbuf_init(&snap);
	search_all(s, w->pattern, w->patlen, &snap);
	if (snap.failed) {
		tbuf_free(&snap);
		return false;
	}
	words[0] = "Search/Continuous/Change";
	lens[0] = strlen(words[0]);
	words[1] = w->tag;
	lens[1] = w->taglen;
	words[2] = "add";
	lens[2] = 3;
	words[3] = snap.p;
	lens[3] = snap.len;
	peer_send_async(p, words, lens, 4);
	tbuf_free(&snap);
	return true;
}

static int
cmd_search_start(struct cmd_ctx *c)
{
	const struct tlist *w = c->words;
	struct peer *p = c->peer;
	struct reg_watch *wa;
	int r;

	/* tcllib's server ignores a second Start with the same tag. */
	if (watch_find(p, REG_WATCH_NNS, &w->v[1]) != NULL)
		return CMD_OK;
	if (p->nwatches >= c->srv->o.max_watches)
		return error_too_many(c, "watches", c->srv->o.max_watches);
	if ((wa = registry_watch_add(c->srv->reg, REG_WATCH_NNS, w->v[1].p,
	         w->v[1].len, w->v[2].p, w->v[2].len, p, &p->watches)) == NULL)
		return error_nomem(c);
	p->nwatches++;
	wa->deferred = true;
	if ((r = later(c, LATER_NNS_WATCH, w->v[2].p, w->v[2].len, &w->v[1])) ==
	    CMD_PENDING)
		return r;
	wa->deferred = false;
	if (r == CMD_ERROR || !nns_first_change(c->srv, p, wa)) {
		/* A watch whose snapshot never came would be wrong: none. */
		registry_watch_remove(c->srv->reg, wa, &p->watches);
		p->nwatches--;
		return error_nomem(c);
	}
	return CMD_OK;
}

static int
watch_stop(struct cmd_ctx *c, enum reg_watch_kind kind)
{
	struct peer *p = c->peer;
	struct reg_watch *w;

	if ((w = watch_find(p, kind, &c->words->v[1])) != NULL) {
		registry_watch_remove(c->srv->reg, w, &p->watches);
		p->nwatches--;
	}
	return CMD_OK;
}

static int
cmd_search_stop(struct cmd_ctx *c)
{
	return watch_stop(c, REG_WATCH_NNS);
}

static int
cmd_hello(struct cmd_ctx *c)
{
	struct server *s = c->srv;
	struct tbuf *r = c->result;

	tl_append_str(r, 0, "registry");
	tl_append_str(r, 0, "commreg");
	tl_append_str(r, 0, "version");
	tl_append_str(r, 0, COMMREG_VERSION);
	tl_append_str(r, 0, "protocol");
	tl_append_int(r, 0, 1);
	tl_append_str(r, 0, "owner");
	tl_append_str(r, 0, s->owner);
	tl_append_str(r, 0, "uid");
	tl_append_int(r, 0, (long long)s->uid);
	tl_append_str(r, 0, "host");
	tl_append_str(r, 0, s->host);
	tl_append_str(r, 0, "pid");
	tl_append_int(r, 0, (long long)getpid());
	tl_append_str(r, 0, "port");
	tl_append_int(r, 0, s->port);
	tl_append_str(r, 0, "scope");
	tl_append_str(r, 0, s->kind != NULL ? s->kind : "user");
	if (s->mirror != NULL) {
		tl_append_str(r, 0, "upstream");
		if (s->upstream_port > 0)
			tl_append_int(r, 0, s->upstream_port);
		else
			tl_append_str(r, 0, "");
	}
	return CMD_OK;
}

static int
parse_port(const struct tl_elem *e, int *port, struct tbuf *err)
{
	char *end;
	long v = strtol(e->p, &end, 10);

	if (end == e->p || *end != '\0' || v < 1 || v > 65535) {
		tbuf_adds(err, "expected a port number 1-65535 but got ");
		tbuf_add_quoted(err, e->p, e->len);
		return -1;
	}
	*port = (int)v;
	return 0;
}

/*
 * A registration may name the scope it wants; only the one this
 * registry serves is possible here, and saying so beats silently
 * offering an application to fewer (or more) peers than it asked for.
 */
static int
scope_check(struct server *s, const struct tl_elem *val, enum reg_scope *scope,
    struct tbuf *err)
{
	enum reg_scope want;
	char why[300];

	if (registry_scope_parse(val->p, &want) == -1) {
		tbuf_adds(err, "bad scope ");
		tbuf_add_quoted(err, val->p, val->len);
		tbuf_adds(err, ": must be user, host or global");
		return -1;
	}
	if (s->scope == REG_SCOPE_PRIVATE) {
		if (want == REG_SCOPE_PRIVATE)
			return 0;
		tbuf_adds(err, "scope ");
		tbuf_add_quoted(err, val->p, val->len);
		tbuf_adds(err,
		    " is not served here: this is a private "
		    "registry (TCL_COMM_REGPORT), whose entries only "
		    "its own process group sees (scope private)");
		return -1;
	}
	if (want == REG_SCOPE_USER) {
		*scope = want;
		return 0;
	}
	if (want == REG_SCOPE_PRIVATE) {
		tbuf_adds(err, "scope private is for private registries "
		               "(commreg run); this is the user registry");
		return -1;
	}
	/* host and global: the host gateway's to grant (docs/gateway.md). */
	if (s->gw == NULL) {
		tbuf_printf(err,
		    "scope \"%s\" needs the host gateway, and none is "
		    "configured on this host (no [gateway] in the host "
		    "configuration)",
		    val->p);
		return -1;
	}
	if (!gwlink_ready(s->gw, why, sizeof why)) {
		tbuf_printf(err,
		    "scope \"%s\" needs the host gateway, which cannot be "
		    "reached: %s",
		    val->p, why);
		return -1;
	}
	*scope = want;
	return 0;
}

int
handlers_register_parse(const struct tlist *w, struct reg_request *r,
    struct tbuf *err)
{
	size_t i;
	char *end;
	long v;

	memset(r, 0, sizeof *r);
	r->name = w->v[1].p;
	r->namelen = w->v[1].len;
	r->host = "localhost";
	if (parse_port(&w->v[2], &r->port, err) == -1)
		return -1;
	if ((w->n - 3) % 2 != 0) {
		tbuf_adds(err, "value for ");
		tbuf_add_quoted(err, w->v[w->n - 1].p, w->v[w->n - 1].len);
		tbuf_adds(err, " missing");
		return -1;
	}
	for (i = 3; i + 1 < w->n; i += 2) {
		const struct tl_elem *o = &w->v[i], *val = &w->v[i + 1];

		if (arg_is(o, "-host"))
			r->host = val->p;
		else if (arg_is(o, "-data")) {
			r->data = val->p;
			r->datalen = val->len;
		} else if (arg_is(o, "-scope"))
			r->scope = val;
		else if (arg_is(o, "-serial")) {
			v = strtol(val->p, &end, 10);
			if (end == val->p || *end != '\0' || v < 1 ||
			    v > 1000000) {
				tbuf_adds(err, "bad serial ");
				tbuf_add_quoted(err, val->p, val->len);
				return -1;
			}
			r->serial = (int)v;
		} else if (arg_is(o, "-pid")) {
			errno = 0;
			v = strtol(val->p, &end, 10);
			if (end == val->p || *end != '\0' || errno != 0 ||
			    v < 1 || v > INT32_MAX) {
				tbuf_adds(err, "bad pid ");
				tbuf_add_quoted(err, val->p, val->len);
				return -1;
			}
			r->pid = (pid_t)v;
		} else {
			tbuf_adds(err, "bad option ");
			tbuf_add_quoted(err, o->p, o->len);
			tbuf_adds(err,
			    ": must be -data, -host, -pid, -scope or "
			    "-serial");
			return -1;
		}
	}
	if (strlen(r->host) > 255 ||
	    strpbrk(r->host, " \t\r\n{}\"\\") != NULL) {
		tbuf_adds(err, "bad host name");
		return -1;
	}
	return 0;
}

/*
 * Commreg/Register, for every kind of server: the registry's own checks
 * here; the kind's admission (a host gateway's policy and port check)
 * as a hook.
 */
static int
cmd_register(struct cmd_ctx *c)
{
	const struct server_ops *ops = c->srv->ops;
	struct peer *p = c->peer;
	struct reg_request r;
	struct reg_add a;
	struct reg_entry *e;
	int rc;

	if (p->nentries >= c->srv->o.max_names)
		return error_too_many(c, "names", c->srv->o.max_names);
	if (handlers_register_parse(c->words, &r, c->result) == -1)
		return CMD_ERROR;
	memset(&a, 0, sizeof a);
	a.base = r.name;
	a.baselen = r.namelen;
	a.host = r.host;
	a.data = r.data;
	a.datalen = r.datalen;
	a.want_serial = r.serial;
	if (r.serial > 0 && c->srv->name_wanted != NULL) {
		struct tbuf want;

		tbuf_init(&want);
		registry_make_name(&want, r.name, r.namelen, r.serial);
		if (!want.failed)
			c->srv->name_wanted(c->srv, want.p, want.len);
		tbuf_free(&want);
	}
	a.port = r.port;
	a.pid = r.pid;
	a.uid = p->uid;
	a.scope = c->srv->scope;
	if (ops != NULL && ops->admit_entry != NULL) {
		if ((rc = ops->admit_entry(c, &r, &a)) != -1)
			return rc;
	} else if (r.scope != NULL &&
	           scope_check(c->srv, r.scope, &a.scope, c->result) == -1)
		return CMD_ERROR;
	if (c->srv->holdover != NULL && holdover_reclaim(c, &a) == CMD_OK)
		return CMD_OK;
	if ((e = registry_add(c->srv->reg, &a, p, &p->entries, c->result)) ==
	    NULL)
		return CMD_ERROR;
	p->nentries++;
	log_debug("peer %s registered \"%s\" port %d", p->addr, e->name,
	    e->port);
	if (ops != NULL && ops->entry_added != NULL)
		return ops->entry_added(c, &r, e);
	/* Offered to the host: the reply is the gateway's verdict. */
	if (e->scope >= REG_SCOPE_HOST) {
		if ((rc = gwlink_register(c->srv->gw, c, e)) == CMD_ERROR) {
			/* No verdict can come: the entry is not kept. */
			registry_remove(c->srv->reg, e, &p->entries);
			p->nentries--;
		}
		return rc;
	}
	tbuf_reset(c->result);
	tbuf_add(c->result, e->name, e->namelen);
	return CMD_OK;
}

static int
cmd_unregister(struct cmd_ctx *c)
{
	const struct tl_elem *name = &c->words->v[1];
	const struct server_ops *ops = c->srv->ops;
	struct peer *p = c->peer;
	struct reg_entry *e;
	struct tbuf key;

	tbuf_init(&key);
	if (ops != NULL && ops->entry_key != NULL)
		ops->entry_key(c, name->p, name->len, &key);
	else
		tbuf_add(&key, name->p, name->len);
	e = registry_find(c->srv->reg, key.p, key.len);
	tbuf_free(&key);
	if (e == NULL || e->owner != p) {
		tbuf_add_quoted(c->result, name->p, name->len);
		tbuf_adds(c->result,
		    e == NULL ? " is not registered"
		              : " was registered by another connection");
		return CMD_ERROR;
	}
	registry_remove(c->srv->reg, e, &p->entries);
	p->nentries--;
	return CMD_OK;
}

static int
cmd_lookup(struct cmd_ctx *c)
{
	const struct tl_elem *name = &c->words->v[1];
	struct reg_entry *e;

	e = registry_find(c->srv->reg, name->p, name->len);
	if (e == NULL && c->srv->mirror != NULL)
		e = registry_find(c->srv->mirror, name->p, name->len);
	/* NAME@ME is my own NAME. */
	if (e == NULL) {
		size_t olen = strlen(c->srv->owner);

		if (name->len > olen + 1 &&
		    name->p[name->len - olen - 1] == '@' &&
		    memcmp(name->p + name->len - olen, c->srv->owner, olen) ==
		        0)
			e = registry_find(c->srv->reg, name->p,
			    name->len - olen - 1);
	}
	/* NAME@HOST, and a bare NAME another host holds under NAME@HOST
	 * here (docs/distributed.md "Names across hosts"). */
	if (e == NULL && c->srv->lookup_more != NULL)
		e = (struct reg_entry *)c->srv->lookup_more(c->srv, name->p,
		    name->len);
	/* A semi-private registry asks the one above (which may ask its
	 * gateway) for what neither it nor its copy holds. */
	if (e == NULL && c->srv->up != NULL &&
	    (upstream_lookup(c->srv->up, c, name->p) == CMD_PENDING ||
	        c->result->len > 0))
		return c->result->len > 0 ? CMD_ERROR : CMD_PENDING;
	/* Other users' names, and the rest of the world: the gateway's. */
	if (e == NULL && c->srv->gw != NULL) {
		char why[8];

		if (gwlink_ready(c->srv->gw, why, sizeof why))
			return gwlink_lookup(c->srv->gw, c, name->p, name->len);
	}
	if (e == NULL) {
		tbuf_adds(c->result, "no application named ");
		tbuf_add_quoted(c->result, name->p, name->len);
		return CMD_ERROR;
	}
	if (e->nns)
		tbuf_add(c->result, e->data, e->datalen);
	else {
		/* A comm id ready for comm::comm send, whatever -data says. */
		tl_append_int(c->result, 0, e->port);
		tl_append_str(c->result, 0, e->host);
	}
	return CMD_OK;
}

/* The entries matching pat, sorted by name: the registry's own first,
 * then its mirror's that no own entry hides (the entries say which by
 * their scope).  *n of them; the caller frees the array.  NULL when
 * memory ran out (the library's policy, tbuf.h). */
static const struct reg_entry **
collect_sorted(struct server *s, const char *pat, size_t plen, size_t *np)
{
	struct registry *regs[2] = {s->reg, s->mirror};
	const struct reg_entry **v, **all = NULL, **grown;
	size_t i, j, n, total = 0;

	*np = 0;
	for (i = 0; i < 2 && regs[i] != NULL; i++) {
		if ((v = registry_sorted(regs[i], pat, plen, &n)) == NULL) {
			free(all);
			return NULL;
		}
		if (i == 0) {
			/* The first array is big enough unless a mirror
			 * adds to it. */
			all = v;
			total = n;
			continue;
		}
		if (n > 0) {
			grown = reallocarray(all, total + n, sizeof *all);
			if (grown == NULL) {
				tbuf_oom("out of memory");
				free(v);
				free(all);
				return NULL;
			}
			all = grown;
		}
		for (j = 0; j < n; j++) {
			/* An own entry hides the mirror's of its name. */
			if (i == 1 && registry_find(s->reg, v[j]->name,
			                  v[j]->namelen) != NULL)
				continue;
			all[total++] = v[j];
		}
		free(v);
	}
	*np = total;
	return all;
}

/*
 * A listing larger than this (by what the tables hold) is written in
 * pieces as the peer reads (engine/peer.h), so that a peer that asks for
 * it and never reads costs the output cap, not the listing.
 */
#define LISTING_STREAM_AT (256 * 1024)

/* The entries as they were when asked: each is referenced, so that one
 * removed while the listing is written is still written as it was. */
struct listing {
	struct peer_stream ps;
	const struct reg_entry **v;
	size_t n, next;
	bool nns; /* Search: NAME DATA pairs; else entry dicts */
};

static bool
listing_next(struct peer_stream *ps, struct tbuf *out, size_t budget)
{
	struct listing *l = (struct listing *)ps;
	const struct reg_entry *e;

	while (l->next < l->n && out->len < budget) {
		e = l->v[l->next++];
		if (l->nns) {
			tl_append(out, 0, e->name, e->namelen);
			tl_append(out, 0, e->data, e->datalen);
		} else
			registry_format_entry(out, 0, e);
		registry_entry_unref(e);
	}
	return l->next == l->n;
}

static void
listing_free(struct peer_stream *ps)
{
	struct listing *l = (struct listing *)ps;

	while (l->next < l->n)
		registry_entry_unref(l->v[l->next++]);
	free(l->v);
	free(l);
}

static bool
listing_big(const struct server *s)
{
	size_t bytes = registry_bytes(s->reg) +
	               (s->mirror != NULL ? registry_bytes(s->mirror) : 0);

	return bytes > LISTING_STREAM_AT || bytes > s->o.max_output / 4;
}

/* Reply with the listing of pat: formatted now when small, else in
 * pieces.  Returns what the handler returns. */
static int
reply_listing(struct cmd_ctx *c, const char *pat, size_t plen, bool nns)
{
	struct listing *l;
	size_t i;

	/* A peer already given a reply in pieces (one that waited for the
	 * gateway's entries, later) gets this one whole. */
	if (!listing_big(c->srv) || c->peer->stream != NULL) {
		if (nns)
			search_all(c->srv, pat, plen, c->result);
		else {
			const struct reg_entry **v;
			size_t n;

			if ((v = collect_sorted(c->srv, pat, plen, &n)) == NULL)
				return error_nomem(c);
			for (i = 0; i < n; i++)
				registry_format_entry(c->result, 0, v[i]);
			free(v);
		}
		return CMD_OK;
	}
	if ((l = calloc(1, sizeof *l)) == NULL) {
		tbuf_oom("out of memory");
		return error_nomem(c);
	}
	l->ps.next = listing_next;
	l->ps.free = listing_free;
	l->nns = nns;
	if ((l->v = collect_sorted(c->srv, pat, plen, &l->n)) == NULL) {
		free(l);
		return error_nomem(c);
	}
	for (i = 0; i < l->n; i++)
		registry_entry_ref(l->v[i]);
	return peer_reply_stream(c, &l->ps);
}

static int
cmd_list(struct cmd_ctx *c)
{
	const struct tlist *w = c->words;
	const char *pat = w->n > 1 ? w->v[1].p : "*";
	size_t plen = w->n > 1 ? w->v[1].len : 1;
	int r;

	if ((r = later(c, LATER_LIST, pat, plen, NULL)) != -1)
		return r;
	return reply_listing(c, pat, plen, false);
}

static int
cmd_watch(struct cmd_ctx *c)
{
	const struct tlist *w = c->words;
	struct peer *p = c->peer;
	struct reg_watch *wa;
	int r;

	if (watch_find(p, REG_WATCH_COMMREG, &w->v[1]) != NULL) {
		tbuf_adds(c->result, "a watch with tag ");
		tbuf_add_quoted(c->result, w->v[1].p, w->v[1].len);
		tbuf_adds(c->result, " already exists on this connection");
		return CMD_ERROR;
	}
	if (p->nwatches >= c->srv->o.max_watches)
		return error_too_many(c, "watches", c->srv->o.max_watches);
	if ((wa = registry_watch_add(c->srv->reg, REG_WATCH_COMMREG, w->v[1].p,
	         w->v[1].len, w->v[2].p, w->v[2].len, p, &p->watches)) == NULL)
		return error_nomem(c);
	p->nwatches++;
	/* The snapshot is the reply, so it is on the wire before any event
	 * of this watch (docs/protocol.md §4); until it is, the watch hears
	 * nothing. */
	wa->deferred = true;
	if ((r = later(c, LATER_WATCH, w->v[2].p, w->v[2].len, &w->v[1])) ==
	    CMD_PENDING)
		return r;
	wa->deferred = false;
	if (r == CMD_ERROR) {
		registry_watch_remove(c->srv->reg, wa, &p->watches);
		p->nwatches--;
		return r;
	}
	return reply_listing(c, w->v[2].p, w->v[2].len, false);
}

/* ---- waiting for the host gateway's entries ------------------------------
 *
 * A user registry copies the other users' entries from the gateway only
 * while they are used (gwlink.h): a listing or a watch that starts while
 * the copy is on its way is answered when it comes.  A watch waiting so
 * is deferred (registry.h): its snapshot, taken then, includes what
 * happened meanwhile.
 */
struct later {
	struct server *srv;
	int kind;
	struct pending *pend;
	char *pattern;
	size_t plen;
	char *tag;
	size_t taglen;
};

/* A NUL-terminated copy of len bytes (which may hold NULs). */
static char *
memdup0(const char *p, size_t len)
{
	char *d;

	if ((d = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(d, p, len);
	d[len] = '\0';
	return d;
}

static void
later_free(struct later *l)
{
	free(l->pattern);
	free(l->tag);
	free(l);
}

static void
later_ready(void *arg)
{
	struct later *l = arg;
	struct peer *p = l->pend->peer;
	struct reg_watch *w = NULL;
	struct cmd_ctx c;
	struct tbuf res;
	int code;

	if (p == NULL || p->state != PEER_READY) {
		/* It went meanwhile: nobody to answer. */
		pending_reply(l->pend, 1, "", 0);
		later_free(l);
		return;
	}
	if (l->kind == LATER_WATCH || l->kind == LATER_NNS_WATCH) {
		w = watch_find_tag(p,
		    l->kind == LATER_WATCH ? REG_WATCH_COMMREG : REG_WATCH_NNS,
		    l->tag, l->taglen);
		if (w != NULL)
			w->deferred = false;
	}
	if (l->kind == LATER_NNS_WATCH) {
		/* Stopped meanwhile: no Change.  Out of memory: the watcher
		 * cannot have a right view, and loses the connection. */
		if (w != NULL && !nns_first_change(l->srv, p, w))
			peer_fail(p, "out of memory");
		pending_reply(l->pend, 0, "", 0);
		later_free(l);
		return;
	}
	tbuf_init(&res);
	pending_ctx(l->pend, &c, &res);
	c.srv = l->srv;
	code = reply_listing(&c, l->pattern, l->plen, l->kind == LATER_SEARCH);
	if (code == CMD_OK || code == CMD_ERROR)
		pending_reply(l->pend, code, res.p != NULL ? res.p : "",
		    res.len);
	else
		pending_forget(l->pend); /* answered in pieces */
	tbuf_free(&res);
	later_free(l);
}

/*
 * Does c's answer wait for the gateway's entries?  -1: no, answer now;
 * CMD_PENDING: yes, later_ready answers it; CMD_ERROR: memory ran out
 * (in c->result).  tag: the watch's, for the watch kinds.
 */
static int
later(struct cmd_ctx *c, int kind, const char *pat, size_t plen,
    const struct tl_elem *tag)
{
	struct later *l;

	if (c->srv->gw == NULL || gwlink_copy_ready(c->srv->gw))
		return -1;
	if ((l = calloc(1, sizeof *l)) == NULL ||
	    (l->pattern = memdup0(pat, plen)) == NULL ||
	    (tag != NULL && (l->tag = memdup0(tag->p, tag->len)) == NULL) ||
	    (l->pend = pending_new(c, NULL)) == NULL) {
		if (l != NULL)
			later_free(l);
		return error_nomem(c);
	}
	l->srv = c->srv;
	l->kind = kind;
	l->plen = plen;
	l->taglen = tag != NULL ? tag->len : 0;
	gwlink_copy_wait(c->srv->gw, later_ready, l);
	return CMD_PENDING;
}

static int
cmd_unwatch(struct cmd_ctx *c)
{
	return watch_stop(c, REG_WATCH_COMMREG);
}

static int
cmd_stats(struct cmd_ctx *c)
{
	struct server *s = c->srv;
	struct tbuf *r = c->result;

	tl_append_str(r, 0, "entries");
	tl_append_int(r, 0, (long long)registry_count(s->reg));
	tl_append_str(r, 0, "connections");
	tl_append_int(r, 0, (long long)s->npeers);
	tl_append_str(r, 0, "watches");
	tl_append_int(r, 0, (long long)registry_watch_count(s->reg));
	tl_append_str(r, 0, "uptime");
	tl_append_int(r, 0, (long long)(time(NULL) - s->started));
	tl_append_str(r, 0, "messages");
	tl_append_int(r, 0, (long long)s->eng.messages);
	tl_append_str(r, 0, "refused");
	tl_append_int(r, 0, (long long)s->refused);
	tl_append_str(r, 0, "version");
	tl_append_str(r, 0, COMMREG_VERSION);
	if (s->holdover != NULL) {
		tl_append_str(r, 0, "held");
		tl_append_int(r, 0, (long long)holdover_count(s));
	}
	if (s->mirror != NULL) {
		tl_append_str(r, 0, "upstream_entries");
		tl_append_int(r, 0, (long long)registry_count(s->mirror));
	}
	if (s->ops != NULL && s->ops->stats != NULL)
		s->ops->stats(s, r);
	return CMD_OK;
}

/* Usage strings are the argument names tcllib's server uses, so a
 * wrong-args error reads as Tcl's would. */
/* Sorted by name (cmd_table_find). */
static const struct cmd_entry cmd_table[] = {
    {"Bind", 2, 2, "name cdata", cmd_bind},
    {"Commreg/Hello", 0, 1, "?clientversion?", cmd_hello},
    {"Commreg/List", 0, 1, "?pattern?", cmd_list},
    {"Commreg/Lookup", 1, 1, "name", cmd_lookup},
    {"Commreg/Register", 2, -1, "name port ?-option value ...?", cmd_register},
    {"Commreg/Stats", 0, 0, "", cmd_stats},
    {"Commreg/Unregister", 1, 1, "name", cmd_unregister},
    {"Commreg/Unwatch", 1, 1, "tag", cmd_unwatch},
    {"Commreg/Watch", 2, 2, "tag pattern", cmd_watch},
    {"ProtocolFeatures", 0, 0, "", cmd_protocol_features},
    {"ProtocolVersion", 0, 0, "", cmd_protocol_version},
    {"Release", 0, 0, "", cmd_release},
    {"Search", 1, 1, "pattern", cmd_search},
    {"Search/Continuous/Start", 2, 2, "tag pattern", cmd_search_start},
    {"Search/Continuous/Stop", 1, 1, "tag", cmd_search_stop},
};

const struct cmd_entry *
cmd_find(const char *name, size_t len)
{
	return cmd_table_find(cmd_table, sizeof cmd_table / sizeof cmd_table[0],
	    name, len);
}

void
handlers_notify(struct reg_watch *w, const struct reg_entry *e, bool added,
    void *arg)
{
	struct server *s = arg;
	struct tbuf *body = &s->note;
	const char *words[4];
	size_t lens[4];

	/* One change is told to every watch that matches it: format its
	 * body once, not once per watcher. */
	if (s->note_change != registry_change(s->reg) ||
	    s->note_kind != (int)w->kind || body->len == 0 || body->failed) {
		tbuf_reset(body);
		if (w->kind == REG_WATCH_NNS) {
			tl_append(body, 0, e->name, e->namelen);
			tl_append(body, 0, e->data, e->datalen);
		} else
			registry_entry_dict(body, e);
		s->note_change = registry_change(s->reg);
		s->note_kind = (int)w->kind;
	}
	words[0] = w->kind == REG_WATCH_NNS ? "Search/Continuous/Change"
	                                    : "Commreg/Event";
	lens[0] = strlen(words[0]);
	words[1] = w->tag;
	lens[1] = w->taglen;
	words[2] = added ? "add" : "remove";
	lens[2] = strlen(words[2]);
	if (body->failed) {
		/* An event cut short would make the watcher's view wrong:
		 * it loses the connection instead, and its view with it. */
		peer_fail(w->owner, "out of memory");
		return;
	}
	words[3] = body->p;
	lens[3] = body->len;
	peer_send_async(w->owner, words, lens, 4);
}

/* The host gateway serves these as a user registry does (handlers.h). */
int
handlers_list(struct cmd_ctx *c)
{
	return cmd_list(c);
}

int
handlers_register(struct cmd_ctx *c)
{
	return cmd_register(c);
}

int
handlers_unregister(struct cmd_ctx *c)
{
	return cmd_unregister(c);
}

int
handlers_watch(struct cmd_ctx *c)
{
	return cmd_watch(c);
}

int
handlers_unwatch(struct cmd_ctx *c)
{
	return cmd_unwatch(c);
}

int
handlers_stats(struct cmd_ctx *c)
{
	return cmd_stats(c);
}

int
handlers_protocol_version(struct cmd_ctx *c)
{
	return cmd_protocol_version(c);
}
