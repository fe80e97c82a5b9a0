// SPDX-License-Identifier: GPL-2.0-or-later
/* test_node.c - unit tests of the node table: states, counters, paths, moves, threads. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node.h"

#ifdef __SANITIZE_THREAD__
/*
 * glib's GMutex is a futex driven by atomics in an uninstrumented library, so ThreadSanitizer
 * cannot see the ordering it gives and reports every access made under the table lock as a race.
 * Under -fsanitize=thread only, these wrappers (found before glib's by the linker) tell it.
 */
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

static void (*real_lock)(GMutex *);
static void (*real_unlock)(GMutex *);

__attribute__((constructor)) static void tsan_mutex_init(void)
{
	real_lock = (void (*)(GMutex *))dlsym(RTLD_NEXT, "g_mutex_lock");
	real_unlock = (void (*)(GMutex *))dlsym(RTLD_NEXT, "g_mutex_unlock");
}

void g_mutex_lock(GMutex *m)
{
	real_lock(m);
	__tsan_acquire(m);
}

void g_mutex_unlock(GMutex *m)
{
	__tsan_release(m);
	real_unlock(m);
}
#endif

static struct node_table *T;
static GArray *freed_ids;    /* nodeids of destroyed inserted nodes, in destroy order */
static GArray *freed_states; /* node_state() seen by destroy(): must be NODE_FREED */
static int n_discarded;	     /* destroyed nodes that were never inserted (nodeid 0) */

/* Calls node_state(), which takes the table lock: a destroy() run under it would deadlock and the
 * test would time out. */
static void record_destroy(struct node *n)
{
	enum node_state s;

	if (n->nodeid == 0) {
		n_discarded++;
		return;
	}
	s = node_state(T, n);
	g_array_append_val(freed_ids, n->nodeid);
	g_array_append_val(freed_states, s);
	ck_assert_ptr_null(n->parent);
}

static void setup(void)
{
	freed_ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	freed_states = g_array_new(FALSE, FALSE, sizeof(enum node_state));
	n_discarded = 0;
	T = node_table_new(record_destroy);
}

static void teardown(void)
{
	node_table_free(T);
	T = NULL;
	g_array_unref(freed_ids);
	g_array_unref(freed_states);
}

static struct node_key key(ino_t ino)
{
	return (struct node_key){.dev = 1, .ino = ino};
}

/* One entry reply: returns the node with the request's reference still held. */
static struct node *lookup_ref(struct node *parent, const char *name, mode_t type, ino_t ino)
{
	return node_table_insert_lookup(T, parent, node_new(name, type, key(ino)));
}

/* One entry reply whose request is done: the node stays alive through its nlookup only. */
static struct node *lookup(struct node *parent, const char *name, mode_t type, ino_t ino)
{
	struct node *n = lookup_ref(parent, name, type, ino);

	node_put(T, n);
	return n;
}

#define ROOT node_table_root(T)

#define ck_stats(want_live, want_pinned)                                                           \
	do {                                                                                       \
		struct node_table_stats st_;                                                       \
		node_table_stats(T, &st_);                                                         \
		ck_assert_uint_eq(st_.live, (want_live));                                          \
		ck_assert_uint_eq(st_.pinned, (want_pinned));                                      \
		ck_assert_uint_eq(st_.total, (uint64_t)(want_live) + (want_pinned));               \
	} while (0)

#define ck_freed(...)                                                                              \
	do {                                                                                       \
		const uint64_t want_[] = {__VA_ARGS__};                                            \
		ck_assert_uint_eq(freed_ids->len, G_N_ELEMENTS(want_));                            \
		for (guint i_ = 0; i_ < G_N_ELEMENTS(want_); i_++) {                               \
			ck_assert_uint_eq(g_array_index(freed_ids, uint64_t, i_), want_[i_]);      \
			ck_assert_int_eq(g_array_index(freed_states, enum node_state, i_),         \
					 NODE_FREED);                                              \
		}                                                                                  \
	} while (0)

/* Runs with fd 2 sent to a temporary file; returns what was written to it. */
static int capture_fd = -1, saved_stderr = -1;
static char *capture_path;

static void capture_begin(void)
{
	GError *err = NULL;

	capture_fd = g_file_open_tmp("test_node-XXXXXX", &capture_path, &err);
	ck_assert_msg(capture_fd >= 0, "%s", err ? err->message : "");
	fflush(stderr);
	saved_stderr = dup(2);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(capture_fd, 2), 2);
}

static char *capture_end(void)
{
	char *text = NULL;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	close(capture_fd);
	ck_assert(g_file_get_contents(capture_path, &text, NULL, NULL));
	unlink(capture_path);
	g_free(capture_path);
	return text;
}

static int count_lines(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

START_TEST(test_root)
{
	struct node *root = ROOT;

	ck_assert_uint_eq(root->nodeid, NODE_ROOT_ID);
	ck_assert_ptr_null(root->parent);
	ck_assert_str_eq(root->name, "");
	ck_assert_uint_eq(root->nlookup, 1);
	ck_assert_int_eq(node_state(T, root), NODE_LIVE);
	ck_stats(1, 0);
	ck_assert_ptr_eq(node_table_get(T, NODE_ROOT_ID), root);
	node_put(T, root);

	/* Forgetting the root makes it PINNED by its permanent reference, never FREED. */
	node_table_forget(T, NODE_ROOT_ID, 1);
	ck_assert_int_eq(node_state(T, root), NODE_PINNED);
	ck_stats(0, 1);
	ck_assert_uint_eq(freed_ids->len, 0);
	node_table_add_lookup(T, root);
	ck_assert_int_eq(node_state(T, root), NODE_LIVE);
	ck_stats(1, 0);

	/* Its permanent reference cannot be put away. */
	node_table_set_abort_on_underflow(T, false);
	capture_begin();
	node_put(T, root);
	g_autofree char *log = capture_end();
	ck_assert_int_eq(count_lines(log, "reference count underflow"), 1);
	ck_assert_uint_eq(root->refcount, 2);
	ck_assert_int_eq(node_state(T, root), NODE_LIVE);
	ck_assert_uint_eq(freed_ids->len, 0);
}
END_TEST

START_TEST(test_same_key_same_node)
{
	struct node *a1 = lookup_ref(ROOT, "a", S_IFREG | 0644, 10);

	ck_assert_uint_eq(a1->nodeid, 2);
	ck_assert_uint_eq(a1->generation, 1);
	ck_assert_uint_eq(a1->type, S_IFREG);
	ck_assert_ptr_eq(a1->parent, ROOT);
	ck_assert_uint_eq(a1->nlookup, 1);
	ck_assert_uint_eq(a1->refcount, 2);   /* kernel + request */
	ck_assert_uint_eq(ROOT->refcount, 3); /* kernel + permanent + child */
	ck_assert(a1->hashed);

	/* A hard link found under another name: same node, nlookup 2, fresh one discarded. */
	struct node *a2 = lookup_ref(ROOT, "link", S_IFREG, 10);
	ck_assert_ptr_eq(a2, a1);
	ck_assert_uint_eq(a1->nlookup, 2);
	ck_assert_uint_eq(a1->refcount, 3);
	ck_assert_str_eq(a1->name, "a");
	ck_assert_int_eq(n_discarded, 1);
	node_put(T, a1);
	node_put(T, a2);
	ck_assert_uint_eq(a1->refcount, 1);
	ck_assert_int_eq(node_state(T, a1), NODE_LIVE);
	ck_stats(2, 0);

	node_table_forget(T, 2, 1);
	ck_assert_int_eq(node_state(T, a1), NODE_LIVE);
	node_table_forget(T, 2, 1);
	ck_freed(2);
	ck_stats(1, 0);
	ck_assert_uint_eq(ROOT->refcount, 2);
}
END_TEST

START_TEST(test_different_key)
{
	struct node *a = lookup(ROOT, "a", S_IFREG, 10);
	struct node *b = lookup(ROOT, "b", S_IFREG, 11);
	struct node_key other_dev = {.dev = 2, .ino = 10};
	struct node *c = node_table_insert_lookup(T, ROOT, node_new("c", S_IFREG, other_dev));

	node_put(T, c);
	ck_assert_ptr_ne(a, b);
	ck_assert_ptr_ne(a, c);
	ck_assert_uint_eq(a->nodeid, 2);
	ck_assert_uint_eq(b->nodeid, 3);
	ck_assert_uint_eq(c->nodeid, 4);
	ck_assert_uint_eq(a->nlookup, 1);
	ck_assert_int_eq(n_discarded, 0);
	ck_stats(4, 0);
}
END_TEST

START_TEST(test_same_key_other_type)
{
	struct node *a = lookup(ROOT, "a", S_IFREG, 10);
	/* ino 10 was reused by a new directory: the old node loses its identity only. */
	struct node *b = lookup(ROOT, "b", S_IFDIR, 10);
	struct node *got;

	ck_assert_ptr_ne(a, b);
	ck_assert(!a->hashed);
	ck_assert(b->hashed);
	ck_assert_int_eq(node_state(T, a), NODE_LIVE);
	got = node_table_get(T, a->nodeid);
	ck_assert_ptr_eq(got, a);
	node_put(T, got);
	ck_assert_int_eq(n_discarded, 0);
	ck_stats(3, 0);

	/* A lookup of the file type again now finds b in the way, not the unhashed a. */
	struct node *c = lookup(ROOT, "c", S_IFREG, 10);
	ck_assert_ptr_ne(c, a);
	ck_assert_ptr_ne(c, b);
	ck_assert(!b->hashed);
	ck_stats(4, 0);

	/* Unhashed nodes are freed normally. */
	node_table_forget(T, a->nodeid, 1);
	node_table_forget(T, b->nodeid, 1);
	ck_freed(2, 3);
	ck_stats(2, 0);
}
END_TEST

START_TEST(test_unhash)
{
	struct node *a = lookup(ROOT, "a", S_IFREG, 10);

	node_table_unhash(T, a);
	ck_assert(!a->hashed);
	node_table_unhash(T, a); /* idempotent */
	struct node *b = lookup(ROOT, "a", S_IFREG, 10);
	ck_assert_ptr_ne(a, b);
	ck_assert(b->hashed);
	ck_assert_uint_eq(a->nlookup, 1);
	ck_assert_uint_eq(b->nlookup, 1);
	/* The hashed one is found again, not the unhashed one. */
	ck_assert_ptr_eq(lookup(ROOT, "a", S_IFREG, 10), b);
	ck_assert_uint_eq(b->nlookup, 2);
	ck_stats(3, 0);
}
END_TEST

/* A copied-up file keyed by its origin is found by its upper inode too, while it is hashed and
 * only for its own type; the upper inode moves to whoever got it last. */
START_TEST(test_upper_identity)
{
	struct node *a = lookup(ROOT, "a", S_IFREG, 10);
	struct node_key k;
	ck_assert(!node_table_upper_key(T, 1, 500, S_IFREG, &k));
	node_table_set_upper(T, a, 1, 500);
	ck_assert(node_table_upper_key(T, 1, 500, S_IFREG, &k));
	ck_assert_uint_eq(k.ino, 10);
	ck_assert(!node_table_upper_key(T, 1, 500, S_IFDIR, &k));
	ck_assert(!node_table_upper_key(T, 2, 500, S_IFREG, &k));
	/* Its own key: nothing to record. */
	struct node *b = lookup(ROOT, "b", S_IFREG, 20);
	node_table_set_upper(T, b, 1, 20);
	ck_assert(!node_table_upper_key(T, 1, 20, S_IFREG, &k));
	/* Taken over by b: a has it no more. */
	node_table_set_upper(T, b, 1, 500);
	ck_assert(node_table_upper_key(T, 1, 500, S_IFREG, &k));
	ck_assert_uint_eq(k.ino, 20);
	node_table_set_upper(T, a, 1, 600);
	ck_assert(node_table_upper_key(T, 1, 600, S_IFREG, &k));
	ck_assert_uint_eq(k.ino, 10);
	/* Unlinked, rekeyed, freed: gone. */
	node_table_unhash(T, b);
	ck_assert(!node_table_upper_key(T, 1, 500, S_IFREG, &k));
	node_table_set_upper(T, b, 1, 700); /* unhashed: ignored */
	ck_assert(!node_table_upper_key(T, 1, 700, S_IFREG, &k));
	node_table_rekey(T, a, key(600));
	ck_assert(!node_table_upper_key(T, 1, 600, S_IFREG, &k));
	node_table_set_upper(T, a, 1, 800);
	node_table_forget(T, a->nodeid, 1);
	ck_assert(!node_table_upper_key(T, 1, 800, S_IFREG, &k));
}
END_TEST

START_TEST(test_child_forgotten_first)
{
	struct node *d = lookup(ROOT, "d", S_IFDIR, 20);
	struct node *f = lookup(d, "f", S_IFREG, 21);

	ck_assert_uint_eq(d->refcount, 2); /* kernel + child */
	ck_assert_ptr_eq(f->parent, d);
	node_table_forget(T, f->nodeid, 1);
	ck_freed(3);
	ck_assert_uint_eq(d->refcount, 1);
	ck_assert_int_eq(node_state(T, d), NODE_LIVE);
	ck_stats(2, 0);
	node_table_forget(T, d->nodeid, 1);
	ck_freed(3, 2);
	ck_stats(1, 0);
}
END_TEST

START_TEST(test_parent_forgotten_first)
{
	struct node *d = lookup(ROOT, "d", S_IFDIR, 20);
	struct node *f = lookup(d, "f", S_IFREG, 21);
	struct node *got;

	node_table_forget(T, d->nodeid, 1);
	ck_assert_int_eq(node_state(T, d), NODE_PINNED);
	ck_assert_uint_eq(d->nlookup, 0);
	ck_assert_uint_eq(d->refcount, 1);
	ck_assert_uint_eq(freed_ids->len, 0);
	ck_stats(2, 1);
	/* Still reachable by nodeid while pinned. */
	got = node_table_get(T, 2);
	ck_assert_ptr_eq(got, d);
	node_put(T, got);
	ck_assert_int_eq(node_state(T, d), NODE_PINNED);

	node_table_forget(T, f->nodeid, 1);
	ck_freed(3, 2); /* the child first, then the parent it pinned */
	ck_stats(1, 0);
	ck_assert_ptr_null(node_table_get(T, 2));
	ck_assert_ptr_null(node_table_get(T, 3));
}
END_TEST

static void lock_counts(uint64_t *excl, uint64_t *shared)
{
	struct node_table_stats st;
	node_table_stats(T, &st);
	*excl = st.locks;
	*shared = st.read_locks;
}

/*
 * What a GETATTR does to the table (its node by nodeid, its parent and name for the location,
 * both released) takes the shared lock twice and never the exclusive one: references are atomic
 * and only a count that may reach 0 is dropped under the lock. The last put does take it, and
 * frees the node.
 */
START_TEST(test_lock_counts)
{
	struct node *d = lookup(ROOT, "d", S_IFDIR, 10);
	struct node *f = lookup(d, "f", S_IFREG, 11);
	uint64_t e0, s0, e1, s1;

	lock_counts(&e0, &s0);
	for (int i = 0; i < 100; i++) {
		struct node *n = node_table_get(T, f->nodeid);
		char *name = NULL;
		struct node *p = node_parent_name(T, n, &name);
		ck_assert_ptr_eq(p, d);
		ck_assert_str_eq(name, "f");
		g_free(name);
		node_put(T, p);
		node_put(T, n);
	}
	lock_counts(&e1, &s1);
	ck_assert_uint_eq(e1 - e0, 0);
	ck_assert_uint_eq(s1 - s0, 200 + 1); /* and node_table_stats() once */
	ck_assert_uint_eq(f->refcount, 1);   /* the kernel's share */
	ck_assert_uint_eq(d->refcount, 2);   /* the kernel's share and f's pin */

	/* An entry reply for the known file by its own name: counts only, the shared lock. */
	lock_counts(&e0, &s0);
	ck_assert_ptr_eq(lookup(d, "f", S_IFREG, 11), f);
	lock_counts(&e1, &s1);
	ck_assert_uint_eq(e1 - e0, 0);
	ck_assert_uint_eq(f->nlookup, 2);
	/* By another name (a hard link, remembered as an alias): the exclusive lock. */
	ck_assert_ptr_eq(lookup(ROOT, "link", S_IFREG, 11), f);
	lock_counts(&e0, &s0);
	ck_assert_uint_eq(e0 - e1, 1);
	ck_assert_uint_eq(f->nlookup, 3);
	node_table_forget(T, f->nodeid, 2);
	ck_assert_uint_eq(f->nlookup, 1);

	/* A request in flight while the kernel forgets: its put is the last one, under the lock. */
	struct node *n = node_table_get(T, f->nodeid);
	node_table_forget(T, f->nodeid, 1);
	ck_assert_int_eq(node_state(T, n), NODE_PINNED);
	lock_counts(&e0, &s0);
	node_put(T, n);
	lock_counts(&e1, &s1);
	ck_assert_uint_ge(e1 - e0, 1);
	ck_stats(2, 0); /* the root and d */
	ck_assert_uint_eq(freed_ids->len, 1);
}
END_TEST

START_TEST(test_forget_with_handle)
{
	struct node *f = lookup(ROOT, "f", S_IFREG, 30);
	struct node *h = node_ref(T, f); /* an open file handle */

	ck_assert_ptr_eq(h, f);
	ck_assert_uint_eq(f->refcount, 2);
	node_table_forget(T, f->nodeid, 1);
	ck_assert_int_eq(node_state(T, f), NODE_PINNED);
	ck_assert_uint_eq(freed_ids->len, 0);
	ck_stats(1, 1);
	h = node_put(T, h);
	ck_assert_ptr_null(h);
	ck_freed(2);
	ck_stats(1, 0);
}
END_TEST

START_TEST(test_forget_batch)
{
	struct node *a = lookup(ROOT, "a", S_IFREG, 10);
	struct node *b = lookup(ROOT, "b", S_IFREG, 11);
	struct node *c = lookup(ROOT, "c", S_IFREG, 12);
	struct node *d = lookup(ROOT, "d", S_IFDIR, 13);
	struct node *e = lookup(d, "e", S_IFREG, 14);

	lookup(ROOT, "a", S_IFREG, 10);
	lookup(ROOT, "b", S_IFREG, 11);
	lookup(ROOT, "b", S_IFREG, 11);
	ck_assert_uint_eq(a->nlookup, 2);
	ck_assert_uint_eq(b->nlookup, 3);

	const struct node_forget_item items[] = {
		{a->nodeid, 1}, {b->nodeid, 2}, {a->nodeid, 1}, /* duplicates of a */
		{99999, 4},					/* unknown: ignored */
		{c->nodeid, 0},					/* no-op */
		{d->nodeid, 1}, {e->nodeid, 1},			/* parent then child */
		{a->nodeid, 1}, /* a was freed by this batch: unknown now, ignored */
	};
	node_table_forget_batch(T, items, G_N_ELEMENTS(items));
	ck_freed(2, 6, 5);
	ck_assert_uint_eq(b->nlookup, 1);
	ck_assert_uint_eq(c->nlookup, 1);
	ck_stats(3, 0);

	node_table_forget_batch(T, NULL, 0);
	ck_stats(3, 0);
}
END_TEST

START_TEST(test_forget_unknown)
{
	/* Not a bug (abort stays on): the kernel may forget what a racing free already took. */
	node_table_set_abort_on_underflow(T, true);
	lookup(ROOT, "a", S_IFREG, 10);
	node_table_forget(T, 12345, 1);
	node_table_forget(T, 0, 1);
	node_table_forget(T, 3, 7);
	ck_assert_uint_eq(freed_ids->len, 0);
	ck_stats(2, 0);
}
END_TEST

START_TEST(test_underflow_clamps)
{
	struct node *f, *g, *h;
	char *log;

	node_table_set_abort_on_underflow(T, false);
	f = lookup(ROOT, "f", S_IFREG, 10);
	lookup(ROOT, "f", S_IFREG, 10);
	h = node_ref(T, f);
	g = lookup(ROOT, "g", S_IFREG, 11);

	capture_begin();
	node_table_forget(T, f->nodeid, 5); /* 2 looked up */
	ck_assert_uint_eq(f->nlookup, 0);
	ck_assert_uint_eq(f->refcount, 1); /* the handle */
	ck_assert_int_eq(node_state(T, f), NODE_PINNED);
	node_table_forget(T, f->nodeid, 1); /* nlookup already 0 */
	ck_assert_uint_eq(f->nlookup, 0);
	ck_assert_int_eq(node_state(T, f), NODE_PINNED);

	node_put(T, g); /* only the kernel's share is left: must not free */
	ck_assert_uint_eq(g->refcount, 1);
	ck_assert_int_eq(node_state(T, g), NODE_LIVE);
	ck_assert_uint_eq(freed_ids->len, 0);
	ck_stats(2, 1);
	log = capture_end();

	ck_assert_int_eq(count_lines(log, "lookup count underflow"), 2);
	ck_assert_int_eq(count_lines(log, "reference count underflow"), 1);
	g_free(log);

	h = node_put(T, h);
	ck_freed(2);
	node_table_forget(T, g->nodeid, 1);
	ck_freed(2, 3);
	ck_stats(1, 0);
}
END_TEST

START_TEST(test_underflow_aborts)
{
	struct node *f = lookup(ROOT, "f", S_IFREG, 10);

	node_table_set_abort_on_underflow(T, true);
	capture_begin(); /* keep the expected message out of the test output */
	node_put(T, f);	 /* only the kernel's share is left */
	ck_abort_msg("a put of more than was got did not abort");
}
END_TEST

/* A FORGET's count comes from a request: too large is clamped and logged, never an abort, also
 * where the daemon's own underflows abort. */
START_TEST(test_over_forget_never_aborts)
{
	struct node *f, *h;
	char *log;

	node_table_set_abort_on_underflow(T, true);
	f = lookup(ROOT, "f", S_IFREG, 10);
	lookup(ROOT, "f", S_IFREG, 10);
	h = node_ref(T, f);
	capture_begin();
	node_table_forget(T, f->nodeid, UINT64_MAX);
	ck_assert_int_eq(node_state(T, f), NODE_PINNED);
	struct node_forget_item items[] = {{f->nodeid, 3}, {NODE_ROOT_ID, 2}, {NODE_ROOT_ID, 1}};
	node_table_forget_batch(T, items, G_N_ELEMENTS(items));
	log = capture_end();
	ck_assert_int_eq(count_lines(log, "lookup count underflow"), 2);
	g_free(log);
	ck_assert_int_eq(node_state(T, ROOT), NODE_PINNED);
	ck_assert_uint_eq(freed_ids->len, 0);
	h = node_put(T, h);
	ck_freed(2);
	ck_stats(0, 1);
}
END_TEST

START_TEST(test_pinned_lookup_again)
{
	struct node *d = lookup(ROOT, "d", S_IFDIR, 20);
	uint64_t id = d->nodeid;

	lookup(d, "f", S_IFREG, 21);
	node_table_forget(T, id, 1);
	ck_assert_int_eq(node_state(T, d), NODE_PINNED);
	ck_stats(2, 1);

	struct node *again = lookup_ref(ROOT, "d", S_IFDIR, 20);
	ck_assert_ptr_eq(again, d);
	ck_assert_uint_eq(again->nodeid, id);
	ck_assert_uint_eq(d->nlookup, 1);
	ck_assert_uint_eq(d->refcount, 3); /* kernel + child + request */
	ck_assert_int_eq(node_state(T, d), NODE_LIVE);
	ck_assert_int_eq(n_discarded, 1);
	node_put(T, again);
	ck_stats(3, 0);
	ck_assert_uint_eq(freed_ids->len, 0);
}
END_TEST

START_TEST(test_ids_never_reused)
{
	uint64_t last = NODE_ROOT_ID;

	/* A nodeid never goes to another file: every new file gets a larger one. */
	for (int i = 0; i < 100; i++) {
		struct node *n = lookup(ROOT, "a", S_IFREG, 10 + (ino_t)i);
		uint64_t id = n->nodeid;

		ck_assert_uint_gt(id, last);
		node_table_forget(T, id, 1);
		ck_assert_ptr_null(node_table_get(T, id));
		last = id;
	}
	ck_assert_uint_eq(freed_ids->len, 100);
	ck_stats(1, 0);
}
END_TEST

/*
 * The allocator at its bound: a next nodeid past NODE_ID_LIMIT (what a forged handle store
 * asked for) is refused and changes nothing; at the limit the last nodeid is handed out, then a
 * new file gets NULL (ENOSPC), never 0 or 1 (the root) after a wrap. A file already known, and
 * one with a record, still get their nodeid.
 */
START_TEST(test_ids_exhausted)
{
	ck_assert_int_eq(node_table_reserve_ids(T, UINT64_MAX), -ERANGE);
	ck_assert_int_eq(node_table_reserve_ids(T, NODE_ID_LIMIT + 1), -ERANGE);
	ck_assert_uint_eq(node_table_next_id(T), NODE_ROOT_ID + 1);
	ck_assert_int_eq(node_table_reserve_ids(T, 0), 0); /* never lowers it */
	ck_assert_uint_eq(node_table_next_id(T), NODE_ROOT_ID + 1);

	struct node *kept = lookup(ROOT, "kept", S_IFREG, 9);
	struct node *rec = lookup(ROOT, "rec", S_IFREG, 8);
	uint64_t rec_id = rec->nodeid;
	node_table_forget(T, rec_id, 1); /* a record now */
	ck_assert_int_eq(node_table_reserve_ids(T, NODE_ID_LIMIT - 2), 0);
	struct node *a = lookup(ROOT, "a", S_IFREG, 10);
	struct node *b = lookup(ROOT, "b", S_IFREG, 11);
	ck_assert_uint_eq(a->nodeid, NODE_ID_LIMIT - 2);
	ck_assert_uint_eq(b->nodeid, NODE_ID_LIMIT - 1);
	ck_assert_uint_eq(node_table_next_id(T), NODE_ID_LIMIT);
	for (int i = 0; i < 3; i++) {
		struct node *none = node_table_insert_lookup(
			T, ROOT, node_new("c", S_IFREG, key(12 + (ino_t)i)));
		ck_assert_ptr_null(none);
	}
	ck_assert_uint_eq(node_table_next_id(T), NODE_ID_LIMIT);
	ck_assert_int_eq(n_discarded, 3);
	ck_assert_uint_eq(lookup(ROOT, "kept", S_IFREG, 9)->nodeid, kept->nodeid);
	ck_assert_uint_eq(lookup(ROOT, "rec", S_IFREG, 8)->nodeid, rec_id);
	ck_assert_ptr_null(node_table_get(T, 0));
	ck_assert_int_eq(node_table_reserve_ids(T, NODE_ID_LIMIT), 0);
	ck_stats(5, 0); /* the root, kept, rec, a, b */
}
END_TEST

START_TEST(test_record_gives_the_same_id_back)
{
	/* The same file, forgotten and found again, gets its old nodeid (handles stay valid). */
	struct node *n = lookup(ROOT, "a", S_IFREG, 10);
	uint64_t id = n->nodeid;
	node_table_forget(T, id, 1);
	ck_assert_ptr_null(node_table_get(T, id));

	struct node_table_stats st;
	node_table_stats(T, &st);
	ck_assert_uint_eq(st.records, 1);
	struct node_record_info rec;
	ck_assert(node_table_find_record(T, id, &rec));
	ck_assert_str_eq(rec.name, "a");
	ck_assert_uint_eq(rec.parent, NODE_ROOT_ID);
	ck_assert_uint_eq(rec.key.ino, 10);
	g_free(rec.name);

	n = lookup(ROOT, "a", S_IFREG, 10);
	ck_assert_uint_eq(n->nodeid, id);
	node_table_stats(T, &st);
	ck_assert_uint_eq(st.records, 0);

	/* Another type under the same key is another file: a new id, and the record is gone. */
	node_table_forget(T, id, 1);
	n = lookup(ROOT, "a", S_IFDIR, 10);
	ck_assert_uint_gt(n->nodeid, id);
	ck_assert(!node_table_find_record(T, id, &rec));
	node_table_forget(T, n->nodeid, 1);
}
END_TEST

/* key.check tells an inode number reused by another file from the same file found again. */
START_TEST(test_key_check)
{
	struct node_key k = key(40);
	k.check = 7;
	struct node *a = node_table_insert_lookup(T, ROOT, node_new("a", S_IFREG, k));
	uint64_t aid = a->nodeid;
	node_put(T, a);
	/* Unknown check (0): the same file. */
	struct node *a0 = lookup_ref(ROOT, "a", S_IFREG, 40);
	ck_assert_ptr_eq(a0, a);
	node_put(T, a0);
	node_table_forget(T, aid, 2);
	ck_freed(aid);
	/* Its record: found again by the same check, not by another one. */
	k.check = 8;
	struct node *b = node_table_insert_lookup(T, ROOT, node_new("a", S_IFREG, k));
	ck_assert_uint_ne(b->nodeid, aid);
	struct node_record_info rec;
	ck_assert(!node_table_find_record(T, aid, &rec)); /* dropped: another file now */
	/* A live node, then a file with its key and another check: a new node; the old one is
	 * unhashed (a lookup with its own check no longer finds it). */
	k.check = 9;
	struct node *c = node_table_insert_lookup(T, ROOT, node_new("c", S_IFREG, k));
	ck_assert_ptr_ne(c, b);
	k.check = 8;
	struct node *b2 = node_table_insert_lookup(T, ROOT, node_new("b2", S_IFREG, k));
	ck_assert_ptr_ne(b2, b);
	node_put(T, b);
	node_put(T, c);
	node_put(T, b2);

	/* A node known without a check learns the first one seen, and then holds to it. */
	struct node *d = lookup_ref(ROOT, "d", S_IFREG, 41);
	struct node_key kd = key(41);
	kd.check = 5;
	struct node *d5 = node_table_insert_lookup(T, ROOT, node_new("d", S_IFREG, kd));
	ck_assert_ptr_eq(d5, d);
	ck_assert_uint_eq(d->key.check, 5);
	kd.check = 6;
	struct node *d6 = node_table_insert_lookup(T, ROOT, node_new("d", S_IFREG, kd));
	ck_assert_ptr_ne(d6, d);
	node_put(T, d);
	node_put(T, d5);
	node_put(T, d6);
}
END_TEST

/* The store of export_store.h in miniature: a second table loads the first one's snapshot. */
START_TEST(test_records_carried_to_another_table)
{
	node_table_set_generation(T, 77);
	struct node *d = lookup(ROOT, "d", S_IFDIR | 0755, 20);
	struct node *f = lookup(d, "f", S_IFREG | 0644, 21);
	struct node *g = lookup(ROOT, "g", S_IFREG | 0644, 22);
	uint64_t fid = f->nodeid, did = d->nodeid, gid = g->nodeid;
	ck_assert_uint_eq(f->generation, 77);
	node_table_forget(T, gid, 1); /* g: a record; d and f: live nodes */
	node_table_set_generation(T, 78);
	struct node *h = lookup(ROOT, "h", S_IFREG | 0644, 23);
	ck_assert_uint_eq(h->generation, 78);
	node_table_unhash(T, h); /* deleted: not in the snapshot */

	g_autoptr(GArray) snap = node_table_snapshot(T);
	ck_assert_uint_eq(snap->len, 3);
	ck_assert_uint_eq(g_array_index(snap, struct node_record_info, 0).nodeid, gid);
	uint64_t next = node_table_next_id(T);

	struct node_table *t2 = node_table_new(record_destroy);
	struct node_record_info bad = g_array_index(snap, struct node_record_info, 0);
	bad.nodeid = next; /* never handed out by the first table */
	ck_assert(!node_table_add_record(t2, &bad));
	node_table_reserve_ids(t2, next);
	ck_assert(!node_table_add_record(t2, &bad));
	bad.nodeid = NODE_ROOT_ID;
	ck_assert(!node_table_add_record(t2, &bad));
	for (guint i = 0; i < snap->len; i++)
		ck_assert(node_table_add_record(t2,
						&g_array_index(snap, struct node_record_info, i)));
	ck_assert(!node_table_add_record(t2, &g_array_index(snap, struct node_record_info, 0)));
	ck_assert_uint_eq(node_table_next_id(t2), next);

	/* Found again: the old nodeid and its own generation, whatever the new table's is. */
	node_table_set_generation(t2, 99);
	struct node *d2 =
		node_table_insert_lookup(t2, node_table_root(t2), node_new("d", S_IFDIR, key(20)));
	struct node *f2 = node_table_insert_lookup(t2, d2, node_new("f", S_IFREG, key(21)));
	struct node *n2 = node_table_insert_lookup(t2, d2, node_new("new", S_IFREG, key(24)));
	ck_assert_uint_eq(d2->nodeid, did);
	ck_assert_uint_eq(f2->nodeid, fid);
	ck_assert_uint_eq(f2->generation, 77);
	ck_assert_uint_eq(n2->nodeid, next);
	ck_assert_uint_eq(n2->generation, 99);
	struct node_record_info rec;
	ck_assert(node_table_find_record(t2, gid, &rec));
	ck_assert_str_eq(rec.name, "g");
	ck_assert_uint_eq(rec.generation, 77);
	ck_assert_uint_eq(rec.parent, NODE_ROOT_ID);
	g_free(rec.name);
	node_put(t2, n2);
	node_put(t2, f2);
	node_put(t2, d2);
	node_table_free(t2);
}
END_TEST

static void visit_ids(const struct node_record_info *info, void *data)
{
	g_array_append_val((GArray *)data, info->nodeid);
}

/* The change counter moves with what a store would write, and only then. */
START_TEST(test_changes_counter)
{
	uint64_t c = node_table_changes(T);
	struct node *d = lookup(ROOT, "d", S_IFDIR | 0755, 30);
	ck_assert_uint_gt(node_table_changes(T), c); /* a new node */
	c = node_table_changes(T);
	struct node *f = lookup(d, "f", S_IFREG | 0644, 31);
	ck_assert_uint_gt(node_table_changes(T), c);
	c = node_table_changes(T);
	node_put(T, lookup_ref(d, "f", S_IFREG | 0644, 31)); /* known: nlookup only */
	node_table_add_lookup(T, f);
	node_table_forget(T, f->nodeid, 2); /* still looked up once */
	ck_assert_uint_eq(node_table_changes(T), c);
	node_table_move(T, f, ROOT, "f2");
	ck_assert_uint_gt(node_table_changes(T), c);
	c = node_table_changes(T);
	uint64_t fid = f->nodeid;
	node_table_forget(T, fid, 1); /* freed: a record */
	ck_assert_uint_gt(node_table_changes(T), c);
	c = node_table_changes(T);
	node_table_drop_record(T, fid);
	ck_assert_uint_gt(node_table_changes(T), c);
	c = node_table_changes(T);
	node_table_unhash(T, d);
	ck_assert_uint_gt(node_table_changes(T), c);
	c = node_table_changes(T);
	node_table_reserve_ids(T, node_table_next_id(T) + 10);
	ck_assert_uint_gt(node_table_changes(T), c);
	c = node_table_changes(T);
	node_table_reserve_ids(T, 2); /* lower: nothing */
	ck_assert_uint_eq(node_table_changes(T), c);

	/* The visit sees what the snapshot does, and only the newest `max`. */
	lookup(ROOT, "x", S_IFREG | 0644, 32);
	lookup(ROOT, "y", S_IFREG | 0644, 33);
	g_autoptr(GArray) snap = node_table_snapshot(T);
	ck_assert_uint_eq(snap->len, 2);
	g_autoptr(GArray) last = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	ck_assert_uint_eq(node_table_visit(T, 1, visit_ids, last), node_table_changes(T));
	ck_assert_uint_eq(last->len, 1);
	ck_assert_uint_eq(g_array_index(last, uint64_t, 0),
			  g_array_index(snap, struct node_record_info, 1).nodeid);
}
END_TEST

START_TEST(test_record_not_kept_for_deleted_files)
{
	struct node *n = lookup_ref(ROOT, "a", S_IFREG, 10);
	uint64_t id = n->nodeid;
	node_table_unhash(T, n); /* unlink */
	node_table_forget(T, id, 1);
	node_put(T, n);
	struct node_record_info rec;
	ck_assert(!node_table_find_record(T, id, &rec));
	n = lookup(ROOT, "a", S_IFREG, 10);
	ck_assert_uint_gt(n->nodeid, id); /* ext4 reused the inode number: another file */
	node_table_forget(T, n->nodeid, 1);
}
END_TEST

START_TEST(test_records_bounded)
{
	node_table_set_record_max(T, 10);
	uint64_t first = 0;
	for (int i = 0; i < 25; i++) {
		struct node *n = lookup(ROOT, "a", S_IFREG, 100 + (ino_t)i);
		if (i == 0)
			first = n->nodeid;
		node_table_forget(T, n->nodeid, 1);
	}
	struct node_table_stats st;
	node_table_stats(T, &st);
	ck_assert_uint_eq(st.records, 10);
	struct node_record_info rec;
	ck_assert(!node_table_find_record(T, first, &rec)); /* the oldest went first */
	ck_assert(node_table_find_record(T, first + 24, &rec));
	g_free(rec.name);
	node_table_set_record_max(T, 0);
	node_table_stats(T, &st);
	ck_assert_uint_eq(st.records, 0);
}
END_TEST

static bool stop_at_name(struct node *n, void *data)
{
	g_ptr_array_add(g_ptr_array_index((GPtrArray *)data, 1), n);
	return strcmp(n->name, g_ptr_array_index((GPtrArray *)data, 0)) == 0;
}

static const struct path_case {
	const char *stop_name; /* NULL: no stop callback; "" stops at the root */
	const char *want;
	const char *want_stop; /* NULL: *stop_at stays NULL */
	unsigned int calls;    /* stop callback calls */
} path_cases[] = {
	{NULL, "a/b/c", NULL, 0}, {"nothing", "a/b/c", NULL, 4},
	{"", "a/b/c", "", 4},	  {"a", "b/c", "a", 3},
	{"b", "c", "b", 2},	  {"c", "", "c", 1},
};

START_TEST(test_path)
{
	const struct path_case *pc = &path_cases[_i];
	struct node *a = lookup(ROOT, "a", S_IFDIR, 1);
	struct node *b = lookup(a, "b", S_IFDIR, 2);
	struct node *c = lookup(b, "c", S_IFREG, 3);
	g_autoptr(GPtrArray) visited = g_ptr_array_new();
	GPtrArray *data = g_ptr_array_new();
	struct node *stop_at = (struct node *)&data; /* must be overwritten */
	g_autofree char *root_path = node_path(T, ROOT, NULL, NULL, NULL);
	char *path;

	ck_assert_str_eq(root_path, "");
	g_ptr_array_add(data, (void *)pc->stop_name);
	g_ptr_array_add(data, visited);
	path = node_path(T, c, pc->stop_name ? stop_at_name : NULL, data, &stop_at);
	ck_assert_str_eq(path, pc->want);
	ck_assert_uint_eq(visited->len, pc->calls);
	if (pc->calls)
		ck_assert_ptr_eq(g_ptr_array_index(visited, 0), c); /* c itself first */
	if (!pc->want_stop) {
		ck_assert_ptr_null(stop_at);
	} else {
		ck_assert_ptr_nonnull(stop_at);
		ck_assert_str_eq(stop_at->name, pc->want_stop);
		uint64_t before = stop_at->refcount;
		node_put(T, stop_at);
		ck_assert_uint_eq(stop_at->refcount, before - 1); /* it came with a reference */
	}
	g_free(path);

	/* Without stop_at, no reference is taken. */
	uint64_t before = b->refcount;
	g_ptr_array_set_size(visited, 0);
	g_ptr_array_index(data, 0) = "b";
	path = node_path(T, c, stop_at_name, data, NULL);
	ck_assert_str_eq(path, "c");
	ck_assert_uint_eq(b->refcount, before);
	g_free(path);
	g_ptr_array_unref(data);
}
END_TEST

START_TEST(test_parent_name)
{
	struct node *a = lookup(ROOT, "a", S_IFDIR, 1);
	struct node *b = lookup(a, "b", S_IFREG, 2);
	char *name = NULL;
	struct node *p = node_parent_name(T, b, &name);

	ck_assert_ptr_eq(p, a);
	ck_assert_str_eq(name, "b");
	ck_assert_uint_eq(a->refcount, 3); /* kernel + child + ours */
	node_put(T, p);
	g_free(name);
	ck_assert_ptr_null(node_parent_name(T, ROOT, &name));
	ck_assert_str_eq(name, "");
	g_free(name);
	ck_assert_ptr_eq(node_parent_name(T, b, NULL), a);
	node_put(T, a);
}
END_TEST

START_TEST(test_move)
{
	struct node *a = lookup(ROOT, "a", S_IFDIR, 1);
	struct node *b = lookup(ROOT, "b", S_IFDIR, 2);
	struct node *c = lookup(a, "c", S_IFREG, 3);
	char *path;

	node_table_forget(T, a->nodeid, 1);
	ck_assert_int_eq(node_state(T, a), NODE_PINNED);
	node_table_move(T, c, b, "d");
	ck_freed(2); /* a was pinned only by c */
	ck_assert_ptr_eq(c->parent, b);
	ck_assert_str_eq(c->name, "d");
	ck_assert_uint_eq(b->refcount, 2);
	path = node_path(T, c, NULL, NULL, NULL);
	ck_assert_str_eq(path, "b/d");
	g_free(path);
	ck_stats(3, 0);

	/* Within one directory: the parent's count is unchanged, nothing freed. */
	node_table_forget(T, b->nodeid, 1);
	ck_assert_int_eq(node_state(T, b), NODE_PINNED);
	node_table_move(T, c, b, "e");
	ck_assert_uint_eq(b->refcount, 1);
	ck_assert_int_eq(node_state(T, b), NODE_PINNED);
	ck_assert_str_eq(c->name, "e");
	ck_freed(2);

	/* Moving the last child out frees a pinned chain, innermost first. */
	struct node *x = lookup(b, "x", S_IFDIR, 4);
	struct node *y = lookup(x, "y", S_IFDIR, 5);
	struct node *z = lookup(y, "z", S_IFREG, 6);
	node_table_forget(T, x->nodeid, 1);
	node_table_forget(T, y->nodeid, 1);
	node_table_forget(T, c->nodeid, 1);
	ck_freed(2, 4);
	ck_stats(2, 3); /* root and z live; b, x, y pinned */
	node_table_move(T, z, ROOT, "z");
	ck_freed(2, 4, 6, 5, 3); /* y, x, then b (pinned only by x) */
	ck_stats(2, 0);
	ck_assert_uint_eq(ROOT->refcount, 3);
}
END_TEST

#define DEPTH 20000

START_TEST(test_deep_chain)
{
	uint64_t *ids = g_new(uint64_t, DEPTH);
	struct node *parent = ROOT, *leaf = NULL;
	char *path;

	for (int i = 0; i < DEPTH; i++) {
		leaf = lookup(parent, "d", S_IFDIR, 100 + i);
		ids[i] = leaf->nodeid;
		parent = leaf;
	}
	ck_stats(DEPTH + 1, 0);
	path = node_path(T, leaf, NULL, NULL, NULL);
	ck_assert_uint_eq(strlen(path), 2 * DEPTH - 1);
	ck_assert(g_str_has_prefix(path, "d/d/"));
	ck_assert(g_str_has_suffix(path, "/d/d"));
	g_free(path);

	for (int i = 0; i < DEPTH - 1; i++)
		node_table_forget(T, ids[i], 1);
	ck_stats(2, DEPTH - 1);
	ck_assert_uint_eq(freed_ids->len, 0);

	node_table_forget(T, ids[DEPTH - 1], 1); /* one cascade, 20,000 levels */
	ck_assert_uint_eq(freed_ids->len, DEPTH);
	for (int i = 0; i < DEPTH; i++)
		ck_assert_uint_eq(g_array_index(freed_ids, uint64_t, i), ids[DEPTH - 1 - i]);
	ck_stats(1, 0);
	ck_assert_uint_eq(ROOT->refcount, 2);
	g_free(ids);
}
END_TEST

START_TEST(test_table_free_destroys_all)
{
	struct node *d = lookup(ROOT, "d", S_IFDIR, 1);

	lookup(d, "f", S_IFREG, 2);
	node_table_forget(T, d->nodeid, 1);
	node_discard(T, node_new("x", S_IFREG, key(3)));
	ck_assert_int_eq(n_discarded, 1);
	node_table_free(T);
	T = node_table_new(record_destroy); /* for teardown */
	ck_assert_uint_eq(freed_ids->len, 3);
	uint64_t sum = 0;
	for (guint i = 0; i < freed_ids->len; i++)
		sum += g_array_index(freed_ids, uint64_t, i);
	ck_assert_uint_eq(sum, 1 + 2 + 3);
}
END_TEST

/* ---- threads ---- */

#define N_THREADS 4
#define N_OPS	  100000
#define N_DIRS	  3
#define N_FILES	  8
#define MAX_REFS  24

static gint thread_destroyed;
static gint workers_done;

static void count_destroy(struct node *n)
{
	g_atomic_int_inc(&thread_destroyed);
}

struct owned {
	uint64_t nodeid;
	uint64_t count;
};

struct worker {
	struct node_table *t;
	GRand *rand;
	GArray *lookups;  /* struct owned: what this thread's "kernel" looked up */
	GPtrArray *refs;  /* references this thread holds */
	uint64_t last_id; /* the highest nodeid this thread saw */
	int allocated;	  /* node_new() calls */
	int errors;
};

/* Runs under the table lock: reads immutable fields only. */
static bool stop_at_dir(struct node *n, void *data)
{
	return n->type == S_IFDIR && (n->nodeid & 1);
}

static void own(struct worker *w, uint64_t nodeid)
{
	for (guint i = 0; i < w->lookups->len; i++) {
		struct owned *o = &g_array_index(w->lookups, struct owned, i);
		if (o->nodeid == nodeid) {
			o->count++;
			return;
		}
	}
	struct owned o = {nodeid, 1};
	g_array_append_val(w->lookups, o);
}

/* Takes back up to `max` of one random owned lookup; returns the item to forget. */
static struct node_forget_item disown(struct worker *w, uint64_t max)
{
	guint i = g_rand_int_range(w->rand, 0, w->lookups->len);
	struct owned *o = &g_array_index(w->lookups, struct owned, i);
	uint64_t c = 1 + g_rand_int_range(w->rand, 0, MIN(o->count, max));
	struct node_forget_item it = {o->nodeid, c};

	o->count -= c;
	if (o->count == 0)
		g_array_remove_index_fast(w->lookups, i);
	return it;
}

static struct node *random_ref(struct worker *w, mode_t type)
{
	if (w->refs->len == 0)
		return NULL;
	struct node *n = g_ptr_array_index(w->refs, g_rand_int_range(w->rand, 0, w->refs->len));
	return (type && n->type != type) ? NULL : n;
}

static void keep(struct worker *w, struct node *n)
{
	if (node_state(w->t, n) == NODE_FREED)
		w->errors++;
	g_ptr_array_add(w->refs, n);
	if (w->refs->len > MAX_REFS)
		node_put(w->t, g_ptr_array_steal_index_fast(w->refs, 0));
}

static void worker_lookup(struct worker *w, bool dir)
{
	struct node *parent = dir ? node_table_root(w->t) : random_ref(w, S_IFDIR);
	mode_t type = dir ? S_IFDIR : S_IFREG;
	ino_t ino = dir ? 1000 + g_rand_int_range(w->rand, 0, N_DIRS)
			: 2000 + g_rand_int_range(w->rand, 0, N_FILES);
	struct node *n;

	if (!parent)
		return;
	/* Now and then a reused inode number: same key, other type. */
	if (g_rand_int_range(w->rand, 0, 50) == 0 && !dir)
		type = S_IFLNK;
	w->allocated++;
	n = node_table_insert_lookup(w->t, parent, node_new("x", type, key(ino)));
	if (node_state(w->t, n) != NODE_LIVE)
		w->errors++;
	own(w, n->nodeid);
	w->last_id = MAX(w->last_id, n->nodeid);
	if (dir || g_rand_boolean(w->rand))
		keep(w, n);
	else
		node_put(w->t, n);
}

static void worker_forget(struct worker *w)
{
	struct node_forget_item items[4];
	size_t n = 0;

	if (w->lookups->len == 0)
		return;
	if (g_rand_boolean(w->rand)) {
		items[0] = disown(w, 3);
		node_table_forget(w->t, items[0].nodeid, items[0].count);
		return;
	}
	while (n < G_N_ELEMENTS(items) && w->lookups->len > 0)
		items[n++] = disown(w, 1); /* may pick one nodeid twice */
	node_table_forget_batch(w->t, items, n);
}

static void worker_misc(struct worker *w, int op)
{
	struct node *n = random_ref(w, 0), *d, *stop_at;
	char *path;

	switch (op) {
	case 0: /* a request on some nodeid, maybe freed meanwhile */
		n = node_table_get(w->t,
				   MAX(1, (int64_t)w->last_id - g_rand_int_range(w->rand, -2, 40)));
		if (n)
			keep(w, n);
		break;
	case 1: /* end of a request or handle */
		if (w->refs->len)
			node_put(w->t,
				 g_ptr_array_steal_index_fast(
					 w->refs, g_rand_int_range(w->rand, 0, w->refs->len)));
		break;
	case 2:
		if (n && !n->root && g_rand_int_range(w->rand, 0, 8) == 0)
			node_table_unhash(w->t, n);
		break;
	case 3:
		if (!n)
			break;
		path = node_path(w->t, n, g_rand_boolean(w->rand) ? stop_at_dir : NULL, NULL,
				 &stop_at);
		if (stop_at)
			keep(w, stop_at);
		g_free(path);
		break;
	case 4: /* rename of a file into another directory (files have no children: no cycles) */
		d = random_ref(w, S_IFDIR);
		if (n && d && !n->root && n->type != S_IFDIR)
			node_table_move(w->t, n, d, "y");
		break;
	case 5: /* LOOKUP of "." */
		if (n) {
			node_table_add_lookup(w->t, n);
			own(w, n->nodeid);
		}
		break;
	}
}

static gpointer worker_main(gpointer data)
{
	struct worker *w = data;

	for (int i = 0; i < N_OPS; i++) {
		int op = g_rand_int_range(w->rand, 0, 10);

		if (op < 1)
			worker_lookup(w, true);
		else if (op < 3)
			worker_lookup(w, false);
		else if (op < 5)
			worker_forget(w);
		else if (op < 10)
			worker_misc(w, g_rand_int_range(w->rand, 0, 6));
	}
	/* Give everything back: the table must end with the root alone. */
	while (w->refs->len)
		node_put(w->t, g_ptr_array_steal_index_fast(w->refs, 0));
	while (w->lookups->len) {
		struct owned o = g_array_index(w->lookups, struct owned, 0);
		node_table_forget(w->t, o.nodeid, o.count);
		g_array_remove_index_fast(w->lookups, 0);
	}
	g_atomic_int_inc(&workers_done);
	return NULL;
}

START_TEST(test_threads)
{
	struct node_table *t = node_table_new(count_destroy);
	struct worker w[N_THREADS];
	GThread *th[N_THREADS];
	struct node_table_stats st;
	int allocated = 0, checks = 0;

	thread_destroyed = 0;
	workers_done = 0;
	for (int i = 0; i < N_THREADS; i++) {
		w[i] = (struct worker){
			.t = t,
			.rand = g_rand_new_with_seed(0x5eed + i),
			.lookups = g_array_new(FALSE, FALSE, sizeof(struct owned)),
			.refs = g_ptr_array_new(),
		};
		th[i] = g_thread_new("worker", worker_main, &w[i]);
	}
	/* Meanwhile, the counters must stay consistent at every instant. */
	while (g_atomic_int_get(&workers_done) < N_THREADS) {
		node_table_stats(t, &st);
		ck_assert_uint_eq(st.total, st.live + st.pinned);
		checks++;
	}
	for (int i = 0; i < N_THREADS; i++) {
		g_thread_join(th[i]);
		ck_assert_int_eq(w[i].errors, 0);
		allocated += w[i].allocated;
		g_rand_free(w[i].rand);
		g_array_unref(w[i].lookups);
		g_ptr_array_unref(w[i].refs);
	}
	node_table_stats(t, &st);
	ck_assert_uint_eq(st.live, 1);
	ck_assert_uint_eq(st.pinned, 0);
	ck_assert_uint_eq(st.total, 1);
	ck_assert_uint_eq(node_table_root(t)->refcount, 2);
	ck_assert_int_gt(allocated, 10000);
	ck_assert_int_gt(checks, 0);
	ck_assert_int_eq(g_atomic_int_get(&thread_destroyed), allocated);
	node_table_free(t);
	ck_assert_int_eq(g_atomic_int_get(&thread_destroyed), allocated + 1);
}
END_TEST

static Suite *node_suite(bool forking)
{
	Suite *s = suite_create("node");
	TCase *tc = tcase_create("table");
	TCase *th = tcase_create("threads");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_root);
	tcase_add_test(tc, test_same_key_same_node);
	tcase_add_test(tc, test_different_key);
	tcase_add_test(tc, test_same_key_other_type);
	tcase_add_test(tc, test_unhash);
	tcase_add_test(tc, test_upper_identity);
	tcase_add_test(tc, test_child_forgotten_first);
	tcase_add_test(tc, test_parent_forgotten_first);
	tcase_add_test(tc, test_forget_with_handle);
	tcase_add_test(tc, test_lock_counts);
	tcase_add_test(tc, test_forget_batch);
	tcase_add_test(tc, test_forget_unknown);
	tcase_add_test(tc, test_underflow_clamps);
	tcase_add_test(tc, test_over_forget_never_aborts);
	if (forking) /* the abort would take the whole runner down otherwise */
		tcase_add_test_raise_signal(tc, test_underflow_aborts, SIGABRT);
	tcase_add_test(tc, test_pinned_lookup_again);
	tcase_add_test(tc, test_ids_never_reused);
	tcase_add_test(tc, test_ids_exhausted);
	tcase_add_test(tc, test_record_gives_the_same_id_back);
	tcase_add_test(tc, test_record_not_kept_for_deleted_files);
	tcase_add_test(tc, test_records_bounded);
	tcase_add_loop_test(tc, test_path, 0, G_N_ELEMENTS(path_cases));
	tcase_add_test(tc, test_parent_name);
	tcase_add_test(tc, test_records_carried_to_another_table);
	tcase_add_test(tc, test_key_check);
	tcase_add_test(tc, test_changes_counter);
	tcase_add_test(tc, test_move);
	tcase_add_test(tc, test_deep_chain);
	tcase_add_test(tc, test_table_free_destroys_all);
	suite_add_tcase(s, tc);

	tcase_set_timeout(th, 300);
	tcase_add_test(th, test_threads);
	suite_add_tcase(s, th);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(NULL);
	int failed;

	srunner_add_suite(sr, node_suite(srunner_fork_status(sr) != CK_NOFORK));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
