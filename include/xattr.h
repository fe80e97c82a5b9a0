/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xattr.h - extended attributes in the merged view: the GETXATTR, LISTXATTR, SETXATTR and
 * REMOVEXATTR handlers (the name and size rules they apply: xattr_name.h).
 *
 * A node's xattrs are those of its top entry. The overlay's own attributes (trusted.overlay.*,
 * user.overlay.*, user.fuseoverlayfs.*, user.plyfs.*) are never listed and read as absent
 * (-ENODATA). noxattrs=1 answers -ENOTSUP to everything; noxattrs=2 shows no xattrs at all.
 * Size semantics are getxattr(2)'s: size 0 asks for the length; a short buffer gives -ERANGE.
 */
#ifndef PLYFS_XATTR_H
#define PLYFS_XATTR_H

#include <stdbool.h>
#include <sys/types.h>

#include "fs.h"

ssize_t xattr_get(struct plyfs *fs, struct node *n, const char *name, char *buf, size_t size);
ssize_t xattr_list(struct plyfs *fs, struct node *n, char *buf, size_t size);
/* SETXATTR / REMOVEXATTR: copy-up first; the overlay's own names are refused with -EPERM. A name
 * that is empty or over XATTR_NAME_MAX is -ERANGE, a value over XATTR_SIZE_MAX -E2BIG (as
 * setxattr(2)), both before the copy-up. */
int xattr_set(struct plyfs *fs, struct node *n, const char *name, const char *value, size_t size,
	      int flags);
int xattr_remove(struct plyfs *fs, struct node *n, const char *name);

#endif
