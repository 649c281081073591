/*
 * The registry table (see registry.h for the why of its data structures).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "registry.h"
#include "tcllist.h"
#include "tclmatch.h"
#include "utf8.h"

/* Bound on the serials tried for one base name (Tk gives up never; we do
 * so that a hostile client cannot make one Register cost a million
 * probes). */
#define REG_SERIAL_MAX 100000

struct reg_watch_slot {
	char *key;
	size_t keylen;
	struct reg_watch_list watches;
	struct reg_watch_slot *hnext;
};

struct registry {
	struct reg_entry **buckets;
	struct reg_entry **abuckets; /* by application name (app_len);
	                                NULL until registry_index_apps */
	size_t nbuckets;             /* power of two, of both */
	size_t count;
	size_t bytes; /* registry_bytes */

	struct reg_watch_slot **wbuckets; /* literal-pattern watches */
	size_t nwbuckets;
	size_t nslots;
	struct reg_watch_list globs; /* every other watch */
	size_t nwatches;

	reg_notify_fn notify;
	void *arg;
	struct {
		void (*fn)(const struct reg_entry *, bool, void *);
		void *arg;
	} observers[REG_OBSERVERS_MAX];
	bool announcing;  /* observers watch only what is stored here */
	uint64_t changes; /* counts adds and removes (registry_change) */
};

static uint64_t
hash_bytes(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (len-- > 0) {
		h ^= (unsigned char)*p++;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Allocations end a daemon (tbuf_oom's policy); in the library they
 * return NULL and the caller answers "out of memory". */
static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		tbuf_oom("out of memory");
	return p;
}

static char *
xmemdup(const char *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL) {
		tbuf_oom("out of memory");
		return NULL;
	}
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

struct registry *
registry_new(reg_notify_fn notify, void *arg)
{
	struct registry *r;

	if ((r = xcalloc(1, sizeof *r)) == NULL)
		return NULL;
	r->nbuckets = 256;
	r->buckets = xcalloc(r->nbuckets, sizeof *r->buckets);
	r->nwbuckets = 64;
	r->wbuckets = xcalloc(r->nwbuckets, sizeof *r->wbuckets);
	if (r->buckets == NULL || r->wbuckets == NULL) {
		free(r->buckets);
		free(r->wbuckets);
		free(r);
		return NULL;
	}
	TAILQ_INIT(&r->globs);
	r->notify = notify;
	r->arg = arg;
	return r;
}

static void
entry_free(struct reg_entry *e)
{
	free(e); /* strings live in the same block (entry_new) */
}

static size_t
entry_bytes(const struct reg_entry *e)
{
	return sizeof *e + e->namelen + e->baselen + e->datalen + 64;
}

void
registry_entry_ref(const struct reg_entry *ce)
{
	struct reg_entry *e = (struct reg_entry *)(uintptr_t)ce;

	e->refs++;
}

void
registry_entry_unref(const struct reg_entry *ce)
{
	struct reg_entry *e = (struct reg_entry *)(uintptr_t)ce;

	if (--e->refs == 0 && e->removed)
		entry_free(e);
}

void
registry_free(struct registry *r)
{
	struct reg_entry *e, *next;
	size_t i;

	/* Owners must have removed their watches and entries; anything left
	 * is freed without notifications. */
	for (i = 0; i < r->nbuckets; i++) {
		for (e = r->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			entry_free(e);
		}
	}
	free(r->buckets);
	free(r->abuckets);
	free(r->wbuckets);
	free(r);
}

/* The length of the application's name in a full name: up to the first
 * "@". */
static size_t
app_len(const char *name, size_t len)
{
	const char *at = memchr(name, '@', len);

	return at != NULL ? (size_t)(at - name) : len;
}

static size_t
app_hash(const struct reg_entry *e, size_t nbuckets)
{
	return hash_bytes(e->name, app_len(e->name, e->namelen)) &
	       (nbuckets - 1);
}

static void
registry_grow(struct registry *r)
{
	struct reg_entry **nb, **na, *e, *next;
	size_t n = r->nbuckets * 2, i, h;

	/* Without memory for more buckets the chains grow longer: slower,
	 * still right. */
	if ((nb = xcalloc(n, sizeof *nb)) == NULL)
		return;
	na = NULL;
	if (r->abuckets != NULL && (na = xcalloc(n, sizeof *na)) == NULL) {
		free(nb);
		return;
	}
	for (i = 0; i < r->nbuckets; i++) {
		for (e = r->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			h = hash_bytes(e->name, e->namelen) & (n - 1);
			e->hnext = nb[h];
			nb[h] = e;
			if (na != NULL) {
				h = app_hash(e, n);
				e->anext = na[h];
				na[h] = e;
			}
		}
	}
	free(r->buckets);
	free(r->abuckets);
	r->buckets = nb;
	r->abuckets = na;
	r->nbuckets = n;
}

int
registry_index_apps(struct registry *r)
{
	struct reg_entry *e;
	size_t i, h;

	if (r->abuckets != NULL)
		return 0;
	if ((r->abuckets = xcalloc(r->nbuckets, sizeof *r->abuckets)) == NULL)
		return -1;
	for (i = 0; i < r->nbuckets; i++)
		for (e = r->buckets[i]; e != NULL; e = e->hnext) {
			h = app_hash(e, r->nbuckets);
			e->anext = r->abuckets[h];
			r->abuckets[h] = e;
		}
	return 0;
}

struct reg_entry *
registry_find_app(struct registry *r, const struct reg_entry *after,
    const char *app, size_t len)
{
	struct reg_entry *e;

	if (r->abuckets == NULL)
		return NULL;
	e = after != NULL
	        ? after->anext
	        : r->abuckets[hash_bytes(app, len) & (r->nbuckets - 1)];
	for (; e != NULL; e = e->anext)
		if (app_len(e->name, e->namelen) == len &&
		    memcmp(e->name, app, len) == 0)
			return e;
	return NULL;
}

struct reg_entry *
registry_find(struct registry *r, const char *name, size_t len)
{
	struct reg_entry *e;

	e = r->buckets[hash_bytes(name, len) & (r->nbuckets - 1)];
	for (; e != NULL; e = e->hnext) {
		if (e->namelen == len && memcmp(e->name, name, len) == 0)
			return e;
	}
	return NULL;
}

static struct reg_watch_slot *
slot_find(struct registry *r, const char *key, size_t len, bool create)
{
	struct reg_watch_slot *s, **bucket;

	bucket = &r->wbuckets[hash_bytes(key, len) & (r->nwbuckets - 1)];
	for (s = *bucket; s != NULL; s = s->hnext) {
		if (s->keylen == len && memcmp(s->key, key, len) == 0)
			return s;
	}
	if (!create)
		return NULL;
	if ((s = xcalloc(1, sizeof *s)) == NULL)
		return NULL;
	if ((s->key = xmemdup(key, len)) == NULL) {
		free(s);
		return NULL;
	}
	s->keylen = len;
	TAILQ_INIT(&s->watches);
	s->hnext = *bucket;
	*bucket = s;
	r->nslots++;
	return s;
}

static void
slot_drop(struct registry *r, struct reg_watch_slot *s)
{
	struct reg_watch_slot **pp;

	pp = &r->wbuckets[hash_bytes(s->key, s->keylen) & (r->nwbuckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	}
	free(s->key);
	free(s);
	r->nslots--;
}

static void
notify_observers(struct registry *r, const struct reg_entry *e, bool added)
{
	size_t i;

	if (r->announcing)
		return;
	for (i = 0; i < REG_OBSERVERS_MAX; i++)
		if (r->observers[i].fn != NULL)
			r->observers[i].fn(e, added, r->observers[i].arg);
}

/* Watches first, then observers: what an observer announces in turn (a
 * mirror's entry shown again) must reach the watchers after the change
 * that caused it. */
static void
notify_all(struct registry *r, const struct reg_entry *e, bool added)
{
	struct reg_watch_slot *s;
	struct reg_watch *w, *next;

	r->changes++;
	if (r->notify != NULL && r->nwatches > 0) {
		s = slot_find(r, e->name, e->namelen, false);
		if (s != NULL) {
			TAILQ_FOREACH_SAFE(w, &s->watches, link, next)
				if (!w->deferred)
					r->notify(w, e, added, r->arg);
		}
		TAILQ_FOREACH_SAFE(w, &r->globs, link, next) {
			if (!w->deferred && tcl_string_match(w->pattern,
			                        w->patlen, e->name, e->namelen))
				r->notify(w, e, added, r->arg);
		}
	}
	notify_observers(r, e, added);
}

int
registry_check_name(const char *name, size_t len, bool nns, struct tbuf *err)
{
	size_t i;
	int serial;

	tbuf_reset(err);
	if (len == 0) {
		tbuf_adds(err, "a name must not be empty");
		return -1;
	}
	if (len > REG_NAME_MAX) {
		tbuf_printf(err, "name is %zu bytes long, the limit is %d", len,
		    REG_NAME_MAX);
		return -1;
	}
	/*
	 * One rule for every name, a Bind's, a Register's and a copy's: UTF-8
	 * with nothing a terminal would act on (C0 and C1 controls, DEL), so
	 * that no name forges a line or an escape where it is shown.
	 */
	if (!utf8_valid(name, len)) {
		tbuf_adds(err, "name ");
		tbuf_add_quoted(err, name, len);
		tbuf_adds(err, " is not valid UTF-8");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = name[i];

		if (c < 0x20 || c == 0x7f ||
		    (c == 0xc2 && i + 1 < len &&
		        (unsigned char)name[i + 1] < 0xa0)) {
			tbuf_adds(err, "name ");
			tbuf_add_quoted(err, name, len);
			tbuf_adds(err, " contains a control character");
			return -1;
		}
	}
	if (nns)
		return 0;
	if (memchr(name, '@', len) != NULL) {
		tbuf_adds(err, "name \"");
		tbuf_add(err, name, len);
		tbuf_adds(err, "\" contains \"@\", which addresses another "
		               "user's entry (NAME@USER)");
		return -1;
	}
	/* "foo #3" is how serials are written: a base must not look like
	 * one, or two applications could end up with the same name. */
	if (registry_split_serial(name, len, &serial) != len) {
		tbuf_adds(err, "name \"");
		tbuf_add(err, name, len);
		tbuf_adds(err, "\" ends in a serial number; register the "
		               "base name and the registry assigns the serial");
		return -1;
	}
	return 0;
}

/* The reader of the serial syntax; registry_make_name is its writer. */
size_t
registry_split_serial(const char *name, size_t len, int *serial)
{
	size_t digits = len, i;
	long v = 0;

	*serial = 1;
	while (digits > 0 && name[digits - 1] >= '0' && name[digits - 1] <= '9')
		digits--;
	/* " #N" after a base of one byte or more, N a serial this table could
	 * have made: 2 ..
	 * REG_SERIAL_MAX, no leading zero. */
	if (digits == len || digits < 3 || name[digits - 1] != '#' ||
	    name[digits - 2] != ' ' || name[digits] == '0' || len - digits > 6)
		return len;
	for (i = digits; i < len; i++)
		v = v * 10 + (name[i] - '0');
	if (v < 2 || v > REG_SERIAL_MAX)
		return len;
	*serial = (int)v;
	return digits - 2;
}

void
registry_make_name(struct tbuf *out, const char *base, size_t baselen,
    int serial)
{
	tbuf_reset(out);
	tbuf_add(out, base, baselen);
	if (serial > 1)
		tbuf_printf(out, " #%d", serial);
}

/*
 * A Bind's data that is a comm id "PORT ?HOST?" gives the entry a port
 * and host for List and watchers.  Sets *port (-1: not a comm id) and the
 * host span inside data.
 */
static void
port_from_data(const char *data, size_t datalen, int *port, struct tbuf *host)
{
	static __thread struct tlist l;
	const char *err;
	char *end;
	long v;

	*port = -1;
	if (tlist_parse(&l, data, datalen, &err) == -1) {
		/* Not a comm id, unless memory ran out reading it: then
		 * the entry would lose its port, so the add fails. */
		if (strcmp(err, TL_NOMEM) == 0)
			host->failed = true;
		return;
	}
	if (l.n == 1 || l.n == 2) {
		v = strtol(l.v[0].p, &end, 10);
		if (end != l.v[0].p && *end == '\0' && v > 0 && v < 65536) {
			*port = (int)v;
			if (l.n == 2)
				tbuf_add(host, l.v[1].p, l.v[1].len);
		}
	}
}

/*
 * One allocation per entry: the struct and its four strings (name, base,
 * host, data) behind it.  At 10,000s of names per registry the malloc
 * overhead of separate strings would be most of the cost of a name.
 */
/* Copy a string and its NUL to p (src may be NULL when len is 0: an
 * unused scratch buffer); returns where the next one goes. */
static char *
put_string(char *p, const char *src, size_t len)
{
	if (len > 0)
		memcpy(p, src, len);
	p[len] = '\0';
	return p + len + 1;
}

static struct reg_entry *
entry_new(const struct tbuf *name, const char *base, size_t baselen,
    const struct tbuf *host, const struct tbuf *data, const char *path)
{
	struct reg_entry *e;
	size_t pathlen = path != NULL ? strlen(path) : 0;
	char *p;

	e = malloc(sizeof *e + name->len + baselen + host->len + data->len +
	           pathlen + 5);
	if (e == NULL) {
		tbuf_oom("out of memory");
		return NULL;
	}
	memset(e, 0, sizeof *e);
	p = (char *)(e + 1);
	e->name = p;
	p = put_string(p, name->p, name->len);
	e->namelen = name->len;
	e->base = p;
	p = put_string(p, base, baselen);
	e->baselen = baselen;
	e->host = p;
	p = put_string(p, host->p, host->len);
	e->data = p;
	e->datalen = data->len;
	p = put_string(p, data->p, data->len);
	e->path = p;
	put_string(p, path, pathlen);
	return e;
}

struct reg_entry *
registry_add(struct registry *r, const struct reg_add *a, void *owner,
    struct reg_entry_list *owner_list, struct tbuf *err)
{
	static __thread struct tbuf name, host, data;
	struct reg_entry *e;
	int serial = 1, tries, port;
	size_t h;

	if (a->copy) {
		if (registry_check_name(a->name, a->namelen, true, err) == -1)
			return NULL;
		if (registry_find(r, a->name, a->namelen) != NULL) {
			tbuf_adds(err, "\"");
			tbuf_add(err, a->name, a->namelen);
			tbuf_adds(err, "\" is there already");
			return NULL;
		}
		tbuf_reset(&name);
		tbuf_add(&name, a->name, a->namelen);
		serial = a->want_serial;
	} else if (registry_check_name(a->base, a->baselen, a->nns, err) == -1)
		return NULL;
	else if (a->nns) {
		if (registry_find(r, a->base, a->baselen) != NULL) {
			/* tcllib's exact text, which clients match on. */
			tbuf_adds(err, "Name \"");
			tbuf_add(err, a->base, a->baselen);
			tbuf_adds(err, "\" is already bound");
			return NULL;
		}
		registry_make_name(&name, a->base, a->baselen, 1);
	} else {
		serial = a->want_serial > 0 ? a->want_serial : 1;
		registry_make_name(&name, a->base, a->baselen, serial);
		if (registry_find(r, name.p, name.len) != NULL) {
			/* Tk's rule: the lowest free serial. */
			for (serial = 1, tries = 0; tries < REG_SERIAL_MAX;
			     serial++, tries++) {
				registry_make_name(&name, a->base, a->baselen,
				    serial);
				if (registry_find(r, name.p, name.len) == NULL)
					break;
			}
			if (tries == REG_SERIAL_MAX) {
				tbuf_printf(err,
				    "too many instances of \"%.*s\"",
				    (int)a->baselen, a->base);
				return NULL;
			}
		}
	}

	tbuf_reset(&host);
	tbuf_reset(&data);
	if (a->copy) {
		port = a->port > 0 ? a->port : -1;
		tbuf_adds(&host, a->host != NULL ? a->host : "");
		tbuf_add(&data, a->data, a->datalen);
	} else if (a->nns) {
		/* A Bind's data is the client's own. */
		tbuf_add(&data, a->data, a->datalen);
		port_from_data(a->data, a->datalen, &port, &host);
	} else {
		port = a->port;
		tbuf_adds(&host, a->host);
		if (a->data != NULL)
			tbuf_add(&data, a->data, a->datalen);
		else {
			tl_append_int(&data, 0, a->port);
			tl_append_str(&data, 0, a->host);
		}
	}
	/* The scratch may have failed for want of memory (the library's
	 * policy, tbuf.h). */
	if (name.failed || host.failed || data.failed ||
	    (e = entry_new(&name, a->base, a->baselen, &host, &data,
	         a->path)) == NULL) {
		tbuf_reset(err);
		tbuf_adds(err, "out of memory");
		return NULL;
	}
	e->port = port;
	e->serial = serial;
	e->scope = a->scope;
	e->nns = a->nns;
	e->uid = a->uid;
	e->pid = a->pid;
	e->pid_claimed = a->pid_claimed && a->pid > 0;
	e->since = a->since != 0 ? a->since : time(NULL);
	e->owner = owner;

	if (r->count >= r->nbuckets)
		registry_grow(r);
	h = hash_bytes(e->name, e->namelen) & (r->nbuckets - 1);
	e->hnext = r->buckets[h];
	r->buckets[h] = e;
	if (r->abuckets != NULL) {
		h = app_hash(e, r->nbuckets);
		e->anext = r->abuckets[h];
		r->abuckets[h] = e;
	}
	r->count++;
	r->bytes += entry_bytes(e);
	TAILQ_INSERT_TAIL(owner_list, e, owner_link);
	notify_all(r, e, true);
	return e;
}

/* As registry_add stores a copy's fields, above. */
bool
registry_entry_same(const struct reg_entry *e, const struct reg_add *a)
{
	return e->port == (a->port > 0 ? a->port : -1) &&
	       strcmp(e->host, a->host != NULL ? a->host : "") == 0 &&
	       e->datalen == a->datalen &&
	       memcmp(e->data, a->data, a->datalen) == 0 && e->pid == a->pid &&
	       e->serial == a->want_serial &&
	       strcmp(e->path, a->path != NULL ? a->path : "") == 0;
}

void
registry_remove(struct registry *r, struct reg_entry *e,
    struct reg_entry_list *owner_list)
{
	struct reg_entry **pp;

	pp = &r->buckets[hash_bytes(e->name, e->namelen) & (r->nbuckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	pp =
	    r->abuckets != NULL ? &r->abuckets[app_hash(e, r->nbuckets)] : NULL;
	for (; pp != NULL && *pp != NULL; pp = &(*pp)->anext) {
		if (*pp == e) {
			*pp = e->anext;
			break;
		}
	}
	r->count--;
	r->bytes -= entry_bytes(e);
	TAILQ_REMOVE(owner_list, e, owner_link);
	notify_all(r, e, false);
	if (e->refs > 0)
		e->removed = true; /* the last reference frees it */
	else
		entry_free(e);
}

void
registry_match(struct registry *r, const char *pat, size_t plen,
    void (*fn)(const struct reg_entry *, void *), void *arg)
{
	struct reg_entry *e;
	size_t i;

	if (tcl_pattern_is_literal(pat, plen)) {
		if ((e = registry_find(r, pat, plen)) != NULL)
			fn(e, arg);
		return;
	}
	for (i = 0; i < r->nbuckets; i++) {
		for (e = r->buckets[i]; e != NULL; e = e->hnext) {
			if (tcl_string_match(pat, plen, e->name, e->namelen))
				fn(e, arg);
		}
	}
}

size_t
registry_scan(struct registry *r, size_t *cursor, size_t max,
    void (*fn)(const struct reg_entry *, void *), void *arg)
{
	struct reg_entry *e;
	size_t i, n = 0;

	for (i = *cursor; i < r->nbuckets && n < max; i++)
		for (e = r->buckets[i]; e != NULL; e = e->hnext) {
			fn(e, arg);
			n++;
		}
	*cursor = i < r->nbuckets ? i : 0;
	return n;
}

struct sorted_ctx {
	const struct reg_entry **v;
	size_t n, cap;
	bool nomem;
};

static void
sorted_collect(const struct reg_entry *e, void *arg)
{
	struct sorted_ctx *c = arg;
	const struct reg_entry **nv;
	size_t ncap;

	if (c->nomem)
		return;
	if (c->n == c->cap) {
		ncap = c->cap ? c->cap * 2 : 64;
		if ((nv = reallocarray(c->v, ncap, sizeof *nv)) == NULL) {
			tbuf_oom("out of memory");
			c->nomem = true;
			return;
		}
		c->v = nv;
		c->cap = ncap;
	}
	c->v[c->n++] = e;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct reg_entry *x = *(const struct reg_entry *const *)a;
	const struct reg_entry *y = *(const struct reg_entry *const *)b;
	size_t n = x->namelen < y->namelen ? x->namelen : y->namelen;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	return x->namelen < y->namelen ? -1 : x->namelen > y->namelen;
}

const struct reg_entry **
registry_sorted(struct registry *r, const char *pat, size_t plen, size_t *n)
{
	struct sorted_ctx c = {NULL, 0, 0, false};

	*n = 0;
	/* An empty listing is an array too: NULL says out of memory. */
	if ((c.v = xcalloc(1, sizeof *c.v)) == NULL)
		return NULL;
	c.cap = 1;
	registry_match(r, pat, plen, sorted_collect, &c);
	if (c.nomem) {
		free(c.v);
		return NULL;
	}
	if (c.n > 1)
		qsort(c.v, c.n, sizeof *c.v, entry_cmp);
	*n = c.n;
	return c.v;
}

struct reg_watch *
registry_watch_add(struct registry *r, enum reg_watch_kind kind,
    const char *tag, size_t taglen, const char *pat, size_t plen, void *owner,
    struct reg_watch_list *owner_list)
{
	struct reg_watch *w;

	if ((w = xcalloc(1, sizeof *w)) == NULL)
		return NULL;
	w->kind = kind;
	w->tag = xmemdup(tag, taglen);
	w->taglen = taglen;
	w->pattern = xmemdup(pat, plen);
	w->patlen = plen;
	w->owner = owner;
	w->literal = tcl_pattern_is_literal(pat, plen);
	if (w->tag == NULL || w->pattern == NULL ||
	    (w->literal && (w->slot = slot_find(r, pat, plen, true)) == NULL)) {
		free(w->tag);
		free(w->pattern);
		free(w);
		return NULL;
	}
	if (w->literal) {
		TAILQ_INSERT_TAIL(&w->slot->watches, w, link);
	} else
		TAILQ_INSERT_TAIL(&r->globs, w, link);
	TAILQ_INSERT_TAIL(owner_list, w, owner_link);
	r->nwatches++;
	return w;
}

void
registry_watch_remove(struct registry *r, struct reg_watch *w,
    struct reg_watch_list *owner_list)
{
	if (w->literal) {
		TAILQ_REMOVE(&w->slot->watches, w, link);
		if (TAILQ_EMPTY(&w->slot->watches))
			slot_drop(r, w->slot);
	} else
		TAILQ_REMOVE(&r->globs, w, link);
	TAILQ_REMOVE(owner_list, w, owner_link);
	r->nwatches--;
	free(w->tag);
	free(w->pattern);
	free(w);
}

uint64_t
registry_change(const struct registry *r)
{
	return r->changes;
}

size_t
registry_count(const struct registry *r)
{
	return r->count;
}

size_t
registry_bytes(const struct registry *r)
{
	return r->bytes;
}

size_t
registry_watch_count(const struct registry *r)
{
	return r->nwatches;
}

void
registry_announce(struct registry *r, const struct reg_entry *e, bool added)
{
	bool was = r->announcing;

	r->announcing = true;
	notify_all(r, e, added);
	r->announcing = was;
}

int
registry_observe(struct registry *r,
    void (*fn)(const struct reg_entry *, bool, void *), void *arg)
{
	size_t i;

	for (i = 0; i < REG_OBSERVERS_MAX; i++) {
		if (r->observers[i].fn == NULL) {
			r->observers[i].fn = fn;
			r->observers[i].arg = arg;
			return 0;
		}
	}
	/* A bug of ours (a fixed number of parties): a daemon stops on it,
	 * the library's caller gets the error. */
	if (tbuf_oom_is_fatal())
		fatalx("registry_observe: more than %d observers",
		    REG_OBSERVERS_MAX);
	return -1;
}

void
registry_unobserve(struct registry *r, void *arg)
{
	size_t i;

	for (i = 0; i < REG_OBSERVERS_MAX; i++)
		if (r->observers[i].arg == arg)
			r->observers[i].fn = NULL;
}

const char *
registry_scope_name(enum reg_scope s)
{
	switch (s) {
	case REG_SCOPE_USER:
		return "user";
	case REG_SCOPE_PRIVATE:
		return "private";
	case REG_SCOPE_HOST:
		return "host";
	case REG_SCOPE_GLOBAL:
		return "global";
	}
	return "user";
}

int
registry_scope_parse(const char *s, enum reg_scope *scope)
{
	if (strcmp(s, "user") == 0)
		*scope = REG_SCOPE_USER;
	else if (strcmp(s, "private") == 0)
		*scope = REG_SCOPE_PRIVATE;
	else if (strcmp(s, "host") == 0)
		*scope = REG_SCOPE_HOST;
	else if (strcmp(s, "global") == 0)
		*scope = REG_SCOPE_GLOBAL;
	else
		return -1;
	return 0;
}

void
registry_entry_dict(struct tbuf *d, const struct reg_entry *e)
{
	tl_append_str(d, 0, "name");
	tl_append(d, 0, e->name, e->namelen);
	tl_append_str(d, 0, "serial");
	tl_append_int(d, 0, e->serial);
	tl_append_str(d, 0, "base");
	tl_append(d, 0, e->base, e->baselen);
	tl_append_str(d, 0, "port");
	if (e->port > 0)
		tl_append_int(d, 0, e->port);
	else
		tl_append_str(d, 0, "");
	tl_append_str(d, 0, "host");
	tl_append_str(d, 0, e->host);
	tl_append_str(d, 0, "data");
	tl_append(d, 0, e->data, e->datalen);
	tl_append_str(d, 0, "scope");
	tl_append_str(d, 0, registry_scope_name(e->scope));
	tl_append_str(d, 0, "uid");
	if (e->uid != (uid_t)-1)
		tl_append_int(d, 0, (long long)e->uid);
	else
		tl_append_str(d, 0, ""); /* a user of another host */
	tl_append_str(d, 0, "pid");
	if (e->pid > 0)
		tl_append_int(d, 0, (long long)e->pid);
	else
		tl_append_str(d, 0, "");
	tl_append_str(d, 0, "since");
	tl_append_int(d, 0, (long long)e->since);
	/* What nobody could check is said to be a claim. */
	if (e->pid_claimed) {
		tl_append_str(d, 0, "claimed");
		tl_append_str(d, 0, "pid");
	}
	/* Entries offered to the host are named NAME@USER by the gateway
	 * (docs/gateway.md): say whose they are; those of other hosts are
	 * NAME@USER@ORIGIN and say where they came through. */
	if (e->path[0] != '\0') {
		const char *sp = strchr(e->path, ' ');

		tl_append_str(d, 0, "origin");
		tl_append(d, 0, e->path,
		    sp != NULL ? (size_t)(sp - e->path) : strlen(e->path));
		tl_append_str(d, 0, "path");
		tl_append_str(d, 0, e->path);
	}
	if (e->scope >= REG_SCOPE_HOST) {
		const char *at = memchr(e->name, '@', e->namelen);

		if (at != NULL) {
			tl_append_str(d, 0, "user");
			tl_append(d, 0, at + 1,
			    e->namelen - (size_t)(at + 1 - e->name));
		}
	}
}

void
registry_format_entry(struct tbuf *out, size_t list_start,
    const struct reg_entry *e)
{
	static __thread struct tbuf d;

	tbuf_reset(&d);
	registry_entry_dict(&d, e);
	tl_append(out, list_start, d.p, d.len);
}
