# SPDX-License-Identifier: GPL-2.0-or-later
"""bench.py - the same workloads on the same layers through every overlay, in one run.

	python3 bench/bench.py --plyfs build/plyfs [--previous OLD/plyfs] [--quick] [--out DIR]
	                       [--only TARGET,...] [--rows ROW,...]

Run it as root inside a private mount namespace (bench/run.sh does that, and installs what it
needs). Targets (targets.py), each on identical layers built once under --scratch: raw,
kernel, passthrough_ll, fuse-overlayfs, plyfs, plyfs-prev (--previous). Workloads and goals:
workloads.py. Every cell is the median of --reps runs (3 at least), each run in a child process
bounded by --cell-timeout; a cell that fails shows why (e.g. EMFILE) and a timeout ends that
target's run. Writes DIR/latest.md (a table of absolute values and ratios to kernel overlayfs,
each goal marked met or not), DIR/latest.json and, where gnuplot is installed, DIR/latest.svg.
Cold cells drop the machine's caches (/proc/sys/vm/drop_caches): that touches the whole machine,
which is why this is a benchmark and not a test. Every mount is undone on the way out, also on
failure and on SIGTERM.
"""

import argparse
import json
import os
import select
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
import targets as tg  # noqa: E402
import workloads as wl  # noqa: E402


def log(*a):
	print(*a, file=sys.stderr, flush=True)


class CellTimeout(Exception):
	pass


def in_child(fn, timeout):
	"""fn() in a forked child of its own process group, killed (with what it started) after
	`timeout` seconds: a hung filesystem ends the cell, not the run. Returns fn's value or raises
	RuntimeError with the child's error, CellTimeout on timeout."""
	r, w = os.pipe()
	pid = os.fork()
	if pid == 0:
		code = 0
		try:
			os.close(r)
			os.setpgid(0, 0)
			try:
				msg = {"value": fn()}
			except BaseException as e:  # noqa: B036 - reported to the parent
				msg = {"error": f"{type(e).__name__}: {e}"}
			os.write(w, json.dumps(msg).encode())
		except BaseException:  # noqa: B036
			code = 1
		finally:
			os._exit(code)
	os.close(w)
	try:
		os.setpgid(pid, pid)  # also here: the child may not have run yet when killpg comes
	except OSError:
		pass
	data, deadline = b"", time.monotonic() + timeout
	try:
		while True:
			left = deadline - time.monotonic()
			if left <= 0 or not select.select([r], [], [], left)[0]:
				raise CellTimeout(f"timeout ({timeout:.0f} s)")
			chunk = os.read(r, 65536)
			if not chunk:
				break
			data += chunk
	except BaseException:  # a timeout, or SIGTERM: the cell's processes go with it
		try:
			os.killpg(pid, signal.SIGKILL)
		except ProcessLookupError:
			pass
		raise
	finally:
		os.close(r)
		os.waitpid(pid, 0)
	msg = json.loads(data or b'{"error": "child died"}')
	if "error" in msg:
		raise RuntimeError(msg["error"])
	return msg["value"]


def why(e):
	s = str(e)
	if isinstance(e, CellTimeout):
		return "timeout"
	if "Errno 24" in s or "Too many open files" in s:
		return "EMFILE"
	return "failed"


def bench_target(t, rows, sz, args, run):
	"""Every row on one target: medians into run["results"], failures into run["errors"]."""
	res, errs = run["results"], run["errors"]
	log(f"== {t.name}: mounting")
	t.mount()
	try:
		for i, (key, label, fn, warm) in enumerate(rows):
			t0 = time.monotonic()
			try:
				if t.drop_inodes_before_rows and warm is not wl.warm_from_previous_row:
					wl.drop_caches("2")
				if warm and warm is not wl.warm_from_previous_row:
					in_child(lambda: warm(t, sz), args.cell_timeout)
				times = [in_child(lambda: fn(t, rep, sz), args.cell_timeout)
					 for rep in range(args.reps)]
				res.setdefault(key, {})[t.name] = statistics.median(times)
				log(f"   {label:44s} {statistics.median(times):9.4f} s  "
				    f"{['%.4f' % x for x in times]}")
			except (RuntimeError, CellTimeout) as e:
				errs.setdefault(key, {})[t.name] = why(e)
				run["incomplete"].append(t.name)
				log(f"   {label:44s} failed: {e}")
				if isinstance(e, CellTimeout):
					# the daemon may hang: end this target, its other cells say so
					for later in rows[i + 1:]:
						errs.setdefault(later[0], {})[t.name] = "not run"
					t.abort()
					return
			finally:
				run["cell_seconds"].setdefault(key, {})[t.name] = time.monotonic() - t0
			if key == "two walkers warm":
				after_walk(t, res, errs)
		wl.drop_caches()
		_, cpu = tg.daemon_usage(t.pid)
		res.setdefault("daemon RSS end", {})[t.name] = tg.settled_rss(t.pid)
		res.setdefault("daemon CPU", {})[t.name] = cpu
	finally:
		t.umount()


def after_walk(t, res, errs):
	"""The daemon's RSS after the big walks with the caches dropped (the kernel forgets every
	inode, so what stays is the daemon's own)."""
	if not t.pid:
		return
	walked = all(res.get(k, {}).get(t.name) is not None
		     for k in ("stat-walk warm", "two walkers warm"))
	if not walked:
		errs.setdefault("daemon RSS after walk", {})[t.name] = "walk failed"
		return
	wl.drop_caches()
	res.setdefault("daemon RSS after walk", {})[t.name] = tg.settled_rss(t.pid)


def make_targets(root, lowers, args):
	ts = [tg.Raw("raw", os.path.join(root, "raw"), lowers),
	      tg.Kernel("kernel", os.path.join(root, "kernel"), lowers)]
	if tg.PassthroughLL.available() and shutil.which("gcc"):
		ts.append(tg.PassthroughLL("passthrough_ll", os.path.join(root, "ptll"), lowers))
	else:
		log(f"no {tg.EXAMPLES}/passthrough_ll.c or gcc (libfuse3-dev): no passthrough_ll")
	if shutil.which("fuse-overlayfs"):
		ts.append(tg.FuseOverlayfs("fuse-overlayfs", os.path.join(root, "fo"), lowers))
	plyfs = tg.Plyfs("plyfs", os.path.join(root, "plyfs"), lowers)
	plyfs.binary = os.path.abspath(args.plyfs)
	ts.append(plyfs)
	if args.previous:
		prev = tg.Plyfs("plyfs-prev", os.path.join(root, "prev"), lowers)
		prev.binary = os.path.abspath(args.previous)
		ts.append(prev)
	if args.only:
		keep = set(args.only.split(",")) | {"kernel"}
		ts = [t for t in ts if t.name in keep]
	return ts


def table(rows, counts):
	"""The report's rows: the workloads, then the values derived from them."""
	return [(key, label, "s") for key, label, _, _ in rows] + [
		("two walkers speedup", "two walkers: speedup over one (2 walks / their time)", "×"),
		("daemon RSS after walk", f"daemon RSS after the {wl.k(counts['walk_files'])}-file "
		 "walks, caches dropped (MiB)", "MiB"),
		("daemon RSS end", "daemon RSS at the end, caches dropped (MiB)", "MiB"),
		("daemon CPU", "daemon CPU, whole run", "cpu"),
	]


def derive(run):
	one, two = run["results"].get("stat-walk warm", {}), run["results"].get("two walkers warm", {})
	for tn, t2 in two.items():
		if one.get(tn):
			run["results"].setdefault("two walkers speedup", {})[tn] = 2 * one[tn] / t2


def unmount_all_under(root):
	"""Lazily unmounts whatever is still mounted under root, deepest first."""
	with open("/proc/self/mounts") as f:
		mps = [line.split()[1] for line in f]
	for mp in sorted((m for m in mps if m.startswith(root + "/")), key=len, reverse=True):
		tg.subprocess.run(["umount", "-l", mp], check=False, timeout=60)


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("--plyfs", required=True)
	ap.add_argument("--previous", help="an older plyfs binary, as the target plyfs-prev")
	ap.add_argument("--quick", action="store_true")
	ap.add_argument("--reps", type=int, default=3)
	ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
	ap.add_argument("--scratch", default="/var/tmp")
	ap.add_argument("--only", help="comma-separated target names (kernel is always run)")
	ap.add_argument("--rows", help="comma-separated row keys (see workloads.rows)")
	ap.add_argument("--cell-timeout", type=float, help="seconds per repetition of a cell")
	args = ap.parse_args()
	args.reps = max(3, args.reps)
	args.cell_timeout = args.cell_timeout or (90 if args.quick else 240)
	sz = {k: v[0 if args.quick else 1] for k, v in wl.SIZES.items()}
	os.makedirs(args.out, exist_ok=True)
	# SIGTERM (run.sh's timeout) unwinds through the finally clauses that unmount.
	signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
	t0 = time.monotonic()
	root = tempfile.mkdtemp(prefix="plyfs-bench.", dir=args.scratch)
	ts = []
	try:
		log(f"building layers in {root}")
		lowers, counts = wl.build_layers(root, sz, args.reps)
		rows = wl.rows(sz, counts)
		if args.rows:
			keep = args.rows.split(",")
			unknown = set(keep) - {r[0] for r in rows}
			if unknown:
				sys.exit(f"unknown rows {sorted(unknown)}; rows: {[r[0] for r in rows]}")
			# a row's setup comes from the rows before it
			need = {"unlink": "create", "tar c": "untar", "rm -rf": "untar",
				"two walkers warm": "stat-walk warm"}
			keep += [need[k] for k in keep if k in need]
			rows = [r for r in rows if r[0] in keep]
		run = {"sizes": sz, "counts": counts, "results": {}, "errors": {}, "incomplete": [],
		       "cell_seconds": {}, "phase_seconds": {"layers": time.monotonic() - t0},
		       "args": vars(args), "machine": report.machine(args.scratch)}
		ts = make_targets(root, lowers, args)
		for t in ts:
			t1 = time.monotonic()
			try:
				bench_target(t, rows, sz, args, run)
			except (RuntimeError, OSError, tg.subprocess.SubprocessError) as e:
				log(f"== {t.name}: {e}")
				for r in rows:
					run["errors"].setdefault(r[0], {}).setdefault(t.name, "no mount")
			run["phase_seconds"][t.name] = time.monotonic() - t1
		derive(run)
		run.update(order=[t.name for t in ts], table=table(rows, counts),
			   vs_others=[r[0] for r in rows] + ["daemon RSS after walk", "daemon CPU"],
			   elapsed=time.monotonic() - t0)
		run["incomplete"] = sorted(set(run["incomplete"]))
		report.report(run, args.out)
	finally:
		for t in ts:
			try:
				t.abort()
			except Exception as e:  # noqa: BLE001 - keep unmounting the others
				log(f"{t.name}: {e}")
		unmount_all_under(root)
		tg.subprocess.run(["rm", "-rf", "--one-file-system", root], check=False, timeout=600)


if __name__ == "__main__":
	main()
