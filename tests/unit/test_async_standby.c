/*
 * The standby's side of its channel (local/standby.c), with the test
 * playing the registry: it makes the listening socket and the locked
 * port file, runs the real commregd with --standby-fds=3,4,5, writes
 * frames on the channel as a registry does, and then closes it (the
 * registry's death), writes nonsense, or says stop.
 *  - closed: the standby serves on the socket it was given, with the
 *    entries it was sent (and without those removed after);
 *  - nonsense: it says so in its log and goes, status 0, without
 *    serving: only a live registry writes, and taking over beside it
 *    would make two registries on one socket;
 *  - stop: it goes, status 0, without serving.
 */
#define _GNU_SOURCE /* nftw */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "commreg.h"
#include "election.h"

static char home[256], logpath[300];

struct fake {
	int chan;   /* our end of the channel */
	int listen; /* the registry's socket */
	int lock;   /* the port file, locked */
	int port;
	pid_t pid; /* the standby */
};

static int
rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
	return remove(p);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void
mkdir_p(const char *dir)
{
	char p[512];

	snprintf(p, sizeof p, "%s/.tcl", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/.tcl/comm", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/.tcl/comm/registry", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/.tcl/comm/log", dir);
	mkdir(p, 0700);
}

/* Play a registry: socket, port file, and its standby started. */
static int
fake_start(struct fake *f)
{
	char host[256], path[600], line[16];
	int sv[2], n;

	memset(f, 0, sizeof *f);
	snprintf(home, sizeof home, "/tmp/commreg-standby.XXXXXX");
	if (mkdtemp(home) == NULL)
		return -1;
	chmod(home, 0700);
	mkdir_p(home);
	snprintf(logpath, sizeof logpath, "%s/standby.log", home);
	if (election_hostname(host, sizeof host) == -1 ||
	    (f->listen = election_listen(0, &f->port)) == -1)
		return -1;
	snprintf(path, sizeof path, "%s/.tcl/comm/registry/%s", home, host);
	f->lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f->lock == -1 || flock(f->lock, LOCK_EX) == -1)
		return -1;
	n = snprintf(line, sizeof line, "%d\n", f->port);
	if (write(f->lock, line, (size_t)n) != n)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	if ((f->pid = fork()) == -1)
		return -1;
	if (f->pid == 0) {
		int c = fcntl(sv[1], F_DUPFD, 20),
		    l = fcntl(f->listen, F_DUPFD, 20),
		    k = fcntl(f->lock, F_DUPFD, 20), lg;

		lg = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (lg != -1)
			dup2(lg, 2);
		dup2(c, 3);
		dup2(l, 4);
		dup2(k, 5);
		for (n = 6; n < 1024; n++)
			close(n);
		setenv("HOME", home, 1);
		execl(COMMREG_TEST_COMMREGD, "commregd", "--home", home, "-v",
		    "--standby-fds=3,4,5", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	f->chan = sv[0];
	return 0;
}

/* One frame: the length, then the list. */
static void
frame(struct fake *f, const char *list)
{
	uint32_t n = htonl((uint32_t)strlen(list));

	CU_ASSERT(write(f->chan, &n, 4) == 4);
	CU_ASSERT(write(f->chan, list, strlen(list)) == (ssize_t)strlen(list));
}

static void
frame_add(struct fake *f, int id, const char *name, int port)
{
	char buf[512];

	snprintf(buf, sizeof buf,
	    "add %d %s %s 1 %d localhost {%d localhost} 0 %ld %ld 0 0 %ld {}",
	    id, name, name, port, port, (long)getuid(), (long)getpid(),
	    (long)time(NULL));
	frame(f, buf);
}

/* A client of the registry on the fake's port, within ms; NULL if none. */
static struct commreg_client *
client(struct fake *f, int ms)
{
	struct commreg_open_opts o;
	struct commreg_client *c = NULL;
	char err[512];
	int i;

	memset(&o, 0, sizeof o);
	o.home = home;
	o.no_spawn = 1;
	for (i = 0; i < ms / 20 && c == NULL; i++) {
		c = commreg_connect_port(f->port, &o, err, sizeof err);
		if (c == NULL)
			sleep_ms(20);
	}
	return c;
}

static char *
read_log(void)
{
	static char buf[16384];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	if ((fd = open(logpath, O_RDONLY)) == -1)
		return buf;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* The standby that took over is our child: SIGTERM stops it and its own
 * standby; then the files go. */
static void
fake_end(struct fake *f)
{
	int i, st;

	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		for (i = 0; i < 300 && waitpid(f->pid, &st, WNOHANG) == 0; i++)
			sleep_ms(10);
		if (i == 300) {
			kill(f->pid, SIGKILL);
			waitpid(f->pid, &st, 0);
		}
	}
	if (f->chan != -1)
		close(f->chan);
	close(f->listen);
	close(f->lock);
	nftw(home, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_closed_channel_takes_over_with_the_table(void)
{
	struct commreg_client *c;
	struct commreg_entry *v = NULL;
	struct fake f;
	char id[128];
	size_t n = 0;

	CU_ASSERT_FATAL(fake_start(&f) == 0);
	frame_add(&f, 1, "app", 6001);
	frame_add(&f, 2, "other", 6002);
	frame(&f, "del other");
	sleep_ms(200);
	close(f.chan); /* the registry dies */
	f.chan = -1;
	c = client(&f, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(commreg_lookup_id(c, "app", id, sizeof id), 0);
	CU_ASSERT_STRING_EQUAL(id, "6001 localhost");
	CU_ASSERT(commreg_lookup_id(c, "other", id, sizeof id) != 0);
	CU_ASSERT_EQUAL(commreg_list(c, NULL, &v, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	commreg_entries_free(v, n);
	CU_ASSERT(strstr(read_log(), "took over") != NULL);
	commreg_close(c);
	fake_end(&f);
}

/* The standby left by itself within 3 s, with status 0 (reaped here). */
static void
left_quietly(struct fake *f)
{
	int i, st = -1;
	pid_t w = 0;

	for (i = 0; i < 300 && (w = waitpid(f->pid, &st, WNOHANG)) == 0; i++)
		sleep_ms(10);
	CU_ASSERT_EQUAL(w, f->pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (w == f->pid)
		f->pid = 0;
}

static void
test_nonsense_on_the_channel_goes_without_serving(void)
{
	struct fake f;

	CU_ASSERT_FATAL(fake_start(&f) == 0);
	frame_add(&f, 1, "app", 6001);
	frame(&f, "add {unbalanced");
	left_quietly(&f);
	CU_ASSERT(strstr(read_log(), "sent what no registry sends") != NULL);
	CU_ASSERT(strstr(read_log(), "took over") == NULL);
	fake_end(&f);
}

static void
test_stop_goes_without_serving(void)
{
	struct fake f;

	CU_ASSERT_FATAL(fake_start(&f) == 0);
	frame_add(&f, 1, "app", 6001);
	frame(&f, "stop");
	left_quietly(&f);
	CU_ASSERT(strstr(read_log(), "took over") == NULL);
	fake_end(&f);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("standby", NULL, NULL);
	CU_add_test(s, "channel closed: takes over with the table",
	    test_closed_channel_takes_over_with_the_table);
	CU_add_test(s, "nonsense on the channel: goes without serving",
	    test_nonsense_on_the_channel_goes_without_serving);
	CU_add_test(s, "stop: goes without serving",
	    test_stop_goes_without_serving);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 ? 0 : 1;
}
