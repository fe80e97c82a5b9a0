# SPDX-License-Identifier: GPL-2.0-or-later
"""workdir_lock.py - one mount per workdir (workdir.h): a second plyfs on the same upperdir and
workdir is refused, on another mount point, stacked on the same one, or started at the same time
as the first, with a message naming the live mount (its mount point and pid) and exit status 1,
before it touches workdir/work (a marker file put there under the live mount survives); the live
mount keeps working, copy-up included. A daemon killed with SIGKILL leaves its lock file behind,
but the kernel released its lock: the next mount succeeds. Kernel overlayfs (index=on) refuses a
second mount of an upper/workdir too ("already mounted", EBUSY).

The refused starts use the daemonizing form, so that a binary that wrongly accepts them returns
and leaves a mount that the test finds (by a unique x-* option in its argv) and removes.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

import lifecycle
import mounts
from mounts import Failure, t

ROUNDS = 4	# concurrent starts

_libc = ctypes.CDLL(None, use_errno=True)
UMOUNT_NOFOLLOW = 8


def umount_syscall(mnt):
	"""umount2(2) itself: umount(8) stats the mount point first, which waits for a stopped
	daemon; the kernel's unmount of a FUSE mount does not."""
	if _libc.umount2(os.fsencode(mnt), UMOUNT_NOFOLLOW) != 0:
		e = ctypes.get_errno()
		raise Failure("umount2(%s): %s" % (mnt, os.strerror(e)))


class Ctx(lifecycle.Ctx):
	GROUP = "workdir_lock"


def layers(ctx):
	lifecycle.two_lowers(ctx)
	os.makedirs(ctx.path("mnt2"))


def opts(ctx, tag=None):
	"""The -o string of every mount of the test's layers; `tag` (an x-* option, ignored by
	plyfs) makes a daemon's argv unique, so that it can be found by it."""
	o = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (ctx.path("l0"), ctx.path("l1"),
							ctx.path("u"), ctx.path("w"))
	return o + (",x-" + tag if tag else "")


def start_daemonized(ctx, mnt, tag):
	"""BINARY -o OPTS MNT in the daemonizing form; returns (Popen, its DaemonHandle, whose
	cleanup removes whatever mount it made)."""
	o = opts(ctx, tag)
	h = ctx.track(lifecycle.DaemonHandle(ctx, mnt, o))
	p = subprocess.Popen([ctx.opts.binary, "-o", o, mnt], stdin=subprocess.DEVNULL,
			     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.env())
	return p, h


def finish(p):
	"""(exit status, stderr) of a daemonizing start, bounded."""
	try:
		_, err = p.communicate(timeout=t(15))
	except subprocess.TimeoutExpired:
		p.kill()
		_, err = p.communicate()
		return None, "did not return within %.0fs" % t(15)
	return p.returncode, err.decode(errors="replace").strip()


def take_over(h):
	"""A start that wrongly succeeded: its daemon is looked up, so that cleanup stops it."""
	if h.pid is None and mounts.mounted_at(h.mnt):
		try:
			h.find()
		except Failure:
			pass


def untrack(ctx, h):
	"""A refused start's handle: its cleanup must not unmount the live mount on the same path."""
	ctx.handles.remove(h)
	if h in mounts.ACTIVE:
		mounts.ACTIVE.remove(h)


def refused(ctx, mnt, tag, live_mnt, live_pid, what):
	"""Starts a second mount of the same layers on `mnt` and checks it is refused: status 1, a
	message that names the live mount's mount point and pid, nothing mounted on `mnt` by it."""
	before = mounts.mounts()
	p, h = start_daemonized(ctx, mnt, tag)
	rc, err = finish(p)
	if mounts.mounts() == before:
		untrack(ctx, h)
	errs = []
	if rc != 1:
		errs.append("%s: exit status %r, expected 1 (refused); stderr %r" % (what, rc, err[:300]))
	for needle in (live_mnt, "pid %d" % live_pid):
		if needle not in err:
			errs.append("%s: the message %r does not name %r" % (what, err[:300], needle))
	if mounts.mounts() != before:
		errs.append("%s: the mounts changed" % what)
		take_over(h)
	return errs


def check_live(ctx, mnt, n):
	"""The live mount still works: a new file, and a copy-up of the lower file f (built in
	workdir/work)."""
	errs = []
	try:
		lifecycle.write(os.path.join(mnt, "new%d" % n), "new %d\n" % n)
		errs += lifecycle.check_read(os.path.join(mnt, "new%d" % n), "new %d\n" % n)
		with open(os.path.join(mnt, "f"), "a") as f:
			f.write(" %d" % n)
		errs += lifecycle.check_read(ctx.path("u/f"), lifecycle.read(os.path.join(mnt, "f")))
	except OSError as e:
		errs.append("the live mount after a refused second mount: %s" % e)
	return errs


def marker(ctx):
	"""A file in workdir/work under a live mount: a second start must not remove it."""
	lifecycle.write(ctx.path("w/work/marker"), "the live mount's\n")


def check_marker(ctx, what):
	if os.path.exists(ctx.path("w/work/marker")):
		return []
	return ["%s emptied workdir/work under the live mount" % what]


def other_mountpoint(ctx):
	"""A second mount of the same upperdir and workdir on another mount point: refused."""
	layers(ctx)
	mnt = ctx.path("mnt")
	h = lifecycle.start_foreground(ctx, ["-o", opts(ctx), mnt], mnt)
	with mounts.Watchdog(t(60), [h]):
		marker(ctx)
		errs = refused(ctx, ctx.path("mnt2"), "second", mnt, h.proc.pid, "a second mount")
		errs += check_marker(ctx, "a second mount")
		errs += check_live(ctx, mnt, 0)
		errs += lifecycle.settle(h)
	return errs


def stacked(ctx):
	"""A second mount of the same layers stacked on the live mount's own mount point."""
	layers(ctx)
	mnt = ctx.path("mnt")
	h = lifecycle.start_foreground(ctx, ["-o", opts(ctx), mnt], mnt)
	with mounts.Watchdog(t(60), [h]):
		marker(ctx)
		errs = refused(ctx, mnt, "stacked", mnt, h.proc.pid, "a stacked mount")
		errs += check_marker(ctx, "a stacked mount")
		errs += check_live(ctx, mnt, 0)
		errs += lifecycle.settle(h)
	return errs


def concurrent(ctx):
	"""Two starts at the same time on two mount points, ROUNDS times: exactly one mounts, the
	other is refused naming it; the winner works and a third start is refused without touching
	its workdir/work; then the winner is unmounted and the next round starts afresh."""
	layers(ctx)
	errs = []
	mnts = [ctx.path("mnt"), ctx.path("mnt2")]
	for r in range(ROUNDS):
		started = [start_daemonized(ctx, m, "r%d-%d" % (r, i)) for i, m in enumerate(mnts)]
		results = [finish(p) for p, _ in started]
		handles = [h for _, h in started]
		for h in handles:
			take_over(h)
		winners = [i for i, (rc, _) in enumerate(results) if rc == 0]
		if len(winners) != 1:
			errs.append("round %d: %d of 2 concurrent starts mounted; %r"
				    % (r, len(winners), [(rc, e[:200]) for rc, e in results]))
			break
		w, loser = winners[0], 1 - winners[0]
		rc, err = results[loser]
		win = handles[w]
		# Named by its mount point (the pid may be the one before it forked).
		if rc != 1 or "plyfs mount on '%s' (pid " % mnts[w] not in err:
			errs.append("round %d: the other start: status %r, message %r (expected 1 naming "
				    "%s)" % (r, rc, err[:300], mnts[w]))
		if mounts.mounted_at(mnts[loser]):
			errs.append("round %d: the refused start left a mount" % r)
		else:
			untrack(ctx, handles[loser])
		win.dev = mounts.mount_dev(mnts[w])
		with mounts.Watchdog(t(60), handles):
			marker(ctx)
			errs += refused(ctx, mnts[loser], "third%d" % r, mnts[w], win.pid,
					"round %d: a third start" % r)
			errs += check_marker(ctx, "round %d: a third start" % r)
			errs += check_live(ctx, mnts[w], r)
			errs += lifecycle.settle(win)
		for h in handles:
			errs += h.cleanup()
		if errs:
			break
	return errs


def after_sigkill(ctx):
	"""The holder killed with SIGKILL: its lock file stays, naming it, but the next mount of
	the workdir (on another mount point) succeeds, works, and is named in the file."""
	layers(ctx)
	mnt, mnt2 = ctx.path("mnt"), ctx.path("mnt2")
	h = lifecycle.start_foreground(ctx, ["-o", opts(ctx), mnt], mnt)
	with mounts.Watchdog(t(60), [h]):
		errs = check_live(ctx, mnt, 0)
		errs += lifecycle.settle(h)
	h.proc.kill()
	h.proc.wait(timeout=t(10))
	stale = lifecycle.read(ctx.path("w/plyfs-lock"))
	if str(h.proc.pid) not in stale:
		errs.append("the lock file of the killed daemon reads %r, not its pid" % stale)
	p, h2 = start_daemonized(ctx, mnt2, "after-kill")
	rc, err = finish(p)
	if rc != 0:
		return errs + ["the mount after SIGKILL of the holder: status %r: %s" % (rc, err[:300])]
	h2.find()
	h2.dev = mounts.mount_dev(mnt2)
	with mounts.Watchdog(t(60), [h2]):
		errs += check_live(ctx, mnt2, 1)
		now = lifecycle.read(ctx.path("w/plyfs-lock"))
		if now != "%d mounted %s %s\n" % (h2.pid, h2.dev, mnt2):
			errs.append("the lock file reads %r under the new mount (pid %d)" % (now, h2.pid))
		errs += lifecycle.settle(h2)
	return errs


def remount_cycles(ctx):
	"""umount then mount again at once, 5 times (the daemonizing form): the new mount waits for
	the old daemon, still saving its handle store, instead of being refused."""
	layers(ctx)
	mnt = ctx.path("mnt")
	errs = []
	for i in range(5):
		p, h = start_daemonized(ctx, mnt, None if i == 0 else "cycle%d" % i)
		rc, err = finish(p)
		if rc != 0:
			return errs + ["mount %d right after umount: status %r: %s" % (i, rc, err[:300])]
		h.find()
		h.dev = mounts.mount_dev(mnt)
		with mounts.Watchdog(t(60), [h]):
			errs += check_live(ctx, mnt, i)
			errs += lifecycle.settle(h)
		mounts.run(["umount", mnt], t(10))
	return errs


def remount_while_stopping(ctx):
	"""The old daemon held (SIGSTOP) once unmounted, as if still saving its store: a new mount
	of the workdir waits for it instead of being refused (its record says mounted, but its
	mount is gone from its mountinfo), and mounts once the old daemon has exited."""
	layers(ctx)
	mnt = ctx.path("mnt")
	p, old = start_daemonized(ctx, mnt, "old")
	rc, err = finish(p)
	if rc != 0:
		raise Failure("first mount: status %r: %s" % (rc, err[:300]))
	old.find()
	old.dev = mounts.mount_dev(mnt)
	with mounts.Watchdog(t(60), [old]):
		errs = check_live(ctx, mnt, 0) + lifecycle.settle(old)
	os.kill(old.pid, signal.SIGSTOP)
	try:
		umount_syscall(mnt)
		p, new = start_daemonized(ctx, mnt, "new")
		time.sleep(1.0)
		if p.poll() is not None:
			rc, err = finish(p)
			return errs + ["a mount while the old daemon was still stopping returned at "
				       "once (status %r: %s) instead of waiting for it" % (rc, err[:300])]
	finally:
		os.kill(old.pid, signal.SIGCONT)
	if not lifecycle.wait_for(lambda: not old.running(), t(15)):
		errs.append("the old daemon did not exit after SIGCONT")
	rc, err = finish(p)
	if rc != 0:
		return errs + ["the mount after the old daemon exited: status %r: %s" % (rc, err[:300])]
	new.find()
	new.dev = mounts.mount_dev(mnt)
	with mounts.Watchdog(t(60), [new]):
		errs += check_live(ctx, mnt, 1) + lifecycle.settle(new)
	return errs


TESTS = [
	("second_mount_other_mountpoint", other_mountpoint),
	("second_mount_stacked", stacked),
	("concurrent_starts", concurrent),
	("next_mount_after_sigkill", after_sigkill),
	("remount_cycles", remount_cycles),
	("remount_while_old_daemon_stops", remount_while_stopping),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("workdir_lock", TESTS, Ctx)


if __name__ == "__main__":
	print("workdir_lock.py: a module of harness.py", file=sys.stderr)
	sys.exit(2)
