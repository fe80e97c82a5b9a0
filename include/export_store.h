/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * export_store.h - file handles that outlive the mount: the node table's records in the workdir.
 *
 * A FUSE file handle is (nodeid, generation). For a handle taken on one mount to decode on a later
 * mount of the same layers, the later mount must know what that nodeid named. The store holds
 * every record of a forgotten node and every node that still stands for a file, as (nodeid,
 * generation, parent nodeid, name, identity, type), plus the next nodeid to hand out.
 * export_store_load() at the next mount checks that it is whole (a SHA-256 over its bytes) and
 * that it was written for the same layers (filesystem uuid, or device number where there is
 * none, and inode of every layer root, in order), loads the entries as records (oldest first,
 * within the record bound; identities are stored by layer filesystem, not device number, so a
 * reboot that renumbers devices keeps them) and reserves every nodeid the earlier mounts handed
 * out. The whole slot is checked before anything of it is used (every entry well-formed, its
 * nodeids below the stored next nodeid, that one at most NODE_ID_LIMIT, node.h): a store refused
 * for any reason changes nothing, so a forged one (even with a valid checksum) cannot make nodeids
 * wrap to 0 or the root's. At most record_max entries are written (the newest), and only
 * identities on a layer's own filesystem. A decoded handle then resolves like any forgotten node
 * (export.h): by name from its parent, checked against the recorded identity; a file deleted or
 * replaced in between gives ESTALE.
 *
 * WHEN IT IS WRITTEN, AND WHERE. The kernel tells a plain `fuse` mount nothing before it goes:
 * at umount(2) it aborts the connection and returns (FUSE_DESTROY is sent to `fuseblk` mounts
 * only, fs/fuse/inode.c), so the daemon learns of the unmount only after umount(2) has returned,
 * when the caller may already be removing the workdir (containers-storage does at once). So:
 *  - the store is two files, the SLOTS workdir/plyfs-handles and workdir/plyfs-handles.2,
 *    created (if missing) and opened at mount, and kept open until the daemon exits. Nothing
 *    else of the store ever adds or removes a name in the workdir, and nothing at all does after
 *    the mount ends: a save overwrites a slot through its open fd (pwrite, ftruncate,
 *    fdatasync). If the workdir was removed meanwhile, the bytes go to an unlinked inode.
 *  - each save goes to the slot that does not hold the newest save, with the next sequence
 *    number in its header; the loader takes the sound slot (checksum, header) with the highest
 *    sequence, and the other one if that one is refused. A save cut short (the daemon killed,
 *    the machine down, ENOSPC) leaves the other slot, the save before it, intact.
 *  - while mounted, a saver thread writes the table every handles_interval seconds (default 1)
 *    when it changed (node_table_changes()), and waits at least SAVE_BACKOFF times as long as
 *    the last save took, so a large table that keeps changing costs at most about a tenth of a
 *    core. A daemon that is killed (SIGKILL, OOM) loses the last interval only: the handles of
 *    every file the store knew still decode on the next mount, as kernel overlayfs' nfs_export
 *    handles survive a crash. A handle of a file it did not know yet gives ESTALE on the next
 *    mount, never another file: each mount draws a random generation, part of every handle.
 *  - at exit (after the session loop ended: umount, fusermount3 -u, SIGTERM), one last save if
 *    anything changed since the one before.
 *  - `volatile` saves nothing (the slots are read at mount, if there, and never written);
 *    fsync=0 saves without fdatasync.
 * A store written by plyfs before the slots (version 1: plyfs-handles alone, written aside and
 * renamed into place) is read as a slot older than any other: the first save goes to
 * plyfs-handles.2, the second overwrites it. A plyfs-handles.tmp such a daemon left is removed
 * at mount.
 *
 * A missing, damaged or foreign store is logged and ignored: the mount goes on, and old handles
 * give ESTALE.
 *
 * An upper-only file or directory is identified by its own inode, whose number a new file may
 * take while unmounted: its identity also holds a hash of the upper layer's file handle of it
 * (node_key.check: the inode's generation is in it), so a file replaced in the upper layer behind
 * the overlay's back gives ESTALE. (Lower files and copied-up files are identified by the lower
 * file; lower layers do not change.)
 *
 * Limits: nothing is stored without an upper layer (no workdir); on an upper filesystem without
 * file handles a replaced upper-only file that reused the inode number and the name cannot be
 * told from the original. A save writes the whole table (~60 bytes + name per entry): fine up to
 * millions of entries thanks to the backoff, but a journal would write less. Nothing here needs
 * privileges: a rootless mount stores and finds its handles the same way, but decoding a handle
 * (open_by_handle_at) needs CAP_DAC_READ_SEARCH, which an unprivileged user does not have.
 */
#ifndef PLYFS_EXPORT_STORE_H
#define PLYFS_EXPORT_STORE_H

#include "fs.h"
#include "ovl_names.h"

/* Sets this mount's generation, opens (creating them if needed) the two slots and loads the
 * newest sound one, if any. Call once the table exists, before the mount (the only time the store
 * creates or removes a name in the workdir). Never fails the mount. */
void export_store_load(struct plyfs *fs);
/* Starts the periodic saver (handles_interval). Call after the daemon forked (threads do not
 * survive fork), once the mount is live. */
void export_store_start(struct plyfs *fs);
/* Writes the table into the older slot now, through its open fd. 0, or -errno (logged when it
 * differs from the last save's). No-op without a store, or for `volatile`. */
int export_store_save(struct plyfs *fs);
/* The parser behind export_store_load(), on the file's bytes (`len` of them, the checksum last):
 * checks the whole store, then loads its entries into fs->nodes and reserves its nodeids. Returns
 * NULL, or why the store is refused (then nothing of it reaches the table); *loaded counts the
 * records added. Reads nothing but `data` and the layer roots (fstat), so the unit tests and
 * tests/fuzz call it directly. */
const char *export_store_parse(struct plyfs *fs, const guint8 *data, size_t len, unsigned *loaded);
/* Stops the saver, saves if the table changed since the last save, closes the slots. Creates
 * nothing: safe after the mount is gone, while the workdir is being removed. Idempotent. */
void export_store_close(struct plyfs *fs);

struct export_store_stats {
	bool kept;	  /* a store is written (an upper layer, not volatile) */
	uint64_t saves;	  /* saves written by this mount */
	uint64_t unsaved; /* table changes since the last save: 0 when a killed daemon loses none */
};
void export_store_stats(struct plyfs *fs, struct export_store_stats *out);

#endif
