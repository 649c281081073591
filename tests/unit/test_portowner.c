/*
 * Unit tests for gateway/portowner.c, against the real kernel: a port
 * counts as a uid's only while a TCP socket of that uid listens on it
 * (IPv4 or IPv6); another uid's listener is refused with its owner named,
 * and a free port or a connected socket is refused as "nothing listens".
 * As root, a listener of another uid (a child that became nobody) is
 * that uid's and not root's.
 *
 * The kernel records the effective uid of the process that made a socket,
 * so that is the uid we expect to own ours.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "portowner.h"

#define FOREIGN_UID 65534 /* nobody */
#define WAIT_MS     5000

/* Any address as a sockaddr, port as given. */
static socklen_t
make_addr(struct sockaddr_storage *ss, int family, const char *addr, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		inet_pton(AF_INET, addr, &sin->sin_addr);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	inet_pton(AF_INET6, addr, &sin6->sin6_addr);
	return sizeof(*sin6);
}

static int
local_port(int s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(s, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	return ntohs(ss.ss_family == AF_INET
	                 ? ((struct sockaddr_in *)&ss)->sin_port
	                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A socket bound to addr, port 0 (the kernel picks); listening if asked.
 * IPv6 sockets are v6-only, so that the IPv6 case tests IPv6 alone. */
static int
bound(int family, const char *addr, bool listening, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s, on = 1;

	if ((s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (family == AF_INET6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	len = make_addr(&ss, family, addr, 0);
	if (bind(s, (struct sockaddr *)&ss, len) == -1 ||
	    (listening && listen(s, 8) == -1) || (*port = local_port(s)) <= 0) {
		close(s);
		return -1;
	}
	return s;
}

static int
connect_to(int family, const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s;

	if ((s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	len = make_addr(&ss, family, addr, port);
	if (connect(s, (struct sockaddr *)&ss, len) == -1) {
		close(s);
		return -1;
	}
	return s;
}

/* A uid that is not ours, for "someone else's port". */
static uid_t
other_uid(void)
{
	return geteuid() == 12345 ? 12346 : 12345;
}

/* Check err for a fragment, and show it when it is not there. */
static void
expect_reason(const char *err, const char *want)
{
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	if (strstr(err, want) == NULL)
		printf("\n    want \"%s\" in: %s ", want, err);
}

static void
test_own_ipv4_listener(void)
{
	char err[256];
	int s, port;

	s = bound(AF_INET, "127.0.0.1", true, &port);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(port, geteuid(), err, sizeof(err)), 0);
	if (err[0] != '\0')
		printf("\n    %s ", err);
	close(s);
}

static void
test_other_uid_is_refused(void)
{
	char err[256], want[128];
	int s, port;

	s = bound(AF_INET, "127.0.0.1", true, &port);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(port, other_uid(), err, sizeof(err)),
	    -1);
	/* The real owner is named, and who asked. */
	snprintf(want, sizeof(want),
	    "TCP port %d is listened on by uid %lu, not by uid %lu", port,
	    (unsigned long)geteuid(), (unsigned long)other_uid());
	expect_reason(err, want);
	close(s);
}

static void
test_free_port_is_refused(void)
{
	char err[256], want[64];
	int s, port;

	/* A port just bound and closed is free (someone else taking it in
	 * between would be a very unlikely coincidence). */
	s = bound(AF_INET, "127.0.0.1", false, &port);
	CU_ASSERT_FATAL(s != -1);
	close(s);
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(port, geteuid(), err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "nothing listens on TCP port %d", port);
	expect_reason(err, want);
}

static void
test_bound_not_listening_is_refused(void)
{
	char err[256], want[64];
	int s, port;

	/* Bound and held, never listening: not a service. */
	s = bound(AF_INET, "127.0.0.1", false, &port);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(port, geteuid(), err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "nothing listens on TCP port %d", port);
	expect_reason(err, want);
	close(s);
}

static void
test_connected_socket_does_not_count(void)
{
	struct pollfd pfd;
	char err[256], want[64];
	int ls, cs, as, lport, cport;

	ls = bound(AF_INET, "127.0.0.1", true, &lport);
	CU_ASSERT_FATAL(ls != -1);
	cs = connect_to(AF_INET, "127.0.0.1", lport);
	CU_ASSERT_FATAL(cs != -1);
	pfd.fd = ls;
	pfd.events = POLLIN;
	CU_ASSERT_FATAL(poll(&pfd, 1, WAIT_MS) == 1);
	as = accept(ls, NULL, NULL);
	CU_ASSERT_FATAL(as != -1);
	cport = local_port(cs);
	CU_ASSERT_FATAL(cport > 0);

	/* The client's port is ours, connected, and listens for nothing. */
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(cport, geteuid(), err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "nothing listens on TCP port %d", cport);
	expect_reason(err, want);

	/* The listener's port counts while it listens... */
	CU_ASSERT_EQUAL(portowner_check(lport, geteuid(), err, sizeof(err)), 0);
	/* ... and not once only the connection it accepted is left there. */
	close(ls);
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(lport, geteuid(), err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "nothing listens on TCP port %d", lport);
	expect_reason(err, want);
	close(as);
	close(cs);
}

static void
test_own_ipv6_listener(void)
{
	char err[256], want[128];
	int s, port;

	s = bound(AF_INET6, "::1", true, &port);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(port, geteuid(), err, sizeof(err)), 0);
	if (err[0] != '\0')
		printf("\n    %s ", err);
	/* The IPv6 dump names the owner as well. */
	err[0] = '\0';
	CU_ASSERT_EQUAL(portowner_check(port, other_uid(), err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "is listened on by uid %lu",
	    (unsigned long)geteuid());
	expect_reason(err, want);
	close(s);
}

/* Reap child within ms, else kill it and reap it; its wait status. */
static int
reap(pid_t child, int ms)
{
	struct timespec tick = {0, 10 * 1000 * 1000};
	int status = -1, i;

	for (i = 0; i < ms / 10; i++) {
		if (waitpid(child, &status, WNOHANG) == child)
			return status;
		nanosleep(&tick, NULL);
	}
	kill(child, SIGKILL);
	if (waitpid(child, &status, 0) != child)
		return -1;
	return status;
}

/*
 * A child becomes nobody and listens; it tells us the port over a pipe
 * and keeps listening until we close our end of the other pipe.
 */
static void
test_foreign_listener(void)
{
	char err[256], want[128];
	struct pollfd pfd;
	int up[2], down[2], port = -1, status;
	pid_t pid;

	CU_ASSERT_FATAL(pipe(up) == 0);
	CU_ASSERT_FATAL(pipe(down) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid != -1);
	if (pid == 0) {
		char c;
		int s, p;

		alarm(10); /* never outlive the test */
		close(up[0]);
		close(down[1]);
		if (setgroups(0, NULL) == -1 || setgid(FOREIGN_UID) == -1 ||
		    setuid(FOREIGN_UID) == -1)
			_exit(2);
		if ((s = bound(AF_INET, "127.0.0.1", true, &p)) == -1)
			_exit(3);
		if (write(up[1], &p, sizeof(p)) != (ssize_t)sizeof(p))
			_exit(4);
		while (read(down[0], &c, 1) == -1 && errno == EINTR)
			;
		close(s);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	pfd.fd = up[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, WAIT_MS) != 1 ||
	    read(up[0], &port, sizeof(port)) != (ssize_t)sizeof(port))
		port = -1;
	CU_ASSERT(port > 0);
	if (port > 0) {
		err[0] = '\0';
		CU_ASSERT_EQUAL(portowner_check(port, FOREIGN_UID, err,
		                    sizeof(err)),
		    0);
		if (err[0] != '\0')
			printf("\n    %s ", err);
		err[0] = '\0';
		CU_ASSERT_EQUAL(portowner_check(port, 0, err, sizeof(err)), -1);
		snprintf(want, sizeof(want),
		    "TCP port %d is listened on by uid %d, not by uid 0", port,
		    FOREIGN_UID);
		expect_reason(err, want);
	}
	close(down[1]); /* the child's cue to go */
	close(up[0]);
	status = reap(pid, WAIT_MS);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Can we listen on IPv6 loopback here? */
static bool
ipv6_available(void)
{
	int s, port;

	if ((s = bound(AF_INET6, "::1", true, &port)) == -1)
		return false;
	close(s);
	return true;
}

/*
 * CUnit 2.1 has no "skipped" result: a case that cannot run here is made
 * inactive before the run, and said so.  The run summary counts it under
 * Inactive, never as passed.
 */
static void
skip_case(CU_pSuite s, const char *name, const char *why)
{
	CU_pTest t;

	if ((t = CU_get_test(s, name)) == NULL) {
		fprintf(stderr, "no case named \"%s\" to skip\n", name);
		exit(1);
	}
	printf("skipped: %s: %s\n", name, why);
	CU_set_test_active(t, CU_FALSE);
}

int
main(void)
{
	CU_pSuite s;
	char err[256];
	int rc;

	/* Without sock_diag (a container that forbids it) nothing here can
	 * run: port 0 is never listened on, so any other answer than an
	 * inet_diag failure means the kernel answered. */
	if (portowner_check(0, geteuid(), err, sizeof(err)) == -1 &&
	    strstr(err, "nothing listens") == NULL) {
		printf("skipped: the kernel's socket dump is unavailable: %s\n",
		    err);
		return 77;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("portowner", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "own IPv4 listener is ours",
	        test_own_ipv4_listener) == NULL ||
	    CU_add_test(s, "another uid is refused, the owner named",
	        test_other_uid_is_refused) == NULL ||
	    CU_add_test(s, "free port: nothing listens",
	        test_free_port_is_refused) == NULL ||
	    CU_add_test(s, "bound, not listening: nothing listens",
	        test_bound_not_listening_is_refused) == NULL ||
	    CU_add_test(s, "connected socket does not count",
	        test_connected_socket_does_not_count) == NULL ||
	    CU_add_test(s, "own IPv6 listener is ours",
	        test_own_ipv6_listener) == NULL ||
	    CU_add_test(s, "listener of another uid is that uid's",
	        test_foreign_listener) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	if (!ipv6_available())
		skip_case(s, "own IPv6 listener is ours",
		    "no IPv6 loopback here");
	if (geteuid() != 0)
		skip_case(s, "listener of another uid is that uid's",
		    "needs root to listen as another uid");
	CU_set_fail_on_inactive(CU_FALSE);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
