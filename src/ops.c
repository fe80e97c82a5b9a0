// SPDX-License-Identifier: GPL-2.0-or-later
/* ops.c - FUSE request handlers: resolve the node, call a module, reply once (see ops.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dir.h"
#include "file.h"
#include "inode.h"
#include "log.h"
#include "namei.h"
#include "ops.h"
#include "xattr.h"

static struct plyfs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The node behind `ino` with a request reference, or NULL after answering -ESTALE. */
static struct node *req_node(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_table_get(req_fs(req)->nodes, ino);
	if (!n)
		fuse_reply_err(req, ESTALE);
	return n;
}

/* Drops a request reference. Takes the mount, not the request: a request is freed by its reply,
 * and some references are dropped after replying. */
static void put(struct plyfs *fs, struct node *n)
{
	node_put(fs->nodes, n);
}

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
	struct plyfs *fs = userdata;
	const unsigned want = FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_READDIRPLUS |
			      FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS |
			      FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			      FUSE_CAP_ASYNC_READ;
	conn->want |= want & conn->capable;
	/* Lower files never change while mounted: no need to revalidate the page cache on every
	 * attribute refresh; keep_cache on open says so per file. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->max_write = 1024 * 1024;
	conn->max_readahead = 1024 * 1024;
	log_debug("init: capable %#x want %#x", conn->capable, conn->want);
	(void)fs;
}

static void reply_entry(fuse_req_t req, struct node *n, const struct stat *st)
{
	struct plyfs *fs = req_fs(req);
	struct fuse_entry_param e = {
		.ino = n->nodeid,
		.generation = n->generation,
		.attr = *st,
		.attr_timeout = fs->timeout,
		.entry_timeout = fs->timeout,
	};
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		/* The request was interrupted: the kernel did not take the lookup. */
		node_table_forget(fs->nodes, n->nodeid, 1);
	}
}

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct plyfs *fs = req_fs(req);
	struct node *dir = req_node(req, parent);
	if (!dir)
		return;
	struct node *n = NULL;
	struct stat st;
	int r;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		r = namei_lookup_dot(fs, dir, name, &n, &st);
	else
		r = namei_lookup(fs, dir, name, &n, &st);
	put(fs, dir);
	if (r == -ENOENT) {
		/* A negative entry the kernel may cache as long as positive ones. */
		struct fuse_entry_param e = {.ino = 0, .entry_timeout = fs->timeout};
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, n, &st);
	put(fs, n);
}

static void ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_table_forget(req_fs(req)->nodes, ino, nlookup);
	fuse_reply_none(req);
}

static void ops_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	/* struct fuse_forget_data is {uint64 ino; uint64 nlookup}: the same layout. */
	G_STATIC_ASSERT(sizeof(struct fuse_forget_data) == sizeof(struct node_forget_item));
	node_table_forget_batch(req_fs(req)->nodes, (const struct node_forget_item *)forgets, count);
	fuse_reply_none(req);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct stat st;
	int r;
	if (fi && S_ISREG(n->type)) {
		/* fstat(fd) of an open file must work even when its name is gone. */
		struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
		r = layer_fstat(of->fd, &st);
		if (r == 0)
			inode_fill_attr(fs, n, &st);
	} else {
		r = inode_getattr(fs, n, &st);
	}
	put(fs, n);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void ops_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	char buf[PATH_MAX + 1];
	ssize_t len = file_readlink(fs, n, buf, sizeof(buf) - 1);
	put(fs, n);
	if (len < 0) {
		fuse_reply_err(req, (int)-len);
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

static void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct open_file *of = NULL;
	int r = file_open(fs, n, fi->flags, &of);
	put(fs, n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->keep_cache = of->from_lower;
	if (fuse_reply_open(req, fi) == -ENOENT)
		file_release(fs, of); /* interrupted: no RELEASE will come */
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = of->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	file_release(req_fs(req), (struct open_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* nothing buffered: files are open read-only */
}

static void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct dir_handle *dh = NULL;
	int r = dir_open(fs, n, &dh);
	put(fs, n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)dh;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_release(fs, dh);
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	g_autofree char *buf = g_malloc(size);
	ssize_t used = dir_read(req_fs(req), req, dh, buf, size, off, plus);
	if (used < 0)
		fuse_reply_err(req, (int)-used);
	else
		fuse_reply_buf(req, buf, (size_t)used);
}

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, false);
}

static void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, true);
}

static void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dir_release(req_fs(req), (struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ops_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct plyfs *fs = req_fs(req);
	struct statvfs st;
	/* The upper layer's filesystem is where new data goes; without one, the top lower's. */
	int r = layer_fstatvfs(fs->layers[0].root_fd, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* access(2) from the mode bits (only reached without default_permissions). */
static int check_access(const struct stat *st, const struct fuse_ctx *ctx, int mask)
{
	if (mask == F_OK)
		return 0;
	if (ctx->uid == 0) {
		if ((mask & X_OK) && !S_ISDIR(st->st_mode) && !(st->st_mode & 0111))
			return -EACCES;
		return 0;
	}
	mode_t bits = st->st_mode & 07;
	if (ctx->uid == st->st_uid)
		bits = (st->st_mode >> 6) & 07;
	else if (ctx->gid == st->st_gid)
		bits = (st->st_mode >> 3) & 07;
	return ((mode_t)mask & ~bits) ? -EACCES : 0;
}

static void ops_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct stat st;
	int r = inode_getattr(fs, n, &st);
	put(fs, n);
	if (r == 0)
		r = check_access(&st, fuse_req_ctx(req), mask);
	if (r == 0 && (mask & W_OK) && fs->params->read_only)
		r = -EROFS;
	fuse_reply_err(req, -r);
}

static void reply_xattr_result(fuse_req_t req, ssize_t r, size_t size, const char *buf)
{
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	g_autofree char *buf = size ? g_malloc(size) : NULL;
	ssize_t r = xattr_get(fs, n, name, buf, size);
	put(fs, n);
	reply_xattr_result(req, r, size, buf);
}

static void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	g_autofree char *buf = size ? g_malloc(size) : NULL;
	ssize_t r = xattr_list(fs, n, buf, size);
	put(fs, n);
	reply_xattr_result(req, r, size, buf);
}

/*
 * Modifying operations: the write path (copy-up) is not built yet, so every one of them answers
 * EROFS, also with an upper layer. Without an upper layer the mount is read-only and the VFS
 * answers EROFS before these are reached.
 */
static void erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	erofs(req);
}

static void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      dev_t rdev)
{
	erofs(req);
}

static void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	erofs(req);
}

static void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	erofs(req);
}

static void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	erofs(req);
}

static void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	erofs(req);
}

static void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	erofs(req);
}

static void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	erofs(req);
}

static void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	erofs(req);
}

static void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	erofs(req);
}

const struct fuse_lowlevel_ops plyfs_ops = {
	.init = ops_init,
	.lookup = ops_lookup,
	.forget = ops_forget,
	.forget_multi = ops_forget_multi,
	.getattr = ops_getattr,
	.readlink = ops_readlink,
	.open = ops_open,
	.read = ops_read,
	.release = ops_release,
	.flush = ops_flush,
	.fsync = ops_fsync,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.readdirplus = ops_readdirplus,
	.releasedir = ops_releasedir,
	.fsyncdir = ops_fsync,
	.statfs = ops_statfs,
	.access = ops_access,
	.getxattr = ops_getxattr,
	.listxattr = ops_listxattr,
	.setattr = ops_setattr,
	.mknod = ops_mknod,
	.mkdir = ops_mkdir,
	.unlink = ops_unlink,
	.rmdir = ops_unlink,
	.symlink = ops_symlink,
	.rename = ops_rename,
	.link = ops_link,
	.setxattr = ops_setxattr,
	.removexattr = ops_removexattr,
	.create = ops_create,
};
