// SPDX-License-Identifier: GPL-2.0-or-later
/* test_idmap.c - uidmapping=/gidmapping= parsing and both mapping directions. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

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
};

START_TEST(test_parse_good)
{
	const struct good_spec *tc = &good_specs[_i];
	struct idmap m = {0};
	g_autofree char *err = NULL;

	ck_assert_msg(idmap_parse(tc->spec, &m, &err) == 0, "'%s': %s", tc->spec, err);
	ck_assert_uint_eq(m.n, tc->n);
	ck_assert_uint_eq(m.ranges[0].container, tc->first.container);
	ck_assert_uint_eq(m.ranges[0].host, tc->first.host);
	ck_assert_uint_eq(m.ranges[0].count, tc->first.count);
	ck_assert_uint_eq(m.ranges[m.n - 1].container, tc->last.container);
	ck_assert_uint_eq(m.ranges[m.n - 1].host, tc->last.host);
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
	{"0:1000:1:", "triples"},
	{"a:1000:1", "'a'"},
	{"0:b:1", "'b'"},
	{"0:1000:c", "'c'"},
	{"0::1", "host id ''"},
	{"-1:1000:1", "'-1'"},
	{"+1:1000:1", "'+1'"},
	{" 1:1000:1", "' 1'"},
	{"0:1000:1x", "'1x'"},
	{"4294967296:0:1", "'4294967296'"},
	{"0:1000:0", "count is 0"},
	{"2:0:4294967295", "goes past"},
	{"0:4294967295:2", "goes past"},
	{"0:1000:10:5:2000:1", "container side"},
	{"0:1000:10:20:1005:1", "host side"},
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
	uint32_t host;
	uint32_t container; /* what to_container(host) gives */
};

/* 0 <-> 1000 (one id), 1..65536 <-> 100000..165535 */
static const char podman_spec[] = "0:1000:1:1:100000:65536";

static const struct mapping_case to_container_cases[] = {
	{1000, 0},
	{100000, 1},
	{100001, 2},
	{165535, 65536},
	{165536, IDMAP_OVERFLOW_ID}, /* one past the last range */
	{99999, IDMAP_OVERFLOW_ID},
	{0, IDMAP_OVERFLOW_ID}, /* host root is not mapped */
	{999, IDMAP_OVERFLOW_ID},
	{1001, IDMAP_OVERFLOW_ID},
	{UINT32_MAX, IDMAP_OVERFLOW_ID},
};

START_TEST(test_to_container)
{
	const struct mapping_case *tc = &to_container_cases[_i];
	struct idmap m = {0};
	g_autofree char *err = NULL;

	ck_assert_int_eq(idmap_parse(podman_spec, &m, &err), 0);
	ck_assert_uint_eq(idmap_to_container(&m, tc->host), tc->container);
	idmap_clear(&m);
}
END_TEST

struct to_host_case {
	uint32_t container;
	int ret;
	uint32_t host;
};

static const struct to_host_case to_host_cases[] = {
	{0, 0, 1000},
	{1, 0, 100000},
	{65536, 0, 165535},
	{65537, -EINVAL, 0},
	{IDMAP_OVERFLOW_ID, 0, 165533}, /* inside a range, 65534 is an ordinary id */
	{70000, -EINVAL, 0},
	{UINT32_MAX, -EINVAL, 0},
};

START_TEST(test_to_host)
{
	const struct to_host_case *tc = &to_host_cases[_i];
	struct idmap m = {0};
	g_autofree char *err = NULL;
	uint32_t host = 4242;

	ck_assert_int_eq(idmap_parse(podman_spec, &m, &err), 0);
	ck_assert_int_eq(idmap_to_host(&m, tc->container, &host), tc->ret);
	if (tc->ret == 0)
		ck_assert_uint_eq(host, tc->host);
	else
		ck_assert_uint_eq(host, 4242); /* untouched on failure */
	idmap_clear(&m);
}
END_TEST

/* Every mapped id survives a round trip; ids at the top of the 32-bit space do not wrap. */
START_TEST(test_roundtrip_edges)
{
	struct idmap m = {0};
	g_autofree char *err = NULL;
	uint32_t host;

	ck_assert_int_eq(idmap_parse("4294967290:0:6:0:4294967290:6", &m, &err), 0);
	for (uint32_t c = 4294967290u; c != 0; c++) { /* up to and including UINT32_MAX */
		ck_assert_int_eq(idmap_to_host(&m, c, &host), 0);
		ck_assert_uint_eq(host, c - 4294967290u);
		ck_assert_uint_eq(idmap_to_container(&m, host), c);
	}
	for (uint32_t c = 0; c < 6; c++) {
		ck_assert_int_eq(idmap_to_host(&m, c, &host), 0);
		ck_assert_uint_eq(host, 4294967290u + c);
		ck_assert_uint_eq(idmap_to_container(&m, host), c);
	}
	ck_assert_int_eq(idmap_to_host(&m, 6, &host), -EINVAL);
	ck_assert_uint_eq(idmap_to_container(&m, 6), IDMAP_OVERFLOW_ID);
	ck_assert_uint_eq(idmap_to_container(&m, 4294967289u), IDMAP_OVERFLOW_ID);
	idmap_clear(&m);
}
END_TEST

START_TEST(test_identity_without_mapping)
{
	struct idmap m = {0};
	static const uint32_t ids[] = {0, 1, 1000, IDMAP_OVERFLOW_ID, UINT32_MAX};

	for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
		uint32_t host = 7;

		ck_assert_uint_eq(idmap_to_container(&m, ids[i]), ids[i]);
		ck_assert_int_eq(idmap_to_host(&m, ids[i], &host), 0);
		ck_assert_uint_eq(host, ids[i]);
	}
	idmap_clear(&m); /* clearing an empty map is fine */
}
END_TEST

static Suite *idmap_suite(void)
{
	Suite *s = suite_create("idmap");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_parse_good, 0, G_N_ELEMENTS(good_specs));
	tcase_add_loop_test(tc, test_parse_bad, 0, G_N_ELEMENTS(bad_specs));
	tcase_add_loop_test(tc, test_to_container, 0, G_N_ELEMENTS(to_container_cases));
	tcase_add_loop_test(tc, test_to_host, 0, G_N_ELEMENTS(to_host_cases));
	tcase_add_test(tc, test_roundtrip_edges);
	tcase_add_test(tc, test_identity_without_mapping);
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
