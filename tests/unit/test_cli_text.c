/*
 * Unit tests for what the commreg command shows and writes
 * (local/cli/shown.c, json.c, prom.c): text from a registry reaches a
 * terminal escaped and a table cell stays one Tcl word; columns count
 * display width; times are UTC whatever TZ says; JSON is never made of
 * bytes that are not UTF-8; Prometheus label values and HELP texts are
 * escaped as the format says, a family's HELP and TYPE come once, and
 * the file is replaced whole with mode 0644 whatever the umask.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "cli.h"
#include "log.h"

static void
check_shown(const char *in, const char *want)
{
	char *s = shown(in);

	CU_ASSERT_STRING_EQUAL(s, want);
	free(s);
}

static void
test_shown_escapes_what_a_terminal_acts_on(void)
{
	check_shown("plain name", "plain name");
	check_shown("a\x1b[2Jb", "a\\x1b[2Jb");
	check_shown("line\nforged", "line\\x0aforged");
	check_shown("back\\slash", "back\\\\slash");
	check_shown("del\x7f", "del\\x7f");
	/* C1 controls as UTF-8 (U+0085, U+009B CSI), a byte that is not
	 * UTF-8; printable non-ASCII text stays as it is. */
	check_shown("c1\xc2\x85", "c1\\xc2\\x85");
	check_shown("csi\xc2\x9b", "csi\\xc2\\x9b");
	check_shown("bad\xff", "bad\\xff");
	check_shown("caf\xc3\xa9 \xe6\x97\xa5", "caf\xc3\xa9 \xe6\x97\xa5");
	check_shown("", "");
}

static void
check_cell(const char *in, const char *want)
{
	char *s = shown_cell(in);

	CU_ASSERT_STRING_EQUAL(s, want);
	free(s);
}

static void
test_a_cell_is_one_tcl_word(void)
{
	check_cell("foo", "foo");
	check_cell("foo #2", "{foo #2}");
	check_cell("fake 5555 localhost", "{fake 5555 localhost}");
	check_cell("a\x1b", "{a\\x1b}");
	check_cell("", "{}");
	check_cell("{", "\\{");
}

static void
test_width_counts_columns(void)
{
	CU_ASSERT_EQUAL(shown_width("abc"), 3);
	CU_ASSERT_EQUAL(shown_width("caf\xc3\xa9"), 4);
	/* Wide: two columns each. */
	CU_ASSERT_EQUAL(shown_width("\xe6\x97\xa5\xe6\x9c\xac"), 4);
	/* e + COMBINING ACUTE ACCENT: one column. */
	CU_ASSERT_EQUAL(shown_width("e\xcc\x81"), 1);
	CU_ASSERT_EQUAL(shown_width(""), 0);
}

static void
test_times_are_utc_whatever_tz_says(void)
{
	char buf[32];

	setenv("TZ", "JST-9", 1); /* POSIX form: no zoneinfo needed */
	tzset();
	time_iso(1000000000LL, buf, sizeof buf);
	CU_ASSERT_STRING_EQUAL(buf, "2001-09-09T01:46:40Z");
	time_iso(0, buf, sizeof buf);
	CU_ASSERT_STRING_EQUAL(buf, "-");
	time_iso(-5, buf, sizeof buf);
	CU_ASSERT_STRING_EQUAL(buf, "-");
	unsetenv("TZ");
	tzset();
}

static void
test_json_text_is_always_utf8(void)
{
	json_t *j;

	j = json_text("caf\xc3\xa9", 5);
	CU_ASSERT_STRING_EQUAL(json_string_value(j), "caf\xc3\xa9");
	json_decref(j);
	/* Not UTF-8: its shown form, which is. */
	j = json_text("x\xff", 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(j), "x\\xff");
	json_decref(j);
	/* A control character is kept: JSON escapes it itself. */
	j = json_text("a\x1b", 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(j), "a\x1b");
	json_decref(j);
}

static void
test_json_of_a_tcl_dict(void)
{
	const char *d = "entries 3 version 0.1.0 neg -2 links {{remote gw2 "
	                "entries 4} {remote {} entries 0}}";
	json_t *o = json_tcl_dict(d, strlen(d)), *links;

	CU_ASSERT_TRUE(json_is_object(o));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "entries")), 3);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "neg")), -2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "version")),
	    "0.1.0");
	links = json_object_get(o, "links");
	CU_ASSERT_TRUE(json_is_array(links));
	CU_ASSERT_EQUAL(json_array_size(links), 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(
	                           json_object_get(json_array_get(links, 0),
	                               "remote")),
	    "gw2");
	CU_ASSERT_EQUAL(json_integer_value(
	                    json_object_get(json_array_get(links, 0),
	                        "entries")),
	    4);
	json_decref(o);
	/* Not a dict: text. */
	o = json_tcl_dict("a {", 3);
	CU_ASSERT_TRUE(json_is_string(o));
	json_decref(o);
	o = json_tcl_dict("a b c", 5);
	CU_ASSERT_TRUE(json_is_string(o));
	json_decref(o);
}

static char tmpdir[64];

static char *
read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	static char buf[8192];
	size_t n;

	if (fp == NULL)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static int
entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_prom_escapes_and_groups(void)
{
	struct prom *p = prom_new();
	char path[128];
	struct stat sb;
	mode_t old;
	char *text;

	prom_label(p, "user", "a\"b\\c\nd");
	prom_metric(p, "commreg_x", "gauge", "Back\\slash and\nnewline.", 1);
	prom_metric(p, "commreg_x", "gauge", "Back\\slash and\nnewline.", 2);
	prom_labels_clear(p);
	prom_metric(p, "commreg_y_total", "counter", "Y.", 12345678901.0);
	snprintf(path, sizeof path, "%s/m.prom", tmpdir);
	old = umask(077);
	CU_ASSERT_EQUAL(prom_write(p, path), 0);
	umask(old);
	text = read_all(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_STRING_EQUAL(text,
	    "# HELP commreg_x Back\\\\slash and\\nnewline.\n"
	    "# TYPE commreg_x gauge\n"
	    "commreg_x{user=\"a\\\"b\\\\c\\nd\"} 1\n"
	    "commreg_x{user=\"a\\\"b\\\\c\\nd\"} 2\n"
	    "# HELP commreg_y_total Y.\n"
	    "# TYPE commreg_y_total counter\n"
	    "commreg_y_total 12345678901\n");
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0644);
	/* Nothing but the file: the temporary one was renamed. */
	CU_ASSERT_EQUAL(entries_in(tmpdir), 1);
	prom_free(p);

	/* A directory that is not there: -1, nothing made. */
	p = prom_new();
	prom_metric(p, "commreg_z", "gauge", "Z.", 0);
	snprintf(path, sizeof path, "%s/nodir/m.prom", tmpdir);
	CU_ASSERT_EQUAL(prom_write(p, path), -1);
	CU_ASSERT_EQUAL(entries_in(tmpdir), 1);
	prom_free(p);
}

static int
suite_init(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_cli_text.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
suite_clean(void)
{
	char path[128];

	snprintf(path, sizeof path, "%s/m.prom", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

int
main(void)
{
	CU_pSuite s;
	int rc;

	log_init("test_cli_text", LOG_LVL_WARN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("cli_text", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "shown escapes what a terminal acts on",
	        test_shown_escapes_what_a_terminal_acts_on) == NULL ||
	    CU_add_test(s, "a cell is one Tcl word",
	        test_a_cell_is_one_tcl_word) == NULL ||
	    CU_add_test(s, "width counts columns", test_width_counts_columns) ==
	        NULL ||
	    CU_add_test(s, "times are UTC whatever TZ says",
	        test_times_are_utc_whatever_tz_says) == NULL ||
	    CU_add_test(s, "JSON text is always UTF-8",
	        test_json_text_is_always_utf8) == NULL ||
	    CU_add_test(s, "JSON of a Tcl dict", test_json_of_a_tcl_dict) ==
	        NULL ||
	    CU_add_test(s, "Prometheus: escaped, grouped, 0644, atomic",
	        test_prom_escapes_and_groups) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
