// SPDX-License-Identifier: GPL-2.0-or-later
/* dir.c - directory handles and the FUSE readdir buffers (see dir.h). */
#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "atime.h"
#include "dir.h"
#include "index.h"
#include "inode.h"
#include "namei.h"
#include "origin.h"
#include "readdir.h"

struct dir_handle {
	struct node *node; /* referenced for the handle's lifetime */
	GMutex lock;	   /* protects entries; the kernel serialises readdir per file anyway */
	GPtrArray *entries;
	int *layers; /* layer of each position of the stack the list was read from */
	/* Upper only and not impure when the list was read: no entry has an origin or a
	 * redirect (origin.h), so each entry's d_ino is its own inode's (entry_ino()). */
	bool pure_upper;
	gint refs; /* a handle: 1; a cached listing (fh 0): the cache's and each reader's */
	/* This listing looks files up (plus_advised()), and it has left one out. */
	bool fill_files;
	bool left_out;
};

/* Listings of directories read without a handle (the kernel's no-opendir mode) kept between the
 * READDIRs of one listing: at most this many, the oldest dropped first. A listing read to its end
 * is dropped at once, so only listings left unfinished stay, and memory does not grow with the
 * directories listed. */
#define LISTINGS_MAX 64

/* node->plus_left: what the directory's last READDIRPLUS left out ("plus advice" below). */
enum { PLUS_LEFT_NONE, PLUS_LEFT_PROBE, PLUS_LEFT_FILES };
static bool plus_advised(struct plyfs *fs);

/* A listing read now would move the atime of n's upper directory (see dir_accessed()). */
static bool atime_is_due(struct plyfs *fs, struct node *n)
{
	if (!inode_has_upper(fs, n))
		return false;
	auto_lfd struct lfd dir = LFD_INIT;
	return inode_dirfd(fs, n, 0, &dir) == 0 && atime_due(fs, dir.fd, true);
}

static struct dir_handle *handle_new(struct plyfs *fs, struct node *n)
{
	struct dir_handle *dh = g_new0(struct dir_handle, 1);
	dh->node = node_ref(fs->nodes, n);
	g_mutex_init(&dh->lock);
	dh->refs = 1;
	return dh;
}

int dir_open(struct plyfs *fs, struct node *n, struct dir_handle **out, bool *cache)
{
	if (!S_ISDIR(n->type))
		return -ENOTDIR;
	/* Not from the kernel's cache: a listing that left every file out while they are wanted. */
	*cache = !atime_is_due(fs, n) &&
		 !(__atomic_load_n(&n->plus_left, __ATOMIC_RELAXED) == PLUS_LEFT_FILES &&
		   plus_advised(fs));
	struct dir_handle *dh = handle_new(fs, n);
	__atomic_add_fetch(&n->open_count, 1, __ATOMIC_ACQ_REL);
	g_mutex_lock(&fs->handles_lock);
	g_hash_table_add(fs->open_dirs, dh);
	g_mutex_unlock(&fs->handles_lock);
	*out = dh;
	return 0;
}

static void handle_free(struct plyfs *fs, struct dir_handle *dh)
{
	if (!g_atomic_int_dec_and_test(&dh->refs))
		return;
	if (dh->entries)
		g_ptr_array_unref(dh->entries);
	g_free(dh->layers);
	g_mutex_clear(&dh->lock);
	node_put(fs->nodes, dh->node);
	g_free(dh);
}

void dir_release(struct plyfs *fs, struct dir_handle *dh)
{
	g_mutex_lock(&fs->handles_lock);
	g_hash_table_remove(fs->open_dirs, dh);
	g_mutex_unlock(&fs->handles_lock);
	__atomic_sub_fetch(&dh->node->open_count, 1, __ATOMIC_ACQ_REL);
	handle_free(fs, dh);
}

int dir_merged_list(struct plyfs *fs, struct node *n, GPtrArray **list, int **layers)
{
	const struct node_stack *s = node_stack(n);
	struct lfd *dirs = g_new(struct lfd, s->n);
	int *fds = g_new(int, s->n);
	int r = 0;
	for (unsigned i = 0; i < s->n; i++) {
		dirs[i] = (struct lfd)LFD_INIT;
		if (r == 0)
			r = inode_dirfd(fs, n, s->l[i].layer, &dirs[i]);
		fds[i] = dirs[i].fd;
	}
	if (r == 0)
		r = readdir_merge(fds, s->n, list);
	for (unsigned i = 0; i < s->n; i++)
		lfd_release(&dirs[i]);
	g_free(dirs);
	g_free(fds);
	if (r == 0 && layers) {
		*layers = g_new(int, s->n);
		for (unsigned i = 0; i < s->n; i++)
			(*layers)[i] = s->l[i].layer;
	}
	return r;
}

static ino_t entry_ino(struct plyfs *fs, struct dir_handle *dh, const struct merged_entry *e);

/* Notes whether the directory is pure upper (upper only, not impure). One that is upper only and
 * marked impure, whose listing has no entry with st_ino from an origin (all such entries gone or
 * renamed away): the mark goes, as the kernel's readdir of an impure directory drops it then
 * (ovl_cache_get_impure()); each entry is looked up for it, as the kernel does. */
static void check_impure(struct plyfs *fs, struct dir_handle *dh)
{
	const struct node_stack *s = node_stack(dh->node);
	dh->pure_upper = false;
	if (s->n != 1 || !fs->layers[s->l[0].layer].upper)
		return;
	auto_lfd struct lfd dir = LFD_INIT;
	if (inode_dirfd(fs, dh->node, s->l[0].layer, &dir) < 0)
		return;
	if (!origin_is_impure(fs, dir.fd)) {
		dh->pure_upper = true;
		return;
	}
	if (fs->params->read_only)
		return;
	for (guint i = 0; i < dh->entries->len; i++) {
		const struct merged_entry *e = dh->entries->pdata[i];
		/* The user format is the kernel's userxattr mode, which (in a user namespace)
		 * cannot decode origins: only a merged directory keeps a lower st_ino there, so
		 * only one keeps the mark (plyfs shows more, origin.h "rootless"; the mark on disk
		 * is the kernel's). */
		if (!fs->is_root && e->type != DT_DIR)
			continue;
		struct node_key own = {.dev = fs->layers[s->l[0].layer].dev, .ino = e->ino};
		if (entry_ino(fs, dh, e) != inode_map_ino(fs, own))
			return;
	}
	origin_clear_impure(fs, dir.fd);
}

static int build_list_locked(struct plyfs *fs, struct dir_handle *dh)
{
	GPtrArray *list = NULL;
	int *layers = NULL;
	int r = dir_merged_list(fs, dh->node, &list, &layers);
	if (r < 0)
		return r;
	if (dh->entries)
		g_ptr_array_unref(dh->entries);
	g_free(dh->layers);
	dh->entries = list;
	dh->layers = layers;
	check_impure(fs, dh);
	return 0;
}

/* d_ino of "." (this directory) and ".." (its parent; the root's parent is the root): their
 * st_ino, whatever the position the listing is read from. */
static ino_t dot_ino(struct plyfs *fs, struct dir_handle *dh, const char *name)
{
	struct node *dir =
		strcmp(name, "..") == 0 ? node_parent_name(fs->nodes, dh->node, NULL) : NULL;
	ino_t ino = inode_map_ino(fs, (dir ? dir : dh->node)->key);
	node_put(fs->nodes, dir);
	return ino;
}

/* d_ino of a listed entry: its st_ino. An upper entry may stand for a lower file (a copy-up keeps
 * the origin's identity) or be a directory merged with lower ones (the lower's identity), so its
 * identity comes from a lookup's scan, as kernel overlayfs looks entries of impure and merged
 * directories up; any other entry, and every entry of a pure upper directory (which the kernel
 * lists as the upper filesystem does), is its layer's inode. */
static ino_t entry_ino(struct plyfs *fs, struct dir_handle *dh, const struct merged_entry *e)
{
	int layer = dh->layers[e->layer];
	struct node_key k = {.dev = fs->layers[layer].dev, .ino = e->ino};
	struct node *fresh;
	struct stat st;
	if (fs->layers[layer].upper && !dh->pure_upper &&
	    namei_scan(fs, dh->node, e->name, &fresh, &st) == 0) {
		k = fresh->key;
		node_discard(fs->nodes, fresh);
	}
	return inode_map_ino(fs, k);
}

/* Plain entry: only st_ino and the type bits are used by the kernel. */
static size_t add_plain(struct plyfs *fs, fuse_req_t req, struct dir_handle *dh, char *buf,
			size_t size, const char *name, const struct merged_entry *e, off_t next)
{
	struct stat st = {0};
	st.st_ino = e ? entry_ino(fs, dh, e) : dot_ino(fs, dh, name);
	st.st_mode = e ? (mode_t)e->type << 12 : S_IFDIR;
	return fuse_add_direntry(req, buf, size, name, &st, next);
}

/*
 * READDIRPLUS advice. A lookup of a file reads its inode in every layer it scans (cold: a disk
 * read, ~22 us a file here), which kernel overlayfs' readdir never does; `find` and `ls` read
 * names and d_type only, and the kernel asks READDIRPLUS for every first chunk of a directory
 * (readdirplus_auto, pos 0). An entry with nodeid 0 is a plain dirent to the kernel
 * (fuse_direntplus_link(): "did not want to return attributes"): it instantiates nothing, and a
 * stat of it costs a LOOKUP round trip, as after a plain READDIR. So plyfs looks files up only
 * while the kernel goes on to look up files it leaves out: a stat-walk (`ls -l`, `du`, `tar c`)
 * gets the attributes with the listing, a `find` reads no file's inode.
 * The signal: every listing leaves out at least one file (a probe; all of them while not
 * advised) and marks its directory (node->plus_left); the first LOOKUP in a marked directory
 * says the files are wanted. `plus_unused` goes up by 1 per listing that left files out and down
 * by 2 per such LOOKUP; files are looked up while it is below half its maximum (so a fresh mount
 * does, and a walk that stops statting stops it within 8 listings). A directory whose files were
 * all left out is not served from the kernel's listing cache while files are wanted
 * (dir_open(); in no-opendir mode, where no open reaches us, the cached copies of such
 * directories are dropped when files become wanted: dir_listings_left_out_stale()): its next
 * listing brings them. A stat-walk pays one LOOKUP round trip per
 * directory (the probe), a `find` the lookups of its first 8 directories.
 */
#define PLUS_UNUSED_MAX 16

/* True when this change made files wanted (plus_advised() turned true). */
static bool plus_unused_add(struct plyfs *fs, int delta)
{
	int old = atomic_load_explicit(&fs->plus_unused, memory_order_relaxed);
	int new;
	do
		new = CLAMP(old + delta, 0, PLUS_UNUSED_MAX);
	while (!atomic_compare_exchange_weak_explicit(&fs->plus_unused, &old, new,
						      memory_order_relaxed, memory_order_relaxed));
	return old >= PLUS_UNUSED_MAX / 2 && new < PLUS_UNUSED_MAX / 2;
}

static bool plus_advised(struct plyfs *fs)
{
	return atomic_load_explicit(&fs->plus_unused, memory_order_relaxed) < PLUS_UNUSED_MAX / 2;
}

/* A listing of dh leaves a file out: noted once per listing. */
static void plus_leave_out(struct plyfs *fs, struct dir_handle *dh)
{
	if (dh->left_out)
		return;
	dh->left_out = true;
	__atomic_store_n(&dh->node->plus_left, dh->fill_files ? PLUS_LEFT_PROBE : PLUS_LEFT_FILES,
			 __ATOMIC_RELAXED);
	plus_unused_add(fs, 1);
}

bool dir_note_lookup(struct plyfs *fs, struct node *parent)
{
	return __atomic_load_n(&parent->plus_left, __ATOMIC_RELAXED) != PLUS_LEFT_NONE &&
	       __atomic_exchange_n(&parent->plus_left, PLUS_LEFT_NONE, __ATOMIC_RELAXED) !=
		       PLUS_LEFT_NONE &&
	       plus_unused_add(fs, -2);
}

void dir_listings_left_out_stale(struct plyfs *fs)
{
	if (!fs->no_opendir || !fs->se)
		return;
	g_autoptr(GArray) ids = node_table_dir_ids(fs->nodes);
	for (guint i = 0; i < ids->len; i++) {
		uint64_t id = g_array_index(ids, uint64_t, i);
		struct node *n = node_table_get(fs->nodes, id);
		if (!n)
			continue;
		bool left = __atomic_load_n(&n->plus_left, __ATOMIC_RELAXED) == PLUS_LEFT_FILES;
		node_put(fs->nodes, n);
		if (left)
			fuse_lowlevel_notify_inval_inode(fs->se, id, 0, 0);
	}
}

/* Whether a READDIRPLUS entry carries its attributes (a lookup) or goes as a plain dirent:
 * directories always (a walk opens them next: a LOOKUP saved each), entries of an unknown type,
 * files this mount has a node for (known_node() in namei.c: a stat, no more); other files when
 * advised, but for the listing's probe (above). */
static bool plus_fills(struct plyfs *fs, struct dir_handle *dh, const struct merged_entry *e)
{
	if (e->type == DT_DIR || e->type == DT_UNKNOWN || (dh->fill_files && dh->left_out))
		return true;
	int layer = dh->layers[e->layer];
	struct node_key key;
	bool indexed;
	if (node_table_known(fs->nodes, fs->layers[layer].dev, e->ino, DTTOIF(e->type),
			     fs->layers[layer].upper, &key, &indexed))
		return true;
	plus_leave_out(fs, dh);
	return false;
}

/* Plus entry: a real lookup, undone when the entry does not fit; or the plain dirent, attributes
 * left out (plus_fills()). Returns bytes used; 0 when the entry did not fit; SIZE_MAX when the
 * name vanished meanwhile (skip it). */
static size_t add_plus(struct plyfs *fs, fuse_req_t req, struct dir_handle *dh, char *buf,
		       size_t size, const char *name, const struct merged_entry *e, off_t next)
{
	struct fuse_entry_param ep = {0};
	struct node *child = NULL;
	if (!e || !plus_fills(fs, dh, e)) {
		/* nodeid 0: the kernel neither instantiates nor forgets it ("." and ".." too). */
		ep.attr.st_ino = e ? entry_ino(fs, dh, e) : dot_ino(fs, dh, name);
		ep.attr.st_mode = e ? (mode_t)e->type << 12 : S_IFDIR;
	} else {
		/* The layers above the entry's in the listing do not have it. */
		struct namei_listed listed = {.absent = dh->layers, .n_absent = e->layer};
		int r = namei_lookup_listed(fs, dh->node, name, &listed, &child, &ep.attr);
		if (r < 0)
			return SIZE_MAX;
		ep.ino = child->nodeid;
		ep.generation = child->generation;
		ep.attr_timeout = fs->timeout;
		ep.entry_timeout = index_entry_timeout(fs, child);
	}
	size_t need = fuse_add_direntry_plus(req, buf, size, name, &ep, next);
	if (child) {
		if (need > size)
			node_table_forget(fs->nodes, child->nodeid, 1);
		node_put(fs->nodes, child);
	}
	return need > size ? 0 : need;
}

/* A listing was read: the upper directory's atime by the mount's policy (atime.h); kernel
 * overlayfs leaves a lower-only directory alone. */
static void dir_accessed(struct plyfs *fs, struct node *n)
{
	if (!inode_has_upper(fs, n))
		return;
	auto_lfd struct lfd dir = LFD_INIT;
	if (inode_dirfd(fs, n, 0, &dir) == 0)
		atime_accessed(fs, dir.fd, true);
}

ssize_t dir_read(struct plyfs *fs, fuse_req_t req, struct dir_handle *dh, char *buf, size_t size,
		 off_t off, bool plus)
{
	if (off < 0)
		return -EINVAL; /* no position of ours (lseek(2) on a directory refuses one too) */
	g_mutex_lock(&dh->lock);
	ssize_t used = 0;
	if (off == 0 || !dh->entries) {
		int r = build_list_locked(fs, dh);
		if (r < 0) {
			g_mutex_unlock(&dh->lock);
			return r;
		}
		dh->fill_files = plus && plus_advised(fs);
		dh->left_out = false;
		if (plus)
			__atomic_store_n(&dh->node->plus_left, PLUS_LEFT_NONE, __ATOMIC_RELAXED);
	}
	size_t total = dh->entries->len + 2;
	for (size_t pos = (size_t)off; pos < total; pos++) {
		const struct merged_entry *e = pos >= 2 ? dh->entries->pdata[pos - 2] : NULL;
		const char *name = e ? e->name : (pos == 0 ? "." : "..");
		size_t n;
		if (plus) {
			n = add_plus(fs, req, dh, buf + used, size - (size_t)used, name, e,
				     (off_t)pos + 1);
			if (n == SIZE_MAX)
				continue;
		} else {
			n = add_plain(fs, req, dh, buf + used, size - (size_t)used, name, e,
				      (off_t)pos + 1);
			if (n > size - (size_t)used)
				n = 0;
		}
		if (n == 0)
			break;
		used += (ssize_t)n;
	}
	g_mutex_unlock(&dh->lock);
	dir_accessed(fs, dh->node);
	return used;
}

/* The cached listing of n (a new, empty one when there is none), referenced for the caller. */
static struct dir_handle *listing_get(struct plyfs *fs, struct node *n)
{
	struct dir_handle *fresh = NULL;
	g_mutex_lock(&fs->handles_lock);
	struct dir_handle *dh = g_hash_table_lookup(fs->listings, n);
	if (!dh) {
		g_mutex_unlock(&fs->handles_lock); /* node_ref() takes the table lock */
		fresh = handle_new(fs, n);
		g_mutex_lock(&fs->handles_lock);
		dh = g_hash_table_lookup(fs->listings, n);
	}
	if (!dh) {
		dh = fresh;
		fresh = NULL;
		g_hash_table_insert(fs->listings, n, dh);
		g_queue_push_tail(fs->listing_order, dh);
	}
	g_atomic_int_inc(&dh->refs);
	struct dir_handle *old = NULL;
	if (fs->listing_order->length > LISTINGS_MAX) {
		old = g_queue_pop_head(fs->listing_order);
		g_hash_table_remove(fs->listings, old->node);
	}
	g_mutex_unlock(&fs->handles_lock);
	if (old)
		handle_free(fs, old);
	if (fresh)
		handle_free(fs, fresh);
	return dh;
}

/* Drops dh from the cache (if it is still there: a later listing may have replaced it). */
static void listing_drop(struct plyfs *fs, struct dir_handle *dh)
{
	g_mutex_lock(&fs->handles_lock);
	bool cached = g_hash_table_lookup(fs->listings, dh->node) == dh;
	if (cached) {
		g_hash_table_remove(fs->listings, dh->node);
		g_queue_remove(fs->listing_order, dh);
	}
	g_mutex_unlock(&fs->handles_lock);
	if (cached)
		handle_free(fs, dh);
}

/* Whether a later listing of n, the directory unchanged, would move no atime (atime.h). */
static bool listing_may_cache(struct plyfs *fs, struct node *n)
{
	if (!inode_has_upper(fs, n))
		return true;
	auto_lfd struct lfd dir = LFD_INIT;
	return inode_dirfd(fs, n, 0, &dir) < 0 || atime_stays(fs, dir.fd, true);
}

ssize_t dir_read_node(struct plyfs *fs, fuse_req_t req, struct node *n, char *buf, size_t size,
		      off_t off, bool plus, bool *may_cache)
{
	*may_cache = true;
	if (!S_ISDIR(n->type))
		return -ENOTDIR;
	if (off < 0)
		return -EINVAL;
	struct dir_handle *dh = listing_get(fs, n);
	ssize_t used = dir_read(fs, req, dh, buf, size, off, plus);
	if (used == 0) {
		listing_drop(fs, dh);
		*may_cache = listing_may_cache(fs, n);
	}
	handle_free(fs, dh);
	return used;
}

void dir_listings_stale_all(struct plyfs *fs)
{
	if (!fs->no_opendir || !fs->se)
		return;
	g_autoptr(GArray) ids = node_table_dir_ids(fs->nodes);
	for (guint i = 0; i < ids->len; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, g_array_index(ids, uint64_t, i), 0, 0);
}

void dir_release_all(struct plyfs *fs)
{
	struct dir_handle *dh;
	while ((dh = g_queue_pop_head(fs->listing_order))) {
		g_hash_table_remove(fs->listings, dh->node);
		handle_free(fs, dh);
	}
	GList *all = g_hash_table_get_keys(fs->open_dirs);
	for (GList *l = all; l; l = l->next)
		dir_release(fs, l->data);
	g_list_free(all);
}
