# SPDX-License-Identifier: GPL-2.0-or-later
"""dircache.py - directory listings cached by the kernel (cache_readdir and keep_cache on
OPENDIR, issue 10), with kernel overlayfs as the oracle of what a listing shows.

- warm_listing: a second listing of an unchanged lower-only directory sends no READDIR or
  READDIRPLUS, and a second `find` of a whole tree no OPENDIR, RELEASEDIR nor READDIR(PLUS) to
  the daemon (counted with `plyfs status --json`);
  a directory with an upper part caches too once a listing would not move its atime (relatime:
  the listing that moves it reaches the daemon).
- fresh_after_change: the same two lowers and upper, built twice; the binary on one copy, kernel
  overlayfs on the other. Before each change every listed directory is read until the binary's
  kernel serves it from its cache (bounded; asserted), then the same change is made through both
  mounts: create, mknod (fifo), unlink of an upper file and of a lower one (a whiteout), rename
  into, out of and within a directory (over a lower name), mkdir, rmdir of an upper directory and
  of a merged one emptied first, link and symlink (of lower files), copy-up of a file and of a
  directory, mkdir over a whiteout (opaque), rmdir and mkdir of the same name while a descriptor
  of the old directory is open, a change inside a lower-only directory. After each change every
  directory is listed through both: names and types must be equal, and each d_ino the binary
  reports must be the entry's st_ino.
- dino_plain_readdir: big upper directories (one pure, one impure: a copied-up lower file
  renamed into it, three times) read by plain READDIRs after the caches are dropped: every d_ino is the
  entry's st_ino (the lower file's for the renamed one).
- atime_like_kernel: listings of a new upper directory, relatime: the first moves its atime,
  the second not, one after a chmod again, as under kernel overlayfs (a listing served from the
  kernel's cache reaches no daemon, so the binary lets it cache only while no atime is due).
- atime_remount_like_kernel: the same across `mount -o remount,bind,strictatime` and back to
  relatime (layers on a strictatime tmpfs): a listing cached under relatime is not served under
  strictatime, where every listing moves the atime.
- concurrent_listings: 70 big directories listed at once a getdents buffer at a time (more
  unfinished listings than the daemon keeps without handles), two interleaved listings of one,
  telldir/seekdir/rewinddir, a listing through /proc/self/fd, fsync of a directory fd.

Run by hand: tests/integration/run.sh build/plyfs -k 'dircache/*' [--sanitizer] -v.
"""

import os
import stat
import subprocess
import time

import lifecycle
import mounts
import status
from mounts import t

KERNEL_OPTS = "redirect_dir=on,index=on"
# Every directory compared after each change (those missing on both sides are skipped).
BIG = 3000	# entries of a directory that takes several READDIR buffers
DIRS = ("", "d", "e", "d/sub", "d/sub2", "d/nd", "dd", "lo", "lo/in", "re")


class Ctx(lifecycle.Ctx):
	GROUP = "dircache"


def build_layers(root):
	"""root/{l0,l1,u,w,m}: l1 the bottom lower. Returns (lowers, upper, work, mnt)."""
	P = lambda *a: os.path.join(root, *a)  # noqa: E731
	files = {
		"l1": ["d/a", "d/b", "d/keep", "d/sub/x", "d/sub2/y", "e/ein", "dd/x", "lo/1", "lo/in/2",
		       "re/z"],
		"l0": ["d/c", "d/cp", "e/e0"],
	}
	for layer, rels in files.items():
		for rel in rels:
			os.makedirs(os.path.dirname(P(layer, rel)), exist_ok=True)
			with open(P(layer, rel), "w") as f:
				f.write(rel + "\n")
	for d in ("u", "w", "m"):
		os.makedirs(P(d))
	return [P("l0"), P("l1")], P("u"), P("w"), P("m")


def readdir_count(ctx, mnt):
	ops = status.status_json(ctx, mnt).get("ops", {})
	return ops.get("readdir", 0) + ops.get("readdirplus", 0)


DIR_OPS = ("opendir", "releasedir", "readdir", "readdirplus")


def dir_requests(ctx, mnt):
	"""{op: count} of the requests a listing may send (OPENDIR, RELEASEDIR, READDIR(PLUS))."""
	ops = status.status_json(ctx, mnt).get("ops", {})
	return {op: ops.get(op, 0) for op in DIR_OPS}


def listing(path):
	"""{name: (d_type as a stat S_IF* kind, d_ino)} of one listing (opendir/readdir), or None."""
	try:
		with os.scandir(path) as it:
			out = {}
			for e in it:
				st_kind = ("dir" if e.is_dir(follow_symlinks=False) else
					   "link" if e.is_symlink() else
					   "file" if e.is_file(follow_symlinks=False) else "other")
				out[e.name] = (st_kind, e.inode())
			return out
	except FileNotFoundError:
		return None


def prime(ctx, mnt, errs, label):
	"""Lists every directory until the binary's kernel serves each listing from its cache: a
	full round of listings that sends no READDIR (rounds 20 ms apart for at most 10 s: a
	directory whose atime is due is listed by the daemon once more; memory pressure or another
	process's drop_caches may evict a listing, and on a loaded machine such drops can come
	every second)."""
	deadline = time.monotonic() + t(10)
	while True:
		before = readdir_count(ctx, mnt)
		for rel in DIRS:
			listing(os.path.join(mnt, rel))
		if readdir_count(ctx, mnt) == before:
			return
		if time.monotonic() > deadline:
			break
		time.sleep(0.02)
	errs.append("%s: listings of unchanged directories still reach the daemon after %.0f s of "
		    "rounds" % (label, t(10)))


def compare_all(pm, km, errs, label):
	for rel in DIRS:
		a, b = listing(os.path.join(pm, rel)), listing(os.path.join(km, rel))
		if a is None or b is None:
			if (a is None) != (b is None):
				errs.append("%s: /%s exists: binary %s, kernel %s"
					    % (label, rel, a is not None, b is not None))
			continue
		names_a = {n: k for n, (k, _) in a.items()}
		names_b = {n: k for n, (k, _) in b.items()}
		if names_a != names_b:
			errs.append("%s: listing of /%s: binary %r, kernel %r"
				    % (label, rel, sorted(names_a.items()), sorted(names_b.items())))
		for n, (_, ino) in a.items():
			try:
				st = os.lstat(os.path.join(pm, rel, n))
			except OSError as e:
				errs.append("%s: /%s listed, lstat: %s" % (label, os.path.join(rel, n), e))
				continue
			if st.st_ino != ino:
				errs.append("%s: /%s: d_ino %d, st_ino %d"
					    % (label, os.path.join(rel, n), ino, st.st_ino))


def outcome(fn, m):
	try:
		fn(m)
		return "ok"
	except OSError as e:
		return "errno %d" % e.errno


def rmdir_mkdir_held(m):
	"""rmdir re and mkdir re again while a descriptor of the old re is open."""
	fd = os.open(os.path.join(m, "re"), os.O_RDONLY | os.O_DIRECTORY)
	try:
		os.listdir(fd)
		os.unlink(os.path.join(m, "re/z"))
		os.rmdir(os.path.join(m, "re"))
		os.mkdir(os.path.join(m, "re"))
		open(os.path.join(m, "re/new"), "w").close()
	finally:
		os.close(fd)


def J(m, *a):
	return os.path.join(m, *a)


CHANGES = [
	("create", lambda m: open(J(m, "d/new"), "w").close()),
	("mknod", lambda m: os.mkfifo(J(m, "d/fifo"))),
	("unlink_upper", lambda m: os.unlink(J(m, "d/new"))),
	("unlink_lower", lambda m: os.unlink(J(m, "d/a"))),
	("rename_in", lambda m: os.rename(J(m, "e/ein"), J(m, "d/ein"))),
	("rename_out", lambda m: os.rename(J(m, "d/b"), J(m, "e/b"))),
	("rename_over_lower", lambda m: os.rename(J(m, "d/c"), J(m, "d/cp"))),
	("mkdir", lambda m: os.mkdir(J(m, "d/nd"))),
	("create_in_new_dir", lambda m: open(J(m, "d/nd/f"), "w").close()),
	("rmdir_upper", lambda m: (os.unlink(J(m, "d/nd/f")), os.rmdir(J(m, "d/nd")))),
	("rmdir_merged", lambda m: (os.unlink(J(m, "dd/x")), os.rmdir(J(m, "dd")))),
	("link", lambda m: os.link(J(m, "d/keep"), J(m, "d/keeplink"))),
	("symlink", lambda m: os.symlink("keep", J(m, "d/sl"))),
	("copy_up_file", lambda m: os.chmod(J(m, "d/sub/x"), 0o600)),
	("copy_up_dir", lambda m: os.chmod(J(m, "d/sub"), 0o700)),
	("opaque_dir", lambda m: (os.unlink(J(m, "d/sub2/y")), os.rmdir(J(m, "d/sub2")),
				  os.mkdir(J(m, "d/sub2")))),
	("rmdir_mkdir_held_fd", rmdir_mkdir_held),
	("lower_only_dir", lambda m: open(J(m, "lo/in/3"), "w").close()),
	("rename_dir", lambda m: os.rename(J(m, "lo/in"), J(m, "e/in"))),
]


def with_both(ctx, seconds, body, strictatime_fs=False):
	"""The same layers under the binary (p) and under kernel overlayfs (k): body(p, k) returns
	errors, run under a watchdog of `seconds`; both unmounted after, also on failure.
	strictatime_fs: the layers on a tmpfs mounted strictatime (unmounted after the test), so that
	what moves an upper atime is the overlay mount's flags, not the layer filesystem's relatime
	(kernel overlayfs' private upper mount has no atime flags; the daemon's read has them)."""
	root = ctx.path("")
	if strictatime_fs:
		root = ctx.path("layerfs")
		os.makedirs(root)
		mounts.run(["mount", "-t", "tmpfs", "-o", "strictatime,size=64m", "dircache-atime",
			    root], t(30))
		mounts.ACTIVE.append(mounts.BindMount(root))
	p = build_layers(os.path.join(root, "p"))
	k = build_layers(os.path.join(root, "k"))
	km = mounts.KernelMount(k[3], k[0], k[1], k[2])
	km.opts += "," + KERNEL_OPTS
	d = mounts.Daemon(ctx.opts.binary, p[3], p[0], p[1], p[2], logdir=ctx.path("log/daemon"),
			  sanitizer=ctx.opts.sanitizer)
	errs = []
	try:
		km.mount()
		d.start()
		with mounts.Watchdog(t(seconds), [d]):
			errs += body(p, k)
	finally:
		errs += d.cleanup()
		msg = km.cleanup()
		if msg:
			errs.append("kernel: " + msg)
	return errs


def fresh_after_change(ctx):
	def body(p, k):
		errs = []
		pm, kmnt = p[3], k[3]
		compare_all(pm, kmnt, errs, "before any change")
		for label, fn in CHANGES:
			prime(ctx, pm, errs, "before " + label)
			a, b = outcome(fn, pm), outcome(fn, kmnt)
			if a != b:
				errs.append("%s: binary %s, kernel %s" % (label, a, b))
			compare_all(pm, kmnt, errs, "after " + label)
		return errs
	return with_both(ctx, 120, body)


def sent_by_second(ctx, m, fn):
	"""READDIR(PLUS) requests the second of two fn() calls sent: the fewest of 3 tries, as
	memory pressure or a drop_caches of another process may evict a cached listing meanwhile."""
	fewest = None
	for _ in range(3):
		fn()
		before = readdir_count(ctx, m)
		fn()
		sent = readdir_count(ctx, m) - before
		fewest = sent if fewest is None else min(fewest, sent)
		if fewest == 0:
			break
	return fewest


def walk_requests(ctx, m, fn):
	"""{op: count} of the directory requests the second of two fn() calls sent (the fewest of 3
	tries, as in sent_by_second()): a warm walk of an unchanged tree sends no OPENDIR, RELEASEDIR
	nor READDIR(PLUS) (the kernel's no-opendir mode and its listing cache)."""
	fewest = None
	for _ in range(3):
		fn()
		before = dir_requests(ctx, m)
		fn()
		after = dir_requests(ctx, m)
		sent = {op: after[op] - before[op] for op in DIR_OPS}
		if fewest is None or sum(sent.values()) < sum(fewest.values()):
			fewest = sent
		if not any(fewest.values()):
			break
	return fewest


def warm_checks(ctx, m, u):
	errs = []
	first = listing(os.path.join(m, "lo"))
	sent = sent_by_second(ctx, m, lambda: listing(os.path.join(m, "lo")))
	if sent:
		errs.append("second listing of the unchanged lower-only /lo sent %d READDIR(PLUS)" % sent)
	second = listing(os.path.join(m, "lo"))
	if first != second:
		errs.append("/lo listed %r, then %r" % (first, second))
	find = ["find", os.path.join(m, "tree")]
	outs = []
	sent = walk_requests(ctx, m, lambda: outs.append(
		subprocess.run(find, capture_output=True, timeout=t(30)).stdout))
	if any(sent.values()):
		errs.append("second find of an unchanged tree of 41 directories sent %r" % sent)
	if len(set(outs)) != 1 or outs[0].count(b"\n") != 61:
		errs.append("find printed %r lines (expected 61 each time)"
			    % [o.count(b"\n") for o in outs])
	# A directory with an upper part, created now (relatime: its atime is due once more).
	open(os.path.join(m, "d/new"), "w").close()
	if not stat.S_ISDIR(os.lstat(os.path.join(u, "d")).st_mode):
		errs.append("setup: no upper d")
	prime(ctx, m, errs, "upper directory d")
	return errs


def warm_listing(ctx):
	lowers, u, w, m = build_layers(ctx.path("p"))
	for i in range(20):
		os.makedirs(os.path.join(lowers[1], "tree/t%d/s" % i))
		open(os.path.join(lowers[1], "tree/t%d/s/f" % i), "w").close()
	d = mounts.Daemon(ctx.opts.binary, m, lowers, u, w, logdir=ctx.path("log/daemon"),
			  sanitizer=ctx.opts.sanitizer)
	errs = []
	try:
		d.start()
		with mounts.Watchdog(t(60), [d]):
			errs += warm_checks(ctx, m, u)
	finally:
		errs += d.cleanup()
	return errs


def atime_steps(m, u):
	"""[(step, the upper d/ad's atime moved)] for listings of d/ad, relatime (the default):
	the first moves it (atime <= mtime), the second does not, a chmod (ctime after atime) makes
	the next one move it again, served from a cache or not."""
	ad, up = os.path.join(m, "d/ad"), os.path.join(u, "d/ad")
	os.mkdir(ad)
	out = []
	for step in ("list", "list again", "chmod, list", "list again"):
		time.sleep(0.03)  # a clock tick apart: a moved atime differs from the last one
		if step.startswith("chmod"):
			os.chmod(ad, 0o700)
			time.sleep(0.03)
		before = os.lstat(up).st_atime_ns
		os.listdir(ad)
		out.append((step, os.lstat(up).st_atime_ns != before))
	return out


def atime_like_kernel(ctx):
	"""A listing the kernel serves from its cache moves no atime: the binary must not let it
	cache while the atime is due, so that the upper directory's atime moves as under kernel
	overlayfs."""
	def body(p, k):
		errs = []
		got, want = atime_steps(p[3], p[1]), atime_steps(k[3], k[1])
		if got != want:
			errs.append("upper d/ad's atime moved: binary %r, kernel %r" % (got, want))
		if [moved for _, moved in want] != [True, False, True, False]:
			errs.append("kernel overlayfs (the oracle): atime moved %r" % want)
		return errs
	return with_both(ctx, 60, body)


def set_atime_flag(p, k, flag):
	"""mount -o remount,bind,FLAG on both mounts (the mount's own flags only: a remount of the
	FUSE superblock also drops the kernel's cached listings, and would hide a daemon that does
	not), then until the binary's mount shows it (bounded) and its daemon's thread has read it."""
	for m in (k[3], p[3]):
		mounts.run(["mount", "-o", "remount,bind," + flag, m], t(30))
	deadline = time.monotonic() + t(10)
	while time.monotonic() < deadline:
		with open("/proc/self/mountinfo") as f:
			opts = [ln.split()[5].split(",") for ln in f if ln.split()[4] == p[3]]
		shown = "relatime" in opts[-1] if flag == "relatime" else \
			not {"relatime", "noatime"} & set(opts[-1])
		if shown:
			break
		time.sleep(0.05)
	time.sleep(0.2)  # the daemon's thread reads mountinfo again (as posix/atime_remount)


def remount_steps(p, k):
	"""[(step, atime of the upper d/rd moved)] under both: relatime listings (the second may be
	served from a cache), then strictatime after a remount (every listing moves it, also of a
	directory whose listing was cached under relatime), then relatime again."""
	out = {"binary": [], "kernel": []}
	for side, (m, u) in (("binary", (p[3], p[1])), ("kernel", (k[3], k[1]))):
		os.mkdir(os.path.join(m, "d/rd"))
	plan = [("list", None), ("list again", None), ("remount strictatime, list", "strictatime"),
		("list again", None), ("list again", None), ("remount relatime, list", "relatime"),
		("list again", None)]
	for step, flag in plan:
		if flag:
			set_atime_flag(p, k, flag)
		time.sleep(0.03)  # a clock tick apart
		for side, (m, u) in (("binary", (p[3], p[1])), ("kernel", (k[3], k[1]))):
			up = os.path.join(u, "d/rd")
			before = os.lstat(up).st_atime_ns
			os.listdir(os.path.join(m, "d/rd"))
			out[side].append((step, os.lstat(up).st_atime_ns != before))
	return out["binary"], out["kernel"]


def atime_remount_like_kernel(ctx):
	"""The kernel serves listings from its cache also after a remount (the binary answers
	OPENDIR with ENOSYS once, for the whole connection): listings cached under relatime must
	not be served under strictatime, where each moves the atime."""
	def body(p, k):
		errs = []
		got, want = remount_steps(p, k)
		if got != want:
			errs.append("upper d/rd's atime moved: binary %r, kernel %r" % (got, want))
		if [moved for _, moved in want] != [True, False, True, True, True, False, False]:
			errs.append("kernel overlayfs (the oracle): atime moved %r" % want)
		return errs
	return with_both(ctx, 120, body, strictatime_fs=True)


NDIRS, PER_DIR = 70, 300  # more partial listings at once than the daemon keeps (dir.c)


def names_of(fd_or_path):
	with os.scandir(fd_or_path) as it:
		return sorted(e.name for e in it)


def seek_checks(path, errs):
	"""telldir/seekdir/rewinddir through libc on one big directory."""
	import ctypes
	libc = ctypes.CDLL(None, use_errno=True)
	libc.opendir.restype = ctypes.c_void_p
	libc.readdir.restype = ctypes.c_void_p
	libc.readdir.argtypes = [ctypes.c_void_p]
	libc.telldir.restype = ctypes.c_long
	libc.telldir.argtypes = [ctypes.c_void_p]
	libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
	libc.rewinddir.argtypes = [ctypes.c_void_p]
	libc.closedir.argtypes = [ctypes.c_void_p]
	name_off = 19  # struct dirent64: d_ino 8, d_off 8, d_reclen 2, d_type 1, d_name
	d = libc.opendir(path.encode())
	if not d:
		errs.append("opendir %s: errno %d" % (path, ctypes.get_errno()))
		return
	def read_all():
		out = []
		while True:
			e = libc.readdir(d)
			if not e:
				return out
			out.append(ctypes.string_at(e + name_off).decode())
	try:
		full = read_all()
		libc.rewinddir(d)
		first = [ctypes.string_at(libc.readdir(d) + name_off).decode() for _ in range(150)]
		pos = libc.telldir(d)
		rest = read_all()
		libc.seekdir(d, pos)
		again = read_all()
		if first + rest != full or again != rest:
			errs.append("%s: rewinddir/telldir/seekdir: %d+%d names, again %d, full %d"
				    % (path, len(first), len(rest), len(again), len(full)))
	finally:
		libc.closedir(d)


def concurrent_listings(ctx):
	"""Listings without per-open state in the daemon: 70 big directories listed at once, each
	read a buffer at a time in turns (more unfinished listings than the daemon keeps), two
	interleaved listings of one directory, telldir/seekdir/rewinddir, a listing through
	/proc/self/fd and fsync of a directory descriptor: every listing complete and exact."""
	lowers, u, w, m = build_layers(ctx.path("p"))
	want = {}
	for i in range(NDIRS):
		rel = "big/b%02d" % i
		os.makedirs(os.path.join(lowers[1], rel))
		names = ["f%04d_%s" % (j, "x" * 20) for j in range(PER_DIR)]
		for n in names:
			open(os.path.join(lowers[1], rel, n), "w").close()
		want[rel] = sorted(names)
	d = mounts.Daemon(ctx.opts.binary, m, lowers, u, w, logdir=ctx.path("log/daemon"),
			  sanitizer=ctx.opts.sanitizer)
	errs = []
	try:
		d.start()
		with mounts.Watchdog(t(120), [d]):
			for rnd in ("cold", "warm"):
				its = {rel: os.scandir(os.path.join(m, rel)) for rel in want}
				got = {rel: [] for rel in want}
				live = dict(its)
				while live:  # scandir reads one getdents buffer at a time
					for rel in list(live):
						e = next(live[rel], None)
						if e is None:
							live.pop(rel).close()
						else:
							got[rel].append(e.name)
				for rel in want:
					if sorted(got[rel]) != want[rel] or len(got[rel]) != PER_DIR:
						errs.append("%s listing of %s: %d names, %d distinct, expected %d"
							    % (rnd, rel, len(got[rel]), len(set(got[rel])), PER_DIR))
			one = os.path.join(m, "big/b00")
			a, b = os.scandir(one), os.scandir(one)
			ga, gb = [], []
			for ea, eb in zip(a, b):
				ga.append(ea.name)
				gb.append(eb.name)
			ga += [e.name for e in a]
			gb += [e.name for e in b]
			a.close()
			b.close()
			if sorted(ga) != want["big/b00"] or sorted(gb) != want["big/b00"]:
				errs.append("two interleaved listings of big/b00: %d and %d names"
					    % (len(ga), len(gb)))
			open(os.path.join(one, "added"), "w").close()
			seek_checks(one, errs)
			fd = os.open(one, os.O_RDONLY | os.O_DIRECTORY)
			try:
				if names_of("/proc/self/fd/%d" % fd) != sorted(want["big/b00"] + ["added"]):
					errs.append("listing through /proc/self/fd differs")
				os.fsync(fd)
			finally:
				os.close(fd)
	finally:
		errs += d.cleanup()
	return errs


def dino_checks(m):
	"""d_ino == st_ino for every entry of big upper directories read by plain READDIRs too (the
	kernel asks READDIRPLUS only for its first buffer unless entries are stat'ed): /pure (made
	through the mount) and /imp, which also holds copied-up lower files renamed into it (their
	st_ino is their lower file's: the directory is impure)."""
	errs = []
	moved = ["d/keep", "e/e0", "lo/1"]  # before, amid and after the others in any order
	for name in ("pure", "imp"):
		os.mkdir(os.path.join(m, name))
		for i in range(BIG):
			if name == "imp" and i % (BIG // 2) == 0:
				src = moved.pop(0)
				os.chmod(os.path.join(m, src), 0o600)
				os.rename(os.path.join(m, src), os.path.join(m, "imp", src.replace("/", "_")))
			open(os.path.join(m, name, "f%05d" % i), "w").close()
	src = moved.pop(0)
	os.chmod(os.path.join(m, src), 0o600)
	os.rename(os.path.join(m, src), os.path.join(m, "imp", src.replace("/", "_")))
	subprocess.run(["sh", "-c", "sync; echo 2 > /proc/sys/vm/drop_caches"], timeout=t(60))
	for name in ("pure", "imp"):
		d = os.path.join(m, name)
		with os.scandir(d) as it:
			dino = {e.name: e.inode() for e in it}  # no stat: plain READDIR after the first
		want = BIG + (3 if name == "imp" else 0)
		if len(dino) != want:
			errs.append("/%s lists %d entries, expected %d" % (name, len(dino), want))
		bad = [(n, i, os.lstat(os.path.join(d, n)).st_ino) for n, i in sorted(dino.items())
		       if os.lstat(os.path.join(d, n)).st_ino != i]
		if bad:
			errs.append("/%s: %d entries with d_ino != st_ino (name, d_ino, st_ino): %r"
				    % (name, len(bad), bad[:5]))
	return errs


def dino_plain_readdir(ctx):
	lowers, u, w, m = build_layers(ctx.path("p"))
	d = mounts.Daemon(ctx.opts.binary, m, lowers, u, w, logdir=ctx.path("log/daemon"),
			  sanitizer=ctx.opts.sanitizer)
	errs = []
	try:
		d.start()
		with mounts.Watchdog(t(120), [d]):
			before = status.status_json(ctx, m).get("ops", {}).get("readdir", 0)
			errs += dino_checks(m)
			if status.status_json(ctx, m).get("ops", {}).get("readdir", 0) == before:
				errs.append("setup: no plain READDIR reached the daemon")
	finally:
		errs += d.cleanup()
	return errs


TESTS = [
	("warm_listing", warm_listing),
	("dino_plain_readdir", dino_plain_readdir),
	("fresh_after_change", fresh_after_change),
	("atime_like_kernel", atime_like_kernel),
	("atime_remount_like_kernel", atime_remount_like_kernel),
	("concurrent_listings", concurrent_listings),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("dircache", TESTS, Ctx)
