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
	int remote_port; /* the peer's own comm port, from its first line */
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
	struct registry *mirror; /* NULL unless semi-private */
	int upstream_port;       /* 0: none connected */
	uint64_t messages;
	uint64_t refused;

	/* Scratch reused by every message (no allocation per request). */
	struct tlist msg, frags, words;
	struct tbuf scratch, result, err, out;
	struct tbuf note, payload; /* notifications (fan-out hot path) */
	uint64_t note_change;      /* what note holds: change and kind */
	int note_kind;
	struct tbuf rbuf; /* reads of peers with no partial input */
};

int server_init(struct server *, struct event_base *, int listen_fd, int port,
    const char *host, const struct server_opts *);
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
