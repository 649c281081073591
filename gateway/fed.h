/*
 * Federation: this gateway's links with other gateways over TLS
 * (docs/federation.md, ARCHITECTURE §1, §4, §7).
 *
 * Every link is one TLS connection carrying the comm wire protocol, both
 * ends presenting a certificate of the configured CA.  A gateway
 * connects to each [remote] and imports over that connection (it watches
 * what the other exports to it); it accepts connections on `listen` and
 * exports over those.  Entries travel with their path, the gateways they
 * came through, origin first: nothing goes back to a gateway on its path,
 * and what was learned from one remote is passed to another only when
 * that remote's section says reexport = yes.  Everything learned over a
 * link is soft state: it goes the moment the link does, and comes back
 * with the full resynchronisation of the next link.
 */
#ifndef GATEWAY_FED_H
#define GATEWAY_FED_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "gwconf.h"
#include "server.h"

struct gateway;
struct fed;

/*
 * The gateway's TLS context, made of the PEM texts the configuration read
 * (gwconf.h: cert_pem, key_pem, ca_pem), never of a file opened again: the
 * certificate and the chain after it, the key (which must match it), the
 * CA's certificates; TLS 1.2 or later, a certificate asked of every peer.
 * The one place a context is made: at start, at each reload (so that a
 * renewed certificate is served) and by commgwd --check-config.  NULL
 * with the file and the reason in err, e.g. "key /etc/tcl/comm/tls/gw.key
 * does not match the certificate /etc/tcl/comm/tls/gw.crt".
 */
SSL_CTX *fed_tls_context(const struct gwconf *, char *err, size_t errlen);

/* Start listening and linking as the configuration says, with ctx (from
 * fed_tls_context, taken whatever happens; NULL: made here).  NULL
 * without err set when it asks for no federation; NULL with err on a
 * failure (certificate or key unusable, listen address taken).  On
 * reload, old (then freed) gives its listener to the new one when the
 * address is unchanged: the gateway no longer has the privileges to bind
 * a low port again. */
struct fed *fed_start(struct gateway *, struct fed *old, SSL_CTX *ctx,
    char *err, size_t errlen);
void fed_free(struct fed *);
/* Close every link (what they gave goes); the TLS context and listener
 * stay for fed_start(..., old, ...). */
void fed_stop_links(struct fed *);

/* A lookup the host cannot answer: every linked gateway is asked at
 * once, the first answer wins, and none within lookup_timeout_ms is a
 * miss.  CMD_PENDING, or CMD_ERROR (nothing asked) when none is linked. */
int fed_lookup(struct fed *, struct cmd_ctx *, const char *name, size_t len);

/* The address other gateways are given for this host's entries. */
const char *fed_advertise(const struct fed *);

/* For Commreg/Stats: "links" and a list of one dict per link (remote,
 * direction in|out, address, state connecting|hello|ready, entries it
 * gave us). */
void fed_stats(const struct fed *, struct tbuf *);

#endif
