/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * workdir.h - the work directory: where new upper entries are built before they appear.
 *
 * workdir=W holds W/work (as with kernel overlayfs). Everything plyfs builds there (a copied-up
 * file before it is linked into upper, a directory before it is renamed into place, an entry
 * moved out of upper to be deleted) has a temporary name unique in the mount's lifetime, so a
 * partial result is never visible in upper. At mount, whatever a killed daemon left in W/work is
 * removed.
 */
#ifndef PLYFS_WORKDIR_H
#define PLYFS_WORKDIR_H

#include "fs.h"

/* Creates W/work if needed, empties it, opens it (fs->work_dirfd). -errno with *err set. */
int workdir_prepare(struct plyfs *fs, char **err);
/* A fresh temporary name ("#plyfs.PID.N"), g_malloc'd. */
char *workdir_tmpname(void);
/* Removes `name` in `dirfd` and, for a directory, everything below it, never following a
 * symlink. 0 or -errno. */
int workdir_rmtree(int dirfd, const char *name);

#endif
