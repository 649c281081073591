/*
 * Logging for every daemon and tool (see log.h): one line per event,
 * "YYYY-mm-ddTHH:MM:SS progname: message", to stderr or the file chosen
 * with log_to(), flushed at once so a crash loses nothing.
 */
#define _GNU_SOURCE /* program_invocation_short_name */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const char	*log_progname;
static int		 log_lvl = LOG_LVL_WARN;
static FILE		*log_fp;

static void	vlog(const char *, va_list, const char *);

void
log_init(const char *progname, int level)
{
	log_progname = progname;
	log_lvl = level;
}

void
log_to(FILE *fp)
{
	log_fp = fp;
}

int
log_level(void)
{
	return log_lvl;
}

/* Write one line; why (a strerror text) is appended when not NULL. */
static void
vlog(const char *fmt, va_list ap, const char *why)
{
	FILE		*fp = log_fp != NULL ? log_fp : stderr;
	const char	*name;
	char		 ts[32];
	struct tm	 tm;
	time_t		 now;

	name = log_progname != NULL ? log_progname :
	    program_invocation_short_name;
	now = time(NULL);
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	fprintf(fp, "%s %s: ", ts, name);
	vfprintf(fp, fmt, ap);
	if (why != NULL)
		fprintf(fp, ": %s", why);
	fputc('\n', fp);
	fflush(fp);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, NULL);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog(fmt, ap, strerror(saved));
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
	vlog(fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_lvl < LOG_LVL_DEBUG)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap, NULL);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog(fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}
