/*
 * A copy of another registry's entries (mirror.h).
 */
#define _GNU_SOURCE /* reallocarray */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "mirror.h"
#include "registry.h"

/*
 * The server's own entry of a name hides the copy's (handlers.c): the
 * watchers, which know one entry per name, hear nothing of a hidden one.
 */
static bool
hidden(struct mirror *m, const struct reg_entry *e)
{
	return registry_find(m->srv->reg, e->name, e->namelen) != NULL;
}

static void
drop(struct mirror *m, struct reg_entry *e)
{
	/* Told before it is freed: the notification formats it. */
	if (!hidden(m, e))
		registry_announce(m->srv->reg, e, false);
	registry_remove(m->srv->mirror, e, &m->entries);
}

/* The server's own entry of a name went: the copy's shows again. */
static void
observe(const struct reg_entry *e, bool added, void *arg)
{
	struct mirror *m = arg;
	struct reg_entry *c;

	if (added)
		return;
	c = registry_find(m->srv->mirror, e->name, e->namelen);
	if (c != NULL)
		registry_announce(m->srv->reg, c, true);
}

static void
held_clear(struct mirror *m)
{
	size_t i;

	for (i = 0; i < m->nheld; i++)
		free(m->held[i]);
	free(m->held);
	m->held = NULL;
	m->nheld = 0;
}

/* name came back (or went for good): no longer held. */
static void
held_forget(struct mirror *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nheld; i++) {
		if (strcmp(m->held[i], name) == 0) {
			free(m->held[i]);
			m->held[i] = m->held[--m->nheld];
			return;
		}
	}
}

static void
held_add(struct mirror *m, const char *name)
{
	char **v;

	v = reallocarray(m->held, m->nheld + 1, sizeof *m->held);
	if (v == NULL || (v[m->nheld] = strdup(name)) == NULL)
		fatal("%s", __func__);
	m->held = v;
	m->nheld++;
}

void
mirror_clear(struct mirror *m)
{
	struct reg_entry *e;
	size_t n = 0;

	evtimer_del(m->holdover);
	evtimer_del(m->grace);
	held_clear(m);
	while ((e = TAILQ_FIRST(&m->entries)) != NULL) {
		drop(m, e);
		n++;
	}
	if (n > 0)
		log_info("%s: dropped its %zu entries", m->label, n);
	server_flush(m->srv);
}

static void
put(struct mirror *m, const struct commreg_entry *c)
{
	struct registry *r = m->srv->mirror;
	struct reg_entry *e;
	struct reg_add a;
	struct tbuf err;

	if (m->skip != NULL && m->skip(c, m->arg))
		return;
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
	/* No uid: a user of another host (federation). */
	a.uid = c->uid >= 0 ? (uid_t)c->uid : (uid_t)-1;
	a.pid = c->pid > 0 ? (pid_t)c->pid : 0;
	a.since = (time_t)c->since;
	a.path = c->path;
	/* Offered again (a resync) as it is: nothing to tell.  Compared as
	 * stored, so that a dict without pid or uid ("", read as -1) is
	 * the same entry again, not a new one each time. */
	if ((e = registry_find(r, a.name, a.namelen)) != NULL) {
		if (registry_entry_same(e, &a) && e->uid == a.uid)
			return;
		drop(m, e);
	}
	tbuf_init(&err);
	if ((e = registry_add(r, &a, m, &m->entries, &err)) == NULL)
		log_warnx("%s: entry \"%s\" not copied: %.*s", m->label,
		    c->name, (int)err.len, err.p);
	else if (!hidden(m, e))
		registry_announce(m->srv->reg, e, true);
	tbuf_free(&err);
}

void
mirror_put(struct mirror *m, const struct commreg_entry *c)
{
	held_forget(m, c->name);
	put(m, c);
	server_flush(m->srv);
}

void
mirror_remove(struct mirror *m, const char *name)
{
	struct reg_entry *e;

	held_forget(m, name);
	if ((e = registry_find(m->srv->mirror, name, strlen(name))) != NULL)
		drop(m, e);
	server_flush(m->srv);
}

static int
cmp_name(const void *x, const void *y)
{
	const struct commreg_entry *a = x, *b = y;

	return strcmp(a->name, b->name);
}

void
mirror_snapshot(struct mirror *m, const struct commreg_entry *v, size_t n,
    bool resync)
{
	struct timeval tv = {MIRROR_GRACE_MS / 1000,
	    (MIRROR_GRACE_MS % 1000) * 1000};
	struct commreg_entry *sorted = NULL, key;
	struct reg_entry *e, *next;
	size_t i;

	evtimer_del(m->grace);
	evtimer_del(m->holdover);
	held_clear(m);
	if (n > 0) {
		if ((sorted = calloc(n, sizeof *sorted)) == NULL)
			fatal("%s", __func__);
		memcpy(sorted, v, n * sizeof *sorted);
		qsort(sorted, n, sizeof *sorted, cmp_name);
	}
	memset(&key, 0, sizeof key);
	TAILQ_FOREACH_SAFE(e, &m->entries, owner_link, next) {
		key.name = (char *)e->name;
		if (n > 0 &&
		    bsearch(&key, sorted, n, sizeof *sorted, cmp_name) != NULL)
			continue;
		if (resync)
			held_add(m, e->name);
		else
			drop(m, e);
	}
	for (i = 0; i < n; i++)
		put(m, &v[i]);
	free(sorted);
	if (m->nheld > 0)
		evtimer_add(m->holdover, &tv);
	log_debug("%s: %zu entries", m->label, n);
	server_flush(m->srv);
}

static void
holdover_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mirror *m = arg;
	struct reg_entry *e;
	size_t i, n = 0;

	for (i = 0; i < m->nheld; i++) {
		e = registry_find(m->srv->mirror, m->held[i],
		    strlen(m->held[i]));
		if (e != NULL) {
			drop(m, e);
			n++;
		}
	}
	held_clear(m);
	if (n > 0)
		log_info("%s: %zu entries did not come back after the "
		         "failover",
		    m->label, n);
	server_flush(m->srv);
}

static void
grace_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mirror *m = arg;

	log_info("%s: not back within %d ms", m->label, MIRROR_GRACE_MS);
	mirror_clear(m);
}

void
mirror_lost(struct mirror *m)
{
	struct timeval tv = {MIRROR_GRACE_MS / 1000,
	    (MIRROR_GRACE_MS % 1000) * 1000};

	evtimer_add(m->grace, &tv);
}

void
mirror_init(struct mirror *m, struct server *srv, const char *label)
{
	memset(m, 0, sizeof *m);
	m->srv = srv;
	m->label = label;
	TAILQ_INIT(&m->entries);
	m->holdover = evtimer_new(srv->base, holdover_cb, m);
	m->grace = evtimer_new(srv->base, grace_cb, m);
	if (m->holdover == NULL || m->grace == NULL)
		fatalx("event_new failed");
	registry_observe(srv->reg, observe, m);
}

void
mirror_free(struct mirror *m)
{
	struct reg_entry *e;

	registry_unobserve(m->srv->reg, m);
	while ((e = TAILQ_FIRST(&m->entries)) != NULL)
		registry_remove(m->srv->mirror, e, &m->entries);
	held_clear(m);
	if (m->holdover != NULL)
		event_free(m->holdover);
	if (m->grace != NULL)
		event_free(m->grace);
}
