/*
 * Finding or becoming the user registry for this host (election.h,
 * docs/election.md).
 *
 * Many processes may start at once (every client of a registry that just
 * died tries to replace it), and any of them may be killed at any step.
 * Exactly one must come out as the registry, and a crash must leave nothing
 * that blocks the next starter.  The port file's flock(2) does the work: it
 * is held for the registry's whole life and the kernel drops it when the
 * holder dies, so "locked" means "someone alive owns this file".
 *
 *  - No file: create a locked temporary file and link(2) it to the port
 *    file name.  link is exclusive, and the port file is locked from the
 *    first instant anyone can see it.  Then listen and write "PORT\n".
 *  - Locked: valid content is a live registry (FOUND); empty or partial
 *    content is a contender still at work: wait for it, bounded.
 *  - Unlocked, which we learn by taking the lock ourselves: the holder is
 *    dead.  Check that the name still refers to the inode we locked, then
 *    become the registry in place, on the dead holder's port if we can get
 *    it (clients that remember the port find us there).
 *
 * Contents are valid only as digits followed by LF: the writer writes
 * "PORT\n" in one write(2), and a reader that catches a partial file sees
 * no LF and waits.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "election.h"
#include "log.h"
#include "safepath.h"

/* Every application of the user connects again at once when a standby
 * takes over: a SYN beyond the accept queue is dropped and sent again
 * by the client's kernel only a second later (capped by somaxconn). */
#define ELECTION_BACKLOG      4096
#define ELECTION_MAX_ROUNDS   4096 /* hard cap, whatever wait_ms says */
#define ELECTION_MAX_RESTARTS 64   /* lost races before giving up */
#define ELECTION_SLEEP_MIN_MS 2
#define ELECTION_SLEEP_MAX_MS 50
#define ELECTION_TEMP_TRIES   8
#define PORT_MAX_LEN          6    /* "65535\n" */
#define PORT_FILE_MAX         1024 /* the port and the addresses after it */

/*
 * Fault injection for tests/unit/test_election.c: when set, it is called
 * with the name of each step after which a crash must still leave nothing
 * that blocks the next starter ("linked", "bound", "writing").  The daemons
 * never set it.
 */
void (*election_crash_hook)(const char *);

/* What one look at the port file concluded. */
enum step {
	STEP_ERROR = -1,
	STEP_FOUND,   /* live registry, port known */
	STEP_WON,     /* we are the registry */
	STEP_WAIT,    /* a live contender is at work */
	STEP_RESTART, /* the file changed under us: look again */
};

struct election {
	const char *regdir;
	const char *host;
	uid_t uid;
	int remembered;   /* a dead registry's port, or 0 */
	pid_t waited_for; /* the contender we wait for, if known */
	char *err;
	size_t errlen;
};

static int say(struct election *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void crash_point(const char *);
static long now_ms(void);
static void sleep_ms(long);
static int port_parse(const char *, size_t);
static int port_read(int);
static int same_inode(int, const char *);
static pid_t lock_holder(int);
static int listen_on(int, int *);
static int listen_claim(struct election *, struct election_claim *);
static int port_write(struct election *, int, const char *, int);
static int temp_create(struct election *, char *, size_t);
static enum step become(struct election *, int, int, struct election_claim *);
static enum step create_file(struct election *, struct election_claim *);
static enum step look_at_file(struct election *, int, int *,
    struct election_claim *);
static int temp_is_dead(int, const char *, const struct stat *);
static void sweep_temps(struct election *, struct election_claim *);

static int
say(struct election *e, const char *fmt, ...)
{
	va_list ap;

	if (e->err != NULL && e->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(e->err, e->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void
crash_point(const char *step)
{
	if (election_crash_hook != NULL)
		election_crash_hook(step);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * "PORT\n" with PORT in 1..65535; -1 when not (yet) valid.  More lines
 * may follow the port's (the distributed registry's addresses,
 * docs/distributed.md): the content counts once it ends in LF, and its
 * first line is the port.
 */
static int
port_parse(const char *buf, size_t len)
{
	const char *lf;
	size_t i, plen;
	int port = 0;

	if (len < 2 || buf[len - 1] != '\n')
		return -1;
	lf = memchr(buf, '\n', len);
	plen = (size_t)(lf - buf) + 1;
	if (plen < 2 || plen > PORT_MAX_LEN)
		return -1;
	for (i = 0; i < plen - 1; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		port = port * 10 + (buf[i] - '0');
	}
	return port >= 1 && port <= 65535 ? port : -1;
}

/* Port in the file, -1 when not valid, -2 on a read error. */
static int
port_read(int fd)
{
	char buf[PORT_FILE_MAX];
	ssize_t n;

	do {
		n = pread(fd, buf, sizeof(buf), 0);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -2;
	return port_parse(buf, (size_t)n);
}

/*
 * Does path still name the inode fd refers to?  A waiter that locked an
 * inode someone has since unlinked must not act on the new file.
 */
static int
same_inode(int fd, const char *path)
{
	struct stat a, b;

	if (fstat(fd, &a) == -1 || lstat(path, &b) == -1)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Who holds the flock on the inode st describes, from /proc/locks (the
 * pid that took it, which may have gone since: a --detach registry's
 * parent); 0 if none or unknown. */
static pid_t
lock_holder_of(const struct stat *st)
{
	FILE *fp;
	char line[256], kind[16];
	unsigned int maj, mnr;
	unsigned long ino;
	int pid;
	pid_t found = 0;

	if ((fp = fopen("/proc/locks", "re")) == NULL)
		return 0;
	while (found == 0 && fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &pid,
		        &maj, &mnr, &ino) != 5)
			continue;
		if (strcmp(kind, "FLOCK") == 0 && maj == major(st->st_dev) &&
		    mnr == minor(st->st_dev) && ino == st->st_ino)
			found = pid;
	}
	fclose(fp);
	return found;
}

/* Who holds the flock on fd's inode; 0 if unknown. */
static pid_t
lock_holder(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return 0;
	return lock_holder_of(&st);
}

/*
 * Standing by (election_wait_gone): the registry's lock is watched, never
 * tried, since a starter that tried it at that instant would take a dead
 * registry's file for a live one (lib/client.c's probe says the same).
 * /proc/locks is read again when something happens in the registry
 * directory (inotify: the registry's descriptor on the file closes when
 * it dies, a file is linked, renamed or removed) and at least every
 * STANDBY_RECHECK_MS, should an event not come.
 */
#define STANDBY_RECHECK_MS 1000

/* 1 when nobody holds the lock of path (or there is no such file). */
static int
port_file_free(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return 1;
	return lock_holder_of(&st) == 0;
}

int
election_wait_gone(const char *regdir, const char *host, int max_ms, char *err,
    size_t errlen)
{
	char path[PATH_MAX], ev[4096];
	struct pollfd pfd;
	long deadline;
	int ifd, left, rc = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", regdir, host) >=
	    sizeof(path))
		return reason(err, errlen, "%s/%s: path too long", regdir,
		    host);
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ifd != -1 &&
	    inotify_add_watch(ifd, regdir,
	        IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_CREATE | IN_DELETE |
	            IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF) == -1) {
		close(ifd);
		ifd = -1;
	}
	deadline = now_ms() + max_ms;
	/* The watch is set before the first look: nothing falls between. */
	while (!(rc = port_file_free(path)) &&
	       (left = (int)(deadline - now_ms())) > 0) {
		if (left > STANDBY_RECHECK_MS)
			left = STANDBY_RECHECK_MS;
		pfd.fd = ifd;
		pfd.events = POLLIN;
		if (poll(&pfd, ifd != -1 ? 1 : 0, left) > 0)
			while (read(ifd, ev, sizeof(ev)) > 0)
				; /* only that something happened counts */
	}
	if (ifd != -1)
		close(ifd);
	return rc;
}

/*
 * A listening socket on 127.0.0.1:port (0: the OS chooses).  Returns the
 * descriptor, or -1 with errno set (EADDRINUSE when the port is taken).
 */
static int
listen_on(int port, int *bound)
{
	struct sockaddr_in sin;
	socklen_t len;
	int s, one = 1, saved;

	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	len = sizeof(sin);
	/* SO_REUSEADDR: the dead registry's connections may linger. */
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(s, ELECTION_BACKLOG) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) == -1) {
		saved = errno;
		close(s);
		errno = saved;
		return -1;
	}
	*bound = ntohs(sin.sin_port);
	return s;
}

int
election_listen(int port, int *bound)
{
	return listen_on(port, bound);
}

/*
 * A new registry's port is picked below the kernel's ephemeral range
 * (ip_local_port_range): a port the OS hands out for bind(0) is also one
 * it hands out as the source port of outgoing connections, so after the
 * registry dies one of its clients' reconnects could occupy it and stop
 * the next registry from coming back where clients look for it.  Random
 * tries, bounded; the caller falls back to letting the OS choose.
 */
static int
listen_outside_ephemeral(int *bound)
{
	FILE *fp;
	unsigned lo = 32768, hi = 60999, r;
	int s, i, port;

	if ((fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re")) !=
	    NULL) {
		if (fscanf(fp, "%u %u", &lo, &hi) != 2)
			lo = 32768;
		fclose(fp);
	}
	if (lo <= 20000 + 1024)
		return -1; /* no room below the range: let the OS choose */
	r = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (i = 0; i < 16; i++) {
		r = r * 1103515245u + 12345u;
		port = 20000 + (int)((r >> 8) % (lo - 20000));
		if ((s = listen_on(port, bound)) != -1)
			return s;
	}
	return -1;
}

/* Listen on the remembered port if it is free, else on a port of our
 * choosing, else wherever the OS says. */
static int
listen_claim(struct election *e, struct election_claim *c)
{
	int s = -1, port = 0;

	if (e->remembered != 0) {
		s = listen_on(e->remembered, &port);
		/* Taken, or one we may not have (a port file naming a port
		 * below 1024, EACCES): either way a new port, or the
		 * election would be blocked for good by what the file says. */
		if (s == -1 && errno == EADDRINUSE)
			log_debug("election: remembered port %d is taken",
			    e->remembered);
		else if (s == -1)
			log_warnx("election: cannot listen on the remembered "
			          "port %d (%s); taking a new one",
			    e->remembered, strerror(errno));
	}
	if (s == -1)
		s = listen_outside_ephemeral(&port);
	if (s == -1 && (s = listen_on(0, &port)) == -1)
		return say(e, "cannot listen on 127.0.0.1: %s",
		    strerror(errno));
	c->listen_fd = s;
	c->port = port;
	return 0;
}

/* Replace the content by "PORT\n": one write, so no reader sees a torn
 * line with an LF at its end. */
static int
port_write(struct election *e, int fd, const char *path, int port)
{
	char buf[16];
	int n;

	n = snprintf(buf, sizeof(buf), "%d\n", port);
	if (ftruncate(fd, 0) == -1)
		return say(e, "%s: cannot truncate: %s", path, strerror(errno));
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		return say(e, "%s: cannot write the port: %s", path,
		    strerror(errno));
	if (fsync(fd) == -1)
		return say(e, "%s: cannot sync: %s", path, strerror(errno));
	return 0;
}

/*
 * A fresh, locked, 0600 file named ".<host>.<pid>.<random>.tmp" in regdir.
 * Its name starts with a dot so that it is never taken for a host's port
 * file.
 */
static int
temp_create(struct election *e, char *tpath, size_t len)
{
	uint32_t r;
	int fd, i, n, saved;

	for (i = 0; i < ELECTION_TEMP_TRIES; i++) {
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)now_ms() ^ (uint32_t)i << 24;
		n = snprintf(tpath, len, "%s/.%s.%ld.%08x.tmp", e->regdir,
		    e->host, (long)getpid(), (unsigned)r);
		if (n < 0 || (size_t)n >= len)
			return say(e, "%s: path too long", e->regdir);
		fd = open(tpath,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1 && errno == EEXIST)
			continue;
		if (fd == -1)
			return say(e, "%s: cannot create a file in it: %s",
			    e->regdir, strerror(errno));
		/*
		 * A new registry sweeping dead temporary files may have
		 * locked this one in the instant before us: it removes it,
		 * we take another name.
		 */
		if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
			saved = errno;
			close(fd);
			if (saved == EWOULDBLOCK)
				continue;
			unlink(tpath);
			return say(e, "%s: cannot lock: %s", tpath,
			    strerror(saved));
		}
		/* The umask may have taken bits: set exactly 0600. */
		if (fchmod(fd, 0600) == -1) {
			say(e, "%s: cannot set mode 0600: %s", tpath,
			    strerror(errno));
			unlink(tpath);
			close(fd);
			return -1;
		}
		return fd;
	}
	return say(e, "%s: cannot find a free temporary file name", e->regdir);
}

/*
 * We hold the lock on the port file (fd, at c->path): listen and say
 * where.  `fresh` is set for a file we just created; on failure that one
 * is removed again so no one waits for it, while a taken-over file is left
 * as it was for the next starter.
 */
static enum step
become(struct election *e, int fd, int fresh, struct election_claim *c)
{
	struct stat st;
	char line[16];
	int old;

	if (listen_claim(e, c) == -1)
		goto fail;
	crash_point("bound");
	old = port_read(fd);
	/* The dead registry's addresses (docs/distributed.md) are not ours:
	 * the file says only the port until this one says more. */
	if (old != c->port ||
	    (fstat(fd, &st) == 0 &&
	        st.st_size != snprintf(line, sizeof line, "%d\n", c->port))) {
		crash_point("writing");
		if (port_write(e, fd, c->path, c->port) == -1) {
			close(c->listen_fd);
			c->listen_fd = -1;
			goto fail;
		}
	}
	c->lock_fd = fd;
	if (e->remembered != 0 && e->remembered != c->port)
		log_info("registry port file %s: port %d is taken by another "
		         "program; this registry listens on port %d",
		    c->path, e->remembered, c->port);
	else
		log_info("registry port file %s: this process is the registry "
		         "on port %d%s",
		    c->path, c->port,
		    e->remembered != 0 ? " (the previous registry's port)"
		                       : "");
	sweep_temps(e, c);
	return STEP_WON;
fail:
	if (fresh && same_inode(fd, c->path))
		unlink(c->path);
	close(fd);
	return STEP_ERROR;
}

/* Rule (c): no port file.  Create it exclusively, locked from birth. */
static enum step
create_file(struct election *e, struct election_claim *c)
{
	char tpath[sizeof(c->path)];
	int fd, rc, saved;

	if ((fd = temp_create(e, tpath, sizeof(tpath))) == -1)
		return STEP_ERROR;
	rc = link(tpath, c->path);
	saved = errno;
	if (rc == 0)
		crash_point("linked");
	unlink(tpath);
	if (rc == -1) {
		close(fd);
		/* EEXIST: someone else was faster; ENOENT: our temporary
		 * file was swept as a dead one before we locked it. */
		if (saved == EEXIST || saved == ENOENT) {
			log_debug("election: link %s: %s; looking again",
			    c->path, strerror(saved));
			return STEP_RESTART;
		}
		say(e, "%s: cannot create the port file: %s", c->path,
		    strerror(saved));
		return STEP_ERROR;
	}
	log_debug("election: created %s", c->path);
	return become(e, fd, 1, c);
}

/*
 * The port file exists and is open as fd.  Decide by its lock and its
 * content.
 */
static enum step
look_at_file(struct election *e, int fd, int *port, struct election_claim *c)
{
	int p;

	if (safe_file_fd(fd, c->path, e->uid, e->err, e->errlen) == -1)
		goto error;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK) {
			say(e, "%s: cannot lock: %s", c->path, strerror(errno));
			goto error;
		}
		p = port_read(fd);
		if (p == -2) {
			say(e, "%s: cannot read: %s", c->path, strerror(errno));
			goto error;
		}
		if (p > 0) { /* rule (a): a registry lives there */
			close(fd);
			*port = p;
			return STEP_FOUND;
		}
		e->waited_for = lock_holder(fd); /* rule (b) */
		close(fd);
		return STEP_WAIT;
	}
	/* Unlocked: whoever wrote it is gone.  Is it still the file? */
	if (!same_inode(fd, c->path)) {
		log_debug("election: %s changed while locking; looking again",
		    c->path);
		close(fd);
		return STEP_RESTART;
	}
	p = port_read(fd);
	if (p > 0) {
		log_debug("election: registry on port %d is gone", p);
		e->remembered = p;
	} else
		log_debug("election: taking over from a dead contender");
	return become(e, fd, 0, c);
error:
	close(fd);
	return STEP_ERROR;
}

/*
 * Is the temporary file `name` in dfd left by a dead contender?  Either it
 * is a second name of our own port file (killed between link and unlink),
 * or nobody holds its lock.  A contender between creating and locking it
 * loses its file; its link() then fails with ENOENT and it looks again.
 */
static int
temp_is_dead(int dfd, const char *name, const struct stat *mine)
{
	struct stat st, fst;
	int fd, dead = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	if (st.st_dev == mine->st_dev && st.st_ino == mine->st_ino)
		return 1;
	if (!S_ISREG(st.st_mode))
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &fst) == 0 &&
	    fst.st_dev == st.st_dev && fst.st_ino == st.st_ino)
		dead = 1;
	close(fd);
	return dead;
}

/*
 * A contender killed between creating its temporary file and removing it
 * leaves the file behind; the new registry clears them away.
 */
static void
sweep_temps(struct election *e, struct election_claim *c)
{
	struct stat mine;
	struct dirent *de;
	DIR *dir;
	char prefix[NAME_MAX + 2];
	size_t pl, nl;
	int dfd;

	if (fstat(c->lock_fd, &mine) == -1 ||
	    (dfd = open(e->regdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	if ((dir = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	snprintf(prefix, sizeof(prefix), ".%s.", e->host);
	pl = strlen(prefix);
	while ((de = readdir(dir)) != NULL) {
		nl = strlen(de->d_name);
		if (nl <= pl + 4 || strncmp(de->d_name, prefix, pl) != 0 ||
		    strcmp(de->d_name + nl - 4, ".tmp") != 0)
			continue;
		if (temp_is_dead(dfd, de->d_name, &mine) &&
		    unlinkat(dfd, de->d_name, 0) == 0)
			log_debug("election: removed %s/%s left by a dead "
			          "contender",
			    e->regdir, de->d_name);
	}
	closedir(dir);
}

enum election_result
election_run(const char *regdir, const char *host, int wait_ms, int *port,
    struct election_claim *claim, char *err, size_t errlen)
{
	struct election e;
	enum step st;
	long start, left, nap = ELECTION_SLEEP_MIN_MS;
	int fd, n, round, restarts = 0, found = 0;

	memset(&e, 0, sizeof(e));
	e.regdir = regdir;
	e.host = host;
	e.uid = geteuid();
	e.err = err;
	e.errlen = errlen;
	memset(claim, 0, sizeof(*claim));
	claim->lock_fd = claim->listen_fd = -1;

	if (host == NULL || host[0] == '\0' || host[0] == '.' ||
	    strchr(host, '/') != NULL || strlen(host) > NAME_MAX - 32) {
		say(&e,
		    "\"%s\": not usable as a port file name (a host name "
		    "is expected)",
		    host != NULL ? host : "");
		return ELECTION_ERROR;
	}
	n = snprintf(claim->path, sizeof(claim->path), "%s/%s", regdir, host);
	if (n < 0 || (size_t)n >= sizeof(claim->path) - NAME_MAX) {
		say(&e, "%s: path too long", regdir);
		return ELECTION_ERROR;
	}

	start = now_ms();
	for (round = 0; round < ELECTION_MAX_ROUNDS; round++) {
		fd = open(claim->path,
		    O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd == -1 && errno == ENOENT)
			st = create_file(&e, claim);
		else if (fd == -1 && errno == ELOOP) {
			say(&e,
			    "%s: is a symbolic link; refusing to follow "
			    "it (remove it)",
			    claim->path);
			st = STEP_ERROR;
		} else if (fd == -1) {
			say(&e, "%s: cannot open: %s", claim->path,
			    strerror(errno));
			st = STEP_ERROR;
		} else
			st = look_at_file(&e, fd, &found, claim);

		switch (st) {
		case STEP_FOUND:
			log_debug("election: registry found on port %d", found);
			if (port != NULL)
				*port = found;
			return ELECTION_FOUND;
		case STEP_WON:
			if (port != NULL)
				*port = claim->port;
			return ELECTION_WON;
		case STEP_ERROR:
			claim->lock_fd = claim->listen_fd = -1;
			return ELECTION_ERROR;
		case STEP_RESTART:
			if (++restarts > ELECTION_MAX_RESTARTS) {
				say(&e,
				    "%s: the port file kept changing "
				    "under us (%d times); giving up",
				    claim->path, restarts);
				return ELECTION_ERROR;
			}
			continue;
		case STEP_WAIT:
			break;
		}
		/* Rule (b): a contender is at work; wait for it, bounded. */
		left = wait_ms - (now_ms() - start);
		if (left <= 0)
			break;
		sleep_ms(nap < left ? nap : left);
		nap = nap * 2 > ELECTION_SLEEP_MAX_MS ? ELECTION_SLEEP_MAX_MS
		                                      : nap * 2;
	}
	if (e.waited_for > 0)
		say(&e,
		    "%s: process %ld has been becoming the registry for "
		    "%ld ms without writing its port; if it is stuck, stop it "
		    "and start again",
		    claim->path, (long)e.waited_for, now_ms() - start);
	else
		say(&e,
		    "%s: another process has been becoming the registry "
		    "for %ld ms without writing its port; if it is stuck, "
		    "stop it and start again",
		    claim->path, now_ms() - start);
	return ELECTION_ERROR;
}

void
election_release(struct election_claim *c)
{
	if (c == NULL)
		return;
	if (c->listen_fd != -1)
		close(c->listen_fd);
	if (c->lock_fd != -1) {
		/* Explicitly: a forked child may share the descriptor. */
		flock(c->lock_fd, LOCK_UN);
		close(c->lock_fd);
	}
	c->listen_fd = c->lock_fd = -1;
}

int
election_hostname(char *buf, size_t len)
{
	char *dot;

	if (len == 0)
		return -1;
	if (gethostname(buf, len) == -1)
		return -1;
	buf[len - 1] = '\0';
	if ((dot = strchr(buf, '.')) != NULL)
		*dot = '\0';
	if (buf[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	return 0;
}
