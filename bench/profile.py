# SPDX-License-Identifier: GPL-2.0-or-later
"""profile.py - what one operation costs plyfs: FUSE requests, daemon syscalls, instructions.

	python3 bench/profile.py --plyfs build/plyfs [--only W[,W]] [--n N] [--no-callgrind]

Timings on a shared 2-vCPU machine are noisy; these three counts are not. For each workload it
mounts plyfs on fresh layers (a lower with the files the workload needs, an empty upper), runs
the workload once to count the requests per opcode (`plyfs status --json`), once under
`strace -c -f` on the daemon to count its syscalls, and once with the daemon under valgrind's
callgrind (counters zeroed just before the workload, dumped just after) to count its
instructions; each divided by the number of operations. Run as root inside a private mount
namespace (`unshare -m --propagation private`). Prints a Markdown table.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
	return subprocess.run(cmd, check=True, timeout=600, **kw)


class Mount:
	"""plyfs in the foreground on scratch layers; `wrap` prefixes the daemon's command line."""

	def __init__(self, plyfs, base, files, wrap=()):
		self.base = base
		for d in ("l", "u", "w", "m"):
			os.makedirs(os.path.join(base, d))
		lower = os.path.join(base, "l")
		for rel, data in files:
			p = os.path.join(lower, rel)
			os.makedirs(os.path.dirname(p), exist_ok=True)
			with open(p, "wb") as f:
				f.write(data)
		self.mnt = os.path.join(base, "m")
		opts = "lowerdir=%s,upperdir=%s/u,workdir=%s/w" % (lower, base, base)
		self.proc = subprocess.Popen(list(wrap) + [plyfs, "-f", "-o", opts, self.mnt],
					     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		deadline = time.time() + 120
		while not os.path.ismount(self.mnt):
			if self.proc.poll() is not None or time.time() > deadline:
				raise RuntimeError("plyfs did not mount: %s" % self.proc.stderr.read())
			time.sleep(0.05)
		self.plyfs = plyfs
		self.pid = self.daemon_pid()

	def daemon_pid(self):
		"""The plyfs process itself (under valgrind the child of nothing: the same pid)."""
		return self.proc.pid

	def ops(self):
		out = subprocess.run([self.plyfs, "status", "--json", self.mnt], check=True,
				     capture_output=True, timeout=60).stdout
		return json.loads(out)["ops"]

	def close(self):
		if os.path.ismount(self.mnt):
			subprocess.run(["umount", self.mnt], timeout=60)
		try:
			self.proc.wait(timeout=120)
		except subprocess.TimeoutExpired:
			self.proc.kill()
			self.proc.wait()


# --- workloads: (files the lower holds, setup(mnt), the operations(mnt), how many) -------------

def lower_files(n, prefix="f", data=b""):
	return [("d/%s%d" % (prefix, i), data) for i in range(n)]


def w_create(n):
	def ops(m):
		os.mkdir(os.path.join(m, "new"))
		for i in range(n):
			os.close(os.open(os.path.join(m, "new", "c%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
	return [], None, ops


def w_unlink(n):
	def setup(m):
		os.mkdir(os.path.join(m, "new"))
		for i in range(n):
			os.close(os.open(os.path.join(m, "new", "c%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))

	def ops(m):
		for i in range(n):
			os.unlink(os.path.join(m, "new", "c%d" % i))
	return [], setup, ops


def w_stat_first(n):
	return lower_files(n), None, lambda m: [os.lstat(os.path.join(m, "d", "f%d" % i))
						for i in range(n)]


def w_stat_warm(n):
	def setup(m):
		for i in range(n):
			os.lstat(os.path.join(m, "d", "f%d" % i))
	return lower_files(n), setup, lambda m: [os.lstat(os.path.join(m, "d", "f%d" % i))
						 for i in range(n)]


def w_walk_warm(n):
	"""os.walk with an lstat of every entry, the second time (per entry)."""
	def walk(m):
		for d, dirs, files in os.walk(m):
			for f in files + dirs:
				os.lstat(os.path.join(d, f))
	files = [("t%d/f%d" % (i // 50, i), b"") for i in range(n)]
	return files, walk, walk


def w_ls_l(n):
	return lower_files(n), None, lambda m: run(["ls", "-l", os.path.join(m, "d")],
						  stdout=subprocess.DEVNULL)


def w_appends(n):
	state = {}

	def setup(m):
		state["fd"] = os.open(os.path.join(m, "app"), os.O_CREAT | os.O_WRONLY | os.O_APPEND,
				      0o644)

	def ops(m):
		for _ in range(n):
			os.write(state["fd"], b"abc\n")
		os.close(state["fd"])
	return [], setup, ops


def w_write_mib(n):
	def ops(m):
		buf = b"x" * (1 << 20)
		with open(os.path.join(m, "data"), "wb") as f:
			for _ in range(n):
				f.write(buf)
	return [], None, ops


def w_untar(n):
	"""Extract a tarball of n 10 KiB files in 50-file directories (per entry)."""
	state = {}

	def setup(m):
		src = tempfile.mkdtemp(prefix="plyfs-prof-tar-")
		for i in range(n):
			d = os.path.join(src, "t%d" % (i // 50))
			os.makedirs(d, exist_ok=True)
			with open(os.path.join(d, "f%d" % i), "wb") as f:
				f.write(os.urandom(10240))
		state["tar"] = src + ".tar"
		run(["tar", "cf", state["tar"], "-C", src, "."])
		shutil.rmtree(src)

	def ops(m):
		os.mkdir(os.path.join(m, "x"))
		run(["tar", "xf", state["tar"], "-C", os.path.join(m, "x")])
		os.unlink(state["tar"])
	return [], setup, ops


WORKLOADS = {
	"create": (w_create, 2000, "file"),
	"unlink": (w_unlink, 2000, "file"),
	"stat first": (w_stat_first, 2000, "file"),
	"stat warm": (w_stat_warm, 2000, "file"),
	"walk warm": (w_walk_warm, 5000, "entry"),
	"ls -l": (w_ls_l, 5000, "entry"),
	"appends": (w_appends, 20000, "write"),
	"write": (w_write_mib, 256, "MiB"),
	"untar": (w_untar, 2000, "entry"),
}


def requests(plyfs, scratch, name):
	fn, n, _ = WORKLOADS[name]
	files, setup, ops = fn(n)
	m = Mount(plyfs, tempfile.mkdtemp(dir=scratch), files)
	try:
		if setup:
			setup(m.mnt)
		before = m.ops()
		ops(m.mnt)
		after = m.ops()
	finally:
		m.close()
	diff = {k: after[k] - before[k] for k in after if after[k] != before[k]}
	# `plyfs status` itself: a STATFS and a GETXATTR of the root.
	for k in ("getxattr", "statfs"):
		diff[k] = diff.get(k, 0) - 1
	return {k: v / n for k, v in diff.items() if v}


def syscalls(plyfs, scratch, name):
	fn, n, _ = WORKLOADS[name]
	files, setup, ops = fn(n)
	m = Mount(plyfs, tempfile.mkdtemp(dir=scratch), files)
	out = os.path.join(m.base, "strace.txt")
	try:
		if setup:
			setup(m.mnt)
		st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(m.pid)],
				      stderr=subprocess.DEVNULL)
		time.sleep(1.0)  # strace attaches to every thread
		ops(m.mnt)
		st.send_signal(2)
		st.wait(timeout=60)
	finally:
		m.close()
	calls = {}
	for line in open(out):
		f = line.split()
		if len(f) >= 5 and f[-1] not in ("syscall", "total") and f[3].isdigit():
			calls[f[-1]] = int(f[3])
	# read/writev on /dev/fuse: one each per request; futex: thread hand-offs
	return sum(calls.values()) / n, calls


def instructions(plyfs, scratch, name):
	fn, n, _ = WORKLOADS[name]
	files, setup, ops = fn(n)
	base = tempfile.mkdtemp(dir=scratch)
	outpat = os.path.join(base, "cg.out")
	m = Mount(plyfs, base, files, ["valgrind", "--tool=callgrind", "-q",
				       "--callgrind-out-file=" + outpat + ".%p"])
	try:
		if setup:
			setup(m.mnt)
		run(["callgrind_control", "-z", str(m.pid)], stdout=subprocess.DEVNULL,
		    stderr=subprocess.DEVNULL)
		ops(m.mnt)
		run(["callgrind_control", "-d", "measured", str(m.pid)], stdout=subprocess.DEVNULL,
		    stderr=subprocess.DEVNULL)
	finally:
		m.close()
	total = 0
	for f in glob.glob(outpat + "*"):
		if "measured" not in open(f, errors="replace").read(4096):
			continue
		for line in open(f, errors="replace"):
			mm = re.match(r"^(summary|totals):\s+(\d+)", line)
			if mm:
				total = max(total, int(mm.group(2)))
	return total / n


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--plyfs", required=True)
	ap.add_argument("--only", default="")
	ap.add_argument("--scratch", default="/var/tmp")
	ap.add_argument("--no-callgrind", action="store_true")
	a = ap.parse_args()
	plyfs = os.path.abspath(a.plyfs)
	names = [w for w in a.only.split(",") if w] or list(WORKLOADS)
	scratch = tempfile.mkdtemp(prefix="plyfs-prof-", dir=a.scratch)
	print("| workload (per %s) | FUSE requests | daemon syscalls | daemon instructions |" % "op")
	print("|---|---|---|---|")
	try:
		for name in names:
			unit = WORKLOADS[name][2]
			req = requests(plyfs, scratch, name)
			nsys, calls = syscalls(plyfs, scratch, name)
			top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
			ins = None if a.no_callgrind else instructions(plyfs, scratch, name)
			reqs = ", ".join("%s %.2f" % (k.upper(), v) for k, v in
					 sorted(req.items(), key=lambda kv: -kv[1]))
			sysd = "%.1f (%s)" % (nsys, ", ".join("%s %.1f" % (k, v / WORKLOADS[name][1])
							   for k, v in top))
			print("| %s (per %s) | %.2f: %s | %s | %s |" % (
				name, unit, sum(req.values()), reqs, sysd,
				"—" if ins is None else "%.0f" % ins), flush=True)
	finally:
		shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
	sys.exit(main())
