/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs.h - one mount: its parameters, layers and node table.
 *
 * Created by main() before the daemon forks, read-only afterwards except for the fields that say
 * otherwise. Every request handler gets it as the session's userdata.
 */
#ifndef PLYFS_FS_H
#define PLYFS_FS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <fuse_lowlevel.h>

#include "layer.h"
#include "node.h"
#include "params.h"
#include "request.h"

struct err_slot;

struct plyfs {
	struct plyfs_params *params;
	struct layer *layers; /* upper first if any, then lowers top first */
	size_t n_layers;
	bool has_upper;
	int work_fd;	      /* O_PATH fd of workdir, -1 without upper */
	int work_dirfd;	      /* O_PATH fd of workdir/work, where entries are built (workdir.h) */
	int index_dirfd;      /* O_PATH fd of workdir/index, or -1 (index.h) */
	int lock_fd;	      /* workdir/plyfs-lock, flock()ed while we live, or -1 */
	/* The handle store's slots and saver (export_store.h), or NULL. */
	struct export_store *store;
	unsigned xino_bits; /* see inode.h */
	/* The overlay xattr format, decided once at mount (main.c) and never changed:
	 * trusted.overlay.* (is_root) when the upper layer took a trusted.* xattr from us, which
	 * needs CAP_SYS_ADMIN in the initial user namespace (without an upper: uid 0 there); else
	 * user.overlay.*, kernel overlayfs' userxattr format (also forced by -o userxattr), which
	 * has no redirects and no index. is_root means "trusted.* is ours to read and write", not
	 * geteuid() == 0: uid 0 in a user namespace is not. xattr_reason says why, for the log. */
	bool is_root;
	const char *xattr_prefix; /* OVL_XATTR_TRUSTED_PREFIX or OVL_XATTR_USER_PREFIX */
	char *xattr_reason;
	/* xattr_permissions (override.h): the name written (NULL: off) and the names read. */
	const char *override_write;
	const char *override_read[3];
	unsigned n_override_read;
	enum uuid_mode uuid; /* params->uuid as origin_mount_init() settled it (origin.h) */

	struct node_table *nodes;
	GMutex rename_lock; /* taken first by every RENAME (lock order: rename_lock, node->lock) */

	/* Open file and directory handles, so that those the kernel never released (the daemon
	 * was stopped with files open) are freed at exit. Sets of open_file* / dir_handle*. */
	GMutex handles_lock; /* protects the two sets only; taken at open and release */
	GHashTable *open_files;
	GHashTable *open_dirs;
	/* Without OPENDIR (no_opendir): listings kept between READDIRs, node* -> dir_handle*, and
	 * their order (oldest first); protected by handles_lock (dir.h dir_read_node()). */
	GHashTable *listings;
	GQueue *listing_order;
	bool no_opendir; /* OPENDIR answered ENOSYS (ops_opendir()); set at INIT */

	/* Directory fds cached in nodes (struct node_layer.fd): at most fd_budget at once, so the
	 * daemon stays far below RLIMIT_NOFILE however many directories the kernel keeps. */
	atomic_long fds_cached;
	long fd_budget;

	/* What the status query reports (status.h). The error slot (errors.h) is allocated by
	 * main() before the session starts and freed after it ends (NULL in unit tests: nothing is
	 * noted). The counters are relaxed atomics, only ever incremented: REQ_SCOPE counts every
	 * request (request.h), copy_up.c every node it copied up or failed to. */
	struct err_slot *errors;
	atomic_ulong op_count[REQ_OP_N];
	atomic_ulong copy_ups_done;
	atomic_ulong copy_ups_failed;

	/* Moved on (atomically, after the change) whenever the daemon may have given a file a
	 * setuid or setgid bit or a handle another fd: a handle's record that its file has neither
	 * bit (file.h, `nopriv`) holds only while this is unchanged. */
	atomic_ulong mode_epoch;
	/* Whether READDIRPLUS looks files up (dir.c, "plus advice"): listings that left files out
	 * the kernel then looked up no name of. A relaxed atomic. */
	atomic_int plus_unused;

	/* The mount's MS_* atime flags, and what follows them (atime.h): written by its thread. */
	atomic_ulong atime_flags;
	int mount_id; /* in /proc/self/mountinfo; -1 when unknown */
	struct atime_watch *atime_watch;

	double timeout; /* entry and attr timeout handed to the kernel */
	struct fuse_session *se; /* for invalidations; NULL until mounted (and in unit tests) */
};

#endif
