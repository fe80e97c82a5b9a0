# SPDX-License-Identifier: GPL-2.0-or-later
"""write_ops.py - every modifying operation, on lower-only, upper-only and lower+upper entries,
done on kernel overlayfs and on the binary and compared (write_env.py explains the fixture).

Names from write_env.std_layers(): lo, lo2, mid (lower only), up (upper only), both (in a lower and
the upper), ldir (lower-only dir, entries in two lowers), bdir (merged), udir (upper-only dir),
emptyl (empty lower dir), uempty (empty upper dir), gone/gonedir (whited out), lsym -> lo, suid.
"""

import errno
import fcntl
import os
import random
import stat
import subprocess

from layerspec import F
from write_env import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, RENAME_EXCHANGE,
		       RENAME_NOREPLACE, UTIME_NOW, UTIME_OMIT, P, fallocate, look, now_ns,
		       renameat2, second_process, statd, std_layers, utimensat, write_file,
		       wtest)

WR, RW = os.O_WRONLY, os.O_RDWR


# --- create, mknod, mkdir, symlink, link ----------------------------------------------------------

def _create(r, rel, data, mode, flags=os.O_WRONLY | os.O_CREAT):
	fd = os.open(P(r, rel), flags, mode)
	try:
		os.write(fd, data)
		return statd(P(r, rel))
	finally:
		os.close(fd)


@wtest("op/create")
def t_create(env):
	news = ("new", "ldir/new", "ldir/sub/new", "bdir/new", "udir/new", "gone", "gonedir")
	for rel in news:
		env.same("create " + rel, _create, rel, b"created " + rel.encode(), 0o640)
	for rel in ("lo", "up", "both", "lsym"):
		# O_CREAT without O_EXCL opens the existing file: no truncation, no new file
		env.same("O_CREAT existing " + rel, _create, rel, b"", 0o600)
	env.same_look("after create", "", "ldir", "ldir/sub", "bdir", "udir", *news)
	env.same_look("existing kept", "lo", "up", "both", "lsym")


@wtest("op/create_excl")
def t_create_excl(env):
	ex = os.O_WRONLY | os.O_CREAT | os.O_EXCL
	for rel in ("lo", "up", "both", "mid", "ldir", "lsym", "ldir/a", "bdir/x", "bdir/y",
		    "new", "gone", "gonedir", "ldir/sub/new", "nodir/new"):
		env.same("O_EXCL " + rel, _create, rel, b"excl\n", 0o600, ex)
	env.same_look("after", "", "ldir/sub", "new", "gone", "gonedir", "lo", "lsym")


def _mknod(r, rel, mode, dev=0):
	os.mknod(P(r, rel), mode, dev)
	return statd(P(r, rel))


@wtest("op/mknod")
def t_mknod(env):
	kinds = (("fifo", stat.S_IFIFO | 0o640, 0), ("sock", stat.S_IFSOCK | 0o755, 0),
		 ("chr", stat.S_IFCHR | 0o600, os.makedev(1, 3)),
		 ("blk", stat.S_IFBLK | 0o660, os.makedev(7, 1)))
	made = []
	for where in ("", "ldir/", "ldir/sub/", "bdir/", "udir/"):
		for n, mode, dev in kinds:
			env.same("mknod " + where + n, _mknod, where + n, mode, dev)
			made.append(where + n)
	env.same("mknod fifo over a whiteout", _mknod, "gone", stat.S_IFIFO | 0o600)
	env.same("mknod over lower file", _mknod, "lo", stat.S_IFIFO | 0o600)
	env.same("mknod over upper file", _mknod, "up", stat.S_IFCHR | 0o600, os.makedev(1, 3))
	env.same_look("after", "", "ldir", "ldir/sub", "bdir", "udir", "gone", *made)


def _mkdir(r, rel, mode):
	os.mkdir(P(r, rel), mode)
	return look(P(r, rel))


@wtest("op/mkdir")
def t_mkdir(env):
	for rel in ("nd", "ldir/nd", "ldir/sub/nd", "bdir/nd", "udir/nd", "nd/nested", "gonedir",
		    "gone"):
		env.same("mkdir " + rel, _mkdir, rel, 0o750)
	for rel in ("lo", "ldir", "bdir", "udir", "emptyl", "nope/x", "lo/x", "lsym"):
		env.same("mkdir existing/bad " + rel, _mkdir, rel, 0o755)
	# a directory made over a whited-out lower directory must be empty (opaque)
	env.same("create in recreated gonedir", _create, "gonedir/f", b"f", 0o644)
	env.same_look("after", "", "ldir", "ldir/sub", "bdir", "udir", "gonedir", "nd")


def _symlink(r, rel, target):
	os.symlink(target, P(r, rel))
	return look(P(r, rel))


@wtest("op/symlink")
def t_symlink(env):
	for rel, target in (("s1", "lo"), ("ldir/s2", "../up"), ("ldir/sub/s3", "c"),
			    ("bdir/s4", "/etc/passwd"), ("gone", "dangling"), ("udir/s5", "x" * 300)):
		env.same("symlink " + rel, _symlink, rel, target)
	for rel in ("lo", "lsym", "ldir", "nodir/s"):
		env.same("symlink existing/bad " + rel, _symlink, rel, "t")
	env.same("read through new symlink", lambda r: open(P(r, "s1"), "rb").read())
	env.same_look("after", "", "ldir", "ldir/sub", "bdir", "udir")


def _link(r, src, dst, follow=True):
	os.link(P(r, src), P(r, dst), follow_symlinks=follow)
	a, b = os.stat(P(r, src), follow_symlinks=False), os.stat(P(r, dst), follow_symlinks=False)
	return {"same_ino": a.st_ino == b.st_ino, "nlink": (a.st_nlink, b.st_nlink)}


@wtest("op/link")
def t_link(env):
	for src, dst in (("lo", "lo.l"), ("up", "up.l"), ("both", "both.l"), ("ldir/a", "udir/a.l"),
			 ("mid", "ldir/sub/mid.l"), ("bdir/lx", "bdir/lx.l"), ("lo", "ldir/lo.l2"),
			 ("udir/u", "ldir/u.l")):
		env.same("link %s %s" % (src, dst), _link, src, dst)
	env.same("link symlink itself", _link, "lsym", "lsym.l", False)
	for src, dst in (("ldir", "ldir.l"), ("lo2", "up"), ("lo2", "bdir/x"), ("gone", "g.l"),
			 ("lo2", "gonedir/x"), ("nope", "n.l")):
		env.same("link bad %s %s" % (src, dst), _link, src, dst)
	# data written through one name is read through the other
	env.same("write via lo.l", lambda r: write_file(P(r, "lo.l"), b"through the link\n"))
	env.same_look("links", "lo", "lo.l", "ldir/lo.l2", "mid", "ldir/sub/mid.l")
	env.same("unlink lo", lambda r: os.unlink(P(r, "lo")))
	env.same_look("after unlink", "", "lo.l", "ldir/lo.l2", "ldir", "udir")


# --- unlink, rmdir --------------------------------------------------------------------------------

@wtest("op/unlink")
def t_unlink(env):
	rels = ("lo", "up", "both", "mid", "ldir/a", "ldir/m", "ldir/sub/c", "bdir/x", "bdir/y",
		"lsym", "udir/u", "suid")
	for rel in rels:
		env.same("unlink " + rel, lambda r, x: os.unlink(P(r, x)), rel)
		env.same_look("unlinked", rel)
	for rel in ("nope", "ldir", "bdir", "gone", "gonedir/a", "lo/x"):
		env.same("unlink bad " + rel, lambda r, x: os.unlink(P(r, x)), rel)
	env.same_look("listings", "", "ldir", "ldir/sub", "bdir", "udir")
	# a name made again shows only the new file, never the lower one
	env.same("recreate lo", _create, "lo", b"new lo\n", 0o600)
	env.same("recreate ldir/a", _create, "ldir/a", b"new a\n", 0o600)
	env.same("recreate mid as dir", _mkdir, "mid", 0o700)
	env.same_look("recreated", "lo", "ldir/a", "mid", "", "ldir")


@wtest("op/rmdir_nonempty")
def t_rmdir_nonempty(env):
	rm = lambda r, x: os.rmdir(P(r, x))  # noqa: E731
	for rel in ("ldir", "bdir", "ldir/sub", "udir", "lo", "nope", "gonedir", "lsym"):
		env.same("rmdir " + rel, rm, rel)
	env.same("unlink bdir/y (its only upper entry)", lambda r: os.unlink(P(r, "bdir/y")))
	env.same("rmdir bdir with lower entries left", rm, "bdir")
	for rel in ("emptyl", "uempty"):
		env.same("rmdir empty " + rel, rm, rel)
		env.same_look("rmdir'ed", rel)
	env.same_look("after", "", "bdir", "ldir")


@wtest("op/rmdir_emptied")
def t_rmdir_emptied(env):
	rm = lambda r, x: os.rmdir(P(r, x))  # noqa: E731
	ul = lambda r, x: os.unlink(P(r, x))  # noqa: E731
	for rel in ("ldir/a", "ldir/b", "ldir/m", "ldir/sub/c"):
		env.same("unlink " + rel, ul, rel)
	env.same("rmdir ldir/sub", rm, "ldir/sub")
	env.same_look("emptied", "ldir")
	env.same("rmdir emptied ldir", rm, "ldir")
	for rel in ("bdir/x", "bdir/lx", "bdir/y"):
		env.same("unlink " + rel, ul, rel)
	env.same("rmdir emptied bdir", rm, "bdir")
	env.same_look("gone for good", "ldir", "ldir/a", "ldir/sub", "ldir/sub/c", "bdir", "bdir/x", "")
	env.same("mkdir ldir again", _mkdir, "ldir", 0o755)
	env.same("mkdir bdir again", _mkdir, "bdir", 0o755)
	env.same_look("recreated dirs are empty", "ldir", "bdir", "ldir/a", "bdir/lx")


# --- rename ---------------------------------------------------------------------------------------

def _ren(r, a, b, flags=0):
	renameat2(P(r, a), P(r, b), flags)


def _rename_cases(env, cases, flags, what):
	for a, b in cases:
		env.same("%s %s -> %s" % (what, a, b), _ren, a, b, flags)
		env.same_look("after %s %s -> %s" % (what, a, b), a, b)


@wtest("op/rename_file")
def t_rename_file(env):
	_rename_cases(env, (
		("lo", "lo.new"), ("up", "up.new"), ("both", "both.new"),
		("mid", "lo2"),			# over a lower file
		("lo2", "udir/u"),		# over an upper file, across directories
		("ldir/a", "udir/a2"),		# lower dir -> upper dir
		("udir/a2", "ldir/sub/a3"),	# into a lower-only subdirectory
		("bdir/x", "gone"),		# over a whiteout
		("lsym", "ldir/lsym"),		# a symlink
		("ldir/b", "ldir/b"),		# onto itself
		("lo.new", "ldir"), ("emptyl", "lo.new"), ("nope", "x"), ("up.new", "nodir/x"),
		("gonedir", "x"), ("bdir/lx", "bdir/y"),
	), 0, "rename")
	env.same_look("listings", "", "ldir", "ldir/sub", "bdir", "udir")


@wtest("op/rename_noreplace")
def t_rename_noreplace(env):
	_rename_cases(env, (
		("lo", "lo2"), ("lo", "up"), ("up", "both"), ("ldir/sub", "bdir"), ("ldir/a", "ldir/b"),
		("lo", "gone"), ("up", "ldir/new"), ("ldir/sub", "gonedir"), ("mid", "bdir/mid"),
		("bdir/y", "udir/y"),
	), RENAME_NOREPLACE, "rename NOREPLACE")
	env.same_look("listings", "", "ldir", "bdir", "udir", "gonedir")


@wtest("op/rename_exchange")
def t_rename_exchange(env):
	_rename_cases(env, (
		("lo", "up"), ("lo2", "both"), ("ldir/a", "udir/u"), ("bdir/x", "ldir/sub"),
		("mid", "nope"), ("mid", "mid"),
	), RENAME_EXCHANGE, "rename EXCHANGE")
	env.same_look("listings", "", "ldir", "ldir/sub", "bdir", "bdir/x", "udir")


@wtest("op/rename_dir")
def t_rename_dir(env):
	_rename_cases(env, (
		("ldir", "ldir2"),		# a lower-only dir: must work (no EXDEV)
		("bdir", "bdir2"),		# a merged dir
		("udir", "ldir2/udir"),		# an upper dir into the renamed lower dir
		("ldir2/sub", "bdir2/sub"),	# a lower subdir across directories
		("emptyl", "uempty"),		# over an empty upper dir
		("bdir2", "ldir2"),		# over a non-empty merged dir: ENOTEMPTY
		("ldir2", "ldir2/udir/x"),	# into itself: EINVAL
		("bdir2", "lo"),		# over a file: ENOTDIR
	), 0, "rename dir")
	env.same_look("inside renamed dirs", "ldir2", "ldir2/m", "ldir2/a", "ldir2/udir",
		      "ldir2/udir/u", "bdir2", "bdir2/x", "bdir2/lx", "bdir2/y", "bdir2/sub",
		      "bdir2/sub/c", "ldir", "bdir", "uempty")
	env.same("create in renamed dirs", lambda r: (_create(r, "bdir2/sub/new", b"n", 0o644),
						      _create(r, "ldir2/new", b"n", 0o644))[0])
	env.same("mkdir ldir again", _mkdir, "ldir", 0o755)
	env.same("rename ldir2 back over the new empty ldir", _ren, "ldir2", "ldir")
	env.same_look("back", "", "ldir", "ldir/a", "ldir/udir/u", "ldir/new", "ldir2")


@wtest("op/rename_dir_exchange")
def t_rename_dir_exchange(env):
	_rename_cases(env, (
		("ldir", "bdir"), ("ldir/sub", "udir"), ("emptyl", "uempty"), ("bdir", "lo"),
	), RENAME_EXCHANGE, "rename EXCHANGE dir")
	env.same_look("listings", "", "ldir", "ldir/sub", "bdir", "bdir/sub", "udir", "emptyl",
		      "uempty", "lo")


# --- setattr --------------------------------------------------------------------------------------

def _times(r, rel):
	return statd(P(r, rel), times=True)


@wtest("op/chmod")
def t_chmod(env):
	for rel, mode in (("lo", 0o600), ("up", 0o644), ("both", 0o600), ("ldir", 0o700),
			  ("ldir/sub/c", 0o644), ("suid", 0o755), ("mid", 0o4711), ("bdir", 0o1777),
			  ("emptyl", 0o2750)):
		env.same("chmod %s 0%o" % (rel, mode), lambda r, x, m: os.chmod(P(r, x), m), rel, mode)
		env.same("after chmod", _times, rel)
	env.same("chmod through symlink", lambda r: os.chmod(P(r, "lsym"), 0o666))
	env.same("fchmod on O_RDONLY fd of lower file", lambda r: _fd_call(r, "lo2", os.O_RDONLY,
									 os.fchmod, 0o640))
	env.same_look("after", "lo", "lsym", "lo2", "ldir", "ldir/sub")


def _fd_call(r, rel, flags, fn, *args):
	fd = os.open(P(r, rel), flags)
	try:
		return fn(fd, *args)
	finally:
		os.close(fd)


@wtest("op/chown")
def t_chown(env):
	for rel, uid, gid in (("lo", 1234, 567), ("up", -1, 789), ("both", 0, 0), ("ldir", 4321, -1),
			      ("suid", 2000, 2000), ("ldir/sub/c", 0, 100), ("gone", 1, 1)):
		env.same("chown %s %d:%d" % (rel, uid, gid),
			 lambda r, x, u, g: os.chown(P(r, x), u, g), rel, uid, gid)
		env.same("after chown", _times, rel)
	env.same("lchown symlink", lambda r: os.chown(P(r, "lsym"), 77, 88, follow_symlinks=False))
	env.same("fchown", lambda r: _fd_call(r, "lo2", os.O_RDONLY, os.fchown, 99, 98))
	env.same_look("after", "lsym", "lo2", "suid", "lo")


@wtest("op/truncate")
def t_truncate(env):
	for rel, size in (("lo", 5), ("both", 100000), ("up", 0), ("ldir/sub/c", 1 << 20),
			  ("mid", 0), ("ldir", 0), ("nope", 1)):
		env.same("truncate %s %d" % (rel, size), lambda r, x, s: os.truncate(P(r, x), s),
			 rel, size)
	env.same("ftruncate O_WRONLY lower", lambda r: _fd_call(r, "lo2", WR, os.ftruncate, 3))
	env.same("ftruncate O_RDONLY", lambda r: _fd_call(r, "bdir/x", os.O_RDONLY, os.ftruncate, 1))
	env.same("ftruncate grow then read", lambda r: (_fd_call(r, "ldir/a", RW, os.ftruncate, 9000),
							read_all(r, "ldir/a"))[1])
	env.same_look("after", "lo", "both", "up", "ldir/sub/c", "mid", "lo2", "bdir/x")


def read_all(r, rel):
	with open(P(r, rel), "rb") as f:
		return f.read()


A_NS, M_NS = 1_600_000_000_111_111_111, 1_550_000_000_222_222_222


def _utime_now(r, rel, atime, mtime, nofollow=False):
	"""utimensat with UTIME_NOW/UTIME_OMIT: a field set to NOW must land within the call's
	window (coarse clocks: 50ms slack); others are returned exactly."""
	before = now_ns()
	utimensat(P(r, rel), atime, mtime, nofollow)
	after = now_ns()
	st = os.stat(P(r, rel), follow_symlinks=not nofollow)
	out = {}
	for name, v, got in (("atime", atime, st.st_atime_ns), ("mtime", mtime, st.st_mtime_ns)):
		if v == UTIME_NOW:
			out[name] = "now" if before - 50_000_000 <= got <= after + 50_000_000 else got
		else:
			out[name] = got
	return out


@wtest("op/utimes")
def t_utimes(env):
	for rel in ("lo", "up", "both", "ldir", "bdir/x"):
		env.same("utime " + rel, lambda r, x: os.utime(P(r, x), ns=(A_NS, M_NS)), rel)
		env.same("after utime", _times, rel)
	for rel, a, m in (("lo2", UTIME_NOW, UTIME_OMIT), ("mid", UTIME_OMIT, UTIME_NOW),
			  ("ldir/a", UTIME_NOW, UTIME_NOW), ("ldir/b", UTIME_OMIT, UTIME_OMIT),
			  ("ldir/sub/c", A_NS, UTIME_OMIT), ("up", UTIME_OMIT, M_NS + 5)):
		env.same("utimensat %s" % rel, _utime_now, rel, a, m)
	env.same("utimensat symlink nofollow", _utime_now, "lsym", A_NS, M_NS, True)
	env.same("utime NULL (both now)", lambda r: _utime_now(r, "suid", UTIME_NOW, UTIME_NOW))


# --- xattrs, ACLs ---------------------------------------------------------------------------------

def _setx(r, rel, name, value, flags=0):
	os.setxattr(P(r, rel), name, value, flags, follow_symlinks=False)
	return os.getxattr(P(r, rel), name, follow_symlinks=False)


def _rmx(r, rel, name):
	os.removexattr(P(r, rel), name, follow_symlinks=False)


def _listx(r, rel, prefix):
	return sorted(n for n in os.listxattr(P(r, rel), follow_symlinks=False)
		      if n.startswith(prefix))


def _getx(r, rel, name):
	return os.getxattr(P(r, rel), name, follow_symlinks=False)


def _xattr_ns(env, prefix, rels):
	for rel in rels:
		env.same("set %snew on %s" % (prefix, rel), _setx, rel, prefix + "new",
			 b"v-" + rel.encode())
		env.same("list %s" % rel, _listx, rel, prefix)
	env.same("big value", _setx, "lo2", prefix + "big", bytes(range(256)) * 15)
	env.same("XATTR_CREATE on existing", _setx, "lo", prefix + "new", b"x", os.XATTR_CREATE)
	env.same("XATTR_REPLACE on missing", _setx, "mid", prefix + "none", b"x", os.XATTR_REPLACE)
	env.same("XATTR_REPLACE on existing", _setx, "lo", prefix + "new", b"replaced",
		 os.XATTR_REPLACE)
	for rel in rels:
		env.same("remove %snew from %s" % (prefix, rel), _rmx, rel, prefix + "new")
		env.same("get removed on %s" % rel, _getx, rel, prefix + "new")
		env.same("list after remove %s" % rel, _listx, rel, prefix)
	env.same("remove missing", _rmx, "mid", prefix + "none")


@wtest("op/xattr_user")
def t_xattr_user(env):
	_xattr_ns(env, "user.", ("lo", "up", "both", "ldir", "bdir", "ldir/sub/c"))
	env.same("remove a lower xattr", _rmx, "lo", "user.k")
	env.same("replace an upper xattr", _setx, "both", "user.k", b"replaced")
	env.same("user xattr on a symlink", _setx, "lsym", "user.x", b"x")
	env.same_look("after", "lo", "both", "ldir", "ldir/sub/c")


@wtest("op/xattr_trusted")
def t_xattr_trusted(env):
	_xattr_ns(env, "trusted.", ("lo", "up", "both", "ldir", "lsym"))
	# the overlay's own xattrs are not visible through the mount
	env.same("mkdir over a whiteout (opaque)", _mkdir, "gonedir", 0o755)
	env.same("get trusted.overlay.opaque", _getx, "gonedir", "trusted.overlay.opaque")
	env.same("list opaque dir", _listx, "gonedir", "trusted.")


@wtest("op/xattr_security")
def t_xattr_security(env):
	_xattr_ns(env, "security.", ("lo", "up", "both", "ldir"))


def _acl(r, rel, *setfacl_args, default=False):
	"""Runs setfacl (if args), returns its exit status and getfacl's numeric output."""
	out = {}
	if setfacl_args:
		cp = subprocess.run(["setfacl"] + list(setfacl_args) + [P(r, rel)], capture_output=True,
				    timeout=15)
		out["setfacl"] = cp.returncode
	cp = subprocess.run(["getfacl", "-n", "-p", "--omit-header"] + (["-d"] if default else [])
			    + [P(r, rel)], capture_output=True, timeout=15)
	out["getfacl"] = cp.stdout.decode()
	out["mode"] = "0%o" % stat.S_IMODE(os.stat(P(r, rel)).st_mode)
	return out


@wtest("op/acl_access")
def t_acl_access(env):
	for rel in ("lo", "up", "both", "ldir", "bdir/x"):
		env.same("setfacl -m on " + rel, _acl, rel, "-m", "u:1234:rw,g:567:r")
	env.same("chmod changes the mask", lambda r: (os.chmod(P(r, "lo"), 0o600), _acl(r, "lo"))[1])
	env.same("setfacl -x", _acl, "both", "-x", "u:1234")
	env.same("setfacl -b", _acl, "up", "-b")
	env.same("raw system.posix_acl_access present", lambda r: "system.posix_acl_access" in
		 os.listxattr(P(r, "ldir")))
	env.same_look("after", "lo", "up", "both", "ldir")


def _mkdir_acl(r, rel):
	os.mkdir(P(r, rel), 0o777)
	out = _acl(r, rel)
	out["default"] = _acl(r, rel, default=True)["getfacl"]
	return out


@wtest("op/acl_default")
def t_acl_default(env):
	env.same("default ACL on a lower dir", _acl, "ldir", "-d", "-m", "u:1234:rwx,g::rx,o::-",
		 default=True)
	env.same("default ACL on an upper dir", _acl, "udir", "-d", "-m", "g:567:rx,o::r",
		 default=True)
	for d in ("ldir", "udir"):
		env.same("file created in " + d, lambda r, x: (_create(r, x + "/newf", b"n", 0o666),
							       _acl(r, x + "/newf"))[1], d)
		env.same("dir created in " + d, _mkdir_acl, d + "/newd")
	env.same("existing subdir unaffected", _acl, "ldir/sub")
	env.same("remove default ACL", _acl, "udir", "-k", default=True)


# --- open, write, sync, fallocate, seek, copy_file_range ------------------------------------------

def _open_io(r, rel, flags, ops):
	"""Opens rel with flags and runs ops: ("w", data) write, ("r", n) read, ("s", off) lseek;
	returns the list of results."""
	fd = os.open(P(r, rel), flags)
	try:
		res = []
		for op, arg in ops:
			if op == "w":
				res.append(os.write(fd, arg))
			elif op == "r":
				res.append(os.read(fd, arg))
			else:
				res.append(os.lseek(fd, arg, os.SEEK_SET))
		return res
	finally:
		os.close(fd)


@wtest("op/open_flags")
def t_open_flags(env):
	for label, rel, flags, ops in (
		("O_WRONLY partial overwrite of lower", "lo", WR, [("w", b"XY")]),
		("O_RDWR read then write", "both", RW, [("r", 5), ("w", b"ZZ"), ("s", 0), ("r", 100)]),
		("O_TRUNC upper", "up", WR | os.O_TRUNC, [("w", b"t")]),
		("O_APPEND lower", "lo2", WR | os.O_APPEND, [("w", b"app1\n"), ("s", 0),
							     ("w", b"app2\n")]),
		("O_APPEND|O_RDWR top lower", "mid", RW | os.O_APPEND, [("w", b"more\n"), ("s", 0),
									 ("r", 100)]),
		("O_RDWR|O_TRUNC deep lower", "ldir/sub/c", RW | os.O_TRUNC, [("r", 10), ("w", b"c2")]),
		("O_WRONLY through symlink", "lsym", WR, [("w", b"via symlink")]),
		("O_WRONLY|O_NOFOLLOW symlink", "lsym", WR | os.O_NOFOLLOW, [("w", b"no")]),
		("O_WRONLY on a directory", "ldir", WR, []),
		("O_RDONLY|O_TRUNC lower", "bdir/lx", os.O_RDONLY | os.O_TRUNC, [("r", 100)]),
		("O_WRONLY write past EOF", "ldir/a", WR, [("s", 10000), ("w", b"far")]),
	):
		env.same(label, _open_io, rel, flags, ops)
	env.same_look("after", "lo", "both", "up", "lo2", "mid", "ldir/sub/c", "bdir/lx", "ldir/a")


def _sendfile(r, src, rel, flags, off=0):
	fdin = os.open(src, os.O_RDONLY)
	fdout = os.open(P(r, rel), flags, 0o644)
	try:
		os.lseek(fdout, off, os.SEEK_SET)
		total, size = 0, os.fstat(fdin).st_size
		while total < size:
			n = os.sendfile(fdout, fdin, None, size - total)
			if n == 0:
				break
			total += n
		return total
	finally:
		os.close(fdin)
		os.close(fdout)


def _splice(r, rel, data):
	rp, wp = os.pipe()
	fd = os.open(P(r, rel), WR)
	try:
		os.write(wp, data)
		return os.splice(rp, fd, len(data))
	finally:
		for x in (rp, wp, fd):
			os.close(x)


@wtest("op/write_sendfile")
def t_write_sendfile(env):
	src = os.path.join(env.base, "sendfile.src")
	with open(src, "wb") as f:
		f.write(random.Random(7).randbytes(300 * 1024 + 123))
	env.same("sendfile into a new file", _sendfile, src, "sf.new", WR | os.O_CREAT | os.O_EXCL)
	env.same("sendfile into a lower file", _sendfile, src, "lo", WR, 4)
	env.same("sendfile appending to upper", _sendfile, src, "up", WR | os.O_APPEND)
	env.same("sendfile into a lower-dir file", _sendfile, src, "ldir/sub/c", WR | os.O_TRUNC)
	env.same("splice from a pipe into a lower file", _splice, "mid", b"spliced!" * 1000)
	env.same_look("after", "sf.new", "lo", "up", "ldir/sub/c", "mid")


@wtest("op/fsync")
def t_fsync(env):
	def sync(r, rel, flags, fn, data=None):
		fd = os.open(P(r, rel), flags)
		try:
			if data:
				os.write(fd, data)
			return fn(fd)
		finally:
			os.close(fd)
	for label, rel, flags, fn, data in (
		("fsync after write, lower", "lo", WR, os.fsync, b"synced"),
		("fdatasync after write, upper", "up", WR, os.fdatasync, b"synced"),
		("fsync O_RDONLY lower", "lo2", os.O_RDONLY, os.fsync, None),
		("fdatasync O_RDONLY lower", "mid", os.O_RDONLY, os.fdatasync, None),
		("fsync dir fd, lower dir", "ldir", os.O_RDONLY | os.O_DIRECTORY, os.fsync, None),
		("fsync dir fd, merged dir", "bdir", os.O_RDONLY | os.O_DIRECTORY, os.fsync, None),
		("fsync dir fd, upper dir", "udir", os.O_RDONLY | os.O_DIRECTORY, os.fsync, None),
		("fdatasync dir fd, root", "", os.O_RDONLY | os.O_DIRECTORY, os.fdatasync, None),
	):
		env.same(label, sync, rel, flags, fn, data)
	env.same_look("after", "lo", "up", "lo2", "mid")


def _falloc(r, rel, flags, mode, off, length):
	fd = os.open(P(r, rel), flags)
	try:
		fallocate(fd, mode, off, length)
		st = os.fstat(fd)
		return {"size": st.st_size, "allocated_covers": st.st_blocks * 512 >= off + length,
			"head": os.pread(fd, 32, 0)}
	finally:
		os.close(fd)


@wtest("op/fallocate")
def t_fallocate(env):
	keep, punch = FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	for label, rel, flags, mode, off, length in (
		("mode 0 extends a lower file", "lo", WR, 0, 0, 1 << 20),
		("KEEP_SIZE on an upper file", "up", WR, keep, 0, 1 << 20),
		("PUNCH_HOLE in an upper file", "both", RW, punch, 2, 5),
		("PUNCH_HOLE in a lower file", "ldir/a", RW, punch, 0, 1),
		("KEEP_SIZE on a lower file", "lo2", WR, keep, 4096, 8192),
		("PUNCH_HOLE without KEEP_SIZE", "mid", WR, FALLOC_FL_PUNCH_HOLE, 0, 2),
		("on an O_RDONLY fd", "bdir/x", os.O_RDONLY, 0, 0, 10),
	):
		env.same(label, _falloc, rel, flags, mode, off, length)
	env.same_look("after", "lo", "up", "both", "ldir/a", "lo2", "mid", "bdir/x")


SPARSE = 16 << 20


def sparse_layers():
	lowers, upper = std_layers()
	chunks = [(0, b"head"), (4 << 20, b"middle"), (SPARSE - 4, b"tail")]
	lowers[1]["sparse"] = F(size=SPARSE, chunks=chunks)
	lowers[1]["sparse2"] = F(size=SPARSE, chunks=chunks)
	upper["usparse"] = F(size=SPARSE, chunks=chunks)
	return lowers, upper


def seek_map(fd):
	"""[(data, hole)...] as SEEK_DATA/SEEK_HOLE report them, plus SEEK_HOLE at 0 and
	SEEK_DATA past EOF."""
	out, off = [], 0
	while True:
		try:
			d = os.lseek(fd, off, os.SEEK_DATA)
		except OSError as e:
			if e.errno != errno.ENXIO:
				raise
			break
		h = os.lseek(fd, d, os.SEEK_HOLE)
		out.append((d, h))
		off = h
	try:
		past = os.lseek(fd, os.fstat(fd).st_size + 10, os.SEEK_DATA)
	except OSError as e:
		past = errno.errorcode[e.errno]
	return {"map": out, "hole_at_0": os.lseek(fd, 0, os.SEEK_HOLE), "data_past_eof": past}


def _seek(r, rel, flags=os.O_RDONLY):
	return _fd_call(r, rel, flags, seek_map)


def _seek_sane(r, rel, flags=os.O_RDONLY, written=()):
	"""After a copy-up the data extents depend on the copier's granularity (the kernel copies
	1 MiB chunks), so only this must hold: every written byte is inside a data extent, the data
	extents are a small part of the file (the holes were kept), SEEK_DATA past EOF is ENXIO."""
	m = _fd_call(r, rel, flags, seek_map)
	data_len = sum(h - d for d, h in m["map"])
	return {"written bytes in data extents": all(any(d <= off < h for d, h in m["map"])
						    for off in (0, 4 << 20, SPARSE - 1) + written),
		"holes kept (data < 1/4 of size)": data_len < SPARSE // 4,
		"data_past_eof": m["data_past_eof"]}


@wtest("op/seek_sparse", layers=sparse_layers)
def t_seek_sparse(env):
	env.same("lower sparse file before copy-up", _seek, "sparse")
	env.same("upper sparse file", _seek, "usparse")
	env.same("copy-up by open O_WRONLY", _seek_sane, "sparse", WR)
	env.same("after copy-up", _seek_sane, "sparse")
	env.same("copy-up by chmod", lambda r: os.chmod(P(r, "sparse2"), 0o600))
	env.same("after chmod copy-up", _seek_sane, "sparse2")
	env.same("write into a hole", lambda r: _fd_call(r, "sparse", WR, os.pwrite, b"x", 8 << 20))
	env.same("after writing into a hole", _seek_sane, "sparse", written=(8 << 20,))
	for rel in ("sparse", "sparse2"):
		for side, path in (("kernel", env.kup(rel)), ("binary", env.up(rel))):
			st = os.stat(path)
			env.check(st.st_blocks * 512 < st.st_size // 4,
				  "%s's upper %s is not sparse after copy-up: %d blocks for %d bytes"
				  % (side, rel, st.st_blocks, st.st_size))


def _cfr(r, src, dst, n, off_in, off_out, dflags=WR):
	src = src(r) if callable(src) else P(r, src)
	dst = dst(r) if callable(dst) else P(r, dst)
	fi = os.open(src, os.O_RDONLY)
	fo = os.open(dst, dflags, 0o644)
	try:
		return os.copy_file_range(fi, fo, n, off_in, off_out)
	finally:
		os.close(fi)
		os.close(fo)


@wtest("op/copy_file_range")
def t_copy_file_range(env):
	new = WR | os.O_CREAT | os.O_EXCL
	env.same("lower -> new file", _cfr, "lo", "cfr.new", 1 << 20, 0, 0, new)
	env.same("upper -> lower file at offset", _cfr, "up", "lo2", 6, 0, 3)
	env.same("lower+upper -> top-lower file", _cfr, "both", "mid", 100, 2, 0)
	env.same("lower -> file in lower dir, past EOF", _cfr, "ldir/b", "ldir/sub/c", 2, 0, 100)
	env.same("within one lower file", _cfr, "lo", "lo", 4, 0, 6)
	outside = lambda r: r + ".out"  # noqa: E731  a file beside the mountpoint, off the mount
	env.same("mount -> outside file", _cfr, "lo", outside, 100, 0, 0, WR | os.O_CREAT)
	env.same_look("after", "cfr.new", "lo2", "mid", "ldir/sub/c", "lo")


# --- locks ----------------------------------------------------------------------------------------

LOCK_PROBE = r"""
import errno, fcntl, os, sys
path, kind, how = sys.argv[1:4]
fd = os.open(path, os.O_RDWR if kind == "w" else os.O_RDONLY)
try:
	if how == "posix":
		fcntl.lockf(fd, (fcntl.LOCK_EX if kind == "w" else fcntl.LOCK_SH) | fcntl.LOCK_NB)
	else:
		fcntl.flock(fd, (fcntl.LOCK_EX if kind == "w" else fcntl.LOCK_SH) | fcntl.LOCK_NB)
	print("free")
except OSError as e:
	print("conflict" if e.errno in (errno.EAGAIN, errno.EACCES) else errno.errorcode[e.errno])
"""


def _lock_seq(r, rel, how, flags, mine, copyup_after=False):
	"""Takes a lock `mine` ("w"/"r") on rel opened with flags, asks another process for a write
	and a read lock, optionally copies the file up (open O_WRONLY) while holding it and asks
	again, then unlocks and asks again."""
	lk = fcntl.lockf if how == "posix" else fcntl.flock
	fd = os.open(P(r, rel), flags)
	out = {}
	try:
		lk(fd, (fcntl.LOCK_EX if mine == "w" else fcntl.LOCK_SH) | fcntl.LOCK_NB)
		out["other w"] = second_process(LOCK_PROBE, P(r, rel), "w", how)
		out["other r"] = second_process(LOCK_PROBE, P(r, rel), "r", how)
		if copyup_after:
			os.close(os.open(P(r, rel), WR))
			out["other w after copy-up"] = second_process(LOCK_PROBE, P(r, rel), "w", how)
		lk(fd, fcntl.LOCK_UN)
		out["other w after unlock"] = second_process(LOCK_PROBE, P(r, rel), "w", how)
	finally:
		os.close(fd)
	return out


def _lock_test(env, how):
	for label, rel, flags, mine, cu in (
		("write lock, lower file (copied up)", "lo", RW, "w", False),
		("write lock, upper file", "up", RW, "w", False),
		("write lock, lower+upper file", "both", RW, "w", False),
		("read lock on O_RDONLY lower, then copy-up", "lo2", os.O_RDONLY, "r", True),
	):
		env.same(label, _lock_seq, rel, how, flags, mine, cu)


@wtest("op/lock_posix")
def t_lock_posix(env):
	_lock_test(env, "posix")


@wtest("op/lock_flock")
def t_lock_flock(env):
	_lock_test(env, "flock")
