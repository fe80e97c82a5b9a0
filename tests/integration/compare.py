# SPDX-License-Identifier: GPL-2.0-or-later
"""compare.py - walks a mounted tree with directory fds only, and diffs two walks.

Every entry is recorded under its relative path as bytes (b"" is the root). Full records hold
type, mode, uid, gid, nlink, size, sha256, symlink target, rdev, the visible xattrs and access()
results; entries directly inside a "light" directory (huge generated ones) hold only the name
and the d_type readdir gave, so that 100,000 entries cost one readdir, not 100,000 stats.
"""

import ctypes
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
	"""(every other xattr, of any namespace, as {name: value}; sorted list of private overlay
	names that leaked). Any namespace: a daemon's own attribute in a layer (trusted.plyfs.*)
	shows under kernel overlayfs, which hides only its own."""
	names = [os.fsencode(n) for n in os.listxattr(path, follow_symlinks=False)]
	shown, private = {}, []
	for n in names:
		if n.startswith(PRIVATE_XATTR_PREFIXES):
			private.append(n)
		else:
			shown[n] = os.getxattr(path, n, follow_symlinks=False)
	return shown, sorted(private)


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


# --- the raw upper layers: every xattr as written, read back without an overlay -------------------
#
# Both sides run the same operations on their own copies of the same layers, so the values must be
# equal byte for byte, with one normalisation, NORMALISED: a file handle (in *.overlay.origin)
# names a lower inode by number and generation, which differ between the two copies; it is
# replaced by the layer and path of the lower entry it decodes to (found by name_to_handle_at on
# every entry of that side's lowers), or "unresolved" with its bytes. The uuid in the handle is
# kept: both copies are on one filesystem. And *.overlay.uuid on the upper root (kernel
# overlayfs' uuid=on) is random per upper: only its length is compared.
#
# One accepted difference, ROOTLESS_ORIGIN: in a user namespace the kernel cannot decode file
# handles (ovl_can_decode_fh: no CAP_DAC_READ_SEARCH in the initial namespace) and writes an
# EMPTY user.overlay.origin; plyfs writes the full handle there on purpose (it verifies an origin
# by name and handle, so st_ino survives a remount: README "Rootless origins"). So a kernel
# user.overlay.origin of b"" matches a binary value that is a well-formed ovl_fb decoding to an
# entry of that side's lowers; an unresolved or malformed handle, a missing origin on either
# side, or any other value still differs.

NORMALISED = ("origin file handle -> lower path", "overlay.uuid -> its length",
	      "rootless: the kernel's empty user.overlay.origin matches a resolved handle")
ROOTLESS_ORIGIN = b"user.overlay.origin"
_OVL_FB_MAGIC = 0xfb


class _FileHandle(ctypes.Structure):
	_fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
		    ("f_handle", ctypes.c_ubyte * 128)]


_libc = ctypes.CDLL(None, use_errno=True)


def _encode(dfd, name):
	fh = _FileHandle()
	fh.handle_bytes = 128
	mid = ctypes.c_int()
	if _libc.name_to_handle_at(dfd, name, ctypes.byref(fh), ctypes.byref(mid), 0) != 0:
		return None
	return (fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]))


def handle_map(lowers):
	"""{(handle type, handle bytes): "lowerI:/path"} of every entry of the lower layers; a file
	with several names is named by the first in sorted order (the two copies list a directory
	in different orders)."""
	out = {}
	for i, root in enumerate(lowers):
		for top, dirs, files in os.walk(os.fsencode(root)):
			rel = os.path.relpath(top, os.fsencode(root))
			fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
			try:
				if rel == b".":
					h = _encode(fd, b".")
					if h:
						out[h] = min(out.get(h, "~"), "lower%d:/" % i)
				for name in dirs + files:
					h = _encode(fd, name)
					path = name if rel == b"." else rel + b"/" + name
					if h:
						out[h] = min(out.get(h, "~"),
							     "lower%d:/%s" % (i, os.fsdecode(path)))
			finally:
				os.close(fd)
	return out


class Origin(str):
	"""A normalised origin; `resolved`: a well-formed ovl_fb (version 0, its length field equal
	to the value's length) whose handle names an entry of the lowers."""
	resolved = False


def normalise_origin(value, handles):
	"""An origin value with its file handle replaced by the lower path it names."""
	if len(value) < 21 or value[1] != _OVL_FB_MAGIC:
		return value	# empty (the kernel's "no handle") or invalid: compared as is
	n = min(value[2], len(value))
	fid = bytes(value[21:n])
	where = handles.get((value[4], fid))
	out = Origin("ovl_fb(version %d, flags %#x, type %#x, uuid %s, %s)%s" % (
		value[0], value[3], value[4], value[5:21].hex(), where or "unresolved:" + fid.hex(),
		"" if n == len(value) else " + %r" % value[n:]))
	out.resolved = where is not None and value[0] == 0 and value[2] == len(value)
	return out


def _same_raw(name, k, p):
	"""Equal, or the one accepted difference ROOTLESS_ORIGIN (see above)."""
	if k == p:
		return True
	return name == ROOTLESS_ORIGIN and k == b"" and isinstance(p, Origin) and p.resolved


def raw_xattrs(upper, handles):
	"""{relative path: {name: value}} of the upper layer itself (no overlay), origins
	normalised (see NORMALISED)."""
	out = {}
	root = os.fsencode(upper)
	for top, dirs, files in os.walk(root):
		for name in [None] + dirs + files:
			path = top if name is None else os.path.join(top, name)
			if name is None and top != root:
				continue	# each directory is listed once, by its parent
			rel = os.path.relpath(path, root)
			xs = {}
			for n in os.listxattr(path, follow_symlinks=False):
				n = os.fsencode(n)
				v = os.getxattr(path, n, follow_symlinks=False)
				if n.endswith(b".overlay.origin"):
					v = normalise_origin(v, handles)
				elif n.endswith(b".overlay.uuid") and rel == b".":
					v = "%d bytes" % len(v)
				xs[n] = v
			out[rel] = xs
	return out


def diff_raw(k, p):
	"""Differences between the kernel's raw upper (k) and the binary's (p), from raw_xattrs."""
	out = []
	for path in sorted(set(k) - set(p)):
		out.append("%s: only in the kernel's upper (xattrs %r)" % (show(path), k[path]))
	for path in sorted(set(p) - set(k)):
		out.append("%s: only in the binary's upper (xattrs %r)" % (show(path), p[path]))
	for path in sorted(set(k) & set(p)):
		for n in sorted(set(k[path]) | set(p[path])):
			a, b_ = k[path].get(n), p[path].get(n)
			if not _same_raw(n, a, b_):
				out.append("%s: xattr %s kernel=%r binary=%r" % (show(path), n.decode(), a, b_))
	return out
