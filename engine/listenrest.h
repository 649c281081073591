/*
 * A listener out of descriptors rests.  When accept(2) fails for want
 * of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
 * pending connection stays in the kernel's queue and would make the
 * listener fire again at once, for ever, at full CPU; so the listener
 * is taken out of the loop for LISTEN_REST_MS (the descriptors of peers
 * that go come back meanwhile) and the log says so once per interval.
 * The registry's listener (local/server.c), the distributed registry's
 * link listener (local/dist.c) and the federation's (gateway/fed.c)
 * share it.
 */
#ifndef ENGINE_LISTENREST_H
#define ENGINE_LISTENREST_H

#include <event2/event.h>
#include <event2/listener.h>

#define LISTEN_REST_MS 100

/*
 * The timer that ends a rest: it enables *lp, if not NULL then.  A
 * pointer to the owner's listener field rather than the listener, since
 * the listener may be made after the timer, or handed from an old owner
 * to a new one (the federation's, on reload).  NULL when out of memory.
 */
struct event *listen_rest_new(struct event_base *base,
    struct evconnlistener **lp);

/*
 * For the listener's error callback: accept(2) failed with err.  Out of
 * descriptors or memory, lis rests (rest: the timer of listen_rest_new);
 * any other error is only logged.  who names the listener in the log
 * ("federation: accept: ..."); NULL for the registry's own ("accept:
 * ...").
 */
void listen_rest_accept_error(struct evconnlistener *lis, struct event *rest,
    int err, const char *who);

#endif
