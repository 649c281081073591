/*
 * Trusting the ~/.tcl/comm tree before believing what it says.
 *
 * The port files under ~/.tcl/comm/registry tell a user's applications
 * where their registry listens; whoever can write there can send them
 * anywhere.  Like sshd's StrictModes we therefore refuse a tree that is
 * reachable through a symbolic link, owned by someone else, or open to
 * group and other, and we say which path is wrong and how to fix it.
 *
 * Every check is made on an open descriptor (O_NOFOLLOW|O_DIRECTORY), not
 * on a name that could be swapped between the check and the use.
 *
 * safe_walk does the same for the directories above the host's
 * configuration and TLS files, as sshd's secure_filename() does for the
 * path to authorized_keys: whoever may replace a directory on the way may
 * replace what lies below it, however well that is protected itself.
 */
#define _GNU_SOURCE /* O_PATH */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "safepath.h"

#define SAFE_DIR_MODE 0700

static int open_dir(const char *, char *, size_t);
static int make_dir(const char *, char *, size_t);
static int check_dir_fd(int, const char *, uid_t, mode_t, char *, size_t);
static int join(char *, size_t, const char *, const char *, char *, size_t);

/*
 * Create a missing directory 0700 whatever the umask says: mkdir() can only
 * take bits away, so set the mode explicitly afterwards, on a descriptor
 * that did not follow a symbolic link put there meanwhile.  A umask that
 * took the owner's own read bit needs fchmodat() instead.
 */
static int
make_dir(const char *path, char *err, size_t errlen)
{
	int fd, rc;

	if (mkdir(path, SAFE_DIR_MODE) == -1) {
		if (errno == EEXIST)
			return 0; /* someone else made it: check it */
		if (errno == ENOENT)
			return reason(err, errlen,
			    "%s: cannot create it: its "
			    "parent directory does not exist",
			    path);
		return reason(err, errlen, "%s: cannot create directory: %s",
		    path, strerror(errno));
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		rc = fchmod(fd, SAFE_DIR_MODE);
		close(fd);
	} else if (errno == EACCES)
		rc = fchmodat(AT_FDCWD, path, SAFE_DIR_MODE,
		    AT_SYMLINK_NOFOLLOW);
	else
		return 0; /* replaced meanwhile: open_dir says why */
	if (rc == -1)
		return reason(err, errlen,
		    "%s: cannot set mode 0700 on the new "
		    "directory: %s",
		    path, strerror(errno));
	return 0;
}

/*
 * Open a directory without following a symbolic link in its last
 * component, creating it when missing.  Returns the descriptor or -1.
 */
static int
open_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, tries;

	for (tries = 0; tries < 2; tries++) {
		fd =
		    open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd != -1)
			return fd;
		if (errno == ENOENT && tries == 0) {
			if (make_dir(path, err, errlen) == -1)
				return -1;
			continue;
		}
		if (errno == ELOOP || errno == ENOTDIR) {
			if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
				return reason(err, errlen,
				    "%s: is a symbolic "
				    "link; refusing to follow it",
				    path);
			return reason(err, errlen, "%s: is not a directory",
			    path);
		}
		if (errno == EACCES)
			return reason(err, errlen,
			    "%s: cannot open directory: "
			    "%s (check the owner and mode of it and of its "
			    "parents)",
			    path, strerror(errno));
		return reason(err, errlen, "%s: cannot open directory: %s",
		    path, strerror(errno));
	}
	return reason(err, errlen, "%s: directory vanished while being created",
	    path);
}

/*
 * The checks proper.  `forbidden` is the set of permission bits that make
 * the directory untrustworthy: all group/other bits for our own
 * directories, only the write bits for the shared ~/.tcl.
 */
static int
check_dir_fd(int fd, const char *path, uid_t uid, mode_t forbidden, char *err,
    size_t errlen)
{
	struct stat st;
	mode_t mode;

	if (fstat(fd, &st) == -1)
		return reason(err, errlen, "%s: cannot stat: %s", path,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return reason(err, errlen, "%s: is not a directory", path);
	if (st.st_uid != uid)
		return reason(err, errlen,
		    "%s: owned by uid %lu, not by uid %lu", path,
		    (unsigned long)st.st_uid, (unsigned long)uid);
	mode = st.st_mode & 07777;
	if ((mode & forbidden) == 0)
		return 0;
	if (forbidden == 077)
		return reason(err, errlen,
		    "%s: mode %04o is too open "
		    "(group/other may read or write); run: chmod 700 %s",
		    path, (unsigned)mode, path);
	return reason(err, errlen,
	    "%s: mode %04o lets group/other write in "
	    "it; run: chmod go-w %s",
	    path, (unsigned)mode, path);
}

int
safe_dir(const char *path, uid_t uid, char *err, size_t errlen)
{
	int fd, rc;

	if ((fd = open_dir(path, err, errlen)) == -1)
		return -1;
	rc = check_dir_fd(fd, path, uid, 077, err, errlen);
	close(fd);
	return rc;
}

int
safe_parent_dir(const char *path, uid_t uid, char *err, size_t errlen)
{
	int fd, rc;

	if ((fd = open_dir(path, err, errlen)) == -1)
		return -1;
	rc = check_dir_fd(fd, path, uid, 022, err, errlen);
	close(fd);
	return rc;
}

int
safe_file_fd(int fd, const char *path, uid_t uid, char *err, size_t errlen)
{
	struct stat st;
	mode_t mode;

	if (fstat(fd, &st) == -1)
		return reason(err, errlen, "%s: cannot stat: %s", path,
		    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return reason(err, errlen, "%s: is not a regular file", path);
	if (st.st_uid != uid)
		return reason(err, errlen,
		    "%s: owned by uid %lu, not by uid %lu", path,
		    (unsigned long)st.st_uid, (unsigned long)uid);
	mode = st.st_mode & 07777;
	if (mode & 077)
		return reason(err, errlen,
		    "%s: mode %04o is too open "
		    "(group/other may read or write); run: chmod 600 %s",
		    path, (unsigned)mode, path);
	return 0;
}

/*
 * One directory on the way down (safe_walk): fd was opened with O_PATH and
 * O_NOFOLLOW, so a symbolic link shows as itself.
 */
static int
check_above(int fd, const char *dir, const char *target, uid_t uid, char *err,
    size_t errlen)
{
	struct stat st;
	mode_t mode;

	if (fstat(fd, &st) == -1)
		return reason(err, errlen, "%s: cannot stat: %s", dir,
		    strerror(errno));
	if (S_ISLNK(st.st_mode))
		return reason(err, errlen,
		    "%s: is a symbolic link (a directory above %s); refusing "
		    "to follow it",
		    dir, target);
	if (!S_ISDIR(st.st_mode))
		return reason(err, errlen, "%s: is not a directory", dir);
	if (st.st_uid != 0 && st.st_uid != uid) {
		if (uid == 0)
			return reason(err, errlen,
			    "%s: owned by uid %lu, not by root (a directory "
			    "above %s); run: chown root %s",
			    dir, (unsigned long)st.st_uid, target, dir);
		return reason(err, errlen,
		    "%s: owned by uid %lu, not by root or uid %lu (a "
		    "directory above %s)",
		    dir, (unsigned long)st.st_uid, (unsigned long)uid, target);
	}
	mode = st.st_mode & 07777;
	/* Sticky: others may add names, never take or swap ours. */
	if ((mode & 022) != 0 && (mode & S_ISVTX) == 0)
		return reason(err, errlen,
		    "%s: mode %04o lets group/other write in it (a directory "
		    "above %s); run: chmod go-w %s",
		    dir, (unsigned)mode, target, dir);
	return 0;
}

int
safe_walk(const char *path, uid_t uid, char *last, size_t lastlen,
    bool *missing, char *err, size_t errlen)
{
	char abs[PATH_MAX], target[PATH_MAX], dir[PATH_MAX];
	char *comp[PATH_MAX / 2], *p, *save;
	size_t n = 0, i, len;
	int fd, next, rc;

	if (missing != NULL)
		*missing = false;
	if (path == NULL || path[0] == '\0')
		return reason(err, errlen, "an empty path");
	if (path[0] == '/')
		rc = snprintf(abs, sizeof abs, "%s", path);
	else if (getcwd(dir, sizeof dir) == NULL)
		return reason(err, errlen,
		    "%s: cannot tell the working directory: %s", path,
		    strerror(errno));
	else
		rc = snprintf(abs, sizeof abs, "%s/%s", dir, path);
	if (rc < 0 || (size_t)rc >= sizeof abs)
		return reason(err, errlen, "%s: path too long", path);

	/* "." and ".." resolved by name: no link is followed below, so the
	 * names are what is walked. */
	for (p = strtok_r(abs, "/", &save); p != NULL;
	     p = strtok_r(NULL, "/", &save)) {
		if (strcmp(p, ".") == 0)
			continue;
		if (strcmp(p, "..") == 0) {
			if (n > 0)
				n--;
			continue;
		}
		comp[n++] = p;
	}
	if (n == 0)
		return reason(err, errlen, "%s: is the root directory", path);
	if ((size_t)snprintf(last, lastlen, "%s", comp[n - 1]) >= lastlen)
		return reason(err, errlen, "%s: name too long", path);
	for (i = 0, len = 0; i < n; i++) /* fits: no longer than abs */
		len += (size_t)snprintf(target + len, sizeof target - len,
		    "/%s", comp[i]);

	if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return reason(err, errlen, "/: cannot open: %s",
		    strerror(errno));
	if (check_above(fd, "/", target, uid, err, errlen) == -1)
		goto fail;
	for (i = 0, len = 0; i + 1 < n; i++) {
		len += (size_t)snprintf(dir + len, sizeof dir - len, "/%s",
		    comp[i]);
		next = openat(fd, comp[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (next == -1) {
			if (errno == ENOENT && missing != NULL)
				*missing = true;
			reason(err, errlen, "%s: %s", dir, strerror(errno));
			goto fail;
		}
		close(fd);
		fd = next;
		if (check_above(fd, dir, target, uid, err, errlen) == -1)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* dir + "/" + name into buf, refusing to truncate. */
static int
join(char *buf, size_t len, const char *dir, const char *name, char *err,
    size_t errlen)
{
	size_t dl;
	int n;

	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--; /* "/home/u/" and "/home/u" alike */
	n = snprintf(buf, len, "%.*s/%s", (int)dl, dir, name);
	if (n < 0 || (size_t)n >= len)
		return reason(err, errlen, "%s/%s: path too long", dir, name);
	return 0;
}

int
safe_comm_tree(const char *home, uid_t uid, char *regdir, size_t rdlen,
    char *err, size_t errlen)
{
	char tcl[4096], comm[4096], reg[4096], logdir[4096];

	if (home == NULL || home[0] != '/')
		return reason(err, errlen,
		    "home directory \"%s\" is not an "
		    "absolute path; set HOME",
		    home != NULL ? home : "");
	if (join(tcl, sizeof(tcl), home, ".tcl", err, errlen) == -1 ||
	    join(comm, sizeof(comm), tcl, "comm", err, errlen) == -1 ||
	    join(reg, sizeof(reg), comm, "registry", err, errlen) == -1 ||
	    join(logdir, sizeof(logdir), comm, "log", err, errlen) == -1)
		return -1;
	if (safe_parent_dir(tcl, uid, err, errlen) == -1 ||
	    safe_dir(comm, uid, err, errlen) == -1 ||
	    safe_dir(reg, uid, err, errlen) == -1 ||
	    safe_dir(logdir, uid, err, errlen) == -1)
		return -1;
	if ((size_t)snprintf(regdir, rdlen, "%s", reg) >= rdlen)
		return reason(err, errlen, "%s: path too long", reg);
	return 0;
}
