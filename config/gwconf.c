/*
 * Reading the host's comm configuration, the *.ini files of
 * /etc/tcl/comm, into one struct gwconf (the contract is gwconf.h, the
 * schema docs/config.md).
 *
 * A load goes in four steps:
 *   1. the directory and each file are checked before a byte of them is
 *      believed: no symbolic link, nothing writable by group or other,
 *      owned by root when we run as root (docs/config.md, "Trust");
 *   2. each file goes through inih's ini_parse_stream, fed by our reader.
 *      The reader counts lines, refuses over-long ones, and handles
 *      comments, section headers and malformed lines itself, so inih only
 *      ever sees "KEY = VALUE" lines and never reports an error of its own
 *      (it could only give the number of the first bad line, no word);
 *   3. each key goes to its section's table, one setter per key, which
 *      checks the value and stores it;
 *   4. what involves several keys or files is checked on the whole: a
 *      section's required keys, one upstream, and for the gateway the TLS
 *      files.
 * Every problem becomes one "file:line: message" line and the load goes
 * on, so that the person sees all of them at once; only at the end does a
 * load with any message fail, freeing what it built.
 *
 * Files are read whole into memory first (each at most GWCONF_FILE_MAX):
 * the gateway keeps what it trusted and parsed, so that its privileged
 * process hands on exactly those bytes, never a file read again
 * (gateway/privsep.h); gwconf_load_mem parses such bytes.
 *
 * Not thread-safe: Debian's inih takes its line buffer size from a global
 * (ini_max_line) that a load sets for the duration of the parse.
 */
#define _GNU_SOURCE /* vasprintf, secure_getenv */

#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "gwconf.h"
#include "log.h"
#include "safepath.h"

/* Bounds of the numbers a file may set (docs/config.md). */
#define MAX_CONNECTIONS_MAX 1048576
#define MAX_MESSAGE_MIN     1024
#define MAX_MESSAGE_MAX     (16 * 1024 * 1024)
#define HANDSHAKE_MAX       3600     /* seconds */
#define LOOKUP_TIMEOUT_MAX  60000    /* ms */
#define LIVENESS_MAX        86400000 /* ms */
#define QUOTA_MAX           1000000
#define SUN_PATH_MAX        107 /* sizeof(sockaddr_un.sun_path) - 1 */

/* Where something was written, for messages that point back at it. */
struct where {
	const char *file; /* one of conf->files, or NULL: not written */
	int line;
};

enum section_kind {
	SEC_NONE, /* before the first header of a file */
	SEC_SKIP, /* a bad header: its keys are not reported again */
	SEC_GATEWAY,
	SEC_RULE,
	SEC_QUOTA,
	SEC_REMOTE,
};

struct seen_section {
	char *title; /* "[rule x]" */
	struct where at;
};

struct seen_key {
	char *name; /* whitespace collapsed: "user alice" */
	int line;
};

struct loader {
	struct gwconf *conf;
	struct gwconf_errors *errs; /* may be NULL: only count */
	size_t nerrs;
	enum gwconf_mode mode;

	const char *file; /* the file being read, and its current line */
	int line;

	/* The section being read. */
	enum section_kind kind;
	char *title;
	struct where sec_at;
	struct seen_key *keys;
	size_t nkeys;

	/* Every section of every file, for duplicates across files. */
	struct seen_section *sections;
	size_t nsections;

	/* Where [gateway]'s TLS keys were set, checked once all is read. */
	struct where listen_at, certificate_at, key_at, ca_at;
	/* The first [remote] with upstream = yes. */
	struct where upstream_at;
	const char *upstream_name;

	/* gwconf_load_mem: the TLS files as handed over, by path (NULL:
	 * read them here). */
	const struct gwconf_blob *pem;
	size_t npem;
	bool from_memory;
};

/* Checks and stores one key's value (never empty). */
typedef void setter(struct loader *, const char *key, const char *value);

/* One key of a section: a row of its table. */
struct key_entry {
	const char *name;
	setter *set;
};

static void *
xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		fatalx("gwconf: size overflow");
	if ((p = realloc(p, n * size)) == NULL && n * size != 0)
		fatalx("gwconf: out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatalx("gwconf: out of memory");
	return p;
}

/* Append one zeroed element to *v (of n elements) and return it. */
static void *
grow(void *vp, size_t *n, size_t size)
{
	void **v = vp;
	char *p;

	*v = xrealloc(*v, *n + 1, size);
	p = (char *)*v + *n * size;
	memset(p, 0, size);
	(*n)++;
	return p;
}

/* One message, as formatted; without errs only counted. */
static void __attribute__((format(printf, 2, 3)))
err_path(struct loader *ld, const char *fmt, ...)
{
	char *msg;
	va_list ap;

	ld->nerrs++;
	if (ld->errs == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("gwconf: out of memory");
	va_end(ap);
	*(char **)grow(&ld->errs->v, &ld->errs->n, sizeof(char *)) = msg;
}

/* "FILE:LINE: message" at a remembered place. */
static void __attribute__((format(printf, 3, 0)))
err_vat(struct loader *ld, struct where at, const char *fmt, va_list ap)
{
	char *msg;

	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("gwconf: out of memory");
	err_path(ld, "%s:%d: %s", at.file, at.line, msg);
	free(msg);
}

static void __attribute__((format(printf, 3, 4)))
err_at(struct loader *ld, struct where at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vat(ld, at, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: message" at the line being read. */
static void __attribute__((format(printf, 2, 3)))
err_line(struct loader *ld, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vat(ld, (struct where){ld->file, ld->line}, fmt, ap);
	va_end(ap);
}

/* ---- values ---- */

static bool
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}

/* The next whitespace-separated word of *s into buf (NUL-terminated);
 * false when there is none.  Words are bounded by the line length. */
static bool
next_word(const char **s, char *buf, size_t len)
{
	const char *p = *s, *start;
	size_t n;

	while (is_space((unsigned char)*p))
		p++;
	if (*p == '\0')
		return false;
	start = p;
	while (*p != '\0' && !is_space((unsigned char)*p))
		p++;
	n = (size_t)(p - start);
	if (n >= len)
		n = len - 1;
	memcpy(buf, start, n);
	buf[n] = '\0';
	*s = p;
	return true;
}

static size_t
count_words(const char *s)
{
	char w[GWCONF_LINE_MAX + 1];
	size_t n = 0;

	while (next_word(&s, w, sizeof(w)))
		n++;
	return n;
}

/* A decimal number without sign or spaces, in lo..hi. */
static bool
parse_int(struct loader *ld, const char *key, const char *value, long lo,
    long hi, int *out)
{
	const char *p;
	long long v = 0;

	for (p = value; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			err_line(ld, "bad number \"%s\" for %s in %s", value,
			    key, ld->title);
			return false;
		}
		if (v <= hi)
			v = v * 10 + (*p - '0');
	}
	if (v < lo || v > hi) {
		err_line(ld, "%s = %s is out of range (%ld..%ld) in %s", key,
		    value, lo, hi, ld->title);
		return false;
	}
	*out = (int)v;
	return true;
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A user name known to the system, or a numeric uid. */
static bool
resolve_user(struct loader *ld, const char *name, uid_t *uid)
{
	struct passwd *pw;
	unsigned long long v;

	if ((pw = getpwnam(name)) != NULL) {
		*uid = pw->pw_uid;
		return true;
	}
	if (all_digits(name) && strlen(name) <= 10 &&
	    (v = strtoull(name, NULL, 10)) < (uid_t)-1) {
		*uid = (uid_t)v;
		return true;
	}
	err_line(ld, "unknown user \"%s\" in %s", name, ld->title);
	return false;
}

static bool
resolve_group(struct loader *ld, const char *name, gid_t *gid)
{
	struct group *gr;
	unsigned long long v;

	if ((gr = getgrnam(name)) != NULL) {
		*gid = gr->gr_gid;
		return true;
	}
	if (all_digits(name) && strlen(name) <= 10 &&
	    (v = strtoull(name, NULL, 10)) < (gid_t)-1) {
		*gid = (gid_t)v;
		return true;
	}
	err_line(ld, "unknown group \"%s\" in %s", name, ld->title);
	return false;
}

/* yes/no (true/false also read, as people write them). */
static bool
parse_bool(struct loader *ld, const char *key, const char *value, bool *out)
{
	if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0)
		*out = true;
	else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0)
		*out = false;
	else {
		err_line(ld, "bad value \"%s\" for %s in %s (yes or no)", value,
		    key, ld->title);
		return false;
	}
	return true;
}

/* HOST:PORT, or [IPv6]:PORT; the host is stored without brackets. */
static bool
parse_hostport(struct loader *ld, const char *key, const char *value,
    char **host, int *port)
{
	const char *colon, *hs, *he;
	int p;

	if (value[0] == '[') {
		hs = value + 1;
		he = strchr(hs, ']');
		colon = he != NULL && he[1] == ':' ? he + 1 : NULL;
	} else {
		hs = value;
		colon = he = strrchr(value, ':');
		if (colon != NULL &&
		    memchr(value, ':', (size_t)(colon - value)))
			colon = NULL; /* a bare IPv6 address: ambiguous */
	}
	if (colon == NULL || he == hs || !all_digits(colon + 1) ||
	    strlen(colon + 1) > 5 || (p = atoi(colon + 1)) < 1 || p > 65535 ||
	    memchr(hs, ' ', (size_t)(he - hs)) != NULL ||
	    memchr(hs, '\t', (size_t)(he - hs)) != NULL) {
		err_line(ld,
		    "bad address \"%s\" for %s in %s (HOST:PORT or "
		    "[IPv6]:PORT, port 1..65535)",
		    value, key, ld->title);
		return false;
	}
	free(*host);
	if ((*host = strndup(hs, (size_t)(he - hs))) == NULL)
		fatalx("gwconf: out of memory");
	*port = p;
	return true;
}

/* N or LO-HI, 1..65535. */
static bool
parse_ports(const char *w, struct gwconf_ports *r)
{
	const char *dash = strchr(w, '-');
	char lo[16];
	size_t n;

	n = dash != NULL ? (size_t)(dash - w) : strlen(w);
	if (n == 0 || n >= sizeof(lo))
		return false;
	memcpy(lo, w, n);
	lo[n] = '\0';
	if (!all_digits(lo) || n > 5)
		return false;
	r->lo = r->hi = atoi(lo);
	if (dash != NULL) {
		if (!all_digits(dash + 1) || strlen(dash + 1) > 5)
			return false;
		r->hi = atoi(dash + 1);
	}
	return r->lo >= 1 && r->hi <= 65535 && r->lo <= r->hi;
}

static bool
parse_path(struct loader *ld, const char *key, const char *value, char **out)
{
	if (value[0] != '/') {
		err_line(ld, "bad path \"%s\" for %s in %s (an absolute path)",
		    value, key, ld->title);
		return false;
	}
	free(*out);
	*out = xstrdup(value);
	return true;
}

/* A list of words, each kept as given (Tcl patterns, for names). */
static void
parse_words(const char *value, char ***v, size_t *n)
{
	char w[GWCONF_LINE_MAX + 1];

	while (next_word(&value, w, sizeof(w)))
		*(char **)grow(v, n, sizeof(char *)) = xstrdup(w);
}

/* ---- [gateway] ---- */

static void
gw_socket(struct loader *ld, const char *key, const char *value)
{
	if (strlen(value) > SUN_PATH_MAX) {
		err_line(ld,
		    "socket path \"%s\" is too long for a Unix socket "
		    "(at most %d bytes) in %s",
		    value, SUN_PATH_MAX, ld->title);
		return;
	}
	parse_path(ld, key, value, &ld->conf->socket_path);
}

/*
 * Only the gateway becomes this user: a user registry (GWCONF_CLIENT)
 * does not look it up, so that an account missing or not made yet
 * costs the host's registries nothing but the gateway its start.
 */
static void
gw_user(struct loader *ld, const char *key, const char *value)
{
	if (ld->mode == GWCONF_GATEWAY && getpwnam(value) == NULL) {
		err_line(ld, "unknown user \"%s\" in %s", value, ld->title);
		return;
	}
	free(ld->conf->run_as);
	ld->conf->run_as = xstrdup(value);
}

static void
gw_listen(struct loader *ld, const char *key, const char *value)
{
	ld->listen_at = (struct where){ld->file, ld->line};
	parse_hostport(ld, key, value, &ld->conf->listen_host,
	    &ld->conf->listen_port);
}

static void
gw_certificate(struct loader *ld, const char *key, const char *value)
{
	ld->certificate_at = (struct where){ld->file, ld->line};
	parse_path(ld, key, value, &ld->conf->certificate);
}

static void
gw_key(struct loader *ld, const char *key, const char *value)
{
	ld->key_at = (struct where){ld->file, ld->line};
	parse_path(ld, key, value, &ld->conf->key);
}

static void
gw_ca(struct loader *ld, const char *key, const char *value)
{
	ld->ca_at = (struct where){ld->file, ld->line};
	parse_path(ld, key, value, &ld->conf->ca);
}

static void
gw_max_connections(struct loader *ld, const char *key, const char *value)
{
	parse_int(ld, key, value, 1, MAX_CONNECTIONS_MAX,
	    &ld->conf->max_connections);
}

static void
gw_max_message(struct loader *ld, const char *key, const char *value)
{
	parse_int(ld, key, value, MAX_MESSAGE_MIN, MAX_MESSAGE_MAX,
	    &ld->conf->max_message);
}

static void
gw_link_max_message(struct loader *ld, const char *key, const char *value)
{
	/* Above the 16 KiB pieces a snapshot travels in (gateway/fed.c),
	 * with room for one large entry. */
	parse_int(ld, key, value, 65536, MAX_MESSAGE_MAX,
	    &ld->conf->link_max_message);
}

static void
gw_link_max_snapshot(struct loader *ld, const char *key, const char *value)
{
	/* What one remote may make us hold while its snapshot comes in
	 * pieces (about 200 bytes an entry: 64 MiB is some 300,000). */
	parse_int(ld, key, value, 65536, 1024 * 1024 * 1024,
	    &ld->conf->link_max_snapshot);
}

static void
gw_handshake_timeout(struct loader *ld, const char *key, const char *value)
{
	parse_int(ld, key, value, 1, HANDSHAKE_MAX,
	    &ld->conf->handshake_timeout);
}

/* 0 (no pings) or 300 ms to a day: what a silent peer may take. */
static void
gw_liveness_ms(struct loader *ld, const char *key, const char *value)
{
	if (parse_int(ld, key, value, 0, LIVENESS_MAX,
	        &ld->conf->liveness_ms) &&
	    ld->conf->liveness_ms > 0 && ld->conf->liveness_ms < 300)
		err_line(ld,
		    "%s = %s is too short to tell a slow peer from a hung one "
		    "(0, or 300..%d) in %s",
		    key, value, LIVENESS_MAX, ld->title);
}

static void
gw_lookup_timeout_ms(struct loader *ld, const char *key, const char *value)
{
	parse_int(ld, key, value, 1, LOOKUP_TIMEOUT_MAX,
	    &ld->conf->lookup_timeout_ms);
}

static const struct key_entry gateway_keys[] = {
    {"socket", gw_socket},
    {"user", gw_user},
    {"listen", gw_listen},
    {"certificate", gw_certificate},
    {"key", gw_key},
    {"ca", gw_ca},
    {"max_connections", gw_max_connections},
    {"link_max_message", gw_link_max_message},
    {"link_max_snapshot", gw_link_max_snapshot},
    {"max_message", gw_max_message},
    {"handshake_timeout", gw_handshake_timeout},
    {"lookup_timeout_ms", gw_lookup_timeout_ms},
    {"liveness_ms", gw_liveness_ms},
    {NULL, NULL},
};

/* ---- [rule NAME] ---- */

static struct gwconf_rule *
current_rule(struct loader *ld)
{
	return &ld->conf->rules[ld->conf->nrules - 1];
}

static void
rule_action(struct loader *ld, const char *key, const char *value)
{
	if (strcmp(value, "allow") == 0)
		current_rule(ld)->action = GWCONF_ALLOW;
	else if (strcmp(value, "deny") == 0)
		current_rule(ld)->action = GWCONF_DENY;
	else
		err_line(ld, "bad action \"%s\" in %s (allow or deny)", value,
		    ld->title);
}

static void
rule_users(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_rule *r = current_rule(ld);
	char w[GWCONF_LINE_MAX + 1];
	uid_t uid;

	while (next_word(&value, w, sizeof(w)))
		if (resolve_user(ld, w, &uid))
			*(uid_t *)grow(&r->uids, &r->nuids, sizeof(uid_t)) =
			    uid;
}

static void
rule_groups(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_rule *r = current_rule(ld);
	char w[GWCONF_LINE_MAX + 1];
	gid_t gid;

	while (next_word(&value, w, sizeof(w)))
		if (resolve_group(ld, w, &gid))
			*(gid_t *)grow(&r->gids, &r->ngids, sizeof(gid_t)) =
			    gid;
}

static void
rule_names(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_rule *r = current_rule(ld);

	parse_words(value, &r->names, &r->nnames);
}

static void
rule_ports(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_rule *r = current_rule(ld);
	struct gwconf_ports pr;
	char w[GWCONF_LINE_MAX + 1];

	while (next_word(&value, w, sizeof(w))) {
		if (!parse_ports(w, &pr)) {
			err_line(ld,
			    "bad port range \"%s\" in %s (N or LO-HI, "
			    "1..65535)",
			    w, ld->title);
			continue;
		}
		*(struct gwconf_ports *)grow(&r->ports, &r->nports,
		    sizeof(pr)) = pr;
	}
}

static void
rule_scopes(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_rule *r = current_rule(ld);
	char w[GWCONF_LINE_MAX + 1];

	while (next_word(&value, w, sizeof(w))) {
		if (strcmp(w, "host") == 0)
			r->scopes |= GWCONF_SCOPE_HOST;
		else if (strcmp(w, "global") == 0)
			r->scopes |= GWCONF_SCOPE_GLOBAL;
		else
			err_line(ld,
			    "unknown scope \"%s\" in %s (host or "
			    "global)",
			    w, ld->title);
	}
}

static void
rule_message(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_rule *r = current_rule(ld);

	free(r->message);
	r->message = xstrdup(value);
}

static const struct key_entry rule_keys[] = {
    {"action", rule_action},
    {"users", rule_users},
    {"groups", rule_groups},
    {"names", rule_names},
    {"ports", rule_ports},
    {"scopes", rule_scopes},
    {"message", rule_message},
    {NULL, NULL},
};

/* ---- [quota] ---- */

static void
quota_default(struct loader *ld, const char *key, const char *value)
{
	parse_int(ld, key, value, 0, QUOTA_MAX, &ld->conf->quota_default);
}

/* "user NAME = N" and "group NAME = N": the key holds the name. */
static void
quota_one(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_quota q;
	const char *p = key;
	char kind[16], name[GWCONF_LINE_MAX + 1];

	memset(&q, 0, sizeof(q));
	next_word(&p, kind, sizeof(kind));
	next_word(&p, name, sizeof(name));
	q.group = strcmp(kind, "group") == 0;
	if (q.group ? !resolve_group(ld, name, &q.gid)
	            : !resolve_user(ld, name, &q.uid))
		return;
	if (!parse_int(ld, key, value, 0, QUOTA_MAX, &q.max_entries))
		return;
	*(struct gwconf_quota *)grow(&ld->conf->quotas, &ld->conf->nquotas,
	    sizeof(q)) = q;
}

static const struct key_entry quota_keys[] = {
    {"default", quota_default},
    {NULL, NULL},
};

/* ---- [remote NAME] ---- */

static struct gwconf_remote *
current_remote(struct loader *ld)
{
	return &ld->conf->remotes[ld->conf->nremotes - 1];
}

static void
remote_address(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_remote *r = current_remote(ld);

	parse_hostport(ld, key, value, &r->host, &r->port);
}

bool
gwconf_gateway_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 253)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz"
	                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

static void
remote_peer_name(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_remote *r = current_remote(ld);

	if (!gwconf_gateway_name_ok(value)) {
		err_line(ld,
		    "bad value \"%s\" for %s in %s (a host name: letters, "
		    "digits, \".\", \"-\", \"_\")",
		    value, key, ld->title);
		return;
	}
	free(r->peer_name);
	r->peer_name = xstrdup(value);
}

static void
remote_export(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_remote *r = current_remote(ld);

	parse_words(value, &r->exports, &r->nexports);
}

static void
remote_import(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_remote *r = current_remote(ld);

	parse_words(value, &r->imports, &r->nimports);
}

static void
remote_upstream(struct loader *ld, const char *key, const char *value)
{
	struct gwconf_remote *r = current_remote(ld);

	if (!parse_bool(ld, key, value, &r->upstream) || !r->upstream)
		return;
	if (ld->upstream_name != NULL) {
		err_line(ld,
		    "%s is a second upstream (the first is [remote %s] at "
		    "%s:%d); a gateway has one parent",
		    ld->title, ld->upstream_name, ld->upstream_at.file,
		    ld->upstream_at.line);
		return;
	}
	ld->upstream_name = r->name;
	ld->upstream_at = (struct where){ld->file, ld->line};
}

static void
remote_reexport(struct loader *ld, const char *key, const char *value)
{
	parse_bool(ld, key, value, &current_remote(ld)->reexport);
}

static const struct key_entry remote_keys[] = {
    {"address", remote_address},
    {"peer_name", remote_peer_name},
    {"export", remote_export},
    {"import", remote_import},
    {"upstream", remote_upstream},
    {"reexport", remote_reexport},
    {NULL, NULL},
};

/* ---- sections ---- */

static bool
key_seen(struct loader *ld, const char *name, int *line)
{
	size_t i;

	for (i = 0; i < ld->nkeys; i++) {
		if (strcmp(ld->keys[i].name, name) == 0) {
			if (line != NULL)
				*line = ld->keys[i].line;
			return true;
		}
	}
	return false;
}

/* What a section needs once all its keys are read. */
static void
section_end(struct loader *ld)
{
	size_t i;

	if (ld->kind == SEC_RULE && !key_seen(ld, "action", NULL))
		err_at(ld, ld->sec_at,
		    "%s has no action (action = allow or "
		    "action = deny)",
		    ld->title);
	if (ld->kind == SEC_REMOTE && !key_seen(ld, "address", NULL))
		err_at(ld, ld->sec_at,
		    "%s has no address (address = HOST:PORT)", ld->title);
	if (ld->kind == SEC_REMOTE && !key_seen(ld, "peer_name", NULL))
		err_at(ld, ld->sec_at,
		    "%s has no peer_name (the name its certificate must "
		    "carry)",
		    ld->title);
	for (i = 0; i < ld->nkeys; i++)
		free(ld->keys[i].name);
	free(ld->keys);
	ld->keys = NULL;
	ld->nkeys = 0;
	free(ld->title);
	ld->title = NULL;
	ld->kind = SEC_NONE;
}

static bool
good_name(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.')
			return false;
	return true;
}

/* A header "[...]": `text` is what lies between the brackets. */
static void
section_begin(struct loader *ld, const char *text)
{
	char type[GWCONF_LINE_MAX + 1], name[GWCONF_LINE_MAX + 1];
	char *title, trimmed[GWCONF_LINE_MAX + 1];
	const char *p = text;
	size_t nwords, i, n;

	section_end(ld);
	ld->kind = SEC_SKIP;
	ld->sec_at = (struct where){ld->file, ld->line};

	/* The header as written, trimmed, for messages about it. */
	while (is_space((unsigned char)*text))
		text++;
	n = strlen(text);
	while (n > 0 && is_space((unsigned char)text[n - 1]))
		n--;
	memcpy(trimmed, text, n);
	trimmed[n] = '\0';
	if (asprintf(&ld->title, "[%s]", trimmed) == -1)
		fatalx("gwconf: out of memory");

	nwords = count_words(trimmed);
	p = trimmed;
	type[0] = name[0] = '\0';
	next_word(&p, type, sizeof(type));
	next_word(&p, name, sizeof(name));

	if (strcmp(type, "gateway") == 0 || strcmp(type, "quota") == 0) {
		if (nwords != 1) {
			err_line(ld, "section [%s] takes no name, found %s",
			    type, ld->title);
			return;
		}
	} else if (strcmp(type, "rule") == 0 || strcmp(type, "remote") == 0) {
		if (nwords == 1) {
			err_line(ld, "section [%s] needs a name: [%s NAME]",
			    type, type);
			return;
		}
		if (nwords > 2 || !good_name(name)) {
			err_line(ld,
			    "bad %s name in %s (one word of letters, digits, "
			    "'-', '_', '.')",
			    type, ld->title);
			return;
		}
	} else {
		err_line(ld, "unknown section %s", ld->title);
		return;
	}

	/* The canonical title: "[rule x]" however it was spaced. */
	if (asprintf(&title, "[%s%s%s]", type, nwords == 1 ? "" : " ",
	        nwords == 1 ? "" : name) == -1)
		fatalx("gwconf: out of memory");
	free(ld->title);
	ld->title = title;

	for (i = 0; i < ld->nsections; i++) {
		if (strcmp(ld->sections[i].title, title) == 0) {
			err_line(ld, "duplicate section %s (first at %s:%d)",
			    title, ld->sections[i].at.file,
			    ld->sections[i].at.line);
			return;
		}
	}
	((struct seen_section *)grow(&ld->sections, &ld->nsections,
	    sizeof(struct seen_section)))[0] =
	    (struct seen_section){xstrdup(title), ld->sec_at};

	if (strcmp(type, "gateway") == 0)
		ld->kind = SEC_GATEWAY;
	else if (strcmp(type, "quota") == 0)
		ld->kind = SEC_QUOTA;
	else if (strcmp(type, "rule") == 0) {
		struct gwconf_rule *r = grow(&ld->conf->rules,
		    &ld->conf->nrules, sizeof(struct gwconf_rule));

		r->name = xstrdup(name);
		r->file = xstrdup(ld->file);
		r->line = ld->line;
		ld->kind = SEC_RULE;
	} else {
		struct gwconf_remote *r = grow(&ld->conf->remotes,
		    &ld->conf->nremotes, sizeof(struct gwconf_remote));

		r->name = xstrdup(name);
		r->file = xstrdup(ld->file);
		r->line = ld->line;
		ld->kind = SEC_REMOTE;
	}
}

/* ---- keys: inih's handler ---- */

/* Whitespace inside a key collapsed to one space ("user  alice"). */
static void
normalize_key(const char *key, char *buf, size_t len)
{
	char w[GWCONF_LINE_MAX + 1];
	size_t n = 0, wl;

	buf[0] = '\0';
	while (next_word(&key, w, sizeof(w))) {
		wl = strlen(w);
		if (n + wl + 2 > len)
			break;
		if (n > 0)
			buf[n++] = ' ';
		memcpy(buf + n, w, wl + 1);
		n += wl;
	}
}

static setter *
find_setter(struct loader *ld, const char *key)
{
	const struct key_entry *t;
	char kind[GWCONF_LINE_MAX + 1];
	const char *p = key;

	switch (ld->kind) {
	case SEC_GATEWAY:
		t = gateway_keys;
		break;
	case SEC_RULE:
		t = rule_keys;
		break;
	case SEC_REMOTE:
		t = remote_keys;
		break;
	case SEC_QUOTA:
		next_word(&p, kind, sizeof(kind));
		if (count_words(key) == 2 &&
		    (strcmp(kind, "user") == 0 || strcmp(kind, "group") == 0))
			return quota_one;
		t = quota_keys;
		break;
	default:
		return NULL;
	}
	for (; t->name != NULL; t++)
		if (strcmp(t->name, key) == 0)
			return t->set;
	return NULL;
}

/* inih's handler: one "KEY = VALUE" line, already split and trimmed.
 * inih's `section` is not used: the reader keeps the real one (inih's
 * copy stops at 50 bytes and never sees our headers). */
static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	setter *set;
	char key[GWCONF_LINE_MAX + 1];
	int first;

	normalize_key(name, key, sizeof(key));
	if (ld->kind == SEC_NONE) {
		err_line(ld, "key \"%s\" outside any section", key);
		return 1;
	}
	if (ld->kind == SEC_SKIP)
		return 1; /* the header was reported */
	if ((set = find_setter(ld, key)) == NULL) {
		err_line(ld, "unknown key \"%s\" in %s%s", key, ld->title,
		    ld->kind == SEC_QUOTA
		        ? " (default, user NAME or group NAME)"
		        : "");
		return 1;
	}
	if (key_seen(ld, key, &first)) {
		err_line(ld, "duplicate key \"%s\" in %s (first at line %d)",
		    key, ld->title, first);
		return 1;
	}
	((struct seen_key *)grow(&ld->keys, &ld->nkeys,
	    sizeof(struct seen_key)))[0] =
	    (struct seen_key){xstrdup(key), ld->line};
	if (*value == '\0') {
		err_line(ld, "empty value for %s in %s", key, ld->title);
		return 1;
	}
	set(ld, key, value);
	return 1;
}

/* ---- the reader: lines for inih ---- */

/* A file's text, read whole before parsing (NUL bytes included: the
 * reader says where they are). */
struct reader {
	struct loader *ld;
	const char *s;
	size_t len, off;
};

static int
reader_getc(struct reader *r)
{
	if (r->off >= r->len)
		return EOF;
	return (unsigned char)r->s[r->off++];
}

/* A quoted excerpt of a line for messages: at most 40 bytes of it. */
static void
excerpt(const char *s, size_t n, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s%s", (int)(n > 40 ? 40 : n), s,
	    n > 40 ? "..." : "");
}

/*
 * Judge one line (NUL-terminated, no newline) and say what inih is to
 * see: the line itself when it is KEY = VALUE, else an empty line (so
 * that inih's line count stays ours).  Headers are handled here.
 */
static const char *
judge_line(struct loader *ld, char *line)
{
	char *start = line, *end, *p, ex[64];
	int was_space = 0;

	while (is_space((unsigned char)*start))
		start++;
	end = start + strlen(start);
	while (end > start && is_space((unsigned char)end[-1]))
		*--end = '\0';
	if (*start == '\0' || *start == ';' || *start == '#')
		return "";

	if (*start == '[') {
		/* inih's rule: "]" ends it unless a " ;" comment comes first */
		for (p = start + 1; *p != '\0' && *p != ']'; p++) {
			if (was_space && *p == ';')
				break;
			was_space = is_space((unsigned char)*p);
		}
		if (*p != ']') {
			excerpt(start, strlen(start), ex, sizeof(ex));
			section_end(ld);
			err_line(ld, "section header \"%s\" has no closing ']'",
			    ex);
			ld->kind = SEC_SKIP; /* its keys are not reported */
			ld->title = xstrdup("[?]");
			return "";
		}
		*p++ = '\0';
		section_begin(ld, start + 1);
		while (is_space((unsigned char)*p))
			p++;
		if (*p != '\0' && *p != ';' && *p != '#') {
			excerpt(p, strlen(p), ex, sizeof(ex));
			err_line(ld, "unexpected \"%s\" after %s", ex,
			    ld->title);
		}
		return "";
	}

	/* KEY = VALUE: find what inih would split at. */
	for (p = start; *p != '\0' && *p != '=' && *p != ':'; p++) {
		if (was_space && *p == ';')
			break;
		was_space = is_space((unsigned char)*p);
	}
	if (*p == '=' && p == start) {
		err_line(ld, "missing key before '='");
		return "";
	}
	if (*p == ':' && strchr(p, '=') != NULL) {
		size_t n = (size_t)(strchr(p, '=') - start);

		while (n > 0 && is_space((unsigned char)start[n - 1]))
			n--;
		excerpt(start, n, ex, sizeof(ex));
		err_line(ld,
		    "bad key \"%s\" (':' is not allowed in a key; write KEY "
		    "= VALUE)",
		    ex);
		return "";
	}
	if (*p != '=') {
		excerpt(start, strlen(start), ex, sizeof(ex));
		err_line(ld, "expected KEY = VALUE, not \"%s\"", ex);
		return "";
	}
	return start; /* left-trimmed: inih never sees a continuation */
}

/*
 * inih's reader: one physical line per call, as inih counts them.  The
 * whole line is read whatever its length, so that an over-long line is one
 * error and not several fragments.
 */
static char *
reader_next(char *str, int num, void *stream)
{
	struct reader *r = stream;
	struct loader *ld = r->ld;
	char line[GWCONF_LINE_MAX + 2];
	const char *feed;
	size_t n = 0, total = 0, flen;
	bool any = false, nul = false;
	int c;

	while ((c = reader_getc(r)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (c == '\0')
			nul = true;
		if (n < sizeof(line) - 1)
			line[n++] = (char)c;
		total++;
	}
	if (!any || num < 2)
		return NULL;
	ld->line++;
	if (n > 0 && n == total && line[n - 1] == '\r')
		n = --total; /* CRLF */
	line[n] = '\0';

	feed = "";
	if (total > GWCONF_LINE_MAX)
		err_line(ld, "line longer than %d bytes", GWCONF_LINE_MAX);
	else if (nul)
		err_line(ld, "NUL byte in line");
	else {
		char *l = line;

		if (ld->line == 1 && strncmp(l, "\xef\xbb\xbf", 3) == 0)
			l += 3; /* a UTF-8 byte order mark */
		feed = judge_line(ld, l);
	}
	flen = strlen(feed);
	if (flen + 2 > (size_t)num) {
		/* Only with an inih built otherwise than Debian's. */
		err_line(ld, "line longer than %d bytes", num - 2);
		feed = "";
		flen = 0;
	}
	memcpy(str, feed, flen);
	str[flen] = '\n';
	str[flen + 1] = '\0';
	return str;
}

/*
 * One file (or string) through inih.  Debian's inih reads lines into a
 * buffer of ini_max_line bytes (200 unless told), a run-time setting in
 * its build: raise it for this call so that every line our reader accepts
 * fits, and put it back.
 */
static void
parse_stream(struct loader *ld, const char *file, const char *s, size_t len)
{
	struct reader r = {.ld = ld, .s = s, .len = len};
	int saved = ini_max_line, rc;

	ld->file = file;
	ld->line = 0;
	ld->kind = SEC_NONE;
	ini_max_line = GWCONF_LINE_MAX + 3; /* line, "\r\n", NUL */
	rc = ini_parse_stream(reader_next, &r, on_key, ld);
	if (rc < 0)
		err_line(ld, "cannot parse: out of memory");
	else if (rc > 0) /* not expected: the reader judged every line */
		err_at(ld, (struct where){file, rc}, "cannot parse this line");
	ini_max_line = saved;
	section_end(ld);
}

/* ---- the whole ---- */

static struct gwconf *
conf_new(const char *dir)
{
	struct gwconf *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatalx("gwconf: out of memory");
	c->dir = dir != NULL ? xstrdup(dir) : NULL;
	c->socket_path = xstrdup(GWCONF_SOCKET_DEFAULT);
	c->max_connections = 1024;
	c->max_message = 65536;
	c->handshake_timeout = 10;
	c->liveness_ms = 15000;
	c->lookup_timeout_ms = 2000;
	c->link_max_message = MAX_MESSAGE_MAX;
	c->link_max_snapshot = 64 * 1024 * 1024;
	c->quota_default = 32;
	return c;
}

static const char *
add_file(struct gwconf *c, const char *path)
{
	char *p = xstrdup(path);

	*(char **)grow(&c->files, &c->nfiles, sizeof(char *)) = p;
	return p;
}

/*
 * All of fd, at most max bytes: the bytes (NUL-terminated) and how many,
 * or NULL with errno (EFBIG: longer than max).
 */
static char *
read_all(int fd, size_t max, size_t *lenp)
{
	char *p = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (cap - len < 4096) {
			cap = cap == 0 ? 8192 : cap * 2;
			if (cap > max + 2)
				cap = max + 2;
			p = xrealloc(p, cap, 1);
		}
		n = read(fd, p + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(p);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			free(p);
			errno = EFBIG;
			return NULL;
		}
	}
	p[len] = '\0';
	*lenp = len;
	return p;
}

/* Overwrite and free a blob's bytes (a key's: nothing of it stays in
 * memory that is given back). */
static void
blob_clear(struct gwconf_blob *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->len);
	free(b->data);
	free(b->name);
	memset(b, 0, sizeof(*b));
}

/*
 * A TLS file of the gateway, trusted, then read whole: the gateway makes
 * its TLS context of these bytes, and its privileged process hands them
 * on (gateway/privsep.h).  Every directory above it as safe_walk says;
 * the file itself no symbolic link, a regular file of root's (or ours,
 * when we are not root), writable by nobody else; a key readable by
 * nobody else either.  `what` names it in messages ("key file",
 * "certificate", "ca").
 */
static void
read_tls_file(struct loader *ld, struct where at, const char *what,
    const char *path, bool secret, struct gwconf_blob *out)
{
	char last[NAME_MAX + 1], err[3 * PATH_MAX];
	struct stat st;
	uid_t me = geteuid();
	bool gone = false;
	int pfd, fd, e;

	pfd = safe_walk(path, me, last, sizeof(last), &gone, err, sizeof(err));
	if (pfd == -1) {
		err_at(ld, at, "%s %s: %s", what, path,
		    gone ? strerror(ENOENT) : err);
		return;
	}
	fd = openat(pfd, last,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	e = errno;
	close(pfd);
	if (fd == -1) {
		if (e == ELOOP)
			err_at(ld, at,
			    "%s %s: is a symbolic link; refusing to follow it",
			    what, path);
		else if (e == ENOENT || e == ENOTDIR)
			err_at(ld, at, "%s %s: %s", what, path, strerror(e));
		else
			err_at(ld, at, "%s %s: cannot read it: %s", what, path,
			    strerror(e));
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		err_at(ld, at, "%s %s: is not a regular file", what, path);
		goto out;
	}
	if (secret && (st.st_mode & 066) != 0) {
		err_at(ld, at,
		    "%s %s: mode %04o lets group/other read or write it; run: "
		    "chmod 600 %s",
		    what, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (!secret && (st.st_mode & 022) != 0) {
		err_at(ld, at,
		    "%s %s: mode %04o lets group/other write it; run: chmod "
		    "go-w %s",
		    what, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != me) {
		if (me == 0)
			err_at(ld, at,
			    "%s %s: owned by uid %lu, not by root; run: chown "
			    "root %s",
			    what, path, (unsigned long)st.st_uid, path);
		else
			err_at(ld, at,
			    "%s %s: owned by uid %lu, not by root or uid %lu",
			    what, path, (unsigned long)st.st_uid,
			    (unsigned long)me);
		goto out;
	}
	out->data = read_all(fd, GWCONF_PEM_MAX, &out->len);
	if (out->data == NULL) {
		if (errno == EFBIG)
			err_at(ld, at,
			    "%s %s: larger than %d KiB, not a PEM file of "
			    "ours",
			    what, path, GWCONF_PEM_MAX / 1024);
		else
			err_at(ld, at, "%s %s: cannot read it: %s", what, path,
			    strerror(errno));
		goto out;
	}
	out->name = xstrdup(path);
out:
	close(fd);
}

/* gwconf_load_mem: the TLS file's bytes as handed over. */
static void
take_tls_file(struct loader *ld, struct where at, const char *what,
    const char *path, struct gwconf_blob *out)
{
	size_t i;

	for (i = 0; i < ld->npem; i++) {
		if (strcmp(ld->pem[i].name, path) != 0)
			continue;
		out->name = xstrdup(path);
		out->data = xrealloc(NULL, ld->pem[i].len + 1, 1);
		memcpy(out->data, ld->pem[i].data, ld->pem[i].len);
		out->data[ld->pem[i].len] = '\0';
		out->len = ld->pem[i].len;
		return;
	}
	err_at(ld, at, "%s %s: its contents were not handed over", what, path);
}

static void
tls_file(struct loader *ld, struct where at, const char *what, const char *path,
    bool secret, struct gwconf_blob *out)
{
	if (ld->from_memory)
		take_tls_file(ld, at, what, path, out);
	else
		read_tls_file(ld, at, what, path, secret, out);
}

/* The gateway's TLS: listen and remotes need all three files. */
static void
check_tls(struct loader *ld)
{
	struct gwconf *c = ld->conf;
	char missing[64];
	size_t i;

	missing[0] = '\0';
	if (c->certificate == NULL)
		strcat(missing, ", certificate");
	if (c->key == NULL)
		strcat(missing, ", key");
	if (c->ca == NULL)
		strcat(missing, ", ca");
	if (missing[0] != '\0' && c->listen_host != NULL)
		err_at(ld, ld->listen_at,
		    "listen needs certificate, key and ca in [gateway] "
		    "(missing: %s)",
		    missing + 2);
	for (i = 0; missing[0] != '\0' && i < c->nremotes; i++)
		err_at(ld,
		    (struct where){c->remotes[i].file, c->remotes[i].line},
		    "[remote %s] needs certificate, key and ca in [gateway] "
		    "(missing: %s)",
		    c->remotes[i].name, missing + 2);
	if (c->key != NULL)
		tls_file(ld, ld->key_at, "key file", c->key, true, &c->key_pem);
	if (c->certificate != NULL)
		tls_file(ld, ld->certificate_at, "certificate", c->certificate,
		    false, &c->cert_pem);
	if (c->ca != NULL)
		tls_file(ld, ld->ca_at, "ca", c->ca, false, &c->ca_pem);
}

static void
loader_init(struct loader *ld, struct gwconf *c, enum gwconf_mode mode,
    struct gwconf_errors *errs)
{
	memset(ld, 0, sizeof(*ld));
	ld->conf = c;
	ld->mode = mode;
	ld->errs = errs;
}

/* Validate the whole, free the loader; the configuration or NULL. */
static struct gwconf *
loader_finish(struct loader *ld)
{
	size_t i;

	if (ld->mode == GWCONF_GATEWAY)
		check_tls(ld);
	for (i = 0; i < ld->nsections; i++)
		free(ld->sections[i].title);
	free(ld->sections);
	if (ld->nerrs > 0) {
		gwconf_free(ld->conf);
		return NULL;
	}
	return ld->conf;
}

/*
 * Trust, as the design says (docs/config.md, "Trust"): nothing writable by
 * group or other, and owned by root when we are root.  Reading needs no
 * mode: the files are meant to be world-readable.
 */
static bool
trusted(struct loader *ld, const struct stat *st, const char *path, bool dir)
{
	bool ok = true;

	if (st->st_mode & 022) {
		err_path(ld,
		    "%s: mode %04o lets group/other write %s; run: chmod "
		    "go-w %s",
		    path, (unsigned)(st->st_mode & 07777), dir ? "in it" : "it",
		    path);
		ok = false;
	}
	if (geteuid() == 0 && st->st_uid != 0) {
		err_path(ld,
		    "%s: owned by uid %lu, not by root; run: chown "
		    "root %s",
		    path, (unsigned long)st->st_uid, path);
		ok = false;
	}
	return ok;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.ini names of the directory (dot files aside), sorted by strcmp. */
static char **
list_ini(struct loader *ld, int dfd, const char *dir, size_t *n)
{
	DIR *d;
	struct dirent *e;
	char **v = NULL;
	size_t len;
	int fd;

	*n = 0;
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		err_path(ld, "%s: cannot list: %s", dir, strerror(errno));
		return NULL;
	}
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (e->d_name[0] == '.' || len < 5 ||
		    strcmp(e->d_name + len - 4, ".ini") != 0)
			continue;
		*(char **)grow(&v, n, sizeof(char *)) = xstrdup(e->d_name);
	}
	closedir(d);
	if (*n > 0)
		qsort(v, *n, sizeof(char *), by_name);
	return v;
}

/* Check and read one directory entry. */
static void
load_file(struct loader *ld, int dfd, const char *dir, const char *name)
{
	char path[PATH_MAX], *text;
	struct gwconf_blob *b;
	struct stat st;
	size_t dl, len;
	int fd;

	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	snprintf(path, sizeof(path), "%.*s/%s", (int)dl, dir, name);

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		err_path(ld, "%s: %s", path, strerror(errno));
		return;
	}
	if (S_ISLNK(st.st_mode)) {
		err_path(ld, "%s: is a symbolic link; refusing to follow it",
		    path);
		return;
	}
	if (!S_ISREG(st.st_mode))
		return; /* a directory named x.ini: not a configuration */
	fd = openat(dfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP)
			err_path(ld,
			    "%s: is a symbolic link; refusing to "
			    "follow it",
			    path);
		else
			err_path(ld, "%s: cannot open: %s", path,
			    strerror(errno));
		return;
	}
	/* The descriptor is what will be read: judge that one. */
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		err_path(ld, "%s: is not a regular file", path);
		close(fd);
		return;
	}
	if (!trusted(ld, &st, path, false)) {
		close(fd);
		return;
	}
	text = read_all(fd, GWCONF_FILE_MAX, &len);
	close(fd);
	if (text == NULL) {
		if (errno == EFBIG)
			err_path(ld, "%s: larger than %d KiB", path,
			    GWCONF_FILE_MAX / 1024);
		else
			err_path(ld, "%s: cannot read: %s", path,
			    strerror(errno));
		return;
	}
	parse_stream(ld, add_file(ld->conf, path), text, len);
	if (ld->mode != GWCONF_GATEWAY) {
		free(text);
		return;
	}
	/* Kept: what the privileged gateway hands on is what it judged. */
	b = grow(&ld->conf->texts, &ld->conf->ntexts, sizeof(*b));
	b->name = xstrdup(path);
	b->data = text;
	b->len = len;
}

const char *
gwconf_default_dir(void)
{
	const char *e = secure_getenv(GWCONF_DIR_ENV);

	return e != NULL && *e != '\0' ? e : GWCONF_DIR_DEFAULT;
}

/*
 * The directory, opened through trusted directories only (safe_walk):
 * its descriptor, or -1 with the error given (and *missing set when it
 * or a directory above it does not exist).
 */
static int
open_conf_dir(struct loader *ld, const char *dir, bool *missing)
{
	char last[NAME_MAX + 1], err[3 * PATH_MAX];
	struct stat st;
	bool gone = false;
	int pfd, dfd, e;

	pfd = safe_walk(dir, geteuid(), last, sizeof(last), &gone, err,
	    sizeof(err));
	if (pfd == -1) {
		if (gone) {
			*missing = true;
			if (ld->mode != GWCONF_CLIENT)
				err_path(ld, "%s: no such directory", dir);
		} else
			err_path(ld, "%s", err);
		return -1;
	}
	dfd =
	    openat(pfd, last, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	e = errno;
	if (dfd == -1) {
		if (e == ENOENT) {
			*missing = true;
			if (ld->mode != GWCONF_CLIENT)
				err_path(ld, "%s: no such directory", dir);
		} else if ((e == ELOOP || e == ENOTDIR) &&
		           fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		           S_ISLNK(st.st_mode))
			err_path(ld,
			    "%s: is a symbolic link; refusing to follow it",
			    dir);
		else if (e == ENOTDIR)
			err_path(ld, "%s: is not a directory", dir);
		else
			err_path(ld, "%s: cannot open directory: %s", dir,
			    strerror(e));
	}
	close(pfd);
	return dfd;
}

struct gwconf *
gwconf_load(const char *dir, enum gwconf_mode mode, bool *missing,
    struct gwconf_errors *errs)
{
	struct loader ld;
	struct stat st;
	char **names;
	size_t n, i;
	bool gone = false;
	int dfd;

	if (dir == NULL)
		dir = gwconf_default_dir();
	if (missing != NULL)
		*missing = false;
	loader_init(&ld, conf_new(dir), mode, errs);

	if ((dfd = open_conf_dir(&ld, dir, &gone)) == -1) {
		if (missing != NULL)
			*missing = gone;
		return loader_finish(&ld); /* the defaults, if missing */
	}
	if (fstat(dfd, &st) == -1) {
		err_path(&ld, "%s: cannot stat: %s", dir, strerror(errno));
		close(dfd);
		return loader_finish(&ld);
	}
	/* An untrusted directory's files are not even listed. */
	if (!trusted(&ld, &st, dir, true)) {
		close(dfd);
		return loader_finish(&ld);
	}
	names = list_ini(&ld, dfd, dir, &n);
	for (i = 0; i < n; i++) {
		load_file(&ld, dfd, dir, names[i]);
		free(names[i]);
	}
	free(names);
	close(dfd);
	return loader_finish(&ld);
}

struct gwconf *
gwconf_load_mem(const char *dir, const struct gwconf_blob *ini, size_t nini,
    const struct gwconf_blob *pem, size_t npem, enum gwconf_mode mode,
    struct gwconf_errors *errs)
{
	struct loader ld;
	size_t i;

	loader_init(&ld, conf_new(dir), mode, errs);
	ld.from_memory = true;
	ld.pem = pem;
	ld.npem = npem;
	for (i = 0; i < nini; i++)
		parse_stream(&ld, add_file(ld.conf, ini[i].name), ini[i].data,
		    ini[i].len);
	return loader_finish(&ld);
}

struct gwconf *
gwconf_parse_string(const char *name, const char *text, enum gwconf_mode mode,
    struct gwconf_errors *errs)
{
	struct loader ld;

	loader_init(&ld, conf_new(NULL), mode, errs);
	parse_stream(&ld, add_file(ld.conf, name), text, strlen(text));
	return loader_finish(&ld);
}

static void
free_strings(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
gwconf_free(struct gwconf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->dir);
	free_strings(c->files, c->nfiles);
	free(c->socket_path);
	free(c->run_as);
	free(c->listen_host);
	free(c->certificate);
	free(c->key);
	free(c->ca);
	for (i = 0; i < c->nrules; i++) {
		struct gwconf_rule *r = &c->rules[i];

		free(r->name);
		free(r->file);
		free(r->uids);
		free(r->gids);
		free_strings(r->names, r->nnames);
		free(r->ports);
		free(r->message);
	}
	free(c->rules);
	free(c->quotas);
	for (i = 0; i < c->nremotes; i++) {
		struct gwconf_remote *r = &c->remotes[i];

		free(r->name);
		free(r->file);
		free(r->host);
		free(r->peer_name);
		free_strings(r->exports, r->nexports);
		free_strings(r->imports, r->nimports);
	}
	free(c->remotes);
	for (i = 0; i < c->ntexts; i++)
		blob_clear(&c->texts[i]);
	free(c->texts);
	gwconf_wipe_tls(c);
	free(c);
}

void
gwconf_wipe_tls(struct gwconf *c)
{
	if (c == NULL)
		return;
	blob_clear(&c->cert_pem);
	blob_clear(&c->key_pem);
	blob_clear(&c->ca_pem);
}

void
gwconf_errors_free(struct gwconf_errors *e)
{
	if (e == NULL)
		return;
	free_strings(e->v, e->n);
	e->v = NULL;
	e->n = 0;
}
