# SPDX-License-Identifier: GPL-2.0-or-later
"""containers_env.py - podman and buildah with plyfs as the overlay mount program, confined to
a directory of the test run.

An Engine is one containers-storage (graphroot, runroot) and one podman state under DIR, set
up by a private containers.conf (CONTAINERS_CONF) and storage.conf (CONTAINERS_STORAGE_CONF):
nothing is read from or written to /etc/containers, /var/lib/containers or /run/libpod, so runs
never see each other's containers. The containers.conf settings are the ones this machine
needs: runc (crun 1.8 cannot run on its hybrid cgroups), cgroupfs, no network namespace set-up,
and ulimits that need no CAP_SYS_RESOURCE. A rootless Engine runs every command as the given
user (setpriv), with HOME and XDG_RUNTIME_DIR in DIR.

Every command is bounded. Containers run detached and are waited for with `podman wait` (an
attached `podman run` was seen waiting ~20 s on conmon on these machines). The plyfs daemons
that serve the engine are found by their command line: argv[0] the configured mount program, the
mount point (last argument) under the graphroot; they are checked and, in cleanup, killed only
by those PIDs.
"""

import os
import pwd
import signal
import subprocess
import time

import mounts
from mounts import Failure

CMD_TIMEOUT = 600  # one podman/buildah command; generous: the machine is shared and loaded
EXIT_TIMEOUT = 600  # a container's script
AUTO_USER = "plyfs-auto"


def _conf_containers(d):
	lines = [
		"[containers]",
		'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
		'netns = "none"',
		'log_driver = "k8s-file"',
		"[engine]",
		'runtime = "runc"',
		'cgroup_manager = "cgroupfs"',
		'events_logger = "file"',
		'events_logfile_path = "%s/events.log"' % d,
		'tmp_dir = "%s/tmp"' % d,
		'static_dir = "%s/graph/libpod"' % d,
		'volume_path = "%s/graph/volumes"' % d,
		"[network]",
		'network_config_dir = "%s/net"' % d,
	]
	return "\n".join(lines) + "\n"


def _conf_storage(d, binary):
	return "\n".join([
		"[storage]",
		'driver = "overlay"',
		'graphroot = "%s/graph"' % d,
		# A rootless user's storage is here, not graphroot (which only root's is).
		'rootless_storage_path = "%s/graph"' % d,
		'runroot = "%s/run/storage"' % d,
		# `podman run --userns=auto` takes its ids from this user's subordinate ranges
		# (containers_tests.userns_auto creates it).
		"[storage.options]",
		'root-auto-userns-user = "%s"' % AUTO_USER,
		"[storage.options.overlay]",
		'mount_program = "%s"' % binary,
		"",
	])


def shown(argv):
	"""A command line for a message: scripts cut to their first line."""
	return " ".join(a.splitlines()[0] + " ..." if "\n" in a else a for a in argv)


def tail(text, n=25):
	"""The last `n` lines of a log, for a message."""
	return "\n".join(text.strip().splitlines()[-n:])


def starttime(pid):
	"""Field 22 of /proc/PID/stat (tells a reused PID apart), or None when gone."""
	try:
		with open("/proc/%d/stat" % pid, "rb") as f:
			data = f.read()
	except OSError:
		return None
	return data[data.rindex(b")") + 2:].split()[19]


class Engine:
	def __init__(self, d, binary, user=None):
		"""`user`: a user name for a rootless engine (DIR must be reachable for it)."""
		self.dir = d
		self.binary = binary
		self.graph = os.path.join(d, "graph")
		self.user = pwd.getpwnam(user) if user else None
		for sub in ("graph", "run", "tmp", "net", "home"):
			os.makedirs(os.path.join(d, sub), exist_ok=True)
		os.chmod(os.path.join(d, "run"), 0o700)
		with open(os.path.join(d, "containers.conf"), "w") as f:
			f.write(_conf_containers(d))
		with open(os.path.join(d, "storage.conf"), "w") as f:
			f.write(_conf_storage(d, binary))
		if self.user:
			for root, dirs, files in os.walk(d):
				for n in [root] + [os.path.join(root, x) for x in dirs + files]:
					os.lchown(n, self.user.pw_uid, self.user.pw_gid)
		self.env = {
			"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"LC_ALL": "C",
			"HOME": os.path.join(d, "home"),
			"XDG_RUNTIME_DIR": os.path.join(d, "run"),
			"XDG_CONFIG_HOME": os.path.join(d, "home", ".config"),
			"CONTAINERS_CONF": os.path.join(d, "containers.conf"),
			"CONTAINERS_STORAGE_CONF": os.path.join(d, "storage.conf"),
			"TMPDIR": os.path.join(d, "tmp"),
		}

	def argv(self, argv):
		if not self.user:
			return argv
		return ["setpriv", "--reuid=%d" % self.user.pw_uid, "--regid=%d" % self.user.pw_gid,
			"--clear-groups", "--"] + argv

	def run(self, argv, timeout=CMD_TIMEOUT, check=True):
		"""Runs a command of this engine; returns CompletedProcess (text, stderr apart)."""
		try:
			cp = subprocess.run(self.argv(argv), stdin=subprocess.DEVNULL,
					    capture_output=True, text=True, env=self.env,
					    timeout=timeout, cwd=self.env["HOME"])
		except subprocess.TimeoutExpired:
			raise Failure("%s timed out after %ds" % (shown(argv), timeout))
		if check and cp.returncode != 0:
			raise Failure("%s failed (%d): %s" % (shown(argv), cp.returncode,
							     (cp.stderr or cp.stdout).strip()[-2000:]))
		return cp

	def podman(self, *args, **kw):
		return self.run(["podman"] + list(args), **kw)

	def remove(self, *names):
		"""podman rm of stopped containers. Right after a stop, podman's own cleanup process may
		still hold the container's shm mount ("userdata/shm: device or resource busy"): tried
		again for at most 30 s, only for that error."""
		deadline, retry = time.monotonic() + 30, []
		while True:
			# Again with --ignore: those a try removed are gone, not an error.
			cp = self.podman("rm", *retry, *names, check=False)
			if cp.returncode == 0:
				return cp
			busy = "resource busy" in (cp.stderr or "")
			if not busy or time.monotonic() > deadline:
				raise Failure("podman rm %s failed (%d): %s" % (
					" ".join(names), cp.returncode, (cp.stderr or cp.stdout).strip()[-2000:]))
			retry = ["--ignore"]
			time.sleep(0.5)

	def buildah(self, *args, **kw):
		return self.run(["buildah"] + list(args), **kw)

	# Containers: detached, waited for with bounds.

	def start(self, name, image, script, opts=()):
		self.podman("run", "-d", "--name", name, *opts, image, "sh", "-c", script)

	def state(self, name):
		cp = self.podman("inspect", "--format", "{{.State.Status}}", name, check=False)
		return cp.stdout.strip() if cp.returncode == 0 else None

	def logs(self, name):
		cp = self.podman("logs", name, check=False)
		return cp.stdout + cp.stderr

	def wait_exit(self, name, timeout=EXIT_TIMEOUT):
		"""The container's exit status, or Failure (with its log) when it runs on too long."""
		try:
			cp = self.podman("wait", name, timeout=timeout)
		except Failure as e:
			raise Failure("container %s: %s\n%s" % (name, e, tail(self.logs(name))))
		return int(cp.stdout.strip().splitlines()[-1])

	def wait_ready(self, name, marker="READY", timeout=EXIT_TIMEOUT):
		"""Waits until the container's log has the line `marker` (the container keeps running
		for the host to look at it); its log so far."""
		deadline = time.monotonic() + timeout
		while True:
			out = self.logs(name)
			if marker in out.splitlines():
				return out
			st = self.state(name)
			if st not in ("running", "created", "configured", "initialized"):
				raise Failure("container %s is %s before %s:\n%s" % (
					name, st, marker, tail(out)))
			if time.monotonic() > deadline:
				raise Failure("container %s: no %s within %ds:\n%s" % (
					name, marker, timeout, tail(out)))
			time.sleep(0.5)

	def stop(self, name):
		"""Stops a container that waits with `trap 'exit 0' TERM`; fails unless it exits 0."""
		self.podman("stop", "-t", "120", name)
		rc = self.wait_exit(name)
		if rc != 0:
			raise Failure("container %s exited %d:\n%s" % (name, rc, tail(self.logs(name))))

	def inspect(self, name, fmt):
		return self.podman("inspect", "--format", fmt, name).stdout.strip()

	# The daemons and mounts of this engine.

	def daemons(self):
		"""{pid: (starttime, mount point)} of the running plyfs processes of this engine."""
		out = {}
		prefix = os.fsencode(self.graph) + b"/"
		binary = os.fsencode(self.binary)
		for d in os.listdir("/proc"):
			if not d.isdigit():
				continue
			try:
				with open("/proc/%s/cmdline" % d, "rb") as f:
					argv = f.read().split(b"\0")
			except OSError:
				continue
			if argv and argv[-1] == b"":
				argv.pop()
			if len(argv) < 2 or argv[0] != binary or not argv[-1].startswith(prefix):
				continue
			pid = int(d)
			if mounts.pid_state(pid) == "running":
				out[pid] = (starttime(pid), os.fsdecode(argv[-1]))
		return out

	def fuse_mounts(self):
		"""The plyfs mount points under the graphroot in this mount namespace."""
		prefix = os.fsencode(self.graph) + b"/"
		return sorted(os.fsdecode(m) for m, fs in mounts.mounts()
			      if fs == "fuse.plyfs" and m.startswith(prefix))

	def alive(self, daemons):
		"""The PIDs of `daemons` (as daemons() returned them) still running."""
		return sorted(p for p, (st, _) in daemons.items()
			      if mounts.pid_state(p) == "running" and starttime(p) == st)

	def wait_gone(self, daemons, timeout=120):
		deadline = time.monotonic() + mounts.t(timeout)
		while self.alive(daemons) and time.monotonic() < deadline:
			for p in daemons:
				mounts.reap(p)
			time.sleep(0.2)
		return self.alive(daemons)

	def cleanup(self):
		"""Removes every container (podman's and buildah's) and image mount of the engine, then
		ends what is left of its daemons by PID and its mounts; returns messages about what
		had to be forced (a test that left them fails)."""
		msgs = []
		self.podman("rm", "-a", "-f", "-t", "0", check=False, timeout=300)
		self.buildah("rm", "-a", check=False, timeout=300)
		self.podman("image", "unmount", "-a", "-f", check=False, timeout=300)
		left = self.daemons()
		if left and self.wait_gone(left, 30):
			for pid in self.alive(left):
				msgs.append("plyfs daemon %d (%s) still running, killed" % (pid, left[pid][1]))
				try:
					os.kill(pid, signal.SIGKILL)
				except ProcessLookupError:
					pass
				mounts.reap(pid)
		for m in self.fuse_mounts():
			msgs.append("mount %s left, unmounted" % m)
			mounts.umount(m)
		return msgs

	def stop_pause(self):
		"""Rootless podman keeps a pause process holding its user namespace: end it by the PID
		it wrote."""
		p = os.path.join(self.dir, "run", "libpod", "tmp", "pause.pid")
		try:
			pid = int(open(p).read().strip())
		except (OSError, ValueError):
			return
		try:
			os.kill(pid, signal.SIGKILL)
		except ProcessLookupError:
			pass
		mounts.reap(pid)
