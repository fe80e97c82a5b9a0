# SPDX-License-Identifier: GPL-2.0-or-later
"""harness.py - runs every scenario and bad-option case against BINARY; prints PASS/FAIL lines and
a closing "N passed, N failed" line. Meant to be started by run.sh, inside a private mount
namespace (and, where possible, a PID namespace of which it is PID 1, so that nothing it started
outlives it)."""

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

import bad_options  # noqa: E402
import dircache  # noqa: E402
import handles  # noqa: E402
import hardlinks  # noqa: E402
import hostile  # noqa: E402
import idmapping  # noqa: E402
import kernel_opts  # noqa: E402
import lifecycle  # noqa: E402
import lifetime  # noqa: E402
import memory  # noqa: E402
import mountcmd  # noqa: E402
import mounts  # noqa: E402
import origin  # noqa: E402
import scenario  # noqa: E402
import status  # noqa: E402
import metaops  # noqa: E402
import walks  # noqa: E402
import userns  # noqa: E402
import workdir_lock  # noqa: E402
from mounts import Failure  # noqa: E402
from scenarios import scenarios  # noqa: E402

MAX_SHOWN = 20


class Interrupted(BaseException):
	pass


def parse_args(argv):
	ap = argparse.ArgumentParser(prog="run.sh", description=__doc__)
	ap.add_argument("binary", help="the overlay daemon under test (plyfs, fuse-overlayfs)")
	ap.add_argument("--sanitizer", action="store_true",
			help="the binary is built with ASan/UBSan: collect and fail on reports")
	ap.add_argument("-k", dest="patterns", action="append", default=[],
			help="run only tests whose name contains PATTERN (or matches it as a glob)")
	ap.add_argument("--keep", action="store_true",
			help="keep the temp dirs of failed tests (with --disk; the tmpfs dies with the run)")
	ap.add_argument("--relax", default="",
			help="comma list of checks to skip: dir_nlink, access, ino (diagnostics only)")
	ap.add_argument("--strict-messages", choices=["auto", "yes", "no"], default="auto",
			help="bad-option messages must name the path/option (auto: only for plyfs)")
	ap.add_argument("--list", action="store_true", help="list the test names and exit")
	ap.add_argument("-v", "--verbose", action="store_true", help="print each test's duration")
	ap.add_argument("--disk", action="store_true",
			help="build the layers in $TMPDIR itself instead of a tmpfs mounted over a "
			"temp dir there (file creation on the disk can be 100x slower)")
	o = ap.parse_args(argv)
	o.binary = os.path.abspath(o.binary)
	o.relax = [x for x in o.relax.split(",") if x]
	if o.strict_messages == "auto":
		o.strict_messages = os.path.basename(o.binary).startswith("plyfs")
	else:
		o.strict_messages = o.strict_messages == "yes"
	return o


def selected(name, patterns):
	if not patterns:
		return True
	return any(p in name or fnmatch.fnmatch(name, p) for p in patterns)


def scenario_test(sc):
	def run(opts, base):
		ctx = scenario.Ctx(os.path.join(base, sc.name), opts)
		ok = False
		timing = []
		try:
			errs = scenario.run(sc, ctx)
			ok = not errs
			return errs, ctx.notes + timing
		finally:
			scenario.teardown(ctx, keep=opts.keep and not ok)
			if opts.verbose:
				timing.append("# " + ", ".join("%s %.1fs" % x for x in ctx.timing))
	return run


def bad_option_tests():
	state = {}

	def setup(base):
		if "setup" not in state:
			state["setup"] = bad_options.Setup(os.path.join(base, "bad_options"))
		return state["setup"]

	def make(case):
		def run(opts, base):
			return bad_options.run_case(opts, setup(base), case)
		return run

	tests = [("bad_options/" + c[0], make(c)) for c in bad_options.CASES]
	return tests, state


def report(name, errs, notes, dt, verbose):
	suffix = "  [%.1fs]" % dt if verbose else ""
	if not errs:
		print("PASS %s%s" % (name, suffix))
	else:
		more = " (+%d more)" % (len(errs) - 1) if len(errs) > 1 else ""
		print("FAIL %s: %s%s%s" % (name, errs[0].splitlines()[0] if errs[0] else "?", more, suffix))
		for e in errs[:MAX_SHOWN]:
			for line in e.splitlines() or [""]:
				print("    " + line)
		if len(errs) > MAX_SHOWN:
			print("    ... %d more differences" % (len(errs) - MAX_SHOWN))
	for n in notes:
		print("    note: %s" % n if not n.startswith("#") else "    " + n)
	sys.stdout.flush()


def main(argv):
	opts = parse_args(argv)
	tests = [(sc.name, scenario_test(sc)) for sc in scenarios()]
	bo_tests, bo_state = bad_option_tests()
	tests += bo_tests
	tests += lifecycle.tests()
	tests += mountcmd.tests()
	tests += handles.tests()
	tests += hardlinks.tests()
	tests += lifetime.tests()
	tests += memory.tests()
	tests += workdir_lock.tests()
	tests += status.tests()
	tests += metaops.tests()
	tests += walks.tests()
	tests += hostile.tests()
	tests += userns.tests()
	tests += idmapping.tests()
	tests += kernel_opts.tests()
	tests += origin.tests()
	tests += dircache.tests()
	tests = [(n, fn) for n, fn in tests if selected(n, opts.patterns)]
	if opts.list:
		for n, _ in tests:
			print(n)
		return 0
	if os.environ.get("PLYFS_IT_NS") != "1":
		print("harness.py: start me through run.sh (private mount namespace)", file=sys.stderr)
		return 2
	if not os.access(opts.binary, os.X_OK):
		print("harness.py: %s is not an executable" % opts.binary, file=sys.stderr)
		print("0 passed, 1 failed")
		return 1
	if opts.sanitizer:
		mounts.SCALE = 3.0
	signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Interrupted()))
	deadline = time.monotonic() + float(os.environ.get("PLYFS_IT_TIMEOUT", "1800")) - 90
	os.umask(0o022)
	base = tempfile.mkdtemp(prefix="plyfs-it.", dir=os.environ.get("TMPDIR", "/tmp"))
	if not opts.disk:
		# Only in our private namespace: it disappears with the run whatever happens.
		mounts.run(["mount", "-t", "tmpfs", "-o", "size=8g,mode=0755", "plyfs-it", base], 30)
	passed = failed = 0
	try:
		for name, fn in tests:
			if time.monotonic() > deadline:
				report(name, ["not run: the whole run's time limit is near"], [], 0, False)
				failed += 1
				continue
			t0 = time.monotonic()
			try:
				errs, notes = fn(opts, base)
			except Failure as e:
				errs, notes = [str(e)], []
			except Interrupted:
				raise
			except Exception as e:  # a harness or I/O error is a failure of this test only
				errs, notes = ["%s: %s" % (type(e).__name__, e),
					       traceback.format_exc(limit=6)], []
			leftovers = mounts.cleanup_all()
			errs += ["cleanup: " + x for x in leftovers]
			report(name, errs, notes, time.monotonic() - t0, opts.verbose)
			passed, failed = passed + (not errs), failed + bool(errs)
	except (Interrupted, KeyboardInterrupt):
		print("interrupted", file=sys.stderr)
		failed += 1
	finally:
		mounts.cleanup_all()
		if "setup" in bo_state:
			bo_state["setup"].close()
		if opts.keep and failed and opts.disk:
			print("kept %s" % base, file=sys.stderr)
		else:
			if not opts.disk:
				mounts.umount(base)
			shutil.rmtree(base, ignore_errors=True)
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
