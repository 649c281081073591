/*
 * bench_compare: commregd side by side with what a Tcl developer could use
 * instead (issue 4; docs/performance-compare.md).
 *
 * Targets, each started and stopped here by PID, all on this machine:
 *   commregd      this project's registry (comm v3, Commreg/1 and nns)
 *   nnsd          tcllib's name server, same nns requests
 *   dbus-daemon   a private bus of our own (unix socket), GetNameOwner /
 *                 RequestName / AddMatch on NameOwnerChanged
 *   echo floor    bench_echod: answers a message of commregd's request size
 *                 with one of commregd's reply size, doing nothing else
 *
 * One client for all of them, in C, with the same shape of loop: requests
 * are formatted before the clock starts (comm messages with the project's
 * wire library, D-Bus messages marshalled once with libdbus), so what is
 * timed is write, wait, read and framing of the reply, for every target.
 * D-Bus is spoken raw on its socket (SASL EXTERNAL, then marshalled
 * messages), so libdbus's dispatch machinery costs nothing on our side.
 *
 * Phases: A steady state with 1,000 names held (round trips interleaved
 * request by request across targets, `Search *`, pipelined, 64 clients;
 * throughput rounds rotate the order of targets), B registrations, C watch
 * fan-out, D memory (VmHWM) and idle connections.  Prints a markdown table
 * of medians and p99, then the targets as ratios measured in this
 * run with PASS or MISS, and exits 0 once the run is complete (MISS
 * included).  It also says how much CPU other processes took meanwhile,
 * since on a shared machine that decides how much the numbers mean.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include "commwire.h"
#include "tbuf.h"
#include "tcllist.h"

#ifndef COMMREGD_PATH
#define COMMREGD_PATH "commregd"
#endif
#ifndef ECHOD_PATH
#define ECHOD_PATH "bench_echod"
#endif

/* ------------------------------------------------------------------ */
/* Options and small helpers                                            */

enum tkind { T_COMMREGD, T_NNSD, T_DBUS, T_ECHO, NT };
static const char *const tname[NT] = {"commregd", "nnsd", "dbus-daemon",
    "echo floor"};

static struct {
	const char *commregd, *echod, *nnsd, *dbus;
	const char *wrap; /* command put before commregd (profilers) */
	int rounds;       /* steady-state rounds (phase A) */
	int reg_rounds;   /* registration rounds (phase B) */
	int fan_reps;     /* triggers per target and pattern kind (phase C) */
	double slice;     /* seconds per measure per target per round */
	int names;        /* names held during phase A */
	int watchers;
	int idle; /* idle connections (phase D) */
	int mem_names;
	const char *phases;
	const char *only; /* phase A: only these measures (profiling) */
	const char *workdir;
	int verbose;
	int pin; /* 0 never, 1 for the idle test (default), 2 always */
} opt = {
    COMMREGD_PATH,
    ECHOD_PATH,
    "/usr/bin/nnsd",
    "dbus-daemon",
    NULL,
    8,
    3,
    15,
    0.15,
    1000,
    1000,
    10000,
    10000,
    "ABCD",
    NULL,
    NULL,
    0,
    1,
};

/* CPUs for pinning: the client on the first CPU we may use, servers on
 * the last.  -1: fewer than two CPUs, never pinned. */
static int cpu_client = -1, cpu_server = -1;
static cpu_set_t cpus_all;

static void
pin_to(pid_t pid, int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(pid, sizeof set, &set);
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void stop_all(void);

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench_compare: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	stop_all();
	exit(1);
}

static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;
	static double t0;

	if (t0 == 0)
		t0 = now_us();
	fprintf(stderr, "[%6.1fs] ", (now_us() - t0) / 1e6);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (p == NULL)
		die("out of memory");
	return p;
}

/* Samples: microseconds, medians and p99 by nearest rank. */
struct samples {
	double *v;
	size_t n, cap;
};

static void
sample_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		if ((s->v = realloc(s->v, s->cap * sizeof *s->v)) == NULL)
			die("out of memory");
	}
	s->v[s->n++] = x;
}

static int
dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(struct samples *s, double p)
{
	size_t k;

	if (s->n == 0)
		return NAN;
	qsort(s->v, s->n, sizeof *s->v, dcmp);
	k = (size_t)ceil(p / 100.0 * (double)s->n);
	if (k < 1)
		k = 1;
	return s->v[k - 1];
}

static double
median(struct samples *s)
{
	return pct(s, 50);
}

/* ------------------------------------------------------------------ */
/* Targets: start, stop, memory                                         */

struct target {
	enum tkind kind;
	pid_t pid;
	int port;       /* TCP targets */
	char sock[512]; /* dbus: unix socket path */
	char dir[256];
	bool running;
};

#define MAX_STARTED 16
static struct target *started[MAX_STARTED];

static void
target_stop(struct target *t)
{
	int i, st;

	if (!t->running)
		return;
	kill(-t->pid, SIGTERM); /* the group spawn() made for it */
	for (i = 0; i < 300; i++) {
		if (waitpid(t->pid, &st, WNOHANG) == t->pid)
			break;
		usleep(10000);
	}
	if (i == 300) {
		kill(-t->pid, SIGKILL);
		waitpid(t->pid, &st, 0);
	}
	t->running = false;
	for (i = 0; i < MAX_STARTED; i++)
		if (started[i] == t)
			started[i] = NULL;
}

static void
stop_all(void)
{
	int i;

	for (i = 0; i < MAX_STARTED; i++)
		if (started[i] != NULL)
			target_stop(started[i]);
}

/* Run argv with stdout on a pipe (returned in *outfd) and stderr to a log
 * file; the child dies with us (PR_SET_PDEATHSIG). */
static pid_t
spawn(char *const argv[], int *outfd, const char *errlog)
{
	int pfd[2], fd;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		die("pipe: %s", strerror(errno));
	if ((pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Its own process group, so that stopping it also stops what
		 * a --wrap command (strace, perf) started under it. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (opt.pin == 2)
			pin_to(0, cpu_server);
		dup2(pfd[1], 1);
		if ((fd = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0600)) !=
		    -1)
			dup2(fd, 2);
		if ((fd = open("/dev/null", O_RDONLY)) != -1)
			dup2(fd, 0);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	*outfd = pfd[0];
	return pid;
}

static int
read_line(int fd, char *buf, size_t n, int timeout_ms)
{
	size_t len = 0;
	struct pollfd p = {fd, POLLIN, 0};
	double end = now_us() + timeout_ms * 1e3;
	ssize_t r;

	while (len + 1 < n) {
		int left = (int)((end - now_us()) / 1e3);

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		if ((r = read(fd, buf + len, 1)) <= 0)
			return -1;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return 0;
}

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1)
		die("finding a free port: %s", strerror(errno));
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
tcp_probe(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	close(fd);
	return ok;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(text, fp) == EOF || fclose(fp) == EOF)
		die("writing %s: %s", path, strerror(errno));
}

static char workdir[200];
static int instance_seq;

static void
target_start(struct target *t, enum tkind kind)
{
	char log[600], line[600], portbuf[16];
	int outfd = -1, i;

	memset(t, 0, sizeof *t);
	t->kind = kind;
	snprintf(t->dir, sizeof t->dir, "%s/%s-%d", workdir,
	    kind == T_COMMREGD ? "commregd"
	    : kind == T_NNSD   ? "nnsd"
	    : kind == T_DBUS   ? "dbus"
	                       : "echo",
	    ++instance_seq);
	if (mkdir(t->dir, 0700) == -1)
		die("mkdir %s: %s", t->dir, strerror(errno));
	snprintf(log, sizeof log, "%s/stderr.log", t->dir);

	switch (kind) {
	case T_COMMREGD: {
		char *argv[32], *w = NULL, *tok, *save;
		int n = 0;

		/* --wrap "valgrind --tool=callgrind": the words go first. */
		if (opt.wrap != NULL && (w = strdup(opt.wrap)) != NULL)
			for (tok = strtok_r(w, " ", &save);
			     tok != NULL && n < 26;
			     tok = strtok_r(NULL, " ", &save))
				argv[n++] = tok;
		argv[n++] = (char *)opt.commregd;
		argv[n++] = "--home";
		argv[n++] = t->dir;
		/* The harness's connections hold names and stay quiet for
		 * minutes without answering the liveness ping, as nnsd and
		 * dbus-daemon never ask them to: no pings here. */
		argv[n++] = "--liveness";
		argv[n++] = "0";
		argv[n] = NULL;
		t->pid = spawn(argv, &outfd, log);
		free(w);
		if (read_line(outfd, line, sizeof line, 10000) == -1)
			die("commregd did not print its port (see %s)", log);
		t->port = atoi(line);
		break;
	}
	case T_NNSD: {
		char *argv[] = {(char *)opt.nnsd, "-port", portbuf, NULL};

		t->port = free_port();
		snprintf(portbuf, sizeof portbuf, "%d", t->port);
		t->pid = spawn(argv, &outfd, log);
		for (i = 0; i < 500 && !tcp_probe(t->port); i++)
			usleep(10000);
		if (i == 500)
			die("nnsd did not listen on %d (see %s)", t->port, log);
		break;
	}
	case T_DBUS: {
		char conf[2048], path[600], arg[700];
		char *argv[] = {(char *)opt.dbus, arg, "--nofork",
		    "--print-address", NULL};

		snprintf(t->sock, sizeof t->sock, "%s/bus", t->dir);
		/* The session bus's own limits (essentially none), without
		 * its includes and service directories. */
		snprintf(conf, sizeof conf,
		    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus "
		    "Bus Configuration 1.0//EN\"\n \"http://www.freedesktop."
		    "org/standards/dbus/1.0/busconfig.dtd\">\n"
		    "<busconfig>\n  <type>session</type>\n"
		    "  <listen>unix:path=%s</listen>\n"
		    "  <auth>EXTERNAL</auth>\n"
		    "  <policy context=\"default\">\n"
		    "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
		    "    <allow eavesdrop=\"true\"/>\n"
		    "    <allow own=\"*\"/>\n  </policy>\n"
		    "  <limit name=\"max_incoming_bytes\">1000000000</limit>\n"
		    "  <limit name=\"max_outgoing_bytes\">1000000000</limit>\n"
		    "  <limit name=\"max_message_size\">1000000000</limit>\n"
		    "  <limit name=\"auth_timeout\">240000</limit>\n"
		    "  <limit name=\"max_completed_connections\">100000"
		    "</limit>\n"
		    "  <limit name=\"max_incomplete_connections\">10000"
		    "</limit>\n"
		    "  <limit name=\"max_connections_per_user\">100000"
		    "</limit>\n"
		    "  <limit name=\"max_names_per_connection\">50000"
		    "</limit>\n"
		    "  <limit name=\"max_match_rules_per_connection\">50000"
		    "</limit>\n"
		    "  <limit name=\"max_replies_per_connection\">50000"
		    "</limit>\n</busconfig>\n",
		    t->sock);
		snprintf(path, sizeof path, "%s/bus.conf", t->dir);
		write_file(path, conf);
		snprintf(arg, sizeof arg, "--config-file=%s", path);
		t->pid = spawn(argv, &outfd, log);
		if (read_line(outfd, line, sizeof line, 10000) == -1)
			die("dbus-daemon did not print its address (see %s)",
			    log);
		break;
	}
	case T_ECHO: {
		char *argv[] = {(char *)opt.echod, NULL};

		t->pid = spawn(argv, &outfd, log);
		if (read_line(outfd, line, sizeof line, 10000) == -1)
			die("bench_echod did not print its port (see %s)", log);
		t->port = atoi(line);
		break;
	}
	default:
		abort();
	}
	if (outfd != -1)
		close(outfd);
	t->running = true;
	for (i = 0; i < MAX_STARTED; i++)
		if (started[i] == NULL) {
			started[i] = t;
			break;
		}
	if (opt.verbose)
		note("started %s pid %d", tname[kind], (int)t->pid);
}

/* A field of /proc/PID/status in kB (VmHWM: peak resident set). */
static long
proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	long v = -1;
	FILE *fp;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, fp) != NULL)
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return v;
}

static int
proc_nfds(pid_t pid)
{
	char cmd[96];
	FILE *fp;
	int n = -1;

	snprintf(cmd, sizeof cmd, "ls /proc/%d/fd 2>/dev/null | wc -l",
	    (int)pid);
	if ((fp = popen(cmd, "r")) != NULL) {
		if (fscanf(fp, "%d", &n) != 1)
			n = -1;
		pclose(fp);
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Requests, formatted before any clock starts                          */

enum op {
	OP_PING,       /* cheapest valid request */
	OP_LOOKUP,     /* commregd Commreg/Lookup, nnsd Search NAME,
	                  dbus GetNameOwner */
	OP_NNS_SEARCH, /* Search NAME (comm targets) */
	OP_SEARCH_ALL, /* Search *; dbus ListNames */
	OP_REGISTER,   /* Commreg/Register, Bind, RequestName */
	OP_UNREGISTER, /* Commreg/Unregister, Release, ReleaseName */
	OP_WATCH,      /* Commreg/Watch, Search/Continuous/Start, AddMatch */
	OP_BROADCAST,  /* echo floor only: one line to every connection */
};

/* Sizes of commregd's messages, which the echo floor reproduces. */
struct echo_size {
	size_t req, rep;
};

struct reqset {
	struct tbuf b;
	size_t *off; /* request k is b.p[off[k] .. off[k+1]) */
	size_t n, cap;
	enum tkind kind;
};

static void
reqset_init(struct reqset *rs, enum tkind kind)
{
	memset(rs, 0, sizeof *rs);
	tbuf_init(&rs->b);
	rs->kind = kind;
	rs->cap = 16;
	rs->off = xcalloc(rs->cap + 1, sizeof *rs->off);
}

static void
reqset_free(struct reqset *rs)
{
	tbuf_free(&rs->b);
	free(rs->off);
	memset(rs, 0, sizeof *rs);
}

static void
reqset_mark(struct reqset *rs)
{
	if (rs->n + 1 >= rs->cap) {
		rs->cap *= 2;
		if ((rs->off = realloc(rs->off,
		         (rs->cap + 1) * sizeof *rs->off)) == NULL)
			die("out of memory");
	}
	rs->off[++rs->n] = rs->b.len;
}

static void
comm_req(struct tbuf *out, const char *kind, int64_t serial,
    const char *const *w, size_t n)
{
	struct tbuf payload;

	tbuf_init(&payload);
	comm_format_command(&payload, w, NULL, n);
	comm_format_message(out, kind, serial, payload.p, payload.len);
	tbuf_free(&payload);
}

static uint32_t dbus_serial_next = 100;

static void
dbus_req(struct tbuf *out, const char *method, int type1, const void *a1,
    int type2, const void *a2)
{
	DBusMessage *m;
	char *buf;
	int len;

	m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
	    DBUS_INTERFACE_DBUS, method);
	if (m == NULL)
		die("dbus_message_new_method_call");
	if (type1 != DBUS_TYPE_INVALID && !dbus_message_append_args(m, type1,
	                                      a1, type2, a2, DBUS_TYPE_INVALID))
		die("dbus_message_append_args");
	dbus_message_set_serial(m, dbus_serial_next++);
	if (!dbus_message_marshal(m, &buf, &len))
		die("dbus_message_marshal");
	tbuf_add(out, buf, (size_t)len);
	dbus_free(buf);
	dbus_message_unref(m);
}

/* D-Bus names for our comm names: "bench-app-0042" is
 * "org.bench.bench_app_0042"; a glob watch "fanglob*" is the namespace
 * "org.bench.fanglob", and "fanglob-3" in it is "org.bench.fanglob.n3". */
static void
dbus_name(char *out, size_t n, const char *name)
{
	size_t i, k;

	if (strncmp(name, "fanglob", 7) == 0) {
		if (name[7] == '*' || name[7] == '\0')
			snprintf(out, n, "org.bench.fanglob");
		else
			snprintf(out, n, "org.bench.fanglob.n%s", name + 8);
		return;
	}
	k = (size_t)snprintf(out, n, "org.bench.");
	for (i = 0; name[i] != '\0' && k + 1 < n; i++)
		out[k++] = name[i] == '-' ? '_' : name[i];
	out[k] = '\0';
}

/* The echo floor's message: size req, asking for rep bytes back. */
static void
echo_req(struct tbuf *out, struct echo_size sz)
{
	char head[32];
	size_t h = (size_t)snprintf(head, sizeof head, "%zu ", sz.rep);

	tbuf_add(out, head, h);
	while (h + 1 < sz.req) {
		tbuf_addc(out, 'x');
		h++;
	}
	tbuf_addc(out, '\n');
}

/* commregd's reply to a request, as it would format it (same library). */
static size_t
comm_reply_size(int64_t serial, const char *result, size_t rlen)
{
	struct tbuf b;
	size_t n;

	tbuf_init(&b);
	comm_format_reply(&b, "reply", serial, 0, result, rlen, NULL);
	n = b.len;
	tbuf_free(&b);
	return n;
}

static int64_t comm_serial_next = 1;

/* The size of the Commreg/Event commregd sends a watcher for an entry
 * registered by Commreg/Register NAME 4000 (docs/protocol.md §4). */
static size_t
comm_event_size(const char *name)
{
	struct tbuf d, payload, msg;
	const char *w[4];
	size_t lens[4], n;

	tbuf_init(&d);
	tbuf_init(&payload);
	tbuf_init(&msg);
	tl_append_str(&d, 0, "name");
	tl_append_str(&d, 0, name);
	tl_append_str(&d, 0, "serial");
	tl_append_int(&d, 0, 1);
	tl_append_str(&d, 0, "base");
	tl_append_str(&d, 0, name);
	tl_append_str(&d, 0, "port");
	tl_append_int(&d, 0, 4000);
	tl_append_str(&d, 0, "host");
	tl_append_str(&d, 0, "localhost");
	tl_append_str(&d, 0, "data");
	tl_append_str(&d, 0, "4000 localhost");
	tl_append_str(&d, 0, "scope");
	tl_append_str(&d, 0, "user");
	tl_append_str(&d, 0, "uid");
	tl_append_int(&d, 0, (long long)getuid());
	tl_append_str(&d, 0, "pid");
	tl_append_str(&d, 0, "");
	tl_append_str(&d, 0, "since");
	tl_append_int(&d, 0, (long long)time(NULL));
	w[0] = "Commreg/Event";
	w[1] = "lit";
	w[2] = "add";
	w[3] = d.p;
	lens[0] = strlen(w[0]);
	lens[1] = 3;
	lens[2] = 3;
	lens[3] = d.len;
	comm_format_command(&payload, w, lens, 4);
	comm_format_message(&msg, "async", 19, payload.p, payload.len);
	n = msg.len;
	tbuf_free(&d);
	tbuf_free(&payload);
	tbuf_free(&msg);
	return n;
}

static void names_result(struct tbuf *out, int nnames);

/*
 * Append one request.  name: the comm-side name (or tag for OP_WATCH);
 * arg: port for OP_REGISTER, pattern for OP_WATCH in parg.
 */
static void
reqset_add(struct reqset *rs, enum op op, const char *name, int port,
    const char *parg)
{
	char data[64], dn[300], rule[600];
	const char *w[4];
	int64_t ser = comm_serial_next++;

	snprintf(data, sizeof data, "%d localhost", port);
	switch (rs->kind) {
	case T_COMMREGD:
	case T_NNSD: {
		bool cr = rs->kind == T_COMMREGD;
		const char *kind = "send";
		size_t n = 0;

		switch (op) {
		case OP_PING:
			w[n++] = "ProtocolVersion";
			break;
		case OP_LOOKUP:
			w[n++] = cr ? "Commreg/Lookup" : "Search";
			w[n++] = name;
			break;
		case OP_NNS_SEARCH:
			w[n++] = "Search";
			w[n++] = name;
			break;
		case OP_SEARCH_ALL:
			w[n++] = "Search";
			w[n++] = "*";
			break;
		case OP_REGISTER:
			if (cr) {
				snprintf(data, sizeof data, "%d", port);
				w[n++] = "Commreg/Register";
			} else
				w[n++] = "Bind";
			w[n++] = name;
			w[n++] = data;
			break;
		case OP_UNREGISTER:
			w[n++] = cr ? "Commreg/Unregister" : "Release";
			if (cr)
				w[n++] = name;
			break;
		case OP_WATCH:
			w[n++] =
			    cr ? "Commreg/Watch" : "Search/Continuous/Start";
			w[n++] = name;
			w[n++] = parg;
			if (!cr)
				kind =
				    "async"; /* as tcllib's client sends it */
			break;
		case OP_BROADCAST:
			die("broadcast is the echo floor's");
		}
		comm_req(&rs->b, kind, ser, w, n);
		break;
	}
	case T_DBUS: {
		const char *pn = dn, *pr = rule;
		uint32_t flags = DBUS_NAME_FLAG_DO_NOT_QUEUE;

		dbus_name(dn, sizeof dn, name ? name : "");
		switch (op) {
		case OP_PING:
			dbus_req(&rs->b, "GetId", DBUS_TYPE_INVALID, NULL,
			    DBUS_TYPE_INVALID, NULL);
			break;
		case OP_LOOKUP:
		case OP_NNS_SEARCH:
			dbus_req(&rs->b, "GetNameOwner", DBUS_TYPE_STRING, &pn,
			    DBUS_TYPE_INVALID, NULL);
			break;
		case OP_SEARCH_ALL:
			dbus_req(&rs->b, "ListNames", DBUS_TYPE_INVALID, NULL,
			    DBUS_TYPE_INVALID, NULL);
			break;
		case OP_REGISTER:
			dbus_req(&rs->b, "RequestName", DBUS_TYPE_STRING, &pn,
			    DBUS_TYPE_UINT32, &flags);
			break;
		case OP_UNREGISTER:
			dbus_req(&rs->b, "ReleaseName", DBUS_TYPE_STRING, &pn,
			    DBUS_TYPE_INVALID, NULL);
			break;
		case OP_WATCH:
			dbus_name(dn, sizeof dn, parg);
			snprintf(rule, sizeof rule,
			    "type='signal',sender='"
			    "org.freedesktop.DBus',interface='org.freedesktop."
			    "DBus',member='NameOwnerChanged',%s='%s'",
			    strchr(parg, '*') ? "arg0namespace" : "arg0", dn);
			dbus_req(&rs->b, "AddMatch", DBUS_TYPE_STRING, &pr,
			    DBUS_TYPE_INVALID, NULL);
			break;
		case OP_BROADCAST:
			die("broadcast is the echo floor's");
		}
		break;
	}
	case T_ECHO: {
		/* commregd's request and reply for the same operation. */
		struct reqset cr;
		struct echo_size sz;
		struct tbuf res;

		if (op == OP_BROADCAST) {
			/* The size of commregd's Commreg/Event for it. */
			size_t len = comm_event_size(name), i;

			tbuf_addc(&rs->b, 'B');
			for (i = 2; i < len; i++)
				tbuf_addc(&rs->b, 'x');
			tbuf_addc(&rs->b, '\n');
			break;
		}
		reqset_init(&cr, T_COMMREGD);
		comm_serial_next--;
		reqset_add(&cr, op, name, port, parg);
		sz.req = cr.b.len;
		reqset_free(&cr);
		tbuf_init(&res);
		switch (op) {
		case OP_LOOKUP:
			tbuf_adds(&res, data);
			break;
		case OP_SEARCH_ALL:
			names_result(&res, opt.names);
			break;
		case OP_REGISTER:
			tbuf_adds(&res, name);
			break;
		case OP_PING:
			tbuf_adds(&res, "1");
			break;
		default:
			break;
		}
		sz.rep = comm_reply_size(ser, res.p, res.len);
		tbuf_free(&res);
		echo_req(&rs->b, sz);
		break;
	}
	default:
		abort();
	}
	reqset_mark(rs);
}

/* Names held during the steady-state rounds. */
static void
held_name(char *buf, size_t n, int i)
{
	snprintf(buf, n, "bench-app-%04d", i);
}

static int
held_port(int i)
{
	return 20000 + i;
}

/* The result commregd gives to Search * over the held names. */
static void
names_result(struct tbuf *out, int nnames)
{
	char name[64], data[64];
	int i;

	for (i = 0; i < nnames; i++) {
		held_name(name, sizeof name, i);
		snprintf(data, sizeof data, "%d localhost", held_port(i));
		tl_append_str(out, 0, name);
		tl_append_str(out, 0, data);
	}
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

struct conn {
	int fd;
	enum tkind kind;
	struct tbuf in;
	size_t off;
	size_t chunk; /* bytes to make room for before each read */
	struct comm_framer fr;
	long replies, events, errors;
	bool want_owner; /* dbus: replies are RequestName's, must be 1 */
	long sent;
	bool dead;
	char lasterr[160];
};

static struct tlist g_msg;

static void
conn_seterr(struct conn *c, const char *p, size_t len)
{
	c->errors++;
	snprintf(c->lasterr, sizeof c->lasterr, "%.*s",
	    (int)(len > 150 ? 150 : len), p);
}

/* Parse every complete message in c->in; count replies and events. */
static void
conn_parse(struct conn *c)
{
	const char *err;
	size_t consumed;

	switch (c->kind) {
	case T_COMMREGD:
	case T_NNSD:
		for (;;) {
			enum comm_frame_status st;
			const struct tl_elem *pl;

			st = comm_frame_next(&c->fr, c->in.p + c->off,
			    c->in.len - c->off, &consumed, &g_msg, &err);
			if (st == COMM_FRAME_MORE)
				break;
			if (st == COMM_FRAME_ERROR)
				die("%s sent a bad message: %s", tname[c->kind],
				    err);
			c->off += consumed;
			if (g_msg.n != 3)
				continue;
			if (strcmp(g_msg.v[0].p, "reply") == 0) {
				c->replies++;
				pl = &g_msg.v[2];
				if (pl->len < 14 ||
				    memcmp(pl->p, "return -code 0", 14) != 0 ||
				    (pl->len > 14 && pl->p[14] != ' '))
					conn_seterr(c, pl->p, pl->len);
			} else if (strcmp(g_msg.v[0].p, "async") == 0)
				c->events++;
		}
		break;
	case T_DBUS:
		for (;;) {
			const unsigned char *h =
			    (const unsigned char *)c->in.p + c->off;
			size_t avail = c->in.len - c->off;
			uint32_t body, fields;
			size_t total;

			if (avail < 16)
				break;
			if (h[0] != 'l')
				die("dbus-daemon: big-endian message?");
			memcpy(&body, h + 4, 4);
			memcpy(&fields, h + 12, 4);
			total = 16 + (((size_t)fields + 7) & ~(size_t)7) + body;
			if (avail < total)
				break;
			if (h[1] == DBUS_MESSAGE_TYPE_METHOD_RETURN) {
				c->replies++;
				if (c->want_owner) {
					/* RequestName's answer: 1 is "now the
					 * primary owner"; 3 "already owned". */
					size_t b = 16 + (((size_t)fields + 7) &
					                    ~(size_t)7);
					uint32_t v = 0;

					if (body >= 4)
						memcpy(&v, h + b, 4);
					if (v !=
					    DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER)
						conn_seterr(c,
						    "RequestName did "
						    "not make us the owner",
						    37);
				}
			} else if (h[1] == DBUS_MESSAGE_TYPE_ERROR) {
				c->replies++;
				conn_seterr(c, "D-Bus error reply", 17);
			} else if (h[1] == DBUS_MESSAGE_TYPE_SIGNAL)
				c->events++;
			c->off += total;
		}
		break;
	case T_ECHO: {
		const char *p = c->in.p + c->off, *end = c->in.p + c->in.len;
		const char *lf, *last = NULL;

		while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			if (*p == 'B')
				c->events++; /* a broadcast (fan-out floor) */
			else
				c->replies++;
			last = lf;
			p = lf + 1;
		}
		if (last != NULL)
			c->off = (size_t)(last + 1 - c->in.p);
		break;
	}
	default:
		abort();
	}
	if (c->off == c->in.len)
		c->off = c->in.len = 0;
	else if (c->off > 65536) {
		memmove(c->in.p, c->in.p + c->off, c->in.len - c->off);
		c->in.len -= c->off;
		c->off = 0;
	}
}

/* One read; -1 on EOF or error (the connection is dead). */
static int
conn_fill(struct conn *c)
{
	ssize_t r;

	tbuf_reserve(&c->in, c->chunk);
	do
		r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		c->dead = true;
		return -1;
	}
	c->in.len += (size_t)r;
	return 0;
}

static int
conn_write_try(struct conn *c, const char *p, size_t len)
{
	ssize_t r;

	while (len > 0) {
		r = write(c->fd, p, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static void
conn_write(struct conn *c, const char *p, size_t len)
{
	if (conn_write_try(c, p, len) == -1)
		die("writing to %s: %s", tname[c->kind], strerror(errno));
}

/* Send requests k .. k+cnt-1 of rs (cycling), in as few writes as the
 * ring allows. */
static void
conn_send(struct conn *c, const struct reqset *rs, long k, long cnt)
{
	while (cnt > 0) {
		size_t i = (size_t)(k % (long)rs->n);
		size_t m = rs->n - i < (size_t)cnt ? rs->n - i : (size_t)cnt;

		conn_write(c, rs->b.p + rs->off[i],
		    rs->off[i + m] - rs->off[i]);
		k += (long)m;
		cnt -= (long)m;
	}
}

/* Block until c has seen `replies` replies (and `events` events). */
static void
conn_wait(struct conn *c, long replies, long events)
{
	struct pollfd p = {c->fd, POLLIN, 0};

	conn_parse(c);
	while (c->replies < replies || c->events < events) {
		if (poll(&p, 1, 20000) <= 0)
			die("%s: no answer within 20 s (have %ld of %ld "
			    "replies, %ld of %ld events)",
			    tname[c->kind], c->replies, replies, c->events,
			    events);
		if (conn_fill(c) == -1)
			die("%s closed the connection (%s)", tname[c->kind],
			    c->lasterr);
		conn_parse(c);
	}
}

static void
conn_close(struct conn *c)
{
	/* RST, not FIN: thousands of connections closed in a burst must
	 * not leave thousands of TIME_WAIT ports behind. */
	struct linger l = {1, 0};

	if (c->fd != -1) {
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
		close(c->fd);
	}
	tbuf_free(&c->in);
	c->fd = -1;
}

/* The SASL exchange and Hello of a raw D-Bus client, and comm's offer. */
static char dbus_hello[512];
static size_t dbus_hello_len;

static void
dbus_hello_init(void)
{
	struct tbuf b;

	tbuf_init(&b);
	tbuf_adds(&b, "BEGIN\r\n");
	dbus_req(&b, "Hello", DBUS_TYPE_INVALID, NULL, DBUS_TYPE_INVALID, NULL);
	if (b.len > sizeof dbus_hello)
		die("Hello too long");
	memcpy(dbus_hello, b.p, b.len);
	dbus_hello_len = b.len;
	tbuf_free(&b);
}

/*
 * Source address for TCP connections: 127.0.0.1, or for the thousands of
 * idle and watcher connections 127.0.0.2, with the port chosen at connect
 * time (IP_BIND_ADDRESS_NO_PORT), so that they have an ephemeral port
 * space of their own: another program on the machine leaving tens of
 * thousands of TIME_WAIT sockets on 127.0.0.1 cannot make connect() fail
 * with EADDRNOTAVAIL halfway through.
 */
static bool alt_source;

static int
conn_connect(struct conn *c, const struct target *t)
{
	int one = 1;

	memset(c, 0, sizeof *c);
	c->kind = t->kind;
	c->chunk = 65536;
	tbuf_init(&c->in);
	comm_framer_init(&c->fr, 16 * 1024 * 1024);
	if (t->kind == T_DBUS) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		if (strlen(t->sock) >= sizeof sun.sun_path)
			die("socket path too long: %s", t->sock);
		memcpy(sun.sun_path, t->sock, strlen(t->sock) + 1);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd == -1 ||
		    connect(c->fd, (struct sockaddr *)&sun, sizeof sun) == -1)
			return -1;
	} else {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(t->port);
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd == -1)
			return -1;
		if (alt_source) {
			struct sockaddr_in src;

			memset(&src, 0, sizeof src);
			src.sin_family = AF_INET;
			src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1);
			setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT,
			    &one, sizeof one);
			if (bind(c->fd, (struct sockaddr *)&src, sizeof src) ==
			    -1)
				return -1;
		}
		if (connect(c->fd, (struct sockaddr *)&sin, sizeof sin) == -1)
			return -1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	return 0;
}

/* Handshake, first half: what the client says first.  A server that
 * closed the connection at once (a limit) makes it -1. */
static void
hs_send(struct conn *c)
{
	char line[64];
	int rc = 0;

	switch (c->kind) {
	case T_COMMREGD:
	case T_NNSD: {
		struct sockaddr_in sin;
		socklen_t sl = sizeof sin;

		/* Our id is the local port, so every connection is a
		 * distinct comm peer to nnsd (it keys names by it). */
		getsockname(c->fd, (struct sockaddr *)&sin, &sl);
		snprintf(line, sizeof line, "{3 2} %d\n", ntohs(sin.sin_port));
		rc = conn_write_try(c, line, strlen(line));
		break;
	}
	case T_DBUS: {
		char uid[16];
		size_t i, k;

		/* SASL EXTERNAL with our uid in hex, as libdbus does. */
		memcpy(line, "\0AUTH EXTERNAL ", 15);
		k = 15;
		snprintf(uid, sizeof uid, "%d", (int)getuid());
		for (i = 0; uid[i]; i++, k += 2)
			snprintf(line + k, 3, "%02x", (unsigned char)uid[i]);
		memcpy(line + k, "\r\n", 2);
		rc = conn_write_try(c, line, k + 2);
		break;
	}
	case T_ECHO:
		rc = conn_write_try(c, "0 ping\n", 7);
		break;
	default:
		abort();
	}
	if (rc == -1)
		conn_close(c);
}

/* Read up to and including the first LF into nothing; -1 if closed. */
static int
read_through_lf(struct conn *c, char *first, size_t n)
{
	char *lf;

	for (;;) {
		if ((lf = memchr(c->in.p, '\n', c->in.len)) != NULL) {
			size_t k = (size_t)(lf - c->in.p) + 1;

			snprintf(first, n, "%.*s", (int)k, c->in.p);
			memmove(c->in.p, c->in.p + k, c->in.len - k);
			c->in.len -= k;
			return 0;
		}
		if (conn_fill(c) == -1)
			return -1;
	}
}

/* Handshake, second half: wait for the answer (and for D-Bus, do the
 * Hello).  -1: the server closed the connection (e.g. a limit). */
static int
hs_recv(struct conn *c, int stage)
{
	char line[256];

	switch (c->kind) {
	case T_COMMREGD:
	case T_NNSD:
		if (read_through_lf(c, line, sizeof line) == -1)
			return -1;
		if (strncmp(line, "{vers 3}", 8) != 0)
			die("%s answered the offer with \"%s\"", tname[c->kind],
			    line);
		return 0;
	case T_ECHO:
		return read_through_lf(c, line, sizeof line);
	case T_DBUS:
		if (stage == 0) {
			if (read_through_lf(c, line, sizeof line) == -1)
				return -1;
			if (strncmp(line, "OK ", 3) != 0)
				die("dbus-daemon refused EXTERNAL: %s", line);
			conn_write(c, dbus_hello, dbus_hello_len);
			return 0;
		}
		/* stage 1: the Hello reply (NameAcquired may follow; it is
		 * counted as an event and forgotten by the caller). */
		{
			struct pollfd p = {c->fd, POLLIN, 0};

			conn_parse(c);
			while (c->replies < 1) {
				if (poll(&p, 1, 20000) <= 0 ||
				    conn_fill(c) == -1)
					return -1;
				conn_parse(c);
			}
			c->replies = 0;
			return 0;
		}
	default:
		abort();
	}
}

/*
 * Open n connections to t with the handshake done, in batches (connect and
 * say hello to a batch, then collect its answers), so the servers' accept
 * queues never overflow.  Returns how many the server kept; the others are
 * closed and have fd == -1 (commregd refuses beyond its connection limit).
 */
static int
conns_open(const struct target *t, struct conn *cs, int n, size_t chunk)
{
	int i, j, b, ok = 0, stages = t->kind == T_DBUS ? 2 : 1, s;
	const int batch = 64;

	alt_source = n >= 1000;
	for (b = 0; b < n; b += batch) {
		int e = b + batch < n ? b + batch : n;

		for (i = b; i < e; i++) {
			if (conn_connect(&cs[i], t) == -1)
				die("connecting to %s (connection %d): %s",
				    tname[t->kind], i, strerror(errno));
			cs[i].chunk = chunk;
			hs_send(&cs[i]);
		}
		for (s = 0; s < stages; s++)
			for (j = b; j < e; j++)
				if (cs[j].fd != -1 && hs_recv(&cs[j], s) == -1)
					conn_close(&cs[j]);
	}
	alt_source = false;
	for (i = 0; i < n; i++) {
		if (cs[i].fd != -1)
			ok++;
		cs[i].events = 0;
	}
	return ok;
}

static struct conn *
conn_open1(const struct target *t)
{
	struct conn *c = xcalloc(1, sizeof *c);

	if (conns_open(t, c, 1, 65536) != 1)
		die("%s closed a new connection", tname[t->kind]);
	return c;
}

static void
conn_free(struct conn *c)
{
	conn_close(c);
	free(c);
}

/* ------------------------------------------------------------------ */
/* The measuring loops                                                  */

/* Round trips one at a time: samples in microseconds. */
static void
run_rtt(struct conn *c, const struct reqset *rs, long max_n, double max_s,
    struct samples *out)
{
	double end = now_us() + max_s * 1e6, t0, t1;
	long i, base = c->replies;

	for (i = 0; i < max_n; i++) {
		t0 = now_us();
		if (t0 > end)
			break;
		conn_send(c, rs, i, 1);
		conn_wait(c, base + i + 1, 0);
		t1 = now_us();
		sample_add(out, t1 - t0);
	}
	if (c->errors)
		die("%s: error reply: %s", tname[c->kind], c->lasterr);
}

/*
 * Round trips interleaved across targets: one request to each in turn
 * (the first target rotating with i), so whatever the machine does at a
 * given moment (where the scheduler puts the server, how deep the idle
 * CPU sleeps) hits every target alike, and ratios between them are
 * measured request by request.  Target k takes at most max_n[k] samples;
 * the whole call at most max_s seconds.  cs[k] NULL: not measured.
 */
static void
run_rtt_multi(struct conn *const *cs, const struct reqset *const *rs, int nt,
    const long *max_n, double max_s, struct samples *const *out)
{
	double end = now_us() + max_s * 1e6, t0, t1;
	long i, *done = xcalloc((size_t)nt, sizeof *done);
	int j, k;
	bool any = true;

	for (i = 0; any && now_us() < end; i++) {
		any = false;
		for (j = 0; j < nt; j++) {
			struct conn *c;

			k = (int)((i + j) % nt);
			if ((c = cs[k]) == NULL || rs[k]->n == 0 ||
			    done[k] >= max_n[k])
				continue;
			any = true;
			t0 = now_us();
			conn_send(c, rs[k], done[k], 1);
			conn_wait(c, c->replies + 1, 0);
			t1 = now_us();
			if (out[k] != NULL)
				sample_add(out[k], t1 - t0);
			done[k]++;
			if (c->errors)
				die("%s: error reply: %s", tname[c->kind],
				    c->lasterr);
		}
	}
	free(done);
}

struct drive_res {
	long done;
	double secs;
};

/*
 * Keep `depth` requests in flight on each of nc connections (conn i sends
 * rs[i] in order, cycling, starting at rs offset start[i] if given) until
 * each has sent `limit` (if > 0) or `dur` seconds have passed (if > 0);
 * then wait for every reply.  New requests for the replies one read
 * brought are sent in one write.  Returns replies and elapsed seconds
 * from the first write to the last reply.
 */
static struct drive_res
drive(struct conn *cs, int nc, struct reqset *const *rs, int depth, long limit,
    double dur)
{
	struct epoll_event ev, *evs;
	struct drive_res res = {0, 0};
	double t0, tend;
	long *base, pending;
	bool sending = true;
	int ep, i, n, live = 0;

	evs = xcalloc((size_t)nc, sizeof *evs);
	base = xcalloc((size_t)nc, sizeof *base);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	for (i = 0; i < nc; i++) {
		if (cs[i].fd == -1)
			continue;
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
		base[i] = cs[i].replies;
		cs[i].sent = 0;
		live++;
	}
	t0 = now_us();
	tend = t0 + dur * 1e6;
	for (i = 0; i < nc; i++) {
		long k = depth;

		if (cs[i].fd == -1)
			continue;
		if (limit > 0 && k > limit)
			k = limit;
		conn_send(&cs[i], rs[i], 0, k);
		cs[i].sent = k;
	}
	for (;;) {
		pending = 0;
		for (i = 0; i < nc; i++)
			if (cs[i].fd != -1)
				pending += base[i] + cs[i].sent - cs[i].replies;
		if (pending == 0 && (!sending || limit > 0)) {
			bool more = false;

			for (i = 0; i < nc && limit > 0; i++)
				if (cs[i].fd != -1 && cs[i].sent < limit)
					more = true;
			if (!more)
				break;
		}
		if (dur > 0 && sending && now_us() >= tend)
			sending = false;
		n = epoll_wait(ep, evs, nc, 20000);
		if (n <= 0)
			die("%s: no progress within 20 s (%ld replies "
			    "pending)",
			    tname[cs[0].kind], pending);
		for (int k = 0; k < n; k++) {
			struct conn *c = &cs[evs[k].data.u32];
			long before = c->replies, got, more;

			if (conn_fill(c) == -1)
				die("%s closed a connection while measuring "
				    "(%s)",
				    tname[c->kind], c->lasterr);
			conn_parse(c);
			got = c->replies - before;
			if (!sending || got == 0)
				continue;
			more = got;
			if (limit > 0 && c->sent + more > limit)
				more = limit - c->sent;
			if (more > 0) {
				conn_send(c, rs[evs[k].data.u32], c->sent,
				    more);
				c->sent += more;
			}
		}
	}
	res.secs = (now_us() - t0) / 1e6;
	for (i = 0; i < nc; i++) {
		if (cs[i].fd == -1)
			continue;
		res.done += cs[i].replies - base[i];
		if (cs[i].errors)
			die("%s: error reply: %s", tname[cs[i].kind],
			    cs[i].lasterr);
	}
	close(ep);
	free(evs);
	free(base);
	return res;
}

/* ------------------------------------------------------------------ */
/* Results                                                              */

enum measure {
	M_RTT,        /* lookup RTT, samples */
	M_NNS_RTT,    /* Search NAME RTT */
	M_SEARCH_ALL, /* Search * RTT */
	M_PIPE,       /* ops/s per round */
	M_CONC,       /* ops/s per round */
	M_REG1K,      /* ms per round */
	M_REG10K,     /* ms per round */
	M_FAN_LIT,    /* ms per trigger */
	M_FAN_GLOB,
	M_IDLE_NONE, /* RTT samples with no idle connections */
	M_IDLE_WITH, /* RTT samples with the idle connections */
	M_IDLE_REFN, /* reference echo floor, during M_IDLE_NONE */
	M_IDLE_REFW, /* reference echo floor, during M_IDLE_WITH */
	M_RTT_B2B,   /* lookup RTT, back to back on one target */
	NM,
};

static struct samples res[NM][NT];
static double kb_per_name[NT] = {NAN, NAN, NAN, NAN};
static double kb_per_conn[NT] = {NAN, NAN, NAN, NAN};
static long hwm_names[NT][2], hwm_idle[NT][2];
static int idle_open[NT];
static char idle_note[NT][160];
static int nnsd_fds_fanout = -1;

/* ------------------------------------------------------------------ */
/* Phase A: steady state with `names` names held                        */

struct steady {
	struct target t;
	struct conn *holder, *rtt, *pipe, *conc;
	struct reqset lookup, nns, all, *concrs;
	struct reqset **concp;
};

static void
hold_names(struct target *t, struct conn **holder, int n)
{
	struct reqset rs;
	struct reqset *p = &rs;
	char name[64];
	int i;

	*holder = conn_open1(t);
	if (t->kind == T_ECHO)
		return;
	reqset_init(&rs, t->kind);
	for (i = 0; i < n; i++) {
		held_name(name, sizeof name, i);
		reqset_add(&rs, OP_REGISTER, name, held_port(i), NULL);
	}
	drive(*holder, 1, &p, 32, n, 0);
	reqset_free(&rs);
}

static void
steady_setup(struct steady *s, enum tkind kind)
{
	char name[64];
	int i, j;

	target_start(&s->t, kind);
	hold_names(&s->t, &s->holder, opt.names);
	reqset_init(&s->lookup, kind);
	reqset_init(&s->nns, kind);
	reqset_init(&s->all, kind);
	for (i = 0; i < opt.names; i++) {
		held_name(name, sizeof name, i);
		reqset_add(&s->lookup, OP_LOOKUP, name, held_port(i), NULL);
		if (kind == T_COMMREGD || kind == T_NNSD)
			reqset_add(&s->nns, OP_NNS_SEARCH, name, held_port(i),
			    NULL);
	}
	reqset_add(&s->all, OP_SEARCH_ALL, NULL, 0, NULL);
	s->rtt = conn_open1(&s->t);
	s->pipe = conn_open1(&s->t);
	s->conc = xcalloc(64, sizeof *s->conc);
	if (conns_open(&s->t, s->conc, 64, 65536) != 64)
		die("%s refused one of 64 connections", tname[kind]);
	/* Each of the 64 clients walks the names from its own offset. */
	s->concrs = xcalloc(64, sizeof *s->concrs);
	s->concp = xcalloc(64, sizeof *s->concp);
	for (j = 0; j < 64; j++) {
		reqset_init(&s->concrs[j], kind);
		for (i = 0; i < opt.names; i++) {
			int k = (i + j * 97) % opt.names;

			held_name(name, sizeof name, k);
			reqset_add(&s->concrs[j], OP_LOOKUP, name, held_port(k),
			    NULL);
		}
		s->concp[j] = &s->concrs[j];
	}
}

/* Close the measuring clients (the holder stays): nnsd must stay below
 * 1024 descriptors for the fan-out (Tcl 8.6 uses select()). */
static void
steady_release_clients(struct steady *s)
{
	int j;

	if (s->rtt == NULL)
		return;
	conn_free(s->rtt);
	conn_free(s->pipe);
	s->rtt = s->pipe = NULL;
	for (j = 0; j < 64; j++) {
		conn_close(&s->conc[j]);
		reqset_free(&s->concrs[j]);
	}
	free(s->conc);
	free(s->concrs);
	free(s->concp);
	reqset_free(&s->lookup);
	reqset_free(&s->nns);
	reqset_free(&s->all);
}

static void
steady_teardown(struct steady *s)
{
	steady_release_clients(s);
	conn_free(s->holder);
	target_stop(&s->t);
}

static bool
want(const char *m)
{
	return opt.only == NULL || strstr(opt.only, m) != NULL;
}

/* One round of the round-trip measures, all targets interleaved. */
static void
steady_rtt_round(struct steady *s, bool warm)
{
	struct conn *cs[NT];
	const struct reqset *rs[NT];
	struct samples *out[NT];
	long max_n[NT];
	double sl = warm ? 0.03 : opt.slice;
	int k;

	for (k = 0; k < NT; k++) {
		cs[k] = s[k].rtt;
		rs[k] = &s[k].lookup;
		out[k] = warm ? NULL : &res[M_RTT][k];
		max_n[k] = 4000;
	}
	if (want("rtt"))
		run_rtt_multi(cs, rs, NT, max_n, 2 * sl, out);
	for (k = 0; k < NT; k++) {
		rs[k] = &s[k].nns; /* empty for dbus and echo */
		out[k] = warm ? NULL : &res[M_NNS_RTT][k];
	}
	if (want("nns"))
		run_rtt_multi(cs, rs, NT, max_n, sl, out);
	for (k = 0; k < NT; k++) {
		rs[k] = &s[k].all;
		out[k] = warm ? NULL : &res[M_SEARCH_ALL][k];
		/* nnsd takes ~45 ms for one (Nagle and delayed ACK); a
		 * few per round are enough to know. */
		max_n[k] = k == T_NNSD ? 4 : 400;
	}
	if (want("search"))
		run_rtt_multi(cs, rs, NT, max_n, 2 * sl, out);
}

/* One round of the throughput measures of one target. */
static void
steady_tput_round(struct steady *s, bool warm)
{
	enum tkind k = s->t.kind;
	struct reqset *p = &s->lookup;
	struct drive_res d;
	double sl = warm ? 0.03 : opt.slice;

	if (want("b2b")) {
		struct samples junk = {0};

		run_rtt(s->rtt, &s->lookup, 4000, sl,
		    warm ? &junk : &res[M_RTT_B2B][k]);
		free(junk.v);
	}
	if (want("pipe")) {
		d = drive(s->pipe, 1, &p, 32, 0, sl);
		if (!warm)
			sample_add(&res[M_PIPE][k], d.done / d.secs);
	}
	if (want("conc")) {
		d = drive(s->conc, 64, s->concp, 1, 0, sl);
		if (!warm)
			sample_add(&res[M_CONC][k], d.done / d.secs);
	}
}

/* ------------------------------------------------------------------ */
/* Phase B: registrations                                               */

/* Register n names over ceil(n/1000) connections at once, each keeping 32
 * requests in flight; ms from the first request to the last reply.  The
 * connections are open (handshake done) before the clock starts. */
static double
register_names(struct target *t, int n, const char *prefix)
{
	int nc = (n + 999) / 1000, i, j;
	struct conn *cs = xcalloc((size_t)nc, sizeof *cs);
	struct reqset *rs = xcalloc((size_t)nc, sizeof *rs);
	struct reqset **rp = xcalloc((size_t)nc, sizeof *rp);
	struct drive_res d;
	char name[64];

	if (conns_open(t, cs, nc, 65536) != nc)
		die("%s refused a connection", tname[t->kind]);
	for (j = 0; j < nc; j++) {
		cs[j].want_owner = true;
		reqset_init(&rs[j], t->kind);
		for (i = j * 1000; i < n && i < (j + 1) * 1000; i++) {
			snprintf(name, sizeof name, "%s-%05d", prefix, i);
			reqset_add(&rs[j], OP_REGISTER, name, 30000 + i % 30000,
			    NULL);
		}
		rp[j] = &rs[j];
	}
	d = drive(cs, nc, rp, 32, 1000, 0);
	if (d.done != n)
		die("%s: %ld of %d registrations answered", tname[t->kind],
		    d.done, n);
	for (j = 0; j < nc; j++) {
		conn_close(&cs[j]);
		reqset_free(&rs[j]);
	}
	free(cs);
	free(rs);
	free(rp);
	return d.secs * 1e3;
}

/* ------------------------------------------------------------------ */
/* Phase C: watch fan-out                                               */

struct fan {
	struct target *t;
	struct conn *w; /* watchers */
	int nw;
	int ep;
	struct conn *trig;
	struct epoll_event *evs;
};

static void
fan_setup(struct fan *f, struct target *t, int nw)
{
	struct reqset rs;
	struct epoll_event ev;
	int i;

	f->t = t;
	f->nw = nw;
	f->w = xcalloc((size_t)nw, sizeof *f->w);
	if (conns_open(t, f->w, nw, 4096) != nw)
		die("%s refused one of %d watcher connections", tname[t->kind],
		    nw);
	/* Two watches on each connection: a literal name and a glob.  The
	 * echo floor's connections need none: it writes to all. */
	reqset_init(&rs, t->kind);
	if (t->kind != T_ECHO) {
		reqset_add(&rs, OP_WATCH, "lit", 0, "fanlit");
		reqset_add(&rs, OP_WATCH, "glob", 0, "fanglob*");
		for (i = 0; i < nw; i++)
			conn_send(&f->w[i], &rs, 0, 2);
	}
	for (i = 0; i < nw && t->kind != T_ECHO; i++) {
		/* nnsd answers a Start with an async Change (the initial
		 * matches); commregd and dbus-daemon with a reply. */
		if (t->kind == T_NNSD)
			conn_wait(&f->w[i], 0, 2);
		else
			conn_wait(&f->w[i], 2, 0);
		if (f->w[i].errors)
			die("%s: watch refused: %s", tname[t->kind],
			    f->w[i].lasterr);
		f->w[i].events = 0;
	}
	reqset_free(&rs);
	f->ep = epoll_create1(EPOLL_CLOEXEC);
	f->evs = xcalloc((size_t)nw, sizeof *f->evs);
	for (i = 0; i < nw; i++) {
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		epoll_ctl(f->ep, EPOLL_CTL_ADD, f->w[i].fd, &ev);
	}
	f->trig = conn_open1(t);
}

static void
fan_teardown(struct fan *f)
{
	int i;

	for (i = 0; i < f->nw; i++)
		conn_close(&f->w[i]);
	free(f->w);
	free(f->evs);
	close(f->ep);
	conn_free(f->trig);
}

/* Wait until every watcher has seen `want` events; returns the time the
 * last one was read. */
static double
fan_wait(struct fan *f, long want)
{
	int left = 0, i, n;
	double last = 0;

	for (i = 0; i < f->nw; i++) {
		conn_parse(&f->w[i]);
		if (f->w[i].events < want)
			left++;
	}
	while (left > 0) {
		n = epoll_wait(f->ep, f->evs, f->nw, 20000);
		if (n <= 0)
			die("%s: %d of %d watchers not told within 20 s",
			    tname[f->t->kind], left, f->nw);
		for (int k = 0; k < n; k++) {
			struct conn *c = &f->w[f->evs[k].data.u32];
			bool was = c->events < want;

			if (conn_fill(c) == -1)
				die("%s closed a watcher", tname[c->kind]);
			conn_parse(c);
			if (was && c->events >= want) {
				left--;
				last = now_us();
			}
		}
	}
	return last;
}

/* One registration (then its removal); ms until the last watcher has the
 * add event. */
static double
fan_once(struct fan *f, bool glob, int seq)
{
	struct reqset add, del;
	char name[64];
	double t0, t1;
	long base = f->w[0].events, rbase = f->trig->replies;

	if (glob)
		snprintf(name, sizeof name, "fanglob-%d", seq);
	else
		snprintf(name, sizeof name, "fanlit");
	reqset_init(&add, f->t->kind);
	reqset_init(&del, f->t->kind);
	if (f->t->kind == T_ECHO) {
		reqset_add(&add, OP_BROADCAST, name, 4000, NULL);
		reqset_add(&del, OP_BROADCAST, name, 4000, NULL);
	} else {
		reqset_add(&add, OP_REGISTER, name, 4000, NULL);
		reqset_add(&del, OP_UNREGISTER, name, 4000, NULL);
	}

	t0 = now_us();
	conn_send(f->trig, &add, 0, 1);
	t1 = fan_wait(f, base + 1);
	conn_wait(f->trig, rbase + 1, 0);
	conn_send(f->trig, &del, 0, 1);
	fan_wait(f, base + 2);
	conn_wait(f->trig, rbase + 2, 0);
	if (f->trig->errors)
		die("%s: trigger refused: %s", tname[f->t->kind],
		    f->trig->lasterr);
	reqset_free(&add);
	reqset_free(&del);
	return (t1 - t0) / 1e3;
}

/* ------------------------------------------------------------------ */
/* Phase D: memory, idle connections                                    */

static void
mem_names(enum tkind kind)
{
	struct target t;
	struct conn *cs;
	struct reqset *rs, **rp;
	int nc = (opt.mem_names + 999) / 1000, i, j;
	char name[64];
	long h0, h1;

	target_start(&t, kind);
	cs = xcalloc((size_t)nc, sizeof *cs);
	rs = xcalloc((size_t)nc, sizeof *rs);
	rp = xcalloc((size_t)nc, sizeof *rp);
	if (conns_open(&t, cs, nc, 65536) != nc)
		die("%s refused a connection", tname[kind]);
	for (j = 0; j < nc; j++) {
		reqset_init(&rs[j], kind);
		reqset_add(&rs[j], OP_PING, NULL, 0, NULL);
		rp[j] = &rs[j];
	}
	drive(cs, nc, rp, 1, 1, 0);
	for (j = 0; j < nc; j++) {
		reqset_free(&rs[j]);
		reqset_init(&rs[j], kind);
		for (i = j * 1000; i < opt.mem_names && i < (j + 1) * 1000;
		     i++) {
			snprintf(name, sizeof name, "mem-%05d", i);
			reqset_add(&rs[j], OP_REGISTER, name, 30000 + i % 30000,
			    NULL);
		}
	}
	usleep(100000);
	h0 = proc_kb(t.pid, "VmHWM");
	drive(cs, nc, rp, 32, 1000, 0);
	usleep(100000);
	h1 = proc_kb(t.pid, "VmHWM");
	hwm_names[kind][0] = h0;
	hwm_names[kind][1] = h1;
	kb_per_name[kind] = (double)(h1 - h0) / opt.mem_names;
	note("%s: VmHWM %ld kB -> %ld kB with %d names", tname[kind], h0, h1,
	    opt.mem_names);
	for (j = 0; j < nc; j++) {
		conn_close(&cs[j]);
		reqset_free(&rs[j]);
	}
	free(cs);
	free(rs);
	free(rp);
	target_stop(&t);
}

/* Probe round trips to the target, interleaved with round trips to a
 * reference echo floor that never has idle connections: the reference
 * tells what the machine did meanwhile, so "with" and "none", measured
 * seconds apart, can be compared (docs/performance-compare.md). */
static void
idle_rtt(struct conn *probe, const struct reqset *rs, struct conn *refc,
    const struct reqset *refrs, enum measure m, enum measure mref,
    enum tkind kind, bool warm)
{
	struct conn *cs[2] = {probe, refc};
	const struct reqset *r[2] = {rs, refrs};
	struct samples *out[2] = {&res[m][kind], &res[mref][kind]};
	long max_n[2] = {warm ? 200 : 3000, warm ? 200 : 3000};

	if (warm)
		out[0] = out[1] = NULL;
	run_rtt_multi(cs, r, 2, max_n, warm ? 0.2 : 1.5, out);
}

static void
mem_idle(enum tkind kind, struct conn *refc, const struct reqset *refrs,
    pid_t refpid)
{
	struct target t;
	struct conn *probe, *idle, *hold;
	struct reqset rs, reg;
	struct reqset *p = &reg;
	long h0, h1;
	int ok, i;

	target_start(&t, kind);
	/* "With" and "without" are seconds apart: where the scheduler puts
	 * the client and the two servers must not change in between, so
	 * (unless --no-pin) the client goes on one CPU, the servers on the
	 * other, for this test. */
	if (opt.pin == 1 && cpu_client >= 0) {
		pin_to(t.pid, cpu_server);
		pin_to(refpid, cpu_server);
		pin_to(0, cpu_client);
	}
	/* One name to look up, held by its own connection. */
	hold = conn_open1(&t);
	reqset_init(&reg, kind);
	reqset_add(&reg, OP_REGISTER, "probe-app", 4242, NULL);
	if (kind != T_ECHO)
		drive(hold, 1, &p, 1, 1, 0);
	reqset_free(&reg);
	reqset_init(&rs, kind);
	reqset_add(&rs, OP_LOOKUP, "probe-app", 4242, NULL);
	probe = conn_open1(&t);
	idle_rtt(probe, &rs, refc, refrs, M_IDLE_NONE, M_IDLE_REFN, kind, true);
	idle_rtt(probe, &rs, refc, refrs, M_IDLE_NONE, M_IDLE_REFN, kind,
	    false);
	if (opt.verbose)
		note("%s: none (before) %.1f µs, reference %.1f µs",
		    tname[kind], median(&res[M_IDLE_NONE][kind]),
		    median(&res[M_IDLE_REFN][kind]));
	usleep(100000);
	h0 = proc_kb(t.pid, "VmHWM");
	idle = xcalloc((size_t)opt.idle, sizeof *idle);
	ok = conns_open(&t, idle, opt.idle, 512);
	usleep(200000);
	h1 = proc_kb(t.pid, "VmHWM");
	idle_open[kind] = ok;
	hwm_idle[kind][0] = h0;
	hwm_idle[kind][1] = h1;
	kb_per_conn[kind] = ok > 0 ? (double)(h1 - h0) / ok : NAN;
	if (ok < opt.idle)
		snprintf(idle_note[kind], sizeof idle_note[kind],
		    "%s kept %d of %d idle connections (a connection limit?)",
		    tname[kind], ok, opt.idle);
	note("%s: %d idle connections open, VmHWM %ld kB -> %ld kB",
	    tname[kind], ok, h0, h1);
	idle_rtt(probe, &rs, refc, refrs, M_IDLE_WITH, M_IDLE_REFW, kind, true);
	idle_rtt(probe, &rs, refc, refrs, M_IDLE_WITH, M_IDLE_REFW, kind,
	    false);
	if (opt.verbose)
		note("%s: with %.1f µs, reference %.1f µs", tname[kind],
		    median(&res[M_IDLE_WITH][kind]),
		    median(&res[M_IDLE_REFW][kind]));
	for (i = 0; i < opt.idle; i++)
		conn_close(&idle[i]);
	free(idle);
	usleep(300000);
	idle_rtt(probe, &rs, refc, refrs, M_IDLE_NONE, M_IDLE_REFN, kind, true);
	idle_rtt(probe, &rs, refc, refrs, M_IDLE_NONE, M_IDLE_REFN, kind,
	    false);
	if (opt.verbose)
		note("%s: none (before and after) %.1f µs, reference %.1f µs",
		    tname[kind], median(&res[M_IDLE_NONE][kind]),
		    median(&res[M_IDLE_REFN][kind]));
	reqset_free(&rs);
	conn_free(probe);
	conn_free(hold);
	target_stop(&t);
	if (opt.pin == 1 && cpu_client >= 0)
		sched_setaffinity(0, sizeof cpus_all, &cpus_all);
}

/* with/none for the target, each divided by the reference's. */
static double
idle_ratio(enum tkind k)
{
	double w, n, rw, rn;

	if (res[M_IDLE_WITH][k].n == 0 || res[M_IDLE_NONE][k].n == 0)
		return NAN;
	w = median(&res[M_IDLE_WITH][k]);
	n = median(&res[M_IDLE_NONE][k]);
	rw = median(&res[M_IDLE_REFW][k]);
	rn = median(&res[M_IDLE_REFN][k]);
	return (w / rw) / (n / rn);
}

/* ------------------------------------------------------------------ */
/* The report                                                           */

static char *
fmt_num(char *buf, size_t n, double v, const char *unit)
{
	if (isnan(v))
		snprintf(buf, n, "—");
	else if (v >= 1e6)
		snprintf(buf, n, "%.2fM%s", v / 1e6, unit);
	else if (v >= 1e4)
		snprintf(buf, n, "%.0fk%s", v / 1e3, unit);
	else if (v >= 100)
		snprintf(buf, n, "%.0f%s", v, unit);
	else if (v >= 10)
		snprintf(buf, n, "%.1f%s", v, unit);
	else
		snprintf(buf, n, "%.2f%s", v, unit);
	return buf;
}

static void
row_lat(const char *label, enum measure m, bool with_p99)
{
	char a[32], b[32];
	int k;

	printf("| %s |", label);
	for (k = 0; k < NT; k++) {
		if (res[m][k].n == 0) {
			printf(" — |");
			continue;
		}
		fmt_num(a, sizeof a, median(&res[m][k]), "");
		if (with_p99) {
			fmt_num(b, sizeof b, pct(&res[m][k], 99), "");
			printf(" %s / %s |", a, b);
		} else
			printf(" %s |", a);
	}
	printf("\n");
}

static void
row_vals(const char *label, const double v[NT], const char *unit)
{
	char a[32];
	int k;

	printf("| %s |", label);
	for (k = 0; k < NT; k++)
		printf(" %s |", fmt_num(a, sizeof a, v[k], unit));
	printf("\n");
}

static int npass, nmiss;

static void
target_line(const char *what, double measured, const char *munit,
    const char *goal, bool pass, bool have)
{
	char a[48];

	if (!have || isnan(measured)) {
		printf("| %s | — | %s | not measured |\n", what, goal);
		return;
	}
	snprintf(a, sizeof a, "%.2f%s", measured, munit);
	printf("| %s | %s | %s | %s |\n", what, a, goal,
	    pass ? "PASS" : "**MISS**");
	if (pass)
		npass++;
	else
		nmiss++;
}

static double
med(enum measure m, enum tkind k)
{
	return res[m][k].n ? median(&res[m][k]) : NAN;
}

/*
 * res[m][a] / res[m][b] round by round (the two measured seconds apart in
 * the same round), then the median of those ratios: a burst of other work
 * on the machine spoils one round's pair, not the verdict.  Must be called
 * before anything sorts the two sample arrays.
 */
static double
paired_ratio(enum measure m, enum tkind a, enum tkind b)
{
	struct samples r = {0};
	size_t i, n = res[m][a].n < res[m][b].n ? res[m][a].n : res[m][b].n;
	double v;

	if (n == 0)
		return NAN;
	for (i = 0; i < n; i++)
		sample_add(&r, res[m][a].v[i] / res[m][b].v[i]);
	v = median(&r);
	free(r.v);
	return v;
}

static char load_start[64], load_end[64];

/*
 * How busy the machine was with work other than ours: CPU time of the
 * whole machine (user + nice + system from /proc/stat) minus our own and
 * our reaped children's (every target is waited for when stopped).
 * Kernel work of the loopback is mostly charged to the processes that
 * send, so it is counted as ours.
 */
struct cpu_mark {
	double machine; /* seconds */
	double steal;
	double ours;
	double wall;
};

static void
cpu_mark(struct cpu_mark *m)
{
	unsigned long long u = 0, n = 0, sy = 0, idle = 0, io = 0, irq = 0,
	                   sirq = 0, st = 0;
	struct rusage self, kids;
	double hz = (double)sysconf(_SC_CLK_TCK);
	FILE *fp = fopen("/proc/stat", "r");

	if (fp != NULL) {
		if (fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		        &u, &n, &sy, &idle, &io, &irq, &sirq, &st) != 8)
			u = n = sy = st = 0;
		fclose(fp);
	}
	m->machine = (double)(u + n + sy) / hz;
	m->steal = (double)st / hz;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	m->ours = self.ru_utime.tv_sec + self.ru_utime.tv_usec / 1e6 +
	          self.ru_stime.tv_sec + self.ru_stime.tv_usec / 1e6 +
	          kids.ru_utime.tv_sec + kids.ru_utime.tv_usec / 1e6 +
	          kids.ru_stime.tv_sec + kids.ru_stime.tv_usec / 1e6;
	m->wall = now_us() / 1e6;
}

static struct cpu_mark mark_start;

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
read_loadavg(char *buf, size_t n)
{
	FILE *fp = fopen("/proc/loadavg", "r");

	buf[0] = '\0';
	if (fp != NULL) {
		if (fgets(buf, (int)n, fp) == NULL)
			buf[0] = '\0';
		fclose(fp);
	}
	/* the three averages only */
	for (int i = 0, sp = 0; buf[i]; i++)
		if (buf[i] == ' ' && ++sp == 3) {
			buf[i] = '\0';
			break;
		}
}

static double other_share, steal_share;

static void
report(void)
{
	double v[NT];
	double pipe_cd = paired_ratio(M_PIPE, T_COMMREGD, T_DBUS);
	double pipe_cn = paired_ratio(M_PIPE, T_COMMREGD, T_NNSD);
	double reg_dc = paired_ratio(M_REG10K, T_DBUS, T_COMMREGD);
	int k;
	char cpu[256] = "unknown";
	FILE *fp;

	if ((fp = fopen("/proc/cpuinfo", "r")) != NULL) {
		char line[512];

		while (fgets(line, sizeof line, fp) != NULL)
			if (strncmp(line, "model name", 10) == 0) {
				char *c = strchr(line, ':');

				snprintf(cpu, sizeof cpu, "%.200s",
				    c ? c + 2 : line);
				cpu[strcspn(cpu, "\n")] = '\0';
				break;
			}
		fclose(fp);
	}
	read_loadavg(load_end, sizeof load_end);
	{
		struct cpu_mark e;
		double cap, other, steal;

		stop_all(); /* reap the targets: their CPU time is ours */
		cpu_mark(&e);
		cap = (e.wall - mark_start.wall) *
		      (double)sysconf(_SC_NPROCESSORS_ONLN);
		other = (e.machine - mark_start.machine) -
		        (e.ours - mark_start.ours);
		steal = e.steal - mark_start.steal;
		if (other < 0)
			other = 0;
		other_share = cap > 0 ? other / cap : 0;
		steal_share = cap > 0 ? steal / cap : 0;
	}

	printf("\n## commregd side by side (loopback, %ld cores, %s)\n\n",
	    sysconf(_SC_NPROCESSORS_ONLN), cpu);
	if (cpu_client >= 0 && opt.pin == 2)
		printf("Client pinned to CPU %d, every server to CPU %d.  ",
		    cpu_client, cpu_server);
	else if (cpu_client >= 0)
		printf("Not pinned, except the idle-connection latency test "
		       "(client on CPU %d, servers on CPU %d).  ",
		    cpu_client, cpu_server);
	else
		printf("Not pinned to CPUs.  ");
	printf("Other processes used %.0f%% of the machine's CPU time during "
	       "the run (steal %.0f%%); load average at start %s, at end %s.  "
	       "Rounds: %d steady "
	       "(%.2f s per measure), %d registration, %d fan-out triggers per "
	       "pattern; %d names held.\n"
	       "Latencies in µs as median / p99; throughput in requests/s "
	       "(median of rounds); times in ms as median / p99.\n\n",
	    100 * other_share, 100 * steal_share, load_start, load_end,
	    opt.rounds, opt.slice, opt.reg_rounds, opt.fan_reps, opt.names);
	if (other_share + steal_share > 0.10)
		printf("**Warning: other work took %.0f%% of the machine "
		       "during the run; these numbers measure that contention "
		       "as much as the targets.  Run again on a quiet "
		       "machine.**\n\n",
		    100 * (other_share + steal_share));
	printf("| measure | commregd | nnsd | dbus-daemon | echo floor |\n");
	printf("|---|---|---|---|---|\n");
	row_lat("lookup round trip, targets interleaved, µs", M_RTT, true);
	row_lat("lookup round trip, back to back, µs", M_RTT_B2B, true);
	row_lat("nns `Search NAME` round trip, interleaved, µs", M_NNS_RTT,
	    true);
	for (k = 0; k < NT; k++)
		v[k] = med(M_PIPE, k);
	row_vals("pipelined lookups, 32 in flight, /s", v, "");
	for (k = 0; k < NT; k++)
		v[k] = med(M_CONC, k);
	row_vals("64 concurrent clients, lookups/s", v, "");
	for (k = 0; k < NT; k++)
		v[k] = med(M_REG1K, k);
	row_vals("register 1,000 names, ms", v, "");
	for (k = 0; k < NT; k++)
		v[k] = med(M_REG10K, k);
	row_vals("register 10,000 names, ms", v, "");
	row_lat("`Search *` over 1,000 names (dbus: ListNames), µs",
	    M_SEARCH_ALL, true);
	row_lat("fan-out to 1,000 watchers, literal name, ms to last",
	    M_FAN_LIT, true);
	row_lat("fan-out to 1,000 watchers, glob (dbus: arg0namespace), ms "
	        "to last",
	    M_FAN_GLOB, true);
	row_vals("memory per name (VmHWM, 10,000 names), KB", kb_per_name, "");
	row_vals("memory per idle connection (VmHWM, 10,000), KB", kb_per_conn,
	    "");
	printf("| idle connections actually open |");
	for (k = 0; k < NT; k++)
		if (idle_open[k])
			printf(" %d |", idle_open[k]);
		else
			printf(" — |");
	printf("\n");
	row_lat("lookup round trip, no idle connections, µs", M_IDLE_NONE,
	    true);
	row_lat("lookup round trip, idle connections open, µs", M_IDLE_WITH,
	    true);
	for (k = 0; k < NT; k++)
		v[k] = idle_ratio(k);
	row_vals("lookup round trip with / without idle connections "
	         "(normalized by a reference floor)",
	    v, "×");
	printf("\nMemory detail (VmHWM before → after, kB):");
	for (k = 0; k < NT; k++) {
		if (hwm_names[k][1])
			printf(" %s names %ld → %ld;", tname[k],
			    hwm_names[k][0], hwm_names[k][1]);
		if (hwm_idle[k][1])
			printf(" %s idle %ld → %ld;", tname[k], hwm_idle[k][0],
			    hwm_idle[k][1]);
	}
	printf("\n");
	if (res[M_IDLE_REFN][T_COMMREGD].n)
		printf("Reference floor during commregd's idle test: %.1f µs "
		       "without, %.1f µs with (medians).\n",
		    median(&res[M_IDLE_REFN][T_COMMREGD]),
		    median(&res[M_IDLE_REFW][T_COMMREGD]));
	for (k = 0; k < NT; k++)
		if (idle_note[k][0])
			printf("Note: %s.\n", idle_note[k]);
	if (nnsd_fds_fanout > 0)
		printf("nnsd had %d descriptors open during fan-out (Tcl 8.6's "
		       "select() notifier stops at 1024, so nnsd gets no "
		       "10,000 "
		       "idle connections).\n",
		    nnsd_fds_fanout);

	printf("\n### Targets (issue 4), ratios from this run\n\n");
	printf("| target | measured | goal | result |\n|---|---|---|---|\n");
	{
		double c = med(M_RTT, T_COMMREGD), e = med(M_RTT, T_ECHO);
		double cb = med(M_RTT_B2B, T_COMMREGD);
		double eb = med(M_RTT_B2B, T_ECHO);
		double sa = med(M_SEARCH_ALL, T_COMMREGD);
		double fl = med(M_FAN_LIT, T_COMMREGD);
		double fg = med(M_FAN_GLOB, T_COMMREGD);
		double fe = med(M_FAN_LIT, T_ECHO);
		double ir = idle_ratio(T_COMMREGD);

		target_line("lookup round trip / echo floor (interleaved)",
		    c / e, "×", "≤ 1.2×", c / e <= 1.2, !isnan(c) && !isnan(e));
		target_line("lookup round trip / echo floor (back to back)",
		    cb / eb, "×", "≤ 1.2×", cb / eb <= 1.2,
		    !isnan(cb) && !isnan(eb));
		target_line("pipelined lookups / dbus-daemon (per round)",
		    pipe_cd, "×", "≥ 5×", pipe_cd >= 5, !isnan(pipe_cd));
		target_line("pipelined lookups / nnsd (per round)", pipe_cn,
		    "×", "≥ 20×", pipe_cn >= 20, !isnan(pipe_cn));
		target_line("10,000 registrations: dbus-daemon's time / "
		            "commregd's (per round)",
		    reg_dc, "×", "≥ 5×", reg_dc >= 5, !isnan(reg_dc));
		target_line("`Search *` over 1,000 names / one lookup "
		            "(interleaved)",
		    sa / c, "×", "≤ 3×", sa / c <= 3, !isnan(sa) && !isnan(c));
		target_line("fan-out to 1,000 watchers, literal, median", fl,
		    " ms", "≤ 10 ms", fl <= 10, !isnan(fl));
		target_line("fan-out to 1,000 watchers, glob, median", fg,
		    " ms", "≤ 10 ms", fg <= 10, !isnan(fg));
		target_line("memory per name", kb_per_name[T_COMMREGD], " KB",
		    "≤ 0.2 KB", kb_per_name[T_COMMREGD] <= 0.2,
		    !isnan(kb_per_name[T_COMMREGD]));
		target_line("memory per idle connection",
		    kb_per_conn[T_COMMREGD], " KB", "≤ 4 KB",
		    kb_per_conn[T_COMMREGD] <= 4,
		    !isnan(kb_per_conn[T_COMMREGD]));
		target_line(idle_open[T_COMMREGD] < opt.idle
		                ? "lookup with the idle connections (fewer "
		                  "than asked, "
		                  "see note) / none, normalized"
		                : "lookup with 10,000 idle connections / none, "
		                  "normalized",
		    ir, "×", "≤ 1.1×", ir <= 1.1, !isnan(ir));
		printf("\n%d PASS, %d MISS.", npass, nmiss);
		if (!isnan(fl) && !isnan(fe))
			printf("  For scale: the echo floor's own fan-out (one "
			       "write to each of 1,000 TCP connections) took "
			       "%.1f "
			       "ms, so commregd's is %.2f× the floor.",
			    fe, fl / fe);
		printf("\n");
	}
}

/* ------------------------------------------------------------------ */

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: bench_compare [--quick] [--rounds N] [--phases ABCD]\n"
	    "                     [--only rtt,nns,search,b2b,pipe,conc]\n"
	    "                     [--commregd PATH] [--echod PATH]\n"
	    "                     [--nnsd PATH] [--dbus-daemon PATH]\n"
	    "                     [--workdir DIR] [--wrap CMD]\n"
	    "                     [--pin | --no-pin] [-v]\n"
	    "Phases: A steady state (RTT, Search *, pipelined, 64 clients),\n"
	    "B registrations, C watch fan-out, D memory and idle "
	    "connections.\n"
	    "The idle-connection latency test runs the client on one CPU "
	    "and the\nservers on another; --pin does so for every test, "
	    "--no-pin for none.\n"
	    "--wrap CMD runs commregd under CMD (e.g. \"valgrind "
	    "--tool=callgrind\");\nits timings and memory are then "
	    "the profiler's, not commregd's.\n");
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	/* The targets inherit the limit: idle connections plus ours. */
	if (rl.rlim_cur < (rlim_t)opt.idle + 200) {
		int n = (int)rl.rlim_cur - 200;

		note("RLIMIT_NOFILE is %ld: idle connections cut to %d",
		    (long)rl.rlim_cur, n);
		opt.idle = n;
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"quick", no_argument, NULL, 'q'},
	    {"rounds", required_argument, NULL, 'r'},
	    {"phases", required_argument, NULL, 'p'},
	    {"only", required_argument, NULL, 'o'},
	    {"commregd", required_argument, NULL, 'c'},
	    {"echod", required_argument, NULL, 'e'},
	    {"nnsd", required_argument, NULL, 'n'},
	    {"dbus-daemon", required_argument, NULL, 'd'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"wrap", required_argument, NULL, 'W'},
	    {"no-pin", no_argument, NULL, 'P'},
	    {"pin", no_argument, NULL, 'I'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch, r, k, i;
	double t_start = now_us();

	while ((ch = getopt_long(argc, argv, "qr:p:o:c:e:n:d:w:W:vh", longopts,
	            NULL)) != -1) {
		switch (ch) {
		case 'q':
			opt.rounds = 3;
			opt.reg_rounds = 1;
			opt.fan_reps = 5;
			opt.slice = 0.08;
			break;
		case 'r':
			opt.rounds = atoi(optarg);
			break;
		case 'p':
			opt.phases = optarg;
			break;
		case 'o':
			opt.only = optarg;
			break;
		case 'c':
			opt.commregd = optarg;
			break;
		case 'e':
			opt.echod = optarg;
			break;
		case 'n':
			opt.nnsd = optarg;
			break;
		case 'd':
			opt.dbus = optarg;
			break;
		case 'w':
			opt.workdir = optarg;
			break;
		case 'W':
			opt.wrap = optarg;
			break;
		case 'P':
			opt.pin = 0;
			break;
		case 'I':
			opt.pin = 2;
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	{
		int c, first = -1, last = -1;

		/* Among the CPUs we may use, the first for us, the last for
		 * the servers: every round trip crosses the same two CPUs,
		 * whichever target it goes to. */
		if (sched_getaffinity(0, sizeof cpus_all, &cpus_all) == 0)
			for (c = 0; c < CPU_SETSIZE; c++)
				if (CPU_ISSET(c, &cpus_all)) {
					if (first < 0)
						first = c;
					last = c;
				}
		if (opt.pin && first >= 0 && last > first) {
			cpu_client = first;
			cpu_server = last;
			if (opt.pin == 2)
				pin_to(0, cpu_client);
		}
	}
	tlist_init(&g_msg);
	dbus_hello_init();
	snprintf(workdir, sizeof workdir, "%s/commreg-compare.XXXXXX",
	    opt.workdir ? opt.workdir : "/tmp");
	if (mkdtemp(workdir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	note("work directory %s", workdir);
	read_loadavg(load_start, sizeof load_start);
	cpu_mark(&mark_start);

	if (strchr(opt.phases, 'A') || strchr(opt.phases, 'B') ||
	    strchr(opt.phases, 'C')) {
		struct steady s[NT];

		note("starting commregd, nnsd, dbus-daemon, echo floor; "
		     "%d names each",
		    opt.names);
		for (k = 0; k < NT; k++)
			steady_setup(&s[k], (enum tkind)k);
		if (strchr(opt.phases, 'A')) {
			steady_rtt_round(s, true);
			for (k = 0; k < NT; k++)
				steady_tput_round(&s[k], true);
			for (r = 0; r < opt.rounds; r++) {
				note("steady round %d of %d", r + 1,
				    opt.rounds);
				steady_rtt_round(s, false);
				for (i = 0; i < NT; i++)
					steady_tput_round(&s[(r + i) % NT],
					    false);
			}
		}
		if (strchr(opt.phases, 'B')) {
			for (r = 0; r < opt.reg_rounds; r++) {
				note("registration round %d of %d", r + 1,
				    opt.reg_rounds);
				for (i = 0; i < NT; i++) {
					struct target *t = &s[(r + i) % NT].t;
					char pre[32];

					snprintf(pre, sizeof pre, "r%da", r);
					sample_add(&res[M_REG1K][t->kind],
					    register_names(t, 1000, pre));
					snprintf(pre, sizeof pre, "r%db", r);
					sample_add(&res[M_REG10K][t->kind],
					    register_names(t, 10000, pre));
				}
			}
		}
		if (strchr(opt.phases, 'C')) {
			struct fan f[NT];
			int nf = NT;

			for (k = 0; k < NT; k++)
				steady_release_clients(&s[k]);
			/* Let the servers finish dropping the closed
			 * connections and phase B's names. */
			usleep(300000);
			note("fan-out: %d watchers on each target",
			    opt.watchers);
			for (k = 0; k < nf; k++)
				fan_setup(&f[k], &s[k].t, opt.watchers);
			nnsd_fds_fanout = proc_nfds(s[T_NNSD].t.pid);
			for (k = 0; k < nf; k++)
				fan_once(&f[k], false, 0); /* warm-up */
			for (r = 0; r < opt.fan_reps; r++)
				for (i = 0; i < nf; i++) {
					struct fan *fp = &f[(r + i) % nf];

					sample_add(&res[M_FAN_LIT][fp->t->kind],
					    fan_once(fp, false, r));
					sample_add(&res[M_FAN_GLOB]
					               [fp->t->kind],
					    fan_once(fp, true, r));
				}
			for (k = 0; k < nf; k++)
				fan_teardown(&f[k]);
		}
		for (k = 0; k < NT; k++)
			steady_teardown(&s[k]);
	}
	if (strchr(opt.phases, 'D')) {
		note("memory: %d names (fresh commregd, nnsd, dbus-daemon)",
		    opt.mem_names);
		mem_names(T_COMMREGD);
		mem_names(T_NNSD);
		mem_names(T_DBUS);
		note("idle connections: %d (fresh commregd, dbus-daemon, echo "
		     "floor)",
		    opt.idle);
		{
			struct target ref;
			struct conn *refc;
			struct reqset refrs;

			target_start(&ref, T_ECHO);
			refc = conn_open1(&ref);
			reqset_init(&refrs, T_ECHO);
			reqset_add(&refrs, OP_LOOKUP, "probe-app", 4242, NULL);
			mem_idle(T_COMMREGD, refc, &refrs, ref.pid);
			mem_idle(T_DBUS, refc, &refrs, ref.pid);
			mem_idle(T_ECHO, refc, &refrs, ref.pid);
			reqset_free(&refrs);
			conn_free(refc);
			target_stop(&ref);
		}
	}
	report();
	note("done in %.0f s", (now_us() - t_start) / 1e6);
	stop_all();
	/* The servers' logs stay with -v, for a look at what they said. */
	if (!opt.verbose)
		nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		note("logs kept in %s", workdir);
	return 0;
}
