# SPDX-License-Identifier: GPL-2.0-or-later
"""lifetime.py - node lifetime under FORGET pressure, seen through the mount: inotify and fanotify
marks across cache drops, and a directory used through a bind mount, a dir fd and a cwd while its
mount is (optionally) lazily detached and the caches are dropped every 100 ms.

Conventions as in handles.py: each test builds its own layers in base/lifetime/NAME, mounts the
binary in the foreground as a child it owns (lifecycle.start_foreground: killed by PID, sanitizer
logs in the test's log dir), registers every helper mount and process for cleanup, and bounds
every use of the mount with a Watchdog. The kernel log (/dev/kmsg) read from the start of a test
must hold no new line mentioning fuse or overlay (skipped, with a note, if unreadable).

inotify and fanotify marks pin their inode, so the kernel never sends FORGET for a marked node:
what the marks test is that a lookup by path after its dentry was dropped finds the same nodeid
again (else the events of changes through the mount would go to another inode). The fanotify
test then removes the marks, lets the kernel forget the nodes, and decodes the handles it reported
(handles.py's stamp technique proves the inodes were evicted).

Run by hand: tests/integration/run.sh build/plyfs -k lifetime [--sanitizer].
"""

import ctypes
import errno
import json
import os
import select
import stat
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import handles  # noqa: E402
import layerspec  # noqa: E402
import lifecycle  # noqa: E402
import mounts  # noqa: E402
from mounts import Failure, t  # noqa: E402

RUN_SECONDS = 15	# the length of the forgotten-parent stress run (the issue asks 15 s; not scaled)
DROP_PERIOD = 0.1	# seconds between two cache drops during that run
MIN_DROPS = 5		# drops the run must see, whatever the load (150 on a quiet machine)
EVENT_WAIT = 5		# seconds (scaled) to wait for the expected notification events
MAX_ERRS = 10		# a worker stops after this many unexpected errors

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
				ctypes.c_char_p]

IN_MODIFY, IN_ATTRIB, IN_CREATE, IN_DELETE = 0x2, 0x4, 0x100, 0x200
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC

FAN_CLOEXEC, FAN_NONBLOCK, FAN_CLASS_NOTIF, FAN_REPORT_FID = 0x1, 0x2, 0x0, 0x200
FAN_MARK_ADD = 0x1
FAN_MODIFY, FAN_ATTRIB, FAN_CREATE, FAN_DELETE = 0x2, 0x4, 0x100, 0x200
FAN_ONDIR = 0x40000000
FAN_EVENT_INFO_TYPE_FID = 1
FAN_METADATA = struct.Struct("=IBBHQii")	# struct fanotify_event_metadata (24 bytes)


class Ctx(lifecycle.Ctx):
	"""lifecycle.Ctx (process tracking, sanitizer logs, cleanup) in base/lifetime/NAME; `daemon`
	as handles.py's helpers expect."""
	GROUP = "lifetime"


def mount_layers(ctx, l0, l1, up):
	"""Builds lower0, lower1, upper from the specs and mounts the binary on ctx.path("mnt")."""
	for d, spec in zip(("l0", "l1", "u"), (l0, l1, up)):
		os.makedirs(ctx.path(d))
		layerspec.build_layer(ctx.path(d), spec)
	for d in ("w", "mnt"):
		os.makedirs(ctx.path(d))
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (
		ctx.path("l0"), ctx.path("l1"), ctx.path("u"), ctx.path("w"))
	ctx.daemon = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	return ctx.daemon


def drop_settled(ctx, times):
	"""Waits until the connection is idle (see handles.drop_caches), then drops the caches
	`times` times."""
	problems = lifecycle.settle(ctx.daemon)
	if problems:
		raise Failure(problems[0])
	for _ in range(times):
		with open("/proc/sys/vm/drop_caches", "w") as f:
			f.write("3")


def errname(e):
	return errno.errorcode.get(e, "?")


# --- the kernel log -------------------------------------------------------------------------------

class Kmsg:
	"""Reads the kernel log records written after start(). A record is "<prio>,seq,usec,flags;
	text"; continuation lines (" KEY=value") are dropped."""

	def __init__(self):
		self.fd = None
		self.why = None

	def start(self):
		try:
			self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
			os.lseek(self.fd, 0, os.SEEK_END)
		except OSError as e:
			self.why = "/dev/kmsg unreadable (%s): kernel log not checked" % e
			self.close()

	def close(self):
		if self.fd is not None:
			os.close(self.fd)
			self.fd = None

	def new_lines(self):
		out = []
		while self.fd is not None:
			try:
				rec = os.read(self.fd, 8192)
			except BlockingIOError:
				break
			except BrokenPipeError:	# records overwritten while we read: go on
				continue
			if not rec:
				break
			text = rec.decode(errors="replace").partition(";")[2]
			out.append(text.split("\n")[0])
		return out

	def problems(self):
		"""New lines mentioning fuse or overlay (the drop_caches notices name neither). Kernel
		overlayfs' own lines ("overlayfs: ...") are left out: these tests mount none, so such a
		line comes from another process' kernel overlay mount on a shared machine."""
		if self.fd is None:
			return []
		bad = [x for x in self.new_lines()
		       if ("fuse" in x.lower() or "overlay" in x.lower())
		       and not x.startswith("overlayfs: ")]
		self.close()
		return ["kernel log: %s" % x for x in bad[:10]]


# --- 1. inotify -----------------------------------------------------------------------------------

IN_MASK = IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE

INOTIFY_TARGETS = [	# (label, path in the mount)
	("lower file", "lf"),
	("copied-up file", "cu"),
	("upper file", "uf"),
	("lower dir", "ldir"),
	("second-lower dir", "l1dir"),
	("mount root", ""),
]


def read_inotify(fd):
	"""All queued events: [(wd, mask, name)]."""
	out = []
	while True:
		try:
			buf = os.read(fd, 65536)
		except BlockingIOError:
			return out
		off = 0
		while off + 16 <= len(buf):
			wd, mask, _cookie, n = struct.unpack_from("=iIII", buf, off)
			name = buf[off + 16:off + 16 + n].rstrip(b"\0").decode(errors="replace")
			out.append((wd, mask, name))
			off += 16 + n


def inotify_fdinfo(fd):
	"""{wd: {field: value}} from /proc/self/fdinfo/FD ("inotify wd:1 ino:... f_handle:...")."""
	marks = {}
	with open("/proc/self/fdinfo/%d" % fd) as f:
		for line in f:
			if not line.startswith("inotify "):
				continue
			fields = dict(x.split(":", 1) for x in line.split()[1:] if ":" in x)
			marks[int(fields["wd"], 16)] = fields
	return marks


def fdinfo_handle(fields):
	"""The FileHandle of an fdinfo line, or None if it shows none."""
	if "fhandle-bytes" not in fields or "f_handle" not in fields:
		return None
	fh = handles.FileHandle()
	raw = bytes.fromhex(fields["f_handle"])
	fh.handle_bytes = int(fields["fhandle-bytes"], 16)
	fh.handle_type = int(fields["fhandle-type"], 16)
	if fh.handle_bytes != len(raw) or len(raw) > handles.MAX_HANDLE_SZ:
		return None
	fh.f_handle[:len(raw)] = raw
	return fh


def check_fdinfo(ctx, fd, wds):
	"""Every mark shows a file handle, and that handle decodes to the marked inode."""
	marks = inotify_fdinfo(fd)
	errs = []
	mfd = handles.open_mount_root(ctx)
	try:
		for (label, rel), wd in zip(INOTIFY_TARGETS, wds):
			fields = marks.get(wd)
			if fields is None:
				errs.append("%s (%s): no mark wd %d in fdinfo after the cache drops"
					    % (label, rel or "/", wd))
				continue
			fh = fdinfo_handle(fields)
			if fh is None:
				errs.append("%s (%s): fdinfo shows no (valid) file handle: %r"
					    % (label, rel or "/", fields))
				continue
			want = os.stat(ctx.path("mnt/" + rel)).st_ino
			try:
				dfd = handles.decode(mfd, fh, os.O_RDONLY)
			except OSError as e:
				errs.append("%s (%s): the fdinfo handle (%s) does not decode: %s"
					    % (label, rel or "/", handles.describe(fh), e))
				continue
			try:
				got = os.fstat(dfd).st_ino
			finally:
				os.close(dfd)
			if got != want or int(fields["ino"], 16) != want:
				errs.append("%s (%s): mark on ino %s, its handle decodes to st_ino "
					    "%d, the path has st_ino %d"
					    % (label, rel or "/", fields["ino"], got, want))
	finally:
		os.close(mfd)
	return errs


def inotify_changes(ctx):
	"""Changes through the mount, and the events each must give: [(wd index, mask, name)]."""
	m = ctx.path("mnt/")
	with open(m + "lf", "ab") as f:		# copies lf up
		f.write(b"appended through the mount\n")
	os.chmod(m + "cu", 0o600)
	with open(m + "uf", "ab") as f:
		f.write(b"more\n")
	lifecycle.write(m + "ldir/new", "new in ldir\n")
	os.chmod(m + "ldir", 0o750)
	lifecycle.write(m + "l1dir/tmp", "short-lived\n")
	os.unlink(m + "l1dir/tmp")
	lifecycle.write(m + "rootnew", "new in the root\n")
	return [(0, IN_MODIFY, ""), (1, IN_ATTRIB, ""), (2, IN_MODIFY, ""), (3, IN_CREATE, "new"),
		(3, IN_ATTRIB, ""), (4, IN_CREATE, "tmp"), (4, IN_DELETE, "tmp"),
		(5, IN_CREATE, "rootnew")]


def wait_inotify(fd, wds, want):
	"""Collects events until each of `want` was seen (bounded); returns the problems."""
	missing = {(wds[i], mask, name) for i, mask, name in want}
	seen, errs = [], []
	end = time.monotonic() + t(EVENT_WAIT)
	while missing and time.monotonic() < end:
		select.select([fd], [], [], 0.1)
		for wd, mask, name in read_inotify(fd):
			seen.append((wd, mask, name))
			if mask & (IN_IGNORED | IN_Q_OVERFLOW):
				errs.append("event mask %#x on wd %d: the mark was removed or the "
					    "queue overflowed" % (mask, wd))
			missing = {m for m in missing
				   if not (m[0] == wd and m[1] & mask and m[2] == name)}
	labels = {wd: "%s (%s)" % INOTIFY_TARGETS[i] for i, wd in enumerate(wds)}
	for wd, mask, name in sorted(missing):
		errs.append("no event %#x%s on the mark of the %s within %.0fs; got %r"
			    % (mask, " name %r" % name if name else "", labels[wd], t(EVENT_WAIT),
			       seen[:12]))
	return errs


def inotify_marks(ctx):
	"""Marks on a lower, a copied-up and an upper file, a lower and a second-lower dir and the
	root; caches dropped three times; every mark still shows a file handle in fdinfo (decoding
	to the marked inode) and changes made through the mount give their events."""
	l0 = {"lf": "lower file\n", "cu": "to be copied up\n", "ldir/inner": "inner\n"}
	l1 = {"l1dir/x": "x in lower1\n"}
	up = {"uf": "upper file\n"}
	h = mount_layers(ctx, l0, l1, up)
	errs = []
	with mounts.Watchdog(t(30), [h]):
		os.chmod(ctx.path("mnt/cu"), 0o640)
		if not os.path.isfile(ctx.path("u/cu")):
			return ["setup: chmod did not copy cu up (no u/cu)"]
		fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
		if fd < 0:
			return ["inotify_init1: %s" % os.strerror(ctypes.get_errno())]
		try:
			wds = []
			for label, rel in INOTIFY_TARGETS:
				path = os.fsencode(ctx.path("mnt/" + rel))
				wd = _libc.inotify_add_watch(fd, path, IN_MASK)
				if wd < 0:
					raise Failure("inotify_add_watch(%s): %s"
						      % (label, os.strerror(ctypes.get_errno())))
				wds.append(wd)
			drop_settled(ctx, 3)
			errs += check_fdinfo(ctx, fd, wds)
			errs += wait_inotify(fd, wds, inotify_changes(ctx))
		finally:
			os.close(fd)
		errs += lifecycle.settle(h)
	return errs + h.cleanup()


# --- 2. fanotify with FAN_REPORT_FID --------------------------------------------------------------

def parse_fanotify(buf):
	"""[(mask, FileHandle or None)] of the events in `buf`."""
	out, off = [], 0
	while off + FAN_METADATA.size <= len(buf):
		ev_len, _vers, _res, meta_len, mask, _fd, _pid = FAN_METADATA.unpack_from(buf, off)
		fh, info = None, off + meta_len
		while info + 4 <= off + ev_len:
			itype, _pad, ilen = struct.unpack_from("=BBH", buf, info)
			if itype == FAN_EVENT_INFO_TYPE_FID and ilen >= 4 + 8 + 8:
				hb, ht = struct.unpack_from("=Ii", buf, info + 12)
				raw = buf[info + 20:info + 20 + hb]
				fh = handles.FileHandle()
				fh.handle_bytes, fh.handle_type = hb, ht
				fh.f_handle[:len(raw)] = raw
			if ilen == 0:
				break
			info += ilen
		out.append((mask, fh))
		off += ev_len if ev_len else len(buf)
	return out


def fanotify_refusal(ctx, e, what):
	"""The kernel refused FAN_REPORT_FID: documented only as ENODEV for a zero f_fsid before
	Linux 6.8 ("weak" fsids are allowed for inode marks since). Everything else: the errno, for
	the lead to judge."""
	fsid = os.statvfs(ctx.path("mnt")).f_fsid
	rel = tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit())
	msg = ("%s refused on the FUSE mount: %s (errno %d); statfs f_fsid %#x, kernel %s"
	       % (what, errname(e), e, fsid, os.uname().release))
	if e == errno.ENODEV and fsid == 0 and rel < (6, 8):
		ctx.notes.append(msg + ": documented (zero fsid before 6.8), not tested further")
		return []
	return [msg]


def fanotify_collect(ctx, fd, want):
	"""Reads events until each (mask bit, key) of `want` was seen; returns {(bit, key): fh},
	the problems."""
	got, seen = {}, []
	end = time.monotonic() + t(EVENT_WAIT)
	while len(got) < len(want) and time.monotonic() < end:
		select.select([fd], [], [], 0.1)
		try:
			buf = os.read(fd, 65536)
		except BlockingIOError:
			continue
		for mask, fh in parse_fanotify(buf):
			seen.append(hex(mask))
			for bit, key in want:
				# Each bit is marked on one object only: the bit names it.
				if mask & bit and (bit, key) not in got and fh is not None:
					got[(bit, key)] = [fh]
	errs = ["no fanotify event %#x (%s) with a file id within %.0fs; masks seen %r"
		% (bit, key, t(EVENT_WAIT), seen[:12])
		for bit, key in want if (bit, key) not in got]
	return got, errs


def fanotify_fid(ctx):
	"""fanotify_init(FAN_CLASS_NOTIF|FAN_REPORT_FID), inode marks on a lower file (MODIFY,
	ATTRIB) and a second-lower dir (CREATE, DELETE, ONDIR); caches dropped; changes through the
	mount give events whose file id decodes (open_by_handle_at on the mount) to the marked
	object. Then the marks are removed, the kernel forgets both inodes (proved by stamps, see
	handles.py) and the reported handles must still decode to them."""
	l0 = {"ff": "fanotify file\n", "other": "x\n"}
	l1 = {"fd/inner": "inner\n"}
	h = mount_layers(ctx, l0, l1, {})
	errs = []
	with mounts.Watchdog(t(30), [h]):
		flags = FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_NONBLOCK
		fd = _libc.fanotify_init(flags, os.O_RDONLY)
		if fd < 0:
			return ["fanotify_init(FAN_CLASS_NOTIF|FAN_REPORT_FID): %s"
				% os.strerror(ctypes.get_errno())] + h.cleanup()
		try:
			for rel, mask in (("ff", FAN_MODIFY | FAN_ATTRIB),
					  ("fd", FAN_CREATE | FAN_DELETE | FAN_ONDIR)):
				if _libc.fanotify_mark(fd, FAN_MARK_ADD, mask, handles.AT_FDCWD,
						       os.fsencode(ctx.path("mnt/" + rel))) != 0:
					e = ctypes.get_errno()
					return (errs + fanotify_refusal(
						ctx, e, "fanotify_mark(FAN_MARK_ADD, %s)" % rel)
						+ h.cleanup())
			drop_settled(ctx, 3)
			m = ctx.path("mnt/")
			with open(m + "ff", "ab") as f:		# copies ff up
				f.write(b"appended\n")
			os.chmod(m + "ff", 0o600)
			lifecycle.write(m + "fd/new", "new\n")
			os.unlink(m + "fd/new")
			want = [(FAN_MODIFY, "ff"), (FAN_ATTRIB, "ff"), (FAN_CREATE, "fd"),
				(FAN_DELETE, "fd")]
			got, e2 = fanotify_collect(ctx, fd, want)
			errs += e2
			errs += fanotify_decode(ctx, got, pinned=True)
		finally:
			os.close(fd)	# removes the marks: the inodes can now be evicted
		errs += fanotify_decode(ctx, got, pinned=False)
		errs += lifecycle.settle(h)
	return errs + h.cleanup()


def fanotify_decode(ctx, got, pinned):
	"""Each handle reported decodes to its object (st_ino, content). Not `pinned`: after the
	kernel was made to forget the object (stamped: handles.prepare_forget)."""
	errs, mfd = [], handles.open_mount_root(ctx)
	when = "with the mark" if pinned else "after the marks were removed and the inode forgotten"
	try:
		for (bit, rel), fhs in sorted(got.items()):
			tk = handles.Taken(ctx, rel)
			for fh in fhs:
				tk.fh = fh
				if not pinned:
					back = handles.backing(ctx, rel)
					handles.prepare_forget(ctx, [(tk, rel, back)])
				errs += ["event %#x, %s: %s" % (bit, when, x)
					 for x in handles.check_decoded(mfd, tk)]
	finally:
		os.close(mfd)
	return errs


# --- 3. forgotten parent: a bind-mounted deep dir -------------------------------------------------

PRE_FILES = {"f0": "f0 in lower1 a/b/c\n", "f1": "f1 in lower1 a/b/c\n" * 50}
LOWS = ("wa_low", "wb_low", "wc_low")


def deep_layers():
	l0 = {"a/only0": "a/only0\n", "top": "top\n"}
	l1 = {"a/b/c/" + n: c for n, c in PRE_FILES.items()}
	l1.update({"a/b/c/" + n: "%s original\n" % n for n in LOWS})
	l1["a/b/other"] = "sibling of c\n"
	return l0, l1, {}


class Ops:
	"""Names relative to `base` (a path prefix, "" for the cwd) or to the dir fd `dfd`."""

	def __init__(self, base="", dfd=None):
		self.base, self.dfd = base, dfd

	def p(self, name):
		return os.path.join(self.base, name) if self.base else name

	def open(self, name, flags, mode=0o644):
		return os.open(self.p(name), flags, mode, dir_fd=self.dfd)

	def stat(self, name):
		return os.stat(self.p(name), dir_fd=self.dfd)

	def rename(self, a, b):
		os.rename(self.p(a), self.p(b), src_dir_fd=self.dfd, dst_dir_fd=self.dfd)

	def unlink(self, name):
		os.unlink(self.p(name), dir_fd=self.dfd)

	def listdir(self):
		if self.dfd is None:
			return os.listdir(self.base or ".")
		fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.dfd)
		try:
			return os.listdir(fd)
		finally:
			os.close(fd)


def read_all(ops, name):
	fd = ops.open(name, os.O_RDONLY)
	try:
		out = b""
		while True:
			chunk = os.read(fd, 65536)
			if not chunk:
				return out
			out += chunk
	finally:
		os.close(fd)


def absent(ops, name, what, errs):
	try:
		ops.stat(name)
		errs.append("%s: %s exists, expected ENOENT" % (what, name))
	except FileNotFoundError:
		pass


def work_round(ops, prefix, i, kept, low, errs):
	"""One round: create+write, stat, stat an absent name, rename, stat both names, maybe
	unlink, append to our lower file, read a lower file, list the dir."""
	name, data = "%s%d" % (prefix, i), ("%s round %d\n" % (prefix, i)).encode() * (1 + i % 7)
	fd = ops.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
	try:
		os.write(fd, data)
		size = os.fstat(fd).st_size
		if size != len(data):
			errs.append("%s: fstat size %d after writing %d" % (name, size, len(data)))
	finally:
		os.close(fd)
	if ops.stat(name).st_size != len(data):
		errs.append("%s: stat size differs from the %d bytes written" % (name, len(data)))
	absent(ops, "%sabsent%d" % (prefix, i), "stat of a never created name", errs)
	ops.rename(name, name + ".r")
	absent(ops, name, "stat after rename", errs)
	ops.stat(name + ".r")
	if i % 3 == 0:
		ops.unlink(name + ".r")
		absent(ops, name + ".r", "stat after unlink", errs)
	else:
		kept[name + ".r"] = data
	if i % 5 == 0:
		line = ("%s append %d\n" % (prefix, i)).encode()
		fd = ops.open(low[0], os.O_WRONLY | os.O_APPEND)
		try:
			os.write(fd, line)
		finally:
			os.close(fd)
		low[1] += line
		if read_all(ops, low[0]) != low[1]:
			errs.append("%s reads other than what was appended" % low[0])
	if i % 4 == 0:
		got = read_all(ops, "f0")
		if got != PRE_FILES["f0"].encode():
			errs.append("f0 reads %r" % got[:60])
	if i % 10 == 0:
		names = set(ops.listdir())
		if not {"f0", "f1", low[0]} <= names or name in names:
			errs.append("listing %r lacks f0/f1/%s or holds %s" % (sorted(names)[:8],
										low[0], name))


def work(ops, prefix, seconds, stop=None):
	"""Rounds of work_round() for `seconds`: {"errors", "kept" (name -> hex), "rounds", "low"}.
	ENOENT is only expected where absent() expects it; everything else is an error."""
	low_name = prefix + "low"
	low = [low_name, ("%s original\n" % low_name).encode()]
	kept, errs, i = {}, [], 0
	end = time.monotonic() + seconds
	while time.monotonic() < end and len(errs) < MAX_ERRS and not (stop and stop.is_set()):
		try:
			work_round(ops, prefix, i, kept, low, errs)
		except OSError as e:
			errs.append("round %d: %s (%s) on %r" % (i, e.strerror, errname(e.errno),
								  e.filename))
			# the round's state is unknown: forget the name, the upper check will say
			kept.pop("%s%d.r" % (prefix, i), None)
		i += 1
	return {"errors": errs, "kept": {k: v.hex() for k, v in kept.items()}, "rounds": i,
		"low": [low[0], low[1].hex()]}


def worker_main(prefix, seconds):
	"""The cwd worker process: waits for "go" on stdin, works in its cwd, prints JSON."""
	if sys.stdin.readline().strip() != "go":
		return 1
	res = work(Ops(), prefix, seconds)
	print(json.dumps(res))
	return 0


class Dropper(threading.Thread):
	"""Drops the caches every DROP_PERIOD and preads the fds opened before the run."""

	def __init__(self, pre):
		super().__init__(daemon=True)
		self.pre, self.stop, self.errs, self.drops = pre, threading.Event(), [], 0

	def run(self):
		while not self.stop.wait(DROP_PERIOD):
			try:
				with open("/proc/sys/vm/drop_caches", "w") as f:
					f.write("3")
				self.drops += 1
				self.errs += check_pre(self.pre)
			except OSError as e:
				self.errs.append("dropper: %s" % e)
			if len(self.errs) >= MAX_ERRS:
				return


def check_pre(pre):
	"""The fds opened before the run read their files."""
	errs = []
	for name, fd in pre.items():
		want = PRE_FILES[name].encode()
		got = os.pread(fd, len(want) + 10, 0)
		if got != want:
			errs.append("fd opened on %s before the run reads %r" % (name, got[:60]))
	return errs


class ThreadWorker(threading.Thread):
	def __init__(self, ops, prefix, stop):
		super().__init__(daemon=True)
		self.ops, self.prefix, self.stop, self.res = ops, prefix, stop, None

	def run(self):
		try:
			self.res = work(self.ops, self.prefix, RUN_SECONDS, self.stop)
		except Exception as e:
			self.res = {"errors": ["%s: %s" % (type(e).__name__, e)], "kept": {},
				    "rounds": 0, "low": None}


def start_cwd_worker(ctx, cwd):
	proc = subprocess.Popen([sys.executable, "-B", os.path.abspath(__file__), "--worker", "wc_",
				 str(RUN_SECONDS)], cwd=cwd, stdin=subprocess.PIPE,
				stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	return ctx.track(lifecycle.ChildHandle(proc))


def cwd_worker_result(child):
	try:
		out, err = child.proc.communicate(timeout=RUN_SECONDS + t(20))
	except subprocess.TimeoutExpired:
		child.kill()
		return {"errors": ["the cwd worker did not finish in time"], "kept": {},
			"low": None}
	try:
		return json.loads(out.decode())
	except ValueError:
		return {"errors": ["the cwd worker exited %d: %s" % (
			child.proc.returncode, err.decode(errors="replace")[-600:])],
			"kept": {}, "low": None}


def stress(ctx, h, bind, detach):
	"""Opens the dir fd and the pre-run fds, starts the workers (a: bind path, b: dir fd,
	c: cwd process), detaches the mount if asked, runs; returns (results, problems)."""
	c = ctx.path("mnt/a/b/c")
	dfd = os.open(c, os.O_RDONLY | os.O_DIRECTORY)
	pre = {n: os.open(os.path.join(c, n), os.O_RDONLY) for n in PRE_FILES}
	errs = []
	try:
		child = start_cwd_worker(ctx, c)
		if detach:
			mounts.run(["umount", "-l", ctx.path("mnt")], t(10))
			if mounts.mounted_at(ctx.path("mnt")):
				errs.append("setup: %s still mounted after umount -l"
					    % ctx.path("mnt"))
		stop = threading.Event()
		workers = [ThreadWorker(Ops(base=bind), "wa_", stop),
			   ThreadWorker(Ops(dfd=dfd), "wb_", stop)]
		dropper = Dropper(pre)
		child.proc.stdin.write(b"go\n")
		child.proc.stdin.flush()
		for w in workers + [dropper]:
			w.start()
		res_c = cwd_worker_result(child)
		for w in workers:
			w.join(t(20))
		stop.set()
		dropper.stop.set()
		dropper.join(t(10))
		if any(w.is_alive() for w in workers + [dropper]):
			errs.append("a worker thread is still running (a hung request?)")
		results = {"a (bind mount)": workers[0].res, "b (dir fd)": workers[1].res,
			   "c (cwd process)": res_c}
		errs += dropper.errs + check_pre(pre)
		# How many drops fit in the run depends on the machine's load (a drop syncs and
		# reclaims machine-wide): assert only that the run saw drops at all, not a rate.
		if dropper.drops < MIN_DROPS:
			errs.append("only %d cache drops during the run (at least %d)"
				    % (dropper.drops, MIN_DROPS))
		if ctx.opts.verbose:
			rounds = {k: (v or {}).get("rounds") for k, v in results.items()}
			ctx.notes.append("# rounds %s, %d drops" % (rounds, dropper.drops))
		return results, errs
	finally:
		for fd in list(pre.values()) + [dfd]:
			os.close(fd)


def expected_upper(results):
	"""{path in the upper: bytes or None for a dir} after the run; None if a worker failed."""
	want = {"a": None, "a/b": None, "a/b/c": None}
	for res in results.values():
		if res is None or res.get("low") is None:
			return None
		for name, data in res["kept"].items():
			want["a/b/c/" + name] = bytes.fromhex(data)
		want["a/b/c/" + res["low"][0]] = bytes.fromhex(res["low"][1])
	return want


def check_upper(ctx, want):
	"""The upper layer holds exactly `want` (nothing else but the ancestors), the lower layers
	are untouched."""
	errs, up = [], ctx.path("u")
	found = {}
	for root, dirs, files in os.walk(up):
		for n in dirs + files:
			p = os.path.join(root, n)
			rel = os.path.relpath(p, up)
			st = os.lstat(p)
			if stat.S_ISDIR(st.st_mode):
				found[rel] = None
			elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
				found[rel] = "whiteout"
			else:
				with open(p, "rb") as f:
					found[rel] = f.read()
	stray = sorted(set(found) - set(want))
	if stray:
		errs.append("upper holds entries outside a, a/b, a/b/c and the files made there: "
			    "%r" % ["%s (%s)" % (x, "whiteout" if found[x] == "whiteout" else
						  "dir" if found[x] is None else "file")
				    for x in stray[:10]])
	missing = sorted(set(want) - set(found))
	if missing:
		errs.append("%d entries missing from upper/a/b/c after the run: %r"
			    % (len(missing), missing[:10]))
	for rel in sorted(set(want) & set(found)):
		if want[rel] != found[rel]:
			errs.append("upper/%s holds %r, expected %r"
				    % (rel, (found[rel] or b"")[:60], (want[rel] or b"")[:60]))
			if len(errs) > MAX_ERRS:
				break
	l1 = os.listdir(ctx.path("l1/a/b/c"))
	if sorted(l1) != sorted(list(PRE_FILES) + list(LOWS)):
		errs.append("lower1/a/b/c changed: %r" % sorted(l1))
	return errs


def forgotten_parent(detach):
	"""a/b/c (lower1 only, so created files need a, a/b, a/b/c copied up) bind-mounted on
	`bind`; with `detach` the plyfs mountpoint is then lazily unmounted. For RUN_SECONDS three
	workers create/write/rename/unlink/stat present and absent names through the bind mount, a
	dir fd and a cwd process while the caches are dropped every DROP_PERIOD. No unexpected
	error; fds opened before the run keep reading; after everything is unmounted (the daemon
	exits by itself once the last user is gone) the upper holds exactly a, a/b, a/b/c and the
	files left in a/b/c."""
	def run(ctx):
		h = mount_layers(ctx, *deep_layers())
		bind = ctx.path("bind")
		os.makedirs(bind)
		errs, results = [], None
		with mounts.Watchdog(RUN_SECONDS + t(40), [h]):
			mounts.run(["mount", "--bind", ctx.path("mnt/a/b/c"), bind], t(10))
			bm = ctx.track(mounts.BindMount(bind))
			results, e = stress(ctx, h, bind, detach)
			errs += e
			for who, res in results.items():
				errs += ["worker %s: %s" % (who, x)
					 for x in (res or {}).get("errors", [])]
			errs += lifecycle.settle(h)
			for ch in [x for x in ctx.handles if isinstance(x, lifecycle.ChildHandle)]:
				errs += ch.cleanup()
			errs += bm.cleanup()
			if detach:
				errs += lifecycle.expect_stop(
					h, "the bind mount, the last user of the lazily unmounted "
					"mount, was unmounted", t(10))
		errs += h.cleanup()
		want = expected_upper(results)
		if want is None:
			return errs + ["a worker gave no result: the upper layer was not checked"]
		return errs + check_upper(ctx, want)
	return run


# --- the list -------------------------------------------------------------------------------------

TESTS = [
	("inotify_marks_after_drop", inotify_marks),
	("fanotify_fid_after_drop", fanotify_fid),
	("forgotten_parent_bind", forgotten_parent(False)),
	("forgotten_parent_bind_lazy_umount", forgotten_parent(True)),
]


def _watch_kmsg(ctx):
	kmsg = Kmsg()
	kmsg.start()
	if kmsg.why:
		ctx.notes.append(kmsg.why)
	return kmsg


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("lifetime", TESTS, Ctx, before=_watch_kmsg,
				  after=lambda kmsg: kmsg.problems())


if __name__ == "__main__":
	if len(sys.argv) == 4 and sys.argv[1] == "--worker":
		sys.exit(worker_main(sys.argv[2], float(sys.argv[3])))
	print("lifetime.py: a module of harness.py (or: --worker PREFIX SECONDS)", file=sys.stderr)
	sys.exit(2)
