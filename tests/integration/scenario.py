# SPDX-License-Identifier: GPL-2.0-or-later
"""scenario.py - one scenario: build the layers, copy them for the kernel oracle, mount both,
compare, run the scenario's own checks, unmount, collect sanitizer reports."""

import os
import shutil
import time

import compare
import layerspec
import mounts
import probes
from mounts import Failure, t


class Scenario:
	"""lowers: list of layer specs, top first (or a callable(ctx) returning (lowers, upper));
	upper: a layer spec, or None for a read-only mount with lowers only;
	userxattr: the kernel oracle reads user.overlay.* (its `userxattr` option);
	tmpfs: names of layers ("lower0", "upper", ...) put on a tmpfs of their own;
	light: directories whose direct entries are compared by name and type only;
	before/checks: callables(ctx) run after mounting, before and after the compare walk,
	returning lists of problems; daemonize: use the daemonizing form of the binary."""

	def __init__(self, name, lowers, upper=None, userxattr=False, tmpfs=(), light=(),
		     before=(), checks=(), daemonize=False, walk_timeout=60, doc=""):
		self.name, self.lowers, self.upper = name, lowers, upper
		self.userxattr, self.tmpfs, self.light = userxattr, set(tmpfs), light
		self.before, self.checks, self.daemonize = before, checks, daemonize
		self.walk_timeout, self.doc = walk_timeout, doc


class Ctx:
	def __init__(self, base, opts):
		self.base = base			# this scenario's own temp dir
		self.opts = opts			# the harness options (binary, sanitizer, relax)
		self.p = os.path.join(base, "p")	# layers as given to the binary
		self.k = os.path.join(base, "k")	# the kernel's converted copy
		self.pm = os.path.join(base, "pm")	# binary mountpoint
		self.km = os.path.join(base, "km")	# kernel mountpoint
		self.sentinel = os.path.join(base, "sentinel")	# outside every layer
		self.state = {}
		self.tmpfs_mounts = []
		self.timing = []	# (phase, seconds), shown with -v
		self.notes = []		# printed under the test's result line
		self._t0 = time.monotonic()

	def phase(self, name):
		now = time.monotonic()
		self.timing.append((name, now - self._t0))
		self._t0 = now


def _layer_names(n_lower, has_upper):
	return ["lower%d" % i for i in range(n_lower)] + (["upper"] if has_upper else [])


def _build(sc, ctx):
	lowers, upper = sc.lowers(ctx) if callable(sc.lowers) else (sc.lowers, sc.upper)
	specs = dict(zip(_layer_names(len(lowers), upper is not None), list(lowers) + [upper]))
	for d in (ctx.p, ctx.k, ctx.pm, ctx.km):
		os.makedirs(d)
	kc = layerspec.KernelCopy(b"user.overlay.opaque" if sc.userxattr else b"trusted.overlay.opaque")
	try:
		for name, spec in specs.items():
			src, dst = os.path.join(ctx.p, name), os.path.join(ctx.k, name)
			os.mkdir(src)
			os.mkdir(dst)
			if name in sc.tmpfs:
				mounts.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs", src], 30)
				ctx.tmpfs_mounts.append(src)
			layerspec.build_layer(src, spec or {})
			kc.copy(src, dst)
	finally:
		kc.close()
	if upper is not None:
		os.mkdir(os.path.join(ctx.p, "work"))
		os.mkdir(os.path.join(ctx.k, "work"))
	return len(lowers), upper is not None


def _layer_paths(root, n_lower, has_upper):
	lowers = [os.path.join(root, "lower%d" % i) for i in range(n_lower)]
	if not has_upper:
		return lowers, None, None
	return lowers, os.path.join(root, "upper"), os.path.join(root, "work")


def _compare(sc, ctx):
	kw = compare.walk(ctx.km, sc.light)
	if "root_nlink" in ctx.state:
		kw[b""].nlink = ctx.state["root_nlink"]
	ctx.phase("walk kernel")
	pw = compare.walk(ctx.pm, sc.light)
	ctx.phase("walk binary")
	relax = set(ctx.opts.relax)
	errs = compare.diff_records(kw, pw, relax)
	if "ino" not in relax:
		errs += compare.ino_partition_diff(kw, pw)
	ctx.state["walk_k"], ctx.state["walk_p"] = kw, pw
	return errs


def run(sc, ctx):
	"""Returns a list of problems; raises Failure for setup errors."""
	n_lower, has_upper = _build(sc, ctx)
	ctx.phase("build+copy")
	k_lowers, k_upper, k_work = _layer_paths(ctx.k, n_lower, has_upper)
	if n_lower == 1 and not has_upper:
		# Kernel overlayfs wants two lowers without an upper: add an empty one below. Only the
		# root changes (it becomes a merged dir, nlink 1); expect the real root's nlink instead.
		k_lowers.append(os.path.join(ctx.k, "empty"))
		os.mkdir(k_lowers[-1])
		ctx.state["root_nlink"] = os.stat(k_lowers[0]).st_nlink
	km = mounts.KernelMount(ctx.km, k_lowers, k_upper, k_work, userxattr=sc.userxattr)
	try:
		km.mount()
	except Failure:
		if not sc.userxattr:
			raise
		# A kernel that refuses `userxattr` here: the same oracle in the trusted format.
		for layer in k_lowers + ([k_upper] if k_upper else []):
			layerspec.retag_opaque(layer, b"user.overlay.opaque", b"trusted.overlay.opaque")
		km = mounts.KernelMount(ctx.km, k_lowers, k_upper, k_work)
		km.mount()
		ctx.notes.append("kernel refused userxattr: oracle uses trusted.overlay.opaque")
	d = mounts.Daemon(ctx.opts.binary, ctx.pm, *_layer_paths(ctx.p, n_lower, has_upper),
			  logdir=os.path.join(ctx.base, "log"), sanitizer=ctx.opts.sanitizer,
			  daemonize=sc.daemonize)
	errs = []
	try:
		d.start()
		ctx.phase("mount")
		with mounts.Watchdog(t(sc.walk_timeout), [d]):
			for fn in sc.before:
				errs += fn(ctx)
			errs += _compare(sc, ctx)
			errs += probes.statfs(ctx.km, ctx.pm)
			for fn in sc.checks:
				errs += fn(ctx)
			ctx.phase("checks")
	finally:
		errs += d.cleanup()
		msg = km.cleanup()
		if msg:
			errs.append(msg)
		ctx.phase("umount")
	if ctx.opts.sanitizer:
		errs += ["sanitizer report " + r for r in d.sanitizer_reports()]
	return errs


def teardown(ctx, keep):
	for m in reversed(ctx.tmpfs_mounts):
		mounts.umount(m)
	if not keep:
		shutil.rmtree(ctx.base, ignore_errors=True)
