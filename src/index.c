// SPDX-License-Identifier: GPL-2.0-or-later
/* index.c - the hard-link index in kernel overlayfs' format (see index.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autofd.h"
#include "copy_up.h"
#include "upper.h"
#include "node.h"
#include "index.h"
#include "inode.h"
#include "log.h"
#include "ovl_names.h"
#include "origin.h"
#include "ovl_xattr.h"

void index_init(struct plyfs *fs)
{
	fs->index_dirfd = -1;
	if (!fs->has_upper || !fs->is_root || fs->params->index_off)
		return;
	int r = layer_mkdirat(fs->work_fd, PLYFS_INDEX_SUBDIR, 0700);
	if (r < 0 && r != -EEXIST)
		return;
	fs->index_dirfd = layer_openat(fs->work_fd, PLYFS_INDEX_SUBDIR, O_PATH | O_DIRECTORY, 0);
}

int index_name(struct plyfs *fs, int layer, int dirfd, const char *name, char **hex,
	       unsigned char *fb, size_t *fb_len)
{
	/* A lower filesystem whose origins cannot be told apart has no index (origin.h). */
	if (fs->index_dirfd < 0 || fs->layers[layer].bad_uuid)
		return -EOPNOTSUPP;
	struct origin_fh fh;
	int r = origin_encode(fs, layer, dirfd, name, &fh);
	if (r == 0 && fh.len == 0)
		r = -EOPNOTSUPP;
	if (r < 0)
		return r;
	memcpy(fb, fh.fb, fh.len);
	*fb_len = fh.len;
	*hex = origin_hex(&fh);
	return 0;
}

bool index_exists(struct plyfs *fs, const char *hex)
{
	struct stat st;
	return fs->index_dirfd >= 0 && layer_fstatat(fs->index_dirfd, hex, &st) == 0;
}

static const char *nlink_xattr(void)
{
	return OVL_XATTR_TRUSTED_PREFIX OVL_XATTR_NLINK_SUFFIX;
}

/* A value the kernel would refuse: reported with the file's path, and the upper inode's own count
 * shown instead, as ovl_get_nlink() falls back to. */
static nlink_t nlink_invalid(int dirfd, const char *name, const struct stat *st, int err)
{
	g_autofree char *dir = layer_fd_path(dirfd);
	g_autofree char *path = name ? g_strconcat(dir, "/", name, NULL) : g_strdup(dir);
	ovl_xattr_report_invalid(NULL, "nlink", -1, path, err);
	return st->st_nlink;
}

nlink_t index_nlink(struct plyfs *fs, int dirfd, const char *name, const struct stat *st,
		    int lower_nlink)
{
	char buf[16];
	ssize_t len = layer_getxattr(dirfd, name, nlink_xattr(), buf, sizeof(buf));
	if (len == -ENODATA || len == -ENOTSUP || len == -EOPNOTSUPP)
		return st->st_nlink;
	if (len < 0 && len != -ERANGE)
		return st->st_nlink; /* the layer failed, not its data */
	char base;
	int diff;
	unsigned long n;
	int r = len == -ERANGE ? -ERANGE : ovl_nlink_decode(buf, len, &base, &diff);
	/* Relative to a lower inode this node never saw (an upper file found again after a
	 * remount): the upper's own count, as before; not the value's fault. */
	if (r == 0 && base == 'L' && lower_nlink <= 0)
		return st->st_nlink;
	if (r == 0)
		r = ovl_nlink_apply(base, diff, (unsigned long)lower_nlink, st->st_nlink, &n);
	return r < 0 ? nlink_invalid(dirfd, name, st, r) : (nlink_t)n;
}

int index_set_nlink_upper(struct plyfs *fs, int dirfd, const char *name, nlink_t merged,
			  nlink_t upper)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "U%+d", (int)merged - (int)upper);
	return layer_setxattr(dirfd, name, nlink_xattr(), buf, (size_t)len, 0);
}

int index_set_nlink_lower(struct plyfs *fs, int fd, int diff)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "L%+d", diff);
	return layer_setxattr(fd, NULL, nlink_xattr(), buf, (size_t)len, 0);
}

bool index_covers(struct plyfs *fs, struct node *n)
{
	return fs->index_dirfd >= 0 && S_ISREG(n->type) && !index_is_split(n) &&
	       (__atomic_load_n(&n->indexed, __ATOMIC_ACQUIRE) ||
		__atomic_load_n(&n->lower_nlink, __ATOMIC_ACQUIRE) > 1);
}

double index_entry_timeout(struct plyfs *fs, struct node *n)
{
	return index_covers(fs, n) ? 0 : fs->timeout;
}

void index_note_name(struct plyfs *fs, struct node *n, struct node *parent, const char *name,
		     int layer)
{
	if (!index_covers(fs, n))
		return;
	g_mutex_lock(&n->lock);
	g_free(n->seen_name);
	n->seen_name = g_strdup(name);
	n->seen_parent = parent->nodeid;
	g_autofree char *old_name = NULL;
	struct node *old = node_parent_name(fs->nodes, n, &old_name);
	/* Checked under the lock: once copied up, the node's name is settled. */
	if (old && !inode_has_upper(fs, n) && inode_top_layer(n) == layer &&
	    (old != parent || strcmp(old_name, name) != 0)) {
		node_table_move(fs->nodes, n, parent, name);
		node_table_add_alias(fs->nodes, n, old, old_name);
	}
	node_put(fs->nodes, old);
	g_mutex_unlock(&n->lock);
}

int index_link_up_seen(struct plyfs *fs, struct node *n)
{
	if (!index_covers(fs, n) || !inode_has_upper(fs, n))
		return 0;
	g_mutex_lock(&n->lock);
	g_autofree char *name = g_strdup(n->seen_name);
	uint64_t pid = n->seen_parent;
	g_mutex_unlock(&n->lock);
	struct node *parent = name ? node_table_get(fs->nodes, pid) : NULL;
	if (!parent)
		return 0;
	int r = copy_up(fs, parent, true);
	auto_lfd struct lfd dir = LFD_INIT;
	if (r == 0)
		r = inode_dirfd(fs, parent, 0, &dir);
	/* Only a name still standing for a lower name of n: not one removed (a whiteout) since. */
	if (r == 0 && upper_slot(dir.fd, name) == UPPER_EMPTY &&
	    upper_lower_positive(fs, parent, name) > 0)
		r = index_link_up(fs, n, dir.fd, name);
	node_put(fs->nodes, parent);
	return r;
}

enum index_state index_lookup_lower(struct plyfs *fs, int layer, int dirfd, const char *name,
				    char **hex)
{
	unsigned char fb[OVL_FB_MAX];
	size_t len;
	*hex = NULL;
	int r = index_name(fs, layer, dirfd, name, hex, fb, &len);
	/* No index, or this layer cannot name the file in one (no uuid, no file handles). */
	if (r == -EOPNOTSUPP || r == -EOVERFLOW || r == -ENOSYS)
		return INDEX_SPLIT;
	if (r == 0 && index_exists(fs, *hex))
		return INDEX_FOUND;
	g_free(*hex);
	*hex = NULL;
	return INDEX_PENDING;
}

/* FNV-1a over the bytes, then MurmurHash3's final mix. */
static uint64_t mix(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

struct node_key index_split_key(const struct stat *lower, struct node_key parent, const char *name)
{
	uint64_t v[4] = {lower->st_dev, lower->st_ino, parent.dev, parent.ino};
	uint64_t h = mix(mix(0xcbf29ce484222325ULL, v, sizeof(v)), name, strlen(name) + 1);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (struct node_key){.dev = lower->st_dev, .ino = (ino_t)(h | (UINT64_C(1) << 63))};
}

bool index_is_split(const struct node *n)
{
	return __atomic_load_n(&n->split, __ATOMIC_ACQUIRE);
}

void index_split_done(struct plyfs *fs, struct node *n, int dirfd, const char *name,
		      const struct stat *up)
{
	struct node_key k = {.dev = up->st_dev, .ino = up->st_ino};
	/* An upper-only file's identity, as the next mount's lookup will find it (namei.c). */
	k.check = layer_handle_check(dirfd, name);
	node_table_rekey(fs->nodes, n, k);
	__atomic_store_n(&n->split, false, __ATOMIC_RELEASE);
}

char *index_entry_of(struct plyfs *fs, struct node *n, int dirfd, const char *name)
{
	const char *known = __atomic_load_n(&n->index_name, __ATOMIC_ACQUIRE);
	if (known)
		return g_strdup(known);
	unsigned char fb[OVL_FB_MAX];
	ssize_t len = layer_getxattr(dirfd, name, OVL_XATTR_TRUSTED_PREFIX OVL_XATTR_ORIGIN_SUFFIX,
				     fb, sizeof(fb));
	if (len <= 0)
		return NULL;
	GString *s = g_string_sized_new((gsize)len * 2);
	for (ssize_t i = 0; i < len; i++)
		g_string_append_printf(s, "%02x", fb[i]);
	return g_string_free(s, FALSE);
}

void index_cleanup(struct plyfs *fs, const char *hex)
{
	struct stat st;
	if (fs->index_dirfd < 0 || !hex || layer_fstatat(fs->index_dirfd, hex, &st) < 0)
		return;
	/* Still linked elsewhere: a lower hard link added behind the overlay's back, or a count
	 * gone wrong; the kernel keeps the entry then too. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_ratelimited(LOG_WARNING, "index entry %s still has %lu links, kept", hex,
				(unsigned long)st.st_nlink);
		return;
	}
	layer_unlinkat(fs->index_dirfd, hex, 0);
}

/* Pinned nodes keep an O_PATH fd each (the entry of the removed name): bounded. */
static unsigned pinned_count;

void index_keep_reachable(struct plyfs *fs, struct node *n)
{
	g_mutex_lock(&n->lock);
	if (!n->pinned_hardlink) {
		if (__atomic_add_fetch(&pinned_count, 1, __ATOMIC_RELAXED) > INDEX_PINNED_MAX) {
			__atomic_sub_fetch(&pinned_count, 1, __ATOMIC_RELAXED);
			log_ratelimited(LOG_WARNING,
					"more than %u hard-linked files lost the name "
					"they were reached by: the handles of the next "
					"ones give ESTALE once forgotten",
					INDEX_PINNED_MAX);
		} else {
			n->pinned_hardlink = true;
			node_ref(fs->nodes, n);
		}
	}
	g_mutex_unlock(&n->lock);
}

void index_release(struct plyfs *fs, struct node *n)
{
	g_mutex_lock(&n->lock);
	bool pinned = n->pinned_hardlink;
	n->pinned_hardlink = false;
	g_mutex_unlock(&n->lock);
	if (!pinned)
		return;
	__atomic_sub_fetch(&pinned_count, 1, __ATOMIC_RELAXED);
	node_put(fs->nodes, n);
}

/* --- the merged link count of an indexed file, kept on its upper inode --- */

void index_merged_nlink(struct plyfs *fs, struct node *n, int dirfd, const char *name,
			struct stat *st)
{
	if (__atomic_load_n(&n->indexed, __ATOMIC_ACQUIRE) && !S_ISDIR(st->st_mode))
		st->st_nlink = index_nlink(fs, dirfd, name, st,
					   __atomic_load_n(&n->lower_nlink, __ATOMIC_ACQUIRE));
}

/* Sets the upper inode's recorded merged count to its merged count now plus `delta`, at `loc`
 * (NULL: n's location, computed here). */
static int record_nlink(struct plyfs *fs, struct node *n, const struct lfd *loc, int delta)
{
	auto_lfd struct lfd own = LFD_INIT;
	if (!loc) {
		int r = inode_locate(fs, n, &own);
		if (r < 0)
			return r;
		loc = &own;
	}
	struct stat raw;
	int r = loc->name ? layer_fstatat(loc->fd, loc->name, &raw) : layer_fstat(loc->fd, &raw);
	if (r < 0)
		return r;
	struct stat merged = raw;
	index_merged_nlink(fs, n, loc->fd, loc->name, &merged);
	return index_set_nlink_upper(fs, loc->fd, loc->name, merged.st_nlink + delta, raw.st_nlink);
}

int index_nlink_prepare(struct plyfs *fs, struct node *n, const struct lfd *loc)
{
	if (!__atomic_load_n(&n->indexed, __ATOMIC_ACQUIRE) || !inode_has_upper(fs, n))
		return 0;
	return record_nlink(fs, n, loc, 0);
}

/* After one more upper link that the merged count already included: "U+d" becomes "U+(d-1)". */
int index_nlink_after_link(struct plyfs *fs, struct node *n, const struct lfd *loc)
{
	return record_nlink(fs, n, loc, -1);
}

int index_link_up(struct plyfs *fs, struct node *n, int updir, const char *name)
{
	if (!inode_has_upper(fs, n) || S_ISDIR(n->type))
		return 0;
	struct stat st;
	if (layer_fstatat(updir, name, &st) == 0)
		return 0;
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	/* The directory now holds an entry with an origin: the kernel's ovl_link_up() marks it
	 * first, and the mark stays if the name is then removed. */
	if (r == 0)
		r = origin_set_impure(fs, updir);
	/* The merged link count stays: the new upper link takes its share from "U+d". */
	if (r == 0)
		r = index_nlink_prepare(fs, n, &loc);
	if (r == 0)
		r = layer_linkat(loc.fd, loc.name, updir, name);
	if (r == 0 && __atomic_load_n(&n->indexed, __ATOMIC_ACQUIRE))
		r = index_nlink_after_link(fs, n, &loc);
	return r;
}

/* --- copying up into the index --- */

int index_place_copy(struct plyfs *fs, int work, int tmpfd, const char *tmpname, const char *hex,
		     nlink_t lower_nlink, int dst_dir, const char *name)
{
	int r = index_set_nlink_lower(fs, tmpfd, 0);
	if (r == 0)
		r = tmpname ? layer_renameat2(work, tmpname, fs->index_dirfd, hex, RENAME_NOREPLACE)
			    : layer_linkat(tmpfd, NULL, fs->index_dirfd, hex);
	if (r == 0)
		r = layer_linkat(fs->index_dirfd, hex, dst_dir, name);
	/* The merged count is the lower file's: record it against the upper inode, so that a
	 * lookup needs no lower file to know it (kernel overlayfs reads both forms). */
	struct stat up;
	if (r == 0)
		r = layer_fstatat(dst_dir, name, &up);
	if (r == 0)
		r = index_set_nlink_upper(fs, dst_dir, name, lower_nlink, up.st_nlink);
	return r;
}

bool index_upper_keeps_nlink(struct plyfs *fs, int dirfd, const char *name, const struct stat *st)
{
	return S_ISREG(st->st_mode) && fs->index_dirfd >= 0 &&
	       layer_getxattr(dirfd, name, OVL_XATTR_TRUSTED_PREFIX OVL_XATTR_NLINK_SUFFIX, NULL,
			      0) >= 0;
}
