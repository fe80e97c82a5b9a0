/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * inode.h - reaching a node's files in the layers, and its attributes in the merged view.
 *
 * A node does not own an fd per layer. A directory node caches O_PATH fds of itself (one per layer
 * it is present in, struct node_layer.fd) while fs->fd_budget allows; otherwise the directory is
 * reached with one openat2 from the nearest ancestor that has a cached fd (the root always has: the
 * layer roots), never through a symlink. A non-directory is reached as (its parent's fd in the
 * layer it was found in, its name).
 *
 * LOCATIONS (struct lfd): where a node's entry is, as a directory fd and a name in it, or (name
 * NULL) an fd of the entry itself (a directory, or an entry whose last name went while it was
 * open). A request computes its node's location once (inode_locate) and passes it down: to
 * copy_up_at(), which moves it to the upper entry, to the open, the stat, the xattr calls.
 * Declare it `auto_lfd struct lfd loc = LFD_INIT;`; lfd_release() undoes what it holds.
 *
 * What keeps `fd` open until lfd_release(), by how it was obtained (exactly one holds):
 *   owned   opened for this location (the fd cache was full): closed by lfd_release().
 *   owner   a cached fd of another node (the parent of a non-directory): the location holds a
 *           reference on that node, because cached fds are closed only when their node is
 *           freed, and without it a rename of n plus a FORGET of the old parent would free it.
 *   held    an entry removed while open (node->unlinked_fd): a reference on that fd's holder,
 *           closed when the last reference goes, so a copy-up or an undone unlink that replaces
 *           it never closes it under a reader.
 *   none    a cached fd of the node the caller named, which the caller holds for the
 *           location's life (every inode_* call takes a node the caller holds), or a mount-wide
 *           fd (the index directory, the layer roots) open for the mount's life.
 * A location is only as current as the tree when it was computed: `gen` is the node's
 * copyup_gen then; a location of an older generation names the entry before its copy-up
 * (inode_relocate() refreshes it). A rename after it was computed is not seen: the request races
 * the rename as any two unserialised requests do; what a location guarantees is that its fd is
 * still the directory it was, never a closed or reused fd number.
 *
 * Identity: a name can be unlinked (leaving a whiteout) or replaced (rename over, unlink + create)
 * between the lookup that made the node and a request on it. A location therefore carries the
 * (dev, ino) its entry had when n's stack was built (node.h, struct node_layer), and whoever
 * reaches the entry through (fd, name) checks what it got (inode_check) before using it: stat
 * compares the stat it makes anyway, an open fstat()s the fd it opened when the entry is in the
 * upper layer (a lower entry cannot change under a name; the index entry of a hard link is that
 * file by its name); setattr, setxattr, removexattr and the copy-up source check before changing
 * anything. A removal keeps the entry of a node's last name for it (remove.h), so inode_getattr()
 * and an open that met something else locate once more and reach it, as kernel overlayfs' dentry
 * keeps its upper one. What remains: a whiteout found at the name means the file was unlinked,
 * -ENOENT (as if the request came after the unlink); another entry is -ESTALE: the kernel VFS
 * retries an open or stat that got ESTALE once with LOOKUP_REVAL (fs/namei.c do_filp_open,
 * fs/stat.c), FUSE then looks the name up again and the caller sees the new file. Never a
 * whiteout (ENXIO, or EIO for a changed inode type) nor another file's data under this node's
 * cached size. An inode number reused at once by the same filesystem (ext4) passes the check;
 * tmpfs, btrfs and xfs hand out fresh ones.
 *
 * Attributes: st_ino is the identity's inode number (the origin file's), so it is unique across
 * layers and the same across remounts; when the layers span several filesystems the layer's fsid is
 * put in the top xino_bits bits (as kernel overlayfs' xino does). A merged directory reports
 * st_nlink 1, as kernel overlayfs does; static_nlink reports 1 for every directory.
 */
#ifndef PLYFS_INODE_H
#define PLYFS_INODE_H

#include <stdbool.h>
#include <sys/stat.h>

#include "fs.h"

struct held_fd;

struct lfd {
	int fd;
	bool owned;
	char *name;		  /* g_malloc'd; NULL: `fd` is the entry itself */
	unsigned gen;		  /* the node's copyup_gen when it was located */
	struct node_table *nodes; /* where `owner` is put */
	struct node *owner;	  /* referenced, or NULL */
	struct held_fd *held;	  /* referenced, or NULL */
	/* The identity (dev, ino) the entry at (fd, name) must have; ino 0: nothing to check (an
	 * fd of the entry itself, an index entry, a stack entry of unknown identity). */
	dev_t dev;
	ino_t ino;
	bool replaceable; /* (fd, name) is in the upper layer: its entry may be replaced */
};
#define LFD_INIT                                                                                   \
	{                                                                                          \
		.fd = -1, .owned = false                                                           \
	}

void lfd_release(struct lfd *l);
#define auto_lfd __attribute__((cleanup(lfd_release)))

/* A stack of n slots (fds -1, paths NULL) for the caller to fill. */
struct node_stack *inode_stack_new(unsigned n);
/* Publishes `s` as n's stack; the previous one is retired (kept until n is freed). The caller
 * holds n->lock, or n is not yet visible to other threads. */
void inode_stack_publish(struct node *n, struct node_stack *s);
/* True when n's top entry is in the upper layer. */
bool inode_has_upper(const struct plyfs *fs, const struct node *n);
/* The slot of `layer` in n's current stack, or -1. */
int inode_stack_slot(const struct node_stack *s, int layer);

/* The node table's destroy callback: closes cached fds, returns their budget. */
void inode_destroy(struct node *n);
void inode_set_fs(struct plyfs *fs);

/* O_PATH fd of directory `n` in `layer` (which must be in its stack), as a location with name
 * NULL: n's cached fd (the caller holds n) or an fd opened for it. 0 or -errno. */
int inode_dirfd(struct plyfs *fs, struct node *n, int layer, struct lfd *out);
/* Offers an O_PATH fd of directory `n` in stack slot `slot` of `s` (n's stack, not yet published
 * or current) to the cache; takes ownership of `fd` (closes it when not kept). Used by lookup,
 * which opens the directory anyway to check opaqueness. */
void inode_offer_dirfd(struct plyfs *fs, struct node_stack *s, unsigned slot, int fd);

/*
 * Where the top entry of `n` lives, into `loc` (LFD_INIT or released): the directory fd in the
 * entry's layer and the entry's name in it, so that callers use the *at() wrappers with
 * (loc.fd, loc.name). For a directory node, and for an entry removed while open, loc.name is NULL
 * and loc.fd is the entry itself (use name NULL / fstat). 0 or -errno (-ESTALE: n has no parent
 * any more, or its parent is not in n's layer: the tree changed under the request).
 */
int inode_locate(struct plyfs *fs, struct node *n, struct lfd *loc);
/* Locates n again into `loc` unless `loc` holds a current location of n (computed at n's present
 * copy-up generation): a request passes one location down, and whoever needs it current after a
 * copy-up calls this. 0 or -errno. */
int inode_relocate(struct plyfs *fs, struct node *n, struct lfd *loc);
/* The location of `name` in directory `parent` (held by the caller) in `layer`; loc.gen and the
 * identity (dev, ino) are left 0 for the caller, who knows which node it is, to set. */
int inode_locate_child(struct plyfs *fs, struct node *parent, const char *name, int layer,
		       struct lfd *loc);

/*
 * An entry whose last name went (remove.h says which keep one) is reached through an O_PATH fd of
 * it kept in node->unlinked_fd (see node.h). The fd is refcounted: the node holds one reference,
 * every location that uses it one more; replacing or dropping it drops the node's.
 */
/* 0 when `st` (a stat of loc's entry) is the entry loc expects, -ESTALE when the name now holds
 * another entry (see "Identity" above). */
int inode_check(const struct lfd *loc, const struct stat *st);
/* Stats loc's entry and checks it, for a request about to change it by name (setattr, xattr):
 * when there is something to check, one fstatat. 0 or -errno. */
int inode_verify(const struct lfd *loc);

/* Whether n has such an fd (its last name was removed). */
bool inode_is_orphan(const struct node *n);
/* Takes `fd` as n's way to its entry, unless it has one already (then `fd` is closed). */
void inode_keep_unlinked(struct node *n, int fd);
/* Takes `fd` as n's way to its entry in place of the current one (an orphan's copy-up). */
void inode_replace_unlinked(struct node *n, int fd);
/* n is reached by its name again (the removal failed): forgets the fd. */
void inode_drop_unlinked(struct node *n);

/* The layer index of n's top entry. */
int inode_top_layer(const struct node *n);

/* Path of directory-or-file n relative to the root of `layer` ("" for the root), following
 * redirects. g_malloc'd. */
char *inode_layer_path(struct plyfs *fs, struct node *n, int layer);

/* stat of n's top entry turned into the merged view; -ESTALE when its name holds another entry. */
int inode_getattr(struct plyfs *fs, struct node *n, struct stat *st);
/* The same at n's location `loc`, computed by the caller. */
int inode_stat(struct plyfs *fs, struct node *n, const struct lfd *loc, struct stat *st);
/* Turns a layer's stat of n's top entry into the merged view (ino, nlink, owners). `idmapped`:
 * the stat was read through an id-mapped lower layer (layer.h), whose ids are shown as they are
 * instead of through uidmapping=/gidmapping=. */
void inode_fill_attr(struct plyfs *fs, struct node *n, struct stat *st, bool idmapped);
/* The inode number shown for identity key `k`. */
ino_t inode_map_ino(const struct plyfs *fs, struct node_key k);

#endif
