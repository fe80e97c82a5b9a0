// SPDX-License-Identifier: GPL-2.0-or-later
/* upper.c - whiteouts, opaque markers and atomic removal in the upper layer (see upper.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "autofd.h"
#include "inode.h"
#include "ovl_names.h"
#include "upper.h"
#include "whiteout.h"
#include "workdir.h"

static char *wh_name(const char *name)
{
	return g_strconcat(OVL_WH_PREFIX, name, NULL);
}

int upper_slot(int updir, const char *name)
{
	struct stat st;
	int r = layer_fstatat(updir, name, &st);
	if (r == 0)
		return whiteout_is_chardev(&st) ? UPPER_WHITEOUT : UPPER_ENTRY;
	if (r != -ENOENT)
		return r;
	r = whiteout_wh_exists(updir, name);
	return r < 0 ? r : (r ? UPPER_WH_FILE : UPPER_EMPTY);
}

static bool refused(int r)
{
	return r == -EPERM || r == -EINVAL || r == -EOPNOTSUPP || r == -ENOTSUP;
}

int upper_make_whiteout(struct plyfs *fs, int updir, const char *name)
{
	int r = layer_mknodat(updir, name, S_IFCHR | 0, makedev(0, 0));
	if (!refused(r))
		return r;
	g_autofree char *wh = wh_name(name);
	autofd int fd = layer_openat(updir, wh, O_CREAT | O_EXCL | O_WRONLY, 0);
	return fd < 0 ? fd : 0;
}

int upper_drop_whiteout(int updir, const char *name, enum upper_slot kind)
{
	if (kind == UPPER_WHITEOUT)
		return layer_unlinkat(updir, name, 0);
	g_autofree char *wh = wh_name(name);
	return layer_unlinkat(updir, wh, 0);
}

int upper_set_opaque(struct plyfs *fs, int dirfd, const char *name)
{
	g_autofree char *xname = g_strconcat(fs->xattr_prefix, OVL_XATTR_OPAQUE_SUFFIX, NULL);
	int r = layer_setxattr(dirfd, name, xname, OVL_XATTR_YES, 1, 0);
	if (!refused(r))
		return r;
	autofd int dir = name ? layer_openat(dirfd, name, O_PATH | O_DIRECTORY, 0) : -1;
	int where = name ? dir : dirfd;
	if (where < 0)
		return where;
	autofd int fd = layer_openat(where, OVL_OPQ_NAME, O_CREAT | O_EXCL | O_WRONLY, 0);
	return fd < 0 ? fd : 0;
}

int upper_lower_positive(struct plyfs *fs, struct node *parent, const char *name)
{
	const struct node_stack *s = node_stack(parent);
	for (unsigned i = 0; i < s->n; i++) {
		int layer = s->l[i].layer;
		if (fs->layers[layer].upper)
			continue;
		auto_lfd struct lfd dir = LFD_INIT;
		int r = inode_dirfd(fs, parent, layer, &dir);
		if (r < 0)
			return r;
		struct stat st;
		r = layer_fstatat(dir.fd, name, &st);
		if (r == 0)
			return whiteout_is_chardev(&st) ? 0 : 1;
		if (r != -ENOENT)
			return r;
		r = whiteout_wh_exists(dir.fd, name);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return 0;
}

int upper_discard(struct plyfs *fs, int updir, const char *name, bool whiteout)
{
	g_autofree char *tmp = workdir_tmpname();
	int r = layer_renameat2(updir, name, fs->work_dirfd, tmp, whiteout ? RENAME_WHITEOUT : 0);
	if (r < 0 && whiteout && refused(r)) {
		/* No RENAME_WHITEOUT here: move it out, then put a whiteout of the other form in. */
		r = layer_renameat2(updir, name, fs->work_dirfd, tmp, 0);
		if (r == 0)
			r = upper_make_whiteout(fs, updir, name);
	}
	if (r < 0)
		return r;
	/* The entry is out of sight now; failing to delete it only leaves garbage in the work
	 * directory, which the next mount removes. */
	workdir_rmtree(fs->work_dirfd, tmp);
	return 0;
}
