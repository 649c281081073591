/*
 * The comm wire protocol, version 3 (tcllib's comm_wire; docs/protocol.md
 * §1): framing, the handshake, and the shape of send/async/command/reply/
 * callback messages.  Used by every daemon and by the client library.
 *
 * The byte stream is one Tcl list whose elements are the messages, each
 * followed by LF.  A message is complete when its first list element is
 * complete and followed by whitespace; CR counts as whitespace because Tcl
 * writes CRLF on sockets unless told otherwise.  The framer keeps its scan
 * position between calls, so a message split at any byte costs one pass,
 * and it enforces a hard size limit: a peer that sends more than `max`
 * bytes without completing a message is an error, not an allocation.
 */
#ifndef WIRE_COMMWIRE_H
#define WIRE_COMMWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbuf.h"
#include "tcllist.h"

#define COMM_DEFAULT_MAX_MESSAGE (64 * 1024)

enum comm_frame_status {
	COMM_FRAME_ERROR = -1,
	COMM_FRAME_MORE = 0, /* need more bytes */
	COMM_FRAME_OK = 1,
};

struct comm_framer {
	size_t max; /* hard limit on one message, bytes */
	/* incremental scan state over the caller's buffer */
	size_t pos;   /* next byte to look at */
	size_t start; /* first byte of the element (after whitespace) */
	int state;
	int depth;
	/* In a braced message: the last '{' opening, and the last '}'
	 * closing, an element of the message itself (depth 1 <-> 2). */
	size_t open1, close1;
};

void comm_framer_init(struct comm_framer *, size_t max);

/*
 * Find the next message at the start of buf[0..len), which must be the same
 * bytes as last call plus whatever arrived since (minus what an OK result
 * told the caller to consume).  On COMM_FRAME_OK, *consumed is how many
 * bytes to drop from the front, and msg holds the message's words (parsed
 * as a list).  On COMM_FRAME_ERROR *err says why (oversize, bad list).
 */
enum comm_frame_status comm_frame_next(struct comm_framer *, const char *buf,
    size_t len, size_t *consumed, struct tlist *msg, const char **err);

/*
 * The client's first line, "{3 2} PORT\n" (not wrapped in another list):
 * read up to LF, parse as a list.  Same contract as comm_frame_next.
 */
enum comm_frame_status comm_frame_line(struct comm_framer *, const char *buf,
    size_t len, size_t *consumed, struct tlist *msg, const char **err);

/* The formatters append to out.  Out of memory under the library's
 * policy (tbuf.h) leaves out failed: its sender checks out->failed and
 * sends nothing of it. */

/* Handshake.  Client: "3 PORT\n" (the list {3} PORT).  Server:
 * "{vers 3}\n". */
void comm_format_hello(struct tbuf *out, int listen_port);
void comm_format_vers(struct tbuf *out, int version);

/*
 * A message kind SERIAL PAYLOAD, wrapped once more and ended with LF, as
 * comm writes it: puts $fid [list [list $cmd $ser $payload]].
 * For send/async/command, payload is a list of script fragments; the usual
 * form is one fragment holding the command as a list.
 */
void comm_format_message(struct tbuf *out, const char *kind, int64_t serial,
    const char *payload, size_t plen);

/* Build the payload list {{word word ...}} for a command given as words. */
void comm_format_command(struct tbuf *payload, const char *const *words,
    const size_t *lens, size_t n);

/*
 * A reply (or callback) with the return script comm expects:
 *   return -code 0 RESULT
 *   return -code 1 -errorinfo INFO -errorcode CODE RESULT
 * errorinfo NULL means "use result"; errorcode NULL means NONE.
 */
void comm_format_reply(struct tbuf *out, const char *kind, int64_t serial,
    int code, const char *result, size_t rlen, const char *errorcode);
/* The same for a result that is a list written by tl_append (a tbuf with
 * listed == len, tbuf.h): the same bytes, without scanning the result. */
void comm_format_reply_list(struct tbuf *out, const char *kind, int64_t serial,
    int code, const char *result, size_t rlen, const char *errorcode);

/*
 * A reply with code 0 whose result is a list written by tl_append, as
 * three pieces: head, then the result's own bytes, then tail are the
 * bytes comm_format_reply_list writes, so the result need not be copied
 * (the server writes the three with writev).  Appends to head and tail;
 * false, with nothing appended, when the result is not written as it is
 * (no space in it: it may need quoting).
 */
bool comm_format_reply_parts(struct tbuf *head, struct tbuf *tail,
    const char *kind, int64_t serial, const char *result, size_t rlen);

/*
 * Decode a reply payload "return -code N ?-opt val ...? RESULT" (already
 * split into words).  Sets *code and *result (pointing into the tlist).
 * Returns -1 if the payload is not a plain return command.
 */
int comm_parse_return(const struct tlist *words, int *code,
    struct tl_elem *result);

/*
 * Turn a received send/async/command payload into the words of one literal
 * command: concat the fragments as Tcl's uplevel does, then parse with
 * tl_parse_command (refusing substitution).  scratch is reused memory.
 * Returns -1 with a message for the peer in err.
 */
int comm_payload_command(const char *payload, size_t plen, struct tlist *frags,
    struct tbuf *scratch, struct tlist *words, struct tbuf *err);

#endif
