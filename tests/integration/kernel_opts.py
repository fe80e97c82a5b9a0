# SPDX-License-Identifier: GPL-2.0-or-later
"""kernel_opts.py - kernel overlayfs' own mount options, compared with kernel overlayfs given the
same options on the same (or identically built) layers.

- redirect_exdev: with redirect_dir=follow, nofollow and off, renaming a lower directory, a
  merged one, or exchanging one, gives EXDEV on both; files and upper-only directories still
  move; `mv` of a lower directory then copies it (exit 0) and both merged trees are equal after;
  no redirect xattr is written. redirect_dir=on moves the directory on both.
- redirect_nofollow: layers holding the kernel's own redirects (a relative one, a rename within
  a directory, and an absolute one, a move to another) read back under redirect_dir=on, follow,
  nofollow, off, by the kernel and by the binary in turn: lstat and listdir must give the same
  result (EPERM for a redirected directory under nofollow).
- redirect_format: the same renames (within a directory, across, again within, again across)
  through the kernel and through the binary on copies of the same layers: the redirect values
  written into the uppers are the same (relative within a directory, absolute across).
- marks_format: the opaque marks kernel overlayfs writes: a directory made or moved into a
  merged parent, and the mark a rename leaves when it then fails (ENOTEMPTY over a non-empty
  upper-only directory), with each result, equal on both uppers.
- xino: upper and one lower on tmpfs, another lower on an ext4 image: st_ino of lower files and
  directories of both filesystems, of an upper file and of the root under xino=on / auto, with
  and without an upper layer, and xino=off with every layer on one filesystem, equal to the
  kernel's (which composes the fsid into the high bits, fsid 0 reserved for the upper).
- nfs_export: nfs_export=on (the default): a handle decodes after the caches are dropped, as the
  kernel's nfs_export=on,index=on. nfs_export=off: no handle store in the workdir, and a
  forgotten file's handle gives ESTALE (the kernel already refuses to encode one, EOPNOTSUPP:
  FUSE always encodes; printed as a note).

Refused combinations (metacopy=on, xino=off across filesystems, bad words) are bad_options.py
cases. Run by hand: tests/integration/run.sh build/plyfs -k 'kopts/*' -v.
"""

import ctypes
import errno
import os
import subprocess

import compare
import handles
import layerspec
import lifecycle
import mounts
from layerspec import D
from mounts import Failure, t

XATTR_REDIRECT = b"trusted.overlay.redirect"


class Ctx(lifecycle.Ctx):
	GROUP = "kopts"


# --- helpers --------------------------------------------------------------------------------------

def outcome(fn, *args):
	"""("ok", value) or ("err", "ENAME")."""
	try:
		return ("ok", fn(*args))
	except OSError as e:
		return ("err", errno.errorcode.get(e.errno, str(e.errno)))


def build(ctx, sub, specs):
	"""Builds lowers l0.. and an upper u from `specs` [(name, spec)] under ctx.path(sub), with
	an empty work dir w and a mount point mnt; returns the directory."""
	root = ctx.path(sub)
	for name, spec in specs:
		os.makedirs(os.path.join(root, name))
		layerspec.build_layer(os.path.join(root, name), spec)
	for d in ("w", "mnt"):
		os.makedirs(os.path.join(root, d), exist_ok=True)
	return root


def layer_opts(root, lowers=("l0",), upper=True):
	o = "lowerdir=" + ":".join(os.path.join(root, x) for x in lowers)
	if upper:
		o += ",upperdir=%s,workdir=%s" % (os.path.join(root, "u"), os.path.join(root, "w"))
	return o


def kernel_mount(ctx, root, extra, lowers=("l0",), upper=True):
	mnt = os.path.join(root, "mnt")
	mounts.run(["mount", "-t", "overlay", "overlay", "-o",
		    layer_opts(root, lowers, upper) + "," + extra, mnt], t(30))
	return ctx.track(mounts.BindMount(mnt))


def binary_mount(ctx, root, extra, lowers=("l0",), upper=True):
	mnt = os.path.join(root, "mnt")
	opts = layer_opts(root, lowers, upper) + ("," + extra if extra else "")
	ctx.daemon = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	return ctx.daemon


def unmount(ctx, h):
	"""Unmounts a kernel mount or the binary (which must then exit 0); raises Failure."""
	errs = lifecycle.settle(h) if isinstance(h, lifecycle.DaemonHandle) else []
	errs += h.cleanup()
	if h in ctx.handles:
		ctx.handles.remove(h)
	if errs:
		raise Failure("; ".join(errs))


def upper_redirects(upper):
	"""{relative path: redirect value} of every directory of a raw upper layer."""
	out = {}
	for top, dirs, _ in os.walk(upper):
		for d in dirs:
			p = os.path.join(top, d)
			try:
				out[os.path.relpath(p, upper)] = os.getxattr(p, XATTR_REDIRECT,
									     follow_symlinks=False)
			except OSError as e:
				if e.errno != errno.ENODATA:
					raise
	return out


# --- redirect_dir ---------------------------------------------------------------------------------

def exdev_layers():
	l0 = {"d": D(), "d/f": "f in d\n", "d/s": D(), "d/s/g": "g\n", "m": D(), "m/x": "x\n",
	      "file": "a lower file\n"}
	up = {"m": D(), "m/y": "y in the upper\n", "nu": D(), "nu/z": "z\n"}
	return [("l0", l0), ("u", up)]


def exdev_ops(mnt):
	"""What a user does with redirect_dir off: every result, for comparison."""
	p = lambda x: os.path.join(mnt, x)  # noqa: E731
	res = {
		"rename lower dir": outcome(os.rename, p("d"), p("d2")),
		"rename lower subdir": outcome(os.rename, p("d/s"), p("s2")),
		"rename merged dir": outcome(os.rename, p("m"), p("m2")),
		"rename lower dir over a non-empty merged one": outcome(os.rename, p("d"), p("m")),
		"rename upper-only dir": outcome(os.rename, p("nu"), p("nu2")),
		"rename lower file": outcome(os.rename, p("file"), p("file2")),
	}
	os.mkdir(p("fresh"))
	libc = handles._libc
	rc = libc.renameat2(-100, os.fsencode(p("fresh")), -100, os.fsencode(p("d")), 2)
	res["exchange new dir with lower dir"] = ("ok", 0) if rc == 0 else (
		"err", errno.errorcode[ctypes.get_errno()])
	cp = subprocess.run(["mv", p("d"), p("d3")], capture_output=True, timeout=t(30))
	res["mv lower dir"] = ("exit", cp.returncode)
	cp = subprocess.run(["mv", p("m"), p("nu2/m4")], capture_output=True, timeout=t(30))
	res["mv merged dir"] = ("exit", cp.returncode)
	return res


def redirect_exdev(ctx):
	errs = []
	for mode in ("follow", "nofollow", "off", "on"):
		k = build(ctx, "k-" + mode, exdev_layers())
		b = build(ctx, "b-" + mode, exdev_layers())
		km = kernel_mount(ctx, k, "redirect_dir=" + mode)
		rk = exdev_ops(os.path.join(k, "mnt"))
		bm = binary_mount(ctx, b, "redirect_dir=" + mode)
		rb = exdev_ops(os.path.join(b, "mnt"))
		for what in rk:
			if rk[what] != rb[what]:
				errs.append("redirect_dir=%s: %s: kernel %r, binary %r"
					    % (mode, what, rk[what], rb[what]))
		if mode != "on" and rk["rename lower dir"] != ("err", "EXDEV"):
			errs.append("setup: the kernel moved a lower directory with redirect_dir=%s"
				    % mode)
		kw = compare.walk(os.path.join(k, "mnt"))
		bw = compare.walk(os.path.join(b, "mnt"))
		errs += ["redirect_dir=%s: tree: %s" % (mode, e)
			 for e in compare.diff_records(kw, bw)]
		unmount(ctx, bm)
		unmount(ctx, km)
		listings = [sorted(os.path.relpath(os.path.join(top, x), os.path.join(r, "u"))
				   for top, ds, fs in os.walk(os.path.join(r, "u")) for x in ds + fs)
			    for r in (k, b)]
		if listings[0] != listings[1]:
			errs.append("redirect_dir=%s: raw uppers differ (what was copied up): kernel "
				    "%r, binary %r" % (mode, listings[0], listings[1]))
		for who, root in (("kernel", k), ("binary", b)):
			red = upper_redirects(os.path.join(root, "u"))
			if mode != "on" and red:
				errs.append("redirect_dir=%s: the %s wrote redirects %r"
					    % (mode, who, red))
	return errs


def kernel_redirected_layers(ctx, root):
	"""Renames through the kernel (redirect_dir=on): d -> dd (relative redirect), e/s -> s2
	(absolute)."""
	km = kernel_mount(ctx, root, "redirect_dir=on")
	mnt = os.path.join(root, "mnt")
	os.rename(os.path.join(mnt, "d"), os.path.join(mnt, "dd"))
	os.rename(os.path.join(mnt, "e/s"), os.path.join(mnt, "s2"))
	unmount(ctx, km)
	red = upper_redirects(os.path.join(root, "u"))
	if red != {"dd": b"d", "s2": b"/e/s"}:
		raise Failure("setup: the kernel wrote redirects %r" % red)


def read_probe(mnt):
	res = {}
	for name in ("dd", "s2", "e", "dd/f"):
		p = os.path.join(mnt, name)
		res["lstat " + name] = outcome(lambda x: os.lstat(x).st_mode, p)
		res["listdir " + name] = outcome(lambda x: sorted(os.listdir(x)), p)
	return res


def redirect_nofollow(ctx):
	l0 = {"d": D(), "d/f": "f\n", "e": D(), "e/s": D(), "e/s/g": "g\n"}
	root = build(ctx, "r", [("l0", l0), ("u", {})])
	kernel_redirected_layers(ctx, root)
	errs = []
	for mode in ("on", "follow", "nofollow", "off"):
		km = kernel_mount(ctx, root, "redirect_dir=" + mode)
		rk = read_probe(os.path.join(root, "mnt"))
		unmount(ctx, km)
		bm = binary_mount(ctx, root, "redirect_dir=" + mode)
		rb = read_probe(os.path.join(root, "mnt"))
		unmount(ctx, bm)
		for what in rk:
			if rk[what] != rb[what]:
				errs.append("redirect_dir=%s: %s: kernel %r, binary %r"
					    % (mode, what, rk[what], rb[what]))
		if mode == "nofollow" and rk["lstat dd"] != ("err", "EPERM"):
			errs.append("setup: the kernel followed a redirect with nofollow: %r"
				    % (rk["lstat dd"],))
	return errs


def redirect_format(ctx):
	l0 = {"d": D(), "d/f": "f\n", "e": D(), "e/s": D(), "e/s/g": "g\n", "x": D(), "x/y": D(),
	      "r": D(), "r/h": "h\n", "e/t": D(), "e/t/i": "i\n"}
	got = {}
	for who in ("kernel", "binary"):
		root = build(ctx, who, [("l0", l0), ("u", {})])
		h = (kernel_mount(ctx, root, "redirect_dir=on") if who == "kernel"
		     else binary_mount(ctx, root, ""))
		mnt = os.path.join(root, "mnt")
		for a, b in (("d", "dd"), ("e/s", "s2"), ("dd", "e/dd3"), ("s2", "s3"),
			     ("x/y", "x/y2"), ("x/y2", "y3"), ("r", "r2"), ("e/t", "e/t2")):
			os.rename(os.path.join(mnt, a), os.path.join(mnt, b))
		unmount(ctx, h)
		got[who] = upper_redirects(os.path.join(root, "u"))
	ctx.notes.append("redirects written: %r" % got)
	if got["kernel"] != got["binary"]:
		return ["redirect values in the upper: kernel %r, binary %r"
			% (got["kernel"], got["binary"])]
	return []


def upper_marks(upper):
	"""{relative path: {name: value}} of the opaque and redirect xattrs of a raw upper."""
	out = {}
	for top, dirs, _ in os.walk(upper):
		for d in dirs:
			p = os.path.join(top, d)
			xs = {}
			for n in (b"trusted.overlay.opaque", XATTR_REDIRECT):
				try:
					xs[n] = os.getxattr(p, n, follow_symlinks=False)
				except OSError as e:
					if e.errno != errno.ENODATA:
						raise
			out[os.path.relpath(p, upper)] = xs
	return out


def marks_format(ctx):
	"""The opaque marks the kernel writes besides whiteouts: a directory made in a merged
	parent, one moved into a merged parent, and the mark of a rename that then fails
	(ENOTEMPTY over a non-empty upper-only directory), on both uppers."""
	l0 = {"m": D(), "m/x": "x\n", "d": D(), "d/f": "f\n"}
	up = {"pu": D(), "pu/full": D(), "pu/full/y": "y\n", "m": D()}
	got = {}
	for who in ("kernel", "binary"):
		root = build(ctx, who, [("l0", l0), ("u", up)])
		h = (kernel_mount(ctx, root, "redirect_dir=on") if who == "kernel"
		     else binary_mount(ctx, root, ""))
		mnt = os.path.join(root, "mnt")
		res = []
		for op, args in ((os.mkdir, ("new",)), (os.mkdir, ("m/new2",)),
				 (os.mkdir, ("pu/sub",)), (os.mkdir, ("pu/sub2",)),
				 (os.rename, ("pu/sub2", "moved")), (os.mkdir, ("pu/sub3",)),
				 (os.rename, ("pu/sub3", "pu/full")), (os.rename, ("d", "pu/full"))):
			res.append(outcome(op, *[os.path.join(mnt, a) for a in args]))
		unmount(ctx, h)
		got[who] = (res, upper_marks(os.path.join(root, "u")))
	if got["kernel"] != got["binary"]:
		return ["results and opaque/redirect marks in the upper: kernel %r, binary %r"
			% (got["kernel"], got["binary"])]
	return []


# --- xino -----------------------------------------------------------------------------------------

XINO_PATHS = ("", "f0", "d0", "d0/g", "f1", "d1", "uf")


def inos(mnt, paths):
	return {p: outcome(lambda x: os.lstat(x).st_ino, os.path.join(mnt, p)) for p in paths}


def ext4_image(ctx, name):
	img, ext = ctx.path(name + ".img"), ctx.path(name)
	os.makedirs(ext)
	with open(img, "wb") as f:
		f.truncate(64 << 20)
	mounts.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", img], t(60))
	mounts.run(["mount", "-o", "loop", img, ext], t(30))
	ctx.track(mounts.BindMount(ext))
	return ext


def xino(ctx):
	ext = ext4_image(ctx, "ext4")
	root = ctx.dir
	for d in ("l1", "u", "w", "mnt", "same/l0", "same/u", "same/w", "same/mnt"):
		os.makedirs(ctx.path(d))
	os.makedirs(os.path.join(ext, "l0"))
	layerspec.build_layer(os.path.join(ext, "l0"), {"f0": "f0\n", "d0": D(), "d0/g": "g\n"})
	os.symlink(os.path.join(ext, "l0"), ctx.path("l0"))
	for name, spec in (("l1", {"f1": "f1\n", "d1": D()}), ("u", {"uf": "uf\n"})):
		layerspec.build_layer(ctx.path(name), spec)
	layerspec.build_layer(ctx.path("same/l0"), {"f0": "f0\n", "d0": D(), "d0/g": "g\n"})
	errs = []
	cases = [("two filesystems, upper", root, ("l0", "l1"), True, "xino=on", ["xino=on", ""]),
		 ("two filesystems, no upper", root, ("l0", "l1"), False, "xino=on",
		  ["xino=on", "xino=auto"]),
		 ("one filesystem", ctx.path("same"), ("l0",), True, "xino=off",
		  ["xino=off", "xino=on"])]
	for what, r, lowers, upper, kopt, bopts in cases:
		km = kernel_mount(ctx, r, kopt, lowers, upper)
		want = inos(os.path.join(r, "mnt"), XINO_PATHS)
		unmount(ctx, km)
		ctx.notes.append("%s, kernel %s: %s" % (what, kopt, want))
		for bopt in bopts:
			bm = binary_mount(ctx, r, bopt, lowers, upper)
			got = inos(os.path.join(r, "mnt"), XINO_PATHS)
			unmount(ctx, bm)
			for p in XINO_PATHS:
				if got[p] != want[p]:
					errs.append("%s, binary %r: st_ino of /%s: kernel (%s) %r, "
						    "binary %r" % (what, bopt or "default", p, kopt,
								   want[p], got[p]))
	return errs


# --- nfs_export -----------------------------------------------------------------------------------

def handle_after_drop(ctx, mnt, h):
	"""(encode result, decode-after-drop result) of mnt/d/f."""
	path = os.path.join(mnt, "d/f")
	try:
		fh = handles.encode(path)
	except Failure as e:
		return ("err", str(e).rsplit(": ", 1)[-1]), None
	if h is not None:
		errs = lifecycle.settle(h)
		if errs:
			raise Failure(errs[0])
	for _ in range(2):
		with open("/proc/sys/vm/drop_caches", "w") as f:
			f.write("3")
	mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
	try:
		fd = handles.decode(mfd, fh, os.O_RDONLY)
		with os.fdopen(fd, "rb") as f:
			return ("ok",), ("ok", f.read())
	except OSError as e:
		return ("ok",), ("err", errno.errorcode[e.errno])
	finally:
		os.close(mfd)


def nfs_export(ctx):
	spec = [("l0", {"d": D(), "d/f": "data\n"}), ("u", {})]
	errs = []
	for mode in ("on", "off"):
		k = build(ctx, "k-" + mode, spec)
		km = kernel_mount(ctx, k, "index=on,nfs_export=" + mode)
		kres = handle_after_drop(ctx, os.path.join(k, "mnt"), None)
		unmount(ctx, km)
		b = build(ctx, "b-" + mode, spec)
		bm = binary_mount(ctx, b, "" if mode == "on" else "nfs_export=off")
		bres = handle_after_drop(ctx, os.path.join(b, "mnt"), bm)
		unmount(ctx, bm)
		ctx.notes.append("nfs_export=%s: kernel (encode, decode after drop) %r, binary %r"
				 % (mode, kres, bres))
		store = sorted(n for n in os.listdir(os.path.join(b, "w")) if "handles" in n)
		if mode == "on":
			if bres != kres or kres != (("ok",), ("ok", b"data\n")):
				errs.append("nfs_export=on: kernel %r, binary %r" % (kres, bres))
			if not store:
				errs.append("nfs_export=on: no handle store in the workdir")
		else:
			if bres != (("ok",), ("err", "ESTALE")):
				errs.append("nfs_export=off: binary %r, expected a handle that gives "
					    "ESTALE once forgotten" % (bres,))
			if store:
				errs.append("nfs_export=off: handle store written: %r" % store)
	return errs


TESTS = [
	("redirect_exdev", redirect_exdev),
	("redirect_nofollow", redirect_nofollow),
	("redirect_format", redirect_format),
	("marks_format", marks_format),
	("xino", xino),
	("nfs_export", nfs_export),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("kopts", TESTS, Ctx)
