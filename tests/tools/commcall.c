/*
 * commcall: comm requests on one connection, for tests.
 *
 *   commcall unix:PATH|PORT WORD... [\; WORD...]...
 *
 * Connects to a Unix socket (the host gateway's) or to 127.0.0.1:PORT,
 * speaks the comm protocol through the project's engine, sends each
 * command (words up to a ";" argument) in turn on the one connection,
 * and prints each reply's result on a line of its own.  Exit 0 when
 * every reply was a result, 1 when one was an error (its message
 * printed), 2 when an answer did not come within 5 s or the connection
 * failed (why on stderr).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "peer.h"

static int status = 0, waiting;

static void
answered(struct peer *p, void *arg, int code, const char *res, size_t len)
{
	if (code == -1) {
		fprintf(stderr, "commcall: %.*s\n", (int)len, res);
		status = 2;
	} else {
		printf("%.*s\n", (int)len, res);
		if (code > status)
			status = code;
	}
	if (--waiting == 0)
		event_base_loopbreak(arg);
}

static void
gone(struct peer *p, const char *why)
{
	if (waiting > 0) {
		fprintf(stderr, "commcall: %s\n", why != NULL ? why : "closed");
		status = 2;
		waiting = 0;
	}
}

static int
dial(const char *where)
{
	struct sockaddr_un sun;
	struct sockaddr_in sin;
	int fd;

	if (strncmp(where, "unix:", 5) == 0) {
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", where + 5);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1)
			return -1;
		return fd;
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(where));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1)
		return -1;
	return fd;
}

int
main(int argc, char **argv)
{
	static const struct peer_ops ops = {.gone = gone};
	struct engine_limits lim;
	struct event_base *base;
	struct engine eng;
	struct peer *p;
	int fd, i, j;

	if (argc < 3) {
		fprintf(stderr, "usage: commcall unix:PATH|PORT WORD...\n");
		return 2;
	}
	log_init("commcall", LOG_LVL_WARN);
	if ((fd = dial(argv[1])) == -1) {
		perror("commcall: connect");
		return 2;
	}
	if ((base = event_base_new()) == NULL || engine_init(&eng, base) == -1)
		return 2;
	engine_default_limits(&lim);
	lim.max_message = 16 * 1024 * 1024;
	p = peer_new(&eng, fd, false, argv[1], &lim, &ops, NULL);
	for (i = 2; i < argc; i = j + 1) {
		for (j = i; j < argc && strcmp(argv[j], ";") != 0; j++)
			;
		if (j == i)
			continue;
		if (peer_request(p, (const char *const *)argv + i, NULL,
		        (size_t)(j - i), 5000, answered, base) == NULL)
			return 2;
		waiting++;
	}
	while (waiting > 0 && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	engine_free(&eng);
	event_base_free(base);
	return status;
}
