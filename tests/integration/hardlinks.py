# SPDX-License-Identifier: GPL-2.0-or-later
"""hardlinks.py - lower hard links with and without the index, against kernel overlayfs.

Each reproduction of issue 9 (items 1, 2 and 3's file handles of hard links) runs on two copies of
the same layers: kernel overlayfs and the binary, with the same meaning of the options. What each
step answers (data, errno, mode, and how inode numbers relate: the same, kept, another) must be
the same on both. Modes:
  - index_off: as root, the kernel with index=off and the binary with index=off: the names of a
    lower hard link split at copy-up;
  - index_on: as root, both with index=on (the default): the names stay one file;
  - rootless: the binary as an unprivileged user (nobody, through fusermount3), the kernel
    mounted with userxattr inside `unshare -Urm` by the same user (no index there: it splits).
A step list runs in a helper process (this file, --steps) as the mount's user; `remount` between
two phases unmounts both and mounts them again on the same layers.
Also: after the last name of an indexed file goes, the index holds what the kernel's does, and
the kernel's next mount of the binary's layers logs no "orphan index entry"; a file handle taken
through a name that is then removed still opens the file (kernel: nfs_export=on).
"""

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import handles
import layerspec
import lifecycle
import mounts
from layerspec import D, H
from mounts import Failure, t

NOBODY = 65534
SETPRIV = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]


class Ctx(lifecycle.Ctx):
	GROUP = "hardlinks"


def layers():
	return {
		"a": "old\n", "b": H("a"),
		"c": "data\n", "cb": H("c"),
		"sub": D(), "sub/x": "x\n", "y": H("sub/x"),
	}


# --- the steps, run as the mount's user in a helper process ---------------------------------------

def _e(fn):
	try:
		v = fn()
		return v if v is not None else "ok"
	except OSError as e:
		return "E" + errno.errorcode.get(e.errno, str(e.errno))


def _read(p):
	with open(p) as f:
		return f.read()


def _append(p, s):
	with open(p, "a") as f:
		f.write(s)


class Inos:
	"""Inode numbers, shown only as how they relate: "#1" is the first number seen, and so on."""

	def __init__(self):
		self.seen = {}

	def of(self, p):
		def go():
			ino = os.lstat(p).st_ino
			return "#%d" % self.seen.setdefault(ino, len(self.seen) + 1)
		return _e(go)


def _mode(p):
	return _e(lambda: "0%o" % stat.S_IMODE(os.lstat(p).st_mode))


def _nlink(p):
	return _e(lambda: os.lstat(p).st_nlink)


def steps_append(m, r, I):
	"""echo new >> a; cat a b."""
	r["ino before"] = (I.of(m + "/a"), I.of(m + "/b"))
	r["nlink"] = (_nlink(m + "/a"), _nlink(m + "/b"))
	r["append a"] = _e(lambda: _append(m + "/a", "new\n"))
	r["cat a"], r["cat b"] = _e(lambda: _read(m + "/a")), _e(lambda: _read(m + "/b"))
	r["ino a b after"] = (I.of(m + "/a"), I.of(m + "/b"))
	r["nlink after"] = (_nlink(m + "/a"), _nlink(m + "/b"))


def steps_after_remount(m, r, I):
	r["cat a"], r["cat b"] = _e(lambda: _read(m + "/a")), _e(lambda: _read(m + "/b"))
	r["ino a b"] = (I.of(m + "/a"), I.of(m + "/b"))
	r["nlink"] = (_nlink(m + "/a"), _nlink(m + "/b"))
	r["append b"] = _e(lambda: _append(m + "/b", "more\n"))
	r["cat a 2"], r["cat b 2"] = _e(lambda: _read(m + "/a")), _e(lambda: _read(m + "/b"))


def _ls_l(m):
	return [(n, _nlink(os.path.join(m, n))) for n in sorted(os.listdir(m))]


def steps_rm_both(m, r, I):
	"""ls -l; rm cb; rm c (the second name of a group, then the first)."""
	r["ls -l"] = _ls_l(m)
	r["rm cb"] = _e(lambda: os.unlink(m + "/cb"))
	r["rm c"] = _e(lambda: os.unlink(m + "/c"))
	r["ls"] = sorted(os.listdir(m))
	r["stat c"] = _e(lambda: os.lstat(m + "/c") and "exists")


def steps_rm_both_written(m, r, I):
	"""echo more >> c; rm cb; rm c; then the other way round for a and b."""
	r["append c"] = _e(lambda: _append(m + "/c", "more\n"))
	r["cat cb"] = _e(lambda: _read(m + "/cb"))
	steps_rm_both(m, r, I)
	r["append b"] = _e(lambda: _append(m + "/b", "more\n"))
	r["rm a"] = _e(lambda: os.unlink(m + "/a"))
	r["cat b"] = _e(lambda: _read(m + "/b"))
	r["rm b"] = _e(lambda: os.unlink(m + "/b"))
	r["ls after"] = sorted(os.listdir(m))


def steps_setfattr_rm(m, r, I):
	"""ls -l; stat b; setfattr -n user.x -v 1 a; rm b; cat a."""
	r["ls -l"] = _ls_l(m)
	r["stat b"] = _nlink(m + "/b")
	r["setfattr a"] = _e(lambda: os.setxattr(m + "/a", "user.x", b"1"))
	r["rm b"] = _e(lambda: os.unlink(m + "/b"))
	r["cat a"] = _e(lambda: _read(m + "/a"))
	r["getfattr a"] = _e(lambda: os.getxattr(m + "/a", "user.x").decode())
	r["nlink a"] = _nlink(m + "/a")


def steps_chmod(m, r, I):
	"""chmod 755 a; then renames and links of both names."""
	r["ino"] = (I.of(m + "/a"), I.of(m + "/b"))
	r["chmod a"] = _e(lambda: os.chmod(m + "/a", 0o755))
	r["mode a b"] = (_mode(m + "/a"), _mode(m + "/b"))
	r["ino after"] = (I.of(m + "/a"), I.of(m + "/b"))
	r["mv a a2"] = _e(lambda: os.rename(m + "/a", m + "/a2"))
	r["lstat a2"] = (_mode(m + "/a2"), I.of(m + "/a2"), _nlink(m + "/a2"))
	r["ln a2 a3"] = _e(lambda: os.link(m + "/a2", m + "/a3"))
	r["a3"] = (_mode(m + "/a3"), I.of(m + "/a3"), _nlink(m + "/a3"), _nlink(m + "/a2"))
	r["chmod a3"] = _e(lambda: os.chmod(m + "/a3", 0o700))
	r["mode a2"] = _mode(m + "/a2")
	r["mv b b2"] = _e(lambda: os.rename(m + "/b", m + "/b2"))
	r["b2"] = (_mode(m + "/b2"), I.of(m + "/b2"), _nlink(m + "/b2"))
	r["ln b2 b3"] = _e(lambda: os.link(m + "/b2", m + "/b3"))
	r["rm b2"] = _e(lambda: os.unlink(m + "/b2"))
	r["b3"] = (_mode(m + "/b3"), I.of(m + "/b3"), _nlink(m + "/b3"))
	r["ls"] = sorted(os.listdir(m))


def steps_open_before(m, r, I):
	"""b open for reading before a is written: its fd keeps reading b's file."""
	fd = os.open(m + "/b", os.O_RDONLY)
	try:
		r["append a"] = _e(lambda: _append(m + "/a", "new\n"))
		r["fd of b"] = os.pread(fd, 100, 0).decode()
		r["cat b"] = _e(lambda: _read(m + "/b"))
	finally:
		os.close(fd)


def steps_cross_dir(m, r, I):
	"""sub/x and y: one name in a subdirectory; writing one, the rename of the other."""
	r["ino"] = (I.of(m + "/sub/x"), I.of(m + "/y"))
	r["write y"] = _e(lambda: _append(m + "/y", "Y\n"))
	r["cat"] = (_e(lambda: _read(m + "/sub/x")), _e(lambda: _read(m + "/y")))
	r["mv sub/x sub/z"] = _e(lambda: os.rename(m + "/sub/x", m + "/sub/z"))
	r["cat z"] = _e(lambda: _read(m + "/sub/z"))
	r["ino after"] = (I.of(m + "/sub/z"), I.of(m + "/y"))
	r["rm y"] = _e(lambda: os.unlink(m + "/y"))
	r["nlink z"] = _nlink(m + "/sub/z")


def steps_rm_last(m, r, I):
	"""rm a b: the last name of an indexed file."""
	r["append a"] = _e(lambda: _append(m + "/a", "new\n"))
	r["rm a"] = _e(lambda: os.unlink(m + "/a"))
	r["nlink b"] = _nlink(m + "/b")
	r["rm b"] = _e(lambda: os.unlink(m + "/b"))
	r["mv c over cb"] = _e(lambda: os.rename(m + "/c", m + "/cb"))
	r["mv sub/x over cb"] = _e(lambda: os.rename(m + "/sub/x", m + "/cb"))
	r["ls"] = sorted(os.listdir(m))


def run_steps(phases, mnt):
	I, out = Inos(), []
	for ph in phases:
		r = {}
		globals()["steps_" + ph](mnt, r, I)
		out.append(r)
	return out


# --- mounting both -------------------------------------------------------------------------------

MODES = {
	# name: (kernel options, binary options, rootless)
	"index_off": ("redirect_dir=on,index=off", ",index=off", False),
	"index_on": ("redirect_dir=on,index=on", "", False),
	"rootless": ("userxattr", "", True),
}


class Side:
	"""One of the two mounts: its layers under ctx.path(name)."""

	def __init__(self, ctx, name, mode, base=None):
		self.ctx, self.name, self.mode = ctx, name, mode
		self.root = os.path.join(base, name) if base else ctx.path(name)
		self.l0, self.u, self.w, self.mnt = (os.path.join(self.root, x)
						     for x in ("l0", "u", "w", "mnt"))
		self.h = None

	def build(self):
		for d in (self.l0, self.u, self.w, self.mnt):
			os.makedirs(d)
		layerspec.build_layer(self.l0, layers())
		if MODES[self.mode][2]:
			for top, dirs, files in os.walk(self.root):
				for n in [top] + [os.path.join(top, x) for x in dirs + files]:
					os.lchown(n, NOBODY, NOBODY)


def helper_argv(ctx, *args):
	"""This file run by the user: a copy, since the checkout may be unreadable to it."""
	src = ctx.path("helper")
	if not os.path.isdir(src):
		os.makedirs(src)
		here = os.path.dirname(os.path.abspath(__file__))
		for n in os.listdir(here):
			if n.endswith(".py"):
				shutil.copy(os.path.join(here, n), src)
		os.chmod(ctx.dir, 0o755)
	# The user may not reach this interpreter (under /root): the system's, where there is one.
	py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
	return [py, "-B", os.path.join(src, "hardlinks.py")] + list(args)


def run_helper(ctx, argv, what):
	r = subprocess.run(argv, capture_output=True, timeout=t(60), env=ctx.env())
	if r.returncode != 0:
		raise Failure("%s: helper exited %d: %s" % (what, r.returncode,
							   r.stderr.decode(errors="replace")[-800:]))
	return json.loads(r.stdout)


def kernel_run(ctx, side, phases):
	"""The kernel's answers: phases separated by "remount"."""
	kopts = MODES[side.mode][0]
	if MODES[side.mode][2]:
		argv = SETPRIV + ["unshare", "-Urm", "--"] + helper_argv(
			ctx, "--kernel-userns", kopts, side.l0, side.u, side.w, side.mnt, *phases)
		return run_helper(ctx, argv, "kernel in a user namespace")
	out = []
	for group in split_phases(phases):
		km = mounts.KernelMount(side.mnt, [side.l0], side.u, side.w)
		km.opts += "," + kopts
		km.mount()
		try:
			out += run_helper(ctx, helper_argv(ctx, "--steps", side.mnt, *group), "kernel")
		finally:
			errs = km.cleanup() or []
		if errs:
			raise Failure("kernel umount: %s" % errs)
	return out


def split_phases(phases):
	groups = [[]]
	for p in phases:
		if p == "remount":
			groups.append([])
		else:
			groups[-1].append(p)
	return groups


def mount_binary(ctx, side, extra=""):
	rootless = MODES[side.mode][2]
	opts = "lowerdir=%s,upperdir=%s,workdir=%s%s%s" % (side.l0, side.u, side.w,
							   MODES[side.mode][1], extra)
	if rootless:
		handles.user_fuse_device(ctx)
		os.chmod(ctx.logdir, 0o777)
	ctx.daemon = side.h = lifecycle.start_foreground(
		ctx, ["-o", opts, side.mnt], side.mnt, prefix=SETPRIV if rootless else ())
	return side.h


def binary_run(ctx, side, phases):
	out = []
	prefix = SETPRIV if MODES[side.mode][2] else []
	for group in split_phases(phases):
		h = mount_binary(ctx, side)
		with mounts.Watchdog(t(60), [h]):
			out += run_helper(ctx, prefix + helper_argv(ctx, "--steps", side.mnt, *group),
					  "binary")
			handles.unmount_clean(h)
	return out


def compare(phases, k, p):
	errs = []
	names = [x for x in phases if x != "remount"]
	for ph, kr, pr in zip(names, k, p):
		for key in kr:
			if kr[key] != pr.get(key):
				errs.append("%s: %s: kernel %r, binary %r" % (ph, key, kr[key], pr.get(key)))
	return errs


def ext4_base(ctx):
	"""An ext4 image mounted through a loop device (ext4 hands a freed inode number out again
	at once, tmpfs never does), for both sides' layers."""
	img, ext = ctx.path("ext4.img"), ctx.path("ext4")
	os.makedirs(ext)
	with open(img, "wb") as f:
		f.truncate(64 << 20)
	mounts.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", img], t(60))
	mounts.run(["mount", "-o", "loop", img, ext], t(30))
	ctx.track(mounts.BindMount(ext))
	os.chmod(ext, 0o755)
	return ext


def differential(mode, *phases, ext4=False):
	def run(ctx):
		base = ext4_base(ctx) if ext4 else None
		ks, ps = Side(ctx, "k", mode, base), Side(ctx, "p", mode, base)
		ks.build()
		ps.build()
		k = kernel_run(ctx, ks, phases)
		p = binary_run(ctx, ps, phases)
		ctx.notes.append("kernel: %s" % json.dumps(k)[:300]) if ctx.opts.verbose else None
		return compare(phases, k, p) + distinct_files(p)
	return run


def distinct_files(results):
	"""Never one inode number for two files with different data (the binary's answers)."""
	errs = []
	for r in results:
		for ik, ck in (("ino a b after", ("cat a", "cat b")), ("ino a b", ("cat a", "cat b"))):
			if ik in r and all(c in r for c in ck) and r[ik][0] == r[ik][1] \
					and r[ck[0]] != r[ck[1]]:
				errs.append("one inode number %s for a and b, which read %r and %r"
					    % (r[ik][0], r[ck[0]], r[ck[1]]))
	return errs


# --- the index after the last name ---------------------------------------------------------------

def kmsg_mark():
	mark = "plyfs-hardlinks-test-%d-%d" % (os.getpid(), time.monotonic_ns())
	with open("/dev/kmsg", "w") as f:
		f.write(mark + "\n")
	return mark


def kmsg_since(mark):
	r = subprocess.run(["dmesg"], capture_output=True, timeout=t(20))
	lines = r.stdout.decode(errors="replace").splitlines()
	for i, line in enumerate(lines):
		if mark in line:
			return lines[i + 1:]
	return lines


def orphan_index(ctx):
	"""rm a b (and the last name of c's group replaced by a rename) through both: the index
	holds the same entries, each with the same link count; then the kernel (index=on) mounts
	the binary's layers and logs no "orphan index entry"."""
	ks, ps = Side(ctx, "k", "index_on"), Side(ctx, "p", "index_on")
	ks.build()
	ps.build()
	phases = ("rm_last",)
	kres = kernel_run(ctx, ks, phases)
	errs = compare(phases, kres, binary_run(ctx, ps, phases))

	def index(side):
		d = os.path.join(side.w, "index")
		names = sorted(os.listdir(d)) if os.path.isdir(d) else []
		sts = [os.lstat(os.path.join(d, n)) for n in names]
		# Regular entries only: the kernel also keeps its shared whiteout there ("#N").
		return sorted((st.st_nlink, n) for n, st in zip(names, sts) if stat.S_ISREG(st.st_mode))
	ki, pi = index(ks), index(ps)
	if [x[0] for x in ki] != [x[0] for x in pi]:
		errs.append("workdir/index: kernel %r, binary %r" % (ki, pi))
	mark = kmsg_mark()
	km = mounts.KernelMount(ps.mnt, [ps.l0], ps.u, ps.w)
	km.opts += ",redirect_dir=on,index=on"
	km.mount()
	try:
		listing = sorted(os.listdir(ps.mnt))
	finally:
		errs += km.cleanup() or []
	if listing != kres[0]["ls"]:
		errs.append("the kernel on the binary's layers lists %r" % listing)
	bad = [x for x in kmsg_since(mark) if "overlayfs" in x and "orphan index" in x]
	errs += ["kernel log on the binary's layers: " + x for x in bad]
	return errs


# --- file handles of hard links -------------------------------------------------------------------

def handle_after_unlink(prepare):
	"""A file with two names (a, b): its handle taken through a, a unlinked, the caches
	dropped: the handle opens the file (b's), as with the kernel's nfs_export=on. `prepare`
	(None, or steps run on a first mount, then unmounted) makes the names: the mount that takes
	the handle has never seen b."""
	def run(ctx):
		k, p = Side(ctx, "k", "index_on"), Side(ctx, "p", "index_on")
		k.build()
		p.build()
		kopts = ",redirect_dir=on,index=on,nfs_export=on"
		if prepare:
			kernel_run(ctx, k, [prepare])
			binary_run(ctx, p, [prepare])
		km = mounts.KernelMount(k.mnt, [k.l0], k.u, k.w)
		km.opts += kopts
		km.mount()
		try:
			kres = handle_steps(ctx, k.mnt, None)
		finally:
			errs = km.cleanup() or []
		h = mount_binary(ctx, p)
		with mounts.Watchdog(t(60), [h]):
			pres = handle_steps(ctx, p.mnt, h)
			errs += lifecycle.settle(h)
		errs += h.cleanup() or []
		if kres != pres:
			errs.append("kernel %r, binary %r" % (kres, pres))
		return errs
	return run


def steps_copy_up_a(m, r, I):
	r["append a"] = _e(lambda: _append(m + "/a", "new\n"))


def steps_upper_link(m, r, I):
	"""a and b: an upper file with two names, and nothing below."""
	r["rm"] = (_e(lambda: os.unlink(m + "/a")), _e(lambda: os.unlink(m + "/b")))
	r["create a"] = _e(lambda: _append(m + "/a", "upper\n"))
	r["ln a b"] = _e(lambda: os.link(m + "/a", m + "/b"))


def handle_steps(ctx, mnt, h):
	fh = handles.encode(mnt + "/a")
	ino = os.stat(mnt + "/a").st_ino
	os.unlink(mnt + "/a")
	if h:
		errs = lifecycle.settle(h)
		if errs:
			raise Failure(errs[0])
	for _ in range(2):
		with open("/proc/sys/vm/drop_caches", "w") as f:
			f.write("3")
	mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
	try:
		fd = handles.decode(mfd, fh, os.O_RDONLY)
	except OSError as e:
		return {"open_by_handle_at": errno.errorcode.get(e.errno, e.errno)}
	finally:
		os.close(mfd)
	try:
		st = os.fstat(fd)
		return {"open_by_handle_at": "ok", "data": os.pread(fd, 100, 0).decode(),
			"same ino": st.st_ino == ino, "nlink": st.st_nlink,
			"b": _read(mnt + "/b")}
	finally:
		os.close(fd)


TESTS = []
for m_ in MODES:
	TESTS += [
		("%s/append" % m_, differential(m_, "append")),
		("%s/append_remount" % m_, differential(m_, "append", "remount", "after_remount")),
		("%s/rm_both" % m_, differential(m_, "rm_both")),
		("%s/rm_both_written" % m_, differential(m_, "rm_both_written")),
		("%s/setfattr_rm" % m_, differential(m_, "setfattr_rm")),
		("%s/chmod_rename_link" % m_, differential(m_, "chmod")),
		("%s/open_before" % m_, differential(m_, "open_before")),
		("%s/cross_dir" % m_, differential(m_, "cross_dir")),
	]
	TESTS += [
		("%s/ext4/append_remount" % m_, differential(m_, "append", "remount", "after_remount",
							       ext4=True)),
		("%s/ext4/chmod_rename_link" % m_, differential(m_, "chmod", ext4=True)),
		("%s/ext4/rm_both_written" % m_, differential(m_, "rm_both_written", ext4=True)),
	]
TESTS += [
	("index_on/orphan_index", orphan_index),
	("index_on/handle_after_unlink", handle_after_unlink(None)),
	("index_on/handle_after_unlink_remounted", handle_after_unlink("copy_up_a")),
	("index_on/handle_after_unlink_upper", handle_after_unlink("upper_link")),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("hardlinks", TESTS, Ctx)


def kernel_userns(kopts, l0, u, w, mnt, *phases):
	"""Inside `unshare -Urm` as the user: the kernel's overlay with userxattr, steps, remounts."""
	out = []
	for group in split_phases(phases):
		opts = "lowerdir=%s,upperdir=%s,workdir=%s,%s" % (l0, u, w, kopts)
		subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, mnt], check=True,
			       timeout=30)
		try:
			out += run_steps(group, mnt)
		finally:
			subprocess.run(["umount", mnt], check=True, timeout=30)
	return out


if __name__ == "__main__":
	if len(sys.argv) >= 3 and sys.argv[1] == "--steps":
		print(json.dumps(run_steps(sys.argv[3:], sys.argv[2])))
		sys.exit(0)
	if len(sys.argv) >= 7 and sys.argv[1] == "--kernel-userns":
		print(json.dumps(kernel_userns(*sys.argv[2:])))
		sys.exit(0)
	print("hardlinks.py: a module of harness.py", file=sys.stderr)
	sys.exit(2)
