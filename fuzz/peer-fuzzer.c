/*
 * libFuzzer target for the peer engine (engine/peer.c) fed whatever a
 * peer may send, in both roles: the handshake (the offer "{3 2} PORT" to
 * an accepted peer, the answer "{vers 3}" to one we made), then framed
 * messages run through a small command table, replies matched to our
 * requests, and replies written in pieces.
 *
 * One end of a socketpair is an engine peer (a socket it reads itself,
 * or a bufferevent as a TLS link is); the input is written to the other
 * end in a few chunks and the event loop is turned a bounded number of
 * times (never waiting: the engine's deadlines do not come into it).  The
 * engine's end has a small send buffer, so that a peer that reads slowly
 * or not at all fills it and the output cap and the pacing of a reply in
 * pieces come into play.
 *
 * The first byte says the role (bit 0), how many chunks (bits 1-2),
 * whether our end is shut for writing after the last one (bit 3), how we
 * read (bits 4-5: everything, a little per turn, nothing until the end)
 * and whether the peer is a bufferevent (bit 6); the second seeds the
 * split points.
 *
 * Besides what ASan, UBSan and LSan catch: every hook runs as often as
 * the engine promises (gone once, each request's callback once), and
 * what the engine writes back frames as comm messages whose replies are
 * return commands and whose commands are literal, as any comm peer must
 * be able to read them.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "commwire.h"
#include "log.h"
#include "peer.h"
#include "tbuf.h"
#include "tcllist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNK_TURNS 3             /* turns of the loop after each chunk */
#define END_TURNS   20            /* and after the last one */
#define NREQ        2             /* our requests on the peer */
#define MAX_LATER   8             /* replies owed (Commreg/Later) */
#define MAX_ITEMS   3000          /* elements of a List or Many reply */
#define OUT_MAX     (1024 * 1024) /* what is kept of the peer's output */
#define SLOW_READ   512           /* bytes read per turn by a slow reader */
#define SNDBUF      4096          /* the engine's end's send buffer */

/* One input's world. */
struct run {
	struct event_base *base;
	struct engine eng;
	struct engine_limits lim;
	struct peer *p; /* NULL once gone */
	int ready;
	int gone;
	int answers[NREQ]; /* each request's callback ran */
	struct pending *later[MAX_LATER];
	size_t nlater;
	int streams;     /* made and not freed */
	size_t per_turn; /* read at most this per turn (SIZE_MAX: all) */
	struct tbuf out; /* what the peer wrote back */
	bool out_cut;    /* more than OUT_MAX of it */
};

/* The test stream: n elements, a few per call of next. */
struct test_stream {
	struct peer_stream ps;
	struct run *run;
	long next, n;
};

static void
discard_log(int level, const char *line, void *arg)
{
}

/* A count given as a command's argument: 0 .. MAX_ITEMS, else dflt. */
static long
count_arg(const struct tlist *w, long dflt)
{
	long v;
	char *end;

	if (w->n < 2)
		return dflt;
	v = strtol(w->v[1].p, &end, 10);
	if (end == w->v[1].p || *end != '\0' || v < 0 || v > MAX_ITEMS)
		return dflt;
	return v;
}

static void
item(struct tbuf *out, long i)
{
	char s[64];
	int n;

	n = snprintf(s, sizeof s, "element-%ld {of a listing}", i);
	tl_append(out, 0, s, (size_t)n);
}

static bool
stream_next(struct peer_stream *ps, struct tbuf *out, size_t budget)
{
	struct test_stream *s = (struct test_stream *)ps;

	/* Only a few per piece, so that a listing takes several. */
	while (s->next < s->n && out->len < budget && out->len < 2048)
		item(out, s->next++);
	return s->next == s->n;
}

static void
stream_free(struct peer_stream *ps)
{
	struct test_stream *s = (struct test_stream *)ps;

	s->run->streams--;
	free(s);
}

/* ---- the command table (sorted by name) --------------------------------- */

/* Commreg/Close: the handler drops the peer, then returns a reply. */
static int
cmd_close(struct cmd_ctx *c)
{
	peer_close(c->peer);
	tbuf_adds(c->result, "closed");
	return CMD_OK;
}

/* Commreg/Echo ?WORD ...?: the words, as a list, at once. */
static int
cmd_echo(struct cmd_ctx *c)
{
	size_t i;

	for (i = 1; i < c->words->n; i++)
		tl_append(c->result, 0, c->words->v[i].p, c->words->v[i].len);
	return CMD_OK;
}

/* Commreg/Fail ?WORD?: an error naming the word. */
static int
cmd_fail(struct cmd_ctx *c)
{
	tbuf_adds(c->result, "refused ");
	if (c->words->n > 1)
		tbuf_add_quoted(c->result, c->words->v[1].p,
		    c->words->v[1].len);
	return CMD_ERROR;
}

/* Commreg/Later: the reply is given after the loop has turned. */
static int
cmd_later(struct cmd_ctx *c)
{
	struct run *r = c->peer->arg;

	if (r->nlater == MAX_LATER) {
		tbuf_adds(c->result, "too many replies owed");
		return CMD_ERROR;
	}
	r->later[r->nlater++] = pending_new(c, NULL);
	return CMD_PENDING;
}

/* Commreg/List ?N?: N elements (3 when not given), in pieces. */
static int
cmd_list(struct cmd_ctx *c)
{
	struct run *r = c->peer->arg;
	struct test_stream *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		abort();
	s->ps.next = stream_next;
	s->ps.free = stream_free;
	s->run = r;
	s->n = count_arg(c->words, 3);
	r->streams++;
	return peer_reply_stream(c, &s->ps);
}

/* Commreg/Many ?N?: N elements (3 when not given), at once: a large
 * listed result, which the engine writes its own way. */
static int
cmd_many(struct cmd_ctx *c)
{
	long i, n = count_arg(c->words, 3);

	for (i = 0; i < n; i++)
		item(c->result, i);
	return CMD_OK;
}

/* Commreg/Note WORD ?WORD ...?: the words come back as an async command,
 * twice (the second from the engine's cache of the last one). */
static int
cmd_note(struct cmd_ctx *c)
{
	const char *w[16];
	size_t lens[16], i, n = c->words->n - 1;

	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		w[i] = c->words->v[i + 1].p;
		lens[i] = c->words->v[i + 1].len;
	}
	peer_send_async(c->peer, w, lens, n);
	peer_send_async(c->peer, w, lens, n);
	return CMD_OK;
}

static const struct cmd_entry table[] = {
    {"Commreg/Close", 0, 0, "", cmd_close},
    {"Commreg/Echo", 0, -1, "?word ...?", cmd_echo},
    {"Commreg/Fail", 0, 1, "?word?", cmd_fail},
    {"Commreg/Later", 0, 0, "", cmd_later},
    {"Commreg/List", 0, 1, "?count?", cmd_list},
    {"Commreg/Many", 0, 1, "?count?", cmd_many},
    {"Commreg/Note", 1, -1, "word ?word ...?", cmd_note},
};

static const struct cmd_entry *
find(const char *name, size_t len)
{
	return cmd_table_find(table, sizeof table / sizeof table[0], name, len);
}

/* ---- our requests and the peer's hooks ---------------------------------- */

static void
answered(struct peer *p, void *arg, int code, const char *result, size_t len)
{
	int *n = arg;

	if (code < -1 || code > 1 || (len > 0 && result == NULL))
		abort();
	(*n)++;
}

static void
ask(struct run *r, struct peer *p)
{
	static const char *hello[] = {"Commreg/Hello"};
	static const char *lookup[] = {"Commreg/Lookup", "svc \"x\" {y}"};

	/* One without a deadline, one with a deadline that never comes. */
	if (peer_request(p, hello, NULL, 1, 0, answered, &r->answers[0]) ==
	    NULL)
		abort();
	if (peer_request(p, lookup, NULL, 2, 60000, answered, &r->answers[1]) ==
	    NULL)
		abort();
}

static void
ready(struct peer *p)
{
	struct run *r = p->arg;

	if (r->ready++ != 0)
		abort();
	/* An accepted peer is asked once it has made its offer. */
	if (p->accepted)
		ask(r, p);
}

static void
gone(struct peer *p, const char *why)
{
	struct run *r = p->arg;

	if (r->gone++ != 0 || p != r->p)
		abort();
	if (why != NULL && strlen(why) > 300)
		abort();
	r->p = NULL;
}

static const struct peer_ops ops = {
    .find = find,
    .ready = ready,
    .gone = gone,
};

/* ---- driving it --------------------------------------------------------- */

/* The engine's end of the socketpair as a peer, with a small send
 * buffer: over the socket itself, or a bufferevent (as a TLS link). */
static struct peer *
make_peer(struct run *r, int fd, bool accepted, bool bev)
{
	struct bufferevent *be;
	int sndbuf = SNDBUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == -1)
		abort();
	if (!bev)
		return peer_new(&r->eng, fd, accepted, "fuzz", &r->lim, &ops,
		    r);
	if ((be = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL)
		abort();
	return peer_new_bev(&r->eng, be, accepted, "fuzz", &r->lim, &ops, r);
}

/* Read what the peer wrote, at most max bytes; keep the first OUT_MAX. */
static void
drain(struct run *r, int fd, size_t max)
{
	char buf[16384];
	ssize_t n;

	while (max > 0 &&
	       (n = read(fd, buf, max < sizeof buf ? max : sizeof buf)) > 0) {
		max -= (size_t)n;
		if (r->out.len + (size_t)n > OUT_MAX)
			r->out_cut = true;
		if (!r->out_cut)
			tbuf_add(&r->out, buf, (size_t)n);
	}
}

static void
turn(struct run *r, int fd, int times)
{
	int i;

	for (i = 0; i < times; i++) {
		event_base_loop(r->base, EVLOOP_NONBLOCK);
		drain(r, fd, r->per_turn);
	}
}

/* The engine's end may be closed already (the peer was dropped): no
 * SIGPIPE for that. */
static void
feed(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* closed, or full (an input is far smaller) */
		p += n;
		len -= (size_t)n;
	}
}

/*
 * Everything the engine wrote must read as comm messages: a reply a
 * return command, a command literal words.  (It may end in the middle of
 * a message where the peer was dropped.)
 */
static void
check_output(const struct run *r)
{
	struct comm_framer f;
	struct tlist msg, words, frags;
	struct tbuf scratch, err;
	struct tl_elem result;
	const char *why;
	size_t off = 0, used;
	int code, st;

	if (r->out_cut)
		return;
	comm_framer_init(&f, OUT_MAX);
	tlist_init(&msg);
	tlist_init(&words);
	tlist_init(&frags);
	tbuf_init(&scratch);
	tbuf_init(&err);
	while (off < r->out.len) {
		st = comm_frame_next(&f, r->out.p + off, r->out.len - off,
		    &used, &msg, &why);
		if (st == COMM_FRAME_ERROR)
			abort();
		if (st != COMM_FRAME_OK)
			break;
		off += used;
		if (msg.n != 3)
			continue; /* the handshake */
		if (strcmp(msg.v[0].p, "reply") == 0 ||
		    strcmp(msg.v[0].p, "callback") == 0) {
			if (tlist_parse(&words, msg.v[2].p, msg.v[2].len,
			        &why) == -1 ||
			    comm_parse_return(&words, &code, &result) == -1)
				abort();
		} else if (strcmp(msg.v[0].p, "send") == 0 ||
		           strcmp(msg.v[0].p, "async") == 0) {
			if (comm_payload_command(msg.v[2].p, msg.v[2].len,
			        &frags, &scratch, &words, &err) == -1)
				abort();
		} else
			abort();
	}
	tlist_free(&msg);
	tlist_free(&words);
	tlist_free(&frags);
	tbuf_free(&scratch);
	tbuf_free(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once;
	struct run r;
	size_t cut[4], nchunks, i, j, t;
	uint32_t seed;
	bool accepted, shut, bev;
	int reader, sv[2];

	if (!once) {
		/* Every line is formatted (its words from the peer), none
		 * is printed. */
		log_set_level(LOG_LVL_DEBUG);
		log_set_sink(discard_log, NULL);
		once = true;
	}
	if (size < 2)
		return 0;
	accepted = data[0] & 1;
	nchunks = 1 + ((data[0] >> 1) & 3);
	shut = (data[0] >> 3) & 1;
	reader = (data[0] >> 4) & 3;
	bev = (data[0] >> 6) & 1;
	seed = data[1] * 2654435761u + 1;
	data += 2;
	size -= 2;

	/* Split points, in order. */
	cut[0] = 0;
	for (i = 1; i < nchunks; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		cut[i] = size > 0 ? seed % (size + 1) : 0;
		for (j = i; j > 1 && cut[j - 1] > cut[j]; j--) {
			t = cut[j];
			cut[j] = cut[j - 1];
			cut[j - 1] = t;
		}
	}

	memset(&r, 0, sizeof r);
	tbuf_init(&r.out);
	r.per_turn = reader == 2 ? SLOW_READ : reader == 3 ? 0 : SIZE_MAX;
	if ((r.base = event_base_new()) == NULL)
		abort();
	if (engine_init(&r.eng, r.base) == -1)
		abort();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		abort();
	engine_default_limits(&r.lim);
	r.lim.max_message = 4096;
	r.lim.max_output = 65536;
	r.p = make_peer(&r, sv[0], accepted, bev);
	if (!accepted)
		ask(&r, r.p);

	for (i = 0; i < nchunks; i++) {
		size_t end = i + 1 < nchunks ? cut[i + 1] : size;

		feed(sv[1], data + cut[i], end - cut[i]);
		turn(&r, sv[1], CHUNK_TURNS);
	}
	if (shut)
		shutdown(sv[1], SHUT_WR);
	turn(&r, sv[1], END_TURNS);

	/* The replies owed: to a peer still there, or to nobody. */
	for (i = 0; i < r.nlater; i++)
		pending_reply(r.later[i], (int)(i & 1), "later", 5);
	turn(&r, sv[1], 2);

	engine_free(&r.eng);
	event_base_free(r.base);
	drain(&r, sv[1], SIZE_MAX);
	close(sv[1]);

	if (r.gone != 1 || r.p != NULL || r.streams != 0)
		abort();
	for (i = 0; i < NREQ; i++)
		if (r.answers[i] != (accepted && r.ready == 0 ? 0 : 1))
			abort();
	check_output(&r);
	tbuf_free(&r.out);
	return 0;
}
