// SPDX-License-Identifier: GPL-2.0-or-later
/* rename.c - RENAME (see rename.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>

#include "copy_up.h"
#include "fileattr.h"
#include "index.h"
#include "inode.h"
#include "namei.h"
#include "origin.h"
#include "ovl_names.h"
#include "remove.h"
#include "rename.h"
#include "upper.h"

/* One side of a rename: a name in a parent and what it holds. */
struct side {
	struct node *parent;
	const char *name;
	struct node *node; /* NULL when the name is free */
	struct lfd updir;  /* the parent's upper directory */
	int below;	   /* the name exists in a lower layer of the parent */
};

/* Has directory n parts in lower layers (it merges, or is a lower directory copied up)? */
static bool has_lower_parts(const struct plyfs *fs, const struct node *n)
{
	const struct node_stack *s = node_stack(n);
	return S_ISDIR(n->type) && (s->n > 1 || !fs->layers[s->l[0].layer].upper);
}

/*
 * The redirect value kernel overlayfs writes (dir.c ovl_set_redirect): none when the directory
 * has one already and stays in its parent or has an absolute one; else its name, relative, when
 * it stays in its parent, or the absolute path of its first lower part when it moves elsewhere.
 * Returns a g_malloc'd value to write, or NULL to keep what is there.
 */
static char *redirect_value(struct plyfs *fs, int updir, const char *name, const char *first,
			    bool samedir)
{
	g_autofree char *xname = g_strconcat(fs->xattr_prefix, OVL_XATTR_REDIRECT_SUFFIX, NULL);
	char cur[PATH_MAX];
	ssize_t len = layer_getxattr(updir, name, xname, cur, sizeof(cur));
	if (len > 0 && (samedir || cur[0] == '/'))
		return NULL;
	return samedir ? g_strdup(name) : g_strconcat("/", first, NULL);
}

/* Records where a directory's lower parts are before it moves: the redirect xattr on the upper
 * directory (kernel format) and the paths in its stack. Call with the dir copied up. */
static int set_redirect(struct plyfs *fs, struct node *n, int updir, const char *name, bool samedir)
{
	const struct node_stack *s = node_stack(n);
	struct node_stack *ns = inode_stack_new(s->n);
	ns->merged = s->merged;
	for (unsigned i = 0; i < s->n; i++) {
		ns->l[i].layer = s->l[i].layer;
		ns->l[i].fd = __atomic_load_n(&s->l[i].fd, __ATOMIC_ACQUIRE);
		ns->l[i].dev = s->l[i].dev;
		ns->l[i].ino = s->l[i].ino;
		if (!fs->layers[s->l[i].layer].upper)
			ns->l[i].path = inode_layer_path(fs, n, s->l[i].layer);
	}
	int r = 0;
	const char *first = s->n > 1 ? ns->l[1].path : NULL;
	g_autofree char *val = first ? redirect_value(fs, updir, name, first, samedir) : NULL;
	if (val) {
		g_autofree char *xname =
			g_strconcat(fs->xattr_prefix, OVL_XATTR_REDIRECT_SUFFIX, NULL);
		r = layer_setxattr(updir, name, xname, val, strlen(val), 0);
	}
	if (r < 0) {
		ns->n = 0; /* nothing to free but the struct: fds belong to the current stack */
		for (unsigned i = 0; i < s->n; i++)
			g_free(ns->l[i].path);
		g_free(ns);
		return r;
	}
	g_mutex_lock(&n->lock);
	inode_stack_publish(n, ns);
	g_mutex_unlock(&n->lock);
	return 0;
}

/* Prepares a directory about to land at `to`: redirect if it merges below; else opaque if `to`'s
 * parent merges with lower layers (kernel overlayfs' rule, dir.c ovl_rename: whatever may lie
 * below that name must not merge into it). `at` is where it is in upper now. */
static int prepare_moving_dir(struct plyfs *fs, struct node *n, int updir, const char *name,
			      const struct side *to, bool samedir)
{
	if (!n || !S_ISDIR(n->type))
		return 0;
	if (has_lower_parts(fs, n))
		return set_redirect(fs, n, updir, name, samedir);
	return has_lower_parts(fs, to->parent) ? upper_set_opaque(fs, updir, name) : 0;
}

static int side_init(struct plyfs *fs, struct side *sd, bool need)
{
	struct stat st;
	int r = namei_lookup(fs, sd->parent, sd->name, &sd->node, &st);
	if (r == -ENOENT && !need) {
		sd->node = NULL;
		r = 0;
	}
	return r;
}

static void side_clear(struct plyfs *fs, struct side *sd)
{
	lfd_release(&sd->updir);
	if (sd->node) {
		node_table_forget(fs->nodes, sd->node->nodeid, 1);
		node_put(fs->nodes, sd->node);
	}
}

/* +i/+a of the entries and directories involved (the kernel's may_delete()/may_create()). */
static int check_fileattr(struct plyfs *fs, struct side *src, struct side *dst)
{
	int r = fileattr_check(fs, src->parent, FA_DIR_REMOVE);
	if (r == 0)
		r = fileattr_check(fs, src->node, FA_DELETE);
	if (r == 0)
		r = fileattr_check(fs, dst->parent, dst->node ? FA_DIR_REMOVE : FA_DIR_ADD);
	if (r == 0 && dst->node)
		r = fileattr_check(fs, dst->node, FA_DELETE);
	return r;
}

/* Type rules of rename(2) that only the merged view can decide. */
static int check_target(struct plyfs *fs, struct side *src, struct side *dst, unsigned flags)
{
	if (!dst->node)
		return (flags & RENAME_EXCHANGE) ? -ENOENT : 0;
	if (flags & RENAME_NOREPLACE)
		return -EEXIST;
	if (flags & RENAME_EXCHANGE)
		return 0;
	bool sdir = S_ISDIR(src->node->type), ddir = S_ISDIR(dst->node->type);
	if (sdir && !ddir)
		return -ENOTDIR;
	if (!sdir && ddir)
		return -EISDIR;
	return 0;
}

/* A directory that lives only in upper ("pure upper" in kernel overlayfs' words). */
static bool pure_upper(const struct plyfs *fs, const struct node *n)
{
	const struct node_stack *s = node_stack(n);
	return s->n == 1 && fs->layers[s->l[0].layer].upper;
}

/* Is directory `a` the node n or one of its ancestors? */
static bool is_ancestor(struct plyfs *fs, struct node *a, struct node *n)
{
	struct node *p = node_ref(fs->nodes, n);
	while (p && p != a) {
		struct node *up = node_parent_name(fs->nodes, p, NULL);
		node_put(fs->nodes, p);
		p = up;
	}
	bool found = p != NULL;
	node_put(fs->nodes, p);
	return found;
}

/*
 * A directory moved into its own subtree, or a target that holds the source: the kernel never
 * sends such a rename (its answers are these), and going on would lock one directory twice. Only
 * a move between two directories can make one (the tree is fixed under fs->rename_lock).
 */
static int check_loop(struct plyfs *fs, struct side *src, struct side *dst, unsigned flags)
{
	if (src->parent == dst->parent)
		return 0;
	if (S_ISDIR(src->node->type) && is_ancestor(fs, src->node, dst->parent))
		return -EINVAL;
	if (dst->node && S_ISDIR(dst->node->type) && is_ancestor(fs, dst->node, src->parent))
		return (flags & RENAME_EXCHANGE) ? -EINVAL : -ENOTEMPTY;
	return 0;
}

/*
 * Kernel overlayfs' "don't copy up directory trees" (ovl_can_move): where no redirect may be
 * written, a directory with lower parts cannot be renamed: EXDEV, before anything is copied up or
 * a target's emptiness is checked, and mv(1) copies it instead. That is with redirect_dir=follow,
 * nofollow or off (params.h), and in the user.overlay.* format (fs.h), which has no redirects, as
 * the kernel's userxattr forces redirect_dir=nofollow: so the upper layer reads back the same
 * under `mount -t overlay -o userxattr`, which refuses to follow a redirect (EPERM). The other side
 * too, when it moves (EXCHANGE).
 */
static int check_can_move(struct plyfs *fs, struct side *src, struct side *dst, unsigned flags)
{
	if (fs->is_root && fs->params->redirect_dir == REDIRECT_ON)
		return 0;
	if (has_lower_parts(fs, src->node))
		return -EXDEV;
	if ((flags & RENAME_EXCHANGE) && dst->node && has_lower_parts(fs, dst->node))
		return -EXDEV;
	return 0;
}

/* Copies up what moves and where it goes. A replaced directory must be empty; kernel overlayfs
 * checks a merged one before copying anything up, and a pure upper one only in the final rename,
 * after the copy-up and after marking the source (do_move): the same order here, since a
 * copied-up directory shows (it merges) and the kernel leaves that mark when the rename fails. */
static int copy_up_sides(struct plyfs *fs, struct side *src, struct side *dst, unsigned flags)
{
	bool check = dst->node && !(flags & RENAME_EXCHANGE) && S_ISDIR(dst->node->type);
	int r = check && !pure_upper(fs, dst->node) ? remove_check_empty(fs, dst->node) : 0;
	if (r == 0)
		r = copy_up(fs, src->parent, true);
	if (r == 0)
		r = copy_up(fs, dst->parent, true);
	if (r == 0)
		r = copy_up(fs, src->node, true);
	if (r == 0 && dst->node && (flags & RENAME_EXCHANGE))
		r = copy_up(fs, dst->node, true);
	if (r == 0)
		r = inode_dirfd(fs, src->parent, 0, &src->updir);
	if (r == 0)
		r = inode_dirfd(fs, dst->parent, 0, &dst->updir);
	if (r == 0)
		src->below = upper_lower_positive(fs, src->parent, src->name);
	if (r == 0 && src->below >= 0)
		dst->below = upper_lower_positive(fs, dst->parent, dst->name);
	if (r == 0)
		r = src->below < 0 ? src->below : (dst->below < 0 ? dst->below : 0);
	return r;
}

static int do_exchange(struct plyfs *fs, struct side *src, struct side *dst)
{
	int r = index_link_up(fs, src->node, src->updir.fd, src->name);
	if (r == 0)
		r = index_link_up(fs, dst->node, dst->updir.fd, dst->name);
	if (r == 0)
		r = prepare_moving_dir(fs, src->node, src->updir.fd, src->name, dst,
				       src->parent == dst->parent);
	if (r == 0)
		r = prepare_moving_dir(fs, dst->node, dst->updir.fd, dst->name, src,
				       src->parent == dst->parent);
	if (r == 0)
		r = layer_renameat2(src->updir.fd, src->name, dst->updir.fd, dst->name,
				    RENAME_EXCHANGE);
	return r;
}

/* An entry with an origin moving to another directory makes that one impure (origin.h), and so does
 * the other side of an exchange, as the kernel's ovl_rename() marks them first. */
static int mark_impure(struct plyfs *fs, struct side *src, struct side *dst, unsigned flags)
{
	if (src->parent == dst->parent)
		return 0;
	int r = origin_of_node(fs, src->node) ? origin_set_impure(fs, dst->updir.fd) : 0;
	if (r == 0 && (flags & RENAME_EXCHANGE) && origin_of_node(fs, dst->node))
		r = origin_set_impure(fs, src->updir.fd);
	return r;
}

/* Moves src over dst (which may hold an entry, a whiteout or nothing in upper). */
static int do_move(struct plyfs *fs, struct side *src, struct side *dst)
{
	int r = index_link_up(fs, src->node, src->updir.fd, src->name);
	if (r < 0)
		return r;
	int slot = upper_slot(dst->updir.fd, dst->name);
	if (slot < 0)
		return slot;
	r = prepare_moving_dir(fs, src->node, src->updir.fd, src->name, dst,
			       src->parent == dst->parent);
	if (r == 0 && dst->node && S_ISDIR(dst->node->type) && pure_upper(fs, dst->node))
		r = remove_check_empty(fs, dst->node); /* see copy_up_sides */
	if (r < 0)
		return r;
	bool sdir = S_ISDIR(src->node->type);
	if (slot == UPPER_ENTRY && sdir) {
		/* The target is an (empty in the merged view) upper directory that may still hold
		 * whiteouts: swap the two, then discard the old target from the source's place. */
		r = layer_renameat2(src->updir.fd, src->name, dst->updir.fd, dst->name,
				    RENAME_EXCHANGE);
		return r < 0 ? r : upper_discard(fs, src->updir.fd, src->name, src->below);
	}
	if (slot == UPPER_WHITEOUT && sdir) {
		/* A directory cannot replace a device node: drop the whiteout first. */
		r = upper_drop_whiteout(dst->updir.fd, dst->name, UPPER_WHITEOUT);
		if (r < 0)
			return r;
	}
	unsigned how = src->below ? RENAME_WHITEOUT : 0;
	r = layer_renameat2(src->updir.fd, src->name, dst->updir.fd, dst->name, how);
	if (r < 0 && how && (r == -EINVAL || r == -EPERM || r == -EOPNOTSUPP)) {
		r = layer_renameat2(src->updir.fd, src->name, dst->updir.fd, dst->name, 0);
		if (r == 0)
			r = upper_make_whiteout(fs, src->updir.fd, src->name);
	}
	if (r == 0 && slot == UPPER_WH_FILE)
		r = upper_drop_whiteout(dst->updir.fd, dst->name, UPPER_WH_FILE);
	return r;
}

/* Whether the name going is n's last; locates n into `loc` for the rest of the request. */
static bool is_last_name(struct plyfs *fs, struct node *n, struct lfd *loc)
{
	if (S_ISDIR(n->type) || index_is_split(n))
		return true; /* one name of a split hard link is a file of its own (index.h) */
	struct stat st;
	return inode_locate(fs, n, loc) < 0 || inode_stat(fs, n, loc, &st) < 0 || st.st_nlink <= 1;
}

static void lock_parents(struct node *a, struct node *b)
{
	if (a == b) {
		g_mutex_lock(&a->lock);
		return;
	}
	/* Lock order between two directories: lower nodeid first. */
	struct node *first = a->nodeid < b->nodeid ? a : b;
	g_mutex_lock(&first->lock);
	g_mutex_lock(first == a ? &b->lock : &a->lock);
}

static void unlock_parents(struct node *a, struct node *b)
{
	g_mutex_unlock(&a->lock);
	if (a != b)
		g_mutex_unlock(&b->lock);
}

static void update_nodes(struct plyfs *fs, struct side *src, struct side *dst, unsigned flags)
{
	if (flags & RENAME_EXCHANGE) {
		node_table_move(fs->nodes, dst->node, src->parent, src->name);
	} else if (dst->node && __atomic_load_n(&dst->node->unlinked, __ATOMIC_ACQUIRE)) {
		node_table_unhash(fs->nodes, dst->node);
	}
	node_table_move(fs->nodes, src->node, dst->parent, dst->name);
}

int rename_entry(struct plyfs *fs, struct node *parent, const char *name, struct node *newparent,
		 const char *newname, unsigned flags)
{
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	struct side src = {.parent = parent, .name = name, .updir = LFD_INIT};
	struct side dst = {.parent = newparent, .name = newname, .updir = LFD_INIT};
	auto_lfd struct lfd dloc = LFD_INIT; /* the replaced target's, once it is located */
	g_autofree char *index_entry = NULL; /* its index entry, when its last name goes */
	g_mutex_lock(&fs->rename_lock);
	int r = side_init(fs, &src, true);
	if (r == 0)
		r = side_init(fs, &dst, false);
	if (r == 0 && src.node == dst.node)
		goto out; /* the same file (one name, or two hard links): nothing to do */
	if (r == 0)
		r = check_fileattr(fs, &src, &dst);
	if (r == 0)
		r = check_loop(fs, &src, &dst, flags);
	if (r == 0)
		r = check_target(fs, &src, &dst, flags);
	if (r == 0)
		r = check_can_move(fs, &src, &dst, flags);
	if (r == 0)
		r = copy_up_sides(fs, &src, &dst, flags);
	/* A target that is replaced loses its name: mark it while it can still be reached. */
	bool replaced = r == 0 && dst.node && !(flags & RENAME_EXCHANGE);
	bool last = replaced && is_last_name(fs, dst.node, &dloc);
	if (replaced && index_covers(fs, dst.node)) {
		/* A replaced name of an indexed file: up first (kernel order), counts recorded. */
		r = copy_up_as(fs, dst.node, newparent, newname);
		if (r == 0) {
			auto_lfd struct lfd qdir = LFD_INIT;
			r = inode_dirfd(fs, newparent, 0, &qdir);
			if (r == 0)
				r = index_link_up(fs, dst.node, qdir.fd, newname);
		}
		if (r == 0)
			r = inode_relocate(fs, dst.node, &dloc); /* it was copied up */
		if (r == 0)
			r = index_nlink_prepare(fs, dst.node, &dloc);
		replaced = r == 0;
	}
	if (replaced)
		remove_name_gone(fs, dst.node, &dloc, newparent, newname, last);
	/* The last name of an indexed file: its index entry goes with it (index.h). */
	if (replaced && last && __atomic_load_n(&dst.node->indexed, __ATOMIC_ACQUIRE) &&
	    inode_relocate(fs, dst.node, &dloc) == 0)
		index_entry = index_entry_of(fs, dst.node, dloc.fd, dloc.name);
	if (r == 0) {
		lock_parents(parent, newparent);
		r = mark_impure(fs, &src, &dst, flags);
		if (r == 0)
			r = (flags & RENAME_EXCHANGE) ? do_exchange(fs, &src, &dst)
						      : do_move(fs, &src, &dst);
		if (r == 0)
			update_nodes(fs, &src, &dst, flags);
		unlock_parents(parent, newparent);
	}
	if (r < 0 && replaced)
		remove_name_restore(dst.node);
	if (r == 0 && index_entry)
		index_cleanup(fs, index_entry);
out:
	side_clear(fs, &src);
	side_clear(fs, &dst);
	g_mutex_unlock(&fs->rename_lock);
	return r;
}
