// SPDX-License-Identifier: GPL-2.0-or-later
/* ops.c - FUSE request handlers: resolve the node, call a module, reply once (see ops.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dir.h"
#include "export.h"
#include "file.h"
#include "index.h"
#include "inode.h"
#include "layer.h"
#include "log.h"
#include "namei.h"
#include "ops.h"
#include "autofd.h"
#include "create.h"
#include "remove.h"
#include "errors.h"
#include "fileattr.h"
#include "killpriv.h"
#include "request.h"
#include "rename.h"
#include "setattr.h"
#include "xattr.h"

static struct plyfs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The first line of every handler: counts the operation and tells the error slot which request
 * a failing layer syscall belongs to (request.h). */
#define SCOPE(op, ino) REQ_SCOPE(req_fs(req), op, ino, fuse_req_ctx(req)->uid)

/* The node behind `ino` with a request reference, or NULL after answering -ESTALE. */
static struct node *req_node(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_table_get(req_fs(req)->nodes, ino);
	if (!n)
		fuse_reply_err(req, ESTALE);
	return n;
}

/* Drops a request reference. Takes the mount, not the request: a request is freed by its reply,
 * and some references are dropped after replying. */
static void put(struct plyfs *fs, struct node *n)
{
	node_put(fs->nodes, n);
}

/* The kernel keeps file times itself (the writeback cache was negotiated in INIT). */
static bool writeback_on;

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
	struct plyfs *fs = userdata;
	const unsigned want = FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_READDIRPLUS |
			      FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS |
			      FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			      FUSE_CAP_ASYNC_READ | FUSE_CAP_ATOMIC_O_TRUNC |
			      FUSE_CAP_IOCTL_DIR; /* chattr/lsattr of directories (fileattr.h) */
	conn->want |= want & conn->capable;
	/* nfs_export=off: the kernel answers a handle of a file it forgot with ESTALE itself. */
	if (fs->params->nfs_export_off)
		conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
	/* The kernel enforces ACLs from the system.posix_acl_* xattrs we pass through. */
	if (!fs->params->noacl && (conn->capable & FUSE_CAP_POSIX_ACL)) {
		conn->want |= FUSE_CAP_POSIX_ACL;
		/* A default ACL replaces the umask: the kernel must leave it to us (create.c). */
		if (conn->capable & FUSE_CAP_DONT_MASK)
			conn->want |= FUSE_CAP_DONT_MASK;
	}
	/* Lower files never change while mounted: no need to revalidate the page cache on every
	 * attribute refresh; keep_cache on open says so per file. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* writeback=1 (not the default: see params.h): write(2) fills the kernel's page cache, sent
	 * later in WRITEs of up to max_write; the kernel keeps size and mtime (sent with SETATTR)
	 * and does O_APPEND itself. 50,000 4-byte appends: 50,000 WRITE requests -> 1. What the
	 * daemon does for it: layer fds of writable handles are O_RDWR and never O_APPEND (file.c),
	 * except an append-only file's, which is opened direct_io (ops_open). */
	if (fs->params->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	__atomic_store_n(&writeback_on, (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0,
			 __ATOMIC_RELEASE);
	/* A request (a page of header, then the data pages) must fit a pipe of
	 * /proc/sys/fs/pipe-max-size (1 MiB) for libfuse to splice it (fuse_io.h); a 1 MiB WRITE
	 * cannot without CAP_SYS_RESOURCE, and reading 1 MiB requests costs more (one more copy:
	 * 1 GiB written in 0.66 s spliced against 1.8 s read, median of 4) than the second,
	 * one-page WRITE of every aligned 1 MiB write(2). */
	conn->max_write = 1024 * 1024 - 4096;
	conn->max_readahead = 1024 * 1024;
	/* The kernel can list directories without OPENDIR/RELEASEDIR (see ops_opendir()). */
	fs->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
	log_debug("init: capable %#x want %#x", conn->capable, conn->want);
}

static void reply_entry(fuse_req_t req, struct node *n, const struct stat *st)
{
	struct plyfs *fs = req_fs(req);
	struct fuse_entry_param e = {
		.ino = n->nodeid,
		.generation = n->generation,
		.attr = *st,
		.attr_timeout = fs->timeout,
		.entry_timeout = index_entry_timeout(fs, n),
	};
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		/* The request was interrupted: the kernel did not take the lookup. */
		node_table_forget(fs->nodes, n->nodeid, 1);
	}
}

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	SCOPE(LOOKUP, parent);
	struct plyfs *fs = req_fs(req);
	bool dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
	struct node *dir = NULL;
	/* "." and ".." come from decoding a file handle: the kernel may have forgotten the node. */
	int r = dot ? export_resolve(fs, parent, &dir) : 0;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (!dir && !(dir = req_node(req, parent)))
		return;
	struct node *n = NULL;
	struct stat st;
	if (dot)
		r = namei_lookup_dot(fs, dir, name, &n, &st);
	else
		r = namei_lookup(fs, dir, name, &n, &st);
	bool wanted = r == 0 && !dot && dir_note_lookup(fs, dir);
	put(fs, dir);
	if (r == -ENOENT) {
		/* A negative entry the kernel may cache as long as positive ones. */
		struct fuse_entry_param e = {.ino = 0, .entry_timeout = fs->timeout};
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, n, &st);
	put(fs, n);
	if (wanted) /* after the reply: the notifications need no lock of ours */
		dir_listings_left_out_stale(fs);
}

/*
 * When the kernel forgets many nodes (a cache drop, memory pressure), their memory goes back to
 * malloc scattered between the records that replace them, and glibc hands such pages back to the
 * system only when asked: without asking, the daemon's RSS stays at its high-water mark and creeps
 * up walk after walk. So every TRIM_AFTER_FORGETS forgotten nodes it is asked (malloc_trim costs
 * a pass over the free chunks: milliseconds, against the thousands of FORGETs it follows).
 */
#define TRIM_AFTER_FORGETS 8192

static void trim_after_forgets(size_t n)
{
	static atomic_size_t since;
	size_t before = atomic_fetch_add(&since, n);
	if (before + n < TRIM_AFTER_FORGETS || before >= TRIM_AFTER_FORGETS)
		return; /* only the call that crosses the threshold trims */
	malloc_trim(0);
	atomic_store(&since, 0);
}

static void ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	SCOPE(FORGET, ino);
	node_table_forget(req_fs(req)->nodes, ino, nlookup);
	fuse_reply_none(req);
	trim_after_forgets(1);
}

static void ops_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	SCOPE(BATCH_FORGET, 0);
	/* struct fuse_forget_data is {uint64 ino; uint64 nlookup}: the same layout. */
	G_STATIC_ASSERT(sizeof(struct fuse_forget_data) == sizeof(struct node_forget_item));
	node_table_forget_batch(req_fs(req)->nodes, (const struct node_forget_item *)forgets,
				count);
	fuse_reply_none(req);
	trim_after_forgets(count);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	SCOPE(GETATTR, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct stat st;
	int r;
	if (fi && S_ISREG(n->type)) {
		/* fstat(fd) of an open file must work even when its name is gone. */
		r = file_getattr(fs, (struct open_file *)(uintptr_t)fi->fh, &st);
	} else {
		r = inode_getattr(fs, n, &st);
	}
	put(fs, n);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void ops_readlink(fuse_req_t req, fuse_ino_t ino)
{
	SCOPE(READLINK, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	char buf[PATH_MAX + 1];
	ssize_t len = file_readlink(fs, n, buf, sizeof(buf) - 1);
	put(fs, n);
	if (len < 0) {
		fuse_reply_err(req, (int)-len);
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

/* Takes away the setuid/setgid bits that `cause` by the caller of `req` costs n (killpriv.h):
 * the kernel leaves that to us. `of`: the handle the change came through, or NULL. */
static int kill_priv(fuse_req_t req, struct node *n, struct open_file *of,
		     enum killpriv_cause cause)
{
	struct plyfs *fs = req_fs(req);
	struct stat st;
	int r = of ? file_getattr(fs, of, &st) : inode_getattr(fs, n, &st);
	if (r < 0)
		return r;
	mode_t mode = killpriv_mode(req, cause, st.st_mode, st.st_gid);
	if (mode == st.st_mode)
		return 0;
	struct stat attr = {.st_mode = mode};
	r = setattr_apply(fs, n, of, &attr, FUSE_SET_ATTR_MODE, &st);
	/* A WRITE's reply carries no attributes: the kernel's cached mode must go. */
	if (r == 0 && fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, n->nodeid, -1, 0);
	return r;
}

/* Before a write through handle `of` whose current fd is `fd`: kill_priv() when the file has a
 * setuid or setgid bit; one fstat to know, unless the handle saw neither bit since the last mode
 * change (file_nopriv()). */
static int kill_priv_write(fuse_req_t req, struct open_file *of, int fd)
{
	unsigned long epoch;
	if (file_nopriv(req_fs(req), of, fd, &epoch))
		return 0;
	struct stat st;
	int r = layer_fstat(fd, &st);
	if (r < 0)
		return r;
	if (!(st.st_mode & (S_ISUID | S_ISGID))) {
		file_nopriv_seen(of, fd, epoch);
		return 0;
	}
	return kill_priv(req, of->node, of, KILLPRIV_WRITE);
}

static void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	SCOPE(OPEN, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct open_file *of = NULL;
	int r = 0;
	if (fi->flags & O_TRUNC)
		r = fileattr_check(fs, n, FA_TRUNCATE);
	else if ((fi->flags & O_ACCMODE) != O_RDONLY)
		r = fileattr_check(fs, n, (fi->flags & O_APPEND) ? FA_APPEND_OPEN : FA_WRITE_OPEN);
	if (r == 0)
		r = file_open(fs, n, fi->flags, &of);
	put(fs, n);
	/* An O_TRUNC open truncates here (atomic_o_trunc): it costs the bits as a truncate does. */
	if (r == 0 && (fi->flags & O_TRUNC)) {
		r = file_fd(fs, of);
		r = r < 0 ? r : kill_priv_write(req, of, r);
		if (r < 0)
			file_release(fs, of);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	/* Every change to a file goes through this FUSE inode, so the kernel's page cache is
	 * never stale (layers changed underneath are not supported). */
	fi->keep_cache = 1;
	/* An O_APPEND layer fd (file.h) takes the caller's writes as they come. */
	fi->direct_io = of->append_fd;
	if (fuse_reply_open(req, fi) == -ENOENT)
		file_release(fs, of); /* interrupted: no RELEASE will come */
}

/* READ replies are built in a buffer of the worker thread's own, reused from one read to the next
 * (a fresh 1 MiB malloc per read would be an mmap and its page faults each time). Freed when the
 * thread exits. */
#define READ_MAX (1024 * 1024) /* the kernel asks for at most max_pages (256) pages at once */
struct read_buf {
	size_t size;
	char data[];
};
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

static void read_buf_free(void *b)
{
	g_free(b);
}

static void read_buf_key_init(void)
{
	if (pthread_key_create(&read_buf_key, read_buf_free) != 0)
		abort(); /* only when the process is out of keys at start: nothing can be served */
}

static char *read_buf(size_t size)
{
	pthread_once(&read_buf_once, read_buf_key_init);
	struct read_buf *b = pthread_getspecific(read_buf_key);
	if (!b || b->size < size) {
		g_free(b);
		b = g_malloc(sizeof(*b) + size);
		b->size = size;
		pthread_setspecific(read_buf_key, b);
	}
	return b->data;
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	SCOPE(READ, ino);
	int fd = file_fd(req_fs(req), (struct open_file *)(uintptr_t)fi->fh);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	/* The read is made here, through the traced wrapper, not spliced by libfuse from the fd:
	 * libfuse would answer a failed splice itself, and a layer's EIO on an open file (a bad
	 * disk, a dead lower FUSE mount) would never reach the error slot (errors.h). A larger
	 * size than the kernel ever asks for is answered with a short read. */
	if (size > READ_MAX)
		size = READ_MAX;
	char *buf = read_buf(size);
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	ssize_t n = layer_pread(fd, buf, size, off);
	if (n >= 0)
		file_accessed(req_fs(req), of, fd);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	SCOPE(RELEASE, ino);
	file_release(req_fs(req), (struct open_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	SCOPE(FLUSH, ino);
	/* Nothing to do at close: the daemon buffers nothing (writes go straight to the layer fd),
	 * POSIX locks are the kernel's (no getlk/setlk: it drops them itself at close) and the
	 * layer fd's close errors would come at RELEASE anyway. ENOSYS makes the kernel stop
	 * sending FLUSH on this connection (fc->no_flush): one round trip less per close(2). The
	 * kernel still writes its dirty pages back and reports their errors before close returns.
	 */
	fuse_reply_err(req, ENOSYS);
}

static void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	SCOPE(OPENDIR, ino);
	struct plyfs *fs = req_fs(req);
	/* ENOSYS: the kernel sends no more OPENDIR nor RELEASEDIR on this connection
	 * (fc->no_opendir), opens every directory itself with keep_cache and cache_readdir, and
	 * sends READDIR(PLUS) and FSYNCDIR with fh 0: a warm walk of an unchanged tree sends
	 * nothing (2 round trips per directory less). The listings are then the directory's
	 * (dir_read_node()); the opens' checks are the kernel's (default_permissions), and a
	 * stale nodeid is refused by the READDIR. */
	if (fs->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct dir_handle *dh = NULL;
	bool cache = false;
	int r = dir_open(fs, n, &dh, &cache);
	put(fs, n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)dh;
	/* The kernel keeps the listing in the directory's page cache (keep_cache: an OPENDIR does
	 * not drop it; cache_readdir: READDIR fills and then serves it). It starts over when the
	 * directory's mtime or i_version changed, and every entry operation through the mount bumps
	 * the i_version (fuse_dir_changed()); layers changed underneath are not supported. Not
	 * while the atime is due: the READDIR must reach us to move it (dir_open()). */
	fi->cache_readdir = cache;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_release(fs, dh);
}

/* What the daemon allocates for one READDIR at most, whatever size the request names: the
 * kernel's largest request (FUSE's max_pages, 256 pages). */
#define READDIR_BUF_MAX (1024 * 1024)

/* READDIR(PLUS) without a handle (no-opendir mode): the directory's listing. At its end, when
 * the next listing must reach us (it would move the atime), the kernel's cached copy is dropped
 * before the reply: the pages it filled from the earlier replies go, so the cache it marks
 * complete now is found incomplete and read again next time. */
static ssize_t readdir_node(fuse_req_t req, fuse_ino_t ino, char *buf, size_t size, off_t off,
			    bool plus)
{
	struct plyfs *fs = req_fs(req);
	struct node *n = node_table_get(fs->nodes, ino);
	if (!n)
		return -ESTALE;
	bool may_cache;
	ssize_t used = dir_read_node(fs, req, n, buf, size, off, plus, &may_cache);
	put(fs, n);
	if (!may_cache && fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
	return used;
}

/* A directory's ctime moved without a change of its listing (its attributes, xattrs, a rename
 * of it): under relatime its atime is due again, and in no-opendir mode the kernel would serve
 * the next listing from its cache, which moves nothing (readdir_node()). */
static void dir_listing_stale(struct plyfs *fs, struct node *n)
{
	if (fs->no_opendir && fs->se && S_ISDIR(n->type))
		fuse_lowlevel_notify_inval_inode(fs->se, n->nodeid, 0, 0);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	/* A shorter reply is always allowed; the kernel asks for a page or a few. */
	size = MIN(size, READDIR_BUF_MAX);
	g_autofree char *buf = g_malloc(size);
	ssize_t used = dh ? dir_read(req_fs(req), req, dh, buf, size, off, plus)
			  : readdir_node(req, ino, buf, size, off, plus);
	if (used < 0)
		fuse_reply_err(req, (int)-used);
	else
		fuse_reply_buf(req, buf, (size_t)used);
}

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	SCOPE(READDIR, ino);
	do_readdir(req, ino, size, off, fi, false);
}

static void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	SCOPE(READDIRPLUS, ino);
	do_readdir(req, ino, size, off, fi, true);
}

static void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	SCOPE(RELEASEDIR, ino);
	dir_release(req_fs(req), (struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ops_statfs(fuse_req_t req, fuse_ino_t ino)
{
	SCOPE(STATFS, ino);
	struct plyfs *fs = req_fs(req);
	struct statvfs st;
	/* The upper layer's filesystem is where new data goes; without one, the top lower's. */
	int r = layer_fstatvfs(fs->layers[0].root_fd, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* access(2) from the mode bits (only reached without default_permissions). */
static int check_access(const struct stat *st, const struct fuse_ctx *ctx, int mask)
{
	if (mask == F_OK)
		return 0;
	if (ctx->uid == 0) {
		if ((mask & X_OK) && !S_ISDIR(st->st_mode) && !(st->st_mode & 0111))
			return -EACCES;
		return 0;
	}
	mode_t bits = st->st_mode & 07;
	if (ctx->uid == st->st_uid)
		bits = (st->st_mode >> 6) & 07;
	else if (ctx->gid == st->st_gid)
		bits = (st->st_mode >> 3) & 07;
	return ((mode_t)mask & ~bits) ? -EACCES : 0;
}

static void ops_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	SCOPE(ACCESS, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct stat st;
	int r = inode_getattr(fs, n, &st);
	put(fs, n);
	if (r == 0)
		r = check_access(&st, fuse_req_ctx(req), mask);
	if (r == 0 && (mask & W_OK) && fs->params->read_only)
		r = -EROFS;
	fuse_reply_err(req, -r);
}

static void reply_xattr_result(fuse_req_t req, ssize_t r, size_t size, const char *buf)
{
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

/* The largest buffer getxattr(2)/listxattr(2) ever ask for: they cut a larger size to this, so
 * a request's size (up to 4 GiB) is not what the daemon allocates. */
#define XATTR_BUF_MAX 65536

static void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	SCOPE(GETXATTR, ino);
	struct plyfs *fs = req_fs(req);
	size = MIN(size, XATTR_BUF_MAX);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	g_autofree char *buf = size ? g_malloc(size) : NULL;
	ssize_t r = xattr_get(fs, n, name, buf, size);
	put(fs, n);
	reply_xattr_result(req, r, size, buf);
}

static void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	SCOPE(LISTXATTR, ino);
	struct plyfs *fs = req_fs(req);
	size = MIN(size, XATTR_BUF_MAX);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	g_autofree char *buf = size ? g_malloc(size) : NULL;
	ssize_t r = xattr_list(fs, n, buf, size);
	put(fs, n);
	reply_xattr_result(req, r, size, buf);
}

/* --- modifying operations --- */

static void reply_err_or_entry(fuse_req_t req, struct plyfs *fs, int r, struct node *n,
			       const struct stat *st)
{
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, n, st);
	put(fs, n);
}

/* What a SETATTR does, for the +i/+a check (the kernel's notify_change()). */
static enum fileattr_use setattr_use(int to_set)
{
	if (to_set & FUSE_SET_ATTR_SIZE)
		return FA_TRUNCATE;
	bool explicit_time =
		((to_set & FUSE_SET_ATTR_ATIME) && !(to_set & FUSE_SET_ATTR_ATIME_NOW)) ||
		((to_set & FUSE_SET_ATTR_MTIME) && !(to_set & FUSE_SET_ATTR_MTIME_NOW));
	if (explicit_time ||
	    (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		return FA_ATTR;
	return FA_TOUCH;
}

/* How far back an explicit time may lie and still be the kernel's own record of "now". */
#define WRITEBACK_TOUCH_SLACK 60

/* With the writeback cache the kernel sends the times a write or a touch (utimes(NULL)) gave a
 * file as explicit times (with FUSE_SET_ATTR_CTIME), which an append-only file refuses. There,
 * times from the last WRITEBACK_TOUCH_SLACK seconds are taken as a touch (set to now); older
 * or later ones stay explicit (EPERM, as utimes(2) with times gets from the kernel). */
static int writeback_times(struct plyfs *fs, struct node *n, const struct stat *attr, int to_set)
{
	const int id =
		FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE;
	if (!__atomic_load_n(&writeback_on, __ATOMIC_ACQUIRE) || !(to_set & FUSE_SET_ATTR_CTIME) ||
	    (to_set & id) || setattr_use(to_set) != FA_ATTR ||
	    fileattr_check(fs, n, FA_ATTR) == 0 || fileattr_check(fs, n, FA_TOUCH) < 0)
		return to_set;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	const struct timespec *t[2] = {(to_set & FUSE_SET_ATTR_ATIME) ? &attr->st_atim : NULL,
				       (to_set & FUSE_SET_ATTR_MTIME) ? &attr->st_mtim : NULL};
	for (int i = 0; i < 2; i++)
		if (t[i] && (t[i]->tv_sec > now.tv_sec ||
			     t[i]->tv_sec < now.tv_sec - WRITEBACK_TOUCH_SLACK))
			return to_set;
	if (to_set & FUSE_SET_ATTR_ATIME)
		to_set |= FUSE_SET_ATTR_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME)
		to_set |= FUSE_SET_ATTR_MTIME_NOW;
	return to_set;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* With the writeback cache the kernel sends its own record of the times (with
 * FUSE_SET_ATTR_CTIME) after a chmod or a setxattr too, times the file already has: nothing to
 * change, and not a reason to copy a hard link up by its name (kernel overlayfs does not). True
 * when so; `st` then holds the attributes. */
static bool writeback_unchanged(struct plyfs *fs, struct node *n, struct open_file *of,
				const struct stat *attr, int to_set, struct stat *st)
{
	const int other = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
			  FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;
	if (!__atomic_load_n(&writeback_on, __ATOMIC_ACQUIRE) || !(to_set & FUSE_SET_ATTR_CTIME) ||
	    (to_set & other))
		return false;
	if ((of ? file_getattr(fs, of, st) : inode_getattr(fs, n, st)) < 0)
		return false;
	return (!(to_set & FUSE_SET_ATTR_ATIME) || same_time(&attr->st_atim, &st->st_atim)) &&
	       (!(to_set & FUSE_SET_ATTR_MTIME) || same_time(&attr->st_mtim, &st->st_mtim));
}

static void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	SCOPE(SETATTR, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct open_file *of =
		fi && S_ISREG(n->type) ? (struct open_file *)(uintptr_t)fi->fh : NULL;
	struct stat st;
	const int changes = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
			    FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME;
	to_set = writeback_times(fs, n, attr, to_set);
	int r = (to_set & changes) ? fileattr_check(fs, n, setattr_use(to_set)) : 0;
	if (r == 0 && !writeback_unchanged(fs, n, of, attr, to_set, &st))
		r = setattr_apply(fs, n, of, attr, to_set, &st);
	/* A truncation costs the setuid/setgid bits as a write does (the reply carries them). */
	struct stat killed = {.st_mode = st.st_mode};
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE) && (st.st_mode & (S_ISUID | S_ISGID)))
		killed.st_mode = killpriv_mode(req, KILLPRIV_WRITE, st.st_mode, st.st_gid);
	if (r == 0 && killed.st_mode != st.st_mode)
		r = setattr_apply(fs, n, of, &killed, FUSE_SET_ATTR_MODE, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
	if (r == 0)
		dir_listing_stale(fs, n);
	put(fs, n);
}

/* Answers a name that no module may see (namei_check_request_name()); true when it did. */
static bool bad_name(fuse_req_t req, const char *name, int dot, int dotdot)
{
	int r = namei_check_request_name(name, dot, dotdot);
	if (r < 0)
		fuse_reply_err(req, -r);
	return r < 0;
}

/* MKNOD, MKDIR, SYMLINK and CREATE: the caller's ids come from the request. */
static int make(fuse_req_t req, fuse_ino_t parent, const char *name, struct create_req *cr,
		struct node **out, struct stat *st, int *fd)
{
	struct plyfs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	cr->uid = ctx->uid;
	cr->gid = ctx->gid;
	/* Only set when the kernel left the umask to us (POSIX ACLs enabled). */
	cr->umask = ctx->umask;
	struct node *dir = node_table_get(fs->nodes, parent);
	if (!dir)
		return -ESTALE;
	int r = create_entry(fs, dir, name, cr, out, st, fd);
	put(fs, dir);
	return r;
}

/* The types mknod(2) makes: the kernel's errno for the others (a directory: EPERM). A character
 * device 0/0 is a whiteout on disk: kernel overlayfs refuses to make one (EPERM), so do we. */
static bool bad_mknod_type(fuse_req_t req, mode_t mode, dev_t rdev)
{
	mode_t type = mode & S_IFMT;
	int err = 0;
	if (type == S_IFDIR || (type == S_IFCHR && rdev == 0))
		err = EPERM;
	else if (type != 0 && type != S_IFREG && type != S_IFCHR && type != S_IFBLK &&
		 type != S_IFIFO && type != S_IFSOCK)
		err = EINVAL;
	if (err)
		fuse_reply_err(req, err);
	return err != 0;
}

static void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	SCOPE(MKNOD, parent);
	struct plyfs *fs = req_fs(req);
	if (bad_name(req, name, EEXIST, EEXIST) || bad_mknod_type(req, mode, rdev))
		return;
	struct create_req cr = {.mode = mode, .rdev = rdev};
	struct node *n = NULL;
	struct stat st;
	int r = make(req, parent, name, &cr, &n, &st, NULL);
	reply_err_or_entry(req, fs, r, n, &st);
}

static void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	SCOPE(MKDIR, parent);
	struct plyfs *fs = req_fs(req);
	if (bad_name(req, name, EEXIST, EEXIST))
		return;
	struct create_req cr = {.mode = S_IFDIR | (mode & 07777)};
	struct node *n = NULL;
	struct stat st;
	int r = make(req, parent, name, &cr, &n, &st, NULL);
	reply_err_or_entry(req, fs, r, n, &st);
}

static void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	SCOPE(SYMLINK, parent);
	struct plyfs *fs = req_fs(req);
	if (bad_name(req, name, EEXIST, EEXIST))
		return;
	struct create_req cr = {.mode = S_IFLNK | 0777, .target = link};
	struct node *n = NULL;
	struct stat st;
	int r = make(req, parent, name, &cr, &n, &st, NULL);
	reply_err_or_entry(req, fs, r, n, &st);
}

static void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	SCOPE(CREATE, parent);
	struct plyfs *fs = req_fs(req);
	if (bad_name(req, name, EISDIR, EISDIR)) /* open(".", O_CREAT) */
		return;
	struct create_req cr = {.mode = S_IFREG | (mode & 07777), .flags = fi->flags};
	struct node *n = NULL;
	struct stat st;
	int fd = -1;
	int r = make(req, parent, name, &cr, &n, &st, &fd);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct open_file *of = file_adopt(fs, n, fd);
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->keep_cache = 1;
	struct fuse_entry_param e = {
		.ino = n->nodeid,
		.generation = n->generation,
		.attr = st,
		.attr_timeout = fs->timeout,
		.entry_timeout = fs->timeout,
	};
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		/* Interrupted: neither the lookup nor the open reached the kernel. */
		node_table_forget(fs->nodes, n->nodeid, 1);
		file_release(fs, of);
	}
	put(fs, n);
}

static void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	SCOPE(LINK, ino);
	struct plyfs *fs = req_fs(req);
	if (bad_name(req, newname, EEXIST, EEXIST))
		return;
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	struct node *dir = node_table_get(fs->nodes, newparent);
	struct node *out = NULL;
	struct stat st;
	int r = dir ? create_link(fs, n, dir, newname, &out, &st) : -ESTALE;
	put(fs, dir);
	put(fs, n);
	reply_err_or_entry(req, fs, r, out, &st);
}

static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct plyfs *fs = req_fs(req);
	/* The kernel's answers: rmdir(".") EINVAL, rmdir("..") ENOTEMPTY, unlink(either) EISDIR. */
	if (bad_name(req, name, dir ? EINVAL : EISDIR, dir ? ENOTEMPTY : EISDIR))
		return;
	struct node *p = req_node(req, parent);
	if (!p)
		return;
	int r = remove_entry(fs, p, name, dir);
	put(fs, p);
	fuse_reply_err(req, -r);
}

static void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	SCOPE(UNLINK, parent);
	do_remove(req, parent, name, false);
}

static void ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	SCOPE(RMDIR, parent);
	do_remove(req, parent, name, true);
}

static void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	SCOPE(RENAME, parent);
	struct plyfs *fs = req_fs(req);
	/* The kernel: "." or ".." on either side is EBUSY, a new one EEXIST with NOREPLACE. */
	int busy = (flags & RENAME_NOREPLACE) ? EEXIST : EBUSY;
	if (bad_name(req, name, EBUSY, EBUSY) || bad_name(req, newname, busy, busy))
		return;
	struct node *p = req_node(req, parent);
	if (!p)
		return;
	struct node *q = node_table_get(fs->nodes, newparent);
	int r = q ? rename_entry(fs, p, name, q, newname, flags) : -ESTALE;
	put(fs, q);
	put(fs, p);
	fuse_reply_err(req, -r);
}

static void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	SCOPE(SETXATTR, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	int r = fileattr_check(fs, n, FA_ATTR);
	if (r == 0)
		r = xattr_set(fs, n, name, value, size, flags);
	if (r == 0 && strcmp(name, "system.posix_acl_access") == 0)
		r = kill_priv(req, n, NULL, KILLPRIV_ACL);
	fuse_reply_err(req, -r);
	if (r == 0)
		dir_listing_stale(fs, n);
	put(fs, n);
}

static void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	SCOPE(REMOVEXATTR, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	int r = fileattr_check(fs, n, FA_ATTR);
	if (r == 0)
		r = xattr_remove(fs, n, name);
	fuse_reply_err(req, -r);
	if (r == 0)
		dir_listing_stale(fs, n);
	put(fs, n);
}

static struct open_file *fh_file(struct fuse_file_info *fi)
{
	return (struct open_file *)(uintptr_t)fi->fh;
}

static void ops_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			  struct fuse_file_info *fi)
{
	SCOPE(WRITE, ino);
	int fd = file_fd(req_fs(req), fh_file(fi));
	int r = fd < 0 ? fd : kill_priv_write(req, fh_file(fi), fd);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fd;
	out.buf[0].pos = off;
	ssize_t n = fuse_buf_copy(&out, in, 0);
	if (n < 0) {
		/* libfuse wrote to the layer fd, not a layer.c wrapper: note a layer error here. */
		errors_note_call((int)-n, "write", fd, NULL);
		fuse_reply_err(req, (int)-n);
	} else
		fuse_reply_write(req, (size_t)n);
}

static void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	SCOPE(FSYNC, ino);
	int fd = file_fd(req_fs(req), fh_file(fi));
	int r = fd < 0 ? fd : layer_fsync(fd, datasync);
	fuse_reply_err(req, -r);
}

static void ops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	SCOPE(FSYNCDIR, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	int r = 0;
	/* Only the upper layer has anything to flush. */
	if (inode_has_upper(fs, n)) {
		auto_lfd struct lfd dir = LFD_INIT;
		r = inode_locate(fs, n, &dir);
		autofd int fd = r < 0 ? -1 : layer_reopen(dir.fd, O_RDONLY | O_DIRECTORY);
		r = r < 0 ? r : (fd < 0 ? fd : layer_fsync(fd, datasync));
	}
	put(fs, n);
	fuse_reply_err(req, -r);
}

static void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			  struct fuse_file_info *fi)
{
	SCOPE(FALLOCATE, ino);
	int fd = file_fd(req_fs(req), fh_file(fi));
	int r = fd < 0 ? fd : 0;
	if (r == 0 && (mode & ~FALLOC_FL_KEEP_SIZE))
		r = fileattr_check(req_fs(req), fh_file(fi)->node, FA_FALLOCATE);
	if (r == 0)
		r = kill_priv_write(req, fh_file(fi), fd);
	if (r == 0)
		r = layer_fallocate(fd, mode, off, len);
	fuse_reply_err(req, -r);
}

static void ops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	SCOPE(LSEEK, ino);
	/* With the writeback cache the upper file lacks the data still in the kernel's dirty
	 * pages (SEEK_DATA past its end: ENXIO): ENOSYS makes the kernel answer SEEK_DATA and
	 * SEEK_HOLE itself from its size (no holes reported) for the rest of the mount. */
	if (__atomic_load_n(&writeback_on, __ATOMIC_ACQUIRE)) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int fd = file_fd(req_fs(req), fh_file(fi));
	off_t r = fd < 0 ? fd : layer_lseek(fd, off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

static void ops_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
				struct fuse_file_info *fi_out, size_t len, int flags)
{
	SCOPE(COPY_FILE_RANGE, ino_out);
	struct plyfs *fs = req_fs(req);
	int in = file_fd(fs, fh_file(fi_in));
	int out = file_fd(fs, fh_file(fi_out));
	ssize_t r = in < 0 ? in : (out < 0 ? out : kill_priv_write(req, fh_file(fi_out), out));
	if (r == 0)
		r = layer_copy_file_range(in, &off_in, out, &off_out, len);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* FUSE_IOCTL: the file attribute requests (fileattr.h); 32-bit callers send the same layouts. */
static void ops_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		      struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		      size_t in_bufsz, size_t out_bufsz)
{
	(void)arg, (void)fi, (void)flags;
	SCOPE(IOCTL, ino);
	struct plyfs *fs = req_fs(req);
	struct node *n = req_node(req, ino);
	if (!n)
		return;
	union {
		unsigned flags;
		struct fsxattr fa;
	} out = {0};
	size_t len = 0;
	int r = fileattr_ioctl(fs, n, cmd, in_buf, in_bufsz, &out,
			       out_bufsz < sizeof(out) ? out_bufsz : sizeof(out), &len);
	put(fs, n);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_ioctl(req, 0, len ? &out : NULL, len);
}

const struct fuse_lowlevel_ops plyfs_ops = {
	.init = ops_init,
	.lookup = ops_lookup,
	.forget = ops_forget,
	.forget_multi = ops_forget_multi,
	.getattr = ops_getattr,
	.readlink = ops_readlink,
	.open = ops_open,
	.read = ops_read,
	.release = ops_release,
	.flush = ops_flush,
	.fsync = ops_fsync,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.readdirplus = ops_readdirplus,
	.releasedir = ops_releasedir,
	.fsyncdir = ops_fsyncdir,
	.statfs = ops_statfs,
	.access = ops_access,
	.getxattr = ops_getxattr,
	.listxattr = ops_listxattr,
	.setattr = ops_setattr,
	.mknod = ops_mknod,
	.mkdir = ops_mkdir,
	.unlink = ops_unlink,
	.rmdir = ops_rmdir,
	.symlink = ops_symlink,
	.rename = ops_rename,
	.link = ops_link,
	.setxattr = ops_setxattr,
	.removexattr = ops_removexattr,
	.create = ops_create,
	.write_buf = ops_write_buf,
	.fallocate = ops_fallocate,
	.lseek = ops_lseek,
	.copy_file_range = ops_copy_file_range,
	.ioctl = ops_ioctl,
};
