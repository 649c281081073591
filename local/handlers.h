/*
 * The command table: one row and one handler per protocol command
 * (docs/protocol.md §3, §4).  Adding a command means adding a handler
 * and a row, nothing else.
 */
#ifndef LOCAL_HANDLERS_H
#define LOCAL_HANDLERS_H

#include "server.h"

struct cmd_ctx {
	struct peer *peer;
	struct server *srv;
	const struct tlist *words; /* words[0] is the command name */
	struct tbuf *result;       /* reply text, or error message */
};

struct cmd_entry {
	const char *name;
	int min_args; /* not counting the name */
	int max_args; /* -1: unbounded */
	const char *usage;
	/* Returns 0 (ok) or 1 (error; result holds the message). */
	int (*exec)(struct cmd_ctx *);
};

const struct cmd_entry *cmd_find(const char *name, size_t len);

/* Called by the registry for every change a watch matches. */
void handlers_notify(struct reg_watch *, const struct reg_entry *, bool added,
    void *arg);

#endif
