# SPDX-License-Identifier: GPL-2.0-or-later
"""mounts.py - kernel overlayfs mounts, the daemon under test, and bounded unmounting.

Everything started here is registered in ACTIVE so that cleanup_all() can undo it when a test
fails or the run is interrupted: mounts are unmounted (lazily as a last resort) and daemons are
killed by the PID we know, never by name.
"""

import os
import signal
import subprocess
import threading
import time

ACTIVE = []	 # objects with a .cleanup() method, newest last
SCALE = 1.0	 # timeouts are multiplied by this (sanitizer builds are slower)


class Failure(Exception):
	"""A test failure with a message meant for the report."""


def t(seconds):
	return seconds * SCALE


def _unescape(field):
	"""mountinfo escapes space, tab, newline and backslash as \\ooo."""
	out, i = bytearray(), 0
	while i < len(field):
		if field[i:i + 1] == b"\\" and field[i + 1:i + 4].isdigit():
			out.append(int(field[i + 1:i + 4], 8))
			i += 4
		else:
			out.append(field[i])
			i += 1
	return bytes(out)


def mounts():
	"""[(mountpoint bytes, fstype str)] from /proc/self/mountinfo."""
	out = []
	with open("/proc/self/mountinfo", "rb") as f:
		for line in f:
			fields = line.split()
			sep = fields.index(b"-")
			out.append((_unescape(fields[4]), fields[sep + 1].decode()))
	return out


def mount_dev(mnt):
	"""The "major:minor" of the filesystem mounted at `mnt` (the last one), or None."""
	mnt, dev = os.fsencode(mnt), None
	with open("/proc/self/mountinfo", "rb") as f:
		for line in f:
			fields = line.split()
			if _unescape(fields[4]) == mnt:
				dev = fields[2].decode()
	return dev


FUSECTL = "/sys/fs/fuse/connections"


def fuse_abort(dev):
	"""Aborts a FUSE connection (fusectl's abort file, mounted in our namespace if needed), so
	that requests stuck in a hung daemon fail with ENOTCONN."""
	if dev is None:
		return
	if not os.path.ismount(FUSECTL):
		run(["mount", "-t", "fusectl", "fusectl", FUSECTL], 30, check=False)
	try:
		with open(os.path.join(FUSECTL, dev.split(":")[1], "abort"), "w") as f:
			f.write("1")
	except OSError:
		pass


def mounted_at(mnt):
	mnt = os.fsencode(mnt)
	return [fs for m, fs in mounts() if m == mnt]


def run(cmd, timeout, check=True):
	"""Runs a helper command with a bound; returns CompletedProcess (text)."""
	try:
		cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
	except subprocess.TimeoutExpired:
		raise Failure("%s timed out after %.0fs" % (" ".join(map(str, cmd)), timeout))
	if check and cp.returncode != 0:
		raise Failure("%s failed (%d): %s" % (" ".join(map(str, cmd)), cp.returncode,
						       cp.stderr.decode(errors="replace").strip()))
	return cp


def umount(mnt):
	"""umount, then umount -l; returns None or a message saying what went wrong."""
	if not mounted_at(mnt):
		return None
	cp = run(["umount", mnt], t(30), check=False)
	if cp.returncode == 0 and not mounted_at(mnt):
		return None
	msg = "umount %s failed: %s" % (mnt, cp.stderr.decode(errors="replace").strip())
	run(["umount", "-l", mnt], t(30), check=False)
	return msg


def pid_state(pid):
	"""'gone', 'zombie' or 'running'."""
	try:
		with open("/proc/%d/stat" % pid, "rb") as f:
			data = f.read()
	except (FileNotFoundError, ProcessLookupError):
		return "gone"
	state = data[data.rindex(b")") + 2:][:1]
	return "zombie" if state in (b"Z", b"X") else "running"


def reap(pid):
	"""Reaps `pid` if it is our child (the orphaned daemon is, when we are PID 1)."""
	try:
		os.waitpid(pid, os.WNOHANG)
	except ChildProcessError:
		pass


def pids_with_arg(arg):
	"""PIDs whose argv contains exactly `arg` (our unique mountpoint)."""
	arg = os.fsencode(arg)
	out = []
	for d in os.listdir("/proc"):
		if not d.isdigit() or int(d) == os.getpid():
			continue
		try:
			with open("/proc/%s/cmdline" % d, "rb") as f:
				argv = f.read().split(b"\0")
		except OSError:
			continue
		if arg in argv and pid_state(int(d)) == "running":
			out.append(int(d))
	return out


def wait_pid_exit(pid, timeout):
	end = time.monotonic() + timeout
	while time.monotonic() < end:
		reap(pid)
		if pid_state(pid) != "running":
			reap(pid)
			return True
		time.sleep(0.02)
	return False


class KernelMount:
	def __init__(self, mnt, lowers, upper=None, work=None, userxattr=False):
		self.mnt = mnt
		opts = ["lowerdir=" + ":".join(lowers)]
		if upper:
			opts += ["upperdir=" + upper, "workdir=" + work]
		if userxattr:
			opts.append("userxattr")
		self.opts = ",".join(opts)

	def mount(self):
		run(["mount", "-t", "overlay", "overlay", "-o", self.opts, self.mnt], 30)
		ACTIVE.append(self)

	def cleanup(self):
		if self in ACTIVE:
			ACTIVE.remove(self)
		return umount(self.mnt)


class Daemon:
	"""The binary under test on one mountpoint: foreground (-f, a child we own) or daemonizing."""

	def __init__(self, binary, mnt, lowers, upper, work, logdir, sanitizer, daemonize=False,
		     extra_opts=()):
		self.binary, self.mnt, self.logdir = binary, mnt, logdir
		self.sanitizer, self.daemonize = sanitizer, daemonize
		opts = ["lowerdir=" + ":".join(lowers)]
		if upper:
			opts += ["upperdir=" + upper, "workdir=" + work]
		opts += list(extra_opts)
		self.opts = ",".join(opts)
		self.proc = None
		self.pid = None
		self.dev = None		# major:minor of the FUSE mount, for fusectl
		self.problems = []	# what went wrong while stopping: reported as failures
		os.makedirs(logdir, exist_ok=True)
		self.log_path = os.path.join(logdir, "daemon.log")

	def env(self):
		env = dict(os.environ)
		if self.sanitizer:
			env["ASAN_OPTIONS"] = "log_path=%s/asan:detect_leaks=1" % self.logdir
			env["UBSAN_OPTIONS"] = ("log_path=%s/ubsan:print_stacktrace=1:halt_on_error=0"
						% self.logdir)
		return env

	def argv(self):
		return [self.binary] + ([] if self.daemonize else ["-f"]) + ["-o", self.opts, self.mnt]

	def log_tail(self, n=1500):
		try:
			with open(self.log_path, "rb") as f:
				return f.read()[-n:].decode(errors="replace").strip()
		except OSError:
			return ""

	def start(self):
		ACTIVE.append(self)
		if self.daemonize:
			self._start_daemonizing()
		else:
			self._start_foreground()
		self.dev = mount_dev(self.mnt)

	def _start_foreground(self):
		with open(self.log_path, "wb") as log:
			self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
						     stderr=log, env=self.env())
		self.pid = self.proc.pid
		end = time.monotonic() + t(15)
		while time.monotonic() < end:
			if mounted_at(self.mnt):
				return
			if self.proc.poll() is not None:
				raise Failure("daemon exited %d before mounting: %s"
					      % (self.proc.returncode, self.log_tail()))
			time.sleep(0.01)
		raise Failure("mount did not appear within %.0fs: %s" % (t(15), self.log_tail()))

	def _start_daemonizing(self):
		"""The parent must exit 0 only once the mount is visible, and must not leave our
		pipes open in the daemon (a caller's $(...) would hang)."""
		proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
					stderr=subprocess.PIPE, env=self.env())
		try:
			rc = proc.wait(timeout=t(15))
		except subprocess.TimeoutExpired:
			proc.kill()
			proc.wait()
			raise Failure("daemonizing parent did not exit within %.0fs" % t(15))
		visible = bool(mounted_at(self.mnt))
		pids = pids_with_arg(self.mnt)
		self.pid = pids[0] if len(pids) == 1 else None
		try:
			out, err = proc.communicate(timeout=t(5))
		except subprocess.TimeoutExpired:
			raise Failure("the daemon kept the caller's stdout/stderr open after the parent "
				      "exited")
		with open(self.log_path, "wb") as log:
			log.write(out + err)
		if rc != 0:
			raise Failure("daemonizing parent exited %d: %s" % (rc, self.log_tail()))
		if not visible:
			raise Failure("parent exited 0 before the mount was in /proc/self/mountinfo")
		if self.pid is None:
			raise Failure("expected exactly one daemon process with argv %s, found %r"
				      % (self.mnt, pids))

	def kill(self):
		"""Hard stop (watchdog, interrupted run): abort the connection, SIGKILL by PID, lazy
		unmount."""
		fuse_abort(self.dev)
		if self.pid and pid_state(self.pid) == "running":
			try:
				os.kill(self.pid, signal.SIGKILL)
			except ProcessLookupError:
				pass
		run(["umount", "-l", self.mnt], 30, check=False)

	def cleanup(self):
		"""Unmounts, then waits (bounded) for the daemon to exit by itself; kills it if not.
		Returns the list of problems (also kept in self.problems)."""
		if self in ACTIVE:
			ACTIVE.remove(self)
		msg = umount(self.mnt)
		if msg:
			self.problems.append(msg)
		if self.pid is None:
			return self.problems
		if self.proc is not None:
			try:
				rc = self.proc.wait(timeout=t(15))
				if rc != 0:
					self.problems.append("daemon exited %d after umount: %s"
							     % (rc, self.log_tail(600)))
			except subprocess.TimeoutExpired:
				self.proc.kill()
				self.proc.wait()
				self.problems.append("daemon did not exit within %.0fs of umount" % t(15))
		elif not wait_pid_exit(self.pid, t(15)):
			os.kill(self.pid, signal.SIGKILL)
			wait_pid_exit(self.pid, 5)
			self.problems.append("daemon %d did not exit within %.0fs of umount"
					     % (self.pid, t(15)))
		return self.problems

	def sanitizer_reports(self):
		out = []
		for n in sorted(os.listdir(self.logdir)):
			if n.startswith(("asan", "ubsan")):
				with open(os.path.join(self.logdir, n), "rb") as f:
					out.append("%s:\n%s" % (n, f.read()[:6000].decode(errors="replace")))
		return out


def cleanup_all():
	problems = []
	while ACTIVE:
		obj = ACTIVE[-1]
		try:
			r = obj.cleanup()
			if isinstance(r, str):
				problems.append(r)
			elif r:
				problems.extend(r)
		except Exception as e:  # keep cleaning the rest
			problems.append("cleanup of %r: %s" % (obj, e))
			if obj in ACTIVE:
				ACTIVE.remove(obj)
	return problems


class BindMount:
	"""A mount we made (mount --bind, a loop device, kernel overlayfs): unmounted on cleanup
	(lazily as a last resort). Register it with ctx.track()."""

	def __init__(self, path):
		self.path = path

	def cleanup(self):
		if self in ACTIVE:
			ACTIVE.remove(self)
		msg = umount(self.path)
		return [msg] if msg else []


class Watchdog:
	"""Bounds a block that touches a mount: past `seconds` the daemons are killed and the mounts
	lazily unmounted, so a hung request fails with ENOTCONN instead of hanging the run."""

	def __init__(self, seconds, daemons):
		self.seconds, self.daemons, self.fired = seconds, daemons, False
		self.timer = threading.Timer(seconds, self._fire)
		self.timer.daemon = True

	def _fire(self):
		self.fired = True
		for d in self.daemons:
			d.kill()

	def __enter__(self):
		self.timer.start()
		return self

	def __exit__(self, *exc):
		self.timer.cancel()
		if self.fired:
			raise Failure("timed out after %.0fs (daemon killed)" % self.seconds)
		return False
