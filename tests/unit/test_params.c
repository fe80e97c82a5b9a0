// SPDX-License-Identifier: GPL-2.0-or-later
/* test_params.c - the command line: both argv forms, escapes, options, errors, libfuse argv. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fuse_lowlevel.h>
#include <sys/mount.h>

#include "node.h"
#include "params.h"

#define MAX_ARGS 16

/* Default fuse -o tail when neither fsname= nor subtype= was given. */
#define DEF "fsname=plyfs,subtype=plyfs"

/*
 * A parsed command line, rendered as one line: the lowerdir list, then every member that differs
 * from its default, in struct order. Comparing this string checks every member at once.
 */
static char *dump_idmap(const char *name, const struct idmap *m)
{
	GString *s = g_string_new(NULL);

	for (size_t i = 0; i < m->n; i++)
		g_string_append_printf(s, "%s%u:%u:%u", i ? ":" : "", m->ranges[i].stored,
				       m->ranges[i].shown, m->ranges[i].count);
	if (m->n == 0)
		return g_string_free(s, TRUE), g_strdup("");
	g_string_prepend(s, "=");
	g_string_prepend(s, name);
	g_string_prepend_c(s, ' ');
	return g_string_free(s, FALSE);
}

static char *dump(const struct plyfs_params *p)
{
	GString *s = g_string_new("lower=[");
	g_autofree char *uid = dump_idmap("uidmap", &p->uidmap);
	g_autofree char *gid = dump_idmap("gidmap", &p->gidmap);

	for (size_t i = 0; i < p->n_lower; i++)
		g_string_append_printf(s, "%s%s", i ? "|" : "", p->lowerdirs[i]);
	g_string_append_c(s, ']');
	if (p->upperdir)
		g_string_append_printf(s, " upper=%s", p->upperdir);
	if (p->workdir)
		g_string_append_printf(s, " work=%s", p->workdir);
	if (p->mountpoint)
		g_string_append_printf(s, " mnt=%s", p->mountpoint);
	if (p->source)
		g_string_append_printf(s, " src=%s", p->source);
	g_string_append(s, uid);
	g_string_append(s, gid);
	if (p->squash_to_root)
		g_string_append(s, " squash_to_root");
	if (p->squash_to_uid != -1)
		g_string_append_printf(s, " squash_uid=%ld", p->squash_to_uid);
	if (p->squash_to_gid != -1)
		g_string_append_printf(s, " squash_gid=%ld", p->squash_to_gid);
	if (p->static_nlink)
		g_string_append(s, " static_nlink");
	if (p->noacl)
		g_string_append(s, " noacl");
	if (!p->fsync)
		g_string_append(s, " nofsync");
	if (p->index_off)
		g_string_append(s, " noindex");
	if (p->volatile_)
		g_string_append(s, " volatile");
	if (p->timeout != PARAMS_DEFAULT_TIMEOUT)
		g_string_append_printf(s, " timeout=%g", p->timeout);
	if (p->xattr_permissions)
		g_string_append_printf(s, " xattr_permissions=%d", p->xattr_permissions);
	if (p->noxattrs)
		g_string_append_printf(s, " noxattrs=%d", (int)p->noxattrs);
	if (p->ino32)
		g_string_append(s, " ino32");
	if (p->userxattr)
		g_string_append(s, " userxattr");
	if (p->dev)
		g_string_append(s, " dev");
	if (p->redirect_dir != REDIRECT_ON)
		g_string_append_printf(s, " redirect_dir=%s",
				       p->redirect_dir == REDIRECT_FOLLOW ? "follow" : "nofollow");
	if (p->nfs_export_off)
		g_string_append(s, " nfs_export=off");
	if (p->xino != XINO_AUTO)
		g_string_append_printf(s, " xino=%s", p->xino == XINO_ON ? "on" : "off");
	if (p->metacopy)
		g_string_append(s, " metacopy=on");
	if (p->uuid != UUID_AUTO)
		g_string_append_printf(s, " uuid=%d", (int)p->uuid);
	if (p->read_only)
		g_string_append(s, " ro");
	if (p->foreground)
		g_string_append(s, " fg");
	if (p->debug)
		g_string_append(s, " debug");
	if (p->single_thread)
		g_string_append(s, " single");
	if (p->show_help)
		g_string_append(s, " help");
	if (p->show_version)
		g_string_append(s, " version");
	return g_string_free(s, FALSE);
}

static int argv_len(const char *const *argv)
{
	int n = 0;

	while (argv[n])
		n++;
	return n;
}

/* parse + validate, as main does; returns the first error. */
static int parse_and_validate(int argc, char **argv, struct plyfs_params *p, char **err)
{
	int ret = params_parse(argc, argv, p, err);

	if (ret == 0)
		ret = params_validate(p, err);
	return ret;
}

/* libfuse 3.14 must accept the argv we hand it (fuse_session_new parses it; nothing mounts). */
static void assert_libfuse_accepts(struct plyfs_params *p)
{
	struct fuse_lowlevel_ops ops;
	struct fuse_session *se;
	int argc;
	char **argv = params_fuse_argv(p, &argc);
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);

	memset(&ops, 0, sizeof(ops));
	for (int i = 0; i < argc; i++)
		ck_assert_int_eq(fuse_opt_add_arg(&args, argv[i]), 0);
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	ck_assert_msg(se != NULL, "fuse_session_new rejected '%s'", argc > 2 ? argv[2] : "");
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
}

struct good_case {
	const char *name;
	const char *argv[MAX_ARGS];
	const char *want;   /* dump() of the result */
	const char *fuse_o; /* the -o string handed to libfuse */
};

static const struct good_case good[] = {
	{"minimal, no upper: read-only",
	 {"plyfs", "-o", "lowerdir=/l", "/mnt"},
	 "lower=[/l] mnt=/mnt ro",
	 "default_permissions," DEF ",ro"},
	{"upper and work",
	 {"plyfs", "-o", "lowerdir=/a:/b,upperdir=/u,workdir=/w", "/mnt"},
	 "lower=[/a|/b] upper=/u work=/w mnt=/mnt",
	 "default_permissions," DEF},
	{"mount.fuse3 form: SOURCE MOUNTPOINT -o",
	 {"plyfs", "overlay", "/mnt", "-o", "lowerdir=/l,upperdir=/u,workdir=/w"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt src=overlay",
	 "default_permissions,fsname=overlay,subtype=plyfs"},
	{"options anywhere, -o several times",
	 {"plyfs", "-o", "lowerdir=/l", "/mnt", "-o", "upperdir=/u", "-f", "-o", "workdir=/w"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt fg",
	 "default_permissions," DEF},
	{"glued -oOPTS",
	 {"plyfs", "-olowerdir=/l,upperdir=/u", "-oworkdir=/w", "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt",
	 "default_permissions," DEF},
	{"lowerdir escapes \\: \\, \\\\",
	 {"plyfs", "-o", "lowerdir=/a\\:b:/c\\,d:/e\\\\f", "/mnt"},
	 "lower=[/a:b|/c,d|/e\\f] mnt=/mnt ro",
	 "default_permissions," DEF ",ro"},
	{"escaped comma does not split, next option still applies",
	 {"plyfs", "-o", "lowerdir=/x\\,y,noacl", "/mnt"},
	 "lower=[/x,y] mnt=/mnt noacl ro",
	 "default_permissions," DEF ",ro"},
	{"escaped backslash then separator",
	 {"plyfs", "-o", "lowerdir=/x\\\\,noacl", "/mnt"},
	 "lower=[/x\\] mnt=/mnt noacl ro",
	 "default_permissions," DEF ",ro"},
	{"no octal unescaping in lowerdir",
	 {"plyfs", "-o", "lowerdir=/a\\072b", "/mnt"},
	 "lower=[/a072b] mnt=/mnt ro",
	 "default_permissions," DEF ",ro"},
	{"relative paths kept as given",
	 {"plyfs", "-o", "lowerdir=l1:../l2:./l3,upperdir=up,workdir=./wk", "mnt"},
	 "lower=[l1|../l2|./l3] upper=up work=./wk mnt=mnt",
	 "default_permissions," DEF},
	{"escaped comma in upperdir",
	 {"plyfs", "-o", "lowerdir=/l,upperdir=/u\\,1,workdir=/w\\:2", "/mnt"},
	 "lower=[/l] upper=/u,1 work=/w:2 mnt=/mnt",
	 "default_permissions," DEF},
	{"-f -d -s",
	 {"plyfs", "-f", "-d", "-s", "-o", "lowerdir=/l", "/mnt"},
	 "lower=[/l] mnt=/mnt ro fg debug single",
	 "default_permissions," DEF ",ro"},
	{"-d implies -f",
	 {"plyfs", "-d", "-o", "lowerdir=/l", "/mnt"},
	 "lower=[/l] mnt=/mnt ro fg debug",
	 "default_permissions," DEF ",ro"},
	{"-o debug",
	 {"plyfs", "-o", "lowerdir=/l,debug", "/mnt"},
	 "lower=[/l] mnt=/mnt ro fg debug",
	 "default_permissions," DEF ",ro"},
	{"--help needs nothing else",
	 {"plyfs", "--help"},
	 "lower=[] help",
	 "default_permissions," DEF},
	{"-h", {"plyfs", "-h"}, "lower=[] help", "default_permissions," DEF},
	{"--version", {"plyfs", "--version"}, "lower=[] version", "default_permissions," DEF},
	{"-V", {"plyfs", "-V"}, "lower=[] version", "default_permissions," DEF},
	{"every plyfs option",
	 {"plyfs", "-o",
	  "lowerdir=/l,upperdir=/u,workdir=/w,squash_to_root,squash_to_uid=1000,"
	  "squash_to_gid=4294967294,static_nlink,noacl,fsync=0,volatile,timeout=1.5,"
	  "xattr_permissions=2,noxattrs=1,ino32_t",
	  "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt squash_to_root squash_uid=1000 "
	 "squash_gid=4294967294 static_nlink noacl nofsync volatile timeout=1.5 "
	 "xattr_permissions=2 noxattrs=1 ino32",
	 "default_permissions," DEF},
	{"index=off",
	 {"plyfs", "-o", "lowerdir=/l,index=off", "/m"},
	 "lower=[/l] mnt=/m noindex ro",
	 "default_permissions," DEF ",ro"},
	{"index=off then index=on: the last wins",
	 {"plyfs", "-o", "lowerdir=/l,index=off", "-o", "index=on", "/m"},
	 "lower=[/l] mnt=/m ro",
	 "default_permissions," DEF ",ro"},
	{"uuid= in the kernel's words, the last one wins",
	 {"plyfs", "-o", "lowerdir=/l,uuid=on,uuid=null", "-o", "uuid=off", "/m"},
	 "lower=[/l] mnt=/m uuid=0 ro",
	 "default_permissions," DEF ",ro"},
	{"uuid=auto is the default",
	 {"plyfs", "-o", "lowerdir=/l,uuid=on,uuid=auto", "/m"},
	 "lower=[/l] mnt=/m ro",
	 "default_permissions," DEF ",ro"},
	{"fsync=1, timeout=0, noxattrs=2, xattr_permissions=0",
	 {"plyfs", "-o", "lowerdir=/l,fsync=1,timeout=0,noxattrs=2,xattr_permissions=0", "/m"},
	 "lower=[/l] mnt=/m timeout=0 noxattrs=2 ro",
	 "default_permissions," DEF ",ro"},
	{"uidmapping and gidmapping",
	 {"plyfs", "-o", "lowerdir=/l,uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1",
	  "/mnt"},
	 "lower=[/l] mnt=/mnt uidmap=0:1000:1:1:100000:65536 gidmap=0:1000:1 ro",
	 "default_permissions," DEF ",ro"},
	{"fuse-overlayfs compat options and context (quoted, with commas) accepted, no effect",
	 {"plyfs", "-o",
	  "lowerdir=/l,context=\"system_u:object_r:container_file_t:s0:c1,c2\",threaded=1,"
	  "fast_ino=1,writeback=0,plugins=/p.so",
	  "/mnt"},
	 "lower=[/l] mnt=/mnt ro",
	 "default_permissions," DEF ",ro"},
	{"kernel overlayfs options at their defaults",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=on,nfs_export=on,xino=auto,metacopy=off", "/m"},
	 "lower=[/l] mnt=/m ro",
	 "default_permissions," DEF ",ro"},
	{"redirect_dir=follow, nfs_export=off, xino=on",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=follow,nfs_export=off,xino=on", "/m"},
	 "lower=[/l] mnt=/m redirect_dir=follow nfs_export=off xino=on ro",
	 "default_permissions," DEF ",ro"},
	{"redirect_dir=nofollow, xino=off",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=nofollow,xino=off", "/m"},
	 "lower=[/l] mnt=/m redirect_dir=nofollow xino=off ro",
	 "default_permissions," DEF ",ro"},
	{"redirect_dir=off is follow (the kernel's redirect_always_follow)",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=off", "/m"},
	 "lower=[/l] mnt=/m redirect_dir=follow ro",
	 "default_permissions," DEF ",ro"},
	{"the last of repeated kernel options wins",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=nofollow,xino=off,nfs_export=off", "-o",
	  "redirect_dir=on,xino=auto,nfs_export=on", "/m"},
	 "lower=[/l] mnt=/m ro",
	 "default_permissions," DEF ",ro"},
	{"every generic option libfuse accepts is forwarded",
	 {"plyfs", "-o",
	  "lowerdir=/l,rw,dev,nodev,suid,nosuid,exec,noexec,atime,noatime,sync,async,dirsync,"
	  "allow_other,blkdev,auto_unmount,max_read=131072",
	  "/mnt"},
	 "lower=[/l] mnt=/mnt ro",
	 "default_permissions,rw,dev,nodev,suid,nosuid,exec,noexec,atime,noatime,sync,async,"
	 "dirsync,allow_other,blkdev,auto_unmount,max_read=131072," DEF ",ro"},
	{"dev sets dev, a later nodev clears it; both forwarded",
	 {"plyfs", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,dev", "-o", "nodev,dev,userxattr",
	  "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt userxattr dev",
	 "default_permissions,dev,nodev,dev," DEF},
	{"nodev after dev",
	 {"plyfs", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,dev,nodev", "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt",
	 "default_permissions,dev,nodev," DEF},
	{"allow_root forwarded",
	 {"plyfs", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,allow_root", "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt",
	 "default_permissions,allow_root," DEF},
	{"ro with an upper layer",
	 {"plyfs", "-o", "ro,lowerdir=/l,upperdir=/u,workdir=/w", "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt ro",
	 "default_permissions,ro," DEF},
	{"rw after ro clears read_only",
	 {"plyfs", "-o", "ro,rw,lowerdir=/l,upperdir=/u,workdir=/w", "/mnt"},
	 "lower=[/l] upper=/u work=/w mnt=/mnt",
	 "default_permissions,ro,rw," DEF},
	{"fstab-only options dropped, atime variants libfuse rejects not handed to it",
	 {"plyfs", "/src", "/mnt", "-o",
	  "defaults,auto,noauto,user,user=joe,users,nouser,owner,group,nofail,_netdev,"
	  "x-systemd.automount,x-gvfs-show,comment=hi,diratime,nodiratime,relatime,norelatime,"
	  "strictatime,nostrictatime,lazytime,nolazytime,default_permissions,,lowerdir=/l"},
	 "lower=[/l] mnt=/mnt src=/src ro",
	 "default_permissions,fsname=/src,subtype=plyfs,ro"},
	{"fsname from SOURCE with comma and backslash escaped for libfuse",
	 {"plyfs", "a,b\\c", "/mnt", "-o", "lowerdir=/l"},
	 "lower=[/l] mnt=/mnt src=a,b\\c ro",
	 "default_permissions,fsname=a\\,b\\\\c,subtype=plyfs,ro"},
	{"explicit fsname and subtype win over SOURCE and defaults",
	 {"plyfs", "src", "/mnt", "-o", "lowerdir=/l,fsname=my\\,fs,subtype=x"},
	 "lower=[/l] mnt=/mnt src=src ro",
	 "default_permissions,fsname=my\\,fs,subtype=x,ro"},
	/* An option given twice, but for the layers: the last one wins (fstab's and mount(8)'s
	 * command line's options arrive together). */
	{"the last of a repeated scalar option wins",
	 {"plyfs", "-o",
	  "lowerdir=/l,timeout=5,squash_to_uid=1,fsync=0,noxattrs=1,forgotten_records=7,"
	  "xattr_permissions=1",
	  "-o", "timeout=6,squash_to_uid=2,fsync=1,noxattrs=2,xattr_permissions=0", "/mnt"},
	 "lower=[/l] mnt=/mnt squash_uid=2 timeout=6 noxattrs=2 ro",
	 "default_permissions," DEF ",ro"},
	{"containers-storage's leading ':' (uidmapping=:0:100000:65536) is skipped",
	 {"plyfs", "-o",
	  "lowerdir=/l,uidmapping=:0:100000:65536,gidmapping=:0:100000:65536:65536:1:1:", "/mnt"},
	 "lower=[/l] mnt=/mnt uidmap=0:100000:65536 gidmap=0:100000:65536:65536:1:1 ro",
	 "default_permissions," DEF ",ro"},
	{"the last uidmapping wins",
	 {"plyfs", "-o", "lowerdir=/l,uidmapping=0:1000:1,uidmapping=0:2000:2", "/mnt"},
	 "lower=[/l] mnt=/mnt uidmap=0:2000:2 ro",
	 "default_permissions," DEF ",ro"},
	{"the last fsname and subtype win, only they are handed to libfuse",
	 {"plyfs", "src", "/mnt", "-o", "lowerdir=/l,fsname=a,subtype=x,fsname=b", "-o",
	  "subtype=y"},
	 "lower=[/l] mnt=/mnt src=src ro",
	 "default_permissions,fsname=b,subtype=y,ro"},
	{"a timeout of 2^32-1 seconds",
	 {"plyfs", "-o", "lowerdir=/l,timeout=4294967295", "/mnt"},
	 "lower=[/l] mnt=/mnt timeout=4.29497e+09 ro",
	 "default_permissions," DEF ",ro"},
	{"-- ends options",
	 {"plyfs", "-o", "lowerdir=/l", "--", "-odd-mountpoint"},
	 "lower=[/l] mnt=-odd-mountpoint ro",
	 "default_permissions," DEF ",ro"},
};

START_TEST(test_good)
{
	const struct good_case *tc = &good[_i];
	struct plyfs_params p;
	g_autofree char *err = NULL;
	g_autofree char *got = NULL;
	int argc;
	char **fargv;

	int ret = parse_and_validate(argv_len(tc->argv), (char **)tc->argv, &p, &err);
	ck_assert_msg(ret == 0, "%s: unexpected error %d: %s", tc->name, ret, err);
	got = dump(&p);
	ck_assert_msg(strcmp(got, tc->want) == 0, "%s:\n got  %s\n want %s", tc->name, got,
		      tc->want);
	fargv = params_fuse_argv(&p, &argc);
	ck_assert_int_eq(argc, 3);
	ck_assert_ptr_null(fargv[3]);
	ck_assert_str_eq(fargv[0], "plyfs");
	ck_assert_str_eq(fargv[1], "-o");
	ck_assert_msg(strcmp(fargv[2], tc->fuse_o) == 0, "%s:\n got  %s\n want %s", tc->name,
		      fargv[2], tc->fuse_o);
	/* a second call returns the same vector */
	ck_assert_ptr_eq(params_fuse_argv(&p, &argc), fargv);
	ck_assert_int_eq(argc, 3);
	assert_libfuse_accepts(&p);
	params_clear(&p);
}
END_TEST

struct bad_case {
	const char *name;
	const char *argv[MAX_ARGS];
	const char *needle; /* must appear in the error message */
};

static const struct bad_case bad[] = {
	{"unknown option", {"plyfs", "-o", "lowerdir=/l,foo=bar", "/m"}, "'foo=bar'"},
	{"redirect_dir= bad word",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=yes", "/m"},
	 "'redirect_dir=yes': expected on, follow, nofollow or off"},
	{"redirect_dir= empty",
	 {"plyfs", "-o", "lowerdir=/l,redirect_dir=", "/m"},
	 "'redirect_dir='"},
	{"redirect_dir bare", {"plyfs", "-o", "lowerdir=/l,redirect_dir", "/m"}, "'redirect_dir'"},
	{"nfs_export=1",
	 {"plyfs", "-o", "lowerdir=/l,nfs_export=1", "/m"},
	 "'nfs_export=1': expected on or off"},
	{"xino=yes",
	 {"plyfs", "-o", "lowerdir=/l,xino=yes", "/m"},
	 "'xino=yes': expected on, auto or off"},
	{"metacopy=on refused",
	 {"plyfs", "-o", "lowerdir=/l,metacopy=on", "/m"},
	 "metacopy=on is not supported"},
	{"metacopy=maybe",
	 {"plyfs", "-o", "lowerdir=/l,metacopy=maybe", "/m"},
	 "'metacopy=maybe': expected on or off"},
	{"unknown bare option", {"plyfs", "-o", "lowerdir=/l,bogus", "/m"}, "'bogus'"},
	{"unknown short flag", {"plyfs", "-x", "-o", "lowerdir=/l", "/m"}, "'-x'"},
	{"combined short flags", {"plyfs", "-fd", "-o", "lowerdir=/l", "/m"}, "'-fd'"},
	{"fsync=2", {"plyfs", "-o", "lowerdir=/l,fsync=2", "/m"}, "fsync=2"},
	{"uuid=yes", {"plyfs", "-o", "lowerdir=/l,uuid=yes", "/m"}, "null, off, on or auto"},
	{"uuid empty", {"plyfs", "-o", "lowerdir=/l,uuid=", "/m"}, "uuid="},
	{"fsync empty", {"plyfs", "-o", "lowerdir=/l,fsync=", "/m"}, "fsync="},
	{"timeout=-1", {"plyfs", "-o", "lowerdir=/l,timeout=-1", "/m"}, "timeout=-1"},
	{"timeout=abc", {"plyfs", "-o", "lowerdir=/l,timeout=abc", "/m"}, "timeout=abc"},
	{"forgotten_records=-1",
	 {"plyfs", "-o", "lowerdir=/l,forgotten_records=-1", "/m"},
	 "forgotten_records"},
	{"forgotten_records=x",
	 {"plyfs", "-o", "lowerdir=/l,forgotten_records=x", "/m"},
	 "forgotten_records"},
	{"timeout=inf", {"plyfs", "-o", "lowerdir=/l,timeout=inf", "/m"}, "timeout=inf"},
	{"timeout=1s", {"plyfs", "-o", "lowerdir=/l,timeout=1s", "/m"}, "timeout=1s"},
	{"squash_to_uid=x",
	 {"plyfs", "-o", "lowerdir=/l,squash_to_uid=x", "/m"},
	 "squash_to_uid=x"},
	{"squash_to_gid=-1",
	 {"plyfs", "-o", "lowerdir=/l,squash_to_gid=-1", "/m"},
	 "squash_to_gid=-1"},
	{"squash_to_uid=2^32-1",
	 {"plyfs", "-o", "lowerdir=/l,squash_to_uid=4294967295", "/m"},
	 "squash_to_uid=4294967295"},
	{"noxattrs=3", {"plyfs", "-o", "lowerdir=/l,noxattrs=3", "/m"}, "noxattrs=3"},
	{"xattr_permissions=9",
	 {"plyfs", "-o", "lowerdir=/l,xattr_permissions=9", "/m"},
	 "xattr_permissions=9"},
	{"lowerdir= empty", {"plyfs", "-o", "lowerdir=", "/m"}, "lowerdir"},
	{"lowerdir=a::b", {"plyfs", "-o", "lowerdir=a::b", "/m"}, "lowerdir"},
	{"lowerdir trailing colon", {"plyfs", "-o", "lowerdir=a:", "/m"}, "lowerdir"},
	{"lowerdir missing", {"plyfs", "-o", "upperdir=/u,workdir=/w", "/m"}, "lowerdir"},
	{"bad uidmapping",
	 {"plyfs", "-o", "lowerdir=/l,uidmapping=0:1000", "/m"},
	 "uidmapping=0:1000"},
	{"bad gidmapping number",
	 {"plyfs", "-o", "lowerdir=/l,gidmapping=0:x:1", "/m"},
	 "gidmapping"},
	{"uidmapping of only colons",
	 {"plyfs", "-o", "lowerdir=/l,uidmapping=::", "/m"},
	 "stored:shown:count"},
	{"overlapping uidmapping",
	 {"plyfs", "-o", "lowerdir=/l,uidmapping=0:10:5:3:100:1", "/m"},
	 "uidmapping"},
	{"three positionals", {"plyfs", "-o", "lowerdir=/l", "src", "/m1", "/m2"}, "'/m2'"},
	{"missing mountpoint", {"plyfs", "-o", "lowerdir=/l"}, "MOUNTPOINT"},
	{"upperdir without workdir", {"plyfs", "-o", "lowerdir=/l,upperdir=/u", "/m"}, "workdir"},
	{"a live mount's option without remount",
	 {"plyfs", "-o", "lowerdir=/l,user_id=0", "/m"},
	 "user_id=0"},
	{"workdir without upperdir", {"plyfs", "-o", "lowerdir=/l,workdir=/w", "/m"}, "upperdir"},
	{"upperdir empty", {"plyfs", "-o", "lowerdir=/l,upperdir=,workdir=/w", "/m"}, "upperdir="},
	{"max_read=abc", {"plyfs", "-o", "lowerdir=/l,max_read=abc", "/m"}, "max_read=abc"},
	{"-o without argument", {"plyfs", "/m", "-o"}, "-o"},
	/* A layer option given twice: refused, even with the same value. */
	{"lowerdir twice in one -o",
	 {"plyfs", "-o", "lowerdir=/a,lowerdir=/b", "/m"},
	 "'lowerdir=/b': lowerdir= was given already"},
	{"lowerdir twice, same value",
	 {"plyfs", "-o", "lowerdir=/a", "-o", "lowerdir=/a", "/m"},
	 "lowerdir= was given already"},
	{"upperdir twice across -o",
	 {"plyfs", "-o", "lowerdir=/l,upperdir=/u1,workdir=/w", "-o", "upperdir=/u2", "/m"},
	 "'upperdir=/u2': upperdir= was given already"},
	{"workdir twice",
	 {"plyfs", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,workdir=/w2", "/m"},
	 "'workdir=/w2': workdir= was given already"},
	/* Every number out of its range names the option. */
	{"timeout=99999999999999999999",
	 {"plyfs", "-o", "lowerdir=/l,timeout=99999999999999999999", "/m"},
	 "timeout=99999999999999999999"},
	{"timeout=4294967296",
	 {"plyfs", "-o", "lowerdir=/l,timeout=4294967296", "/m"},
	 "timeout=4294967296"},
	{"timeout=1e300", {"plyfs", "-o", "lowerdir=/l,timeout=1e300", "/m"}, "timeout=1e300"},
	{"timeout=nan", {"plyfs", "-o", "lowerdir=/l,timeout=nan", "/m"}, "timeout=nan"},
	{"squash_to_uid=2^64",
	 {"plyfs", "-o", "lowerdir=/l,squash_to_uid=18446744073709551616", "/m"},
	 "squash_to_uid=18446744073709551616"},
	{"squash_to_gid=99999999999999999999",
	 {"plyfs", "-o", "lowerdir=/l,squash_to_gid=99999999999999999999", "/m"},
	 "squash_to_gid=99999999999999999999"},
	{"forgotten_records=2^32",
	 {"plyfs", "-o", "lowerdir=/l,forgotten_records=4294967296", "/m"},
	 "forgotten_records=4294967296"},
	{"forgotten_records=99999999999999999999",
	 {"plyfs", "-o", "lowerdir=/l,forgotten_records=99999999999999999999", "/m"},
	 "forgotten_records=99999999999999999999"},
	{"max_read=2^32",
	 {"plyfs", "-o", "lowerdir=/l,max_read=4294967296", "/m"},
	 "max_read=4294967296"},
	{"max_read=-1", {"plyfs", "-o", "lowerdir=/l,max_read=-1", "/m"}, "max_read=-1"},
	{"fsync=99999999999999999999",
	 {"plyfs", "-o", "lowerdir=/l,fsync=99999999999999999999", "/m"},
	 "fsync=99999999999999999999"},
	{"noxattrs=4294967298",
	 {"plyfs", "-o", "lowerdir=/l,noxattrs=4294967298", "/m"},
	 "noxattrs=4294967298"},
	{"xattr_permissions=-1",
	 {"plyfs", "-o", "lowerdir=/l,xattr_permissions=-1", "/m"},
	 "xattr_permissions=-1"},
	{"uidmapping host id 2^64",
	 {"plyfs", "-o", "lowerdir=/l,uidmapping=0:18446744073709551616:1", "/m"},
	 "uidmapping="},
	{"gidmapping count 2^32",
	 {"plyfs", "-o", "lowerdir=/l,gidmapping=0:0:4294967296", "/m"},
	 "gidmapping="},
	{"flag option given a value", {"plyfs", "-o", "lowerdir=/l,noacl=1", "/m"}, "noacl=1"},
	{"noxattrs without value", {"plyfs", "-o", "lowerdir=/l,noxattrs", "/m"}, "noxattrs"},
	{"index neither on nor off", {"plyfs", "-o", "lowerdir=/l,index=1", "/m"}, "index=1"},
	{"unbalanced quote does not swallow options",
	 {"plyfs", "-o", "lowerdir=/l,context=\"a,b,bad=1", "/m"},
	 "'b'"},
};

START_TEST(test_bad)
{
	const struct bad_case *tc = &bad[_i];
	struct plyfs_params p;
	g_autofree char *err = NULL;

	int ret = parse_and_validate(argv_len(tc->argv), (char **)tc->argv, &p, &err);
	ck_assert_msg(ret == -EINVAL, "%s: got %d, want -EINVAL", tc->name, ret);
	ck_assert_msg(err != NULL, "%s: no message", tc->name);
	ck_assert_msg(strstr(err, tc->needle) != NULL, "%s: message '%s' lacks '%s'", tc->name, err,
		      tc->needle);
	ck_assert_msg(strchr(err, '\n') == NULL, "%s: message is not one line", tc->name);
	params_clear(&p);
}
END_TEST

/* 600 layers, each escaping a colon, in an option string well over 64 KiB. */
START_TEST(test_many_layers_long_string)
{
	enum { N = 600 };
	g_autoptr(GString) o = g_string_new("lowerdir=");
	g_autofree char *err = NULL;
	struct plyfs_params p;
	char *argv[] = {"plyfs", "-o", NULL, "/mnt", NULL};

	for (int i = 0; i < N; i++)
		g_string_append_printf(o, "%s/var/lib/containers/storage/overlay/%0100d\\:%d/diff",
				       i ? ":" : "", i, i);
	g_string_append(o, ",upperdir=/u,workdir=/w");
	ck_assert_uint_gt(o->len, 70 * 1024);
	argv[2] = o->str;
	ck_assert_int_eq(parse_and_validate(4, argv, &p, &err), 0);
	ck_assert_uint_eq(p.n_lower, N);
	ck_assert_ptr_null(p.lowerdirs[N]);
	for (int i = 0; i < N; i++) {
		g_autofree char *want =
			g_strdup_printf("/var/lib/containers/storage/overlay/%0100d:%d/diff", i, i);

		ck_assert_str_eq(p.lowerdirs[i], want);
	}
	ck_assert_str_eq(p.upperdir, "/u");
	params_clear(&p);
}
END_TEST

/* A 70 KiB single path survives, unchanged. */
START_TEST(test_long_single_path)
{
	g_autofree char *path = g_strnfill(70 * 1024, 'x');
	g_autofree char *opt = g_strconcat("lowerdir=/", path, NULL);
	g_autofree char *want = g_strconcat("/", path, NULL);
	g_autofree char *err = NULL;
	struct plyfs_params p;
	char *argv[] = {"plyfs", "-o", opt, "/mnt", NULL};

	ck_assert_int_eq(parse_and_validate(4, argv, &p, &err), 0);
	ck_assert_uint_eq(p.n_lower, 1);
	ck_assert_str_eq(p.lowerdirs[0], want);
	params_clear(&p);
}
END_TEST

struct split_case {
	const char *in;
	const char *want; /* elements joined with '|', or NULL: error */
};

static const struct split_case splits[] = {
	{"/a", "/a"},	      {"/a:/b:/c", "/a|/b|/c"},
	{"a\\:b", "a:b"},     {"a\\,b:c", "a,b|c"},
	{"a\\\\:b", "a\\|b"}, {"a\\\\\\:b", "a\\:b"},
	{"a\\", "a\\"},	      {"\\x", "x"},
	{"", NULL},	      {":", NULL},
	{"a::b", NULL},	      {":a", NULL},
	{"a:", NULL},
};

START_TEST(test_split_lowerdir)
{
	const struct split_case *tc = &splits[_i];
	g_autofree char *err = NULL;
	g_auto(GStrv) v = params_split_lowerdir(tc->in, &err);

	if (!tc->want) {
		ck_assert_msg(v == NULL, "'%s' should fail", tc->in);
		ck_assert_ptr_nonnull(strstr(err, "lowerdir"));
		return;
	}
	ck_assert_msg(v != NULL, "'%s': %s", tc->in, err);
	g_autofree char *joined = g_strjoinv("|", v);
	ck_assert_str_eq(joined, tc->want);
}
END_TEST

/* libfuse reads fsname= back exactly as SOURCE was, whatever it contains. */
START_TEST(test_fsname_roundtrip)
{
	static const char *const sources[] = {"a,b", "a\\b", "a\\,b,", "\\\\", "x\\072y", "s p"};

	for (size_t i = 0; i < G_N_ELEMENTS(sources); i++) {
		static const struct fuse_opt fsname_opt[] = {{"fsname=%s", 0, 0}, FUSE_OPT_END};
		char *argv[] = {"plyfs", (char *)sources[i], "/mnt", "-o", "lowerdir=/l", NULL};
		g_autofree char *err = NULL;
		char *fsname = NULL;
		struct plyfs_params p;
		struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
		int argc;
		char **fargv;

		ck_assert_int_eq(params_parse(5, argv, &p, &err), 0);
		fargv = params_fuse_argv(&p, &argc);
		for (int j = 0; j < argc; j++)
			fuse_opt_add_arg(&args, fargv[j]);
		/* fuse_opt stores into the first member of the struct it is given */
		ck_assert_int_eq(fuse_opt_parse(&args, &fsname, fsname_opt, NULL), 0);
		ck_assert_str_eq(fsname, sources[i]);
		free(fsname);
		fuse_opt_free_args(&args);
		params_clear(&p);
	}
}
END_TEST

/* max_read= reaches libfuse as the number plyfs checked: written as typed, "\1310" would be
 * read by libfuse as the octal byte \131 ('Y') then "0", and fuse_session_new() would refuse it
 * (found by tests/fuzz/fuzz_params; its input is corpus/params/max_read-octal-escape). */
START_TEST(test_max_read_forwarded_as_checked)
{
	char *argv[] = {"plyfs", "-o", "lowerdir=/l,max_read=\\1310", "/mnt", NULL};
	g_autofree char *err = NULL;
	struct plyfs_params p;
	int argc;
	char **fargv;

	ck_assert_int_eq(params_parse(4, argv, &p, &err), 0);
	fargv = params_fuse_argv(&p, &argc);
	ck_assert_int_eq(argc, 3);
	ck_assert_msg(strstr(fargv[2], ",max_read=1310,") != NULL, "libfuse gets '%s'", fargv[2]);
	params_clear(&p);
}
END_TEST

/*
 * fsname= (or SOURCE) and subtype= up to the kernel's limits are accepted (and libfuse takes them);
 * one byte more is refused by plyfs, naming the option and the limit, whatever was given before.
 */
START_TEST(test_name_lengths)
{
	static const struct {
		const char *opt; /* "fsname=", "subtype=", or NULL for SOURCE */
		size_t max;
		const char *needle;
	} cases[] = {
		{"fsname=", PARAMS_MAX_FSNAME, "option 'fsname="},
		{"subtype=", PARAMS_MAX_SUBTYPE, "option 'subtype="},
		{NULL, PARAMS_MAX_FSNAME, "SOURCE '"},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		for (size_t len = cases[i].max - 1; len <= cases[i].max + 1; len++) {
			g_autofree char *name = g_strnfill(len, 'a');
			g_autofree char *o =
				g_strconcat("lowerdir=/l,", cases[i].opt ? cases[i].opt : "",
					    cases[i].opt ? name : "", NULL);
			char *argv[] = {"plyfs", cases[i].opt ? "src" : name, "/m", "-o", o, NULL};
			g_autofree char *err = NULL;
			struct plyfs_params p;
			int ret = parse_and_validate(5, argv, &p, &err);
			if (len <= cases[i].max) {
				ck_assert_msg(ret == 0, "%zu bytes: %s", len, err);
				assert_libfuse_accepts(&p);
			} else {
				g_autofree char *limit =
					g_strdup_printf("at most %zu", cases[i].max);
				ck_assert_int_eq(ret, -EINVAL);
				ck_assert_msg(strstr(err, cases[i].needle) && strstr(err, limit),
					      "message '%s' lacks '%s' or '%s'", err,
					      cases[i].needle, limit);
				ck_assert_uint_lt(strlen(err), 200);
			}
			params_clear(&p);
		}
	}
	/* An explicit fsname= takes the place of a long SOURCE. */
	g_autofree char *longsrc = g_strnfill(PARAMS_MAX_FSNAME + 10, 's');
	char *argv[] = {"plyfs", longsrc, "/m", "-o", "lowerdir=/l,fsname=short", NULL};
	g_autofree char *err = NULL;
	struct plyfs_params p;
	ck_assert_int_eq(parse_and_validate(5, argv, &p, &err), 0);
	params_clear(&p);
}
END_TEST

START_TEST(test_validate_direct)
{
	struct plyfs_params p;
	g_autofree char *err = NULL;
	char *argv[] = {"plyfs", "-o", "lowerdir=/l,upperdir=/u,workdir=/w", "/m", NULL};

	ck_assert_int_eq(params_parse(4, argv, &p, &err), 0);
	ck_assert_int_eq(params_validate(&p, &err), 0);
	ck_assert(!p.read_only);
	/* members changed by the caller after parsing are checked again */
	p.timeout = -2;
	ck_assert_int_eq(params_validate(&p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "timeout"));
	g_clear_pointer(&err, g_free);
	p.timeout = 1;
	p.squash_to_uid = 1L << 40;
	ck_assert_int_eq(params_validate(&p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "squash_to_uid"));
	params_clear(&p);
}
END_TEST

START_TEST(test_usage)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	static const char *const must[] = {"lowerdir=",
					   "upperdir=",
					   "workdir=",
					   "uidmapping=",
					   "gidmapping=",
					   "squash_to_root",
					   "squash_to_uid=",
					   "squash_to_gid=",
					   "static_nlink",
					   "noacl",
					   "fsync=",
					   "volatile",
					   "timeout=",
					   "xattr_permissions=",
					   "noxattrs=",
					   "ino32_t",
					   "context=",
					   "-f",
					   "-d",
					   "-s",
					   "--help",
					   "--version",
					   "SOURCE MOUNTPOINT"};

	params_usage(f, "plyfs");
	fclose(f);
	for (size_t i = 0; i < G_N_ELEMENTS(must); i++)
		ck_assert_msg(strstr(buf, must[i]), "usage lacks '%s'", must[i]);
	free(buf);
}
END_TEST

START_TEST(test_forgotten_records)
{
	char *argv[] = {"plyfs", "-o", "lowerdir=/l,forgotten_records=5", "/m", NULL};
	char *plain[] = {"plyfs", "-o", "lowerdir=/l", "/m", NULL};
	struct plyfs_params p;
	g_autofree char *err = NULL;

	ck_assert_int_eq(params_parse(4, argv, &p, &err), 0);
	ck_assert_int_eq(p.forgotten_records, 5);
	params_clear(&p);
	ck_assert_int_eq(params_parse(4, plain, &p, &err), 0);
	ck_assert_int_eq(p.forgotten_records, NODE_RECORD_MAX_DEFAULT);
	params_clear(&p);
}
END_TEST

/* What mount(8) runs for `mount -o remount,...` through mount.fuse3: no layers needed, the live
 * mount's options accepted, the flags recorded in order (mount_flags.h). */
START_TEST(test_remount)
{
	static const struct {
		const char *opts;
		unsigned long base, want;
	} cases[] = {
		{"ro,relatime,remount,user_id=0,group_id=0,default_permissions,allow_other,dev,suid",
		 MS_NOSUID, MS_RDONLY | MS_RELATIME},
		{"rw,relatime,remount,noatime,user_id=0", MS_RDONLY | MS_RELATIME,
		 MS_RELATIME | MS_NOATIME},
		{"remount,nodiratime,strictatime,nosuid,noexec,lowerdir=/l", MS_RELATIME,
		 MS_RELATIME | MS_NODIRATIME | MS_STRICTATIME | MS_NOSUID | MS_NOEXEC},
		{"remount,noatime,atime,diratime,sync,async,dirsync", MS_NODIRATIME, MS_DIRSYNC},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *argv[] = {"plyfs", "plyfs", "/mnt", "-o", (char *)cases[i].opts, NULL};
		struct plyfs_params p;
		g_autofree char *err = NULL;
		ck_assert_msg(parse_and_validate(5, argv, &p, &err) == 0, "%s: %s", cases[i].opts,
			      err);
		ck_assert(p.remount);
		ck_assert_msg(mount_flags_apply(&p.mflags, cases[i].base) == cases[i].want,
			      "%s: %#lx", cases[i].opts, mount_flags_apply(&p.mflags, cases[i].base));
		params_clear(&p);
	}
}
END_TEST

static Suite *params_suite(void)
{
	Suite *s = suite_create("params");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_good, 0, G_N_ELEMENTS(good));
	tcase_add_loop_test(tc, test_bad, 0, G_N_ELEMENTS(bad));
	tcase_add_loop_test(tc, test_split_lowerdir, 0, G_N_ELEMENTS(splits));
	tcase_add_test(tc, test_many_layers_long_string);
	tcase_add_test(tc, test_long_single_path);
	tcase_add_test(tc, test_fsname_roundtrip);
	tcase_add_test(tc, test_max_read_forwarded_as_checked);
	tcase_add_test(tc, test_name_lengths);
	tcase_add_test(tc, test_validate_direct);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_forgotten_records);
	tcase_add_test(tc, test_remount);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(params_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
