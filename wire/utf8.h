/*
 * UTF-8, strictly (RFC 3629): what comm carries is UTF-8, and a name that
 * is not cannot be shown, compared or matched the same way by everyone.
 * No overlong forms, no surrogates, nothing above U+10FFFF.
 */
#ifndef WIRE_UTF8_H
#define WIRE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1..4) of the valid sequence at p[0..n), or 0 when none is. */
size_t utf8_char_len(const unsigned char *p, size_t n);
/* Is all of p[0..n) valid UTF-8? */
bool utf8_valid(const char *p, size_t n);

#endif
