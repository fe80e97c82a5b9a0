/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * index.h - the hard-link index, in kernel overlayfs' index=on format.
 *
 * A lower file with several names (st_nlink > 1) is copied up once, into workdir/index/NAME, where
 * NAME is the hex of its origin file handle (struct ovl_fb: version 0, magic 0xfb, length, flags,
 * handle type, the layer filesystem's uuid, the handle bytes from name_to_handle_at). Each of its
 * names is then a hard link to that one upper inode, made when the name is first changed ("link
 * up"); until then, a lookup of a lower name that finds the index entry reads the copy there. The
 * upper inode carries trusted.overlay.origin (the handle) and trusted.overlay.nlink, the merged
 * link count relative to the lower ("L+N") or upper ("U+N") inode's, as the kernel keeps them, so
 * kernel overlayfs (index=on) reads plyfs' upper back the same.
 *
 * Only in the trusted.overlay.* format (fs.h; the user.overlay.* one has none here), and only for
 * lower filesystems whose uuid the kernel accepts (origin.h: a null one is fine, one shared by two
 * lower filesystems is not; the index is off for the mount then).
 */
#ifndef PLYFS_INDEX_H
#define PLYFS_INDEX_H

#include <stdbool.h>
#include <sys/stat.h>

#include "fs.h"
#include "ovl_names.h"

/* Creates and opens workdir/index (fs->index_dirfd) and reads the layers' uuids. Without it
 * (rootless, no upper), hard links are copied up one name at a time. */
void index_init(struct plyfs *fs);

/* The index name of lower entry (dirfd, name) of `layer`, and its origin handle. Returns 0 and
 * fills *hex (g_free) and fb/fb_len, or -errno (-EOPNOTSUPP: no index for this layer). */
int index_name(struct plyfs *fs, int layer, int dirfd, const char *name, char **hex,
	       unsigned char *fb, size_t *fb_len);

/* Does the index hold `hex`? */
bool index_exists(struct plyfs *fs, const char *hex);

/* trusted.overlay.nlink: the merged st_nlink of a file whose upper inode is `st` (lower link
 * count `lower_nlink`), read from (dirfd, name) (name NULL: the fd itself). */
nlink_t index_nlink(struct plyfs *fs, int dirfd, const char *name, const struct stat *st,
		    int lower_nlink);
/* Records the merged link count relative to the upper inode (before a link/unlink/rename
 * changes both by the same amount). */
int index_set_nlink_upper(struct plyfs *fs, int dirfd, const char *name, nlink_t merged,
			  nlink_t upper);
/* The same relative to the lower inode (at copy-up). */
int index_set_nlink_lower(struct plyfs *fs, int fd, int diff);

/* Is n a file the index takes care of (a lower file with several names, or one in the index)?
 * Removing or replacing one of its names copies it up first, as kernel overlayfs does. */
bool index_covers(struct plyfs *fs, struct node *n);

#endif
