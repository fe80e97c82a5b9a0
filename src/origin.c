// SPDX-License-Identifier: GPL-2.0-or-later
/* origin.c - copy-up origins, impure markers and the uuid rules (see origin.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "autofd.h"
#include "errors.h"
#include "index.h"
#include "log.h"
#include "origin.h"
#include "ovl_xattr.h"

static char *xname(const struct plyfs *fs, const char *suffix)
{
	return g_strconcat(fs->xattr_prefix, suffix, NULL);
}

static bool uuid_is_null(const unsigned char *u)
{
	static const unsigned char null[16];
	return memcmp(u, null, 16) == 0;
}

/* The uuid an origin from `layer` carries (and must carry to be decoded there). */
static const unsigned char *origin_uuid(const struct plyfs *fs, int layer)
{
	static const unsigned char null[16];
	return fs->uuid == UUID_OFF ? null : fs->layers[layer].uuid;
}

int origin_encode(const struct plyfs *fs, int layer, int dirfd, const char *name,
		  struct origin_fh *fh)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[OVL_FB_FID_MAX];
	} h = {.fh.handle_bytes = OVL_FB_FID_MAX};
	int r = layer_name_to_handle(dirfd, name, &h.fh);
	if (r == -EOPNOTSUPP || r == -ENOTSUP) {
		fh->len = 0; /* no handles here: the kernel's "null" origin */
		return 0;
	}
	if (r < 0)
		return r;
	unsigned char *fb = fh->fb;
	fh->len = OVL_FB_HEADER_LEN + h.fh.handle_bytes;
	fb[0] = OVL_FB_VERSION;
	fb[1] = OVL_FB_MAGIC;
	fb[2] = (unsigned char)fh->len;
	fb[3] = OVL_FB_FLAG_CPU_ENDIAN;
	fb[4] = (unsigned char)h.fh.handle_type;
	memcpy(fb + 5, origin_uuid(fs, layer), 16);
	memcpy(fb + OVL_FB_HEADER_LEN, h.fh.f_handle, h.fh.handle_bytes);
	return 0;
}

char *origin_hex(const struct origin_fh *fh)
{
	GString *s = g_string_sized_new(fh->len * 2);
	for (size_t i = 0; i < fh->len; i++)
		g_string_append_printf(s, "%02x", fh->fb[i]);
	return g_string_free(s, FALSE);
}

/* A metadata write the upper refused where kernel overlayfs goes on without it (an upper without
 * xattrs): noted (errors.h), not an error. */
static int refused_write(int r, const char *x, int dirfd)
{
	if (r == -ENOTSUP || r == -EOPNOTSUPP) {
		errors_note_metadata_write(-r, x, dirfd);
		return 0;
	}
	return r;
}

int origin_set(struct plyfs *fs, int dirfd, const char *name, mode_t type,
	       const struct origin_fh *fh)
{
	/* user.* xattrs on a symlink or a device node: refused (EPERM), the kernel goes on. */
	if (!fs->is_root && !S_ISREG(type) && !S_ISDIR(type))
		return 0;
	g_autofree char *x = xname(fs, OVL_XATTR_ORIGIN_SUFFIX);
	int r = layer_setxattr(dirfd, name, x, fh->fb, fh->len, 0);
	return r == -EPERM ? 0 : refused_write(r, x, dirfd);
}

int origin_set_impure(struct plyfs *fs, int dirfd)
{
	if (origin_is_impure(fs, dirfd))
		return 0;
	g_autofree char *x = xname(fs, OVL_XATTR_IMPURE_SUFFIX);
	int r = layer_setxattr(dirfd, NULL, x, OVL_XATTR_YES, 1, 0);
	/* No xattrs on the upper: no origins nor redirects either (the kernel's rule). */
	return refused_write(r, x, dirfd);
}

bool origin_is_impure(struct plyfs *fs, int dirfd)
{
	g_autofree char *x = xname(fs, OVL_XATTR_IMPURE_SUFFIX);
	char v;
	return layer_getxattr(dirfd, NULL, x, &v, 1) == 1 && v == OVL_XATTR_YES[0];
}

void origin_clear_impure(struct plyfs *fs, int dirfd)
{
	g_autofree char *x = xname(fs, OVL_XATTR_IMPURE_SUFFIX);
	layer_removexattr(dirfd, NULL, x);
}

bool origin_of_node(const struct plyfs *fs, const struct node *n)
{
	const struct node_stack *s = node_stack(n);
	if (s->n == 0)
		return false;
	if (s->n > 1 || !fs->layers[s->l[0].layer].upper)
		return true;
	return n->key.dev != s->l[0].dev || n->key.ino != s->l[0].ino;
}

int origin_get(struct plyfs *fs, int dirfd, const char *name, struct origin_fh *fh)
{
	g_autofree char *x = xname(fs, OVL_XATTR_ORIGIN_SUFFIX);
	ssize_t len = layer_getxattr(dirfd, name, x, fh->fb, sizeof(fh->fb));
	if (len == -ENODATA || len == -ENOTSUP || len == -EOPNOTSUPP)
		return -ENODATA;
	if (len == -ERANGE)
		return -EINVAL; /* longer than any handle the kernel writes */
	if (len < 0)
		return (int)len;
	struct ovl_fb_info info;
	int r = ovl_origin_decode(fh->fb, len, &info);
	if (r == -ENODATA)
		return -ESTALE;
	if (r < 0)
		return r;
	fh->len = (size_t)fh->fb[2]; /* the kernel compares its own length's worth */
	return 0;
}

bool origin_matches(const struct plyfs *fs, const struct origin_fh *fh, int layer, int dirfd,
		    const char *name)
{
	struct origin_fh here;
	return origin_encode(fs, layer, dirfd, name, &here) == 0 && here.len == fh->len &&
	       memcmp(here.fb, fh->fb, fh->len) == 0;
}

/* May origins of `layer` be decoded, and does fh carry its uuid? */
static bool uuid_fits(const struct plyfs *fs, int layer, const struct origin_fh *fh)
{
	const struct layer *l = &fs->layers[layer];
	return !l->upper && !l->bad_uuid && memcmp(fh->fb + 5, origin_uuid(fs, layer), 16) == 0;
}

int origin_decode(struct plyfs *fs, const struct origin_fh *fh, mode_t type, struct node_key *key)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[OVL_FB_FID_MAX];
	} h = {.fh.handle_bytes = (unsigned)(fh->len - OVL_FB_HEADER_LEN),
	       .fh.handle_type = fh->fb[4]};
	if (fh->len < OVL_FB_HEADER_LEN || fh->len - OVL_FB_HEADER_LEN > OVL_FB_FID_MAX)
		return -ESTALE;
	memcpy(h.fh.f_handle, fh->fb + OVL_FB_HEADER_LEN, h.fh.handle_bytes);
	for (size_t i = 0; i < fs->n_layers; i++) {
		if (!uuid_fits(fs, (int)i, fh))
			continue;
		bool tried = false; /* one try per filesystem */
		for (size_t j = 0; j < i && !tried; j++)
			tried = uuid_fits(fs, (int)j, fh) && fs->layers[j].dev == fs->layers[i].dev;
		if (tried)
			continue;
		/* open_by_handle_at takes no O_PATH fd for the filesystem: the root reopened. */
		autofd int mnt = layer_reopen(fs->layers[i].root_fd, O_RDONLY | O_DIRECTORY);
		autofd int fd = mnt < 0 ? mnt : layer_open_by_handle(mnt, &h.fh, O_PATH);
		if (fd == -EPERM)
			return -ESTALE; /* no CAP_DAC_READ_SEARCH: nothing can be decoded */
		struct stat st;
		if (fd < 0 || layer_fstat(fd, &st) < 0)
			continue;
		if ((st.st_mode & S_IFMT) != type)
			return -ESTALE; /* the kernel's "invalid origin (ftype ...)": ignored */
		*key = (struct node_key){.dev = st.st_dev, .ino = st.st_ino};
		return 0;
	}
	return -ESTALE;
}

int origin_legacy_get(struct plyfs *fs, int dirfd, const char *name, struct node_key *key)
{
	const char *prefix = fs->is_root ? PLYFS_XATTR_TRUSTED_PREFIX : PLYFS_XATTR_PREFIX;
	g_autofree char *x = g_strconcat(prefix, PLYFS_XATTR_ORIGIN_SUFFIX, NULL);
	char val[64];
	ssize_t len = layer_getxattr(dirfd, name, x, val, sizeof(val));
	if (len == -ERANGE)
		return -EINVAL; /* far longer than "<16 hex>:<16 hex>": not one of ours */
	if (len == -ENOTSUP || len == -EOPNOTSUPP)
		return -ENODATA;
	if (len < 0)
		return (int)len;
	uint64_t dev, ino;
	int r = ovl_plyfs_origin_decode(val, len, &dev, &ino);
	if (r == 0)
		*key = (struct node_key){.dev = (dev_t)dev, .ino = (ino_t)ino};
	return r;
}

/* --- at mount --- */

/* One filesystem of the layers, in the order the kernel meets them (its ofs->fs[]). */
struct layer_fs {
	dev_t dev;
	const unsigned char *uuid;
	bool is_lower;
	bool bad;
};

unsigned origin_mark_bad_uuids(struct layer *layers, size_t n_layers, bool has_upper)
{
	/* plyfs follows and writes redirects (the kernel's redirect_dir=on), so offline changes to
	 * the lowers are never allowed and a null uuid alone is never bad. */
	const bool offline_changes = false;
	g_autoptr(GArray) all = g_array_new(FALSE, TRUE, sizeof(struct layer_fs));
	guint *which = g_new0(guint, n_layers);
	for (size_t i = 0; i < n_layers; i++) {
		struct layer *l = &layers[i];
		guint k = 0;
		while (k < all->len && g_array_index(all, struct layer_fs, k).dev != l->dev)
			k++;
		if (k == all->len) {
			struct layer_fs e = {.dev = l->dev, .uuid = l->uuid};
			/* Without an upper (and no NFS export) nothing is decoded: no check. */
			if (!l->upper && has_upper) {
				e.bad = offline_changes && uuid_is_null(l->uuid);
				for (guint j = 0; j < all->len; j++) {
					struct layer_fs *o =
						&g_array_index(all, struct layer_fs, j);
					if (o->is_lower && memcmp(o->uuid, l->uuid, 16) == 0)
						o->bad = e.bad = true;
				}
			}
			g_array_append_val(all, e);
		}
		if (!l->upper)
			g_array_index(all, struct layer_fs, k).is_lower = true;
		which[i] = k;
	}
	/* Origins on the upper's own filesystem are always decoded (the kernel's fsid 0). */
	guint upper_fs = has_upper ? 0 : G_MAXUINT;
	for (size_t i = 0; i < n_layers; i++)
		layers[i].bad_uuid = !layers[i].upper && which[i] != upper_fs &&
				     g_array_index(all, struct layer_fs, which[i]).bad;
	g_free(which);
	return all->len + (has_upper ? 0 : 1); /* the kernel reserves fs 0 for an upper */
}

static void index_off(struct plyfs *fs, const char *why, const char *path)
{
	if (fs->index_dirfd < 0)
		return;
	log_msg(LOG_WARNING, "%s (%s): the hard-link index is off for this mount", why, path);
	close(fs->index_dirfd);
	fs->index_dirfd = -1;
}

/* uuid=on / auto: the overlay's persistent uuid on the upper root (ovl_init_uuid_xattr()). */
static void init_uuid_xattr(struct plyfs *fs)
{
	int root = fs->layers[0].root_fd;
	g_autofree char *x = xname(fs, OVL_XATTR_UUID_SUFFIX);
	unsigned char u[16];
	ssize_t len = layer_getxattr(root, NULL, x, u, sizeof(u));
	if (len == 16)
		return;
	if (len == -ENODATA && fs->uuid == UUID_AUTO) {
		g_autofree char *imp = xname(fs, OVL_XATTR_IMPURE_SUFFIX);
		len = layer_getxattr(root, NULL, imp, NULL, 0);
		if (len > 0) {
			fs->uuid = UUID_NULL; /* an upper used before: no uuid, as the kernel */
			return;
		}
		if (len == -ENODATA)
			fs->uuid = UUID_ON; /* a new upper */
	}
	bool made = len == -ENODATA && getrandom(u, sizeof(u), 0) == sizeof(u);
	if (made) {
		u[6] = (unsigned char)((u[6] & 0x0f) |
				       0x40); /* a version 4 uuid: the kernel's uuid_gen() */
		u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	}
	int r = made ? layer_setxattr(root, NULL, x, u, sizeof(u), 0)
		     : (len < 0 ? (int)len : -EINVAL);
	if (r < 0) {
		log_msg(LOG_WARNING, "failed to %s the upper's uuid (%s, err=%d); uuid=null",
			len == -ENODATA ? "set" : "get", fs->layers[0].path, r);
		fs->uuid = UUID_NULL;
	}
}

/* Sets, or compares with, the handle xattr `suffix` of directory `dirfd`: 0 (matches or set),
 * -ESTALE (another one), -errno. */
static int verify_set_fh(struct plyfs *fs, int dirfd, const char *suffix,
			 const struct origin_fh *want)
{
	g_autofree char *x = xname(fs, suffix);
	unsigned char have[OVL_FB_MAX];
	ssize_t len = layer_getxattr(dirfd, NULL, x, have, sizeof(have));
	if (len == -ENODATA)
		return layer_setxattr(dirfd, NULL, x, want->fb, want->len, 0);
	if (len < 0)
		return (int)len;
	return (size_t)len == want->len && memcmp(have, want->fb, want->len) == 0 ? 0 : -ESTALE;
}

/* With the index: the upper root's origin is the top lower root's, and the index directory names
 * the upper root in "upper" (ovl_get_indexdir()). */
static void check_root_origin(struct plyfs *fs)
{
	if (fs->index_dirfd < 0 || fs->n_layers < 2)
		return;
	struct origin_fh want;
	if (origin_encode(fs, 1, fs->layers[1].root_fd, NULL, &want) < 0 || want.len == 0)
		return;
	int root = fs->layers[0].root_fd;
	if (verify_set_fh(fs, root, OVL_XATTR_ORIGIN_SUFFIX, &want) < 0) {
		index_off(fs,
			  "the upper root's origin is not the lower root's (was the upper used "
			  "with other lower layers?)",
			  fs->layers[0].path);
		return;
	}
	/* The upper root's own handle, marked as an upper one. */
	struct origin_fh up;
	if (origin_encode(fs, 0, root, NULL, &up) < 0 || up.len == 0)
		return;
	up.fb[3] |= OVL_FB_FLAG_PATH_UPPER;
	if (verify_set_fh(fs, fs->index_dirfd, OVL_XATTR_UPPER_SUFFIX, &up) < 0)
		index_off(fs, "the index does not belong to this upper layer", fs->layers[0].path);
}

void origin_mount_init(struct plyfs *fs)
{
	fs->uuid = fs->params->uuid;
	unsigned numfs = origin_mark_bad_uuids(fs->layers, fs->n_layers, fs->has_upper);
	for (size_t i = 0; i < fs->n_layers; i++) {
		if (fs->layers[i].bad_uuid)
			index_off(fs,
				  uuid_is_null(fs->layers[i].uuid)
					  ? "null uuid in a lower filesystem"
					  : "conflicting uuid in a lower "
					    "filesystem",
				  fs->layers[i].path);
	}
	/* A lower filesystem without file handles: no index at all (the kernel's ovl_lower_dir()).
	 */
	for (size_t i = 0; i < fs->n_layers && fs->index_dirfd >= 0; i++) {
		struct origin_fh fh;
		if (!fs->layers[i].upper &&
		    origin_encode(fs, (int)i, fs->layers[i].root_fd, NULL, &fh) == 0 && fh.len == 0)
			index_off(fs, "a lower filesystem without file handles",
				  fs->layers[i].path);
	}
	if (fs->uuid == UUID_OFF && numfs > 1) {
		log_msg(LOG_WARNING,
			"uuid=off needs a single filesystem for all layers: uuid=null");
		fs->uuid = UUID_NULL;
	}
	if (!fs->has_upper) {
		if (fs->uuid == UUID_ON)
			fs->uuid = UUID_NULL; /* "uuid=on requires an upper fs" */
		return;
	}
	if (fs->uuid == UUID_ON || fs->uuid == UUID_AUTO)
		init_uuid_xattr(fs);
	check_root_origin(fs);
}
