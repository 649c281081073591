/*
 * The command line's mistakes (cmdline.h).  getopt_long leaves in
 * optopt and optind what it refused, but not which word: a short option
 * may sit inside a cluster ("-vZ") whose word optind has not passed yet,
 * a long one is the word before optind.  optopt 0 means a long option
 * getopt did not know; otherwise the character of a short option, or
 * the value of a long option given "=VALUE" it does not take.
 */
#include <stdio.h>
#include <string.h>

#include "cmdline.h"

/* The long option named by word ("--name" or "--name=..."), or NULL. */
static const struct option *
long_named(const char *word, const struct option *longopts)
{
	const char *name;
	size_t len;

	if (strncmp(word, "--", 2) != 0)
		return NULL;
	name = word + 2;
	len = strcspn(name, "=");
	for (; longopts != NULL && longopts->name != NULL; longopts++)
		if (strlen(longopts->name) == len &&
		    strncmp(longopts->name, name, len) == 0)
			return longopts;
	return NULL;
}

int
cmdline_bad_option(const char *prog, int argc, char *const *argv, int ch,
    const struct option *longopts)
{
	const char *word =
	    optind > 0 && optind <= argc ? argv[optind - 1] : "-";
	const struct option *lo = long_named(word, longopts);

	if (ch == ':' && strncmp(word, "--", 2) == 0)
		fprintf(stderr, "%s: option \"%s\" needs a value", prog, word);
	else if (ch == ':')
		fprintf(stderr, "%s: option \"-%c\" needs a value", prog,
		    optopt);
	else if (optopt == 0)
		fprintf(stderr, "%s: unknown option \"%s\"", prog, word);
	else if (lo != NULL && lo->val == optopt && strchr(word, '=') != NULL)
		fprintf(stderr, "%s: option \"--%s\" takes no value", prog,
		    lo->name);
	else
		fprintf(stderr, "%s: unknown option \"-%c\"", prog, optopt);
	fprintf(stderr, "; try \"%s --help\"\n", prog);
	return 2;
}

int
cmdline_bad_argument(const char *prog, const char *word)
{
	fprintf(stderr, "%s: unexpected argument \"%s\"; try \"%s --help\"\n",
	    prog, word, prog);
	return 2;
}
