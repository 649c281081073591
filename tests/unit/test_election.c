/*
 * Unit tests for local/election.c: exactly one registry comes out of any
 * number of simultaneous starters, a live registry is found, a dead one is
 * replaced on its own port, and a starter killed at any step leaves
 * nothing that blocks the next one for more than a moment.
 *
 * Other starters are forked children; every child has an alarm() so it
 * cannot outlive the test, and every child is reaped (and killed first if
 * it is late).  Set COMMREG_TEST_DEBUG=1 to see the election's own trace.
 */
#define _GNU_SOURCE /* nftw() */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "election.h"
#include "log.h"

/* Set by tests only: see local/election.c. */
extern void (*election_crash_hook)(const char *);

#define RACERS      20
#define CHILD_ALARM 30   /* seconds; no child outlives this */
#define WAIT_MS     5000 /* election wait for live contenders */

struct report {
	pid_t pid;
	int result;
	int port;
};

static char tmpdir[64];
static char regdir[128];

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap(int ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static int
suite_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/commreg-test.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(regdir, sizeof(regdir), "%s/registry", tmpdir);
	return mkdir(regdir, 0700);
}

static int
suite_clean(void)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
port_path(char *buf, size_t len, const char *host)
{
	snprintf(buf, len, "%s/%s", regdir, host);
}

/* The port file's content, "" when missing. */
static const char *
file_content(const char *host)
{
	static char buf[64];
	char p[256];
	ssize_t n;
	int fd;

	port_path(p, sizeof(p), host);
	buf[0] = '\0';
	if ((fd = open(p, O_RDONLY)) == -1)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

static int
says_port(const char *host, int port)
{
	char want[16];

	snprintf(want, sizeof(want), "%d\n", port);
	return strcmp(file_content(host), want) == 0;
}

/* Does anyone (this process included) hold the port file's lock? */
static int
is_locked(const char *host)
{
	char p[256];
	int fd, locked;

	port_path(p, sizeof(p), host);
	if ((fd = open(p, O_RDONLY)) == -1)
		return 0;
	locked = flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK;
	close(fd);
	return locked;
}

/* Temporary files left in regdir. */
static int
count_temps(void)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(regdir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".tmp") != NULL)
			n++;
	closedir(d);
	return n;
}

/*
 * Reap a child within ms, killing it if it is late.  Returns its status,
 * or -1 if it had to be killed.
 */
static int
reap(pid_t pid, int ms)
{
	long end = now_ms() + ms;
	int status;

	while (now_ms() < end) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		nap(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static int
read_within(int fd, void *buf, size_t len, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return (int)read(fd, buf, len);
}

/* Run the election in a child; report on fd; hold a win until hold_fd
 * reaches EOF (or forever when hold_fd is -1: killed by the test). */
static void
child_elect(const char *host, int wait_ms, int fd, int hold_fd)
{
	struct election_claim c;
	struct report r;
	char err[512], b;

	alarm(CHILD_ALARM);
	r.pid = getpid();
	r.port = 0;
	r.result =
	    election_run(regdir, host, wait_ms, &r.port, &c, err, sizeof(err));
	if (r.result == ELECTION_ERROR)
		fprintf(stderr, "child %ld: %s\n", (long)r.pid, err);
	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(3);
	if (r.result == ELECTION_WON) {
		if (hold_fd == -1)
			pause();
		while (read(hold_fd, &b, 1) == -1 && errno == EINTR)
			;
	}
	_exit(0);
}

/* A child that wins, reports its port and dies holding everything. */
static int
win_and_die(const char *host)
{
	struct report r;
	pid_t pid;
	int p[2], status;

	CU_ASSERT_FATAL(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		child_elect(host, WAIT_MS, p[1], -1);
	}
	CU_ASSERT_FATAL(pid != -1);
	close(p[1]);
	r.result = ELECTION_ERROR;
	CU_ASSERT(read_within(p[0], &r, sizeof(r), WAIT_MS) == sizeof(r));
	close(p[0]);
	kill(pid, SIGKILL);
	status = reap(pid, WAIT_MS);
	CU_ASSERT(WIFSIGNALED(status));
	CU_ASSERT_EQUAL(r.result, ELECTION_WON);
	CU_ASSERT(!is_locked(host));
	return r.result == ELECTION_WON ? r.port : -1;
}

static void
test_clean_start_wins(void)
{
	struct election_claim c;
	struct sockaddr_in sin;
	struct stat st;
	socklen_t len = sizeof(sin);
	char err[512], p[256];
	int port = -1, s;

	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-clean", WAIT_MS, &port,
	                          &c, err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT(c.port > 0 && c.port == port);
	CU_ASSERT(says_port("h-clean", c.port));
	CU_ASSERT(is_locked("h-clean"));
	port_path(p, sizeof(p), "h-clean");
	CU_ASSERT_STRING_EQUAL(c.path, p);
	CU_ASSERT(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
	CU_ASSERT_EQUAL(count_temps(), 0);

	/* Listening on 127.0.0.1, nonblocking, close-on-exec. */
	CU_ASSERT(getsockname(c.listen_fd, (struct sockaddr *)&sin, &len) == 0);
	CU_ASSERT(sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
	CU_ASSERT(ntohs(sin.sin_port) == c.port);
	/* A new port comes from below the ephemeral range, where no
	 * client's outgoing connection can be given it (election.c). */
	{
		FILE *fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
		unsigned lo = 0, hi = 0;

		if (fp != NULL && fscanf(fp, "%u %u", &lo, &hi) == 2 &&
		    lo > 20000 + 1024)
			CU_ASSERT(c.port >= 20000 && (unsigned)c.port < lo);
		if (fp != NULL)
			fclose(fp);
	}
	CU_ASSERT(fcntl(c.listen_fd, F_GETFL) & O_NONBLOCK);
	CU_ASSERT(fcntl(c.listen_fd, F_GETFD) & FD_CLOEXEC);
	CU_ASSERT(fcntl(c.lock_fd, F_GETFD) & FD_CLOEXEC);
	s = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT(connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	close(s);

	/* Release keeps the file as the remembered port, unlocked. */
	election_release(&c);
	CU_ASSERT(says_port("h-clean", port));
	CU_ASSERT(!is_locked("h-clean"));
}

static void
test_second_starter_finds_it(void)
{
	struct election_claim c, c2;
	struct report r;
	char err[512];
	pid_t pid;
	int p[2], port = -1, port2 = -1, status;

	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-found", WAIT_MS, &port,
	                          &c, err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT_FATAL(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		child_elect("h-found", WAIT_MS, p[1], -1);
	}
	CU_ASSERT_FATAL(pid != -1);
	close(p[1]);
	r.result = ELECTION_ERROR;
	CU_ASSERT(read_within(p[0], &r, sizeof(r), WAIT_MS) == sizeof(r));
	close(p[0]);
	status = reap(pid, WAIT_MS);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(r.result, ELECTION_FOUND);
	CU_ASSERT_EQUAL(r.port, port);

	/* The same process asking again is told the same. */
	CU_ASSERT_EQUAL(election_run(regdir, "h-found", WAIT_MS, &port2, &c2,
	                    err, sizeof(err)),
	    ELECTION_FOUND);
	CU_ASSERT_EQUAL(port2, port);
	CU_ASSERT_EQUAL(c2.lock_fd, -1);
	CU_ASSERT_EQUAL(c2.listen_fd, -1);
	election_release(&c);
}

static void
test_stale_file_same_port(void)
{
	struct election_claim c;
	char err[512];
	int old, port = -1;

	old = win_and_die("h-stale");
	CU_ASSERT_FATAL(old > 0);
	CU_ASSERT(says_port("h-stale", old));
	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-stale", WAIT_MS, &port,
	                          &c, err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT_EQUAL(c.port, old);
	CU_ASSERT(says_port("h-stale", old));
	CU_ASSERT(is_locked("h-stale"));
	election_release(&c);
}

/* The distributed registry writes its link addresses after the port
 * line (docs/distributed.md): the port is still the first line, and a
 * registry that takes the file over writes only its own content. */
static void
test_port_file_with_addresses(void)
{
	struct election_claim c, c2;
	char p[256], err[512];
	int fd, old, port = -1, port2 = -1;

	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-addr", WAIT_MS, &port, &c,
	                          err, sizeof(err)),
	    ELECTION_WON);
	port_path(p, sizeof(p), "h-addr");
	CU_ASSERT_FATAL((fd = open(p, O_WRONLY | O_APPEND)) != -1);
	CU_ASSERT(write(fd, "dist 10.0.0.1 4000\n", 19) == 19);
	close(fd);
	/* A live registry's file: found, at the port of its first line. */
	CU_ASSERT_EQUAL(election_run(regdir, "h-addr", 0, &port2, &c2, err,
	                    sizeof(err)),
	    ELECTION_FOUND);
	CU_ASSERT_EQUAL(port2, port);
	election_release(&c);

	/* A dead one's: taken over on the same port, addresses gone. */
	old = port;
	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-addr", WAIT_MS, &port, &c,
	                          err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT_EQUAL(c.port, old);
	CU_ASSERT(says_port("h-addr", old));
	election_release(&c);

	/* Without the final LF it is not believed yet. */
	CU_ASSERT_FATAL((fd = open(p, O_WRONLY | O_APPEND)) != -1);
	CU_ASSERT(write(fd, "dist 10.0.0.1 40", 16) == 16);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-addr", WAIT_MS, &port, &c,
	                          err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT(says_port("h-addr", c.port));
	election_release(&c);
}

static void
test_stale_port_taken_elsewhere(void)
{
	struct election_claim c;
	struct sockaddr_in sin;
	char err[512];
	int old, port = -1, s;

	old = win_and_die("h-taken");
	CU_ASSERT_FATAL(old > 0);
	/* Some other program now listens there. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(old);
	CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CU_ASSERT_FATAL(listen(s, 1) == 0);

	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-taken", WAIT_MS, &port,
	                          &c, err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT(c.port > 0 && c.port != old);
	CU_ASSERT(says_port("h-taken", c.port));
	CU_ASSERT(is_locked("h-taken"));
	election_release(&c);
	close(s);
}

/*
 * A child that starts becoming the registry by hand (empty file, locked,
 * as a contender does right after link) and then does nothing.  Returns
 * its pid once the file is in place.
 */
static pid_t
stuck_contender(const char *host)
{
	char p[256], b = 0;
	pid_t pid;
	int fds[2], fd;

	port_path(p, sizeof(p), host);
	CU_ASSERT_FATAL(pipe(fds) == 0);
	if ((pid = fork()) == 0) {
		alarm(CHILD_ALARM);
		close(fds[0]);
		fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd == -1 || flock(fd, LOCK_EX) == -1)
			_exit(2);
		if (write(fds[1], &b, 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	CU_ASSERT_FATAL(pid != -1);
	close(fds[1]);
	if (read_within(fds[0], &b, 1, WAIT_MS) != 1) {
		kill(pid, SIGKILL);
		reap(pid, WAIT_MS);
		pid = -1;
	}
	close(fds[0]);
	return pid;
}

static void
test_dead_contender_taken_over(void)
{
	struct election_claim c;
	char err[512];
	long t0;
	pid_t pid;
	int port = -1, status;

	pid = stuck_contender("h-dead");
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT(is_locked("h-dead"));
	CU_ASSERT_STRING_EQUAL(file_content("h-dead"), "");
	kill(pid, SIGKILL);
	status = reap(pid, WAIT_MS);
	CU_ASSERT(WIFSIGNALED(status));

	t0 = now_ms();
	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-dead", WAIT_MS, &port, &c,
	                          err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT(now_ms() - t0 < 1000);
	CU_ASSERT(says_port("h-dead", c.port));
	election_release(&c);
}

static void
test_live_contender_times_out(void)
{
	struct election_claim c;
	char err[512], p[256], pidstr[32];
	long t0, took;
	pid_t pid;
	int port = -1;

	pid = stuck_contender("h-stuck");
	CU_ASSERT_FATAL(pid > 0);
	t0 = now_ms();
	err[0] = '\0';
	CU_ASSERT_EQUAL(election_run(regdir, "h-stuck", 500, &port, &c, err,
	                    sizeof(err)),
	    ELECTION_ERROR);
	took = now_ms() - t0;
	CU_ASSERT(took >= 400 && took < 3000);
	port_path(p, sizeof(p), "h-stuck");
	snprintf(pidstr, sizeof(pidstr), "%ld", (long)pid);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, pidstr));
	CU_ASSERT_EQUAL(c.lock_fd, -1);
	CU_ASSERT_EQUAL(c.listen_fd, -1);
	printf("\n    after %ld ms: %s ", took, err);
	kill(pid, SIGKILL);
	reap(pid, WAIT_MS);
}

static void
test_twenty_racers_one_winner(void)
{
	struct report r[RACERS];
	pid_t pids[RACERS];
	long end;
	int go[2], rep[2], hold[2], i, got, won, found, winner;
	int status, bad = 0;

	CU_ASSERT_FATAL(pipe(go) == 0 && pipe(rep) == 0 && pipe(hold) == 0);
	for (i = 0; i < RACERS; i++) {
		if ((pids[i] = fork()) == 0) {
			char b;

			close(go[1]);
			close(rep[0]);
			close(hold[1]);
			alarm(CHILD_ALARM);
			/* All start together when the parent closes go. */
			while (read(go[0], &b, 1) == -1 && errno == EINTR)
				;
			child_elect("h-race", WAIT_MS, rep[1], hold[0]);
		}
		if (pids[i] == -1)
			break;
	}
	close(go[0]);
	close(rep[1]);
	close(hold[0]);
	CU_ASSERT_EQUAL(i, RACERS);
	close(go[1]); /* go */

	end = now_ms() + 2 * WAIT_MS;
	for (got = 0; got < i && now_ms() < end; got++)
		if (read_within(rep[0], &r[got], sizeof(r[got]),
		        (int)(end - now_ms())) != sizeof(r[got]))
			break;
	CU_ASSERT_EQUAL(got, RACERS);
	won = found = 0;
	winner = -1;
	for (int k = 0; k < got; k++)
		if (r[k].result == ELECTION_WON) {
			won++;
			winner = k;
		}
	for (int k = 0; k < got; k++)
		if (r[k].result == ELECTION_FOUND && winner != -1 &&
		    r[k].port == r[winner].port)
			found++;
	printf("\n    %d won, %d found the winner's port ", won, found);
	CU_ASSERT_EQUAL(won, 1);
	CU_ASSERT_EQUAL(found, RACERS - 1);
	if (winner != -1)
		CU_ASSERT(says_port("h-race", r[winner].port));
	CU_ASSERT_EQUAL(count_temps(), 0);

	close(hold[1]); /* the winner may go */
	close(rep[0]);
	for (int k = 0; k < i; k++) {
		status = reap(pids[k], WAIT_MS);
		if (status == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			bad++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(!is_locked("h-race"));
}

static void
die_at(const char *step)
{
	const char *want = getenv("COMMREG_TEST_DIE_AT");

	if (want != NULL && strcmp(want, step) == 0)
		raise(SIGKILL);
}

/*
 * A starter killed at `step`; the next one must win within about a
 * second and leave no temporary file behind.
 */
static void
killed_at(const char *host, const char *step)
{
	struct election_claim c;
	char err[512];
	long t0;
	pid_t pid;
	int p[2], port = -1, status;

	CU_ASSERT_FATAL(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		setenv("COMMREG_TEST_DIE_AT", step, 1);
		election_crash_hook = die_at;
		child_elect(host, WAIT_MS, p[1], -1);
	}
	CU_ASSERT_FATAL(pid != -1);
	close(p[1]);
	status = reap(pid, WAIT_MS);
	close(p[0]);
	CU_ASSERT(
	    status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	t0 = now_ms();
	err[0] = '\0';
	CU_ASSERT_EQUAL_FATAL(election_run(regdir, host, WAIT_MS, &port, &c,
	                          err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT(now_ms() - t0 < 1000);
	CU_ASSERT(says_port(host, c.port));
	CU_ASSERT_EQUAL(count_temps(), 0);
	election_release(&c);
}

static void
test_killed_after_link(void)
{
	killed_at("h-kill-link", "linked");
}

static void
test_killed_after_bind(void)
{
	killed_at("h-kill-bind", "bound");
}

static void
test_killed_before_writing(void)
{
	killed_at("h-kill-write", "writing");
}

static void
test_killed_while_taking_over(void)
{
	struct election_claim c;
	char err[512];
	int old, port = -1;

	/* A stale file; a starter dies right after binding its port. */
	old = win_and_die("h-kill-over");
	CU_ASSERT_FATAL(old > 0);
	killed_at("h-kill-over", "bound");
	/* The dead holder's port survived both deaths. */
	CU_ASSERT_EQUAL_FATAL(election_run(regdir, "h-kill-over", WAIT_MS,
	                          &port, &c, err, sizeof(err)),
	    ELECTION_WON);
	CU_ASSERT_EQUAL(c.port, old);
	election_release(&c);
}

static void
test_refuses_bad_names_and_files(void)
{
	struct election_claim c;
	char err[512], p[256];
	int port, fd;

	CU_ASSERT_EQUAL(election_run(regdir, "../escape", WAIT_MS, &port, &c,
	                    err, sizeof(err)),
	    ELECTION_ERROR);
	CU_ASSERT_EQUAL(election_run(regdir, "", WAIT_MS, &port, &c, err,
	                    sizeof(err)),
	    ELECTION_ERROR);
	CU_ASSERT_EQUAL(election_run(regdir, ".hidden", WAIT_MS, &port, &c, err,
	                    sizeof(err)),
	    ELECTION_ERROR);

	port_path(p, sizeof(p), "h-symlink");
	CU_ASSERT_FATAL(symlink("/dev/null", p) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(election_run(regdir, "h-symlink", WAIT_MS, &port, &c,
	                    err, sizeof(err)),
	    ELECTION_ERROR);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));

	port_path(p, sizeof(p), "h-0644");
	fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
	CU_ASSERT_FATAL(fd != -1);
	CU_ASSERT(fchmod(fd, 0644) == 0 && write(fd, "1234\n", 5) == 5);
	close(fd);
	err[0] = '\0';
	CU_ASSERT_EQUAL(election_run(regdir, "h-0644", WAIT_MS, &port, &c, err,
	                    sizeof(err)),
	    ELECTION_ERROR);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "0644"));
	printf("\n    message: %s ", err);
}

static void
test_hostname_is_short(void)
{
	char h[256];

	CU_ASSERT_EQUAL_FATAL(election_hostname(h, sizeof(h)), 0);
	CU_ASSERT(h[0] != '\0');
	CU_ASSERT_PTR_NULL(strchr(h, '.'));
}

int
main(void)
{
	CU_pSuite s;
	int rc;

	log_init("test_election", getenv("COMMREG_TEST_DEBUG") != NULL
	                              ? LOG_LVL_DEBUG
	                              : LOG_LVL_WARN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("election", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "clean start wins", test_clean_start_wins) == NULL ||
	    CU_add_test(s, "second starter finds the registry",
	        test_second_starter_finds_it) == NULL ||
	    CU_add_test(s, "stale file: won on the same port",
	        test_stale_file_same_port) == NULL ||
	    CU_add_test(s, "port file with link addresses after the port",
	        test_port_file_with_addresses) == NULL ||
	    CU_add_test(s, "stale file, port taken: won on another port",
	        test_stale_port_taken_elsewhere) == NULL ||
	    CU_add_test(s, "dead contender is taken over",
	        test_dead_contender_taken_over) == NULL ||
	    CU_add_test(s, "live contender that never finishes: error",
	        test_live_contender_times_out) == NULL ||
	    CU_add_test(s, "20 racers: one winner, 19 find it",
	        test_twenty_racers_one_winner) == NULL ||
	    CU_add_test(s, "starter killed after link",
	        test_killed_after_link) == NULL ||
	    CU_add_test(s, "starter killed after bind",
	        test_killed_after_bind) == NULL ||
	    CU_add_test(s, "starter killed before writing the port",
	        test_killed_before_writing) == NULL ||
	    CU_add_test(s, "starter killed while taking over",
	        test_killed_while_taking_over) == NULL ||
	    CU_add_test(s, "bad host names and port files are refused",
	        test_refuses_bad_names_and_files) == NULL ||
	    CU_add_test(s, "hostname has no domain part",
	        test_hostname_is_short) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
