/* A listener out of descriptors rests (listenrest.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "listenrest.h"
#include "log.h"

static void
listen_rest_over(evutil_socket_t fd, short ev, void *arg)
{
	struct evconnlistener **lp = arg;

	if (*lp != NULL)
		evconnlistener_enable(*lp);
}

struct event *
listen_rest_new(struct event_base *base, struct evconnlistener **lp)
{
	return evtimer_new(base, listen_rest_over, lp);
}

void
listen_rest_accept_error(struct evconnlistener *lis, struct event *rest,
    int err, const char *who)
{
	struct timeval tv = {0, LISTEN_REST_MS * 1000};
	char key[64];

	/* One key per listener, so that one resting does not hide
	 * another's lines. */
	snprintf(key, sizeof key, "%s%saccept", who != NULL ? who : "",
	    who != NULL ? " " : "");
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_limited(key, "%s%saccept: %s; not accepting for %d ms",
		    who != NULL ? who : "", who != NULL ? ": " : "",
		    strerror(err), LISTEN_REST_MS);
		evconnlistener_disable(lis);
		evtimer_add(rest, &tv);
	} else
		log_limited(key, "%s%saccept: %s", who != NULL ? who : "",
		    who != NULL ? ": " : "", strerror(err));
}
