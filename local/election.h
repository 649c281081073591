/*
 * Finding or becoming the user registry for this host (the design note's
 * rules (a), (b), (c); docs/election.md).
 *
 * The port file $HOME/.tcl/comm/registry/<hostname> holds "PORT\n".  Its
 * inode carries an flock(2) held for the life of the registry that wrote
 * it, which makes liveness a kernel fact instead of a guess:
 *
 *  - a becoming registry creates a temporary file in the same directory,
 *    locks it, and link(2)s it to the port file name: link is exclusive
 *    (EEXIST), and the port file is locked from its first instant;
 *  - file valid (ends in LF) and locked: a registry lives there (rule a);
 *  - file valid and unlocked: its holder died; the port is remembered and
 *    tried first by the next registry, so clients that remember the port
 *    (nameserv::auto, failover) find the new one where the old one was;
 *  - file empty/without LF and locked: a contender is becoming the
 *    registry; wait, bounded (rule b);
 *  - file empty and unlocked: the contender died mid-way: take it over.
 *
 * Whoever removes or replaces the port file first holds the lock on the
 * inode it removes and checks that the name still refers to that inode, so
 * a waiter never removes a newer registry's file.
 */
#ifndef LOCAL_ELECTION_H
#define LOCAL_ELECTION_H

#include <stddef.h>
#include <sys/types.h>

enum election_result {
	ELECTION_ERROR = -1,
	ELECTION_FOUND = 0, /* a live registry holds the file: *port set */
	ELECTION_WON = 1,   /* we hold the lock: claim->listen_fd bound */
};

struct election_claim {
	int lock_fd;   /* the port file, flock'ed; keep open for life */
	int listen_fd; /* listening TCP socket on 127.0.0.1 */
	int port;
	char path[4096]; /* port file path */
};

/*
 * Decide.  regdir is the checked registry directory, host the short
 * hostname.  wait_ms bounds rule (b).  On ELECTION_FOUND *port is the live
 * registry's port (the lock proves a holder is alive; the caller still says
 * hello before trusting it).  On ELECTION_WON the
 * caller owns claim, already listening (backlog 4096, nonblocking, CLOEXEC)
 * on the remembered port if it was free, else on a port the OS chose, and
 * the port file already says so.
 */
enum election_result election_run(const char *regdir, const char *host,
    int wait_ms, int *port, struct election_claim *claim, char *err,
    size_t errlen);

/*
 * Stand by (commregd --standby): wait until no process holds the lock of
 * the port file regdir/host, i.e. the registry that election_run found
 * is gone (or the file is), then elect again.  The lock is watched, not
 * tried.  1 when it is free, 0 when still held after max_ms, -1 with a
 * reason in err.
 */
int election_wait_gone(const char *regdir, const char *host, int max_ms,
    char *err, size_t errlen);
/* Give up the registry: close the listening socket, remove nothing (the
 * file stays as the remembered port), release the lock. */
void election_release(struct election_claim *);

/* A listening socket on 127.0.0.1:port (0: the OS chooses), as the
 * election makes it; -1 with errno.  For private registries, which have
 * no port file and no election. */
int election_listen(int port, int *bound);

/* Short hostname as the port file name uses it (no domain part). */
int election_hostname(char *buf, size_t len);

#endif
