// SPDX-License-Identifier: GPL-2.0-or-later
/* killpriv.c - setuid/setgid bits taken away by changes of unprivileged callers (see killpriv.h).
 */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "killpriv.h"

#define CAP_FSETID_BIT 4 /* linux/capability.h: CAP_FSETID */

mode_t killpriv_rule(enum killpriv_cause cause, mode_t mode, bool in_group, bool fsetid)
{
	if (fsetid)
		return mode;
	if (cause == KILLPRIV_ACL)
		return in_group ? mode : mode & ~(mode_t)S_ISGID;
	if (!S_ISREG(mode))
		return mode;
	mode &= ~(mode_t)S_ISUID;
	if ((mode & S_ISGID) && ((mode & S_IXGRP) || !in_group))
		mode &= ~(mode_t)S_ISGID;
	return mode;
}

/* The caller's effective capabilities hold CAP_FSETID. Unknown (the caller's /proc entry gone or
 * unreadable): only root is taken to have it. */
static bool caller_fsetid(const struct fuse_ctx *ctx)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)ctx->pid);
	g_autofree char *status = NULL;
	if (ctx->pid <= 0 || !g_file_get_contents(path, &status, NULL, NULL))
		return ctx->uid == 0;
	const char *cap = strstr(status, "\nCapEff:");
	if (!cap)
		return ctx->uid == 0;
	unsigned long long eff = g_ascii_strtoull(cap + strlen("\nCapEff:"), NULL, 16);
	return (eff >> CAP_FSETID_BIT) & 1;
}

/* The caller's fsgid or one of its supplementary groups is `gid`. */
static bool caller_in_group(fuse_req_t req, const struct fuse_ctx *ctx, gid_t gid)
{
	if (ctx->gid == gid)
		return true;
	gid_t small[32];
	int n = fuse_req_getgroups(req, G_N_ELEMENTS(small), small);
	if (n < 0)
		return false;
	g_autofree gid_t *big = NULL;
	gid_t *list = small;
	if (n > (int)G_N_ELEMENTS(small)) {
		big = g_new(gid_t, n);
		n = fuse_req_getgroups(req, n, big);
		list = big;
	}
	for (int i = 0; i < n; i++)
		if (list[i] == gid)
			return true;
	return false;
}

mode_t killpriv_mode(fuse_req_t req, enum killpriv_cause cause, mode_t mode, gid_t gid)
{
	mode_t drop = cause == KILLPRIV_ACL ? S_ISGID : S_ISUID | S_ISGID;
	if (!(mode & drop) || (cause == KILLPRIV_WRITE && !S_ISREG(mode)))
		return mode;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (caller_fsetid(ctx))
		return mode;
	bool in_group = caller_in_group(req, ctx, gid);
	return killpriv_rule(cause, mode, in_group, false);
}
