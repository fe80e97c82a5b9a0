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
 * record the table kept must name a nodeid below the next one to hand out and a valid name; a
 * failed check aborts, a crash for the fuzzer. The table is freed after every input (leaks are
 * reported by LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "export_store.h"

#define RECORD_MAX 16

static struct layer layers[2];
static struct plyfs_params params = {.workdir = "/fuzz/workdir"};

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_export_store: %s\n", what);
		abort();
	}
}

static void destroy_nothing(struct node *n)
{
	(void)n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
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

static void check_records(struct node_table *t)
{
	g_autoptr(GArray) all = node_table_snapshot(t);
	uint64_t next_id = node_table_next_id(t);

	for (guint i = 0; i < all->len; i++) {
		const struct node_record_info *e = &g_array_index(all, struct node_record_info, i);
		size_t len = strlen(e->name);

		check(e->nodeid > NODE_ROOT_ID && e->nodeid < next_id,
		      "a record's nodeid is not reserved");
		check(len > 0 && len <= 255 && !strchr(e->name, '/'), "a record has a bad name");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plyfs fs = {
		.params = &params,
		.layers = layers,
		.n_layers = 2,
		.has_upper = true,
		.work_fd = -1,
		.work_dirfd = -1,
		.index_dirfd = -1,
	};
	g_autofree guint8 *store = g_malloc(size + 32);
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	gsize sum_len = 32;
	unsigned loaded = 0;

	memcpy(store, data, size);
	g_checksum_update(sum, data, (gssize)size);
	g_checksum_get_digest(sum, store + size, &sum_len);
	g_checksum_free(sum);

	fs.nodes = node_table_new(destroy_nothing);
	node_table_set_record_max(fs.nodes, RECORD_MAX);
	export_store_parse(&fs, store, size + 32, &loaded);
	check_records(fs.nodes);
	node_table_free(fs.nodes);
	return 0;
}
