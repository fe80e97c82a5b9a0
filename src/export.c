// SPDX-License-Identifier: GPL-2.0-or-later
/* export.c - finding forgotten nodes again (see export.h). */
#include <errno.h>

#include "export.h"
#include "namei.h"

/* Resolves one recorded node whose parent is live: looks its name up again and checks it is
 * still the same file. */
static int revive(struct plyfs *fs, uint64_t nodeid, struct node *parent,
		  const struct node_record_info *rec, struct node **out)
{
	struct node *n;
	struct stat st;
	int r = namei_lookup(fs, parent, rec->name, &n, &st);
	if (r < 0) {
		node_table_drop_record(fs->nodes, nodeid);
		return -ESTALE;
	}
	/* namei_lookup counted a lookup for the kernel: this one is ours, not the kernel's. */
	node_table_forget(fs->nodes, n->nodeid, 1);
	if (n->nodeid != nodeid) {
		node_put(fs->nodes, n);
		return -ESTALE;
	}
	*out = n;
	return 0;
}

int export_resolve(struct plyfs *fs, uint64_t nodeid, struct node **out)
{
	struct node *n = node_table_get(fs->nodes, nodeid);
	if (n) {
		*out = n;
		return 0;
	}
	/* Walk up the records to a live ancestor, then back down: iterative, as trees are deep. */
	g_autoptr(GArray) chain = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	struct node *live = NULL;
	for (uint64_t id = nodeid; !live;) {
		struct node_record_info rec;
		if (!node_table_find_record(fs->nodes, id, &rec))
			return -ESTALE;
		g_free(rec.name);
		g_array_append_val(chain, id);
		id = rec.parent;
		live = node_table_get(fs->nodes, id);
	}
	int r = 0;
	for (guint i = chain->len; i-- > 0 && r == 0;) {
		uint64_t id = g_array_index(chain, uint64_t, i);
		struct node_record_info rec;
		if (!node_table_find_record(fs->nodes, id, &rec)) {
			/* Found again meanwhile by another request. */
			n = node_table_get(fs->nodes, id);
			r = n ? 0 : -ESTALE;
		} else {
			r = revive(fs, id, live, &rec, &n);
			g_free(rec.name);
		}
		node_put(fs->nodes, live);
		live = r == 0 ? n : NULL;
	}
	if (r < 0)
		return r;
	*out = live;
	return 0;
}
