/*
 * A semi-private registry's link to the registry above it (upstream.h):
 * one watch on "*" through the asynchronous client library, feeding the
 * copy in srv->mirror (mirror.c, which also says how a failover above is
 * ridden out).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "commreg.h"
#include "log.h"
#include "mirror.h"
#include "registry.h"
#include "upstream.h"

#define UPSTREAM_REOPEN_MS 5000

struct upstream {
	struct server *srv;
	char *home;
	struct commreg_async *a;
	struct commreg_watch *w;
	struct mirror m;
	struct event *reopen; /* opens the link again */
};

static void up_open(struct upstream *);

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
		up->srv->upstream_port = commreg_async_port(a);
		mirror_snapshot(&up->m, ev->entries, ev->n, ev->resync);
		break;
	case COMMREG_WATCH_ADD:
		mirror_put(&up->m, ev->entry);
		break;
	case COMMREG_WATCH_REMOVE:
		mirror_remove(&up->m, ev->entry->name);
		break;
	case COMMREG_WATCH_ERROR:
		log_warnx("upstream: the watch was refused: %s", ev->message);
		up->w = NULL; /* freed by the library after this callback */
		mirror_clear(&up->m);
		break;
	}
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

	log_info("upstream: lost (%s)%s", why,
	    commreg_async_orphaned(a) ? "; it is a private registry, which "
	                                "is not re-elected"
	                              : "");
	up->srv->upstream_port = 0;
	mirror_lost(&up->m);
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

static void
on_lookup(struct commreg_async *a, int status, const char *res, void *arg)
{
	struct pending *q = arg;

	/* COMMREG_STALE: answered from memory, the registry above gone. */
	pending_reply(q, status == 0 || status == COMMREG_STALE ? 0 : 1, res,
	    strlen(res));
}

int
upstream_lookup(struct upstream *up, struct cmd_ctx *c, const char *name)
{
	struct pending *q;

	if (up->a == NULL || !commreg_async_connected(up->a))
		return CMD_ERROR;
	if ((q = pending_new(c, NULL)) == NULL) {
		/* Said in the result, which cmd_lookup then answers. */
		tbuf_adds(c->result, "out of memory");
		return CMD_ERROR;
	}
	if (commreg_async_lookup(up->a, name, on_lookup, q) == -1) {
		pending_reply(q, 1, "", 0);
		return CMD_PENDING;
	}
	return CMD_PENDING;
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
	mirror_init(&up->m, srv, "upstream");
	up->reopen = evtimer_new(srv->base, reopen_cb, up);
	if (up->reopen == NULL)
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
	if (up->a != NULL)
		commreg_async_close(up->a);
	mirror_free(&up->m);
	event_free(up->reopen);
	free(up->home);
	free(up);
}
