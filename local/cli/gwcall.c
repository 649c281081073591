/*
 * Asking the host gateway, as a user registry links to it (local/gwlink.c):
 * its Unix socket, the comm handshake and requests through the peer
 * engine, Commreg/Hello first to be sure commgwd answers.  Blocking, on
 * a private event loop, every wait bounded.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "gwcall.h"
#include "peer.h"
#include "tcllist.h"

#define GWCALL_TIMEOUT_MS 5000

struct gwcall {
	struct event_base *base;
	struct tbuf *out[2];
	int code[2];
	int waiting;
};

/* What a request's answer is for: the call, and which of its two. */
struct gwslot {
	struct gwcall *g;
	int i;
};

static void
answered(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	struct gwslot *slot = arg;
	struct gwcall *g = slot->g;
	int i = slot->i;

	g->code[i] = code;
	tbuf_reset(g->out[i]);
	tbuf_add(g->out[i], res, len);
	tbuf_addc(g->out[i], '\0');
	g->out[i]->len--;
	if (--g->waiting == 0)
		event_base_loopbreak(g->base);
}

/* Is this Hello's reply commgwd's (`gateway commgwd ...`)? */
static int
is_gateway(const struct tbuf *hello)
{
	struct tlist d;
	const char *err;
	size_t i;
	int yes = 0;

	tlist_init(&d);
	if (tlist_parse(&d, hello->p, hello->len, &err) == 0 && d.n % 2 == 0)
		for (i = 0; i < d.n; i += 2)
			if (strcmp(d.v[i].p, "gateway") == 0 &&
			    strcmp(d.v[i + 1].p, "commgwd") == 0)
				yes = 1;
	tlist_free(&d);
	return yes;
}

int
gwcall_stats(const char *path, struct tbuf *hello, struct tbuf *stats,
    char *err, size_t errlen)
{
	static const char *const w_hello[] = {"Commreg/Hello", COMMREG_VERSION};
	static const char *const w_stats[] = {"Commreg/Stats"};
	static const struct peer_ops ops = {NULL, NULL, NULL, NULL};
	struct gwslot slots[2];
	struct engine_limits lim;
	struct sockaddr_un sun;
	struct engine eng;
	struct gwcall g;
	struct peer *p;
	int fd, rc = -1, i;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		snprintf(err, errlen,
		    "the host gateway does not answer on %s: %s", path,
		    strerror(errno));
		close(fd);
		return GWCALL_DOWN;
	}
	memset(&g, 0, sizeof g);
	if ((g.base = event_base_new()) == NULL) {
		close(fd);
		snprintf(err, errlen, "event_base_new failed");
		return -1;
	}
	if (engine_init(&eng, g.base) == -1) {
		close(fd);
		event_base_free(g.base);
		snprintf(err, errlen, "cannot start the engine");
		return -1;
	}
	engine_default_limits(&lim);
	lim.max_message = 16 * 1024 * 1024; /* links: a dict per link */
	p = peer_new(&eng, fd, false, path, &lim, &ops, NULL);
	g.out[0] = hello;
	g.out[1] = stats;
	for (i = 0; i < 2; i++) {
		slots[i].g = &g;
		slots[i].i = i;
	}
	g.code[0] = g.code[1] = -1;
	if (p == NULL ||
	    peer_request(p, w_hello, NULL, 2, GWCALL_TIMEOUT_MS, answered,
	        &slots[0]) == NULL ||
	    peer_request(p, w_stats, NULL, 1, GWCALL_TIMEOUT_MS, answered,
	        &slots[1]) == NULL) {
		snprintf(err, errlen, "cannot ask the host gateway on %s",
		    path);
		goto out;
	}
	g.waiting = 2;
	/* Each request has its deadline: the loop ends by their answers. */
	for (i = 0; g.waiting > 0 && i < 1000000; i++)
		if (event_base_loop(g.base, EVLOOP_ONCE) != 0)
			break;
	if (g.waiting > 0 || g.code[0] == -1 || g.code[1] == -1) {
		snprintf(err, errlen, "the host gateway on %s: %s", path,
		    g.code[0] == -1   ? hello->p
		    : g.code[1] == -1 ? stats->p
		                      : "no answer");
		goto out;
	}
	if (g.code[0] != 0 || !is_gateway(hello)) {
		snprintf(err, errlen, "the peer on %s is not commgwd", path);
		goto out;
	}
	if (g.code[1] != 0) {
		snprintf(err, errlen,
		    "the host gateway on %s: Commreg/Stats: %s", path,
		    stats->p);
		goto out;
	}
	rc = 0;
out:
	engine_free(&eng);
	event_base_free(g.base);
	return rc;
}
