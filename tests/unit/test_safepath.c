/*
 * Unit tests for config/safepath.c: the ~/.tcl/comm tree is created 0700
 * whatever the umask, and a tree that is too open, foreign-owned or
 * reached through a symbolic link is refused with a message that names the
 * path and the fix; safe_walk checks every directory above a trusted file
 * (root's or ours, not writable by group or other unless sticky, never a
 * symbolic link).
 */
#define _GNU_SOURCE /* nftw() */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "safepath.h"

#define FOREIGN_UID 65534 /* nobody */

static char tmpdir[64];

static void
path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static int
suite_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/commreg-test.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
suite_clean(void)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_tree_created_0700(void)
{
	char home[128], p[256], regdir[256], err[512];
	mode_t old;

	path_in(home, sizeof(home), "home-a");
	CU_ASSERT_FATAL(mkdir(home, 0700) == 0);
	old = umask(022);
	CU_ASSERT_EQUAL(safe_comm_tree(home, geteuid(), regdir, sizeof(regdir),
	                    err, sizeof(err)),
	    0);
	umask(old);
	snprintf(p, sizeof(p), "%s/.tcl/comm/registry", home);
	CU_ASSERT_STRING_EQUAL(regdir, p);
	CU_ASSERT_EQUAL(mode_of(p), 0700);
	snprintf(p, sizeof(p), "%s/.tcl", home);
	CU_ASSERT_EQUAL(mode_of(p), 0700);
	snprintf(p, sizeof(p), "%s/.tcl/comm", home);
	CU_ASSERT_EQUAL(mode_of(p), 0700);
	snprintf(p, sizeof(p), "%s/.tcl/comm/log", home);
	CU_ASSERT_EQUAL(mode_of(p), 0700);

	/* A second run accepts what the first one made. */
	CU_ASSERT_EQUAL(safe_comm_tree(home, geteuid(), regdir, sizeof(regdir),
	                    err, sizeof(err)),
	    0);
}

static void
test_tree_0700_whatever_the_umask(void)
{
	char home[128], p[256], regdir[256], err[512];
	mode_t old;

	path_in(home, sizeof(home), "home-umask");
	CU_ASSERT_FATAL(mkdir(home, 0700) == 0);
	old = umask(0);
	CU_ASSERT_EQUAL(safe_comm_tree(home, geteuid(), regdir, sizeof(regdir),
	                    err, sizeof(err)),
	    0);
	umask(0777);
	snprintf(p, sizeof(p), "%s/d-0777", tmpdir);
	CU_ASSERT_EQUAL(safe_dir(p, geteuid(), err, sizeof(err)), 0);
	umask(old);
	CU_ASSERT_EQUAL(mode_of(p), 0700);
	snprintf(p, sizeof(p), "%s/.tcl/comm/registry", home);
	CU_ASSERT_EQUAL(mode_of(p), 0700);
}

/* A directory with `mode` must be refused, and the message must say why. */
static void
refuse_dir_mode(const char *name, mode_t mode, const char *want)
{
	char p[256], err[512];

	path_in(p, sizeof(p), name);
	CU_ASSERT_FATAL(mkdir(p, 0700) == 0);
	CU_ASSERT_FATAL(chmod(p, mode) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_dir(p, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod 700"));
	printf("\n    message: %s ", err);
	CU_ASSERT_EQUAL(mode_of(p), mode); /* checked, never "fixed" */
}

static void
test_refuses_0755_dir(void)
{
	refuse_dir_mode("d-0755", 0755, "mode 0755 is too open");
}

static void
test_refuses_group_writable_dir(void)
{
	refuse_dir_mode("d-0770", 0770, "mode 0770");
	refuse_dir_mode("d-0720", 0720, "mode 0720");
	refuse_dir_mode("d-0701", 0701, "mode 0701");
}

static void
test_refuses_symlinked_dir(void)
{
	char real[256], link[256], home[128], regdir[256], err[512];

	path_in(real, sizeof(real), "real-dir");
	path_in(link, sizeof(link), "link-dir");
	CU_ASSERT_FATAL(mkdir(real, 0700) == 0);
	CU_ASSERT_FATAL(symlink(real, link) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_dir(link, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, link));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));
	printf("\n    message: %s ", err);

	/* ~/.tcl as a symlink is refused just the same. */
	path_in(home, sizeof(home), "home-link");
	CU_ASSERT_FATAL(mkdir(home, 0700) == 0);
	snprintf(link, sizeof(link), "%s/.tcl", home);
	CU_ASSERT_FATAL(symlink(real, link) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_comm_tree(home, geteuid(), regdir, sizeof(regdir),
	                    err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, link));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));

	/* A dangling symlink is not replaced by a fresh directory. */
	path_in(link, sizeof(link), "dangling");
	CU_ASSERT_FATAL(symlink("/nonexistent/commreg", link) == 0);
	CU_ASSERT_EQUAL(safe_dir(link, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));
}

static void
test_refuses_non_directory(void)
{
	char p[256], err[512];
	int fd;

	path_in(p, sizeof(p), "plain-file");
	fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0600);
	CU_ASSERT_FATAL(fd != -1);
	close(fd);
	CU_ASSERT_EQUAL(safe_dir(p, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a directory"));
}

static void
test_missing_parent(void)
{
	char p[256], err[512];

	path_in(p, sizeof(p), "no-such/child");
	CU_ASSERT_EQUAL(safe_dir(p, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "parent"));
	CU_ASSERT_EQUAL(safe_comm_tree("relative/home", geteuid(), p, sizeof(p),
	                    err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "relative/home"));
}

static void
test_parent_dir_rules(void)
{
	char p[256], err[512];

	/* ~/.tcl may be readable by others, never writable. */
	path_in(p, sizeof(p), "tcl-0755");
	CU_ASSERT_FATAL(mkdir(p, 0700) == 0 && chmod(p, 0755) == 0);
	CU_ASSERT_EQUAL(safe_parent_dir(p, geteuid(), err, sizeof(err)), 0);
	CU_ASSERT_FATAL(chmod(p, 0775) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_parent_dir(p, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod go-w"));
	CU_ASSERT_FATAL(chmod(p, 0757) == 0);
	CU_ASSERT_EQUAL(safe_parent_dir(p, geteuid(), err, sizeof(err)), -1);
}

static void
test_file_modes(void)
{
	char p[256], err[512];
	int fd;

	path_in(p, sizeof(p), "port-file");
	fd = open(p, O_CREAT | O_RDWR | O_EXCL | O_NOFOLLOW, 0600);
	CU_ASSERT_FATAL(fd != -1);
	CU_ASSERT_FATAL(fchmod(fd, 0600) == 0);
	CU_ASSERT_EQUAL(safe_file_fd(fd, p, geteuid(), err, sizeof(err)), 0);
	CU_ASSERT_FATAL(fchmod(fd, 0644) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_file_fd(fd, p, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "mode 0644"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod 600"));
	printf("\n    message: %s ", err);
	close(fd);

	/* A directory is not a file. */
	fd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	CU_ASSERT_FATAL(fd != -1);
	CU_ASSERT_EQUAL(safe_file_fd(fd, tmpdir, geteuid(), err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
	close(fd);
}

static void
test_refuses_foreign_owner(void)
{
	char p[256], f[256], home[128], tcl[256], regdir[256], err[512];
	int fd;

	path_in(p, sizeof(p), "d-foreign");
	CU_ASSERT_FATAL(mkdir(p, 0700) == 0);
	CU_ASSERT_FATAL(chown(p, FOREIGN_UID, (gid_t)-1) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_dir(p, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "owned by uid 65534"));
	printf("\n    message: %s ", err);
	/* ... and accepted for its owner. */
	CU_ASSERT_EQUAL(safe_dir(p, FOREIGN_UID, err, sizeof(err)), 0);

	path_in(f, sizeof(f), "f-foreign");
	fd = open(f, O_CREAT | O_RDWR | O_EXCL, 0600);
	CU_ASSERT_FATAL(fd != -1);
	CU_ASSERT_FATAL(fchown(fd, FOREIGN_UID, (gid_t)-1) == 0);
	CU_ASSERT_EQUAL(safe_file_fd(fd, f, geteuid(), err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "owned by uid 65534"));
	close(fd);

	/* A foreign ~/.tcl stops the whole tree. */
	path_in(home, sizeof(home), "home-foreign");
	CU_ASSERT_FATAL(mkdir(home, 0700) == 0);
	snprintf(tcl, sizeof(tcl), "%s/.tcl", home);
	CU_ASSERT_FATAL(mkdir(tcl, 0700) == 0);
	CU_ASSERT_FATAL(chown(tcl, FOREIGN_UID, (gid_t)-1) == 0);
	err[0] = '\0';
	CU_ASSERT_EQUAL(safe_comm_tree(home, geteuid(), regdir, sizeof(regdir),
	                    err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, tcl));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "owned by uid"));
}

/* ---- safe_walk: the directories above a trusted file ---- */

/* safe_walk on path: 0 and the last component, or -1 and the reason. */
static int
walk(const char *path, char *last, size_t lastlen, bool *missing, char *err,
    size_t errlen)
{
	int fd;

	err[0] = '\0';
	fd = safe_walk(path, geteuid(), last, lastlen, missing, err, errlen);
	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}

static void
test_walk_good_path(void)
{
	char d[256], f[300], last[256], err[512], cwd[4096];
	bool missing = true;
	int fd, ffd;

	/* tmpdir is ours (0700) under /tmp (1777, root's: sticky). */
	path_in(d, sizeof(d), "walk-good");
	CU_ASSERT_FATAL(mkdir(d, 0755) == 0);
	snprintf(f, sizeof(f), "%s/conf.ini", d);
	CU_ASSERT_FATAL(close(open(f, O_CREAT | O_WRONLY, 0644)) == 0);
	fd = safe_walk(f, geteuid(), last, sizeof(last), &missing, err,
	    sizeof(err));
	CU_ASSERT_FATAL(fd != -1);
	CU_ASSERT_FALSE(missing);
	CU_ASSERT_STRING_EQUAL(last, "conf.ini");
	/* The descriptor is the file's directory. */
	ffd = openat(fd, last, O_RDONLY | O_NOFOLLOW);
	CU_ASSERT(ffd != -1);
	close(ffd);
	close(fd);

	/* Trailing slashes, "." and ".." are names, resolved as such. */
	snprintf(f, sizeof(f), "%s/./../walk-good/conf.ini", d);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(last, "conf.ini");
	snprintf(f, sizeof(f), "%s//", d);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(last, "walk-good");

	/* A relative path starts at the working directory. */
	CU_ASSERT_FATAL(getcwd(cwd, sizeof(cwd)) != NULL);
	CU_ASSERT_FATAL(chdir(tmpdir) == 0);
	CU_ASSERT_EQUAL(walk("walk-good/conf.ini", last, sizeof(last), NULL,
	                    err, sizeof(err)),
	    0);
	CU_ASSERT_FATAL(chdir(cwd) == 0);
}

static void
test_walk_writable_dir(void)
{
	char d[256], sub[300], f[350], last[256], err[512];

	path_in(d, sizeof(d), "walk-open");
	CU_ASSERT_FATAL(mkdir(d, 0755) == 0);
	snprintf(sub, sizeof(sub), "%s/sub", d);
	CU_ASSERT_FATAL(mkdir(sub, 0755) == 0);
	snprintf(f, sizeof(f), "%s/x.ini", sub);
	CU_ASSERT_FATAL(chmod(d, 0775) == 0);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)),
	    -1);
	{
		char want[1200];

		snprintf(want, sizeof(want),
		    "%s: mode 0775 lets group/other write in it (a directory "
		    "above %s); run: chmod go-w %s",
		    d, f, d);
		CU_ASSERT_STRING_EQUAL(err, want);
		printf("\n    message: %s ", err);
	}
	CU_ASSERT_FATAL(chmod(d, 0757) == 0);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "mode 0757"));
	/* Sticky, as /tmp: others may add names, not take ours. */
	CU_ASSERT_FATAL(chmod(d, 01777) == 0);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)), 0);
	CU_ASSERT_FATAL(chmod(d, 0755) == 0);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)), 0);
	/* The file's own directory counts; the file itself is not looked
	 * at (the caller's). */
	CU_ASSERT_FATAL(chmod(sub, 0777) == 0);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, sub));
	CU_ASSERT_FATAL(chmod(sub, 0755) == 0);
	CU_ASSERT_EQUAL(walk(sub, last, sizeof(last), NULL, err, sizeof(err)),
	    0);
}

static void
test_walk_symlink(void)
{
	char d[256], l[256], f[350], last[256], err[512], want[1200];

	path_in(d, sizeof(d), "walk-real");
	CU_ASSERT_FATAL(mkdir(d, 0755) == 0);
	path_in(l, sizeof(l), "walk-link");
	CU_ASSERT_FATAL(symlink(d, l) == 0);
	snprintf(f, sizeof(f), "%s/x.ini", l);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want),
	    "%s: is a symbolic link (a directory above %s); refusing to "
	    "follow it",
	    l, f);
	CU_ASSERT_STRING_EQUAL(err, want);
	printf("\n    message: %s ", err);
	/* A link as the last component is the caller's to refuse. */
	CU_ASSERT_EQUAL(walk(l, last, sizeof(last), NULL, err, sizeof(err)), 0);
}

static void
test_walk_missing(void)
{
	char f[300], last[256], err[512];
	bool missing = false;

	path_in(f, sizeof(f), "no-such/dir/x.ini");
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), &missing, err, sizeof(err)),
	    -1);
	CU_ASSERT(missing);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file or directory"));
	/* Only the last component missing: the walk is fine. */
	missing = true;
	path_in(f, sizeof(f), "no-such");
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), &missing, err, sizeof(err)),
	    0);
	CU_ASSERT_FALSE(missing);
	/* A file where a directory belongs. */
	path_in(f, sizeof(f), "walk-file");
	CU_ASSERT_FATAL(close(open(f, O_CREAT | O_WRONLY, 0644)) == 0);
	path_in(f, sizeof(f), "walk-file/x.ini");
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), &missing, err, sizeof(err)),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "is not a directory"));
}

static void
test_walk_foreign_owner(void)
{
	char d[256], f[300], last[256], err[512], want[1200];
	int fd;

	path_in(d, sizeof(d), "walk-foreign");
	CU_ASSERT_FATAL(mkdir(d, 0755) == 0);
	CU_ASSERT_FATAL(chown(d, FOREIGN_UID, (gid_t)-1) == 0);
	snprintf(f, sizeof(f), "%s/x.ini", d);
	CU_ASSERT_EQUAL(walk(f, last, sizeof(last), NULL, err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want),
	    "%s: owned by uid %d, not by root (a directory above %s); run: "
	    "chown root %s",
	    d, FOREIGN_UID, f, d);
	CU_ASSERT_STRING_EQUAL(err, want);
	printf("\n    message: %s ", err);
	/* Read as that uid, its own directory will do. */
	fd = safe_walk(f, FOREIGN_UID, last, sizeof(last), NULL, err,
	    sizeof(err));
	CU_ASSERT(fd != -1);
	if (fd != -1)
		close(fd);
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
	CU_pSuite s;
	int rc;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("safepath", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "tree is created 0700", test_tree_created_0700) ==
	        NULL ||
	    CU_add_test(s, "tree is 0700 whatever the umask",
	        test_tree_0700_whatever_the_umask) == NULL ||
	    CU_add_test(s, "refuses a 0755 directory", test_refuses_0755_dir) ==
	        NULL ||
	    CU_add_test(s, "refuses a group/other-accessible directory",
	        test_refuses_group_writable_dir) == NULL ||
	    CU_add_test(s, "refuses a symlinked directory",
	        test_refuses_symlinked_dir) == NULL ||
	    CU_add_test(s, "refuses a file where a directory belongs",
	        test_refuses_non_directory) == NULL ||
	    CU_add_test(s, "missing parent is reported", test_missing_parent) ==
	        NULL ||
	    CU_add_test(s, "~/.tcl may be readable, not writable",
	        test_parent_dir_rules) == NULL ||
	    CU_add_test(s, "file 0644 is refused, 0600 accepted",
	        test_file_modes) == NULL ||
	    CU_add_test(s, "refuses a foreign owner",
	        test_refuses_foreign_owner) == NULL ||
	    CU_add_test(s, "walk: a good path, relative or not",
	        test_walk_good_path) == NULL ||
	    CU_add_test(s, "walk: a writable directory above, unless sticky",
	        test_walk_writable_dir) == NULL ||
	    CU_add_test(s, "walk: a symbolic link above", test_walk_symlink) ==
	        NULL ||
	    CU_add_test(s, "walk: a missing directory above",
	        test_walk_missing) == NULL ||
	    CU_add_test(s, "walk: a foreign owner above",
	        test_walk_foreign_owner) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	if (geteuid() != 0)
		skip_case(s, "refuses a foreign owner",
		    "needs root to give a file to another uid");
	if (geteuid() != 0)
		skip_case(s, "walk: a foreign owner above",
		    "needs root to give a directory to another uid");
	CU_set_fail_on_inactive(CU_FALSE);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
