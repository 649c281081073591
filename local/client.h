/*
 * The commreg client library: how a C program finds its user registry and
 * talks to it (docs/protocol.md).
 *
 * Discovery is what any comm application does (ARCHITECTURE §3): check the
 * ~/.tcl/comm tree, read the port file ~/.tcl/comm/registry/<hostname>,
 * connect to 127.0.0.1:PORT, make sure the peer socket belongs to our own
 * uid, do the comm v3 handshake and say Commreg/Hello, which proves the
 * peer is a registry.  When there is no registry (no port file, a stale
 * one, a peer that is not a registry), the library runs
 * `commregd --detach`, which holds the election and returns once a
 * registry listens, then tries again; a bounded number of times.
 *
 * This API is blocking, and everything is bounded: connecting, each reply,
 * the commregd start, the size of one message.  All state of a connection
 * lives in struct commreg_client and the wire handling is separate from
 * the waiting, so an event-loop driver can be put on top of the same code.
 *
 * While a call waits for its reply, messages the registry sends on its own
 * (Commreg/Event, nns Search/Continuous/Change) are decoded and queued;
 * commreg_next_event() hands them out in arrival order.
 *
 * Return convention of the calls below: 0 success, 1 the registry answered
 * with an error (commreg_error() says what), -1 the connection is lost or
 * a reply did not come in time (commreg_error() says why).  After -1 the
 * client is dead: every later call returns -1; close it.
 */
#ifndef LOCAL_CLIENT_H
#define LOCAL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "tbuf.h"

/* The project version, defined by the build (CMakeLists.txt). */
#define COMMREG_CLIENT_VERSION COMMREG_VERSION

/* Defaults, overridable in struct commreg_open_opts. */
#define COMMREG_CONNECT_TIMEOUT_MS 2000
#define COMMREG_REPLY_TIMEOUT_MS   5000
#define COMMREG_SPAWN_TIMEOUT_MS   5000
/*
 * A reply may be much larger than a request: Commreg/List of thousands of
 * entries.  The registry refuses requests above 64 KiB; the client accepts
 * replies up to this size before it calls the peer broken.
 */
#define COMMREG_CLIENT_MAX_MESSAGE (16 * 1024 * 1024)
/* Events queued and not yet taken before the client gives up on itself. */
#define COMMREG_MAX_QUEUED_EVENTS  65536

struct commreg_client;

struct commreg_open_opts {
	const char *home;        /* instead of $HOME; NULL: $HOME */
	const char *commregd;    /* daemon to run; NULL: see commreg_open */
	int  connect_timeout_ms; /* 0: COMMREG_CONNECT_TIMEOUT_MS */
	int  reply_timeout_ms;   /* 0: COMMREG_REPLY_TIMEOUT_MS */
	int  spawn_timeout_ms;   /* 0: COMMREG_SPAWN_TIMEOUT_MS */
	size_t max_message;      /* 0: COMMREG_CLIENT_MAX_MESSAGE */
	int  no_spawn;           /* never start commregd (commreg status) */
};

/*
 * One registry entry (docs/protocol.md §4).  Strings are owned copies,
 * never NULL ("" when the registry sent none); numbers the registry left
 * empty are 0 (port) or -1 (uid, pid).
 */
struct commreg_entry {
	char      *name;   /* "foo", "foo #2" */
	long       serial;
	char      *base;   /* the requested name */
	int        port;
	char      *host;
	char      *data;   /* nns DATA, "PORT HOST" for Commreg/Register */
	char      *scope;  /* "user" */
	long       uid;
	long       pid;
	long long  since;  /* Unix time of registration */
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
	char                   *tag;
	int                     nns;
	struct commreg_entry    entry;
};

/* What Commreg/Hello said about the registry. */
struct commreg_hello {
	char version[64];
	char owner[256];
	char host[256];
	char scope[32];
	int  protocol;
	int  port;
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
	char      version[64];
};

/*
 * Find (or start) the user registry and connect to it, as described at the
 * top of this file.  o may be NULL for the defaults.  The daemon run when
 * none lives is o->commregd, else $COMMREG_COMMREGD, else a `commregd`
 * beside the running program, else `commregd` from PATH; it runs with
 * HOME set to the home used for discovery.
 *
 * Returns NULL with a one-line reason in err.  With o->no_spawn, when no
 * registry answers, errno is ESRCH (anything else is a real error, e.g. an
 * unsafe ~/.tcl/comm).
 */
struct commreg_client *commreg_open(const struct commreg_open_opts *o,
    char *err, size_t errlen);

/* Connect to a registry on 127.0.0.1:port (no port file, no election). */
struct commreg_client *commreg_connect_port(int port,
    const struct commreg_open_opts *o, char *err, size_t errlen);

/*
 * Take over fd, already connected to a registry, and do the handshake and
 * Commreg/Hello on it.  fd is closed on failure.  No peer uid check: that
 * is the business of whoever connected it.
 */
struct commreg_client *commreg_attach(int fd,
    const struct commreg_open_opts *o, char *err, size_t errlen);

/* Close the connection; the registry then drops every name it made. */
void commreg_close(struct commreg_client *);

/* The last error, for a person ("" if none). */
const char *commreg_error(const struct commreg_client *);
/* The socket, e.g. to poll(2) it among others; see commreg_dispatch. */
int commreg_fd(const struct commreg_client *);
const struct commreg_hello *commreg_hello_info(const struct commreg_client *);

/*
 * Send one literal command, words[0..n) (lens NULL: C strings), as a comm
 * `send` and wait for its reply.  Returns 0 with the RESULT in result, 1
 * with the error message in result, -1 with the reason in result.  result
 * is reset first.
 */
int commreg_call(struct commreg_client *, const char *const *words,
    const size_t *lens, size_t n, struct tbuf *result);

/*
 * Commreg/Register NAME PORT ?-host H?; host NULL: the registry's default
 * (localhost).  The assigned name ("foo #2") goes to assigned.
 */
int commreg_register(struct commreg_client *, const char *name, int port,
    const char *host, char *assigned, size_t alen);
int commreg_unregister(struct commreg_client *, const char *name);

/* Commreg/Lookup: the comm id "PORT HOST" into commid (reset first).  An
 * absent name is 1 (error `no application named "NAME"`). */
int commreg_lookup(struct commreg_client *, const char *name,
    struct tbuf *commid);

/* Commreg/List ?PATTERN? (NULL: all), sorted by name.  Free the vector
 * with commreg_entries_free. */
int commreg_list(struct commreg_client *, const char *pattern,
    struct commreg_entry **v, size_t *n);

/*
 * Commreg/Watch TAG PATTERN: the entries matching now (the snapshot) into
 * v and n, unless v is NULL; then events via commreg_next_event.
 */
int commreg_watch(struct commreg_client *, const char *tag,
    const char *pattern, struct commreg_entry **v, size_t *n);
int commreg_unwatch(struct commreg_client *, const char *tag);

int commreg_stats(struct commreg_client *, struct commreg_stats *);

/*
 * The next queued event, waiting up to timeout_ms for one (0: do not wait,
 * negative: no limit).  Returns 1 with *ev filled (free with
 * commreg_event_clear), 0 when none came in time or a signal interrupted
 * the wait, -1 when the connection is lost (queued events are still
 * handed out first).
 */
int commreg_next_event(struct commreg_client *, int timeout_ms,
    struct commreg_event *ev);

/*
 * Wait up to timeout_ms for input and process it (queue events, notice a
 * closed connection).  0 fine (also on timeout or signal), -1 lost.  For a
 * program that only holds its registration.
 */
int commreg_dispatch(struct commreg_client *, int timeout_ms);

/* Parse one entry dict (docs/protocol.md §4) into e.  Unknown keys are
 * skipped, so a newer registry may add fields.  Returns -1 with err. */
int commreg_entry_parse(const char *dict, size_t len,
    struct commreg_entry *e, char *err, size_t errlen);
/* Parse a list of entry dicts. */
int commreg_entries_parse(const char *list, size_t len,
    struct commreg_entry **v, size_t *n, char *err, size_t errlen);
void commreg_entry_clear(struct commreg_entry *);
void commreg_entries_free(struct commreg_entry *, size_t n);
void commreg_event_clear(struct commreg_event *);

#endif
