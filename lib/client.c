/*
 * The commreg client library (commreg.h, client.h): discovery of the
 * user registry, the conversation with it, and the blocking calls on top.
 *
 * The comm protocol itself is the peer engine's (engine/peer.h): framing,
 * the v3 handshake, replies matched to requests, pings both ways, every
 * limit.  What is here:
 *
 *  - what the registry's messages mean: entry dicts, and the watch events
 *    (client_event_decode), which the blocking client queues and async.c
 *    hands to its watches;
 *  - the blocking client: one engine peer on a private event_base that
 *    only its own calls run (event_base_loop with a timer for the wait's
 *    deadline), one call at a time, the events in a queue;
 *  - discovery (commreg_open and friends): port file, connect, uid check,
 *    hello, and starting commregd when there is no registry.  The pieces
 *    that do not wait (port file, connect start, spawn) are shared with
 *    async.c.
 *
 * Nothing here ends the process: out of memory is an error of the call
 * (or, inside what the registry sent, of the connection).
 */
#define _GNU_SOURCE /* pipe2 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "client.h"
#include "commwire.h"
#include "election.h"
#include "log.h"
#include "peer.h"
#include "peeruid.h"
#include "portowner.h"
#include "safepath.h"
#include "tcllist.h"

extern char **environ;

/* Tries of discovery; between two of them commregd is run once. */
#define DISCOVERY_ATTEMPTS 3
/* How much of commregd's stderr is kept for the error message. */
#define SPAWN_STDERR_MAX 2048
/* The least liveness a handle may ask for: below it, a loaded machine
 * would drop a registry that is merely slow. */
#define LIVENESS_MIN_MS 300

struct queued_event {
	TAILQ_ENTRY(queued_event) entry;
	struct commreg_event ev;
};
TAILQ_HEAD(event_queue, queued_event);

struct commreg_client {
	/* Private: only this client's own calls run it. */
	struct event_base *base;
	struct engine eng;
	int have_eng;
	struct engine_limits lim;
	struct peer *peer;   /* NULL once dead */
	int fd;              /* the peer's socket, -1 once dead */
	int dead;            /* err says why */
	struct event *timer; /* the deadline of the wait under way */
	int timed_out;
	uint64_t mark; /* engine messages when a dispatch began */

	/* The one outstanding call (the blocking API has at most one). */
	struct preq *want;
	int got_reply;
	int reply_code;
	struct tbuf reply;

	struct event_queue events;
	size_t nevents;

	int reply_timeout_ms;
	struct commreg_hello hello;
	char err[512];
};

static void client_fail(struct commreg_client *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- small helpers ---------------------------------------------------- */

static int
elem_is(const struct tl_elem *e, const char *s)
{
	size_t len = strlen(s);

	return e->len == len && memcmp(e->p, s, len) == 0;
}

/* NULL when out of memory. */
static char *
elem_strdup(const struct tl_elem *e)
{
	return strndup(e->p, e->len);
}

static void
elem_copy(char *dst, size_t dlen, const struct tl_elem *e)
{
	snprintf(dst, dlen, "%.*s", (int)e->len, e->p);
}

/* A whole decimal integer, optionally negative; "" is not one. */
static int
elem_ll(const struct tl_elem *e, long long *v)
{
	char *end;
	long long n;

	if (e->len == 0 || e->len > 20)
		return -1;
	errno = 0;
	n = strtoll(e->p, &end, 10);
	if (errno != 0 || end != e->p + e->len)
		return -1;
	*v = n;
	return 0;
}

static struct timespec
deadline_after(int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Milliseconds until t, rounded up, 0 when past. */
static int
ms_left(const struct timespec *t)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(t->tv_sec - now.tv_sec) * 1000 +
	     (t->tv_nsec - now.tv_nsec + 999999) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Shorten a message for a debug line. */
static int
trace_len(size_t len)
{
	return len > 300 ? 300 : (int)len;
}

/* ---- entries ---------------------------------------------------------- */

void
commreg_entry_clear(struct commreg_entry *e)
{
	free(e->name);
	free(e->base);
	free(e->host);
	free(e->data);
	free(e->scope);
	free(e->user);
	free(e->path);
	memset(e, 0, sizeof *e);
}

void
commreg_entries_free(struct commreg_entry *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		commreg_entry_clear(&v[i]);
	free(v);
}

void
commreg_event_clear(struct commreg_event *ev)
{
	free(ev->tag);
	commreg_entry_clear(&ev->entry);
	memset(ev, 0, sizeof *ev);
}

/*
 * Strings never NULL, numbers "unknown", so a partial dict is usable.
 * -1 when out of memory (then nothing is left allocated).
 */
static int
entry_defaults(struct commreg_entry *e)
{
	char **s[] = {&e->name, &e->base, &e->host, &e->data, &e->scope,
	    &e->user, &e->path};
	size_t i;

	memset(e, 0, sizeof *e);
	for (i = 0; i < sizeof s / sizeof s[0]; i++) {
		if ((*s[i] = strdup("")) == NULL) {
			commreg_entry_clear(e);
			return -1;
		}
	}
	e->uid = -1;
	e->pid = -1;
	return 0;
}

/* -2 when out of memory (the slot keeps its string). */
static int
entry_field_str(char **slot, const struct tl_elem *val)
{
	char *s;

	if ((s = elem_strdup(val)) == NULL)
		return -2;
	free(*slot);
	*slot = s;
	return 0;
}

/* Numbers may be empty ("unknown"), else must be whole numbers. */
static int
entry_field_num(long long *v, long long empty, const struct tl_elem *val)
{
	if (val->len == 0) {
		*v = empty;
		return 0;
	}
	return elem_ll(val, v);
}

/* 0, -1 for a bad value, -2 when out of memory. */
static int
entry_field(struct commreg_entry *e, const struct tl_elem *key,
    const struct tl_elem *val)
{
	long long n;

	if (elem_is(key, "name"))
		return entry_field_str(&e->name, val);
	if (elem_is(key, "base"))
		return entry_field_str(&e->base, val);
	if (elem_is(key, "host"))
		return entry_field_str(&e->host, val);
	if (elem_is(key, "data"))
		return entry_field_str(&e->data, val);
	if (elem_is(key, "scope"))
		return entry_field_str(&e->scope, val);
	if (elem_is(key, "user"))
		return entry_field_str(&e->user, val);
	if (elem_is(key, "path"))
		return entry_field_str(&e->path, val);
	if (elem_is(key, "serial")) {
		if (entry_field_num(&n, 0, val) == -1)
			return -1;
		e->serial = (long)n;
	} else if (elem_is(key, "port")) {
		if (entry_field_num(&n, 0, val) == -1 || n < 0 || n > 65535)
			return -1;
		e->port = (int)n;
	} else if (elem_is(key, "uid")) {
		if (entry_field_num(&n, -1, val) == -1)
			return -1;
		e->uid = (long)n;
	} else if (elem_is(key, "pid")) {
		if (entry_field_num(&n, -1, val) == -1)
			return -1;
		e->pid = (long)n;
	} else if (elem_is(key, "since")) {
		if (entry_field_num(&n, 0, val) == -1)
			return -1;
		e->since = n;
	}
	return 0; /* unknown keys: a newer registry's additions */
}

/* 0, -1 (err says why), -2 out of memory (err says so). */
static int
entry_from_dict(const struct tlist *d, struct commreg_entry *e, char *err,
    size_t errlen)
{
	size_t i;
	int have_name = 0, rc;

	if (d->n % 2 != 0) {
		reason(err, errlen, "entry is not a dict (%zu words)", d->n);
		return -1;
	}
	if (entry_defaults(e) == -1) {
		reason(err, errlen, "out of memory");
		return -2;
	}
	for (i = 0; i < d->n; i += 2) {
		if ((rc = entry_field(e, &d->v[i], &d->v[i + 1])) != 0) {
			if (rc == -2)
				reason(err, errlen, "out of memory");
			else
				reason(err, errlen,
				    "entry field %.*s: bad value "
				    "\"%.*s\"",
				    (int)d->v[i].len, d->v[i].p,
				    trace_len(d->v[i + 1].len), d->v[i + 1].p);
			commreg_entry_clear(e);
			return rc;
		}
		if (elem_is(&d->v[i], "name"))
			have_name = 1;
	}
	if (!have_name || e->name[0] == '\0') {
		reason(err, errlen, "entry without a name");
		commreg_entry_clear(e);
		return -1;
	}
	return 0;
}

/* commreg_entry_parse, telling a bad dict (-1) from no memory (-2). */
static int
entry_parse(const char *dict, size_t len, struct commreg_entry *e, char *err,
    size_t errlen)
{
	struct tlist d;
	const char *why;
	int rc;

	tlist_init(&d);
	if (tlist_parse(&d, dict, len, &why) == -1) {
		reason(err, errlen, "entry is not a list: %s", why);
		rc = -1;
	} else
		rc = entry_from_dict(&d, e, err, errlen);
	tlist_free(&d);
	return rc;
}

int
commreg_entry_parse(const char *dict, size_t len, struct commreg_entry *e,
    char *err, size_t errlen)
{
	return entry_parse(dict, len, e, err, errlen) == 0 ? 0 : -1;
}

int
commreg_entries_parse(const char *list, size_t len, struct commreg_entry **vp,
    size_t *np, char *err, size_t errlen)
{
	struct tlist l;
	struct commreg_entry *v = NULL;
	const char *why;
	size_t i;
	int rc = 0;

	*vp = NULL;
	*np = 0;
	tlist_init(&l);
	if (tlist_parse(&l, list, len, &why) == -1) {
		reason(err, errlen, "entry list is not a list: %s", why);
		tlist_free(&l);
		return -1;
	}
	if (l.n > 0 && (v = calloc(l.n, sizeof *v)) == NULL) {
		reason(err, errlen, "out of memory for %zu entries", l.n);
		tlist_free(&l);
		return -1;
	}
	for (i = 0; i < l.n; i++) {
		if (entry_parse(l.v[i].p, l.v[i].len, &v[i], err, errlen) !=
		    0) {
			commreg_entries_free(v, i);
			v = NULL;
			rc = -1;
			break;
		}
	}
	if (rc == 0) {
		*vp = v;
		*np = l.n;
	}
	tlist_free(&l);
	return rc;
}

/* ---- what the registry tells about watches ------------------------------ */

static int
event_type(const struct tl_elem *op, enum commreg_event_type *type)
{
	if (elem_is(op, "add"))
		*type = COMMREG_EVENT_ADD;
	else if (elem_is(op, "remove"))
		*type = COMMREG_EVENT_REMOVE;
	else
		return -1;
	return 0;
}

/* Commreg/Event TAG add|remove ENTRY (docs/protocol.md §4). */
static int
decode_event(const struct tlist *w, int (*put)(void *, struct commreg_event *),
    void *arg)
{
	struct commreg_event ev;
	char why[256];
	int rc;

	memset(&ev, 0, sizeof ev);
	if (w->n != 4 || event_type(&w->v[2], &ev.type) == -1) {
		log_debug("client: ignoring malformed Commreg/Event");
		return 0;
	}
	rc = entry_parse(w->v[3].p, w->v[3].len, &ev.entry, why, sizeof why);
	if (rc == -2)
		return -1;
	if (rc == -1) {
		log_debug("client: ignoring Commreg/Event: %s", why);
		return 0;
	}
	if ((ev.tag = elem_strdup(&w->v[1])) == NULL) {
		commreg_event_clear(&ev);
		return -1;
	}
	put(arg, &ev);
	return 0;
}

/*
 * nns DATA "PORT ?HOST?" gives a comm id; anything else stays only DATA.
 * -1 when out of memory (nothing left allocated).
 */
static int
nns_entry(struct commreg_entry *e, const struct tl_elem *name,
    const struct tl_elem *data)
{
	struct tlist d;
	const char *why;
	long long port;
	int rc = 0;

	if (entry_defaults(e) == -1)
		return -1;
	if (entry_field_str(&e->name, name) != 0 ||
	    entry_field_str(&e->base, name) != 0 ||
	    entry_field_str(&e->data, data) != 0) {
		commreg_entry_clear(e);
		return -1;
	}
	e->serial = 1;
	tlist_init(&d);
	if (tlist_parse(&d, data->p, data->len, &why) == 0 &&
	    (d.n == 1 || d.n == 2) && elem_ll(&d.v[0], &port) == 0 &&
	    port > 0 && port <= 65535) {
		e->port = (int)port;
		if (d.n == 2 && entry_field_str(&e->host, &d.v[1]) != 0) {
			commreg_entry_clear(e);
			rc = -1;
		}
	}
	tlist_free(&d);
	return rc;
}

/* Search/Continuous/Change TAG add|remove DICT: one event per name. */
static int
decode_nns_change(const struct tlist *w,
    int (*put)(void *, struct commreg_event *), void *arg)
{
	struct commreg_event ev;
	enum commreg_event_type type;
	struct tlist d;
	const char *why;
	size_t i;
	int rc = 0;

	if (w->n != 4 || event_type(&w->v[2], &type) == -1) {
		log_debug(
		    "client: ignoring malformed Search/Continuous/Change");
		return 0;
	}
	tlist_init(&d);
	if (tlist_parse(&d, w->v[3].p, w->v[3].len, &why) == -1 ||
	    d.n % 2 != 0) {
		log_debug("client: ignoring Search/Continuous/Change: "
		          "not a dict");
		tlist_free(&d);
		return 0;
	}
	for (i = 0; i < d.n; i += 2) {
		memset(&ev, 0, sizeof ev);
		ev.type = type;
		ev.nns = 1;
		if ((ev.tag = elem_strdup(&w->v[1])) == NULL ||
		    nns_entry(&ev.entry, &d.v[i], &d.v[i + 1]) == -1) {
			free(ev.tag);
			rc = -1;
			break;
		}
		if (put(arg, &ev) == -1)
			break;
	}
	tlist_free(&d);
	return rc;
}

int
client_event_decode(const struct tlist *w, int nns,
    int (*put)(void *, struct commreg_event *), void *arg)
{
	return nns ? decode_nns_change(w, put, arg) : decode_event(w, put, arg);
}

void
client_limits(struct engine_limits *l, size_t max_message, int liveness_ms)
{
	engine_default_limits(l);
	l->max_message =
	    max_message > 0 ? max_message : COMMREG_CLIENT_MAX_MESSAGE;
	if (liveness_ms == 0)
		liveness_ms = COMMREG_LIVENESS_MS;
	if (liveness_ms < 0) {
		l->ping_idle_ms = 0; /* no pings, so none unanswered */
		l->ping_timeout_ms = 0;
		return;
	}
	if (liveness_ms < LIVENESS_MIN_MS)
		liveness_ms = LIVENESS_MIN_MS;
	/* As the registry's --liveness: a third silent, then the rest. */
	l->ping_idle_ms = liveness_ms / 3;
	l->ping_timeout_ms = liveness_ms - liveness_ms / 3;
}

/*
 * On a loopback socket a failed read or write is the registry's end gone
 * (a reset, a broken pipe): said as a close, which is what it is.
 */
void
client_lost_why(char *buf, size_t len, const char *why)
{
	if (why == NULL)
		snprintf(buf, len, "the connection to the registry was closed");
	else if (strcmp(why, "the peer closed the connection") == 0)
		snprintf(buf, len, "the registry closed the connection");
	else if (strcmp(why, "out of memory") == 0)
		snprintf(buf, len, "out of memory");
	else if (strcmp(why, "write failed") == 0 ||
	         strcmp(why, "read failed") == 0)
		snprintf(buf, len, "the registry closed the connection (%s)",
		    why);
	else
		snprintf(buf, len, "lost the registry: %s", why);
}

/* ---- the blocking client: one engine peer on a private loop ------------- */

static void client_gone(struct peer *, const char *);
static const struct cmd_entry *client_find(const char *, size_t);

static const struct peer_ops client_ops = {
    .find = client_find,
    .gone = client_gone,
};

static void
client_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct commreg_client *c = arg;

	c->timed_out = 1;
}

/* An idle client: its loop and engine, no connection yet.  NULL with err
 * when they cannot be made. */
static struct commreg_client *
client_new(const struct commreg_open_opts *o, char *err, size_t errlen)
{
	struct commreg_client *c;

	if ((c = calloc(1, sizeof *c)) == NULL) {
		reason(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = -1;
	tbuf_init(&c->reply);
	TAILQ_INIT(&c->events);
	c->reply_timeout_ms = o != NULL && o->reply_timeout_ms > 0
	                          ? o->reply_timeout_ms
	                          : COMMREG_REPLY_TIMEOUT_MS;
	c->hello.uid = -1;
	c->hello.pid = -1;
	/* The blocking interface has no liveness option: the engine's
	 * default, which matters only while a call waits. */
	client_limits(&c->lim, o != NULL ? o->max_message : 0, 0);
	if ((c->base = event_base_new()) == NULL ||
	    (c->timer = evtimer_new(c->base, client_timer_cb, c)) == NULL ||
	    engine_init(&c->eng, c->base) == -1) {
		reason(err, errlen,
		    "cannot make an event loop (out of memory)");
		c->have_eng = c->base != NULL && c->timer != NULL;
		commreg_close(c);
		return NULL;
	}
	c->have_eng = 1;
	return c;
}

/*
 * Let go of the connection: the engine will not call us about it again.
 * The socket is shut down now, so that the registry sees us go at once
 * (dropping our names), and closed when the engine frees the peer.
 */
static void
client_drop_peer(struct commreg_client *c)
{
	struct peer *p = c->peer;

	if (c->want != NULL) {
		peer_request_cancel(c->want);
		c->want = NULL;
	}
	if (p == NULL)
		return;
	c->peer = NULL;
	p->ops = NULL;
	p->arg = NULL;
	if (p->fd != -1)
		shutdown(p->fd, SHUT_RDWR);
	peer_close(p);
}

/* The first reason is the one worth telling; later ones follow from it. */
static void
client_fail(struct commreg_client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	log_debug("client: %s", c->err);
	c->dead = 1;
	c->fd = -1;
	client_drop_peer(c);
}

/* The engine lets go of the connection (closed, broken, silent). */
static void
client_gone(struct peer *p, const char *why)
{
	struct commreg_client *c = p->arg;
	char reason[sizeof c->err];

	/* The engine frees p (closing its socket) once this returns, and
	 * fails what is still asked of it: nothing of it is ours now. */
	if (c->want != NULL) {
		peer_request_cancel(c->want);
		c->want = NULL;
	}
	c->peer = NULL;
	client_lost_why(reason, sizeof reason, why);
	client_fail(c, "%s", reason);
}

void
commreg_close(struct commreg_client *c)
{
	struct queued_event *q;

	if (c == NULL)
		return;
	client_drop_peer(c);
	if (c->have_eng)
		engine_free(&c->eng);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->base != NULL)
		event_base_free(c->base);
	while ((q = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, q, entry);
		commreg_event_clear(&q->ev);
		free(q);
	}
	tbuf_free(&c->reply);
	free(c);
}

const char *
commreg_error(const struct commreg_client *c)
{
	return c->err;
}

int
commreg_fd(const struct commreg_client *c)
{
	return c->dead ? -1 : c->fd;
}

const struct commreg_hello *
commreg_hello_info(const struct commreg_client *c)
{
	return &c->hello;
}

/* An event for the queue (client_event_decode's put). */
static int
client_put(void *arg, struct commreg_event *ev)
{
	struct commreg_client *c = arg;
	struct queued_event *q;

	if (c->dead) {
		commreg_event_clear(ev);
		return -1;
	}
	if (c->nevents >= COMMREG_MAX_QUEUED_EVENTS) {
		commreg_event_clear(ev);
		client_fail(c, "more than %d events not taken; giving up",
		    COMMREG_MAX_QUEUED_EVENTS);
		return -1;
	}
	if ((q = calloc(1, sizeof *q)) == NULL) {
		commreg_event_clear(ev);
		client_fail(c, "out of memory for an event");
		return -1;
	}
	q->ev = *ev;
	TAILQ_INSERT_TAIL(&c->events, q, entry);
	c->nevents++;
	return 0;
}

/* What the registry sends us: one row and one handler each.  Anything
 * else is answered as Tcl would (invalid command name) and dropped. */
static int
client_cmd_event(struct cmd_ctx *x)
{
	struct commreg_client *c = x->peer->arg;

	if (client_event_decode(x->words, 0, client_put, c) == -1)
		client_fail(c, "out of memory for an event");
	return CMD_OK;
}

static int
client_cmd_nns_change(struct cmd_ctx *x)
{
	struct commreg_client *c = x->peer->arg;

	if (client_event_decode(x->words, 1, client_put, c) == -1)
		client_fail(c, "out of memory for an event");
	return CMD_OK;
}

/* Sorted by name (cmd_table_find). */
static const struct cmd_entry client_cmds[] = {
    {"Commreg/Event", 3, 3, "tag add|remove entry", client_cmd_event},
    {"Search/Continuous/Change", 3, 3, "tag add|remove dict",
        client_cmd_nns_change},
};

static const struct cmd_entry *
client_find(const char *name, size_t len)
{
	return cmd_table_find(client_cmds,
	    sizeof client_cmds / sizeof client_cmds[0], name, len);
}

/* The engine's answer to our one call. */
static void
client_replied(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct commreg_client *c = arg;

	c->want = NULL;
	if (code == -1) {
		/* Only a deadline comes here (a lost peer answers through
		 * client_gone), and the calls set none. */
		client_fail(c, "no reply from the registry: %s", res);
		return;
	}
	tbuf_reset(&c->reply);
	tbuf_add(&c->reply, res, len);
	if (c->reply.failed) {
		client_fail(c, "out of memory");
		return;
	}
	c->reply_code = code;
	c->got_reply = 1;
}

static int
got_reply(const struct commreg_client *c)
{
	return c->got_reply;
}

static int
have_event(const struct commreg_client *c)
{
	return c->nevents > 0;
}

static int
got_input(const struct commreg_client *c)
{
	return c->eng.messages != c->mark;
}

/*
 * Run the private loop until done(c), the connection is lost, or ms pass
 * (negative: no limit; 0: only what is ready now).  Each round waits in
 * the kernel until something happens: a read, a write, the engine's
 * deadlines and pings, or our timer.
 */
static void
client_run(struct commreg_client *c, int ms,
    int (*done)(const struct commreg_client *))
{
	struct timeval tv;
	int rc;

	if (c->dead || done(c))
		return;
	if (ms == 0) {
		if (event_base_loop(c->base, EVLOOP_NONBLOCK) == -1)
			client_fail(c, "lost the registry: event loop failed");
		return;
	}
	c->timed_out = 0;
	if (ms > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(c->timer, &tv);
	}
	while (!c->dead && !c->timed_out && !done(c)) {
		/* 1: nothing left to wait for, which a live peer rules out. */
		if ((rc = event_base_loop(c->base, EVLOOP_ONCE)) != 0) {
			client_fail(c, "lost the registry: event loop %s",
			    rc == -1 ? "failed" : "has nothing to wait for");
			break;
		}
	}
	evtimer_del(c->timer);
}

int
commreg_call(struct commreg_client *c, const char *const *words,
    const size_t *lens, size_t n, struct tbuf *result)
{
	char why[sizeof c->err];

	tbuf_reset(result);
	if (c->dead) {
		tbuf_adds(result, c->err);
		return -1;
	}
	c->got_reply = 0;
	c->want = peer_request(c->peer, words, lens, n, 0, client_replied, c);
	if (c->want == NULL) {
		/* The engine let go of it; its gone hook has not run yet. */
		client_lost_why(why, sizeof why,
		    c->peer->gone_nomem ? "out of memory" : c->peer->gone_why);
		client_fail(c, "%s", why);
	} else
		client_run(c, c->reply_timeout_ms, got_reply);
	if (!c->got_reply) {
		client_fail(c, "no reply from the registry within %d ms",
		    c->reply_timeout_ms);
		tbuf_adds(result, c->err);
		return -1;
	}
	tbuf_add(result, c->reply.p, c->reply.len);
	if (result->failed) {
		/* The caller's buffer failed: it says nothing more. */
		client_fail(c, "out of memory");
		return -1;
	}
	if (c->reply_code == 0)
		return 0;
	snprintf(c->err, sizeof c->err, "%.*s", (int)result->len, result->p);
	return 1;
}

int
commreg_dispatch(struct commreg_client *c, int timeout_ms)
{
	c->mark = c->eng.messages;
	client_run(c, timeout_ms, got_input);
	return c->dead ? -1 : 0;
}

static int
event_pop(struct commreg_client *c, struct commreg_event *ev)
{
	struct queued_event *q;

	if ((q = TAILQ_FIRST(&c->events)) == NULL)
		return 0;
	TAILQ_REMOVE(&c->events, q, entry);
	c->nevents--;
	*ev = q->ev;
	free(q);
	return 1;
}

int
commreg_next_event(struct commreg_client *c, int timeout_ms,
    struct commreg_event *ev)
{
	if (event_pop(c, ev))
		return 1;
	client_run(c, timeout_ms, have_event);
	if (event_pop(c, ev))
		return 1;
	return c->dead ? -1 : 0;
}

/* ---- typed calls --------------------------------------------------------- */

/* A registry that answers nonsense is broken: give up on it. */
static int
client_bad_reply(struct commreg_client *c, const char *cmd, const char *why)
{
	client_fail(c, "malformed reply to %s: %s", cmd, why);
	return -1;
}

int
commreg_register(struct commreg_client *c, const char *name, int port,
    const char *host, char *assigned, size_t alen)
{
	return commreg_register_scope(c, name, port, host, NULL, assigned,
	    alen);
}

/* Commreg/Register, with -scope S unless scope is NULL or "user". */
int
commreg_register_scope(struct commreg_client *c, const char *name, int port,
    const char *host, const char *scope, char *assigned, size_t alen)
{
	const char *w[9];
	char pbuf[16], pidbuf[24];
	struct tbuf r;
	size_t n = 0;
	int rc;

	snprintf(pbuf, sizeof pbuf, "%d", port);
	snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
	w[n++] = "Commreg/Register";
	w[n++] = name;
	w[n++] = pbuf;
	/* The kernel tells the registry our uid, not our pid: say it, so
	 * that `commreg list` shows who holds each name. */
	w[n++] = "-pid";
	w[n++] = pidbuf;
	if (host != NULL) {
		w[n++] = "-host";
		w[n++] = host;
	}
	if (scope != NULL && strcmp(scope, "user") != 0) {
		w[n++] = "-scope";
		w[n++] = scope;
	}
	tbuf_init(&r);
	rc = commreg_call(c, w, NULL, n, &r);
	if (rc == 0 && alen > 0)
		snprintf(assigned, alen, "%.*s", (int)r.len, r.p);
	tbuf_free(&r);
	return rc;
}

/* A command of up to three words whose result does not matter. */
static int
client_simple(struct commreg_client *c, const char *w0, const char *w1,
    const char *w2)
{
	const char *w[3] = {w0, w1, w2};
	struct tbuf r;
	int rc;

	tbuf_init(&r);
	rc = commreg_call(c, w, NULL, w2 != NULL ? 3 : w1 != NULL ? 2 : 1, &r);
	tbuf_free(&r);
	return rc;
}

int
commreg_unregister(struct commreg_client *c, const char *name)
{
	return client_simple(c, "Commreg/Unregister", name, NULL);
}

int
commreg_unwatch(struct commreg_client *c, const char *tag)
{
	return client_simple(c, "Commreg/Unwatch", tag, NULL);
}

int
commreg_lookup(struct commreg_client *c, const char *name, struct tbuf *commid)
{
	const char *w[2] = {"Commreg/Lookup", name};

	return commreg_call(c, w, NULL, 2, commid);
}

int
commreg_lookup_id(struct commreg_client *c, const char *name, char *commid,
    size_t len)
{
	struct tbuf r;
	int rc;

	tbuf_init(&r);
	rc = commreg_lookup(c, name, &r);
	if (rc == 0 && len > 0)
		snprintf(commid, len, "%.*s", (int)r.len, r.p);
	tbuf_free(&r);
	return rc;
}

/* Send a command whose reply is a list of entries. */
static int
client_entries_call(struct commreg_client *c, const char *const *w, size_t n,
    struct commreg_entry **v, size_t *nv)
{
	struct tbuf r;
	char why[256];
	int rc;

	tbuf_init(&r);
	rc = commreg_call(c, w, NULL, n, &r);
	if (rc == 0 && v != NULL &&
	    commreg_entries_parse(r.p, r.len, v, nv, why, sizeof why) == -1)
		rc = client_bad_reply(c, w[0], why);
	tbuf_free(&r);
	return rc;
}

int
commreg_list(struct commreg_client *c, const char *pattern,
    struct commreg_entry **v, size_t *n)
{
	const char *w[2] = {"Commreg/List", pattern};

	*v = NULL;
	*n = 0;
	return client_entries_call(c, w, pattern != NULL ? 2 : 1, v, n);
}

int
commreg_watch(struct commreg_client *c, const char *tag, const char *pattern,
    struct commreg_entry **v, size_t *n)
{
	const char *w[3] = {"Commreg/Watch", tag, pattern};

	if (v != NULL) {
		*v = NULL;
		*n = 0;
	}
	return client_entries_call(c, w, 3, v, n);
}

static void
stats_field(struct commreg_stats *s, const struct tl_elem *k,
    const struct tl_elem *v)
{
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
	    {"entries", offsetof(struct commreg_stats, entries)},
	    {"connections", offsetof(struct commreg_stats, connections)},
	    {"watches", offsetof(struct commreg_stats, watches)},
	    {"uptime", offsetof(struct commreg_stats, uptime)},
	    {"messages", offsetof(struct commreg_stats, messages)},
	    {"refused", offsetof(struct commreg_stats, refused)},
	};
	size_t i;

	if (elem_is(k, "version")) {
		elem_copy(s->version, sizeof s->version, v);
		return;
	}
	for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		if (elem_is(k, nums[i].key)) {
			elem_ll(v, (long long *)((char *)s + nums[i].off));
			return;
		}
	}
}

int
commreg_stats(struct commreg_client *c, struct commreg_stats *s)
{
	const char *w[1] = {"Commreg/Stats"};
	struct tlist d;
	struct tbuf r;
	const char *why;
	size_t i;
	int rc;

	memset(s, 0, sizeof *s);
	s->entries = s->connections = s->watches = -1;
	s->uptime = s->messages = s->refused = -1;
	tbuf_init(&r);
	tlist_init(&d);
	rc = commreg_call(c, w, NULL, 1, &r);
	if (rc == 0) {
		if (tlist_parse(&d, r.p, r.len, &why) == -1 || d.n % 2 != 0)
			rc = client_bad_reply(c, w[0], "not a dict");
		else {
			for (i = 0; i < d.n; i += 2)
				stats_field(s, &d.v[i], &d.v[i + 1]);
		}
	}
	tlist_free(&d);
	tbuf_free(&r);
	return rc;
}

/* ---- handshake and hello ------------------------------------------------ */

static void
hello_field(struct commreg_hello *h, const struct tl_elem *k,
    const struct tl_elem *v)
{
	long long n;

	if (elem_is(k, "version"))
		elem_copy(h->version, sizeof h->version, v);
	else if (elem_is(k, "owner"))
		elem_copy(h->owner, sizeof h->owner, v);
	else if (elem_is(k, "host"))
		elem_copy(h->host, sizeof h->host, v);
	else if (elem_is(k, "scope"))
		elem_copy(h->scope, sizeof h->scope, v);
	else if (elem_ll(v, &n) == 0) {
		if (elem_is(k, "protocol"))
			h->protocol = (int)n;
		else if (elem_is(k, "port"))
			h->port = (int)n;
		else if (elem_is(k, "uid"))
			h->uid = (long)n;
		else if (elem_is(k, "pid"))
			h->pid = (long)n;
	}
}

/* The reply to Commreg/Hello must say `registry commreg`. */

int
client_hello_parse(struct commreg_hello *h, const char *s, size_t len)
{
	struct tlist d;
	const char *why;
	size_t i;
	int ok = 0;

	tlist_init(&d);
	if (tlist_parse(&d, s, len, &why) == 0 && d.n % 2 == 0) {
		for (i = 0; i < d.n; i += 2) {
			if (elem_is(&d.v[i], "registry") &&
			    elem_is(&d.v[i + 1], "commreg"))
				ok = 1;
			hello_field(h, &d.v[i], &d.v[i + 1]);
		}
	}
	tlist_free(&d);
	return ok ? 0 : -1;
}

struct commreg_client *
commreg_attach(int fd, const struct commreg_open_opts *o, char *err,
    size_t errlen)
{
	struct commreg_client *c;
	const char *w[2] = {"Commreg/Hello", COMMREG_CLIENT_VERSION};
	struct tbuf r;
	int flags, rc;

	log_library_default();
	tbuf_oom_library_default();
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		reason(err, errlen, "fcntl: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if ((c = client_new(o, err, errlen)) == NULL) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->peer =
	    peer_new(&c->eng, fd, false, "registry", &c->lim, &client_ops, c);
	if (c->peer == NULL) {
		/* The engine closed fd. */
		c->fd = -1;
		reason(err, errlen, "out of memory");
		commreg_close(c);
		return NULL;
	}
	/*
	 * Our offer and the hello go out together: the engine reads the
	 * answers in order, so {vers 3} is checked before the hello's reply
	 * is looked at.
	 */
	tbuf_init(&r);
	rc = commreg_call(c, w, NULL, 2, &r);
	if (rc == -1)
		reason(err, errlen, "%s", c->err);
	else if (rc == 1)
		reason(err, errlen,
		    "peer is not a commreg registry "
		    "(Commreg/Hello: %.*s)",
		    trace_len(r.len), r.p);
	else if (client_hello_parse(&c->hello, r.p, r.len) == -1) {
		reason(err, errlen,
		    "peer is not a commreg registry "
		    "(Commreg/Hello answered \"%.*s\")",
		    trace_len(r.len), r.p);
		rc = -1;
	}
	tbuf_free(&r);
	if (rc != 0) {
		commreg_close(c);
		return NULL;
	}
	log_debug("client: registry %s on port %d, pid %ld, owner %s",
	    c->hello.version, c->hello.port, c->hello.pid, c->hello.owner);
	return c;
}

/* ---- discovery ---------------------------------------------------------- */

int
client_connect_start(int port, char *err, size_t errlen)
{
	struct sockaddr_in sin;
	int fd, saved;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		reason(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 ||
	    errno == EINPROGRESS)
		return fd;
	saved = errno;
	reason(err, errlen, "connect to 127.0.0.1:%d: %s", port,
	    strerror(saved));
	close(fd);
	errno = saved;
	return -1;
}

/* Connect to 127.0.0.1:port within timeout_ms; the fd is nonblocking. */
static int
connect_loopback(int port, int timeout_ms, char *err, size_t errlen)
{
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, n, soerr = 0;

	if ((fd = client_connect_start(port, err, errlen)) == -1)
		return -1;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n == -1 && errno == EINTR);
	if (n == 0)
		soerr = ETIMEDOUT;
	else if (n == -1)
		soerr = errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		soerr = errno;
	if (soerr == 0)
		return fd;
	reason(err, errlen, "connect to 127.0.0.1:%d: %s", port,
	    strerror(soerr));
	close(fd);
	return -1;
}

/*
 * The port may have been taken over by someone else's program since our
 * registry died: only trust a socket our own uid owns.  The listener was
 * checked before anything was sent (client_check_listener); this asks
 * again of the connection itself, once the hello's answer says the peer
 * accepted it (before, an unaccepted socket has no owner to tell).  A
 * connection whose owner the kernel cannot tell is refused.
 */
int
client_check_owner(int fd, int port, const struct commreg_hello *h, char *err,
    size_t errlen)
{
	char why[256];
	uid_t uid;

	/*
	 * The kernel's word, or nothing: what the Hello says of its uid is
	 * a claim, and a squatter on a dead registry's port would claim
	 * ours.  The registry has answered, so it has accepted: its end of
	 * the connection is held and can be looked up.
	 */
	if (peeruid_lookup(fd, &uid, why, sizeof why) == -1) {
		reason(err, errlen, "cannot tell who holds port %d: %s", port,
		    why);
		return -1;
	}
	if (uid != getuid()) {
		reason(err, errlen,
		    "port %d belongs to uid %lu, not to uid %lu", port,
		    (unsigned long)uid, (unsigned long)getuid());
		return -1;
	}
	if (h->uid != -1 && (uid_t)h->uid != getuid()) {
		reason(err, errlen,
		    "registry on port %d is uid %ld's, not "
		    "uid %lu's",
		    port, h->uid, (unsigned long)getuid());
		return -1;
	}
	return 0;
}

int
client_check_listener(int port, char *err, size_t errlen)
{
	struct listeners ls;
	char why[256];
	int rc;

	memset(&ls, 0, sizeof ls);
	if (portowner_dump(&ls, why, sizeof why) == -1) {
		reason(err, errlen, "cannot tell who listens on port %d: %s",
		    port, why);
		return -1;
	}
	/* need: something of ours must listen there, and nothing of
	 * another's would take a connection to 127.0.0.1 instead. */
	rc = portowner_check_host(&ls, "127.0.0.1", port, getuid(), true, why,
	    sizeof why);
	portowner_free(&ls);
	if (rc == -1)
		reason(err, errlen, "not a registry of ours on port %d: %s",
		    port, why);
	return rc;
}

struct commreg_client *
commreg_connect_port(int port, const struct commreg_open_opts *o, char *err,
    size_t errlen)
{
	struct commreg_client *c;
	int fd;

	log_library_default();
	tbuf_oom_library_default();
	fd = connect_loopback(port,
	    o != NULL && o->connect_timeout_ms > 0 ? o->connect_timeout_ms
	                                           : COMMREG_CONNECT_TIMEOUT_MS,
	    err, errlen);
	if (fd == -1)
		return NULL;
	/* Connected, nothing sent yet: whose is it? */
	if (client_check_listener(port, err, errlen) == -1) {
		close(fd);
		return NULL;
	}
	if ((c = commreg_attach(fd, o, err, errlen)) == NULL)
		return NULL;
	if (client_check_owner(c->fd, port, &c->hello, err, errlen) == -1) {
		commreg_close(c);
		return NULL;
	}
	return c;
}

/*
 * Read "PORT\n" from the port file (ARCHITECTURE §3), the first line of
 * a file that may say more (docs/distributed.md).  NONE covers a
 * missing file, one still being written (no LF yet) and one that holds no
 * port: the election sorts all of those out.
 */
enum client_find
client_port_file_read(const char *path, int *port, char *err, size_t errlen)
{
	char buf[1024];
	const char *lf;
	ssize_t n;
	size_t i, plen;
	long v;
	int fd;

	/* O_NONBLOCK: a FIFO planted there must not hang the open. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT) {
			reason(err, errlen, "%s: no port file", path);
			return CLIENT_FIND_NONE;
		}
		if (errno == ELOOP) {
			reason(err, errlen,
			    "%s: is a symbolic link; "
			    "refusing to follow it",
			    path);
			return CLIENT_FIND_FATAL;
		}
		reason(err, errlen, "%s: %s", path, strerror(errno));
		return CLIENT_FIND_FATAL;
	}
	if (safe_file_fd(fd, path, getuid(), err, errlen) == -1) {
		close(fd);
		return CLIENT_FIND_FATAL;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n == -1) {
		reason(err, errlen, "%s: %s", path, strerror(errno));
		return CLIENT_FIND_FATAL;
	}
	if (n == 0 || buf[n - 1] != '\n') {
		reason(err, errlen, "%s: incomplete (a registry is starting)",
		    path);
		return CLIENT_FIND_NONE;
	}
	/* The port is the first line; the distributed registry's addresses
	 * may follow it (docs/distributed.md). */
	lf = memchr(buf, '\n', (size_t)n);
	plen = (size_t)(lf - buf);
	for (i = 0, v = 0; i < plen; i++) {
		if (buf[i] < '0' || buf[i] > '9' || i >= 5)
			break;
		v = v * 10 + (buf[i] - '0');
	}
	if (i == 0 || i != plen || v < 1 || v > 65535) {
		reason(err, errlen, "%s: holds no port number", path);
		return CLIENT_FIND_NONE;
	}
	*port = (int)v;
	return CLIENT_FIND_OK;
}

/*
 * Does a live process hold the port file's flock (docs/election.md)?
 * Read from /proc/locks, because probing with flock(2) itself would make
 * a starter that tries the lock at that instant take a dead registry's
 * file for a live one.  0 when unlocked or unknown.
 */
int
client_port_file_locked(const char *path)
{
	struct stat st;
	FILE *fp;
	char line[256], kind[16];
	unsigned int maj, mnr;
	unsigned long ino;
	int pid, found = 0;

	if (lstat(path, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (fp = fopen("/proc/locks", "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof line, fp) != NULL) {
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &pid,
		        &maj, &mnr, &ino) != 5)
			continue;
		found = strcmp(kind, "FLOCK") == 0 && maj == major(st.st_dev) &&
		        mnr == minor(st.st_dev) && ino == st.st_ino;
	}
	fclose(fp);
	return found;
}

static enum client_find
port_file_find(const char *path, const struct commreg_open_opts *o,
    struct commreg_client **cp, char *err, size_t errlen)
{
	enum client_find r;
	int port;

	if ((r = client_port_file_read(path, &port, err, errlen)) !=
	    CLIENT_FIND_OK)
		return r;
	log_debug("client: %s says port %d", path, port);
	if ((*cp = commreg_connect_port(port, o, err, errlen)) == NULL)
		return CLIENT_FIND_NONE;
	return CLIENT_FIND_OK;
}

/*
 * Where commregd is: option, environment, beside us, where the build
 * installs it, PATH.
 */
void
client_commregd_path(const char *opt, char *buf, size_t len)
{
	const char *s;
	char self[PATH_MAX], *slash;
	ssize_t n;

	if ((s = opt) != NULL ||
	    ((s = getenv("COMMREG_COMMREGD")) != NULL && *s != '\0')) {
		snprintf(buf, len, "%s", s);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			slash[1] = '\0';
			if ((size_t)snprintf(buf, len, "%scommregd", self) <
			        len &&
			    access(buf, X_OK) == 0)
				return;
		}
	}
#ifdef COMMREG_BINDIR
	if ((size_t)snprintf(buf, len, "%s/commregd", COMMREG_BINDIR) < len &&
	    access(buf, X_OK) == 0)
		return;
#endif
	snprintf(buf, len, "commregd");
}

int
client_env_regport(int *port, char *err, size_t errlen)
{
	const char *s = getenv(COMMREG_ENV_REGPORT);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535) {
		reason(err, errlen,
		    "%s=\"%.32s\" is not a port number; using the user "
		    "registry",
		    COMMREG_ENV_REGPORT, s);
		return -1;
	}
	*port = (int)v;
	return 1;
}

/*
 * environ with HOME replaced, so commregd looks where we looked, and
 * without TCL_COMM_REGPORT: a user registry has no business with the
 * private registry of whoever happened to start it.  NULL when out of
 * memory.
 */
static char **
spawn_env(const char *home)
{
	char **env;
	size_t n, i, j = 0;
	int len;

	for (n = 0; environ[n] != NULL; n++)
		;
	if ((env = calloc(n + 2, sizeof *env)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (strncmp(environ[i], "HOME=", 5) != 0 &&
		    strncmp(environ[i], COMMREG_ENV_REGPORT "=",
		        sizeof COMMREG_ENV_REGPORT) != 0)
			env[j++] = environ[i];
	}
	len = snprintf(NULL, 0, "HOME=%s", home);
	if ((env[j] = malloc((size_t)len + 1)) == NULL) {
		free(env);
		return NULL;
	}
	snprintf(env[j], (size_t)len + 1, "HOME=%s", home);
	return env;
}

static void
spawn_env_free(char **env)
{
	size_t n;

	for (n = 0; env[n] != NULL; n++)
		;
	free(env[n - 1]); /* the HOME= we made, always last */
	free(env);
}

/* Keep the last line commregd wrote to stderr for our error message. */
static const char *
last_line(struct tbuf *b)
{
	char *p;

	while (b->len > 0 &&
	       (b->p[b->len - 1] == '\n' || b->p[b->len - 1] == '\r'))
		b->p[--b->len] = '\0';
	if (b->len == 0)
		return "no message";
	if ((p = strrchr(b->p, '\n')) != NULL)
		return p + 1;
	return b->p;
}

int
client_spawn_commregd(const char *home, const char *commregd, pid_t *pidp,
    int *errfd, char *path, size_t plen, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	char *argv[3], **env;
	pid_t pid;
	int p[2], rc;

	client_commregd_path(commregd, path, plen);
	if ((env = spawn_env(home)) == NULL) {
		reason(err, errlen, "cannot run %s: out of memory", path);
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		reason(err, errlen, "pipe: %s", strerror(errno));
		spawn_env_free(env);
		return -1;
	}
	/* Only commregd's stderr (a dup, which drops the flag) gets it.
	 * stdout to /dev/null: a daemon must not hold a caller's pipe. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	argv[0] = path;
	argv[1] = (char *)"--detach";
	argv[2] = NULL;
	log_debug("client: running %s --detach", path);
	if (strchr(path, '/') != NULL)
		rc = posix_spawn(&pid, path, &fa, NULL, argv, env);
	else
		rc = posix_spawnp(&pid, path, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	spawn_env_free(env);
	close(p[1]);
	if (rc != 0) {
		reason(err, errlen, "cannot run %s: %s", path, strerror(rc));
		close(p[0]);
		return -1;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	*pidp = pid;
	*errfd = p[0];
	return 0;
}

int
client_spawn_collect(int errfd, struct tbuf *msg)
{
	char buf[512];
	ssize_t n;

	for (;;) {
		n = read(errfd, buf, sizeof buf);
		if (n == 0)
			return 0;
		if (n == -1)
			return errno == EAGAIN || errno == EINTR ? 1 : 0;
		if (msg->len + (size_t)n < SPAWN_STDERR_MAX)
			tbuf_add(msg, buf, (size_t)n);
	}
}

int
client_spawn_result(int status, const char *path, struct tbuf *msg, char *err,
    size_t errlen)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		reason(err, errlen, "%s --detach killed by signal %d", path,
		    WTERMSIG(status));
	else
		reason(err, errlen, "%s --detach failed (exit %d): %s", path,
		    WEXITSTATUS(status), last_line(msg));
	return -1;
}

/*
 * Wait for commregd --detach to exit, collecting its stderr.  A detached
 * daemon may keep the pipe open, so EOF is not awaited: the exit is.
 */
static int
spawn_wait(pid_t pid, int rfd, int timeout_ms, int *status, struct tbuf *msg)
{
	struct timespec deadline = deadline_after(timeout_ms);
	struct pollfd pfd = {rfd, POLLIN, 0};
	pid_t w;

	for (;;) {
		w = waitpid(pid, status, WNOHANG);
		if (w == pid || (w == -1 && errno == ECHILD))
			break;
		if (ms_left(&deadline) == 0)
			return -1;
		/* poll(2) skips a negative fd: then it only sleeps. */
		if (poll(&pfd, 1, 20) <= 0 || pfd.fd == -1)
			continue;
		if (client_spawn_collect(rfd, msg) == 0)
			pfd.fd = -1; /* EOF: just wait for the exit */
	}
	if (w == -1)
		*status = 0; /* SIGCHLD ignored by our caller: assume fine */
	/* Whatever it wrote just before exiting. */
	client_spawn_collect(rfd, msg);
	return 0;
}

/* Run `commregd --detach` and wait, bounded, for it to say 0. */
static int
commregd_run(const char *home, const struct commreg_open_opts *o, char *err,
    size_t errlen)
{
	char path[PATH_MAX];
	struct tbuf msg;
	pid_t pid;
	int efd, rc, status = 0, tmo;

	tmo = o != NULL && o->spawn_timeout_ms > 0 ? o->spawn_timeout_ms
	                                           : COMMREG_SPAWN_TIMEOUT_MS;
	if (client_spawn_commregd(home, o != NULL ? o->commregd : NULL, &pid,
	        &efd, path, sizeof path, err, errlen) == -1)
		return -1;
	tbuf_init(&msg);
	if (spawn_wait(pid, efd, tmo, &status, &msg) == -1) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		reason(err, errlen, "%s --detach did not finish within %d ms",
		    path, tmo);
		rc = -1;
	} else
		rc = client_spawn_result(status, path, &msg, err, errlen);
	close(efd);
	tbuf_free(&msg);
	return rc;
}

const char *
client_home_dir(const char *opt)
{
	struct passwd *pw;
	const char *h;

	if (opt != NULL)
		return opt;
	if ((h = getenv("HOME")) != NULL && *h != '\0')
		return h;
	if ((pw = getpwuid(getuid())) != NULL)
		return pw->pw_dir;
	return NULL;
}

/*
 * commreg status must not create anything: with no registry directory
 * there is no registry, and that is all it needs to know.
 */
static int
registry_dir_missing(const char *home)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof path, "%s/.tcl/comm/registry", home);
	return lstat(path, &sb) == -1 && errno == ENOENT;
}

int
client_registry_path(const char *home, char *regdir, size_t rdlen, char *host,
    size_t hlen, char *path, size_t plen, char *err, size_t errlen)
{
	if (safe_comm_tree(home, getuid(), regdir, rdlen, err, errlen) == -1)
		return -1;
	if (election_hostname(host, hlen) == -1) {
		reason(err, errlen, "cannot get the host name: %s",
		    strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(path, plen, "%s/%s", regdir, host) >= plen) {
		reason(err, errlen, "%s/%s: path too long", regdir, host);
		return -1;
	}
	return 0;
}

struct commreg_client *
commreg_open(const struct commreg_open_opts *o, char *err, size_t errlen)
{
	struct commreg_client *c = NULL;
	enum client_find r;
	const char *home;
	char regdir[PATH_MAX], host[256], path[PATH_MAX];
	char why[512];
	int attempt, no_spawn = o != NULL && o->no_spawn, port;

	log_library_default();
	tbuf_oom_library_default();
	/* The note's rule: TCL_COMM_REGPORT first; unreachable, as usual. */
	switch (client_env_regport(&port, why, sizeof why)) {
	case 1:
		if ((c = commreg_connect_port(port, o, why, sizeof why)) !=
		    NULL)
			return c;
		log_warnx("%s=%d: %s; using the user registry",
		    COMMREG_ENV_REGPORT, port, why);
		break;
	case -1:
		log_warnx("%s", why);
		break;
	}
	if ((home = client_home_dir(o != NULL ? o->home : NULL)) == NULL) {
		reason(err, errlen, "no home directory (HOME is not set)");
		return NULL;
	}
	if (no_spawn && registry_dir_missing(home)) {
		reason(err, errlen,
		    "no registry is running (no "
		    "%s/.tcl/comm/registry)",
		    home);
		errno = ESRCH;
		return NULL;
	}
	if (client_registry_path(home, regdir, sizeof regdir, host, sizeof host,
	        path, sizeof path, err, errlen) == -1)
		return NULL;
	for (attempt = 0;; attempt++) {
		r = port_file_find(path, o, &c, why, sizeof why);
		if (r == CLIENT_FIND_OK)
			return c;
		if (r == CLIENT_FIND_FATAL) {
			reason(err, errlen, "%s", why);
			return NULL;
		}
		log_debug("client: no registry: %s", why);
		if (no_spawn) {
			reason(err, errlen, "no registry is running (%s)", why);
			errno = ESRCH;
			return NULL;
		}
		if (attempt == DISCOVERY_ATTEMPTS - 1) {
			reason(err, errlen,
			    "no registry after starting "
			    "commregd: %s",
			    why);
			return NULL;
		}
		if (commregd_run(home, o, err, errlen) == -1)
			return NULL;
	}
}

/* ---- library-wide ------------------------------------------------------- */

const char *
commreg_version(void)
{
	return COMMREG_CLIENT_VERSION;
}

void
commreg_set_log_level(int level)
{
	log_set_level(level <= 0   ? LOG_LVL_WARN
	              : level == 1 ? LOG_LVL_INFO
	                           : LOG_LVL_DEBUG);
}

void
commreg_set_log_handler(commreg_log_fn fn, void *arg)
{
	log_set_sink(fn, arg);
}
