/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * layer.h - the layers, and the only place that makes raw filesystem syscalls on them.
 *
 * A layer is a directory: the upper (writable, index 0 when present) and the lowers, top first.
 * Each layer root is opened once, O_PATH|O_DIRECTORY, before the daemon forks (errors go to the
 * caller's terminal), and checked: it exists and is a directory; no layer, workdir or the
 * mountpoint overlaps another (one inside the other); workdir is on the same filesystem as
 * upperdir.
 *
 * Names inside a layer are resolved relative to a directory fd of that layer, never through a
 * symlink (AT_SYMLINK_NOFOLLOW, O_NOFOLLOW, openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS): a symlink inside a layer is data, never a path the daemon follows.
 *
 * Every wrapper returns >= 0 or -errno, and traces the call and its result at debug level (-d).
 */
#ifndef PLYFS_LAYER_H
#define PLYFS_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

struct layer {
	int index;     /* position in fs->layers */
	int root_fd;   /* O_PATH|O_DIRECTORY, open for the whole mount */
	char *path;    /* canonical absolute path, for messages */
	dev_t dev;     /* st_dev of the root */
	unsigned fsid; /* the kernel's numbering: 0 the upper's filesystem (reserved without an
			* upper), then each other filesystem of the lowers in order */
	bool upper;
	unsigned char uuid[16]; /* the filesystem's uuid (FS_IOC_GETFSUUID): index, handle store */
	bool uuid_ok;		/* known and not null */
	/* Origins on this lower's filesystem cannot be told from another's: its uuid is null where
	 * the kernel refuses that, or another lower filesystem has the same one (origin.h). */
	bool bad_uuid;
	/* A lower layer opened through an id-mapped mount (containers-storage's ID/mapped/N): the
	 * ids read there are already shown ids (idmap.h). Looked for only with a uidmapping= or
	 * gidmapping=, at mount while such a mount is still attached (layers_open()). */
	bool idmapped;
	uint64_t mnt_id; /* the mount of root_fd (statx STATX_MNT_ID); 0 when not looked up */
};

struct plyfs_params;

/* Opens and checks every layer named in `p` (relative paths resolve against the current directory;
 * symlinked layer paths are followed here, once, as the user meant them). On success *layers_out is
 * a g_malloc'd array (upper first if any, then lowers top first), *n_out its length, and *work_fd
 * an O_PATH fd of workdir (or -1). On error returns -errno and *err names the offending path. */
int layers_open(const struct plyfs_params *p, struct layer **layers_out, size_t *n_out,
		int *work_fd, char **err);
void layers_close(struct layer *layers, size_t n);

/* True when `fd` (a layer fd or one opened beneath it) is on the mount of an id-mapped lower
 * layer, so its ids need no uidmapping=/gidmapping= shift (one statx, only when some layer is
 * id-mapped; false otherwise and on error). */
bool layers_fd_idmapped(const struct layer *layers, size_t n, int fd);

/* Number of bits needed for fsids (0 when every layer is on one filesystem): the fsid goes in
 * st_ino's top bits, as kernel overlayfs' xino=on puts it (inode.h). */
unsigned layers_xino_bits(const struct layer *layers, size_t n);

/* --- syscall wrappers (all relative to a directory fd of some layer) ---
 * A `name` is one component: ".", "..", "" and names holding '/' are refused with -EACCES (the
 * kernel's lookup_one() errno) and logged as the bug they are, so that nothing read from a layer
 * can make the daemon walk out of it (layer_readlinkat alone accepts "": the fd itself). Paths
 * of several components go through layer_open_beneath() only. */
int layer_fstatat(int dirfd, const char *name, struct stat *st); /* AT_SYMLINK_NOFOLLOW */
int layer_fstat(int fd, struct stat *st);
/* Every open of a layer entry that can read it (not O_PATH) gets O_NOATIME, and is made again
 * without it when the kernel refuses it (EPERM: not the owner, no CAP_FOWNER): reading a layer
 * never moves an atime by the layer's own mount options (atime.h). */
/* openat with O_NOFOLLOW|O_CLOEXEC added; name is a single component. */
int layer_openat(int dirfd, const char *name, int flags, mode_t mode);
/* openat2 of a multi-component relative path, beneath dirfd (RESOLVE_BENEATH: ".." cannot climb
 * above it, absolute paths are refused), never through a symlink. Paths of any length are resolved
 * in pieces shorter than PATH_MAX, each beneath the previous one. */
int layer_open_beneath(int dirfd, const char *path, int flags);
/* Opens the file behind an (O_PATH) fd anew with `flags`, through /proc/self/fd. */
int layer_reopen(int fd, int flags);
/* name_to_handle_at of (dirfd, name) without following a symlink (name NULL: dirfd itself);
 * fh->handle_bytes holds the room on entry. */
struct file_handle;
int layer_name_to_handle(int dirfd, const char *name, struct file_handle *fh);
/* open_by_handle_at (needs CAP_DAC_READ_SEARCH; mount_fd not O_PATH): the file may lie anywhere on
 * mount_fd's
 * filesystem, not only beneath a layer; callers use it only to identify a file (origin.h). */
int layer_open_by_handle(int mount_fd, struct file_handle *fh, int flags);
/* A non-zero hash of the file handle of (dirfd, name) (name NULL: dirfd itself): the same for the
 * same inode for as long as it lives (also across mounts), another for a file that reuses its inode
 * number (the handle holds the inode's generation on ext4, xfs, btrfs, tmpfs). 0 where the
 * filesystem has no handles. */
uint32_t layer_handle_check(int dirfd, const char *name);
/* Reopens an O_PATH directory fd for reading entries (O_RDONLY|O_DIRECTORY). */
int layer_opendir_fd(int dirfd);
/* Reads the entry behind fd once (a byte; a directory: one getdents) through a new fd without
 * O_NOATIME: its filesystem updates the atime by its own mount's rules, ctime untouched. */
int layer_touch_atime(int fd, bool dir);
ssize_t layer_readlinkat(int dirfd, const char *name, char *buf, size_t size);
ssize_t layer_getdents(int fd, void *buf, size_t size);
int layer_fstatvfs(int fd, struct statvfs *st);
ssize_t layer_pread(int fd, void *buf, size_t size, off_t off);
/* The path the kernel has for `fd` (readlink of /proc/self/fd/N), for messages only; never NULL. */
char *layer_fd_path(int fd);

/* xattrs of the entry `name` in directory `dirfd`, never following a symlink; name == NULL means
 * the directory itself. Implemented through /proc/self/fd so that O_PATH fds and symlinks work. */
ssize_t layer_getxattr(int dirfd, const char *name, const char *xname, void *buf, size_t size);
ssize_t layer_listxattr(int dirfd, const char *name, char *buf, size_t size);
int layer_setxattr(int dirfd, const char *name, const char *xname, const void *value, size_t size,
		   int flags);
int layer_removexattr(int dirfd, const char *name, const char *xname);

/* --- modifying wrappers (the upper layer and the work directory only) --- */
int layer_mkdirat(int dirfd, const char *name, mode_t mode);
int layer_mknodat(int dirfd, const char *name, mode_t mode, dev_t rdev);
int layer_symlinkat(const char *target, int dirfd, const char *name);
int layer_unlinkat(int dirfd, const char *name, int flags);
int layer_renameat2(int olddirfd, const char *oldname, int newdirfd, const char *newname,
		    unsigned flags);
/* linkat of the entry (olddirfd, oldname); oldname NULL links the open file `olddirfd` itself
 * (an O_TMPFILE) through /proc/self/fd, which needs no CAP_DAC_READ_SEARCH. */
int layer_linkat(int olddirfd, const char *oldname, int newdirfd, const char *newname);
/* Never follows a symlink; name NULL: the (O_PATH) fd itself. */
int layer_fchownat(int dirfd, const char *name, uid_t uid, gid_t gid);
int layer_fchmodat(int dirfd, const char *name, mode_t mode); /* name NULL: the fd */
/* Never follows a symlink; name NULL: the (O_PATH) fd itself. */
int layer_utimensat(int dirfd, const char *name, const struct timespec ts[2]);
int layer_fchown(int fd, uid_t uid, gid_t gid);
int layer_fchmod(int fd, mode_t mode);
int layer_futimens(int fd, const struct timespec ts[2]);
int layer_ftruncate(int fd, off_t size);
int layer_fsync(int fd, bool datasync);
/* sync_file_range(2): starts (SYNC_FILE_RANGE_WRITE) or waits for (WAIT_BEFORE/WAIT_AFTER) the
 * writeback of a range; no metadata, no device cache flush: never a substitute for fsync. */
int layer_sync_file_range(int fd, off_t off, off_t len, unsigned flags);
int layer_fallocate(int fd, int mode, off_t off, off_t len);
off_t layer_lseek(int fd, off_t off, int whence);
ssize_t layer_pwrite(int fd, const void *buf, size_t size, off_t off);
ssize_t layer_copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len);
int layer_ficlone(int dst, int src);
/* FS_IOC_GETFLAGS/SETFLAGS/FSGETXATTR/FSSETXATTR on an open fd (fileattr.h). */
int layer_fileattr(int fd, unsigned long cmd, void *arg);
/* statx's stx_attributes (STATX_ATTR_IMMUTABLE, _APPEND, ...) that the filesystem reports;
 * name NULL: the fd itself. */
int layer_statx_attributes(int dirfd, const char *name, uint64_t *attrs);
/* statx's stx_mnt_id of the fd itself: the mount it is on, the id /proc/self/mountinfo lists. */
int layer_mnt_id(int fd, uint64_t *mnt_id);
/* An unnamed file in directory `dirfd` (O_TMPFILE), -EOPNOTSUPP where the fs has none. */
int layer_open_tmpfile(int dirfd, mode_t mode);

#endif
