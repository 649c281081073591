/*
 * One question to the host gateway over its Unix socket (gwcall.c),
 * kept apart from cli.h: the engine's header has command structs of its
 * own names.
 */
#ifndef LOCAL_CLI_GWCALL_H
#define LOCAL_CLI_GWCALL_H

#include <stddef.h>

#include "tbuf.h"

/* Nothing listens on the socket (the gateway does not run). */
#define GWCALL_DOWN (-2)

/*
 * Connect to the gateway's socket at path, check its Commreg/Hello says
 * commgwd, ask Commreg/Stats.  0 with both replies (NUL-terminated);
 * GWCALL_DOWN or -1 with the reason in err.
 */
int gwcall_stats(const char *path, struct tbuf *hello, struct tbuf *stats,
    char *err, size_t errlen);

#endif
