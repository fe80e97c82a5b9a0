/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * copy_data.h - the data of a regular file copied up (copy_up.h): FICLONE where the upper
 * filesystem shares extents, else copy_file_range, else read/write, of the data segments only
 * (SEEK_DATA/SEEK_HOLE), so holes stay holes; the size is set at the end.
 *
 * Write-behind (`sync` true: the copy is fsync'ed before it takes its name, copy_up.h): each
 * WRITEBEHIND_WINDOW of the copy has its writeback started (sync_file_range(WRITE)) as soon as
 * it is copied, and before a window starts, the one WRITEBEHIND_LAG windows older is waited for
 * (WAIT_BEFORE). The disk writes then overlap the copy and the caller's fsync finds at most
 * WRITEBEHIND_LAG + 1 windows left to write, and no more than that much of the copy is ever dirty
 * or under writeback: a copy-up of a big file does not fill memory with dirty pages the final
 * fsync would have to write at once. The fsync stays the guarantee (it also writes the inode
 * and the journal); write-behind only moves the data writes earlier. A writeback error is
 * returned by whichever call meets it first (sync_file_range's wait reports an error on this
 * file only once: it must not be lost, so it fails the copy as the fsync would). A filesystem
 * without sync_file_range (EINVAL, ESPIPE, ENOSYS, EOPNOTSUPP) just copies.
 * Kernel overlayfs copies in 1 MiB splices and fsyncs once at the end; without `sync` (fsync=0,
 * volatile) nothing is written early either, as there.
 */
#ifndef PLYFS_COPY_DATA_H
#define PLYFS_COPY_DATA_H

#include <stdbool.h>
#include <sys/types.h>

#define WRITEBEHIND_WINDOW ((off_t)8 << 20)
#define WRITEBEHIND_LAG	   2

/* Copies the data of `src` (size `size`) to the empty file `dst` and sets its size. `sync`: the
 * caller fsyncs `dst` next (write-behind). 0 or -errno. */
int copy_data(int src, int dst, off_t size, bool sync);

/* The next extent to copy from `pos` (< size), given what the source's lseek answered:
 * `data` (SEEK_DATA from pos: -ENXIO only a hole remains, another -errno none supported) and
 * `hole` (SEEK_HOLE from data, or -errno). Sets [*from, *to) and returns true; false when
 * nothing is left to copy. Answers that do not move forward (a lower layer on a FUSE filesystem
 * answers what it likes) count as none: the rest is copied whole, so the copy always ends. */
bool copy_extent(off_t pos, off_t size, off_t data, off_t hole, off_t *from, off_t *to);

/* --- the write-behind plan, without syscalls (unit-tested) --- */

struct wb_range {
	off_t off, len; /* len 0: none */
};

/* Zero-initialised. Ranges are copied in increasing offsets (holes skipped). */
struct writebehind {
	off_t begin, end;			  /* copied, writeback not started yet */
	struct wb_range started[WRITEBEHIND_LAG]; /* started, not waited for: a ring */
	unsigned n_started;
};

/* [off, off+len) was just copied. Once at least WRITEBEHIND_WINDOW of the file (holes count) is
 * copied and not started: `start` is that range, and `wait` the range started WRITEBEHIND_LAG
 * windows before it (to wait for first), if any; otherwise both have len 0. */
void writebehind_step(struct writebehind *wb, off_t off, off_t len, struct wb_range *wait,
		      struct wb_range *start);

#endif
