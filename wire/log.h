/*
 * One logging voice for every daemon and tool (as in the OpenBSD daemons):
 * log_warnx() for things an operator should see, log_info() for the life
 * cycle, log_debug() for tracing, fatalx() to stop.  Lines go to stderr in
 * the foreground or to the log file a detached daemon opened, prefixed with
 * time and program name (under systemd, when stderr is the journal: with
 * the syslog priority, <4> warning, <6> info, <7> debug, <3> the fatal
 * line, and no time); or, in the client library, to the application's
 * sink, or nowhere (log_set_sink, log_library_default).
 */
#ifndef WIRE_LOG_H
#define WIRE_LOG_H

#include <stdio.h>

enum log_level { LOG_LVL_WARN = 0, LOG_LVL_INFO = 1, LOG_LVL_DEBUG = 2 };

void log_init(const char *progname, int level);
/* Send lines to fp instead of stderr (the caller keeps fp open). */
void log_to(FILE *fp);
/*
 * Bound the log_to file: once a line leaves it at max bytes or more,
 * rotate(arg) is called to put it aside and return the file to write
 * from then on (log_to'd in its place; the old one is closed), or NULL
 * to keep writing where we are, unbounded.  Lines rotate() logs go to
 * the old file.  max 0: no bound.
 */
typedef FILE *(*log_rotate_fn)(void *arg);
void log_bound(long max, log_rotate_fn rotate, void *arg);
int log_level(void);
/* The level alone; like log_init, it asks for the lines (on stderr when
 * there is no sink). */
void log_set_level(int level);
/*
 * Hand every line at or above the level to fn instead of writing it: the
 * message alone (no time, no program name, no newline).  fn NULL: back to
 * stderr, or the log_to file.
 */
typedef void (*log_sink_fn)(int level, const char *line, void *arg);
void log_set_sink(log_sink_fn fn, void *arg);
/*
 * The client library's default, called when an application starts using
 * it: unless the program set up logging itself (log_init, log_to,
 * log_set_level) or gave a sink, lines are dropped, since the stderr of
 * the process that hosts the library is not the library's to write on.
 */
void log_library_default(void);
/*
 * What went wrong, told to the person who ran the command (a refused
 * configuration, by --check-config or at a start): "prog: message" on
 * stderr without a time, as they read it now; and as an error (<3>) when
 * stderr is the journal, so that a service's failed start shows in
 * journalctl -p err.
 */
void log_tell(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/*
 * Write a one-line reason for a person into a caller's buffer (err may be
 * NULL) and return -1, so that checks read "return reason(err, len, ...)".
 * Modules that report failures to their caller use this, not the log.
 */
int reason(char *err, size_t errlen, const char *, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * A warning that a peer can cause again and again (a refused connection,
 * a refused registration): the first per source (key) and 10 s interval
 * is logged, the rest are counted into one summary line, written with
 * the next line of that source or by log_limited_flush(), which a
 * daemon's timer calls.
 */
void log_limited(const char *key, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void log_limited_flush(void);
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
