# SPDX-License-Identifier: GPL-2.0-or-later
"""handles.py - file handles within one mount (FUSE export support): name_to_handle_at, the kernel
made to forget the inodes (drop_caches), then open_by_handle_at must give the same file (st_ino,
content) or ESTALE for a deleted or replaced one. Handles across remounts and a killed daemon, and
what the daemon may do to the workdir after umount(2), are the remount_* and umount_* tests.

Each test builds its own layers (two lowers and an upper, std_layers()), mounts the binary in the
foreground as a child it owns (lifecycle.start_foreground: registered in mounts.ACTIVE, killed
by PID, sanitizer logs in the test's log dir), and bounds every use of the mount with a Watchdog.

That the kernel really forgot an inode is checked through the daemon's answers, not assumed: the
binary hands the kernel a one-day attribute timeout (timeout=, 86400 s by default), so a cached
inode keeps the attributes it had. Before dropping the caches each target is stat()ed through
the mount (its attributes are then valid in the kernel), and the mtime of the file backing it in
its layer is set, behind the daemon's back, to a value of its own. A decoded fd whose first
fstat() shows that value was looked up anew (LOOKUP(nodeid, ".")): its inode had been evicted.
(A read, write or readdir through the mount invalidates some cached attributes, so the stat()
comes after all of them.) The root inode is never evicted by the kernel: not checked for it.

Cases: the root, lower files and dirs (both lowers), upper-only ones; a file copied up before and
after its handle was taken (also after it was forgotten and found again by path); renames in a
dir, across dirs, RENAME_EXCHANGE, of the parent dir (before or after the child was forgotten);
deleted, and deleted-then-recreated files (ESTALE; a control handle must still decode); a hard
link whose other name was unlinked; a deep lower dir decoded after all its ancestors were
forgotten creating a file that lands in the upper; LOOPS decode/drop rounds.
"""

import ctypes
import errno
import hashlib
import itertools
import json
import os
import shutil
import stat
import struct
import subprocess
import time
import sys

import layerspec
import lifecycle
import mounts
from layerspec import D
from mounts import Failure, t

MAX_HANDLE_SZ = 128
AT_FDCWD = -100
LOOPS = 50


class FileHandle(ctypes.Structure):
	_fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
		    ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(FileHandle),
				    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.POINTER(FileHandle), ctypes.c_int]
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
			    ctypes.c_uint]


class Ctx(lifecycle.Ctx):
	"""lifecycle.Ctx (process tracking, sanitizer logs, cleanup) in base/handles/NAME; `daemon`
	is the DaemonHandle of mount()."""
	GROUP = "handles"


# --- the layers -----------------------------------------------------------------------------------

def std_layers():
	"""(lower0 spec, lower1 spec, upper spec). `a` is merged (l0 and l1), a/b/c only in l1."""
	l0 = {
		"f0": "f0 in lower0\n",
		"ldir": D(),
		"ldir/inner": "inner of ldir\n",
		"a": D(),
		"a/only0": "a/only0\n",
		"rd/x": "x in rd\n",
		"rd/y": "y in rd\n",
		"cu": "cu before copy-up\n",
		"cb": "cb before copy-up\n",
		"mv": "mv content\n",
		"mv2": "mv2 content\n",
		"dst": D(),
		"del": "to be deleted\n",
		"rep": "to be replaced\n",
	}
	l1 = {
		"f0": "shadowed by lower0\n",
		"f1": "f1 in lower1\n",
		"a/b/c/deep": "deep in lower1\n",
		"loop": "the loop file\n",
	}
	up = {
		"uf": "upper-only file\n",
		"ud/uinner": "in the upper-only dir\n",
		"udel": "upper file to be deleted\n",
	}
	return l0, l1, up


def mount(ctx, extra=""):
	"""Builds the layers and mounts the binary on ctx.path("mnt"); returns the DaemonHandle."""
	for d, spec in zip(("l0", "l1", "u"), std_layers()):
		os.makedirs(ctx.path(d))
		layerspec.build_layer(ctx.path(d), spec)
	for d in ("w", "mnt"):
		os.makedirs(ctx.path(d))
	return mount_built(ctx, extra=extra)


def mount_built(ctx, lowers=("l0", "l1"), extra=""):
	"""Mounts the layers built by mount() (lowers in the given order) on ctx.path("mnt"), with
	`extra` options (",opt=..." appended)."""
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s%s" % (
		":".join(ctx.path(x) for x in lowers), ctx.path("u"), ctx.path("w"), extra)
	ctx.daemon = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	return ctx.daemon


def unmount_clean(h):
	"""umount, and the daemon exits 0 (having written its handle store); raises Failure."""
	errs = lifecycle.settle(h) + h.cleanup()
	if not errs and h.returncode() != 0:
		errs.append("daemon exited %r after umount: %s" % (h.returncode(), h.log_tail()))
	if errs:
		raise Failure("; ".join(errs))


# --- handles --------------------------------------------------------------------------------------

def encode(path):
	"""name_to_handle_at(path) -> FileHandle; raises Failure."""
	fh = FileHandle()
	fh.handle_bytes = MAX_HANDLE_SZ
	mount_id = ctypes.c_int()
	if _libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(fh),
				   ctypes.byref(mount_id), 0) != 0:
		e = ctypes.get_errno()
		raise Failure("name_to_handle_at(%s): %s" % (path, os.strerror(e)))
	return fh


def describe(fh):
	"""The handle for messages. FUSE types 0x81/0x82: (nodeid hi, nodeid lo, generation)."""
	raw = bytes(fh.f_handle[:fh.handle_bytes])
	if fh.handle_type in (0x81, 0x82) and len(raw) >= 12:
		w = [int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8)]
		return "handle type %#x nodeid %d generation %d" % (fh.handle_type,
								     w[0] << 32 | w[1], w[2])
	return "handle type %#x bytes %s" % (fh.handle_type, raw.hex())


def decode(mount_fd, fh, flags):
	"""open_by_handle_at -> fd; raises OSError."""
	copy = FileHandle.from_buffer_copy(fh)
	fd = _libc.open_by_handle_at(mount_fd, ctypes.byref(copy), flags)
	if fd < 0:
		e = ctypes.get_errno()
		raise OSError(e, os.strerror(e))
	return fd


def drop_caches(ctx):
	"""Twice: the first pass can free dentries whose parents only become unused by it. First the
	connection must be idle: the kernel holds a closed file's inode until the daemon answers its
	RELEASE (sent in the background), and an inode held during the drop is not evicted."""
	problems = lifecycle.settle(ctx.daemon)
	if problems:
		raise Failure(problems[0])
	for _ in range(2):
		with open("/proc/sys/vm/drop_caches", "w") as f:
			f.write("3")


def content_of(path_or_fd, is_dir):
	"""Sorted names of a directory, or all the bytes of a file (pread from 0 for an fd)."""
	if is_dir:
		return sorted(os.listdir(path_or_fd))
	if isinstance(path_or_fd, int):
		out, off = b"", 0
		while True:
			chunk = os.pread(path_or_fd, 65536, off)
			if not chunk:
				return out
			out, off = out + chunk, off + len(chunk)
	with open(path_or_fd, "rb") as f:
		return f.read()


class Taken:
	"""A handle and what the decoded fd must show: st_ino and content (recorded when the handle
	was taken; `want` may be changed by the test, e.g. after a write)."""

	def __init__(self, ctx, rel):
		self.rel = rel
		path = ctx.path("mnt/" + rel) if rel else ctx.path("mnt")
		st = os.lstat(path)
		self.is_dir = stat.S_ISDIR(st.st_mode)
		self.ino = st.st_ino
		self.want = content_of(path, self.is_dir)
		self.fh = encode(path)
		self.stamp = None	# the mtime set on the backing file before forgetting

	def label(self):
		return "%s (%s)" % (self.rel or "/", describe(self.fh))


STAMP_BASE = 1_500_000_000
_stamps = itertools.count(STAMP_BASE)	# whole seconds, distinct within the run


def backing(ctx, now, lower=None):
	"""The file behind mount path `now`: the upper's if there is one, else the first lower
	holding `lower` (default: the same path)."""
	for p in ("u/" + now, "l0/" + (lower or now), "l1/" + (lower or now)):
		if os.path.lexists(ctx.path(p)):
			return ctx.path(p)
	raise Failure("setup: nothing backs %s in the layers" % now)


def prepare_forget(ctx, items):
	"""items: [(Taken, path in the mount now, backing path in its layer now)]. Makes the
	kernel's attributes of each valid, then gives each backing file its own mtime (see the
	module doc), then drops the caches."""
	for tk, now, path in items:
		os.stat(ctx.path("mnt/" + now))
		tk.stamp = next(_stamps) * 10**9
		os.utime(path, ns=(tk.stamp, tk.stamp), follow_symlinks=False)
	drop_caches(ctx)


def open_mount_root(ctx):
	return os.open(ctx.path("mnt"), os.O_RDONLY | os.O_DIRECTORY)


def check_decoded(mfd, tk):
	"""Decodes `tk`: same st_ino, same content, and (when stamped) proof of a fresh inode."""
	flags = os.O_RDONLY | (os.O_DIRECTORY if tk.is_dir else 0)
	try:
		fd = decode(mfd, tk.fh, flags)
	except OSError as e:
		return ["%s: open_by_handle_at failed: %s (errno %d)"
			% (tk.label(), errno.errorcode.get(e.errno, "?"), e.errno)]
	try:
		st = os.fstat(fd)	# first, before anything invalidates cached attributes
		errs = []
		if tk.stamp is not None and st.st_mtime_ns != tk.stamp:
			errs.append("%s: the decoded inode shows mtime %d, its backing file %d: "
				    "the kernel did not forget it (test premise), or the daemon "
				    "answers stale attributes" % (tk.label(), st.st_mtime_ns,
								   tk.stamp))
		if st.st_ino != tk.ino:
			errs.append("%s: decoded fd has st_ino %d, expected %d"
				    % (tk.label(), st.st_ino, tk.ino))
		if stat.S_ISDIR(st.st_mode) != tk.is_dir:
			errs.append("%s: decoded fd has mode %o" % (tk.label(), st.st_mode))
		got = content_of(fd, tk.is_dir)
		# The read invalidated the cached atime: fetch the attributes again, so that if the
		# kernel kept this inode through the next drop, its stale mtime would show.
		os.fstat(fd)
		if got != tk.want:
			errs.append("%s: decoded fd reads %r, expected %r"
				    % (tk.label(), got, tk.want))
		return errs
	finally:
		os.close(fd)


def check_stale(mfd, tk, what):
	try:
		fd = decode(mfd, tk.fh, os.O_RDONLY)
	except OSError as e:
		if e.errno == errno.ESTALE:
			return []
		return ["%s (%s): open_by_handle_at failed with %s (errno %d), expected ESTALE"
			% (tk.label(), what, errno.errorcode.get(e.errno, "?"), e.errno)]
	try:
		st = os.fstat(fd)
		got = content_of(fd, stat.S_ISDIR(st.st_mode))
	finally:
		os.close(fd)
	return ["%s (%s): open_by_handle_at succeeded (st_ino %d, content %r), expected ESTALE"
		% (tk.label(), what, st.st_ino, got)]


def stale_and_control(ctx, tk, what, control=None):
	"""`tk` must decode to ESTALE (it is `what`) and `control`, if any, to its file."""
	mfd = open_mount_root(ctx)
	try:
		return check_stale(mfd, tk, what) + (check_decoded(mfd, control) if control else [])
	finally:
		os.close(mfd)


def with_mount(body, limit=30):
	"""Runs body(ctx, h) on a fresh mount under a watchdog (`limit` seconds: a hang guard, not a
	speed test), then settles and unmounts."""
	def run(ctx):
		h = mount(ctx)
		with mounts.Watchdog(t(limit), [h]):
			errs = body(ctx, h)
			errs += lifecycle.settle(h)
		return errs + h.cleanup()
	return run


def decode_all(ctx, taken):
	"""check_decoded() of each Taken, through one fd of the mount root."""
	mfd = open_mount_root(ctx)
	try:
		return [e for tk in taken for e in check_decoded(mfd, tk)]
	finally:
		os.close(mfd)


def forget_checked(ctx, items):
	"""prepare_forget(), then a lookup by path of each: it must show the new stamp (the kernel
	forgot the inode). The node is found again by that lookup: it must get its old nodeid back,
	or the handle would name a record nothing matches any more."""
	prepare_forget(ctx, items)
	errs = []
	for tk, now, _ in items:
		st = os.stat(ctx.path("mnt/" + now))
		if st.st_mtime_ns != tk.stamp:
			errs.append("%s: mtime %d after dropping the caches, its backing file %d: "
				    "not forgotten (test premise)"
				    % (now, st.st_mtime_ns, tk.stamp))
	return errs


def simple(targets):
	"""Handles of `targets` (path in the mount, backing layer path relative to the test dir, or
	None for the root), nothing changed; all decoded after the caches are dropped."""
	def body(ctx, h):
		taken = [(Taken(ctx, rel), rel, backing) for rel, backing in targets]
		prepare_forget(ctx, [(tk, now, ctx.path(b)) for tk, now, b in taken if b])
		return decode_all(ctx, [tk for tk, _, _ in taken])
	return with_mount(body)


# --- the tests ------------------------------------------------------------------------------------

def copied_up_after(forget_first):
	"""The handle of a lower file (forgotten and found again by path first, with
	`forget_first`), then a write through a normal open (copy-up): the decoded fd reads the new
	data (longer than the old, so a stale size shows too)."""
	def body(ctx, h):
		tk = Taken(ctx, "cu")
		errs = forget_checked(ctx, [(tk, "cu", backing(ctx, "cu"))]) if forget_first else []
		new = b"cu AFTER copy-up, through a plain open, longer than before\n"
		fd = os.open(ctx.path("mnt/cu"), os.O_WRONLY | os.O_TRUNC)
		try:
			os.write(fd, new)
		finally:
			os.close(fd)
		if not os.path.isfile(ctx.path("u/cu")):
			return errs + ["setup: the write did not copy cu up (no u/cu)"]
		tk.want = new
		prepare_forget(ctx, [(tk, "cu", ctx.path("u/cu"))])
		return errs + decode_all(ctx, [tk])
	return with_mount(body)


def copied_up_before(ctx, h):
	"""A lower file copied up (chmod, then a write) before its handle is taken."""
	os.chmod(ctx.path("mnt/cb"), 0o640)
	with open(ctx.path("mnt/cb"), "ab") as f:
		f.write(b"appended before the handle\n")
	if not os.path.isfile(ctx.path("u/cb")):
		return ["setup: cb was not copied up (no u/cb)"]
	tk = Taken(ctx, "cb")
	prepare_forget(ctx, [(tk, "cb", ctx.path("u/cb"))])
	return decode_all(ctx, [tk])


def renamed(src, dst, forget_first=False):
	"""A lower file renamed (through the mount) after its handle was taken (and, with
	`forget_first`, after the kernel forgot it and found it again by path)."""
	def body(ctx, h):
		tk = Taken(ctx, src)
		errs = forget_checked(ctx, [(tk, src, backing(ctx, src))]) if forget_first else []
		os.rename(ctx.path("mnt/" + src), ctx.path("mnt/" + dst))
		if not os.path.isfile(ctx.path("u/" + dst)):
			return errs + ["setup: no u/%s after the rename" % dst]
		prepare_forget(ctx, [(tk, dst, ctx.path("u/" + dst))])
		errs += decode_all(ctx, [tk])
		if os.path.exists(ctx.path("mnt/" + src)):
			errs.append("%s still visible after the rename" % src)
		return errs
	return with_mount(body)


RENAME_EXCHANGE = 2


def exchanged(ctx, h):
	"""renameat2(f0, f1, RENAME_EXCHANGE) after both handles were taken: each handle still
	names its file (now under the other name)."""
	a, b = Taken(ctx, "f0"), Taken(ctx, "f1")
	if _libc.renameat2(AT_FDCWD, os.fsencode(ctx.path("mnt/f0")), AT_FDCWD,
			   os.fsencode(ctx.path("mnt/f1")), RENAME_EXCHANGE) != 0:
		return ["setup: renameat2(RENAME_EXCHANGE): %s" % os.strerror(ctypes.get_errno())]
	prepare_forget(ctx, [(a, "f1", backing(ctx, "f1")), (b, "f0", backing(ctx, "f0"))])
	return decode_all(ctx, [a, b])


def in_renamed_dir(ctx, h):
	"""A lower dir rd renamed to rd2: a file's handle taken before the rename, another's after,
	and the dir's own handle taken before."""
	before = Taken(ctx, "rd/x")
	dtk = Taken(ctx, "rd")
	os.rename(ctx.path("mnt/rd"), ctx.path("mnt/rd2"))
	after = Taken(ctx, "rd2/y")
	prepare_forget(ctx, [(before, "rd2/x", backing(ctx, "rd2/x", "rd/x")),
			     (after, "rd2/y", backing(ctx, "rd2/y", "rd/y")),
			     (dtk, "rd2", backing(ctx, "rd2", "rd"))])
	return decode_all(ctx, [before, after, dtk])


def parent_renamed_after_forget(ctx, h):
	"""rd/x's handle; rd and x forgotten; rd found again by path and renamed to dst/rd3 (a new
	parent); then x decodes (its record names rd's nodeid and "x")."""
	tk = Taken(ctx, "rd/x")
	errs = forget_checked(ctx, [(tk, "rd/x", backing(ctx, "rd/x"))])
	os.rename(ctx.path("mnt/rd"), ctx.path("mnt/dst/rd3"))
	prepare_forget(ctx, [(tk, "dst/rd3/x", backing(ctx, "dst/rd3/x", "rd/x"))])
	return errs + decode_all(ctx, [tk])


def hardlink_name_unlinked(ctx, h):
	"""An upper file with two names (uf, uf2): the handle taken through uf, uf unlinked. The
	file still exists (as uf2), so the handle must still decode to it, as on any filesystem and
	as with kernel overlayfs (nfs_export=on), rather than give ESTALE. (plyfs moves the node to
	its other name, remembered as an alias, when the name it was reached by is removed.)"""
	os.link(ctx.path("mnt/uf"), ctx.path("mnt/uf2"))
	tk = Taken(ctx, "uf")
	os.unlink(ctx.path("mnt/uf"))
	prepare_forget(ctx, [(tk, "uf2", backing(ctx, "uf2"))])
	return decode_all(ctx, [tk])


def deleted(rel, recreate=False):
	"""The handle of `rel`, then unlink through the mount (and, with `recreate`, a new file of
	the same name): the handle must decode to ESTALE, never to another file. A control handle
	(f1, untouched, forgotten too) must decode: the ESTALE is about the deletion."""
	def body(ctx, h):
		tk, control = Taken(ctx, rel), Taken(ctx, "f1")
		os.unlink(ctx.path("mnt/" + rel))
		what = "deleted"
		if recreate:
			lifecycle.write(ctx.path("mnt/" + rel), "a new file of the same name\n")
			what = "deleted, then a new file of the same name created"
		prepare_forget(ctx, [(control, "f1", backing(ctx, "f1"))])
		errs = stale_and_control(ctx, tk, what, control)
		if recreate:
			errs += lifecycle.check_read(ctx.path("mnt/" + rel),
						     "a new file of the same name\n")
		return errs
	return with_mount(body)


def mount_on_ext4(ctx):
	"""A lower l0 and an upper and workdir on an ext4 image mounted through a loop device (ext4
	hands a freed inode number out again at once; tmpfs never does); mounts the binary."""
	img, ext = ctx.path("ext4.img"), ctx.path("ext4")
	if not os.path.isdir(ext):
		os.makedirs(ext)
		with open(img, "wb") as f:
			f.truncate(64 << 20)
		# With a journal: without one, ext4 skips an inode freed in an earlier second for
		# about 30 s (find_inode_bit's recently_deleted()), so on a loaded machine, where the
		# FORGET that frees it takes more than a second, the number would not come back.
		mounts.run(["mkfs.ext4", "-q", "-F", img], t(60))
		mounts.run(["mount", "-o", "loop", img, ext], t(30))
		ctx.track(mounts.BindMount(ext))
		for d in ("l0", "ext4/u", "ext4/w", "mnt"):
			os.makedirs(ctx.path(d))
		lifecycle.write(ctx.path("l0/keep"), "a lower file\n")
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (ctx.path("l0"), ctx.path("ext4/u"),
						      ctx.path("ext4/w"))
	ctx.daemon = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	return ctx.daemon


def check_reused(errs, old_ino, new_ino):
	if new_ino != old_ino:
		errs.append("setup: ext4 gave the new file inode %d, not the freed %d: the reuse was "
			    "not exercised" % (new_ino, old_ino))


def reused_inode(ctx):
	"""An upper file's handle; the file deleted through the mount and a new file created, on an
	ext4 upper. The new file gets the old inode number (checked: the premise), and the old
	handle must give ESTALE, never the new file."""
	h = mount_on_ext4(ctx)
	errs = []
	with mounts.Watchdog(t(60), [h]):
		lifecycle.write(ctx.path("mnt/old"), "the old file\n")
		tk = Taken(ctx, "old")
		old_ino = os.lstat(ctx.path("ext4/u/old")).st_ino
		os.unlink(ctx.path("mnt/old"))
		drop_caches(ctx)
		# The old inode is freed only once the daemon has closed what it held of it, after the
		# kernel's FORGET (asynchronous): on a loaded machine the first new file may come
		# before that. Try again (bounded) until ext4 hands the freed number out.
		# Bounded by time, not by tries: under load the FORGET can take seconds. The loop always
		# ends with `new` present, so the premise check below reports, never crashes.
		deadline = time.monotonic() + t(20)
		while True:
			lifecycle.write(ctx.path("mnt/new"), "the new file\n")
			if (os.lstat(ctx.path("ext4/u/new")).st_ino == old_ino
			    or time.monotonic() > deadline):
				break
			os.unlink(ctx.path("mnt/new"))
			drop_caches(ctx)
			time.sleep(0.1)
		check_reused(errs, old_ino, os.lstat(ctx.path("ext4/u/new")).st_ino)
		drop_caches(ctx)
		errs += stale_and_control(ctx, tk, "deleted; its inode number reused by a new file")
		errs += lifecycle.settle(h)
	return errs + h.cleanup()


DEEP_NEW = b"created through a decoded directory fd\n"


def deep_dir_create(ctx):
	"""Handle of the lower1-only dir a/b/c; the caches dropped (c, b and a forgotten: checked);
	the decoded dir fd creates `new`; after unmount it is upper/a/b/c/new."""
	h = mount(ctx)
	errs = []
	with mounts.Watchdog(t(30), [h]):
		tk = Taken(ctx, "a/b/c")
		anc = [Taken(ctx, "a"), Taken(ctx, "a/b")]
		prepare_forget(ctx, [(tk, "a/b/c", backing(ctx, "a/b/c")),
				     (anc[0], "a", backing(ctx, "a")),
				     (anc[1], "a/b", backing(ctx, "a/b"))])
		mfd = open_mount_root(ctx)
		try:
			errs += check_decoded(mfd, tk)
			dfd = decode(mfd, tk.fh, os.O_RDONLY | os.O_DIRECTORY)
		except OSError as e:
			return errs + ["a/b/c: open_by_handle_at(O_DIRECTORY): %s" % e]
		finally:
			os.close(mfd)
		# Reconnecting c (LOOKUP "..") brought its ancestors back: they show their stamps
		# (checked before the creation below copies them up).
		for a in anc:
			st = os.stat(ctx.path("mnt/" + a.rel))
			if st.st_mtime_ns != a.stamp:
				errs.append("ancestor %s shows mtime %d, its backing dir %d: not "
					    "forgotten (test premise)"
					    % (a.rel, st.st_mtime_ns, a.stamp))
		try:
			fd = os.open("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
			try:
				os.write(fd, DEEP_NEW)
			finally:
				os.close(fd)
		except OSError as e:
			errs.append("openat(decoded a/b/c, \"new\", O_CREAT): %s" % e)
		finally:
			os.close(dfd)
		errs += lifecycle.check_read(ctx.path("mnt/a/b/c/new"), DEEP_NEW.decode())
		errs += lifecycle.settle(h)
	errs += h.cleanup()
	up = ctx.path("u/a/b/c/new")
	try:
		with open(up, "rb") as f:
			got = f.read()
		if got != DEEP_NEW:
			errs.append("upper/a/b/c/new holds %r, expected %r" % (got, DEEP_NEW))
	except OSError as e:
		errs.append("upper/a/b/c/new after unmount: %s" % e)
	for stray in ("l1/a/b/c/new", "l0/a/b/c/new", "u/new", "u/c/new"):
		if os.path.lexists(ctx.path(stray)):
			errs.append("%s exists after unmount" % stray)
	return errs


def decode_loop(ctx, h):
	"""Decode, check, close, drop the caches: LOOPS times; every decode must succeed and show a
	freshly looked-up inode (the backing mtime changes each round)."""
	tk = Taken(ctx, "loop")
	path = backing(ctx, "loop")
	os.stat(ctx.path("mnt/loop"))
	mfd = open_mount_root(ctx)
	errs = []
	try:
		for i in range(LOOPS):
			tk.stamp = next(_stamps) * 10**9
			os.utime(path, ns=(tk.stamp, tk.stamp))
			drop_caches(ctx)
			# Only the handle is used: each round revives the node from its record.
			errs += ["round %d of %d: %s" % (i + 1, LOOPS, x)
				 for x in check_decoded(mfd, tk)]
			if len(errs) >= 10:
				break
	finally:
		os.close(mfd)
	return errs


# --- across mounts ----------------------------------------------------------------------------------

def take_issue_list(ctx):
	"""Handles of the issue's list of files, then what happens to them after they were taken:
	copy-up before and after, renames within and across directories, a deletion."""
	names = ["", "f0", "ldir", "f1", "cu", "cb", "mv", "mv2", "uf", "ud", "rd", "rd/x",
		 "a/b/c", "del"]
	os.chmod(ctx.path("mnt/cb"), 0o640)			# copied up before
	tk = {n: Taken(ctx, n) for n in names}
	with open(ctx.path("mnt/cu"), "ab") as f:		# copied up after
		f.write(b"appended after the handle\n")
	tk["cu"].want += b"appended after the handle\n"
	os.rename(ctx.path("mnt/mv"), ctx.path("mnt/mv-renamed"))
	os.rename(ctx.path("mnt/mv2"), ctx.path("mnt/dst/mv2-moved"))
	os.rename(ctx.path("mnt/rd"), ctx.path("mnt/rd2"))
	os.unlink(ctx.path("mnt/del"))
	return tk


def remount_all(ctx):
	"""The handles of the issue's list taken on one mount (copy-up, renames and a deletion after
	they were taken), then two clean remounts (the second mount never sees them: they pass
	through its store untouched), then every handle decodes to its file, the deleted one gives
	ESTALE, and a directory fd decoded from a handle creates a file that lands in upper."""
	h = mount(ctx)
	daemons = [h]
	errs = []
	with mounts.Watchdog(t(60), daemons):
		tk = take_issue_list(ctx)
		tk[""].want = content_of(ctx.path("mnt"), True)
		for _ in range(2):
			unmount_clean(daemons[-1])
			daemons.append(mount_built(ctx))
		mfd = open_mount_root(ctx)
		try:
			for n in tk:
				if n == "del":
					errs += check_stale(mfd, tk[n], "deleted, then remounted")
				else:
					errs += ["after remount: " + e for e in check_decoded(mfd, tk[n])]
			dfd = decode(mfd, tk["a/b/c"].fh, os.O_RDONLY | os.O_DIRECTORY)
		except OSError as e:
			return errs + ["a/b/c: open_by_handle_at(O_DIRECTORY) after remount: %s" % e]
		finally:
			os.close(mfd)
		try:
			fd = os.open("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
			os.write(fd, DEEP_NEW)
			os.close(fd)
		finally:
			os.close(dfd)
		unmount_clean(daemons[-1])
	errs += lifecycle.check_read(ctx.path("u/a/b/c/new"), DEEP_NEW.decode())
	return errs


def remount_replaced_offline(ctx):
	"""Handles of two upper files; unmounted; one of them replaced in the upper layer directly
	(deleted, a new file of the same name and type created: on ext4 it gets the same inode
	number, checked); mounted again: the replaced file's handle gives ESTALE (its inode's
	generation differs: key.check), the untouched file's handle still decodes."""
	h = mount_on_ext4(ctx)
	daemons = [h]
	errs = []
	with mounts.Watchdog(t(60), daemons):
		lifecycle.write(ctx.path("mnt/gone"), "replaced while unmounted\n")
		lifecycle.write(ctx.path("mnt/kept"), "untouched\n")
		gone, kept = Taken(ctx, "gone"), Taken(ctx, "kept")
		unmount_clean(h)
		old_ino = os.lstat(ctx.path("ext4/u/gone")).st_ino
		os.unlink(ctx.path("ext4/u/gone"))
		# ext4 hands out the lowest free number: one freed at the unmount below old_ino (the
		# daemon's unnamed records file in the workdir, README "Handles") comes first; a filler
		# outside the layers takes it.
		os.makedirs(ctx.path("ext4/fill"), exist_ok=True)
		for i in range(8):
			lifecycle.write(ctx.path("ext4/u/gone"), "a new file\n")
			if os.lstat(ctx.path("ext4/u/gone")).st_ino >= old_ino:
				break
			os.rename(ctx.path("ext4/u/gone"), ctx.path("ext4/fill/%d" % i))
		check_reused(errs, old_ino, os.lstat(ctx.path("ext4/u/gone")).st_ino)
		daemons.append(mount_on_ext4(ctx))
		errs += stale_and_control(ctx, gone, "replaced in the upper layer while unmounted",
					  kept)
		unmount_clean(daemons[-1])
	return errs


def remount_after_crash(ctx):
	"""A daemon killed (SIGKILL) before it saved its handles (handles_interval=0: none while
	mounted): they must give ESTALE on the next mount, even where that mount hands the same
	nodeid to another file (f1 is looked up first there, so it gets the nodeid f0 had; only the
	generation tells them apart)."""
	h = mount(ctx, extra=",handles_interval=0")
	daemons = [h]
	with mounts.Watchdog(t(60), daemons):
		tk = Taken(ctx, "f0")
		errs = crash(h)
		daemons.append(mount_built(ctx))
		other = Taken(ctx, "f1")
		if describe(other.fh).split(" generation")[0] != describe(tk.fh).split(" generation")[0]:
			ctx.notes.append("f1 did not get f0's old nodeid (%s vs %s): the generation "
					 "check is not exercised" % (describe(other.fh), describe(tk.fh)))
		errs += stale_and_control(ctx, tk, "taken on a mount whose daemon was killed", other)
		unmount_clean(daemons[-1])
	return errs


STORE_SLOTS = ("plyfs-handles", "plyfs-handles.2")


def crash(h):
	"""SIGKILL first, as a crash does (aborting the connection first would let the daemon see
	the end of its session and save), then the dead mount's cleanup."""
	h.sigkill()
	if not lifecycle.wait_for(lambda: not h.running(), t(10)):
		raise Failure("the daemon did not die of SIGKILL")
	h.kill()
	return h.cleanup()


def corrupt_store(ctx):
	"""Flips one byte in the middle of both slots of the saved store (an empty one stays
	empty)."""
	for name in STORE_SLOTS:
		with open(ctx.path("w/" + name), "r+b") as f:
			size = os.fstat(f.fileno()).st_size
			if size == 0:
				continue
			f.seek(size // 2)
			b = f.read(1)
			f.seek(size // 2)
			f.write(bytes([b[0] ^ 0x40]))


def remount_store_refused(how):
	"""A store that must not be used: damaged ("damaged"), or written for other layers (the
	lowers swapped, "other_layers"). The mount still works and says why in its log; the old
	handle gives ESTALE (never the file at the same path in the other layer order); new handles
	work."""
	def run(ctx):
		h = mount(ctx)
		daemons = [h]
		errs = []
		with mounts.Watchdog(t(60), daemons):
			tk = Taken(ctx, "f0")
			unmount_clean(h)
			if how == "damaged":
				corrupt_store(ctx)
				daemons.append(mount_built(ctx))
			else:
				daemons.append(mount_built(ctx, lowers=("l1", "l0")))
			errs += stale_and_control(ctx, tk, "store %s" % how, Taken(ctx, "f1"))
			log = daemons[-1].log_tail()
			if "plyfs-handles" not in log:
				errs.append("the daemon log does not mention the refused store: %r" % log)
			unmount_clean(daemons[-1])
		return errs
	return run


STORE_NEXT_ID_AT = 16	# "PLYFSHD1", u32 version, u32 n_layers, then u64 next_id


def forge_store(ctx, next_id, trailing=b""):
	"""Rewrites the saved store's next nodeid (and appends `trailing`) with a valid checksum, in
	both slots (an empty one stays empty): what anybody who can write the workdir can do."""
	for name in STORE_SLOTS:
		path = ctx.path("w/" + name)
		with open(path, "rb") as f:
			data = f.read()
		if not data:
			continue
		body = bytearray(data[:-32])
		struct.pack_into("=Q", body, STORE_NEXT_ID_AT, next_id)
		body += trailing
		with open(path, "wb") as f:
			f.write(bytes(body) + hashlib.sha256(body).digest())


def use_after_forged_store(ctx):
	"""New files and directories in the root (each gets a new nodeid), the caches dropped, then
	every one of them and the root itself are looked up and read again: a nodeid that wrapped to
	0 or 1 shows as EIO, or as a root that is "Not a directory"."""
	errs = []
	for i in range(4):
		try:
			lifecycle.write(ctx.path("mnt/new%d" % i), "new file %d\n" % i)
			os.mkdir(ctx.path("mnt/newdir%d" % i))
		except OSError as e:
			errs.append("creating new%d / newdir%d: %s" % (i, i, e))
	drop_caches(ctx)
	try:
		names = set(os.listdir(ctx.path("mnt")))
		missing = {"new%d" % i for i in range(4)} - names
		if missing:
			errs.append("the root lists no %s" % sorted(missing))
		for i in range(4):
			errs += lifecycle.check_read(ctx.path("mnt/new%d" % i), "new file %d\n" % i)
			if not stat.S_ISDIR(os.stat(ctx.path("mnt/newdir%d" % i)).st_mode):
				errs.append("newdir%d is not a directory" % i)
	except OSError as e:
		errs.append("reading the root after creating files: %s" % e)
	return errs


def remount_forged_store(next_id, trailing=b""):
	"""A store forged with a valid checksum: its next nodeid near 2^64 (and, with `trailing`,
	refused later for trailing bytes). It is refused as a whole, the log says so, nodeids do not
	wrap (files created afterwards work, the root stays a directory), the old handle gives
	ESTALE and a new one works."""
	def run(ctx):
		h = mount(ctx)
		daemons = [h]
		errs = []
		with mounts.Watchdog(t(60), daemons):
			tk = Taken(ctx, "f0")
			unmount_clean(h)
			forge_store(ctx, next_id, trailing)
			daemons.append(mount_built(ctx))
			errs += use_after_forged_store(ctx)
			errs += stale_and_control(ctx, tk, "store forged", Taken(ctx, "f1"))
			log = daemons[-1].log_tail()
			if "plyfs-handles" not in log:
				errs.append("the daemon log does not mention the refused store: %r" % log)
			unmount_clean(daemons[-1])
		return errs
	return run


STATUS_XATTR = "user.plyfs.status"


def store_status(mnt):
	"""(handles_saves, handles_unsaved) from the status query; raises Failure without them."""
	st = dict(line.split(" ", 1) for line in os.getxattr(mnt, STATUS_XATTR).decode().splitlines())
	if "handles_unsaved" not in st:
		raise Failure("the status query has no handles_unsaved: the handle store is not "
			      "kept current while mounted (%r)" % st)
	return int(st["handles_saves"]), int(st["handles_unsaved"])


def wait_saved(ctx):
	"""Waits (bounded) until the daemon says its handle store holds the table as it is now."""
	mnt = ctx.path("mnt")
	if not lifecycle.wait_for(lambda: store_status(mnt)[1] == 0, t(30), step=0.05):
		raise Failure("the handle store still has unsaved changes %.0fs later: %r"
			      % (t(30), store_status(mnt)))


def remount_after_kill(ctx):
	"""Handles of the issue's list (copy-up, renames, a new file and a deletion after they were
	taken), the caches dropped (records), the daemon waited for until it says its store is
	current (status handles_unsaved 0, through the periodic saver: no unmount), then SIGKILLed,
	as the OOM killer would. On the next mount every handle of a file that still exists decodes
	to it, and the deleted one gives ESTALE: as kernel overlayfs' nfs_export handles, they
	survive a crash."""
	h = mount(ctx)
	daemons = [h]
	errs = []
	with mounts.Watchdog(t(90), daemons):
		tk = take_issue_list(ctx)
		lifecycle.write(ctx.path("mnt/a/b/c/fresh"), "created on the killed mount\n")
		tk["a/b/c/fresh"] = Taken(ctx, "a/b/c/fresh")
		tk[""].want = content_of(ctx.path("mnt"), True)
		tk["a/b/c"].want = content_of(ctx.path("mnt/a/b/c"), True)
		drop_caches(ctx)
		wait_saved(ctx)
		errs += crash(h)
		daemons.append(mount_built(ctx))
		mfd = open_mount_root(ctx)
		try:
			for n in tk:
				if n == "del":
					errs += check_stale(mfd, tk[n], "deleted, then the daemon killed")
				else:
					errs += ["after SIGKILL and remount: " + e
						 for e in check_decoded(mfd, tk[n])]
		finally:
			os.close(mfd)
		unmount_clean(daemons[-1])
	return errs


_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
# Rounds of umount_rm_workdir: CI runs RACE_ROUNDS_CI (2.3 to 7 s per 10 rounds measured on a
# 2-core machine at load 20-30: 200 rounds took 145 s there); PLYFS_RACE_ROUNDS=200 is the
# issue's count (see tests/integration/README.md).
RACE_ROUNDS_CI = 40
CPU_BURNERS = 2


def umount_now(mnt):
	"""umount(2) itself, as containers-storage calls it: no umount(8) process in between."""
	if _libc.umount2(os.fsencode(mnt), 0) != 0:
		e = ctypes.get_errno()
		raise Failure("umount2(%s): %s" % (mnt, os.strerror(e)))


def burn_cpu(ctx):
	"""CPU_BURNERS busy children (killed by PID at cleanup): the machine under load, so that
	the daemon's exit path is slow against the caller's rm -rf."""
	for _ in range(CPU_BURNERS):
		ctx.track(lifecycle.ChildHandle(subprocess.Popen(
			[sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)))


def some_work(ctx, i):
	"""New files, a copy-up, a rename, a deletion, a listing; then the caches dropped (only the
	dentries and inodes: FORGETs, so records exist) and the connection idle."""
	mnt = ctx.path("mnt")
	for k in range(4):
		lifecycle.write(os.path.join(mnt, "d%d" % (i % 3), "n%d-%d" % (i, k)), "round %d\n" % i)
	with open(os.path.join(mnt, "f0"), "a") as f:
		f.write("round %d\n" % i)
	os.rename(os.path.join(mnt, "d%d" % (i % 3), "n%d-0" % i), os.path.join(mnt, "r%d" % i))
	os.unlink(os.path.join(mnt, "d%d" % (i % 3), "n%d-1" % i))
	os.listdir(os.path.join(mnt, "a/b/c"))
	problems = lifecycle.settle(ctx.daemon)
	if problems:
		raise Failure(problems[0])
	with open("/proc/sys/vm/drop_caches", "w") as f:
		f.write("2")


def log_size(ctx):
	try:
		return os.path.getsize(os.path.join(ctx.logdir, "daemon.log"))
	except OSError:
		return 0


def store_errors(ctx, since):
	"""The daemon's log lines after offset `since` that say it could not write in the
	workdir."""
	with open(os.path.join(ctx.logdir, "daemon.log"), "rb") as f:
		f.seek(since)
		text = f.read().decode(errors="replace")
	return [x for x in text.splitlines() if "cannot write" in x or "plyfs-handles" in x]


def umount_rm_workdir(ctx):
	"""As containers-storage does after `buildah build --layers` steps: mount, some work,
	umount(2), and at once rm -rf of the workdir, while the machine is busy (CPU_BURNERS busy
	children). Each round must remove the workdir without error (ENOTEMPTY: the daemon created
	an entry in it after umount returned), the daemon must exit 0 without failing to write
	(it must not try to create anything there), and the workdir must stay gone."""
	for d, spec in zip(("l0", "l1", "u"), std_layers()):
		os.makedirs(ctx.path(d))
		layerspec.build_layer(ctx.path(d), spec)
	os.makedirs(ctx.path("mnt"))
	burn_cpu(ctx)
	rounds = int(os.environ.get("PLYFS_RACE_ROUNDS", RACE_ROUNDS_CI))
	errs = []
	w = ctx.path("w")
	for i in range(rounds):
		os.makedirs(w)
		since = log_size(ctx)
		h = mount_built(ctx)
		with mounts.Watchdog(t(30), [h]):
			some_work(ctx, i)
			umount_now(ctx.path("mnt"))
		try:
			shutil.rmtree(w)
		except OSError as e:
			errs.append("round %d: rm -rf of the workdir right after umount(2): %s" % (i, e))
			shutil.rmtree(w, ignore_errors=True)
		errs += ["round %d: %s" % (i, x) for x in h.cleanup()]
		errs += ["round %d: daemon log: %s" % (i, x) for x in store_errors(ctx, since)]
		if os.path.lexists(w):
			errs.append("round %d: the workdir is back after the daemon exited: %r"
				    % (i, os.listdir(w)))
			shutil.rmtree(w, ignore_errors=True)
		if len(errs) >= 10:
			break
	ctx.notes.append("%d rounds" % (i + 1))
	return errs


def tree_listing(top, rel="", out=None):
	"""Every entry under `top`: {relative path: inode number}, from the directory entries
	alone (d_ino, no stat: the listing must be quick, it races with the daemon's exit)."""
	out = {} if out is None else out
	with os.scandir(os.path.join(top, rel)) as it:
		for e in it:
			p = os.path.join(rel, e.name)
			out[p] = e.inode()
			if e.is_dir(follow_symlinks=False):
				tree_listing(top, p, out)
	return out


NOTHING_ROUNDS = 20


def umount_creates_nothing(ctx):
	"""NOTHING_ROUNDS rounds of mount, some work, umount(2): the upper layer and the workdir
	listed (every entry, with its inode number: a file replaced by a rename shows) right after
	umount(2) returned and again once the daemon has exited must be the same. The first round
	is a fresh workdir, the next ones find the store of the one before. The machine is busy
	(CPU_BURNERS), so that the daemon's exit path is slow."""
	mount(ctx)
	burn_cpu(ctx)
	errs = []
	for i in range(NOTHING_ROUNDS):
		h = ctx.daemon if i == 0 else mount_built(ctx)
		with mounts.Watchdog(t(30), [h]):
			some_work(ctx, i)
			umount_now(ctx.path("mnt"))
		before = {d: tree_listing(ctx.path(d)) for d in ("w", "u")}
		errs += ["round %d: %s" % (i, x) for x in h.cleanup()]
		if i == 0 and len(before["w"]) == 0:
			errs.append("the listing is empty (test premise: it sees the workdir)")
		after = {d: tree_listing(ctx.path(d)) for d in ("w", "u")}
		for d in ("w", "u"):
			for p in sorted(set(before[d]) | set(after[d])):
				b, a = before[d].get(p), after[d].get(p)
				if a != b:
					errs.append("round %d: %s/%s: %s right after umount(2), %s once "
						    "the daemon exited" % (i, d, p,
							"inode %d" % b if b else "absent",
							"inode %d" % a if a else "absent"))
		if len(errs) >= 10:
			break
	return errs


# --- rootless -----------------------------------------------------------------------------------

NOBODY = 65534
SETPRIV = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
# open_by_handle_at needs CAP_DAC_READ_SEARCH; a user's FUSE mount (no allow_other) lets in only
# that user's processes, so the decoding helper is that user with this one capability.
WITH_CAP = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
ROOTLESS_FILES = ["f0", "f1", "ldir", "cu", "mv", "uf", "a/b/c"]
# A file copied up and then renamed keeps its lower identity across a remount only where its origin
# (the kernel's format: a file handle, origin.h) can be decoded, which needs CAP_DAC_READ_SEARCH:
# a rootless daemon finds it by name only, so after the remount "mv" is its own file (kernel
# overlayfs in a user namespace keeps no copied-up file's identity at all). Its handle may then
# be stale; it must never open another file.
ROOTLESS_MAY_BE_STALE = ["mv"]


def user_fuse_device(ctx):
	"""libfuse opens /dev/fuse itself before it falls back to fusermount3: where the device is
	root's only (0600, as in containers) a 0666 node of it is bind-mounted over /dev/fuse, in
	this run's own mount namespace only."""
	st = os.stat("/dev/fuse")
	if st.st_mode & 0o006 == 0o006:
		return
	node = ctx.path("fuse-dev")
	os.mknod(node, stat.S_IFCHR | 0o666, st.st_rdev)
	os.chmod(node, 0o666)
	mounts.run(["mount", "--bind", node, "/dev/fuse"], t(10))
	ctx.track(mounts.BindMount("/dev/fuse"))


def mount_rootless(ctx):
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (
		ctx.path("l0"), ctx.path("l1"), ctx.path("u"), ctx.path("w"))
	ctx.daemon = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt, prefix=SETPRIV)
	return ctx.daemon


def helper(ctx, cmd, cap=True):
	"""Runs this file's --rootless-helper CMD as the user (with CAP_DAC_READ_SEARCH when
	`cap`); returns its JSON answer."""
	# The checkout may be unreadable to the user (under /root): it runs a copy of these files.
	src = ctx.path("helper")
	if not os.path.isdir(src):
		os.makedirs(src)
		here = os.path.dirname(os.path.abspath(__file__))
		for n in os.listdir(here):
			if n.endswith(".py"):
				shutil.copy(os.path.join(here, n), src)
	argv = SETPRIV + (WITH_CAP if cap else []) + [
		sys.executable, "-B", os.path.join(src, "handles.py"), "--rootless-helper", cmd,
		ctx.path("mnt"), ctx.path("handles.json")]
	r = subprocess.run(argv, capture_output=True, timeout=t(60), env=ctx.env())
	if r.returncode != 0:
		raise Failure("helper %s exited %d: %s" % (cmd, r.returncode,
							     r.stderr.decode(errors="replace")[-800:]))
	return json.loads(r.stdout)


def remount_rootless(ctx):
	"""A mount by an unprivileged user (the daemon runs as nobody, mounting through fusermount3):
	handles taken there (a lower file, a second-lower file, a lower dir, a file copied up and one
	renamed after their handles were taken, an upper file, a deep dir) decode after a clean
	remount, for the user with CAP_DAC_READ_SEARCH (the renamed one may be stale:
	ROOTLESS_MAY_BE_STALE); without it open_by_handle_at is refused (EPERM), which is what
	rootless users get."""
	for d, spec in zip(("l0", "l1", "u"), std_layers()):
		os.makedirs(ctx.path(d))
		layerspec.build_layer(ctx.path(d), spec)
	for d in ("w", "mnt"):
		os.makedirs(ctx.path(d))
	os.chmod(ctx.logdir, 0o777)	# sanitizer reports of the user's daemon
	for root, dirs, files in os.walk(ctx.dir):
		for n in [root] + [os.path.join(root, x) for x in dirs + files]:
			os.lchown(n, NOBODY, NOBODY)
	user_fuse_device(ctx)
	h = mount_rootless(ctx)
	daemons = [h]
	errs = []
	with mounts.Watchdog(t(90), daemons):
		helper(ctx, "take")
		unmount_clean(h)
		st = os.lstat(ctx.path("w/plyfs-handles"))
		if st.st_uid != NOBODY:
			errs.append("w/plyfs-handles is owned by uid %d, not the user" % st.st_uid)
		daemons.append(mount_rootless(ctx))
		errs += ["rootless, after remount: " + e for e in helper(ctx, "decode")]
		errs += ["rootless, no capability: " + e for e in helper(ctx, "decode-nocap",
									 cap=False)]
		unmount_clean(daemons[-1])
	return errs


def rootless_helper(cmd, mnt, store):
	"""The user's side of remount_rootless: `take` takes the handles and then changes the files
	(a copy-up, a rename); `decode` checks each; `decode-nocap` expects EPERM. Prints JSON."""
	if cmd == "take":
		out = {}
		for rel in ROOTLESS_FILES:
			path = os.path.join(mnt, rel)
			is_dir = os.path.isdir(path)
			fh = encode(path)
			want = content_of(path, is_dir)
			out[rel] = {"type": fh.handle_type, "bytes": bytes(
				fh.f_handle[:fh.handle_bytes]).hex(), "ino": os.lstat(path).st_ino,
				"dir": is_dir, "want": want if is_dir else want.hex()}
		with open(os.path.join(mnt, "cu"), "ab") as f:
			f.write(b"appended after the handle\n")
		out["cu"]["want"] = bytes.fromhex(out["cu"]["want"]).hex() + \
			b"appended after the handle\n".hex()
		os.rename(os.path.join(mnt, "mv"), os.path.join(mnt, "mv-renamed"))
		with open(store, "w") as f:
			json.dump(out, f)
		print("{}")
		return 0
	with open(store) as f:
		taken = json.load(f)
	errs = []
	mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
	for rel, e in taken.items():
		fh = FileHandle()
		raw = bytes.fromhex(e["bytes"])
		fh.handle_bytes, fh.handle_type = len(raw), e["type"]
		fh.f_handle[:len(raw)] = raw
		try:
			fd = decode(mfd, fh, os.O_RDONLY | (os.O_DIRECTORY if e["dir"] else 0))
		except OSError as x:
			if cmd == "decode" and x.errno == errno.ESTALE and rel in ROOTLESS_MAY_BE_STALE:
				continue
			if cmd != "decode-nocap" or x.errno != errno.EPERM:
				errs.append("%s: open_by_handle_at: %s" % (rel, x))
			continue
		try:
			if cmd == "decode-nocap":
				errs.append("%s: decoded without CAP_DAC_READ_SEARCH" % rel)
				continue
			got = content_of(fd, e["dir"])
			want = e["want"] if e["dir"] else bytes.fromhex(e["want"])
			if os.fstat(fd).st_ino != e["ino"] or got != want:
				errs.append("%s: decoded to st_ino %d reading %r, expected %d, %r"
					    % (rel, os.fstat(fd).st_ino, got, e["ino"], want))
		finally:
			os.close(fd)
	os.close(mfd)
	print(json.dumps(errs))
	return 0


TESTS = [
	("root", simple([("", None)])),
	("lower_file", simple([("f0", "l0/f0")])),
	("lower_dir", simple([("ldir", "l0/ldir")])),
	("second_lower_file", simple([("f1", "l1/f1")])),
	("copied_up_after_handle", copied_up_after(False)),
	("copied_up_after_forget", copied_up_after(True)),
	("copied_up_before_handle", with_mount(copied_up_before)),
	("renamed_same_dir", renamed("mv", "mv-renamed")),
	("renamed_across_dirs", renamed("mv2", "dst/mv2-moved")),
	("renamed_after_forget", renamed("mv", "dst/mv-moved", forget_first=True)),
	("renamed_exchange", with_mount(exchanged)),
	("upper_file", simple([("uf", "u/uf")])),
	("upper_dir", simple([("ud", "u/ud")])),
	("file_in_renamed_lower_dir", with_mount(in_renamed_dir)),
	("parent_renamed_after_forget", with_mount(parent_renamed_after_forget)),
	("deleted_lower_file", deleted("del")),
	("deleted_upper_file", deleted("udel")),
	("deleted_and_recreated", deleted("rep", recreate=True)),
	("deleted_inode_number_reused", reused_inode),
	("hardlink_name_unlinked", with_mount(hardlink_name_unlinked)),
	("deep_dir_create_after_forget", deep_dir_create),
	# LOOPS machine-wide cache drops: slow on a loaded machine, hence the longer guard.
	("decode_loop_%d" % LOOPS, with_mount(decode_loop, limit=300)),
	("remount_all", remount_all),
	("remount_after_crash", remount_after_crash),
	("remount_after_kill", remount_after_kill),
	("umount_rm_workdir", umount_rm_workdir),
	("umount_creates_nothing", umount_creates_nothing),
	("remount_replaced_offline", remount_replaced_offline),
	("remount_damaged_store", remount_store_refused("damaged")),
	("remount_other_layers", remount_store_refused("other_layers")),
	("remount_forged_next_id", remount_forged_store(2**64 - 2)),
	("remount_forged_next_id_trailing", remount_forged_store(2**64 - 2, b"\0")),
	("remount_rootless", remount_rootless),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("handles", TESTS, Ctx)


if __name__ == "__main__":
	if len(sys.argv) == 5 and sys.argv[1] == "--rootless-helper":
		sys.exit(rootless_helper(*sys.argv[2:]))
	print("handles.py: a module of harness.py (or: --rootless-helper CMD MNT FILE)",
	      file=sys.stderr)
	sys.exit(2)
