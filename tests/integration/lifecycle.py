# SPDX-License-Identifier: GPL-2.0-or-later
"""lifecycle.py - the daemon's process lifecycle and command line: SIGTERM/SIGINT unmount (also
with relative paths), the daemonizing form, `umount -l` of a busy mount, `fusermount3 -u`, the
mount.fuse3 (fstab) form, 520 lower layers and a 64 KiB option string, st_ino across remounts,
--version/--help.

Each test works in its own directory under the run's base dir, registers every daemon and helper
process it starts in mounts.ACTIVE (so an exception still unmounts and kills them, by PID), and
bounds every wait. A daemon started in the daemonizing form is found by its /proc/PID/exe (the
binary's realpath) and a unique argument (its mountpoint) in /proc/PID/cmdline, never by a name
pattern. The caller's stdout/stderr being closed by the daemonizing form is checked by the
`daemonize` scenario (mounts.Daemon), not here.
"""

import os
import shutil
import signal
import subprocess
import time
import traceback
import uuid

import mounts
from mounts import Failure, t

# fstab-only options that the mount.fuse3 form must accept (mount.fuse3 drops some of them
# itself, the binary gets the rest).
FSTAB_OPTS = "nofail,_netdev,x-systemd.automount,noauto"


class Ctx:
	GROUP = "lifecycle"	# the test's directory is base/GROUP/NAME (subclasses set their own)

	def __init__(self, opts, base, name):
		self.opts = opts
		self.dir = os.path.join(base, self.GROUP, name)	# this test's own directory
		self.logdir = os.path.join(self.dir, "log")
		self.handles = []	# everything started, cleaned up newest first
		self.notes = []
		self.daemon = None	# the main DaemonHandle, where a group's helpers want one
		os.makedirs(self.logdir)

	def path(self, rel):
		return os.path.join(self.dir, rel)

	def env(self, path_prefix=None):
		"""The environment of every process started: sanitizer reports go to the log dir."""
		env = dict(os.environ)
		if self.opts.sanitizer:
			env["ASAN_OPTIONS"] = "log_path=%s/asan:detect_leaks=1" % self.logdir
			env["UBSAN_OPTIONS"] = ("log_path=%s/ubsan:print_stacktrace=1:"
						"halt_on_error=0" % self.logdir)
		if path_prefix:
			env["PATH"] = path_prefix + ":" + env.get("PATH", "/usr/bin:/bin")
		return env

	def track(self, h):
		mounts.ACTIVE.append(h)
		self.handles.append(h)
		return h

	def cleanup(self):
		problems = []
		for h in reversed(self.handles):
			problems += h.cleanup()
		return problems

	def sanitizer_reports(self):
		out = []
		for n in sorted(os.listdir(self.logdir)):
			if n.startswith(("asan", "ubsan")):
				with open(os.path.join(self.logdir, n), "rb") as f:
					out.append("sanitizer report %s:\n%s"
						   % (n, f.read()[:6000].decode(errors="replace")))
		return out


# --- /proc and mountinfo --------------------------------------------------------------------------

def mount_entry(mnt):
	"""(fstype, source) of the last mount on `mnt`, or None."""
	mnt, found = os.fsencode(mnt), None
	with open("/proc/self/mountinfo", "rb") as f:
		for line in f:
			fields = line.split()
			if mounts._unescape(fields[4]) == mnt:
				sep = fields.index(b"-")
				found = (fields[sep + 1].decode(),
					 mounts._unescape(fields[sep + 2]).decode(errors="replace"))
	return found


def daemon_pids(binary, arg):
	"""Running processes whose /proc/PID/exe is the binary and whose argv holds exactly
	`arg`."""
	real, arg, out = os.path.realpath(binary), os.fsencode(arg), []
	for d in os.listdir("/proc"):
		if not d.isdigit() or int(d) == os.getpid():
			continue
		try:
			# A binary replaced by a rebuild during the run reads "PATH (deleted)".
			if os.readlink("/proc/%s/exe" % d).removesuffix(" (deleted)") != real:
				continue
			with open("/proc/%s/cmdline" % d, "rb") as f:
				argv = f.read().split(b"\0")
		except OSError:
			continue
		if arg in argv and mounts.pid_state(int(d)) == "running":
			out.append(int(d))
	return out


def wait_for(pred, timeout, step=0.02):
	end = time.monotonic() + timeout
	while True:
		if pred():
			return True
		if time.monotonic() > end:
			return False
		time.sleep(step)


def exit_problem(rc, what):
	if rc is None or rc == 0:
		return []
	if rc < 0:
		return ["daemon killed by signal %d after %s" % (-rc, what)]
	return ["daemon exited with status %d after %s (expected 0)" % (rc, what)]


# --- processes we own -----------------------------------------------------------------------------

class DaemonHandle:
	"""A daemon on `mnt` (absolute): `proc` when it is our child (-f), else `pid` once found
	by daemon_pids(binary, ident). cleanup() unmounts, waits for the exit, kills by PID if
	needed."""

	def __init__(self, ctx, mnt, ident):
		self.ctx, self.mnt, self.ident = ctx, mnt, ident
		self.proc, self.pid, self.dev, self.status = None, None, None, None

	def running(self):
		if self.proc is not None:
			return self.proc.poll() is None
		if self.pid is None:
			return False
		try:
			got, st = os.waitpid(self.pid, os.WNOHANG)	# ours when we are PID 1
			if got == self.pid:
				self.status = os.waitstatus_to_exitcode(st)
				return False
		except ChildProcessError:
			pass
		return mounts.pid_state(self.pid) == "running"

	def find(self):
		pids = daemon_pids(self.ctx.opts.binary, self.ident)
		if len(pids) != 1:
			raise Failure("expected exactly one daemon process with exe %s and "
				      "argument %s, found %r"
				      % (os.path.realpath(self.ctx.opts.binary), self.ident, pids))
		self.pid = pids[0]

	def returncode(self):
		return self.proc.returncode if self.proc is not None else self.status

	def log_tail(self):
		try:
			with open(os.path.join(self.ctx.logdir, "daemon.log"), "rb") as f:
				return f.read()[-1000:].decode(errors="replace").strip()
		except OSError:
			return ""

	def sigkill(self):
		if self.running():
			try:
				os.kill(self.proc.pid if self.proc else self.pid, signal.SIGKILL)
			except ProcessLookupError:
				pass

	def kill(self):
		"""Watchdog: abort the connection, SIGKILL by PID, lazy unmount."""
		mounts.fuse_abort(self.dev)
		self.sigkill()
		mounts.run(["umount", "-l", self.mnt], 30, check=False)

	def cleanup(self):
		if self in mounts.ACTIVE:
			mounts.ACTIVE.remove(self)
		problems = []
		if self.proc is None and self.pid is None and mounts.mounted_at(self.mnt):
			pids = daemon_pids(self.ctx.opts.binary, self.ident)
			self.pid = pids[0] if len(pids) == 1 else None
		was_running = self.running()
		msg = mounts.umount(self.mnt)
		if msg:
			problems.append(msg)
		if not was_running:
			return problems
		if not wait_for(lambda: not self.running(), t(15)):
			self.sigkill()
			wait_for(lambda: not self.running(), 5)
			return problems + ["daemon did not exit within %.0fs of umount" % t(15)]
		return problems + exit_problem(self.returncode(), "umount")


class ChildHandle:
	"""A helper child process (sleep): killed by PID on cleanup."""

	def __init__(self, proc):
		self.proc = proc

	def kill(self):
		if self.proc.poll() is None:
			self.proc.kill()

	def cleanup(self):
		if self in mounts.ACTIVE:
			mounts.ACTIVE.remove(self)
		self.kill()
		try:
			self.proc.wait(timeout=10)
		except subprocess.TimeoutExpired:
			return ["helper process %d did not die" % self.proc.pid]
		return []


def start_foreground(ctx, args, mnt, cwd=None, prefix=()):
	"""BINARY -f ARGS as our child, with cwd `cwd`; returns once `mnt` (absolute) is mounted.
	`prefix` is a command that execs the rest (setpriv ...): the PID stays the daemon's."""
	h = ctx.track(DaemonHandle(ctx, mnt, mnt))
	with open(os.path.join(ctx.logdir, "daemon.log"), "ab") as log:
		h.proc = subprocess.Popen(list(prefix) + [ctx.opts.binary, "-f"] + args, cwd=cwd,
					  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
					  env=ctx.env())
	if not wait_for(lambda: mounts.mounted_at(mnt) or h.proc.poll() is not None, t(15)):
		raise Failure("mount did not appear within %.0fs: %s" % (t(15), h.log_tail()))
	if h.proc.poll() is not None:
		raise Failure("daemon exited %d before mounting: %s"
			      % (h.proc.returncode, h.log_tail()))
	h.dev = mounts.mount_dev(mnt)
	return h


def expect_stop(h, what, timeout):
	"""After `what` (a signal, an unmount): the mount leaves mountinfo and the daemon exits
	0."""
	wait_for(lambda: not mounts.mounted_at(h.mnt) and not h.running(), timeout)
	errs = []
	if mounts.mounted_at(h.mnt):
		errs.append("%s still mounted %.0fs after %s" % (h.mnt, timeout, what))
	if h.running():
		errs.append("daemon still running %.0fs after %s" % (timeout, what))
	else:
		errs += exit_problem(h.returncode(), what)
	return errs


def settle(h):
	"""Waits (bounded) until the connection has no request in flight. close() only queues the
	RELEASE (asynchronously); a signal or unmount right after it can end the session before the
	daemon sees it, and the open-file state then leaks at exit: sigterm_with_open_files tests
	that on purpose, the other tests wait here so as not to hit it by chance."""
	if h.dev is None:
		return ["no device number for %s" % h.mnt]
	if not os.path.ismount(mounts.FUSECTL):
		mounts.run(["mount", "-t", "fusectl", "fusectl", mounts.FUSECTL], 30, check=False)
	path = os.path.join(mounts.FUSECTL, h.dev.split(":")[1], "waiting")

	def idle():
		with open(path) as f:
			return f.read().strip() == "0"
	try:
		if wait_for(idle, t(10)):
			return []
	except OSError as e:
		return ["cannot read %s: %s" % (path, e)]
	return ["requests still in flight %.0fs after the last use of %s" % (t(10), h.mnt)]


def write(path, data):
	os.makedirs(os.path.dirname(path), exist_ok=True)
	with open(path, "w") as f:
		f.write(data)


def read(path):
	with open(path) as f:
		return f.read()


def check_read(path, expected):
	got = read(path)
	return [] if got == expected else ["%s reads %r, expected %r" % (path, got[:80], expected)]


def two_lowers(ctx):
	"""l0 over l1, plus u, w, mnt: the small layer set most tests use."""
	write(ctx.path("l0/f"), "top")
	write(ctx.path("l1/f"), "bottom")
	write(ctx.path("l1/d/g"), "g in l1")
	for d in ("u", "w", "mnt"):
		os.makedirs(ctx.path(d))


# --- the tests ------------------------------------------------------------------------------------

def signal_foreground(sig, with_upper):
	"""`-f` with relative layers and mountpoint (cwd = the test dir): the signal unmounts and
	the daemon exits 0. libfuse chdirs to /, so the unmount needs the canonical path; and
	fuse_session_loop{,_mt}() return the signal number, which is not a failure."""
	def run(ctx):
		two_lowers(ctx)
		opts = "lowerdir=l0:l1" + (",upperdir=u,workdir=w" if with_upper else "")
		h = start_foreground(ctx, ["-o", opts, "mnt"], ctx.path("mnt"), cwd=ctx.dir)
		with mounts.Watchdog(t(30), [h]):
			errs = check_read(ctx.path("mnt/f"), "top")
			errs += settle(h)
		h.proc.send_signal(sig)
		return errs + expect_stop(h, signal.Signals(sig).name, t(10))
	return run


def sigterm_with_open_files(ctx):
	"""SIGTERM while a file and a directory of the mount are open: libfuse detaches the mount,
	the daemon exits 0, and (with --sanitizer) frees the state of the handles whose RELEASE
	never comes.

	Known plyfs bug (as of commit 64bc9ee): there is no .destroy and no list of open handles,
	so the struct open_file of file_open() (src/file.c) and the dir handle of ops_opendir()
	leak; LeakSanitizer reports them. Fails under --sanitizer until fixed."""
	two_lowers(ctx)
	mnt = ctx.path("mnt")
	h = start_foreground(ctx, ["-o", "lowerdir=%s:%s" % (ctx.path("l0"), ctx.path("l1")), mnt],
			     mnt)
	fds = []
	try:
		with mounts.Watchdog(t(30), [h]):
			fds.append(os.open(os.path.join(mnt, "f"), os.O_RDONLY))
			fds.append(os.open(os.path.join(mnt, "d"), os.O_RDONLY | os.O_DIRECTORY))
			got = os.pread(fds[0], 100, 0)
			errs = [] if got == b"top" else ["read %r through the open fd" % got]
			errs += settle(h)
		h.proc.send_signal(signal.SIGTERM)
		return errs + expect_stop(h, "SIGTERM with open files", t(10))
	finally:
		for fd in fds:
			try:
				os.close(fd)	# FLUSH fails with ENOTCONN once the daemon is gone
			except OSError:
				pass


def daemonized_sigterm(ctx):
	two_lowers(ctx)
	mnt = ctx.path("mnt-" + uuid.uuid4().hex)
	os.makedirs(mnt)
	h = ctx.track(DaemonHandle(ctx, mnt, mnt))
	argv = [ctx.opts.binary, "-o", "lowerdir=%s:%s" % (ctx.path("l0"), ctx.path("l1")), mnt]
	with open(os.path.join(ctx.logdir, "daemon.log"), "ab") as log:
		cp = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
				    env=ctx.env(), timeout=t(15))
	if cp.returncode != 0:
		raise Failure("daemonizing parent exited %d: %s" % (cp.returncode, h.log_tail()))
	if not mounts.mounted_at(mnt):
		raise Failure("parent exited 0 but %s is not mounted" % mnt)
	h.find()
	h.dev = mounts.mount_dev(mnt)
	with mounts.Watchdog(t(30), [h]):
		errs = check_read(os.path.join(mnt, "f"), "top")
		errs += settle(h)
	os.kill(h.pid, signal.SIGTERM)
	wait_for(lambda: not mounts.mounted_at(mnt) and not h.running(), t(10))
	if mounts.mounted_at(mnt):
		errs.append("still mounted %.0fs after SIGTERM" % t(10))
	if h.running():
		errs.append("daemon %d still running %.0fs after SIGTERM" % (h.pid, t(10)))
	elif h.status:
		# Only seen when we are PID 1 (the orphan is ours); sigterm_* checks the status.
		ctx.notes.append("daemon exit status %d after SIGTERM" % h.status)
	return errs


def lazy_umount_busy(ctx):
	"""`umount -l` while a process has its cwd in the mount: the detached mount keeps being
	served, and the daemon exits by itself once the last user is gone."""
	write(ctx.path("l0/d/file"), "busy content\n")
	write(ctx.path("l1/d/other"), "other")
	os.makedirs(ctx.path("mnt"))
	mnt = ctx.path("mnt")
	h = start_foreground(ctx, ["-o", "lowerdir=%s:%s" % (ctx.path("l0"), ctx.path("l1")), mnt],
			     mnt)
	errs = []
	with mounts.Watchdog(t(40), [h]):
		sleeper = ctx.track(ChildHandle(subprocess.Popen(
			["sleep", "%d" % t(60)], cwd=os.path.join(mnt, "d"),
			stdin=subprocess.DEVNULL)))
		mounts.run(["umount", "-l", mnt], t(10))
		if mounts.mounted_at(mnt):
			errs.append("still in mountinfo after umount -l")
		time.sleep(0.3)	# time for a daemon that wrongly quits on the detach to do so
		if not h.running():
			return errs + ["daemon exited (status %r) on umount -l while the mount "
				       "was busy" % h.proc.returncode]
		# /proc/PID/cwd leads into the detached mount; the path no longer does.
		cwd = "/proc/%d/cwd" % sleeper.proc.pid
		for argv, want in ((["cat", "file"], "busy content\n"), (["ls"], "file\nother\n")):
			cp = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL,
					    capture_output=True, timeout=t(10))
			out = cp.stdout.decode(errors="replace")
			if cp.returncode != 0 or out != want:
				err = cp.stderr.decode(errors="replace").strip()[:200]
				errs.append("%s in the detached mount: status %d, output %r, "
					    "expected %r; %s"
					    % (" ".join(argv), cp.returncode, out[:80], want, err))
		errs += settle(h)
		if not h.running():
			errs.append("daemon exited while the detached mount was still in use")
		sleeper.cleanup()
	return errs + expect_stop(h, "the last process left the lazily unmounted mount", t(10))


def fusermount3_u(ctx):
	two_lowers(ctx)
	mnt = ctx.path("mnt")
	fm = shutil.which("fusermount3")
	if fm is None:
		raise Failure("fusermount3 not found in PATH")
	h = start_foreground(ctx, ["-o", "lowerdir=%s:%s" % (ctx.path("l0"), ctx.path("l1")), mnt],
			     mnt)
	with mounts.Watchdog(t(30), [h]):
		errs = check_read(os.path.join(mnt, "f"), "top")
		errs += settle(h)
	mounts.run([fm, "-u", mnt], t(10))
	return errs + expect_stop(h, "fusermount3 -u", t(10))


def find_mount_fuse3():
	for d in ("/sbin", "/usr/sbin", "/bin", "/usr/bin"):
		p = os.path.join(d, "mount.fuse3")
		if os.access(p, os.X_OK):
			return p
	raise Failure("mount.fuse3 not found")


def mount_fuse3_form(ctx):
	"""mount.fuse3 SOURCE MNT -t plyfs -o OPTS (what mount(8) runs for an fstab line of type
	fuse.plyfs): it runs `plyfs SOURCE MNT -o OPTS` from PATH, which must daemonize once the
	mount is live; SOURCE becomes the fsname and the type is fuse.plyfs."""
	two_lowers(ctx)
	helper = find_mount_fuse3()
	bindir = ctx.path("bin")
	os.makedirs(bindir)
	os.symlink(ctx.opts.binary, os.path.join(bindir, "plyfs"))
	rel = "mnt-" + uuid.uuid4().hex
	mnt = ctx.path(rel)
	os.makedirs(mnt)
	source = "src-" + uuid.uuid4().hex[:12]
	h = ctx.track(DaemonHandle(ctx, mnt, rel))
	argv = [helper, source, rel, "-t", "plyfs", "-o", "lowerdir=l0:l1," + FSTAB_OPTS]
	with open(os.path.join(ctx.logdir, "daemon.log"), "ab") as log:
		cp = subprocess.run(argv, cwd=ctx.dir, stdin=subprocess.DEVNULL, stdout=log,
				    stderr=log, env=ctx.env(bindir), timeout=t(20))
	if cp.returncode != 0:
		raise Failure("%s exited %d: %s" % (" ".join(argv), cp.returncode, h.log_tail()))
	ent = mount_entry(mnt)
	if ent is None:
		raise Failure("mount.fuse3 exited 0 but %s is not mounted" % mnt)
	h.find()
	h.dev = mounts.mount_dev(mnt)
	errs = []
	if ent != ("fuse.plyfs", source):
		errs.append("mountinfo says type %s, source %s; expected fuse.plyfs, %s"
			    % (ent[0], ent[1], source))
	if ctx.opts.sanitizer:
		with open("/proc/%d/environ" % h.pid, "rb") as f:
			if b"ASAN_OPTIONS=log_path=" not in f.read():
				errs.append("ASAN_OPTIONS did not reach the daemon through "
					    "mount.fuse3")
	with mounts.Watchdog(t(30), [h]):
		errs += check_read(os.path.join(mnt, "f"), "top")
		errs += settle(h)
	mounts.run(["umount", mnt], t(10))
	return errs + expect_stop(h, "umount", t(10))


def many_layers(ctx):
	"""520 lower layers (more than kernel overlayfs' 500), relative paths, each with a file;
	"same" in the top and the bottom layer: the top one shows."""
	n = 520
	names = ["l%03d" % i for i in range(n)]
	for i, name in enumerate(names):
		write(ctx.path("%s/f%03d" % (name, i)), "file %d\n" % i)
	write(ctx.path(names[0] + "/same"), "top")
	write(ctx.path(names[-1] + "/same"), "bottom")
	os.makedirs(ctx.path("mnt"))
	h = start_foreground(ctx, ["-o", "lowerdir=" + ":".join(names), "mnt"], ctx.path("mnt"),
			     cwd=ctx.dir)
	errs = []
	with mounts.Watchdog(t(60), [h]):
		want = {"f%03d" % i for i in range(n)} | {"same"}
		got = set(os.listdir(ctx.path("mnt")))
		if got != want:
			errs.append("%d entries in the mount root, expected %d: missing %r, "
				    "extra %r" % (len(got), len(want), sorted(want - got)[:5],
						  sorted(got - want)[:5]))
		for i in range(n):
			name = "f%03d" % i
			if name in got:
				errs += check_read(ctx.path("mnt/" + name), "file %d\n" % i)
		errs += check_read(ctx.path("mnt/same"), "top")
		errs += settle(h)
	return errs + h.cleanup()


def long_option_string(ctx):
	"""-o longer than 64 KiB: 20 lower layers whose relative paths are ~3.6 KiB each."""
	comp = "x" * 200
	names = []
	for i in range(20):
		rel = "long%02d/%s" % (i, "/".join([comp] * 18))
		write(ctx.path(rel + "/file%02d" % i), "long %d" % i)
		names.append(rel)
	os.makedirs(ctx.path("mnt"))
	opt = "lowerdir=" + ":".join(names)
	if len(opt) <= 64 * 1024:
		raise Failure("test setup: option string only %d bytes" % len(opt))
	h = start_foreground(ctx, ["-o", opt, "mnt"], ctx.path("mnt"), cwd=ctx.dir)
	errs = []
	with mounts.Watchdog(t(30), [h]):
		for i in range(20):
			errs += check_read(ctx.path("mnt/file%02d" % i), "long %d" % i)
		got = sorted(os.listdir(ctx.path("mnt")))
		if got != ["file%02d" % i for i in range(20)]:
			errs.append("mount root lists %r" % got[:25])
		errs += settle(h)
	if ctx.opts.verbose:
		ctx.notes.append("# option string %d bytes" % len(opt))
	return errs + h.cleanup()


INO_PATHS = ["", "dir", "dir/lf0", "dir/lf1", "dir/sub", "dir/sub/x", "dir/sub/y", "lfile",
	     "only0", "only0/a", "ufile", "dir/uf", "link"]


def ino_stable(ctx):
	"""st_ino of lower files, upper files, merged dirs and the root survive a remount (the
	second round looks them up in the reverse order)."""
	write(ctx.path("l0/dir/lf0"), "lf0")
	write(ctx.path("l0/dir/sub/x"), "x")
	write(ctx.path("l0/only0/a"), "a")
	write(ctx.path("l1/dir/lf1"), "lf1")
	write(ctx.path("l1/dir/sub/y"), "y")
	write(ctx.path("l1/lfile"), "lfile")
	write(ctx.path("u/ufile"), "ufile")
	write(ctx.path("u/dir/uf"), "uf")
	os.symlink("lfile", ctx.path("l1/link"))
	for d in ("w", "mnt"):
		os.makedirs(ctx.path(d))
	mnt = ctx.path("mnt")
	opts = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (
		ctx.path("l0"), ctx.path("l1"), ctx.path("u"), ctx.path("w"))
	rounds = []
	for order in (INO_PATHS, list(reversed(INO_PATHS))):
		h = start_foreground(ctx, ["-o", opts, mnt], mnt)
		with mounts.Watchdog(t(30), [h]):
			inos = {p: os.lstat(os.path.join(mnt, p)).st_ino for p in order}
			settle_errs = settle(h)
		problems = settle_errs + h.cleanup()
		if problems:
			return problems
		rounds.append(inos)
	errs = ["%s: st_ino %d before the remount, %d after"
		% (p or "/", rounds[0][p], rounds[1][p])
		for p in INO_PATHS if rounds[0][p] != rounds[1][p]]
	if len(set(rounds[0].values())) != len(INO_PATHS):
		errs.append("distinct paths share an st_ino: %r" % rounds[0])
	return errs


def version_help(ctx):
	"""--version / -V: one line, exit 0; --help / -h: exit 0, mentions lowerdir; no mount."""
	before = sorted(mounts.mounts())
	errs = []
	for flag in ("--version", "-V", "--help", "-h"):
		cp = subprocess.run([ctx.opts.binary, flag], cwd=ctx.dir, stdin=subprocess.DEVNULL,
				    capture_output=True, env=ctx.env(), timeout=t(10))
		out = cp.stdout.decode(errors="replace")
		if cp.returncode != 0:
			errs.append("%s: exit status %d" % (flag, cp.returncode))
		if flag in ("--version", "-V"):
			if len(out.splitlines()) != 1 or not out.strip() or not out.endswith("\n"):
				errs.append("%s: stdout %r is not one line" % (flag, out[:200]))
		elif "lowerdir" not in out + cp.stderr.decode(errors="replace"):
			errs.append("%s: the text does not mention lowerdir: %r"
				    % (flag, out[:200]))
	after = sorted(mounts.mounts())
	if after != before:
		errs.append("mount table changed: %r" % sorted(set(after) - set(before)))
	return errs


def repeated_options_last_wins(ctx):
	"""An option given twice, in one -o or across two (mount(8) merges fstab's and its command
	line's): the last one wins, but for the layer options, which are refused (bad_options.py).
	fsname, subtype and ro/rw are seen in mountinfo and by a write."""
	two_lowers(ctx)
	mnt = ctx.path("mnt")
	o1 = "lowerdir=%s:%s,upperdir=%s,workdir=%s,fsname=first,subtype=one,timeout=0,ro" % (
		ctx.path("l0"), ctx.path("l1"), ctx.path("u"), ctx.path("w"))
	h = start_foreground(ctx, ["-o", o1, "-o", "fsname=second,subtype=two,timeout=5,rw", mnt],
			     mnt)
	with mounts.Watchdog(t(30), [h]):
		errs = []
		got = mount_entry(mnt)
		if got != ("fuse.two", "second"):
			errs.append("mountinfo shows (type, source) %r, expected the last ones "
				    "('fuse.two', 'second')" % (got,))
		try:
			write(os.path.join(mnt, "written"), "rw won\n")
			errs += check_read(ctx.path("u/written"), "rw won\n")
		except OSError as e:
			errs.append("writing after ro,...,rw: %s" % e)
		errs += settle(h)
	return errs


TESTS = [
	("sigterm_foreground_relative", signal_foreground(signal.SIGTERM, True)),
	("sigint_foreground_relative", signal_foreground(signal.SIGINT, False)),
	("sigterm_with_open_files", sigterm_with_open_files),
	("daemonized_sigterm", daemonized_sigterm),
	("umount_lazy_busy", lazy_umount_busy),
	("fusermount3_u", fusermount3_u),
	("mount_fuse3_form", mount_fuse3_form),
	("520_lower_layers", many_layers),
	("option_string_over_64k", long_option_string),
	("ino_stable_across_remount", ino_stable),
	("version_help", version_help),
	("repeated_options_last_wins", repeated_options_last_wins),
]


def tests_of(prefix, table, ctx_class, before=None, after=None):
	"""[(prefix/name, fn(opts, base) -> (problems, notes))] for harness.py, from a table of
	(name, fn(ctx) -> problems). Every test gets a ctx_class(opts, base, name), and its cleanup
	(mounts, processes, sanitizer reports, the directory) runs whatever the test did.
	before(ctx) may return a state object; after(state) returns more problems."""
	def make(name, fn):
		def run(opts, base):
			ctx = ctx_class(opts, base, name)
			state = before(ctx) if before else None
			errs = []
			try:
				errs = fn(ctx)
			except Failure as e:
				errs = [str(e)]
			except Exception as e:	# as harness.py does, but with our cleanup below
				errs = ["%s: %s" % (type(e).__name__, e),
					traceback.format_exc(limit=6)]
			finally:
				errs += ctx.cleanup()
				if after:
					errs += after(state)
				if opts.sanitizer:
					errs += ctx.sanitizer_reports()
				if not (opts.keep and opts.disk and errs):
					shutil.rmtree(ctx.dir, ignore_errors=True)
			return errs, ctx.notes
		return run
	return [(prefix + "/" + name, make(name, fn)) for name, fn in table]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return tests_of("lifecycle", TESTS, Ctx)
