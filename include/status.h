/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status.h - the status query of a live mount.
 *
 * Reading the xattr PLYFS_STATUS_XATTR ("user.plyfs.status") of the mount's root, e.g.
 *	getfattr --only-values -n user.plyfs.status MNT
 * or `plyfs status [--json] MNT` (status_cmd.h), gives one "name value" line per item, the value
 * being the rest of the line: a decimal number, or a string escaped as by g_strescape() (C escapes;
 * bytes >= 0x80 as \ooo: the text is ASCII, one item per line). Names are dotted paths; a name is
 * never both a value and the prefix of others, so the lines map onto nested objects (the --json
 * output). Lines may come in any order and new ones may appear; readers skip what they do not know.
 *	status_format 2   this layout (absent in format 1, which had the six node lines only)
 *	nodes_live N      nodes the kernel holds (nlookup > 0)
 *	nodes_pinned N    nodes it forgot, still used by a child, an open handle or a request
 *	nodes N           all nodes in the table
 *	records N         records of forgotten nodes (node.h, FORGOTTEN NODES)
 *	records_max N     their bound (forgotten_records=N)
 *	records_backing file|memory   where their entries and names live (records.h): an unnamed
 *	                  file in the work dir, or anonymous memory (no work dir, no O_TMPFILE)
 *	next_nodeid N     the next nodeid to hand out
 *	ops.OP N          requests served, per FUSE operation (request.h names them), every OP listed
 *	copy_ups.done N, copy_ups.failed N   nodes copied up, and copy-ups that failed
 *	layers N          the number of layers (upper included)
 *	errors.total N    errors noted (errors.h), all kinds
 *	errors.records_missed N   notes that left the last record as it was (errors.h)
 *	errors.paths_hidden 0|1   1: the reader may not see paths (below)
 *	errors.KIND.count N       per kind (io nospc dquot rofs stale notconn resources metadata
 *	                          copy_up), every kind listed
 *	errors.KIND.first.*, errors.KIND.last.*   the first and the last record of a kind that has
 *	                          one: seq, errno (number), op, call, arg, layer ("upper", "lower0"
 *	                          for the top lower, ..., "workdir", "?"), layer_path, path (inside
 *	                          that layer), truncated (0/1), nodeid, time (seconds.nanoseconds
 *	                          since the epoch); errors.KIND.first.pending 1 while being written
 *	errors.layer_paths_omitted 1   the records' layer_path left empty: with them the text would
 *	                          not fit in an xattr (64 KiB; record paths are bounded, layer paths
 *	                          are not)
 * and, where a handle store is kept (export_store.h: an upper layer, not volatile):
 *	handles_saves N   saves of the handle store written by this mount
 *	handles_unsaved N changes to the node table since the last save (0: a killed daemon
 *	                  would lose no handle)
 * The name is never listed and cannot be set; it works with noxattrs too. Anyone who can see the
 * root can read it; the paths of the error records only root and the mount's owner (the daemon's
 * uid): for others they are empty, since a path names files the reader may not be allowed to see.
 */
#ifndef PLYFS_STATUS_H
#define PLYFS_STATUS_H

#include <sys/types.h>

#include "fs.h"

/* getxattr(2) semantics: the length for size 0, -ERANGE when it does not fit. */
ssize_t status_xattr(struct plyfs *fs, char *buf, size_t size);

#endif
