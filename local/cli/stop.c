/*
 * commreg stop: end the registry in use (TCL_COMM_REGPORT's, else the
 * user registry) as SIGTERM does, cleanly: it closes its listener and
 * gives up the port file (docs/election.md), its applications see the
 * connection close and elect a new registry as after any loss.
 *
 * Whom to signal is not taken on anyone's word.  The registry's Hello
 * says a pid; the kernel says (inet_diag) which socket is the other end
 * of our connection and whose it is.  The pid is signalled only if that
 * process holds that socket (/proc/PID/fd) and is commregd: a registry
 * hosted inside an application (the library's in-process mode) is not
 * stopped, since that would end the application.  The process is held
 * by a pidfd from before the check to the signal, so a pid reused
 * meanwhile is never the one signalled.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "peeruid.h"

/* How long stop waits for the registry to be gone. */
#define STOP_WAIT_MS 5000

static int
pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int
pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Does pid hold the socket whose inode is ino? */
static int
holds_socket(long pid, unsigned long ino)
{
	char dir[64], path[PATH_MAX], link[64], want[64];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int found = 0;

	snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
	snprintf(want, sizeof want, "socket:[%lu]", ino);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		found = strcmp(link, want) == 0;
	}
	closedir(d);
	return found;
}

/* The process's name (/proc/PID/comm), "?" when unknown. */
static void
proc_name(long pid, char *buf, size_t len)
{
	char path[64];
	FILE *fp;

	snprintf(path, sizeof path, "/proc/%ld/comm", pid);
	snprintf(buf, len, "?");
	if ((fp = fopen(path, "r")) == NULL)
		return;
	if (fgets(buf, (int)len, fp) != NULL)
		buf[strcspn(buf, "\n")] = '\0';
	fclose(fp);
}

int
cmd_stop(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct commreg_client *c;
	const struct commreg_hello *h;
	struct pollfd pfd;
	unsigned long ino;
	char err[1024], name[64], scope[32], owner[256], host[256];
	long pid;
	uid_t uid;
	int pidfd, port, r;

	ctx->opts.no_spawn = 1;
	if ((c = commreg_open(&ctx->opts, err, sizeof err)) == NULL) {
		fprintf(stderr, "commreg: %s\n", err);
		if (errno != ESRCH)
			return EXIT_REGISTRY;
		fprintf(stderr, "commreg: nothing to stop\n");
		return EXIT_NONE;
	}
	h = commreg_hello_info(c);
	port = h->port;
	pid = h->pid;
	snprintf(scope, sizeof scope, "%s", h->scope);
	snprintf(owner, sizeof owner, "%s", h->owner);
	snprintf(host, sizeof host, "%s", h->host);
	if (peeruid_lookup_inode(commreg_fd(c), &uid, &ino, err, sizeof err) ==
	    -1) {
		fprintf(stderr,
		    "commreg: cannot tell which process serves port %d: %s\n",
		    port, err);
		commreg_close(c);
		return EXIT_REGISTRY;
	}
	pidfd = pid > 0 ? pidfd_open_((pid_t)pid) : -1;
	if (pidfd == -1 || uid != getuid() || !holds_socket(pid, ino)) {
		fprintf(stderr,
		    "commreg: the registry on port %d says it is pid %ld, but "
		    "that is not the process\ncommreg: the kernel says serves "
		    "it; nothing was signalled\n",
		    port, pid);
		if (pidfd != -1)
			close(pidfd);
		commreg_close(c);
		return EXIT_REGISTRY;
	}
	proc_name(pid, name, sizeof name);
	if (strcmp(name, "commregd") != 0) {
		fprintf(stderr,
		    "commreg: the registry on port %d is served inside pid %ld "
		    "(%s), an application\ncommreg: that hosts it; stopping it "
		    "would end the application: nothing was signalled\n",
		    port, pid, name);
		close(pidfd);
		commreg_close(c);
		return EXIT_REGISTRY;
	}
	commreg_close(c);
	if (pidfd_signal(pidfd, SIGTERM) == -1) {
		fprintf(stderr, "commreg: cannot signal pid %ld: %s\n", pid,
		    strerror(errno));
		close(pidfd);
		return EXIT_REGISTRY;
	}
	/* A pidfd polls readable once its process has ended. */
	pfd.fd = pidfd;
	pfd.events = POLLIN;
	while ((r = poll(&pfd, 1, STOP_WAIT_MS)) == -1 && errno == EINTR)
		;
	close(pidfd);
	if (r != 1) {
		fprintf(stderr,
		    "commreg: the registry (pid %ld) was told to stop but "
		    "still "
		    "runs after %d s\n",
		    pid, STOP_WAIT_MS / 1000);
		return EXIT_REGISTRY;
	}
	printf("stopped the %s registry of %s on %s (port %d, pid %ld)\n",
	    scope, owner, host, port, pid);
	return 0;
}
