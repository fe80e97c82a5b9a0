/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * file.h - open regular files: OPEN, READ, WRITE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE,
 * RELEASE, and READLINK.
 *
 * An open for writing or truncating copies the file up first, then opens the upper file. A handle
 * holds one fd of the file's top entry and a reference on the node (the node is not freed while the
 * file is open, whatever the kernel forgets).
 *
 * Handles opened before a copy-up: the handle remembers the node's copy-up generation its fd
 * belongs to; when the node's generation has moved on, the next use reopens the file from its new
 * top entry (file_fd()), so read(rofd) after write(rwfd) returns the new bytes even after the page
 * cache is dropped. The old fd is closed only at release (a racing reader may still use it).
 */
#ifndef PLYFS_FILE_H
#define PLYFS_FILE_H

#include <stdbool.h>
#include <sys/stat.h>

#include "fs.h"

struct open_file {
	struct node *node; /* referenced */
	GMutex lock;	   /* protects the fd switch and `old_fds` */
	int fd;		   /* atomic: current fd */
	unsigned gen;	   /* atomic: the node's copyup_gen that `fd` belongs to */
	bool writable;
	bool noatime;	   /* the caller opened it O_NOATIME: reads move no atime (atime.h) */
	/* The layer fd is O_APPEND (an append-only file, chattr +a): every write lands at the end,
	 * whatever its offset, so writes must come from the caller, not from the kernel's page
	 * cache in whole pages (the handle is opened direct_io). */
	bool append_fd;
	GArray *old_fds;   /* fds replaced by file_fd(), closed at release */
};

int file_open(struct plyfs *fs, struct node *n, int flags, struct open_file **out);
/* A handle around `fd` of n's upper file, just created (CREATE). */
struct open_file *file_adopt(struct plyfs *fs, struct node *n, int fd);
void file_release(struct plyfs *fs, struct open_file *of);
/* At exit: releases the handles the kernel never released. */
void file_release_all(struct plyfs *fs);

/* The fd to use now (reopened after a copy-up of a handle opened below). >= 0 or -errno. */
int file_fd(struct plyfs *fs, struct open_file *of);
/* `fd` (file_fd's) was read from: the atime by the mount's policy (atime.h). */
void file_accessed(struct plyfs *fs, struct open_file *of, int fd);

/* fstat through the handle, in the merged view (st_nlink 0 once unlinked). */
int file_getattr(struct plyfs *fs, struct open_file *of, struct stat *st);

/* The target of symlink n into buf (not NUL-terminated). Returns its length or -errno. */
ssize_t file_readlink(struct plyfs *fs, struct node *n, char *buf, size_t size);

#endif
