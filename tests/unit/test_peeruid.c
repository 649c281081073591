/*
 * Unit tests for local/peeruid.c: the kernel names the uid at the other
 * end of a loopback TCP connection, over IPv4, IPv6 and v4-mapped
 * addresses, from either end; a closed or absent peer is refused with a
 * reason instead of being reported as uid 0.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <ifaddrs.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "peeruid.h"

#define FOREIGN_UID 65534 /* nobody */
#define WAIT_MS     5000

/* Any address as a sockaddr, port 0. */
static socklen_t
make_addr(struct sockaddr_storage *ss, int family, const char *addr)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &sin->sin_addr);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, addr, &sin6->sin6_addr);
	return sizeof(*sin6);
}

static void
set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* A listener on addr; v6only 0 lets "::" take IPv4 as well. */
static int
listener(int family, const char *addr, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s, off = 0;

	if ((s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (family == AF_INET6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	len = make_addr(&ss, family, addr);
	if (bind(s, (struct sockaddr *)&ss, len) == -1 || listen(s, 8) == -1 ||
	    getsockname(s, (struct sockaddr *)&ss, &len) == -1) {
		close(s);
		return -1;
	}
	*port = ntohs(ss.ss_family == AF_INET
	                  ? ((struct sockaddr_in *)&ss)->sin_port
	                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
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
	len = make_addr(&ss, family, addr);
	set_port(&ss, port);
	if (connect(s, (struct sockaddr *)&ss, len) == -1) {
		close(s);
		return -1;
	}
	return s;
}

static int
accept_within(int ls, int ms)
{
	struct pollfd pfd = {.fd = ls, .events = POLLIN};

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return accept(ls, NULL, NULL);
}

/*
 * Can a client (cfamily, caddr) connect to a listener (lfamily, laddr)
 * here?  Not every host has IPv6 or dual-stack sockets.
 */
static bool
pair_connects(int lfamily, const char *laddr, int cfamily, const char *caddr)
{
	int ls, cs, port;

	if ((ls = listener(lfamily, laddr, &port)) == -1)
		return false;
	cs = connect_to(cfamily, caddr, port);
	close(ls);
	if (cs == -1)
		return false;
	close(cs);
	return true;
}

/*
 * Connect client (family, addr) to a listener (lfamily, laddr) and check
 * that both ends see our own uid.  Returns 0, or -1 when the address
 * family is not available here.
 */
static int
check_pair(int lfamily, const char *laddr, int cfamily, const char *caddr)
{
	char err[256];
	uid_t uid;
	int ls, cs, as, port;

	if ((ls = listener(lfamily, laddr, &port)) == -1)
		return -1;
	if ((cs = connect_to(cfamily, caddr, port)) == -1) {
		close(ls);
		return -1;
	}
	as = accept_within(ls, WAIT_MS);
	CU_ASSERT_FATAL(as != -1);

	uid = (uid_t)-1;
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(as, &uid, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(uid, geteuid());
	if (err[0] != '\0')
		printf("\n    server side: %s ", err);

	uid = (uid_t)-1;
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(cs, &uid, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(uid, geteuid());
	if (err[0] != '\0')
		printf("\n    client side: %s ", err);

	close(as);
	close(cs);
	close(ls);
	return 0;
}

static void
test_ipv4_loopback_is_our_uid(void)
{
	CU_ASSERT_EQUAL(check_pair(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1"),
	    0);
	/* All of 127/8 is loopback. */
	CU_ASSERT_EQUAL(check_pair(AF_INET, "127.0.0.2", AF_INET, "127.0.0.2"),
	    0);
}

static void
test_ipv6_loopback_is_our_uid(void)
{
	CU_ASSERT_EQUAL(check_pair(AF_INET6, "::1", AF_INET6, "::1"), 0);
}

static void
test_v4_mapped_dual_stack_listener(void)
{
	/* Dual-stack listener, IPv4 client: the server sees ::ffff:127.0.0.1.*/
	CU_ASSERT_EQUAL(check_pair(AF_INET6, "::", AF_INET, "127.0.0.1"), 0);
}

static void
test_v4_mapped_ipv6_client(void)
{
	/* IPv6 client to a v4-mapped address of an IPv4 listener. */
	CU_ASSERT_EQUAL(check_pair(AF_INET, "127.0.0.1", AF_INET6,
	                    "::ffff:127.0.0.1"),
	    0);
}

/* One of our own IPv4 addresses that is not loopback, into a; or false. */
static bool
nonloopback_ipv4(char *a, size_t len)
{
	struct ifaddrs *ifa, *i;

	a[0] = '\0';
	if (getifaddrs(&ifa) == -1)
		return false;
	for (i = ifa; i != NULL && a[0] == '\0'; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
			continue;
		inet_ntop(AF_INET,
		    &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, len);
		if (strncmp(a, "127.", 4) == 0)
			a[0] = '\0';
	}
	freeifaddrs(ifa);
	return a[0] != '\0';
}

static void
test_local_nonloopback_address(void)
{
	char a[INET_ADDRSTRLEN];

	CU_ASSERT_FATAL(nonloopback_ipv4(a, sizeof(a)));
	/* A connection to one of our own addresses stays on this host. */
	printf("\n    via %s ", a);
	CU_ASSERT_EQUAL(check_pair(AF_INET, a, AF_INET, a), 0);
}

static void
test_foreign_uid(void)
{
	char err[256], c;
	uid_t uid;
	pid_t pid;
	int ls, as, port, status;

	ls = listener(AF_INET, "127.0.0.1", &port);
	CU_ASSERT_FATAL(ls != -1);
	pid = fork();
	CU_ASSERT_FATAL(pid != -1);
	if (pid == 0) {
		int cs;

		alarm(10); /* never outlive the test */
		if (setgid(FOREIGN_UID) == -1 || setuid(FOREIGN_UID) == -1)
			_exit(2);
		if ((cs = connect_to(AF_INET, "127.0.0.1", port)) == -1)
			_exit(3);
		/* Hold the connection until the parent closes its end. */
		while (read(cs, &c, 1) == -1 && errno == EINTR)
			;
		_exit(0);
	}
	as = accept_within(ls, WAIT_MS);
	CU_ASSERT(as != -1);
	if (as != -1) {
		uid = (uid_t)-1;
		err[0] = '\0';
		CU_ASSERT_EQUAL(peeruid_lookup(as, &uid, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(uid, FOREIGN_UID);
		if (err[0] != '\0')
			printf("\n    %s ", err);
		close(as);
	} else
		kill(pid, SIGKILL);
	close(ls);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(as == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

/*
 * peeruid_query's raw answer for a connection still in another uid's
 * listener's queue (what the Tcl package's helper sees when it checks a
 * registry that has not accepted yet): established, no inode, and the
 * listener's uid (kernels from about 6.13) or 0 (older ones: why the
 * package takes uid 0 without an inode for "not known yet");
 * peeruid_lookup refuses it (no process holds it yet);
 * peeruid_query_listener tells its listener, held by the other uid.  Once
 * the listener is gone, our end is reset: no established socket is found.
 */
static void
test_query_of_a_queued_connection(void)
{
	struct peeruid_sock ps;
	char err[256];
	uid_t uid;
	pid_t pid;
	int pfd[2], cs, port = 0, status, n;

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid != -1);
	if (pid == 0) {
		int ls, p;

		alarm(10); /* never outlive the test */
		close(pfd[0]);
		if (setgid(FOREIGN_UID) == -1 || setuid(FOREIGN_UID) == -1)
			_exit(2);
		if ((ls = listener(AF_INET, "127.0.0.1", &p)) == -1)
			_exit(3);
		if (write(pfd[1], &p, sizeof p) != sizeof p)
			_exit(4);
		/* Never accept; the parent kills us. */
		pause();
		_exit(0);
	}
	close(pfd[1]);
	n = (int)read(pfd[0], &port, sizeof port);
	CU_ASSERT_FATAL(n == (int)sizeof port);
	cs = connect_to(AF_INET, "127.0.0.1", port);
	CU_ASSERT(cs != -1);
	if (cs != -1) {
		err[0] = '\0';
		CU_ASSERT_EQUAL(peeruid_query(cs, &ps, err, sizeof err), 0);
		CU_ASSERT_EQUAL(ps.found, 1);
		CU_ASSERT_EQUAL(ps.state, TCP_ESTABLISHED);
		CU_ASSERT(ps.uid == FOREIGN_UID || ps.uid == 0);
		printf("\n    queued: uid %u (the listener's: %u) ",
		    (unsigned)ps.uid, (unsigned)FOREIGN_UID);
		CU_ASSERT_EQUAL(ps.inode, 0);
		err[0] = '\0';
		CU_ASSERT_EQUAL(peeruid_lookup(cs, &uid, err, sizeof err), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "not yet accepted"));
		/* Its listener's owner is told on every kernel. */
		CU_ASSERT_EQUAL(peeruid_query_listener(cs, &ps, err,
		                    sizeof err),
		    0);
		CU_ASSERT_EQUAL(ps.found, 1);
		CU_ASSERT_EQUAL(ps.state, TCP_LISTEN);
		CU_ASSERT_EQUAL(ps.uid, FOREIGN_UID);
		CU_ASSERT(ps.inode != 0);
	}
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	if (cs != -1) {
		/*
		 * The listener closed with it in its queue: reset, so ours
		 * has no peer address, or the kernel has no connection.
		 */
		err[0] = '\0';
		if (peeruid_query(cs, &ps, err, sizeof err) == -1) {
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "peer address"));
		} else {
			CU_ASSERT(!ps.found || ps.state != TCP_ESTABLISHED);
		}
		close(cs);
	}
	close(pfd[0]);
}

static void
test_refusals_give_a_reason(void)
{
	char err[256], c;
	uid_t uid;
	int sv[2], s, ls, cs, as, port, n;
	struct pollfd pfd;

	/* Not connected. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(s, &uid, err, sizeof(err)), -1);
	CU_ASSERT(err[0] != '\0');
	printf("\n    unconnected: %s ", err);
	close(s);

	/* Not TCP/IP. */
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(sv[0], &uid, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "TCP/IP"));
	close(sv[0]);
	close(sv[1]);

	/*
	 * A peer that closed lingers in the kernel without an owner; the
	 * kernel reports uid 0 for it, which must not pass for root.
	 */
	ls = listener(AF_INET, "127.0.0.1", &port);
	CU_ASSERT_FATAL(ls != -1);
	cs = connect_to(AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(cs != -1);
	as = accept_within(ls, WAIT_MS);
	CU_ASSERT_FATAL(as != -1);
	close(cs);
	pfd.fd = as;
	pfd.events = POLLIN;
	CU_ASSERT(poll(&pfd, 1, WAIT_MS) == 1);
	n = read(as, &c, 1);
	CU_ASSERT_EQUAL(n, 0); /* the FIN has arrived */
	err[0] = '\0';
	uid = 12345;
	CU_ASSERT_EQUAL(peeruid_lookup(as, &uid, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(uid, 12345);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "127.0.0.1"));
	printf("\n    closed peer: %s ", err);
	close(as);
	close(ls);
}

/*
 * A socket in TCP repair mode (root only) can be "connected" without a
 * handshake, to any address: a stand-in for a peer we cannot make.
 */
static int
fake_connection(const char *to, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s, one = 1;

	if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	len = make_addr(&ss, AF_INET, to);
	set_port(&ss, port);
	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) == -1 ||
	    connect(s, (struct sockaddr *)&ss, len) == -1) {
		close(s);
		return -1;
	}
	return s;
}

static void
test_no_real_peer_is_refused(void)
{
	char err[256];
	uid_t uid = 12345;
	int s, ls, port;

	/* A peer on another host (TEST-NET-2). */
	s = fake_connection("198.51.100.7", 4242);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(s, &uid, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "198.51.100.7:4242"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not on this host"));
	printf("\n    remote: %s ", err);
	close(s);

	/* A loopback "peer" that does not exist. */
	ls = listener(AF_INET, "127.0.0.1", &port);
	CU_ASSERT_FATAL(ls != -1);
	close(ls); /* the port is free again */
	s = fake_connection("127.0.0.1", port);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(s, &uid, err, sizeof(err)), -1);
	CU_ASSERT(err[0] != '\0');
	printf("\n    no such socket: %s ", err);
	close(s);

	/* A "peer" port with only a listener: never its owner's uid. */
	ls = listener(AF_INET, "127.0.0.1", &port);
	CU_ASSERT_FATAL(ls != -1);
	s = fake_connection("127.0.0.1", port);
	CU_ASSERT_FATAL(s != -1);
	err[0] = '\0';
	CU_ASSERT_EQUAL(peeruid_lookup(s, &uid, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(uid, 12345);
	printf("\n    listener only: %s ", err);
	close(s);
	close(ls);
}

/* Can a socket be put in TCP repair mode here (root only)? */
static bool
tcp_repair_works(void)
{
	int s;

	if (geteuid() != 0 || (s = fake_connection("198.51.100.7", 4242)) == -1)
		return false;
	close(s);
	return true;
}

/*
 * CUnit 2.1 has no "skipped" result: a case that cannot run here is made
 * inactive before the run, and said so.  The run summary counts it under
 * Inactive, never as passed.
 */
/*
 * The inode given is that of the socket at the other end: the one the
 * process that accepted holds (commreg stop finds that process by it).
 */
static void
test_inode_is_the_other_end(void)
{
	struct stat sb;
	char err[256];
	unsigned long ino = 0;
	uid_t uid;
	int ls, cs, as, port;

	CU_ASSERT_FATAL((ls = listener(AF_INET, "127.0.0.1", &port)) != -1);
	CU_ASSERT_FATAL((cs = connect_to(AF_INET, "127.0.0.1", port)) != -1);
	as = accept_within(ls, WAIT_MS);
	CU_ASSERT_FATAL(as != -1);
	CU_ASSERT_EQUAL(peeruid_lookup_inode(cs, &uid, &ino, err, sizeof(err)),
	    0);
	CU_ASSERT_EQUAL(fstat(as, &sb), 0);
	CU_ASSERT_EQUAL(ino, (unsigned long)sb.st_ino);
	CU_ASSERT_EQUAL(uid, geteuid());
	/* And from the other side, the client's socket. */
	CU_ASSERT_EQUAL(peeruid_lookup_inode(as, &uid, &ino, err, sizeof(err)),
	    0);
	CU_ASSERT_EQUAL(fstat(cs, &sb), 0);
	CU_ASSERT_EQUAL(ino, (unsigned long)sb.st_ino);
	close(as);
	close(cs);
	close(ls);
}

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
	char a[INET_ADDRSTRLEN];
	int rc;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("peeruid", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "IPv4 loopback peer is our uid",
	        test_ipv4_loopback_is_our_uid) == NULL ||
	    CU_add_test(s, "IPv6 loopback peer is our uid",
	        test_ipv6_loopback_is_our_uid) == NULL ||
	    CU_add_test(s, "v4-mapped peer of a dual-stack listener is our uid",
	        test_v4_mapped_dual_stack_listener) == NULL ||
	    CU_add_test(s, "IPv6 client to a v4-mapped address is our uid",
	        test_v4_mapped_ipv6_client) == NULL ||
	    CU_add_test(s, "peer via our own non-loopback address",
	        test_local_nonloopback_address) == NULL ||
	    CU_add_test(s, "peer running as another uid", test_foreign_uid) ==
	        NULL ||
	    CU_add_test(s, "a queued connection: the listener's uid, no inode",
	        test_query_of_a_queued_connection) == NULL ||
	    CU_add_test(s, "refusals give a reason",
	        test_refusals_give_a_reason) == NULL ||
	    CU_add_test(s, "remote, absent or listening peer is refused",
	        test_no_real_peer_is_refused) == NULL ||
	    CU_add_test(s, "the inode is the other end's socket",
	        test_inode_is_the_other_end) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	if (!pair_connects(AF_INET6, "::1", AF_INET6, "::1"))
		skip_case(s, "IPv6 loopback peer is our uid",
		    "no IPv6 loopback here");
	if (!pair_connects(AF_INET6, "::", AF_INET, "127.0.0.1"))
		skip_case(s,
		    "v4-mapped peer of a dual-stack listener is our uid",
		    "no dual-stack IPv6 socket here");
	if (!pair_connects(AF_INET, "127.0.0.1", AF_INET6, "::ffff:127.0.0.1"))
		skip_case(s, "IPv6 client to a v4-mapped address is our uid",
		    "no v4-mapped IPv6 client here");
	if (!nonloopback_ipv4(a, sizeof(a)))
		skip_case(s, "peer via our own non-loopback address",
		    "no non-loopback IPv4 address here");
	if (geteuid() != 0)
		skip_case(s,
		    "a queued connection: the listener's uid, no inode",
		    "needs root to listen as another uid");
	if (geteuid() != 0)
		skip_case(s, "peer running as another uid",
		    "needs root to run a client as another uid");
	if (!tcp_repair_works())
		skip_case(s, "remote, absent or listening peer is refused",
		    geteuid() != 0 ? "needs root for TCP repair mode"
		                   : "TCP repair mode unavailable");
	CU_set_fail_on_inactive(CU_FALSE);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
