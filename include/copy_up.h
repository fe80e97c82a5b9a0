/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * copy_up.h - bringing a node's top entry up into the upper layer.
 *
 * Triggered before anything changes a node that lives only below: open for write or truncate,
 * setattr, xattr changes, link, rename, and creating or removing inside a directory that exists
 * only below. Ancestors are copied first (iteratively), each directory with its mode, owner, times
 * and xattrs, and the parent directory's times are restored afterwards so a copy-up is invisible.
 *
 * Atomicity: a regular file is built as an O_TMPFILE in workdir/work (or under a temporary name
 * there) with data, xattrs, owner, mode and times, fsync'ed unless fsync=0/volatile, then linked
 * (or renamed with RENAME_NOREPLACE) into its place in upper: upper never holds a partial file.
 * Other types are built under a temporary name in workdir/work and renamed into place.
 * Data (copy_data.h): FICLONE, else copy_file_range, else read/write; holes are kept
 * (SEEK_DATA/SEEK_HOLE); with fsync, written behind the copy so the fsync waits for little.
 *
 * Serialisation: per node (node->lock); the state is re-checked under the lock, so concurrent
 * opens of one file copy it once. Afterwards the node's stack starts with the upper layer and
 * node->copyup_gen is bumped, so handles opened before notice (file.h).
 * The origin is recorded in the kernel's format, and the parent marked impure (origin.h), so that
 * st_ino stays the same, also under kernel overlayfs. A failed write fails the copy-up, as in
 * kernel overlayfs, except where the kernel goes on without it: an upper without xattrs
 * (EOPNOTSUPP: counted under `metadata`, errors.h), and a symlink or special file in the user.*
 * format, which the kernel refuses user.* xattrs (not tried).
 */
#ifndef PLYFS_COPY_UP_H
#define PLYFS_COPY_UP_H

#include <stdbool.h>

#include "fs.h"
#include "inode.h"

/* 0 when n's top entry is (now) in upper; -EROFS without an upper layer; -errno. `data` false
 * skips the file's data (an open with O_TRUNC is about to throw it away). */
int copy_up(struct plyfs *fs, struct node *n, bool data);

/* The same for a request that located n already: `loc` (from inode_locate) is the source, and on
 * success it is n's location in upper (moved there, or located again when another request copied
 * n up since `loc` was computed), so the request goes on with it. On failure `loc` is n's location
 * as before or released. */
int copy_up_at(struct plyfs *fs, struct node *n, struct lfd *loc, bool data);

/* The same, for a change the kernel makes on the file's upper inode wherever it is (xattrs,
 * ovl_xattr_set()), or through an open file (its name was linked up when needed): a hard-linked
 * file already in upper links up no further name. `loc` may be NULL. */
int copy_up_inode_at(struct plyfs *fs, struct node *n, struct lfd *loc, bool data);

/* Copies n up as (parent, name), one of its names (a hard-linked file is reached by several):
 * the name being changed is the one that appears in upper, as with kernel overlayfs. */
int copy_up_as(struct plyfs *fs, struct node *n, struct node *parent, const char *name);

#endif
