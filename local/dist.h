/*
 * The distributed user registry (docs/distributed.md): the user
 * registries of one user on every host that shares the user's home
 * directory make one registry, as the design note's "Implementation of
 * the basic [comm] registry" asks.
 *
 * It is on when ~/.tcl/comm/cookie exists (at least 32 random bytes,
 * 0600, the user's; checked like every file of the tree).  Then this
 * registry also listens for registry links on an address the other hosts
 * can reach, says so in its port file after the port line ("dist ADDR
 * PORT"), watches the registry directory (inotify, and a poll, since
 * inotify does not see what other NFS clients write) for the other hosts'
 * port files, and links to each of them: TLS 1.3 with an external
 * pre-shared key derived from the cookie (HKDF-SHA256), so both ends prove
 * they hold it without sending it.  Once TLS is up a link is an engine
 * peer (engine/peer.h) with the Dist/... command table and the engine's
 * liveness ping.
 *
 * Over a link each side sends a snapshot of its own entries, then every
 * add and remove.  The copies of another host's entries live in the
 * server's table, owned by that host, so that list, lookup, watch and
 * nns Search answer from one table; a copy that collides with a name
 * already there is shown as NAME@HOST (the rules: docs/distributed.md
 * "Names across hosts").  When a host's link goes (closed, its liveness
 * ping unanswered, its port file gone) its copies go at once and the
 * watchers are told.
 */
#ifndef LOCAL_DIST_H
#define LOCAL_DIST_H

#include <stddef.h>

#include "election.h"
#include "server.h"

/* The cookie: at least this many bytes, at most DIST_COOKIE_MAX. */
#define DIST_COOKIE_MIN 32
#define DIST_COOKIE_MAX 4096

struct dist;

/*
 * Start the distributed registry for srv if the cookie beside regdir
 * (~/.tcl/comm/registry) exists.
 * listen: where to accept links ("ADDR" or "ADDR:PORT"; NULL: the
 * address the host name resolves to, else every address).  claim: the
 * election won, whose port file says where we listen.  Returns NULL with
 * err empty when there is no cookie (everything as without this), NULL
 * with why in err when it cannot start (an unsafe cookie, no address).
 */
struct dist *dist_start(struct server *, const char *regdir,
    struct election_claim *claim, const char *listen, char *err, size_t errlen);
/* Close every link, drop the copies silently, and let the port file say
 * only the port again. */
void dist_free(struct dist *);

/*
 * A name the table does not hold as such: NAME@HOST (an entry of that
 * host, whatever it is shown as here; our own host's NAME@HOST is our
 * own NAME), or a bare NAME another host holds under a name shown as
 * NAME@HOST here (the first such host in the order of their names).
 * NULL when none.  It is the server's lookup_more (server.h).
 */
const struct reg_entry *dist_lookup(struct server *, const char *name,
    size_t len);

#endif
