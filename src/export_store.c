// SPDX-License-Identifier: GPL-2.0-or-later
/* export_store.c - the node table's records across mounts (see export_store.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "autofd.h"
#include "export_store.h"
#include "log.h"

/*
 * The format, in host byte order (the file belongs to this machine's workdir):
 *   "PLYFSHD1"  u32 version  u32 n_layers  u64 next_id  u64 count
 *   n_layers * (16 bytes: the filesystem's uuid, or its st_dev and 8 zero bytes where it has
 *               none; u64 root inode)          the layer roots, upper first
 *   count * (u64 nodeid, u64 parent, u32 fsid, u64 ino, u32 check, u32 generation, u32 type,
 *            u16 name length, name bytes)          check: node_key.check (0: unknown)
 *   32 bytes: SHA-256 of everything before
 * An identity's device is stored as the layer's fsid (struct layer), so that a store outlives a
 * reboot that numbers the devices anew, where the layers' filesystems have uuids.
 */
#define STORE_MAGIC	"PLYFSHD1"
#define STORE_VERSION	1
#define STORE_TMP	PLYFS_HANDLES_NAME ".tmp"
#define STORE_MAX_BYTES (1ULL << 30) /* ~3 million entries with long names */
#define SHA256_LEN	32

struct reader {
	const guint8 *p;
	size_t left;
};

static bool take(struct reader *r, void *out, size_t len)
{
	if (r->left < len)
		return false;
	memcpy(out, r->p, len);
	r->p += len;
	r->left -= len;
	return true;
}

#define TAKE(r, v) take((r), &(v), sizeof(v))

static void put(GByteArray *b, const void *p, size_t len)
{
	g_byte_array_append(b, p, (guint)len);
}

#define PUT(b, v) put((b), &(v), sizeof(v))

/* The filesystem and inode of every layer root: what the store was written for. */
static GByteArray *layer_fingerprint(struct plyfs *fs)
{
	GByteArray *b = g_byte_array_new();
	for (size_t i = 0; i < fs->n_layers; i++) {
		const struct layer *l = &fs->layers[i];
		struct stat st = {0};
		layer_fstat(l->root_fd, &st);
		guint8 id[16] = {0};
		uint64_t dev = l->dev, ino = st.st_ino;
		if (l->uuid_ok)
			memcpy(id, l->uuid, 16);
		else
			memcpy(id, &dev, sizeof(dev));
		put(b, id, sizeof(id));
		PUT(b, ino);
	}
	return b;
}

/* The fsid of the layers' filesystem `dev`; false for a device no layer root is on (a mount
 * inside a layer). `hint` caches the last answer: nearly all entries share one device. */
static bool fsid_of(const struct plyfs *fs, dev_t dev, uint32_t *fsid, size_t *hint)
{
	for (size_t k = 0; k < fs->n_layers; k++) {
		size_t i = (*hint + k) % fs->n_layers;
		if (fs->layers[i].dev == dev) {
			*hint = i;
			*fsid = fs->layers[i].fsid;
			return true;
		}
	}
	return false;
}

/* The device of fsid `fsid` on this mount; false when no layer has it. */
static bool dev_of(const struct plyfs *fs, uint32_t fsid, dev_t *dev)
{
	for (size_t i = 0; i < fs->n_layers; i++) {
		if (fs->layers[i].fsid == fsid) {
			*dev = fs->layers[i].dev;
			return true;
		}
	}
	return false;
}

static void sha256(const guint8 *data, size_t len, guint8 out[SHA256_LEN])
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	gsize n = SHA256_LEN;
	g_checksum_update(c, data, (gssize)len);
	g_checksum_get_digest(c, out, &n);
	g_checksum_free(c);
}

static bool valid_name(const char *name, size_t len)
{
	if (len == 0 || len > 255 || memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

static bool valid_type(uint32_t type)
{
	switch (type) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	}
	return false;
}

/* Reads one entry; false when the bytes do not make one. `name` is a buffer of 256. */
static bool read_entry(const struct plyfs *fs, struct reader *r, uint64_t next_id,
		       struct node_record_info *e, char *name)
{
	uint64_t ino;
	uint32_t fsid, check, type;
	uint16_t len;
	dev_t dev;
	if (!TAKE(r, e->nodeid) || !TAKE(r, e->parent) || !TAKE(r, fsid) || !TAKE(r, ino) ||
	    !TAKE(r, check) || !TAKE(r, e->generation) || !TAKE(r, type) || !TAKE(r, len) ||
	    len > 255 || !take(r, name, len) || !dev_of(fs, fsid, &dev))
		return false;
	name[len] = '\0';
	e->key = (struct node_key){.dev = dev, .ino = (ino_t)ino, .check = check};
	e->type = type;
	e->name = name;
	return valid_name(name, len) && valid_type(type) && e->nodeid > NODE_ROOT_ID &&
	       e->nodeid < next_id && e->parent >= NODE_ROOT_ID && e->parent < next_id;
}

/* Reads `count` entries; with `t` NULL only checks that they are well-formed, else adds them as
 * records and counts those added in *loaded. Returns why not, or NULL. */
static const char *read_entries(struct plyfs *fs, struct reader r, uint64_t count, uint64_t next_id,
				struct node_table *t, unsigned *loaded)
{
	char name[256];
	for (uint64_t i = 0; i < count; i++) {
		struct node_record_info e;
		if (!read_entry(fs, &r, next_id, &e, name))
			return "bad entry";
		if (t && node_table_add_record(t, &e))
			(*loaded)++;
	}
	return r.left == 0 ? NULL : "trailing bytes";
}

/*
 * Checks the whole store, then applies it: nothing of a store that is refused reaches the table
 * (neither its records nor its next nodeid). Returns why it was refused, or NULL.
 */
const char *export_store_parse(struct plyfs *fs, const guint8 *data, size_t len, unsigned *loaded)
{
	if (len < SHA256_LEN)
		return "too short";
	guint8 sum[SHA256_LEN];
	sha256(data, len - SHA256_LEN, sum);
	if (memcmp(sum, data + len - SHA256_LEN, SHA256_LEN) != 0)
		return "checksum mismatch (damaged or truncated)";
	struct reader r = {.p = data, .left = len - SHA256_LEN};
	char magic[8];
	uint32_t version, n_layers;
	uint64_t next_id, count;
	if (!TAKE(&r, magic) || memcmp(magic, STORE_MAGIC, 8) != 0 || !TAKE(&r, version) ||
	    version != STORE_VERSION)
		return "not a plyfs handle store of this version";
	if (!TAKE(&r, n_layers) || !TAKE(&r, next_id) || !TAKE(&r, count))
		return "short header";
	g_autoptr(GByteArray) fp = layer_fingerprint(fs);
	if (n_layers != fs->n_layers || r.left < fp->len || memcmp(r.p, fp->data, fp->len) != 0)
		return "written for other layers";
	r.p += fp->len;
	r.left -= fp->len;
	/* A mount hands out nodeids below NODE_ID_LIMIT only: a larger next nodeid was not
	 * written by plyfs, and taken over it would make the nodeids wrap to 0 and the root's. */
	if (next_id <= NODE_ROOT_ID || next_id > NODE_ID_LIMIT)
		return "bad next nodeid";
	const char *why = read_entries(fs, r, count, next_id, NULL, NULL);
	if (why)
		return why;
	if (node_table_reserve_ids(fs->nodes, next_id) < 0)
		return "bad next nodeid";
	return read_entries(fs, r, count, next_id, fs->nodes, loaded);
}

static guint8 *read_store(struct plyfs *fs, size_t *len_out, int *err)
{
	/* O_NONBLOCK: a FIFO put in its place must not hang the mount. */
	autofd int fd = layer_openat(fs->work_fd, PLYFS_HANDLES_NAME, O_RDONLY | O_NONBLOCK, 0);
	struct stat st;
	if (fd < 0 || (*err = layer_fstat(fd, &st)) < 0) {
		*err = fd < 0 ? fd : *err;
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > STORE_MAX_BYTES) {
		*err = -EINVAL;
		return NULL;
	}
	size_t len = (size_t)st.st_size, done = 0;
	guint8 *buf = g_malloc(len ? len : 1);
	while (done < len) {
		ssize_t n = layer_pread(fd, buf + done, len - done, (off_t)done);
		if (n <= 0) {
			*err = n < 0 ? (int)n : -EIO;
			g_free(buf);
			return NULL;
		}
		done += (size_t)n;
	}
	*len_out = len;
	return buf;
}

void export_store_load(struct plyfs *fs)
{
	/* This mount's generation: random, so that a nodeid another mount handed out too (its
	 * store was lost) does not decode to this mount's file. Never 0, the root's. */
	uint32_t gen;
	do
		gen = g_random_int();
	while (gen == 0);
	node_table_set_generation(fs->nodes, gen);
	if (!fs->has_upper)
		return;

	size_t len = 0;
	int err = 0;
	g_autofree guint8 *data = read_store(fs, &len, &err);
	if (!data) {
		if (err != -ENOENT)
			log_msg(LOG_WARNING,
				"%s/%s: cannot read (%s): file handles of earlier mounts "
				"are stale",
				fs->params->workdir, PLYFS_HANDLES_NAME, g_strerror(-err));
		return;
	}
	unsigned loaded = 0;
	const char *why = export_store_parse(fs, data, len, &loaded);
	if (why)
		log_msg(LOG_WARNING, "%s/%s: %s: refused, file handles of earlier mounts are stale",
			fs->params->workdir, PLYFS_HANDLES_NAME, why);
	log_debug("export store: %u records loaded, next nodeid %" G_GUINT64_FORMAT, loaded,
		  node_table_next_id(fs->nodes));
}

static GByteArray *serialize(struct plyfs *fs)
{
	g_autoptr(GArray) all = node_table_snapshot(fs->nodes);
	GByteArray *b = g_byte_array_sized_new(64 + all->len * 64u);
	uint32_t version = STORE_VERSION, n_layers = (uint32_t)fs->n_layers;
	uint64_t next_id = node_table_next_id(fs->nodes), count = 0;
	put(b, STORE_MAGIC, 8);
	PUT(b, version);
	PUT(b, n_layers);
	PUT(b, next_id);
	guint count_at = b->len;
	PUT(b, count);
	g_autoptr(GByteArray) fp = layer_fingerprint(fs);
	put(b, fp->data, fp->len);
	/* The next mount keeps at most record_max of them, the newest (last) ones. */
	struct node_table_stats st;
	node_table_stats(fs->nodes, &st);
	guint first = all->len > st.record_max ? all->len - (guint)st.record_max : 0;
	size_t hint = 0;
	for (guint i = first; i < all->len; i++) {
		const struct node_record_info *e = &g_array_index(all, struct node_record_info, i);
		uint64_t ino = e->key.ino;
		uint32_t fsid, type = e->type;
		uint16_t len = (uint16_t)strlen(e->name);
		/* Off a layer's filesystem: not findable by fsid. Past half the size limit: left
		 * out, so that the file stays loadable (the limit is far above record_max's). */
		if (!fsid_of(fs, e->key.dev, &fsid, &hint) || b->len > STORE_MAX_BYTES / 2)
			continue;
		count++;
		PUT(b, e->nodeid);
		PUT(b, e->parent);
		PUT(b, fsid);
		PUT(b, ino);
		PUT(b, e->key.check);
		PUT(b, e->generation);
		PUT(b, type);
		PUT(b, len);
		put(b, e->name, len);
	}
	memcpy(b->data + count_at, &count, sizeof(count));
	guint8 sum[SHA256_LEN];
	sha256(b->data, b->len, sum);
	put(b, sum, SHA256_LEN);
	return b;
}

static int write_all(int fd, const guint8 *p, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = layer_pwrite(fd, p + done, len - done, (off_t)done);
		if (n < 0)
			return (int)n;
		done += (size_t)n;
	}
	return 0;
}

int export_store_save(struct plyfs *fs)
{
	if (!fs->has_upper)
		return 0;
	g_autoptr(GByteArray) b = serialize(fs);
	/* A fresh file (O_EXCL), whatever a crash or somebody else left under the name. */
	layer_unlinkat(fs->work_fd, STORE_TMP, 0);
	int r;
	{
		autofd int fd =
			layer_openat(fs->work_fd, STORE_TMP, O_WRONLY | O_CREAT | O_EXCL, 0600);
		r = fd < 0 ? fd : write_all(fd, b->data, b->len);
		if (r == 0)
			r = layer_fsync(fd, false);
	}
	if (r == 0)
		r = layer_renameat2(fs->work_fd, STORE_TMP, fs->work_fd, PLYFS_HANDLES_NAME, 0);
	if (r < 0) {
		log_msg(LOG_ERR,
			"%s/%s: cannot write (%s): file handles of this mount will be stale "
			"on the next",
			fs->params->workdir, PLYFS_HANDLES_NAME, g_strerror(-r));
		layer_unlinkat(fs->work_fd, STORE_TMP, 0);
	}
	return r;
}
