// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuzz_params.c - libFuzzer target: the command line parser (params.c) and lowerdir's escapes.
 *
 * The input is split on NUL bytes into words W0, W1, ... (at most MAX_WORDS). Each input is used
 *  1. as one -o value:      plyfs -o W0 /mnt
 *  2. as a whole argv:      plyfs W0 W1 ...
 *  3. as a lowerdir= value: params_split_lowerdir(W0)
 *  4. for the escape round trips, when every word is non-empty: the words as layer paths,
 *     escaped ("\" before '\', ':' and ',') and joined with ':' into -o lowerdir=, must come back
 *     from the parser exactly; and W0 as SOURCE must come back from the fsname= option that
 *     plyfs hands to libfuse, as libfuse's own option parser reads it.
 * 1 and 2 are followed by params_validate() and params_fuse_argv() when they parse. Whatever
 * the outcome everything is freed (LeakSanitizer checks that), and a refusal carries a message.
 * A broken round trip or a refusal without a message aborts: a crash for the fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <glib.h>

#include "params.h"

#define MAX_WORDS 64

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_params: %s\n", what);
		abort();
	}
}

static void quiet(enum fuse_log_level level, const char *fmt, va_list ap)
{
	(void)level, (void)fmt, (void)ap;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuse_set_log_func(quiet); /* libfuse's option parser complains on stderr */
	return 0;
}

/* What plyfs accepted and forwards, libfuse must accept too (main() hands it over as is). */
static void libfuse_accepts(int argc, char **argv)
{
	static const struct fuse_lowlevel_ops ops;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;

	for (int i = 0; i < argc; i++)
		check(fuse_opt_add_arg(&args, argv[i]) == 0, "fuse_opt_add_arg failed");
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	check(se != NULL, "fuse_session_new refused the options plyfs accepted");
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
}

/* Parses argv as plyfs would, checks the error contract, frees everything. Returns the parse's
 * result; on success `keep` (if not NULL) receives the params, which the caller then clears. */
static int parse(int argc, char **argv, struct plyfs_params *keep)
{
	struct plyfs_params p;
	g_autofree char *err = NULL;
	int ret = params_parse(argc, argv, &p, &err);

	check(ret == 0 || (ret < 0 && err && *err), "params_parse refused without a message");
	if (ret == 0) {
		int fuse_argc = -1;
		char **fuse_argv;

		if (params_validate(&p, &err) < 0) {
			check(err && *err, "params_validate refused without a message");
		} else {
			fuse_argv = params_fuse_argv(&p, &fuse_argc);
			check(fuse_argc >= 1 && fuse_argv[fuse_argc] == NULL, "bad libfuse argv");
			libfuse_accepts(fuse_argc, fuse_argv);
		}
	}
	if (ret == 0 && keep)
		*keep = p;
	else
		params_clear(&p);
	return ret;
}

/* Escapes a layer path for lowerdir= as params.h documents. */
static void append_escaped_layer(GString *out, const char *path)
{
	for (const char *s = path; *s; s++) {
		if (*s == '\\' || *s == ':' || *s == ',')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *s);
	}
}

/* The layer paths `words` must come back from -o lowerdir=ESCAPED, and from split_lowerdir. */
static void lowerdir_round_trip(char **words, size_t n)
{
	g_autoptr(GString) value = g_string_new(NULL);
	struct plyfs_params p;
	g_autofree char *err = NULL;

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			g_string_append_c(value, ':');
		append_escaped_layer(value, words[i]);
	}
	g_auto(GStrv) split = params_split_lowerdir(value->str, &err);
	check(split && g_strv_length(split) == n, "split_lowerdir lost a layer");
	for (size_t i = 0; i < n; i++)
		check(strcmp(split[i], words[i]) == 0, "split_lowerdir changed a layer path");

	g_autofree char *opt = g_strconcat("lowerdir=", value->str, NULL);
	char *argv[] = {"plyfs", "-o", opt, "/mnt", NULL};
	check(parse(4, argv, &p) == 0, "an escaped lowerdir= was refused");
	check(p.n_lower == n, "lowerdir= lost a layer");
	for (size_t i = 0; i < n; i++)
		check(strcmp(p.lowerdirs[i], words[i]) == 0, "lowerdir= changed a layer path");
	params_clear(&p);
}

/* SOURCE must reach libfuse unchanged as fsname=, through libfuse's own splitter. */
static void fsname_round_trip(char *source)
{
	struct plyfs_params p;
	char *argv[] = {"plyfs", source, "/mnt", "-o", "lowerdir=/l", NULL};
	struct fsname_opt {
		char *fsname;
	} got = {NULL};
	const struct fuse_opt templ[] = {
		{"fsname=%s", offsetof(struct fsname_opt, fsname), 0},
		FUSE_OPT_END,
	};
	int fuse_argc;

	/* A word starting with '-' is an option, not a SOURCE. */
	if (source[0] == '-' || parse(5, argv, &p) < 0)
		return;
	char **fuse_argv = params_fuse_argv(&p, &fuse_argc);
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);

	for (int i = 0; i < fuse_argc; i++)
		check(fuse_opt_add_arg(&args, fuse_argv[i]) == 0, "fuse_opt_add_arg failed");
	/* Unknown options (default_permissions, subtype=) are kept in `args`, not refused. */
	check(fuse_opt_parse(&args, &got, templ, NULL) == 0, "libfuse refused plyfs' argv");
	check(got.fsname && strcmp(got.fsname, source) == 0, "fsname= does not give back SOURCE");
	free(got.fsname);
	fuse_opt_free_args(&args);
	params_clear(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Words: NUL-separated, each NUL-terminated in `buf`. */
	g_autofree char *buf = g_malloc(size + 1);
	char *words[MAX_WORDS + 2];
	size_t n = 0;
	bool all_nonempty = true;

	memcpy(buf, data, size);
	buf[size] = '\0';
	for (size_t start = 0; n < MAX_WORDS;) {
		words[n++] = buf + start;
		all_nonempty &= buf[start] != '\0';
		start += strlen(buf + start) + 1;
		if (start > size)
			break;
	}

	char *one_opt[] = {"plyfs", "-o", words[0], "/mnt", NULL};
	parse(4, one_opt, NULL);

	char *argv[MAX_WORDS + 2] = {"plyfs"};
	memcpy(argv + 1, words, n * sizeof(char *));
	argv[n + 1] = NULL;
	parse((int)n + 1, argv, NULL);

	g_autofree char *err = NULL;
	g_auto(GStrv) layers = params_split_lowerdir(words[0], &err);
	check(layers || (err && *err), "split_lowerdir refused without a message");

	if (all_nonempty) {
		lowerdir_round_trip(words, n);
		fsname_round_trip(words[0]);
	}
	return 0;
}
