/*
 * The TLS links' shared pieces (tlslink.h): the words for a failure, the
 * socket's options, and the set-up's start and end.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <stdio.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tlslink.h"

/*
 * TCP keepalive: probes after this much silence, this often, this many
 * times before the kernel gives up (45 s in all).
 */
#define TLSLINK_KEEPIDLE_S  30
#define TLSLINK_KEEPINTVL_S 5
#define TLSLINK_KEEPCNT     3

void
tlslink_reason(struct bufferevent *bev, short what, const char *first,
    char *buf, size_t len)
{
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	unsigned long e;
	size_t off = 0;

	buf[0] = '\0';
	/* A link the other end closed after a good handshake is just that;
	 * OpenSSL calls it an unexpected EOF. */
	if ((what & BEV_EVENT_EOF) && ssl != NULL &&
	    SSL_is_init_finished(ssl)) {
		while (bufferevent_get_openssl_error(bev) != 0)
			;
		snprintf(buf, len, "closed by the other end");
		return;
	}
	if (first != NULL && first[0] != '\0')
		off += (size_t)snprintf(buf, len, "%s; ", first);
	while (bev != NULL && (e = bufferevent_get_openssl_error(bev)) != 0 &&
	       off < len - 1) {
		char one[256];

		/* Library 0 carries system errno values, said below. */
		if (ERR_GET_LIB(e) == 0)
			continue;
		ERR_error_string_n(e, one, sizeof one);
		off += (size_t)snprintf(buf + off, len - off, "%s; ", one);
	}
	if (off == 0 && (what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0)
		snprintf(buf, len, "%s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else if (off == 0)
		snprintf(buf, len, "%s",
		    (what & BEV_EVENT_EOF)       ? "closed by the other end"
		    : (what & BEV_EVENT_TIMEOUT) ? "timed out"
		                                 : "connection error");
	else if (off >= 2 && off < len)
		buf[off - 2] = '\0';
}

void
tlslink_tune_socket(evutil_socket_t fd, const struct engine_limits *lim)
{
	int one = 1, idle = TLSLINK_KEEPIDLE_S, intvl = TLSLINK_KEEPINTVL_S,
	    cnt = TLSLINK_KEEPCNT;
	int liveness_ms = lim->ping_idle_ms > 0
	                      ? lim->ping_idle_ms + lim->ping_timeout_ms
	                      : 0;

	if (fd < 0)
		return;
	/* A reply, an event: small messages; without this the TLS
	 * handshake's last flight waits for a delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/*
	 * Keepalive would duplicate the engine's liveness ping
	 * (engine/peer.h): once TLS is up, the engine pings a link silent for
	 * ping_idle and drops it after ping_timeout more, which also covers a
	 * host that vanished without a FIN (the ping is never answered); and
	 * the TLS set-up has its own deadline.  The ping keeps the link from
	 * ever being idle for as long as keepalive waits, so the probes would
	 * not even be sent.  Only with the ping off (liveness 0), or slower
	 * than keepalive's 45 s, is keepalive the quicker word that the other
	 * end is gone.
	 */
	if (liveness_ms > 0 &&
	    liveness_ms <=
	        (TLSLINK_KEEPIDLE_S + TLSLINK_KEEPINTVL_S * TLSLINK_KEEPCNT) *
	            1000)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

struct bufferevent *
tlslink_bev_new(struct event_base *base, evutil_socket_t fd, SSL *ssl,
    bool accepting, bufferevent_event_cb cb, void *arg, struct event *deadline,
    int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct bufferevent *bev;

	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		return NULL;
	bufferevent_setcb(bev, NULL, NULL, cb, arg);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	evtimer_add(deadline, &tv);
	return bev;
}

void
tlslink_release(struct event *deadline, struct bufferevent **bev,
    struct peer **peer)
{
	evtimer_del(deadline);
	if (*bev != NULL) {
		bufferevent_free(*bev);
		*bev = NULL;
	}
	if (*peer != NULL) {
		/* Closed by its owner: the engine frees it later, without
		 * calling the owner back. */
		(*peer)->ops = NULL;
		(*peer)->arg = NULL;
		peer_close(*peer);
		*peer = NULL;
	}
}
