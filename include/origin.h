/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * origin.h - where a copied-up entry came from, in kernel overlayfs' format.
 *
 * Written, in the mount's xattr prefix (fs->xattr_prefix), exactly where the kernel writes them:
 *  - "<prefix>overlay.origin" on the upper entry a copy-up makes (copy_up.c): struct ovl_fb
 *    (ovl_names.h) with the lower entry's file handle (name_to_handle_at) and its filesystem's
 *    uuid (16 zero bytes with uuid=off), or an empty value ("copied up, origin unknown") where
 *    the lower filesystem has no file handles. The kernel's rule for which entries get one:
 *    directories, non-directories with one link, and files copied up through the index; a lower
 *    hard link copied up without the index gets none (its names part ways, ovl_do_copy_up()).
 *    Also on an upper directory found merging with a lower one and carrying none (namei.c; the
 *    kernel's ovl_fix_origin()).
 *  - "<prefix>overlay.impure" = "y" on an upper directory that receives an entry with an origin
 *    or a redirect: the parent of every copy-up, the new parent of a rename from another
 *    directory (and the old one for an exchange), the parent of a link, and the parent of a
 *    directory whose origin namei fixed. Dropped again when a listing of a directory that is
 *    upper only finds no entry keeping an origin's st_ino (dir.c), as the kernel's readdir does.
 *  - at mount (origin_mount_init()): the uuid= rules of the kernel (params.h), below.
 * Nothing private is written: plyfs' old "trusted.plyfs.origin"/"user.plyfs.origin" ("DEV:INO"
 * hex) is only read, on layers written by older plyfs, where no overlay origin is present.
 *
 * Read (namei.c): the origin of an upper non-directory names the lower file whose identity (and
 * so st_ino) it keeps, once verified as the kernel's ovl_check_origin() does: it must be the
 * handle of a file of the same type on a lower filesystem whose uuid it carries (and whose uuid is
 * usable, below); anything else (stale, foreign, another type, undecodable) is ignored and the
 * file is its own. Verified first against the same name in the parent's lower layers
 * (name_to_handle_at works unprivileged), else by open_by_handle_at on the lower filesystems
 * (CAP_DAC_READ_SEARCH: as root). So rootless, a copied-up file renamed before a remount is its
 * own file afterwards; the kernel, which cannot decode handles in a user namespace at all, writes
 * empty origins there and keeps no copied-up file's st_ino across a remount.
 *
 * The uuid rules (the kernel's ovl_lower_uuid_ok(), ovl_get_fsid(), ovl_init_uuid_xattr()):
 *  - a lower filesystem (other than the upper's) whose uuid is null, where offline changes to the
 *    lowers are allowed (no index and no redirects: plyfs always follows redirects, so never), or
 *    whose uuid another lower filesystem has too, is "bad": its origins are not decoded and the
 *    index is turned off. So a single lower on an ext4 with a null uuid keeps the index on.
 *    A lower filesystem without file handles turns the index off too (ovl_lower_dir()).
 *  - uuid=off: origins carry a null uuid and only null-uuid origins are decoded; it needs every
 *    layer on one filesystem, else it is uuid=null. uuid=null: the upper root gets no uuid.
 *    uuid=on: "<prefix>overlay.uuid" (16 random bytes) on the upper root unless present.
 *    uuid=auto (default): the same for an upper whose root is not impure yet (a new one), else
 *    null. The overlay's uuid has no other use here (FUSE cannot report an fsid).
 *  - with the index, the upper root's origin is the top lower root's (set when absent); one
 *    that differs (the upper used with other lowers) turns the index off for this mount, with a
 *    warning (the kernel refuses such a mount with index=on).
 */
#ifndef PLYFS_ORIGIN_H
#define PLYFS_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fs.h"
#include "ovl_names.h"

struct origin_fh {
	unsigned char fb[OVL_FB_MAX];
	size_t len; /* 0: the null origin ("origin unknown") */
};

/* Applies the uuid rules above; call once the layers, the workdir and the index are set up. */
void origin_mount_init(struct plyfs *fs);
/* The uuid rule alone (pure): marks bad_uuid on the lower layers whose origins cannot be told
 * apart, meeting the filesystems as the kernel's ovl_get_fsid() does: the upper's first (never
 * checked itself, nor lowers on it), then each new lower one. Returns the number of distinct
 * filesystems, counting one for the upper even without one (the kernel's numfs). */
unsigned origin_mark_bad_uuids(struct layer *layers, size_t n_layers, bool has_upper);

/* The origin handle of lower entry (dirfd, name) (name NULL: dirfd itself) of `layer`: 0 with
 * fh->len > 0, 0 with fh->len == 0 where its filesystem has no file handles, or -errno. */
int origin_encode(const struct plyfs *fs, int layer, int dirfd, const char *name,
		  struct origin_fh *fh);
/* The hex of fh (the index entry name); g_free. */
char *origin_hex(const struct origin_fh *fh);

/* Writes fh as the origin of (dirfd, name), an entry of type `type` (S_IFMT bits). Like the
 * kernel, EPERM (user.* on a symlink or a device node: not even tried) and an upper without xattrs
 * (noted under `metadata`, errors.h) are not errors; any other failure is. */
int origin_set(struct plyfs *fs, int dirfd, const char *name, mode_t type,
	       const struct origin_fh *fh);
/* Marks upper directory `dirfd` (the fd itself) impure, unless it is already. */
int origin_set_impure(struct plyfs *fs, int dirfd);
/* Is upper directory `dirfd` (the fd itself) marked impure? */
bool origin_is_impure(struct plyfs *fs, int dirfd);
/* Drops the impure mark of upper directory `dirfd`, best effort: a listing of it found no entry
 * whose st_ino comes from an origin, and the kernel's readdir (ovl_cache_get_impure()) drops the
 * mark then, so the upper must read back the same. */
void origin_clear_impure(struct plyfs *fs, int dirfd);

/* Does node n stand for an entry with a lower origin (a lower or merged entry, or a copy-up that
 * kept a lower identity)? The kernel's ovl_type_origin(). */
bool origin_of_node(const struct plyfs *fs, const struct node *n);

/* The origin of upper entry (dirfd, name): 0 and *fh; -ENODATA when it has none; -ESTALE when
 * it has one that names nothing ("origin unknown": empty, newer version, other byte order);
 * -EINVAL when it is invalid (the caller reports it); another -errno when the layer failed. */
int origin_get(struct plyfs *fs, int dirfd, const char *name, struct origin_fh *fh);
/* Is fh the handle of lower entry (dirfd, name) of `layer`? */
bool origin_matches(const struct plyfs *fs, const struct origin_fh *fh, int layer, int dirfd,
		    const char *name);
/* The identity of the lower file of type `type` (S_IFMT bits) that fh names, found with
 * open_by_handle_at on the lower filesystems fh may belong to. 0, or -ESTALE (none: not found,
 * another type, no capability). */
int origin_decode(struct plyfs *fs, const struct origin_fh *fh, mode_t type, struct node_key *key);

/* plyfs' old private origin of (dirfd, name): 0 and *key, -ENODATA, -EINVAL (invalid). */
int origin_legacy_get(struct plyfs *fs, int dirfd, const char *name, struct node_key *key);

#endif
