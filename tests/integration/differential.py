# SPDX-License-Identifier: GPL-2.0-or-later
"""differential.py - seeded random operation sequences run in lockstep on BINARY and on kernel
overlayfs (redirect_dir=on,index=on), comparing every result; then the whole merged trees; then
kernel overlayfs mounted on the binary's own upper must read back the kernel's final tree.

    differential.py BINARY [--seeds N] [--start S] [--ops K] [--seed S] [--kernel-self-check]
                    [--sanitizer] [--replay FILE] [--shrink-time SEC] [-v]

Meant to be started by diff.sh (private mount namespace). Prints "PASS diff/seed-N" or
"FAIL diff/seed-N: ..." with a minimal reproducer, and last "N passed, N failed"; exits 0 iff all
passed. See README.md ("Differential random-operation test").
"""

import argparse
import os
import random
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
import diffops  # noqa: E402
import layerspec  # noqa: E402
import mounts  # noqa: E402
import rootless_ns  # noqa: E402
from mounts import Failure, t  # noqa: E402

KERNEL_OPTS = "redirect_dir=on,index=on"

# The layer filesystems (--fs) and who runs both overlays (--users); seed S runs on combination
# (S - 1) mod N of --users x --fs, so a seed list is spread over them (see README.md).
FS_KINDS = ("tmpfs", "ext4", "ext4-nouuid")
USER_KINDS = ("root", "rootless")
EXT4_BYTES = 1 << 30	# sparse, on the run's tmpfs
# rootless: both overlays run as root of a user namespace whose ids 0..65535 are these outside.
ROOTLESS_ID, ROOTLESS_COUNT = 100000, 65536
# Kernel overlayfs there: userxattr (user.overlay.*), which only allows redirect_dir=nofollow, and
# without an index (it cannot decode file handles in a user namespace); --kernel-opts does not
# apply. The binary gets the matching redirect_dir=nofollow before --binary-opts.
ROOTLESS_KERNEL_OPTS = "userxattr"
ROOTLESS_BINARY_OPTS = "redirect_dir=nofollow"
SEED_TIMEOUT = 120	# seconds for the ops and walks of one run (times mounts.SCALE)
SHRINK_LEFT = [300.0]	# seconds of minimizing left for the whole run (--shrink-total)


class Interrupted(BaseException):
	pass


def parse_args(argv):
	ap = argparse.ArgumentParser(prog="diff.sh", description=__doc__,
				     formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("binary", help="the overlay daemon under test (plyfs, fuse-overlayfs)")
	ap.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
	ap.add_argument("--start", type=int, default=1, help="first seed (default 1)")
	ap.add_argument("--seed", type=int, action="append", default=[],
			help="run only this seed (repeatable); overrides --seeds/--start")
	ap.add_argument("--ops", type=int, default=200, help="operations per seed (default 200)")
	ap.add_argument("--kernel-self-check", action="store_true",
			help="the 'binary' side is a second kernel overlayfs mount: proves the "
			"harness is deterministic (BINARY is then ignored)")
	ap.add_argument("--sanitizer", action="store_true",
			help="the binary is built with ASan/UBSan: collect and fail on reports")
	ap.add_argument("--replay", metavar="FILE",
			help="run the LOWERS/UPPER/OPS of a reproducer file printed by a failure")
	ap.add_argument("--shrink-time", type=float, default=60.0,
			help="seconds spent minimizing one failing seed (0: no minimizing)")
	ap.add_argument("--shrink-total", type=float, default=300.0,
			help="seconds spent minimizing over the whole run (default 300); later "
			"failures print the unminimized sequence")
	ap.add_argument("--relax", default="",
			help="comma list of checks to skip: dir_nlink, nlink (in op results and "
			"final trees), access, ino (final trees), raw-origin (the raw upper "
			"comparison without *.overlay.origin/impure/uuid and *.plyfs.*); "
			"diagnostics only")
	ap.add_argument("--binary-opts", default="",
			help="extra comma-separated -o options for the binary")
	ap.add_argument("--kernel-opts", default=KERNEL_OPTS,
			help="options of every kernel overlayfs mount (default %(default)s); e.g. "
			"redirect_dir=off,index=off to look past the known differences of a daemon "
			"without them (diagnostics only)")
	ap.add_argument("--disk", action="store_true",
			help="build the layers in $TMPDIR itself instead of on a private tmpfs")
	ap.add_argument("--fs", default="tmpfs",
			help="comma list of layer filesystems, from %s, or all (default tmpfs)"
			% ", ".join(FS_KINDS))
	ap.add_argument("--users", default="root",
			help="comma list from root, rootless (both overlays in a user namespace, "
			"the kernel with userxattr), or all (default root)")
	ap.add_argument("--inside-userns", metavar="DIR", help=argparse.SUPPRESS)
	ap.add_argument("--no-lower-hardlinks", action="store_true",
			help="give lower layers no hard links (see diffops.LOWER_HARDLINKS)")
	ap.add_argument("-v", "--verbose", action="store_true",
			help="per-seed timings; with --replay every op and both results")
	o = ap.parse_args(argv)
	o.binary = os.path.abspath(o.binary)
	diffops.LOWER_HARDLINKS = not o.no_lower_hardlinks
	o.relax = [x for x in o.relax.split(",") if x]
	o.fs = list(FS_KINDS) if o.fs == "all" else [x for x in o.fs.split(",") if x]
	o.users = list(USER_KINDS) if o.users == "all" else [x for x in o.users.split(",") if x]
	for x in o.fs:
		if x not in FS_KINDS:
			ap.error("--fs: unknown filesystem %r" % x)
	for x in o.users:
		if x not in USER_KINDS:
			ap.error("--users: unknown %r" % x)
	o.combos = [(f, u) for u in o.users for f in o.fs]
	if o.replay and len(o.combos) != 1:
		ap.error("--replay runs on one filesystem and one user: give one of each")
	return o


def combo_of(opts, seed):
	return opts.combos[(seed - 1) % len(opts.combos)]


def seed_name(opts, seed):
	if opts.combos == [("tmpfs", "root")]:
		return "diff/seed-%d" % seed
	fs, user = combo_of(opts, seed)
	return "diff/%s/%s/seed-%d" % (fs, user, seed)


# --- one run: layers + ops on fresh mounts --------------------------------------------------------

class Outcome:
	"""errs: problems (empty: pass); sig: what kind of failure, kept while minimizing;
	index: the op that diverged (None if the ops all agreed); trace: [(op, kernel, binary)]."""

	def __init__(self):
		self.errs, self.sig, self.index, self.trace = [], None, None, []

	def fail(self, sig, errs, index=None):
		if self.sig is None:
			self.sig, self.index = sig, index
		self.errs += errs


def _layer_dirs(root, n_lower):
	return ([os.path.join(root, "lower%d" % i) for i in range(n_lower)],
		os.path.join(root, "upper"), os.path.join(root, "work"))


def build(base, lowers, upper, self_check):
	"""s/: the layers as generated (OCI whiteout forms in lowers allowed); k/: the kernel's
	copy; p/: the binary's layers (s itself, or a second kernel copy in self-check mode)."""
	src, k = os.path.join(base, "s"), os.path.join(base, "k")
	p = os.path.join(base, "p") if self_check else src
	layers = {"lower%d" % i: x for i, x in enumerate(lowers)}
	layers["upper"] = upper
	for name, layer in layers.items():
		os.makedirs(os.path.join(src, name))
		layerspec.build_layer(os.path.join(src, name), diffops.to_spec(layer))
	for dst in ([k, p] if self_check else [k]):
		kc = layerspec.KernelCopy(diffops.OVERLAY_XATTR_NS.encode() + b".overlay.opaque")
		try:
			for name in layers:
				os.makedirs(os.path.join(dst, name))
				kc.copy(os.path.join(src, name), os.path.join(dst, name))
		finally:
			kc.close()
	for d in (k, p):
		os.mkdir(os.path.join(d, "work"))
	return k, p


def kernel_mount(mnt, root, n_lower):
	lowers, upper, work = _layer_dirs(root, n_lower)
	km = mounts.KernelMount(mnt, lowers, upper, work)
	if KERNEL_OPTS:
		km.opts += "," + KERNEL_OPTS
	km.mount()
	return km


def _kind(result):
	return result[1] if result[0] == "err" else result[0]


def _diff_kind(errs):
	"""What the first tree difference is about (kept while minimizing): "missing", "extra",
	"walk", "st_ino" or the differing field."""
	m = re.search(r"^(missing|extra) in binary|^(walking)|: (st_ino) |: (\w+) kernel=", errs[0])
	return next((g for g in m.groups() if g), "?") if m else "?"


def _lockstep(ops, ks, ps, out, verbose):
	for i, op in enumerate(ops):
		rk, rp = ks.run(op), ps.run(op)
		if verbose:
			out.trace.append((op, rk, rp))
		if rk != rp:
			msg = "op #%d %r: kernel %s, binary %s" % (i, op, diffops.show_result(rk),
								   diffops.show_result(rp))
			out.fail(("op", op[0], _kind(rk), _kind(rp)), [msg], i)
			return False
	return True


def _walk(mnt, what):
	"""(walk, []) or (None, [why]): a tree that cannot be walked is a failure, not an error."""
	try:
		return compare.walk(mnt), []
	except OSError as e:
		return None, ["walking the %s tree failed: %s" % (what, e)]


def _without_nlink(w):
	out = {}
	for path, r in w.items():
		c = compare.Rec(**{k: getattr(r, k) for k in compare.Rec.__slots__})
		c.nlink = None
		out[path] = c
	return out


def _tree_diff(kw, pw, relax):
	if "nlink" in relax:
		kw, pw = _without_nlink(kw), _without_nlink(pw)
	errs = compare.diff_records(kw, pw, relax)
	if "ino" not in relax:
		errs += compare.ino_partition_diff(kw, pw)
	return errs


def run_once(opts, base, lowers, upper, ops, verbose=False):
	"""Builds, mounts, runs `ops` in lockstep, compares, unmounts, reads the binary's layers
	back with the kernel. Always unmounts. Returns an Outcome."""
	out = Outcome()
	n = len(lowers)
	k, p = build(base, lowers, upper, opts.kernel_self_check)
	km_dir, pm_dir, rm_dir = (os.path.join(base, x) for x in ("km", "pm", "rm"))
	for d in (km_dir, pm_dir, rm_dir):
		os.mkdir(d)
	km = kernel_mount(km_dir, k, n)
	daemon = pmount = None
	ks, ps = diffops.Side(km_dir, opts.relax), diffops.Side(pm_dir, opts.relax)
	kw = None
	try:
		if opts.kernel_self_check:
			pmount = kernel_mount(pm_dir, p, n)
		else:
			lw, up, wk = _layer_dirs(p, n)
			extra = [x for x in opts.binary_opts.split(",") if x]
			daemon = mounts.Daemon(opts.binary, pm_dir, lw, up, wk,
					       logdir=os.path.join(base, "log"),
					       sanitizer=opts.sanitizer, extra_opts=extra)
			daemon.start()
			pmount = daemon
		with mounts.Watchdog(t(SEED_TIMEOUT), [daemon] if daemon else []):
			try:
				agreed = _lockstep(ops, ks, ps, out, verbose)
			finally:
				ks.close_all()
				ps.close_all()
			if agreed:
				kw = compare.walk(km_dir)
				pw, errs = _walk(pm_dir, "binary")
				if pw is not None:
					errs = _tree_diff(kw, pw, opts.relax)
				if errs:
					out.fail(("tree", _diff_kind(errs)),
						 ["final tree: " + e for e in errs])
	finally:
		problems = daemon.cleanup() if daemon else [pmount.cleanup() if pmount else None]
		problems.append(km.cleanup())
		problems = [x for x in problems if x]
		if problems:
			out.fail(("umount",), problems)
	if opts.sanitizer and daemon:
		reports = daemon.sanitizer_reports()
		if reports:
			out.fail(("sanitizer",), ["sanitizer report " + r for r in reports])
	if kw is not None and not out.errs:
		_raw_compare(k, p, n, out, opts.relax)
	if kw is not None and not out.errs:
		_read_back(opts, p, n, rm_dir, kw, out)
	return out


def _raw_kind(errs):
	"""What the first raw difference is about (kept while minimizing): the xattr's suffix, or
	"entries"."""
	m = re.search(r": xattr \S*?([a-z_]+)(?= kernel=)", errs[0])
	return m.group(1) if m else "entries"


RAW_ORIGIN_NAMES = re.compile(rb"\.overlay\.(origin|impure|uuid)$|\.plyfs\.")


def _raw_compare(k, p, n, out, relax):
	"""Both unmounted: every xattr of the kernel's upper and of the binary's, as written (see
	compare.NORMALISED for the one normalisation)."""
	sides = []
	for root in (k, p):
		lowers, upper, _ = _layer_dirs(root, n)
		sides.append(compare.raw_xattrs(upper, compare.handle_map(lowers)))
	if "raw-origin" in relax:
		sides = [{p: {x: v for x, v in xs.items() if not RAW_ORIGIN_NAMES.search(x)}
			  for p, xs in side.items()} for side in sides]
	errs = compare.diff_raw(*sides)
	if errs:
		out.fail(("raw", _raw_kind(errs)), ["raw upper: " + e for e in errs])


# Rootless, kernel overlayfs is not its own oracle for two things (--kernel-self-check --users
# rootless, 240 seeds, fails 5 of them without this): st_ino grouping (it keeps no origin file
# handle in a user namespace: a copied-up file shows its lower inode number while its dentry
# lives and its upper one after a remount or cache eviction, so two hard links may show two
# numbers, then one: seeds 13, 94, and 46 in the read-back) and access() of a fifo with x bits
# on ext4 (X_OK false while mounted, true after a remount: seeds 23, 122, 174). Not compared
# there, in the final trees and in the read-back; everything else is.
ROOTLESS_RELAX = ["ino", "access"]


def _read_back(opts, p, n, rm_dir, kw, out):
	"""Kernel overlayfs on the binary's upper (and its lowers, OCI forms converted in place)."""
	lowers, _, _ = _layer_dirs(p, n)
	for lw in lowers:
		diffops.to_kernel_form_in_place(lw)
	try:
		rm = kernel_mount(rm_dir, p, n)
	except Failure as e:
		out.fail(("readback",), ["kernel overlayfs refused the binary's layers: %s" % e])
		return
	try:
		rw, errs = _walk(rm_dir, "kernel read-back")
		if rw is not None:
			errs = _tree_diff(kw, rw, ROOTLESS_RELAX if opts.inside_userns else [])
	finally:
		msg = rm.cleanup()
	if msg:
		errs.append(msg)
	if errs:
		out.fail(("readback", _diff_kind(errs)),
			 ["kernel read-back of the binary's upper: " + e for e in errs])


# --- minimizing -----------------------------------------------------------------------------------

class Shrinker:
	"""Delta debugging over the op list: a candidate is kept iff it fails with the same
	signature. Every trial runs on fresh layers and mounts; the whole search is bounded by
	`budget` seconds."""

	def __init__(self, opts, base, lowers, upper, sig, budget):
		self.opts, self.base, self.lowers, self.upper = opts, base, lowers, upper
		self.sig, self.end = sig, time.monotonic() + budget
		self.trials = 0

	def out_of_time(self):
		return time.monotonic() > self.end

	def fails(self, ops):
		self.trials += 1
		d = os.path.join(self.base, "shrink%d" % self.trials)
		os.mkdir(d)
		try:
			o = run_once(self.opts, d, self.lowers, self.upper, ops)
		except Failure:
			return None
		finally:
			mounts.cleanup_all()
			shutil.rmtree(d, ignore_errors=True)
		if o.sig != self.sig:
			return None
		return ops[:o.index + 1] if o.index is not None else ops

	def shrink(self, ops):
		n = 2
		while len(ops) >= 2 and not self.out_of_time():
			size = (len(ops) + n - 1) // n
			chunks = [ops[i:i + size] for i in range(0, len(ops), size)]
			reduced = False
			for i in range(len(chunks)):
				if self.out_of_time():
					break
				cand = [op for j, c in enumerate(chunks) if j != i for op in c]
				r = self.fails(cand)
				if r is not None:
					ops, n, reduced = r, max(n - 1, 2), True
					break
			if not reduced:
				if n >= len(ops):
					break
				n = min(len(ops), n * 2)
		return ops


# --- output ---------------------------------------------------------------------------------------

def reproducer(seed, nops, lowers, upper, ops, why, binary, complete, where=""):
	lines = ["# plyfs differential-test reproducer: seed %d, %d of %d ops%s"
		 % (seed, len(ops), nops,
		    "" if complete else " (not fully minimized: out of time)"),
		 "# first divergence: %s" % why,
		 "# replay:   tests/integration/diff.sh %s%s --replay THIS_FILE -v" % (binary, where),
		 "# full run: tests/integration/diff.sh %s%s --seed %d --ops %d"
		 % (binary, where, seed, nops),
		 "LOWERS = [  # top first; (path, kind, args) in build order, see diffops.to_spec"]
	for layer in lowers:
		lines.append("\t%r," % (layer,))
	lines += ["]", "UPPER = %r" % (upper,), "OPS = ["]
	lines += ["\t%r," % (op,) for op in ops]
	lines.append("]")
	return "\n".join(lines) + "\n"


def report(name, out, verbose, dt, repro=None, repro_file=None):
	suffix = "  [%.1fs]" % dt if verbose else ""
	if not out.errs:
		print("PASS %s%s" % (name, suffix))
	else:
		more = " (+%d more)" % (len(out.errs) - 1) if len(out.errs) > 1 else ""
		print("FAIL %s: %s%s%s" % (name, out.errs[0].splitlines()[0], more, suffix))
		for e in out.errs[1:20]:
			print("    " + e.splitlines()[0])
		if repro:
			where = " (also in %s)" % repro_file if repro_file else ""
			print("    minimal reproducer%s:" % where)
			for line in repro.splitlines():
				print("    | " + line)
	sys.stdout.flush()


def seed_case(seed, nops):
	"""The layers and ops of a seed: --seed S --ops K always replays exactly these."""
	rng = random.Random("plyfs-diff-%d" % seed)
	lowers, upper = diffops.gen_layers(rng)
	ops = diffops.gen_ops(random.Random("plyfs-diff-ops-%d" % seed), nops, lowers, upper)
	return lowers, upper, ops


def run_seed(opts, base, seed):
	lowers, upper, ops = seed_case(seed, opts.ops)
	d = os.path.join(base, "seed%d" % seed)
	os.mkdir(d)
	try:
		out = run_once(opts, d, lowers, upper, ops)
	finally:
		mounts.cleanup_all()
		shutil.rmtree(d, ignore_errors=True)
	if not out.errs or out.sig in (("umount",), ("sanitizer",)):
		return out, None, None
	budget = min(opts.shrink_time, SHRINK_LEFT[0])
	sh = Shrinker(opts, base, lowers, upper, out.sig, budget)
	small = ops[:out.index + 1] if out.index is not None else ops
	t0 = time.monotonic()
	if budget > 0:
		small = sh.shrink(small)
	SHRINK_LEFT[0] -= time.monotonic() - t0
	# The last run of the minimal list gives the message to show with it.
	d = os.path.join(base, "final%d" % seed)
	os.mkdir(d)
	try:
		last = run_once(opts, d, lowers, upper, small)
	finally:
		mounts.cleanup_all()
		shutil.rmtree(d, ignore_errors=True)
	why = last.errs[0] if last.errs else "none"
	if last.sig != out.sig:
		# The binary is not deterministic here (timing, caches): show what the seed did.
		why = "%s; the original run: %s" % (why, out.errs[0])
	fs, user = combo_of(opts, seed)
	where = "" if (fs, user) == ("tmpfs", "root") else " --fs %s --users %s" % (fs, user)
	text = reproducer(seed, opts.ops, lowers, upper, small, why,
			  "--kernel-self-check X" if opts.kernel_self_check else opts.binary,
			  budget > 0 and not sh.out_of_time(), where)
	path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "plyfs-diff-seed%d.py" % seed)
	try:
		with open(path, "w") as f:
			f.write(text)
	except OSError:
		path = None
	return out, text, path


def replay(opts, base):
	env = {}
	with open(opts.replay) as f:
		exec(compile(f.read(), opts.replay, "exec"), env)
	d = os.path.join(base, "replay")
	os.mkdir(d)
	try:
		out = run_once(opts, d, env["LOWERS"], env["UPPER"], env["OPS"], verbose=True)
	finally:
		mounts.cleanup_all()
	if opts.verbose:
		for i, (op, rk, rp) in enumerate(out.trace):
			mark = "  " if rk == rp else "!!"
			print("%s #%d %r\n      kernel %s\n      binary %s"
			      % (mark, i, op, diffops.show_result(rk), diffops.show_result(rp)))
	report("diff/replay", out, False, 0)
	return out


def run_seeds(opts, base_of, seeds, deadline):
	"""Runs `seeds` here, each in the directory base_of(seed); returns (passed, failed)."""
	passed = failed = 0
	for seed in seeds:
		name = seed_name(opts, seed)
		if time.monotonic() > deadline:
			print("FAIL %s: not run: the whole run's time limit is near" % name)
			failed += 1
			continue
		t0 = time.monotonic()
		try:
			out, repro, path = run_seed(opts, base_of(seed), seed)
		except Failure as e:
			out, repro, path = Outcome(), None, None
			out.fail(("setup",), [str(e)])
		except Interrupted:
			raise
		except Exception as e:	# a harness error fails this seed only
			out, repro, path = Outcome(), None, None
			out.fail(("error",), ["%s: %s" % (type(e).__name__, e)] +
				 traceback.format_exc(limit=8).splitlines())
		leftovers = mounts.cleanup_all()
		if leftovers:
			out.fail(("cleanup",), ["cleanup: " + x for x in leftovers])
		report(name, out, opts.verbose, time.monotonic() - t0, repro, path)
		passed, failed = passed + (not out.errs), failed + bool(out.errs)
	return passed, failed


# --- the layer filesystems and the rootless runs ---------------------------------------------------

class Filesystems:
	"""One mounted filesystem per kind of --fs used, under the run's base: a tmpfs, an ext4
	image with a random uuid, one whose uuid is cleared (tune2fs -U clear: all zeros, as the
	root filesystem of some machines). Images are sparse files on the run's tmpfs."""

	def __init__(self, base):
		self.base, self.roots, self.mounted = base, {}, []

	def root(self, kind):
		if kind not in self.roots:
			d = os.path.join(self.base, kind)
			os.mkdir(d)
			if kind == "tmpfs":
				mounts.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755",
					    "plyfs-diff", d], 30)
			else:
				img = d + ".img"
				with open(img, "wb") as f:
					f.truncate(EXT4_BYTES)
				mounts.run(["mkfs.ext4", "-q", "-F", img], t(120))
				if kind == "ext4-nouuid":
					mounts.run(["tune2fs", "-U", "clear", img], t(60))
				mounts.run(["mount", "-o", "loop", img, d], t(30))
			self.mounted.append(d)
			self.roots[kind] = d
		return self.roots[kind]

	def close(self):
		for d in reversed(self.mounted):
			mounts.umount(d)


class Rootless:
	"""What the rootless runs need from root, made once: a copy of the binary and of these
	scripts the namespace's ids can read and run, a 0666 FUSE device node bind-mounted over
	/dev/fuse in this run's own mount namespace only (where the device is root's only), and per
	filesystem a directory owned by the namespace's root."""

	def __init__(self, opts, base):
		self.opts, self.base = opts, base
		self.tools = os.path.join(base, "tools")
		os.mkdir(self.tools)
		here = os.path.dirname(os.path.abspath(__file__))
		for n in os.listdir(here):
			if n.endswith(".py"):
				shutil.copy(os.path.join(here, n), self.tools)
		self.binary = os.path.join(self.tools, os.path.basename(opts.binary))
		if not opts.kernel_self_check:
			shutil.copy(opts.binary, self.binary)
			os.chmod(self.binary, 0o755)
		# The system's python: one under /root (pyenv) is out of the namespace's reach.
		self.python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
		self.fuse_bound = False
		st = os.stat("/dev/fuse")
		if st.st_mode & 0o006 != 0o006:
			node = os.path.join(base, "fuse-dev")
			os.mknod(node, stat.S_IFCHR | 0o666, st.st_rdev)
			os.chmod(node, 0o666)
			mounts.run(["mount", "--bind", node, "/dev/fuse"], t(10))
			self.fuse_bound = True

	def dir_on(self, fsroot):
		d = os.path.join(fsroot, "rootless")
		if not os.path.isdir(d):
			os.mkdir(d, 0o755)
			os.chown(d, ROOTLESS_ID, ROOTLESS_ID)
		return d

	def run(self, fs, fsroot, seeds, deadline, shrink_share):
		"""Runs `seeds` in a user namespace (differential.py --inside-userns); its lines are
		printed as they are. Returns (passed, failed)."""
		o = self.opts
		argv = [self.python, "-B", os.path.join(self.tools, "differential.py"), self.binary,
			"--inside-userns", self.dir_on(fsroot), "--fs", fs, "--users", "rootless",
			"--ops", str(o.ops), "--shrink-time", str(o.shrink_time),
			"--shrink-total", "%.0f" % max(shrink_share, 0), "--relax", ",".join(o.relax),
			"--binary-opts", o.binary_opts]
		argv += (["--sanitizer"] if o.sanitizer else []) + (["-v"] if o.verbose else [])
		argv += (["--no-lower-hardlinks"] if o.no_lower_hardlinks else [])
		argv += (["--kernel-self-check"] if o.kernel_self_check else [])
		if o.replay:
			copy = os.path.join(self.tools, "replay-" + os.path.basename(o.replay))
			shutil.copy(o.replay, copy)
			argv += ["--replay", copy]
		for seed in seeds:
			argv += ["--seed", str(seed)]
		log = os.path.join(self.base, "rootless-%s.out" % fs)
		os.environ["PLYFS_IT_TIMEOUT"] = str(max(int(deadline - time.monotonic()) + 90, 91))
		sys.stdout.flush()
		rc = rootless_ns.run(ROOTLESS_ID, ROOTLESS_COUNT, argv, stdout_path=log)
		with open(log) as f:
			lines = f.read().splitlines()
		summary = re.match(r"(\d+) passed, (\d+) failed$", lines[-1]) if lines else None
		for line in lines[:-1] if summary else lines:
			print(line)
		if not summary:
			print("FAIL diff/%s/rootless: the run in the user namespace exited %d without "
			      "a summary" % (fs, rc))
			return 0, 1
		return int(summary.group(1)), int(summary.group(2))

	def close(self):
		if self.fuse_bound:
			mounts.umount("/dev/fuse")


def main(argv):
	opts = parse_args(argv)
	if os.environ.get("PLYFS_IT_NS") != "1":
		print("differential.py: start me through diff.sh (private mount namespace)",
		      file=sys.stderr)
		return 2
	if not opts.kernel_self_check and not os.access(opts.binary, os.X_OK):
		print("differential.py: %s is not an executable" % opts.binary, file=sys.stderr)
		print("0 passed, 1 failed")
		return 1
	if opts.sanitizer:
		mounts.SCALE = 3.0
	global KERNEL_OPTS
	KERNEL_OPTS = opts.kernel_opts
	SHRINK_LEFT[0] = opts.shrink_total
	signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Interrupted()))
	deadline = time.monotonic() + float(os.environ.get("PLYFS_IT_TIMEOUT", "1800")) - 90
	os.umask(0o022)
	if opts.inside_userns:
		return inside_userns(opts, deadline)
	base = tempfile.mkdtemp(prefix="plyfs-diff.", dir=os.environ.get("TMPDIR", "/tmp"))
	os.chmod(base, 0o755)	# the rootless runs reach their directories through it
	if not opts.disk:
		mounts.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "plyfs-diff", base],
			   30)
	seeds = opts.seed or list(range(opts.start, opts.start + opts.seeds))
	passed = failed = 0
	t_all = time.monotonic()
	fss, rootless = Filesystems(base), None
	try:
		if opts.replay and opts.combos[0][1] == "root":
			fs = opts.combos[0][0]
			out = replay(opts, base if fs == "tmpfs" else fss.root(fs))
			passed, failed = (0, 1) if out.errs else (1, 0)
			seeds = []
		elif opts.replay:	# rootless: in the namespace, as the seeds are
			seeds = [1]
		here = [x for x in seeds if combo_of(opts, x)[1] == "root"]
		p, f = run_seeds(opts, lambda x: fss.root(combo_of(opts, x)[0]), here, deadline)
		passed, failed = passed + p, failed + f
		batches = [(fs, [x for x in seeds if combo_of(opts, x) == (fs, "rootless")])
			   for fs in opts.fs]
		batches = [b for b in batches if b[1]]
		for i, (fs, there) in enumerate(batches):
			if rootless is None:
				rootless = Rootless(opts, base)
			# The minimizing budget left, shared among the runs still to come.
			t0 = time.monotonic()
			p, f = rootless.run(fs, fss.root(fs), there, deadline,
					    SHRINK_LEFT[0] / (len(batches) - i))
			SHRINK_LEFT[0] -= min(time.monotonic() - t0, SHRINK_LEFT[0] / (len(batches) - i))
			passed, failed = passed + p, failed + f
	except (Interrupted, KeyboardInterrupt):
		print("interrupted", file=sys.stderr)
		failed += 1
	finally:
		mounts.cleanup_all()
		if rootless:
			rootless.close()
		fss.close()
		if not opts.disk:
			mounts.umount(base)
		shutil.rmtree(base, ignore_errors=True)
	if opts.verbose:
		print("# total %.1fs" % (time.monotonic() - t_all))
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


def inside_userns(opts, deadline):
	"""The rootless half, as root of the user namespace Rootless.run made: the layers with
	user.overlay.* xattrs, kernel overlayfs with userxattr, the binary with redirect_dir=nofollow
	(see ROOTLESS_KERNEL_OPTS)."""
	global KERNEL_OPTS
	KERNEL_OPTS = ROOTLESS_KERNEL_OPTS
	diffops.OVERLAY_XATTR_NS = "user"
	opts.binary_opts = ",".join(x for x in (ROOTLESS_BINARY_OPTS, opts.binary_opts) if x)
	opts.relax = sorted(set(opts.relax) | set(ROOTLESS_RELAX))
	base = tempfile.mkdtemp(prefix="run.", dir=opts.inside_userns)
	passed = failed = 0
	try:
		if opts.replay:
			failed = bool(replay(opts, base).errs)
			passed = 1 - failed
		else:
			passed, failed = run_seeds(opts, lambda x: base, opts.seed, deadline)
	except (Interrupted, KeyboardInterrupt):
		print("interrupted", file=sys.stderr)
		failed += 1
	finally:
		mounts.cleanup_all()
		shutil.rmtree(base, ignore_errors=True)
	print("%d passed, %d failed" % (passed, failed))
	return 0 if failed == 0 else 1


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
