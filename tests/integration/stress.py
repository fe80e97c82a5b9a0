# SPDX-License-Identifier: GPL-2.0-or-later
"""stress.py - many workers at random on one mount while the caches drop; then the merged view
must equal kernel overlayfs' view of the same layers.

    stress.py BINARY [--seconds N] [--workers N] [--seed S] [--sanitizer] [-v]

Meant to be started by stress.sh (timeout, private mount and PID namespace). The run:

1. Two lowers (nested, merged and opaque directories, whiteouts, files of 0 bytes to 4 MiB, a
   sparse one, symlinks, user.* xattrs; no lower file with several names) and an empty upper, on
   a private tmpfs. Only the kernel's on-disk forms, because the kernel mounts these very layers.
2. BINARY mounted on them (`-f`, our child). WORKERS processes, each with its own seed, run random
   operations on the mount for --seconds (create, write/append, open for writing = copy-up,
   truncate, rename of files and of directories, lower ones included, also RENAME_NOREPLACE and
   RENAME_EXCHANGE, unlink, mkdir, rmdir, link, symlink, readdir walks, stat, read, user.* xattrs,
   chmod, fds held across other workers' operations). They share one small name pool, so they
   collide on purpose. Meanwhile a thread writes 3 to /proc/sys/vm/drop_caches every second (the
   whole machine's caches: accepted for this test).
3. Errors that collisions explain (ENOENT, EEXIST, ENOTEMPTY, ...; per op in EXPECTED) are only
   counted. EIO, ENOTCONN, any other errno, a worker that dies, a daemon that dies, and an
   operation that takes longer than OP_TIMEOUT seconds (a hang: the connection is then aborted,
   after checking the device mounted at our mount point is still ours, and the daemon killed by
   its PID) fail the run.
4. The workers stop; the merged view is walked (compare.py: names, types, modes, owners, sizes,
   sha256, symlink targets, user.* xattrs, nlink, access(), st_ino grouping), once warm and once
   after the caches are dropped; BINARY is unmounted, mounted again on the same layers and walked;
   unmounted; then kernel overlayfs (redirect_dir=on,index=on) is mounted on the same lowers,
   upper and workdir and walked. Each walk of BINARY must equal the kernel's.
5. With --sanitizer, both daemons run with ASAN_OPTIONS/UBSAN_OPTIONS log_path in their log
   directories (mounts.Daemon) and any report fails the run, as does a non-zero exit after umount.

Prints one PASS/FAIL line per check (stress/workers, stress/live-view, stress/cold-view,
stress/remount-view, stress/daemon-exit), notes with the op counts, and last "N passed, N failed".
"""

import argparse
import json
import os
import random
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
import layerspec  # noqa: E402
import mounts  # noqa: E402
from layerspec import D, F, L, WH  # noqa: E402
from mounts import Failure, t  # noqa: E402
from stress_worker import Board, worker_main  # noqa: E402

KERNEL_OPTS = "redirect_dir=on,index=on"
OP_TIMEOUT = 20		# seconds one operation may take (times mounts.SCALE) before it is a hang
DROP_EVERY = 1.0	# seconds between two writes to drop_caches
MAX_SHOWN = 20


class Interrupted(BaseException):
	pass


# --- the layers -----------------------------------------------------------------------------------

def _blob(seed, n):
	return random.Random("plyfs-stress-%d" % seed).randbytes(n)


def lowers_spec():
	"""[top, bottom] layerspec dicts. Whiteouts only in directories merged with one below (the
	only place overlayfs makes them); no hard links (issue 9's subject)."""
	bottom = {
		"a": D(xattrs={"user.k": "a-bottom"}),
		"a/f1": F(_blob(1, 100)),
		"a/f2": F(_blob(2, 8192), mode=0o600, xattrs={"user.k": "f2"}),
		"a/sub/g": F(_blob(3, 70000)),
		"a/sub/deep/h": "h\n",
		"a/sub/deep/deeper/i": F(_blob(4, 5000), mode=0o640),
		"b/big": F(_blob(5, 1 << 20)),
		"b/sparse": F(size=4 << 20, chunks=[(0, b"head"), (3 << 20, b"tail")]),
		"b/empty": "",
		"b/ln": L("big"),
		"m": D(xattrs={"user.m": "bottom"}),
		"m/lo_only": F(_blob(6, 300)),
		"m/both": F(_blob(7, 1000)),
		"m/d/x": F(_blob(8, 10)),
		"m/d/y": F(_blob(9, 20000), xattrs={"user.y": "1"}),
		"m/e/z": F(_blob(10, 1)),
		"o/old1": "old1\n",
		"o/old2/q": "q\n",
		"w/gone1": "gone1\n",
		"w/gone2": "gone2\n",
		"w/keep": "keep\n",
		"w/gone_dir/r": "r\n",
		"exe": F(_blob(11, 4096), mode=0o755),
		"sym": L("a/f1"),
	}
	top = {
		"a": D(),
		"a/sub": D(mode=0o750),
		"a/sub/top": F(_blob(12, 3000)),
		"m": D(xattrs={"user.m": "top"}),
		"m/top_only": F(_blob(13, 40)),
		"m/both": F(_blob(14, 2000)),
		"m/d/t": F(_blob(15, 123)),
		"m/d/x": WH(),
		"o": D(opaque="trusted"),
		"o/new": "new\n",
		"w": D(),
		"w/gone1": WH(),
		"w/gone_dir": WH(),
		"c/c1/c2/file": F(_blob(16, 65536)),
		"c/c1/k": F(_blob(17, 7)),
		"t_file": F(_blob(18, 500), xattrs={"user.t": "x"}),
	}
	return [top, bottom]


# --- the run --------------------------------------------------------------------------------------

class StressDaemon(mounts.Daemon):
	"""mounts.Daemon whose hard stop aborts the FUSE connection only while the device mounted at
	our mount point is still the one we mounted (a reused minor number must not abort someone
	else's connection); it kills the daemon by its PID either way."""

	def kill(self):
		if self.dev is not None and mounts.mount_dev(self.mnt) == self.dev:
			mounts.fuse_abort(self.dev)
		if self.proc is not None and self.proc.poll() is None:
			self.proc.kill()
		mounts.run(["umount", "-l", self.mnt], 30, check=False)


class Dropper(threading.Thread):
	"""Writes 3 to /proc/sys/vm/drop_caches DROP_EVERY seconds after the previous write returned,
	until stopped (on a busy machine one write can take seconds: the count is in the notes)."""

	def __init__(self):
		super().__init__(daemon=True)
		self.halt = threading.Event()
		self.drops, self.slowest, self.error = 0, 0.0, None

	def run(self):
		while not self.halt.wait(DROP_EVERY):
			t0 = time.monotonic()
			try:
				drop_caches()
			except OSError as e:
				self.error = str(e)
				return
			self.drops += 1
			self.slowest = max(self.slowest, time.monotonic() - t0)


def drop_caches():
	with open("/proc/sys/vm/drop_caches", "w") as f:
		f.write("3")


class Run:
	def __init__(self, opts, base):
		self.opts, self.base = opts, base
		self.lowers = [os.path.join(base, "lower%d" % i) for i in range(2)]
		self.upper, self.work = os.path.join(base, "upper"), os.path.join(base, "work")
		self.pm, self.km = os.path.join(base, "pm"), os.path.join(base, "km")
		self.results = {}	# check name -> (errors, notes)
		self.notes = []

	def build(self):
		for d, spec in zip(self.lowers, lowers_spec()):
			os.mkdir(d)
			layerspec.build_layer(d, spec)
		for d in (self.upper, self.work, self.pm, self.km):
			os.mkdir(d)

	def daemon(self, logname):
		return StressDaemon(self.opts.binary, self.pm, self.lowers, self.upper, self.work,
				    logdir=os.path.join(self.base, logname), sanitizer=self.opts.sanitizer)

	# phase 2-3: the workers
	def storm(self, daemon):
		"""Runs the workers and the dropper; returns the errors of the storm."""
		n, board = self.opts.workers, Board(self.opts.workers)
		end = time.monotonic() + self.opts.seconds
		outs = [os.path.join(self.base, "worker%d.json" % i) for i in range(n)]
		pids = {}
		for i in range(n):
			pid = os.fork()
			if pid == 0:
				worker_main(i, self.opts.seed, self.pm, board, end, outs[i])
			pids[pid] = i
		dropper = Dropper()
		dropper.start()
		errs, status = [], {}
		try:
			errs += self.watch(daemon, board, pids, status, end)
		finally:
			board.stop()
			dropper.halt.set()
			errs += self.reap_workers(daemon, board, pids, status)
			dropper.join(t(OP_TIMEOUT))
		if dropper.error:
			errs.append("writing drop_caches failed: %s" % dropper.error)
		self.notes.append("caches dropped %d times, the slowest drop took %.1fs"
				  % (dropper.drops, dropper.slowest))
		errs += self.worker_results(outs, status)
		return errs

	def hung(self, board, n):
		limit, now = t(OP_TIMEOUT), time.monotonic()
		out = []
		for i in range(n):
			_, started, what = board.read(i)
			if started and now - started > limit:
				out.append("worker %d: no answer for %.0fs to %s" % (i, now - started, what))
		return out

	def watch(self, daemon, board, pids, status, end):
		"""Until `end`: the daemon must live, no op may hang, no worker may exit early."""
		while time.monotonic() < end:
			time.sleep(0.5)
			if daemon.proc.poll() is not None:
				return ["the daemon died (exit %d) during the run: %s"
					% (daemon.proc.returncode, daemon.log_tail(800))]
			stuck = self.hung(board, len(pids))
			if stuck:
				daemon.kill()
				return ["hung operation (connection aborted, daemon killed): " + s
					for s in stuck]
			for pid in list(pids):
				if pid in status:
					continue
				r, st = os.waitpid(pid, os.WNOHANG)
				if r:
					status[pid] = st
					if os.waitstatus_to_exitcode(st) != 0:
						return ["worker %d exited %d before the end"
							% (pids[pid], os.waitstatus_to_exitcode(st))]
		return []

	def reap_workers(self, daemon, board, pids, status):
		"""Waits for the workers to finish their op (each bounded by OP_TIMEOUT); a worker still
		in an op past that is a hang: the daemon is killed, then the worker."""
		errs, deadline, killed = [], time.monotonic() + t(OP_TIMEOUT) + 5, False
		while len(status) < len(pids):
			for pid in pids:
				if pid not in status:
					r, st = os.waitpid(pid, os.WNOHANG)
					if r:
						status[pid] = st
			if len(status) == len(pids):
				break
			if time.monotonic() > deadline:
				if not killed:
					errs += ["hung operation at the end (connection aborted, daemon "
						 "killed): " + s for s in self.hung(board, len(pids))]
					if not errs:
						errs.append("workers did not stop within %.0fs"
							    % (t(OP_TIMEOUT) + 5))
					daemon.kill()
					killed, deadline = True, time.monotonic() + 15
				else:
					for pid in pids:
						if pid not in status:
							os.kill(pid, signal.SIGKILL)
							_, st = os.waitpid(pid, 0)
							status[pid] = st
			time.sleep(0.05)
		return errs

	def worker_results(self, outs, status):
		errs, total, counts = [], 0, {}
		per = []
		for i, path in enumerate(outs):
			try:
				with open(path) as f:
					r = json.load(f)
			except (OSError, ValueError):
				errs.append("worker %d left no result" % i)
				continue
			if "crash" in r:
				errs.append("worker %d crashed: %s" % (i, r["crash"]))
			if r["nbad"]:
				errs.append("worker %d: %d unexpected errors, first: %s"
					    % (i, r["nbad"], "; ".join(r["bad"][:5])))
			total += r["ops"]
			per.append("%d (%.0f/s)" % (r["ops"], r["ops"] / max(r["seconds"], 0.001)))
			for op, c in r["counts"].items():
				agg = counts.setdefault(op, {})
				for k, v in c.items():
					agg[k] = agg.get(k, 0) + v
		self.notes.append("%d ops in %ds; per worker: %s" % (total, self.opts.seconds,
								      ", ".join(per)))
		for op in sorted(counts):
			c = counts[op]
			self.notes.append("  %-12s %s" % (op, " ".join(
				"%s=%d" % (k, c[k]) for k in sorted(c, key=lambda k: (k != "ok", k)))))
		return errs

	# phase 4: the views
	def walk_plyfs(self, daemon, what):
		try:
			with mounts.Watchdog(t(120), [daemon]):
				return compare.walk(self.pm), []
		except (OSError, Failure) as e:
			return None, ["walking the %s view failed: %s" % (what, e)]

	def kernel_walk(self):
		km = mounts.KernelMount(self.km, self.lowers, self.upper, self.work)
		base_opts = km.opts
		km.opts = base_opts + "," + self.opts.kernel_opts
		try:
			km.mount()
		except Failure as e:
			why = kernel_log_tail()
			if "index=on" not in self.opts.kernel_opts:
				raise
			self.notes.append("kernel overlayfs refused %s on the binary's layers (%s; kernel "
					  "log: %s); compared with index=off instead"
					  % (self.opts.kernel_opts, e, why))
			km.opts = base_opts + "," + self.opts.kernel_opts.replace("index=on", "index=off")
			km.mount()
		try:
			return compare.walk(self.km)
		finally:
			msg = km.cleanup()
			if msg:
				raise Failure(msg)

	def check(self, name, errs, notes=()):
		self.results[name] = (errs, list(notes))


def upper_summary(upper):
	"""What the run left in the upper layer, to show the compared trees are not trivial. Walks
	with directory fds: renames can nest the tree deeper than PATH_MAX or Python's recursion."""
	n = wh = redirects = opaque = depth = 0
	stack = [(os.open(upper, os.O_RDONLY | os.O_DIRECTORY), 0)]
	while stack:
		dfd, level = stack.pop()
		depth = max(depth, level)
		try:
			for e in os.scandir(dfd):
				n += 1
				st = e.stat(follow_symlinks=False)
				if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
					wh += 1
				if not stat.S_ISDIR(st.st_mode):
					continue
				sub = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
				names = os.listxattr(layerspec.proc_path(sub))
				redirects += "trusted.overlay.redirect" in names
				opaque += "trusted.overlay.opaque" in names
				stack.append((sub, level + 1))
		finally:
			os.close(dfd)
	return ("upper: %d entries, %d whiteouts, %d redirected and %d opaque dirs, %d levels deep"
		% (n, wh, redirects, opaque, depth))


def view_summary(k):
	kinds = {}
	for r in k.values():
		kinds[r.type] = kinds.get(r.type, 0) + 1
	return "kernel's final view: %d entries (%s)" % (len(k), ", ".join(
		"%s %d" % (x, kinds[x]) for x in sorted(kinds)))


def kernel_log_tail():
	cp = mounts.run(["dmesg"], 30, check=False)
	lines = [x for x in cp.stdout.decode(errors="replace").splitlines() if "overlay" in x]
	return " | ".join(lines[-3:]) or "nothing about overlayfs"


def tree_diff(k, p):
	return compare.diff_records(k, p) + compare.ino_partition_diff(k, p)


def run_all(r):
	"""The whole test; its checks and notes go to r.results and r.notes as they are known."""
	opts = r.opts
	r.build()
	views, problems, daemons = {}, [], []
	d1 = r.daemon("log-live")
	daemons.append(d1)
	d1.start()
	r.check("stress/workers", r.storm(d1))
	alive = d1.proc.poll() is None
	if alive:
		views["live"], e = r.walk_plyfs(d1, "live")
		drop_caches()
		views["cold"], e2 = r.walk_plyfs(d1, "cold")
		problems += e + e2
	problems += d1.cleanup()
	if alive:
		d2 = r.daemon("log-remount")
		daemons.append(d2)
		d2.start()
		views["remount"], e = r.walk_plyfs(d2, "remount")
		problems += e + d2.cleanup()
	k, why = None, "the daemon died or hung during the run"
	if alive:
		try:
			k = r.kernel_walk()
		except Failure as e:
			why = "kernel overlayfs refused the same layers: %s" % e
		except OSError as e:
			why = "walking kernel overlayfs on the same layers failed: %s" % e
		r.notes.append(upper_summary(r.upper))
		if k is not None:
			r.notes.append(view_summary(k))
	for name in ("live", "cold", "remount"):
		label = "stress/%s-view" % name
		if k is None:
			r.check(label, ["not compared: " + why])
		elif views.get(name) is None:
			r.check(label, ["not compared: the %s view could not be walked" % name])
		else:
			r.check(label, tree_diff(k, views[name]))
	reports = []
	if opts.sanitizer:
		for d in daemons:
			reports += d.sanitizer_reports()
	r.check("stress/daemon-exit", problems + ["sanitizer report " + x for x in reports])


def report(name, errs, verbose_notes=()):
	if not errs:
		print("PASS %s" % name)
	else:
		more = " (+%d more)" % (len(errs) - 1) if len(errs) > 1 else ""
		print("FAIL %s: %s%s" % (name, errs[0].splitlines()[0], more))
		for e in errs[:MAX_SHOWN]:
			for line in e.splitlines():
				print("    " + line)
		if len(errs) > MAX_SHOWN:
			print("    ... %d more" % (len(errs) - MAX_SHOWN))
	for n in verbose_notes:
		print("    note: " + n)
	sys.stdout.flush()


def parse_args(argv):
	ap = argparse.ArgumentParser(prog="stress.sh", description=__doc__,
				     formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("binary", help="the overlay daemon under test")
	ap.add_argument("--seconds", type=int, default=120, help="length of the storm (default 120)")
	ap.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
	ap.add_argument("--seed", type=int, default=None,
			help="seed of the workers (default: from the clock; printed)")
	ap.add_argument("--sanitizer", action="store_true",
			help="the binary is built with ASan/UBSan: collect and fail on reports")
	ap.add_argument("--kernel-opts", default=KERNEL_OPTS,
			help="options of the kernel overlayfs mount (default %(default)s)")
	o = ap.parse_args(argv)
	o.binary = os.path.abspath(o.binary)
	if o.seed is None:
		o.seed = int(time.time()) % 100000
	return o


def main(argv):
	opts = parse_args(argv)
	if os.environ.get("PLYFS_IT_NS") != "1":
		print("stress.py: start me through stress.sh (private mount namespace)", file=sys.stderr)
		return 2
	if not os.access(opts.binary, os.X_OK):
		print("stress.py: %s is not an executable" % opts.binary, file=sys.stderr)
		print("0 passed, 1 failed")
		return 1
	if opts.sanitizer:
		mounts.SCALE = 3.0
	signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Interrupted()))
	os.umask(0o022)
	print("# stress: %s, %d workers, %ds, seed %d (--seed %d repeats the workers' choices, not "
	      "their timing)" % (opts.binary, opts.workers, opts.seconds, opts.seed, opts.seed))
	sys.stdout.flush()
	base = tempfile.mkdtemp(prefix="plyfs-stress.", dir=os.environ.get("TMPDIR", "/tmp"))
	# Only in our private namespace: it disappears with the run whatever happens.
	mounts.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "plyfs-stress", base], 30)
	r = Run(opts, base)
	t0 = time.monotonic()
	try:
		run_all(r)
	except (Interrupted, KeyboardInterrupt):
		r.check("stress/run", ["interrupted"])
	except Failure as e:
		r.check("stress/run", [str(e)])
	except Exception as e:	# a harness error is a failure, with its trace
		r.check("stress/run", ["%s: %s" % (type(e).__name__, e)] +
			traceback.format_exc(limit=8).splitlines())
	finally:
		leftovers = mounts.cleanup_all()
		mounts.umount(base)
		shutil.rmtree(base, ignore_errors=True)
	if leftovers:
		r.check("stress/cleanup", ["cleanup: " + x for x in leftovers])
	results = [(n, e, ns) for n, (e, ns) in r.results.items()]
	notes = r.notes
	for n in notes:
		print("# " + n)
	passed = failed = 0
	for name, errs, ns in results:
		report(name, errs, ns)
		passed, failed = passed + (not errs), failed + bool(errs)
	print("# total %.0fs" % (time.monotonic() - t0))
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
