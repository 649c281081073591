/*
 * fedbench: the measuring half of bench/federation/run.sh
 * (docs/performance.md, "Federation").  Every mode prints one line of
 * numbers on stdout, "ok ..." or "fail REASON"; run.sh builds the table.
 *
 *   fedbench latency N REG_HOME WATCH_HOME...
 *       N times: register lat-I (scope global) on REG_HOME's user
 *       registry, and time until every WATCH_HOME's watch on "lat-*"
 *       shows lat-I@...; then unregister it and wait for the removes.
 *       Prints "ok" and, per watcher, the N add times in ms.
 *   fedbench fill N REG_HOME...
 *       register fill-00000 ... (scope global), all on one listening
 *       port of ours, 1000 on each connection, one connection to each
 *       REG_HOME's user registry in turn (a user registry holds its
 *       host and global names on ONE connection to the gateway, which
 *       takes at most 1024 names per connection: 10,000 names need ten
 *       user registries); prints "ok SECONDS" once all are in, then
 *       holds them until SIGTERM.  FEDBENCH_PER_CONN in the
 *       environment: that many names on each connection instead;
 *       FEDBENCH_PREFIX: names PREFIX00000 ... instead of fill-.
 *   fedbench lookups N HOME NAME...
 *       N times, each NAME in turn: commreg_lookup on HOME's user
 *       registry (which asks its gateway for what it lacks).  Prints
 *       "ok FOUND" (how many were answered with a comm id) and the N
 *       times in ms (a failed lookup counts as it is: a
 *       NAME nobody has measures the way to "no").
 *   fedbench resync N WATCH_HOME TIMEOUT_S CMD...
 *       watch "fill-*" on WATCH_HOME until it shows N entries, then run
 *       CMD (a shell command), and time until the view has lost at least
 *       one entry and shows N again.  Prints "ok MS LOWEST END" (LOWEST:
 *       the smallest count seen meanwhile; END: the wall clock then, in
 *       seconds, for comparing with times the command noted).
 *   fedbench tls HOST PORT CERT KEY CA PEER_NAME SECONDS
 *       open links to a gateway's listen address for SECONDS, one after
 *       another: TCP connect, TLS handshake with CERT/KEY (checking the
 *       gateway's certificate against CA and PEER_NAME), the comm offer
 *       "3 0", and wait for the gateway's "{vers 3}" (it answers only
 *       once it has matched our certificate to a [remote]); close.
 *       Prints "ok LINKS SECONDS", the per-link times in ms, and the
 *       times until SSL_connect returned (TCP + TLS handshake, client's
 *       view), each list after a "|".  FEDBENCH_QUICKACK=1 in the
 *       environment: the client acknowledges at once (TCP_QUICKACK),
 *       to tell Nagle's algorithm at the gateway from other delays.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "commreg.h"

#define NAMES_PER_CONN 1000
#define BIG_MESSAGE    (64 * 1024 * 1024)

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
fail(const char *fmt, const char *a, const char *b)
{
	printf("fail ");
	printf(fmt, a, b);
	printf("\n");
	fflush(stdout);
	exit(1);
}

/* One TCP listener on 0.0.0.0 (so the comm id a gateway advertises,
 * its listen address, reaches it): its port. */
static int
listener(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(fd, 16) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1)
		fail("listen: %s%s", strerror(errno), "");
	return ntohs(sin.sin_port);
}

static struct commreg_client *
client(const char *home)
{
	struct commreg_open_opts o;
	struct commreg_client *c;
	char err[512];

	memset(&o, 0, sizeof o);
	o.home = home;
	o.max_message = BIG_MESSAGE;
	o.reply_timeout_ms = 60000;
	if ((c = commreg_open(&o, err, sizeof err)) == NULL)
		fail("open %s: %s", home, err);
	return c;
}

/* ---- latency ------------------------------------------------------------ */

static int
latency(int n, const char *reghome, char **whomes, int nw)
{
	struct commreg_client *r, *w[8];
	double *t = calloc((size_t)n * (size_t)nw, sizeof *t);
	char name[64], assigned[256], pfx[70];
	struct commreg_event ev;
	struct pollfd pfd[8];
	int port = listener(), i, k, left, rc;
	double t0;

	if (nw > 8 || t == NULL)
		fail("at most 8 watchers%s%s", "", "");
	r = client(reghome);
	for (k = 0; k < nw; k++) {
		w[k] = client(whomes[k]);
		if (commreg_watch(w[k], "lat", "lat-*", NULL, NULL) != 0)
			fail("watch: %s%s", commreg_error(w[k]), "");
		pfd[k].fd = commreg_fd(w[k]);
		pfd[k].events = POLLIN;
	}
	for (i = 0; i < n; i++) {
		for (int remove = 0; remove < 2; remove++) {
			snprintf(name, sizeof name, "lat-%d", i);
			snprintf(pfx, sizeof pfx, "%s@", name);
			t0 = now_ms();
			if (remove)
				rc = commreg_unregister(r, name);
			else
				rc = commreg_register_scope(r, name, port, NULL,
				    "global", assigned, sizeof assigned);
			if (rc != 0)
				fail("register %s: %s", name, commreg_error(r));
			int seen[8] = {0};
			for (left = nw; left > 0;) {
				for (k = 0; k < nw; k++) {
					while (!seen[k] &&
					       (rc = commreg_next_event(w[k], 0,
					            &ev)) == 1) {
						if ((ev.type ==
						        COMMREG_EVENT_ADD) ==
						        !remove &&
						    strncmp(ev.entry.name, pfx,
						        strlen(pfx)) == 0) {
							if (!remove)
								t[k * n + i] =
								    now_ms() -
								    t0;
							seen[k] = 1;
							left--;
						}
						commreg_event_clear(&ev);
					}
					if (rc == -1)
						fail("watch lost: %s%s",
						    commreg_error(w[k]), "");
				}
				if (left == 0)
					break;
				if (now_ms() - t0 > 20000)
					fail("%s not seen in 20 s%s", name, "");
				if (poll(pfd, (nfds_t)nw, 5) > 0)
					for (k = 0; k < nw; k++)
						if (pfd[k].revents &&
						    commreg_dispatch(w[k], 0) ==
						        -1)
							fail("watch lost: %s%s",
							    commreg_error(w[k]),
							    "");
			}
		}
	}
	printf("ok");
	for (k = 0; k < nw; k++) {
		printf(" |");
		for (i = 0; i < n; i++)
			printf(" %.3f", t[k * n + i]);
	}
	printf("\n");
	return 0;
}

/* ---- fill ---------------------------------------------------------------- */

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int
fill(int n, char **homes, int nh)
{
	int per = getenv("FEDBENCH_PER_CONN") != NULL
	              ? atoi(getenv("FEDBENCH_PER_CONN"))
	              : NAMES_PER_CONN;
	const char *prefix = getenv("FEDBENCH_PREFIX") != NULL
	                         ? getenv("FEDBENCH_PREFIX")
	                         : "fill-";
	int port = listener(), i, nc;

	if (per <= 0)
		fail("FEDBENCH_PER_CONN %s%s", "must be a positive number", "");
	nc = (n + per - 1) / per;
	struct commreg_client **c = calloc((size_t)nc, sizeof *c);
	char name[64], assigned[256];
	double t0 = now_ms();

	if (nc > nh)
		fail("too few homes: one per %s names%s",
		    getenv("FEDBENCH_PER_CONN") ? getenv("FEDBENCH_PER_CONN")
		                                : "1000",
		    "");
	for (i = 0; i < nc; i++)
		c[i] = client(homes[i]);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof name, "%s%05d", prefix, i);
		if (commreg_register_scope(c[i / per], name, port, NULL,
		        "global", assigned, sizeof assigned) != 0)
			fail("register %s: %s", name,
			    commreg_error(c[i / per]));
	}
	printf("ok %.3f\n", (now_ms() - t0) / 1e3);
	fflush(stdout);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	while (!stop)
		for (i = 0; i < nc && !stop; i++)
			if (commreg_dispatch(c[i], 100 / nc + 1) == -1)
				fail("registry lost: %s%s", commreg_error(c[i]),
				    "");
	return 0;
}

/* ---- resync -------------------------------------------------------------- */

static int
resync(int n, const char *home, int timeout_s, const char *cmd)
{
	struct commreg_client *w = client(home);
	struct commreg_event ev;
	size_t count = 0, lowest;
	bool dropped = false;
	double t0, deadline;
	int rc;

	struct commreg_entry *v;

	if (commreg_watch(w, "rs", "fill-*", &v, &count) != 0)
		fail("watch: %s%s", commreg_error(w), "");
	commreg_entries_free(v, count);
	deadline = now_ms() + timeout_s * 1e3;
	for (;;) { /* the starting state: all N */
		while (count < (size_t)n &&
		       (rc = commreg_next_event(w, 200, &ev)) == 1) {
			count += ev.type == COMMREG_EVENT_ADD ? 1 : -1;
			commreg_event_clear(&ev);
		}
		if (count >= (size_t)n)
			break;
		if (rc == -1 || now_ms() > deadline) {
			printf("fail only %zu of %d before the start\n", count,
			    n);
			return 1;
		}
	}
	lowest = count;
	t0 = now_ms();
	if (system(cmd) != 0)
		fail("command failed: %s%s", cmd, "");
	deadline = now_ms() + timeout_s * 1e3;
	while (!dropped || count < (size_t)n) {
		rc = commreg_next_event(w, 200, &ev);
		if (rc == -1) {
			printf("fail watch lost: %s\n", commreg_error(w));
			return 1;
		}
		if (rc == 1) {
			if (ev.type == COMMREG_EVENT_ADD)
				count++;
			else {
				count--;
				dropped = true;
			}
			if (count < lowest)
				lowest = count;
			commreg_event_clear(&ev);
		}
		if (now_ms() > deadline) {
			printf("fail %zu of %d after %d s (lowest %zu)\n",
			    count, n, timeout_s, lowest);
			return 1;
		}
	}
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		printf("ok %.1f %zu %lld.%09ld\n", now_ms() - t0, lowest,
		    (long long)rt.tv_sec, rt.tv_nsec);
	}
	return 0;
}

/* ---- tls ----------------------------------------------------------------- */

static int
tls(const char *host, int port, const char *cert, const char *key,
    const char *ca, const char *peer, double seconds)
{
	struct sockaddr_in sin;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	double t0 = now_ms(), t1, th, *v = NULL, *h = NULL;
	size_t nv = 0, cap = 0, i;
	char buf[64];
	int one = 1, quickack = getenv("FEDBENCH_QUICKACK") != NULL &&
	                        getenv("FEDBENCH_QUICKACK")[0] != '\0';

	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		fail("TLS files %s %s", cert, key);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* No session resumption: every link is a full handshake, as the
	 * gateway's own links are. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	inet_pton(AF_INET, host, &sin.sin_addr);
	while ((t1 = now_ms()) - t0 < seconds * 1e3) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), got = 0, k;
		SSL *ssl = SSL_new(ctx);

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1)
			fail("connect: %s%s", strerror(errno), "");
		SSL_set_fd(ssl, fd);
		SSL_set1_host(ssl, peer);
		SSL_set_tlsext_host_name(ssl, peer);
		if (SSL_connect(ssl) != 1) {
			ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
			fail("handshake: %s%s", buf, "");
		}
		th = now_ms() - t1;
		if (SSL_write(ssl, "3 0\n", 4) != 4)
			fail("write failed%s%s", "", "");
		while (got == 0 || buf[got - 1] != '\n') {
			if (quickack) /* diagnosis: our ACKs at once */
				setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one,
				    sizeof one);
			k = SSL_read(ssl, buf + got, (int)sizeof buf - got - 1);
			if (k <= 0)
				fail("no answer to the offer (refused?)%s%s",
				    "", "");
			got += k;
		}
		buf[got] = '\0';
		if (strcmp(buf, "{vers 3}\n") != 0)
			fail("unexpected answer %s%s", buf, "");
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
		if (nv == cap) {
			cap = cap ? cap * 2 : 1024;
			v = realloc(v, cap * sizeof *v);
			h = realloc(h, cap * sizeof *h);
			if (v == NULL || h == NULL)
				fail("out of memory%s%s", "", "");
		}
		h[nv] = th;
		v[nv++] = now_ms() - t1;
	}
	printf("ok %zu %.3f |", nv, (now_ms() - t0) / 1e3);
	for (i = 0; i < nv; i++)
		printf(" %.3f", v[i]);
	printf(" |");
	for (i = 0; i < nv; i++)
		printf(" %.3f", h[i]);
	printf("\n");
	return 0;
}

/* ---- lookups ------------------------------------------------------------ */

static int
lookups(int n, const char *home, char **names, int nn)
{
	struct commreg_client *c = client(home);
	double *t = calloc((size_t)n, sizeof *t), t0;
	char id[512];
	int i, found = 0;

	if (t == NULL)
		fail("out of memory%s%s", "", "");
	for (i = 0; i < n; i++) {
		t0 = now_ms();
		if (commreg_lookup_id(c, names[i % nn], id, sizeof id) == 0)
			found++;
		t[i] = now_ms() - t0;
	}
	printf("ok %d", found);
	for (i = 0; i < n; i++)
		printf(" %.4f", t[i]);
	printf("\n");
	commreg_close(c);
	free(t);
	return 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (argc >= 5 && strcmp(argv[1], "latency") == 0)
		return latency(atoi(argv[2]), argv[3], argv + 4, argc - 4);
	if (argc >= 4 && strcmp(argv[1], "fill") == 0)
		return fill(atoi(argv[2]), argv + 3, argc - 3);
	if (argc >= 5 && strcmp(argv[1], "lookups") == 0)
		return lookups(atoi(argv[2]), argv[3], argv + 4, argc - 4);
	if (argc == 6 && strcmp(argv[1], "resync") == 0)
		return resync(atoi(argv[2]), argv[3], atoi(argv[4]), argv[5]);
	if (argc == 9 && strcmp(argv[1], "tls") == 0)
		return tls(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6],
		    argv[7], atof(argv[8]));
	fprintf(stderr,
	    "usage: fedbench latency N REG_HOME WATCH_HOME...\n"
	    "       fedbench fill N REG_HOME...\n"
	    "       fedbench lookups N HOME NAME...\n"
	    "       fedbench resync N WATCH_HOME TIMEOUT_S CMD\n"
	    "       fedbench tls HOST PORT CERT KEY CA PEER_NAME SECONDS\n");
	return 2;
}
