// SPDX-License-Identifier: GPL-2.0-or-later
/* copy_up.c - bringing entries up into the upper layer (see copy_up.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autofd.h"
#include "copy_data.h"
#include "copy_up.h"
#include "errors.h"
#include "fileattr.h"
#include "index.h"
#include "inode.h"
#include "log.h"
#include "origin.h"
#include "ovl_names.h"
#include "override.h"
#include "ovl_xattr.h"
#include "workdir.h"
#include "xattr_name.h"

/* --- metadata --- */

/* Copies the user-visible xattrs (not the overlay's own) of (sdir, sname) to (ddir, dname). A
 * name the destination refuses (user.* on a symlink, trusted.* rootless) is skipped. */
/* A POSIX ACL read through an id-mapped lower names shown ids (the kernel maps them there too):
 * mapped back for the upper; -EINVAL when one of them has no stored id. */
static int acl_to_stored(struct plyfs *fs, int sdir, const char *x, char *val, size_t len)
{
	if (strcmp(x, "system.posix_acl_access") != 0 && strcmp(x, "system.posix_acl_default") != 0)
		return 0;
	if (!layers_fd_idmapped(fs->layers, fs->n_layers, sdir))
		return 0;
	return idmap_acl(&fs->params->uidmap, &fs->params->gidmap, val, len, 0);
}

static int copy_xattrs(struct plyfs *fs, int sdir, const char *sname, int ddir, const char *dname)
{
	ssize_t len = layer_listxattr(sdir, sname, NULL, 0);
	if (len <= 0)
		return (len == -ENOTSUP || len == -EOPNOTSUPP || len == 0) ? 0 : (int)len;
	g_autofree char *list = g_malloc((gsize)len);
	len = layer_listxattr(sdir, sname, list, (size_t)len);
	if (len < 0)
		return (int)len;
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
		const char *x = list + off;
		if (xattr_is_private(x))
			continue;
		ssize_t vlen = layer_getxattr(sdir, sname, x, NULL, 0);
		if (vlen < 0)
			continue;
		g_autofree char *val = g_malloc((gsize)vlen + 1);
		vlen = layer_getxattr(sdir, sname, x, val, (size_t)vlen);
		/* An ACL entry the mapping cannot store is left out, as an xattr the upper refuses.
		 */
		if (vlen < 0 || acl_to_stored(fs, sdir, x, val, (size_t)vlen) < 0)
			continue;
		int r = layer_setxattr(ddir, dname, x, val, (size_t)vlen, 0);
		if (r < 0 && r != -EPERM && r != -ENOTSUP && r != -EOPNOTSUPP)
			return r;
	}
	return 0;
}

/* Owner, mode and times of `st` on the temporary entry (name NULL: the fd itself). Owner first:
 * chown clears setuid/setgid bits, which the mode then restores. */
static int copy_attrs(int dirfd, const char *name, const struct stat *st)
{
	int r = name ? layer_fchownat(dirfd, name, st->st_uid, st->st_gid)
		     : layer_fchown(dirfd, st->st_uid, st->st_gid);
	if (r < 0 && !(r == -EPERM && geteuid() != 0))
		return r;
	if (!S_ISLNK(st->st_mode)) {
		r = layer_fchmodat(dirfd, name, st->st_mode & 07777);
		if (r < 0)
			return r;
	}
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	return name ? layer_utimensat(dirfd, name, ts) : layer_futimens(dirfd, ts);
}

/* A source read through an id-mapped lower shows its ids already shifted (layer.h): the copy
 * stores them mapped back, as a chown through the mount would (the overflow id when unmapped,
 * as for a new entry), so that the upper holds stored ids only. */
static void stored_ids(struct plyfs *fs, int src_fd, struct stat *st)
{
	if (!layers_fd_idmapped(fs->layers, fs->n_layers, src_fd))
		return;
	st->st_uid = idmap_new_owner(&fs->params->uidmap, st->st_uid);
	st->st_gid = idmap_new_owner(&fs->params->gidmap, st->st_gid);
}

/* --- one entry --- */

struct cu {
	struct plyfs *fs;
	struct node *n;
	const char *name;     /* n's name in the upper parent */
	int src_dir;	      /* the entry's directory in its top layer (a directory: itself) */
	const char *src_name; /* NULL for a directory */
	int dst_dir;	      /* the parent's upper directory */
	int work;	      /* workdir/work */
	struct stat st;
	struct stat up; /* the upper entry made, stat'ed before it took its name (place()) */
	bool data;
	bool orphan; /* removed while open: built in the work dir and never linked anywhere */
	/* One name of a split hard link (index.h): its own file from now on, with no origin (the
	 * kernel's index=off writes none for a lower file with several names). */
	bool split;
	/* A lower file with several names goes through the index (index.h): its name there;
	 * NULL otherwise. */
	const char *index_hex;
	/* The origin written on the copy (origin.h), when `has_origin`: the index's handle for an
	 * indexed file. */
	bool has_origin;
	struct origin_fh origin;
};

static bool want_fsync(const struct plyfs *fs)
{
	return fs->params->fsync && !fs->params->volatile_;
}

/* An entry removed while open keeps living only through n->unlinked_fd: the copy replaces it
 * there. `fd` (taken) is the copy, or -1 to open work/tmpname, which is then removed. */
static int adopt_orphan(struct cu *c, int fd, const char *tmpname)
{
	if (fd < 0) {
		fd = layer_openat(c->work, tmpname, O_PATH, 0);
		if (fd < 0)
			return fd;
		int r = layer_unlinkat(c->work, tmpname, S_ISDIR(c->st.st_mode) ? AT_REMOVEDIR : 0);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	/* The fd it replaces stays open as long as a location still uses it. */
	inode_replace_unlinked(c->n, fd);
	return 0;
}

/* Moves the finished temporary entry into its place in upper (or adopts it, for an orphan). */
static int place(struct cu *c, int *tmpfd, const char *tmpname)
{
	/* Its identity, for the new stack: taken here, since once named it may be replaced. */
	int r = tmpname ? layer_fstatat(c->work, tmpname, &c->up) : layer_fstat(*tmpfd, &c->up);
	if (r < 0)
		return r;
	if (c->index_hex)
		return index_place_copy(c->fs, c->work, *tmpfd, tmpname, c->index_hex,
					c->st.st_nlink, c->dst_dir, c->name);
	if (c->orphan)
		return tmpname ? adopt_orphan(c, -1, tmpname)
			       : adopt_orphan(c, steal_fd(tmpfd), NULL);
	if (tmpname)
		return layer_renameat2(c->work, tmpname, c->dst_dir, c->name, RENAME_NOREPLACE);
	return layer_linkat(*tmpfd, NULL, c->dst_dir, c->name);
}

/* xattr_permissions: the copy records the source's owner and mode as it shows them (its override,
 * or its inode's), which a rootless daemon could not give the copy's inode (override.h). */
static int copy_override(struct cu *c, int dirfd, const char *name)
{
	if (!override_on(c->fs))
		return 0;
	struct override o;
	override_get(c->fs, c->src_dir, c->src_name, &c->st, &o);
	return override_set(c->fs, dirfd, name, &o);
}

/* A regular file: an unnamed file in the work dir, linked into place once complete. */
static int copy_up_regular(struct cu *c)
{
	autofd int src = -1;
	if (c->data && c->st.st_size > 0) {
		src = c->src_name ? layer_openat(c->src_dir, c->src_name, O_RDONLY, 0)
				  : layer_reopen(c->src_dir, O_RDONLY);
		if (src < 0)
			return src;
	}
	g_autofree char *tmpname = NULL;
	autofd int tmp = layer_open_tmpfile(c->work, 0600);
	if (tmp == -EOPNOTSUPP || tmp == -EISDIR || tmp == -EINVAL) {
		tmpname = workdir_tmpname();
		tmp = layer_openat(c->work, tmpname, O_CREAT | O_EXCL | O_RDWR, 0600);
	}
	if (tmp < 0)
		return tmp;
	int r = src >= 0 ? copy_data(src, tmp, c->st.st_size, want_fsync(c->fs)) : 0;
	if (r == 0)
		r = copy_xattrs(c->fs, c->src_dir, c->src_name, tmp, NULL);
	if (r == 0)
		r = copy_override(c, tmp, NULL);
	if (r == 0)
		r = fileattr_copy_up(c->fs, src, c->src_dir, c->src_name, tmp, -1, NULL,
				     c->st.st_mode);
	if (r == 0 && c->has_origin && !c->split)
		r = origin_set(c->fs, tmp, NULL, S_IFREG, &c->origin);
	if (r == 0)
		r = copy_attrs(tmp, NULL, &c->st);
	if (r == 0 && want_fsync(c->fs))
		r = layer_fsync(tmp, false);
	if (r == 0)
		r = place(c, &tmp, tmpname);
	if (r < 0 && tmpname)
		layer_unlinkat(c->work, tmpname, 0);
	return r;
}

/* Builds a directory, symlink or special file under a temporary name. */
static int make_tmp_entry(struct cu *c, const char *tmpname)
{
	if (S_ISDIR(c->st.st_mode))
		return layer_mkdirat(c->work, tmpname, 0700);
	if (S_ISLNK(c->st.st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t len = layer_readlinkat(c->src_dir, c->src_name ? c->src_name : "", target,
					       PATH_MAX);
		if (len < 0)
			return (int)len;
		target[len] = '\0';
		return layer_symlinkat(target, c->work, tmpname);
	}
	return layer_mknodat(c->work, tmpname, c->st.st_mode & S_IFMT, c->st.st_rdev);
}

static int copy_up_other(struct cu *c)
{
	g_autofree char *tmpname = workdir_tmpname();
	int r = make_tmp_entry(c, tmpname);
	if (r < 0)
		return r;
	r = copy_xattrs(c->fs, c->src_dir, c->src_name, c->work, tmpname);
	if (r == 0)
		r = copy_override(c, c->work, tmpname);
	if (r == 0)
		r = fileattr_copy_up(c->fs, -1, c->src_dir, c->src_name, -1, c->work, tmpname,
				     c->st.st_mode);
	if (r == 0 && c->has_origin)
		r = origin_set(c->fs, c->work, tmpname, c->st.st_mode, &c->origin);
	if (r == 0)
		r = copy_attrs(c->work, tmpname, &c->st);
	if (r == 0)
		r = place(c, NULL, tmpname);
	if (r < 0)
		workdir_rmtree(c->work, tmpname);
	return r;
}

/* Which origin the copy gets: the kernel's rule (origin.h): a directory, a file with one link, or
 * one copied up through the index; a lower hard link copied up on its own gets none. */
static int choose_origin(struct cu *c, int layer)
{
	if (c->index_hex) {
		c->has_origin = true; /* index_name() filled it */
		return 0;
	}
	if (!S_ISDIR(c->st.st_mode) && c->st.st_nlink != 1)
		return 0;
	c->has_origin = true;
	return origin_encode(c->fs, layer, c->src_dir, c->src_name, &c->origin);
}

/* The new stack: the upper entry (stat `up`) on top; a directory keeps merging with what it had
 * below. */
static void publish_upper(struct node *n, const struct stat *up)
{
	const struct node_stack *old = node_stack(n);
	unsigned below = S_ISDIR(n->type) ? old->n : 0;
	struct node_stack *s = inode_stack_new(1 + below);
	s->l[0].layer = 0;
	s->l[0].dev = up->st_dev;
	s->l[0].ino = up->st_ino;
	for (unsigned i = 0; i < below; i++) {
		s->l[1 + i].layer = old->l[i].layer;
		s->l[1 + i].fd = __atomic_load_n(&old->l[i].fd, __ATOMIC_ACQUIRE);
		s->l[1 + i].path = g_strdup(old->l[i].path);
		s->l[1 + i].dev = old->l[i].dev;
		s->l[1 + i].ino = old->l[i].ino;
	}
	s->merged = S_ISDIR(n->type) && s->n > 1;
	inode_stack_publish(n, s);
	__atomic_add_fetch(&n->copyup_gen, 1, __ATOMIC_RELEASE);
}

/* Copies n up as `name` in `parent` (n's parent, read under n->lock). `loc`, when not NULL, is n's
 * location computed by the request (its source, while it is current); on success it becomes the
 * upper entry's. */
static int copy_up_one_locked(struct plyfs *fs, struct node *n, struct node *parent,
			      const char *name, struct lfd *loc, bool data)
{
	auto_lfd struct lfd own = LFD_INIT;
	auto_lfd struct lfd dst = LFD_INIT;
	unsigned gen = __atomic_load_n(&n->copyup_gen, __ATOMIC_ACQUIRE);
	bool orphan = inode_is_orphan(n);
	struct lfd *src = loc && loc->fd >= 0 && loc->gen == gen ? loc : &own;
	int r = src == &own ? inode_locate(fs, n, &own) : 0;
	if (r == 0 && !orphan)
		r = inode_dirfd(fs, parent, 0, &dst);
	if (r < 0)
		return r;
	struct cu c = {
		.fs = fs,
		.n = n,
		.name = name,
		.src_dir = src->fd,
		.src_name = src->name,
		.dst_dir = dst.fd,
		.work = fs->work_dirfd,
		.data = data,
		.orphan = orphan,
		.split = index_is_split(n),
	};
	r = src->name ? layer_fstatat(src->fd, src->name, &c.st) : layer_fstat(src->fd, &c.st);
	/* Never copy another file into n's place: the source must still be n's entry. */
	if (r == 0)
		r = inode_check(src, &c.st);
	if (r < 0)
		return r;
	stored_ids(fs, src->fd, &c.st);
	/* A copy-up must not show as a change of the parent directory. */
	struct stat pst;
	bool keep_ptimes = !orphan && layer_fstat(dst.fd, &pst) == 0;

	g_autofree char *hex = NULL;
	const char *linked = __atomic_load_n(&n->index_name, __ATOMIC_ACQUIRE);
	bool hardlinked =
		S_ISREG(c.st.st_mode) && !orphan && !c.split && (linked || c.st.st_nlink > 1);
	if (hardlinked && !linked &&
	    index_name(fs, inode_top_layer(n), src->fd, src->name, &hex, c.origin.fb,
		       &c.origin.len) == 0) {
		if (index_exists(fs, hex))
			linked = hex; /* another name of it was copied up before */
		else
			c.index_hex = hex;
	}
	/* The parent may now hold an entry with an origin (the kernel marks it before). */
	if (r == 0 && !orphan)
		r = origin_set_impure(fs, dst.fd);
	if (r == 0 && !linked)
		r = choose_origin(&c, inode_top_layer(n));
	if (r < 0)
		return r;
	if (linked) {
		/* "Link up": the file is in the index already; this name becomes one more link. */
		__atomic_store_n(&n->indexed, true, __ATOMIC_RELEASE);
		r = layer_fstatat(fs->index_dirfd, linked, &c.up);
		if (r == 0)
			r = layer_linkat(fs->index_dirfd, linked, dst.fd, name);
		if (r == 0) {
			publish_upper(n, &c.up);
			/* Borrowed from `parent`, held by the caller: nothing to release. */
			const struct lfd up = {.fd = dst.fd, .name = (char *)name};
			r = index_nlink_after_link(fs, n, &up);
		}
	} else
		r = S_ISREG(c.st.st_mode) ? copy_up_regular(&c) : copy_up_other(&c);
	if (r < 0)
		return r;
	if (keep_ptimes) {
		struct timespec ts[2] = {pst.st_atim, pst.st_mtim};
		layer_utimensat(dst.fd, NULL, ts);
	}
	if (c.index_hex) {
		__atomic_store_n(&n->indexed, true, __ATOMIC_RELEASE);
		if (!n->lower_nlink)
			__atomic_store_n(&n->lower_nlink, (int)c.st.st_nlink, __ATOMIC_RELEASE);
	}
	if (hex && !n->index_name)
		__atomic_store_n(&n->index_name, g_steal_pointer(&hex), __ATOMIC_RELEASE);
	if (!linked)
		publish_upper(n, &c.up);
	/* After the stack: until then its st_ino comes from the entry on top (inode.c). */
	if (c.split && !orphan)
		index_split_done(fs, n, dst.fd, name, &c.up);
	/* Found by its upper inode too, where its origin cannot be verified (node.h, IDENTITY). */
	if (!S_ISDIR(n->type))
		node_table_set_upper(fs->nodes, n, c.up.st_dev, c.up.st_ino);
	if (!loc)
		return 0;
	/* The request goes on with the entry it just made. */
	gen = __atomic_load_n(&n->copyup_gen, __ATOMIC_ACQUIRE);
	lfd_release(loc);
	if (orphan)
		return inode_locate(fs, n, loc);
	if (S_ISDIR(n->type))
		r = inode_dirfd(fs, n, 0, loc);
	else
		r = inode_locate_child(fs, parent, name, 0, loc);
	if (r == 0 && loc->name) {
		loc->dev = c.up.st_dev;
		loc->ino = c.up.st_ino;
		loc->replaceable = true;
	}
	if (r == 0)
		loc->gen = gen;
	return r;
}

static int copy_up_one(struct plyfs *fs, struct node *n, struct lfd *loc, bool data)
{
	g_mutex_lock(&n->lock);
	int r = 0;
	bool done = false;
	bool split = false;
	g_autofree char *name = NULL;
	if (!inode_has_upper(fs, n)) {
		done = true;
		split = index_is_split(n);
		struct node *parent = node_parent_name(fs->nodes, n, &name);
		r = parent ? copy_up_one_locked(fs, n, parent, name, loc, data) : -ESTALE;
		node_put(fs->nodes, parent);
	}
	g_mutex_unlock(&n->lock);
	/* A directory that now merges with what is below shows st_nlink 1 (merged), a split hard
	 * link (index.h) its own upper inode's 1: the kernel's cached attributes of it are stale
	 * (an open's reply carries none). */
	if (r == 0 && done && (S_ISDIR(n->type) || split) && fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, n->nodeid, -1, 0);
	if (done)
		atomic_fetch_add_explicit(r < 0 ? &fs->copy_ups_failed : &fs->copy_ups_done, 1,
					  memory_order_relaxed);
	if (r < 0)
		errors_note_copy_up(-r, n->nodeid, name); /* counted, logged rate-limited */
	return r;
}

/* The ancestors of n that exist only below, farthest first, then n itself (with `loc`). */
static int copy_up_chain(struct plyfs *fs, struct node *n, struct lfd *loc, bool data)
{
	/* A node removed while open has no place in the tree any more: only itself is copied. */
	if (inode_is_orphan(n))
		return copy_up_one(fs, n, loc, data);
	g_autoptr(GPtrArray) chain = g_ptr_array_new();
	struct node *cur = node_parent_name(fs->nodes, n, NULL);
	while (cur && !inode_has_upper(fs, cur)) {
		g_ptr_array_add(chain, cur);
		cur = node_parent_name(fs->nodes, cur, NULL);
	}
	node_put(fs->nodes, cur);
	int r = 0;
	for (guint i = chain->len; i-- > 0;) {
		if (r == 0)
			r = copy_up_one(fs, chain->pdata[i], NULL, true);
		node_put(fs->nodes, chain->pdata[i]);
	}
	return r < 0 ? r : copy_up_one(fs, n, loc, data);
}

static int copy_up_at_linking(struct plyfs *fs, struct node *n, struct lfd *loc, bool data,
			      bool link_up)
{
	if (!fs->has_upper)
		return -EROFS;
	int r = 0;
	if (!inode_has_upper(fs, n))
		r = copy_up_chain(fs, n, loc, data);
	else if (link_up) /* a hard-linked file still links up the name it was reached by */
		r = index_link_up_seen(fs, n);
	/* Copied up by another request since `loc` was computed: it names the lower entry. */
	return r == 0 && loc ? inode_relocate(fs, n, loc) : r;
}

int copy_up_at(struct plyfs *fs, struct node *n, struct lfd *loc, bool data)
{
	return copy_up_at_linking(fs, n, loc, data, true);
}

int copy_up_inode_at(struct plyfs *fs, struct node *n, struct lfd *loc, bool data)
{
	return copy_up_at_linking(fs, n, loc, data, false);
}

int copy_up(struct plyfs *fs, struct node *n, bool data)
{
	return copy_up_at(fs, n, NULL, data);
}

int copy_up_as(struct plyfs *fs, struct node *n, struct node *parent, const char *name)
{
	if (inode_has_upper(fs, n))
		return 0;
	int r = copy_up(fs, parent, true);
	if (r < 0)
		return r;
	g_autofree char *old_name = NULL;
	struct node *old_parent = node_parent_name(fs->nodes, n, &old_name);
	if (old_parent && (old_parent != parent || strcmp(old_name, name) != 0)) {
		node_table_move(fs->nodes, n, parent, name);
		node_table_add_alias(fs->nodes, n, old_parent, old_name);
	}
	node_put(fs->nodes, old_parent);
	return copy_up(fs, n, true);
}
