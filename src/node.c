// SPDX-License-Identifier: GPL-2.0-or-later
/* node.c - the node table: nodeid and identity maps, lookup counts, references and lifetimes. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "node.h"
#include "records.h"

/*
 * Nodeids are 64-bit, handed out from a counter starting at 2 (the root is 1) and never reused
 * within a table. A node's generation is the table's generation when its nodeid was handed out
 * (node_table_set_generation(): one per mount), kept in its record and given back with the
 * nodeid: a handle of an earlier mount whose nodeid this mount hands out again (its records were
 * lost) names another generation, which the kernel refuses (ESTALE). The root's is 0, as the
 * kernel's root inode has it.
 */
#define NODE_GENERATION_DEFAULT 1

#ifdef NDEBUG
#define ABORT_ON_UNDERFLOW_DEFAULT false
#else
#define ABORT_ON_UNDERFLOW_DEFAULT true
#endif

struct node_table {
	/* The table lock; see node.h for what it protects. Readers (a lookup by nodeid, a parent
	 * and name, a path) share it; whatever changes the maps, nlookup, parent or name, or takes
	 * a node's count to 0, holds it exclusively. */
	GRWLock lock;
	/* &node->nodeid -> node, for every inserted node not yet freed (hashed or not). */
	GHashTable *by_id;
	/* &node->key -> node, for hashed nodes only; at most one hashed node per key. */
	GHashTable *by_key;
	/* &node->upper -> node, for hashed nodes with an upper inode other than their key. */
	GHashTable *by_upper;
	uint64_t next_id;
	uint32_t generation; /* of nodeids handed out from now on */
	/* Kept incrementally on every state change so node_table_stats() is O(1). */
	uint64_t n_live;
	uint64_t n_pinned;
	struct node *root;
	void (*destroy)(struct node *);
	bool abort_on_underflow;

	/* Records of nodes the kernel forgot (see node.h, FORGOTTEN NODES), oldest first. */
	struct records *records;
	size_t record_max;
	/* Acquisitions of the table lock, exclusive and shared (atomic): what a request costs in
	 * locks, for the status query. */
	uint64_t locks;
	uint64_t read_locks;
	/* Bumped by every change to what node_table_visit() shows (export_store.h saves when it
	 * moved). */
	uint64_t changes;
};

/*
 * What one locked section leaves to do after the unlock: nodes to destroy and an accounting bug to
 * report. Neither the destroy callback nor a log write (a syscall) runs under the table lock.
 */
struct pending {
	GPtrArray *dead; /* freed nodes, children before their parents; NULL while empty */
	unsigned int bugs;
	const char *what; /* the first bug seen */
	uint64_t nodeid;
	uint64_t have;
	uint64_t drop;
	bool abort;
	/* FORGETs of more than the node's lookups: the count comes from a request, so this is bad
	 * input, not a bug of ours; logged rate-limited, never an abort (node.h). */
	unsigned int bad_forgets;
	uint64_t bad_nodeid;
	uint64_t bad_have;
	uint64_t bad_drop;
};

static void lock_table(struct node_table *t)
{
	g_rw_lock_writer_lock(&t->lock);
	__atomic_fetch_add(&t->locks, 1, __ATOMIC_RELAXED);
}

static void unlock_table(struct node_table *t)
{
	g_rw_lock_writer_unlock(&t->lock);
}

static void read_lock_table(struct node_table *t)
{
	g_rw_lock_reader_lock(&t->lock);
	__atomic_fetch_add(&t->read_locks, 1, __ATOMIC_RELAXED);
}

static void read_unlock_table(struct node_table *t)
{
	g_rw_lock_reader_unlock(&t->lock);
}

/*
 * REFCOUNTS are atomic, so a reference can be taken under the shared lock (the node cannot be
 * freed meanwhile: freeing needs the exclusive lock) and dropped without any lock while it is
 * not the last one. Only a count that may reach 0 is dropped under the exclusive lock, where
 * nothing can take a new reference: the classic "decrement unless it would hit zero" pattern.
 */
static uint64_t refs(const struct node *n)
{
	return __atomic_load_n(&n->refcount, __ATOMIC_ACQUIRE);
}

static void ref_inc(struct node *n)
{
	__atomic_fetch_add(&n->refcount, 1, __ATOMIC_RELAXED);
}

/*
 * Drops one reference if that cannot be the last one nor go below the node's floor (the
 * kernel's share, the root's permanent reference: at most 1 for another node, 2 for the root);
 * false when the caller must go the locked way. A count of 2 on a node that is not the root may
 * go to 1 whatever its nlookup: with nlookup 0 that 1 is a reference still held, and a FORGET
 * racing with this changes the count too, so the compare-and-swap fails and is retried.
 */
static bool ref_dec_fast(struct node *n)
{
	uint64_t floor = n->root ? 3 : 2; /* the smallest count this may decrement */
	uint64_t old = refs(n);

	while (old >= floor)
		if (__atomic_compare_exchange_n(&n->refcount, &old, old - 1, true, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

static guint key_hash(gconstpointer p)
{
	const struct node_key *k = p;
	uint64_t h = (uint64_t)k->dev * 0x9e3779b97f4a7c15ULL ^ (uint64_t)k->ino;

	/* Final mix of MurmurHash3: inode numbers are dense, spread them over all bits. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (guint)h;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
	const struct node_key *x = a, *y = b;

	return x->dev == y->dev && x->ino == y->ino;
}

/* Whether a known node or record (key a, type ta) stands for the file just found (b, tb). */
static bool same_file(const struct node_key *a, mode_t ta, const struct node_key *b, mode_t tb)
{
	return ta == tb && (a->check == 0 || b->check == 0 || a->check == b->check);
}

/* With the exclusive lock, or the shared one (nlookup may then grow, never from 0). */
static enum node_state state_locked(const struct node *n)
{
	if (refs(n) == 0)
		return NODE_FREED;
	return __atomic_load_n(&n->nlookup, __ATOMIC_RELAXED) > 0 ? NODE_LIVE : NODE_PINNED;
}

/* Moves n's contribution to the counters from state `old` to its current state. */
static void account(struct node_table *t, const struct node *n, enum node_state old)
{
	enum node_state now = state_locked(n);

	if (now == old)
		return;
	if (old == NODE_LIVE)
		t->n_live--;
	else if (old == NODE_PINNED)
		t->n_pinned--;
	if (now == NODE_LIVE)
		t->n_live++;
	else if (now == NODE_PINNED)
		t->n_pinned++;
}

static void record_bug(struct node_table *t, struct pending *p, const char *what, uint64_t nodeid,
		       uint64_t have, uint64_t drop)
{
	if (p->bugs++ == 0) {
		p->what = what;
		p->nodeid = nodeid;
		p->have = have;
		p->drop = drop;
	}
	p->abort = t->abort_on_underflow;
}

static void record_bad_forget(struct pending *p, uint64_t nodeid, uint64_t have, uint64_t drop)
{
	if (p->bad_forgets++ == 0) {
		p->bad_nodeid = nodeid;
		p->bad_have = have;
		p->bad_drop = drop;
	}
}

/*
 * The table frees only what it allocated: the name, the mutex and the struct. `stack` and the fds
 * in it belong to the overlay modules; `destroy` releases them.
 */
struct alias {
	uint64_t parent;
	char name[];
};

static void free_node(struct node_table *t, struct node *n)
{
	if (t && t->destroy)
		t->destroy(n);
	if (n->aliases)
		g_ptr_array_free(n->aliases, TRUE);
	g_mutex_clear(&n->lock);
	g_free(n->name);
	g_free(n);
}

/* Called with the table lock dropped. */
static void finish(struct node_table *t, struct pending *p)
{
	if (p->bad_forgets)
		log_ratelimited(
			LOG_WARNING,
			"FORGET of more than was looked up: lookup count underflow on nodeid "
			"%" PRIu64 " (count %" PRIu64 ", dropping %" PRIu64
			"; %u such in this request), clamped",
			p->bad_nodeid, p->bad_have, p->bad_drop, p->bad_forgets);
	if (p->bugs) {
		log_msg(LOG_ERR,
			"node table bug: %s on nodeid %" PRIu64 " (count %" PRIu64
			", dropping %" PRIu64 "; %u such errors in this call), clamped",
			p->what, p->nodeid, p->have, p->drop, p->bugs);
		if (p->abort)
			abort();
	}
	if (!p->dead)
		return;
	for (guint i = 0; i < p->dead->len; i++)
		free_node(t, g_ptr_array_index(p->dead, i));
	g_ptr_array_unref(p->dead);
	p->dead = NULL;
}

static void unhash_locked(struct node_table *t, struct node *n)
{
	if (!n->hashed)
		return;
	if (g_hash_table_lookup(t->by_key, &n->key) == n)
		g_hash_table_remove(t->by_key, &n->key);
	if (n->upper.ino && g_hash_table_lookup(t->by_upper, &n->upper) == n)
		g_hash_table_remove(t->by_upper, &n->upper);
	n->upper = (struct node_key){0};
	n->hashed = false;
	t->changes++;
}

static void record_drop_locked(struct node_table *t, uint64_t nodeid)
{
	if (records_remove(t->records, nodeid))
		t->changes++;
}

static void records_trim_locked(struct node_table *t)
{
	while (records_count(t->records) > t->record_max && records_remove_oldest(t->records))
		t->changes++;
}

/*
 * Adds a record, replacing one with the same identity or nodeid; the oldest goes beyond the
 * bound. A record the store cannot take (a name past RECORDS_NAME_MAX, no memory) is not kept:
 * that file's handles answer ESTALE once it is forgotten, as past the bound.
 */
static void record_insert_locked(struct node_table *t, const struct node_record_info *info)
{
	struct node_record_info old;
	if (records_find_key(t->records, &info->key, &old))
		record_drop_locked(t, old.nodeid);
	record_drop_locked(t, info->nodeid);
	if (records_insert(t->records, info) == 0)
		t->changes++;
	records_trim_locked(t);
}

/* What a record of n would say (name borrowed from n). */
static struct node_record_info info_of(const struct node *n)
{
	return (struct node_record_info){.nodeid = n->nodeid,
					 .parent = n->parent->nodeid,
					 .key = n->key,
					 .type = n->type,
					 .generation = (uint32_t)n->generation,
					 .name = n->name};
}

/* Keeps what is needed to find a forgotten node again: its parent's nodeid, its name and its
 * identity. Only for files that still exist (hashed); the oldest record goes beyond the bound. */
static void record_add_locked(struct node_table *t, const struct node *n)
{
	if (!n->hashed || n->root || !n->parent || t->record_max == 0)
		return;
	struct node_record_info info = info_of(n);
	record_insert_locked(t, &info);
}

static void unlink_locked(struct node_table *t, struct node *n, struct pending *p)
{
	record_add_locked(t, n);
	unhash_locked(t, n);
	g_hash_table_remove(t->by_id, &n->nodeid);
	t->n_pinned--;
	if (!p->dead)
		p->dead = g_ptr_array_new();
	g_ptr_array_add(p->dead, n);
}

/*
 * Drops one reference on n. A node whose count reaches 0 leaves the table and drops the
 * reference it held on its parent, which may free the parent in turn: a loop, not recursion,
 * since chains can be thousands of levels deep. The kernel's share (nlookup > 0) and the root's
 * permanent reference are a floor the count never goes below.
 */
static void release_locked(struct node_table *t, struct node *n, struct pending *p)
{
	while (n) {
		uint64_t floor = (n->nlookup > 0 ? 1 : 0) + (n->root ? 1 : 0);
		struct node *parent;

		/* Under the exclusive lock: only other droppers can change the count now, and they
		 * never take it below 1 (ref_dec_fast). */
		uint64_t old = refs(n);
		if (old <= floor) {
			record_bug(t, p, "reference count underflow", n->nodeid, old, 1);
			return;
		}
		if (__atomic_sub_fetch(&n->refcount, 1, __ATOMIC_ACQ_REL) > 0)
			return;
		unlink_locked(t, n, p);
		parent = n->parent;
		n->parent = NULL; /* destroy() must not follow it: the parent may be freed next */
		n = parent;
	}
}

static void add_lookup_locked(struct node_table *t, struct node *n)
{
	enum node_state old = state_locked(n);

	if (n->nlookup++ == 0)
		ref_inc(n); /* the kernel's share: PINNED -> LIVE */
	account(t, n, old);
}

static void forget_locked(struct node_table *t, uint64_t nodeid, uint64_t count, struct pending *p)
{
	struct node *n = g_hash_table_lookup(t->by_id, &nodeid);
	enum node_state old;

	if (!n || count == 0)
		return;
	if (count > n->nlookup) {
		record_bad_forget(p, nodeid, n->nlookup, count);
		count = n->nlookup;
		if (count == 0)
			return;
	}
	old = state_locked(n);
	n->nlookup -= count;
	if (n->nlookup > 0)
		return;
	account(t, n, old); /* LIVE -> PINNED, then the kernel's share goes */
	release_locked(t, n, p);
}

struct node *node_new(const char *name, mode_t type, struct node_key key)
{
	struct node *n = g_new0(struct node, 1);

	n->type = type & S_IFMT;
	n->key = key;
	n->name = g_strdup(name ? name : "");
	n->stack = NULL;
	n->retired = NULL;
	n->unlinked_fd = NULL;
	g_mutex_init(&n->lock);
	return n;
}

void node_discard(struct node_table *t, struct node *n)
{
	if (n)
		free_node(t, n);
}

struct node_table *node_table_new(void (*destroy)(struct node *))
{
	struct node_table *t = g_new0(struct node_table, 1);
	struct node *root = node_new("", S_IFDIR, (struct node_key){0});

	g_rw_lock_init(&t->lock);
	t->by_id = g_hash_table_new(g_int64_hash, g_int64_equal);
	t->by_key = g_hash_table_new(key_hash, key_equal);
	t->by_upper = g_hash_table_new(key_hash, key_equal);
	t->records = records_new();
	t->record_max = NODE_RECORD_MAX_DEFAULT;
	t->next_id = NODE_ROOT_ID + 1;
	t->generation = NODE_GENERATION_DEFAULT;
	t->destroy = destroy;
	t->abort_on_underflow = ABORT_ON_UNDERFLOW_DEFAULT;

	/*
	 * The root is reachable by nodeid only (its key is not known here and it is never hashed):
	 * LOOKUP of "." and ".." that lands on it goes through node_table_add_lookup(). It holds
	 * the kernel's share plus a permanent reference, so a FORGET can make it PINNED, never
	 * FREED.
	 */
	root->nodeid = NODE_ROOT_ID;
	root->generation = 0;
	root->root = true;
	root->nlookup = 1;
	root->refcount = 2;
	g_hash_table_insert(t->by_id, &root->nodeid, root);
	t->n_live = 1;
	t->root = root;
	return t;
}

void node_table_free(struct node_table *t)
{
	GPtrArray *all;
	GHashTableIter it;
	gpointer value;

	if (!t)
		return;
	lock_table(t);
	all = g_ptr_array_sized_new(g_hash_table_size(t->by_id));
	g_hash_table_iter_init(&it, t->by_id);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_ptr_array_add(all, value);
	g_hash_table_remove_all(t->by_key);
	g_hash_table_remove_all(t->by_upper);
	g_hash_table_remove_all(t->by_id);
	t->n_live = t->n_pinned = 0;
	unlock_table(t);

	/* Nodes go in no particular order, so no destroy() may see a dangling parent. */
	for (guint i = 0; i < all->len; i++)
		((struct node *)g_ptr_array_index(all, i))->parent = NULL;
	for (guint i = 0; i < all->len; i++)
		free_node(t, g_ptr_array_index(all, i));
	g_ptr_array_unref(all);

	records_free(t->records);
	g_hash_table_unref(t->by_key);
	g_hash_table_unref(t->by_upper);
	g_hash_table_unref(t->by_id);
	g_rw_lock_clear(&t->lock);
	g_free(t);
}

struct node *node_table_root(struct node_table *t)
{
	return t->root;
}

/* Puts fresh in the table under parent: a new nodeid, LIVE, plus the caller's reference.
 * -ENOSPC, nothing changed, when a new nodeid is needed and none is left (NODE_ID_LIMIT). */
static int insert_locked(struct node_table *t, struct node *parent, struct node *fresh)
{
	/* A file the kernel forgot gets its old nodeid back: handles that name it stay valid. */
	struct node_record_info rec;
	bool found = records_find_key(t->records, &fresh->key, &rec);
	if (found && same_file(&rec.key, rec.type, &fresh->key, fresh->type)) {
		fresh->nodeid = rec.nodeid;
		fresh->generation = rec.generation;
		record_drop_locked(t, rec.nodeid);
	} else {
		if (t->next_id >= NODE_ID_LIMIT)
			return -ENOSPC;
		if (found)
			record_drop_locked(t, rec.nodeid);
		fresh->nodeid = t->next_id++;
		fresh->generation = t->generation;
	}
	fresh->parent = parent;
	ref_inc(parent); /* the child's pin; the caller holds parent, so its state is unchanged
			  */
	fresh->nlookup = 1;
	fresh->refcount = 2; /* the kernel's share and the caller's */
	fresh->hashed = true;
	g_hash_table_insert(t->by_id, &fresh->nodeid, fresh);
	g_hash_table_insert(t->by_key, &fresh->key, fresh);
	t->n_live++;
	t->changes++;
	return 0;
}

static int find_alias_locked(const struct node *n, uint64_t parent, const char *name)
{
	for (guint i = 0; n->aliases && i < n->aliases->len; i++) {
		const struct alias *a = n->aliases->pdata[i];
		if (a->parent == parent && strcmp(a->name, name) == 0)
			return (int)i;
	}
	return -1;
}

/* Remembers another name of n (a hard link), unless it is n's own or known already. */
static void add_alias_locked(struct node *n, struct node *parent, const char *name)
{
	if ((n->parent == parent && strcmp(n->name, name) == 0) ||
	    find_alias_locked(n, parent->nodeid, name) >= 0)
		return;
	size_t len = strlen(name);
	struct alias *a = g_malloc(sizeof(*a) + len + 1);
	a->parent = parent->nodeid;
	memcpy(a->name, name, len + 1);
	if (!n->aliases)
		n->aliases = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(n->aliases, a);
}

void node_table_add_alias(struct node_table *t, struct node *n, struct node *parent,
			  const char *name)
{
	lock_table(t);
	add_alias_locked(n, parent, name);
	unlock_table(t);
}

bool node_table_take_alias(struct node_table *t, struct node *n, uint64_t skip_parent,
			   const char *skip_name, uint64_t *parent_out, char **name_out)
{
	bool found = false;
	lock_table(t);
	for (guint i = 0; n->aliases && i < n->aliases->len && !found; i++) {
		struct alias *a = n->aliases->pdata[i];
		if (a->parent == skip_parent && strcmp(a->name, skip_name) == 0)
			continue;
		*parent_out = a->parent;
		*name_out = g_strdup(a->name);
		g_ptr_array_remove_index_fast(n->aliases, i);
		found = true;
	}
	unlock_table(t);
	return found;
}

void node_table_drop_alias(struct node_table *t, struct node *n, uint64_t parent, const char *name)
{
	lock_table(t);
	int i = find_alias_locked(n, parent, name);
	if (i >= 0)
		g_ptr_array_remove_index_fast(n->aliases, (guint)i);
	unlock_table(t);
}

/*
 * An existing node keeps its parent and name: a second name of the same file (a hard link) does
 * not move it, it is remembered as an alias; renames go through node_table_move().
 */
/*
 * nlookup+1 on a LIVE node under the shared lock: it stays LIVE, so no counter or state moves.
 * Every other change of nlookup holds the exclusive lock, so the only concurrent writers are
 * other increments like this one. False when nlookup is 0 (PINNED -> LIVE takes the exclusive
 * lock: the kernel's share is a reference).
 */
static bool add_lookup_shared(struct node *n)
{
	uint64_t old = __atomic_load_n(&n->nlookup, __ATOMIC_RELAXED);

	while (old > 0)
		if (__atomic_compare_exchange_n(&n->nlookup, &old, old + 1, true, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

/*
 * The common case of an entry reply (a READDIRPLUS or LOOKUP of a file the kernel knows, by the
 * name the node has) changes nothing but counts: done under the shared lock. NULL when the
 * exclusive way is needed (a new node, a reused inode number, a check to learn, another name,
 * a PINNED node).
 */
static struct node *lookup_known_shared(struct node_table *t, struct node *parent,
					const struct node *fresh)
{
	read_lock_table(t);
	struct node *n = g_hash_table_lookup(t->by_key, &fresh->key);
	if (n && (!same_file(&n->key, n->type, &fresh->key, fresh->type) ||
		  (n->key.check == 0 && fresh->key.check != 0) || n->parent != parent ||
		  strcmp(n->name, fresh->name) != 0 || !add_lookup_shared(n)))
		n = NULL;
	if (n)
		ref_inc(n); /* the caller's */
	read_unlock_table(t);
	return n;
}

struct node *node_table_insert_lookup(struct node_table *t, struct node *parent, struct node *fresh)
{
	struct node *n = lookup_known_shared(t, parent, fresh);

	if (n) {
		node_discard(t, fresh);
		return n;
	}
	lock_table(t);
	n = g_hash_table_lookup(t->by_key, &fresh->key);
	if (n && !same_file(&n->key, n->type, &fresh->key, fresh->type)) {
		/* The inode number was reused by another file. */
		unhash_locked(t, n);
		n = NULL;
	}
	if (n) {
		/* Not part of the hashed key, read under the lock only: learnt when first known. */
		if (n->key.check == 0 && fresh->key.check != 0) {
			n->key.check = fresh->key.check;
			t->changes++;
		}
		add_lookup_locked(t, n);
		ref_inc(n); /* the caller's */
		add_alias_locked(n, parent, fresh->name);
	} else if (insert_locked(t, parent, fresh) == 0) {
		n = g_steal_pointer(&fresh);
	}
	unlock_table(t);

	if (!n)
		log_ratelimited(LOG_ERR,
				"no nodeid left below %" PRIu64 ": lookups of new files "
				"fail with ENOSPC until the next mount",
				NODE_ID_LIMIT);
	node_discard(t, fresh);
	return n;
}

void node_table_add_lookup(struct node_table *t, struct node *n)
{
	lock_table(t);
	add_lookup_locked(t, n);
	unlock_table(t);
}

struct node *node_table_get(struct node_table *t, uint64_t nodeid)
{
	struct node *n;

	read_lock_table(t);
	n = g_hash_table_lookup(t->by_id, &nodeid);
	if (n)
		ref_inc(n); /* in the map, so refcount > 0: the state does not change */
	read_unlock_table(t);
	return n;
}

struct node *node_ref(struct node_table *t, struct node *n)
{
	struct pending p = {0};

	/* The caller holds a reference, so no lock: the count cannot reach 0 meanwhile. */
	if (__atomic_fetch_add(&n->refcount, 1, __ATOMIC_RELAXED) == 0) {
		/* Freed or never inserted: a reference would resurrect nothing. */
		__atomic_fetch_sub(&n->refcount, 1, __ATOMIC_RELAXED);
		record_bug(t, &p, "reference to an unreferenced node", n->nodeid, 0, 0);
	}
	finish(t, &p);
	return n;
}

struct node *node_put(struct node_table *t, struct node *n)
{
	struct pending p = {0};

	if (!n || ref_dec_fast(n))
		return NULL;
	lock_table(t);
	release_locked(t, n, &p);
	unlock_table(t);
	finish(t, &p);
	return NULL;
}

void node_table_forget(struct node_table *t, uint64_t nodeid, uint64_t count)
{
	struct pending p = {0};

	lock_table(t);
	forget_locked(t, nodeid, count, &p);
	unlock_table(t);
	finish(t, &p);
}

/*
 * A nodeid freed by an earlier item of the same batch is no longer in the map, so a later item
 * for it is ignored like any unknown nodeid: the freed memory is only released after the unlock.
 */
void node_table_forget_batch(struct node_table *t, const struct node_forget_item *items, size_t n)
{
	struct pending p = {0};

	lock_table(t);
	for (size_t i = 0; i < n; i++)
		forget_locked(t, items[i].nodeid, items[i].count, &p);
	unlock_table(t);
	finish(t, &p);
}

void node_table_unhash(struct node_table *t, struct node *n)
{
	lock_table(t);
	unhash_locked(t, n);
	unlock_table(t);
}

void node_table_rekey(struct node_table *t, struct node *n, struct node_key key)
{
	lock_table(t);
	bool hashed = n->hashed;
	unhash_locked(t, n);
	n->key = key;
	if (hashed) {
		/* Another node or record of that identity stands for a file that has it no more. */
		struct node *other = g_hash_table_lookup(t->by_key, &n->key);
		if (other)
			unhash_locked(t, other);
		struct node_record_info rec;
		if (records_find_key(t->records, &n->key, &rec))
			record_drop_locked(t, rec.nodeid);
		g_hash_table_insert(t->by_key, &n->key, n);
		n->hashed = true;
		t->changes++;
	}
	unlock_table(t);
}

void node_table_set_upper(struct node_table *t, struct node *n, dev_t dev, ino_t ino)
{
	struct node_key up = {.dev = dev, .ino = ino};
	lock_table(t);
	if (n->hashed && !key_equal(&n->key, &up) && !key_equal(&n->upper, &up)) {
		if (n->upper.ino && g_hash_table_lookup(t->by_upper, &n->upper) == n)
			g_hash_table_remove(t->by_upper, &n->upper);
		/* Whoever had it stands for a file that has it no more. */
		struct node *other = g_hash_table_lookup(t->by_upper, &up);
		if (other) {
			g_hash_table_remove(t->by_upper, &up);
			other->upper = (struct node_key){0};
		}
		n->upper = up;
		g_hash_table_insert(t->by_upper, &n->upper, n);
	}
	unlock_table(t);
}

bool node_table_upper_key(struct node_table *t, dev_t dev, ino_t ino, mode_t type,
			  struct node_key *key)
{
	struct node_key up = {.dev = dev, .ino = ino};
	lock_table(t);
	struct node *n = g_hash_table_lookup(t->by_upper, &up);
	bool found = n && n->type == (type & S_IFMT);
	if (found)
		*key = n->key;
	unlock_table(t);
	return found;
}

bool node_table_known(struct node_table *t, dev_t dev, ino_t ino, mode_t type, bool upper,
		      struct node_key *key, bool *indexed)
{
	struct node_key k = {.dev = dev, .ino = ino};
	read_lock_table(t); /* lookups only */
	struct node *n = upper ? g_hash_table_lookup(t->by_upper, &k) : NULL;
	/* An upper inode as its own identity: only once its check is known (nothing to learn). */
	if (!n) {
		n = g_hash_table_lookup(t->by_key, &k);
		if (n && upper && n->key.check == 0)
			n = NULL;
	}
	bool found = n && n->type == (type & S_IFMT);
	if (found) {
		*key = n->key;
		*indexed = __atomic_load_n(&n->indexed, __ATOMIC_ACQUIRE);
	}
	read_unlock_table(t);
	return found;
}

bool node_table_find_record(struct node_table *t, uint64_t nodeid, struct node_record_info *out)
{
	lock_table(t);
	bool found = records_find_id(t->records, nodeid, out);
	if (found)
		out->name = g_strdup(out->name);
	unlock_table(t);
	return found;
}

static void copy_record(const struct node_record_info *info, void *data)
{
	records_insert(data, info);
}

void node_table_drop_record(struct node_table *t, uint64_t nodeid)
{
	lock_table(t);
	record_drop_locked(t, nodeid);
	unlock_table(t);
}

void node_table_records_on_file(struct node_table *t, int fd)
{
	lock_table(t);
	struct records *r = records_new_on(fd);
	/* Copied so that records carried over stay (none yet when called at mount). */
	records_foreach(t->records, copy_record, r);
	records_free(t->records);
	t->records = r;
	unlock_table(t);
}

void node_table_set_record_max(struct node_table *t, size_t max)
{
	lock_table(t);
	t->record_max = max;
	records_trim_locked(t);
	unlock_table(t);
}

/*
 * The new parent is referenced before the old one is released, so moving within one directory
 * never drops that directory to zero; the old parent may be freed (with its own ancestors) if
 * this child was all that pinned it. The caller holds n and new_parent and has ruled out moving
 * a directory under itself (which would make a cycle).
 */
void node_table_move(struct node_table *t, struct node *n, struct node *new_parent,
		     const char *new_name)
{
	struct pending p = {0};
	char *name = g_strdup(new_name);
	char *old_name;
	struct node *old_parent;

	lock_table(t);
	if (n->root || !new_parent) {
		record_bug(t, &p, "move of the root or to no parent", n->nodeid, 0, 0);
		unlock_table(t);
		finish(t, &p);
		g_free(name);
		return;
	}
	ref_inc(new_parent);
	old_parent = n->parent;
	n->parent = new_parent;
	old_name = n->name;
	n->name = name;
	t->changes++;
	release_locked(t, old_parent, &p);
	unlock_table(t);

	finish(t, &p);
	g_free(old_name);
}

struct node *node_parent_name(struct node_table *t, struct node *n, char **name_out)
{
	struct node *parent;

	read_lock_table(t);
	parent = n->parent;
	if (parent)
		ref_inc(parent);
	if (name_out)
		*name_out = g_strdup(n->name);
	read_unlock_table(t);
	return parent;
}

/*
 * Returns the node the path of n ends at: the first of n and its ancestors that `stop` accepts
 * (then *stopped is true), else the root (or the top of a chain with no parent). *len gets the
 * path's size with its NUL.
 */
static struct node *path_end_locked(struct node *n, bool (*stop)(struct node *, void *), void *data,
				    size_t *len, bool *stopped)
{
	size_t size = 0;

	*stopped = false;
	for (; n; n = n->parent) {
		if (stop && stop(n, data)) {
			*stopped = true;
			break;
		}
		if (n->root || !n->parent)
			break;
		size += strlen(n->name) + 1; /* the name and its '/' or the final NUL */
	}
	*len = size ? size : 1;
	return n;
}

/*
 * `stop` runs under the table lock, on n first and then on each ancestor: it must not block, take
 * the table lock or call into the table; it may read the node's immutable fields and its overlay
 * state atomically. Two passes over the chain (measure, then fill from the end) keep this
 * iterative and O(depth) for any depth.
 */
char *node_path(struct node_table *t, struct node *n, bool (*stop)(struct node *, void *),
		void *data, struct node **stop_at)
{
	struct node *end;
	size_t len, pos;
	bool stopped;
	char *buf;

	if (stop_at)
		*stop_at = NULL;
	read_lock_table(t);
	end = path_end_locked(n, stop, data, &len, &stopped);
	buf = g_malloc(len);
	pos = len - 1;
	buf[pos] = '\0';
	for (struct node *a = n; a != end; a = a->parent) {
		size_t l = strlen(a->name);

		pos -= l;
		memcpy(buf + pos, a->name, l);
		if (pos > 0)
			buf[--pos] = '/';
	}
	if (stopped && stop_at) {
		ref_inc(end);
		*stop_at = end;
	}
	read_unlock_table(t);
	return buf;
}

enum node_state node_state(struct node_table *t, struct node *n)
{
	enum node_state s;

	read_lock_table(t);
	s = state_locked(n);
	read_unlock_table(t);
	return s;
}

void node_table_stats(struct node_table *t, struct node_table_stats *out)
{
	read_lock_table(t);
	out->live = t->n_live;
	out->pinned = t->n_pinned;
	out->total = g_hash_table_size(t->by_id);
	out->records = records_count(t->records);
	out->record_bytes = records_bytes(t->records);
	out->record_name_bytes = records_name_bytes(t->records);
	out->records_file = records_file_backed(t->records);
	out->locks = __atomic_load_n(&t->locks, __ATOMIC_RELAXED);
	out->read_locks = __atomic_load_n(&t->read_locks, __ATOMIC_RELAXED);
	out->record_max = t->record_max;
	read_unlock_table(t);
}

void node_table_set_generation(struct node_table *t, uint32_t generation)
{
	lock_table(t);
	t->generation = generation;
	unlock_table(t);
}

uint64_t node_table_next_id(struct node_table *t)
{
	lock_table(t);
	uint64_t id = t->next_id;
	unlock_table(t);
	return id;
}

int node_table_reserve_ids(struct node_table *t, uint64_t next_id)
{
	if (next_id > NODE_ID_LIMIT)
		return -ERANGE;
	lock_table(t);
	if (next_id > t->next_id) {
		t->next_id = next_id;
		t->changes++;
	}
	unlock_table(t);
	return 0;
}

bool node_table_add_record(struct node_table *t, const struct node_record_info *info)
{
	bool ok = false;

	lock_table(t);
	if (t->record_max > 0 && info->nodeid > NODE_ROOT_ID && info->nodeid < t->next_id &&
	    !g_hash_table_contains(t->by_id, &info->nodeid) &&
	    !records_find_id(t->records, info->nodeid, NULL) &&
	    !g_hash_table_contains(t->by_key, &info->key)) {
		record_insert_locked(t, info);
		ok = true;
	}
	unlock_table(t);
	return ok;
}

static void add_info(const struct node_record_info *info, void *data)
{
	struct node_record_info copy = *info;
	copy.name = g_strdup(info->name);
	g_array_append_val((GArray *)data, copy);
}

static void clear_info(gpointer p)
{
	g_free(((struct node_record_info *)p)->name);
}

struct visit {
	size_t skip; /* the oldest entries not shown */
	node_table_visit_fn fn;
	void *data;
};

static void visit_one(const struct node_record_info *info, void *data)
{
	struct visit *v = data;
	if (v->skip > 0)
		v->skip--;
	else
		v->fn(info, v->data);
}

uint64_t node_table_visit(struct node_table *t, size_t max, node_table_visit_fn fn, void *data)
{
	lock_table(t);
	/* Every hashed node is in by_key and has a parent (the root is never hashed). */
	size_t total = records_count(t->records) + g_hash_table_size(t->by_key);
	struct visit v = {.skip = total > max ? total - max : 0, .fn = fn, .data = data};
	records_foreach(t->records, visit_one, &v);
	size_t skip = v.skip;
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, t->by_id);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		const struct node *n = value;
		if (!n->hashed || n->root || !n->parent)
			continue;
		struct node_record_info info = info_of(n);
		if (skip > 0)
			skip--;
		else
			fn(&info, data);
	}
	uint64_t changes = t->changes;
	records_release(t->records); /* the walk touched every record: out of the RSS again */
	unlock_table(t);
	return changes;
}

GArray *node_table_dir_ids(struct node_table *t)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	read_lock_table(t);
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, t->by_id);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		const struct node *n = value;
		if (S_ISDIR(n->type))
			g_array_append_val(out, n->nodeid);
	}
	read_unlock_table(t);
	return out;
}

GArray *node_table_snapshot(struct node_table *t)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(struct node_record_info));
	g_array_set_clear_func(out, clear_info);
	node_table_visit(t, SIZE_MAX, add_info, out);
	return out;
}

uint64_t node_table_changes(struct node_table *t)
{
	lock_table(t);
	uint64_t changes = t->changes;
	unlock_table(t);
	return changes;
}

void node_table_set_abort_on_underflow(struct node_table *t, bool on)
{
	lock_table(t);
	t->abort_on_underflow = on;
	unlock_table(t);
}
