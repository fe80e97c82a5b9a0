// SPDX-License-Identifier: GPL-2.0-or-later
/* test_override.c - xattr_permissions: the override_stat codec, its effect on a stat, and its use
 * on a real upper root (override_setup, override_stat, override_get). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <glib.h>

#include "fs.h"
#include "ovl_names.h"
#include "override.h"

static char *test_root;
#include "tmpdir_main.h"

struct good_value {
	const char *value;
	struct override want;
};

static const struct good_value good_values[] = {
	/* fuse-overlayfs: "%d:%d:%o" of the whole st_mode, or of the permission bits */
	{"5:6:100644", {5, 6, S_IFREG | 0644, 0}},
	{"0:0:40640", {0, 0, S_IFDIR | 0640, 0}},
	{"0:0:755", {0, 0, 0755, 0}},
	{"1000:1000:4755", {1000, 1000, 04755, 0}},
	/* containers-storage: "%d:%d:%04o:TYPE" */
	{"1000:1011:0644:file", {1000, 1011, S_IFREG | 0644, 0}},
	{"1001:1012:0755:dir", {1001, 1012, S_IFDIR | 0755, 0}},
	{"1002:1013:0777:symlink", {1002, 1013, S_IFLNK | 0777, 0}},
	{"1003:1014:0666:pipe", {1003, 1014, S_IFIFO | 0666, 0}},
	{"1004:1015:0700:socket", {1004, 1015, S_IFSOCK | 0700, 0}},
	{"1005:1016:0600:block-8-0", {1005, 1016, S_IFBLK | 0600, 0}},
	{"1000:1001:0600:char-10-11", {1000, 1001, S_IFCHR | 0600, 0}},
	{"0:0:0600:char-1-3-extra", {0, 0, S_IFCHR | 0600, 0}}, /* more parts are ignored */
	{"0:0:7777:file", {0, 0, S_IFREG | 07777, 0}},
	{"4294967295:4294967295:0:dir", {UINT32_MAX, UINT32_MAX, S_IFDIR, 0}},
	{"0:0:100644:file", {0, 0, S_IFREG | 0644, 0}}, /* both types, the same */
};

START_TEST(test_decode_good)
{
	const struct good_value *tc = &good_values[_i];
	struct override o;

	ck_assert_msg(override_decode(tc->value, strlen(tc->value), &o) == 0, "%s", tc->value);
	ck_assert_uint_eq(o.uid, tc->want.uid);
	ck_assert_uint_eq(o.gid, tc->want.gid);
	ck_assert_uint_eq(o.mode, tc->want.mode);
	if (S_ISCHR(o.mode) || S_ISBLK(o.mode)) {
		unsigned maj = strstr(tc->value, "block-8") ? 8
			       : strstr(tc->value, "-10-")  ? 10
							    : 1;
		unsigned min = strstr(tc->value, "block-8") ? 0
			       : strstr(tc->value, "-10-")  ? 11
							    : 3;
		ck_assert_uint_eq(major(o.rdev), maj);
		ck_assert_uint_eq(minor(o.rdev), min);
	}
}
END_TEST

static const char *const bad_values[] = {
	"",
	"0",
	"0:0",
	"0:0:",
	":0:0644",
	"a:0:0644",
	"0:b:0644",
	"0:0:0648",		    /* not octal */
	"0:0:0644:",		    /* empty type */
	"0:0:0644:fil",		    /* not a type */
	"0:0:0644:file:more",	    /* five fields */
	"-1:0:0644",		    /* no sign */
	"+1:0:0644",		    /* no sign */
	" 1:0:0644",		    /* no space */
	"0:0:0644 ",		    /* no trailing space */
	"4294967296:0:0644",	    /* uid past 32 bits */
	"0:4294967296:0644",	    /* gid past 32 bits */
	"0:0:200000",		    /* mode past 0177777 */
	"0:0:170644",		    /* not a file type */
	"0:0:40755:file",	    /* two types that disagree */
	"0:0:0600:char-1",	    /* no minor */
	"0:0:0600:char-x-1",	    /* not a number */
	"0:0:0600:char--1-1",	    /* no sign */
	"0:0:0600:block-1048576-0", /* major past 20 bits */
};

START_TEST(test_decode_bad)
{
	const char *v = bad_values[_i];
	struct override o = {7, 7, 7, 7};

	ck_assert_msg(override_decode(v, strlen(v), &o) == -EINVAL, "'%s' accepted", v);
	ck_assert_uint_eq(o.uid, 7); /* untouched */
}
END_TEST

/* A NUL inside, and a value longer than any plyfs writes, are refused; the length given is
 * what is read, not a NUL. */
START_TEST(test_decode_bounds)
{
	struct override o;
	char longv[OVERRIDE_VALUE_MAX + 8];

	ck_assert_int_eq(override_decode("0:0:0644\0:file", 14, &o), -EINVAL);
	ck_assert_int_eq(override_decode("1:2:0644:filexxx", 13, &o), 0);
	ck_assert_uint_eq(o.mode, S_IFREG | 0644);
	memset(longv, '0', sizeof(longv));
	longv[1] = longv[3] = ':';
	ck_assert_int_eq(override_decode(longv, sizeof(longv), &o), -EINVAL);
}
END_TEST

/* What plyfs writes decodes to what it encoded, and reads as containers-storage's format. */
START_TEST(test_encode_roundtrip)
{
	static const struct override cases[] = {
		{0, 0, S_IFREG | 0644, 0},
		{100000, 100001, S_IFDIR | 02775, 0},
		{1, 2, S_IFIFO | 0600, 0},
		{3, 4, S_IFSOCK | 0777, 0},
		{5, 6, S_IFCHR | 0620, 0},
		{7, 8, S_IFBLK | 0660, 0},
		{UINT32_MAX, UINT32_MAX, S_IFREG | 07777, 0},
	};
	static const char *const want[] = {
		"0:0:0644:file",
		"100000:100001:2775:dir",
		"1:2:0600:pipe",
		"3:4:0777:socket",
		"5:6:0620:char-4-64",
		"7:8:0660:block-8-16",
		"4294967295:4294967295:7777:file",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct override in = cases[i], out;
		char buf[OVERRIDE_VALUE_MAX];

		if (S_ISCHR(in.mode))
			in.rdev = makedev(4, 64);
		if (S_ISBLK(in.mode))
			in.rdev = makedev(8, 16);
		size_t len = override_encode(&in, buf);
		ck_assert_uint_lt(len, OVERRIDE_VALUE_MAX);
		ck_assert_str_eq(buf, want[i]);
		ck_assert_int_eq(override_decode(buf, len, &out), 0);
		ck_assert_uint_eq(out.uid, in.uid);
		ck_assert_uint_eq(out.gid, in.gid);
		ck_assert_uint_eq(out.mode, in.mode);
		ck_assert_uint_eq(out.rdev, in.rdev);
	}
}
END_TEST

/* Owner and permission bits always; the type only over a regular file (a stand-in). */
START_TEST(test_to_stat)
{
	struct override dev = {1, 2, S_IFCHR | 0620, makedev(1, 3)};
	struct stat st = {.st_mode = S_IFREG | 0600, .st_uid = 9, .st_gid = 9};

	override_to_stat(&dev, &st);
	ck_assert_uint_eq(st.st_mode, S_IFCHR | 0620);
	ck_assert_uint_eq(st.st_rdev, makedev(1, 3));
	ck_assert_uint_eq(st.st_uid, 1);
	ck_assert_uint_eq(st.st_gid, 2);

	st = (struct stat){.st_mode = S_IFDIR | 0700};
	override_to_stat(&dev, &st); /* a directory stays one */
	ck_assert_uint_eq(st.st_mode, S_IFDIR | 0620);
	ck_assert_uint_eq(st.st_rdev, 0);

	struct override perm = {0, 0, 04755, 0};
	st = (struct stat){.st_mode = S_IFREG | 0600};
	override_to_stat(&perm, &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 04755);
}
END_TEST

static const char *const names[] = {OVERRIDE_XATTR_PRIVILEGED, OVERRIDE_XATTR_CONTAINERS,
				    OVERRIDE_XATTR_FOVL};

START_TEST(test_names)
{
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		ck_assert(override_is_name(names[i]));
	ck_assert(!override_is_name("user.containers.override_stat2"));
	ck_assert(!override_is_name("user.containers"));
	ck_assert(!override_is_name("security.capability"));
}
END_TEST

/* A fake mount over directories of test_root: layer 0 the upper (when `upper`), then `lower`. */
struct fake {
	struct plyfs fs;
	struct plyfs_params p;
	struct layer layers[2];
};

static void fake_init(struct fake *f, int xp, const char *upper, const char *lower)
{
	memset(f, 0, sizeof(*f));
	f->p.xattr_permissions = xp;
	f->fs.params = &f->p;
	f->fs.layers = f->layers;
	f->fs.has_upper = upper != NULL;
	const char *dirs[2] = {upper ? upper : lower, upper ? lower : NULL};
	for (size_t i = 0; i < 2 && dirs[i]; i++) {
		f->layers[i].index = (int)i;
		f->layers[i].root_fd = open(dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(f->layers[i].root_fd, 0);
		f->layers[i].upper = i == 0 && upper;
		f->fs.n_layers = i + 1;
	}
}

static void fake_fini(struct fake *f)
{
	for (size_t i = 0; i < f->fs.n_layers; i++)
		close(f->layers[i].root_fd);
}

static char *mkdir_in_root(const char *name)
{
	char *p = g_build_filename(test_root, name, NULL);
	ck_assert_int_eq(g_mkdir_with_parents(p, 0755), 0);
	return p;
}

/* xattr_permissions=2 as root: the upper root gets its value from its stat; a lower whose root
 * carries security.fuseoverlayfs.override_stat is read with that name too; a file's value wins
 * over its inode in override_stat; an invalid value is ignored. Without xattr_permissions nothing
 * is read. */
START_TEST(test_setup_and_stat)
{
	g_autofree char *up = mkdir_in_root("s-upper");
	g_autofree char *low = mkdir_in_root("s-lower");
	g_autofree char *f = g_build_filename(low, "f", NULL);
	g_autofree char *bad = g_build_filename(low, "bad", NULL);
	ck_assert(g_file_set_contents(f, "x", 1, NULL));
	ck_assert(g_file_set_contents(bad, "x", 1, NULL));
	ck_assert_int_eq(chmod(up, 0751), 0);
	ck_assert_int_eq(setxattr(low, OVERRIDE_XATTR_PRIVILEGED, "0:0:0755:dir", 12, 0), 0);
	ck_assert_int_eq(setxattr(f, OVERRIDE_XATTR_PRIVILEGED, "3:4:4711:file", 13, 0), 0);
	ck_assert_int_eq(setxattr(bad, OVERRIDE_XATTR_PRIVILEGED, "3:x:4711", 8, 0), 0);

	struct fake k;
	fake_init(&k, 2, up, low);
	ck_assert_int_eq(override_setup(&k.fs), 0);
	ck_assert(override_on(&k.fs));
	ck_assert_str_eq(k.fs.override_write, OVERRIDE_XATTR_CONTAINERS);
	ck_assert_uint_eq(k.fs.n_override_read, 2);
	char buf[OVERRIDE_VALUE_MAX];
	ssize_t len = getxattr(up, OVERRIDE_XATTR_CONTAINERS, buf, sizeof(buf) - 1);
	ck_assert_int_gt(len, 0);
	buf[len] = '\0';
	g_autofree char *want = g_strdup_printf("%u:%u:0751:dir", getuid(), getgid());
	ck_assert_str_eq(buf, want);

	struct stat st;
	int dfd = k.layers[1].root_fd;
	ck_assert_int_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	override_stat(&k.fs, dfd, "f", &st);
	ck_assert_uint_eq(st.st_uid, 3);
	ck_assert_uint_eq(st.st_gid, 4);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 04711);
	ck_assert_int_eq(fstatat(dfd, "bad", &st, AT_SYMLINK_NOFOLLOW), 0);
	struct stat before = st;
	override_stat(&k.fs, dfd, "bad", &st);
	ck_assert_mem_eq(&st, &before, sizeof(st));

	/* override_set writes the mount's name; override_get reads it back */
	struct override o = {8, 9, S_IFREG | 0640, 0};
	ck_assert_int_eq(override_set(&k.fs, dfd, "f", &o), 0);
	ck_assert_int_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	struct override got;
	override_get(&k.fs, dfd, "f", &st, &got);
	ck_assert_uint_eq(got.uid, 8);
	ck_assert_uint_eq(got.mode, S_IFREG | 0640);
	/* the setup is idempotent: an upper root that has a value keeps it */
	ck_assert_int_eq(setxattr(up, OVERRIDE_XATTR_CONTAINERS, "1:1:0700:dir", 12, 0), 0);
	fake_fini(&k);
	fake_init(&k, 2, up, low);
	ck_assert_int_eq(override_setup(&k.fs), 0);
	len = getxattr(up, OVERRIDE_XATTR_CONTAINERS, buf, sizeof(buf) - 1);
	buf[len] = '\0';
	ck_assert_str_eq(buf, "1:1:0700:dir");
	fake_fini(&k);

	/* xattr_permissions=0: nothing read, nothing written */
	fake_init(&k, 0, NULL, low);
	ck_assert_int_eq(override_setup(&k.fs), 0);
	ck_assert(!override_on(&k.fs));
	ck_assert_int_eq(fstatat(k.layers[0].root_fd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	before = st;
	override_stat(&k.fs, k.layers[0].root_fd, "f", &st);
	ck_assert_mem_eq(&st, &before, sizeof(st));
	fake_fini(&k);
}
END_TEST

/* user.* names cannot be set on special files: those keep their inode's owner and mode. */
START_TEST(test_holds)
{
	struct fake k;
	g_autofree char *d = mkdir_in_root("h");
	fake_init(&k, 2, d, NULL);
	ck_assert_int_eq(override_setup(&k.fs), 0);
	ck_assert(override_holds(&k.fs, S_IFREG));
	ck_assert(override_holds(&k.fs, S_IFDIR));
	ck_assert(!override_holds(&k.fs, S_IFLNK));
	ck_assert(!override_holds(&k.fs, S_IFIFO));
	ck_assert(!override_holds(&k.fs, S_IFCHR));
	fake_fini(&k);
	fake_init(&k, 1, d, NULL);
	ck_assert_int_eq(override_setup(&k.fs), 0);
	ck_assert_str_eq(k.fs.override_write, OVERRIDE_XATTR_PRIVILEGED);
	ck_assert(override_holds(&k.fs, S_IFIFO));
	ck_assert(override_holds(&k.fs, S_IFCHR));
	ck_assert(!override_holds(&k.fs, S_IFLNK));
	fake_fini(&k);
}
END_TEST

static Suite *override_suite(void)
{
	Suite *s = suite_create("override");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_decode_good, 0, G_N_ELEMENTS(good_values));
	tcase_add_loop_test(tc, test_decode_bad, 0, G_N_ELEMENTS(bad_values));
	tcase_add_test(tc, test_decode_bounds);
	tcase_add_test(tc, test_encode_roundtrip);
	tcase_add_test(tc, test_to_stat);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_setup_and_stat);
	tcase_add_test(tc, test_holds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_in_tmpdir("plyfs-test-override-XXXXXX", override_suite);
}
