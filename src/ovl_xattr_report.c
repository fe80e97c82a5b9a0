// SPDX-License-Identifier: GPL-2.0-or-later
/* ovl_xattr_report.c - the one report of invalid overlay metadata (see ovl_xattr.h). Kept apart
 * from the pure decoders so that they link without glib or the log. */
#include <string.h>

#include <glib.h>

#include "errors.h"
#include "fs.h"
#include "log.h"
#include "ovl_xattr.h"

/* (what, layer, path) already reported: a lookup repeated by every `ls` must not log each time.
 * Protected by report_lock; bounded by OVL_REPORT_REMEMBERED, after which reports go to the
 * rate-limited log without being remembered. */
static GMutex report_lock;
static GHashTable *reported;
static unsigned long n_reports;

/* True the first time a key is seen (or once the set is full). */
static bool first_time(const char *key)
{
	bool first = true;
	g_mutex_lock(&report_lock);
	if (!reported)
		reported = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (g_hash_table_contains(reported, key))
		first = false;
	else if (g_hash_table_size(reported) < OVL_REPORT_REMEMBERED)
		g_hash_table_add(reported, g_strdup(key));
	if (first)
		n_reports++;
	g_mutex_unlock(&report_lock);
	return first;
}

void ovl_xattr_report_invalid(struct plyfs *fs, const char *what, int layer, const char *path,
			      int err)
{
	/* Every occurrence is counted and recorded in the error slot (plyfs status); only the
	 * first one of each entry is logged. */
	errors_note_metadata(err < 0 ? -err : err, what, layer, -1, path);
	g_autofree char *key = g_strdup_printf("%s\n%d\n%s", what, layer, path ? path : "");
	if (!first_time(key))
		return;
	const char *msg = g_strerror(err < 0 ? -err : err);
	if (!fs || layer < 0 || (size_t)layer >= fs->n_layers) {
		log_ratelimited(LOG_WARNING, "invalid overlay %s on %s: %s", what,
				path ? path : "?", msg);
		return;
	}
	log_ratelimited(LOG_WARNING, "invalid overlay %s on %s/%s (layer %d): %s", what,
			fs->layers[layer].path, path ? path : "", layer, msg);
}

unsigned long ovl_xattr_reports(void)
{
	g_mutex_lock(&report_lock);
	unsigned long n = n_reports;
	g_mutex_unlock(&report_lock);
	return n;
}
