/*
 * commgwd's privileged parent and what its unprivileged child does with
 * it (privsep.h).
 *
 * The parent keeps nothing between reloads: each one reads the directory
 * afresh, as root, with the checks of a start, and what it hands over is
 * exactly what it judged (the bytes gwconf_load kept), never a file read
 * again.  The child believes the parent's word on trust, not its
 * framing: every length is checked before it is used.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "gateway.h"
#include "gwconf.h"
#include "log.h"
#include "privsep.h"

struct privsep {
	struct event_base *base;
	struct bufferevent *bev; /* NULL once the other side is gone */
	pid_t peer;

	/* The parent's. */
	const char *config_dir;
	struct event *sig[4];
	bool child_gone;
	int status;

	/* The child's. */
	struct gateway *gw;
	void (*stop)(void *);
	void *stop_arg;
};

/* ---- the messages ------------------------------------------------------ */

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
add_header(struct tbuf *out, uint32_t type, uint32_t len)
{
	unsigned char h[PRIVSEP_HEADER];

	put32(h, type);
	put32(h + 4, len);
	tbuf_add(out, h, sizeof h);
}

static void
add_record(struct tbuf *out, char kind, const char *name, const char *data,
    size_t len)
{
	unsigned char h[9];

	h[0] = (unsigned char)kind;
	put32(h + 1, (uint32_t)strlen(name));
	put32(h + 5, (uint32_t)len);
	tbuf_add(out, h, sizeof h);
	tbuf_adds(out, name);
	tbuf_add(out, data, len);
}

int
privsep_encode(const struct gwconf *c, struct tbuf *out, char *err,
    size_t errlen)
{
	const struct gwconf_blob *pem[3] = {&c->cert_pem, &c->key_pem,
	    &c->ca_pem};
	size_t start = out->len, total = 9 + strlen(c->dir), i;

	/* Counted first: nothing too large is ever put together. */
	if (c->ntexts > PRIVSEP_FILES_MAX)
		return reason(err, errlen,
		    "%zu files are more than can be handed over (%d)",
		    c->ntexts, PRIVSEP_FILES_MAX);
	for (i = 0; i < c->ntexts; i++)
		total += 9 + strlen(c->texts[i].name) + c->texts[i].len;
	for (i = 0; i < 3; i++)
		if (pem[i]->data != NULL)
			total += 9 + strlen(pem[i]->name) + pem[i]->len;
	if (total > PRIVSEP_MSG_MAX)
		return reason(err, errlen,
		    "the configuration is %zu bytes, more than can be handed "
		    "over (%d)",
		    total, PRIVSEP_MSG_MAX);
	add_header(out, PRIVSEP_CONFIG, (uint32_t)total);
	add_record(out, 'D', c->dir, "", 0);
	for (i = 0; i < c->ntexts; i++)
		add_record(out, 'F', c->texts[i].name, c->texts[i].data,
		    c->texts[i].len);
	for (i = 0; i < 3; i++)
		if (pem[i]->data != NULL)
			add_record(out, 'P', pem[i]->name, pem[i]->data,
			    pem[i]->len);
	if (out->len - start != PRIVSEP_HEADER + total)
		fatalx("%s: counted %zu bytes, wrote %zu", __func__, total,
		    out->len - start - PRIVSEP_HEADER);
	return 0;
}

int
privsep_header(const unsigned char *p, size_t avail, uint32_t *type,
    size_t *len, char *err, size_t errlen)
{
	if (avail < PRIVSEP_HEADER)
		return 0;
	*type = get32(p);
	*len = get32(p + 4);
	switch (*type) {
	case PRIVSEP_CONFIG:
		if (*len > PRIVSEP_MSG_MAX)
			return reason(err, errlen,
			    "a message of %zu bytes (at most %d)", *len,
			    PRIVSEP_MSG_MAX);
		return 1;
	case PRIVSEP_STOP:
	case PRIVSEP_RELOAD:
		if (*len != 0)
			return reason(err, errlen,
			    "%zu bytes with a message of type %u, which "
			    "carries none",
			    *len, (unsigned)*type);
		return 1;
	default:
		return reason(err, errlen, "a message of unknown type %u",
		    (unsigned)*type);
	}
}

/* A copy of n bytes at p, NUL-terminated. */
static char *
copy(const unsigned char *p, size_t n)
{
	char *s;

	if ((s = malloc(n + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int
privsep_decode(const unsigned char *p, size_t len, struct privsep_conf *c,
    char *err, size_t errlen)
{
	struct gwconf_blob *b;
	size_t off = 0, rem, nlen, dlen, dmax;
	char kind;

	memset(c, 0, sizeof *c);
	if (len > PRIVSEP_MSG_MAX) {
		reason(err, errlen, "a message of %zu bytes (at most %d)", len,
		    PRIVSEP_MSG_MAX);
		goto bad;
	}
	while (off < len) {
		rem = len - off;
		if (rem < 9) {
			reason(err, errlen,
			    "%zu bytes left over at offset %zu, too few for a "
			    "record",
			    rem, off);
			goto bad;
		}
		kind = (char)p[off];
		nlen = get32(p + off + 1);
		dlen = get32(p + off + 5);
		rem -= 9;
		switch (kind) {
		case 'D':
			dmax = 0;
			break;
		case 'F':
			dmax = GWCONF_FILE_MAX;
			break;
		case 'P':
			dmax = GWCONF_PEM_MAX;
			break;
		default:
			reason(err, errlen,
			    "a record of unknown kind %u at offset %zu",
			    (unsigned)(unsigned char)kind, off);
			goto bad;
		}
		/* Each length against its bound, then against what is left:
		 * neither sum can wrap. */
		if (nlen == 0 || nlen > PRIVSEP_NAME_MAX || dlen > dmax ||
		    nlen > rem || dlen > rem - nlen) {
			reason(err, errlen,
			    "a record '%c' at offset %zu with a name of %zu "
			    "and "
			    "data of %zu bytes (%zu left; at most %d and %zu)",
			    kind, off, nlen, dlen, rem, PRIVSEP_NAME_MAX, dmax);
			goto bad;
		}
		off += 9;
		if (memchr(p + off, '\0', nlen) != NULL) {
			reason(err, errlen,
			    "a record '%c' whose name has a NUL byte", kind);
			goto bad;
		}
		if ((kind == 'D') != (c->dir == NULL)) {
			reason(err, errlen,
			    "the directory must come first, and once");
			goto bad;
		}
		if (kind == 'D') {
			c->dir = copy(p + off, nlen);
			off += nlen;
			continue;
		}
		if (kind == 'F') {
			if (c->nini == PRIVSEP_FILES_MAX) {
				reason(err, errlen, "more than %d files",
				    PRIVSEP_FILES_MAX);
				goto bad;
			}
			b = reallocarray(c->ini, c->nini + 1, sizeof *b);
			if (b == NULL)
				fatal("%s", __func__);
			c->ini = b;
			b = &c->ini[c->nini++];
		} else {
			if (p[off] != '/' ||
			    c->npem == sizeof c->pem / sizeof c->pem[0]) {
				reason(err, errlen,
				    "a TLS file that is not an absolute path, "
				    "or more than three");
				goto bad;
			}
			b = &c->pem[c->npem++];
		}
		b->name = copy(p + off, nlen);
		b->data = copy(p + off + nlen, dlen);
		b->len = dlen;
		off += nlen + dlen;
	}
	if (c->dir == NULL) {
		reason(err, errlen, "no directory in the message");
		goto bad;
	}
	return 0;
bad:
	privsep_conf_free(c);
	return -1;
}

void
privsep_conf_free(struct privsep_conf *c)
{
	size_t i;

	for (i = 0; i < c->nini; i++) {
		free(c->ini[i].name);
		free(c->ini[i].data);
	}
	for (i = 0; i < c->npem; i++) {
		/* A key among them: nothing of it stays behind. */
		explicit_bzero(c->pem[i].data, c->pem[i].len);
		free(c->pem[i].name);
		free(c->pem[i].data);
	}
	free(c->ini);
	free(c->dir);
	memset(c, 0, sizeof *c);
}

/* ---- reading the other side ------------------------------------------- */

static void handle(struct privsep *, uint32_t type, const unsigned char *,
    size_t);
static void peer_gone(struct privsep *, const char *why, bool quiet);

/* Whole messages off the input; a bad header ends the conversation (the
 * framing cannot be trusted after it). */
static void
on_read(struct bufferevent *bev, void *arg)
{
	struct privsep *ps = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char h[PRIVSEP_HEADER];
	const unsigned char *p;
	uint32_t type;
	size_t len, avail;
	char err[256], why[300];
	int rc;

	while (ps->bev != NULL) {
		avail = evbuffer_get_length(in);
		if (avail < PRIVSEP_HEADER)
			return;
		evbuffer_copyout(in, h, sizeof h);
		rc = privsep_header(h, avail, &type, &len, err, sizeof err);
		if (rc == -1) {
			snprintf(why, sizeof why, "it sent %s", err);
			peer_gone(ps, why, false);
			return;
		}
		/* Judged by the header, before a byte more is kept: the
		 * child only asks, the parent only tells. */
		if ((ps->gw == NULL) != (type == PRIVSEP_RELOAD)) {
			snprintf(why, sizeof why,
			    "it sent a message of type %u, not its to send",
			    (unsigned)type);
			peer_gone(ps, why, false);
			return;
		}
		if (avail - PRIVSEP_HEADER < len)
			return; /* the rest is on its way */
		evbuffer_drain(in, PRIVSEP_HEADER);
		p = len > 0 ? evbuffer_pullup(in, (ev_ssize_t)len) : NULL;
		handle(ps, type, p, len);
		if (ps->bev == NULL ||
		    !(bufferevent_get_enabled(bev) & EV_READ))
			return; /* given up on the other side */
		if (len > 0)
			evbuffer_drain(in, len);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct privsep *ps = arg;

	/* The parent learns of its child's end from SIGCHLD, with the
	 * status; the child only from this. */
	if (what & BEV_EVENT_EOF)
		peer_gone(ps, "it closed the channel", ps->gw == NULL);
	else if (what & BEV_EVENT_ERROR)
		peer_gone(ps, strerror(EVUTIL_SOCKET_ERROR()), ps->gw == NULL);
}

static struct privsep *
channel(struct event_base *base, int fd, pid_t peer)
{
	struct privsep *ps;

	if ((ps = calloc(1, sizeof *ps)) == NULL)
		fatal("%s", __func__);
	ps->base = base;
	ps->peer = peer;
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    (ps->bev = bufferevent_socket_new(base, fd,
	         BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("the privileged channel cannot be set up");
	bufferevent_setcb(ps->bev, on_read, NULL, on_event, ps);
	bufferevent_enable(ps->bev, EV_READ | EV_WRITE);
	return ps;
}

static void
send_empty(struct privsep *ps, uint32_t type)
{
	struct tbuf b;

	tbuf_init(&b);
	add_header(&b, type, 0);
	bufferevent_write(ps->bev, b.p, b.len);
	tbuf_free(&b);
}

/* ---- the parent ---------------------------------------------------------- */

/* Read the configuration as at start, and hand it over. */
static void
parent_reload(struct privsep *ps)
{
	struct gwconf_errors errs = {NULL, 0};
	struct gwconf *conf;
	struct tbuf msg;
	char err[512];
	size_t i;
	bool missing;

	conf = gwconf_load(ps->config_dir, GWCONF_GATEWAY, &missing, &errs);
	if (conf == NULL) {
		for (i = 0; i < errs.n; i++)
			log_warnx("reload: %s", errs.v[i]);
		log_warnx("reload failed: keeping the configuration in use");
		gwconf_errors_free(&errs);
		return;
	}
	tbuf_init(&msg);
	if (privsep_encode(conf, &msg, err, sizeof err) == -1) {
		log_warnx("reload: %s", err);
		log_warnx("reload failed: keeping the configuration in use");
	} else if (ps->bev == NULL)
		log_warnx("reload: the gateway (pid %ld) is gone",
		    (long)ps->peer);
	else {
		bufferevent_write(ps->bev, msg.p, msg.len);
		log_info("configuration read from %s (%zu files): handed to "
		         "the gateway (pid %ld)",
		    conf->dir, conf->nfiles, (long)ps->peer);
	}
	explicit_bzero(msg.p, msg.len); /* the key was in it */
	tbuf_free(&msg);
	gwconf_free(conf);
}

static void
parent_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct privsep *ps = arg;
	pid_t pid;
	int status;

	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reading the configuration");
		parent_reload(ps);
		break;
	case SIGTERM:
	case SIGINT:
		log_info("signal %d: stopping the gateway (pid %ld)", (int)sig,
		    (long)ps->peer);
		/* Said twice: a service manager may have left us without
		 * the capability to signal another uid. */
		if (kill(ps->peer, (int)sig) == -1 && errno != ESRCH)
			log_debug("kill %ld: %s", (long)ps->peer,
			    strerror(errno));
		if (ps->bev != NULL)
			send_empty(ps, PRIVSEP_STOP);
		break;
	case SIGCHLD:
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != ps->peer)
				continue;
			ps->child_gone = true;
			ps->status = status;
		}
		if (ps->child_gone)
			event_base_loopbreak(ps->base);
		break;
	}
}

int
privsep_parent(pid_t child, int fd, const char *config_dir,
    const char *socket_path, dev_t dev, ino_t ino)
{
	static const int sigs[4] = {SIGHUP, SIGTERM, SIGINT, SIGCHLD};
	struct event_base *base;
	struct privsep *ps;
	struct stat st;
	sigset_t none;
	size_t i;
	int rc;

	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	ps = channel(base, fd, child);
	ps->config_dir = config_dir;
	for (i = 0; i < 4; i++) {
		ps->sig[i] = evsignal_new(base, sigs[i], parent_signal, ps);
		if (ps->sig[i] == NULL || evsignal_add(ps->sig[i], NULL) == -1)
			fatalx("cannot handle signal %d", sigs[i]);
	}
	/* Blocked since before the fork: what came meanwhile comes now. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	log_info("privileged process (pid %ld): reads the configuration for "
	         "the gateway (pid %ld) at each SIGHUP",
	    (long)getpid(), (long)child);
	if (!ps->child_gone)
		event_base_dispatch(base);

	if (WIFEXITED(ps->status))
		rc = WEXITSTATUS(ps->status);
	else {
		rc = 128 + WTERMSIG(ps->status);
		log_warnx("the gateway (pid %ld) ended by signal %d",
		    (long)child, WTERMSIG(ps->status));
	}
	/* The socket is in root's directory, where the child cannot remove
	 * it: ours, if it is still the one made at start. */
	if (lstat(socket_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == dev && st.st_ino == ino)
		unlink(socket_path);
	for (i = 0; i < 4; i++)
		event_free(ps->sig[i]);
	privsep_free(ps);
	event_base_free(base);
	log_info("stopped");
	return rc;
}

/* ---- the child ------------------------------------------------------------
 */

/* A configuration the parent read: built and swapped in as a reload. */
static void
child_config(struct privsep *ps, const unsigned char *p, size_t len)
{
	struct gwconf_errors errs = {NULL, 0};
	struct privsep_conf pc;
	struct gwconf *conf;
	char err[512];
	size_t i;

	if (privsep_decode(p, len, &pc, err, sizeof err) == -1) {
		log_warnx("reload: the privileged process sent %s", err);
		log_warnx("reload failed: keeping the configuration in use");
		return;
	}
	conf = gwconf_load_mem(pc.dir, pc.ini, pc.nini, pc.pem, pc.npem,
	    GWCONF_GATEWAY, &errs);
	privsep_conf_free(&pc);
	if (conf == NULL) {
		for (i = 0; i < errs.n; i++)
			log_warnx("reload: %s", errs.v[i]);
		log_warnx("reload failed: keeping the configuration in use");
		gwconf_errors_free(&errs);
		return;
	}
	gateway_reload_conf(ps->gw, conf);
}

/* A whole message, of a type this side may receive (on_read). */
static void
handle(struct privsep *ps, uint32_t type, const unsigned char *p, size_t len)
{
	if (ps->gw == NULL) { /* the parent: the child asks */
		log_info("the gateway (pid %ld) asks for the configuration",
		    (long)ps->peer);
		parent_reload(ps);
	} else if (type == PRIVSEP_CONFIG)
		child_config(ps, p, len);
	else {
		log_info("the privileged process says stop");
		ps->stop(ps->stop_arg);
	}
}

/*
 * The other side is gone, or can no longer be believed: said once
 * (unless quiet).  The child closes the channel; the parent stops
 * listening to a child that broke the protocol, but still hands it what
 * its own SIGHUP reads.
 */
static void
peer_gone(struct privsep *ps, const char *why, bool quiet)
{
	struct evbuffer *in;

	if (ps->bev == NULL)
		return;
	if (ps->gw == NULL && !quiet) {
		log_warnx("the gateway (pid %ld) is no longer listened to "
		          "(%s): "
		          "send SIGHUP to this process (pid %ld) to reload",
		    (long)ps->peer, why, (long)getpid());
		bufferevent_disable(ps->bev, EV_READ);
		in = bufferevent_get_input(ps->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	bufferevent_free(ps->bev);
	ps->bev = NULL;
	if (quiet)
		log_debug("the channel to pid %ld is closed (%s)",
		    (long)ps->peer, why);
	else
		log_warnx("the privileged process (pid %ld) is gone (%s): "
		          "serving on, but without reloads from now on",
		    (long)ps->peer, why);
}

struct privsep *
privsep_child(struct event_base *base, int fd, pid_t parent, struct gateway *gw,
    void (*stop)(void *), void *arg)
{
	struct privsep *ps = channel(base, fd, parent);

	ps->gw = gw;
	ps->stop = stop;
	ps->stop_arg = arg;
	return ps;
}

void
privsep_child_hup(struct privsep *ps)
{
	if (ps->bev == NULL) {
		log_warnx("SIGHUP: not reloading: the privileged process that "
		          "reads the configuration is gone (restart the "
		          "gateway)");
		return;
	}
	log_info("SIGHUP: asking the privileged process (pid %ld) for the "
	         "configuration",
	    (long)ps->peer);
	send_empty(ps, PRIVSEP_RELOAD);
}

void
privsep_free(struct privsep *ps)
{
	if (ps == NULL)
		return;
	if (ps->bev != NULL)
		bufferevent_free(ps->bev);
	free(ps);
}
