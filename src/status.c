// SPDX-License-Identifier: GPL-2.0-or-later
/* status.c - the status query (see status.h). */
#include <string.h>

#include "status.h"
#include "xattr.h"

ssize_t status_xattr(struct plyfs *fs, char *buf, size_t size)
{
	struct node_table_stats st;
	node_table_stats(fs->nodes, &st);
	g_autofree char *text = g_strdup_printf(
		"nodes_live %" G_GUINT64_FORMAT "\nnodes_pinned %" G_GUINT64_FORMAT
		"\nnodes %" G_GUINT64_FORMAT "\nrecords %" G_GUINT64_FORMAT
		"\nrecords_max %" G_GUINT64_FORMAT "\nnext_nodeid %" G_GUINT64_FORMAT "\n",
		st.live, st.pinned, st.total, st.records, st.record_max,
		node_table_next_id(fs->nodes));
	return xattr_copy_value(text, strlen(text), buf, size);
}
