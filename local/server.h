/*
 * The registry server: accepts comm connections and decides who may
 * connect (the kernel's word on the peer's uid, or the server kind's
 * admit hook), then hands each to the peer engine (engine/peer.h), which
 * frames, answers through the command table (handlers.c, or the kind's)
 * against the registry table (registry.c), and enforces every limit.
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
#include "peer.h"
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
	int partial_ms;        /* an incomplete message may wait this long */
	int ping_idle_ms;      /* silence before a liveness ping; 0: none */
	int ping_timeout_ms;   /* then silence before the peer is dropped */
};

void server_default_opts(struct server_opts *);
/* --liveness MS: a peer silent for MS/3 is pinged, one silent for MS is
 * closed; 0: never.  -1 when arg is not 0 or 300 to 86400000. */
int server_parse_liveness(struct server_opts *, const char *arg);

/* A Commreg/Register request as the peer made it (handlers.c). */
struct reg_request {
	const char *name;
	size_t namelen;
	int port;
	const char *host; /* "localhost" when not given */
	const char *data; /* -data, or NULL */
	size_t datalen;
	const struct tl_elem *scope; /* -scope, or NULL */
	int serial;                  /* -serial, or 0 */
	pid_t pid;                   /* -pid (the peer's claim), or 0 */
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
	/*
	 * Admission of a registration the registry's own rules passed: the
	 * kind may refuse it (CMD_ERROR, why in c->result), answer it
	 * itself (CMD_OK, nothing added), or return -1 to have a added, which
	 * it may change (the name it is kept under, its scope).
	 */
	int (*admit_entry)(struct cmd_ctx *, const struct reg_request *,
	    struct reg_add *a);
	/* The reply once it is added (NULL: the entry's name). */
	int (*entry_added)(struct cmd_ctx *, const struct reg_request *,
	    struct reg_entry *);
	/* More Commreg/Stats pairs of the kind's own (NULL: none). */
	void (*stats)(struct server *, struct tbuf *);
	/* The table's key for a name a peer says (NULL: the name itself). */
	void (*entry_key)(struct cmd_ctx *, const char *name, size_t len,
	    struct tbuf *key);
};

struct server {
	const struct server_ops *ops;
	void *data; /* the server kind's own */
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_rest; /* out of descriptors: accept later */
	/* The engine every connection of this process's server goes
	 * through: accepted peers, and the links it makes (gwlink.c,
	 * gateway/fed.c). */
	struct engine eng;
	struct engine_limits lim;
	struct peer_ops pops; /* accepted peers' (server.c) */
	struct registry *reg;
	struct server_opts o;
	size_t npeers; /* accepted peers */
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
	struct dist *dist;       /* user registry with a cookie: the other
	                            hosts' registries (dist.h), or NULL */
	/* Names a lookup finds beyond the table (NAME@HOST of the
	 * distributed registry, dist.h); NULL: none. */
	const struct reg_entry *(
	    *lookup_more)(struct server *, const char *name, size_t len);
	/* A standby that took over: the dead registry's entries, held
	 * for their applications (standby.h); NULL: none. */
	struct holdover *holdover;
	/* An application of this host registers again under the serial it
	 * had (after a failover): a copy of another host's entry that took
	 * the name meanwhile makes room (dist.h); NULL: none. */
	void (*name_wanted)(struct server *, const char *name, size_t len);
	int upstream_port; /* 0: none connected */
	uint64_t refused;
	uint64_t accepted; /* Unix socket peers, for their names */
	/* The body of the last change told to watchers (handlers_notify),
	 * formatted once for all of them. */
	struct tbuf note;
	uint64_t note_change;
	int note_kind;
};

/* -1 when memory runs out: nothing is left allocated and listen_fd is
 * still the caller's. */
int server_init(struct server *, struct event_base *, int listen_fd, int port,
    const char *host, const struct server_opts *);
/* The same with a kind of its own (ops copied by pointer, kept). */
int server_init_ops(struct server *, const struct server_ops *, void *data,
    struct event_base *, int listen_fd, int port, const char *host,
    const struct server_opts *);

void server_free(struct server *);

/* Write what peers were given outside the server's own callbacks (a
 * semi-private registry's upstream events): it does so itself when its
 * callbacks return. */
void server_flush(struct server *);

#endif
