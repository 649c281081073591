/*
 * Unit tests of wire/tclmatch.c: Tcl 8.6's [string match], quirks
 * included.  Every expectation is what tclsh 8.6.13 answers; the
 * differential test tcllist_diff.test.tcl compares random pairs live.
 */
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>

#include "tclmatch.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Literals as pointer and length: they may hold NUL. */
#define MATCH(pat, str, want)                                                  \
	check(__LINE__, pat, sizeof(pat) - 1, str, sizeof(str) - 1, want)

static void
check(int line, const char *pat, size_t plen, const char *str, size_t slen,
    int want)
{
	int got = tcl_string_match(pat, plen, str, slen);

	CU_assertImplementation(got == want ? CU_TRUE : CU_FALSE,
	    (unsigned)line, want ? "should match" : "should not match",
	    __FILE__, "", CU_FALSE);
}

static void
test_literal(void)
{
	MATCH("", "", 1);
	MATCH("", "a", 0);
	MATCH("a", "", 0);
	MATCH("abc", "abc", 1);
	MATCH("abc", "abd", 0);
	MATCH("abc", "ab", 0);
	MATCH("ab", "abc", 0);
	MATCH("Abc", "abc", 0);
	/* ']' and '-' are ordinary outside brackets. */
	MATCH("a]-", "a]-", 1);
}

static void
test_star(void)
{
	MATCH("*", "", 1);
	MATCH("*", "anything", 1);
	MATCH("***", "", 1);
	MATCH("a*", "a", 1);
	MATCH("a*", "abc", 1);
	MATCH("*c", "abc", 1);
	MATCH("*c", "abd", 0);
	MATCH("a*c", "ac", 1);
	MATCH("a*c", "abbbc", 1);
	MATCH("a*c", "abbbcd", 0);
	MATCH("a**c*", "abcd", 1);
	MATCH("*a*b*", "xxaxxbxx", 1);
	MATCH("*a*b*", "xxbxxaxx", 0);
	MATCH("*?", "", 0);
	MATCH("*?", "a", 1);
	MATCH("app #*", "app #2", 1);
}

static void
test_question(void)
{
	MATCH("?", "a", 1);
	MATCH("?", "", 0);
	MATCH("?", "ab", 0);
	MATCH("a?c", "abc", 1);
	MATCH("???", "ab", 0);
}

static void
test_brackets(void)
{
	MATCH("[abc]", "b", 1);
	MATCH("[abc]", "d", 0);
	MATCH("[abc]", "", 0);
	MATCH("[a-c]x", "bx", 1);
	MATCH("[a-c]", "d", 0);
	/* Ranges either way round. */
	MATCH("[c-a]", "b", 1);
	MATCH("[z-a]", "m", 1);
	MATCH("[z-a]", "A", 0);
	/* No negation: '^' and '!' are members. */
	MATCH("[^a]", "^", 1);
	MATCH("[^a]", "b", 0);
	MATCH("[!a]", "!", 1);
	/* "[]" matches nothing; ']' ends the set even first. */
	MATCH("[]", "]", 0);
	MATCH("[]a]", "]", 0);
	/* No ']' at all: the set runs to the end of the pattern. */
	MATCH("[ab", "a", 1);
	MATCH("[ab", "c", 0);
	MATCH("x[ab", "xb", 1);
	/* "[a-" at the end never matches, even 'a'. */
	MATCH("[a-", "a", 0);
	MATCH("[a-]", "a", 1);
	MATCH("[a-]", "-", 0);
	MATCH("[-a]", "-", 1);
	/* A '-' after a range is a member again. */
	MATCH("[a-c-]", "-", 1);
	/* Backslash has no meaning inside brackets. */
	MATCH("[\\]]", "\\", 0);
	MATCH("[\\]]", "]", 0);
	MATCH("[\\]]", "\\]", 1);
	/* After a match the set ends at the next ']', even a range end. */
	MATCH("[ab-]c]", "ac]", 1);
	MATCH("[ab-]c]", "c", 1);
	MATCH("[ab-]c]", "ac", 0);
	MATCH("[*]", "*", 1);
	MATCH("[?]", "a", 0);
}

static void
test_backslash(void)
{
	MATCH("\\*", "*", 1);
	MATCH("\\*", "a", 0);
	MATCH("\\?", "?", 1);
	MATCH("\\[a]", "[a]", 1);
	MATCH("\\\\", "\\", 1);
	MATCH("\\a", "a", 1);
	/* A backslash at the end of the pattern never matches. */
	MATCH("a\\", "a\\", 0);
	MATCH("a\\", "a", 0);
	MATCH("*\\", "\\", 0);
}

static void
test_utf8(void)
{
	/* One character is one '?', whatever its length in bytes. */
	MATCH("caf?", "caf\xc3\xa9", 1);
	MATCH("?", "\xe4\xb8\xad", 1);
	MATCH("??", "\xe4\xb8\xad", 0);
	MATCH("[\xc3\xa9\xc3\xbc]", "\xc3\xbc", 1);
	/* Ranges by code point: U+00E9 .. U+4E2D holds U+00FC. */
	MATCH("[\xc3\xa9-\xe4\xb8\xad]", "\xc3\xbc", 1);
	MATCH("[\xe4\xb8\xad-\xc3\xa9]", "\xc3\xbc", 1);
	MATCH("[\xc3\xa9-\xe4\xb8\xad]", "z", 0);
	MATCH("*\xe4\xb8\xad", "a\xe4\xb8\xad", 1);
	MATCH("\\\xc3\xa9", "\xc3\xa9", 1);
	/* Beyond the BMP too: one character, ranges by code point. */
	MATCH("?", "\xf0\x9f\x98\x80", 1);
	MATCH("??", "\xf0\x9f\x98\x80", 0);
	MATCH("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x81", 0);
	MATCH("*\xf0\x9f\x98\x80", "a\xf0\x9f\x98\x80", 1);
	MATCH("[\xf0\x9f\x98\x80]", "\xf0\x9f\x98\x80", 1);
	MATCH("[\xf0\x9f\x98\x80]?", "\xf0\x9f\x98\x80", 0);
	MATCH("[\xee\x80\x80-\xf0\x9f\x98\x80]", "\xef\x80\x80", 1);
	MATCH("[\xf0\x90\x80\x80-\xf0\x9f\x98\x81]", "\xf0\x9f\x98\x80", 1);
	MATCH("[\x01-\xef\xbf\xbf]", "\xf0\x9f\x98\x80", 0);
	/* Not UTF-8: a byte is a character of its own value. */
	MATCH("?", "\xe9", 1);
	MATCH("[\xc3\xa0-\xc3\xbf]", "\xe9", 1);
	/* NUL is an ordinary character. */
	MATCH("a?b", "a\0b", 1);
	MATCH("a\0*", "a\0xyz", 1);
	MATCH("a\0", "a", 0);
	MATCH("[\0-a]", "A", 1);
}

/* Tcl's backtracking is exponential here; ours must still be quick. */
static void
test_backtracking(void)
{
	char s[256], p[128];
	clock_t t0;
	size_t i;

	memset(s, 'a', sizeof(s));
	for (i = 0; i + 2 < sizeof(p); i += 2) {
		p[i] = '*';
		p[i + 1] = 'a';
	}
	p[i] = 'b';
	t0 = clock();
	CU_ASSERT(!tcl_string_match(p, i + 1, s, sizeof(s)));
	p[i] = 'a';
	CU_ASSERT(tcl_string_match(p, i + 1, s, sizeof(s)));
	p[i] = '?';
	CU_ASSERT(tcl_string_match(p, i + 1, s, sizeof(s)));
	CU_ASSERT((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
	MATCH("*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0);
	MATCH("*[ab-]*a*a*a*a*c", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaac", 1);
}

static void
test_is_literal(void)
{
	CU_ASSERT(tcl_pattern_is_literal("", 0));
	CU_ASSERT(tcl_pattern_is_literal("app", 3));
	CU_ASSERT(tcl_pattern_is_literal("app #2", 6));
	CU_ASSERT(tcl_pattern_is_literal("a]b-c", 5));
	CU_ASSERT(tcl_pattern_is_literal("a\0b", 3));
	CU_ASSERT(!tcl_pattern_is_literal("a*", 2));
	CU_ASSERT(!tcl_pattern_is_literal("a?", 2));
	CU_ASSERT(!tcl_pattern_is_literal("[a]", 3));
	CU_ASSERT(!tcl_pattern_is_literal("a\\b", 3));
	/* Only plen bytes count. */
	CU_ASSERT(tcl_pattern_is_literal("ab*", 2));
}

int
main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
	    {"literal", test_literal},
	    {"star", test_star},
	    {"question mark", test_question},
	    {"brackets", test_brackets},
	    {"backslash", test_backslash},
	    {"UTF-8 characters and NUL", test_utf8},
	    {"backtracking stays polynomial", test_backtracking},
	    {"tcl_pattern_is_literal", test_is_literal},
	};
	CU_pSuite suite;
	size_t i;
	unsigned failures, error;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if ((suite = CU_add_suite("tclmatch", NULL, NULL)) == NULL)
		return 1;
	for (i = 0; i < NELEM(tests); i++) {
		if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL)
			return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	error = CU_get_error();
	CU_cleanup_registry();
	return failures || error ? 1 : 0;
}
