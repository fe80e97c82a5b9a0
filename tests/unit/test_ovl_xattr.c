// SPDX-License-Identifier: GPL-2.0-or-later
/* test_ovl_xattr.c - the decoders of overlay metadata (ovl_xattr.h), table-driven: each value
 * with the result kernel overlayfs gives it (checked against `mount -t overlay` on 6.18), and the
 * single-component refusal of the layer wrappers. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "layer.h"
#include "ovl_xattr.h"

/* A value given as a C literal with an explicit length, so NULs inside can be tested. */
#define V(s) s, (ssize_t)(sizeof(s) - 1)

/* --- redirect --- */

static const struct {
	const char *v;
	ssize_t len;
	int err;
	bool absolute;
	const char *path; /* decoded path on success */
} redirects[] = {
	{V("x"), 0, false, "x"},
	{V("/x"), 0, true, "x"},
	{V("/a/b/c"), 0, true, "a/b/c"},
	{V("a b"), 0, false, "a b"},
	{V("..."), 0, false, "..."},
	{V(".x"), 0, false, ".x"},
	{V("/a/...b"), 0, true, "a/...b"},
	{V("a\0b"), 0, false, "a"},  /* cut at the NUL, as the kernel reads it */
	{V("a\0/b"), 0, false, "a"}, /* the '/' after the NUL is not seen */
	{V("/a\0//"), 0, true, "a"},
	/* issue 8, found 1 and 2: what the kernel answers for each */
	{V(".."), -EACCES, false, NULL},
	{V("."), -EACCES, false, NULL},
	{V("\0"), -EACCES, false, NULL},
	{V("\0x"), -EACCES, false, NULL},
	{V("/.."), -EACCES, false, NULL},
	{V("/./x"), -EACCES, false, NULL},
	{V("/a/../x"), -EACCES, false, NULL},
	{V("/a/."), -EACCES, false, NULL},
	{V(""), -EINVAL, false, NULL},
	{V("/"), -EINVAL, false, NULL},
	{V("////"), -EINVAL, false, NULL},
	{V("/x/"), -EINVAL, false, NULL},
	{V("/a//b"), -EINVAL, false, NULL},
	{V("//a"), -EINVAL, false, NULL},
	{V("../x"), -EINVAL, false, NULL},
	{V("a/b"), -EINVAL, false, NULL},
	{V("x/"), -EINVAL, false, NULL},
	{V("/\0abc"), -EINVAL, false, NULL},
	{V("/../"), -EINVAL, false, NULL}, /* the empty component is seen first */
};

START_TEST(redirect_table)
{
	struct ovl_redirect rd;
	int r = ovl_redirect_decode(redirects[_i].v, redirects[_i].len, &rd);
	ck_assert_msg(r == redirects[_i].err, "case %d (\"%s\"): %d, want %d", _i, redirects[_i].v,
		      r, redirects[_i].err);
	if (r == 0) {
		ck_assert(rd.absolute == redirects[_i].absolute);
		ck_assert_uint_eq(rd.len, strlen(redirects[_i].path));
		ck_assert(memcmp(rd.path, redirects[_i].path, rd.len) == 0);
	}
}
END_TEST

START_TEST(redirect_lengths)
{
	struct ovl_redirect rd;
	char buf[PATH_MAX + 8];

	/* A component of NAME_MAX is fine, one more is not (relative and absolute). */
	memset(buf, 'a', sizeof(buf));
	ck_assert_int_eq(ovl_redirect_decode(buf, NAME_MAX, &rd), 0);
	ck_assert_int_eq(ovl_redirect_decode(buf, NAME_MAX + 1, &rd), -ENAMETOOLONG);
	buf[0] = '/';
	ck_assert_int_eq(ovl_redirect_decode(buf, NAME_MAX + 1, &rd), 0);
	ck_assert_int_eq(ovl_redirect_decode(buf, 4000, &rd), -ENAMETOOLONG); /* issue 8 */
	/* "/a/a/a...": below PATH_MAX fine, at or past it unreachable. */
	for (size_t i = 0; i < sizeof(buf); i += 2) {
		buf[i] = '/';
		buf[i + 1] = 'a';
	}
	ck_assert_int_eq(ovl_redirect_decode(buf, PATH_MAX - 2, &rd), 0);
	ck_assert_uint_eq(rd.len, PATH_MAX - 3);
	ck_assert_int_eq(ovl_redirect_decode(buf, PATH_MAX, &rd), -ENAMETOOLONG);
	ck_assert_int_eq(ovl_redirect_decode(buf, PATH_MAX + 8, &rd), -ENAMETOOLONG);
	/* The first offending component decides: a dot before a long one, and the reverse. */
	memcpy(buf, "/./", 3);
	ck_assert_int_eq(ovl_redirect_decode(buf, 3000, &rd), -EACCES);
	memset(buf, 'b', 300);
	buf[0] = '/';
	memcpy(buf + 300, "/..", 3);
	ck_assert_int_eq(ovl_redirect_decode(buf, 303, &rd), -ENAMETOOLONG);
	/* No value at all. */
	ck_assert_int_eq(ovl_redirect_decode(NULL, 0, &rd), -EINVAL);
	ck_assert_int_eq(ovl_redirect_decode("x", -ENODATA, &rd), -EINVAL);
}
END_TEST

/* --- origin (struct ovl_fb) --- */

/* A valid little-endian fb of `total` bytes (handle bytes 0x11...). */
static size_t make_fb(unsigned char *fb, size_t total)
{
	memset(fb, 0x11, total);
	fb[0] = 0;
	fb[1] = 0xfb;
	fb[2] = (unsigned char)total;
	fb[3] = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? OVL_FB_FLAG_BIG_ENDIAN : 0;
	fb[4] = 1;
	return total;
}

static const struct {
	int byte; /* which byte to change (-1: none) */
	int value;
	ssize_t len_delta; /* change to the length given to the decoder */
	int err;
} origins[] = {
	{-1, 0, 0, 0},
	{-1, 0, 3, 0},			   /* trailing bytes past len are allowed */
	{3, OVL_FB_FLAG_ANY_ENDIAN, 0, 0}, /* any endian */
	{3, OVL_FB_FLAG_PATH_UPPER, 0, 0},
	{1, 0xfa, 0, -EINVAL},	/* magic */
	{2, 40, 0, -EINVAL},	/* len field past the value */
	{2, 20, 0, -EINVAL},	/* len field shorter than the header */
	{-1, 0, -1, -EINVAL},	/* value shorter than its len field */
	{0, 1, 0, -ENODATA},	/* newer version: origin unknown */
	{3, 0x08, 0, -ENODATA}, /* unknown flag */
	{3, 0x80, 0, -ENODATA},
};

START_TEST(origin_table)
{
	unsigned char fb[64];
	size_t len = make_fb(fb, 29);
	if (origins[_i].byte >= 0)
		fb[origins[_i].byte] = (unsigned char)origins[_i].value;
	struct ovl_fb_info info;
	int r = ovl_origin_decode(fb, (ssize_t)len + origins[_i].len_delta, &info);
	ck_assert_msg(r == origins[_i].err, "case %d: %d", _i, r);
	if (r == 0) {
		ck_assert_uint_eq(info.fid_len, 8);
		ck_assert_ptr_eq(info.uuid, fb + 5);
		ck_assert_ptr_eq(info.fid, fb + 21);
		ck_assert_uint_eq(info.type, 1);
	}
}
END_TEST

START_TEST(origin_short)
{
	unsigned char fb[64];
	struct ovl_fb_info info;
	make_fb(fb, 21);
	ck_assert_int_eq(ovl_origin_decode(fb, 21, &info), 0);
	ck_assert_uint_eq(info.fid_len, 0);
	for (ssize_t n = 1; n < 21; n++)
		ck_assert_int_eq(ovl_origin_decode(fb, n, &info), -EINVAL);
	ck_assert_int_eq(ovl_origin_decode(fb, 0, &info), -ENODATA);
	ck_assert_int_eq(ovl_origin_decode(NULL, 0, &info), -ENODATA);
	ck_assert_int_eq(ovl_origin_decode("garbage", 7, &info), -EINVAL);
	/* The other byte order without ANY_ENDIAN: unknown. */
	fb[3] ^= OVL_FB_FLAG_BIG_ENDIAN;
	ck_assert_int_eq(ovl_origin_decode(fb, 21, &info), -ENODATA);
}
END_TEST

/* --- plyfs' origin --- */

static const struct {
	const char *v;
	ssize_t len;
	int err;
	uint64_t dev, ino;
} plyfs_origins[] = {
	{V("801:1c"), 0, 0x801, 0x1c},
	{V("0:0"), 0, 0, 0},
	{V("ffffffffffffffff:FFFFFFFFFFFFFFFF"), 0, UINT64_MAX, UINT64_MAX},
	{V("1ffffffffffffffff:1"), -EINVAL, 0, 0}, /* 17 digits */
	{V("801:"), -EINVAL, 0, 0},
	{V(":1c"), -EINVAL, 0, 0},
	{V("801"), -EINVAL, 0, 0},
	{V("801:1c:"), -EINVAL, 0, 0},
	{V("801:1c\n"), -EINVAL, 0, 0},
	{V(" 801:1c"), -EINVAL, 0, 0},
	{V("0x801:1c"), -EINVAL, 0, 0},
	{V("801:1c\0"), -EINVAL, 0, 0},
	{V("-1:1"), -EINVAL, 0, 0},
	{V(""), -EINVAL, 0, 0},
};

START_TEST(plyfs_origin_table)
{
	uint64_t dev = 7, ino = 7;
	int r = ovl_plyfs_origin_decode(plyfs_origins[_i].v, plyfs_origins[_i].len, &dev, &ino);
	ck_assert_msg(r == plyfs_origins[_i].err, "case %d (%s): %d", _i, plyfs_origins[_i].v, r);
	if (r == 0) {
		ck_assert_uint_eq(dev, plyfs_origins[_i].dev);
		ck_assert_uint_eq(ino, plyfs_origins[_i].ino);
	}
}
END_TEST

/* --- opaque / impure --- */

static const struct {
	const char *v;
	ssize_t len;
	int want;
} flags[] = {
	{V("y"), OVL_FLAG_YES}, {V("x"), OVL_FLAG_X}, {V(""), OVL_FLAG_NO},
	{V("yes"), -EINVAL},	{V("Y"), -EINVAL},    {V("n"), -EINVAL},
	{V("y\0"), -EINVAL},	{V("\0"), -EINVAL},   {V("y\n"), -EINVAL},
};

START_TEST(flag_table)
{
	ck_assert_int_eq(ovl_flag_decode(flags[_i].v, flags[_i].len), flags[_i].want);
}
END_TEST

/* --- nlink --- */

static const struct {
	const char *v;
	ssize_t len;
	int err;
	char base;
	int diff;
} nlinks[] = {
	{V("U+3"), 0, 'U', 3},
	{V("L+0"), 0, 'L', 0},
	{V("U-2"), 0, 'U', -2},
	{V("L-2147483648"), 0, 'L', INT_MIN},
	{V("U+2147483647"), 0, 'U', INT_MAX},
	{V("U+3\n"), 0, 'U', 3},     /* kstrtoint takes one trailing newline */
	{V("U+3\0junk"), 0, 'U', 3}, /* cut at the NUL */
	{V("U+007"), 0, 'U', 7},
	{V("U+2147483648"), -ERANGE, 0, 0},
	{V("L-2147483649"), -ERANGE, 0, 0},
	{V("U+0000000000001"), -ERANGE, 0, 0}, /* more than 12 bytes */
	{V("U+"), -EINVAL, 0, 0},
	{V("U"), -EINVAL, 0, 0},
	{V(""), -EINVAL, 0, 0},
	{V("X+1"), -EINVAL, 0, 0},
	{V("u+1"), -EINVAL, 0, 0},
	{V("U1"), -EINVAL, 0, 0},
	{V("U+ 3"), -EINVAL, 0, 0},
	{V("U+3 "), -EINVAL, 0, 0},
	{V("U+3\n\n"), -EINVAL, 0, 0},
	{V("U+-3"), -EINVAL, 0, 0},
	{V("U++3"), -EINVAL, 0, 0},
	{V("U+0x3"), -EINVAL, 0, 0},
	{V("U+3a"), -EINVAL, 0, 0},
};

START_TEST(nlink_table)
{
	char base = 0;
	int diff = 99;
	int r = ovl_nlink_decode(nlinks[_i].v, nlinks[_i].len, &base, &diff);
	ck_assert_msg(r == nlinks[_i].err, "case %d (%s): %d", _i, nlinks[_i].v, r);
	if (r == 0) {
		ck_assert_int_eq(base, nlinks[_i].base);
		ck_assert_int_eq(diff, nlinks[_i].diff);
	}
}
END_TEST

START_TEST(nlink_apply)
{
	unsigned long n = 0;
	ck_assert_int_eq(ovl_nlink_apply('L', 1, 3, 1, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(ovl_nlink_apply('U', 2, 3, 1, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ovl_nlink_apply('U', -1, 3, 1, &n), -EINVAL);
	ck_assert_int_eq(ovl_nlink_apply('L', INT_MIN, 3, 1, &n), -EINVAL);
	ck_assert_int_eq(ovl_nlink_apply('L', INT_MAX, UINT_MAX, 1, &n), -EINVAL);
}
END_TEST

/* --- metacopy --- */

START_TEST(metacopy)
{
	ck_assert_int_eq(ovl_metacopy_decode("", 0), 1);
	ck_assert_int_eq(ovl_metacopy_decode("\0", 1), -EIO);
	ck_assert_int_eq(ovl_metacopy_decode("\0\0\0", 3), -EIO);
	ck_assert_int_eq(ovl_metacopy_decode("\0\4\0\0", 4), 1);
	ck_assert_int_eq(ovl_metacopy_decode("\1\4\0\0", 4), 1); /* version not checked at lookup */
	char big[100] = {0};
	ck_assert_int_eq(ovl_metacopy_decode(big, sizeof(big)), 1);
}
END_TEST

/* --- .wh. names --- */

static const struct {
	const char *name;
	enum ovl_wh_kind kind;
	const char *target;
} whs[] = {
	{"a", OVL_WH_NONE, NULL},
	{".w", OVL_WH_NONE, NULL},
	{".wh", OVL_WH_NONE, NULL},
	{".whx", OVL_WH_NONE, NULL},
	{"x.wh.a", OVL_WH_NONE, NULL},
	{".wh.a", OVL_WH_WHITEOUT, "a"},
	{".wh....", OVL_WH_WHITEOUT, "..."},
	{".wh..x", OVL_WH_WHITEOUT, ".x"},
	{".wh..wh..opq", OVL_WH_OPQ, NULL},
	{".wh..wh.plnk", OVL_WH_WHITEOUT, ".wh.plnk"},
	{".wh..wh..opqx", OVL_WH_WHITEOUT, ".wh..opqx"},
	{".wh.", OVL_WH_INVALID, NULL},
	{".wh..", OVL_WH_INVALID, NULL},
	{".wh...", OVL_WH_INVALID, NULL},
};

START_TEST(wh_table)
{
	const char *target = NULL;
	enum ovl_wh_kind k = ovl_wh_decode(whs[_i].name, strlen(whs[_i].name), &target);
	ck_assert_msg(k == whs[_i].kind, "%s: %d", whs[_i].name, k);
	if (whs[_i].target)
		ck_assert_str_eq(target, whs[_i].target);
	/* A '/' or NUL in a target names no entry. */
	ck_assert_int_eq(ovl_wh_decode(".wh.a/b", 7, &target), OVL_WH_INVALID);
	ck_assert_int_eq(ovl_wh_decode(".wh.a\0b", 7, &target), OVL_WH_INVALID);
}
END_TEST

/* --- the wrappers refuse what is not one component --- */

START_TEST(layer_single_component)
{
	char tmpl[] = "/tmp/plyfs-ovlx-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	g_autofree char *sub = g_build_filename(tmpl, "sub", NULL);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	int fd = open(sub, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	const char *bad[] = {"..", ".", "", "../sub", "a/b", "/etc"};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		ck_assert_int_eq(layer_fstatat(fd, bad[i], &st), -EACCES);
		ck_assert_int_eq(layer_openat(fd, bad[i], O_PATH, 0), -EACCES);
		ck_assert_int_eq(layer_getxattr(fd, bad[i], "user.x", NULL, 0), -EACCES);
		ck_assert_int_eq(layer_mkdirat(fd, bad[i], 0755), -EACCES);
		ck_assert_int_eq(layer_unlinkat(fd, bad[i], AT_REMOVEDIR), -EACCES);
		ck_assert_int_eq(layer_renameat2(fd, "x", fd, bad[i], 0), -EACCES);
		ck_assert_int_eq(layer_fchmodat(fd, bad[i], 0700), -EACCES);
	}
	/* The redirect's own opener: never above the directory it starts from. */
	ck_assert_int_lt(layer_open_beneath(fd, "..", O_PATH | O_DIRECTORY), 0);
	ck_assert_int_lt(layer_open_beneath(fd, "/etc", O_PATH | O_DIRECTORY), 0);
	int ok = layer_open_beneath(fd, "", O_PATH | O_DIRECTORY);
	ck_assert_int_ge(ok, 0);
	close(ok);
	ck_assert_int_eq(layer_mkdirat(fd, "ok", 0755), 0);
	ck_assert_int_eq(layer_fstatat(fd, "ok", &st), 0);
	ck_assert_int_eq(layer_unlinkat(fd, "ok", AT_REMOVEDIR), 0);
	close(fd);
	rmdir(sub);
	rmdir(tmpl);
}
END_TEST

START_TEST(report_once)
{
	unsigned long before = ovl_xattr_reports();
	ovl_xattr_report_invalid(NULL, "redirect", 1, "esc", -EACCES);
	ovl_xattr_report_invalid(NULL, "redirect", 1, "esc", -EACCES);
	ovl_xattr_report_invalid(NULL, "redirect", 2, "esc", -EACCES);
	ovl_xattr_report_invalid(NULL, "opaque", 1, "esc", -EINVAL);
	ck_assert_uint_eq(ovl_xattr_reports() - before, 3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ovl_xattr");
	TCase *tc = tcase_create("decoders");
	tcase_add_loop_test(tc, redirect_table, 0, G_N_ELEMENTS(redirects));
	tcase_add_test(tc, redirect_lengths);
	tcase_add_loop_test(tc, origin_table, 0, G_N_ELEMENTS(origins));
	tcase_add_test(tc, origin_short);
	tcase_add_loop_test(tc, plyfs_origin_table, 0, G_N_ELEMENTS(plyfs_origins));
	tcase_add_loop_test(tc, flag_table, 0, G_N_ELEMENTS(flags));
	tcase_add_loop_test(tc, nlink_table, 0, G_N_ELEMENTS(nlinks));
	tcase_add_test(tc, nlink_apply);
	tcase_add_test(tc, metacopy);
	tcase_add_loop_test(tc, wh_table, 0, G_N_ELEMENTS(whs));
	tcase_add_test(tc, layer_single_component);
	tcase_add_test(tc, report_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
