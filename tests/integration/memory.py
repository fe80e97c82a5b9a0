# SPDX-License-Identifier: GPL-2.0-or-later
"""memory.py - the daemon's memory does not grow with files merely seen, and the records of
forgotten nodes stay within their bound (read through the status query, user.plyfs.status).

walk_500k: a lower layer of DIRS x PER_DIR empty files (500,000); the tree is walked through the
mount (readdir + lstat of every entry, so the kernel and the daemon learn every file), the caches
are dropped (the kernel forgets every inode: the nodes turn into records), and the daemon's RSS
is read; then all of it once more. What is bounded by design is checked: walking the same files
again leaves exactly as many records and no more nodes than the first walk (memory follows the
files, not the walks), the records stay within records_max, and after the drop only a handful of
nodes stay live. The RSS after each walk is reported, not asserted: it moves with the machine's
load (a 10% limit failed on a loaded machine), so RSS goals live in the benchmark (bench/).
walk_500k also checks that the records' entries and names are file-backed (records.h: an
unnamed file of w/work, open in the daemon, mapped shared) and notes how much of it is resident.
records_bound: a smaller tree under forgotten_records=N: never more than N records.
Both check the memory the records take (records_bytes in the status query) against the bound
records.h computes from the store's structure for that many records and names.

The sanitizer build runs the same walk: ASan's quarantine (freed memory held back on purpose,
256 MB by default) would show as growth, so the daemon gets a small one there.

Run by hand: tests/integration/run.sh build/plyfs -k 'memory/*' [--sanitizer] -v.
"""

import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lifecycle  # noqa: E402
import mounts  # noqa: E402
from mounts import Failure, t  # noqa: E402

DIRS, PER_DIR = 500, 1000	# 500,000 files in the big walk
ROUNDS = max(2, int(os.environ.get("PLYFS_MEMORY_ROUNDS", "2")))	# more by hand: a trend
SMALL_DIRS, SMALL_PER_DIR, SMALL_BOUND = 20, 1000, 5000
LIVE_AFTER_DROP = 100		# nodes still live after a drop: the root and a few in use
STATUS_XATTR = "user.plyfs.status"


class Ctx(lifecycle.Ctx):
	"""lifecycle.Ctx in base/memory/NAME; the daemon's ASan quarantine kept small (see above)."""
	GROUP = "memory"

	def env(self, path_prefix=None):
		env = super().env(path_prefix)
		if self.opts.sanitizer:
			env["ASAN_OPTIONS"] += ":quarantine_size_mb=8:thread_local_quarantine_size_kb=64"
		return env


def build_tree(root, dirs, per_dir):
	for d in range(dirs):
		p = os.path.join(root, "d%04d" % d)
		os.makedirs(p)
		for f in range(per_dir):
			os.mknod(os.path.join(p, "file-%06d" % f), stat.S_IFREG | 0o644)


def mount(ctx, dirs, per_dir, extra=""):
	for d in ("l", "u", "w", "mnt"):
		os.makedirs(ctx.path(d))
	build_tree(ctx.path("l"), dirs, per_dir)
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s%s" % (ctx.path("l"), ctx.path("u"),
							ctx.path("w"), extra)
	return lifecycle.start_foreground(ctx, ["-o", opts, mnt], mnt)


def status(mnt):
	"""The status query: {counter: int} (the lines with a number; status.h)."""
	raw = os.getxattr(mnt, STATUS_XATTR)
	out = {}
	for line in raw.decode().splitlines():
		k, _, v = line.partition(" ")
		if v.isdigit():
			out[k] = int(v)
	return out


def rss_kib(pid):
	with open("/proc/%d/status" % pid) as f:
		for line in f:
			if line.startswith("VmRSS:"):
				return int(line.split()[1])
	raise Failure("no VmRSS for pid %d" % pid)


def status_text(mnt, key):
	"""One line of the status query as text (status.h), or None."""
	for line in os.getxattr(mnt, STATUS_XATTR).decode().splitlines():
		k, _, v = line.partition(" ")
		if k == key:
			return v
	return None


def records_file(ctx, pid):
	"""The records' entries and names live in an unnamed file of w/work (records.h): the status
	says so, the daemon holds that file open with no name, and maps it shared. Returns
	(problems, the mapping's Size and Rss in KiB as notes)."""
	errs = []
	if status_text(ctx.path("mnt"), "records_backing") != "file":
		errs.append("records_backing is %r, not file: the records of forgotten nodes are in "
			    "the daemon's anonymous memory" % status_text(ctx.path("mnt"),
									   "records_backing"))
		return errs, None
	work = os.path.join(ctx.path("w"), "work") + "/"
	fds = []
	for fd in os.listdir("/proc/%d/fd" % pid):
		try:
			target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
		except OSError:
			continue
		if target.startswith(work):
			fds.append(target)
	if len(fds) != 1 or not fds[0].endswith(" (deleted)"):
		errs.append("expected one unnamed file of %s open in the daemon, found %r" % (work, fds))
		return errs, None
	size = rss = None
	with open("/proc/%d/smaps" % pid) as f:
		inside = False
		for line in f:
			fields = line.split()
			if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
				inside = line.rstrip("\n").endswith(fds[0]) and fields[1][3] == "s"
			elif inside and fields[0] in ("Size:", "Rss:"):
				if fields[0] == "Size:":
					size = int(fields[1])
				else:
					rss = int(fields[1])
	if size is None:
		errs.append("no shared mapping of the records file %s" % fds[0])
	return errs, (size, rss)


def walk(mnt):
	"""readdir and lstat of every entry; returns the number of files seen."""
	n = 0
	for top in os.scandir(mnt):
		for e in os.scandir(top.path):
			e.stat(follow_symlinks=False)
			n += 1
	return n


def drop_and_wait(h, mnt, expect_live):
	"""Drops the caches until the daemon holds at most `expect_live` live nodes (the kernel's
	FORGETs arrive asynchronously); bounded. Returns the last status."""
	errs = lifecycle.settle(h)
	if errs:
		raise Failure(errs[0])
	deadline = time.monotonic() + t(60)
	while True:
		for _ in range(2):
			with open("/proc/sys/vm/drop_caches", "w") as f:
				f.write("3")
		st = status(mnt)
		if st["nodes_live"] <= expect_live or time.monotonic() > deadline:
			return st
		time.sleep(0.2)


def one_round(ctx, h, mnt, want_files, seen_by=None):
	"""A walk, then the caches dropped: (status, RSS in KiB). With `seen_by`, a dict, also
	records the live nodes and the RSS right after the walk, before the drop."""
	seen = walk(mnt)
	if seen != want_files:
		raise Failure("the walk saw %d files, expected %d" % (seen, want_files))
	if seen_by is not None:
		seen_by["live"] = status(mnt)["nodes_live"]
		seen_by["rss"] = rss_kib(h.proc.pid)
	st = drop_and_wait(h, mnt, LIVE_AFTER_DROP)
	return st, rss_kib(h.proc.pid)


RECORD_ENTRY = 40	# bytes of one record in the store, names apart (records.h)
PAGE = os.sysconf("SC_PAGE_SIZE")


def records_bytes_bound(n, names, slack):
	"""What the record store may take for n records whose names take `names` bytes (records.h):
	entries and names with `slack` room (5/4 while records were only added since the store's
	last rebuild, 4 after removals), two indexes of 4-byte slots at most 3/4 full, a page of
	rounding each, the devices. Computed from the structure, not measured."""
	entries = n * slack + 2 + PAGE // RECORD_ENTRY + 1
	return (RECORD_ENTRY * entries + (names + n + 256) * slack + 2 * PAGE
		+ 2 * 4 * (entries * 4 / 3 + 2 + PAGE / 4) + 2 * 64 * 8 + PAGE)


def check_status(st, what, want_files, errs, slack=1.25):
	if st["nodes_live"] > LIVE_AFTER_DROP:
		errs.append("%s: %d nodes still live after the caches were dropped (at most %d "
			    "expected)" % (what, st["nodes_live"], LIVE_AFTER_DROP))
	if st["records"] > st["records_max"]:
		errs.append("%s: %d records, over the bound %d" % (what, st["records"],
								  st["records_max"]))
	want = min(want_files, st["records_max"])
	if st["records"] < want * 9 // 10:
		errs.append("%s: only %d records of forgotten nodes, expected about %d: handles "
			    "of the files seen would not decode" % (what, st["records"], want))
	# The records' memory follows from their structure: over the bound, the store keeps more
	# than its records (a leak, holes never closed) or a record grew.
	if "records_bytes" not in st:
		errs.append("%s: the status query reports no records_bytes" % what)
		return
	limit = records_bytes_bound(st["records"], st["records_name_bytes"], slack)
	if st["records_bytes"] > limit:
		errs.append("%s: the records take %d bytes (%.1f a record), over the bound %d of "
			    "records.h for %d records with %d bytes of names" % (
				    what, st["records_bytes"],
				    st["records_bytes"] / max(st["records"], 1), limit, st["records"],
				    st["records_name_bytes"]))


def walk_500k(ctx):
	h = mount(ctx, DIRS, PER_DIR)
	mnt = ctx.path("mnt")
	total = DIRS * PER_DIR
	errs = []
	with mounts.Watchdog(t(600), [h]):
		rss0 = rss_kib(h.proc.pid)
		live = {}
		st1, rss1 = one_round(ctx, h, mnt, total, live)
		check_status(st1, "first walk", total, errs)
		trend = [rss1]
		for i in range(1, ROUNDS):
			st2, rss2 = one_round(ctx, h, mnt, total)
			check_status(st2, "walk %d" % (i + 1), total, errs)
			trend.append(rss2)
		if len(trend) > 2:
			ctx.notes.append("# RSS KiB after each walk: %r" % trend)
		rss2 = max(trend[1:])
		# The same files seen again: the same records, and no more nodes than the first time
		# (up to the few that a drop may leave live in one round and not the other).
		if abs(st2["records"] - st1["records"]) > LIVE_AFTER_DROP:
			errs.append("%d records after walking the same files again, %d after the first "
				    "walk" % (st2["records"], st1["records"]))
		if st2["nodes"] > st1["nodes"] + LIVE_AFTER_DROP:
			errs.append("%d nodes after walking the same files again, %d after the first walk"
				    % (st2["nodes"], st1["nodes"]))
		ctx.notes.append("# %d live nodes after the first walk: RSS %d KiB (%.0f bytes per "
				 "live node)" % (live["live"], live["rss"],
						 (live["rss"] - rss0) * 1024.0 / max(live["live"], 1)))
		ctx.notes.append("# %d files: RSS %d KiB at the start, %d KiB after the first walk, "
				 "%d KiB after the second (%.0f bytes per record); records %d, %d "
				 "(the store: %.1f bytes a record); nodes %d, %d" % (
					 total, rss0, rss1, rss2,
					 (rss1 - rss0) * 1024.0 / max(st1["records"], 1),
					 st1["records"], st2["records"],
					 st2["records_bytes"] / max(st2["records"], 1),
					 st1["nodes"], st2["nodes"]))
		file_errs, mapped = records_file(ctx, h.proc.pid)
		errs += file_errs
		if mapped:
			ctx.notes.append("# the records file: %d KiB mapped, %d KiB of it in the RSS"
					 % mapped)
		errs += lifecycle.settle(h)
	return errs + h.cleanup()


def status_is_read_only(mnt):
	"""The status xattr is never listed and cannot be set or removed."""
	errs = []
	if STATUS_XATTR in os.listxattr(mnt):
		errs.append("%s is listed by listxattr" % STATUS_XATTR)
	for what, call in (("set", lambda: os.setxattr(mnt, STATUS_XATTR, b"0")),
			   ("removed", lambda: os.removexattr(mnt, STATUS_XATTR))):
		try:
			call()
			errs.append("%s could be %s" % (STATUS_XATTR, what))
		except OSError:
			pass
	return errs


def records_bound(ctx):
	h = mount(ctx, SMALL_DIRS, SMALL_PER_DIR, ",forgotten_records=%d" % SMALL_BOUND)
	mnt = ctx.path("mnt")
	total = SMALL_DIRS * SMALL_PER_DIR
	errs = []
	with mounts.Watchdog(t(120), [h]):
		errs += status_is_read_only(mnt)
		for i in range(2):
			st, _ = one_round(ctx, h, mnt, total)
			if st["records_max"] != SMALL_BOUND:
				errs.append("records_max %d, forgotten_records=%d was given"
					    % (st["records_max"], SMALL_BOUND))
			# The oldest records go as new ones come: removals, so the looser bound.
			check_status(st, "walk %d" % (i + 1), total, errs, slack=4)
		errs += lifecycle.settle(h)
	return errs + h.cleanup()


TESTS = [
	("walk_500k", walk_500k),
	("records_bound", records_bound),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("memory", TESTS, Ctx)
