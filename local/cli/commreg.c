/*
 * commreg: the command-line face of the user registry.
 *
 *   commreg list [PATTERN] [--json]    who is registered
 *   commreg lookup NAME                the comm id of NAME
 *   commreg port                       the registry's port, checked
 *   commreg register NAME PORT [--host H] [--scope user|host|global]
 *                                      hold a registration until killed
 *   commreg watch [PATTERN] [--json]   registrations as they come and go
 *   commreg status [--json] [--prometheus FILE]
 *                                      is a registry running, and how
 *   commreg stop                       stop the registry
 *   commreg gateway-status [--json] [--prometheus FILE]
 *                                      the host gateway's counters
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
 * What a registry says reaches the terminal escaped, in cells that stay
 * one Tcl word each (shown.c); --json is the machine form (json.c).
 *
 * Exit status: 0 success, 1 the registry said no or could not be reached
 * (or, for register, the name was lost or withdrawn),
 * 2 usage error (one line on stderr: what, and where help is), 3 (status,
 * stop, gateway-status) no registry or gateway is running; run exits
 * with its command's status (docs/private.md).
 */
#define _GNU_SOURCE /* pipe2 */
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>

#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <ctype.h>
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
#include <jansson.h>

#include <pwd.h>

#include "cli.h"
#include "client.h"
#include "election.h"
#include "log.h"
#include "safepath.h"
#include "tbuf.h"
#include "tcllist.h"
#include "utf8.h"

/* The largest reply or event taken from the registry (see main). */
#define CLI_MAX_MESSAGE (256 * 1024 * 1024)

/* run: as env(1), nice(1) and the shells do. */
#define EXIT_RUN_SELF     125 /* the private registry did not start */
#define EXIT_RUN_NOEXEC   126
#define EXIT_RUN_NOTFOUND 127
/* How long run waits for its registry to listen, and to stop. */
#define RUN_START_MS 10000
#define RUN_STOP_MS  2000

struct cmd_entry {
	const char *name;
	const char *args;
	const char *summary;
	const char *help;
	int minargs;
	int maxargs;
	int opts; /* CMD_OPT_*: the options it takes besides -h and -v */
	int (*exec)(struct cmd_ctx *, int, char **);
};

/* A holding command (register, watch): its loop and how it ends. */
struct hold {
	struct event_base *base;
	struct commreg_async *a;
	struct cmd_ctx *ctx;
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
		/* A long synopsis gets a line of its own. */
		if (strlen(buf) > 30)
			fprintf(fp, "  %s\n  %-30s %s\n", buf, "", ce->summary);
		else
			fprintf(fp, "  %-30s %s\n", buf, ce->summary);
	}
	fprintf(fp,
	    "\noptions:\n"
	    "  -h, --help         this text (after a command: its help)\n"
	    "  --version          the version of commreg\n"
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

/*
 * One line on stderr: what was wrong, and where the help is (the whole
 * usage would bury the one word that was wrong).
 */
static int
usage_error(const struct cmd_entry *ce, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "commreg: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (ce != NULL)
		fprintf(stderr, "; try \"commreg %s --help\"\n", ce->name);
	else
		fprintf(stderr, "; try \"commreg --help\"\n");
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
	h->ctx = ctx;
	o->home = ctx->opts.home;
	o->commregd = ctx->opts.commregd;
	o->max_message = CLI_MAX_MESSAGE;
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

struct commreg_client *
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

const char *
self_user(char *buf, size_t len)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw != NULL)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "uid %lu", (unsigned long)getuid());
	return buf;
}

/* watch --json: {"event":"add",...the entry} on one line. */
static void
print_change_json(const char *op, const struct commreg_entry *e)
{
	json_t *o = json_object(), *ent = json_entry(e);

	json_object_set_new(o, "event", json_string(op));
	json_object_update(o, ent);
	json_decref(ent);
	json_print(o, true);
}

static void
print_change(struct cmd_ctx *ctx, const char *op, const struct commreg_entry *e)
{
	char port[16] = "", *name, *host;
	const char *w[4];

	if (ctx->json) {
		print_change_json(op, e);
		return;
	}
	name = shown(e->name);
	host = shown(e->host);

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

/*
 * NAME PORT HOST PID SINCE; with a USER column before PID when some
 * entry says whose it is (host and global entries, docs/protocol.md §4).
 * Each cell is shown (shown.c) as a Tcl list element, so a row is a Tcl
 * list of its columns and a name with spaces stays one column.
 */
enum { COL_NAME, COL_PORT, COL_HOST, COL_USER, COL_PID, COL_SINCE, NCOL };

static void
print_table(const struct commreg_entry *v, size_t n)
{
	static const char *const head[NCOL] = {"NAME", "PORT", "HOST", "USER",
	    "PID", "SINCE"};
	/* Numbers to the right, as ls and ps do. */
	static const int right[NCOL] = {0, 1, 0, 0, 1, 0};
	char ***cell, num[32];
	int width[NCOL], c, w, pad;
	bool user = false;
	size_t i, r;

	for (i = 0; i < n; i++)
		if (v[i].user[0] != '\0')
			user = true;
	if ((cell = calloc(n + 1, sizeof *cell)) == NULL)
		fatal("calloc");
	for (r = 0; r <= n; r++)
		if ((cell[r] = calloc(NCOL, sizeof **cell)) == NULL)
			fatal("calloc");
	for (c = 0; c < NCOL; c++)
		if ((cell[0][c] = strdup(head[c])) == NULL)
			fatal("strdup");
	for (i = 0; i < n; i++) {
		char **row = cell[i + 1];

		row[COL_NAME] = shown_cell(v[i].name);
		snprintf(num, sizeof num, "%d", v[i].port);
		row[COL_PORT] = strdup(v[i].port > 0 ? num : "-");
		row[COL_HOST] =
		    shown_cell(v[i].host[0] != '\0' ? v[i].host : "-");
		row[COL_USER] =
		    shown_cell(v[i].user[0] != '\0' ? v[i].user : "-");
		snprintf(num, sizeof num, "%ld", v[i].pid);
		row[COL_PID] = strdup(v[i].pid >= 0 ? num : "-");
		time_iso(v[i].since, num, sizeof num);
		row[COL_SINCE] = strdup(num);
		for (c = 0; c < NCOL; c++)
			if (row[c] == NULL)
				fatal("strdup");
	}
	for (c = 0; c < NCOL; c++) {
		width[c] = 0;
		for (r = 0; r <= n; r++)
			if ((w = shown_width(cell[r][c])) > width[c])
				width[c] = w;
	}
	for (r = 0; r <= n; r++) {
		struct tbuf line;

		tbuf_init(&line);
		for (c = 0; c < NCOL; c++) {
			if (c == COL_USER && !user)
				continue;
			if (line.len > 0)
				tbuf_addc(&line, ' ');
			pad = width[c] - shown_width(cell[r][c]);
			if (right[c])
				tbuf_printf(&line, "%*s", pad, "");
			tbuf_adds(&line, cell[r][c]);
			/* The last column is not padded: no trailing blanks. */
			if (!right[c] && c != NCOL - 1)
				tbuf_printf(&line, "%*s", pad, "");
		}
		tbuf_addc(&line, '\n');
		fwrite(line.p, 1, line.len, stdout);
		tbuf_free(&line);
		for (c = 0; c < NCOL; c++)
			free(cell[r][c]);
		free(cell[r]);
	}
	free(cell);
}

static void
print_json_list(const struct commreg_entry *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_entry(&v[i]));
	json_print(a, false);
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
	if (ctx->json)
		print_json_list(v, n);
	else
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
 * not check it themselves: tcllib's nameserv and nns.  The port printed
 * is the one connected to, not the Hello's word for it; the two must
 * agree.
 */
static int
cmd_port(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_client *c;
	const struct commreg_hello *h;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int port = -1;

	if ((c = ctx_open(ctx)) == NULL)
		return EXIT_REGISTRY;
	h = commreg_hello_info(c);
	memset(&ss, 0, sizeof ss);
	if (getpeername(commreg_fd(c), (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (port != h->port) {
		fprintf(stderr,
		    "commreg: the registry connected to on port %d says its "
		    "port is %d\n",
		    port, h->port);
		commreg_close(c);
		return EXIT_REGISTRY;
	}
	printf("%d\n", port);
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
	struct hold *h = arg;
	json_t *o;

	log_debug("registry lost: %s", why);
	if (!h->ctx->json) {
		printf("# registry lost\n");
		fflush(stdout);
		return;
	}
	o = json_object();
	json_object_set_new(o, "event", json_string("lost"));
	json_object_set_new(o, "reason", json_text(why, strlen(why)));
	json_print(o, true);
}

/*
 * Lines for the consumer's view: the snapshot as adds; after a failover
 * a comment, then the library's resync events (what changed meanwhile).
 */
static void
watch_event(struct commreg_async *a, struct commreg_watch *w,
    const struct commreg_watch_event *ev, void *arg)
{
	struct cmd_ctx *ctx = ((struct hold *)arg)->ctx;
	size_t i;

	switch (ev->what) {
	case COMMREG_WATCH_SNAPSHOT:
		if (ev->resync && ctx->json) {
			json_t *o = json_object();

			json_object_set_new(o, "event",
			    json_string("regained"));
			json_object_set_new(o, "port",
			    json_integer(commreg_async_port(a)));
			json_print(o, true);
			break;
		}
		if (ev->resync) {
			printf("# registry regained on port %d\n",
			    commreg_async_port(a));
			fflush(stdout);
			break;
		}
		for (i = 0; i < ev->n; i++)
			print_change(ctx, "add", &ev->entries[i]);
		break;
	case COMMREG_WATCH_ADD:
		print_change(ctx, "add", ev->entry);
		break;
	case COMMREG_WATCH_REMOVE:
		print_change(ctx, "remove", ev->entry);
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
			return usage_error(ce, "run: unknown option \"%s\"",
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

/*
 * cookie: the secret of the distributed registry (docs/distributed.md),
 * ~/.tcl/comm/cookie, made when missing (48 random bytes, 0600, never
 * through a link), checked as the tree's other files when present; its
 * path is printed either way.
 */
static int
cmd_cookie(struct cmd_ctx *ctx, int argc, char **argv)
{
	char regdir[PATH_MAX], host[256], pf[PATH_MAX], path[PATH_MAX + 16];
	char err[1024];
	unsigned char key[48];
	const char *home;
	int fd;

	if ((home = client_home_dir(ctx->opts.home)) == NULL ||
	    client_registry_path(home, regdir, sizeof regdir, host, sizeof host,
	        pf, sizeof pf, err, sizeof err) == -1) {
		fprintf(stderr, "commreg: %s\n",
		    home == NULL ? "no home directory" : err);
		return EXIT_REGISTRY;
	}
	/* regdir is ~/.tcl/comm/registry: the cookie is beside it. */
	snprintf(path, sizeof path, "%.*s/cookie",
	    (int)(strrchr(regdir, '/') - regdir), regdir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd != -1) {
		if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key ||
		    write(fd, key, sizeof key) != (ssize_t)sizeof key ||
		    fsync(fd) == -1) {
			fprintf(stderr, "commreg: %s: %s\n", path,
			    strerror(errno));
			close(fd);
			unlink(path);
			return EXIT_REGISTRY;
		}
		close(fd);
	} else if (errno != EEXIST ||
	           (fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	                                O_CLOEXEC)) == -1 ||
	           safe_file_fd(fd, path, getuid(), err, sizeof err) == -1) {
		if (fd == -1)
			fprintf(stderr, "commreg: %s: %s\n", path,
			    errno == ELOOP ? "is a symbolic link; refusing to "
			                     "follow it (remove it)"
			                   : strerror(errno));
		else {
			fprintf(stderr, "commreg: %s\n", err);
			close(fd);
		}
		return EXIT_REGISTRY;
	} else
		close(fd);
	printf("%s\n", path);
	return 0;
}

/* ---- table and option parsing ------------------------------------------- */

static const struct cmd_entry cmd_table[] = {
    {"list", "[PATTERN] [--json]", "list registered applications",
        "List the applications registered with the user registry whose\n"
        "names match PATTERN (Tcl string match; default *), sorted by\n"
        "name, as a table: NAME PORT HOST PID SINCE (ISO 8601, UTC).\n"
        "When some entry belongs to another user (scope host or global,\n"
        "named NAME@USER) a USER column comes before PID.  Each row is a\n"
        "Tcl list: a name with spaces is one braced word ({foo #2}), and\n"
        "characters a terminal would act on are shown as \\xNN.\n"
        "\n"
        "--json: a JSON array of the entries, every field of each\n"
        "(name base serial port host data scope user uid pid since).\n",
        0, 1, CMD_OPT_JSON, cmd_list},
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
        2, 2, CMD_OPT_REG, cmd_register},
    {"watch", "[PATTERN] [--json]", "print registrations as they come and go",
        "Print \"add NAME PORT HOST\" for each application matching\n"
        "PATTERN (default *) now, then \"add ...\" or \"remove ...\" for\n"
        "each change, one Tcl list per line, until killed.  When the\n"
        "registry goes away: \"# registry lost\", and once a new one is\n"
        "elected \"# registry regained on port N\" followed by the adds\n"
        "and removes that happened meanwhile.\n"
        "\n"
        "--json: one JSON object per line: {\"event\":\"add\"} or\n"
        "\"remove\" with the entry's fields (as list --json), and\n"
        "{\"event\":\"lost\",\"reason\":...}, "
        "{\"event\":\"regained\",\"port\":N}.\n",
        0, 1, CMD_OPT_JSON, cmd_watch},
    {"status", "[--json] [--prometheus FILE]", "show the running registry",
        "Show the version, port, pid, owner, entries, connections,\n"
        "uptime and start time of the registry in use (TCL_COMM_REGPORT's,\n"
        "else the user registry).  Does not start one: when none runs,\n"
        "say why on stderr and exit 3.\n"
        "\n"
        "--json: the same as one JSON object (\"running\": false and the\n"
        "\"reason\" when none runs).\n"
        "--prometheus FILE: write the numbers as a Prometheus text file\n"
        "(for node-exporter's textfile collector; \"-\": stdout), replaced\n"
        "atomically, mode 0644: commreg_registry_up (0 when none runs),\n"
        "_entries, _connections, _watches, _messages_total,\n"
        "_refused_connections_total, _uptime_seconds,\n"
        "_start_time_seconds, labelled with the user.\n",
        0, 0, CMD_OPT_JSON | CMD_OPT_PROM, cmd_status},
    {"stop", "", "stop the registry",
        "Stop the registry in use (TCL_COMM_REGPORT's, else the user\n"
        "registry) as SIGTERM does: it gives up its port and port file,\n"
        "and its applications elect a new one as after any loss.  The pid\n"
        "signalled is the one the kernel says holds the registry's end of\n"
        "the connection, and only if it is commregd (a registry hosted\n"
        "inside an application is left alone).  Waits up to 5 s for it\n"
        "to end.  Exit 3 when none runs, 1 when it could not be stopped.\n"
        "A standby (commregd --standby, as the systemd user unit runs it)\n"
        "takes over at once on the same port; to stop both:\n"
        "systemctl --user stop commregd.\n",
        0, 0, 0, cmd_stop},
    {"gateway-status", "[--json] [--prometheus FILE] [--config-dir DIR]",
        "show the host gateway's counters",
        "Ask the host gateway (commgwd; its socket is named by the host\n"
        "configuration: --config-dir, else $TCL_COMM_CONFIG_DIR, else\n"
        "/etc/tcl/comm) for its counters: entries, connections,\n"
        "registrations admitted, refused and withdrawn, federation links.\n"
        "Exit 3 when no gateway is configured or none answers.\n"
        "\n"
        "--json: one JSON object.  --prometheus FILE: a Prometheus text\n"
        "file (as for status): commreg_gateway_up,\n"
        "commreg_gateway_registrations_admitted_total, _refused_total,\n"
        "_withdrawn_total, ..., commreg_gateway_link_ready and\n"
        "commreg_gateway_link_entries per federation link.\n",
        0, 0, CMD_OPT_JSON | CMD_OPT_PROM | CMD_OPT_CONFDIR,
        cmd_gateway_status},
    {"run", "[--semi] [--] CMD [ARG...]", "run CMD with a private registry",
        "Start a private registry, run CMD with TCL_COMM_REGPORT set to\n"
        "its port, and when CMD exits stop the registry and exit with\n"
        "CMD's status (128+N if a signal N ended it; 125 if the registry\n"
        "did not start, 126/127 if CMD cannot be run).  Applications\n"
        "started by CMD register there and see only each other; with\n"
        "--semi they also see the user registry's applications, which do\n"
        "not see them.  See docs/private.md.\n",
        1, 1 << 20, 0, cmd_private_run},
    {"cookie", "", "make the distributed registry's secret if missing",
        "Make ~/.tcl/comm/cookie (48 random bytes, mode 0600) if it does\n"
        "not exist, and print its path.  With it, the user registries of\n"
        "every host that shares this home link to one another and make\n"
        "one registry (docs/distributed.md).\n",
        0, 0, 0, cmd_cookie},
    {NULL, NULL, NULL, NULL, 0, 0, 0, NULL},
};

enum {
	OPT_HOME = 256,
	OPT_COMMREGD,
	OPT_HOST,
	OPT_SCOPE,
	OPT_VERSION,
	OPT_JSON,
	OPT_PROM,
	OPT_CONFDIR,
};

static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"home", required_argument, NULL, OPT_HOME},
    {"commregd", required_argument, NULL, OPT_COMMREGD},
    {"host", required_argument, NULL, OPT_HOST},
    {"scope", required_argument, NULL, OPT_SCOPE},
    {"json", no_argument, NULL, OPT_JSON},
    {"prometheus", required_argument, NULL, OPT_PROM},
    {"config-dir", required_argument, NULL, OPT_CONFDIR},
    {NULL, 0, NULL, 0},
};

/* The options that only some subcommands take, and which. */
static const struct {
	int ch, flag;
	const char *name;
} cmd_options[] = {
    {OPT_HOST, CMD_OPT_REG, "--host"},
    {OPT_SCOPE, CMD_OPT_REG, "--scope"},
    {OPT_JSON, CMD_OPT_JSON, "--json"},
    {OPT_PROM, CMD_OPT_PROM, "--prometheus"},
    {OPT_CONFDIR, CMD_OPT_CONFDIR, "--config-dir"},
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

/* getopt said '?' (unknown) or ':' (value missing), or the option is
 * one of another subcommand's. */
static int
bad_option(const struct cmd_entry *ce, int ch, char **argv)
{
	size_t i;

	if (ch == ':')
		return usage_error(ce, "option \"%s\" needs a value",
		    argv[optind - 1]);
	const struct option *lo;
	char *opt;
	int rc;

	for (i = 0; i < sizeof cmd_options / sizeof cmd_options[0]; i++) {
		if (cmd_options[i].ch != ch)
			continue;
		if (ce == NULL)
			return usage_error(ce,
			    "option \"%s\" goes after a command that takes it",
			    cmd_options[i].name);
		return usage_error(ce, "%s takes no option \"%s\"", ce->name,
		    cmd_options[i].name);
	}
	if (ch == '?' && optopt != 0 && optopt < 256 && isprint(optopt))
		return usage_error(ce, "unknown option \"-%c\"", optopt);
	/* A flag given a value (--json=1): getopt sets optopt to its val. */
	for (lo = long_options; ch == '?' && optopt != 0 && lo->name != NULL;
	     lo++)
		if (lo->val == optopt)
			return usage_error(ce, "option \"--%s\" takes no value",
			    lo->name);
	/* As typed, but never raw to the terminal. */
	opt = shown(argv[optind - 1]);
	rc = usage_error(ce, "unknown option \"%s\"", opt);
	free(opt);
	return rc;
}

/* An option this subcommand takes: 0 when taken, -1 when not its. */
static int
cmd_option(struct cmd_ctx *ctx, const struct cmd_entry *ce, int ch)
{
	size_t i;

	for (i = 0; i < sizeof cmd_options / sizeof cmd_options[0]; i++)
		if (cmd_options[i].ch == ch &&
		    !(ce->opts & cmd_options[i].flag))
			return -1;
	switch (ch) {
	case OPT_HOST:
		ctx->host = optarg;
		return 0;
	case OPT_JSON:
		ctx->json = true;
		return 0;
	case OPT_PROM:
		ctx->prom = optarg;
		return 0;
	case OPT_CONFDIR:
		ctx->config_dir = optarg;
		return 0;
	}
	return -1;
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
		if (ch == OPT_VERSION) {
			printf("commreg (commreg) %s\n", COMMREG_VERSION);
			return 0;
		}
		if (cmd_option(ctx, ce, ch) == 0)
			continue;
		if (ch == OPT_SCOPE && (ce->opts & CMD_OPT_REG)) {
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
		return usage_error(ce, "%s: too many arguments (\"%s\")",
		    ce->name, argv[optind + ce->maxargs]);
	return ce->exec(ctx, nargs, argv + optind);
}

int
main(int argc, char **argv)
{
	struct cmd_ctx ctx;
	const struct cmd_entry *ce;
	char *name;
	int ch, rc;

	memset(&ctx, 0, sizeof ctx);
	/* A person who lists or watches everything on a host with a hundred
	 * thousand names gets them: about 170 bytes each, past the library's
	 * 16 MiB default. */
	ctx.opts.max_message = CLI_MAX_MESSAGE;
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
		if (ch == OPT_VERSION) {
			printf("commreg (commreg) %s\n", COMMREG_VERSION);
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
	name = shown(argv[optind]);
	rc = usage_error(NULL, "unknown command \"%s\"", name);
	free(name);
	return rc;
}
