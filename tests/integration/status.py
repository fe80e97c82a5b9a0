# SPDX-License-Identifier: GPL-2.0-or-later
"""status.py - errors that come from the layers are counted and reported: `plyfs status MNT`
(text and --json) and the rate-limited log line, on injected layer errors.

- enospc_upper: the upper layer and the workdir on a 512 KiB tmpfs. A file is written through the
  mount until the tmpfs is full, then hundreds more writes fail with ENOSPC, and the copy-up of a
  1 MiB lower file fails. The status must count every ENOSPC the writers saw, name the operation
  (write), the layer (upper, its path) and the path inside the mount (/fill) in the first and the
  last record, count the failed copy-up (op open, the file's name), and count operations; the
  daemon's log must hold the error line, rate-limited: far fewer lines than errors, and a line
  saying how many were not logged. Read as another user, the status hides every path.
- dead_lower_fuse: the top lower layer is itself a FUSE mount (a second plyfs, our child), whose
  daemon is killed by PID. Reads through the mount then fail, and the status counts notconn errors
  whose records name the lower layer (lower0, the FUSE mount's path); the log says so. `plyfs
  status` of the dead mount itself fails saying its daemon is gone.
- not_a_mount: `plyfs status` on a plain directory, on a directory inside a plyfs mount, on a
  missing path, without a path: a non-zero exit and one clear message naming the path.

Run by hand: tests/integration/run.sh build/plyfs -k 'status/*' [--sanitizer] -v.
"""

import errno
import json
import math
import os
import subprocess
import time

import lifecycle
import mounts
from mounts import Failure, t

LOG_PER_SECOND = 5		# ERR_LOG_PER_SECOND in include/errors.h
TINY = "512k"			# the size of the tmpfs holding upper and workdir


class Ctx(lifecycle.Ctx):
	GROUP = "status"


class TmpfsMount:
	"""A tmpfs we mounted: unmounted on cleanup (lazily as a last resort)."""

	def __init__(self, path):
		self.path = path

	def cleanup(self):
		if self in mounts.ACTIVE:
			mounts.ACTIVE.remove(self)
		msg = mounts.umount(self.path)
		return [msg] if msg else []


def status(ctx, mnt, json_out=True, prefix=()):
	"""Runs `BINARY status [--json] MNT`: (returncode, stdout, stderr)."""
	argv = list(prefix) + [ctx.opts.binary, "status"] + (["--json"] if json_out else []) + [mnt]
	cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=t(30),
			    env=ctx.env())
	return cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")


def status_json(ctx, mnt, prefix=()):
	rc, out, err = status(ctx, mnt, True, prefix)
	if rc != 0:
		raise Failure("plyfs status --json %s exited %d: %s" % (mnt, rc, err.strip()))
	try:
		return json.loads(out)
	except ValueError as e:
		raise Failure("plyfs status --json printed no JSON (%s): %r" % (e, out[:300]))


def daemon_log(ctx):
	with open(os.path.join(ctx.logdir, "daemon.log"), "rb") as f:
		return f.read().decode(errors="replace")


def check_record(errs, st, kind, which, want):
	rec = st.get("errors", {}).get(kind, {}).get(which)
	if not isinstance(rec, dict):
		errs.append("no %s record of %s errors in the status" % (which, kind))
		return None
	for k, v in want.items():
		got = rec.get(k)
		ok = v(got) if callable(v) else got == v
		if not ok:
			errs.append("%s.%s record: %s is %r, expected %s"
				    % (kind, which, k, got, "another" if callable(v) else repr(v)))
	return rec


def write_until_enospc(path, chunk, limit):
	"""Appends `chunk` until ENOSPC (at most `limit` times); returns the ENOSPCs seen (1)."""
	with open(path, "wb", buffering=0) as f:
		for _ in range(limit):
			try:
				f.write(chunk)
			except OSError as e:
				if e.errno != errno.ENOSPC:
					raise
				return 1
	raise Failure("%s: %d writes of %d bytes fit on a %s tmpfs" % (path, limit, len(chunk), TINY))


def failing_writes(path, n):
	"""n writes that must each fail with ENOSPC; returns how many did."""
	seen = 0
	fd = os.open(path, os.O_WRONLY | os.O_APPEND)
	try:
		for _ in range(n):
			try:
				os.write(fd, b"y" * 8192)
			except OSError as e:
				if e.errno != errno.ENOSPC:
					raise
				seen += 1
	finally:
		os.close(fd)
	return seen


def enospc_upper(ctx):
	for d in ("l", "small", "mnt"):
		os.makedirs(ctx.path(d))
	with open(ctx.path("l/big"), "wb") as f:
		f.write(b"b" * (1 << 20))
	small = ctx.path("small")
	mounts.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % TINY, "plyfs-status",
		    small], 30)
	ctx.track(TmpfsMount(small))
	os.makedirs(ctx.path("small/u"))
	os.makedirs(ctx.path("small/w"))
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (ctx.path("l"), ctx.path("small/u"),
						       ctx.path("small/w"))
	h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	errs = []
	with mounts.Watchdog(t(120), [h]):
		seen = write_until_enospc(os.path.join(mnt, "fill"), b"x" * 65536, 64)
		try:
			with open(os.path.join(mnt, "big"), "ab") as f:
				f.write(b"more")
			errs.append("appending to the lower file big succeeded on a full upper")
		except OSError as e:
			if e.errno != errno.ENOSPC:
				errs.append("appending to big (copy-up on a full upper) failed with %s, "
					    "expected ENOSPC" % errno.errorcode.get(e.errno, e.errno))
		t0 = time.monotonic()
		seen += failing_writes(os.path.join(mnt, "fill"), 400)
		elapsed = time.monotonic() - t0
		# The count of lines not logged comes with the next line logged, in a later second.
		time.sleep(1.1)
		seen += failing_writes(os.path.join(mnt, "fill"), 1)
		st = status_json(ctx, mnt)
		rc, text, err = status(ctx, mnt, json_out=False)
		other = status_json(ctx, mnt, prefix=("setpriv", "--reuid=65534", "--regid=65534",
						      "--clear-groups"))
		errs += lifecycle.settle(h)

	upper = os.path.realpath(ctx.path("small/u"))
	nospc = st.get("errors", {}).get("nospc", {}).get("count", 0)
	if nospc < seen:
		errs.append("errors.nospc.count is %r, but the writers saw %d ENOSPC" % (nospc, seen))
	for which in ("first", "last"):
		check_record(errs, st, "nospc", which, {
			"errno": errno.ENOSPC, "errno_name": "ENOSPC", "op": "write",
			"layer": "upper", "layer_path": upper, "path": "/fill"})
	first = st.get("errors", {}).get("nospc", {}).get("first", {})
	last = st.get("errors", {}).get("nospc", {}).get("last", {})
	if first.get("seq", 0) >= last.get("seq", 0):
		errs.append("nospc: first record #%r is not older than the last #%r"
			    % (first.get("seq"), last.get("seq")))
	if st.get("copy_ups", {}).get("failed", 0) < 1:
		errs.append("copy_ups.failed is %r after a failed copy-up" % st.get("copy_ups"))
	check_record(errs, st, "copy_up", "first", {"op": "open", "path": "big", "layer": "upper"})
	ops = st.get("ops", {})
	if ops.get("write", 0) < seen or ops.get("create", 0) < 1 or ops.get("lookup", 0) < 1:
		errs.append("ops counts too low: write %r (>= %d), create %r, lookup %r"
			    % (ops.get("write"), seen, ops.get("create"), ops.get("lookup")))
	for k in ("nodes_live", "nodes", "records", "next_nodeid"):
		if not isinstance(st.get(k), int):
			errs.append("status --json: %s is %r, expected a number" % (k, st.get(k)))

	if rc != 0 or "ENOSPC" not in text or "/fill" not in text or "nospc" not in text:
		errs.append("plyfs status (text) exited %d and printed: %r %r" % (rc, text[:600], err))

	if other.get("errors", {}).get("paths_hidden") != 1:
		errs.append("another user's status: paths_hidden is %r, expected 1"
			    % other.get("errors", {}).get("paths_hidden"))
	for which in ("first", "last"):
		rec = other.get("errors", {}).get("nospc", {}).get(which, {})
		if rec.get("path") != "" or rec.get("layer_path") != "":
			errs.append("another user sees the %s record's paths: %r %r"
				    % (which, rec.get("path"), rec.get("layer_path")))

	log = daemon_log(ctx)
	lines = [x for x in log.splitlines() if "nospc error" in x]
	bound = LOG_PER_SECOND * (math.ceil(elapsed) + 4)
	if not lines:
		errs.append("no 'nospc error' line in the daemon's log: %r" % log[-600:])
	elif "/fill" not in lines[0] or "upper" not in lines[0] or "ENOSPC" not in lines[0]:
		errs.append("the log line does not name the path, layer and errno: %r" % lines[0])
	if len(lines) > bound:
		errs.append("%d 'nospc error' log lines for %d errors in %.1fs: not rate-limited "
			    "(at most %d expected)" % (len(lines), seen, elapsed, bound))
	if seen > bound and "more nospc errors not logged" not in log:
		errs.append("the log does not say how many errors it dropped")
	ctx.notes.append("%d ENOSPC in %.2fs, %d log lines" % (seen, elapsed, len(lines)))
	return errs


def read_held(ctx, mnt, fd, before):
	"""A READ of a file opened before its lower died fails in the daemon's own read of the layer:
	counted, and the last notconn record names the read."""
	errs = []
	try:
		os.pread(fd, 100, 0)
		errs.append("a file opened before its lower FUSE daemon died still reads")
	except OSError as e:
		if e.errno != errno.ENOTCONN:
			errs.append("read of the held file: %s, expected ENOTCONN" % e)
	finally:
		os.close(fd)
	after = status_json(ctx, mnt).get("errors", {}).get("notconn", {})
	was = before.get("errors", {}).get("notconn", {}).get("count", 0)
	if after.get("count", 0) <= was:
		errs.append("the failed READ of an open file was not counted (notconn %d, then %d)"
			    % (was, after.get("count", 0)))
	elif (after.get("last") or {}).get("op") != "read":
		errs.append("last notconn record after a failed READ: %r" % after.get("last"))
	return errs


def dead_lower_fuse(ctx):
	for d in ("l0/d", "l1", "u", "w", "lf", "mnt"):
		os.makedirs(ctx.path(d))
	for name in ("a", "b", "c", "d/e"):
		lifecycle.write(ctx.path("l0/" + name), "lower data " + name)
	lifecycle.write(ctx.path("l1/z"), "bottom")
	lf = ctx.path("lf")
	lower = lifecycle.start_foreground(ctx, ["-o", "lowerdir=" + ctx.path("l0"), lf], lf)
	os.rename(os.path.join(ctx.logdir, "daemon.log"), os.path.join(ctx.logdir, "lower.log"))
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (lf, ctx.path("l1"), ctx.path("u"),
							  ctx.path("w"))
	h = lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)
	errs = []
	with mounts.Watchdog(t(120), [h, lower]):
		errs += lifecycle.check_read(os.path.join(mnt, "a"), "lower data a")
		held = os.open(os.path.join(mnt, "c"), os.O_RDONLY)	# open before the lower dies
		lower.proc.kill()	# SIGKILL, by the PID of our own child
		lower.proc.wait(timeout=t(15))
		failed = []
		for name in ("a", "b", "c", "d/e"):
			try:
				lifecycle.read(os.path.join(mnt, name))
				errs.append("%s reads fine with its lower FUSE daemon dead" % name)
			except OSError as e:
				failed.append(errno.errorcode.get(e.errno, str(e.errno)))
		st = status_json(ctx, mnt)
		errs += read_held(ctx, mnt, held, st)
		errs += lifecycle.settle(h)
		# The dead mount itself: a clear failure, not a hang or a traceback.
		rc, out, err = status(ctx, lf, json_out=False)
		if rc == 0 or "gone" not in err or lf not in err:
			errs.append("plyfs status on the dead mount %s: exit %d, %r %r (expected a "
				    "failure saying its daemon is gone)" % (lf, rc, out[:200], err))
	notconn = st.get("errors", {}).get("notconn", {})
	if notconn.get("count", 0) < 1:
		errs.append("no notconn error counted after reads failed with %s: errors %r"
			    % (failed, {k: v.get("count") for k, v in st.get("errors", {}).items()
					if isinstance(v, dict)}))
	for which in ("first", "last"):
		check_record(errs, st, "notconn", which, {
			"errno": errno.ENOTCONN, "layer": "lower0",
			"layer_path": os.path.realpath(lf),
			"op": lambda v: v in ("lookup", "open", "getattr", "opendir", "readdir",
					      "readdirplus"),
			"path": lambda v: isinstance(v, str) and v.startswith("/")})
	log = daemon_log(ctx)
	if "notconn error" not in log or os.path.realpath(lf) not in log:
		errs.append("no 'notconn error' line naming %s in the log: %r" % (lf, log[-600:]))
	ctx.notes.append("reads failed with %s; %d notconn errors counted"
			 % (",".join(sorted(set(failed))), notconn.get("count", 0)))
	return errs


def not_a_mount(ctx):
	os.makedirs(ctx.path("plain"))
	for d in ("l/sub", "mnt"):
		os.makedirs(ctx.path(d))
	mnt = ctx.path("mnt")
	lifecycle.start_foreground(ctx, ["-o", "lowerdir=" + ctx.path("l"), mnt], mnt)
	errs = []
	cases = [(ctx.path("plain"), "not a plyfs mount"),
		 (os.path.join(mnt, "sub"), "not a plyfs mount"),
		 (ctx.path("missing"), "No such file or directory")]
	for path, words in cases:
		rc, out, err = status(ctx, path, json_out=False)
		rcj, outj, errj = status(ctx, path, json_out=True)
		for r, o, e, form in ((rc, out, err, "text"), (rcj, outj, errj, "--json")):
			if r == 0 or o.strip() or words not in e or path not in e:
				errs.append("plyfs status %s %s: exit %d, stdout %r, stderr %r (expected "
					    "a failure saying %r and naming the path)"
					    % (form, path, r, o[:200], e.strip(), words))
	cp = subprocess.run([ctx.opts.binary, "status"], stdin=subprocess.DEVNULL,
			    capture_output=True, timeout=t(30), env=ctx.env())
	if cp.returncode == 0 or b"usage: plyfs status" not in cp.stderr:
		errs.append("plyfs status without a path: exit %d, stderr %r"
			    % (cp.returncode, cp.stderr[:200]))
	# And the mount itself works.
	rc, out, err = status(ctx, mnt, json_out=False)
	if rc != 0 or "plyfs status of" not in out:
		errs.append("plyfs status on the mount itself: exit %d, %r %r" % (rc, out[:200], err))
	return errs


TESTS = [
	("enospc_upper", enospc_upper),
	("dead_lower_fuse", dead_lower_fuse),
	("not_a_mount", not_a_mount),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("status", TESTS, Ctx)
