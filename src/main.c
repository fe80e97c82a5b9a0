// SPDX-License-Identifier: GPL-2.0-or-later
/* main.c - parse the command line, open the layers, mount, detach, serve, clean up. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "atime.h"
#include "dir.h"
#include "errors.h"
#include "export_store.h"
#include "file.h"
#include "fs.h"
#include "fuse_io.h"
#include "index.h"
#include "origin.h"
#include "inode.h"
#include "layer.h"
#include "log.h"
#include "mount_flags.h"
#include "ops.h"
#include "ovl_names.h"
#include "override.h"
#include "params.h"
#include "status_cmd.h"
#include "workdir.h"
#include <sys/stat.h>

/* libfuse's own messages go through our sink too (stderr, or syslog once detached). */
static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap)
{
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	g_strchomp(msg);
	log_msg((int)level, "%s", msg);
}

/* The directory fd cache may use a quarter of the fd limit: the rest is for open files, the
 * /dev/fuse clones of the worker threads and copy-up. */
static long raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl); /* best effort */
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	long n = rl.rlim_cur == RLIM_INFINITY ? 65536 : (long)rl.rlim_cur;
	return n / 4;
}

/* The error slot exists before the first request can fail (errors.h, LIFETIME RULES). */
static void fs_errors_init(struct plyfs *fs)
{
	g_autofree const char **paths = g_new0(const char *, fs->n_layers + 1);
	for (size_t i = 0; i < fs->n_layers; i++)
		paths[i] = fs->layers[i].path;
	g_autofree char *link = g_strdup_printf("/proc/self/fd/%d", fs->work_fd);
	g_autofree char *work = fs->work_fd >= 0 ? g_file_read_link(link, NULL) : NULL;
	fs->errors = err_slot_new(paths, fs->n_layers, fs->has_upper, work);
	err_slot_set_default(fs->errors);
}

/* Running as uid 0 of the initial user namespace, the only one whose root may use trusted.*
 * xattrs: a user namespace maps fewer than all 2^32 ids, so only the initial one reads
 * "0 0 4294967295" in /proc/self/uid_map. */
static bool initial_root(void)
{
	g_autofree char *map = NULL;
	unsigned long inside, outside, count;
	if (geteuid() != 0)
		return false;
	if (!g_file_get_contents("/proc/self/uid_map", &map, NULL, NULL))
		return true; /* no user namespaces in this kernel */
	return sscanf(map, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
	       outside == 0 && count == 4294967295UL;
}

/*
 * The overlay xattr format, decided once at mount (fs.h): trusted.overlay.* where the upper
 * filesystem takes it from us, tried on W/work as the kernel tries its format; else
 * user.overlay.*, the kernel's userxattr format (uid 0 in a user namespace, rootless podman's
 * default, is refused trusted.* with EPERM). -o userxattr asks for user.overlay.* outright.
 * Without an upper layer nothing is written: trusted.* is read by root of the initial user
 * namespace only. The choice is logged once the daemon runs (main).
 */
static void choose_xattr_format(struct plyfs *fs)
{
	bool trusted;
	int r = 0;
	if (fs->params->userxattr) {
		trusted = false;
		fs->xattr_reason = g_strdup("the userxattr option");
	} else if (!fs->has_upper) {
		trusted = initial_root();
		fs->xattr_reason = g_strdup(trusted ? "root, no upper layer"
						    : "not root of the initial user namespace");
	} else {
		r = workdir_xattr_probe(fs, OVL_XATTR_TRUSTED_PREFIX);
		trusted = r == 0;
		fs->xattr_reason =
			trusted ? g_strdup("the upper layer takes it")
				: g_strdup_printf("the upper layer refuses trusted.*: %s",
						  g_strerror(-r));
	}
	fs->is_root = trusted;
	fs->xattr_prefix = trusted ? OVL_XATTR_TRUSTED_PREFIX : OVL_XATTR_USER_PREFIX;
	if (!trusted && fs->has_upper && (r = workdir_xattr_probe(fs, fs->xattr_prefix)) < 0) {
		/* The kernel mounts such an upper too ("failed to set xattr on upper"), without
		 * redirects, origins or index: so does plyfs (copy_up.h, rename.h). */
		char *more =
			g_strdup_printf("%s; it refuses user.overlay.* too (%s): opaque "
					"directories get .wh..wh..opq, origins are not recorded",
					fs->xattr_reason, g_strerror(-r));
		g_free(fs->xattr_reason);
		fs->xattr_reason = more;
	}
}

/*
 * The records of forgotten nodes keep their bulk in an unnamed file of W/work (records.h): the
 * page cache holds them, not the daemon's RSS. Its name never exists, so nothing is left after
 * an unmount or a crash. Without a work dir, or where O_TMPFILE is refused, anonymous memory.
 */
static void records_to_workdir(struct plyfs *fs)
{
	if (fs->work_dirfd < 0)
		return;
	int fd = layer_open_tmpfile(fs->work_dirfd, 0600);
	if (fd >= 0)
		node_table_records_on_file(fs->nodes, fd);
}

static int fs_init(struct plyfs *fs, struct plyfs_params *p, char **err)
{
	fs->params = p;
	int r = layers_open(p, &fs->layers, &fs->n_layers, &fs->work_fd, err);
	if (r < 0)
		return r;
	fs->has_upper = p->upperdir != NULL;
	fs->xino_bits = layers_xino_bits(fs->layers, fs->n_layers);
	if (p->xino == XINO_OFF && fs->xino_bits) {
		*err = g_strdup(
			"option 'xino=off': the layers are on several filesystems, and a FUSE "
			"mount has one st_dev, so plyfs must compose inode numbers there "
			"(xino=on or xino=auto)");
		return -EINVAL;
	}
	fs->timeout = p->timeout;
	fs->fd_budget = raise_nofile();
	inode_set_fs(fs);
	fs_errors_init(fs);

	g_mutex_init(&fs->rename_lock);
	g_mutex_init(&fs->handles_lock);
	fs->open_files = g_hash_table_new(NULL, NULL);
	fs->open_dirs = g_hash_table_new(NULL, NULL);
	fs->listings = g_hash_table_new(NULL, NULL);
	fs->listing_order = g_queue_new();
	if (fs->has_upper) {
		r = workdir_prepare(fs, err);
		if (r < 0)
			return r;
	}
	choose_xattr_format(fs);
	/* After the workdir lock: a refused second mount writes nothing. */
	r = override_setup(fs);
	if (r < 0) {
		*err = g_strdup_printf("xattr_permissions: cannot write the upper layer's root: %s",
				       g_strerror(-r));
		return r;
	}
	index_init(fs);
	origin_mount_init(fs);
	fs->nodes = node_table_new(inode_destroy);
	records_to_workdir(fs);
	node_table_set_record_max(fs->nodes, (size_t)p->forgotten_records);
	export_store_load(fs);
	struct node *root = node_table_root(fs->nodes);
	struct node_stack *s = inode_stack_new((unsigned)fs->n_layers);
	for (size_t i = 0; i < fs->n_layers; i++)
		s->l[i] = (struct node_layer){.layer = (int)i, .fd = fs->layers[i].root_fd};
	s->merged = fs->n_layers > 1;
	inode_stack_publish(root, s);
	struct stat st;
	if (layer_fstat(fs->layers[0].root_fd, &st) == 0)
		root->key = (struct node_key){.dev = st.st_dev, .ino = st.st_ino};
	return 0;
}

static void fs_fini(struct plyfs *fs)
{
	if (fs->open_files) {
		file_release_all(fs);
		dir_release_all(fs);
		g_hash_table_unref(fs->open_files);
		g_hash_table_unref(fs->open_dirs);
		g_hash_table_unref(fs->listings);
		g_queue_free(fs->listing_order);
	}
	export_store_close(fs); /* the error paths: the slots opened at load, nothing to save */
	if (fs->nodes)
		node_table_free(fs->nodes);
	if (fs->layers)
		layers_close(fs->layers, fs->n_layers);
	if (fs->work_fd >= 0)
		close(fs->work_fd);
	if (fs->work_dirfd >= 0)
		close(fs->work_dirfd);
	if (fs->index_dirfd >= 0)
		close(fs->index_dirfd);
	if (fs->lock_fd >= 0)
		close(fs->lock_fd); /* the workdir is free for the next mount */
	err_slot_set_default(NULL);
	err_slot_free(fs->errors);
	g_free(fs->xattr_reason);
}

/*
 * The options for libfuse. As root: everybody may use the mount and setuid binaries of a container
 * image work (kernel overlayfs' behaviour), but device nodes do not open (nodev, EACCES): a layer
 * is often an untrusted image, whose /dev/sda or /dev/mem would otherwise give the container's
 * root the host's disks and memory; containers-storage mounts kernel overlayfs nodev for the same
 * reason, and fuse-overlayfs is nodev too. An explicit dev (or nosuid), placed after these
 * defaults, wins. A user mount keeps libfuse's safe defaults (always nosuid,nodev).
 */
static void fuse_args_for(struct plyfs_params *p, struct fuse_args *args)
{
	int fargc;
	char **fargv = params_fuse_argv(p, &fargc);
	fuse_opt_add_arg(args, fargv[0]);
	if (geteuid() == 0)
		fuse_opt_add_arg(args, "-oallow_other,suid,nodev");
	for (int i = 1; i < fargc; i++)
		fuse_opt_add_arg(args, fargv[i]);
}

static int absolute_mountpoint(struct plyfs_params *p, char **err)
{
	char *real = realpath(p->mountpoint, NULL);
	if (!real) {
		*err = g_strdup_printf("mountpoint '%s': %s", p->mountpoint, g_strerror(errno));
		return -errno;
	}
	g_free(p->mountpoint);
	p->mountpoint = g_strdup(real);
	free(real);
	return 0;
}

/* mount -o remount,...: the flags applied to the live mount, by mount(2) (mount_flags.h). */
static int remount(struct plyfs_params *p)
{
	g_autofree char *err = NULL;
	int r = absolute_mountpoint(p, &err);
	if (r == 0)
		r = mount_flags_remount(p->mountpoint, &p->mflags, &err);
	if (r < 0)
		fprintf(stderr, "plyfs: %s\n", err);
	params_clear(p);
	return r < 0 ? 1 : 0;
}

static int serve(struct fuse_session *se, const struct plyfs_params *p)
{
	if (p->single_thread)
		return fuse_session_loop(se);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, 64);
	int r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

int main(int argc, char **argv)
{
	struct plyfs_params p = {0};
	g_autofree char *err = NULL;
	fuse_set_log_func(fuse_log_sink);
	if (status_cmd_wanted(argc, argv))
		return status_cmd(argc, argv);

	if (params_parse(argc, argv, &p, &err) < 0 ||
	    (!p.show_help && !p.show_version && params_validate(&p, &err) < 0)) {
		fprintf(stderr, "plyfs: %s\n", err);
		fprintf(stderr, "Try 'plyfs --help' for more information.\n");
		params_clear(&p);
		return 1;
	}
	if (p.show_version) {
		printf("plyfs %s (libfuse %s)\n", PLYFS_VERSION, fuse_pkgversion());
		params_clear(&p);
		return 0;
	}
	if (p.show_help) {
		params_usage(stdout, "plyfs");
		params_clear(&p);
		return 0;
	}
	if (p.remount)
		return remount(&p);
	log_set_debug(p.debug);
	/* Unmapped stored ids show as the id the kernel shows for unmapped ids (idmap.h). */
	idmap_read_overflow(&p.uidmap, "/proc/sys/kernel/overflowuid");
	idmap_read_overflow(&p.gidmap, "/proc/sys/kernel/overflowgid");
	/* glibc raises its mmap threshold each time a large block is freed, after which the hash
	 * tables' bucket arrays (megabytes for a large tree) come from the heap and stay there as
	 * holes when the tables resize: a fixed threshold keeps them mmapped, so memory goes back
	 * to the system when the kernel forgets nodes and the RSS does not creep up walk after
	 * walk. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	/* One malloc arena. With glibc's default (8 per core) the worker threads that create nodes
	 * (LOOKUP) and the ones that turn them into records (FORGET) draw from different arenas, so
	 * the memory a cache drop frees is not where the records go, and the RSS after walking the
	 * same tree again came out up to 12% higher at random (memory.py). Small short-lived
	 * allocations of a request are served by glibc's per-thread cache without the arena lock.
	 */
	mallopt(M_ARENA_MAX, 1);

	struct plyfs fs = {.work_fd = -1, .work_dirfd = -1, .index_dirfd = -1, .lock_fd = -1};
	/* Modes of new entries come from the kernel with the caller's umask applied already. */
	umask(0);
	int ret = 1;
	struct fuse_session *se = NULL;
	/* libfuse chdirs to / (also with -f): unmounting later needs the absolute path, and so
	 * does the workdir's lock file, which names the mount (workdir.h). */
	if (p.dev && geteuid() != 0) {
		/* fusermount3 mounts a user's FUSE filesystem nodev whatever it is asked. */
		fprintf(stderr,
			"plyfs: option 'dev' needs root (a user's mount is always nodev)\n");
		goto out;
	}
	if (absolute_mountpoint(&p, &err) < 0 || fs_init(&fs, &p, &err) < 0) {
		fprintf(stderr, "plyfs: %s\n", err);
		goto out;
	}
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	fuse_args_for(&p, &args);
	se = fuse_session_new(&args, &plyfs_ops, sizeof(plyfs_ops), &fs);
	fuse_opt_free_args(&args);
	if (!se) {
		fprintf(stderr, "plyfs: cannot create the FUSE session (see the message above)\n");
		goto out;
	}
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, p.mountpoint) != 0) {
		fprintf(stderr, "plyfs: cannot mount on '%s'\n", p.mountpoint);
		goto out_signals;
	}
	/* FUSE_HANDLE_KILLPRIV_V2, which libfuse 3.14 cannot ask for (fuse_io.h). */
	if (fuse_io_install(se) != 0) {
		fuse_session_unmount(se);
		goto out_signals;
	}
	/* nodiratime, strictatime: libfuse cannot pass them; a user cannot set them (atime.h). */
	if (geteuid() == 0 && mount_flags_set_atime(p.mountpoint, &p.mflags, &err) < 0) {
		fprintf(stderr, "plyfs: %s\n", err);
		fuse_session_unmount(se);
		goto out_signals;
	}
	atime_init(&fs);
	/* The mount is live: only now may the parent exit 0. fuse_daemonize() also points stdio at
	 * /dev/null so that a caller's $(plyfs ... 2>&1) does not wait on us forever. */
	if (fuse_daemonize(p.foreground) != 0) {
		fuse_session_unmount(se);
		goto out_signals;
	}
	if (!p.foreground)
		log_to_syslog();
	log_msg(LOG_INFO, "overlay xattrs: %s* (%s)", fs.xattr_prefix, fs.xattr_reason);
	workdir_lock_record(&fs, "mounted"); /* by the daemon's own pid */
	export_store_start(&fs);	     /* a thread: only now, after the fork */
	atime_start(&fs);
	/* The loop returns the number of a signal that ended it (SIGTERM, SIGINT): a clean stop. */
	ret = serve(se, &p) < 0 ? 1 : 0;
	/*
	 * From here on the mount is gone, or going: a plain fuse mount learns of umount(2) only
	 * after it returned (no FUSE_DESTROY), and the caller may be removing the workdir already.
	 * So nothing below creates a name in the upper layer or the workdir: the handle store's
	 * last save goes into the slots opened at mount (export_store.h), open handles are only
	 * closed (fs_fini), and W/work is emptied at the next mount, not now.
	 */
	atime_stop(&fs);
	fuse_session_unmount(se);
	workdir_lock_record(&fs, "stopping"); /* a new mount of the workdir waits for us */
	export_store_close(&fs);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	fs_fini(&fs);
	params_clear(&p);
	return ret;
}
