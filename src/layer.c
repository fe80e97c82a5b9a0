// SPDX-License-Identifier: GPL-2.0-or-later
/* layer.c - the syscall wrappers: every raw filesystem call on a layer goes through here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib.h>

#include "autofd.h"
#include "errors.h"
#include "layer.h"
#include "log.h"

/* Turns a libc result into >= 0 / -errno and traces it. A failure the layer caused (EIO, ENOSPC,
 * a dead lower mount...: errors.h decides) is noted in the error slot, with the request's
 * operation and node (request.h). */
static long traced(long r, const char *call, int fd, const char *arg)
{
	long ret = r < 0 ? -errno : r;
	if (log_debug_enabled())
		log_msg(LOG_DEBUG, "%s(%d, \"%s\") = %ld%s%s", call, fd, arg ? arg : "", ret,
			ret < 0 ? " " : "", ret < 0 ? strerror((int)-ret) : "");
	if (ret < 0)
		errors_note_call((int)-ret, call, fd, arg);
	return ret;
}

/*
 * Every wrapper that takes a `name` takes ONE component of the directory `dirfd`: never ".", "..",
 * an empty name or one holding '/'. A name comes from the kernel (checked by namei) or from layer
 * data (decoded by ovl_xattr.h); refusing the rest here too means that a bug in either still cannot
 * walk out of the layer (openat(fd, "..") would, O_NOFOLLOW does not stop it). The errno is the
 * one the kernel's own lookup_one() gives such names: EACCES. Refusals are logged: each is a bug.
 */
static bool bad_name(const char *name, const char *call, int fd)
{
	if (name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
	    strcmp(name, "..") != 0)
		return false;
	log_ratelimited(LOG_ERR, "%s(%d, \"%.64s\"): refusing a name that is not one component",
			call, fd, name);
	return true;
}

#define CHECK_NAME(name, call, fd)                                                                 \
	do {                                                                                       \
		if ((name) && bad_name((name), (call), (fd)))                                      \
			return -EACCES;                                                            \
	} while (0)

int layer_fstatat(int dirfd, const char *name, struct stat *st)
{
	CHECK_NAME(name, "fstatat", dirfd);
	return (int)traced(fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW), "fstatat", dirfd, name);
}

int layer_fstat(int fd, struct stat *st)
{
	return (int)traced(fstat(fd, st), "fstat", fd, NULL);
}

/* O_NOATIME for an open that can read (layer.h); O_PATH ignores it anyway. An O_CREAT open
 * gets it afterwards (set_noatime): refused on a file just made (a filesystem that forces the
 * owner), retrying the open would meet the file it made. */
static bool wants_noatime(int flags)
{
	return !(flags & (O_PATH | O_CREAT));
}

/* F_SETFL sets all of the status flags it can change: those of the open (known, so no
 * F_GETFL) plus O_NOATIME. */
static int set_noatime(int fd, int flags)
{
	if (fd >= 0)
		fcntl(fd, F_SETFL,
		      (flags & (O_APPEND | O_NONBLOCK | O_DIRECT)) |
			      O_NOATIME); /* best effort, as for any open */
	return fd;
}

int layer_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	CHECK_NAME(name, "openat", dirfd);
	flags |= O_NOFOLLOW | O_CLOEXEC;
	int r = -EPERM;
	if (wants_noatime(flags))
		r = (int)traced(openat(dirfd, name, flags | O_NOATIME, mode), "openat", dirfd,
				name);
	if (r == -EPERM)
		r = (int)traced(openat(dirfd, name, flags & ~O_NOATIME, mode), "openat", dirfd,
				name);
	return flags & O_CREAT ? set_noatime(r, flags) : r;
}

static int openat2_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int r = -EPERM;
	if (wants_noatime(flags)) {
		how.flags |= O_NOATIME;
		r = (int)traced(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)), "openat2",
				dirfd, path);
		how.flags &= ~(uint64_t)O_NOATIME;
	}
	if (r == -EPERM)
		r = (int)traced(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)), "openat2",
				dirfd, path);
	return r;
}

/* Longest piece handed to one openat2: comfortably below PATH_MAX. */
#define PIECE_MAX 3072

int layer_open_beneath(int dirfd, const char *path, int flags)
{
	if (path[0] == '\0')
		return openat2_beneath(dirfd, ".", flags);

	size_t len = strlen(path);
	if (len < PIECE_MAX)
		return openat2_beneath(dirfd, path, flags);

	/* A deep directory: walk it in pieces cut at component boundaries, each piece opened
	 * O_PATH relative to the previous one, still never through a symlink. */
	autofd int cur = -1;
	const char *p = path;
	while (strlen(p) >= PIECE_MAX) {
		const char *cut = p + PIECE_MAX;
		while (cut > p && *cut != '/')
			cut--;
		if (cut == p)
			return -ENAMETOOLONG; /* one component longer than PIECE_MAX */
		g_autofree char *piece = g_strndup(p, (gsize)(cut - p));
		int next = openat2_beneath(cur >= 0 ? cur : dirfd, piece, O_PATH | O_DIRECTORY);
		if (next < 0)
			return next;
		autofd_close(&cur);
		cur = next;
		p = cut + 1;
	}
	return openat2_beneath(cur, p, flags);
}

int layer_opendir_fd(int dirfd)
{
	int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	int r = (int)traced(openat(dirfd, ".", flags | O_NOATIME), "opendir", dirfd, ".");
	if (r == -EPERM)
		r = (int)traced(openat(dirfd, ".", flags), "opendir", dirfd, ".");
	return r;
}

ssize_t layer_readlinkat(int dirfd, const char *name, char *buf, size_t size)
{
	/* "" is genuine here: readlinkat of an O_PATH fd of the symlink itself. */
	if (name[0] != '\0')
		CHECK_NAME(name, "readlinkat", dirfd);
	return traced(readlinkat(dirfd, name, buf, size), "readlinkat", dirfd, name);
}

ssize_t layer_getdents(int fd, void *buf, size_t size)
{
	return traced(syscall(SYS_getdents64, fd, buf, size), "getdents64", fd, NULL);
}

int layer_fstatvfs(int fd, struct statvfs *st)
{
	return (int)traced(fstatvfs(fd, st), "fstatvfs", fd, NULL);
}

ssize_t layer_pread(int fd, void *buf, size_t size, off_t off)
{
	return traced(pread(fd, buf, size, off), "pread", fd, NULL);
}

/* /proc/self/fd/N[/name]: lets the l*xattr calls act on O_PATH fds and on symlinks themselves.
 * `name` is always a single component, so nothing here resolves through a layer symlink. */
static char *proc_path(int dirfd, const char *name)
{
	if (name)
		return g_strdup_printf("/proc/self/fd/%d/%s", dirfd, name);
	return g_strdup_printf("/proc/self/fd/%d", dirfd);
}

ssize_t layer_getxattr(int dirfd, const char *name, const char *xname, void *buf, size_t size)
{
	CHECK_NAME(name, "getxattr", dirfd);
	g_autofree char *p = proc_path(dirfd, name);
	/* Without a name the magic link itself must be followed to reach the directory. */
	ssize_t r = name ? lgetxattr(p, xname, buf, size) : getxattr(p, xname, buf, size);
	return traced(r, "getxattr", dirfd, xname);
}

ssize_t layer_listxattr(int dirfd, const char *name, char *buf, size_t size)
{
	CHECK_NAME(name, "listxattr", dirfd);
	g_autofree char *p = proc_path(dirfd, name);
	ssize_t r = name ? llistxattr(p, buf, size) : listxattr(p, buf, size);
	return traced(r, "listxattr", dirfd, name);
}

int layer_setxattr(int dirfd, const char *name, const char *xname, const void *value, size_t size,
		   int flags)
{
	CHECK_NAME(name, "setxattr", dirfd);
	g_autofree char *p = proc_path(dirfd, name);
	int r = name ? lsetxattr(p, xname, value, size, flags)
		     : setxattr(p, xname, value, size, flags);
	return (int)traced(r, "setxattr", dirfd, xname);
}

int layer_removexattr(int dirfd, const char *name, const char *xname)
{
	CHECK_NAME(name, "removexattr", dirfd);
	g_autofree char *p = proc_path(dirfd, name);
	int r = name ? lremovexattr(p, xname) : removexattr(p, xname);
	return (int)traced(r, "removexattr", dirfd, xname);
}

int layer_mkdirat(int dirfd, const char *name, mode_t mode)
{
	CHECK_NAME(name, "mkdirat", dirfd);
	return (int)traced(mkdirat(dirfd, name, mode), "mkdirat", dirfd, name);
}

int layer_mknodat(int dirfd, const char *name, mode_t mode, dev_t rdev)
{
	CHECK_NAME(name, "mknodat", dirfd);
	return (int)traced(mknodat(dirfd, name, mode, rdev), "mknodat", dirfd, name);
}

int layer_symlinkat(const char *target, int dirfd, const char *name)
{
	CHECK_NAME(name, "symlinkat", dirfd);
	return (int)traced(symlinkat(target, dirfd, name), "symlinkat", dirfd, name);
}

int layer_unlinkat(int dirfd, const char *name, int flags)
{
	CHECK_NAME(name, "unlinkat", dirfd);
	return (int)traced(unlinkat(dirfd, name, flags), "unlinkat", dirfd, name);
}

int layer_renameat2(int olddirfd, const char *oldname, int newdirfd, const char *newname,
		    unsigned flags)
{
	CHECK_NAME(newname, "renameat2", newdirfd);
	CHECK_NAME(oldname, "renameat2", olddirfd);
	int r = (int)traced(renameat2(olddirfd, oldname, newdirfd, newname, flags), "renameat2",
			    olddirfd, oldname);
	log_debug("  renameat2 -> (%d, \"%s\") flags %#x", newdirfd, newname, flags);
	return r;
}

int layer_linkat(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	CHECK_NAME(newname, "linkat", newdirfd);
	CHECK_NAME(oldname, "linkat", olddirfd);
	int r;
	if (oldname) {
		r = linkat(olddirfd, oldname, newdirfd, newname, 0);
	} else {
		g_autofree char *p = proc_path(olddirfd, NULL);
		r = linkat(AT_FDCWD, p, newdirfd, newname, AT_SYMLINK_FOLLOW);
	}
	return (int)traced(r, "linkat", newdirfd, newname);
}

int layer_fchownat(int dirfd, const char *name, uid_t uid, gid_t gid)
{
	CHECK_NAME(name, "fchownat", dirfd);
	if (!name)
		return (int)traced(fchownat(dirfd, "", uid, gid, AT_EMPTY_PATH), "fchownat", dirfd,
				   NULL);
	return (int)traced(fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW), "fchownat", dirfd,
			   name);
}

int layer_fchmodat(int dirfd, const char *name, mode_t mode)
{
	CHECK_NAME(name, "fchmodat", dirfd);
	if (!name) {
		g_autofree char *p = proc_path(dirfd, NULL);
		return (int)traced(chmod(p, mode), "chmod", dirfd, NULL);
	}
	/* fchmodat(AT_SYMLINK_NOFOLLOW) is not implemented for anything: the caller never asks
	 * for a symlink (their mode cannot change), so the plain call cannot follow one into
	 * another place than a regular entry of this layer. */
	return (int)traced(fchmodat(dirfd, name, mode, 0), "fchmodat", dirfd, name);
}

int layer_utimensat(int dirfd, const char *name, const struct timespec ts[2])
{
	CHECK_NAME(name, "utimensat", dirfd);
	if (!name) {
		/* An O_PATH fd cannot be passed to futimens: go through its /proc link. */
		g_autofree char *p = proc_path(dirfd, NULL);
		return (int)traced(utimensat(AT_FDCWD, p, ts, 0), "utimensat", dirfd, NULL);
	}
	return (int)traced(utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW), "utimensat", dirfd,
			   name);
}

int layer_fchown(int fd, uid_t uid, gid_t gid)
{
	return (int)traced(fchown(fd, uid, gid), "fchown", fd, NULL);
}

int layer_fchmod(int fd, mode_t mode)
{
	return (int)traced(fchmod(fd, mode), "fchmod", fd, NULL);
}

int layer_futimens(int fd, const struct timespec ts[2])
{
	return (int)traced(futimens(fd, ts), "futimens", fd, NULL);
}

int layer_ftruncate(int fd, off_t size)
{
	return (int)traced(ftruncate(fd, size), "ftruncate", fd, NULL);
}

int layer_fsync(int fd, bool datasync)
{
	return (int)traced(datasync ? fdatasync(fd) : fsync(fd), "fsync", fd, NULL);
}

int layer_sync_file_range(int fd, off_t off, off_t len, unsigned flags)
{
	return (int)traced(sync_file_range(fd, off, len, flags), "sync_file_range", fd, NULL);
}

int layer_fallocate(int fd, int mode, off_t off, off_t len)
{
	return (int)traced(fallocate(fd, mode, off, len), "fallocate", fd, NULL);
}

off_t layer_lseek(int fd, off_t off, int whence)
{
	return (off_t)traced(lseek(fd, off, whence), "lseek", fd, NULL);
}

ssize_t layer_pwrite(int fd, const void *buf, size_t size, off_t off)
{
	return traced(pwrite(fd, buf, size, off), "pwrite", fd, NULL);
}

ssize_t layer_copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len)
{
	return traced(copy_file_range(in, in_off, out, out_off, len, 0), "copy_file_range", out,
		      NULL);
}

int layer_ficlone(int dst, int src)
{
	return (int)traced(ioctl(dst, FICLONE, src), "ficlone", dst, NULL);
}

int layer_fileattr(int fd, unsigned long cmd, void *arg)
{
	return (int)traced(ioctl(fd, cmd, arg), "ioctl_fileattr", fd, NULL);
}

int layer_statx_attributes(int dirfd, const char *name, uint64_t *attrs)
{
	CHECK_NAME(name, "statx", dirfd);
	struct statx stx;
	int r = (int)traced(
		statx(dirfd, name ? name : "",
		      AT_SYMLINK_NOFOLLOW | (name ? 0 : AT_EMPTY_PATH) | AT_STATX_DONT_SYNC, 0,
		      &stx),
		"statx", dirfd, name);
	if (r == 0)
		*attrs = stx.stx_attributes & stx.stx_attributes_mask;
	return r;
}

int layer_mnt_id(int fd, uint64_t *mnt_id)
{
	struct statx stx;
	int r = (int)traced(statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx),
			    "statx", fd, NULL);
	if (r == 0 && !(stx.stx_mask & STATX_MNT_ID))
		r = -EOPNOTSUPP; /* before Linux 5.8 */
	if (r == 0)
		*mnt_id = stx.stx_mnt_id;
	return r;
}

int layer_open_tmpfile(int dirfd, mode_t mode)
{
	return (int)traced(openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode), "open_tmpfile",
			   dirfd, NULL);
}

int layer_reopen(int fd, int flags)
{
	g_autofree char *p = proc_path(fd, NULL);
	flags |= O_CLOEXEC;
	int r = -EPERM;
	if (wants_noatime(flags))
		r = (int)traced(open(p, flags | O_NOATIME), "reopen", fd, NULL);
	if (r == -EPERM)
		r = (int)traced(open(p, flags & ~O_NOATIME), "reopen", fd, NULL);
	return r;
}

int layer_name_to_handle(int dirfd, const char *name, struct file_handle *fh)
{
	CHECK_NAME(name, "name_to_handle_at", dirfd);
	int mount_id;
	return (int)traced(
		name_to_handle_at(dirfd, name ? name : "", fh, &mount_id, name ? 0 : AT_EMPTY_PATH),
		"name_to_handle_at", dirfd, name);
}

int layer_open_by_handle(int mount_fd, struct file_handle *fh, int flags)
{
	return (int)traced(open_by_handle_at(mount_fd, fh, flags | O_CLOEXEC), "open_by_handle_at",
			   mount_fd, NULL);
}

uint32_t layer_handle_check(int dirfd, const char *name)
{
	struct {
		struct file_handle fh;
		unsigned char room[MAX_HANDLE_SZ];
	} h = {.fh.handle_bytes = MAX_HANDLE_SZ};
	if (layer_name_to_handle(dirfd, name, &h.fh) < 0)
		return 0;
	/* FNV-1a over the type and the bytes (which follow the header in `h`). */
	uint32_t x = 2166136261u;
	const unsigned char *p = (const unsigned char *)&h.fh.handle_type;
	for (size_t i = 0; i < sizeof(h.fh.handle_type); i++)
		x = (x ^ p[i]) * 16777619u;
	size_t n = h.fh.handle_bytes < MAX_HANDLE_SZ ? h.fh.handle_bytes : MAX_HANDLE_SZ;
	for (size_t i = 0; i < n; i++)
		x = (x ^ h.room[i]) * 16777619u;
	return x ? x : 1;
}

char *layer_fd_path(int fd)
{
	char buf[PATH_MAX];
	g_autofree char *p = proc_path(fd, NULL);
	ssize_t n = traced(readlink(p, buf, sizeof(buf) - 1), "readlink", fd, NULL);
	if (n < 0)
		return g_strdup_printf("(fd %d)", fd);
	buf[n] = '\0';
	return g_strdup(buf);
}

int layer_touch_atime(int fd, bool dir)
{
	g_autofree char *p = proc_path(fd, NULL);
	autofd int rfd = (int)traced(open(p, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0)),
				     "open_for_atime", fd, NULL);
	if (rfd < 0)
		return rfd;
	char buf[1024]; /* room for one directory entry of any name */
	ssize_t r = dir ? layer_getdents(rfd, buf, sizeof(buf)) : layer_pread(rfd, buf, 1, 0);
	return r < 0 ? (int)r : 0;
}
