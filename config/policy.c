/*
 * Admission policy over a loaded configuration (policy.h; the rules are
 * docs/config.md, "Rules" and "Quotas").
 *
 * Rules are few (a handful per host) and judged once per registration, so
 * a straight scan in file order is both the fastest and the one whose
 * meaning is plain: the first rule whose every condition holds decides.
 */
#define _GNU_SOURCE /* getpwuid_r */

#include <sys/types.h>

#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "tclmatch.h"

static bool
uid_in(uid_t uid, const uid_t *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == uid)
			return true;
	return false;
}

/* The primary group or any supplementary one is gid. */
static bool
member_of(gid_t gid, const struct policy_req *q)
{
	size_t i;

	if (q->gid == gid)
		return true;
	for (i = 0; q->groups != NULL && i < q->ngroups; i++)
		if (q->groups[i] == gid)
			return true;
	return false;
}

static bool
rule_matches(const struct gwconf_rule *r, const struct policy_req *q)
{
	const char *name = q->name != NULL ? q->name : "";
	size_t i;
	bool hit;

	if (r->nuids > 0 && !uid_in(q->uid, r->uids, r->nuids))
		return false;
	for (i = 0, hit = r->ngids == 0; !hit && i < r->ngids; i++)
		hit = member_of(r->gids[i], q);
	if (!hit)
		return false;
	for (i = 0, hit = r->nnames == 0; !hit && i < r->nnames; i++)
		hit = tcl_string_match(r->names[i], strlen(r->names[i]), name,
		    strlen(name));
	if (!hit)
		return false;
	for (i = 0, hit = r->nports == 0; !hit && i < r->nports; i++)
		hit = q->port >= r->ports[i].lo && q->port <= r->ports[i].hi;
	if (!hit)
		return false;
	/* Every scope asked for must be one the rule names. */
	return r->scopes == 0 || (q->scope & ~r->scopes) == 0;
}

int
policy_quota(const struct gwconf *c, uid_t uid, gid_t gid, const gid_t *groups,
    size_t ngroups)
{
	struct policy_req q = {.uid = uid,
	    .gid = gid,
	    .groups = groups,
	    .ngroups = ngroups};
	const struct gwconf_quota *e;
	int best = -1;
	size_t i;

	for (i = 0; i < c->nquotas; i++) {
		e = &c->quotas[i];
		if ((e->group ? member_of(e->gid, &q) : e->uid == uid) &&
		    e->max_entries > best)
			best = e->max_entries;
	}
	return best >= 0 ? best : c->quota_default;
}

/* "user alice", or "uid 1234" for a user the system does not name. */
static void
user_label(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char pwbuf[1024];

	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 &&
	    res != NULL)
		snprintf(buf, len, "user %s", res->pw_name);
	else
		snprintf(buf, len, "uid %lu", (unsigned long)uid);
}

void
policy_admit(const struct gwconf *c, const struct policy_req *q,
    struct policy_verdict *v)
{
	const struct gwconf_rule *r = NULL;
	char who[300];
	size_t i;
	int quota;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < c->nrules; i++) {
		if (rule_matches(&c->rules[i], q)) {
			r = &c->rules[i];
			break;
		}
	}

	if (r != NULL && r->action == GWCONF_DENY) {
		v->rule = r;
		snprintf(v->why, sizeof(v->why),
		    "refused by rule \"%s\" (%s:%d)%s%s", r->name, r->file,
		    r->line, r->message != NULL ? ": " : "",
		    r->message != NULL ? r->message : "");
		return;
	}
	if (r == NULL && (q->scope & GWCONF_SCOPE_GLOBAL)) {
		/* Leaving the host needs a rule that says so. */
		snprintf(v->why, sizeof(v->why),
		    "refused: no rule allows scope global");
		return;
	}

	quota = policy_quota(c, q->uid, q->gid, q->groups, q->ngroups);
	if (q->entries >= quota) {
		user_label(q->uid, who, sizeof(who));
		snprintf(v->why, sizeof(v->why),
		    "refused: quota of %d entries reached for %s", quota, who);
		return;
	}

	v->allow = true;
	v->rule = r;
	if (r != NULL)
		snprintf(v->why, sizeof(v->why),
		    "allowed by rule \"%s\" (%s:%d)", r->name, r->file,
		    r->line);
	else
		snprintf(v->why, sizeof(v->why),
		    "allowed: no rule matched, and scope host needs none");
}
