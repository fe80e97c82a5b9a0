/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * whiteout.h - recognising whiteouts and opaque directories in a layer (kernel overlayfs format,
 * plus the OCI ".wh." forms), see ovl_names.h.
 *
 * Both whiteout forms are honoured in every layer:
 *   - a character device with rdev 0/0 named NAME hides NAME in the layers below;
 *   - a file named ".wh.NAME" hides NAME in the layers below and is itself never shown.
 * A directory is opaque (stops the merge with the layers below) when it carries
 * trusted.overlay.opaque=y (read only when `trusted` is true: root), user.overlay.opaque=y or
 * user.fuseoverlayfs.opaque=y, or contains an entry named ".wh..wh..opq".
 */
#ifndef PLYFS_WHITEOUT_H
#define PLYFS_WHITEOUT_H

#include <stdbool.h>
#include <sys/stat.h>

/* A 0/0 character device. */
bool whiteout_is_chardev(const struct stat *st);
/* NAME is ".wh.X" with X non-empty and not ".wh..opq": returns X, else NULL. */
const char *whiteout_wh_target(const char *name);
/* NAME is exactly ".wh..wh..opq". */
bool whiteout_is_opq_name(const char *name);
/* True for every name a layer holds for the overlay's own bookkeeping and that readdir must never
 * show: ".wh.*" (both whiteouts and the opaque marker). */
bool whiteout_is_private_name(const char *name);

/* Does directory `dirfd` (any layer, O_PATH is fine) hold ".wh.NAME"? 1 yes, 0 no, -errno. */
int whiteout_wh_exists(int dirfd, const char *name);
/* Is the directory `dirfd` opaque? 1 yes, 0 no, -errno on a real error (missing xattr support is
 * "no"). One listxattr, then a getxattr only for an opaque name present, then one fstatat of
 * ".wh..wh..opq". */
int whiteout_dir_is_opaque(int dirfd, bool trusted);

#endif
