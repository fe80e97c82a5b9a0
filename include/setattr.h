/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * setattr.h - SETATTR: mode, owner, size, times. The node is copied up first (a truncation to
 * size 0 copies no data). With a handle (ftruncate, fchmod, ... on an open file) the change goes
 * through the handle's fd, so it works after the name is gone.
 */
#ifndef PLYFS_SETATTR_H
#define PLYFS_SETATTR_H

#include <sys/stat.h>

#include "file.h"
#include "fs.h"

/* `to_set` is FUSE_SET_ATTR_* bits. On success *out holds the new attributes. */
int setattr_apply(struct plyfs *fs, struct node *n, struct open_file *of, const struct stat *attr,
		  int to_set, struct stat *out);

#endif
