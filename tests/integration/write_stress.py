# SPDX-License-Identifier: GPL-2.0-or-later
"""write_stress.py - a daemon killed in the middle of a copy-up, and concurrent copy-ups.

Neither test has a kernel oracle: they assert the right results directly.

leftovers/*: a 200 MiB lower file is copied up (an appending write, or a growing truncate, from a
child process); as soon as the copy shows up in the binary's layers (or after the child is done),
the daemon (our own child) gets SIGKILL and the dead mount is lazily unmounted. The upper must
then hold the file complete or not at all, and nothing else. Stale entries are planted in
workdir/work, the binary is mounted again: workdir/work must be empty once the mount is up, and
the copy-up must now work.

concurrency/copyup_race: 8 threads open the same 20 lower files for write and each writes its
own 4 KiB block, while 4 threads read them and check every block is either the old or the new
content. At the end every file has every write, and the -d trace shows one copy-up per file
(count_copyup_commits() documents the trace lines it counts).
"""

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import mounts
from mounts import t
from write_env import P, wtest

BIG = 200 << 20
CHUNK = 1 << 20


def _chunk(i):
	head = b"chunk %08d " % i
	return (head * (CHUNK // len(head) + 1))[:CHUNK]


def _big_sha(extra=b"", total=BIG):
	h = hashlib.sha256()
	for i in range(BIG // CHUNK):
		h.update(_chunk(i))
	h.update(extra)
	if total > BIG + len(extra):
		zeros = bytes(CHUNK)
		left = total - BIG - len(extra)
		while left:
			n = min(left, CHUNK)
			h.update(zeros[:n])
			left -= n
	return h.hexdigest()


def _prepare_big(env):
	with open(P(env.p, "lower0", "big"), "wb") as f:
		for i in range(BIG // CHUNK):
			f.write(_chunk(i))


def _file_sha(path):
	h = hashlib.sha256()
	with open(path, "rb") as f:
		while True:
			b = f.read(CHUNK * 4)
			if not b:
				return h.hexdigest()
			h.update(b)


APPEND = b"APPENDED\n"
TRIGGERS = {
	"append": "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_APPEND)\n"
		  "os.write(fd,%r)\n" % APPEND,
	"truncate": "import os,sys\nos.truncate(sys.argv[1],%d)\n" % (BIG + (100 << 20)),
}


def _entries(root):
	out = []
	for dirpath, dirs, files in os.walk(root):
		out += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirs + files]
	return sorted(out)


def _used(path):
	st = os.statvfs(path)
	return (st.f_blocks - st.f_bfree) * st.f_frsize


def _kill_during_copy(env, kind):
	"""Starts the copy-up trigger in a child and SIGKILLs the daemon as soon as the copy shows:
	a new entry in the binary's upper or workdir, or 2 MiB more used on the layers' filesystem
	(an O_TMPFILE copy has no name until it is complete). Returns a note on what was seen."""
	work, upper = P(env.p, "work"), env.up()
	base_work, base_used = set(_entries(work)), _used(env.p)
	child = subprocess.Popen([sys.executable, "-c", TRIGGERS[kind], P(env.pm, "big")],
				 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
				 stderr=subprocess.DEVNULL)
	seen, grown, end = None, 0, time.monotonic() + t(20)
	while time.monotonic() < end:
		grown = _used(env.p) - base_used
		new = sorted(set(_entries(work)) - base_work) + _entries(upper)
		if new or grown >= 2 << 20:
			seen = new or ["(no name yet)"]
			break
		if child.poll() is not None:
			break
		time.sleep(0.0002)
	d = env.daemon
	os.kill(d.pid, signal.SIGKILL)
	d.proc.wait(timeout=t(15))
	if d in mounts.ACTIVE:
		mounts.ACTIVE.remove(d)
	mounts.run(["umount", "-l", env.pm], t(30), check=False)
	try:
		rc = child.wait(timeout=t(15))
	except subprocess.TimeoutExpired:
		child.kill()
		child.wait()
		rc = "killed (hung)"
	sizes = {}
	for rel in seen or []:
		for root in (work, upper):
			if os.path.isfile(P(root, rel)):
				sizes[rel] = os.path.getsize(P(root, rel))
	if seen:
		return ("killed after seeing %r (sizes %r, %d MiB more used); trigger exited %s"
			% (seen[:4], sizes, grown >> 20, rc))
	return ("the copy-up was never seen in progress (trigger exited %s before the kill): the "
		"kill may have come after it finished" % rc)


def _check_upper_after_kill(env, kind):
	upper = env.up()
	ents = _entries(upper)
	env.check(ents in ([], ["big"]), "binary's upper after the kill holds %r (expected nothing "
		  "or only 'big')" % ents[:10])
	if "big" not in ents:
		return
	size = os.path.getsize(P(upper, "big"))
	if kind == "append":
		ok = {(BIG, _big_sha()), (BIG + len(APPEND), _big_sha(APPEND))}
	else:
		ok = {(BIG, _big_sha()), (BIG + (100 << 20), _big_sha(total=BIG + (100 << 20)))}
	got = (size, _file_sha(P(upper, "big")))
	env.check(got in ok, "binary's upper holds a partial 'big' after the kill: %d bytes (the "
		  "lower has %d)" % (size, BIG))


def _plant_stale(env):
	w = P(env.p, "work", "work")
	os.makedirs(P(w, "stale-dir", "sub"), exist_ok=True)
	for rel in ("stale-file", "stale-dir/sub/f"):
		with open(P(w, rel), "wb") as f:
			f.write(b"stale")
	os.mknod(P(w, "stale-wh"), 0o020000, os.makedev(0, 0))


def _leftovers_test(kind):
	@wtest("leftovers/kill_during_%s_copyup" % kind, kernel=False, prepare=_prepare_big,
	       layers=lambda: ([{}], {}), timeout=180)
	def fn(env):
		env.notes.append(_kill_during_copy(env, kind))
		_check_upper_after_kill(env, kind)
		_plant_stale(env)
		env.start_daemon()
		w = P(env.p, "work", "work")
		end = time.monotonic() + 2
		while os.path.isdir(w) and os.listdir(w) and time.monotonic() < end:
			time.sleep(0.02)
		left = sorted(os.listdir(w)) if os.path.isdir(w) else []
		env.check(not left, "workdir/work not cleaned at mount: %r" % left)
		# the copy-up now works
		fd = os.open(P(env.pm, "big"), os.O_WRONLY | os.O_APPEND)
		os.write(fd, APPEND)
		os.close(fd)
		mp = P(env.pm, "big")
		st = os.stat(mp)
		base = BIG + (100 << 20) if kind == "truncate" and st.st_size > BIG + len(APPEND) \
			else BIG
		env.check(st.st_size == base + len(APPEND), "after remount: size %d, expected %d"
			  % (st.st_size, base + len(APPEND)))
		if base == BIG:
			env.check(_file_sha(mp) == _big_sha(APPEND), "after remount: wrong content")
	fn.__name__ = "t_leftovers_" + kind
	return fn


_leftovers_test("append")
_leftovers_test("truncate")


# --- concurrency ----------------------------------------------------------------------------------

NFILES, WRITERS, READERS, BLOCK, NBLOCKS = 20, 8, 4, 4096, 16


def _orig_block(f, i):
	return (b"orig f%02d b%02d|" % (f, i) * BLOCK)[:BLOCK]


def _new_block(f, w):
	return (b"NEW f%02d w%d|" % (f, w) * BLOCK)[:BLOCK]


def race_layers():
	lower = {"c/f%02d" % f: b"".join(_orig_block(f, i) for i in range(NBLOCKS))
		 for f in range(NFILES)}
	return [lower], {}


# A copy-up "commits" when the finished copy is linked or renamed into the upper under the
# file's name. plyfs -d traces every layer syscall (src/layer.c traced()) as
#     plyfs: CALL(DIRFD, "NAME") = RESULT[ strerror]
# A file copied through O_TMPFILE commits with
#     plyfs: linkat(DIRFD, "f01") = 0
# and a copy made under a temporary name in the work dir with
#     plyfs: renameat2(WORKFD, "#plyfs.PID.N") = 0
#     plyfs:   renameat2 -> (DIRFD, "f01") flags 0x1
# ADAPT HERE if the write path traces the commit differently.
COMMIT_RE = re.compile(r'\b(linkat|renameat2?)\((-?\d+), "([^"]*)"\) = 0\b')
RENAME_TO_RE = re.compile(r'\brenameat2? -> \((-?\d+), "([^"]*)"\)')


def _is(arg, name):
	return arg == name or arg.endswith("/" + name)


def count_copyup_commits(trace, name):
	"""Successful linkat/renameat/renameat2 trace lines naming `name` (the quoted argument is
	`name` or ends with "/name"), counting a successful rename by its "-> (fd, "name")" line."""
	n, last_rename_ok = 0, False
	for line in trace.splitlines():
		m = COMMIT_RE.search(line)
		if m:
			last_rename_ok = m.group(1) != "linkat"
			if _is(m.group(3), name) and not RENAME_TO_RE.search(line):
				n += 1
			continue
		m = RENAME_TO_RE.search(line)
		if m and last_rename_ok and _is(m.group(2), name):
			n += 1
		last_rename_ok = False
	return n


def _race(root, errs):
	names = ["f%02d" % f for f in range(NFILES)]
	barrier = threading.Barrier(WRITERS + READERS)
	done = threading.Event()

	def writer(w):
		order = list(range(NFILES))
		random.Random(w).shuffle(order)
		barrier.wait()
		for f in order:
			fd = os.open(P(root, "c", names[f]), os.O_WRONLY)
			try:
				if os.pwrite(fd, _new_block(f, w), w * BLOCK) != BLOCK:
					errs.append("short write f%02d w%d" % (f, w))
			finally:
				os.close(fd)

	def reader(rd):
		barrier.wait()
		while not done.is_set():
			for f in range(NFILES):
				with open(P(root, "c", names[f]), "rb") as fh:
					data = fh.read()
				if len(data) != BLOCK * NBLOCKS:
					errs.append("reader %d: f%02d has %d bytes" % (rd, f, len(data)))
					return
				for i in range(NBLOCKS):
					blk = data[i * BLOCK:(i + 1) * BLOCK]
					if blk != _orig_block(f, i) and not (i < WRITERS and blk == _new_block(f, i)):
						errs.append("reader %d: f%02d block %d corrupt: %r"
							    % (rd, f, i, blk[:32]))
						return

	def guard(fn, *a):
		try:
			fn(*a)
		except Exception as e:  # reported, not raised: the other threads must finish
			errs.append("%s%r: %s: %s" % (fn.__name__, a, type(e).__name__, e))
			try:
				barrier.abort()
			except threading.BrokenBarrierError:
				pass

	ws = [threading.Thread(target=guard, args=(writer, w)) for w in range(WRITERS)]
	rs = [threading.Thread(target=guard, args=(reader, r)) for r in range(READERS)]
	for x in ws + rs:
		x.start()
	for x in ws:
		x.join(t(60))
	done.set()
	for x in rs:
		x.join(t(60))
	if any(x.is_alive() for x in ws + rs):
		errs.append("threads still running after 60s")


@wtest("concurrency/copyup_race", layers=race_layers, kernel=False, debug=True, timeout=120)
def t_copyup_race(env):
	errs = []
	_race(env.pm, errs)
	env.errs += errs[:20]
	for f in range(NFILES):
		want = b"".join(_new_block(f, i) if i < WRITERS else _orig_block(f, i)
				for i in range(NBLOCKS))
		for where, path in (("mount", P(env.pm, "c", "f%02d" % f)),
				    ("binary's upper", env.up("c/f%02d" % f))):
			try:
				with open(path, "rb") as fh:
					got = fh.read()
			except OSError as e:
				got = repr(e).encode()
			if got != want:
				bad = [i for i in range(NBLOCKS) if got[i * BLOCK:(i + 1) * BLOCK]
				       != want[i * BLOCK:(i + 1) * BLOCK]]
				env.errs.append("%s: f%02d wrong at blocks %r (%d bytes)"
						% (where, f, bad, len(got)))
	_check_copyup_counts(env)


def _check_copyup_counts(env):
	with open(env.daemon.log_path, "rb") as fh:
		trace = fh.read().decode(errors="replace")
	if not COMMIT_RE.search(trace):
		msg = ("no successful linkat/renameat2 line in the -d trace: copy-ups not counted "
		       "(see count_copyup_commits)")
		if os.path.basename(env.opts.binary).startswith("plyfs"):
			env.errs.append(msg)
		else:
			env.notes.append(msg + "; this binary does not trace syscalls")
		return
	counts = {"f%02d" % f: count_copyup_commits(trace, "f%02d" % f) for f in range(NFILES)}
	bad = {k: v for k, v in counts.items() if v != 1}
	env.check(not bad, "copy-up commits per file must be 1, the trace shows %r" % bad)
