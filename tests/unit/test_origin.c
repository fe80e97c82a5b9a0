// SPDX-License-Identifier: GPL-2.0-or-later
/* test_origin.c - origin.h: the kernel's uuid rule (which lower filesystems' origins cannot be told
 * apart, table-driven, as kernel overlayfs 6.18 decides), and the origin value itself on a real
 * directory: its ovl_fb bytes, the round trip through the xattr, verification by name and by
 * open_by_handle_at, the answers for absent, empty and invalid values, the impure marker. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib.h>

#include "origin.h"
#include "ovl_names.h"

static char *test_root;

/* --- the uuid rule --- */

#define U0                                                                                         \
	{                                                                                          \
		0                                                                                  \
	}
#define UA                                                                                         \
	{                                                                                          \
		0xaa, 1                                                                            \
	}
#define UB                                                                                         \
	{                                                                                          \
		0xbb, 2                                                                            \
	}

/* Up to 4 layers: upper?, dev, uuid; and which come out bad. */
static const struct uuid_case {
	const char *what;
	bool has_upper;
	size_t n;
	struct {
		bool upper;
		dev_t dev;
		unsigned char uuid[16];
		bool bad;
	} l[4];
	unsigned numfs;
} uuid_cases[] = {
	{"one lower with a null uuid: accepted (index stays on)",
	 true,
	 2,
	 {{true, 1, UA, false}, {false, 2, U0, false}},
	 2},
	{"two lower filesystems with a null uuid: both bad",
	 true,
	 3,
	 {{true, 1, UA, false}, {false, 2, U0, true}, {false, 3, U0, true}},
	 3},
	{"two lowers on one null-uuid filesystem: accepted",
	 true,
	 3,
	 {{true, 1, UA, false}, {false, 2, U0, false}, {false, 2, U0, false}},
	 2},
	{"distinct uuids: accepted",
	 true,
	 3,
	 {{true, 1, UA, false}, {false, 2, U0, false}, {false, 3, UB, false}},
	 3},
	{"upper and lower on one null-uuid filesystem: accepted",
	 true,
	 2,
	 {{true, 1, U0, false}, {false, 1, U0, false}},
	 1},
	{"the upper's uuid on a lower filesystem: not a conflict (the upper is no lower)",
	 true,
	 2,
	 {{true, 1, UA, false}, {false, 2, UA, false}},
	 2},
	{"a lower on the upper's filesystem and another with its uuid: that one is bad",
	 true,
	 3,
	 {{true, 1, UA, false}, {false, 1, UA, false}, {false, 2, UA, true}},
	 2},
	{"the same uuid on the second and third lower filesystems",
	 true,
	 4,
	 {{true, 1, U0, false}, {false, 2, UB, true}, {false, 3, UA, false}, {false, 4, UB, true}},
	 4},
	{"no upper: nothing is decoded, nothing is bad",
	 false,
	 2,
	 {{false, 2, U0, false}, {false, 3, U0, false}},
	 3},
};

START_TEST(test_uuid_rule)
{
	const struct uuid_case *c = &uuid_cases[_i];
	struct layer layers[4] = {0};
	for (size_t i = 0; i < c->n; i++) {
		layers[i].upper = c->l[i].upper;
		layers[i].dev = c->l[i].dev;
		memcpy(layers[i].uuid, c->l[i].uuid, 16);
	}
	unsigned numfs = origin_mark_bad_uuids(layers, c->n, c->has_upper);
	for (size_t i = 0; i < c->n; i++)
		ck_assert_msg(layers[i].bad_uuid == c->l[i].bad, "%s: layer %zu bad=%d", c->what, i,
			      layers[i].bad_uuid);
	ck_assert_msg(numfs == c->numfs, "%s: numfs %u", c->what, numfs);
}
END_TEST

/* --- the value --- */

static struct layer layers[2];
static struct plyfs fs;
static int dir = -1;

static void setup(void)
{
	g_autofree char *d = g_strdup_printf("%s/t%d", test_root, (int)getpid());
	g_autofree char *f = g_strconcat(d, "/f", NULL);
	g_autofree char *g = g_strconcat(d, "/g", NULL);
	g_autofree char *s = g_strconcat(d, "/s", NULL);
	ck_assert_int_eq(g_mkdir_with_parents(d, 0755), 0);
	ck_assert(g_file_set_contents(f, "f\n", -1, NULL));
	ck_assert(g_file_set_contents(g, "g\n", -1, NULL));
	ck_assert_int_eq(mkdir(s, 0755), 0);
	dir = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dir, 0);
	memset(layers, 0, sizeof(layers));
	layers[0].upper = true;
	for (int i = 0; i < 2; i++) {
		layers[i].index = i;
		layers[i].root_fd = dir;
		layers[i].uuid[0] = 0x5a;
		layers[i].uuid[15] = (unsigned char)i;
	}
	fs = (struct plyfs){.layers = layers,
			    .n_layers = 2,
			    .has_upper = true,
			    .uuid = UUID_AUTO,
			    .xattr_prefix = OVL_XATTR_USER_PREFIX,
			    .index_dirfd = -1};
}

static void teardown(void)
{
	close(dir);
	dir = -1;
}

START_TEST(test_encode)
{
	struct origin_fh fh;
	ck_assert_int_eq(origin_encode(&fs, 1, dir, "f", &fh), 0);
	ck_assert_uint_gt(fh.len, OVL_FB_HEADER_LEN);
	ck_assert_uint_eq(fh.fb[0], OVL_FB_VERSION);
	ck_assert_uint_eq(fh.fb[1], OVL_FB_MAGIC);
	ck_assert_uint_eq(fh.fb[2], fh.len);
	ck_assert_uint_eq(fh.fb[3], OVL_FB_FLAG_CPU_ENDIAN);
	ck_assert_mem_eq(fh.fb + 5, layers[1].uuid, 16);
	ck_assert(origin_matches(&fs, &fh, 1, dir, "f"));
	ck_assert(!origin_matches(&fs, &fh, 1, dir, "g"));
	/* uuid=off: a null uuid, and only that matches */
	fs.uuid = UUID_OFF;
	ck_assert(!origin_matches(&fs, &fh, 1, dir, "f"));
	struct origin_fh off;
	ck_assert_int_eq(origin_encode(&fs, 1, dir, "f", &off), 0);
	static const unsigned char null[16];
	ck_assert_mem_eq(off.fb + 5, null, 16);
	ck_assert_mem_eq(off.fb + OVL_FB_HEADER_LEN, fh.fb + OVL_FB_HEADER_LEN,
			 fh.len - OVL_FB_HEADER_LEN);
	/* the hex is the index entry name */
	g_autofree char *hex = origin_hex(&fh);
	ck_assert_uint_eq(strlen(hex), 2 * fh.len);
	ck_assert(g_str_has_prefix(hex, "00fb"));
}
END_TEST

static void set_raw(const char *name, const void *v, size_t len)
{
	g_autofree char *p = g_strdup_printf("/proc/self/fd/%d/%s", dir, name);
	ck_assert_int_eq(lsetxattr(p, OVL_XATTR_USER_PREFIX "origin", v, len, 0), 0);
}

START_TEST(test_get)
{
	struct origin_fh fh, got;
	ck_assert_int_eq(origin_get(&fs, dir, "g", &got), -ENODATA);
	ck_assert_int_eq(origin_encode(&fs, 1, dir, "f", &fh), 0);
	ck_assert_int_eq(origin_set(&fs, dir, "g", S_IFREG, &fh), 0);
	ck_assert_int_eq(origin_get(&fs, dir, "g", &got), 0);
	ck_assert_uint_eq(got.len, fh.len);
	ck_assert_mem_eq(got.fb, fh.fb, fh.len);
	set_raw("g", "", 0); /* "copied up, origin unknown" */
	ck_assert_int_eq(origin_get(&fs, dir, "g", &got), -ESTALE);
	unsigned char bad[sizeof(fh.fb)];
	memcpy(bad, fh.fb, fh.len);
	bad[1] = 0xfc; /* magic */
	set_raw("g", bad, fh.len);
	ck_assert_int_eq(origin_get(&fs, dir, "g", &got), -EINVAL);
	memcpy(bad, fh.fb, fh.len);
	bad[0] = 1; /* a newer version: unknown */
	set_raw("g", bad, fh.len);
	ck_assert_int_eq(origin_get(&fs, dir, "g", &got), -ESTALE);
	set_raw("g", fh.fb, 10); /* shorter than the header */
	ck_assert_int_eq(origin_get(&fs, dir, "g", &got), -EINVAL);
}
END_TEST

START_TEST(test_decode)
{
	if (geteuid() != 0)
		return; /* open_by_handle_at needs CAP_DAC_READ_SEARCH */
	struct origin_fh fh;
	struct node_key key;
	struct stat st;
	ck_assert_int_eq(fstatat(dir, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(origin_encode(&fs, 1, dir, "f", &fh), 0);
	ck_assert_int_eq(origin_decode(&fs, &fh, S_IFREG, &key), 0);
	ck_assert_uint_eq(key.ino, st.st_ino);
	ck_assert_uint_eq(key.dev, st.st_dev);
	/* another type: ignored, as the kernel's "invalid origin (ftype ...)" */
	ck_assert_int_eq(origin_decode(&fs, &fh, S_IFDIR, &key), -ESTALE);
	/* another filesystem's uuid, or a lower marked bad: not decoded */
	fh.fb[5] ^= 1;
	ck_assert_int_eq(origin_decode(&fs, &fh, S_IFREG, &key), -ESTALE);
	fh.fb[5] ^= 1;
	layers[1].bad_uuid = true;
	ck_assert_int_eq(origin_decode(&fs, &fh, S_IFREG, &key), -ESTALE);
}
END_TEST

START_TEST(test_impure)
{
	g_autofree char *p = g_strdup_printf("/proc/self/fd/%d/s", dir);
	int s = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(origin_set_impure(&fs, s), 0);
	char v[4];
	ck_assert_int_eq(getxattr(p, OVL_XATTR_USER_PREFIX "impure", v, sizeof(v)), 1);
	ck_assert_int_eq(v[0], 'y');
	struct stat a, b;
	ck_assert_int_eq(fstat(s, &a), 0);
	ck_assert_int_eq(origin_set_impure(&fs, s), 0); /* already: nothing written */
	ck_assert_int_eq(fstat(s, &b), 0);
	ck_assert(a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec);
	close(s);
}
END_TEST

static Suite *origin_suite(void)
{
	Suite *s = suite_create("origin");
	TCase *tc = tcase_create("uuid_rule");
	tcase_add_loop_test(tc, test_uuid_rule, 0, G_N_ELEMENTS(uuid_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("value");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_encode);
	tcase_add_test(tc, test_get);
	tcase_add_test(tc, test_decode);
	tcase_add_test(tc, test_impure);
	suite_add_tcase(s, tc);
	return s;
}

#include "tmpdir_main.h"

int main(void)
{
	return run_in_tmpdir("plyfs-test-origin-XXXXXX", origin_suite);
}
