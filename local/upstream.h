/*
 * The link of a semi-private registry to the registry above it: the
 * user registry, or the private registry of an enclosing group (found as
 * any client finds its registry: TCL_COMM_REGPORT, else the port file).
 *
 * The link is one watch on "*" through the asynchronous client library.
 * Its snapshot and events keep srv->mirror, a copy of the upstream's
 * entries, which the handlers answer from after the group's own entries
 * (handlers.c), and every change is announced to the group's watches.
 * Nothing goes up but that watch: the group's names stay in the group.
 */
#ifndef LOCAL_UPSTREAM_H
#define LOCAL_UPSTREAM_H

#include "server.h"

struct upstream;

/* Start the link (it connects, and reconnects, by itself).  NULL with
 * err when it cannot start at all (no home, an unsafe ~/.tcl/comm). */
struct upstream *upstream_start(struct server *, const char *home, char *err,
    size_t errlen);
/* Ask the registry above for a name this one does not know (another
 * user's, through its host gateway).  Returns CMD_PENDING, or CMD_ERROR
 * with nothing sent: the link is down (the result left empty) or memory
 * ran out (the result says so). */
int upstream_lookup(struct upstream *, struct cmd_ctx *, const char *name);

/* Close the link and drop the mirror's entries, silently: for shutdown,
 * before server_free. */
void upstream_free(struct upstream *);

#endif
