// SPDX-License-Identifier: GPL-2.0-or-later
/* test_readdir.c - unit tests of the merged directory listing on real layer directories. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <glib.h>

#include "autofd.h"
#include "ovl_names.h"
#include "readdir.h"

#define MAX_LAYERS 3

/* Every test works in its own directory below this one; main() removes it all at the end, also
 * when a test failed (a forked test child never runs a teardown after a failed assertion). */
static char *test_root;

static char *new_dir(void)
{
	char *tmpl = g_build_filename(test_root, "t-XXXXXX", NULL);
	ck_assert_ptr_nonnull(g_mkdtemp(tmpl));
	return tmpl;
}

/* Creates `name` in directory fd `dfd`: 'f' file, 'd' directory, 'l' symlink, 'p' fifo,
 * 'w' 0/0 whiteout, 'c' 1/3 device. */
static void mk(int dfd, const char *name, char kind)
{
	int r;

	switch (kind) {
	case 'f':
		r = mknodat(dfd, name, S_IFREG | 0644, 0);
		break;
	case 'd':
		r = mkdirat(dfd, name, 0755);
		break;
	case 'l':
		r = symlinkat("target", dfd, name);
		break;
	case 'p':
		r = mknodat(dfd, name, S_IFIFO | 0644, 0);
		break;
	case 'w':
		r = mknodat(dfd, name, S_IFCHR | 0600, makedev(0, 0));
		break;
	case 'c':
		r = mknodat(dfd, name, S_IFCHR | 0600, makedev(1, 3));
		break;
	default:
		ck_abort_msg("bad kind %c", kind);
	}
	/* ck_assert* reports every passed check to the runner (a write each): not in hot loops. */
	if (r != 0)
		ck_abort_msg("creating %s: %s", name, g_strerror(errno));
}

/* A set of layer directories, top first, with O_PATH fds as the daemon holds them. */
struct layers {
	char *path[MAX_LAYERS];
	int fd[MAX_LAYERS];
	size_t n;
};

static void layers_make(struct layers *l, size_t n)
{
	l->n = n;
	for (size_t i = 0; i < n; i++) {
		l->path[i] = new_dir();
		l->fd[i] = open(l->path[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(l->fd[i], 0);
	}
}

static void layers_free(struct layers *l)
{
	for (size_t i = 0; i < l->n; i++) {
		close(l->fd[i]);
		g_free(l->path[i]);
	}
}

static GPtrArray *merge_ok(const struct layers *l)
{
	GPtrArray *out = NULL;
	int r = readdir_merge(l->fd, l->n, &out);

	ck_assert_msg(r == 0, "readdir_merge: %s", g_strerror(-r));
	ck_assert_ptr_nonnull(out);
	return out;
}

static const struct merged_entry *find(GPtrArray *out, const char *name)
{
	for (guint i = 0; i < out->len; i++) {
		const struct merged_entry *e = out->pdata[i];
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

/* Position of every name in the raw (getdents) order of directory `path`. */
static GHashTable *raw_order(const char *path)
{
	GHashTable *pos = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	DIR *d = opendir(path);
	struct dirent *de;
	guint i = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		g_hash_table_insert(pos, g_strdup(de->d_name), GUINT_TO_POINTER(++i));
	closedir(d);
	return pos;
}

/* Entries come in layer order, and within a layer in that layer's own getdents order. */
static void check_order(const struct layers *l, GPtrArray *out)
{
	for (size_t layer = 0; layer < l->n; layer++) {
		g_autoptr(GHashTable) pos = raw_order(l->path[layer]);
		guint last = 0;
		for (guint i = 0; i < out->len; i++) {
			const struct merged_entry *e = out->pdata[i];
			if (i > 0 && e->layer < ((struct merged_entry *)out->pdata[i - 1])->layer)
				ck_abort_msg("%s (layer %u) after a lower layer", e->name,
					     e->layer);
			if (e->layer != layer)
				continue;
			guint p = GPOINTER_TO_UINT(g_hash_table_lookup(pos, e->name));
			if (p <= last)
				ck_abort_msg("%s out of order in layer %zu", e->name, layer);
			last = p;
		}
	}
}

/* Checks one shown entry: from the expected layer, with that layer's type and inode number. */
static void check_entry(const struct layers *l, GPtrArray *out, const char *name,
			unsigned char type, unsigned short layer)
{
	const struct merged_entry *e = find(out, name);
	struct stat st;

	ck_assert_msg(e != NULL, "\"%s\" missing", name);
	ck_assert_msg(e->layer == layer, "\"%s\" from layer %u, want %u", name, e->layer, layer);
	ck_assert_msg(e->type == type, "\"%s\" type %u, want %u", name, e->type, type);
	ck_assert_int_eq(fstatat(l->fd[layer], name, &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_uint_eq(e->ino, st.st_ino);
}

/* --- table-driven merges --- */

struct ent {
	const char *name;
	char kind;
};

struct want {
	const char *name;
	unsigned char type;
	unsigned short layer;
};

static const struct merge_case {
	const char *what;
	size_t n;
	struct ent layer[MAX_LAYERS][8]; /* each ends at a NULL name */
	struct want want[8];		 /* ends at a NULL name; nothing else may be shown */
} merge_cases[] = {
	{"one layer, every type",
	 1,
	 {{{"f", 'f'}, {"d", 'd'}, {"l", 'l'}, {"p", 'p'}, {"null", 'c'}}},
	 {{"f", DT_REG, 0},
	  {"d", DT_DIR, 0},
	  {"l", DT_LNK, 0},
	  {"p", DT_FIFO, 0},
	  {"null", DT_CHR, 0}}},
	{"two layers, upper wins with its own type",
	 2,
	 {{{"a", 'd'}, {"b", 'f'}}, {{"a", 'f'}, {"c", 'f'}}},
	 {{"a", DT_DIR, 0}, {"b", DT_REG, 0}, {"c", DT_REG, 1}}},
	{"three layers, plain union",
	 3,
	 {{{"a", 'f'}}, {{"a", 'd'}, {"b", 'l'}}, {{"a", 'p'}, {"b", 'f'}, {"c", 'd'}}},
	 {{"a", DT_REG, 0}, {"b", DT_LNK, 1}, {"c", DT_DIR, 2}}},
	{"chardev whiteout hides lower, is not shown",
	 2,
	 {{{"x", 'w'}, {"y", 'f'}}, {{"x", 'f'}, {"z", 'f'}}},
	 {{"y", DT_REG, 0}, {"z", DT_REG, 1}}},
	{".wh. whiteout hides lower, is not shown",
	 2,
	 {{{".wh.x", 'f'}, {"y", 'f'}}, {{"x", 'd'}, {"z", 'f'}}},
	 {{"y", DT_REG, 0}, {"z", DT_REG, 1}}},
	{"whiteouts for names absent below",
	 2,
	 {{{"gone", 'w'}, {".wh.gone2", 'f'}}, {{"z", 'f'}}},
	 {{"z", DT_REG, 1}}},
	{"whiteout in the middle: hides bottom, not top",
	 3,
	 {{{"m", 'f'}},
	  {{".wh.m", 'f'}, {"w", 'w'}, {"q", 'f'}, {"m2", 'w'}},
	  {{"m", 'd'}, {"w", 'f'}, {"q", 'd'}, {"b", 'f'}, {"m2", 'f'}}},
	 {{"m", DT_REG, 0}, {"q", DT_REG, 1}, {"b", DT_REG, 2}}},
	{"whiteout at the top hides every layer below",
	 3,
	 {{{"k", 'w'}, {".wh.k2", 'f'}},
	  {{"k", 'f'}, {"k2", 'f'}},
	  {{"k", 'd'}, {"k2", 'd'}, {"j", 'f'}}},
	 {{"j", DT_REG, 2}}},
	{".wh.X next to X: X stays, lower X hidden",
	 2,
	 {{{".wh.s", 'f'}, {"s", 'f'}}, {{"s", 'd'}, {"t", 'f'}}},
	 {{"s", DT_REG, 0}, {"t", DT_REG, 1}}},
	{"whiteouts in the bottom layer are not shown",
	 1,
	 {{{"w", 'w'}, {".wh.v", 'f'}, {"r", 'f'}}},
	 {{"r", DT_REG, 0}}},
	{"real chardev shown and hides lower",
	 2,
	 {{{"c", 'c'}}, {{"c", 'f'}, {"c2", 'c'}}},
	 {{"c", DT_CHR, 0}, {"c2", DT_CHR, 1}}},
	{"opaque marker and bare .wh. never shown",
	 2,
	 {{{OVL_OPQ_NAME, 'f'}, {"a", 'f'}, {".wh.", 'f'}}, {{OVL_OPQ_NAME, 'f'}, {"b", 'f'}}},
	 {{"a", DT_REG, 0}, {"b", DT_REG, 1}}},
	{"opaque marker hides no entry named like it",
	 2,
	 {{{".wh..wh..opq", 'f'}}, {{".wh..opq", 'f'}, {"o", 'f'}}},
	 {{"o", DT_REG, 1}}},
	{"empty single layer", 1, {{{NULL, 0}}}, {{NULL, 0, 0}}},
	{"three empty layers", 3, {{{NULL, 0}}, {{NULL, 0}}, {{NULL, 0}}}, {{NULL, 0, 0}}},
	{"only whiteouts everywhere",
	 3,
	 {{{"a", 'w'}}, {{".wh.b", 'f'}}, {{"c", 'w'}, {OVL_OPQ_NAME, 'f'}}},
	 {{NULL, 0, 0}}},
};

START_TEST(test_merge_table)
{
	const struct merge_case *c = &merge_cases[_i];
	struct layers l;
	size_t nwant = 0;

	layers_make(&l, c->n);
	for (size_t i = 0; i < c->n; i++)
		for (const struct ent *e = c->layer[i]; e->name; e++)
			mk(l.fd[i], e->name, e->kind);

	g_autoptr(GPtrArray) out = merge_ok(&l);
	for (const struct want *w = c->want; w->name; w++, nwant++)
		check_entry(&l, out, w->name, w->type, w->layer);
	ck_assert_msg(out->len == nwant, "%s: %u entries, want %zu", c->what, out->len, nwant);
	check_order(&l, out);
	layers_free(&l);
}
END_TEST

/* Names with newlines, spaces and the maximum length survive the merge unchanged. */
START_TEST(test_odd_names)
{
	static const char *const plain[] = {"a\nb", "with space", " lead",  "trail ",
					    "\t",   "\n",	  "ü-utf8", "*?[]"};
	g_autofree char *x255 = g_strnfill(255, 'x');
	g_autofree char *y251 = g_strnfill(251, 'y');
	g_autofree char *z255 = g_strnfill(255, 'z');
	g_autofree char *wh_y251 = g_strconcat(OVL_WH_PREFIX, y251, NULL);
	struct layers l;

	layers_make(&l, 2);
	for (size_t i = 0; i < G_N_ELEMENTS(plain); i++)
		mk(l.fd[1], plain[i], 'f');
	mk(l.fd[0], "a\nb", 'd');
	mk(l.fd[0], wh_y251, 'f');
	mk(l.fd[0], z255, 'w');
	mk(l.fd[1], x255, 'f');
	mk(l.fd[1], y251, 'f');
	mk(l.fd[1], z255, 'f');

	g_autoptr(GPtrArray) out = merge_ok(&l);
	check_entry(&l, out, "a\nb", DT_DIR, 0);
	for (size_t i = 1; i < G_N_ELEMENTS(plain); i++)
		check_entry(&l, out, plain[i], DT_REG, 1);
	check_entry(&l, out, x255, DT_REG, 1);
	ck_assert_ptr_null(find(out, y251));
	ck_assert_ptr_null(find(out, z255));
	ck_assert_uint_eq(out->len, G_N_ELEMENTS(plain) + 1);
	check_order(&l, out);
	layers_free(&l);
}
END_TEST

/* ".wh.X" hides X only below its own layer, whichever of the two getdents returns first: many
 * pairs make both orders occur. */
START_TEST(test_wh_next_to_name)
{
	struct layers l;
	char name[32];

	layers_make(&l, 2);
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), ".wh.s%02d", i);
		mk(l.fd[0], name, 'f');
		mk(l.fd[0], name + OVL_WH_PREFIX_LEN, 'f');
		mk(l.fd[1], name + OVL_WH_PREFIX_LEN, 'd');
	}
	g_autoptr(GPtrArray) out = merge_ok(&l);
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		check_entry(&l, out, name, DT_REG, 0);
	}
	ck_assert_uint_eq(out->len, 64);
	layers_free(&l);
}
END_TEST

/* 100k names over three layers, with shadowed duplicates and whiteouts: exact count, no
 * duplicate, every name from its topmost layer, fast. */
#define BIG_N	   100000
#define BIG_SHADOW 10000
#define BIG_WH	   2000

/* Creating 120k inodes takes ext4 long on a busy machine: most names are hard links to a few
 * files kept outside the layers (ext4 allows 65000 links per inode). */
struct linker {
	int dirfd;
	unsigned made;
	bool have_wh;
};

static void big_link(struct linker *k, int dfd, const char *name, char kind)
{
	char src[16] = "w";

	if (kind == 'f') {
		snprintf(src, sizeof(src), "f%u", k->made / 50000);
		if (k->made++ % 50000 == 0)
			mk(k->dirfd, src, 'f');
	} else if (!k->have_wh) {
		mk(k->dirfd, src, 'w');
		k->have_wh = true;
	}
	if (linkat(k->dirfd, src, dfd, name, 0) != 0)
		ck_abort_msg("link %s: %s", name, g_strerror(errno));
}

static void big_fill(const struct layers *l)
{
	g_autofree char *dir = new_dir();
	struct linker k = {.dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)};
	char name[32];

	ck_assert_int_ge(k.dirfd, 0);
	for (int i = 0; i < BIG_N; i++) {
		snprintf(name, sizeof(name), "f%06d", i);
		big_link(&k, l->fd[i % 3], name, 'f');
		/* Shadowed copies one layer further down. */
		if (i < BIG_SHADOW * 3 && i % 3 < 2) {
			if (i % 20 == 1)
				mk(l->fd[i % 3 + 1], name, 'd');
			else
				big_link(&k, l->fd[i % 3 + 1], name, 'f');
		}
	}
	for (int i = 0; i < BIG_WH; i++) {
		snprintf(name, sizeof(name), "w%06d", i);
		if (i % 4) /* mostly links to one 0/0 device, some devices of their own */
			big_link(&k, l->fd[i % 2], name, 'w');
		else
			mk(l->fd[i % 2], name, 'w');
		big_link(&k, l->fd[2], name, 'f');
		snprintf(name, sizeof(name), ".wh.h%06d", i);
		big_link(&k, l->fd[0], name, 'f');
		big_link(&k, l->fd[1 + i % 2], name + OVL_WH_PREFIX_LEN, 'f');
	}
	close(k.dirfd);
}

START_TEST(test_big)
{
	struct layers l;

	layers_make(&l, 3);
	big_fill(&l);

	gint64 t0 = g_get_monotonic_time();
	g_autoptr(GPtrArray) out = merge_ok(&l);
	gint64 elapsed = g_get_monotonic_time() - t0;

	ck_assert_uint_eq(out->len, BIG_N);
	g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < out->len; i++) {
		const struct merged_entry *e = out->pdata[i];
		if (!g_hash_table_add(names, (gpointer)e->name))
			ck_abort_msg("duplicate %s", e->name);
		if (e->name[0] != 'f')
			ck_abort_msg("%s shown", e->name);
		int n = atoi(e->name + 1);
		if (e->layer != n % 3 || e->type != DT_REG)
			ck_abort_msg("%s from layer %u type %u", e->name, e->layer, e->type);
	}
	check_order(&l, out);
	/* Linear work is well under a second; a quadratic merge of 100k names takes minutes. */
	ck_assert_msg(elapsed < 20 * G_USEC_PER_SEC, "merge took %" G_GINT64_FORMAT " us", elapsed);
	layers_free(&l);
}
END_TEST

START_TEST(test_no_layers)
{
	GPtrArray *out = NULL;

	ck_assert_int_eq(readdir_merge(NULL, 0, &out), 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(out->len, 0);
	g_ptr_array_unref(out);
}
END_TEST

/* A bad fd in any position fails the whole merge cleanly, leaving *out alone. */
START_TEST(test_bad_fd)
{
	struct layers l;
	GPtrArray *sentinel = (GPtrArray *)&l;
	GPtrArray *out = sentinel;

	layers_make(&l, 3);
	mk(l.fd[0], "a", 'f');
	mk(l.fd[1], "b", 'w');
	mk(l.fd[2], "b", 'f');
	int saved = l.fd[1];

	l.fd[1] = -1;
	ck_assert_int_eq(readdir_merge(l.fd, l.n, &out), -EBADF);
	ck_assert_ptr_eq(out, sentinel);

	l.fd[1] = saved;
	close(l.fd[2]);
	ck_assert_int_eq(readdir_merge(l.fd, l.n, &out), -EBADF);
	ck_assert_ptr_eq(out, sentinel);
	l.fd[2] = open(l.path[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(l.fd[2], 0);

	/* The fd of a file instead of a directory. */
	int dfd = l.fd[0];
	l.fd[0] = openat(dfd, "a", O_PATH | O_CLOEXEC);
	ck_assert_int_ge(l.fd[0], 0);
	ck_assert_int_eq(readdir_merge(l.fd, l.n, &out), -ENOTDIR);
	ck_assert_ptr_eq(out, sentinel);
	close(l.fd[0]);
	l.fd[0] = dfd;

	/* And the same layers are fine once the fds are right. */
	out = merge_ok(&l);
	ck_assert_uint_eq(out->len, 1);
	check_entry(&l, out, "a", DT_REG, 0);
	g_ptr_array_unref(out);
	layers_free(&l);
}
END_TEST

/* A readable (not O_PATH) directory fd works as well, and is not consumed by the merge. */
START_TEST(test_readable_fd)
{
	struct layers l;

	layers_make(&l, 1);
	mk(l.fd[0], "a", 'f');
	close(l.fd[0]);
	l.fd[0] = open(l.path[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(l.fd[0], 0);
	for (int round = 0; round < 2; round++) {
		g_autoptr(GPtrArray) out = merge_ok(&l);
		ck_assert_uint_eq(out->len, 1);
		check_entry(&l, out, "a", DT_REG, 0);
	}
	layers_free(&l);
}
END_TEST

static Suite *readdir_suite(void)
{
	Suite *s = suite_create("readdir");
	TCase *tc = tcase_create("merge");

	tcase_add_loop_test(tc, test_merge_table, 0, G_N_ELEMENTS(merge_cases));
	tcase_add_test(tc, test_odd_names);
	tcase_add_test(tc, test_wh_next_to_name);
	tcase_add_test(tc, test_no_layers);
	tcase_add_test(tc, test_bad_fd);
	tcase_add_test(tc, test_readable_fd);
	suite_add_tcase(s, tc);

	tc = tcase_create("big");
	tcase_set_timeout(tc, 110);
	tcase_add_test(tc, test_big);
	suite_add_tcase(s, tc);
	return s;
}

#include "tmpdir_main.h"

int main(void)
{
	return run_in_tmpdir("plyfs-test-readdir-XXXXXX", readdir_suite);
}
