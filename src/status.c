// SPDX-License-Identifier: GPL-2.0-or-later
/* status.c - the status query (see status.h). */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "export_store.h"
#include "request.h"
#include "status.h"
#include "xattr_name.h"

static void put_str(GString *out, const char *key, const char *value)
{
	g_autofree char *esc = g_strescape(value ? value : "", NULL);
	g_string_append_printf(out, "%s %s\n", key, esc);
}

static void put_nodes(GString *out, struct plyfs *fs)
{
	struct node_table_stats st;
	struct export_store_stats es;
	node_table_stats(fs->nodes, &st);
	g_string_append_printf(
		out,
		"nodes_live %" PRIu64 "\nnodes_pinned %" PRIu64 "\nnodes %" PRIu64
		"\nrecords %" PRIu64 "\nrecords_max %" PRIu64 "\nrecords_bytes %" PRIu64
		"\nrecords_name_bytes %" PRIu64 "\nnode_table_locks %" PRIu64
		"\nnode_table_read_locks %" PRIu64 "\nnext_nodeid %" PRIu64 "\n",
		(uint64_t)st.live, (uint64_t)st.pinned, (uint64_t)st.total, (uint64_t)st.records,
		(uint64_t)st.record_max, (uint64_t)st.record_bytes, (uint64_t)st.record_name_bytes,
		(uint64_t)st.locks, (uint64_t)st.read_locks,
		(uint64_t)node_table_next_id(fs->nodes));
	put_str(out, "records_backing", st.records_file ? "file" : "memory");
	export_store_stats(fs, &es);
	if (es.kept)
		g_string_append_printf(out,
				       "handles_saves %" PRIu64 "\nhandles_unsaved %" PRIu64 "\n",
				       es.saves, es.unsaved);
}

static void put_counters(GString *out, struct plyfs *fs)
{
	for (int op = REQ_OP_NONE + 1; op < REQ_OP_N; op++)
		g_string_append_printf(
			out, "ops.%s %lu\n", req_op_name(op),
			atomic_load_explicit(&fs->op_count[op], memory_order_relaxed));
	g_string_append_printf(out, "copy_ups.done %lu\ncopy_ups.failed %lu\n",
			       atomic_load_explicit(&fs->copy_ups_done, memory_order_relaxed),
			       atomic_load_explicit(&fs->copy_ups_failed, memory_order_relaxed));
}

/* What a reader may see of the records. */
struct shown {
	bool paths;	  /* the record paths and layer paths */
	bool layer_paths; /* false when the text would not fit in an xattr with them */
};

static void put_record(GString *out, struct plyfs *fs, const char *prefix,
		       const struct err_record *r, struct shown sh)
{
	char key[96], buf[16];
#define KEY(k) (snprintf(key, sizeof(key), "%s.%s", prefix, k), key)
	g_string_append_printf(out, "%s %" PRIu64 "\n", KEY("seq"), r->seq);
	g_string_append_printf(out, "%s %d\n", KEY("errno"), r->err);
	put_str(out, KEY("op"), req_op_name(r->op));
	put_str(out, KEY("call"), r->call);
	put_str(out, KEY("arg"), r->arg);
	put_str(out, KEY("layer"), err_layer_name(fs->errors, r->layer, buf));
	put_str(out, KEY("layer_path"),
		sh.paths && sh.layer_paths ? err_layer_path(fs->errors, r->layer) : "");
	put_str(out, KEY("path"), sh.paths ? r->path : "");
	g_string_append_printf(out, "%s %d\n", KEY("truncated"), r->truncated);
	g_string_append_printf(out, "%s %" PRIu64 "\n", KEY("nodeid"), r->nodeid);
	g_string_append_printf(out, "%s %lld.%09ld\n", KEY("time"), (long long)r->time.tv_sec,
			       r->time.tv_nsec);
#undef KEY
}

/* Paths name files and layers: only root and the mount's owner see them (anyone may read the
 * counts). */
static bool may_see_paths(void)
{
	const struct req_ctx *rq = req_current();
	return !rq || rq->uid == 0 || rq->uid == geteuid();
}

static void put_errors(GString *out, struct plyfs *fs, const struct err_snapshot *snap,
		       struct shown sh)
{
	bool paths = sh.paths;
	g_string_append_printf(out,
			       "errors.total %" PRIu64 "\nerrors.records_missed %" PRIu64
			       "\nerrors.paths_hidden %d\n",
			       snap->notes, snap->records_missed, !paths);
	for (int k = 0; k < ERR_KIND_N; k++) {
		const struct err_kind_snapshot *ks = &snap->kind[k];
		char prefix[64];
		g_string_append_printf(out, "errors.%s.count %" PRIu64 "\n", err_kind_name(k),
				       ks->count);
		if (ks->first_pending)
			g_string_append_printf(out, "errors.%s.first.pending 1\n",
					       err_kind_name(k));
		snprintf(prefix, sizeof(prefix), "errors.%s.first", err_kind_name(k));
		if (ks->first_set)
			put_record(out, fs, prefix, &ks->first, sh);
		snprintf(prefix, sizeof(prefix), "errors.%s.last", err_kind_name(k));
		if (ks->last_set)
			put_record(out, fs, prefix, &ks->last, sh);
	}
}

/* The largest xattr value the kernel passes (XATTR_SIZE_MAX). */
#define STATUS_MAX 65536

static GString *status_text(struct plyfs *fs, const struct err_snapshot *snap, struct shown sh)
{
	GString *out = g_string_new("status_format 2\n");
	put_nodes(out, fs);
	put_counters(out, fs);
	g_string_append_printf(out, "layers %zu\n", fs->n_layers);
	if (snap) {
		put_errors(out, fs, snap, sh);
		if (!sh.layer_paths)
			g_string_append(out, "errors.layer_paths_omitted 1\n");
	}
	return out;
}

ssize_t status_xattr(struct plyfs *fs, char *buf, size_t size)
{
	g_autofree struct err_snapshot *snap = NULL;
	if (fs->errors) {
		snap = g_new(struct err_snapshot, 1);
		err_slot_read(fs->errors, snap);
	}
	struct shown sh = {.paths = may_see_paths(), .layer_paths = true};
	g_autoptr(GString) out = status_text(fs, snap, sh);
	if (out->len > STATUS_MAX) {
		/* Record paths are bounded (ERR_PATH_MAX), layer paths are not: 18 records naming
		 * layers with long paths could overflow. Without them it always fits. */
		g_string_free(g_steal_pointer(&out), TRUE);
		sh.layer_paths = false;
		out = status_text(fs, snap, sh);
	}
	return xattr_copy_value(out->str, out->len, buf, size);
}
