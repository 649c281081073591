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
 *  - while the copy is used, one watch on "*", which keeps srv->mirror,
 *    the copy of every other user's host entries (mirror.c), for lists
 *    and watches.
 * The copy is made only while it is used: while this registry has a
 * watch, and until GW_COPY_LINGER_MS after the last listing.  A host
 * with a thousand users and a hundred thousand entries would otherwise
 * keep a thousand copies of them, each told of every change.
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

/* Has the gateway answered our greeting, or is there no gateway to wait
 * for (not reachable now)? */
bool gwlink_settled(const struct gwlink *);

/*
 * A listing or a new watch wants the copy of the others' entries: true
 * when it can be answered now (the copy is current, or there is no
 * gateway to ask).  False when the copy is on its way: the caller then
 * waits for it with gwlink_copy_wait.
 */
bool gwlink_copy_ready(struct gwlink *);
/* fn(arg) is called once, when the copy has come or will not come soon
 * (GW_COPY_WAIT_MS, the link lost, the link freed); the caller answers
 * then with what srv->mirror holds. */
void gwlink_copy_wait(struct gwlink *, void (*fn)(void *), void *arg);

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
