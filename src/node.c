// SPDX-License-Identifier: GPL-2.0-or-later
/* node.c - the node table: nodeid and identity maps, lookup counts, references and lifetimes. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "node.h"

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
	GMutex lock; /* the table lock; see node.h for what it protects */
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

	/* Records of nodes the kernel forgot (see node.h, FORGOTTEN NODES). */
	GHashTable *records;	    /* &rec->nodeid -> struct node_record */
	GHashTable *records_by_key; /* &rec->key -> struct node_record */
	GQueue record_order;	    /* of struct node_record, oldest first */
	size_t record_max;
	/* Bumped by every change to what node_table_visit() shows (export_store.h saves when it
	 * moved). */
	uint64_t changes;
};

struct node_record {
	uint64_t nodeid;
	uint64_t parent;
	struct node_key key;
	mode_t type;
	uint32_t generation;
	GList link; /* in record_order */
	char name[];
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

static enum node_state state_locked(const struct node *n)
{
	if (n->refcount == 0)
		return NODE_FREED;
	return n->nlookup > 0 ? NODE_LIVE : NODE_PINNED;
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

/* Takes n (refcount just reached 0, so PINNED before) out of the table and queues it. */
static void record_drop_locked(struct node_table *t, struct node_record *rec)
{
	g_queue_unlink(&t->record_order, &rec->link);
	g_hash_table_remove(t->records_by_key, &rec->key);
	g_hash_table_remove(t->records, &rec->nodeid);
	g_free(rec);
	t->changes++;
}

/* Adds a record, replacing one with the same identity; the oldest goes beyond the bound. */
static void record_insert_locked(struct node_table *t, const struct node_record_info *info)
{
	size_t len = strlen(info->name);
	struct node_record *rec = g_malloc(sizeof(*rec) + len + 1);
	rec->nodeid = info->nodeid;
	rec->parent = info->parent;
	rec->key = info->key;
	rec->type = info->type;
	rec->generation = info->generation;
	rec->link = (GList){.data = rec};
	memcpy(rec->name, info->name, len + 1);
	struct node_record *old = g_hash_table_lookup(t->records_by_key, &rec->key);
	if (old)
		record_drop_locked(t, old);
	g_hash_table_insert(t->records, &rec->nodeid, rec);
	g_hash_table_insert(t->records_by_key, &rec->key, rec);
	g_queue_push_tail_link(&t->record_order, &rec->link);
	t->changes++;
	while (t->record_order.length > t->record_max)
		record_drop_locked(t, t->record_order.head->data);
}

/* What a record of n would say (name borrowed from n). */
static struct node_record_info info_of(const struct node *n)
{
	return (struct node_record_info){.nodeid = n->nodeid, .parent = n->parent->nodeid,
					 .key = n->key, .type = n->type,
					 .generation = (uint32_t)n->generation, .name = n->name};
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

		if (n->refcount <= floor) {
			record_bug(t, p, "reference count underflow", n->nodeid, n->refcount, 1);
			return;
		}
		if (--n->refcount > 0)
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
		n->refcount++; /* the kernel's share: PINNED -> LIVE */
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

	g_mutex_init(&t->lock);
	t->by_id = g_hash_table_new(g_int64_hash, g_int64_equal);
	t->by_key = g_hash_table_new(key_hash, key_equal);
	t->by_upper = g_hash_table_new(key_hash, key_equal);
	t->records = g_hash_table_new(g_int64_hash, g_int64_equal);
	t->records_by_key = g_hash_table_new(key_hash, key_equal);
	g_queue_init(&t->record_order);
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
	g_mutex_lock(&t->lock);
	all = g_ptr_array_sized_new(g_hash_table_size(t->by_id));
	g_hash_table_iter_init(&it, t->by_id);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_ptr_array_add(all, value);
	g_hash_table_remove_all(t->by_key);
	g_hash_table_remove_all(t->by_upper);
	g_hash_table_remove_all(t->by_id);
	t->n_live = t->n_pinned = 0;
	while (t->record_order.head)
		record_drop_locked(t, t->record_order.head->data);
	g_mutex_unlock(&t->lock);

	/* Nodes go in no particular order, so no destroy() may see a dangling parent. */
	for (guint i = 0; i < all->len; i++)
		((struct node *)g_ptr_array_index(all, i))->parent = NULL;
	for (guint i = 0; i < all->len; i++)
		free_node(t, g_ptr_array_index(all, i));
	g_ptr_array_unref(all);

	g_hash_table_unref(t->records);
	g_hash_table_unref(t->records_by_key);
	g_hash_table_unref(t->by_key);
	g_hash_table_unref(t->by_upper);
	g_hash_table_unref(t->by_id);
	g_mutex_clear(&t->lock);
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
	struct node_record *rec = g_hash_table_lookup(t->records_by_key, &fresh->key);
	if (rec && same_file(&rec->key, rec->type, &fresh->key, fresh->type)) {
		fresh->nodeid = rec->nodeid;
		fresh->generation = rec->generation;
		record_drop_locked(t, rec);
	} else {
		if (t->next_id >= NODE_ID_LIMIT)
			return -ENOSPC;
		if (rec)
			record_drop_locked(t, rec);
		fresh->nodeid = t->next_id++;
		fresh->generation = t->generation;
	}
	fresh->parent = parent;
	parent->refcount++; /* the child's pin; the caller holds parent, so its state is unchanged
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
	g_mutex_lock(&t->lock);
	add_alias_locked(n, parent, name);
	g_mutex_unlock(&t->lock);
}

bool node_table_take_alias(struct node_table *t, struct node *n, uint64_t skip_parent,
			   const char *skip_name, uint64_t *parent_out, char **name_out)
{
	bool found = false;
	g_mutex_lock(&t->lock);
	for (guint i = 0; n->aliases && i < n->aliases->len && !found; i++) {
		struct alias *a = n->aliases->pdata[i];
		if (a->parent == skip_parent && strcmp(a->name, skip_name) == 0)
			continue;
		*parent_out = a->parent;
		*name_out = g_strdup(a->name);
		g_ptr_array_remove_index_fast(n->aliases, i);
		found = true;
	}
	g_mutex_unlock(&t->lock);
	return found;
}

void node_table_drop_alias(struct node_table *t, struct node *n, uint64_t parent, const char *name)
{
	g_mutex_lock(&t->lock);
	int i = find_alias_locked(n, parent, name);
	if (i >= 0)
		g_ptr_array_remove_index_fast(n->aliases, (guint)i);
	g_mutex_unlock(&t->lock);
}

/*
 * An existing node keeps its parent and name: a second name of the same file (a hard link) does
 * not move it, it is remembered as an alias; renames go through node_table_move().
 */
struct node *node_table_insert_lookup(struct node_table *t, struct node *parent, struct node *fresh)
{
	struct node *n;

	g_mutex_lock(&t->lock);
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
		n->refcount++; /* the caller's */
		add_alias_locked(n, parent, fresh->name);
	} else if (insert_locked(t, parent, fresh) == 0) {
		n = g_steal_pointer(&fresh);
	}
	g_mutex_unlock(&t->lock);

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
	g_mutex_lock(&t->lock);
	add_lookup_locked(t, n);
	g_mutex_unlock(&t->lock);
}

struct node *node_table_get(struct node_table *t, uint64_t nodeid)
{
	struct node *n;

	g_mutex_lock(&t->lock);
	n = g_hash_table_lookup(t->by_id, &nodeid);
	if (n)
		n->refcount++; /* in the map, so refcount > 0: the state does not change */
	g_mutex_unlock(&t->lock);
	return n;
}

struct node *node_ref(struct node_table *t, struct node *n)
{
	struct pending p = {0};

	g_mutex_lock(&t->lock);
	if (n->refcount == 0)
		/* Freed or never inserted: a reference would resurrect nothing. */
		record_bug(t, &p, "reference to an unreferenced node", n->nodeid, 0, 0);
	else
		n->refcount++;
	g_mutex_unlock(&t->lock);
	finish(t, &p);
	return n;
}

struct node *node_put(struct node_table *t, struct node *n)
{
	struct pending p = {0};

	if (!n)
		return NULL;
	g_mutex_lock(&t->lock);
	release_locked(t, n, &p);
	g_mutex_unlock(&t->lock);
	finish(t, &p);
	return NULL;
}

void node_table_forget(struct node_table *t, uint64_t nodeid, uint64_t count)
{
	struct pending p = {0};

	g_mutex_lock(&t->lock);
	forget_locked(t, nodeid, count, &p);
	g_mutex_unlock(&t->lock);
	finish(t, &p);
}

/*
 * A nodeid freed by an earlier item of the same batch is no longer in the map, so a later item
 * for it is ignored like any unknown nodeid: the freed memory is only released after the unlock.
 */
void node_table_forget_batch(struct node_table *t, const struct node_forget_item *items, size_t n)
{
	struct pending p = {0};

	g_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++)
		forget_locked(t, items[i].nodeid, items[i].count, &p);
	g_mutex_unlock(&t->lock);
	finish(t, &p);
}

void node_table_unhash(struct node_table *t, struct node *n)
{
	g_mutex_lock(&t->lock);
	unhash_locked(t, n);
	g_mutex_unlock(&t->lock);
}

void node_table_rekey(struct node_table *t, struct node *n, struct node_key key)
{
	g_mutex_lock(&t->lock);
	bool hashed = n->hashed;
	unhash_locked(t, n);
	n->key = key;
	if (hashed) {
		/* Another node or record of that identity stands for a file that has it no more. */
		struct node *other = g_hash_table_lookup(t->by_key, &n->key);
		if (other)
			unhash_locked(t, other);
		struct node_record *rec = g_hash_table_lookup(t->records_by_key, &n->key);
		if (rec)
			record_drop_locked(t, rec);
		g_hash_table_insert(t->by_key, &n->key, n);
		n->hashed = true;
		t->changes++;
	}
	g_mutex_unlock(&t->lock);
}

void node_table_set_upper(struct node_table *t, struct node *n, dev_t dev, ino_t ino)
{
	struct node_key up = {.dev = dev, .ino = ino};
	g_mutex_lock(&t->lock);
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
	g_mutex_unlock(&t->lock);
}

bool node_table_upper_key(struct node_table *t, dev_t dev, ino_t ino, mode_t type,
			  struct node_key *key)
{
	struct node_key up = {.dev = dev, .ino = ino};
	g_mutex_lock(&t->lock);
	struct node *n = g_hash_table_lookup(t->by_upper, &up);
	bool found = n && n->type == (type & S_IFMT);
	if (found)
		*key = n->key;
	g_mutex_unlock(&t->lock);
	return found;
}

bool node_table_known(struct node_table *t, dev_t dev, ino_t ino, mode_t type, bool upper,
		      struct node_key *key, bool *indexed)
{
	struct node_key k = {.dev = dev, .ino = ino};
	g_mutex_lock(&t->lock);
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
	g_mutex_unlock(&t->lock);
	return found;
}

bool node_table_find_record(struct node_table *t, uint64_t nodeid, struct node_record_info *out)
{
	g_mutex_lock(&t->lock);
	struct node_record *rec = g_hash_table_lookup(t->records, &nodeid);
	if (rec)
		*out = (struct node_record_info){.nodeid = rec->nodeid,
						 .parent = rec->parent,
						 .key = rec->key,
						 .type = rec->type,
						 .generation = rec->generation,
						 .name = g_strdup(rec->name)};
	g_mutex_unlock(&t->lock);
	return rec != NULL;
}

void node_table_drop_record(struct node_table *t, uint64_t nodeid)
{
	g_mutex_lock(&t->lock);
	struct node_record *rec = g_hash_table_lookup(t->records, &nodeid);
	if (rec)
		record_drop_locked(t, rec);
	g_mutex_unlock(&t->lock);
}

void node_table_set_record_max(struct node_table *t, size_t max)
{
	g_mutex_lock(&t->lock);
	t->record_max = max;
	while (t->record_order.length > t->record_max)
		record_drop_locked(t, t->record_order.head->data);
	g_mutex_unlock(&t->lock);
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

	g_mutex_lock(&t->lock);
	if (n->root || !new_parent) {
		record_bug(t, &p, "move of the root or to no parent", n->nodeid, 0, 0);
		g_mutex_unlock(&t->lock);
		finish(t, &p);
		g_free(name);
		return;
	}
	new_parent->refcount++;
	old_parent = n->parent;
	n->parent = new_parent;
	old_name = n->name;
	n->name = name;
	t->changes++;
	release_locked(t, old_parent, &p);
	g_mutex_unlock(&t->lock);

	finish(t, &p);
	g_free(old_name);
}

struct node *node_parent_name(struct node_table *t, struct node *n, char **name_out)
{
	struct node *parent;

	g_mutex_lock(&t->lock);
	parent = n->parent;
	if (parent)
		parent->refcount++;
	if (name_out)
		*name_out = g_strdup(n->name);
	g_mutex_unlock(&t->lock);
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
	g_mutex_lock(&t->lock);
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
		end->refcount++;
		*stop_at = end;
	}
	g_mutex_unlock(&t->lock);
	return buf;
}

enum node_state node_state(struct node_table *t, struct node *n)
{
	enum node_state s;

	g_mutex_lock(&t->lock);
	s = state_locked(n);
	g_mutex_unlock(&t->lock);
	return s;
}

void node_table_stats(struct node_table *t, struct node_table_stats *out)
{
	g_mutex_lock(&t->lock);
	out->live = t->n_live;
	out->pinned = t->n_pinned;
	out->total = g_hash_table_size(t->by_id);
	out->records = g_hash_table_size(t->records);
	out->record_max = t->record_max;
	g_mutex_unlock(&t->lock);
}

void node_table_set_generation(struct node_table *t, uint32_t generation)
{
	g_mutex_lock(&t->lock);
	t->generation = generation;
	g_mutex_unlock(&t->lock);
}

uint64_t node_table_next_id(struct node_table *t)
{
	g_mutex_lock(&t->lock);
	uint64_t id = t->next_id;
	g_mutex_unlock(&t->lock);
	return id;
}

int node_table_reserve_ids(struct node_table *t, uint64_t next_id)
{
	if (next_id > NODE_ID_LIMIT)
		return -ERANGE;
	g_mutex_lock(&t->lock);
	if (next_id > t->next_id) {
		t->next_id = next_id;
		t->changes++;
	}
	g_mutex_unlock(&t->lock);
	return 0;
}

bool node_table_add_record(struct node_table *t, const struct node_record_info *info)
{
	bool ok = false;

	g_mutex_lock(&t->lock);
	if (t->record_max > 0 && info->nodeid > NODE_ROOT_ID && info->nodeid < t->next_id &&
	    !g_hash_table_contains(t->by_id, &info->nodeid) &&
	    !g_hash_table_contains(t->records, &info->nodeid) &&
	    !g_hash_table_contains(t->by_key, &info->key)) {
		record_insert_locked(t, info);
		ok = true;
	}
	g_mutex_unlock(&t->lock);
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

uint64_t node_table_visit(struct node_table *t, size_t max, node_table_visit_fn fn, void *data)
{
	g_mutex_lock(&t->lock);
	/* Every hashed node is in by_key and has a parent (the root is never hashed). */
	size_t total = g_hash_table_size(t->records) + g_hash_table_size(t->by_key);
	size_t skip = total > max ? total - max : 0;
	for (GList *l = t->record_order.head; l; l = l->next) {
		const struct node_record *rec = l->data;
		struct node_record_info info = {.nodeid = rec->nodeid, .parent = rec->parent,
						.key = rec->key, .type = rec->type,
						.generation = rec->generation,
						.name = (char *)rec->name};
		if (skip > 0)
			skip--;
		else
			fn(&info, data);
	}
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
	g_mutex_unlock(&t->lock);
	return changes;
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
	g_mutex_lock(&t->lock);
	uint64_t changes = t->changes;
	g_mutex_unlock(&t->lock);
	return changes;
}

void node_table_set_abort_on_underflow(struct node_table *t, bool on)
{
	g_mutex_lock(&t->lock);
	t->abort_on_underflow = on;
	g_mutex_unlock(&t->lock);
}
