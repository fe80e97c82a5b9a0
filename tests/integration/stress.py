# SPDX-License-Identifier: GPL-2.0-or-later
"""stress.py - many workers at random on one mount while the caches drop; then the merged view
must equal kernel overlayfs' view of the same layers.

    stress.py BINARY [--seconds N] [--workers N] [--seed S] [--sanitizer] [-v]

Meant to be started by stress.sh (timeout, private mount and PID namespace). The run:

1. Two lowers (nested, merged and opaque directories, whiteouts, files of 0 bytes to 4 MiB, a
   sparse one, symlinks, user.* xattrs; no lower file with several names) and an empty upper, on
   a private tmpfs. Only the kernel's on-disk forms, because the kernel mounts these very layers.
2. BINARY mounted on them (`-f`, our child). WORKERS processes, each with its own seed, run random
   operations on the mount for --seconds (create, write/append, open for writing = copy-up,
   truncate, rename of files and of directories, lower ones included, also RENAME_NOREPLACE and
   RENAME_EXCHANGE, unlink, mkdir, rmdir, link, symlink, readdir walks, stat, read, user.* xattrs,
   chmod, fds held across other workers' operations). They share one small name pool, so they
   collide on purpose. Meanwhile a thread writes 3 to /proc/sys/vm/drop_caches every second (the
   whole machine's caches: accepted for this test).
3. Errors that collisions explain (ENOENT, EEXIST, ENOTEMPTY, ...; per op in EXPECTED) are only
   counted. EIO, ENOTCONN, any other errno, a worker that dies, a daemon that dies, and an
   operation that takes longer than OP_TIMEOUT seconds (a hang: the connection is then aborted,
   after checking the device mounted at our mount point is still ours, and the daemon killed by
   its PID) fail the run.
4. The workers stop; the merged view is walked (compare.py: names, types, modes, owners, sizes,
   sha256, symlink targets, user.* xattrs, nlink, access(), st_ino grouping), once warm and once
   after the caches are dropped; BINARY is unmounted, mounted again on the same layers and walked;
   unmounted; then kernel overlayfs (redirect_dir=on,index=on) is mounted on the same lowers,
   upper and workdir and walked. Each walk of BINARY must equal the kernel's.
5. With --sanitizer, both daemons run with ASAN_OPTIONS/UBSAN_OPTIONS log_path in their log
   directories (mounts.Daemon) and any report fails the run, as does a non-zero exit after umount.

Prints one PASS/FAIL line per check (stress/workers, stress/live-view, stress/cold-view,
stress/remount-view, stress/daemon-exit), notes with the op counts, and last "N passed, N failed".
"""

import argparse
import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import random
import shutil
import signal
import stat
import struct
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
import layerspec  # noqa: E402
import mounts  # noqa: E402
from layerspec import D, F, L, WH  # noqa: E402
from mounts import Failure, t  # noqa: E402

KERNEL_OPTS = "redirect_dir=on,index=on"
OP_TIMEOUT = 20		# seconds one operation may take (times mounts.SCALE) before it is a hang
DROP_EVERY = 1.0	# seconds between two writes to drop_caches
MAX_SHOWN = 20


class Interrupted(BaseException):
	pass


# --- the layers -----------------------------------------------------------------------------------

def _blob(seed, n):
	return random.Random("plyfs-stress-%d" % seed).randbytes(n)


def lowers_spec():
	"""[top, bottom] layerspec dicts. Whiteouts only in directories merged with one below (the
	only place overlayfs makes them); no hard links (issue 9's subject)."""
	bottom = {
		"a": D(xattrs={"user.k": "a-bottom"}),
		"a/f1": F(_blob(1, 100)),
		"a/f2": F(_blob(2, 8192), mode=0o600, xattrs={"user.k": "f2"}),
		"a/sub/g": F(_blob(3, 70000)),
		"a/sub/deep/h": "h\n",
		"a/sub/deep/deeper/i": F(_blob(4, 5000), mode=0o640),
		"b/big": F(_blob(5, 1 << 20)),
		"b/sparse": F(size=4 << 20, chunks=[(0, b"head"), (3 << 20, b"tail")]),
		"b/empty": "",
		"b/ln": L("big"),
		"m": D(xattrs={"user.m": "bottom"}),
		"m/lo_only": F(_blob(6, 300)),
		"m/both": F(_blob(7, 1000)),
		"m/d/x": F(_blob(8, 10)),
		"m/d/y": F(_blob(9, 20000), xattrs={"user.y": "1"}),
		"m/e/z": F(_blob(10, 1)),
		"o/old1": "old1\n",
		"o/old2/q": "q\n",
		"w/gone1": "gone1\n",
		"w/gone2": "gone2\n",
		"w/keep": "keep\n",
		"w/gone_dir/r": "r\n",
		"exe": F(_blob(11, 4096), mode=0o755),
		"sym": L("a/f1"),
	}
	top = {
		"a": D(),
		"a/sub": D(mode=0o750),
		"a/sub/top": F(_blob(12, 3000)),
		"m": D(xattrs={"user.m": "top"}),
		"m/top_only": F(_blob(13, 40)),
		"m/both": F(_blob(14, 2000)),
		"m/d/t": F(_blob(15, 123)),
		"m/d/x": WH(),
		"o": D(opaque="trusted"),
		"o/new": "new\n",
		"w": D(),
		"w/gone1": WH(),
		"w/gone_dir": WH(),
		"c/c1/c2/file": F(_blob(16, 65536)),
		"c/c1/k": F(_blob(17, 7)),
		"t_file": F(_blob(18, 500), xattrs={"user.t": "x"}),
	}
	return [top, bottom]


# Names the workers create, rename to and remove: the layers' own names (so new entries land on
# lower names and whiteouts) and a few new ones.
NAMES = ["f1", "f2", "g", "h", "x", "y", "t", "k", "sub", "d", "deep", "both", "gone1", "gone_dir",
	 "old2", "big", "n0", "n1", "n2", "n3", "n4"]
XATTRS = ["user.k", "user.s0", "user.s1", "user.s2"]
MODES = [0o644, 0o600, 0o755, 0o640, 0o700, 0o444]
MAX_FILE = 1 << 20	# appends and truncates keep files below this


# --- the worker -----------------------------------------------------------------------------------

# Errors that concurrent workers on the same names explain. EIO and ENOTCONN never are. ELOOP: a
# symlink made by op_symlink ("n0" -> "n0") met as a path component, or by O_NOFOLLOW.
COMMON = {errno.ENOENT, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOTEMPTY, errno.ELOOP}
EXPECTED = {
	"rename": COMMON | {errno.EINVAL},		# a directory into itself
	"rename_dir": COMMON | {errno.EINVAL},
	"link": COMMON | {errno.EPERM},			# the source turned out a directory
	"setxattr": COMMON | {errno.ENODATA, errno.EPERM},	# REPLACE of a missing one; symlinks
	"getxattr": COMMON | {errno.ENODATA, errno.EPERM},
	"removexattr": COMMON | {errno.ENODATA, errno.EPERM},
}
FATAL = {errno.EIO, errno.ENOTCONN, errno.ECONNABORTED}
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
			    ctypes.c_uint]


def renameat2(old, new, flags):
	if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
		e = ctypes.get_errno()
		raise OSError(e, os.strerror(e), old)


# The shared board: byte 0 is the stop flag the parent sets; then one slot per worker that the
# worker fills and the parent reads to spot a hung operation: ops done, the monotonic start of the
# running op (0: none) and what it is.
SLOT = 256
SLOT_HEAD = struct.Struct("<Qd")
BOARD_HEAD = 64


class Board:
	def __init__(self, n):
		self.mem = mmap.mmap(-1, BOARD_HEAD + n * SLOT)

	def stop(self):
		self.mem[0] = 1

	def stopped(self):
		return self.mem[0] == 1

	def begin(self, i, count, what):
		off = BOARD_HEAD + i * SLOT
		what = what.encode(errors="replace")[:SLOT - SLOT_HEAD.size - 1]
		self.mem[off + SLOT_HEAD.size:off + SLOT_HEAD.size + len(what) + 1] = what + b"\0"
		SLOT_HEAD.pack_into(self.mem, off, count, time.monotonic())

	def end(self, i, count):
		SLOT_HEAD.pack_into(self.mem, BOARD_HEAD + i * SLOT, count, 0.0)

	def read(self, i):
		off = BOARD_HEAD + i * SLOT
		count, started = SLOT_HEAD.unpack_from(self.mem, off)
		raw = self.mem[off + SLOT_HEAD.size:off + SLOT]
		return count, started, raw.split(b"\0", 1)[0].decode(errors="replace")


class Worker:
	"""Random operations on the mount at `root` until `end` or the board's stop flag. Knows the
	tree only from what its own walks and operations saw: stale knowledge makes collisions."""

	def __init__(self, idx, seed, root, board, end):
		self.idx, self.root, self.board, self.end = idx, root, board, end
		self.rng = random.Random("plyfs-stress-worker-%d-%d" % (seed, idx))
		self.dirs, self.files = {""}, set()
		self.fds = []		# [(fd, writable)] held across operations
		self.ops = 0
		self.counts = {}	# op -> {result: n}
		self.bad = []		# (op, args, errno name) of unexpected errors, the first ones
		self.nbad = 0
		self.fatal = False
		self.table = [
			(self.op_create, 10), (self.op_write, 10), (self.op_copyup, 6),
			(self.op_truncate, 4), (self.op_rename, 8), (self.op_rename_dir, 6),
			(self.op_unlink, 6), (self.op_mkdir, 5), (self.op_rmdir, 4), (self.op_link, 4),
			(self.op_symlink, 2), (self.op_walk, 6), (self.op_stat, 4), (self.op_read, 5),
			(self.op_setxattr, 5), (self.op_getxattr, 3), (self.op_removexattr, 2),
			(self.op_listxattr, 2), (self.op_chmod, 4), (self.op_fd_open, 3),
			(self.op_fd_use, 6), (self.op_fd_close, 3),
		]
		self.funcs = [f for f, _ in self.table]
		self.weights = [w for _, w in self.table]

	# paths
	def p(self, rel):
		return os.path.join(self.root, rel) if rel else self.root

	def any_dir(self):
		return self.rng.choice(sorted(self.dirs))

	def any_file(self):
		if self.files and self.rng.random() < 0.85:
			return self.rng.choice(sorted(self.files))
		return self.new_name()

	def any_entry(self):
		pool = sorted(self.files | (self.dirs - {""}))
		return self.rng.choice(pool) if pool else self.new_name()

	def new_name(self, d=None):
		d = self.any_dir() if d is None else d
		n = self.rng.choice(NAMES)
		return d + "/" + n if d else n

	def forget(self, rel):
		self.files.discard(rel)
		pre = rel + "/"
		self.dirs = {d for d in self.dirs if d != rel and not d.startswith(pre)} | {""}
		self.files = {f for f in self.files if not f.startswith(pre)}

	def saw(self, rel, is_dir):
		if is_dir:
			self.files.discard(rel)
			if len(self.dirs) < 300:
				self.dirs.add(rel)
		else:
			self.dirs.discard(rel)
			if len(self.files) < 600:
				self.files.add(rel)

	# running one op
	def run(self):
		self.do("walk", ("",), lambda: self.walk("", 6, 400))
		while not self.board.stopped() and time.monotonic() < self.end and not self.fatal:
			fn = self.rng.choices(self.funcs, self.weights)[0]
			fn()
		for fd, _ in self.fds:
			os.close(fd)
		self.fds = []

	def do(self, name, args, fn, paths=()):
		"""Runs fn() as op `name`, counts the result; on ENOENT/ENOTDIR forgets `paths`."""
		self.board.begin(self.idx, self.ops, "%s %r" % (name, args))
		try:
			r = fn()
			res = "ok"
		except OSError as e:
			r, res = None, errno.errorcode.get(e.errno, str(e.errno))
			self.judge(name, args, e.errno, res)
			if e.errno in (errno.ENOENT, errno.ENOTDIR):
				for x in paths:
					self.forget(x)
		finally:
			self.ops += 1
			self.board.end(self.idx, self.ops)
		c = self.counts.setdefault(name, {})
		c[res] = c.get(res, 0) + 1
		return res, r

	def judge(self, name, args, err, res):
		if err in FATAL:
			self.fatal = err in (errno.ENOTCONN, errno.ECONNABORTED)
		elif err in EXPECTED.get(name, COMMON):
			return
		self.nbad += 1
		if len(self.bad) < 10:
			self.bad.append("%s %r: %s" % (name, args, res))

	# the operations
	def op_create(self):
		rel = self.any_file() if self.rng.random() < 0.3 else self.new_name()
		flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | self.rng.choice(
			[0, os.O_EXCL, os.O_TRUNC, os.O_APPEND])
		data = self.rng.randbytes(self.rng.choice([0, 1, 100, 4096, 5000, 70000]))

		def fn():
			fd = os.open(self.p(rel), flags, self.rng.choice(MODES))
			try:
				if data:
					os.write(fd, data)
			finally:
				os.close(fd)
		if self.do("create", (rel, flags), fn, [rel])[0] == "ok":
			self.saw(rel, False)

	def op_write(self):
		rel = self.any_file()
		data = self.rng.randbytes(self.rng.choice([1, 10, 512, 4096, 9000]))
		append = self.rng.random() < 0.5
		off = self.rng.randrange(0, 1 << 17)

		def fn():
			fd = os.open(self.p(rel), os.O_WRONLY | os.O_NOFOLLOW | (os.O_APPEND if append else 0))
			try:
				if os.fstat(fd).st_size < MAX_FILE:
					if append:
						os.write(fd, data)
					else:
						os.pwrite(fd, data, off)
			finally:
				os.close(fd)
		self.do("write", (rel, append, off, len(data)), fn, [rel])

	def op_copyup(self):
		"""Open a file for writing and write nothing (or fsync it): only the copy-up."""
		rel = self.any_file()
		sync = self.rng.random() < 0.2

		def fn():
			fd = os.open(self.p(rel), os.O_RDWR | os.O_NOFOLLOW)
			try:
				os.read(fd, 100)
				if sync:
					os.fsync(fd)
			finally:
				os.close(fd)
		self.do("copyup", (rel, sync), fn, [rel])

	def op_truncate(self):
		rel = self.any_file()
		size = self.rng.choice([0, 1, 50, 4096, 100000, MAX_FILE - 1])

		def fn():
			fd = os.open(self.p(rel), os.O_WRONLY | os.O_NOFOLLOW)
			try:
				os.ftruncate(fd, size)
			finally:
				os.close(fd)
		self.do("truncate", (rel, size), fn, [rel])

	def _rename(self, name, src, dst):
		flags = self.rng.choice([0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE])
		is_dir = src in self.dirs
		res, _ = self.do(name, (src, dst, flags),
				 lambda: renameat2(self.p(src), self.p(dst), flags), [src])
		if res == "ok":
			if flags == RENAME_EXCHANGE:
				self.forget(src)
				self.forget(dst)
			else:
				self.forget(src)
				self.forget(dst)
				self.saw(dst, is_dir)

	def op_rename(self):
		src = self.any_entry()
		dst = self.any_file() if self.rng.random() < 0.3 else self.new_name()
		self._rename("rename", src, dst)

	def op_rename_dir(self):
		"""A directory (lower ones are in the pool from the start) within or across dirs."""
		src = self.rng.choice(sorted(self.dirs - {""}) or [self.new_name()])
		d = os.path.dirname(src) if self.rng.random() < 0.4 else self.any_dir()
		dst = self.new_name(d)
		self._rename("rename_dir", src, dst)

	def op_unlink(self):
		rel = self.any_file()
		if self.do("unlink", (rel,), lambda: os.unlink(self.p(rel)), [rel])[0] == "ok":
			self.forget(rel)

	def op_mkdir(self):
		rel = self.new_name()
		if self.do("mkdir", (rel,), lambda: os.mkdir(self.p(rel), self.rng.choice(
				[0o755, 0o700, 0o775])), [rel])[0] == "ok":
			self.saw(rel, True)

	def op_rmdir(self):
		rel = self.rng.choice(sorted(self.dirs - {""}) or [self.new_name()])
		if self.do("rmdir", (rel,), lambda: os.rmdir(self.p(rel)), [rel])[0] == "ok":
			self.forget(rel)

	def op_link(self):
		src, dst = self.any_file(), self.new_name()
		if self.do("link", (src, dst), lambda: os.link(self.p(src), self.p(dst),
							       follow_symlinks=False), [src])[0] == "ok":
			self.saw(dst, False)

	def op_symlink(self):
		dst, target = self.new_name(), self.rng.choice(NAMES)
		if self.do("symlink", (target, dst), lambda: os.symlink(target, self.p(dst)),
			   [dst])[0] == "ok":
			self.saw(dst, False)

	def walk(self, rel, depth, budget):
		"""Lists `rel` and below (lstat of every entry); returns the entries left in budget."""
		with os.scandir(self.p(rel)) as it:
			ents = list(it)
		for e in ents:
			if budget <= 0:
				break
			budget -= 1
			sub = rel + "/" + e.name if rel else e.name
			is_dir = e.is_dir(follow_symlinks=False)
			e.stat(follow_symlinks=False)
			self.saw(sub, is_dir)
			if is_dir and depth > 0:
				try:
					budget = self.walk(sub, depth - 1, budget)
				except FileNotFoundError:
					self.forget(sub)
		return budget

	def op_walk(self):
		rel = self.any_dir() if self.rng.random() < 0.8 else ""
		self.do("walk", (rel,), lambda: self.walk(rel, 3, 80), [rel])

	def op_stat(self):
		rel = self.any_entry()
		self.do("stat", (rel,), lambda: os.lstat(self.p(rel)), [rel])

	def op_read(self):
		rel = self.any_file()

		def fn():
			fd = os.open(self.p(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
			try:
				while os.read(fd, 1 << 16):
					pass
			finally:
				os.close(fd)
		self.do("read", (rel,), fn, [rel])

	def op_setxattr(self):
		rel = self.any_entry() if self.rng.random() < 0.9 else ""
		name = self.rng.choice(XATTRS)
		value = self.rng.randbytes(self.rng.choice([0, 1, 16, 200]))
		flags = self.rng.choice([0, 0, os.XATTR_CREATE, os.XATTR_REPLACE])
		self.do("setxattr", (rel, name, flags), lambda: os.setxattr(
			self.p(rel), name, value, flags, follow_symlinks=False), [rel])

	def op_getxattr(self):
		rel = self.any_entry()
		name = self.rng.choice(XATTRS)
		self.do("getxattr", (rel, name), lambda: os.getxattr(self.p(rel), name,
								  follow_symlinks=False), [rel])

	def op_removexattr(self):
		rel = self.any_entry()
		name = self.rng.choice(XATTRS)
		self.do("removexattr", (rel, name), lambda: os.removexattr(
			self.p(rel), name, follow_symlinks=False), [rel])

	def op_listxattr(self):
		rel = self.any_entry()
		self.do("listxattr", (rel,), lambda: os.listxattr(self.p(rel), follow_symlinks=False),
			[rel])

	def op_chmod(self):
		rel = self.any_entry() if self.rng.random() < 0.95 else ""
		mode = self.rng.choice(MODES)
		if rel in self.dirs:
			mode |= 0o700
		self.do("chmod", (rel, oct(mode)), lambda: os.chmod(self.p(rel), mode), [rel])

	def op_fd_open(self):
		"""An fd kept open while other workers rename, unlink and copy up its file."""
		if len(self.fds) >= 3:
			return
		rel = self.any_file()
		writable = self.rng.random() < 0.4
		flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW | os.O_NONBLOCK
		res, fd = self.do("fd_open", (rel, writable), lambda: os.open(self.p(rel), flags), [rel])
		if res == "ok":
			self.fds.append((fd, writable))

	def op_fd_use(self):
		if not self.fds:
			return
		fd, writable = self.rng.choice(self.fds)
		what = self.rng.choice(["pread", "fstat"] + ["pwrite", "ftruncate", "fsync"] * writable)
		off = self.rng.randrange(0, 1 << 16)

		def fn():
			if what == "pread":
				os.pread(fd, 4096, off)
			elif what == "fstat":
				os.fstat(fd)
			elif what == "pwrite":
				os.pwrite(fd, self.rng.randbytes(100), off)
			elif what == "ftruncate":
				os.ftruncate(fd, off)
			else:
				os.fsync(fd)
		self.do("fd_" + what, (fd,), fn)

	def op_fd_close(self):
		if self.fds:
			fd, _ = self.fds.pop(self.rng.randrange(len(self.fds)))
			os.close(fd)

	def result(self):
		return {"ops": self.ops, "counts": self.counts, "bad": self.bad, "nbad": self.nbad}


def worker_main(idx, seed, root, board, end, out_path):
	"""The body of a forked worker process: never returns."""
	signal.signal(signal.SIGTERM, signal.SIG_DFL)
	signal.signal(signal.SIGINT, signal.SIG_DFL)
	code = 0
	w = Worker(idx, seed, root, board, end)
	t0 = time.monotonic()
	try:
		w.run()
		res = w.result()
	except BaseException as e:  # noqa: B902 - reported, never propagated out of the child
		res = w.result()
		res["crash"] = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=6))
		code = 1
	res["seconds"] = time.monotonic() - t0
	try:
		with open(out_path, "w") as f:
			json.dump(res, f)
	finally:
		os._exit(code)


# --- the run --------------------------------------------------------------------------------------

class StressDaemon(mounts.Daemon):
	"""mounts.Daemon whose hard stop aborts the FUSE connection only while the device mounted at
	our mount point is still the one we mounted (a reused minor number must not abort someone
	else's connection); it kills the daemon by its PID either way."""

	def kill(self):
		if self.dev is not None and mounts.mount_dev(self.mnt) == self.dev:
			mounts.fuse_abort(self.dev)
		if self.proc is not None and self.proc.poll() is None:
			self.proc.kill()
		mounts.run(["umount", "-l", self.mnt], 30, check=False)


class Dropper(threading.Thread):
	"""Writes 3 to /proc/sys/vm/drop_caches every DROP_EVERY seconds until stopped."""

	def __init__(self):
		super().__init__(daemon=True)
		self.halt = threading.Event()
		self.drops, self.slowest, self.error = 0, 0.0, None

	def run(self):
		while not self.halt.wait(DROP_EVERY):
			t0 = time.monotonic()
			try:
				drop_caches()
			except OSError as e:
				self.error = str(e)
				return
			self.drops += 1
			self.slowest = max(self.slowest, time.monotonic() - t0)


def drop_caches():
	with open("/proc/sys/vm/drop_caches", "w") as f:
		f.write("3")


class Run:
	def __init__(self, opts, base):
		self.opts, self.base = opts, base
		self.lowers = [os.path.join(base, "lower%d" % i) for i in range(2)]
		self.upper, self.work = os.path.join(base, "upper"), os.path.join(base, "work")
		self.pm, self.km = os.path.join(base, "pm"), os.path.join(base, "km")
		self.results = {}	# check name -> (errors, notes)
		self.notes = []

	def build(self):
		for d, spec in zip(self.lowers, lowers_spec()):
			os.mkdir(d)
			layerspec.build_layer(d, spec)
		for d in (self.upper, self.work, self.pm, self.km):
			os.mkdir(d)

	def daemon(self, logname):
		return StressDaemon(self.opts.binary, self.pm, self.lowers, self.upper, self.work,
				    logdir=os.path.join(self.base, logname), sanitizer=self.opts.sanitizer)

	# phase 2-3: the workers
	def storm(self, daemon):
		"""Runs the workers and the dropper; returns the errors of the storm."""
		n, board = self.opts.workers, Board(self.opts.workers)
		end = time.monotonic() + self.opts.seconds
		outs = [os.path.join(self.base, "worker%d.json" % i) for i in range(n)]
		pids = {}
		for i in range(n):
			pid = os.fork()
			if pid == 0:
				worker_main(i, self.opts.seed, self.pm, board, end, outs[i])
			pids[pid] = i
		dropper = Dropper()
		dropper.start()
		errs, status = [], {}
		try:
			errs += self.watch(daemon, board, pids, status, end)
		finally:
			board.stop()
			dropper.halt.set()
			errs += self.reap_workers(daemon, board, pids, status)
			dropper.join(t(OP_TIMEOUT))
		if dropper.error:
			errs.append("writing drop_caches failed: %s" % dropper.error)
		self.notes.append("caches dropped %d times, the slowest drop took %.1fs"
				  % (dropper.drops, dropper.slowest))
		errs += self.worker_results(outs, status)
		return errs

	def hung(self, board, n):
		limit, now = t(OP_TIMEOUT), time.monotonic()
		out = []
		for i in range(n):
			_, started, what = board.read(i)
			if started and now - started > limit:
				out.append("worker %d: no answer for %.0fs to %s" % (i, now - started, what))
		return out

	def watch(self, daemon, board, pids, status, end):
		"""Until `end`: the daemon must live, no op may hang, no worker may exit early."""
		while time.monotonic() < end:
			time.sleep(0.5)
			if daemon.proc.poll() is not None:
				return ["the daemon died (exit %d) during the run: %s"
					% (daemon.proc.returncode, daemon.log_tail(800))]
			stuck = self.hung(board, len(pids))
			if stuck:
				daemon.kill()
				return ["hung operation (connection aborted, daemon killed): " + s
					for s in stuck]
			for pid in list(pids):
				if pid in status:
					continue
				r, st = os.waitpid(pid, os.WNOHANG)
				if r:
					status[pid] = st
					if os.waitstatus_to_exitcode(st) != 0:
						return ["worker %d exited %d before the end"
							% (pids[pid], os.waitstatus_to_exitcode(st))]
		return []

	def reap_workers(self, daemon, board, pids, status):
		"""Waits for the workers to finish their op (each bounded by OP_TIMEOUT); a worker still
		in an op past that is a hang: the daemon is killed, then the worker."""
		errs, deadline, killed = [], time.monotonic() + t(OP_TIMEOUT) + 5, False
		while len(status) < len(pids):
			for pid in pids:
				if pid not in status:
					r, st = os.waitpid(pid, os.WNOHANG)
					if r:
						status[pid] = st
			if len(status) == len(pids):
				break
			if time.monotonic() > deadline:
				if not killed:
					errs += ["hung operation at the end (connection aborted, daemon "
						 "killed): " + s for s in self.hung(board, len(pids))]
					if not errs:
						errs.append("workers did not stop within %.0fs"
							    % (t(OP_TIMEOUT) + 5))
					daemon.kill()
					killed, deadline = True, time.monotonic() + 15
				else:
					for pid in pids:
						if pid not in status:
							os.kill(pid, signal.SIGKILL)
							_, st = os.waitpid(pid, 0)
							status[pid] = st
			time.sleep(0.05)
		return errs

	def worker_results(self, outs, status):
		errs, total, counts = [], 0, {}
		per = []
		for i, path in enumerate(outs):
			try:
				with open(path) as f:
					r = json.load(f)
			except (OSError, ValueError):
				errs.append("worker %d left no result" % i)
				continue
			if "crash" in r:
				errs.append("worker %d crashed: %s" % (i, r["crash"]))
			if r["nbad"]:
				errs.append("worker %d: %d unexpected errors, first: %s"
					    % (i, r["nbad"], "; ".join(r["bad"][:5])))
			total += r["ops"]
			per.append("%d (%.0f/s)" % (r["ops"], r["ops"] / max(r["seconds"], 0.001)))
			for op, c in r["counts"].items():
				agg = counts.setdefault(op, {})
				for k, v in c.items():
					agg[k] = agg.get(k, 0) + v
		self.notes.append("%d ops in %ds; per worker: %s" % (total, self.opts.seconds,
								      ", ".join(per)))
		for op in sorted(counts):
			c = counts[op]
			self.notes.append("  %-12s %s" % (op, " ".join(
				"%s=%d" % (k, c[k]) for k in sorted(c, key=lambda k: (k != "ok", k)))))
		return errs

	# phase 4: the views
	def walk_plyfs(self, daemon, what):
		try:
			with mounts.Watchdog(t(120), [daemon]):
				return compare.walk(self.pm), []
		except (OSError, Failure) as e:
			return None, ["walking the %s view failed: %s" % (what, e)]

	def kernel_walk(self):
		km = mounts.KernelMount(self.km, self.lowers, self.upper, self.work)
		base_opts = km.opts
		km.opts = base_opts + "," + self.opts.kernel_opts
		try:
			km.mount()
		except Failure as e:
			why = kernel_log_tail()
			if "index=on" not in self.opts.kernel_opts:
				raise
			self.notes.append("kernel overlayfs refused %s on the binary's layers (%s; kernel "
					  "log: %s); compared with index=off instead"
					  % (self.opts.kernel_opts, e, why))
			km.opts = base_opts + "," + self.opts.kernel_opts.replace("index=on", "index=off")
			km.mount()
		try:
			return compare.walk(self.km)
		finally:
			msg = km.cleanup()
			if msg:
				raise Failure(msg)

	def check(self, name, errs, notes=()):
		self.results[name] = (errs, list(notes))


def upper_summary(upper):
	"""What the run left in the upper layer, to show the compared trees are not trivial."""
	n = wh = redirects = opaque = 0
	for d, dirs, files in os.walk(upper):
		for name in dirs + files:
			p = os.path.join(d, name)
			st = os.lstat(p)
			n += 1
			if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
				wh += 1
			if stat.S_ISDIR(st.st_mode):
				names = os.listxattr(p)
				redirects += "trusted.overlay.redirect" in names
				opaque += "trusted.overlay.opaque" in names
	return "upper: %d entries, %d whiteouts, %d redirected and %d opaque dirs" % (
		n, wh, redirects, opaque)


def view_summary(k):
	kinds = {}
	for r in k.values():
		kinds[r.type] = kinds.get(r.type, 0) + 1
	return "kernel's final view: %d entries (%s)" % (len(k), ", ".join(
		"%s %d" % (x, kinds[x]) for x in sorted(kinds)))


def kernel_log_tail():
	cp = mounts.run(["dmesg"], 30, check=False)
	lines = [x for x in cp.stdout.decode(errors="replace").splitlines() if "overlay" in x]
	return " | ".join(lines[-3:]) or "nothing about overlayfs"


def tree_diff(k, p):
	return compare.diff_records(k, p) + compare.ino_partition_diff(k, p)


def run_all(opts, base):
	"""The whole test; returns ([(check, errors, notes)] in order, notes)."""
	r = Run(opts, base)
	r.build()
	views, problems, daemons = {}, [], []
	d1 = r.daemon("log-live")
	daemons.append(d1)
	d1.start()
	r.check("stress/workers", r.storm(d1))
	alive = d1.proc.poll() is None
	if alive:
		views["live"], e = r.walk_plyfs(d1, "live")
		drop_caches()
		views["cold"], e2 = r.walk_plyfs(d1, "cold")
		problems += e + e2
	problems += d1.cleanup()
	if alive:
		d2 = r.daemon("log-remount")
		daemons.append(d2)
		d2.start()
		views["remount"], e = r.walk_plyfs(d2, "remount")
		problems += e + d2.cleanup()
	k, why = None, "the daemon died or hung during the run"
	if alive:
		try:
			k = r.kernel_walk()
		except (Failure, OSError) as e:
			why = "kernel overlayfs on the same layers failed: %s" % e
		r.notes.append(upper_summary(r.upper))
		if k is not None:
			r.notes.append(view_summary(k))
	for name in ("live", "cold", "remount"):
		label = "stress/%s-view" % name
		if k is None:
			r.check(label, ["not compared: " + why])
		elif views.get(name) is None:
			r.check(label, ["not compared: the %s view could not be walked" % name])
		else:
			r.check(label, tree_diff(k, views[name]))
	reports = []
	if opts.sanitizer:
		for d in daemons:
			reports += d.sanitizer_reports()
	r.check("stress/daemon-exit", problems + ["sanitizer report " + x for x in reports])
	return [(n, e, ns) for n, (e, ns) in r.results.items()], r.notes


def report(name, errs, verbose_notes=()):
	if not errs:
		print("PASS %s" % name)
	else:
		more = " (+%d more)" % (len(errs) - 1) if len(errs) > 1 else ""
		print("FAIL %s: %s%s" % (name, errs[0].splitlines()[0], more))
		for e in errs[:MAX_SHOWN]:
			for line in e.splitlines():
				print("    " + line)
		if len(errs) > MAX_SHOWN:
			print("    ... %d more" % (len(errs) - MAX_SHOWN))
	for n in verbose_notes:
		print("    note: " + n)
	sys.stdout.flush()


def parse_args(argv):
	ap = argparse.ArgumentParser(prog="stress.sh", description=__doc__,
				     formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("binary", help="the overlay daemon under test")
	ap.add_argument("--seconds", type=int, default=120, help="length of the storm (default 120)")
	ap.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
	ap.add_argument("--seed", type=int, default=None,
			help="seed of the workers (default: from the clock; printed)")
	ap.add_argument("--sanitizer", action="store_true",
			help="the binary is built with ASan/UBSan: collect and fail on reports")
	ap.add_argument("--kernel-opts", default=KERNEL_OPTS,
			help="options of the kernel overlayfs mount (default %(default)s)")
	o = ap.parse_args(argv)
	o.binary = os.path.abspath(o.binary)
	if o.seed is None:
		o.seed = int(time.time()) % 100000
	return o


def main(argv):
	opts = parse_args(argv)
	if os.environ.get("PLYFS_IT_NS") != "1":
		print("stress.py: start me through stress.sh (private mount namespace)", file=sys.stderr)
		return 2
	if not os.access(opts.binary, os.X_OK):
		print("stress.py: %s is not an executable" % opts.binary, file=sys.stderr)
		print("0 passed, 1 failed")
		return 1
	if opts.sanitizer:
		mounts.SCALE = 3.0
	signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Interrupted()))
	os.umask(0o022)
	print("# stress: %s, %d workers, %ds, seed %d (--seed %d repeats the workers' choices, not "
	      "their timing)" % (opts.binary, opts.workers, opts.seconds, opts.seed, opts.seed))
	sys.stdout.flush()
	base = tempfile.mkdtemp(prefix="plyfs-stress.", dir=os.environ.get("TMPDIR", "/tmp"))
	# Only in our private namespace: it disappears with the run whatever happens.
	mounts.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "plyfs-stress", base], 30)
	results, notes = [], []
	t0 = time.monotonic()
	try:
		results, notes = run_all(opts, base)
	except (Interrupted, KeyboardInterrupt):
		results = [("stress/run", ["interrupted"], [])]
	except Failure as e:
		results = [("stress/run", [str(e)], [])]
	except Exception as e:	# a harness error is a failure, with its trace
		results = [("stress/run", ["%s: %s" % (type(e).__name__, e)] +
			    traceback.format_exc(limit=8).splitlines(), [])]
	finally:
		leftovers = mounts.cleanup_all()
		mounts.umount(base)
		shutil.rmtree(base, ignore_errors=True)
	if leftovers:
		results.append(("stress/cleanup", ["cleanup: " + x for x in leftovers], []))
	for n in notes:
		print("# " + n)
	passed = failed = 0
	for name, errs, ns in results:
		report(name, errs, ns)
		passed, failed = passed + (not errs), failed + bool(errs)
	print("# total %.0fs" % (time.monotonic() - t0))
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
