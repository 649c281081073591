/*
 * Whose is this port?  The gateway's own check, whatever its policy says
 * (docs/gateway.md): a name offered to the host must point at a TCP
 * socket that listens on that port and belongs to the uid offering it,
 * or anyone could publish a name for another user's service.  The kernel
 * is asked (NETLINK_SOCK_DIAG, a dump of listening TCP sockets, IPv4 and
 * IPv6).
 */
#ifndef GATEWAY_PORTOWNER_H
#define GATEWAY_PORTOWNER_H

#include <stddef.h>
#include <sys/types.h>

/* 0 when some socket listening on TCP port `port` belongs to uid; else
 * -1 with the reason ("nothing listens on TCP port 4000", "TCP port 4000
 * is listened on by uid 1001, not by uid 1000"). */
int portowner_check(int port, uid_t uid, char *err, size_t errlen);

#endif
