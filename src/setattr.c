// SPDX-License-Identifier: GPL-2.0-or-later
/* setattr.c - SETATTR (see setattr.h). */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>

#include "autofd.h"
#include "copy_up.h"
#include "inode.h"
#include "override.h"
#include "setattr.h"

/* Where the change is made: an open fd, or (dirfd, name), name NULL for a directory itself. */
struct target {
	int fd;
	int dirfd;
	const char *name;
};

static int set_mode(const struct target *t, mode_t mode)
{
	return t->fd >= 0 ? layer_fchmod(t->fd, mode) : layer_fchmodat(t->dirfd, t->name, mode);
}

static int set_owner(struct plyfs *fs, const struct target *t, const struct stat *attr, int to_set)
{
	uint32_t uid = (uint32_t)-1, gid = (uint32_t)-1;
	if ((to_set & FUSE_SET_ATTR_UID) &&
	    idmap_to_stored(&fs->params->uidmap, attr->st_uid, &uid) < 0)
		return -EINVAL;
	if ((to_set & FUSE_SET_ATTR_GID) &&
	    idmap_to_stored(&fs->params->gidmap, attr->st_gid, &gid) < 0)
		return -EINVAL;
	if (t->fd >= 0)
		return layer_fchown(t->fd, uid, gid);
	return layer_fchownat(t->dirfd, t->name, uid, gid);
}

static int set_size(const struct target *t, off_t size)
{
	if (t->fd >= 0)
		return layer_ftruncate(t->fd, size);
	autofd int fd = t->name ? layer_openat(t->dirfd, t->name, O_WRONLY, 0)
				: layer_reopen(t->dirfd, O_WRONLY);
	return fd < 0 ? fd : layer_ftruncate(fd, size);
}

static struct timespec pick_time(int to_set, int set_bit, int now_bit, struct timespec given)
{
	if (to_set & now_bit)
		return (struct timespec){.tv_nsec = UTIME_NOW};
	if (to_set & set_bit)
		return given;
	return (struct timespec){.tv_nsec = UTIME_OMIT};
}

static int set_times(const struct target *t, const struct stat *attr, int to_set)
{
	struct timespec ts[2] = {
		pick_time(to_set, FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, attr->st_atim),
		pick_time(to_set, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, attr->st_mtim),
	};
	if (t->fd >= 0)
		return layer_futimens(t->fd, ts);
	return layer_utimensat(t->dirfd, t->name, ts);
}

/*
 * xattr_permissions (override.h): owner and mode go into the entry's override xattr instead of
 * its inode, as chown and chmod would change them: a new owner clears setuid, and setgid where
 * the group may execute, of a non-directory; an explicit mode in the same call wins. Returns 1
 * for an entry that holds no override (a symlink...: the inode is changed), else 0 or -errno.
 */
static int override_owner_mode(struct plyfs *fs, const struct target *t, const struct stat *attr,
			       int to_set)
{
	struct stat st;
	int r = t->fd >= 0 ? layer_fstat(t->fd, &st)
			   : (t->name ? layer_fstatat(t->dirfd, t->name, &st)
				      : layer_fstat(t->dirfd, &st));
	if (r < 0)
		return r;
	if (!override_holds(fs, st.st_mode))
		return 1;
	int dirfd = t->fd >= 0 ? t->fd : t->dirfd;
	const char *name = t->fd >= 0 ? NULL : t->name;
	struct override o;
	override_get(fs, dirfd, name, &st, &o);
	if ((to_set & FUSE_SET_ATTR_UID) &&
	    idmap_to_stored(&fs->params->uidmap, attr->st_uid, &o.uid) < 0)
		return -EINVAL;
	if ((to_set & FUSE_SET_ATTR_GID) &&
	    idmap_to_stored(&fs->params->gidmap, attr->st_gid, &o.gid) < 0)
		return -EINVAL;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && !S_ISDIR(o.mode)) {
		o.mode &= ~(mode_t)S_ISUID;
		if (o.mode & S_IXGRP)
			o.mode &= ~(mode_t)S_ISGID;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		o.mode = (o.mode & S_IFMT) | (attr->st_mode & 07777);
	return override_set(fs, dirfd, name, &o);
}

/* What a SETATTR can change besides ctime. */
#define SETATTR_CHANGES                                                                            \
	(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |         \
	 FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME |                     \
	 FUSE_SET_ATTR_MTIME_NOW)

static int apply(struct plyfs *fs, const struct target *t, const struct stat *attr, int to_set)
{
	int r = 0;
	/* chown(path, -1, -1) reaches us as a SETATTR that changes nothing: it still moves ctime
	 * (Linux, kernel overlayfs), which the same chown on the layer entry does. */
	bool ctime_only = !(to_set & SETATTR_CHANGES);
	int owner_mode = to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_MODE);
	if (owner_mode && override_on(fs)) {
		r = override_owner_mode(fs, t, attr, to_set);
		if (r <= 0)
			to_set &= ~owner_mode; /* done in the xattr, or failed */
		r = r < 0 ? r : 0;
	}
	/* Owner before mode: chown clears setuid/setgid, an explicit mode in the same call wins. */
	if (r == 0 && ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) || ctime_only))
		r = set_owner(fs, t, attr, to_set);
	if (r == 0 && (to_set & FUSE_SET_ATTR_MODE))
		r = set_mode(t, attr->st_mode & 07777);
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		r = set_size(t, attr->st_size);
	if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW |
				 FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)))
		r = set_times(t, attr, to_set);
	return r;
}

static int apply_noting(struct plyfs *fs, const struct target *t, const struct stat *attr,
			int to_set)
{
	int r = apply(fs, t, attr, to_set);
	/* After the change, failed or not (it may be partly made): a new mode or owner may carry
	 * a setuid or setgid bit that handles took this file not to have (file.h, file_nopriv). */
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		file_modes_changed(fs);
	return r;
}

int setattr_apply(struct plyfs *fs, struct node *n, struct open_file *of, const struct stat *attr,
		  int to_set, struct stat *out)
{
	bool no_data = (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == 0;
	struct target t = {.fd = -1, .dirfd = -1};
	if (of && S_ISREG(n->type)) {
		/* Through an open file: the name it was opened by is the kernel's. */
		int r = copy_up_inode_at(fs, n, NULL, !no_data);
		t.fd = r < 0 ? r : file_fd(fs, of);
		if (t.fd < 0)
			return t.fd;
		r = apply_noting(fs, &t, attr, to_set);
		return r < 0 ? r : file_getattr(fs, of, out);
	}
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	if (r == 0)
		r = copy_up_at(fs, n, &loc, !no_data);
	/* Changes by name: not on an entry that took n's name since (inode.h, "Identity"). */
	if (r == 0)
		r = inode_verify(&loc);
	if (r < 0)
		return r;
	t.dirfd = loc.fd;
	t.name = loc.name;
	r = apply_noting(fs, &t, attr, to_set);
	return r < 0 ? r : inode_stat(fs, n, &loc, out);
}
