// SPDX-License-Identifier: GPL-2.0-or-later
/* layer_check.c - opening the layers at mount time and refusing setups that cannot work. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "autofd.h"
#include "layer.h"
#include "params.h"

/* A layer path as the user gave it, canonicalised: relative paths against the current directory
 * (before the daemon forks and chdirs to /), symlinks in the path followed once, here. */
struct named_path {
	const char *what; /* "lowerdir", "upperdir", "workdir", "mountpoint" */
	const char *given;
	char *real; /* g_malloc'd */
	struct stat st;
};

static int resolve_dir(struct named_path *np, char **err)
{
	char *r = realpath(np->given, NULL);
	if (!r) {
		int e = errno;
		*err = g_strdup_printf("%s '%s': %s", np->what, np->given, g_strerror(e));
		return -e;
	}
	np->real = g_strdup(r);
	free(r);
	if (stat(np->real, &np->st) < 0) {
		int e = errno;
		*err = g_strdup_printf("%s '%s': %s", np->what, np->given, g_strerror(e));
		return -e;
	}
	if (!S_ISDIR(np->st.st_mode)) {
		*err = g_strdup_printf("%s '%s': not a directory", np->what, np->given);
		return -ENOTDIR;
	}
	return 0;
}

/* Is `inner` equal to `outer` or below it? Both canonical. */
static bool path_inside(const char *inner, const char *outer)
{
	size_t n = strlen(outer);
	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

static int refuse_overlap(const struct named_path *a, const struct named_path *b, char **err)
{
	if (path_inside(a->real, b->real)) {
		*err = g_strdup_printf(
			"%s '%s' is inside %s '%s': overlapping layers are not supported", a->what,
			a->given, b->what, b->given);
		return -EINVAL;
	}
	return 0;
}

/* The pairs kernel overlayfs refuses too (mountpoint inside a layer; upper and work inside a lower
 * or the reverse; work inside upper or the reverse). Lowers may overlap each other (read-only). */
static int check_overlaps(struct named_path *paths, size_t n, char **err)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			if (i == j)
				continue;
			bool i_low = strcmp(paths[i].what, "lowerdir") == 0;
			bool j_low = strcmp(paths[j].what, "lowerdir") == 0;
			if (i_low && j_low)
				continue;
			/* Layers below the mountpoint are fine: the daemon holds their fds. */
			if (strcmp(paths[j].what, "mountpoint") == 0)
				continue;
			int r = refuse_overlap(&paths[i], &paths[j], err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* FS_IOC_GETFSUUID (Linux 6.7); Debian bookworm's headers predate it. */
struct fsuuid2 {
	unsigned char len;
	unsigned char uuid[16];
};
#ifndef FS_IOC_GETFSUUID
#define FS_IOC_GETFSUUID _IOR(0x15, 0, struct fsuuid2)
#endif

/* The filesystem's uuid, where it has one that is not all zeroes. */
static void read_uuid(struct layer *l)
{
	autofd int fd = layer_reopen(l->root_fd, O_RDONLY | O_DIRECTORY);
	struct fsuuid2 u = {0};
	if (fd >= 0 && ioctl(fd, FS_IOC_GETFSUUID, &u) == 0 && u.len == 16) {
		static const unsigned char null[16];
		memcpy(l->uuid, u.uuid, 16);
		l->uuid_ok = memcmp(u.uuid, null, 16) != 0;
	}
}

/* Numbers the layers' filesystems as kernel overlayfs does: fsid 0 is the upper's, also when
 * there is no upper (the kernel reserves it), then each new filesystem of the lowers in order. */
static void assign_fsids(struct layer *layers, size_t n)
{
	unsigned next = n > 0 && layers[0].upper ? 0 : 1;
	for (size_t i = 0; i < n; i++) {
		layers[i].fsid = next;
		for (size_t j = 0; j < i; j++) {
			if (layers[j].dev == layers[i].dev) {
				layers[i].fsid = layers[j].fsid;
				break;
			}
		}
		if (layers[i].fsid == next)
			next++;
	}
}

unsigned layers_xino_bits(const struct layer *layers, size_t n)
{
	unsigned max = 0, min = UINT_MAX;
	for (size_t i = 0; i < n; i++) {
		max = layers[i].fsid > max ? layers[i].fsid : max;
		min = layers[i].fsid < min ? layers[i].fsid : min;
	}
	if (n == 0 || max == min)
		return 0; /* one filesystem: real inode numbers, as the kernel's "same fs" */
	unsigned bits = 0;
	while ((1u << bits) <= max)
		bits++;
	return bits;
}

static void paths_free(struct named_path *paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g_free(paths[i].real);
	g_free(paths);
}

static int collect_paths(const struct plyfs_params *p, struct named_path **out, size_t *n_out,
			 char **err)
{
	size_t n = p->n_lower + (p->upperdir ? 2 : 0) + 1;
	struct named_path *paths = g_new0(struct named_path, n);
	size_t k = 0;
	if (p->upperdir) {
		paths[k++] = (struct named_path){.what = "upperdir", .given = p->upperdir};
		paths[k++] = (struct named_path){.what = "workdir", .given = p->workdir};
	}
	for (size_t i = 0; i < p->n_lower; i++)
		paths[k++] = (struct named_path){.what = "lowerdir", .given = p->lowerdirs[i]};
	paths[k++] = (struct named_path){.what = "mountpoint", .given = p->mountpoint};

	for (size_t i = 0; i < n; i++) {
		int r = resolve_dir(&paths[i], err);
		if (r < 0) {
			paths_free(paths, n);
			return r;
		}
	}
	*out = paths;
	*n_out = n;
	return 0;
}

/* A directory opened as a layer or the workdir: its (dev, ino), and what it was given as. */
struct opened {
	const struct named_path *np;
	dev_t dev;
	ino_t ino;
};

/*
 * The same directory given twice, as the same path or another one (a symlink, a bind mount):
 * refused with ELOOP, as kernel overlayfs does ("conflicting lowerdir path"). Compared by the
 * opened roots, so no path spelling gets past it. Adds `fd` to `seen` (room for every path).
 */
static int refuse_twice(struct opened *seen, size_t *n_seen, int fd, const struct named_path *np,
			char **err)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		*err = g_strdup_printf("%s '%s': %s", np->what, np->given, g_strerror(e));
		return -e;
	}
	for (size_t i = 0; i < *n_seen; i++) {
		if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino) {
			*err = g_strdup_printf("%s '%s' is the same directory as %s '%s': a layer "
					       "may be given only once",
					       np->what, np->given, seen[i].np->what,
					       seen[i].np->given);
			return -ELOOP;
		}
	}
	seen[(*n_seen)++] = (struct opened){.np = np, .dev = st.st_dev, .ino = st.st_ino};
	return 0;
}

static int open_layer(struct layer *l, const struct named_path *np, int index, char **err)
{
	int fd = open(np->real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		*err = g_strdup_printf("%s '%s': %s", np->what, np->given, g_strerror(e));
		return -e;
	}
	*l = (struct layer){
		.index = index,
		.root_fd = fd,
		.path = g_strdup(np->real),
		.dev = np->st.st_dev,
		.upper = strcmp(np->what, "upperdir") == 0,
	};
	return 0;
}

/* True when mount `mnt_id` is listed in /proc/self/mountinfo with "idmapped" among its per-mount
 * options (field 6; the kernel adds it for a mount with MOUNT_ATTR_IDMAP, since Linux 5.12). */
static bool mount_is_idmapped(const char *mountinfo, uint64_t mnt_id)
{
	g_auto(GStrv) lines = g_strsplit(mountinfo, "\n", -1);
	for (size_t i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], " ", 7);
		guint64 id;
		if (g_strv_length(f) < 6 ||
		    !g_ascii_string_to_unsigned(f[0], 10, 0, G_MAXUINT64, &id, NULL) ||
		    id != mnt_id)
			continue;
		g_auto(GStrv) opts = g_strsplit(f[5], ",", -1);
		return g_strv_contains((const gchar *const *)opts, "idmapped");
	}
	return false;
}

/* containers-storage gives the mount program the lowers through id-mapped mounts of its own and
 * detaches them once it returns: they are recognised now, by the layer fds that keep them. */
static void mark_idmapped(const struct plyfs_params *p, struct layer *layers, size_t n)
{
	g_autofree char *mountinfo = NULL;
	if ((p->uidmap.n == 0 && p->gidmap.n == 0) ||
	    !g_file_get_contents("/proc/self/mountinfo", &mountinfo, NULL, NULL))
		return;
	for (size_t i = 0; i < n; i++) {
		if (!layers[i].upper && layer_mnt_id(layers[i].root_fd, &layers[i].mnt_id) == 0)
			layers[i].idmapped = mount_is_idmapped(mountinfo, layers[i].mnt_id);
	}
}

bool layers_fd_idmapped(const struct layer *layers, size_t n, int fd)
{
	size_t i = 0;
	while (i < n && !layers[i].idmapped)
		i++;
	uint64_t id;
	if (i == n || layer_mnt_id(fd, &id) < 0)
		return false;
	for (; i < n; i++) {
		if (layers[i].idmapped && layers[i].mnt_id == id)
			return true;
	}
	return false;
}

int layers_open(const struct plyfs_params *p, struct layer **layers_out, size_t *n_out,
		int *work_fd, char **err)
{
	struct named_path *paths;
	size_t n_paths;
	int r = collect_paths(p, &paths, &n_paths, err);
	if (r < 0)
		return r;
	r = check_overlaps(paths, n_paths, err);
	if (r == 0 && p->upperdir && paths[0].st.st_dev != paths[1].st.st_dev) {
		*err = g_strdup_printf(
			"workdir '%s' and upperdir '%s' are on different filesystems", p->workdir,
			p->upperdir);
		r = -EXDEV;
	}

	size_t n_layers = p->n_lower + (p->upperdir ? 1 : 0);
	struct layer *layers = g_new0(struct layer, n_layers);
	size_t opened = 0, n_seen = 0;
	g_autofree struct opened *seen = g_new0(struct opened, n_paths);
	autofd int wfd = -1;
	for (size_t i = 0; r == 0 && i < n_paths - 1; i++) {
		if (strcmp(paths[i].what, "workdir") == 0) {
			wfd = open(paths[i].real, O_PATH | O_DIRECTORY | O_CLOEXEC);
			r = wfd < 0 ? -errno : 0;
			if (r < 0)
				*err = g_strdup_printf("workdir '%s': %s", p->workdir,
						       g_strerror(-r));
			else
				r = refuse_twice(seen, &n_seen, wfd, &paths[i], err);
			continue;
		}
		r = open_layer(&layers[opened], &paths[i], (int)opened, err);
		if (r == 0)
			r = refuse_twice(seen, &n_seen, layers[opened++].root_fd, &paths[i], err);
	}
	paths_free(paths, n_paths);
	if (r < 0) {
		layers_close(layers, opened);
		return r;
	}
	assign_fsids(layers, n_layers);
	for (size_t i = 0; i < n_layers; i++)
		read_uuid(&layers[i]);
	mark_idmapped(p, layers, n_layers);
	*layers_out = layers;
	*n_out = n_layers;
	*work_fd = steal_fd(&wfd);
	return 0;
}

void layers_close(struct layer *layers, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (layers[i].root_fd >= 0)
			close(layers[i].root_fd);
		g_free(layers[i].path);
	}
	g_free(layers);
}
