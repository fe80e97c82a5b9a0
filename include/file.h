/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * file.h - open regular files: OPEN / READ / RELEASE, and READLINK.
 *
 * A file handle holds one fd of the file's top entry, opened read-only with O_NOFOLLOW, and a
 * reference on the node (the node is not freed while the file is open, whatever the kernel
 * forgets). Files from a lower layer never change while mounted, so the kernel may keep their page
 * cache across opens (keep_cache).
 */
#ifndef PLYFS_FILE_H
#define PLYFS_FILE_H

#include <stdbool.h>

#include "fs.h"

struct open_file {
	struct node *node; /* referenced */
	int fd;
	bool from_lower;
};

/* Opens n for reading. Write access is refused with -EROFS until the write path exists. */
int file_open(struct plyfs *fs, struct node *n, int flags, struct open_file **out);
void file_release(struct plyfs *fs, struct open_file *fh);

/* The target of symlink n into buf (not NUL-terminated). Returns its length or -errno. */
ssize_t file_readlink(struct plyfs *fs, struct node *n, char *buf, size_t size);

#endif
