// SPDX-License-Identifier: GPL-2.0-or-later
/* inode.c - reaching a node's entries in the layers; attributes in the merged view. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "inode.h"
#include "log.h"

/* The node table's destroy callback has no user data; there is one mount per process. */
static struct plyfs *the_fs;

void inode_set_fs(struct plyfs *fs)
{
	the_fs = fs;
}

void lfd_release(struct lfd *l)
{
	if (l->owned && l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->owned = false;
}

void inode_destroy(struct node *n)
{
	/* The root's fds are the layer roots, closed by layers_close(). */
	for (unsigned i = 0; i < n->n_stack && !n->root; i++) {
		if (n->stack[i].fd >= 0) {
			close(n->stack[i].fd);
			if (the_fs)
				atomic_fetch_sub(&the_fs->fds_cached, 1);
		}
	}
	g_free(n->stack);
	n->stack = NULL;
	n->n_stack = 0;
}

static int load_fd(const struct node_layer *nl)
{
	return __atomic_load_n(&nl->fd, __ATOMIC_ACQUIRE);
}

/* Puts `fd` in the slot's cache. Returns the fd now cached there (ours, or the one a racing thread
 * put first, in which case ours is closed), or -1 when the budget is spent (`fd` not taken). */
static int cache_dirfd(struct plyfs *fs, struct node *n, unsigned slot, int fd)
{
	if (atomic_fetch_add(&fs->fds_cached, 1) >= fs->fd_budget) {
		atomic_fetch_sub(&fs->fds_cached, 1);
		return -1;
	}
	int expected = -1;
	if (__atomic_compare_exchange_n(&n->stack[slot].fd, &expected, fd, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fd;
	atomic_fetch_sub(&fs->fds_cached, 1);
	close(fd);
	return expected;
}

void inode_offer_dirfd(struct plyfs *fs, struct node *n, unsigned slot, int fd)
{
	if (cache_dirfd(fs, n, slot, fd) < 0)
		close(fd);
}

struct stop_layer {
	int layer;
};

/* node_path() stop test: an ancestor with a cached fd in the wanted layer. Runs under the table
 * lock; reads only the immutable stack layout and an atomically written fd. */
static bool has_cached_fd(struct node *anc, void *data)
{
	const struct stop_layer *sl = data;
	for (unsigned i = 0; i < anc->n_stack; i++) {
		if (anc->stack[i].layer == sl->layer)
			return load_fd(&anc->stack[i]) >= 0;
	}
	return false;
}

static int anc_fd(const struct node *anc, int layer)
{
	for (unsigned i = 0; i < anc->n_stack; i++) {
		if (anc->stack[i].layer == layer)
			return load_fd(&anc->stack[i]);
	}
	return -1;
}

int inode_dirfd(struct plyfs *fs, struct node *n, unsigned slot, struct lfd *out)
{
	g_assert(slot < n->n_stack);
	int fd = load_fd(&n->stack[slot]);
	if (fd >= 0) {
		*out = (struct lfd){.fd = fd, .owned = false};
		return 0;
	}
	struct stop_layer sl = {.layer = n->stack[slot].layer};
	struct node *anc = NULL;
	g_autofree char *path = node_path(fs->nodes, n, has_cached_fd, &sl, &anc);
	/* `anc` stays referenced until the open is done: its fd is valid only while it lives. */
	int base = anc ? anc_fd(anc, sl.layer) : -1;
	fd = base >= 0 ? layer_open_beneath(base, path, O_PATH | O_DIRECTORY) : -EIO;
	if (anc)
		node_put(fs->nodes, anc);
	if (fd < 0)
		return fd;
	int cached = cache_dirfd(fs, n, slot, fd);
	if (cached >= 0)
		*out = (struct lfd){.fd = cached, .owned = false};
	else
		*out = (struct lfd){.fd = fd, .owned = true};
	return 0;
}

int inode_top_layer(const struct node *n)
{
	return n->stack[0].layer;
}

/* Slot of `layer` in a directory's stack, or -1. */
static int stack_slot(const struct node *dir, int layer)
{
	for (unsigned i = 0; i < dir->n_stack; i++) {
		if (dir->stack[i].layer == layer)
			return (int)i;
	}
	return -1;
}

int inode_locate(struct plyfs *fs, struct node *n, struct lfd *dir, char **name_out)
{
	*name_out = NULL;
	if (S_ISDIR(n->type))
		return inode_dirfd(fs, n, 0, dir);

	g_autofree char *name = NULL;
	struct node *parent = node_parent_name(fs->nodes, n, &name);
	if (!parent)
		return -ESTALE;
	int slot = stack_slot(parent, inode_top_layer(n));
	int r = slot < 0 ? -ESTALE : inode_dirfd(fs, parent, (unsigned)slot, dir);
	/* A borrowed fd of the parent stays valid after this put: n pins its parent. */
	node_put(fs->nodes, parent);
	if (r == 0)
		*name_out = g_steal_pointer(&name);
	return r;
}

ino_t inode_map_ino(const struct plyfs *fs, struct node_key k)
{
	uint64_t ino = k.ino;
	if (fs->xino_bits) {
		unsigned fsid = 0;
		for (size_t i = 0; i < fs->n_layers; i++) {
			if (fs->layers[i].dev == k.dev) {
				fsid = fs->layers[i].fsid;
				break;
			}
		}
		unsigned shift = 64 - fs->xino_bits;
		/* An inode number that already uses the high bits keeps them, as kernel xino falls
		 * back to; collisions there are possible and documented. */
		if ((ino >> shift) == 0)
			ino |= (uint64_t)fsid << shift;
	}
	if (fs->params->ino32)
		ino = (ino ^ (ino >> 32)) & 0xffffffffu;
	return (ino_t)ino;
}

static uid_t shown_uid(const struct plyfs *fs, uid_t uid)
{
	const struct plyfs_params *p = fs->params;
	if (p->squash_to_root)
		return 0;
	if (p->squash_to_uid >= 0)
		return (uid_t)p->squash_to_uid;
	return idmap_to_container(&p->uidmap, uid);
}

static gid_t shown_gid(const struct plyfs *fs, gid_t gid)
{
	const struct plyfs_params *p = fs->params;
	if (p->squash_to_root)
		return 0;
	if (p->squash_to_gid >= 0)
		return (gid_t)p->squash_to_gid;
	return idmap_to_container(&p->gidmap, gid);
}

void inode_fill_attr(struct plyfs *fs, struct node *n, struct stat *st)
{
	st->st_ino = inode_map_ino(fs, n->key);
	if (S_ISDIR(st->st_mode) && (n->merged || fs->params->static_nlink))
		st->st_nlink = 1;
	st->st_uid = shown_uid(fs, st->st_uid);
	st->st_gid = shown_gid(fs, st->st_gid);
}

int inode_getattr(struct plyfs *fs, struct node *n, struct stat *st)
{
	auto_lfd struct lfd dir = LFD_INIT;
	g_autofree char *name = NULL;
	int r = inode_locate(fs, n, &dir, &name);
	if (r < 0)
		return r;
	r = name ? layer_fstatat(dir.fd, name, st) : layer_fstat(dir.fd, st);
	if (r < 0)
		return r;
	inode_fill_attr(fs, n, st);
	return 0;
}
