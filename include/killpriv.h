/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * killpriv.h - the setuid/setgid bits a change takes away, decided in the daemon with the caller's
 * groups and capabilities, as the kernel's VFS does for a local filesystem:
 *   - a write, truncation or fallocate by a caller without CAP_FSETID clears S_ISUID, and S_ISGID
 *     when the file is group-executable or the caller is not in the file's group
 *     (setattr_should_drop_suidgid());
 *   - setting an access ACL clears S_ISGID when the caller is neither in the file's group nor has
 *     CAP_FSETID (posix_acl_update_mode()).
 * Why in the daemon: the FUSE kernel client clears S_ISGID on write/truncate only for
 * group-executable files, and the daemon's own setxattr of an ACL on the upper file runs with the
 * daemon's credentials, which are always in the group. (FUSE_HANDLE_KILLPRIV_V2, where the kernel
 * flags each such request, cannot be negotiated through libfuse 3.14: it has no capability bit
 * for it and does not pass FUSE_WRITE_KILL_SUIDGID/FUSE_OPEN_KILL_SUIDGID on.)
 *
 * Cost: nothing beyond the caller's mode check unless the file has S_ISUID or S_ISGID; then the
 * caller's groups (fuse_req_getgroups()) and CapEff are read from /proc once per request.
 */
#ifndef PLYFS_KILLPRIV_H
#define PLYFS_KILLPRIV_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/stat.h>

enum killpriv_cause {
	KILLPRIV_WRITE, /* write, truncate, fallocate */
	KILLPRIV_ACL,	/* an access ACL set */
};

/* The rule alone: the mode a file with mode `mode` keeps after `cause` by a caller who is (not)
 * in the file's group and has (not) CAP_FSETID. */
mode_t killpriv_rule(enum killpriv_cause cause, mode_t mode, bool in_group, bool fsetid);

/* The same for the caller of `req`; `gid` is the file's group as the caller sees it (the merged
 * view's, after uid/gid mapping). Only regular files lose bits on a write. */
mode_t killpriv_mode(fuse_req_t req, enum killpriv_cause cause, mode_t mode, gid_t gid);

#endif
