// SPDX-License-Identifier: GPL-2.0-or-later
/* file.c - open files and symlink targets (see file.h). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "atime.h"
#include "copy_up.h"
#include "file.h"
#include "index.h"
#include "inode.h"
#include "override.h"

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* (dirfd, name), or the entry behind dirfd itself when name is NULL (removed while open). */
static int open_entry(int dirfd, const char *name, int flags)
{
	return name ? layer_openat(dirfd, name, flags, 0) : layer_reopen(dirfd, flags);
}

/* The fd just opened at `loc` (taken) or the open's error, or -ESTALE when the name held another
 * entry by then (inode.h, "Identity"): one fstat, only where an entry can be replaced under its
 * name. */
static int checked(const struct lfd *loc, int fd)
{
	if (!loc->name || !loc->ino || !loc->replaceable)
		return fd;
	if (fd < 0) {
		/* A failed open may have met what took the name (a whiteout: ENXIO, a name gone:
		 * ENOENT): that is no answer about n's file, whose name the kernel looks up again.
		 */
		int r = inode_verify(loc);
		return r == 0 ? fd : -ESTALE;
	}
	struct stat st;
	int r = layer_fstat(fd, &st);
	if (r == 0)
		r = inode_check(loc, &st);
	if (r == 0)
		return fd;
	close(fd);
	return r;
}

/* Opens the entry at `loc`. Writable handles get O_RDWR when the file allows it, because the
 * kernel may read through a write-only handle to fill a partial page. */
static int open_at(const struct lfd *loc, int flags, bool write, bool *append_fd)
{
	/* O_APPEND and O_DIRECT stay with the kernel: it sends explicit offsets and aligned
	 * buffers are not guaranteed; O_NONBLOCK is kept for what it means to the caller. */
	int keep = flags & (O_NONBLOCK | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME);
	if (!write)
		return checked(loc, open_entry(loc->fd, loc->name, O_RDONLY | (keep & ~O_TRUNC)));
	/* Truncate only once the entry is known to be n's (an entry put there since is not). */
	bool trunc = (keep & O_TRUNC) && loc->name && loc->ino && loc->replaceable;
	if (trunc)
		keep &= ~O_TRUNC;
	int fd = open_entry(loc->fd, loc->name, O_RDWR | keep);
	if (fd == -EACCES && (flags & O_ACCMODE) == O_WRONLY)
		fd = open_entry(loc->fd, loc->name, O_WRONLY | keep);
	/* An append-only (chattr +a) file opens for writing only with O_APPEND, which the caller
	 * gave: every write to it is an append, whatever offset the kernel sends. */
	if (fd == -EPERM && (flags & O_APPEND) && !(keep & O_TRUNC)) {
		fd = open_entry(loc->fd, loc->name, (flags & O_ACCMODE) | O_APPEND | keep);
		*append_fd = fd >= 0;
	}
	fd = checked(loc, fd);
	int r = trunc && fd >= 0 ? layer_ftruncate(fd, 0) : 0;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static struct open_file *new_handle(struct plyfs *fs, struct node *n, int fd, unsigned gen,
				    bool writable)
{
	struct open_file *of = g_new0(struct open_file, 1);
	g_mutex_init(&of->lock);
	of->node = node_ref(fs->nodes, n);
	of->fd = fd;
	of->gen = gen;
	of->writable = writable;
	__atomic_add_fetch(&n->open_count, 1, __ATOMIC_ACQ_REL);
	g_mutex_lock(&fs->handles_lock);
	g_hash_table_add(fs->open_files, of);
	g_mutex_unlock(&fs->handles_lock);
	return of;
}

/* Locates n into `loc` (LFD_INIT), copies it up for a write, opens it there. fd or -errno. */
static int open_located(struct plyfs *fs, struct node *n, int flags, struct lfd *loc,
			bool *append_fd)
{
	bool write = wants_write(flags);
	int r = inode_locate(fs, n, loc);
	/* An O_TRUNC open throws the data away: copy only the metadata. */
	if (r == 0 && write)
		r = copy_up_at(fs, n, loc, !(flags & O_TRUNC));
	return r < 0 ? r : open_at(loc, flags, write, append_fd);
}

int file_open(struct plyfs *fs, struct node *n, int flags, struct open_file **out)
{
	if (S_ISDIR(n->type))
		return -EISDIR;
	bool write = wants_write(flags);
	auto_lfd struct lfd loc = LFD_INIT;
	bool append_fd = false;
	int fd = open_located(fs, n, flags, &loc, &append_fd);
	/* n's name went or took another file since the location was made (inode.h, "Identity"):
	 * once more, which reaches the entry the removal kept for n (inode_is_orphan) if it did. */
	if ((fd == -ESTALE || fd == -ENOENT) && loc.name && loc.replaceable) {
		lfd_release(&loc);
		fd = open_located(fs, n, flags, &loc, &append_fd);
	}
	if (fd < 0)
		return fd;
	/* The generation of the entry just opened: a later copy-up makes file_fd() reopen. */
	*out = new_handle(fs, n, fd, loc.gen, write);
	(*out)->noatime = flags & O_NOATIME;
	(*out)->append_fd = append_fd;
	return 0;
}

struct open_file *file_adopt(struct plyfs *fs, struct node *n, int fd)
{
	return new_handle(fs, n, fd, __atomic_load_n(&n->copyup_gen, __ATOMIC_ACQUIRE), true);
}

int file_fd(struct plyfs *fs, struct open_file *of)
{
	unsigned now = __atomic_load_n(&of->node->copyup_gen, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&of->gen, __ATOMIC_ACQUIRE) == now)
		return __atomic_load_n(&of->fd, __ATOMIC_ACQUIRE);

	g_mutex_lock(&of->lock);
	int r = __atomic_load_n(&of->fd, __ATOMIC_ACQUIRE);
	if (of->gen != now) {
		/* Opened below before a copy-up: from now on the upper file is the file. */
		auto_lfd struct lfd loc = LFD_INIT;
		int fd = inode_locate(fs, of->node, &loc);
		if (fd == 0)
			fd = open_at(&loc, O_RDONLY, false, NULL);
		if (fd >= 0) {
			if (!of->old_fds)
				of->old_fds = g_array_new(FALSE, FALSE, sizeof(int));
			g_array_append_val(of->old_fds, of->fd);
			__atomic_store_n(&of->fd, fd, __ATOMIC_RELEASE);
			__atomic_store_n(&of->gen, loc.gen, __ATOMIC_RELEASE);
			file_modes_changed(fs); /* after the switch: file_nopriv() */
		}
		r = fd;
	}
	g_mutex_unlock(&of->lock);
	return r;
}

bool file_nopriv(struct plyfs *fs, struct open_file *of, int fd, unsigned long *epoch)
{
	*epoch = atomic_load_explicit(&fs->mode_epoch, memory_order_acquire);
	return __atomic_load_n(&of->nopriv, __ATOMIC_ACQUIRE) == *epoch + 1 &&
	       __atomic_load_n(&of->fd, __ATOMIC_ACQUIRE) == fd;
}

void file_nopriv_seen(struct open_file *of, int fd, unsigned long epoch)
{
	/* Not for an fd the handle has replaced since (file_fd() moved the epoch on after it):
	 * only the fd it uses now may be vouched for. */
	if (__atomic_load_n(&of->fd, __ATOMIC_ACQUIRE) == fd)
		__atomic_store_n(&of->nopriv, epoch + 1, __ATOMIC_RELEASE);
}

void file_modes_changed(struct plyfs *fs)
{
	atomic_fetch_add_explicit(&fs->mode_epoch, 1, memory_order_acq_rel);
}

void file_accessed(struct plyfs *fs, struct open_file *of, int fd)
{
	/* Kernel overlayfs moves the atime of an upper file only; a lower one keeps its own. */
	if (!of->noatime && inode_has_upper(fs, of->node))
		atime_accessed(fs, fd, false);
}

void file_release(struct plyfs *fs, struct open_file *of)
{
	g_mutex_lock(&fs->handles_lock);
	g_hash_table_remove(fs->open_files, of);
	g_mutex_unlock(&fs->handles_lock);
	close(of->fd);
	for (guint i = 0; of->old_fds && i < of->old_fds->len; i++)
		close(g_array_index(of->old_fds, int, i));
	if (of->old_fds)
		g_array_free(of->old_fds, TRUE);
	g_mutex_clear(&of->lock);
	__atomic_sub_fetch(&of->node->open_count, 1, __ATOMIC_ACQ_REL);
	node_put(fs->nodes, of->node);
	g_free(of);
}

int file_getattr(struct plyfs *fs, struct open_file *of, struct stat *st)
{
	int fd = file_fd(fs, of);
	int r = fd < 0 ? fd : layer_fstat(fd, st);
	if (r < 0)
		return r;
	override_stat(fs, fd, NULL, st);
	index_merged_nlink(fs, of->node, fd, NULL, st);
	inode_fill_attr(fs, of->node, st, layers_fd_idmapped(fs->layers, fs->n_layers, fd));
	return 0;
}

ssize_t file_readlink(struct plyfs *fs, struct node *n, char *buf, size_t size)
{
	if (!S_ISLNK(n->type))
		return -EINVAL;
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	if (r < 0)
		return r;
	/* An empty name reads the symlink an O_PATH fd stands for (one removed while in use). */
	return layer_readlinkat(loc.fd, loc.name ? loc.name : "", buf, size);
}

void file_release_all(struct plyfs *fs)
{
	GList *all = g_hash_table_get_keys(fs->open_files);
	for (GList *l = all; l; l = l->next)
		file_release(fs, l->data);
	g_list_free(all);
}
