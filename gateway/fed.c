/*
 * Federation links (fed.h).
 *
 * One struct flink per TLS connection, through libevent's OpenSSL
 * bufferevents.  This file makes the TLS connection and checks the
 * certificate; once TLS is up the connection is a peer of the gateway's
 * engine (engine/peer.h), which speaks the comm protocol on it: framing,
 * requests and replies, the command table below, every limit and the
 * liveness ping.  On a link we opened (to a [remote]) we send
 * Gateway/Hello and Gateway/Watch and keep what comes back in the
 * gateway's registry, owned by the link; on a link we accepted we answer
 * those, then send Gateway/Event for every change of what that remote is
 * given (a registry observer).  Lookups the host cannot answer go out on
 * every link we opened.
 *
 * Names: a global entry "calc@ann" of this gateway travels as
 * "calc@ann@SELF", SELF being the name our certificate carries (its first
 * DNS subjectAltName, else its CN), with the comm id's host replaced by
 * the address we listen on, so that an application elsewhere can
 * connect.  Patterns of export and import match the application's name,
 * the part before the first "@".
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "commreg.h"
#include "commwire.h"
#include "fed.h"
#include "fedname.h"
#include "gateway.h"
#include "listenrest.h"
#include "log.h"
#include "registry.h"
#include "tcllist.h"
#include "tlslink.h"

#define FED_RETRY_MIN_MS 500
/* What a remote gave is kept this long through a reload or a lost link
 * (struct flink, hold): a remote back within it is resynchronised by
 * difference, and no watcher sees its entries go and come back. */
#define FED_HOLD_MS      3000
#define FED_RETRY_MAX_MS 30000
#define FED_HANDSHAKE_S  10
/* A snapshot of 16 MiB from a gateway that sends it whole takes its time
 * on a slow link: an incomplete message may wait longer here than on a
 * local socket. */
#define FED_PARTIAL_MS 60000
#define FED_WATCH_TAG  "fed"
/* A snapshot in pieces (Gateway/Watch pieces) is kept until it is whole,
 * within [gateway] link_max_snapshot; its pieces are this big. */
#define FED_PIECE (16 * 1024)

enum flink_state { FL_CONNECTING, FL_HELLO, FL_READY };

/* A lookup sent out on the links: answered once. */
struct flookup {
	struct pending *q; /* NULL once answered */
	int outstanding;
	struct event *timer;
	char name[256];
};

/* A request of ours on one link, waiting for its reply. */
struct freq {
	TAILQ_ENTRY(freq) link;
	struct flink *l;
	struct preq *req; /* the engine's */
	enum { FQ_HELLO, FQ_WATCH, FQ_LOOKUP } kind;
	struct flookup *lk;
	bool pieces; /* FQ_WATCH: the snapshot comes in pieces */
};
TAILQ_HEAD(freq_list, freq);

struct flink {
	TAILQ_ENTRY(flink) link;
	struct fed *f;
	const struct gwconf_remote
	    *r; /* NULL: an accepted link not yet known */
	bool outgoing;
	enum flink_state state;
	struct bufferevent *bev; /* while TLS is set up; then the peer's */
	struct peer *peer;       /* once TLS is up */
	char src[64];            /* accepted: the address it came from */
	struct event *deadline;  /* TLS set-up, all of it */
	char addr[96];
	struct freq_list reqs;
	bool watching;                 /* accepted: the peer watches */
	struct reg_entry_list learned; /* opened: what it gave us */
	/* Opened: what it also offers but another link gave us first (a
	 * mesh), kept as the dicts it sent, by name, so that when that
	 * other link takes the entry back it is taken from this one. */
	struct registry *shadow;
	struct reg_entry_list shadowed;
	struct event *retry; /* opened: the next try */
	int attempt;
	/* Opened: the remote sends its snapshot as many messages (its
	 * Hello said "pieces"), kept here until the Watch reply ends it. */
	bool pieces;
	int snap_waiting; /* Watch requests in pieces not answered yet */
	struct tbuf snap;
	/* Opened: learned kept through a reload or a lost link
	 * (FED_HOLD_MS).  Until the hold ends, what the fresh snapshot
	 * lacks is only marked (held): a remote that restarted offers its
	 * own remotes' entries again a moment after its snapshot, and each
	 * it offers is unmarked.  What is still marked then goes; if the
	 * link is not back by then, everything it gave goes. */
	bool holding;
	struct event *hold;
	struct registry *held;
	struct reg_entry_list heldl;
};
TAILQ_HEAD(flink_list, flink);

/* What the links of a configuration gave, kept for the next one's links
 * of the same remote (a reload, fed_stop_links). */
struct fkept {
	TAILQ_ENTRY(fkept) link;
	char *remote;
	struct reg_entry_list entries; /* owned by this struct meanwhile */
};
TAILQ_HEAD(fkept_list, fkept);

struct fed {
	struct gateway *g;
	SSL_CTX *ctx;      /* fed_tls_context's */
	char *listen_host; /* what listener listens on */
	int listen_port;
	char self[256];
	char advertise[256];
	struct evconnlistener *listener;
	struct flink_list links;
	struct engine_limits lim;  /* of every link's peer */
	struct event *accept_rest; /* out of descriptors: accept later */
	size_t accepted;           /* links from others, all states */
	struct fkept_list kept;    /* fed_stop_links's */
};

static void link_open(struct flink *);
static void kept_take(struct fed *old, struct flink *);
static void link_close(struct flink *, const char *why);
static void link_reqs_drop(struct flink *);
static void tls_reason(struct bufferevent *, short, char *, size_t);

/* ---- sending ------------------------------------------------------------ */

static void fed_replied(struct peer *, void *, int, const char *, size_t);

static void
send_req(struct flink *l, int kind, const char *const *w, size_t n,
    struct flookup *lk)
{
	struct freq *q;

	if ((q = calloc(1, sizeof *q)) == NULL)
		fatal("%s", __func__);
	q->l = l;
	q->kind = kind;
	q->lk = lk;
	q->pieces = kind == FQ_WATCH && n > 1;
	TAILQ_INSERT_TAIL(&l->reqs, q, link);
	/* The greeting and the watch must be answered in time, or the link
	 * is made again; a lookup has its own deadline (flookup). */
	q->req = peer_request(l->peer, w, NULL, n,
	    kind == FQ_LOOKUP ? 0 : l->f->lim.handshake_ms, fed_replied, q);
}

/* A change the remote behind accepted link l may be told of.  The
 * engine's output cap drops a remote that does not read. */
static void
tell_now(struct flink *l, const struct reg_entry *e, bool added)
{
	const char *w[4];
	size_t lens[4];
	struct tbuf d;

	tbuf_init(&d);
	fedname_export_dict(l->f->self, l->f->advertise, e, &d);
	w[0] = "Gateway/Event";
	w[1] = FED_WATCH_TAG;
	w[2] = added ? "add" : "remove";
	w[3] = d.p;
	lens[0] = strlen(w[0]);
	lens[1] = strlen(w[1]);
	lens[2] = strlen(w[2]);
	lens[3] = d.len;
	peer_send_async(l->peer, w, lens, 4);
	tbuf_free(&d);
}

/* Every change of the registry: each remote is told what it is given. */
static void
observe(const struct reg_entry *e, bool added, void *arg)
{
	struct fed *f = arg;
	struct flink *l, *next;

	TAILQ_FOREACH_SAFE(l, &f->links, link, next)
		if (!l->outgoing && l->watching && l->r != NULL &&
		    l->peer != NULL && fedname_exportable(f->self, l->r, e))
			tell_now(l, e, added);
}

/* ---- what a remote gives us -------------------------------------------- */

/* One entry a remote offers: taken only as NAME@USER@ORIGIN from its
 * origin (fedname_well_formed), or a remote could take over a local name
 * or another gateway's; then not when it went round a loop or is not
 * imported. */
static void learn(struct flink *, const struct tl_elem *);

/*
 * A set of names, each with a text (a registry of its own, entries kept on
 * list): a link's shadow (what it also offers that another link gave us
 * first, with the dict it sent) and its held names (struct flink).
 */
static void
nameset_put(struct registry **set, struct reg_entry_list *list, void *owner,
    const char *name, const char *text, size_t textlen)
{
	struct reg_add a;
	struct tbuf err;

	if (*set == NULL && (*set = registry_new(NULL, NULL)) == NULL)
		fatal("%s", __func__);
	if (registry_find(*set, name, strlen(name)) != NULL)
		return;
	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = name;
	a.namelen = strlen(name);
	a.base = name;
	a.baselen = a.namelen;
	a.want_serial = 1;
	a.data = text;
	a.datalen = textlen;
	a.uid = (uid_t)-1;
	/* A name the table would refuse is one that was never taken
	 * either: nothing to remember. */
	tbuf_init(&err);
	registry_add(*set, &a, owner, list, &err);
	tbuf_free(&err);
}

static void
nameset_drop(struct registry *set, struct reg_entry_list *list,
    const char *name)
{
	struct reg_entry *e;

	if (set != NULL && (e = registry_find(set, name, strlen(name))) != NULL)
		registry_remove(set, e, list);
}

static void
nameset_clear(struct registry *set, struct reg_entry_list *list)
{
	struct reg_entry *e;

	while ((e = TAILQ_FIRST(list)) != NULL)
		registry_remove(set, e, list);
}

/* Remember that l offers name (dict as it sent it), not taken. */
static void
shadow_put(struct flink *l, const char *name, const struct tl_elem *dict)
{
	nameset_put(&l->shadow, &l->shadowed, l, name, dict->p, dict->len);
}

static void
shadow_drop(struct flink *l, const char *name)
{
	nameset_drop(l->shadow, &l->shadowed, name);
}

static void
shadow_clear(struct flink *l)
{
	nameset_clear(l->shadow, &l->shadowed);
}

static bool
shadow_take(struct flink *l, const char *name)
{
	struct reg_entry *e;
	struct tl_elem dict;
	char *copy;

	if (l->shadow == NULL ||
	    (e = registry_find(l->shadow, name, strlen(name))) == NULL)
		return false;
	if ((copy = strndup(e->data, e->datalen)) == NULL)
		return false;
	dict.p = copy;
	dict.len = e->datalen;
	registry_remove(l->shadow, e, &l->shadowed);
	learn(l, &dict);
	free(copy);
	return registry_find(l->f->g->srv.reg, name, strlen(name)) != NULL;
}

/* ---- the hold (struct flink) ------------------------------------------- */

static void
held_mark(struct flink *l, const char *name)
{
	nameset_put(&l->held, &l->heldl, l, name, "", 0);
}

static void
held_forget(struct flink *l, const char *name)
{
	nameset_drop(l->held, &l->heldl, name);
}

static void
held_clear(struct flink *l)
{
	nameset_clear(l->held, &l->heldl);
}

static void forget_all(struct flink *);
static void resync_others(struct flink *);

/* Keep what l gave for FED_HOLD_MS (not again if it already is). */
static void
hold_start(struct flink *l)
{
	struct timeval tv = {FED_HOLD_MS / 1000, (FED_HOLD_MS % 1000) * 1000};

	if (l->holding || TAILQ_EMPTY(&l->learned))
		return;
	l->holding = true;
	evtimer_add(l->hold, &tv);
}

static void
hold_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct flink *l = arg;
	struct reg_entry *e, *h;
	size_t n = 0;

	l->holding = false;
	if (l->state != FL_READY) {
		log_info("remote %s: not back within %d ms", l->r->name,
		    FED_HOLD_MS);
		held_clear(l);
		forget_all(l);
		resync_others(l);
		return;
	}
	/* Back: what it no longer offers goes now. */
	while ((h = TAILQ_FIRST(&l->heldl)) != NULL) {
		e = registry_find(l->f->g->srv.reg, h->name, h->namelen);
		if (e != NULL && e->owner == l) {
			registry_remove(l->f->g->srv.reg, e, &l->learned);
			n++;
		}
		registry_remove(l->held, h, &l->heldl);
	}
	if (n > 0)
		log_info("remote %s: %zu entries it no longer offers dropped",
		    l->r->name, n);
	server_flush(&l->f->g->srv);
}

static void
learn(struct flink *l, const struct tl_elem *dict)
{
	struct fed *f = l->f;
	struct commreg_entry c;
	struct reg_entry *e;
	struct reg_add a;
	struct tbuf err;
	char why[200];

	memset(&c, 0, sizeof c);
	if (commreg_entry_parse(dict->p, dict->len, &c, why, sizeof why) ==
	    -1) {
		log_warnx("remote %s: bad entry: %s", l->r->name, why);
		return;
	}
	if (c.path[0] == '\0' ||
	    !fedname_well_formed(f->self, l->r->peer_name, c.name, c.path)) {
		log_warnx("remote %s: refused entry \"%.200s\" (path "
		          "\"%.200s\"): "
		          "not NAME@USER@ORIGIN from its origin",
		    l->r->name, c.name, c.path);
		goto refused;
	}
	if (fedname_path_has(c.path, f->self) ||
	    !fedname_patterns_match(l->r->imports, l->r->nimports, c.name))
		goto refused; /* a loop, or not imported */
	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = c.name;
	a.namelen = strlen(c.name);
	a.base = c.base[0] != '\0' ? c.base : c.name;
	a.baselen = strlen(a.base);
	a.want_serial = c.serial > 0 ? (int)c.serial : 1;
	a.port = c.port;
	a.host = c.host;
	a.data = c.data;
	a.datalen = strlen(c.data);
	a.nns = c.port <= 0;
	a.scope = REG_SCOPE_GLOBAL;
	a.uid = (uid_t)-1;
	a.pid = c.pid > 0 ? (pid_t)c.pid : 0;
	a.since = (time_t)c.since;
	a.path = c.path;
	held_forget(l, c.name);
	if ((e = registry_find(f->g->srv.reg, c.name, strlen(c.name))) !=
	        NULL &&
	    e->owner == l) {
		/* Offered again (a resync): unchanged, nothing to tell;
		 * changed, the new one replaces it.  (A learned entry has
		 * no uid to compare: a user of another host.) */
		if (registry_entry_same(e, &a))
			goto out;
		registry_remove(f->g->srv.reg, e, &l->learned);
	}
	if (registry_find(f->g->srv.reg, c.name, strlen(c.name)) != NULL) {
		/* The same entry by another way: first wins, this one is
		 * remembered. */
		shadow_put(l, c.name, dict);
		goto out;
	}
	tbuf_init(&err);
	if (registry_add(f->g->srv.reg, &a, l, &l->learned, &err) == NULL)
		log_warnx("remote %s: entry \"%s\" not taken: %.*s", l->r->name,
		    c.name, (int)err.len, err.p);
	tbuf_free(&err);
	goto out;
refused:
	/* Refused now, taken before: kept through a reload (a narrower
	 * import, another peer_name) it would stay for good. */
	if ((e = registry_find(f->g->srv.reg, c.name, strlen(c.name))) !=
	        NULL &&
	    e->owner == l)
		registry_remove(f->g->srv.reg, e, &l->learned);
out:
	commreg_entry_clear(&c);
}

static void
unlearn(struct flink *l, const struct tl_elem *dict)
{
	struct commreg_entry c;
	struct reg_entry *e;
	struct flink *m;
	char why[200];

	if (commreg_entry_parse(dict->p, dict->len, &c, why, sizeof why) == -1)
		return;
	shadow_drop(l, c.name);
	held_forget(l, c.name);
	e = registry_find(l->f->g->srv.reg, c.name, strlen(c.name));
	if (e != NULL && e->owner == l) {
		registry_remove(l->f->g->srv.reg, e, &l->learned);
		/* Still offered by another way?  Taken from there. */
		TAILQ_FOREACH(m, &l->f->links, link)
			if (m != l && m->outgoing && shadow_take(m, c.name))
				break;
	}
	commreg_entry_clear(&c);
}

static void
forget_all(struct flink *l)
{
	struct reg_entry *e;
	size_t n = 0;

	while ((e = TAILQ_FIRST(&l->learned)) != NULL) {
		registry_remove(l->f->g->srv.reg, e, &l->learned);
		n++;
	}
	if (n > 0)
		log_info("remote %s: dropped the %zu entries it gave us",
		    l->r->name, n);
	server_flush(&l->f->g->srv);
}

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* What l gave us that its new snapshot no longer offers goes (or, in a
 * hold, is marked to go when it ends): the snapshot's names parsed once
 * and sorted, each learned name looked up. */
static void
drop_unoffered(struct flink *l, const struct tlist *snap, bool mark)
{
	struct reg_entry *e, *next;
	struct commreg_entry c;
	char why[200], **names, *key;
	size_t i, n = 0;

	if ((names = calloc(snap->n + 1, sizeof *names)) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < snap->n; i++) {
		if (commreg_entry_parse(snap->v[i].p, snap->v[i].len, &c, why,
		        sizeof why) == 0) {
			if ((names[n++] = strdup(c.name)) == NULL)
				fatal("%s", __func__);
			commreg_entry_clear(&c);
		}
	}
	qsort(names, n, sizeof *names, cmp_str);
	TAILQ_FOREACH_SAFE(e, &l->learned, owner_link, next) {
		key = (char *)e->name;
		if (n > 0 &&
		    bsearch(&key, names, n, sizeof *names, cmp_str) != NULL)
			continue;
		if (mark)
			held_mark(l, e->name);
		else
			registry_remove(l->f->g->srv.reg, e, &l->learned);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Ask l for its snapshot, in pieces when it can send them so. */
static void
send_watch(struct flink *l)
{
	const char *w[2] = {"Gateway/Watch", "pieces"};

	if (l->pieces)
		l->snap_waiting++;
	send_req(l, FQ_WATCH, w, l->pieces ? 2 : 1, NULL);
}

/*
 * A link went, and with it what it gave.  In a mesh another link may
 * offer the same entries, dropped as duplicates when they first came:
 * every other link of ours is asked for its snapshot again.
 */
static void
resync_others(struct flink *gone)
{
	struct flink *l;

	TAILQ_FOREACH(l, &gone->f->links, link)
		if (l != gone && l->outgoing && l->state == FL_READY)
			send_watch(l);
}

/* ---- lookups ------------------------------------------------------------ */

static void
lookup_done(struct flookup *lk)
{
	if (lk->q != NULL || lk->outstanding > 0)
		return;
	event_free(lk->timer);
	free(lk);
}

static void
lookup_answer(struct flookup *lk, int code, const char *res, size_t len)
{
	char msg[400];

	if (lk->q == NULL)
		return;
	if (code != 0) {
		snprintf(msg, sizeof msg,
		    "no application named \"%s\" on this host or the "
		    "gateways linked to it",
		    lk->name);
		res = msg;
		len = strlen(msg);
	}
	pending_reply(lk->q, code, res, len);
	lk->q = NULL;
}

static void
lookup_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct flookup *lk = arg;

	lookup_answer(lk, 1, NULL, 0);
	lookup_done(lk);
}

int
fed_lookup(struct fed *f, struct cmd_ctx *c, const char *name, size_t len)
{
	const char *w[2] = {"Commreg/Lookup", name};
	struct flookup *lk;
	struct flink *l;
	struct timeval tv;
	int ms = f->g->conf->lookup_timeout_ms;

	struct flink *up = NULL;
	int asked = 0;

	(void)len;
	/* With a parent in the tree, a miss goes up only (it knows what the
	 * site knows); else to every gateway we link to.  Either way only
	 * where our import patterns would take the answer. */
	TAILQ_FOREACH(l, &f->links, link)
		if (l->outgoing && l->state == FL_READY && l->r->upstream &&
		    fedname_patterns_match(l->r->imports, l->r->nimports, name))
			up = l;
	TAILQ_FOREACH(l, &f->links, link)
		if (l->outgoing && l->state == FL_READY &&
		    (up == NULL || l == up) &&
		    fedname_patterns_match(l->r->imports, l->r->nimports, name))
			asked++;
	if (asked == 0)
		return CMD_ERROR;
	if ((lk = calloc(1, sizeof *lk)) == NULL)
		fatal("%s", __func__);
	snprintf(lk->name, sizeof lk->name, "%s", name);
	if ((lk->q = pending_new(c, NULL)) == NULL) {
		free(lk);
		return CMD_ERROR;
	}
	lk->timer = evtimer_new(f->g->base, lookup_timeout, lk);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(lk->timer, &tv);
	TAILQ_FOREACH(l, &f->links, link) {
		if (!l->outgoing || l->state != FL_READY ||
		    (up != NULL && l != up) ||
		    !fedname_patterns_match(l->r->imports, l->r->nimports,
		        name))
			continue;
		lk->outstanding++;
		send_req(l, FQ_LOOKUP, w, 2, lk);
	}
	return CMD_PENDING;
}

/* e's name as it travels to remotes (fedname_export_dict) is name. */
static bool
travels_as(struct flink *l, const struct reg_entry *e, const char *name)
{
	struct tbuf d;
	struct tlist dl;
	const char *err;
	bool yes;

	tbuf_init(&d);
	tlist_init(&dl);
	fedname_export_dict(l->f->self, l->f->advertise, e, &d);
	yes = tlist_parse(&dl, d.p, d.len, &err) == 0 && dl.n > 1 &&
	      strcmp(dl.v[1].p, name) == 0;
	tlist_free(&dl);
	tbuf_free(&d);
	return yes;
}

/*
 * A lookup from a remote: among what it is given, the exact travelling
 * name, or for a bare name the best of those with that application name
 * (this host's first, then by name).  Both from the table's indexes, so
 * that a remote asking much costs each lookup what it costs at home.
 */
static int
answer_lookup(struct flink *l, const char *name, struct tbuf *r)
{
	struct registry *reg = l->f->g->srv.reg;
	struct reg_entry *hit = NULL, *x = NULL;
	size_t len = strlen(name), slen = strlen(l->f->self);

	if (strchr(name, '@') != NULL) {
		/* "calc@ann@SELF" is our "calc@ann"; a name learned from
		 * elsewhere travels as it is. */
		if (len > slen + 1 && name[len - slen - 1] == '@' &&
		    strcmp(name + len - slen, l->f->self) == 0)
			hit = registry_find(reg, name, len - slen - 1);
		if (hit == NULL || hit->path[0] != '\0')
			hit = registry_find(reg, name, len);
		if (hit != NULL &&
		    (!fedname_exportable(l->f->self, l->r, hit) ||
		        !travels_as(l, hit, name)))
			hit = NULL;
	} else
		while ((x = registry_find_app(reg, x, name, len)) != NULL)
			if (x->namelen > len &&
			    fedname_exportable(l->f->self, l->r, x) &&
			    fedname_answers_before(x, hit))
				hit = x;
	if (hit == NULL) {
		tbuf_printf(r, "no application named \"%.255s\" here", name);
		return 1;
	}
	tl_append_int(r, 0, hit->port);
	tl_append_str(r, 0, hit->path[0] == '\0' ? l->f->advertise : hit->host);
	return 0;
}

/* ---- what a remote asks of us: one row and one handler each ----------- */

/* Gateway/Hello NAME: who we are. */
static int
fed_cmd_hello(struct cmd_ctx *c)
{
	struct flink *l = c->peer->arg;

	tl_append_str(c->result, 0, "gateway");
	tl_append_str(c->result, 0, "commgwd");
	tl_append_str(c->result, 0, "name");
	tl_append_str(c->result, 0, l->f->self);
	tl_append_str(c->result, 0, "version");
	tl_append_str(c->result, 0, COMMREG_VERSION);
	/* What a gateway of an older version does not do: the opener asks
	 * for it only when offered. */
	tl_append_str(c->result, 0, "features");
	tl_append_str(c->result, 0, "pieces");
	return 0;
}

/* The snapshot as the remote is given it, in pieces as it reads: pieces
 * of one reply, or (asked with "pieces") messages of their own, so that
 * no message is larger than a piece whatever the size of the whole. */
struct fsnap {
	struct peer_stream ps;
	const struct fed *f;
	struct peer *peer;
	const struct reg_entry **v;
	size_t n, next;
	struct tbuf d;
	struct tbuf list; /* messages: the entries of the next one */
};

static bool
fsnap_next(struct peer_stream *ps, struct tbuf *out, size_t budget)
{
	struct fsnap *sn = (struct fsnap *)ps;
	struct tbuf *to = sn->ps.messages ? &sn->list : out;
	const struct reg_entry *e;
	const char *w[4];
	size_t lens[4];

	tbuf_reset(&sn->list);
	/* Well below the least link_max_message a receiver may have. */
	if (sn->ps.messages && budget > FED_PIECE)
		budget = FED_PIECE;
	while (sn->next < sn->n && to->len < budget) {
		e = sn->v[sn->next++];
		fedname_export_dict(sn->f->self, sn->f->advertise, e, &sn->d);
		tl_append(to, 0, sn->d.p, sn->d.len);
		registry_entry_unref(e);
	}
	if (sn->ps.messages && sn->list.len > 0) {
		w[0] = "Gateway/Event";
		w[1] = FED_WATCH_TAG;
		w[2] = "snap";
		w[3] = sn->list.p;
		lens[0] = strlen(w[0]);
		lens[1] = strlen(w[1]);
		lens[2] = strlen(w[2]);
		lens[3] = sn->list.len;
		peer_format_async(sn->peer, out, w, lens, 4);
	}
	return sn->next == sn->n;
}

static void
fsnap_free(struct peer_stream *ps)
{
	struct fsnap *sn = (struct fsnap *)ps;

	while (sn->next < sn->n)
		registry_entry_unref(sn->v[sn->next++]);
	free(sn->v);
	tbuf_free(&sn->d);
	tbuf_free(&sn->list);
	free(sn);
}

/* Gateway/Watch ?pieces?: the snapshot is the reply, on the wire before
 * any event (the engine holds events back while it is written).  With
 * "pieces" the entries go as Gateway/Event fed snap LIST messages and the
 * reply is their count. */
static int
fed_cmd_watch(struct cmd_ctx *c)
{
	struct flink *l = c->peer->arg;
	const struct reg_entry **v;
	struct fsnap *sn;
	size_t i, n;

	if ((sn = calloc(1, sizeof *sn)) == NULL)
		fatal("%s", __func__);
	sn->ps.next = fsnap_next;
	sn->ps.free = fsnap_free;
	sn->f = l->f;
	sn->peer = c->peer;
	tbuf_init(&sn->d);
	tbuf_init(&sn->list);
	if (c->words->n > 1) {
		if (strcmp(c->words->v[1].p, "pieces") != 0) {
			free(sn);
			tbuf_adds(c->result, "unknown option ");
			tbuf_add_quoted(c->result, c->words->v[1].p,
			    c->words->v[1].len);
			return CMD_ERROR;
		}
		sn->ps.messages = true;
	}
	v = registry_sorted(l->f->g->srv.reg, "*", 1, &n);
	for (i = 0; i < n; i++)
		if (fedname_exportable(l->f->self, l->r, v[i])) {
			registry_entry_ref(v[i]);
			v[sn->n++] = v[i];
		}
	sn->v = v;
	l->watching = true;
	log_info("remote %s watches: %zu entries given%s", l->r->name, sn->n,
	    sn->ps.messages ? ", in pieces" : "");
	if (sn->ps.messages)
		tl_append_int(c->result, 0, (int64_t)sn->n);
	return peer_reply_stream(c, &sn->ps);
}

/* Commreg/Lookup NAME, from a remote. */
static int
fed_cmd_lookup(struct cmd_ctx *c)
{
	return answer_lookup(c->peer->arg, c->words->v[1].p, c->result);
}

/* Sorted by name (cmd_table_find): what a link we accepted may ask. */
static const struct cmd_entry fed_serve_cmds[] = {
    {"Commreg/Lookup", 1, 1, "name", fed_cmd_lookup},
    {"Gateway/Hello", 1, 1, "name", fed_cmd_hello},
    {"Gateway/Watch", 0, 1, "?pieces?", fed_cmd_watch},
};

static const struct cmd_entry *
fed_serve_find(const char *name, size_t len)
{
	return cmd_table_find(fed_serve_cmds,
	    sizeof fed_serve_cmds / sizeof fed_serve_cmds[0], name, len);
}

/* Gateway/Event TAG add|remove ENTRY: on a link we opened. */
static int
fed_cmd_event(struct cmd_ctx *c)
{
	struct flink *l = c->peer->arg;
	const struct tlist *w = c->words;

	if (strcmp(w->v[2].p, "snap") == 0) {
		/* A piece of the snapshot we asked for (Gateway/Watch
		 * pieces): kept until its reply says it is whole. */
		if (l->snap_waiting == 0) {
			tbuf_adds(c->result,
			    "a piece of a snapshot not asked for");
			return 1;
		}
		if (l->snap.len + w->v[3].len + 1 >
		    (size_t)l->f->g->conf->link_max_snapshot) {
			peer_fail(c->peer,
			    "its snapshot is larger than link_max_snapshot "
			    "(%d bytes)",
			    l->f->g->conf->link_max_snapshot);
			return 1;
		}
		if (l->snap.len > 0)
			tbuf_addc(&l->snap, ' ');
		tbuf_add(&l->snap, w->v[3].p, w->v[3].len);
		if (l->snap.failed) {
			peer_fail(c->peer, "out of memory");
			return 1;
		}
		return 0;
	}
	if (l->state != FL_READY)
		return 0; /* before the snapshot: it will carry it */
	if (strcmp(w->v[2].p, "add") == 0)
		learn(l, &w->v[3]);
	else if (strcmp(w->v[2].p, "remove") == 0)
		unlearn(l, &w->v[3]);
	else {
		tbuf_printf(c->result, "bad event \"%.20s\"", w->v[2].p);
		return 1;
	}
	server_flush(&l->f->g->srv);
	return 0;
}

static const struct cmd_entry fed_link_cmds[] = {
    {"Gateway/Event", 3, 3, "tag add|remove entry", fed_cmd_event},
};

static const struct cmd_entry *
fed_link_find(const char *name, size_t len)
{
	return cmd_table_find(fed_link_cmds,
	    sizeof fed_link_cmds / sizeof fed_link_cmds[0], name, len);
}

/* ---- what a remote answers us ------------------------------------------- */

static void link_close(struct flink *, const char *why);

/* Gateway/Hello's answer {... features {pieces ...}}: a dict. */
static bool
hello_has_pieces(const char *res, size_t len)
{
	struct tlist d, fs;
	const char *why;
	bool yes = false;
	size_t i, j;

	tlist_init(&d);
	tlist_init(&fs);
	if (tlist_parse(&d, res, len, &why) == 0)
		for (i = 0; i + 1 < d.n && !yes; i += 2)
			if (strcmp(d.v[i].p, "features") == 0 &&
			    tlist_parse(&fs, d.v[i + 1].p, d.v[i + 1].len,
			        &why) == 0)
				for (j = 0; j < fs.n && !yes; j++)
					yes = strcmp(fs.v[j].p, "pieces") == 0;
	tlist_free(&fs);
	tlist_free(&d);
	return yes;
}

/* The engine's answer to a request of ours: the remote's (0 or 1), or
 * none (-1: the deadline passed; a lost link takes its requests itself). */
static void
fed_replied(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct freq *q = arg;
	struct flink *l = q->l;
	struct tlist snap;
	const char *why;
	size_t i;

	TAILQ_REMOVE(&l->reqs, q, link);
	switch (q->kind) {
	case FQ_HELLO:
		if (code != 0) {
			peer_fail(p, "%s",
			    code == -1 ? "no answer to Gateway/Hello"
			               : "it did not greet us as a "
			                 "gateway");
			break;
		}
		l->pieces = hello_has_pieces(res, len);
		send_watch(l);
		break;
	case FQ_WATCH:
		if (q->pieces)
			l->snap_waiting--;
		if (code != 0) {
			peer_fail(p, "%s",
			    code == -1 ? "no answer to Gateway/Watch"
			               : "it refused our watch");
			break;
		}
		tlist_init(&snap);
		if (q->pieces) {
			/* The reply counts what its pieces carried. */
			char *end;
			unsigned long long want;

			want = strtoull(res, &end, 10);
			if (tlist_parse(&snap,
			        l->snap.p != NULL ? l->snap.p : "", l->snap.len,
			        &why) != 0 ||
			    end == res || snap.n != want) {
				size_t got = snap.n;

				tlist_free(&snap);
				tbuf_free(&l->snap);
				peer_fail(p,
				    "its snapshot came incomplete "
				    "(%zu entries of %.20s)",
				    got, res);
				break;
			}
			tbuf_free(&l->snap);
		} else if (tlist_parse(&snap, res, len, &why) != 0) {
			/* Not an empty offer: what it gave stays held, as
			 * for a lost link, and the link is made again. */
			tlist_free(&snap);
			peer_fail(p, "its snapshot is not a list: %s", why);
			break;
		}
		/* What it offers that another link gave us is remembered
		 * afresh from this snapshot (learn). */
		shadow_clear(l);
		if (l->state == FL_READY)
			/* Asked again because another link went: keep what
			 * is still offered, take what we now lack. */
			drop_unoffered(l, &snap, false);
		else if (l->holding) {
			/* Back within the hold: the same entries stay as
			 * they are, and what it lacks goes when it ends. */
			held_clear(l);
			drop_unoffered(l, &snap, true);
		} else
			forget_all(l); /* a fresh snapshot replaces what was */
		l->state = FL_READY;
		l->attempt = 0;
		for (i = 0; i < snap.n; i++)
			learn(l, &snap.v[i]);
		log_info("remote %s: linked, %zu entries offered", l->r->name,
		    snap.n);
		tlist_free(&snap);
		server_flush(&l->f->g->srv);
		break;
	case FQ_LOOKUP:
		q->lk->outstanding--;
		if (code == 0)
			lookup_answer(q->lk, 0, res, len);
		else if (q->lk->outstanding == 0)
			lookup_answer(q->lk, 1, NULL, 0);
		lookup_done(q->lk);
		break;
	}
	free(q);
}

/* The engine lets go of a link's peer: the link is over. */
static void
fed_gone(struct peer *p, const char *why)
{
	struct flink *l = p->arg;

	/* Its requests are the engine's until the peer is freed: take them
	 * back now, or the engine would answer them after us. */
	link_reqs_drop(l);
	l->peer = NULL;
	link_close(l, why != NULL ? why : "closed");
}

/* After the TLS set-up, an error of the link is still OpenSSL's to tell
 * (a certificate refused by a TLS 1.3 server after our handshake). */
static void
fed_bev_error(struct peer *p, short what, char *buf, size_t len)
{
	tls_reason(p->bev, what, buf, len);
}

static const struct peer_ops fed_serve_ops = {.find = fed_serve_find,
    .gone = fed_gone,
    .bev_error = fed_bev_error};
static const struct peer_ops fed_link_ops = {.find = fed_link_find,
    .gone = fed_gone,
    .bev_error = fed_bev_error};

/* ---- TLS ------------------------------------------------------------------
 */

/* Why a TLS link failed: a certificate refused says so first. */
static void
tls_reason(struct bufferevent *bev, short what, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	char first[200] = "";
	long vr;

	if (ssl != NULL && (vr = SSL_get_verify_result(ssl)) != X509_V_OK)
		snprintf(first, sizeof first, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
	tlslink_reason(bev, what, first, buf, len);
}

/* An accepted link's certificate must be one of our remotes'. */
static const struct gwconf_remote *
identify(struct flink *l)
{
	const struct gwconf *conf = l->f->g->conf;
	SSL *ssl = bufferevent_openssl_get_ssl(l->bev);
	X509 *cert = SSL_get_peer_certificate(ssl);
	const struct gwconf_remote *r = NULL;
	size_t i;

	if (cert == NULL)
		return NULL;
	for (i = 0; i < conf->nremotes && r == NULL; i++)
		if (X509_check_host(cert, conf->remotes[i].peer_name, 0, 0,
		        NULL) == 1)
			r = &conf->remotes[i];
	X509_free(cert);
	return r;
}

/* TLS is up: from here on the engine speaks on the connection. */
static void
tls_up(struct flink *l)
{
	const char *w[2] = {"Gateway/Hello", l->f->self};
	struct bufferevent *bev = l->bev;

	evtimer_del(l->deadline);
	l->bev = NULL;
	l->peer = peer_new_bev(&l->f->g->srv.eng, bev, !l->outgoing, l->addr,
	    &l->f->lim, l->outgoing ? &fed_link_ops : &fed_serve_ops, l);
	if (l->peer == NULL) {
		link_close(l, "out of memory");
		return;
	}
	if (!l->outgoing)
		return;
	l->state = FL_HELLO;
	/* The watch follows the greeting's answer, which says whether the
	 * snapshot may come in pieces (fed_replied). */
	l->pieces = false;
	l->snap_waiting = 0;
	tbuf_free(&l->snap);
	send_req(l, FQ_HELLO, w, 2, NULL);
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct flink *l = arg;
	char why[600];

	if (what & BEV_EVENT_CONNECTED) {
		if (l->outgoing) {
			tls_up(l);
			return;
		}
		if ((l->r = identify(l)) == NULL) {
			char cn[256] = "?";
			X509 *pc = SSL_get_peer_certificate(
			    bufferevent_openssl_get_ssl(l->bev));

			if (pc != NULL) {
				X509_NAME_get_text_by_NID(X509_get_subject_name(
				                              pc),
				    NID_commonName, cn, (int)sizeof cn);
				X509_free(pc);
			}
			log_limited(l->addr,
			    "refused link from %s: its certificate "
			    "(CN %s) names no [remote] of ours",
			    l->addr, cn);
			link_close(l, NULL);
			return;
		}
		log_info("link from %s: remote %s", l->addr, l->r->name);
		tls_up(l);
		return;
	}
	tls_reason(l->bev, what, why, sizeof why);
	if (!l->outgoing)
		log_limited(l->addr, "refused link from %s: %s", l->addr, why);
	link_close(l, l->outgoing ? why : NULL);
}

/* The TLS set-up as a whole, however slowly its bytes come. */
static void
tls_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct flink *l = arg;

	if (!l->outgoing)
		log_limited(l->addr,
		    "refused link from %s: TLS not set up within %d s", l->addr,
		    l->f->lim.handshake_ms / 1000);
	link_close(l, l->outgoing ? "TLS not set up in time" : NULL);
}

/* ---- life of a link ------------------------------------------------------ */

static struct flink *
link_new(struct fed *f, const struct gwconf_remote *r, bool outgoing)
{
	struct flink *l;

	if ((l = calloc(1, sizeof *l)) == NULL)
		fatal("%s", __func__);
	l->f = f;
	l->r = r;
	l->outgoing = outgoing;
	TAILQ_INIT(&l->reqs);
	TAILQ_INIT(&l->learned);
	TAILQ_INIT(&l->shadowed);
	TAILQ_INIT(&l->heldl);
	if ((l->deadline = evtimer_new(f->g->base, tls_deadline_cb, l)) ==
	        NULL ||
	    (l->hold = evtimer_new(f->g->base, hold_cb, l)) == NULL)
		fatalx("event_new failed");
	TAILQ_INSERT_TAIL(&f->links, l, link);
	if (!outgoing)
		f->accepted++;
	return l;
}

static void
link_free(struct flink *l)
{
	tbuf_free(&l->snap);
	shadow_clear(l);
	if (l->shadow != NULL)
		registry_free(l->shadow);
	held_clear(l);
	if (l->held != NULL)
		registry_free(l->held);
	event_free(l->hold);
	TAILQ_REMOVE(&l->f->links, l, link);
	if (!l->outgoing)
		l->f->accepted--;
	if (l->retry != NULL)
		event_free(l->retry);
	event_free(l->deadline);
	free(l);
}

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	link_open(arg);
}

/* What waits on a link is answered: lookups count it as a miss. */
static void
link_reqs_drop(struct flink *l)
{
	struct freq *q;

	while ((q = TAILQ_FIRST(&l->reqs)) != NULL) {
		TAILQ_REMOVE(&l->reqs, q, link);
		if (l->peer != NULL)
			peer_request_cancel(q->req);
		if (q->kind == FQ_LOOKUP) {
			q->lk->outstanding--;
			if (q->lk->outstanding == 0)
				lookup_answer(q->lk, 1, NULL, 0);
			lookup_done(q->lk);
		}
		free(q);
	}
}

/* The link is over (its peer gone, or TLS never came up): what it gave
 * goes, what waits on it is answered, and a link of ours is tried again
 * later. */
static void
link_close(struct flink *l, const char *why)
{
	struct timeval tv;
	int ms;

	tlslink_release(l->deadline, &l->bev, &l->peer);
	link_reqs_drop(l);
	tbuf_free(&l->snap);
	l->snap_waiting = 0;
	if (!l->outgoing) {
		if (l->r != NULL && why != NULL)
			log_info("remote %s: link from %s closed: %s",
			    l->r->name, l->addr, why);
		link_free(l);
		return;
	}
	if (why != NULL)
		log_warnx("remote %s (%s): %s %s", l->r->name, l->addr,
		    l->state == FL_READY ? "link lost:" : "cannot link:", why);
	shadow_clear(l);
	if (!TAILQ_EMPTY(&l->learned) && !l->holding) {
		struct reg_entry *e;
		size_t n = 0;

		TAILQ_FOREACH(e, &l->learned, owner_link)
			n++;
		log_info("remote %s: keeping the %zu entries it gave for %d ms",
		    l->r->name, n, FED_HOLD_MS);
		hold_start(l);
	}
	l->state = FL_CONNECTING;
	ms = FED_RETRY_MIN_MS << (l->attempt < 6 ? l->attempt : 6);
	if (ms > FED_RETRY_MAX_MS)
		ms = FED_RETRY_MAX_MS;
	ms = ms / 2 + (int)arc4random_uniform((uint32_t)ms / 2 + 1);
	l->attempt++;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(l->retry, &tv);
}

static int
resolve_addr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *sl)
{
	struct addrinfo hints, *res;
	char p[16];

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(p, sizeof p, "%d", port);
	if (getaddrinfo(host, p, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void
link_open(struct flink *l)
{
	struct fed *f = l->f;
	struct sockaddr_storage ss;
	socklen_t sl;
	SSL *ssl;

	snprintf(l->addr, sizeof l->addr, "%.80s:%d", l->r->host, l->r->port);
	if (resolve_addr(l->r->host, l->r->port, &ss, &sl) == -1) {
		link_close(l, "cannot resolve its address");
		return;
	}
	if ((ssl = SSL_new(f->ctx)) == NULL)
		fatalx("SSL_new failed");
	/* Its certificate must carry the name we expect, checked in the
	 * handshake. */
	SSL_set1_host(ssl, l->r->peer_name);
	SSL_set_tlsext_host_name(ssl, l->r->peer_name);
	l->bev = tlslink_bev_new(f->g->base, -1, ssl, false, tls_event_cb, l,
	    l->deadline, l->f->lim.handshake_ms);
	if (l->bev == NULL)
		fatalx("bufferevent_openssl_socket_new failed");
	l->state = FL_CONNECTING;
	if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&ss,
	        (int)sl) == -1) {
		link_close(l, "connect failed");
		return;
	}
	tlslink_tune_socket(bufferevent_getfd(l->bev), &f->lim);
}

/* Out of descriptors: rest the listener (listenrest.h, as the
 * registry's does) rather than spin on the connection the kernel keeps
 * queued. */
static void
accept_error(struct evconnlistener *lis, void *arg)
{
	struct fed *f = arg;

	listen_rest_accept_error(lis, f->accept_rest, EVUTIL_SOCKET_ERROR(),
	    "federation");
}

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct fed *f = arg;
	char host[NI_MAXHOST] = "?", serv[NI_MAXSERV], addr[96] = "?";
	struct flink *l;
	SSL *ssl;
	int same = 0;

	if (getnameinfo(sa, (socklen_t)salen, host, sizeof host, serv,
	        sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(addr, sizeof addr, "%.64s:%.16s", host, serv);
	if (f->accepted >= TLSLINK_MAX_ACCEPTED) {
		log_limited("too many links",
		    "refused link from %s: already %zu links from others "
		    "(limit)",
		    addr, f->accepted);
		close(fd);
		return;
	}
	TAILQ_FOREACH(l, &f->links, link)
		if (!l->outgoing && strcmp(l->src, host) == 0)
			same++;
	if (same >= TLSLINK_MAX_PER_SOURCE) {
		log_limited(host,
		    "refused link from %s: already %d links from %s (limit)",
		    addr, same, host);
		close(fd);
		return;
	}
	tlslink_tune_socket(fd, &f->lim);
	l = link_new(f, NULL, false);
	snprintf(l->addr, sizeof l->addr, "%s", addr);
	snprintf(l->src, sizeof l->src, "%.63s", host);
	if ((ssl = SSL_new(f->ctx)) == NULL)
		fatalx("SSL_new failed");
	l->bev = tlslink_bev_new(f->g->base, fd, ssl, true, tls_event_cb, l,
	    l->deadline, l->f->lim.handshake_ms);
	if (l->bev == NULL) {
		close(fd);
		link_free(l);
	}
}

/* ---- setting up -------------------------------------------------------- */

/* Our name: the first DNS subjectAltName of our certificate, else its
 * CN. */
static void
own_name(SSL_CTX *ctx, char *buf, size_t len)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	GENERAL_NAMES *names;
	int i;

	buf[0] = '\0';
	if (cert == NULL)
		return;
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_DNS) {
			snprintf(buf, len, "%.*s",
			    ASN1_STRING_length(g->d.dNSName),
			    (const char *)ASN1_STRING_get0_data(g->d.dNSName));
			break;
		}
	}
	GENERAL_NAMES_free(names);
	if (buf[0] == '\0')
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
		    NID_commonName, buf, (int)len);
}

/* A key with a passphrase is refused, never asked for on a terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/* What OpenSSL says of its latest error, in words; then forget them. */
static void
ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = ERR_reason_error_string(e);

	if (e == 0)
		snprintf(buf, len, "no reason given");
	else if (r != NULL)
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static BIO *
pem_bio(const struct gwconf_blob *b)
{
	BIO *bio;

	/* gwconf bounds a PEM file far below INT_MAX. */
	if ((bio = BIO_new_mem_buf(b->data, (int)b->len)) == NULL)
		fatalx("BIO_new_mem_buf failed");
	return bio;
}

/*
 * The certificate, then the chain that may follow it in the same file (as
 * SSL_CTX_use_certificate_chain_file reads one), into ctx; *cert is the
 * certificate.
 */
static int
tls_certificate(SSL_CTX *ctx, const struct gwconf *c, X509 **cert, char *err,
    size_t errlen)
{
	BIO *bio = pem_bio(&c->cert_pem);
	X509 *x;
	unsigned long last;
	char e[256];
	int rc = -1;

	if ((*cert = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL)) ==
	    NULL) {
		ssl_reason(e, sizeof e);
		reason(err, errlen,
		    "certificate %s: no PEM certificate in it "
		    "(%s)",
		    c->certificate, e);
		goto out;
	}
	if (SSL_CTX_use_certificate(ctx, *cert) != 1) {
		ssl_reason(e, sizeof e);
		reason(err, errlen, "certificate %s: cannot use it (%s)",
		    c->certificate, e);
		goto out;
	}
	while (
	    (x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			ssl_reason(e, sizeof e);
			reason(err, errlen,
			    "certificate %s: cannot use the "
			    "chain after it (%s)",
			    c->certificate, e);
			goto out;
		}
	}
	/* The end of the file reads as "no start line"; anything else is a
	 * broken PEM block after the certificate. */
	last = ERR_peek_last_error();
	if (last != 0 && (ERR_GET_LIB(last) != ERR_LIB_PEM ||
	                     ERR_GET_REASON(last) != PEM_R_NO_START_LINE)) {
		ssl_reason(e, sizeof e);
		reason(err, errlen,
		    "certificate %s: bad PEM after the "
		    "certificate (%s)",
		    c->certificate, e);
		goto out;
	}
	ERR_clear_error();
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

/* The key, which must be cert's. */
static int
tls_key(SSL_CTX *ctx, const struct gwconf *c, X509 *cert, char *err,
    size_t errlen)
{
	BIO *bio = pem_bio(&c->key_pem);
	EVP_PKEY *pkey;
	char e[256];
	int rc = -1;

	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) ==
	    NULL) {
		ssl_reason(e, sizeof e);
		reason(err, errlen,
		    "key %s: no PEM private key in it, or one "
		    "with a passphrase (%s)",
		    c->key, e);
		goto out;
	}
	if (X509_check_private_key(cert, pkey) != 1) {
		ERR_clear_error();
		reason(err, errlen, "key %s does not match the certificate %s",
		    c->key, c->certificate);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_reason(e, sizeof e);
		reason(err, errlen, "key %s: cannot use it (%s)", c->key, e);
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return rc;
}

/* Every certificate (and CRL) of the CA file, as
 * SSL_CTX_load_verify_locations takes them. */
static int
tls_ca(SSL_CTX *ctx, const struct gwconf *c, char *err, size_t errlen)
{
	BIO *bio = pem_bio(&c->ca_pem);
	STACK_OF(X509_INFO) * v;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_INFO *xi;
	char e[256];
	int i, n = 0, rc = -1;

	if ((v = PEM_X509_INFO_read_bio(bio, NULL, no_passphrase, NULL)) ==
	    NULL) {
		ssl_reason(e, sizeof e);
		reason(err, errlen, "ca %s: not a PEM file (%s)", c->ca, e);
		goto out;
	}
	for (i = 0; i < sk_X509_INFO_num(v); i++) {
		xi = sk_X509_INFO_value(v, i);
		if ((xi->x509 != NULL &&
		        X509_STORE_add_cert(store, xi->x509) != 1) ||
		    (xi->crl != NULL &&
		        X509_STORE_add_crl(store, xi->crl) != 1)) {
			ssl_reason(e, sizeof e);
			reason(err, errlen, "ca %s: cannot use it (%s)", c->ca,
			    e);
			goto out;
		}
		if (xi->x509 != NULL)
			n++;
	}
	if (n == 0) {
		reason(err, errlen, "ca %s: no PEM certificate in it", c->ca);
		goto out;
	}
	ERR_clear_error();
	rc = 0;
out:
	sk_X509_INFO_pop_free(v, X509_INFO_free);
	BIO_free(bio);
	return rc;
}

/*
 * The one place a TLS context is made (fed.h, fed_tls_context): of the
 * bytes the configuration read, so that what --check-config, the start
 * and a reload judge is what is served.
 */
static SSL_CTX *
tls_setup(const struct gwconf *c, char *self, size_t selflen, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;
	X509 *cert = NULL;

	ERR_clear_error();
	if (c->certificate == NULL || c->key == NULL || c->ca == NULL ||
	    c->cert_pem.data == NULL || c->key_pem.data == NULL ||
	    c->ca_pem.data == NULL) {
		reason(err, errlen,
		    "certificate, key and ca are needed, and "
		    "were not read");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL) {
		reason(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (tls_certificate(ctx, c, &cert, err, errlen) == -1 ||
	    tls_key(ctx, c, cert, err, errlen) == -1 ||
	    tls_ca(ctx, c, err, errlen) == -1)
		goto fail;
	/* Certificates in both directions, from our CA only. */
	SSL_CTX_set_verify(ctx,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	own_name(ctx, self, selflen);
	if (self[0] == '\0') {
		reason(err, errlen,
		    "certificate %s carries no DNS name or CN to call this "
		    "gateway by",
		    c->certificate);
		goto fail;
	}
	if (!gwconf_gateway_name_ok(self)) {
		reason(err, errlen,
		    "certificate %s calls this gateway \"%.100s\", which is "
		    "not a host name (letters, digits, \".\", \"-\", \"_\"): "
		    "names of entries (NAME@USER@GATEWAY) would break",
		    c->certificate, self);
		goto fail;
	}
	X509_free(cert);
	return ctx;
fail:
	X509_free(cert);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
fed_tls_context(const struct gwconf *c, char *err, size_t errlen)
{
	char self[256];

	return tls_setup(c, self, sizeof self, err, errlen);
}

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static char *
dup_or_null(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		fatal("%s", __func__);
	return d;
}

struct fed *
fed_start(struct gateway *g, struct fed *old, SSL_CTX *ctx, char *err,
    size_t errlen)
{
	const struct gwconf *c = g->conf;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct fed *f, *kept = NULL;
	struct flink *l;
	size_t i;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (c->listen_host == NULL && c->nremotes == 0) {
		if (ctx != NULL)
			SSL_CTX_free(ctx);
		fed_free(old);
		return NULL;
	}
	if ((f = calloc(1, sizeof *f)) == NULL)
		fatal("%s", __func__);
	f->g = g;
	TAILQ_INIT(&f->links);
	TAILQ_INIT(&f->kept);
	if ((f->accept_rest = listen_rest_new(g->base, &f->listener)) == NULL)
		fatalx("event_new failed");
	/* The gateway's own limits, with room for a large snapshot. */
	f->lim = g->srv.lim;
	f->lim.max_message = (size_t)c->link_max_message;
	f->lim.partial_ms = FED_PARTIAL_MS;
	f->lim.handshake_ms = FED_HANDSHAKE_S * 1000;
	/* Made by the caller of what this configuration read (a reload, for
	 * a renewed certificate), else here of the same. */
	if (ctx == NULL)
		ctx = tls_setup(c, f->self, sizeof f->self, err, errlen);
	else
		own_name(ctx, f->self, sizeof f->self);
	if ((f->ctx = ctx) == NULL) {
		fed_free(old);
		fed_free(f);
		return NULL;
	}
	if (old != NULL && old->listener != NULL &&
	    same(old->listen_host, c->listen_host) &&
	    old->listen_port == c->listen_port) {
		f->listener = old->listener;
		old->listener = NULL;
		evconnlistener_set_cb(f->listener, accept_cb, f);
	}
	if (c->listen_host != NULL && strcmp(c->listen_host, "0.0.0.0") != 0 &&
	    strcmp(c->listen_host, "::") != 0)
		snprintf(f->advertise, sizeof f->advertise, "%s",
		    c->listen_host);
	else
		snprintf(f->advertise, sizeof f->advertise, "%s", g->host);
	f->listen_host = dup_or_null(c->listen_host);
	f->listen_port = c->listen_port;
	if (c->listen_host != NULL && f->listener == NULL) {
		if (resolve_addr(c->listen_host, c->listen_port, &ss, &sl) ==
		        -1 ||
		    (f->listener = evconnlistener_new_bind(g->base, accept_cb,
		         f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
		         (struct sockaddr *)&ss, (int)sl)) == NULL) {
			if (old == NULL || old->listener == NULL) {
				reason(err, errlen, "cannot listen on %s:%d",
				    c->listen_host, c->listen_port);
				fed_free(old);
				fed_free(f);
				return NULL;
			}
			log_warnx("federation: cannot listen on %s:%d; "
			          "keeping %s:%d",
			    c->listen_host, c->listen_port, old->listen_host,
			    old->listen_port);
			f->listener = old->listener;
			old->listener = NULL;
			evconnlistener_set_cb(f->listener, accept_cb, f);
			free(f->listen_host);
			f->listen_host = dup_or_null(old->listen_host);
			f->listen_port = old->listen_port;
		}
	}
	/* Freed once the new links took what its links gave (kept_take). */
	kept = old;
	if (f->listener != NULL) {
		/* An old one may have been resting when it was handed over. */
		evconnlistener_set_error_cb(f->listener, accept_error);
		evconnlistener_enable(f->listener);
	}
	registry_observe(g->srv.reg, observe, f);
	for (i = 0; i < c->nremotes; i++) {
		l = link_new(f, &c->remotes[i], true);
		if ((l->retry = evtimer_new(g->base, retry_cb, l)) == NULL)
			fatalx("event_new failed");
		if (kept != NULL)
			kept_take(kept, l);
		link_open(l);
	}
	if (kept != NULL)
		fed_free(kept);
	log_info("federation: this gateway is %s, listening on %s:%d, %zu "
	         "remotes",
	    f->self, c->listen_host != NULL ? c->listen_host : "(none)",
	    c->listen_port, c->nremotes);
	return f;
}

/* What l gave goes to f->kept, for the next configuration's link to
 * the same remote (fed_start). */
static void
kept_put(struct fed *f, struct flink *l)
{
	struct fkept *k;
	struct reg_entry *e;

	if ((k = calloc(1, sizeof *k)) == NULL ||
	    (k->remote = strdup(l->r->name)) == NULL)
		fatal("%s", __func__);
	TAILQ_INIT(&k->entries);
	while ((e = TAILQ_FIRST(&l->learned)) != NULL) {
		TAILQ_REMOVE(&l->learned, e, owner_link);
		e->owner = k;
		TAILQ_INSERT_TAIL(&k->entries, e, owner_link);
	}
	TAILQ_INSERT_TAIL(&f->kept, k, link);
}

/* The new link l to a remote of old's configuration takes what that one
 * gave, and holds it until its own snapshot has come (FED_HOLD_MS). */
static void
kept_take(struct fed *old, struct flink *l)
{
	struct fkept *k;
	struct reg_entry *e;

	TAILQ_FOREACH(k, &old->kept, link)
		if (strcmp(k->remote, l->r->name) == 0)
			break;
	if (k == NULL)
		return;
	while ((e = TAILQ_FIRST(&k->entries)) != NULL) {
		TAILQ_REMOVE(&k->entries, e, owner_link);
		e->owner = l;
		TAILQ_INSERT_TAIL(&l->learned, e, owner_link);
	}
	hold_start(l);
}

/* What no link of the new configuration took goes (a remote removed). */
static void
kept_drop(struct fed *f)
{
	struct fkept *k;
	struct reg_entry *e;

	while ((k = TAILQ_FIRST(&f->kept)) != NULL) {
		TAILQ_REMOVE(&f->kept, k, link);
		while ((e = TAILQ_FIRST(&k->entries)) != NULL)
			registry_remove(f->g->srv.reg, e, &k->entries);
		free(k->remote);
		free(k);
	}
}

void
fed_stop_links(struct fed *f)
{
	struct flink *l;
	struct reg_entry *e;
	struct bufferevent *bev;

	registry_unobserve(f->g->srv.reg, f);
	while ((l = TAILQ_FIRST(&f->links)) != NULL) {
		bev = l->peer != NULL ? l->peer->bev : l->bev;
		if (bev != NULL) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);

			/* Say goodbye (close_notify), so the other end logs a
			 * close, not an unexpected EOF.  One small write on a
			 * nonblocking socket: never waits. */
			if (ssl != NULL && SSL_is_init_finished(ssl))
				SSL_shutdown(ssl);
		}
		if (l->bev != NULL) {
			bufferevent_free(l->bev);
			l->bev = NULL;
		}
		link_reqs_drop(l);
		if (l->peer != NULL) {
			l->peer->ops = NULL;
			l->peer->arg = NULL;
			peer_close(l->peer);
			l->peer = NULL;
		}
		if (l->outgoing && l->r != NULL && !TAILQ_EMPTY(&l->learned))
			kept_put(f, l);
		while ((e = TAILQ_FIRST(&l->learned)) != NULL)
			registry_remove(f->g->srv.reg, e, &l->learned);
		link_free(l);
	}
}

void
fed_free(struct fed *f)
{
	if (f == NULL)
		return;
	fed_stop_links(f);
	kept_drop(f);
	if (f->listener != NULL)
		evconnlistener_free(f->listener);
	if (f->accept_rest != NULL)
		event_free(f->accept_rest);
	if (f->ctx != NULL)
		SSL_CTX_free(f->ctx);
	free(f->listen_host);
	free(f);
}

void
fed_stats(const struct fed *f, struct tbuf *r)
{
	static const char *const states[] = {"connecting", "hello", "ready"};
	const struct flink *l;
	const struct reg_entry *e;
	struct tbuf links, d;
	size_t n;

	tbuf_init(&links);
	tbuf_init(&d);
	TAILQ_FOREACH(l, &f->links, link) {
		n = 0;
		TAILQ_FOREACH(e, &l->learned, owner_link)
			n++;
		tbuf_reset(&d);
		tl_append_str(&d, 0, "remote");
		tl_append_str(&d, 0, l->r != NULL ? l->r->name : "");
		tl_append_str(&d, 0, "direction");
		tl_append_str(&d, 0, l->outgoing ? "out" : "in");
		tl_append_str(&d, 0, "address");
		tl_append_str(&d, 0, l->addr);
		tl_append_str(&d, 0, "state");
		tl_append_str(&d, 0, states[l->state]);
		tl_append_str(&d, 0, "entries");
		tl_append_int(&d, 0, (long long)n);
		tl_append(&links, 0, d.p, d.len);
	}
	tl_append_str(r, 0, "links");
	tl_append(r, 0, links.p, links.len);
	tbuf_free(&d);
	tbuf_free(&links);
}

const char *
fed_advertise(const struct fed *f)
{
	return f->advertise;
}
