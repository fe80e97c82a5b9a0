// SPDX-License-Identifier: GPL-2.0-or-later
/* index.c - the hard-link index in kernel overlayfs' format (see index.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autofd.h"
#include "index.h"
#include "log.h"
#include "ovl_names.h"
#include "origin.h"
#include "ovl_xattr.h"

void index_init(struct plyfs *fs)
{
	fs->index_dirfd = -1;
	if (!fs->has_upper || !fs->is_root)
		return;
	int r = layer_mkdirat(fs->work_fd, PLYFS_INDEX_SUBDIR, 0700);
	if (r < 0 && r != -EEXIST)
		return;
	fs->index_dirfd = layer_openat(fs->work_fd, PLYFS_INDEX_SUBDIR, O_PATH | O_DIRECTORY, 0);
}

int index_name(struct plyfs *fs, int layer, int dirfd, const char *name, char **hex,
	       unsigned char *fb, size_t *fb_len)
{
	/* A lower filesystem whose origins cannot be told apart has no index (origin.h). */
	if (fs->index_dirfd < 0 || fs->layers[layer].bad_uuid)
		return -EOPNOTSUPP;
	struct origin_fh fh;
	int r = origin_encode(fs, layer, dirfd, name, &fh);
	if (r == 0 && fh.len == 0)
		r = -EOPNOTSUPP;
	if (r < 0)
		return r;
	memcpy(fb, fh.fb, fh.len);
	*fb_len = fh.len;
	*hex = origin_hex(&fh);
	return 0;
}

bool index_exists(struct plyfs *fs, const char *hex)
{
	struct stat st;
	return fs->index_dirfd >= 0 && layer_fstatat(fs->index_dirfd, hex, &st) == 0;
}

static const char *nlink_xattr(void)
{
	return OVL_XATTR_TRUSTED_PREFIX OVL_XATTR_NLINK_SUFFIX;
}

/* A value the kernel would refuse: reported with the file's path, and the upper inode's own count
 * shown instead, as ovl_get_nlink() falls back to. */
static nlink_t nlink_invalid(int dirfd, const char *name, const struct stat *st, int err)
{
	g_autofree char *dir = layer_fd_path(dirfd);
	g_autofree char *path = name ? g_strconcat(dir, "/", name, NULL) : g_strdup(dir);
	ovl_xattr_report_invalid(NULL, "nlink", -1, path, err);
	return st->st_nlink;
}

nlink_t index_nlink(struct plyfs *fs, int dirfd, const char *name, const struct stat *st,
		    int lower_nlink)
{
	char buf[16];
	ssize_t len = layer_getxattr(dirfd, name, nlink_xattr(), buf, sizeof(buf));
	if (len == -ENODATA || len == -ENOTSUP || len == -EOPNOTSUPP)
		return st->st_nlink;
	if (len < 0 && len != -ERANGE)
		return st->st_nlink; /* the layer failed, not its data */
	char base;
	int diff;
	unsigned long n;
	int r = len == -ERANGE ? -ERANGE : ovl_nlink_decode(buf, len, &base, &diff);
	/* Relative to a lower inode this node never saw (an upper file found again after a
	 * remount): the upper's own count, as before; not the value's fault. */
	if (r == 0 && base == 'L' && lower_nlink <= 0)
		return st->st_nlink;
	if (r == 0)
		r = ovl_nlink_apply(base, diff, (unsigned long)lower_nlink, st->st_nlink, &n);
	return r < 0 ? nlink_invalid(dirfd, name, st, r) : (nlink_t)n;
}

int index_set_nlink_upper(struct plyfs *fs, int dirfd, const char *name, nlink_t merged,
			  nlink_t upper)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "U%+d", (int)merged - (int)upper);
	return layer_setxattr(dirfd, name, nlink_xattr(), buf, (size_t)len, 0);
}

int index_set_nlink_lower(struct plyfs *fs, int fd, int diff)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "L%+d", diff);
	return layer_setxattr(fd, NULL, nlink_xattr(), buf, (size_t)len, 0);
}

bool index_covers(struct plyfs *fs, struct node *n)
{
	return fs->index_dirfd >= 0 && S_ISREG(n->type) &&
	       (__atomic_load_n(&n->indexed, __ATOMIC_ACQUIRE) ||
		__atomic_load_n(&n->lower_nlink, __ATOMIC_ACQUIRE) > 1);
}
