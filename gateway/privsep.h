/*
 * commgwd's privilege separation (docs/gateway.md, "Privileges"), as
 * OpenBSD's relayd and httpd have it: a privileged parent that reads the
 * configuration and the keys, and hands them to the unprivileged part
 * that serves.
 *
 * With [gateway] user set and started as root, commgwd forks once its Unix
 * socket is open:
 *
 *   the parent stays root and does one thing: on SIGHUP (its own, or the
 *   child's, which asks it), it reads the configuration directory with
 *   the same trust checks as at start (gwconf_load as root: files and the
 *   directories above them root's, writable by nobody else) and the TLS
 *   files, and hands what it read to the child; on SIGTERM or SIGINT it
 *   stops the child; it ends when the child does, with its status;
 *
 *   the child becomes the user and serves; on what it is handed it builds
 *   the configuration (gwconf_load_mem: the same parser, the same
 *   file:line messages) and the TLS context, and swaps them in
 *   (gateway_reload_conf).  If the parent dies it says so once and serves
 *   on, without reloads.
 *
 * The two speak over a socketpair, in messages of their own:
 *
 *   TYPE (4 bytes) LENGTH (4 bytes), big-endian, then LENGTH bytes
 *
 *   PRIVSEP_CONFIG  parent to child: records, each
 *                   KIND (1 byte) NAMELEN (4) DATALEN (4) NAME DATA
 *                   'D' the directory (NAME; DATALEN 0), first and once;
 *                   'F' a *.ini file: its path, its text; in order;
 *                   'P' a TLS file: its path (absolute), its PEM
 *   PRIVSEP_STOP    parent to child, empty: stop, as for SIGTERM
 *   PRIVSEP_RELOAD  child to parent, empty: SIGHUP came to me
 *
 * Each side reads the other's bytes as input to check, never as trusted:
 * lengths are bounded before anything is buffered (a message at most
 * PRIVSEP_MSG_MAX, a name PRIVSEP_NAME_MAX, a file GWCONF_FILE_MAX or
 * GWCONF_PEM_MAX, PRIVSEP_FILES_MAX files), each sum checked against what
 * remains, names without NUL bytes; anything else is refused whole.
 */
#ifndef GATEWAY_PRIVSEP_H
#define GATEWAY_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gwconf.h"
#include "tbuf.h"

#define PRIVSEP_CONFIG 1
#define PRIVSEP_STOP   2
#define PRIVSEP_RELOAD 3

#define PRIVSEP_HEADER    8
#define PRIVSEP_MSG_MAX   (16 * 1024 * 1024)
#define PRIVSEP_NAME_MAX  4096
#define PRIVSEP_FILES_MAX 1024

struct event_base;
struct gateway;
struct privsep;

/* A PRIVSEP_CONFIG message, as the child reads it. */
struct privsep_conf {
	char *dir;
	struct gwconf_blob *ini; /* the *.ini files, in order */
	size_t nini;
	struct gwconf_blob pem[3]; /* the TLS files */
	size_t npem;
};

/* The PRIVSEP_CONFIG message of what gwconf_load read (conf's dir, texts
 * and PEM files), header included, appended to out.  -1 with the reason
 * when it would be larger than PRIVSEP_MSG_MAX. */
int privsep_encode(const struct gwconf *, struct tbuf *out, char *err,
    size_t errlen);
/* The header at p (avail bytes there): 1 with the type and the length of
 * what follows, 0 when fewer than PRIVSEP_HEADER bytes are there, -1 with
 * the reason for a length above PRIVSEP_MSG_MAX, or above 0 for a type
 * that carries nothing, or an unknown type. */
int privsep_header(const unsigned char *p, size_t avail, uint32_t *type,
    size_t *len, char *err, size_t errlen);
/* A PRIVSEP_CONFIG message's len bytes (after the header) into c, every
 * length checked; -1 with the reason, c then empty.  privsep_conf_free
 * frees it (the PEM bytes overwritten first). */
int privsep_decode(const unsigned char *p, size_t len, struct privsep_conf *c,
    char *err, size_t errlen);
void privsep_conf_free(struct privsep_conf *);

/*
 * The parent, after the fork: reads the configuration of config_dir on
 * SIGHUP or when the child (pid child, on descriptor fd) asks, and hands
 * it over; stops the child on SIGTERM or SIGINT; once the child is gone,
 * removes the Unix socket socket_path if it is still the one made at
 * start (dev, ino), and returns the exit status to give.
 */
int privsep_parent(pid_t child, int fd, const char *config_dir,
    const char *socket_path, dev_t dev, ino_t ino);

/* The child, on base: the parent (pid parent) at fd; stop(arg) is called
 * on PRIVSEP_STOP. */
struct privsep *privsep_child(struct event_base *, int fd, pid_t parent,
    struct gateway *, void (*stop)(void *), void *arg);
/* SIGHUP came to the child: ask the parent to read the configuration. */
void privsep_child_hup(struct privsep *);
void privsep_free(struct privsep *);

#endif
