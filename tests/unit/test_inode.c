// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * test_inode.c - unit tests of locations (inode.h) on real layers: a location keeps the fd it
 * borrows open however the tree changes meanwhile, and a request's location follows its copy-up.
 *
 * Each test builds a small overlay in its own directory (upper/, work/work, lower/) and a node
 * table on it, the way main.c does, and drives the modules below ops.c directly.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "copy_up.h"
#include "file.h"
#include "fs.h"
#include "inode.h"
#include "namei.h"
#include "remove.h"

static char *test_root;

#include "tmpdir_main.h"

/* How many fds the tests open to take the number a wrongly closed fd would free. */
#define REUSE_FDS 32

struct env {
	struct plyfs fs;
	struct plyfs_params p;
	struct layer layers[2]; /* upper, lower */
	char *dir;
};

static void put_file(const char *dir, const char *rel, const char *data)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	g_autoptr(GError) err = NULL;
	ck_assert_msg(g_file_set_contents(p, data, -1, &err), "%s", err ? err->message : "");
}

static void put_dir(const char *dir, const char *rel)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	ck_assert_msg(g_mkdir_with_parents(p, 0755) == 0, "mkdir %s: %s", p, g_strerror(errno));
}

static int open_dir(const char *dir, const char *rel)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", p, g_strerror(errno));
	return fd;
}

static void stat_of(const char *dir, const char *rel, struct stat *st)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	ck_assert_msg(lstat(p, st) == 0, "stat %s: %s", p, g_strerror(errno));
}

/*
 * lower/a/f, lower/b/, lower/g, lower/h, lower/other; upper/ empty; work/work.
 * The root's stack is (upper, lower) as main.c builds it.
 */
static void env_init(struct env *e)
{
	memset(e, 0, sizeof(*e));
	g_autofree char *tmpl = g_build_filename(test_root, "t-XXXXXX", NULL);
	e->dir = g_strdup(g_mkdtemp(tmpl));
	ck_assert_ptr_nonnull(e->dir);
	put_dir(e->dir, "upper");
	put_dir(e->dir, "work/work");
	put_dir(e->dir, "lower/a");
	put_dir(e->dir, "lower/b");
	put_file(e->dir, "lower/a/f", "f in a");
	put_file(e->dir, "lower/g", "gggg");
	put_file(e->dir, "lower/h", "hhhh");
	put_file(e->dir, "lower/other", "other");

	e->p.fsync = false;
	e->p.squash_to_uid = -1;
	e->p.squash_to_gid = -1;
	struct plyfs *fs = &e->fs;
	fs->params = &e->p;
	const char *names[2] = {"upper", "lower"};
	for (int i = 0; i < 2; i++) {
		struct stat st;
		stat_of(e->dir, names[i], &st);
		e->layers[i] = (struct layer){.index = i,
					      .root_fd = open_dir(e->dir, names[i]),
					      .dev = st.st_dev,
					      .upper = i == 0};
	}
	fs->layers = e->layers;
	fs->n_layers = 2;
	fs->has_upper = true;
	fs->work_fd = -1;
	fs->work_dirfd = open_dir(e->dir, "work/work");
	fs->index_dirfd = -1;
	fs->is_root = geteuid() == 0;
	fs->xattr_prefix = fs->is_root ? "trusted.overlay." : "user.overlay.";
	fs->fd_budget = 1000;
	fs->timeout = 1;
	g_mutex_init(&fs->rename_lock);
	g_mutex_init(&fs->handles_lock);
	fs->open_files = g_hash_table_new(NULL, NULL);
	fs->open_dirs = g_hash_table_new(NULL, NULL);
	fs->listings = g_hash_table_new(NULL, NULL);
	fs->listing_order = g_queue_new();
	inode_set_fs(fs);
	fs->nodes = node_table_new(inode_destroy);
	struct node *root = node_table_root(fs->nodes);
	struct node_stack *s = inode_stack_new(2);
	for (int i = 0; i < 2; i++)
		s->l[i] = (struct node_layer){.layer = i, .fd = e->layers[i].root_fd};
	s->merged = true;
	inode_stack_publish(root, s);
}

static void env_fini(struct env *e)
{
	file_release_all(&e->fs);
	node_table_free(e->fs.nodes);
	g_hash_table_unref(e->fs.open_files);
	g_hash_table_unref(e->fs.open_dirs);
	g_hash_table_unref(e->fs.listings);
	g_queue_free(e->fs.listing_order);
	for (int i = 0; i < 2; i++)
		close(e->layers[i].root_fd);
	close(e->fs.work_dirfd);
	g_free(e->dir);
}

static struct node *lookup(struct env *e, struct node *parent, const char *name)
{
	struct node *n = NULL;
	struct stat st;
	int r = namei_lookup(&e->fs, parent, name, &n, &st);
	ck_assert_msg(r == 0, "lookup %s: %s", name, g_strerror(-r));
	return n;
}

/* What the kernel and the request both let go of: the node is freed unless something else holds
 * it. */
static void forget_and_put(struct env *e, struct node *n)
{
	node_table_forget(e->fs.nodes, n->nodeid, 1);
	node_put(e->fs.nodes, n);
}

/* Opens REUSE_FDS fds of lower/other: a number closed by mistake is handed out again. */
static void take_fds(struct env *e, int *fds)
{
	for (int i = 0; i < REUSE_FDS; i++) {
		g_autofree char *p = g_build_filename(e->dir, "lower/other", NULL);
		fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fds[i], 0);
	}
}

static void close_fds(int *fds)
{
	for (int i = 0; i < REUSE_FDS; i++)
		close(fds[i]);
}

/* `fd` is still the file `want` stands for (not closed, not another file under that number). */
static void assert_same_file(int fd, const struct stat *want, const char *what)
{
	struct stat st;
	ck_assert_msg(fstat(fd, &st) == 0, "%s: fd %d: %s", what, fd, g_strerror(errno));
	ck_assert_msg(st.st_dev == want->st_dev && st.st_ino == want->st_ino,
		      "%s: fd %d is inode %lu, not %lu", what, fd, (unsigned long)st.st_ino,
		      (unsigned long)want->st_ino);
}

/*
 * A file's location borrows its parent's cached fd. The file is renamed to another parent and the
 * kernel forgets the old one: with only the file pinning it, the old parent was freed (and its fd
 * closed) while the location still used the fd. The location holds the old parent itself.
 */
START_TEST(test_parent_fd_outlives_rename_and_forget)
{
	struct env e;
	env_init(&e);
	struct plyfs *fs = &e.fs;
	struct node *root = node_table_root(fs->nodes);
	struct node *a = lookup(&e, root, "a");
	struct node *f = lookup(&e, a, "f");
	struct node *b = lookup(&e, root, "b");
	struct stat a_st;
	stat_of(e.dir, "lower/a", &a_st);

	struct lfd loc = LFD_INIT;
	ck_assert_int_eq(inode_locate(fs, f, &loc), 0);
	ck_assert_str_eq(loc.name, "f");
	assert_same_file(loc.fd, &a_st, "location of a/f");

	/* RENAME a/f -> b/f (the node moves; its pin moves to b), then FORGET a. */
	node_table_move(fs->nodes, f, b, "f");
	forget_and_put(&e, a);

	int fds[REUSE_FDS];
	take_fds(&e, fds);
	assert_same_file(loc.fd, &a_st, "after rename + forget of the old parent");
	struct stat fst;
	ck_assert_int_eq(fstatat(loc.fd, "f", &fst, AT_SYMLINK_NOFOLLOW), 0);
	struct node_table_stats stats;
	node_table_stats(fs->nodes, &stats);
	ck_assert_uint_eq(stats.total, 4); /* root, a (pinned by the location), f, b */
	lfd_release(&loc);
	close_fds(fds);

	/* The old parent goes with the location's reference, and its cached fd with it. */
	node_table_stats(fs->nodes, &stats);
	ck_assert_uint_eq(stats.total, 3);
	ck_assert_int_eq(atomic_load(&fs->fds_cached), 1); /* b's; a's is closed */
	forget_and_put(&e, f);
	forget_and_put(&e, b);
	env_fini(&e);
}
END_TEST

/* A node removed while open is reached through its kept fd; its copy-up replaces that fd. A
 * location taken before must keep the fd it has, not see it closed and its number reused. */
START_TEST(test_unlinked_fd_outlives_orphan_copy_up)
{
	struct env e;
	env_init(&e);
	struct plyfs *fs = &e.fs;
	struct node *root = node_table_root(fs->nodes);
	struct node *g = lookup(&e, root, "g");
	struct stat g_st;
	stat_of(e.dir, "lower/g", &g_st);
	struct open_file *of = NULL;
	ck_assert_int_eq(file_open(fs, g, O_RDONLY, &of), 0);
	ck_assert_int_eq(remove_entry(fs, root, "g", false), 0);
	ck_assert(inode_is_orphan(g));

	struct lfd loc = LFD_INIT;
	ck_assert_int_eq(inode_locate(fs, g, &loc), 0);
	ck_assert_ptr_null(loc.name);
	assert_same_file(loc.fd, &g_st, "location of the unlinked g");

	ck_assert_int_eq(copy_up(fs, g, true), 0); /* the orphan's copy replaces its fd */
	int fds[REUSE_FDS];
	take_fds(&e, fds);
	assert_same_file(loc.fd, &g_st, "after the orphan's copy-up");
	lfd_release(&loc);

	/* From now on the node is reached at its copy, a new inode with g's data. */
	struct lfd now = LFD_INIT;
	ck_assert_int_eq(inode_locate(fs, g, &now), 0);
	struct stat cst;
	ck_assert_int_eq(fstat(now.fd, &cst), 0);
	ck_assert(cst.st_ino != g_st.st_ino && cst.st_size == 4);
	lfd_release(&now);
	close_fds(fds);
	file_release(fs, of);
	forget_and_put(&e, g);
	env_fini(&e);
}
END_TEST

/* The same when the removal is undone (it failed after the fd was kept). */
START_TEST(test_unlinked_fd_outlives_restore)
{
	struct env e;
	env_init(&e);
	struct plyfs *fs = &e.fs;
	struct node *root = node_table_root(fs->nodes);
	struct node *g = lookup(&e, root, "g");
	struct stat g_st;
	stat_of(e.dir, "lower/g", &g_st);
	__atomic_add_fetch(&g->open_count, 1, __ATOMIC_ACQ_REL); /* as an open handle does */
	struct lfd gone = LFD_INIT;
	remove_name_gone(fs, g, &gone, root, "g", true);
	lfd_release(&gone);
	ck_assert(inode_is_orphan(g));

	struct lfd loc = LFD_INIT;
	ck_assert_int_eq(inode_locate(fs, g, &loc), 0);
	remove_name_restore(g);
	ck_assert(!inode_is_orphan(g));
	int fds[REUSE_FDS];
	take_fds(&e, fds);
	assert_same_file(loc.fd, &g_st, "after the removal was undone");
	lfd_release(&loc);
	close_fds(fds);
	__atomic_sub_fetch(&g->open_count, 1, __ATOMIC_ACQ_REL);
	forget_and_put(&e, g);
	env_fini(&e);
}
END_TEST

/* OPEN for write: the request's location moves with the copy-up to the upper file. */
START_TEST(test_copy_up_moves_location)
{
	struct env e;
	env_init(&e);
	struct plyfs *fs = &e.fs;
	struct node *root = node_table_root(fs->nodes);
	struct node *h = lookup(&e, root, "h");
	struct lfd loc = LFD_INIT;
	ck_assert_int_eq(inode_locate(fs, h, &loc), 0);
	ck_assert_int_eq(loc.fd, e.layers[1].root_fd);
	ck_assert_int_eq(copy_up_at(fs, h, &loc, true), 0);
	ck_assert_int_eq(loc.fd, e.layers[0].root_fd);
	ck_assert_str_eq(loc.name, "h");
	ck_assert_uint_eq(loc.gen, __atomic_load_n(&h->copyup_gen, __ATOMIC_ACQUIRE));
	struct stat up, st;
	stat_of(e.dir, "upper/h", &up);
	ck_assert_int_eq(fstatat(loc.fd, loc.name, &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert(st.st_ino == up.st_ino);
	lfd_release(&loc);
	forget_and_put(&e, h);
	env_fini(&e);
}
END_TEST

/* A location computed before another request copied the node up is located again. */
START_TEST(test_stale_location_relocated)
{
	struct env e;
	env_init(&e);
	struct plyfs *fs = &e.fs;
	struct node *root = node_table_root(fs->nodes);
	struct node *h = lookup(&e, root, "h");
	struct lfd loc = LFD_INIT;
	ck_assert_int_eq(inode_locate(fs, h, &loc), 0);
	ck_assert_int_eq(copy_up(fs, h, true), 0); /* another request */
	ck_assert_int_eq(loc.fd, e.layers[1].root_fd);
	ck_assert_int_eq(copy_up_at(fs, h, &loc, true), 0);
	ck_assert_int_eq(loc.fd, e.layers[0].root_fd);
	ck_assert_str_eq(loc.name, "h");
	lfd_release(&loc);
	forget_and_put(&e, h);
	env_fini(&e);
}
END_TEST

static Suite *inode_suite(void)
{
	Suite *s = suite_create("inode");
	TCase *tc = tcase_create("locations");
	tcase_add_test(tc, test_parent_fd_outlives_rename_and_forget);
	tcase_add_test(tc, test_unlinked_fd_outlives_orphan_copy_up);
	tcase_add_test(tc, test_unlinked_fd_outlives_restore);
	tcase_add_test(tc, test_copy_up_moves_location);
	tcase_add_test(tc, test_stale_location_relocated);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_in_tmpdir("plyfs-test-inode-XXXXXX", inode_suite);
}
