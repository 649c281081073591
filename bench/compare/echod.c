/*
 * bench_echod: the floor of the comparison benchmark (docs/performance-
 * compare.md).  A minimal single-threaded epoll TCP server on 127.0.0.1,
 * like commregd one event loop on one core, with TCP_NODELAY and each
 * reply written whole.
 *
 * Protocol: messages are lines.  A line starting with a decimal number R
 * is answered with R bytes (the last one LF); a line without a number, or
 * with R == 0, is echoed as it came.  So the harness sends a request of
 * exactly the size of commregd's request and gets back exactly the size of
 * commregd's reply, with no work in between: what is left is the kernel,
 * loopback and wakeups, the cost every server pays.
 *
 * A line starting with 'B' is the floor of a watch fan-out: it is written
 * as it came to every other connection (one write each, at once), then
 * echoed to the sender.
 *
 * Prints its port on stdout, then serves until SIGTERM.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPLY_MAX (1024 * 1024)

struct conn {
	struct conn *prev, *next; /* all connections, for 'B' */
	int fd;
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outlen, outcap, outoff;
	int want_out; /* EPOLLOUT armed */
};

static char filler[REPLY_MAX];
static struct conn *conns;
static int epfd;

static int conn_flush(int, struct conn *);
static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
grow(char **p, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	if ((*p = realloc(*p, n)) == NULL) {
		perror("bench_echod: realloc");
		exit(1);
	}
	*cap = n;
}

static void
conn_close(struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Queue the answer to every complete line of buf[0..len); returns the
 * bytes consumed (a partial last line is left). */
static size_t
conn_answer(struct conn *c, const char *buf, size_t len)
{
	size_t start = 0, i, r;
	const char *lf;

	while ((lf = memchr(buf + start, '\n', len - start)) != NULL) {
		size_t linelen = (size_t)(lf - (buf + start)) + 1;

		for (r = 0, i = start;
		     i < start + linelen && buf[i] >= '0' && buf[i] <= '9'; i++)
			r = r * 10 + (size_t)(buf[i] - '0');
		if (buf[start] == 'B') {
			struct conn *o, *on;

			for (o = conns; o != NULL; o = on) {
				on = o->next;
				if (o == c)
					continue;
				grow(&o->out, &o->outcap, o->outlen + linelen);
				memcpy(o->out + o->outlen, buf + start,
				    linelen);
				o->outlen += linelen;
				/* A peer gone: its own read event closes it. */
				if (conn_flush(epfd, o) == -1)
					o->outlen = o->outoff = 0;
			}
		}
		if (r == 0 || r > REPLY_MAX) {
			grow(&c->out, &c->outcap, c->outlen + linelen);
			memcpy(c->out + c->outlen, buf + start, linelen);
			if (buf[start] == 'B')
				c->out[c->outlen] =
				    'b'; /* the sender's reply */
			c->outlen += linelen;
		} else {
			grow(&c->out, &c->outcap, c->outlen + r);
			memcpy(c->out + c->outlen, filler, r - 1);
			c->out[c->outlen + r - 1] = '\n';
			c->outlen += r;
		}
		start += linelen;
	}
	return start;
}

/* Write what is queued; -1 if the peer is gone. */
static int
conn_flush(int ep, struct conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if ((c->outlen > 0) != c->want_out) {
		struct epoll_event ev;

		c->want_out = c->outlen > 0;
		ev.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0);
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return 0;
}

/* Read what is there and answer it.  Reads go to one static buffer, so an
 * idle connection costs its struct and nothing else; only a line split
 * across reads is kept per connection. */
static int
conn_read(struct conn *c)
{
	static char rbuf[256 * 1024];
	ssize_t r;
	size_t used;

	for (;;) {
		r = read(c->fd, rbuf, sizeof rbuf);
		if (r == 0)
			return -1;
		if (r < 0)
			return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -1;
		if (c->inlen == 0) {
			used = conn_answer(c, rbuf, (size_t)r);
			if (used < (size_t)r) {
				grow(&c->in, &c->incap, (size_t)r - used);
				memcpy(c->in, rbuf + used, (size_t)r - used);
				c->inlen = (size_t)r - used;
			}
		} else {
			grow(&c->in, &c->incap, c->inlen + (size_t)r);
			memcpy(c->in + c->inlen, rbuf, (size_t)r);
			c->inlen += (size_t)r;
			used = conn_answer(c, c->in, c->inlen);
			memmove(c->in, c->in + used, c->inlen - used);
			c->inlen -= used;
		}
		if ((size_t)r < sizeof rbuf)
			return 0;
	}
}

int
main(void)
{
	struct sockaddr_in sin;
	struct epoll_event ev, evs[256];
	socklen_t slen = sizeof sin;
	int lfd, ep, one = 1, i, n;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	memset(filler, 'x', sizeof filler);

	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1) {
		perror("bench_echod: socket");
		return 1;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(lfd, SOMAXCONN) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1) {
		perror("bench_echod: listen");
		return 1;
	}
	printf("%d\n", ntohs(sin.sin_port));
	fflush(stdout);

	ep = epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	while (!stop) {
		n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("bench_echod: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL,
				            SOCK_NONBLOCK)) != -1) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof one);
					if ((c = calloc(1, sizeof *c)) == NULL)
						return 1;
					c->fd = fd;
					c->next = conns;
					if (conns != NULL)
						conns->prev = c;
					conns = c;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    conn_read(c) == -1) {
				conn_close(c);
				continue;
			}
			if (conn_flush(ep, c) == -1)
				conn_close(c);
		}
	}
	return 0;
}
