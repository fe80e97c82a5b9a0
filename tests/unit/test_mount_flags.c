// SPDX-License-Identifier: GPL-2.0-or-later
/* test_mount_flags.c - mountinfo lines into mount flags, and the kernel's atime rule. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mount.h>

#include "atime.h"
#include "mount_flags.h"

static const struct {
	const char *line, *mnt;
	int ret, id;
	unsigned long flags;
} lines[] = {
	{"89 65 0:41 / /tmp/m rw,relatime - fuse.plyfs plyfs rw,user_id=0,group_id=0", "/tmp/m", 0,
	 89, MS_RELATIME},
	{"90 65 0:41 / /tmp/m ro,nosuid,nodev,noexec,noatime,nodiratime shared:5 - fuse.plyfs p "
	 "rw,user_id=0\n",
	 "/tmp/m", 0, 90,
	 MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME},
	/* the superblock's ro and sync count; its other options (user_id=) do not */
	{"91 65 0:41 / /tmp/m rw - fuse.plyfs p ro,sync,dirsync,nosuid", "/tmp/m", 0, 91,
	 MS_RDONLY | MS_SYNCHRONOUS | MS_DIRSYNC},
	/* mount points are escaped: a space is \040 */
	{"92 65 0:41 / /tmp/a\\040b rw,relatime - fuse.plyfs p rw", "/tmp/a b", 0, 92, MS_RELATIME},
	{"93 65 0:41 / /tmp/other rw,relatime - fuse.plyfs p rw", "/tmp/m", -ENOENT, 0, 0},
	{"94 65 0:41 / /tmp/m rw,relatime", "/tmp/m", -EINVAL, 0, 0},
	{"", "/tmp/m", -EINVAL, 0, 0},
	{"95 65 0:41 / /tmp/m rw - fuse", "/tmp/m", -EINVAL, 0, 0},
};

START_TEST(test_not_fuse)
{
	int id;
	unsigned long flags;
	bool fuse = true;
	ck_assert_int_eq(mount_flags_parse_line("96 1 8:1 / /tmp/m rw,relatime - ext4 /dev/sda1 rw",
						"/tmp/m", &id, &flags, &fuse),
			 0);
	ck_assert(!fuse);
}
END_TEST

START_TEST(test_parse_line)
{
	int id = 0;
	unsigned long flags = 0;
	bool fuse = false;
	int r = mount_flags_parse_line(lines[_i].line, lines[_i].mnt, &id, &flags, &fuse);
	ck_assert_msg(r == lines[_i].ret, "line %d: %d", _i, r);
	if (r == 0) {
		ck_assert_int_eq(id, lines[_i].id);
		ck_assert_msg(flags == lines[_i].flags, "line %d: %#lx", _i, flags);
		ck_assert(fuse);
	}
}
END_TEST

START_TEST(test_note)
{
	struct mount_flags_change c = {0};
	ck_assert(mount_flags_note(&c, "ro"));
	ck_assert(mount_flags_note(&c, "nosuid"));
	ck_assert(!mount_flags_note(&c, "allow_other"));
	ck_assert(mount_flags_note(&c, "rw"));
	ck_assert(mount_flags_note(&c, "noatime"));
	ck_assert_uint_eq(mount_flags_apply(&c, MS_RDONLY | MS_NODEV),
			  MS_NODEV | MS_NOSUID | MS_NOATIME);
}
END_TEST

#define S(sec) ((struct timespec){.tv_sec = (sec)})

static const struct {
	unsigned long flags;
	bool dir;
	long atime, mtime, ctime, now;
	bool want;
} rules[] = {
	{0, false, 10, 5, 5, 20, false}, /* flags unknown: nothing */
	{MS_NOATIME, false, 10, 50, 50, 100, false},
	{MS_STRICTATIME, false, 10, 5, 5, 20, true},
	{MS_STRICTATIME, false, 20, 5, 5, 20, false}, /* already now */
	{MS_STRICTATIME | MS_NODIRATIME, true, 10, 5, 5, 20, false},
	{MS_STRICTATIME | MS_NODIRATIME, false, 10, 5, 5, 20, true},
	{MS_RELATIME, false, 10, 10, 5, 20, true},	  /* atime <= mtime */
	{MS_RELATIME, false, 10, 5, 10, 20, true},	  /* atime <= ctime */
	{MS_RELATIME, false, 10, 5, 5, 20, false},	  /* after both, recent */
	{MS_RELATIME, false, 10, 5, 5, 10 + 86400, true}, /* a day old */
	{MS_RELATIME, false, 10, 5, 5, 9 + 86400, false},
	{MS_RELATIME | MS_NODIRATIME, true, 10, 50, 50, 100, false},
};

START_TEST(test_atime_rule)
{
	struct stat st = {.st_atim = S(rules[_i].atime),
			  .st_mtim = S(rules[_i].mtime),
			  .st_ctim = S(rules[_i].ctime)};
	struct timespec now = S(rules[_i].now);
	ck_assert_msg(atime_needs_update(rules[_i].flags, rules[_i].dir, &st, &now) ==
			      rules[_i].want,
		      "rule %d", _i);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mount_flags");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_parse_line, 0, G_N_ELEMENTS(lines));
	tcase_add_test(tc, test_note);
	tcase_add_test(tc, test_not_fuse);
	tcase_add_loop_test(tc, test_atime_rule, 0, G_N_ELEMENTS(rules));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
