// SPDX-License-Identifier: GPL-2.0-or-later
/* fuse_io.c - FUSE_HANDLE_KILLPRIV_V2 added to the INIT reply (see fuse_io.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse_io.h"
#include "log.h"

/* The INIT request's unique id, once read, and whether the kernel offered the flag; the reply
 * that carries that unique gets it. INIT is the first request and answered before any other. */
static uint64_t init_unique;
static bool init_offered, v2_on;

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *h = buf;
	if (n >= (ssize_t)(sizeof(*h) + sizeof(struct fuse_init_in)) && h->opcode == FUSE_INIT) {
		const struct fuse_init_in *in = (const void *)(h + 1);
		__atomic_store_n(&init_offered, (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0,
				 __ATOMIC_RELEASE);
		__atomic_store_n(&init_unique, h->unique, __ATOMIC_RELEASE);
	}
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	const struct fuse_out_header *h = iov[0].iov_base;
	uint64_t unique = __atomic_load_n(&init_unique, __ATOMIC_ACQUIRE);
	if (count < 2 || iov[0].iov_len < sizeof(*h) || h->unique != unique || unique == 0 ||
	    h->error != 0 || iov[1].iov_len < offsetof(struct fuse_init_out, flags) + 4 ||
	    !__atomic_load_n(&init_offered, __ATOMIC_ACQUIRE))
		return writev(fd, iov, count);
	/* The INIT reply: a copy of its body with the flag, the rest as libfuse built it. */
	struct fuse_init_out out = {0};
	size_t len = iov[1].iov_len < sizeof(out) ? iov[1].iov_len : sizeof(out);
	memcpy(&out, iov[1].iov_base, len);
	out.flags |= FUSE_HANDLE_KILLPRIV_V2;
	struct iovec patched[count];
	memcpy(patched, iov, sizeof(patched));
	patched[1].iov_base = &out;
	__atomic_store_n(&init_unique, 0, __ATOMIC_RELEASE);
	ssize_t r = writev(fd, patched, count);
	if (r >= 0) {
		__atomic_store_n(&v2_on, true, __ATOMIC_RELEASE);
		log_debug("init: FUSE_HANDLE_KILLPRIV_V2 on");
	}
	return r;
}

/* libfuse splices requests in only when the custom I/O provides it: plain splice(2), so WRITE
 * data goes from the device through a pipe to the layer file without a copy into the daemon.
 * INIT itself is never spliced (libfuse reads with io_read until INIT negotiated
 * FUSE_CAP_SPLICE_READ). No splice_send: no reply is built from a fd (READ uses a buffer). */
static ssize_t io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			 unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int fuse_io_install(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = io_read,
		.writev = io_writev,
		.splice_receive = io_splice,
	};
	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

bool fuse_io_killpriv_v2(void)
{
	return __atomic_load_n(&v2_on, __ATOMIC_ACQUIRE);
}
