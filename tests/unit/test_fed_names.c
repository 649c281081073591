/*
 * Unit tests for gateway/fedname.c, federation's rules for names: which
 * entries a remote gateway is given (global ones its export patterns
 * match; learned ones only where it says reexport, never back along
 * their path nor to ourselves), what a remote may give us (NAME@USER@
 * ORIGIN from its origin), and how an entry travels (NAME@USER@SELF at
 * our advertised address for our own; SELF appended to a learned one's
 * path).
 *
 * We are gateway "gwA"; the remote we judge for is "gwB"; "gwC" is a
 * third.  Entries are made by the registry table, as fed.c finds them.
 */
#include <sys/types.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "fedname.h"
#include "gwconf.h"
#include "registry.h"
#include "tbuf.h"
#include "tcllist.h"

#define SELF      "gwA"
#define ADVERTISE "192.0.2.10"

static struct registry *reg;
static struct reg_entry_list owned; /* everything below is ours */
static int owner;                   /* the owner's identity, nothing more */

static int
suite_init(void)
{
	reg = registry_new(NULL, NULL);
	TAILQ_INIT(&owned);
	return reg == NULL ? -1 : 0;
}

static int
suite_clean(void)
{
	struct reg_entry *e;

	while ((e = TAILQ_FIRST(&owned)) != NULL)
		registry_remove(reg, e, &owned);
	registry_free(reg);
	return 0;
}

/*
 * An entry of the table, as a copy: name, base, serial and path as given
 * (the gateway keeps its own "calc #2" of user ann as "calc #2@ann",
 * base "calc", serial 2); a port > 0 makes data the comm id "PORT HOST",
 * else data is as given.
 */
static const struct reg_entry *
entry(const char *name, const char *base, int serial, int port,
    const char *host, const char *data, enum reg_scope scope, const char *path)
{
	struct reg_add a;
	struct reg_entry *e;
	struct tbuf d, err;

	tbuf_init(&d);
	tbuf_init(&err);
	if (port > 0) {
		tl_append_int(&d, 0, port);
		tl_append_str(&d, 0, host);
	} else
		tbuf_adds(&d, data);
	memset(&a, 0, sizeof(a));
	a.copy = true;
	a.name = name;
	a.namelen = strlen(name);
	a.base = base;
	a.baselen = strlen(base);
	a.want_serial = serial;
	a.port = port;
	a.host = host;
	a.data = d.p != NULL ? d.p : "";
	a.datalen = d.len;
	a.scope = scope;
	a.uid = 1000;
	a.pid = 4242;
	a.since = 1700000000;
	a.path = path;
	e = registry_add(reg, &a, &owner, &owned, &err);
	if (e == NULL)
		printf("\n    %s not added: %.*s ", name, (int)err.len,
		    err.p != NULL ? err.p : "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	tbuf_free(&d);
	tbuf_free(&err);
	return e;
}

/* Our own entry of this host, NAME@USER, port 4000 on localhost. */
static const struct reg_entry *
local(const char *name, enum reg_scope scope)
{
	return entry(name, name, 1, 4000, "localhost", NULL, scope, NULL);
}

/* An entry learned from another gateway, NAME@USER@ORIGIN. */
static const struct reg_entry *
learned(const char *name, const char *path)
{
	return entry(name, name, 1, 5000, "hostb.example", NULL,
	    REG_SCOPE_GLOBAL, path);
}

/* [remote gwB] with these export patterns. */
static struct gwconf_remote
remote(char **exports, size_t nexports, bool reexport)
{
	struct gwconf_remote r;

	memset(&r, 0, sizeof(r));
	r.name = "b";
	r.peer_name = "gwB";
	r.exports = exports;
	r.nexports = nexports;
	r.reexport = reexport;
	return r;
}

/* The value of key in dict d; "(none)" when absent. */
static const char *
dict_get(const struct tbuf *d, const char *key, char *out, size_t outlen)
{
	struct tlist l;
	const char *err;
	size_t i;

	snprintf(out, outlen, "(none)");
	tlist_init(&l);
	if (tlist_parse(&l, d->p, d->len, &err) == 0)
		for (i = 0; i + 1 < l.n; i += 2)
			if (strcmp(l.v[i].p, key) == 0) {
				snprintf(out, outlen, "%s", l.v[i + 1].p);
				break;
			}
	tlist_free(&l);
	return out;
}

static void
expect_key(const struct tbuf *d, const char *key, const char *want)
{
	char v[300];

	dict_get(d, key, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, want);
	if (strcmp(v, want) != 0)
		printf("\n    %s: want \"%s\", got \"%s\" ", key, want, v);
}

/* ---- the cases ----------------------------------------------------------- */

static void
test_path_has_whole_words(void)
{
	CU_ASSERT_TRUE(fedname_path_has("gw1", "gw1"));
	CU_ASSERT_TRUE(fedname_path_has("gw1 gw2", "gw1"));
	CU_ASSERT_TRUE(fedname_path_has("gw2 gw1", "gw1"));
	CU_ASSERT_TRUE(fedname_path_has("gw0 gw1 gw2", "gw1"));
	/* A word that only starts or ends with it is another gateway... */
	CU_ASSERT_FALSE(fedname_path_has("gw10 gw2", "gw1"));
	CU_ASSERT_FALSE(fedname_path_has("gw2 xgw1", "gw1"));
	CU_ASSERT_FALSE(fedname_path_has("gw2 gw1x", "gw1"));
	/* ... and one that does not match first may still come later. */
	CU_ASSERT_TRUE(fedname_path_has("gw10 gw1", "gw1"));
	CU_ASSERT_FALSE(fedname_path_has("", "gw1"));
}

static void
test_patterns_see_the_application_name(void)
{
	char *pats[] = {"calc", "ed*"};

	CU_ASSERT_EQUAL(fedname_app_len("calc@ann@gwB"), 4);
	CU_ASSERT_EQUAL(fedname_app_len("calc"), 4);
	CU_ASSERT_EQUAL(fedname_app_len("@ann"), 0);
	/* Only the part before the first '@' is matched. */
	CU_ASSERT_TRUE(fedname_patterns_match(pats, 2, "calc@ann"));
	CU_ASSERT_TRUE(fedname_patterns_match(pats, 2, "calc@ann@gwB"));
	CU_ASSERT_TRUE(fedname_patterns_match(pats, 2, "editor@bob"));
	CU_ASSERT_FALSE(fedname_patterns_match(pats, 2, "calculator@ann"));
	CU_ASSERT_FALSE(fedname_patterns_match(pats, 2, "xcalc@ann"));
	/* No patterns: nothing. */
	CU_ASSERT_FALSE(fedname_patterns_match(pats, 0, "calc@ann"));
}

/* Which entry a bare name answers with: this host's first, then by
 * name, whatever the order they come in. */
static void
test_answers_before(void)
{
	const struct reg_entry *bob = local("first@bob", REG_SCOPE_GLOBAL);
	const struct reg_entry *ann = local("first@ann", REG_SCOPE_GLOBAL);
	const struct reg_entry *far =
	    learned("first@al@site.example", "site.example");

	CU_ASSERT_TRUE(fedname_answers_before(bob, NULL));
	CU_ASSERT_TRUE(fedname_answers_before(ann, bob));
	CU_ASSERT_FALSE(fedname_answers_before(bob, ann));
	/* "first@al@..." sorts first, but a local entry comes before it. */
	CU_ASSERT_TRUE(fedname_answers_before(bob, far));
	CU_ASSERT_FALSE(fedname_answers_before(far, bob));
	CU_ASSERT_FALSE(fedname_answers_before(ann, ann));
}

static void
test_exportable_local(void)
{
	char *all[] = {"*"}, *calc[] = {"calc"}, *user[] = {"calc@ann"},
	     *glob_user[] = {"*ann*"};
	struct gwconf_remote r;

	/* Only what is offered beyond the host leaves it. */
	r = remote(all, 1, false);
	CU_ASSERT_FALSE(fedname_exportable(SELF, &r,
	    local("hostonly@ann", REG_SCOPE_HOST)));
	CU_ASSERT_FALSE(
	    fedname_exportable(SELF, &r, local("mine@ann", REG_SCOPE_USER)));
	CU_ASSERT_FALSE(
	    fedname_exportable(SELF, &r, local("priv@ann", REG_SCOPE_PRIVATE)));
	CU_ASSERT_TRUE(
	    fedname_exportable(SELF, &r, local("calc@ann", REG_SCOPE_GLOBAL)));
	/* The export patterns decide, on the application's name. */
	r = remote(calc, 1, false);
	CU_ASSERT_TRUE(
	    fedname_exportable(SELF, &r, registry_find(reg, "calc@ann", 8)));
	CU_ASSERT_FALSE(
	    fedname_exportable(SELF, &r, local("draw@ann", REG_SCOPE_GLOBAL)));
	r = remote(user, 1, false);
	CU_ASSERT_FALSE(
	    fedname_exportable(SELF, &r, registry_find(reg, "calc@ann", 8)));
	r = remote(glob_user, 1, false);
	CU_ASSERT_FALSE(
	    fedname_exportable(SELF, &r, registry_find(reg, "calc@ann", 8)));
	/* No export patterns: nothing is given. */
	r = remote(all, 0, false);
	CU_ASSERT_FALSE(
	    fedname_exportable(SELF, &r, registry_find(reg, "calc@ann", 8)));
}

static void
test_exportable_learned(void)
{
	char *all[] = {"*"}, *none[] = {"calc"};
	const struct reg_entry *fromC, *viaB, *viaUs, *fromC1;
	struct gwconf_remote r;

	fromC = learned("tool@carl@gwC", "gwC");
	viaB = learned("tool@bea@gwB", "gwB");
	viaUs = learned("tool@dan@gwD", "gwD gwA gwC");
	fromC1 = learned("tool@eve@gwA1", "gwA1");

	/* Learned elsewhere: not passed on unless the remote says so. */
	r = remote(all, 1, false);
	CU_ASSERT_FALSE(fedname_exportable(SELF, &r, fromC));
	r = remote(all, 1, true);
	CU_ASSERT_TRUE(fedname_exportable(SELF, &r, fromC));
	/* ... and then still by its export patterns. */
	r = remote(none, 1, true);
	CU_ASSERT_FALSE(fedname_exportable(SELF, &r, fromC));
	/* Never back to a gateway on its path. */
	r = remote(all, 1, true);
	CU_ASSERT_FALSE(fedname_exportable(SELF, &r, viaB));
	r.peer_name = "gwC";
	CU_ASSERT_FALSE(fedname_exportable(SELF, &r, fromC));
	/* Never when it came through us already (a loop). */
	r.peer_name = "gwB";
	CU_ASSERT_FALSE(fedname_exportable(SELF, &r, viaUs));
	/* Whole words: gwA1 is not us, gwC1 is not gwC. */
	CU_ASSERT_TRUE(fedname_exportable(SELF, &r, fromC1));
	r.peer_name = "gwC1";
	CU_ASSERT_TRUE(fedname_exportable(SELF, &r, fromC));
}

static void
test_well_formed(void)
{
	/* NAME@USER@ORIGIN from its origin, one hop. */
	CU_ASSERT_TRUE(fedname_well_formed(SELF, "gwB", "calc@bea@gwB", "gwB"));
	/* From further away, its origin first on the path. */
	CU_ASSERT_TRUE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwC gwB"));
	CU_ASSERT_TRUE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwC gwD gwB"));
	/* One hop: only the remote's own. */
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwC"));
	/* Not two '@': a local name (or a bare one) is never taken. */
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@bea", "gwB"));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc", "gwB"));
	/* A third '@'. */
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@bea@gwB@gwB", "gwB"));
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@bea@x@gwB", "gwB"));
	/* Empty parts. */
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "@bea@gwB", "gwB"));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@@gwB", "gwB"));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@bea@", "gwB"));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@bea@", ""));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "@@", ""));
	/* Our own name, whatever the path. */
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@ann@gwA", "gwA gwB"));
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwA", "calc@ann@gwA", "gwA"));
	/* ORIGIN must be the first word of the path, all of it. */
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwB gwC"));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@bea@gw", "gwB"));
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@bea@gwB", "gwB1"));
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwC1 gwB"));
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@bea@gwB", ""));
	/* The sender is the last gateway of the path: gwB may not speak
	 * for gwD, whatever it says the path was. */
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwC gwD"));
	CU_ASSERT_FALSE(
	    fedname_well_formed(SELF, "gwB", "calc@carl@gwC", "gwC gwB gwD"));
	/* An empty name is on no path (it looped for ever). */
	CU_ASSERT_FALSE(fedname_path_has("gw1", ""));
	CU_ASSERT_FALSE(fedname_path_has("", ""));
	/* An empty origin (a path that starts with a space). */
	CU_ASSERT_FALSE(fedname_well_formed(SELF, "gwB", "calc@bea@", " gwB"));
}

static void
test_export_dict_local(void)
{
	const struct reg_entry *e;
	struct tbuf d;
	char want[64];

	e = entry("calc #2@ann", "calc", 2, 4000, "localhost", NULL,
	    REG_SCOPE_GLOBAL, NULL);
	tbuf_init(&d);
	tbuf_adds(&d, "left over");
	fedname_export_dict(SELF, ADVERTISE, e, &d);
	/* Named for the world, reachable at our advertised address, and
	 * its path starts with us. */
	expect_key(&d, "name", "calc #2@ann@" SELF);
	expect_key(&d, "base", "calc");
	expect_key(&d, "serial", "2");
	expect_key(&d, "port", "4000");
	expect_key(&d, "host", ADVERTISE);
	expect_key(&d, "data", "4000 " ADVERTISE);
	expect_key(&d, "scope", "global");
	expect_key(&d, "pid", "4242");
	expect_key(&d, "since", "1700000000");
	expect_key(&d, "path", SELF);
	/* Written afresh, a dict of those keys only (no uid: a user of
	 * another host means nothing here). */
	snprintf(want, sizeof(want), "name {calc #2@ann@%s}", SELF);
	CU_ASSERT_EQUAL(strncmp(d.p, want, strlen(want)), 0);
	expect_key(&d, "uid", "(none)");
	tbuf_free(&d);
}

static void
test_export_dict_learned(void)
{
	const struct reg_entry *e;
	struct tbuf d;

	e = learned("calc@carl@gwC", "gwC gwB");
	tbuf_init(&d);
	fedname_export_dict(SELF, ADVERTISE, e, &d);
	/* Passed on as it came, its path one gateway longer. */
	expect_key(&d, "name", "calc@carl@gwC");
	expect_key(&d, "host", "hostb.example");
	expect_key(&d, "data", "5000 hostb.example");
	expect_key(&d, "path", "gwC gwB " SELF);
	tbuf_free(&d);
}

static void
test_export_dict_no_port(void)
{
	const struct reg_entry *e;
	struct tbuf d;

	/* A name bound to data that is not a comm id: port 0, its data. */
	e = entry("notes@ann", "notes", 1, -1, "", "some {data}",
	    REG_SCOPE_GLOBAL, NULL);
	tbuf_init(&d);
	fedname_export_dict(SELF, ADVERTISE, e, &d);
	expect_key(&d, "name", "notes@ann@" SELF);
	expect_key(&d, "port", "0");
	expect_key(&d, "data", "some {data}");
	tbuf_free(&d);
}

int
main(void)
{
	CU_pSuite s;
	int rc;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("federation names", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "answers_before: this host's first, then by name",
	        test_answers_before) == NULL ||
	    CU_add_test(s, "path_has: whole words only",
	        test_path_has_whole_words) == NULL ||
	    CU_add_test(s, "patterns see the application name",
	        test_patterns_see_the_application_name) == NULL ||
	    CU_add_test(s, "exportable: our own entries",
	        test_exportable_local) == NULL ||
	    CU_add_test(s, "exportable: learned entries",
	        test_exportable_learned) == NULL ||
	    CU_add_test(s, "well_formed: NAME@USER@ORIGIN from its origin",
	        test_well_formed) == NULL ||
	    CU_add_test(s, "export_dict: our own entry",
	        test_export_dict_local) == NULL ||
	    CU_add_test(s, "export_dict: a learned entry",
	        test_export_dict_learned) == NULL ||
	    CU_add_test(s, "export_dict: an entry without a port",
	        test_export_dict_no_port) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
