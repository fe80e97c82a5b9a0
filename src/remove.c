// SPDX-License-Identifier: GPL-2.0-or-later
/* remove.c - UNLINK and RMDIR (see remove.h). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "copy_up.h"
#include "dir.h"
#include "fileattr.h"
#include "index.h"
#include "inode.h"
#include "namei.h"
#include "remove.h"
#include "upper.h"

/* Do a and b have the same top entry (layer and, where both know it, identity in it)? */
static bool same_top_entry(const struct node *a, const struct node *b)
{
	const struct node_layer *x = &node_stack(a)->l[0], *y = &node_stack(b)->l[0];
	return x->layer == y->layer &&
	       (!x->ino || !y->ino || (x->dev == y->dev && x->ino == y->ino));
}

/* Moves n to another of its names that still leads to it. True when done. */
static bool move_to_alias(struct plyfs *fs, struct node *n, struct node *parent, const char *name)
{
	uint64_t pid;
	char *aname;
	while (node_table_take_alias(fs->nodes, n, parent->nodeid, name, &pid, &aname)) {
		struct node *ap = node_table_get(fs->nodes, pid);
		struct node *fresh = NULL;
		struct stat st;
		/* The alias must lead to n and be reached the same way (a lower-only name of a
		 * copied-up file would put n's upper inode at a name that has none). */
		bool same = ap && namei_scan(fs, ap, aname, &fresh, &st) == 0 &&
			    fresh->key.dev == n->key.dev && fresh->key.ino == n->key.ino &&
			    same_top_entry(fresh, n);
		if (fresh)
			node_discard(fs->nodes, fresh);
		if (same)
			node_table_move(fs->nodes, n, ap, aname);
		node_put(fs->nodes, ap);
		g_free(aname);
		if (same)
			return true;
	}
	return false;
}

/* Is (parent, name) the name n is reached by? */
static bool is_recorded_name(struct plyfs *fs, struct node *n, struct node *parent,
			     const char *name)
{
	g_autofree char *nname = NULL;
	struct node *p = node_parent_name(fs->nodes, n, &nname);
	bool same = p == parent && g_strcmp0(nname, name) == 0;
	node_put(fs->nodes, p);
	return same;
}

void remove_name_gone(struct plyfs *fs, struct node *n, struct lfd *loc, struct node *parent,
		      const char *name, bool last)
{
	/* Without OPENDIR (fs->no_opendir) the daemon does not know whether a directory is open:
	 * one is kept as if it were, until the kernel forgets it (an fd of the removed directory).
	 */
	bool open = __atomic_load_n(&n->open_count, __ATOMIC_ACQUIRE) > 0 ||
		    (S_ISDIR(n->type) && fs->no_opendir);
	/* A non-directory keeps its entry reachable until the kernel forgets it, as kernel
	 * overlayfs' dentry keeps its upper one: a request already on its way (an open, a stat)
	 * then reaches the file it was sent for, not a whiteout or a file that took the name.
	 * (Fifos, sockets and devices are also opened by the kernel without telling us.) */
	bool nondir = !S_ISDIR(n->type);
	bool recorded = is_recorded_name(fs, n, parent, name);
	if (!last && !recorded) {
		node_table_drop_alias(fs->nodes, n, parent->nodeid, name);
		return;
	}
	/* The name n is reached by goes, another name of a hard-linked file stays: move n there. */
	if (!last && move_to_alias(fs, n, parent, name))
		return;
	/* A file with other names keeps its nodeid for its file handles until its last name goes
	 * (no alias known: the kernel never looked the others up through this mount). */
	if (!last && nondir && recorded)
		index_keep_reachable(fs, n);
	if (last)
		index_release(fs, n);
	bool keep = last ? (open || nondir) : recorded;
	if (keep && !inode_is_orphan(n)) {
		/* Keep a way to the entry before the name goes: open handles, requests on their
		 * way, or the kernel's other names of a hard-linked file still use this node. */
		if (inode_relocate(fs, n, loc) == 0) {
			int fd = loc->name ? layer_openat(loc->fd, loc->name, O_PATH, 0)
					   : layer_open_beneath(loc->fd, "", O_PATH);
			struct stat st;
			/* Only n's own entry, not one that took its name meanwhile. */
			if (fd >= 0 && (layer_fstat(fd, &st) < 0 || inode_check(loc, &st) < 0)) {
				close(fd);
				fd = -1;
			}
			if (fd >= 0)
				inode_keep_unlinked(n, fd);
		}
	}
	if (last)
		__atomic_store_n(&n->unlinked, true, __ATOMIC_RELEASE);
}

void remove_name_restore(struct node *n)
{
	__atomic_store_n(&n->unlinked, false, __ATOMIC_RELEASE);
	/* Closed once no location uses it any more. */
	inode_drop_unlinked(n);
}

int remove_check_empty(struct plyfs *fs, struct node *n)
{
	GPtrArray *list = NULL;
	int r = dir_merged_list(fs, n, &list, NULL);
	if (r == 0 && list->len > 0)
		r = -ENOTEMPTY;
	if (list)
		g_ptr_array_unref(list);
	return r;
}

/* Takes `name` (node c, located at `cloc` when the request needed it) out of the merged view of
 * `parent`, whose upper dir is `updir`. */
static int remove_locked(struct plyfs *fs, struct node *parent, int updir, const char *name,
			 struct node *c, struct lfd *cloc)
{
	/* An entry only in lower layers is positive below by definition: no scan for it. */
	if (!inode_has_upper(fs, c))
		return upper_make_whiteout(fs, updir, name);
	int below = upper_lower_positive(fs, parent, name);
	if (below < 0)
		return below;
	if (index_covers(fs, c)) {
		/* Kernel overlayfs covers a lower name of an indexed file up first, so that the
		 * merged link count is kept on the upper inode while the name goes. */
		int r = index_link_up(fs, c, updir, name);
		if (r == 0)
			r = inode_relocate(fs, c, cloc);
		if (r == 0)
			r = index_nlink_prepare(fs, c, cloc);
		if (r < 0)
			return r;
	}
	if (upper_slot(updir, name) == UPPER_EMPTY) {
		/* Another lower name of a copied-up hard-linked file. */
		return upper_make_whiteout(fs, updir, name);
	}
	if (below || S_ISDIR(c->type))
		/* A directory goes through the work dir even without a whiteout: it may hold
		 * whiteouts of its own, and must vanish in one step. */
		return upper_discard(fs, updir, name, below);
	return layer_unlinkat(updir, name, 0);
}

int remove_entry(struct plyfs *fs, struct node *parent, const char *name, bool dir)
{
	struct node *c;
	struct stat st;
	int r = namei_lookup(fs, parent, name, &c, &st);
	if (r < 0)
		return r;
	/* +i/+a come first, as in the kernel's may_delete(). */
	r = fileattr_check(fs, parent, FA_DIR_REMOVE);
	if (r == 0)
		r = fileattr_check(fs, c, FA_DELETE);
	if (r == 0 && dir && !S_ISDIR(c->type))
		r = -ENOTDIR;
	else if (r == 0 && !dir && S_ISDIR(c->type))
		r = -EISDIR;
	else if (r == 0 && dir)
		r = remove_check_empty(fs, c);
	if (r == 0)
		r = copy_up(fs, parent, true);
	/* A name of a lower file with several names: covered up first, as kernel overlayfs does,
	 * so the index keeps the merged link count. */
	if (r == 0 && index_covers(fs, c))
		r = copy_up_as(fs, c, parent, name);
	/* Other names of a hard-linked file keep it alive; the last one makes it unlinked. One
	 * name of a split hard link is a file of its own (index.h). */
	bool last = dir || st.st_nlink <= 1 || index_is_split(c);
	auto_lfd struct lfd cloc = LFD_INIT;
	g_autofree char *index_entry = NULL;
	if (r == 0)
		remove_name_gone(fs, c, &cloc, parent, name, last);
	/* The last name of an indexed file: its index entry goes with it (index.h). */
	if (r == 0 && last && __atomic_load_n(&c->indexed, __ATOMIC_ACQUIRE) &&
	    inode_relocate(fs, c, &cloc) == 0)
		index_entry = index_entry_of(fs, c, cloc.fd, cloc.name);
	if (r == 0) {
		g_mutex_lock(&parent->lock);
		auto_lfd struct lfd updir = LFD_INIT;
		r = inode_dirfd(fs, parent, 0, &updir);
		if (r == 0)
			r = remove_locked(fs, parent, updir.fd, name, c, &cloc);
		g_mutex_unlock(&parent->lock);
		if (r < 0)
			remove_name_restore(c);
	}
	/* Only the last name frees the inode number for reuse by another file. */
	if (r == 0 && last)
		node_table_unhash(fs->nodes, c);
	if (r == 0 && index_entry)
		index_cleanup(fs, index_entry);
	node_table_forget(fs->nodes, c->nodeid,
			  1); /* the lookup above was ours, not the kernel's */
	node_put(fs->nodes, c);
	return r;
}
