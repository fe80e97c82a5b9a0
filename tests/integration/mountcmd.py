# SPDX-License-Identifier: GPL-2.0-or-later
"""mountcmd.py - plyfs started by mount(8) from a private fstab file, and a daemonized plyfs with
many relative, symlinked layers (issue 11's fstab and lowerdir tests; group lifecycle/).

fstab: `mount -T FILE MNT` and `mount --fstab FILE MNT` read a line of type fuse.plyfs with the
options `defaults,noauto,nofail,x-systemd.requires=foo,allow_other` and the layers; mount(8) runs
mount.fuse3, which runs `plyfs SOURCE MNT -o ...` through /bin/sh with mount(8)'s sanitized
environment (no PATH: the shell's default path). So the binary is found as `plyfs` in
/usr/local/sbin, the first directory of that path: a directory holding only a `plyfs` symlink to
the binary under test is bind-mounted there, in the run's private mount namespace only, and
unmounted by the test's cleanup. After `umount MNT` the daemon (found by its exe and its
mountpoint argument) must be gone within a bounded wait, with status 0.

Layers: 120 lower layers given as paths relative to a working directory that is not the layers'
parent (`../../links/lNNN`), each a symlink (relative and absolute targets alternate) to the real
directory; upperdir, workdir and the mount point relative too. The daemonizing form chdirs to /
once detached (checked through /proc/PID/cwd), so every path must have been resolved before.
"""

import os
import subprocess
import uuid

import lifecycle
import mounts
from mounts import Failure, t

FSTAB_OPTS = "defaults,noauto,nofail,x-systemd.requires=foo,allow_other"
SBIN = "/usr/local/sbin"
N_LAYERS = 120


def binary_as_plyfs(ctx):
	"""Bind-mounts a directory holding `plyfs` -> the binary over SBIN (our namespace only)."""
	if not os.path.isdir(SBIN):
		raise Failure("%s does not exist: mount(8) finds the helper's program there" % SBIN)
	d = ctx.path("sbin")
	os.makedirs(d)
	os.symlink(os.path.realpath(ctx.opts.binary), os.path.join(d, "plyfs"))
	mounts.run(["mount", "--bind", d, SBIN], t(10))
	ctx.track(mounts.BindMount(SBIN))


def fstab_form(flag):
	def test(ctx):
		lifecycle.two_lowers(ctx)
		binary_as_plyfs(ctx)
		mnt = ctx.path("mnt-" + uuid.uuid4().hex[:12])
		os.makedirs(mnt)
		source = "src-" + uuid.uuid4().hex[:12]
		fstab = ctx.path("fstab")
		opts = "%s,lowerdir=%s:%s,upperdir=%s,workdir=%s" % (
			FSTAB_OPTS, ctx.path("l0"), ctx.path("l1"), ctx.path("u"), ctx.path("w"))
		lifecycle.write(fstab, "# private fstab of %s\n%s  %s  fuse.plyfs  %s  0  0\n"
				% (ctx.dir, source, mnt, opts))
		h = ctx.track(lifecycle.DaemonHandle(ctx, mnt, mnt))
		with open(os.path.join(ctx.logdir, "daemon.log"), "ab") as log:
			cp = subprocess.run(["mount", flag, fstab, mnt], cwd="/", stdin=subprocess.DEVNULL,
					    stdout=log, stderr=log, env=ctx.env(), timeout=t(20))
		if cp.returncode != 0:
			raise Failure("mount %s FILE MNT exited %d: %s"
				      % (flag, cp.returncode, h.log_tail()))
		ent = lifecycle.mount_entry(mnt)
		if ent != ("fuse.plyfs", source):
			raise Failure("mountinfo of %s: %r, expected ('fuse.plyfs', %r)"
				      % (mnt, ent, source))
		h.find()
		h.dev = mounts.mount_dev(mnt)
		errs = []
		with mounts.Watchdog(t(30), [h]):
			errs += lifecycle.check_read(os.path.join(mnt, "f"), "top")
			lifecycle.write(os.path.join(mnt, "new"), "written")
			errs += lifecycle.check_read(ctx.path("u/new"), "written")
			errs += lifecycle.settle(h)
		mounts.run(["umount", mnt], t(10))
		return errs + lifecycle.expect_stop(h, "umount", t(10))
	return test


def symlinked_relative_layers(ctx):
	"""N_LAYERS symlinked lowers, upper, work and mount point relative to cwd/sub, daemonized."""
	names = []
	for i in range(N_LAYERS):
		lifecycle.write(ctx.path("real/d%03d/f%03d" % (i, i)), "layer %d\n" % i)
		target = ("../real/d%03d" % i) if i % 2 == 0 else ctx.path("real/d%03d" % i)
		os.makedirs(ctx.path("links"), exist_ok=True)
		os.symlink(target, ctx.path("links/l%03d" % i))
		names.append("../../links/l%03d" % i)
	lifecycle.write(ctx.path("real/d000/same"), "top")
	lifecycle.write(ctx.path("real/d%03d/same" % (N_LAYERS - 1)), "bottom")
	rel = "mnt-" + uuid.uuid4().hex[:12]
	for d in ("u", "w", rel, "cwd/sub"):
		os.makedirs(ctx.path(d))
	opts = "lowerdir=%s,upperdir=../../u,workdir=../../w" % ":".join(names)
	mnt = ctx.path(rel)
	h = ctx.track(lifecycle.DaemonHandle(ctx, mnt, "../../" + rel))
	with open(os.path.join(ctx.logdir, "daemon.log"), "ab") as log:
		cp = subprocess.run([ctx.opts.binary, "-o", opts, "../../" + rel],
				    cwd=ctx.path("cwd/sub"), stdin=subprocess.DEVNULL, stdout=log,
				    stderr=log, env=ctx.env(), timeout=t(30))
	if cp.returncode != 0:
		raise Failure("the daemonizing form exited %d: %s" % (cp.returncode, h.log_tail()))
	if not mounts.mounted_at(mnt):
		raise Failure("exit status 0 but %s is not mounted" % mnt)
	h.find()
	h.dev = mounts.mount_dev(mnt)
	errs = []
	cwd = os.readlink("/proc/%d/cwd" % h.pid)
	if cwd != "/":
		errs.append("the daemon's cwd is %s, expected / (it detaches from the caller's)" % cwd)
	with mounts.Watchdog(t(60), [h]):
		got = set(os.listdir(mnt))
		want = {"f%03d" % i for i in range(N_LAYERS)} | {"same"}
		if got != want:
			errs.append("mount root: missing %r, extra %r"
				    % (sorted(want - got)[:5], sorted(got - want)[:5]))
		for i in range(N_LAYERS):
			if "f%03d" % i in got:
				errs += lifecycle.check_read(os.path.join(mnt, "f%03d" % i),
							     "layer %d\n" % i)
		errs += lifecycle.check_read(os.path.join(mnt, "same"), "top")
		lifecycle.write(os.path.join(mnt, "new"), "upper")
		errs += lifecycle.check_read(ctx.path("u/new"), "upper")
		errs += lifecycle.settle(h)
	mounts.run(["umount", mnt], t(10))
	return errs + lifecycle.expect_stop(h, "umount", t(10))


TESTS = [
	("fstab_mount_T", fstab_form("-T")),
	("fstab_mount_fstab", fstab_form("--fstab")),
	("symlinked_relative_layers_daemonized", symlinked_relative_layers),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("lifecycle", TESTS, lifecycle.Ctx)
