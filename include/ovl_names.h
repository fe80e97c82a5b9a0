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
 *  - the copy-up origin, impure and uuid markers, the index: origin.h and index.h;
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
/* Written by plyfs before it wrote the kernel's origin: read on old layers, never written. */
#define PLYFS_XATTR_TRUSTED_PREFIX "trusted.plyfs."

#define OVL_XATTR_OPAQUE_SUFFIX	  "opaque"
#define OVL_XATTR_REDIRECT_SUFFIX "redirect"
#define OVL_XATTR_ORIGIN_SUFFIX	  "origin"
#define OVL_XATTR_NLINK_SUFFIX	  "nlink"
#define OVL_XATTR_IMPURE_SUFFIX	  "impure"
#define OVL_XATTR_METACOPY_SUFFIX "metacopy"
#define OVL_XATTR_PROTATTR_SUFFIX "protattr" /* fileattr.h */
#define OVL_XATTR_UPPER_SUFFIX	  "upper"  /* on workdir/index: the upper root's handle */
#define OVL_XATTR_UUID_SUFFIX	  "uuid"   /* on the upper root: the overlay's own uuid */
#define PLYFS_XATTR_ORIGIN_SUFFIX "origin" /* plyfs' old "<dev hex>:<ino hex>" origin */

/* struct ovl_fb, the kernel's file handle format of "origin" and "upper" values and of the index
 * entry names (their hex): version(0) magic(0xfb) len flags type uuid[16] fid[len - 21]. */
#define OVL_FB_HEADER_LEN      21
#define OVL_FB_MAGIC	       0xfb
#define OVL_FB_VERSION	       0
#define OVL_FB_FLAG_BIG_ENDIAN (1 << 0)
#define OVL_FB_FLAG_ANY_ENDIAN (1 << 1)
#define OVL_FB_FLAG_PATH_UPPER (1 << 2)
#define OVL_FB_FLAG_ALL	       0x07
/* The kernel's own byte order flag (OVL_FH_FLAG_CPU_ENDIAN). */
#define OVL_FB_FLAG_CPU_ENDIAN (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? OVL_FB_FLAG_BIG_ENDIAN : 0)
/* MAX_HANDLE_SZ (128) bytes of handle at most, as the kernel encodes them. */
#define OVL_FB_FID_MAX 128
#define OVL_FB_MAX     (OVL_FB_HEADER_LEN + OVL_FB_FID_MAX)
/* The impure marker's value, and the opaque one's. */
#define OVL_XATTR_YES "y"

#define OVL_WH_PREFIX	  ".wh."
#define OVL_WH_PREFIX_LEN 4
#define OVL_OPQ_NAME	  ".wh..wh..opq"

/* Names of the work directory's own entries (inside workdir=W). Temporary entries in workdir/work
 * start with '#', as the kernel's do ("#%x"), so that its index cleanup takes them for leftovers. */
#define PLYFS_TMP_PREFIX "#plyfs."
#define PLYFS_WORK_SUBDIR    "work"
#define PLYFS_INDEX_SUBDIR   "index"
#define PLYFS_HANDLES_NAME   "plyfs-handles"   /* export_store.h: its first slot */
#define PLYFS_HANDLES_NAME_2 "plyfs-handles.2" /* and its second */
#define PLYFS_LOCK_NAME	     "plyfs-lock"      /* workdir.h: the mount that uses the workdir */

/* xattr_permissions (override.h): owner, mode and type kept in an xattr, "uid:gid:mode[:type]".
 * fuse-overlayfs writes the first (xattr_permissions=1) and the last (=2); containers-storage
 * writes the second, which plyfs writes for xattr_permissions=2. */
#define OVERRIDE_XATTR_PRIVILEGED "security.fuseoverlayfs.override_stat"
#define OVERRIDE_XATTR_CONTAINERS "user.containers.override_stat"
#define OVERRIDE_XATTR_FOVL	  "user.fuseoverlayfs.override_stat"

/* The status query: a read-only xattr of the mount's root (status.h). */
#define PLYFS_STATUS_XATTR PLYFS_XATTR_PREFIX "status"

#endif
