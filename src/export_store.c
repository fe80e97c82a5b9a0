// SPDX-License-Identifier: GPL-2.0-or-later
/* export_store.c - the node table's records across mounts (see export_store.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "autofd.h"
#include "export_store.h"
#include "log.h"

/*
 * The format of a slot, in host byte order (the file belongs to this machine's workdir):
 *   "PLYFSHD1"  u32 version  u32 n_layers  u64 next_id  u64 count  [u64 seq: version 2]
 *   n_layers * (16 bytes: the filesystem's uuid, or its st_dev and 8 zero bytes where it has
 *               none; u64 root inode)          the layer roots, upper first
 *   count * (u64 nodeid, u64 parent, u32 fsid, u64 ino, u32 check, u32 generation, u32 type,
 *            u16 name length, name bytes)          check: node_key.check (0: unknown)
 *   32 bytes: SHA-256 of everything before
 * An identity's device is stored as the layer's fsid (struct layer), so that a store outlives a
 * reboot that numbers the devices anew, where the layers' filesystems have uuids. Version 1 is
 * the single file of plyfs before the two slots (no seq: it counts as 0, older than any slot
 * written since); it is read, never written.
 */
#define STORE_MAGIC	     "PLYFSHD1"
#define STORE_VERSION	     2
#define STORE_VERSION_SINGLE 1
#define STORE_TMP	     PLYFS_HANDLES_NAME ".tmp" /* left by version-1 daemons */
#define STORE_MAX_BYTES	     (1ULL << 30)	       /* ~3 million entries with long names */
#define STORE_SEQ_MAX	     (1ULL << 62)	       /* a larger seq was not written by plyfs */
#define SHA256_LEN	     32
/* The saver waits this many times as long as its last save took before the next one, so that
 * saving a large table while it keeps changing costs at most about a tenth of a core. */
#define SAVE_BACKOFF 9

static const char *const slot_names[2] = {PLYFS_HANDLES_NAME, PLYFS_HANDLES_NAME_2};

struct export_store {
	int fd[2];     /* the slots, open (read-write) from the mount to the exit; -1: unusable */
	bool writable; /* false for `volatile`: the slots are read at mount, never written */
	bool sync;     /* fdatasync each save (not with fsync=0) */
	unsigned interval; /* seconds between saves while mounted; 0: only at exit */

	GMutex lock;	  /* serialises saves; protects next, top_seq, last_err */
	int next;	  /* the slot the next save writes: never the one holding the newest save */
	uint64_t top_seq; /* the highest seq in either slot */
	int last_err;	  /* of the last save (a failure is logged when it changes) */
	atomic_uint_least64_t saved; /* node_table_changes() of what the newest slot holds */
	atomic_uint_least64_t saves; /* written by this mount */

	GThread *thread;  /* the periodic saver, or NULL */
	GMutex wake_lock; /* protects stop */
	GCond wake;
	bool stop;
};

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
	uint64_t next_id, count, seq;
	if (!TAKE(&r, magic) || memcmp(magic, STORE_MAGIC, 8) != 0 || !TAKE(&r, version) ||
	    (version != STORE_VERSION && version != STORE_VERSION_SINGLE))
		return "not a plyfs handle store of this version";
	if (!TAKE(&r, n_layers) || !TAKE(&r, next_id) || !TAKE(&r, count) ||
	    (version == STORE_VERSION && !TAKE(&r, seq)))
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

/* The seq of a slot's bytes when its checksum and header are sound (version 1: 0); false else. */
static bool slot_seq(const guint8 *data, size_t len, uint64_t *seq)
{
	struct reader r = {.p = data, .left = len};
	char magic[8];
	uint32_t version, n_layers;
	uint64_t next_id, count;
	guint8 sum[SHA256_LEN];
	if (len < SHA256_LEN)
		return false;
	sha256(data, len - SHA256_LEN, sum);
	if (memcmp(sum, data + len - SHA256_LEN, SHA256_LEN) != 0 || !TAKE(&r, magic) ||
	    memcmp(magic, STORE_MAGIC, 8) != 0 || !TAKE(&r, version) || !TAKE(&r, n_layers) ||
	    !TAKE(&r, next_id) || !TAKE(&r, count))
		return false;
	*seq = 0;
	if (version == STORE_VERSION_SINGLE)
		return true;
	return version == STORE_VERSION && TAKE(&r, *seq) && *seq > 0 && *seq < STORE_SEQ_MAX;
}

/* The bytes of the slot open as `fd` (NULL and *len_out 0 for an empty one), or NULL with *err. */
static guint8 *read_slot(int fd, size_t *len_out, int *err)
{
	struct stat st;
	*len_out = 0;
	if ((*err = layer_fstat(fd, &st)) < 0)
		return NULL;
	if ((uint64_t)st.st_size > STORE_MAX_BYTES) {
		*err = -EFBIG;
		return NULL;
	}
	size_t len = (size_t)st.st_size, done = 0;
	if (len == 0)
		return NULL;
	guint8 *buf = g_malloc(len);
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

/*
 * Opens slot `i` (read-write, created if missing, unless the store is read-only). Anything but a
 * regular file under its name (a FIFO, a symlink, a directory, a device) is not opened; at mount
 * it is removed and a fresh file made in its place: the only time a slot is created. Returns the
 * fd or -errno.
 */
static int open_slot(struct plyfs *fs, int i, bool writable)
{
	const char *name = slot_names[i];
	struct stat st;
	int r = layer_fstatat(fs->work_fd, name, &st);
	if (r == 0 && !S_ISREG(st.st_mode)) {
		if (!writable)
			return -EINVAL;
		r = layer_unlinkat(fs->work_fd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
		if (r < 0)
			return r;
	} else if (r < 0 && (r != -ENOENT || !writable)) {
		return r;
	}
	/* O_NONBLOCK: whatever took the name meanwhile, opening it must not hang the mount. */
	int fd = layer_openat(fs->work_fd, name,
			      (writable ? O_RDWR | O_CREAT : O_RDONLY) | O_NONBLOCK, 0600);
	if (fd >= 0 && (layer_fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Loads the slot `i`'s bytes into the table; false (logged) when they are refused. */
static bool load_slot(struct plyfs *fs, int i, const guint8 *data, size_t len)
{
	unsigned loaded = 0;
	const char *why = export_store_parse(fs, data, len, &loaded);
	if (why)
		log_msg(LOG_WARNING, "%s/%s: %s: refused, file handles of earlier mounts are stale",
			fs->params->workdir, slot_names[i], why);
	else
		log_debug("export store: %s: %u records loaded, next nodeid %" G_GUINT64_FORMAT,
			  slot_names[i], loaded, node_table_next_id(fs->nodes));
	return why == NULL;
}

/*
 * Opens both slots and loads the newest sound one (a slot whose checksum fails is a save that
 * was cut short, or damage: the other slot is the save before it). Returns the slot loaded, or
 * -1; top_seq gets the highest seq seen.
 */
static int load_slots(struct plyfs *fs, struct export_store *s)
{
	guint8 *data[2] = {NULL, NULL};
	size_t len[2] = {0, 0};
	uint64_t seq[2] = {0, 0};
	bool sound[2] = {false, false};
	for (int i = 0; i < 2; i++) {
		int err = 0;
		s->fd[i] = open_slot(fs, i, s->writable);
		if (s->fd[i] >= 0)
			data[i] = read_slot(s->fd[i], &len[i], &err);
		else
			err = s->fd[i];
		if (err < 0 && (err != -ENOENT || s->writable))
			log_msg(LOG_WARNING,
				"%s/%s: %s: file handles of earlier mounts may be stale",
				fs->params->workdir, slot_names[i], g_strerror(-err));
		sound[i] = data[i] && slot_seq(data[i], len[i], &seq[i]);
		if (sound[i] && seq[i] > s->top_seq)
			s->top_seq = seq[i];
	}
	/* The newer first; if it is refused (other layers, a bad entry), the older one. */
	int first = sound[1] && (!sound[0] || seq[1] > seq[0]) ? 1 : 0, loaded = -1;
	for (int k = 0; k < 2 && loaded < 0; k++) {
		int i = k == 0 ? first : 1 - first;
		if (data[i] && load_slot(fs, i, data[i], len[i]))
			loaded = i;
	}
	for (int i = 0; i < 2; i++)
		if (i != loaded && loaded >= 0 && data[i] && !sound[i])
			log_msg(LOG_INFO, "%s/%s: damaged (a save cut short?), %s used",
				fs->params->workdir, slot_names[i], slot_names[loaded]);
	g_free(data[0]);
	g_free(data[1]);
	return loaded;
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
	if (!fs->has_upper || fs->params->nfs_export_off)
		return; /* nfs_export=off: nothing is kept across mounts, nothing in the workdir */

	struct export_store *s = g_new0(struct export_store, 1);
	s->fd[0] = s->fd[1] = -1;
	s->writable = !fs->params->volatile_;
	s->sync = fs->params->fsync;
	s->interval = (unsigned)fs->params->handles_interval;
	g_mutex_init(&s->lock);
	g_mutex_init(&s->wake_lock);
	g_cond_init(&s->wake);
	fs->store = s;
	/* What a version-1 daemon killed while saving left behind (mount time: the only time the
	 * store adds or removes a name in the workdir). */
	if (s->writable)
		layer_unlinkat(fs->work_fd, STORE_TMP, 0);
	int loaded = load_slots(fs, s);
	/* Never over the save just loaded: if the next one is cut short, that one still holds. */
	s->next = loaded >= 0 ? 1 - loaded : 0;
	if (s->fd[s->next] < 0)
		s->next = 1 - s->next;
	/* The table now holds what the store does: nothing to save until it changes. */
	atomic_store(&s->saved, node_table_changes(fs->nodes));
}

/* What serialize() fills in, entry by entry, under the table lock. */
struct writer {
	const struct plyfs *fs;
	GByteArray *b;
	uint64_t count;
	size_t hint; /* fsid_of()'s cache */
};

static void put_entry(const struct node_record_info *e, void *data)
{
	struct writer *w = data;
	uint64_t ino = e->key.ino;
	uint32_t fsid, type = e->type;
	uint16_t len = (uint16_t)strlen(e->name);
	/* Off a layer's filesystem: not findable by fsid. Past half the size limit: left out, so
	 * that the file stays loadable (the limit is far above record_max's). */
	if (!fsid_of(w->fs, e->key.dev, &fsid, &w->hint) || w->b->len > STORE_MAX_BYTES / 2)
		return;
	w->count++;
	PUT(w->b, e->nodeid);
	PUT(w->b, e->parent);
	PUT(w->b, fsid);
	PUT(w->b, ino);
	PUT(w->b, e->key.check);
	PUT(w->b, e->generation);
	PUT(w->b, type);
	PUT(w->b, len);
	put(w->b, e->name, len);
}

/* The table as one slot's bytes, with sequence number `seq`; *changes gets the table's change
 * counter of the state written. */
static GByteArray *serialize(struct plyfs *fs, uint64_t seq, size_t size_hint, uint64_t *changes)
{
	struct writer w = {
		.fs = fs,
		.b = g_byte_array_sized_new((guint)MIN(size_hint + 4096, STORE_MAX_BYTES / 2))};
	uint32_t version = STORE_VERSION, n_layers = (uint32_t)fs->n_layers;
	uint64_t next_id = 0;
	put(w.b, STORE_MAGIC, 8);
	PUT(w.b, version);
	PUT(w.b, n_layers);
	guint next_id_at = w.b->len;
	PUT(w.b, next_id);
	guint count_at = w.b->len;
	PUT(w.b, w.count);
	PUT(w.b, seq);
	g_autoptr(GByteArray) fp = layer_fingerprint(fs);
	put(w.b, fp->data, fp->len);
	/* The next mount keeps at most record_max of them, the newest (last) ones. */
	struct node_table_stats st;
	node_table_stats(fs->nodes, &st);
	*changes = node_table_visit(fs->nodes, (size_t)st.record_max, put_entry, &w);
	/* Read after the visit: nodeids only grow, so this one is above every nodeid written. */
	next_id = node_table_next_id(fs->nodes);
	memcpy(w.b->data + next_id_at, &next_id, sizeof(next_id));
	memcpy(w.b->data + count_at, &w.count, sizeof(w.count));
	guint8 sum[SHA256_LEN];
	sha256(w.b->data, w.b->len, sum);
	put(w.b, sum, SHA256_LEN);
	return w.b;
}

/* Overwrites the slot open as `fd` with `b`, in place: no name is created or removed. */
static int write_slot(int fd, const GByteArray *b, bool sync)
{
	for (size_t done = 0; done < b->len;) {
		ssize_t n = layer_pwrite(fd, b->data + done, b->len - done, (off_t)done);
		if (n < 0)
			return (int)n;
		done += (size_t)n;
	}
	int r = layer_ftruncate(fd, (off_t)b->len);
	return r == 0 && sync ? layer_fsync(fd, true) : r;
}

int export_store_save(struct plyfs *fs)
{
	struct export_store *s = fs->store;
	if (!s || !s->writable)
		return 0;
	g_mutex_lock(&s->lock);
	int slot = s->next, r = -EBADF;
	if (s->fd[slot] >= 0) {
		uint64_t changes;
		struct stat st;
		size_t hint = layer_fstat(s->fd[1 - slot], &st) == 0 ? (size_t)st.st_size : 0;
		g_autoptr(GByteArray) b = serialize(fs, s->top_seq + 1, hint, &changes);
		r = write_slot(s->fd[slot], b, s->sync);
		if (r == 0) {
			s->top_seq++;
			if (s->fd[1 - slot] >= 0)
				s->next = 1 - slot;
			atomic_store(&s->saved, changes);
			atomic_fetch_add(&s->saves, 1);
		}
	}
	if (r < 0 && r != s->last_err)
		log_msg(LOG_ERR,
			"%s/%s: cannot write (%s): file handles of this mount may be stale "
			"on the next",
			fs->params->workdir, slot_names[slot], g_strerror(-r));
	else if (r == 0 && s->last_err < 0)
		log_msg(LOG_INFO, "%s/%s: written again", fs->params->workdir, slot_names[slot]);
	s->last_err = r;
	g_mutex_unlock(&s->lock);
	return r;
}

static bool unsaved(struct plyfs *fs)
{
	return node_table_changes(fs->nodes) != atomic_load(&fs->store->saved);
}

/* The periodic saver: every `interval` seconds (or SAVE_BACKOFF times its last save's duration,
 * if longer), a save if the table changed, until export_store_close() stops it. */
static gpointer saver(gpointer data)
{
	struct plyfs *fs = data;
	struct export_store *s = fs->store;
	gint64 wait = (gint64)s->interval * G_USEC_PER_SEC;
	g_mutex_lock(&s->wake_lock);
	while (!s->stop) {
		gint64 until = g_get_monotonic_time() + wait;
		while (!s->stop && g_cond_wait_until(&s->wake, &s->wake_lock, until))
			;
		if (s->stop)
			break;
		g_mutex_unlock(&s->wake_lock);
		gint64 start = g_get_monotonic_time();
		if (unsaved(fs))
			export_store_save(fs);
		wait = MAX((gint64)s->interval * G_USEC_PER_SEC,
			   (g_get_monotonic_time() - start) * SAVE_BACKOFF);
		g_mutex_lock(&s->wake_lock);
	}
	g_mutex_unlock(&s->wake_lock);
	return NULL;
}

void export_store_start(struct plyfs *fs)
{
	struct export_store *s = fs->store;
	if (!s || !s->writable || s->interval == 0 || s->thread)
		return;
	/* Signals are for the session's threads (libfuse's handlers end the loop from there): the
	 * saver blocks them all, so that a SIGTERM is never spent on it. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	s->thread = g_thread_try_new("plyfs-store", saver, fs, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->thread)
		log_msg(LOG_WARNING,
			"cannot start the handle store's saver: file handles are saved "
			"at unmount only");
}

void export_store_close(struct plyfs *fs)
{
	struct export_store *s = fs->store;
	if (!s)
		return;
	if (s->thread) {
		g_mutex_lock(&s->wake_lock);
		s->stop = true;
		g_cond_signal(&s->wake);
		g_mutex_unlock(&s->wake_lock);
		g_thread_join(s->thread);
	}
	/* The last save: into the open slot, so nothing is created in a workdir that may be
	 * being removed already (a removed slot takes the bytes harmlessly). */
	if (s->writable && unsaved(fs))
		export_store_save(fs);
	for (int i = 0; i < 2; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	g_mutex_clear(&s->lock);
	g_mutex_clear(&s->wake_lock);
	g_cond_clear(&s->wake);
	g_free(s);
	fs->store = NULL;
}

void export_store_stats(struct plyfs *fs, struct export_store_stats *out)
{
	struct export_store *s = fs->store;
	*out = (struct export_store_stats){0};
	if (!s || !s->writable)
		return;
	out->kept = true;
	out->saves = atomic_load(&s->saves);
	/* saved first: it is a value the counter had, so never above the one read after it. */
	uint64_t saved = atomic_load(&s->saved);
	out->unsaved = node_table_changes(fs->nodes) - saved;
}
