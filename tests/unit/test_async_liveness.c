/*
 * A registry that hangs (SIGSTOP: its sockets stay open, it answers
 * nothing), and what the library says, with the real commregd:
 *
 *  - the asynchronous interface pings a silent registry and, after its
 *    liveness, reports it lost through on_lost, then regains it as any
 *    lost registry once it runs again; with the check off it waits;
 *  - the blocking interface times a call to it out, with a reason;
 *  - the library's lines go to the application's log handler, and
 *    nowhere (not stderr) without one.
 *
 * Every process started is killed by its PID (a stopped one is
 * continued first); every wait is bounded in time.
 */
#include "test_async.h" /* first: it sets _GNU_SOURCE */

static struct event_base *base;

/* Lines the library logged through the handler. */
struct t_lines {
	char line[64][400];
	int level[64];
	int n;
};

static void
t_log_line(int level, const char *line, void *arg)
{
	struct t_lines *r = arg;

	if (getenv("COMMREG_TEST_VERBOSE") != NULL)
		fprintf(stdout, "[log %d] %s\n", level, line);
	if (r->n >= 64)
		return;
	snprintf(r->line[r->n], sizeof r->line[0], "%s", line);
	r->level[r->n] = level;
	r->n++;
}

/* The first line logged at level containing s, or -1. */
static int
t_lines_find(const struct t_lines *r, int level, const char *s)
{
	int i;

	for (i = 0; i < r->n; i++) {
		if (r->level[i] == level && strstr(r->line[i], s) != NULL)
			return i;
	}
	return -1;
}

/* stderr into a pipe, to see what the library writes there.  The write
 * end does not block: a library writing much would fail its writes, not
 * hang the test. */
struct t_stderr {
	int saved;
	int rfd;
};

static int
t_stderr_capture(struct t_stderr *c)
{
	int p[2];

	fflush(stderr);
	if (pipe(p) == -1)
		return -1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	c->saved = dup(2);
	dup2(p[1], 2);
	close(p[1]);
	c->rfd = p[0];
	return 0;
}

/* Bytes written to stderr since the capture began (into buf). */
static size_t
t_stderr_read(struct t_stderr *c, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	fflush(stderr);
	while (n + 1 < len && (r = read(c->rfd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return n;
}

static void
t_stderr_restore(struct t_stderr *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	close(c->rfd);
}

/* on_lost with the reason kept.  l first: the other callbacks of
 * test_async.h take the same arg as their struct t_log. */
struct t_lost {
	struct t_log l;
	char why[512];
	long long at;
	struct commreg_reg *reg;
};

static void
t_on_lost_why(struct commreg_async *a, const char *why, void *arg)
{
	struct t_lost *t = arg;

	t->at = t_now_ms();
	snprintf(t->why, sizeof t->why, "%s", why);
	t_on_lost(a, why, &t->l);
}

static int
t_lost_seen(void *arg)
{
	return ((struct t_lost *)arg)->l.lost > 0;
}

static int
t_lost_regained(void *arg)
{
	return ((struct t_lost *)arg)->l.regained > 0;
}

static int
t_lost_open(void *arg)
{
	return ((struct t_lost *)arg)->l.opened != 0;
}

/* A handle of t_home's registry with the given liveness, open, holding
 * the name "live". */
static struct commreg_async *
t_open_live(struct t_lost *t, int liveness_ms)
{
	struct commreg_async_opts o;
	struct commreg_async *a;
	char err[512];

	memset(t, 0, sizeof *t);
	t_opts(&o, &t->l, COMMREG_MODE_SPAWN);
	o.arg = t;
	o.on_lost = t_on_lost_why;
	o.liveness_ms = liveness_ms;
	if ((a = commreg_async_open(base, &o, err, sizeof err)) == NULL) {
		printf("open: %s\n", err);
		return NULL;
	}
	t->reg = commreg_async_register(a, "live", 4711, NULL, t_on_registered,
	    &t->l);
	if (t->reg == NULL || !t_loop_until(base, t_lost_open, t, T_WAIT_MS) ||
	    t->l.opened != 1) {
		commreg_async_close(a);
		return NULL;
	}
	return a;
}

/*
 * SIGSTOP the registry: the handle, asking nothing, pings it after a
 * third of its liveness and reports it lost once all of it has passed
 * with no answer; the engine's line goes to the log handler, not to
 * stderr.  Continued, the registry is regained as any lost one.
 */
static void
test_stopped_registry_is_lost_within_the_liveness(void)
{
	struct commreg_async *a;
	struct t_lost t;
	struct t_lines lines;
	struct t_stderr cap;
	char errbuf[4096];
	long long t0, took;
	pid_t rpid;
	int port;

	t_home_new();
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0 && port > 0);
	memset(&lines, 0, sizeof lines);
	commreg_set_log_handler(t_log_line, &lines);
	CU_ASSERT_FATAL(t_stderr_capture(&cap) == 0);
	a = t_open_live(&t, 1500);
	CU_ASSERT_PTR_NOT_NULL(a);
	if (a == NULL)
		goto out;
	CU_ASSERT_EQUAL(commreg_async_port(a), port);

	kill(rpid, SIGSTOP);
	t0 = t_now_ms();
	CU_ASSERT(t_loop_until(base, t_lost_seen, &t, 8000));
	took = (t.l.lost > 0 ? t.at : t_now_ms()) - t0;
	printf("(lost %lld ms after SIGSTOP) ", took);
	CU_ASSERT_EQUAL(t.l.lost, 1);
	CU_ASSERT(took < 8000);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.why, "liveness ping"));
	CU_ASSERT(
	    t_lines_find(&lines, COMMREG_LOG_WARNING, "liveness ping") >= 0);
	CU_ASSERT_EQUAL(t_stderr_read(&cap, errbuf, sizeof errbuf), 0);

	/* Running again: found again, the name made again. */
	kill(rpid, SIGCONT);
	CU_ASSERT(t_loop_until(base, t_lost_regained, &t, 3 * T_WAIT_MS));
	CU_ASSERT_EQUAL(t.l.regained_port, port);
	CU_ASSERT_STRING_EQUAL(commreg_reg_name(t.reg), "live");
	commreg_async_close(a);
out:
	t_stderr_restore(&cap);
	commreg_set_log_handler(NULL, NULL);
	kill(rpid, SIGCONT);
	t_cleanup();
}

/* With the check off, a stopped registry is waited for: no on_lost in
 * longer than the liveness above would take. */
static void
test_liveness_off_waits(void)
{
	struct commreg_async *a;
	struct t_lost t;
	pid_t rpid;
	int port;

	t_home_new();
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0 && port > 0);
	a = t_open_live(&t, -1);
	CU_ASSERT_PTR_NOT_NULL(a);
	if (a != NULL) {
		kill(rpid, SIGSTOP);
		CU_ASSERT_FALSE(t_loop_until(base, t_lost_seen, &t, 2500));
		CU_ASSERT_EQUAL(t.l.lost, 0);
		CU_ASSERT(commreg_async_connected(a));
		commreg_async_close(a);
	}
	kill(rpid, SIGCONT);
	t_cleanup();
}

/* The blocking interface: a call to a stopped registry ends at its
 * reply timeout, with a reason, and the client is dead. */
static void
test_blocking_call_to_a_stopped_registry_times_out(void)
{
	struct commreg_open_opts o;
	struct commreg_client *c;
	char err[512], id[64], got[64];
	long long t0, took;
	pid_t rpid;
	int port;

	t_home_new();
	rpid = t_commregd_start(&port);
	CU_ASSERT_FATAL(rpid > 0 && port > 0);
	memset(&o, 0, sizeof o);
	o.home = t_home;
	o.no_spawn = 1;
	o.reply_timeout_ms = 700;
	c = commreg_open(&o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(c);
	if (c != NULL) {
		CU_ASSERT_EQUAL(commreg_register(c, "blk", 4242, NULL, got,
		                    sizeof got),
		    0);
		CU_ASSERT(commreg_fd(c) >= 0);
		kill(rpid, SIGSTOP);
		t0 = t_now_ms();
		CU_ASSERT_EQUAL(commreg_lookup_id(c, "blk", id, sizeof id), -1);
		took = t_now_ms() - t0;
		CU_ASSERT(took >= 650 && took < 5000);
		CU_ASSERT_STRING_EQUAL(commreg_error(c),
		    "no reply from the registry within 700 ms");
		/* Dead for good, at once. */
		t0 = t_now_ms();
		CU_ASSERT_EQUAL(commreg_lookup_id(c, "blk", id, sizeof id), -1);
		CU_ASSERT(t_now_ms() - t0 < 100);
		CU_ASSERT_EQUAL(commreg_fd(c), -1);
		commreg_close(c);
	}
	kill(rpid, SIGCONT);
	t_cleanup();
}

/*
 * Without a handler the library writes nothing on stderr, warnings
 * included (here: a TCL_COMM_REGPORT that is not a port); with one,
 * every line goes to it, at the level commreg_set_log_level chose.
 * Last: commreg_set_log_level marks logging as asked for, for the rest
 * of this program.
 */
static void
test_log_handler_gets_the_lines(void)
{
	struct commreg_async_opts o;
	struct commreg_open_opts bo;
	struct commreg_async *a;
	struct commreg_client *c;
	struct t_lines lines;
	struct t_stderr cap;
	struct t_log l;
	char err[512], errbuf[4096];

	t_home_new();
	memset(&lines, 0, sizeof lines);
	memset(&bo, 0, sizeof bo);
	bo.home = t_home;
	bo.no_spawn = 1;
	setenv("TCL_COMM_REGPORT", "abc", 1);
	CU_ASSERT_FATAL(t_stderr_capture(&cap) == 0);

	/* No handler: nothing, from either interface. */
	t_opts(&o, &l, COMMREG_MODE_SPAWN);
	o.commregd = "/bin/false";
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(a);
	t_loop_for(base, 50);
	commreg_async_close(a);
	c = commreg_open(&bo, err, sizeof err);
	CU_ASSERT_PTR_NULL(c); /* no registry, and none started */
	commreg_close(c);
	CU_ASSERT_EQUAL(t_stderr_read(&cap, errbuf, sizeof errbuf), 0);
	if (errbuf[0] != '\0')
		printf("stderr: %s\n", errbuf);

	/* A handler: the warning, at its level; still nothing on stderr. */
	commreg_set_log_handler(t_log_line, &lines);
	a = commreg_async_open(base, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(a);
	commreg_async_close(a);
	CU_ASSERT(t_lines_find(&lines, COMMREG_LOG_WARNING,
	              "TCL_COMM_REGPORT=\"abc\" is not a port number") >= 0);
	CU_ASSERT_EQUAL(t_lines_find(&lines, COMMREG_LOG_DEBUG, ""), -1);

	/* Debug lines once asked for, to the handler only. */
	commreg_set_log_level(COMMREG_LOG_DEBUG);
	c = commreg_open(&bo, err, sizeof err);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT(t_lines_find(&lines, COMMREG_LOG_DEBUG, "no registry") >= 0);
	CU_ASSERT_EQUAL(t_stderr_read(&cap, errbuf, sizeof errbuf), 0);

	commreg_set_log_level(COMMREG_LOG_WARNING);
	commreg_set_log_handler(NULL, NULL);
	t_stderr_restore(&cap);
	unsetenv("TCL_COMM_REGPORT");
	t_cleanup();
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	signal(SIGPIPE, SIG_IGN);
	unsetenv("TCL_COMM_REGPORT");
	if ((base = event_base_new()) == NULL)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("async liveness", NULL, NULL);
	CU_add_test(s, "a stopped registry is lost within the liveness",
	    test_stopped_registry_is_lost_within_the_liveness);
	CU_add_test(s, "liveness off: a stopped registry is waited for",
	    test_liveness_off_waits);
	CU_add_test(s, "blocking: a call to a stopped registry times out",
	    test_blocking_call_to_a_stopped_registry_times_out);
	CU_add_test(s, "the log handler gets the lines, stderr none",
	    test_log_handler_gets_the_lines);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	event_base_free(base);
	return failed == 0 ? 0 : 1;
}
