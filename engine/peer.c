/*
 * The peer engine (peer.h): connection life cycle, I/O, framing, the
 * handshake, dispatch, requests and every limit.  Protocol commands live
 * in their owners' tables (local/handlers.c, gateway/gw.c, gateway/fed.c,
 * local/gwlink.c); this file knows none of them.
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "peer.h"

/* Bytes asked of the kernel per read; a peer's unframed input is bounded
 * by the message limit anyway. */
#define PEER_READ_CHUNK 16384
/* What a bufferevent's peer (TLS) may have framed in one turn. */
#define PEER_BEV_TURN (4 * PEER_READ_CHUNK)
/* Output buffer capacity a peer keeps between replies. */
#define PEER_KEEP_OUT 4096
/* A stream is fed while less than this is queued, in pieces this big. */
#define STREAM_LOW   (64 * 1024)
#define STREAM_PIECE (32 * 1024)
/* Scratch buffers larger than this are given back after use, so that
 * one large reply does not keep its memory for the daemon's life. */
#define SCRATCH_KEEP (256 * 1024)

struct preq {
	TAILQ_ENTRY(preq) link;
	struct peer *peer;
	int64_t serial;
	peer_reply_fn fn;
	void *arg;
	struct event *timer;
};

void
engine_default_limits(struct engine_limits *l)
{
	l->max_message = COMM_DEFAULT_MAX_MESSAGE;
	l->max_output = 8 * 1024 * 1024;
	l->max_burst = 64 * 1024 * 1024;
	l->handshake_ms = 10000;
	l->partial_ms = 10000;
	l->ping_idle_ms = 5000;
	l->ping_timeout_ms = 10000;
}

int64_t
engine_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

const struct cmd_entry *
cmd_table_find(const struct cmd_entry *t, size_t n, const char *name,
    size_t len)
{
	size_t lo = 0, hi = n, mid, tl;
	int c;

	/* By bytes and length: a name from a peer may hold a NUL. */
	while (lo < hi) {
		mid = (lo + hi) / 2;
		tl = strlen(t[mid].name);
		c = memcmp(t[mid].name, name, tl < len ? tl : len);
		if (c == 0)
			c = tl < len ? -1 : tl > len ? 1 : 0;
		if (c == 0)
			return &t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Is word e exactly s (a NUL inside the word does not end it)? */
static bool
word_is(const struct tl_elem *e, const char *s)
{
	size_t n = strlen(s);

	return e->len == n && memcmp(e->p, s, n) == 0;
}

/* A peer's word for a log line or a reason: quoted, escaped, bounded
 * (tbuf_add_quoted), so that no forged line or escape gets through. */
static const char *
shown(const struct tl_elem *e, char *buf, size_t len)
{
	struct tbuf t;

	tbuf_init(&t);
	tbuf_add_quoted(&t, e->p, e->len > 64 ? 64 : e->len);
	snprintf(buf, len, "%s", t.p != NULL ? t.p : "\"\"");
	tbuf_free(&t);
	return buf;
}

static void peer_read(evutil_socket_t, short, void *);
static void peer_writable(evutil_socket_t, short, void *);
static void stream_pump(struct peer *);
static void peer_resume(struct peer *);
static void peer_resume_now(struct peer *);

/* ---- life cycle -------------------------------------------------------- */

static void
preq_free(struct preq *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
}

static void
peer_free(struct peer *p)
{
	struct engine *e = p->eng;
	struct pending *q;
	struct preq *r;
	char why[300];

	/* Replies still owed to it go nowhere. */
	while ((q = TAILQ_FIRST(&p->pendings)) != NULL) {
		TAILQ_REMOVE(&p->pendings, q, link);
		q->peer = NULL;
	}
	if (p->ops != NULL && p->ops->gone != NULL)
		p->ops->gone(p, p->gone_why != NULL ? p->gone_why
		                : p->gone_nomem     ? "out of memory"
		                                    : NULL);
	/* What we asked of it is answered "no answer". */
	snprintf(why, sizeof why, "connection lost: %s",
	    p->gone_why != NULL ? p->gone_why
	    : p->gone_nomem     ? "out of memory"
	                        : "closed");
	while ((r = TAILQ_FIRST(&p->reqs)) != NULL) {
		TAILQ_REMOVE(&p->reqs, r, link);
		if (r->fn != NULL)
			r->fn(p, r->arg, -1, why, strlen(why));
		preq_free(r);
	}
	if (p->stream != NULL)
		p->stream->free(p->stream);
	if (p->ev_read != NULL)
		event_free(p->ev_read);
	if (p->ev_write != NULL)
		event_free(p->ev_write);
	if (p->bev != NULL)
		bufferevent_free(p->bev);
	else
		close(p->fd);
	tbuf_free(&p->in);
	tbuf_free(&p->out);
	tbuf_free(&p->held);
	tbuf_free(&p->stream_tail);
	free(p->gone_why);
	free(p);
	e->npeers--;
}

static void
engine_reap_body(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = arg;
	struct peer *p;

	while ((p = TAILQ_FIRST(&e->resume)) != NULL) {
		TAILQ_REMOVE(&e->resume, p, resume_link);
		p->resuming = false;
		if (p->state != PEER_DEAD)
			peer_resume_now(p);
	}
	while ((p = TAILQ_FIRST(&e->dead)) != NULL) {
		TAILQ_REMOVE(&e->dead, p, link);
		peer_free(p);
	}
	if (e->reaped != NULL)
		e->reaped(e->reaped_arg);
	engine_flush(e);
}

/* Callbacks count themselves in, so that output given inside them is
 * written when they end, not by a deferred run. */
static void
engine_reap(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = ((struct engine *)arg);

	e->depth++;
	engine_reap_body(fd, ev, arg);
	e->depth--;
}

/* A peer goes dead now (no more reads or writes) and is freed from the
 * reaper, so that a notification loop or a read loop that is still
 * walking lists never sees it vanish. */
static void
peer_kill(struct peer *p, const char *why)
{
	struct engine *e = p->eng;

	if (p->state == PEER_DEAD)
		return;
	p->state = PEER_DEAD;
	if (why != NULL && (p->gone_why = strdup(why)) == NULL)
		p->gone_nomem = true; /* the reason given then */
	if (p->ev_read != NULL)
		event_del(p->ev_read);
	if (p->ev_write != NULL)
		event_del(p->ev_write);
	if (p->bev != NULL)
		bufferevent_disable(p->bev, EV_READ | EV_WRITE);
	if (p->dirty) {
		TAILQ_REMOVE(&e->flush, p, flush_link);
		p->dirty = false;
	}
	if (p->resuming) {
		TAILQ_REMOVE(&e->resume, p, resume_link);
		p->resuming = false;
	}
	TAILQ_REMOVE(&e->peers, p, link);
	TAILQ_INSERT_TAIL(&e->dead, p, link);
	event_active(e->reaper, EV_TIMEOUT, 0);
}

void
peer_fail(struct peer *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->state == PEER_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (p->srv != NULL)
		log_warnx("peer %s uid %ld: %s; connection closed", p->addr,
		    (long)p->uid, msg);
	else
		log_warnx("peer %s: %s; connection closed", p->addr, msg);
	peer_kill(p, msg);
}

void
peer_close(struct peer *p)
{
	peer_kill(p, NULL);
}

/*
 * b (a message for p, or p's own buffer) failed for want of memory (the
 * library's policy, tbuf.h): p loses its connection, since a message cut
 * short must never be sent, and a peer we cannot write to is useless.
 * True when that happened.
 */
static bool
peer_nomem(struct peer *p, const struct tbuf *b)
{
	if (!b->failed)
		return false;
	peer_fail(p, "out of memory");
	return true;
}

/* ---- output ------------------------------------------------------------ */

size_t
peer_queued(const struct peer *p)
{
	size_t n = p->out.len - p->out_off + p->held.len;

	if (p->bev != NULL)
		n += evbuffer_get_length(bufferevent_get_output(p->bev));
	return n;
}

static size_t
out_hard(const struct engine_limits *l)
{
	return l->max_burst > l->max_output ? l->max_burst : l->max_output;
}

/* How long a peer's output may stay above max_output (peer.h). */
static int
out_stall_ms(const struct engine_limits *l)
{
	return l->ping_idle_ms > 0 ? l->ping_idle_ms + l->ping_timeout_ms
	       : l->partial_ms > 0 ? l->partial_ms
	                           : 10000;
}

/*
 * May p be given `more` bytes?  A peer that never reads would make us
 * hold its output for ever; it loses its connection instead.  Everything
 * counts: replies, events, what waits behind a stream.  Two bounds: a
 * burst (a gateway's resync, a hundred thousand registrations at once)
 * may take the queue past max_output to a peer that reads, for at most
 * the stall time (peer_check); past max_burst the peer goes at once, so
 * one that does not read never holds more.  One message larger than the
 * cap still goes to a peer with nothing queued (it is at most a message,
 * or a piece of a stream: bounded).
 */
static bool
peer_out_ok(struct peer *p, size_t more)
{
	size_t queued;

	if (p->state == PEER_DEAD)
		return false;
	queued = peer_queued(p);
	if (queued > 0 && queued + more > out_hard(p->lim)) {
		peer_fail(p,
		    "not reading: %zu bytes already queued, %zu more "
		    "(limit %zu)",
		    queued, more, out_hard(p->lim));
		return false;
	}
	if (queued > 0 && queued + more > p->lim->max_output &&
	    p->over_since == 0)
		p->over_since = engine_now();
	return true;
}

/* p->out has new bytes: write them before this callback returns. */
static void
peer_out_added(struct peer *p)
{
	struct engine *e = p->eng;

	if (!p->dirty) {
		/* Outside the engine's own callbacks (a link opened at
		 * start, a timer of the owner's) nobody flushes at the end:
		 * the reaper's deferred run does. */
		if (e->depth == 0 && TAILQ_EMPTY(&e->flush))
			event_active(e->reaper, EV_TIMEOUT, 0);
		p->dirty = true;
		TAILQ_INSERT_TAIL(&e->flush, p, flush_link);
	}
}

/*
 * Queue b (one of the engine's scratch buffers).  While a stream is
 * being written, other messages wait behind it.  A big message to a peer
 * with nothing queued is not copied: the peer takes b's memory and b
 * gets the peer's (empty) buffer; peer_flush gives the big one back.
 */
static void
peer_write(struct peer *p, struct tbuf *b)
{
	struct tbuf t;

	if (peer_nomem(p, b) || !peer_out_ok(p, b->len))
		return;
	if (p->stream != NULL) {
		tbuf_add(&p->held, b->p, b->len);
		peer_nomem(p, &p->held);
		return;
	}
	if (p->out.len == 0 && b->len > PEER_KEEP_OUT) {
		t = p->out;
		p->out = *b;
		*b = t;
		tbuf_reset(b);
	} else {
		tbuf_add(&p->out, b->p, b->len);
		if (peer_nomem(p, &p->out))
			return;
	}
	peer_out_added(p);
}

static void
out_done(struct peer *p)
{
	struct engine *e = p->eng;

	/* Keep a small buffer for the next reply.  A big one becomes the
	 * engine's output scratch if that is smaller (so the next big reply
	 * is formatted without growing a buffer), else it is freed. */
	if (p->out.cap > PEER_KEEP_OUT && p->out.cap > e->out.cap &&
	    p->out.cap <= SCRATCH_KEEP) {
		struct tbuf t = e->out;

		e->out = p->out;
		p->out = t;
		tbuf_reset(&e->out);
	}
	if (p->out.cap > PEER_KEEP_OUT)
		tbuf_free(&p->out);
	else
		tbuf_reset(&p->out);
	p->out_off = 0;
}

/* Write what the kernel takes now; arm the write event for the rest. */
static void
peer_flush(struct peer *p)
{
	ssize_t n;

	if (p->bev != NULL) {
		if (p->out.len > p->out_off)
			bufferevent_write(p->bev, p->out.p + p->out_off,
			    p->out.len - p->out_off);
		out_done(p);
		return;
	}
	while (p->out_off < p->out.len) {
		n = send(p->fd, p->out.p + p->out_off, p->out.len - p->out_off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			p->out_off += (size_t)n;
			p->last_tx = engine_now();
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* What was written goes from the front, or a reader
			 * that keeps up slowly would grow the buffer for
			 * ever behind what is queued (the cap counts only
			 * the unwritten part). */
			if (p->out_off >= PEER_KEEP_OUT &&
			    p->out_off >= (p->out.len - p->out_off)) {
				tbuf_consume(&p->out, p->out_off);
				p->out_off = 0;
			}
			/* libevent fails only for want of memory here; a
			 * peer whose output would wait for ever goes. */
			if (!event_pending(p->ev_write, EV_WRITE, NULL) &&
			    event_add(p->ev_write, NULL) == -1)
				peer_fail(p, "out of memory");
			return;
		}
		log_debug("peer %s: write: %s", p->addr, strerror(errno));
		peer_kill(p, "write failed");
		return;
	}
	out_done(p);
	if (event_pending(p->ev_write, EV_WRITE, NULL))
		event_del(p->ev_write);
	if (p->stream == NULL)
		return;
	/* One piece of a listing per turn of the loop, so that a reader as
	 * fast as the loopback does not keep everyone else waiting until
	 * the whole of it is written. */
	if (p->pump_now) {
		p->pump_now = false;
		stream_pump(p);
	} else if (event_add(p->ev_write, NULL) == -1)
		peer_fail(p, "out of memory");
}

void
engine_flush(struct engine *e)
{
	struct peer *p;

	while ((p = TAILQ_FIRST(&e->flush)) != NULL) {
		TAILQ_REMOVE(&e->flush, p, flush_link);
		p->dirty = false;
		if (p->state != PEER_DEAD)
			peer_flush(p);
	}
	/* A big reply's scratch is not kept for the daemon's life. */
	if (e->result.cap > SCRATCH_KEEP)
		tbuf_free(&e->result);
	if (e->rbuf.cap > SCRATCH_KEEP)
		tbuf_free(&e->rbuf);
	if (e->out.cap > SCRATCH_KEEP)
		tbuf_free(&e->out);
}

static void
peer_writable_body(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;

	p->pump_now = true;
	if (p->state != PEER_DEAD)
		peer_flush(p);
	p->pump_now = false;
	engine_flush(p->eng);
}

static void
peer_writable(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = ((struct peer *)arg)->eng;

	e->depth++;
	peer_writable_body(fd, ev, arg);
	e->depth--;
}

/*
 * One change is told to every watcher of it in the same words; only the
 * serial differs from one connection to the next.  The words of the last
 * notification and its message after the serial are kept (per thread, so
 * any number of engines may share them), and each further watcher costs
 * a comparison and a copy.  Notifications above NOTE_CACHE_MAX bytes (a
 * Search/Continuous snapshot, sent once) are formatted as they come.
 */
#define NOTE_CACHE_MAX 4096
#define NOTE_HEAD      "{async "

static __thread struct tbuf note_words; /* n, then each length and word */
static __thread struct tbuf note_tail;  /* " PAYLOAD}\n" */

static size_t
word_len(const char *const *words, const size_t *lens, size_t i)
{
	return lens != NULL ? lens[i] : strlen(words[i]);
}

static bool
note_same(const char *const *words, const size_t *lens, size_t n)
{
	const char *k = note_words.p, *end;
	size_t i, len;

	/* Nothing kept yet (the buffer has no memory at all). */
	if (k == NULL || note_words.len < sizeof len)
		return false;
	end = k + note_words.len;
	memcpy(&len, k, sizeof len);
	k += sizeof len;
	if (len != n)
		return false;
	for (i = 0; i < n; i++) {
		if ((size_t)(end - k) < sizeof len)
			return false;
		memcpy(&len, k, sizeof len);
		k += sizeof len;
		if (len != word_len(words, lens, i) ||
		    (size_t)(end - k) < len || memcmp(k, words[i], len) != 0)
			return false;
		k += len;
	}
	return k == end;
}

static void
note_keep(struct engine *e, const char *const *words, const size_t *lens,
    size_t n)
{
	size_t i, len;

	/* The message with serial 0 is NOTE_HEAD "0" and the tail. */
	tbuf_reset(&e->out);
	comm_format_message(&e->out, "async", 0, e->payload.p, e->payload.len);
	tbuf_reset(&note_tail);
	if (e->payload.failed || e->out.failed) {
		/* Out of memory: nothing is kept, and the caller sees the
		 * tail failed. */
		tbuf_reset(&note_words);
		note_tail.failed = true;
		return;
	}
	tbuf_add(&note_tail, e->out.p + sizeof NOTE_HEAD,
	    e->out.len - sizeof NOTE_HEAD);
	tbuf_reset(&note_words);
	tbuf_add(&note_words, &n, sizeof n);
	for (i = 0; i < n; i++) {
		len = word_len(words, lens, i);
		tbuf_add(&note_words, &len, sizeof len);
		tbuf_add(&note_words, words[i], len);
	}
	if (e->payload.failed || e->out.failed || note_tail.failed ||
	    note_words.failed) {
		/* Out of memory: nothing is kept, and the caller sees the
		 * tail failed. */
		tbuf_reset(&note_words);
		tbuf_reset(&note_tail);
		note_tail.failed = true;
	}
}

void
peer_format_async(struct peer *p, struct tbuf *out, const char *const *words,
    const size_t *lens, size_t n)
{
	struct engine *e = p->eng;

	tbuf_reset(&e->payload);
	comm_format_command(&e->payload, words, lens, n);
	if (e->payload.failed)
		out->failed = true;
	else
		comm_format_message(out, "async", ++p->out_serial, e->payload.p,
		    e->payload.len);
}

void
peer_send_async(struct peer *p, const char *const *words, const size_t *lens,
    size_t n)
{
	struct engine *e = p->eng;
	size_t i, total = 0, need;
	char *o;

	if (p->state != PEER_READY)
		return;
	for (i = 0; i < n; i++)
		total += word_len(words, lens, i);
	if (total > NOTE_CACHE_MAX || p->stream != NULL) {
		tbuf_reset(&e->payload);
		comm_format_command(&e->payload, words, lens, n);
		tbuf_reset(&e->out);
		if (!e->payload.failed)
			comm_format_message(&e->out, "async", ++p->out_serial,
			    e->payload.p, e->payload.len);
		else
			e->out.failed = true;
		peer_write(p, &e->out);
		return;
	}
	if (!note_same(words, lens, n)) {
		tbuf_reset(&e->payload);
		comm_format_command(&e->payload, words, lens, n);
		note_keep(e, words, lens, n);
		if (peer_nomem(p, &note_tail))
			return;
	}
	need = sizeof NOTE_HEAD + TL_INT_MAX + note_tail.len;
	if (!peer_out_ok(p, need))
		return;
	/* NOTE_HEAD, the serial, the tail: straight into the peer's buffer. */
	if (!tbuf_reserve(&p->out, need)) {
		peer_nomem(p, &p->out);
		return;
	}
	o = p->out.p + p->out.len;
	memcpy(o, NOTE_HEAD, sizeof NOTE_HEAD - 1);
	o += sizeof NOTE_HEAD - 1;
	o += tl_format_int(o, ++p->out_serial);
	memcpy(o, note_tail.p, note_tail.len);
	o += note_tail.len;
	*o = '\0';
	p->out.len = (size_t)(o - p->out.p);
	peer_out_added(p);
}

/*
 * A big reply whose result is a list, to a peer with nothing queued:
 * written now, with sendmsg (MSG_NOSIGNAL: a peer that went must not
 * signal the whole process), from the result itself (the message is head,
 * result, tail), so its bytes are not copied into an output buffer.  What
 * the kernel does not take is queued as usual.  False when it does not
 * apply; the caller formats the reply.
 */
static bool
peer_reply_direct(struct peer *p, const char *kind, int64_t serial,
    const struct tbuf *result)
{
	struct engine *e = p->eng;
	struct iovec iov[3];
	struct msghdr mh;
	size_t total, done, i;
	ssize_t n;

	if (p->bev != NULL || p->out.len != 0 || p->stream != NULL)
		return false;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = iov;
	mh.msg_iovlen = 3;
	tbuf_reset(&e->out);
	tbuf_reset(&e->payload);
	if (!comm_format_reply_parts(&e->out, &e->payload, kind, serial,
	        result->p, result->len))
		return false;
	if (peer_nomem(p, &e->out) || peer_nomem(p, &e->payload))
		return true;
	total = e->out.len + result->len + e->payload.len;
	if (!peer_out_ok(p, total))
		return true; /* a failed peer: nothing more */
	iov[0].iov_base = e->out.p;
	iov[0].iov_len = e->out.len;
	iov[1].iov_base = result->p;
	iov[1].iov_len = result->len;
	iov[2].iov_base = e->payload.p;
	iov[2].iov_len = e->payload.len;
	do
		n = sendmsg(p->fd, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
		log_debug("peer %s: write: %s", p->addr, strerror(errno));
		peer_kill(p, "write failed");
		return true;
	}
	done = n > 0 ? (size_t)n : 0;
	if (done == total)
		return true;
	/* Queue the rest; the flush arms the write event. */
	for (i = 0; i < 3; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		tbuf_add(&p->out, (const char *)iov[i].iov_base + done,
		    iov[i].iov_len - done);
		done = 0;
	}
	/* Part of it is out: the rest must follow whole, or nothing. */
	if (peer_nomem(p, &p->out))
		return true;
	peer_out_added(p);
	return true;
}

static void
peer_reply(struct peer *p, const char *kind, int64_t serial, int code,
    const struct tbuf *result)
{
	struct engine *e = p->eng;
	bool listed;

	/* A result the handler wrote as a list (Search, List, ...) is quoted
	 * without scanning it again.  Only the engine's own result buffer is
	 * asked: other callers may hand over a tbuf made by hand. */
	listed = result == &e->result && result->listed == result->len;
	if (listed && code == 0 && result->len > PEER_KEEP_OUT &&
	    peer_reply_direct(p, kind, serial, result))
		return;
	tbuf_reset(&e->out);
	if (listed)
		comm_format_reply_list(&e->out, kind, serial, code, result->p,
		    result->len, NULL);
	else
		comm_format_reply(&e->out, kind, serial, code, result->p,
		    result->len, NULL);
	peer_write(p, &e->out);
}

/* ---- replies in pieces ------------------------------------------------- */

int
peer_reply_stream(struct cmd_ctx *c, struct peer_stream *s)
{
	struct peer *p = c->peer;
	struct engine *e = p->eng;

	if (c->kind == NULL || p->state != PEER_READY || p->stream != NULL) {
		/* async: nobody reads the reply.  (A second stream cannot
		 * start: reading pauses while one is written.) */
		s->free(s);
		return CMD_PENDING;
	}
	tbuf_reset(&e->out);
	tbuf_reset(&p->stream_tail);
	if (s->messages)
		/* The pieces are messages of their own; the reply, whole,
		 * comes after them. */
		comm_format_reply(&p->stream_tail, c->kind, c->serial, 0,
		    c->result->p != NULL ? c->result->p : "", c->result->len,
		    NULL);
	else {
		comm_format_reply_parts(&e->out, &p->stream_tail, c->kind,
		    c->serial, "a b", 3);
		if (!peer_nomem(p, &p->stream_tail))
			peer_write(p, &e->out);
	}
	peer_nomem(p, &p->stream_tail);
	if (p->state == PEER_DEAD) {
		s->free(s);
		return CMD_PENDING;
	}
	p->stream = s;
	p->stream_first = true;
	/* No more requests are read until the reply is written: its pieces
	 * are what the peer's reading paces. */
	p->paused = true;
	if (p->ev_read != NULL)
		event_del(p->ev_read);
	else
		bufferevent_disable(p->bev, EV_READ);
	stream_pump(p);
	return CMD_PENDING;
}

/* Feed the stream while little is queued. */
static void
stream_pump(struct peer *p)
{
	struct engine *e = p->eng;
	struct peer_stream *s;
	bool last = false;

	while (p->stream != NULL && p->state != PEER_DEAD &&
	       p->out.len - p->out_off < STREAM_LOW &&
	       (p->bev == NULL || peer_queued(p) - p->held.len < STREAM_LOW)) {
		s = p->stream;
		tbuf_reset(&e->piece);
		last = s->next(s, &e->piece, STREAM_PIECE);
		if (peer_nomem(p, &e->piece))
			break;
		if (e->piece.len > 0) {
			if (!p->stream_first && !s->messages)
				tbuf_addc(&p->out, ' ');
			tbuf_add(&p->out, e->piece.p, e->piece.len);
			p->stream_first = false;
		}
		if (last) {
			tbuf_add(&p->out, p->stream_tail.p, p->stream_tail.len);
			p->stream = NULL;
			s->free(s);
			if (p->held.len > 0) {
				tbuf_add(&p->out, p->held.p, p->held.len);
				tbuf_free(&p->held);
			}
		}
		if (peer_nomem(p, &p->out))
			break;
		peer_out_added(p);
		if (p->bev != NULL) {
			peer_flush(p);
			if (p->stream != NULL)
				continue;
		}
	}
	if (e->piece.cap > SCRATCH_KEEP)
		tbuf_free(&e->piece);
	if (p->stream == NULL && p->paused && p->state != PEER_DEAD)
		peer_resume(p);
}

/* ---- requests ---------------------------------------------------------- */

static void
preq_timeout_body(evutil_socket_t fd, short ev, void *arg)
{
	struct preq *q = arg;
	struct peer *p = q->peer;
	static const char why[] = "no answer in time";

	TAILQ_REMOVE(&p->reqs, q, link);
	if (q->fn != NULL)
		q->fn(p, q->arg, -1, why, sizeof why - 1);
	preq_free(q);
	engine_flush(p->eng);
}

static void
preq_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = ((struct preq *)arg)->peer->eng;

	e->depth++;
	preq_timeout_body(fd, ev, arg);
	e->depth--;
}

static struct preq *
preq_send(struct peer *p, const char *const *words, const size_t *lens,
    size_t n, int timeout_ms, peer_reply_fn fn, void *arg)
{
	struct engine *e = p->eng;
	struct preq *q;
	struct timeval tv;

	if (p->state == PEER_DEAD)
		return NULL;
	if ((q = calloc(1, sizeof *q)) == NULL) {
		peer_fail(p, "out of memory for a request");
		return NULL;
	}
	q->peer = p;
	q->serial = ++p->out_serial;
	q->fn = fn;
	q->arg = arg;
	if (timeout_ms > 0) {
		q->timer = evtimer_new(e->base, preq_timeout, q);
		if (q->timer == NULL) {
			free(q);
			peer_fail(p, "cannot make a timer");
			return NULL;
		}
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		evtimer_add(q->timer, &tv);
	}
	TAILQ_INSERT_TAIL(&p->reqs, q, link);
	tbuf_reset(&e->payload);
	comm_format_command(&e->payload, words, lens, n);
	tbuf_reset(&e->out);
	comm_format_message(&e->out, "send", q->serial, e->payload.p,
	    e->payload.len);
	peer_write(p, &e->out);
	return q;
}

struct preq *
peer_request(struct peer *p, const char *const *words, const size_t *lens,
    size_t n, int timeout_ms, peer_reply_fn fn, void *arg)
{
	/* A connecting side may ask at once: comm queues messages right
	 * behind its offer. */
	if (p->state != PEER_READY &&
	    (p->state != PEER_HANDSHAKE || p->accepted))
		return NULL;
	return preq_send(p, words, lens, n, timeout_ms, fn, arg);
}

void
peer_request_cancel(struct preq *q)
{
	if (q == NULL)
		return;
	TAILQ_REMOVE(&q->peer->reqs, q, link);
	preq_free(q);
}

/* A reply or callback message: answer the request it is for. */
static void
peer_replied(struct peer *p, int64_t serial, const struct tl_elem *payload)
{
	struct engine *e = p->eng;
	struct tl_elem result;
	struct preq *q;
	const char *why;
	int code;

	TAILQ_FOREACH(q, &p->reqs, link)
		if (q->serial == serial)
			break;
	if (q == NULL)
		return; /* a ping's answer, or one we gave up on */
	why = NULL;
	if (tlist_parse(&e->words, payload->p, payload->len, &why) == -1 ||
	    comm_parse_return(&e->words, &code, &result) == -1) {
		if (why != NULL && strcmp(why, TL_NOMEM) == 0)
			peer_fail(p, "out of memory");
		else
			peer_fail(p, "malformed reply (want a return command)");
		return;
	}
	TAILQ_REMOVE(&p->reqs, q, link);
	if (q->fn != NULL)
		q->fn(p, q->arg, code != 0 ? 1 : 0, result.p, result.len);
	preq_free(q);
}

/* ---- what the peer asks ------------------------------------------------ */

struct pending *
pending_new(struct cmd_ctx *c, void *arg)
{
	struct pending *q;

	if ((q = calloc(1, sizeof *q)) == NULL) {
		tbuf_oom("out of memory");
		return NULL;
	}
	q->peer = c->peer;
	q->serial = c->serial;
	q->kind = c->kind;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&c->peer->pendings, q, link);
	return q;
}

void
pending_reply(struct pending *q, int code, const char *result, size_t len)
{
	struct peer *p = q->peer;
	struct tbuf r;

	if (p != NULL) {
		TAILQ_REMOVE(&p->pendings, q, link);
		if (q->kind != NULL && p->state == PEER_READY) {
			memset(&r, 0, sizeof r);
			r.p = (char *)(uintptr_t)result;
			r.len = len;
			peer_reply(p, q->kind, q->serial, code, &r);
			engine_flush(p->eng);
		}
	}
	free(q);
}

void
pending_ctx(const struct pending *q, struct cmd_ctx *c, struct tbuf *result)
{
	memset(c, 0, sizeof *c);
	c->peer = q->peer;
	c->result = result;
	c->serial = q->serial;
	c->kind = q->kind;
}

void
pending_forget(struct pending *q)
{
	if (q->peer != NULL)
		TAILQ_REMOVE(&q->peer->pendings, q, link);
	free(q);
}

/* Run one literal command; result holds the reply text. */
static int
peer_exec(struct peer *p, const struct tlist *w)
{
	struct engine *e = p->eng;
	const struct cmd_entry *c;
	struct cmd_ctx ctx;
	int nargs;

	tbuf_reset(&e->result);
	if (w->n == 0)
		return 0; /* Tcl evaluates an empty script to "": a ping */
	c = p->ops != NULL && p->ops->find != NULL
	        ? p->ops->find(w->v[0].p, w->v[0].len)
	        : NULL;
	if (c == NULL) {
		/* Tcl's own words, which Tcl clients may match on. */
		tbuf_adds(&e->result, "invalid command name \"");
		tbuf_add(&e->result, w->v[0].p, w->v[0].len);
		tbuf_addc(&e->result, '"');
		return 1;
	}
	nargs = (int)w->n - 1;
	if (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args)) {
		tbuf_printf(&e->result, "wrong # args: should be \"%s%s%s\"",
		    c->name, c->usage[0] ? " " : "", c->usage);
		return 1;
	}
	ctx.peer = p;
	ctx.srv = p->srv;
	ctx.words = w;
	ctx.result = &e->result;
	ctx.serial = e->cur_serial;
	ctx.kind = e->cur_kind;
	return c->exec(&ctx);
}

/* A serial: a whole decimal number that fits, nothing else. */
static int
parse_serial(const struct tl_elem *el, int64_t *v)
{
	char *end;
	long long n;

	if (el->len == 0 || el->len > 20)
		return -1;
	errno = 0;
	n = strtoll(el->p, &end, 10);
	if (errno != 0 || end != el->p + el->len)
		return -1;
	*v = n;
	return 0;
}

static void
peer_message(struct peer *p, const struct tlist *m)
{
	struct engine *e = p->eng;
	const struct tl_elem *kind;
	char word[300];
	int64_t serial;
	int code;
	bool is_send, is_async, is_command;

	e->messages++;
	if (m->n == 0)
		return;
	kind = &m->v[0];
	is_send = word_is(kind, "send");
	is_async = word_is(kind, "async");
	is_command = word_is(kind, "command");
	if (!is_send && !is_async && !is_command && !word_is(kind, "reply") &&
	    !word_is(kind, "callback")) {
		/* vers, and unknown kinds: comm discards them. */
		log_debug("peer %s: ignored message kind %s", p->addr,
		    shown(kind, word, sizeof word));
		return;
	}
	if (m->n != 3) {
		peer_fail(p, "%s message with %zu words instead of 3",
		    shown(kind, word, sizeof word), m->n);
		return;
	}
	if (parse_serial(&m->v[1], &serial) == -1) {
		peer_fail(p, "message serial %s is not a number",
		    shown(&m->v[1], word, sizeof word));
		return;
	}
	if (!is_send && !is_async && !is_command) {
		peer_replied(p, serial, &m->v[2]);
		return;
	}
	e->cur_serial = serial;
	e->cur_kind = is_async ? NULL : is_send ? "reply" : "callback";
	if (comm_payload_command(m->v[2].p, m->v[2].len, &e->frags, &e->scratch,
	        &e->words, &e->err) == -1) {
		tbuf_reset(&e->result);
		if (e->err.failed)
			e->result.failed = true;
		else
			tbuf_add(&e->result, e->err.p, e->err.len);
		code = 1;
	} else
		code = peer_exec(p, &e->words);
	if (code == CMD_PENDING || code == CMD_STREAM)
		return;
	if (e->result.failed) {
		/* A result cut short for want of memory (the library's
		 * policy) is not the answer: the error is. */
		tbuf_reset(&e->result);
		tbuf_adds(&e->result, "out of memory");
		code = 1;
	}
	if (code == 1 && log_level() >= LOG_LVL_DEBUG) {
		struct tl_elem r = {e->result.p, e->result.len};

		log_debug("peer %s: error reply: %s", p->addr,
		    shown(&r, word, sizeof word));
	}
	if (!is_async)
		peer_reply(p, is_send ? "reply" : "callback", serial, code,
		    &e->result);
}

/* ---- the handshake ----------------------------------------------------- */

static void
peer_set_ready(struct peer *p)
{
	p->state = PEER_READY;
	if (p->ops != NULL && p->ops->ready != NULL)
		p->ops->ready(p);
}

/*
 * The offer "{3 2} PORT": a list of versions, each a whole number, one of
 * them 3, and a port.  Anything else is refused: an offer must say
 * exactly what it means.
 */
static void
peer_offer(struct peer *p, const struct tlist *line)
{
	struct engine *e = p->eng;
	struct tlist vers;
	const char *err;
	int64_t v, port;
	size_t i;
	bool ok = false, bad = false;

	tlist_init(&vers);
	if (line->n == 2 &&
	    tlist_parse(&vers, line->v[0].p, line->v[0].len, &err) == -1 &&
	    strcmp(err, TL_NOMEM) == 0) {
		tlist_free(&vers);
		peer_fail(p, "out of memory");
		return;
	}
	if (line->n == 2 && vers.n > 0) {
		for (i = 0; i < vers.n; i++) {
			if (strlen(vers.v[i].p) != vers.v[i].len ||
			    parse_serial(&vers.v[i], &v) == -1)
				bad = true;
			else if (v == 3)
				ok = true;
		}
	}
	tlist_free(&vers);
	if (!ok || bad || parse_serial(&line->v[1], &port) == -1 || port < 0 ||
	    port > 65535) {
		peer_fail(p, "first line is not a comm protocol offer "
		             "with version 3");
		return;
	}
	p->remote_port = (int)port;
	tbuf_reset(&e->out);
	comm_format_vers(&e->out, 3);
	peer_write(p, &e->out);
	if (p->state != PEER_DEAD)
		peer_set_ready(p);
}

/* Our offer's answer: {vers 3}. */
static void
peer_vers(struct peer *p, const struct tlist *m)
{
	if (m->n != 2 || !word_is(&m->v[0], "vers") ||
	    !word_is(&m->v[1], "3")) {
		peer_fail(p, "peer did not answer the comm handshake with "
		             "{vers 3}");
		return;
	}
	peer_set_ready(p);
}

/* ---- input ------------------------------------------------------------- */

/*
 * Frame and run every complete message in buf[0..len); returns how many
 * bytes were used (the rest is an incomplete message, or waits while a
 * stream is written).
 */
static size_t
peer_input(struct peer *p, const char *buf, size_t len)
{
	struct engine *e = p->eng;
	enum comm_frame_status st;
	const char *err = NULL;
	size_t off = 0, consumed;
	bool offer;

	while (p->state != PEER_DEAD && !p->paused && off < len) {
		offer = p->state == PEER_HANDSHAKE && p->accepted;
		if (offer)
			st = comm_frame_line(&p->fr, buf + off, len - off,
			    &consumed, &e->msg, &err);
		else
			st = comm_frame_next(&p->fr, buf + off, len - off,
			    &consumed, &e->msg, &err);
		if (st == COMM_FRAME_MORE)
			break;
		if (st == COMM_FRAME_ERROR) {
			peer_fail(p, "bad message: %s", err);
			break;
		}
		off += consumed;
		if (offer)
			peer_offer(p, &e->msg);
		else if (p->state == PEER_HANDSHAKE)
			peer_vers(p, &e->msg);
		else
			peer_message(p, &e->msg);
	}
	return off;
}

/* Keep the unused tail of what was read in p's own buffer. */
static void
peer_keep(struct peer *p, struct tbuf *b, size_t used)
{
	size_t i;

	if (p->state == PEER_DEAD)
		return;
	/* Blank space after the last message (a CR of CRLF, blank lines)
	 * is no message begun: dropped, with the framer's scan of it. */
	for (i = used; i < b->len && strchr(" \t\r\n", b->p[i]) != NULL &&
	               b->p[i] != '\0';
	     i++)
		;
	if (i == b->len && i > used) {
		used = b->len;
		comm_framer_init(&p->fr, p->lim->max_message);
	}
	if (b == &p->in) {
		tbuf_consume(&p->in, used);
		if (p->in.len == 0)
			tbuf_free(&p->in);
	} else if (used < b->len) {
		tbuf_add(&p->in, b->p + used, b->len - used);
		if (peer_nomem(p, &p->in))
			return;
	}
	if (p->in.len == 0)
		p->partial_since = 0;
	else if (p->partial_since == 0 || used > 0)
		p->partial_since = engine_now();
}

static void
peer_got(struct peer *p, struct tbuf *b)
{
	size_t used;

	p->last_rx = engine_now();
	p->ping_sent = 0;
	used = peer_input(p, b->p, b->len);
	peer_keep(p, b, used);
}

/*
 * Read once.  A peer with no partial message left over reads into the
 * engine's buffer, and only an incomplete tail is kept in its own: idle
 * connections then hold no input memory at all.
 */
static void
peer_read_body(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;
	struct engine *e = p->eng;
	struct tbuf *b = p->in.len > 0 ? &p->in : &e->rbuf;
	ssize_t n;

	if (b == &e->rbuf)
		tbuf_reset(b);
	if (!tbuf_reserve(b, PEER_READ_CHUNK)) {
		peer_nomem(p, b);
		engine_flush(e);
		return;
	}
	n = recv(p->fd, b->p + b->len, PEER_READ_CHUNK, 0);
	if (n == -1 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0)
			log_debug("peer %s: closed the connection", p->addr);
		else
			log_debug("peer %s: read: %s", p->addr,
			    strerror(errno));
		peer_kill(p,
		    n == 0 ? "the peer closed the connection" : "read failed");
		engine_flush(e);
		return;
	}
	b->len += (size_t)n;
	b->p[b->len] = '\0';
	peer_got(p, b);
	engine_flush(e);
}

static void
peer_read(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = ((struct peer *)arg)->eng;

	e->depth++;
	peer_read_body(fd, ev, arg);
	e->depth--;
}

/* The same for a bufferevent: everything it holds. */
static void
peer_bev_read_body(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;
	struct engine *e = p->eng;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct tbuf *b = p->in.len > 0 ? &p->in : &e->rbuf;
	size_t n, turn = 0;

	if (p->state == PEER_DEAD || p->paused)
		return;
	if (b == &e->rbuf)
		tbuf_reset(b);
	while ((n = evbuffer_get_length(in)) > 0 && p->state != PEER_DEAD) {
		/* A peer's share of a turn of the loop, as a socket's one
		 * read is: the rest on the next turn, after the others. */
		if (turn >= PEER_BEV_TURN) {
			bufferevent_trigger(bev, EV_READ,
			    BEV_TRIG_IGNORE_WATERMARKS |
			        BEV_TRIG_DEFER_CALLBACKS);
			break;
		}
		turn += n > PEER_READ_CHUNK ? PEER_READ_CHUNK : n;
		if (n > PEER_READ_CHUNK)
			n = PEER_READ_CHUNK;
		if (!tbuf_reserve(b, n)) {
			peer_nomem(p, b);
			break;
		}
		evbuffer_remove(in, b->p + b->len, n);
		b->len += n;
		b->p[b->len] = '\0';
		peer_got(p, b);
		if (p->paused)
			break;
		b = p->in.len > 0 ? &p->in : &e->rbuf;
		if (b == &e->rbuf)
			tbuf_reset(b);
	}
	engine_flush(e);
}

static void
peer_bev_read(struct bufferevent *bev, void *arg)
{
	struct engine *e = ((struct peer *)arg)->eng;

	e->depth++;
	peer_bev_read_body(bev, arg);
	e->depth--;
}

static void
peer_bev_write_body(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;

	p->last_tx = engine_now();
	if (p->state != PEER_DEAD && p->stream != NULL)
		stream_pump(p);
	engine_flush(p->eng);
}

static void
peer_bev_write(struct bufferevent *bev, void *arg)
{
	struct engine *e = ((struct peer *)arg)->eng;

	e->depth++;
	peer_bev_write_body(bev, arg);
	e->depth--;
}

static void
peer_bev_event_body(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;
	char why[300];

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	snprintf(why, sizeof why, "%s",
	    what & BEV_EVENT_EOF ? "the peer closed the connection"
	                         : "connection error");
	if (p->ops != NULL && p->ops->bev_error != NULL)
		p->ops->bev_error(p, what, why, sizeof why);
	peer_kill(p, why);
	engine_flush(p->eng);
}

static void
peer_bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct engine *e = ((struct peer *)arg)->eng;

	e->depth++;
	peer_bev_event_body(bev, what, arg);
	e->depth--;
}

/* A stream is written: read again, first what waited, from the engine's
 * deferred event (never from inside a callback that may be framing
 * another peer's input in the engine's read buffer). */
static void
peer_resume(struct peer *p)
{
	struct engine *e = p->eng;

	if (!p->resuming) {
		p->resuming = true;
		TAILQ_INSERT_TAIL(&e->resume, p, resume_link);
		event_active(e->reaper, EV_TIMEOUT, 0);
	}
}

static void
peer_resume_now(struct peer *p)
{
	struct engine *e = p->eng;

	p->paused = false;
	if (p->in.len > 0) {
		/* Run it from a copy: p->in may be replaced meanwhile. */
		tbuf_reset(&e->rbuf);
		tbuf_add(&e->rbuf, p->in.p, p->in.len);
		if (peer_nomem(p, &e->rbuf))
			return;
		tbuf_free(&p->in);
		p->partial_since = 0;
		peer_keep(p, &e->rbuf, peer_input(p, e->rbuf.p, e->rbuf.len));
	}
	if (p->state == PEER_DEAD || p->paused)
		return;
	if (p->ev_read != NULL) {
		if (event_add(p->ev_read, NULL) == -1)
			peer_fail(p, "out of memory");
	} else {
		bufferevent_enable(p->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_input(p->bev)) > 0)
			peer_bev_read(p->bev, p);
	}
}

/* ---- deadlines and pings ----------------------------------------------- */

/* `send N {}`: answered by any comm peer, nothing run.  The answer is
 * not matched: any byte that comes back is a sign of life. */
static void
peer_ping(struct peer *p)
{
	struct engine *e = p->eng;

	tbuf_reset(&e->out);
	comm_format_message(&e->out, "send", ++p->out_serial, "{}", 2);
	peer_write(p, &e->out);
}

static void
peer_check(struct peer *p, int64_t now)
{
	const struct engine_limits *l = p->lim;
	int64_t quiet = now - p->last_rx;

	if (p->state == PEER_HANDSHAKE) {
		if (l->handshake_ms <= 0 || now - p->born < l->handshake_ms)
			return;
		if (l->handshake_ms % 1000 == 0)
			peer_fail(p, "no %s within %d s",
			    p->accepted ? "protocol offer"
			                : "answer to our offer",
			    l->handshake_ms / 1000);
		else
			peer_fail(p, "no %s within %d ms",
			    p->accepted ? "protocol offer"
			                : "answer to our offer",
			    l->handshake_ms);
		return;
	}
	if (p->over_since != 0) {
		size_t q = peer_queued(p);

		if (q <= l->max_output)
			p->over_since = 0;
		else if (now - p->over_since >= out_stall_ms(l)) {
			peer_fail(p,
			    "not reading: %zu bytes queued, more than %zu for "
			    "%d ms",
			    q, l->max_output, out_stall_ms(l));
			return;
		}
	}
	if (p->partial_since != 0 && !p->paused && l->partial_ms > 0 &&
	    now - p->partial_since >= l->partial_ms) {
		peer_fail(p,
		    "a message left incomplete for %d ms "
		    "(%zu bytes held)",
		    l->partial_ms, p->in.len);
		return;
	}
	if (p->paused) {
		/* We do not read while a reply is written in pieces: what
		 * counts then is that the peer takes them, pings or not (a
		 * stalled listing holds its entries). */
		int stall = out_stall_ms(l);

		if (now - p->last_tx >= stall)
			peer_fail(p, "not reading a reply for %d ms", stall);
		return;
	}
	if (l->ping_idle_ms <= 0)
		return;
	if (p->ping_sent != 0 && now - p->ping_sent >= l->ping_timeout_ms) {
		peer_fail(p, "no answer to a liveness ping in %d ms",
		    l->ping_timeout_ms);
		return;
	}
	/* A peer whose output waits is reading slowly, or not at all: the
	 * output cap, not the ping, decides about it. */
	if (p->ping_sent == 0 && quiet >= l->ping_idle_ms) {
		p->ping_sent = now;
		peer_ping(p);
	}
}

static void
engine_tick_body(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = arg;
	struct peer *p, *next;
	int64_t now = engine_now();

	TAILQ_FOREACH_SAFE(p, &e->peers, link, next)
		peer_check(p, now);
	engine_flush(e);
	log_limited_flush();
}

static void
engine_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct engine *e = ((struct engine *)arg);

	e->depth++;
	engine_tick_body(fd, ev, arg);
	e->depth--;
}

/* The tick runs often enough for the tightest deadline of any peer. */
static void
engine_tick_for(struct engine *e, const struct engine_limits *l)
{
	int ms = 1000, v[4] = {l->handshake_ms, l->partial_ms, l->ping_idle_ms,
	                   l->ping_timeout_ms};
	struct timeval tv;
	size_t i;

	for (i = 0; i < 4; i++)
		if (v[i] > 0 && v[i] / 4 < ms)
			ms = v[i] / 4 > 10 ? v[i] / 4 : 10;
	if (e->tick_ms != 0 && e->tick_ms <= ms)
		return;
	e->tick_ms = ms;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_del(e->tick);
	event_add(e->tick, &tv);
}

/* ---- making peers ------------------------------------------------------ */

static struct peer *
peer_alloc(struct engine *e, bool accepted, const char *addr,
    const struct engine_limits *l, const struct peer_ops *ops, void *arg)
{
	struct peer *p;

	if ((p = calloc(1, sizeof *p)) == NULL) {
		tbuf_oom("out of memory");
		return NULL;
	}
	p->eng = e;
	p->ops = ops;
	p->lim = l;
	p->arg = arg;
	p->accepted = accepted;
	p->state = PEER_HANDSHAKE;
	p->fd = -1;
	p->gid = (gid_t)-1;
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	comm_framer_init(&p->fr, l->max_message);
	TAILQ_INIT(&p->pendings);
	TAILQ_INIT(&p->reqs);
	TAILQ_INIT(&p->entries);
	TAILQ_INIT(&p->watches);
	tbuf_init(&p->in);
	tbuf_init(&p->out);
	tbuf_init(&p->held);
	tbuf_init(&p->stream_tail);
	p->born = p->last_rx = p->last_tx = engine_now();
	TAILQ_INSERT_TAIL(&e->peers, p, link);
	e->npeers++;
	engine_tick_for(e, l);
	return p;
}

/* A connecting side speaks first: "3 0" (version 3; we listen on
 * nothing). */
static void
peer_offer_send(struct peer *p)
{
	struct engine *e = p->eng;

	if (p->accepted)
		return;
	tbuf_reset(&e->out);
	comm_format_hello(&e->out, 0);
	peer_write(p, &e->out);
}

/* Undo peer_alloc for a peer nobody has seen yet: no hooks run. */
static void
peer_unalloc(struct peer *p)
{
	struct engine *e = p->eng;

	TAILQ_REMOVE(&e->peers, p, link);
	e->npeers--;
	free(p);
}

struct peer *
peer_new(struct engine *e, int fd, bool accepted, const char *addr,
    const struct engine_limits *l, const struct peer_ops *ops, void *arg)
{
	struct peer *p;

	if ((p = peer_alloc(e, accepted, addr, l, ops, arg)) == NULL) {
		close(fd);
		return NULL;
	}
	p->fd = fd;
	evutil_make_socket_nonblocking(fd);
	p->ev_read = event_new(e->base, fd, EV_READ | EV_PERSIST, peer_read, p);
	p->ev_write =
	    event_new(e->base, fd, EV_WRITE | EV_PERSIST, peer_writable, p);
	if (p->ev_read == NULL || p->ev_write == NULL ||
	    event_add(p->ev_read, NULL) == -1) {
		/* libevent's allocations: out of memory too. */
		tbuf_oom("event_new failed");
		if (p->ev_read != NULL)
			event_free(p->ev_read);
		if (p->ev_write != NULL)
			event_free(p->ev_write);
		peer_unalloc(p);
		close(fd);
		return NULL;
	}
	peer_offer_send(p);
	return p;
}

struct peer *
peer_new_bev(struct engine *e, struct bufferevent *bev, bool accepted,
    const char *addr, const struct engine_limits *l, const struct peer_ops *ops,
    void *arg)
{
	struct peer *p;

	if ((p = peer_alloc(e, accepted, addr, l, ops, arg)) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	p->bev = bev;
	bufferevent_setcb(bev, peer_bev_read, peer_bev_write, peer_bev_event,
	    p);
	bufferevent_setwatermark(bev, EV_WRITE, STREAM_LOW / 2, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	peer_offer_send(p);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		peer_bev_read(bev, p);
	return p;
}

/* ---- the engine -------------------------------------------------------- */

int
engine_init(struct engine *e, struct event_base *base)
{
	memset(e, 0, sizeof *e);
	e->base = base;
	TAILQ_INIT(&e->peers);
	TAILQ_INIT(&e->dead);
	TAILQ_INIT(&e->flush);
	TAILQ_INIT(&e->resume);
	tlist_init(&e->msg);
	tlist_init(&e->frags);
	tlist_init(&e->words);
	tbuf_init(&e->scratch);
	tbuf_init(&e->result);
	tbuf_init(&e->err);
	tbuf_init(&e->out);
	tbuf_init(&e->payload);
	tbuf_init(&e->piece);
	tbuf_init(&e->rbuf);
	e->reaper = event_new(base, -1, 0, engine_reap, e);
	e->tick = event_new(base, -1, EV_PERSIST, engine_tick, e);
	if (e->reaper == NULL || e->tick == NULL)
		return -1;
	/* Ticking from the start, peers or not: the rate-limited log's
	 * summaries of refused connections (which make no peer) come
	 * from it too. */
	{
		struct timeval tv = {1, 0};

		e->tick_ms = 1000;
		event_add(e->tick, &tv);
	}
	return 0;
}

void
engine_free(struct engine *e)
{
	struct peer *p;

	while ((p = TAILQ_FIRST(&e->peers)) != NULL)
		peer_kill(p, NULL);
	e->reaped = NULL;
	engine_reap(-1, 0, e);
	if (e->reaper != NULL)
		event_free(e->reaper);
	if (e->tick != NULL)
		event_free(e->tick);
	tlist_free(&e->msg);
	tlist_free(&e->frags);
	tlist_free(&e->words);
	tbuf_free(&e->scratch);
	tbuf_free(&e->result);
	tbuf_free(&e->err);
	tbuf_free(&e->out);
	tbuf_free(&e->payload);
	tbuf_free(&e->piece);
	tbuf_free(&e->rbuf);
}
