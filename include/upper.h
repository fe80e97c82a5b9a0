/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * upper.h - editing the upper layer in the kernel overlayfs format: whiteouts, opaque markers,
 * and removing entries atomically.
 *
 * Whiteouts are 0/0 character devices (renameat2(RENAME_WHITEOUT) or mknod); where the fs or the
 * credentials refuse those (rootless on some filesystems), the ".wh.NAME" file form. Opaque
 * directories get "<prefix>opaque=y" (trusted.overlay. as root, user.overlay. rootless), or a
 * ".wh..wh..opq" entry where xattrs are refused.
 */
#ifndef PLYFS_UPPER_H
#define PLYFS_UPPER_H

#include <stdbool.h>

#include "fs.h"

enum upper_slot {
	UPPER_EMPTY = 0,     /* nothing named so */
	UPPER_WHITEOUT = 1,  /* a 0/0 character device */
	UPPER_WH_FILE = 2,   /* a ".wh.NAME" file */
	UPPER_ENTRY = 3,     /* a real entry */
};

/* What the upper directory `updir` holds at `name`. >= 0 an enum upper_slot, or -errno. */
int upper_slot(int updir, const char *name);

/* Creates a whiteout for `name` in `updir` (which holds nothing of that name). */
int upper_make_whiteout(struct plyfs *fs, int updir, const char *name);
/* Removes a whiteout of either form for `name` in `updir`. */
int upper_drop_whiteout(int updir, const char *name, enum upper_slot kind);

/* Marks the directory (dirfd, name) opaque (name NULL: dirfd itself). */
int upper_set_opaque(struct plyfs *fs, int dirfd, const char *name);

/* Does `name` exist in a layer of `parent` below the upper one (not hidden by a whiteout)?
 * 1 yes, 0 no, -errno. Decides whether removing or renaming `name` must leave a whiteout. */
int upper_lower_positive(struct plyfs *fs, struct node *parent, const char *name);

/* Takes the entry `name` out of `updir` atomically and deletes it (a directory with whatever
 * whiteouts it holds). With `whiteout`, a whiteout takes its place in the same step. */
int upper_discard(struct plyfs *fs, int updir, const char *name, bool whiteout);

#endif
