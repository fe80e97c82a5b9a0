/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * request.h - the request in progress on this thread: which FUSE operation, on which node.
 *
 * ops.c opens a request scope at the top of every handler (REQ_SCOPE): it counts the operation
 * (fs->op_count, relaxed atomics, read by the status query) and makes the operation, the nodeid,
 * the name of the request and the caller's uid visible to code far below that has no request in
 * hand: layer.c's traced() hook hands a failed layer syscall to the error slot (errors.h), which
 * records the operation it failed in. The scope ends when the handler returns (a cleanup
 * attribute), after the reply: nothing in it points into the fuse_req_t, which the reply frees.
 *
 * A handler runs start to end on one worker thread (libfuse's loop), so a thread-local pointer is
 * enough; scopes do not nest (REQ_SCOPE in a handler called by another handler would replace the
 * outer one, then clear it). Outside a request (mount, unmount, unit tests) there is none and
 * req_current() is NULL.
 */
#ifndef PLYFS_REQUEST_H
#define PLYFS_REQUEST_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

/* The FUSE operations plyfs serves, by the names of the FUSE protocol (status output). */
#define REQ_OPS(X)                                                                                 \
	X(LOOKUP, "lookup")                                                                        \
	X(FORGET, "forget")                                                                        \
	X(BATCH_FORGET, "batch_forget")                                                            \
	X(GETATTR, "getattr")                                                                      \
	X(SETATTR, "setattr")                                                                      \
	X(READLINK, "readlink")                                                                    \
	X(MKNOD, "mknod")                                                                          \
	X(MKDIR, "mkdir")                                                                          \
	X(SYMLINK, "symlink")                                                                      \
	X(UNLINK, "unlink")                                                                        \
	X(RMDIR, "rmdir")                                                                          \
	X(RENAME, "rename")                                                                        \
	X(LINK, "link")                                                                            \
	X(OPEN, "open")                                                                            \
	X(CREATE, "create")                                                                        \
	X(READ, "read")                                                                            \
	X(WRITE, "write")                                                                          \
	X(FLUSH, "flush")                                                                          \
	X(RELEASE, "release")                                                                      \
	X(FSYNC, "fsync")                                                                          \
	X(OPENDIR, "opendir")                                                                      \
	X(READDIR, "readdir")                                                                      \
	X(READDIRPLUS, "readdirplus")                                                              \
	X(RELEASEDIR, "releasedir")                                                                \
	X(FSYNCDIR, "fsyncdir")                                                                    \
	X(STATFS, "statfs")                                                                        \
	X(ACCESS, "access")                                                                        \
	X(GETXATTR, "getxattr")                                                                    \
	X(LISTXATTR, "listxattr")                                                                  \
	X(SETXATTR, "setxattr")                                                                    \
	X(REMOVEXATTR, "removexattr")                                                              \
	X(FALLOCATE, "fallocate")                                                                  \
	X(LSEEK, "lseek")                                                                          \
	X(COPY_FILE_RANGE, "copy_file_range")                                                      \
	X(IOCTL, "ioctl")

#define REQ_OP_ENUM(id, name) REQ_OP_##id,
enum req_op {
	REQ_OP_NONE, /* outside a request: "-" */
	REQ_OPS(REQ_OP_ENUM) REQ_OP_N
};
#undef REQ_OP_ENUM

/* "lookup", ...; "-" for REQ_OP_NONE or a value out of range. */
const char *req_op_name(enum req_op op);

struct err_slot;

/* The request in progress. Lives on the handler's stack for the handler's duration. */
struct req_ctx {
	struct err_slot *slot; /* where errors of this request are noted (may be NULL) */
	enum req_op op;
	uint64_t nodeid; /* the node the request names (the parent for LOOKUP, CREATE...) */
	uid_t uid;	 /* the caller's */
};

/* Makes `c` this thread's request and counts c->op in `counts` (REQ_OP_N entries, may be NULL). */
void req_enter(struct req_ctx *c, atomic_ulong *counts);
/* Ends this thread's request (cleanup function of REQ_SCOPE). */
void req_leave(struct req_ctx *c);
/* This thread's request, or NULL outside one. */
const struct req_ctx *req_current(void);

/* The first statement of a handler: a request scope that ends when the handler returns. */
#define REQ_SCOPE(fs, opname, ino, caller_uid)                                                     \
	struct req_ctx req_scope_ __attribute__((cleanup(req_leave))) = {.slot = (fs)->errors,     \
									 .op = REQ_OP_##opname,    \
									 .nodeid = (ino),          \
									 .uid = (caller_uid)};     \
	req_enter(&req_scope_, (fs)->op_count)

#endif
