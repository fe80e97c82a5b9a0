// SPDX-License-Identifier: GPL-2.0-or-later
/* test_whiteout.c - unit tests of the whiteout and opaque-directory predicates on real layers. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "autofd.h"
#include "ovl_names.h"
#include "whiteout.h"

/* Every test works in its own directory below this one; main() removes it all at the end, also
 * when a test failed (a forked test child never runs a teardown after a failed assertion). */
static char *test_root;

static char *new_dir(void)
{
	char *tmpl = g_build_filename(test_root, "t-XXXXXX", NULL);
	ck_assert_ptr_nonnull(g_mkdtemp(tmpl));
	return tmpl;
}

/* Creates `name` in `dir`: 'f' empty file, 'd' directory, 'w' 0/0 whiteout, 'c' 1/3 device. */
static void mk(const char *dir, const char *name, char kind)
{
	g_autofree char *p = g_build_filename(dir, name, NULL);
	int r;

	switch (kind) {
	case 'f':
		r = mknod(p, S_IFREG | 0644, 0);
		break;
	case 'd':
		r = mkdir(p, 0755);
		break;
	case 'w':
		r = mknod(p, S_IFCHR | 0600, makedev(0, 0));
		break;
	case 'c':
		r = mknod(p, S_IFCHR | 0600, makedev(1, 3));
		break;
	default:
		ck_abort_msg("bad kind %c", kind);
	}
	ck_assert_msg(r == 0, "creating %s: %s", p, g_strerror(errno));
}

static int open_path(const char *dir)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", dir, g_strerror(errno));
	return fd;
}

/* --- name predicates --- */

static const struct name_case {
	const char *name;
	const char *target; /* whiteout_wh_target(), NULL for none */
	bool opq;
	bool private;
} name_cases[] = {
	{".wh.a", "a", false, true},
	{".wh.", NULL, false, true},
	{".wh..wh..opq", NULL, true, true},
	{"a.wh.b", NULL, false, false},
	{"a", NULL, false, false},
	{"", NULL, false, false},
	{".wh", NULL, false, false},
	{".WH.a", NULL, false, false},
	{" .wh.a", NULL, false, false},
	{".wh.a b", "a b", false, true},
	{".wh.a\nb", "a\nb", false, true},
	{".wh..", NULL, false, true},
	{".wh...", NULL, false, true},
	{".wh...x", "..x", false, true},
	{".wh..hidden", ".hidden", false, true},
	{".wh..wh..opqx", ".wh..opqx", false, true},
	{".wh..wh..op", ".wh..op", false, true},
	{".wh..wh..opq/", NULL, false, true}, /* '/' names no entry (ovl_wh_decode) */
	{"..wh..wh..opq", NULL, false, false},
	{".wh.wh.a", "wh.a", false, true},
};

START_TEST(test_name_predicates)
{
	const struct name_case *c = &name_cases[_i];
	const char *t = whiteout_wh_target(c->name);

	if (c->target) {
		ck_assert_msg(t != NULL, "wh_target(\"%s\") is NULL", c->name);
		ck_assert_str_eq(t, c->target);
		/* The target is the tail of the name, not a copy. */
		ck_assert_ptr_eq(t, c->name + OVL_WH_PREFIX_LEN);
	} else {
		ck_assert_msg(t == NULL, "wh_target(\"%s\") = \"%s\"", c->name, t);
	}
	ck_assert_int_eq(whiteout_is_opq_name(c->name), c->opq);
	ck_assert_int_eq(whiteout_is_private_name(c->name), c->private);
}
END_TEST

/* --- whiteout_is_chardev on synthetic stat buffers --- */

static const struct chardev_case {
	mode_t mode;
	unsigned maj, min;
	bool expect;
} chardev_cases[] = {
	{S_IFCHR | 0600, 0, 0, true},	{S_IFCHR | 0000, 0, 0, true},
	{S_IFCHR | 0600, 1, 3, false},	{S_IFCHR | 0600, 0, 1, false},
	{S_IFCHR | 0600, 1, 0, false},	{S_IFBLK | 0600, 0, 0, false},
	{S_IFREG | 0644, 0, 0, false},	{S_IFIFO | 0644, 0, 0, false},
	{S_IFDIR | 0755, 0, 0, false},	{S_IFLNK | 0777, 0, 0, false},
	{S_IFSOCK | 0755, 0, 0, false},
};

START_TEST(test_chardev_stat)
{
	const struct chardev_case *c = &chardev_cases[_i];
	struct stat st = {.st_mode = c->mode, .st_rdev = makedev(c->maj, c->min)};

	ck_assert_int_eq(whiteout_is_chardev(&st), c->expect);
}
END_TEST

/* --- whiteout_is_chardev on real files --- */

static const struct disk_case {
	const char *name;
	char kind;
	bool expect;
} disk_cases[] = {
	{"wh", 'w', true},
	{"null", 'c', false},
	{"reg", 'f', false},
	{"dir", 'd', false},
};

START_TEST(test_chardev_on_disk)
{
	g_autofree char *dir = new_dir();
	autofd int fd = -1;
	struct stat st;

	for (size_t i = 0; i < G_N_ELEMENTS(disk_cases); i++)
		mk(dir, disk_cases[i].name, disk_cases[i].kind);
	fd = open_path(dir);
	for (size_t i = 0; i < G_N_ELEMENTS(disk_cases); i++) {
		ck_assert_int_eq(fstatat(fd, disk_cases[i].name, &st, AT_SYMLINK_NOFOLLOW), 0);
		ck_assert_msg(whiteout_is_chardev(&st) == disk_cases[i].expect, "%s",
			      disk_cases[i].name);
	}
}
END_TEST

/* --- whiteout_dir_is_opaque --- */

static const struct opaque_case {
	const char *xname; /* NULL: no xattr set */
	const char *value;
	bool opq_file; /* create ".wh..wh..opq" */
	bool trusted;
	int expect;
} opaque_cases[] = {
	{NULL, NULL, false, true, 0},
	{NULL, NULL, false, false, 0},
	{"trusted.overlay.opaque", "y", false, true, 1},
	{"trusted.overlay.opaque", "y", false, false, 0},
	{"user.overlay.opaque", "y", false, true, 1},
	{"user.overlay.opaque", "y", false, false, 1},
	{"user.fuseoverlayfs.opaque", "y", false, true, 1},
	{"user.fuseoverlayfs.opaque", "y", false, false, 1},
	{"trusted.overlay.opaque", "n", false, true, 0},
	{"user.overlay.opaque", "n", false, false, 0},
	{"user.fuseoverlayfs.opaque", "n", false, true, 0},
	{"user.overlay.opaque", "yes", false, true, 0},
	{"user.overlay.opaque", "Y", false, true, 0},
	{"user.overlay.opaque", "", false, true, 0},
	{"user.overlay.redirect", "y", false, true, 0},
	{"user.overlay.opaquex", "y", false, true, 0},
	{"user.opaque", "y", false, true, 0},
	{"trusted.overlay.opaque", "y", true, false, 1},
	{NULL, NULL, true, true, 1},
	{NULL, NULL, true, false, 1},
	{"user.overlay.opaque", "n", true, true, 1},
};

START_TEST(test_opaque)
{
	const struct opaque_case *c = &opaque_cases[_i];
	g_autofree char *dir = new_dir();
	autofd int fd = -1;

	if (c->xname)
		ck_assert_int_eq(setxattr(dir, c->xname, c->value, strlen(c->value), 0), 0);
	if (c->opq_file)
		mk(dir, OVL_OPQ_NAME, 'f');
	/* A sibling marker or xattr on a child must not count for the directory. */
	mk(dir, "child", 'd');
	fd = open_path(dir);
	ck_assert_int_eq(whiteout_dir_is_opaque(fd, c->trusted), c->expect);
}
END_TEST

START_TEST(test_opaque_not_inherited)
{
	g_autofree char *dir = new_dir();
	g_autofree char *child = g_build_filename(dir, "child", NULL);
	autofd int fd = -1;

	mk(dir, "child", 'd');
	mk(child, OVL_OPQ_NAME, 'f');
	ck_assert_int_eq(setxattr(child, "user.overlay.opaque", "y", 1, 0), 0);
	fd = open_path(dir);
	ck_assert_int_eq(whiteout_dir_is_opaque(fd, true), 0);
}
END_TEST

/* More xattr names than a small first buffer holds: the opaque one must still be found. */
START_TEST(test_opaque_long_xattr_list)
{
	g_autofree char *dir = new_dir();
	autofd int fd = -1;

	for (int i = 0; i < 40; i++) {
		g_autofree char *x = g_strdup_printf("user.padding-%02d-%s", i,
						     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		ck_assert_int_eq(setxattr(dir, x, "v", 1, 0), 0);
	}
	fd = open_path(dir);
	ck_assert_int_eq(whiteout_dir_is_opaque(fd, true), 0);
	ck_assert_int_eq(setxattr(dir, "user.overlay.opaque", "y", 1, 0), 0);
	ck_assert_int_eq(whiteout_dir_is_opaque(fd, true), 1);
	ck_assert_int_eq(setxattr(dir, "user.overlay.opaque", "n", 1, XATTR_REPLACE), 0);
	ck_assert_int_eq(whiteout_dir_is_opaque(fd, true), 0);
}
END_TEST

START_TEST(test_opaque_bad_fd)
{
	g_autofree char *dir = new_dir();
	int fd = open_path(dir);

	close(fd);
	ck_assert_int_lt(whiteout_dir_is_opaque(fd, true), 0);
	ck_assert_int_lt(whiteout_dir_is_opaque(-1, false), 0);
}
END_TEST

/* --- whiteout_wh_exists --- */

START_TEST(test_wh_exists)
{
	g_autofree char *dir = new_dir();
	g_autofree char *n251 = g_strnfill(251, 'a');
	g_autofree char *n252 = g_strnfill(252, 'b');
	g_autofree char *wh251 = g_strconcat(OVL_WH_PREFIX, n251, NULL);
	autofd int fd = -1;

	mk(dir, ".wh.file", 'f');
	mk(dir, ".wh.chr", 'w');
	mk(dir, ".wh.dir", 'd');
	mk(dir, ".wh.a b\nc", 'f');
	mk(dir, wh251, 'f');
	mk(dir, "plain", 'f');
	mk(dir, OVL_OPQ_NAME, 'f');
	fd = open_path(dir);

	ck_assert_int_eq(whiteout_wh_exists(fd, "file"), 1);
	ck_assert_int_eq(whiteout_wh_exists(fd, "chr"), 1);
	ck_assert_int_eq(whiteout_wh_exists(fd, "dir"), 1);
	ck_assert_int_eq(whiteout_wh_exists(fd, "a b\nc"), 1);
	ck_assert_int_eq(whiteout_wh_exists(fd, n251), 1);
	ck_assert_int_eq(whiteout_wh_exists(fd, "plain"), 0);
	ck_assert_int_eq(whiteout_wh_exists(fd, "missing"), 0);
	/* Plain string concatenation: asking for ".wh..opq" finds the opaque marker. */
	ck_assert_int_eq(whiteout_wh_exists(fd, ".wh..opq"), 1);
	/* ".wh." + 252 bytes is longer than NAME_MAX: cannot exist, is not an error. */
	ck_assert_int_eq(whiteout_wh_exists(fd, n252), 0);
}
END_TEST

START_TEST(test_wh_exists_bad_fd)
{
	g_autofree char *dir = new_dir();
	int fd = open_path(dir);

	close(fd);
	ck_assert_int_eq(whiteout_wh_exists(fd, "x"), -EBADF);
	ck_assert_int_eq(whiteout_wh_exists(-1, "x"), -EBADF);
}
END_TEST

static Suite *whiteout_suite(void)
{
	Suite *s = suite_create("whiteout");
	TCase *tc = tcase_create("names");

	tcase_add_loop_test(tc, test_name_predicates, 0, G_N_ELEMENTS(name_cases));
	tcase_add_loop_test(tc, test_chardev_stat, 0, G_N_ELEMENTS(chardev_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("disk");
	tcase_add_test(tc, test_chardev_on_disk);
	tcase_add_loop_test(tc, test_opaque, 0, G_N_ELEMENTS(opaque_cases));
	tcase_add_test(tc, test_opaque_not_inherited);
	tcase_add_test(tc, test_opaque_long_xattr_list);
	tcase_add_test(tc, test_opaque_bad_fd);
	tcase_add_test(tc, test_wh_exists);
	tcase_add_test(tc, test_wh_exists_bad_fd);
	suite_add_tcase(s, tc);
	return s;
}

#include "tmpdir_main.h"

int main(void)
{
	return run_in_tmpdir("plyfs-test-whiteout-XXXXXX", whiteout_suite);
}
