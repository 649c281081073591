/*
 * The host gateway's registry: who may connect, the commands, and
 * reloading the policy (gateway.h).
 *
 * Entries are stored under NAME@USER (the user registry's own name for
 * it, then its owner's login), so two users' "editor" never collide and
 * one user's can be addressed exactly; a bare name resolves to the
 * asker's own first, then to the first by name of any user
 * (docs/gateway.md).
 */
#define _GNU_SOURCE /* struct ucred */
#include <sys/types.h>
#include <sys/socket.h>

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fed.h"
#include "fedname.h"
#include "gateway.h"
#include "handlers.h"
#include "log.h"
#include "policy.h"
#include "portowner.h"
#include "registry.h"
#include "tcllist.h"

static struct gateway *
gw_of(struct server *s)
{
	return s->data;
}

/* ---- users ----------------------------------------------------------- */

static struct gw_user *
user_find(struct gateway *g, uid_t uid)
{
	struct gw_user *u;

	TAILQ_FOREACH(u, &g->users, link)
		if (u->uid == uid)
			return u;
	return NULL;
}

/* The user's groups from the group database: asked when the user comes,
 * and again at every reload, so that a user taken out of a group loses
 * what the group's rules gave (a user no longer in the database keeps no
 * group at all). */
static void
user_groups(struct gw_user *u)
{
	struct passwd *pw;
	int n;

	u->ngroups = 0;
	if ((pw = getpwuid(u->uid)) == NULL)
		return;
	n = (int)(sizeof u->groups / sizeof u->groups[0]);
	if (getgrouplist(pw->pw_name, pw->pw_gid, u->groups, &n) != -1)
		u->ngroups = (size_t)n;
}

/* The user's name and groups come from the system's databases, asked
 * once per user while it has a connection or an entry here (and the
 * groups again at each reload). */
static struct gw_user *
user_get(struct gateway *g, uid_t uid, gid_t gid)
{
	struct gw_user *u;
	struct passwd *pw;

	if ((u = user_find(g, uid)) != NULL)
		return u;
	if ((u = calloc(1, sizeof *u)) == NULL)
		fatal("%s", __func__);
	u->uid = uid;
	u->gid = gid;
	if ((pw = getpwuid(uid)) != NULL)
		snprintf(u->name, sizeof u->name, "%s", pw->pw_name);
	else
		snprintf(u->name, sizeof u->name, "%lu", (unsigned long)uid);
	user_groups(u);
	TAILQ_INSERT_TAIL(&g->users, u, link);
	return u;
}

static void
user_put(struct gateway *g, struct gw_user *u)
{
	if (u->conns > 0 || u->entries > 0)
		return;
	TAILQ_REMOVE(&g->users, u, link);
	free(u);
}

/* Every add and remove of an entry: the owner's count (quotas). */
static void
count_entries(const struct reg_entry *e, bool added, void *arg)
{
	struct gateway *g = arg;
	struct gw_user *u;

	if ((u = user_find(g, e->uid)) == NULL)
		return;
	u->entries += added ? 1 : -1;
	user_put(g, u);
}

/* ---- connections -------------------------------------------------------- */

/* The kernel says who connected; nothing the peer says about itself is
 * believed (docs/security.md). */
static int
gw_admit(struct server *s, struct peer *p, char *err, size_t errlen)
{
	struct gateway *g = gw_of(s);
	struct ucred cr;
	socklen_t len = sizeof cr;
	struct gw_user *u;

	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1)
		return reason(err, errlen, "SO_PEERCRED: %s", strerror(errno));
	u = user_get(g, cr.uid, cr.gid);
	if (u->conns >= GW_CONNS_PER_UID) {
		reason(err, errlen,
		    "uid %lu already holds %d connections (the limit)",
		    (unsigned long)cr.uid, u->conns);
		user_put(g, u);
		return -1;
	}
	u->conns++;
	p->uid = cr.uid;
	p->gid = cr.gid;
	p->pid = cr.pid;
	p->data = u;
	snprintf(p->addr, sizeof p->addr, "%.40s(pid %ld)", u->name,
	    (long)cr.pid);
	return 0;
}

static void
gw_gone(struct peer *p)
{
	struct gw_user *u = p->data;

	if (u == NULL)
		return;
	u->conns--;
	/* Its entries go next (server.c), and with them the user record
	 * (count_entries) if nothing else holds it. */
	if (u->entries == 0)
		user_put(gw_of(p->srv), u);
}

/* ---- commands ---------------------------------------------------------- */

static int
gw_hello(struct cmd_ctx *c)
{
	struct gateway *g = gw_of(c->srv);
	struct gw_user *u = c->peer->data;
	struct tbuf *r = c->result;

	tl_append_str(r, 0, "gateway");
	tl_append_str(r, 0, "commgwd");
	tl_append_str(r, 0, "version");
	tl_append_str(r, 0, COMMREG_VERSION);
	tl_append_str(r, 0, "protocol");
	tl_append_int(r, 0, 1);
	tl_append_str(r, 0, "host");
	tl_append_str(r, 0, g->host);
	tl_append_str(r, 0, "user");
	tl_append_str(r, 0, u->name);
	tl_append_str(r, 0, "uid");
	tl_append_int(r, 0, (long long)u->uid);
	return CMD_OK;
}

static void
full_name(struct tbuf *b, const char *name, size_t len, const char *user)
{
	tbuf_reset(b);
	tbuf_add(b, name, len);
	tbuf_addc(b, '@');
	tbuf_adds(b, user);
}

/* The table's key for what a user registry calls NAME: NAME@USER. */
static void
gw_entry_key(struct cmd_ctx *c, const char *name, size_t len, struct tbuf *key)
{
	struct gw_user *u = c->peer->data;

	full_name(key, name, len, u->name);
}

/*
 * Where an entry of this host leads must be its owner's (the check that
 * makes a registration "not dangerous", docs/gateway.md): HOST:PORT, a
 * -data that is a comm id, and, for scope global, the address other
 * gateways are given for it.  Each must reach a listener of uid as the
 * kernel would choose it (portowner.h): uid's listener on another
 * address of the host does not make another user's service uid's.  ls:
 * a dump to use (the periodic check), or NULL for a fresh one.
 */
static int
gw_check_leads(struct gateway *g, struct listeners *ls, const char *host,
    int port, const char *data, size_t datalen, bool global, uid_t uid,
    char *err, size_t errlen)
{
	struct listeners own;
	struct tlist d;
	const char *why, *adv;
	char *end;
	long dport;
	int rc = -1;

	if (ls == NULL) {
		if (portowner_dump(&own, err, errlen) == -1)
			return -1;
		ls = &own;
	}
	tlist_init(&d);
	if (portowner_check_host(ls, host, port, uid, true, err, errlen) == -1)
		goto out;
	adv = global && g->fed != NULL ? fed_advertise(g->fed) : NULL;
	if (adv != NULL && adv[0] != '\0' &&
	    portowner_check_host(ls, adv, port, uid, false, err, errlen) == -1)
		goto out;
	if (data != NULL) {
		/* A nameserv client is handed -data as the comm id. */
		if (tlist_parse(&d, data, datalen, &why) == -1 || d.n < 1 ||
		    d.n > 2 ||
		    (dport = strtol(d.v[0].p, &end, 10), *end != '\0') ||
		    dport < 1 || dport > 65535) {
			reason(err, errlen,
			    "-data must be a comm id, PORT ?HOST?, for the "
			    "gateway to check where it leads");
			goto out;
		}
		if (portowner_check_host(ls, d.n == 2 ? d.v[1].p : "localhost",
		        (int)dport, uid, false, err, errlen) == -1)
			goto out;
	}
	rc = 0;
out:
	tlist_free(&d);
	if (ls == &own)
		portowner_free(&own);
	return rc;
}

/*
 * Admission, the gateway's part of Commreg/Register (the registry's
 * rules, in handlers.c, passed first): the scope is the gateway's, the
 * policy allows it, and the port is a listening socket of the user's.
 * The entry is kept as NAME@USER, its serial the user registry's.
 */
static int
gw_admit_entry(struct cmd_ctx *c, const struct reg_request *r,
    struct reg_add *a)
{
	struct gateway *g = gw_of(c->srv);
	struct peer *p = c->peer;
	struct gw_user *u = p->data;
	struct policy_req req;
	struct policy_verdict v;
	struct reg_entry *e;
	static __thread struct tbuf full, data;
	const char *scope = r->scope != NULL ? r->scope->p : "host";
	char err[300];
	size_t baselen;
	int serial;

	memset(&req, 0, sizeof req);
	if (strcmp(scope, "host") == 0)
		req.scope = GWCONF_SCOPE_HOST;
	else if (strcmp(scope, "global") == 0)
		req.scope = GWCONF_SCOPE_GLOBAL;
	else {
		tbuf_adds(c->result, "scope ");
		tbuf_add_quoted(c->result, scope, strlen(scope));
		tbuf_adds(c->result, " is not the gateway's: host or global");
		return CMD_ERROR;
	}
	baselen = registry_split_serial(r->name, r->namelen, &serial);
	tbuf_reset(&full);
	tbuf_add(&full, r->name, baselen);
	if (registry_check_name(full.p, full.len, false, c->result) == -1)
		return CMD_ERROR;
	req.uid = p->uid;
	req.gid = p->gid;
	req.groups = u->groups;
	req.ngroups = u->ngroups;
	req.name = full.p;
	req.port = r->port;
	req.entries = u->entries;
	policy_admit(g->conf, &req, &v);
	if (!v.allow) {
		log_info("refused \"%s\" port %d scope %s for %s: %s", r->name,
		    r->port, scope, u->name, v.why);
		tbuf_adds(c->result, v.why);
		g->refused_regs++;
		return CMD_ERROR;
	}
	/* Whatever the rules say: where it leads must be this user's. */
	if (gw_check_leads(g, NULL, r->host, r->port, r->data, r->datalen,
	        req.scope == GWCONF_SCOPE_GLOBAL, p->uid, err,
	        sizeof err) == -1) {
		log_info("refused \"%s\" port %d for %s: %s", r->name, r->port,
		    u->name, err);
		tbuf_printf(c->result,
		    "refused: the port must be a listening TCP socket of "
		    "uid %lu: %s",
		    (unsigned long)p->uid, err);
		g->refused_regs++;
		return CMD_ERROR;
	}
	full_name(&full, r->name, r->namelen, u->name);
	/* The same offer again on the same link (a user registry that
	 * republishes what it sent while greeting us): already granted. */
	e = registry_find(c->srv->reg, full.p, full.len);
	if (e != NULL && e->owner == p && e->port == r->port) {
		tbuf_reset(c->result);
		tbuf_add(c->result, r->name, r->namelen);
		return CMD_OK;
	}
	tbuf_reset(&data);
	if (r->data != NULL)
		tbuf_add(&data, r->data, r->datalen);
	else {
		tl_append_int(&data, 0, r->port);
		tl_append_str(&data, 0, r->host);
	}
	a->copy = true;
	a->name = full.p;
	a->namelen = full.len;
	a->baselen = baselen;
	a->want_serial = serial;
	a->data = data.p;
	a->datalen = data.len;
	a->scope = req.scope == GWCONF_SCOPE_GLOBAL ? REG_SCOPE_GLOBAL
	                                            : REG_SCOPE_HOST;
	/* A pid the user registry passes on is its application's claim;
	 * without one, the kernel's word for the link's. */
	if (a->pid == 0)
		a->pid = p->pid;
	else
		a->pid_claimed = true; /* the application's, through its
		                          registry: nobody checked it */
	g->last_rule = v.rule;
	return -1;
}

/* Admitted: logged, and the name the user registry sent is the reply. */
static int
gw_entry_added(struct cmd_ctx *c, const struct reg_request *r,
    struct reg_entry *e)
{
	struct gateway *g = gw_of(c->srv);

	g->admitted++;
	log_info("admitted \"%s\" port %d scope %s%s%s", e->name, e->port,
	    registry_scope_name(e->scope),
	    g->last_rule != NULL ? " by rule " : "",
	    g->last_rule != NULL ? g->last_rule->name : "");
	g->last_rule = NULL;
	tbuf_reset(c->result);
	tbuf_add(c->result, r->name, r->namelen);
	return CMD_OK;
}

/* NAME@USER exactly; a bare NAME: the asker's own, else the first by
 * name among the other users'. */
static struct reg_entry *
resolve(struct server *s, struct gw_user *u, const char *name, size_t len)
{
	struct reg_entry *e, *x = NULL;
	struct tbuf b;

	if (memchr(name, '@', len) != NULL)
		return registry_find(s->reg, name, len);
	tbuf_init(&b);
	full_name(&b, name, len, u->name);
	e = registry_find(s->reg, b.p, b.len);
	/* Else every NAME@... from the index (registry_find_app), the
	 * best by fedname_answers_before. */
	if (e == NULL)
		while ((x = registry_find_app(s->reg, x, name, len)) != NULL)
			if (x->namelen > len && fedname_answers_before(x, e))
				e = x;
	tbuf_free(&b);
	return e;
}

static int
gw_lookup(struct cmd_ctx *c)
{
	const struct tl_elem *name = &c->words->v[1];
	struct reg_entry *e;

	e = resolve(c->srv, c->peer->data, name->p, name->len);
	/* Not on this host: the gateways linked to it may know. */
	if (e == NULL && gw_of(c->srv)->fed != NULL &&
	    fed_lookup(gw_of(c->srv)->fed, c, name->p, name->len) ==
	        CMD_PENDING)
		return CMD_PENDING;
	if (e == NULL) {
		tbuf_adds(c->result, "no application named ");
		tbuf_add_quoted(c->result, name->p, name->len);
		tbuf_adds(c->result, " on this host");
		return CMD_ERROR;
	}
	if (e->port > 0) {
		tl_append_int(c->result, 0, e->port);
		tl_append_str(c->result, 0, e->host);
	} else
		tbuf_add(c->result, e->data, e->datalen);
	return CMD_OK;
}

/* Sorted by name (cmd_table_find).  The registry's handlers serve what
 * the gateway does as a registry does, with its hooks (gw_ops). */
static const struct cmd_entry gw_table[] = {
    {"Commreg/Hello", 0, 1, "?clientversion?", gw_hello},
    {"Commreg/List", 0, 1, "?pattern?", handlers_list},
    {"Commreg/Lookup", 1, 1, "name", gw_lookup},
    {"Commreg/Register", 2, -1, "name port ?-option value ...?",
        handlers_register},
    {"Commreg/Stats", 0, 0, "", handlers_stats},
    {"Commreg/Unregister", 1, 1, "name", handlers_unregister},
    {"Commreg/Unwatch", 1, 1, "tag", handlers_unwatch},
    {"Commreg/Watch", 2, 2, "tag pattern", handlers_watch},
    {"ProtocolVersion", 0, 0, "", handlers_protocol_version},
};

static const struct cmd_entry *
gw_find(const char *name, size_t len)
{
	return cmd_table_find(gw_table, sizeof gw_table / sizeof gw_table[0],
	    name, len);
}

/* The gateway's counters (refused above counts connections). */
static void
gw_stats(struct server *s, struct tbuf *r)
{
	struct gateway *g = gw_of(s);

	tl_append_str(r, 0, "admitted");
	tl_append_int(r, 0, (long long)g->admitted);
	tl_append_str(r, 0, "registrations_refused");
	tl_append_int(r, 0, (long long)g->refused_regs);
	tl_append_str(r, 0, "withdrawn");
	tl_append_int(r, 0, (long long)g->withdrawn);
	if (g->fed != NULL)
		fed_stats(g->fed, r);
}

static const struct server_ops gw_ops = {
    .find = gw_find,
    .admit = gw_admit,
    .notify = NULL, /* watchers are told as by a user registry */
    .gone = gw_gone,
    .admit_entry = gw_admit_entry,
    .entry_added = gw_entry_added,
    .entry_key = gw_entry_key,
    .stats = gw_stats,
};

/* ---- reload ------------------------------------------------------------ */

static void withdraw(struct gateway *, struct reg_entry *, const char *);

/*
 * The port check again, for every entry of this host, while it lives:
 * an application that closed its port, and someone else who took it,
 * must not keep the name leading there.  A round every GW_RECHECK_MS, in
 * slices (gateway.h), each entry checked against one fresh dump of the
 * listeners (a dump older than an entry would miss its listener).
 */
static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next slice a turn later; after a round's last, the next round
 * GW_RECHECK_MS after this one began. */
static void
recheck_schedule(struct gateway *g)
{
	int64_t ms = GW_RECHECK_SLICE_MS;
	struct timeval tv;

	if (g->recheck_at == 0) {
		ms = GW_RECHECK_MS - (mono_ms() - g->recheck_began);
		if (ms < GW_RECHECK_SLICE_MS)
			ms = GW_RECHECK_SLICE_MS;
	}
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(g->recheck, &tv);
}

struct recheck_slice {
	struct reg_entry **v;
	size_t n, cap;
};

static void
recheck_collect(const struct reg_entry *ce, void *arg)
{
	struct recheck_slice *sl = arg;
	struct reg_entry **nv;

	if (sl->n == sl->cap) {
		sl->cap = sl->cap ? sl->cap * 2 : 256;
		if ((nv = reallocarray(sl->v, sl->cap, sizeof *nv)) == NULL)
			fatal("%s", __func__);
		sl->v = nv;
	}
	/* Held: withdrawing one entry may end its owner's others. */
	registry_entry_ref(ce);
	sl->v[sl->n++] = (struct reg_entry *)(uintptr_t)ce;
}

static void
gw_recheck(evutil_socket_t fd, short ev, void *arg)
{
	struct gateway *g = arg;
	struct recheck_slice sl = {NULL, 0, 0};
	struct listeners ls;
	struct reg_entry *e;
	char err[300], why[400];
	size_t i, gone = 0, count = registry_count(g->srv.reg), slice;

	if (g->recheck_at == 0)
		g->recheck_began = mono_ms();
	if (count == 0) {
		recheck_schedule(g);
		return;
	}
	if (portowner_dump(&ls, err, sizeof err) == -1) {
		log_limited("port check", "port check: %s", err);
		recheck_schedule(g);
		return;
	}
	slice = count / (GW_RECHECK_MS / GW_RECHECK_SLICE_MS) + 1;
	if (slice < GW_RECHECK_SLICE_MIN)
		slice = GW_RECHECK_SLICE_MIN;
	registry_scan(g->srv.reg, &g->recheck_at, slice, recheck_collect, &sl);
	for (i = 0; i < sl.n; i++) {
		e = sl.v[i];
		if (e->removed || e->path[0] != '\0' || e->owner == NULL ||
		    ((struct peer *)e->owner)->srv != &g->srv)
			continue; /* gone meanwhile, or learned from another
			             gateway */
		if (gw_check_leads(g, &ls, e->host, e->port, e->data,
		        e->datalen, e->scope == REG_SCOPE_GLOBAL, e->uid, err,
		        sizeof err) == 0)
			continue;
		snprintf(why, sizeof why,
		    "the port is no longer a listening TCP socket of uid %lu: "
		    "%s",
		    (unsigned long)e->uid, err);
		withdraw(g, e, why);
		gone++;
	}
	for (i = 0; i < sl.n; i++)
		registry_entry_unref(sl.v[i]);
	free(sl.v);
	portowner_free(&ls);
	if (gone > 0)
		server_flush(&g->srv);
	recheck_schedule(g);
}

/* The policy no longer allows e: its owner is told, then it goes. */
static void
withdraw(struct gateway *g, struct reg_entry *e, const char *why)
{
	struct peer *p = e->owner;
	const char *at = strrchr(e->name, '@');
	const char *w[3];
	size_t lens[3];

	log_info("withdrawn \"%s\": %s", e->name, why);
	w[0] = "Commreg/Withdrawn";
	lens[0] = strlen(w[0]);
	w[1] = e->name; /* the owner's own name for it: before the '@' */
	lens[1] = at != NULL ? (size_t)(at - e->name) : e->namelen;
	w[2] = why;
	lens[2] = strlen(why);
	peer_send_async(p, w, lens, 3);
	registry_remove(g->srv.reg, e, &p->entries);
	p->nentries--;
	g->withdrawn++;
}

void
gateway_reload(struct gateway *g)
{
	struct gwconf_errors errs = {NULL, 0};
	struct gwconf *conf;
	size_t i;
	bool missing = false;

	conf = gwconf_load(g->config_dir, GWCONF_GATEWAY, &missing, &errs);
	if (conf == NULL) {
		for (i = 0; i < errs.n; i++)
			log_warnx("reload: %s", errs.v[i]);
		log_warnx("reload failed: keeping the configuration in use");
		gwconf_errors_free(&errs);
		return;
	}
	gateway_reload_conf(g, conf);
}

int
gateway_reload_conf(struct gateway *g, struct gwconf *conf)
{
	const struct reg_entry **v;
	struct policy_req req;
	struct policy_verdict verdict;
	struct gw_user *u;
	struct reg_entry *e;
	struct gwconf *old;
	struct fed *oldfed;
	SSL_CTX *ctx = NULL;
	size_t i, n, gone = 0;
	char err[1024];

	/* The TLS context of the files just read, so that a renewed
	 * certificate is served; one that cannot be made fails the whole
	 * reload, as any other error does. */
	if (conf->certificate != NULL && conf->key != NULL &&
	    conf->ca != NULL &&
	    (ctx = fed_tls_context(conf, err, sizeof err)) == NULL) {
		log_warnx("reload: %s", err);
		log_warnx("reload failed: keeping the configuration in use");
		gwconf_free(conf);
		return -1;
	}
	gwconf_wipe_tls(conf);
	/* The links hold the old configuration's remotes: made again
	 * below with the new context, keeping the listener. */
	oldfed = g->fed;
	g->fed = NULL;
	if (oldfed != NULL)
		fed_stop_links(oldfed);
	old = g->conf;
	g->conf = conf;
	gwconf_free(old);

	/* Judge every entry again, in name order, counting each user's
	 * admitted entries afresh for the quotas, with each user's groups
	 * as the group database says now. */
	TAILQ_FOREACH(u, &g->users, link) {
		u->judged = 0;
		user_groups(u);
	}
	v = registry_sorted(g->srv.reg, "*", 1, &n);
	for (i = 0; i < n; i++) {
		e = (struct reg_entry *)v[i];
		if ((u = user_find(g, e->uid)) == NULL)
			continue;
		memset(&req, 0, sizeof req);
		req.uid = e->uid;
		req.gid = u->gid;
		req.groups = u->groups;
		req.ngroups = u->ngroups;
		req.name = e->base;
		req.port = e->port;
		req.scope = e->scope == REG_SCOPE_GLOBAL ? GWCONF_SCOPE_GLOBAL
		                                         : GWCONF_SCOPE_HOST;
		req.entries = u->judged;
		policy_admit(conf, &req, &verdict);
		if (verdict.allow) {
			u->judged++;
			continue;
		}
		withdraw(g, e, verdict.why);
		gone++;
	}
	free((void *)v);
	g->fed = fed_start(g, oldfed, ctx, err, sizeof err);
	if (g->fed == NULL && err[0] != '\0')
		log_warnx("federation: %s", err);
	server_flush(&g->srv);
	log_info("configuration reloaded from %s: %zu files, %zu rules; "
	         "%zu entries withdrawn",
	    conf->dir, conf->nfiles, conf->nrules, gone);
	return 0;
}

/* ---- life ---------------------------------------------------------------- */

int
gateway_init(struct gateway *g, struct event_base *base, int listen_fd,
    struct gwconf *conf, const char *config_dir, const struct server_opts *o)
{
	memset(g, 0, sizeof *g);
	g->base = base;
	g->conf = conf;
	g->config_dir = config_dir;
	TAILQ_INIT(&g->users);
	if (gethostname(g->host, sizeof g->host) == -1)
		snprintf(g->host, sizeof g->host, "localhost");
	g->host[sizeof g->host - 1] = '\0';
	if (server_init_ops(&g->srv, &gw_ops, g, base, listen_fd, 0, g->host,
	        o) == -1)
		return -1;
	snprintf(g->srv.owner, sizeof g->srv.owner, "commgwd");
	g->srv.kind = "gateway";
	registry_observe(g->srv.reg, count_entries, g);
	/* Bare names ("calc" among "calc@USER") are looked up by it. */
	if (registry_index_apps(g->srv.reg) == -1)
		fatalx("out of memory");
	if ((g->recheck = evtimer_new(base, gw_recheck, g)) == NULL)
		return -1;
	g->recheck_began = mono_ms();
	recheck_schedule(g);
	return 0;
}

void
gateway_free(struct gateway *g)
{
	struct gw_user *u;

	fed_free(g->fed);
	g->fed = NULL;
	if (g->recheck != NULL)
		event_free(g->recheck);
	server_free(&g->srv);
	while ((u = TAILQ_FIRST(&g->users)) != NULL) {
		TAILQ_REMOVE(&g->users, u, link);
		free(u);
	}
	gwconf_free(g->conf);
}
