/*
 * example_c: the complete example program of docs/c-api.md.  A comm
 * application registers NAME for its comm PORT, watches who comes and
 * goes, looks itself up, and keeps its name when the registry dies (a new
 * one is elected on the same port).  Stop it with Ctrl-C.
 *
 *   cc -o example_c example_c.c $(pkg-config --cflags --libs commreg)
 *   ./example_c myapp 5555
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include <commreg.h>

static void
on_lookup(struct commreg_async *a, int status, const char *id, void *arg)
{
	printf("lookup %s: %s\n", (const char *)arg, status == 0 ? id : "-");
}

static void
on_registered(struct commreg_async *a, struct commreg_reg *r, int status,
    const char *name, void *arg)
{
	if (status != 0) {
		fprintf(stderr, "cannot register: %s\n", name);
		return;
	}
	printf("registered as \"%s\"\n", name);
	commreg_async_lookup(a, commreg_reg_name(r), on_lookup,
	    (void *)commreg_reg_name(r));
}

static void
on_watch(struct commreg_async *a, struct commreg_watch *w,
    const struct commreg_watch_event *ev, void *arg)
{
	size_t i;

	switch (ev->what) {
	case COMMREG_WATCH_SNAPSHOT:
		printf("%s: %zu applications\n",
		    ev->resync ? "after failover" : "now", ev->n);
		for (i = 0; i < ev->n; i++)
			printf("  %s on port %d\n", ev->entries[i].name,
			    ev->entries[i].port);
		break;
	case COMMREG_WATCH_ADD:
		printf("+ %s on port %d\n", ev->entry->name, ev->entry->port);
		break;
	case COMMREG_WATCH_REMOVE:
		printf("- %s\n", ev->entry->name);
		break;
	case COMMREG_WATCH_ERROR:
		fprintf(stderr, "watch refused: %s\n", ev->message);
		break;
	}
}

static void
on_lost(struct commreg_async *a, const char *why, void *arg)
{
	printf("registry lost (%s)\n", why);
}

static void
on_regained(struct commreg_async *a, int port, int hosted, void *arg)
{
	printf("registry back on port %d%s\n", port,
	    hosted ? ", served by this process" : "");
}

static void
on_renamed(struct commreg_async *a, struct commreg_reg *r, const char *oldname,
    const char *newname, void *arg)
{
	printf("now known as \"%s\" (\"%s\" was taken)\n", newname, oldname);
}

static void
on_sigint(evutil_socket_t sig, short what, void *base)
{
	event_base_loopbreak(base);
}

int
main(int argc, char **argv)
{
	struct commreg_async_opts o = {0};
	struct commreg_async *a;
	struct event_base *base;
	struct event *sig;
	char err[512];

	if (argc != 3) {
		fprintf(stderr, "usage: example_c NAME PORT\n");
		return 2;
	}
	base = event_base_new();
	o.on_lost = on_lost;
	o.on_regained = on_regained;
	o.on_renamed = on_renamed;
	if ((a = commreg_async_open(base, &o, err, sizeof err)) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* Both wait for the registry; the callbacks say when they are in. */
	commreg_async_register(a, argv[1], atoi(argv[2]), NULL, on_registered,
	    NULL);
	commreg_async_watch(a, "*", on_watch, NULL);

	sig = evsignal_new(base, SIGINT, on_sigint, base);
	evsignal_add(sig, NULL);
	event_base_dispatch(base);

	commreg_async_close(a); /* the registry drops our name */
	event_free(sig);
	event_base_free(base);
	return 0;
}
