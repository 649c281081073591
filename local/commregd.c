/*
 * commregd: the user registry for one user on one host.
 *
 * Finds or becomes the registry through the port file (election.c, the
 * design note's rules a/b/c), then serves the nns protocol and the
 * Commreg/1 extension on 127.0.0.1 to its own user only (server.c).
 * Runs in the foreground; --detach is how applications start it: the
 * parent returns once the registry listens, so the caller can connect
 * right away.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "election.h"
#include "log.h"
#include "safepath.h"
#include "server.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: commregd [--detach] [--home DIR] [--max-message BYTES]\n"
	    "                [--wait MS] [--handshake-timeout S]\n"
	    "                [--max-output BYTES] [-v]\n"
	    "\n"
	    "The comm registry for this user on this host.  Finds the live\n"
	    "registry through ~/.tcl/comm/registry/HOST or becomes it.\n"
	    "\n"
	    "  --detach           run in the background once listening\n"
	    "  --home DIR         use DIR instead of $HOME\n"
	    "  --max-message N    largest message accepted (default %d)\n"
	    "  --wait MS          how long to wait for a contender (3000)\n"
	    "  --handshake-timeout S\n"
	    "                     close a peer silent this long after\n"
	    "                     connecting (10)\n"
	    "  --max-output N     close a peer that leaves N bytes of\n"
	    "                     replies unread (8388608)\n"
	    "  -v                 debug logging\n"
	    "  -h, --help         this text\n",
	    COMM_DEFAULT_MAX_MESSAGE);
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(arg);
}

/*
 * Detach: the child does the serving; the parent waits on a pipe until
 * the child says it is ready, so "commregd --detach && connect" works.
 */
static int
detach(const char *logpath)
{
	int pfd[2], fd;
	pid_t pid;
	char c;
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
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (fd > 1)
			close(fd);
	}
	fd = open(logpath,
	    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd != -1 && (log = fdopen(fd, "a")) != NULL) {
		log_to(log);
		dup2(fd, 2);
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

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"detach", no_argument, NULL, 'd'},
	    {"home", required_argument, NULL, 'H'},
	    {"max-message", required_argument, NULL, 'm'},
	    {"wait", required_argument, NULL, 'w'},
	    {"handshake-timeout", required_argument, NULL, 'T'},
	    {"max-output", required_argument, NULL, 'O'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct server_opts opts;
	struct election_claim claim;
	struct server srv;
	struct event_base *base;
	struct event *sigterm, *sigint, *sighup;
	struct passwd *pw;
	const char *home = NULL;
	char regdir[4096], logpath[4400], host[256], err[512];
	int ch, do_detach = 0, wait_ms = 3000, port, ready_fd = -1;
	char *end;

	log_init("commregd", LOG_LVL_INFO);
	server_default_opts(&opts);
	while ((ch = getopt_long(argc, argv, "dH:m:w:T:O:vh", longopts,
	            NULL)) != -1) {
		switch (ch) {
		case 'd':
			do_detach = 1;
			break;
		case 'H':
			home = optarg;
			break;
		case 'm':
			opts.max_message = strtoul(optarg, &end, 10);
			if (*end != '\0' || opts.max_message < 64) {
				fprintf(stderr,
				    "commregd: --max-message: "
				    "\"%s\" is not a size of at least 64\n",
				    optarg);
				return 2;
			}
			break;
		case 'w':
			wait_ms = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || wait_ms < 0) {
				fprintf(stderr,
				    "commregd: --wait: \"%s\" is "
				    "not a number of milliseconds\n",
				    optarg);
				return 2;
			}
			break;
		case 'T':
			opts.handshake_timeout = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || opts.handshake_timeout < 1) {
				fprintf(stderr,
				    "commregd: --handshake-timeout: "
				    "\"%s\" is not a number of seconds\n",
				    optarg);
				return 2;
			}
			break;
		case 'O':
			opts.max_output = strtoul(optarg, &end, 10);
			if (*end != '\0' || opts.max_output < 4096) {
				fprintf(stderr,
				    "commregd: --max-output: \"%s\" "
				    "is not a size of at least 4096\n",
				    optarg);
				return 2;
			}
			break;
		case 'v':
			log_init("commregd", LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "commregd: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}

	pw = getpwuid(getuid());
	if (home == NULL)
		home = getenv("HOME");
	if (home == NULL || *home == '\0')
		home = pw != NULL ? pw->pw_dir : NULL;
	if (home == NULL)
		fatalx("no home directory: set HOME or use --home");
	if (safe_comm_tree(home, getuid(), regdir, sizeof regdir, err,
	        sizeof err) == -1)
		fatalx("%s", err);
	if (election_hostname(host, sizeof host) == -1)
		fatal("gethostname");

	switch (election_run(regdir, host, wait_ms, &port, &claim, err,
	    sizeof err)) {
	case ELECTION_ERROR:
		fatalx("%s", err);
	case ELECTION_FOUND:
		printf("commregd: a registry is already running for %s on %s, "
		       "port %d\n",
		    pw ? pw->pw_name : "this user", host, port);
		return 0;
	case ELECTION_WON:
		break;
	}

	snprintf(logpath, sizeof logpath, "%s/../log/%s.log", regdir, host);
	if (do_detach)
		ready_fd = detach(logpath);
	signal(SIGPIPE, SIG_IGN);

	raise_fd_limit(&opts);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (server_init(&srv, base, claim.listen_fd, claim.port, host, &opts) ==
	    -1)
		fatalx("cannot listen on port %d", claim.port);
	snprintf(srv.owner, sizeof srv.owner, "%s",
	    pw ? pw->pw_name : "unknown");
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	/* Step 1 has no configuration to reload; HUP must not kill us. */
	sighup = evsignal_new(base, SIGHUP, on_signal, base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	signal(SIGHUP, SIG_IGN);

	log_info("registry for %s on %s listening on 127.0.0.1:%d (pid %ld)",
	    srv.owner, host, claim.port, (long)getpid());
	if (ready_fd != -1) {
		if (write(ready_fd, "r", 1) != 1)
			log_warn("telling the parent we are ready");
		close(ready_fd);
	} else {
		printf("%d\n", claim.port);
		fflush(stdout);
	}

	event_base_dispatch(base);

	server_free(&srv);
	claim.listen_fd = -1; /* closed with the listener */
	election_release(&claim);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_base_free(base);
	log_info("stopped");
	return 0;
}
