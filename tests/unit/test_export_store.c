// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * test_export_store.c - the handle store across mounts: what one table saves, the next loads;
 * a store written for other layers, a damaged or truncated one, and random bytes are refused
 * without a crash (run under ASan too, which catches reads past the buffer).
 */
#include <check.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_store.h"
#include "log.h"

static char *test_root;
#include "tmpdir_main.h"

/* A minimal mount: layers u and l (root fds only), workdir w, a node table. */
struct mini {
	struct plyfs fs;
	struct plyfs_params p;
	struct layer layers[2];
	char *dir;
};

static void destroy_nothing(struct node *n)
{
	(void)n;
}

static void mini_open(struct mini *m, const char *name, bool swap)
{
	memset(m, 0, sizeof(*m));
	m->dir = g_build_filename(test_root, name, NULL);
	const char *names[] = {"u", "l", "w"};
	for (int i = 0; i < 3; i++) {
		g_autofree char *p = g_build_filename(m->dir, names[i], NULL);
		g_mkdir_with_parents(p, 0755);
	}
	for (int i = 0; i < 2; i++) {
		g_autofree char *p = g_build_filename(m->dir, names[swap ? 1 - i : i], NULL);
		m->layers[i].root_fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(m->layers[i].root_fd, 0);
		m->layers[i].index = i;
		struct stat st;
		ck_assert_int_eq(fstat(m->layers[i].root_fd, &st), 0);
		m->layers[i].dev = st.st_dev; /* one filesystem: fsid 0 */
	}
	g_autofree char *w = g_build_filename(m->dir, "w", NULL);
	m->fs.work_fd = open(w, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(m->fs.work_fd, 0);
	m->p.workdir = g_strdup(w);
	m->fs.params = &m->p;
	m->fs.layers = m->layers;
	m->fs.n_layers = 2;
	m->fs.has_upper = true;
	m->fs.nodes = node_table_new(destroy_nothing);
}

static void mini_close(struct mini *m)
{
	export_store_close(&m->fs);
	node_table_free(m->fs.nodes);
	for (int i = 0; i < 2; i++)
		close(m->layers[i].root_fd);
	close(m->fs.work_fd);
	g_free(m->p.workdir);
	g_free(m->dir);
}

static struct node *lookup(struct mini *m, struct node *parent, const char *name, mode_t type,
			   ino_t ino)
{
	struct node *n = node_table_insert_lookup(
		m->fs.nodes, parent,
		node_new(name, type, (struct node_key){.dev = m->layers[0].dev, .ino = ino}));
	node_put(m->fs.nodes, n);
	return n;
}

static uint64_t records(struct mini *m)
{
	struct node_table_stats st;
	node_table_stats(m->fs.nodes, &st);
	return st.records;
}

/* Saves a store of 3 files on a first mount; returns its bytes (and the nodeids). */
static GBytes *save_sample(const char *name, uint64_t ids[3])
{
	struct mini m;
	mini_open(&m, name, false);
	export_store_load(&m.fs);
	struct node *root = node_table_root(m.fs.nodes);
	struct node *d = lookup(&m, root, "d", S_IFDIR, 10);
	ids[0] = d->nodeid;
	ids[1] = lookup(&m, d, "f", S_IFREG, 11)->nodeid;
	ids[2] = lookup(&m, root, "g", S_IFLNK, 12)->nodeid;
	node_table_forget(m.fs.nodes, ids[2], 1);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	g_autofree char *path = g_build_filename(m.dir, "w", PLYFS_HANDLES_NAME, NULL);
	g_autofree char *tmp = g_build_filename(m.dir, "w", PLYFS_HANDLES_NAME ".tmp", NULL);
	ck_assert(!g_file_test(tmp, G_FILE_TEST_EXISTS));
	gchar *data;
	gsize len;
	ck_assert(g_file_get_contents(path, &data, &len, NULL));
	mini_close(&m);
	return g_bytes_new_take(data, len);
}

/* How many records a mount of `name`'s layers (the lowers swapped with `swap`) loads. */
static uint64_t loaded_records(const char *name, bool swap)
{
	struct mini m;
	mini_open(&m, name, swap);
	export_store_load(&m.fs);
	uint64_t n = records(&m);
	mini_close(&m);
	return n;
}

/*
 * Layers with a uuid, then the same layers under other device numbers (a reboot): the store is
 * kept, and its identities name the new device. An identity on a device no layer is on (a mount
 * inside a layer) is not stored.
 */
START_TEST(test_devices_renumbered)
{
	struct mini m;
	mini_open(&m, "renumbered", false);
	for (int i = 0; i < 2; i++) {
		memset(m.layers[i].uuid, 0x5a, 16);
		m.layers[i].uuid_ok = true;
	}
	export_store_load(&m.fs);
	struct node *root = node_table_root(m.fs.nodes);
	uint64_t f = lookup(&m, root, "f", S_IFREG, 30)->nodeid;
	dev_t old_dev = m.layers[0].dev;
	struct node *other = node_table_insert_lookup(
		m.fs.nodes, root,
		node_new("sub", S_IFDIR, (struct node_key){.dev = old_dev + 1, .ino = 31}));
	node_put(m.fs.nodes, other);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	mini_close(&m);

	mini_open(&m, "renumbered", false);
	for (int i = 0; i < 2; i++) {
		memset(m.layers[i].uuid, 0x5a, 16);
		m.layers[i].uuid_ok = true;
		m.layers[i].dev = old_dev + 100;
	}
	export_store_load(&m.fs);
	ck_assert_uint_eq(records(&m), 1);
	struct node_record_info rec;
	ck_assert(node_table_find_record(m.fs.nodes, f, &rec));
	ck_assert_uint_eq(rec.key.dev, old_dev + 100);
	ck_assert_uint_eq(rec.key.ino, 30);
	g_free(rec.name);
	mini_close(&m);

	/* Without uuids the device numbers are what identifies the layers: refused. */
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("renumbered-no-uuid", ids);
	ck_assert_uint_eq(loaded_records("renumbered-no-uuid", false), 3);
	mini_open(&m, "renumbered-no-uuid", false);
	m.layers[0].dev = old_dev + 100;
	export_store_load(&m.fs);
	ck_assert_uint_eq(records(&m), 0);
	mini_close(&m);
}
END_TEST

static void write_store(const char *name, const void *data, size_t len)
{
	g_autofree char *path = g_build_filename(test_root, name, "w", PLYFS_HANDLES_NAME, NULL);
	ck_assert(g_file_set_contents(path, data, (gssize)len, NULL));
}

START_TEST(test_saved_then_loaded)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("roundtrip", ids);

	struct mini m;
	mini_open(&m, "roundtrip", false);
	export_store_load(&m.fs);
	ck_assert_uint_eq(records(&m), 3);
	ck_assert_uint_gt(node_table_next_id(m.fs.nodes), ids[2]);
	struct node_record_info rec;
	ck_assert(node_table_find_record(m.fs.nodes, ids[1], &rec));
	ck_assert_str_eq(rec.name, "f");
	ck_assert_uint_eq(rec.parent, ids[0]);
	ck_assert_uint_eq(rec.type, S_IFREG);
	g_free(rec.name);
	ck_assert(node_table_find_record(m.fs.nodes, ids[2], &rec));
	ck_assert_str_eq(rec.name, "g");
	ck_assert_uint_eq(rec.type, S_IFLNK);
	g_free(rec.name);
	/* Found by its identity: its old nodeid; a new file: a nodeid none of the old ones. */
	struct node *root = node_table_root(m.fs.nodes);
	struct node *d = lookup(&m, root, "d", S_IFDIR, 10);
	ck_assert_uint_eq(d->nodeid, ids[0]);
	ck_assert_uint_gt(lookup(&m, root, "new", S_IFREG, 13)->nodeid, ids[2]);
	mini_close(&m);
}
END_TEST

START_TEST(test_other_layers_refused)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("swapped", ids);

	ck_assert_uint_eq(loaded_records("swapped", true), 0);
	ck_assert_uint_eq(loaded_records("swapped", false), 3);
}
END_TEST

/* Not a regular file where a slot should be: a FIFO (opening it for reading would block), a
 * directory or a symlink is not read; the mount replaces it with a fresh slot (mount time is the
 * only time a slot is created), and saves work. */
START_TEST(test_not_a_file)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("fifo", ids);
	g_autofree char *path = g_build_filename(test_root, "fifo", "w", PLYFS_HANDLES_NAME, NULL);
	for (int kind = 0; kind < 3; kind++) {
		ck_assert_int_eq(unlink(path), 0);
		if (kind == 0)
			ck_assert_int_eq(mkfifo(path, 0600), 0);
		else if (kind == 1)
			ck_assert_int_eq(mkdir(path, 0700), 0);
		else
			ck_assert_int_eq(symlink("/etc/passwd", path), 0);
		ck_assert_uint_eq(loaded_records("fifo", false), 0);
		ck_assert(g_file_test(path, G_FILE_TEST_IS_REGULAR) &&
			  !g_file_test(path, G_FILE_TEST_IS_SYMLINK));
	}
	struct mini m;
	mini_open(&m, "fifo", false);
	export_store_load(&m.fs);
	lookup(&m, node_table_root(m.fs.nodes), "x", S_IFREG, 20);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	mini_close(&m);
	ck_assert_uint_eq(loaded_records("fifo", false), 1);
}
END_TEST

/* Every truncation and every single flipped byte: refused (the checksum), never a crash. */
START_TEST(test_damaged_refused)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("damaged", ids);
	gsize len;
	const guint8 *orig = g_bytes_get_data(b, &len);
	g_autofree guint8 *buf = g_memdup2(orig, len);

	for (gsize cut = 0; cut < len; cut++) {
		write_store("damaged", orig, cut);
		ck_assert_uint_eq(loaded_records("damaged", false), 0);
	}
	for (gsize i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		write_store("damaged", buf, len);
		buf[i] ^= 0x01;
		ck_assert_uint_eq(loaded_records("damaged", false), 0);
	}
	write_store("damaged", orig, len);
	ck_assert_uint_eq(loaded_records("damaged", false), 3);
}
END_TEST

/* Random bytes behind a valid checksum reach the parser itself: it must stop at whatever it
 * cannot read, without reading past the buffer, and keep only well-formed entries. */
START_TEST(test_random_bodies)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("random", ids);
	gsize len;
	const guint8 *orig = g_bytes_get_data(b, &len);
	GRand *rnd = g_rand_new_with_seed(42);

	for (int round = 0; round < 2000; round++) {
		gsize body = len - 32;
		g_autofree guint8 *buf = g_malloc(len + 64);
		memcpy(buf, orig, body);
		/* Keep the header and the layer roots (64 bytes) in half the rounds, so that the
		 * entries themselves are parsed. */
		gsize from = round % 2 ? 0 : 64;
		gsize n = (gsize)g_rand_int_range(rnd, 1, 8);
		for (gsize k = 0; k < n; k++)
			buf[from + (gsize)g_rand_int_range(rnd, 0, (gint32)(body - from))] =
				(guint8)g_rand_int(rnd);
		gsize newbody = body - (gsize)g_rand_int_range(rnd, 0, 8);
		GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
		gsize dl = 32;
		g_checksum_update(c, buf, (gssize)newbody);
		g_checksum_get_digest(c, buf + newbody, &dl);
		g_checksum_free(c);
		write_store("random", buf, newbody + 32);
		ck_assert_uint_le(loaded_records("random", false), 3);
	}
	g_rand_free(rnd);
}
END_TEST

/* Writes `body` (a store without its checksum) with a valid checksum: what a forger can do. */
static void write_forged(const char *name, const guint8 *body, gsize len)
{
	g_autofree guint8 *buf = g_malloc(len + 32);
	memcpy(buf, body, len);
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	gsize dl = 32;
	g_checksum_update(c, buf, (gssize)len);
	g_checksum_get_digest(c, buf + len, &dl);
	g_checksum_free(c);
	write_store(name, buf, len + 32);
}

#define NEXT_ID_AT 16 /* "PLYFSHD1", version, n_layers */

struct forged_case {
	const char *what;
	uint64_t next_id;
	int damage; /* 0: none, 1: one trailing byte, 2: the last entry's name made "/" */
	bool accepted;
};

static const struct forged_case forged_cases[] = {
	{"next_id 2^64-1", UINT64_MAX, 0, false},
	{"next_id 2^64-2", UINT64_MAX - 1, 0, false},
	{"next_id past the limit", NODE_ID_LIMIT + 1, 0, false},
	{"next_id 0", 0, 0, false},
	{"next_id 1", 1, 0, false},
	{"next_id 2^64-2, then a trailing byte", UINT64_MAX - 1, 1, false},
	{"next_id below the limit, then a trailing byte", NODE_ID_LIMIT - 1, 1, false},
	{"next_id below the limit, last entry bad", NODE_ID_LIMIT - 1, 2, false},
	{"the saved next_id, last entry bad", 0, 2, false},
	{"next_id just below the limit", NODE_ID_LIMIT - 1, 0, true},
	{"next_id at the limit", NODE_ID_LIMIT, 0, true},
};

/*
 * Forged stores with a valid checksum: a next nodeid that would wrap (or leave the valid range)
 * and stores refused for a later reason are refused as a whole: no record, the table's next
 * nodeid untouched, so new files get nodeids from 2 on, never 0 or 1. A next nodeid up to
 * NODE_ID_LIMIT is taken; once the ids are used up a new file gets none (ENOSPC), never a wrapped
 * one.
 */
START_TEST(test_forged_next_id)
{
	const struct forged_case *fc = &forged_cases[_i];
	uint64_t ids[3];
	g_autofree char *name = g_strdup_printf("forged%d", _i);
	g_autoptr(GBytes) b = save_sample(name, ids);
	gsize len;
	const guint8 *orig = g_bytes_get_data(b, &len);
	gsize body = len - 32;
	g_autofree guint8 *buf = g_malloc(body + 1);
	memcpy(buf, orig, body);
	if (fc->next_id != 0 || fc->damage != 2)
		memcpy(buf + NEXT_ID_AT, &fc->next_id, sizeof(fc->next_id));
	if (fc->damage == 1)
		buf[body++] = 0;
	if (fc->damage == 2)
		buf[body - 1] = '/';
	write_forged(name, buf, body);

	struct mini m;
	mini_open(&m, name, false);
	export_store_load(&m.fs);
	struct node *root = node_table_root(m.fs.nodes);
	if (!fc->accepted) {
		ck_assert_msg(records(&m) == 0, "%s: records loaded", fc->what);
		ck_assert_msg(node_table_next_id(m.fs.nodes) == NODE_ROOT_ID + 1, "%s: next id %lu",
			      fc->what, (unsigned long)node_table_next_id(m.fs.nodes));
		for (ino_t i = 0; i < 4; i++)
			ck_assert_uint_eq(lookup(&m, root, "new", S_IFREG, 40 + i)->nodeid,
					  NODE_ROOT_ID + 1 + i);
	} else {
		ck_assert_uint_eq(records(&m), 3);
		ck_assert_uint_eq(node_table_next_id(m.fs.nodes), fc->next_id);
		for (ino_t i = 0; i < 3; i++) {
			struct node *n = node_table_insert_lookup(
				m.fs.nodes, root,
				node_new("new", S_IFREG,
					 (struct node_key){.dev = m.layers[0].dev, .ino = 40 + i}));
			if (fc->next_id + i < NODE_ID_LIMIT) {
				ck_assert_uint_eq(n->nodeid, fc->next_id + i);
				node_put(m.fs.nodes, n);
			} else {
				ck_assert_ptr_null(n);
			}
		}
		/* The stored files keep their nodeids. */
		ck_assert_uint_eq(lookup(&m, root, "d", S_IFDIR, 10)->nodeid, ids[0]);
	}
	mini_close(&m);
}
END_TEST

/* The bytes of slot `slot` (0: plyfs-handles, 1: plyfs-handles.2) of test dir `name`. */
static GBytes *slot_bytes(const char *name, int slot)
{
	g_autofree char *path = g_build_filename(
		test_root, name, "w", slot ? PLYFS_HANDLES_NAME_2 : PLYFS_HANDLES_NAME, NULL);
	gchar *data = NULL;
	gsize len = 0;
	if (!g_file_get_contents(path, &data, &len, NULL))
		return NULL;
	return g_bytes_new_take(data, len);
}

#define SEQ_AT 32 /* after "PLYFSHD1", version, n_layers, next_id, count */

static uint64_t slot_seq_of(const char *name, int slot)
{
	g_autoptr(GBytes) b = slot_bytes(name, slot);
	gsize len;
	const guint8 *d = b ? g_bytes_get_data(b, &len) : NULL;
	uint64_t seq = 0;
	if (d && len >= SEQ_AT + 8)
		memcpy(&seq, d + SEQ_AT, 8);
	return seq;
}

/* Whether a mount of `name` (after the store was loaded) knows nodeid `id` as a record. */
static bool knows(const char *name, uint64_t id)
{
	struct mini m;
	mini_open(&m, name, false);
	export_store_load(&m.fs);
	struct node_record_info rec;
	bool found = node_table_find_record(m.fs.nodes, id, &rec);
	if (found)
		g_free(rec.name);
	mini_close(&m);
	return found;
}

/*
 * Saves alternate between the two slots with rising sequence numbers, never over the newest save;
 * the loader takes the newest. Within one mount: saves 1, 2, 3 go to slots 0, 1, 0.
 */
START_TEST(test_slots_alternate)
{
	struct mini m;
	mini_open(&m, "alternate", false);
	export_store_load(&m.fs);
	struct node *root = node_table_root(m.fs.nodes);
	uint64_t a = lookup(&m, root, "a", S_IFREG, 50)->nodeid;
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	ck_assert_uint_eq(slot_seq_of("alternate", 0), 1);
	uint64_t b = lookup(&m, root, "b", S_IFREG, 51)->nodeid;
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	ck_assert_uint_eq(slot_seq_of("alternate", 1), 2);
	ck_assert_uint_eq(slot_seq_of("alternate", 0), 1);
	uint64_t c = lookup(&m, root, "c", S_IFREG, 52)->nodeid;
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	ck_assert_uint_eq(slot_seq_of("alternate", 0), 3);
	/* Unchanged since: closing writes nothing. */
	mini_close(&m);
	ck_assert_uint_eq(slot_seq_of("alternate", 0), 3);
	ck_assert_uint_eq(slot_seq_of("alternate", 1), 2);
	ck_assert(knows("alternate", a) && knows("alternate", b) && knows("alternate", c));

	/* The next mount loaded slot 0 (seq 3): its first save goes to slot 1 (seq 4), and a
	 * change left at close is saved then, into slot 0 (seq 5). */
	mini_open(&m, "alternate", false);
	export_store_load(&m.fs);
	root = node_table_root(m.fs.nodes);
	uint64_t d = lookup(&m, root, "d", S_IFREG, 53)->nodeid;
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	ck_assert_uint_eq(slot_seq_of("alternate", 1), 4);
	uint64_t e = lookup(&m, root, "e", S_IFREG, 54)->nodeid;
	mini_close(&m);
	ck_assert_uint_eq(slot_seq_of("alternate", 0), 5);
	ck_assert(knows("alternate", d) && knows("alternate", e) && knows("alternate", a));
}
END_TEST

/*
 * The newest slot damaged (a save cut short: truncated, or a byte changed): the mount loads the
 * slot before it, and its next save goes over the damaged one, not over the one it loaded.
 */
START_TEST(test_newest_damaged)
{
	for (int how = 0; how < 2; how++) {
		g_autofree char *name = g_strdup_printf("torn%d", how);
		struct mini m;
		mini_open(&m, name, false);
		export_store_load(&m.fs);
		struct node *root = node_table_root(m.fs.nodes);
		uint64_t a = lookup(&m, root, "a", S_IFREG, 60)->nodeid;
		ck_assert_int_eq(export_store_save(&m.fs), 0); /* slot 0: a */
		uint64_t b = lookup(&m, root, "b", S_IFREG, 61)->nodeid;
		ck_assert_int_eq(export_store_save(&m.fs), 0); /* slot 1: a, b */
		mini_close(&m);

		g_autofree char *path =
			g_build_filename(test_root, name, "w", PLYFS_HANDLES_NAME_2, NULL);
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		if (how == 0) {
			ck_assert_int_eq(truncate(path, st.st_size / 2), 0);
		} else {
			int fd = open(path, O_RDWR);
			ck_assert_int_ge(fd, 0);
			ck_assert_int_eq(pwrite(fd, "X", 1, st.st_size - 40), 1);
			close(fd);
		}
		ck_assert(knows(name, a));
		ck_assert(!knows(name, b));

		mini_open(&m, name, false);
		export_store_load(&m.fs);
		uint64_t c = lookup(&m, node_table_root(m.fs.nodes), "c", S_IFREG, 62)->nodeid;
		ck_assert_int_eq(export_store_save(&m.fs), 0);
		mini_close(&m);
		/* A damaged slot's seq counts for nothing: the save after seq 1 is seq 2. */
		ck_assert_uint_eq(slot_seq_of(name, 1), 2);
		ck_assert_uint_eq(slot_seq_of(name, 0), 1);
		ck_assert(knows(name, a) && knows(name, c));
	}
}
END_TEST

/*
 * A store of plyfs before the slots (version 1, plyfs-handles alone, and maybe the .tmp of a
 * save cut short): loaded; the .tmp removed at mount; the first save goes to plyfs-handles.2, the
 * one after it replaces the old file in place.
 */
START_TEST(test_single_file_store)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("single", ids);
	gsize len;
	const guint8 *v2 = g_bytes_get_data(b, &len);
	/* Version 1: no seq field, version 1, its own checksum. */
	gsize body = len - 32 - 8;
	g_autofree guint8 *v1 = g_malloc(body + 32);
	memcpy(v1, v2, SEQ_AT);
	memcpy(v1 + SEQ_AT, v2 + SEQ_AT + 8, body - SEQ_AT);
	uint32_t version = 1;
	memcpy(v1 + 8, &version, 4);
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	gsize dl = 32;
	g_checksum_update(c, v1, (gssize)body);
	g_checksum_get_digest(c, v1 + body, &dl);
	g_checksum_free(c);
	g_autofree char *w = g_build_filename(test_root, "single", "w", NULL);
	g_autofree char *slot2 = g_build_filename(w, PLYFS_HANDLES_NAME_2, NULL);
	g_autofree char *tmp = g_build_filename(w, PLYFS_HANDLES_NAME ".tmp", NULL);
	ck_assert_int_eq(unlink(slot2), 0);
	write_store("single", v1, body + 32);
	ck_assert(g_file_set_contents(tmp, "partial", 7, NULL));

	struct mini m;
	mini_open(&m, "single", false);
	export_store_load(&m.fs);
	ck_assert_uint_eq(records(&m), 3);
	ck_assert(!g_file_test(tmp, G_FILE_TEST_EXISTS));
	ck_assert(g_file_test(slot2, G_FILE_TEST_IS_REGULAR));
	struct stat before, after;
	g_autofree char *slot1 = g_build_filename(w, PLYFS_HANDLES_NAME, NULL);
	ck_assert_int_eq(stat(slot1, &before), 0);
	lookup(&m, node_table_root(m.fs.nodes), "new", S_IFREG, 70);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	ck_assert_uint_eq(slot_seq_of("single", 1), 1);
	lookup(&m, node_table_root(m.fs.nodes), "new2", S_IFREG, 71);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	ck_assert_uint_eq(slot_seq_of("single", 0), 2);
	ck_assert_int_eq(stat(slot1, &after), 0);
	ck_assert_uint_eq(before.st_ino, after.st_ino); /* overwritten, not replaced */
	mini_close(&m);
	ck_assert_uint_eq(loaded_records("single", false), 5);
}
END_TEST

static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory `path`, sorted, with their inode numbers: "name:ino\n"... */
static char *listing(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	if (!d)
		return g_strdup("(gone)");
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	const char *n;
	while ((n = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(path, n, NULL);
		struct stat st;
		ck_assert_int_eq(lstat(p, &st), 0);
		g_ptr_array_add(names, g_strdup_printf("%s:%lu", n, (unsigned long)st.st_ino));
	}
	g_dir_close(d);
	g_ptr_array_sort(names, cmp_str);
	g_ptr_array_add(names, NULL);
	return g_strjoinv("\n", (char **)names->pdata);
}

/*
 * What the daemon does after the unmount (saves, close) creates no name in the workdir and
 * replaces none: the listing stays the same. With the slots removed meanwhile (rm -rf of the
 * workdir under way), a save still succeeds, into the unlinked files, and the workdir stays empty,
 * so that rmdir of it works.
 */
START_TEST(test_save_creates_nothing)
{
	struct mini m;
	mini_open(&m, "nothing", false);
	export_store_load(&m.fs);
	g_autofree char *w = g_build_filename(m.dir, "w", NULL);
	g_autofree char *before = listing(w);
	struct node *root = node_table_root(m.fs.nodes);
	lookup(&m, root, "a", S_IFREG, 80);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	lookup(&m, root, "b", S_IFREG, 81);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	lookup(&m, root, "c", S_IFREG, 82);
	g_autofree char *after = listing(w);
	ck_assert_str_eq(before, after);

	/* rm -rf of the workdir, between two saves. */
	g_autofree char *s1 = g_build_filename(w, PLYFS_HANDLES_NAME, NULL);
	g_autofree char *s2 = g_build_filename(w, PLYFS_HANDLES_NAME_2, NULL);
	ck_assert_int_eq(unlink(s1), 0);
	ck_assert_int_eq(unlink(s2), 0);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	lookup(&m, root, "d", S_IFREG, 83);
	export_store_close(&m.fs); /* the last save */
	ck_assert_int_eq(rmdir(w), 0);
	mini_close(&m);
}
END_TEST

/* volatile: the store is read at mount, never written, and no slot is created. */
START_TEST(test_volatile_saves_nothing)
{
	uint64_t ids[3];
	g_autoptr(GBytes) b = save_sample("volatile", ids);
	g_autofree char *w = g_build_filename(test_root, "volatile", "w", NULL);
	g_autofree char *s2 = g_build_filename(w, PLYFS_HANDLES_NAME_2, NULL);
	ck_assert_int_eq(unlink(s2), 0);
	g_autofree char *before = listing(w);
	g_autoptr(GBytes) was = slot_bytes("volatile", 0);

	struct mini m;
	mini_open(&m, "volatile", false);
	m.p.volatile_ = true;
	export_store_load(&m.fs);
	ck_assert_uint_eq(records(&m), 3);
	lookup(&m, node_table_root(m.fs.nodes), "new", S_IFREG, 90);
	ck_assert_int_eq(export_store_save(&m.fs), 0);
	export_store_start(&m.fs);
	mini_close(&m);
	g_autofree char *after = listing(w);
	ck_assert_str_eq(before, after);
	g_autoptr(GBytes) now = slot_bytes("volatile", 0);
	ck_assert(g_bytes_equal(was, now));
}
END_TEST

/* The saver thread: a change is saved within a bounded wait, without an explicit save; the
 * stats say when the store is current. */
START_TEST(test_saver_thread)
{
	struct mini m;
	mini_open(&m, "saver", false);
	m.p.handles_interval = 1;
	export_store_load(&m.fs);
	struct export_store_stats es;
	export_store_stats(&m.fs, &es);
	ck_assert(es.kept);
	ck_assert_uint_eq(es.unsaved, 0);
	/* The change before the saver starts: with it running, a test stopped for its interval
	 * between the change and the stats would see it saved already. */
	uint64_t a = lookup(&m, node_table_root(m.fs.nodes), "a", S_IFREG, 95)->nodeid;
	export_store_stats(&m.fs, &es);
	ck_assert_uint_gt(es.unsaved, 0);
	ck_assert_uint_eq(es.saves, 0);
	export_store_start(&m.fs);
	for (int i = 0; i < 600 && (es.unsaved > 0 || es.saves == 0); i++) {
		g_usleep(50000);
		export_store_stats(&m.fs, &es);
	}
	ck_assert_uint_eq(es.unsaved, 0);
	ck_assert_uint_ge(es.saves, 1);
	/* What a killed daemon leaves: the slots as they are now, no close. */
	struct mini other;
	mini_open(&other, "saver", false);
	export_store_load(&other.fs);
	struct node_record_info rec;
	ck_assert(node_table_find_record(other.fs.nodes, a, &rec));
	g_free(rec.name);
	mini_close(&other);
	mini_close(&m);
}
END_TEST

static Suite *export_store_suite(void)
{
	Suite *s = suite_create("export_store");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_saved_then_loaded);
	tcase_add_test(tc, test_other_layers_refused);
	tcase_add_test(tc, test_devices_renumbered);
	tcase_add_test(tc, test_not_a_file);
	tcase_add_test(tc, test_damaged_refused);
	tcase_add_test(tc, test_random_bodies);
	tcase_add_loop_test(tc, test_forged_next_id, 0, G_N_ELEMENTS(forged_cases));
	tcase_add_test(tc, test_slots_alternate);
	tcase_add_test(tc, test_newest_damaged);
	tcase_add_test(tc, test_single_file_store);
	tcase_add_test(tc, test_save_creates_nothing);
	tcase_add_test(tc, test_volatile_saves_nothing);
	tcase_add_test(tc, test_saver_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_in_tmpdir("plyfs-test-export-store-XXXXXX", export_store_suite);
}
