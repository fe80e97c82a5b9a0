# SPDX-License-Identifier: GPL-2.0-or-later
"""write_harness.py - runs the write-path tests (write_ops, write_copyup, write_seed,
write_stress, write_race, write_perm, write_posix, write_io) against BINARY; prints PASS/FAIL
lines and a closing "N passed, N failed" line.
Started by write.sh, inside a private mount namespace (and a PID namespace where possible)."""

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

import mounts  # noqa: E402
import write_env  # noqa: E402
# Importing a test module registers its tests, in this order.
import write_ops  # noqa: E402,F401,I100
import write_copyup  # noqa: E402,F401,I100
import write_seed  # noqa: E402,F401
import write_stress  # noqa: E402,F401
import write_race  # noqa: E402,F401
import write_perm  # noqa: E402,F401
import write_posix  # noqa: E402,F401
import write_io  # noqa: E402,F401
from mounts import Failure  # noqa: E402


MAX_SHOWN = 20


class Interrupted(BaseException):
	pass


def parse_args(argv):
	ap = argparse.ArgumentParser(prog="write.sh", description=__doc__)
	ap.add_argument("binary", help="the overlay daemon under test (plyfs, fuse-overlayfs)")
	ap.add_argument("--sanitizer", action="store_true",
			help="the binary is built with ASan/UBSan: collect and fail on reports")
	ap.add_argument("-k", dest="patterns", action="append", default=[],
			help="run only tests whose name contains PATTERN (or matches it as a glob)")
	ap.add_argument("--keep", action="store_true", help="keep the temp dirs of failed tests "
			"(only useful with --disk: the tmpfs dies with the run)")
	ap.add_argument("--disk", action="store_true", help="work in $TMPDIR, not on a tmpfs")
	ap.add_argument("--relax", default="",
			help="comma list of tree checks to skip: dir_nlink, access, ino (diagnostics)")
	ap.add_argument("--list", action="store_true", help="list the test names and exit")
	ap.add_argument("-v", "--verbose", action="store_true", help="print each test's duration")
	o = ap.parse_args(argv)
	o.binary = os.path.abspath(o.binary)
	o.relax = [x for x in o.relax.split(",") if x]
	return o


def selected(name, patterns):
	return not patterns or any(p in name or fnmatch.fnmatch(name, p) for p in patterns)


def report(name, errs, notes, dt, verbose):
	"""One PASS/FAIL line (as harness.py prints them), then the differences and notes."""
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
		print("    note: %s" % n)
	sys.stdout.flush()


def main(argv):
	opts = parse_args(argv)
	tests = [x for x in write_env.TESTS if selected(x.name, opts.patterns)]
	if opts.list:
		for x in tests:
			print(x.name)
		return 0
	if os.environ.get("PLYFS_IT_NS") != "1":
		print("write_harness.py: start me through write.sh (private mount namespace)",
		      file=sys.stderr)
		return 2
	if not os.access(opts.binary, os.X_OK):
		print("write_harness.py: %s is not an executable" % opts.binary, file=sys.stderr)
		print("0 passed, 1 failed")
		return 1
	if opts.sanitizer:
		mounts.SCALE = 3.0
	signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Interrupted()))
	deadline = time.monotonic() + float(os.environ.get("PLYFS_IT_TIMEOUT", "900")) - 60
	os.umask(0o022)
	base = tempfile.mkdtemp(prefix="plyfs-wt.", dir=os.environ.get("TMPDIR", "/tmp"))
	if not opts.disk:
		# noatime: reading a layer file never moves its atime, so times compare exactly.
		mounts.run(["mount", "-t", "tmpfs", "-o", "size=8g,mode=0755,noatime", "plyfs-wt",
			    base], 30)
	passed = failed = 0
	t_start = time.monotonic()
	try:
		for x in tests:
			if time.monotonic() > deadline:
				report(x.name, ["not run: the whole run's time limit is near"], [], 0, False)
				failed += 1
				continue
			t0 = time.monotonic()
			try:
				errs, notes = write_env.run_test(x, opts, base)
			except Failure as e:
				errs, notes = [str(e)], []
			except Interrupted:
				raise
			except Exception as e:  # a harness or I/O error fails this test only
				errs, notes = ["%s: %s" % (type(e).__name__, e),
					       traceback.format_exc(limit=8)], []
			errs += ["cleanup: " + m for m in mounts.cleanup_all()]
			report(x.name, errs, notes, time.monotonic() - t0, opts.verbose)
			passed, failed = passed + (not errs), failed + bool(errs)
	except (Interrupted, KeyboardInterrupt):
		print("interrupted", file=sys.stderr)
		failed += 1
	finally:
		mounts.cleanup_all()
		if not opts.disk:
			mounts.umount(base)
		if not (opts.keep and failed and opts.disk):
			shutil.rmtree(base, ignore_errors=True)
	if opts.verbose:
		print("# total %.1fs" % (time.monotonic() - t_start))
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
