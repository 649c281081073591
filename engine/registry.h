/*
 * The registry table: who is registered under which name, and who watches.
 *
 * This is the model behind every front end (nns Bind/Search, the commreg
 * extension, later the gateway links).  It knows nothing of sockets: an
 * entry and a watch belong to an opaque owner (a connection), and changes
 * are reported through one callback, which the server turns into messages.
 *
 * Names live in one hash table keyed by the full name ("foo", "foo #2"),
 * so exact lookup, Bind's duplicate check and serial allocation are
 * constant time whatever the size of the table (docs/protocol.md §4).
 * A second one keyed by the application's name, the part before the
 * first "@", answers the gateway's bare "calc" among "calc@USER" and
 * "calc@USER@ORIGIN" names as fast.
 * Watches with a literal pattern are kept in a hash table by that name and
 * only glob watches are scanned on a change, so a thousand clients each
 * watching their own peer's name cost nothing on unrelated changes.
 */
#ifndef LOCAL_REGISTRY_H
#define LOCAL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include "tbuf.h"

/* glibc's sys/queue.h lacks the _SAFE iterators the BSDs have. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                             \
	for ((var) = TAILQ_FIRST((head));                                      \
	     (var) && ((tvar) = TAILQ_NEXT((var), field), 1); (var) = (tvar))
#endif

#define REG_NAME_MAX 255

/*
 * Who an entry is offered to: the user's applications (a user registry),
 * only the process group of a private registry (docs/private.md), every
 * user of the host, or beyond it (through the host gateway,
 * docs/gateway.md).
 */
enum reg_scope {
	REG_SCOPE_USER = 0,
	REG_SCOPE_PRIVATE = 1,
	REG_SCOPE_HOST = 2,
	REG_SCOPE_GLOBAL = 3,
};

struct reg_entry {
	/* Strings point into the same allocation as the struct
	 * (registry.c, entry_new): NUL-terminated, lengths authoritative. */
	const char *name; /* full name: base, or "base #serial" */
	const char *base;
	const char *host; /* "" when none */
	const char *data; /* nns data; for Register: "PORT HOST" or -data */
	const char *path; /* federation: the gateways it came through, the
	                     origin first ("" for an entry of this host) */
	uint32_t namelen;
	uint32_t baselen;
	uint32_t datalen;
	int serial;
	int port; /* -1: none (a Bind whose data is not a comm id) */
	uid_t uid;
	pid_t pid;        /* 0: unknown */
	uint8_t scope;    /* enum reg_scope */
	bool nns;         /* made by Bind: DATA is the client's, port guessed */
	bool removed;     /* out of the table, kept for its references */
	bool pid_claimed; /* pid is what a client said, not the kernel */
	uint32_t refs;    /* registry_entry_ref: a listing being written */
	time_t since;

	void *owner;
	TAILQ_ENTRY(reg_entry) owner_link;
	struct reg_entry *hnext; /* hash chain */
	struct reg_entry *anext; /* chain of the application index */
};
TAILQ_HEAD(reg_entry_list, reg_entry);

enum reg_watch_kind {
	REG_WATCH_NNS,     /* Search/Continuous: dict name -> data */
	REG_WATCH_COMMREG, /* Commreg/Watch: full entries */
};

struct reg_watch {
	enum reg_watch_kind kind;
	char *tag;
	size_t taglen;
	char *pattern;
	size_t patlen;
	bool literal;
	/* Not told of changes yet: its first snapshot waits for something
	 * (the host gateway's entries, local/gwlink.h), and will include
	 * what happens meanwhile. */
	bool deferred;
	void *owner;
	TAILQ_ENTRY(reg_watch) owner_link;
	TAILQ_ENTRY(reg_watch) link; /* glob list or literal bucket */
	struct reg_watch_slot *slot; /* literal: its bucket */
};
TAILQ_HEAD(reg_watch_list, reg_watch);

/* Told of every add and remove, once per matching watch. */
typedef void (*reg_notify_fn)(struct reg_watch *, const struct reg_entry *,
    bool added, void *arg);

struct registry;

struct reg_add {
	const char *base;
	size_t baselen;
	/*
	 * copy: an entry of another registry (a semi-private registry's
	 * mirror): name, want_serial, port, host and data are taken as they
	 * are, and a name already present is refused.
	 */
	bool copy;
	const char *name;
	size_t namelen;
	bool nns;        /* Bind: exact name, refuse if taken */
	int want_serial; /* Register: 0 any, else preferred serial */
	int port;
	const char *host;
	const char *data; /* Bind: required; Register: NULL means "PORT HOST" */
	size_t datalen;
	enum reg_scope scope;
	uid_t uid;
	pid_t pid;
	bool pid_claimed; /* see struct reg_entry */
	time_t since;     /* 0: now (a copy keeps its origin's time) */
	const char *path; /* NULL: none (see struct reg_entry) */
};

/* NULL when memory ran out (the library's policy, tbuf.h). */
struct registry *registry_new(reg_notify_fn, void *arg);
void registry_free(struct registry *);

/*
 * Add an entry owned by owner, appended to owner_list.  Returns the entry,
 * or NULL with a message for the peer in err ("out of memory" when that
 * was it, with the library's policy: tbuf.h; err may then have failed).
 */
struct reg_entry *registry_add(struct registry *, const struct reg_add *,
    void *owner, struct reg_entry_list *owner_list, struct tbuf *err);
/*
 * Does e hold what registry_add would make of the copy a (a->copy): the
 * same port, host, data, pid, serial and path?  A copy offered again
 * unchanged (a resync) is then left alone, its watchers told nothing.
 * Scope, uid and since are the caller's to compare, if they matter to it.
 */
bool registry_entry_same(const struct reg_entry *e, const struct reg_add *a);
/* Remove one entry (watchers told), unlinking it from owner_list. */
void registry_remove(struct registry *, struct reg_entry *,
    struct reg_entry_list *owner_list);
struct reg_entry *registry_find(struct registry *, const char *name,
    size_t len);

/* Visit the entries matching a Tcl pattern (literal patterns: one probe). */
/*
 * The entries whose name before its first "@" is app ("calc" for the
 * gateway's "calc@ann" and "calc@bob@site.example"), one at a time: after
 * NULL gives the first.  In no order; constant time each, whatever the
 * size of the table.  Only a registry that keeps that index (the
 * gateway's: a user registry has no use for it and saves its memory)
 * answers; registry_index_apps starts it.  -1: out of memory.
 */
int registry_index_apps(struct registry *);
struct reg_entry *registry_find_app(struct registry *,
    const struct reg_entry *after, const char *app, size_t len);
/*
 * Part of a walk over the whole table, for work spread over time (the
 * gateway's port checks): fn for the entries of whole hash chains from
 * *cursor (0: the start) until at least max were given or the table
 * ends; *cursor is where to go on, 0 again after the end.  fn must not
 * remove entries (collect them, act after).  An entry added or removed
 * between two calls may be given once more, or not at all, that round.
 * Max SIZE_MAX gives the whole table in one call, in no order, with no
 * array and no sort (registry_sorted's cost, for a reader that needs no
 * order: the standby's first frames).  Returns how many were given.
 */
size_t registry_scan(struct registry *, size_t *cursor, size_t max,
    void (*fn)(const struct reg_entry *, void *), void *arg);
void registry_match(struct registry *, const char *pat, size_t plen,
    void (*fn)(const struct reg_entry *, void *), void *arg);
/* All entries matching, sorted by name, *n of them; caller frees the
 * array.  NULL only when memory ran out (the library's policy, tbuf.h). */
const struct reg_entry **registry_sorted(struct registry *, const char *pat,
    size_t plen, size_t *n);

/* NULL when memory ran out (the library's policy, tbuf.h). */
struct reg_watch *registry_watch_add(struct registry *, enum reg_watch_kind,
    const char *tag, size_t taglen, const char *pat, size_t plen, void *owner,
    struct reg_watch_list *owner_list);
void registry_watch_remove(struct registry *, struct reg_watch *,
    struct reg_watch_list *owner_list);

/*
 * The serial syntax, "foo #3" (Tk's): the base's length, *serial 3; a
 * name without one (or with one this table could not have made, "foo
 * #0", "foo #1", "foo #007") is its own base, serial 1.
 */
size_t registry_split_serial(const char *name, size_t len, int *serial);
/*
 * Its writer: out becomes the full name of base with that serial, "foo"
 * for serial 1 (or less), "foo #3" for 3; the one place the key of the
 * table is spelled.  Out is reset first.
 */
void registry_make_name(struct tbuf *out, const char *base, size_t baselen,
    int serial);

/* Checks a name a client wants; message for the peer in err. */
int registry_check_name(const char *name, size_t len, bool nns,
    struct tbuf *err);

/*
 * Tell this registry's watches of an entry that lives elsewhere (a
 * semi-private registry's copy of its upstream's entries, upstream.c):
 * the same notifications as an add or remove here, nothing stored.
 */
void registry_announce(struct registry *, const struct reg_entry *, bool added);
/*
 * More parties told of every add and remove of what is stored here,
 * after the watches: the user registry's link to the host gateway,
 * which must withdraw there what goes here, and a mirror, which shows its
 * own entry of a name again when the registry's goes.  At most
 * REG_OBSERVERS_MAX (beyond: -1, or the end of a daemon);
 * registry_unobserve drops those with that arg.
 */
#define REG_OBSERVERS_MAX 4
int registry_observe(struct registry *,
    void (*fn)(const struct reg_entry *, bool added, void *), void *arg);
void registry_unobserve(struct registry *, void *arg);

/*
 * A reference keeps an entry's memory (not its place in the table) until
 * it is dropped, so that a listing written in pieces writes an entry
 * removed meanwhile as it was when asked.
 */
void registry_entry_ref(const struct reg_entry *);
void registry_entry_unref(const struct reg_entry *);

size_t registry_count(const struct registry *);
/* Bytes the entries take, about: what a full listing would take. */
size_t registry_bytes(const struct registry *);
/* Which change is being notified: the same number for every watch told
 * of one add or remove, so a notifier can format it once. */
uint64_t registry_change(const struct registry *);
size_t registry_watch_count(const struct registry *);

/* Format one entry as the dict of docs/protocol.md §4 (appended to out as
 * one list element of the list that starts at list_start). */
void registry_format_entry(struct tbuf *out, size_t list_start,
    const struct reg_entry *);
/* The same dict, appended as text (not wrapped as an element); the
 * dict starts a list so nothing may precede it in d. */
void registry_entry_dict(struct tbuf *d, const struct reg_entry *);
const char *registry_scope_name(enum reg_scope);
/* "user", "private", "host", "global" to the enum; -1 for anything
 * else. */
int registry_scope_parse(const char *, enum reg_scope *);

#endif
