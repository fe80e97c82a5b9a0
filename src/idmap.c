// SPDX-License-Identifier: GPL-2.0-or-later
/* idmap.c - uidmapping= / gidmapping= ranges: parsing and mapping in both directions. */
#include <errno.h>
#include <stdbool.h>
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
	if ((guint64)r[i].container + r[i].count - 1 > UINT32_MAX ||
	    (guint64)r[i].host + r[i].count - 1 > UINT32_MAX) {
		*err = g_strdup_printf("range %zu (%u:%u:%u) goes past id %u", i + 1,
				       r[i].container, r[i].host, r[i].count, UINT32_MAX);
		return -EINVAL;
	}
	for (size_t j = 0; j < i; j++) {
		const char *side = NULL;

		if (spans_overlap(r[i].container, r[i].count, r[j].container, r[j].count))
			side = "container";
		else if (spans_overlap(r[i].host, r[i].count, r[j].host, r[j].count))
			side = "host";
		if (side) {
			*err = g_strdup_printf(
				"range %zu (%u:%u:%u) overlaps range %zu on the %s side", i + 1,
				r[i].container, r[i].host, r[i].count, j + 1, side);
			return -EINVAL;
		}
	}
	return 0;
}

int idmap_parse(const char *spec, struct idmap *map, char **err)
{
	static const char *const what[3] = {"container id", "host id", "count"};
	g_auto(GStrv) parts = g_strsplit(spec, ":", -1);
	guint n_parts = g_strv_length(parts);
	g_autofree struct idmap_range *r = NULL;
	size_t n;
	int ret;

	if (n_parts == 0 || n_parts % 3 != 0) {
		*err = g_strdup_printf("'%s' is not a list of container:host:count triples", spec);
		return -EINVAL;
	}
	n = n_parts / 3;
	r = g_new0(struct idmap_range, n);
	for (size_t i = 0; i < n; i++) {
		uint32_t *fields[3] = {&r[i].container, &r[i].host, &r[i].count};

		for (size_t f = 0; f < 3; f++) {
			ret = parse_field(parts[i * 3 + f], what[f], i + 1, fields[f], err);
			if (ret < 0)
				return ret;
		}
		ret = check_range(r, i, err);
		if (ret < 0)
			return ret;
	}
	map->ranges = g_steal_pointer(&r);
	map->n = n;
	return 0;
}

void idmap_clear(struct idmap *map)
{
	g_clear_pointer(&map->ranges, g_free);
	map->n = 0;
}

uint32_t idmap_to_container(const struct idmap *map, uint32_t host_id)
{
	if (map->n == 0)
		return host_id;
	for (size_t i = 0; i < map->n; i++) {
		const struct idmap_range *r = &map->ranges[i];

		if (host_id >= r->host && host_id - r->host < r->count)
			return r->container + (host_id - r->host);
	}
	return IDMAP_OVERFLOW_ID;
}

int idmap_to_host(const struct idmap *map, uint32_t container_id, uint32_t *host)
{
	if (map->n == 0) {
		*host = container_id;
		return 0;
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct idmap_range *r = &map->ranges[i];

		if (container_id >= r->container && container_id - r->container < r->count) {
			*host = r->host + (container_id - r->container);
			return 0;
		}
	}
	return -EINVAL;
}
