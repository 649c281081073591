/*
 * The command line's mistakes, said the same way by every program: one
 * line that names the word, then where the whole usage is, and exit
 * status 2 (the usage itself would bury the line that matters).
 */
#ifndef WIRE_CMDLINE_H
#define WIRE_CMDLINE_H

#include <getopt.h>

/*
 * What getopt_long refused, called with its return value ('?', or ':'
 * when the short options begin with ':') and with opterr set to 0, so
 * that getopt itself said nothing.  Returns 2, the exit status.
 */
int cmdline_bad_option(const char *prog, int argc, char *const *argv, int ch,
    const struct option *longopts);
/* A word that is not an option where none is expected: returns 2. */
int cmdline_bad_argument(const char *prog, const char *word);

#endif
