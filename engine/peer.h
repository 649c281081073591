/*
 * The peer engine: every comm connection of every commreg program goes
 * through here, accepted or made, over TCP, a Unix socket or TLS.
 *
 * One struct peer per connection.  The engine owns, for all of them:
 *  - framing (wire/commwire.c) and the comm v3 handshake in both roles;
 *  - dispatch of what the peer asks (send/async/command) through one
 *    command-table form (struct cmd_entry: a row and a handler each);
 *  - matching of the replies to what we asked (peer_request), with a
 *    deadline each;
 *  - every limit: message size, all output queued to the peer (replies
 *    included; a large reply is produced in pieces as the peer reads,
 *    peer_reply_stream), a deadline for the handshake and for a message
 *    left incomplete, and a liveness ping on idle links, so that a peer
 *    that hangs is dropped within ping_idle + ping_timeout.
 *
 * A peer's life: HANDSHAKE, READY, DEAD.  A dead peer reads and writes
 * nothing more and is freed from the engine's reaper, never from inside
 * a callback that may still be walking a list (the owner's gone hook runs
 * there, once).
 *
 * The ping is a comm send of an empty script: every comm peer answers it
 * (Tcl evaluates "" to ""), tcllib's clients included, without running
 * anything.  Any byte received counts as a sign of life.
 */
#ifndef ENGINE_PEER_H
#define ENGINE_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event.h>

#include "commwire.h"
#include "registry.h"
#include "tbuf.h"
#include "tcllist.h"

struct bufferevent;
struct server;
struct peer;
struct engine;

/* ---- limits: one place for all of them --------------------------------- */

struct engine_limits {
	size_t max_message; /* bytes in one message */
	/* Output queued to a peer: above max_output for longer than the
	 * stall time (ping_idle_ms + ping_timeout_ms, else partial_ms, else
	 * 10 s) the peer is dropped; above max_burst (or max_output if more)
	 * at once.  A burst of changes may pass max_output for a moment to a
	 * peer that reads; one that does not read holds at most this. */
	size_t max_output;
	size_t max_burst;
	int handshake_ms;    /* to complete the comm handshake */
	int partial_ms;      /* an incomplete message may wait this long */
	int ping_idle_ms;    /* silence before a liveness ping; 0: none */
	int ping_timeout_ms; /* then silence before the peer is dropped */
};

/* The defaults: 64 KiB messages, 8 MiB output (64 MiB in a burst), 10 s
 * handshake, 10 s for an incomplete message, ping after 5 s of silence,
 * dropped 10 s later. */
void engine_default_limits(struct engine_limits *);

/* ---- the command table ------------------------------------------------- */

struct cmd_ctx {
	struct peer *peer;
	struct server *srv;        /* the peer's server, or NULL (a link) */
	const struct tlist *words; /* words[0] is the command name */
	struct tbuf *result;       /* reply text, or error message */
	int64_t serial;            /* of the message, for pending_new */
	const char *kind;          /* its reply kind, NULL for async */
};

/* What a handler returns: a reply now, later (pending_new), or in pieces
 * (peer_reply_stream). */
#define CMD_OK      0
#define CMD_ERROR   1
#define CMD_PENDING 2
#define CMD_STREAM  3

struct cmd_entry {
	const char *name;
	int min_args; /* not counting the name */
	int max_args; /* -1: unbounded */
	const char *usage;
	int (*exec)(struct cmd_ctx *);
};

/* Find a row by name in a table sorted by name (NULL-terminated). */
const struct cmd_entry *cmd_table_find(const struct cmd_entry *table, size_t n,
    const char *name, size_t len);

/* ---- what the owner of a peer provides --------------------------------- */

struct peer_ops {
	/* The commands this peer may run; NULL: none (each is answered
	 * with Tcl's "invalid command name"). */
	const struct cmd_entry *(*find)(const char *name, size_t len);
	/* The handshake is done. */
	void (*ready)(struct peer *);
	/* The peer goes: called once, from the reaper, before its
	 * requests are failed and it is freed (the server removes its
	 * entries and watches here).  why: NULL for a close we asked for. */
	void (*gone)(struct peer *, const char *why);
	/* Optional: why a bufferevent peer failed, in words (TLS). */
	void (*bev_error)(struct peer *, short what, char *buf, size_t len);
};

enum peer_state { PEER_HANDSHAKE, PEER_READY, PEER_DEAD };

/* A reply owed to a peer, given later (a verdict of the host gateway, a
 * forwarded lookup).  If the peer goes first, peer is NULL and the reply
 * is dropped when given. */
struct pending {
	TAILQ_ENTRY(pending) link;
	struct peer *peer;
	int64_t serial;
	const char *kind; /* "reply", "callback", or NULL (async: none) */
	void *arg;        /* the completer's */
};
TAILQ_HEAD(pending_list, pending);

/* A request of ours on a peer.  code 0 or 1 is the peer's answer; -1 is
 * no answer (the link went, or the deadline passed; result says which). */
typedef void (*peer_reply_fn)(struct peer *, void *arg, int code,
    const char *result, size_t len);
struct preq;
TAILQ_HEAD(preq_list, preq);

/* A reply produced in pieces: next appends the following elements of the
 * result list to out (an empty tbuf, written with tl_append from offset
 * 0), about budget bytes, and says whether that was the last. */
struct peer_stream {
	bool (*next)(struct peer_stream *, struct tbuf *out, size_t budget);
	void (*free)(struct peer_stream *);
	/*
	 * Set: a result larger than one message may be (the receiver's
	 * max_message) goes as many.  next then appends whole messages
	 * (peer_format_async), and after the last the reply is written, its
	 * result what the handler left in c->result.
	 */
	bool messages;
};

struct peer {
	TAILQ_ENTRY(peer) link;
	struct engine *eng;
	const struct peer_ops *ops;
	const struct engine_limits *lim;
	void *arg; /* the owner's */
	bool accepted;
	enum peer_state state;
	int fd;                  /* -1 when bev carries the bytes */
	struct bufferevent *bev; /* TLS (or any bufferevent) */
	struct event *ev_read;
	struct event *ev_write; /* armed only while output is left over */
	struct tbuf in;         /* bytes read, not yet framed */
	struct tbuf out;        /* bytes to write, from out_off */
	size_t out_off;
	struct tbuf held; /* messages waiting behind a stream */
	bool dirty;       /* on eng->flush: has output to write */
	TAILQ_ENTRY(peer) flush_link;
	bool paused;   /* not reading: a stream is being written */
	bool resuming; /* on eng->resume */
	bool pump_now; /* writable: the next piece may be made */
	TAILQ_ENTRY(peer) resume_link;
	struct peer_stream *stream;
	struct tbuf stream_tail;
	bool stream_first;
	char addr[96]; /* "127.0.0.1:40312" for the log */
	struct comm_framer fr;
	int64_t out_serial; /* serials of what we send */
	struct preq_list reqs;
	/* Deadlines (the engine's clock, ms). */
	int64_t born, last_rx, last_tx, partial_since;
	int64_t over_since; /* queued above max_output since; 0: not */
	int64_t ping_sent;  /* 0: none outstanding */
	char *gone_why;
	bool gone_nomem; /* why was not kept for want of memory */

	/* ---- the registry's view of an accepted peer (server.c) ---- */
	struct server *srv;
	uid_t uid;
	gid_t gid;       /* Unix socket peers (SO_PEERCRED); else -1 */
	pid_t pid;       /* Unix socket peers; else 0 */
	int remote_port; /* the peer's own comm port, from its first line */
	struct pending_list pendings;
	void *data; /* the server kind's own (the gateway's user record) */
	struct reg_entry_list entries;
	size_t nentries;
	struct reg_watch_list watches;
	size_t nwatches;
};
TAILQ_HEAD(peer_list, peer);

/* ---- the engine: peers of one event loop ------------------------------- */

struct engine {
	struct event_base *base;
	struct event *reaper; /* frees dead peers outside callbacks */
	struct event *tick;   /* deadlines and pings */
	int tick_ms;
	struct peer_list peers;
	struct peer_list dead;
	/* Peers given output during this callback, written before it
	 * returns: one write per peer per event, no epoll round trip. */
	TAILQ_HEAD(, peer) flush;
	TAILQ_HEAD(, peer) resume; /* streams written: input to run */
	size_t npeers;
	uint64_t messages;
	int depth; /* inside an engine callback (peer_out_added) */
	/* Called after the reaper freed peers (the server flushes what
	 * their going told the watchers). */
	void (*reaped)(void *);
	void *reaped_arg;

	/* Scratch reused by every message (no allocation per request). */
	struct tlist msg, frags, words;
	struct tbuf scratch, result, err, out, payload, piece;
	struct tbuf rbuf; /* reads of peers with no partial input */
	int64_t cur_serial;
	const char *cur_kind;
};

int engine_init(struct engine *, struct event_base *);
/* Kills and frees every peer (their gone hooks run). */
void engine_free(struct engine *);
/* Write what peers were given outside the engine's own callbacks. */
void engine_flush(struct engine *);
/* Milliseconds of the engine's clock (monotonic). */
int64_t engine_now(void);

/* Take over a connected socket (nonblocking is set here).  accepted:
 * we wait for the peer's offer; else we send ours and wait for
 * {vers 3}.  addr names it in the log.  NULL only when memory ran out
 * (the library's policy, tbuf.h; a daemon ends): fd is closed then. */
struct peer *peer_new(struct engine *, int fd, bool accepted, const char *addr,
    const struct engine_limits *, const struct peer_ops *, void *arg);
/* The same over a bufferevent whose TLS handshake is done: the peer
 * takes it over (its callbacks, and freeing it; freed at once when this
 * returns NULL). */
struct peer *peer_new_bev(struct engine *, struct bufferevent *, bool accepted,
    const char *addr, const struct engine_limits *, const struct peer_ops *,
    void *arg);

/* Mark a peer dead with a logged reason; it is freed later. */
void peer_fail(struct peer *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Close it without a warning (we are done with it). */
void peer_close(struct peer *);

/* Send an async command (notifications): no reply is asked. */
void peer_send_async(struct peer *, const char *const *words,
    const size_t *lens, size_t n);
/* Append to out, for a stream of messages, the async command words as
 * one whole message of p's. */
void peer_format_async(struct peer *, struct tbuf *out,
    const char *const *words, const size_t *lens, size_t n);
/* Send a command and call fn with the answer; timeout_ms 0: none (the
 * liveness ping still bounds the wait).  NULL when the peer is dead. */
struct preq *peer_request(struct peer *, const char *const *words,
    const size_t *lens, size_t n, int timeout_ms, peer_reply_fn fn, void *arg);
/* Forget a request: fn is never called. */
void peer_request_cancel(struct preq *);
/* Bytes queued to the peer and not written yet. */
size_t peer_queued(const struct peer *);

/* A reply for later, owed to c's peer for c's message (the handler then
 * returns CMD_PENDING).  NULL when memory ran out (the library's policy,
 * tbuf.h): the handler answers "out of memory" instead. */
struct pending *pending_new(struct cmd_ctx *c, void *arg);
/* Give it (code 0 result, 1 error) and free it; the peer may be gone. */
void pending_reply(struct pending *, int code, const char *result, size_t len);
/* The context of the message q answers, to answer it as a handler would
 * (peer_reply_stream); q must still have its peer.  result is the
 * caller's. */
void pending_ctx(const struct pending *q, struct cmd_ctx *c,
    struct tbuf *result);
/* Free q unanswered: it was answered another way (a stream). */
void pending_forget(struct pending *);

/* The handler's reply is s, produced in pieces as the peer reads; the
 * handler returns what this returns (CMD_STREAM).  The engine frees s. */
int peer_reply_stream(struct cmd_ctx *, struct peer_stream *s);

#endif
