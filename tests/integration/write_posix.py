# SPDX-License-Identifier: GPL-2.0-or-later
"""write_posix.py - POSIX details of issue 9 item 3, each compared with kernel overlayfs on the same
layers (write_env.py explains the fixture): d_ino of readdir (also "." and "..", from offset 0 and
after a seek), chown(-1, -1) moving ctime, mknod of a 0/0 character device, O_DIRECT on a file
the open creates. The mount-option parts (remount, atime) are in posix_mount.py.

Names from write_env.std_layers() (see write_ops.py).
"""

import ctypes
import mmap
import os
import stat
import time

import mounts
from mounts import t
from write_env import P, drop_caches, libc, statd, wtest

SYS_GETDENTS64 = 217 if os.uname().machine == "x86_64" else 61  # x86_64, else the generic table


def getdents(fd, size=65536):
	"""[(d_ino, d_off, name)] of one getdents64 call on fd (size bytes of buffer)."""
	buf = ctypes.create_string_buffer(size)
	n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
	if n < 0:
		e = ctypes.get_errno()
		raise OSError(e, os.strerror(e))
	out, pos, raw = [], 0, buf.raw[:n]
	while pos < n:
		ino = int.from_bytes(raw[pos:pos + 8], "little")
		off = int.from_bytes(raw[pos + 8:pos + 16], "little", signed=True)
		reclen = int.from_bytes(raw[pos + 16:pos + 18], "little")
		name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode()
		out.append((ino, off, name))
		pos += reclen
	return out


def read_all(fd):
	out = []
	while True:
		batch = getdents(fd)
		if not batch:
			return out
		out += batch


def _expected_ino(root, rel, name):
	"""st_ino the entry `name` of directory rel must have as d_ino: ".." of the root is the
	root (the mount point's own parent lies outside the overlay)."""
	if name == "..":
		return os.lstat(P(root, os.path.dirname(rel)) if rel else root).st_ino
	return os.lstat(P(root, rel, name) if name != "." else P(root, rel)).st_ino


def _dino_mismatches(root, rel):
	"""The entries of rel whose d_ino is not their st_ino, read three ways: one getdents from
	offset 0 (READDIRPLUS), after a seek to the position just past "." (plain READDIR), and
	from offset 0 again with a one-entry buffer (one entry per request)."""
	path = P(root, rel) if rel else root
	bad = []
	fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
	try:
		whole = read_all(fd)
		after_dot = dict((n, off) for _, off, n in whole)["."]
		os.lseek(fd, after_dot, os.SEEK_SET)
		sought = read_all(fd)
		os.lseek(fd, 0, os.SEEK_SET)
		small = []
		while True:
			b = getdents(fd, 64)
			if not b:
				break
			small += b
	finally:
		os.close(fd)
	for how, ents in (("offset 0", whole), ("after seek", sought), ("one by one", small)):
		for ino, _, name in ents:
			if ino != _expected_ino(root, rel, name):
				bad.append("%s %s" % (how, name))
	if not any(n == ".." for _, _, n in sought):
		bad.append("after seek: no ..")
	return sorted(bad)


def _copy_ups(r):
	"""Entries of every kind: copied up files (in the root, a merged dir, a nested lower dir),
	lower dirs copied up by a creation inside, a lower file renamed into an upper-only dir."""
	os.chmod(P(r, "lo"), 0o644)
	os.chmod(P(r, "bdir/x"), 0o600)
	os.chmod(P(r, "ldir/sub/c"), 0o640)
	os.mkdir(P(r, "ldir/newdir"))
	os.rename(P(r, "lo2"), P(r, "udir/lo2"))
	os.rename(P(r, "mid"), P(r, "bdir/mid"))
	with open(P(r, "udir/new"), "w") as f:
		f.write("new\n")


DIRS = ("", "ldir", "ldir/sub", "ldir/newdir", "bdir", "udir", "emptyl", "uempty")


def _dino_check(env, label, rel):
	"""The binary: d_ino == st_ino for every entry. The kernel agrees except for "..", where it
	reports the layer's own ".." in the root and in a directory merged from lowers only (a
	quirk of kernel overlayfs, printed as a note): entries other than ".." are compared."""
	what = "%s: d_ino of %s" % (label, rel or "/")
	env.expect(what, _dino_mismatches, [], rel)
	if env.kmount:
		env.same(what + " (without ..)",
			 lambda r, x: [b for b in _dino_mismatches(r, x) if not b.endswith(" ..")], rel)
		k = _dino_mismatches(env.km, rel)
		if k:
			env.notes.append("kernel overlayfs, %s: d_ino != st_ino for %s" % (what, k))


@wtest("posix/readdir_dino")
def t_readdir_dino(env):
	env.same("copy-ups", _copy_ups)
	for rel in DIRS:
		_dino_check(env, "after copy-up", rel)
	drop_caches()
	for rel in DIRS:
		_dino_check(env, "caches dropped", rel)


def _chown_ctime(r, rel):
	"""chown(rel, -1, -1): does ctime move (and nothing else)?"""
	before = os.lstat(P(r, rel))
	time.sleep(0.05)
	os.chown(P(r, rel), -1, -1, follow_symlinks=False)
	after = os.lstat(P(r, rel))
	d = statd(P(r, rel))
	d["ctime_moved"] = after.st_ctime_ns > before.st_ctime_ns
	d["mtime_kept"] = after.st_mtime_ns == before.st_mtime_ns
	return d


@wtest("posix/chown_ctime")
def t_chown_ctime(env):
	for rel in ("lo", "up", "both", "ldir", "bdir", "udir", "lsym", "ldir/sub/c"):
		env.same("chown -1 -1 %s" % rel, _chown_ctime, rel)
		env.same_expect("chown -1 -1 %s moves ctime" % rel,
				lambda r, x: _chown_ctime(r, x)["ctime_moved"], True, rel)


def _mknod_whiteout(r, rel):
	try:
		os.mknod(P(r, rel), stat.S_IFCHR | 0o644, os.makedev(0, 0))
	finally:
		present = os.path.lexists(P(r, rel))
	return present


@wtest("posix/mknod_whiteout")
def t_mknod_whiteout(env):
	for rel in ("new", "ldir/new", "bdir/new", "udir/new", "gone", "lo"):
		env.same("mknod c 0 0 %s" % rel, _mknod_whiteout, rel)
	env.same_expect("mknod c 0 0 new (EPERM)", _mknod_whiteout, "EPERM", "new2")
	env.same("mknod c 1 3 still works", lambda r: os.mknod(
		P(r, "null"), stat.S_IFCHR | 0o600, os.makedev(1, 3)) or statd(P(r, "null")))
	# Nothing written: a whiteout made in the upper would hide these names after a remount.
	for rel in ("new", "ldir/new", "bdir/new", "udir/new"):
		env.check(not os.path.lexists(env.up(rel)),
			  "mknod c 0 0 %s left %s in the upper" % (rel, rel))


def _odirect_create(r, rel, flags=0):
	"""open(O_CREAT|O_DIRECT|O_WRONLY|flags), one aligned 4 KiB write, the size and data after."""
	buf = mmap.mmap(-1, 4096)  # page aligned
	buf.write(b"d" * 4096)
	fd = os.open(P(r, rel), os.O_CREAT | os.O_DIRECT | os.O_WRONLY | flags, 0o644)
	try:
		n = os.write(fd, buf)
	finally:
		os.close(fd)
	with open(P(r, rel), "rb") as f:
		data = f.read()
	return {"written": n, "size": os.lstat(P(r, rel)).st_size, "data_ok": data == b"d" * 4096}


def odirect_cases(env):
	for rel in ("dnew", "ldir/dnew", "bdir/dnew", "udir/dnew", "gone"):
		env.same_expect("O_CREAT|O_DIRECT write %s" % rel, _odirect_create,
				{"written": 4096, "size": 4096, "data_ok": True}, rel)
	# The same on files that exist (the open path): lower, upper, and just created.
	for rel in ("lo", "up", "dnew"):
		env.same("O_DIRECT write %s" % rel, _odirect_create, rel, os.O_TRUNC)


@wtest("posix/odirect_create")
def t_odirect_create(env):
	odirect_cases(env)


def on_ext4(env):
	"""prepare: moves both sides' layers onto an ext4 image (loop device), which honours
	O_DIRECT (tmpfs takes unaligned O_DIRECT writes and hid the bug): copied with their xattrs
	and times, then bind-mounted over p/ and k/."""
	img, ext = P(env.base, "ext4.img"), P(env.base, "ext4")
	os.mkdir(ext)
	with open(img, "wb") as f:
		f.truncate(64 << 20)
	mounts.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", img], t(60))
	mounts.run(["mount", "-o", "loop", img, ext], t(30))
	mounts.ACTIVE.append(mounts.BindMount(ext))
	for side in (env.p, env.k):
		dst = P(ext, os.path.basename(side))
		mounts.run(["cp", "-a", side, dst], t(60))
		mounts.run(["mount", "--bind", dst, side], t(30))
		mounts.ACTIVE.append(mounts.BindMount(side))


@wtest("posix/odirect_create_ext4", prepare=on_ext4)
def t_odirect_create_ext4(env):
	odirect_cases(env)
