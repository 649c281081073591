/*
 * libFuzzer target for everything a peer's bytes go through: the comm
 * framer (fed in chunks of varying size, as the network would), the Tcl
 * list parser, the literal-command parser, and the list formatter, which
 * must re-parse to the same elements it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "commwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_round_trip(const struct tlist *l)
{
	struct tbuf out;
	struct tlist again;
	const char *err;
	size_t i;

	tbuf_init(&out);
	tlist_init(&again);
	for (i = 0; i < l->n; i++)
		tl_append(&out, 0, l->v[i].p, l->v[i].len);
	if (tlist_parse(&again, out.p, out.len, &err) != 0 || again.n != l->n)
		abort();
	for (i = 0; i < l->n; i++) {
		if (again.v[i].len != l->v[i].len ||
		    memcmp(again.v[i].p, l->v[i].p, l->v[i].len) != 0)
			abort();
	}
	tlist_free(&again);
	tbuf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct comm_framer f;
	struct tlist msg, frags, words;
	struct tbuf buf, scratch, err;
	const char *e;
	size_t chunk, fed = 0, consumed;
	int st;

	if (size == 0)
		return 0;
	chunk = (data[0] % 16) + 1;
	data++;
	size--;

	tlist_init(&msg);
	tlist_init(&frags);
	tlist_init(&words);
	tbuf_init(&buf);
	tbuf_init(&scratch);
	tbuf_init(&err);

	if (tlist_parse(&msg, (const char *)data, size, &e) == 0)
		check_round_trip(&msg);

	comm_framer_init(&f, 1024);
	while (fed < size) {
		size_t take = size - fed < chunk ? size - fed : chunk;

		tbuf_add(&buf, data + fed, take);
		fed += take;
		for (;;) {
			st = comm_frame_next(&f, buf.p, buf.len, &consumed,
			    &msg, &e);
			if (st != COMM_FRAME_OK)
				break;
			if (consumed > buf.len)
				abort();
			if (msg.n == 3)
				(void)comm_payload_command(msg.v[2].p,
				    msg.v[2].len, &frags, &scratch, &words,
				    &err);
			tbuf_consume(&buf, consumed);
		}
		if (st == COMM_FRAME_ERROR)
			break;
	}

	tlist_free(&msg);
	tlist_free(&frags);
	tlist_free(&words);
	tbuf_free(&buf);
	tbuf_free(&scratch);
	tbuf_free(&err);
	return 0;
}
