// SPDX-License-Identifier: GPL-2.0-or-later
/* fake_fuse.c - libfuse's reply functions, recording into the test's request (fake_fuse.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fake_fuse.h"

struct fuse_req *fake_req_new(void *userdata)
{
	struct fuse_req *req = g_new0(struct fuse_req, 1);
	req->userdata = userdata;
	req->ctx = (struct fuse_ctx){.uid = 0, .gid = 0, .pid = getpid(), .umask = 022};
	return req;
}

void fake_req_free(struct fuse_req *req)
{
	if (req->data)
		g_byte_array_unref(req->data);
	g_free(req);
}

/* Counts a reply; only the first one is kept (a second one is the bug the tests look for). */
static bool first(fuse_req_t req, enum fake_reply kind)
{
	if (req->replies++ > 0)
		return false;
	req->kind = kind;
	return true;
}

static void keep_data(fuse_req_t req, const void *buf, size_t size)
{
	req->data = g_byte_array_sized_new((guint)size);
	g_byte_array_append(req->data, buf, (guint)size);
}

void *fuse_req_userdata(fuse_req_t req)
{
	return req->userdata;
}

const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	return &req->ctx;
}

/* No supplementary groups: the caller is only in ctx.gid. */
int fuse_req_getgroups(fuse_req_t req, int size, gid_t list[])
{
	(void)req, (void)size, (void)list;
	return 0;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	/* libfuse turns these into ERANGE with a complaint in the log. */
	if (err < 0 || err >= 1000)
		req->bad_err = true;
	if (first(req, FAKE_ERR))
		req->err = err;
	return 0;
}

void fuse_reply_none(fuse_req_t req)
{
	first(req, FAKE_NONE);
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	if (first(req, FAKE_ENTRY))
		req->entry = *e;
	return req->send_result;
}

int fuse_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		      const struct fuse_file_info *fi)
{
	if (first(req, FAKE_CREATE)) {
		req->entry = *e;
		req->fi = *fi;
	}
	return req->send_result;
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout)
{
	if (first(req, FAKE_ATTR))
		req->attr = *attr;
	return 0;
}

int fuse_reply_readlink(fuse_req_t req, const char *link)
{
	if (first(req, FAKE_READLINK))
		keep_data(req, link, strlen(link) + 1);
	return 0;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	if (first(req, FAKE_OPEN))
		req->fi = *fi;
	return req->send_result;
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	if (first(req, FAKE_WRITE))
		req->count = count;
	return 0;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	if (first(req, FAKE_BUF))
		keep_data(req, buf, size);
	return 0;
}

/* As libfuse without splice: the data is copied into memory first; a copy that fails is
 * answered with its error. */
int fuse_reply_data(fuse_req_t req, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
	size_t size = fuse_buf_size(bufv);
	g_autofree char *mem = g_try_malloc(size ? size : 1);
	if (!mem)
		return fuse_reply_err(req, ENOMEM);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
	dst.buf[0].mem = mem;
	ssize_t r = fuse_buf_copy(&dst, bufv, 0);
	if (r < 0)
		return fuse_reply_err(req, (int)-r);
	return fuse_reply_buf(req, mem, (size_t)r);
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs *stbuf)
{
	first(req, FAKE_STATFS);
	return 0;
}

int fuse_reply_ioctl(fuse_req_t req, int result, const void *buf, size_t size)
{
	if (first(req, FAKE_IOCTL)) {
		req->ioctl_result = result;
		keep_data(req, buf, size);
	}
	return 0;
}

int fuse_reply_xattr(fuse_req_t req, size_t count)
{
	if (first(req, FAKE_XATTR))
		req->count = count;
	return 0;
}

int fuse_reply_lseek(fuse_req_t req, off_t off)
{
	if (first(req, FAKE_LSEEK))
		req->off = off;
	return 0;
}
