/*
 * Unit tests for config/safepath.c: the ~/.tcl/comm tree is created 0700
 * whatever the umask, and a tree that is too open, foreign-owned or
 * reached through a symbolic link is refused with a message that names the
 * path and the fix.
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
	        test_refuses_foreign_owner) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	if (geteuid() != 0)
		skip_case(s, "refuses a foreign owner",
		    "needs root to give a file to another uid");
	CU_set_fail_on_inactive(CU_FALSE);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	rc = CU_get_number_of_failures() || CU_get_error() ? 1 : 0;
	CU_cleanup_registry();
	return rc;
}
