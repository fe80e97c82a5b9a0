/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * node.h - the node table: the daemon's objects behind FUSE nodeids, and their lifetime.
 *
 * LIFETIME RULES
 *
 * Two counters, kept apart (as QEMU virtiofsd does):
 *   nlookup   what the kernel holds: +1 for every entry reply (LOOKUP, CREATE, MKNOD, MKDIR,
 *             SYMLINK, LINK, each READDIRPLUS entry that fit except "." and "..", LOOKUP of "." and
 *             ".."); -n for FORGET(n) / each BATCH_FORGET item.
 *   refcount  who may still touch the node:
 *               1 while nlookup > 0 (the kernel's share),
 *             + 1 per child node (a child pins its parent, as kernel dentries do),
 *             + 1 per open file or directory handle,
 *             + 1 per request in flight that uses it (node_get ... node_put),
 *             + 1 per location (inode.h) that borrows one of its cached fds.
 *
 * States:
 *   LIVE    nlookup > 0 (so refcount >= 1). Reachable by nodeid and by identity.
 *   PINNED  nlookup == 0, refcount > 0: the kernel forgot it, but a child, an open handle or a
 *           request still uses it. Still reachable by nodeid and identity; a new lookup of the same
 *           file makes it LIVE again with the same nodeid.
 *   FREED   refcount == 0: removed from both maps, its parent's reference dropped (which may free
 *           the parent in turn, iteratively, never recursively), memory released. Its nodeid is
 *           never handed out again; node_table_get() of it fails with NULL.
 *
 * Transitions:
 *   (new) --node_table_insert_lookup--> LIVE            nlookup 1, refcount 1, parent refcount+1
 *   LIVE  --lookup again-->            LIVE             nlookup+1
 *   LIVE  --forget to 0-->             PINNED or FREED  refcount-1
 *   PINNED --lookup again-->           LIVE             refcount+1
 *   PINNED --last node_put / handle release / child freed--> FREED
 * A FORGET therefore never orphans a child and never frees a node with an open handle, a child or
 * a request in flight. The root (nodeid 1) holds a permanent reference and is never freed before
 * node_table_free().
 *
 * BORROWED FDS
 * A node's cached directory fds (struct node_layer.fd) are closed only when it is FREED, so an fd
 * borrowed from a node is valid exactly while a reference on that node is held: a location
 * (inode.h) that uses its parent's fd holds a reference on the parent, not only on the child,
 * since the child may be renamed to another parent and the old one freed meanwhile.
 *
 * Underflow of refcount (put more than was got) is a bug of the daemon: it is logged and clamped in
 * release builds and aborts in debug builds (NDEBUG unset).
 * Underflow of nlookup (a FORGET or BATCH_FORGET item of more than was looked up) is not: the count
 * comes from a request, and a buggy or hostile request must never stop the daemon. It is clamped
 * to the lookups the node has (the node goes to PINNED or FREED as for an exact count), logged
 * rate-limited, and never aborts, in any build. The table's own forgets (a lookup a request made
 * for itself, undone) can meet the same underflow when such a FORGET took their count first, and
 * are treated the same. A FORGET of an unknown or freed nodeid is ignored.
 *
 * IDENTITY
 * Every node has an identity key (dev, ino) of the file it stands for (the origin file: the lowest
 * layer it came from, kept across copy-up; a split hard link's name has its own, index.h, changed
 * once, at its copy-up, by node_table_rekey()), so a second lookup of the same file through another
 * name (a hard link) returns the same node. node_table_unhash() drops a node's identity (on
 * unlink/rmdir, because ext4 reuses inode numbers at once); it stays reachable by nodeid.
 * A hashed non-directory whose key is its origin (a lower file) while its entry is an upper inode
 * (copied up) can also be found by that upper inode (node_table_set_upper()): a lookup that
 * cannot verify the origin (rootless: no open_by_handle_at, and the name below is not the
 * file's after a rename or a link) still finds the node, so one file never has two nodes.
 *
 * FORGOTTEN NODES (export support)
 * When a node that still stands for an existing file (hashed) is FREED, the table keeps a record
 * of it: nodeid -> (parent nodeid, name, identity, type, generation); sizes below. A file
 * handle the kernel decodes after forgetting the inode names that nodeid; export.c finds the node
 * again from the record (resolving the parent the same way) and the file gets the same nodeid
 * back; so does a plain lookup of the same file. Records are bounded (NODE_RECORD_MAX_DEFAULT,
 * node_table_set_record_max(); the oldest is dropped first) and dropped with the file's identity
 * (unlink), so a deleted file's handle answers ESTALE.
 * Sizes (x86-64): a node is 160 bytes plus its name and its layer stack (8 + 32 per layer), plus
 * its entries in the two maps (~310 bytes of RSS each, measured). Records live in a compact store
 * outside malloc's heap (records.h): 40 bytes plus the name and its NUL, plus two 4-byte index
 * slots at most 3/4 full, with a quarter of room to grow: ~72 bytes a record with names of 11
 * bytes (memory.py: 500,000 records in 39 MB of store; the earlier GHashTable store took ~175
 * each). At the default bound (2^20) records take at most ~80 MB with short names; with a work
 * dir, entries and names are in an unnamed file there, out of the RSS (node_table_records_on_file,
 * records.h, README "Handles"). Every node
 * carries the generation of the mount that handed its nodeid out (node_table_set_ generation()); a
 * record keeps it, so a node found again answers with its first generation. export_store.h writes
 * the records and the hashed nodes to the workdir while mounted (when node_table_changes() moved)
 * and at unmount, and loads them at the next mount: handles outlive the mount and a killed daemon.
 *
 * LOCKS (order: rename_lock -> node->lock -> table lock)
 *   table->lock (a reader-writer lock inside node_table) protects: the maps, the records,
 *   nlookup, parent, name, hashed. Lookups by nodeid, node_parent_name(), node_path(), the stats
 *   and an entry reply for a LIVE node by its own name (nlookup+1 atomically, never from 0)
 *   share it; everything else holds it exclusively. It is never held across a syscall or a
 *   fuse_reply_*.
 *   refcount is atomic: a reference is taken with the shared lock (node_table_get) or on a node
 *   already held (node_ref, without a lock), and dropped without a lock while it cannot be the
 *   last one (node_put: a compare-and-swap that never takes the count below 1, or below 2 for
 *   the root); the drop that may reach 0 takes the exclusive lock, where no reference can be
 *   taken, so a node is freed exactly once and never while someone could still find it.
 *   A GETATTR takes the shared lock twice and the exclusive one never (node_table_locks and
 *   node_table_read_locks in the status query count them).
 *   node->lock protects the overlay state (layers, copy-up) and is owned by the overlay modules.
 */
#ifndef PLYFS_NODE_H
#define PLYFS_NODE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define NODE_ROOT_ID 1
/*
 * NODEIDS are handed out from NODE_ROOT_ID + 1 upwards and stay below NODE_ID_LIMIT: never 0
 * (invalid in FUSE), never 1 (the root), never wrapped. 2^63 ids last 292 years at a billion
 * lookups a second, so the bound is never reached by a real mount; it exists so that a value read
 * from outside (the handle store, export_store.h) can be checked against it, and once it is
 * reached node_table_insert_lookup() fails (the request gets ENOSPC) instead of wrapping.
 */
#define NODE_ID_LIMIT (UINT64_C(1) << 63)

enum node_state { NODE_LIVE, NODE_PINNED, NODE_FREED };

struct node_key {
	dev_t dev;
	ino_t ino;
	/* Not part of the identity's equality: a hash of the layer's own file handle of the file
	 * (which holds the inode's generation), where it is known (an upper-only entry; 0 else).
	 * Two equal keys with different non-zero checks are an inode number reused by another file:
	 * never the same node, never the same record (a store carries it across mounts). */
	uint32_t check;
};

/* One layer a node is present in. `fd` is an O_PATH fd of this node's directory in that layer,
 * opened lazily and cached while the fd budget allows (see inode.h); -1 when not cached. Written
 * once from -1 to an fd (atomically), closed only when the node is freed. `path`, when not NULL,
 * is where this directory lives in that layer relative to the layer root (a renamed directory:
 * its lower parts stay at their old path, recorded as a redirect); NULL means "the parent's
 * path in that layer, then the node's name". `dev`, `ino` are the entry's own identity in that
 * layer when the stack was built (0, 0: not known, nothing to compare): a name in the upper layer
 * can be replaced at any time (unlink + create, rename over), so whoever reaches the entry by
 * (dirfd, name) compares what it found with these before trusting it (inode.h, inode_check). */
struct node_layer {
	int layer; /* index into fs->layers */
	int fd;
	char *path;
	dev_t dev;
	ino_t ino;
};

/* Where a node is present, top layer first. Immutable once published: a change (copy-up, a
 * directory made opaque) publishes a new one with node_stack_replace(); the old one is kept until
 * the node is freed, so lock-free readers never see freed memory. */
struct node_stack {
	unsigned int n;
	bool merged; /* a directory present in more than one layer */
	struct node_layer l[];
};

struct node {
	uint64_t nodeid;     /* immutable */
	uint64_t generation; /* immutable */
	mode_t type;	     /* S_IFMT bits; immutable */
	struct node_key key; /* dev, ino: immutable while hashed (but rekey); check: lock */
	/* Table lock: its upper inode when that is not `key` (IDENTITY), else 0. */
	struct node_key upper;

	/* protected by table->lock (refcount: atomic, see LOCKS) */
	struct node *parent; /* holds a reference; NULL only for the root */
	char *name;	     /* g_malloc'd; "" for the root */
	uint64_t nlookup;
	uint64_t refcount;
	bool hashed; /* present in the identity map */
	bool root;

	/* Overlay state. `lock` serialises copy-up and changes to a directory's entries. */
	GMutex lock;
	struct node_stack *stack; /* read with node_stack(); written with node_stack_replace() */
	GPtrArray *retired;	  /* earlier stacks; protected by lock; freed with the node */
	unsigned copyup_gen;	  /* atomic; bumped when the top entry moves to the upper layer */
	bool unlinked;		  /* atomic; the last name went away while the kernel knew it */
	unsigned prot;		  /* atomic; fileattr.h: +i/+a flags once read (FILEATTR_KNOWN) */
	unsigned open_count;	  /* atomic; open file and directory handles */
	/* An O_PATH fd of the entry, taken when its last name was removed (a non-directory, or an
	 * open directory; remove.h): the only way left to reach it (fstat, fchmod, an open already
	 * on its way); NULL otherwise. A refcounted holder
	 * (inode.h): the node holds one reference, each location using the fd another. States:
	 *   NULL --last name removed--> held(fd)               inode_keep_unlinked()
	 *   held(fd) --removal failed--> NULL                  inode_drop_unlinked()
	 *   held(fd) --orphan copied up--> held(copy)          inode_replace_unlinked()
	 *   held(x) --node freed--> (the node's reference dropped)
	 * A replaced fd is closed when its last location is released, never under a reader.
	 * The pointer is written under inode.c's holder lock and read atomically. */
	struct held_fd *unlinked_fd;
	/* The link count of the lower file of an indexed hard-linked file (index.h), else 0. */
	int lower_nlink; /* atomic */
	/* One name of a lower hard-linked file that no index keeps together (index.h): its own
	 * node, split from the other names' at its copy-up. Cleared (atomic) once copied up. */
	bool split;
	/* The file's entry in workdir/index (index.h), when it has one: g_malloc'd, set once under
	 * `lock` before the node is published or during copy-up. */
	char *index_name;
	bool pinned_hardlink; /* under `lock`: the extra reference of index_keep_reachable() */
	bool indexed;	      /* atomic: its upper inode keeps the merged st_nlink (index.h) */
	unsigned char plus_left; /* atomic: what its last READDIRPLUS left out (dir.c) */
	/* The name a lookup reached this hard-linked file by last (index.h, index_note_name()),
	 * as (parent nodeid, name): g_malloc'd, under `lock`; NULL when none. */
	uint64_t seen_parent;
	char *seen_name;
	/* Other names the kernel reached this file by (hard links), as (parent nodeid, name): when
	 * the name above is removed, the node moves to one of these. Protected by table->lock. */
	GPtrArray *aliases;
};

/* The current stack (acquire load). Valid while the caller holds a reference on the node. */
static inline const struct node_stack *node_stack(const struct node *n)
{
	return __atomic_load_n(&n->stack, __ATOMIC_ACQUIRE);
}

struct node_table;
struct held_fd;

/* Creates the table and its root node (nodeid 1, nlookup 1, permanently referenced).
 * `destroy` is called for every freed node after it left the table, without the table lock: it
 * releases the overlay state (closes stack fds); the node memory is released by the table. */
struct node_table *node_table_new(void (*destroy)(struct node *));
/* Frees every node regardless of counts (at unmount). */
void node_table_free(struct node_table *t);
struct node *node_table_root(struct node_table *t);

/* Allocates an unhashed node with refcount 0, nlookup 0: a candidate for insert_lookup. */
struct node *node_new(const char *name, mode_t type, struct node_key key);
/* Releases a node that was never inserted (calls the table's destroy first). */
void node_discard(struct node_table *t, struct node *n);

/*
 * Accounts one entry reply for the file `fresh` stands for, found under `parent` as `name`.
 * If a hashed node with the same key and type exists, it gets nlookup+1 and is returned; `fresh`
 * is discarded. Otherwise `fresh` is inserted: new nodeid, parent pinned (parent refcount+1),
 * nlookup 1, refcount 1, and returned. A hashed node with the same key but a different type (or
 * another non-zero key.check) is an inode number reused by a new file: it is unhashed first.
 * The returned node also carries one extra reference for the caller (a request in flight): drop it
 * with node_put() once the reply is built.
 * Returns NULL (and discards `fresh`) when a new nodeid is needed and none is left below
 * NODE_ID_LIMIT: the caller answers -ENOSPC.
 */
struct node *node_table_insert_lookup(struct node_table *t, struct node *parent,
				      struct node *fresh);

/* nlookup+1 on a node the caller holds (LOOKUP of "." and "..", READDIRPLUS of a known node). */
void node_table_add_lookup(struct node_table *t, struct node *n);

/* Returns the node with a reference for the caller, or NULL when the nodeid is unknown or freed. */
struct node *node_table_get(struct node_table *t, uint64_t nodeid);
/* Takes one more reference on a node the caller already holds. */
struct node *node_ref(struct node_table *t, struct node *n);
/* Drops a reference; frees the node (and, iteratively, ancestors) when it reaches zero.
 * Returns NULL so callers write `n = node_put(t, n);`. */
struct node *node_put(struct node_table *t, struct node *n);

/* FORGET: nlookup -= count, clamped at 0 without aborting (see LIFETIME RULES). Unknown nodeids
 * are ignored (the kernel cannot be answered). */
void node_table_forget(struct node_table *t, uint64_t nodeid, uint64_t count);
struct node_forget_item {
	uint64_t nodeid;
	uint64_t count;
};
/* BATCH_FORGET: one table lock for the whole batch; O(n). */
void node_table_forget_batch(struct node_table *t, const struct node_forget_item *items, size_t n);

/* Remembers (parent, name) as another name of n. */
void node_table_add_alias(struct node_table *t, struct node *n, struct node *parent,
			  const char *name);
/* Takes one of n's other names that is not (skip_parent, skip_name) out of its alias list. */
bool node_table_take_alias(struct node_table *t, struct node *n, uint64_t skip_parent,
			   const char *skip_name, uint64_t *parent_out, char **name_out);
/* Forgets that (parent, name) is a name of n. */
void node_table_drop_alias(struct node_table *t, struct node *n, uint64_t parent, const char *name);

/* Drops n's identity so a new file with the same (dev, ino) gets a new node. */
void node_table_unhash(struct node_table *t, struct node *n);
/* Gives n another identity (a split hard link copied up: its own upper inode now, index.h) in
 * place of its old one; a node or record that had the new identity loses it. */
void node_table_rekey(struct node_table *t, struct node *n, struct node_key key);
/* Hashed node n, keyed by its origin, now stands for upper inode (dev, ino) too (IDENTITY); a
 * node that had it loses it. Ignored for an unhashed node or one keyed by that inode itself. */
void node_table_set_upper(struct node_table *t, struct node *n, dev_t dev, ino_t ino);
/* The key of the hashed node of type `type` (S_IFMT bits) that stands for upper inode (dev, ino):
 * true and *key, or false. */
bool node_table_upper_key(struct node_table *t, dev_t dev, ino_t ino, mode_t type,
			  struct node_key *key);
/* The key of the hashed node of type `type` whose entry is inode (dev, ino) of a layer: by its own
 * identity, or for an `upper` inode also by its upper inode (above; an upper-only file only once
 * its key check is known). True, *key and *indexed (the node's), or false. A hashed node's inode
 * is never freed while it stays hashed (the removal of its last name unhashes it), so the inode
 * is that node's file; a node made anew from these (the one found was freed meanwhile) is the
 * same as one a full lookup makes. */
bool node_table_known(struct node_table *t, dev_t dev, ino_t ino, mode_t type, bool upper,
		      struct node_key *key, bool *indexed);
/* Moves n under new_parent as new_name (rename): the pin moves from the old parent to the new one.
 */
void node_table_move(struct node_table *t, struct node *n, struct node *new_parent,
		     const char *new_name);

/* Returns the parent with a reference (NULL for the root) and, if name_out, a g_malloc'd copy of
 * the name, both read consistently under the table lock. */
struct node *node_parent_name(struct node_table *t, struct node *n, char **name_out);
/* Builds the path of n relative to the root ("" for the root, "a/b/c" otherwise) under the table
 * lock, stopping early at the first ancestor `stop(anc, data)` accepts: then *stop_at gets that
 * ancestor with a reference (caller puts it) and the path is relative to it. Returns a g_malloc'd
 * string. */
char *node_path(struct node_table *t, struct node *n, bool (*stop)(struct node *, void *),
		void *data, struct node **stop_at);

enum node_state node_state(struct node_table *t, struct node *n);

struct node_table_stats {
	uint64_t live;		    /* nlookup > 0 */
	uint64_t pinned;	    /* nlookup == 0, refcount > 0 */
	uint64_t total;		    /* nodes in the nodeid map */
	uint64_t records;	    /* records of forgotten nodes */
	uint64_t record_max;	    /* their bound */
	uint64_t record_bytes;	    /* memory they take (records.h, records_bytes()) */
	uint64_t record_name_bytes; /* of it, their names (without NULs) */
	uint64_t locks;		    /* exclusive acquisitions of the table lock so far */
	uint64_t read_locks;	    /* shared ones */
	bool records_file;	    /* entries and names in a file (records.h), not anonymous */
};

#define NODE_RECORD_MAX_DEFAULT (1u << 20)

/* What a record of a forgotten node says; `name` is g_malloc'd (caller frees) when returned. */
struct node_record_info {
	uint64_t nodeid;
	uint64_t parent;
	struct node_key key;
	mode_t type;
	uint32_t generation;
	char *name;
};
bool node_table_find_record(struct node_table *t, uint64_t nodeid, struct node_record_info *out);
/*
 * Records carried over from an earlier mount (export_store.h). add_record refuses (false) a
 * nodeid that is the root's, at or past the next nodeid to hand out, or already known, and an
 * identity that a node has; the bound applies (the oldest goes first, so add oldest first).
 */
bool node_table_add_record(struct node_table *t, const struct node_record_info *info);
/* Every record (oldest first), then every hashed node but the root, as records: a GArray of
 * struct node_record_info with g_malloc'd names, freed with the array. */
GArray *node_table_snapshot(struct node_table *t);
/* The nodeids (uint64_t) of every directory node not freed, the root's too (no order). */
GArray *node_table_dir_ids(struct node_table *t);
/*
 * The same entries, in the same order, handed to fn one by one under the table lock (no copy:
 * `info` and its name are valid during the call only; fn must not block nor call into the
 * table); only the newest `max` of them (the last ones). Returns node_table_changes() as of the
 * visit, so that a caller knows exactly which state it saw.
 */
typedef void (*node_table_visit_fn)(const struct node_record_info *info, void *data);
uint64_t node_table_visit(struct node_table *t, size_t max, node_table_visit_fn fn, void *data);
/* A counter that moves with every change to what node_table_visit() shows (a node added, moved,
 * unhashed; a record added or dropped; a key's check learnt; the next nodeid raised), and only
 * then: FORGETs and lookups of known nodes leave it alone. */
uint64_t node_table_changes(struct node_table *t);
/* The generation of nodeids handed out from now on (one per mount; see node.c). */
void node_table_set_generation(struct node_table *t, uint32_t generation);
/* The next nodeid to hand out; reserve_ids raises it (never lowers it), so nodeids of an earlier
 * mount are not handed out again. reserve_ids refuses (-ERANGE, nothing changed) a next_id past
 * NODE_ID_LIMIT; NODE_ID_LIMIT itself is accepted and leaves no nodeid to hand out. */
uint64_t node_table_next_id(struct node_table *t);
int node_table_reserve_ids(struct node_table *t, uint64_t next_id);
void node_table_drop_record(struct node_table *t, uint64_t nodeid);
void node_table_set_record_max(struct node_table *t, size_t max);
/* Moves the records' entries and names into file `fd` (records_new_on(), which owns it). */
void node_table_records_on_file(struct node_table *t, int fd);
void node_table_stats(struct node_table *t, struct node_table_stats *out);

/* Whether a refcount underflow (or another accounting bug of the daemon's own) aborts after it is
 * logged: on by default unless NDEBUG is defined; unit tests turn it off to test the clamping. A
 * FORGET's count never aborts, whatever this says. */
void node_table_set_abort_on_underflow(struct node_table *t, bool on);

#endif
