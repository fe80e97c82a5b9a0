# SPDX-License-Identifier: GPL-2.0-or-later
"""containers_harness.py - runs the container tests (containers_tests.py as root,
containers_rootless.py as a user) with BINARY as the overlay mount program of podman and
buildah; prints PASS/FAIL lines, how long each part took and what was cached, and a closing
"N passed, N failed" line. Started by containers.sh, inside a private mount namespace (and a PID
namespace where possible).

First `containers/setup`: the Debian tarball and the package (containers_image.py: cached in
/var/cache/plyfs-ci, built or fetched when missing), imported and given a fixture layer in a
private storage in $TMPDIR (a disk, as a user's would be: the race of issue 11 item 1 showed
there and not on a tmpfs). After each test the harness removes whatever the
test left (containers, image mounts, plyfs daemons by PID, mounts) and fails the test if
anything was left.
"""

import argparse
import fnmatch
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import containers_env  # noqa: E402
import containers_image  # noqa: E402
import containers_rootless  # noqa: E402
import containers_tests  # noqa: E402
import mounts  # noqa: E402
from mounts import Failure  # noqa: E402

MAX_SHOWN = 20


class Interrupted(BaseException):
	pass


def parse_args(argv):
	ap = argparse.ArgumentParser(prog="containers.sh", description=__doc__)
	ap.add_argument("binary", help="the mount program under test (plyfs)")
	ap.add_argument("-k", dest="patterns", action="append", default=[],
			help="run only tests whose name contains PATTERN (or matches it as a glob)")
	ap.add_argument("--list", action="store_true", help="list the test names and exit")
	ap.add_argument("--tmpfs", action="store_true",
			help="keep the storages on a tmpfs mounted in $TMPDIR, not on its disk (issue 11's "
			"--layers race showed on a disk only: 2 of 5 builds, 0 of 5 on a tmpfs)")
	o = ap.parse_args(argv)
	o.binary = os.path.abspath(o.binary)
	return o


def selected(name, patterns):
	return not patterns or any(p in name or fnmatch.fnmatch(name, p) for p in patterns)


def report(name, errs, notes, dt):
	if not errs:
		print("PASS %s  [%.1fs]" % (name, dt))
	else:
		more = " (+%d more)" % (len(errs) - 1) if len(errs) > 1 else ""
		print("FAIL %s: %s%s  [%.1fs]" % (name, errs[0].splitlines()[0] if errs[0] else "?",
						  more, dt))
		for e in errs[:MAX_SHOWN]:
			for line in e.splitlines() or [""]:
				print("    " + line)
		if len(errs) > MAX_SHOWN:
			print("    ... %d more" % (len(errs) - MAX_SHOWN))
	for n in notes:
		print("    note: %s" % n)
	sys.stdout.flush()


def guarded(fn, *args):
	"""The errors fn(*args) returns; a Failure or an exception it raises is one."""
	try:
		return fn(*args) or []
	except Failure as e:
		return [str(e)]
	except Interrupted:
		raise
	except Exception as e:  # a harness or I/O error fails this test only
		return ["%s: %s" % (type(e).__name__, e), traceback.format_exc(limit=8)]


def setup(opts, base, ctx_box):
	"""containers/setup: the inputs, the root engine, its images."""
	work = os.path.join(base, "work")
	os.makedirs(work, exist_ok=True)
	t0 = time.monotonic()
	inp = containers_image.prepare(work)
	t_inputs = time.monotonic() - t0
	e = containers_env.Engine(os.path.join(base, "root"), opts.binary)
	t0 = time.monotonic()
	containers_tests.make_images(e, inp.rootfs)
	ctx = containers_tests.Ctx(e, inp.deb, containers_image.deb_field(inp.deb, "Version"), work)
	ctx.rootfs = inp.rootfs
	ctx.notes = inp.notes + ["inputs ready in %.1fs; import and fixture layer %.1fs" % (
		t_inputs, time.monotonic() - t0)]
	ctx_box.append(ctx)
	return []


def run_tests(opts, base, tests):
	passed = failed = 0
	box = []
	t0 = time.monotonic()
	errs = guarded(setup, opts, base, box)
	if box:
		errs += ["cleanup: " + m for m in box[0].e.cleanup()]
	report("containers/setup", errs, box[0].notes if box else [], time.monotonic() - t0)
	passed, failed = passed + (not errs), failed + bool(errs)
	deadline = time.monotonic() + float(os.environ.get("PLYFS_IT_TIMEOUT", "1800")) - 120
	for name, fn in tests:
		if not box:
			report(name, ["not run: containers/setup failed"], [], 0)
			failed += 1
			continue
		if time.monotonic() > deadline:
			report(name, ["not run: the whole run's time limit is near"], [], 0)
			failed += 1
			continue
		ctx = box[0]
		ctx.notes = []
		t0 = time.monotonic()
		errs = guarded(fn, ctx)
		errs += ["cleanup: " + m for m in ctx.e.cleanup()]
		errs += ["cleanup: " + m for m in containers_rootless.cleanup(ctx)]
		ctx.rootless = None
		errs += ["cleanup: " + m for m in mounts.cleanup_all()]
		report(name, errs, ctx.notes, time.monotonic() - t0)
		passed, failed = passed + (not errs), failed + bool(errs)
	return passed, failed


def reap_as_init(child):
	"""As PID 1 of our namespace, orphans (daemonized plyfs, conmon) are ours to reap: reap
	everything until `child` exits; return its exit status."""
	signal.signal(signal.SIGTERM, lambda *a: os.kill(child, signal.SIGTERM))
	while True:
		try:
			pid, status = os.wait()
		except ChildProcessError:
			return 1
		except InterruptedError:
			continue
		if pid == child:
			return os.waitstatus_to_exitcode(status)


def main(argv):
	opts = parse_args(argv)
	tests = [x for x in containers_tests.TESTS + containers_rootless.TESTS
		 if selected(x[0], opts.patterns)]
	if opts.list:
		for n, _ in [("containers/setup", None)] + tests:
			print(n)
		return 0
	if os.environ.get("PLYFS_IT_NS") != "1":
		print("containers_harness.py: start me through containers.sh (private mount namespace)",
		      file=sys.stderr)
		return 2
	if not os.access(opts.binary, os.X_OK):
		print("containers_harness.py: %s is not an executable" % opts.binary, file=sys.stderr)
		print("0 passed, 1 failed")
		return 1
	if os.getpid() == 1:
		child = os.fork()
		if child:
			return reap_as_init(child)
	signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Interrupted()))
	os.umask(0o022)
	base = tempfile.mkdtemp(prefix="plyfs-ctr.", dir=os.environ.get("TMPDIR", "/tmp"))
	os.chmod(base, 0o755)  # the rootless user works below it
	if opts.tmpfs:
		# Only in our private namespace: it disappears with the run whatever happens.
		mounts.run(["mount", "-t", "tmpfs", "-o", "size=12g,mode=0755", "plyfs-ctr", base], 30)
	passed = failed = 0
	t_start = time.monotonic()
	try:
		passed, failed = run_tests(opts, base, tests)
	except (Interrupted, KeyboardInterrupt):
		print("interrupted", file=sys.stderr)
		failed += 1
	finally:
		mounts.cleanup_all()
		for m in reversed([os.fsdecode(m) for m, _ in mounts.mounts()
				   if m.startswith(os.fsencode(base) + b"/")]):
			mounts.umount(m)
		mounts.umount(base)
		shutil.rmtree(base, ignore_errors=True)
	print("# containers: %.0fs in all; cache: %s" % (time.monotonic() - t_start,
						       containers_image.CACHE))
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
