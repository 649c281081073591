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

static unsigned long rnd_state = 20240611;

static unsigned
rnd(unsigned n)
{
	rnd_state = rnd_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)((rnd_state >> 33) % n);
}

/* Random text, from plain to dense in what Tcl quotes. */
static void
rnd_text(struct tbuf *t, size_t max)
{
	static const char special[] = "{}\\\\\"][$; \t\n\r#";
	size_t len = rnd(3) == 0 ? rnd(20) : rnd((unsigned)max), i;
	unsigned density = 1 + rnd(40);

	tbuf_reset(t);
	for (i = 0; i < len; i++) {
		if (rnd(density) == 0)
			tbuf_addc(t, special[rnd(sizeof special - 1)]);
		else if (rnd(100) == 0)
			tbuf_addc(t, (char)rnd(256));
		else
			tbuf_addc(t, (char)('a' + rnd(26)));
	}
}

/*
 * The formatters write the two outer list levels without scanning them
 * (commwire.c says why).  Reference: every level quoted by tl_append, as
 * Tcl_Merge would, which is how they were written before.
 */
static void
ref_message(struct tbuf *out, const char *kind, int64_t serial,
    const char *payload, size_t plen)
{
	struct tbuf m;

	tbuf_init(&m);
	tl_append_str(&m, 0, kind);
	tl_append_int(&m, 0, serial);
	tl_append(&m, 0, payload, plen);
	tl_append(out, out->len, m.p, m.len);
	tbuf_addc(out, '\n');
	tbuf_free(&m);
}

static void
ref_reply(struct tbuf *out, const char *kind, int64_t serial, int code,
    const char *result, size_t rlen, const char *errorcode)
{
	struct tbuf r;

	tbuf_init(&r);
	tl_append_str(&r, 0, "return");
	tl_append_str(&r, 0, "-code");
	tl_append_int(&r, 0, code);
	if (code == 1) {
		tl_append_str(&r, 0, "-errorinfo");
		tl_append(&r, 0, result, rlen);
		tl_append_str(&r, 0, "-errorcode");
		tl_append_str(&r, 0, errorcode ? errorcode : "NONE");
	}
	tl_append(&r, 0, result, rlen);
	ref_message(out, kind, serial, r.p, r.len);
	tbuf_free(&r);
}

static void
test_formats_random(void)
{
	static const char *const kinds[] = {"send", "async", "reply",
	    "callback", "#x", "", "a b", "{"};
	struct tbuf got, want, t, w2, payload, lst;
	const char *words[3], *ec;
	size_t lens[3], bad = 0;
	int64_t serial;
	int k, j, code;

	tbuf_init(&got);
	tbuf_init(&want);
	tbuf_init(&t);
	tbuf_init(&w2);
	tbuf_init(&payload);
	tbuf_init(&lst);
	for (k = 0; k < 50000; k++) {
		const char *kind = kinds[rnd(sizeof kinds / sizeof kinds[0])];

		serial =
		    rnd(4) == 0 ? -(int64_t)rnd(1000) : (int64_t)rnd(1u << 31);
		rnd_text(&t, 300);
		/* Sometimes after an earlier message, as in an out buffer. */
		tbuf_reset(&got);
		tbuf_reset(&want);
		if (rnd(2)) {
			tbuf_adds(&got, "{x}\n");
			tbuf_adds(&want, "{x}\n");
		}
		switch (rnd(4)) {
		case 0: /* a raw payload */
			comm_format_message(&got, kind, serial, t.p, t.len);
			ref_message(&want, kind, serial, t.p, t.len);
			break;
		case 1: /* a command, as peer_send_async makes it */
			rnd_text(&w2, 40);
			words[0] = "Commreg/Event";
			lens[0] = 13;
			words[1] = w2.p;
			lens[1] = w2.len;
			words[2] = t.p;
			lens[2] = t.len;
			tbuf_reset(&payload);
			comm_format_command(&payload, words, lens, 3);
			/* The payload: the command list, quoted once more. */
			tbuf_reset(&lst);
			for (j = 0; j < 3; j++)
				tl_append(&lst, 0, words[j], lens[j]);
			tbuf_reset(&w2);
			tl_append(&w2, 0, lst.p, lst.len);
			if (w2.len != payload.len ||
			    memcmp(w2.p, payload.p, w2.len) != 0)
				bad++;
			comm_format_message(&got, kind, serial, payload.p,
			    payload.len);
			ref_message(&want, kind, serial, payload.p,
			    payload.len);
			break;
		case 2:
			code = (int)rnd(3);
			rnd_text(&w2, 20);
			ec = rnd(2) ? w2.p : NULL;
			comm_format_reply(&got, kind, serial, code, t.p, t.len,
			    ec);
			ref_reply(&want, kind, serial, code, t.p, t.len, ec);
			break;
		default: /* a result that is a list tl_append wrote */
			code = (int)rnd(3);
			tbuf_reset(&lst);
			for (j = (int)rnd(5); j > 0; j--) {
				rnd_text(&w2, 60);
				tl_append(&lst, 0, w2.p, w2.len);
			}
			CU_ASSERT_EQUAL(lst.listed, lst.len);
			comm_format_reply_list(&got, kind, serial, code, lst.p,
			    lst.len, NULL);
			ref_reply(&want, kind, serial, code, lst.p, lst.len,
			    NULL);
			break;
		}
		if (got.len != want.len || memcmp(got.p, want.p, got.len) != 0)
			if (bad++ < 5)
				fprintf(stderr, "differs:\n%s%s", got.p,
				    want.p);
	}
	CU_ASSERT_EQUAL(bad, 0);
	tbuf_free(&got);
	tbuf_free(&want);
	tbuf_free(&t);
	tbuf_free(&w2);
	tbuf_free(&payload);
	tbuf_free(&lst);
}

/*
 * The server formats a notification once and splices each watcher's
 * serial in (local/server.c, peer_send_async): the message for serial S
 * must be "{async ", S, then what follows "{async 0" in the message for
 * serial 0, whatever the payload.
 */
static void
test_serial_splice(void)
{
	struct tbuf t, zero, got, want;
	char digits[TL_INT_MAX];
	int64_t serial;
	size_t bad = 0;
	int k;

	tbuf_init(&t);
	tbuf_init(&zero);
	tbuf_init(&got);
	tbuf_init(&want);
	for (k = 0; k < 20000; k++) {
		rnd_text(&t, 300);
		serial =
		    rnd(3) == 0 ? (int64_t)rnd(10) : (int64_t)rnd(1u << 31);
		tbuf_reset(&zero);
		comm_format_message(&zero, "async", 0, t.p, t.len);
		CU_ASSERT_FATAL(
		    zero.len > 8 && memcmp(zero.p, "{async 0", 8) == 0);
		tbuf_reset(&got);
		tbuf_adds(&got, "{async ");
		tbuf_add(&got, digits, tl_format_int(digits, serial));
		tbuf_add(&got, zero.p + 8, zero.len - 8);
		tbuf_reset(&want);
		comm_format_message(&want, "async", serial, t.p, t.len);
		if (got.len != want.len || memcmp(got.p, want.p, got.len) != 0)
			bad++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	tbuf_free(&t);
	tbuf_free(&zero);
	tbuf_free(&got);
	tbuf_free(&want);
}

/*
 * Big messages dense in braces, fed whole, in random chunks and a byte at
 * a time, with limits around their size: the framer jumps from brace to
 * brace, and must find the same messages and the same limit errors.
 */
static void
test_frame_random(void)
{
	struct tbuf stream, t, got0, got;
	const char *err = NULL;
	size_t max, chunk;
	int k, i, n0, n;

	tbuf_init(&stream);
	tbuf_init(&t);
	tbuf_init(&got0);
	tbuf_init(&got);
	for (k = 0; k < 300; k++) {
		tbuf_reset(&stream);
		for (i = 0; i < 4; i++) {
			rnd_text(&t, 2000);
			if (k % 5 == 0) {
				/* Nested deeper than a 64-byte block is long.
				 */
				int d, deep = 60 + (int)rnd(100);

				tbuf_reset(&t);
				for (d = 0; d < deep; d++)
					tbuf_adds(&t, rnd(4) ? "{a " : "{");
				for (d = 0; d < deep; d++)
					tbuf_adds(&t, rnd(3) ? "} b" : "}");
			}
			comm_format_reply(&stream, "reply", i, (int)rnd(2), t.p,
			    t.len, NULL);
		}
		/* Each message alone: the words must be what tlist_parse
		 * makes of the braced element, in one pass or two. */
		{
			struct comm_framer f;
			struct tlist m, ref;
			size_t off = 0, used;
			const char *e1 = NULL, *e2 = NULL;

			comm_framer_init(&f, 1 << 20);
			tlist_init(&m);
			tlist_init(&ref);
			while (off < stream.len &&
			       comm_frame_next(&f, stream.p + off,
			           stream.len - off, &used, &m,
			           &e1) == COMM_FRAME_OK) {
				CU_ASSERT_FATAL(stream.p[off] == '{');
				CU_ASSERT_FATAL(
				    tlist_parse(&ref, stream.p + off + 1,
				        used - 3, &e2) == 0);
				CU_ASSERT(m.n == ref.n);
				for (i = 0; i < (int)m.n && i < (int)ref.n; i++)
					CU_ASSERT(m.v[i].len == ref.v[i].len &&
					          memcmp(m.v[i].p, ref.v[i].p,
					              m.v[i].len) == 0);
				off += used;
			}
			CU_ASSERT_EQUAL(off, stream.len);
			tlist_free(&m);
			tlist_free(&ref);
		}
		max = rnd(2) ? 1 << 20 : 100 + rnd(6000);
		n0 = frame_all(stream.p, stream.len, 0, max, &got0, &err);
		chunk = 1 + rnd(k % 10 == 0 ? 1 : 200);
		n = frame_all(stream.p, stream.len, chunk, max, &got, &err);
		CU_ASSERT_EQUAL(n, n0);
		if (n0 == 4)
			CU_ASSERT(got.len == got0.len &&
			          memcmp(got.p, got0.p, got.len) == 0);
		if (max == 1 << 20)
			CU_ASSERT_EQUAL(n0, 4);
	}
	tbuf_free(&stream);
	tbuf_free(&t);
	tbuf_free(&got0);
	tbuf_free(&got);
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
	CU_add_test(s, "formats equal Tcl_Merge at every level, random",
	    test_formats_random);
	CU_add_test(s, "big random messages frame alike in any chunks",
	    test_frame_random);
	CU_add_test(s, "a serial spliced into a formatted notification",
	    test_serial_splice);
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
