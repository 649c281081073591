/*
 * capp: a C test application on the asynchronous client library
 * (commreg.h), for the election, failover and chaos tests.
 *
 *   capp [--home DIR] [--inprocess] [--commregd PATH] [-v] NAME...
 *   capp [--home DIR] [--inprocess] [--commregd PATH] [-v] --watch PATTERN
 *   ... [--lookup NAME]...    look NAME up at each SIGUSR1
 *   ... [--scope S]           register with scope S (user, host, global)
 *
 * With --dual-stack it listens on [::] without IPV6_V6ONLY instead (an
 * IPv4 connection is then the kernel's tcp6 socket, v4-mapped) and keeps
 * what it accepts open, for the checks of who accepted a connection.
 * It listens on 127.0.0.1 (its "comm port": connections are accepted and
 * closed), registers each NAME with that port and prints one line per
 * happening on stdout, flushed, the text after the keyword as it is:
 *
 *   registered NAME ASSIGNED    a name is registered ("foo" -> "foo #2")
 *   lost REASON                 the registry connection closed
 *   regained PORT hosted|connected
 *                               registry back, every name and watch too;
 *                               hosted: this process serves it now
 *   renamed OLD NEW             a name came back with another serial
 *   error TEXT                  something failed
 *   private PORT                bound to the private registry on PORT
 *                               (TCL_COMM_REGPORT), said once open
 *   dropped NAME REASON         that private registry is gone, and NAME;
 *                               or the host gateway withdrew NAME
 *   lookup NAME ok|stale|error RESULT
 *                               a lookup's answer (--lookup, SIGUSR1)
 *
 * With --watch: "snapshot N", then one "add NAME" or "remove NAME" per
 * change.  The view starts empty and each snapshot is followed by the
 * lines that turn the previous view into it: at first N adds, after a
 * failover the difference.  Runs until SIGTERM or SIGINT (exit 0); exit
 * 1 when no registry can be had at all, 2 on a usage error.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "commreg.h"

#define MAX_LOOKUPS 8

struct capp {
	struct event_base *base;
	struct commreg_async *a;
	int rc;
	const char *lookups[MAX_LOOKUPS];
	int nlookups;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: capp [--home DIR] [--inprocess] [--commregd PATH] "
	            "[--scope S] [--dual-stack] [-v] NAME...\n"
	            "       capp [--home DIR] [--inprocess] [--commregd PATH] "
	            "[-v] --watch PATTERN\n"
	            "  either with [--lookup NAME]...: looked up at SIGUSR1\n");
}

static void
on_open(struct commreg_async *a, int status, const char *msg, void *arg)
{
	struct capp *c = arg;

	if (status != 0) {
		say("error %s", msg);
		c->rc = 1;
		event_base_loopbreak(c->base);
		return;
	}
	if (commreg_async_private(a))
		say("private %d", commreg_async_private(a));
}

static void
on_reg_lost(struct commreg_async *a, struct commreg_reg *r, const char *why,
    void *arg)
{
	say("dropped %s %s", commreg_reg_name(r), why);
}

static void
on_lookup(struct commreg_async *a, int status, const char *res, void *arg)
{
	const char *name = arg;

	say("lookup %s %s %s", name,
	    status == 0               ? "ok"
	    : status == COMMREG_STALE ? "stale"
	                              : "error",
	    res);
}

static void
on_usr1(evutil_socket_t sig, short ev, void *arg)
{
	struct capp *c = arg;
	int i;

	for (i = 0; i < c->nlookups; i++) {
		if (commreg_async_lookup(c->a, c->lookups[i], on_lookup,
		        (void *)c->lookups[i]) == -1)
			say("lookup %s error not possible", c->lookups[i]);
	}
}

static void
on_lost(struct commreg_async *a, const char *why, void *arg)
{
	say("lost %s", why);
}

static void
on_regained(struct commreg_async *a, int port, int hosted, void *arg)
{
	say("regained %d %s", port, hosted ? "hosted" : "connected");
}

static void
on_renamed(struct commreg_async *a, struct commreg_reg *r, const char *oldname,
    const char *newname, void *arg)
{
	say("renamed %s %s", oldname, newname);
}

static void
on_error(struct commreg_async *a, const char *msg, void *arg)
{
	say("error %s", msg);
}

static void
on_registered(struct commreg_async *a, struct commreg_reg *r, int status,
    const char *msg, void *arg)
{
	if (status == 0)
		say("registered %s %s", commreg_reg_base(r), msg);
	else
		say("error cannot register %s: %s", commreg_reg_base(r), msg);
}

static void
on_watch(struct commreg_async *a, struct commreg_watch *w,
    const struct commreg_watch_event *ev, void *arg)
{
	size_t i;

	switch (ev->what) {
	case COMMREG_WATCH_SNAPSHOT:
		say("snapshot %zu", ev->n);
		/* The first one: all adds.  Later ones: the library sends
		 * the difference as resync events. */
		if (!ev->resync) {
			for (i = 0; i < ev->n; i++)
				say("add %s", ev->entries[i].name);
		}
		break;
	case COMMREG_WATCH_ADD:
		say("add %s", ev->entry->name);
		break;
	case COMMREG_WATCH_REMOVE:
		say("remove %s", ev->entry->name);
		break;
	case COMMREG_WATCH_ERROR:
		say("error %s", ev->message);
		break;
	}
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct capp *c = arg;

	event_base_loopbreak(c->base);
}

/* Someone called our comm port: we speak no comm here; hang up. */
static void
on_accept(evutil_socket_t fd, short ev, void *arg)
{
	int s;

	/* --dual-stack: kept open until the process ends, so that the
	 * connection is there to be looked up. */
	if ((s = accept(fd, NULL, NULL)) != -1 && arg == NULL)
		close(s);
}

static int
comm_listen_dual(int *port)
{
	struct sockaddr_in6 sin6;
	socklen_t len = sizeof sin6;
	int s, no = 0;

	s = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -1;
	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_any;
	if (setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no) == -1 ||
	    bind(s, (struct sockaddr *)&sin6, sizeof sin6) == -1 ||
	    listen(s, 16) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin6, &len) == -1) {
		close(s);
		return -1;
	}
	*port = ntohs(sin6.sin6_port);
	return s;
}

static int
comm_listen(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int s;

	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(s, 16) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) == -1) {
		close(s);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return s;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"home", required_argument, NULL, 'H'},
	    {"inprocess", no_argument, NULL, 'i'},
	    {"commregd", required_argument, NULL, 'c'},
	    {"watch", required_argument, NULL, 'w'},
	    {"lookup", required_argument, NULL, 'l'},
	    {"scope", required_argument, NULL, 's'},
	    {"dual-stack", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct commreg_async_opts o;
	struct capp c;
	struct event *sigterm, *sigint, *sigusr1, *acc;
	const char *watch = NULL, *scope = NULL;
	char err[1024];
	int ch, i, lfd, port, dual = 0;

	memset(&o, 0, sizeof o);
	memset(&c, 0, sizeof c);
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			o.home = optarg;
			break;
		case 'i':
			o.mode = COMMREG_MODE_INPROCESS;
			break;
		case 'c':
			o.commregd = optarg;
			break;
		case 'w':
			watch = optarg;
			break;
		case 's':
			scope = optarg;
			break;
		case 'd':
			dual = 1;
			break;
		case 'l':
			if (c.nlookups == MAX_LOOKUPS) {
				usage(stderr);
				return 2;
			}
			c.lookups[c.nlookups++] = optarg;
			break;
		case 'v':
			commreg_set_log_level(2);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if ((watch == NULL) == (optind == argc)) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((c.base = event_base_new()) == NULL) {
		say("error event_base_new failed");
		return 1;
	}
	if ((lfd = dual ? comm_listen_dual(&port) : comm_listen(&port)) == -1) {
		say("error cannot listen on 127.0.0.1");
		return 1;
	}
	acc = event_new(c.base, lfd, EV_READ | EV_PERSIST, on_accept,
	    dual ? &c : NULL);
	event_add(acc, NULL);

	o.on_open = on_open;
	o.on_lost = on_lost;
	o.on_regained = on_regained;
	o.on_renamed = on_renamed;
	o.on_error = on_error;
	o.on_reg_lost = on_reg_lost;
	o.arg = &c;
	if ((c.a = commreg_async_open(c.base, &o, err, sizeof err)) == NULL) {
		say("error %s", err);
		return 1;
	}
	if (watch != NULL)
		commreg_async_watch(c.a, watch, on_watch, &c);
	for (i = optind; i < argc; i++) {
		if (commreg_async_register_scope(c.a, argv[i], port, NULL,
		        scope, on_registered, &c) == NULL)
			say("error cannot register %s", argv[i]);
	}

	sigterm = evsignal_new(c.base, SIGTERM, on_signal, &c);
	sigint = evsignal_new(c.base, SIGINT, on_signal, &c);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	sigusr1 = evsignal_new(c.base, SIGUSR1, on_usr1, &c);
	evsignal_add(sigusr1, NULL);
	event_base_dispatch(c.base);

	commreg_async_close(c.a);
	event_free(sigterm);
	event_free(sigint);
	event_free(sigusr1);
	event_free(acc);
	close(lfd);
	event_base_free(c.base);
	return c.rc;
}
