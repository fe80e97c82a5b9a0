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
 * struct lfd is an fd that is either borrowed from a node (valid while the caller holds a reference
 * on that node, because cached fds are closed only when a node is freed) or owned (closed by
 * lfd_release). Declare it `auto_lfd struct lfd d = LFD_INIT;`.
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

struct lfd {
	int fd;
	bool owned;
};
#define LFD_INIT {.fd = -1, .owned = false}

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

/* O_PATH fd of directory `n` in `layer` (which must be in its stack). 0 or -errno. */
int inode_dirfd(struct plyfs *fs, struct node *n, int layer, struct lfd *out);
/* Offers an O_PATH fd of directory `n` in stack slot `slot` of `s` (n's stack, not yet published
 * or current) to the cache; takes ownership of `fd` (closes it when not kept). Used by lookup,
 * which opens the directory anyway to check opaqueness. */
void inode_offer_dirfd(struct plyfs *fs, struct node_stack *s, unsigned slot, int fd);

/*
 * Where the top entry of `n` lives: the directory fd in the entry's layer and the entry's name in
 * it, so that callers use the *at() wrappers with (dirfd, name). For a directory node, *name_out is
 * NULL and `dir` is the directory itself (use name NULL / fstat). So it is for an entry removed
 * while open (node->unlinked_fd). Caller g_free()s *name_out.
 */
int inode_locate(struct plyfs *fs, struct node *n, struct lfd *dir, char **name_out);

/* The layer index of n's top entry. */
int inode_top_layer(const struct node *n);

/* Path of directory-or-file n relative to the root of `layer` ("" for the root), following
 * redirects. g_malloc'd. */
char *inode_layer_path(struct plyfs *fs, struct node *n, int layer);

/* A copied-up hard-linked file reached through another of its lower names (`name` in the upper
 * directory `updir` holds nothing): links the upper copy there, so the name can be renamed or
 * removed like any upper entry. 0 when there is nothing to do. */
int inode_materialize(struct plyfs *fs, struct node *n, int updir, const char *name);

/* The merged st_nlink of a hard-linked file with an index entry (index.h), from the upper
 * inode's trusted.overlay.nlink; `st` is the raw stat of (dirfd, name). */
void inode_index_nlink(struct plyfs *fs, struct node *n, int dirfd, const char *name,
		       struct stat *st);
/* Before a link/unlink/rename changes the merged and upper link counts of n alike: records the
 * merged count relative to the upper inode's ("U+d"). */
int inode_nlink_prepare(struct plyfs *fs, struct node *n);
/* After n's upper inode got one more link to a name the merged count already included. */
int inode_nlink_after_link(struct plyfs *fs, struct node *n);

/* stat of n's top entry turned into the merged view. */
int inode_getattr(struct plyfs *fs, struct node *n, struct stat *st);
/* Turns a layer's stat of n's top entry into the merged view (ino, nlink, owners). */
void inode_fill_attr(struct plyfs *fs, struct node *n, struct stat *st);
/* The inode number shown for identity key `k`. */
ino_t inode_map_ino(const struct plyfs *fs, struct node_key k);

#endif
