/*
 * The registry's standby (standby.h, docs/election.md "The standby").
 *
 * The channel between the registry and its standby is a stream socket
 * pair.  The registry writes frames, a 4-byte length in network order
 * and a Tcl list:
 *
 *   add ID NAME BASE SERIAL PORT HOST DATA SCOPE UID PID CLAIMED NNS
 *       SINCE PATH     an entry now in the table, held by connection ID
 *   del NAME           an entry no longer in it
 *   stop               a clean stop: the standby goes too
 *
 * and the standby writes nothing.  The first frames are the whole table;
 * after them every change, told by the table itself (registry_observe).
 * Entries of scope host and global are not held: the host gateway holds
 * those, and their applications offer them to it again on the new
 * registry as after any failover.
 */
#define _GNU_SOURCE /* close_range */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "backoff.h"
#include "log.h"
#include "standby.h"
#include "tcllist.h"

/* A frame carries one entry, whose data is bounded by the registry's
 * max_message (the engine's limit, the same in the standby, which runs
 * with the registry's options): larger than this, it is not one the
 * registry writes.  (A fixed 1 MiB once made a registry run with a
 * larger --max-message look broken to its standby, which took over
 * beside it.) */
#define STANDBY_FRAME_MAX(lim) (2 * (lim).max_message + 4096)
/* Standbys that die young are made again at a growing interval. */
#define STANDBY_RESPAWN_MIN_MS 50
#define STANDBY_RESPAWN_MAX_MS 5000
#define STANDBY_ADULT_S        10
/* A clean stop waits this long for the standby to read "stop" and go. */
#define STANDBY_STOP_WAIT_MS 1000
/* The descriptors a standby is given, in its process. */
#define STANDBY_FD_CHAN   3
#define STANDBY_FD_LISTEN 4
#define STANDBY_FD_LOCK   5

/* ---- the registry's side ------------------------------------------------- */

struct standby {
	struct server *srv;
	int listen_fd, lock_fd;
	char **argv; /* exe's, with --standby-fds added, NULL-ended */
	char *exe;
	pid_t pid; /* the standby now, 0: none */
	int chan;  /* -1: none */
	struct event *ev_read, *ev_write, *respawn;
	struct event *ev_flush; /* armed: frames wait for the turn's end */
	struct tbuf out;        /* frames not yet written, from off */
	size_t off;
	size_t given; /* bytes of the table given at birth */
	int failures; /* standbys in a row that died young */
	time_t born;
	bool observing;
};

static void standby_spawn(struct standby *);
static void standby_lost(struct standby *, const char *, bool);

static void
frame_begin(struct tbuf *b, size_t *start)
{
	static const char zero[4];

	*start = b->len;
	tbuf_add(b, zero, 4);
}

static void
frame_end(struct tbuf *b, size_t start)
{
	uint32_t n;

	if (b->failed)
		return;
	n = htonl((uint32_t)(b->len - start - 4));
	memcpy(b->p + start, &n, 4);
}

static void
chan_close(struct standby *sb)
{
	if (sb->ev_flush != NULL)
		event_del(sb->ev_flush);
	if (sb->ev_read != NULL)
		event_free(sb->ev_read);
	if (sb->ev_write != NULL)
		event_free(sb->ev_write);
	sb->ev_read = sb->ev_write = NULL;
	if (sb->chan != -1)
		close(sb->chan);
	sb->chan = -1;
	tbuf_reset(&sb->out);
	sb->off = 0;
}

/* The standby is gone or useless: make another, soon. */
static void
standby_lost(struct standby *sb, const char *why, bool stuck)
{
	struct timeval tv;
	int ms;

	log_warnx("standby (pid %ld) %s; making a new one", (long)sb->pid, why);
	/* Ours, by its pid (its end of the channel is open, so it has not
	 * exited and the pid is still its), and killed before the channel
	 * closes: to a standby that ran on, a closed channel is our death,
	 * and it would take over beside us.  SIGKILL ends a stopped
	 * process too. */
	if (sb->pid > 0 && stuck)
		kill(sb->pid, SIGKILL);
	chan_close(sb);
	sb->pid = 0;
	if (time(NULL) - sb->born >= STANDBY_ADULT_S)
		sb->failures = 0;
	ms = backoff_ms(STANDBY_RESPAWN_MIN_MS, STANDBY_RESPAWN_MAX_MS,
	    sb->failures);
	sb->failures++;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(sb->respawn, &tv);
}

/* The standby reads nothing while more than the cap waits for it: it is
 * stopped or wedged, and is replaced (standby_lost kills it). */
static bool
chan_stuck(struct standby *sb)
{
	char why[200];

	/* The engine's bound on what a peer may have waiting for it
	 * (max_burst), beyond the table given at birth (at once, and larger
	 * than that when its entries are large): more, and the standby is
	 * replaced rather than let the registry's memory grow. */
	size_t most = sb->srv->lim.max_burst;

	if (sb->out.len - sb->off <= most + sb->given)
		return false;
	snprintf(why, sizeof why,
	    "is stuck: it reads nothing, and %zu bytes of changes wait for "
	    "it (more than the %zu MiB a standby may be behind, beyond the "
	    "%zu bytes of the table it was given)",
	    sb->out.len - sb->off, most >> 20, sb->given);
	standby_lost(sb, why, true);
	return true;
}

/* Write what the channel takes; the rest waits for it to be writable. */
static void
chan_flush(struct standby *sb)
{
	ssize_t n;

	while (sb->chan != -1 && sb->off < sb->out.len) {
		n = write(sb->chan, sb->out.p + sb->off, sb->out.len - sb->off);
		if (n > 0) {
			sb->off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (chan_stuck(sb))
				return;
			/* What was written goes from the front, or a standby
			 * that keeps up slowly would grow the buffer for ever
			 * behind what it has not read (the cap counts only
			 * the unwritten part). */
			if (sb->off >= (sb->out.len - sb->off)) {
				tbuf_consume(&sb->out, sb->off);
				sb->off = 0;
			}
			event_add(sb->ev_write, NULL);
			return;
		}
		standby_lost(sb, "is gone (its channel broke)", false);
		return;
	}
	if (sb->chan != -1) {
		tbuf_reset(&sb->out);
		sb->off = 0;
	}
}

/*
 * A frame was queued.  It is written at the end of this turn of the event
 * loop, with every other frame of the turn: a crowd registering at once
 * costs one write(2) a turn, not one a change.  While the channel is
 * behind, its writability writes; meanwhile only the cap is checked.
 * (A reply to an application may thus leave before its frame, within the
 * turn: a registry killed in between leaves that entry to be registered
 * again as after any failover, as when the channel is behind.)
 */
static void
chan_queued(struct standby *sb)
{
	if (event_pending(sb->ev_write, EV_WRITE, NULL))
		chan_stuck(sb);
	else
		event_active(sb->ev_flush, EV_TIMEOUT, 0);
}

/* The turn's end (ev_flush) and a writable channel (ev_write) alike. */
static void
on_chan_flush(evutil_socket_t fd, short ev, void *arg)
{
	chan_flush(arg);
}

/* The standby writes nothing: readable is its end. */
static void
on_chan_read(evutil_socket_t fd, short ev, void *arg)
{
	struct standby *sb = arg;
	char buf[64];
	ssize_t n;

	n = read(fd, buf, sizeof buf);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	standby_lost(sb, "is gone", false);
}

/*
 * What the standby is given: the entries of this host's applications.
 * Not those of scope host and global (the gateway holds them), nor the
 * copies of other hosts' entries (their path names the host, dist.h):
 * those the other hosts give the new registry again over its links.
 */
static bool
standby_holds(const struct reg_entry *e)
{
	return e->scope < REG_SCOPE_HOST && e->path[0] == '\0';
}

static void
frame_entry(struct tbuf *b, const struct reg_entry *e)
{
	size_t start, l;

	frame_begin(b, &start);
	l = b->len;
	tl_append_str(b, l, "add");
	tl_append_int(b, l, (long long)(uintptr_t)e->owner);
	tl_append(b, l, e->name, e->namelen);
	tl_append(b, l, e->base, e->baselen);
	tl_append_int(b, l, e->serial);
	tl_append_int(b, l, e->port);
	tl_append_str(b, l, e->host);
	tl_append(b, l, e->data, e->datalen);
	tl_append_int(b, l, e->scope);
	tl_append_int(b, l, (long long)e->uid);
	tl_append_int(b, l, (long long)e->pid);
	tl_append_int(b, l, e->pid_claimed);
	tl_append_int(b, l, e->nns);
	tl_append_int(b, l, (long long)e->since);
	tl_append_str(b, l, e->path != NULL ? e->path : "");
	frame_end(b, start);
}

static void
frame_word(struct tbuf *b, const char *w, const char *arg, size_t len)
{
	size_t start, l;

	frame_begin(b, &start);
	l = b->len;
	tl_append_str(b, l, w);
	if (arg != NULL)
		tl_append(b, l, arg, len);
	frame_end(b, start);
}

/* Told by the table of every add and remove. */
static void
standby_observe(const struct reg_entry *e, bool added, void *arg)
{
	struct standby *sb = arg;

	if (sb->chan == -1 || !standby_holds(e))
		return;
	if (added)
		frame_entry(&sb->out, e);
	else
		frame_word(&sb->out, "del", e->name, e->namelen);
	if (sb->out.failed) {
		standby_lost(sb, "cannot be given the table: out of memory",
		    true);
		return;
	}
	chan_queued(sb);
}

static void
on_respawn(evutil_socket_t fd, short ev, void *arg)
{
	standby_spawn(arg);
}

/*
 * In the child, between fork and exec: the three descriptors at 3, 4
 * and 5, nothing else open above stderr (the registry's connections are
 * its own: a standby holding one would keep it open past the registry's
 * death, and its client would never notice).
 */
static void
child_exec(struct standby *sb, int chan)
{
	int c, l, k;

	c = fcntl(chan, F_DUPFD, 16);
	l = fcntl(sb->listen_fd, F_DUPFD, 16);
	k = fcntl(sb->lock_fd, F_DUPFD, 16);
	if (c == -1 || l == -1 || k == -1 || dup2(c, STANDBY_FD_CHAN) == -1 ||
	    dup2(l, STANDBY_FD_LISTEN) == -1 || dup2(k, STANDBY_FD_LOCK) == -1)
		_exit(127);
	close_range(STANDBY_FD_LOCK + 1, ~0U, 0);
	signal(SIGCHLD, SIG_DFL);
	execv(sb->exe, sb->argv);
	_exit(127);
}

struct giving {
	struct standby *sb;
	size_t held;
};

static void
give_entry(const struct reg_entry *e, void *arg)
{
	struct giving *g = arg;

	if (!standby_holds(e))
		return;
	frame_entry(&g->sb->out, e);
	g->held++;
}

static void
standby_spawn(struct standby *sb)
{
	struct giving g = {sb, 0};
	size_t cursor = 0;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("standby: socketpair");
		standby_lost(sb, "could not be made", false);
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("standby: fork");
		close(sv[0]);
		close(sv[1]);
		standby_lost(sb, "could not be made", false);
		return;
	}
	if (pid == 0)
		child_exec(sb, sv[1]);
	close(sv[1]);
	sb->chan = sv[0];
	sb->pid = pid;
	sb->born = time(NULL);
	if (fcntl(sb->chan, F_SETFL, O_NONBLOCK) == -1 ||
	    (sb->ev_read = event_new(sb->srv->base, sb->chan,
	         EV_READ | EV_PERSIST, on_chan_read, sb)) == NULL ||
	    (sb->ev_write = event_new(sb->srv->base, sb->chan, EV_WRITE,
	         on_chan_flush, sb)) == NULL) {
		standby_lost(sb, "cannot be followed: out of memory", true);
		return;
	}
	event_add(sb->ev_read, NULL);
	/*
	 * The whole table first, in the table's own order (one walk, no
	 * array, no sort): each add stands alone for the standby, which
	 * files it under its connection and its full name (follow_frame),
	 * so no order of them means anything.  Every change after it, in
	 * order: that order does.
	 */
	registry_scan(sb->srv->reg, &cursor, SIZE_MAX, give_entry, &g);
	if (sb->out.failed) {
		standby_lost(sb, "cannot be given the table: out of memory",
		    true);
		return;
	}
	sb->given = sb->out.len;
	log_info("standby (pid %ld) made, given the listening socket, the "
	         "port file's lock and %zu entries",
	    (long)pid, g.held);
	chan_flush(sb);
}

struct standby *
standby_keep(struct server *srv, int listen_fd, int lock_fd, const char *exe,
    char *const *argv)
{
	struct standby *sb;
	size_t n, i, j;

	if ((sb = calloc(1, sizeof *sb)) == NULL)
		goto nomem;
	sb->srv = srv;
	sb->listen_fd = listen_fd;
	sb->lock_fd = lock_fd;
	sb->chan = -1;
	tbuf_init(&sb->out);
	for (n = 0; argv[n] != NULL; n++)
		;
	if ((sb->argv = calloc(n + 2, sizeof *sb->argv)) == NULL ||
	    (sb->exe = strdup(exe)) == NULL)
		goto nomem;
	/* The registry's own options, less those that made it what it is
	 * (a detached one, the service manager's, a standby that took
	 * over): a standby has its own way in. */
	for (i = j = 0; i < n; i++) {
		if (i > 0 && (strcmp(argv[i], "--detach") == 0 ||
		                 strcmp(argv[i], "-d") == 0 ||
		                 strcmp(argv[i], "--standby") == 0 ||
		                 strcmp(argv[i], "--took-over") == 0 ||
		                 strncmp(argv[i], "--standby-fds", 13) == 0))
			continue;
		if ((sb->argv[j++] = strdup(argv[i])) == NULL)
			goto nomem;
	}
	if ((sb->argv[j] = strdup("--standby-fds=3,4,5")) == NULL)
		goto nomem;
	if ((sb->respawn = evtimer_new(srv->base, on_respawn, sb)) == NULL ||
	    (sb->ev_flush = event_new(srv->base, -1, 0, on_chan_flush, sb)) ==
	        NULL)
		goto nomem;
	if (registry_observe(srv->reg, standby_observe, sb) == -1) {
		log_warnx("standby: the table has no room for another "
		          "observer; running without a standby");
		standby_stop(sb);
		return NULL;
	}
	sb->observing = true;
	standby_spawn(sb);
	return sb;
nomem:
	log_warnx("standby: out of memory; running without a standby");
	standby_stop(sb);
	return NULL;
}

bool
standby_alive(const struct standby *sb)
{
	return sb != NULL && sb->chan != -1;
}

void
standby_stop(struct standby *sb)
{
	struct pollfd pfd;
	struct timespec t0, t;
	char buf[64];
	long left;
	size_t i;
	ssize_t n;

	if (sb == NULL)
		return;
	if (sb->observing)
		registry_unobserve(sb->srv->reg, sb);
	if (sb->chan != -1) {
		/* "stop" behind whatever it has not read yet; then wait
		 * (bounded) for it to go, so that the lock and the port go
		 * with us and not a moment later. */
		frame_word(&sb->out, "stop", NULL, 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			left = STANDBY_STOP_WAIT_MS -
			       ((t.tv_sec - t0.tv_sec) * 1000 +
			           (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				break;
			pfd.fd = sb->chan;
			pfd.events =
			    POLLIN | (sb->off < sb->out.len ? POLLOUT : 0);
			if (poll(&pfd, 1, (int)left) <= 0)
				break;
			if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
				n = read(sb->chan, buf, sizeof buf);
				if (n == 0 || (n == -1 && errno != EAGAIN))
					break; /* gone */
			}
			if ((pfd.revents & POLLOUT) && sb->off < sb->out.len) {
				n = write(sb->chan, sb->out.p + sb->off,
				    sb->out.len - sb->off);
				if (n > 0)
					sb->off += (size_t)n;
				else if (n == -1 && errno != EAGAIN)
					break;
			}
		}
	}
	chan_close(sb);
	if (sb->respawn != NULL)
		event_free(sb->respawn);
	if (sb->ev_flush != NULL)
		event_free(sb->ev_flush);
	tbuf_free(&sb->out);
	if (sb->argv != NULL)
		for (i = 0; sb->argv[i] != NULL; i++)
			free(sb->argv[i]);
	free(sb->argv);
	free(sb->exe);
	free(sb);
}

/* ---- the standby's side: the hold ---------------------------------------- */

/* A dead registry's connection: what it held, until it comes back. */
struct ghost {
	uintptr_t id; /* its owner in the registry that streamed it */
	struct reg_entry_list entries; /* never empty: it goes with its last */
	struct ghost *idnext, *ptrnext;
};

struct holdover {
	struct server *srv;
	struct ghost **byid, **byptr; /* hash chains, nb buckets each */
	size_t nb, nghosts, nheld;
	struct event *grace;
};

static size_t
hash_word(uintptr_t v, size_t nb)
{
	uint64_t x = (uint64_t)v * 0x9e3779b97f4a7c15ULL;

	return (size_t)(x >> 32) & (nb - 1);
}

static struct ghost *
ghost_by_id(struct holdover *h, uintptr_t id)
{
	struct ghost *g;

	for (g = h->byid[hash_word(id, h->nb)]; g != NULL; g = g->idnext)
		if (g->id == id)
			return g;
	return NULL;
}

/* Is owner one of ours (an entry held), and which? */
static struct ghost *
ghost_of(struct holdover *h, const void *owner)
{
	struct ghost *g;

	if (h == NULL || h->nghosts == 0)
		return NULL;
	for (g = h->byptr[hash_word((uintptr_t)owner, h->nb)]; g != NULL;
	     g = g->ptrnext)
		if ((const void *)g == owner)
			return g;
	return NULL;
}

static void
ghost_link(struct holdover *h, struct ghost *g)
{
	size_t b;

	b = hash_word(g->id, h->nb);
	g->idnext = h->byid[b];
	h->byid[b] = g;
	b = hash_word((uintptr_t)g, h->nb);
	g->ptrnext = h->byptr[b];
	h->byptr[b] = g;
}

static void
ghost_unlink(struct holdover *h, struct ghost *g)
{
	struct ghost **pp;

	for (pp = &h->byid[hash_word(g->id, h->nb)]; *pp != g;
	     pp = &(*pp)->idnext)
		;
	*pp = g->idnext;
	for (pp = &h->byptr[hash_word((uintptr_t)g, h->nb)]; *pp != g;
	     pp = &(*pp)->ptrnext)
		;
	*pp = g->ptrnext;
	h->nghosts--;
	free(g);
}

/* Twice the buckets, the chains made again; when memory is short the
 * chains just grow longer. */
static void
hold_grow(struct holdover *h)
{
	struct ghost **oid = h->byid, **optr = h->byptr, *g, *next;
	size_t onb = h->nb, i;

	h->byid = calloc(onb * 2, sizeof *h->byid);
	h->byptr = calloc(onb * 2, sizeof *h->byptr);
	if (h->byid == NULL || h->byptr == NULL) {
		free(h->byid);
		free(h->byptr);
		h->byid = oid;
		h->byptr = optr;
		return;
	}
	h->nb = onb * 2;
	for (i = 0; i < onb; i++)
		for (g = oid[i]; g != NULL; g = next) {
			next = g->idnext;
			ghost_link(h, g);
		}
	free(oid);
	free(optr);
}

static struct holdover *
hold_new(struct server *srv)
{
	struct holdover *h;

	if ((h = calloc(1, sizeof *h)) == NULL)
		return NULL;
	h->srv = srv;
	h->nb = 64;
	h->byid = calloc(h->nb, sizeof *h->byid);
	h->byptr = calloc(h->nb, sizeof *h->byptr);
	if (h->byid == NULL || h->byptr == NULL) {
		free(h->byid);
		free(h->byptr);
		free(h);
		return NULL;
	}
	return h;
}

/* An entry left g (out of the table, or given to a live connection). */
static void
ghost_drop_entry(struct holdover *h, struct ghost *g)
{
	h->nheld--;
	if (TAILQ_EMPTY(&g->entries))
		ghost_unlink(h, g);
}

size_t
holdover_count(const struct server *srv)
{
	return srv->holdover != NULL ? srv->holdover->nheld : 0;
}

/* Remove what is held, telling the watchers (tell) or not. */
static void
hold_clear(struct holdover *h, bool tell)
{
	struct ghost *g, *next;
	struct reg_entry *e;
	size_t i;

	for (i = 0; i < h->nb; i++)
		for (g = h->byid[i]; g != NULL; g = next) {
			next = g->idnext;
			while ((e = TAILQ_FIRST(&g->entries)) != NULL) {
				if (tell)
					log_info("standby: \"%s\" was not "
					         "registered again within the "
					         "grace: removed",
					    e->name);
				registry_remove(h->srv->reg, e, &g->entries);
			}
			free(g);
		}
	memset(h->byid, 0, h->nb * sizeof *h->byid);
	memset(h->byptr, 0, h->nb * sizeof *h->byptr);
	h->nghosts = h->nheld = 0;
}

void
holdover_free(struct server *srv)
{
	struct holdover *h = srv->holdover;

	if (h == NULL)
		return;
	/* Quietly: the table goes with the server. */
	hold_clear(h, false);
	if (h->grace != NULL)
		event_free(h->grace);
	free(h->byid);
	free(h->byptr);
	free(h);
	srv->holdover = NULL;
}

static void
on_grace_over(evutil_socket_t fd, short ev, void *arg)
{
	struct holdover *h = arg;

	if (h->nheld > 0)
		log_info("standby: grace over; %zu entries of %zu connections "
		         "were not registered again",
		    h->nheld, h->nghosts);
	hold_clear(h, true);
	server_flush(h->srv);
}

int
holdover_reclaim(struct cmd_ctx *c, const struct reg_add *a)
{
	struct holdover *h = c->srv->holdover;
	struct peer *p = c->peer;
	struct reg_entry *e;
	struct ghost *g;
	struct tbuf key, data;
	int same;

	if (h == NULL || h->nheld == 0 || a->copy || a->scope >= REG_SCOPE_HOST)
		return -1;
	tbuf_init(&key);
	/* A Bind's name is its base as it is: no serial. */
	registry_make_name(&key, a->base, a->baselen,
	    a->nns ? 1 : a->want_serial);
	e = key.failed ? NULL : registry_find(c->srv->reg, key.p, key.len);
	tbuf_free(&key);
	if (e == NULL || (g = ghost_of(h, e->owner)) == NULL ||
	    e->nns != a->nns)
		return -1;
	/* The same entry, or it is not this application's. */
	tbuf_init(&data);
	if (a->data != NULL)
		tbuf_add(&data, a->data, a->datalen);
	else {
		tl_append_int(&data, 0, a->port);
		tl_append_str(&data, 0, a->host);
	}
	same = !data.failed && data.len == e->datalen &&
	       memcmp(data.p, e->data, data.len) == 0;
	tbuf_free(&data);
	if (!a->nns)
		same =
		    same && e->port == a->port && strcmp(e->host, a->host) == 0;
	if (a->pid > 0 && e->pid > 0 && a->pid != e->pid)
		same = 0;
	if (!same)
		return -1;
	TAILQ_REMOVE(&g->entries, e, owner_link);
	ghost_drop_entry(h, g);
	e->owner = p;
	TAILQ_INSERT_TAIL(&p->entries, e, owner_link);
	p->nentries++;
	log_debug("peer %s took back \"%s\" within the grace", p->addr,
	    e->name);
	tbuf_reset(c->result);
	if (!a->nns)
		tbuf_add(c->result, e->name, e->namelen);
	return CMD_OK;
}

/* ---- the standby's side: following the registry -------------------------- */

struct follow {
	struct server *srv;
	struct holdover *h;
	int chan;
	struct event *ev;
	struct tbuf in;
	struct tlist w;
	int result; /* -2: following */
};

static long long
word_int(const struct tl_elem *e, bool *ok)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(e->p, &end, 10);
	if (end == e->p || *end != '\0' || errno != 0)
		*ok = false;
	return v;
}

/* One frame: -1 when it makes no sense. */
static int
follow_frame(struct follow *f, const char *s, size_t len)
{
	const struct tl_elem *v;
	const char *perr;
	struct reg_add a;
	struct reg_entry *e;
	struct ghost *g;
	struct tbuf err;
	uintptr_t id;
	bool ok = true;

	if (tlist_parse(&f->w, s, len, &perr) == -1 || f->w.n == 0)
		return -1;
	v = f->w.v;
	if (f->w.n == 1 && strcmp(v[0].p, "stop") == 0) {
		f->result = 0;
		return 0;
	}
	if (f->w.n == 2 && strcmp(v[0].p, "del") == 0) {
		e = registry_find(f->srv->reg, v[1].p, v[1].len);
		if (e == NULL || (g = ghost_of(f->h, e->owner)) == NULL)
			return 0;
		registry_remove(f->srv->reg, e, &g->entries);
		ghost_drop_entry(f->h, g);
		return 0;
	}
	if (f->w.n != 15 || strcmp(v[0].p, "add") != 0)
		return -1;
	memset(&a, 0, sizeof a);
	a.copy = true;
	id = (uintptr_t)word_int(&v[1], &ok);
	a.name = v[2].p;
	a.namelen = v[2].len;
	a.base = v[3].p;
	a.baselen = v[3].len;
	a.want_serial = (int)word_int(&v[4], &ok);
	a.port = (int)word_int(&v[5], &ok);
	a.host = v[6].p;
	a.data = v[7].p;
	a.datalen = v[7].len;
	a.scope = (enum reg_scope)word_int(&v[8], &ok);
	a.uid = (uid_t)word_int(&v[9], &ok);
	a.pid = (pid_t)word_int(&v[10], &ok);
	a.pid_claimed = word_int(&v[11], &ok) != 0;
	a.nns = word_int(&v[12], &ok) != 0;
	a.since = (time_t)word_int(&v[13], &ok);
	a.path = v[14].len > 0 ? v[14].p : NULL;
	if (!ok)
		return -1;
	if ((g = ghost_by_id(f->h, id)) == NULL) {
		if (f->h->nghosts >= f->h->nb)
			hold_grow(f->h);
		if ((g = calloc(1, sizeof *g)) == NULL)
			fatalx("standby: out of memory");
		g->id = id;
		TAILQ_INIT(&g->entries);
		ghost_link(f->h, g);
		f->h->nghosts++;
	}
	tbuf_init(&err);
	e = registry_add(f->srv->reg, &a, g, &g->entries, &err);
	if (e == NULL)
		log_warnx("standby: entry \"%.*s\" not kept: %.*s",
		    (int)a.namelen, a.name, (int)err.len, err.p);
	tbuf_free(&err);
	if (e != NULL)
		f->h->nheld++;
	else if (TAILQ_EMPTY(&g->entries))
		ghost_unlink(f->h, g);
	return 0;
}

static void
on_follow_read(evutil_socket_t fd, short ev, void *arg)
{
	struct follow *f = arg;
	uint32_t n;
	ssize_t r;

	if (!tbuf_reserve(&f->in, 65536))
		fatalx("standby: out of memory");
	r = read(fd, f->in.p + f->in.len, 65536);
	if (r == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		f->result = 1; /* the registry is gone */
		event_base_loopbreak(f->srv->base);
		return;
	}
	f->in.len += (size_t)r;
	while (f->in.len >= 4 && f->result == -2) {
		memcpy(&n, f->in.p, 4);
		n = ntohl(n);
		if (n <= STANDBY_FRAME_MAX(f->srv->lim) && f->in.len - 4 < n)
			break; /* not all of it yet */
		if (n > STANDBY_FRAME_MAX(f->srv->lim) ||
		    follow_frame(f, f->in.p + 4, n) == -1) {
			/* Only a live registry writes: one that died
			 * mid-frame is read as the end first.  Taking over
			 * would make two registries on one socket; leaving
			 * makes the registry, which sees the channel close,
			 * make a new standby. */
			log_warnx("standby: the registry sent what no registry "
			          "sends (a frame of %u bytes); leaving, not "
			          "taking over",
			    (unsigned)n);
			f->result = 0;
			break;
		}
		tbuf_consume(&f->in, 4 + n);
	}
	if (f->result != -2)
		event_base_loopbreak(f->srv->base);
}

int
standby_parse_fds(const char *arg, int fds[3])
{
	char *end;
	long v;
	int i;

	for (i = 0; i < 3; i++) {
		v = strtol(arg, &end, 10);
		if (end == arg || v < 3 || v > 65535 ||
		    *end != (i < 2 ? ',' : '\0'))
			return -1;
		fds[i] = (int)v;
		if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) == -1)
			return -1;
		arg = end + 1;
	}
	return 0;
}

/* The port file (open as fd) is removed: no name refers to it. */
static bool
port_file_gone(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_nlink == 0;
}

int
standby_follow(struct server *srv, int chan, int lock_fd)
{
	struct follow f;
	struct timeval tv = {STANDBY_GRACE_MS / 1000,
	    (STANDBY_GRACE_MS % 1000) * 1000};

	memset(&f, 0, sizeof f);
	f.srv = srv;
	f.chan = chan;
	f.result = -2;
	tbuf_init(&f.in);
	tlist_init(&f.w);
	evconnlistener_disable(srv->listener);
	if ((f.h = hold_new(srv)) == NULL ||
	    fcntl(chan, F_SETFL, O_NONBLOCK) == -1 ||
	    (f.ev = event_new(srv->base, chan, EV_READ | EV_PERSIST,
	         on_follow_read, &f)) == NULL)
		fatalx("standby: out of memory");
	srv->holdover = f.h;
	event_add(f.ev, NULL);
	event_base_dispatch(srv->base);
	event_free(f.ev);
	close(chan);
	tbuf_free(&f.in);
	tlist_free(&f.w);
	if (f.result == -2 || f.result == 0)
		return 0; /* a signal, or told to stop */
	if (port_file_gone(lock_fd)) {
		/* Nobody can find a registry through it any more, and the
		 * next starter makes a new one: this one would be a second. */
		log_info("standby: the registry is gone and so is its port "
		         "file: not taking over");
		return 0;
	}
	/* The registry is gone: accept what waits in the queue now. */
	evconnlistener_enable(srv->listener);
	if ((f.h->grace = evtimer_new(srv->base, on_grace_over, f.h)) == NULL)
		fatalx("standby: out of memory");
	evtimer_add(f.h->grace, &tv);
	return 1;
}
