/*
 * commregd: the user registry for one user on one host.
 *
 * Finds or becomes the registry through the port file (election.c, the
 * design note's rules a/b/c), then serves the nns protocol and the
 * Commreg/1 extension on 127.0.0.1 to its own user only (server.c).
 * Runs in the foreground; --detach is how applications start it: the
 * parent returns once the registry listens, so the caller can connect
 * right away.
 *
 * With --private (or --semi) it is instead the private registry of one
 * process group, started by `commreg run` (docs/private.md): no port
 * file, no election, a port of its own that the group learns through
 * TCL_COMM_REGPORT; --semi adds the link to the registry above
 * (upstream.c), whose applications the group then sees too.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cmdline.h"
#include "dist.h"
#include "election.h"
#include "gwconf.h"
#include "gwlink.h"
#include "log.h"
#include "safepath.h"
#include "server.h"
#include "standby.h"
#include "upstream.h"

/* The command line. */
struct commregd_opts {
	struct server_opts server; /* with --max-message, --max-output,
	                            * --handshake-timeout */
	const char *home;          /* --home (NULL: $HOME, else passwd) */
	const char *config_dir;    /* --config-dir (NULL: the default) */
	const char *dist_listen;   /* --dist-listen (NULL: the default) */
	int detach;                /* --detach */
	int standby;               /* --standby */
	long log_size;             /* --log-size */
	int no_standby;            /* --no-standby */
	int standby_fds[3];        /* --standby-fds (standby.h); [0] -1: none */
	int wait_ms;               /* --wait */
	int private_reg;           /* --private or --semi */
	int semi;                  /* --semi */
	int port;                  /* --port (private; 0: any) */
	int ready_fd;              /* --ready-fd (private; -1: stdout) */
	int verbose;               /* -v */
};

/* The registry being served and what it holds until it stops. */
struct commregd {
	struct event_base *base;
	struct server srv;
	struct event *sigterm, *sigint;
	struct election_claim claim; /* user registry: the election won */
	struct upstream *up;         /* semi-private: the registry above */
	struct dist *dist;           /* user registry: the other hosts' */
	struct passwd *pw;           /* user registry: its owner */
	struct standby *sb;          /* user registry: its standby */
	char regdir[4096];
	char logpath[4400]; /* --detach: ~/.tcl/comm/log/HOST.log */
	char host[256];
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: commregd [--detach | --standby] [--home DIR]\n"
	    "                [--max-message BYTES]\n"
	    "                [--wait MS] [--handshake-timeout S]\n"
	    "                [--max-output BYTES] [--liveness MS]\n"
	    "                [--partial-timeout MS] [-v]\n"
	    "       commregd --private|--semi [--port N] [--ready-fd FD] ...\n"
	    "\n"
	    "The comm registry for this user on this host.  Finds the live\n"
	    "registry through ~/.tcl/comm/registry/HOST or becomes it.\n"
	    "\n"
	    "  --detach           run in the background once listening\n"
	    "  --standby          when another registry runs, wait and\n"
	    "                     take over when it stops (a service\n"
	    "                     manager's way: commregd.service)\n"
	    "  --no-standby       keep no standby process (by default the\n"
	    "                     registry keeps one that takes over its\n"
	    "                     port and table at once if it dies)\n"
	    "  --private          a private registry (commreg run): no port\n"
	    "                     file, no election; its group sees only\n"
	    "                     itself\n"
	    "  --semi             a semi-private one: the group also sees\n"
	    "                     the registry above (TCL_COMM_REGPORT, else\n"
	    "                     the user registry); nothing goes up\n"
	    "  --port N           private: listen on 127.0.0.1:N (default:\n"
	    "                     a port the system chooses)\n"
	    "  --ready-fd FD      private: write \"PORT\\n\" to FD once\n"
	    "                     listening, then close it\n"
	    "  --home DIR         use DIR instead of $HOME\n"
	    "  --log-size N       --detach: the log file is put aside as\n"
	    "                     HOST.log.1 once it holds N bytes\n"
	    "                     (1048576)\n"
	    "  --max-message N    largest message accepted (default %d)\n"
	    "  --wait MS          how long to wait for a contender (3000)\n"
	    "  --handshake-timeout S\n"
	    "                     close a peer silent this long after\n"
	    "                     connecting (10)\n"
	    "  --max-output N     close a peer that leaves more than N\n"
	    "                     bytes of output unread for the\n"
	    "                     liveness time, or 64 MiB at once\n"
	    "                     (8388608)\n"
	    "  --liveness MS      ping a peer silent for MS/3, close it\n"
	    "                     when silent for MS (15000; 0: never)\n"
	    "  --partial-timeout MS\n"
	    "                     close a peer that leaves a message\n"
	    "                     incomplete this long (10000)\n"
	    "  --config-dir DIR   the host configuration (where the host\n"
	    "                     gateway is; default $TCL_COMM_CONFIG_DIR,\n"
	    "                     else /etc/tcl/comm)\n"
	    "  --dist-listen ADDR[:PORT]\n"
	    "                     with ~/.tcl/comm/cookie: where the other\n"
	    "                     hosts' registries link to this one\n"
	    "                     (default: the host name's address, else\n"
	    "                     every address; docs/distributed.md)\n"
	    "  -v                 debug logging\n"
	    "  -h, --help         this text\n"
	    "  --version          the version, and exit\n",
	    COMM_DEFAULT_MAX_MESSAGE);
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(arg);
}

/*
 * The log file ~/.tcl/comm/log/HOST.log, opened as the other files of
 * the tree are trusted (config/safepath.h): never through a link, never
 * one of another user's or one others may write, and never blocking (a
 * FIFO put there would hold the registry, and with it the election's
 * lock, for ever: O_NONBLOCK makes the open fail or return, and a FIFO
 * is then refused as not a regular file).  NULL with why in err.
 */
static FILE *
open_log(const char *path, char *err, size_t errlen)
{
	FILE *fp;
	int fd, fl;

	fd = open(path,
	    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
	        O_NONBLOCK | O_NOCTTY,
	    0600);
	if (fd == -1) {
		reason(err, errlen, "%s: %s", path,
		    errno == ELOOP ? "is a symbolic link; refusing to follow it"
		    : errno == ENXIO
		        ? "is not a regular file (a FIFO or a device)"
		        : strerror(errno));
		return NULL;
	}
	if (safe_file_fd(fd, path, getuid(), err, errlen) == -1) {
		close(fd);
		return NULL;
	}
	if ((fl = fcntl(fd, F_GETFL)) != -1)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	if ((fp = fdopen(fd, "a")) == NULL) {
		reason(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
	}
	return fp;
}

/*
 * The log file is bounded (wire/log.h, log_bound): once it holds
 * --log-size bytes it becomes HOST.log.1 (the one before is dropped) and
 * a new HOST.log is opened with the checks of the first (open_log).
 * Should that fail (something not ours at the path meanwhile), the last
 * line of the old file says why and the registry logs nowhere from then
 * on, as it would have from the start.
 */
#define LOG_FILE_MAX (1L << 20)

static FILE *
rotate_log(void *arg)
{
	const char *path = arg;
	char old[4500], why[5200];
	FILE *fp = NULL;
	int fd;

	snprintf(old, sizeof old, "%s.1", path);
	if (rename(path, old) == -1)
		snprintf(why, sizeof why, "cannot rename it to %s: %s", old,
		    strerror(errno));
	else if ((fp = open_log(path, why, sizeof why)) != NULL)
		log_info("this log is full (%s now): continued in %s", old,
		    path);
	if (fp == NULL) {
		log_warnx("%s is full and %s; this registry's log goes "
		          "nowhere from here",
		    path, why);
		if ((fp = fopen("/dev/null", "ae")) == NULL)
			return NULL;
	}
	/* stderr is the log file too (detach): what else is written
	 * there follows the log. */
	if ((fd = fileno(fp)) != 2)
		dup2(fd, 2);
	return fp;
}

/*
 * Detach: the child does the serving; the parent waits on a pipe until
 * the child says it is ready, so "commregd --detach && connect" works.
 * The caller's stdin, stdout and stderr are let go of in every case (a
 * caller reading our stderr to its end, as Tcl's exec does, must not
 * wait for the registry's); where logging goes instead is said on
 * stderr before it is let go of when that is not the log file.
 */
static int
detach(char *logpath, long log_size)
{
	int pfd[2], fd;
	pid_t pid;
	char c, why[512];
	FILE *log;

	if (pipe(pfd) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(pfd[0]);
	setsid();
	if ((log = open_log(logpath, why, sizeof why)) == NULL)
		log_warnx("not logging to a file: %s; this registry's log goes "
		          "nowhere",
		    why);
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(log != NULL ? fileno(log) : fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (log != NULL) {
		log_to(log);
		log_bound(log_size, rotate_log, logpath);
	}
	return pfd[1];
}

/*
 * Every application of the user holds a connection: take the descriptors
 * the hard limit allows, and never promise more connections than that.
 */
static void
raise_fd_limit(struct server_opts *o)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 32 &&
	    o->max_conns > rl.rlim_cur - 32)
		o->max_conns = rl.rlim_cur - 32;
	log_debug("connection limit %zu", o->max_conns);
}

static void
ready(int fd, int port)
{
	char line[16];
	int n = snprintf(line, sizeof line, "%d\n", port);

	if (fd == -1) {
		fputs(line, stdout);
		fflush(stdout);
		return;
	}
	if (write(fd, line, (size_t)n) != n)
		log_warn("telling the parent we are ready");
	close(fd);
}

/*
 * The host gateway, if this host has one: the configuration says where
 * its socket is.  A configuration with errors is reported and the
 * registry runs without the gateway (scope user works as ever).
 */
static void
link_gateway(struct server *srv, const char *dir)
{
	struct gwconf_errors errs = {NULL, 0};
	struct gwconf *conf;
	bool missing = false;
	size_t i;

	conf = gwconf_load(dir, GWCONF_CLIENT, &missing, &errs);
	if (conf == NULL) {
		for (i = 0; i < errs.n; i++)
			log_warnx("%s", errs.v[i]);
		log_warnx("host configuration refused: running without the "
		          "host gateway");
		gwconf_errors_free(&errs);
		return;
	}
	if (!missing) {
		srv->mirror = registry_new(NULL, NULL);
		srv->gw = gwlink_start(srv, conf->socket_path);
	}
	gwconf_free(conf);
}

static void
gateway_wait_over(evutil_socket_t fd, short ev, void *arg)
{
	*(int *)arg = 1;
}

/*
 * Say we are ready only once linked to the host gateway (it answered our
 * greeting), or GATEWAY_WAIT_MS without it (a gateway that is down must
 * not hold up the user's applications).  The others' entries are asked
 * for when used (gwlink.h).
 */
#define GATEWAY_WAIT_MS 1000
static void
wait_gateway(struct event_base *base, struct server *srv)
{
	struct timeval tv = {GATEWAY_WAIT_MS / 1000,
	    (GATEWAY_WAIT_MS % 1000) * 1000};
	struct event *t;
	int over = 0;

	if (srv->gw == NULL)
		return;
	t = evtimer_new(base, gateway_wait_over, &over);
	evtimer_add(t, &tv);
	while (!over && !gwlink_settled(srv->gw))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	if (!gwlink_settled(srv->gw))
		log_info("host gateway: not linked within %d ms; "
		         "serving meanwhile",
		    GATEWAY_WAIT_MS);
}

/* A bad option value: say so, exit status 2. */
static int
bad_value(const char *opt, const char *arg, const char *what)
{
	fprintf(stderr, "commregd: --%s: \"%s\" is not %s\n", opt, arg, what);
	return 2;
}

/* Fill o from the command line: -1 to go on, else the exit status. */
static int
parse_options(int argc, char **argv, struct commregd_opts *o)
{
	static const struct option longopts[] = {
	    {"detach", no_argument, NULL, 'd'},
	    {"standby", no_argument, NULL, 'B'},
	    {"log-size", required_argument, NULL, 'G'},
	    {"no-standby", no_argument, NULL, 'N'},
	    {"standby-fds", required_argument, NULL, 'F'},
	    {"home", required_argument, NULL, 'H'},
	    {"max-message", required_argument, NULL, 'm'},
	    {"wait", required_argument, NULL, 'w'},
	    {"handshake-timeout", required_argument, NULL, 'T'},
	    {"max-output", required_argument, NULL, 'O'},
	    {"liveness", required_argument, NULL, 'L'},
	    {"partial-timeout", required_argument, NULL, 'Q'},
	    {"private", no_argument, NULL, 'P'},
	    {"semi", no_argument, NULL, 'S'},
	    {"port", required_argument, NULL, 'p'},
	    {"ready-fd", required_argument, NULL, 'R'},
	    {"config-dir", required_argument, NULL, 'C'},
	    {"dist-listen", required_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int ch;

	memset(o, 0, sizeof *o);
	server_default_opts(&o->server);
	o->wait_ms = 3000;
	o->ready_fd = -1;
	o->log_size = LOG_FILE_MAX;
	o->standby_fds[0] = -1;
	opterr = 0; /* cmdline_bad_option says it, in one line */
	while ((ch = getopt_long(argc, argv, ":dH:m:w:T:O:vh", longopts,
	            NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->detach = 1;
			break;
		case 'B':
			o->standby = 1;
			break;
		case 'G':
			o->log_size = strtol(optarg, &end, 10);
			if (*end != '\0' || o->log_size < 4096)
				return bad_value("log-size", optarg,
				    "a size of at least 4096");
			break;
		case 'N':
			o->no_standby = 1;
			break;
		case 'F':
			/* Internal: how a registry starts its standby. */
			if (standby_parse_fds(optarg, o->standby_fds) == -1)
				return bad_value("standby-fds", optarg,
				    "three open descriptors, as a registry "
				    "gives its standby");
			break;
		case 'H':
			o->home = optarg;
			break;
		case 'm':
			o->server.max_message = strtoul(optarg, &end, 10);
			if (*end != '\0' || o->server.max_message < 64)
				return bad_value("max-message", optarg,
				    "a size of at least 64");
			break;
		case 'w':
			o->wait_ms = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o->wait_ms < 0)
				return bad_value("wait", optarg,
				    "a number of milliseconds");
			break;
		case 'T':
			o->server.handshake_timeout =
			    (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o->server.handshake_timeout < 1)
				return bad_value("handshake-timeout", optarg,
				    "a number of seconds");
			break;
		case 'O':
			o->server.max_output = strtoul(optarg, &end, 10);
			if (*end != '\0' || o->server.max_output < 4096)
				return bad_value("max-output", optarg,
				    "a size of at least 4096");
			break;
		case 'L':
			if (server_parse_liveness(&o->server, optarg) == -1)
				return bad_value("liveness", optarg,
				    "0 or milliseconds from 300 to 86400000");
			break;
		case 'Q':
			o->server.partial_ms = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o->server.partial_ms < 100)
				return bad_value("partial-timeout", optarg,
				    "at least 100 milliseconds");
			break;
		case 'v':
			log_init("commregd", LOG_LVL_DEBUG);
			o->verbose = 1;
			break;
		case 'S':
			o->semi = 1;
			/* FALLTHROUGH */
		case 'P':
			o->private_reg = 1;
			break;
		case 'p':
			o->port = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o->port < 0 || o->port > 65535)
				return bad_value("port", optarg,
				    "a port number");
			break;
		case 'C':
			o->config_dir = optarg;
			break;
		case 'D':
			o->dist_listen = optarg;
			break;
		case 'R':
			o->ready_fd = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o->ready_fd < 3 ||
			    fcntl(o->ready_fd, F_GETFD) == -1)
				return bad_value("ready-fd", optarg,
				    "an open descriptor above 2");
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("commregd (commreg) %s\n", COMMREG_VERSION);
			return 0;
		default:
			return cmdline_bad_option("commregd", argc, argv, ch,
			    longopts);
		}
	}
	if (optind != argc)
		return cmdline_bad_argument("commregd", argv[optind]);
	if (!o->private_reg && (o->port != 0 || o->ready_fd != -1)) {
		fprintf(stderr, "commregd: --port and --ready-fd are for "
		                "--private and --semi\n");
		return 2;
	}
	/* A standby is started with its registry's own options, however
	 * they were spelt (-dv, --det): what made that registry detached,
	 * or a service manager's, is not the standby's. */
	if (o->standby_fds[0] != -1)
		o->detach = o->standby = false;
	if (o->standby && (o->detach || o->private_reg)) {
		fprintf(stderr, "commregd: --standby is for the user registry "
		                "in the foreground (a service manager's), not "
		                "with --detach, --private or --semi\n");
		return 2;
	}
	if (o->standby_fds[0] != -1 && o->private_reg) {
		fprintf(stderr, "commregd: --standby-fds is how a registry "
		                "starts its standby, not with --private or "
		                "--semi\n");
		return 2;
	}
	if (o->private_reg && o->detach) {
		fprintf(stderr, "commregd: a private registry runs in the "
		                "foreground (commreg run starts it)\n");
		return 2;
	}
	return -1;
}

/* SIGTERM and SIGINT stop the loop. */
static void
signals_add(struct commregd *d)
{
	d->sigterm = evsignal_new(d->base, SIGTERM, on_signal, d->base);
	d->sigint = evsignal_new(d->base, SIGINT, on_signal, d->base);
	evsignal_add(d->sigterm, NULL);
	evsignal_add(d->sigint, NULL);
}

/*
 * A private registry: it serves its group (same uid, as every registry
 * here) on its own port until told to stop.  Its log goes to stderr,
 * the terminal of whoever ran `commreg run`, so it says only what needs
 * saying unless -v.
 */
static void
private_setup(struct commregd *d, struct commregd_opts *o)
{
	struct passwd *pw;
	char err[512];
	int fd, port;

	if (!o->verbose)
		log_init("commregd", LOG_LVL_WARN);
	if ((fd = election_listen(o->port, &port)) == -1)
		fatal("cannot listen on 127.0.0.1:%d", o->port);
	if (election_hostname(d->host, sizeof d->host) == -1)
		fatal("gethostname");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	raise_fd_limit(&o->server);
	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (server_init(&d->srv, d->base, fd, port, d->host, &o->server) == -1)
		fatalx("cannot listen on port %d", port);
	pw = getpwuid(getuid());
	snprintf(d->srv.owner, sizeof d->srv.owner, "%s",
	    pw ? pw->pw_name : "unknown");
	d->srv.scope = REG_SCOPE_PRIVATE;
	d->srv.kind = o->semi ? "semi-private" : "private";
	if (o->semi) {
		d->srv.mirror = registry_new(NULL, NULL);
		d->up = upstream_start(&d->srv, o->home, err, sizeof err);
		if (d->up == NULL)
			fatalx("%s", err);
		d->srv.up = d->up;
	}
	signals_add(d);
	log_info("%s registry for %s listening on 127.0.0.1:%d (pid %ld)",
	    d->srv.kind, d->srv.owner, port, (long)getpid());
	ready(o->ready_fd, port);
}

static void
private_teardown(struct commregd *d)
{
	d->srv.up = NULL;
	upstream_free(d->up);
	server_free(&d->srv);
	if (d->srv.mirror != NULL)
		registry_free(d->srv.mirror);
	event_free(d->sigterm);
	event_free(d->sigint);
	event_base_free(d->base);
	log_info("stopped");
}

/*
 * --standby, and a live registry holds the port file: wait until it is
 * gone, watching its lock without trying it (election_wait_gone), so that
 * this one is elected in its place, on its port.  A service manager's
 * registry is thus there for clients that never start one (tcllib's
 * nameserv, nns) also when an application's registry came first.
 * SIGTERM meanwhile ends us: nothing is held yet.
 */
static void
standby(struct commregd *d, int port)
{
	char err[512];
	int rc;

	log_info("a registry is already running for %s on %s, port %d: "
	         "standing by to take over when it stops",
	    d->pw ? d->pw->pw_name : "this user", d->host, port);
	while ((rc = election_wait_gone(d->regdir, d->host, 60000, err,
	            sizeof err)) == 0)
		;
	if (rc == -1)
		fatalx("%s", err);
	log_info("the registry on port %d stopped: electing", port);
}

/*
 * The user registry: find the live one through the port file, or become
 * it (--standby: once the live one is gone).  Returns 1 when another
 * process is the registry (said on stdout), 0 when this one won.
 */
static void
user_paths(struct commregd *d, struct commregd_opts *o)
{
	const char *home = o->home;
	char err[512];

	d->pw = getpwuid(getuid());
	if (home == NULL)
		home = getenv("HOME");
	if (home == NULL || *home == '\0')
		home = d->pw != NULL ? d->pw->pw_dir : NULL;
	if (home == NULL)
		fatalx("no home directory: set HOME or use --home");
	if (safe_comm_tree(home, getuid(), d->regdir, sizeof d->regdir, err,
	        sizeof err) == -1)
		fatalx("%s", err);
	if (election_hostname(d->host, sizeof d->host) == -1)
		fatal("gethostname");
}

static int
user_elect(struct commregd *d, struct commregd_opts *o)
{
	char err[512];
	int port;

	user_paths(d, o);
	for (;;) {
		switch (election_run(d->regdir, d->host, o->wait_ms, &port,
		    &d->claim, err, sizeof err)) {
		case ELECTION_ERROR:
			fatalx("%s", err);
		case ELECTION_WON:
			return 0;
		case ELECTION_FOUND:
			break;
		}
		if (!o->standby) {
			printf("commregd: a registry is already running for %s "
			       "on %s, port %d\n",
			    d->pw ? d->pw->pw_name : "this user", d->host,
			    port);
			return 1;
		}
		standby(d, port);
	}
}

/* regdir is ~/.tcl/comm/registry; the log is beside it. */
static void
log_path(struct commregd *d)
{
	snprintf(d->logpath, sizeof d->logpath, "%.*s/log/%s.log",
	    (int)(strrchr(d->regdir, '/') - d->regdir), d->regdir, d->host);
}

/* The registry's server on the claimed socket, on an event base of its
 * own; -1 when server_init fails (the caller says why). */
static int
serve_init(struct commregd *d, struct commregd_opts *o)
{
	raise_fd_limit(&o->server);
	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (server_init(&d->srv, d->base, d->claim.listen_fd, d->claim.port,
	        d->host, &o->server) == -1)
		return -1;
	snprintf(d->srv.owner, sizeof d->srv.owner, "%s",
	    d->pw ? d->pw->pw_name : "unknown");
	return 0;
}

/* The links to the user's registries on the other hosts, if any. */
static void
start_dist(struct commregd *d, struct commregd_opts *o)
{
	char err[512];

	d->dist = dist_start(&d->srv, d->regdir, &d->claim, o->dist_listen, err,
	    sizeof err);
	if (d->dist == NULL && err[0] != '\0')
		log_warnx("distributed registry off: %s", err);
}

/* Won: serve on the elected port, with the host gateway's view, then
 * tell whoever waits (the --detach parent, or stdout) that we listen. */
static void
user_setup(struct commregd *d, struct commregd_opts *o)
{
	int ready_fd = -1;

	log_path(d);
	if (o->detach)
		ready_fd = detach(d->logpath, o->log_size);
	signal(SIGPIPE, SIG_IGN);

	if (serve_init(d, o) == -1)
		fatalx("cannot listen on port %d", d->claim.port);
	link_gateway(&d->srv, o->config_dir);
	wait_gateway(d->base, &d->srv);
	start_dist(d, o);
	signals_add(d);
	/* The host configuration is read once, at start: HUP reloads
	 * nothing and must not kill us. */
	signal(SIGHUP, SIG_IGN);

	log_info("registry for %s on %s listening on 127.0.0.1:%d (pid %ld)",
	    d->srv.owner, d->host, d->claim.port, (long)getpid());
	if (ready_fd != -1) {
		if (write(ready_fd, "r", 1) != 1)
			log_warn("telling the parent we are ready");
		close(ready_fd);
	} else {
		printf("%d\n", d->claim.port);
		fflush(stdout);
	}
}

/*
 * Keep a standby (standby.h) from now on: this process, run again with
 * the listening socket, the locked port file and a channel.  Children
 * are not waited for: ours are standbys only.
 */
static void
keep_standby(struct commregd *d, struct commregd_opts *o, char **argv)
{
	char exe[4096];
	ssize_t n;

	if (o->no_standby)
		return;
	signal(SIGCHLD, SIG_IGN);
	/* By its name, so that it is a commregd to ps and pgrep; the
	 * kernel's link when the file was replaced since we started. */
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0 || (size_t)n >= sizeof exe - 1 ||
	    access((exe[n] = '\0', exe), X_OK) == -1)
		snprintf(exe, sizeof exe, "/proc/self/exe");
	d->sb = standby_keep(&d->srv, d->claim.listen_fd, d->claim.lock_fd, exe,
	    argv);
}

/*
 * --standby-fds: a registry's standby.  Serve nothing while it lives,
 * keeping its table; when it dies, be the registry on its socket, with
 * its lock, at once.  Returns 1 when the registry stopped cleanly and
 * asked us to go too.
 */
static int
standby_run(struct commregd *d, struct commregd_opts *o, char **argv)
{
	struct sockaddr_in sin;
	struct stat st, lst;
	socklen_t len = sizeof sin;
	size_t held;
	FILE *log;
	int fd;

	user_paths(d, o);
	/* The registry's log, when ours is it (a detached registry's
	 * standby): bounded as the registry bounds it. */
	log_path(d);
	if (fstat(2, &st) == 0 && stat(d->logpath, &lst) == 0 &&
	    st.st_dev == lst.st_dev && st.st_ino == lst.st_ino &&
	    (fd = dup(2)) != -1) {
		if ((log = fdopen(fd, "a")) != NULL) {
			log_to(log);
			log_bound(o->log_size, rotate_log, d->logpath);
		} else
			close(fd);
	}
	if ((size_t)snprintf(d->claim.path, sizeof d->claim.path, "%.*s/%s",
	        (int)(sizeof d->claim.path - sizeof d->host - 2), d->regdir,
	        d->host) >= sizeof d->claim.path)
		fatalx("%s: path too long", d->regdir);
	d->claim.listen_fd = o->standby_fds[1];
	d->claim.lock_fd = o->standby_fds[2];
	if (getsockname(d->claim.listen_fd, (struct sockaddr *)&sin, &len) ==
	        -1 ||
	    sin.sin_family != AF_INET)
		fatalx("--standby-fds: the second is not the registry's "
		       "listening socket");
	d->claim.port = ntohs(sin.sin_port);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (serve_init(d, o) == -1)
		fatalx("out of memory");
	signals_add(d);
	log_debug("standby for port %d (pid %ld)", d->claim.port,
	    (long)getpid());
	if (standby_follow(&d->srv, o->standby_fds[0], d->claim.lock_fd) == 0) {
		/* Quietly: the lock is the registry's too, and goes when
		 * the last of us closes it. */
		holdover_free(&d->srv);
		server_free(&d->srv);
		close(d->claim.lock_fd);
		event_free(d->sigterm);
		event_free(d->sigint);
		event_base_free(d->base);
		return 1;
	}
	/* ps and /proc/PID/cmdline tell a standby from the registry it
	 * became: its --standby-fds= word is overwritten in place. */
	for (; *argv != NULL; argv++)
		if (strncmp(*argv, "--standby-fds=", 14) == 0)
			strncpy(*argv, "--took-over", strlen(*argv));
	held = holdover_count(&d->srv);
	log_info("registry for %s on %s listening on 127.0.0.1:%d (pid %ld): "
	         "took over from the registry that died, holding its %zu "
	         "entries for %d ms",
	    d->srv.owner, d->host, d->claim.port, (long)getpid(), held,
	    STANDBY_GRACE_MS);
	link_gateway(&d->srv, o->config_dir);
	start_dist(d, o);
	return 0;
}

static void
user_teardown(struct commregd *d)
{
	dist_free(d->dist);
	standby_stop(d->sb);
	holdover_free(&d->srv);
	gwlink_free(d->srv.gw);
	server_free(&d->srv);
	if (d->srv.mirror != NULL)
		registry_free(d->srv.mirror);
	d->claim.listen_fd = -1; /* closed with the listener */
	election_release(&d->claim);
	event_free(d->sigterm);
	event_free(d->sigint);
	event_base_free(d->base);
	log_info("stopped");
}

int
main(int argc, char **argv)
{
	struct commregd_opts o;
	struct commregd d;
	int rc;

	log_init("commregd", LOG_LVL_INFO);
	/* A registry out of memory stops, with a line in its log; the
	 * library it uses for the registry above must not change that. */
	tbuf_oom_fatal(true);
	if ((rc = parse_options(argc, argv, &o)) != -1)
		return rc;
	memset(&d, 0, sizeof d);
	if (o.private_reg) {
		private_setup(&d, &o);
		event_base_dispatch(d.base);
		private_teardown(&d);
		return 0;
	}
	if (o.standby_fds[0] != -1) {
		if (standby_run(&d, &o, argv) == 1)
			return 0;
	} else {
		if (user_elect(&d, &o) == 1)
			return 0;
		user_setup(&d, &o);
	}
	keep_standby(&d, &o, argv);
	event_base_dispatch(d.base);
	user_teardown(&d);
	return 0;
}
