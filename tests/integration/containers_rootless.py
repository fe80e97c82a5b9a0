# SPDX-License-Identifier: GPL-2.0-or-later
"""containers_rootless.py - rootless podman with plyfs as the mount program.

A system user (USER, created when missing, kept for the next runs) with subordinate id ranges
in /etc/subuid and /etc/subgid (added when missing, after every range already there) runs
podman with its own Engine under the run's directory. Rootless podman mounts the container's
root filesystem inside its user namespace: plyfs runs there as uid 0 of that namespace and
opens /dev/fuse itself, which is 0600 on these machines: a 0666 node of it is bind-mounted over
/dev/fuse in this run's mount namespace only. The test is the scenario of containers_scenario.py
(a rename of a lower directory is issue 11 item 2) through podman run, commit and a run of the
committed image.
"""

import os
import pwd
import shutil
import stat
import subprocess

import containers_env
import containers_scenario as sc
import containers_tests
import mounts
from mounts import Failure

USER = "plyfs-ci"
RANGE = 65536


def _ranges(path):
	out = []
	try:
		lines = open(path).read().splitlines()
	except FileNotFoundError:
		return out
	for line in lines:
		f = line.split(":")
		if len(f) == 3 and f[1].isdigit() and f[2].isdigit():
			out.append((f[0], int(f[1]), int(f[2])))
	return out


def ensure_user(notes, user=USER, size=RANGE):
	"""Creates `user` and its subordinate ranges of `size` ids when missing."""
	try:
		pwd.getpwnam(user)
	except KeyError:
		mounts.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			    "--shell", "/usr/sbin/nologin", user], 60)
		notes.append("created the system user %s" % user)
	for path, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
		ranges = _ranges(path)
		if any(r[0] == user for r in ranges):
			continue
		end = max([165536] + [s + n for _, s, n in ranges])
		start = -(-end // RANGE) * RANGE
		mounts.run(["usermod", flag, "%d-%d" % (start, start + size - 1), user], 60)
		notes.append("gave %s the range %d-%d in %s" % (user, start, start + size - 1, path))


def open_fuse(ctx):
	"""A 0666 /dev/fuse in this mount namespace (bind-mounted node), when it is root's only."""
	st = os.stat("/dev/fuse")
	if st.st_mode & 0o006 == 0o006:
		return
	node = os.path.join(ctx.work, "fuse-dev")
	if not os.path.exists(node):
		os.mknod(node, stat.S_IFCHR | 0o666, st.st_rdev)
	os.chmod(node, 0o666)
	mounts.run(["mount", "--bind", node, "/dev/fuse"], 30)
	mounts.ACTIVE.append(mounts.BindMount("/dev/fuse"))


def _user_can_run(user, path):
	cp = subprocess.run(["setpriv", "--reuid=" + user, "--regid=" + user, "--clear-groups",
			     "test", "-x", path], stdin=subprocess.DEVNULL, timeout=60)
	return cp.returncode == 0


def rootless_commit(ctx):
	"""As USER: the scenario in a rootless podman container on plyfs, commit, and the
	committed image run: every change survived."""
	ensure_user(ctx.notes)
	open_fuse(ctx)
	binary = ctx.e.binary
	if not _user_can_run(USER, binary):
		# The clone may sit where the user cannot reach it (/root/...): run a copy.
		binary = os.path.join(ctx.work, "plyfs-rootless")
		shutil.copy2(ctx.e.binary, binary)
		os.chmod(binary, 0o755)
		ctx.notes.append("%s cannot reach the binary: it runs a copy" % USER)
	d = os.path.join(ctx.work, "rootless")
	os.makedirs(d, mode=0o755, exist_ok=True)
	rootfs = os.path.join(d, "rootfs.tar")
	shutil.copy(ctx.rootfs, rootfs)
	deb = os.path.join(d, os.path.basename(ctx.deb))
	shutil.copy(ctx.deb, deb)
	e = containers_env.Engine(os.path.join(d, "engine"), binary, user=USER)
	os.chmod(rootfs, 0o644)
	os.chmod(deb, 0o644)
	ctx.rootless = e
	containers_tests.make_images(e, rootfs)
	sub = containers_tests.Ctx(e, deb, ctx.version, d)
	errs = containers_tests.podman_commit(sub)
	ctx.notes += sub.notes
	return errs


def cleanup(ctx):
	e = getattr(ctx, "rootless", None)
	if e is None:
		return []
	msgs = e.cleanup()
	e.stop_pause()
	return msgs


TESTS = [("containers/rootless_commit", rootless_commit)]
