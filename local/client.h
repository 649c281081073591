/*
 * The commreg client library, inside view (the public contract is
 * commreg.h; this header adds what the project's own programs, tests and
 * the event-loop driver async.c use).
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
 * client.c holds one connection's wire state (struct commreg_client) and
 * two drivers for it: the blocking one (poll(2) with deadlines, the calls
 * in commreg.h) and the hooks below, through which async.c runs the same
 * wire code from a libevent loop.
 *
 * While a blocking call waits for its reply, messages the registry sends
 * on its own (Commreg/Event, nns Search/Continuous/Change) are decoded and
 * queued; commreg_next_event() hands them out in arrival order.
 */
#ifndef LOCAL_CLIENT_H
#define LOCAL_CLIENT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "commreg.h"
#include "tbuf.h"

struct tlist;

/* The project version, defined by the build (CMakeLists.txt). */
#define COMMREG_CLIENT_VERSION COMMREG_VERSION

/*
 * Send one literal command, words[0..n) (lens NULL: C strings), as a comm
 * `send` and wait for its reply.  Returns 0 with the RESULT in result, 1
 * with the error message in result, -1 with the reason in result.  result
 * is reset first.
 */
int commreg_call(struct commreg_client *, const char *const *words,
    const size_t *lens, size_t n, struct tbuf *result);

/* Commreg/Lookup: the comm id "PORT HOST" into commid (reset first).  An
 * absent name is 1 (error `no application named "NAME"`). */
int commreg_lookup(struct commreg_client *, const char *name,
    struct tbuf *commid);

/* ---- for the event-loop driver (async.c) ------------------------------ */

/*
 * With hooks set, the wire code hands every reply and event to them
 * instead of keeping them for a blocking caller, and a failure marks the
 * client dead without closing its socket: the driver removes its events
 * first, then calls commreg_close().  The hooks run inside
 * client_read_ready() and must not free the client.
 */
struct client_hooks {
	/* A reply (or callback) to our send `serial`: code and result. */
	void (*reply)(void *, int64_t serial, int code, const char *result,
	    size_t len);
	/* A decoded Commreg/Event or Search/Continuous/Change; the hook
	 * owns ev (commreg_event_clear). */
	void (*event)(void *, struct commreg_event *ev);
	/* Optional: any other async command (Commreg/Withdrawn ...), as
	 * its words, valid during the call.  NULL: logged and ignored. */
	void (*command)(void *, const struct tlist *words);
};

/* Wrap a connected (or connecting) nonblocking fd; the comm handshake
 * line is queued. */
struct commreg_client *client_start(int fd, size_t max_message,
    const struct client_hooks *, void *arg);
/* Queue a send of one command; returns its serial. */
int64_t client_send(struct commreg_client *, const char *const *words,
    const size_t *lens, size_t n);
/* The socket is readable / writable: do one read / write. */
void client_read_ready(struct commreg_client *);
void client_write_ready(struct commreg_client *);
size_t client_output_pending(const struct commreg_client *);
int client_is_dead(const struct commreg_client *);
/* Give up on the connection with a reason (commreg_error says it). */
void client_abort(struct commreg_client *, const char *why);

/* The reply to Commreg/Hello must say `registry commreg`. */
int client_hello_parse(struct commreg_hello *, const char *, size_t);
/*
 * Is the registry on fd our own uid's?  Asked of the kernel, and of the
 * hello's claim.  -1 with a reason when not.
 */
int client_check_owner(int fd, int port, const struct commreg_hello *,
    char *err, size_t errlen);

/* Start a nonblocking connect to 127.0.0.1:port.  Returns the fd (the
 * connect may still be in progress), or -1 with err. */
int client_connect_start(int port, char *err, size_t errlen);

/* Port file reading (docs/election.md). */
enum client_find {
	CLIENT_FIND_OK,
	CLIENT_FIND_NONE,  /* no registry there: worth electing one */
	CLIENT_FIND_FATAL, /* electing would not help */
};
enum client_find client_port_file_read(const char *path, int *port, char *err,
    size_t errlen);
/* Is the port file locked by a live process (a registry or a contender)?
 * From /proc/locks; 0 when not, or when that cannot be known. */
int client_port_file_locked(const char *path);

/*
 * The home to use (opt, $HOME, the password file), and the checked
 * registry directory and port file path in it.  -1 with err.
 */
const char *client_home_dir(const char *opt);
int client_registry_path(const char *home, char *regdir, size_t rdlen,
    char *host, size_t hlen, char *path, size_t plen, char *err, size_t errlen);

/* Where commregd is: opt, $COMMREG_COMMREGD, beside this program, the
 * installed one, else "commregd" (PATH). */
void client_commregd_path(const char *opt, char *buf, size_t len);

/*
 * The private registry's port from TCL_COMM_REGPORT: 1 with *port, 0 when
 * the variable is unset or empty, -1 (err says why) when it is not a
 * port number, which callers report and then ignore.
 */
#define COMMREG_ENV_REGPORT "TCL_COMM_REGPORT"
int client_env_regport(int *port, char *err, size_t errlen);

/*
 * Start `commregd --detach` with HOME=home (stdin and stdout /dev/null,
 * stderr into a pipe whose read end, nonblocking, is *errfd).  path gets
 * the program run.  -1 with err.
 */
int client_spawn_commregd(const char *home, const char *commregd, pid_t *pid,
    int *errfd, char *path, size_t plen, char *err, size_t errlen);
/* Append what is readable on a spawn's stderr pipe to msg (bounded);
 * 0 at EOF, 1 otherwise. */
int client_spawn_collect(int errfd, struct tbuf *msg);
/* Judge the wait status of commregd --detach; -1 with err unless it
 * exited 0. */
int client_spawn_result(int status, const char *path, struct tbuf *msg,
    char *err, size_t errlen);

#endif
