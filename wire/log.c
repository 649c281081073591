/*
 * Logging for every daemon and tool (see log.h): one line per event,
 * "YYYY-mm-ddTHH:MM:SSZ progname: message", to stderr or the file chosen
 * with log_to(), flushed at once so a crash loses nothing; or the message
 * alone to a sink (the client library's application), or nowhere.
 *
 * Under systemd, when the line goes to the journal (stderr is the stream
 * $JOURNAL_STREAM names, as sd-daemon(3) says to check), it is
 * "<N>progname: message": the syslog priority for journald to keep, and
 * no time of our own, the journal has it.
 */
#define _GNU_SOURCE /* program_invocation_short_name */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_progname;
static int log_lvl = LOG_LVL_WARN;
static FILE *log_fp;
static log_sink_fn log_sink;
static void *log_sink_arg;
static int log_asked;        /* the program chose where its lines go */
static int log_quiet;        /* the library's default: nowhere */
static int log_journal = -1; /* lines go to the journal; -1: not known */
static long log_max;         /* log_bound */
static log_rotate_fn log_rotate;
static void *log_rotate_arg;
static int log_rotating; /* in log_rotate: its lines go to the old file */

static void vlog(int, int, const char *, va_list, const char *);

void
log_init(const char *progname, int level)
{
	log_progname = progname;
	log_lvl = level;
	log_asked = 1;
	log_quiet = 0;
}

void
log_to(FILE *fp)
{
	log_fp = fp;
	log_journal = -1;
	log_asked = 1;
	log_quiet = 0;
}

void
log_bound(long max, log_rotate_fn rotate, void *arg)
{
	log_max = max;
	log_rotate = rotate;
	log_rotate_arg = arg;
}

/*
 * After a line to the bounded file: put the file aside when it is full.
 * fstat each time (a registry logs little): the size is the file's, with
 * whatever else wrote to it (stderr is the same file).
 */
static void
log_check_bound(FILE *fp)
{
	struct stat st;
	FILE *next;

	if (log_max <= 0 || log_rotate == NULL || fp != log_fp ||
	    log_rotating || fstat(fileno(fp), &st) == -1 ||
	    st.st_size < log_max)
		return;
	log_rotating = 1;
	next = log_rotate(log_rotate_arg);
	log_rotating = 0;
	if (next == NULL) {
		log_max = 0;
		return;
	}
	log_to(next);
	fclose(fp);
}

int
log_level(void)
{
	return log_lvl;
}

void
log_set_level(int level)
{
	log_lvl = level;
	log_asked = 1;
	log_quiet = 0;
}

void
log_set_sink(log_sink_fn fn, void *arg)
{
	log_sink = fn;
	log_sink_arg = arg;
}

void
log_library_default(void)
{
	if (!log_asked)
		log_quiet = 1;
}

/*
 * Is fd the journal's stream?  systemd sets JOURNAL_STREAM=DEV:INODE for
 * a service whose stderr it connects to journald; the descriptor must
 * still be that one (a detached daemon's stderr is its log file, a
 * child's may be redirected).
 */
static int
is_journal(int fd)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(fd, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

/* The syslog priority of a line, for the journal. */
static int
priority(int level, int fatal)
{
	if (fatal)
		return LOG_ERR;
	switch (level) {
	case LOG_LVL_WARN:
		return LOG_WARNING;
	case LOG_LVL_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

/* The message alone, for a sink. */
static void
vlog_sink(int level, const char *fmt, va_list ap, const char *why)
{
	char line[2048];
	size_t len = 0;
	int n;

	n = vsnprintf(line, sizeof line, fmt, ap);
	if (n > 0)
		len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (why != NULL && len < sizeof line - 1)
		snprintf(line + len, sizeof line - len, ": %s", why);
	log_sink(level, line, log_sink_arg);
}

/*
 * Write one line with a single write(2), so that lines of several
 * processes sharing a log (a daemon and the clients it forked, tests
 * running many at once) never interleave.  Times are UTC, marked Z.
 */
static void
vlog(int level, int fatal, const char *fmt, va_list ap, const char *why)
{
	FILE *fp = log_fp != NULL ? log_fp : stderr;
	const char *name;
	char line[2048];
	struct tm tm;
	time_t now;
	size_t len = 0;
	int n;

	if (log_sink != NULL) {
		vlog_sink(level, fmt, ap, why);
		return;
	}
	/* Quiet, but a process about to end says why. */
	if (log_quiet && !fatal)
		return;
	name =
	    log_progname != NULL ? log_progname : program_invocation_short_name;
	if (log_journal == -1)
		log_journal = is_journal(fileno(fp));
	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>",
		    priority(level, fatal));
		if (n > 0)
			len = (size_t)n;
	} else {
		now = time(NULL);
		if (gmtime_r(&now, &tm) != NULL)
			len = strftime(line, sizeof(line),
			    "%Y-%m-%dT%H:%M:%SZ ", &tm);
	}
	n = snprintf(line + len, sizeof(line) - len, "%s: ", name);
	if (n > 0)
		len += (size_t)n;
	if (len < sizeof(line)) {
		n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
		if (n > 0)
			len += (size_t)n;
	}
	if (why != NULL && len < sizeof(line)) {
		n = snprintf(line + len, sizeof(line) - len, ": %s", why);
		if (n > 0)
			len += (size_t)n;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated: keep the newline */
	line[len++] = '\n';
	fflush(fp);
	if (write(fileno(fp), line, len) == -1) {
		/* nowhere left to complain */
	}
	log_check_bound(fp);
}

void
log_tell(const char *fmt, ...)
{
	const char *name =
	    log_progname != NULL ? log_progname : program_invocation_short_name;
	char line[2048];
	size_t len = 0;
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line),
	    "%s%s: ", is_journal(STDERR_FILENO) ? "<3>" : "", name);
	if (n > 0)
		len = (size_t)n;
	if (len < sizeof(line)) {
		va_start(ap, fmt);
		n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
		va_end(ap);
		if (n > 0)
			len += (size_t)n;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	fflush(stderr);
	if (write(STDERR_FILENO, line, len) == -1) {
		/* nowhere left to complain */
	}
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, 0, fmt, ap, NULL);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, 0, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_lvl < LOG_LVL_INFO)
		return;
	va_start(ap, fmt);
	vlog(LOG_LVL_INFO, 0, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_lvl < LOG_LVL_DEBUG)
		return;
	va_start(ap, fmt);
	vlog(LOG_LVL_DEBUG, 0, fmt, ap, NULL);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, 1, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, 1, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

int
reason(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * Rate-limited warnings.  A source (a uid, an address) that keeps being
 * refused would otherwise write a line per connection into its victim's
 * log: the first line of an interval is written, the rest are counted,
 * and one summary line per source says how many were left out.  The
 * table is small and fixed; a source that finds no free slot shares the
 * catch-all slot, so a flood from many sources is still summarised.
 */
#define LOG_RATE_SLOTS    64
#define LOG_RATE_INTERVAL 10 /* seconds */

struct log_rate {
	char key[64];
	time_t start;    /* of the interval; 0: free slot */
	unsigned long n; /* lines left out in it */
	char last[160];  /* the last one left out, for the summary */
};
static struct log_rate log_rates[LOG_RATE_SLOTS + 1];

static void
log_rate_summary(struct log_rate *r)
{
	if (r->n > 0)
		log_warnx("%lu more like this from %s in %d s, not logged "
		          "one by one (last: %s)",
		    r->n, r->key, LOG_RATE_INTERVAL, r->last);
	r->n = 0;
}

void
log_limited(const char *key, const char *fmt, ...)
{
	struct log_rate *r = NULL, *spare = NULL;
	time_t now = time(NULL);
	va_list ap;
	size_t i;

	for (i = 0; i < LOG_RATE_SLOTS; i++) {
		if (log_rates[i].start != 0 &&
		    strcmp(log_rates[i].key, key) == 0) {
			r = &log_rates[i];
			break;
		}
		if (spare == NULL &&
		    (log_rates[i].start == 0 ||
		        now - log_rates[i].start >= 2 * LOG_RATE_INTERVAL))
			spare = &log_rates[i];
	}
	if (r == NULL) {
		if (spare == NULL) {
			r = &log_rates[LOG_RATE_SLOTS];
			key = "other sources";
		} else {
			r = spare;
			log_rate_summary(r);
			r->start = 0;
		}
		if (r->start == 0)
			snprintf(r->key, sizeof r->key, "%s", key);
	}
	if (r->start != 0 && now - r->start < LOG_RATE_INTERVAL) {
		r->n++;
		va_start(ap, fmt);
		vsnprintf(r->last, sizeof r->last, fmt, ap);
		va_end(ap);
		return;
	}
	log_rate_summary(r);
	r->start = now;
	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, 0, fmt, ap, NULL);
	va_end(ap);
}

void
log_limited_flush(void)
{
	time_t now = time(NULL);
	size_t i;

	for (i = 0; i <= LOG_RATE_SLOTS; i++)
		if (log_rates[i].start != 0 &&
		    now - log_rates[i].start >= LOG_RATE_INTERVAL &&
		    log_rates[i].n > 0) {
			log_rate_summary(&log_rates[i]);
			log_rates[i].start = now;
		}
}
