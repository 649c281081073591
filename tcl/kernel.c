/*
 * comm::registry::kernel: the kernel's word on a connection, for the Tcl
 * package comm::registry (tcl/registry.tcl).
 *
 * Before comm speaks on a connection to the user's registry, the package
 * makes sure the socket that accepted it is its own uid's (a squatter on a
 * dead registry's port must hear nothing).  Pure Tcl can only learn that
 * from /proc/net/tcp, and printing that table walks every bucket of the
 * kernel's hash of connections: a millisecond and more of CPU each time,
 * and after a failover every application reads it at once.  This asks
 * inet_diag for the one socket instead (local/peeruid.c, as the registry
 * and the C library do): microseconds, whatever the table's size.
 *
 *   ::comm::registry::kernel::acceptor CHANNEL
 *   ::comm::registry::kernel::listener CHANNEL
 *
 * CHANNEL is a connected TCP socket channel.  The answer is {} when no
 * socket is the other end of it, else a list {STATE UID INODE}: STATE the
 * kernel's TCP state of the other end in lower case (established,
 * syn_recv, listen, ...; listen when only a listener has the port), UID
 * its owner (0 for a request socket, syn_recv, whoever owns it, and on
 * older kernels for any socket no process holds yet), INODE 0 while no
 * process holds it (in the listener's queue, not yet accepted, or
 * closed).  Which answer to trust is the package's rule (Unowned in
 * registry.tcl).  An error -errorcode {COMMREG WENT} when the connection
 * went (reset or closed: no peer address).  An error
 * (-errorcode {COMMREG NODIAG}) when the kernel cannot be asked.
 * `listener` answers the same of the socket listening where CHANNEL's
 * peer is (state listen; {} when none): the owner of a connection in a
 * listener's queue, which older kernels do not tell of the connection.
 */
#include <sys/socket.h>

#include <netinet/tcp.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <tcl.h>

#include "peeruid.h"

/* The kernel's TCP states (include/net/tcp_states.h), by number. */
static const char *const tcp_states[] = {
    "unknown",
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
    "new_syn_recv",
};

int Commreg_kernel_Init(Tcl_Interp *);

/* cd: peeruid_query or peeruid_query_listener. */
static int
acceptor_cmd(void *cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
	int (*ask)(int, struct peeruid_sock *, char *, size_t) =
	    (int (*)(int, struct peeruid_sock *, char *, size_t))cd;
	struct peeruid_sock ps;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	Tcl_Channel chan;
	ClientData handle;
	Tcl_Obj *answer[3];
	char err[512];
	const char *state;
	int mode, fd;

	if (objc != 2) {
		Tcl_WrongNumArgs(interp, 1, objv, "channel");
		return TCL_ERROR;
	}
	chan = Tcl_GetChannel(interp, Tcl_GetString(objv[1]), &mode);
	if (chan == NULL)
		return TCL_ERROR;
	if (Tcl_GetChannelHandle(chan, TCL_READABLE, &handle) != TCL_OK &&
	    Tcl_GetChannelHandle(chan, TCL_WRITABLE, &handle) != TCL_OK) {
		Tcl_SetObjResult(interp,
		    Tcl_ObjPrintf("channel \"%s\" has no operating system "
		                  "handle",
		        Tcl_GetString(objv[1])));
		Tcl_SetErrorCode(interp, "COMMREG", "NODIAG", (char *)NULL);
		return TCL_ERROR;
	}
	fd = (int)(intptr_t)handle;
	/* A connection that went has no other end to ask of: said as such
	 * (the package then stops looking), not as the kernel's silence. */
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == -1 &&
	    errno == ENOTCONN) {
		Tcl_SetObjResult(interp,
		    Tcl_ObjPrintf("the connection went: %s", strerror(errno)));
		Tcl_SetErrorCode(interp, "COMMREG", "WENT", (char *)NULL);
		return TCL_ERROR;
	}
	if (ask(fd, &ps, err, sizeof err) == -1) {
		Tcl_SetObjResult(interp, Tcl_NewStringObj(err, -1));
		Tcl_SetErrorCode(interp, "COMMREG", "NODIAG", (char *)NULL);
		return TCL_ERROR;
	}
	if (!ps.found) {
		Tcl_ResetResult(interp);
		return TCL_OK;
	}
	state = ps.state < sizeof tcp_states / sizeof tcp_states[0]
	            ? tcp_states[ps.state]
	            : "unknown";
	answer[0] = Tcl_NewStringObj(state, -1);
	answer[1] = Tcl_NewWideIntObj((Tcl_WideInt)ps.uid);
	answer[2] = Tcl_NewWideIntObj((Tcl_WideInt)ps.inode);
	Tcl_SetObjResult(interp, Tcl_NewListObj(3, answer));
	return TCL_OK;
}

int
Commreg_kernel_Init(Tcl_Interp *interp)
{
	if (Tcl_InitStubs(interp, "8.6", 0) == NULL)
		return TCL_ERROR;
	if (Tcl_CreateObjCommand(interp, "::comm::registry::kernel::acceptor",
	        acceptor_cmd, (void *)peeruid_query, NULL) == NULL ||
	    Tcl_CreateObjCommand(interp, "::comm::registry::kernel::listener",
	        acceptor_cmd, (void *)peeruid_query_listener, NULL) == NULL)
		return TCL_ERROR;
	return Tcl_PkgProvide(interp, "comm::registry::kernel",
	    COMMREG_VERSION);
}
