/*
 * commgwd, the host gateway (docs/gateway.md): one per host, a system
 * service.  User registries link to it over its Unix socket, where the
 * kernel tells it each peer's uid, gid and pid (SO_PEERCRED); it admits
 * or refuses what they offer to the whole host (scope host) or beyond
 * (scope global) by the sysadmin's policy (config/policy.h) and its own
 * port-ownership check (portowner.h), and serves lookups, lists and
 * watches of everything admitted, each entry named NAME@USER.
 *
 * The peer life cycle, framing and dispatch are the user registry's
 * server (local/server.c) with the gateway's own ops: its command table,
 * its admission of connections, and per-user records hung on the peers.
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "gwconf.h"
#include "server.h"

/* How often every entry's port check is made again: a round every
 * GW_RECHECK_MS, in slices of at least GW_RECHECK_SLICE_MIN entries
 * GW_RECHECK_SLICE_MS apart, so that a large table is not one long stall
 * of the gateway and a small one costs one dump of the listeners a
 * round. */
#define GW_RECHECK_MS        2000
#define GW_RECHECK_SLICE_MS  100
#define GW_RECHECK_SLICE_MIN 500

/* Connections one uid may hold (a user registry needs one). */
#define GW_CONNS_PER_UID 16

/* What the gateway knows of one user with a connection or an entry. */
struct gw_user {
	TAILQ_ENTRY(gw_user) link;
	uid_t uid;
	gid_t gid;
	char name[64];
	gid_t groups[64]; /* supplementary, from the group database */
	size_t ngroups;
	int conns;
	int entries;
	int judged; /* reload: entries allowed so far */
};
TAILQ_HEAD(gw_user_list, gw_user);

struct gateway {
	struct event_base *base;
	struct server srv;
	struct gwconf *conf; /* swapped whole on reload */
	const char *config_dir;
	struct gw_user_list users;
	struct fed *fed; /* links with other gateways, or NULL */
	char host[256];
	uint64_t admitted, refused_regs, withdrawn;
	/* The rule that allowed the registration being added, for its log
	 * line (gw_admit_entry to gw_entry_added, one command). */
	const struct gwconf_rule *last_rule;
	struct event *recheck; /* the port check's next slice */
	int64_t recheck_began; /* its round's start (monotonic ms) */
	size_t recheck_at;     /* where it goes on (registry_scan) */
};

struct fed;

int gateway_init(struct gateway *, struct event_base *, int listen_fd,
    struct gwconf *, const char *config_dir, const struct server_opts *);
void gateway_free(struct gateway *);
/* SIGHUP: load the configuration again; on success swap it in and
 * withdraw what the new policy refuses (owners told).  On failure keep
 * the old one and log why. */
void gateway_reload(struct gateway *);
/* The same with a configuration loaded already (gateway_reload's, or the
 * privileged process's: privsep.h), which is taken: its TLS context is
 * made first (a new certificate is served from then on), and nothing
 * changes when that fails.  0, or -1 when it was refused (logged). */
int gateway_reload_conf(struct gateway *, struct gwconf *);

#endif
