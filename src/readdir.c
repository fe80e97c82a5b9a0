// SPDX-License-Identifier: GPL-2.0-or-later
/* readdir.c - the merged listing of a directory across its layers (see readdir.h). */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <dirent.h>

#include "autofd.h"
#include "layer.h"
#include "readdir.h"
#include "whiteout.h"

/* The record getdents64 fills in; glibc does not export it under this name. */
struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Big enough that a directory of a few thousand entries is read in one syscall. */
#define GETDENTS_BUF_SIZE (128 * 1024)

/*
 * State of one merge. `seen` holds every name already decided by a higher layer: shown (the key is
 * the entry's own name, owned by `out`) or hidden by a whiteout (the key lives in `hidden_names`).
 * Whiteouts found in a layer go to `pending` first and join `seen` only once that layer is done:
 * a whiteout hides its name in the layers below, never in its own layer (OCI rule for ".wh.X"
 * next to X).
 */
struct merge {
	size_t n;
	GHashTable *seen;
	GStringChunk *hidden_names;
	GPtrArray *pending;
	GPtrArray *out;
	char *buf;
};

/* Records that `name` is hidden below the current layer. Nothing lies below the last layer, and a
 * name already decided above needs no second record. */
static void hide_below(struct merge *m, size_t layer, const char *name)
{
	if (layer + 1 == m->n || g_hash_table_contains(m->seen, name))
		return;
	g_ptr_array_add(m->pending, g_string_chunk_insert(m->hidden_names, name));
}

static void flush_pending(struct merge *m)
{
	for (guint i = 0; i < m->pending->len; i++)
		g_hash_table_add(m->seen, m->pending->pdata[i]);
	g_ptr_array_set_size(m->pending, 0);
}

/* A DT_CHR or DT_UNKNOWN entry may be a 0/0 whiteout: one fstatat decides, and gives the type an
 * fs without d_type did not. Returns 1 for a whiteout, 0 for a real entry, -errno. */
static int check_candidate(int fd, const char *name, unsigned char *type)
{
	struct stat st;
	int r = layer_fstatat(fd, name, &st);

	if (r < 0)
		return r;
	if (whiteout_is_chardev(&st))
		return 1;
	*type = IFTODT(st.st_mode);
	return 0;
}

static void add_entry(struct merge *m, size_t layer, const struct linux_dirent64 *d, size_t len,
		      unsigned char type)
{
	struct merged_entry *e = g_malloc(sizeof(*e) + len + 1);

	e->ino = (ino_t)d->d_ino;
	e->type = type;
	e->layer = (unsigned short)layer;
	memcpy(e->name, d->d_name, len + 1);
	g_ptr_array_add(m->out, e);
	/* Names are unique within a layer: the last layer need not record what it shows. */
	if (layer + 1 < m->n)
		g_hash_table_add(m->seen, e->name);
}

/* Decides the fate of one directory entry of layer `layer` (read through `fd`). */
static int merge_entry(struct merge *m, size_t layer, int fd, const struct linux_dirent64 *d,
		       size_t len)
{
	const char *name = d->d_name;
	unsigned char type = d->d_type;
	const char *target;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	if ((target = whiteout_wh_target(name))) {
		hide_below(m, layer, target);
		return 0;
	}
	if (whiteout_is_private_name(name) || g_hash_table_contains(m->seen, name))
		return 0;
	if (type == DT_CHR || type == DT_UNKNOWN) {
		int r = check_candidate(fd, name, &type);
		if (r == -ENOENT) /* removed since getdents: not there any more */
			return 0;
		if (r < 0)
			return r;
		if (r == 1) {
			hide_below(m, layer, name);
			return 0;
		}
	}
	add_entry(m, layer, d, len, type);
	return 0;
}

/* Walks the records of one getdents64 batch; a malformed record is -EIO, not a read past it. */
static int merge_batch(struct merge *m, size_t layer, int fd, size_t nread)
{
	const size_t hdr = offsetof(struct linux_dirent64, d_name);

	for (size_t pos = 0; pos < nread;) {
		const struct linux_dirent64 *d = (const void *)(m->buf + pos);
		if (nread - pos < hdr || d->d_reclen <= hdr || d->d_reclen > nread - pos)
			return -EIO;
		size_t len = strnlen(d->d_name, d->d_reclen - hdr);
		if (len == d->d_reclen - hdr)
			return -EIO;
		int r = merge_entry(m, layer, fd, d, len);
		if (r < 0)
			return r;
		pos += d->d_reclen;
	}
	return 0;
}

static int merge_layer(struct merge *m, size_t layer, int dirfd)
{
	autofd int fd = layer_opendir_fd(dirfd);

	if (fd < 0)
		return fd;
	for (;;) {
		ssize_t nread = layer_getdents(fd, m->buf, GETDENTS_BUF_SIZE);
		if (nread < 0)
			return (int)nread;
		if (nread == 0)
			break;
		int r = merge_batch(m, layer, fd, (size_t)nread);
		if (r < 0)
			return r;
	}
	flush_pending(m);
	return 0;
}

int readdir_merge(const int *dirfds, size_t n, GPtrArray **out)
{
	/* merged_entry.layer is an unsigned short. */
	if (n > (size_t)USHRT_MAX + 1)
		return -EINVAL;

	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) pending = g_ptr_array_new();
	g_autofree char *buf = g_malloc(GETDENTS_BUF_SIZE);
	struct merge m = {
		.n = n,
		.seen = seen,
		.hidden_names = g_string_chunk_new(4096),
		.pending = pending,
		.out = entries,
		.buf = buf,
	};
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++)
		r = merge_layer(&m, i, dirfds[i]);
	g_string_chunk_free(m.hidden_names);
	if (r < 0)
		return r;
	*out = g_steal_pointer(&entries);
	return 0;
}
