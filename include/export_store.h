/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * export_store.h - file handles that outlive the mount: the node table's records in the workdir.
 *
 * A FUSE file handle is (nodeid, generation). For a handle taken on one mount to decode on a later
 * mount of the same layers, the later mount must know what that nodeid named. At a clean unmount
 * (umount, fusermount3 -u, SIGTERM) export_store_save() writes every record of a forgotten node
 * and every node that still stands for a file, as (nodeid, generation, parent nodeid, name,
 * identity, type), plus the next nodeid to hand out, to workdir/plyfs-handles (built as
 * plyfs-handles.tmp, fsync'd, renamed over). export_store_load() at the next mount checks that
 * the file is whole (a SHA-256 over its bytes) and that it was written for the same layers
 * (filesystem uuid, or device number where there is none, and inode of every layer root, in
 * order), loads the entries as records (oldest first, within the record bound; identities are
 * stored by layer filesystem, not device number, so a reboot that renumbers devices keeps them)
 * and reserves every nodeid the earlier mounts handed out. The whole file is checked before
 * anything of it is used (every entry well-formed, its nodeids below the stored next nodeid, that
 * one at most NODE_ID_LIMIT, node.h): a store refused for any reason changes nothing, so a forged
 * one (even with a valid checksum) cannot make nodeids wrap to 0 or the root's. At most record_max
 * entries are
 * written (the newest), and only identities on a layer's own filesystem. A decoded
 * handle then resolves like any forgotten node (export.h): by name from its parent, checked
 * against the recorded identity; a file deleted or replaced in between gives ESTALE.
 *
 * The file is left in place while mounted, so a daemon that dies without saving leaves the
 * earlier mount's entries for the next one: handles of the lost session give ESTALE (their
 * generation is that session's, and a new mount draws a new random generation), never another
 * file. A missing, damaged or foreign file is logged and ignored: the mount goes on, and old
 * handles give ESTALE.
 *
 * An upper-only file or directory is identified by its own inode, whose number a new file may
 * take while unmounted: its identity also holds a hash of the upper layer's file handle of it
 * (node_key.check: the inode's generation is in it), so a file replaced in the upper layer behind
 * the overlay's back gives ESTALE. (Lower files and copied-up files are identified by the lower
 * file; lower layers do not change.)
 *
 * Limits: nothing is stored without an upper layer (no workdir); on an upper filesystem without
 * file handles a replaced upper-only file that reused the inode number and the name cannot be
 * told from the original. Nothing here
 * needs privileges: a rootless mount stores and finds its handles the same way, but decoding a
 * handle (open_by_handle_at) needs CAP_DAC_READ_SEARCH, which an unprivileged user does not have.
 */
#ifndef PLYFS_EXPORT_STORE_H
#define PLYFS_EXPORT_STORE_H

#include "fs.h"
#include "ovl_names.h"

/* Sets this mount's generation and loads the store, if any. Call once the table exists, before
 * serving. Never fails the mount. */
void export_store_load(struct plyfs *fs);
/* Writes the store (no-op without an upper layer). Call after the session loop ended. */
int export_store_save(struct plyfs *fs);
/* The parser behind export_store_load(), on the file's bytes (`len` of them, the checksum last):
 * checks the whole store, then loads its entries into fs->nodes and reserves its nodeids. Returns
 * NULL, or why the store is refused (then nothing of it reaches the table); *loaded counts the
 * records added. Reads nothing but `data` and the layer roots (fstat), so the unit tests and
 * tests/fuzz call it directly. */
const char *export_store_parse(struct plyfs *fs, const guint8 *data, size_t len, unsigned *loaded);

#endif
