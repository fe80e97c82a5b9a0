/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse_io.h - the daemon's reads and writes of /dev/fuse, through libfuse's custom I/O hooks, for
 * one purpose: to negotiate FUSE_HANDLE_KILLPRIV_V2, which libfuse 3.14 cannot (it has no
 * capability bit for it). The kernel offers it in FUSE_INIT; the INIT reply libfuse builds gets
 * the flag added on its way out. With it the kernel leaves the setuid/setgid and
 * security.capability kill of writes, truncations and chowns to the daemon (killpriv.h decides
 * the bits from the caller; the upper filesystem removes security.capability when the daemon
 * writes, truncates or chowns, whoever asked) and marks the superblock SB_NOSEC: no more
 * GETXATTR(security.capability) round trip before each write.
 *
 * Every other message passes unchanged. Requests are spliced (splice(2) into a pipe, WRITE data
 * from there to the layer file) as libfuse does without custom I/O; ops.c's max_write keeps the
 * largest request within a pipe of the default maximum size, which libfuse cannot exceed without
 * CAP_SYS_RESOURCE (else it reads every request with read(2), one more copy of WRITE data).
 */
#ifndef PLYFS_FUSE_IO_H
#define PLYFS_FUSE_IO_H

#include <fuse_lowlevel.h>
#include <stdbool.h>

/* Installs the hooks on a mounted session (before the first request is read). 0 or -errno. */
int fuse_io_install(struct fuse_session *se);

/* The kernel accepted FUSE_HANDLE_KILLPRIV_V2 (known once INIT was answered). */
bool fuse_io_killpriv_v2(void);

#endif
