/*
 * The registry server (server.h): the listener, who may connect, and
 * what goes when a peer goes.  Everything a connection does after that is
 * the peer engine's (engine/peer.c); protocol commands live in handlers.c,
 * the table in registry.c.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/util.h>

#include "handlers.h"
#include "listenrest.h"
#include "log.h"
#include "peeruid.h"
#include "server.h"

void
server_default_opts(struct server_opts *o)
{
	struct engine_limits l;

	engine_default_limits(&l);
	o->max_message = l.max_message;
	o->max_names = 1024;
	o->max_watches = 256;
	o->max_conns = 65536; /* capped by RLIMIT_NOFILE in commregd */
	o->max_output = l.max_output;
	o->handshake_timeout = l.handshake_ms / 1000;
	o->partial_ms = l.partial_ms;
	o->ping_idle_ms = l.ping_idle_ms;
	o->ping_timeout_ms = l.ping_timeout_ms;
}

int
server_parse_liveness(struct server_opts *o, const char *arg)
{
	char *end;
	long ms = strtol(arg, &end, 10);

	if (end == arg || *end != '\0' || (ms != 0 && ms < 300) ||
	    ms > 86400000)
		return -1;
	/* Silent for a third: a ping; silent for the whole: gone. */
	o->ping_idle_ms = (int)(ms / 3);
	o->ping_timeout_ms = (int)(ms - ms / 3);
	return 0;
}

/* The engine tells us a peer goes: its entries and watches go with it. */
static void
server_peer_gone(struct peer *p, const char *why)
{
	struct server *s = p->srv;
	struct reg_watch *w, *wn;
	struct reg_entry *e, *en;

	if (s == NULL)
		return; /* refused by the kind's admit: never served */
	if (s->ops != NULL && s->ops->gone != NULL)
		s->ops->gone(p);
	/* Watches first: a closing client is not told of its own names. */
	TAILQ_FOREACH_SAFE(w, &p->watches, owner_link, wn)
		registry_watch_remove(s->reg, w, &p->watches);
	TAILQ_FOREACH_SAFE(e, &p->entries, owner_link, en)
		registry_remove(s->reg, e, &p->entries);
	s->npeers--;
}

void
server_flush(struct server *s)
{
	engine_flush(&s->eng);
}

/* Refusals are logged once per source and interval (a flood of them
 * must not fill the owner's disk), with a count of the rest. */
static void
refuse(struct server *s, int fd, const char *key, const char *addr,
    const char *why)
{
	log_limited(key, "refused %s: %s", addr, why);
	s->refused++;
	close(fd);
}

static void
server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct server *s = arg;
	struct peer *p;
	char addr[64], host[INET6_ADDRSTRLEN], err[256], key[64];
	uid_t uid = (uid_t)-1;
	int one = 1;

	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		snprintf(addr, sizeof addr, "%s:%d", host,
		    ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_UNIX)
		snprintf(addr, sizeof addr, "unix#%llu",
		    (unsigned long long)++s->accepted);
	else
		snprintf(addr, sizeof addr, "(family %d)", sa->sa_family);

	if (s->npeers >= s->o.max_conns) {
		snprintf(err, sizeof err, "already %zu connections (limit)",
		    s->npeers);
		refuse(s, fd, "the connection limit", addr, err);
		return;
	}
	if (s->ops == NULL || s->ops->admit == NULL) {
		/* Trust is decided here, before a single byte is read: the
		 * kernel says who owns the other end (docs/security.md). */
		if (peeruid_lookup(fd, &uid, err, sizeof err) == -1) {
			char why[300];

			snprintf(why, sizeof why, "cannot tell who it is: %s",
			    err);
			refuse(s, fd, "unknown peers", addr, why);
			return;
		}
		if (uid != s->uid) {
			snprintf(key, sizeof key, "uid %ld", (long)uid);
			snprintf(err, sizeof err,
			    "uid %ld is not the owner of this registry "
			    "(uid %ld)",
			    (long)uid, (long)s->uid);
			refuse(s, fd, key, addr, err);
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if ((p = peer_new(&s->eng, fd, true, addr, &s->lim, &s->pops, s)) ==
	    NULL) {
		/* Out of memory (a daemon ends first): the engine closed fd. */
		log_limited("nomem", "refused %s: out of memory", addr);
		s->refused++;
		return;
	}
	p->srv = s;
	p->uid = uid;
	s->npeers++;
	if (s->ops != NULL && s->ops->admit != NULL &&
	    s->ops->admit(s, p, err, sizeof err) == -1) {
		/* The kind's refusal: the peer was never served. */
		snprintf(key, sizeof key, "uid %ld", (long)p->uid);
		log_limited(key, "refused %s: %s", addr, err);
		s->refused++;
		p->srv = NULL; /* nothing of the registry's to undo */
		s->npeers--;
		peer_close(p);
		return;
	}
	log_debug("peer %s: connected", addr);
}

/* EMFILE and friends: keep serving who we have; the listener rests
 * (listenrest.h). */
static void
server_accept_error(struct evconnlistener *l, void *arg)
{
	struct server *s = arg;

	listen_rest_accept_error(s->listener, s->accept_rest,
	    EVUTIL_SOCKET_ERROR(), NULL);
}

int
server_init(struct server *s, struct event_base *base, int listen_fd, int port,
    const char *host, const struct server_opts *o)
{
	return server_init_ops(s, NULL, NULL, base, listen_fd, port, host, o);
}

int
server_init_ops(struct server *s, const struct server_ops *ops, void *data,
    struct event_base *base, int listen_fd, int port, const char *host,
    const struct server_opts *o)
{
	memset(s, 0, sizeof *s);
	s->ops = ops;
	s->data = data;
	s->base = base;
	s->o = *o;
	s->lim.max_message = o->max_message;
	s->lim.max_output = o->max_output;
	{
		/* The burst bound is the engine's (peer.h): --max-output says
		 * what may stay queued, not what a moment may bring. */
		struct engine_limits d;

		engine_default_limits(&d);
		s->lim.max_burst = d.max_burst;
	}
	s->lim.handshake_ms = o->handshake_timeout * 1000;
	s->lim.partial_ms = o->partial_ms;
	s->lim.ping_idle_ms = o->ping_idle_ms;
	s->lim.ping_timeout_ms = o->ping_timeout_ms;
	s->pops.find = ops != NULL && ops->find != NULL ? ops->find : cmd_find;
	s->pops.gone = server_peer_gone;
	s->uid = getuid();
	s->port = port;
	s->started = time(NULL);
	snprintf(s->host, sizeof s->host, "%s", host);
	tbuf_init(&s->note);
	if (engine_init(&s->eng, base) == -1 ||
	    (s->accept_rest = listen_rest_new(base, &s->listener)) == NULL)
		goto fail;
	s->reg =
	    registry_new(ops != NULL && ops->notify != NULL ? ops->notify
	                                                    : handlers_notify,
	        s);
	if (s->reg == NULL)
		goto fail;
	/* Backlog 0: listen_fd listens already, with the backlog its maker
	 * chose (election.c); -1 would have libevent listen() again with
	 * 128, and a crowd reconnecting at once to a standby would
	 * overflow it (each dropped SYN is sent again only a second later). */
	/* Whoever made listen_fd (the election, a registry handing it to
	 * its standby): the listener accepts until EAGAIN, and on a
	 * blocking socket would wait in accept(2) with every other client
	 * unserved.  The flag is the socket's, shared with its maker. */
	if (evutil_make_socket_nonblocking(listen_fd) == -1)
		goto fail;
	s->listener = evconnlistener_new(base, server_accept, s,
	    LEV_OPT_CLOSE_ON_FREE, 0, listen_fd);
	if (s->listener == NULL)
		goto fail;
	evconnlistener_set_error_cb(s->listener, server_accept_error);
	return 0;
fail:
	/* Only allocations (and fcntl on a descriptor that is not one) fail
	 * here: undo what was made; listen_fd stays the caller's. */
	if (s->accept_rest != NULL)
		event_free(s->accept_rest);
	engine_free(&s->eng);
	if (s->reg != NULL)
		registry_free(s->reg);
	tbuf_free(&s->note);
	return -1;
}

void
server_free(struct server *s)
{
	engine_free(&s->eng);
	evconnlistener_free(s->listener);
	event_free(s->accept_rest);
	registry_free(s->reg);
	tbuf_free(&s->note);
}
