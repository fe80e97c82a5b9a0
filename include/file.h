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
	/* Atomic: 1 + the mode epoch (fs.h) at which the file was last seen with neither S_ISUID
	 * nor S_ISGID through `fd`; 0: never. Lets a WRITE skip its fstat (file_nopriv()). */
	unsigned long nopriv;
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

/* The setuid/setgid check before a write (killpriv.h) costs an fstat of the layer file. Only the
 * daemon changes modes (layers changed underneath are unsupported), and only SETATTR (chmod,
 * chown, setattr.c) can give an existing file one of those bits: a handle whose file had neither
 * needs no new look until a SETATTR somewhere, or a new fd of its own, moves the mode epoch on.
 * An xattr change (an access ACL) can only take S_ISGID away, and new files are new handles.
 *
 * file_nopriv: true when `fd` (file_fd()'s) is known to have neither bit; else *epoch is what to
 * pass to file_nopriv_seen() once an fstat (made after this call) shows neither. */
bool file_nopriv(struct plyfs *fs, struct open_file *of, int fd, unsigned long *epoch);
void file_nopriv_seen(struct open_file *of, int fd, unsigned long epoch);
/* After a change that may add S_ISUID or S_ISGID to an existing file (SETATTR). */
void file_modes_changed(struct plyfs *fs);

/* fstat through the handle, in the merged view (st_nlink 0 once unlinked). */
int file_getattr(struct plyfs *fs, struct open_file *of, struct stat *st);

/* The target of symlink n into buf (not NUL-terminated). Returns its length or -errno. */
ssize_t file_readlink(struct plyfs *fs, struct node *n, char *buf, size_t size);

#endif
