// SPDX-License-Identifier: GPL-2.0-or-later
/* test_records.c - unit tests of the compact store of records of forgotten nodes (records.h):
 * insert, find, remove, order, long names, many records, and the memory bound of records.h.
 * Every test runs twice (a loop test): _i 0 in anonymous memory, _i 1 in an unnamed file. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "records.h"

/* check's ck_assert() reports every passing assertion to the runner (a write): in the loops of
 * hundreds of thousands of steps below, only a failure is reported. */
#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			ck_abort_msg("line %d: %s", __LINE__, #x);                                 \
	} while (0)

static struct node_record_info info(uint64_t nodeid, dev_t dev, ino_t ino, const char *name)
{
	return (struct node_record_info){
		.nodeid = nodeid,
		.parent = nodeid / 2 + 1,
		.key = {.dev = dev, .ino = ino, .check = (uint32_t)nodeid * 7},
		.type = (nodeid % 3) ? S_IFREG : S_IFDIR,
		.generation = (uint32_t)(nodeid % 5),
		.name = (char *)name};
}

/* An unnamed file in $TMPDIR (or /tmp), as the daemon's in its work dir. */
static int tmpfile_fd(void)
{
	const char *dir = getenv("TMPDIR");
	int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "O_TMPFILE: %s", strerror(errno));
	return fd;
}

static struct records *new_store(int file)
{
	struct records *r = file ? records_new_on(tmpfile_fd()) : records_new();
	ck_assert(records_file_backed(r) == (file != 0));
	return r;
}

static void assert_same(const struct node_record_info *got, const struct node_record_info *want)
{
	ck_assert_uint_eq(got->nodeid, want->nodeid);
	ck_assert_uint_eq(got->parent, want->parent);
	ck_assert_uint_eq(got->key.dev, want->key.dev);
	ck_assert_uint_eq(got->key.ino, want->key.ino);
	ck_assert_uint_eq(got->key.check, want->key.check);
	ck_assert_uint_eq(got->type, want->type);
	ck_assert_uint_eq(got->generation, want->generation);
	ck_assert_str_eq(got->name, want->name);
}

START_TEST(test_insert_find_remove)
{
	struct records *r = new_store(_i);
	struct node_record_info a = info(5, 2049, 100, "alpha"), b = info(6, 66, 100, "b");
	struct node_record_info got;

	ck_assert_int_eq(records_insert(r, &a), 0);
	ck_assert_int_eq(records_insert(r, &b), 0); /* same ino, other device */
	ck_assert_uint_eq(records_count(r), 2);
	ck_assert(records_find_id(r, 5, &got));
	assert_same(&got, &a);
	ck_assert(records_find_key(r, &b.key, &got));
	assert_same(&got, &b);
	/* The check is not part of the key. */
	struct node_key k = {.dev = 2049, .ino = 100, .check = 12345};
	ck_assert(records_find_key(r, &k, &got));
	ck_assert_uint_eq(got.nodeid, 5);
	/* Duplicates are refused: the same nodeid, or the same (dev, ino). */
	struct node_record_info dup_id = info(5, 1, 1, "x"), dup_key = info(9, 66, 100, "y");
	ck_assert_int_eq(records_insert(r, &dup_id), -EEXIST);
	ck_assert_int_eq(records_insert(r, &dup_key), -EEXIST);
	ck_assert(!records_find_id(r, 7, NULL));
	ck_assert(records_remove(r, 5));
	ck_assert(!records_remove(r, 5));
	ck_assert(!records_find_id(r, 5, NULL));
	ck_assert(!records_find_key(r, &a.key, NULL));
	ck_assert(records_find_id(r, 6, &got));
	assert_same(&got, &b);
	ck_assert_uint_eq(records_count(r), 1);
	records_free(r);
}
END_TEST

START_TEST(test_names)
{
	struct records *r = new_store(_i);
	char n255[256], n4095[RECORDS_NAME_MAX + 1], n4096[RECORDS_NAME_MAX + 2];
	memset(n255, 'a', 255);
	n255[255] = '\0';
	memset(n4095, 'b', sizeof(n4095) - 1);
	n4095[sizeof(n4095) - 1] = '\0';
	memset(n4096, 'c', sizeof(n4096) - 1);
	n4096[sizeof(n4096) - 1] = '\0';
	struct node_record_info a = info(2, 1, 1, n255), b = info(3, 1, 2, n4095),
				c = info(4, 1, 3, n4096), e = info(5, 1, 4, "");
	struct node_record_info got;

	ck_assert_int_eq(records_insert(r, &a), 0);
	ck_assert_int_eq(records_insert(r, &b), 0);
	ck_assert_int_eq(records_insert(r, &c), -ENAMETOOLONG);
	ck_assert_int_eq(records_insert(r, &e), 0);
	ck_assert(records_find_id(r, 2, &got));
	ck_assert_uint_eq(strlen(got.name), 255);
	assert_same(&got, &a);
	ck_assert(records_find_id(r, 3, &got));
	assert_same(&got, &b);
	ck_assert(records_find_id(r, 5, &got));
	assert_same(&got, &e);
	ck_assert(!records_find_id(r, 4, NULL));
	/* Many long names: the arena grows and is rebuilt, the names stay whole. */
	for (uint64_t i = 10; i < 3000; i++) {
		struct node_record_info x = info(i, 7, i, n255);
		CHECK(records_insert(r, &x) == 0);
		if (i % 3 == 0 && i >= 15)
			CHECK(records_remove(r, i - 5));
	}
	ck_assert(records_find_id(r, 2999, &got));
	ck_assert_str_eq(got.name, n255);
	ck_assert_uint_eq(records_name_bytes(r), (records_count(r) - 3) * 255 + 255 + 4095);
	records_free(r);
}
END_TEST

struct order {
	uint64_t last;
	size_t seen;
};

static void check_order(const struct node_record_info *i, void *data)
{
	struct order *o = data;
	CHECK(i->nodeid > o->last); /* inserted in nodeid order below */
	o->last = i->nodeid;
	o->seen++;
}

/* Random inserts and removals against a GHashTable model: the same contents, oldest first. */
START_TEST(test_many_against_model)
{
	struct records *r = new_store(_i);
	GHashTable *model = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	char name[32];
	uint64_t next = 2, oldest = 2;
	GRand *rnd = g_rand_new_with_seed(42);

	for (int step = 0; step < 300000; step++) {
		guint32 op = g_rand_int_range(rnd, 0, 10);
		if (op < 6 || g_hash_table_size(model) == 0) {
			uint64_t id = next++;
			snprintf(name, sizeof(name), "f-%" G_GUINT64_FORMAT, id * 31);
			struct node_record_info x = info(id, id % 3, id * 13, name);
			CHECK(records_insert(r, &x) == 0);
			uint64_t *k = g_new(uint64_t, 1);
			*k = id;
			g_hash_table_insert(model, k, g_strdup(name));
		} else if (op < 9) {
			uint64_t id = (uint64_t)g_rand_int_range(rnd, 2, (gint32)next);
			CHECK(records_remove(r, id) == (bool)g_hash_table_remove(model, &id));
		} else {
			while (!g_hash_table_contains(model, &oldest))
				oldest++;
			CHECK(records_remove_oldest(r));
			g_hash_table_remove(model, &oldest);
		}
		CHECK((records_count(r)) == (g_hash_table_size(model)));
	}
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, model);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		uint64_t id = *(uint64_t *)k;
		struct node_record_info got, want = info(id, id % 3, id * 13, v);
		CHECK(records_find_id(r, id, &got));
		CHECK(got.parent == want.parent && got.key.check == want.key.check &&
		      got.type == want.type && got.generation == want.generation &&
		      strcmp(got.name, want.name) == 0);
		CHECK(records_find_key(r, &want.key, &got));
		CHECK(got.nodeid == id);
	}
	struct order o = {0};
	records_foreach(r, check_order, &o);
	ck_assert_uint_eq(o.seen, g_hash_table_size(model));
	/* Emptied, the store gives its memory back. */
	size_t full = records_bytes(r);
	while (records_remove_oldest(r))
		;
	ck_assert_uint_eq(records_count(r), 0);
	ck_assert_uint_lt(records_bytes(r), full / 4 + 64 * 1024);
	g_rand_free(rnd);
	g_hash_table_unref(model);
	records_free(r);
}
END_TEST

/* The bound of records.h for a store only added to since its last rebuild. */
static size_t bound(size_t n, size_t names, size_t longest, size_t devs)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t entries = n * 5 / 4 + 2 + page / RECORDS_ENTRY_SIZE + 1;
	return RECORDS_ENTRY_SIZE * entries + (names + n + longest + 1) * 5 / 4 + 2 + 2 * page +
	       2 * 4 * (entries * 4 / 3 + 2 + page / 4) + 2 * devs * sizeof(dev_t) + 4096;
}

START_TEST(test_memory_bound)
{
	struct records *r = new_store(_i);
	char name[16];
	size_t names = 0;

	for (uint64_t i = 2; i < 500000; i++) {
		int l = snprintf(name, sizeof(name), "file-%06d", (int)(i % 1000000));
		struct node_record_info x = info(i, 2049 + i % 2, i, name);
		CHECK(records_insert(r, &x) == 0);
		names += (size_t)l;
		if (i % 4999 == 0)
			CHECK((records_bytes(r)) <= (bound(records_count(r), names, 11, 2)));
	}
	ck_assert_uint_eq(records_name_bytes(r), names);
	ck_assert_uint_le(records_bytes(r), bound(records_count(r), names, 11, 2));
	/* About 80 bytes a record with these names (records.h); the allocator-based store took
	 * ~175. */
	ck_assert_uint_le(records_bytes(r) / records_count(r), 82);
	records_free(r);
}
END_TEST

START_TEST(test_file_release)
{
	/* Released pages come back from the file with their contents (a private or anonymous
	 * mapping would read zeros); the file holds about the store, old areas punched away. */
	int fd = tmpfile_fd(), probe = dup(fd);
	struct records *r = records_new_on(fd);
	char name[16];
	for (uint64_t i = 2; i < 100000; i++) {
		snprintf(name, sizeof(name), "n%llu", (unsigned long long)i);
		struct node_record_info x = info(i, 7, i + 1000, name);
		CHECK(records_insert(r, &x) == 0);
		if (i % 10007 == 0)
			records_release(r);
	}
	records_release(r);
	for (uint64_t i = 2; i < 100000; i++) {
		struct node_record_info got;
		snprintf(name, sizeof(name), "n%llu", (unsigned long long)i);
		struct node_record_info want = info(i, 7, i + 1000, name);
		CHECK(records_find_id(r, i, &got));
		CHECK(got.key.ino == want.key.ino && strcmp(got.name, name) == 0);
	}
	struct stat st;
	ck_assert_int_eq(fstat(probe, &st), 0);
	ck_assert_uint_le((size_t)st.st_blocks * 512, 2 * records_bytes(r));
	/* Emptied: the store shrinks into the start of the file, which is truncated. */
	while (records_remove_oldest(r))
		;
	ck_assert_int_eq(fstat(probe, &st), 0);
	ck_assert_uint_le((size_t)st.st_size, records_bytes(r));
	records_free(r);
	/* The store closed its fd: only the probe holds the file. */
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	close(probe);
}
END_TEST

static Suite *records_suite(void)
{
	Suite *s = suite_create("records");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_insert_find_remove, 0, 2);
	tcase_add_loop_test(tc, test_names, 0, 2);
	tcase_add_loop_test(tc, test_many_against_model, 0, 2);
	tcase_add_loop_test(tc, test_memory_bound, 0, 2);
	tcase_add_test(tc, test_file_release);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(records_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
