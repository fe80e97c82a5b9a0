/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ovl_names.h - every name plyfs reads or writes on disk, in one place.
 *
 * The on-disk format is the one of kernel overlayfs, so that layers written by plyfs read back the
 * same under `mount -t overlay`:
 *  - whiteout: a character device 0/0 named like the hidden entry, or (where mknod is not
 *    permitted, and in OCI image layers) a file ".wh.NAME";
 *  - opaque directory: xattr "<prefix>opaque" = "y" (prefix "trusted.overlay." where the upper
 *    takes it, else the kernel's "userxattr" format "user.overlay.": fs.h), or an entry
 *    ".wh..wh..opq" inside it;
 *  - fuse-overlayfs also wrote "user.fuseoverlayfs.opaque": read, never written.
 * Which xattr prefix is written is chosen once per mount (struct plyfs.xattr_prefix).
 * Every value read back is decoded by ovl_xattr.h, never parsed in place.
 */
#ifndef PLYFS_OVL_NAMES_H
#define PLYFS_OVL_NAMES_H

#define OVL_XATTR_TRUSTED_PREFIX "trusted.overlay."
#define OVL_XATTR_USER_PREFIX	 "user.overlay."
#define OVL_XATTR_FOVL_PREFIX	 "user.fuseoverlayfs."
#define PLYFS_XATTR_PREFIX	 "user.plyfs."

#define OVL_XATTR_OPAQUE_SUFFIX	  "opaque"
#define OVL_XATTR_REDIRECT_SUFFIX "redirect"
#define OVL_XATTR_ORIGIN_SUFFIX	  "origin"
#define OVL_XATTR_NLINK_SUFFIX	  "nlink"
#define OVL_XATTR_IMPURE_SUFFIX	  "impure"
#define OVL_XATTR_METACOPY_SUFFIX "metacopy"
#define OVL_XATTR_PROTATTR_SUFFIX "protattr" /* fileattr.h */

#define OVL_WH_PREFIX	  ".wh."
#define OVL_WH_PREFIX_LEN 4
#define OVL_OPQ_NAME	  ".wh..wh..opq"

/* Names of the work directory's own entries (inside workdir=W). */
#define PLYFS_WORK_SUBDIR  "work"
#define PLYFS_INDEX_SUBDIR "index"
#define PLYFS_HANDLES_NAME "plyfs-handles" /* export_store.h: its first slot */
#define PLYFS_HANDLES_NAME_2 "plyfs-handles.2" /* and its second */
#define PLYFS_LOCK_NAME	   "plyfs-lock"	   /* workdir.h: the mount that uses the workdir */

/* xattr_permissions (override.h): owner, mode and type kept in an xattr, "uid:gid:mode[:type]".
 * fuse-overlayfs writes the first (xattr_permissions=1) and the last (=2); containers-storage
 * writes the second, which plyfs writes for xattr_permissions=2. */
#define OVERRIDE_XATTR_PRIVILEGED "security.fuseoverlayfs.override_stat"
#define OVERRIDE_XATTR_CONTAINERS "user.containers.override_stat"
#define OVERRIDE_XATTR_FOVL	  "user.fuseoverlayfs.override_stat"

/* The status query: a read-only xattr of the mount's root (status.h). */
#define PLYFS_STATUS_XATTR PLYFS_XATTR_PREFIX "status"

#endif
