/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remove.h - UNLINK and RMDIR in the merged view.
 *
 * A name that also exists below leaves a whiteout, put in place in the same step that takes the
 * upper entry away (renameat2(RENAME_WHITEOUT) into the work directory, where it is deleted). A
 * directory must be empty in the merged view: entries that exist only in lower layers count
 * (ENOTEMPTY). The node loses its identity (ext4 reuses inode numbers at once) and is marked
 * unlinked, so fstat of a handle still open on it shows st_nlink 0.
 */
#ifndef PLYFS_REMOVE_H
#define PLYFS_REMOVE_H

#include <stdbool.h>

#include "fs.h"
#include "inode.h"

int remove_entry(struct plyfs *fs, struct node *parent, const char *name, bool dir);

/* Called just before the name (parent, name) of n is removed (unlink, rmdir, rename over it).
 * `loc` is the request's location of n (LFD_INIT when it has none yet; located when needed).
 * With `last` (no other name remains), n shows st_nlink 0 from now on. When it was the name n is
 * reached by and another name of a hard-linked file remains, n moves to that one. When n loses its
 * last name and is a non-directory (the kernel still knows it: an open, a stat may be on its way)
 * or an open directory, an O_PATH fd of the entry (checked to be n's, inode_check()) is kept in
 * node->unlinked_fd, the way to it from now on until n is freed (inode_keep_unlinked()). */
void remove_name_gone(struct plyfs *fs, struct node *n, struct lfd *loc, struct node *parent,
		      const char *name, bool last);
/* Undoes remove_name_gone() when the removal failed after all: the kept fd is dropped (closed
 * once no location uses it). */
void remove_name_restore(struct node *n);

/* -ENOTEMPTY unless the merged directory n has no entries. */
int remove_check_empty(struct plyfs *fs, struct node *n);

#endif
