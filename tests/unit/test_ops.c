// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * test_ops.c - hostile requests, handed straight to the request handlers (no kernel): unknown,
 * stale and wrapped nodeids, forgets of unknown nodes and of more than was looked up, negative
 * and huge offsets, readdir offsets past the end, bad names in every op that takes one, xattr
 * sizes of 0 and past 64 KiB. Each must get exactly one reply, an error where the kernel would
 * give one (compared with the kernel's answer to the same syscall on a scratch directory where
 * that is meaningful), and no crash, abort or leak (the ASan build runs this with LeakSanitizer;
 * every test ends by freeing the mount).
 *
 * The handlers reply through fake_fuse.c. The mount is built by the daemon's own fs_init() on
 * real layers in a temporary directory: main.c is compiled in here, with its main() renamed, so
 * the test never drifts from what the daemon sets up.
 */
#define main plyfs_daemon_main
#include "../../src/main.c"
#undef main

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "fake_fuse.h"

static char *test_root;
#include "tmpdir_main.h"

#define ROOT FUSE_ROOT_ID

/* One mount per test (each test runs in its own process): base/{lower1,lower2,upper,work,mnt},
 * and base/scratch, a plain directory with the same entries as the merged root, on which the
 * kernel's own answers are taken. */
static struct plyfs FS;
static struct plyfs_params P;
static char *base;
static int scratch = -1;

/* --- layers --- */

static void put_file(const char *dir, const char *name, const char *text)
{
	g_autofree char *p = g_build_filename(base, dir, name, NULL);
	ck_assert(g_file_set_contents(p, text, -1, NULL));
}

static void put_dir(const char *dir, const char *name)
{
	g_autofree char *p = g_build_filename(base, dir, name, NULL);
	ck_assert_int_eq(g_mkdir_with_parents(p, 0755), 0);
}

static void put_xattr(const char *dir, const char *name, const char *xname, const char *value)
{
	g_autofree char *p = g_build_filename(base, dir, name, NULL);
	ck_assert_int_eq(lsetxattr(p, xname, value, strlen(value), 0), 0);
}

static bool exists(const char *dir, const char *name)
{
	g_autofree char *p = g_build_filename(base, dir, name, NULL);
	struct stat st;
	return lstat(p, &st) == 0;
}

/* The merged root: f (lower1 over lower2), d/ (merged: x below, y above), e/ (lower2), l -> f,
 * u and ud/ (upper). Lower files carry user.k=value. */
static void make_layers(void)
{
	const char *dirs[] = {"lower1", "lower2", "upper", "work", "mnt", "scratch"};
	for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++)
		put_dir(dirs[i], "");
	put_file("lower2", "f", "lower2");
	put_dir("lower2", "d");
	put_file("lower2", "d/x", "x");
	put_dir("lower2", "e");
	put_file("lower1", "f", "hello");
	put_xattr("lower1", "f", "user.k", "value");
	put_dir("lower1", "d");
	put_file("lower1", "d/y", "y");
	g_autofree char *l = g_build_filename(base, "lower1", "l", NULL);
	ck_assert_int_eq(symlink("f", l), 0);
	put_file("upper", "u", "upper");
	put_dir("upper", "ud");

	put_file("scratch", "f", "hello");
	put_xattr("scratch", "f", "user.k", "value");
	put_dir("scratch", "d");
	put_file("scratch", "d/x", "x");
	put_file("scratch", "d/y", "y");
	put_dir("scratch", "e");
	put_file("scratch", "u", "upper");
	put_dir("scratch", "ud");
	g_autofree char *sl = g_build_filename(base, "scratch", "l", NULL);
	ck_assert_int_eq(symlink("f", sl), 0);
}

static void mount_setup(void)
{
	g_autofree char *tmpl = g_build_filename(test_root, "m-XXXXXX", NULL);
	base = g_strdup(g_mkdtemp(tmpl));
	ck_assert_ptr_nonnull(base);
	make_layers();
	g_autofree char *opts = g_strdup_printf("lowerdir=%s/lower1:%s/lower2,upperdir=%s/upper,"
						"workdir=%s/work,fsync=0",
						base, base, base, base);
	g_autofree char *mnt = g_build_filename(base, "mnt", NULL);
	char *argv[] = {"plyfs", "-o", opts, mnt, NULL};
	g_autofree char *err = NULL;
	memset(&P, 0, sizeof(P));
	ck_assert_msg(params_parse(4, argv, &P, &err) == 0 && params_validate(&P, &err) == 0, "%s",
		      err);
	umask(0); /* as main() does: modes come from the kernel with the umask applied */
	FS = (struct plyfs){.work_fd = -1, .work_dirfd = -1, .index_dirfd = -1};
	ck_assert_msg(fs_init(&FS, &P, &err) == 0, "%s", err);
	g_autofree char *s = g_build_filename(base, "scratch", NULL);
	scratch = open(s, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(scratch, 0);
}

static void mount_teardown(void)
{
	fs_fini(&FS);
	params_clear(&P);
	close(scratch);
	g_free(base);
}

/* Nothing was made beside the layers: a name cannot reach outside them. */
static void check_contained(void)
{
	g_autoptr(GDir) dir = g_dir_open(base, 0, NULL);
	ck_assert_ptr_nonnull(dir);
	const char *name;
	int n = 0;
	while ((name = g_dir_read_name(dir))) {
		ck_assert_msg(strcmp(name, "lower1") == 0 || strcmp(name, "lower2") == 0 ||
				      strcmp(name, "upper") == 0 || strcmp(name, "work") == 0 ||
				      strcmp(name, "mnt") == 0 || strcmp(name, "scratch") == 0,
			      "%s made outside the layers", name);
		n++;
	}
	ck_assert_int_eq(n, 6);
	g_autofree char *ud = g_build_filename(base, "upper", "ud", NULL);
	g_autoptr(GDir) sub = g_dir_open(ud, 0, NULL);
	ck_assert_ptr_null(g_dir_read_name(sub)); /* "ud/x" is not a way into ud either */
}

static struct node_table_stats stats(void)
{
	struct node_table_stats st;
	node_table_stats(FS.nodes, &st);
	return st;
}

/* --- requests --- */

static struct fuse_req *begin(void)
{
	return fake_req_new(&FS);
}

/* Every request is answered exactly once, with an errno libfuse accepts. */
static void check_replied(struct fuse_req *req)
{
	ck_assert_msg(req->replies == 1, "%d replies", req->replies);
	ck_assert(!req->bad_err);
}

static void forget(fuse_ino_t ino, uint64_t n)
{
	struct fuse_req *req = begin();
	plyfs_ops.forget(req, ino, n);
	check_replied(req);
	ck_assert_int_eq(req->kind, FAKE_NONE);
	fake_req_free(req);
}

static void forget_batch(struct fuse_forget_data *items, size_t n)
{
	struct fuse_req *req = begin();
	plyfs_ops.forget_multi(req, n, items);
	check_replied(req);
	ck_assert_int_eq(req->kind, FAKE_NONE);
	fake_req_free(req);
}

/* The errno of a reply; 0 for success. An entry reply of nodeid 0 is a negative entry: ENOENT.
 * *ino gets the nodeid of an entry reply. */
static int result(struct fuse_req *req, fuse_ino_t *ino)
{
	check_replied(req);
	if (ino)
		*ino = 0;
	switch (req->kind) {
	case FAKE_ERR:
		return req->err;
	case FAKE_ENTRY:
	case FAKE_CREATE:
		if (req->entry.ino == 0)
			return ENOENT;
		ck_assert_ptr_nonnull(ino);
		*ino = req->entry.ino;
		return 0;
	default:
		return 0;
	}
}

static int lookup(fuse_ino_t parent, const char *name, fuse_ino_t *ino)
{
	struct fuse_req *req = begin();
	plyfs_ops.lookup(req, parent, name);
	int r = result(req, ino);
	fake_req_free(req);
	return r;
}

static fuse_ino_t must_lookup(fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino;
	int r = lookup(parent, name, &ino);
	ck_assert_msg(r == 0, "lookup %s: %s", name, g_strerror(r));
	return ino;
}

static int getattr(fuse_ino_t ino)
{
	struct fuse_req *req = begin();
	plyfs_ops.getattr(req, ino, NULL);
	int r = result(req, NULL);
	fake_req_free(req);
	return r;
}

static uint64_t must_open(fuse_ino_t ino, int flags)
{
	struct fuse_req *req = begin();
	struct fuse_file_info fi = {.flags = flags};
	plyfs_ops.open(req, ino, &fi);
	ck_assert_int_eq(result(req, NULL), 0);
	ck_assert_int_eq(req->kind, FAKE_OPEN);
	uint64_t fh = req->fi.fh;
	fake_req_free(req);
	return fh;
}

static void release(fuse_ino_t ino, uint64_t fh)
{
	struct fuse_req *req = begin();
	struct fuse_file_info fi = {.fh = fh};
	plyfs_ops.release(req, ino, &fi);
	ck_assert_int_eq(result(req, NULL), 0);
	fake_req_free(req);
}

static uint64_t must_opendir(fuse_ino_t ino)
{
	struct fuse_req *req = begin();
	struct fuse_file_info fi = {0};
	plyfs_ops.opendir(req, ino, &fi);
	ck_assert_int_eq(result(req, NULL), 0);
	uint64_t fh = req->fi.fh;
	fake_req_free(req);
	return fh;
}

static void releasedir(fuse_ino_t ino, uint64_t fh)
{
	struct fuse_req *req = begin();
	struct fuse_file_info fi = {.fh = fh};
	plyfs_ops.releasedir(req, ino, &fi);
	ck_assert_int_eq(result(req, NULL), 0);
	fake_req_free(req);
}

/* Every op that takes a nodeid or a name. Which argument the test varies is given per op. */
enum op {
	OP_LOOKUP,	  /* (ino, name) */
	OP_LOOKUP_DOT,	  /* (ino, ".") */
	OP_LOOKUP_DOTDOT, /* (ino, "..") */
	OP_GETATTR,	  /* ino */
	OP_READLINK,	  /* ino */
	OP_OPEN,	  /* ino, O_RDONLY */
	OP_OPENDIR,	  /* ino */
	OP_SETATTR,	  /* ino, chmod 0644 */
	OP_ACCESS,	  /* ino, R_OK */
	OP_FSYNCDIR,	  /* ino */
	OP_GETXATTR,	  /* (ino, xattr name) */
	OP_LISTXATTR,	  /* ino */
	OP_SETXATTR,	  /* (ino, xattr name) = "v" */
	OP_REMOVEXATTR,	  /* (ino, xattr name) */
	OP_MKNOD,	  /* (parent ino, name), a regular file */
	OP_MKDIR,	  /* (parent ino, name) */
	OP_SYMLINK,	  /* (parent ino, name) -> "target" */
	OP_CREATE,	  /* (parent ino, name), O_CREAT|O_RDWR */
	OP_LINK,	  /* ino -> (root, name) */
	OP_LINK_TO,	  /* u -> (parent ino, name) */
	OP_UNLINK,	  /* (parent ino, name) */
	OP_RMDIR,	  /* (parent ino, name) */
	OP_RENAME,	  /* (parent ino, name) -> (root, "renamed") */
	OP_RENAME_TO,	  /* (root, "u") -> (parent ino, name) */
	OP_RENAME_NR_TO,  /* the same with RENAME_NOREPLACE */
	OP_RENAME_D_TO,	  /* (root, "d") -> (parent ino, name) */
	OP_RENAME_OVER_D, /* (parent ino, name) -> (root, "d") */
	OP_EXCHANGE_D,	  /* the same with RENAME_EXCHANGE */
	OP_IOCTL,	  /* ino, FS_IOC_GETFLAGS */
	N_OPS
};

static const char *const op_names[N_OPS] = {
	"lookup",
	"lookup(.)",
	"lookup(..)",
	"getattr",
	"readlink",
	"open",
	"opendir",
	"setattr",
	"access",
	"fsyncdir",
	"getxattr",
	"listxattr",
	"setxattr",
	"removexattr",
	"mknod",
	"mkdir",
	"symlink",
	"create",
	"link",
	"link(to)",
	"unlink",
	"rmdir",
	"rename",
	"rename(to)",
	"rename(noreplace, to)",
	"rename(d, to)",
	"rename(over d)",
	"rename(exchange d)",
	"ioctl",
};

/* Undoes what a successful request left the kernel holding (lookups, open handles). */
static void undo(struct fuse_req *req, enum op op, fuse_ino_t ino, fuse_ino_t got)
{
	if (got)
		forget(got, 1);
	if (req->kind == FAKE_CREATE)
		release(got, req->fi.fh);
	else if (req->kind == FAKE_OPEN && op == OP_OPENDIR)
		releasedir(ino, req->fi.fh);
	else if (req->kind == FAKE_OPEN)
		release(ino, req->fi.fh);
}

/* Runs `op` on (ino, name) and returns its errno (0: success), after undoing a success. */
static int call(enum op op, fuse_ino_t ino, const char *name)
{
	fuse_ino_t src = op == OP_LINK_TO ? must_lookup(ROOT, "u") : 0;
	struct fuse_req *req = begin();
	struct fuse_file_info fi = {.flags = O_RDONLY};
	struct stat attr = {.st_mode = 0644};
	switch (op) {
	case OP_LOOKUP:
		plyfs_ops.lookup(req, ino, name);
		break;
	case OP_LOOKUP_DOT:
		plyfs_ops.lookup(req, ino, ".");
		break;
	case OP_LOOKUP_DOTDOT:
		plyfs_ops.lookup(req, ino, "..");
		break;
	case OP_GETATTR:
		plyfs_ops.getattr(req, ino, NULL);
		break;
	case OP_READLINK:
		plyfs_ops.readlink(req, ino);
		break;
	case OP_OPEN:
		plyfs_ops.open(req, ino, &fi);
		break;
	case OP_OPENDIR:
		plyfs_ops.opendir(req, ino, &fi);
		break;
	case OP_SETATTR:
		plyfs_ops.setattr(req, ino, &attr, FUSE_SET_ATTR_MODE, NULL);
		break;
	case OP_ACCESS:
		plyfs_ops.access(req, ino, R_OK);
		break;
	case OP_FSYNCDIR:
		plyfs_ops.fsyncdir(req, ino, 0, &fi);
		break;
	case OP_GETXATTR:
		plyfs_ops.getxattr(req, ino, name, 64);
		break;
	case OP_LISTXATTR:
		plyfs_ops.listxattr(req, ino, 4096);
		break;
	case OP_SETXATTR:
		plyfs_ops.setxattr(req, ino, name, "v", 1, 0);
		break;
	case OP_REMOVEXATTR:
		plyfs_ops.removexattr(req, ino, name);
		break;
	case OP_MKNOD:
		plyfs_ops.mknod(req, ino, name, S_IFREG | 0644, 0);
		break;
	case OP_MKDIR:
		plyfs_ops.mkdir(req, ino, name, 0755);
		break;
	case OP_SYMLINK:
		plyfs_ops.symlink(req, "target", ino, name);
		break;
	case OP_CREATE:
		fi.flags = O_CREAT | O_RDWR;
		plyfs_ops.create(req, ino, name, 0644, &fi);
		break;
	case OP_LINK:
		plyfs_ops.link(req, ino, ROOT, name);
		break;
	case OP_LINK_TO:
		plyfs_ops.link(req, src, ino, name);
		break;
	case OP_UNLINK:
		plyfs_ops.unlink(req, ino, name);
		break;
	case OP_RMDIR:
		plyfs_ops.rmdir(req, ino, name);
		break;
	case OP_RENAME:
		plyfs_ops.rename(req, ino, name, ROOT, "renamed", 0);
		break;
	case OP_RENAME_TO:
		plyfs_ops.rename(req, ROOT, "u", ino, name, 0);
		break;
	case OP_RENAME_NR_TO:
		plyfs_ops.rename(req, ROOT, "u", ino, name, RENAME_NOREPLACE);
		break;
	case OP_RENAME_D_TO:
		plyfs_ops.rename(req, ROOT, "d", ino, name, 0);
		break;
	case OP_RENAME_OVER_D:
		plyfs_ops.rename(req, ino, name, ROOT, "d", 0);
		break;
	case OP_EXCHANGE_D:
		plyfs_ops.rename(req, ino, name, ROOT, "d", RENAME_EXCHANGE);
		break;
	case OP_IOCTL:
		plyfs_ops.ioctl(req, ino, FS_IOC_GETFLAGS, NULL, &fi, 0, NULL, 0, sizeof(unsigned));
		break;
	case N_OPS:
		ck_abort();
	}
	fuse_ino_t got;
	int r = result(req, &got);
	if (r == 0)
		undo(req, op, ino, got);
	fake_req_free(req);
	if (src)
		forget(src, 1);
	return r;
}

/*
 * The kernel's answer to the same syscall on the scratch directory (same entries as the merged
 * root): `parent` is a path in it ("" for itself). Returns 0 or the errno.
 */
static int kernel_call(enum op op, const char *parent, const char *name)
{
	g_autofree char *path = *parent ? g_strconcat(parent, "/", name, NULL) : g_strdup(name);
	g_autofree char *fpath = g_strdup_printf("/proc/self/fd/%d/%s", scratch, parent);
	char buf[64];
	int fd, r;
	switch (op) {
	case OP_LOOKUP: {
		struct stat st;
		r = fstatat(scratch, path, &st, AT_SYMLINK_NOFOLLOW);
		break;
	}
	case OP_GETXATTR:
		r = (int)lgetxattr(fpath, name, buf, sizeof(buf));
		break;
	case OP_SETXATTR:
		r = lsetxattr(fpath, name, "v", 1, 0);
		break;
	case OP_REMOVEXATTR:
		r = lremovexattr(fpath, name);
		break;
	case OP_MKNOD:
		r = mknodat(scratch, path, S_IFREG | 0644, 0);
		break;
	case OP_MKDIR:
		r = mkdirat(scratch, path, 0755);
		break;
	case OP_SYMLINK:
		r = symlinkat("target", scratch, path);
		break;
	case OP_CREATE:
		fd = openat(scratch, path, O_CREAT | O_RDWR | O_NOFOLLOW, 0644);
		r = fd;
		if (fd >= 0)
			close(fd);
		break;
	case OP_LINK:
		r = linkat(scratch, parent, scratch, name, 0);
		break;
	case OP_LINK_TO:
		r = linkat(scratch, "u", scratch, path, 0);
		break;
	case OP_UNLINK:
		r = unlinkat(scratch, path, 0);
		break;
	case OP_RMDIR:
		r = unlinkat(scratch, path, AT_REMOVEDIR);
		break;
	case OP_RENAME:
		r = renameat2(scratch, path, scratch, "renamed", 0);
		break;
	case OP_RENAME_TO:
		r = renameat2(scratch, "u", scratch, path, 0);
		break;
	case OP_RENAME_NR_TO:
		r = renameat2(scratch, "u", scratch, path, RENAME_NOREPLACE);
		break;
	case OP_RENAME_D_TO:
		r = renameat2(scratch, "d", scratch, path, 0);
		break;
	case OP_RENAME_OVER_D:
		r = renameat2(scratch, path, scratch, "d", 0);
		break;
	case OP_EXCHANGE_D:
		r = renameat2(scratch, path, scratch, "d", RENAME_EXCHANGE);
		break;
	default:
		ck_abort_msg("no kernel counterpart for %s", op_names[op]);
	}
	return r < 0 ? errno : 0;
}

/* "<N>" stands for a name of N bytes; anything else is the name itself. */
static char *expand(const char *name)
{
	unsigned n;
	if (sscanf(name, "<%u>", &n) == 1)
		return g_strnfill(n, 'n');
	if (sscanf(name, "user.<%u>", &n) == 1) {
		char *x = g_strnfill(n, 'n');
		memcpy(x, "user.", 5);
		return x;
	}
	return g_strdup(name);
}

/* --- nodeids --- */

/* The name an op gets when the nodeid is what is under test. */
static const char *plain_name(enum op op)
{
	switch (op) {
	case OP_LOOKUP:
	case OP_RENAME:
		return "f";
	case OP_GETXATTR:
	case OP_SETXATTR:
	case OP_REMOVEXATTR:
		return "user.k";
	default:
		return "newname";
	}
}

/* A nodeid that was handed out and is gone for good: a file created, released, forgotten and
 * unlinked (no record of it is kept, so not even a file handle finds it again). */
static fuse_ino_t dead_nodeid(void)
{
	struct fuse_req *req = begin();
	struct fuse_file_info fi = {.flags = O_CREAT | O_RDWR};
	plyfs_ops.create(req, ROOT, "tmp", 0644, &fi);
	fuse_ino_t ino;
	ck_assert_int_eq(result(req, &ino), 0);
	release(ino, req->fi.fh);
	fake_req_free(req);
	forget(ino, 1);
	ck_assert_int_eq(call(OP_UNLINK, ROOT, "tmp"), 0);
	ck_assert_int_eq(getattr(ino), ESTALE);
	return ino;
}

/* Every op, with each nodeid the table does not know: ESTALE (the kernel's answer for a file
 * handle that no longer resolves), one reply, nothing created. */
START_TEST(test_unknown_nodeids)
{
	enum op op = (enum op)_i;
	uint64_t dead = dead_nodeid();
	fuse_ino_t u = must_lookup(ROOT, "u"); /* call() looks it up for OP_LINK_TO: not a new id */
	const uint64_t ids[] = {
		0,			      /* never a nodeid (a negative entry's) */
		UINT64_MAX,		      /* a wrapped counter */
		UINT64_MAX - 1,		      /* its neighbour */
		1u << 20,		      /* far beyond those handed out */
		node_table_next_id(FS.nodes), /* the next to be handed out */
		dead,			      /* freed after its forget */
	};
	struct node_table_stats before = stats();
	for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
		int r = call(op, ids[i], plain_name(op));
		ck_assert_msg(r == ESTALE, "%s on nodeid %" PRIu64 ": %s", op_names[op], ids[i],
			      g_strerror(r));
	}
	struct node_table_stats after = stats();
	ck_assert_uint_eq(after.live, before.live);
	ck_assert_uint_eq(after.total, before.total);
	ck_assert(!exists("upper", "newname"));
	check_contained();
	forget(u, 1);
}
END_TEST

/* A nodeid the kernel forgot is still found by its file handle (LOOKUP of "."): the same one. */
START_TEST(test_forgotten_nodeid_by_handle)
{
	fuse_ino_t f = must_lookup(ROOT, "f");
	forget(f, 1);
	ck_assert_int_eq(getattr(f), ESTALE);
	ck_assert_uint_eq(must_lookup(f, "."), f);
	ck_assert_int_eq(getattr(f), 0);
	forget(f, 1);
	ck_assert_uint_eq(stats().live, 1);
}
END_TEST

/* --- names --- */

enum where { AT_ROOT, AT_DIR, AT_FILE, AT_SYMLINK };
static const char *const where_path[] = {"", "d", "f", "l"};

static const struct name_case {
	enum op op;
	enum where at; /* the nodeid the op gets (see enum op) */
	const char *name;
	int err;     /* plyfs' answer, 0 for success */
	bool kernel; /* and the kernel's to the same syscall (checked on the scratch directory) */
} name_cases[] = {
	/* Over NAME_MAX: the FUSE module passes names up to 1024 bytes. */
	{OP_LOOKUP, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_MKNOD, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_MKDIR, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_MKDIR, AT_DIR, "<256>", ENAMETOOLONG, true},
	{OP_SYMLINK, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_CREATE, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_CREATE, AT_DIR, "<256>", ENAMETOOLONG, true},
	{OP_LINK_TO, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_UNLINK, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_RMDIR, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_RENAME, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_RENAME_TO, AT_ROOT, "<256>", ENAMETOOLONG, true},
	{OP_LOOKUP, AT_ROOT, "<1024>", ENAMETOOLONG, true},
	{OP_MKDIR, AT_ROOT, "<4096>", ENAMETOOLONG, false}, /* kernel: the path is too long */
	/* NAME_MAX itself is a name. */
	{OP_LOOKUP, AT_ROOT, "<255>", ENOENT, true},
	{OP_MKDIR, AT_ROOT, "<255>", 0, true},
	{OP_CREATE, AT_ROOT, "<255>", 0, true},
	{OP_SYMLINK, AT_DIR, "<255>", 0, true},
	{OP_RENAME_TO, AT_ROOT, "<255>", 0, true},
	{OP_UNLINK, AT_ROOT, "<255>", ENOENT, true},
	/* A '/' can never be in a component the kernel sends: EINVAL, and never a path that
	 * reaches another directory (check_contained) or copies the parent up. */
	{OP_LOOKUP, AT_ROOT, "d/x", EINVAL, false},
	{OP_LOOKUP, AT_ROOT, "../x", EINVAL, false},
	{OP_MKNOD, AT_ROOT, "../x", EINVAL, false},
	{OP_MKNOD, AT_DIR, "a/b", EINVAL, false},
	{OP_MKDIR, AT_ROOT, "../x", EINVAL, false},
	{OP_MKDIR, AT_ROOT, "ud/x", EINVAL, false},
	{OP_MKDIR, AT_DIR, "../../x", EINVAL, false},
	{OP_MKDIR, AT_ROOT, "/", EINVAL, false},
	{OP_SYMLINK, AT_ROOT, "../x", EINVAL, false},
	{OP_SYMLINK, AT_ROOT, "ud/x", EINVAL, false},
	{OP_CREATE, AT_ROOT, "../x", EINVAL, false},
	{OP_CREATE, AT_ROOT, "ud/x", EINVAL, false},
	{OP_CREATE, AT_DIR, "a/b", EINVAL, false},
	{OP_LINK_TO, AT_ROOT, "../x", EINVAL, false},
	{OP_LINK_TO, AT_ROOT, "ud/x", EINVAL, false},
	{OP_UNLINK, AT_ROOT, "d/x", EINVAL, false},
	{OP_UNLINK, AT_DIR, "../u", EINVAL, false},
	{OP_RMDIR, AT_ROOT, "d/", EINVAL, false},
	{OP_RENAME, AT_ROOT, "d/x", EINVAL, false},
	{OP_RENAME_TO, AT_ROOT, "../x", EINVAL, false},
	{OP_RENAME_TO, AT_ROOT, "ud/x", EINVAL, false},
	/* Nor an empty one (a path "" is ENOENT before any filesystem sees it). */
	{OP_LOOKUP, AT_ROOT, "", EINVAL, false},
	{OP_MKNOD, AT_ROOT, "", EINVAL, false},
	{OP_MKDIR, AT_DIR, "", EINVAL, false},
	{OP_SYMLINK, AT_ROOT, "", EINVAL, false},
	{OP_CREATE, AT_ROOT, "", EINVAL, false},
	{OP_LINK_TO, AT_ROOT, "", EINVAL, false},
	{OP_UNLINK, AT_ROOT, "", EINVAL, false},
	{OP_RMDIR, AT_ROOT, "", EINVAL, false},
	{OP_RENAME, AT_ROOT, "", EINVAL, false},
	{OP_RENAME_TO, AT_ROOT, "", EINVAL, false},
	/* "." and "..": the kernel's answers to the same syscalls (namei.c, LAST_DOT/DOTDOT). */
	{OP_MKNOD, AT_ROOT, ".", EEXIST, true},
	{OP_MKNOD, AT_DIR, "..", EEXIST, true},
	{OP_MKDIR, AT_ROOT, ".", EEXIST, true},
	{OP_MKDIR, AT_DIR, "..", EEXIST, true},
	{OP_SYMLINK, AT_ROOT, ".", EEXIST, true},
	{OP_SYMLINK, AT_DIR, "..", EEXIST, true},
	{OP_CREATE, AT_ROOT, ".", EISDIR, true},
	{OP_CREATE, AT_DIR, "..", EISDIR, true},
	{OP_LINK_TO, AT_ROOT, ".", EEXIST, true},
	{OP_LINK_TO, AT_DIR, "..", EEXIST, true},
	{OP_UNLINK, AT_ROOT, ".", EISDIR, true},
	{OP_UNLINK, AT_DIR, "..", EISDIR, true},
	{OP_RMDIR, AT_DIR, ".", EINVAL, true},
	{OP_RMDIR, AT_DIR, "..", ENOTEMPTY, true},
	{OP_RMDIR, AT_ROOT, "..", ENOTEMPTY, true},
	{OP_RENAME, AT_DIR, ".", EBUSY, true},
	{OP_RENAME, AT_ROOT, "..", EBUSY, true},
	{OP_RENAME_TO, AT_DIR, ".", EBUSY, true},
	{OP_RENAME_TO, AT_ROOT, "..", EBUSY, true},
	{OP_RENAME_NR_TO, AT_DIR, ".", EEXIST, true},
	{OP_RENAME_NR_TO, AT_ROOT, "..", EEXIST, true},
	/* A directory into itself, or over what holds the source (names the kernel accepts). */
	{OP_RENAME_D_TO, AT_DIR, "sub", EINVAL, true},
	{OP_RENAME_D_TO, AT_DIR, "x", EINVAL, true},
	{OP_RENAME_OVER_D, AT_DIR, "x", ENOTEMPTY, true},
	{OP_EXCHANGE_D, AT_DIR, "x", EINVAL, true},
	{OP_EXCHANGE_D, AT_DIR, "y", EINVAL, true},
	/* A parent that is not a directory: ENOTDIR, and the file is not copied up. */
	{OP_LOOKUP, AT_FILE, "x", ENOTDIR, true},
	{OP_MKNOD, AT_FILE, "x", ENOTDIR, true},
	{OP_MKDIR, AT_FILE, "x", ENOTDIR, true},
	{OP_MKDIR, AT_SYMLINK, "x", ENOTDIR, false}, /* kernel: follows the symlink */
	{OP_SYMLINK, AT_FILE, "x", ENOTDIR, true},
	{OP_CREATE, AT_FILE, "x", ENOTDIR, true},
	{OP_LINK_TO, AT_FILE, "x", ENOTDIR, true},
	{OP_UNLINK, AT_FILE, "x", ENOTDIR, true},
	{OP_RMDIR, AT_FILE, "x", ENOTDIR, true},
	{OP_RENAME, AT_FILE, "x", ENOTDIR, true},
	{OP_RENAME_TO, AT_FILE, "x", ENOTDIR, true},
	{OP_OPENDIR, AT_FILE, NULL, ENOTDIR, false},
	/* Other requests on the wrong kind of node (the root among them). */
	{OP_OPEN, AT_ROOT, NULL, EISDIR, false},
	{OP_OPEN, AT_DIR, NULL, EISDIR, false},
	{OP_READLINK, AT_ROOT, NULL, EINVAL, false},
	{OP_READLINK, AT_FILE, NULL, EINVAL, false},
	{OP_LINK, AT_ROOT, "newname", EPERM, false},
	{OP_LINK, AT_DIR, "newname", EPERM, true},
	/* xattr names: empty or over XATTR_NAME_MAX (255) is ERANGE, before any copy-up. */
	{OP_GETXATTR, AT_FILE, "", ERANGE, true},
	{OP_GETXATTR, AT_FILE, "user.<256>", ERANGE, true},
	{OP_GETXATTR, AT_FILE, "user.<255>", ENODATA, true},
	{OP_GETXATTR, AT_ROOT, "<256>", ERANGE, false},
	{OP_SETXATTR, AT_FILE, "", ERANGE, true},
	{OP_SETXATTR, AT_FILE, "user.<256>", ERANGE, true},
	{OP_SETXATTR, AT_FILE, "user.<255>", 0, true},
	{OP_SETXATTR, AT_FILE, "trusted.overlay.opaque", EPERM, false}, /* kernel overlayfs */
	{OP_REMOVEXATTR, AT_FILE, "", ERANGE, true},
	{OP_REMOVEXATTR, AT_FILE, "user.<256>", ERANGE, true},
	{OP_REMOVEXATTR, AT_FILE, "user.k", 0, true},
};

static fuse_ino_t where_ino(enum where at)
{
	return at == AT_ROOT ? ROOT : must_lookup(ROOT, where_path[at]);
}

START_TEST(test_names)
{
	const struct name_case *c = &name_cases[_i];
	g_autofree char *name = c->name ? expand(c->name) : NULL;
	fuse_ino_t ino = where_ino(c->at);
	struct node_table_stats before = stats();
	int r = call(c->op, ino, name);
	ck_assert_msg(r == c->err, "%s(%s, %.20s): %s, expected %s", op_names[c->op],
		      where_path[c->at], c->name, g_strerror(r), g_strerror(c->err));
	if (c->kernel) {
		int k = kernel_call(c->op, where_path[c->at], name);
		ck_assert_msg(k == c->err, "the kernel answers %s", g_strerror(k));
	}
	/* A failed request changed nothing: no copy-up of the parent, no node left behind. */
	if (r != 0) {
		if (c->at != AT_ROOT)
			ck_assert_msg(!exists("upper", where_path[c->at]), "copied up");
		ck_assert_uint_eq(stats().live, before.live);
	}
	check_contained();
	if (ino != ROOT)
		forget(ino, 1);
	ck_assert_uint_eq(stats().live, 1);
}
END_TEST

/* MKNOD with a type mknod(2) refuses: the kernel's errno, nothing made. */
static const struct mode_case {
	mode_t mode;
	int err;
} mode_cases[] = {
	{S_IFDIR | 0755, EPERM}, {S_IFLNK | 0777, EINVAL}, {S_IFMT | 0644, EINVAL},
	{0xe000 | 0644, EINVAL}, {S_IFIFO | 0644, 0},	   {0644, 0}, /* no type: a regular file */
};

START_TEST(test_mknod_modes)
{
	const struct mode_case *c = &mode_cases[_i];
	struct fuse_req *req = begin();
	plyfs_ops.mknod(req, ROOT, "node", c->mode, 0);
	fuse_ino_t ino;
	int r = result(req, &ino);
	fake_req_free(req);
	ck_assert_msg(r == c->err, "mode %o: %s", c->mode, g_strerror(r));
	int k = mknodat(scratch, "node", c->mode, 0) < 0 ? errno : 0;
	ck_assert_msg(k == c->err, "the kernel answers %s", g_strerror(k));
	ck_assert(exists("upper", "node") == (r == 0));
	if (ino)
		forget(ino, 1);
}
END_TEST

/* --- offsets --- */

enum fop { F_READ, F_WRITE, F_LSEEK, F_FALLOCATE, F_COPY };
static const char *const fop_names[] = {"read", "write", "lseek", "fallocate", "copy_file_range"};

/*
 * On handles of f (read-only, "hello") and u (read-write, "upper"). The answer must be `err`
 * (0: success) for plyfs and for the kernel's syscall on a copy of the same files, and on success
 * the same byte count or offset.
 */
static const struct off_case {
	enum fop op;
	int64_t off;  /* read/write/lseek/fallocate offset; copy_file_range off_in */
	int64_t len;  /* size, len; copy_file_range len */
	int arg;      /* lseek whence, fallocate mode */
	int64_t off2; /* copy_file_range off_out */
	int err;
} off_cases[] = {
	{F_READ, -1, 4096, 0, 0, EINVAL},
	{F_READ, INT64_MIN, 4096, 0, 0, EINVAL},
	{F_READ, INT64_MAX, 4096, 0, 0, EINVAL}, /* off + size wraps */
	{F_READ, INT64_MAX - 4096, 4096, 0, 0, 0},
	{F_READ, 1LL << 40, 4096, 0, 0, 0},
	{F_READ, 5, 4096, 0, 0, 0},
	{F_READ, 0, 0, 0, 0, 0},
	{F_WRITE, -1, 4, 0, 0, EINVAL},
	{F_WRITE, INT64_MIN, 4, 0, 0, EINVAL},
	{F_WRITE, INT64_MAX, 4, 0, 0, EINVAL},
	{F_WRITE, INT64_MAX - 2, 4, 0, 0, EINVAL},
	{F_WRITE, INT64_MAX - 4, 4, 0, 0, EFBIG},
	{F_WRITE, 100, 4, 0, 0, 0},
	{F_LSEEK, -1, 0, SEEK_SET, 0, EINVAL},
	{F_LSEEK, -1, 0, SEEK_DATA, 0, ENXIO},
	{F_LSEEK, -1, 0, SEEK_HOLE, 0, ENXIO},
	{F_LSEEK, INT64_MAX, 0, SEEK_DATA, 0, ENXIO},
	{F_LSEEK, INT64_MIN, 0, SEEK_HOLE, 0, ENXIO},
	{F_LSEEK, 1LL << 40, 0, SEEK_DATA, 0, ENXIO},
	{F_LSEEK, 0, 0, 42, 0, EINVAL},
	{F_LSEEK, 0, 0, -1, 0, EINVAL},
	{F_LSEEK, 2, 0, SEEK_DATA, 0, 0},
	{F_LSEEK, 2, 0, SEEK_HOLE, 0, 0},
	{F_FALLOCATE, -1, 1, 0, 0, EINVAL},
	{F_FALLOCATE, 0, 0, 0, 0, EINVAL},
	{F_FALLOCATE, 0, -1, 0, 0, EINVAL},
	{F_FALLOCATE, INT64_MIN, 1, 0, 0, EINVAL},
	{F_FALLOCATE, INT64_MAX, INT64_MAX, 0, 0, EFBIG},
	{F_FALLOCATE, 1, INT64_MAX, 0, 0, EFBIG},
	{F_FALLOCATE, 0, 4096, 0x7f00, 0, EOPNOTSUPP},
	{F_FALLOCATE, 0, 4096, 0, 0, 0},
	{F_COPY, -1, 5, 0, 0, EOVERFLOW},
	{F_COPY, 0, 5, 0, -1, EOVERFLOW},
	{F_COPY, INT64_MIN, 5, 0, 0, EINVAL},
	{F_COPY, 0, 5, 0, INT64_MAX, EFBIG},
	{F_COPY, INT64_MAX, 5, 0, 0, 0},
	{F_COPY, 1LL << 40, 5, 0, 0, 0},
	{F_COPY, 0, INT64_MAX, 0, 0, 0},
	{F_COPY, 0, 5, 0, 1LL << 30, 0},
};

/* The same syscall on copies of f and u: the byte count or offset, or -errno. */
static int64_t kernel_off(const struct off_case *c)
{
	int in = openat(scratch, "f", O_RDONLY | O_CLOEXEC);
	int out = openat(scratch, "u", O_RDWR | O_CLOEXEC);
	ck_assert(in >= 0 && out >= 0);
	char buf[4096];
	int64_t r = 0;
	off_t a = c->off, b = c->off2;
	switch (c->op) {
	case F_READ:
		r = pread(in, buf, (size_t)c->len, c->off);
		break;
	case F_WRITE:
		r = pwrite(out, "data", (size_t)c->len, c->off);
		break;
	case F_LSEEK:
		r = lseek(in, c->off, c->arg);
		break;
	case F_FALLOCATE:
		r = fallocate(out, c->arg, c->off, c->len);
		break;
	case F_COPY:
		r = copy_file_range(in, &a, out, &b, (size_t)c->len, 0);
		break;
	}
	if (r < 0)
		r = -errno;
	close(in);
	close(out);
	return r;
}

START_TEST(test_offsets)
{
	const struct off_case *c = &off_cases[_i];
	fuse_ino_t f = must_lookup(ROOT, "f"), u = must_lookup(ROOT, "u");
	struct fuse_file_info fin = {.fh = must_open(f, O_RDONLY)};
	struct fuse_file_info fout = {.fh = must_open(u, O_RDWR)};
	struct fuse_req *req = begin();
	struct fuse_bufvec data = FUSE_BUFVEC_INIT((size_t)c->len);
	data.buf[0].mem = "data";
	switch (c->op) {
	case F_READ:
		plyfs_ops.read(req, f, (size_t)c->len, c->off, &fin);
		break;
	case F_WRITE:
		plyfs_ops.write_buf(req, u, &data, c->off, &fout);
		break;
	case F_LSEEK:
		plyfs_ops.lseek(req, f, c->off, c->arg, &fin);
		break;
	case F_FALLOCATE:
		plyfs_ops.fallocate(req, u, c->arg, c->off, c->len, &fout);
		break;
	case F_COPY:
		plyfs_ops.copy_file_range(req, f, c->off, &fin, u, c->off2, &fout, (size_t)c->len,
					  0);
		break;
	}
	int r = result(req, NULL);
	int64_t got = req->kind == FAKE_BUF	? (int64_t)req->data->len
		      : req->kind == FAKE_WRITE ? (int64_t)req->count
		      : req->kind == FAKE_LSEEK ? (int64_t)req->off
						: 0;
	fake_req_free(req);
	int64_t k = kernel_off(c);
	ck_assert_msg(r == c->err, "%s(%" PRId64 ", %" PRId64 ", %d, %" PRId64 "): %s",
		      fop_names[c->op], c->off, c->len, c->arg, c->off2, g_strerror(r));
	ck_assert_msg(k == (c->err ? -c->err : k), "the kernel answers %s", g_strerror((int)-k));
	if (r == 0)
		ck_assert_int_eq(got, k);
	release(f, fin.fh);
	release(u, fout.fh);
	forget(f, 1);
	forget(u, 1);
}
END_TEST

/* READDIR and READDIRPLUS of d (".", "..", x, y: offsets 1 to 4) at hostile offsets and sizes.
 * The kernel never sends a negative offset (lseek on a directory refuses it: EINVAL); past the
 * end is the end of the directory. READDIRPLUS counts a lookup per entry that fits, no more. */
static const struct dir_case {
	bool plus;
	int64_t off;
	uint32_t size;
	int err;
	int entries;
} dir_cases[] = {
	{false, -1, 4096, EINVAL, 0},
	{true, -1, 4096, EINVAL, 0},
	{false, INT64_MIN, 4096, EINVAL, 0},
	{true, INT64_MIN, 4096, EINVAL, 0},
	{false, 4, 4096, 0, 0},
	{true, 4, 4096, 0, 0},
	{false, 5, 4096, 0, 0},
	{true, 1000, 4096, 0, 0},
	{false, INT64_MAX, 4096, 0, 0},
	{true, INT64_MAX, 4096, 0, 0},
	{false, 0, 0, 0, 0},
	{true, 0, 0, 0, 0},
	{false, 0, 1, 0, 0},
	{true, 0, 1, 0, 0},
	{true, 2, 200, 0, 1}, /* one entry fits */
	{false, 0, 4096, 0, 4},
	{true, 0, 4096, 0, 4},
	{false, 0, UINT32_MAX, 0, 4},
	{true, 3, UINT32_MAX, 0, 1},
};

/* Counts the entries of a reply; READDIRPLUS ones are lookups the test gives back. */
static int take_entries(const GByteArray *buf, bool plus)
{
	int n = 0;
	for (size_t pos = 0; pos < buf->len; n++) {
		if (plus) {
			const struct fuse_direntplus *d = (const void *)(buf->data + pos);
			if (d->entry_out.nodeid)
				forget(d->entry_out.nodeid, 1);
			pos += FUSE_DIRENTPLUS_SIZE(d);
		} else {
			pos += FUSE_DIRENT_SIZE((const struct fuse_dirent *)(buf->data + pos));
		}
	}
	return n;
}

START_TEST(test_readdir_offsets)
{
	const struct dir_case *c = &dir_cases[_i];
	fuse_ino_t d = must_lookup(ROOT, "d");
	uint64_t fh = must_opendir(d);
	struct node_table_stats before = stats();
	/* Once at offset 0 first (the list exists), once on a fresh handle (it does not). */
	for (int round = 0; round < 2; round++) {
		struct fuse_req *req = begin();
		struct fuse_file_info fi = {.fh = fh};
		if (round == 0) {
			plyfs_ops.readdir(req, d, 4096, 0, &fi);
			check_replied(req);
			fake_req_free(req);
			req = begin();
		}
		if (c->plus)
			plyfs_ops.readdirplus(req, d, c->size, c->off, &fi);
		else
			plyfs_ops.readdir(req, d, c->size, c->off, &fi);
		int r = result(req, NULL);
		ck_assert_msg(r == c->err, "offset %" PRId64 ": %s", c->off, g_strerror(r));
		if (r == 0)
			ck_assert_int_eq(take_entries(req->data, c->plus), c->entries);
		fake_req_free(req);
		ck_assert_uint_eq(stats().live, before.live);
		releasedir(d, fh);
		if (round == 0)
			fh = must_opendir(d);
	}
	forget(d, 1);
}
END_TEST

/* --- xattr sizes --- */

/* On f (user.k = "value"). `want` is the value's or the list's length where one is answered. The
 * kernel's syscall on a copy answers the same. The large value leaves room in ext4's one 4 KiB
 * xattr block for the origin a copy-up writes (kernel overlayfs' copy too has it). */
static const struct xsize_case {
	enum op op; /* OP_GETXATTR, OP_LISTXATTR, OP_SETXATTR */
	uint32_t size;
	int err;
	uint32_t want;
} xsize_cases[] = {
	{OP_GETXATTR, 0, 0, 5}, /* the size is asked */
	{OP_GETXATTR, 1, ERANGE, 0},	 {OP_GETXATTR, 5, 0, 5},
	{OP_GETXATTR, 65536, 0, 5},	 {OP_GETXATTR, 65537, 0, 5},
	{OP_GETXATTR, UINT32_MAX, 0, 5}, {OP_LISTXATTR, 0, 0, 7},
	{OP_LISTXATTR, 1, ERANGE, 0},	 {OP_LISTXATTR, 65536, 0, 7},
	{OP_LISTXATTR, 65537, 0, 7},	 {OP_LISTXATTR, UINT32_MAX, 0, 7},
	{OP_SETXATTR, 0, 0, 0},		 {OP_SETXATTR, 3800, 0, 0},
	{OP_SETXATTR, 65537, E2BIG, 0},	 {OP_SETXATTR, 1 << 20, E2BIG, 0},
};

static int64_t kernel_xattr(const struct xsize_case *c, const char *value)
{
	g_autofree char *path = g_strdup_printf("/proc/self/fd/%d/f", scratch);
	g_autofree char *buf = g_malloc(MIN(c->size, 1u << 17) + 1);
	size_t size = c->size; /* what the syscall is told; it never writes past 64 KiB */
	ssize_t r;
	switch (c->op) {
	case OP_GETXATTR:
		r = lgetxattr(path, "user.k", size ? buf : NULL, size);
		break;
	case OP_LISTXATTR:
		r = llistxattr(path, size ? buf : NULL, size);
		break;
	default:
		r = lsetxattr(path, "user.big", value, c->size, 0);
		break;
	}
	return r < 0 ? -errno : r;
}

START_TEST(test_xattr_sizes)
{
	const struct xsize_case *c = &xsize_cases[_i];
	fuse_ino_t f = must_lookup(ROOT, "f");
	g_autofree char *value = c->op == OP_SETXATTR ? g_malloc0(c->size + 1) : NULL;
	struct fuse_req *req = begin();
	if (c->op == OP_GETXATTR)
		plyfs_ops.getxattr(req, f, "user.k", c->size);
	else if (c->op == OP_LISTXATTR)
		plyfs_ops.listxattr(req, f, c->size);
	else
		plyfs_ops.setxattr(req, f, "user.big", value, c->size, 0);
	int r = result(req, NULL);
	ck_assert_msg(r == c->err, "%s size %u: %s", op_names[c->op], c->size, g_strerror(r));
	if (r == 0 && c->op != OP_SETXATTR) {
		ck_assert_int_eq(req->kind, c->size ? FAKE_BUF : FAKE_XATTR);
		ck_assert_uint_eq(c->size ? req->data->len : req->count, c->want);
	}
	fake_req_free(req);
	int64_t k = kernel_xattr(c, value);
	ck_assert_msg(k == (c->err ? -c->err : (int64_t)c->want), "the kernel answers %" PRId64, k);
	if (r != 0)
		ck_assert(!exists("upper", "f")); /* refused before the copy-up */
	forget(f, 1);
}
END_TEST

/* --- ioctl --- */

/* FUSE_IOCTL with hostile arguments: the file attribute commands with buffers too small for their
 * argument (EINVAL, before any copy-up), other commands and other file types (ENOTTY, the
 * kernel's answer for an ioctl a filesystem does not know), and the well-formed requests, whose
 * answer must be the kernel's for the same ioctl on the scratch copy of the entry. */
static const struct ioctl_case {
	const char *name;
	unsigned cmd;
	size_t in_size, out_size;
	int err; /* -1: the kernel's answer on the scratch entry */
} ioctl_cases[] = {
	{"f", FS_IOC_GETFLAGS, 0, 4, -1},
	{"f", FS_IOC_GETFLAGS, 0, 0, EINVAL},
	{"f", FS_IOC_GETFLAGS, 0, 3, EINVAL},
	{"f", FS_IOC32_GETFLAGS, 0, 4, -1},
	{"d", FS_IOC_GETFLAGS, 0, 4, -1},
	{"f", FS_IOC_FSGETXATTR, 0, sizeof(struct fsxattr), -1},
	{"f", FS_IOC_FSGETXATTR, 0, sizeof(struct fsxattr) - 1, EINVAL},
	{"f", FS_IOC_SETFLAGS, 0, 0, EINVAL},
	{"f", FS_IOC_SETFLAGS, 3, 0, EINVAL},
	{"f", FS_IOC_FSSETXATTR, 10, 0, EINVAL},
	{"f", FS_IOC_SETFLAGS, 4, 0, -1},
	{"d", FS_IOC_FSSETXATTR, sizeof(struct fsxattr), 0, -1},
	{"l", FS_IOC_GETFLAGS, 0, 4, ENOTTY},
	{"f", 0, 0, 0, ENOTTY},
	{"f", 0x1234, 0, 0, ENOTTY},
	{"f", FS_IOC_GETVERSION, 0, 8, ENOTTY},
	{"f", FS_IOC_FIEMAP, 32, 32, ENOTTY},
	{"f", FICLONE, 4, 0, ENOTTY},
};

/* The kernel's answer to ioctl `cmd` (argument all zeros) on scratch/name. */
static int kernel_ioctl(const char *name, unsigned cmd)
{
	int fd = openat(scratch, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	char arg[64] = {0};
	int r = ioctl(fd, cmd, arg) < 0 ? errno : 0;
	close(fd);
	return r;
}

START_TEST(test_ioctl)
{
	const struct ioctl_case *c = &ioctl_cases[_i];
	fuse_ino_t ino = must_lookup(ROOT, c->name);
	char in[64] = {0};
	struct fuse_file_info fi = {0};
	struct fuse_req *req = begin();
	plyfs_ops.ioctl(req, ino, c->cmd, NULL, &fi, 0, c->in_size ? in : NULL, c->in_size,
			c->out_size);
	int r = result(req, NULL);
	int want = c->err >= 0 ? c->err : kernel_ioctl(c->name, c->cmd);
	ck_assert_msg(r == want, "%s cmd %#x in %zu out %zu: %s, want %s", c->name, c->cmd,
		      c->in_size, c->out_size, g_strerror(r), g_strerror(want));
	if (r == 0) {
		ck_assert_int_eq(req->kind, FAKE_IOCTL);
		ck_assert_int_eq(req->ioctl_result, 0);
		ck_assert_uint_le(req->data->len, c->out_size); /* never more than was asked */
	}
	if (c->err > 0 && strcmp(c->name, "f") == 0)
		ck_assert(!exists("upper", "f")); /* refused before the copy-up */
	fake_req_free(req);
	forget(ino, 1);
}
END_TEST

/* --- forgets --- */

/* FORGET and BATCH_FORGET of nodeids the table does not know, with any count: ignored. */
START_TEST(test_forget_unknown)
{
	fuse_ino_t dead = dead_nodeid();
	struct node_table_stats before = stats();
	const uint64_t ids[] = {0, UINT64_MAX, 1u << 20, node_table_next_id(FS.nodes), dead};
	for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
		forget(ids[i], 1);
		forget(ids[i], UINT64_MAX);
		forget(ids[i], 0);
	}
	struct fuse_forget_data batch[] = {
		{0, 1}, {UINT64_MAX, UINT64_MAX}, {dead, 1}, {dead, 2}, {1u << 20, 0},
	};
	forget_batch(batch, G_N_ELEMENTS(batch));
	forget_batch(NULL, 0);
	struct node_table_stats after = stats();
	ck_assert_uint_eq(after.live, before.live);
	ck_assert_uint_eq(after.pinned, before.pinned);
	ck_assert_uint_eq(after.total, before.total);
	ck_assert_int_eq(getattr(ROOT), 0);
}
END_TEST

/* The kernel's count is input: a FORGET of more than was looked up must not abort the daemon
 * (node.h: clamped and logged), nor free the root. */
START_TEST(test_forget_root_too_much)
{
	forget(ROOT, UINT64_MAX);
	forget(ROOT, 1);
	ck_assert_int_eq(node_state(FS.nodes, node_table_root(FS.nodes)), NODE_PINNED);
	ck_assert_int_eq(getattr(ROOT), 0);
	fuse_ino_t f = must_lookup(ROOT, "f");
	ck_assert_int_eq(call(OP_MKDIR, ROOT, "new"), 0);
	forget(f, 1);
	/* The kernel finds the root again through its handle (LOOKUP of "." and ".."). */
	ck_assert_uint_eq(must_lookup(ROOT, "."), ROOT);
	ck_assert_int_eq(node_state(FS.nodes, node_table_root(FS.nodes)), NODE_LIVE);
	struct fuse_forget_data batch[] = {{ROOT, 5}, {ROOT, UINT64_MAX}};
	forget_batch(batch, G_N_ELEMENTS(batch));
	ck_assert_int_eq(getattr(ROOT), 0);
	ck_assert_uint_eq(stats().total, 1);
}
END_TEST

/* Forgetting more than was looked up of a file that is open leaves it PINNED: still read through
 * its handle, freed at release. */
START_TEST(test_forget_open_file_too_much)
{
	fuse_ino_t f = must_lookup(ROOT, "f");
	ck_assert_uint_eq(must_lookup(ROOT, "f"), f);
	struct fuse_file_info fi = {.fh = must_open(f, O_RDONLY)};
	forget(f, 1000);
	forget(f, 1);
	ck_assert_uint_eq(stats().pinned, 1);
	struct fuse_req *req = begin();
	plyfs_ops.read(req, f, 4096, 0, &fi);
	ck_assert_int_eq(result(req, NULL), 0);
	ck_assert_uint_eq(req->data->len, 5);
	ck_assert(memcmp(req->data->data, "hello", 5) == 0);
	fake_req_free(req);
	ck_assert_int_eq(getattr(f), 0);
	release(f, fi.fh);
	ck_assert_int_eq(getattr(f), ESTALE);
	ck_assert_uint_eq(stats().total, 1);
}
END_TEST

/* A directory forgotten too much while the kernel still holds a child stays PINNED by the child:
 * its name and parent still lead to the layers (a create under it copies it up). */
START_TEST(test_forget_parent_too_much)
{
	fuse_ino_t d = must_lookup(ROOT, "d");
	fuse_ino_t x = must_lookup(d, "x");
	struct fuse_forget_data batch[] = {{d, UINT64_MAX}, {d, 3}, {x, 0}};
	forget_batch(batch, G_N_ELEMENTS(batch));
	ck_assert_int_eq(node_state(FS.nodes, node_table_root(FS.nodes)), NODE_LIVE);
	ck_assert_uint_eq(stats().pinned, 1);
	ck_assert_int_eq(getattr(d), 0);
	ck_assert_uint_eq(must_lookup(d, "x"), x);
	forget(x, 1);
	ck_assert_int_eq(call(OP_CREATE, d, "new"), 0);
	ck_assert(exists("upper", "d/new"));
	struct fuse_forget_data again[] = {{x, 2}, {x, 1}, {d, 1}};
	forget_batch(again, G_N_ELEMENTS(again));
	ck_assert_int_eq(getattr(d), ESTALE);
	ck_assert_int_eq(getattr(x), ESTALE);
	ck_assert_uint_eq(stats().total, 1);
}
END_TEST

/* An entry reply the kernel never got (the request was interrupted) counts no lookup. */
START_TEST(test_interrupted_entry)
{
	struct fuse_req *req = begin();
	req->send_result = -ENOENT;
	plyfs_ops.lookup(req, ROOT, "f");
	check_replied(req);
	fake_req_free(req);
	req = begin();
	req->send_result = -ENOENT;
	struct fuse_file_info fi = {.flags = O_CREAT | O_RDWR};
	plyfs_ops.create(req, ROOT, "new", 0644, &fi);
	check_replied(req);
	fake_req_free(req);
	ck_assert_uint_eq(stats().live, 1);
	ck_assert_uint_eq(stats().total, 1);
}
END_TEST

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("hostile");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, mount_setup, mount_teardown);
	tcase_add_loop_test(tc, test_unknown_nodeids, 0, N_OPS);
	tcase_add_test(tc, test_forgotten_nodeid_by_handle);
	tcase_add_loop_test(tc, test_names, 0, G_N_ELEMENTS(name_cases));
	tcase_add_loop_test(tc, test_mknod_modes, 0, G_N_ELEMENTS(mode_cases));
	tcase_add_loop_test(tc, test_offsets, 0, G_N_ELEMENTS(off_cases));
	tcase_add_loop_test(tc, test_readdir_offsets, 0, G_N_ELEMENTS(dir_cases));
	tcase_add_loop_test(tc, test_xattr_sizes, 0, G_N_ELEMENTS(xsize_cases));
	tcase_add_loop_test(tc, test_ioctl, 0, G_N_ELEMENTS(ioctl_cases));
	tcase_add_test(tc, test_forget_unknown);
	tcase_add_test(tc, test_forget_root_too_much);
	tcase_add_test(tc, test_forget_open_file_too_much);
	tcase_add_test(tc, test_forget_parent_too_much);
	tcase_add_test(tc, test_interrupted_entry);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_in_tmpdir("plyfs-test-ops-XXXXXX", ops_suite);
}
