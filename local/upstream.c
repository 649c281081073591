/*
 * A semi-private registry's copy of the registry above it (upstream.h).
 *
 * The copy is soft state: rebuilt from every snapshot the watch gets
 * (the first one, and a fresh one after each failover of the upstream),
 * kept up to date by its add and remove events.  When the upstream is
 * lost, the copy stays for UPSTREAM_GRACE_MS: a user registry that is
 * re-elected comes back within a fraction of a second, with the same
 * entries, and the group's watchers should not see every user
 * application go and come back.  If it is not back by then, the copy is
 * dropped and the watchers are told.
 *
 * The same patience after a failover: the fresh snapshot may come before
 * the applications of the upstream have registered again there (they
 * are re-electing it too), so an entry missing from it is held for
 * UPSTREAM_GRACE_MS and dropped only if it has not come back by then.
 */
#define _GNU_SOURCE /* reallocarray */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "commreg.h"
#include "log.h"
#include "registry.h"
#include "upstream.h"

#define UPSTREAM_GRACE_MS  3000
#define UPSTREAM_REOPEN_MS 5000

struct upstream {
	struct server *srv;
	char *home;
	struct commreg_async *a;
	struct commreg_watch *w;
	struct reg_entry_list entries; /* the mirror's, all ours */
	struct event *grace;           /* drops the copy when it fires */
	struct event *reopen;          /* opens the link again */
	/* Missing from a resync snapshot, not back yet (names). */
	char **held;
	size_t nheld;
	struct event *holdover; /* drops what is still held */
};

static void up_open(struct upstream *);

static void
mirror_drop(struct upstream *up, struct reg_entry *e)
{
	/* Told before it is freed: the notification formats it. */
	registry_announce(up->srv->reg, e, false);
	registry_remove(up->srv->mirror, e, &up->entries);
}

static void
mirror_clear(struct upstream *up)
{
	struct reg_entry *e;
	size_t n = 0;

	while ((e = TAILQ_FIRST(&up->entries)) != NULL) {
		mirror_drop(up, e);
		n++;
	}
	if (n > 0)
		log_info("upstream: dropped its %zu entries", n);
}

static int
same_entry(const struct reg_entry *e, const struct commreg_entry *c)
{
	return e->port == (c->port > 0 ? c->port : -1) &&
	       strcmp(e->host, c->host) == 0 && strcmp(e->data, c->data) == 0 &&
	       e->pid == c->pid && e->uid == c->uid && e->serial == c->serial;
}

static void
mirror_put(struct upstream *up, const struct commreg_entry *c)
{
	struct registry *m = up->srv->mirror;
	struct reg_entry *e;
	struct reg_add a;
	struct tbuf err;

	if ((e = registry_find(m, c->name, strlen(c->name))) != NULL) {
		if (same_entry(e, c))
			return;
		mirror_drop(up, e);
	}
	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = c->name;
	a.namelen = strlen(c->name);
	a.base = c->base[0] != '\0' ? c->base : c->name;
	a.baselen = strlen(a.base);
	a.want_serial = c->serial > 0 ? (int)c->serial : 1;
	a.port = c->port;
	a.host = c->host;
	a.data = c->data;
	a.datalen = strlen(c->data);
	/* Without a port, Lookup answers the data, as for an nns Bind. */
	a.nns = c->port <= 0;
	if (registry_scope_parse(c->scope, &a.scope) == -1)
		a.scope = REG_SCOPE_USER;
	a.uid = c->uid >= 0 ? (uid_t)c->uid : up->srv->uid;
	a.pid = c->pid > 0 ? (pid_t)c->pid : 0;
	a.since = (time_t)c->since;
	tbuf_init(&err);
	if ((e = registry_add(m, &a, up, &up->entries, &err)) == NULL)
		log_warnx("upstream: entry \"%s\" not copied: %.*s", c->name,
		    (int)err.len, err.p);
	else
		registry_announce(up->srv->reg, e, true);
	tbuf_free(&err);
}

static void
mirror_remove(struct upstream *up, const char *name)
{
	struct reg_entry *e;

	if ((e = registry_find(up->srv->mirror, name, strlen(name))) != NULL)
		mirror_drop(up, e);
}

static void
held_clear(struct upstream *up)
{
	size_t i;

	for (i = 0; i < up->nheld; i++)
		free(up->held[i]);
	free(up->held);
	up->held = NULL;
	up->nheld = 0;
}

/* name came back (or went for good): no longer held. */
static void
held_forget(struct upstream *up, const char *name)
{
	size_t i;

	for (i = 0; i < up->nheld; i++) {
		if (strcmp(up->held[i], name) == 0) {
			free(up->held[i]);
			up->held[i] = up->held[--up->nheld];
			return;
		}
	}
}

static void
held_add(struct upstream *up, const char *name)
{
	char **v;

	v = reallocarray(up->held, up->nheld + 1, sizeof *up->held);
	if (v == NULL || (v[up->nheld] = strdup(name)) == NULL)
		fatal("%s", __func__);
	up->held = v;
	up->nheld++;
}

static int
cmp_name(const void *x, const void *y)
{
	const struct commreg_entry *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/*
 * Make the copy what the snapshot says, telling only the differences;
 * after a failover (resync), what the snapshot lacks is held, not
 * dropped (see the top of the file).
 */
static void
mirror_sync(struct upstream *up, const struct commreg_entry *v, size_t n,
    int resync)
{
	struct timeval tv = {UPSTREAM_GRACE_MS / 1000,
	    (UPSTREAM_GRACE_MS % 1000) * 1000};
	struct commreg_entry *sorted, key;
	struct reg_entry *e, *next;
	size_t i;

	sorted = NULL;
	if (n > 0) {
		if ((sorted = calloc(n, sizeof *sorted)) == NULL)
			fatal("%s", __func__);
		memcpy(sorted, v, n * sizeof *sorted);
		qsort(sorted, n, sizeof *sorted, cmp_name);
	}
	memset(&key, 0, sizeof key);
	TAILQ_FOREACH_SAFE(e, &up->entries, owner_link, next) {
		key.name = (char *)e->name;
		if (n > 0 &&
		    bsearch(&key, sorted, n, sizeof *sorted, cmp_name) != NULL)
			continue;
		if (resync)
			held_add(up, e->name);
		else
			mirror_drop(up, e);
	}
	for (i = 0; i < n; i++)
		mirror_put(up, &v[i]);
	free(sorted);
	if (up->nheld > 0)
		evtimer_add(up->holdover, &tv);
}

static void
holdover_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream *up = arg;
	size_t i, n = 0;

	for (i = 0; i < up->nheld; i++) {
		struct reg_entry *e;

		e = registry_find(up->srv->mirror, up->held[i],
		    strlen(up->held[i]));
		if (e != NULL) {
			mirror_drop(up, e);
			n++;
		}
	}
	held_clear(up);
	if (n > 0)
		log_info("upstream: %zu entries did not come back after "
		         "the failover",
		    n);
	server_flush(up->srv);
}

static void
on_watch(struct commreg_async *a, struct commreg_watch *w,
    const struct commreg_watch_event *ev, void *arg)
{
	struct upstream *up = arg;

	/* A snapshot rebuilds the copy whole, so the events the library
	 * derives from it after a failover (resync) are not needed. */
	if (ev->resync && ev->what != COMMREG_WATCH_SNAPSHOT)
		return;
	switch (ev->what) {
	case COMMREG_WATCH_SNAPSHOT:
		evtimer_del(up->grace);
		evtimer_del(up->holdover);
		held_clear(up);
		up->srv->upstream_port = commreg_async_port(a);
		mirror_sync(up, ev->entries, ev->n, ev->resync);
		log_debug("upstream: %zu entries from port %d", ev->n,
		    up->srv->upstream_port);
		break;
	case COMMREG_WATCH_ADD:
		held_forget(up, ev->entry->name);
		mirror_put(up, ev->entry);
		break;
	case COMMREG_WATCH_REMOVE:
		held_forget(up, ev->entry->name);
		mirror_remove(up, ev->entry->name);
		break;
	case COMMREG_WATCH_ERROR:
		log_warnx("upstream: the watch was refused: %s", ev->message);
		up->w = NULL; /* freed by the library after this callback */
		mirror_clear(up);
		break;
	}
	/* This runs in the library's callback, not the server's. */
	server_flush(up->srv);
}

static void
on_open(struct commreg_async *a, int status, const char *msg, void *arg)
{
	struct upstream *up = arg;
	struct timeval tv = {UPSTREAM_REOPEN_MS / 1000,
	    (UPSTREAM_REOPEN_MS % 1000) * 1000};

	if (status == 0) {
		log_info("upstream: connected to the registry on port %d%s",
		    commreg_async_port(a),
		    commreg_async_private(a) ? " (TCL_COMM_REGPORT)" : "");
		return;
	}
	log_warnx("upstream: %s; trying again in %d s", msg,
	    UPSTREAM_REOPEN_MS / 1000);
	up->w = NULL;
	up->a = NULL;
	commreg_async_close(a);
	evtimer_add(up->reopen, &tv);
}

static void
on_lost(struct commreg_async *a, const char *why, void *arg)
{
	struct upstream *up = arg;
	struct timeval tv = {UPSTREAM_GRACE_MS / 1000,
	    (UPSTREAM_GRACE_MS % 1000) * 1000};

	log_info("upstream: lost (%s)%s", why,
	    commreg_async_orphaned(a) ? "; it is a private registry, which "
	                                "is not re-elected"
	                              : "");
	up->srv->upstream_port = 0;
	evtimer_add(up->grace, &tv);
}

static void
on_regained(struct commreg_async *a, int port, int hosted, void *arg)
{
	log_info("upstream: back, on port %d", port);
}

static void
on_error(struct commreg_async *a, const char *msg, void *arg)
{
	log_warnx("upstream: %s", msg);
}

static void
grace_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream *up = arg;

	log_info("upstream: not back within %d ms", UPSTREAM_GRACE_MS);
	evtimer_del(up->holdover);
	held_clear(up);
	mirror_clear(up);
	server_flush(up->srv);
}

static void
reopen_cb(evutil_socket_t fd, short ev, void *arg)
{
	up_open(arg);
}

static void
up_open(struct upstream *up)
{
	struct commreg_async_opts o;
	char err[512];

	memset(&o, 0, sizeof o);
	o.home = up->home;
	o.mode = COMMREG_MODE_SPAWN;
	o.on_open = on_open;
	o.on_lost = on_lost;
	o.on_regained = on_regained;
	o.on_error = on_error;
	o.arg = up;
	if ((up->a = commreg_async_open(up->srv->base, &o, err, sizeof err)) ==
	    NULL) {
		struct timeval tv = {UPSTREAM_REOPEN_MS / 1000, 0};

		log_warnx("upstream: %s", err);
		evtimer_add(up->reopen, &tv);
		return;
	}
	up->w = commreg_async_watch(up->a, "*", on_watch, up);
}

struct upstream *
upstream_start(struct server *srv, const char *home, char *err, size_t errlen)
{
	struct upstream *up;

	if ((up = calloc(1, sizeof *up)) == NULL)
		fatal("%s", __func__);
	up->srv = srv;
	if (home != NULL && (up->home = strdup(home)) == NULL)
		fatal("%s", __func__);
	TAILQ_INIT(&up->entries);
	up->grace = evtimer_new(srv->base, grace_cb, up);
	up->reopen = evtimer_new(srv->base, reopen_cb, up);
	up->holdover = evtimer_new(srv->base, holdover_cb, up);
	if (up->grace == NULL || up->reopen == NULL || up->holdover == NULL)
		fatalx("event_new failed");
	up_open(up);
	if (up->a == NULL && err != NULL)
		snprintf(err, errlen, "cannot reach the registry above");
	return up;
}

void
upstream_free(struct upstream *up)
{
	if (up == NULL)
		return;
	struct reg_entry *e;

	if (up->a != NULL)
		commreg_async_close(up->a);
	/* Shutting down: the group's watchers are not told. */
	while ((e = TAILQ_FIRST(&up->entries)) != NULL)
		registry_remove(up->srv->mirror, e, &up->entries);
	event_free(up->grace);
	event_free(up->reopen);
	event_free(up->holdover);
	held_clear(up);
	free(up->home);
	free(up);
}
