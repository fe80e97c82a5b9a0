# SPDX-License-Identifier: GPL-2.0-or-later
"""probes.py - checks beyond the tree compare: errno probes, libc directory streams (ctypes),
inotify, `ls -l`, statfs. Each returns a list of problem strings (empty: fine)."""

import ctypes
import ctypes.util
import errno
import os
import struct
import subprocess

from mounts import t

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Dirent(ctypes.Structure):
	"""glibc's struct dirent on 64-bit Linux (== struct dirent64)."""
	_fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
		    ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
		    ("d_name", ctypes.c_char * 256)]


libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.restype = None
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.rewinddir.restype = None
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
libc.inotify_init1.argtypes = [ctypes.c_int]
libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]

IN_ACCESS, IN_OPEN = 0x1, 0x20
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC


def _read_rest(dirp):
	"""[(telldir before the entry, name)] until the end of the stream, without . and .."""
	out = []
	while True:
		pos = libc.telldir(dirp)
		ctypes.set_errno(0)
		ent = libc.readdir(dirp)
		if not ent:
			err = ctypes.get_errno()
			if err:
				raise OSError(err, "readdir: " + os.strerror(err))
			return out
		name = ent.contents.d_name
		if name not in (b".", b".."):
			out.append((pos, name))


def dirstream(path):
	"""opendir/readdir/telldir/seekdir/rewinddir on `path`: seekdir to every saved position
	tried must give the same remaining sequence; rewinddir must give the same set."""
	dirp = libc.opendir(os.fsencode(path))
	if not dirp:
		return ["opendir %s: %s" % (path, os.strerror(ctypes.get_errno()))], []
	errs = []
	try:
		first = _read_rest(dirp)
		names = [n for _, n in first]
		if len(set(names)) != len(names):
			errs.append("readdir of %s returned duplicate names" % path)
		n = len(first)
		for i in sorted({0, 1, 2, n // 7, n // 3, n // 2, n - 2, n - 1} - {-1, -2}):
			if i >= n:
				continue
			libc.seekdir(dirp, first[i][0])
			rest = [nm for _, nm in _read_rest(dirp)]
			if rest != names[i:]:
				errs.append("seekdir to the position of entry %d/%d (%r) gave %d entries "
					    "starting %r, expected %d starting %r"
					    % (i, n, names[i], len(rest), rest[:2], n - i, names[i:i + 2]))
		libc.rewinddir(dirp)
		again = [nm for _, nm in _read_rest(dirp)]
		if sorted(again) != sorted(names):
			errs.append("rewinddir: %d names, first pass %d; differ: %r"
				    % (len(again), n, sorted(set(again) ^ set(names))[:5]))
	finally:
		libc.closedir(dirp)
	return errs, sorted(names)


def scandir_sets(path):
	"""Two os.scandir passes as sets (readdir order is free); returns (errs, names)."""
	a = sorted(os.fsencode(e.name) for e in os.scandir(path))
	bb = sorted(os.fsencode(e.name) for e in os.scandir(path))
	errs = [] if a == bb else ["two scandir passes of %s differ: %r" % (path, sorted(set(a) ^ set(bb))[:5])]
	return errs, a


ROFS_OPS = [
	("open(O_WRONLY) existing", lambda m: os.close(os.open(m + "/file", os.O_WRONLY))),
	("open(O_RDWR|O_TRUNC) existing", lambda m: os.close(os.open(m + "/file", os.O_RDWR | os.O_TRUNC))),
	("open(O_CREAT) new", lambda m: os.close(os.open(m + "/new", os.O_WRONLY | os.O_CREAT, 0o644))),
	("mkdir", lambda m: os.mkdir(m + "/newdir")),
	("unlink", lambda m: os.unlink(m + "/file")),
	("rmdir", lambda m: os.rmdir(m + "/dir/empty")),
	("rename", lambda m: os.rename(m + "/file", m + "/file2")),
	("symlink", lambda m: os.symlink("x", m + "/newlink")),
	("link", lambda m: os.link(m + "/file", m + "/newhard")),
	("mknod fifo", lambda m: os.mkfifo(m + "/newfifo")),
	("chmod", lambda m: os.chmod(m + "/file", 0o600)),
	("chown", lambda m: os.chown(m + "/file", 1, 1)),
	("truncate", lambda m: os.truncate(m + "/file", 0)),
	("utime", lambda m: os.utime(m + "/file", (1, 1))),
	("setxattr", lambda m: os.setxattr(m + "/file", "user.x", b"1")),
	("removexattr", lambda m: os.removexattr(m + "/file", "user.k")),
]


def errno_of(fn, mnt):
	try:
		fn(mnt)
	except OSError as e:
		return e.errno
	return 0


def rofs(kmnt, pmnt):
	"""Every write on a mount without upperdir fails with EROFS, on both."""
	errs = []
	for name, fn in ROFS_OPS:
		ek, ep = errno_of(fn, kmnt), errno_of(fn, pmnt)
		if ek != errno.EROFS:
			errs.append("oracle: %s gave %s, not EROFS" % (name, errno.errorcode.get(ek, ek)))
		if ep != errno.EROFS:
			errs.append("%s gave %s, expected EROFS" % (name, errno.errorcode.get(ep, ep) if ep else "success"))
	return errs


def statfs(kmnt, pmnt):
	errs = []
	for who, m in (("kernel", kmnt), ("binary", pmnt)):
		try:
			st = os.statvfs(m)
		except OSError as e:
			errs.append("statfs on %s failed: %s" % (who, e))
			continue
		if st.f_bsize <= 0 or st.f_blocks <= 0 or st.f_namemax <= 0:
			errs.append("statfs on %s: odd values bsize=%d blocks=%d namemax=%d"
				    % (who, st.f_bsize, st.f_blocks, st.f_namemax))
	return errs


def ls_l(kmnt, pmnt, rel):
	"""`ls -lnA` (a READDIRPLUS-heavy listing) of the same directory must print the same lines,
	times left out."""
	outs = []
	for m in (kmnt, pmnt):
		cp = subprocess.run(["ls", "-lnA", "--time-style=+T", os.path.join(m, rel)],
				    capture_output=True, timeout=t(300), env={"LC_ALL": "C", "PATH": os.environ["PATH"]})
		if cp.returncode != 0:
			return ["ls -l on %s failed: %s" % (m, cp.stderr[-300:])]
		outs.append(cp.stdout.split(b"\n"))
	k, p = outs
	errs = []
	if len(k) != len(p):
		errs.append("ls -l: %d lines on the kernel, %d on the binary" % (len(k), len(p)))
	for a, b_ in zip(k, p):
		if a != b_:
			errs.append("ls -l differs: kernel %r binary %r" % (a, b_))
		if len(errs) >= 10:
			break
	return errs


class Inotify:
	"""An inotify fd watching paths for IN_OPEN|IN_ACCESS."""

	def __init__(self, paths, mask=IN_OPEN | IN_ACCESS):
		self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
		if self.fd < 0:
			raise OSError(ctypes.get_errno(), "inotify_init1")
		self.wds = {}
		for p in paths:
			wd = libc.inotify_add_watch(self.fd, os.fsencode(p), mask)
			if wd < 0:
				raise OSError(ctypes.get_errno(), "inotify_add_watch %s" % p)
			self.wds[wd] = p

	def events(self):
		"""[(watched path, mask, name)] seen so far."""
		out = []
		while True:
			try:
				buf = os.read(self.fd, 65536)
			except BlockingIOError:
				return out
			off = 0
			while off < len(buf):
				wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, off)
				name = buf[off + 16:off + 16 + ln].rstrip(b"\0")
				out.append((self.wds.get(wd), mask, name))
				off += 16 + ln

	def close(self):
		os.close(self.fd)
