/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tmpdir_main.h - the main() of unit tests that build real layer trees: a fresh temporary
 * directory in `test_root` for the suite, removed (without following symlinks) afterwards.
 * Include once, after defining `static char *test_root;`, and call
 * run_in_tmpdir("plyfs-test-NAME-XXXXXX", NAME_suite).
 */
#ifndef PLYFS_TMPDIR_MAIN_H
#define PLYFS_TMPDIR_MAIN_H

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <glib.h>
#include <stdio.h>

static int tmpdir_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == 0 ? 0 : -1;
}

static int run_in_tmpdir(const char *template, Suite *(*suite)(void))
{
	g_autoptr(GError) err = NULL;

	test_root = g_dir_make_tmp(template, &err);
	if (!test_root) {
		fprintf(stderr, "temp dir: %s\n", err->message);
		return 1;
	}
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (nftw(test_root, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "cleanup of %s failed: %s\n", test_root, g_strerror(errno));
	g_free(test_root);
	return failed ? 1 : 0;
}

#endif
