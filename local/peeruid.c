/*
 * Who is on the other end of a loopback TCP connection?
 *
 * A user registry serves only its own user (docs/security.md), yet its
 * clients are unmodified tcllib programs that send no credentials.  When
 * the peer is on this host the kernel knows which uid owns the peer's
 * socket, and Linux tells us through NETLINK_SOCK_DIAG: we ask inet_diag
 * for the one TCP socket whose local end is our peer's address and whose
 * remote end is ours (an exact lookup, not a dump of every socket).
 *
 * The lookup is bounded: one request, one reply read with a short receive
 * timeout, so a daemon's event loop is never held up by it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "peeruid.h"

/* The kernel answers during sendmsg(); this only guards against a bug. */
#define PEERUID_TIMEOUT_MS 250
#define PEERUID_MAX_READS  4

/* One end of a connection, IPv4 addresses kept as v4-mapped IPv6. */
struct endpoint {
	struct in6_addr addr;
	uint16_t port; /* network order */
};

static int endpoint_of(const struct sockaddr_storage *, struct endpoint *);
static int is_v4(const struct in6_addr *);
static int is_loopback(const struct in6_addr *);
static int is_local_address(const struct in6_addr *);
static const char *endpoint_str(const struct endpoint *, char *, size_t);
static int diag_open(char *, size_t);
static void put_addr(uint32_t[4], const struct in6_addr *, int);
static int diag_ask(int, int, const struct endpoint *, const struct endpoint *,
    struct peeruid_sock *, char *, size_t);
static int query(int, int, struct peeruid_sock *, char *, size_t);
static int diag_reply(const struct nlmsghdr *, uint32_t,
    const struct endpoint *, const struct endpoint *, struct peeruid_sock *,
    char *, size_t);

static int
is_v4(const struct in6_addr *a)
{
	return IN6_IS_ADDR_V4MAPPED(a);
}

static int
endpoint_of(const struct sockaddr_storage *ss, struct endpoint *ep)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	memset(ep, 0, sizeof(*ep));
	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		ep->addr.s6_addr[10] = 0xff;
		ep->addr.s6_addr[11] = 0xff;
		memcpy(&ep->addr.s6_addr[12], &sin->sin_addr, 4);
		ep->port = sin->sin_port;
		return 0;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		ep->addr = sin6->sin6_addr;
		ep->port = sin6->sin6_port;
		return 0;
	}
	return -1;
}

static int
is_loopback(const struct in6_addr *a)
{
	if (is_v4(a))
		return a->s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(a);
}

/* A peer that used one of our own interface addresses is on this host. */
static int
is_local_address(const struct in6_addr *a)
{
	struct ifaddrs *ifa, *i;
	struct sockaddr_storage ss;
	struct endpoint ep;
	int found = 0;

	if (getifaddrs(&ifa) == -1)
		return 0;
	for (i = ifa; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			memcpy(&ss, i->ifa_addr, sizeof(struct sockaddr_in));
		else if (i->ifa_addr->sa_family == AF_INET6)
			memcpy(&ss, i->ifa_addr, sizeof(struct sockaddr_in6));
		else
			continue;
		if (endpoint_of(&ss, &ep) == 0 &&
		    memcmp(&ep.addr, a, sizeof(*a)) == 0)
			found = 1;
	}
	freeifaddrs(ifa);
	return found;
}

static const char *
endpoint_str(const struct endpoint *ep, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (is_v4(&ep->addr))
		inet_ntop(AF_INET, &ep->addr.s6_addr[12], a, sizeof(a));
	else
		inet_ntop(AF_INET6, &ep->addr, a, sizeof(a));
	snprintf(buf, len, is_v4(&ep->addr) ? "%s:%u" : "[%s]:%u", a,
	    (unsigned)ntohs(ep->port));
	return buf;
}

static int
diag_open(char *err, size_t errlen)
{
	struct timeval tv;
	int s;

	s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s == -1)
		return reason(err, errlen, "netlink sock_diag unavailable: %s",
		    strerror(errno));
	tv.tv_sec = 0;
	tv.tv_usec = PEERUID_TIMEOUT_MS * 1000;
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
		reason(err, errlen, "netlink sock_diag: setsockopt: %s",
		    strerror(errno));
		close(s);
		return -1;
	}
	return s;
}

static void
put_addr(uint32_t dst[4], const struct in6_addr *a, int family)
{
	memset(dst, 0, 4 * sizeof(uint32_t));
	if (family == AF_INET)
		memcpy(dst, &a->s6_addr[12], 4);
	else
		memcpy(dst, a, 16);
}

/*
 * Check one reply: an error, or the socket with the 4-tuple we asked for
 * (the kernel falls back to a listener on the port when no connection has
 * it; that is returned too, its state saying so).
 */
static int
diag_reply(const struct nlmsghdr *nh, uint32_t seq, const struct endpoint *peer,
    const struct endpoint *self, struct peeruid_sock *ps, char *err,
    size_t errlen)
{
	const struct inet_diag_msg *m;
	const struct nlmsgerr *ne;
	struct endpoint src, dst;

	if (nh->nlmsg_seq != seq)
		return 1; /* not ours: read on */
	if (nh->nlmsg_type == NLMSG_ERROR) {
		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ne)))
			return reason(err, errlen, "inet_diag: short error");
		ne = NLMSG_DATA(nh);
		if (ne->error == -ENOENT) {
			ps->found = 0;
			return 0;
		}
		return reason(err, errlen, "inet_diag: %s",
		    strerror(-ne->error));
	}
	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return reason(err, errlen,
		    "inet_diag: unexpected reply type %u",
		    (unsigned)nh->nlmsg_type);
	m = NLMSG_DATA(nh);

	/* Compare what the kernel found with what we asked for. */
	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	if (m->idiag_family == AF_INET) {
		src.addr.s6_addr[10] = src.addr.s6_addr[11] = 0xff;
		memcpy(&src.addr.s6_addr[12], m->id.idiag_src, 4);
		dst = src;
		memcpy(&dst.addr.s6_addr[12], m->id.idiag_dst, 4);
	} else {
		memcpy(&src.addr, m->id.idiag_src, 16);
		memcpy(&dst.addr, m->id.idiag_dst, 16);
	}
	src.port = m->id.idiag_sport;
	dst.port = m->id.idiag_dport;
	if (m->idiag_state != TCP_LISTEN &&
	    (memcmp(&src.addr, &peer->addr, 16) != 0 ||
	        memcmp(&dst.addr, &self->addr, 16) != 0 ||
	        src.port != peer->port || dst.port != self->port))
		return reason(err, errlen,
		    "inet_diag answered for another "
		    "socket");
	ps->found = 1;
	ps->state = m->idiag_state;
	ps->uid = (uid_t)m->idiag_uid;
	ps->inode = (unsigned long)m->idiag_inode;
	return 0;
}

/*
 * One exact lookup in one address family.  Returns 0 and fills *ps (found
 * or not), -1 on error; err says why.
 */
static int
diag_ask(int s, int family, const struct endpoint *peer,
    const struct endpoint *self, struct peeruid_sock *ps, char *err,
    size_t errlen)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
	} msg;
	struct sockaddr_nl nl;
	struct nlmsghdr *nh;
	union {
		struct nlmsghdr nh;
		char buf[8192];
	} rb;
	static uint32_t seqno;
	socklen_t nllen;
	ssize_t n;
	size_t left;
	uint32_t seq;
	int reads, rc;

	seq = ++seqno ^ ((uint32_t)getpid() << 16);
	memset(&msg, 0, sizeof(msg));
	msg.nh.nlmsg_len = sizeof(msg);
	msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nh.nlmsg_flags = NLM_F_REQUEST; /* exact lookup, no dump */
	msg.nh.nlmsg_seq = seq;
	msg.req.sdiag_family = family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = ~0U;
	/* The socket we look for: its source is our peer, its dest is us. */
	msg.req.id.idiag_sport = peer->port;
	msg.req.id.idiag_dport = self->port;
	put_addr(msg.req.id.idiag_src, &peer->addr, family);
	put_addr(msg.req.id.idiag_dst, &self->addr, family);
	msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

	memset(&nl, 0, sizeof(nl));
	nl.nl_family = AF_NETLINK;
	if (sendto(s, &msg, sizeof(msg), 0, (struct sockaddr *)&nl,
	        sizeof(nl)) != (ssize_t)sizeof(msg))
		return reason(err, errlen, "inet_diag request: %s",
		    strerror(errno));

	for (reads = 0; reads < PEERUID_MAX_READS; reads++) {
		nllen = sizeof(nl);
		n = recvfrom(s, rb.buf, sizeof(rb.buf), 0,
		    (struct sockaddr *)&nl, &nllen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return reason(err, errlen,
			    "inet_diag: no answer within "
			    "%d ms",
			    PEERUID_TIMEOUT_MS);
		if (n == -1)
			return reason(err, errlen, "inet_diag reply: %s",
			    strerror(errno));
		if (nl.nl_pid != 0)
			continue; /* only the kernel may answer */
		left = (size_t)n;
		for (nh = &rb.nh; NLMSG_OK(nh, left);
		     nh = NLMSG_NEXT(nh, left)) {
			rc = diag_reply(nh, seq, peer, self, ps, err, errlen);
			if (rc <= 0)
				return rc;
		}
	}
	return reason(err, errlen, "inet_diag: no answer to our request");
}

int
peeruid_lookup(int fd, uid_t *uid, char *err, size_t errlen)
{
	return peeruid_lookup_inode(fd, uid, NULL, err, errlen);
}

/*
 * LISTENER: ask for the socket listening where our peer is instead (our
 * port 0 matches no connection, and the kernel's exact lookup then falls
 * back to the listener a connection to the peer's address would reach).
 */
static int
query(int fd, int listener, struct peeruid_sock *ps, char *err, size_t errlen)
{
	struct sockaddr_storage pss, lss;
	struct endpoint peer, self;
	socklen_t len;
	char why[256];
	int s, rc;

	memset(ps, 0, sizeof(*ps));
	len = sizeof(pss);
	memset(&pss, 0, sizeof(pss));
	if (getpeername(fd, (struct sockaddr *)&pss, &len) == -1)
		return reason(err, errlen, "cannot get the peer address: %s",
		    strerror(errno));
	len = sizeof(lss);
	memset(&lss, 0, sizeof(lss));
	if (getsockname(fd, (struct sockaddr *)&lss, &len) == -1)
		return reason(err, errlen, "cannot get our own address: %s",
		    strerror(errno));
	if (endpoint_of(&pss, &peer) == -1 || endpoint_of(&lss, &self) == -1)
		return reason(err, errlen, "not a TCP/IP connection");
	endpoint_str(&peer, ps->peer, sizeof(ps->peer));
	if (!is_loopback(&peer.addr) && !is_local_address(&peer.addr))
		return reason(err, errlen,
		    "peer %s is not on this host (not a "
		    "loopback or local address); its uid cannot be known",
		    ps->peer);

	if (listener)
		self.port = 0;
	if ((s = diag_open(err, errlen)) == -1)
		return -1;
	/*
	 * An IPv4 connection is found through AF_INET even when either end
	 * is a dual-stack IPv6 socket: the kernel hashes both by the IPv4
	 * 4-tuple.
	 */
	rc = diag_ask(s, is_v4(&peer.addr) ? AF_INET : AF_INET6, &peer, &self,
	    ps, err, errlen);
	close(s);
	if (rc == -1 && err != NULL && errlen > 0) {
		snprintf(why, sizeof(why), "%s", err);
		reason(err, errlen, "peer %s: %s", ps->peer, why);
	}
	return rc;
}

int
peeruid_query(int fd, struct peeruid_sock *ps, char *err, size_t errlen)
{
	return query(fd, 0, ps, err, errlen);
}

int
peeruid_query_listener(int fd, struct peeruid_sock *ps, char *err,
    size_t errlen)
{
	return query(fd, 1, ps, err, errlen);
}

/*
 * Besides the 4-tuple, insist on a socket that some process holds (inode
 * != 0): a closed peer lingers as an orphan or a TIME_WAIT entry, and for
 * those the kernel reports uid 0, which must not be mistaken for root.
 */
int
peeruid_lookup_inode(int fd, uid_t *uid, unsigned long *ino, char *err,
    size_t errlen)
{
	struct peeruid_sock ps;

	if (peeruid_query(fd, &ps, err, errlen) == -1)
		return -1;
	if (!ps.found)
		return reason(err, errlen,
		    "peer %s: no local TCP socket is the other end of this "
		    "connection",
		    ps.peer);
	if (ps.state == TCP_LISTEN)
		return reason(err, errlen,
		    "peer %s: only a listening socket has that "
		    "port; no process holds the other end",
		    ps.peer);
	if (ps.inode == 0)
		return reason(err, errlen,
		    "peer %s: the peer's socket is not held by "
		    "any process (closed, or not yet accepted)",
		    ps.peer);
	log_debug("peeruid: peer socket inode %lu uid %u state %u", ps.inode,
	    (unsigned)ps.uid, ps.state);
	*uid = ps.uid;
	if (ino != NULL)
		*ino = ps.inode;
	return 0;
}
