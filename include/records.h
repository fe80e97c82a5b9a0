/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * records.h - the store of records of forgotten nodes (node.h, FORGOTTEN NODES), compact.
 *
 * A record says what finds a forgotten node again: nodeid, parent nodeid, name, identity
 * (dev, ino, check), type and generation. A walk of a large tree followed by a cache drop turns
 * every node into one, so a record is kept small and outside malloc's heap:
 *   - entries of RECORDS_ENTRY_SIZE bytes in one array, in insertion order (oldest first); the
 *     device is an index into a small table of the devices seen (at most RECORDS_DEV_MAX), the
 *     type 4 bits;
 *   - names, with their NUL, in one character arena;
 *   - two open-addressing indexes (by nodeid, by (dev, ino)) of 4-byte slots, at most 3/4 full.
 * All four are mmap'd directly (page granular, not malloc), so removed records give their memory
 * back to the system. The entries and names (the bulk: ~60 of ~72 bytes a record) may live in a
 * file instead of anonymous memory (records_new_on(): the daemon gives an unnamed O_TMPFILE in
 * the work dir, README "Handles"): one MAP_SHARED mapping, its blocks reserved with fallocate,
 * whose pages records_release() drops from the process (after a rebuild, every RELEASE_EVERY
 * inserts, after a walk of all records). The cost: they stay in the page cache of that file (the
 * machine's memory, not the daemon's RSS), a later touch (a probe that lands on the entry, a
 * lookup of a forgotten node) is a minor fault, or a read from disk once the kernel wrote them
 * back and reclaimed them; the file takes disk space on the upper filesystem, sparse where old
 * areas were; a full disk means records not kept, as -ENOMEM. A store that is full is rebuilt (the records copied in order, holes left
 * by removals closed) with room for a quarter more; one that removals left less than a quarter
 * full is rebuilt to fit. So, as long as no record was removed since the last rebuild (a walk
 * and a cache drop: records only added), the store of n records with names of N bytes takes at
 * most
 *   entries  RECORDS_ENTRY_SIZE x (5/4 (n + 1) + one page)
 *   names    5/4 (N + n + the longest name + 1) + one page
 *   indexes  2 x 4 x (4/3 entries + 1 + one page)
 *   devices  sizeof(dev_t) x (2 x devices seen)
 * about 80 bytes per record with names of 11 bytes (records_bytes(); tests/integration/memory.py
 * checks this bound through the status query), and after removals at most 4 x as much.
 * Contract: at most one record per nodeid and one per (dev, ino) (the caller removes the old one
 * first; records_insert() refuses a duplicate); names of at most RECORDS_NAME_MAX bytes. Not
 * thread-safe: node.c calls it under the table lock. A `name` returned in an info points into the
 * store and is valid until its next change.
 */
#ifndef PLYFS_RECORDS_H
#define PLYFS_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

#define RECORDS_ENTRY_SIZE 40
#define RECORDS_NAME_MAX   4095 /* 12 bits; NAME_MAX is 255 */
#define RECORDS_DEV_MAX	   65535
struct records;

/* A store in anonymous memory. */
struct records *records_new(void);
/* A store whose entries and names live in file `fd` (an empty unnamed file, read-write), which
 * it owns from now on (closed by records_free); fd < 0: as records_new(). */
struct records *records_new_on(int fd);
void records_free(struct records *r);
/* Drops the file-backed pages of entries and names from the process (they stay in the file);
 * nothing for an anonymous store. Contents are unchanged, so it may run under a shared lock. */
void records_release(const struct records *r);
bool records_file_backed(const struct records *r);

/* Adds a record, newest. -EEXIST when its nodeid or its (dev, ino) has one, -ENAMETOOLONG for a
 * longer name, -EOVERFLOW past RECORDS_DEV_MAX devices or 2^32 - 2 entries, -ENOMEM. */
int records_insert(struct records *r, const struct node_record_info *info);
/* Finds by nodeid / by (dev, ino) (the check is not compared); *out's name is borrowed. */
bool records_find_id(const struct records *r, uint64_t nodeid, struct node_record_info *out);
bool records_find_key(const struct records *r, const struct node_key *key,
		      struct node_record_info *out);
bool records_remove(struct records *r, uint64_t nodeid);
/* Removes the oldest record; false when there is none. */
bool records_remove_oldest(struct records *r);
size_t records_count(const struct records *r);
/* Bytes mapped for the store (entries, names, indexes, devices). */
size_t records_bytes(const struct records *r);
/* Bytes of the names held, without their NULs. */
size_t records_name_bytes(const struct records *r);
/* Calls fn for every record, oldest first; fn must not change the store. */
void records_foreach(const struct records *r,
		     void (*fn)(const struct node_record_info *info, void *data), void *data);

#endif
