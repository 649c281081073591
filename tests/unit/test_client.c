/*
 * Unit tests of the client library (lib/client.h) without a registry:
 * entry dicts as docs/protocol.md §4 defines them, and the conversation on
 * a socketpair whose far end the test writes by hand, as a registry would
 * (handshake, hello, replies, async events, broken peers).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "client.h"
#include "log.h"
#include "tbuf.h"
#include "tcllist.h"

/* The registry's side of the handshake and a Commreg/Hello reply. */
#define VERS_LINE "{vers 3}\n"
#define HELLO_REPLY                                                            \
	"{reply 1 {return -code 0 {registry commreg version "                  \
	"0.1.0 protocol 1 owner alice uid 1000 host box pid 42 port 4711 "     \
	"scope user}}}\n"

#define FOO2_DICT                                                              \
	"name {foo #2} serial 2 base foo port 5555 host "                      \
	"localhost data {5555 localhost} scope user uid 1000 pid 77 "          \
	"since 1700000000"

static void
peer_write(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;
	ssize_t n;

	while (off < len) {
		n = write(fd, s + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/* Everything the client has written so far, NUL-terminated. */
static void
peer_drain(int fd, struct tbuf *b)
{
	char buf[4096];
	ssize_t n;

	tbuf_reset(b);
	while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		tbuf_add(b, buf, (size_t)n);
}

/*
 * A client attached to one end of a socketpair; the registry's greeting
 * is already waiting in the socket, so attach completes at once.
 */
static struct commreg_client *
attached(int *peer, size_t max_message, int reply_timeout_ms)
{
	struct commreg_open_opts o;
	struct commreg_client *c;
	char err[256];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return NULL;
	memset(&o, 0, sizeof o);
	o.max_message = max_message;
	o.reply_timeout_ms = reply_timeout_ms;
	peer_write(sv[1], VERS_LINE HELLO_REPLY);
	c = commreg_attach(sv[0], &o, err, sizeof err);
	if (c == NULL) {
		fprintf(stderr, "attach: %s\n", err);
		close(sv[1]);
		return NULL;
	}
	*peer = sv[1];
	return c;
}

static int
call_lookup(struct commreg_client *c, const char *name, struct tbuf *r)
{
	const char *w[2] = {"Commreg/Lookup", name};

	return commreg_call(c, w, NULL, 2, r);
}

/* ---- entries -------------------------------------------------------- */

static void
test_entry_parse_full(void)
{
	struct commreg_entry e;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(commreg_entry_parse(FOO2_DICT, strlen(FOO2_DICT),
	                          &e, err, sizeof err),
	    0);
	CU_ASSERT_STRING_EQUAL(e.name, "foo #2");
	CU_ASSERT_EQUAL(e.serial, 2);
	CU_ASSERT_STRING_EQUAL(e.base, "foo");
	CU_ASSERT_EQUAL(e.port, 5555);
	CU_ASSERT_STRING_EQUAL(e.host, "localhost");
	CU_ASSERT_STRING_EQUAL(e.data, "5555 localhost");
	CU_ASSERT_STRING_EQUAL(e.scope, "user");
	CU_ASSERT_EQUAL(e.uid, 1000);
	CU_ASSERT_EQUAL(e.pid, 77);
	CU_ASSERT_EQUAL(e.since, 1700000000LL);
	CU_ASSERT_STRING_EQUAL(e.user, ""); /* not sent: "" */
	commreg_entry_clear(&e);
}

/* Another user's host entry: NAME@USER, with the owner in `user`. */
static void
test_entry_parse_user(void)
{
	const char *d = "name foo@alice serial 1 base foo port 6000 "
	                "host localhost data {6000 localhost} scope host "
	                "uid 1001 pid 9 since 5 user alice";
	struct commreg_entry e;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(commreg_entry_parse(d, strlen(d), &e, err,
	                          sizeof err),
	    0);
	CU_ASSERT_STRING_EQUAL(e.name, "foo@alice");
	CU_ASSERT_STRING_EQUAL(e.scope, "host");
	CU_ASSERT_STRING_EQUAL(e.user, "alice");
	CU_ASSERT_EQUAL(e.uid, 1001);
	commreg_entry_clear(&e);
	CU_ASSERT_PTR_NULL(e.user);
}

static void
test_entry_bind_entry_has_empty_fields(void)
{
	const char *d = "name app serial 1 base app port {} "
	                "host {} data whatever scope user uid 1000 "
	                "pid {} since 5 future yes";
	struct commreg_entry e;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(commreg_entry_parse(d, strlen(d), &e, err,
	                          sizeof err),
	    0);
	CU_ASSERT_STRING_EQUAL(e.name, "app");
	CU_ASSERT_EQUAL(e.port, 0);
	CU_ASSERT_STRING_EQUAL(e.host, "");
	CU_ASSERT_EQUAL(e.pid, -1);
	CU_ASSERT_STRING_EQUAL(e.data, "whatever");
	commreg_entry_clear(&e);
}

static void
test_entry_parse_rejects_bad_dicts(void)
{
	static const char *bad[] = {
	    "name foo serial",     /* odd */
	    "serial 1 port 5",     /* no name */
	    "name foo port abc",   /* port not a number */
	    "name foo port 70000", /* port out of range */
	    "name {foo",           /* not a list */
	};
	struct commreg_entry e;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CU_ASSERT_EQUAL(commreg_entry_parse(bad[i], strlen(bad[i]), &e,
		                    err, sizeof err),
		    -1);
		CU_ASSERT(err[0] != '\0');
	}
}

static void
test_entries_parse_list(void)
{
	const char *l = "{" FOO2_DICT "} {name bar port 1 "
	                "host h}";
	struct commreg_entry *v;
	size_t n;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(commreg_entries_parse(l, strlen(l), &v, &n, err,
	                          sizeof err),
	    0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(v[0].name, "foo #2");
	CU_ASSERT_STRING_EQUAL(v[1].name, "bar");
	CU_ASSERT_EQUAL(v[1].port, 1);
	commreg_entries_free(v, n);

	CU_ASSERT_EQUAL(commreg_entries_parse("", 0, &v, &n, err, sizeof err),
	    0);
	CU_ASSERT_EQUAL(n, 0);
	commreg_entries_free(v, n);

	CU_ASSERT_EQUAL(commreg_entries_parse("{name a} {port 1}", 17, &v, &n,
	                    err, sizeof err),
	    -1);
}

/* ---- conversation ------------------------------------------------------ */

static void
test_attach_says_hello(void)
{
	struct commreg_client *c;
	const struct commreg_hello *h;
	struct tbuf sent;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	h = commreg_hello_info(c);
	CU_ASSERT_EQUAL(h->pid, 42);
	CU_ASSERT_EQUAL(h->port, 4711);
	CU_ASSERT_EQUAL(h->uid, 1000);
	CU_ASSERT_STRING_EQUAL(h->owner, "alice");
	CU_ASSERT_STRING_EQUAL(h->version, "0.1.0");
	tbuf_init(&sent);
	peer_drain(peer, &sent);
	/* The comm v3 offer, our port 0, then the hello as send 1. */
	CU_ASSERT(strncmp(sent.p, "3 0\n", 4) == 0 ||
	          strncmp(sent.p, "{3 2} 0\n", 8) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, "{send 1 {{Commreg/Hello "));
	tbuf_free(&sent);
	commreg_close(c);
	close(peer);
}

static void
test_call_ok_reply(void)
{
	struct commreg_client *c;
	struct tbuf r, sent;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{reply 2 {return -code 0 {5555 localhost}}}\n");
	tbuf_init(&r);
	tbuf_init(&sent);
	CU_ASSERT_EQUAL(call_lookup(c, "foo #2", &r), 0);
	CU_ASSERT_EQUAL(r.len, 14);
	CU_ASSERT_STRING_EQUAL(r.p, "5555 localhost");
	peer_drain(peer, &sent);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(sent.p, "{send 2 {{Commreg/Lookup {foo #2}}}}\n"));
	tbuf_free(&r);
	tbuf_free(&sent);
	commreg_close(c);
	close(peer);
}

static void
test_call_error_reply(void)
{
	struct commreg_client *c;
	struct tbuf r;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{reply 2 {return -code 1 -errorinfo "
	                 "{no application named \"foo\"} -errorcode NONE "
	                 "{no application named \"foo\"}}}\n");
	tbuf_init(&r);
	CU_ASSERT_EQUAL(commreg_lookup(c, "foo", &r), 1);
	CU_ASSERT_STRING_EQUAL(r.p, "no application named \"foo\"");
	CU_ASSERT_STRING_EQUAL(commreg_error(c),
	    "no application named \"foo\"");
	/* An error reply is an answer: the connection is still good. */
	peer_write(peer, "{reply 3 {return -code 0 {1 h}}}\n");
	CU_ASSERT_EQUAL(commreg_lookup(c, "bar", &r), 0);
	CU_ASSERT_STRING_EQUAL(r.p, "1 h");
	tbuf_free(&r);
	commreg_close(c);
	close(peer);
}

static void
test_async_before_reply_is_queued(void)
{
	struct commreg_client *c;
	struct commreg_event ev;
	struct tbuf r;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{async 7 {{Commreg/Event w add {" FOO2_DICT "}}}}\n"
	                 "{async 8 {{Search/Continuous/Change t add "
	                 "{a {1 h} b x}}}}\n"
	                 "{reply 99 {return -code 0 stale}}\n"
	                 "{reply 2 {return -code 0 {5555 localhost}}}\n"
	                 "{async 9 {{Commreg/Event w remove {name gone}}}}\n");
	tbuf_init(&r);
	CU_ASSERT_EQUAL(call_lookup(c, "foo #2", &r), 0);
	CU_ASSERT_STRING_EQUAL(r.p, "5555 localhost");

	CU_ASSERT_EQUAL_FATAL(commreg_next_event(c, 0, &ev), 1);
	CU_ASSERT_EQUAL(ev.type, COMMREG_EVENT_ADD);
	CU_ASSERT_STRING_EQUAL(ev.tag, "w");
	CU_ASSERT_EQUAL(ev.nns, 0);
	CU_ASSERT_STRING_EQUAL(ev.entry.name, "foo #2");
	CU_ASSERT_EQUAL(ev.entry.port, 5555);
	commreg_event_clear(&ev);

	/* One nns Change with two names gives two events. */
	CU_ASSERT_EQUAL_FATAL(commreg_next_event(c, 0, &ev), 1);
	CU_ASSERT_EQUAL(ev.nns, 1);
	CU_ASSERT_STRING_EQUAL(ev.tag, "t");
	CU_ASSERT_STRING_EQUAL(ev.entry.name, "a");
	CU_ASSERT_EQUAL(ev.entry.port, 1);
	CU_ASSERT_STRING_EQUAL(ev.entry.host, "h");
	commreg_event_clear(&ev);
	CU_ASSERT_EQUAL_FATAL(commreg_next_event(c, 0, &ev), 1);
	CU_ASSERT_STRING_EQUAL(ev.entry.name, "b");
	CU_ASSERT_EQUAL(ev.entry.port, 0);
	CU_ASSERT_STRING_EQUAL(ev.entry.data, "x");
	commreg_event_clear(&ev);

	/* Sent after the reply: read by next_event itself. */
	CU_ASSERT_EQUAL_FATAL(commreg_next_event(c, 1000, &ev), 1);
	CU_ASSERT_EQUAL(ev.type, COMMREG_EVENT_REMOVE);
	CU_ASSERT_STRING_EQUAL(ev.entry.name, "gone");
	commreg_event_clear(&ev);

	CU_ASSERT_EQUAL(commreg_next_event(c, 50, &ev), 0);
	tbuf_free(&r);
	commreg_close(c);
	close(peer);
}

/*
 * A child that played a peer ends with status 0 without a leak check of
 * the memory it shares with its parent (valgrind follows a fork, not an
 * exec, and would count the parent's allocations as the child's).
 */
static void
child_done(void)
{
	execl("/bin/true", "true", (char *)NULL);
	_exit(0);
}

/* Writes s one byte at a time, as a slow peer would; CRLF as Tcl does. */
static pid_t
slow_writer(int fd, const char *s)
{
	pid_t pid;
	size_t i;

	if ((pid = fork()) != 0)
		return pid;
	for (i = 0; s[i] != '\0'; i++) {
		if (write(fd, s + i, 1) != 1)
			_exit(1);
		usleep(2000);
	}
	child_done();
	return 0;
}

static void
test_reply_split_across_writes(void)
{
	struct commreg_client *c;
	struct tbuf r;
	pid_t pid;
	int peer, status;

	c = attached(&peer, 0, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	pid = slow_writer(peer, "{reply 2 {return -code 0 "
	                        "{5555 {host with space}}}}\r\n");
	CU_ASSERT_FATAL(pid > 0);
	tbuf_init(&r);
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), 0);
	CU_ASSERT_STRING_EQUAL(r.p, "5555 {host with space}");
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tbuf_free(&r);
	commreg_close(c);
	close(peer);
}

static void
test_oversize_reply_is_refused(void)
{
	struct commreg_client *c;
	struct tbuf big, r;
	pid_t pid;
	int peer, status;

	c = attached(&peer, 1024, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	tbuf_init(&big);
	tbuf_adds(&big, "{reply 2 {return -code 0 {");
	while (big.len < 8192)
		tbuf_adds(&big, "xxxxxxxxxxxxxxxx");
	tbuf_adds(&big, "}}}\n");
	/* From a child: the whole reply may not fit in the socket buffer. */
	if ((pid = fork()) == 0) {
		peer_write(peer, big.p);
		child_done();
	}
	tbuf_init(&r);
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), -1);
	CU_ASSERT(r.len > 0);
	/* Dead for good. */
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), -1);
	commreg_close(c);
	close(peer);
	waitpid(pid, &status, 0);
	tbuf_free(&r);
	tbuf_free(&big);
}

static void
test_closed_connection(void)
{
	struct commreg_client *c;
	struct commreg_event ev;
	struct tbuf r;
	int peer;

	c = attached(&peer, 0, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	close(peer);
	tbuf_init(&r);
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(commreg_error(c), "closed"));
	CU_ASSERT_EQUAL(commreg_next_event(c, 0, &ev), -1);
	CU_ASSERT_EQUAL(commreg_dispatch(c, 0), -1);
	tbuf_free(&r);
	commreg_close(c);
}

static void
test_reply_timeout(void)
{
	struct commreg_client *c;
	struct tbuf r;
	int peer;

	c = attached(&peer, 0, 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	tbuf_init(&r);
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.p, "no reply"));
	tbuf_free(&r);
	commreg_close(c);
	close(peer);
}

static void
test_command_from_registry_gets_error_reply(void)
{
	struct commreg_client *c;
	struct tbuf r, sent;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{send 5 {{exit}}}\n"
	                 "{reply 2 {return -code 0 {}}}\n");
	tbuf_init(&r);
	tbuf_init(&sent);
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), 0);
	CU_ASSERT_EQUAL(r.len, 0);
	/* The reply to 5 goes out with the next write; make one happen. */
	peer_write(peer, "{reply 3 {return -code 0 {}}}\n");
	CU_ASSERT_EQUAL(call_lookup(c, "foo", &r), 0);
	peer_drain(peer, &sent);
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, "{reply 5 {return -code 1 "));
	tbuf_free(&r);
	tbuf_free(&sent);
	commreg_close(c);
	close(peer);
}

static void
test_helpers_register_and_list(void)
{
	struct commreg_client *c;
	struct commreg_entry *v;
	struct commreg_stats st;
	struct tbuf sent;
	char assigned[64];
	size_t n;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/*
	 * One reply at a time, as a registry answers: a reply that comes
	 * before its request is one nobody waits for, and is dropped.
	 */
	peer_write(peer, "{reply 2 {return -code 0 {foo #2}}}\n");
	CU_ASSERT_EQUAL(commreg_register(c, "foo", 5555, "h", assigned,
	                    sizeof assigned),
	    0);
	CU_ASSERT_STRING_EQUAL(assigned, "foo #2");
	peer_write(peer,
	    "{reply 3 {return -code 0 {{name foo port 1} {" FOO2_DICT "}}}}\n");
	CU_ASSERT_EQUAL_FATAL(commreg_list(c, "f*", &v, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(v[1].name, "foo #2");
	commreg_entries_free(v, n);
	peer_write(peer,
	    "{reply 4 {return -code 0 {entries 2 connections 3 "
	    "watches 0 uptime 61 messages 9 refused 0 version 0.1.0}}}\n");
	CU_ASSERT_EQUAL(commreg_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.entries, 2);
	CU_ASSERT_EQUAL(st.connections, 3);
	CU_ASSERT_EQUAL(st.uptime, 61);
	CU_ASSERT_STRING_EQUAL(st.version, "0.1.0");
	tbuf_init(&sent);
	peer_drain(peer, &sent);
	{
		char want[128];

		/* the registrant says its pid; the host only when given */
		snprintf(want, sizeof want,
		    "{send 2 {{Commreg/Register foo "
		    "5555 -pid %ld -host h}}}\n",
		    (long)getpid());
		CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, want));
	}
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(sent.p, "{send 3 {{Commreg/List f*}}}\n"));
	tbuf_free(&sent);
	commreg_close(c);
	close(peer);
}

/* -scope S goes out unless the scope is the default, user. */
static void
test_register_scope(void)
{
	struct commreg_client *c;
	struct tbuf sent;
	char assigned[64], want[160];
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{reply 2 {return -code 0 wide}}\n");
	CU_ASSERT_EQUAL(commreg_register_scope(c, "wide", 5555, NULL, "host",
	                    assigned, sizeof assigned),
	    0);
	CU_ASSERT_STRING_EQUAL(assigned, "wide");
	peer_write(peer, "{reply 3 {return -code 1 -errorinfo x -errorcode "
	                 "NONE {refused by the host gateway: no}}}\n");
	CU_ASSERT_EQUAL(commreg_register_scope(c, "all", 5555, "h", "global",
	                    assigned, sizeof assigned),
	    1);
	CU_ASSERT_STRING_EQUAL(commreg_error(c),
	    "refused by the host gateway: no");
	peer_write(peer, "{reply 4 {return -code 0 mine}}\n");
	CU_ASSERT_EQUAL(commreg_register_scope(c, "mine", 5555, NULL, "user",
	                    assigned, sizeof assigned),
	    0);
	peer_write(peer, "{reply 5 {return -code 0 also}}\n");
	CU_ASSERT_EQUAL(commreg_register_scope(c, "also", 5555, NULL, NULL,
	                    assigned, sizeof assigned),
	    0);
	tbuf_init(&sent);
	peer_drain(peer, &sent);
	snprintf(want, sizeof want,
	    "{send 2 {{Commreg/Register wide 5555 -pid %ld -scope host}}}\n",
	    (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, want));
	snprintf(want, sizeof want,
	    "{send 3 {{Commreg/Register all 5555 -pid %ld -host h -scope "
	    "global}}}\n",
	    (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, want));
	snprintf(want, sizeof want,
	    "{send 4 {{Commreg/Register mine 5555 -pid %ld}}}\n",
	    (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, want));
	snprintf(want, sizeof want,
	    "{send 5 {{Commreg/Register also 5555 -pid %ld}}}\n",
	    (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, want));
	tbuf_free(&sent);
	commreg_close(c);
	close(peer);
}

/*
 * The registry's liveness ping (a comm send of an empty script) is
 * answered with an empty result while a call waits, and the call gets
 * its own reply.
 */
static void
test_registry_ping_is_answered(void)
{
	struct commreg_client *c;
	struct tbuf r, sent;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{send 9 {}}\n"
	                 "{reply 2 {return -code 0 {1 h}}}\n");
	tbuf_init(&r);
	tbuf_init(&sent);
	CU_ASSERT_EQUAL(call_lookup(c, "x", &r), 0);
	CU_ASSERT_STRING_EQUAL(r.p, "1 h");
	peer_drain(peer, &sent);
	CU_ASSERT_PTR_NOT_NULL(strstr(sent.p, "{reply 9 {return -code 0 {}}}"));
	tbuf_free(&r);
	tbuf_free(&sent);
	commreg_close(c);
	close(peer);
}

/* Events beyond COMMREG_MAX_QUEUED_EVENTS not taken: the client gives
 * up, with a reason, and the events it holds can still be taken. */
static void
test_event_queue_is_bounded(void)
{
	struct commreg_client *c;
	struct commreg_event ev;
	struct tbuf msgs, r;
	pid_t pid;
	int peer, i, n = 0, rc, status;

	c = attached(&peer, 0, 10000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	tbuf_init(&msgs);
	for (i = 0; i <= COMMREG_MAX_QUEUED_EVENTS; i++)
		tbuf_printf(&msgs,
		    "{async %d {{Commreg/Event w add {name n%d}}}}\n", i + 10,
		    i);
	/* From a child: it is more than a socket buffer holds. */
	if ((pid = fork()) == 0) {
		peer_write(peer, msgs.p);
		child_done();
	}
	CU_ASSERT_FATAL(pid > 0);
	tbuf_init(&r);
	/* No reply comes: the call ends when the queue overflows. */
	CU_ASSERT_EQUAL(call_lookup(c, "x", &r), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(commreg_error(c), "events not taken"));
	while ((rc = commreg_next_event(c, 0, &ev)) == 1 &&
	       n <= COMMREG_MAX_QUEUED_EVENTS) {
		n++;
		commreg_event_clear(&ev);
	}
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_EQUAL(n, COMMREG_MAX_QUEUED_EVENTS);
	commreg_close(c);
	close(peer);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	tbuf_free(&r);
	tbuf_free(&msgs);
}

/* The blocking interface has no hook: such a command is dropped. */
static void
test_blocking_ignores_withdrawn(void)
{
	struct commreg_client *c;
	struct commreg_event ev;
	struct tbuf r;
	int peer;

	c = attached(&peer, 0, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	peer_write(peer, "{async 5 {{Commreg/Withdrawn wide gone}}}\n"
	                 "{reply 2 {return -code 0 {1 h}}}\n");
	tbuf_init(&r);
	CU_ASSERT_EQUAL(call_lookup(c, "x", &r), 0);
	CU_ASSERT_EQUAL(commreg_next_event(c, 0, &ev), 0);
	tbuf_free(&r);
	commreg_close(c);
	close(peer);
}

/* The peer at the port must prove it is a registry. */
static void
test_attach_refuses_non_registry(void)
{
	static const char *greet[] = {
	    /* a comm application without Commreg/Hello */
	    VERS_LINE "{reply 1 {return -code 1 -errorinfo x -errorcode "
	              "NONE {invalid command name \"Commreg/Hello\"}}}\n",
	    /* something answering, but not a registry */
	    VERS_LINE "{reply 1 {return -code 0 {registry other}}}\n",
	    /* an old comm */
	    "{vers 2}\n",
	};
	struct commreg_open_opts o;
	char err[256];
	size_t i;
	int sv[2];

	memset(&o, 0, sizeof o);
	o.reply_timeout_ms = 2000;
	for (i = 0; i < sizeof greet / sizeof greet[0]; i++) {
		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		peer_write(sv[1], greet[i]);
		err[0] = '\0';
		CU_ASSERT_PTR_NULL(commreg_attach(sv[0], &o, err, sizeof err));
		CU_ASSERT(err[0] != '\0');
		close(sv[1]);
	}
}

int
main(void)
{
	CU_pSuite s;
	unsigned int failures;

	signal(SIGPIPE, SIG_IGN);
	log_init("test_client", LOG_LVL_WARN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("client", NULL, NULL);
	CU_add_test(s, "entry_parse_full", test_entry_parse_full);
	CU_add_test(s, "entry_bind_entry_has_empty_fields",
	    test_entry_bind_entry_has_empty_fields);
	CU_add_test(s, "entry_parse_rejects_bad_dicts",
	    test_entry_parse_rejects_bad_dicts);
	CU_add_test(s, "entry_parse_user", test_entry_parse_user);
	CU_add_test(s, "entries_parse_list", test_entries_parse_list);
	CU_add_test(s, "attach_says_hello", test_attach_says_hello);
	CU_add_test(s, "call_ok_reply", test_call_ok_reply);
	CU_add_test(s, "call_error_reply", test_call_error_reply);
	CU_add_test(s, "async_before_reply_is_queued",
	    test_async_before_reply_is_queued);
	CU_add_test(s, "reply_split_across_writes",
	    test_reply_split_across_writes);
	CU_add_test(s, "oversize_reply_is_refused",
	    test_oversize_reply_is_refused);
	CU_add_test(s, "closed_connection", test_closed_connection);
	CU_add_test(s, "reply_timeout", test_reply_timeout);
	CU_add_test(s, "command_from_registry_gets_error_reply",
	    test_command_from_registry_gets_error_reply);
	CU_add_test(s, "helpers_register_and_list",
	    test_helpers_register_and_list);
	CU_add_test(s, "attach_refuses_non_registry",
	    test_attach_refuses_non_registry);
	CU_add_test(s, "register_scope", test_register_scope);
	CU_add_test(s, "registry_ping_is_answered",
	    test_registry_ping_is_answered);
	CU_add_test(s, "event_queue_is_bounded", test_event_queue_is_bounded);
	CU_add_test(s, "blocking_ignores_withdrawn",
	    test_blocking_ignores_withdrawn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures != 0;
}
