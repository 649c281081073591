/*
 * The registry server: accepts comm connections, one struct peer each,
 * frames their messages, runs them through the command table
 * (handlers.c) against the registry table (registry.c), and carries the
 * notifications back.  The peer life cycle lives here and only here:
 * accept (credential check), handshake, ready, dead (closed later, never
 * from inside a callback that may still be iterating).
 */
#ifndef LOCAL_SERVER_H
#define LOCAL_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include <event2/event.h>

#include "commwire.h"
#include "registry.h"
#include "tbuf.h"
#include "tcllist.h"

struct server_opts {
	size_t max_message;    /* bytes in one message */
	size_t max_names;      /* entries per connection */
	size_t max_watches;    /* watches per connection */
	size_t max_conns;      /* connections in all */
	size_t max_output;     /* bytes queued to a peer before it is dropped */
	int handshake_timeout; /* seconds to send the first line */
};

void server_default_opts(struct server_opts *);

enum peer_state { PEER_HANDSHAKE, PEER_READY, PEER_DEAD };

struct server;
struct peer;

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

/* ---- the command table (one row and one handler per command) ---------- */

struct cmd_ctx {
	struct peer *peer;
	struct server *srv;
	const struct tlist *words; /* words[0] is the command name */
	struct tbuf *result;       /* reply text, or error message */
	int64_t serial;            /* of the message, for pending_new */
	const char *kind;          /* its reply kind, NULL for async */
};

/* What a handler returns: a reply now, or one later (pending_new). */
#define CMD_OK      0
#define CMD_ERROR   1
#define CMD_PENDING 2

struct cmd_entry {
	const char *name;
	int min_args; /* not counting the name */
	int max_args; /* -1: unbounded */
	const char *usage;
	/* CMD_OK, CMD_ERROR (result holds the message) or CMD_PENDING. */
	int (*exec)(struct cmd_ctx *);
};

/*
 * What makes a server a user registry or a host gateway: its commands,
 * who it lets in, and how it tells watchers (NULL members: the user
 * registry's, handlers.c).
 */
struct server_ops {
	const struct cmd_entry *(*find)(const char *name, size_t len);
	/* A new connection: 0 to accept (p->uid, p->gid, p->pid filled),
	 * -1 to refuse it with a reason in err. */
	int (*admit)(struct server *, struct peer *, char *err, size_t);
	void (*notify)(struct reg_watch *, const struct reg_entry *, bool added,
	    void *arg);
	/* The peer goes: before its entries and watches are removed. */
	void (*gone)(struct peer *);
};

struct peer {
	TAILQ_ENTRY(peer) link;
	struct server *srv;
	int fd;
	struct event *ev_read;
	struct event *ev_write; /* armed only while output is left over */
	struct tbuf in;         /* bytes read, not yet framed */
	struct tbuf out;        /* replies not yet written, from out_off */
	size_t out_off;
	bool dirty; /* on srv->flush: has output to write */
	TAILQ_ENTRY(peer) flush_link;
	enum peer_state state;
	char addr[64]; /* "127.0.0.1:40312" for the log */
	uid_t uid;
	gid_t gid;       /* Unix socket peers (SO_PEERCRED); else -1 */
	pid_t pid;       /* Unix socket peers; else 0 */
	int remote_port; /* the peer's own comm port, from its first line */
	struct pending_list pendings;
	void *data; /* the server kind's own (the gateway's user record) */
	struct comm_framer fr;
	struct reg_entry_list entries;
	size_t nentries;
	struct reg_watch_list watches;
	size_t nwatches;
	int64_t out_serial; /* serials of our async messages */
	struct event *timer;
};
TAILQ_HEAD(peer_list, peer);

struct server {
	const struct server_ops *ops;
	void *data; /* the server kind's own */
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *reaper; /* frees dead peers outside callbacks */
	struct registry *reg;
	struct server_opts o;
	struct peer_list peers;
	struct peer_list dead;
	/* Peers given output during this callback, written before it
	 * returns: one write per peer per event, no epoll round trip. */
	TAILQ_HEAD(, peer) flush;
	size_t npeers;
	uid_t uid;
	char owner[64];
	char host[256];
	int port;
	time_t started;
	/*
	 * What kind of registry this is (zero: a user registry).  A private
	 * one (commreg run) gives its entries scope private; a semi-private
	 * one also answers from mirror, its copy of the registry above it,
	 * kept by upstream.c; its own entries come first and shadow the
	 * mirror's of the same name.
	 */
	enum reg_scope scope;
	const char *kind;        /* Hello's scope: NULL is "user" */
	struct registry *mirror; /* a copy of the upstream's or the gateway's
	                            entries, or NULL */
	struct gwlink *gw;       /* user registry: its host gateway */
	struct upstream *up;     /* semi-private: the registry above */
	int upstream_port;       /* 0: none connected */
	uint64_t messages;
	uint64_t refused;

	/* Scratch reused by every message (no allocation per request). */
	struct tlist msg, frags, words;
	struct tbuf scratch, result, err, out;
	struct tbuf note, payload; /* notifications (fan-out hot path) */
	uint64_t note_change;      /* what note holds: change and kind */
	int note_kind;
	struct tbuf rbuf;     /* reads of peers with no partial input */
	int64_t cur_serial;   /* the message being run */
	const char *cur_kind; /* its reply kind (NULL: async) */
	uint64_t accepted;    /* Unix socket peers, for their names */
};

int server_init(struct server *, struct event_base *, int listen_fd, int port,
    const char *host, const struct server_opts *);
/* The same with a kind of its own (ops copied by pointer, kept). */
int server_init_ops(struct server *, const struct server_ops *, void *data,
    struct event_base *, int listen_fd, int port, const char *host,
    const struct server_opts *);

/* A reply for later, owed to c's peer for c's message (the handler then
 * returns CMD_PENDING). */
struct pending *pending_new(struct cmd_ctx *c, void *arg);
/* Give it (code 0 result, 1 error) and free it; the peer may be gone. */
void pending_reply(struct pending *, int code, const char *result, size_t len);
void server_free(struct server *);

/* Send an async command to a peer (notifications). */
void peer_send_async(struct peer *, const char *const *words,
    const size_t *lens, size_t n);
/* Write what peers were given outside the server's own callbacks (a
 * semi-private registry's upstream events): it does so itself when its
 * callbacks return. */
void server_flush(struct server *);
/* Mark a peer dead with a logged reason; it is freed later. */
void peer_fail(struct peer *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
