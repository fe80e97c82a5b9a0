/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * readdir.h - the merged listing of a directory.
 *
 * Each layer the directory is present in is read once with large getdents64 buffers, top first.
 * A name is shown from the topmost layer that has it; whiteouts (0/0 char devices, confirmed with
 * one fstatat per DT_CHR/DT_UNKNOWN candidate, and ".wh.NAME" files) hide the name in the layers
 * below and are not shown; ".wh..wh..opq" is not shown. "." and ".." are not part of the list (the
 * FUSE glue adds them). The caller passes only the layers that take part in the merge (it stops at an
 * opaque directory already). No other per-entry syscall is made.
 *
 * Offsets: entry i of the list has offset i + 1; the list is stable until the handle is rewound.
 */
#ifndef PLYFS_READDIR_H
#define PLYFS_READDIR_H

#include <glib.h>
#include <stddef.h>
#include <sys/types.h>

struct merged_entry {
	ino_t ino;	     /* d_ino in the layer it was taken from */
	unsigned char type;  /* DT_* from that layer (DT_UNKNOWN resolved by fstatat) */
	unsigned short layer; /* position of that layer in the `dirfds` array given */
	char name[];	     /* NUL-terminated */
};

/* Builds the merged listing. `dirfds[i]` are O_PATH (or readable) directory fds of the same merged
 * directory, top layer first. On success *out is a GPtrArray of struct merged_entry* (g_free'd by
 * the array) and 0 is returned; else -errno. */
int readdir_merge(const int *dirfds, size_t n, GPtrArray **out);

#endif
