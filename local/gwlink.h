/*
 * A user registry's link to the host gateway (docs/gateway.md).
 *
 * The gateway is found through the host configuration (config/gwconf.h:
 * [gateway] socket) and reached over its Unix socket, where it learns our
 * uid from SO_PEERCRED.  Over the link go:
 *  - registrations with scope host or global: the application's reply
 *    waits for the gateway's verdict (a pending reply, server.h);
 *  - their withdrawal when the application lets go of them (the
 *    registry's observer), and, the other way, the gateway's withdrawal
 *    when its policy changes (Commreg/Withdrawn, passed on to the owner);
 *  - lookups this registry cannot answer;
 *  - one watch on "*", which keeps srv->mirror, the copy of every other
 *    user's host entries (mirror.c), for lists and watches.
 * When the link drops it is made again with backoff, and everything is
 * registered again: a gateway restart loses nothing for good.
 */
#ifndef LOCAL_GWLINK_H
#define LOCAL_GWLINK_H

#include <stdbool.h>

#include "server.h"

struct gwlink;

/* Start linking to the gateway at socket_path; srv->mirror must exist. */
struct gwlink *gwlink_start(struct server *, const char *socket_path);
void gwlink_free(struct gwlink *);
/* Connected and greeted; else why not into err. */
bool gwlink_ready(const struct gwlink *, char *err, size_t errlen);

/* Has the first copy of the gateway's entries arrived, or is there no
 * gateway to wait for (not reachable now)? */
bool gwlink_settled(const struct gwlink *);

/* Offer e (just added here, scope host or global) to the gateway; the
 * verdict answers c.  Returns CMD_PENDING, or CMD_ERROR ("out of memory"
 * in the result) with nothing sent. */
int gwlink_register(struct gwlink *, struct cmd_ctx *c,
    const struct reg_entry *e);
/* Ask the gateway for a name this registry does not know.  Returns
 * CMD_PENDING, or CMD_ERROR as gwlink_register. */
int gwlink_lookup(struct gwlink *, struct cmd_ctx *c, const char *name,
    size_t len);

#endif
