/*
 * Unit tests for config/gwconf.c: every kind of mistake in the *.ini files
 * of /etc/tcl/comm is reported as "file:line: message naming the word",
 * all of them at once; files are read in lexical order and trusted only
 * when nobody but their owner (root, for root) can write them, nor the
 * directories above them; what the gateway read can be parsed again from
 * memory (gwconf_load_mem) with the same messages, and goes from the
 * gateway's privileged parent to its child in a message whose every
 * length the child checks (gateway/privsep.h).
 */
#define _GNU_SOURCE /* nftw() */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "gwconf.h"
#include "privsep.h"

#define FOREIGN_UID 65534 /* nobody */

static char tmpdir[64];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static int
suite_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/commreg-gwconf.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return chmod(tmpdir, 0755);
}

static int
suite_clean(void)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh configuration directory tmpdir/name, mode 0755. */
static void
make_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
	CU_ASSERT_FATAL(mkdir(buf, 0755) == 0);
	CU_ASSERT_FATAL(chmod(buf, 0755) == 0);
}

static void
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fp = fopen(p, "w");
	CU_ASSERT_FATAL(fp != NULL);
	fputs(text, fp);
	fclose(fp);
	CU_ASSERT_FATAL(chmod(p, mode) == 0);
}

static void
show(const struct gwconf_errors *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		printf("\n    message: %s ", e->v[i]);
}

/* `text`, read as t.ini, fails with exactly these messages in order. */
static void
expect_errors(const char *text, enum gwconf_mode mode, const char **want,
    size_t nwant)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;
	size_t i;

	c = gwconf_parse_string("t.ini", text, mode, &e);
	CU_ASSERT_PTR_NULL(c);
	gwconf_free(c);
	CU_ASSERT_EQUAL(e.n, nwant);
	for (i = 0; i < nwant && i < e.n; i++) {
		CU_ASSERT_STRING_EQUAL(e.v[i], want[i]);
		if (strcmp(e.v[i], want[i]) != 0)
			printf("\n    want: %s\n    got:  %s ", want[i],
			    e.v[i]);
	}
	if (e.n != nwant)
		show(&e);
	gwconf_errors_free(&e);
}

static void
expect_error(const char *text, const char *want)
{
	expect_errors(text, GWCONF_CLIENT, &want, 1);
}

/* The messages of loading dir, which must fail. */
static void
expect_load_errors(const char *dir, enum gwconf_mode mode, const char **want,
    size_t nwant)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;
	bool missing = true;
	size_t i;

	c = gwconf_load(dir, mode, &missing, &e);
	CU_ASSERT_PTR_NULL(c);
	gwconf_free(c);
	CU_ASSERT_EQUAL(e.n, nwant);
	for (i = 0; i < nwant && i < e.n; i++) {
		CU_ASSERT_STRING_EQUAL(e.v[i], want[i]);
		if (strcmp(e.v[i], want[i]) != 0)
			printf("\n    want: %s\n    got:  %s ", want[i],
			    e.v[i]);
	}
	show(&e);
	gwconf_errors_free(&e);
}

/* ---- one test per kind of mistake ---- */

static void
test_unknown_section(void)
{
	/* ... and its keys are not reported once more each. */
	expect_error("[gatway]\nsocket = /run/x.sock\n",
	    "t.ini:1: unknown section [gatway]");
}

static void
test_unknown_key(void)
{
	expect_error("[gateway]\nsockt = /run/x.sock\n",
	    "t.ini:2: unknown key \"sockt\" in [gateway]");
}

static void
test_bad_number(void)
{
	expect_error("[gateway]\nmax_connections = 12x\n",
	    "t.ini:2: bad number \"12x\" for max_connections in [gateway]");
	expect_error("[gateway]\nmax_message = -5\n",
	    "t.ini:2: bad number \"-5\" for max_message in [gateway]");
}

/* A gateway's name ends entries' names and is a word of their paths:
 * one with a space or an "@" could pass for another. */
static void
test_gateway_names(void)
{
	expect_error("[remote r]\naddress = 127.0.0.1:7000\n"
	             "peer_name = gw 2.example.org\n",
	    "t.ini:3: bad value \"gw 2.example.org\" for peer_name in "
	    "[remote r] (a host name: letters, digits, \".\", \"-\", "
	    "\"_\")");
	expect_error("[remote r]\naddress = 127.0.0.1:7000\n"
	             "peer_name = gw@example.org\n",
	    "t.ini:3: bad value \"gw@example.org\" for peer_name in "
	    "[remote r] (a host name: letters, digits, \".\", \"-\", "
	    "\"_\")");
	CU_ASSERT(gwconf_gateway_name_ok("gw2.example.org"));
	CU_ASSERT(gwconf_gateway_name_ok("site_1-a"));
	CU_ASSERT(!gwconf_gateway_name_ok(""));
	CU_ASSERT(!gwconf_gateway_name_ok("a b"));
	CU_ASSERT(!gwconf_gateway_name_ok("a@b"));
	CU_ASSERT(!gwconf_gateway_name_ok("a\tb"));
	CU_ASSERT(!gwconf_gateway_name_ok("caf\xc3\xa9"));
}

static void
test_out_of_range(void)
{
	expect_error("[gateway]\nmax_connections = 0\n",
	    "t.ini:2: max_connections = 0 is out of range (1..1048576) in "
	    "[gateway]");
	expect_error("[gateway]\nhandshake_timeout = 99999999999999999999\n",
	    "t.ini:2: handshake_timeout = 99999999999999999999 is out of "
	    "range (1..3600) in [gateway]");
	expect_error("[quota]\ndefault = 1000001\n",
	    "t.ini:2: default = 1000001 is out of range (0..1000000) in "
	    "[quota]");
}

static void
test_unknown_user(void)
{
	const char *want;

	expect_error("[rule r]\naction = allow\nusers = root no-such-user-q\n",
	    "t.ini:3: unknown user \"no-such-user-q\" in [rule r]");
	want = "t.ini:3: unknown user \"no-such-user-q\" in [gateway]";
	expect_errors("[gateway]\nsocket = /run/t.sock\n"
	              "user = no-such-user-q\n",
	    GWCONF_GATEWAY, &want, 1);
	expect_error("[quota]\nuser no-such-user-q = 5\n",
	    "t.ini:2: unknown user \"no-such-user-q\" in [quota]");
}

/* A user registry never becomes the [gateway] user: it does not look the
 * account up, so one not made yet does not cost it the host gateway. */
static void
test_client_ignores_gateway_user(void)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;

	c = gwconf_parse_string("t.ini",
	    "[gateway]\nsocket = /run/t.sock\nuser = no-such-user-q\n",
	    GWCONF_CLIENT, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(e.n, 0);
	CU_ASSERT_STRING_EQUAL(c->socket_path, "/run/t.sock");
	gwconf_free(c);
	gwconf_errors_free(&e);
}

static void
test_unknown_group(void)
{
	expect_error("[rule r]\naction = allow\ngroups = no-such-group-q\n",
	    "t.ini:3: unknown group \"no-such-group-q\" in [rule r]");
	expect_error("[quota]\ngroup no-such-group-q = 5\n",
	    "t.ini:2: unknown group \"no-such-group-q\" in [quota]");
}

static void
test_bad_port_range(void)
{
	static const char *bad[] = {"0", "65536", "1024-80", "80-", "-80",
	    "a-b", "1-2-3", "http"};
	char text[128], want[160];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		    "[rule r]\naction = allow\nports = 7000 %s\n", bad[i]);
		snprintf(want, sizeof(want),
		    "t.ini:3: bad port range \"%s\" in [rule r] (N or LO-HI, "
		    "1..65535)",
		    bad[i]);
		expect_error(text, want);
	}
}

static void
test_bad_scope(void)
{
	expect_error("[rule r]\naction = allow\nscopes = host planet\n",
	    "t.ini:3: unknown scope \"planet\" in [rule r] (host or global)");
}

static void
test_bad_action(void)
{
	expect_error("[rule r]\naction = alow\n",
	    "t.ini:2: bad action \"alow\" in [rule r] (allow or deny)");
}

static void
test_bad_bool(void)
{
	expect_error("[remote up]\naddress = gw.example.org:7000\n"
	             "peer_name = gw.example.org\nupstream = maybe\n",
	    "t.ini:4: bad value \"maybe\" for upstream in [remote up] (yes "
	    "or no)");
}

static void
test_bad_address(void)
{
	expect_error("[gateway]\nlisten = 7000\n",
	    "t.ini:2: bad address \"7000\" for listen in [gateway] "
	    "(HOST:PORT or [IPv6]:PORT, port 1..65535)");
	expect_error("[gateway]\nlisten = ::1:7000\n",
	    "t.ini:2: bad address \"::1:7000\" for listen in [gateway] "
	    "(HOST:PORT or [IPv6]:PORT, port 1..65535)");
	expect_error("[gateway]\nsocket = run/gw.sock\n",
	    "t.ini:2: bad path \"run/gw.sock\" for socket in [gateway] (an "
	    "absolute path)");
}

static void
test_duplicate_key(void)
{
	expect_error("[gateway]\nsocket = /run/a.sock\n\nsocket = "
	             "/run/b.sock\n",
	    "t.ini:4: duplicate key \"socket\" in [gateway] (first at line "
	    "2)");
	/* "user  root" and "user root" are one key. */
	expect_error("[quota]\nuser root = 5\nuser  root = 6\n",
	    "t.ini:3: duplicate key \"user root\" in [quota] (first at line "
	    "2)");
}

static void
test_duplicate_section_in_file(void)
{
	expect_error("[rule a]\naction = allow\n[rule  a ]\naction = deny\n",
	    "t.ini:3: duplicate section [rule a] (first at t.ini:1)");
}

static void
test_duplicate_section_across_files(void)
{
	char dir[256], want[2][1100];
	const char *w[2] = {want[0], want[1]};

	make_dir(dir, sizeof(dir), "dup-across");
	write_file(dir, "00-a.ini", "[gateway]\nmax_connections = 10\n", 0644);
	write_file(dir, "10-b.ini",
	    "; a second gateway section\n[gateway]\nmax_connections = 20\n"
	    "[quota]\ndefault = 3\n",
	    0644);
	write_file(dir, "20-c.ini", "[quota]\ndefault = 4\n", 0644);
	snprintf(want[0], sizeof(want[0]),
	    "%s/10-b.ini:2: duplicate section [gateway] (first at "
	    "%s/00-a.ini:1)",
	    dir, dir);
	snprintf(want[1], sizeof(want[1]),
	    "%s/20-c.ini:1: duplicate section [quota] (first at "
	    "%s/10-b.ini:4)",
	    dir, dir);
	expect_load_errors(dir, GWCONF_CLIENT, w, 2);
}

static void
test_line_too_long(void)
{
	char text[2200];
	struct gwconf_errors e = {0};
	struct gwconf *c;
	const char *w[2] = {"t.ini:2: line longer than 1024 bytes",
	    "t.ini:3: unknown key \"after\" in [rule r]"};
	int n;

	/* 1025 bytes: refused, and the lines after it keep their number. */
	n = snprintf(text, sizeof(text), "[rule r]\nmessage = ");
	memset(text + n, 'x', 1025 - 10);
	snprintf(text + n + 1015, sizeof(text) - n - 1015,
	    "\nafter = 1\naction = allow\n");
	expect_errors(text, GWCONF_CLIENT, w, 2);

	/* Exactly 1024 bytes (CRLF or not) is a line like any other. */
	n = snprintf(text, sizeof(text),
	    "[rule r]\r\naction = allow\r\n"
	    "message = ");
	memset(text + n, 'y', 1024 - 10);
	snprintf(text + n + 1014, sizeof(text) - n - 1014, "\r\n");
	c = gwconf_parse_string("t.ini", text, GWCONF_CLIENT, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(strlen(c->rules[0].message), 1014);
	gwconf_free(c);
}

/* inih's own limits do not show: a section name past its 50 bytes, a
 * value past its 200, a byte order mark; a NUL byte is an error. */
static void
test_inih_limits_hidden(void)
{
	char text[1200], name[81], dir[256], f[300], want[1100];
	const char *w[1] = {want};
	FILE *fp;
	struct gwconf_errors e = {0};
	struct gwconf *c;
	int n;

	memset(name, 'n', 80);
	name[80] = '\0';
	n = snprintf(text, sizeof(text),
	    "\xef\xbb\xbf[rule %s]\naction = allow\nnames = ", name);
	memset(text + n, 'p', 900);
	snprintf(text + n + 900, sizeof(text) - n - 900, "\n");
	c = gwconf_parse_string("t.ini", text, GWCONF_CLIENT, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->rules[0].name, name);
	CU_ASSERT_EQUAL(strlen(c->rules[0].names[0]), 900);
	gwconf_free(c);

	/* Two rules whose names share their first 60 bytes are two rules. */
	snprintf(text, sizeof(text),
	    "[rule %sA]\naction = allow\n[rule %sB]\naction = deny\n", name,
	    name);
	c = gwconf_parse_string("t.ini", text, GWCONF_CLIENT, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->nrules, 2);
	gwconf_free(c);

	make_dir(dir, sizeof(dir), "nul");
	write_file(dir, "10-nul.ini", "[quota]\ndefault = 3", 0644);
	snprintf(f, sizeof(f), "%s/10-nul.ini", dir);
	fp = fopen(f, "a");
	CU_ASSERT_FATAL(fp != NULL);
	fwrite("\0\n", 1, 2, fp);
	fclose(fp);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", f);
	expect_load_errors(dir, GWCONF_CLIENT, w, 1);
}

static void
test_key_outside_section(void)
{
	expect_error("; comment\nsocket = /run/x.sock\n[gateway]\n",
	    "t.ini:2: key \"socket\" outside any section");
}

static void
test_rule_without_action(void)
{
	expect_error("[rule r]\nusers = root\n",
	    "t.ini:1: [rule r] has no action (action = allow or action = "
	    "deny)");
}

static void
test_remote_without_address(void)
{
	expect_error("[remote r]\npeer_name = gw.example.org\n",
	    "t.ini:1: [remote r] has no address (address = HOST:PORT)");
	expect_error("[remote r]\naddress = gw.example.org:7000\n",
	    "t.ini:1: [remote r] has no peer_name (the name its certificate "
	    "must carry)");
}

static void
test_malformed_lines(void)
{
	expect_error("[gateway]\nlisten\n",
	    "t.ini:2: expected KEY = VALUE, not \"listen\"");
	expect_error("[gateway]\n= 5\n", "t.ini:2: missing key before '='");
	expect_error("[quota]\nuser:root = 5\n",
	    "t.ini:2: bad key \"user:root\" (':' is not allowed in a key; "
	    "write KEY = VALUE)");
	expect_error("[gateway\nsocket = /run/x.sock\n",
	    "t.ini:1: section header \"[gateway\" has no closing ']'");
	expect_error("[gateway] extra\n",
	    "t.ini:1: unexpected \"extra\" after [gateway]");
	expect_error("[rule]\naction = allow\n",
	    "t.ini:1: section [rule] needs a name: [rule NAME]");
	expect_error("[rule a b]\naction = allow\n",
	    "t.ini:1: bad rule name in [rule a b] (one word of letters, "
	    "digits, '-', '_', '.')");
	expect_error("[gateway main]\n",
	    "t.ini:1: section [gateway] takes no name, found [gateway main]");
	expect_error("[rule r]\naction =\n",
	    "t.ini:2: empty value for action in [rule r]");
}

static void
test_second_upstream(void)
{
	expect_error("[remote a]\naddress = a.example.org:7000\n"
	             "peer_name = a.example.org\nupstream = yes\n"
	             "[remote b]\naddress = b.example.org:7000\n"
	             "peer_name = b.example.org\nupstream = yes\n",
	    "t.ini:8: [remote b] is a second upstream (the first is [remote "
	    "a] at t.ini:4); a gateway has one parent");
}

/* Two errors in one file, one in another: all three are told. */
static void
test_all_errors_collected(void)
{
	char dir[256], want[3][1100];
	const char *w[3] = {want[0], want[1], want[2]};
	const char *two[] =
	    {"t.ini:7: unknown key \"acton\" in [rule no-low-ports]",
	        "t.ini:6: [rule no-low-ports] has no action (action = allow or "
	        "action = deny)"};

	expect_errors("[gateway]\nmax_connections = 100\n\n; policy\n\n"
	              "[rule no-low-ports]\nacton = deny\nports = 1-1023\n",
	    GWCONF_CLIENT, two, 2);

	make_dir(dir, sizeof(dir), "all-errors");
	write_file(dir, "10-a.ini",
	    "[gateway]\nmax_message = big\nhandshake_timeout = 0\n", 0644);
	write_file(dir, "20-b.ini", "[rule x]\naction = maybe\n", 0644);
	snprintf(want[0], sizeof(want[0]),
	    "%s/10-a.ini:2: bad number \"big\" for max_message in [gateway]",
	    dir);
	snprintf(want[1], sizeof(want[1]),
	    "%s/10-a.ini:3: handshake_timeout = 0 is out of range (1..3600) "
	    "in [gateway]",
	    dir);
	snprintf(want[2], sizeof(want[2]),
	    "%s/20-b.ini:2: bad action \"maybe\" in [rule x] (allow or deny)",
	    dir);
	expect_load_errors(dir, GWCONF_CLIENT, w, 3);
}

/* ---- gateway mode: the TLS files ---- */

static void
test_listen_needs_tls_files(void)
{
	const char *w[] = {"t.ini:2: listen needs certificate, key and ca in "
	                   "[gateway] (missing: certificate, key, ca)"};
	struct gwconf_errors e = {0};
	struct gwconf *c;

	expect_errors("[gateway]\nlisten = 0.0.0.0:7000\n", GWCONF_GATEWAY, w,
	    1);
	/* A user registry does not look at TLS at all. */
	c = gwconf_parse_string("t.ini", "[gateway]\nlisten = 0.0.0.0:7000\n",
	    GWCONF_CLIENT, &e);
	CU_ASSERT_PTR_NOT_NULL(c);
	CU_ASSERT_EQUAL(e.n, 0);
	gwconf_free(c);
}

static void
test_key_file_mode(void)
{
	char dir[256], text[1024], key[300], want[1024];
	const char *w[1] = {want};
	struct gwconf_errors e = {0};
	struct gwconf *c;

	make_dir(dir, sizeof(dir), "tls");
	write_file(dir, "gw.crt", "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file(dir, "gw.key", "-----BEGIN PRIVATE KEY-----\n", 0644);
	snprintf(key, sizeof(key), "%s/gw.key", dir);
	snprintf(text, sizeof(text),
	    "[gateway]\nlisten = [::]:7000\ncertificate = %s/gw.crt\n"
	    "ca = %s/ca.crt\nkey = %s\n",
	    dir, dir, key);
	snprintf(want, sizeof(want),
	    "t.ini:5: key file %s: mode 0644 lets group/other read or write "
	    "it; run: chmod 600 %s",
	    key, key);
	expect_errors(text, GWCONF_GATEWAY, w, 1);
	printf("\n    message: %s ", want);

	CU_ASSERT_FATAL(chmod(key, 0600) == 0);
	c = gwconf_parse_string("t.ini", text, GWCONF_GATEWAY, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->listen_host, "::");
	CU_ASSERT_EQUAL(c->listen_port, 7000);
	CU_ASSERT_STRING_EQUAL(c->key, key);
	gwconf_free(c);

	/* A missing certificate is named with its line. */
	snprintf(text, sizeof(text),
	    "[gateway]\nlisten = 127.0.0.1:7000\ncertificate = %s/none.crt\n"
	    "ca = %s/ca.crt\nkey = %s\n",
	    dir, dir, key);
	snprintf(want, sizeof(want),
	    "t.ini:3: certificate %s/none.crt: No such file or directory", dir);
	expect_errors(text, GWCONF_GATEWAY, w, 1);
}

/* ---- file trust ---- */

static void
test_group_writable_file_refused(void)
{
	char dir[256], want[1100];
	const char *w[1] = {want};

	make_dir(dir, sizeof(dir), "gw-file");
	write_file(dir, "10-policy.ini", "[quota]\ndefault = 3\n", 0664);
	snprintf(want, sizeof(want),
	    "%s/10-policy.ini: mode 0664 lets group/other write it; run: "
	    "chmod go-w %s/10-policy.ini",
	    dir, dir);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
	/* Mode 0644 (world-readable) is what it should be. */
	snprintf(want, sizeof(want), "%s/10-policy.ini", dir);
	CU_ASSERT_FATAL(chmod(want, 0644) == 0);
	{
		struct gwconf_errors e = {0};
		struct gwconf *c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);

		CU_ASSERT_PTR_NOT_NULL(c);
		CU_ASSERT_EQUAL(c != NULL ? c->quota_default : -1, 3);
		gwconf_free(c);
	}
}

static void
test_group_writable_dir_refused(void)
{
	char dir[256], want[1100];
	const char *w[1] = {want};

	make_dir(dir, sizeof(dir), "gw-dir");
	write_file(dir, "10-policy.ini", "[quota]\ndefault = 3\n", 0644);
	CU_ASSERT_FATAL(chmod(dir, 0775) == 0);
	snprintf(want, sizeof(want),
	    "%s: mode 0775 lets group/other write in it; run: chmod go-w %s",
	    dir, dir);
	expect_load_errors(dir, GWCONF_CLIENT, w, 1);
}

static void
test_symlinked_file_refused(void)
{
	char dir[256], real[300], link[300], want[1100];
	const char *w[1] = {want};

	make_dir(dir, sizeof(dir), "link-file");
	write_file(tmpdir, "elsewhere.ini", "[quota]\ndefault = 3\n", 0644);
	snprintf(real, sizeof(real), "%s/elsewhere.ini", tmpdir);
	snprintf(link, sizeof(link), "%s/20-quota.ini", dir);
	CU_ASSERT_FATAL(symlink(real, link) == 0);
	snprintf(want, sizeof(want),
	    "%s: is a symbolic link; refusing to follow it", link);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
}

static void
test_symlinked_dir_refused(void)
{
	char dir[256], link[300], want[1100];
	const char *w[1] = {want};

	make_dir(dir, sizeof(dir), "link-target");
	snprintf(link, sizeof(link), "%s/link-dir", tmpdir);
	CU_ASSERT_FATAL(symlink(dir, link) == 0);
	snprintf(want, sizeof(want),
	    "%s: is a symbolic link; refusing to follow it", link);
	expect_load_errors(link, GWCONF_CLIENT, w, 1);
}

static void
test_foreign_owner_refused(void)
{
	char dir[256], f[300], want[1100];
	const char *w[1] = {want};

	make_dir(dir, sizeof(dir), "foreign");
	write_file(dir, "10-policy.ini", "[quota]\ndefault = 3\n", 0644);
	snprintf(f, sizeof(f), "%s/10-policy.ini", dir);
	CU_ASSERT_FATAL(chown(f, FOREIGN_UID, (gid_t)-1) == 0);
	snprintf(want, sizeof(want),
	    "%s: owned by uid %d, not by root; run: chown root %s", f,
	    FOREIGN_UID, f);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
}

/* ---- the directories above, and the TLS files themselves ---- */

/* A configuration directory below a parent of its own (0755 both). */
static void
make_nested(char *parent, size_t plen, char *dir, size_t dlen, const char *name)
{
	make_dir(parent, plen, name);
	snprintf(dir, dlen, "%s/etc", parent);
	CU_ASSERT_FATAL(mkdir(dir, 0755) == 0);
	CU_ASSERT_FATAL(chmod(dir, 0755) == 0);
	write_file(dir, "10-policy.ini", "[quota]\ndefault = 3\n", 0644);
}

static void
test_parent_dir_checked(void)
{
	char parent[256], dir[400], link[300], want[1400];
	const char *w[1] = {want};
	struct gwconf_errors e = {0};
	struct gwconf *c;

	make_nested(parent, sizeof(parent), dir, sizeof(dir), "above");
	/* Group-writable: someone else could swap the whole directory. */
	CU_ASSERT_FATAL(chmod(parent, 0775) == 0);
	snprintf(want, sizeof(want),
	    "%s: mode 0775 lets group/other write in it (a directory above "
	    "%s); run: chmod go-w %s",
	    parent, dir, parent);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
	/* A user registry believes the socket path no more than that. */
	expect_load_errors(dir, GWCONF_CLIENT, w, 1);
	/* Sticky, as /tmp is: others may add names, not swap ours. */
	CU_ASSERT_FATAL(chmod(parent, 01777) == 0);
	c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL(c);
	gwconf_free(c);
	CU_ASSERT_FATAL(chmod(parent, 0755) == 0);

	/* A symbolic link above is refused, not followed. */
	snprintf(link, sizeof(link), "%s/above-link", tmpdir);
	CU_ASSERT_FATAL(symlink(parent, link) == 0);
	snprintf(dir, sizeof(dir), "%s/etc", link);
	snprintf(want, sizeof(want),
	    "%s: is a symbolic link (a directory above %s); refusing to "
	    "follow it",
	    link, dir);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);

	/* A missing directory above: no configuration, as a missing one. */
	snprintf(dir, sizeof(dir), "%s/no-such/etc", tmpdir);
	snprintf(want, sizeof(want), "%s: no such directory", dir);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
	{
		bool missing = false;

		c = gwconf_load(dir, GWCONF_CLIENT, &missing, &e);
		CU_ASSERT_PTR_NOT_NULL(c);
		CU_ASSERT(missing);
		gwconf_free(c);
	}
}

static void
test_parent_foreign_owner(void)
{
	char parent[256], dir[300], want[1100];
	const char *w[1] = {want};

	make_nested(parent, sizeof(parent), dir, sizeof(dir), "above-foreign");
	CU_ASSERT_FATAL(chown(parent, FOREIGN_UID, (gid_t)-1) == 0);
	snprintf(want, sizeof(want),
	    "%s: owned by uid %d, not by root (a directory above %s); run: "
	    "chown root %s",
	    parent, FOREIGN_UID, dir, parent);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
}

/* A [gateway] with TLS files in tls/ of a fresh directory `name`. */
static void
tls_setup_dir(char *dir, size_t len, const char *name, char *text, size_t tlen)
{
	make_dir(dir, len, name);
	write_file(dir, "gw.crt", "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file(dir, "gw.key", "-----BEGIN PRIVATE KEY-----\n", 0600);
	snprintf(text, tlen,
	    "[gateway]\nlisten = 127.0.0.1:7000\ncertificate = %s/gw.crt\n"
	    "key = %s/gw.key\nca = %s/ca.crt\n",
	    dir, dir, dir);
}

static void
test_tls_files_trusted(void)
{
	char dir[256], text[1024], p[300], link[300], want[1400];
	const char *w[1] = {want};
	struct gwconf_errors e = {0};
	struct gwconf *c;

	tls_setup_dir(dir, sizeof(dir), "tls-trust", text, sizeof(text));
	c = gwconf_parse_string("t.ini", text, GWCONF_GATEWAY, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/* Read whole: the TLS context is made of these bytes. */
	CU_ASSERT_STRING_EQUAL(c->key_pem.data,
	    "-----BEGIN PRIVATE KEY-----\n");
	CU_ASSERT_EQUAL(c->key_pem.len, 28);
	snprintf(p, sizeof(p), "%s/gw.crt", dir);
	CU_ASSERT_STRING_EQUAL(c->cert_pem.name, p);
	CU_ASSERT_PTR_NOT_NULL(c->ca_pem.data);
	gwconf_wipe_tls(c);
	CU_ASSERT_PTR_NULL(c->key_pem.data);
	CU_ASSERT_EQUAL(c->key_pem.len, 0);
	gwconf_free(c);

	/* The directory above the files. */
	CU_ASSERT_FATAL(chmod(dir, 0777) == 0);
	snprintf(want, sizeof(want),
	    "t.ini:4: key file %s/gw.key: %s: mode 0777 lets group/other "
	    "write in it (a directory above %s/gw.key); run: chmod go-w %s",
	    dir, dir, dir, dir);
	{
		struct gwconf_errors e2 = {0};

		c = gwconf_parse_string("t.ini", text, GWCONF_GATEWAY, &e2);
		CU_ASSERT_PTR_NULL(c);
		/* One line for each of the three files. */
		CU_ASSERT_EQUAL(e2.n, 3);
		CU_ASSERT(e2.n > 0 && strcmp(e2.v[0], want) == 0);
		show(&e2);
		gwconf_errors_free(&e2);
	}
	CU_ASSERT_FATAL(chmod(dir, 0755) == 0);

	/* A certificate someone else may write. */
	snprintf(p, sizeof(p), "%s/gw.crt", dir);
	CU_ASSERT_FATAL(chmod(p, 0664) == 0);
	snprintf(want, sizeof(want),
	    "t.ini:3: certificate %s: mode 0664 lets group/other write it; "
	    "run: chmod go-w %s",
	    p, p);
	expect_errors(text, GWCONF_GATEWAY, w, 1);
	CU_ASSERT_FATAL(chmod(p, 0644) == 0);

	/* A key reached through a symbolic link. */
	snprintf(p, sizeof(p), "%s/gw.key", dir);
	snprintf(link, sizeof(link), "%s/link.key", dir);
	CU_ASSERT_FATAL(symlink(p, link) == 0);
	snprintf(text, sizeof(text),
	    "[gateway]\nlisten = 127.0.0.1:7000\ncertificate = %s/gw.crt\n"
	    "key = %s\nca = %s/ca.crt\n",
	    dir, link, dir);
	snprintf(want, sizeof(want),
	    "t.ini:4: key file %s: is a symbolic link; refusing to follow it",
	    link);
	expect_errors(text, GWCONF_GATEWAY, w, 1);

	/* Larger than any PEM file of ours. */
	{
		char big[300];
		FILE *fp;
		size_t i;

		snprintf(big, sizeof(big), "%s/big.crt", dir);
		fp = fopen(big, "w");
		CU_ASSERT_FATAL(fp != NULL);
		for (i = 0; i < GWCONF_PEM_MAX / 60 + 1; i++)
			fputs("0123456789012345678901234567890123456789012345"
			      "67890123456789\n",
			    fp);
		fclose(fp);
		CU_ASSERT_FATAL(chmod(big, 0644) == 0);
		snprintf(text, sizeof(text),
		    "[gateway]\nlisten = 127.0.0.1:7000\ncertificate = "
		    "%s\nkey = %s/gw.key\nca = %s/ca.crt\n",
		    big, dir, dir);
		snprintf(want, sizeof(want),
		    "t.ini:3: certificate %s: larger than 1024 KiB, not a PEM "
		    "file of ours",
		    big);
		expect_errors(text, GWCONF_GATEWAY, w, 1);
	}
}

static void
test_tls_file_foreign_owner(void)
{
	char dir[256], text[1024], p[300], want[1100];
	const char *w[1] = {want};

	tls_setup_dir(dir, sizeof(dir), "tls-foreign", text, sizeof(text));
	snprintf(p, sizeof(p), "%s/ca.crt", dir);
	CU_ASSERT_FATAL(chown(p, FOREIGN_UID, (gid_t)-1) == 0);
	snprintf(want, sizeof(want),
	    "t.ini:5: ca %s: owned by uid %d, not by root; run: chown root %s",
	    p, FOREIGN_UID, p);
	expect_errors(text, GWCONF_GATEWAY, w, 1);
}

/* ---- from memory: what the privileged gateway hands over ---- */

static void
test_load_mem_same_messages(void)
{
	char dir[256], want0[1100], want1[1100];
	const char *w[2] = {want0, want1};
	struct gwconf_errors e = {0};
	struct gwconf *c, *m;
	size_t i;

	make_dir(dir, sizeof(dir), "mem");
	write_file(dir, "00-gateway.ini", "[gateway]\nsocket = /x/gw.sock\n",
	    0644);
	write_file(dir, "10-policy.ini",
	    "; rules\n[rule r]\naction = deny\nnames = x*\n", 0644);
	c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/* The gateway keeps what it read; a user registry does not. */
	CU_ASSERT_EQUAL_FATAL(c->ntexts, 2);
	CU_ASSERT_STRING_EQUAL(c->texts[0].name, c->files[0]);
	CU_ASSERT_STRING_EQUAL(c->texts[1].data,
	    "; rules\n[rule r]\naction = deny\nnames = x*\n");
	m = gwconf_load_mem(c->dir, c->texts, c->ntexts, NULL, 0,
	    GWCONF_GATEWAY, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(m->dir, dir);
	CU_ASSERT_EQUAL(m->nfiles, 2);
	CU_ASSERT_EQUAL(m->ntexts, 0);
	CU_ASSERT_STRING_EQUAL(m->socket_path, "/x/gw.sock");
	CU_ASSERT_EQUAL_FATAL(m->nrules, 1);
	CU_ASSERT_STRING_EQUAL(m->rules[0].file, c->files[1]);
	CU_ASSERT_EQUAL(m->rules[0].line, 2);
	gwconf_free(m);
	gwconf_free(c);
	c = gwconf_load(dir, GWCONF_CLIENT, NULL, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->ntexts, 0);
	gwconf_free(c);

	/* Broken: the same lines, file:line, as from the directory. */
	{
		struct gwconf_blob b[2] = {
		    {"/etc/x/00-a.ini", "[gateway]\nsocket = rel\n", 23},
		    {"/etc/x/10-b.ini", "[rule r]\nacton = deny\n", 22},
		};

		snprintf(want0, sizeof(want0),
		    "/etc/x/00-a.ini:2: bad path \"rel\" for socket in "
		    "[gateway] (an absolute path)");
		snprintf(want1, sizeof(want1),
		    "/etc/x/10-b.ini:2: unknown key \"acton\" in [rule r]");
		m = gwconf_load_mem("/etc/x", b, 2, NULL, 0, GWCONF_GATEWAY,
		    &e);
		CU_ASSERT_PTR_NULL(m);
		CU_ASSERT_EQUAL(e.n, 3); /* and the rule without action */
		for (i = 0; i < 2 && i < e.n; i++)
			CU_ASSERT_STRING_EQUAL(e.v[i], w[i]);
		show(&e);
		gwconf_errors_free(&e);
	}
	/* A NUL inside a file is said where it is, not a cut. */
	{
		struct gwconf_blob b = {"/etc/x/00-a.ini",
		    "[quota]\ndefault = 3\n\0junk\n", 25};

		snprintf(want0, sizeof(want0),
		    "/etc/x/00-a.ini:3: NUL byte in line");
		m = gwconf_load_mem("/etc/x", &b, 1, NULL, 0, GWCONF_GATEWAY,
		    &e);
		CU_ASSERT_PTR_NULL(m);
		CU_ASSERT_EQUAL(e.n, 1);
		if (e.n == 1)
			CU_ASSERT_STRING_EQUAL(e.v[0], want0);
		gwconf_errors_free(&e);
	}
}

static void
test_load_mem_tls(void)
{
	static char ini[] = "[gateway]\nlisten = 127.0.0.1:7000\n"
	                    "certificate = /t/gw.crt\nkey = /t/gw.key\n"
	                    "ca = /t/ca.crt\n";
	struct gwconf_blob conf = {"/t/00.ini", ini, sizeof(ini) - 1};
	struct gwconf_blob pem[3] = {
	    {"/t/ca.crt", "CA", 2},
	    {"/t/gw.key", "KEY", 3},
	    {"/t/gw.crt", "CERT", 4},
	};
	const char *want = "/t/00.ini:5: ca /t/ca.crt: its contents were not "
	                   "handed over";
	struct gwconf_errors e = {0};
	struct gwconf *c;

	/* Nothing on disk is looked at: these paths do not exist. */
	c = gwconf_load_mem("/t", &conf, 1, pem, 3, GWCONF_GATEWAY, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->cert_pem.data, "CERT");
	CU_ASSERT_STRING_EQUAL(c->key_pem.data, "KEY");
	CU_ASSERT_EQUAL(c->ca_pem.len, 2);
	gwconf_free(c);
	c = gwconf_load_mem("/t", &conf, 1, pem + 1, 2, GWCONF_GATEWAY, &e);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_EQUAL(e.n, 1);
	if (e.n == 1)
		CU_ASSERT_STRING_EQUAL(e.v[0], want);
	gwconf_errors_free(&e);
}

static void
test_file_too_large(void)
{
	char dir[256], p[300], want[1100];
	const char *w[1] = {want};
	FILE *fp;
	size_t i;

	make_dir(dir, sizeof(dir), "large");
	snprintf(p, sizeof(p), "%s/10-big.ini", dir);
	fp = fopen(p, "w");
	CU_ASSERT_FATAL(fp != NULL);
	for (i = 0; i < GWCONF_FILE_MAX / 16 + 1; i++)
		fputs("; a comment ...\n", fp);
	fclose(fp);
	CU_ASSERT_FATAL(chmod(p, 0644) == 0);
	snprintf(want, sizeof(want), "%s: larger than 1024 KiB", p);
	expect_load_errors(dir, GWCONF_GATEWAY, w, 1);
}

/* ---- the privileged parent's message (gateway/privsep.h) ---- */

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* One record, as privsep.h lays it out, appended at p; its length. */
static size_t
record(unsigned char *p, char kind, const char *name, uint32_t namelen,
    const char *data, uint32_t datalen)
{
	p[0] = (unsigned char)kind;
	put32(p + 1, namelen);
	put32(p + 5, datalen);
	memcpy(p + 9, name, strlen(name));
	memcpy(p + 9 + strlen(name), data, strlen(data));
	return 9 + strlen(name) + strlen(data);
}

/* decode must refuse p[0..len) with a message containing want. */
static void
refuse(const unsigned char *p, size_t len, const char *want)
{
	struct privsep_conf c;
	char err[512];

	err[0] = '\0';
	CU_ASSERT_EQUAL(privsep_decode(p, len, &c, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NULL(c.dir);
	CU_ASSERT_EQUAL(c.nini, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	if (strstr(err, want) == NULL)
		printf("\n    want: %s\n    got:  %s ", want, err);
}

static void
test_privsep_round_trip(void)
{
	char dir[256], text[1024];
	struct gwconf_errors e = {0};
	struct privsep_conf pc;
	struct gwconf *c, *m;
	struct tbuf msg;
	uint32_t type;
	size_t len, i;
	char err[512];

	tls_setup_dir(dir, sizeof(dir), "privsep", text, sizeof(text));
	write_file(dir, "00-gateway.ini", text, 0644);
	write_file(dir, "10-policy.ini", "[rule r]\naction = deny\n", 0644);
	c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	tbuf_init(&msg);
	CU_ASSERT_FATAL(privsep_encode(c, &msg, err, sizeof(err)) == 0);
	CU_ASSERT_EQUAL_FATAL(privsep_header((unsigned char *)msg.p, msg.len,
	                          &type, &len, err, sizeof(err)),
	    1);
	CU_ASSERT_EQUAL(type, PRIVSEP_CONFIG);
	CU_ASSERT_EQUAL_FATAL(len, msg.len - PRIVSEP_HEADER);
	CU_ASSERT_FATAL(privsep_decode((unsigned char *)msg.p + PRIVSEP_HEADER,
	                    len, &pc, err, sizeof(err)) == 0);
	CU_ASSERT_STRING_EQUAL(pc.dir, dir);
	CU_ASSERT_EQUAL(pc.nini, 2);
	CU_ASSERT_EQUAL(pc.npem, 3);
	m = gwconf_load_mem(pc.dir, pc.ini, pc.nini, pc.pem, pc.npem,
	    GWCONF_GATEWAY, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(m->key_pem.data, c->key_pem.data);
	CU_ASSERT_STRING_EQUAL(m->rules[0].file, c->rules[0].file);
	CU_ASSERT_EQUAL(m->listen_port, 7000);
	gwconf_free(m);
	privsep_conf_free(&pc);

	/* Every prefix of the message is either whole records or refused:
	 * nothing is read past its end (the sanitizer build says so). */
	for (i = 0; i < len; i++) {
		if (privsep_decode((unsigned char *)msg.p + PRIVSEP_HEADER, i,
		        &pc, err, sizeof(err)) == 0)
			privsep_conf_free(&pc);
	}
	tbuf_free(&msg);
	gwconf_free(c);
}

static void
test_privsep_bad_messages(void)
{
	unsigned char m[4096], h[PRIVSEP_HEADER] = {0};
	size_t n, len;
	uint32_t type;
	char err[512];
	int i;

	/* Headers: bounded before anything is buffered. */
	CU_ASSERT_EQUAL(privsep_header(h, 7, &type, &len, err, sizeof(err)), 0);
	put32(h, PRIVSEP_CONFIG);
	put32(h + 4, PRIVSEP_MSG_MAX + 1);
	CU_ASSERT_EQUAL(privsep_header(h, 8, &type, &len, err, sizeof(err)),
	    -1);
	put32(h + 4, 0xffffffff);
	CU_ASSERT_EQUAL(privsep_header(h, 8, &type, &len, err, sizeof(err)),
	    -1);
	put32(h, PRIVSEP_RELOAD);
	put32(h + 4, 1);
	CU_ASSERT_EQUAL(privsep_header(h, 8, &type, &len, err, sizeof(err)),
	    -1);
	put32(h + 4, 0);
	CU_ASSERT_EQUAL(privsep_header(h, 8, &type, &len, err, sizeof(err)), 1);
	put32(h, 99);
	CU_ASSERT_EQUAL(privsep_header(h, 8, &type, &len, err, sizeof(err)),
	    -1);

	/* Lengths that would run past the end, or wrap. */
	n = record(m, 'D', "/etc", 0xffffffff, "", 0);
	refuse(m, n, "a record 'D' at offset 0");
	n = record(m, 'D', "/etc", 4, "", 0);
	n += record(m + n, 'F', "/etc/a.ini", 10, "[quota]\n", 0xfffffff0);
	refuse(m, n, "a record 'F' at offset 13");
	n = record(m, 'D', "/etc", 4, "", 0);
	n += record(m + n, 'F', "/etc/a.ini", 10, "[quota]\n", 9);
	refuse(m, n, "a record 'F'");
	n = record(m, 'D', "/etc", 4, "", 0);
	n += record(m + n, 'F', "/etc/a.ini", 10, "[quota]\n", 8);
	{
		struct privsep_conf pc;

		CU_ASSERT_EQUAL(privsep_decode(m, n, &pc, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(pc.nini, 1);
		CU_ASSERT_EQUAL(pc.ini[0].len, 8);
		privsep_conf_free(&pc);
	}
	/* A file larger than any the parent would read. */
	n = record(m, 'D', "/etc", 4, "", 0);
	m[n] = 'F';
	put32(m + n + 1, 1);
	put32(m + n + 5, GWCONF_FILE_MAX + 1);
	refuse(m, n + 9 + 1, "a record 'F'");
	/* Data with the directory; a name with a NUL; an empty name. */
	n = record(m, 'D', "/etc", 4, "x", 1);
	refuse(m, n, "a record 'D'");
	n = record(m, 'D', "/etc", 4, "", 0);
	memcpy(m + 9, "/e\0c", 4);
	refuse(m, n, "NUL byte");
	n = record(m, 'D', "", 0, "", 0);
	refuse(m, n, "a record 'D'");
	/* Order and counts. */
	n = record(m, 'F', "/etc/a.ini", 10, "", 0);
	refuse(m, n, "the directory must come first");
	n = record(m, 'D', "/etc", 4, "", 0);
	n += record(m + n, 'D', "/etc", 4, "", 0);
	refuse(m, n, "the directory must come first, and once");
	n = record(m, 'D', "/etc", 4, "", 0);
	n += record(m + n, 'P', "rel.key", 7, "", 0);
	refuse(m, n, "not an absolute path");
	n = record(m, 'D', "/etc", 4, "", 0);
	for (i = 0; i < 4; i++)
		n += record(m + n, 'P', "/k", 2, "", 0);
	refuse(m, n, "or more than three");
	n = record(m, 'X', "/etc", 4, "", 0);
	refuse(m, n, "unknown kind");
	refuse(m, 5, "too few for a record");
	refuse(m, 0, "no directory");
}

/* ---- what a good directory gives ---- */

static void
test_lexical_order(void)
{
	char dir[256], sub[300], p[300];
	struct gwconf_errors e = {0};
	struct gwconf *c;

	make_dir(dir, sizeof(dir), "order");
	/* Written in the wrong order on purpose. */
	write_file(dir, "20-b.ini", "[rule b]\naction = deny\n", 0644);
	write_file(dir, "9-c.ini", "[rule c]\naction = allow\n", 0644);
	write_file(dir, "10-a.ini", "[rule a]\naction = allow\n", 0644);
	/* Not configuration: other names, dot files, a directory. */
	write_file(dir, "README", "not ini\n", 0644);
	write_file(dir, "10-a.ini~", "[rule backup]\n", 0644);
	write_file(dir, ".10-a.ini.swp", "junk\n", 0644);
	write_file(dir, ".hidden.ini", "junk\n", 0644);
	snprintf(sub, sizeof(sub), "%s/old.ini", dir);
	CU_ASSERT_FATAL(mkdir(sub, 0755) == 0);

	c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(c->nrules, 3);
	CU_ASSERT_STRING_EQUAL(c->rules[0].name, "a"); /* "10-" < "20-" */
	CU_ASSERT_STRING_EQUAL(c->rules[1].name, "b");
	CU_ASSERT_STRING_EQUAL(c->rules[2].name, "c"); /* strcmp: "9" > "2" */
	CU_ASSERT_EQUAL_FATAL(c->nfiles, 3);
	snprintf(p, sizeof(p), "%s/10-a.ini", dir);
	CU_ASSERT_STRING_EQUAL(c->files[0], p);
	CU_ASSERT_STRING_EQUAL(c->rules[0].file, p);
	CU_ASSERT_EQUAL(c->rules[0].line, 1);
	snprintf(p, sizeof(p), "%s/9-c.ini", dir);
	CU_ASSERT_STRING_EQUAL(c->files[2], p);
	CU_ASSERT_STRING_EQUAL(c->dir, dir);
	gwconf_free(c);
}

static void
test_full_config(void)
{
	static const char text[] =
	    "; the gateway\n"
	    "[gateway]\n"
	    "socket = /run/tcl-comm/gw.sock\n"
	    "user = nobody\n"
	    "listen = gw.example.org:7443   ; TLS, for other gateways\n"
	    "certificate = /etc/tcl/comm/tls/gw.crt\n"
	    "key = /etc/tcl/comm/tls/gw.key\n"
	    "ca = /etc/tcl/comm/tls/ca.crt\n"
	    "max_connections = 500\n"
	    "max_message = 131072\n"
	    "handshake_timeout = 5\n"
	    "lookup_timeout_ms = 1500\n"
	    "\n"
	    "[rule no-low-ports]\n"
	    "action = deny\n"
	    "ports = 1-1023\n"
	    "message = ports below 1024 are not offered\n"
	    "\n"
	    "# comments with '#' too\n"
	    "[rule staff]\n"
	    "action = allow\n"
	    "users   =   root  1234\n"
	    "groups = staff 4321\n"
	    "names = svc-* {x} build-?\n"
	    "ports = 7000 20000-20999\n"
	    "scopes = host global\n"
	    "\n"
	    "[quota]\n"
	    "default = 16\n"
	    "user root = 100\n"
	    "group staff = 64\n"
	    "\n"
	    "[remote parent]\n"
	    "address = [2001:db8::1]:7443\n"
	    "peer_name = parent.example.org\n"
	    "export = svc-* calc\n"
	    "import = *\n"
	    "upstream = yes\n"
	    "\n"
	    "[remote sibling]\n"
	    "address = 10.0.0.2:7443\n"
	    "peer_name = sibling.example.org\n";
	struct gwconf_errors e = {0};
	struct gwconf *c;
	const struct gwconf_rule *r;
	const struct gwconf_remote *m;

	c = gwconf_parse_string("full.ini", text, GWCONF_CLIENT, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NULL(c->dir);
	CU_ASSERT_EQUAL_FATAL(c->nfiles, 1);
	CU_ASSERT_STRING_EQUAL(c->files[0], "full.ini");
	CU_ASSERT_STRING_EQUAL(c->socket_path, "/run/tcl-comm/gw.sock");
	CU_ASSERT_STRING_EQUAL(c->run_as, "nobody");
	CU_ASSERT_STRING_EQUAL(c->listen_host, "gw.example.org");
	CU_ASSERT_EQUAL(c->listen_port, 7443);
	CU_ASSERT_STRING_EQUAL(c->certificate, "/etc/tcl/comm/tls/gw.crt");
	CU_ASSERT_STRING_EQUAL(c->key, "/etc/tcl/comm/tls/gw.key");
	CU_ASSERT_STRING_EQUAL(c->ca, "/etc/tcl/comm/tls/ca.crt");
	CU_ASSERT_EQUAL(c->max_connections, 500);
	CU_ASSERT_EQUAL(c->max_message, 131072);
	CU_ASSERT_EQUAL(c->handshake_timeout, 5);
	CU_ASSERT_EQUAL(c->lookup_timeout_ms, 1500);

	CU_ASSERT_EQUAL_FATAL(c->nrules, 2);
	r = &c->rules[0];
	CU_ASSERT_STRING_EQUAL(r->name, "no-low-ports");
	CU_ASSERT_STRING_EQUAL(r->file, "full.ini");
	CU_ASSERT_EQUAL(r->line, 14);
	CU_ASSERT_EQUAL(r->action, GWCONF_DENY);
	CU_ASSERT_EQUAL_FATAL(r->nports, 1);
	CU_ASSERT(r->ports[0].lo == 1 && r->ports[0].hi == 1023);
	CU_ASSERT_STRING_EQUAL(r->message, "ports below 1024 are not offered");
	CU_ASSERT_EQUAL(r->nuids + r->ngids + r->nnames, 0);
	CU_ASSERT_EQUAL(r->scopes, 0);

	r = &c->rules[1];
	CU_ASSERT_EQUAL(r->line, 20);
	CU_ASSERT_EQUAL(r->action, GWCONF_ALLOW);
	CU_ASSERT_EQUAL_FATAL(r->nuids, 2);
	CU_ASSERT(r->uids[0] == 0 && r->uids[1] == 1234);
	CU_ASSERT_EQUAL_FATAL(r->ngids, 2);
	CU_ASSERT(r->gids[0] == 50 && r->gids[1] == 4321); /* Debian's staff */
	CU_ASSERT_EQUAL_FATAL(r->nnames, 3);
	CU_ASSERT_STRING_EQUAL(r->names[0], "svc-*");
	CU_ASSERT_STRING_EQUAL(r->names[1], "{x}");
	CU_ASSERT_STRING_EQUAL(r->names[2], "build-?");
	CU_ASSERT_EQUAL_FATAL(r->nports, 2);
	CU_ASSERT(r->ports[0].lo == 7000 && r->ports[0].hi == 7000);
	CU_ASSERT(r->ports[1].lo == 20000 && r->ports[1].hi == 20999);
	CU_ASSERT_EQUAL(r->scopes, GWCONF_SCOPE_HOST | GWCONF_SCOPE_GLOBAL);
	CU_ASSERT_PTR_NULL(r->message);

	CU_ASSERT_EQUAL(c->quota_default, 16);
	CU_ASSERT_EQUAL_FATAL(c->nquotas, 2);
	CU_ASSERT(!c->quotas[0].group && c->quotas[0].uid == 0 &&
	          c->quotas[0].max_entries == 100);
	CU_ASSERT(c->quotas[1].group && c->quotas[1].gid == 50 &&
	          c->quotas[1].max_entries == 64);

	CU_ASSERT_EQUAL_FATAL(c->nremotes, 2);
	m = &c->remotes[0];
	CU_ASSERT_STRING_EQUAL(m->name, "parent");
	CU_ASSERT_EQUAL(m->line, 33);
	CU_ASSERT_STRING_EQUAL(m->host, "2001:db8::1");
	CU_ASSERT_EQUAL(m->port, 7443);
	CU_ASSERT_STRING_EQUAL(m->peer_name, "parent.example.org");
	CU_ASSERT_EQUAL_FATAL(m->nexports, 2);
	CU_ASSERT_STRING_EQUAL(m->exports[1], "calc");
	CU_ASSERT_EQUAL_FATAL(m->nimports, 1);
	CU_ASSERT_STRING_EQUAL(m->imports[0], "*");
	CU_ASSERT(m->upstream);
	CU_ASSERT(!m->reexport);
	m = &c->remotes[1];
	CU_ASSERT_STRING_EQUAL(m->host, "10.0.0.2");
	CU_ASSERT_EQUAL(m->nexports + m->nimports, 0);
	CU_ASSERT(!m->upstream);
	gwconf_free(c);
}

static void
test_defaults(void)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;

	c = gwconf_parse_string("empty.ini", "; nothing\n\n", GWCONF_GATEWAY,
	    &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->socket_path, GWCONF_SOCKET_DEFAULT);
	CU_ASSERT_PTR_NULL(c->run_as);
	CU_ASSERT_PTR_NULL(c->listen_host);
	CU_ASSERT_PTR_NULL(c->key);
	CU_ASSERT_EQUAL(c->max_connections, 1024);
	CU_ASSERT_EQUAL(c->max_message, 65536);
	CU_ASSERT_EQUAL(c->handshake_timeout, 10);
	CU_ASSERT_EQUAL(c->lookup_timeout_ms, 2000);
	CU_ASSERT_EQUAL(c->quota_default, 32);
	CU_ASSERT_EQUAL(c->nrules + c->nquotas + c->nremotes, 0);
	gwconf_free(c);
}

static void
test_missing_dir(void)
{
	char dir[300];
	struct gwconf_errors e = {0};
	struct gwconf *c;
	bool missing = false;

	snprintf(dir, sizeof(dir), "%s/no-such-dir", tmpdir);
	/* A user registry: no gateway configured, the defaults. */
	c = gwconf_load(dir, GWCONF_CLIENT, &missing, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(missing);
	CU_ASSERT_EQUAL(e.n, 0);
	CU_ASSERT_EQUAL(c->nfiles, 0);
	CU_ASSERT_STRING_EQUAL(c->socket_path, GWCONF_SOCKET_DEFAULT);
	gwconf_free(c);

	/* The gateway cannot do without. */
	missing = false;
	c = gwconf_load(dir, GWCONF_GATEWAY, &missing, &e);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT(missing);
	CU_ASSERT_EQUAL_FATAL(e.n, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.v[0], dir));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.v[0], "no such directory"));
	gwconf_errors_free(&e);
}

static void
test_default_dir(void)
{
	setenv(GWCONF_DIR_ENV, "/tmp/elsewhere", 1);
	CU_ASSERT_STRING_EQUAL(gwconf_default_dir(), "/tmp/elsewhere");
	unsetenv(GWCONF_DIR_ENV);
	CU_ASSERT_STRING_EQUAL(gwconf_default_dir(), GWCONF_DIR_DEFAULT);
}

/*
 * Where tests/unit/ starts in __FILE__, which names this file under the
 * source tree when the build gives the compiler an absolute path; NULL
 * when it does not, and the source tree is not known.
 */
static const char *
source_tests_dir(void)
{
	if (__FILE__[0] != '/')
		return NULL;
	return strstr(__FILE__, "tests/unit/");
}

/* The sample's "user = tclcomm" line made "user = USER" (in place). */
static void
swap_user(char *text, size_t size, const char *user)
{
	static const char line[] = "\nuser = tclcomm\n";
	char rest[8192];
	char *p = strstr(text, line);

	if (p == NULL)
		return;
	snprintf(rest, sizeof(rest), "%s", p + sizeof(line) - 1);
	snprintf(p, size - (size_t)(p - text), "\nuser = %s\n%s", user, rest);
}

/*
 * Copy the samples of etc-tcl-comm/ into tmpdir/name; with `uncomment`,
 * the commented-out examples (";key = value", ";[section]": no space
 * after the semicolon) become active; with `user`, the gateway's user is
 * that one instead of tclcomm.  The source tree must be known.
 */
static void
copy_samples(char *dir, size_t len, const char *name, bool uncomment,
    const char *user)
{
	static const char *names[] = {"00-gateway.ini", "10-policy.ini",
	    "20-quota.ini", "30-remotes.ini"};
	char src[512], buf[8192], out[8192];
	const char *slash, *p;
	size_t i, n, o;
	FILE *in;

	slash = source_tests_dir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(slash);
	make_dir(dir, len, name);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(src, sizeof(src), "%.*setc-tcl-comm/%s",
		    (int)(slash - __FILE__), __FILE__, names[i]);
		in = fopen(src, "r");
		CU_ASSERT_PTR_NOT_NULL_FATAL(in);
		n = fread(buf, 1, sizeof(buf) - 1, in);
		buf[n] = '\0';
		fclose(in);
		for (p = buf, o = 0; *p != '\0'; p++) {
			if (uncomment && *p == ';' &&
			    (p == buf || p[-1] == '\n') && p[1] != ' ' &&
			    p[1] != '\n')
				continue;
			out[o++] = *p;
		}
		out[o] = '\0';
		if (user != NULL)
			swap_user(out, sizeof(out), user);
		write_file(dir, names[i], out, 0644);
	}
}

/* The samples in etc-tcl-comm/ load as they are, in both modes. */
static void
test_samples_load(void)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;
	char dir[256];

	copy_samples(dir, sizeof(dir), "samples", false, NULL);
	c = gwconf_load(dir, GWCONF_CLIENT, NULL, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->nfiles, 4);
	CU_ASSERT_EQUAL(c->nrules, 4);
	CU_ASSERT_EQUAL(c->nquotas, 3);
	CU_ASSERT_STRING_EQUAL(c->socket_path, "/run/tcl-comm/gateway.sock");
	CU_ASSERT_STRING_EQUAL(c->run_as, "tclcomm");
	gwconf_free(c);
	/* The gateway runs as tclcomm, which the package makes: where it
	 * is not made, the one error says so, and the samples load with an
	 * account that exists. */
	c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);
	if (getpwnam("tclcomm") != NULL) {
		show(&e);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_STRING_EQUAL(c->run_as, "tclcomm");
	} else {
		CU_ASSERT_PTR_NULL(c);
		CU_ASSERT_EQUAL_FATAL(e.n, 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.v[0], "/00-gateway.ini:"));
		CU_ASSERT_PTR_NOT_NULL(
		    strstr(e.v[0], ": unknown user \"tclcomm\" in [gateway]"));
		gwconf_errors_free(&e);
		copy_samples(dir, sizeof(dir), "samples-nobody", false,
		    "nobody");
		c = gwconf_load(dir, GWCONF_GATEWAY, NULL, &e);
		show(&e);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_STRING_EQUAL(c->run_as, "nobody");
	}
	gwconf_free(c);
	gwconf_errors_free(&e);
}

/* ... and so do the examples commented out in them. */
static void
test_sample_examples_load(void)
{
	struct gwconf_errors e = {0};
	struct gwconf *c;
	char dir[256];

	copy_samples(dir, sizeof(dir), "examples", true, NULL);
	c = gwconf_load(dir, GWCONF_CLIENT, NULL, &e);
	show(&e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->nremotes, 2);
	CU_ASSERT_EQUAL(c->listen_port, 7443);
	CU_ASSERT_PTR_NOT_NULL(c->key);
	gwconf_free(c);
	gwconf_errors_free(&e);
}

/*
 * CUnit 2.1 has no "skipped" result: a case that cannot run here is made
 * inactive before the run, and said so.  The run summary counts it under
 * Inactive, never as passed.
 */
static void
skip_case(CU_pSuite s, const char *name, const char *why)
{
	CU_pTest t;

	if ((t = CU_get_test(s, name)) == NULL) {
		fprintf(stderr, "no case named \"%s\" to skip\n", name);
		exit(1);
	}
	printf("skipped: %s: %s\n", name, why);
	CU_set_test_active(t, CU_FALSE);
}

int
main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
	    {"unknown section", test_unknown_section},
	    {"gateway names are host names", test_gateway_names},
	    {"unknown key", test_unknown_key},
	    {"bad number", test_bad_number},
	    {"number out of range", test_out_of_range},
	    {"unknown user", test_unknown_user},
	    {"a user registry does not look up the gateway's user",
	        test_client_ignores_gateway_user},
	    {"unknown group", test_unknown_group},
	    {"bad port range", test_bad_port_range},
	    {"bad scope", test_bad_scope},
	    {"bad action", test_bad_action},
	    {"bad yes/no", test_bad_bool},
	    {"bad address or path", test_bad_address},
	    {"duplicate key", test_duplicate_key},
	    {"duplicate section in a file", test_duplicate_section_in_file},
	    {"duplicate section across files",
	        test_duplicate_section_across_files},
	    {"line longer than 1024 bytes", test_line_too_long},
	    {"inih's limits do not show", test_inih_limits_hidden},
	    {"key outside any section", test_key_outside_section},
	    {"rule without action", test_rule_without_action},
	    {"remote without address or peer_name",
	        test_remote_without_address},
	    {"malformed lines and headers", test_malformed_lines},
	    {"a second upstream", test_second_upstream},
	    {"all errors are collected", test_all_errors_collected},
	    {"gateway: listen needs the TLS files",
	        test_listen_needs_tls_files},
	    {"gateway: key file 0644 refused, 0600 taken", test_key_file_mode},
	    {"group-writable file refused", test_group_writable_file_refused},
	    {"group-writable directory refused",
	        test_group_writable_dir_refused},
	    {"symlinked file refused", test_symlinked_file_refused},
	    {"symlinked directory refused", test_symlinked_dir_refused},
	    {"file not owned by root refused (as root)",
	        test_foreign_owner_refused},
	    {"a directory above, writable or a link, refused",
	        test_parent_dir_checked},
	    {"a directory above of another uid refused (as root)",
	        test_parent_foreign_owner},
	    {"gateway: the TLS files trusted and read", test_tls_files_trusted},
	    {"gateway: a TLS file of another uid refused (as root)",
	        test_tls_file_foreign_owner},
	    {"from memory: the same configuration, the same messages",
	        test_load_mem_same_messages},
	    {"from memory: the TLS files as handed over", test_load_mem_tls},
	    {"a file larger than 1 MiB refused", test_file_too_large},
	    {"privsep: what the parent read, as the child builds it",
	        test_privsep_round_trip},
	    {"privsep: every bad length or order refused",
	        test_privsep_bad_messages},
	    {"files are read in lexical order", test_lexical_order},
	    {"a full configuration loads with its values", test_full_config},
	    {"defaults", test_defaults},
	    {"missing directory: client defaults, gateway error",
	        test_missing_dir},
	    {"directory from the environment", test_default_dir},
	    {"the etc-tcl-comm samples load", test_samples_load},
	    {"their commented-out examples load", test_sample_examples_load},
	};
	CU_pSuite s;
	size_t i;
	int rc;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("gwconf", suite_init, suite_clean);
	if (s == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 1;
		}
	}
	if (geteuid() != 0) {
		skip_case(s, "file not owned by root refused (as root)",
		    "needs root to give a file to another uid");
		skip_case(s,
		    "a directory above of another uid refused (as root)",
		    "needs root to give a directory to another uid");
		skip_case(s,
		    "gateway: a TLS file of another uid refused (as root)",
		    "needs root to give a file to another uid");
	}
	if (source_tests_dir() == NULL) {
		skip_case(s, "the etc-tcl-comm samples load",
		    "source tree not known");
		skip_case(s, "their commented-out examples load",
		    "source tree not known");
	}
	CU_set_fail_on_inactive(CU_FALSE);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
