/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * idmap.h - uidmapping= / gidmapping= in fuse-overlayfs' meaning.
 *
 * The option value is a list "A:B:N[:A:B:N...]": the N ids A.. stored in the layers are shown
 * through the mount as B.. (fuse-overlayfs(1); containers-storage writes podman's --uidmap
 * 0:100000:65536 as uidmapping=:0:100000:65536, so the image's root-owned files stay owned by 0
 * on disk and show as 100000). Empty fields (a leading, trailing or doubled ':') are skipped, as
 * fuse-overlayfs' strtok() parser does.
 *
 * Shown (idmap_to_shown): a stored id outside every range shows as the overflow id (the
 * kernel's /proc/sys/kernel/overflowuid/gid, 65534 by default). Stored (idmap_to_stored): a shown
 * id outside every range has no stored id: -EINVAL (chown(2)'s answer for an id that cannot be
 * represented); a new entry of such a caller gets the overflow id (idmap_new_owner), as
 * fuse-overlayfs stores it, so that host root can still create in a mapped container's tree.
 * An empty map (n == 0) is the identity both ways.
 */
#ifndef PLYFS_IDMAP_H
#define PLYFS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_range {
	uint32_t stored; /* A: the first id as the layers hold it */
	uint32_t shown;	 /* B: the first id as the mount shows it */
	uint32_t count;
};

struct idmap {
	struct idmap_range *ranges; /* g_malloc'd; NULL when no mapping was given */
	size_t n;
	uint32_t overflow; /* shown for unmapped stored ids; idmap_parse() sets 65534 */
};

#define IDMAP_OVERFLOW_ID 65534u

/* Parses `spec` into `map` (which must be zeroed). Returns 0 or -EINVAL; on error `*err` gets a
 * g_malloc'd message naming the bad part (caller frees with g_free). Ranges must not overflow
 * 32 bits and must not overlap on either side; a list with no range at all is refused. */
int idmap_parse(const char *spec, struct idmap *map, char **err);
void idmap_clear(struct idmap *map);
/* Reads the overflow id from `path` (/proc/sys/kernel/overflowuid or overflowgid) into
 * map->overflow; keeps the current value when the file cannot be read or holds no id. */
void idmap_read_overflow(struct idmap *map, const char *path);

/* The id shown for stored id `id`: identity without a map, map->overflow outside every range. */
uint32_t idmap_to_shown(const struct idmap *map, uint32_t id);
/* Returns 0 and sets *stored, or -EINVAL (*stored untouched) when shown id `id` is not mapped. */
int idmap_to_stored(const struct idmap *map, uint32_t id, uint32_t *stored);
/* The stored owner of a new entry made by a caller with shown id `id`: the overflow id when
 * unmapped. */
uint32_t idmap_new_owner(const struct idmap *map, uint32_t id);

/*
 * POSIX ACL xattr values (system.posix_acl_access/default) carry uids and gids: maps the ACL_USER
 * and ACL_GROUP entries of `value` in place, stored to shown (`to_shown`) or back. A value that
 * is not a version-2 ACL is left as it is (the filesystem judges it). Returns 0, or -EINVAL when
 * a shown id has no stored id (setxattr refuses it, as chown does).
 */
int idmap_acl(const struct idmap *uids, const struct idmap *gids, void *value, size_t len,
	      int to_shown);

#endif
