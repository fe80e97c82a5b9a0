// SPDX-License-Identifier: GPL-2.0-or-later
/* file.c - open files and symlink targets (see file.h). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "file.h"
#include "inode.h"

int file_open(struct plyfs *fs, struct node *n, int flags, struct open_file **out)
{
	if (S_ISDIR(n->type))
		return -EISDIR;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;

	auto_lfd struct lfd dir = LFD_INIT;
	g_autofree char *name = NULL;
	int r = inode_locate(fs, n, &dir, &name);
	if (r < 0)
		return r;
	/* O_NONBLOCK matters for fifos (an open of a fifo must not block a daemon thread
	 * differently from what the caller asked for). */
	int fd = layer_openat(dir.fd, name, O_RDONLY | (flags & (O_NONBLOCK | O_DIRECT)), 0);
	if (fd < 0)
		return fd;

	struct open_file *fh = g_new0(struct open_file, 1);
	fh->node = node_ref(fs->nodes, n);
	fh->fd = fd;
	fh->from_lower = !fs->layers[inode_top_layer(n)].upper;
	*out = fh;
	return 0;
}

void file_release(struct plyfs *fs, struct open_file *fh)
{
	close(fh->fd);
	node_put(fs->nodes, fh->node);
	g_free(fh);
}

ssize_t file_readlink(struct plyfs *fs, struct node *n, char *buf, size_t size)
{
	if (!S_ISLNK(n->type))
		return -EINVAL;
	auto_lfd struct lfd dir = LFD_INIT;
	g_autofree char *name = NULL;
	int r = inode_locate(fs, n, &dir, &name);
	if (r < 0)
		return r;
	return layer_readlinkat(dir.fd, name, buf, size);
}
