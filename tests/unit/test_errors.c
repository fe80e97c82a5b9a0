// SPDX-License-Identifier: GPL-2.0-or-later
/* test_errors.c - the error slot (errors.h): every transition, concurrent notes and reads,
 * path truncation, no allocation on the note path; the request scope (request.h); log budgets. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "autofd.h"
#include "errors.h"
#include "fs.h"
#include "log.h"
#include "request.h"

/* --- counting allocations: every malloc of this process while `counting` is set on a thread --- */

static __thread int counting;
static atomic_int allocs;

#if defined(__SANITIZE_ADDRESS__)
/* From <sanitizer/allocator_interface.h>, which Debian's gcc does not install. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n)
{
	if (counting)
		atomic_fetch_add(&allocs, 1);
}
static void on_free(const volatile void *p)
{
}
static void count_allocs_install(void)
{
	__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#else
/* glibc's own entry points: the test's malloc counts, then forwards. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
void *malloc(size_t n)
{
	if (counting)
		atomic_fetch_add(&allocs, 1);
	return __libc_malloc(n);
}
void *calloc(size_t n, size_t m)
{
	if (counting)
		atomic_fetch_add(&allocs, 1);
	return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n)
{
	if (counting)
		atomic_fetch_add(&allocs, 1);
	return __libc_realloc(p, n);
}
void free(void *p)
{
	__libc_free(p);
}
static void count_allocs_install(void)
{
}
#endif

/* --- a tree of layers: T/up (upper), T/lo0 (lower0), T/lo0/sub (lower1, nested), T/work --- */

/* Every test works in its own directory below test_root; main() removes it all at the end, also
 * when a test failed (a forked test child never runs a teardown after a failed assertion). */
static char *test_root;
static char *root;
static char *paths[3];
static char *workdir;

static void make_tree(void)
{
	root = g_build_filename(test_root, "t-XXXXXX", NULL);
	ck_assert_ptr_nonnull(g_mkdtemp(root));
	paths[0] = g_build_filename(root, "up", NULL);
	paths[1] = g_build_filename(root, "lo0", NULL);
	paths[2] = g_build_filename(root, "lo0", "sub", NULL);
	workdir = g_build_filename(root, "work", NULL);
	const char *dirs[] = {"up", "up/dir", "lo0", "lo0/sub", "lo0/sub/deep", "lo0/x", "work"};
	for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
		g_autofree char *p = g_build_filename(root, dirs[i], NULL);
		ck_assert_int_eq(mkdir(p, 0755), 0);
	}
}

static struct err_slot *new_slot(void)
{
	return err_slot_new((const char *const *)paths, 3, true, workdir);
}

static int open_dir(const char *rel)
{
	g_autofree char *p = g_build_filename(root, rel, NULL);
	int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static struct err_snapshot *read_slot(struct err_slot *s)
{
	struct err_snapshot *snap = g_new(struct err_snapshot, 1);
	err_slot_read(s, snap);
	return snap;
}

/* A request scope as ops.c opens one, for `op` on `nodeid`, noting into `s`. */
#define IN_REQUEST(s, opname, nodeid)                                                              \
	struct plyfs fs_ = {.errors = (s)};                                                        \
	REQ_SCOPE(&fs_, opname, nodeid, 0)

/* --- the kind table --- */

static const struct {
	int err;
	int kind;
} kinds[] = {
	{EIO, ERR_IO},
	{EUCLEAN, ERR_IO},
	{EBADMSG, ERR_IO},
	{ENOSPC, ERR_NOSPC},
	{EDQUOT, ERR_DQUOT},
	{EROFS, ERR_ROFS},
	{ESTALE, ERR_STALE},
	{ENOTCONN, ERR_NOTCONN},
	{ECONNABORTED, ERR_NOTCONN},
	{ENOMEM, ERR_RESOURCES},
	{EMFILE, ERR_RESOURCES},
	{ENFILE, ERR_RESOURCES},
	/* What the user caused: never counted. */
	{ENOENT, -1},
	{EEXIST, -1},
	{EACCES, -1},
	{EPERM, -1},
	{ENOTEMPTY, -1},
	{ENOTDIR, -1},
	{EISDIR, -1},
	{EXDEV, -1},
	{ELOOP, -1},
	{ENODATA, -1},
	{ERANGE, -1},
	{E2BIG, -1},
	{ENAMETOOLONG, -1},
	{EINVAL, -1},
	{EOPNOTSUPP, -1},
	{EBUSY, -1},
	{EMLINK, -1},
	{EAGAIN, -1},
};

START_TEST(test_kind_of)
{
	ck_assert_int_eq(err_kind_of(kinds[_i].err), kinds[_i].kind);
	/* and noted (or not) accordingly */
	make_tree();
	struct err_slot *s = new_slot();
	{
		IN_REQUEST(s, LOOKUP, 1);
		errors_note_call(kinds[_i].err, "fstatat", -1, "x");
	}
	g_autofree struct err_snapshot *snap = read_slot(s);
	ck_assert_uint_eq(snap->notes, kinds[_i].kind < 0 ? 0 : 1);
	for (int k = 0; k < ERR_KIND_N; k++)
		ck_assert_uint_eq(snap->kind[k].count, k == kinds[_i].kind ? 1 : 0);
	err_slot_free(s);
}
END_TEST

/* --- ALLOCATED: empty --- */

START_TEST(test_new_slot_empty)
{
	make_tree();
	struct err_slot *s = new_slot();
	g_autofree struct err_snapshot *snap = read_slot(s);
	ck_assert_uint_eq(snap->notes, 0);
	ck_assert_uint_eq(snap->records_missed, 0);
	for (int k = 0; k < ERR_KIND_N; k++) {
		ck_assert_uint_eq(snap->kind[k].count, 0);
		ck_assert(!snap->kind[k].first_set && !snap->kind[k].first_pending);
		ck_assert(!snap->kind[k].last_set);
	}
	err_slot_free(s);
}
END_TEST

/* --- first: EMPTY -> SET, last: EMPTY -> SET; then last SET -> SET (newer), first unchanged;
 * reading changes nothing --- */

START_TEST(test_first_then_last)
{
	make_tree();
	struct err_slot *s = new_slot();
	struct timespec before;
	clock_gettime(CLOCK_REALTIME, &before);
	autofd int dir = open_dir("up/dir");
	{
		IN_REQUEST(s, WRITE, 7);
		errors_note_call(ENOSPC, "pwrite", dir, "f");
	}
	g_autofree struct err_snapshot *a = read_slot(s);
	const struct err_kind_snapshot *k = &a->kind[ERR_NOSPC];
	ck_assert_uint_eq(k->count, 1);
	ck_assert(k->first_set && k->last_set && !k->first_pending);
	ck_assert_uint_eq(k->first.seq, 1);
	ck_assert_int_eq(k->first.err, ENOSPC);
	ck_assert_int_eq(k->first.op, REQ_OP_WRITE);
	ck_assert_str_eq(k->first.call, "pwrite");
	ck_assert_int_eq(k->first.layer, 0);
	ck_assert_str_eq(k->first.path, "/dir/f");
	ck_assert_uint_eq(k->first.nodeid, 7);
	ck_assert(!k->first.truncated);
	ck_assert_int_ge(k->first.time.tv_sec, before.tv_sec);
	ck_assert_mem_eq(&k->first, &k->last, sizeof(k->first));

	{
		IN_REQUEST(s, CREATE, 9);
		errors_note_call(ENOSPC, "openat", dir, "g");
	}
	g_autofree struct err_snapshot *b = read_slot(s);
	k = &b->kind[ERR_NOSPC];
	ck_assert_uint_eq(k->count, 2);
	ck_assert_mem_eq(&k->first, &a->kind[ERR_NOSPC].first, sizeof(k->first));
	ck_assert_uint_eq(k->last.seq, 2);
	ck_assert_int_eq(k->last.op, REQ_OP_CREATE);
	ck_assert_str_eq(k->last.path, "/dir/g");
	ck_assert_uint_eq(k->last.nodeid, 9);

	/* Reading does not reset. */
	g_autofree struct err_snapshot *c = read_slot(s);
	ck_assert_mem_eq(b, c, sizeof(*b));
	ck_assert_uint_eq(c->notes, 2);
	err_slot_free(s);
}
END_TEST

/* Kinds are independent: each has its own first and last. */
START_TEST(test_kinds_apart)
{
	make_tree();
	struct err_slot *s = new_slot();
	autofd int dir = open_dir("lo0/x");
	{
		IN_REQUEST(s, LOOKUP, 3);
		errors_note_call(EIO, "fstatat", dir, "a");
		errors_note_call(ENOTCONN, "fstatat", dir, "b");
		errors_note_call(EIO, "fstatat", dir, "c");
	}
	g_autofree struct err_snapshot *snap = read_slot(s);
	ck_assert_uint_eq(snap->notes, 3);
	ck_assert_uint_eq(snap->kind[ERR_IO].count, 2);
	ck_assert_str_eq(snap->kind[ERR_IO].first.path, "/x/a");
	ck_assert_str_eq(snap->kind[ERR_IO].last.path, "/x/c");
	ck_assert_uint_eq(snap->kind[ERR_NOTCONN].count, 1);
	ck_assert_str_eq(snap->kind[ERR_NOTCONN].first.path, "/x/b");
	ck_assert_uint_eq(snap->kind[ERR_NOTCONN].first.seq, 2);
	ck_assert_int_eq(snap->kind[ERR_NOTCONN].first.layer, 1);
	err_slot_free(s);
}
END_TEST

/* --- where: the layer from the fd's path (longest root), the path inside it --- */

static const struct {
	const char *dir; /* relative to the test root; NULL: fd -1 */
	const char *name;
	const char *call;
	int layer;
	const char *path; /* NULL: absolute path of the test root + dir */
	const char *arg;
} wheres[] = {
	{"up", "f", "openat", 0, "/f", ""},
	{"up", NULL, "fstat", 0, "/", ""},
	{"up", ".", "opendir", 0, "/", ""},
	{"lo0", "x", "fstatat", 1, "/x", ""},
	{"lo0/sub", "f", "fstatat", 2, "/f", ""}, /* the nested lower wins */
	{"lo0/sub/deep", "f", "fstatat", 2, "/deep/f", ""},
	{"work", "#1", "linkat", ERR_LAYER_WORKDIR, "/#1", ""},
	{"up/dir", "trusted.overlay.redirect", "getxattr", 0, "/dir", "trusted.overlay.redirect"},
	{"up/dir", "a/b/c", "openat2", 0, "/dir/a/b/c", ""},
	{NULL, "name", "pwrite", ERR_LAYER_UNKNOWN, "name", ""},
	{NULL, NULL, "pwrite", ERR_LAYER_UNKNOWN, "?", ""},
	{"", "f", "fstatat", ERR_LAYER_UNKNOWN, NULL, ""}, /* outside every layer */
};

START_TEST(test_where)
{
	make_tree();
	struct err_slot *s = new_slot();
	autofd int fd = wheres[_i].dir ? open_dir(wheres[_i].dir) : -1;
	{
		IN_REQUEST(s, GETATTR, 5);
		errors_note_call(EIO, wheres[_i].call, fd, wheres[_i].name);
	}
	g_autofree struct err_snapshot *snap = read_slot(s);
	const struct err_record *r = &snap->kind[ERR_IO].first;
	ck_assert_int_eq(r->layer, wheres[_i].layer);
	g_autofree char *want = wheres[_i].path ? g_strdup(wheres[_i].path)
						: g_build_filename(root, wheres[_i].name, NULL);
	ck_assert_str_eq(r->path, want);
	ck_assert_str_eq(r->arg, wheres[_i].arg);
	ck_assert_str_eq(r->call, wheres[_i].call);
	char buf[16];
	if (wheres[_i].layer == 2)
		ck_assert_str_eq(err_layer_name(s, r->layer, buf), "lower1");
	if (wheres[_i].layer == ERR_LAYER_WORKDIR)
		ck_assert_str_eq(err_layer_path(s, r->layer), workdir);
	err_slot_free(s);
}
END_TEST

/* Metadata and copy-up notes: always counted, whatever the errno. */
START_TEST(test_metadata_and_copy_up)
{
	make_tree();
	struct err_slot *s = new_slot();
	autofd int dir = open_dir("lo0/x");
	IN_REQUEST(s, LOOKUP, 4);
	errors_note_metadata(EACCES, "redirect", 1, -1, "esc");
	errors_note_metadata(EINVAL, "origin", ERR_LAYER_FROM_FD, dir, "f");
	g_autofree struct err_snapshot *a = read_slot(s);
	const struct err_kind_snapshot *m = &a->kind[ERR_METADATA];
	ck_assert_uint_eq(m->count, 2);
	ck_assert_str_eq(m->first.call, "redirect");
	ck_assert_int_eq(m->first.layer, 1);
	ck_assert_str_eq(m->first.path, "esc");
	ck_assert_int_eq(m->first.err, EACCES);
	ck_assert_str_eq(m->last.call, "origin");
	ck_assert_int_eq(m->last.layer, 1);
	ck_assert_str_eq(m->last.path, "/x/f");

	errors_note_metadata(EINVAL, "nlink", 0, -1, "");
	errors_note_copy_up(EACCES, 12, "big");
	g_autofree struct err_snapshot *b = read_slot(s);
	m = &b->kind[ERR_METADATA];
	ck_assert_uint_eq(m->count, 3);
	ck_assert_str_eq(m->last.path, "/"); /* the root of layer 0 */
	ck_assert_int_eq(m->last.layer, 0);
	const struct err_kind_snapshot *c = &b->kind[ERR_COPY_UP];
	ck_assert_uint_eq(c->count, 1);
	ck_assert_uint_eq(c->first.nodeid, 12);
	ck_assert_int_eq(c->first.layer, 0);
	ck_assert_int_eq(c->first.op, REQ_OP_LOOKUP);
	ck_assert_str_eq(c->first.path, "big");
	err_slot_free(s);
}
END_TEST

/* Outside a request: the default slot if any, with no operation; else nothing. */
START_TEST(test_outside_request)
{
	make_tree();
	struct err_slot *s = new_slot();
	ck_assert_ptr_null(req_current());
	errors_note_call(EIO, "fstat", -1, NULL); /* no slot anywhere: a no-op */
	g_autofree struct err_snapshot *a = read_slot(s);
	ck_assert_uint_eq(a->notes, 0);

	err_slot_set_default(s);
	errors_note_call(EIO, "fstat", -1, NULL);
	g_autofree struct err_snapshot *b = read_slot(s);
	ck_assert_uint_eq(b->kind[ERR_IO].count, 1);
	ck_assert_int_eq(b->kind[ERR_IO].first.op, REQ_OP_NONE);
	ck_assert_str_eq(req_op_name(b->kind[ERR_IO].first.op), "-");
	ck_assert_uint_eq(b->kind[ERR_IO].first.nodeid, 0);
	/* FREED clears the default it was. */
	err_slot_free(s);
	errors_note_call(EIO, "fstat", -1, NULL);
}
END_TEST

/* The request scope: counted, current while it lasts, gone after. */
static void a_handler(struct plyfs *fs, const struct req_ctx **seen)
{
	REQ_SCOPE(fs, READDIR, 42, 1000);
	*seen = req_current();
	ck_assert_int_eq((*seen)->op, REQ_OP_READDIR);
	ck_assert_uint_eq((*seen)->nodeid, 42);
	ck_assert_uint_eq((*seen)->uid, 1000);
}

START_TEST(test_request_scope)
{
	struct plyfs fs = {0};
	const struct req_ctx *seen = NULL;
	a_handler(&fs, &seen);
	a_handler(&fs, &seen);
	ck_assert_ptr_nonnull(seen);
	ck_assert_ptr_null(req_current());
	ck_assert_uint_eq(fs.op_count[REQ_OP_READDIR], 2);
	for (int op = 0; op < REQ_OP_N; op++) {
		if (op != REQ_OP_READDIR)
			ck_assert_uint_eq(fs.op_count[op], 0);
		ck_assert_str_ne(req_op_name(op), "");
	}
	ck_assert_str_eq(req_op_name(REQ_OP_READDIR), "readdir");
	ck_assert_str_eq(req_op_name(REQ_OP_N), "-");
}
END_TEST

/* --- truncation: the tail is kept behind "..." --- */

START_TEST(test_truncation)
{
	make_tree();
	struct err_slot *s = new_slot();
	autofd int dir = open_dir("up/dir");
	/* "/dir/" + name fits exactly in ERR_PATH_MAX - 1 bytes. */
	size_t fit = ERR_PATH_MAX - 1 - strlen("/dir/");
	g_autofree char *exact = g_strnfill(fit, 'e');
	g_autofree char *huge = g_strnfill(100000, 'x');
	memcpy(huge + 100000 - 3, "END", 3);
	{
		IN_REQUEST(s, LOOKUP, 1);
		errors_note_call(EIO, "fstatat", dir, exact);
		errors_note_call(EIO, "fstatat", dir, huge);
	}
	g_autofree struct err_snapshot *snap = read_slot(s);
	const struct err_record *a = &snap->kind[ERR_IO].first, *b = &snap->kind[ERR_IO].last;
	ck_assert(!a->truncated);
	ck_assert_uint_eq(strlen(a->path), ERR_PATH_MAX - 1);
	ck_assert(g_str_has_prefix(a->path, "/dir/eee"));
	ck_assert(b->truncated);
	ck_assert_uint_eq(strlen(b->path), ERR_PATH_MAX - 1);
	ck_assert(g_str_has_prefix(b->path, "...xxx"));
	ck_assert(g_str_has_suffix(b->path, "xxEND"));
	/* A long directory part with a short name: the name survives. */
	{
		IN_REQUEST(s, LOOKUP, 1);
		errors_note_metadata(EINVAL, "redirect", 0, -1, huge);
	}
	err_slot_free(s);
}
END_TEST

/* --- no allocation on the note path, even for a 1 MiB name --- */

START_TEST(test_no_allocation)
{
	count_allocs_install();
	make_tree();
	struct err_slot *s = new_slot();
	autofd int dir = open_dir("up/dir");
	g_autofree char *huge = g_strnfill(1 << 20, 'n');
	{
		IN_REQUEST(s, WRITE, 3);
		errors_note_call(EIO, "pwrite", dir, "warm-up"); /* lazy libc state, if any */
		atomic_store(&allocs, 0);
		counting = 1;
		errors_note_call(ENOSPC, "pwrite", dir, huge); /* first of its kind */
		errors_note_call(ENOSPC, "pwrite", dir, huge); /* last only */
		errors_note_metadata(EINVAL, "redirect", 1, dir, huge);
		errors_note_copy_up(ENOSPC, 3, huge);
		for (int i = 0; i < 100; i++) /* past the log budget too */
			errors_note_call(EDQUOT, "pwrite", dir, "f");
		counting = 0;
	}
	int n = atomic_load(&allocs);
	/* The check itself: a malloc while counting is counted (the counter works). */
	counting = 1;
	g_free(g_malloc(16));
	counting = 0;
	ck_assert_int_eq(n, 0);
	ck_assert_int_ge(atomic_load(&allocs), 1);
	g_autofree struct err_snapshot *snap = read_slot(s);
	ck_assert_uint_eq(snap->kind[ERR_NOSPC].count, 2);
	ck_assert_uint_eq(snap->kind[ERR_COPY_UP].count, 1);
	ck_assert_uint_eq(snap->kind[ERR_METADATA].count, 1);
	ck_assert_uint_eq(snap->kind[ERR_DQUOT].count, 100);
	err_slot_free(s);
}
END_TEST

/* --- ACTIVE: many notes while a reader reads; nothing lost, no torn record --- */

#define THREADS 8
#define NOTES	20000

static const int thread_kind[THREADS] = {ERR_IO,    ERR_NOSPC, ERR_IO,	  ERR_NOTCONN,
					 ERR_NOSPC, ERR_IO,    ERR_STALE, ERR_NOSPC};
static const int kind_err[ERR_KIND_N] = {
	[ERR_IO] = EIO, [ERR_NOSPC] = ENOSPC, [ERR_NOTCONN] = ENOTCONN, [ERR_STALE] = ESTALE};

struct stress {
	struct err_slot *slot;
	atomic_int running;
	int id;
	const char *bad; /* what the reader found wrong, or NULL */
	atomic_long reads;
};

static void *noter(void *arg)
{
	struct stress *st = arg;
	int t = st->id;
	char name[64];
	struct err_site site = {.call = "stress", .fd = -1, .layer = 0, .name = name};
	for (int i = 0; i < NOTES; i++) {
		snprintf(name, sizeof(name), "/t%d/n%d", t, i);
		site.nodeid = (uint64_t)t * 1000000 + (uint64_t)i + 1;
		errors_note(st->slot, thread_kind[t], kind_err[thread_kind[t]], &site);
	}
	return NULL;
}

/* A record must be whole: its path names the same (thread, note) as its nodeid. */
static bool record_whole(const struct err_record *r, int kind)
{
	char want[64];
	uint64_t id = r->nodeid - 1;
	snprintf(want, sizeof(want), "/t%d/n%d", (int)(id / 1000000), (int)(id % 1000000));
	return strcmp(want, r->path) == 0 && r->err == kind_err[kind] &&
	       thread_kind[id / 1000000] == kind && strcmp(r->call, "stress") == 0;
}

static void *reader(void *arg)
{
	struct stress *st = arg;
	uint64_t prev[ERR_KIND_N] = {0}, first_seq[ERR_KIND_N] = {0}, last_seq[ERR_KIND_N] = {0};
	struct err_snapshot *snap = g_new(struct err_snapshot, 1);
	while (atomic_load(&st->running) && !st->bad) {
		err_slot_read(st->slot, snap);
		st->reads++;
		for (int k = 0; k < ERR_KIND_N; k++) {
			const struct err_kind_snapshot *ks = &snap->kind[k];
			if (ks->count < prev[k])
				st->bad = "a count went down";
			prev[k] = ks->count;
			if (ks->first_set && !record_whole(&ks->first, k))
				st->bad = "a torn first record";
			if (ks->last_set && !record_whole(&ks->last, k))
				st->bad = "a torn last record";
			if (ks->first_set && first_seq[k] && first_seq[k] != ks->first.seq)
				st->bad = "the first record changed";
			if (ks->first_set)
				first_seq[k] = ks->first.seq;
			if (ks->last_set && ks->last.seq < last_seq[k])
				st->bad = "the last record went back in time";
			if (ks->last_set)
				last_seq[k] = ks->last.seq;
		}
	}
	g_free(snap);
	return NULL;
}

START_TEST(test_concurrent)
{
	make_tree();
	struct err_slot *s = new_slot();
	struct stress rd = {.slot = s, .running = 1};
	struct stress w[THREADS];
	pthread_t rt, wt[THREADS];
	ck_assert_int_eq(pthread_create(&rt, NULL, reader, &rd), 0);
	/* The notes start once the reader reads: on a busy machine it may otherwise first run
	 * after they all ended. */
	while (atomic_load(&rd.reads) == 0)
		sched_yield();
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct stress){.slot = s, .id = t};
		ck_assert_int_eq(pthread_create(&wt[t], NULL, noter, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(wt[t], NULL);
	atomic_store(&rd.running, 0);
	pthread_join(rt, NULL);
	ck_assert_msg(!rd.bad, "reader: %s", rd.bad);
	ck_assert_int_gt(rd.reads, 0);

	g_autofree struct err_snapshot *snap = read_slot(s);
	uint64_t want[ERR_KIND_N] = {0};
	for (int t = 0; t < THREADS; t++)
		want[thread_kind[t]] += NOTES;
	ck_assert_uint_eq(snap->notes, (uint64_t)THREADS * NOTES);
	for (int k = 0; k < ERR_KIND_N; k++) {
		ck_assert_uint_eq(snap->kind[k].count, want[k]);
		ck_assert(snap->kind[k].first_set == (want[k] > 0));
		ck_assert(snap->kind[k].last_set == (want[k] > 0));
		ck_assert(!snap->kind[k].first_pending);
		if (want[k]) {
			ck_assert(record_whole(&snap->kind[k].first, k));
			ck_assert(record_whole(&snap->kind[k].last, k));
			ck_assert_uint_le(snap->kind[k].first.seq, snap->kind[k].last.seq);
		}
	}
	ck_assert_uint_le(snap->records_missed, snap->notes);
	err_slot_free(s);
}
END_TEST

/* --- a reader stopped anywhere (preempted) makes no note miss the last record --- */

static int pause_fd[2], resume_fd[2];

/* SIGUSR1 on the reader: it says so and waits, wherever err_slot_read() was (pipes:
 * async-signal-safe). */
static void on_pause(int sig)
{
	char c = 0;
	if (write(pause_fd[1], &c, 1) != 1 || read(resume_fd[0], &c, 1) != 1)
		abort();
}

struct looper {
	struct err_slot *slot;
	atomic_int running;
};

static void *read_loop(void *arg)
{
	struct looper *lp = arg;
	struct err_snapshot *snap = g_new(struct err_snapshot, 1);
	while (atomic_load(&lp->running))
		err_slot_read(lp->slot, snap);
	g_free(snap);
	return NULL;
}

/*
 * The reader is stopped at a random point of its copy (a signal standing for the scheduler), one
 * note of every kind is made meanwhile, then it goes on: every kind's last record is that note.
 * A reader that held the notes' lock across its copy made them all miss (CI saw a kind with no
 * last record at all in test_concurrent).
 */
START_TEST(test_reader_stopped)
{
	make_tree();
	struct err_slot *s = new_slot();
	ck_assert_int_eq(pipe(pause_fd), 0);
	ck_assert_int_eq(pipe(resume_fd), 0);
	struct sigaction sa = {.sa_handler = on_pause};
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	struct looper lp = {.slot = s, .running = 1};
	pthread_t rt;
	ck_assert_int_eq(pthread_create(&rt, NULL, read_loop, &lp), 0);
	struct err_site site = {
		.call = "stopped", .fd = -1, .name = "x", .layer = 0, .quiet = true};
	g_autofree struct err_snapshot *snap = g_new(struct err_snapshot, 1);
	int stale = 0;
	for (int round = 0; round < 20000; round++) {
		char c = 0;
		ck_assert_int_eq(pthread_kill(rt, SIGUSR1), 0);
		ck_assert_int_eq(read(pause_fd[0], &c, 1), 1);
		for (int k = 0; k < ERR_KIND_N; k++)
			errors_note(s, (enum err_kind)k, EIO, &site);
		ck_assert_int_eq(write(resume_fd[1], &c, 1), 1);
		err_slot_read(s, snap);
		for (int k = 0; k < ERR_KIND_N; k++)
			if (!snap->kind[k].last_set ||
			    snap->kind[k].last.seq != snap->notes - ERR_KIND_N + 1 + (uint64_t)k)
				stale++;
	}
	atomic_store(&lp.running, 0);
	pthread_join(rt, NULL);
	ck_assert_msg(stale == 0, "%d last records missed a note made while a reader was stopped",
		      stale);
	err_slot_free(s);
	for (int i = 0; i < 2; i++) {
		close(pause_fd[i]);
		close(resume_fd[i]);
	}
}
END_TEST

/* --- log budgets --- */

START_TEST(test_log_rate)
{
	struct log_rate r = LOG_RATE_INIT(5);
	long dropped = -1;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int allowed = 0;
	for (int i = 0; i < 15; i++)
		allowed += log_rate_allow(&r, &dropped);
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (t1.tv_sec != t0.tv_sec)
		return; /* crossed a second boundary: the counts below do not hold; rare */
	ck_assert_int_eq(allowed, 5);
	ck_assert_int_eq(dropped, 0);
	/* In the next second the budget is back and the first message learns of the 10 dropped. */
	for (int i = 0; i < 300; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec != t0.tv_sec)
			break;
		usleep(10000);
	}
	ck_assert(log_rate_allow(&r, &dropped));
	ck_assert_int_eq(dropped, 10);
	ck_assert(log_rate_allow(&r, &dropped));
	ck_assert_int_eq(dropped, 0);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("slot");
	tcase_add_loop_test(tc, test_kind_of, 0, G_N_ELEMENTS(kinds));
	tcase_add_test(tc, test_new_slot_empty);
	tcase_add_test(tc, test_first_then_last);
	tcase_add_test(tc, test_kinds_apart);
	tcase_add_loop_test(tc, test_where, 0, G_N_ELEMENTS(wheres));
	tcase_add_test(tc, test_metadata_and_copy_up);
	tcase_add_test(tc, test_outside_request);
	tcase_add_test(tc, test_request_scope);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_no_allocation);
	tcase_add_test(tc, test_log_rate);
	suite_add_tcase(s, tc);

	TCase *th = tcase_create("threads");
	tcase_set_timeout(th, 300);
	tcase_add_test(th, test_concurrent);
	tcase_add_test(th, test_reader_stopped);
	suite_add_tcase(s, th);
	return s;
}

#include "tmpdir_main.h"

int main(void)
{
	return run_in_tmpdir("plyfs-test-errors-XXXXXX", errors_suite);
}
