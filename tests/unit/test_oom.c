/*
 * Out of memory in the code libcommreg shares with the daemons (wire/,
 * engine/, local/'s handlers): with the library's policy (tbuf.h) it is
 * an error, never the end of the process.
 *
 * malloc, calloc, realloc and reallocarray are replaced in this program:
 * while a scenario is armed, the Nth call fails.  Each scenario is run
 * with N = 1, 2, ... until a run needs fewer than N calls, so that every
 * allocation it makes fails once; each run must end in the scenario's
 * error ("out of memory") or in its right result, and the process must
 * live (the sanitizer build runs this too).
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "client.h"
#include "commwire.h"
#include "log.h"
#include "peer.h"
#include "registry.h"
#include "tbuf.h"
#include "tcllist.h"

/* ---- failing allocations ------------------------------------------------ */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int resolving;
static char boot[4096]; /* dlsym's own needs, while resolving */
static size_t boot_used;

static int armed;           /* counting */
static long calls, fail_at; /* the fail_at'th counted call fails */
static long failures;

static void
resolve(void)
{
	if (real_malloc != NULL || resolving)
		return;
	resolving = 1;
	real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	resolving = 0;
}

static int
fail_now(void)
{
	if (!armed)
		return 0;
	if (++calls != fail_at)
		return 0;
	failures++;
	errno = ENOMEM;
	return 1;
}

void *
malloc(size_t n)
{
	resolve();
	if (real_malloc == NULL) {
		void *p = boot + boot_used;

		boot_used += (n + 15) & ~(size_t)15;
		return boot_used <= sizeof boot ? p : NULL;
	}
	return fail_now() ? NULL : real_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	resolve();
	if (real_calloc == NULL) {
		void *p;

		if (size != 0 && n > SIZE_MAX / size)
			return NULL;
		p = boot + boot_used; /* static: zeroed */
		boot_used += (n * size + 15) & ~(size_t)15;
		return boot_used <= sizeof boot ? p : NULL;
	}
	return fail_now() ? NULL : real_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	resolve();
	return fail_now() ? NULL : real_realloc(p, n);
}

void *
reallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n * size);
}

static void
arm(long n)
{
	calls = 0;
	fail_at = n;
	armed = 1;
}

/* Disarm; true when the run made fewer calls than n (it is complete). */
static int
disarm(long n)
{
	armed = 0;
	return calls < n;
}

/* Sweep N over every allocation of a scenario, at most 400. */
#define SWEEP(n) for (n = 1; n <= 400; n++)

/* ---- the byte buffer ---------------------------------------------------- */

static void
test_tbuf(void)
{
	struct tbuf b;
	size_t len;
	long n, seen = 0;
	int i, done = 0;

	SWEEP(n)
	{
		tbuf_init(&b);
		arm(n);
		for (i = 0; i < 50; i++) {
			tbuf_adds(&b, "some bytes ");
			tbuf_printf(&b, "%d %s ", i, "and a format");
			tl_append(&b, 0, "a word {with} braces", 20);
			tl_append_int(&b, 0, i);
		}
		done = disarm(n);
		if (!done) {
			seen++;
			CU_ASSERT(b.failed);
			/* Nothing more is written, and p stays a string. */
			len = b.len;
			tbuf_adds(&b, "more");
			tbuf_addc(&b, 'x');
			tbuf_printf(&b, "%d", 42);
			tl_append_str(&b, 0, "word");
			CU_ASSERT_EQUAL(b.len, len);
			CU_ASSERT_EQUAL(b.p[b.len], '\0');
			/* reset makes it usable again. */
			tbuf_reset(&b);
			CU_ASSERT(!b.failed);
			tbuf_adds(&b, "again");
			CU_ASSERT_STRING_EQUAL(b.p, "again");
		} else
			CU_ASSERT(!b.failed);
		tbuf_free(&b);
		CU_ASSERT(!b.failed);
		if (done)
			break;
	}
	CU_ASSERT(done);
	CU_ASSERT(seen > 0);
}

/* ---- the list parsers --------------------------------------------------- */

static void
test_tlist(void)
{
	struct tlist l, frags, words;
	struct tbuf src, scratch, err;
	const char *why;
	long n;
	int i, rc, done = 0, failed = 0;

	tbuf_init(&src);
	for (i = 0; i < 100; i++)
		tl_append_str(&src, 0, i % 2 ? "{a b}" : "w\\n");
	SWEEP(n)
	{
		tlist_init(&l);
		tlist_init(&frags);
		tlist_init(&words);
		tbuf_init(&scratch);
		tbuf_init(&err);
		arm(n);
		why = NULL;
		rc = tlist_parse(&l, src.p, src.len, &why);
		if (rc == 0) {
			CU_ASSERT_EQUAL(l.n, 100);
		} else {
			failed++;
			CU_ASSERT_STRING_EQUAL(why, TL_NOMEM);
			CU_ASSERT_EQUAL(l.n, 0);
		}
		rc = comm_payload_command("{Commreg/Lookup {foo #2}}", 25,
		    &frags, &scratch, &words, &err);
		if (rc == 0) {
			CU_ASSERT_EQUAL(words.n, 2);
		} else if (!err.failed) {
			CU_ASSERT_STRING_EQUAL(err.p, TL_NOMEM);
		}
		done = disarm(n);
		tlist_free(&l);
		tlist_free(&frags);
		tlist_free(&words);
		tbuf_free(&scratch);
		tbuf_free(&err);
		if (done)
			break;
	}
	tbuf_free(&src);
	CU_ASSERT(done);
	CU_ASSERT(failed > 0);
}

/* ---- the table ---------------------------------------------------------- */

static void
test_registry(void)
{
	struct registry *r;
	struct reg_entry_list owned;
	struct reg_watch_list watches;
	struct reg_entry *e, *next;
	struct reg_watch *w, *wnext;
	const struct reg_entry **v;
	struct reg_add a;
	struct tbuf err;
	char name[32];
	size_t cnt;
	long n;
	int i, done = 0, refused = 0;

	SWEEP(n)
	{
		TAILQ_INIT(&owned);
		TAILQ_INIT(&watches);
		tbuf_init(&err);
		arm(n);
		if ((r = registry_new(NULL, NULL)) == NULL) {
			done = disarm(n);
			continue;
		}
		for (i = 0; i < 40; i++) {
			memset(&a, 0, sizeof a);
			snprintf(name, sizeof name, "app%d", i % 20);
			a.base = name;
			a.baselen = strlen(name);
			a.port = 5000 + i;
			a.host = "localhost";
			tbuf_reset(&err);
			if (registry_add(r, &a, &owned, &owned, &err) == NULL) {
				refused++;
				CU_ASSERT(err.failed ||
				          strcmp(err.p, "out of memory") == 0);
			}
			memset(&a, 0, sizeof a);
			a.base = "nns";
			a.baselen = 3;
			a.nns = true;
			a.data = "4711 {some host}";
			a.datalen = strlen(a.data);
			tbuf_reset(&err);
			registry_add(r, &a, &owned, &owned, &err);
		}
		registry_watch_add(r, REG_WATCH_COMMREG, "t", 1, "app1", 4,
		    &watches, &watches);
		registry_watch_add(r, REG_WATCH_COMMREG, "g", 1, "app*", 4,
		    &watches, &watches);
		if ((v = registry_sorted(r, "*", 1, &cnt)) != NULL) {
			CU_ASSERT_EQUAL(cnt, registry_count(r));
			free(v);
		}
		done = disarm(n);
		TAILQ_FOREACH_SAFE(w, &watches, owner_link, wnext)
			registry_watch_remove(r, w, &watches);
		TAILQ_FOREACH_SAFE(e, &owned, owner_link, next)
			registry_remove(r, e, &owned);
		registry_free(r);
		tbuf_free(&err);
		if (done)
			break;
	}
	CU_ASSERT(done);
	CU_ASSERT(refused > 0);
}

/* ---- the engine serving a request --------------------------------------- */

#define BIG_WORDS 400

static int
cmd_big(struct cmd_ctx *c)
{
	int i;

	/* A result that grows the buffer several times. */
	for (i = 0; i < BIG_WORDS; i++)
		tl_append_str(c->result, 0, "word-of-a-big-result");
	return CMD_OK;
}

static const struct cmd_entry big_table[] = {
    {"Big", 0, 0, "", cmd_big},
};

static const struct cmd_entry *
big_find(const char *name, size_t len)
{
	return cmd_table_find(big_table, 1, name, len);
}

static char gone_why[128];
static int gone_called;

static void
big_gone(struct peer *p, const char *why)
{
	gone_called = 1;
	snprintf(gone_why, sizeof gone_why, "%s", why != NULL ? why : "");
}

static const struct peer_ops big_ops = {
    .find = big_find,
    .gone = big_gone,
};

static void
test_engine(void)
{
	struct event_base *base;
	struct engine eng;
	struct engine_limits lim;
	struct tbuf want, got, res, nomem;
	char buf[65536];
	const char offer[] = "{3} 0\n{send 1 {{Big}}}\n";
	ssize_t k;
	long n;
	int sv[2], i, eof, done = 0, lost = 0, nomem_replies = 0;

	/* What a right answer is, byte for byte. */
	tbuf_init(&want);
	tbuf_init(&res);
	for (i = 0; i < BIG_WORDS; i++)
		tl_append_str(&res, 0, "word-of-a-big-result");
	comm_format_vers(&want, 3);
	comm_format_reply_list(&want, "reply", 1, 0, res.p, res.len, NULL);
	tbuf_free(&res);
	/* Or, when the result could not be made, the error. */
	tbuf_init(&nomem);
	comm_format_vers(&nomem, 3);
	comm_format_reply(&nomem, "reply", 1, 1, "out of memory", 13, NULL);
	tbuf_init(&got);
	engine_default_limits(&lim);
	SWEEP(n)
	{
		CU_ASSERT_FATAL((base = event_base_new()) != NULL);
		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		CU_ASSERT_FATAL(write(sv[1], offer, sizeof offer - 1) ==
		                (ssize_t)(sizeof offer - 1));
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		gone_called = 0;
		gone_why[0] = '\0';
		tbuf_reset(&got);
		eof = 0;
		arm(n);
		if (engine_init(&eng, base) == -1) {
			engine_free(&eng);
			close(sv[0]);
			goto next;
		}
		if (peer_new(&eng, sv[0], true, "oom", &lim, &big_ops, NULL) ==
		    NULL) {
			/* sv[0] was closed: the far end sees it go. */
			engine_free(&eng);
			goto next;
		}
		for (i = 0; i < 200 && !eof; i++) {
			event_base_loop(base, EVLOOP_NONBLOCK);
			while ((k = read(sv[1], buf, sizeof buf)) > 0)
				tbuf_add(&got, buf, (size_t)k);
			if (k == 0)
				eof = 1;
			if (got.len >= want.len)
				break;
			if (i > 20)
				usleep(1000);
		}
		engine_free(&eng);
	next:
		done = disarm(n);
		/* Whole messages or none: the answer, or its part before the
		 * reply, and then the connection closed. */
		if (getenv("OOM_DEBUG") != NULL)
			printf("\n  run %ld: got %zu of %zu, gone %d %s", n,
			    got.len, want.len, gone_called, gone_why);
		if (got.len == nomem.len &&
		    memcmp(got.p, nomem.p, nomem.len) == 0)
			nomem_replies++;
		else {
			CU_ASSERT(got.len == want.len || got.len == 0 ||
			          got.len == strlen("{vers 3}\n"));
			CU_ASSERT(memcmp(got.p, want.p, got.len) == 0);
		}
		if (got.len != want.len) {
			lost++;
		}
		close(sv[1]);
		event_base_free(base);
		if (done)
			break;
	}
	tbuf_free(&want);
	tbuf_free(&got);
	tbuf_free(&nomem);
	CU_ASSERT(done);
	CU_ASSERT(lost > 0);
	CU_ASSERT(nomem_replies > 0);
}

/* ---- the blocking client ------------------------------------------------ */

#define HELLO                                                                  \
	"{vers 3}\n"                                                           \
	"{reply 1 {return -code 0 {registry commreg version "                  \
	"0.1.0 protocol 1 owner alice uid 1000 host box pid 42 port 4711 "     \
	"scope user}}}\n"
#define LOOKUP_REPLY "{reply 2 {return -code 0 {5555 localhost}}}\n"

static void
test_client_call(void)
{
	struct commreg_open_opts o;
	struct commreg_client *c;
	const char *w[2] = {"Commreg/Lookup", "foo #2"};
	struct tbuf r;
	char err[256];
	long n;
	int sv[2], rc, done = 0, failed = 0;

	memset(&o, 0, sizeof o);
	o.reply_timeout_ms = 2000;
	SWEEP(n)
	{
		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		CU_ASSERT_FATAL(write(sv[1], HELLO, strlen(HELLO)) ==
		                (ssize_t)strlen(HELLO));
		tbuf_init(&r);
		err[0] = '\0';
		arm(n);
		c = commreg_attach(sv[0], &o, err, sizeof err);
		if (c == NULL) {
			CU_ASSERT(err[0] != '\0');
		} else {
			/* The reply is there before it is asked for, as from
			 * a fast registry, but after the hello was read. */
			CU_ASSERT_FATAL(
			    write(sv[1], LOOKUP_REPLY, strlen(LOOKUP_REPLY)) ==
			    (ssize_t)strlen(LOOKUP_REPLY));
			rc = commreg_call(c, w, NULL, 2, &r);
			if (rc == 0) {
				CU_ASSERT_STRING_EQUAL(r.p, "5555 localhost");
			} else {
				failed++;
				CU_ASSERT_EQUAL(rc, -1);
				CU_ASSERT_PTR_NOT_NULL(
				    strstr(commreg_error(c), "out of memory"));
			}
			commreg_close(c);
		}
		done = disarm(n);
		tbuf_free(&r);
		close(sv[1]);
		if (done)
			break;
	}
	CU_ASSERT(done);
	CU_ASSERT(failed > 0);
}

int
main(void)
{
	CU_pSuite s;
	unsigned int nfail;

	/* The library's policy, as a handle's opening sets it. */
	tbuf_oom_library_default();
	if (tbuf_oom_is_fatal())
		return 1;
	log_library_default();
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("oom", NULL, NULL);
	CU_add_test(s, "tbuf appends", test_tbuf);
	CU_add_test(s, "list parsers", test_tlist);
	CU_add_test(s, "registry table", test_registry);
	CU_add_test(s, "engine request", test_engine);
	CU_add_test(s, "blocking client call", test_client_call);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	nfail = CU_get_number_of_failures();
	CU_cleanup_registry();
	return nfail == 0 ? 0 : 1;
}
