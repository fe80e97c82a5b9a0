// SPDX-License-Identifier: GPL-2.0-or-later
/* workdir.c - the work directory (see workdir.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "autofd.h"
#include "layer.h"
#include "ovl_names.h"
#include "workdir.h"

char *workdir_tmpname(void)
{
	static atomic_ulong counter;
	return g_strdup_printf(PLYFS_TMP_PREFIX "%d.%lu", (int)getpid(),
			       atomic_fetch_add(&counter, 1));
}

struct dirent64_rec {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Empties directory `fd` (opened for reading). Entries removed while reading may make getdents
 * skip others, so a pass that removed something is followed by another from the start. */
static int empty_dir(int fd)
{
	g_autofree char *buf = g_malloc(32768);
	for (;;) {
		unsigned removed = 0;
		ssize_t n;
		while ((n = layer_getdents(fd, buf, 32768)) > 0) {
			for (ssize_t pos = 0; pos < n;) {
				struct dirent64_rec *d = (void *)(buf + pos);
				pos += d->d_reclen;
				if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
					continue;
				int r = workdir_rmtree(fd, d->d_name);
				if (r < 0 && r != -ENOENT)
					return r;
				removed++;
			}
		}
		if (n < 0)
			return (int)n;
		if (removed == 0)
			return 0;
		if (lseek(fd, 0, SEEK_SET) < 0)
			return -errno;
	}
}

int workdir_rmtree(int dirfd, const char *name)
{
	int r = layer_unlinkat(dirfd, name, 0);
	if (r != -EISDIR && r != -EPERM)
		return r;
	autofd int fd = layer_openat(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	r = empty_dir(fd);
	if (r < 0)
		return r;
	return layer_unlinkat(dirfd, name, AT_REMOVEDIR);
}

int workdir_prepare(struct plyfs *fs, char **err)
{
	if (fs->work_fd < 0)
		return 0;
	/* Before anything in the workdir is touched: W/work may be a live mount's. */
	int r = workdir_lock(fs, err);
	if (r < 0)
		return r;
	r = layer_mkdirat(fs->work_fd, PLYFS_WORK_SUBDIR, 0700);
	if (r < 0 && r != -EEXIST) {
		*err = g_strdup_printf("workdir '%s': cannot create '%s': %s",
				       fs->params->workdir, PLYFS_WORK_SUBDIR, g_strerror(-r));
		return r;
	}
	autofd int rd = layer_openat(fs->work_fd, PLYFS_WORK_SUBDIR, O_RDONLY | O_DIRECTORY, 0);
	if (rd < 0 || (r = empty_dir(rd)) < 0) {
		r = rd < 0 ? rd : r;
		*err = g_strdup_printf("workdir '%s': cannot clean '%s': %s", fs->params->workdir,
				       PLYFS_WORK_SUBDIR, g_strerror(-r));
		return r;
	}
	fs->work_dirfd = layer_openat(fs->work_fd, PLYFS_WORK_SUBDIR, O_PATH | O_DIRECTORY, 0);
	if (fs->work_dirfd < 0) {
		*err = g_strdup_printf("workdir '%s': %s", fs->params->workdir,
				       g_strerror(-fs->work_dirfd));
		return fs->work_dirfd;
	}
	return 0;
}

int workdir_xattr_probe(struct plyfs *fs, const char *prefix)
{
	g_autofree char *xname = g_strconcat(prefix, OVL_XATTR_OPAQUE_SUFFIX, NULL);
	int r = layer_setxattr(fs->work_dirfd, NULL, xname, "0", 1, 0);
	if (r == 0)
		layer_removexattr(fs->work_dirfd, NULL,
				  xname); /* W/work is emptied at each mount */
	return r;
}
