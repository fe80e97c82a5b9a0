# SPDX-License-Identifier: GPL-2.0-or-later
"""origin.py - the copy-up origin, the impure markers and the uuid rules in kernel overlayfs' format
(issue 9, item 1), with kernel overlayfs (redirect_dir=on,index=on) as the oracle.

Each test builds the same lower layer twice on one layer filesystem (tmpfs, an ext4 image with a
uuid, an ext4 image with a null uuid: `tune2fs -U clear`), runs the same operations through the
binary on one copy and through kernel overlayfs on the other, unmounts both and compares every
xattr of the two uppers and of the two index directories. Values that name files are compared by
what they name: an ovl_fb value (origin, the index dir's upper, an index entry's name) becomes
(version, flags, uuid, the lower or upper path its handle is the handle of); the overlay's own
random uuid becomes its length and version. Then kernel overlayfs is mounted on the binary's
layers: it must accept them (index=on checks the upper root's origin) and show a copied-up file
with its lower file's inode number, as on its own layers. The binary's own st_ino after a remount is
checked too (the identity it reads back from the kernel's origin)."""

import ctypes
import os
import subprocess

import handles
import lifecycle
import mounts
from mounts import Failure, t

AT_FDCWD = -100
MAX_HANDLE_SZ = 128
OVL_PREFIX = "trusted.overlay."
KERNEL_OPTS = "redirect_dir=on,index=on"


class Ctx(lifecycle.Ctx):
	GROUP = "origin"


class FileHandle(ctypes.Structure):
	_fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
		    ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(FileHandle),
				    ctypes.POINTER(ctypes.c_int), ctypes.c_int]


def handle(path):
	"""(type, bytes) of name_to_handle_at(path), not following a symlink."""
	fh = FileHandle()
	fh.handle_bytes = MAX_HANDLE_SZ
	mid = ctypes.c_int()
	if _libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(fh), ctypes.byref(mid),
				   0) != 0:
		raise Failure("name_to_handle_at(%s): %s" % (path, os.strerror(ctypes.get_errno())))
	return fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes])


def walk(root):
	"""Every path under root (root itself as ""), sorted, without following symlinks."""
	out = [""]
	for d, dirs, files in os.walk(root):
		for n in dirs + files:
			out.append(os.path.relpath(os.path.join(d, n), root))
	return sorted(out)


class Side:
	"""One copy of the layers: root/{l0,u,w} (or the lowers given), mounted on root/m."""

	def __init__(self, root, lowers=None):
		self.root = root
		self.l0, self.u, self.w, self.m = (os.path.join(root, x) for x in ("l0", "u", "w", "m"))
		self.lowers = lowers or [self.l0]
		for d in self.lowers + [self.u, self.w, self.m]:
			os.makedirs(d)

	def handles(self):
		"""{(type, bytes): name} of every lower entry ("lowerN:PATH") and the upper root."""
		out = {}
		for i, low in enumerate(self.lowers):
			for rel in walk(low):
				out.setdefault(handle(os.path.join(low, rel)), "lower%d:/%s" % (i, rel))
		out[handle(self.u)] = "upper:/"
		return out

	def fb(self, value, names):
		"""An ovl_fb value, by what it names."""
		if len(value) == 0:
			return "origin unknown (empty)"
		if len(value) < 21 or value[1] != 0xfb or value[2] != len(value):
			return "invalid %s" % value.hex()
		key = (value[4], bytes(value[21:]))
		return "fb v%d flags %d uuid %s -> %s" % (value[0], value[3], value[5:21].hex(),
							  names.get(key, "no file of these layers"))

	def dump(self):
		"""{where: {xattr: normalized value}} of the upper and of the index dir."""
		names = self.handles()
		out = {}
		places = [("u", self.u, r) for r in walk(self.u)]
		idx = os.path.join(self.w, "index")
		# An empty index dir without xattrs is no index (the binary makes it before it knows
		# whether the index stays on; the kernel makes none with index=off).
		if os.path.isdir(idx) and (os.listdir(idx) or os.listxattr(idx)):
			places.append(("index", idx, ""))
			for n in sorted(os.listdir(idx)):
				try:
					key = bytes.fromhex(n)
					label = self.fb(key, names)
				except ValueError:
					label = "not hex: " + n
				places.append(("index entry " + label, os.path.join(idx, n), None))
		for kind, base, rel in places:
			path = base if rel is None else os.path.join(base, rel)
			where = kind if rel is None else "%s:/%s" % (kind, rel)
			got = {}
			for x in sorted(os.listxattr(path, follow_symlinks=False)):
				if not x.startswith(("trusted.", "user.")):
					continue
				v = os.getxattr(path, x, follow_symlinks=False)
				suffix = x[len(OVL_PREFIX):] if x.startswith(OVL_PREFIX) else None
				if suffix in ("origin", "upper"):
					v = self.fb(v, names)
				elif suffix == "uuid":
					v = "%d bytes, version %d" % (len(v), v[6] >> 4 if len(v) > 6 else -1)
				got[x] = v
			out[where] = got
		return out


def make_fs(ctx, kind):
	"""A fresh layer filesystem at ctx.path("fs"): tmpfs, ext4, or ext4 with a null uuid."""
	root = ctx.path("fs")
	os.makedirs(root)
	if kind == "tmpfs":
		mounts.run(["mount", "-t", "tmpfs", "tmpfs", root], t(30))
	else:
		img = ctx.path("fs.img")
		with open(img, "wb") as f:
			f.truncate(64 << 20)
		mounts.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", img], t(60))
		if kind == "ext4_nulluuid":
			mounts.run(["tune2fs", "-U", "clear", img], t(60))
		mounts.run(["mount", "-o", "loop", img, root], t(30))
	ctx.track(mounts.BindMount(root))
	return root


def build_lower(l0):
	os.makedirs(os.path.join(l0, "d"))
	os.makedirs(os.path.join(l0, "e"))
	for rel, data in (("d/f", "x\n"), ("d/g", "g\n"), ("d/keep", "k\n"), ("h1", "h\n")):
		with open(os.path.join(l0, rel), "w") as f:
			f.write(data)
	os.link(os.path.join(l0, "h1"), os.path.join(l0, "h2"))
	os.symlink("d/f", os.path.join(l0, "sl"))


def operations(m):
	"""The issue's (touch d/new; chmod 600 d/f) and a rename to another directory, an append to a
	hard-linked file (the index), a symlink's and a directory's copy-up."""
	open(os.path.join(m, "d/new"), "w").close()
	os.chmod(os.path.join(m, "d/f"), 0o600)
	os.rename(os.path.join(m, "d/g"), os.path.join(m, "e/g"))
	with open(os.path.join(m, "h1"), "a") as f:
		f.write("more\n")
	os.lchown(os.path.join(m, "sl"), 0, 0)
	os.chmod(os.path.join(m, "e"), 0o750)


def with_kernel(side, opts):
	km = mounts.KernelMount(side.m, side.lowers, side.u, side.w)
	km.opts += "," + opts
	km.mount()
	return km


def cleanup_kernel(km, errs):
	msg = km.cleanup()
	if msg:
		errs.append("kernel: " + msg)


def binary_opts(opts):
	return [o for o in opts.split(",") if o]


def run_binary(ctx, side, opts, label, body):
	d = mounts.Daemon(ctx.opts.binary, side.m, side.lowers, side.u, side.w,
			  logdir=ctx.path("log/" + label), sanitizer=ctx.opts.sanitizer,
			  extra_opts=binary_opts(opts))
	errs = []
	try:
		d.start()
		with mounts.Watchdog(t(60), [d]):
			errs += body(side.m) or []
	finally:
		errs += d.cleanup()
	return errs


def run_kernel(side, opts, body):
	errs = []
	km = with_kernel(side, KERNEL_OPTS + ("," + opts if opts else ""))
	try:
		errs += body(side.m) or []
	finally:
		cleanup_kernel(km, errs)
	return errs


def lower_ino(side, rel):
	return os.lstat(os.path.join(side.l0, rel)).st_ino


# The files whose st_ino must be their lower file's after a remount, as under the kernel.
SAME_INO = [("d/f", "d/f"), ("e/g", "d/g"), ("h1", "h1"), ("sl", "sl")]


def ino_report(side, m):
	return {rel: os.lstat(os.path.join(m, rel)).st_ino == lower_ino(side, low)
		for rel, low in SAME_INO}


def compare(ctx, fs_kind, opts="", old_upper=False):
	"""The binary (with `opts`) and the kernel (KERNEL_OPTS + `opts`) do operations() on copies of
	the same layers on a fresh `fs_kind`; the uppers' xattrs must match, and kernel overlayfs must
	read the binary's layers as its own. `old_upper`: both uppers were used first with
	uuid=null (a copy-up made, so the root is impure and has no uuid)."""
	root = make_fs(ctx, fs_kind)
	p, k = Side(os.path.join(root, "p")), Side(os.path.join(root, "k"))
	errs = []
	for side in (p, k):
		build_lower(side.l0)
	if old_upper:
		def age(m):
			os.chmod(os.path.join(m, "d/keep"), 0o640)
		errs += run_binary(ctx, p, "uuid=null", "age", age)
		errs += run_kernel(k, "uuid=null", age)
	errs += run_binary(ctx, p, opts, "ops", operations)
	errs += run_kernel(k, opts, operations)
	if errs:
		return errs
	pd, kd = p.dump(), k.dump()
	for where in sorted(set(pd) | set(kd)):
		a, b = pd.get(where), kd.get(where)
		if a != b:
			errs.append("%s: binary %r, kernel %r" % (where, a, b))
	for where, xs in pd.items():
		for x in xs:
			if ".plyfs." in x:
				errs.append("%s: private xattr %s written" % (where, x))
	# Kernel overlayfs on each side's layers: the same inode numbers for copied-up files.
	got = {}
	for name, side in (("binary's", p), ("kernel's", k)):
		def look(m, name=name, side=side):
			got[name] = ino_report(side, m)
		errs += ["kernel on the %s layers: %s" % (name, e)
			 for e in run_kernel(side, opts, look)]
	if got.get("binary's") != got.get("kernel's"):
		errs.append("kernel overlayfs on the layers, st_ino == the lower file's: on the "
			    "binary's %r, on its own %r" % (got.get("binary's"), got.get("kernel's")))
	# The binary reads its origins back: st_ino after a remount.
	mine = {}

	def look_binary(m):
		mine.update(ino_report(p, m))
	errs += run_binary(ctx, p, opts, "remount", look_binary)
	if mine and mine != got.get("kernel's"):
		errs.append("binary after a remount, st_ino == the lower file's: %r, kernel %r"
			    % (mine, got.get("kernel's")))
	return errs


def test_on(fs_kind, opts="", old_upper=False):
	return lambda ctx: compare(ctx, fs_kind, opts, old_upper)


def test_kernel_written(ctx):
	"""Layers written by kernel overlayfs (index=on): the binary shows a copied-up file with the
	inode number of its lower file (it decodes the kernel's origin), and a file whose origin
	went stale (the lower file deleted and another created in its place, offline) with its own,
	as the kernel does."""
	root = make_fs(ctx, "ext4")
	s = Side(os.path.join(root, "s"))
	build_lower(s.l0)
	errs = run_kernel(s, "", operations)
	os.unlink(os.path.join(s.l0, "d/f"))
	with open(os.path.join(s.l0, "d/f2"), "w") as f:
		f.write("another file, maybe on the freed inode\n")
	want, have = {}, {}

	def look(dst):
		def body(m):
			for rel in ("d/f", "e/g", "h1"):
				dst[rel] = os.lstat(os.path.join(m, rel)).st_ino
		return body
	errs += run_kernel(s, "", look(want))
	errs += run_binary(ctx, s, "", "read", look(have))
	if want != have:
		errs.append("st_ino: kernel %r, binary %r" % (want, have))
	if have.get("e/g") != lower_ino(s, "d/g"):
		errs.append("e/g (copied up and moved by the kernel) has st_ino %r, not its lower "
			    "file's %d" % (have.get("e/g"), lower_ino(s, "d/g")))
	return errs


def test_conflicting_uuid(ctx):
	"""Two lower filesystems with the same uuid (two ext4 images made with one -U): the kernel
	cannot tell their origins apart and turns the index off; so must the binary: a hard-linked
	lower file copied up gets no index entry and no origin, its names part ways, and the
	uppers' xattrs are the kernel's. (The upper on a tmpfs of its own.)"""
	same = "6a2d0c55-5e8e-4a43-9d1c-3f1f0a6b7c11"
	roots = []
	for i in range(2):
		img, root = ctx.path("img%d" % i), ctx.path("lfs%d" % i)
		os.makedirs(root)
		with open(img, "wb") as f:
			f.truncate(32 << 20)
		mounts.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-U", same, img], t(60))
		mounts.run(["mount", "-o", "loop", img, root], t(30))
		ctx.track(mounts.BindMount(root))
		roots.append(root)
	up = make_fs(ctx, "tmpfs")
	sides = {}
	for name in ("p", "k"):
		lowers = [os.path.join(r, name) for r in roots]
		sides[name] = Side(os.path.join(up, name), lowers)
		build_lower(lowers[1])
		os.makedirs(os.path.join(lowers[0], "top"))
	p, k = sides["p"], sides["k"]

	def ops(m):
		with open(os.path.join(m, "h1"), "a") as f:
			f.write("more\n")
		os.chmod(os.path.join(m, "d/f"), 0o600)
	errs = run_binary(ctx, p, "", "ops", ops) + run_kernel(k, "", ops)
	if errs:
		return errs
	pd, kd = p.dump(), k.dump()
	for where in sorted(set(pd) | set(kd)):
		if pd.get(where) != kd.get(where):
			errs.append("%s: binary %r, kernel %r" % (where, pd.get(where), kd.get(where)))
	return errs


def test_old_plyfs_layers(ctx):
	"""An upper written by an older plyfs (its own trusted.plyfs.origin, "DEV:INO" in hex, on a
	copied-up d/f): the binary still shows d/f with its lower file's inode number (so handles
	and identities stay); a file copied up now (d/g) gets the kernel's origin and nothing
	private."""
	root = make_fs(ctx, "ext4")
	s = Side(os.path.join(root, "s"))
	build_lower(s.l0)
	os.makedirs(os.path.join(s.u, "d"))
	with open(os.path.join(s.u, "d/f"), "w") as f:
		f.write("x, copied up by an old plyfs\n")
	st = os.lstat(os.path.join(s.l0, "d/f"))
	os.setxattr(os.path.join(s.u, "d/f"), "trusted.plyfs.origin",
		    ("%x:%x" % (st.st_dev, st.st_ino)).encode())
	os.setxattr(os.path.join(s.u, "d"), "trusted.plyfs.origin",
		    ("%x:%x" % (st.st_dev, os.lstat(os.path.join(s.l0, "d")).st_ino)).encode())
	seen = {}

	def body(m):
		seen["d/f"] = os.lstat(os.path.join(m, "d/f")).st_ino
		os.chmod(os.path.join(m, "d/g"), 0o600)
	errs = run_binary(ctx, s, "", "old", body)
	if seen.get("d/f") != st.st_ino:
		errs.append("d/f (old plyfs origin): st_ino %r, its lower file's %d"
			    % (seen.get("d/f"), st.st_ino))
	g = os.path.join(s.u, "d/g")
	xs = os.listxattr(g, follow_symlinks=False)
	if any(".plyfs." in x for x in xs):
		errs.append("d/g copied up now has a private xattr: %r" % xs)
	if "trusted.overlay.origin" not in xs:
		errs.append("d/g copied up now has no trusted.overlay.origin: %r" % xs)
	elif s.fb(os.getxattr(g, "trusted.overlay.origin"), s.handles()).split("-> ")[-1] != \
			"lower0:/d/g":
		errs.append("d/g's origin does not name l0/d/g")
	return errs


ROOTLESS_OPS = "touch m/d/new && chmod 600 m/d/f && mv m/d/g m/e/g"


def user_dump(u):
	"""{path: sorted xattr names} of an upper, and {path: value} of its origins."""
	names, origins = {}, {}
	for rel in walk(u):
		path = os.path.join(u, rel)
		xs = sorted(x for x in os.listxattr(path, follow_symlinks=False)
			    if x.startswith("user."))
		names["/" + rel] = xs
		if "user.overlay.origin" in xs:
			origins["/" + rel] = os.getxattr(path, "user.overlay.origin",
							 follow_symlinks=False)
	return names, origins


def test_rootless(ctx):
	"""The binary as an unprivileged user (user.overlay.*) against kernel overlayfs in a user
	namespace (userxattr) on a copy of the layers, after `touch d/new; chmod 600 d/f; mv d/g e/g`:
	the same xattr names on the same entries (origin on the copied-up ones, impure on their
	parents, the overlay's uuid on the root; nothing of plyfs' own). The kernel, unable to decode
	handles in a user namespace, leaves its origins empty; the binary's must be the lower
	entries' handles (origin.h). After a remount, d/f (copied up in place) keeps its lower inode
	number."""
	root = make_fs(ctx, "tmpfs")
	for side in ("p", "k"):
		for d in ("l0/d", "l0/e", "u", "w", "m"):
			os.makedirs(os.path.join(root, side, d))
		for rel, data in (("l0/d/f", "x\n"), ("l0/d/g", "g\n")):
			with open(os.path.join(root, side, rel), "w") as f:
				f.write(data)
	k = os.path.join(root, "k")
	r = subprocess.run(["unshare", "-Urm", "sh", "-c",
			    "mount -t overlay o -o lowerdir=l0,upperdir=u,workdir=w,userxattr m && "
			    + ROOTLESS_OPS + " && umount m"], cwd=k, capture_output=True,
			   timeout=t(60))
	if r.returncode != 0:
		raise Failure("kernel overlayfs in a user namespace: %s" % r.stderr.decode()[-500:])
	p = os.path.join(root, "p")
	for d, dirs, files in os.walk(p):
		for n in [d] + [os.path.join(d, x) for x in dirs + files]:
			os.lchown(n, handles.NOBODY, handles.NOBODY)
	handles.user_fuse_device(ctx)
	opts = "lowerdir=l0,upperdir=u,workdir=w"
	errs = []

	def mount_and(cmd):
		h = lifecycle.start_foreground(ctx, ["-o", opts, os.path.join(p, "m")],
					       os.path.join(p, "m"), cwd=p, prefix=handles.SETPRIV)
		with mounts.Watchdog(t(60), [h]):
			out = subprocess.run(handles.SETPRIV + ["sh", "-c", cmd], cwd=p,
					     capture_output=True, timeout=t(60))
			handles.unmount_clean(h)
		if out.returncode != 0:
			raise Failure("%s: %s" % (cmd, out.stderr.decode()[-500:]))
		return out.stdout.decode()
	mount_and(ROOTLESS_OPS)
	(pn, po), (kn, ko) = user_dump(os.path.join(p, "u")), user_dump(os.path.join(k, "u"))
	if pn != kn:
		errs.append("xattr names: binary %r, kernel %r" % (pn, kn))
	if any(v for v in ko.values()):
		errs.append("setup: the kernel wrote non-empty origins in a user namespace: %r" % ko)
	for rel, low in (("/d/f", "l0/d/f"), ("/e/g", "l0/d/g"), ("/d", "l0/d")):
		want = handle(os.path.join(p, low))
		v = po.get(rel, b"")
		if len(v) < 21 or (v[4], bytes(v[21:])) != want:
			errs.append("%s: origin %s is not the handle of %s" % (rel, v.hex(), low))
	ino = mount_and("stat -c %i m/d/f").strip()
	if ino != str(os.lstat(os.path.join(p, "l0/d/f")).st_ino):
		errs.append("d/f after a remount: st_ino %s, its lower file's %d"
			    % (ino, os.lstat(os.path.join(p, "l0/d/f")).st_ino))
	return errs


TESTS = [
	("kernel_xattrs_tmpfs", test_on("tmpfs")),
	("kernel_xattrs_ext4", test_on("ext4")),
	("kernel_xattrs_ext4_nulluuid", test_on("ext4_nulluuid")),
	("uuid_null", test_on("tmpfs", "uuid=null")),
	("uuid_off", test_on("ext4", "uuid=off")),
	("uuid_on_old_upper", test_on("tmpfs", "uuid=on", old_upper=True)),
	("uuid_auto_old_upper", test_on("ext4_nulluuid", "uuid=auto", old_upper=True)),
	("kernel_written_origin", test_kernel_written),
	("conflicting_uuid", test_conflicting_uuid),
	("rootless", test_rootless),
	("old_plyfs_layers", test_old_plyfs_layers),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("origin", TESTS, Ctx)
