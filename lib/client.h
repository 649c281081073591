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
 * The conversation itself (framing, the comm handshake, replies matched
 * to requests with deadlines, the registry's pings and ours) is the peer
 * engine's (engine/peer.h), as for every connection of the project: a
 * blocking client is one peer on a private event_base that only its own
 * calls run, with a timer for each wait; async.c makes its peers on the
 * application's event_base.  What is the client's own is below: what the
 * registry's messages mean.
 *
 * While a blocking call waits for its reply, messages the registry sends
 * on its own (Commreg/Event, nns Search/Continuous/Change) are decoded and
 * queued; commreg_next_event() hands them out in arrival order.
 *
 * Nothing here ends the process: out of memory is an error return.
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

/* ---- shared with the event-loop driver (async.c) ----------------------- */

struct engine_limits;

/*
 * The limits of a connection to a registry: the engine's, with replies up
 * to max_message (0: COMMREG_CLIENT_MAX_MESSAGE) and a liveness check of
 * liveness_ms (0: COMMREG_LIVENESS_MS; negative: none): a registry silent
 * for a third of it is pinged, one silent for all of it is dropped.
 */
void client_limits(struct engine_limits *, size_t max_message, int liveness_ms);

/*
 * Decode what the registry sends about a watch, given as its words:
 * Commreg/Event TAG add|remove ENTRY (one event) or, nns set,
 * Search/Continuous/Change TAG add|remove DICT (one per name).  Each event
 * goes to put, which takes it over (commreg_event_clear) and returns -1
 * to stop.  A malformed message gives no event (logged).  -1 only when
 * memory ran out.
 */
int client_event_decode(const struct tlist *words, int nns,
    int (*put)(void *, struct commreg_event *), void *arg);

/* The engine's reason for a lost connection (peer_ops.gone; NULL: we
 * closed it), said of the registry, into buf. */
void client_lost_why(char *buf, size_t len, const char *why);

/* The reply to Commreg/Hello must say `registry commreg`. */
int client_hello_parse(struct commreg_hello *, const char *, size_t);
/*
 * Is the registry on fd our own uid's?  Asked of the kernel (a registry
 * whose owner it cannot tell is refused; the Hello's uid is a claim and
 * must agree).  -1 with a reason when not.
 */
int client_check_owner(int fd, int port, const struct commreg_hello *,
    char *err, size_t errlen);

/*
 * Before a byte is sent on a connection to 127.0.0.1:port: is what
 * listens there, as the kernel would route the connection, our own
 * uid's?  Asked of the kernel (portowner.h); -1 with a reason when not,
 * or when it cannot tell.  A squatter on a dead registry's port is then
 * never sent our offer, our Hello or anything after them.
 */
int client_check_listener(int port, char *err, size_t errlen);

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
