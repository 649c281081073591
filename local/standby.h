/*
 * The registry's standby (docs/election.md, "The standby"): failover
 * without a moment when the port is free or an application is seen to
 * leave.
 *
 * A user registry keeps one standby process, a commregd it forks and
 * execs with three descriptors of its own:
 *  - its listening socket: the same socket, not a copy on the same port,
 *    so the port is never free while either lives, and connections that
 *    arrive while the registry is dying wait in the kernel's accept
 *    queue for the standby;
 *  - the port file, locked: flock(2) belongs to the open file, so the
 *    lock too outlives the registry as long as the standby holds it, and
 *    no starter can take the port file for a dead registry's;
 *  - one end of a socket pair, on which the registry streams its table
 *    (every entry of user scope and whose connection holds it) and which
 *    closes when the registry dies, however it dies.
 * When it closes, the standby is the registry: it accepts on the socket
 * at once, and holds every entry of the dead registry for a grace period
 * under a stand-in owner per dead connection.  An application that
 * registers the same entry again within it takes its entry back without
 * anyone being told (no remove, no add); what is still held at the end
 * of the grace goes, and its watchers are told as for any application
 * that leaves.  It forks a standby of its own as soon as it has taken
 * over.
 *
 * The election (election.c) stays the way when no standby lives: both
 * killed, or a standby killed before it was given the descriptors.
 */
#ifndef LOCAL_STANDBY_H
#define LOCAL_STANDBY_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

/* How long a dead registry's entries are held for their applications. */
#define STANDBY_GRACE_MS 2000

/* ---- the registry's side ------------------------------------------------- */

struct standby;

/*
 * Keep a standby for the registry srv serves (listening socket
 * listen_fd, port file locked as lock_fd): fork and exec exe with argv
 * and "--standby-fds=C,L,K" added, stream the table to it, and make a
 * new one whenever it dies (SIGCHLD must be ignored: children are not
 * waited for).  NULL with a line in the log when it cannot.
 */
struct standby *standby_keep(struct server *srv, int listen_fd, int lock_fd,
    const char *exe, char *const *argv);
/* A clean stop: tell the standby to go too, wait for it a moment, free. */
void standby_stop(struct standby *);
/* Is a standby holding the descriptors now? */
bool standby_alive(const struct standby *);

/* ---- the standby's side -------------------------------------------------- */

/* "--standby-fds=C,L,K": the channel, the listener, the lock. -1 when
 * arg is not three open descriptors. */
int standby_parse_fds(const char *arg, int fds[3]);

/*
 * Follow the registry on channel fd chan: srv is initialised on the
 * inherited listener (which is disabled here until the takeover) and the
 * table is kept as the registry streams it, every entry owned by a
 * stand-in for its connection.  Runs srv's event loop; returns 1 when the
 * registry is gone (take over: the listener accepts again, and the grace
 * has begun), 0 when it stopped cleanly and asked us to go too, or wrote
 * what makes no sense (said in the log: only a live registry writes, so
 * the standby goes and the registry makes another).  A registry whose
 * port file (lock_fd) was removed is not taken over (0).
 */
int standby_follow(struct server *srv, int chan, int lock_fd);

/*
 * A registration of a held entry: when c's request (a, as cmd_register
 * or cmd_bind built it) is the same entry (name and serial, port, host,
 * data, pid), it is given to c's peer silently and CMD_OK is returned
 * with its name; -1 when it is not held (register as usual).
 */
int holdover_reclaim(struct cmd_ctx *c, const struct reg_add *a);
/* Entries still held (Commreg/Stats "held"). */
size_t holdover_count(const struct server *);
/* Drop the hold without telling anyone (shutdown). */
void holdover_free(struct server *);

#endif
