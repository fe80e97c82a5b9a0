/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * idmap.h - uidmapping= / gidmapping= (fuse-overlayfs compatible).
 *
 * The option value is a list "C:H:N[:C:H:N...]": N ids starting at container id C are stored
 * on disk as host ids starting at H. plyfs shows files as container ids (to_container) and
 * stores new owners as host ids (to_host). An id outside every range maps to the overflow id
 * 65534 when shown, and is refused (-EINVAL) when stored.
 */
#ifndef PLYFS_IDMAP_H
#define PLYFS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_range {
	uint32_t container;
	uint32_t host;
	uint32_t count;
};

struct idmap {
	struct idmap_range *ranges; /* g_malloc'd; NULL when no mapping was given */
	size_t n;
};

#define IDMAP_OVERFLOW_ID 65534u

/* Parses `spec` into `map` (which must be zeroed). Returns 0 or -EINVAL; on error `*err` gets a
 * g_malloc'd message naming the bad part (caller frees with g_free). Ranges must not overflow
 * 32 bits and must not overlap on either side. */
int idmap_parse(const char *spec, struct idmap *map, char **err);
void idmap_clear(struct idmap *map);

/* Identity when map->n == 0. */
uint32_t idmap_to_container(const struct idmap *map, uint32_t host_id);
/* Returns 0 and sets *host, or -EINVAL when `container_id` is not mapped. */
int idmap_to_host(const struct idmap *map, uint32_t container_id, uint32_t *host);

#endif
