/*
 * The Prometheus text exposition format (version 0.0.4), for
 * node-exporter's textfile collector: one file per producer in its
 * directory, read whole at each scrape.  So the file is never seen half
 * written: it is made beside its final name (hidden, and not ending in
 * .prom, which the collector would read) and renamed over it, mode 0644
 * for the collector's user.
 *
 * A family's samples come together, after one HELP and one TYPE line;
 * callers emit each metric name's samples one after the other.  Label
 * values are escaped as the format says (backslash, double quote,
 * newline); names are ours, constants matching [a-zA-Z_:][a-zA-Z0-9_:]*.
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "tbuf.h"

#define PROM_LABELS_MAX 8

struct prom {
	struct tbuf out;
	char *family; /* the name of the samples being written */
	char *lname[PROM_LABELS_MAX];
	char *lvalue[PROM_LABELS_MAX];
	int nlabels;
};

struct prom *
prom_new(void)
{
	struct prom *p = calloc(1, sizeof *p);

	if (p == NULL)
		fatal("calloc");
	tbuf_init(&p->out);
	return p;
}

void
prom_labels_clear(struct prom *p)
{
	int i;

	for (i = 0; i < p->nlabels; i++) {
		free(p->lname[i]);
		free(p->lvalue[i]);
	}
	p->nlabels = 0;
}

void
prom_free(struct prom *p)
{
	if (p == NULL)
		return;
	prom_labels_clear(p);
	free(p->family);
	tbuf_free(&p->out);
	free(p);
}

/* Every sample from now on carries NAME="VALUE" (until cleared). */
void
prom_label(struct prom *p, const char *name, const char *value)
{
	if (p->nlabels == PROM_LABELS_MAX)
		fatalx("prom_label: more than %d labels", PROM_LABELS_MAX);
	if ((p->lname[p->nlabels] = strdup(name)) == NULL ||
	    (p->lvalue[p->nlabels] = strdup(value)) == NULL)
		fatal("strdup");
	p->nlabels++;
}

/* HELP text: backslash and newline escaped. */
static void
add_help(struct tbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			tbuf_adds(b, "\\\\");
		else if (*s == '\n')
			tbuf_adds(b, "\\n");
		else
			tbuf_addc(b, *s);
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void
add_label_value(struct tbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			tbuf_addc(b, '\\');
		if (*s == '\n')
			tbuf_adds(b, "\\n");
		else
			tbuf_addc(b, *s);
	}
}

/* One sample of NAME; TYPE is counter or gauge. */
void
prom_metric(struct prom *p, const char *name, const char *type,
    const char *help, double value)
{
	struct tbuf *b = &p->out;
	int i;

	if (p->family == NULL || strcmp(p->family, name) != 0) {
		free(p->family);
		if ((p->family = strdup(name)) == NULL)
			fatal("strdup");
		tbuf_printf(b, "# HELP %s ", name);
		add_help(b, help);
		tbuf_printf(b, "\n# TYPE %s %s\n", name, type);
	}
	tbuf_adds(b, name);
	for (i = 0; i < p->nlabels; i++) {
		tbuf_printf(b, "%c%s=\"", i == 0 ? '{' : ',', p->lname[i]);
		add_label_value(b, p->lvalue[i]);
		tbuf_addc(b, '"');
	}
	tbuf_printf(b, "%s %.17g\n", p->nlabels > 0 ? "}" : "", value);
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write what was collected to path ("-": stdout), atomically.  0, or -1
 * said on stderr.
 */
int
prom_write(struct prom *p, const char *path)
{
	char dcopy[PATH_MAX], bcopy[PATH_MAX], tmp[PATH_MAX];
	const char *dir, *base;
	int fd;

	if (strcmp(path, "-") == 0) {
		fwrite(p->out.p, 1, p->out.len, stdout);
		fflush(stdout);
		return 0;
	}
	snprintf(dcopy, sizeof dcopy, "%s", path);
	snprintf(bcopy, sizeof bcopy, "%s", path);
	dir = dirname(dcopy);
	base = basename(bcopy);
	if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, base) >=
	    sizeof tmp) {
		fprintf(stderr, "commreg: %s: path too long\n", path);
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		fprintf(stderr, "commreg: cannot write %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0644) == -1 ||
	    write_all(fd, p->out.p, p->out.len) == -1 || fsync(fd) == -1) {
		fprintf(stderr, "commreg: cannot write %s: %s\n", tmp,
		    strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		fprintf(stderr, "commreg: cannot write %s: %s\n", path,
		    strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}
