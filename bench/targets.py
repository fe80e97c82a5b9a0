# SPDX-License-Identifier: GPL-2.0-or-later
"""targets.py - the filesystems the benchmark compares, each a view of the same layers at .mnt.

	raw             the merged tree copied into a plain directory: the limit
	kernel          kernel overlayfs (mount -t overlay, its defaults)
	passthrough_ll  libfuse's low-level passthrough example (built from libfuse3-dev's examples at
	                run time) over the same plain copy as raw: the cost of FUSE itself
	fuse-overlayfs  Debian's fuse-overlayfs
	plyfs           the binary given with --plyfs
	plyfs-prev      the binary given with --previous, so a change shows its effect

Contract: mount() makes .mnt usable or raises; umount() undoes it and is safe to call twice and
after a failed mount(); abort() is umount() for a daemon that may hang (kills it first).
"""

import os
import shutil
import subprocess
import time

EXAMPLES = "/usr/share/doc/libfuse3-dev/examples"


def run(cmd, timeout=600, **kw):
	"""Runs cmd; on failure raises RuntimeError carrying its last line of stderr (the errno a
	cell failed with, e.g. EMFILE, is what the report shows)."""
	p = subprocess.run(cmd, timeout=timeout, stderr=subprocess.PIPE, **kw)
	if p.returncode != 0:
		lines = p.stderr.decode(errors="replace").strip().splitlines() or [""]
		first_last = lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "")
		raise RuntimeError(f"{cmd[0]} exited {p.returncode}: {first_last}")
	return p


class Target:
	"""A mounted view of the layers at self.mnt; self.pid is the daemon's, if any."""
	daemon = None
	is_fuse = False
	drop_inodes_before_rows = False

	def __init__(self, name, root, lowers):
		self.name, self.root, self.lowers = name, root, lowers
		self.mnt = os.path.join(root, "mnt")
		self.upper = os.path.join(root, "upper")
		self.work = os.path.join(root, "work")
		for d in (self.mnt, self.upper, self.work):
			os.makedirs(d, exist_ok=True)

	@property
	def pid(self):
		return self.daemon.pid if self.daemon else None

	def opts(self):
		return f"lowerdir={':'.join(self.lowers)},upperdir={self.upper},workdir={self.work}"

	def start_daemon(self, argv):
		self.logf = open(os.path.join(self.root, "daemon.log"), "wb")
		self.daemon = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT)
		deadline = time.monotonic() + 30
		while not os.path.ismount(self.mnt):
			if self.daemon.poll() is not None or time.monotonic() > deadline:
				self.abort()
				raise RuntimeError(f"{self.name}: mount failed, see its daemon.log")
			time.sleep(0.02)

	def mount(self):
		raise NotImplementedError

	def umount(self):
		if os.path.ismount(self.mnt):
			subprocess.run(["umount", self.mnt], timeout=120, check=False)
		if os.path.ismount(self.mnt):
			subprocess.run(["umount", "-l", self.mnt], timeout=60, check=False)
		if self.daemon:
			try:
				self.daemon.wait(timeout=60)
			except subprocess.TimeoutExpired:
				self.daemon.kill()
				self.daemon.wait(timeout=30)
			self.logf.close()
			self.daemon = None

	def abort(self):
		# A killed daemon fails its pending requests, so the unmount cannot wait on it.
		if self.daemon and self.daemon.poll() is None:
			self.daemon.kill()
		self.umount()


def merged_copy(bench_root, lowers):
	"""The merged tree as kernel overlayfs shows it, copied once into bench_root/merged (shared by
	raw and passthrough_ll: every workload leaves the tree as it found it). The big data files
	only serve copy-up, which a plain directory does not do: they are copied sparse."""
	merged = os.path.join(bench_root, "merged")
	if os.path.isdir(merged):
		return merged
	k = Kernel("kernel-for-copy", os.path.join(bench_root, "k"), lowers)
	k.mount()
	try:
		os.makedirs(merged + ".tmp")
		for e in os.listdir(k.mnt):
			if e != "data":
				run(["cp", "-a", os.path.join(k.mnt, e), merged + ".tmp"])
				continue
			os.makedirs(os.path.join(merged + ".tmp", e))
			for f in os.listdir(os.path.join(k.mnt, e)):
				size = os.lstat(os.path.join(k.mnt, e, f)).st_size
				with open(os.path.join(merged + ".tmp", e, f), "wb") as out:
					out.truncate(size)
	finally:
		k.umount()
	shutil.rmtree(k.root)
	os.rename(merged + ".tmp", merged)
	return merged


class Raw(Target):
	def mount(self):
		self.mnt = merged_copy(os.path.dirname(self.root), self.lowers)


class Kernel(Target):
	def mount(self):
		run(["mount", "-t", "overlay", "overlay", "-o", self.opts(), self.mnt])


class FuseOverlayfs(Target):
	is_fuse = True

	def mount(self):
		self.start_daemon(["fuse-overlayfs", "-f", "-o", self.opts(), self.mnt])


class PassthroughLL(Target):
	"""cache=always (entry and attribute timeouts of a day, keep_cache, cache_readdir) and
	writeback: the defaults of passthrough_hp, the example the issue measured. It keeps an
	O_PATH fd per inode the kernel holds, so past the open-files limit its lookups fail with
	EMFILE: such cells show "—" and the goals skip them. So that a row fails only where the row
	itself needs more inodes than that, the kernel's dentries and inodes (not the page cache) are
	dropped before each row (FORGETs close the fds; warm rows warm themselves up)."""
	is_fuse = True
	drop_inodes_before_rows = True

	@staticmethod
	def available():
		return os.path.exists(os.path.join(EXAMPLES, "passthrough_ll.c")) or \
			os.path.exists(os.path.join(EXAMPLES, "passthrough_ll.c.gz"))

	def build(self):
		"""Compiles the example into the scratch directory (it is not part of plyfs)."""
		src = os.path.join(self.root, "src")
		os.makedirs(src, exist_ok=True)
		for f in ("passthrough_ll.c", "passthrough_helpers.h"):
			p = os.path.join(EXAMPLES, f)
			if os.path.exists(p):
				shutil.copy(p, src)
			else:
				with open(os.path.join(src, f), "wb") as out:
					run(["gzip", "-dc", p + ".gz"], stdout=out)
		flags = run(["pkg-config", "--cflags", "--libs", "fuse3"], stdout=subprocess.PIPE)
		binary = os.path.join(self.root, "passthrough_ll")
		run(["gcc", "-O2", "-o", binary, os.path.join(src, "passthrough_ll.c")] +
		    flags.stdout.decode().split())
		return binary

	def mount(self):
		binary = self.build()
		merged = merged_copy(os.path.dirname(self.root), self.lowers)
		self.start_daemon([binary, "-f", "-o", f"source={merged},cache=always,writeback",
				   self.mnt])


class Plyfs(Target):
	is_fuse = True
	binary = None

	def mount(self):
		self.start_daemon([self.binary, "-f", "-o", self.opts(), self.mnt])


def daemon_usage(pid):
	"""(RSS MiB, CPU seconds) of a daemon, or (None, None)."""
	if not pid:
		return None, None
	try:
		with open(f"/proc/{pid}/status") as f:
			rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
		with open(f"/proc/{pid}/stat") as f:
			fields = f.read().rsplit(")", 1)[1].split()
		cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
		return rss, cpu
	except (OSError, StopIteration):
		return None, None


def settled_rss(pid, limit=10.0):
	"""The daemon's RSS once the FORGETs that drop_caches sent have been handled: polled until two
	readings 0.5 s apart agree, at most `limit` seconds."""
	last, deadline = None, time.monotonic() + limit
	while time.monotonic() < deadline:
		time.sleep(0.5)
		rss, _ = daemon_usage(pid)
		if rss is None or rss == last:
			return rss
		last = rss
	return last
