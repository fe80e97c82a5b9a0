/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fake_fuse.h - a stand-in for libfuse's reply side, so that unit tests call the request handlers
 * of ops.c directly, without a kernel.
 *
 * fake_fuse.c defines fuse_reply_*, fuse_req_userdata, fuse_req_ctx and fuse_req_getgroups. Symbols
 * defined in the test executable take precedence over libfuse's shared library, so the handlers
 * (linked from the core library) reply into a struct fuse_req the test made: it records how many
 * replies were sent (a request must get exactly one) and what the first one said. Everything else
 * of libfuse (fuse_add_direntry*, fuse_buf_copy, ...) is the real library.
 *
 * Lifetime: fake_req_new() allocates a request; unlike libfuse, a reply does not free it, so the
 * test can read it afterwards; fake_req_free() releases it.
 */
#ifndef PLYFS_FAKE_FUSE_H
#define PLYFS_FAKE_FUSE_H

#include <glib.h>
#include <stdbool.h>

#include <fuse_lowlevel.h>

enum fake_reply {
	FAKE_NO_REPLY,
	FAKE_ERR, /* fuse_reply_err, also with 0 (success of a request without payload) */
	FAKE_NONE,
	FAKE_ENTRY,
	FAKE_CREATE,
	FAKE_ATTR,
	FAKE_READLINK,
	FAKE_OPEN,
	FAKE_WRITE,
	FAKE_BUF, /* fuse_reply_buf and fuse_reply_data */
	FAKE_STATFS,
	FAKE_XATTR,
	FAKE_LSEEK,
	FAKE_IOCTL, /* fuse_reply_ioctl: the result in ioctl_result, the data in data */
};

struct fuse_req {
	void *userdata;
	struct fuse_ctx ctx;
	/* What fuse_reply_entry/_create/_open return: 0, or -ENOENT to act as a request the kernel
	 * interrupted (the reply did not reach it). */
	int send_result;

	int replies;	      /* every fuse_reply_* call counts */
	bool bad_err;	      /* fuse_reply_err got a value libfuse refuses (< 0 or >= 1000) */
	enum fake_reply kind; /* of the first reply */
	int err;	      /* FAKE_ERR */
	struct fuse_entry_param entry; /* FAKE_ENTRY, FAKE_CREATE */
	struct fuse_file_info fi;      /* FAKE_OPEN, FAKE_CREATE */
	struct stat attr;	       /* FAKE_ATTR */
	size_t count;		       /* FAKE_WRITE, FAKE_XATTR */
	off_t off;		       /* FAKE_LSEEK */
	int ioctl_result;	       /* FAKE_IOCTL */
	GByteArray *data;	       /* FAKE_BUF, FAKE_READLINK (with its NUL) */
};

struct fuse_req *fake_req_new(void *userdata);
void fake_req_free(struct fuse_req *req);

#endif
