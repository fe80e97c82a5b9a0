/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * workdir.h - the work directory: where new upper entries are built before they appear.
 *
 * workdir=W holds W/work (as with kernel overlayfs). Everything plyfs builds there (a copied-up
 * file before it is linked into upper, a directory before it is renamed into place, an entry
 * moved out of upper to be deleted) has a temporary name unique in the mount's lifetime, so a
 * partial result is never visible in upper. At mount, whatever a killed daemon left in W/work is
 * removed.
 *
 * ONE MOUNT PER WORKDIR. Two daemons on one workdir would empty each other's W/work and write
 * one upper layer with two node tables (kernel overlayfs refuses it: "already mounted", EBUSY).
 * So a mount takes an exclusive flock(2) on W/plyfs-lock before it touches W/work, and before it
 * forks, so that a refusal reaches the caller's terminal. The lock belongs to the open file, which
 * the daemonized child inherits (the fd is close-on-exec, so no helper program keeps it), and the
 * kernel releases it when the daemon exits, however it dies: what decides is the lock, never
 * whether the file exists, so a file left by a killed daemon does not block the next mount. The
 * file is never removed (a new file under the name would let two mounts each hold a lock).
 * The holder writes into the file who it is: "PID STATE DEV MOUNTPOINT\n", STATE one of
 *   mounting  from the lock to the mount being live (PID: the process before it forks),
 *   mounted   the daemon serves MOUNTPOINT, its FUSE mount being device DEV ("major:minor"),
 *   stopping  its loop has ended: it saves its handle store and exits;
 * a second mount is refused with a message naming MOUNTPOINT and PID, except that it waits (up to
 * WORKDIR_STOPPING_WAIT seconds) for a holder that is stopping, or that says mounted but whose
 * mount DEV is gone from its /proc/PID/mountinfo (unmounted, its loop not yet ended), so that
 * "umount; mount" works. A record of a process that is gone is not believed (the holder has just
 * taken the lock, or forked): the lock alone decides.
 * Where the filesystem has no locks (flock fails with ENOLCK, EOPNOTSUPP), the mount goes on
 * with a warning.
 */
#ifndef PLYFS_WORKDIR_H
#define PLYFS_WORKDIR_H

#include "fs.h"

#define WORKDIR_STOPPING_WAIT 30

/* Locks the workdir (workdir_lock), then creates W/work if needed, empties it, opens it
 * (fs->work_dirfd). -errno with *err set: -EBUSY when another mount holds the lock. */
int workdir_prepare(struct plyfs *fs, char **err);
/* Takes the lock (fs->lock_fd, state "mounting"); -EBUSY with *err naming the mount that holds
 * it. fs->params->mountpoint must be absolute (it is recorded). */
int workdir_lock(struct plyfs *fs, char **err);
/* Records the holder's state ("mounted", "stopping") with this process's pid and the mount point
 * in the lock file; nothing without a lock. Reads /proc/self/mountinfo, never the mount itself. */
void workdir_lock_record(struct plyfs *fs, const char *state);
/* Whether the upper filesystem takes the overlay xattr `prefix`"opaque" from this process, tried
 * on W/work as kernel overlayfs does at mount (ovl_make_workdir: set to "0", then removed).
 * 0, or the refusal: -EPERM for trusted.* without CAP_SYS_ADMIN in the initial user namespace
 * (uid 0 in a user namespace, rootless podman's default), -EOPNOTSUPP where the filesystem has
 * no xattrs of that namespace. Call after workdir_prepare(). */
int workdir_xattr_probe(struct plyfs *fs, const char *prefix);
/* A fresh temporary name ("#plyfs.PID.N"), g_malloc'd. */
char *workdir_tmpname(void);
/* Removes `name` in `dirfd` and, for a directory, everything below it, never following a
 * symlink. 0 or -errno. */
int workdir_rmtree(int dirfd, const char *name);

#endif
