/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xattr_name.h - the leaf rules of extended attributes: which names are the overlay's own, and the
 * size rules of the syscalls. Pure functions, no layer access: copy_up.c (what a copy-up copies),
 * status.c (its reply) and the request handlers of xattr.h use them, and nothing here depends on
 * those, so the modules form no cycle.
 *
 * The overlay's own names (never listed, read as absent, refused with EPERM when set or removed,
 * never copied up): "trusted.overlay.*", "user.overlay.*", "user.fuseoverlayfs.*", and plyfs' own
 * "user.plyfs.*" and "trusted.plyfs.*" (ovl_names.h).
 */
#ifndef PLYFS_XATTR_NAME_H
#define PLYFS_XATTR_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Is `name` one of the overlay's own attributes? */
bool xattr_is_private(const char *name);

/* A name setxattr(2) and removexattr(2) refuse with ERANGE before any filesystem sees it (empty, or
 * longer than XATTR_NAME_MAX). */
bool xattr_name_refused(const char *name);

/* A value setxattr(2) refuses with E2BIG (longer than XATTR_SIZE_MAX). */
bool xattr_value_too_big(size_t size);

/* Hands `value` out with getxattr(2)'s size semantics: its length for size 0, -ERANGE when it
 * does not fit, else copied to buf. */
ssize_t xattr_copy_value(const void *value, size_t len, char *buf, size_t size);

#endif
