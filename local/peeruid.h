/*
 * Who is on the other end of a loopback TCP connection?
 *
 * A user registry serves only its own user (docs/security.md).  For a TCP
 * peer on this host the kernel knows the uid owning the peer's socket; we
 * ask it through NETLINK_SOCK_DIAG (inet_diag), looking up the peer's end
 * by its 4-tuple.  Unmodified tcllib clients need no credentials this way.
 */
#ifndef LOCAL_PEERUID_H
#define LOCAL_PEERUID_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * fd is our connected (accepted or connecting) TCP socket.  Find the socket
 * at the other end (its local address = our peer address, its peer address
 * = our local address) and return its owner's uid and inode.  Works for
 * IPv4 and IPv6 loopback.  Returns 0, or -1 with a reason in err (peer not
 * local, netlink unavailable, no such socket).
 */
int peeruid_lookup(int fd, uid_t *uid, char *err, size_t errlen);
/* The same, and the inode of the peer's socket, by which the process
 * that holds it can be found in /proc/PID/fd (commreg stop). */
int peeruid_lookup_inode(int fd, uid_t *uid, unsigned long *ino, char *err,
    size_t errlen);

/*
 * The raw answer, for callers with rules of their own (the Tcl package's
 * check of who accepted a connection it made, tcl/kernel.c): found is 0
 * when no socket has the 4-tuple; state is the kernel's TCP state (a
 * listener on the port is returned, state TCP_LISTEN, when no connection
 * has it); uid is 0 for a request socket (SYN_RECV) and a TIME_WAIT one
 * whoever owns them, and, on kernels before 6.13 or so, for a connection
 * no process holds yet; inode is 0 for a socket no process holds
 * (closed, or in a listener's queue, not yet accepted).  Returns -1 with
 * a reason in err when the kernel cannot be asked (*ps is then all 0).
 */
struct peeruid_sock {
	int found;
	unsigned state;
	uid_t uid;
	unsigned long inode;
	char peer[64]; /* the peer's address, for messages */
};
int peeruid_query(int fd, struct peeruid_sock *ps, char *err, size_t errlen);
/*
 * The same for the socket listening where fd's peer is (state
 * TCP_LISTEN; found 0 when none): a connection in a listener's queue is
 * that listener's owner's, and a listener is held by a process, so its
 * uid is told on every kernel.
 */
int peeruid_query_listener(int fd, struct peeruid_sock *ps, char *err,
    size_t errlen);

#endif
