# SPDX-License-Identifier: GPL-2.0-or-later
"""write_io.py - the data path's round trips, bounded by design, and the data they carry.

- io/flush_once: the daemon answers FLUSH with ENOSYS, so the kernel sends none after the first
  (counted by `plyfs status --json`); data written through fds closed since is in the upper
  file, also for a lower file copied up and for appends from two fds.
- io/appends_writeback: with writeback=1 (the kernel's writeback cache), 4000 4-byte appends are a few WRITEs; stat
  and a second fd see every byte before close; the upper holds them in order after.
- io/splice_write: WRITE data reaches the layer file through splice(2) (fuse_io.h): strace of the
  daemon during 8 MiB of 1 MiB writes shows the data spliced, no request read into memory
  larger than a page, and the bytes (a pattern, at aligned and unaligned offsets) are in the
  upper file.

- io/write_fstat_once: 300 writes through one fd cost the daemon at most one fstat of the file
  (the setuid/setgid check, file.h file_nopriv), not one per WRITE; after a chmod through the
  mount the next write looks again, once (perm/killpriv_after_chmod checks with kernel
  overlayfs that a bit such a chmod sets is still taken away by an unprivileged write).
- io/copyup_writebehind: the copy-up of a 40 MiB lower file (fsync on, the default) starts the
  writeback of each 8 MiB window as it is copied and waits for the window two starts older before
  starting the next (sync_file_range, copy_data.h), then fsyncs the copy, and only then links it
  into place; the upper holds the lower's bytes and the append. io/copyup_nosync: with fsync=0
  none of those syncs happen (kernel overlayfs' volatile).

Request counts and the strace check apply to plyfs only (for another binary: a note); the data
checks compare with kernel overlayfs on the same layers (write_env.py explains the fixture).
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

from write_env import P, read_file, wtest

WR = os.O_WRONLY


def io_layers():
	return [{"lo": "lower data\n", "lo2": "second lower\n"}], {"up": "upper data\n"}


def _is_plyfs(env):
	return os.path.basename(env.opts.binary).startswith("plyfs")


def _ops(env):
	out = subprocess.run([env.opts.binary, "status", "--json", env.pm], capture_output=True,
			     timeout=30, check=True).stdout
	return json.loads(out)["ops"]


def _write_close(r, rel, data, flags=WR | os.O_CREAT | os.O_TRUNC):
	fd = os.open(P(r, rel), flags, 0o644)
	try:
		os.write(fd, data)
	finally:
		os.close(fd)
	return read_file(P(r, rel))


def _two_fd_appends(r, rel):
	"""Appends from two O_APPEND fds, interleaved: every record lands, in order."""
	a = os.open(P(r, rel), WR | os.O_APPEND)
	b = os.open(P(r, rel), WR | os.O_APPEND)
	try:
		for i in range(50):
			os.write(a if i % 2 else b, b"rec%02d\n" % i)
	finally:
		os.close(a)
		os.close(b)
	return read_file(P(r, rel))


def _ro_before_copyup(r, rel):
	"""A read-only fd of a lower file opened before a write copies it up sees the new data."""
	ro = os.open(P(r, rel), os.O_RDONLY)
	try:
		before = os.pread(ro, 100, 0)
		_write_close(r, rel, b"NEW", WR)
		return before, os.pread(ro, 100, 0)
	finally:
		os.close(ro)


@wtest("io/flush_once", layers=io_layers)
def t_flush_once(env):
	env.same("first close", _write_close, "first", b"first\n")
	before = _ops(env) if _is_plyfs(env) else None
	for i in range(10):
		env.same("create f%d" % i, _write_close, "f%d" % i, b"data %d\n" % i * (i + 1))
	env.same("append to lower (copy-up)", _write_close, "lo", b"more\n", WR | os.O_APPEND)
	env.same("two fds append", _two_fd_appends, "up")
	env.same("ro fd before copy-up", _ro_before_copyup, "lo2")
	if before is None:
		env.notes.append("not plyfs: FLUSH requests not counted")
	else:
		after = _ops(env)
		flushes = after["flush"] - before["flush"]
		env.check(flushes == 0, "FLUSH requests after the first close: %d (expected 0)"
			  % flushes)
		env.check(after["release"] - before["release"] >= 14,
			  "RELEASE requests counted: %d" % (after["release"] - before["release"]))
	# The data is in the upper files once close(2) returned (the kernel read-back compares
	# the whole upper later; this is the binary's raw upper right now).
	for rel, want in [("f%d" % i, b"data %d\n" % i * (i + 1)) for i in range(10)] + [
			("lo", b"lower data\nmore\n"), ("lo2", b"NEWond lower\n")]:
		got = read_file(env.up(rel))
		env.check(got == want, "upper %s: %r, expected %r" % (rel, got[:80], want[:80]))
	recs = read_file(env.up("up"))
	env.check(recs == b"upper data\n" + b"".join(b"rec%02d\n" % i for i in range(50)),
		  "upper up after two-fd appends: %r" % recs[-80:])


MIB = 1 << 20
PATTERN = hashlib.sha256(b"plyfs").digest() * (MIB // 32)  # 1 MiB, not all one byte


def _big_writes(r, rel):
	"""8 MiB in 1 MiB writes at aligned offsets, then 3 unaligned writes: the file's digest."""
	fd = os.open(P(r, rel), WR | os.O_CREAT | os.O_TRUNC, 0o644)
	try:
		for i in range(8):
			os.write(fd, PATTERN[i:] + PATTERN[:i])
		for off, n in ((123, 70000), (MIB - 5, MIB + 9), (5 * MIB + 1, 4097)):
			os.pwrite(fd, PATTERN[n % 1000:][:n], off)
	finally:
		os.close(fd)
	return hashlib.sha256(read_file(P(r, rel))).hexdigest()


class Strace:
	"""strace -f of the daemon's `calls` (splice(2) and read(2) by default), attached before the
	workload."""

	def __init__(self, pid, out, calls="splice,read", verbose=False):
		self.out = out
		self.proc = subprocess.Popen(["strace", "-f"] + (["-v"] if verbose else []) +
					     ["-e", "trace=" + calls, "-o", out, "-p", str(pid)],
					     stdin=subprocess.DEVNULL,
					     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		# Attached to every thread once it said so for each: wait for the first line, then
		# a moment for the others (bounded).
		deadline = time.monotonic() + 15
		line = b""
		os.set_blocking(self.proc.stderr.fileno(), False)
		while b"attached" not in line and time.monotonic() < deadline:
			line += self.proc.stderr.read() or b""
			time.sleep(0.05)
		time.sleep(0.5)

	def stop(self):
		if self.proc.poll() is None:
			self.proc.send_signal(signal.SIGINT)
		try:
			self.proc.wait(15)
		except subprocess.TimeoutExpired:
			self.proc.kill()
			self.proc.wait(5)
		with open(self.out) as f:
			return f.read()


CALL_RE = re.compile(r"^\d+\s+(splice|read)\((\d+),.*\)\s+=\s+(-?\d+)", re.M)


@wtest("io/splice_write", layers=io_layers)
def t_splice_write(env):
	if not _is_plyfs(env) or not shutil.which("strace"):
		env.notes.append("not plyfs or no strace: only the data is compared")
		env.same("8 MiB written", _big_writes, "big")
		return
	tr = Strace(env.daemon.pid, P(env.base, "strace.out"))
	try:
		before = _ops(env)
		env.same("8 MiB written", _big_writes, "big")
		after = _ops(env)
	finally:
		trace = tr.stop()
	calls = CALL_RE.findall(trace)
	spliced = sum(int(n) for c, _, n in calls if c == "splice" and int(n) > 0)
	big_reads = [int(n) for c, _, n in calls if c == "read" and int(n) > 65536]
	env.check(spliced >= 8 * MIB, "bytes spliced by the daemon during 8 MiB of writes: %d"
		  % spliced)
	env.check(not big_reads, "requests read into memory instead of spliced: %d of %d bytes and "
		  "more" % (len(big_reads), min(big_reads) if big_reads else 0))
	writes = after["write"] - before["write"]
	# A 1 MiB write(2) is at most two WRITE requests (max_write is a page less, ops.c).
	env.check(0 < writes <= 2 * 8 + 2 * 3, "WRITE requests for 11 write(2) calls: %d" % writes)
	env.check(read_file(env.up("big")) == read_file(P(env.pm, "big")),
		  "upper big differs from the mount's")


def _appends_seen(r, rel, n):
	"""n 4-byte appends through one O_APPEND fd; before close, what stat and a second fd see;
	after close, the content."""
	fd = os.open(P(r, rel), WR | os.O_CREAT | os.O_APPEND, 0o644)
	try:
		for i in range(n):
			os.write(fd, b"%03d\n" % (i % 1000))
		size = os.stat(P(r, rel)).st_size
		seen = read_file(P(r, rel))
	finally:
		os.close(fd)
	return size, hashlib.sha256(seen).hexdigest(), hashlib.sha256(read_file(P(r, rel))).hexdigest()


@wtest("io/appends_writeback", layers=io_layers, binary_opts="writeback=1")
def t_appends_writeback(env):
	"""The writeback cache (writeback=1): 2000 4-byte appends reach the daemon as a
	few WRITEs; meanwhile stat and a second fd see every byte; the upper has them in order."""
	n = 2000
	before = _ops(env) if _is_plyfs(env) else None
	env.same("appends to a new file", _appends_seen, "new", n)
	env.same("appends to a lower file (copy-up)", _appends_seen, "lo", n)
	if before is None:
		env.notes.append("not plyfs: WRITE requests not counted")
	else:
		writes = _ops(env)["write"] - before["write"]
		env.check(0 < writes <= 20, "WRITE requests for %d appends to 2 files: %d" % (2 * n,
											      writes))
	recs = b"".join(b"%03d\n" % (i % 1000) for i in range(n))
	for rel, want in (("new", recs), ("lo", b"lower data\n" + recs)):
		got = read_file(env.up(rel))
		env.check(got == want, "upper %s: %d bytes, expected %d (or other bytes)"
			  % (rel, len(got), len(want)))


FSTAT_INO_RE = re.compile(r"^\d+\s+(?:fstat\(\d+, |(?:newfstatat|statx)\(\d+, \"\", )"
			  r"\{[^}]*st_ino=(\d+)", re.M)


def _fstats_during(env, name, fn, ino):
	"""fn() under strace: the daemon's fstat calls of an open fd of inode `ino` (the daemon's
	other work, such as saving its handle store, fstats other files)."""
	tr = Strace(env.daemon.pid, P(env.base, name), "fstat,newfstatat,statx", verbose=True)
	try:
		fn()
	finally:
		trace = tr.stop()
	return sum(1 for i in FSTAT_INO_RE.findall(trace) if int(i) == ino)


@wtest("io/write_fstat_once", layers=io_layers, kernel=False)
def t_write_fstat_once(env):
	"""The setuid/setgid check of a WRITE (killpriv.h) looks at the file once per handle, not
	once per WRITE, until a mode changes."""
	if not _is_plyfs(env) or not shutil.which("strace"):
		env.notes.append("not plyfs or no strace: not counted")
		return
	fd = os.open(P(env.pm, "f"), WR | os.O_CREAT | os.O_APPEND, 0o644)

	def writes():
		for i in range(300):
			os.write(fd, b"%04d" % i)

	def chmod_writes():
		os.chmod(P(env.pm, "f"), 0o600)  # a SETATTR by name: the next write looks again
		writes()
	try:
		ino = os.stat(env.up("f")).st_ino
		during = _fstats_during(env, "strace.out", writes, ino)
		after_chmod = _fstats_during(env, "strace2.out", chmod_writes, ino)
	finally:
		os.close(fd)
	env.check(during <= 1, "fstat calls of the daemon during 300 WRITEs through one fd: %d "
		  "(expected at most 1)" % during)
	env.check(1 <= after_chmod <= 2, "fstat calls during a chmod and 300 WRITEs: %d (expected "
		  "1, the first write's check, or 2)" % after_chmod)
	want = b"".join(b"%04d" % i for i in range(300)) * 2
	env.check(read_file(env.up("f")) == want, "upper f differs from what was written")


# --- copy-up and the sync it owes ---------------------------------------------------------------

CU_MIB = 40
SYNC_RE = re.compile(r"^\d+\s+(sync_file_range|fsync|fdatasync|linkat|renameat2)\((.*?)"
		     r"(?:\)\s+=\s+(-?\d+)|\s+<unfinished)", re.M)
SFR_RE = re.compile(r"^(\d+), (\d+), (\d+), (\S+)$")


def _prepare_cu(env):
	with open(P(env.p, "lower0", "big"), "wb") as f:
		for i in range(CU_MIB):
			f.write(PATTERN[i:] + PATTERN[:i])


def _copyup_traced(env):
	"""Appends a byte to the lower file `big` (its copy-up) under strace; the sync calls in
	order, as (call, args)."""
	tr = Strace(env.daemon.pid, P(env.base, "strace.out"),
		    "sync_file_range,fsync,fdatasync,linkat,renameat2")
	try:
		fd = os.open(P(env.pm, "big"), WR | os.O_APPEND)
		try:
			os.write(fd, b"!")
		finally:
			os.close(fd)
	finally:
		trace = tr.stop()
	want = b"".join(PATTERN[i:] + PATTERN[:i] for i in range(CU_MIB)) + b"!"
	env.check(read_file(env.up("big")) == want, "upper big is not the lower's bytes and the "
		  "append")
	return [(c, a) for c, a, _ in SYNC_RE.findall(trace)]


def _placed_by(call, args, fd):
	"""Whether this linkat/renameat2 names the copy `fd` (an O_TMPFILE linked through
	/proc/self/fd) or a temporary name in the work dir (renamed)."""
	return (call == "linkat" and '"/proc/self/fd/%s"' % fd in args) or call == "renameat2"


@wtest("io/copyup_writebehind", layers=lambda: ([{}], {}), kernel=False, prepare=_prepare_cu,
       timeout=120)
def t_copyup_writebehind(env):
	if not _is_plyfs(env) or not shutil.which("strace"):
		env.notes.append("not plyfs or no strace: not traced")
		return
	calls = _copyup_traced(env)
	sfr = [SFR_RE.match(a) for c, a in calls if c == "sync_file_range"]
	env.check(sfr and all(sfr), "sync_file_range calls: %r" % calls[:6])
	if not (sfr and all(sfr)):
		return
	fd = sfr[0].group(1)
	starts, waits = [], 0
	for m in sfr:
		off, length, flags = int(m.group(2)), int(m.group(3)), m.group(4)
		env.check(m.group(1) == fd, "sync_file_range on two fds: %s, %s" % (fd, m.group(1)))
		if flags == "SYNC_FILE_RANGE_WRITE":
			env.check(off == (starts[-1][0] + starts[-1][1] if starts else 0) and
				  length >= 8 * MIB, "start %d: %d+%d after %r" % (len(starts), off,
										   length, starts[-1:]))
			starts.append((off, length))
		elif flags == "SYNC_FILE_RANGE_WAIT_BEFORE":
			# the window started two starts ago, before the next start: two in flight
			env.check(len(starts) >= 2 and (off, length) == starts[len(starts) - 2] and
				  waits == len(starts) - 2, "wait %d for %d+%d after starts %r"
				  % (waits, off, length, starts))
			waits += 1
		else:
			env.check(False, "sync_file_range flags %s" % flags)
	env.check(len(starts) >= CU_MIB // 8 - 1, "writeback started for %d windows of %d MiB "
		  "(expected at least %d)" % (len(starts), CU_MIB, CU_MIB // 8 - 1))
	env.check(waits == len(starts) - 2, "waits %d for %d starts" % (waits, len(starts)))
	# then the copy's fsync, then its name: never a name on data not yet synced
	last_sfr = max(i for i, (c, _) in enumerate(calls) if c == "sync_file_range")
	fsyncs = [i for i, (c, a) in enumerate(calls) if c == "fsync" and a == fd]
	placed = [i for i, (c, a) in enumerate(calls) if _placed_by(c, a, fd)]
	env.check(fsyncs and placed and last_sfr < fsyncs[0] < placed[0],
		  "order of the copy's calls: %r" % calls)


@wtest("io/copyup_nosync", layers=lambda: ([{}], {}), kernel=False, prepare=_prepare_cu,
       binary_opts="fsync=0", timeout=120)
def t_copyup_nosync(env):
	if not _is_plyfs(env) or not shutil.which("strace"):
		env.notes.append("not plyfs or no strace: not traced")
		return
	calls = _copyup_traced(env)
	env.check(not [c for c, _ in calls if c in ("sync_file_range", "fsync", "fdatasync")],
		  "fsync=0: syncs during the copy-up: %r" % calls)
	env.check([c for c, _ in calls if c in ("linkat", "renameat2")], "no linkat/renameat2 "
		  "seen: %r" % calls)
