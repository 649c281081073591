/*
 * Unit tests for config/policy.c, as a matrix over one configuration:
 * allowed and refused by user, group (primary and supplementary), name
 * pattern, port range and scope; the first matching rule decides; without
 * a match scope host is allowed and scope global refused; quotas by
 * default, user and group (the largest), reached exactly at the limit; and
 * every answer says which rule (file:line) or which default decided.
 *
 * Ids are numeric so that the matrix does not depend on /etc/passwd:
 * 2001 (alice) and 2002 (bob) are users, 3001 (staff), 3002 (lab) and
 * 3003 (other) groups, none of them known to the system.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "gwconf.h"
#include "policy.h"

#define ALICE 2001
#define BOB   2002
#define CAROL 2003
#define STAFF 3001
#define LAB   3002
#define OTHER 3003

static const char policy_ini[] =
    "[rule no-low-ports]\n"                        /* 1 */
    "action = deny\n"                              /* 2 */
    "ports = 1-1023\n"                             /* 3 */
    "message = ports below 1024 are not offered\n" /* 4 */
    "\n"                                           /* 5 */
    "[rule alice-global]\n"                        /* 6 */
    "action = allow\n"                             /* 7 */
    "users = 2001\n"                               /* 8 */
    "scopes = global\n"                            /* 9 */
    "\n"                                           /* 10 */
    "[rule bob-secrets]\n"                         /* 11 */
    "action = deny\n"                              /* 12 */
    "users = 2002\n"                               /* 13 */
    "names = secret*\n"                            /* 14 */
    "\n"                                           /* 15 */
    "[rule staff-services]\n"                      /* 16 */
    "action = allow\n"                             /* 17 */
    "groups = 3001\n"                              /* 18 */
    "names = svc-* build-? [a-c]x\n"               /* 19 */
    "scopes = host global\n"                       /* 20 */
    "\n"                                           /* 21 */
    "[rule high-ports]\n"                          /* 22 */
    "action = allow\n"                             /* 23 */
    "ports = 20000-20999 30000\n"                  /* 24 */
    "scopes = global\n"                            /* 25 */
    "\n"                                           /* 26 */
    "[quota]\n"                                    /* 27 */
    "default = 4\n"                                /* 28 */
    "user 2001 = 10\n"                             /* 29 */
    "group 3001 = 6\n"                             /* 30 */
    "group 3002 = 8\n";                            /* 31 */

static struct gwconf *conf;

static int
suite_init(void)
{
	struct gwconf_errors e = {0};
	size_t i;

	conf = gwconf_parse_string("policy.ini", policy_ini, GWCONF_CLIENT, &e);
	for (i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.v[i]);
	gwconf_errors_free(&e);
	return conf == NULL ? -1 : 0;
}

static int
suite_clean(void)
{
	gwconf_free(conf);
	return 0;
}

/* One request, judged; gid and supplementary groups as given. */
static struct policy_verdict
judge(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
    const char *name, int port, unsigned scope, int entries)
{
	struct policy_req q = {.uid = uid,
	    .gid = gid,
	    .groups = groups,
	    .ngroups = ngroups,
	    .name = name,
	    .port = port,
	    .scope = scope,
	    .entries = entries};
	struct policy_verdict v;

	policy_admit(conf, &q, &v);
	return v;
}

#define HOST   GWCONF_SCOPE_HOST
#define GLOBAL GWCONF_SCOPE_GLOBAL

/* Allowed or refused, and by which rule (NULL: a default). */
static void
expect(struct policy_verdict v, bool allow, const char *rule, const char *why)
{
	CU_ASSERT_EQUAL(v.allow, allow);
	if (rule == NULL) {
		CU_ASSERT_PTR_NULL(v.rule);
	} else {
		CU_ASSERT_PTR_NOT_NULL_FATAL(v.rule);
		CU_ASSERT_STRING_EQUAL(v.rule->name, rule);
	}
	if (why != NULL) {
		CU_ASSERT_STRING_EQUAL(v.why, why);
		if (strcmp(v.why, why) != 0)
			printf("\n    want: %s\n    got:  %s ", why, v.why);
	}
}

static void
test_by_user(void)
{
	/* alice may go global, bob (same everything else) may not. */
	expect(judge(ALICE, OTHER, NULL, 0, "calc", 5000, GLOBAL, 0), true,
	    "alice-global", "allowed by rule \"alice-global\" (policy.ini:6)");
	expect(judge(BOB, OTHER, NULL, 0, "calc", 5000, GLOBAL, 0), false, NULL,
	    "refused: no rule allows scope global");
	/* bob's secret* names are refused even on his own host... */
	expect(judge(BOB, OTHER, NULL, 0, "secret-db", 5000, HOST, 0), false,
	    "bob-secrets", "refused by rule \"bob-secrets\" (policy.ini:11)");
	/* ... alice's are not. */
	expect(judge(ALICE, OTHER, NULL, 0, "secret-db", 5000, HOST, 0), true,
	    NULL, NULL);
}

static void
test_by_group(void)
{
	gid_t sup[] = {OTHER, STAFF};
	gid_t nosup[] = {OTHER, LAB};

	/* staff as the primary group */
	expect(judge(CAROL, STAFF, NULL, 0, "svc-web", 5000, GLOBAL, 0), true,
	    "staff-services",
	    "allowed by rule \"staff-services\" (policy.ini:16)");
	/* staff as a supplementary group */
	expect(judge(CAROL, OTHER, sup, 2, "svc-web", 5000, GLOBAL, 0), true,
	    "staff-services", NULL);
	/* not in staff at all */
	expect(judge(CAROL, OTHER, nosup, 2, "svc-web", 5000, GLOBAL, 0), false,
	    NULL, "refused: no rule allows scope global");
}

static void
test_by_name_pattern(void)
{
	static const struct {
		const char *name;
		bool allow;
	} cases[] = {
	    {"svc-web", true},
	    {"svc-", true},    /* '*' matches nothing too */
	    {"build-1", true}, /* '?' one character */
	    {"build-12", false},
	    {"build-", false},
	    {"ax", true}, /* [a-c] */
	    {"cx", true},
	    {"dx", false},
	    {"[a-c]x", false},  /* a pattern, not a literal */
	    {"Svc-web", false}, /* case matters */
	    {"web", false},
	};
	size_t i;
	struct policy_verdict v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = judge(CAROL, STAFF, NULL, 0, cases[i].name, 5000, GLOBAL,
		    0);
		CU_ASSERT_EQUAL(v.allow, cases[i].allow);
		if (v.allow != cases[i].allow)
			printf("\n    name %s: %s ", cases[i].name, v.why);
	}
}

static void
test_by_port_range(void)
{
	expect(judge(CAROL, OTHER, NULL, 0, "x", 20000, GLOBAL, 0), true,
	    "high-ports", "allowed by rule \"high-ports\" (policy.ini:22)");
	expect(judge(CAROL, OTHER, NULL, 0, "x", 20999, GLOBAL, 0), true,
	    "high-ports", NULL);
	expect(judge(CAROL, OTHER, NULL, 0, "x", 30000, GLOBAL, 0), true,
	    "high-ports", NULL);
	expect(judge(CAROL, OTHER, NULL, 0, "x", 19999, GLOBAL, 0), false, NULL,
	    NULL);
	expect(judge(CAROL, OTHER, NULL, 0, "x", 21000, GLOBAL, 0), false, NULL,
	    NULL);
	expect(judge(CAROL, OTHER, NULL, 0, "x", 30001, GLOBAL, 0), false, NULL,
	    NULL);
	/* The deny rule's range, ends included; its message is told. */
	expect(judge(CAROL, OTHER, NULL, 0, "x", 1023, HOST, 0), false,
	    "no-low-ports",
	    "refused by rule \"no-low-ports\" (policy.ini:1): ports below "
	    "1024 are not offered");
	expect(judge(CAROL, OTHER, NULL, 0, "x", 1, HOST, 0), false,
	    "no-low-ports", NULL);
	expect(judge(CAROL, OTHER, NULL, 0, "x", 1024, HOST, 0), true, NULL,
	    NULL);
}

static void
test_by_scope(void)
{
	/* alice-global names scope global only: her host requests fall
	 * through to the default, which allows them. */
	expect(judge(ALICE, OTHER, NULL, 0, "calc", 5000, HOST, 0), true, NULL,
	    "allowed: no rule matched, and scope host needs none");
	/* high-ports is global only: a host request on 20000 is the default */
	expect(judge(CAROL, OTHER, NULL, 0, "x", 20000, HOST, 0), true, NULL,
	    NULL);
	/* staff-services names both scopes */
	expect(judge(CAROL, STAFF, NULL, 0, "svc-a", 5000, HOST, 0), true,
	    "staff-services", NULL);
}

static void
test_first_match_wins(void)
{
	/* alice-global would allow it, but no-low-ports comes first. */
	expect(judge(ALICE, OTHER, NULL, 0, "calc", 80, GLOBAL, 0), false,
	    "no-low-ports", NULL);
	/* bob in staff asking for secret-x: bob-secrets comes before
	 * staff-services (which would not match the name anyway), and
	 * for svc-x bob-secrets does not match, so staff-services decides. */
	expect(judge(BOB, STAFF, NULL, 0, "secret-x", 5000, HOST, 0), false,
	    "bob-secrets", NULL);
	expect(judge(BOB, STAFF, NULL, 0, "svc-x", 5000, GLOBAL, 0), true,
	    "staff-services", NULL);
}

static void
test_defaults_without_rules(void)
{
	struct gwconf_errors e = {0};
	struct gwconf *empty, *saved = conf;

	empty = gwconf_parse_string("empty.ini", "", GWCONF_CLIENT, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(empty);
	conf = empty;
	expect(judge(BOB, OTHER, NULL, 0, "anything", 80, HOST, 0), true, NULL,
	    "allowed: no rule matched, and scope host needs none");
	expect(judge(BOB, OTHER, NULL, 0, "anything", 5000, GLOBAL, 0), false,
	    NULL, "refused: no rule allows scope global");
	/* the built-in default quota: 32 */
	expect(judge(BOB, OTHER, NULL, 0, "x", 5000, HOST, 31), true, NULL,
	    NULL);
	expect(judge(BOB, OTHER, NULL, 0, "x", 5000, HOST, 32), false, NULL,
	    "refused: quota of 32 entries reached for uid 2002");
	conf = saved;
	gwconf_free(empty);
}

static void
test_quota_default(void)
{
	CU_ASSERT_EQUAL(policy_quota(conf, BOB, OTHER, NULL, 0), 4);
	expect(judge(BOB, OTHER, NULL, 0, "x", 5000, HOST, 3), true, NULL,
	    NULL);
	expect(judge(BOB, OTHER, NULL, 0, "x", 5000, HOST, 4), false, NULL,
	    "refused: quota of 4 entries reached for uid 2002");
	expect(judge(BOB, OTHER, NULL, 0, "x", 5000, HOST, 400), false, NULL,
	    NULL);
}

static void
test_quota_per_user(void)
{
	/* alice's own 10 beats staff's 6 */
	CU_ASSERT_EQUAL(policy_quota(conf, ALICE, STAFF, NULL, 0), 10);
	CU_ASSERT_EQUAL(policy_quota(conf, ALICE, OTHER, NULL, 0), 10);
	/* a rule's allow is still subject to the quota */
	expect(judge(ALICE, OTHER, NULL, 0, "calc", 5000, GLOBAL, 9), true,
	    "alice-global", NULL);
	expect(judge(ALICE, OTHER, NULL, 0, "calc", 5000, GLOBAL, 10), false,
	    NULL, "refused: quota of 10 entries reached for uid 2001");
}

static void
test_quota_per_group_largest(void)
{
	gid_t both[] = {STAFF, LAB};
	gid_t one[] = {OTHER, STAFF};

	CU_ASSERT_EQUAL(policy_quota(conf, CAROL, STAFF, NULL, 0), 6);
	CU_ASSERT_EQUAL(policy_quota(conf, CAROL, OTHER, one, 2), 6);
	/* staff 6 and lab 8: the larger */
	CU_ASSERT_EQUAL(policy_quota(conf, CAROL, STAFF, both + 1, 1), 8);
	CU_ASSERT_EQUAL(policy_quota(conf, CAROL, OTHER, both, 2), 8);
	/* exactly at the limit */
	expect(judge(CAROL, OTHER, both, 2, "svc-a", 5000, HOST, 7), true,
	    "staff-services", NULL);
	expect(judge(CAROL, OTHER, both, 2, "svc-a", 5000, HOST, 8), false,
	    NULL, "refused: quota of 8 entries reached for uid 2003");
}

static void
test_quota_message_names_the_user(void)
{
	struct gwconf_errors e = {0};
	struct gwconf *c, *saved = conf;

	c = gwconf_parse_string("q.ini", "[quota]\ndefault = 0\n",
	    GWCONF_CLIENT, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	conf = c;
	expect(judge(0, 0, NULL, 0, "x", 5000, HOST, 0), false, NULL,
	    "refused: quota of 0 entries reached for user root");
	conf = saved;
	gwconf_free(c);
}

int
main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
	    {"allowed and refused by user", test_by_user},
	    {"by group, primary and supplementary", test_by_group},
	    {"by name pattern (Tcl string match)", test_by_name_pattern},
	    {"by port range", test_by_port_range},
	    {"by scope", test_by_scope},
	    {"first match wins", test_first_match_wins},
	    {"no rules: host allowed, global refused",
	        test_defaults_without_rules},
	    {"quota: the default", test_quota_default},
	    {"quota: per user", test_quota_per_user},
	    {"quota: per group, the largest", test_quota_per_group_largest},
	    {"quota refusal names the user", test_quota_message_names_the_user},
	};
	CU_pSuite s;
	size_t i;
	int rc;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("policy", suite_init, suite_clean);
	if (s == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 1;
		}
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
