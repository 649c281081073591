/*
 * The command table: one row and one handler per protocol command
 * (docs/protocol.md §3, §4).  Adding a command means adding a handler
 * and a row, nothing else.
 */
#ifndef LOCAL_HANDLERS_H
#define LOCAL_HANDLERS_H

#include "server.h"

const struct cmd_entry *cmd_find(const char *name, size_t len);

/* Commreg/Register NAME PORT ?-option value ...?, parsed and checked by
 * the one set of rules of every server (docs/protocol.md §4): -1 with a
 * message in err. */
int handlers_register_parse(const struct tlist *w, struct reg_request *,
    struct tbuf *err);

/* Called by the registry for every change a watch matches. */
void handlers_notify(struct reg_watch *, const struct reg_entry *, bool added,
    void *arg);

/* Commands a host gateway serves as a user registry does (gateway/). */
int handlers_register(struct cmd_ctx *);
int handlers_unregister(struct cmd_ctx *);
int handlers_list(struct cmd_ctx *);
int handlers_watch(struct cmd_ctx *);
int handlers_unwatch(struct cmd_ctx *);
int handlers_stats(struct cmd_ctx *);
int handlers_protocol_version(struct cmd_ctx *);

#endif
