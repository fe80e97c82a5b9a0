// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuzz_export_store.c - libFuzzer target: the handle store's parser (export_store_parse).
 *
 * The input is a store without its checksum: the target appends the SHA-256 the format asks for,
 * so that every input reaches the parser behind the check (a damaged file is refused by it). The
 * store is parsed into a fresh node table of a fixed two-layer mount whose layer roots are not
 * open (root_fd -1: fstat fails and the fingerprint holds inode 0), so that the fingerprint and
 * the seeds are the same on every machine:
 *   layer 0 (upper): uuid 00 01 .. 0f, inode 0        fsid 0
 *   layer 1 (lower): no uuid, st_dev 0x802, inode 0   fsid 1
 * The record bound is small (RECORD_MAX), so that eviction runs too. After the parse, every
 * record the table kept must name a nodeid below the next one to hand out and a valid name. A
 * store that parses whole must survive a round trip: export_store_save() writes the table into a
 * workdir of the target's own (made under /dev/shm for each round trip and removed after it, also
 * when a check fails), and parsing that file into a fresh table must give the same records in the
 * same order and the same next nodeid. A failed check aborts, a crash for the fuzzer. The tables
 * are freed after every input (leaks are reported by LeakSanitizer).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "export_store.h"

#define RECORD_MAX 16

static struct layer layers[2];
static const char *tmp_base;	   /* where round trips make their workdir */
static struct plyfs_params params; /* .workdir: the round trip's, or NULL between them */
static int work_fd = -1;

/* Removes the round trip's workdir, if any: after every round trip, and before an abort. */
static void remove_workdir(void)
{
	if (!params.workdir)
		return;
	g_autofree char *store = g_build_filename(params.workdir, PLYFS_HANDLES_NAME, NULL);
	g_autofree char *tmp = g_strconcat(store, ".tmp", NULL);
	g_autofree char *second = g_build_filename(params.workdir, PLYFS_HANDLES_NAME_2, NULL);
	g_unlink(store);
	g_unlink(tmp);
	g_unlink(second);
	g_rmdir(params.workdir);
	g_clear_pointer(&params.workdir, g_free);
	close(work_fd);
	work_fd = -1;
}

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_export_store: %s\n", what);
		remove_workdir();
		abort();
	}
}

static void make_workdir(void)
{
	params.workdir = g_build_filename(tmp_base, "plyfs-fuzz-store.XXXXXX", NULL);
	check(g_mkdtemp(params.workdir) != NULL, "cannot make a workdir");
	work_fd = open(params.workdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	check(work_fd >= 0, "cannot open the workdir");
}

static void destroy_nothing(struct node *n)
{
	(void)n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* tmpfs: export_store_save() fsyncs. */
	tmp_base = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();
	for (int i = 0; i < 2; i++) {
		layers[i].index = i;
		layers[i].root_fd = -1;
		layers[i].fsid = (unsigned)i;
		layers[i].dev = (dev_t)(0x801 + i);
	}
	layers[0].upper = true;
	for (int i = 0; i < 16; i++)
		layers[0].uuid[i] = (unsigned char)i;
	layers[0].uuid_ok = true;
	return 0;
}

static struct plyfs mount_of(void)
{
	return (struct plyfs){
		.params = &params,
		.layers = layers,
		.n_layers = 2,
		.has_upper = true,
		.work_fd = -1,
		.work_dirfd = -1,
		.index_dirfd = -1,
		.nodes = node_table_new(destroy_nothing),
	};
}

static void check_records(struct node_table *t, GArray *all)
{
	uint64_t next_id = node_table_next_id(t);

	for (guint i = 0; i < all->len; i++) {
		const struct node_record_info *e = &g_array_index(all, struct node_record_info, i);
		size_t len = strlen(e->name);

		check(e->nodeid > NODE_ROOT_ID && e->nodeid < next_id,
		      "a record's nodeid is not reserved");
		check(len > 0 && len <= 255 && !strchr(e->name, '/'), "a record has a bad name");
	}
}

static bool same_record(const struct node_record_info *a, const struct node_record_info *b)
{
	return a->nodeid == b->nodeid && a->parent == b->parent && a->key.dev == b->key.dev &&
	       a->key.ino == b->key.ino && a->key.check == b->key.check && a->type == b->type &&
	       a->generation == b->generation && strcmp(a->name, b->name) == 0;
}

/* Saves `fs`'s table, loads the file into a fresh table: it must hold what `fs`'s holds. */
static void round_trip(struct plyfs *fs, GArray *before)
{
	struct plyfs again = mount_of();
	g_autofree char *path = NULL;
	g_autofree gchar *data = NULL;
	gsize len = 0;
	unsigned loaded = 0;

	node_table_set_record_max(again.nodes, RECORD_MAX);
	make_workdir();
	fs->work_fd = again.work_fd = work_fd;
	path = g_build_filename(params.workdir, PLYFS_HANDLES_NAME, NULL);
	/* Opens the (empty) slots of the fresh workdir: the first save goes to the first slot. */
	export_store_load(fs);
	check(export_store_save(fs) == 0, "export_store_save failed");
	export_store_close(fs);
	check(g_file_get_contents(path, &data, &len, NULL), "the saved store is unreadable");
	check(export_store_parse(&again, (const guint8 *)data, len, &loaded) == NULL,
	      "a saved store does not parse");
	check(node_table_next_id(again.nodes) == node_table_next_id(fs->nodes),
	      "the next nodeid changed in a round trip");
	g_autoptr(GArray) after = node_table_snapshot(again.nodes);
	check(after->len == before->len && loaded == before->len,
	      "the number of records changed in a round trip");
	for (guint i = 0; i < after->len; i++)
		check(same_record(&g_array_index(before, struct node_record_info, i),
				  &g_array_index(after, struct node_record_info, i)),
		      "a record changed in a round trip");
	node_table_free(again.nodes);
	remove_workdir();
	fs->work_fd = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plyfs fs = mount_of();
	g_autofree guint8 *store = g_malloc(size + 32);
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	gsize sum_len = 32;
	unsigned loaded = 0;

	memcpy(store, data, size);
	g_checksum_update(sum, data, (gssize)size);
	g_checksum_get_digest(sum, store + size, &sum_len);
	g_checksum_free(sum);

	node_table_set_record_max(fs.nodes, RECORD_MAX);
	const char *why = export_store_parse(&fs, store, size + 32, &loaded);
	g_autoptr(GArray) records = node_table_snapshot(fs.nodes);
	check_records(fs.nodes, records);
	if (!why)
		round_trip(&fs, records);
	node_table_free(fs.nodes);
	return 0;
}
