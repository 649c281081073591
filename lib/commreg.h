/*
 * commreg.h: the C interface to the commreg user registry (installed; see
 * docs/c-api.md for a walk-through and a complete example).
 *
 * A Tcl comm application registers a name ("foo", "foo #2") with its comm
 * port in the registry of its user on its host; others look names up,
 * list them or watch them come and go (docs/protocol.md).  The registry is
 * found through ~/.tcl/comm/registry/<hostname> and elected when none runs
 * (docs/election.md).
 *
 * Two interfaces share the types below:
 *
 *  - the blocking one (commreg_open ... commreg_close): one connection,
 *    one call at a time, every wait bounded.  For command-line tools and
 *    programs that only hold a name.  It does not survive the loss of the
 *    registry: after that every call returns -1.
 *
 *  - the asynchronous one (commreg_async_*), driven by the application's
 *    libevent event_base: every call returns at once and reports through a
 *    callback.  It survives the loss of the registry: it re-elects one on
 *    the same port (spawning commregd, or hosting the registry in this
 *    process), registers every name again with its old serial where it is
 *    still free, and re-establishes every watch with a fresh snapshot.
 *
 * Private registries (docs/private.md): when the environment variable
 * TCL_COMM_REGPORT holds a port, both interfaces use the registry there
 * instead; when nothing (or no registry) answers there, they find the
 * user registry as usual.  A handle that did reach a private registry is
 * bound to it: when that registry goes away it is not re-elected (its
 * process group is over); see on_reg_lost and COMMREG_STALE below.
 *
 * Host and global scope: a registration may ask to be seen by every user
 * of the host (commreg_async_register_scope, commreg_register_scope).
 * The application still talks only to its user registry, which forwards
 * the registration to the host gateway; the gateway judges it by the
 * administrator's policy and its verdict is the reply.  The gateway may
 * withdraw it later (on_reg_lost).  Other users' entries then appear in
 * lists, watches and lookups as "foo@alice" (commreg_entry.user).
 *
 * All strings are UTF-8 and NUL-terminated.  The library is not
 * thread-safe: use one handle from one thread (the event loop's).
 *
 * Link with `pkg-config --cflags --libs commreg`.
 */
#ifndef COMMREG_H
#define COMMREG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *commreg_version(void);

/*
 * Diagnostics.  The library never writes on its own: without a handler
 * its lines are dropped.  commreg_set_log_handler gives it one: each line
 * (the message alone: no time stamp, no newline) and its level are passed
 * to fn, from inside whichever library call or callback logs it; fn must
 * not call the library.  fn NULL removes the handler.
 *
 * commreg_set_log_level chooses the lines: COMMREG_LOG_WARNING (0, the
 * default), COMMREG_LOG_INFO (1) adds the life cycle, COMMREG_LOG_DEBUG
 * (2) tracing.  Called with no handler set, it also asks for the lines on
 * stderr, as it always did.
 *
 * The library never ends its process either: running out of memory is an
 * error of the call, or of the connection (see docs/c-api.md).
 */
#define COMMREG_LOG_WARNING 0
#define COMMREG_LOG_INFO    1
#define COMMREG_LOG_DEBUG   2
typedef void (*commreg_log_fn)(int level, const char *line, void *arg);
void commreg_set_log_handler(commreg_log_fn fn, void *arg);
void commreg_set_log_level(int level);

/* ---- common types ------------------------------------------------------- */

/* Defaults used when an option below is 0. */
#define COMMREG_CONNECT_TIMEOUT_MS 2000
#define COMMREG_REPLY_TIMEOUT_MS   5000
#define COMMREG_SPAWN_TIMEOUT_MS   5000
#define COMMREG_OPEN_TIMEOUT_MS    10000
/* A registry silent this long (asynchronous interface; it was pinged
 * after a third of it) is taken as lost. */
#define COMMREG_LIVENESS_MS 15000
/*
 * A reply may be much larger than a request: Commreg/List of thousands of
 * entries.  The registry refuses requests above 64 KiB; the client accepts
 * replies up to this size before it calls the peer broken.
 */
#define COMMREG_CLIENT_MAX_MESSAGE (16 * 1024 * 1024)
/* Events queued and not yet taken (blocking API) before it gives up. */
#define COMMREG_MAX_QUEUED_EVENTS 65536

/*
 * One registry entry (docs/protocol.md §4).  Strings are never NULL (""
 * when the registry sent none); numbers the registry left empty are 0
 * (port) or -1 (uid, pid).
 */
struct commreg_entry {
	char *name; /* "foo", "foo #2"; another user's: "foo@alice" */
	long serial;
	char *base; /* the requested name */
	int port;
	char *host;
	char *data;  /* nns DATA, "PORT HOST" for Commreg/Register */
	char *scope; /* "user", "private", "host", "global" */
	long uid;
	long pid;
	long long since; /* Unix time of registration */
	char *user;      /* the owner's login name (host and global
	                    entries); "" when the registry sent none */
	char *path;      /* entries of other hosts: the gateways they came
	                    through, origin first ("" otherwise) */
};

/* Parse one entry dict; unknown keys are skipped.  -1 with err. */
int commreg_entry_parse(const char *dict, size_t len, struct commreg_entry *e,
    char *err, size_t errlen);
/* Parse a list of entry dicts into a vector (free: commreg_entries_free). */
int commreg_entries_parse(const char *list, size_t len,
    struct commreg_entry **v, size_t *n, char *err, size_t errlen);
void commreg_entry_clear(struct commreg_entry *);
void commreg_entries_free(struct commreg_entry *, size_t n);

/* ---- the blocking interface --------------------------------------------- */

/*
 * Return convention: 0 success, 1 the registry answered with an error
 * (commreg_error() says what), -1 the connection is lost, a reply did
 * not come in time, or memory ran out (commreg_error() says why).  After
 * -1 the client is dead: every later call returns -1; close it.
 *
 * The connection runs only while a call of the client waits (on a
 * private event loop): the registry's pings are answered then.
 */
struct commreg_client;

struct commreg_open_opts {
	const char *home;       /* instead of $HOME; NULL: $HOME */
	const char *commregd;   /* daemon to run; NULL: see commreg_open */
	int connect_timeout_ms; /* 0: COMMREG_CONNECT_TIMEOUT_MS */
	int reply_timeout_ms;   /* 0: COMMREG_REPLY_TIMEOUT_MS */
	int spawn_timeout_ms;   /* 0: COMMREG_SPAWN_TIMEOUT_MS */
	size_t max_message;     /* 0: COMMREG_CLIENT_MAX_MESSAGE */
	int no_spawn;           /* never start commregd (commreg status) */
};

enum commreg_event_type {
	COMMREG_EVENT_ADD,
	COMMREG_EVENT_REMOVE,
};

/*
 * A change seen by a watch.  For an nns Search/Continuous watch (nns set)
 * the entry holds only name, data and, when data is "PORT ?HOST?", port
 * and host; one Change message with several names gives several events.
 */
struct commreg_event {
	enum commreg_event_type type;
	char *tag;
	int nns;
	struct commreg_entry entry;
};
void commreg_event_clear(struct commreg_event *);

/* What Commreg/Hello said about the registry. */
struct commreg_hello {
	char version[64];
	char owner[256];
	char host[256];
	char scope[32];
	int protocol;
	int port;
	long uid;
	long pid;
};

/* Commreg/Stats; a field the registry did not send is -1. */
struct commreg_stats {
	long long entries;
	long long connections;
	long long watches;
	long long uptime;
	long long messages;
	long long refused;
	char version[64];
};

/*
 * Find (or start) the user registry and connect to it.  o may be NULL.
 * The daemon run when none lives is o->commregd, else $COMMREG_COMMREGD,
 * else a `commregd` beside the running program, else the installed one,
 * else `commregd` from PATH; it runs with HOME set to the home used for
 * discovery.  Returns NULL with a one-line reason in err.  With
 * o->no_spawn, when no registry answers, errno is ESRCH.
 */
struct commreg_client *commreg_open(const struct commreg_open_opts *o,
    char *err, size_t errlen);
/* Connect to a registry on 127.0.0.1:port (no port file, no election). */
struct commreg_client *commreg_connect_port(int port,
    const struct commreg_open_opts *o, char *err, size_t errlen);
/* Take over fd, already connected to a registry; closed on failure. */
struct commreg_client *commreg_attach(int fd, const struct commreg_open_opts *o,
    char *err, size_t errlen);
/* Close the connection; the registry then drops every name it made. */
void commreg_close(struct commreg_client *);

const char *commreg_error(const struct commreg_client *);
/* The connection's socket, to poll(2) several clients and call
 * commreg_dispatch(c, 0) on the ready ones; -1 once the client is dead. */
int commreg_fd(const struct commreg_client *);
const struct commreg_hello *commreg_hello_info(const struct commreg_client *);

/* Commreg/Register NAME PORT ?-host H? (host NULL: localhost). */
int commreg_register(struct commreg_client *, const char *name, int port,
    const char *host, char *assigned, size_t alen);
/*
 * The same with ?-scope S?: scope NULL or "user" is commreg_register;
 * "host" or "global" make the user registry ask the host gateway, whose
 * refusal is status 1 with a message starting "refused by the host
 * gateway: " (or saying no gateway is configured or reachable).  The
 * blocking interface is not told when the gateway later withdraws such
 * a registration (Commreg/Withdrawn); the asynchronous one is.
 */
int commreg_register_scope(struct commreg_client *, const char *name, int port,
    const char *host, const char *scope, char *assigned, size_t alen);
int commreg_unregister(struct commreg_client *, const char *name);
/* Commreg/Lookup: the comm id "PORT HOST" of name into commid. */
int commreg_lookup_id(struct commreg_client *, const char *name, char *commid,
    size_t len);
/* Commreg/List ?PATTERN? (NULL: all), sorted by name. */
int commreg_list(struct commreg_client *, const char *pattern,
    struct commreg_entry **v, size_t *n);
/* Commreg/Watch TAG PATTERN: the snapshot into v, n (unless v is NULL);
 * then events through commreg_next_event. */
int commreg_watch(struct commreg_client *, const char *tag, const char *pattern,
    struct commreg_entry **v, size_t *n);
int commreg_unwatch(struct commreg_client *, const char *tag);
int commreg_stats(struct commreg_client *, struct commreg_stats *);
/*
 * The next queued event, waiting up to timeout_ms (0: do not wait,
 * negative: no limit).  1 with *ev filled (free: commreg_event_clear),
 * 0 none in time, -1 connection lost.  A signal does not end the wait:
 * a program that must look at a flag set by a handler waits in slices.
 */
int commreg_next_event(struct commreg_client *, int timeout_ms,
    struct commreg_event *ev);
/* Wait up to timeout_ms for input and process it.  0 fine, -1 lost. */
int commreg_dispatch(struct commreg_client *, int timeout_ms);

/* ---- the asynchronous interface (libevent) ------------------------------ */

struct commreg_async; /* one handle: a connection that fails over */
struct commreg_reg;   /* one registration held by a handle */
struct commreg_watch; /* one watch held by a handle */

/*
 * How a lost registry is replaced (both follow docs/election.md):
 *
 *  COMMREG_MODE_SPAWN      run `commregd --detach` (found as for
 *                          commreg_open), which holds the election and
 *                          exits once a registry listens; then connect.
 *  COMMREG_MODE_INPROCESS  hold the election in this process; when it
 *                          wins, serve the registry on the application's
 *                          own event_base (it then connects to itself
 *                          like any client).  In this mode the library
 *                          sets SIGPIPE to SIG_IGN if it was SIG_DFL.
 */
enum commreg_mode {
	COMMREG_MODE_SPAWN = 0,
	COMMREG_MODE_INPROCESS = 1,
};

/*
 * Status in every completion callback: 0 success, 1 the registry
 * answered with an error (message says what), -1 no answer: timed out,
 * or the handle gave up (message says why).
 */

/* Opening: the first connection is up and what was asked before it came
 * (registrations, watches) is in place; or -1: no registry could be found
 * or elected within open_timeout_ms (the handle is then useless: close
 * it). */
typedef void (*commreg_open_cb)(struct commreg_async *, int status,
    const char *message, void *arg);
/* The registry connection closed.  The library is already re-electing;
 * requests made meanwhile wait for the new registry. */
typedef void (
    *commreg_lost_cb)(struct commreg_async *, const char *reason, void *arg);
/* Connected again, on `port`, and every registration and watch is back
 * (renamed and watch callbacks of the restoration come before this one).
 * hosted: this process now serves the registry (COMMREG_MODE_INPROCESS). */
typedef void (*commreg_regained_cb)(struct commreg_async *, int port,
    int hosted, void *arg);
/* Re-registration after failover gave a registration a new name because
 * its serial was taken meanwhile ("foo #2" -> "foo #3"). */
typedef void (*commreg_renamed_cb)(struct commreg_async *, struct commreg_reg *,
    const char *oldname, const char *newname, void *arg);
/*
 * A held registration is gone for good, and is not made again after a
 * failover; reg is freed when the callback returns.  Either
 *  - the private registry (TCL_COMM_REGPORT) this handle used is gone,
 *    and with it this registration (commreg_async_orphaned() is then 1;
 *    called for each registration after on_lost); or
 *  - the host gateway withdrew this host or global registration (its
 *    policy changed; Commreg/Withdrawn NAME REASON): reason is the
 *    registry's REASON, commreg_reg_name(reg) the name withdrawn.  The
 *    registry has removed the entry already; the handle carries on.
 */
typedef void (*commreg_reg_lost_cb)(struct commreg_async *,
    struct commreg_reg *, const char *reason, void *arg);
/* Something failed that no request waits for: a registration refused on
 * re-registration, or no registry for more than 10 s (then each failed
 * try is reported; by then tries come about once a second). */
typedef void (
    *commreg_error_cb)(struct commreg_async *, const char *message, void *arg);

struct commreg_async_opts {
	const char *home;     /* instead of $HOME; NULL: $HOME */
	const char *commregd; /* COMMREG_MODE_SPAWN: the daemon to run */
	enum commreg_mode mode;
	int connect_timeout_ms; /* 0: COMMREG_CONNECT_TIMEOUT_MS */
	int reply_timeout_ms;   /* 0: COMMREG_REPLY_TIMEOUT_MS; bounds each
	                           request, waiting for a registry included */
	int spawn_timeout_ms;   /* 0: COMMREG_SPAWN_TIMEOUT_MS */
	int open_timeout_ms;    /* 0: COMMREG_OPEN_TIMEOUT_MS */
	size_t max_message;     /* 0: COMMREG_CLIENT_MAX_MESSAGE */

	/* Application callbacks, each optional; arg is passed to all. */
	commreg_open_cb on_open;
	commreg_lost_cb on_lost;
	commreg_regained_cb on_regained;
	commreg_renamed_cb on_renamed;
	commreg_error_cb on_error;
	void *arg;
	commreg_reg_lost_cb on_reg_lost;

	/*
	 * Liveness of the registry connection.  A registry that says
	 * nothing for a third of this is pinged (a comm send of an empty
	 * script, which any registry answers at once); one that stays
	 * silent for all of it is taken as lost (on_lost), and replaced as
	 * any lost registry: a hung or stopped registry is noticed within
	 * this time even when the application asks nothing.  0:
	 * COMMREG_LIVENESS_MS; negative: no check; at least 300.
	 */
	int liveness_ms;
};

/*
 * Start finding (or electing) the registry; returns at once.  o is copied
 * (NULL: defaults).  NULL with err only for what no retry can fix (no
 * home directory, an unsafe ~/.tcl/comm) and when memory runs out.
 * Requests may be made at once: they wait for the connection.
 *
 * Running out of memory later fails the request that needed it (status
 * -1, or -1/NULL from the call); in the middle of what the registry sent,
 * it drops the connection, which is then restored as after any loss
 * (on_lost, on_regained, watches resynchronised).
 */
struct commreg_async *commreg_async_open(struct event_base *,
    const struct commreg_async_opts *o, char *err, size_t errlen);
/*
 * Close: the registry drops this handle's names and watches; if this
 * process hosts the registry, it stops serving and another application
 * takes over on the same port.  Pending callbacks are not called.  Safe
 * inside a callback of the same handle.
 */
void commreg_async_close(struct commreg_async *);

/* 1 when connected and restored. */
int commreg_async_connected(const struct commreg_async *);
/* The registry's port (0 while none), and whether this process hosts it. */
int commreg_async_port(const struct commreg_async *);
int commreg_async_hosting(const struct commreg_async *);
/* The port of the private registry (TCL_COMM_REGPORT) this handle is
 * bound to; 0: it uses the user registry (or has not connected yet). */
int commreg_async_private(const struct commreg_async *);
/* 1 once that private registry is gone: registrations, watches and
 * lists fail from then on; lookups answer from memory (COMMREG_STALE). */
int commreg_async_orphaned(const struct commreg_async *);

/*
 * Register name for the comm port `port` on host (NULL: localhost).  cb
 * (optional) reports the outcome once: status 0 with the assigned name, or
 * an error; after an error the handle is freed when cb returns.  A held
 * registration is made again after every failover, asking for its serial;
 * on_renamed says when it changed.  Returns NULL only on bad arguments, a
 * closed handle or no memory.
 */
typedef void (*commreg_reg_cb)(struct commreg_async *, struct commreg_reg *,
    int status, const char *name_or_message, void *arg);
struct commreg_reg *commreg_async_register(struct commreg_async *,
    const char *name, int port, const char *host, commreg_reg_cb cb, void *arg);
/*
 * The same with a scope: NULL or "user" is commreg_async_register; any
 * other (host, global) is sent as `-scope S`, at first and after every
 * failover.  For host and global the user registry asks the host
 * gateway, whose verdict is the reply: cb gets status 1 with a message
 * starting "refused by the host gateway: " (or saying no gateway is
 * configured or reachable).  When the gateway withdraws it later,
 * on_reg_lost says so and the registration is dropped.
 */
struct commreg_reg *commreg_async_register_scope(struct commreg_async *,
    const char *name, int port, const char *host, const char *scope,
    commreg_reg_cb cb, void *arg);
/* The assigned name ("" until registered), the requested one, its serial
 * (0 until registered) and the cb's arg. */
const char *commreg_reg_name(const struct commreg_reg *);
const char *commreg_reg_base(const struct commreg_reg *);
long commreg_reg_serial(const struct commreg_reg *);
void *commreg_reg_arg(const struct commreg_reg *);

/* Completion of unregister and of commreg_async_unwatch-like calls. */
typedef void (*commreg_done_cb)(struct commreg_async *, int status,
    const char *message, void *arg);
/* Drop a registration; reg is invalid from now on.  cb optional. */
int commreg_async_unregister(struct commreg_async *, struct commreg_reg *,
    commreg_done_cb cb, void *arg);

/*
 * Commreg/Lookup: status 0 with the comm id "PORT HOST".  Once the
 * private registry of the handle is gone, a name this handle learned
 * before (from a lookup, a list or a watch, and not seen removed since)
 * is answered from memory with status COMMREG_STALE: the application may
 * well still be there (comm connections do not need the registry), but
 * nobody can tell; any other name gets -1.
 */
#define COMMREG_STALE 2
typedef void (*commreg_lookup_cb)(struct commreg_async *, int status,
    const char *commid_or_message, void *arg);
int commreg_async_lookup(struct commreg_async *, const char *name,
    commreg_lookup_cb cb, void *arg);

/* Commreg/List ?PATTERN? (NULL: all): entries sorted by name, valid
 * during the callback; message set when status != 0. */
typedef void (*commreg_list_cb)(struct commreg_async *, int status,
    const struct commreg_entry *v, size_t n, const char *message, void *arg);
int commreg_async_list(struct commreg_async *, const char *pattern,
    commreg_list_cb cb, void *arg);

/* Any literal command (docs/protocol.md §2) as n words: its result. */
typedef void (*commreg_call_cb)(struct commreg_async *, int status,
    const char *result, size_t len, void *arg);
int commreg_async_call(struct commreg_async *, const char *const *words,
    size_t n, commreg_call_cb cb, void *arg);

/*
 * Watches.  The callback gets, in order:
 *  - COMMREG_WATCH_SNAPSHOT: the entries matching now (entries, n),
 *    resync 0; then ADD and REMOVE for each change (entry).
 *  - after a failover, once the watch is re-established: a fresh
 *    SNAPSHOT with resync 1, followed by REMOVE and ADD events with resync
 *    1 that turn the view the watch had before the loss into the fresh
 *    one (an entry whose port, host or pid changed is removed and added).
 *    A program can thus either replace its view by the snapshot and
 *    ignore resync events, or just apply every ADD and REMOVE.
 *  - COMMREG_WATCH_ERROR (message): the registry refused the watch; the
 *    watch is freed when the callback returns.
 * Pointers are valid during the callback only.
 */
enum commreg_watch_what {
	COMMREG_WATCH_SNAPSHOT,
	COMMREG_WATCH_ADD,
	COMMREG_WATCH_REMOVE,
	COMMREG_WATCH_ERROR,
};

struct commreg_watch_event {
	enum commreg_watch_what what;
	int resync;
	const struct commreg_entry *entries; /* SNAPSHOT */
	size_t n;
	const struct commreg_entry *entry; /* ADD, REMOVE */
	const char *message;               /* ERROR */
};

typedef void (*commreg_watch_cb)(struct commreg_async *, struct commreg_watch *,
    const struct commreg_watch_event *, void *arg);
/* Watch names matching pattern (Tcl string match; NULL: "*"). */
struct commreg_watch *commreg_async_watch(struct commreg_async *,
    const char *pattern, commreg_watch_cb cb, void *arg);
/* Stop it; w is invalid from now on.  Events stop at once. */
int commreg_async_unwatch(struct commreg_async *, struct commreg_watch *);

#ifdef __cplusplus
}
#endif

#endif
