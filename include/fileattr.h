/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fileattr.h - file attributes (chattr/lsattr) through the mount, in kernel overlayfs' format and
 * meaning.
 *
 * Requests: FS_IOC_GETFLAGS/FS_IOC_SETFLAGS (an unsigned int) and FS_IOC_FSGETXATTR/
 * FS_IOC_FSSETXATTR (struct fsxattr), which the kernel's VFS turns into FUSE_IOCTL after its own
 * permission checks (owner, CAP_LINUX_IMMUTABLE for +i/+a); on directories too (FUSE_IOCTL_DIR).
 * Any other command, and any on an entry that is neither a regular file nor a directory, is
 * ENOTTY (what the kernel answers for an ioctl a filesystem does not know); a buffer too small for
 * the command's argument is EINVAL. Setting copies the entry up first.
 *
 * Format: the protection flags +i (FS_IMMUTABLE_FL) and +a (FS_APPEND_FL) of an upper entry are
 * not set on the upper inode (it could then not be linked into place, get overlay xattrs, nor have
 * entries copied up into it) but recorded in the xattr `<prefix>protattr`: "a" and/or "i", in that
 * order (the kernel's ovl_set_protattr()). The other flags are the upper inode's. A lower entry's
 * flags are its inode's. At copy-up (ovl_copy_fileattr()): +i/+a of the lower entry go into
 * protattr, FS_SYNC_FL and FS_NOATIME_FL onto the upper inode; nothing else is copied.
 *
 * Enforcement: the FUSE kernel client does not know these flags, so the handlers answer EPERM
 * where the VFS does for an inode with S_IMMUTABLE/S_APPEND (fileattr_check()). The flags of a
 * node are read once (statx attributes of its top entry, plus protattr of an upper one) and kept
 * in the node: layers do not change under a mount, and SETFLAGS updates the copy.
 */
#ifndef PLYFS_FILEATTR_H
#define PLYFS_FILEATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fs.h"

/* Answers FUSE_IOCTL `cmd` for n: in/in_size the caller's data, out/out_size room for the reply
 * (*out_len: bytes of it filled). 0 or -errno (-ENOTTY: not a file attribute request). */
int fileattr_ioctl(struct plyfs *fs, struct node *n, unsigned cmd, const void *in, size_t in_size,
		   void *out, size_t out_size, size_t *out_len);

/* What a request is about to do to n, for fileattr_check(). */
enum fileattr_use {
	FA_DELETE,	/* n's name is removed or renamed away (may_delete()) */
	FA_DIR_ADD,	/* an entry is added to directory n (create, link, rename in) */
	FA_DIR_REMOVE,	/* an entry of directory n is removed or renamed away */
	FA_LINK,	/* n gets another name */
	FA_ATTR,	/* chmod, chown, explicit times, xattrs */
	FA_TOUCH,	/* times set to now */
	FA_TRUNCATE,	/* size change, O_TRUNC */
	FA_WRITE_OPEN,	/* an open for writing without O_APPEND */
	FA_APPEND_OPEN, /* an open for writing with O_APPEND */
	FA_FALLOCATE,	/* fallocate other than FALLOC_FL_KEEP_SIZE */
};

/* -EPERM when n's +i/+a flags forbid `use` (the kernel's answer), else 0. */
int fileattr_check(struct plyfs *fs, struct node *n, enum fileattr_use use);
/* n is an entry this request has just made in the upper layer: a new inode has neither flag (no
 * filesystem lets a new inode inherit +i/+a, and it has no protattr), so they are known without
 * reading them. Nothing changes if they were read already. */
void fileattr_note_new(struct node *n);

/* During the copy-up of a regular file or directory: reads the flags of the lower entry (`src`,
 * an fd open for reading, or -1: (sdir, sname) is opened) and gives the upper entry being built
 * (`dst`, an fd open for reading, or -1: (ddir, dname)) what the kernel copies. 0 or -errno; a
 * filesystem without file attributes is not an error. */
int fileattr_copy_up(struct plyfs *fs, int src, int sdir, const char *sname, int dst, int ddir,
		     const char *dname, mode_t mode);

#endif
