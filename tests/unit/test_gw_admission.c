/*
 * Unit tests for the host gateway's admission (gateway/gw.c), end to end
 * in one process: a configuration directory written here and loaded by
 * the real loader, the gateway served on a Unix socket of our own with
 * gateway_init, and a client of the project's peer engine on the same
 * event loop speaking the comm protocol to it.  The ports offered are
 * real listening sockets (or real free ports), checked by the kernel.
 *
 *   Commreg/Hello      the gateway, our user name and uid
 *   Commreg/Register   admitted on a port of ours as NAME@USER; refused on
 *                      a port nobody listens on, by a deny rule (its
 *                      message and file:line), for scope global without
 *                      a rule that allows it, and for a bad -pid
 *   Commreg/List       shows what was admitted and nothing else
 *   Commreg/Unregister takes it back
 * and struct gateway's admitted and refused counters follow.
 */
#define _GNU_SOURCE /* nftw() */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <CUnit/Basic.h>

#include "gateway.h"
#include "gwconf.h"
#include "log.h"
#include "peer.h"
#include "portowner.h"
#include "server.h"
#include "tbuf.h"
#include "tcllist.h"

#define WAIT_MS    5000
#define MAX_ROUNDS 100000 /* event loop rounds for one answer, at most */

/* The policy, numbered so that the file:line of an answer can be told. */
static const char policy_ini[] =
    "[rule no-secrets]\n"                           /* 1 */
    "action = deny\n"                               /* 2 */
    "names = secret*\n"                             /* 3 */
    "message = secret names stay with their user\n" /* 4 */
    "\n"                                            /* 5 */
    "[rule wide-world]\n"                           /* 6 */
    "action = allow\n"                              /* 7 */
    "names = wide-*\n"                              /* 8 */
    "scopes = global\n";                            /* 9 */

static char tmpdir[64], confdir[128], sockpath[160];
static char user[64];
static struct event_base *base;
static struct gateway gw;
static bool gw_up;
static struct engine ceng; /* the client's */
static bool ceng_up;
static struct engine_limits clim;
static const struct peer_ops client_ops; /* asks, serves nothing */
static struct peer *cli;
static struct event *wake;
static bool woken;
static int lsock = -1, lport; /* a listening socket of ours */

/* ---- the answer to one request ------------------------------------------ */

struct answer {
	bool done;
	int code; /* 0 ok, 1 error, -1 none */
	struct tbuf text;
};

static void
on_reply(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct answer *a = arg;

	a->done = true;
	a->code = code;
	tbuf_reset(&a->text);
	tbuf_add(&a->text, res, len);
	tbuf_addc(&a->text, '\0');
	a->text.len--; /* NUL-terminated for strstr, not counted */
}

static void
on_wake(evutil_socket_t fd, short ev, void *arg)
{
	woken = true;
}

/*
 * Send words to the gateway and run the loop until the answer comes or
 * WAIT_MS pass (a timer of our own makes sure the loop wakes up).
 * The answer's code: 0 ok, 1 error, -1 none; its text in a (the
 * caller frees it).
 */
static int
ask(struct answer *a, const char *const *w, size_t n)
{
	struct timeval tv = {WAIT_MS / 1000, (WAIT_MS % 1000) * 1000};
	int rounds;

	a->done = false;
	a->code = -1;
	tbuf_init(&a->text);
	if (peer_request(cli, w, NULL, n, WAIT_MS, on_reply, a) == NULL)
		return -1;
	woken = false;
	evtimer_add(wake, &tv);
	for (rounds = 0; !a->done && !woken && rounds < MAX_ROUNDS; rounds++)
		event_base_loop(base, EVLOOP_ONCE);
	evtimer_del(wake);
	if (!a->done)
		printf("\n    no answer to %s ", w[0]);
	return a->done ? a->code : -1;
}

/* Ask and expect an error whose text holds want. */
static void
expect_error(const char *const *w, size_t n, const char *want)
{
	struct answer a;

	CU_ASSERT_EQUAL(ask(&a, w, n), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(a.text.p != NULL ? a.text.p : "", want));
	if (a.text.p == NULL || strstr(a.text.p, want) == NULL)
		printf("\n    want \"%s\" in: %s ", want,
		    a.text.p != NULL ? a.text.p : "(nothing)");
	tbuf_free(&a.text);
}

/* The value of key in a dict, copied to out; false when absent. */
static bool
dict_get(const char *d, size_t len, const char *key, char *out, size_t outlen)
{
	struct tlist l;
	const char *err;
	size_t i;
	bool found = false;

	tlist_init(&l);
	if (tlist_parse(&l, d, len, &err) == 0)
		for (i = 0; i + 1 < l.n && !found; i += 2)
			if (strcmp(l.v[i].p, key) == 0) {
				snprintf(out, outlen, "%s", l.v[i + 1].p);
				found = true;
			}
	tlist_free(&l);
	return found;
}

/*
 * Is full (NAME@USER) in the gateway's list?  Its scope and pid, when
 * asked for; the number of entries listed in *count, when asked for.
 */
static bool
listed(const char *full, char *scope, char *pid, size_t *count)
{
	const char *w[1] = {"Commreg/List"};
	struct answer a;
	struct tlist l;
	const char *err;
	char name[300];
	size_t i;
	bool found = false;

	tlist_init(&l);
	CU_ASSERT_EQUAL(ask(&a, w, 1), 0);
	CU_ASSERT_EQUAL(tlist_parse(&l, a.text.p != NULL ? a.text.p : "",
	                    a.text.len, &err),
	    0);
	for (i = 0; i < l.n && !found; i++) {
		if (!dict_get(l.v[i].p, l.v[i].len, "name", name,
		        sizeof(name)) ||
		    strcmp(name, full) != 0)
			continue;
		found = true;
		if (scope != NULL)
			dict_get(l.v[i].p, l.v[i].len, "scope", scope, 32);
		if (pid != NULL)
			dict_get(l.v[i].p, l.v[i].len, "pid", pid, 32);
	}
	if (count != NULL)
		*count = l.n;
	tlist_free(&l);
	tbuf_free(&a.text);
	return found;
}

/* ---- the fixture --------------------------------------------------------- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* A file of the configuration: mode 0644, as the loader trusts it (and
 * ours, which is root's when we are root, as it wants then). */
static int
write_file(const char *dir, const char *name, const char *text)
{
	char p[256];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((fp = fopen(p, "w")) == NULL)
		return -1;
	fputs(text, fp);
	if (fclose(fp) != 0)
		return -1;
	return chmod(p, 0644);
}

/* The gateway's Unix socket, made as commgwd makes it. */
static int
open_socket(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 16) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
connect_socket(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A TCP socket on 127.0.0.1, port 0 (the kernel's pick), listening or
 * only bound. */
static int
tcp_socket(bool listening, int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int s;

	if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (listening && listen(s, 8) == -1) ||
	    getsockname(s, (struct sockaddr *)&sin, &len) == -1) {
		close(s);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return s;
}

/* A port nothing listens on: bound, read back, closed. */
static int
free_port(void)
{
	int s, port;

	if ((s = tcp_socket(false, &port)) == -1)
		return -1;
	close(s);
	return port;
}

static int
suite_init(void)
{
	struct gwconf_errors errs = {0};
	struct server_opts opts;
	struct gwconf *conf;
	struct passwd *pw;
	char text[300];
	bool missing = false;
	size_t i;
	int fd;

	/* The gateway names users as the password database does. */
	if ((pw = getpwuid(geteuid())) != NULL)
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	else
		snprintf(user, sizeof(user), "%lu", (unsigned long)geteuid());

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/commreg-gwadm.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || chmod(tmpdir, 0755) == -1)
		return -1;
	snprintf(confdir, sizeof(confdir), "%s/etc", tmpdir);
	snprintf(sockpath, sizeof(sockpath), "%s/gateway.sock", tmpdir);
	if (mkdir(confdir, 0755) == -1 || chmod(confdir, 0755) == -1)
		return -1;
	snprintf(text, sizeof(text), "[gateway]\nsocket = %s\n", sockpath);
	if (write_file(confdir, "00-gateway.ini", text) == -1 ||
	    write_file(confdir, "10-policy.ini", policy_ini) == -1)
		return -1;
	conf = gwconf_load(confdir, GWCONF_GATEWAY, &missing, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	gwconf_errors_free(&errs);
	if (conf == NULL)
		return -1;
	if (strcmp(conf->socket_path, sockpath) != 0 || conf->nrules != 2) {
		gwconf_free(conf);
		return -1;
	}

	if ((base = event_base_new()) == NULL ||
	    (wake = evtimer_new(base, on_wake, NULL)) == NULL) {
		gwconf_free(conf);
		return -1;
	}
	if ((fd = open_socket(conf->socket_path)) == -1) {
		gwconf_free(conf);
		return -1;
	}
	server_default_opts(&opts);
	opts.max_conns = (size_t)conf->max_connections;
	opts.max_message = (size_t)conf->max_message;
	opts.handshake_timeout = conf->handshake_timeout;
	opts.ping_idle_ms = conf->liveness_ms / 3;
	opts.ping_timeout_ms = conf->liveness_ms - conf->liveness_ms / 3;
	if (gateway_init(&gw, base, fd, conf, confdir, &opts) == -1) {
		close(fd);
		gwconf_free(conf);
		return -1;
	}
	gw_up = true; /* gateway_free frees conf and the socket from here */

	if (engine_init(&ceng, base) == -1)
		return -1;
	ceng_up = true;
	engine_default_limits(&clim);
	if ((fd = connect_socket(sockpath)) == -1)
		return -1;
	cli =
	    peer_new(&ceng, fd, false, "test client", &clim, &client_ops, NULL);
	if ((lsock = tcp_socket(true, &lport)) == -1)
		return -1;
	return 0;
}

static int
suite_clean(void)
{
	/* The client first: the gateway then sees it go and drops what
	 * it held, and everything is freed before the loop is. */
	if (ceng_up)
		engine_free(&ceng);
	if (gw_up)
		gateway_free(&gw);
	if (wake != NULL)
		event_free(wake);
	if (base != NULL)
		event_base_free(base);
	if (lsock != -1)
		close(lsock);
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the cases ----------------------------------------------------------- */

static void
test_hello(void)
{
	const char *w[2] = {"Commreg/Hello", "1.0"};
	struct answer a;
	char v[300], uid[32];

	CU_ASSERT_EQUAL_FATAL(ask(&a, w, 2), 0);
	CU_ASSERT(dict_get(a.text.p, a.text.len, "gateway", v, sizeof(v)) &&
	          strcmp(v, "commgwd") == 0);
	CU_ASSERT(dict_get(a.text.p, a.text.len, "user", v, sizeof(v)) &&
	          strcmp(v, user) == 0);
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)geteuid());
	CU_ASSERT(dict_get(a.text.p, a.text.len, "uid", v, sizeof(v)) &&
	          strcmp(v, uid) == 0);
	CU_ASSERT(dict_get(a.text.p, a.text.len, "host", v, sizeof(v)) &&
	          strcmp(v, gw.host) == 0);
	tbuf_free(&a.text);
}

static void
test_register_own_port(void)
{
	char port[16], full[128], scope[32], pid[32], want[32];
	const char *w[5] = {"Commreg/Register", "calc", port, "-scope", "host"};
	uint64_t admitted = gw.admitted, refused = gw.refused_regs;
	struct answer a;

	snprintf(port, sizeof(port), "%d", lport);
	CU_ASSERT_EQUAL(ask(&a, w, 5), 0);
	/* The reply is the name the user registry sent. */
	CU_ASSERT_STRING_EQUAL(a.text.p != NULL ? a.text.p : "", "calc");
	tbuf_free(&a.text);
	CU_ASSERT_EQUAL(gw.admitted, admitted + 1);
	CU_ASSERT_EQUAL(gw.refused_regs, refused);

	/* Kept as NAME@USER, scope host, with the kernel's pid for the
	 * link (no -pid was given). */
	snprintf(full, sizeof(full), "calc@%s", user);
	scope[0] = pid[0] = '\0';
	CU_ASSERT(listed(full, scope, pid, NULL));
	CU_ASSERT_STRING_EQUAL(scope, "host");
	snprintf(want, sizeof(want), "%ld", (long)getpid());
	CU_ASSERT_STRING_EQUAL(pid, want);
}

static void
test_port_nobody_listens_on(void)
{
	char port[16], full[128], want[200];
	const char *w[5] = {"Commreg/Register", "ghost", port, "-scope",
	    "host"};
	uint64_t admitted = gw.admitted, refused = gw.refused_regs;
	int p = free_port();

	CU_ASSERT_FATAL(p > 0);
	snprintf(port, sizeof(port), "%d", p);
	snprintf(want, sizeof(want),
	    "refused: the port must be a listening TCP socket of uid %lu: "
	    "nothing listens on TCP port %d",
	    (unsigned long)geteuid(), p);
	expect_error(w, 5, want);
	CU_ASSERT_EQUAL(gw.admitted, admitted);
	CU_ASSERT_EQUAL(gw.refused_regs, refused + 1);
	snprintf(full, sizeof(full), "ghost@%s", user);
	CU_ASSERT_FALSE(listed(full, NULL, NULL, NULL));
}

static void
test_deny_rule(void)
{
	char port[16], full[128], want[300];
	const char *w[5] = {"Commreg/Register", "secret-db", port, "-scope",
	    "host"};
	uint64_t admitted = gw.admitted, refused = gw.refused_regs;

	/* On a port of ours: the rule, not the port, refuses it. */
	snprintf(port, sizeof(port), "%d", lport);
	snprintf(want, sizeof(want),
	    "refused by rule \"no-secrets\" (%s/10-policy.ini:1): secret "
	    "names stay with their user",
	    confdir);
	expect_error(w, 5, want);
	CU_ASSERT_EQUAL(gw.admitted, admitted);
	CU_ASSERT_EQUAL(gw.refused_regs, refused + 1);
	snprintf(full, sizeof(full), "secret-db@%s", user);
	CU_ASSERT_FALSE(listed(full, NULL, NULL, NULL));
}

static void
test_global_needs_a_rule(void)
{
	char port[16], full[128], scope[32];
	const char *w[5] = {"Commreg/Register", "solo", port, "-scope",
	    "global"};
	uint64_t admitted = gw.admitted, refused = gw.refused_regs;
	struct answer a;

	snprintf(port, sizeof(port), "%d", lport);
	expect_error(w, 5, "refused: no rule allows scope global");
	CU_ASSERT_EQUAL(gw.admitted, admitted);
	CU_ASSERT_EQUAL(gw.refused_regs, refused + 1);
	snprintf(full, sizeof(full), "solo@%s", user);
	CU_ASSERT_FALSE(listed(full, NULL, NULL, NULL));

	/* A name a rule lets out goes global. */
	w[1] = "wide-calc";
	CU_ASSERT_EQUAL(ask(&a, w, 5), 0);
	CU_ASSERT_STRING_EQUAL(a.text.p != NULL ? a.text.p : "", "wide-calc");
	tbuf_free(&a.text);
	CU_ASSERT_EQUAL(gw.admitted, admitted + 1);
	CU_ASSERT_EQUAL(gw.refused_regs, refused + 1);
	snprintf(full, sizeof(full), "wide-calc@%s", user);
	scope[0] = '\0';
	CU_ASSERT(listed(full, scope, NULL, NULL));
	CU_ASSERT_STRING_EQUAL(scope, "global");
}

static void
test_bad_pid(void)
{
	static const char *const bad[] = {"12x", "-5", "99999999999999999999",
	    "", "0"};
	char port[16], full[128], pid[32], want[64];
	const char *w[7] = {"Commreg/Register", "pidtest", port, "-scope",
	    "host", "-pid", NULL};
	uint64_t admitted = gw.admitted, refused = gw.refused_regs;
	struct answer a;
	size_t i;

	snprintf(port, sizeof(port), "%d", lport);
	snprintf(full, sizeof(full), "pidtest@%s", user);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w[6] = bad[i];
		snprintf(want, sizeof(want), "bad pid \"%s\"", bad[i]);
		expect_error(w, 7, want);
		CU_ASSERT_FALSE(listed(full, NULL, NULL, NULL));
	}
	/* The registry's parser refuses these before the gateway judges
	 * them: neither counter moves. */
	CU_ASSERT_EQUAL(gw.admitted, admitted);
	CU_ASSERT_EQUAL(gw.refused_regs, refused);

	/* A good one is the application's claim, kept as given. */
	w[6] = "4242";
	CU_ASSERT_EQUAL(ask(&a, w, 7), 0);
	tbuf_free(&a.text);
	CU_ASSERT_EQUAL(gw.admitted, admitted + 1);
	pid[0] = '\0';
	CU_ASSERT(listed(full, NULL, pid, NULL));
	CU_ASSERT_STRING_EQUAL(pid, "4242");
}

static void
test_unregister(void)
{
	const char *w[2] = {"Commreg/Unregister", "calc"};
	char full[128];
	struct answer a;
	size_t before, after;

	snprintf(full, sizeof(full), "calc@%s", user);
	CU_ASSERT_FATAL(listed(full, NULL, NULL, &before));
	/* The user registry's own name for it, without @USER. */
	CU_ASSERT_EQUAL(ask(&a, w, 2), 0);
	tbuf_free(&a.text);
	CU_ASSERT_FALSE(listed(full, NULL, NULL, &after));
	CU_ASSERT_EQUAL(after, before - 1);
	/* Gone: a second time there is nothing to take back. */
	expect_error(w, 2, "\"calc\" is not registered");
}

/* ---- the program ----------------------------------------------------------
 */

int
main(void)
{
	CU_pSuite s;
	char err[256];
	int rc;

	signal(SIGPIPE, SIG_IGN);
	log_init("test_gw_admission", LOG_LVL_INFO);
	/* The gateway's port check needs the kernel's socket dump (port 0
	 * is never listened on: any other answer is a failure to ask). */
	if (portowner_check(0, geteuid(), err, sizeof(err)) == -1 &&
	    strstr(err, "nothing listens") == NULL) {
		printf("skipped: the kernel's socket dump is unavailable: %s\n",
		    err);
		return 77;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("gateway admission", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "Hello: the gateway, our user and uid",
	        test_hello) == NULL ||
	    CU_add_test(s, "own listening port: admitted as NAME@USER",
	        test_register_own_port) == NULL ||
	    CU_add_test(s, "port nobody listens on: refused",
	        test_port_nobody_listens_on) == NULL ||
	    CU_add_test(s, "deny rule: refused with its message and file:line",
	        test_deny_rule) == NULL ||
	    CU_add_test(s, "scope global: refused without an allow rule",
	        test_global_needs_a_rule) == NULL ||
	    CU_add_test(s, "bad -pid: refused", test_bad_pid) == NULL ||
	    CU_add_test(s, "Unregister takes it back", test_unregister) ==
	        NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
