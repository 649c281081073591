/*
 * Helpers of the asynchronous client tests (test_async*.c): throwaway
 * HOMEs, the real commregd and capp (paths from the build,
 * tests/CMakeLists.txt), an event loop run until a condition holds or a
 * deadline passes, and a record of every callback the library made.
 *
 * Every process a test starts is noted and killed by its PID at the end
 * of the test; registries the library spawned (detached, so not our
 * children) are found through the port file and Commreg/Hello and killed
 * by PID too.  Every wait is bounded.
 */
#ifndef TEST_ASYNC_H
#define TEST_ASYNC_H

#define _GNU_SOURCE /* nftw */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "client.h"
#include "commwire.h"
#include "election.h"
#include "log.h"
#include "tbuf.h"
#include "tcllist.h"

#ifndef COMMREG_TEST_COMMREGD
#error "tests/CMakeLists.txt defines COMMREG_TEST_COMMREGD"
#endif
#ifndef COMMREG_TEST_CAPP
#error "tests/CMakeLists.txt defines COMMREG_TEST_CAPP"
#endif

/* Each test program uses some of the helpers below. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define T_MAX_PIDS  32
#define T_MAX_LINES 600
#define T_WAIT_MS   10000

static char t_home[256];
static pid_t t_pids[T_MAX_PIDS];
static int t_npids;

static long long
t_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void
t_sleep_ms(int ms)
{
	struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&t, &t) == -1 && errno == EINTR)
		;
}

/* ---- what the library told us --------------------------------------- */

/* One line per callback, as capp prints them, for asserts and for
 * reading a failure. */
struct t_log {
	char line[T_MAX_LINES][200];
	int n;
	int opened; /* on_open: 1 ok, -1 failed */
	int lost;
	int regained;
	int regained_port;
	int hosted;
	int renamed;
	int errors;
};

static void t_say(struct t_log *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
t_say(struct t_log *l, const char *fmt, ...)
{
	va_list ap;

	if (l->n >= T_MAX_LINES)
		return;
	va_start(ap, fmt);
	vsnprintf(l->line[l->n], sizeof l->line[l->n], fmt, ap);
	va_end(ap);
	if (getenv("COMMREG_TEST_VERBOSE") != NULL)
		fprintf(stderr, "[%p] %s\n", (void *)l, l->line[l->n]);
	l->n++;
}

/* Index of the first line from `from` on equal to s, or -1. */
static int
t_find(const struct t_log *l, int from, const char *s)
{
	int i;

	for (i = from; i < l->n; i++) {
		if (strcmp(l->line[i], s) == 0)
			return i;
	}
	return -1;
}

static void
t_dump(const struct t_log *l, const char *what)
{
	int i;

	fprintf(stderr, "\n    %s:\n", what);
	for (i = 0; i < l->n; i++)
		fprintf(stderr, "      %s\n", l->line[i]);
}

static void
t_on_open(struct commreg_async *a, int status, const char *msg, void *arg)
{
	struct t_log *l = arg;

	l->opened = status == 0 ? 1 : -1;
	t_say(l, "open %d %s", status, msg != NULL ? msg : "");
}

static void
t_on_lost(struct commreg_async *a, const char *why, void *arg)
{
	struct t_log *l = arg;

	l->lost++;
	t_say(l, "lost");
}

static void
t_on_regained(struct commreg_async *a, int port, int hosted, void *arg)
{
	struct t_log *l = arg;

	l->regained++;
	l->regained_port = port;
	l->hosted = hosted;
	t_say(l, "regained %d %s", port, hosted ? "hosted" : "connected");
}

static void
t_on_renamed(struct commreg_async *a, struct commreg_reg *r,
    const char *oldname, const char *newname, void *arg)
{
	struct t_log *l = arg;

	l->renamed++;
	t_say(l, "renamed %s %s", oldname, newname);
}

static void
t_on_error(struct commreg_async *a, const char *msg, void *arg)
{
	struct t_log *l = arg;

	l->errors++;
	t_say(l, "error %s", msg);
}

static void
t_on_registered(struct commreg_async *a, struct commreg_reg *r, int status,
    const char *msg, void *arg)
{
	struct t_log *l = arg;

	if (status == 0)
		t_say(l, "registered %s %s", commreg_reg_base(r), msg);
	else
		t_say(l, "refused %s %d %s", commreg_reg_base(r), status, msg);
}

/* Watch lines: "snapshot N", "add NAME", "remove NAME"; resync ones
 * marked "resync snapshot N" and so on. */
static void
t_on_watch(struct commreg_async *a, struct commreg_watch *w,
    const struct commreg_watch_event *ev, void *arg)
{
	struct t_log *l = arg;
	const char *rs = ev->resync ? "resync " : "";
	size_t i;

	switch (ev->what) {
	case COMMREG_WATCH_SNAPSHOT:
		t_say(l, "%ssnapshot %zu", rs, ev->n);
		/* As capp: the first one as adds, so the lines are a view. */
		for (i = 0; !ev->resync && i < ev->n; i++)
			t_say(l, "add %s", ev->entries[i].name);
		break;
	case COMMREG_WATCH_ADD:
		t_say(l, "%sadd %s", rs, ev->entry->name);
		break;
	case COMMREG_WATCH_REMOVE:
		t_say(l, "%sremove %s", rs, ev->entry->name);
		break;
	case COMMREG_WATCH_ERROR:
		t_say(l, "watch error %s", ev->message);
		break;
	}
}

static int
t_cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/*
 * The watch's view as its lines tell: every add and remove, resync ones
 * included, applied in order; the names sorted and joined with ",".
 */
static void
t_view(const struct t_log *l, char *out, size_t len)
{
	const char *names[T_MAX_LINES];
	const char *s;
	int n = 0, i, j, k;

	for (i = 0; i < l->n; i++) {
		s = l->line[i];
		if (strncmp(s, "resync ", 7) == 0)
			s += 7;
		if (strncmp(s, "add ", 4) == 0) {
			for (j = 0; j < n && strcmp(names[j], s + 4) != 0; j++)
				;
			if (j == n && n < T_MAX_LINES)
				names[n++] = s + 4;
		} else if (strncmp(s, "remove ", 7) == 0) {
			for (j = 0; j < n; j++) {
				if (strcmp(names[j], s + 7) == 0) {
					for (k = j; k < n - 1; k++)
						names[k] = names[k + 1];
					n--;
					break;
				}
			}
		}
	}
	qsort(names, (size_t)n, sizeof names[0], t_cmp_str);
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strncat(out, ",", len - strlen(out) - 1);
		strncat(out, names[i], len - strlen(out) - 1);
	}
}

static void
t_opts(struct commreg_async_opts *o, struct t_log *l, enum commreg_mode mode)
{
	memset(o, 0, sizeof *o);
	memset(l, 0, sizeof *l);
	o->home = t_home;
	o->commregd = COMMREG_TEST_COMMREGD;
	o->mode = mode;
	o->on_open = t_on_open;
	o->on_lost = t_on_lost;
	o->on_regained = t_on_regained;
	o->on_renamed = t_on_renamed;
	o->on_error = t_on_error;
	o->arg = l;
}

/* ---- the loop ---------------------------------------------------------- */

static void
t_tick(evutil_socket_t fd, short ev, void *arg)
{
}

/*
 * Run base until cond(arg) holds or ms pass.  A 5 ms ticker makes sure
 * the condition is looked at even when nothing happens.
 */
static int
t_loop_until(struct event_base *base, int (*cond)(void *), void *arg, int ms)
{
	struct event *tick;
	struct timeval tv = {0, 5000};
	long long end = t_now_ms() + ms;
	int ok;

	tick = event_new(base, -1, EV_PERSIST, t_tick, NULL);
	event_add(tick, &tv);
	while (!(ok = cond(arg)) && t_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	return ok;
}

static int
t_true(void *arg)
{
	return 0;
}

/* Let the loop run for ms, whatever happens. */
static void
t_loop_for(struct event_base *base, int ms)
{
	t_loop_until(base, t_true, NULL, ms);
}

static int
t_is_open(void *arg)
{
	return ((struct t_log *)arg)->opened != 0;
}

static int
t_is_regained(void *arg)
{
	return ((struct t_log *)arg)->regained > 0;
}

/* ---- HOMEs and processes ------------------------------------------------- */

static int
t_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
t_home_new(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t_home, sizeof t_home, "%s/commreg-async.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(t_home) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	chmod(t_home, 0700);
}

static void
t_note_pid(pid_t pid)
{
	if (t_npids < T_MAX_PIDS)
		t_pids[t_npids++] = pid;
}

static int
t_alive(pid_t pid)
{
	return kill(pid, 0) == 0;
}

/* Kill one of our children and reap it (bounded: SIGKILL is final). */
static void
t_kill_child(pid_t pid)
{
	int i;

	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	for (i = 0; i < t_npids; i++) {
		if (t_pids[i] == pid)
			t_pids[i] = 0;
	}
}

/* The pid of the registry answering through the port file, or -1. */
static long
t_registry_pid(int *port)
{
	struct commreg_open_opts o;
	struct commreg_client *c;
	char err[512];
	long pid;

	memset(&o, 0, sizeof o);
	o.home = t_home;
	o.no_spawn = 1;
	o.connect_timeout_ms = 500;
	o.reply_timeout_ms = 1000;
	if ((c = commreg_open(&o, err, sizeof err)) == NULL)
		return -1;
	pid = commreg_hello_info(c)->pid;
	if (port != NULL)
		*port = commreg_hello_info(c)->port;
	commreg_close(c);
	return pid;
}

/* The port the port file names, or -1. */
static int
t_file_port(void)
{
	char host[256], path[1024], buf[32];
	ssize_t n;
	int fd;

	if (election_hostname(host, sizeof host) == -1)
		return -1;
	snprintf(path, sizeof path, "%s/.tcl/comm/registry/%s", t_home, host);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 1 || buf[n - 1] != '\n')
		return -1;
	buf[n] = '\0';
	return atoi(buf);
}

/* Start commregd in the foreground for t_home; its port from stdout.
 * Without a standby: these tests are of the election, which is what
 * the clients fall back to when no standby lives (docs/election.md). */
static pid_t
t_commregd_start(int *port)
{
	struct pollfd pfd;
	char buf[32], *home_arg;
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int p[2], devnull;

	if (pipe(p) == -1)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		devnull = open("/dev/null", O_RDWR);
		dup2(p[1], 1);
		if (getenv("COMMREG_TEST_VERBOSE") == NULL)
			dup2(devnull, 2);
		close(p[0]);
		home_arg = t_home;
		execl(COMMREG_TEST_COMMREGD, "commregd", "--home", home_arg,
		    "--no-standby", (char *)NULL);
		_exit(127);
	}
	t_note_pid(pid);
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	*port = -1;
	while (len < sizeof buf - 1 && poll(&pfd, 1, 5000) == 1) {
		if ((n = read(p[0], buf + len, sizeof buf - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		if (buf[len - 1] == '\n') {
			buf[len] = '\0';
			*port = atoi(buf);
			break;
		}
	}
	close(p[0]);
	return pid;
}

/* Start capp (our child) with args, its stdout to a file in t_home. */
static pid_t
t_capp_start(const char *out, char *const args[])
{
	char *argv[16];
	char path[512];
	pid_t pid;
	int i, n = 0, fd;

	snprintf(path, sizeof path, "%s/%s", t_home, out);
	argv[n++] = (char *)"capp";
	argv[n++] = (char *)"--home";
	argv[n++] = t_home;
	argv[n++] = (char *)"--commregd";
	argv[n++] = (char *)COMMREG_TEST_COMMREGD;
	for (i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execv(COMMREG_TEST_CAPP, argv);
		_exit(127);
	}
	t_note_pid(pid);
	return pid;
}

/* Does the file `out` in t_home hold a line equal to s? */
static int
t_file_has_line(const char *out, const char *s)
{
	char path[512], line[512];
	FILE *fp;
	int found = 0;

	snprintf(path, sizeof path, "%s/%s", t_home, out);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof line, fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		found = strcmp(line, s) == 0;
	}
	fclose(fp);
	return found;
}

/*
 * End of a test: our children by PID, then whatever registry still
 * answers for t_home (spawned detached by the library) by the PID its
 * hello gives, then the HOME.
 */
/*
 * SIGKILL every standby of a registry for t_home: a commregd whose
 * command line names t_home (the library passes --home) and has
 * --standby-fds=.  Found through /proc; our own children or not.
 */
/* Does process pid (a /proc name) have HOME=t_home? */
static int
t_env_home_is(const char *pid)
{
	char path[300], env[65536], want[1100];
	size_t i, n;
	ssize_t r;
	int fd;

	snprintf(path, sizeof path, "/proc/%s/environ", pid);
	snprintf(want, sizeof want, "HOME=%s", t_home);
	if ((fd = open(path, O_RDONLY)) == -1)
		return 0;
	r = read(fd, env, sizeof env - 1);
	close(fd);
	if (r <= 0)
		return 0;
	n = (size_t)r;
	env[n] = '\0';
	for (i = 0; i < n; i += strlen(env + i) + 1)
		if (strcmp(env + i, want) == 0)
			return 1;
	return 0;
}

static void
t_kill_standbys(void)
{
	char path[300], cmd[4096];
	struct dirent *de;
	size_t i, n;
	ssize_t r;
	int fd, standby, ours;
	DIR *d;

	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		r = read(fd, cmd, sizeof cmd - 1);
		close(fd);
		if (r <= 0)
			continue;
		n = (size_t)r;
		cmd[n] = '\0';
		standby = ours = 0;
		for (i = 0; i < n; i += strlen(cmd + i) + 1) {
			standby |= strncmp(cmd + i, "--standby-fds=", 14) == 0;
			ours |= strcmp(cmd + i, t_home) == 0;
		}
		if (standby && !ours)
			ours = t_env_home_is(de->d_name);
		if (standby && ours)
			kill((pid_t)atol(de->d_name), SIGKILL);
	}
	closedir(d);
}

static void
t_cleanup(void)
{
	long pid;
	int i, tries;

	for (i = 0; i < t_npids; i++) {
		if (t_pids[i] > 0)
			t_kill_child(t_pids[i]);
	}
	t_npids = 0;
	/* Standbys first, each time (docs/election.md): a registry
	 * killed before its standby would only hand over to it. */
	for (tries = 0;
	     tries < 10 && (t_kill_standbys(), pid = t_registry_pid(NULL)) > 0;
	     tries++) {
		if (pid == (long)getpid())
			break; /* hosted here: gone with its handle */
		kill((pid_t)pid, SIGKILL);
		for (i = 0; i < 200 && t_alive((pid_t)pid); i++)
			t_sleep_ms(5);
	}
	nftw(t_home, t_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a registry played by the test ------------------------------------ */

/*
 * A registry the test plays, on the test's loop, for what commregd does
 * not do: it answers Commreg/Hello as a registry, Commreg/Register with
 * the name asked for and anything else with "" (but for the command
 * named `mute`, which it only records), records every command, and sends
 * what the test tells it to.  One connection at a time; found through
 * the port file in t_home.
 */
struct t_fake {
	struct event_base *base;
	const char *mute; /* a command recorded, never answered */
	evutil_socket_t lfd;
	int port;
	int pfd; /* the port file, locked while the fake lives */
	struct event *ev_accept;
	int fd;
	struct event *ev_read;
	struct tbuf in;
	struct comm_framer framer;
	int greeted; /* the client's offer line read */
	struct tlist msg, frags, words;
	struct tbuf scratch, why;
	int conns;
	int64_t serial;
	char got[64][300]; /* commands received, words joined by "|" */
	int ngot;
};

static void
t_fake_write(struct t_fake *f, const struct tbuf *b)
{
	size_t off = 0;
	ssize_t n;

	while (f->fd != -1 && off < b->len) {
		n = send(f->fd, b->p + off, b->len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

static void
t_fake_drop(struct t_fake *f)
{
	if (f->ev_read != NULL)
		event_free(f->ev_read);
	f->ev_read = NULL;
	if (f->fd != -1)
		close(f->fd);
	f->fd = -1;
	tbuf_reset(&f->in);
	f->greeted = 0;
}

static void
t_fake_message(struct t_fake *f)
{
	const struct tl_elem *kind;
	struct tbuf out, res;
	char line[300];
	long long serial;
	size_t i;

	if (f->msg.n != 3)
		return;
	kind = &f->msg.v[0];
	if (strcmp(kind->p, "send") != 0 && strcmp(kind->p, "command") != 0 &&
	    strcmp(kind->p, "async") != 0)
		return;
	serial = atoll(f->msg.v[1].p);
	if (comm_payload_command(f->msg.v[2].p, f->msg.v[2].len, &f->frags,
	        &f->scratch, &f->words, &f->why) == -1 ||
	    f->words.n == 0)
		return;
	line[0] = '\0';
	for (i = 0; i < f->words.n; i++) {
		if (i > 0)
			strncat(line, "|", sizeof line - strlen(line) - 1);
		strncat(line, f->words.v[i].p, sizeof line - strlen(line) - 1);
	}
	if (f->ngot < 64)
		snprintf(f->got[f->ngot++], sizeof f->got[0], "%s", line);
	if (getenv("COMMREG_TEST_VERBOSE") != NULL)
		fprintf(stderr, "[fake] %s\n", line);
	if (strcmp(kind->p, "async") == 0 ||
	    (f->mute != NULL && strcmp(f->words.v[0].p, f->mute) == 0))
		return;
	tbuf_init(&res);
	if (strcmp(f->words.v[0].p, "Commreg/Hello") == 0)
		tbuf_printf(&res,
		    "registry commreg version 0.0.0 protocol 1 owner test "
		    "uid %ld host testhost pid %ld port %d scope user",
		    (long)getuid(), (long)getpid(), f->port);
	else if (strcmp(f->words.v[0].p, "Commreg/Register") == 0 &&
	         f->words.n > 1)
		tbuf_add(&res, f->words.v[1].p, f->words.v[1].len);
	tbuf_init(&out);
	comm_format_reply(&out,
	    strcmp(kind->p, "command") == 0 ? "callback" : "reply", serial, 0,
	    res.p != NULL ? res.p : "", res.len, NULL);
	t_fake_write(f, &out);
	tbuf_free(&out);
	tbuf_free(&res);
}

static void
t_fake_read(evutil_socket_t fd, short ev, void *arg)
{
	struct t_fake *f = arg;
	enum comm_frame_status st;
	struct tbuf vers;
	const char *why;
	char buf[4096];
	size_t used;
	ssize_t n;

	n = recv(f->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		t_fake_drop(f);
		return;
	}
	tbuf_add(&f->in, buf, (size_t)n);
	while (f->fd != -1 && f->in.len > 0) {
		if (!f->greeted)
			st = comm_frame_line(&f->framer, f->in.p, f->in.len,
			    &used, &f->msg, &why);
		else
			st = comm_frame_next(&f->framer, f->in.p, f->in.len,
			    &used, &f->msg, &why);
		if (st != COMM_FRAME_OK) {
			if (st == COMM_FRAME_ERROR)
				t_fake_drop(f);
			return;
		}
		tbuf_consume(&f->in, used);
		if (!f->greeted) {
			/* As commregd: {vers 3} once the offer is in. */
			f->greeted = 1;
			comm_framer_init(&f->framer, COMM_DEFAULT_MAX_MESSAGE);
			tbuf_init(&vers);
			comm_format_vers(&vers, 3);
			t_fake_write(f, &vers);
			tbuf_free(&vers);
		} else
			t_fake_message(f);
	}
}

static void
t_fake_accept(evutil_socket_t lfd, short ev, void *arg)
{
	struct t_fake *f = arg;
	int s;

	if ((s = accept(lfd, NULL, NULL)) == -1)
		return;
	t_fake_drop(f);
	f->fd = s;
	f->conns++;
	comm_framer_init(&f->framer, COMM_DEFAULT_MAX_MESSAGE);
	f->ev_read =
	    event_new(f->base, s, EV_READ | EV_PERSIST, t_fake_read, f);
	event_add(f->ev_read, NULL);
}

/* Listen on loopback and write the port file of t_home. */
static int
t_fake_start(struct t_fake *f, struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	char regdir[512], host[256], path[1024], err[512], line[16];
	int fd;

	memset(f, 0, sizeof *f);
	f->base = base;
	f->fd = -1;
	f->pfd = -1;
	tbuf_init(&f->in);
	tbuf_init(&f->scratch);
	tbuf_init(&f->why);
	tlist_init(&f->msg);
	tlist_init(&f->frags);
	tlist_init(&f->words);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (f->lfd == -1 ||
	    bind(f->lfd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(f->lfd, 8) == -1 ||
	    getsockname(f->lfd, (struct sockaddr *)&sin, &len) == -1)
		return -1;
	f->port = ntohs(sin.sin_port);
	f->ev_accept =
	    event_new(f->base, f->lfd, EV_READ | EV_PERSIST, t_fake_accept, f);
	event_add(f->ev_accept, NULL);
	if (client_registry_path(t_home, regdir, sizeof regdir, host,
	        sizeof host, path, sizeof path, err, sizeof err) == -1) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return -1;
	snprintf(line, sizeof line, "%d\n", f->port);
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		close(fd);
		return -1;
	}
	/* As a registry does, for its life: clients (the Tcl package)
	 * believe a port file only while it is locked. */
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return -1;
	}
	f->pfd = fd;
	return 0;
}

static void
t_fake_stop(struct t_fake *f)
{
	t_fake_drop(f);
	if (f->ev_accept != NULL)
		event_free(f->ev_accept);
	if (f->lfd != -1)
		close(f->lfd);
	if (f->pfd > 0)
		close(f->pfd); /* and with it the lock */
	f->ev_accept = NULL;
	f->lfd = -1;
	f->pfd = -1;
	tbuf_free(&f->in);
	tbuf_free(&f->scratch);
	tbuf_free(&f->why);
	tlist_free(&f->msg);
	tlist_free(&f->frags);
	tlist_free(&f->words);
}

/* Send the client `Commreg/Withdrawn NAME REASON` as an async command. */
static void
t_fake_withdraw(struct t_fake *f, const char *name, const char *reason)
{
	const char *w[3] = {"Commreg/Withdrawn", name, reason};
	struct tbuf payload, out;

	tbuf_init(&payload);
	tbuf_init(&out);
	comm_format_command(&payload, w, NULL, 3);
	comm_format_message(&out, "async", ++f->serial, payload.p, payload.len);
	t_fake_write(f, &out);
	tbuf_free(&payload);
	tbuf_free(&out);
}

/* Index of the first command received from `from` on that starts with
 * prefix, or -1. */
static int
t_fake_got(const struct t_fake *f, int from, const char *prefix)
{
	int i;

	for (i = from; i < f->ngot; i++) {
		if (strncmp(f->got[i], prefix, strlen(prefix)) == 0)
			return i;
	}
	return -1;
}

struct t_fake_want {
	const struct t_fake *f;
	int from;
	const char *prefix;
};

static int
t_fake_has(void *arg)
{
	struct t_fake_want *w = arg;

	return t_fake_got(w->f, w->from, w->prefix) >= 0;
}

#endif
