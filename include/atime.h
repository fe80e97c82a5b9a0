/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * atime.h - access times by the plyfs mount's own policy, as kernel overlayfs keeps them.
 *
 * The FUSE kernel module never updates atime itself (S_NOATIME on its inodes): the daemon does.
 * Every layer file and directory is opened O_NOATIME (layer.c; without it where the kernel
 * refuses it: not the owner and no CAP_FOWNER), so reading a layer never moves an atime by the
 * layer's own mount options. After a READ of a file, or a READDIR of a directory, that has an
 * upper entry (kernel overlayfs never touches a lower one), the daemon decides by the plyfs
 * mount's flags (noatime; nodiratime for directories; relatime: when atime <= mtime or <= ctime,
 * or older than 24 hours; strictatime: whenever the time moved), as the kernel's
 * atime_needs_update() does, and then reads the upper entry once through a new fd without
 * O_NOATIME: the upper filesystem updates the atime by its own mount's rules too, exactly like
 * the kernel's touch_atime() on the upper path, and ctime stays (utimensat would move it).
 * A handle the caller opened O_NOATIME touches nothing.
 *
 * The flags are the mount's as /proc/self/mountinfo shows them (so `mount -o remount,noatime` and
 * any other remount take effect): read at start, then again by a thread each time the mount table
 * changes (poll(2) on mountinfo). Reads served from the kernel's page cache never reach the
 * daemon and move nothing.
 */
#ifndef PLYFS_ATIME_H
#define PLYFS_ATIME_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "fs.h"

/* The kernel's rule (MS_* flags of the mount, the entry's stat, the current time). Pure. */
bool atime_needs_update(unsigned long flags, bool dir, const struct stat *st,
			const struct timespec *now);

/* Reads the mount's flags once (right after it was mounted; falls back to the options when
 * mountinfo does not show the mount) and remembers which mount it is. */
void atime_init(struct plyfs *fs);
/* Starts / stops the thread that follows remounts (after the daemonizing fork). */
void atime_start(struct plyfs *fs);
void atime_stop(struct plyfs *fs);

/* The upper entry behind `fd` (an open file, or an O_PATH fd of a directory) was read. */
void atime_accessed(struct plyfs *fs, int fd, bool dir);
/* Whether a read of the upper entry behind `fd` now would move its atime (false without a
 * syscall under noatime, and nodiratime for a directory). */
bool atime_due(struct plyfs *fs, int fd, bool dir);
/* Whether no later read of the entry behind `fd` would move its atime while the entry does not
 * change (mtime and ctime stay): noatime, nodiratime for a directory, or relatime with the atime
 * not due now. Not relatime's 24 hours: an atime not due now is taken to stay so. */
bool atime_stays(struct plyfs *fs, int fd, bool dir);

#endif
