# SPDX-License-Identifier: GPL-2.0-or-later
"""stress_worker.py - one worker process of the stress test (stress.py): random operations on the
mount, counted by result, and the shared board through which the parent sees a hung operation.

A worker knows the tree only from what its own walks and operations saw, and all workers draw
names from one small pool (NAMES), so they collide on purpose: the errors such collisions explain
are in EXPECTED and only counted; anything else (EIO, ENOTCONN, other errnos) is kept as "bad".
"""

import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import random
import signal
import struct
import time
import traceback

# Names the workers create, rename to and remove: the layers' own names (so new entries land on
# lower names and whiteouts) and a few new ones.
NAMES = ["f1", "f2", "g", "h", "x", "y", "t", "k", "sub", "d", "deep", "both", "gone1", "gone_dir",
	 "old2", "big", "n0", "n1", "n2", "n3", "n4"]
XATTRS = ["user.k", "user.s0", "user.s1", "user.s2"]
MODES = [0o644, 0o600, 0o755, 0o640, 0o700, 0o444]
MAX_FILE = 1 << 20	# appends and truncates keep files below this
MAX_DEPTH = 12		# components of the deepest directory a worker aims at

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
			# Deeper directories are not aimed at (renames would nest the tree ever deeper,
			# and paths past PATH_MAX fail in the worker, not in the daemon).
			if len(self.dirs) < 300 and rel.count("/") < MAX_DEPTH:
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
			try:
				os.close(fd)
			except OSError as e:	# a dead connection, already counted
				self.judge("fd_close", (fd,), e.errno, errno.errorcode.get(e.errno, "?"))
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
			self.forget(src)
			self.forget(dst)
			if flags != RENAME_EXCHANGE:	# after an exchange, a walk tells what is where
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
