/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * namei.h - LOOKUP: finding a name in a merged directory.
 *
 * The layers of the parent are scanned top-down, touching only the name asked for (never the whole
 * directory): a whiteout (0/0 char device, or ".wh.NAME" beside where NAME would be) hides the name
 * in the layers below; a non-directory ends the scan; a directory continues it through the layers
 * below where the name is a directory too, until an opaque one. So file-over-dir shows the file, and
 * dir-over-file shows only the upper directory.
 */
#ifndef PLYFS_NAMEI_H
#define PLYFS_NAMEI_H

#include <sys/stat.h>

#include "fs.h"

/*
 * Looks `name` up in directory `parent`. On success returns 0, *out is the node with nlookup
 * already incremented (an entry reply must follow) plus one request reference the caller drops
 * with node_put(), and *st its attributes in the merged view.
 * Errors: -ENOENT (absent or whited out), -ENAMETOOLONG (a component over 255 bytes), -ENOTDIR,
 * -EINVAL for a name with '/', or the layer's error.
 */
int namei_lookup(struct plyfs *fs, struct node *parent, const char *name, struct node **out,
		 struct stat *st);

/* What a merged listing (readdir.h) just read: lower layers `absent[0..n_absent)` of the parent
 * hold neither the name nor a whiteout of it, nor are opaque (it was listed from a layer below
 * them). */
struct namei_listed {
	const int *absent;
	unsigned n_absent;
};

/* namei_lookup() of a name that listing found: the scan skips the layers it says the name is not
 * in (lower ones only: they do not change while mounted), which saves two syscalls (the name, its
 * ".wh." form) per layer above the name's. Same contract as namei_lookup(). */
int namei_lookup_listed(struct plyfs *fs, struct node *parent, const char *name,
			const struct namei_listed *listed, struct node **out, struct stat *st);

/* namei_lookup() of a non-directory this request has just made in the upper layer of `parent`
 * (under parent->lock, so the name is still its): a new inode has no metacopy and no origin, so
 * neither is read. A directory is looked up as by namei_lookup() (lower parts may merge). */
int namei_lookup_made(struct plyfs *fs, struct node *parent, const char *name, struct node **out,
		      struct stat *st);

/* The scan alone: a fresh, unhashed candidate node (node_table_insert_lookup() makes it real, or
 * node_discard() drops it) and the raw stat of its top entry. Same errors as namei_lookup. */
int namei_scan(struct plyfs *fs, struct node *parent, const char *name, struct node **fresh,
	       struct stat *st);

/*
 * A name a request brings for an entry to make, remove or rename (MKNOD, MKDIR, SYMLINK, CREATE,
 * LINK, UNLINK, RMDIR, both names of RENAME), checked before anything is touched: 0 for a plain
 * component; -ENAMETOOLONG over 255 bytes; -EINVAL when empty or holding a '/' (the kernel never
 * sends one; handed to a layer syscall it would reach another directory, or leave the layer with
 * ".."); "." and ".." answer -dot and -dotdot, the kernel's errno for the same syscall (mkdir(".")
 * EEXIST, rmdir(".") EINVAL and rmdir("..") ENOTEMPTY, unlink(".") EISDIR, rename EBUSY, ...).
 */
int namei_check_request_name(const char *name, int dot, int dotdot);

/* LOOKUP of "." (the node itself) and ".." (its parent; the root's parent is the root), as export
 * support needs: counted as lookups. Same contract as namei_lookup. */
int namei_lookup_dot(struct plyfs *fs, struct node *dir, const char *name, struct node **out,
		     struct stat *st);

#endif
