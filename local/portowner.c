/*
 * Whose is this port (portowner.h)?  One inet_diag dump per address
 * family, of listening TCP sockets only (the kernel filters by state);
 * a host has few listeners, so the dump is short, and the socket has a
 * receive timeout so a registration can never hang on it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "portowner.h"

#define DIAG_TIMEOUT_MS 250
#define DIAG_MAX_READS  4096 /* bounds a dump of a huge host */

/* Append the listening TCP sockets of one family to ls.  0 done, -1
 * error. */
static int
dump_family(int family, struct listeners *ls, char *err, size_t errlen)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
	} msg;
	union {
		struct nlmsghdr nh;
		char buf[16384];
	} rb;
	struct sockaddr_nl nl;
	struct timeval tv = {0, DIAG_TIMEOUT_MS * 1000};
	struct nlmsghdr *nh;
	struct inet_diag_msg *d;
	struct listener *l;
	socklen_t nllen;
	ssize_t n;
	size_t left;
	int s, reads;

	s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s == -1)
		return reason(err, errlen, "netlink sock_diag unavailable: %s",
		    strerror(errno));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	memset(&msg, 0, sizeof msg);
	msg.nh.nlmsg_len = sizeof msg;
	msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.nh.nlmsg_seq = 1;
	msg.req.sdiag_family = (uint8_t)family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = 1U << TCP_LISTEN;
	memset(&nl, 0, sizeof nl);
	nl.nl_family = AF_NETLINK;
	if (sendto(s, &msg, sizeof msg, 0, (struct sockaddr *)&nl, sizeof nl) !=
	    (ssize_t)sizeof msg) {
		reason(err, errlen, "inet_diag request: %s", strerror(errno));
		close(s);
		return -1;
	}
	for (reads = 0; reads < DIAG_MAX_READS; reads++) {
		nllen = sizeof nl;
		n = recvfrom(s, rb.buf, sizeof rb.buf, 0,
		    (struct sockaddr *)&nl, &nllen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			reason(err, errlen, "inet_diag reply: %s",
			    strerror(errno));
			close(s);
			return -1;
		}
		if (nl.nl_pid != 0)
			continue;
		left = (size_t)n;
		for (nh = &rb.nh; NLMSG_OK(nh, left);
		     nh = NLMSG_NEXT(nh, left)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				close(s);
				return 0;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				reason(err, errlen, "inet_diag: error reply");
				close(s);
				return -1;
			}
			if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    nh->nlmsg_len < NLMSG_LENGTH(sizeof *d))
				continue;
			d = NLMSG_DATA(nh);
			if (d->idiag_inode == 0)
				continue;
			if (ls->n == ls->cap) {
				size_t cap = ls->cap ? ls->cap * 2 : 64;
				struct listener *v =
				    reallocarray(ls->v, cap, sizeof *v);

				if (v == NULL) {
					close(s);
					return reason(err, errlen,
					    "out of memory");
				}
				ls->v = v;
				ls->cap = cap;
			}
			l = &ls->v[ls->n++];
			memset(l, 0, sizeof *l);
			l->family = family;
			memcpy(l->addr, d->id.idiag_src,
			    family == AF_INET ? 4 : 16);
			l->port = ntohs(d->id.idiag_sport);
			l->uid = d->idiag_uid;
		}
	}
	close(s);
	return reason(err, errlen, "inet_diag: dump did not end");
}

static int
cmp_listener(const void *x, const void *y)
{
	const struct listener *a = x, *b = y;

	return a->port - b->port;
}

int
portowner_dump(struct listeners *ls, char *err, size_t errlen)
{
	memset(ls, 0, sizeof *ls);
	if (dump_family(AF_INET, ls, err, errlen) == -1 ||
	    dump_family(AF_INET6, ls, err, errlen) == -1) {
		portowner_free(ls);
		return -1;
	}
	/* By port: each check looks at one port's few listeners. */
	if (ls->n > 1)
		qsort(ls->v, ls->n, sizeof *ls->v, cmp_listener);
	return 0;
}

void
portowner_free(struct listeners *ls)
{
	size_t i;

	for (i = 0; i < ls->nnames; i++) {
		free(ls->names[i].host);
		if (ls->names[i].res != NULL)
			freeaddrinfo(ls->names[i].res);
	}
	free(ls->v);
	memset(ls, 0, sizeof *ls);
}

/* The first listener on port (the array is sorted by port), or n. */
static size_t
first_on(const struct listeners *ls, int port)
{
	size_t lo = 0, hi = ls->n, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (ls->v[mid].port < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool
is_any(const struct listener *l)
{
	static const unsigned char zero[16];

	return memcmp(l->addr, zero, l->family == AF_INET ? 4 : 16) == 0;
}

/* An IPv4 address as a v4-mapped IPv6 one (::ffff:a.b.c.d). */
static void
mapped(const unsigned char *v4, unsigned char *v6)
{
	memset(v6, 0, 10);
	v6[10] = v6[11] = 0xff;
	memcpy(v6 + 12, v4, 4);
}

/*
 * Who would accept a connection to family/addr:port, as the kernel
 * chooses: a listener bound to that very address first, else one bound
 * to the wildcard of its family, else (IPv4) a wildcard IPv6 listener,
 * which takes IPv4 too unless it is v6-only (taken as it may).  Every
 * listener of the chosen kind (SO_REUSEPORT makes several) must be uid's.
 * 1 all uid's, 0 none there, -1 another's (*other set).
 */
static int
who_accepts(const struct listeners *ls, int family, const unsigned char *addr,
    int port, uid_t uid, uid_t *other)
{
	unsigned char m[16];
	size_t i, first = first_on(ls, port);
	int level, found;

	if (family == AF_INET)
		mapped(addr, m);
	/* Level 0: exact; 1: the family's wildcard; 2: IPv6's for IPv4. */
	for (level = 0; level < 3; level++) {
		found = 0;
		for (i = first; i < ls->n && ls->v[i].port == port; i++) {
			const struct listener *l = &ls->v[i];
			bool hit;

			if (level == 0)
				hit = l->family == family &&
				      memcmp(l->addr, addr,
				          family == AF_INET ? 4 : 16) == 0;
			else if (level == 1)
				hit = l->family == family && is_any(l);
			else
				hit = family == AF_INET &&
				      l->family == AF_INET6 && is_any(l);
			if (!hit && level == 0 && family == AF_INET &&
			    l->family == AF_INET6)
				hit = memcmp(l->addr, m, 16) == 0;
			if (!hit)
				continue;
			if (l->uid != uid) {
				*other = l->uid;
				return -1;
			}
			found = 1;
		}
		if (found)
			return 1;
	}
	return 0;
}

/* Is addr one of this host's (a loopback address, or one an interface
 * holds)?  Only those can be vouched for by looking at the listeners. */
static bool
is_local(int family, const unsigned char *addr)
{
	struct ifaddrs *ifs, *ifa;
	bool local = false;

	if (family == AF_INET && addr[0] == 127)
		return true;
	if (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)addr))
		return true;
	if (getifaddrs(&ifs) == -1)
		return false;
	for (ifa = ifs; ifa != NULL && !local; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family)
			continue;
		if (family == AF_INET)
			local = memcmp(&((struct sockaddr_in *)ifa->ifa_addr)
			                    ->sin_addr,
			            addr, 4) == 0;
		else
			local = memcmp(&((struct sockaddr_in6 *)ifa->ifa_addr)
			                    ->sin6_addr,
			            addr, 16) == 0;
	}
	freeifaddrs(ifs);
	return local;
}

/* getaddrinfo of host, once per dump (struct resolved).  *owned: the
 * caller frees res (the cache was full). */
static int
resolve(struct listeners *ls, const char *host, struct addrinfo **res,
    bool *owned)
{
	struct addrinfo hints;
	struct resolved *r;
	size_t i;
	int rc;

	for (i = 0; i < ls->nnames; i++)
		if (strcmp(ls->names[i].host, host) == 0) {
			*res = ls->names[i].res;
			*owned = false;
			return ls->names[i].rc;
		}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	*res = NULL;
	rc = getaddrinfo(host, NULL, &hints, res);
	*owned = true;
	if (ls->nnames < PORTOWNER_NAMES) {
		r = &ls->names[ls->nnames];
		if ((r->host = strdup(host)) != NULL) {
			r->rc = rc;
			r->res = rc == 0 ? *res : NULL;
			ls->nnames++;
			*owned = false;
		}
	}
	return rc;
}

int
portowner_check_host(struct listeners *ls, const char *host, int port,
    uid_t uid, bool need, char *err, size_t errlen)
{
	struct addrinfo *res, *ai;
	unsigned char addr[16];
	char shown[INET6_ADDRSTRLEN];
	uid_t other = 0;
	int rc, checked = 0;
	bool owned;

	if ((rc = resolve(ls, host, &res, &owned)) != 0)
		return reason(err, errlen, "host \"%.100s\": %s", host,
		    gai_strerror(rc));
	/* Every address the name gives is one a peer may connect to. */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int family = ai->ai_family;

		if (family == AF_INET)
			memcpy(addr,
			    &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
		else if (family == AF_INET6)
			memcpy(addr,
			    &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
			    16);
		else
			continue;
		inet_ntop(family, addr, shown, sizeof shown);
		if (!is_local(family, addr)) {
			if (owned)
				freeaddrinfo(res);
			return reason(err, errlen,
			    "host \"%.100s\" (%s) is not an address of this "
			    "host",
			    host, shown);
		}
		rc = who_accepts(ls, family, addr, port, uid, &other);
		if (rc == -1) {
			if (owned)
				freeaddrinfo(res);
			return reason(err, errlen,
			    "TCP port %d at %s is listened on by uid %lu, not "
			    "by uid %lu",
			    port, shown, (unsigned long)other,
			    (unsigned long)uid);
		}
		/* An address nothing listens on (::1 for a v4-only
		 * service): refused connections lead nowhere; fine. */
		checked += rc;
	}
	if (owned)
		freeaddrinfo(res);
	if (checked > 0 || !need)
		return 0;
	if (first_on(ls, port) == ls->n ||
	    ls->v[first_on(ls, port)].port != port)
		return reason(err, errlen, "nothing listens on TCP port %d",
		    port);
	return reason(err, errlen,
	    "nothing listens on TCP port %d at \"%.100s\"", port, host);
}

int
portowner_check(int port, uid_t uid, char *err, size_t errlen)
{
	struct listeners ls;
	size_t i;
	int ours = 0, others = 0;
	uid_t other = 0;

	if (portowner_dump(&ls, err, errlen) == -1)
		return -1;
	for (i = first_on(&ls, port); i < ls.n && ls.v[i].port == port; i++) {
		if (ls.v[i].uid == uid)
			ours++;
		else {
			others++;
			other = ls.v[i].uid;
		}
	}
	portowner_free(&ls);
	if (ours > 0)
		return 0;
	if (others > 0)
		return reason(err, errlen,
		    "TCP port %d is listened on by uid %lu, not by uid %lu",
		    port, (unsigned long)other, (unsigned long)uid);
	return reason(err, errlen, "nothing listens on TCP port %d", port);
}
