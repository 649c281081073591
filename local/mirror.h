/*
 * A registry's copy of another registry's entries (soft state): a
 * semi-private registry's copy of the registry above it (upstream.c), a
 * user registry's copy of the host gateway's host-scope entries
 * (gwlink.c).  The copy lives in srv->mirror; the handlers answer from it
 * after the server's own entries, and every change to it is announced to
 * the server's watches (registry_announce) and flushed.
 *
 * It is rebuilt from every snapshot of the watch that feeds it and kept
 * by its events.  Two kinds of patience keep the watchers from seeing a
 * failover of the source as everything going and coming back:
 *  - when the source is lost the copy stays for MIRROR_GRACE_MS, and is
 *    dropped only if no fresh snapshot came by then;
 *  - after a failover the fresh snapshot may come before the source's
 *    own clients are back in it, so an entry missing from it is held for
 *    MIRROR_GRACE_MS and dropped only if it has not come back by then.
 */
#ifndef LOCAL_MIRROR_H
#define LOCAL_MIRROR_H

#include <stdbool.h>

#include "commreg.h"
#include "server.h"

#define MIRROR_GRACE_MS 3000

struct mirror {
	struct server *srv;
	const char *label; /* for the log: "upstream", "gateway" */
	/* Entries the copy leaves out (NULL: none). */
	bool (*skip)(const struct commreg_entry *, void *arg);
	void *arg;
	struct reg_entry_list entries; /* all of srv->mirror's */
	char **held;                   /* missing after a failover */
	size_t nheld;
	struct event *holdover; /* drops what is still held */
	struct event *grace;    /* drops everything: the source is gone */
};

/* srv->mirror must exist. */
void mirror_init(struct mirror *, struct server *, const char *label);
/* Drop every entry silently (shutdown, before server_free). */
void mirror_free(struct mirror *);

/* A snapshot of the source: the copy becomes it (resync: after a
 * failover, see above). */
void mirror_snapshot(struct mirror *, const struct commreg_entry *, size_t n,
    bool resync);
void mirror_put(struct mirror *, const struct commreg_entry *);
void mirror_remove(struct mirror *, const char *name);
/* The source is gone: drop the copy after the grace unless a snapshot
 * comes first. */
void mirror_lost(struct mirror *);
/* Drop everything now, telling the watchers. */
void mirror_clear(struct mirror *);

#endif
