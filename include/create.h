/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * create.h - new entries: CREATE, MKNOD, MKDIR, SYMLINK, LINK.
 *
 * The parent is copied up first. A name that is free in upper is created there directly, then
 * given the caller's owner (the parent's group when it is setgid, as the kernel does). A name that
 * holds a whiteout is built in the work directory and renamed over the whiteout in one step (a
 * directory with RENAME_EXCHANGE, then the whiteout is deleted), and a new directory there is made
 * opaque, because whatever the whiteout hid below must not merge into it.
 * Each returns the new node with nlookup+1 and a request reference, like namei_lookup().
 */
#ifndef PLYFS_CREATE_H
#define PLYFS_CREATE_H

#include <sys/stat.h>

#include "fs.h"

struct create_req {
	mode_t mode;		 /* type and permission bits (umask already applied) */
	dev_t rdev;		 /* MKNOD */
	const char *target;	 /* SYMLINK */
	mode_t umask;		 /* the caller's umask: applied unless the parent has a default ACL */
	uid_t uid;		 /* the caller, as seen in the merged view */
	gid_t gid;
	int flags;		 /* CREATE: the open flags */
};

/* fd_out (CREATE only, else NULL) gets an fd of the new file opened with req->flags. */
int create_entry(struct plyfs *fs, struct node *parent, const char *name,
		 const struct create_req *req, struct node **out, struct stat *st, int *fd_out);

/* A new name for n (copied up first) in newparent. */
int create_link(struct plyfs *fs, struct node *n, struct node *newparent, const char *newname,
		struct node **out, struct stat *st);

#endif
