// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * replay.c - a main() for a fuzz target where libFuzzer is not linked (gcc builds): runs
 * LLVMFuzzerTestOneInput once on every file of the directories (or files) given, in name order.
 * Fails when an argument cannot be read or holds no input, so that a lost corpus is noticed; a
 * target's own checks abort, and the sanitizers of build-asan/ report what they find.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* g_ptr_array_sort() passes pointers to the elements (glib 2.74 has no sort_values). */
static int compare_names(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

static int replay_file(const char *path)
{
	g_autofree gchar *data = NULL;
	gsize len = 0;
	g_autoptr(GError) error = NULL;

	if (!g_file_get_contents(path, &data, &len, &error)) {
		fprintf(stderr, "replay: %s\n", error->message);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	return 0;
}

/* Replays `path` (a file, or every file of a directory); returns how many inputs, or -1. */
static int replay_path(const char *path)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GDir) dir = NULL;
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	const char *name;

	if (!g_file_test(path, G_FILE_TEST_IS_DIR))
		return replay_file(path) < 0 ? -1 : 1;
	dir = g_dir_open(path, 0, &error);
	if (!dir) {
		fprintf(stderr, "replay: %s\n", error->message);
		return -1;
	}
	while ((name = g_dir_read_name(dir)))
		g_ptr_array_add(names, g_build_filename(path, name, NULL));
	g_ptr_array_sort(names, compare_names);
	for (guint i = 0; i < names->len; i++) {
		if (replay_file(names->pdata[i]) < 0)
			return -1;
	}
	return (int)names->len;
}

int main(int argc, char **argv)
{
	int total = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int n = replay_path(argv[i]);

		if (n <= 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
				n < 0 ? "unreadable" : "no input");
			return 1;
		}
		total += n;
	}
	printf("%d inputs replayed\n", total);
	return 0;
}
