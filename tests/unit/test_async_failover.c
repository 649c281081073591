/*
 * Failover of the asynchronous client library (ARCHITECTURE §3,
 * docs/election.md, docs/c-api.md), with real registries on loopback:
 *
 *  - spawn mode: SIGKILL the commregd; the library spawns a new one on the
 *    same port, every name comes back with its serial, a watch gets a
 *    fresh snapshot and the difference, names of a client that did not
 *    come back are gone;
 *  - a serial taken while there was no registry: the name comes back with
 *    the lowest free serial and on_renamed says so;
 *  - the port taken by another program meanwhile: a fresh election on a
 *    new port;
 *  - the registry lost while a handle is still opening: on_open after the
 *    failover (no on_lost, no on_regained); twenty clients that lose it
 *    together start one or two commregd and all come back;
 *  - in-process mode: capp hosts the registry, this process connects; kill
 *    capp and this process becomes the registry on the same port; and a
 *    host that closes hands the registry over the same way.
 */
#include "test_async.h" /* first: it sets _GNU_SOURCE */

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

static struct event_base *base;

struct t_want {
	struct t_log *l;
	const char *line;
};

static int
t_has_line(void *arg)
{
	struct t_want *w = arg;

	return t_find(w->l, 0, w->line) >= 0;
}

struct t_two {
	struct t_log *a, *b;
};

static int
t_both_regained(void *arg)
{
	struct t_two *t = arg;

	return t->a->regained > 0 && t->b->regained > 0;
}

struct t_viewwant {
	struct t_log *l;
	const char *view;
};

static int
t_view_is(void *arg)
{
	struct t_viewwant *v = arg;
	char got[1024];

	t_view(v->l, got, sizeof got);
	return strcmp(got, v->view) == 0;
}

/* A call through a handle, the loop running (the registry may be ours). */
struct t_call {
	int done;
	int status;
	char text[2048];
};

static void
t_call_cb(struct commreg_async *a, int status, const char *res, size_t len,
    void *arg)
{
	struct t_call *c = arg;

	c->done = 1;
	c->status = status;
	snprintf(c->text, sizeof c->text, "%.*s", (int)len, res);
}

static int
t_call_done(void *arg)
{
	return ((struct t_call *)arg)->done;
}

static int
t_async_call(struct commreg_async *a, const char *w0, const char *w1,
    struct t_call *c)
{
	const char *w[2] = {w0, w1};

	memset(c, 0, sizeof *c);
	if (commreg_async_call(a, w, w1 != NULL ? 2 : 1, t_call_cb, c) == -1)
		return -1;
	if (!t_loop_until(base, t_call_done, c, T_WAIT_MS))
		return -1;
	return c->status;
}

/* Names in a Commreg/List reply, sorted (the registry sorts), joined. */
static void
t_names_of(const char *list, char *out, size_t len)
{
	struct commreg_entry *v;
	char err[256];
	size_t n, i;

	out[0] = '\0';
	if (commreg_entries_parse(list, strlen(list), &v, &n, err,
	        sizeof err) == -1)
		return;
	for (i = 0; i < n; i++) {
		if (i > 0)
			strncat(out, ",", len - strlen(out) - 1);
		strncat(out, v[i].name, len - strlen(out) - 1);
	}
	commreg_entries_free(v, n);
}

static void
t_list_names(struct commreg_async *a, char *out, size_t len)
{
	struct t_call c;

	out[0] = '\0';
	if (t_async_call(a, "Commreg/List", NULL, &c) == 0)
		t_names_of(c.text, out, len);
}

/* The registry's pid as its hello says, asked through a handle. */
static long
t_hello_pid(struct commreg_async *a)
{
	struct t_call c;
	char *p;

	if (t_async_call(a, "Commreg/Hello", NULL, &c) != 0 ||
	    (p = strstr(c.text, " pid ")) == NULL)
		return -1;
	return strtol(p + 5, NULL, 10);
}

/* ---- spawn mode ---------------------------------------------------------- */

static void
test_spawn_failover_keeps_every_name(void)
{
	struct commreg_async_opts o;
	struct commreg_async *a, *w;
	struct commreg_open_opts bo;
	struct commreg_client *ghost;
	struct commreg_reg *r1, *r2;
	struct t_log al, wl;
	struct t_viewwant vw;
	struct t_two two = {&al, &wl};
	char err[512], names[1024], got[64];
	long long t0;
	long newpid;
	pid_t rpid;
	int port;

	t_home_new();
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0 && port > 0);
	t_opts(&o, &al, COMMREG_MODE_SPAWN);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	r1 = commreg_async_register(a, "app", 6001, NULL, t_on_registered, &al);
	r2 = commreg_async_register(a, "app", 6002, NULL, t_on_registered, &al);
	t_opts(&o, &wl, COMMREG_MODE_SPAWN);
	w = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	commreg_async_watch(w, "*", t_on_watch, &wl);

	/* A plain blocking client: it will not come back. */
	memset(&bo, 0, sizeof bo);
	bo.home = t_home;
	bo.no_spawn = 1;
	ghost = commreg_open(&bo, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ghost);
	CU_ASSERT_EQUAL(commreg_register(ghost, "ghost", 6003, NULL, got,
	                    sizeof got),
	    0);

	vw.l = &wl;
	vw.view = "app,app #2,ghost";
	CU_ASSERT_FATAL(t_loop_until(base, t_view_is, &vw, T_WAIT_MS));
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r1), "app");
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r2), "app #2");

	t0 = t_now_ms();
	t_kill_child(rpid);
	CU_ASSERT(t_loop_until(base, t_both_regained, &two, T_WAIT_MS));
	if (getenv("COMMREG_TEST_VERBOSE") != NULL)
		fprintf(stderr, "\n    (regained %lld ms after the SIGKILL) ",
		    t_now_ms() - t0);
	CU_ASSERT_EQUAL(al.lost, 1);
	CU_ASSERT_EQUAL(al.regained, 1);
	CU_ASSERT_EQUAL(al.regained_port, port);
	CU_ASSERT_EQUAL(al.hosted, 0);
	CU_ASSERT_EQUAL(al.renamed, 0);
	CU_ASSERT_EQUAL(al.errors, 0);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r1), "app");
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r2), "app #2");
	CU_ASSERT_EQUAL(t_file_port(), port);
	newpid = t_hello_pid(a);
	CU_ASSERT(
	    newpid > 0 && newpid != (long)rpid && newpid != (long)getpid());
	t_list_names(a, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "app,app #2");

	/* The watch: a fresh snapshot, the ghost removed, the view right. */
	CU_ASSERT_EQUAL(wl.lost, 1);
	CU_ASSERT(t_find(&wl, 0, "lost") >= 0);
	CU_ASSERT(
	    t_find(&wl, t_find(&wl, 0, "lost"), "resync remove ghost") > 0);
	vw.view = "app,app #2";
	CU_ASSERT(t_loop_until(base, t_view_is, &vw, T_WAIT_MS));
	{
		int i, resync = 0;

		for (i = 0; i < wl.n; i++)
			resync +=
			    strncmp(wl.line[i], "resync snapshot ", 16) == 0;
		CU_ASSERT_EQUAL(resync, 1);
	}
	if (al.n > 0 && (al.renamed != 0 || al.errors != 0))
		t_dump(&al, "app");

	/* The ghost's connection died with the registry; it stays dead. */
	CU_ASSERT_EQUAL(commreg_dispatch(ghost, 100), -1);
	commreg_close(ghost);
	commreg_async_close(a);
	commreg_async_close(w);
	t_cleanup();
}

static void
test_rename_when_the_serial_was_taken(void)
{
	struct commreg_async_opts o;
	struct commreg_async *h;
	struct commreg_open_opts bo;
	struct commreg_client *other;
	struct commreg_reg *r;
	struct t_log l;
	struct t_want want = {&l, "registered svc svc"};
	char err[512], got[64], names[256];
	pid_t rpid, r2pid;
	int port, port2;

	t_home_new();
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	h = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	r = commreg_async_register(h, "svc", 7001, NULL, t_on_registered, &l);
	CU_ASSERT_FATAL(t_loop_until(base, t_has_line, &want, T_WAIT_MS));

	/*
	 * While h's loop does not run: the registry dies, a new one takes
	 * over on the same port, and someone else takes "svc" (serial 1).
	 */
	t_kill_child(rpid);
	r2pid = t_commregd_start(&port2);
	CU_ASSERT_FATAL(r2pid > 0);
	CU_ASSERT_EQUAL(port2, port);
	memset(&bo, 0, sizeof bo);
	bo.home = t_home;
	bo.no_spawn = 1;
	other = commreg_open(&bo, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(other);
	CU_ASSERT_EQUAL(commreg_register(other, "svc", 7002, NULL, got,
	                    sizeof got),
	    0);
	CU_ASSERT_STRING_EQUAL(got, "svc");

	CU_ASSERT(t_loop_until(base, t_is_regained, &l, T_WAIT_MS));
	CU_ASSERT_EQUAL(l.renamed, 1);
	CU_ASSERT(t_find(&l, 0, "renamed svc svc #2") >= 0);
	/* on_renamed comes before on_regained. */
	snprintf(names, sizeof names, "regained %d connected", port);
	CU_ASSERT(t_find(&l, 0, "renamed svc svc #2") < t_find(&l, 0, names));
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r), "svc #2");
	CU_ASSERT_EQUAL(commreg_reg_serial(r), 2);
	CU_ASSERT_EQUAL(l.regained_port, port);
	t_list_names(h, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "svc,svc #2");

	commreg_close(other);
	commreg_async_close(h);
	t_cleanup();
}

/* Another program on the port: accept and hang up (not a registry). */
static void
t_hang_up(evutil_socket_t fd, short ev, void *arg)
{
	int s;

	if ((s = accept(fd, NULL, NULL)) != -1)
		close(s);
}

static int
t_listen_on(int port)
{
	struct sockaddr_in sin;
	int s, one = 1;

	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(s, 16) == -1) {
		close(s);
		return -1;
	}
	return s;
}

static void
test_port_taken_meanwhile_elects_on_a_new_port(void)
{
	struct commreg_async_opts o;
	struct commreg_async *h;
	struct event *ev;
	struct t_log l;
	struct t_want want = {&l, "registered moved moved"};
	char err[512], names[256];
	pid_t rpid;
	int port, fd;

	t_home_new();
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0);
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	h = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	commreg_async_register(h, "moved", 7101, NULL, t_on_registered, &l);
	CU_ASSERT_FATAL(t_loop_until(base, t_has_line, &want, T_WAIT_MS));

	t_kill_child(rpid);
	fd = t_listen_on(port);
	CU_ASSERT_FATAL(fd != -1);
	ev = event_new(base, fd, EV_READ | EV_PERSIST, t_hang_up, NULL);
	event_add(ev, NULL);

	CU_ASSERT(t_loop_until(base, t_is_regained, &l, T_WAIT_MS));
	CU_ASSERT(l.regained_port > 0 && l.regained_port != port);
	CU_ASSERT_EQUAL(t_file_port(), l.regained_port);
	CU_ASSERT_EQUAL(l.renamed, 0);
	t_list_names(h, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "moved");

	event_free(ev);
	close(fd);
	commreg_async_close(h);
	t_cleanup();
}

/*
 * The registry dies while a handle is still opening: its Hello answered,
 * its registration not.  The handle was never open, so it is told neither
 * on_lost nor on_regained; it keeps trying (spawning a new commregd,
 * normally on the same port), and on_open comes once, after the failover,
 * with the name registered.  This is what one of the twenty clients of the next
 * test went through when that test killed the registry before every handle was
 * open (and then waited in vain for its on_regained).
 *
 * The first registry is the test's (test_async.h), which answers the
 * Hello and leaves the Register unanswered: the engine writes a request
 * as soon as it is made, so a real registry would answer it before any
 * kill could come between.
 */
static int
t_is_opening(void *arg)
{
	struct commreg_async *a = arg;

	/* Past the Hello: a port (restoring, or ready). */
	return commreg_async_port(a) != 0 || commreg_async_connected(a);
}

static void
test_lost_while_opening_opens_after_the_failover(void)
{
	struct commreg_async_opts o;
	struct commreg_async *h;
	struct commreg_reg *r;
	struct t_fake f;
	struct t_fake_want fw;
	struct t_log l;
	char err[512], names[256];
	long newpid;

	t_home_new();
	CU_ASSERT_FATAL(t_fake_start(&f, base) == 0);
	f.mute = "Commreg/Register";
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	h = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	r = commreg_async_register(h, "early", 7301, NULL, t_on_registered, &l);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);

	/* The Hello answered, the Register in the registry's hands. */
	fw.f = &f;
	fw.from = 0;
	fw.prefix = "Commreg/Register|early|";
	CU_ASSERT_FATAL(t_loop_until(base, t_fake_has, &fw, T_WAIT_MS));
	CU_ASSERT_FATAL(t_is_opening(h));
	CU_ASSERT_FATAL(!commreg_async_connected(h));
	CU_ASSERT_EQUAL_FATAL(l.n, 0);
	CU_ASSERT_EQUAL_FATAL(l.opened, 0);
	/* The registry goes, and its port with it. */
	t_fake_stop(&f);

	CU_ASSERT(t_loop_until(base, t_is_open, &l, T_WAIT_MS));
	CU_ASSERT_EQUAL(l.opened, 1);
	CU_ASSERT(commreg_async_connected(h));
	/*
	 * Where the port file says: the remembered port as a rule, another
	 * one when some other socket took that ephemeral port meanwhile
	 * (docs/election.md), which a loaded machine does now and then.
	 */
	CU_ASSERT(commreg_async_port(h) > 0);
	CU_ASSERT_EQUAL(commreg_async_port(h), t_file_port());
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r), "early");
	/* The registration's outcome, then on_open; nothing else. */
	CU_ASSERT_EQUAL(t_find(&l, 0, "registered early early"), 0);
	CU_ASSERT_EQUAL(t_find(&l, 0, "open 0 "), 1);
	CU_ASSERT_EQUAL(l.n, 2);
	if (l.n != 2)
		t_dump(&l, "early");
	newpid = t_hello_pid(h);
	CU_ASSERT(newpid > 0 && newpid != (long)getpid());
	t_list_names(h, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "early");
	/* Never open before: no on_lost, and no on_regained however long. */
	CU_ASSERT_FALSE(t_loop_until(base, t_is_regained, &l, 300));
	CU_ASSERT_EQUAL(l.lost, 0);
	CU_ASSERT_EQUAL(l.regained, 0);
	CU_ASSERT_EQUAL(l.renamed, 0);
	CU_ASSERT_EQUAL(l.errors, 0);

	commreg_async_close(h);
	t_cleanup();
}

/* Twenty clients lose the registry together: about one commregd is run. */
struct t_many {
	struct t_log *l;
	int n;
};

static int
t_all_regained(void *arg)
{
	struct t_many *m = arg;
	int i;

	for (i = 0; i < m->n; i++) {
		if (m->l[i].regained == 0)
			return 0;
	}
	return 1;
}

/*
 * Every handle open, its name registered.  Waiting for the last handle's
 * registration is not enough: the replies come back in no set order, and
 * a handle still opening when the registry dies gets on_open after the
 * failover, never on_regained (see the test above this one).
 */
static int
t_all_open(void *arg)
{
	struct t_many *m = arg;
	char line[64];
	int i;

	for (i = 0; i < m->n; i++) {
		snprintf(line, sizeof line, "registered m%d m%d", i, i);
		if (m->l[i].opened != 1 || t_find(&m->l[i], 0, line) < 0)
			return 0;
	}
	return 1;
}

static int
t_count_lines(const char *path)
{
	FILE *fp;
	int n = 0, ch;

	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while ((ch = getc(fp)) != EOF)
		n += ch == '\n';
	fclose(fp);
	return n;
}

static void
test_clients_that_lose_the_registry_together_spawn_one(void)
{
	static struct t_log l[20];
	struct commreg_async_opts o;
	struct commreg_async *a[20];
	struct t_many m = {l, 20};
	char wrap[512], count[512], name[16];
	char err[512];
	FILE *fp;
	pid_t rpid;
	int port, i, spawns;

	t_home_new();
	/* A commregd that notes each start. */
	snprintf(wrap, sizeof wrap, "%s/commregd.sh", t_home);
	snprintf(count, sizeof count, "%s/spawns", t_home);
	fp = fopen(wrap, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fprintf(fp, "#!/bin/sh\necho >> '%s'\nexec '%s' \"$@\"\n", count,
	    COMMREG_TEST_COMMREGD);
	fclose(fp);
	chmod(wrap, 0700);
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0);
	for (i = 0; i < 20; i++) {
		t_opts(&o, &l[i], COMMREG_MODE_SPAWN);
		o.commregd = wrap;
		a[i] = commreg_async_open(base, &o, err, sizeof err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(a[i]);
		snprintf(name, sizeof name, "m%d", i);
		commreg_async_register(a[i], name, 7200 + i, NULL,
		    t_on_registered, &l[i]);
	}
	CU_ASSERT_FATAL(t_loop_until(base, t_all_open, &m, T_WAIT_MS));

	t_kill_child(rpid);
	CU_ASSERT(t_loop_until(base, t_all_regained, &m, T_WAIT_MS));
	if (!t_all_regained(&m)) {
		for (i = 0; i < 20; i++) {
			if (l[i].regained == 0) {
				snprintf(name, sizeof name, "m%d", i);
				t_dump(&l[i], name);
			}
		}
	}
	spawns = t_count_lines(count);
	CU_ASSERT(spawns >= 1 && spawns <= 2);
	if (spawns > 2)
		fprintf(stderr, "\n    %d commregd started ", spawns);
	for (i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL(l[i].lost, 1);
		CU_ASSERT_EQUAL(l[i].regained, 1);
		CU_ASSERT_EQUAL(l[i].regained_port, port);
		CU_ASSERT_EQUAL(l[i].renamed, 0);
		commreg_async_close(a[i]);
	}
	t_cleanup();
}

/* ---- in-process mode ----------------------------------------------------- */

static int
t_capp_registered(void *arg)
{
	return t_file_has_line("a.out", "registered ipA ipA");
}

static void
test_inprocess_registry_moves_to_the_survivor(void)
{
	struct commreg_async_opts o;
	struct commreg_async *b;
	struct commreg_reg *r1, *r2;
	struct t_log l;
	struct t_want want = {&l, "registered ipB ipB"};
	struct t_viewwant vw = {&l, NULL};
	char *args[] = {"--inprocess", "ip", "ipA", NULL};
	char names[256];
	pid_t apid;
	int port;

	t_home_new();
	apid = t_capp_start("a.out", args);
	CU_ASSERT_FATAL(apid > 0);
	CU_ASSERT_FATAL(t_loop_until(base, t_capp_registered, NULL, T_WAIT_MS));
	port = t_file_port();
	CU_ASSERT_EQUAL(t_registry_pid(NULL), (long)apid);

	t_opts(&o, &l, COMMREG_MODE_INPROCESS);
	b = commreg_async_open(base, &o, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	r1 = commreg_async_register(b, "ip", 8001, NULL, t_on_registered, &l);
	r2 = commreg_async_register(b, "ipB", 8001, NULL, t_on_registered, &l);
	commreg_async_watch(b, "ip*", t_on_watch, &l);
	vw.view = "ip,ip #2,ipA,ipB";
	CU_ASSERT_FATAL(t_loop_until(base, t_view_is, &vw, T_WAIT_MS));
	CU_ASSERT(t_find(&l, 0, want.line) >= 0);
	CU_ASSERT_FALSE(commreg_async_hosting(b));
	CU_ASSERT_EQUAL(commreg_async_port(b), port);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r1), "ip #2");

	t_kill_child(apid);
	CU_ASSERT(t_loop_until(base, t_is_regained, &l, T_WAIT_MS));
	CU_ASSERT_EQUAL(l.lost, 1);
	CU_ASSERT_EQUAL(l.hosted, 1);
	CU_ASSERT_EQUAL(l.regained_port, port);
	CU_ASSERT(commreg_async_hosting(b));
	CU_ASSERT_EQUAL(t_file_port(), port);
	CU_ASSERT_EQUAL(t_hello_pid(b), (long)getpid());
	CU_ASSERT_EQUAL(l.renamed, 0);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r1), "ip #2");
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(r2), "ipB");
	t_list_names(b, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "ip #2,ipB");
	/* The watch: a fresh snapshot, and A's names removed. */
	CU_ASSERT(t_find(&l, 0, "resync snapshot 2") >= 0);
	CU_ASSERT(t_find(&l, 0, "resync remove ip") >= 0);
	CU_ASSERT(t_find(&l, 0, "resync remove ipA") >= 0);
	vw.view = "ip #2,ipB";
	CU_ASSERT(t_loop_until(base, t_view_is, &vw, T_WAIT_MS));

	commreg_async_close(b);
	t_cleanup();
}

static void
test_inprocess_host_that_closes_hands_over(void)
{
	struct commreg_async_opts o1, o2;
	struct commreg_async *h1, *h2;
	struct t_log l1, l2;
	struct t_want want = {&l2, "registered two two"};
	char names[256];
	int port;

	t_home_new();
	t_opts(&o1, &l1, COMMREG_MODE_INPROCESS);
	h1 = commreg_async_open(base, &o1, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h1);
	commreg_async_register(h1, "one", 9001, NULL, t_on_registered, &l1);
	CU_ASSERT_FATAL(t_loop_until(base, t_is_open, &l1, T_WAIT_MS));
	CU_ASSERT(commreg_async_hosting(h1));
	port = commreg_async_port(h1);
	CU_ASSERT_EQUAL(t_file_port(), port);

	t_opts(&o2, &l2, COMMREG_MODE_INPROCESS);
	h2 = commreg_async_open(base, &o2, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h2);
	commreg_async_register(h2, "two", 9002, NULL, t_on_registered, &l2);
	CU_ASSERT_FATAL(t_loop_until(base, t_has_line, &want, T_WAIT_MS));
	CU_ASSERT_FALSE(commreg_async_hosting(h2));
	t_list_names(h2, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "one,two");

	commreg_async_close(h1);
	CU_ASSERT(t_loop_until(base, t_is_regained, &l2, T_WAIT_MS));
	CU_ASSERT_EQUAL(l2.hosted, 1);
	CU_ASSERT_EQUAL(l2.regained_port, port);
	CU_ASSERT(commreg_async_hosting(h2));
	t_list_names(h2, names, sizeof names);
	CU_ASSERT_STRING_EQUAL(names, "two");
	commreg_async_close(h2);
	/* Nobody holds the registry now; the port file remembers it. */
	CU_ASSERT_EQUAL(t_registry_pid(NULL), -1);
	CU_ASSERT_EQUAL(t_file_port(), port);
	t_cleanup();
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	signal(SIGPIPE, SIG_IGN);
	if (getenv("COMMREG_TEST_DEBUG") != NULL)
		commreg_set_log_level(2);
	if ((base = event_base_new()) == NULL)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("async failover", NULL, NULL);
	CU_add_test(s, "spawn: failover keeps every name",
	    test_spawn_failover_keeps_every_name);
	CU_add_test(s, "rename when the serial was taken",
	    test_rename_when_the_serial_was_taken);
	CU_add_test(s, "port taken meanwhile: elect on a new port",
	    test_port_taken_meanwhile_elects_on_a_new_port);
	CU_add_test(s, "lost while opening: on_open after the failover",
	    test_lost_while_opening_opens_after_the_failover);
	CU_add_test(s, "clients that lose the registry together spawn one",
	    test_clients_that_lose_the_registry_together_spawn_one);
	CU_add_test(s, "in-process: the registry moves to the survivor",
	    test_inprocess_registry_moves_to_the_survivor);
	CU_add_test(s, "in-process: a host that closes hands over",
	    test_inprocess_host_that_closes_hands_over);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	event_base_free(base);
	return failed == 0 ? 0 : 1;
}
