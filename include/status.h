/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status.h - the status query of a live mount.
 *
 * Reading the xattr PLYFS_STATUS_XATTR ("user.plyfs.status") of the mount's root, e.g.
 *	getfattr --only-values -n user.plyfs.status MNT
 * gives one "name value" line per counter:
 *	nodes_live N      nodes the kernel holds (nlookup > 0)
 *	nodes_pinned N    nodes it forgot, still used by a child, an open handle or a request
 *	nodes N           all nodes in the table
 *	records N         records of forgotten nodes (node.h, FORGOTTEN NODES)
 *	records_max N     their bound (forgotten_records=N)
 *	next_nodeid N     the next nodeid to hand out
 * The name is never listed and cannot be set; it works with noxattrs too. Anyone who can see the
 * root can read it: it tells counts, no names.
 */
#ifndef PLYFS_STATUS_H
#define PLYFS_STATUS_H

#include <sys/types.h>

#include "fs.h"

/* getxattr(2) semantics: the length for size 0, -ERANGE when it does not fit. */
ssize_t status_xattr(struct plyfs *fs, char *buf, size_t size);

#endif
