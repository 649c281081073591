/*
 * Tcl's [string match] (Tcl_StringCaseMatch, case-sensitive) on UTF-8.
 *
 * nns patterns are Tcl patterns, not fnmatch(3) ones (docs/protocol.md §3):
 * '*', '?' (one character, not one byte), '[chars]' with ranges 'a-z' in
 * either order and no negation, '\x' matching x literally.  Differences from
 * fnmatch are exactly what tests/unit/test_tclmatch.c and the tclsh
 * differential test pin down.
 */
#ifndef WIRE_TCLMATCH_H
#define WIRE_TCLMATCH_H

#include <stdbool.h>
#include <stddef.h>

bool tcl_string_match(const char *pat, size_t plen, const char *str,
    size_t slen);

/* True when pat has no special characters, so a match is an exact compare
 * (lets callers use a hash lookup instead of a scan). */
bool tcl_pattern_is_literal(const char *pat, size_t plen);

#endif
