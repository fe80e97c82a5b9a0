# SPDX-License-Identifier: GPL-2.0-or-later
"""write_perm.py - setuid/setgid bits taken away by unprivileged callers, default ACLs of entries
made over a whiteout, and appends to an append-only upper file; each compared with kernel
overlayfs on the same layers (write_env.py explains the fixture).

The unprivileged caller: the test (root) opens the file, a child run by `setpriv` as uid/gid 1000
uses the inherited fd (write, ftruncate, fallocate, setfacl on /proc/self/fd/N): the kernel and the
daemon judge the caller of each request, not the opener, and no directory of the fixture needs
to be searchable by uid 1000.
"""

import array
import errno
import fcntl
import json
import os
import stat
import subprocess

from layerspec import D, F
from write_env import P, wtest

SGID_LAYERS_FILES = ("w", "t", "fa", "acl", "s", "member", "root", "gx", "ot", "ots")


def sgid_layers():
	"""Files of uid 1000, group 100: setgid, not group-executable (s: also setuid; gx: group-
	executable); in the lower, and the same in the upper as u_NAME."""
	def files(prefix):
		out = {}
		for n in SGID_LAYERS_FILES:
			mode = {"s": 0o6666, "ots": 0o6666, "gx": 0o2674}.get(n, 0o2664)
			out[prefix + n] = F("data\n", mode=mode, uid=1000, gid=100)
		return out
	return [files("")], dict(files("u_"), d=D(mode=0o755))


def _as_user(fd, code, groups=None):
	"""Runs python `code` as uid/gid 1000 (supplementary groups `groups`, else none) with fd
	inherited as argv[1]."""
	grp = ["--groups", ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
	cp = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000"] + grp +
			    ["python3", "-c", code, str(fd)], pass_fds=(fd,), capture_output=True,
			    timeout=30)
	if cp.returncode:
		raise OSError(1, "child: " + cp.stderr.decode(errors="replace")[-300:])


WRITE = "import os,sys; os.write(int(sys.argv[1]), b'more\\n')"
TRUNC = "import os,sys; os.ftruncate(int(sys.argv[1]), 2)"
FALLOC = "import os,sys; os.posix_fallocate(int(sys.argv[1]), 0, 8192)"
# A new open (an OPEN request of the caller) through the inherited fd's magic link.
OTRUNC = "import os,sys; os.close(os.open('/proc/self/fd/' + sys.argv[1], os.O_WRONLY | os.O_TRUNC))"


def _change(r, rel, code, flags=os.O_WRONLY | os.O_APPEND, groups=None, root=False):
	"""Opens rel as root, lets uid 1000 run `code` on the fd (root=True: root writes); the mode
	afterwards."""
	fd = os.open(P(r, rel), flags)
	try:
		if root:
			os.write(fd, b"more\n")
		else:
			_as_user(fd, code, groups)
	finally:
		os.close(fd)
	return "0%o" % stat.S_IMODE(os.stat(P(r, rel)).st_mode)


def _setfacl(r, rel):
	fd = os.open(P(r, rel), os.O_RDONLY)
	try:
		cp = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
				     "setfacl", "-m", "u:1234:r", "/proc/self/fd/%d" % fd],
				    pass_fds=(fd,), capture_output=True, timeout=30)
	finally:
		os.close(fd)
	return cp.returncode, "0%o" % stat.S_IMODE(os.stat(P(r, rel)).st_mode)


@wtest("perm/killpriv", layers=sgid_layers)
def t_killpriv(env):
	for pre in ("", "u_"):
		env.same("write by a non-member: " + pre + "w", _change, pre + "w", WRITE)
		env.same("ftruncate by a non-member: " + pre + "t", _change, pre + "t", TRUNC,
			 os.O_WRONLY)
		env.same("fallocate by a non-member: " + pre + "fa", _change, pre + "fa", FALLOC,
			 os.O_WRONLY)
		env.same("write to setuid+setgid: " + pre + "s", _change, pre + "s", WRITE)
		env.same("open O_TRUNC by a non-member: " + pre + "ot", _change, pre + "ot", OTRUNC,
			 os.O_RDONLY)
		env.same("open O_TRUNC of setuid+setgid: " + pre + "ots", _change, pre + "ots",
			 OTRUNC, os.O_RDONLY)
		env.same("write by a group member: " + pre + "member", _change, pre + "member",
			 WRITE, groups=(100,))
		env.same("write by root: " + pre + "root", _change, pre + "root", WRITE, root=True)
		env.same("write to group-executable: " + pre + "gx", _change, pre + "gx", WRITE,
			 groups=(100,))
		env.same("access ACL set by the owner, not a member: " + pre + "acl", _setfacl,
			 pre + "acl")


def plain_layers():
	"""Files of uid 1000, group 100, mode 0664 (no setuid/setgid yet): lower p_NAME, upper
	u_NAME."""
	names = ("path", "fchmod", "suid")
	return ([{"p_" + n: F("data\n", mode=0o664, uid=1000, gid=100) for n in names}],
		{"u_" + n: F("data\n", mode=0o664, uid=1000, gid=100) for n in names})


def _write_chmod_write(r, rel, mode, fchmod):
	"""root opens rel for appending; uid 1000 (not in the group) writes through it, root gives
	the file `mode` (chmod of the path, or fchmod of that fd), uid 1000 writes again: the mode
	after each step."""
	fd = os.open(P(r, rel), os.O_WRONLY | os.O_APPEND)
	modes = []
	try:
		for step in ("write", "chmod", "write"):
			if step == "write":
				_as_user(fd, WRITE)
			elif fchmod:
				os.fchmod(fd, mode)
			else:
				os.chmod(P(r, rel), mode)
			modes.append("0%o" % stat.S_IMODE(os.stat(P(r, rel)).st_mode))
	finally:
		os.close(fd)
	return modes


@wtest("perm/killpriv_after_chmod", layers=plain_layers)
def t_killpriv_after_chmod(env):
	"""A handle that found no setuid/setgid bit (which the daemon remembers, file.h
	file_nopriv) still loses a bit that a chmod gave the file since."""
	for pre in ("p_", "u_"):
		env.same("setgid by chmod, then a write: " + pre + "path", _write_chmod_write,
			 pre + "path", 0o2664, False)
		env.same("setgid by fchmod of the fd, then a write: " + pre + "fchmod",
			 _write_chmod_write, pre + "fchmod", 0o2664, True)
		env.same("setuid+setgid by chmod, then a write: " + pre + "suid", _write_chmod_write,
			 pre + "suid", 0o6664, False)


def _make_over_whiteout(r, parent, name, dir):
	"""Under a default ACL on `parent`: removes parent/name (a lower entry: a whiteout stays),
	makes it again with umask 022; mode and ACL."""
	path = P(r, parent, name)
	if os.path.isdir(path):
		os.rmdir(path)
	else:
		os.unlink(path)
	old = os.umask(0o022)
	try:
		if dir:
			os.mkdir(path, 0o777)
		else:
			os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
	finally:
		os.umask(old)
	acl = subprocess.run(["getfacl", "-n", "-p", "--omit-header", path], capture_output=True,
			     timeout=15).stdout.decode()
	return "0%o" % stat.S_IMODE(os.stat(path).st_mode), acl


@wtest("perm/default_acl_over_whiteout")
def t_default_acl_over_whiteout(env):
	for d in ("bdir", "ldir", "."):
		env.same("default ACL on " + d, lambda r, x: subprocess.run(
			["setfacl", "-d", "-m", "u::rwx,g::rwx,o::rx", P(r, x)], timeout=15).returncode,
			d)
	env.same("file made over a whiteout", _make_over_whiteout, "bdir", "lx", False)
	env.same("dir made over a whiteout", _make_over_whiteout, ".", "emptyl", True)
	env.same("file made over a whiteout (2)", _make_over_whiteout, "ldir", "a", False)


def _append_layers():
	return [{"lo": "lower\n"}], {"ap": "append only\n"}


def _chattr_ap(env, flag):
	for path in (env.up("ap"), env.kup("ap")):
		subprocess.run(["chattr", flag, path], check=True, timeout=15)


def _append(r, rel, flags):
	fd = os.open(P(r, rel), flags)
	try:
		os.write(fd, b"added\n")
	finally:
		os.close(fd)
	with open(P(r, rel), "rb") as f:
		return f.read()


# The same with the kernel's writeback cache (writeback=1): an append-only file's writes must
# not come back in whole pages, and the times the kernel then sends explicitly are a touch.
@wtest("perm/append_only_upper_writeback", layers=_append_layers,
       prepare=lambda env: _chattr_ap(env, "+a"), binary_opts="writeback=1")
@wtest("perm/append_only_upper", layers=_append_layers,
       prepare=lambda env: _chattr_ap(env, "+a"))
def t_append_only_upper(env):
	try:
		env.same("O_APPEND write", _append, "ap", os.O_WRONLY | os.O_APPEND)
		env.same("O_RDWR|O_APPEND write", _append, "ap", os.O_RDWR | os.O_APPEND)
		env.same("write without O_APPEND", _append, "ap", os.O_WRONLY)
		env.same("O_TRUNC|O_APPEND", _append, "ap", os.O_WRONLY | os.O_APPEND | os.O_TRUNC)
	finally:
		_chattr_ap(env, "-a")


# --- file attributes (chattr/lsattr) --------------------------------------------------------------

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_IOC_FSGETXATTR = 0x801c581f
FS_APPEND_FL, FS_IMMUTABLE_FL, FS_NOATIME_FL = 0x20, 0x10, 0x80
FS_XFLAG_IMMUTABLE, FS_XFLAG_APPEND = 0x8, 0x10
FLAGS_SHOWN = FS_APPEND_FL | FS_IMMUTABLE_FL | FS_NOATIME_FL


def _fileattr_layers():
	lower = {"idir": D(), "idir/f": "in an immutable dir\n", "ifile": "immutable\n",
		 "afile": "append only\n", "adir": D(), "adir/x": "x\n", "nfile": "noatime\n",
		 "plain": "plain\n", "pdir": D(), "pdir/p": "p\n"}
	return [lower], {"d": D()}


LOWER_FLAGS = (("idir", "+i"), ("ifile", "+i"), ("afile", "+a"), ("adir", "+a"),
	       ("nfile", "+A"))


def _set_lower_flags(env):
	for side in (env.p, env.k):
		for rel, flag in LOWER_FLAGS:
			subprocess.run(["chattr", flag, P(env.lowers(side)[0], rel)], check=True,
				       timeout=15)


def _clear_all_flags(env):
	"""What the test left +i/+a (lowers, uppers) back to plain, so the layers can be removed."""
	for root in env.lowers(env.p) + env.lowers(env.k) + [env.up(), env.kup()]:
		subprocess.run(["chattr", "-R", "-i", "-a", root], capture_output=True, timeout=30)


def _getflags(r, rel=None):
	fd = os.open(P(r, rel) if rel else r, os.O_RDONLY | os.O_NONBLOCK)
	try:
		buf = array.array("i", [0, 0])
		fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
		xbuf = bytearray(28)
		fcntl.ioctl(fd, FS_IOC_FSGETXATTR, xbuf)
		xflags = int.from_bytes(xbuf[:4], "little")
		return buf[0] & FLAGS_SHOWN, xflags & (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND)
	finally:
		os.close(fd)


def _chattr(r, rel, arg):
	return subprocess.run(["chattr", arg, P(r, rel)], capture_output=True,
			      timeout=15).returncode


def _raw_upper(env, rel):
	"""The binary's and the kernel's upper entry rel: protattr xattr and inode flags."""
	out = []
	for up in (env.up(rel), env.kup(rel)):
		try:
			prot = os.getxattr(up, "trusted.overlay.protattr", follow_symlinks=False)
		except OSError as e:
			prot = errno.errorcode[e.errno]
		try:
			flags = _getflags(up)[0]
		except OSError as e:
			flags = errno.errorcode[e.errno]
		out.append((prot, flags))
	return out


def _w(r, rel, data, flags):
	fd = os.open(P(r, rel), flags, 0o644)
	try:
		return os.write(fd, data)
	finally:
		os.close(fd)


def _op(fn):
	"""fn() -> "ok" or the errno name, so a list of outcomes compares in one line."""
	try:
		fn()
		return "ok"
	except OSError as e:
		return errno.errorcode[e.errno]


@wtest("perm/fileattr_writeback", layers=_fileattr_layers, prepare=_set_lower_flags,
       binary_opts="writeback=1")
@wtest("perm/fileattr", layers=_fileattr_layers, prepare=_set_lower_flags)
def t_fileattr(env):
	try:
		for rel in ("idir", "ifile", "afile", "adir", "nfile", "plain", "pdir"):
			env.same("lsattr " + rel, _getflags, rel)
		wr, ap = os.O_WRONLY | os.O_TRUNC | os.O_CREAT, os.O_WRONLY | os.O_APPEND
		env.same("inside an immutable dir", lambda r: [
			_op(lambda: _w(r, "idir/f", b"y\n", wr)),	# allowed: copies idir up
			_op(lambda: os.unlink(P(r, "idir/f"))),
			_op(lambda: _w(r, "idir/new", b"n\n", wr)),
			_op(lambda: os.mkdir(P(r, "idir/nd"))),
			_op(lambda: os.rename(P(r, "idir/f"), P(r, "d/f"))),
			_op(lambda: os.link(P(r, "plain"), P(r, "idir/l")))])
		env.same("immutable file", lambda r: [
			_op(lambda: os.truncate(P(r, "ifile"), 0)),
			_op(lambda: _w(r, "ifile", b"z", ap)),
			_op(lambda: os.chmod(P(r, "ifile"), 0o600)),
			_op(lambda: os.utime(P(r, "ifile"))),
			_op(lambda: os.setxattr(P(r, "ifile"), "user.x", b"1")),
			_op(lambda: os.link(P(r, "ifile"), P(r, "d/il"))),
			_op(lambda: os.rename(P(r, "ifile"), P(r, "d/ifile"))),
			_op(lambda: os.unlink(P(r, "ifile")))])
		env.same("append-only file", lambda r: [
			_op(lambda: _w(r, "afile", b"more\n", ap)),
			_op(lambda: _w(r, "afile", b"more\n", os.O_WRONLY)),
			_op(lambda: _w(r, "afile", b"more\n", ap | os.O_TRUNC)),
			_op(lambda: os.truncate(P(r, "afile"), 0)),
			_op(lambda: os.utime(P(r, "afile"))),
			_op(lambda: os.utime(P(r, "afile"), (1, 1))),
			_op(lambda: os.unlink(P(r, "afile")))])
		env.same("append-only dir", lambda r: [
			_op(lambda: _w(r, "adir/new", b"n\n", wr)),
			_op(lambda: os.unlink(P(r, "adir/x"))),
			_op(lambda: os.rename(P(r, "adir/x"), P(r, "adir/y")))])
		env.same("chattr through the mount", lambda r: [
			_chattr(r, "plain", "+i"), _op(lambda: os.unlink(P(r, "plain"))),
			_op(lambda: _w(r, "plain", b"q", ap)), _getflags(r, "plain"),
			_chattr(r, "plain", "-i"), _op(lambda: _w(r, "plain", b"q\n", ap)),
			_chattr(r, "pdir", "+a"), _op(lambda: _w(r, "pdir/n", b"n\n", wr)),
			_op(lambda: os.unlink(P(r, "pdir/p"))), _getflags(r, "pdir"),
			_chattr(r, "pdir", "-a"), _op(lambda: os.unlink(P(r, "pdir/p"))),
			_chattr(r, "nfile", "-A"), _getflags(r, "nfile"), _chattr(r, "nfile", "+A")])
		for rel in ("idir", "plain", "pdir", "afile", "nfile"):
			env.same("lsattr after: " + rel, _getflags, rel)
		# the upper entries as each wrote them: +i/+a in protattr, +A on the inode
		for rel in ("idir", "adir", "afile", "nfile", "plain", "pdir"):
			binary, kernel = _raw_upper(env, rel)
			env.check(binary == kernel, "upper %s: binary %r, kernel %r" % (rel, binary,
											   kernel))
		# Off again through the mount: access(W_OK) of an immutable entry is decided by the
		# kernel's FUSE client (default_permissions), which knows no flags (README,
		# Limitations); the final tree comparison would see that.
		for rel, flag in LOWER_FLAGS:
			env.same("chattr -%s %s" % (flag[1:], rel), _chattr, rel, "-" + flag[1:])
		env.same("removed: protattr gone", lambda r: _op(
			lambda: os.getxattr(P(r, "idir"), "trusted.overlay.protattr")))
	finally:
		_clear_all_flags(env)


def _ops(env):
	out = subprocess.run([env.opts.binary, "status", "--json", env.pm], capture_output=True,
			     timeout=30, check=True).stdout
	return json.loads(out)["ops"]


@wtest("perm/killpriv_v2", layers=lambda: ([{"lo": "lower\n"}], {}), kernel=False)
def t_killpriv_v2(env):
	"""FUSE_HANDLE_KILLPRIV_V2 negotiated (fuse_io.h): the kernel sends no
	GETXATTR(security.capability) before each write (counted by the status query, which reads
	one xattr itself)."""
	fd = os.open(P(env.pm, "f"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
	try:
		os.write(fd, b"first")
		before = _ops(env)
		for _ in range(200):
			os.write(fd, b"abcd")
		after = _ops(env)
	finally:
		os.close(fd)
	env.check(after["write"] - before["write"] == 200,
		  "writes counted: %d" % (after["write"] - before["write"]))
	env.check(after["getxattr"] - before["getxattr"] <= 2,
		  "getxattr requests during 200 writes: %d" % (after["getxattr"] - before["getxattr"]))
