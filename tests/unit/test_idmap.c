// SPDX-License-Identifier: GPL-2.0-or-later
/* test_idmap.c - uidmapping=/gidmapping= (stored:shown:count) parsing, both directions, ACLs. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "idmap.h"

struct good_spec {
	const char *spec;
	size_t n;
	struct idmap_range first, last;
};

static const struct good_spec good_specs[] = {
	{"0:1000:1", 1, {0, 1000, 1}, {0, 1000, 1}},
	{"0:100000:65536", 1, {0, 100000, 65536}, {0, 100000, 65536}},
	{"0:1000:1:1:100000:65536", 2, {0, 1000, 1}, {1, 100000, 65536}},
	{"1:100000:65536:0:1000:1", 2, {1, 100000, 65536}, {0, 1000, 1}},
	{"0:0:4294967295", 1, {0, 0, 4294967295u}, {0, 0, 4294967295u}},
	{"4294967295:0:1", 1, {4294967295u, 0, 1}, {4294967295u, 0, 1}},
	{"0:4294967295:1", 1, {0, 4294967295u, 1}, {0, 4294967295u, 1}},
	{"0:10:5:5:15:5:10:20:5", 3, {0, 10, 5}, {10, 20, 5}},
	/* adjacent on both sides is not an overlap */
	{"0:0:10:10:10:10", 2, {0, 0, 10}, {10, 10, 10}},
	/* empty fields are skipped, as fuse-overlayfs' strtok() does: containers-storage writes
	 * podman's --uidmap 0:100000:65536 as ":0:100000:65536" */
	{":0:100000:65536", 1, {0, 100000, 65536}, {0, 100000, 65536}},
	{"0:100000:65536:", 1, {0, 100000, 65536}, {0, 100000, 65536}},
	{"::0::100000:::65536::", 1, {0, 100000, 65536}, {0, 100000, 65536}},
	{":0:1000:1:1:100000:65536", 2, {0, 1000, 1}, {1, 100000, 65536}},
};

START_TEST(test_parse_good)
{
	const struct good_spec *tc = &good_specs[_i];
	struct idmap m = {0};
	g_autofree char *err = NULL;

	ck_assert_msg(idmap_parse(tc->spec, &m, &err) == 0, "'%s': %s", tc->spec, err);
	ck_assert_uint_eq(m.n, tc->n);
	ck_assert_uint_eq(m.ranges[0].stored, tc->first.stored);
	ck_assert_uint_eq(m.ranges[0].shown, tc->first.shown);
	ck_assert_uint_eq(m.ranges[0].count, tc->first.count);
	ck_assert_uint_eq(m.ranges[m.n - 1].stored, tc->last.stored);
	ck_assert_uint_eq(m.ranges[m.n - 1].shown, tc->last.shown);
	ck_assert_uint_eq(m.overflow, IDMAP_OVERFLOW_ID);
	ck_assert_uint_eq(m.ranges[m.n - 1].count, tc->last.count);
	idmap_clear(&m);
	ck_assert_ptr_null(m.ranges);
	ck_assert_uint_eq(m.n, 0);
}
END_TEST

struct bad_spec {
	const char *spec;
	const char *needle; /* the bad part, named in the message */
};

static const struct bad_spec bad_specs[] = {
	{"", "triples"},
	{"0", "triples"},
	{"0:1000", "triples"},
	{"0:1000:1:2", "triples"},
	{"0:1000:1:5", "triples"},
	{":", "triples"},
	{":::", "triples"},
	{"a:1000:1", "'a'"},
	{"0:b:1", "'b'"},
	{"0:1000:c", "'c'"},
	{"0::1", "triples"}, /* the empty field is skipped: two fields are left */
	{"-1:1000:1", "'-1'"},
	{"+1:1000:1", "'+1'"},
	{" 1:1000:1", "' 1'"},
	{"0:1000:1x", "'1x'"},
	{"4294967296:0:1", "'4294967296'"},
	{"0:1000:0", "count is 0"},
	{"2:0:4294967295", "goes past"},
	{"0:4294967295:2", "goes past"},
	{"0:1000:10:5:2000:1", "stored side"},
	{"0:1000:10:20:1005:1", "shown side"},
	{"0:0:1:1:1:1:1:2:1", "range 3"},
	{"0:10:5:5:20:5:9:100:1", "range 3 (9:100:1) overlaps range 2"},
};

START_TEST(test_parse_bad)
{
	const struct bad_spec *tc = &bad_specs[_i];
	struct idmap m = {0};
	char *err = NULL;

	ck_assert_msg(idmap_parse(tc->spec, &m, &err) == -EINVAL, "'%s' should fail", tc->spec);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, tc->needle), "'%s': message '%s' lacks '%s'", tc->spec, err,
		      tc->needle);
	/* nothing is left allocated on failure */
	ck_assert_ptr_null(m.ranges);
	ck_assert_uint_eq(m.n, 0);
	g_free(err);
}
END_TEST

struct mapping_case {
	uint32_t stored;
	uint32_t shown; /* what to_shown(stored) gives */
};

/* fuse-overlayfs(1)'s example: stored 0 shown as 1000 (one id), stored 1..65536 shown as
 * 110000..175535. */
static const char man_spec[] = "0:1000:1:1:110000:65536";

static const struct mapping_case to_shown_cases[] = {
	{0, 1000},
	{1, 110000},
	{2, 110001},
	{65536, 175535},
	{65537, IDMAP_OVERFLOW_ID}, /* one past the last range */
	{70000, IDMAP_OVERFLOW_ID},
	{110000, IDMAP_OVERFLOW_ID}, /* a shown id is not a stored one */
	{UINT32_MAX, IDMAP_OVERFLOW_ID},
};

START_TEST(test_to_shown)
{
	const struct mapping_case *tc = &to_shown_cases[_i];
	struct idmap m = {0};
	g_autofree char *err = NULL;

	ck_assert_int_eq(idmap_parse(man_spec, &m, &err), 0);
	ck_assert_uint_eq(idmap_to_shown(&m, tc->stored), tc->shown);
	idmap_clear(&m);
}
END_TEST

struct to_stored_case {
	uint32_t shown;
	int ret;
	uint32_t stored;
};

static const struct to_stored_case to_stored_cases[] = {
	{1000, 0, 0},
	{110000, 0, 1},
	{175535, 0, 65536},
	{175536, -EINVAL, 0},
	{109999, -EINVAL, 0},
	{0, -EINVAL, 0}, /* shown root is not mapped */
	{1, -EINVAL, 0},
	{IDMAP_OVERFLOW_ID, -EINVAL, 0},
	{UINT32_MAX, -EINVAL, 0},
};

START_TEST(test_to_stored)
{
	const struct to_stored_case *tc = &to_stored_cases[_i];
	struct idmap m = {0};
	g_autofree char *err = NULL;
	uint32_t stored = 4242;

	ck_assert_int_eq(idmap_parse(man_spec, &m, &err), 0);
	ck_assert_int_eq(idmap_to_stored(&m, tc->shown, &stored), tc->ret);
	if (tc->ret == 0) {
		ck_assert_uint_eq(stored, tc->stored);
		ck_assert_uint_eq(idmap_new_owner(&m, tc->shown), tc->stored);
	} else {
		ck_assert_uint_eq(stored, 4242); /* untouched on failure */
		/* a new entry of an unmapped caller is stored with the overflow id */
		ck_assert_uint_eq(idmap_new_owner(&m, tc->shown), IDMAP_OVERFLOW_ID);
	}
	idmap_clear(&m);
}
END_TEST

/* podman --uidmap 0:100000:65536, as containers-storage passes it: the image's root-owned files
 * show as 100000, and a chown to 100000 stores 0. */
START_TEST(test_podman_direction)
{
	struct idmap m = {0};
	g_autofree char *err = NULL;
	uint32_t stored = 7;

	ck_assert_int_eq(idmap_parse(":0:100000:65536", &m, &err), 0);
	ck_assert_uint_eq(idmap_to_shown(&m, 0), 100000);
	ck_assert_uint_eq(idmap_to_shown(&m, 65535), 165535);
	ck_assert_uint_eq(idmap_to_shown(&m, 100000), IDMAP_OVERFLOW_ID);
	ck_assert_int_eq(idmap_to_stored(&m, 100000, &stored), 0);
	ck_assert_uint_eq(stored, 0);
	ck_assert_int_eq(idmap_to_stored(&m, 0, &stored), -EINVAL);
	idmap_clear(&m);
}
END_TEST

/* The overflow id comes from the kernel's file; an unreadable or bad file keeps the default. */
START_TEST(test_read_overflow)
{
	struct idmap m = {0};
	g_autofree char *err = NULL;
	g_autofree char *dir = g_dir_make_tmp("test_idmap-XXXXXX", NULL);
	g_autofree char *good = g_build_filename(dir, "good", NULL);
	g_autofree char *bad = g_build_filename(dir, "bad", NULL);

	ck_assert_ptr_nonnull(dir);
	ck_assert(g_file_set_contents(good, "4242\n", -1, NULL));
	ck_assert(g_file_set_contents(bad, "x\n", -1, NULL));
	ck_assert_int_eq(idmap_parse("5:6:1", &m, &err), 0);
	idmap_read_overflow(&m, bad);
	ck_assert_uint_eq(m.overflow, IDMAP_OVERFLOW_ID);
	idmap_read_overflow(&m, "/nonexistent/overflowuid");
	ck_assert_uint_eq(m.overflow, IDMAP_OVERFLOW_ID);
	idmap_read_overflow(&m, good);
	ck_assert_uint_eq(m.overflow, 4242);
	ck_assert_uint_eq(idmap_to_shown(&m, 7), 4242);
	ck_assert_uint_eq(idmap_new_owner(&m, 7), 4242);
	idmap_clear(&m);
	g_unlink(good);
	g_unlink(bad);
	g_rmdir(dir);
}
END_TEST

/* Every mapped id survives a round trip; ids at the top of the 32-bit space do not wrap. */
START_TEST(test_roundtrip_edges)
{
	struct idmap m = {0};
	g_autofree char *err = NULL;
	uint32_t stored;

	ck_assert_int_eq(idmap_parse("0:4294967290:6:4294967290:0:6", &m, &err), 0);
	for (uint32_t c = 4294967290u; c != 0; c++) { /* up to and including UINT32_MAX */
		ck_assert_int_eq(idmap_to_stored(&m, c, &stored), 0);
		ck_assert_uint_eq(stored, c - 4294967290u);
		ck_assert_uint_eq(idmap_to_shown(&m, stored), c);
	}
	for (uint32_t c = 0; c < 6; c++) {
		ck_assert_int_eq(idmap_to_stored(&m, c, &stored), 0);
		ck_assert_uint_eq(stored, 4294967290u + c);
		ck_assert_uint_eq(idmap_to_shown(&m, stored), c);
	}
	ck_assert_int_eq(idmap_to_stored(&m, 6, &stored), -EINVAL);
	ck_assert_uint_eq(idmap_to_shown(&m, 6), IDMAP_OVERFLOW_ID);
	ck_assert_uint_eq(idmap_to_shown(&m, 4294967289u), IDMAP_OVERFLOW_ID);
	idmap_clear(&m);
}
END_TEST

START_TEST(test_identity_without_mapping)
{
	struct idmap m = {0};
	static const uint32_t ids[] = {0, 1, 1000, IDMAP_OVERFLOW_ID, UINT32_MAX};

	for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
		uint32_t stored = 7;

		ck_assert_uint_eq(idmap_to_shown(&m, ids[i]), ids[i]);
		ck_assert_int_eq(idmap_to_stored(&m, ids[i], &stored), 0);
		ck_assert_uint_eq(stored, ids[i]);
		ck_assert_uint_eq(idmap_new_owner(&m, ids[i]), ids[i]);
	}
	idmap_clear(&m); /* clearing an empty map is fine */
}
END_TEST

/* A POSIX ACL xattr value: header, then (tag, perm, id) entries, little-endian. */
static size_t acl_build(unsigned char *buf, const uint16_t *tags, const uint32_t *ids, size_t n)
{
	uint32_t v = GUINT32_TO_LE(2);

	memcpy(buf, &v, 4);
	for (size_t i = 0; i < n; i++) {
		uint16_t t = GUINT16_TO_LE(tags[i]), perm = GUINT16_TO_LE(6);
		uint32_t id = GUINT32_TO_LE(ids[i]);

		memcpy(buf + 4 + 8 * i, &t, 2);
		memcpy(buf + 6 + 8 * i, &perm, 2);
		memcpy(buf + 8 + 8 * i, &id, 4);
	}
	return 4 + 8 * n;
}

static uint32_t acl_id(const unsigned char *buf, size_t i)
{
	uint32_t id;

	memcpy(&id, buf + 8 + 8 * i, 4);
	return GUINT32_FROM_LE(id);
}

/* ACL_USER_OBJ 1, ACL_USER 2, ACL_GROUP_OBJ 4, ACL_GROUP 8, ACL_MASK 0x10, ACL_OTHER 0x20 */
static const uint16_t acl_tags[] = {1, 2, 4, 8, 8, 0x10, 0x20};

START_TEST(test_acl_both_ways)
{
	struct idmap u = {0}, g = {0};
	g_autofree char *err = NULL;
	unsigned char buf[4 + 8 * 7];
	const uint32_t stored[] = {0xffffffffu, 5, 0xffffffffu, 7, 70000, 0xffffffffu, 0xffffffffu};
	size_t len = acl_build(buf, acl_tags, stored, 7);

	ck_assert_int_eq(idmap_parse("0:100000:65536", &u, &err), 0);
	ck_assert_int_eq(idmap_parse("0:200000:65536", &g, &err), 0);
	ck_assert_int_eq(idmap_acl(&u, &g, buf, len, 1), 0);
	/* only ACL_USER and ACL_GROUP entries carry ids; an unmapped one shows as overflow */
	const uint32_t shown[] = {0xffffffffu,	     100005,	  0xffffffffu, 200007,
				  IDMAP_OVERFLOW_ID, 0xffffffffu, 0xffffffffu};
	for (size_t i = 0; i < 7; i++)
		ck_assert_uint_eq(acl_id(buf, i), shown[i]);
	/* back: the overflow id has no stored id, so the whole value is refused */
	ck_assert_int_eq(idmap_acl(&u, &g, buf, len, 0), -EINVAL);
	len = acl_build(buf, acl_tags, shown, 4);
	ck_assert_int_eq(idmap_acl(&u, &g, buf, len, 0), 0);
	ck_assert_uint_eq(acl_id(buf, 1), 5);
	ck_assert_uint_eq(acl_id(buf, 3), 7);
	idmap_clear(&u);
	idmap_clear(&g);
}
END_TEST

/* Not an ACL in the kernel's format (wrong version, torn entry): left as it is. */
START_TEST(test_acl_not_an_acl)
{
	struct idmap u = {0}, g = {0};
	g_autofree char *err = NULL;
	unsigned char buf[4 + 8 * 2], copy[sizeof(buf)];
	const uint32_t ids[] = {5, 5};
	size_t len = acl_build(buf, (const uint16_t[]){2, 8}, ids, 2);

	ck_assert_int_eq(idmap_parse("0:100000:65536", &u, &err), 0);
	ck_assert_int_eq(idmap_parse("0:100000:65536", &g, &err), 0);
	buf[0] = 1; /* version 1 */
	memcpy(copy, buf, len);
	ck_assert_int_eq(idmap_acl(&u, &g, buf, len, 1), 0);
	ck_assert_mem_eq(buf, copy, len);
	buf[0] = 2;
	memcpy(copy, buf, len);
	ck_assert_int_eq(idmap_acl(&u, &g, buf, len - 1, 1), 0); /* torn */
	ck_assert_mem_eq(buf, copy, len);
	ck_assert_int_eq(idmap_acl(&u, &g, buf, 3, 1), 0); /* no header */
	ck_assert_int_eq(idmap_acl(&u, &g, buf, len, 1), 0);
	ck_assert_uint_eq(acl_id(buf, 0), 100005);
	idmap_clear(&u);
	idmap_clear(&g);
}
END_TEST

static Suite *idmap_suite(void)
{
	Suite *s = suite_create("idmap");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_parse_good, 0, G_N_ELEMENTS(good_specs));
	tcase_add_loop_test(tc, test_parse_bad, 0, G_N_ELEMENTS(bad_specs));
	tcase_add_loop_test(tc, test_to_shown, 0, G_N_ELEMENTS(to_shown_cases));
	tcase_add_loop_test(tc, test_to_stored, 0, G_N_ELEMENTS(to_stored_cases));
	tcase_add_test(tc, test_podman_direction);
	tcase_add_test(tc, test_read_overflow);
	tcase_add_test(tc, test_roundtrip_edges);
	tcase_add_test(tc, test_identity_without_mapping);
	tcase_add_test(tc, test_acl_both_ways);
	tcase_add_test(tc, test_acl_not_an_acl);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(idmap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
