// SPDX-License-Identifier: GPL-2.0-or-later
/* idmap.c - uidmapping= / gidmapping= ranges: parsing and mapping in both directions. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <glib.h>

#include "idmap.h"

/* Parses one decimal field of a range; `what` names it in the error. */
static int parse_field(const char *s, const char *what, size_t range_no, uint32_t *out, char **err)
{
	guint64 v;

	if (!g_ascii_string_to_unsigned(s, 10, 0, UINT32_MAX, &v, NULL)) {
		*err = g_strdup_printf("range %zu: %s '%s' is not a number in 0..%u", range_no,
				       what, s, UINT32_MAX);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/* True when [a, a+an) and [b, b+bn) share an id; the ends are computed in 64 bits. */
static bool spans_overlap(uint32_t a, uint32_t an, uint32_t b, uint32_t bn)
{
	return (guint64)a < (guint64)b + bn && (guint64)b < (guint64)a + an;
}

/* Checks range `i` against the ones before it: no id may be mapped twice on either side. */
static int check_range(const struct idmap_range *r, size_t i, char **err)
{
	if (r[i].count == 0) {
		*err = g_strdup_printf("range %zu: count is 0", i + 1);
		return -EINVAL;
	}
	if ((guint64)r[i].stored + r[i].count - 1 > UINT32_MAX ||
	    (guint64)r[i].shown + r[i].count - 1 > UINT32_MAX) {
		*err = g_strdup_printf("range %zu (%u:%u:%u) goes past id %u", i + 1, r[i].stored,
				       r[i].shown, r[i].count, UINT32_MAX);
		return -EINVAL;
	}
	for (size_t j = 0; j < i; j++) {
		const char *side = NULL;

		if (spans_overlap(r[i].stored, r[i].count, r[j].stored, r[j].count))
			side = "stored";
		else if (spans_overlap(r[i].shown, r[i].count, r[j].shown, r[j].count))
			side = "shown";
		if (side) {
			*err = g_strdup_printf("range %zu (%u:%u:%u) overlaps range %zu on the %s "
					       "side",
					       i + 1, r[i].stored, r[i].shown, r[i].count, j + 1,
					       side);
			return -EINVAL;
		}
	}
	return 0;
}

/* The non-empty fields of `spec`, in order (fuse-overlayfs splits with strtok(": ")). */
static GPtrArray *fields(const char *spec)
{
	g_auto(GStrv) parts = g_strsplit(spec, ":", -1);
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

	for (size_t i = 0; parts[i]; i++) {
		if (*parts[i])
			g_ptr_array_add(out, g_strdup(parts[i]));
	}
	return out;
}

int idmap_parse(const char *spec, struct idmap *map, char **err)
{
	static const char *const what[3] = {"stored id", "shown id", "count"};
	g_autoptr(GPtrArray) f = fields(spec);
	g_autofree struct idmap_range *r = NULL;
	size_t n;
	int ret;

	if (f->len == 0 || f->len % 3 != 0) {
		*err = g_strdup_printf("'%s' is not a list of stored:shown:count triples", spec);
		return -EINVAL;
	}
	n = f->len / 3;
	r = g_new0(struct idmap_range, n);
	for (size_t i = 0; i < n; i++) {
		uint32_t *out[3] = {&r[i].stored, &r[i].shown, &r[i].count};

		for (size_t k = 0; k < 3; k++) {
			ret = parse_field(f->pdata[i * 3 + k], what[k], i + 1, out[k], err);
			if (ret < 0)
				return ret;
		}
		ret = check_range(r, i, err);
		if (ret < 0)
			return ret;
	}
	map->ranges = g_steal_pointer(&r);
	map->n = n;
	map->overflow = IDMAP_OVERFLOW_ID;
	return 0;
}

void idmap_clear(struct idmap *map)
{
	g_clear_pointer(&map->ranges, g_free);
	map->n = 0;
}

void idmap_read_overflow(struct idmap *map, const char *path)
{
	g_autofree char *text = NULL;
	guint64 v;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return;
	g_strstrip(text);
	if (g_ascii_string_to_unsigned(text, 10, 0, UINT32_MAX, &v, NULL))
		map->overflow = (uint32_t)v;
}

uint32_t idmap_to_shown(const struct idmap *map, uint32_t id)
{
	if (map->n == 0)
		return id;
	for (size_t i = 0; i < map->n; i++) {
		const struct idmap_range *r = &map->ranges[i];

		if (id >= r->stored && id - r->stored < r->count)
			return r->shown + (id - r->stored);
	}
	return map->overflow;
}

int idmap_to_stored(const struct idmap *map, uint32_t id, uint32_t *stored)
{
	if (map->n == 0) {
		*stored = id;
		return 0;
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct idmap_range *r = &map->ranges[i];

		if (id >= r->shown && id - r->shown < r->count) {
			*stored = r->stored + (id - r->shown);
			return 0;
		}
	}
	return -EINVAL;
}

uint32_t idmap_new_owner(const struct idmap *map, uint32_t id)
{
	uint32_t stored;

	return idmap_to_stored(map, id, &stored) == 0 ? stored : map->overflow;
}

/* The kernel's xattr form of a POSIX ACL (include/uapi/linux/posix_acl_xattr.h), little-endian. */
#define ACL_XATTR_VERSION 2u
#define ACL_TAG_USER	  0x02u
#define ACL_TAG_GROUP	  0x08u
#define ACL_HEADER_SIZE	  4u
#define ACL_ENTRY_SIZE	  8u /* u16 tag, u16 perm, u32 id */

static int map_id(const struct idmap *m, uint32_t *id, int to_shown)
{
	if (to_shown) {
		*id = idmap_to_shown(m, *id);
		return 0;
	}
	return idmap_to_stored(m, *id, id);
}

int idmap_acl(const struct idmap *uids, const struct idmap *gids, void *value, size_t len,
	      int to_shown)
{
	unsigned char *p = value;
	uint32_t version;

	if (len < ACL_HEADER_SIZE || (len - ACL_HEADER_SIZE) % ACL_ENTRY_SIZE != 0)
		return 0;
	memcpy(&version, p, 4);
	if (GUINT32_FROM_LE(version) != ACL_XATTR_VERSION)
		return 0;
	for (size_t off = ACL_HEADER_SIZE; off < len; off += ACL_ENTRY_SIZE) {
		uint16_t tag;
		uint32_t id;

		memcpy(&tag, p + off, 2);
		tag = GUINT16_FROM_LE(tag);
		if (tag != ACL_TAG_USER && tag != ACL_TAG_GROUP)
			continue;
		memcpy(&id, p + off + 4, 4);
		id = GUINT32_FROM_LE(id);
		int r = map_id(tag == ACL_TAG_USER ? uids : gids, &id, to_shown);
		if (r < 0)
			return r;
		id = GUINT32_TO_LE(id);
		memcpy(p + off + 4, &id, 4);
	}
	return 0;
}
