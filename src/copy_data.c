// SPDX-License-Identifier: GPL-2.0-or-later
/* copy_data.c - a file's data copied up, with write-behind (see copy_data.h). */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <unistd.h>

#include "copy_data.h"
#include "layer.h"

#define CHUNK ((off_t)1 << 20)

void writebehind_step(struct writebehind *wb, off_t off, off_t len, struct wb_range *wait,
		      struct wb_range *start)
{
	*wait = (struct wb_range){0};
	*start = (struct wb_range){0};
	if (len <= 0)
		return;
	if (wb->end == 0)
		wb->begin = off; /* a leading hole has nothing to write */
	wb->end = off + len;
	if (wb->end - wb->begin < WRITEBEHIND_WINDOW)
		return;
	struct wb_range *slot = &wb->started[wb->n_started % WRITEBEHIND_LAG];
	if (wb->n_started >= WRITEBEHIND_LAG)
		*wait = *slot;
	*start = (struct wb_range){.off = wb->begin, .len = wb->end - wb->begin};
	*slot = *start;
	wb->n_started++;
	wb->begin = wb->end;
}

bool copy_extent(off_t pos, off_t size, off_t data, off_t hole, off_t *from, off_t *to)
{
	if (data == -ENXIO)
		return false; /* only a hole remains */
	if (data < 0 || data < pos || data >= size)
		data = pos, hole = size; /* no usable answer: the rest, whole */
	else if (hole <= data)
		hole = size;
	*from = data;
	*to = MIN(hole, size);
	return true;
}

/* The syscalls of one step. `fd` -1: write-behind is off (not wanted, or not supported). */
static int writebehind_copied(struct writebehind *wb, int *fd, off_t off, off_t len)
{
	if (*fd < 0)
		return 0;
	struct wb_range wait, start;
	writebehind_step(wb, off, len, &wait, &start);
	int r = 0;
	if (wait.len)
		r = layer_sync_file_range(*fd, wait.off, wait.len, SYNC_FILE_RANGE_WAIT_BEFORE);
	if (r == 0 && start.len)
		r = layer_sync_file_range(*fd, start.off, start.len, SYNC_FILE_RANGE_WRITE);
	if (r == -EINVAL || r == -ESPIPE || r == -ENOSYS || r == -EOPNOTSUPP) {
		*fd = -1; /* the fsync alone writes the data */
		return 0;
	}
	return r;
}

/* Copies [off, off+len) with copy_file_range, or read/write where that is refused. */
static int copy_range(int src, int dst, off_t off, off_t len, struct writebehind *wb, int *wb_fd)
{
	bool plain = false;
	g_autofree char *buf = NULL;
	while (len > 0) {
		size_t chunk = (size_t)MIN(len, CHUNK);
		ssize_t n;
		if (!plain) {
			off_t in = off, out = off;
			n = layer_copy_file_range(src, &in, dst, &out, chunk);
			if (n == -EXDEV || n == -EINVAL || n == -ENOSYS || n == -EOPNOTSUPP) {
				plain = true;
				continue;
			}
		} else {
			if (!buf)
				buf = g_malloc(CHUNK);
			n = layer_pread(src, buf, chunk, off);
			if (n > 0)
				n = layer_pwrite(dst, buf, (size_t)n, off);
		}
		if (n < 0)
			return (int)n;
		if (n == 0)
			break; /* the source shrank: what is copied is what there is */
		int r = writebehind_copied(wb, wb_fd, off, n);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

int copy_data(int src, int dst, off_t size, bool sync)
{
	if (size == 0 || layer_ficlone(dst, src) == 0)
		return 0;
	struct writebehind wb = {0};
	int wb_fd = sync ? dst : -1;
	off_t from, to;
	for (off_t pos = 0; pos < size; pos = to) {
		off_t data = layer_lseek(src, pos, SEEK_DATA);
		off_t hole = data >= 0 ? layer_lseek(src, data, SEEK_HOLE) : -EINVAL;
		if (!copy_extent(pos, size, data, hole, &from, &to))
			break;
		int r = copy_range(src, dst, from, to - from, &wb, &wb_fd);
		if (r < 0)
			return r;
	}
	return layer_ftruncate(dst, size);
}
