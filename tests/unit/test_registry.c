/*
 * The registry table (engine/registry.c): names, serials, watches, and
 * what a semi-private registry's mirror needs (copies, announcements).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "registry.h"
#include "utf8.h"
#include "tcllist.h"

struct seen {
	char log[4096];
};

/* The entry of the last notification record() got. */
static const struct reg_entry *last_told;

static void
record(struct reg_watch *w, const struct reg_entry *e, bool added, void *arg)
{
	struct seen *s = arg;
	size_t n = strlen(s->log);

	snprintf(s->log + n, sizeof s->log - n, "%s:%s %s;", w->tag,
	    added ? "add" : "remove", e->name);
	last_told = e;
}

static struct reg_entry *
reg(struct registry *r, const char *base, int want, int port,
    struct reg_entry_list *owner, struct tbuf *err)
{
	struct reg_add a;

	memset(&a, 0, sizeof a);
	a.base = base;
	a.baselen = strlen(base);
	a.want_serial = want;
	a.port = port;
	a.host = "localhost";
	return registry_add(r, &a, owner, owner, err);
}

static struct reg_entry *
nns_bind(struct registry *r, const char *name, const char *data,
    struct reg_entry_list *owner, struct tbuf *err)
{
	struct reg_add a;

	memset(&a, 0, sizeof a);
	a.base = name;
	a.baselen = strlen(name);
	a.nns = true;
	a.data = data;
	a.datalen = strlen(data);
	return registry_add(r, &a, owner, owner, err);
}

/* A full name as the gateway holds them ("calc@ann"), a copy. */
static struct reg_entry *
put(struct registry *r, const char *name, struct reg_entry_list *owner)
{
	struct reg_add a;
	struct tbuf err;
	struct reg_entry *e;

	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = name;
	a.namelen = strlen(name);
	a.base = name;
	a.baselen = a.namelen;
	a.want_serial = 1;
	a.port = 4000;
	a.host = "localhost";
	a.scope = REG_SCOPE_GLOBAL;
	tbuf_init(&err);
	e = registry_add(r, &a, owner, owner, &err);
	tbuf_free(&err);
	return e;
}

/* How many entries registry_find_app gives for app; each is checked to
 * be one of app's. */
static int
count_app(struct registry *r, const char *app)
{
	struct reg_entry *e = NULL;
	size_t len = strlen(app);
	int n = 0;

	while ((e = registry_find_app(r, e, app, len)) != NULL) {
		CU_ASSERT(strncmp(e->name, app, len) == 0 &&
		          (e->name[len] == '@' || e->name[len] == '\0'));
		n++;
	}
	return n;
}

static void
test_application_index(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list o;
	struct reg_entry *gone[100];
	char name[64];
	int i;

	TAILQ_INIT(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	/* Enough to make both tables grow several times; the index is
	 * started half-way, over what is there already. */
	for (i = 0; i < 3000; i++) {
		if (i == 1500) {
			CU_ASSERT_EQUAL(count_app(r, "app7"), 0); /* no index */
			CU_ASSERT_EQUAL(registry_index_apps(r), 0);
		}
		snprintf(name, sizeof name, "app%d@user%d", i % 500, i / 500);
		CU_ASSERT_PTR_NOT_NULL(put(r, name, &o));
	}
	CU_ASSERT_PTR_NOT_NULL(put(r, "calc", &o));
	CU_ASSERT_PTR_NOT_NULL(put(r, "calc@ann", &o));
	CU_ASSERT_PTR_NOT_NULL(put(r, "calc@bob@site.example", &o));
	CU_ASSERT_PTR_NOT_NULL(put(r, "calcx@ann", &o));
	CU_ASSERT_PTR_NOT_NULL(put(r, "cal@c", &o));
	CU_ASSERT_PTR_NOT_NULL(put(r, "calc #2@ann", &o));
	CU_ASSERT_EQUAL(count_app(r, "calc"), 3);
	CU_ASSERT_EQUAL(count_app(r, "calc #2"), 1);
	CU_ASSERT_EQUAL(count_app(r, "cal"), 1);
	CU_ASSERT_EQUAL(count_app(r, "ca"), 0);
	CU_ASSERT_EQUAL(count_app(r, "app7"), 6);
	CU_ASSERT_EQUAL(count_app(r, "app499"), 6);
	CU_ASSERT_EQUAL(count_app(r, "app500"), 0);
	/* Removed entries leave the index. */
	for (i = 0; i < 6; i++) {
		snprintf(name, sizeof name, "app7@user%d", i);
		gone[i] = registry_find(r, name, strlen(name));
		CU_ASSERT_PTR_NOT_NULL_FATAL(gone[i]);
		registry_remove(r, gone[i], &o);
		CU_ASSERT_EQUAL(count_app(r, "app7"), 5 - i);
	}
	CU_ASSERT_EQUAL(count_app(r, "app8"), 6);
	while (!TAILQ_EMPTY(&o))
		registry_remove(r, TAILQ_FIRST(&o), &o);
	CU_ASSERT_EQUAL(count_app(r, "calc"), 0);
	registry_free(r);
}

static void
count_seen(const struct reg_entry *e, void *arg)
{
	/* port is the entry's number in the table below */
	((int *)arg)[e->port]++;
}

/* A walk in slices gives each entry once per round, the cursor back at 0
 * at the end of it. */
static void
test_scan_in_slices(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list o;
	static int seen[5000];
	size_t cursor = 0, got, total = 0;
	char name[32];
	int i, rounds = 0, calls = 0;
	struct reg_entry *e;

	TAILQ_INIT(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "s%d@u", i);
		CU_ASSERT_PTR_NOT_NULL_FATAL(e = put(r, name, &o));
		e->port = i;
	}
	memset(seen, 0, sizeof seen);
	do {
		got = registry_scan(r, &cursor, 250, count_seen, seen);
		CU_ASSERT(got >= (cursor == 0 ? 0 : 250));
		total += got;
		calls++;
	} while (cursor != 0 && calls < 10000);
	rounds++;
	CU_ASSERT_EQUAL(total, 5000);
	CU_ASSERT(calls >= 5000 / 250 / 2 && calls <= 5000 / 250 + 1);
	for (i = 0; i < 5000; i++)
		CU_ASSERT_EQUAL(seen[i], rounds);
	/* No bound: the whole table in one call (the standby's birth). */
	cursor = 0;
	CU_ASSERT_EQUAL(registry_scan(r, &cursor, SIZE_MAX, count_seen, seen),
	    5000);
	CU_ASSERT_EQUAL(cursor, 0);
	rounds++;
	for (i = 0; i < 5000; i++)
		CU_ASSERT_EQUAL(seen[i], rounds);
	while (!TAILQ_EMPTY(&o))
		registry_remove(r, TAILQ_FIRST(&o), &o);
	registry_free(r);
}

static void
test_second_instance_gets_serial_2(void)
{
	struct seen s = {""};
	struct registry *r = registry_new(record, &s);
	struct reg_entry_list a, b, c;
	struct reg_entry *e1, *e2, *e3;
	struct tbuf err;

	TAILQ_INIT(&a);
	TAILQ_INIT(&b);
	TAILQ_INIT(&c);
	tbuf_init(&err);
	e1 = reg(r, "foo", 0, 5555, &a, &err);
	e2 = reg(r, "foo", 0, 5556, &b, &err);
	e3 = reg(r, "foo", 0, 5557, &c, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e3);
	CU_ASSERT_STRING_EQUAL(e1->name, "foo");
	CU_ASSERT_STRING_EQUAL(e2->name, "foo #2");
	CU_ASSERT_STRING_EQUAL(e3->name, "foo #3");
	CU_ASSERT_EQUAL(e3->serial, 3);
	CU_ASSERT_STRING_EQUAL(e2->data, "5556 localhost");
	/* the lowest free serial is reused, as Tk's appname does */
	registry_remove(r, e2, &b);
	e2 = reg(r, "foo", 0, 5558, &b, &err);
	CU_ASSERT_STRING_EQUAL(e2->name, "foo #2");
	/* a requested serial is honoured when free */
	e2 = reg(r, "foo", 7, 5559, &b, &err);
	CU_ASSERT_STRING_EQUAL(e2->name, "foo #7");
	/* and when taken, the lowest free one is given */
	e2 = reg(r, "foo", 3, 5560, &b, &err);
	CU_ASSERT_STRING_EQUAL(e2->name, "foo #4");
	CU_ASSERT_EQUAL(registry_count(r), 5);
	registry_free(r);
	tbuf_free(&err);
}

static void
test_bind_refuses_duplicates_with_tcllib_text(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list a;
	struct reg_entry *e;
	struct tbuf err;

	TAILQ_INIT(&a);
	tbuf_init(&err);
	e = nns_bind(r, "app", "5555 {my host}", &a, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(e->port, 5555);
	CU_ASSERT_STRING_EQUAL(e->host, "my host");
	CU_ASSERT_PTR_NULL(nns_bind(r, "app", "x", &a, &err));
	CU_ASSERT_STRING_EQUAL(err.p, "Name \"app\" is already bound");
	/* a Register of the same base gets a serial instead */
	e = reg(r, "app", 0, 1234, &a, &err);
	CU_ASSERT_STRING_EQUAL(e->name, "app #2");
	/* data that is not a comm id leaves the port empty */
	e = nns_bind(r, "other", "{not a port}", &a, &err);
	CU_ASSERT_EQUAL(e->port, -1);
	registry_free(r);
	tbuf_free(&err);
}

static void
test_register_data_keeps_comm_id(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list a;
	struct reg_entry *e;
	struct reg_add add;
	struct tbuf err;

	TAILQ_INIT(&a);
	tbuf_init(&err);
	memset(&add, 0, sizeof add);
	add.base = "bar";
	add.baselen = 3;
	add.port = 6000;
	add.host = "otherhost";
	add.data = "custom data";
	add.datalen = 11;
	e = registry_add(r, &add, &a, &a, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	/* -data is extra information; the comm id stays what was given */
	CU_ASSERT_EQUAL(e->port, 6000);
	CU_ASSERT_STRING_EQUAL(e->host, "otherhost");
	CU_ASSERT_STRING_EQUAL(e->data, "custom data");
	CU_ASSERT_FALSE(e->nns);
	registry_free(r);
	tbuf_free(&err);
}

static void
test_names_are_checked(void)
{
	struct tbuf err;

	tbuf_init(&err);
	CU_ASSERT_EQUAL(registry_check_name("", 0, false, &err), -1);
	CU_ASSERT_EQUAL(registry_check_name("a\tb", 3, false, &err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.p, "control character"));
	CU_ASSERT_EQUAL(registry_check_name("foo #2", 6, false, &err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.p, "serial"));
	CU_ASSERT_EQUAL(registry_check_name("foo #2", 6, true, &err), 0);
	CU_ASSERT_EQUAL(registry_check_name("a b {c}", 7, false, &err), 0);
	CU_ASSERT_EQUAL(registry_check_name("x#2", 3, false, &err), 0);
	{
		char big[300];

		memset(big, 'n', sizeof big);
		CU_ASSERT_EQUAL(registry_check_name(big, sizeof big, true,
		                    &err),
		    -1);
	}
	tbuf_free(&err);
}

/* A Bind's name, a Register's and a copy's follow one rule: UTF-8 with no
 * control character a terminal would act on (a forged line, an escape). */
static void
test_one_rule_for_every_name(void)
{
	static const struct {
		const char *name;
		size_t len;
		const char *why;
	} bad[] = {
	    {"evil\nfake 1 2", 13, "control character"},
	    {"esc\033[2J", 8, "control character"},
	    {"del\177", 4, "control character"},
	    {"csi\302\233x", 6, "control character"}, /* U+009B */
	    {"bad\377", 4, "not valid UTF-8"},
	    {"over\300\257", 6, "not valid UTF-8"},    /* overlong "/" */
	    {"sur\355\240\200", 6, "not valid UTF-8"}, /* U+D800 */
	    {"cut\342\202", 5, "not valid UTF-8"},
	};
	struct tbuf err;
	size_t i;
	int nns;

	tbuf_init(&err);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		for (nns = 0; nns < 2; nns++) {
			CU_ASSERT_EQUAL(registry_check_name(bad[i].name,
			                    bad[i].len, nns, &err),
			    -1);
			CU_ASSERT_PTR_NOT_NULL(strstr(err.p, bad[i].why));
			/* The message shows the name escaped, never raw. */
			CU_ASSERT_PTR_NULL(strchr(err.p, '\n'));
			CU_ASSERT_PTR_NULL(strchr(err.p, '\033'));
		}
	/* Printable UTF-8 is a name like any other, for both. */
	CU_ASSERT_EQUAL(registry_check_name("caf\303\251 \342\202\254", 9, true,
	                    &err),
	    0);
	CU_ASSERT_EQUAL(registry_check_name("caf\303\251 \342\202\254", 9,
	                    false, &err),
	    0);
	tbuf_free(&err);
}

/* No byte is read of an empty span (its start may be a buffer's end). */
static void
test_utf8_empty_span(void)
{
	unsigned char *end = malloc(1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(end);
	CU_ASSERT_EQUAL(utf8_char_len(end + 1, 0), 0);
	CU_ASSERT_TRUE(utf8_valid((const char *)end + 1, 0));
	free(end);
}

/* The serial syntax has one reader, the counterpart of what the table
 * writes: " #N" with N from 2, no leading zero. */
static void
test_split_serial(void)
{
	int serial;

	CU_ASSERT_EQUAL(registry_split_serial("foo #3", 6, &serial), 3);
	CU_ASSERT_EQUAL(serial, 3);
	CU_ASSERT_EQUAL(registry_split_serial("foo", 3, &serial), 3);
	CU_ASSERT_EQUAL(serial, 1);
	CU_ASSERT_EQUAL(registry_split_serial("a b #100000", 11, &serial), 3);
	CU_ASSERT_EQUAL(serial, 100000);
	/* What the table never writes is part of the base. */
	CU_ASSERT_EQUAL(registry_split_serial("foo #1", 6, &serial), 6);
	CU_ASSERT_EQUAL(serial, 1);
	CU_ASSERT_EQUAL(registry_split_serial("foo #0", 6, &serial), 6);
	CU_ASSERT_EQUAL(registry_split_serial("foo #02", 7, &serial), 7);
	CU_ASSERT_EQUAL(registry_split_serial("foo #100001", 11, &serial), 11);
	CU_ASSERT_EQUAL(registry_split_serial("foo#2", 5, &serial), 5);
	CU_ASSERT_EQUAL(registry_split_serial(" #2", 3, &serial), 3);
	CU_ASSERT_EQUAL(registry_split_serial("x #99999999999999999999", 23,
	                    &serial),
	    23);
	CU_ASSERT_EQUAL(serial, 1);
}

/* Is out exactly the len bytes of want, NUL after them (tbuf.h)? */
static bool
name_is(const struct tbuf *out, const char *want, size_t len)
{
	return !out->failed && out->len == len &&
	       memcmp(out->p, want, len) == 0 && out->p[len] == '\0';
}

/* The serial syntax has one writer, the table's key: "NAME" for serial
 * 1 (or less), "NAME #N" after it; the reader gives back what it wrote. */
static void
test_make_name(void)
{
	static const char *bases[] = {
	    "calc", "my app",           /* spaces are part of a base */
	    "x #2",                     /* a base that looks like a full name */
	    "foo #",                    /* "#" with no digits */
	    "caf\xc3\xa9 \xe2\x98\x95", /* "café ☕" */
	    "\xe6\x97\xa5\xe6\x9c\xac #\xd9\xa3", /* Arabic-Indic digit 3 */
	};
	static const int serials[] = {2, 3, 10, 99999, 100000};
	struct tbuf out;
	char want[64];
	size_t i, j, blen;
	int serial;

	tbuf_init(&out);
	registry_make_name(&out, "calc", 4, 1);
	CU_ASSERT(name_is(&out, "calc", 4));
	/* Out is reset first: the longer name before leaves nothing. */
	registry_make_name(&out, "calculator", 10, 12);
	registry_make_name(&out, "calc", 4, 1);
	CU_ASSERT(name_is(&out, "calc", 4));
	registry_make_name(&out, "calc", 4, 0);
	CU_ASSERT(name_is(&out, "calc", 4));
	registry_make_name(&out, "calc", 4, -5);
	CU_ASSERT(name_is(&out, "calc", 4));
	registry_make_name(&out, "calc", 4, 2);
	CU_ASSERT(name_is(&out, "calc #2", 7));
	/* Only baselen bytes of base: the rest is not read. */
	registry_make_name(&out, "calc@ann", 4, 3);
	CU_ASSERT(name_is(&out, "calc #3", 7));
	/* Tcl strings may hold NUL: the length, not strlen, counts. */
	registry_make_name(&out, "a\0b", 3, 2);
	CU_ASSERT(name_is(&out, "a\0b #2", 6));

	for (i = 0; i < sizeof bases / sizeof *bases; i++) {
		blen = strlen(bases[i]);
		registry_make_name(&out, bases[i], blen, 1);
		CU_ASSERT(name_is(&out, bases[i], blen));
		/* What the reader makes of a serial-1 name: itself, unless
		 * it already ends in a serial ("x #2"). */
		CU_ASSERT_EQUAL(registry_split_serial(out.p, out.len, &serial),
		    i == 2 ? 1 : blen);
		for (j = 0; j < sizeof serials / sizeof *serials; j++) {
			snprintf(want, sizeof want, "%s #%d", bases[i],
			    serials[j]);
			registry_make_name(&out, bases[i], blen, serials[j]);
			CU_ASSERT(name_is(&out, want, strlen(want)));
			CU_ASSERT_EQUAL(registry_split_serial(out.p, out.len,
			                    &serial),
			    blen);
			CU_ASSERT_EQUAL(serial, serials[j]);
		}
	}
	tbuf_free(&out);
}

/* The " #N" is printed into the room the buffer has, and only a name
 * that does not fit costs a second pass: names that end just before, at
 * and just past the buffer's capacity are all whole, never cut. */
static void
test_make_name_at_the_buffer_edge(void)
{
	char base[600], want[640];
	struct tbuf out;
	size_t cap, blen;
	int serial;

	memset(base, 'n', sizeof base);
	base[0] = '\xc3'; /* "é" first: bytes, not characters, count */
	base[1] = '\xa9';
	tbuf_init(&out);
	/* A capacity the tail can straddle, from 64 bytes to past 512. */
	for (blen = 1; blen < sizeof base; blen++) {
		registry_make_name(&out, base, blen, 100000);
		memcpy(want, base, blen);
		memcpy(want + blen, " #100000", 8);
		CU_ASSERT_FATAL(name_is(&out, want, blen + 8));
		CU_ASSERT_EQUAL(registry_split_serial(out.p, out.len, &serial),
		    blen);
		CU_ASSERT_EQUAL(serial, 100000);
	}
	/* Each capacity of a fresh buffer, the name ending a byte short of
	 * filling it, filling it (its NUL in the last byte), and one and two
	 * bytes past it. */
	for (cap = 64; cap <= 512; cap *= 2)
		for (blen = cap - 10; blen <= cap - 7; blen++) {
			tbuf_free(&out);
			tbuf_init(&out);
			CU_ASSERT_FATAL(tbuf_reserve(&out, blen));
			CU_ASSERT_EQUAL(out.cap, cap);
			registry_make_name(&out, base, blen, 100000);
			memcpy(want, base, blen);
			memcpy(want + blen, " #100000", 8);
			CU_ASSERT(name_is(&out, want, blen + 8));
		}
	tbuf_free(&out);
}

/*
 * A name that cannot be written is not written in part: under the
 * library's policy (tbuf.h) out is marked failed, and the callers look
 * there (holdover_reclaim: key.failed).  A length past what any buffer
 * could hold stands for memory running out without taking it all; base
 * is not read.  The next name, out being reset first, is whole again.
 */
static void
test_make_name_that_cannot_be_written_fails(void)
{
	bool fatal = tbuf_oom_is_fatal();
	struct tbuf out;

	tbuf_oom_fatal(false);
	tbuf_init(&out);
	registry_make_name(&out, "x", SIZE_MAX, 2);
	CU_ASSERT(out.failed);
	CU_ASSERT_EQUAL(out.len, 0);
	registry_make_name(&out, "calc", 4, 2);
	CU_ASSERT(name_is(&out, "calc #2", 7));
	/* A buffer with a name in it already: none of it stays. */
	registry_make_name(&out, "x", SIZE_MAX, 1);
	CU_ASSERT(out.failed);
	CU_ASSERT_EQUAL(out.len, 0);
	tbuf_free(&out);
	tbuf_oom_fatal(fatal);
}

/* A listing written in pieces keeps what it refers to: an entry removed
 * meanwhile stays readable until the reference goes. */
static void
test_reference_outlives_removal(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list a;
	struct reg_entry *e;
	struct tbuf err;
	size_t before;

	TAILQ_INIT(&a);
	tbuf_init(&err);
	e = reg(r, "kept", 0, 1, &a, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	before = registry_bytes(r);
	CU_ASSERT(before > 0);
	registry_entry_ref(e);
	registry_remove(r, e, &a);
	CU_ASSERT_EQUAL(registry_count(r), 0);
	CU_ASSERT_EQUAL(registry_bytes(r), 0);
	CU_ASSERT_PTR_NULL(registry_find(r, "kept", 4));
	/* Still readable (ASan would flag a freed one). */
	CU_ASSERT_STRING_EQUAL(e->name, "kept");
	CU_ASSERT(e->removed);
	registry_entry_unref(e); /* frees it */
	registry_free(r);
	tbuf_free(&err);
}

/* A word from a peer in an error: quoted, escaped, bounded. */
static void
test_quoted_words(void)
{
	struct tbuf b;
	char big[TBUF_QUOTE_MAX + 50];

	tbuf_init(&b);
	tbuf_add_quoted(&b, "a\"b\\c\nd\033", 8);
	CU_ASSERT_STRING_EQUAL(b.p, "\"a\\\"b\\\\c\\nd\\x1b\"");
	tbuf_reset(&b);
	memset(big, 'x', sizeof big);
	tbuf_add_quoted(&b, big, sizeof big);
	CU_ASSERT_PTR_NOT_NULL(strstr(b.p, "(50 bytes more)"));
	CU_ASSERT(b.len < TBUF_QUOTE_MAX + 40);
	tbuf_free(&b);
}

static void
test_watchers_are_told(void)
{
	struct seen s = {""};
	struct registry *r = registry_new(record, &s);
	struct reg_entry_list a;
	struct reg_watch_list wl;
	struct reg_entry *e;
	struct tbuf err;

	TAILQ_INIT(&a);
	TAILQ_INIT(&wl);
	tbuf_init(&err);
	registry_watch_add(r, REG_WATCH_COMMREG, "all", 3, "*", 1, NULL, &wl);
	registry_watch_add(r, REG_WATCH_COMMREG, "lit", 3, "foo", 3, NULL, &wl);
	registry_watch_add(r, REG_WATCH_NNS, "glob", 4, "f?o*", 4, NULL, &wl);
	registry_watch_add(r, REG_WATCH_NNS, "none", 4, "bar", 3, NULL, &wl);
	CU_ASSERT_EQUAL(registry_watch_count(r), 4);
	e = reg(r, "foo", 0, 1, &a, &err);
	CU_ASSERT_STRING_EQUAL(s.log, "lit:add foo;all:add foo;glob:add foo;");
	s.log[0] = '\0';
	reg(r, "foo", 0, 2, &a, &err);
	CU_ASSERT_STRING_EQUAL(s.log, "all:add foo #2;glob:add foo #2;");
	s.log[0] = '\0';
	registry_remove(r, e, &a);
	CU_ASSERT_STRING_EQUAL(s.log,
	    "lit:remove foo;all:remove foo;glob:remove foo;");
	while (!TAILQ_EMPTY(&wl))
		registry_watch_remove(r, TAILQ_FIRST(&wl), &wl);
	CU_ASSERT_EQUAL(registry_watch_count(r), 0);
	s.log[0] = '\0';
	reg(r, "foo", 0, 3, &a, &err);
	CU_ASSERT_STRING_EQUAL(s.log, "");
	registry_free(r);
	tbuf_free(&err);
}

static void
test_match_and_sorted(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list a;
	const struct reg_entry **v;
	struct tbuf err;
	size_t n;
	int i;
	char name[32];

	TAILQ_INIT(&a);
	tbuf_init(&err);
	/* enough to make the table grow a few times */
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "app%04d", 2999 - i);
		CU_ASSERT_PTR_NOT_NULL_FATAL(
		    reg(r, name, 0, 1000 + i, &a, &err));
	}
	v = registry_sorted(r, "app1*", 5, &n);
	CU_ASSERT_EQUAL(n, 1000);
	CU_ASSERT_STRING_EQUAL(v[0]->name, "app1000");
	CU_ASSERT_STRING_EQUAL(v[999]->name, "app1999");
	free(v);
	v = registry_sorted(r, "app0042", 7, &n);
	CU_ASSERT_EQUAL(n, 1);
	free(v);
	CU_ASSERT_PTR_NOT_NULL(registry_find(r, "app2999", 7));
	CU_ASSERT_PTR_NULL(registry_find(r, "app3000", 7));
	while (!TAILQ_EMPTY(&a))
		registry_remove(r, TAILQ_FIRST(&a), &a);
	CU_ASSERT_EQUAL(registry_count(r), 0);
	registry_free(r);
	tbuf_free(&err);
}

static void
test_entry_dict_fields(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list a;
	struct reg_entry *e;
	struct tbuf err, out;
	struct tlist l;
	const char *perr;

	TAILQ_INIT(&a);
	tbuf_init(&err);
	tbuf_init(&out);
	tlist_init(&l);
	e = reg(r, "my app", 0, 4242, &a, &err);
	registry_entry_dict(&out, e);
	CU_ASSERT_EQUAL_FATAL(tlist_parse(&l, out.p, out.len, &perr), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 20);
	CU_ASSERT_STRING_EQUAL(l.v[0].p, "name");
	CU_ASSERT_STRING_EQUAL(l.v[1].p, "my app");
	CU_ASSERT_STRING_EQUAL(l.v[6].p, "port");
	CU_ASSERT_STRING_EQUAL(l.v[7].p, "4242");
	CU_ASSERT_STRING_EQUAL(l.v[12].p, "scope");
	CU_ASSERT_STRING_EQUAL(l.v[13].p, "user");
	tlist_free(&l);
	tbuf_free(&out);
	tbuf_free(&err);
	registry_free(r);
}

/* An entry of another registry, as upstream.c copies it into the mirror. */
static struct reg_entry *
copy(struct registry *r, const char *name, const char *base, int serial,
    int port, const char *host, const char *data, struct reg_entry_list *owner,
    struct tbuf *err)
{
	struct reg_add a;

	memset(&a, 0, sizeof a);
	a.copy = true;
	a.name = name;
	a.namelen = strlen(name);
	a.base = base;
	a.baselen = strlen(base);
	a.want_serial = serial;
	a.port = port;
	a.host = host;
	a.data = data;
	a.datalen = strlen(data);
	a.nns = port <= 0;
	a.scope = REG_SCOPE_USER;
	a.uid = 1234;
	a.pid = 4321;
	a.since = 1000000000;
	return registry_add(r, &a, owner, owner, err);
}

static void
test_copy_keeps_what_it_is_given(void)
{
	struct seen s = {""};
	struct registry *r = registry_new(record, &s);
	struct reg_entry_list a, b;
	struct reg_watch_list wl;
	struct reg_entry *e, *e2;
	struct tbuf err;

	TAILQ_INIT(&a);
	TAILQ_INIT(&b);
	TAILQ_INIT(&wl);
	tbuf_init(&err);
	registry_watch_add(r, REG_WATCH_COMMREG, "all", 3, "*", 1, NULL, &wl);

	/* A name with a serial, which a Register would refuse, no lower
	 * serial present, data that differs from the comm id: all kept. */
	e = copy(r, "foo #3", "foo", 3, 4711, "otherhost", "custom data", &a,
	    &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->name, "foo #3");
	CU_ASSERT_STRING_EQUAL(e->base, "foo");
	CU_ASSERT_EQUAL(e->serial, 3);
	CU_ASSERT_EQUAL(e->port, 4711);
	CU_ASSERT_STRING_EQUAL(e->host, "otherhost");
	CU_ASSERT_STRING_EQUAL(e->data, "custom data");
	CU_ASSERT_EQUAL(e->datalen, 11);
	CU_ASSERT_EQUAL(e->scope, REG_SCOPE_USER);
	CU_ASSERT_EQUAL(e->uid, 1234);
	CU_ASSERT_EQUAL(e->pid, 4321);
	CU_ASSERT_EQUAL(e->since, 1000000000);
	CU_ASSERT_FALSE(e->nns);
	CU_ASSERT_PTR_EQUAL(registry_find(r, "foo #3", 6), e);
	CU_ASSERT_PTR_NULL(registry_find(r, "foo", 3));
	/* added like any entry: the registry's own watches are told */
	CU_ASSERT_STRING_EQUAL(s.log, "all:add foo #3;");
	CU_ASSERT_EQUAL(registry_count(r), 1);

	/* the same name again is refused, and says why */
	s.log[0] = '\0';
	CU_ASSERT_PTR_NULL(
	    copy(r, "foo #3", "foo", 3, 4712, "h", "x", &b, &err));
	CU_ASSERT_STRING_EQUAL(err.p, "\"foo #3\" is there already");
	CU_ASSERT_EQUAL(registry_count(r), 1);
	CU_ASSERT_STRING_EQUAL(s.log, "");
	CU_ASSERT_PTR_EQUAL(registry_find(r, "foo #3", 6), e);
	CU_ASSERT_EQUAL(e->port, 4711);

	/* a Register of the base beside it is not disturbed by the copy:
	 * serial 3 is taken, so the lowest free one is given */
	e2 = reg(r, "foo", 3, 5000, &b, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
	CU_ASSERT_STRING_EQUAL(e2->name, "foo");

	/* and an empty name is still refused */
	CU_ASSERT_PTR_NULL(copy(r, "", "", 1, 1, "h", "", &b, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.p, "empty"));
	CU_ASSERT_EQUAL(registry_count(r), 2);

	while (!TAILQ_EMPTY(&wl))
		registry_watch_remove(r, TAILQ_FIRST(&wl), &wl);
	while (!TAILQ_EMPTY(&a))
		registry_remove(r, TAILQ_FIRST(&a), &a);
	while (!TAILQ_EMPTY(&b))
		registry_remove(r, TAILQ_FIRST(&b), &b);
	CU_ASSERT_EQUAL(registry_count(r), 0);
	registry_free(r);
	tbuf_free(&err);
}

static void
test_copy_without_port(void)
{
	struct registry *r = registry_new(NULL, NULL);
	struct reg_entry_list a;
	struct reg_entry *e;
	struct tbuf err, out;
	struct tlist l;
	const char *perr;

	TAILQ_INIT(&a);
	tbuf_init(&err);
	tbuf_init(&out);
	tlist_init(&l);
	/* An nns Bind of the registry above: no port.  Its data looks like
	 * a comm id, but a copy takes the port as given, not from the data
	 * (a Bind here would). */
	e = copy(r, "svc", "svc", 1, 0, NULL, "5555 elsewhere", &a, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(e->port, -1);
	CU_ASSERT_STRING_EQUAL(e->host, "");
	CU_ASSERT_STRING_EQUAL(e->data, "5555 elsewhere");
	CU_ASSERT_TRUE(e->nns);
	/* a negative port is "none" too */
	e = copy(r, "svc2", "svc2", 1, -7, "", "d", &a, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(e->port, -1);
	/* and the dict says so with an empty port */
	registry_entry_dict(&out, e);
	CU_ASSERT_EQUAL_FATAL(tlist_parse(&l, out.p, out.len, &perr), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 20);
	CU_ASSERT_STRING_EQUAL(l.v[6].p, "port");
	CU_ASSERT_STRING_EQUAL(l.v[7].p, "");
	CU_ASSERT_STRING_EQUAL(l.v[19].p, "1000000000");
	tlist_free(&l);
	tbuf_free(&out);
	while (!TAILQ_EMPTY(&a))
		registry_remove(r, TAILQ_FIRST(&a), &a);
	registry_free(r);
	tbuf_free(&err);
}

static void
test_announce_tells_watches_stores_nothing(void)
{
	struct seen s = {""};
	struct registry *r = registry_new(record, &s);
	struct registry *m = registry_new(NULL, NULL); /* the mirror */
	struct reg_entry_list own, mirrored;
	struct reg_watch_list wl;
	struct reg_entry *e, *mine;
	struct tbuf err;
	uint64_t before;

	TAILQ_INIT(&own);
	TAILQ_INIT(&mirrored);
	TAILQ_INIT(&wl);
	tbuf_init(&err);
	mine = reg(r, "local", 0, 1, &own, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mine);
	registry_watch_add(r, REG_WATCH_COMMREG, "all", 3, "*", 1, NULL, &wl);
	registry_watch_add(r, REG_WATCH_COMMREG, "lit", 3, "ext", 3, NULL, &wl);
	registry_watch_add(r, REG_WATCH_NNS, "glob", 4, "e?t*", 4, NULL, &wl);
	registry_watch_add(r, REG_WATCH_NNS, "none", 4, "other", 5, NULL, &wl);
	registry_watch_add(r, REG_WATCH_COMMREG, "noglob", 6, "z*", 2, NULL,
	    &wl);

	e = copy(m, "ext", "ext", 1, 4001, "localhost", "4001 localhost",
	    &mirrored, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(s.log, ""); /* the mirror has no watches */

	before = registry_change(r);
	registry_announce(r, e, true);
	CU_ASSERT_STRING_EQUAL(s.log, "lit:add ext;all:add ext;glob:add ext;");
	/* the watchers get the foreign entry itself */
	CU_ASSERT_PTR_EQUAL(last_told, e);
	/* one change, so a notifier formats it once for all watchers */
	CU_ASSERT_EQUAL(registry_change(r), before + 1);
	/* nothing is stored here */
	CU_ASSERT_EQUAL(registry_count(r), 1);
	CU_ASSERT_PTR_NULL(registry_find(r, "ext", 3));
	CU_ASSERT_EQUAL(registry_count(m), 1);

	s.log[0] = '\0';
	registry_announce(r, e, false);
	CU_ASSERT_STRING_EQUAL(s.log,
	    "lit:remove ext;all:remove ext;glob:remove ext;");
	CU_ASSERT_EQUAL(registry_change(r), before + 2);
	CU_ASSERT_EQUAL(registry_count(r), 1);
	CU_ASSERT_PTR_EQUAL(registry_find(r, "local", 5), mine);
	/* nor is anything taken away: the mirror's entry is the mirror's */
	CU_ASSERT_PTR_EQUAL(registry_find(m, "ext", 3), e);

	/* a foreign entry matching no watch: nobody is told */
	s.log[0] = '\0';
	e = copy(m, "quiet", "quiet", 1, 4002, "localhost", "4002 localhost",
	    &mirrored, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	registry_announce(r, e, true);
	CU_ASSERT_STRING_EQUAL(s.log, "all:add quiet;");
	s.log[0] = '\0';
	while (!TAILQ_EMPTY(&wl))
		registry_watch_remove(r, TAILQ_FIRST(&wl), &wl);
	registry_announce(r, e, false);
	CU_ASSERT_STRING_EQUAL(s.log, "");
	CU_ASSERT_EQUAL(registry_count(r), 1);

	while (!TAILQ_EMPTY(&mirrored))
		registry_remove(m, TAILQ_FIRST(&mirrored), &mirrored);
	while (!TAILQ_EMPTY(&own))
		registry_remove(r, TAILQ_FIRST(&own), &own);
	registry_free(m);
	registry_free(r);
	tbuf_free(&err);
}

int
main(void)
{
	CU_pSuite s;
	int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("registry", NULL, NULL);
	CU_add_test(s, "a walk in slices", test_scan_in_slices);
	CU_add_test(s, "the index by application name", test_application_index);
	CU_add_test(s, "second instance gets serial 2",
	    test_second_instance_gets_serial_2);
	CU_add_test(s, "Bind refuses duplicates with tcllib's text",
	    test_bind_refuses_duplicates_with_tcllib_text);
	CU_add_test(s, "Register with -data keeps its comm id",
	    test_register_data_keeps_comm_id);
	CU_add_test(s, "names are checked", test_names_are_checked);
	CU_add_test(s, "one rule for every name (Bind, Register, copy)",
	    test_one_rule_for_every_name);
	CU_add_test(s, "the serial syntax has one reader", test_split_serial);
	CU_add_test(s, "the serial syntax has one writer", test_make_name);
	CU_add_test(s, "a name is whole at the buffer's edge",
	    test_make_name_at_the_buffer_edge);
	CU_add_test(s, "a name that cannot be written fails, never cut",
	    test_make_name_that_cannot_be_written_fails);
	CU_add_test(s, "UTF-8: an empty span reads nothing",
	    test_utf8_empty_span);
	CU_add_test(s, "a reference outlives the entry's removal",
	    test_reference_outlives_removal);
	CU_add_test(s, "a peer's words are quoted, escaped and bounded",
	    test_quoted_words);
	CU_add_test(s, "watchers are told of adds and removes",
	    test_watchers_are_told);
	CU_add_test(s, "match and sorted listing over 3000 names",
	    test_match_and_sorted);
	CU_add_test(s, "entry dict fields", test_entry_dict_fields);
	CU_add_test(s, "a copy keeps name, serial, port, host and data",
	    test_copy_keeps_what_it_is_given);
	CU_add_test(s, "a copy without a port has port -1",
	    test_copy_without_port);
	CU_add_test(s, "announce tells the watches and stores nothing",
	    test_announce_tells_watches_stores_nothing);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() || CU_get_error();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
