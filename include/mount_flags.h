/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mount_flags.h - the generic mount flags of the plyfs mount: from the options, from
 * /proc/self/mountinfo, and applied to a live mount (remount).
 *
 * Options are data: one table maps each generic option (ro, rw, [no]suid, [no]dev, [no]exec,
 * sync, async, dirsync, [no]atime, [no]diratime, [no]relatime, [no]strictatime, [no]lazytime) to
 * the MS_* bit it sets or clears, with mount(8)'s meaning (each option its own bit; mount(2)
 * resolves the atime ones: noatime wins over relatime, strictatime over both, and a remount
 * without any keeps the mount's). A change is recorded option by option in order, so the last
 * one wins, and applied on top of the mount's current flags.
 *
 * Remount (`mount -o remount,ro MNT`: mount(8) runs mount.fuse3, which runs `plyfs SOURCE MNT -o
 * ro,relatime,remount,user_id=0,...`, the mount's current options merged with the new ones) is
 * done as kernel overlayfs has it done for it: mount(2) with MS_REMOUNT on the mount point, the
 * flags being the mount's current ones (mountinfo) with the options applied. The FUSE kernel
 * module applies ro/rw to the superblock and the per-mount flags (atime, nosuid, ...) to the
 * mount; the daemon learns the atime flags from mountinfo (atime.h). Needs CAP_SYS_ADMIN (root):
 * a user's remount fails with the errno of mount(2), named in the message.
 *
 * Kernel-only MS_* bits are used throughout (sys/mount.h); "flags" below is the subset
 * MOUNT_FLAGS_MASK of them.
 */
#ifndef PLYFS_MOUNT_FLAGS_H
#define PLYFS_MOUNT_FLAGS_H

#include <stdbool.h>

#define MOUNT_FLAGS_ATIME_MASK (MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

/* The bits options set and clear so far (both never share a bit). */
struct mount_flags_change {
	unsigned long set, clear;
};

/* Records option `opt` into `c` when it is a generic mount flag option; false otherwise. */
bool mount_flags_note(struct mount_flags_change *c, const char *opt);

/* The flags `base` with the change applied. */
unsigned long mount_flags_apply(const struct mount_flags_change *c, unsigned long base);

/* The flags of one /proc/self/mountinfo line (mount options, and the superblock's ro, sync,
 * dirsync, lazytime) when its mount point is `mountpoint` (as given, unescaped); *mount_id gets
 * its mount id, *fuse whether it is a FUSE mount (type fuse or fuse.*). 0 when it matches,
 * -ENOENT when it is another mount, -EINVAL when malformed.
 * (A strictatime mount shows neither relatime nor noatime, as mountinfo says.) */
int mount_flags_parse_line(const char *line, const char *mountpoint, int *mount_id,
			   unsigned long *flags, bool *fuse);

/* The flags of the topmost mount on `mountpoint` (the last mountinfo line for it), or, with
 * mount_id >= 0, of the mount with that id wherever it is. 0, or -ENOENT, or -errno of reading
 * mountinfo. */
int mount_flags_read(const char *mountpoint, int mount_id, int *id_out, unsigned long *flags,
		     bool *fuse);

/* mount(2) MS_REMOUNT of `mountpoint` with its current flags and `c` applied; the mount there
 * must be a FUSE one (-EINVAL otherwise: never another filesystem). 0, or -errno with *err set to
 * a message naming the mount point. */
int mount_flags_remount(const char *mountpoint, const struct mount_flags_change *c, char **err);

/* Right after our own mount: applies the atime options libfuse cannot pass (nodiratime,
 * strictatime) to the mount point, keeping its other per-mount flags (MS_REMOUNT|MS_BIND).
 * No request reaches the daemon. Root only; 0 when there is nothing to do, else as above. */
int mount_flags_set_atime(const char *mountpoint, const struct mount_flags_change *c, char **err);

#endif
