// SPDX-License-Identifier: GPL-2.0-or-later
/* create.c - new entries in the merged view (see create.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/limits.h>
#include <unistd.h>

#include "autofd.h"
#include "copy_up.h"
#include "origin.h"
#include "create.h"
#include "fileattr.h"
#include "index.h"
#include "inode.h"
#include "namei.h"
#include "override.h"
#include "upper.h"
#include "workdir.h"

/* The owner a new entry gets on disk: the caller's ids mapped back to stored ids (the overflow
 * id for a caller outside the mapping, idmap.h), and the parent's group when the parent is
 * setgid. */
static int new_owner(struct plyfs *fs, const struct create_req *req, const struct stat *pst,
		     uid_t *uid, gid_t *gid)
{
	*uid = idmap_new_owner(&fs->params->uidmap, req->uid);
	*gid = (pst->st_mode & S_ISGID) ? pst->st_gid
					: idmap_new_owner(&fs->params->gidmap, req->gid);
	return 0;
}

/* Makes the entry itself in (dirfd, name). A regular file is opened with `flags` into *fd. */
static int make_entry(int dirfd, const char *name, const struct create_req *req, int *fd)
{
	mode_t perm = req->mode & 07777;
	switch (req->mode & S_IFMT) {
	case S_IFREG: {
		/* O_RDWR whatever was asked: the handle may serve reads of a write-only open.
		 * O_APPEND and O_DIRECT stay with the kernel, as in file.c's open: the buffers
		 * libfuse hands us are not aligned for O_DIRECT. */
		int flags = (req->flags &
			     ~(O_ACCMODE | O_APPEND | O_CREAT | O_EXCL | O_TRUNC | O_DIRECT)) |
			    O_RDWR | O_CREAT | O_EXCL;
		int r = layer_openat(dirfd, name, flags, perm);
		if (r >= 0)
			*fd = r;
		return r < 0 ? r : 0;
	}
	case S_IFDIR:
		return layer_mkdirat(dirfd, name, perm);
	case S_IFLNK:
		return layer_symlinkat(req->target, dirfd, name);
	default:
		return layer_mknodat(dirfd, name, req->mode, req->rdev);
	}
}

/* Owner, then the mode again: chown clears setuid/setgid; new directories of a setgid parent
 * stay setgid. With xattr_permissions both go into the override xattr (override.h), but for a
 * symlink. */
static int set_owner(struct plyfs *fs, int dirfd, const char *name, const struct create_req *req,
		     const struct stat *pst, uid_t uid, gid_t gid)
{
	mode_t type = req->mode & S_IFMT;
	mode_t perm = req->mode & 07777;
	if (type == S_IFDIR && (pst->st_mode & S_ISGID))
		perm |= S_ISGID;
	if (override_holds(fs, type)) {
		struct override o = {
			.uid = uid, .gid = gid, .mode = type | perm, .rdev = req->rdev};
		return override_set(fs, dirfd, name, &o);
	}
	int r = layer_fchownat(dirfd, name, uid, gid);
	if (r < 0)
		return r;
	if (type != S_IFLNK && (perm & (S_ISUID | S_ISGID)))
		r = layer_fchmodat(dirfd, name, perm);
	return r;
}

/* The mode the entry itself is made with: with xattr_permissions the daemon's own 0700/0600 (the
 * mode shown is the xattr's), else the requested one. */
static struct create_req real_req(struct plyfs *fs, const struct create_req *req)
{
	struct create_req r = *req;
	mode_t type = req->mode & S_IFMT;
	if (override_holds(fs, type))
		r.mode = type | (type == S_IFDIR ? 0700 : 0600);
	return r;
}

/* Under a parent with a default ACL the entry is not built in the work dir itself but in a new
 * directory there that carries a copy of that ACL, so the upper filesystem gives it the mode and
 * ACLs it would get in the parent (the kernel's posix_acl_create()). *acldir: that directory's
 * name (to remove afterwards). Its fd or -errno. */
static int acl_build_dir(struct plyfs *fs, int updir, char **acldir)
{
	g_autofree char *acl = g_malloc(XATTR_SIZE_MAX);
	ssize_t len = layer_getxattr(updir, NULL, "system.posix_acl_default", acl, XATTR_SIZE_MAX);
	if (len < 0)
		return (int)len;
	g_autofree char *name = workdir_tmpname();
	int r = layer_mkdirat(fs->work_dirfd, name, 0700);
	if (r < 0)
		return r;
	int fd = layer_openat(fs->work_dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	r = fd < 0 ? fd : layer_setxattr(fd, NULL, "system.posix_acl_default", acl, len, 0);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		layer_unlinkat(fs->work_dirfd, name, AT_REMOVEDIR);
		return r;
	}
	*acldir = g_steal_pointer(&name);
	return fd;
}

/* Builds the entry in the work dir and moves it over the whiteout at `name`. */
static int create_over_whiteout(struct plyfs *fs, int updir, const char *name,
				const struct create_req *req, const struct stat *pst, uid_t uid,
				gid_t gid, bool default_acl, int *fd)
{
	g_autofree char *acldir = NULL;
	autofd int aclfd = default_acl ? acl_build_dir(fs, updir, &acldir) : -1;
	if (default_acl && aclfd < 0)
		return aclfd;
	int work = default_acl ? aclfd : fs->work_dirfd;
	g_autofree char *tmp = workdir_tmpname();
	struct create_req real = real_req(fs, req);
	int r = make_entry(work, tmp, &real, fd);
	if (r == 0)
		r = set_owner(fs, work, tmp, req, pst, uid, gid);
	bool dir = S_ISDIR(req->mode);
	if (r == 0 && dir)
		r = upper_set_opaque(fs, work, tmp);
	if (r == 0)
		r = layer_renameat2(work, tmp, updir, name, dir ? RENAME_EXCHANGE : 0);
	if (r < 0)
		workdir_rmtree(work, tmp);
	else if (dir)
		layer_unlinkat(work, tmp, 0); /* the whiteout, now in the work dir */
	if (acldir)
		layer_unlinkat(fs->work_dirfd, acldir, AT_REMOVEDIR);
	return r;
}

/* With POSIX ACLs the kernel leaves the umask to us: a default ACL on the parent replaces it (the
 * upper filesystem applies that ACL when the entry is made there). */
static bool has_default_acl(int updir)
{
	return layer_getxattr(updir, NULL, "system.posix_acl_default", NULL, 0) > 0;
}

/* Kernel overlayfs makes a new directory in a merged parent opaque even over no whiteout (dir.c
 * ovl_create_upper: an optimization of later lookups, allowed to fail) unless it allows offline
 * changes to the lowers (ovl_allow_offline_changes(): no index, no metacopy, no nfs_export, a
 * redirect_dir other than "on"; measured on 6.18: "follow"/"nofollow" without index leave none,
 * as rootless userxattr mounts do). */
static bool new_dir_opaque(const struct plyfs *fs)
{
	return fs->params->redirect_dir == REDIRECT_ON || fs->index_dirfd >= 0;
}

/* `merged_parent`: the parent merges with lower layers, where a new directory may be made opaque
 * (new_dir_opaque()): the same on-disk result as the kernel's. */
static int create_in_upper(struct plyfs *fs, int updir, const char *name,
			   const struct create_req *given, bool merged_parent, int *fd)
{
	struct create_req masked = *given;
	bool default_acl = (given->umask & 0777) && has_default_acl(updir);
	if (!default_acl)
		masked.mode &= ~(given->umask & 07777);
	const struct create_req *req = &masked;
	struct stat pst;
	uid_t uid = 0;
	gid_t gid = 0;
	int r = layer_fstat(updir, &pst);
	if (r == 0) {
		override_stat(fs, updir, NULL, &pst); /* its setgid bit and group, as shown */
		r = new_owner(fs, req, &pst, &uid, &gid);
	}
	int slot = r < 0 ? r : upper_slot(updir, name);
	if (slot < 0)
		return slot;
	if (slot == UPPER_ENTRY)
		return -EEXIST;
	if (slot == UPPER_WHITEOUT && !(given->umask & 0777))
		default_acl = has_default_acl(updir);
	if (slot == UPPER_WHITEOUT)
		return create_over_whiteout(fs, updir, name, req, &pst, uid, gid, default_acl, fd);

	struct create_req real = real_req(fs, req);
	r = make_entry(updir, name, &real, fd);
	if (r < 0)
		return r;
	r = set_owner(fs, updir, name, req, &pst, uid, gid);
	if (r == 0 && slot == UPPER_EMPTY && merged_parent && S_ISDIR(req->mode) &&
	    new_dir_opaque(fs))
		upper_set_opaque(fs, updir, name); /* may fail: nothing lies below that name */
	if (r == 0 && slot == UPPER_WH_FILE) {
		if (S_ISDIR(req->mode))
			r = upper_set_opaque(fs, updir, name);
		if (r == 0)
			r = upper_drop_whiteout(updir, name, UPPER_WH_FILE);
	}
	if (r < 0 && !S_ISDIR(req->mode))
		layer_unlinkat(updir, name, 0);
	else if (r < 0)
		layer_unlinkat(updir, name, AT_REMOVEDIR);
	return r;
}

int create_entry(struct plyfs *fs, struct node *parent, const char *name,
		 const struct create_req *req, struct node **out, struct stat *st, int *fd_out)
{
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (!S_ISDIR(parent->type))
		return -ENOTDIR; /* before a copy-up: a refused request changes nothing */
	int r = fileattr_check(fs, parent, FA_DIR_ADD);
	if (r == 0)
		r = copy_up(fs, parent, true);
	if (r < 0)
		return r;
	autofd int fd = -1;
	g_mutex_lock(&parent->lock);
	auto_lfd struct lfd updir = LFD_INIT;
	r = inode_dirfd(fs, parent, 0, &updir);
	if (r == 0)
		r = create_in_upper(fs, updir.fd, name, req, node_stack(parent)->n > 1, &fd);
	if (r == 0)
		r = S_ISDIR(req->mode) ? namei_lookup(fs, parent, name, out, st)
				       : namei_lookup_made(fs, parent, name, out, st);
	g_mutex_unlock(&parent->lock);
	if (r == 0)
		fileattr_note_new(*out);
	if (r == 0 && fd_out)
		*fd_out = steal_fd(&fd);
	return r;
}

int create_link(struct plyfs *fs, struct node *n, struct node *newparent, const char *newname,
		struct node **out, struct stat *st)
{
	if (!S_ISDIR(newparent->type))
		return -ENOTDIR; /* the kernel resolves the new name first */
	if (S_ISDIR(n->type))
		return -EPERM;
	int r = fileattr_check(fs, newparent, FA_DIR_ADD);
	if (r == 0)
		r = fileattr_check(fs, n, FA_LINK);
	if (r < 0)
		return r;
	auto_lfd struct lfd src = LFD_INIT;
	r = inode_locate(fs, n, &src);
	if (r == 0)
		r = copy_up_at(fs, n, &src, true);
	if (r == 0)
		r = copy_up(fs, newparent, true);
	/* The merged and upper link counts grow together: record one against the other first. */
	if (r == 0)
		r = index_nlink_prepare(fs, n, &src);
	if (r < 0)
		return r;

	g_mutex_lock(&newparent->lock);
	auto_lfd struct lfd updir = LFD_INIT;
	r = inode_dirfd(fs, newparent, 0, &updir);
	/* A file with an origin linked into a directory makes it impure (ovl_create_or_link()). */
	if (r == 0 && origin_of_node(fs, n))
		r = origin_set_impure(fs, updir.fd);
	int slot = r < 0 ? r : upper_slot(updir.fd, newname);
	if (slot < 0) {
		r = slot;
	} else if (slot == UPPER_ENTRY) {
		r = -EEXIST;
	} else if (slot == UPPER_WHITEOUT) {
		/* Link in the work dir, then over the whiteout: never a moment without either. */
		g_autofree char *tmp = workdir_tmpname();
		r = layer_linkat(src.fd, src.name, fs->work_dirfd, tmp);
		if (r == 0)
			r = layer_renameat2(fs->work_dirfd, tmp, updir.fd, newname, 0);
		if (r < 0)
			layer_unlinkat(fs->work_dirfd, tmp, 0);
	} else {
		r = layer_linkat(src.fd, src.name, updir.fd, newname);
		if (r == 0 && slot == UPPER_WH_FILE)
			r = upper_drop_whiteout(updir.fd, newname, UPPER_WH_FILE);
	}
	if (r == 0)
		r = namei_lookup(fs, newparent, newname, out, st);
	g_mutex_unlock(&newparent->lock);
	return r;
}
