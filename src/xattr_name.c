// SPDX-License-Identifier: GPL-2.0-or-later
/* xattr_name.c - which xattr names are the overlay's own, and the size rules (see xattr_name.h). */
#include <errno.h>
#include <linux/limits.h>
#include <string.h>

#include <glib.h>

#include "ovl_names.h"
#include "xattr_name.h"

static const char *const private_prefixes[] = {
	OVL_XATTR_TRUSTED_PREFIX, OVL_XATTR_USER_PREFIX,      OVL_XATTR_FOVL_PREFIX,
	PLYFS_XATTR_PREFIX,	  PLYFS_XATTR_TRUSTED_PREFIX,
};

bool xattr_is_private(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(private_prefixes); i++) {
		if (g_str_has_prefix(name, private_prefixes[i]))
			return true;
	}
	return false;
}

bool xattr_name_refused(const char *name)
{
	return name[0] == '\0' || strlen(name) > XATTR_NAME_MAX;
}

bool xattr_value_too_big(size_t size)
{
	return size > XATTR_SIZE_MAX;
}

ssize_t xattr_copy_value(const void *value, size_t len, char *buf, size_t size)
{
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, value, len);
	return (ssize_t)len;
}
