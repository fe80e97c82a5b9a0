/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * autofd.h - a file descriptor closed when it goes out of scope (glib 2.74 has no g_autofd).
 *
 *	autofd int fd = openat(...);
 *	...
 *	return steal_fd(&fd);	// hand it to the caller instead
 */
#ifndef PLYFS_AUTOFD_H
#define PLYFS_AUTOFD_H

#include <errno.h>
#include <unistd.h>

static inline void autofd_close(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define autofd __attribute__((cleanup(autofd_close)))

static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

#endif
