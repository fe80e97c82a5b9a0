// SPDX-License-Identifier: GPL-2.0-or-later
/* records.c - the compact store of records of forgotten nodes (see records.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "layer.h"
#include "records.h"

/* One record; nodeid 0 marks a hole left by a removal (nodeids start at 2). */
struct entry {
	uint64_t nodeid;
	uint64_t parent;
	uint64_t ino;
	uint32_t generation;
	uint32_t check;
	uint32_t name_off; /* into names; the name is NUL-terminated there */
	uint16_t dev;	   /* index into devs */
	uint16_t len_type; /* name length (12 bits), S_IFMT >> 12 (4 bits) */
};
G_STATIC_ASSERT(sizeof(struct entry) == RECORDS_ENTRY_SIZE);

#define MIN_ENTRIES 64
#define MIN_SLOTS   128
#define MIN_NAMES   4096
#define EMPTY	    0u /* an index slot holds entry index + 1 */

/* Changes between two records_release() of a file-backed store (besides rebuilds and walks):
 * what their probes and writes mapped in leaves the process at least that often. */
#define RELEASE_EVERY 4096

struct records {
	int fd;		 /* the backing file, or -1: anonymous memory */
	void *area;	 /* one mapping: the entries, then the names */
	size_t area_len; /* bytes mapped, a page multiple */
	off_t area_off;	 /* where in the file */
	size_t since_release;
	struct entry *e; /* [first, n) in insertion order, with holes */
	size_t n, cap, first, live;
	char *names;
	size_t names_len, names_cap, names_dead, names_live;
	uint32_t *by_id, *by_key; /* slot_cap slots each */
	size_t slot_cap;
	dev_t *devs;
	size_t n_devs, devs_cap;
};

static size_t page_round(size_t bytes)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	return (bytes + pg - 1) / pg * pg;
}

/* Zeroed pages straight from the system: freed ones go back to it at once. */
static void *map(size_t bytes)
{
	if (bytes == 0)
		return NULL;
	void *p = mmap(NULL, page_round(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void unmap(void *p, size_t bytes)
{
	if (p)
		munmap(p, page_round(bytes));
}

/*
 * Maps `bytes` for the entries and names of a rebuild while the old area is still mapped. In
 * the file, the new area goes at offset 0 when it fits before the old one, else right after
 * it: a store that keeps its size alternates between two places, one that grows moves up
 * (the file is sparse: what lies before is punched or truncated away by area_retire()).
 */
static void *area_new(const struct records *r, size_t bytes, off_t *off)
{
	*off = 0;
	if (r->fd < 0)
		return map(bytes);
	if (r->area && (off_t)bytes > r->area_off)
		*off = r->area_off + (off_t)r->area_len;
	/* Blocks reserved now: a store never writes into a hole, which on a full disk would be a
	 * SIGBUS instead of a record not kept (-ENOMEM). */
	int err = layer_fallocate(r->fd, 0, *off, (off_t)bytes);
	struct stat st;
	if (err == -EOPNOTSUPP) /* only ever grows: the old area may lie after the new one */
		err = fstat(r->fd, &st) < 0 ? -errno
		      : st.st_size >= *off + (off_t)bytes
			      ? 0
			      : layer_ftruncate(r->fd, *off + (off_t)bytes);
	if (err < 0)
		return NULL;
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, *off);
	return p == MAP_FAILED ? NULL : p;
}

/* Gives the old area back once the new one (at new_off, new_len) holds the records. */
static void area_retire(const struct records *r, off_t new_off, size_t new_len)
{
	if (!r->area)
		return;
	munmap(r->area, r->area_len);
	if (r->fd < 0)
		return;
	if (new_off == 0)
		layer_ftruncate(r->fd, (off_t)new_len); /* the old area lay after: gone */
	else /* a filesystem without holes keeps the old bytes: disk space, never RSS */
		layer_fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r->area_off,
				(off_t)r->area_len);
}

static uint64_t mix(uint64_t h)
{
	/* Final mix of MurmurHash3: nodeids and inode numbers are dense. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t id_hash(uint64_t nodeid)
{
	return mix(nodeid);
}

static uint64_t key_hash(uint16_t dev, uint64_t ino)
{
	return mix(ino ^ ((uint64_t)dev * 0x9e3779b97f4a7c15ULL));
}

static size_t name_len(const struct entry *x)
{
	return x->len_type & 0xfff;
}

static uint64_t entry_hash(const struct records *r, const uint32_t *index, const struct entry *x)
{
	return index == r->by_id ? id_hash(x->nodeid) : key_hash(x->dev, x->ino);
}

/* A hash's home slot: any slot count works (multiply-shift), so the indexes grow with the
 * entries instead of doubling. */
static size_t home(const struct records *r, uint64_t h)
{
	return (size_t)(((unsigned __int128)h * r->slot_cap) >> 64);
}

static size_t next(const struct records *r, size_t i)
{
	return i + 1 == r->slot_cap ? 0 : i + 1;
}

static void index_add(struct records *r, uint32_t *index, size_t pos)
{
	size_t i = home(r, entry_hash(r, index, &r->e[pos]));
	while (index[i] != EMPTY)
		i = next(r, i);
	index[i] = (uint32_t)(pos + 1);
}

/* Linear probing with backward-shift deletion: no tombstones, probes stay short. */
static void index_del(struct records *r, uint32_t *index, size_t slot)
{
	size_t i = slot, j = slot;
	for (;;) {
		j = next(r, j);
		if (index[j] == EMPTY)
			break;
		size_t h = home(r, entry_hash(r, index, &r->e[index[j] - 1]));
		/* j's entry may move to i when its home is not cyclically within (i, j]. */
		bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
		if (!stays) {
			index[i] = index[j];
			i = j;
		}
	}
	index[i] = EMPTY;
}

static long find_id_slot(const struct records *r, uint64_t nodeid)
{
	if (!r->slot_cap || nodeid == 0)
		return -1;
	for (size_t i = home(r, id_hash(nodeid)); r->by_id[i] != EMPTY; i = next(r, i))
		if (r->e[r->by_id[i] - 1].nodeid == nodeid)
			return (long)i;
	return -1;
}

static long find_dev(const struct records *r, dev_t dev)
{
	for (size_t i = 0; i < r->n_devs; i++)
		if (r->devs[i] == dev)
			return (long)i;
	return -1;
}

static long find_key_slot(const struct records *r, const struct node_key *key)
{
	long dev = find_dev(r, key->dev);
	if (!r->slot_cap || dev < 0)
		return -1;
	for (size_t i = home(r, key_hash((uint16_t)dev, key->ino)); r->by_key[i] != EMPTY;
	     i = next(r, i)) {
		const struct entry *x = &r->e[r->by_key[i] - 1];
		if (x->ino == key->ino && x->dev == dev)
			return (long)i;
	}
	return -1;
}

static void info_of(const struct records *r, const struct entry *x, struct node_record_info *out)
{
	*out = (struct node_record_info){
		.nodeid = x->nodeid,
		.parent = x->parent,
		.key = {.dev = r->devs[x->dev], .ino = x->ino, .check = x->check},
		.type = (mode_t)(x->len_type >> 12) << 12,
		.generation = x->generation,
		.name = r->names + x->name_off,
	};
}

/*
 * Moves the live records, in order, into new arrays of `cap` entries, `names_cap` bytes of names
 * and indexes of `slots` slots; the old ones go back to the system. -ENOMEM: nothing changed.
 */
static int rebuild(struct records *r, size_t cap, size_t names_cap, size_t slots)
{
	cap = page_round(cap * sizeof(struct entry)) / sizeof(struct entry);
	names_cap = page_round(names_cap);
	slots = page_round(slots * sizeof(uint32_t)) / sizeof(uint32_t);
	size_t e_len = page_round(cap * sizeof(struct entry));
	size_t area_len = e_len + names_cap; /* page multiples: names_cap too */
	off_t area_off;
	void *area = area_new(r, area_len, &area_off);
	uint32_t *by_id = map(slots * sizeof(uint32_t));
	uint32_t *by_key = map(slots * sizeof(uint32_t));
	if (!area || !by_id || !by_key) {
		if (area)
			munmap(area, area_len);
		unmap(by_id, slots * sizeof(uint32_t));
		unmap(by_key, slots * sizeof(uint32_t));
		return -ENOMEM;
	}
	struct entry *e = area;
	char *names = (char *)area + e_len;
	size_t n = 0, len = 0;
	for (size_t i = r->first; i < r->n; i++) {
		if (r->e[i].nodeid == 0)
			continue;
		e[n] = r->e[i];
		size_t l = name_len(&r->e[i]) + 1;
		memcpy(names + len, r->names + r->e[i].name_off, l);
		e[n++].name_off = (uint32_t)len;
		len += l;
	}
	area_retire(r, area_off, area_len);
	unmap(r->by_id, r->slot_cap * sizeof(uint32_t));
	unmap(r->by_key, r->slot_cap * sizeof(uint32_t));
	*r = (struct records){.fd = r->fd,
			      .area = area,
			      .area_len = area_len,
			      .area_off = area_off,
			      .e = e,
			      .n = n,
			      .cap = cap,
			      .live = n,
			      .names = names,
			      .names_len = len,
			      .names_cap = names_cap,
			      .names_live = r->names_live,
			      .by_id = by_id,
			      .by_key = by_key,
			      .slot_cap = slots,
			      .devs = r->devs,
			      .n_devs = r->n_devs,
			      .devs_cap = r->devs_cap};
	for (size_t i = 0; i < n; i++) {
		index_add(r, r->by_id, i);
		index_add(r, r->by_key, i);
	}
	records_release(r); /* the copy just touched every page */
	return 0;
}

/*
 * Sizes for the live records with room to grow by a quarter (GROW_NUM / GROW_DEN); indexes
 * at most 3/4 full when the entries are. Each rebuild copies every record once, so an insert
 * costs GROW_DEN / (GROW_NUM - GROW_DEN) = 4 copies amortised: a memcpy and two hashes each.
 */
#define GROW_NUM 5
#define GROW_DEN 4
static int resize(struct records *r, size_t extra_name)
{
	size_t cap = MAX(MIN_ENTRIES, (r->live + 1) * GROW_NUM / GROW_DEN);
	size_t names = MAX(MIN_NAMES, (r->names_live + r->live + extra_name) * GROW_NUM / GROW_DEN);
	cap = page_round(cap * sizeof(struct entry)) / sizeof(struct entry);
	return rebuild(r, cap, names, MAX(MIN_SLOTS, cap * 4 / 3 + 1));
}

struct records *records_new(void)
{
	return records_new_on(-1);
}

struct records *records_new_on(int fd)
{
	struct records *r = g_new0(struct records, 1);
	r->fd = fd;
	return r;
}

void records_free(struct records *r)
{
	if (!r)
		return;
	if (r->area)
		munmap(r->area, r->area_len);
	unmap(r->by_id, r->slot_cap * sizeof(uint32_t));
	unmap(r->by_key, r->slot_cap * sizeof(uint32_t));
	if (r->fd >= 0)
		close(r->fd);
	g_free(r->devs);
	g_free(r);
}

void records_release(const struct records *r)
{
	/* MADV_DONTNEED on a shared file mapping only unmaps: the data stays in the file. */
	if (r->fd >= 0 && r->area)
		madvise(r->area, r->area_len, MADV_DONTNEED);
}

bool records_file_backed(const struct records *r)
{
	return r->fd >= 0;
}

static long dev_index(struct records *r, dev_t dev)
{
	long i = find_dev(r, dev);
	if (i >= 0)
		return i;
	if (r->n_devs >= RECORDS_DEV_MAX)
		return -EOVERFLOW;
	if (r->n_devs == r->devs_cap) {
		r->devs_cap = MAX(4, r->devs_cap * 2);
		r->devs = g_renew(dev_t, r->devs, r->devs_cap);
	}
	r->devs[r->n_devs] = dev;
	return (long)r->n_devs++;
}

/* Every RELEASE_EVERY changes (an insert, or a removal: the probes of both map pages in). */
static void release_every(struct records *r)
{
	if (r->fd >= 0 && ++r->since_release >= RELEASE_EVERY) {
		r->since_release = 0;
		records_release(r);
	}
}

int records_insert(struct records *r, const struct node_record_info *info)
{
	size_t len = strlen(info->name);
	if (len > RECORDS_NAME_MAX)
		return -ENAMETOOLONG;
	if (info->nodeid == 0 || find_id_slot(r, info->nodeid) >= 0 ||
	    find_key_slot(r, &info->key) >= 0)
		return -EEXIST;
	if (r->live >= UINT32_MAX - 2 || r->names_live + r->live + len + 1 >= UINT32_MAX / 2)
		return -EOVERFLOW;
	long dev = dev_index(r, info->key.dev);
	if (dev < 0)
		return (int)dev;
	if (r->n == r->cap || r->names_len + len + 1 > r->names_cap ||
	    (r->live + 1) * 4 > r->slot_cap * 3) {
		int err = resize(r, len + 1);
		if (err < 0)
			return err;
	}
	struct entry *x = &r->e[r->n];
	*x = (struct entry){.nodeid = info->nodeid,
			    .parent = info->parent,
			    .ino = info->key.ino,
			    .generation = info->generation,
			    .check = info->key.check,
			    .name_off = (uint32_t)r->names_len,
			    .dev = (uint16_t)dev,
			    .len_type = (uint16_t)(len | ((info->type & S_IFMT) >> 12) << 12)};
	memcpy(r->names + r->names_len, info->name, len + 1);
	r->names_len += len + 1;
	r->names_live += len;
	index_add(r, r->by_id, r->n);
	index_add(r, r->by_key, r->n);
	r->n++;
	r->live++;
	release_every(r);
	return 0;
}

bool records_find_id(const struct records *r, uint64_t nodeid, struct node_record_info *out)
{
	long s = find_id_slot(r, nodeid);
	if (s < 0)
		return false;
	if (out)
		info_of(r, &r->e[r->by_id[s] - 1], out);
	return true;
}

bool records_find_key(const struct records *r, const struct node_key *key,
		      struct node_record_info *out)
{
	long s = find_key_slot(r, key);
	if (s < 0)
		return false;
	if (out)
		info_of(r, &r->e[r->by_key[s] - 1], out);
	return true;
}

/* Removes the record in by_id slot `s`; shrinks the store once it is mostly holes. */
static void remove_slot(struct records *r, long s)
{
	size_t pos = r->by_id[s] - 1;
	struct entry *x = &r->e[pos];
	struct node_key key = {.dev = r->devs[x->dev], .ino = x->ino};
	index_del(r, r->by_key, (size_t)find_key_slot(r, &key));
	index_del(r, r->by_id, (size_t)s);
	r->names_dead += name_len(x) + 1;
	r->names_live -= name_len(x);
	x->nodeid = 0;
	r->live--;
	release_every(r);
	while (r->first < r->n && r->e[r->first].nodeid == 0)
		r->first++;
	/* Memory follows the records: at most a quarter full, it is given back (a failed
	 * rebuild keeps the larger arrays, which still work). */
	if ((r->live * 4 < r->cap && r->cap > MIN_ENTRIES) ||
	    (r->names_dead * 2 > r->names_cap && r->names_cap > MIN_NAMES))
		resize(r, 0);
}

bool records_remove(struct records *r, uint64_t nodeid)
{
	long s = find_id_slot(r, nodeid);
	if (s < 0)
		return false;
	remove_slot(r, s);
	return true;
}

bool records_remove_oldest(struct records *r)
{
	if (r->live == 0)
		return false;
	return records_remove(r, r->e[r->first].nodeid);
}

size_t records_count(const struct records *r)
{
	return r->live;
}

size_t records_bytes(const struct records *r)
{
	size_t idx = r->slot_cap ? 2 * page_round(r->slot_cap * sizeof(uint32_t)) : 0;
	size_t e = r->cap ? page_round(r->cap * sizeof(struct entry)) : 0;
	size_t names = r->names_cap ? page_round(r->names_cap) : 0;
	return e + names + idx + r->devs_cap * sizeof(dev_t);
}

size_t records_name_bytes(const struct records *r)
{
	return r->names_live;
}

void records_foreach(const struct records *r,
		     void (*fn)(const struct node_record_info *info, void *data), void *data)
{
	for (size_t i = r->first; i < r->n; i++) {
		if (r->e[i].nodeid == 0)
			continue;
		struct node_record_info info;
		info_of(r, &r->e[i], &info);
		fn(&info, data);
	}
}
