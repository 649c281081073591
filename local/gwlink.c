/*
 * The user registry's link to the host gateway (gwlink.h).
 *
 * One connection, over the gateway's Unix socket, a peer of the server's
 * engine (engine/peer.h), which frames, matches replies to requests,
 * enforces the limits and pings the gateway when it is quiet.  A request
 * may carry a reply owed to an application (struct pending), which is
 * answered when the gateway's comes, or with an error when the link
 * drops or the gateway is slow.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "backoff.h"
#include "client.h"
#include "peer.h"
#include "commwire.h"
#include "gwlink.h"
#include "log.h"
#include "mirror.h"
#include "registry.h"
#include "tcllist.h"

#define GW_RETRY_MIN_MS 100
#define GW_RETRY_MAX_MS 2000
#define GW_TIMEOUT_MS   5000 /* a verdict or a forwarded lookup */
/* The gateway's snapshot of the others' entries, about 170 bytes each:
 * 100,000 of them pass 16 MiB. */
#define GW_MAX_MESSAGE (64 * 1024 * 1024)
#define GW_WATCH_TAG   "gwlink"
/* The copy of the others' entries (gwlink.h): how long it is kept after
 * its last use, and how long a listing waits for it. */
#define GW_COPY_LINGER_MS 10000
/* Well within a client's own wait for a reply (the libraries' 5 s): a
 * list answered at its client's deadline is a list lost. */
#define GW_COPY_WAIT_MS 3000

enum gw_state { GW_IDLE, GW_CONNECTING, GW_HELLO, GW_READY };

enum gwreq_kind { GWQ_HELLO, GWQ_WATCH, GWQ_REGISTER, GWQ_FORGET, GWQ_LOOKUP };

/* A listing or a watch waiting for the copy (gwlink_copy_wait). */
struct gwwait {
	TAILQ_ENTRY(gwwait) link;
	void (*fn)(void *);
	void *arg;
};
TAILQ_HEAD(gwwait_list, gwwait);

struct gwreq {
	TAILQ_ENTRY(gwreq) link;
	struct gwlink *gw;
	enum gwreq_kind kind;
	struct preq *req;     /* the engine's */
	struct pending *pend; /* an application's reply, or NULL */
	char *name;           /* GWQ_REGISTER: the local entry */
};
TAILQ_HEAD(gwreq_list, gwreq);

struct gwlink {
	struct server *srv;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum gw_state state;
	struct peer *peer;
	/* The server's limits, but for messages as large as the gateway's
	 * snapshot of every user's entries. */
	struct engine_limits lim;
	struct event *retry;
	int attempt;
	bool had_snapshot;    /* srv->mirror holds a copy (maybe stale) */
	bool copying;         /* our watch on "*" is asked for or running */
	bool fresh;           /* ... and its snapshot came */
	uint64_t used_ms;     /* the copy's last use (gwlink_copy_ready) */
	struct event *linger; /* drops the copy once it is not used */
	struct event *wait;   /* gives up waiting for the copy */
	struct gwwait_list waiters;
	bool withdrawing; /* removing what the gateway withdrew */
	char why[256];    /* why not ready */
	struct mirror m;
	struct gwreq_list reqs;
};

static void gw_connect(struct gwlink *);
static struct gwreq *send_req(struct gwlink *, enum gwreq_kind,
    const char *const *, size_t, struct pending *);

static void
req_free(struct gwreq *q)
{
	free(q->name);
	free(q);
}

/* Answer the application behind q, if any, with an error. */
static void
req_fail(struct gwreq *q, const char *why)
{
	char msg[512];
	struct reg_entry *e;
	struct server *s = q->gw->srv;

	if (q->kind == GWQ_REGISTER && q->name != NULL &&
	    (e = registry_find(s->reg, q->name, strlen(q->name))) != NULL &&
	    e->scope >= REG_SCOPE_HOST && e->owner != NULL) {
		struct peer *p = e->owner;

		q->gw->withdrawing = true;
		registry_remove(s->reg, e, &p->entries);
		q->gw->withdrawing = false;
		p->nentries--;
	}
	if (q->pend != NULL) {
		snprintf(msg, sizeof msg, "%s", why);
		pending_reply(q->pend, 1, msg, strlen(msg));
		q->pend = NULL;
	}
}

static void gw_reply(struct peer *, void *, int, const char *, size_t);

/* No answer in time (code -1 from the engine, the link still up). */
static void
req_unanswered(struct gwreq *q, const char *why)
{
	struct gwlink *gw = q->gw;

	if (q->kind == GWQ_HELLO) {
		/* A gateway that does not greet us is no link. */
		peer_fail(gw->peer, "no answer to Commreg/Hello: %s", why);
		return;
	}
	req_fail(q, "the host gateway did not answer in time");
	/* Its verdict may still come, and be yes: take the name back. */
	if (q->kind == GWQ_REGISTER && q->name != NULL &&
	    (gw->state == GW_READY || gw->state == GW_HELLO)) {
		const char *w[2] = {"Commreg/Unregister", q->name};

		send_req(gw, GWQ_FORGET, w, 2, NULL);
	}
}

static struct gwreq *
send_req(struct gwlink *gw, enum gwreq_kind kind, const char *const *w,
    size_t n, struct pending *pend)
{
	struct gwreq *q;

	if ((q = calloc(1, sizeof *q)) == NULL)
		fatal("%s", __func__);
	q->gw = gw;
	q->kind = kind;
	q->pend = pend;
	TAILQ_INSERT_TAIL(&gw->reqs, q, link);
	q->req = peer_request(gw->peer, w, NULL, n,
	    pend != NULL || kind == GWQ_HELLO ? GW_TIMEOUT_MS : 0, gw_reply, q);
	return q;
}

/* The Commreg/Register words for a local entry. */
static struct gwreq *
send_register(struct gwlink *gw, const struct reg_entry *e,
    struct pending *pend)
{
	const char *w[12];
	char port[16], pid[24];
	size_t n = 0;
	struct gwreq *q;

	snprintf(port, sizeof port, "%d", e->port);
	w[n++] = "Commreg/Register";
	w[n++] = e->name;
	w[n++] = port;
	w[n++] = "-scope";
	w[n++] = registry_scope_name(e->scope);
	w[n++] = "-host";
	w[n++] = e->host;
	if (e->pid > 0) {
		snprintf(pid, sizeof pid, "%ld", (long)e->pid);
		w[n++] = "-pid";
		w[n++] = pid;
	}
	q = send_req(gw, GWQ_REGISTER, w, n, pend);
	if ((q->name = strdup(e->name)) == NULL)
		fatal("%s", __func__);
	return q;
}

/* The gateway took something back: the owner is told, the entry goes. */
static void
withdraw_local(struct gwlink *gw, const char *name, const char *reason)
{
	struct server *s = gw->srv;
	struct reg_entry *e;
	struct peer *p;
	const char *w[3];

	e = registry_find(s->reg, name, strlen(name));
	if (e == NULL || e->scope < REG_SCOPE_HOST || e->owner == NULL)
		return;
	p = e->owner;
	log_info("gateway withdrew \"%s\" of peer %s: %s", name, p->addr,
	    reason);
	w[0] = "Commreg/Withdrawn";
	w[1] = name;
	w[2] = reason;
	peer_send_async(p, w, NULL, 3);
	gw->withdrawing = true;
	registry_remove(s->reg, e, &p->entries);
	gw->withdrawing = false;
	p->nentries--;
}

/* ---- the copy of the others' entries -------------------------------- */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
arm(struct event *ev, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

/* Answer whoever waits for the copy, with what srv->mirror holds now. */
static void
waiters_release(struct gwlink *gw)
{
	struct gwwait *w;

	evtimer_del(gw->wait);
	while ((w = TAILQ_FIRST(&gw->waiters)) != NULL) {
		TAILQ_REMOVE(&gw->waiters, w, link);
		w->fn(w->arg);
		free(w);
	}
	server_flush(gw->srv);
}

/* Is the copy wanted: a watch here, or a listing not long ago? */
static bool
copy_wanted(const struct gwlink *gw)
{
	return registry_watch_count(gw->srv->reg) > 0 ||
	       !TAILQ_EMPTY(&gw->waiters) ||
	       now_ms() - gw->used_ms < GW_COPY_LINGER_MS;
}

/* Ask the gateway for its entries and every change to them. */
static void
copy_start(struct gwlink *gw)
{
	const char *w[3] = {"Commreg/Watch", GW_WATCH_TAG, "*"};

	gw->copying = true;
	gw->fresh = false;
	send_req(gw, GWQ_WATCH, w, 3, NULL);
	arm(gw->linger, GW_COPY_LINGER_MS);
	log_debug("host gateway: copying its entries");
}

/* Nobody uses the copy any more: stop the watch and drop it (no watcher
 * here is told: there is none). */
static void
copy_stop(struct gwlink *gw)
{
	const char *w[2] = {"Commreg/Unwatch", GW_WATCH_TAG};

	if (gw->state == GW_READY || gw->state == GW_HELLO)
		send_req(gw, GWQ_FORGET, w, 2, NULL);
	gw->copying = false;
	gw->fresh = false;
	gw->had_snapshot = false;
	mirror_clear(&gw->m);
	log_debug("host gateway: its entries unused for %d ms; copy dropped",
	    GW_COPY_LINGER_MS);
}

static void
linger_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gwlink *gw = arg;
	uint64_t idle;

	if (!gw->copying)
		return;
	if (copy_wanted(gw)) {
		/* Look again when the last use is GW_COPY_LINGER_MS old. */
		idle = now_ms() - gw->used_ms;
		arm(gw->linger, idle < GW_COPY_LINGER_MS
		                    ? GW_COPY_LINGER_MS - (int)idle
		                    : GW_COPY_LINGER_MS);
		return;
	}
	copy_stop(gw);
}

static void
wait_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gwlink *gw = arg;

	log_warnx("host gateway: its entries did not come within %d ms; "
	          "answering without them",
	    GW_COPY_WAIT_MS);
	waiters_release(gw);
}

bool
gwlink_copy_ready(struct gwlink *gw)
{
	gw->used_ms = now_ms();
	/* No gateway now: what the copy holds (kept for a while after a
	 * lost link, mirror.h) is all there is. */
	if (gw->state != GW_READY && gw->state != GW_HELLO)
		return true;
	if (!gw->copying)
		copy_start(gw);
	return gw->fresh;
}

void
gwlink_copy_wait(struct gwlink *gw, void (*fn)(void *), void *arg)
{
	struct gwwait *w;

	if ((w = calloc(1, sizeof *w)) == NULL)
		fatal("%s", __func__);
	w->fn = fn;
	w->arg = arg;
	if (TAILQ_EMPTY(&gw->waiters))
		arm(gw->wait, GW_COPY_WAIT_MS);
	TAILQ_INSERT_TAIL(&gw->waiters, w, link);
}

/* ---- replies and events ------------------------------------------------ */

static void
on_hello(struct gwlink *gw, int ok, const char *res, size_t len)
{
	struct tlist d;
	const char *err;
	bool is_gw = false;
	size_t i;

	tlist_init(&d);
	if (ok && tlist_parse(&d, res, len, &err) == 0 && d.n % 2 == 0) {
		for (i = 0; i < d.n; i += 2)
			if (strcmp(d.v[i].p, "gateway") == 0 &&
			    strcmp(d.v[i + 1].p, "commgwd") == 0)
				is_gw = true;
	}
	tlist_free(&d);
	if (!is_gw) {
		/* The engine frees it later, outside this callback. */
		peer_fail(gw->peer,
		    "the peer on the gateway socket is not commgwd");
		return;
	}
	gw->state = GW_READY;
	gw->attempt = 0;
	log_info("host gateway: linked through %s", gw->path);
	/* Everything held here with scope host or global, again: after a
	 * gateway restart nothing is lost for good. */
	{
		const struct reg_entry **v;
		size_t n, j;

		v = registry_sorted(gw->srv->reg, "*", 1, &n);
		for (j = 0; j < n; j++)
			if (v[j]->scope >= REG_SCOPE_HOST)
				send_register(gw, v[j], NULL);
		free((void *)v);
	}
	/* The copy again if it is used (the old one is kept meanwhile,
	 * mirror.h); else what is left of it goes. */
	if (copy_wanted(gw))
		copy_start(gw);
	else if (gw->had_snapshot) {
		gw->had_snapshot = false;
		mirror_clear(&gw->m);
	}
}

static void
on_register(struct gwlink *gw, struct gwreq *q, int ok, const char *res,
    size_t len)
{
	char msg[600];

	if (ok) {
		if (q->pend != NULL)
			pending_reply(q->pend, 0, q->name, strlen(q->name));
		q->pend = NULL;
		return;
	}
	snprintf(msg, sizeof msg, "host gateway: %.*s",
	    (int)(len > 500 ? 500 : len), res);
	if (q->pend == NULL) {
		/* A republication the gateway no longer accepts. */
		withdraw_local(gw, q->name, msg);
		return;
	}
	req_fail(q, msg);
}

/* The engine's answer to one of our requests: the gateway's (code 0
 * or 1), or none (-1: timed out, or the link went). */
static void
gw_reply(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct gwreq *q = arg;
	struct gwlink *gw = q->gw;
	struct commreg_entry *v;
	char why[256];
	size_t n;
	int ok = code == 0;

	TAILQ_REMOVE(&gw->reqs, q, link);
	if (code == -1) {
		/* A lost link answers through gw_gone, which takes the
		 * requests itself; only a deadline comes here. */
		req_unanswered(q, res);
		req_free(q);
		return;
	}
	switch (q->kind) {
	case GWQ_HELLO:
		on_hello(gw, ok, res, len);
		break;
	case GWQ_WATCH:
		if (!gw->copying)
			break; /* dropped meanwhile (copy_stop) */
		if (!ok) {
			log_warnx("host gateway: watch refused: %.*s", (int)len,
			    res);
			gw->copying = false;
		} else if (commreg_entries_parse(res, len, &v, &n, why,
		               sizeof why) == -1) {
			log_warnx("host gateway: bad snapshot: %s", why);
			gw->copying = false;
		} else {
			mirror_snapshot(&gw->m, v, n, gw->had_snapshot);
			gw->had_snapshot = true;
			gw->fresh = true;
			commreg_entries_free(v, n);
		}
		waiters_release(gw);
		break;
	case GWQ_REGISTER:
		on_register(gw, q, ok, res, len);
		break;
	case GWQ_FORGET:
		break;
	case GWQ_LOOKUP:
		if (q->pend != NULL)
			pending_reply(q->pend, ok ? 0 : 1, res, len);
		q->pend = NULL;
		break;
	}
	req_free(q);
}

/* ---- what the gateway sends us: one row and one handler each ----------- */

/* Commreg/Event TAG add|remove ENTRY: the copy of the others' entries. */
static int
gw_cmd_event(struct cmd_ctx *c)
{
	struct gwlink *gw = c->peer->arg;
	const struct tlist *w = c->words;
	struct commreg_entry e;
	char why[256];
	bool add = strcmp(w->v[2].p, "add") == 0;

	/* Another watch's, or the rest of one we stopped (copy_stop). */
	if (strcmp(w->v[1].p, GW_WATCH_TAG) != 0 || !gw->copying)
		return CMD_OK;
	if (!add && strcmp(w->v[2].p, "remove") != 0) {
		tbuf_adds(c->result, "bad event ");
		tbuf_add_quoted(c->result, w->v[2].p, w->v[2].len);
		return CMD_ERROR;
	}
	if (commreg_entry_parse(w->v[3].p, w->v[3].len, &e, why, sizeof why) ==
	    -1) {
		log_warnx("host gateway: bad event: %s", why);
		tbuf_adds(c->result, why);
		return CMD_ERROR;
	}
	if (add)
		mirror_put(&gw->m, &e);
	else
		mirror_remove(&gw->m, e.name);
	commreg_entry_clear(&e);
	return CMD_OK;
}

/* Commreg/Withdrawn NAME REASON: the gateway took a name back. */
static int
gw_cmd_withdrawn(struct cmd_ctx *c)
{
	struct gwlink *gw = c->peer->arg;

	withdraw_local(gw, c->words->v[1].p, c->words->v[2].p);
	return CMD_OK;
}

/* Sorted by name (cmd_table_find). */
static const struct cmd_entry gw_cmds[] = {
    {"Commreg/Event", 3, 3, "tag add|remove entry", gw_cmd_event},
    {"Commreg/Withdrawn", 2, 2, "name reason", gw_cmd_withdrawn},
};

static const struct cmd_entry *
gw_find(const char *name, size_t len)
{
	return cmd_table_find(gw_cmds, sizeof gw_cmds / sizeof gw_cmds[0], name,
	    len);
}

/* ---- the connection ------------------------------------------------------ */

static void
schedule_retry(struct gwlink *gw)
{
	struct timeval tv;
	int ms = backoff_ms(GW_RETRY_MIN_MS, GW_RETRY_MAX_MS, gw->attempt);

	ms = ms / 2 + (int)(arc4random_uniform((uint32_t)ms / 2 + 1));
	gw->attempt++;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(gw->retry, &tv);
}

/* The engine lets go of the link (closed, refused, silent, bad). */
static void
gw_gone(struct peer *p, const char *reason)
{
	struct gwlink *gw = p->arg;
	struct gwreq *q;
	char msg[400];
	const char *why = reason != NULL ? reason : "closed";

	gw->peer = NULL;
	if (gw->state == GW_READY)
		log_warnx("host gateway: link lost: %s", why);
	else if (gw->attempt == 0)
		log_info("host gateway: %s", why);
	snprintf(gw->why, sizeof gw->why, "%s", why);
	if (gw->state == GW_READY && gw->had_snapshot)
		mirror_lost(&gw->m);
	gw->copying = false;
	gw->fresh = false;
	gw->state = GW_IDLE;
	snprintf(msg, sizeof msg, "lost the host gateway: %s", gw->why);
	while ((q = TAILQ_FIRST(&gw->reqs)) != NULL) {
		TAILQ_REMOVE(&gw->reqs, q, link);
		/* The engine will not call back for it: it is gone too. */
		peer_request_cancel(q->req);
		/* A verdict that will not come: the application is told, and
		 * the name it was not given goes (a republication, whose
		 * application got its answer long ago, stays to be offered
		 * again on the next link). */
		if (q->kind != GWQ_REGISTER || q->pend != NULL)
			req_fail(q, msg);
		req_free(q);
	}
	waiters_release(gw);
	schedule_retry(gw);
}

static const struct peer_ops gw_peer_ops = {.find = gw_find, .gone = gw_gone};

static void
connected(struct gwlink *gw, int fd)
{
	const char *w[2] = {"Commreg/Hello", COMMREG_CLIENT_VERSION};

	gw->peer = peer_new(&gw->srv->eng, fd, false, "host gateway", &gw->lim,
	    &gw_peer_ops, gw);
	gw->state = GW_HELLO;
	send_req(gw, GWQ_HELLO, w, 2, NULL);
}

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	gw_connect(arg);
}

/* A Unix socket connect is immediate: done or refused at once. */
static void
gw_connect(struct gwlink *gw)
{
	struct sockaddr_un sun;
	char why[sizeof gw->why];
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", gw->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 ||
	    (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1 &&
	        errno != EINPROGRESS)) {
		snprintf(why, sizeof why, "connect to %.160s: %s", gw->path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		if (gw->attempt == 0)
			log_info("host gateway: %s", why);
		snprintf(gw->why, sizeof gw->why, "%s", why);
		gw->state = GW_IDLE;
		schedule_retry(gw);
		return;
	}
	connected(gw, fd);
}

/* ---- the registry's side ----------------------------------------------- */

/* An entry offered to the host went here: withdraw it there too. */
static void
observe(const struct reg_entry *e, bool added, void *arg)
{
	struct gwlink *gw = arg;
	const char *w[2] = {"Commreg/Unregister", e->name};

	if (added || e->scope < REG_SCOPE_HOST || gw->withdrawing ||
	    (gw->state != GW_READY && gw->state != GW_HELLO))
		return;
	send_req(gw, GWQ_FORGET, w, 2, NULL);
}

/* The copy is of other users' entries: our own are here already. */
static bool
skip_own(const struct commreg_entry *c, void *arg)
{
	struct gwlink *gw = arg;

	return c->uid == (long)gw->srv->uid;
}

bool
gwlink_ready(const struct gwlink *gw, char *err, size_t errlen)
{
	/* Greeting in flight counts: the gateway answers in order, so a
	 * request sent now is judged after the hello. */
	if (gw->state == GW_READY || gw->state == GW_HELLO)
		return true;
	snprintf(err, errlen, "%s",
	    gw->why[0] != '\0' ? gw->why : "not linked yet");
	return false;
}

bool
gwlink_settled(const struct gwlink *gw)
{
	return gw->state == GW_READY || gw->state == GW_IDLE;
}

int
gwlink_register(struct gwlink *gw, struct cmd_ctx *c, const struct reg_entry *e)
{
	struct pending *q;

	if ((q = pending_new(c, NULL)) == NULL) {
		tbuf_adds(c->result, "out of memory");
		return CMD_ERROR;
	}
	send_register(gw, e, q);
	return CMD_PENDING;
}

int
gwlink_lookup(struct gwlink *gw, struct cmd_ctx *c, const char *name,
    size_t len)
{
	const char *w[2] = {"Commreg/Lookup", name};

	struct pending *q;

	(void)len;
	if ((q = pending_new(c, NULL)) == NULL) {
		tbuf_adds(c->result, "out of memory");
		return CMD_ERROR;
	}
	send_req(gw, GWQ_LOOKUP, w, 2, q);
	return CMD_PENDING;
}

struct gwlink *
gwlink_start(struct server *srv, const char *socket_path)
{
	struct gwlink *gw;

	if ((gw = calloc(1, sizeof *gw)) == NULL)
		fatal("%s", __func__);
	gw->srv = srv;
	gw->lim = srv->lim;
	/* At least 64 MiB for the gateway's snapshot, more when the
	 * registry was given more (--max-message): a copy that cannot come
	 * would drop the link at each list. */
	if (gw->lim.max_message < GW_MAX_MESSAGE)
		gw->lim.max_message = GW_MAX_MESSAGE;
	snprintf(gw->path, sizeof gw->path, "%s", socket_path);
	TAILQ_INIT(&gw->reqs);
	TAILQ_INIT(&gw->waiters);
	mirror_init(&gw->m, srv, "host gateway");
	gw->m.skip = skip_own;
	gw->m.arg = gw;
	if ((gw->retry = evtimer_new(srv->base, retry_cb, gw)) == NULL ||
	    (gw->linger = evtimer_new(srv->base, linger_cb, gw)) == NULL ||
	    (gw->wait = evtimer_new(srv->base, wait_cb, gw)) == NULL)
		fatalx("event_new failed");
	registry_observe(srv->reg, observe, gw);
	gw_connect(gw);
	return gw;
}

void
gwlink_free(struct gwlink *gw)
{
	struct gwreq *q;

	if (gw == NULL)
		return;
	registry_unobserve(gw->srv->reg, gw);
	waiters_release(gw);
	while ((q = TAILQ_FIRST(&gw->reqs)) != NULL) {
		TAILQ_REMOVE(&gw->reqs, q, link);
		peer_request_cancel(q->req);
		req_free(q);
	}
	if (gw->peer != NULL) {
		/* The engine frees it later: it must not call us then. */
		gw->peer->ops = NULL;
		gw->peer->arg = NULL;
		peer_close(gw->peer);
	}
	mirror_free(&gw->m);
	event_free(gw->retry);
	event_free(gw->linger);
	event_free(gw->wait);
	free(gw);
}
