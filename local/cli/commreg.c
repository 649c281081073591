/*
 * commreg: the command-line face of the user registry.
 *
 *   commreg list [PATTERN]             who is registered
 *   commreg lookup NAME                the comm id of NAME
 *   commreg register NAME PORT [--host H] [--scope user|host|global]
 *                                      hold a registration until killed
 *   commreg watch [PATTERN]            registrations as they come and go
 *   commreg status                     is a registry running, and how
 *   commreg run [--semi] [--] CMD [ARG...]
 *                                      CMD with a private registry
 *
 * Each subcommand is one row in a table (as tmux's cmd-*.c entries); the
 * work is done by the client library, which finds the registry and starts
 * commregd when none runs.  The one-shot commands use its blocking calls
 * (client.h); register and watch, which hold on, use its asynchronous
 * side (commreg.h) in a libevent loop, so that they survive the loss of
 * the registry: it is elected again and they carry on.
 *
 * Exit status: 0 success, 1 the registry said no or could not be reached
 * (or, for register, the name was lost or withdrawn),
 * 2 usage error, 3 (status only) no registry is running; run exits with
 * its command's status (docs/private.md).
 */
#define _GNU_SOURCE /* pipe2 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "client.h"
#include "election.h"
#include "log.h"
#include "tbuf.h"
#include "tcllist.h"
#include "utf8.h"

#define EXIT_REGISTRY 1
#define EXIT_USAGE    2
#define EXIT_NONE     3
/* run: as env(1), nice(1) and the shells do. */
#define EXIT_RUN_SELF     125 /* the private registry did not start */
#define EXIT_RUN_NOEXEC   126
#define EXIT_RUN_NOTFOUND 127
/* How long run waits for its registry to listen, and to stop. */
#define RUN_START_MS 10000
#define RUN_STOP_MS  2000

struct cmd_ctx {
	struct commreg_open_opts opts;
	const struct cmd_entry *ce; /* the running subcommand */
	const char *host;           /* register --host */
	const char *scope;          /* register --scope */
};

struct cmd_entry {
	const char *name;
	const char *args;
	const char *summary;
	const char *help;
	int minargs;
	int maxargs;
	int reg_opts; /* takes --host and --scope */
	int (*exec)(struct cmd_ctx *, int, char **);
};

/* A holding command (register, watch): its loop and how it ends. */
struct hold {
	struct event_base *base;
	struct commreg_async *a;
	int rc;
};

static const struct cmd_entry cmd_table[];

static void
usage(FILE *fp)
{
	const struct cmd_entry *ce;
	char buf[128];

	fprintf(fp, "usage: commreg [-v] [--home DIR] [--commregd PATH] "
	            "COMMAND [ARGS]\n\ncommands:\n");
	for (ce = cmd_table; ce->name != NULL; ce++) {
		snprintf(buf, sizeof buf, "%s %s", ce->name, ce->args);
		fprintf(fp, "  %-30s %s\n", buf, ce->summary);
	}
	fprintf(fp,
	    "\noptions:\n"
	    "  -h, --help         this text (after a command: its help)\n"
	    "  -v, --verbose      debug log on stderr\n"
	    "  --home DIR         use DIR instead of $HOME\n"
	    "  --commregd PATH    the daemon to start when none runs\n");
}

static void
cmd_usage(FILE *fp, const struct cmd_entry *ce)
{
	fprintf(fp, "usage: commreg %s %s\n\n%s", ce->name, ce->args, ce->help);
}

static int usage_error(const struct cmd_entry *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* The message, then the usage of the command (or of commreg) on stderr. */
static int
usage_error(const struct cmd_entry *ce, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "commreg: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (ce != NULL)
		cmd_usage(stderr, ce);
	else
		usage(stderr);
	return EXIT_USAGE;
}

static void
hold_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct hold *h = arg;

	event_base_loopbreak(h->base);
}

static void
hold_end(struct hold *h, int rc)
{
	h->rc = rc;
	event_base_loopbreak(h->base);
}

static void
hold_opened(struct commreg_async *a, int status, const char *msg, void *arg)
{
	if (status != 0) {
		fprintf(stderr, "commreg: %s\n", msg);
		hold_end(arg, EXIT_REGISTRY);
	}
}

static void
hold_error(struct commreg_async *a, const char *msg, void *arg)
{
	fprintf(stderr, "commreg: %s\n", msg);
}

static void
hold_opts(struct cmd_ctx *ctx, struct hold *h, struct commreg_async_opts *o)
{
	memset(o, 0, sizeof *o);
	o->home = ctx->opts.home;
	o->commregd = ctx->opts.commregd;
	o->on_open = hold_opened;
	o->on_error = hold_error;
	o->arg = h;
}

/*
 * Run the loop until SIGTERM, SIGINT or SIGHUP (exit 0) or until the
 * command gives up (h->rc).
 */
static int
hold_run(struct hold *h)
{
	struct event *sig[3];
	int signo[3] = {SIGTERM, SIGINT, SIGHUP}, i;

	for (i = 0; i < 3; i++) {
		sig[i] = evsignal_new(h->base, signo[i], hold_signal, h);
		evsignal_add(sig[i], NULL);
	}
	event_base_dispatch(h->base);
	commreg_async_close(h->a);
	for (i = 0; i < 3; i++)
		event_free(sig[i]);
	event_base_free(h->base);
	return h->rc;
}

static int
hold_open(struct hold *h, const struct commreg_async_opts *o)
{
	char err[1024];

	if ((h->base = event_base_new()) == NULL) {
		fprintf(stderr, "commreg: event_base_new failed\n");
		return -1;
	}
	if ((h->a = commreg_async_open(h->base, o, err, sizeof err)) == NULL) {
		fprintf(stderr, "commreg: %s\n", err);
		event_base_free(h->base);
		return -1;
	}
	return 0;
}

static struct commreg_client *
ctx_open(struct cmd_ctx *ctx)
{
	struct commreg_client *c;
	char err[1024];

	if ((c = commreg_open(&ctx->opts, err, sizeof err)) == NULL)
		fprintf(stderr, "commreg: %s\n", err);
	return c;
}

/* Words as a Tcl list, so names with spaces ("foo #2") stay one word. */
static void
print_list_line(const char *const *w, size_t n)
{
	struct tbuf line;
	size_t i;

	tbuf_init(&line);
	for (i = 0; i < n; i++)
		tl_append_str(&line, 0, w[i]);
	tbuf_addc(&line, '\n');
	fwrite(line.p, 1, line.len, stdout);
	fflush(stdout);
	tbuf_free(&line);
}

static char *shown(const char *);

static void
print_change(const char *op, const struct commreg_entry *e)
{
	char port[16] = "", *name = shown(e->name), *host = shown(e->host);
	const char *w[4];

	if (e->port > 0)
		snprintf(port, sizeof port, "%d", e->port);
	w[0] = op;
	w[1] = name;
	w[2] = port;
	w[3] = host;
	print_list_line(w, 4);
	free(name);
	free(host);
}

/* ---- list --------------------------------------------------------------- */

static void
format_since(long long since, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)since;

	if (since <= 0 || localtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/*
 * What a registry says is printed to a person's terminal: anything that
 * is not printable there (control characters, escapes, C1 codes, bytes
 * that are not UTF-8) is shown as \xNN, and a backslash as \\, so no
 * name can forge a line or move the cursor.  In place: s is replaced by
 * its shown form (it belongs to the entry, freed with it).
 */
static char *
shown(const char *in)
{
	const unsigned char *p = (const unsigned char *)in;
	struct tbuf b;
	size_t i, n, len = strlen(in);
	char *out;

	tbuf_init(&b);
	for (i = 0; i < len; i += n) {
		n = utf8_char_len(p + i, len - i);
		if (n > 1 && !(p[i] == 0xc2 && p[i + 1] < 0xa0)) {
			tbuf_add(&b, p + i, n);
			continue;
		}
		n = 1;
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			tbuf_addc(&b, (char)p[i]);
		else if (p[i] == '\\')
			tbuf_adds(&b, "\\\\");
		else
			tbuf_printf(&b, "\\x%02x", p[i]);
	}
	if ((out = strdup(b.len > 0 ? b.p : "")) == NULL)
		fatal("strdup");
	tbuf_free(&b);
	return out;
}

static void
make_shown(char **s)
{
	char *t = shown(*s);

	free(*s);
	*s = t;
}

static void
entry_shown(struct commreg_entry *e)
{
	make_shown(&e->name);
	make_shown(&e->host);
	make_shown(&e->user);
}

/*
 * NAME PORT HOST PID SINCE; with a USER column before PID when some
 * entry says whose it is (host and global entries, docs/protocol.md §4).
 */
static void
print_table(struct commreg_entry *v, size_t n)
{
	int wname = 4, whost = 4, wuser = 0, w;
	char port[16], pid[24], since[32], user[300];
	size_t i;

	for (i = 0; i < n; i++) {
		entry_shown(&v[i]);
		if ((w = (int)strlen(v[i].name)) > wname)
			wname = w;
		if ((w = (int)strlen(v[i].host)) > whost)
			whost = w;
		if (v[i].user[0] != '\0' &&
		    (w = (int)strlen(v[i].user)) > wuser)
			wuser = w;
	}
	if (wuser > 0 && wuser < 4)
		wuser = 4;
	snprintf(user, sizeof user, "%-*s ", wuser, "USER");
	printf("%-*s %5s %-*s %s%7s %s\n", wname, "NAME", "PORT", whost, "HOST",
	    wuser > 0 ? user : "", "PID", "SINCE");
	for (i = 0; i < n; i++) {
		snprintf(port, sizeof port, "%d", v[i].port);
		snprintf(pid, sizeof pid, "%ld", v[i].pid);
		format_since(v[i].since, since, sizeof since);
		snprintf(user, sizeof user, "%-*s ", wuser,
		    v[i].user[0] != '\0' ? v[i].user : "-");
		printf("%-*s %5s %-*s %s%7s %s\n", wname, v[i].name,
		    v[i].port > 0 ? port : "-", whost,
		    v[i].host[0] != '\0' ? v[i].host : "-",
		    wuser > 0 ? user : "", v[i].pid >= 0 ? pid : "-", since);
	}
}

static int
cmd_list(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_client *c;
	struct commreg_entry *v;
	size_t n;
	int rc;

	if ((c = ctx_open(ctx)) == NULL)
		return EXIT_REGISTRY;
	rc = commreg_list(c, argc > 0 ? argv[0] : NULL, &v, &n);
	if (rc != 0) {
		fprintf(stderr, "commreg: %s\n", commreg_error(c));
		commreg_close(c);
		return EXIT_REGISTRY;
	}
	/* Commreg/List replies sorted by name (docs/protocol.md §4). */
	print_table(v, n);
	commreg_entries_free(v, n);
	commreg_close(c);
	return 0;
}

/* ---- lookup ---------------------------------------------------------------
 */

static int
cmd_lookup(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_client *c;
	struct tbuf id;
	int rc;

	if ((c = ctx_open(ctx)) == NULL)
		return EXIT_REGISTRY;
	tbuf_init(&id);
	if ((rc = commreg_lookup(c, argv[0], &id)) == 0) {
		char *text = shown(id.p);

		/* A Bind's data is the client's own: shown, never raw. */
		printf("%s\n", text);
		free(text);
	} else
		fprintf(stderr, "commreg: %s\n", commreg_error(c));
	tbuf_free(&id);
	commreg_close(c);
	return rc == 0 ? 0 : EXIT_REGISTRY;
}

/*
 * port: the registry's port, checked (the kernel says the registry's
 * socket is ours, its Hello that it is a registry), for clients that do
 * not check it themselves: tcllib's nameserv and nns.
 */
static int
cmd_port(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_client *c;
	const struct commreg_hello *h;

	if ((c = ctx_open(ctx)) == NULL)
		return EXIT_REGISTRY;
	h = commreg_hello_info(c);
	printf("%d\n", h->port);
	commreg_close(c);
	return 0;
}

/* ---- register -------------------------------------------------------------
 */

static int
parse_port(const char *s, int *port)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

static void
register_done(struct commreg_async *a, struct commreg_reg *r, int status,
    const char *msg, void *arg)
{
	if (status != 0) {
		fprintf(stderr, "commreg: %s\n", msg);
		hold_end(arg, EXIT_REGISTRY);
		return;
	}
	printf("%s\n", msg);
	fflush(stdout);
}

static void
register_lost(struct commreg_async *a, const char *why, void *arg)
{
	if (commreg_async_orphaned(a))
		fprintf(stderr, "commreg: %s\n", why);
	else
		fprintf(stderr,
		    "commreg: registry lost (%s); finding a new "
		    "one\n",
		    why);
}

/*
 * The name is gone for good: its private registry is (never re-elected),
 * or the host gateway withdrew it (a host or global registration).
 */
static void
register_gone(struct commreg_async *a, struct commreg_reg *r, const char *why,
    void *arg)
{
	if (commreg_async_orphaned(a))
		fprintf(stderr, "commreg: lost \"%s\"\n", commreg_reg_name(r));
	else
		fprintf(stderr, "commreg: withdrawn \"%s\": %s\n",
		    commreg_reg_name(r), why);
	hold_end(arg, EXIT_REGISTRY);
}

static void
register_regained(struct commreg_async *a, int port, int hosted, void *arg)
{
	fprintf(stderr, "commreg: registry regained on port %d\n", port);
}

/* The serial was taken while there was no registry: say the new name. */
static void
register_renamed(struct commreg_async *a, struct commreg_reg *r,
    const char *oldname, const char *newname, void *arg)
{
	printf("renamed %s %s\n", oldname, newname);
	fflush(stdout);
}

static int
cmd_register(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_async_opts o;
	struct hold h;
	int port;

	if (parse_port(argv[1], &port) == -1)
		return usage_error(ctx->ce,
		    "bad port \"%s\" (want "
		    "1-65535)",
		    argv[1]);
	memset(&h, 0, sizeof h);
	hold_opts(ctx, &h, &o);
	o.on_lost = register_lost;
	o.on_regained = register_regained;
	o.on_renamed = register_renamed;
	o.on_reg_lost = register_gone;
	if (hold_open(&h, &o) == -1)
		return EXIT_REGISTRY;
	/* The name lives as long as the handle: hold it. */
	if (commreg_async_register_scope(h.a, argv[0], port, ctx->host,
	        ctx->scope, register_done, &h) == NULL) {
		fprintf(stderr, "commreg: cannot register \"%s\"\n", argv[0]);
		h.rc = EXIT_REGISTRY;
		commreg_async_close(h.a);
		event_base_free(h.base);
		return h.rc;
	}
	return hold_run(&h);
}

/* ---- watch ----------------------------------------------------------------
 */

static void
watch_lost(struct commreg_async *a, const char *why, void *arg)
{
	printf("# registry lost\n");
	fflush(stdout);
	log_debug("registry lost: %s", why);
}

/*
 * Lines for the consumer's view: the snapshot as adds; after a failover
 * a comment, then the library's resync events (what changed meanwhile).
 */
static void
watch_event(struct commreg_async *a, struct commreg_watch *w,
    const struct commreg_watch_event *ev, void *arg)
{
	size_t i;

	switch (ev->what) {
	case COMMREG_WATCH_SNAPSHOT:
		if (ev->resync) {
			printf("# registry regained on port %d\n",
			    commreg_async_port(a));
			fflush(stdout);
			break;
		}
		for (i = 0; i < ev->n; i++)
			print_change("add", &ev->entries[i]);
		break;
	case COMMREG_WATCH_ADD:
		print_change("add", ev->entry);
		break;
	case COMMREG_WATCH_REMOVE:
		print_change("remove", ev->entry);
		break;
	case COMMREG_WATCH_ERROR:
		fprintf(stderr, "commreg: %s\n", ev->message);
		hold_end(arg, EXIT_REGISTRY);
		break;
	}
}

static int
cmd_watch(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_async_opts o;
	struct hold h;

	memset(&h, 0, sizeof h);
	hold_opts(ctx, &h, &o);
	o.on_lost = watch_lost;
	if (hold_open(&h, &o) == -1)
		return EXIT_REGISTRY;
	commreg_async_watch(h.a, argc > 0 ? argv[0] : "*", watch_event, &h);
	return hold_run(&h);
}

/* ---- status ---------------------------------------------------------------
 */

static void
format_uptime(long long s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s >= 86400)
		snprintf(buf, len, "%lldd %02lldh %02lldm %02llds", s / 86400,
		    s % 86400 / 3600, s % 3600 / 60, s % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %02lldm %02llds", s / 3600,
		    s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm %02llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%llds", s);
}

static void
print_count(const char *what, long long v)
{
	if (v >= 0)
		printf("%-12s %lld\n", what, v);
	else
		printf("%-12s -\n", what);
}

static int
cmd_status(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_client *c;
	const struct commreg_hello *h;
	struct commreg_stats st;
	char err[1024], up[64], host[256];

	ctx->opts.no_spawn = 1;
	if ((c = commreg_open(&ctx->opts, err, sizeof err)) == NULL) {
		if (errno != ESRCH) {
			fprintf(stderr, "commreg: %s\n", err);
			return EXIT_REGISTRY;
		}
		if (election_hostname(host, sizeof host) == -1)
			snprintf(host, sizeof host, "this host");
		printf("no registry is running on %s\n", host);
		log_debug("%s", err);
		return EXIT_NONE;
	}
	if (commreg_stats(c, &st) != 0) {
		fprintf(stderr, "commreg: %s\n", commreg_error(c));
		commreg_close(c);
		return EXIT_REGISTRY;
	}
	h = commreg_hello_info(c);
	format_uptime(st.uptime, up, sizeof up);
	printf("%-12s commreg %s (protocol %d, scope %s)\n", "registry",
	    h->version, h->protocol, h->scope);
	printf("%-12s %d\n", "port", h->port);
	printf("%-12s %ld\n", "pid", h->pid);
	printf("%-12s %s (uid %ld)\n", "owner", h->owner, h->uid);
	printf("%-12s %s\n", "host", h->host);
	print_count("entries", st.entries);
	print_count("connections", st.connections);
	print_count("watches", st.watches);
	print_count("messages", st.messages);
	print_count("refused", st.refused);
	printf("%-12s %s\n", "uptime", up);
	commreg_close(c);
	return 0;
}

/* ---- run -----------------------------------------------------------------
 */

static volatile sig_atomic_t run_child;

static void
run_forward(int sig)
{
	if (run_child > 0)
		kill(run_child, sig);
}

/* The registry's child side: its own process group (a ^C meant for the
 * command must not stop the room under it), gone with us (PDEATHSIG). */
static void
run_exec_registry(const char *path, int semi, int fd, pid_t parent,
    const char *home)
{
	char *argv[6];
	int n = 0, null;

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(EXIT_RUN_SELF);
	if (dup2(fd, 3) == -1)
		_exit(EXIT_RUN_SELF);
	if ((null = open("/dev/null", O_RDONLY)) != -1 && null != 0) {
		dup2(null, 0);
		close(null);
	}
	if (home != NULL)
		setenv("HOME", home, 1);
	argv[n++] = (char *)"commregd";
	argv[n++] = (char *)(semi ? "--semi" : "--private");
	argv[n++] = (char *)"--ready-fd";
	argv[n++] = (char *)"3";
	if (log_level() >= LOG_LVL_DEBUG)
		argv[n++] = (char *)"-v";
	argv[n] = NULL;
	if (strchr(path, '/') != NULL)
		execv(path, argv);
	else
		execvp(path, argv);
	fprintf(stderr, "commreg run: cannot run %s: %s\n", path,
	    strerror(errno));
	_exit(EXIT_RUN_SELF);
}

/* Read "PORT\n" from the registry within RUN_START_MS; -1 if it died. */
static int
run_read_port(int fd)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	char line[16];
	size_t len = 0;
	ssize_t n;
	char *end;
	long v;

	while (len < sizeof line - 1) {
		if (poll(&pfd, 1, RUN_START_MS) <= 0)
			return -1;
		if ((n = read(fd, line + len, sizeof line - 1 - len)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		if (memchr(line, '\n', len) != NULL)
			break;
	}
	line[len] = '\0';
	v = strtol(line, &end, 10);
	if (end == line || *end != '\n' || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

static void
run_stop_registry(pid_t pid)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	int i;

	kill(pid, SIGTERM);
	for (i = 0; i < RUN_STOP_MS / 10; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		nanosleep(&ts, NULL);
	}
	log_warnx("the private registry (pid %ld) did not stop; killing it",
	    (long)pid);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/*
 * commreg run [--semi] [--] CMD [ARG...]: a private registry for CMD and
 * everything it starts, as dbus-run-session gives a bus.  Parsed here,
 * not by cmd_run: everything from CMD on is CMD's.
 */
static int
cmd_private_run(struct cmd_ctx *ctx, int argc, char **argv)
{
	const struct cmd_entry *ce = ctx->ce;
	struct sigaction sa, ign;
	char path[PATH_MAX], num[16];
	pid_t self = getpid(), reg, cmd;
	int i, semi = 0, pfd[2], port, status;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--semi") == 0)
			semi = 1;
		else if (strcmp(argv[i], "-h") == 0 ||
		         strcmp(argv[i], "--help") == 0) {
			cmd_usage(stdout, ce);
			return 0;
		} else
			return usage_error(ce, "run: unknown option %s",
			    argv[i]);
	}
	if (i >= argc)
		return usage_error(ce, "run: no command given");

	client_commregd_path(ctx->opts.commregd, path, sizeof path);
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		fprintf(stderr, "commreg run: pipe: %s\n", strerror(errno));
		return EXIT_RUN_SELF;
	}
	if ((reg = fork()) == -1) {
		fprintf(stderr, "commreg run: fork: %s\n", strerror(errno));
		return EXIT_RUN_SELF;
	}
	if (reg == 0)
		run_exec_registry(path, semi, pfd[1], self, ctx->opts.home);
	close(pfd[1]);
	port = run_read_port(pfd[0]);
	close(pfd[0]);
	if (port == -1) {
		fprintf(stderr,
		    "commreg run: the private registry (%s) did not "
		    "start\n",
		    path);
		run_stop_registry(reg);
		return EXIT_RUN_SELF;
	}
	snprintf(num, sizeof num, "%d", port);
	setenv(COMMREG_ENV_REGPORT, num, 1);
	log_debug("%s registry on port %d, pid %ld",
	    semi ? "semi-private" : "private", port, (long)reg);

	/* As system(3): the terminal's ^C and ^\ are for the command;
	 * a TERM or HUP sent to us is passed on to it. */
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, NULL);
	sigaction(SIGQUIT, &ign, NULL);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = run_forward;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if ((cmd = fork()) == -1) {
		fprintf(stderr, "commreg run: fork: %s\n", strerror(errno));
		run_stop_registry(reg);
		return EXIT_RUN_SELF;
	}
	if (cmd == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[i], argv + i);
		fprintf(stderr, "commreg run: %s: %s\n", argv[i],
		    strerror(errno));
		_exit(errno == ENOENT ? EXIT_RUN_NOTFOUND : EXIT_RUN_NOEXEC);
	}
	run_child = cmd;
	while (waitpid(cmd, &status, 0) == -1) {
		if (errno != EINTR) {
			status = EXIT_RUN_SELF << 8;
			break;
		}
	}
	run_child = 0;
	run_stop_registry(reg);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* ---- table and option parsing ------------------------------------------- */

static const struct cmd_entry cmd_table[] = {
    {"list", "[PATTERN]", "list registered applications",
        "List the applications registered with the user registry whose\n"
        "names match PATTERN (Tcl string match; default *), sorted by\n"
        "name, as a table: NAME PORT HOST PID SINCE.  When some entry\n"
        "belongs to another user (scope host or global, named NAME@USER)\n"
        "a USER column comes before PID.\n",
        0, 1, 0, cmd_list},
    {"lookup", "NAME", "print the comm id (PORT HOST) of NAME",
        "Print the comm id \"PORT HOST\" of the application NAME; exit 1\n"
        "if no application has that name.\n",
        1, 1, 0, cmd_lookup},
    {"port", "", "print the registry's port, checked",
        "Print the port of the registry in use (TCL_COMM_REGPORT's, else\n"
        "the user registry, started if none runs), once the kernel has\n"
        "said that its socket is this user's and its Hello that it is a\n"
        "registry: the port to give tcllib's nameserv or nns, which read\n"
        "no port file and check nothing (docs/security.md).\n",
        0, 0, 0, cmd_port},
    {"register", "NAME PORT [--host H] [--scope user|host|global]",
        "register NAME and hold it until killed",
        "Register NAME for the comm port PORT (on host H, default\n"
        "localhost), print the assigned name (\"NAME\" or \"NAME #2\"...)\n"
        "and hold the registration until SIGTERM or SIGINT (exit 0).\n"
        "When the registry goes away, a new one is elected on the same\n"
        "port and the name registered again with its serial; if that\n"
        "serial was taken meanwhile, \"renamed OLD NEW\" is printed.\n"
        "\n"
        "--scope user (the default) registers for this user only; host\n"
        "and global make it visible to every user of the host: the user\n"
        "registry asks the host gateway, whose policy may refuse it\n"
        "(\"refused by the host gateway: REASON\", exit 1).  If the\n"
        "gateway withdraws it later, commreg says on stderr\n"
        "  commreg: withdrawn \"NAME\": REASON\n"
        "and exits 1.\n",
        2, 2, 1, cmd_register},
    {"watch", "[PATTERN]", "print registrations as they come and go",
        "Print \"add NAME PORT HOST\" for each application matching\n"
        "PATTERN (default *) now, then \"add ...\" or \"remove ...\" for\n"
        "each change, one Tcl list per line, until killed.  When the\n"
        "registry goes away: \"# registry lost\", and once a new one is\n"
        "elected \"# registry regained on port N\" followed by the adds\n"
        "and removes that happened meanwhile.\n",
        0, 1, 0, cmd_watch},
    {"status", "", "show the running registry",
        "Show the port, pid, owner, entries, connections and uptime of\n"
        "the user registry.  Does not start one: exit 3 when none runs.\n",
        0, 0, 0, cmd_status},
    {"run", "[--semi] [--] CMD [ARG...]", "run CMD with a private registry",
        "Start a private registry, run CMD with TCL_COMM_REGPORT set to\n"
        "its port, and when CMD exits stop the registry and exit with\n"
        "CMD's status (128+N if a signal N ended it; 125 if the registry\n"
        "did not start, 126/127 if CMD cannot be run).  Applications\n"
        "started by CMD register there and see only each other; with\n"
        "--semi they also see the user registry's applications, which do\n"
        "not see them.  See docs/private.md.\n",
        1, 1 << 20, 0, cmd_private_run},
    {NULL, NULL, NULL, NULL, 0, 0, 0, NULL},
};

enum {
	OPT_HOME = 256,
	OPT_COMMREGD,
	OPT_HOST,
	OPT_SCOPE,
};

static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"verbose", no_argument, NULL, 'v'},
    {"home", required_argument, NULL, OPT_HOME},
    {"commregd", required_argument, NULL, OPT_COMMREGD},
    {"host", required_argument, NULL, OPT_HOST},
    {"scope", required_argument, NULL, OPT_SCOPE},
    {NULL, 0, NULL, 0},
};

/*
 * Options common to all levels.  Returns -1 when the option is not one
 * of them, 0 when taken.
 */
static int
common_option(struct cmd_ctx *ctx, int ch)
{
	switch (ch) {
	case 'v':
		log_init("commreg", LOG_LVL_DEBUG);
		return 0;
	case OPT_HOME:
		ctx->opts.home = optarg;
		return 0;
	case OPT_COMMREGD:
		ctx->opts.commregd = optarg;
		return 0;
	}
	return -1;
}

/* getopt said '?' (unknown) or ':' (value missing). */
static int
bad_option(const struct cmd_entry *ce, int ch, char **argv)
{
	if (ch == ':')
		return usage_error(ce, "option %s needs a value",
		    argv[optind - 1]);
	if (ch == OPT_HOST || ch == OPT_SCOPE)
		return usage_error(ce, "option --%s is only for register",
		    ch == OPT_HOST ? "host" : "scope");
	if (ch == '?' && optopt != 0)
		return usage_error(ce, "unknown option -%c", optopt);
	return usage_error(ce, "unknown option %s", argv[optind - 1]);
}

/* The scopes a registration may ask for (docs/protocol.md §4); private
 * is what a private registry serves (and gives without asking). */
static int
scope_valid(const char *s)
{
	return strcmp(s, "user") == 0 || strcmp(s, "host") == 0 ||
	       strcmp(s, "global") == 0 || strcmp(s, "private") == 0;
}

/* Options of a subcommand may come anywhere after its name. */
static int
cmd_run(struct cmd_ctx *ctx, const struct cmd_entry *ce, int argc, char **argv)
{
	int ch, nargs;

	optind = 0; /* glibc: start over, permuting */
	opterr = 0;
	while (
	    (ch = getopt_long(argc, argv, ":hv", long_options, NULL)) != -1) {
		if (ch == 'h') {
			cmd_usage(stdout, ce);
			return 0;
		}
		if (common_option(ctx, ch) == 0)
			continue;
		if (ch == OPT_HOST && ce->reg_opts) {
			ctx->host = optarg;
			continue;
		}
		if (ch == OPT_SCOPE && ce->reg_opts) {
			if (!scope_valid(optarg))
				return usage_error(ce,
				    "bad scope \"%s\" (want user, host or "
				    "global)",
				    optarg);
			ctx->scope = optarg;
			continue;
		}
		return bad_option(ce, ch, argv);
	}
	nargs = argc - optind;
	ctx->ce = ce;
	if (nargs < ce->minargs)
		return usage_error(ce, "%s: too few arguments", ce->name);
	if (nargs > ce->maxargs)
		return usage_error(ce, "%s: too many arguments", ce->name);
	return ce->exec(ctx, nargs, argv + optind);
}

int
main(int argc, char **argv)
{
	struct cmd_ctx ctx;
	const struct cmd_entry *ce;
	int ch;

	memset(&ctx, 0, sizeof ctx);
	log_init("commreg", LOG_LVL_WARN);
	/* Out of memory ends the command with a message, as it always did;
	 * the library it uses must not change that. */
	tbuf_oom_fatal(true);
	opterr = 0;
	/* '+': stop at the command name; what follows is the command's. */
	while (
	    (ch = getopt_long(argc, argv, "+:hv", long_options, NULL)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (common_option(&ctx, ch) == 0)
			continue;
		return bad_option(NULL, ch, argv);
	}
	if (optind >= argc)
		return usage_error(NULL, "%s", "no command given");
	for (ce = cmd_table; ce->name != NULL; ce++) {
		if (strcmp(ce->name, argv[optind]) != 0)
			continue;
		if (ce->exec == cmd_private_run) {
			ctx.ce = ce;
			return ce->exec(&ctx, argc - optind, argv + optind);
		}
		return cmd_run(&ctx, ce, argc - optind, argv + optind);
	}
	return usage_error(NULL, "unknown command \"%s\"", argv[optind]);
}
