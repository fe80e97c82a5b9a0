/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dir.h - open directory handles: OPENDIR / READDIR / READDIRPLUS / RELEASEDIR.
 *
 * OPENDIR takes no snapshot. The first READDIR at offset 0 (and every later one at offset 0: a
 * rewind) builds the merged list (readdir.h). Positions: 0 is ".", 1 is "..", then the merged
 * entries; the offset handed to the kernel for position i is i + 1, so telldir/seekdir positions
 * stay valid until the next rewind. Memory is per handle, released by dir_release().
 * A handle holds a reference on its node (the node cannot be freed while the directory is open).
 */
#ifndef PLYFS_DIR_H
#define PLYFS_DIR_H

#include <fuse_lowlevel.h>

#include "fs.h"

struct dir_handle;

/* The merged listing of directory n (readdir.h), read now. With `layers`, *layers (g_free) maps
 * each merged_entry.layer position to its layer index. */
int dir_merged_list(struct plyfs *fs, struct node *n, GPtrArray **list, int **layers);

/* *cache: whether the kernel may serve this open's listing from its cache (ops.c sets
 * cache_readdir): not while a listing now would move the upper directory's atime (atime.h), which
 * only a READDIR reaching the daemon does, nor while the kernel wants the attributes of files its
 * last READDIRPLUS left out (dir.c, "plus advice"). */
int dir_open(struct plyfs *fs, struct node *n, struct dir_handle **out, bool *cache);
/*
 * Fills `buf` (capacity `size`) with entries from offset `off`, plain or plus. Returns the number
 * of bytes used (0 at the end, and at any offset past it) or -errno (-EINVAL for a negative
 * offset). For plus, each entry that fits and carries attributes is a lookup (nlookup+1): not
 * "." and "..", nor a file left out as a plain dirent (nodeid 0, dir.c "plus advice"); an entry
 * that did not fit is not counted.
 */
ssize_t dir_read(struct plyfs *fs, fuse_req_t req, struct dir_handle *dh, char *buf, size_t size,
		 off_t off, bool plus);
void dir_release(struct plyfs *fs, struct dir_handle *dh);
/*
 * The same without a handle (the kernel's no-opendir mode: READDIR with fh 0): the listing of
 * directory n read at offset 0 is kept (bounded, shared by concurrent listings of n, which see
 * the same positions while n is unchanged) for the READDIRs that continue it, and dropped at its
 * end or when LISTINGS_MAX newer ones are kept; one asked for then is read again. At the end
 * (0 returned), *may_cache is false when the kernel must not serve the next listing from its
 * cache: that listing would move the upper directory's atime (atime_stays()).
 */
ssize_t dir_read_node(struct plyfs *fs, fuse_req_t req, struct node *n, char *buf, size_t size,
		      off_t off, bool plus, bool *may_cache);
/* In no-opendir mode: drops the kernel's cached listing of every directory it may hold (a
 * notification per directory node), so that the next listings reach the daemon: the mount's atime
 * flags changed (a remount), and listings cached under the old ones may be due now. */
void dir_listings_stale_all(struct plyfs *fs);
/* A LOOKUP found a name in directory `parent`: READDIRPLUS learns from it whether files it
 * leaves out are looked up next (dir.c, "plus advice"). True when this LOOKUP made files wanted
 * again: the caller then calls dir_listings_left_out_stale(), after its reply. */
bool dir_note_lookup(struct plyfs *fs, struct node *parent);
/* In no-opendir mode the kernel serves a directory's listing from its cache without asking us,
 * so a listing that left every file out would cost a LOOKUP round trip per file once files are
 * wanted again: their cached copies are dropped (a notification per such directory), and their
 * next listings bring the files' attributes. */
void dir_listings_left_out_stale(struct plyfs *fs);
/* At exit: releases the handles the kernel never released, and the cached listings. */
void dir_release_all(struct plyfs *fs);

#endif
