/*
 * The asynchronous client (commreg.h, commreg_async_*): connections to
 * the registry driven from the application's libevent loop, and failover
 * (ARCHITECTURE §3, docs/election.md, docs/c-api.md).
 *
 * A connection is a peer of the handle's engine (engine/peer.h), which
 * frames, does the comm handshake, matches replies to requests with their
 * deadlines, answers the registry's pings and pings a registry that says
 * nothing: one that stays silent for the handle's liveness (a hung or
 * stopped process) is dropped like one that closed.  What the registry
 * sends on its own is a command table (Commreg/Event,
 * Search/Continuous/Change, Commreg/Withdrawn); the loss of the
 * connection is the engine's gone hook.
 *
 * One struct commreg_async per handle holds one connection at a time and
 * everything that must outlive it: the registrations, the watches (with
 * the view each had), and the requests not yet answered.  A connection
 * goes through
 *
 *   IDLE -> CONNECTING -> HELLO -> RESTORING -> READY
 *             |             |
 *             +-> (elect) --+-> SPAWNING (commregd --detach) or, in
 *                               process, election_run + server_init
 *
 * An attempt reads the port file and connects; when nothing (or not a
 * registry of ours) answers there, it elects once: spawn mode runs
 * `commregd --detach` and looks again when it exits; in-process mode runs
 * election_run() itself and, when it wins, serves the registry on the
 * application's event_base and connects to itself.  A failed attempt is
 * retried after a jittered backoff: 10-100 ms first, so that hundreds of
 * clients that lose the registry together do not all elect at once, then
 * doubling to at most about a second.  The first try after losing a
 * registry that served us is made at once, not after the jitter: a
 * registry's standby accepts on the same port the moment it dies, and
 * only when nothing answers there does the client elect (after the
 * jitter, as above).
 *
 * Once connected, every registration is made again, asking for its old
 * serial (Commreg/Register -serial), and every watch again (its reply is
 * a fresh snapshot, from which the library derives the add and remove
 * events the application missed).  Only then is the application told it
 * has the registry back.
 *
 * Host and global registrations (commreg_async_register_scope) carry
 * `-scope S`, on every re-registration too; the user registry has the
 * host gateway judge them.  The gateway may withdraw one later: the
 * registry then sends `Commreg/Withdrawn NAME REASON`, and the
 * registration is dropped, so that no failover makes it again, and
 * reported through on_reg_lost.
 *
 * Private registries (TCL_COMM_REGPORT, docs/private.md): the first
 * attempt of a handle connects to that port; if no registry answers
 * there, the handle forgets it and goes on as above.  If one does, the
 * handle is bound to it: when it is lost the handle is orphaned instead
 * of electing (a private registry lives as long as its process group).
 * Orphaned, it tells each registration lost, ends the watches and
 * answers lookups of names it knew (COMMREG_STALE) from a small memory
 * of comm ids kept, only for bound handles, from the lookups, lists and
 * watches it saw.
 *
 * Nothing here waits: connects, the spawn's exit (a pidfd, or a 10 ms
 * poll timer where pidfds are missing), replies and timeouts are events.
 * What does run to completion inside one callback is short: posix_spawn,
 * election_run (file operations on the port file; asked never to wait for
 * a contender, which is retried by timer instead), a netlink query for
 * the peer's uid.
 *
 * Nothing here ends the process either: out of memory fails the call
 * that needed it, or (in the middle of what the registry sent) drops the
 * connection, which is then restored as after any loss.
 *
 * Callbacks may call any function of the handle, commreg_async_close
 * included.  So objects are never freed under a running callback: they
 * are marked dead, unlinked, and freed when the outermost entry into the
 * library (an event callback or an API call) returns.  The engine itself
 * lives apart from the handle (struct async_engine), and outlives it
 * until the engine callback that closed the handle has returned.
 */
#define _GNU_SOURCE /* reallocarray, syscall */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "client.h"
#include "election.h"
#include "log.h"
#include "registry.h"
#include "peer.h"
#include "server.h"
#include "tbuf.h"
#include "tcllist.h"

/* Backoff between attempts (see the top of the file). */
#define RETRY_FIRST_MIN_MS 10
#define RETRY_FIRST_MAX_MS 100
#define RETRY_CAP_MS       1000
/*
 * A registry being elected by someone else: look again this soon (it
 * listens within milliseconds), at most this many times in a row.
 */
#define RETRY_SOON_MIN_MS 10
#define RETRY_SOON_MAX_MS 60
#define RETRY_SOON_MAX    20
/* An outage this old is reported through on_error at each failed try;
 * a loaded machine may need seconds for a failover that then works. */
#define OUTAGE_REPORT_MS 10000
/* Child watch where pidfd_open(2) is missing. */
#define CHILD_POLL_MS 10

enum async_state {
	A_IDLE,       /* the retry timer runs */
	A_CONNECTING, /* TCP connect in progress */
	A_HELLO,      /* handshake and Commreg/Hello sent */
	A_SPAWNING,   /* commregd --detach runs */
	A_RESTORING,  /* registrations and watches being made again */
	A_READY,
	A_FAILED,   /* open gave up */
	A_ORPHANED, /* its private registry is gone (never re-elected) */
};

/* Names a handle bound to a private registry remembers, for lookups
 * once that registry is gone; when full, the oldest is forgotten. */
#define KNOWN_MAX 4096

enum req_kind {
	REQ_HELLO,
	REQ_REGISTER, /* of a struct commreg_reg */
	REQ_WATCH,    /* of a struct commreg_watch */
	REQ_FORGET,   /* Unregister/Unwatch nobody waits for */
	REQ_UNREGISTER,
	REQ_CALL,
	REQ_LOOKUP,
	REQ_LIST,
};

/*
 * One request: queued (preq NULL), in flight on the connection (preq, the
 * engine's), or done and waiting for the deferred callback.  Those of a
 * connection (hello, registrations, watches, unregister) have the
 * engine's deadline; lookups, lists and calls wait across connections,
 * so their deadline is their own timer.
 */
struct areq {
	TAILQ_ENTRY(areq) link;
	struct commreg_async *a;
	enum req_kind kind;
	struct preq *preq;
	int restore;  /* counts toward restoring */
	char **words; /* user requests: sent again */
	size_t nwords;
	struct event *timer; /* user requests: their deadline */
	struct commreg_reg *reg;
	struct commreg_watch *watch;
	union {
		commreg_done_cb done;
		commreg_lookup_cb lookup;
		commreg_list_cb list;
		commreg_call_cb call;
	} cb;
	void *arg;
	int status; /* when done before any reply */
	char *message;
	int no_message; /* out of memory for it */
};
TAILQ_HEAD(areq_list, areq);

struct commreg_reg {
	TAILQ_ENTRY(commreg_reg) link;
	struct commreg_async *a;
	char *base;
	char *host;  /* NULL: the registry's default */
	char *scope; /* NULL: user (no -scope sent) */
	int port;
	char *name; /* assigned; NULL until then */
	long serial;
	struct areq *req; /* Register in flight */
	commreg_reg_cb cb;
	void *arg;
	int told; /* cb reported the outcome */
	int dead;
};
TAILQ_HEAD(reg_list, commreg_reg);

struct commreg_watch {
	TAILQ_ENTRY(commreg_watch) link;
	struct commreg_async *a;
	char tag[32];
	char *pattern;
	commreg_watch_cb cb;
	void *arg;
	struct areq *req; /* Watch in flight */
	int live;         /* snapshot on this connection */
	int had;          /* a snapshot on any connection */
	/* The view: entries sorted by name (binary search on events). */
	struct commreg_entry *view;
	size_t nview;
	size_t capview;
	int dead;
};
TAILQ_HEAD(watch_list, commreg_watch);

/* One run of commregd --detach. */
struct spawn {
	TAILQ_ENTRY(spawn) link;
	struct commreg_async *a;
	pid_t pid;
	int errfd;
	int pidfd; /* -1: poll with a timer */
	struct event *ev_exit;
	struct event *ev_err;
	struct event *timeout;
	struct tbuf msg; /* its stderr */
	int abandoned;   /* timed out; only reap it */
	char path[PATH_MAX];
};
TAILQ_HEAD(spawn_list, spawn);

/*
 * The engine of a handle's connections, apart from the handle: a handle
 * closed inside one of the engine's callbacks is freed when that
 * callback's outermost entry into the library returns, the engine once
 * the engine's own callback has returned too (fin, from the loop).
 */
struct async_engine {
	struct engine eng;
	struct engine_limits lim; /* the handle's, for its peers */
	struct event *fin;
};

struct commreg_async {
	struct event_base *base;
	struct commreg_async_opts o;
	char *home;
	char *commregd;
	enum async_state state;
	int depth; /* entries into the library */
	int closing;
	int opened; /* on_open said 0 */
	int outage; /* lost, not yet restored */
	long long open_ms;
	long long outage_ms;
	int attempt;         /* failed tries in a row */
	int elected;         /* this try elected already */
	int quick;           /* this try is the one made at once on a loss */
	int soon;            /* next try after RETRY_SOON */
	int nsoon;           /* such tries in a row */
	char path[PATH_MAX]; /* the port file */
	char gate[PATH_MAX]; /* regdir, see spawn_gate_take */
	int gate_fd;
	uint64_t rng;
	char why[512]; /* the last failure */

	/* The connection: a socket while it connects, then a peer. */
	struct async_engine *ae;
	int fd;
	int port;
	struct event *ev_connect;
	struct peer *peer;
	struct commreg_hello hello;
	int restore_left;

	struct event *retry;
	struct event *deferred;

	struct spawn *spawn;      /* the one being waited for */
	struct spawn_list spawns; /* all, abandoned ones too */

	/* The registry this process hosts (COMMREG_MODE_INPROCESS). */
	struct server *srv;
	struct election_claim claim;

	struct areq_list reqs; /* queued and in flight */
	struct areq_list done; /* for the deferred callback */
	struct reg_list regs;
	struct watch_list watches;
	struct reg_list dead_regs;
	struct watch_list dead_watches;
	unsigned next_tag;

	/* TCL_COMM_REGPORT: the port to try first (0: none, or it did not
	 * answer), whether this try is it, and the one bound to. */
	int priv_port;
	int priv_trying;
	int private;
	/* name -> comm id, oldest first (bound handles only). */
	struct known {
		char *name;
		char *commid;
	} * known;
	size_t nknown;
};

static void attempt(struct commreg_async *);
static void attempt_failed(struct commreg_async *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void elect(struct commreg_async *);
static void conn_start(struct commreg_async *, int);
static void conn_abort(struct commreg_async *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_drop(struct commreg_async *);
static void reqs_reset(struct commreg_async *);
static void lost(struct commreg_async *, const char *);
static void orphan_answer(struct commreg_async *, struct areq *);
static void async_free(struct commreg_async *);
static void spawn_gate_release(struct commreg_async *);
static void spawn_free(struct spawn *);
static void open_failed(struct commreg_async *);
static void restored(struct commreg_async *);
static void areq_reply(struct peer *, void *, int, const char *, size_t);
static void known_free(struct commreg_async *);
static void retry_cb(evutil_socket_t, short, void *);

/* ---- small helpers ------------------------------------------------------ */

static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static struct timeval
tv_ms(int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

/* xorshift64*: our own jitter, leaving the application's rand() alone. */
static unsigned
rnd(struct commreg_async *a, unsigned n)
{
	uint64_t x = a->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	a->rng = x;
	return n == 0 ? 0 : (unsigned)((x * 2685821657736338717ULL) >> 33) % n;
}

static int
timeout_of(int v, int dflt)
{
	return v > 0 ? v : dflt;
}

/* Serial of an assigned name: "base" is 1, "base #N" is N; 0 when the
 * name is not one the registry made of base (the table's reader of the
 * serial syntax decides, engine/registry.h). */
static long
serial_of(const char *base, const char *name)
{
	size_t len = strlen(name), bl;
	int serial;

	bl = registry_split_serial(name, len, &serial);
	if (bl != strlen(base) || strncmp(name, base, bl) != 0)
		return 0;
	return serial;
}

/* strdup that may fail: out of memory is the caller's error to report. */
static int
dup_str(char **dst, const char *s)
{
	*dst = s != NULL ? strdup(s) : NULL;
	return s != NULL && *dst == NULL ? -1 : 0;
}

/* ---- entering and leaving ----------------------------------------------- */

static void
enter(struct commreg_async *a)
{
	a->depth++;
}

static void
reg_free(struct commreg_reg *r)
{
	free(r->base);
	free(r->host);
	free(r->scope);
	free(r->name);
	free(r);
}

static void
view_clear(struct commreg_watch *w)
{
	commreg_entries_free(w->view, w->nview);
	w->view = NULL;
	w->nview = w->capview = 0;
}

static void
watch_free(struct commreg_watch *w)
{
	view_clear(w);
	free(w->pattern);
	free(w);
}

/* The outermost entry is done: free what died meanwhile. */
static void
leave(struct commreg_async *a)
{
	struct commreg_reg *r;
	struct commreg_watch *w;

	if (--a->depth > 0)
		return;
	while ((r = TAILQ_FIRST(&a->dead_regs)) != NULL) {
		TAILQ_REMOVE(&a->dead_regs, r, link);
		reg_free(r);
	}
	while ((w = TAILQ_FIRST(&a->dead_watches)) != NULL) {
		TAILQ_REMOVE(&a->dead_watches, w, link);
		watch_free(w);
	}
	if (a->closing)
		async_free(a);
}

/* ---- requests ------------------------------------------------------------ */

static void req_timeout(evutil_socket_t, short, void *);

/* NULL when out of memory. */
static struct areq *
req_new(struct commreg_async *a, enum req_kind kind)
{
	struct areq *q;

	if ((q = calloc(1, sizeof *q)) == NULL)
		return NULL;
	q->a = a;
	q->kind = kind;
	return q;
}

static int
req_words(struct areq *q, const char *const *w, size_t n)
{
	size_t i;

	if ((q->words = calloc(n, sizeof *q->words)) == NULL)
		return -1;
	q->nwords = n;
	for (i = 0; i < n; i++) {
		if (dup_str(&q->words[i], w[i]) == -1)
			return -1; /* req_free frees what was made */
	}
	return 0;
}

/* Also takes back what is in flight: the engine will not answer it. */
static void
req_free(struct areq *q)
{
	size_t i;

	if (q->preq != NULL)
		peer_request_cancel(q->preq);
	for (i = 0; i < q->nwords; i++)
		free(q->words[i]);
	free(q->words);
	free(q->message);
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
}

static int
reply_ms(const struct commreg_async *a)
{
	return timeout_of(a->o.reply_timeout_ms, COMMREG_REPLY_TIMEOUT_MS);
}

/* A user request's deadline, which runs across connections.  -1 when
 * out of memory. */
static int
req_arm(struct areq *q)
{
	struct timeval tv = tv_ms(reply_ms(q->a));

	if ((q->timer = evtimer_new(q->a->base, req_timeout, q)) == NULL)
		return -1;
	evtimer_add(q->timer, &tv);
	return 0;
}

static int
connected(const struct commreg_async *a)
{
	return a->state == A_RESTORING || a->state == A_READY;
}

/*
 * Put q on the wire (the connection is up).  The engine writes it when
 * the current callback returns, or from the loop.  A peer the engine has
 * just let go of takes nothing: q then waits for the next connection.
 */
static void
req_send(struct commreg_async *a, struct areq *q, const char *const *w,
    size_t n)
{
	int ms;

	if (a->peer == NULL)
		return;
	switch (q->kind) {
	case REQ_LOOKUP:
	case REQ_LIST:
	case REQ_CALL:
		ms = 0; /* their own timer */
		break;
	default:
		ms = reply_ms(a);
		break;
	}
	q->preq = peer_request(a->peer, w, NULL, n, ms, areq_reply, q);
}

static void
req_send_words(struct commreg_async *a, struct areq *q)
{
	req_send(a, q, (const char *const *)q->words, q->nwords);
}

/* Decided without a reply: called back from the loop, not from here. */
static void
req_finish_later(struct commreg_async *a, struct areq *q, int status,
    const char *message)
{
	if (q->timer != NULL)
		evtimer_del(q->timer);
	if (q->preq != NULL) {
		peer_request_cancel(q->preq);
		q->preq = NULL;
	}
	q->status = status;
	free(q->message);
	q->message = NULL;
	q->no_message = dup_str(&q->message, message) == -1;
	TAILQ_INSERT_TAIL(&a->done, q, link);
	event_active(a->deferred, EV_TIMEOUT, 1);
}

/* Call the user's callback of q with a status and no result. */
static void
req_fail_cb(struct commreg_async *a, struct areq *q, int status,
    const char *message)
{
	const char *m = message != NULL ? message : "";

	switch (q->kind) {
	case REQ_UNREGISTER:
		if (q->cb.done != NULL)
			q->cb.done(a, status, status == 0 ? NULL : m, q->arg);
		break;
	case REQ_LOOKUP:
		if (q->cb.lookup != NULL)
			q->cb.lookup(a, status, m, q->arg);
		break;
	case REQ_LIST:
		if (q->cb.list != NULL)
			q->cb.list(a, status, NULL, 0, m, q->arg);
		break;
	case REQ_CALL:
		if (q->cb.call != NULL)
			q->cb.call(a, status, m, strlen(m), q->arg);
		break;
	default:
		break;
	}
}

static void
deferred_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct commreg_async *a = arg;
	struct areq *q;

	enter(a);
	while (!a->closing && (q = TAILQ_FIRST(&a->done)) != NULL) {
		TAILQ_REMOVE(&a->done, q, link);
		req_fail_cb(a, q, q->status,
		    q->no_message ? "out of memory" : q->message);
		req_free(q);
	}
	leave(a);
}

/* A lookup, list or call not answered in time, on whatever connection. */
static void
req_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct areq *q = arg;
	struct commreg_async *a = q->a;
	char why[128];

	enter(a);
	TAILQ_REMOVE(&a->reqs, q, link);
	if (q->preq == NULL)
		snprintf(why, sizeof why, "no registry within %d ms",
		    reply_ms(a));
	else
		snprintf(why, sizeof why,
		    "no reply from the registry within %d ms", reply_ms(a));
	req_fail_cb(a, q, -1, why);
	req_free(q);
	leave(a);
}

/* ---- what a bound handle knows ---------------------------------------------
 */

static ssize_t
known_find(const struct commreg_async *a, const char *name)
{
	size_t i;

	/* Newest first: what was just learned is what is asked again. */
	for (i = a->nknown; i > 0; i--) {
		if (strcmp(a->known[i - 1].name, name) == 0)
			return (ssize_t)i - 1;
	}
	return -1;
}

static void
known_drop(struct commreg_async *a, const char *name)
{
	ssize_t i;

	if (!a->private || (i = known_find(a, name)) == -1)
		return;
	free(a->known[i].name);
	free(a->known[i].commid);
	memmove(&a->known[i], &a->known[i + 1],
	    (a->nknown - (size_t)i - 1) * sizeof *a->known);
	a->nknown--;
}

/* A memory that cannot grow only forgets: a later lookup of the name,
 * once orphaned, says it was never seen. */
static void
known_put(struct commreg_async *a, const char *name, const char *commid)
{
	char *n, *c;

	if (!a->private)
		return;
	known_drop(a, name);
	if (a->known == NULL &&
	    (a->known = calloc(KNOWN_MAX, sizeof *a->known)) == NULL)
		return;
	if (dup_str(&n, name) == -1)
		return;
	if (dup_str(&c, commid) == -1) {
		free(n);
		return;
	}
	if (a->nknown == KNOWN_MAX) {
		free(a->known[0].name);
		free(a->known[0].commid);
		memmove(&a->known[0], &a->known[1],
		    (KNOWN_MAX - 1) * sizeof *a->known);
		a->nknown--;
	}
	a->known[a->nknown].name = n;
	a->known[a->nknown].commid = c;
	a->nknown++;
}
/* An entry's comm id, as Commreg/Lookup gives it. */
static void
known_entry(struct commreg_async *a, const struct commreg_entry *e)
{
	char id[320];

	if (!a->private || e->port <= 0)
		return;
	if (e->host[0] != '\0')
		snprintf(id, sizeof id, "%d %s", e->port, e->host);
	else
		snprintf(id, sizeof id, "%d", e->port);
	known_put(a, e->name, id);
}

static void
known_free(struct commreg_async *a)
{
	size_t i;

	for (i = 0; i < a->nknown; i++) {
		free(a->known[i].name);
		free(a->known[i].commid);
	}
	free(a->known);
	a->known = NULL;
	a->nknown = 0;
}

/* ---- registrations ---------------------------------------------------------
 */

/* -1 when out of memory (nothing sent). */
static int
reg_send(struct commreg_async *a, struct commreg_reg *r, int restore)
{
	const char *w[11];
	char port[16], pid[24], serial[24];
	size_t n = 0;
	struct areq *q;

	if ((q = req_new(a, REQ_REGISTER)) == NULL)
		return -1;
	snprintf(port, sizeof port, "%d", r->port);
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	w[n++] = "Commreg/Register";
	w[n++] = r->base;
	w[n++] = port;
	w[n++] = "-pid";
	w[n++] = pid;
	if (r->host != NULL) {
		w[n++] = "-host";
		w[n++] = r->host;
	}
	if (r->scope != NULL) {
		w[n++] = "-scope";
		w[n++] = r->scope;
	}
	/* After failover: ask for the serial we had (docs/protocol.md §4). */
	if (r->serial > 0) {
		snprintf(serial, sizeof serial, "%ld", r->serial);
		w[n++] = "-serial";
		w[n++] = serial;
	}
	q->reg = r;
	q->restore = restore;
	r->req = q;
	TAILQ_INSERT_TAIL(&a->reqs, q, link);
	req_send(a, q, w, n);
	return 0;
}

/*
 * A name registered for a registration dropped meanwhile, or a watch
 * dropped: release it.  Without memory for that, the registry keeps it
 * until the connection ends.
 */
static void
forget(struct commreg_async *a, const char *cmd, const char *arg)
{
	const char *w[2] = {cmd, arg};
	struct areq *q;

	if (!connected(a))
		return;
	if ((q = req_new(a, REQ_FORGET)) == NULL) {
		log_warnx("cannot send %s %s: out of memory", cmd, arg);
		return;
	}
	TAILQ_INSERT_TAIL(&a->reqs, q, link);
	req_send(a, q, w, 2);
}

static void
reg_kill(struct commreg_async *a, struct commreg_reg *r)
{
	if (r->dead)
		return;
	r->dead = 1;
	if (r->req != NULL)
		r->req->reg = NULL;
	r->req = NULL;
	TAILQ_REMOVE(&a->regs, r, link);
	TAILQ_INSERT_TAIL(&a->dead_regs, r, link);
}

static void
reg_reply(struct commreg_async *a, struct commreg_reg *r, int ok,
    const char *res, size_t len)
{
	char *old, *name;

	r->req = NULL;
	if (!ok) {
		if (!r->told) {
			r->told = 1;
			reg_kill(a, r);
			if (r->cb != NULL)
				r->cb(a, r, 1, res, r->arg);
			return;
		}
		/* Held before, refused now: keep it, try again next time. */
		free(r->name);
		r->name = NULL;
		if (a->o.on_error != NULL) {
			char msg[1024];

			snprintf(msg, sizeof msg,
			    "cannot register \"%s\" "
			    "again: %.*s",
			    r->base, (int)len, res);
			a->o.on_error(a, msg, a->o.arg);
		}
		return;
	}
	if ((name = strndup(res, len)) == NULL) {
		/* Registered, but we cannot hold the name: the connection
		 * goes (taking the name with it) and restoring makes it
		 * again. */
		conn_abort(a, "out of memory for a registration");
		return;
	}
	old = r->name;
	r->name = name;
	r->serial = serial_of(r->base, name);
	if (!r->told) {
		r->told = 1;
		free(old);
		if (r->cb != NULL)
			r->cb(a, r, 0, r->name, r->arg);
		return;
	}
	if (old != NULL && strcmp(old, name) != 0) {
		log_debug("async: \"%s\" came back as \"%s\"", old, name);
		if (a->o.on_renamed != NULL)
			a->o.on_renamed(a, r, old, name, a->o.arg);
	}
	free(old);
}

/* ---- watches
 * ----------------------------------------------------------------- */

/* -1 when out of memory (nothing sent). */
static int
watch_send(struct commreg_async *a, struct commreg_watch *w, int restore)
{
	const char *words[3] = {"Commreg/Watch", w->tag, w->pattern};
	struct areq *q;

	if ((q = req_new(a, REQ_WATCH)) == NULL)
		return -1;
	q->watch = w;
	q->restore = restore;
	w->req = q;
	w->live = 0;
	TAILQ_INSERT_TAIL(&a->reqs, q, link);
	req_send(a, q, words, 3);
	return 0;
}

static void
watch_kill(struct commreg_async *a, struct commreg_watch *w)
{
	if (w->dead)
		return;
	w->dead = 1;
	if (w->req != NULL)
		w->req->watch = NULL;
	w->req = NULL;
	TAILQ_REMOVE(&a->watches, w, link);
	TAILQ_INSERT_TAIL(&a->dead_watches, w, link);
}

/* Index of name in the sorted view, or where it would go (*found 0). */
static size_t
view_find(const struct commreg_watch *w, const char *name, int *found)
{
	size_t lo = 0, hi = w->nview, mid;
	int c;

	*found = 0;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(w->view[mid].name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Take e into the view (it is moved: e is zeroed). */

/* Take e into the view (it is moved: e is zeroed).  -1 when out of
 * memory (e is the caller's still). */
static int
view_put(struct commreg_watch *w, struct commreg_entry *e)
{
	struct commreg_entry *v;
	size_t i, cap;
	int found;

	i = view_find(w, e->name, &found);
	if (found) {
		commreg_entry_clear(&w->view[i]);
		w->view[i] = *e;
	} else {
		if (w->nview == w->capview) {
			cap = w->capview == 0 ? 16 : w->capview * 2;
			v = reallocarray(w->view, cap, sizeof *w->view);
			if (v == NULL)
				return -1;
			w->view = v;
			w->capview = cap;
		}
		memmove(&w->view[i + 1], &w->view[i],
		    (w->nview - i) * sizeof *w->view);
		w->view[i] = *e;
		w->nview++;
	}
	memset(e, 0, sizeof *e);
	return 0;
}

static void
view_drop(struct commreg_watch *w, const char *name)
{
	size_t i;
	int found;

	i = view_find(w, name, &found);
	if (!found)
		return;
	commreg_entry_clear(&w->view[i]);
	memmove(&w->view[i], &w->view[i + 1],
	    (w->nview - i - 1) * sizeof *w->view);
	w->nview--;
}

static int
cmp_entry_name(const void *x, const void *y)
{
	const struct commreg_entry *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* The same application holds it: a change of these is a new entry. */
static int
entry_same(const struct commreg_entry *x, const struct commreg_entry *y)
{
	return x->port == y->port && x->pid == y->pid &&
	       strcmp(x->host, y->host) == 0 && strcmp(x->data, y->data) == 0;
}

static int
watch_emit(struct commreg_async *a, struct commreg_watch *w,
    enum commreg_watch_what what, int resync, const struct commreg_entry *e)
{
	struct commreg_watch_event ev;

	memset(&ev, 0, sizeof ev);
	ev.what = what;
	ev.resync = resync;
	ev.entry = e;
	if (w->cb != NULL)
		w->cb(a, w, &ev, w->arg);
	return a->closing || w->dead ? -1 : 0;
}

/*
 * A snapshot arrived (v sorted by name, n entries; taken over).  After a
 * failover, tell what changed since the view before the loss: removes
 * first, then adds, each in name order.
 */
static void
watch_snapshot(struct commreg_async *a, struct commreg_watch *w,
    struct commreg_entry *v, size_t n)
{
	struct commreg_watch_event ev;
	struct commreg_entry *old = w->view;
	size_t nold = w->nview, i, j;
	int resync = w->had, c;

	if (n > 1)
		qsort(v, n, sizeof *v, cmp_entry_name);
	for (i = 0; i < n; i++)
		known_entry(a, &v[i]);
	w->view = v;
	w->nview = w->capview = n;
	w->had = 1;
	w->live = 1;
	memset(&ev, 0, sizeof ev);
	ev.what = COMMREG_WATCH_SNAPSHOT;
	ev.resync = resync;
	ev.entries = v;
	ev.n = n;
	if (w->cb != NULL)
		w->cb(a, w, &ev, w->arg);
	if (a->closing || w->dead || !resync)
		goto out;
	/* Both sorted: one merge pass finds what went and what came. */
	for (i = j = 0; i < nold; i++) {
		while (j < n && strcmp(v[j].name, old[i].name) < 0)
			j++;
		if (j < n && strcmp(v[j].name, old[i].name) == 0 &&
		    entry_same(&v[j], &old[i]))
			continue;
		if (watch_emit(a, w, COMMREG_WATCH_REMOVE, 1, &old[i]) == -1)
			goto out;
	}
	for (i = j = 0; j < n; j++) {
		c = 1;
		while (i < nold && (c = strcmp(old[i].name, v[j].name)) < 0)
			i++;
		if (i < nold && c == 0 && entry_same(&v[j], &old[i]))
			continue;
		if (watch_emit(a, w, COMMREG_WATCH_ADD, 1, &v[j]) == -1)
			goto out;
	}
out:
	commreg_entries_free(old, nold);
}

static void
watch_reply(struct commreg_async *a, struct commreg_watch *w, int ok,
    const char *res, size_t len)
{
	struct commreg_watch_event ev;
	struct commreg_entry *v;
	char why[256];
	size_t n;

	w->req = NULL;
	if (!ok) {
		watch_kill(a, w);
		memset(&ev, 0, sizeof ev);
		ev.what = COMMREG_WATCH_ERROR;
		ev.message = res;
		if (w->cb != NULL)
			w->cb(a, w, &ev, w->arg);
		return;
	}
	/* A snapshot we cannot read (or keep) leaves the watch without a
	 * view: drop the connection, and restoring asks again. */
	if (commreg_entries_parse(res, len, &v, &n, why, sizeof why) == -1) {
		conn_abort(a, "bad watch snapshot: %s", why);
		return;
	}
	watch_snapshot(a, w, v, n);
}

static struct commreg_watch *
watch_by_tag(struct commreg_async *a, const char *tag)
{
	struct commreg_watch *w;

	TAILQ_FOREACH(w, &a->watches, link) {
		if (strcmp(w->tag, tag) == 0)
			return w->live ? w : NULL;
	}
	return NULL;
}

/* ---- what the registry sends: one row and one handler each ---------------
 */

/* A watch event (client_event_decode's put). */
static int
async_put(void *arg, struct commreg_event *ev)
{
	struct commreg_async *a = arg;
	struct commreg_watch *w;
	int rc = 0;

	if (a->closing || ev->nns || (w = watch_by_tag(a, ev->tag)) == NULL) {
		commreg_event_clear(ev);
		return a->closing ? -1 : 0;
	}
	if (ev->type == COMMREG_EVENT_ADD)
		known_entry(a, &ev->entry);
	else
		known_drop(a, ev->entry.name);
	if (ev->type == COMMREG_EVENT_ADD) {
		if (watch_emit(a, w, COMMREG_WATCH_ADD, 0, &ev->entry) == 0 &&
		    view_put(w, &ev->entry) == -1)
			rc = -1;
	} else {
		if (watch_emit(a, w, COMMREG_WATCH_REMOVE, 0, &ev->entry) == 0)
			view_drop(w, ev->entry.name);
	}
	commreg_event_clear(ev);
	if (rc == -1) {
		/* The view would be wrong from now on: a resync mends it. */
		conn_abort(a, "out of memory for a watch's view");
		return -1;
	}
	return a->closing ? -1 : 0;
}

/* Commreg/Event TAG add|remove ENTRY: a change seen by a watch. */
static int
cmd_event(struct cmd_ctx *c)
{
	struct commreg_async *a = c->peer->arg;

	enter(a);
	if (client_event_decode(c->words, 0, async_put, a) == -1 &&
	    !a->closing && a->peer == c->peer)
		conn_abort(a, "out of memory for a watch event");
	leave(a);
	return CMD_OK;
}

/* Search/Continuous/Change: nns watches, which this interface does not
 * make; a registry has no reason to send one. */
static int
cmd_nns_change(struct cmd_ctx *c)
{
	log_debug("async: ignoring Search/Continuous/Change");
	return CMD_OK;
}

/*
 * Commreg/Withdrawn NAME ?REASON?: the host gateway withdrew our host or
 * global registration NAME (its policy changed) and the registry removed
 * the entry.  The registration is dropped, so no failover brings it
 * back, and the application told through on_reg_lost.
 */
static int
cmd_withdrawn(struct cmd_ctx *c)
{
	struct commreg_async *a = c->peer->arg;
	const struct tlist *words = c->words;
	const char *name = words->v[1].p, *reason;
	struct commreg_reg *r;

	if (a->closing)
		return CMD_OK;
	reason = words->n == 3 && words->v[2].len > 0
	             ? words->v[2].p
	             : "withdrawn by the host gateway";
	enter(a);
	TAILQ_FOREACH(r, &a->regs, link) {
		if (r->told && r->name != NULL && strcmp(r->name, name) == 0)
			break;
	}
	if (r == NULL)
		log_debug("async: Commreg/Withdrawn of \"%s\", not ours", name);
	else {
		log_info("registration \"%s\" withdrawn: %s", name, reason);
		reg_kill(a, r);
		if (a->o.on_reg_lost != NULL)
			a->o.on_reg_lost(a, r, reason, a->o.arg);
	}
	leave(a);
	return CMD_OK;
}

/* Sorted by name (cmd_table_find).  Anything else is answered as Tcl
 * would (invalid command name) and otherwise ignored. */
static const struct cmd_entry async_cmds[] = {
    {"Commreg/Event", 3, 3, "tag add|remove entry", cmd_event},
    {"Commreg/Withdrawn", 1, 2, "name ?reason?", cmd_withdrawn},
    {"Search/Continuous/Change", 3, 3, "tag add|remove dict", cmd_nns_change},
};

static const struct cmd_entry *
async_find(const char *name, size_t len)
{
	return cmd_table_find(async_cmds,
	    sizeof async_cmds / sizeof async_cmds[0], name, len);
}

/* ---- replies ------------------------------------------------------------- */

static void
restore_done(struct commreg_async *a)
{
	if (a->state == A_RESTORING && --a->restore_left == 0)
		restored(a);
}

static void
hello_reply(struct commreg_async *a, int ok, const char *res, size_t len)
{
	struct commreg_reg *r;
	struct commreg_watch *w;
	char err[512];

	memset(&a->hello, 0, sizeof a->hello);
	a->hello.uid = a->hello.pid = -1;
	if (!ok || client_hello_parse(&a->hello, res, len) == -1) {
		conn_abort(a,
		    "port %d: peer is not a commreg "
		    "registry (Commreg/Hello: %.*s)",
		    a->port, (int)(len > 200 ? 200 : len), res);
		return;
	}
	if (client_check_owner(a->peer->fd, a->port, &a->hello, err,
	        sizeof err) == -1) {
		conn_abort(a, "%s", err);
		return;
	}
	if (a->priv_trying) {
		a->priv_trying = 0;
		/* TCL_COMM_REGPORT naming the user registry itself: used as
		 * what it is (elected again when lost), not as a private
		 * registry whose group is over when it goes. */
		if (strcmp(a->hello.scope, "user") == 0 ||
		    a->hello.scope[0] == '\0') {
			log_warnx("%s=%d names the user registry, not a "
			          "private one; using it as the user registry",
			    COMMREG_ENV_REGPORT, a->port);
		} else {
			a->private = a->port;
			log_debug("async: bound to the private registry on "
			          "port %d",
			    a->port);
		}
	}
	log_debug("async: registry on port %d, pid %ld%s", a->port,
	    a->hello.pid, a->srv != NULL ? " (this process)" : "");
	a->state = A_RESTORING;
	a->restore_left = 1; /* held until everything is sent */
	TAILQ_FOREACH(r, &a->regs, link) {
		if (reg_send(a, r, 1) == -1) {
			conn_abort(a, "out of memory restoring \"%s\"",
			    r->base);
			return;
		}
		a->restore_left++;
	}
	TAILQ_FOREACH(w, &a->watches, link) {
		if (watch_send(a, w, 1) == -1) {
			conn_abort(a, "out of memory restoring a watch");
			return;
		}
		a->restore_left++;
	}
	restore_done(a);
}

/* No answer in time (code -1 from the engine, the connection up). */
static void
req_unanswered(struct commreg_async *a, struct areq *q)
{
	char why[128];

	snprintf(why, sizeof why, "no reply from the registry within %d ms",
	    reply_ms(a));
	switch (q->kind) {
	case REQ_HELLO:
	case REQ_REGISTER:
	case REQ_WATCH:
		/* The registry does not answer what keeps us whole: take
		 * it as lost, and elect or find another (q goes with the
		 * connection's requests). */
		conn_abort(a, "%s", why);
		return;
	default:
		TAILQ_REMOVE(&a->reqs, q, link);
		req_fail_cb(a, q, -1, why);
		req_free(q);
		return;
	}
}

/*
 * The engine's answer to a request of ours: the registry's (code 0 or 1),
 * or none (-1): only a deadline comes here, since a connection that goes
 * takes its requests back first (conn_detach).
 */
static void
areq_reply(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct areq *q = arg;
	struct commreg_async *a = q->a;
	struct commreg_entry *v;
	char why[256];
	size_t n, i;
	int ok = code == 0, status = ok ? 0 : 1;

	q->preq = NULL; /* the engine frees it */
	if (a->closing)
		return;
	enter(a);
	if (code == -1) {
		req_unanswered(a, q);
		leave(a);
		return;
	}
	TAILQ_REMOVE(&a->reqs, q, link);
	if (q->timer != NULL)
		evtimer_del(q->timer);
	switch (q->kind) {
	case REQ_HELLO:
		hello_reply(a, ok, res, len);
		break;
	case REQ_REGISTER:
		if (q->reg != NULL)
			reg_reply(a, q->reg, ok, res, len);
		else if (ok)
			forget(a, "Commreg/Unregister", res);
		if (!a->closing && q->restore)
			restore_done(a);
		break;
	case REQ_WATCH:
		if (q->watch != NULL)
			watch_reply(a, q->watch, ok, res, len);
		if (!a->closing && q->restore)
			restore_done(a);
		break;
	case REQ_FORGET:
		break;
	case REQ_UNREGISTER:
		if (q->cb.done != NULL)
			q->cb.done(a, status, ok ? NULL : res, q->arg);
		break;
	case REQ_LOOKUP:
		if (ok && q->nwords == 2)
			known_put(a, q->words[1], res);
		if (q->cb.lookup != NULL)
			q->cb.lookup(a, status, res, q->arg);
		break;
	case REQ_CALL:
		if (q->cb.call != NULL)
			q->cb.call(a, status, res, len, q->arg);
		break;
	case REQ_LIST:
		if (!ok) {
			req_fail_cb(a, q, 1, res);
			break;
		}
		if (commreg_entries_parse(res, len, &v, &n, why, sizeof why) ==
		    -1) {
			req_fail_cb(a, q, -1, why);
			break;
		}
		for (i = 0; i < n; i++)
			known_entry(a, &v[i]);
		if (q->cb.list != NULL)
			q->cb.list(a, 0, v, n, NULL, q->arg);
		commreg_entries_free(v, n);
		break;
	}
	req_free(q);
	leave(a);
}

/* ---- the connection --------------------------------------------------------
 */

/*
 * Let go of the peer: its requests are taken back (the engine will not
 * answer them) and it will not call us again.  The socket is shut down
 * at once, so the registry sees us go now (and drops our names), and
 * closed when the engine frees the peer.  why: logged as a failure.
 */
static void
conn_detach(struct commreg_async *a, const char *why)
{
	struct peer *p = a->peer;
	struct areq *q;

	if (p == NULL)
		return;
	TAILQ_FOREACH(q, &a->reqs, link) {
		if (q->preq != NULL) {
			peer_request_cancel(q->preq);
			q->preq = NULL;
		}
	}
	a->peer = NULL;
	p->ops = NULL;
	p->arg = NULL;
	if (p->fd != -1)
		shutdown(p->fd, SHUT_RDWR);
	if (why != NULL)
		peer_fail(p, "%s", why);
	else
		peer_close(p);
}

/* Close the connection (or the connect); requests are the caller's
 * business. */
static void
conn_drop(struct commreg_async *a)
{
	if (a->ev_connect != NULL)
		event_free(a->ev_connect);
	a->ev_connect = NULL;
	conn_detach(a, NULL);
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
}

/*
 * The connection went away.  What was sent on it is sent again on the
 * next one: registrations and watches by restoring, queries as they are
 * (each still bounded by its own deadline).
 */
static void
reqs_reset(struct commreg_async *a)
{
	struct areq *q, *qn;
	struct commreg_watch *w;

	TAILQ_FOREACH_SAFE(q, &a->reqs, link, qn) {
		switch (q->kind) {
		case REQ_HELLO:
		case REQ_FORGET:
			break;
		case REQ_REGISTER:
			if (q->reg != NULL)
				q->reg->req = NULL;
			break;
		case REQ_WATCH:
			if (q->watch != NULL)
				q->watch->req = NULL;
			break;
		case REQ_UNREGISTER:
			/* The name went with the connection. */
			TAILQ_REMOVE(&a->reqs, q, link);
			req_finish_later(a, q, 0, NULL);
			continue;
		default:
			if (q->preq != NULL) {
				peer_request_cancel(q->preq);
				q->preq = NULL;
			}
			continue;
		}
		TAILQ_REMOVE(&a->reqs, q, link);
		req_free(q);
	}
	TAILQ_FOREACH(w, &a->watches, link)
		w->live = 0;
}

static void orphan(struct commreg_async *, const char *);

static void
lost(struct commreg_async *a, const char *reason)
{
	enum async_state was = a->state;

	if (a->private) {
		orphan(a, reason);
		return;
	}
	conn_drop(a);
	reqs_reset(a);
	a->state = A_IDLE;
	/* A registry that drops us while we restore keeps the backoff
	 * growing; one that served us starts it afresh. */
	if (was == A_READY)
		a->attempt = 0;
	a->quick = 0;
	snprintf(a->why, sizeof a->why, "%s", reason);
	if ((was == A_RESTORING || was == A_READY) && a->opened && !a->outage) {
		a->outage = 1;
		a->outage_ms = now_ms();
		log_debug("async: registry lost: %s", reason);
		if (a->o.on_lost != NULL)
			a->o.on_lost(a, reason, a->o.arg);
		if (a->closing)
			return;
	} else if (!a->opened) {
		/* Never open: no on_lost; on_open comes once it is back. */
		log_debug("async: registry lost while opening: %s", reason);
	}
	if (was == A_READY) {
		/*
		 * Connect at once: a registry's standby accepts on the same
		 * port the moment it dies (docs/election.md).  Only when
		 * nothing answers there does the jitter below spread the
		 * clients that will elect (elect()).
		 */
		snprintf(a->why, sizeof a->why, "%s", reason);
		a->quick = 1;
		a->elected = 0;
		attempt(a);
		return;
	}
	attempt_failed(a, "%s", reason);
}

/* A request that can no longer go anywhere: a lookup of a name the
 * handle knew is answered from memory, anything else fails. */
static void
orphan_answer(struct commreg_async *a, struct areq *q)
{
	char msg[sizeof a->why + 320];
	ssize_t i;

	if (q->kind == REQ_LOOKUP && q->nwords == 2 &&
	    (i = known_find(a, q->words[1])) != -1) {
		req_finish_later(a, q, COMMREG_STALE, a->known[i].commid);
		return;
	}
	if (q->kind == REQ_LOOKUP && q->nwords == 2)
		snprintf(msg, sizeof msg, "%s; \"%.256s\" was never seen",
		    a->why, q->words[1]);
	else
		snprintf(msg, sizeof msg, "%s", a->why);
	req_finish_later(a, q, -1, msg);
}

/*
 * The private registry this handle was bound to is gone.  It is not
 * re-elected, neither here nor by the other members of its group: the
 * group's room is closed.  Comm connections between the applications do
 * not need it and carry on; what depended on the registry is told, once.
 */
static void
orphan(struct commreg_async *a, const char *reason)
{
	struct commreg_watch_event ev;
	struct commreg_reg *r;
	struct commreg_watch *w;
	struct areq *q;

	char msg[sizeof a->why + 96];

	/* Through msg: reason may be a->why itself. */
	snprintf(msg, sizeof msg,
	    "the private registry on port %d (%s) is gone: %.400s", a->private,
	    COMMREG_ENV_REGPORT, reason);
	snprintf(a->why, sizeof a->why, "%.500s", msg);
	conn_drop(a);
	reqs_reset(a);
	if (!a->opened) {
		open_failed(a);
		return;
	}
	a->state = A_ORPHANED;
	log_debug("async: %s", a->why);
	if (a->o.on_lost != NULL) {
		a->o.on_lost(a, a->why, a->o.arg);
		if (a->closing)
			return;
	}
	while ((q = TAILQ_FIRST(&a->reqs)) != NULL) {
		TAILQ_REMOVE(&a->reqs, q, link);
		orphan_answer(a, q);
	}
	while ((r = TAILQ_FIRST(&a->regs)) != NULL) {
		reg_kill(a, r);
		if (!r->told) {
			r->told = 1;
			if (r->cb != NULL)
				r->cb(a, r, -1, a->why, r->arg);
		} else if (a->o.on_reg_lost != NULL)
			a->o.on_reg_lost(a, r, a->why, a->o.arg);
		if (a->closing)
			return;
	}
	while ((w = TAILQ_FIRST(&a->watches)) != NULL) {
		watch_kill(a, w);
		memset(&ev, 0, sizeof ev);
		ev.what = COMMREG_WATCH_ERROR;
		ev.message = a->why;
		if (w->cb != NULL)
			w->cb(a, w, &ev, w->arg);
		if (a->closing)
			return;
	}
}

/* The client is dead: find out what that means in this state. */

/* The connection is lost (reason says why): what that means here. */
static void
conn_lost(struct commreg_async *a, const char *reason)
{
	char why[sizeof a->why];

	if (a->closing)
		return;
	/* Through why: reason may be a->why itself. */
	snprintf(why, sizeof why, "%s", reason);
	if (a->state == A_HELLO) {
		/* Not a registry (of ours) there: elect one. */
		conn_drop(a);
		reqs_reset(a);
		snprintf(a->why, sizeof a->why, "%s", why);
		log_debug("async: %s", why);
		elect(a);
		return;
	}
	lost(a, why);
}

/* We give up on the connection (a wrong hello, a registry that does not
 * answer, no memory): as if it were lost, now. */
static void
conn_abort(struct commreg_async *a, const char *fmt, ...)
{
	char why[sizeof a->why];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	conn_detach(a, why);
	conn_lost(a, why);
}

/* The engine lets go of the connection: closed, broken, or silent past
 * the liveness.  Called from its reaper, once. */
static void
async_gone(struct peer *p, const char *reason)
{
	struct commreg_async *a = p->arg;
	char why[sizeof a->why];

	enter(a);
	/* The engine frees p and fails what is still asked of it after
	 * this: it must not call us about them. */
	conn_detach(a, NULL);
	client_lost_why(why, sizeof why, reason);
	conn_lost(a, why);
	leave(a);
}

static const struct peer_ops async_ops = {
    .find = async_find,
    .gone = async_gone,
};

static void
connect_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct commreg_async *a = arg;
	struct areq *q;
	const char *w[2] = {"Commreg/Hello", COMMREG_CLIENT_VERSION};
	char addr[64];
	socklen_t sl = sizeof(int);
	int soerr = 0;

	enter(a);
	if (ev & EV_TIMEOUT)
		soerr = ETIMEDOUT;
	else if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		soerr = errno;
	if (soerr != 0) {
		snprintf(a->why, sizeof a->why, "connect to 127.0.0.1:%d: %s",
		    a->port, strerror(soerr));
		conn_drop(a);
		elect(a);
		leave(a);
		return;
	}
	/* Connected, nothing sent yet: a squatter on the port of a dead
	 * registry is never sent a byte; the port is taken, so elect. */
	if (client_check_listener(a->port, a->why, sizeof a->why) == -1) {
		log_debug("async: %s", a->why);
		conn_drop(a);
		elect(a);
		leave(a);
		return;
	}
	event_free(a->ev_connect);
	a->ev_connect = NULL;
	if ((q = req_new(a, REQ_HELLO)) == NULL) {
		attempt_failed(a, "out of memory");
		leave(a);
		return;
	}
	/* The engine speaks first (our offer); the hello follows at once,
	 * as comm queues messages behind the offer. */
	snprintf(addr, sizeof addr, "registry on port %d", a->port);
	a->peer = peer_new(&a->ae->eng, a->fd, false, addr, &a->ae->lim,
	    &async_ops, a);
	a->fd = -1; /* the peer's now (closed, when NULL) */
	if (a->peer == NULL) {
		req_free(q);
		attempt_failed(a, "out of memory");
		leave(a);
		return;
	}
	a->state = A_HELLO;
	TAILQ_INSERT_TAIL(&a->reqs, q, link);
	req_send(a, q, w, 2);
	leave(a);
}

/* Connect to 127.0.0.1:port; a refusal means: elect. */
static void
conn_start(struct commreg_async *a, int port)
{
	struct timeval tv = tv_ms(
	    timeout_of(a->o.connect_timeout_ms, COMMREG_CONNECT_TIMEOUT_MS));

	a->port = port;
	if ((a->fd = client_connect_start(port, a->why, sizeof a->why)) == -1) {
		elect(a);
		return;
	}
	a->state = A_CONNECTING;
	a->ev_connect = event_new(a->base, a->fd, EV_WRITE, connect_cb, a);
	if (a->ev_connect == NULL) {
		attempt_failed(a, "out of memory for a connection");
		return;
	}
	event_add(a->ev_connect, &tv);
}

/* ---- attempts
 * ------------------------------------------------------------------ */

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct commreg_async *a = arg;

	enter(a);
	a->elected = 0;
	attempt(a);
	leave(a);
}

static void
attempt_schedule(struct commreg_async *a)
{
	struct timeval tv;
	unsigned base;
	int ms;

	if (a->soon) {
		a->soon = 0;
		a->state = A_IDLE;
		tv = tv_ms(
		    RETRY_SOON_MIN_MS +
		    (int)rnd(a, RETRY_SOON_MAX_MS - RETRY_SOON_MIN_MS + 1));
		evtimer_add(a->retry, &tv);
		return;
	}
	if (a->attempt == 0)
		ms = RETRY_FIRST_MIN_MS +
		     (int)rnd(a, RETRY_FIRST_MAX_MS - RETRY_FIRST_MIN_MS + 1);
	else {
		base = a->attempt >= 4
		           ? RETRY_CAP_MS
		           : (unsigned)RETRY_FIRST_MAX_MS << (a->attempt - 1);
		if (base > RETRY_CAP_MS)
			base = RETRY_CAP_MS;
		ms = (int)(base / 2 + rnd(a, base / 2 + 1));
	}
	a->attempt++;
	a->state = A_IDLE;
	tv = tv_ms(ms);
	evtimer_add(a->retry, &tv);
}

static void open_failed(struct commreg_async *);

static void
attempt_failed(struct commreg_async *a, const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof a->why], report[sizeof a->why + 64];
	long long now = now_ms();

	/* Through msg: the argument may be a->why itself. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(a->why, sizeof a->why, "%s", msg);
	conn_drop(a);
	log_debug("async: attempt %d: %s", a->attempt, a->why);
	if (!a->opened && now - a->open_ms >= timeout_of(a->o.open_timeout_ms,
	                                          COMMREG_OPEN_TIMEOUT_MS)) {
		open_failed(a);
		return;
	}
	if (a->outage && now - a->outage_ms >= OUTAGE_REPORT_MS &&
	    a->o.on_error != NULL) {
		snprintf(report, sizeof report, "no registry for %lld ms: %s",
		    now - a->outage_ms, a->why);
		a->o.on_error(a, report, a->o.arg);
		if (a->closing)
			return;
	}
	attempt_schedule(a);
}

/*
 * A failure no retry mends (an unsafe tree, a commregd that cannot be
 * run): opening gives up at once; an open handle keeps trying, as the
 * cause may be fixed meanwhile.
 */
static void
attempt_fatal(struct commreg_async *a, const char *msg)
{
	if (!a->opened) {
		snprintf(a->why, sizeof a->why, "%s", msg);
		conn_drop(a);
		open_failed(a);
		return;
	}
	attempt_failed(a, "%s", msg);
}

/* One try: the port file, then connect (or elect, unless this try
 * elected already: then it failed). */
static void
attempt(struct commreg_async *a)
{
	enum client_find r;
	char regdir[PATH_MAX], host[256], path[PATH_MAX];
	char err[512];
	int port;

	/* The note's rule: TCL_COMM_REGPORT first, the port file after. */
	if (a->priv_port > 0 && !a->private) {
		a->priv_trying = 1;
		log_debug("async: trying %s=%d", COMMREG_ENV_REGPORT,
		    a->priv_port);
		conn_start(a, a->priv_port);
		return;
	}
	if (client_registry_path(a->home, regdir, sizeof regdir, host,
	        sizeof host, path, sizeof path, err, sizeof err) == -1) {
		attempt_fatal(a, err);
		return;
	}
	snprintf(a->path, sizeof a->path, "%s", path);
	snprintf(a->gate, sizeof a->gate, "%s", regdir);
	r = client_port_file_read(path, &port, err, sizeof err);
	if (r == CLIENT_FIND_OK) {
		log_debug("async: %s says port %d", path, port);
		conn_start(a, port);
		return;
	}
	if (r == CLIENT_FIND_FATAL) {
		attempt_fatal(a, err);
		return;
	}
	snprintf(a->why, sizeof a->why, "%s", err);
	elect(a);
}

/* ---- electing: spawn
 * ---------------------------------------------------------- */

static void
spawn_free(struct spawn *sp)
{
	if (sp->ev_exit != NULL)
		event_free(sp->ev_exit);
	if (sp->ev_err != NULL)
		event_free(sp->ev_err);
	if (sp->timeout != NULL)
		event_free(sp->timeout);
	if (sp->pidfd != -1)
		close(sp->pidfd);
	if (sp->errfd != -1)
		close(sp->errfd);
	tbuf_free(&sp->msg);
	free(sp);
}

static void
spawn_err_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct spawn *sp = arg;

	/* At EOF stop listening; a detached daemon may keep it open. */
	if (client_spawn_collect(sp->errfd, &sp->msg) == 0)
		event_del(sp->ev_err);
}

static void
spawn_exit_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct spawn *sp = arg;
	struct commreg_async *a = sp->a;
	char err[512];
	pid_t w;
	int status = 0, rc;

	do
		w = waitpid(sp->pid, &status, WNOHANG);
	while (w == -1 && errno == EINTR);
	if (w == 0) {
		if (sp->pidfd != -1)
			event_add(sp->ev_exit, NULL);
		return; /* still running (the poll timer persists) */
	}
	if (w == -1)
		status = 0; /* reaped by the application: assume fine */
	enter(a);
	client_spawn_collect(sp->errfd, &sp->msg);
	TAILQ_REMOVE(&a->spawns, sp, link);
	if (sp->abandoned) {
		spawn_free(sp);
		leave(a);
		return;
	}
	a->spawn = NULL;
	spawn_gate_release(a);
	rc = client_spawn_result(status, sp->path, &sp->msg, err, sizeof err);
	spawn_free(sp);
	if (rc == 0)
		attempt(a); /* a->elected stays: no second spawn this try */
	else
		attempt_failed(a, "%s", err);
	leave(a);
}

static void
spawn_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct spawn *sp = arg;
	struct commreg_async *a = sp->a;

	enter(a);
	kill(sp->pid, SIGTERM);
	sp->abandoned = 1; /* reaped by spawn_exit_cb */
	a->spawn = NULL;
	spawn_gate_release(a);
	attempt_failed(a, "%s --detach did not finish within %d ms", sp->path,
	    timeout_of(a->o.spawn_timeout_ms, COMMREG_SPAWN_TIMEOUT_MS));
	leave(a);
}

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/*
 * Spawn mode's courtesy among clients: hold an flock on the registry
 * directory (no file to create or leave behind) while our commregd
 * --detach runs, and do not spawn while someone else holds it; look at
 * the port file again soon instead.  When hundreds of clients lose their
 * registry together, this makes one of them (not hundreds) start
 * commregd.  It is only a hint: the election itself is commregd's, a
 * client that dies drops the lock, and after RETRY_SOON_MAX looks a
 * client spawns regardless.
 */
static int
spawn_gate_take(struct commreg_async *a)
{
	int fd;

	if (a->gate_fd != -1 || a->gate[0] == '\0')
		return 0;
	fd = open(a->gate, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return 0; /* no gate: spawn anyway */
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return errno == EWOULDBLOCK ? -1 : 0;
	}
	a->gate_fd = fd;
	return 0;
}

static void
spawn_gate_release(struct commreg_async *a)
{
	if (a->gate_fd != -1) {
		close(a->gate_fd);
		a->gate_fd = -1;
	}
}

static void
spawn_start(struct commreg_async *a)
{
	struct spawn *sp;
	struct timeval tv;
	char err[512];

	if ((sp = calloc(1, sizeof *sp)) == NULL) {
		spawn_gate_release(a);
		attempt_failed(a, "cannot run commregd: out of memory");
		return;
	}
	sp->a = a;
	sp->pidfd = sp->errfd = -1;
	tbuf_init(&sp->msg);
	if (client_spawn_commregd(a->home, a->commregd, &sp->pid, &sp->errfd,
	        sp->path, sizeof sp->path, err, sizeof err) == -1) {
		spawn_gate_release(a);
		spawn_free(sp);
		attempt_fatal(a, err);
		return;
	}
	/*
	 * The exit is watched, never waited for: a pidfd is readable once
	 * the child is gone; without one, waitpid(WNOHANG) every 10 ms.
	 * Neither touches SIGCHLD, which belongs to the application.
	 */
	if ((sp->pidfd = pidfd_open_(sp->pid)) != -1) {
		sp->ev_exit =
		    event_new(a->base, sp->pidfd, EV_READ, spawn_exit_cb, sp);
		if (sp->ev_exit != NULL)
			event_add(sp->ev_exit, NULL);
	} else {
		sp->ev_exit =
		    event_new(a->base, -1, EV_PERSIST, spawn_exit_cb, sp);
		tv = tv_ms(CHILD_POLL_MS);
		if (sp->ev_exit != NULL)
			event_add(sp->ev_exit, &tv);
	}
	sp->ev_err = event_new(a->base, sp->errfd, EV_READ | EV_PERSIST,
	    spawn_err_cb, sp);
	sp->timeout = evtimer_new(a->base, spawn_timeout_cb, sp);
	if (sp->ev_exit == NULL || sp->ev_err == NULL || sp->timeout == NULL) {
		/* Unwatched it would be a zombie: end it now (SIGKILL is
		 * final, so the wait is short). */
		kill(sp->pid, SIGKILL);
		while (waitpid(sp->pid, NULL, 0) == -1 && errno == EINTR)
			;
		spawn_free(sp);
		spawn_gate_release(a);
		attempt_failed(a, "cannot watch commregd: out of memory");
		return;
	}
	event_add(sp->ev_err, NULL);
	tv = tv_ms(timeout_of(a->o.spawn_timeout_ms, COMMREG_SPAWN_TIMEOUT_MS));
	evtimer_add(sp->timeout, &tv);
	TAILQ_INSERT_TAIL(&a->spawns, sp, link);
	a->spawn = sp;
	a->state = A_SPAWNING;
}

/* ---- electing: in process --------------------------------------------------
 */

/* We won: serve the registry on the application's loop. */
static int
host_start(struct commreg_async *a, struct election_claim *claim,
    const char *host)
{
	struct server_opts so;
	struct server *srv;
	struct passwd *pw;

	if ((srv = calloc(1, sizeof *srv)) == NULL)
		return -1;
	server_default_opts(&so);
	if (server_init(srv, a->base, claim->listen_fd, claim->port, host,
	        &so) == -1) {
		/* Only allocations fail here; server_init undid them. */
		free(srv);
		return -1;
	}
	pw = getpwuid(getuid());
	snprintf(srv->owner, sizeof srv->owner, "%s",
	    pw != NULL ? pw->pw_name : "unknown");
	a->srv = srv;
	a->claim = *claim;
	a->claim.listen_fd = -1; /* the listener closes it */
	log_info("this process (pid %ld) is the registry on port %d",
	    (long)getpid(), claim->port);
	return 0;
}

static void
elect_inprocess(struct commreg_async *a)
{
	struct election_claim claim;
	char regdir[PATH_MAX], host[256], path[PATH_MAX];
	char err[512];
	int port;

	if (client_registry_path(a->home, regdir, sizeof regdir, host,
	        sizeof host, path, sizeof path, err, sizeof err) == -1) {
		attempt_failed(a, "%s", err);
		return;
	}
	/*
	 * wait_ms 0: a contender at work makes election_run return at once
	 * instead of sleeping in our loop; the retry timer waits instead.
	 */
	switch (election_run(regdir, host, 0, &port, &claim, err, sizeof err)) {
	case ELECTION_ERROR:
		attempt_failed(a, "%s", err);
		return;
	case ELECTION_FOUND:
		conn_start(a, port);
		return;
	case ELECTION_WON:
		break;
	}
	if (host_start(a, &claim, host) == -1) {
		election_release(&claim);
		attempt_failed(a, "cannot serve the registry on port %d", port);
		return;
	}
	conn_start(a, port);
}

/* Nothing (of ours) answered where the port file points: elect, once a
 * try. */
static void
elect(struct commreg_async *a)
{
	if (a->priv_trying) {
		/* No registry where TCL_COMM_REGPORT says: as usual from now
		 * on, and never that port again. */
		log_warnx("%s=%d: %s; using the user registry",
		    COMMREG_ENV_REGPORT, a->priv_port, a->why);
		a->priv_trying = 0;
		a->priv_port = 0;
		attempt(a);
		return;
	}
	if (a->elected) {
		attempt_failed(a, "%s", a->why);
		return;
	}
	if (a->quick) {
		/* The try made at once on the loss found no registry: elect
		 * after the jitter, as every client does. */
		a->quick = 0;
		attempt_failed(a, "%s", a->why);
		return;
	}
	a->elected = 1;
	if (a->srv != NULL) {
		conn_start(a, a->claim.port); /* we are it already */
		return;
	}
	/*
	 * Locked: a registry (maybe just taking over, not yet listening) or
	 * a contender holds it; electing would only find it, so look again
	 * soon.  Saves hundreds of clients that lost their registry together
	 * from spawning a commregd each.
	 */
	if (a->nsoon < RETRY_SOON_MAX && client_port_file_locked(a->path)) {
		a->nsoon++;
		a->soon = 1;
		attempt_failed(a, "%s: a registry is being elected", a->path);
		return;
	}
	if (a->o.mode == COMMREG_MODE_SPAWN && a->nsoon < RETRY_SOON_MAX &&
	    spawn_gate_take(a) == -1) {
		a->nsoon++;
		a->soon = 1;
		attempt_failed(a, "another client is starting commregd");
		return;
	}
	log_debug("async: electing (%s): %s",
	    a->o.mode == COMMREG_MODE_INPROCESS ? "in process" : "spawn",
	    a->why);
	if (a->o.mode == COMMREG_MODE_INPROCESS)
		elect_inprocess(a);
	else
		spawn_start(a);
}

/* ---- restored, failed
 * ---------------------------------------------------------- */

static void
restored(struct commreg_async *a)
{
	struct areq *q;
	int was_outage = a->outage;

	a->state = A_READY;
	a->attempt = 0;
	a->quick = 0;
	a->nsoon = 0;
	a->outage = 0;
	TAILQ_FOREACH(q, &a->reqs, link) {
		if (q->preq == NULL && q->nwords > 0)
			req_send_words(a, q);
	}
	if (!a->opened) {
		a->opened = 1;
		log_debug("async: open on port %d", a->port);
		if (a->o.on_open != NULL)
			a->o.on_open(a, 0, NULL, a->o.arg);
	} else if (was_outage) {
		log_debug("async: registry regained on port %d%s", a->port,
		    a->srv != NULL ? ", hosted here" : "");
		if (a->o.on_regained != NULL)
			a->o.on_regained(a, a->port, a->srv != NULL, a->o.arg);
	}
}

/* Open gave up: everything that waits is told, then the application. */
static void
open_failed(struct commreg_async *a)
{
	struct commreg_watch_event ev;
	struct commreg_reg *r;
	struct commreg_watch *w;
	struct areq *q;
	char why[600];

	snprintf(why, sizeof why, "no registry: %s", a->why);
	a->state = A_FAILED;
	reqs_reset(a);
	while ((q = TAILQ_FIRST(&a->reqs)) != NULL) {
		TAILQ_REMOVE(&a->reqs, q, link);
		req_finish_later(a, q, -1, why);
	}
	/*
	 * Those that never had an outcome get this one (and are freed); the
	 * others stay until the application closes the handle.  From the
	 * head each time: a callback may drop any of them.
	 */
	for (;;) {
		TAILQ_FOREACH(r, &a->regs, link) {
			if (!r->told)
				break;
		}
		if (r == NULL || a->closing)
			break;
		reg_kill(a, r);
		if (r->cb != NULL)
			r->cb(a, r, -1, why, r->arg);
	}
	for (;;) {
		TAILQ_FOREACH(w, &a->watches, link) {
			if (!w->had)
				break;
		}
		if (w == NULL || a->closing)
			break;
		watch_kill(a, w);
		memset(&ev, 0, sizeof ev);
		ev.what = COMMREG_WATCH_ERROR;
		ev.message = why;
		if (w->cb != NULL)
			w->cb(a, w, &ev, w->arg);
	}
	if (!a->closing && a->o.on_open != NULL)
		a->o.on_open(a, -1, why, a->o.arg);
}

/* ---- the engine, apart from the handle ------------------------------------
 */

static void
ae_fin_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct async_engine *ae = arg;

	engine_free(&ae->eng);
	event_free(ae->fin);
	free(ae);
}

static struct async_engine *
ae_new(struct event_base *base)
{
	struct async_engine *ae;

	if ((ae = calloc(1, sizeof *ae)) == NULL)
		return NULL;
	if (engine_init(&ae->eng, base) == -1 ||
	    (ae->fin = event_new(base, -1, 0, ae_fin_cb, ae)) == NULL) {
		engine_free(&ae->eng);
		free(ae);
		return NULL;
	}
	return ae;
}

/*
 * Free the engine, its peers with it (they were let go of: nobody is
 * told).  Inside one of its own callbacks it must outlive the callback:
 * then it goes from the loop, as soon as the callback has returned.
 */
static void
ae_release(struct async_engine *ae)
{
	if (ae == NULL)
		return;
	if (ae->eng.depth > 0) {
		event_active(ae->fin, EV_TIMEOUT, 0);
		return;
	}
	ae_fin_cb(-1, 0, ae);
}

/* ---- the public face
 * --------------------------------------------------------- */

struct commreg_async *
commreg_async_open(struct event_base *base, const struct commreg_async_opts *o,
    char *err, size_t errlen)
{
	struct commreg_async *a;
	struct sigaction sa;
	const char *home;
	char regdir[PATH_MAX], host[256], path[PATH_MAX], why[128];
	struct timeval now = {0, 0};
	uint64_t seed;
	int priv_port = 0;

	log_library_default();
	tbuf_oom_library_default();
	if (base == NULL) {
		reason(err, errlen, "no event_base");
		return NULL;
	}
	if ((home = client_home_dir(o != NULL ? o->home : NULL)) == NULL) {
		reason(err, errlen, "no home directory (HOME is not set)");
		return NULL;
	}
	if (client_env_regport(&priv_port, why, sizeof why) == -1)
		log_warnx("%s", why);
	/* An unsafe tree does not get better by retrying: say it now (a
	 * group with a private registry may never need the tree). */
	if (priv_port == 0 &&
	    client_registry_path(home, regdir, sizeof regdir, host, sizeof host,
	        path, sizeof path, err, errlen) == -1)
		return NULL;
	if ((a = calloc(1, sizeof *a)) == NULL) {
		reason(err, errlen, "out of memory");
		return NULL;
	}
	if (o != NULL)
		a->o = *o;
	a->base = base;
	a->fd = -1;
	a->gate_fd = -1;
	a->priv_port = priv_port;
	a->open_ms = now_ms();
	TAILQ_INIT(&a->spawns);
	TAILQ_INIT(&a->reqs);
	TAILQ_INIT(&a->done);
	TAILQ_INIT(&a->regs);
	TAILQ_INIT(&a->watches);
	TAILQ_INIT(&a->dead_regs);
	TAILQ_INIT(&a->dead_watches);
	if (dup_str(&a->home, home) == -1 ||
	    dup_str(&a->commregd, a->o.commregd) == -1 ||
	    (a->ae = ae_new(base)) == NULL ||
	    (a->retry = evtimer_new(base, retry_cb, a)) == NULL ||
	    (a->deferred = event_new(base, -1, 0, deferred_cb, a)) == NULL) {
		reason(err, errlen, "out of memory");
		async_free(a);
		return NULL;
	}
	a->o.home = a->home;
	a->o.commregd = a->commregd;
	client_limits(&a->ae->lim, a->o.max_message, a->o.liveness_ms);
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
		seed = (uint64_t)a->open_ms ^ ((uint64_t)getpid() << 32) ^
		       (uint64_t)(uintptr_t)a;
	a->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
	/* The hosted server writes to sockets that may close under it. */
	if (a->o.mode == COMMREG_MODE_INPROCESS &&
	    sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	a->state = A_IDLE;
	evtimer_add(a->retry, &now);
	return a;
}

static void
async_free(struct commreg_async *a)
{
	struct spawn *sp;
	struct areq *q;
	struct commreg_reg *r;
	struct commreg_watch *w;

	conn_drop(a);
	spawn_gate_release(a);
	if (a->srv != NULL) {
		/* Our peers see the close and elect on this port. */
		server_free(a->srv);
		free(a->srv);
		election_release(&a->claim);
	}
	/*
	 * A commregd --detach still running is ended; it is only the
	 * election stage (the registry it may have forked lives on), and a
	 * SIGKILL'ed process is reaped at once, so this wait is short.
	 */
	while ((sp = TAILQ_FIRST(&a->spawns)) != NULL) {
		TAILQ_REMOVE(&a->spawns, sp, link);
		kill(sp->pid, SIGKILL);
		while (waitpid(sp->pid, NULL, 0) == -1 && errno == EINTR)
			;
		spawn_free(sp);
	}
	while ((q = TAILQ_FIRST(&a->reqs)) != NULL) {
		TAILQ_REMOVE(&a->reqs, q, link);
		req_free(q);
	}
	while ((q = TAILQ_FIRST(&a->done)) != NULL) {
		TAILQ_REMOVE(&a->done, q, link);
		req_free(q);
	}
	while ((r = TAILQ_FIRST(&a->regs)) != NULL) {
		TAILQ_REMOVE(&a->regs, r, link);
		reg_free(r);
	}
	while ((r = TAILQ_FIRST(&a->dead_regs)) != NULL) {
		TAILQ_REMOVE(&a->dead_regs, r, link);
		reg_free(r);
	}
	while ((w = TAILQ_FIRST(&a->watches)) != NULL) {
		TAILQ_REMOVE(&a->watches, w, link);
		watch_free(w);
	}
	while ((w = TAILQ_FIRST(&a->dead_watches)) != NULL) {
		TAILQ_REMOVE(&a->dead_watches, w, link);
		watch_free(w);
	}
	known_free(a);
	ae_release(a->ae);
	if (a->retry != NULL)
		event_free(a->retry);
	if (a->deferred != NULL)
		event_free(a->deferred);
	free(a->home);
	free(a->commregd);
	free(a);
}

void
commreg_async_close(struct commreg_async *a)
{
	if (a == NULL || a->closing)
		return;
	if (a->depth == 0) {
		async_free(a);
		return;
	}
	/* Inside a callback: nothing more from the connection, free on
	 * the way out. */
	a->closing = 1;
	conn_detach(a, NULL);
}

int
commreg_async_connected(const struct commreg_async *a)
{
	return a->state == A_READY;
}

int
commreg_async_port(const struct commreg_async *a)
{
	return connected(a) ? a->port : 0;
}

int
commreg_async_hosting(const struct commreg_async *a)
{
	return a->srv != NULL;
}

int
commreg_async_private(const struct commreg_async *a)
{
	return a->private;
}

int
commreg_async_orphaned(const struct commreg_async *a)
{
	return a->state == A_ORPHANED;
}

static int
usable(const struct commreg_async *a)
{
	return a != NULL && !a->closing && a->state != A_FAILED &&
	       a->state != A_ORPHANED;
}

struct commreg_reg *
commreg_async_register(struct commreg_async *a, const char *name, int port,
    const char *host, commreg_reg_cb cb, void *arg)
{
	return commreg_async_register_scope(a, name, port, host, NULL, cb, arg);
}

struct commreg_reg *
commreg_async_register_scope(struct commreg_async *a, const char *name,
    int port, const char *host, const char *scope, commreg_reg_cb cb, void *arg)
{
	struct commreg_reg *r;
	int rc = 0;

	if (!usable(a) || name == NULL || port < 1 || port > 65535 ||
	    (scope != NULL && scope[0] == '\0'))
		return NULL;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	r->a = a;
	/* user is the registry's default: not said, as before scopes. */
	if (scope != NULL && strcmp(scope, "user") == 0)
		scope = NULL;
	if (dup_str(&r->base, name) == -1 || dup_str(&r->host, host) == -1 ||
	    dup_str(&r->scope, scope) == -1) {
		reg_free(r);
		return NULL;
	}
	r->port = port;
	r->cb = cb;
	r->arg = arg;
	/* Not connected: restoring will make it with the others. */
	if (connected(a)) {
		enter(a);
		if ((rc = reg_send(a, r, 0)) == 0)
			TAILQ_INSERT_TAIL(&a->regs, r, link);
		leave(a);
	} else
		TAILQ_INSERT_TAIL(&a->regs, r, link);
	if (rc == -1) {
		reg_free(r);
		return NULL;
	}
	return r;
}

const char *
commreg_reg_name(const struct commreg_reg *r)
{
	return r->name != NULL ? r->name : "";
}

const char *
commreg_reg_base(const struct commreg_reg *r)
{
	return r->base;
}

long
commreg_reg_serial(const struct commreg_reg *r)
{
	return r->serial;
}

void *
commreg_reg_arg(const struct commreg_reg *r)
{
	return r->arg;
}

int
commreg_async_unregister(struct commreg_async *a, struct commreg_reg *r,
    commreg_done_cb cb, void *arg)
{
	const char *w[2] = {"Commreg/Unregister", NULL};
	struct areq *q;

	if (a == NULL || a->closing || r == NULL || r->dead)
		return -1;
	if ((q = req_new(a, REQ_UNREGISTER)) == NULL)
		return -1;
	enter(a);
	q->cb.done = cb;
	q->arg = arg;
	/* With a Register in flight, its reply releases the name. */
	if (connected(a) && r->req == NULL && r->name != NULL) {
		w[1] = r->name;
		TAILQ_INSERT_TAIL(&a->reqs, q, link);
		req_send(a, q, w, 2);
	} else
		req_finish_later(a, q, 0, NULL);
	reg_kill(a, r);
	leave(a);
	return 0;
}

/* A user request: sent now when connected, else when restored; once
 * orphaned, answered from what the handle knows. */
static int
user_request(struct commreg_async *a, enum req_kind kind, const char *const *w,
    size_t n, void *cb, void *arg)
{
	struct areq *q;

	if (a == NULL || a->closing || a->state == A_FAILED)
		return -1;
	if ((q = req_new(a, kind)) == NULL)
		return -1;
	switch (kind) {
	case REQ_LOOKUP:
		q->cb.lookup = (commreg_lookup_cb)cb;
		break;
	case REQ_LIST:
		q->cb.list = (commreg_list_cb)cb;
		break;
	default:
		q->cb.call = (commreg_call_cb)cb;
		break;
	}
	q->arg = arg;
	if (req_words(q, w, n) == -1 ||
	    (a->state != A_ORPHANED && req_arm(q) == -1)) {
		req_free(q);
		return -1;
	}
	enter(a);
	if (a->state == A_ORPHANED)
		orphan_answer(a, q);
	else {
		TAILQ_INSERT_TAIL(&a->reqs, q, link);
		if (a->state == A_READY)
			req_send_words(a, q);
	}
	leave(a);
	return 0;
}

int
commreg_async_lookup(struct commreg_async *a, const char *name,
    commreg_lookup_cb cb, void *arg)
{
	const char *w[2] = {"Commreg/Lookup", name};

	if (name == NULL)
		return -1;
	return user_request(a, REQ_LOOKUP, w, 2, (void *)cb, arg);
}

int
commreg_async_list(struct commreg_async *a, const char *pattern,
    commreg_list_cb cb, void *arg)
{
	const char *w[2] = {"Commreg/List", pattern};

	return user_request(a, REQ_LIST, w, pattern != NULL ? 2 : 1, (void *)cb,
	    arg);
}

int
commreg_async_call(struct commreg_async *a, const char *const *words, size_t n,
    commreg_call_cb cb, void *arg)
{
	size_t i;

	if (words == NULL || n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (words[i] == NULL)
			return -1;
	}
	return user_request(a, REQ_CALL, words, n, (void *)cb, arg);
}

struct commreg_watch *
commreg_async_watch(struct commreg_async *a, const char *pattern,
    commreg_watch_cb cb, void *arg)
{
	struct commreg_watch *w;
	int rc = 0;

	if (!usable(a))
		return NULL;
	if ((w = calloc(1, sizeof *w)) == NULL)
		return NULL;
	w->a = a;
	snprintf(w->tag, sizeof w->tag, "capi%u.%ld", ++a->next_tag,
	    (long)getpid());
	if (dup_str(&w->pattern, pattern != NULL ? pattern : "*") == -1) {
		watch_free(w);
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	if (connected(a)) {
		enter(a);
		if ((rc = watch_send(a, w, 0)) == 0)
			TAILQ_INSERT_TAIL(&a->watches, w, link);
		leave(a);
	} else
		TAILQ_INSERT_TAIL(&a->watches, w, link);
	if (rc == -1) {
		watch_free(w);
		return NULL;
	}
	return w;
}

int
commreg_async_unwatch(struct commreg_async *a, struct commreg_watch *w)
{
	if (a == NULL || a->closing || w == NULL || w->dead)
		return -1;
	enter(a);
	forget(a, "Commreg/Unwatch", w->tag);
	watch_kill(a, w);
	leave(a);
	return 0;
}
