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

#include <stddef.h>

#include <event2/util.h>

#include "peer.h"

struct bufferevent;

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

#endif
