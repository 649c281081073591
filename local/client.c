/*
 * The commreg client library (commreg.h, client.h): discovery of the
 * user registry, the comm v3 conversation with it, and the blocking calls
 * on top.
 *
 * The code falls in three layers; the libevent driver (async.c) replaces
 * the middle one and reuses the others:
 *
 *  - wire handling (client_input, client_message, client_async): turns
 *    received bytes into a handshake state, replies and events; it never
 *    blocks.  Replies and events go to the driver's hooks when it set
 *    some, else to the one awaited reply and the event queue;
 *  - waiting (client_pump, client_wait_reply): poll(2) on the socket with
 *    a deadline, write what is queued, read what arrives;
 *  - discovery (commreg_open and friends): port file, connect, uid check,
 *    hello, and starting commregd when there is no registry.  The pieces
 *    that do not wait (port file, connect start, spawn) are shared with
 *    async.c.
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

#include "client.h"
#include "commwire.h"
#include "election.h"
#include "log.h"
#include "peeruid.h"
#include "safepath.h"
#include "tcllist.h"

extern char **environ;

/* Tries of discovery; between two of them commregd is run once. */
#define DISCOVERY_ATTEMPTS 3
/* How much of commregd's stderr is kept for the error message. */
#define SPAWN_STDERR_MAX 2048
/* Bytes asked of read(2) at a time. */
#define READ_CHUNK 65536

enum client_state {
	CLIENT_HANDSHAKE, /* hello line sent, waiting for {vers 3} */
	CLIENT_READY,
	CLIENT_DEAD, /* lost; c->err says why */
};

enum pump_result {
	PUMP_OK,
	PUMP_TIMEOUT,
	PUMP_INTR,
	PUMP_DEAD,
};

struct queued_event {
	TAILQ_ENTRY(queued_event) entry;
	struct commreg_event ev;
};
TAILQ_HEAD(event_queue, queued_event);

struct commreg_client {
	int fd;
	enum client_state state;
	struct comm_framer framer;
	struct tbuf in;  /* received, not yet framed */
	struct tbuf out; /* formatted, not yet written */
	int64_t next_serial;

	/* The one outstanding send (the blocking API has at most one). */
	int64_t want_serial; /* 0: none */
	int got_reply;
	int reply_code;
	struct tbuf reply;

	struct event_queue events;
	size_t nevents;

	/* Reused for every message, so steady traffic does not allocate. */
	struct tlist msg;
	struct tlist words;
	struct tlist frags;
	struct tbuf scratch;
	struct tbuf why;

	int reply_timeout_ms;
	struct commreg_hello hello;
	char err[512];

	/* Set by the event-loop driver; NULL for the blocking API. */
	const struct client_hooks *hooks;
	void *hook_arg;
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

static char *
elem_strdup(const struct tl_elem *e)
{
	char *s;

	if ((s = strndup(e->p, e->len)) == NULL)
		fatal("%s", __func__);
	return s;
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

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
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

/* Length without the trailing CR/LF, for a trace line. */
static size_t
trim_len(const char *p, size_t len)
{
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	return len;
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

/* Strings never NULL, numbers "unknown", so a partial dict is usable. */
static void
entry_defaults(struct commreg_entry *e)
{
	static const struct tl_elem empty = {"", 0};

	memset(e, 0, sizeof *e);
	e->name = elem_strdup(&empty);
	e->base = elem_strdup(&empty);
	e->host = elem_strdup(&empty);
	e->data = elem_strdup(&empty);
	e->scope = elem_strdup(&empty);
	e->user = elem_strdup(&empty);
	e->path = elem_strdup(&empty);
	e->uid = -1;
	e->pid = -1;
}

static int
entry_field_str(char **slot, const struct tl_elem *val)
{
	free(*slot);
	*slot = elem_strdup(val);
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

static int
entry_from_dict(const struct tlist *d, struct commreg_entry *e, char *err,
    size_t errlen)
{
	size_t i;
	int have_name = 0;

	if (d->n % 2 != 0) {
		set_err(err, errlen, "entry is not a dict (%zu words)", d->n);
		return -1;
	}
	entry_defaults(e);
	for (i = 0; i < d->n; i += 2) {
		if (entry_field(e, &d->v[i], &d->v[i + 1]) == -1) {
			set_err(err, errlen,
			    "entry field %.*s: bad value "
			    "\"%.*s\"",
			    (int)d->v[i].len, d->v[i].p,
			    trace_len(d->v[i + 1].len), d->v[i + 1].p);
			commreg_entry_clear(e);
			return -1;
		}
		if (elem_is(&d->v[i], "name"))
			have_name = 1;
	}
	if (!have_name || e->name[0] == '\0') {
		set_err(err, errlen, "entry without a name");
		commreg_entry_clear(e);
		return -1;
	}
	return 0;
}

int
commreg_entry_parse(const char *dict, size_t len, struct commreg_entry *e,
    char *err, size_t errlen)
{
	struct tlist d;
	const char *why;
	int rc;

	tlist_init(&d);
	if (tlist_parse(&d, dict, len, &why) == -1) {
		set_err(err, errlen, "entry is not a list: %s", why);
		rc = -1;
	} else
		rc = entry_from_dict(&d, e, err, errlen);
	tlist_free(&d);
	return rc;
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
		set_err(err, errlen, "entry list is not a list: %s", why);
		tlist_free(&l);
		return -1;
	}
	if (l.n > 0 && (v = calloc(l.n, sizeof *v)) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < l.n; i++) {
		if (commreg_entry_parse(l.v[i].p, l.v[i].len, &v[i], err,
		        errlen) == -1) {
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

/* ---- connection state ------------------------------------------------- */

static struct commreg_client *
client_new(int fd, const struct commreg_open_opts *o)
{
	struct commreg_client *c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		fatal("%s", __func__);
	c->fd = fd;
	c->state = CLIENT_HANDSHAKE;
	comm_framer_init(&c->framer, o != NULL && o->max_message > 0
	                                 ? o->max_message
	                                 : COMMREG_CLIENT_MAX_MESSAGE);
	tbuf_init(&c->in);
	tbuf_init(&c->out);
	tbuf_init(&c->reply);
	tbuf_init(&c->scratch);
	tbuf_init(&c->why);
	tlist_init(&c->msg);
	tlist_init(&c->words);
	tlist_init(&c->frags);
	TAILQ_INIT(&c->events);
	c->next_serial = 1;
	c->reply_timeout_ms = o != NULL && o->reply_timeout_ms > 0
	                          ? o->reply_timeout_ms
	                          : COMMREG_REPLY_TIMEOUT_MS;
	c->hello.uid = -1;
	c->hello.pid = -1;
	return c;
}

/* The first reason is the one worth telling; later ones follow from it. */
static void
client_fail(struct commreg_client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->state == CLIENT_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	log_debug("client: %s", c->err);
	c->state = CLIENT_DEAD;
	/* The driver must take the fd out of its event loop first. */
	if (c->fd != -1 && c->hooks == NULL) {
		close(c->fd);
		c->fd = -1;
	}
}

void
commreg_close(struct commreg_client *c)
{
	struct queued_event *q;

	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	while ((q = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, q, entry);
		commreg_event_clear(&q->ev);
		free(q);
	}
	tbuf_free(&c->in);
	tbuf_free(&c->out);
	tbuf_free(&c->reply);
	tbuf_free(&c->scratch);
	tbuf_free(&c->why);
	tlist_free(&c->msg);
	tlist_free(&c->words);
	tlist_free(&c->frags);
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
	return c->fd;
}

const struct commreg_hello *
commreg_hello_info(const struct commreg_client *c)
{
	return &c->hello;
}

/* ---- wire handling: bytes in, state out; never blocks ------------------ */

static void
client_queue_event(struct commreg_client *c, struct commreg_event *ev)
{
	struct queued_event *q;

	if (c->hooks != NULL) {
		c->hooks->event(c->hook_arg, ev);
		return;
	}
	if (c->nevents >= COMMREG_MAX_QUEUED_EVENTS) {
		commreg_event_clear(ev);
		client_fail(c, "more than %d events not taken; giving up",
		    COMMREG_MAX_QUEUED_EVENTS);
		return;
	}
	if ((q = calloc(1, sizeof *q)) == NULL)
		fatal("%s", __func__);
	q->ev = *ev;
	TAILQ_INSERT_TAIL(&c->events, q, entry);
	c->nevents++;
}

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
static void
client_commreg_event(struct commreg_client *c, const struct tlist *w)
{
	struct commreg_event ev;
	char why[256];

	memset(&ev, 0, sizeof ev);
	if (w->n != 4 || event_type(&w->v[2], &ev.type) == -1) {
		log_debug("client: ignoring malformed Commreg/Event");
		return;
	}
	if (commreg_entry_parse(w->v[3].p, w->v[3].len, &ev.entry, why,
	        sizeof why) == -1) {
		log_debug("client: ignoring Commreg/Event: %s", why);
		return;
	}
	ev.tag = elem_strdup(&w->v[1]);
	client_queue_event(c, &ev);
}

/* nns DATA "PORT ?HOST?" gives a comm id; anything else stays only DATA. */
static void
nns_entry(struct commreg_entry *e, const struct tl_elem *name,
    const struct tl_elem *data)
{
	struct tlist d;
	const char *why;
	long long port;

	entry_defaults(e);
	entry_field_str(&e->name, name);
	entry_field_str(&e->base, name);
	entry_field_str(&e->data, data);
	e->serial = 1;
	tlist_init(&d);
	if (tlist_parse(&d, data->p, data->len, &why) == 0 &&
	    (d.n == 1 || d.n == 2) && elem_ll(&d.v[0], &port) == 0 &&
	    port > 0 && port <= 65535) {
		e->port = (int)port;
		if (d.n == 2)
			entry_field_str(&e->host, &d.v[1]);
	}
	tlist_free(&d);
}

/* Search/Continuous/Change TAG add|remove DICT: one event per name. */
static void
client_nns_change(struct commreg_client *c, const struct tlist *w)
{
	struct commreg_event ev;
	enum commreg_event_type type;
	struct tlist d;
	const char *why;
	size_t i;

	if (w->n != 4 || event_type(&w->v[2], &type) == -1) {
		log_debug(
		    "client: ignoring malformed Search/Continuous/Change");
		return;
	}
	tlist_init(&d);
	if (tlist_parse(&d, w->v[3].p, w->v[3].len, &why) == -1 ||
	    d.n % 2 != 0) {
		log_debug("client: ignoring Search/Continuous/Change: "
		          "not a dict");
		tlist_free(&d);
		return;
	}
	for (i = 0; i < d.n && c->state != CLIENT_DEAD; i += 2) {
		memset(&ev, 0, sizeof ev);
		ev.type = type;
		ev.nns = 1;
		ev.tag = elem_strdup(&w->v[1]);
		nns_entry(&ev.entry, &d.v[i], &d.v[i + 1]);
		client_queue_event(c, &ev);
	}
	tlist_free(&d);
}

static void
client_async(struct commreg_client *c, const struct tl_elem *payload)
{
	if (comm_payload_command(payload->p, payload->len, &c->frags,
	        &c->scratch, &c->words, &c->why) == -1) {
		log_debug("client: ignoring async message: %.*s",
		    (int)c->why.len, c->why.p);
		return;
	}
	if (c->words.n == 0)
		return;
	if (elem_is(&c->words.v[0], "Commreg/Event"))
		client_commreg_event(c, &c->words);
	else if (elem_is(&c->words.v[0], "Search/Continuous/Change"))
		client_nns_change(c, &c->words);
	else if (c->hooks != NULL && c->hooks->command != NULL)
		c->hooks->command(c->hook_arg, &c->words);
	else
		log_debug("client: ignoring async %.*s",
		    trace_len(c->words.v[0].len), c->words.v[0].p);
}

static void
client_reply(struct commreg_client *c, int64_t serial,
    const struct tl_elem *payload)
{
	struct tl_elem result;
	const char *why;
	int code;

	if (c->hooks != NULL) {
		if (tlist_parse(&c->words, payload->p, payload->len, &why) ==
		        -1 ||
		    comm_parse_return(&c->words, &code, &result) == -1) {
			client_fail(c,
			    "malformed reply from the registry: "
			    "%.*s",
			    trace_len(payload->len), payload->p);
			return;
		}
		c->hooks->reply(c->hook_arg, serial, code, result.p,
		    result.len);
		return;
	}
	if (serial != c->want_serial || c->got_reply) {
		log_debug("client: dropping reply %lld nobody waits for",
		    (long long)serial);
		return;
	}
	if (tlist_parse(&c->words, payload->p, payload->len, &why) == -1 ||
	    comm_parse_return(&c->words, &code, &result) == -1) {
		client_fail(c, "malformed reply from the registry: %.*s",
		    trace_len(payload->len), payload->p);
		return;
	}
	tbuf_reset(&c->reply);
	tbuf_add(&c->reply, result.p, result.len);
	c->reply_code = code;
	c->got_reply = 1;
}

/*
 * A registry does not send us commands; answer one anyway, as comm would,
 * so that a peer waiting for the reply is not left hanging.
 */
static void
client_refuse_command(struct commreg_client *c, const struct tl_elem *kind,
    int64_t serial)
{
	static const char msg[] = "a commreg client accepts no commands";

	comm_format_reply(&c->out,
	    elem_is(kind, "command") ? "callback" : "reply", serial, 1, msg,
	    sizeof msg - 1, NULL);
}

static void
client_message(struct commreg_client *c)
{
	const struct tlist *m = &c->msg;
	long long serial;

	if (c->state == CLIENT_HANDSHAKE) {
		if (m->n != 2 || !elem_is(&m->v[0], "vers") ||
		    !elem_is(&m->v[1], "3")) {
			client_fail(c, "peer did not answer the comm handshake "
			               "with {vers 3}");
			return;
		}
		c->state = CLIENT_READY;
		return;
	}
	if (m->n != 3 || elem_ll(&m->v[1], &serial) == -1) {
		client_fail(c, "malformed message from the registry "
		               "(want KIND SERIAL PAYLOAD)");
		return;
	}
	if (elem_is(&m->v[0], "reply") || elem_is(&m->v[0], "callback"))
		client_reply(c, serial, &m->v[2]);
	else if (elem_is(&m->v[0], "async"))
		client_async(c, &m->v[2]);
	else if (elem_is(&m->v[0], "send") || elem_is(&m->v[0], "command"))
		client_refuse_command(c, &m->v[0], serial);
	else
		log_debug("client: ignoring message of kind %.*s",
		    trace_len(m->v[0].len), m->v[0].p);
}

/* Frame and handle every complete message in c->in. */
static void
client_input(struct commreg_client *c)
{
	enum comm_frame_status st;
	const char *why = NULL;
	size_t used;

	while (c->state != CLIENT_DEAD && c->in.len > 0) {
		st = comm_frame_next(&c->framer, c->in.p, c->in.len, &used,
		    &c->msg, &why);
		if (st == COMM_FRAME_MORE)
			break;
		if (st == COMM_FRAME_ERROR) {
			client_fail(c, "bad message from the registry: %s",
			    why != NULL ? why : "framing error");
			break;
		}
		log_debug("client: <- %.*s", trace_len(trim_len(c->in.p, used)),
		    c->in.p);
		client_message(c);
		tbuf_consume(&c->in, used);
	}
}

/* ---- waiting: the blocking driver -------------------------------------- */

static void
client_read(struct commreg_client *c)
{
	ssize_t n;

	tbuf_reserve(&c->in, READ_CHUNK + 1);
	n = recv(c->fd, c->in.p + c->in.len, READ_CHUNK, MSG_DONTWAIT);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (errno == ECONNRESET)
			client_fail(c, "the registry closed the connection");
		else
			client_fail(c, "lost the registry: read: %s",
			    strerror(errno));
		return;
	}
	if (n == 0) {
		client_fail(c, "the registry closed the connection");
		return;
	}
	c->in.len += (size_t)n;
	c->in.p[c->in.len] = '\0';
	client_input(c);
}

static void
client_write(struct commreg_client *c)
{
	ssize_t n;

	n = send(c->fd, c->out.p, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (errno == EPIPE || errno == ECONNRESET)
			client_fail(c, "the registry closed the connection");
		else
			client_fail(c, "lost the registry: write: %s",
			    strerror(errno));
		return;
	}
	tbuf_consume(&c->out, (size_t)n);
}

/* One poll(2) round: write what is queued, read what arrives. */
static enum pump_result
client_pump(struct commreg_client *c, int timeout_ms)
{
	struct pollfd pfd;
	int n;

	if (c->state == CLIENT_DEAD)
		return PUMP_DEAD;
	pfd.fd = c->fd;
	pfd.events = POLLIN | (c->out.len > 0 ? POLLOUT : 0);
	pfd.revents = 0;
	n = poll(&pfd, 1, timeout_ms);
	if (n == -1) {
		if (errno == EINTR)
			return PUMP_INTR;
		client_fail(c, "poll: %s", strerror(errno));
		return PUMP_DEAD;
	}
	if (n == 0)
		return PUMP_TIMEOUT;
	if (pfd.revents & POLLNVAL) {
		client_fail(c, "lost the registry: socket closed");
		return PUMP_DEAD;
	}
	if ((pfd.revents & POLLOUT) && c->out.len > 0)
		client_write(c);
	if (c->state != CLIENT_DEAD &&
	    (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
		client_read(c);
	return c->state == CLIENT_DEAD ? PUMP_DEAD : PUMP_OK;
}

/* Wait for the reply to c->want_serial, bounded by the reply timeout. */
static int
client_wait_reply(struct commreg_client *c)
{
	struct timespec deadline;
	int left;

	deadline = deadline_after(c->reply_timeout_ms);
	while (!c->got_reply) {
		if ((left = ms_left(&deadline)) == 0) {
			client_fail(c,
			    "no reply from the registry within "
			    "%d ms",
			    c->reply_timeout_ms);
			return -1;
		}
		if (client_pump(c, left) == PUMP_DEAD)
			return -1;
	}
	return 0;
}

/* Queue a send of one command; the words become {{w w ...}}. */
int64_t
client_send(struct commreg_client *c, const char *const *words,
    const size_t *lens, size_t n)
{
	struct tbuf payload;
	size_t *l = NULL;
	size_t i;
	int64_t serial = c->next_serial++;

	if (lens == NULL && n > 0) {
		if ((l = calloc(n, sizeof *l)) == NULL)
			fatal("%s", __func__);
		for (i = 0; i < n; i++)
			l[i] = strlen(words[i]);
		lens = l;
	}
	tbuf_init(&payload);
	comm_format_command(&payload, words, lens, n);
	comm_format_message(&c->out, "send", serial, payload.p, payload.len);
	log_debug("client: -> send %lld %.*s", (long long)serial,
	    trace_len(payload.len), payload.p);
	tbuf_free(&payload);
	free(l);
	return serial;
}

int
commreg_call(struct commreg_client *c, const char *const *words,
    const size_t *lens, size_t n, struct tbuf *result)
{
	tbuf_reset(result);
	if (c->state == CLIENT_DEAD) {
		tbuf_adds(result, c->err);
		return -1;
	}
	c->want_serial = client_send(c, words, lens, n);
	c->got_reply = 0;
	if (client_wait_reply(c) == -1) {
		c->want_serial = 0;
		tbuf_adds(result, c->err);
		return -1;
	}
	c->want_serial = 0;
	tbuf_add(result, c->reply.p, c->reply.len);
	/* comm counts -code 2 (return) as success too. */
	if (c->reply_code == 0 || c->reply_code == 2)
		return 0;
	snprintf(c->err, sizeof c->err, "%.*s", (int)result->len, result->p);
	return 1;
}

int
commreg_dispatch(struct commreg_client *c, int timeout_ms)
{
	return client_pump(c, timeout_ms) == PUMP_DEAD ? -1 : 0;
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
	struct timespec deadline;
	enum pump_result r;
	int left = -1;

	if (timeout_ms >= 0)
		deadline = deadline_after(timeout_ms);
	for (;;) {
		if (event_pop(c, ev))
			return 1;
		if (timeout_ms >= 0)
			left = ms_left(&deadline);
		r = client_pump(c, left);
		if (r == PUMP_DEAD)
			return event_pop(c, ev) ? 1 : -1;
		if (r == PUMP_INTR || (r == PUMP_TIMEOUT && left >= 0))
			return event_pop(c, ev);
		if (left == 0)
			return event_pop(c, ev);
	}
}

/* ---- the event-loop driver's entry points (client.h) ------------------- */

struct commreg_client *
client_start(int fd, size_t max_message, const struct client_hooks *hooks,
    void *arg)
{
	struct commreg_client *c;

	c = client_new(fd, NULL);
	if (max_message > 0)
		comm_framer_init(&c->framer, max_message);
	c->hooks = hooks;
	c->hook_arg = arg;
	comm_format_hello(&c->out, 0);
	return c;
}

void
client_read_ready(struct commreg_client *c)
{
	if (c->state != CLIENT_DEAD)
		client_read(c);
}

void
client_write_ready(struct commreg_client *c)
{
	if (c->state != CLIENT_DEAD && c->out.len > 0)
		client_write(c);
}

size_t
client_output_pending(const struct commreg_client *c)
{
	return c->state == CLIENT_DEAD ? 0 : c->out.len;
}

int
client_is_dead(const struct commreg_client *c)
{
	return c->state == CLIENT_DEAD;
}

void
client_abort(struct commreg_client *c, const char *why)
{
	client_fail(c, "%s", why);
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
	const char *w[7];
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
	tbuf_init(&r);
	rc = commreg_call(c, w, NULL, n, &r);
	if (rc == 0 && alen > 0)
		snprintf(assigned, alen, "%.*s", (int)r.len, r.p);
	tbuf_free(&r);
	return rc;
}

/* commreg_register with -scope S, unless scope is NULL or "user". */
int
commreg_register_scope(struct commreg_client *c, const char *name, int port,
    const char *host, const char *scope, char *assigned, size_t alen)
{
	const char *w[9];
	char pbuf[16], pidbuf[24];
	struct tbuf r;
	size_t n = 0;
	int rc;

	if (scope == NULL || strcmp(scope, "user") == 0)
		return commreg_register(c, name, port, host, assigned, alen);
	snprintf(pbuf, sizeof pbuf, "%d", port);
	snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
	w[n++] = "Commreg/Register";
	w[n++] = name;
	w[n++] = pbuf;
	w[n++] = "-pid";
	w[n++] = pidbuf;
	if (host != NULL) {
		w[n++] = "-host";
		w[n++] = host;
	}
	w[n++] = "-scope";
	w[n++] = scope;
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

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		set_err(err, errlen, "fcntl: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	c = client_new(fd, o);
	/*
	 * Handshake and hello go out together: the reply stream is read in
	 * order, so {vers 3} is checked before the hello reply is looked at.
	 */
	comm_format_hello(&c->out, 0);
	tbuf_init(&r);
	rc = commreg_call(c, w, NULL, 2, &r);
	if (rc == -1)
		set_err(err, errlen, "%s", c->err);
	else if (rc == 1)
		set_err(err, errlen,
		    "peer is not a commreg registry "
		    "(Commreg/Hello: %.*s)",
		    trace_len(r.len), r.p);
	else if (client_hello_parse(&c->hello, r.p, r.len) == -1) {
		set_err(err, errlen,
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
		set_err(err, errlen, "socket: %s", strerror(errno));
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
	set_err(err, errlen, "connect to 127.0.0.1:%d: %s", port,
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
	set_err(err, errlen, "connect to 127.0.0.1:%d: %s", port,
	    strerror(soerr));
	close(fd);
	return -1;
}

/*
 * The port may have been taken over by someone else's program since our
 * registry died: only trust a socket our own uid owns.  Asked after the
 * hello, because only then has the peer surely accepted (before, the
 * kernel may not know the owner yet).  When the kernel cannot tell, the
 * uid the hello claims is the check.
 */
int
client_check_owner(int fd, int port, const struct commreg_hello *h, char *err,
    size_t errlen)
{
	char why[256];
	uid_t uid;

	if (peeruid_lookup(fd, &uid, why, sizeof why) == 0) {
		if (uid != getuid()) {
			set_err(err, errlen,
			    "port %d belongs to uid %lu, not "
			    "to uid %lu",
			    port, (unsigned long)uid, (unsigned long)getuid());
			return -1;
		}
	} else
		log_debug("client: cannot check the owner of port %d: %s", port,
		    why);
	if (h->uid != -1 && (uid_t)h->uid != getuid()) {
		set_err(err, errlen,
		    "registry on port %d is uid %ld's, not "
		    "uid %lu's",
		    port, h->uid, (unsigned long)getuid());
		return -1;
	}
	return 0;
}

struct commreg_client *
commreg_connect_port(int port, const struct commreg_open_opts *o, char *err,
    size_t errlen)
{
	struct commreg_client *c;
	int fd;

	fd = connect_loopback(port,
	    o != NULL && o->connect_timeout_ms > 0 ? o->connect_timeout_ms
	                                           : COMMREG_CONNECT_TIMEOUT_MS,
	    err, errlen);
	if (fd == -1)
		return NULL;
	if ((c = commreg_attach(fd, o, err, errlen)) == NULL)
		return NULL;
	if (client_check_owner(c->fd, port, &c->hello, err, errlen) == -1) {
		commreg_close(c);
		return NULL;
	}
	return c;
}

/*
 * Read "PORT\n" from the port file (ARCHITECTURE §3).  NONE covers a
 * missing file, one still being written (no LF yet) and one that holds no
 * port: the election sorts all of those out.
 */
enum client_find
client_port_file_read(const char *path, int *port, char *err, size_t errlen)
{
	char buf[32];
	ssize_t n;
	size_t i;
	long v;
	int fd;

	/* O_NONBLOCK: a FIFO planted there must not hang the open. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT) {
			set_err(err, errlen, "%s: no port file", path);
			return CLIENT_FIND_NONE;
		}
		if (errno == ELOOP) {
			set_err(err, errlen,
			    "%s: is a symbolic link; "
			    "refusing to follow it",
			    path);
			return CLIENT_FIND_FATAL;
		}
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return CLIENT_FIND_FATAL;
	}
	if (safe_file_fd(fd, path, getuid(), err, errlen) == -1) {
		close(fd);
		return CLIENT_FIND_FATAL;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n == -1) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return CLIENT_FIND_FATAL;
	}
	if (n == 0 || buf[n - 1] != '\n') {
		set_err(err, errlen, "%s: incomplete (a registry is starting)",
		    path);
		return CLIENT_FIND_NONE;
	}
	for (i = 0, v = 0; i < (size_t)n - 1; i++) {
		if (buf[i] < '0' || buf[i] > '9' || i >= 5)
			break;
		v = v * 10 + (buf[i] - '0');
	}
	if (i == 0 || i != (size_t)n - 1 || v < 1 || v > 65535) {
		set_err(err, errlen, "%s: holds no port number", path);
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
registry_find(const char *path, const struct commreg_open_opts *o,
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
		set_err(err, errlen,
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
 * private registry of whoever happened to start it.
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
		fatal("%s", __func__);
	for (i = 0; i < n; i++) {
		if (strncmp(environ[i], "HOME=", 5) != 0 &&
		    strncmp(environ[i], COMMREG_ENV_REGPORT "=",
		        sizeof COMMREG_ENV_REGPORT) != 0)
			env[j++] = environ[i];
	}
	len = snprintf(NULL, 0, "HOME=%s", home);
	if ((env[j] = malloc((size_t)len + 1)) == NULL)
		fatal("%s", __func__);
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
	if (pipe2(p, O_CLOEXEC) == -1) {
		set_err(err, errlen, "pipe: %s", strerror(errno));
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
	env = spawn_env(home);
	log_debug("client: running %s --detach", path);
	if (strchr(path, '/') != NULL)
		rc = posix_spawn(&pid, path, &fa, NULL, argv, env);
	else
		rc = posix_spawnp(&pid, path, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	spawn_env_free(env);
	close(p[1]);
	if (rc != 0) {
		set_err(err, errlen, "cannot run %s: %s", path, strerror(rc));
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
		set_err(err, errlen, "%s --detach killed by signal %d", path,
		    WTERMSIG(status));
	else
		set_err(err, errlen, "%s --detach failed (exit %d): %s", path,
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
		set_err(err, errlen, "%s --detach did not finish within %d ms",
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
		set_err(err, errlen, "cannot get the host name: %s",
		    strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(path, plen, "%s/%s", regdir, host) >= plen) {
		set_err(err, errlen, "%s/%s: path too long", regdir, host);
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
		set_err(err, errlen, "no home directory (HOME is not set)");
		return NULL;
	}
	if (no_spawn && registry_dir_missing(home)) {
		set_err(err, errlen,
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
		r = registry_find(path, o, &c, why, sizeof why);
		if (r == CLIENT_FIND_OK)
			return c;
		if (r == CLIENT_FIND_FATAL) {
			set_err(err, errlen, "%s", why);
			return NULL;
		}
		log_debug("client: no registry: %s", why);
		if (no_spawn) {
			set_err(err, errlen, "no registry is running (%s)",
			    why);
			errno = ESRCH;
			return NULL;
		}
		if (attempt == DISCOVERY_ATTEMPTS - 1) {
			set_err(err, errlen,
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
	log_init(NULL, level <= 0   ? LOG_LVL_WARN
	               : level == 1 ? LOG_LVL_INFO
	                            : LOG_LVL_DEBUG);
}
