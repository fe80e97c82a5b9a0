/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * override.h - xattr_permissions=1|2: owner, mode and file type kept in an xattr (fuse-overlayfs
 * and containers-storage's format), where the upper layer cannot hold them (rootless).
 *
 * Names (ovl_names.h): xattr_permissions=1 writes security.fuseoverlayfs.override_stat,
 * xattr_permissions=2 user.containers.override_stat (what containers-storage writes into its layers
 * and reads back; fuse-overlayfs reads it on a layer whose root carries it). At mount the upper's
 * root gets the xattr if it has none (from its own stat), as fuse-overlayfs does, so that
 * fuse-overlayfs and containers-storage read that upper with the override too. A layer is read
 * with every name found on any layer's root, plus the written one (override_setup). Without
 * xattr_permissions nothing is read: a layer cannot dress its files up as root-owned or setuid
 * unless the mount asked for it.
 *
 * Value: "UID:GID:MODE[:TYPE]", UID and GID decimal (ids as stored: uidmapping applies after),
 * MODE octal: the permission bits 07777 and, as fuse-overlayfs writes them, optionally the type
 * bits (0100644); TYPE as containers-storage writes it: file, dir, symlink, pipe, socket,
 * block-MAJOR-MINOR, char-MAJOR-MINOR (more "-" parts are ignored, for its forward compatibility).
 * plyfs writes "%u:%u:%04o:TYPE". What stat shows: owner and permission bits from the xattr; the
 * type (and rdev) only when the entry itself is a regular file (the stand-in containers-storage
 * extracts for a device node it could not create): a directory or symlink stays what it is.
 *
 * Writes through the mount (fuse-overlayfs' behaviour): chown and chmod change the xattr instead
 * of the inode; a new entry is made with the daemon's own owner and mode 0700 (directories) or
 * 0600 (files: the daemon alone needs to read them) and the xattr records the caller's owner and
 * the requested mode; a copy-up records the source's shown owner and mode. Only entries that can
 * hold the xattr get one (override_holds): not symlinks (their mode means nothing), and with a
 * user.* name only regular files and directories (the kernel refuses user.* xattrs on others);
 * the others keep their owner and mode in the inode, as without xattr_permissions.
 */
#ifndef PLYFS_OVERRIDE_H
#define PLYFS_OVERRIDE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs.h"

struct override {
	uint32_t uid, gid;
	mode_t mode; /* permission bits, and the type bits when the value gave a type (else 0) */
	dev_t rdev;  /* block and char types */
};

/* Longest value plyfs writes, NUL included. */
#define OVERRIDE_VALUE_MAX 64

/* Decodes `len` bytes of `val` (no NUL needed). 0, or -EINVAL for anything else than the format
 * above (also an id or mode out of range, trailing garbage, a type not listed). Pure. */
int override_decode(const char *val, size_t len, struct override *o);
/* Encodes `o` into buf (OVERRIDE_VALUE_MAX bytes), returns the length (no NUL counted). A type of
 * 0 is written as "file". Pure. */
size_t override_encode(const struct override *o, char *buf);
/* True for the three override names (hidden from users while xattr_permissions is on). */
bool override_is_name(const char *name);
/* Applies the decoded value to a stat of the entry: owner, permission bits; the type and rdev
 * only over a regular file. Pure. */
void override_to_stat(const struct override *o, struct stat *st);

/* At mount (layers open): picks the names to read and write; writes the upper root's value if it
 * has none. 0 or -errno (the upper root's xattr could not be written). */
int override_setup(struct plyfs *fs);
/* Whether xattr_permissions is on. */
bool override_on(const struct plyfs *fs);
/* Whether an entry of type `mode` keeps its owner and mode in the xattr (see above). */
bool override_holds(const struct plyfs *fs, mode_t mode);
/* A stat of the entry (dirfd, name) (name NULL: dirfd is the entry) turned into what its override
 * says, when it has one. An invalid value is ignored (reported rate-limited). */
void override_stat(struct plyfs *fs, int dirfd, const char *name, struct stat *st);
/* The entry's effective value: its override, else from `st` (its real stat). */
void override_get(struct plyfs *fs, int dirfd, const char *name, const struct stat *st,
		  struct override *o);
/* Writes `o` as the entry's override (the name xattr_permissions chose); nothing for an entry that
 * does not hold one (override_holds). 0 or -errno. */
int override_set(struct plyfs *fs, int dirfd, const char *name, const struct override *o);

#endif
