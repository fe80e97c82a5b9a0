/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * index.h - hard links: the one interface for their bookkeeping (namei.c, copy_up.c, inode.c,
 * remove.c, rename.c, create.c call it): the index in kernel overlayfs' index=on format and the
 * merged link count it keeps, the split of names where there is no index, the index entry of a
 * removed last name, and the nodes kept for file handles.
 *
 * A lower file with several names (st_nlink > 1) is copied up once, into workdir/index/NAME, where
 * NAME is the hex of its origin file handle (struct ovl_fb: version 0, magic 0xfb, length, flags,
 * handle type, the layer filesystem's uuid, the handle bytes from name_to_handle_at). Each of its
 * names is then a hard link to that one upper inode, made when the name is first changed ("link
 * up"); until then, a lookup of a lower name that finds the index entry reads the copy there. The
 * upper inode carries trusted.overlay.origin (the handle) and trusted.overlay.nlink, the merged
 * link count relative to the lower ("L+N") or upper ("U+N") inode's, as the kernel keeps them, so
 * kernel overlayfs (index=on) reads plyfs' upper back the same.
 *
 * Only in the trusted.overlay.* format (fs.h; the user.overlay.* one has none here), with
 * index=on (the default), and only for
 * lower filesystems whose uuid the kernel accepts (origin.h: a null one is fine, one shared by two
 * lower filesystems is not; the index is off for the mount then).
 *
 * WITHOUT AN INDEX (index=off, rootless, a lower without file handles or uuid) the names of a
 * lower hard-link group split at copy-up, exactly as kernel overlayfs with index=off: before its
 * copy-up each name is its own node (index_split_key(): an identity of its own, st_ino still the
 * lower's, so all names show the lower inode number and data); copying one name up gives it its
 * own upper inode, with no origin xattr, and from then on that inode's number (the node is
 * re-keyed to it, node_table_rekey()); the other names stay the lower file. Never one inode
 * number for two different files, never one node for two files. Why split rather than keep an
 * index in user.* xattrs rootless: the kernel's userxattr mode has no index and splits, so only
 * the split reads back the same under `mount -t overlay -o userxattr` (a private user.* index
 * would be ignored there, and its copies would show as stale data); it is also what index=off
 * means for the kernel, so one code path serves both.
 *
 * THE LAST NAME: when the merged link count of an indexed file drops to 0 (unlink, rename over),
 * its index entry is removed, as the kernel's ovl_cleanup_index() does (only when the index
 * inode has no other link left; with the kernel's nfs_export=on it leaves a whiteout instead,
 * plyfs has no such mode), so the kernel's next mount finds no "orphan index entry".
 *
 * FILE HANDLES: a file whose name the node is reached by goes while other names remain, none
 * of which the kernel looked up (no alias to move to, remove.c), stays reachable by its nodeid
 * until its last name goes (index_keep_reachable()), through the entry the removal kept
 * (remove.h): a handle taken through the removed name still opens it, as with kernel overlayfs'
 * nfs_export=on, which decodes it through the index (or the upper file handle). Within the
 * mount only: across a remount the record names the removed name.
 */
#ifndef PLYFS_INDEX_H
#define PLYFS_INDEX_H

#include <stdbool.h>
#include <sys/stat.h>

#include "fs.h"
#include "inode.h"
#include "ovl_names.h"

/* Creates and opens workdir/index (fs->index_dirfd) and reads the layers' uuids. Without it
 * (rootless, no upper), hard links are copied up one name at a time. */
void index_init(struct plyfs *fs);

/* The index name of lower entry (dirfd, name) of `layer`, and its origin handle. Returns 0 and
 * fills *hex (g_free) and fb/fb_len, or -errno (-EOPNOTSUPP: no index for this layer). */
int index_name(struct plyfs *fs, int layer, int dirfd, const char *name, char **hex,
	       unsigned char *fb, size_t *fb_len);

/* Does the index hold `hex`? */
bool index_exists(struct plyfs *fs, const char *hex);

/* trusted.overlay.nlink: the merged st_nlink of a file whose upper inode is `st` (lower link
 * count `lower_nlink`), read from (dirfd, name) (name NULL: the fd itself). */
nlink_t index_nlink(struct plyfs *fs, int dirfd, const char *name, const struct stat *st,
		    int lower_nlink);
/* Records the merged link count relative to the upper inode (before a link/unlink/rename
 * changes both by the same amount). */
int index_set_nlink_upper(struct plyfs *fs, int dirfd, const char *name, nlink_t merged,
			  nlink_t upper);
/* The same relative to the lower inode (at copy-up). */
int index_set_nlink_lower(struct plyfs *fs, int fd, int diff);

/* Is n a file the index takes care of (a lower file with several names, or one in the index)?
 * Removing or replacing one of its names copies it up first, as kernel overlayfs does. */
bool index_covers(struct plyfs *fs, struct node *n);

/* THE NAME A COPY-UP TAKES: a request by nodeid (open for writing, setattr, setxattr, link)
 * does not say which name of a hard-linked file it came through, yet kernel overlayfs copies up
 * (or links up, once another name was copied up) exactly the name used. So the entries of such a
 * file are handed out with entry_timeout 0 (index_entry_timeout()): the kernel looks the name up
 * again on every path walk, and index_note_name() remembers the name it looked up last. Before
 * the copy-up that name becomes the node's own, the one copy_up() takes (the names seen before
 * are kept as aliases, node.h); after it, copy_up() links that name up (index_link_up_seen()).
 * Single requests in a row get the kernel's answer; concurrent walks through two names race as
 * they would to the kernel's copy-up. */
double index_entry_timeout(struct plyfs *fs, struct node *n);
/* A lookup found n as `name` in `parent` (layer `layer`). */
void index_note_name(struct plyfs *fs, struct node *n, struct node *parent, const char *name,
		     int layer);
/* n (in upper) is about to change: the name it was reached by last gets its upper link, as the
 * kernel's ovl_copy_up() links up the dentry used. 0 when there is nothing to do. */
int index_link_up_seen(struct plyfs *fs, struct node *n);

/* What a lookup of a lower regular file with several names must do. */
enum index_state {
	INDEX_PENDING, /* one node for all its names; copied up into the index (not yet) */
	INDEX_FOUND,   /* another name was copied up: *hex names the index entry */
	INDEX_SPLIT,   /* no index for it: each name its own node, split at copy-up */
};
/* Classifies lower entry (dirfd, name) of `layer` (a regular file, st_nlink > 1). *hex is set
 * (g_free) for INDEX_FOUND only. */
enum index_state index_lookup_lower(struct plyfs *fs, int layer, int dirfd, const char *name,
				    char **hex);
/* The identity of one name of a split hard link: the lower inode's dev, and an inode number made
 * from the lower inode, the parent's identity and the name, with the top bit set (no filesystem
 * hands such numbers out), so it is the same on every lookup and every mount. */
struct node_key index_split_key(const struct stat *lower, struct node_key parent, const char *name);
/* Is n one name of a split hard link, not copied up yet? Removing it removes one name only. */
bool index_is_split(const struct node *n);
/* After n's split copy-up (the new upper entry is (dirfd, name), stat `up`): n is that file. */
void index_split_done(struct plyfs *fs, struct node *n, int dirfd, const char *name,
		      const struct stat *up);

/* The index entry of indexed file n, whose upper inode is at (dirfd, name): n->index_name, else
 * the hex of its origin xattr (the kernel names index entries so). g_malloc'd, or NULL. */
char *index_entry_of(struct plyfs *fs, struct node *n, int dirfd, const char *name);
/* The merged link count of the file whose index entry is `hex` dropped to 0: removes the entry
 * if nothing else links to it (the kernel's ovl_cleanup_index()). */
void index_cleanup(struct plyfs *fs, const char *hex);

/* File n lost the name it is reached by while other names remain: pins it, so that a file
 * handle of it keeps finding it until its last name goes. At most INDEX_PINNED_MAX such files
 * at a time (each keeps an O_PATH fd): beyond, a handle of the next gives ESTALE once the kernel
 * forgot the file, as before. */
#define INDEX_PINNED_MAX 4096u
void index_keep_reachable(struct plyfs *fs, struct node *n);
/* Its last name went: drops that pin. */
void index_release(struct plyfs *fs, struct node *n);

/* A copy-up of a lower hard link into the index: the finished copy (tmpfd, or work/tmpname when
 * not NULL), which already carries the kernel's origin (origin_set()), gets the link count,
 * becomes workdir/index/hex and is linked to (dst_dir, name). 0 or -errno. */
int index_place_copy(struct plyfs *fs, int work, int tmpfd, const char *tmpname, const char *hex,
		     nlink_t lower_nlink, int dst_dir, const char *name);
/* Does upper file (dirfd, name) (stat `st`) keep the merged link count of an indexed file? */
bool index_upper_keeps_nlink(struct plyfs *fs, int dirfd, const char *name, const struct stat *st);

/* --- the merged link count of an indexed file (its upper inode's nlink xattr) --- */
/* A copied-up hard-linked file reached through another of its lower names (`name` in the upper
 * directory `updir` holds nothing): links the upper copy there, so the name can be renamed or
 * removed like any upper entry. 0 when there is nothing to do. */
int index_link_up(struct plyfs *fs, struct node *n, int updir, const char *name);

/* The merged st_nlink of a hard-linked file with an index entry (index.h), from the upper
 * inode's trusted.overlay.nlink; `st` is the raw stat of (dirfd, name). */
void index_merged_nlink(struct plyfs *fs, struct node *n, int dirfd, const char *name,
			struct stat *st);
/* Before a link/unlink/rename changes the merged and upper link counts of n alike: records the
 * merged count relative to the upper inode's ("U+d"). `loc` is n's location (NULL: located here).
 */
int index_nlink_prepare(struct plyfs *fs, struct node *n, const struct lfd *loc);
/* After n's upper inode got one more link to a name the merged count already included. */
int index_nlink_after_link(struct plyfs *fs, struct node *n, const struct lfd *loc);

#endif
