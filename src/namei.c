// SPDX-License-Identifier: GPL-2.0-or-later
/* namei.c - LOOKUP across the layers (see namei.h for the rules). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "autofd.h"
#include "inode.h"
#include "namei.h"
#include "whiteout.h"

#define NAME_MAX_BYTES 255

/* What the scan found so far. */
struct found {
	struct stat top;	  /* stat of the topmost entry */
	GArray *stack;		  /* of struct node_layer, top first */
	struct node_key key;	  /* identity */
	bool have_lower_key;	  /* key already taken from a lower layer */
};

static void found_add(struct plyfs *fs, struct found *f, int layer, const struct stat *st, int fd)
{
	struct node_layer nl = {.layer = layer, .fd = fd};
	if (f->stack->len == 0) {
		f->top = *st;
		f->key = (struct node_key){.dev = st->st_dev, .ino = st->st_ino};
	}
	/* Identity of a merged directory: the topmost *lower* entry, so that it stays the same when
	 * the directory is later copied up (kernel overlayfs records that one as the origin). */
	if (!fs->layers[layer].upper && !f->have_lower_key) {
		f->key = (struct node_key){.dev = st->st_dev, .ino = st->st_ino};
		f->have_lower_key = true;
	}
	g_array_append_val(f->stack, nl);
}

/* A directory entry `name` found as a directory in `dirfd`: opens it (the fd is kept for the node)
 * and tells whether it stops the merge. Returns 1 opaque, 0 not, -errno. */
static int open_subdir(struct plyfs *fs, int dirfd, const char *name, bool more_below, int *fd_out)
{
	*fd_out = layer_openat(dirfd, name, O_PATH | O_DIRECTORY, 0);
	if (*fd_out < 0)
		return *fd_out;
	if (!more_below)
		return 0; /* opaqueness only matters when there is something below to hide */
	return whiteout_dir_is_opaque(*fd_out, fs->is_root);
}

enum scan_step { SCAN_NEXT, SCAN_STOP };

/* Examines one layer of the parent. Returns SCAN_NEXT / SCAN_STOP, or -errno. */
static int scan_layer(struct plyfs *fs, struct node *parent, unsigned slot, const char *name,
		      struct found *f)
{
	auto_lfd struct lfd dir = LFD_INIT;
	int r = inode_dirfd(fs, parent, slot, &dir);
	if (r < 0)
		return r;
	int layer = parent->stack[slot].layer;
	bool more_below = slot + 1 < parent->n_stack;

	struct stat st;
	r = layer_fstatat(dir.fd, name, &st);
	if (r == -ENOENT) {
		if (!more_below)
			return SCAN_STOP;
		r = whiteout_wh_exists(dir.fd, name);
		return r < 0 ? r : (r ? SCAN_STOP : SCAN_NEXT);
	}
	if (r < 0)
		return r;
	if (whiteout_is_chardev(&st))
		return SCAN_STOP;
	if (f->stack->len > 0 && !S_ISDIR(st.st_mode))
		return SCAN_STOP; /* a lower non-directory under a directory: not merged */
	if (!S_ISDIR(st.st_mode)) {
		found_add(fs, f, layer, &st, -1);
		return SCAN_STOP;
	}
	int fd;
	int opaque = open_subdir(fs, dir.fd, name, more_below, &fd);
	if (opaque < 0) {
		autofd_close(&fd);
		return opaque;
	}
	found_add(fs, f, layer, &st, fd);
	return opaque ? SCAN_STOP : SCAN_NEXT;
}

static int check_name(const char *name)
{
	size_t len = strlen(name);
	/* The FUSE module passes names up to 1024 bytes: the filesystem must refuse long ones. */
	if (len > NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	if (len == 0 || strchr(name, '/'))
		return -EINVAL;
	return 0;
}

/* Closes the fds a scan opened and frees it. */
static void found_clear(struct found *f)
{
	for (guint i = 0; i < f->stack->len; i++) {
		int fd = g_array_index(f->stack, struct node_layer, i).fd;
		if (fd >= 0)
			close(fd);
	}
	g_array_free(f->stack, TRUE);
}

/* Builds the candidate node from a scan; the scan's fds are offered to the fd cache. */
static struct node *node_from_found(struct plyfs *fs, const char *name, struct found *f)
{
	struct node *n = node_new(name, f->top.st_mode & S_IFMT, f->key);
	n->n_stack = f->stack->len;
	n->stack = g_new(struct node_layer, n->n_stack);
	for (unsigned i = 0; i < n->n_stack; i++) {
		struct node_layer *src = &g_array_index(f->stack, struct node_layer, i);
		n->stack[i] = (struct node_layer){.layer = src->layer, .fd = -1};
		if (src->fd >= 0)
			inode_offer_dirfd(fs, n, i, src->fd);
		src->fd = -1;
	}
	n->merged = S_ISDIR(n->type) && n->n_stack > 1;
	return n;
}

int namei_lookup(struct plyfs *fs, struct node *parent, const char *name, struct node **out,
		 struct stat *st)
{
	int r = check_name(name);
	if (r < 0)
		return r;
	if (!S_ISDIR(parent->type))
		return -ENOTDIR;

	struct found f = {.stack = g_array_new(FALSE, FALSE, sizeof(struct node_layer))};
	for (unsigned slot = 0; slot < parent->n_stack; slot++) {
		r = scan_layer(fs, parent, slot, name, &f);
		if (r != SCAN_NEXT)
			break;
	}
	if (r < 0 || f.stack->len == 0) {
		found_clear(&f);
		return r < 0 ? r : -ENOENT;
	}
	struct node *fresh = node_from_found(fs, name, &f);
	*st = f.top;
	found_clear(&f);
	*out = node_table_insert_lookup(fs->nodes, parent, fresh);
	inode_fill_attr(fs, *out, st);
	return 0;
}

int namei_lookup_dot(struct plyfs *fs, struct node *dir, const char *name, struct node **out,
		     struct stat *st)
{
	struct node *n;
	if (strcmp(name, ".") == 0) {
		n = node_ref(fs->nodes, dir);
	} else {
		n = node_parent_name(fs->nodes, dir, NULL);
		if (!n)
			n = node_ref(fs->nodes, dir); /* the root's parent is the root */
	}
	int r = inode_getattr(fs, n, st);
	if (r < 0) {
		node_put(fs->nodes, n);
		return r;
	}
	node_table_add_lookup(fs->nodes, n);
	*out = n;
	return 0;
}
