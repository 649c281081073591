/*
 * Whose is this port?  The gateway's own check, whatever its policy says
 * (docs/gateway.md): a name offered to the host must point at a TCP
 * socket that listens on that port and belongs to the uid offering it,
 * or anyone could publish a name for another user's service.  The kernel
 * is asked (NETLINK_SOCK_DIAG, a dump of listening TCP sockets, IPv4 and
 * IPv6).
 */
#ifndef LOCAL_PORTOWNER_H
#define LOCAL_PORTOWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct addrinfo;

/* The host's listening TCP sockets, IPv4 and IPv6, as one dump. */
struct listener {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int port;
	uid_t uid;
};
/* What a host name resolved to, kept for the life of one dump: the
 * gateway checks thousands of entries against a dump, nearly all naming
 * the same host, and getaddrinfo reads /etc/hosts (and stats
 * resolv.conf) at each call. */
#define PORTOWNER_NAMES 8
struct resolved {
	char *host;
	int rc; /* getaddrinfo's */
	struct addrinfo *res;
};
struct listeners {
	struct listener *v; /* sorted by port */
	size_t n, cap;
	struct resolved names[PORTOWNER_NAMES];
	size_t nnames;
};

int portowner_dump(struct listeners *, char *err, size_t errlen);
void portowner_free(struct listeners *);

/*
 * Would a connection to HOST:PORT reach a socket of uid's, for every
 * address HOST names?  What counts is what the kernel would choose: a
 * listener bound to that address, else the wildcard one; so uid's own
 * listener on another address of the host does not make another user's
 * service on this one uid's.  HOST must name addresses of this host.
 * need: some address must reach uid's listener; else only no address
 * may reach another's (a refused connection leads nowhere).  0, or -1
 * with the reason.
 */
int portowner_check_host(struct listeners *, const char *host, int port,
    uid_t uid, bool need, char *err, size_t errlen);

/* 0 when some socket listening on TCP port `port` belongs to uid; else
 * -1 with the reason ("nothing listens on TCP port 4000", "TCP port 4000
 * is listened on by uid 1001, not by uid 1000"). */
int portowner_check(int port, uid_t uid, char *err, size_t errlen);

#endif
