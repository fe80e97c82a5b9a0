# SPDX-License-Identifier: GPL-2.0-or-later
"""write_env.py - the fixture of the write-path tests (write.sh), and the syscalls Python lacks.

A test is a function fn(env) registered with @wtest(name, layers=...). For each test the layers
are built twice (p/: given to the binary, k/: the kernel's converted copy, layerspec.KernelCopy),
kernel overlayfs is mounted on km with redirect_dir=on,index=on and the binary on pm. The test then
performs the same operations on both through env.same(label, fn, args): fn(root, *args) runs once
with the kernel's mountpoint, once with the binary's, and the outcomes (the returned value, or the
errno name of an OSError) must be equal; dict values are compared key by key. Checks that kernel
overlayfs gets wrong (the MAP_SHARED one) use env.expect()/env.check(), on the binary only.

At the end (env.finish):
  1. the merged trees are walked and diffed (compare.py: names, types, modes, owners, nlink, sizes,
     sha256, symlinks, rdev, user.* xattrs, access(), st_ino grouping);
  2. both are unmounted; the binary's workdir/work must be empty;
  3. "readback": the binary's upper and the kernel's own upper are each copied (KernelCopy) and
     mounted under KERNEL overlayfs over the same kernel lowers (redirect_dir=on), walked, diffed.
     So whatever the binary wrote to its upper must mean, to the kernel, what the kernel's own
     upper means.
The layers live on a tmpfs mounted noatime (reads never move a layer file's atime, so times can
be compared exactly between the two copies).
"""

import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import subprocess
import sys
import time

import compare
import layerspec
import mounts
from layerspec import D, F, L
from mounts import Failure, t

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2

KERNEL_OPTS = "redirect_dir=on,index=on"
READBACK_OPTS = "redirect_dir=on"

TESTS = []

# Xattrs a daemon may keep for itself on upper files (user.* so that it works rootless, trusted.*
# as root). Kernel overlayfs shows them as ordinary xattrs; the readback here ignores them and says
# so in a note (the differential test, diff.sh, counts them as differences: issue 9 item 1).
BOOKKEEPING_XATTRS = (b"user.plyfs.", b"trusted.plyfs.", b"user.fuseoverlayfs.")


class Timespec(ctypes.Structure):
	_fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
			   ctypes.c_uint]
libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def _check(r, what):
	if r < 0:
		e = ctypes.get_errno()
		raise OSError(e, "%s: %s" % (what, os.strerror(e)))
	return r


def renameat2(old, new, flags=0):
	return _check(libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags),
		      "renameat2")


def utimensat(path, atime, mtime, nofollow=False):
	"""atime/mtime: nanoseconds since the epoch, or UTIME_NOW / UTIME_OMIT."""
	def ts(v):
		if v in (UTIME_NOW, UTIME_OMIT):
			return Timespec(0, v)
		return Timespec(v // 10**9, v % 10**9)
	arr = (Timespec * 2)(ts(atime), ts(mtime))
	return _check(libc.utimensat(AT_FDCWD, os.fsencode(path), arr,
				     AT_SYMLINK_NOFOLLOW if nofollow else 0), "utimensat")


def fallocate(fd, mode, off, length):
	return _check(libc.fallocate(fd, mode, off, length), "fallocate")


def P(root, *parts):
	return os.path.join(root, *parts)


def drop_caches():
	with open("/proc/sys/vm/drop_caches", "w") as f:
		f.write("3\n")


# --- outcomes -------------------------------------------------------------------------------------

class Out:
	"""What an operation did: a value, or the errno name of the OSError it raised."""
	__slots__ = ("err", "value")

	def __init__(self, err, value):
		self.err, self.value = err, value

	def __eq__(self, other):
		return self.err == other.err and self.value == other.value

	def __repr__(self):
		return "errno %s" % self.err if self.err else "ok %r" % (self.value,)


def outcome(fn, *args, **kw):
	try:
		return Out(None, fn(*args, **kw))
	except OSError as e:
		return Out(errno.errorcode.get(e.errno, str(e.errno)), None)


def short(s, n=400):
	"""Cuts a long message in the middle (huge xattr values, file data)."""
	return s if len(s) <= n else "%s...(%d chars)...%s" % (s[:n // 2], len(s), s[-n // 4:])


def diff_outcomes(label, k, p, relax=()):
	"""Messages for what differs between the kernel's outcome k and the binary's p. With
	"dir_nlink" in relax, the nlink of directories (type "d" dicts) is not compared."""
	if k == p:
		return []
	if k.err is None and p.err is None and isinstance(k.value, dict) and isinstance(p.value, dict):
		out = []
		is_dir = k.value.get("type") == "d" and p.value.get("type") == "d"
		for key in sorted(set(k.value) | set(p.value), key=str):
			if key == "nlink" and is_dir and "dir_nlink" in relax:
				continue
			kv, pv = k.value.get(key, "<absent>"), p.value.get(key, "<absent>")
			if kv != pv:
				out.append(short("%s: %s: kernel=%r binary=%r" % (label, key, kv, pv)))
		return out
	return [short("%s: kernel=%r binary=%r" % (label, k, p))]


# --- observations (comparable between the two mounts) ---------------------------------------------

def statd(path, times=False, ino=False, follow=False):
	"""A comparable summary of lstat (stat with follow)."""
	st = os.stat(path, follow_symlinks=follow)
	d = {"type": compare.TYPE_CHARS.get(stat.S_IFMT(st.st_mode), "?"),
	     "mode": "0%o" % stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
	     "nlink": st.st_nlink}
	if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
		d["size"] = st.st_size
	if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
		d["rdev"] = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
	if times:
		d["atime_ns"], d["mtime_ns"] = st.st_atime_ns, st.st_mtime_ns
	if ino:
		d["ino"] = st.st_ino
	return d


def read_file(path):
	with open(path, "rb") as f:
		return f.read()


def user_xattrs(path, prefixes=(b"user.",)):
	"""{name: value} of the xattrs with one of `prefixes` (lstat-like: never follows)."""
	out = {}
	for n in os.listxattr(path, follow_symlinks=False):
		n = os.fsencode(n)
		if n.startswith(prefixes):
			out[n] = os.getxattr(path, n, follow_symlinks=False)
	return out


def look(path):
	"""stat + data/listing/target + user.* xattrs of one path, or raises (ENOENT...)."""
	d = statd(path)
	if d["type"] == "f":
		d["data"] = read_file(path)
	elif d["type"] == "d":
		d["list"] = sorted(os.listdir(path))
	elif d["type"] == "l":
		d["target"] = os.readlink(path)
	d["xattrs"] = user_xattrs(path)
	return d


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
	fd = os.open(path, flags, mode)
	try:
		return os.write(fd, data)
	finally:
		os.close(fd)


def second_process(code, *args, timeout=15):
	"""Runs python `code` in a child (argv[1:] = args); returns its stripped stdout."""
	cp = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
			    stdin=subprocess.DEVNULL, capture_output=True, timeout=t(timeout))
	if cp.returncode != 0:
		raise Failure("helper process failed: %s" % cp.stderr.decode(errors="replace")[-800:])
	return cp.stdout.decode().strip()


# --- the standard layers --------------------------------------------------------------------------

T0 = 1_500_000_000_123_456_789	# fixed times given to the layers, so copy-up keeps exact values


def std_layers():
	"""(lowers top first, upper). Names: lo* lower-only files, up upper-only, both in lower and
	upper; ldir a lower-only directory (entries in both lowers), bdir merged lower+upper, udir
	upper-only, emptyl an empty lower-only directory, gone/gonedir whited-out lower entries."""
	bottom = {
		"lo": F("lower only\n", mode=0o640, uid=1000, gid=100, xattrs={"user.k": "lo"}),
		"lo2": F("second lower file\n", mode=0o604, uid=1001, gid=101),
		"both": F("both: lower version\n", xattrs={"user.k": "both-lower"}),
		"suid": F("#!/bin/sh\n", mode=0o4755, uid=1000, gid=100),
		"lsym": L("lo"),
		"ldir": D(mode=0o750, uid=1000, gid=100, xattrs={"user.d": "ldir"}),
		"ldir/a": "a\n",
		"ldir/b": F("b\n", mode=0o600),
		"ldir/sub": D(mode=0o711, uid=1001, gid=101, xattrs={"user.d": "sub"}),
		"ldir/sub/c": F("c\n", mode=0o600, uid=1001, gid=101, xattrs={"user.c": "c"}),
		"bdir": D(mode=0o755),
		"bdir/x": "x lower\n",
		"bdir/lx": "only in the lower bdir\n",
		"emptyl": D(mode=0o755),
		"gone": "whited out\n",
		"gonedir/a": "whited out too\n",
	}
	top = {"mid": "in the top lower\n", "ldir/m": "m from the top lower\n",
	       "bdir/x": "x top lower\n"}
	upper = {
		"up": F("upper only\n", mode=0o600, uid=1002, gid=102, xattrs={"user.k": "up"}),
		"both": F("both: upper version\n", mode=0o664, xattrs={"user.k": "both-upper"}),
		"udir": D(mode=0o755),
		"udir/u": "u\n",
		"uempty": D(mode=0o755),
		"bdir/y": "y upper\n",
		"gone": layerspec.WH(),
		"gonedir": layerspec.WH(),
	}
	return [top, bottom], upper


# --- tests ----------------------------------------------------------------------------------------

class WTest:
	def __init__(self, name, fn, layers, kernel=True, readback=True, debug=False, timeout=60,
		     oracle_note=None, prepare=None, mount_opts="", binary_opts=""):
		self.name, self.fn, self.layers, self.prepare = name, fn, layers, prepare
		self.mount_opts, self.binary_opts = mount_opts, binary_opts
		self.kernel, self.readback, self.debug = kernel, readback, debug
		self.timeout, self.oracle_note = timeout, oracle_note


def wtest(name, layers=std_layers, **kw):
	"""Registers fn(env) as test `name`. layers: callable returning (lowers, upper).
	kernel=False: no kernel mount (the test asserts results itself); readback=False: skip the
	kernel read-back of the upper; debug: run the binary with -d (trace in env.daemon.log_path);
	prepare: callable(env) run after the layers are built, before mounting; timeout: seconds
	for the test body and finish (a watchdog then kills the daemon); mount_opts: more options
	for both mounts (generic ones: noatime, ...); binary_opts: options for the binary only."""
	def deco(fn):
		TESTS.append(WTest(name, fn, layers, **kw))
		return fn
	return deco


class DebugDaemon(mounts.Daemon):
	"""The binary in the foreground with -d: its stderr (the trace) goes to log_path."""

	def argv(self):
		return [self.binary, "-f", "-d", "-o", self.opts, self.mnt]


def kernel_mount(mnt, lowers, upper, work, opts):
	km = mounts.KernelMount(mnt, lowers, upper, work)
	km.opts += "," + opts
	km.mount()
	return km


def _settimes(root):
	"""Gives every entry under `root` the times T0 (mtime) and T0 + 1s (atime)."""
	for dirpath, dirs, files in os.walk(root, topdown=False):
		for n in dirs + files:
			os.utime(os.path.join(dirpath, n), ns=(T0 + 10**9, T0), follow_symlinks=False)
	os.utime(root, ns=(T0 + 10**9, T0))


class Env:
	def __init__(self, test, opts, base):
		self.test, self.opts, self.base = test, opts, base
		self.p, self.k, self.r = P(base, "p"), P(base, "k"), P(base, "r")
		self.pm, self.km = P(base, "pm"), P(base, "km")
		self.errs, self.notes = [], []
		self.daemon = self.kmount = None
		self.n_lower = 0

	# layout
	def lowers(self, side):
		return [P(side, "lower%d" % i) for i in range(self.n_lower)]

	def up(self, rel=""):
		"""The binary's raw upper layer (or a path in it)."""
		return P(self.p, "upper", rel) if rel else P(self.p, "upper")

	def kup(self, rel=""):
		return P(self.k, "upper", rel) if rel else P(self.k, "upper")

	def build(self):
		lowers, upper = self.test.layers()
		self.n_lower = len(lowers)
		names = ["lower%d" % i for i in range(len(lowers))] + ["upper"]
		for d in (self.p, self.k, self.pm, self.km, self.r):
			os.makedirs(d)
		kc = layerspec.KernelCopy()
		try:
			for name, spec in zip(names, list(lowers) + [upper]):
				src, dst = P(self.p, name), P(self.k, name)
				os.mkdir(src)
				layerspec.build_layer(src, spec or {})
				_settimes(src)
				if self.test.kernel:
					os.mkdir(dst)
					kc.copy(src, dst)
		finally:
			kc.close()
		os.mkdir(P(self.p, "work"))
		if self.test.kernel:
			os.mkdir(P(self.k, "work"))

	def start_daemon(self):
		cls = DebugDaemon if self.test.debug else mounts.Daemon
		self.daemon = cls(self.opts.binary, self.pm, self.lowers(self.p), self.up(),
				  P(self.p, "work"), logdir=P(self.base, "log"),
				  sanitizer=self.opts.sanitizer,
				  extra_opts=[o for o in (self.test.mount_opts, self.test.binary_opts) if o])
		self.daemon.start()
		return self.daemon

	def setup(self):
		self.build()
		if self.test.prepare:
			self.test.prepare(self)
		if self.test.kernel:
			opts = KERNEL_OPTS + ("," + self.test.mount_opts if self.test.mount_opts else "")
			self.kmount = kernel_mount(self.km, self.lowers(self.k), self.kup(),
						   P(self.k, "work"), opts)
		self.start_daemon()

	# operations
	def same(self, label, fn, *args, **kw):
		"""fn(root, *args, **kw) on the kernel mount, then on the binary's: equal outcomes.
		Returns the binary's outcome (an Out)."""
		rk = outcome(fn, self.km, *args, **kw) if self.kmount else None
		rp = outcome(fn, self.pm, *args, **kw)
		if rk is not None:
			self.errs.extend(diff_outcomes(label, rk, rp, self.relax()))
		return rp

	def same_look(self, label, *rels):
		for rel in rels:
			self.same("%s: %s" % (label, rel), lambda r, x: look(P(r, x)), rel)

	def expect(self, label, fn, expected, *args):
		"""fn(pm, *args) on the binary only must give `expected` (a value, or an errno name
		given as "E..."). For checks where kernel overlayfs is not a valid oracle."""
		rp = outcome(fn, self.pm, *args)
		want = (Out(expected, None) if isinstance(expected, str) and expected.startswith("E")
			else Out(None, expected))
		if rp != want:
			self.errs.append("%s: expected %r, binary gave %r" % (label, want, rp))
		return rp

	def same_expect(self, label, fn, expected, *args):
		"""env.same(), and the binary's outcome must also be `expected` (as in expect())."""
		rp = self.same(label, fn, *args)
		want = (Out(expected, None) if isinstance(expected, str) and expected.startswith("E")
			else Out(None, expected))
		if rp != want:
			self.errs.append(short("%s: expected %r, binary gave %r" % (label, want, rp)))
		return rp

	def check(self, cond, msg):
		if not cond:
			self.errs.append(msg)
		return cond

	# the end
	def relax(self):
		return set(self.opts.relax)

	def tree_diff(self, kroot, proot, what, ignore_xattrs=()):
		walks = []
		for side, root in (("kernel", kroot), ("binary", proot)):
			try:
				walks.append(compare.walk(root))
			except OSError as e:
				# e.g. readdir lists a name that lookup cannot find: under kernel
				# overlayfs, a whiteout left in a directory it treats as upper-only
				return ["%s: walking the %s side failed: %s: %s (readdir listed a name "
					"that cannot be looked up?)" % (what, side, type(e).__name__, e)]
		kw, pw = walks
		if ignore_xattrs:
			_drop_xattrs(pw, ignore_xattrs, self.notes, what)
		errs = compare.diff_records(kw, pw, self.relax())
		if "ino" not in self.relax():
			errs += compare.ino_partition_diff(kw, pw)
		return [short("%s: %s" % (what, e)) for e in errs]

	def finish(self):
		"""Compares the merged trees, unmounts, checks workdir/work, reads the uppers back."""
		if self.kmount:
			self.errs += self.tree_diff(self.km, self.pm, "merged tree")
		self.stop()
		self.check_workdir()
		if self.kmount and self.test.readback:
			self.readback()

	def stop(self):
		if self.daemon:
			self.errs.extend(self.daemon.cleanup())
			if self.opts.sanitizer:
				self.errs += ["sanitizer report " + r for r in self.daemon.sanitizer_reports()]
		if self.kmount:
			msg = self.kmount.cleanup()
			if msg:
				self.errs.append(msg)

	def check_workdir(self):
		w = P(self.p, "work", "work")
		left = sorted(os.listdir(w)) if os.path.isdir(w) else []
		self.check(not left, "binary's workdir/work not empty after unmount: %r" % left[:10])

	def readback(self):
		"""Both uppers, copied, under kernel overlayfs over the kernel's lowers."""
		roots = {}
		for side, src in (("k", self.kup()), ("p", self.up())):
			up, work, mnt = (P(self.r, side + x) for x in ("upper", "work", "mnt"))
			for d in (up, work, mnt):
				os.mkdir(d)
			kc = layerspec.KernelCopy()
			try:
				kc.copy(src, up)
			finally:
				kc.close()
			kernel_mount(mnt, self.lowers(self.k), up, work, READBACK_OPTS)
			roots[side] = mnt
		try:
			self.errs += self.tree_diff(roots["k"], roots["p"], "readback of the upper",
						    BOOKKEEPING_XATTRS)
		finally:
			mounts.cleanup_all()


def _drop_xattrs(walk, prefixes, notes, what):
	seen = set()
	for rec in walk.values():
		for n in list(rec.xattrs or {}):
			if n.startswith(prefixes):
				seen.add(n)
				del rec.xattrs[n]
	if seen:
		notes.append("%s: ignored the binary's bookkeeping xattrs %s"
			     % (what, b", ".join(sorted(seen)).decode(errors="replace")))


def run_test(test, opts, base):
	"""Runs one registered test; returns (errors, notes)."""
	env = Env(test, opts, P(base, test.name.replace("/", "_")))
	try:
		env.setup()
		with mounts.Watchdog(t(test.timeout), [env.daemon]):
			test.fn(env)
			env.finish()
	finally:
		mounts.cleanup_all()
		if not (opts.keep and env.errs):
			shutil.rmtree(env.base, ignore_errors=True)
	if test.oracle_note:
		env.notes.insert(0, test.oracle_note)
	return env.errs, env.notes


def now_ns():
	return time.time_ns()
