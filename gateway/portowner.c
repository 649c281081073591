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

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "portowner.h"

#define DIAG_TIMEOUT_MS 250
#define DIAG_MAX_READS  4096 /* bounds a dump of a huge host */

/* Listeners on port in one family: counts ours and remembers another
 * owner.  0 done, -1 error. */
static int
dump_family(int family, int port, uid_t uid, int *ours, int *others,
    uid_t *other, char *err, size_t errlen)
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
			if (ntohs(d->id.idiag_sport) != port ||
			    d->idiag_inode == 0)
				continue;
			if (d->idiag_uid == uid)
				(*ours)++;
			else {
				(*others)++;
				*other = d->idiag_uid;
			}
		}
	}
	close(s);
	return reason(err, errlen, "inet_diag: dump did not end");
}

int
portowner_check(int port, uid_t uid, char *err, size_t errlen)
{
	int ours = 0, others = 0;
	uid_t other = 0;

	if (dump_family(AF_INET, port, uid, &ours, &others, &other, err,
	        errlen) == -1 ||
	    dump_family(AF_INET6, port, uid, &ours, &others, &other, err,
	        errlen) == -1)
		return -1;
	if (ours > 0)
		return 0;
	if (others > 0)
		return reason(err, errlen,
		    "TCP port %d is listened on by uid %lu, not by uid %lu",
		    port, (unsigned long)other, (unsigned long)uid);
	return reason(err, errlen, "nothing listens on TCP port %d", port);
}
