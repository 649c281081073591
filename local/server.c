/*
 * The registry server: connection life cycle and message dispatch (see
 * server.h).  Every callback here is short; protocol commands live in
 * handlers.c, the table in registry.c.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "handlers.h"
#include "log.h"
#include "peeruid.h"
#include "server.h"

void
server_default_opts(struct server_opts *o)
{
	o->max_message = COMM_DEFAULT_MAX_MESSAGE;
	o->max_names = 1024;
	o->max_watches = 256;
	o->max_conns = 65536; /* capped by RLIMIT_NOFILE in commregd */
	o->max_output = 8 * 1024 * 1024;
	o->handshake_timeout = 10;
}

/* Bytes asked of the kernel per read; a peer's unframed input is bounded
 * by the message limit anyway. */
#define PEER_READ_CHUNK 16384
/* Output buffer capacity a peer keeps between replies. */
#define PEER_KEEP_OUT 4096

static void peer_read(evutil_socket_t, short, void *);
/* server_flush is public (server.h). */
static void peer_writable(evutil_socket_t, short, void *);

static void
peer_free(struct peer *p)
{
	struct server *s = p->srv;
	struct reg_watch *w, *wn;
	struct reg_entry *e, *en;

	struct pending *q;

	/* Replies still owed to it go nowhere. */
	while ((q = TAILQ_FIRST(&p->pendings)) != NULL) {
		TAILQ_REMOVE(&p->pendings, q, link);
		q->peer = NULL;
	}
	if (s->ops != NULL && s->ops->gone != NULL)
		s->ops->gone(p);
	/* Watches first: a closing client is not told of its own names. */
	TAILQ_FOREACH_SAFE(w, &p->watches, owner_link, wn)
		registry_watch_remove(s->reg, w, &p->watches);
	TAILQ_FOREACH_SAFE(e, &p->entries, owner_link, en)
		registry_remove(s->reg, e, &p->entries);
	if (p->timer != NULL)
		event_free(p->timer);
	event_free(p->ev_read);
	event_free(p->ev_write);
	close(p->fd);
	tbuf_free(&p->in);
	tbuf_free(&p->out);
	free(p);
	s->npeers--;
}

static void
server_reap(evutil_socket_t fd, short ev, void *arg)
{
	struct server *s = arg;
	struct peer *p;

	while ((p = TAILQ_FIRST(&s->dead)) != NULL) {
		TAILQ_REMOVE(&s->dead, p, link);
		peer_free(p);
	}
	server_flush(s); /* watchers of the names that went */
}

/* A peer goes dead now (no more reads or writes) and is freed from the
 * reaper, so that a notification loop or a read loop that is still
 * walking lists never sees it vanish. */
static void
peer_kill(struct peer *p)
{
	if (p->state == PEER_DEAD)
		return;
	p->state = PEER_DEAD;
	event_del(p->ev_read);
	event_del(p->ev_write);
	if (p->dirty) {
		TAILQ_REMOVE(&p->srv->flush, p, flush_link);
		p->dirty = false;
	}
	TAILQ_REMOVE(&p->srv->peers, p, link);
	TAILQ_INSERT_TAIL(&p->srv->dead, p, link);
	event_active(p->srv->reaper, EV_TIMEOUT, 0);
}

void
peer_fail(struct peer *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->state == PEER_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_warnx("peer %s uid %ld: %s; connection closed", p->addr,
	    (long)p->uid, msg);
	peer_kill(p);
}

/* May p be given more output?  A client that never reads would make us
 * hold its replies forever; it loses its connection instead.  What counts
 * is what is still queued, so one reply larger than the limit (a big
 * listing) still goes to a client that reads. */
static bool
peer_out_ok(struct peer *p)
{
	size_t queued;

	if (p->state == PEER_DEAD)
		return false;
	queued = p->out.len - p->out_off;
	if (queued > p->srv->o.max_output) {
		peer_fail(p, "not reading: %zu bytes already queued", queued);
		return false;
	}
	return true;
}

/* p->out has new bytes: write them before this callback returns. */
static void
peer_out_added(struct peer *p)
{
	if (!p->dirty) {
		p->dirty = true;
		TAILQ_INSERT_TAIL(&p->srv->flush, p, flush_link);
	}
}

/*
 * Queue b (one of the server's scratch buffers).  A big message to a peer
 * with nothing queued is not copied: the peer takes b's memory and b gets
 * the peer's (empty) buffer; peer_flush gives the big one back.
 */
static void
peer_write(struct peer *p, struct tbuf *b)
{
	struct tbuf t;

	if (!peer_out_ok(p))
		return;
	if (p->out.len == 0 && b->len > PEER_KEEP_OUT) {
		t = p->out;
		p->out = *b;
		*b = t;
		tbuf_reset(b);
	} else
		tbuf_add(&p->out, b->p, b->len);
	peer_out_added(p);
}

/* Write what the kernel takes now; arm the write event for the rest. */
static void
peer_flush(struct peer *p)
{
	ssize_t n;

	while (p->out_off < p->out.len) {
		n = write(p->fd, p->out.p + p->out_off,
		    p->out.len - p->out_off);
		if (n > 0) {
			p->out_off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!event_pending(p->ev_write, EV_WRITE, NULL))
				event_add(p->ev_write, NULL);
			return;
		}
		log_debug("peer %s: write: %s", p->addr, strerror(errno));
		peer_kill(p);
		return;
	}
	/* Keep a small buffer for the next reply.  A big one becomes the
	 * server's output scratch if that is smaller (so the next big reply
	 * is formatted without growing a buffer), else it is freed. */
	if (p->out.cap > PEER_KEEP_OUT && p->out.cap > p->srv->out.cap) {
		struct tbuf t = p->srv->out;

		p->srv->out = p->out;
		p->out = t;
		tbuf_reset(&p->srv->out);
	}
	if (p->out.cap > PEER_KEEP_OUT)
		tbuf_free(&p->out);
	else
		tbuf_reset(&p->out);
	p->out_off = 0;
	if (event_pending(p->ev_write, EV_WRITE, NULL))
		event_del(p->ev_write);
}

/* Write every peer that was given output in this callback. */
void
server_flush(struct server *s)
{
	struct peer *p;

	while ((p = TAILQ_FIRST(&s->flush)) != NULL) {
		TAILQ_REMOVE(&s->flush, p, flush_link);
		p->dirty = false;
		if (p->state != PEER_DEAD)
			peer_flush(p);
	}
}

static void
peer_writable(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;

	if (p->state != PEER_DEAD)
		peer_flush(p);
}

/*
 * One change is told to every watcher of it in the same words; only the
 * serial differs from one connection to the next.  The words of the last
 * notification and its message after the serial are kept (per thread, so
 * any number of servers may share them), and each further watcher costs
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
	const char *k = note_words.p, *end = k + note_words.len;
	size_t i, len;

	if (note_words.len < sizeof len)
		return false;
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
note_keep(struct server *s, const char *const *words, const size_t *lens,
    size_t n)
{
	size_t i, len;

	/* The message with serial 0 is NOTE_HEAD "0" and the tail. */
	tbuf_reset(&s->out);
	comm_format_message(&s->out, "async", 0, s->payload.p, s->payload.len);
	if (s->out.len < sizeof NOTE_HEAD ||
	    memcmp(s->out.p, NOTE_HEAD "0", sizeof NOTE_HEAD) != 0)
		fatalx("peer_send_async: unexpected message form");
	tbuf_reset(&note_tail);
	tbuf_add(&note_tail, s->out.p + sizeof NOTE_HEAD,
	    s->out.len - sizeof NOTE_HEAD);
	tbuf_reset(&note_words);
	tbuf_add(&note_words, &n, sizeof n);
	for (i = 0; i < n; i++) {
		len = word_len(words, lens, i);
		tbuf_add(&note_words, &len, sizeof len);
		tbuf_add(&note_words, words[i], len);
	}
}

void
peer_send_async(struct peer *p, const char *const *words, const size_t *lens,
    size_t n)
{
	struct server *s = p->srv;
	size_t i, total = 0;
	char *o;

	if (p->state != PEER_READY || !peer_out_ok(p))
		return;
	for (i = 0; i < n; i++)
		total += word_len(words, lens, i);
	if (total > NOTE_CACHE_MAX) {
		tbuf_reset(&s->payload);
		comm_format_command(&s->payload, words, lens, n);
		tbuf_reset(&s->out);
		comm_format_message(&s->out, "async", ++p->out_serial,
		    s->payload.p, s->payload.len);
		peer_write(p, &s->out);
		return;
	}
	if (!note_same(words, lens, n)) {
		tbuf_reset(&s->payload);
		comm_format_command(&s->payload, words, lens, n);
		note_keep(s, words, lens, n);
	}
	/* NOTE_HEAD, the serial, the tail: straight into the peer's buffer. */
	tbuf_reserve(&p->out, sizeof NOTE_HEAD + TL_INT_MAX + note_tail.len);
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

static void
peer_handshake_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;

	peer_fail(p, "no protocol offer within %d s",
	    p->srv->o.handshake_timeout);
}

static void
peer_hello(struct peer *p, const struct tlist *line)
{
	struct server *s = p->srv;
	struct tlist vers;
	const char *err;
	size_t i;
	bool ok = false;

	tlist_init(&vers);
	if (line->n >= 1 &&
	    tlist_parse(&vers, line->v[0].p, line->v[0].len, &err) == 0) {
		for (i = 0; i < vers.n; i++)
			if (strcmp(vers.v[i].p, "3") == 0)
				ok = true;
	}
	tlist_free(&vers);
	if (!ok || line->n < 2) {
		peer_fail(p, "first line is not a comm protocol offer "
		             "with version 3");
		return;
	}
	p->remote_port = atoi(line->v[1].p);
	p->state = PEER_READY;
	evtimer_del(p->timer);
	tbuf_reset(&s->out);
	comm_format_vers(&s->out, 3);
	peer_write(p, &s->out);
}

/*
 * A big reply whose result is a list, to a peer with nothing queued:
 * written now, with writev, from the result itself (the message is head,
 * result, tail), so its bytes are not copied into an output buffer.  What
 * the kernel does not take is queued as usual.  False when it does not
 * apply; the caller formats the reply.
 */
static bool
peer_reply_direct(struct peer *p, const char *kind, int64_t serial,
    const struct tbuf *result)
{
	struct server *s = p->srv;
	struct iovec iov[3];
	size_t total, done, i;
	ssize_t n;

	if (p->out.len != 0 || !peer_out_ok(p))
		return p->state == PEER_DEAD; /* a failed peer: nothing more */
	tbuf_reset(&s->out);
	tbuf_reset(&s->payload);
	if (!comm_format_reply_parts(&s->out, &s->payload, kind, serial,
	        result->p, result->len))
		return false;
	iov[0].iov_base = s->out.p;
	iov[0].iov_len = s->out.len;
	iov[1].iov_base = result->p;
	iov[1].iov_len = result->len;
	iov[2].iov_base = s->payload.p;
	iov[2].iov_len = s->payload.len;
	total = s->out.len + result->len + s->payload.len;
	do
		n = writev(p->fd, iov, 3);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
		log_debug("peer %s: write: %s", p->addr, strerror(errno));
		peer_kill(p);
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
	peer_out_added(p);
	return true;
}

static void
peer_reply(struct peer *p, const char *kind, int64_t serial, int code,
    const struct tbuf *result)
{
	struct server *s = p->srv;
	bool listed;

	/* A result the handler wrote as a list (Search, List, ...) is quoted
	 * without scanning it again.  Only the server's own result buffer is
	 * asked: other callers may hand over a tbuf made by hand. */
	listed = result == &s->result && result->listed == result->len;
	if (listed && code == 0 && result->len > PEER_KEEP_OUT &&
	    peer_reply_direct(p, kind, serial, result))
		return;
	tbuf_reset(&s->out);
	if (listed)
		comm_format_reply_list(&s->out, kind, serial, code, result->p,
		    result->len, NULL);
	else
		comm_format_reply(&s->out, kind, serial, code, result->p,
		    result->len, NULL);
	peer_write(p, &s->out);
}

struct pending *
pending_new(struct cmd_ctx *c, void *arg)
{
	struct pending *q;

	if ((q = calloc(1, sizeof *q)) == NULL)
		fatalx("out of memory");
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
		if (q->kind != NULL && p->state == PEER_READY &&
		    peer_out_ok(p)) {
			r.p = (char *)(uintptr_t)result;
			r.len = len;
			peer_reply(p, q->kind, q->serial, code, &r);
			server_flush(p->srv);
		}
	}
	free(q);
}

/* Run one literal command; result holds the reply text. */
static int
peer_exec(struct peer *p, const struct tlist *w)
{
	struct server *s = p->srv;
	const struct cmd_entry *c;
	struct cmd_ctx ctx;
	int nargs;

	tbuf_reset(&s->result);
	if (w->n == 0)
		return 0; /* Tcl evaluates an empty script to "" */
	c = s->ops != NULL && s->ops->find != NULL
	        ? s->ops->find(w->v[0].p, w->v[0].len)
	        : cmd_find(w->v[0].p, w->v[0].len);
	if (c == NULL) {
		/* Tcl's own words, which Tcl clients may match on. */
		tbuf_adds(&s->result, "invalid command name \"");
		tbuf_add(&s->result, w->v[0].p, w->v[0].len);
		tbuf_addc(&s->result, '"');
		return 1;
	}
	nargs = (int)w->n - 1;
	if (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args)) {
		tbuf_printf(&s->result, "wrong # args: should be \"%s%s%s\"",
		    c->name, c->usage[0] ? " " : "", c->usage);
		return 1;
	}
	ctx.peer = p;
	ctx.srv = s;
	ctx.words = w;
	ctx.result = &s->result;
	ctx.serial = s->cur_serial;
	ctx.kind = s->cur_kind;
	return c->exec(&ctx);
}

static void
peer_message(struct peer *p, const struct tlist *m)
{
	struct server *s = p->srv;
	const char *kind;
	char *end;
	int64_t serial;
	int code;
	bool is_send, is_async, is_command;

	s->messages++;
	if (m->n == 0)
		return;
	kind = m->v[0].p;
	is_send = strcmp(kind, "send") == 0;
	is_async = strcmp(kind, "async") == 0;
	is_command = strcmp(kind, "command") == 0;
	if (!is_send && !is_async && !is_command) {
		/* reply, callback, vers, and unknown kinds: comm discards
		 * them, and we never wait for a reply. */
		log_debug("peer %s: ignored message kind \"%s\"", p->addr,
		    kind);
		return;
	}
	if (m->n != 3) {
		peer_fail(p, "\"%s\" message with %zu words instead of 3", kind,
		    m->n);
		return;
	}
	serial = strtoll(m->v[1].p, &end, 10);
	if (end == m->v[1].p || *end != '\0') {
		peer_fail(p, "message serial \"%.40s\" is not a number",
		    m->v[1].p);
		return;
	}
	s->cur_serial = serial;
	s->cur_kind = is_async ? NULL : is_send ? "reply" : "callback";
	if (comm_payload_command(m->v[2].p, m->v[2].len, &s->frags, &s->scratch,
	        &s->words, &s->err) == -1) {
		tbuf_reset(&s->result);
		tbuf_add(&s->result, s->err.p, s->err.len);
		code = 1;
	} else
		code = peer_exec(p, &s->words);
	if (code == CMD_PENDING)
		return;
	if (code == 1)
		log_debug("peer %s: error reply: %s", p->addr, s->result.p);
	if (!is_async)
		peer_reply(p, is_send ? "reply" : "callback", serial, code,
		    &s->result);
}

/*
 * Frame and run every complete message in buf[0..len); returns how many
 * bytes were used (the rest is an incomplete message).
 */
static size_t
peer_input(struct peer *p, const char *buf, size_t len)
{
	struct server *s = p->srv;
	enum comm_frame_status st;
	const char *err = NULL;
	size_t off = 0, consumed;

	while (p->state != PEER_DEAD && off < len) {
		if (p->state == PEER_HANDSHAKE)
			st = comm_frame_line(&p->fr, buf + off, len - off,
			    &consumed, &s->msg, &err);
		else
			st = comm_frame_next(&p->fr, buf + off, len - off,
			    &consumed, &s->msg, &err);
		if (st == COMM_FRAME_MORE)
			break;
		if (st == COMM_FRAME_ERROR) {
			peer_fail(p, "bad message: %s", err);
			break;
		}
		off += consumed;
		if (p->state == PEER_HANDSHAKE)
			peer_hello(p, &s->msg);
		else
			peer_message(p, &s->msg);
	}
	return off;
}

/*
 * Read once.  A peer with no partial message left over reads into the
 * server's buffer, and only an incomplete tail is kept in its own: idle
 * connections then hold no input memory at all (docs/performance.md).
 */
static void
peer_read(evutil_socket_t fd, short ev, void *arg)
{
	struct peer *p = arg;
	struct server *s = p->srv;
	struct tbuf *b = p->in.len > 0 ? &p->in : &s->rbuf;
	size_t used;
	ssize_t n;

	if (b == &s->rbuf)
		tbuf_reset(b);
	tbuf_reserve(b, PEER_READ_CHUNK);
	n = read(p->fd, b->p + b->len, PEER_READ_CHUNK);
	if (n == -1 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0)
			log_debug("peer %s: closed the connection", p->addr);
		else
			log_debug("peer %s: read: %s", p->addr,
			    strerror(errno));
		peer_kill(p);
		return;
	}
	b->len += (size_t)n;
	b->p[b->len] = '\0';
	used = peer_input(p, b->p, b->len);
	if (p->state != PEER_DEAD) {
		if (b == &p->in) {
			tbuf_consume(&p->in, used);
			if (p->in.len == 0)
				tbuf_free(&p->in);
		} else if (used < b->len)
			tbuf_add(&p->in, b->p + used, b->len - used);
	}
	server_flush(s);
}

static void
server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct server *s = arg;
	struct peer *p;
	char addr[64], host[INET6_ADDRSTRLEN], err[256];
	uid_t uid;
	int one = 1;

	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		snprintf(addr, sizeof addr, "%s:%d", host,
		    ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_UNIX)
		snprintf(addr, sizeof addr, "unix#%llu",
		    (unsigned long long)++s->accepted);
	else
		snprintf(addr, sizeof addr, "(family %d)", sa->sa_family);

	if ((p = calloc(1, sizeof *p)) == NULL)
		fatalx("out of memory");
	p->srv = s;
	p->fd = fd;
	p->gid = (gid_t)-1;
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	TAILQ_INIT(&p->pendings);
	if (s->ops != NULL && s->ops->admit != NULL) {
		if (s->npeers >= s->o.max_conns)
			snprintf(err, sizeof err,
			    "already %zu connections (limit)", s->npeers);
		else if (s->ops->admit(s, p, err, sizeof err) == 0)
			goto admitted;
		log_warnx("refused %s: %s", addr, err);
		s->refused++;
		free(p);
		close(fd);
		return;
	}
	free(p);
	p = NULL;

	/* Trust is decided here, before a single byte is read: the kernel
	 * says who owns the other end (docs/security.md). */
	if (peeruid_lookup(fd, &uid, err, sizeof err) == -1) {
		log_warnx("refused %s: cannot tell who it is: %s", addr, err);
		s->refused++;
		close(fd);
		return;
	}
	if (uid != s->uid) {
		log_warnx("refused %s: uid %ld is not the owner of this "
		          "registry (uid %ld)",
		    addr, (long)uid, (long)s->uid);
		s->refused++;
		close(fd);
		return;
	}
	if (s->npeers >= s->o.max_conns) {
		log_warnx("refused %s: already %zu connections (limit)", addr,
		    s->npeers);
		s->refused++;
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	if ((p = calloc(1, sizeof *p)) == NULL)
		fatalx("out of memory");
	p->srv = s;
	p->uid = uid;
	p->gid = (gid_t)-1;
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	TAILQ_INIT(&p->pendings);
admitted:
	p->state = PEER_HANDSHAKE;
	comm_framer_init(&p->fr, s->o.max_message);
	TAILQ_INIT(&p->entries);
	TAILQ_INIT(&p->watches);
	p->fd = fd;
	tbuf_init(&p->in);
	tbuf_init(&p->out);
	evutil_make_socket_nonblocking(fd);
	p->ev_read = event_new(s->base, fd, EV_READ | EV_PERSIST, peer_read, p);
	p->ev_write =
	    event_new(s->base, fd, EV_WRITE | EV_PERSIST, peer_writable, p);
	if (p->ev_read == NULL || p->ev_write == NULL)
		fatalx("event_new failed");
	event_add(p->ev_read, NULL);
	p->timer = evtimer_new(s->base, peer_handshake_timeout, p);
	{
		struct timeval tv = {s->o.handshake_timeout, 0};

		evtimer_add(p->timer, &tv);
	}
	TAILQ_INSERT_TAIL(&s->peers, p, link);
	s->npeers++;
	log_debug("peer %s: connected", addr);
}

static void
server_accept_error(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: keep serving who we have. */
	log_warn("accept");
}

int
server_init(struct server *s, struct event_base *base, int listen_fd, int port,
    const char *host, const struct server_opts *o)
{
	return server_init_ops(s, NULL, NULL, base, listen_fd, port, host, o);
}

int
server_init_ops(struct server *s, const struct server_ops *ops, void *data,
    struct event_base *base, int listen_fd, int port, const char *host,
    const struct server_opts *o)
{
	memset(s, 0, sizeof *s);
	s->ops = ops;
	s->data = data;
	s->base = base;
	s->o = *o;
	s->uid = getuid();
	s->port = port;
	s->started = time(NULL);
	snprintf(s->host, sizeof s->host, "%s", host);
	TAILQ_INIT(&s->peers);
	TAILQ_INIT(&s->dead);
	TAILQ_INIT(&s->flush);
	tlist_init(&s->msg);
	tlist_init(&s->frags);
	tlist_init(&s->words);
	tbuf_init(&s->scratch);
	tbuf_init(&s->result);
	tbuf_init(&s->err);
	tbuf_init(&s->out);
	tbuf_init(&s->note);
	tbuf_init(&s->payload);
	tbuf_init(&s->rbuf);
	s->reg =
	    registry_new(ops != NULL && ops->notify != NULL ? ops->notify
	                                                    : handlers_notify,
	        s);
	s->reaper = event_new(base, -1, 0, server_reap, s);
	s->listener = evconnlistener_new(base, server_accept, s,
	    LEV_OPT_CLOSE_ON_FREE, -1, listen_fd);
	if (s->listener == NULL || s->reaper == NULL)
		return -1;
	evconnlistener_set_error_cb(s->listener, server_accept_error);
	return 0;
}

void
server_free(struct server *s)
{
	struct peer *p;

	while ((p = TAILQ_FIRST(&s->peers)) != NULL)
		peer_kill(p);
	server_reap(-1, 0, s);
	evconnlistener_free(s->listener);
	event_free(s->reaper);
	registry_free(s->reg);
	tlist_free(&s->msg);
	tlist_free(&s->frags);
	tlist_free(&s->words);
	tbuf_free(&s->scratch);
	tbuf_free(&s->result);
	tbuf_free(&s->err);
	tbuf_free(&s->out);
	tbuf_free(&s->note);
	tbuf_free(&s->payload);
	tbuf_free(&s->rbuf);
}
