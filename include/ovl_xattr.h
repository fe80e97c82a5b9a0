/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ovl_xattr.h - the decoders of the overlay metadata read from a layer, and the one place that
 * reports an invalid value.
 *
 * Every value a layer holds is input someone else controls (a container image, a copied tree).
 * Each on-disk format has ONE decoder here. The decoders are pure: they read (value, len) -- the
 * bytes getxattr returned, or a directory entry's name -- and nothing else: no syscalls, no
 * allocation, no FUSE, no global state, so they are unit-tested and fuzzed on their own
 * (tests/unit/test_ovl_xattr.c, tests/fuzz/fuzz_ovl_xattr.c). They never read value[len] or past
 * it, accept len 0 and any byte (NULs included), and validate the way kernel overlayfs does
 * (fs/overlayfs/util.c ovl_get_redirect_xattr, ovl_check_fb_len, ovl_check_metacopy_xattr,
 * ovl_path_check_dir_xattr; inode.c ovl_get_nlink; namei.c lookup_one of each component). An
 * invalid value answers the errno the kernel's lookup answers for it, so a caller can return it
 * as is; where the kernel ignores a bad value (origin, nlink, opaque) the caller does the same.
 *
 * Like the kernel, a value is cut at its first NUL byte ("a\0b" reads as "a").
 *
 * Callers (namei.c, whiteout.c, index.c, copy_up.c) choose the xattr name (trusted.overlay.*,
 * user.overlay.*, user.fuseoverlayfs.*, trusted/user.plyfs.*): the decoders only see values.
 * A caller that finds a value invalid reports it with ovl_xattr_report_invalid(), and nowhere else.
 */
#ifndef PLYFS_OVL_XATTR_H
#define PLYFS_OVL_XATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ovl_names.h"

/* --- *.overlay.redirect (directories) --------------------------------------------------------
 * Absolute: "/" then components separated by single '/', none empty ("/a/b"). Relative: one name
 * that replaces the entry's own name in the layers below ("b"). Never "." or ".." (also not as a
 * component): a redirect cannot leave the layer.
 * Returns 0 and fills *out (path points into `value`, without the leading '/', not NUL-terminated)
 * or:
 *   -EINVAL        empty value; an empty component ("/", "////", "/a/", "/a//b"); a '/' in a
 *                  relative redirect ("../x")       -- the kernel: "invalid redirect", EINVAL
 *   -EACCES        a "." or ".." component, or an empty name ("\0...")
 *                                                   -- the kernel's lookup of it: EACCES
 *   -ENAMETOOLONG  a component longer than NAME_MAX, or a path of PATH_MAX bytes or more: it
 *                  names nothing that can be reached (the kernel's lookup: not found), so the
 *                  directory does not merge below. (The kernel still follows a path of more
 *                  than PATH_MAX bytes whose components all exist; plyfs does not.)
 * The first offending component decides between EACCES and ENAMETOOLONG, as the kernel's
 * component-by-component lookup does; EINVAL is checked over the whole value first. */
struct ovl_redirect {
	bool absolute;
	const char *path; /* into value; "a/b" for "/a/b", "b" for "b" */
	size_t len;
};
int ovl_redirect_decode(const char *value, ssize_t len, struct ovl_redirect *out);

/* --- *.overlay.origin (struct ovl_fb, the kernel's copy-up origin / index file handle) --------
 * Layout: version(0) magic(0xfb) len flags type uuid[16] fid[len - 21]. Returns 0 and fills *out
 * (uuid and fid point into value), or:
 *   -ENODATA  "origin unknown", ignored without a warning by the kernel: an empty value, a
 *             newer version, unknown flags, or the other byte order without ANY_ENDIAN
 *   -EINVAL   too short (< 21 bytes, or shorter than its own len field, or a len field < 21),
 *             bad magic: the kernel warns "invalid origin" and ignores it. */
struct ovl_fb_info {
	uint8_t version, flags, type;
	const unsigned char *uuid; /* 16 bytes */
	const unsigned char *fid;
	size_t fid_len;
};
int ovl_origin_decode(const void *value, ssize_t len, struct ovl_fb_info *out);

/* --- plyfs' own origin ("<dev hex>:<ino hex>", trusted.plyfs.origin / user.plyfs.origin) -----
 * Exactly 1..16 hex digits, ':', 1..16 hex digits. Returns 0, or -EINVAL (ignored: the file
 * keeps its own identity). */
int ovl_plyfs_origin_decode(const char *value, ssize_t len, uint64_t *dev, uint64_t *ino);

/* --- *.overlay.opaque, user.fuseoverlayfs.opaque, *.overlay.impure ----------------------------
 * The kernel reads one byte: exactly "y" is set. Returns OVL_FLAG_YES for "y", OVL_FLAG_X for
 * "x" (opaque only: the kernel's "directory holds xwhiteouts", which plyfs does not read: not
 * opaque), OVL_FLAG_NO for an empty value, -EINVAL for anything else (the kernel: not set,
 * silently; plyfs reports it). */
enum { OVL_FLAG_NO = 0, OVL_FLAG_YES = 1, OVL_FLAG_X = 2 };
int ovl_flag_decode(const char *value, ssize_t len);

/* --- trusted.overlay.nlink ("U+N", "L+N", "U-N", "L-N"; an upper file of the index) ----------
 * As ovl_get_nlink: first byte 'L' (relative to the lower inode's link count) or 'U' (the
 * upper's), second '+' or '-', then a decimal int as kstrtoint reads it (sign included, one
 * trailing '\n' allowed, no spaces), at most 12 bytes. Returns 0 and *base, *diff, or -EINVAL
 * (format), -ERANGE (too long, out of int range). */
int ovl_nlink_decode(const char *value, ssize_t len, char *base, int *diff);
/* The merged link count: (base 'L' ? lower : upper) + diff; -EINVAL when that is not positive
 * (the kernel then shows the upper inode's count). */
int ovl_nlink_apply(char base, int diff, unsigned long lower, unsigned long upper,
		    unsigned long *out);

/* --- *.overlay.metacopy (regular files) -------------------------------------------------------
 * plyfs has no metacopy: it answers what the kernel with metacopy=off does. Returns 1 for a
 * metacopy value (empty, or 4 bytes and more: the kernel refuses to follow it, EPERM), or -EIO
 * for 1..3 bytes ("metacopy file has too small xattr"). */
int ovl_metacopy_decode(const char *value, ssize_t len);

/* --- ".wh." names in a directory (OCI whiteouts, aufs) ----------------------------------------
 * OVL_WH_NONE: an ordinary name. OVL_WH_WHITEOUT: ".wh.X" hides X (*target, into name; aufs'
 * ".wh..wh.X" bookkeeping names hide ".wh.X", itself never shown). OVL_WH_OPQ: ".wh..wh..opq", the
 * directory is opaque. OVL_WH_INVALID: ".wh.", ".wh..", ".wh..." and a target holding '/' or NUL
 * name no entry and hide nothing. Every name but OVL_WH_NONE is the overlay's own, never listed. */
enum ovl_wh_kind { OVL_WH_NONE, OVL_WH_WHITEOUT, OVL_WH_OPQ, OVL_WH_INVALID };
enum ovl_wh_kind ovl_wh_decode(const char *name, size_t len, const char **target);

/* --- reporting --------------------------------------------------------------------------------
 * The one function every caller uses when a layer holds an invalid value: logs it (warning,
 * rate-limited: log_ratelimited()) once per (what, layer, path) for the life of the process --
 * at most OVL_REPORT_REMEMBERED distinct ones are remembered, later ones are still rate-limited.
 * `what` names the format ("redirect", "origin", ...), `path` the entry inside layer `layer`
 * ("" for its root) -- or, with layer -1 (a caller that does not know it), the entry's absolute
 * path -- and `err` the decoder's -errno. Thread-safe; never blocks on I/O other than
 * the log. The error counters of status.h are to be fed from here. `fs` may be NULL (tests). */
#define OVL_REPORT_REMEMBERED 4096
struct plyfs;
void ovl_xattr_report_invalid(struct plyfs *fs, const char *what, int layer, const char *path,
			      int err);
/* How many reports were made (first occurrences only): tests. */
unsigned long ovl_xattr_reports(void);

#endif
