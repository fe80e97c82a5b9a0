/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * params.h - the command line: argv forms, the -o option table, validation.
 *
 * Two argv forms are accepted:
 *	plyfs [-f] [-d] [-s] [-o OPTS]... MOUNTPOINT
 *	plyfs SOURCE MOUNTPOINT [-o OPTS]...		(what mount.fuse3 and fstab call)
 * plus --help/-h and --version/-V. SOURCE is free text (shown as fsname) and otherwise ignored.
 *
 * -o may be given many times; its value is split on commas not preceded by a backslash.
 * In lowerdir=, "\:" is a literal colon, "\," a literal comma, "\\" a literal backslash.
 * Option strings of any length (podman passes kilobytes) and any number of layers are accepted.
 *
 * Every option is in one fuse_opt table (params.c). Options are in three groups:
 *  - plyfs' own (fuse-overlayfs compatible): lowerdir, upperdir, workdir, uidmapping,
 *    gidmapping, squash_to_root, squash_to_uid, squash_to_gid, static_nlink, noacl, fsync,
 *    volatile, timeout, xattr_permissions, noxattrs, ino32_t, forgotten_records,
 *    handles_interval, userxattr (kernel overlayfs' meaning, fs.h), writeback=0|1 (fuse-overlayfs'
 *    meaning: the kernel's writeback cache), index=on|off (its
 *    meaning, index.h), context
 *    (ignored), and the
 *    fuse-overlayfs compatibility options threaded, fast_ino, plugins
 *    (accepted, documented as without effect);
 *  - kernel overlayfs' own, with the kernel's meaning: redirect_dir=on|follow|nofollow|off,
 *    nfs_export=on|off, xino=on|auto|off, metacopy=on|off (on is refused: see
 *    params_validate). The defaults are plyfs' (redirect_dir=on, nfs_export=on, xino=auto,
 *    metacopy=off), not this kernel's module parameters;
 *  - the generic mount options libfuse understands (rw, ro, dev, nodev, suid, nosuid, exec,
 *    noexec, atime, noatime, diratime, nodiratime, relatime, norelatime, strictatime,
 *    nostrictatime, sync, async, dirsync, lazytime, nolazytime, allow_other, allow_root,
 *    default_permissions, fsname=, subtype=, max_read=, blkdev, auto_unmount): collected in
 *    `fuse_args` and handed to fuse_session_new;
 *  - options that only mean something to mount(8)/fstab (defaults, auto, noauto, user, users,
 *    nouser, owner, group, nofail, _netdev, x-*, comment=*): accepted and
 *    dropped.
 * Anything else is an error that names the option.
 *
 * An option given twice (in one -o or several, as mount(8) passes the options of fstab and of its
 * own command line together): a layer option (lowerdir, upperdir, workdir) is refused, since
 * dropping a layer silently is worse than an error; for every other option the last one wins.
 * Every number out of its range is refused naming the option (timeout at most PARAMS_MAX_TIMEOUT
 * seconds), and so are fsname= (or SOURCE) and subtype= longer than the kernel takes.
 */
#ifndef PLYFS_PARAMS_H
#define PLYFS_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <glib.h>

#include "idmap.h"
#include "mount_flags.h"

enum xattr_mode {
	XATTR_MODE_NORMAL = 0,	 /* noxattrs=0 (default) */
	XATTR_MODE_DISABLED = 1, /* noxattrs=1: every xattr call fails with ENOTSUP */
	XATTR_MODE_IGNORED = 2,	 /* noxattrs=2: reads find nothing, writes succeed and do nothing */
};

/* redirect_dir= (kernel overlayfs' meaning): whether renaming a directory with lower parts writes a
 * redirect (else EXDEV: mv(1) then copies), and whether redirects found on disk are followed
 * (else looking up such a directory fails with EPERM, as the kernel's "refusing to follow
 * redirect"). "off" is "follow", as on kernels built with CONFIG_OVERLAY_FS_REDIRECT_ALWAYS_FOLLOW
 * (the default, and this machine's redirect_always_follow=Y). */
enum redirect_mode {
	REDIRECT_ON = 0,   /* create and follow (default) */
	REDIRECT_FOLLOW,   /* follow, never create: EXDEV */
	REDIRECT_NOFOLLOW, /* neither: EXDEV, and EPERM on a redirected directory */
};

/* xino= (kernel overlayfs' meaning): with layers on several filesystems, st_ino carries the
 * layer filesystem's fsid in its high bits (inode.h). FUSE shows one st_dev for the whole mount,
 * so plyfs cannot do what the kernel's xino=off does there (a st_dev per layer filesystem): that
 * combination is refused at mount (main.c). On one filesystem all three mean the same. */
enum xino_mode {
	XINO_AUTO = 0, /* default: compose when the layers span filesystems */
	XINO_ON,       /* the same (the kernel's on and auto differ only where a layer has no file
			* handles: auto then falls back to off, which plyfs cannot do) */
	XINO_OFF,      /* only on one filesystem */
};

/* uuid=: kernel overlayfs' meaning (its Documentation/filesystems/overlayfs.rst, "UUID and
 * fsid"; origin.h applies it). The order is the kernel's. */
enum uuid_mode {
	UUID_OFF = 0,  /* origins carry a null uuid, layers' uuids ignored (one filesystem only) */
	UUID_NULL = 1, /* the overlay has no uuid of its own */
	UUID_AUTO = 2, /* default: "on" for a new upper, "null" for one used before without it */
	UUID_ON = 3,   /* the overlay's uuid is kept in <prefix>overlay.uuid on the upper root */
};

struct plyfs_params {
	/* Layers, exactly as given (unescaped, not yet resolved); see layer.h for resolution. */
	char **lowerdirs; /* g_strfreev; NULL-terminated; top layer first */
	size_t n_lower;
	char *upperdir; /* NULL: read-only mount */
	char *workdir;	/* required iff upperdir */
	char *mountpoint;
	char *source; /* first positional of the mount.fuse3 form, or NULL */

	struct idmap uidmap, gidmap;
	bool squash_to_root;
	long squash_to_uid; /* -1: unset */
	long squash_to_gid; /* -1: unset */
	bool static_nlink;
	bool noacl;
	bool index_off; /* index=off (default on): lower hard links split at copy-up, index.h */
	bool fsync;	/* fsync=0 clears it; default true */
	/* writeback=1: the kernel's writeback cache (ops.c, file.h); default false, since a full
	 * upper then fails close(2) or fsync(2) with ENOSPC rather than the write(2) itself */
	bool writeback;
	bool volatile_; /* volatile: no fsync at all, like kernel overlayfs */
	double timeout; /* entry/attr cache timeout in seconds (timeout=); default PARAMS_DEFAULT_TIMEOUT */
	int xattr_permissions; /* 0, 1 or 2 (fuse-overlayfs meaning; override.h) */
	enum xattr_mode noxattrs;
	bool ino32;	 /* ino32_t: fold st_ino into 32 bits */
	/* forgotten_records=N: how many forgotten nodes stay resolvable for file handles (node.h,
	 * FORGOTTEN NODES; about 160 bytes + the name each). Default NODE_RECORD_MAX_DEFAULT. */
	long forgotten_records;
	/* handles_interval=SECONDS: how often the handle store is brought up to date while
	 * mounted, when the node table changed (export_store.h); 0: at exit only. Default
	 * PARAMS_DEFAULT_HANDLES_INTERVAL. */
	long handles_interval;
	/* userxattr: write and read the user.overlay.* format even where trusted.overlay.* would
	 * work, as kernel overlayfs' option of that name (fs.h: the format is decided at mount). */
	bool userxattr;
	/* "dev" was given (and no later "nodev"): device nodes of the layers may be opened through
	 * the mount. Only as root; the default is nodev (main.c). */
	bool dev;
	enum redirect_mode redirect_dir; /* redirect_dir=, default REDIRECT_ON */
	/* nfs_export=off: no FUSE export support and no handle store (export_store.h): a handle
	 * of a file the kernel forgot gives ESTALE. Default false (nfs_export=on), so that a
	 * zeroed struct (the unit tests and fuzzers build their own) keeps the store. */
	bool nfs_export_off;
	enum xino_mode xino; /* xino=, default XINO_AUTO */
	bool metacopy;	     /* metacopy=on: refused by params_validate (copy-up copies data) */
	bool read_only;	     /* "ro" was given (also forced when there is no upperdir) */
	enum uuid_mode uuid; /* uuid=null|off|on|auto, default auto */
	/* The generic mount flag options given, in order (mount_flags.h). */
	struct mount_flags_change mflags;
	/* remount: apply mflags to the live mount on mountpoint and exit (mount -o remount). The
	 * live mount's own options (user_id=, group_id=, rootmode=, fd=, blksize=) are accepted
	 * then, and the layer options are not needed (mount(8) adds fstab's: ignored). */
	bool remount;

	bool foreground; /* -f */
	bool debug;	 /* -d, -o debug */
	bool single_thread; /* -s */
	bool show_help;
	bool show_version;

	/* argv for fuse_session_new: argv[0] then "-o" "generic,options" (may be just argv[0]). */
	GPtrArray *fuse_args; /* of g_malloc'd char*, NULL-terminated by params_fuse_argv() */
};

#define PARAMS_DEFAULT_TIMEOUT 86400.0
/* The largest timeout= accepted (~136 years; the kernel caches "forever" far below that). */
#define PARAMS_MAX_TIMEOUT 4294967295.0
/* The longest fsname= (or SOURCE) and subtype= accepted: the kernel takes the source and the type
 * ("fuse.TYPE", "fuseblk.TYPE") of a mount as strings shorter than PATH_MAX. */
#define PARAMS_MAX_FSNAME  4095
#define PARAMS_MAX_SUBTYPE (4095 - 8)
#define PARAMS_DEFAULT_HANDLES_INTERVAL 1

/* Fills `p` from argv. Returns 0, or -EINVAL with `*err` set to a g_malloc'd one-line message that
 * names the offending argument or option. `p` must be params_clear()ed in both cases. */
int params_parse(int argc, char **argv, struct plyfs_params *p, char **err);

/* Cross-option checks that need no filesystem access: lowerdir present and non-empty, no empty
 * layer path, workdir iff upperdir, squash ids in range, timeout >= 0, mountpoint present,
 * metacopy=on refused (plyfs has no metadata-only copy-up).
 * Same error contract as params_parse. */
int params_validate(struct plyfs_params *p, char **err);

/* Splits a lowerdir value on unescaped ':' and unescapes "\:" "\," "\\". Returns a g_strfreev
 * vector, or NULL with *err set when an element is empty. Exposed for the unit tests. */
char **params_split_lowerdir(const char *value, char **err);

/* The argv for fuse_session_new; valid until params_clear. *argc_out gets its length. */
char **params_fuse_argv(struct plyfs_params *p, int *argc_out);

void params_usage(FILE *out, const char *progname);
void params_clear(struct plyfs_params *p);

#endif
