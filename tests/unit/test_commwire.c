/*
 * comm wire framing and message shapes (wire/commwire.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "commwire.h"

/* Feed `stream` to a framer in chunks of `chunk` bytes (0: all at once)
 * and collect every message as its re-formatted words joined by '|'. */
static int
frame_all(const char *stream, size_t len, size_t chunk, size_t max,
    struct tbuf *got, const char **errp)
{
	struct comm_framer f;
	struct tlist msg;
	struct tbuf buf;
	size_t fed = 0, consumed, i;
	const char *err = NULL;
	int n = 0, st;

	comm_framer_init(&f, max);
	tlist_init(&msg);
	tbuf_init(&buf);
	tbuf_reset(got);
	while (fed < len || buf.len > 0) {
		size_t take = chunk == 0
		                  ? len - fed
		                  : (len - fed < chunk ? len - fed : chunk);

		tbuf_add(&buf, stream + fed, take);
		fed += take;
		for (;;) {
			st = comm_frame_next(&f, buf.p, buf.len, &consumed,
			    &msg, &err);
			if (st == COMM_FRAME_ERROR) {
				*errp = err;
				n = -1;
				goto out;
			}
			if (st == COMM_FRAME_MORE)
				break;
			for (i = 0; i < msg.n; i++) {
				if (i > 0)
					tbuf_addc(got, '|');
				tbuf_add(got, msg.v[i].p, msg.v[i].len);
			}
			tbuf_addc(got, '\n');
			tbuf_consume(&buf, consumed);
			n++;
		}
		if (take == 0)
			break;
	}
out:
	tlist_free(&msg);
	tbuf_free(&buf);
	return n;
}

static void
test_split_at_every_byte(void)
{
	const char *s = "{send 8 {{Bind app {5555 host}}}}\n"
	                "{send 9 {Search *}}\r\n"
	                "{async 10 {{Search/Continuous/Start t {a\\}b}}}}\n";
	const char *want = "send|8|{Bind app {5555 host}}\n"
	                   "send|9|Search *\n"
	                   "async|10|{Search/Continuous/Start t {a\\}b}}\n";
	struct tbuf got;
	const char *err = NULL;
	size_t chunk;

	tbuf_init(&got);
	for (chunk = 0; chunk <= strlen(s); chunk++) {
		CU_ASSERT_EQUAL_FATAL(frame_all(s, strlen(s), chunk, 4096, &got,
		                          &err),
		    3);
		CU_ASSERT_STRING_EQUAL(got.p, want);
	}
	tbuf_free(&got);
}

static void
test_many_in_one_read(void)
{
	struct tbuf s, got;
	const char *err = NULL;
	int i;

	tbuf_init(&s);
	tbuf_init(&got);
	for (i = 0; i < 1000; i++)
		tbuf_printf(&s, "{send %d {{Search *}}}\n", i);
	CU_ASSERT_EQUAL(frame_all(s.p, s.len, 0, 4096, &got, &err), 1000);
	tbuf_free(&s);
	tbuf_free(&got);
}

static void
test_oversize_is_an_error(void)
{
	struct tbuf s, got;
	const char *err = NULL;

	tbuf_init(&s);
	tbuf_init(&got);
	tbuf_adds(&s, "{send 1 {{Bind x ");
	while (s.len < 5000)
		tbuf_adds(&s, "aaaaaaaaaa");
	/* never closed: the framer must give up at the limit, not wait */
	CU_ASSERT_EQUAL(frame_all(s.p, s.len, 100, 4096, &got, &err), -1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "4096"));
	/* exactly at the limit is fine */
	tbuf_reset(&s);
	tbuf_adds(&s, "{send 1 {Search *}}\n");
	CU_ASSERT_EQUAL(frame_all(s.p, s.len, 0, s.len, &got, &err), 1);
	tbuf_free(&s);
	tbuf_free(&got);
}

static void
test_garbage_after_brace(void)
{
	const char *err = NULL;
	struct tbuf got;

	tbuf_init(&got);
	CU_ASSERT_EQUAL(frame_all("{send 1 x}y\n", 12, 0, 4096, &got, &err),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(err);
	/* an element that is complete but whose inside is not a list */
	CU_ASSERT_EQUAL(frame_all("{send 1 {a}b}\n", 14, 0, 4096, &got, &err),
	    -1);
	tbuf_free(&got);
}

static void
test_bare_and_quoted_elements(void)
{
	const char *err = NULL;
	struct tbuf got;

	tbuf_init(&got);
	CU_ASSERT_EQUAL(frame_all("\"send 1 {Search a}\"\nvers\\ 3\n", 28, 1,
	                    4096, &got, &err),
	    2);
	CU_ASSERT_STRING_EQUAL(got.p, "send|1|Search a\nvers|3\n");
	tbuf_free(&got);
}

static void
test_handshake_line(void)
{
	struct comm_framer f;
	struct tlist msg;
	const char *err = NULL;
	size_t consumed = 0;

	comm_framer_init(&f, 64);
	tlist_init(&msg);
	CU_ASSERT_EQUAL(comm_frame_line(&f, "{3 2} 4", 7, &consumed, &msg,
	                    &err),
	    COMM_FRAME_MORE);
	CU_ASSERT_EQUAL(comm_frame_line(&f, "{3 2} 4711\r\n{vers", 17,
	                    &consumed, &msg, &err),
	    COMM_FRAME_OK);
	CU_ASSERT_EQUAL(consumed, 12);
	CU_ASSERT_EQUAL_FATAL(msg.n, 2);
	CU_ASSERT_STRING_EQUAL(msg.v[0].p, "3 2");
	CU_ASSERT_STRING_EQUAL(msg.v[1].p, "4711");
	{
		char big[100];

		memset(big, 'x', sizeof big);
		CU_ASSERT_EQUAL(comm_frame_line(&f, big, sizeof big, &consumed,
		                    &msg, &err),
		    COMM_FRAME_ERROR);
	}
	tlist_free(&msg);
}

static void
test_formats_match_comm(void)
{
	struct tbuf out, payload;
	const char *w[] = {"Bind", "app", "5555 host"};

	tbuf_init(&out);
	tbuf_init(&payload);
	comm_format_command(&payload, w, NULL, 3);
	CU_ASSERT_STRING_EQUAL(payload.p, "{Bind app {5555 host}}");
	comm_format_message(&out, "send", 8, payload.p, payload.len);
	CU_ASSERT_STRING_EQUAL(out.p, "{send 8 {{Bind app {5555 host}}}}\n");
	tbuf_reset(&out);
	comm_format_reply(&out, "reply", 3, 0, "", 0, NULL);
	CU_ASSERT_STRING_EQUAL(out.p, "{reply 3 {return -code 0 {}}}\n");
	tbuf_reset(&out);
	comm_format_vers(&out, 3);
	CU_ASSERT_STRING_EQUAL(out.p, "{vers 3}\n");
	tbuf_reset(&out);
	comm_format_hello(&out, 0);
	CU_ASSERT_STRING_EQUAL(out.p, "3 0\n");
	tbuf_free(&out);
	tbuf_free(&payload);
}

static void
test_reply_round_trip(void)
{
	struct tbuf out;
	struct tlist msg, ret;
	struct comm_framer f;
	struct tl_elem result;
	const char *err = NULL;
	size_t consumed;
	int code = -1;

	tbuf_init(&out);
	tlist_init(&msg);
	tlist_init(&ret);
	comm_format_reply(&out, "reply", 12, 1, "Name \"a b\" is {bound", 20,
	    NULL);
	comm_framer_init(&f, 4096);
	CU_ASSERT_EQUAL_FATAL(comm_frame_next(&f, out.p, out.len, &consumed,
	                          &msg, &err),
	    COMM_FRAME_OK);
	CU_ASSERT_EQUAL(consumed, out.len);
	CU_ASSERT_EQUAL_FATAL(msg.n, 3);
	CU_ASSERT_STRING_EQUAL(msg.v[0].p, "reply");
	CU_ASSERT_STRING_EQUAL(msg.v[1].p, "12");
	CU_ASSERT_EQUAL_FATAL(tlist_parse(&ret, msg.v[2].p, msg.v[2].len, &err),
	    0);
	CU_ASSERT_EQUAL_FATAL(comm_parse_return(&ret, &code, &result), 0);
	CU_ASSERT_EQUAL(code, 1);
	CU_ASSERT_STRING_EQUAL(result.p, "Name \"a b\" is {bound");
	tlist_free(&msg);
	tlist_free(&ret);
	tbuf_free(&out);
}

static int
payload_words(const char *payload, struct tlist *words, struct tbuf *err)
{
	struct tlist frags;
	struct tbuf scratch;
	int rc;

	tlist_init(&frags);
	tbuf_init(&scratch);
	rc = comm_payload_command(payload, strlen(payload), &frags, &scratch,
	    words, err);
	tlist_free(&frags);
	tbuf_free(&scratch);
	return rc;
}

static void
test_payload_forms(void)
{
	struct tlist w;
	struct tbuf err;

	tlist_init(&w);
	tbuf_init(&err);
	/* nameserv's form: one fragment holding the command as a list */
	CU_ASSERT_EQUAL_FATAL(payload_words("{Bind app {5555 host}}", &w, &err),
	    0);
	CU_ASSERT_EQUAL_FATAL(w.n, 3);
	CU_ASSERT_STRING_EQUAL(w.v[2].p, "5555 host");
	/* comm::comm send $id Search *: fragments concatenated */
	CU_ASSERT_EQUAL_FATAL(payload_words("Search *", &w, &err), 0);
	CU_ASSERT_EQUAL_FATAL(w.n, 2);
	CU_ASSERT_STRING_EQUAL(w.v[1].p, "*");
	/* array {get tcl_platform}: concat flattens one level, as Tcl */
	CU_ASSERT_EQUAL_FATAL(payload_words("Search {a b}", &w, &err), 0);
	CU_ASSERT_EQUAL(w.n, 3);
	/* substitution at either level is refused, never performed */
	CU_ASSERT_EQUAL(payload_words("{Search [exit]}", &w, &err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.p, "substitution"));
	CU_ASSERT_EQUAL(payload_words("Search $x", &w, &err), -1);
	CU_ASSERT_EQUAL(payload_words("{Search a; exit}", &w, &err), -1);
	/* "comm send $id Search \$x" reaches Tcl's uplevel as "Search $x",
	 * which Tcl would substitute: refused, as at the first level */
	CU_ASSERT_EQUAL(payload_words("Search \\$x", &w, &err), -1);
	/* the list form keeps a literal dollar literal */
	CU_ASSERT_EQUAL_FATAL(payload_words("{Search {$x}}", &w, &err), 0);
	CU_ASSERT_STRING_EQUAL(w.v[1].p, "$x");
	tlist_free(&w);
	tbuf_free(&err);
}

int
main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("commwire", NULL, NULL);
	CU_add_test(s, "a stream split at every byte frames the same",
	    test_split_at_every_byte);
	CU_add_test(s, "a thousand messages in one read",
	    test_many_in_one_read);
	CU_add_test(s, "an oversize message is an error at the limit",
	    test_oversize_is_an_error);
	CU_add_test(s, "garbage after a braced message is an error",
	    test_garbage_after_brace);
	CU_add_test(s, "bare and quoted stream elements",
	    test_bare_and_quoted_elements);
	CU_add_test(s, "the handshake line, CRLF and limit",
	    test_handshake_line);
	CU_add_test(s, "messages are written as comm writes them",
	    test_formats_match_comm);
	CU_add_test(s, "an error reply round-trips", test_reply_round_trip);
	CU_add_test(s, "payload forms and refused substitution",
	    test_payload_forms);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	{
		int failed = CU_get_number_of_failures() || CU_get_error();

		CU_cleanup_registry();
		return failed ? 1 : 0;
	}
}
