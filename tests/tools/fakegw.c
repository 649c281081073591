/*
 * fakegw: something on a gateway's Unix socket that is not commgwd
 * (tests/integration/gateway.test.tcl).
 *
 *   fakegw [--silent | --no-entries] SOCKET_PATH
 *
 * Listens on SOCKET_PATH, prints "ready", and to every connection
 * answers the comm handshake with {vers 3} and every message with an
 * error reply, as a comm peer that knows no commreg command would.
 * With --silent it answers the handshake and then nothing: a gateway
 * that hangs.  With --no-entries it greets as commgwd does (Commreg/Hello
 * answered "gateway commgwd") and answers every message but
 * Commreg/Watch, whose snapshot never comes: a gateway that stalls a
 * user registry's copy of its entries.  Runs until killed.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONNS 16

int
main(int argc, char **argv)
{
	struct sockaddr_un sun;
	struct pollfd p[MAX_CONNS + 1];
	int greeted[MAX_CONNS + 1] = {0};
	char buf[4096], reply[128];
	int n = 1, i, lfd, serial, silent = 0, noentries = 0;
	ssize_t r;

	if (argc == 3 && strcmp(argv[1], "--silent") == 0) {
		silent = 1;
		argv++;
		argc--;
	} else if (argc == 3 && strcmp(argv[1], "--no-entries") == 0) {
		noentries = 1;
		argv++;
		argc--;
	}
	if (argc != 2 || strlen(argv[1]) >= sizeof sun.sun_path) {
		fprintf(stderr,
		    "usage: fakegw [--silent | --no-entries] SOCKET_PATH\n");
		return 2;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", argv[1]);
	unlink(argv[1]);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    listen(lfd, 8) == -1) {
		perror("fakegw");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	p[0].fd = lfd;
	p[0].events = POLLIN;
	for (;;) {
		if (poll(p, (nfds_t)n, -1) == -1)
			continue;
		if ((p[0].revents & POLLIN) && n <= MAX_CONNS) {
			p[n].fd = accept(lfd, NULL, NULL);
			p[n].events = POLLIN;
			p[n].revents = 0;
			greeted[n] = 0;
			if (p[n].fd != -1)
				n++;
		}
		for (i = 1; i < n; i++) {
			char *line, *save = NULL;

			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			if ((r = read(p[i].fd, buf, sizeof buf - 1)) <= 0) {
				close(p[i].fd);
				p[i] = p[--n];
				greeted[i] = greeted[n];
				i--;
				continue;
			}
			buf[r] = '\0';
			/* One answer per line: the offer, then messages. */
			for (line = strtok_r(buf, "\n", &save); line != NULL;
			     line = strtok_r(NULL, "\n", &save)) {
				if (!greeted[i]) {
					/* The first line is the offer. */
					greeted[i] = 1;
					snprintf(reply, sizeof reply,
					    "{vers 3}\n");
				} else if (noentries &&
				           sscanf(line, "{send %d", &serial) ==
				               1 &&
				           strstr(line, "Commreg/Watch") !=
				               NULL)
					continue;
				else if (noentries &&
				         sscanf(line, "{send %d", &serial) ==
				             1 &&
				         strstr(line, "Commreg/Hello") != NULL)
					snprintf(reply, sizeof reply,
					    "{reply %d {return -code 0 "
					    "{gateway commgwd}}}\n",
					    serial);
				else if (!silent &&
				         sscanf(line, "{send %d", &serial) == 1)
					snprintf(reply, sizeof reply,
					    "{reply %d {return -code 1 "
					    "{not a gateway}}}\n",
					    serial);
				else
					continue;
				if (write(p[i].fd, reply, strlen(reply)) < 0)
					break;
			}
		}
	}
}
