# SPDX-License-Identifier: GPL-2.0-or-later
"""walks.py - what a tree walk costs the layers, where the design bounds it (dir.c "plus
advice", namei_lookup_listed()): the layer calls of the daemon's `-d` trace and the FUSE requests
of `plyfs status --json`, on a fresh mount (the kernel holds no dentry of the tree).

- find_then_statwalk: `find` reads names and d_type only, and the kernel asks READDIRPLUS for the
  first chunk of every directory: the daemon looks up the directories, and files only in the
  first 8 listings (until no LOOKUP followed the files it left out), so `find` of DIRS x FILES
  looks up the files of at most 9 directories in the layers (main looked every file up: a cold
  inode read each). A stat-walk after it (lstat of every file of each listed directory) gets the
  attributes with the listings again: LOOKUPs for fewer than a quarter of its files (every file
  left out would be one LOOKUP each; the first listings come from the kernel's cache). A `find`
  of another tree after it looks up at most 9 directories' files again. Both finds print what
  kernel overlayfs' does on a copy of the layers.
- listed_layers_skipped: `ls -l` of a directory of three lowers whose files are all in the bottom
  one: an entry READDIRPLUS looks up is not looked for again in the layers the listing read
  without it (no stat of the name nor of `.wh.NAME` there): at most 3 layer calls per file (its
  stat and its metacopy xattr below; main made 6), the output (modes, sizes, names) is kernel
  overlayfs', and every st_ino the lower file's, as under kernel overlayfs.

Run by hand: tests/integration/run.sh build/plyfs -k 'walks/*' [-v].
"""

import os
import subprocess

import lifecycle
import metaops
import mounts
from mounts import t

DIRS = 60
FILES = 20


class Ctx(lifecycle.Ctx):
	GROUP = "walks"


class Kernel:
	"""Kernel overlayfs on a copy of the layers, unmounted at cleanup."""

	def __init__(self, ctx, root, lowers):
		self.km = mounts.KernelMount(os.path.join(root, "m"), lowers, os.path.join(root, "u"),
					     os.path.join(root, "w"))
		ctx.track(self)
		self.km.mount()

	def cleanup(self):
		if self in mounts.ACTIVE:
			mounts.ACTIVE.remove(self)
		msg = self.km.cleanup()
		return ["kernel overlayfs: " + msg] if msg else []


def tree_layers(root):
	"""root/{l0,l1}: trees t and t2: dI in l1 with FILES files fJ; every third dI also in l0
	with files gJ."""
	for tree in ("t", "t2"):
		for i in range(DIRS):
			for j in range(FILES):
				lifecycle.write(os.path.join(root, "l1/%s/d%d/f%d" % (tree, i, j)), "f")
				if i % 3 == 0:
					lifecycle.write(os.path.join(root, "l0/%s/d%d/g%d" % (tree, i, j)),
							"g")
	for d in ("u", "w", "m"):
		os.makedirs(os.path.join(root, d))
	return [os.path.join(root, "l0"), os.path.join(root, "l1")]


def start(ctx, root, lowers):
	mnt = os.path.join(root, "m")
	opts = "lowerdir=%s,upperdir=%s,workdir=%s,handles_interval=0" % (
		":".join(lowers), os.path.join(root, "u"), os.path.join(root, "w"))
	ctx.daemon = lifecycle.start_foreground(ctx, ["-d", "-o", opts, mnt], mnt)
	return mnt


def run_find(mnt):
	cp = subprocess.run(["find", "."], cwd=mnt, capture_output=True, timeout=t(60))
	return sorted(cp.stdout.decode().split("\n"))


def files_read(ctx, off):
	"""Files of the tree looked up in the layers since log offset `off`: the stat that finds one
	(fstatat of its name returning 0)."""
	with open(os.path.join(ctx.logdir, "daemon.log"), "rb") as f:
		f.seek(off)
		text = f.read().decode(errors="replace")
	return sum(1 for m in metaops.CALL.finditer(text)
		   if m.group(1) == "fstatat" and m.group(4) == "0" and m.group(3)[:1] in ("f", "g")
		   and m.group(3)[1:].isdigit())


def statwalk(mnt):
	for top, _dirs, files in os.walk(os.path.join(mnt, "t")):
		for f in files:
			os.lstat(os.path.join(top, f))


def find_then_statwalk(ctx):
	lowers = tree_layers(ctx.path("p"))
	k = tree_layers(ctx.path("k"))
	Kernel(ctx, ctx.path("k"), k)
	mnt = start(ctx, ctx.path("p"), lowers)
	errs = []
	per_dir = FILES * 4 / 3	 # files a directory holds, on average (at most 2 * FILES)
	for label, tree in (("find", "t"), ("stat-walk", "t"), ("find of another tree", "t2")):
		off = metaops.log_size(ctx)
		before = metaops.ops(ctx, mnt)
		if label == "stat-walk":
			statwalk(mnt)
		else:
			got = run_find(os.path.join(mnt, tree))
			want = run_find(ctx.path("k/m/" + tree))
			if got != want:
				errs.append("%s printed %d names, kernel overlayfs %d"
					    % (label, len(got), len(want)))
		read = files_read(ctx, off)
		after = metaops.ops(ctx, mnt)
		lookups = after["lookup"] - before["lookup"]
		if label != "stat-walk" and read > 9 * 2 * FILES:
			errs.append("%s of %d directories looked %d files up in the layers (want those "
				    "of at most 9 directories)" % (label, DIRS, read))
		if label == "stat-walk" and lookups * 4 > DIRS * per_dir:
			errs.append("stat-walk of %d files sent %d LOOKUPs (want fewer than a quarter: "
				    "attributes come with the listings)" % (DIRS * per_dir, lookups))
		ctx.notes.append("%s: %d files looked up in the layers, %d LOOKUPs"
				 % (label, read, lookups))
	return errs


def listed_layers_skipped(ctx):
	n = 200
	roots = {}
	for side in ("p", "k"):
		for j in range(n):
			lifecycle.write(ctx.path("%s/l2/big/n%d" % (side, j)), "x" * (j % 5))
		for lo in ("l0", "l1"):
			os.makedirs(ctx.path("%s/%s/big" % (side, lo)))
		for d in ("u", "w", "m"):
			os.makedirs(ctx.path("%s/%s" % (side, d)))
		roots[side] = [ctx.path("%s/%s" % (side, lo)) for lo in ("l0", "l1", "l2")]
	Kernel(ctx, ctx.path("k"), roots["k"])
	mnt = start(ctx, ctx.path("p"), roots["p"])
	off = metaops.log_size(ctx)
	ls = ["ls", "-l", "--time-style=+", "big"]
	got = subprocess.run(ls, cwd=mnt, capture_output=True, timeout=t(60)).stdout
	calls = metaops.calls_since(ctx, off)
	errs = []
	want = subprocess.run(ls, cwd=ctx.path("k/m"), capture_output=True, timeout=t(60)).stdout
	if got != want:
		errs.append("ls -l differs from kernel overlayfs':\n%s\n%s"
			    % (got.decode()[:300], want.decode()[:300]))
	named = [c for c in calls if c[1].lstrip(".wh")[:1] == "n"]
	if len(named) > 3 * n + 6:
		errs.append("%d layer calls naming the %d files of big/ (want at most 3 each: the "
			    "listing read the upper layers without them): %s"
			    % (len(named), n, metaops.show(named[:8])))
	for j in range(n):
		# Layers on one filesystem: the lower file's inode number, under both.
		for side, m in (("binary", mnt), ("kernel", ctx.path("k/m"))):
			low = ctx.path("%s/l2/big/n%d" % (side[0] if side == "kernel" else "p", j))
			a = os.lstat(os.path.join(m, "big/n%d" % j)).st_ino
			if a != os.lstat(low).st_ino:
				errs.append("%s: big/n%d st_ino %d, the lower file's %d"
					    % (side, j, a, os.lstat(low).st_ino))
	ctx.notes.append("ls -l of %d files: %d layer calls naming them" % (n, len(named)))
	return errs


TESTS = [
	("find_then_statwalk", find_then_statwalk),
	("listed_layers_skipped", listed_layers_skipped),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("walks", TESTS, Ctx)
