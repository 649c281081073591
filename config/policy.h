/*
 * Admission policy: may this user offer this name on this port in this
 * scope?  (docs/config.md, "Rules".)  A pure function of the
 * configuration and the request, so that it can be tested as a matrix
 * and re-run over every entry on reload.
 *
 * Order of judgement:
 *   1. the rules, first match wins (allow or deny);
 *   2. no rule matched: scope host is allowed, scope global is denied
 *      (leaving the host needs a rule that says so);
 *   3. an allowed request over the user's quota is denied.
 * The gateway adds, whatever the rules say, its own check that the port
 * is a listening TCP socket of the registering uid (it asks the kernel).
 */
#ifndef CONFIG_POLICY_H
#define CONFIG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "gwconf.h"

struct policy_req {
	uid_t uid;
	gid_t gid;           /* primary group (SO_PEERCRED) */
	const gid_t *groups; /* supplementary groups, may be NULL */
	size_t ngroups;
	const char *name; /* the name asked for (base, without serial) */
	int port;
	unsigned scope; /* GWCONF_SCOPE_HOST or GWCONF_SCOPE_GLOBAL */
	int entries;    /* entries the user holds already */
};

struct policy_verdict {
	bool allow;
	/* The rule that decided, or NULL when a default did (no rule
	 * matched) or the quota refused what a rule allowed. */
	const struct gwconf_rule *rule;
	/* One line for the application and the log, e.g.
	 *   refused by rule "no-low-ports" (/etc/tcl/comm/10-policy.ini:12):
	 *   ports below 1024 are not offered
	 *   refused: quota of 32 entries reached for user alice
	 *   refused: no rule allows scope global
	 *   allowed by rule "staff" (/etc/tcl/comm/10-policy.ini:30)
	 *   allowed: no rule matched, and scope host needs none
	 * ("uid 1234" instead of "user alice" when the system has no name
	 * for it). */
	char why[512];
};

void policy_admit(const struct gwconf *, const struct policy_req *,
    struct policy_verdict *);
/* The quota that applies to this user (the largest of its user and group
 * quotas, else the default). */
int policy_quota(const struct gwconf *, uid_t, gid_t, const gid_t *groups,
    size_t ngroups);

#endif
