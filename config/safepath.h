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

#include <stdbool.h>
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
 * The directories above a file the host's configuration trusts (the *.ini
 * directory, the TLS files), checked as sshd's StrictModes checks the
 * path to authorized_keys, going down from / one directory at a time:
 * each must be a real directory (a symbolic link is refused, never
 * followed), owned by root or by `uid`, and not writable by group or
 * other unless its sticky bit is set (/tmp: nobody may then remove or
 * rename what another put there).  `uid` 0 accepts root alone.  A
 * relative path is taken from the working directory; "." and ".." are
 * resolved by name, which is sound since no link is followed.
 *
 * Returns a descriptor (O_PATH) of the directory that holds `path`, to
 * open its last component with openat() and O_NOFOLLOW, whose name is
 * written into `last`; or -1 with a reason such as
 *   "/srv/conf: mode 0777 lets group/other write in it (a directory
 *    above /srv/conf/comm); run: chmod go-w /srv/conf"
 * and *missing set when it is because a directory does not exist (missing
 * may be NULL).  path itself is not checked: that is the caller's.
 */
int safe_walk(const char *path, uid_t uid, char *last, size_t lastlen,
    bool *missing, char *err, size_t errlen);

/*
 * Build and check the whole tree for a user:
 *   home/.tcl (safe_parent_dir), home/.tcl/comm, home/.tcl/comm/registry,
 *   and home/.tcl/comm/log (safe_dir).
 * On success writes home/.tcl/comm/registry into regdir.
 */
int safe_comm_tree(const char *home, uid_t uid, char *regdir, size_t rdlen,
    char *err, size_t errlen);

#endif
