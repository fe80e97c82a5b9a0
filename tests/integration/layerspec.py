# SPDX-License-Identifier: GPL-2.0-or-later
"""layerspec.py - the compact layer-spec format, the builder, and the kernel-oracle copy.

A layer is a dict {path: entry}. Paths are str or bytes (bytes for non-UTF-8 names), relative,
'/'-separated; missing parent directories are created 0755 root:root. Entries are built in dict
order (so a hard link comes after its target). Entry kinds:

    "text" or b"bytes"      regular file 0644 with that content (shorthand for F(...))
    F(data, mode, uid, gid, xattrs, size, chunks)
                            regular file; `size` makes it sparse: truncated to size, then each
                            (offset, bytes) of `chunks` written
    D(mode, uid, gid, xattrs, opaque)
                            directory; opaque is None, "trusted" (trusted.overlay.opaque=y),
                            "user" (user.overlay.opaque=y) or "wh" (an entry .wh..wh..opq)
    L(target, uid, gid)     symlink (targets may be absolute: "/etc", "/")
    WH()                    whiteout, 0/0 character device
    WHF()                   whiteout in the OCI form: the file ".wh.NAME" is created instead
    H(target)               hard link to `target` (a path in the same layer)
    FIFO(mode)              named pipe
    DEV(major, minor, mode, kind)   device node, kind "c" or "b"; SOCK(mode) a socket node
    GEN(count, fmt, kind, start, step, data)
                            `count` generated children of the directory at this path, named
                            fmt % i for i in range(start, start + count * step, step); kind is
                            "file", "wh", "whf", "dir" or "symlink" (target "t%d")
    [GEN(...), GEN(...)]    several generators for the same directory
    DEEP(depth, name_len, leaf)
                            a chain of `depth` nested directories, each named with `name_len`
                            bytes, with a file "leaf" of content `leaf` at the bottom

Layers are built with directory fds only (never a full path), so trees deeper than PATH_MAX work.
"""

import errno
import os
import stat

OPQ_NAME = b".wh..wh..opq"
WH_PREFIX = b".wh."


def b(s):
	return s if isinstance(s, bytes) else os.fsencode(s)


class Entry:
	uid = 0
	gid = 0
	xattrs = None


class F(Entry):
	def __init__(self, data=b"", mode=0o644, uid=0, gid=0, xattrs=None, size=None, chunks=()):
		self.data, self.mode, self.uid, self.gid = b(data), mode, uid, gid
		self.xattrs, self.size, self.chunks = xattrs, size, chunks


class D(Entry):
	def __init__(self, mode=0o755, uid=0, gid=0, xattrs=None, opaque=None):
		assert opaque in (None, "trusted", "user", "wh")
		self.mode, self.uid, self.gid, self.xattrs, self.opaque = mode, uid, gid, xattrs, opaque


class L(Entry):
	def __init__(self, target, uid=0, gid=0):
		self.target, self.uid, self.gid = b(target), uid, gid


class WH(Entry):
	pass


class WHF(Entry):
	pass


class H(Entry):
	def __init__(self, target):
		self.target = b(target)


class FIFO(Entry):
	def __init__(self, mode=0o644, uid=0, gid=0):
		self.mode, self.uid, self.gid = mode, uid, gid


class DEV(Entry):
	def __init__(self, major, minor, mode=0o666, kind="c", uid=0, gid=0):
		self.major, self.minor, self.mode, self.kind = major, minor, mode, kind
		self.uid, self.gid = uid, gid


class SOCK(Entry):
	def __init__(self, mode=0o755):
		self.mode = mode


class GEN(Entry):
	def __init__(self, count, fmt="f%06d", kind="file", start=0, step=1, data=b""):
		assert kind in ("file", "wh", "whf", "dir", "symlink")
		self.count, self.fmt, self.kind = count, b(fmt), kind
		self.start, self.step, self.data = start, step, b(data)

	def names(self):
		for i in range(self.start, self.start + self.count * self.step, self.step):
			yield self.fmt % i


class DEEP(Entry):
	def __init__(self, depth=150, name_len=40, leaf=b"bottom\n"):
		self.depth, self.name_len, self.leaf = depth, name_len, b(leaf)

	def name(self, level):
		tag = b"%d" % level
		return b"d" * (self.name_len - len(tag)) + tag


def proc_path(dirfd, name=None):
	"""A short path that reaches `name` inside `dirfd` (for calls that have no dir_fd form)."""
	p = b"/proc/self/fd/%d" % dirfd
	return p + b"/" + name if name else p


class _DirCache:
	"""Directory fds of one layer by relative path; creates missing directories 0755."""

	def __init__(self, root):
		self.fds = {b"": os.open(root, os.O_RDONLY | os.O_DIRECTORY)}

	def get(self, rel):
		if rel in self.fds:
			return self.fds[rel]
		if len(self.fds) > 400:
			self.close(keep_root=True)
		parent, _, name = rel.rpartition(b"/")
		pfd = self.get(parent)
		try:
			os.mkdir(name, 0o755, dir_fd=pfd)
		except FileExistsError:
			pass
		fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
		self.fds[rel] = fd
		return fd

	def close(self, keep_root=False):
		root = self.fds.pop(b"")
		for fd in self.fds.values():
			os.close(fd)
		self.fds = {b"": root} if keep_root else {}
		if not keep_root:
			os.close(root)


def _set_meta(dfd, name, e, mode=None):
	"""Owner, then mode (chown clears set-id bits), then xattrs, of `name` in `dfd`."""
	if e.uid or e.gid:
		os.chown(name, e.uid, e.gid, dir_fd=dfd, follow_symlinks=False)
	if mode is not None:
		os.chmod(name, mode, dir_fd=dfd)
	for k, v in (e.xattrs or {}).items():
		os.setxattr(proc_path(dfd, name), b(k), b(v), follow_symlinks=False)


def _write_file(dfd, name, e):
	fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
	try:
		if e.size is not None:
			os.ftruncate(fd, e.size)
			for off, chunk in e.chunks:
				os.pwrite(fd, b(chunk), off)
		elif e.data:
			os.write(fd, e.data)
	finally:
		os.close(fd)
	_set_meta(dfd, name, e, e.mode)


def _mkdir(dfd, name, e):
	try:
		os.mkdir(name, 0o700, dir_fd=dfd)
	except FileExistsError:  # made implicitly as a parent before
		pass
	_set_meta(dfd, name, e, e.mode)
	if e.opaque in ("trusted", "user"):
		os.setxattr(proc_path(dfd, name), e.opaque.encode() + b".overlay.opaque", b"y")
	elif e.opaque == "wh":
		sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
		try:
			os.close(os.open(OPQ_NAME, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=sub))
		finally:
			os.close(sub)


def _gen(dfd, e):
	mk = {
		"file": lambda n: os.close(os.open(n, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
						   dir_fd=dfd)),
		"whf": lambda n: os.close(os.open(WH_PREFIX + n, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
						  0o644, dir_fd=dfd)),
		"wh": lambda n: os.mknod(n, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd),
		"dir": lambda n: os.mkdir(n, 0o755, dir_fd=dfd),
		"symlink": lambda n: os.symlink(b"t" + n, n, dir_fd=dfd),
	}[e.kind]
	if e.kind == "file" and e.data:
		for n in e.names():
			fd = os.open(n, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
			os.write(fd, e.data)
			os.close(fd)
		return
	for n in e.names():
		mk(n)


def _deep(dfd, e):
	fd = os.dup(dfd)
	try:
		for level in range(e.depth):
			n = e.name(level)
			try:
				os.mkdir(n, 0o755, dir_fd=fd)
			except FileExistsError:
				pass
			nfd = os.open(n, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
			os.close(fd)
			fd = nfd
		leaf = os.open(b"leaf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
		os.write(leaf, e.leaf)
		os.close(leaf)
	finally:
		os.close(fd)


def _build_entry(dirs, rel, e):
	if isinstance(e, list):  # several generators for one directory
		for x in e:
			_build_entry(dirs, rel, x)
		return
	if isinstance(e, (str, bytes)):
		e = F(e)
	parent, _, name = rel.rpartition(b"/")
	if isinstance(e, (GEN, DEEP)):
		dfd = dirs.get(rel)
		(_gen if isinstance(e, GEN) else _deep)(dfd, e)
		return
	dfd = dirs.get(parent)
	if isinstance(e, F):
		_write_file(dfd, name, e)
	elif isinstance(e, D):
		_mkdir(dfd, name, e)
	elif isinstance(e, L):
		os.symlink(e.target, name, dir_fd=dfd)
		_set_meta(dfd, name, e)
	elif isinstance(e, WH):
		os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)
	elif isinstance(e, WHF):
		os.close(os.open(WH_PREFIX + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
				 dir_fd=dfd))
	elif isinstance(e, H):
		tparent, _, tname = e.target.rpartition(b"/")
		os.link(tname, name, src_dir_fd=dirs.get(tparent), dst_dir_fd=dfd,
			follow_symlinks=False)
	elif isinstance(e, FIFO):
		os.mkfifo(name, e.mode, dir_fd=dfd)
		_set_meta(dfd, name, e, e.mode)
	elif isinstance(e, DEV):
		kind = stat.S_IFCHR if e.kind == "c" else stat.S_IFBLK
		os.mknod(name, kind | e.mode, os.makedev(e.major, e.minor), dir_fd=dfd)
		_set_meta(dfd, name, e, e.mode)
	elif isinstance(e, SOCK):
		os.mknod(name, stat.S_IFSOCK | e.mode, dir_fd=dfd)
	else:
		raise TypeError("unknown layer entry %r at %r" % (e, rel))


def build_layer(root, spec):
	"""Creates the entries of `spec` inside the existing directory `root`."""
	dirs = _DirCache(b(root))
	try:
		for rel, e in spec.items():
			_build_entry(dirs, b(rel).strip(b"/"), e)
	finally:
		dirs.close()


# --- the kernel oracle: a copy in the forms kernel overlayfs reads ---------------------------------

def _copy_xattrs(sfd, sname, dfd, dname):
	src, dst = proc_path(sfd, sname), proc_path(dfd, dname)
	for k in os.listxattr(src, follow_symlinks=False):
		os.setxattr(dst, k, os.getxattr(src, k, follow_symlinks=False), follow_symlinks=False)


def _copy_data(sfd, dfd, size):
	"""Copies a regular file keeping holes (SEEK_DATA/SEEK_HOLE)."""
	os.ftruncate(dfd, size)
	off = 0
	while off < size:
		try:
			data = os.lseek(sfd, off, os.SEEK_DATA)
		except OSError as e:
			if e.errno == errno.ENXIO:
				break
			raise
		hole = os.lseek(sfd, data, os.SEEK_HOLE)
		pos = data
		while pos < hole:
			chunk = os.pread(sfd, min(1 << 20, hole - pos), pos)
			if not chunk:
				break
			os.pwrite(dfd, chunk, pos)
			pos += len(chunk)
		off = hole


class KernelCopy:
	"""Copies one layer tree converting the OCI forms: ".wh.NAME" -> 0/0 char device NAME,
	".wh..wh..opq" -> <prefix>.overlay.opaque=y on its directory. Hard links are kept within the
	copy, as are owners, modes, xattrs (trusted.* too), devices, holes and times."""

	def __init__(self, opaque_xattr=b"trusted.overlay.opaque"):
		self.opaque_xattr = opaque_xattr
		self.links = {}

	def copy(self, src, dst):
		sfd = os.open(b(src), os.O_RDONLY | os.O_DIRECTORY)
		dfd = os.open(b(dst), os.O_RDONLY | os.O_DIRECTORY)
		try:
			self._copy_dir(sfd, dfd)
			st = os.fstat(sfd)
			os.chown(dfd, st.st_uid, st.st_gid)
			os.chmod(dfd, stat.S_IMODE(st.st_mode))
			_copy_xattrs(sfd, None, dfd, None)
			os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
		finally:
			os.close(sfd)
			os.close(dfd)

	def _copy_dir(self, sfd, dfd):
		for ent in os.scandir(sfd):
			name = os.fsencode(ent.name)
			if name == OPQ_NAME:
				os.setxattr(proc_path(dfd), self.opaque_xattr, b"y")
			elif name.startswith(WH_PREFIX) and len(name) > len(WH_PREFIX):
				os.mknod(name[len(WH_PREFIX):], stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)
			else:
				self._copy_entry(sfd, dfd, name)

	def _copy_entry(self, sfd, dfd, name):
		st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
		key = (st.st_dev, st.st_ino)
		if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in self.links:
			ldfd, lname = self.links[key]
			os.link(lname, name, src_dir_fd=ldfd, dst_dir_fd=dfd, follow_symlinks=False)
			return
		mode = st.st_mode
		if stat.S_ISDIR(mode):
			os.mkdir(name, 0o700, dir_fd=dfd)
			s2 = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=sfd)
			d2 = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
			try:
				self._copy_dir(s2, d2)
			finally:
				os.close(s2)
				os.close(d2)
		elif stat.S_ISREG(mode):
			s2 = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=sfd)
			d2 = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
			try:
				_copy_data(s2, d2, st.st_size)
			finally:
				os.close(s2)
				os.close(d2)
		elif stat.S_ISLNK(mode):
			os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
		elif stat.S_ISFIFO(mode):
			os.mkfifo(name, 0o600, dir_fd=dfd)
		else:
			os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
		os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
		if not stat.S_ISLNK(mode):
			os.chmod(name, stat.S_IMODE(mode), dir_fd=dfd)
		_copy_xattrs(sfd, name, dfd, name)
		os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
		if not stat.S_ISDIR(mode) and st.st_nlink > 1:
			self.links[key] = (os.dup(dfd), name)

	def close(self):
		for fd, _ in self.links.values():
			os.close(fd)
		self.links = {}


def retag_opaque(root, old, new):
	"""Renames the opaque xattr `old` to `new` on every directory under `root`."""
	stack = [os.open(b(root), os.O_RDONLY | os.O_DIRECTORY)]
	while stack:
		fd = stack.pop()
		try:
			if old in [os.fsencode(x) for x in os.listxattr(proc_path(fd))]:
				os.setxattr(proc_path(fd), new, os.getxattr(proc_path(fd), old))
				os.removexattr(proc_path(fd), old)
			for ent in os.scandir(fd):
				if ent.is_dir(follow_symlinks=False):
					stack.append(os.open(ent.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
							     dir_fd=fd))
		finally:
			os.close(fd)
