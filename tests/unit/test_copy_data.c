// SPDX-License-Identifier: GPL-2.0-or-later
/* test_copy_data.c - copy_data.h: the write-behind plan (every copied byte started once, in order,
 * never more than WRITEBEHIND_LAG windows in flight, waits only for what was started) and real
 * copies of sparse files, with and without write-behind. */
#include <check.h>
#include <fcntl.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy_data.h"

static char *test_root;
#include "tmpdir_main.h"

#define MIB ((off_t)1 << 20)

/* What a sequence of steps asked for, checked as it goes. */
struct plan {
	struct wb_range started[4096];
	unsigned n_started, n_waited;
	off_t copied_end; /* end of the last range copied */
};

static void step(struct writebehind *wb, struct plan *p, off_t off, off_t len)
{
	struct wb_range wait, start;
	writebehind_step(wb, off, len, &wait, &start);
	p->copied_end = off + len;
	if (wait.len) {
		/* the range started WRITEBEHIND_LAG starts ago, exactly */
		ck_assert_uint_ge(p->n_started, WRITEBEHIND_LAG);
		struct wb_range want = p->started[p->n_started - WRITEBEHIND_LAG];
		ck_assert_int_eq(wait.off, want.off);
		ck_assert_int_eq(wait.len, want.len);
		p->n_waited++;
	}
	if (start.len) {
		ck_assert_uint_lt(p->n_started, G_N_ELEMENTS(p->started));
		/* contiguous with the previous start, ends where the copy is, a window at least */
		if (p->n_started)
			ck_assert_int_eq(start.off, p->started[p->n_started - 1].off +
							    p->started[p->n_started - 1].len);
		ck_assert_int_eq(start.off + start.len, p->copied_end);
		ck_assert_int_ge(start.len, WRITEBEHIND_WINDOW);
		p->started[p->n_started++] = start;
	}
	/* in flight (started, not waited for): never more than the lag, plus the one just started
	 */
	ck_assert_uint_le(p->n_started - p->n_waited, WRITEBEHIND_LAG);
}

START_TEST(test_plan_contiguous)
{
	struct writebehind wb = {0};
	struct plan p = {0};
	for (off_t off = 0; off < 64 * MIB; off += MIB)
		step(&wb, &p, off, MIB);
	ck_assert_uint_eq(p.n_started, 64 * MIB / WRITEBEHIND_WINDOW);
	ck_assert_uint_eq(p.n_waited, p.n_started - WRITEBEHIND_LAG);
	ck_assert_int_eq(p.started[0].off, 0);
	for (unsigned i = 0; i < p.n_started; i++)
		ck_assert_int_eq(p.started[i].len, WRITEBEHIND_WINDOW);
}
END_TEST

START_TEST(test_plan_short_copy_starts_nothing)
{
	struct writebehind wb = {0};
	struct plan p = {0};
	for (off_t off = 0; off < WRITEBEHIND_WINDOW - MIB; off += MIB)
		step(&wb, &p, off, MIB);
	step(&wb, &p, WRITEBEHIND_WINDOW - MIB, MIB - 1);
	ck_assert_uint_eq(p.n_started, 0); /* the fsync writes it all */
	step(&wb, &p, WRITEBEHIND_WINDOW - 1, 1);
	ck_assert_uint_eq(p.n_started, 1);
	ck_assert_int_eq(p.started[0].len, WRITEBEHIND_WINDOW);
}
END_TEST

/* Holes: nothing starts before the first data; a range may span a hole; one step starts at most
 * one range however far it jumps (no loop over the windows of a hole). */
START_TEST(test_plan_sparse)
{
	struct writebehind wb = {0};
	struct plan p = {0};
	off_t off = 100 * MIB;
	for (int seg = 0; seg < 50; seg++) {
		step(&wb, &p, off, 4096);
		off += (seg % 3 == 0 ? 1000 * MIB : MIB);
		ck_assert_uint_le(p.n_started, (unsigned)seg + 1);
	}
	ck_assert_int_eq(p.started[0].off, 100 * MIB);
	ck_assert_uint_gt(p.n_started, 10);
	ck_assert_uint_eq(p.n_waited, p.n_started - WRITEBEHIND_LAG);
}
END_TEST

START_TEST(test_plan_empty_steps)
{
	struct writebehind wb = {0};
	struct plan p = {0};
	step(&wb, &p, 0, 0);
	step(&wb, &p, 5 * MIB, 0);
	ck_assert_uint_eq(p.n_started, 0);
	step(&wb, &p, 0, WRITEBEHIND_WINDOW);
	ck_assert_int_eq(p.started[0].off, 0);
}
END_TEST

/* Every answer of a source's lseek, hostile ones too, gives an extent that moves forward. */
START_TEST(test_extent_answers)
{
	off_t from, to;
	ck_assert(copy_extent(0, 100, 10, 40, &from, &to) && from == 10 && to == 40);
	ck_assert(copy_extent(40, 100, 60, 200, &from, &to) && from == 60 && to == 100);
	ck_assert(!copy_extent(40, 100, -ENXIO, -EINVAL, &from, &to));
	ck_assert(copy_extent(0, 100, -EINVAL, -EINVAL, &from, &to) && from == 0 && to == 100);
	ck_assert(copy_extent(30, 100, 30, -EIO, &from, &to) && from == 30 && to == 100);
	/* Answers that do not move forward: the rest, whole. */
	ck_assert(copy_extent(30, 100, 30, 30, &from, &to) && from == 30 && to == 100);
	ck_assert(copy_extent(30, 100, 50, 20, &from, &to) && from == 50 && to == 100);
	ck_assert(copy_extent(30, 100, 10, 50, &from, &to) && from == 30 && to == 100);
	ck_assert(copy_extent(30, 100, 150, 160, &from, &to) && from == 30 && to == 100);
	/* Whatever the answers, a loop of extents from 0 ends within size steps. */
	const off_t answers[][2] = {{0, 0}, {5, 5}, {-1, -1}, {3, 2}, {99, 99}, {7, 1000}};
	for (size_t a = 0; a < G_N_ELEMENTS(answers); a++) {
		unsigned steps = 0;
		for (off_t pos = 0;
		     pos < 100 && copy_extent(pos, 100, answers[a][0], answers[a][1], &from, &to);
		     pos = to) {
			ck_assert_int_gt(to, pos);
			ck_assert_uint_lt(++steps, 100);
		}
	}
}
END_TEST

/* --- real copies --- */

static int make_file(const char *name)
{
	g_autofree char *path = g_build_filename(test_root, name, NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* A source of `size` bytes with data at each of `segs` (offset, length), holes elsewhere. */
static int make_source(const char *name, off_t size, const off_t (*segs)[2], int n)
{
	int fd = make_file(name);
	for (int i = 0; i < n; i++) {
		g_autofree char *buf = g_malloc(segs[i][1]);
		for (off_t j = 0; j < segs[i][1]; j++)
			buf[j] = (char)((segs[i][0] + j) * 7 + i);
		ck_assert_int_eq(pwrite(fd, buf, segs[i][1], segs[i][0]), segs[i][1]);
	}
	ck_assert_int_eq(ftruncate(fd, size), 0);
	return fd;
}

static void assert_same(int a, int b, off_t size)
{
	struct stat sa, sb;
	ck_assert_int_eq(fstat(a, &sa), 0);
	ck_assert_int_eq(fstat(b, &sb), 0);
	ck_assert_int_eq(sb.st_size, size);
	g_autofree char *ba = g_malloc(MIB), *bb = g_malloc(MIB);
	for (off_t off = 0; off < size; off += MIB) {
		size_t n = (size_t)MIN(MIB, size - off);
		ck_assert_int_eq(pread(a, ba, n, off), (ssize_t)n);
		ck_assert_int_eq(pread(b, bb, n, off), (ssize_t)n);
		ck_assert_msg(memcmp(ba, bb, n) == 0, "data differs in the MiB at %lld",
			      (long long)off);
	}
}

static void copy_case(bool sync)
{
	const off_t segs[][2] = {
		{0, 3 * MIB + 123},
		{40 * MIB, 20 * MIB},	 /* several windows */
		{70 * MIB + 4096, 4096}, /* a small one after a hole */
	};
	const off_t size = 90 * MIB;
	int src = make_source(sync ? "src_sync" : "src", size, segs, G_N_ELEMENTS(segs));
	int dst = make_file(sync ? "dst_sync" : "dst");
	ck_assert_int_eq(copy_data(src, dst, size, sync), 0);
	assert_same(src, dst, size);
	/* the holes stayed holes where the filesystem reports them (FICLONE shares them too) */
	off_t data = lseek(dst, 10 * MIB, SEEK_DATA);
	if (data >= 0)
		ck_assert_int_eq(data, 40 * MIB);
	close(src);
	close(dst);
}

START_TEST(test_copy_sparse)
{
	copy_case(false);
}
END_TEST

START_TEST(test_copy_sparse_writebehind)
{
	copy_case(true);
}
END_TEST

START_TEST(test_copy_empty_and_tail_hole)
{
	int src = make_file("empty");
	int dst = make_file("empty_dst");
	ck_assert_int_eq(copy_data(src, dst, 0, true), 0);
	assert_same(src, dst, 0);
	ck_assert_int_eq(ftruncate(src, 5 * MIB), 0); /* a file that is one hole */
	ck_assert_int_eq(copy_data(src, dst, 5 * MIB, true), 0);
	assert_same(src, dst, 5 * MIB);
	close(src);
	close(dst);
}
END_TEST

static Suite *copy_data_suite(void)
{
	Suite *s = suite_create("copy_data");
	TCase *plan = tcase_create("plan");
	tcase_add_test(plan, test_plan_contiguous);
	tcase_add_test(plan, test_plan_short_copy_starts_nothing);
	tcase_add_test(plan, test_plan_sparse);
	tcase_add_test(plan, test_plan_empty_steps);
	tcase_add_test(plan, test_extent_answers);
	suite_add_tcase(s, plan);
	TCase *copy = tcase_create("copy");
	tcase_set_timeout(copy, 60);
	tcase_add_test(copy, test_copy_sparse);
	tcase_add_test(copy, test_copy_sparse_writebehind);
	tcase_add_test(copy, test_copy_empty_and_tail_hole);
	suite_add_tcase(s, copy);
	return s;
}

int main(void)
{
	return run_in_tmpdir("plyfs-test-copy_data-XXXXXX", copy_data_suite);
}
