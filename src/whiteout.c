// SPDX-License-Identifier: GPL-2.0-or-later
/* whiteout.c - recognising whiteouts and opaque directories in a layer (see whiteout.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <glib.h>

#include "layer.h"
#include "ovl_names.h"
#include "ovl_xattr.h"
#include "whiteout.h"

bool whiteout_is_chardev(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 0 && minor(st->st_rdev) == 0;
}

/* The name forms are decoded by ovl_wh_decode() (ovl_xattr.h): ".wh." alone, ".wh.." and ".wh..."
 * hide nothing, nor do aufs' ".wh..wh.*" names. */
const char *whiteout_wh_target(const char *name)
{
	const char *target = NULL;
	return ovl_wh_decode(name, strlen(name), &target) == OVL_WH_WHITEOUT ? target : NULL;
}

bool whiteout_is_opq_name(const char *name)
{
	return ovl_wh_decode(name, strlen(name), NULL) == OVL_WH_OPQ;
}

bool whiteout_is_private_name(const char *name)
{
	return ovl_wh_decode(name, strlen(name), NULL) != OVL_WH_NONE;
}

int whiteout_wh_exists(int dirfd, const char *name)
{
	char wh[NAME_MAX + OVL_WH_PREFIX_LEN + 2];
	struct stat st;

	/* ".wh.NAME" longer than NAME_MAX cannot be on disk: that is "no", not ENAMETOOLONG. */
	if (strlen(name) + OVL_WH_PREFIX_LEN > NAME_MAX)
		return 0;
	snprintf(wh, sizeof(wh), OVL_WH_PREFIX "%s", name);
	int r = layer_fstatat(dirfd, wh, &st);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/* The opaque xattr names that count for this caller, NULL-terminated. */
static const char *const opaque_xattrs_trusted[] = {
	OVL_XATTR_TRUSTED_PREFIX OVL_XATTR_OPAQUE_SUFFIX,
	OVL_XATTR_USER_PREFIX OVL_XATTR_OPAQUE_SUFFIX,
	OVL_XATTR_FOVL_PREFIX OVL_XATTR_OPAQUE_SUFFIX,
	NULL,
};

static bool is_opaque_xattr_name(const char *xname, bool trusted)
{
	/* Without `trusted`, skip the first (trusted.*) name. */
	for (const char *const *p = opaque_xattrs_trusted + (trusted ? 0 : 1); *p; p++)
		if (strcmp(xname, *p) == 0)
			return true;
	return false;
}

static bool xattr_unsupported(ssize_t r)
{
	return r == -ENOTSUP || r == -EOPNOTSUPP;
}

/* An invalid value on directory `dirfd`: reported with the directory's path (only computed
 * here, on the error path; the layer is not known at this level). */
static void report_dir(int dirfd, const char *xname, int err)
{
	g_autofree char *path = layer_fd_path(dirfd);
	ovl_xattr_report_invalid(NULL, xname, -1, path, err);
}

/* 1 when the xattr `xname` of directory `dirfd` is exactly "y" (the value the kernel writes and
 * checks, ovl_flag_decode()), 0 for any other value or when it vanished meanwhile, -errno on a
 * real error. Another value is reported once: the kernel silently treats it as "not opaque". */
static int opaque_xattr_is_y(int dirfd, const char *xname)
{
	char val[8];
	ssize_t r = layer_getxattr(dirfd, NULL, xname, val, sizeof(val));

	if (r == -ENODATA || xattr_unsupported(r))
		return 0;
	if (r < 0 && r != -ERANGE)
		return (int)r;
	int flag = ovl_flag_decode(val, r == -ERANGE ? (ssize_t)sizeof(val) : r);
	if (flag < 0)
		report_dir(dirfd, xname, flag);
	return flag == OVL_FLAG_YES;
}

/* Lists the xattr names of the directory itself: a small stack buffer covers the usual case in
 * one call; only a bigger list needs a second call with room for the kernel's maximum. Returns
 * the list length (0 when the fs has no xattrs) and sets *list, or -errno. */
static ssize_t list_dir_xattrs(int dirfd, char *small, size_t small_size, char **heap, char **list)
{
	ssize_t r = layer_listxattr(dirfd, NULL, small, small_size);

	*list = small;
	if (r == -ERANGE) {
		*heap = g_malloc(XATTR_LIST_MAX);
		*list = *heap;
		r = layer_listxattr(dirfd, NULL, *heap, XATTR_LIST_MAX);
	}
	if (xattr_unsupported(r))
		return 0;
	return r;
}

static int opaque_by_xattr(int dirfd, bool trusted)
{
	char small[1024];
	g_autofree char *heap = NULL;
	char *list;
	ssize_t len = list_dir_xattrs(dirfd, small, sizeof(small), &heap, &list);

	if (len < 0)
		return (int)len;
	/* The list is NUL-separated names; a last name without its NUL (never from a sane fs) is
	 * ignored rather than read past the end. */
	for (ssize_t off = 0; off < len;) {
		size_t n = strnlen(list + off, len - off);
		if ((ssize_t)n == len - off)
			break;
		if (is_opaque_xattr_name(list + off, trusted)) {
			int r = opaque_xattr_is_y(dirfd, list + off);
			if (r != 0)
				return r;
		}
		off += (ssize_t)n + 1;
	}
	return 0;
}

int whiteout_dir_is_opaque(int dirfd, bool trusted)
{
	struct stat st;
	int r = opaque_by_xattr(dirfd, trusted);

	if (r != 0)
		return r;
	r = layer_fstatat(dirfd, OVL_OPQ_NAME, &st);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}
