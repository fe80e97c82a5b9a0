// SPDX-License-Identifier: GPL-2.0-or-later
/* mount_flags.c - generic mount flags: options, mountinfo, remount (see mount_flags.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include <glib.h>

#include "mount_flags.h"

struct flag_opt {
	const char *name;
	unsigned long set, clear;
};

/* mount(8)'s meaning of each generic flag option (libmount's map): each sets or clears its own
 * bit only; mount(2) resolves the atime ones (noatime wins over relatime, strictatime over both).
 */
static const struct flag_opt flag_opts[] = {
	{"ro", MS_RDONLY, 0},
	{"rw", 0, MS_RDONLY},
	{"nosuid", MS_NOSUID, 0},
	{"suid", 0, MS_NOSUID},
	{"nodev", MS_NODEV, 0},
	{"dev", 0, MS_NODEV},
	{"noexec", MS_NOEXEC, 0},
	{"exec", 0, MS_NOEXEC},
	{"sync", MS_SYNCHRONOUS, 0},
	{"async", 0, MS_SYNCHRONOUS},
	{"dirsync", MS_DIRSYNC, 0},
	{"noatime", MS_NOATIME, 0},
	{"atime", 0, MS_NOATIME},
	{"relatime", MS_RELATIME, 0},
	{"norelatime", 0, MS_RELATIME},
	{"strictatime", MS_STRICTATIME, 0},
	{"nostrictatime", 0, MS_STRICTATIME},
	{"nodiratime", MS_NODIRATIME, 0},
	{"diratime", 0, MS_NODIRATIME},
	{"lazytime", MS_LAZYTIME, 0},
	{"nolazytime", 0, MS_LAZYTIME},
};

static const struct flag_opt *find_opt(const char *opt)
{
	for (size_t i = 0; i < G_N_ELEMENTS(flag_opts); i++) {
		if (strcmp(flag_opts[i].name, opt) == 0)
			return &flag_opts[i];
	}
	return NULL;
}

bool mount_flags_note(struct mount_flags_change *c, const char *opt)
{
	const struct flag_opt *o = find_opt(opt);
	if (!o)
		return false;
	c->set = (c->set & ~o->clear) | o->set;
	c->clear = (c->clear & ~o->set) | o->clear;
	return true;
}

unsigned long mount_flags_apply(const struct mount_flags_change *c, unsigned long base)
{
	return (base & ~c->clear) | c->set;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape_octal(const char *s)
{
	GString *out = g_string_sized_new(strlen(s));
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
		    s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			g_string_append_c(out, (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
						      (s[i + 3] - '0')));
			i += 3;
		} else {
			g_string_append_c(out, s[i]);
		}
	}
	return g_string_free(out, FALSE);
}

/* Adds the flags named in a comma list; `super` lists a superblock's options, of which only
 * ro, sync, dirsync and lazytime are generic flags. */
static unsigned long flags_of(const char *list, bool super)
{
	g_auto(GStrv) opts = g_strsplit(list, ",", -1);
	struct mount_flags_change c = {0};
	for (size_t i = 0; opts[i]; i++) {
		const struct flag_opt *o = find_opt(opts[i]);
		if (o &&
		    (!super || o->set & (MS_RDONLY | MS_SYNCHRONOUS | MS_DIRSYNC | MS_LAZYTIME)))
			mount_flags_note(&c, opts[i]);
	}
	return c.set;
}

int mount_flags_parse_line(const char *line, const char *mountpoint, int *mount_id,
			   unsigned long *flags, bool *fuse)
{
	g_auto(GStrv) f = g_strsplit(line, " ", -1);
	guint n = g_strv_length(f);
	guint sep = 6;
	while (sep < n && strcmp(f[sep], "-") != 0)
		sep++;
	if (n < 6 || sep + 3 >= n) /* ... MOUNTOPTS [optional...] - FSTYPE SOURCE SUPEROPTS */
		return -EINVAL;
	g_autofree char *mp = unescape_octal(f[4]);
	if (mountpoint && strcmp(mp, mountpoint) != 0)
		return -ENOENT;
	*mount_id = atoi(f[0]);
	*fuse = strcmp(f[sep + 1], "fuse") == 0 || g_str_has_prefix(f[sep + 1], "fuse.");
	*flags = flags_of(f[5], false) | flags_of(g_strchomp(f[sep + 3]), true);
	return 0;
}

int mount_flags_read(const char *mountpoint, int mount_id, int *id_out, unsigned long *flags,
		     bool *fuse)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) gerr = NULL;
	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, &gerr))
		return gerr->domain == G_FILE_ERROR && gerr->code == G_FILE_ERROR_NOENT ? -ENOENT
											: -EIO;
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	int r = -ENOENT;
	for (size_t i = 0; lines[i]; i++) {
		int id;
		unsigned long fl;
		bool is_fuse;
		if (mount_flags_parse_line(lines[i], mount_id >= 0 ? NULL : mountpoint, &id, &fl,
					   &is_fuse) < 0 ||
		    (mount_id >= 0 && id != mount_id))
			continue;
		*id_out = id; /* the last one wins: the topmost mount on that point */
		*flags = fl;
		*fuse = is_fuse;
		r = 0;
	}
	return r;
}

static int do_mount(const char *mountpoint, unsigned long flags, const char *what, char **err)
{
	if (mount(NULL, mountpoint, NULL, flags, NULL) == 0)
		return 0;
	int e = errno;
	*err = g_strdup_printf("%s of '%s' failed: %s", what, mountpoint, g_strerror(e));
	return -e;
}

int mount_flags_remount(const char *mountpoint, const struct mount_flags_change *c, char **err)
{
	unsigned long cur;
	int id;
	bool fuse;
	int r = mount_flags_read(mountpoint, -1, &id, &cur, &fuse);
	if (r < 0) {
		*err = g_strdup_printf("remount: '%s' is not a mount point", mountpoint);
		return r;
	}
	if (!fuse) {
		*err = g_strdup_printf("remount: '%s' is not a plyfs (FUSE) mount", mountpoint);
		return -EINVAL;
	}
	return do_mount(mountpoint, MS_REMOUNT | mount_flags_apply(c, cur), "remount", err);
}

int mount_flags_set_atime(const char *mountpoint, const struct mount_flags_change *c, char **err)
{
	if (!(c->set & (MS_NODIRATIME | MS_STRICTATIME)))
		return 0; /* libfuse passed noatime; relatime is the kernel's default */
	unsigned long cur;
	int id;
	bool fuse;
	int r = mount_flags_read(mountpoint, -1, &id, &cur, &fuse);
	if (r < 0) {
		*err = g_strdup_printf("'%s' is not a mount point", mountpoint);
		return r;
	}
	/* A bind remount changes the per-mount flags only, all of them: keep the others. */
	unsigned long keep = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	unsigned long fl = (cur & keep) | (mount_flags_apply(c, cur) & MOUNT_FLAGS_ATIME_MASK);
	return do_mount(mountpoint, MS_REMOUNT | MS_BIND | fl, "setting the atime flags", err);
}
