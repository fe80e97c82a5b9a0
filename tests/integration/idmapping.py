# SPDX-License-Identifier: GPL-2.0-or-later
"""idmapping.py - uidmapping=/gidmapping= through a mount, in fuse-overlayfs' meaning (idmap.h):
`A:B:N` shows the ids A.. stored in the layers as B.., writes map back, empty fields are skipped.

podman's `--uidmap 0:100000:65536` reaches the mount program as `uidmapping=:0:100000:65536`
(containers-storage): a lower file owned by 0 shows as 100000, one owned by 65535 as 165535, an id
outside the range as the overflow id (/proc/sys/kernel/overflowuid); chown to 100000+k through the
mount stores k in the upper layer; a new entry of a caller shown as 100000 is stored as 0, one of
host root (unmapped) with the overflow id, as fuse-overlayfs stores it; chown to an unmapped id is
EINVAL (plyfs' choice: fuse-overlayfs stores the overflow id). POSIX ACL xattrs carry ids too: an
ACL_USER entry set as 100009 is stored as 9 and read back as 100009.

Where fuse-overlayfs is installed, the same layers (a copy) and operations run on it too and the ids
it shows and stores must be plyfs' (except the EINVAL above, and ACLs, which it does not map).
"""

import ctypes
import os
import shutil
import struct
import subprocess

import lifecycle
import mounts
from mounts import Failure, t

SPEC = ":0:100000:65536"
OPTS = "uidmapping=%s,gidmapping=%s" % (SPEC, SPEC)
# Stored owners of the lower files: name -> (uid, gid).
LOWER = {"root_file": (0, 0), "top_of_range": (65535, 65535), "unmapped": (70000, 70001),
	 "user5": (5, 6)}


class Ctx(lifecycle.Ctx):
	GROUP = "idmap"


def overflow_ids():
	ids = []
	for name in ("overflowuid", "overflowgid"):
		with open("/proc/sys/kernel/" + name) as f:
			ids.append(int(f.read()))
	return tuple(ids)


def owner(path):
	st = os.lstat(path)
	return (st.st_uid, st.st_gid)


def make_layers(ctx, prefix):
	"""prefix/l (the lower files of LOWER, a directory d), prefix/u, prefix/w, prefix/mnt."""
	for name, (uid, gid) in LOWER.items():
		p = ctx.path("%s/l/%s" % (prefix, name))
		lifecycle.write(p, name)
		os.chown(p, uid, gid)
	os.makedirs(ctx.path(prefix + "/l/d"))
	for d in ("u", "w", "mnt"):
		os.makedirs(ctx.path("%s/%s" % (prefix, d)))
	return ctx.path(prefix + "/mnt")


def start_oracle(ctx, prefix):
	"""fuse-overlayfs -f on prefix's layers, as our child; None when it is not installed."""
	fo = shutil.which("fuse-overlayfs")
	if fo is None:
		return None
	mnt = ctx.path(prefix + "/mnt")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s,%s" % (
		ctx.path(prefix + "/l"), ctx.path(prefix + "/u"), ctx.path(prefix + "/w"), OPTS)
	h = ctx.track(lifecycle.DaemonHandle(ctx, mnt, mnt))
	with open(os.path.join(ctx.logdir, "oracle.log"), "ab") as log:
		h.proc = subprocess.Popen([fo, "-f", "-o", opts, mnt], stdin=subprocess.DEVNULL,
					  stdout=log, stderr=log)
	if not lifecycle.wait_for(lambda: mounts.mounted_at(mnt) or h.proc.poll() is not None,
				  t(15)):
		raise Failure("fuse-overlayfs did not mount within %.0fs" % t(15))
	if h.proc.poll() is not None:
		raise Failure("fuse-overlayfs exited %d before mounting" % h.proc.returncode)
	h.dev = mounts.mount_dev(mnt)
	return h


def as_user(uid, gid, argv):
	"""Runs argv as uid:gid (no supplementary groups); returns the exit status."""
	cp = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups"]
			    + argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=t(20))
	return cp.returncode


def ops(mnt):
	"""The operations both daemons get; returns what they show: {name: (uid, gid)} plus the
	errnos of the calls that failed."""
	out = {}
	for name in LOWER:
		out["shown " + name] = owner(os.path.join(mnt, name))
	os.chown(os.path.join(mnt, "unmapped"), 100001, 100002)	# copy-up, stored 1:2
	os.chown(os.path.join(mnt, "user5"), 100007, -1)	# uid only: 7:6
	with open(os.path.join(mnt, "by_host_root"), "w") as f:	# host root: not mapped
		f.write("x")
	# The mount root shows as 100000 (stored 0): its owner may create in it.
	if as_user(100000, 100000, ["touch", os.path.join(mnt, "by_shown_root")]) != 0:
		out["by_shown_root"] = "touch as 100000 failed"
	# d shows as 100000, mode 755: permission is checked against the shown owner.
	out["mkdir d/by_3 as 100003"] = as_user(100003, 100004,
						["mkdir", os.path.join(mnt, "d/by_3")])
	for name in ("unmapped", "user5", "by_host_root", "by_shown_root", "d"):
		p = os.path.join(mnt, name)
		if os.path.lexists(p):
			out["after " + name] = owner(p)
	return out


def stored(upper):
	out = {}
	for name in ("unmapped", "user5", "by_host_root", "by_shown_root"):
		p = os.path.join(upper, name)
		out["stored " + name] = owner(p) if os.path.lexists(p) else None
	return out


def podman_uidmap(ctx):
	"""The ids shown and stored with uidmapping=:0:100000:65536, compared with what they must
	be, and with fuse-overlayfs on a copy of the layers."""
	ou, og = overflow_ids()
	mnt = make_layers(ctx, "p")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s,%s" % (
		ctx.path("p/l"), ctx.path("p/u"), ctx.path("p/w"), OPTS)
	h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	errs = []
	with mounts.Watchdog(t(60), [h]):
		got = ops(mnt)
		try:
			os.chown(os.path.join(mnt, "root_file"), 5, -1)
			errs.append("chown to uid 5 (not shown by the mapping) succeeded")
		except OSError as e:
			if e.errno != 22:
				errs.append("chown to uid 5: %s, expected EINVAL" % e)
		errs += lifecycle.settle(h)
	errs += h.cleanup()
	got.update(stored(ctx.path("p/u")))
	want = {
		"shown root_file": (100000, 100000),
		"shown top_of_range": (165535, 165535),
		"shown unmapped": (ou, og),
		"shown user5": (100005, 100006),
		"after unmapped": (100001, 100002), "stored unmapped": (1, 2),
		"after user5": (100007, 100006), "stored user5": (7, 6),
		# host root is not in the mapping: stored as the overflow id, as fuse-overlayfs does
		"after by_host_root": (ou + 100000, og + 100000) if ou < 65536 else None,
		"stored by_host_root": (ou, og),
		"after by_shown_root": (100000, 100000), "stored by_shown_root": (0, 0),
		"after d": (100000, 100000),
		"mkdir d/by_3 as 100003": 1,
	}
	for k, v in sorted(want.items()):
		if got.get(k) != v:
			errs.append("%s: %r, expected %r" % (k, got.get(k), v))
	for k in sorted(set(got) - set(want)):
		errs.append("%s: %r" % (k, got[k]))
	# The same on fuse-overlayfs, where installed: the oracle for the option's meaning.
	make_layers(ctx, "o")
	o = start_oracle(ctx, "o")
	if o is None:
		ctx.notes.append("fuse-overlayfs not installed: no oracle comparison")
		return errs
	with mounts.Watchdog(t(60), [o]):
		ogot = ops(ctx.path("o/mnt"))
	errs += o.cleanup()
	ogot.update(stored(ctx.path("o/u")))
	for k in sorted(set(got) | set(ogot)):
		if got.get(k) != ogot.get(k):
			errs.append("%s: plyfs %r, fuse-overlayfs %r" % (k, got.get(k), ogot.get(k)))
	return errs


ACL_USER, ACL_GROUP = 0x02, 0x08


def acl_value(entries):
	"""The kernel's xattr form of an ACL: version 2, then (tag, perm, id) little-endian."""
	return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def acl_ids(value):
	return [struct.unpack_from("<HHI", value, 4 + 8 * i)
		for i in range((len(value) - 4) // 8)]


def acl_mapped(ctx):
	"""system.posix_acl_access set through the mount with ACL_USER 100009 and ACL_GROUP 100011
	is stored with 9 and 11 and reads back as set; an ACL naming an unmapped id is EINVAL."""
	mnt = make_layers(ctx, "p")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s,%s" % (
		ctx.path("p/l"), ctx.path("p/u"), ctx.path("p/w"), OPTS)
	h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	acl = acl_value([(0x01, 6, 0xffffffff), (ACL_USER, 4, 100009), (0x04, 4, 0xffffffff),
			 (ACL_GROUP, 4, 100011), (0x10, 6, 0xffffffff), (0x20, 4, 0xffffffff)])
	name = "system.posix_acl_access"
	errs = []
	with mounts.Watchdog(t(60), [h]):
		f = os.path.join(mnt, "root_file")
		os.setxattr(f, name, acl)
		shown = os.getxattr(f, name)
		if acl_ids(shown) != acl_ids(acl):
			errs.append("ACL read back through the mount: %r, set %r"
				    % (acl_ids(shown), acl_ids(acl)))
		try:
			os.setxattr(f, name, acl_value([(0x01, 6, 0xffffffff), (ACL_USER, 4, 7),
							(0x04, 4, 0xffffffff), (0x10, 6, 0xffffffff),
							(0x20, 4, 0xffffffff)]))
			errs.append("an ACL naming uid 7 (not shown by the mapping) was accepted")
		except OSError as e:
			if e.errno != 22:
				errs.append("an ACL naming uid 7: %s, expected EINVAL" % e)
		errs += lifecycle.settle(h)
	errs += h.cleanup()
	on_disk = acl_ids(os.getxattr(ctx.path("p/u/root_file"), name))
	want = [(0x01, 6, 0xffffffff), (ACL_USER, 4, 9), (0x04, 4, 0xffffffff),
		(ACL_GROUP, 4, 11), (0x10, 6, 0xffffffff), (0x20, 4, 0xffffffff)]
	if on_disk != want:
		errs.append("ACL stored in the upper layer: %r, expected %r" % (on_disk, want))
	return errs

# --- id-mapped lower layers (containers-storage's overlay/ID/mapped/N) ---------------------------

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442	# x86-64 and aarch64 alike
OPEN_TREE_CLONE, O_CLOEXEC, AT_FDCWD, AT_RECURSIVE = 1, 0o2000000, -100, 0x8000
MOUNT_ATTR_IDMAP, MOVE_MOUNT_F_EMPTY_PATH = 0x00100000, 4


class MountAttr(ctypes.Structure):
	_fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
		    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def userns_fd(first, count):
	"""An fd of a new user namespace whose ids 0..count-1 are first.. outside (the mapping
	containers-storage gives its mapped mounts for --uidmap 0:first:count)."""
	p = subprocess.Popen(["unshare", "-U", "sleep", "30"], stdin=subprocess.DEVNULL)
	try:
		ours = os.readlink("/proc/self/ns/user")
		if not lifecycle.wait_for(
				lambda: os.readlink("/proc/%d/ns/user" % p.pid) != ours, t(10)):
			raise Failure("unshare -U did not enter a user namespace within %.0fs" % t(10))
		for f in ("uid_map", "gid_map"):
			with open("/proc/%d/%s" % (p.pid, f), "w") as m:
				m.write("0 %d %d\n" % (first, count))
		return os.open("/proc/%d/ns/user" % p.pid, os.O_RDONLY | os.O_CLOEXEC)
	finally:
		p.kill()
		p.wait()


def idmapped_bind(src, dst, first, count):
	"""Mounts src on dst id-mapped (open_tree, mount_setattr(MOUNT_ATTR_IDMAP), move_mount),
	as containers-storage does: an id k on disk shows as first+k there."""
	libc = ctypes.CDLL(None, use_errno=True)
	ns = userns_fd(first, count)
	fd = -1
	try:
		fd = libc.syscall(SYS_OPEN_TREE, AT_FDCWD, src.encode(), OPEN_TREE_CLONE | O_CLOEXEC)
		if fd < 0:
			raise OSError(ctypes.get_errno(), "open_tree " + src)
		attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns)
		if libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_RECURSIVE | 0x1000,
				ctypes.byref(attr), ctypes.sizeof(attr)) < 0:
			raise OSError(ctypes.get_errno(), "mount_setattr(MOUNT_ATTR_IDMAP) " + src)
		if libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, dst.encode(),
				MOVE_MOUNT_F_EMPTY_PATH) < 0:
			raise OSError(ctypes.get_errno(), "move_mount to " + dst)
	finally:
		if fd >= 0:
			os.close(fd)
		os.close(ns)


ACL = "system.posix_acl_access"
ACL_9_11 = [(0x01, 6, 0xffffffff), (ACL_USER, 4, 9), (0x04, 4, 0xffffffff), (ACL_GROUP, 4, 11),
	    (0x10, 6, 0xffffffff), (0x20, 4, 0xffffffff)]


def named_acl_ids(value):
	return [i for tag, _, i in acl_ids(value) if tag in (ACL_USER, ACL_GROUP)]


def detach(path):
	subprocess.run(["umount", "-l", path], stdin=subprocess.DEVNULL, capture_output=True,
		       timeout=t(20))


def idmapped_lower(ctx):
	"""The lower given through an id-mapped mount (disk 0.. shows as 100000..) and detached
	once the daemon is up, with uidmapping=:0:100000:65536, as podman --uidmap 0:100000:65536
	on containers-storage 1.43 mounts it: the ids the mapped mount shows are shown as they are
	(not shifted a second time, which made them all 65534), the container's root (100000) may
	write to root's lower files and create in root's lower directories, and every copy-up stores
	the ids mapped back (0..) in the upper, which is not id-mapped."""
	ou, og = overflow_ids()
	mnt = make_layers(ctx, "p")
	mapped = ctx.path("p/mapped")
	os.makedirs(mapped)
	os.setxattr(ctx.path("p/l/user5"), ACL, acl_value(ACL_9_11))
	idmapped_bind(ctx.path("p/l"), mapped, 100000, 65536)
	try:
		opts = "lowerdir=%s,upperdir=%s,workdir=%s,%s" % (
			mapped, ctx.path("p/u"), ctx.path("p/w"), OPTS)
		h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	finally:
		detach(mapped)	# containers-storage detaches them once the mount program returned
	p = lambda n: os.path.join(mnt, n)	# noqa: E731
	got = {}
	with mounts.Watchdog(t(60), [h]):
		for n in ("root_file", "top_of_range", "unmapped", "user5", "d"):
			got["shown " + n] = owner(p(n))
		got["acl user5"] = named_acl_ids(os.getxattr(p("user5"), ACL))
		got["append root_file as 100000"] = as_user(
			100000, 100000, ["sh", "-c", "echo more >> " + p("root_file")])
		got["mkdir d/sub as 100000"] = as_user(100000, 100000, ["mkdir", p("d/sub")])
		os.chown(p("user5"), 100007, -1)
		got["acl after user5"] = named_acl_ids(os.getxattr(p("user5"), ACL))
		os.chmod(p("top_of_range"), 0o600)
		for n in ("root_file", "top_of_range", "user5", "d", "d/sub"):
			got["after " + n] = owner(p(n)) if os.path.lexists(p(n)) else None
		errs = lifecycle.settle(h)
	errs += h.cleanup()
	for n in ("root_file", "top_of_range", "user5", "d", "d/sub"):
		up = ctx.path("p/u/" + n)
		got["stored " + n] = owner(up) if os.path.lexists(up) else None
	got["lower root_file"] = owner(ctx.path("p/l/root_file"))
	if os.path.lexists(ctx.path("p/u/user5")):
		got["acl stored user5"] = named_acl_ids(os.getxattr(ctx.path("p/u/user5"), ACL))
	want = {
		"shown root_file": (100000, 100000), "shown top_of_range": (165535, 165535),
		# 70000 is outside the mapped mount's range: the kernel shows its overflow id there
		"shown unmapped": (ou, og), "shown user5": (100005, 100006),
		"shown d": (100000, 100000),
		"append root_file as 100000": 0, "mkdir d/sub as 100000": 0,
		"after root_file": (100000, 100000), "stored root_file": (0, 0),
		"after top_of_range": (165535, 165535), "stored top_of_range": (65535, 65535),
		"after user5": (100007, 100006), "stored user5": (7, 6),
		"after d": (100000, 100000), "stored d": (0, 0),
		"after d/sub": (100000, 100000), "stored d/sub": (0, 0),
		"lower root_file": (0, 0),
		# the kernel shifts the ACL's ids through the mapped mount too
		"acl user5": [100009, 100011], "acl after user5": [100009, 100011],
		"acl stored user5": [9, 11],
	}
	for k in sorted(set(want) | set(got)):
		if got.get(k) != want.get(k):
			errs.append("%s: %r, expected %r" % (k, got.get(k), want.get(k)))
	return errs


# --- xattr_permissions ------------------------------------------------------------------------

CONTAINERS = "user.containers.override_stat"
PRIVILEGED = "security.fuseoverlayfs.override_stat"


def xget(path, name):
	try:
		return os.getxattr(path, name, follow_symlinks=False).decode()
	except OSError:
		return None


def show(path):
	"""(uid, gid, mode as octal text, rdev major:minor or '') of path, not following it."""
	st = os.lstat(path)
	dev = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if st.st_rdev else ""
	return (st.st_uid, st.st_gid, "%o" % st.st_mode, dev)


def override_layers(ctx):
	"""The lower as containers-storage extracts it rootless (override values on its root, a
	setuid file and a char device stand-in), plus plain root-owned entries."""
	low = ctx.path("l")
	lifecycle.write(os.path.join(low, "f"), "f")
	lifecycle.write(os.path.join(low, "sf"), "sf")
	lifecycle.write(os.path.join(low, "dev"), "")
	os.makedirs(os.path.join(low, "d"))
	os.setxattr(low, CONTAINERS, b"0:0:0755:dir")
	os.setxattr(os.path.join(low, "sf"), CONTAINERS, b"7:8:4755:file")
	os.setxattr(os.path.join(low, "dev"), CONTAINERS, b"0:0:0620:char-1-3")
	for d in ("u", "w", "mnt"):
		os.makedirs(ctx.path(d))
	return ctx.path("mnt")


def xattr_permissions(mode, extra=""):
	"""As root, xattr_permissions=MODE (and `extra` options): what stat shows comes from the
	override xattrs; chown/chmod/creation write the xattr (name of MODE), not the inode; the
	names are hidden; everything survives a remount."""
	name = PRIVILEGED if mode == 1 else CONTAINERS
	shift = 100000 if "uidmapping" in extra else 0

	def test(ctx):
		mnt = override_layers(ctx)
		opts = "lowerdir=%s,upperdir=%s,workdir=%s,xattr_permissions=%d%s" % (
			ctx.path("l"), ctx.path("u"), ctx.path("w"), mode, extra)
		h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
		p = lambda n: os.path.join(mnt, n)	# noqa: E731
		errs = []
		with mounts.Watchdog(t(60), [h]):
			got = {n: show(p(n)) for n in ("sf", "dev", "f")}
			os.chown(p("f"), shift + 5, shift + 6)
			os.chmod(p("d"), 0o2750)
			os.umask(0o022)
			lifecycle.write(p("new"), "new")
			os.mkdir(p("d/sub"))
			os.chmod(p("sf"), 0o4711)
			os.chown(p("sf"), shift + 9, -1)	# clears setuid
			for n in ("f", "d", "new", "d/sub", "sf"):
				got["after " + n] = show(p(n))
			got["listed"] = sorted(x for x in os.listxattr(p("f"))
					       if "override_stat" in x)
			got["get"] = xget(p("sf"), CONTAINERS) or xget(p("sf"), name)
			try:
				os.setxattr(p("f"), name, b"0:0:0777:file")
				got["set"] = "accepted"
			except OSError as e:
				got["set"] = os.strerror(e.errno)
			errs += lifecycle.settle(h)
		errs += h.cleanup()
		for n in ("f", "d", "new", "d/sub", "sf"):
			up = ctx.path("u/" + n)
			st = os.lstat(up)
			got["inode " + n] = (st.st_uid, st.st_gid, "%o" % (st.st_mode & 0o7777))
			got["xattr " + n] = xget(up, name)
		h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
		with mounts.Watchdog(t(30), [h]):
			for n in ("f", "d", "new", "sf", "dev"):
				got["remount " + n] = show(p(n))
			errs += lifecycle.settle(h)
		errs += h.cleanup()
		s = shift
		# host root creates: stored as the overflow id when it is outside the mapping
		cu, cg = overflow_ids() if shift else (0, 0)
		want = {
			"sf": (s + 7, s + 8, "104755", ""), "dev": (s, s, "20620", "1:3"),
			"f": (s, s, "100644", ""),
			"after f": (s + 5, s + 6, "100644", ""),
			"after d": (s, s, "42750", ""),
			"after new": (s + cu, s + cg, "100644", ""),
			"after d/sub": (s + cu, s, "42755", ""),	# setgid parent: its group
			"after sf": (s + 9, s + 8, "100711", ""),
			"listed": [], "get": None, "set": "Operation not permitted",
			"inode f": (0, 0, "644"), "xattr f": "5:6:0644:file",
			"inode d": (0, 0, "755"), "xattr d": "0:0:2750:dir",
			"inode new": (0, 0, "600"), "xattr new": "%d:%d:0644:file" % (cu, cg),
			"inode d/sub": (0, 0, "700"), "xattr d/sub": "%d:0:2755:dir" % cu,
			"inode sf": (0, 0, "644"), "xattr sf": "9:8:0711:file",
		}
		for n in ("f", "d", "new", "sf", "dev"):
			want["remount " + n] = want.get("after " + n, want.get(n))
		for k in sorted(set(want) | set(got)):
			if got.get(k) != want.get(k):
				errs.append("%s: %r, expected %r" % (k, got.get(k), want.get(k)))
		return errs
	return test


SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody(argv):
	cp = subprocess.run(SETPRIV + argv, stdin=subprocess.DEVNULL, capture_output=True,
			    timeout=t(30))
	if cp.returncode != 0:
		raise Failure("%s as nobody: exit %d: %s" % (" ".join(argv), cp.returncode,
							   cp.stderr.decode(errors="replace")))
	return cp.stdout.decode()


def xattr_permissions_rootless(ctx):
	"""The daemon as nobody (fusermount3), xattr_permissions=2, root-owned lower entries that
	nobody may change (mode 0666 / 0777): a copy-up keeps showing 0:0 and the mode, which the
	inode (nobody's) cannot hold; a lower extracted by containers-storage shows its values."""
	import handles
	mnt = override_layers(ctx)
	low = ctx.path("l")
	os.chmod(os.path.join(low, "f"), 0o666)
	os.chmod(os.path.join(low, "d"), 0o777)
	for n in ("sf", "dev"):
		os.chown(os.path.join(low, n), 65534, 65534)
	for d in ("u", "w", "mnt"):
		os.chown(ctx.path(d), 65534, 65534)
	os.chmod(ctx.logdir, 0o777)
	handles.user_fuse_device(ctx)
	opts = "lowerdir=%s,upperdir=%s,workdir=%s,xattr_permissions=2" % (
		low, ctx.path("u"), ctx.path("w"))
	h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt, prefix=SETPRIV)
	fmt = ["stat", "-c", "%n %u:%g %a %F"]
	with mounts.Watchdog(t(60), [h]):
		as_nobody(["sh", "-c", "echo more >> %s && mkdir %s" % (
			os.path.join(mnt, "f"), os.path.join(mnt, "d/by_nobody"))])
		out = as_nobody(fmt + [os.path.join(mnt, n) for n in ("f", "d", "d/by_nobody", "sf",
								     "dev")])
		errs = lifecycle.settle(h)
	errs += h.cleanup()
	got = [line.split(" ", 1)[1] for line in out.splitlines()]
	want = ["0:0 666 regular file", "0:0 777 directory", "65534:65534 755 directory",
		"7:8 4755 regular file", "0:0 620 character special file"]
	if got != want:
		errs.append("as nobody through the mount: %r, expected %r" % (got, want))
	st = os.lstat(ctx.path("u/f"))
	if (st.st_uid, xget(ctx.path("u/f"), CONTAINERS)) != (65534, "0:0:0666:file"):
		errs.append("upper f: owner %d, %s %r; expected 65534, '0:0:0666:file'"
			    % (st.st_uid, CONTAINERS, xget(ctx.path("u/f"), CONTAINERS)))
	return errs


TESTS = [
	("podman_uidmap", podman_uidmap),
	("acl_mapped", acl_mapped),
	("idmapped_lower", idmapped_lower),
	("xattr_permissions_1", xattr_permissions(1)),
	("xattr_permissions_2", xattr_permissions(2)),
	("xattr_permissions_2_uidmapping",
	 xattr_permissions(2, ",uidmapping=:0:100000:65536,gidmapping=:0:100000:65536")),
	("xattr_permissions_rootless", xattr_permissions_rootless),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("idmap", TESTS, Ctx)
