# SPDX-License-Identifier: GPL-2.0-or-later
"""write_perm.py - setuid/setgid bits taken away by unprivileged callers, default ACLs of entries
made over a whiteout, and appends to an append-only upper file; each compared with kernel
overlayfs on the same layers (write_env.py explains the fixture).

The unprivileged caller: the test (root) opens the file, a child run by `setpriv` as uid/gid 1000
uses the inherited fd (write, ftruncate, fallocate, setfacl on /proc/self/fd/N): the kernel and the
daemon judge the caller of each request, not the opener, and no directory of the fixture needs
to be searchable by uid 1000.
"""

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


def _chattr(env, flag):
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


@wtest("perm/append_only_upper", layers=_append_layers, prepare=lambda env: _chattr(env, "+a"))
def t_append_only_upper(env):
	try:
		env.same("O_APPEND write", _append, "ap", os.O_WRONLY | os.O_APPEND)
		env.same("O_RDWR|O_APPEND write", _append, "ap", os.O_RDWR | os.O_APPEND)
		env.same("write without O_APPEND", _append, "ap", os.O_WRONLY)
		env.same("O_TRUNC|O_APPEND", _append, "ap", os.O_WRONLY | os.O_APPEND | os.O_TRUNC)
	finally:
		_chattr(env, "-a")
