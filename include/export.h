/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * export.h - nodeids that outlive the kernel's memory of them (FUSE export support).
 *
 * The kernel encodes a file handle as (nodeid, generation). When it decodes one after it forgot
 * the inode, it sends LOOKUP(nodeid, "."), and LOOKUP(dir, "..") to connect a directory. A node
 * that was freed is found again from its record (node.h, FORGOTTEN NODES): its parent first (by
 * the same means, up to a live ancestor or the root), then its name in the parent, checked
 * against the recorded identity. A file that is gone or was replaced gives -ESTALE.
 */
#ifndef PLYFS_EXPORT_H
#define PLYFS_EXPORT_H

#include "fs.h"

/* The node behind `nodeid`, live or found again, with a request reference (no lookup count). */
int export_resolve(struct plyfs *fs, uint64_t nodeid, struct node **out);

#endif
