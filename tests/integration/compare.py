# SPDX-License-Identifier: GPL-2.0-or-later
"""compare.py - walks a mounted tree with directory fds only, and diffs two walks.

Every entry is recorded under its relative path as bytes (b"" is the root). Full records hold
type, mode, uid, gid, nlink, size, sha256, symlink target, rdev, the visible xattrs and access()
results; entries directly inside a "light" directory (huge generated ones) hold only the name
and the d_type readdir gave, so that 100,000 entries cost one readdir, not 100,000 stats.
"""

import hashlib
import os
import stat

from layerspec import proc_path

EMPTY_SHA = hashlib.sha256(b"").hexdigest()
PRIVATE_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.")
TYPE_CHARS = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
	      stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}


class Rec:
	__slots__ = ("type", "mode", "uid", "gid", "nlink", "size", "sha", "target", "rdev",
		     "xattrs", "private_xattrs", "access", "ino", "dev", "light")

	def __init__(self, **kw):
		for k in self.__slots__:
			setattr(self, k, kw.get(k))


def sha256_fd(fd):
	h = hashlib.sha256()
	buf = bytearray(1 << 20)
	view = memoryview(buf)
	while True:
		n = os.readv(fd, [buf])
		if n <= 0:
			break
		h.update(view[:n])
	return h.hexdigest()


def _xattrs(path):
	"""(user.* xattrs as {name: value}, sorted list of private overlay names that leaked)."""
	names = [os.fsencode(n) for n in os.listxattr(path, follow_symlinks=False)]
	user, private = {}, []
	for n in names:
		if n.startswith(PRIVATE_XATTR_PREFIXES):
			private.append(n)
		elif n.startswith(b"user."):
			user[n] = os.getxattr(path, n, follow_symlinks=False)
	return user, sorted(private)


def _access(dfd, name):
	return tuple(os.access(name, m, dir_fd=dfd, follow_symlinks=False)
		     for m in (os.R_OK, os.W_OK, os.X_OK))


def _full_record(dfd, name):
	"""Record of `name` in `dfd`; for a directory also returns an fd to descend into."""
	st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
	t = TYPE_CHARS.get(stat.S_IFMT(st.st_mode), "?")
	r = Rec(type=t, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, nlink=st.st_nlink,
		ino=st.st_ino, dev=st.st_dev, light=False)
	sub = None
	if t == "d":
		sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
		r.xattrs, r.private_xattrs = _xattrs(proc_path(sub))
	else:
		r.xattrs, r.private_xattrs = _xattrs(proc_path(dfd, name))
	if t == "f":
		r.size = st.st_size
		if st.st_size == 0:
			r.sha = EMPTY_SHA
		else:
			fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
			try:
				r.sha = sha256_fd(fd)
			finally:
				os.close(fd)
	elif t == "l":
		r.size = st.st_size
		r.target = os.readlink(name, dir_fd=dfd)
	elif t in "cb":
		r.rdev = st.st_rdev
	r.access = _access(dfd, name)
	return r, sub


def _light_record(ent):
	if ent.is_symlink():
		t = "l"
	elif ent.is_dir(follow_symlinks=False):
		t = "d"
	elif ent.is_file(follow_symlinks=False):
		t = "f"
	else:
		t = "other"
	return Rec(type=t, light=True)


def walk(root, light=()):
	"""Walks the tree at `root` (a path) and returns {relpath: Rec}."""
	light = {os.fsencode(x) if isinstance(x, str) else x for x in light}
	out = {}
	rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
	rec, sub = _full_record(rfd, ".")
	os.close(sub)
	out[b""] = rec
	stack = [(b"", rfd)]
	try:
		while stack:
			rel, dfd = stack.pop()
			try:
				_walk_dir(rel, dfd, light, out, stack)
			finally:
				os.close(dfd)
	finally:
		for _, fd in stack:
			os.close(fd)
	return out


def _walk_dir(rel, dfd, light, out, stack):
	with os.scandir(dfd) as it:
		ents = list(it)
	for ent in ents:
		name = os.fsencode(ent.name)
		path = rel + b"/" + name if rel else name
		if rel in light:
			r = _light_record(ent)
			out[path] = r
			if r.type == "d":
				sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
				stack.append((path, sub))
			continue
		r, sub = _full_record(dfd, name)
		out[path] = r
		if sub is not None:
			stack.append((path, sub))


def show(path):
	"""A path for a message; very long ones (the deep tree) are cut in the middle."""
	if not path:
		return "b'/'"
	if len(path) > 160:
		return "%r...(%d bytes)...%r" % (path[:40], len(path), path[-80:])
	return repr(path)


def _fmt(field, v):
	if field == "mode" and v is not None:
		return "0%o" % v
	if field == "rdev" and v is not None:
		return "%d:%d" % (os.major(v), os.minor(v))
	return repr(v)


def diff_records(k, p, relax=()):
	"""Differences between two walks: k is the kernel (expected), p the binary under test."""
	out = []
	for path in sorted(set(k) - set(p)):
		out.append("missing in binary: %s (%s)" % (show(path), k[path].type))
	for path in sorted(set(p) - set(k)):
		out.append("extra in binary: %s (%s)" % (show(path), p[path].type))
	for path in sorted(set(k) & set(p)):
		out.extend(_diff_one(path, k[path], p[path], relax))
	for path in sorted(p):
		if p[path].private_xattrs:
			out.append("binary shows private xattrs on %s: %r" % (show(path), p[path].private_xattrs))
		if path in k and k[path].private_xattrs:
			out.append("kernel shows private xattrs on %s: %r" % (show(path), k[path].private_xattrs))
	return out


def _diff_one(path, a, b_, relax):
	if a.type != b_.type:
		return ["%s: type kernel=%s binary=%s" % (show(path), a.type, b_.type)]
	if a.light or b_.light:
		return []
	fields = ["mode", "uid", "gid", "size", "sha", "target", "rdev", "xattrs"]
	if "access" not in relax:
		fields.append("access")
	if a.type != "d" or "dir_nlink" not in relax:
		fields.append("nlink")
	out = []
	for f in fields:
		va, vb = getattr(a, f), getattr(b_, f)
		if va != vb:
			out.append("%s: %s kernel=%s binary=%s" % (show(path), f, _fmt(f, va), _fmt(f, vb)))
	return out


def ino_partition_diff(k, p):
	"""st_ino must identify files in the binary exactly as (st_dev, st_ino) does in the kernel
	copy, where every layer file is a distinct inode and hard links share one: two paths share an
	st_ino in the binary iff they are the same file. Light records carry no inode."""
	def groups(walk_, key):
		by = {}
		for path, r in walk_.items():
			if not r.light:
				by.setdefault(key(r), []).append(path)
		return {path: frozenset(g) for g in by.values() for path in g}

	gk = groups(k, lambda r: (r.dev, r.ino))
	gp = groups(p, lambda r: r.ino)
	out = []
	for path in sorted(set(gk) & set(gp)):
		if gk[path] != gp[path]:
			same_p = sorted(x for x in gp[path] if x != path)
			same_k = sorted(x for x in gk[path] if x != path)
			out.append("%s: st_ino %d shared in binary with %s; kernel shares with %s"
				   % (show(path), p[path].ino, [show(x) for x in same_p][:3],
				      [show(x) for x in same_k][:3]))
	return out
