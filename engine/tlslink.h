/*
 * What the two kinds of TLS link share: the gateways' federation
 * (gateway/fed.c, certificates) and the distributed user registry
 * (local/dist.c, a pre-shared key).  Both make and accept TCP
 * connections, set TLS up through libevent's OpenSSL bufferevents, then
 * hand the connection to the engine (peer_new_bev), which owns every
 * limit from there on, the liveness ping included.
 *
 * A library of its own (commtls), because it needs OpenSSL and
 * libevent_openssl, which the engine, and so libcommreg.so, does not.
 */
#ifndef ENGINE_TLSLINK_H
#define ENGINE_TLSLINK_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "peer.h"

/*
 * Links from others that may be setting up TLS or linked at once, in all
 * and from one address: a flood of half-open TLS set-ups from one place
 * must not take the room of the hosts that link from others.  The same
 * for both kinds: each accepted link costs the same (a descriptor, a TLS
 * session, a handshake deadline) and either listener may face anyone on
 * the network before the handshake says who it is.
 */
#define TLSLINK_MAX_ACCEPTED   256
#define TLSLINK_MAX_PER_SOURCE 8

/*
 * Why a TLS link failed, in words for the log: "closed by the other end"
 * once TLS was up; else first what the caller knows (first: its own
 * reason, as a failed certificate check or a refused PSK identity; NULL
 * or "" for none), then OpenSSL's error queue on bev (emptied), then the
 * socket's error, then what the event says (what: BEV_EVENT_*).  bev may
 * be NULL.
 */
void tlslink_reason(struct bufferevent *bev, short what, const char *first,
    char *buf, size_t len);

/*
 * Options of a link's TCP socket (fd < 0: nothing): no Nagle, since
 * both ways carry small messages; and keepalive only where the engine's
 * liveness ping, under lim, would not notice a vanished peer as soon.
 */
void tlslink_tune_socket(evutil_socket_t fd, const struct engine_limits *lim);

/*
 * The TLS set-up of a link: a bufferevent for ssl on fd (accepted), or on
 * a socket it makes when connected (fd -1, bufferevent_socket_connect),
 * closing it when freed; cb(arg) hears how the set-up ends; deadline is
 * armed for ms, the set-up as a whole however slowly its bytes come.
 * NULL when libevent cannot (fd is still the caller's to close).
 */
struct bufferevent *tlslink_bev_new(struct event_base *, evutil_socket_t fd,
    SSL *ssl, bool accepting, bufferevent_event_cb cb, void *arg,
    struct event *deadline, int ms);

/*
 * A link is over, by its owner's choice: its deadline stopped, its
 * bufferevent (still in the TLS set-up) freed, or its engine peer closed
 * without a word back to the owner (the engine frees it later).  *bev
 * and *peer are NULL after.
 */
void tlslink_release(struct event *deadline, struct bufferevent **bev,
    struct peer **peer);

#endif
