/*
 * The asynchronous client library (commreg.h, lib/async.c) against a
 * real commregd on loopback, with a throwaway HOME per test: opening
 * (spawning commregd when none runs), register, lookup, list, raw calls,
 * unregister, watches with snapshot and events, requests made before the
 * connection is up, refusals, and closing from inside a callback.
 * Failover is in test_async_failover.c.
 */
#include "test_async.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "commwire.h"
#include "tbuf.h"
#include "tcllist.h"

struct t_call {
	int done;
	int status;
	char text[1024];
	size_t n;         /* list: entries */
	char names[1024]; /* list: names joined with "," */
};

static int
t_call_done(void *arg)
{
	return ((struct t_call *)arg)->done;
}

static void
t_lookup_cb(struct commreg_async *a, int status, const char *s, void *arg)
{
	struct t_call *c = arg;

	c->done = 1;
	c->status = status;
	snprintf(c->text, sizeof c->text, "%s", s);
}

static void
t_list_cb(struct commreg_async *a, int status, const struct commreg_entry *v,
    size_t n, const char *msg, void *arg)
{
	struct t_call *c = arg;
	size_t i;

	c->done = 1;
	c->status = status;
	c->n = n;
	snprintf(c->text, sizeof c->text, "%s", msg != NULL ? msg : "");
	c->names[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strncat(c->names, ",",
			    sizeof c->names - strlen(c->names) - 1);
		strncat(c->names, v[i].name,
		    sizeof c->names - strlen(c->names) - 1);
	}
}

static void
t_call_cb(struct commreg_async *a, int status, const char *res, size_t len,
    void *arg)
{
	struct t_call *c = arg;

	c->done = 1;
	c->status = status;
	snprintf(c->text, sizeof c->text, "%.*s", (int)len, res);
}

static void
t_done_cb(struct commreg_async *a, int status, const char *msg, void *arg)
{
	struct t_call *c = arg;

	c->done = 1;
	c->status = status;
	snprintf(c->text, sizeof c->text, "%s", msg != NULL ? msg : "");
}

/* Lines-based conditions. */
struct t_want {
	struct t_log *l;
	const char *line;
	int count;
};

static int
t_has_line(void *arg)
{
	struct t_want *w = arg;

	return t_find(w->l, 0, w->line) >= 0;
}

static int
t_lines_at_least(void *arg)
{
	struct t_want *w = arg;

	return w->l->n >= w->count;
}

static struct event_base *base;

/* ---- opening ---------------------------------------------------------- */

static void
test_open_spawns_commregd_when_none_runs(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct t_log l;
	char err[512];
	long pid;
	int port = 0;

	t_home_new();
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT(t_loop_until(base, t_is_open, &l, T_WAIT_MS));
	CU_ASSERT_EQUAL(l.opened, 1);
	CU_ASSERT(commreg_async_connected(a));
	CU_ASSERT_FALSE(commreg_async_hosting(a));
	pid = t_registry_pid(&port);
	CU_ASSERT(pid > 0 && pid != (long)getpid());
	CU_ASSERT_EQUAL(commreg_async_port(a), port);
	CU_ASSERT_EQUAL(t_file_port(), port);
	CU_ASSERT_EQUAL(l.lost, 0);
	commreg_async_close(a);
	t_cleanup();
}

static void
test_open_refuses_an_unsafe_tree(void)
{
	struct commreg_async_opts o;
	struct t_log l;
	char path[512], err[512] = "";

	t_home_new();
	snprintf(path, sizeof path, "%s/.tcl", t_home);
	mkdir(path, 0777);
	chmod(path, 0777);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	CU_ASSERT_PTR_NULL(commreg_async_open(base, &o, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ".tcl"));
	t_cleanup();
}

/* ---- requests ------------------------------------------------------------ */

static void
test_register_lookup_list_call(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct commreg_reg *r1, *r2;
	struct t_log l;
	struct t_want w = {&l, NULL, 2};
	struct t_call c;
	const char *stats[1] = {"Commreg/Stats"};
	char err[512], want[64];
	int port;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0 && port > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* Made before the connection is up: they wait for it. */
	r1 = commreg_async_register(a, "foo", 5555, NULL, t_on_registered, &l);
	r2 = commreg_async_register(a, "foo", 5556, "otherhost",
	    t_on_registered, &l);
	CU_ASSERT_FATAL(r1 != NULL && r2 != NULL);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r1), "");
	w.line = "open 0 ";
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	CU_ASSERT(t_find(&l, 0, "registered foo foo") >= 0);
	CU_ASSERT(t_find(&l, 0, "registered foo foo #2") >= 0);
	/* on_open comes once what was asked before is in place. */
	CU_ASSERT(
	    t_find(&l, 0, "registered foo foo #2") < t_find(&l, 0, "open 0 "));
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r1), "foo");
	CU_ASSERT_EQUAL(commreg_reg_serial(r1), 1);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r2), "foo #2");
	CU_ASSERT_EQUAL(commreg_reg_serial(r2), 2);
	CU_ASSERT_EQUAL(commreg_async_port(a), port);

	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(commreg_async_lookup(a, "foo #2", t_lookup_cb, &c), 0);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 0);
	CU_ASSERT_STRING_EQUAL(c.text, "5556 otherhost");

	memset(&c, 0, sizeof c);
	commreg_async_lookup(a, "nosuch", t_lookup_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 1);
	CU_ASSERT_STRING_EQUAL(c.text, "no application named \"nosuch\"");

	memset(&c, 0, sizeof c);
	commreg_async_list(a, "foo*", t_list_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 0);
	CU_ASSERT_EQUAL(c.n, 2);
	CU_ASSERT_STRING_EQUAL(c.names, "foo,foo #2");

	memset(&c, 0, sizeof c);
	commreg_async_list(a, NULL, t_list_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.n, 2);

	memset(&c, 0, sizeof c);
	commreg_async_call(a, stats, 1, t_call_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 0);
	snprintf(want, sizeof want, "entries 2 ");
	CU_ASSERT_PTR_NOT_NULL(strstr(c.text, want));

	/* An unknown command: Tcl's own words, status 1. */
	memset(&c, 0, sizeof c);
	stats[0] = "NoSuchCommand";
	commreg_async_call(a, stats, 1, t_call_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 1);
	CU_ASSERT_STRING_EQUAL(c.text,
	    "invalid command name \"NoSuchCommand\"");

	CU_ASSERT_EQUAL(l.lost, 0);
	CU_ASSERT_EQUAL(l.errors, 0);
	commreg_async_close(a);
	t_cleanup();
}

static void
test_refused_registration_says_why(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct t_log l;
	struct t_want w = {&l, NULL, 0};
	char err[512];
	int port;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	commreg_async_register(a, "a\tb", 5555, NULL, t_on_registered, &l);
	commreg_async_register(a, "fine", 5555, NULL, t_on_registered, &l);
	w.line = "open 0 ";
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	/* The registry quotes a peer's words, control characters escaped. */
	CU_ASSERT(t_find(&l, 0,
	              "refused a\tb 1 name \"a\\tb\" contains a "
	              "control character") >= 0);
	CU_ASSERT(t_find(&l, 0, "registered fine fine") >= 0);
	CU_ASSERT_PTR_NULL(
	    commreg_async_register(a, "bad", 0, NULL, NULL, NULL));
	commreg_async_close(a);
	t_cleanup();
}

static void
test_unregister_drops_the_name(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct commreg_reg *r;
	struct t_log l;
	struct t_want w = {&l, "registered gone gone", 0};
	struct t_call c;
	char err[512];
	int port;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	r = commreg_async_register(a, "gone", 5555, NULL, t_on_registered, &l);
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(commreg_async_unregister(a, r, t_done_cb, &c), 0);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 0);
	memset(&c, 0, sizeof c);
	commreg_async_lookup(a, "gone", t_lookup_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 1);

	/* Unregistered before it was ever made: nothing reaches the
	 * registry, the callback still comes (later, from the loop). */
	r = commreg_async_register(a, "never", 5555, NULL, t_on_registered, &l);
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(commreg_async_unregister(a, r, t_done_cb, &c), 0);
	CU_ASSERT_FALSE(c.done);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 0);
	t_loop_for(base, 100);
	memset(&c, 0, sizeof c);
	commreg_async_lookup(a, "never", t_lookup_cb, &c);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
	CU_ASSERT_EQUAL(c.status, 1);
	commreg_async_close(a);
	t_cleanup();
}

/* ---- watches ------------------------------------------------------------- */

static void
test_watch_snapshot_then_changes(void)
{
	struct commreg_async_opts o;
	struct commreg_async *wa, *ra;
	struct commreg_watch *w;
	struct commreg_reg *r;
	struct t_log wl, rl;
	struct t_want want = {&wl, NULL, 0};
	struct t_want rwant = {&rl, NULL, 0};
	struct t_call c;
	char err[512];
	int port, n;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	t_opts(&o, &rl, COMMREG_MODE_SPAWN);
	ra = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ra);
	commreg_async_register(ra, "w.pre", 5000, NULL, t_on_registered, &rl);
	rwant.line = "registered w.pre w.pre";
	CU_ASSERT(t_loop_until(base, t_has_line, &rwant, T_WAIT_MS));

	t_opts(&o, &wl, COMMREG_MODE_SPAWN);
	wa = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(wa);
	w = commreg_async_watch(wa, "w.*", t_on_watch, &wl);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	want.line = "add w.pre";
	CU_ASSERT(t_loop_until(base, t_has_line, &want, T_WAIT_MS));
	CU_ASSERT_EQUAL(t_find(&wl, 0, "snapshot 1"),
	    t_find(&wl, 0, "add w.pre") - 1);

	r = commreg_async_register(ra, "w.new", 5001, NULL, t_on_registered,
	    &rl);
	commreg_async_register(ra, "other", 5002, NULL, t_on_registered, &rl);
	want.line = "add w.new";
	CU_ASSERT(t_loop_until(base, t_has_line, &want, T_WAIT_MS));
	commreg_async_unregister(ra, r, NULL, NULL);
	want.line = "remove w.new";
	CU_ASSERT(t_loop_until(base, t_has_line, &want, T_WAIT_MS));
	CU_ASSERT_EQUAL(t_find(&wl, 0, "add other"), -1);

	/* Unwatched: nothing more, even for matching names. */
	CU_ASSERT_EQUAL(commreg_async_unwatch(wa, w), 0);
	n = wl.n;
	commreg_async_register(ra, "w.late", 5003, NULL, t_on_registered, &rl);
	rwant.line = "registered w.late w.late";
	CU_ASSERT(t_loop_until(base, t_has_line, &rwant, T_WAIT_MS));
	t_loop_for(base, 100);
	CU_ASSERT_EQUAL(wl.n, n);
	/* And the registry forgot the watch. */
	{
		const char *words[1] = {"Commreg/Stats"};

		memset(&c, 0, sizeof c);
		commreg_async_call(wa, words, 1, t_call_cb, &c);
		CU_ASSERT(t_loop_until(base, t_call_done, &c, T_WAIT_MS));
		CU_ASSERT_PTR_NOT_NULL(strstr(c.text, "watches 0 "));
	}
	commreg_async_close(wa);
	commreg_async_close(ra);
	t_cleanup();
}

static int
t_count_prefix(const struct t_log *l, const char *prefix)
{
	int i, n = 0;

	for (i = 0; i < l->n; i++) {
		if (strncmp(l->line[i], prefix, strlen(prefix)) == 0)
			n++;
	}
	return n;
}

static void
test_watch_beyond_the_limit_is_refused(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct t_log l;
	struct t_want w = {&l, NULL, 0};
	char err[512];
	int port, i;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* commregd allows 256 watches per connection. */
	for (i = 0; i < 257; i++)
		commreg_async_watch(a, "*", t_on_watch, &l);
	w.line = "open 0 ";
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	CU_ASSERT_EQUAL(t_count_prefix(&l, "snapshot 0"), 256);
	CU_ASSERT_EQUAL(t_count_prefix(&l, "watch error too many watches"), 1);
	CU_ASSERT_EQUAL(l.lost, 0);
	commreg_async_close(a);
	t_cleanup();
}

/* ---- callbacks may close ------------------------------------------------- */

static void
t_close_in_cb(struct commreg_async *a, struct commreg_reg *r, int status,
    const char *msg, void *arg)
{
	int *n = arg;

	(*n)++;
	commreg_async_close(a);
}

static int
t_int_set(void *arg)
{
	return *(int *)arg != 0;
}

static void
test_close_inside_a_callback(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct t_log l;
	char err[512];
	int port, n = 0;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* Two replies arrive in one read; the first callback closes. */
	commreg_async_register(a, "c1", 5555, NULL, t_close_in_cb, &n);
	commreg_async_register(a, "c2", 5555, NULL, t_close_in_cb, &n);
	CU_ASSERT(t_loop_until(base, t_int_set, &n, T_WAIT_MS));
	t_loop_for(base, 100);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(l.opened, 0);
	/* The registry saw us go: both names are gone. */
	t_loop_for(base, 50);
	{
		struct commreg_open_opts bo;
		struct commreg_client *c;
		struct commreg_entry *v;
		size_t nv = 99;

		memset(&bo, 0, sizeof bo);
		bo.home = t_home;
		bo.no_spawn = 1;
		c = commreg_open(&bo, err, sizeof err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_EQUAL(commreg_list(c, NULL, &v, &nv), 0);
		CU_ASSERT_EQUAL(nv, 0);
		commreg_entries_free(v, nv);
		commreg_close(c);
	}
	t_cleanup();
}

/* ---- no registry to be had ------------------------------------------------
 */

static void
test_open_gives_up_at_once_without_commregd(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct t_log l;
	struct t_call c;
	char err[512];
	long long t0;

	t_home_new();
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	o.commregd = "/nonexistent/commregd";
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	memset(&c, 0, sizeof c);
	commreg_async_lookup(a, "x", t_lookup_cb, &c);
	commreg_async_register(a, "x", 5555, NULL, t_on_registered, &l);
	t0 = t_now_ms();
	CU_ASSERT(t_loop_until(base, t_is_open, &l, T_WAIT_MS));
	CU_ASSERT(t_now_ms() - t0 < 1000);
	CU_ASSERT_EQUAL(l.opened, -1);
	CU_ASSERT(t_loop_until(base, t_call_done, &c, 1000));
	CU_ASSERT_EQUAL(c.status, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(l.line[0], "refused x -1 no registry"));
	CU_ASSERT_PTR_NOT_NULL(strstr(c.text, "cannot run "
	                                      "/nonexistent/commregd"));
	CU_ASSERT_EQUAL(commreg_async_lookup(a, "x", t_lookup_cb, &c), -1);
	CU_ASSERT_PTR_NULL(
	    commreg_async_register(a, "y", 5555, NULL, NULL, NULL));
	commreg_async_close(a);
	t_cleanup();
}

/* A commregd that runs but fails: retried until open_timeout_ms. */
static void
test_open_retries_until_its_timeout(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct t_log l;
	char err[512];
	long long t0, took;

	t_home_new();
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	o.commregd = "/bin/false";
	o.open_timeout_ms = 600;
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	t0 = t_now_ms();
	CU_ASSERT(t_loop_until(base, t_is_open, &l, T_WAIT_MS));
	took = t_now_ms() - t0;
	CU_ASSERT(took >= 600 && took < 3000);
	CU_ASSERT_EQUAL(l.opened, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(l.line[0], "/bin/false --detach failed "
	                                         "(exit 1)"));
	commreg_async_close(a);
	t_cleanup();
}

/* ---- host and global scope ------------------------------------------------
 */

static void
t_on_reg_lost(struct commreg_async *a, struct commreg_reg *r, const char *why,
    void *arg)
{
	struct t_log *l = arg;

	t_say(l, "dropped %s %s", commreg_reg_name(r), why);
}

/* A user registry with no gateway configured says so, as status 1. */
static void
test_register_scope_host_needs_the_gateway(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct commreg_open_opts bo;
	struct commreg_client *c;
	struct t_log l;
	struct t_want w = {&l, "open 0 ", 0};
	char err[512], got[64], want[64];
	int port, i, found = 0;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL(commreg_async_register_scope(a, "wide", 5555,
	    NULL, "host", t_on_registered, &l));
	CU_ASSERT_PTR_NOT_NULL(commreg_async_register_scope(a, "mine", 5555,
	    NULL, "user", t_on_registered, &l));
	CU_ASSERT_PTR_NULL(commreg_async_register_scope(a, "empty", 5555, NULL,
	    "", t_on_registered, &l));
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	CU_ASSERT(t_find(&l, 0, "registered mine mine") >= 0);
	snprintf(want, sizeof want, "refused wide 1 ");
	for (i = 0; i < l.n; i++) {
		if (strncmp(l.line[i], want, strlen(want)) == 0) {
			found = 1;
			CU_ASSERT_PTR_NOT_NULL(strstr(l.line[i], "gateway"));
		}
	}
	CU_ASSERT(found);
	if (!found)
		t_dump(&l, "callbacks");
	commreg_async_close(a);

	/* The blocking interface alike. */
	memset(&bo, 0, sizeof bo);
	bo.home = t_home;
	bo.no_spawn = 1;
	c = commreg_open(&bo, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(commreg_register_scope(c, "wide", 5555, NULL, "global",
	                    got, sizeof got),
	    1);
	CU_ASSERT_PTR_NOT_NULL(strstr(commreg_error(c), "gateway"));
	CU_ASSERT_EQUAL(commreg_register_scope(c, "mine", 5555, NULL, "user",
	                    got, sizeof got),
	    0);
	CU_ASSERT_STRING_EQUAL(got, "mine");
	commreg_close(c);
	t_cleanup();
}

static int
t_is_lost(void *arg)
{
	return ((struct t_log *)arg)->lost > 0;
}

#define T_WITHDRAW_REASON                                                      \
	"refused by rule \"no-low-ports\" (/etc/tcl/comm/10-policy.ini:12): "  \
	"port 5555 is below 10000"

/*
 * The gateway withdraws one of two host registrations: on_reg_lost says
 * so, the handle carries on, and after a failover only the other one is
 * made again, with its scope.
 */
static void
test_withdrawn_registration_is_dropped(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	struct commreg_reg *wd, *keep;
	struct t_fake f;
	struct t_log l;
	struct t_want w = {&l, "open 0 ", 0};
	struct t_fake_want fw;
	char err[512], want[400];
	int from;

	t_home_new();
	CU_ASSERT_FATAL(t_fake_start(&f, base) == 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	o.commregd = "/bin/false"; /* the fake is the only registry */
	o.on_reg_lost = t_on_reg_lost;
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	wd = commreg_async_register_scope(a, "wd", 5555, NULL, "host",
	    t_on_registered, &l);
	keep = commreg_async_register_scope(a, "keep", 5556, NULL, "global",
	    t_on_registered, &l);
	CU_ASSERT_FATAL(wd != NULL && keep != NULL);
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	CU_ASSERT(t_find(&l, 0, "registered wd wd") >= 0);
	CU_ASSERT(t_find(&l, 0, "registered keep keep") >= 0);
	snprintf(want, sizeof want,
	    "Commreg/Register|wd|5555|-pid|%ld|-scope|host", (long)getpid());
	CU_ASSERT(t_fake_got(&f, 0, want) >= 0);
	snprintf(want, sizeof want,
	    "Commreg/Register|keep|5556|-pid|%ld|-scope|global",
	    (long)getpid());
	CU_ASSERT(t_fake_got(&f, 0, want) >= 0);

	/* Someone else's name: not ours, nothing happens. */
	t_fake_withdraw(&f, "other", "whatever");
	t_fake_withdraw(&f, "wd", T_WITHDRAW_REASON);
	w.line = "dropped wd " T_WITHDRAW_REASON;
	CU_ASSERT(t_loop_until(base, t_has_line, &w, T_WAIT_MS));
	CU_ASSERT_EQUAL(t_find(&l, 0, "dropped other whatever"), -1);
	CU_ASSERT_EQUAL(l.lost, 0);
	CU_ASSERT(commreg_async_connected(a));
	CU_ASSERT_FALSE(commreg_async_orphaned(a));
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(keep), "keep");

	/* Failover: the registry (the fake) drops the connection, the
	 * handle finds it again through the port file. */
	from = f.ngot;
	t_fake_drop(&f);
	CU_ASSERT(t_loop_until(base, t_is_lost, &l, T_WAIT_MS));
	CU_ASSERT(t_loop_until(base, t_is_regained, &l, T_WAIT_MS));
	CU_ASSERT_EQUAL(f.conns, 2);
	snprintf(want, sizeof want,
	    "Commreg/Register|keep|5556|-pid|%ld|-scope|global|-serial|1",
	    (long)getpid());
	fw.f = &f;
	fw.from = from;
	fw.prefix = want;
	CU_ASSERT(t_loop_until(base, t_fake_has, &fw, T_WAIT_MS));
	CU_ASSERT_EQUAL(t_fake_got(&f, from, "Commreg/Register|wd|"), -1);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(keep), "keep");
	commreg_async_close(a);
	t_fake_stop(&f);
	t_cleanup();
}

/* ---- the Tcl package: scope checks and withdrawal ------------------------ */

/* Run a Tcl script with the source tree's package first on the path;
 * its stdout (up to len) into out.  -1 when tclsh cannot be run. */
static int
t_tclsh(const char *script, char *out, size_t len)
{
	char path[512];
	size_t n = 0, r;
	FILE *fp;
	int fd;

	snprintf(path, sizeof path, "%s/script.tcl", t_home);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return -1;
	if (write(fd, script, strlen(script)) != (ssize_t)strlen(script)) {
		close(fd);
		return -1;
	}
	close(fd);
	snprintf(path, sizeof path, "tclsh %s/script.tcl </dev/null 2>&1",
	    t_home);
	if ((fp = popen(path, "r")) == NULL)
		return -1;
	while (n + 1 < len && (r = fread(out + n, 1, len - 1 - n, fp)) > 0)
		n += r;
	out[n] = '\0';
	return pclose(fp) == 0 ? 0 : -1;
}

static void
test_tcl_package_checks_the_scope(void)
{
	char script[2048], out[2048];

	t_home_new();
	/* No registry is needed (nor started: /bin/false) to say no. */
	snprintf(script, sizeof script,
	    "set auto_path [linsert $auto_path 0 {%s/tcl}]\n"
	    "package require comm::registry\n"
	    "comm::registry::configure -home {%s} -commregd /bin/false\n"
	    "puts [list [catch {comm::registry::register -port 4711 "
	    "-scope bogus x} m] $m]\n"
	    "puts [list [catch {comm::registry::register -port 4711 "
	    "-scope {} x} m] $m]\n",
	    COMMREG_TEST_SRC, t_home);
	CU_ASSERT_EQUAL(t_tclsh(script, out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out,
	    "1 {bad scope \"bogus\": must be user, host or global}\n"
	    "1 {bad scope \"\": must be user, host or global}\n");
	t_cleanup();
}

/* Does the file `out` in t_home hold a line starting with s? */
static int
t_file_has_prefix(const char *out, const char *s)
{
	char path[512], line[1024];
	FILE *fp;
	int found = 0;

	snprintf(path, sizeof path, "%s/%s", t_home, out);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof line, fp) != NULL)
		found = strncmp(line, s, strlen(s)) == 0;
	fclose(fp);
	return found;
}

struct t_file_want {
	const char *out;
	const char *line;
};

static int
t_file_want_has(void *arg)
{
	struct t_file_want *w = arg;

	return t_file_has_prefix(w->out, w->line);
}

/*
 * tests/tools/tclapp.tcl registers two names with -scope host at the
 * fake; a withdrawal of one is `dropped NAME REASON`, and after a
 * failover only the other is registered again, with its scope.
 */
static void
test_tcl_package_forgets_a_withdrawn_name(void)
{
	struct t_fake f;
	struct t_file_want fw = {"tclapp.out", NULL};
	struct t_fake_want gw;
	char app[512], libpath[600], out[512];
	pid_t pid;
	int from, fd, i;

	t_home_new();
	CU_ASSERT_FATAL(t_fake_start(&f, base) == 0);
	snprintf(app, sizeof app, "%s/tests/tools/tclapp.tcl",
	    COMMREG_TEST_SRC);
	snprintf(libpath, sizeof libpath, "TCLLIBPATH=%s/tcl",
	    COMMREG_TEST_SRC);
	snprintf(out, sizeof out, "%s/tclapp.out", t_home);
	CU_ASSERT_FATAL((pid = fork()) != -1);
	if (pid == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		unsetenv("TCL_COMM_REGPORT");
		putenv(libpath);
		/* /bin/true as commregd: the fake is the registry. */
		execlp("tclsh", "tclsh", app, "-home", t_home, "-commregd",
		    "/bin/true", "-scope", "host", "wd", "keep", (char *)NULL);
		_exit(127);
	}
	t_note_pid(pid);
	fw.line = "registered keep keep";
	CU_ASSERT_FATAL(t_loop_until(base, t_file_want_has, &fw, T_WAIT_MS));
	CU_ASSERT(t_file_has_prefix("tclapp.out", "registered wd wd"));
	i = t_fake_got(&f, 0, "Commreg/Register|wd|");
	CU_ASSERT(i >= 0);
	if (i >= 0)
		CU_ASSERT_PTR_NOT_NULL(strstr(f.got[i], "|-scope|host"));

	t_fake_withdraw(&f, "wd", T_WITHDRAW_REASON);
	fw.line = "dropped wd {" T_WITHDRAW_REASON "}";
	CU_ASSERT(t_loop_until(base, t_file_want_has, &fw, T_WAIT_MS));

	from = f.ngot;
	t_fake_drop(&f);
	fw.line = "regained ";
	CU_ASSERT(t_loop_until(base, t_file_want_has, &fw, T_WAIT_MS));
	gw.f = &f;
	gw.from = from;
	gw.prefix = "Commreg/Register|keep|";
	CU_ASSERT(t_loop_until(base, t_fake_has, &gw, T_WAIT_MS));
	i = t_fake_got(&f, from, "Commreg/Register|keep|");
	if (i >= 0)
		CU_ASSERT_PTR_NOT_NULL(
		    strstr(f.got[i], "|-scope|host|-serial|1"));
	CU_ASSERT_EQUAL(t_fake_got(&f, from, "Commreg/Register|wd|"), -1);
	t_kill_child(pid);
	t_fake_stop(&f);
	t_cleanup();
}

/* ---- the blocking interface, public form ----------------------------------
 */

static void
test_blocking_lookup_id(void)
{
	struct commreg_open_opts o;
	struct commreg_client *c;
	char err[512], id[64], got[64];
	int port;

	t_home_new();
	CU_ASSERT_FATAL(t_commregd_start(&port) > 0);
	memset(&o, 0, sizeof o);
	o.home = t_home;
	o.commregd = COMMREG_TEST_COMMREGD;
	c = commreg_open(&o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(commreg_register(c, "blk", 4242, NULL, got, sizeof got),
	    0);
	CU_ASSERT_STRING_EQUAL(got, "blk");
	CU_ASSERT_EQUAL(commreg_lookup_id(c, "blk", id, sizeof id), 0);
	CU_ASSERT_STRING_EQUAL(id, "4242 localhost");
	CU_ASSERT_EQUAL(commreg_lookup_id(c, "nope", id, sizeof id), 1);
	CU_ASSERT_STRING_EQUAL(commreg_version(), COMMREG_VERSION);
	commreg_close(c);
	t_cleanup();
}

/* ---- the documentation's example ----------------------------------------- */

static char *
t_slurp(const char *path, size_t *len)
{
	FILE *fp;
	char *buf = NULL;
	long n;

	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 &&
	    (buf = calloc(1, (size_t)n + 1)) != NULL)
		*len = fread(buf, 1, (size_t)n, fp);
	fclose(fp);
	return buf;
}

static void
test_doc_shows_the_built_example(void)
{
	const char *begin = "<!-- example_c.c begin -->\n```c\n";
	const char *end = "```\n<!-- example_c.c end -->";
	char *doc, *src, *b, *e;
	size_t dlen = 0, slen = 0;

	doc = t_slurp(COMMREG_TEST_SRC "/docs/c-api.md", &dlen);
	src = t_slurp(COMMREG_TEST_SRC "/tests/tools/example_c.c", &slen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	b = strstr(doc, begin);
	e = b != NULL ? strstr(b, end) : NULL;
	CU_ASSERT_FATAL(b != NULL && e != NULL);
	b += strlen(begin);
	CU_ASSERT_EQUAL((size_t)(e - b), slen);
	CU_ASSERT(memcmp(b, src, slen) == 0);
	free(doc);
	free(src);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	(void)t_lines_at_least;
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("async", NULL, NULL);
	CU_add_test(s, "open spawns commregd when none runs",
	    test_open_spawns_commregd_when_none_runs);
	CU_add_test(s, "open refuses an unsafe tree",
	    test_open_refuses_an_unsafe_tree);
	CU_add_test(s, "register, lookup, list, call",
	    test_register_lookup_list_call);
	CU_add_test(s, "refused registration says why",
	    test_refused_registration_says_why);
	CU_add_test(s, "unregister drops the name",
	    test_unregister_drops_the_name);
	CU_add_test(s, "watch: snapshot then changes",
	    test_watch_snapshot_then_changes);
	CU_add_test(s, "watch beyond the limit is refused",
	    test_watch_beyond_the_limit_is_refused);
	CU_add_test(s, "close inside a callback", test_close_inside_a_callback);
	CU_add_test(s, "open gives up at once without commregd",
	    test_open_gives_up_at_once_without_commregd);
	CU_add_test(s, "open retries until its timeout",
	    test_open_retries_until_its_timeout);
	CU_add_test(s, "register_scope host needs the gateway",
	    test_register_scope_host_needs_the_gateway);
	CU_add_test(s, "withdrawn registration is dropped",
	    test_withdrawn_registration_is_dropped);
	CU_add_test(s, "Tcl package checks the scope",
	    test_tcl_package_checks_the_scope);
	CU_add_test(s, "Tcl package forgets a withdrawn name",
	    test_tcl_package_forgets_a_withdrawn_name);
	CU_add_test(s, "blocking lookup_id", test_blocking_lookup_id);
	CU_add_test(s, "docs/c-api.md shows the built example",
	    test_doc_shows_the_built_example);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	event_base_free(base);
	return failed == 0 ? 0 : 1;
}
