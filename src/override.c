// SPDX-License-Identifier: GPL-2.0-or-later
/* override.c - xattr_permissions: the override_stat xattr's codec and its use (see override.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <glib.h>

#include "layer.h"
#include "ovl_names.h"
#include "ovl_xattr.h"
#include "override.h"

static const char *const all_names[] = {OVERRIDE_XATTR_PRIVILEGED, OVERRIDE_XATTR_CONTAINERS,
					OVERRIDE_XATTR_FOVL};

/* One field of a value: a number in `base`, at most `max`; no sign, no space, not empty. */
static int number(const char *s, unsigned base, guint64 max, guint64 *out)
{
	if (!g_ascii_isdigit(*s))
		return -EINVAL;
	return g_ascii_string_to_unsigned(s, base, 0, max, out, NULL) ? 0 : -EINVAL;
}

/* "block-M-m[-...]" / "char-M-m[-...]" after the prefix (containers-storage ignores the rest). */
static int device(const char *s, dev_t *rdev)
{
	g_auto(GStrv) p = g_strsplit(s, "-", -1);
	guint64 maj, min;

	if (g_strv_length(p) < 2 || number(p[0], 10, 0xfffff, &maj) < 0 ||
	    number(p[1], 10, 0xfffff, &min) < 0)
		return -EINVAL;
	*rdev = makedev((unsigned)maj, (unsigned)min);
	return 0;
}

static int type_of(const char *s, mode_t *type, dev_t *rdev)
{
	static const struct {
		const char *name;
		mode_t type;
	} plain[] = {{"file", S_IFREG},
		     {"dir", S_IFDIR},
		     {"symlink", S_IFLNK},
		     {"pipe", S_IFIFO},
		     {"socket", S_IFSOCK}};

	for (size_t i = 0; i < G_N_ELEMENTS(plain); i++) {
		if (strcmp(s, plain[i].name) == 0) {
			*type = plain[i].type;
			return 0;
		}
	}
	if (g_str_has_prefix(s, "block-")) {
		*type = S_IFBLK;
		return device(s + 6, rdev);
	}
	if (g_str_has_prefix(s, "char-")) {
		*type = S_IFCHR;
		return device(s + 5, rdev);
	}
	return -EINVAL;
}

static bool valid_type(mode_t t)
{
	return t == 0 || t == S_IFREG || t == S_IFDIR || t == S_IFLNK || t == S_IFIFO ||
	       t == S_IFSOCK || t == S_IFCHR || t == S_IFBLK;
}

int override_decode(const char *val, size_t len, struct override *o)
{
	if (len == 0 || len >= OVERRIDE_VALUE_MAX || memchr(val, '\0', len))
		return -EINVAL;
	g_autofree char *s = g_strndup(val, len);
	g_auto(GStrv) f = g_strsplit(s, ":", -1);
	guint n = g_strv_length(f);
	guint64 uid, gid, mode;

	if (n < 3 || n > 4 || number(f[0], 10, UINT32_MAX, &uid) < 0 ||
	    number(f[1], 10, UINT32_MAX, &gid) < 0 || number(f[2], 8, 0177777, &mode) < 0)
		return -EINVAL;
	struct override out = {.uid = (uint32_t)uid, .gid = (uint32_t)gid, .mode = (mode_t)mode};
	if (!valid_type(out.mode & S_IFMT))
		return -EINVAL;
	if (n == 4) {
		mode_t t = 0;
		if (type_of(f[3], &t, &out.rdev) < 0)
			return -EINVAL;
		if ((out.mode & S_IFMT) && (out.mode & S_IFMT) != t)
			return -EINVAL; /* two types that disagree */
		out.mode = (out.mode & 07777) | t;
	}
	*o = out;
	return 0;
}

size_t override_encode(const struct override *o, char *buf)
{
	char type[32];

	switch (o->mode & S_IFMT) {
	case S_IFDIR:
		strcpy(type, "dir");
		break;
	case S_IFLNK:
		strcpy(type, "symlink");
		break;
	case S_IFIFO:
		strcpy(type, "pipe");
		break;
	case S_IFSOCK:
		strcpy(type, "socket");
		break;
	case S_IFCHR:
	case S_IFBLK:
		snprintf(type, sizeof(type), "%s-%u-%u", S_ISCHR(o->mode) ? "char" : "block",
			 major(o->rdev), minor(o->rdev));
		break;
	default:
		strcpy(type, "file");
	}
	int n = snprintf(buf, OVERRIDE_VALUE_MAX, "%u:%u:%04o:%s", o->uid, o->gid,
			 (unsigned)(o->mode & 07777), type);
	return (size_t)n;
}

bool override_is_name(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(all_names); i++) {
		if (strcmp(name, all_names[i]) == 0)
			return true;
	}
	return false;
}

void override_to_stat(const struct override *o, struct stat *st)
{
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	mode_t type = st->st_mode & S_IFMT;
	if (S_ISREG(st->st_mode) && (o->mode & S_IFMT)) {
		type = o->mode & S_IFMT;
		if (S_ISCHR(type) || S_ISBLK(type))
			st->st_rdev = o->rdev;
	}
	st->st_mode = type | (o->mode & 07777);
}

bool override_on(const struct plyfs *fs)
{
	return fs->override_write != NULL;
}

bool override_holds(const struct plyfs *fs, mode_t mode)
{
	if (!override_on(fs) || S_ISLNK(mode))
		return false;
	return S_ISREG(mode) || S_ISDIR(mode) || !g_str_has_prefix(fs->override_write, "user.");
}

/* Adds `name` to the names read, once. */
static void add_read(struct plyfs *fs, const char *name)
{
	for (unsigned i = 0; i < fs->n_override_read; i++) {
		if (fs->override_read[i] == name)
			return;
	}
	fs->override_read[fs->n_override_read++] = name;
}

int override_setup(struct plyfs *fs)
{
	int xp = fs->params->xattr_permissions;
	if (xp == 0)
		return 0;
	fs->override_write = xp == 1 ? OVERRIDE_XATTR_PRIVILEGED : OVERRIDE_XATTR_CONTAINERS;
	add_read(fs, fs->override_write);
	/* fuse-overlayfs' probe: a layer whose root carries a name is read with it. */
	for (size_t l = 0; l < fs->n_layers; l++) {
		for (size_t i = 0; i < G_N_ELEMENTS(all_names); i++) {
			if (layer_getxattr(fs->layers[l].root_fd, NULL, all_names[i], NULL, 0) >= 0)
				add_read(fs, all_names[i]);
		}
	}
	if (!fs->has_upper)
		return 0;
	int root = fs->layers[0].root_fd;
	if (layer_getxattr(root, NULL, fs->override_write, NULL, 0) >= 0)
		return 0;
	struct stat st;
	int r = layer_fstat(root, &st);
	if (r < 0)
		return r;
	struct override o;
	override_get(fs, root, NULL, &st, &o);
	return override_set(fs, root, NULL, &o);
}

/* The entry's override value, decoded: 0, -ENODATA (none), -EINVAL (reported). */
static int read_value(struct plyfs *fs, int dirfd, const char *name, struct override *o)
{
	for (unsigned i = 0; i < fs->n_override_read; i++) {
		char buf[OVERRIDE_VALUE_MAX];
		ssize_t len = layer_getxattr(dirfd, name, fs->override_read[i], buf, sizeof(buf));
		if (len == -ENODATA)
			continue;
		if (len < 0 && len != -ERANGE)
			return (int)len; /* ENOTSUP, EPERM (a symlink): no value */
		if (len < 0 || override_decode(buf, (size_t)len, o) < 0) {
			ovl_xattr_report_invalid(fs, fs->override_read[i], -1, name ? name : "",
						 EINVAL);
			return -EINVAL;
		}
		return 0;
	}
	return -ENODATA;
}

void override_stat(struct plyfs *fs, int dirfd, const char *name, struct stat *st)
{
	struct override o;
	if (override_on(fs) && !S_ISLNK(st->st_mode) && read_value(fs, dirfd, name, &o) == 0)
		override_to_stat(&o, st);
}

void override_get(struct plyfs *fs, int dirfd, const char *name, const struct stat *st,
		  struct override *o)
{
	if (!S_ISLNK(st->st_mode) && read_value(fs, dirfd, name, o) == 0) {
		/* The type is the entry's own unless it stands in for another one. */
		if (!(S_ISREG(st->st_mode) && (o->mode & S_IFMT)))
			o->mode = (st->st_mode & S_IFMT) | (o->mode & 07777);
		return;
	}
	*o = (struct override){
		.uid = st->st_uid, .gid = st->st_gid, .mode = st->st_mode, .rdev = st->st_rdev};
}

int override_set(struct plyfs *fs, int dirfd, const char *name, const struct override *o)
{
	if (!override_holds(fs, o->mode))
		return 0;
	char buf[OVERRIDE_VALUE_MAX];
	size_t len = override_encode(o, buf);
	return layer_setxattr(dirfd, name, fs->override_write, buf, len, 0);
}
