/*
 * commgwd: the host gateway (gateway.h, docs/gateway.md).
 *
 *   commgwd [--config-dir DIR] [-v]        serve, in the foreground
 *   commgwd [--config-dir DIR] --check-config
 *                                          validate and exit 0 or 1
 *   commgwd [--config-dir DIR] --explain USER NAME PORT SCOPE
 *                                          what the policy would say
 *
 * Reads the *.ini files of /etc/tcl/comm (or DIR, or $TCL_COMM_CONFIG_DIR),
 * opens its Unix socket, then drops to the configured unprivileged user:
 * nothing it serves needs root.  SIGHUP reloads the configuration without
 * dropping a connection; SIGTERM and SIGINT stop it.
 *
 * With [gateway] user set and started as root, it forks before the drop
 * (privsep.h): the parent stays root only to read the configuration and
 * the TLS files at each SIGHUP, with the trust checks of a start, and
 * hands them to the child, which serves.  SIGHUP may go to either.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cmdline.h"
#include "fed.h"
#include "gateway.h"
#include "gwconf.h"
#include "log.h"
#include "policy.h"
#include "portowner.h"
#include "privsep.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: commgwd [--config-dir DIR] [--check-config] [-v]\n"
	    "       commgwd [--config-dir DIR] --explain USER NAME PORT SCOPE\n"
	    "\n"
	    "The host gateway for Tcl comm registries.  Reads DIR/*.ini\n"
	    "(default: $%s, else %s).\n"
	    "\n"
	    "  --config-dir DIR   read the configuration from DIR\n"
	    "  -t, --check-config validate the configuration and exit:\n"
	    "                     0 if it is good, 1 with the errors\n"
	    "  --explain USER NAME PORT SCOPE\n"
	    "                     what the policy says of USER offering\n"
	    "                     NAME on PORT in SCOPE (host, global),\n"
	    "                     and by which rule; registers nothing:\n"
	    "                     exit 0 allowed, 1 refused\n"
	    "  -v                 debug logging\n"
	    "  -h, --help         this text\n"
	    "  --version          the version, and exit\n",
	    GWCONF_DIR_ENV, GWCONF_DIR_DEFAULT);
}

static void
print_errors(const struct gwconf_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		log_tell("%s", errs->v[i]);
}

/*
 * The socket everyone on the host may connect to (the kernel tells us
 * who did).  A stale socket of a dead gateway is replaced; a live one,
 * or anything that is not a socket, is left alone and we stop.
 */
static int
open_socket(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	char dir[sizeof sun.sun_path];
	int fd, probe;

	if (strlen(path) >= sizeof sun.sun_path)
		fatalx("socket path %s is too long", path);
	snprintf(dir, sizeof dir, "%s", path);
	dirname(dir);
	/* Made 0755 whatever the umask (the unit's is 0077): every user's
	 * registry must reach the socket inside. */
	if (mkdir(dir, 0755) == 0) {
		if (chmod(dir, 0755) == -1)
			fatal("chmod %s", dir);
	} else if (errno != EEXIST)
		fatal("mkdir %s", dir);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			fatalx("%s exists and is not a socket; not touching it",
			    path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe != -1 &&
		    connect(probe, (struct sockaddr *)&sun, sizeof sun) == 0)
			fatalx("another gateway is serving %s", path);
		if (probe != -1)
			close(probe);
		if (unlink(path) == -1)
			fatal("unlink stale socket %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		fatal("socket");
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1)
		fatal("bind %s", path);
	if (chmod(path, 0666) == -1)
		fatal("chmod %s", path);
	if (listen(fd, 128) == -1)
		fatal("listen %s", path);
	return fd;
}

/*
 * Sockets are open: become the configured user for good.  Without one,
 * a gateway started as root serves as root, which nothing it does needs:
 * said as a warning at every start, so that it is not a quiet default.
 */
static void
drop_privileges(const char *user, const char *config_dir)
{
	struct passwd *pw;

	if (user == NULL) {
		if (geteuid() == 0)
			log_warnx("serving as root: nothing here needs it; "
			          "set user = tclcomm (an account of its own) "
			          "in [gateway] of %s/*.ini (docs/gateway.md)",
			    config_dir);
		return;
	}
	if (geteuid() != 0) {
		log_warnx("not started as root: staying uid %lu (user = %s "
		          "applies to a gateway started as root)",
		    (unsigned long)geteuid(), user);
		return;
	}
	if ((pw = getpwnam(user)) == NULL)
		fatalx("user %s (the [gateway] user) does not exist", user);
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1)
		fatal("dropping privileges to %s", user);
	if (setuid(0) != -1)
		fatalx("could regain root after dropping to %s", user);
	log_info("running as %s (uid %lu)", user, (unsigned long)pw->pw_uid);
}

/* The command line. */
struct commgwd_opts {
	const char *config_dir; /* --config-dir, else the default */
	int check;              /* --check-config */
	int explain;            /* --explain USER NAME PORT SCOPE */
	char *const *explain_args;
};

/* What the serving gateway holds until it stops (on_hup reloads gw). */
static struct gateway gw;
static struct event_base *base;
static struct event *sigterm, *sigint, *sighup;
/* The privileged parent that reads the configuration, if there is one. */
static struct privsep *priv;

static void
on_stop(evutil_socket_t sig, short ev, void *arg)
{
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(arg);
}

/* The parent said stop (it got SIGTERM, and may not signal us). */
static void
stop_serving(void *arg)
{
	event_base_loopbreak(arg);
}

static void
on_hup(evutil_socket_t sig, short ev, void *arg)
{
	/* No longer root: only the parent may read the files as they must
	 * be read, the key among them. */
	if (priv != NULL) {
		privsep_child_hup(priv);
		return;
	}
	log_info("SIGHUP: reloading the configuration");
	gateway_reload(&gw);
}

/* The signals the parent and the child handle, blocked across the fork
 * until each has its handlers, so that none is lost or kills either. */
static void
signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGCHLD);
	sigprocmask(SIG_BLOCK, set, NULL);
}

/* Fill o from the command line: -1 to go on, else the exit status. */
static int
parse_options(int argc, char **argv, struct commgwd_opts *o)
{
	static const struct option longopts[] = {
	    {"config-dir", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 't'},
	    {"explain", no_argument, NULL, 'x'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof *o);
	opterr = 0; /* cmdline_bad_option says it, in one line */
	while ((ch = getopt_long(argc, argv, ":c:tvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config_dir = optarg;
			break;
		case 't':
			o->check = 1;
			break;
		case 'x':
			o->explain = 1;
			break;
		case 'v':
			log_init("commgwd", LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("commgwd (commreg) %s\n", COMMREG_VERSION);
			return 0;
		default:
			return cmdline_bad_option("commgwd", argc, argv, ch,
			    longopts);
		}
	}
	if (o->explain) {
		if (argc - optind != 4) {
			fprintf(stderr,
			    "commgwd: --explain needs USER NAME PORT "
			    "SCOPE\n");
			return 2;
		}
		o->explain_args = argv + optind;
		optind = argc;
	}
	if (optind != argc)
		return cmdline_bad_argument("commgwd", argv[optind]);
	if (o->config_dir == NULL)
		o->config_dir = gwconf_default_dir();
	return -1;
}

/* The configuration, or NULL once its errors are printed. */
static struct gwconf *
load_config(const struct commgwd_opts *o)
{
	struct gwconf_errors errs = {NULL, 0};
	struct gwconf *conf;
	bool missing = false;

	conf = gwconf_load(o->config_dir, GWCONF_GATEWAY, &missing, &errs);
	if (conf == NULL) {
		print_errors(&errs);
		gwconf_errors_free(&errs);
		if (o->check)
			log_tell("%s: configuration refused", o->config_dir);
	}
	return conf;
}

/*
 * --check-config on a configuration that loaded: the TLS context made as
 * the gateway will make it (the certificate, the key and whether it is
 * the certificate's, the CA), then "OK" and exit status 0, or the file
 * and the reason and 1.
 */
static int
check_ok(struct gwconf *conf)
{
	SSL_CTX *ctx;
	char err[1024];

	if (conf->certificate != NULL && conf->key != NULL &&
	    conf->ca != NULL) {
		if ((ctx = fed_tls_context(conf, err, sizeof err)) == NULL) {
			log_tell("%s", err);
			log_tell("%s: configuration refused", conf->dir);
			gwconf_free(conf);
			return 1;
		}
		SSL_CTX_free(ctx);
	}
	printf("commgwd: %s: configuration OK (%zu files, %zu rules, "
	       "%zu remotes)\n",
	    conf->dir, conf->nfiles, conf->nrules, conf->nremotes);
	gwconf_free(conf);
	return 0;
}

/*
 * --explain USER NAME PORT SCOPE: the policy's verdict as a registration
 * would meet it (sshd -T -C's idea), naming the rule and its file:line,
 * and what the port check would find now.  Nothing is registered.
 */
static int
explain(struct gwconf *conf, char *const *a)
{
	struct policy_req req;
	struct policy_verdict v;
	struct passwd *pw;
	gid_t groups[64];
	int ngroups = 64;
	char *end, err[300];
	long port;

	memset(&req, 0, sizeof req);
	if ((pw = getpwnam(a[0])) == NULL) {
		fprintf(stderr, "commgwd: --explain: no user \"%s\"\n", a[0]);
		gwconf_free(conf);
		return 2;
	}
	port = strtol(a[2], &end, 10);
	if (*end != '\0' || port < 1 || port > 65535) {
		fprintf(stderr, "commgwd: --explain: \"%s\" is not a port\n",
		    a[2]);
		gwconf_free(conf);
		return 2;
	}
	if (strcmp(a[3], "host") == 0)
		req.scope = GWCONF_SCOPE_HOST;
	else if (strcmp(a[3], "global") == 0)
		req.scope = GWCONF_SCOPE_GLOBAL;
	else {
		fprintf(stderr,
		    "commgwd: --explain: scope \"%s\" is not host "
		    "or global\n",
		    a[3]);
		gwconf_free(conf);
		return 2;
	}
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) == -1)
		ngroups = 0;
	req.uid = pw->pw_uid;
	req.gid = pw->pw_gid;
	req.groups = groups;
	req.ngroups = (size_t)ngroups;
	req.name = a[1];
	req.port = (int)port;
	req.entries = 0; /* as for the user's first entry */
	policy_admit(conf, &req, &v);
	printf("%s %s port %ld scope %s: %s\n", pw->pw_name, a[1], port, a[3],
	    v.why);
	if (v.allow &&
	    portowner_check((int)port, pw->pw_uid, err, sizeof err) == -1)
		printf("port check, now: %s (a registration would be "
		       "refused)\n",
		    err);
	gwconf_free(conf);
	return v.allow ? 0 : 1;
}

/*
 * [gateway] user, started as root: fork (privsep.h).  The parent stays
 * root, reads the configuration at each SIGHUP and hands it over, and
 * exits with the child; only the child returns, with its end of the
 * channel, to serve on fd.
 */
static int
separate(const struct commgwd_opts *o, struct gwconf *conf, int fd)
{
	struct stat st;
	sigset_t set;
	char *sock;
	int sp[2];
	pid_t pid;

	/* The socket as made, so that the parent removes only that one. */
	if (lstat(conf->socket_path, &st) == -1)
		fatal("stat %s", conf->socket_path);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		fatal("socketpair");
	signals_block(&set);
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(sp[0]);
		return sp[1];
	}
	close(sp[1]);
	close(fd); /* the child serves it */
	if ((sock = strdup(conf->socket_path)) == NULL)
		fatal("%s", __func__);
	gwconf_free(conf); /* the key's bytes overwritten */
	log_init("commgwd[priv]", log_level());
	exit(privsep_parent(pid, sp[0], o->config_dir, sock, st.st_dev,
	    st.st_ino));
}

/*
 * Serve conf on the socket fd and link with other gateways, all while
 * still root; then drop to the configured user and say "ready".  priv_fd:
 * the channel to the privileged parent, or -1 when there is none.
 */
static void
setup(const struct commgwd_opts *o, struct gwconf *conf, int fd, int priv_fd)
{
	struct server_opts opts;
	SSL_CTX *ctx = NULL;
	sigset_t set;
	char err[1024];

	server_default_opts(&opts);
	opts.max_conns = (size_t)conf->max_connections;
	opts.max_message = (size_t)conf->max_message;
	opts.handshake_timeout = conf->handshake_timeout;
	opts.ping_idle_ms = conf->liveness_ms / 3;
	opts.ping_timeout_ms = conf->liveness_ms - conf->liveness_ms / 3;
	/* One user registry carries all its user's names: the quota, not
	 * a per-connection limit, bounds them here. */
	opts.max_names = 1u << 24;
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (gateway_init(&gw, base, fd, conf, o->config_dir, &opts) == -1)
		fatalx("cannot serve %s", conf->socket_path);
	/* A low listen port needs root: before the drop.  The context is
	 * made of what the configuration read, as --check-config made it. */
	if (conf->certificate != NULL && conf->key != NULL &&
	    conf->ca != NULL &&
	    (ctx = fed_tls_context(conf, err, sizeof err)) == NULL)
		fatalx("federation: %s", err);
	gwconf_wipe_tls(conf);
	gw.fed = fed_start(&gw, NULL, ctx, err, sizeof err);
	if (gw.fed == NULL && err[0] != '\0')
		fatalx("federation: %s", err);
	drop_privileges(conf->run_as, o->config_dir);
	sigterm = evsignal_new(base, SIGTERM, on_stop, base);
	sigint = evsignal_new(base, SIGINT, on_stop, base);
	sighup = evsignal_new(base, SIGHUP, on_hup, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	if (priv_fd != -1)
		priv = privsep_child(base, priv_fd, getppid(), &gw,
		    stop_serving, base);
	/* Held since the fork (if any): the handlers are in place. */
	signals_block(&set);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	log_info("host gateway on %s: %zu files, %zu rules (pid %ld)",
	    conf->socket_path, conf->nfiles, conf->nrules, (long)getpid());
	printf("ready\n");
	fflush(stdout);
}

static void
teardown(void)
{
	/* The socket goes with us when we may remove it; else the next
	 * gateway finds it stale. */
	unlink(gw.conf->socket_path);
	privsep_free(priv);
	gateway_free(&gw);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_base_free(base);
	log_info("stopped");
}

int
main(int argc, char **argv)
{
	struct commgwd_opts o;
	struct gwconf *conf;
	int rc, fd, priv_fd = -1;

	log_init("commgwd", LOG_LVL_INFO);
	if ((rc = parse_options(argc, argv, &o)) != -1)
		return rc;
	if ((conf = load_config(&o)) == NULL)
		return 1;
	if (o.check)
		return check_ok(conf);
	if (o.explain)
		return explain(conf, o.explain_args);
	signal(SIGPIPE, SIG_IGN);
	fd = open_socket(conf->socket_path);
	if (conf->run_as != NULL && geteuid() == 0)
		priv_fd = separate(&o, conf, fd);
	setup(&o, conf, fd, priv_fd);
	event_base_dispatch(base);
	teardown();
	return 0;
}
