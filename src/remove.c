// SPDX-License-Identifier: GPL-2.0-or-later
/* remove.c - UNLINK and RMDIR (see remove.h). */
#include <errno.h>
#include <fcntl.h>

#include "copy_up.h"
#include "dir.h"
#include "inode.h"
#include "namei.h"
#include "remove.h"
#include "upper.h"

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

/* Takes `name` (node c) out of the merged view of `parent`, whose upper dir is `updir`. */
static int remove_locked(struct plyfs *fs, struct node *parent, int updir, const char *name,
			 struct node *c)
{
	int below = upper_lower_positive(fs, parent, name);
	if (below < 0)
		return below;
	if (!inode_has_upper(fs, c))
		return upper_make_whiteout(fs, updir, name);
	if (upper_slot(updir, name) == UPPER_EMPTY) {
		/* Another lower name of a copied-up hard-linked file. */
		int r = upper_make_whiteout(fs, updir, name);
		if (r == 0)
			__atomic_add_fetch(&c->lower_gone, 1, __ATOMIC_ACQ_REL);
		return r;
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
	if (dir && !S_ISDIR(c->type))
		r = -ENOTDIR;
	else if (!dir && S_ISDIR(c->type))
		r = -EISDIR;
	else if (dir)
		r = remove_check_empty(fs, c);
	if (r == 0)
		r = copy_up(fs, parent, true);
	/* Other names of a hard-linked file keep it alive; the last one makes it unlinked. */
	bool last = dir || st.st_nlink <= 1;
	if (r == 0)
		inode_mark_unlinked(fs, c, parent, name, last);
	if (r == 0) {
		g_mutex_lock(&parent->lock);
		auto_lfd struct lfd updir = LFD_INIT;
		r = inode_dirfd(fs, parent, 0, &updir);
		if (r == 0)
			r = remove_locked(fs, parent, updir.fd, name, c);
		g_mutex_unlock(&parent->lock);
		if (r < 0)
			inode_unmark_unlinked(c);
	}
	/* Only the last name frees the inode number for reuse by another file. */
	if (r == 0 && last)
		node_table_unhash(fs->nodes, c);
	node_table_forget(fs->nodes, c->nodeid, 1); /* the lookup above was ours, not the kernel's */
	node_put(fs->nodes, c);
	return r;
}
