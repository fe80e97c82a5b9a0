/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rename.h - RENAME with flags 0, RENAME_NOREPLACE and RENAME_EXCHANGE.
 *
 * Both parents and the source (and, for an exchange, the target) are copied up, then one
 * renameat2() moves the upper entries. Where the source name also exists below, a whiteout is left
 * in the same step (RENAME_WHITEOUT). A directory that merges with lower layers keeps doing so at
 * its new place: its old lower path is recorded in "<prefix>redirect" in the kernel's format
 * (absolute, "/a/b"), and in the node's stack; in the user.overlay.* format, which has no
 * redirects (fs.h), such a rename fails with -EXDEV before anything is copied up, as kernel
 * overlayfs' does with userxattr (mv(1) then copies). A failed redirect write fails the rename
 * (the kernel: EXDEV only where the upper has no xattrs). A moved directory without lower parts
 * that lands on a name existing below is made opaque. An existing target directory must be empty in
 * the merged view. Renames are serialised by one rename lock (directory renames change the tree's
 * shape).
 */
#ifndef PLYFS_RENAME_H
#define PLYFS_RENAME_H

#include "fs.h"

int rename_entry(struct plyfs *fs, struct node *parent, const char *name, struct node *newparent,
		 const char *newname, unsigned flags);

#endif
