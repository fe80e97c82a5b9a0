// SPDX-License-Identifier: GPL-2.0-or-later
/* xattr.c - extended attributes in the merged view (see xattr.h). */
#include <errno.h>
#include <string.h>

#include "copy_up.h"
#include "inode.h"
#include "ovl_names.h"
#include "override.h"
#include "status.h"
#include "xattr.h"
#include "xattr_name.h"

/* Names users neither see nor change: the overlay's own, and with xattr_permissions the
 * override_stat names (override.h), which hold what stat shows. */
static bool hidden(const struct plyfs *fs, const char *name)
{
	return xattr_is_private(name) || (override_on(fs) && override_is_name(name));
}

/* A POSIX ACL value: its ACL_USER/ACL_GROUP ids go through uidmapping/gidmapping (idmap.h). */
static bool is_acl(const struct plyfs *fs, const char *name)
{
	return (fs->params->uidmap.n || fs->params->gidmap.n) &&
	       (strcmp(name, "system.posix_acl_access") == 0 ||
		strcmp(name, "system.posix_acl_default") == 0);
}

ssize_t xattr_get(struct plyfs *fs, struct node *n, const char *name, char *buf, size_t size)
{
	if (n->root && strcmp(name, PLYFS_STATUS_XATTR) == 0)
		return status_xattr(fs, buf, size);
	if (fs->params->noxattrs == XATTR_MODE_DISABLED)
		return -ENOTSUP;
	if (fs->params->noxattrs == XATTR_MODE_IGNORED || hidden(fs, name))
		return -ENODATA;
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	if (r < 0)
		return r;
	ssize_t len = layer_getxattr(loc.fd, loc.name, name, buf, size);
	/* Read through an id-mapped lower, the kernel has shifted its ids already (layer.h). */
	if (len > 0 && size > 0 && is_acl(fs, name) &&
	    !layers_fd_idmapped(fs->layers, fs->n_layers, loc.fd))
		idmap_acl(&fs->params->uidmap, &fs->params->gidmap, buf, (size_t)len, 1);
	return len;
}

/* The raw list of the top entry, grown until it fits (it may change between the two calls). */
static ssize_t list_raw(int dirfd, const char *entry, char **out)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t len = layer_listxattr(dirfd, entry, NULL, 0);
		if (len <= 0) {
			*out = NULL;
			return len == -ENOTSUP ? 0 : len;
		}
		char *buf = g_malloc((gsize)len);
		ssize_t got = layer_listxattr(dirfd, entry, buf, (size_t)len);
		if (got >= 0) {
			*out = buf;
			return got;
		}
		g_free(buf);
		if (got != -ERANGE)
			return got;
	}
	return -EIO;
}

ssize_t xattr_list(struct plyfs *fs, struct node *n, char *buf, size_t size)
{
	if (fs->params->noxattrs == XATTR_MODE_DISABLED)
		return -ENOTSUP;
	if (fs->params->noxattrs == XATTR_MODE_IGNORED)
		return 0;
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	if (r < 0)
		return r;
	g_autofree char *raw = NULL;
	ssize_t len = list_raw(loc.fd, loc.name, &raw);
	if (len <= 0)
		return len;

	/* Filter in place: the kept names only move towards the start. */
	size_t kept = 0;
	for (size_t pos = 0; pos < (size_t)len;) {
		size_t l = strlen(raw + pos) + 1;
		if (!hidden(fs, raw + pos)) {
			memmove(raw + kept, raw + pos, l);
			kept += l;
		}
		pos += l;
	}
	return xattr_copy_value(raw, kept, buf, size);
}

/*
 * What SETXATTR and REMOVEXATTR share: the mount's xattr mode and the overlay's own names (not the
 * user's to change: kernel overlayfs answers EPERM). Returns 1 when the call is to be ignored
 * (noxattrs=2), 0 when it goes on, or -errno.
 */
static int check_change(struct plyfs *fs, const char *name)
{
	if (fs->params->noxattrs == XATTR_MODE_DISABLED)
		return -ENOTSUP;
	if (fs->params->noxattrs == XATTR_MODE_IGNORED)
		return 1;
	return hidden(fs, name) ? -EPERM : 0;
}

int xattr_set(struct plyfs *fs, struct node *n, const char *name, const char *value, size_t size,
	      int flags)
{
	if (xattr_name_refused(name))
		return -ERANGE;	       /* before any copy-up */
	if (xattr_value_too_big(size)) /* E2BIG: setxattr(2)'s answer, before any copy-up */
		return -E2BIG;
	int r = check_change(fs, name);
	if (r != 0)
		return r > 0 ? 0 : r;
	g_autofree char *stored = NULL;
	if (is_acl(fs, name) && size > 0) {
		stored = g_memdup2(value, size);
		r = idmap_acl(&fs->params->uidmap, &fs->params->gidmap, stored, size, 0);
		if (r < 0)
			return r;
		value = stored;
	}
	auto_lfd struct lfd loc = LFD_INIT;
	r = inode_locate(fs, n, &loc);
	if (r == 0)
		r = copy_up_inode_at(fs, n, &loc, true);
	/* Changes by name: not on an entry that took n's name since (inode.h, "Identity"). */
	if (r == 0)
		r = inode_verify(&loc);
	return r < 0 ? r : layer_setxattr(loc.fd, loc.name, name, value, size, flags);
}

int xattr_remove(struct plyfs *fs, struct node *n, const char *name)
{
	if (xattr_name_refused(name))
		return -ERANGE; /* before any copy-up */
	int r = check_change(fs, name);
	if (r != 0)
		return r > 0 ? 0 : r;
	auto_lfd struct lfd loc = LFD_INIT;
	r = inode_locate(fs, n, &loc);
	/* Removing what is not there must not copy the file up. */
	ssize_t have = r < 0 ? r : layer_getxattr(loc.fd, loc.name, name, NULL, 0);
	if (have < 0)
		return (int)have;
	r = copy_up_inode_at(fs, n, &loc, true);
	if (r == 0)
		r = inode_verify(&loc);
	return r < 0 ? r : layer_removexattr(loc.fd, loc.name, name);
}
