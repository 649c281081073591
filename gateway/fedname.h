/*
 * Federation's rules for names (docs/federation.md): which entries a
 * remote gateway is given and as what, and which names a remote may give
 * us.  Pure functions of their arguments, no sockets and no TLS, so that
 * the rules that keep one gateway from taking over another's names can be
 * tested on their own (tests/unit/test_fed_names.c); fed.c applies them
 * to its links.
 *
 * Words used below:
 *   self       the name our certificate carries (fed.c, own_name)
 *   peer_name  the name a remote's certificate must carry ([remote])
 *   path       the gateways an entry came through, space-separated,
 *              origin first; "" for an entry of this host
 * An entry of this host is stored as NAME@USER and travels as
 * NAME@USER@SELF; one learned from a remote is stored as it came,
 * NAME@USER@ORIGIN.
 */
#ifndef GATEWAY_FEDNAME_H
#define GATEWAY_FEDNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "gwconf.h"
#include "registry.h"
#include "tbuf.h"

/* The application's name: the length of what precedes the first '@'
 * (all of name when it has none). */
size_t fedname_app_len(const char *name);

/* Does any of the n Tcl string match patterns match name's application
 * name (fedname_app_len)?  Export and import patterns never see the
 * user or the origin. */
/* For a bare NAME ("calc" among "calc@USER..."), x answers before y
 * (NULL: none yet): this host's entries before those learned from other
 * gateways, then the first by name, so that the answer does not depend
 * on the order of the table.  The gateway's lookups and a remote's. */
bool fedname_answers_before(const struct reg_entry *x,
    const struct reg_entry *y);
bool fedname_patterns_match(char *const *pats, size_t n, const char *name);

/* Is gateway who a whole word of the space-separated path ("gw1" is not
 * in "gw10 gw2")? */
bool fedname_path_has(const char *path, const char *who);

/*
 * May remote r be given entry e?  Only a global entry whose application
 * name one of r's export patterns matches; one learned from another
 * gateway only where r says reexport, and never back to a gateway on its
 * path nor to ourselves (a loop).
 */
bool fedname_exportable(const char *self, const struct gwconf_remote *r,
    const struct reg_entry *e);

/*
 * May the remote named peer_name give us name with path?  Only
 * NAME@USER@ORIGIN (three non-empty parts), ORIGIN the first gateway of
 * the path and not us, and the remote the last gateway of the path (the
 * one it came through to us; for one hop, the remote's own).  Anything
 * else would let a remote take over a local name or speak for another
 * gateway.
 */
bool fedname_well_formed(const char *self, const char *peer_name,
    const char *name, const char *path);

/*
 * Entry e as it travels, the dict of docs/federation.md written to d
 * (reset first): an entry of this host is named NAME@USER@SELF, its comm
 * id's host is advertise (where we listen, so that an application
 * elsewhere can connect) and its path is SELF; a learned entry keeps its
 * name and host and has SELF appended to its path.
 */
void fedname_export_dict(const char *self, const char *advertise,
    const struct reg_entry *e, struct tbuf *d);

#endif
