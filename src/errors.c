// SPDX-License-Identifier: GPL-2.0-or-later
/* errors.c - the error slot (see errors.h for what is noted and the lifetime rules). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "errors.h"
#include "log.h"

enum { FIRST_EMPTY, FIRST_WRITING, FIRST_SET };

struct kind_slot {
	atomic_ulong count;
	atomic_int first_state; /* FIRST_*: written by the note that claimed it, once */
	struct err_record first;
	atomic_flag last_lock; /* taken by the note writing `last`; never waited for by a note */
	/* Odd while a note writes `last`, bumped twice per write; 0: `last` never written. Readers
	 * copy `last` without the lock and copy again when it moved (a seqlock): a reader stopped
	 * mid-copy (preempted) cannot make every later note miss the record. */
	atomic_ulong last_ver;
	struct err_record last;
	struct log_rate rate;
};

struct err_slot {
	atomic_ulong seq;    /* notes so far, all kinds */
	atomic_ulong missed; /* notes that found a last record's lock taken */
	struct kind_slot kinds[ERR_KIND_N];
	/* Read-only after err_slot_new(). */
	size_t n_layers;
	char **paths; /* canonical layer roots, fs->layers order */
	bool upper;
	char *workdir;
};

static const char *const kind_names[ERR_KIND_N] = {
	[ERR_IO] = "io",
	[ERR_NOSPC] = "nospc",
	[ERR_DQUOT] = "dquot",
	[ERR_ROFS] = "rofs",
	[ERR_STALE] = "stale",
	[ERR_NOTCONN] = "notconn",
	[ERR_RESOURCES] = "resources",
	[ERR_METADATA] = "metadata",
	[ERR_COPY_UP] = "copy_up",
};

static _Atomic(struct err_slot *) default_slot;

struct err_slot *err_slot_new(const char *const *layer_paths, size_t n_layers, bool upper,
			      const char *workdir)
{
	struct err_slot *s = g_new0(struct err_slot, 1);
	s->n_layers = n_layers;
	s->paths = g_new0(char *, n_layers + 1);
	for (size_t i = 0; i < n_layers; i++)
		s->paths[i] = g_strdup(layer_paths[i]);
	s->upper = upper;
	s->workdir = g_strdup(workdir);
	for (int k = 0; k < ERR_KIND_N; k++) {
		atomic_flag_clear(&s->kinds[k].last_lock);
		s->kinds[k].rate.max = ERR_LOG_PER_SECOND;
	}
	return s;
}

void err_slot_free(struct err_slot *slot)
{
	if (!slot)
		return;
	struct err_slot *expect = slot;
	atomic_compare_exchange_strong(&default_slot, &expect, NULL);
	g_strfreev(slot->paths);
	g_free(slot->workdir);
	g_free(slot);
}

void err_slot_set_default(struct err_slot *slot)
{
	atomic_store(&default_slot, slot);
}

int err_kind_of(int err)
{
	switch (err) {
	case EIO:
	case EUCLEAN:
	case EBADMSG:
		return ERR_IO;
	case ENOSPC:
		return ERR_NOSPC;
	case EDQUOT:
		return ERR_DQUOT;
	case EROFS:
		return ERR_ROFS;
	case ESTALE:
		return ERR_STALE;
	case ENOTCONN:
	case ECONNABORTED:
		return ERR_NOTCONN;
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		return ERR_RESOURCES;
	default:
		return -1;
	}
}

const char *err_kind_name(enum err_kind kind)
{
	return (unsigned)kind < ERR_KIND_N ? kind_names[kind] : "?";
}

const char *err_layer_name(const struct err_slot *slot, int layer, char *buf)
{
	if (layer == ERR_LAYER_WORKDIR)
		return "workdir";
	if (layer < 0 || (size_t)layer >= slot->n_layers)
		return "?";
	if (slot->upper && layer == 0)
		return "upper";
	snprintf(buf, 16, "lower%d", layer - (slot->upper ? 1 : 0));
	return buf;
}

const char *err_layer_path(const struct err_slot *slot, int layer)
{
	if (layer == ERR_LAYER_WORKDIR)
		return slot->workdir;
	if (layer < 0 || (size_t)layer >= slot->n_layers)
		return NULL;
	return slot->paths[layer];
}

/* --- building a record (no allocation from here to the end of errors_note) --- */

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* How many bytes of `path` to cut to get the path inside `root` when path lies beneath root (or
 * is it), else -1. */
static ssize_t beneath(const char *path, const char *root)
{
	size_t n = strlen(root);
	while (n > 0 && root[n - 1] == '/')
		n--; /* "/" itself: cut nothing */
	if (strncmp(path, root, n) != 0 || (path[n] != '/' && path[n] != '\0'))
		return -1;
	return (ssize_t)n;
}

/* The layer holding `path` (the longest root it lies beneath; lowers may nest), and in *rel the
 * path inside it ("" for the root itself). */
static int find_layer(const struct err_slot *s, const char *path, const char **rel)
{
	int best = ERR_LAYER_UNKNOWN;
	ssize_t best_cut = -1;
	for (size_t i = 0; i < s->n_layers; i++) {
		ssize_t n = beneath(path, s->paths[i]);
		if (n > best_cut) {
			best = (int)i;
			best_cut = n;
		}
	}
	ssize_t n = s->workdir ? beneath(path, s->workdir) : -1;
	if (n > best_cut) {
		best = ERR_LAYER_WORKDIR;
		best_cut = n;
	}
	if (best_cut >= 0)
		*rel = path + best_cut;
	return best;
}

/* The path behind fd (readlink of /proc/self/fd/N) into buf, or NULL. */
static const char *fd_path(int fd, char *buf, size_t size)
{
	if (fd < 0)
		return NULL;
	char link[40];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, size - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

/* dst = dir "/" name (either may be NULL), keeping the tail when it does not fit: the file's own
 * name is the most telling part. */
static void join_tail(char *dst, size_t cap, const char *dir, const char *name, bool *truncated)
{
	const char *piece[3] = {dir ? dir : "", "", name ? name : ""};
	size_t len[3] = {strlen(piece[0]), 0, strlen(piece[2])};
	if (dir && name && (len[0] == 0 || dir[len[0] - 1] != '/')) {
		piece[1] = "/";
		len[1] = 1;
	}
	size_t total = len[0] + len[1] + len[2];
	size_t skip = 0, out = 0;
	*truncated = total > cap - 1;
	if (*truncated) {
		memcpy(dst, "...", 3);
		out = 3;
		skip = total - (cap - 1 - 3);
	}
	for (int i = 0; i < 3; i++) {
		size_t from = skip < len[i] ? skip : len[i];
		skip -= from;
		memcpy(dst + out, piece[i] + from, len[i] - from);
		out += len[i] - from;
	}
	dst[out] = '\0';
}

static void fill_record(const struct err_slot *s, struct err_record *rec, int err,
			const struct err_site *site, const struct req_ctx *rq)
{
	memset(rec, 0, sizeof(*rec));
	rec->err = err;
	rec->op = rq ? rq->op : REQ_OP_NONE;
	rec->nodeid = site->nodeid ? site->nodeid : (rq ? rq->nodeid : 0);
	clock_gettime(CLOCK_REALTIME, &rec->time);
	copy_str(rec->call, sizeof(rec->call), site->call ? site->call : "?");

	const char *name = site->name;
	if (name && site->call && strstr(site->call, "xattr")) {
		/* The name argument of an xattr call is the attribute, not a path component. */
		copy_str(rec->arg, sizeof(rec->arg), name);
		name = NULL;
	}
	if (name && (name[0] == '\0' || strcmp(name, ".") == 0))
		name = NULL;

	char buf[PATH_MAX];
	const char *dir = fd_path(site->fd, buf, sizeof(buf));
	rec->layer = site->layer;
	if (dir && dir[0] == '/') {
		const char *rel = dir;
		int found = find_layer(s, dir, &rel);
		if (rec->layer == ERR_LAYER_FROM_FD || rec->layer == found) {
			rec->layer = found;
			dir = rel[0] ? rel : "/";
		}
	}
	if (rec->layer == ERR_LAYER_FROM_FD)
		rec->layer = ERR_LAYER_UNKNOWN;
	if (!dir && site->name && !site->name[0] && rec->layer >= 0)
		dir = "/"; /* the root of a known layer */
	if (!dir && !name)
		dir = "?";
	join_tail(rec->path, sizeof(rec->path), dir, name, &rec->truncated);
}

/* --- storing it --- */

static void store_first(struct kind_slot *k, const struct err_record *rec)
{
	int expect = FIRST_EMPTY;
	if (atomic_load_explicit(&k->first_state, memory_order_relaxed) != FIRST_EMPTY ||
	    !atomic_compare_exchange_strong(&k->first_state, &expect, FIRST_WRITING))
		return;
	k->first = *rec;
	atomic_store_explicit(&k->first_state, FIRST_SET, memory_order_release);
}

static void store_last(struct err_slot *s, struct kind_slot *k, const struct err_record *rec)
{
	if (atomic_flag_test_and_set_explicit(&k->last_lock, memory_order_acquire)) {
		atomic_fetch_add_explicit(&s->missed, 1, memory_order_relaxed);
		return;
	}
	unsigned long v = atomic_load_explicit(&k->last_ver, memory_order_relaxed);
	if (v == 0 || k->last.seq < rec->seq) {
		atomic_store_explicit(&k->last_ver, v + 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_release); /* odd before any byte of the record */
		k->last = *rec;
		atomic_store_explicit(&k->last_ver, v + 2, memory_order_release);
	}
	atomic_flag_clear_explicit(&k->last_lock, memory_order_release);
}

static void log_note(const struct err_slot *s, enum err_kind kind, struct kind_slot *k,
		     const struct err_record *rec)
{
	long dropped;
	if (!log_rate_allow(&k->rate, &dropped))
		return;
	if (dropped)
		log_msg(LOG_WARNING, "(%ld more %s errors not logged)", dropped,
			err_kind_name(kind));
	char lname[16];
	const char *lpath = err_layer_path(s, rec->layer);
	const char *ename = strerrorname_np(rec->err);
	const char *edesc = strerrordesc_np(rec->err);
	char during[64] = "outside any request";
	if (rec->op != REQ_OP_NONE)
		snprintf(during, sizeof(during), "in %s of nodeid %" PRIu64, req_op_name(rec->op),
			 rec->nodeid);
	log_msg(LOG_WARNING, "%s error: %s%s%s on %s layer %s, path %s, %s: %s (%s)",
		err_kind_name(kind), rec->call, rec->arg[0] ? " " : "", rec->arg,
		err_layer_name(s, rec->layer, lname), lpath ? lpath : "?", rec->path, during,
		ename ? ename : "?", edesc ? edesc : "?");
}

void errors_note(struct err_slot *slot, enum err_kind kind, int err, const struct err_site *site)
{
	const struct req_ctx *rq = req_current();
	if (!slot)
		slot = rq && rq->slot ? rq->slot : atomic_load(&default_slot);
	if (!slot || (unsigned)kind >= ERR_KIND_N)
		return;
	struct kind_slot *k = &slot->kinds[kind];
	/* Counted first: whatever happens to the records, the error is not lost. */
	atomic_fetch_add_explicit(&k->count, 1, memory_order_relaxed);
	struct err_record rec;
	fill_record(slot, &rec, err, site, rq);
	rec.seq = atomic_fetch_add_explicit(&slot->seq, 1, memory_order_relaxed) + 1;
	store_first(k, &rec);
	store_last(slot, k, &rec);
	if (!site->quiet)
		log_note(slot, kind, k, &rec);
}

void errors_note_call(int err, const char *call, int fd, const char *arg)
{
	int kind = err_kind_of(err);
	if (kind < 0)
		return;
	struct err_site site = {.call = call, .fd = fd, .name = arg, .layer = ERR_LAYER_FROM_FD};
	errors_note(NULL, (enum err_kind)kind, err, &site);
}

void errors_note_metadata(int err, const char *what, int layer, int fd, const char *name)
{
	struct err_site site = {
		.call = what, .fd = fd, .name = name, .layer = layer, .quiet = true};
	errors_note(NULL, ERR_METADATA, err, &site);
}

void errors_note_metadata_write(int err, const char *xname, int fd)
{
	struct err_site site = {
		.call = "setxattr", .fd = fd, .name = xname, .layer = ERR_LAYER_FROM_FD};
	errors_note(NULL, ERR_METADATA, err, &site);
}

void errors_note_copy_up(int err, uint64_t nodeid, const char *name)
{
	/* Layer 0 is the upper layer whenever a copy-up can happen at all. */
	struct err_site site = {
		.call = "copy_up", .fd = -1, .name = name, .layer = 0, .nodeid = nodeid};
	errors_note(NULL, ERR_COPY_UP, err, &site);
}

/* --- reading --- */

/* Copies `last` as no note was writing it: again while a note wrote meanwhile (the seqlock's read
 * side; the copy may see a half-written record, which the version check then throws away). */
static void read_last(struct kind_slot *k, struct err_kind_snapshot *o)
{
	for (;;) {
		unsigned long v = atomic_load_explicit(&k->last_ver, memory_order_acquire);
		if (v & 1) {
			sched_yield(); /* a note is copying one record */
			continue;
		}
		o->last_set = v != 0;
		if (o->last_set)
			o->last = k->last;
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&k->last_ver, memory_order_relaxed) == v)
			return;
	}
}

void err_slot_read(struct err_slot *slot, struct err_snapshot *out)
{
	memset(out, 0, sizeof(*out));
	out->notes = atomic_load_explicit(&slot->seq, memory_order_relaxed);
	for (int i = 0; i < ERR_KIND_N; i++) {
		struct kind_slot *k = &slot->kinds[i];
		struct err_kind_snapshot *o = &out->kind[i];
		o->count = atomic_load_explicit(&k->count, memory_order_relaxed);
		int st = atomic_load_explicit(&k->first_state, memory_order_acquire);
		if (st == FIRST_SET) {
			o->first = k->first;
			o->first_set = true;
		}
		o->first_pending = st == FIRST_WRITING;
		read_last(k, o);
	}
	out->records_missed = atomic_load_explicit(&slot->missed, memory_order_relaxed);
}
