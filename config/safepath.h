/*
 * Trusting files before believing them (sshd's StrictModes).
 *
 * ~/.tcl/comm holds the port files that say where a user's registry lives;
 * whoever can write there can redirect the user's applications.  So the
 * tree is created 0700 (directories) / 0600 (files), and a tree that is
 * looser, owned by someone else, or reached through a symlink is refused
 * with a message naming the path and what is wrong (docs/security.md).
 *
 * This module knows nothing of sockets or registries.
 */
#ifndef CONFIG_SAFEPATH_H
#define CONFIG_SAFEPATH_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Make sure directory `path` exists, is a real directory (not a symlink),
 * owned by `uid`, and has no group/other permission bits; create it with
 * mode 0700 when missing (parents must already exist).  Returns 0, or -1
 * with a one-line reason in err, e.g.
 *   "/home/u/.tcl/comm: mode 0755 is too open (group/other may read or
 *    write); run: chmod 700 /home/u/.tcl/comm"
 *   "/home/u/.tcl/comm: owned by uid 1001, not by uid 1000"
 *   "/home/u/.tcl/comm: is a symbolic link; refusing to follow it"
 */
int safe_dir(const char *path, uid_t uid, char *err, size_t errlen);

/*
 * For the parent `~/.tcl`, which may hold other Tcl things: it must be a
 * real directory owned by uid and not writable by group or other; created
 * 0700 when missing.
 */
int safe_parent_dir(const char *path, uid_t uid, char *err, size_t errlen);

/*
 * Check an open file (opened with O_NOFOLLOW by the caller): regular file,
 * owned by uid, no group/other bits.  `path` is only used in the message.
 */
int safe_file_fd(int fd, const char *path, uid_t uid, char *err, size_t errlen);

/*
 * Build and check the whole tree for a user:
 *   home/.tcl (safe_parent_dir), home/.tcl/comm, home/.tcl/comm/registry,
 *   and home/.tcl/comm/log (safe_dir).
 * On success writes home/.tcl/comm/registry into regdir.
 */
int safe_comm_tree(const char *home, uid_t uid, char *regdir, size_t rdlen,
    char *err, size_t errlen);

#endif
