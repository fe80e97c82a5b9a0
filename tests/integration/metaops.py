# SPDX-License-Identifier: GPL-2.0-or-later
"""metaops.py - what a metadata operation costs, where the design bounds it: the layer syscalls
the daemon makes (read from its `-d` trace, where layer.c logs every one) and the FUSE requests
it sees (`plyfs status --json`), one operation at a time, on a mount with the handle store's
periodic save off (handles_interval=0) so that nothing else runs meanwhile.

- create_new: a file CREATE makes is a new inode: its lookup reads no overlay xattr (metacopy,
  origin, the old plyfs origin) and no +i/+a flags (statx, protattr). Per create: one LOOKUP,
  one CREATE, at most one GETATTR (the parent's, which the kernel refreshes after a change).
- unlink_created: the UNLINK of a file the mount created finds its node by the inode (node.h,
  IDENTITY): no xattr, no file handle, no statx; at most 7 layer calls per unlink (with the
  parent's GETATTR); one UNLINK and at most one GETATTR request, no LOOKUP.
- unlink_lower: the UNLINK of a lower file already looked up (in a parent already copied up)
  reads no xattr (its metacopy was read at the LOOKUP) and stats the name once in the upper and
  once in the lower; the upper gets a 0/0 whiteout.
- identity: what these shortcuts must keep: a lower file copied up keeps its st_ino through a
  rename and a link, the link count follows, the upper layer holds what kernel overlayfs wrote
  (origin kept, whiteouts), and kernel overlayfs mounted on the same layers shows the same.

Run by hand: tests/integration/run.sh build/plyfs -k 'metaops/*' [-v].
"""

import json
import os
import re
import stat
import subprocess

import lifecycle
import mounts
from mounts import Failure, t

N = 20			# operations measured per test
CALL = re.compile(r'\b([a-z_0-9]+)\((-?\d+), "([^"]*)"\) = (-?\d+)')
# Calls of the handle store and statfs, not of the operation measured.
BACKGROUND = {"pwrite", "ftruncate", "fsync", "fstatvfs"}


class Ctx(lifecycle.Ctx):
	GROUP = "metaops"


def setup(ctx):
	"""Lower `low/` with N single-link files, upper, work, mnt; the daemon traced (-d)."""
	for i in range(N):
		lifecycle.write(ctx.path("l0/low/f%d" % i), "lower %d" % i)
	for d in ("u", "w", "mnt"):
		os.makedirs(ctx.path(d))
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s,handles_interval=0" % (
		ctx.path("l0"), ctx.path("u"), ctx.path("w"))
	ctx.daemon = lifecycle.start_foreground(ctx, ["-d", "-o", opts, mnt], mnt)
	return mnt


def pin(ctx, paths):
	"""O_PATH fds on `paths`, closed at cleanup: the kernel keeps their dentries and so never
	forgets their nodes, even when another process drops the caches meanwhile (the measured
	operations would then look the names up again)."""
	h = ctx.track(Fds([os.open(p, os.O_PATH | os.O_NOFOLLOW) for p in paths]))
	return h


class Fds:
	def __init__(self, fds):
		self.fds = fds

	def cleanup(self):
		if self in mounts.ACTIVE:
			mounts.ACTIVE.remove(self)
		for fd in self.fds:
			os.close(fd)
		self.fds = []
		return []


def log_size(ctx):
	return os.path.getsize(os.path.join(ctx.logdir, "daemon.log"))


def calls_since(ctx, off):
	"""The layer calls the daemon traced since log offset `off`: [(call, arg)]."""
	with open(os.path.join(ctx.logdir, "daemon.log"), "rb") as f:
		f.seek(off)
		text = f.read().decode(errors="replace")
	return [(m.group(1), m.group(3)) for m in CALL.finditer(text)
		if m.group(1) not in BACKGROUND]


def ops(ctx, mnt):
	cp = subprocess.run([ctx.opts.binary, "status", "--json", mnt], stdin=subprocess.DEVNULL,
			    capture_output=True, timeout=t(30), env=ctx.env())
	if cp.returncode != 0:
		raise Failure("plyfs status --json exited %d: %s" % (cp.returncode, cp.stderr))
	return json.loads(cp.stdout)["ops"]


def measure(ctx, mnt, fn, args):
	"""Runs fn(a) for each a; returns ([calls of each], {opcode: requests in all})."""
	before = ops(ctx, mnt)
	per = []
	for a in args:
		off = log_size(ctx)
		fn(a)
		per.append(calls_since(ctx, off))
	after = ops(ctx, mnt)
	return per, {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def xattr_reads(calls):
	return [c for c in calls if c[0] in ("getxattr", "listxattr")]


def show(calls):
	return ", ".join("%s(%s)" % c for c in calls)


def create_new(ctx):
	mnt = setup(ctx)
	os.mkdir(os.path.join(mnt, "d"))
	pin(ctx, [mnt, os.path.join(mnt, "d")])

	def create(i):
		os.close(os.open(os.path.join(mnt, "d", "c%d" % i),
				 os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
	per, req = measure(ctx, mnt, create, range(N))
	errs = []
	for i, calls in enumerate(per):
		bad = [c for c in xattr_reads(calls) if "overlay." in c[1] or "plyfs." in c[1]]
		bad += [c for c in calls if c[0] == "statx" and c[1] == "c%d" % i]
		if bad:
			errs.append("create of c%d read what a new file cannot have: %s (all: %s)"
				    % (i, show(bad), show(calls)))
			break
	if req.get("lookup", 0) != N or req.get("create", 0) != N or req.get("getattr", 0) > N:
		errs.append("requests for %d creates: %s (want %d LOOKUP, %d CREATE, at most "
			    "%d GETATTR)" % (N, req, N, N, N))
	for name in ("setattr", "open"):
		if req.get(name, 0):
			errs.append("%d %s requests for %d creates of empty files"
				    % (req[name], name.upper(), N))
	return errs


def unlink_created(ctx):
	mnt = setup(ctx)
	d = os.path.join(mnt, "d")
	os.mkdir(d)
	for i in range(N):
		lifecycle.write(os.path.join(d, "f%d" % i), "x")
	pin(ctx, [mnt, d] + [os.path.join(d, "f%d" % i) for i in range(N)])
	per, req = measure(ctx, mnt, lambda i: os.unlink(os.path.join(d, "f%d" % i)), range(N))
	errs = []
	for i, calls in enumerate(per):
		bad = xattr_reads(calls) + [c for c in calls
					    if c[0] in ("name_to_handle_at", "statx")]
		if bad:
			errs.append("unlink of f%d: %s (all: %s)" % (i, show(bad), show(calls)))
			break
	total = sum(len(c) for c in per)
	if total > 7 * N:
		errs.append("%d layer calls for %d unlinks (at most 7 each by design): %s"
			    % (total, N, show(per[-1])))
	if req.get("unlink", 0) != N or req.get("getattr", 0) > N or req.get("lookup", 0):
		errs.append("requests for %d unlinks: %s (want %d UNLINK, at most %d GETATTR, "
			    "no LOOKUP)" % (N, req, N, N))
	if os.listdir(d) or os.listdir(ctx.path("u/d")):
		errs.append("left after the unlinks: %s, upper %s"
			    % (os.listdir(d), os.listdir(ctx.path("u/d"))))
	return errs


def unlink_lower(ctx):
	mnt = setup(ctx)
	low = os.path.join(mnt, "low")
	# The LOOKUPs, outside what is measured.
	pin(ctx, [mnt, low] + [os.path.join(low, "f%d" % i) for i in range(N)])
	os.unlink(os.path.join(low, "f0"))	# copies the parent up, outside too
	per, req = measure(ctx, mnt, lambda i: os.unlink(os.path.join(low, "f%d" % i)),
			   range(1, N))
	errs = []
	for i, calls in enumerate(per, 1):
		stats = [c for c in calls if c[0] == "fstatat" and c[1] == "f%d" % i]
		if xattr_reads(calls) or len(stats) > 2:
			errs.append("unlink of lower f%d: %s (want no xattr read; the name stat'ed "
				    "in the upper and the lower once each)" % (i, show(calls)))
			break
	if req.get("unlink", 0) != N - 1 or req.get("lookup", 0):
		errs.append("requests for %d unlinks: %s" % (N - 1, req))
	for i in range(N):
		st = os.lstat(ctx.path("u/low/f%d" % i))
		if not stat.S_ISCHR(st.st_mode) or st.st_rdev != 0:
			errs.append("upper low/f%d is not a 0/0 whiteout: %o" % (i, st.st_mode))
			break
	if os.listdir(low):
		errs.append("left in low/: %s" % os.listdir(low))
	return errs


def identity(ctx):
	"""Renames and links of a copied-up file and unlinks of new files, through the shortcuts;
	then kernel overlayfs on the same layers must show the same."""
	mnt = setup(ctx)
	m = lambda p: os.path.join(mnt, p)	# noqa: E731
	errs = []
	ino = os.lstat(m("low/f0")).st_ino
	with open(m("low/f0"), "a") as f:	# copy-up
		f.write(" more")
	os.rename(m("low/f0"), m("low/g0"))
	os.link(m("low/g0"), m("low/h0"))
	os.unlink(m("low/g0"))
	st = os.lstat(m("low/h0"))
	if st.st_ino != ino or st.st_nlink != 1:
		errs.append("copied-up f0 renamed, linked, unlinked: ino %d nlink %d (want %d, 1)"
			    % (st.st_ino, st.st_nlink, ino))
	lifecycle.write(m("new"), "n")
	nino = os.lstat(m("new")).st_ino
	os.link(m("new"), m("new2"))
	os.unlink(m("new"))
	st = os.lstat(m("new2"))
	if st.st_ino != nino or st.st_nlink != 1:
		errs.append("new file linked and unlinked: ino %d nlink %d (want %d, 1)"
			    % (st.st_ino, st.st_nlink, nino))
	seen = sorted(os.listdir(m("low"))), sorted(os.listdir(mnt))
	errs += ctx.daemon.cleanup()
	km = ctx.path("km")
	os.makedirs(km)
	os.makedirs(ctx.path("kw"))
	subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
			"lowerdir=%s,upperdir=%s,workdir=%s,index=on,redirect_dir=on"
			% (ctx.path("l0"), ctx.path("u"), ctx.path("w")), km],
		       check=True, timeout=t(30))
	ctx.track(mounts.BindMount(km))  # any mount we made: umount on cleanup
	kseen = sorted(os.listdir(os.path.join(km, "low"))), sorted(os.listdir(km))
	if kseen != seen:
		errs.append("kernel overlayfs on the upper shows %s, plyfs showed %s" % (kseen, seen))
	kst = os.lstat(os.path.join(km, "low/h0"))
	if kst.st_ino != os.lstat(ctx.path("l0/low/f0")).st_ino:
		errs.append("kernel overlayfs: low/h0 ino %d, not its lower origin's" % kst.st_ino)
	return errs


TESTS = [
	("create_new", create_new),
	("unlink_created", unlink_created),
	("unlink_lower", unlink_lower),
	("identity", identity),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("metaops", TESTS, Ctx)
