// SPDX-License-Identifier: GPL-2.0-or-later
/* status_cmd.c - `plyfs status [--json] MOUNTPOINT` (see status_cmd.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <time.h>

#include <glib.h>

#include "ovl_names.h"
#include "status_cmd.h"

#define FUSE_SUPER_MAGIC 0x65735546
#define STATUS_MAX	 65536 /* XATTR_SIZE_MAX: the most a getxattr can return */

/* Leaves that are strings even when they look like numbers (a file may be named "123"). */
static const char *const string_leaves[] = {"op", "call", "arg", "layer", "layer_path", "path"};

bool status_cmd_wanted(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "status") != 0)
		return false;
	for (int i = 2; i < argc; i++) {
		if (g_str_has_prefix(argv[i], "-o"))
			return false;
	}
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: plyfs status [--json] MOUNTPOINT\n"
		   "Prints the counters and the layer errors of a live plyfs mount.\n");
}

/* --- reading --- */

/* The raw status text of `path`, or NULL after printing why it cannot be had. */
static char *read_status(const char *path)
{
	struct statfs sfs;
	if (statfs(path, &sfs) < 0) {
		fprintf(stderr, "plyfs status: %s: %s%s\n", path, g_strerror(errno),
			errno == ENOTCONN ? " (the daemon of that mount is gone)" : "");
		return NULL;
	}
	if (sfs.f_type != FUSE_SUPER_MAGIC) {
		fprintf(stderr, "plyfs status: %s is not a plyfs mount (not a FUSE filesystem)\n",
			path);
		return NULL;
	}
	g_autofree char *buf = g_malloc(STATUS_MAX + 1);
	ssize_t n = getxattr(path, PLYFS_STATUS_XATTR, buf, STATUS_MAX);
	if (n < 0 && (errno == ENODATA || errno == ENOTSUP || errno == EOPNOTSUPP)) {
		fprintf(stderr,
			"plyfs status: %s is not a plyfs mount (no %s on it; give the mount point "
			"itself)\n",
			path, PLYFS_STATUS_XATTR);
		return NULL;
	}
	if (n < 0) {
		fprintf(stderr, "plyfs status: %s: %s%s\n", path, g_strerror(errno),
			errno == ENOTCONN ? " (the daemon of that mount is gone)" : "");
		return NULL;
	}
	buf[n] = '\0';
	if (!g_str_has_prefix(buf, "status_format ") && !g_str_has_prefix(buf, "nodes_live ")) {
		fprintf(stderr, "plyfs status: %s is not a plyfs mount (%s holds something else)\n",
			path, PLYFS_STATUS_XATTR);
		return NULL;
	}
	return g_steal_pointer(&buf);
}

/* name -> unescaped value, and the names in their order. */
struct status {
	GHashTable *map;
	GPtrArray *keys;
};

static void status_parse(struct status *st, char *text)
{
	st->map = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	st->keys = g_ptr_array_new();
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *sp = strchr(line, ' ');
		if (!sp || sp == line)
			continue;
		char *key = g_strndup(line, (gsize)(sp - line));
		if (g_hash_table_contains(st->map, key)) {
			g_free(key);
			continue;
		}
		g_hash_table_insert(st->map, key, g_strcompress(sp + 1));
		g_ptr_array_add(st->keys, key);
	}
}

static void status_clear(struct status *st)
{
	g_ptr_array_unref(st->keys);
	g_hash_table_unref(st->map);
}

static const char *get(const struct status *st, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static const char *get(const struct status *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *key = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	const char *v = g_hash_table_lookup(st->map, key);
	return v ? v : "";
}

static unsigned long long num(const char *v)
{
	return strtoull(v, NULL, 10);
}

/* "2026-12-04T18:20:01.123456789Z" from "seconds.nanoseconds". */
static char *utc_time(const char *v)
{
	char *end;
	time_t sec = (time_t)strtoll(v, &end, 10);
	const char *ns = *end == '.' ? end + 1 : "0";
	struct tm tm;
	char day[32];
	if (!gmtime_r(&sec, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm))
		return g_strdup(v);
	return g_strdup_printf("%s.%sZ", day, ns);
}

/* --- text --- */

static void print_record(const struct status *st, const char *kind, const char *which)
{
	const char *seq = get(st, "errors.%s.%s.seq", kind, which);
	if (!*seq) {
		if (*get(st, "errors.%s.%s.pending", kind, which))
			printf("    %-5s (being recorded)\n", which);
		return;
	}
	int err = (int)num(get(st, "errors.%s.%s.errno", kind, which));
	const char *ename = strerrorname_np(err);
	g_autofree char *when = utc_time(get(st, "errors.%s.%s.time", kind, which));
	const char *arg = get(st, "errors.%s.%s.arg", kind, which);
	const char *path = get(st, "errors.%s.%s.path", kind, which);
	printf("    %-5s #%s %s %s (%s)\n", which, seq, when, ename ? ename : "?", g_strerror(err));
	printf("          in %s of nodeid %s: %s%s%s on %s layer %s, path %s\n",
	       get(st, "errors.%s.%s.op", kind, which), get(st, "errors.%s.%s.nodeid", kind, which),
	       get(st, "errors.%s.%s.call", kind, which), *arg ? " " : "", arg,
	       get(st, "errors.%s.%s.layer", kind, which),
	       *get(st, "errors.%s.%s.layer_path", kind, which)
		       ? get(st, "errors.%s.%s.layer_path", kind, which)
		       : "(hidden)",
	       *path ? path : "(hidden)");
}

static void print_text(const struct status *st, const char *path)
{
	printf("plyfs status of %s\n", path);
	printf("nodes: %s live, %s pinned, %s in the table; %s records of forgotten nodes "
	       "(at most %s); next nodeid %s\n",
	       get(st, "nodes_live"), get(st, "nodes_pinned"), get(st, "nodes"), get(st, "records"),
	       get(st, "records_max"), get(st, "next_nodeid"));
	unsigned long long total = 0;
	g_autoptr(GString) ops = g_string_new(NULL);
	for (guint i = 0; i < st->keys->len; i++) {
		const char *k = st->keys->pdata[i];
		if (!g_str_has_prefix(k, "ops."))
			continue;
		unsigned long long n = num(g_hash_table_lookup(st->map, k));
		total += n;
		if (n)
			g_string_append_printf(ops, "  %-16s %llu\n", k + 4, n);
	}
	printf("operations: %llu\n%s", total, ops->str);
	printf("copy-ups: %s done, %s failed\n", get(st, "copy_ups.done"),
	       get(st, "copy_ups.failed"));
	printf("errors from the layers: %s", get(st, "errors.total"));
	if (num(get(st, "errors.records_missed")))
		printf(" (%s not recorded as last: the record was busy)",
		       get(st, "errors.records_missed"));
	printf("\n");
	for (guint i = 0; i < st->keys->len; i++) {
		const char *k = st->keys->pdata[i];
		if (!g_str_has_prefix(k, "errors.") || !g_str_has_suffix(k, ".count"))
			continue;
		g_autofree char *kind = g_strndup(k + 7, strlen(k) - 7 - 6);
		printf("  %-10s %s\n", kind, get(st, "%s", k));
		print_record(st, kind, "first");
		print_record(st, kind, "last");
	}
}

/* --- JSON --- */

struct jnode {
	char *name;
	char *value; /* a leaf; NULL for an object */
	bool string;
	GPtrArray *children;
};

static struct jnode *jnode_new(const char *name)
{
	struct jnode *n = g_new0(struct jnode, 1);
	n->name = g_strdup(name);
	return n;
}

static void jnode_free(gpointer p)
{
	struct jnode *n = p;
	if (n->children)
		g_ptr_array_unref(n->children);
	g_free(n->name);
	g_free(n->value);
	g_free(n);
}

static struct jnode *jnode_child(struct jnode *obj, const char *name)
{
	if (!obj->children)
		obj->children = g_ptr_array_new_with_free_func(jnode_free);
	for (guint i = 0; i < obj->children->len; i++) {
		struct jnode *c = obj->children->pdata[i];
		if (strcmp(c->name, name) == 0)
			return c;
	}
	struct jnode *c = jnode_new(name);
	g_ptr_array_add(obj->children, c);
	return c;
}

static bool is_number(const char *v)
{
	if (!*v)
		return false;
	for (const char *p = v; *p; p++) {
		if (!g_ascii_isdigit(*p))
			return false;
	}
	return true;
}

static void jnode_leaf(struct jnode *obj, const char *name, char *value, bool string)
{
	struct jnode *leaf = jnode_child(obj, name);
	if (leaf->children)
		return; /* never both an object and a value (status.h): keep the object */
	g_free(leaf->value);
	leaf->value = value;
	leaf->string = string;
}

static void jnode_add(struct jnode *root, const char *key, const char *value)
{
	g_auto(GStrv) parts = g_strsplit(key, ".", -1);
	struct jnode *obj = root;
	guint n = g_strv_length(parts);
	for (guint i = 0; i + 1 < n; i++) {
		obj = jnode_child(obj, parts[i]);
		if (obj->value)
			return; /* a value already: see above */
	}
	const char *leaf = parts[n - 1];
	bool string = !is_number(value);
	for (size_t i = 0; i < G_N_ELEMENTS(string_leaves); i++)
		string = string || strcmp(leaf, string_leaves[i]) == 0;
	jnode_leaf(obj, leaf, g_strdup(value), string);
	if (strcmp(leaf, "time") == 0)
		jnode_leaf(obj, "time_utc", utc_time(value), true);
	if (strcmp(leaf, "errno") == 0) {
		const char *name = strerrorname_np((int)num(value));
		jnode_leaf(obj, "errno_name", g_strdup(name ? name : "?"), true);
	}
}

static void json_string(GString *out, const char *s)
{
	g_autofree char *valid = g_utf8_make_valid(s, -1);
	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)valid; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_printf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			g_string_append_printf(out, "\\u%04x", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	g_string_append_c(out, '"');
}

static void json_write(GString *out, const struct jnode *n, int depth)
{
	if (n->value) {
		if (n->string)
			json_string(out, n->value);
		else
			g_string_append(out, n->value);
		return;
	}
	g_string_append(out, "{");
	for (guint i = 0; n->children && i < n->children->len; i++) {
		const struct jnode *c = n->children->pdata[i];
		g_string_append_printf(out, "%s\n%*s", i ? "," : "", (depth + 1) * 2, "");
		json_string(out, c->name);
		g_string_append(out, ": ");
		json_write(out, c, depth + 1);
	}
	g_string_append_printf(out, "\n%*s}", depth * 2, "");
}

static void print_json(const struct status *st, const char *path)
{
	struct jnode *root = jnode_new("");
	jnode_leaf(root, "mountpoint", g_strdup(path), true);
	for (guint i = 0; i < st->keys->len; i++) {
		const char *k = st->keys->pdata[i];
		jnode_add(root, k, g_hash_table_lookup(st->map, k));
	}
	g_autoptr(GString) out = g_string_new(NULL);
	json_write(out, root, 0);
	printf("%s\n", out->str);
	jnode_free(root);
}

int status_cmd(int argc, char **argv)
{
	bool json = false;
	const char *path = NULL;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' || path) {
			fprintf(stderr, "plyfs status: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	g_autofree char *text = read_status(path);
	if (!text)
		return 1;
	struct status st;
	status_parse(&st, text);
	if (json)
		print_json(&st, path);
	else
		print_text(&st, path);
	status_clear(&st);
	return fflush(stdout) == 0 ? 0 : 1;
}
