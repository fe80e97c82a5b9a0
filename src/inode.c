// SPDX-License-Identifier: GPL-2.0-or-later
/* inode.c - reaching a node's entries in the layers; attributes in the merged view. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "inode.h"
#include "override.h"
#include "log.h"
#include "whiteout.h"

/* The node table's destroy callback has no user data; there is one mount per process. */
static struct plyfs *the_fs;

void inode_set_fs(struct plyfs *fs)
{
	the_fs = fs;
}

/* The fd of an entry removed while open (node.h, unlinked_fd), shared by the node and the
 * locations that use it. `refs` and every node's unlinked_fd pointer change under held_lock, a leaf
 * lock held for a few instructions only. */
struct held_fd {
	int fd;
	unsigned refs;
};

static GMutex held_lock;

static void held_put(struct held_fd *h)
{
	if (!h)
		return;
	g_mutex_lock(&held_lock);
	bool last = --h->refs == 0;
	g_mutex_unlock(&held_lock);
	if (last) {
		close(h->fd);
		g_free(h);
	}
}

/* n's held fd with a reference for the caller, or NULL. */
static struct held_fd *held_get(struct node *n)
{
	if (!__atomic_load_n(&n->unlinked_fd, __ATOMIC_ACQUIRE))
		return NULL;
	g_mutex_lock(&held_lock);
	struct held_fd *h = n->unlinked_fd;
	if (h)
		h->refs++;
	g_mutex_unlock(&held_lock);
	return h;
}

/* Puts `h` (NULL: none) in n's slot when the slot is empty or `replace`; returns what has to be
 * dropped: the previous holder, or `h` itself when it was not taken. */
static struct held_fd *held_swap(struct node *n, struct held_fd *h, bool replace)
{
	g_mutex_lock(&held_lock);
	struct held_fd *old = n->unlinked_fd;
	if (replace || !old)
		__atomic_store_n(&n->unlinked_fd, h, __ATOMIC_RELEASE);
	else
		old = h;
	g_mutex_unlock(&held_lock);
	return old;
}

static struct held_fd *held_new(int fd)
{
	struct held_fd *h = g_new(struct held_fd, 1);
	h->fd = fd;
	h->refs = 1; /* the node's */
	return h;
}

bool inode_is_orphan(const struct node *n)
{
	return __atomic_load_n(&n->unlinked_fd, __ATOMIC_ACQUIRE) != NULL;
}

void inode_keep_unlinked(struct node *n, int fd)
{
	held_put(held_swap(n, held_new(fd), false));
}

void inode_replace_unlinked(struct node *n, int fd)
{
	held_put(held_swap(n, held_new(fd), true));
}

void inode_drop_unlinked(struct node *n)
{
	held_put(held_swap(n, NULL, true));
}

void lfd_release(struct lfd *l)
{
	if (l->owned && l->fd >= 0)
		close(l->fd);
	g_free(l->name);
	if (l->owner)
		node_put(l->nodes, l->owner);
	held_put(l->held);
	*l = (struct lfd)LFD_INIT;
}

struct node_stack *inode_stack_new(unsigned n)
{
	struct node_stack *s = g_malloc0(sizeof(*s) + n * sizeof(s->l[0]));
	s->n = n;
	for (unsigned i = 0; i < n; i++)
		s->l[i] = (struct node_layer){.layer = -1, .fd = -1};
	return s;
}

static void stack_free(struct node_stack *s)
{
	for (unsigned i = 0; i < s->n; i++)
		g_free(s->l[i].path);
	g_free(s);
}

void inode_stack_publish(struct node *n, struct node_stack *s)
{
	struct node_stack *old = __atomic_exchange_n(&n->stack, s, __ATOMIC_ACQ_REL);
	if (!old)
		return;
	if (!n->retired)
		n->retired = g_ptr_array_new();
	g_ptr_array_add(n->retired, old);
}

int inode_stack_slot(const struct node_stack *s, int layer)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->l[i].layer == layer)
			return (int)i;
	}
	return -1;
}

bool inode_has_upper(const struct plyfs *fs, const struct node *n)
{
	return fs->has_upper && node_stack(n)->l[0].layer == 0;
}

static int load_fd(const struct node_layer *nl)
{
	return __atomic_load_n(&nl->fd, __ATOMIC_ACQUIRE);
}

/* A stack's fds, closed once each: a new stack shares the fds of the one it replaced, and a
 * racing thread may have cached an fd in a stack that was retired meanwhile. */
static void close_stack_fds(struct node_stack *s, GHashTable *closed)
{
	for (unsigned i = 0; i < s->n; i++) {
		int fd = load_fd(&s->l[i]);
		if (fd < 0 || g_hash_table_contains(closed, GINT_TO_POINTER(fd + 1)))
			continue;
		g_hash_table_add(closed, GINT_TO_POINTER(fd + 1));
		close(fd);
		if (the_fs)
			atomic_fetch_sub(&the_fs->fds_cached, 1);
	}
	stack_free(s);
}

void inode_destroy(struct node *n)
{
	g_free(n->index_name);
	n->index_name = NULL;
	g_free(n->seen_name);
	n->seen_name = NULL;
	held_put(n->unlinked_fd);
	n->unlinked_fd = NULL;
	g_autoptr(GHashTable) closed = g_hash_table_new(NULL, NULL);
	/* The root's fds are the layer roots, closed by layers_close(). */
	if (n->stack && !n->root)
		close_stack_fds(n->stack, closed);
	else if (n->stack)
		stack_free(n->stack);
	n->stack = NULL;
	for (guint i = 0; n->retired && i < n->retired->len; i++)
		close_stack_fds(n->retired->pdata[i], closed);
	if (n->retired)
		g_ptr_array_free(n->retired, TRUE);
	n->retired = NULL;
}

/* Puts `fd` in slot `slot` of `s`. Returns the fd now cached there (ours, or the one a racing
 * thread put first, in which case ours is closed), or -1 when the budget is spent (`fd` not
 * taken). */
static int cache_dirfd(struct plyfs *fs, struct node_stack *s, unsigned slot, int fd)
{
	if (atomic_fetch_add(&fs->fds_cached, 1) >= fs->fd_budget) {
		atomic_fetch_sub(&fs->fds_cached, 1);
		return -1;
	}
	int expected = -1;
	if (__atomic_compare_exchange_n(&s->l[slot].fd, &expected, fd, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fd;
	atomic_fetch_sub(&fs->fds_cached, 1);
	close(fd);
	return expected;
}

void inode_offer_dirfd(struct plyfs *fs, struct node_stack *s, unsigned slot, int fd)
{
	if (cache_dirfd(fs, s, slot, fd) < 0)
		close(fd);
}

struct stop_layer {
	int layer;
	bool fd_ok; /* an ancestor with a cached fd will do, not only a recorded path */
};

/* node_path() stop test: an ancestor whose place in the layer is known without its own parent:
 * a cached fd (when allowed), a recorded path (redirect), or the root. Runs under the table lock;
 * reads only published stacks and atomically written fds. */
static bool knows_its_place(struct node *anc, void *data)
{
	const struct stop_layer *sl = data;
	if (anc->root)
		return true;
	const struct node_stack *s = node_stack(anc);
	int slot = inode_stack_slot(s, sl->layer);
	if (slot < 0)
		return false;
	return s->l[slot].path || (sl->fd_ok && load_fd(&s->l[slot]) >= 0);
}

/* Joins a recorded place and a relative path ("" stays as it is on either side). */
static char *join_path(const char *a, const char *b)
{
	if (!a || !*a)
		return g_strdup(b);
	if (!*b)
		return g_strdup(a);
	return g_strconcat(a, "/", b, NULL);
}

char *inode_layer_path(struct plyfs *fs, struct node *n, int layer)
{
	struct stop_layer sl = {.layer = layer, .fd_ok = false};
	struct node *anc = NULL;
	g_autofree char *rel = node_path(fs->nodes, n, knows_its_place, &sl, &anc);
	const char *base = NULL;
	if (anc && !anc->root) {
		const struct node_stack *s = node_stack(anc);
		base = s->l[inode_stack_slot(s, layer)].path;
	}
	char *full = join_path(base, rel);
	node_put(fs->nodes, anc);
	return full;
}

/* Opens directory n in `layer` from the nearest ancestor that knows its place there. */
static int open_dir_in_layer(struct plyfs *fs, struct node *n, int layer)
{
	struct stop_layer sl = {.layer = layer, .fd_ok = true};
	struct node *anc = NULL;
	g_autofree char *rel = node_path(fs->nodes, n, knows_its_place, &sl, &anc);
	/* `anc` stays referenced until the open is done: its fd is valid only while it lives. */
	int fd = -EIO;
	if (anc) {
		const struct node_stack *s = node_stack(anc);
		int slot = inode_stack_slot(s, layer);
		int base = slot >= 0 ? load_fd(&s->l[slot]) : -1;
		if (base >= 0) {
			fd = layer_open_beneath(base, rel, O_PATH | O_DIRECTORY);
		} else if (slot >= 0 && s->l[slot].path) {
			g_autofree char *full = join_path(s->l[slot].path, rel);
			fd = layer_open_beneath(fs->layers[layer].root_fd, full,
						O_PATH | O_DIRECTORY);
		}
		node_put(fs->nodes, anc);
	}
	return fd;
}

int inode_dirfd(struct plyfs *fs, struct node *n, int layer, struct lfd *out)
{
	struct node_stack *s = (struct node_stack *)node_stack(n);
	int slot = inode_stack_slot(s, layer);
	if (slot < 0)
		return -ENOENT;
	int fd = load_fd(&s->l[slot]);
	if (fd >= 0) {
		*out = (struct lfd){.fd = fd, .owned = false};
		return 0;
	}
	fd = open_dir_in_layer(fs, n, layer);
	if (fd < 0)
		return fd;
	int cached = cache_dirfd(fs, s, (unsigned)slot, fd);
	if (cached >= 0)
		*out = (struct lfd){.fd = cached, .owned = false};
	else
		*out = (struct lfd){.fd = fd, .owned = true};
	return 0;
}

int inode_top_layer(const struct node *n)
{
	return node_stack(n)->l[0].layer;
}

/* The location of `name` (taken) in `parent` (its reference taken: kept by the location while it
 * borrows the parent's cached fd, else dropped) in `layer`. */
static int locate_in(struct plyfs *fs, struct node *parent, char *name, int layer, struct lfd *loc)
{
	int r = inode_dirfd(fs, parent, layer, loc);
	if (r == -ENOENT)
		r = -ESTALE; /* the parent is not in that layer: the tree changed under us */
	if (r == 0 && !loc->owned) {
		/* A borrowed fd of the parent is valid only while the parent lives. */
		loc->owner = g_steal_pointer(&parent);
		loc->nodes = fs->nodes;
	}
	node_put(fs->nodes, parent);
	if (r == 0)
		loc->name = name;
	else
		g_free(name);
	return r;
}

int inode_locate_child(struct plyfs *fs, struct node *parent, const char *name, int layer,
		       struct lfd *loc)
{
	return locate_in(fs, node_ref(fs->nodes, parent), g_strdup(name), layer, loc);
}

int inode_locate(struct plyfs *fs, struct node *n, struct lfd *loc)
{
	/* Read before the stack: a location must never claim a newer generation than its entry. */
	unsigned gen = __atomic_load_n(&n->copyup_gen, __ATOMIC_ACQUIRE);
	struct held_fd *h = held_get(n);
	if (h) {
		*loc = (struct lfd){.fd = h->fd, .held = h, .gen = gen};
		return 0;
	}
	/* A lower name of a hard-linked file already copied up: the copy in the index is it. */
	const char *iname = __atomic_load_n(&n->index_name, __ATOMIC_ACQUIRE);
	int r;
	if (iname && !inode_has_upper(fs, n)) {
		*loc = (struct lfd){.fd = fs->index_dirfd, .name = g_strdup(iname)};
		r = 0;
	} else if (S_ISDIR(n->type)) {
		r = inode_dirfd(fs, n, inode_top_layer(n), loc);
	} else {
		char *name = NULL;
		struct node *parent = node_parent_name(fs->nodes, n, &name);
		if (!parent) {
			g_free(name);
			return -ESTALE;
		}
		/* The layer and the identity expected there from the same stack. */
		const struct node_layer top = node_stack(n)->l[0];
		r = locate_in(fs, parent, name, top.layer, loc);
		if (r == 0) {
			loc->dev = top.dev;
			loc->ino = top.ino;
			loc->replaceable = fs->layers[top.layer].upper;
		}
	}
	if (r == 0)
		loc->gen = gen;
	return r;
}

int inode_check(const struct lfd *loc, const struct stat *st)
{
	if (!loc->name || !loc->ino)
		return 0;
	if (st->st_dev == loc->dev && st->st_ino == loc->ino)
		return 0;
	/* Unlinked since (a whiteout took the name): the file is gone, as after the unlink. */
	return whiteout_is_chardev(st) ? -ENOENT : -ESTALE;
}

int inode_verify(const struct lfd *loc)
{
	if (!loc->name || !loc->ino || !loc->replaceable)
		return 0;
	struct stat st;
	int r = layer_fstatat(loc->fd, loc->name, &st);
	return r < 0 ? r : inode_check(loc, &st);
}

int inode_relocate(struct plyfs *fs, struct node *n, struct lfd *loc)
{
	if (loc->fd >= 0 && loc->gen == __atomic_load_n(&n->copyup_gen, __ATOMIC_ACQUIRE))
		return 0;
	lfd_release(loc);
	return inode_locate(fs, n, loc);
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

static uid_t shown_uid(const struct plyfs *fs, uid_t uid, bool idmapped)
{
	const struct plyfs_params *p = fs->params;
	if (p->squash_to_root)
		return 0;
	if (p->squash_to_uid >= 0)
		return (uid_t)p->squash_to_uid;
	return idmapped ? uid : idmap_to_shown(&p->uidmap, uid);
}

static gid_t shown_gid(const struct plyfs *fs, gid_t gid, bool idmapped)
{
	const struct plyfs_params *p = fs->params;
	if (p->squash_to_root)
		return 0;
	if (p->squash_to_gid >= 0)
		return (gid_t)p->squash_to_gid;
	return idmapped ? gid : idmap_to_shown(&p->gidmap, gid);
}

void inode_fill_attr(struct plyfs *fs, struct node *n, struct stat *st, bool idmapped)
{
	/* One name of a split hard link (index.h): the inode number of the entry itself. */
	struct node_key self = {.dev = st->st_dev, .ino = st->st_ino};
	st->st_ino = inode_map_ino(fs, index_is_split(n) ? self : n->key);
	if (S_ISDIR(st->st_mode) && (node_stack(n)->merged || fs->params->static_nlink))
		st->st_nlink = 1;
	st->st_uid = shown_uid(fs, st->st_uid, idmapped);
	st->st_gid = shown_gid(fs, st->st_gid, idmapped);
	/* Removed from the merged view while open: a lower file still has its lower names. */
	if (__atomic_load_n(&n->unlinked, __ATOMIC_ACQUIRE))
		st->st_nlink = 0;
}

int inode_stat(struct plyfs *fs, struct node *n, const struct lfd *loc, struct stat *st)
{
	int r = loc->name ? layer_fstatat(loc->fd, loc->name, st) : layer_fstat(loc->fd, st);
	if (r == 0)
		r = inode_check(loc, st);
	if (r < 0)
		return r;
	override_stat(fs, loc->fd, loc->name, st);
	index_merged_nlink(fs, n, loc->fd, loc->name, st);
	inode_fill_attr(fs, n, st, layers_fd_idmapped(fs->layers, fs->n_layers, loc->fd));
	return 0;
}

int inode_getattr(struct plyfs *fs, struct node *n, struct stat *st)
{
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	if (r == 0)
		r = inode_stat(fs, n, &loc, st);
	/* n's name went or took another file since (see "Identity"): once more, which reaches the
	 * entry the removal kept for n if it did. */
	if ((r == -ESTALE || r == -ENOENT) && loc.name && loc.replaceable) {
		lfd_release(&loc);
		r = inode_locate(fs, n, &loc);
		if (r == 0)
			r = inode_stat(fs, n, &loc, st);
	}
	return r;
}
