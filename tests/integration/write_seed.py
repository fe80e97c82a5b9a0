# SPDX-License-Identifier: GPL-2.0-or-later
"""write_seed.py - a file opened before its copy-up, and files/dirs unlinked while open.

The seed scenario: on a lower-only file f containing "foo", rofd = open(f, O_RDONLY), then
rwfd = open(f, O_WRONLY) (the copy-up), write(rwfd, "bar"). Every later read through rofd, by any
path through the caches, and every fresh open must see "bar". Each variant is its own test. They
are compared with kernel overlayfs AND asserted directly, except the MAP_SHARED one: kernel
overlayfs maps the lower file there and keeps showing "foo", so only the right answer is asserted
(the kernel's result is printed as a note).
"""

import mmap
import os
import time

from layerspec import F
from write_env import P, Out, diff_outcomes, drop_caches, outcome, std_layers, wtest


def seed_layers():
	lowers, upper = std_layers()
	lowers[1]["f"] = F("foo", mode=0o644)
	return lowers, upper


def _seed(r, data=b"bar"):
	"""Opens f read-only, then for write, writes `data`; returns (rofd, rwfd)."""
	rofd = os.open(P(r, "f"), os.O_RDONLY)
	rwfd = os.open(P(r, "f"), os.O_WRONLY)
	if os.write(rwfd, data) != len(data):
		raise OSError(5, "short write")
	return rofd, rwfd


def _closing(fn):
	"""Runs the seed, then fn(r, rofd, rwfd); closes both fds."""
	def run(r, *args):
		rofd, rwfd = _seed(r, *args)
		try:
			return fn(r, rofd, rwfd)
		finally:
			os.close(rofd)
			os.close(rwfd)
	return run


@wtest("seed/a_pread_rofd", layers=seed_layers)
def t_seed_a(env):
	env.same_expect("pread(rofd) after the write", _closing(
		lambda r, ro, rw: os.pread(ro, 100, 0)), b"bar")
	env.same_expect("read(rofd) after the write", _closing(lambda r, ro, rw: os.read(ro, 100)),
			b"bar")


@wtest("seed/b_drop_caches", layers=seed_layers)
def t_seed_b(env):
	def fn(r, ro, rw):
		os.pread(ro, 100, 0)
		drop_caches()
		return os.pread(ro, 100, 0)
	env.same_expect("pread(rofd) after drop_caches", _closing(fn), b"bar")


@wtest("seed/c_fadvise_dontneed", layers=seed_layers)
def t_seed_c(env):
	def fn(r, ro, rw):
		os.pread(ro, 100, 0)
		os.posix_fadvise(ro, 0, 0, os.POSIX_FADV_DONTNEED)
		return os.pread(ro, 100, 0)
	env.same_expect("pread(rofd) after POSIX_FADV_DONTNEED", _closing(fn), b"bar")


@wtest("seed/d_fstat_size", layers=seed_layers)
def t_seed_d(env):
	def fn(r, ro, rw):
		return {"fstat(rofd).st_size": os.fstat(ro).st_size,
			"stat(f).st_size": os.stat(P(r, "f")).st_size,
			"pread(rofd)": os.pread(ro, 100, 0)}
	env.same_expect("extending write seen through rofd", lambda r: _closing(fn)(r, b"barbaz"),
			{"fstat(rofd).st_size": 6, "stat(f).st_size": 6, "pread(rofd)": b"barbaz"})


@wtest("seed/e_fresh_open", layers=seed_layers)
def t_seed_e(env):
	def fresh(r):
		return open(P(r, "f"), "rb").read()

	def fn(r, ro, rw):
		seen = set()
		for i in range(50):
			seen.add(fresh(r))
			if i == 25:
				drop_caches()
		return sorted(seen)
	env.same_expect("fresh opens while both fds are open", _closing(fn), [b"bar"])
	env.same_expect("fresh open after closing both", fresh, b"bar")


@wtest("seed/f_mmap_shared_before_copyup", layers=seed_layers,
       oracle_note="kernel overlayfs is not an oracle here (it keeps mapping the lower file): "
       "the right answer is asserted on the binary only")
def t_seed_f(env):
	def fn(r):
		rofd = os.open(P(r, "f"), os.O_RDONLY)
		m = mmap.mmap(rofd, 3, mmap.MAP_SHARED, mmap.PROT_READ)
		try:
			before = m[:3]
			rwfd = os.open(P(r, "f"), os.O_WRONLY)
			os.write(rwfd, b"bar")
			os.close(rwfd)
			after = m[:3]
			drop_caches()
			return {"before": before, "after": after, "after drop_caches": m[:3]}
		finally:
			m.close()
			os.close(rofd)
	k = outcome(fn, env.km)
	env.notes.append("kernel overlayfs gives %r" % (k,))
	env.expect("MAP_SHARED mapping taken before the copy-up", fn,
		   {"before": b"foo", "after": b"bar", "after drop_caches": b"bar"})


# --- unlinked while open --------------------------------------------------------------------------

MARK = b"UNLINKED-BUT-OPEN-MARKER-%d" % os.getpid()


def _file_life(r, rel, flags):
	"""Opens rel, unlinks it, then uses the fd: read, write (if writable), fstat, fchmod,
	ftruncate; returns what each gave and whether the name is still there."""
	fd = os.open(P(r, rel), flags)
	out = {}
	try:
		os.unlink(P(r, rel))
		out["lookup after unlink"] = os.path.lexists(P(r, rel))
		out["read"] = os.pread(fd, 100, 0)
		if flags & (os.O_WRONLY | os.O_RDWR):
			out["write"] = os.pwrite(fd, MARK, 0)
			out["read back"] = os.pread(fd, 100, 0)
			os.fsync(fd)
		st = os.fstat(fd)
		out["st_nlink"], out["st_size"] = st.st_nlink, st.st_size
		out["fchmod"] = outcome(os.fchmod, fd, 0o600)
		out["mode"] = "0%o" % os.fstat(fd).st_mode
		out["fchown"] = outcome(os.fchown, fd, 123, 456)
		out["owner"] = (os.fstat(fd).st_uid, os.fstat(fd).st_gid)
		if flags & (os.O_WRONLY | os.O_RDWR):
			out["ftruncate"] = outcome(os.ftruncate, fd, 5)
			out["size after ftruncate"] = os.fstat(fd).st_size
		out["listing"] = sorted(os.listdir(os.path.dirname(P(r, rel)) or r))
	finally:
		os.close(fd)
	out["lookup after close"] = os.path.lexists(P(r, rel))
	return out


def _marker_left(root):
	"""Paths under root of regular files that still contain MARK."""
	found = []
	for dirpath, _, files in os.walk(root):
		for n in files:
			p = os.path.join(dirpath, n)
			try:
				with open(p, "rb") as f:
					if MARK in f.read():
						found.append(p)
			except OSError:
				pass
	return found


def _check_gone(env):
	"""After close the data must be gone from the binary's layers (RELEASE is asynchronous in
	FUSE: wait up to 3s)."""
	end = time.monotonic() + 3
	while True:
		left = _marker_left(env.up()) + _marker_left(P(env.p, "work"))
		if not left or time.monotonic() > end:
			break
		time.sleep(0.05)
	env.check(not left, "data of the unlinked file still in the binary's layers after "
		  "close: %r" % left)


def same_and_require(env, label, fn, args, require, not_oracle=()):
	"""fn(root, *args) returns a dict on both mounts: equal except the keys in not_oracle
	(kernel overlayfs gets those wrong: its values go to a note), and the binary's values of the
	keys in `require` must be the given ones."""
	k, p = outcome(fn, env.km, *args), outcome(fn, env.pm, *args)
	if k.err is None and p.err is None:
		drop = lambda o: Out(None, {x: y for x, y in o.value.items()  # noqa: E731
					    if x not in not_oracle})
		env.errs.extend(diff_outcomes(label, drop(k), drop(p), env.relax()))
		if not_oracle:
			env.notes.append("%s: kernel overlayfs is no oracle for %s; it gives %r"
					 % (label, ", ".join(not_oracle),
					    {x: k.value.get(x) for x in not_oracle}))
	else:
		env.errs.extend(diff_outcomes(label, k, p, env.relax()))
	if p.err is not None:
		env.errs.append("%s: binary failed: %r" % (label, p))
		return
	for key, want in require.items():
		env.check(p.value.get(key) == want, "%s: %s is %r, expected %r"
			  % (label, key, p.value.get(key), want))


FILE_REQUIRE = {"lookup after unlink": False, "st_nlink": 0, "fchmod": Out(None, None),
		"mode": "0100600", "fchown": Out(None, None), "owner": (123, 456),
		"lookup after close": False}
RW_REQUIRE = dict(FILE_REQUIRE, **{"write": len(MARK), "ftruncate": Out(None, None),
				   "size after ftruncate": 5})


@wtest("unlinked/lower_file_rdwr")
def t_unlinked_lower_rw(env):
	same_and_require(env, "open O_RDWR, unlink, use", _file_life, ("lo", os.O_RDWR),
			 dict(RW_REQUIRE, **{"read": b"lower only\n"}))
	same_and_require(env, "open O_RDWR, unlink, use (file in a lower dir)", _file_life,
			 ("ldir/sub/c", os.O_RDWR), dict(RW_REQUIRE, **{"read": b"c\n"}))
	env.same_look("after", "", "ldir/sub")
	_check_gone(env)


@wtest("unlinked/lower_file_rdonly")
def t_unlinked_lower_ro(env):
	# kernel overlayfs cannot copy up an unlinked lower file (fchmod/fchown fail with EEXIST)
	# and fstat shows the lower inode's st_nlink 1
	same_and_require(env, "open O_RDONLY, unlink, use", _file_life, ("lo2", os.O_RDONLY),
			 dict(FILE_REQUIRE, **{"read": b"second lower file\n"}),
			 not_oracle=("st_nlink", "fchmod", "fchown", "mode", "owner"))
	env.same_look("after", "")


@wtest("unlinked/upper_file")
def t_unlinked_upper(env):
	same_and_require(env, "open O_RDWR, unlink, use (upper)", _file_life, ("up", os.O_RDWR),
			 dict(RW_REQUIRE, **{"read": b"upper only\n"}))
	same_and_require(env, "open O_RDWR, unlink, use (lower+upper)", _file_life,
			 ("both", os.O_RDWR), dict(RW_REQUIRE, **{"read": b"both: upper version\n"}))
	env.same_look("after", "")
	_check_gone(env)


def _dir_life(r, rel):
	fd = os.open(P(r, rel), os.O_RDONLY | os.O_DIRECTORY)
	out = {}
	try:
		os.rmdir(P(r, rel))
		out["lookup after rmdir"] = os.path.lexists(P(r, rel))
		st = os.fstat(fd)
		out["st_nlink"] = st.st_nlink
		out["fchmod"] = outcome(os.fchmod, fd, 0o700)
		out["mode"] = "0%o" % os.fstat(fd).st_mode
		out["listdir(fd)"] = outcome(lambda: sorted(os.listdir(fd)))
		out["create inside"] = outcome(lambda: os.close(os.open(
			"x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)))
		out["mkdir inside"] = outcome(os.mkdir, "d", 0o755, dir_fd=fd)
		out["fsync"] = outcome(os.fsync, fd)
	finally:
		os.close(fd)
	out["lookup after close"] = os.path.lexists(P(r, rel))
	return out


DIR_REQUIRE = {"lookup after rmdir": False, "st_nlink": 0, "fchmod": Out(None, None),
	       "mode": "040700", "listdir(fd)": Out(None, []), "create inside": Out("ENOENT", None),
	       "mkdir inside": Out("ENOENT", None), "lookup after close": False}


@wtest("unlinked/dir")
def t_unlinked_dir(env):
	# kernel overlayfs: fstat of an rmdir'ed lower-only directory shows the lower's st_nlink,
	# and fchmod fails with ENOTDIR
	same_and_require(env, "open, rmdir, use (lower dir)", _dir_life, ("emptyl",), DIR_REQUIRE,
			 not_oracle=("st_nlink", "fchmod", "mode"))
	same_and_require(env, "open, rmdir, use (upper dir)", _dir_life, ("uempty",), DIR_REQUIRE)
	same_and_require(env, "mkdir, open, rmdir, use (new dir in lower dir)",
			 lambda r: (os.mkdir(P(r, "ldir/nd")), _dir_life(r, "ldir/nd"))[1], (),
			 DIR_REQUIRE)
	env.same_look("after", "", "ldir")
	for rel in ("emptyl", "uempty", "ldir/nd"):
		env.check(not os.path.isdir(env.up(rel)),
			  "rmdir'ed %s is still a directory in the binary's upper" % rel)
