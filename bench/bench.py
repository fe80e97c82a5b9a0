# SPDX-License-Identifier: GPL-2.0-or-later
"""bench.py - the same workloads on the same layers through every overlay, in one run.

	python3 bench/bench.py --plyfs build/plyfs [--previous OLD/plyfs] [--quick] [--out DIR]

Run it as root inside a private mount namespace (bench/run.sh does that, and installs what it
needs). Targets, each on identical layers built once under --scratch:
	raw             the merged tree copied into a plain directory: the limit
	kernel          kernel overlayfs (mount -t overlay, its defaults)
	fuse-overlayfs  Debian's fuse-overlayfs
	plyfs           the binary given with --plyfs
	plyfs-prev      the binary given with --previous (optional), so a change shows its effect
Every cell is the median of --reps runs (3 at least). Writes DIR/latest.md (a table of absolute
values and ratios to kernel overlayfs, each goal marked met or not), DIR/latest.json and, where
gnuplot is installed, DIR/latest.svg. Cold cells drop the machine's caches
(/proc/sys/vm/drop_caches): that touches the whole machine, which is why this is a benchmark and
not a test.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SIZES = {  # quick, full
	"create": (5000, 20000),
	"stat": (5000, 20000),
	"tree_dirs": (200, 1000),	 # tree: dirs x files_per_dir files
	"tree_files_per_dir": (50, 105),
	"bigdir": (20000, 100000),
	"data_mib": (256, 1024),
	"untar": (5000, 22000),
	"appends": (50000, 200000),
}


def log(*a):
	print(*a, file=sys.stderr, flush=True)


def run(cmd, timeout=600, **kw):
	return subprocess.run(cmd, check=True, timeout=timeout, **kw)


def drop_caches():
	os.sync()
	with open("/proc/sys/vm/drop_caches", "w") as f:
		f.write("3")


# --- layers -------------------------------------------------------------------------------------

def write_file(path, size=0, data=b""):
	with open(path, "wb") as f:
		if data:
			f.write(data)
		elif size:
			f.truncate(size)


def build_layers(root, sz, reps, nlowers=3):
	"""lower0 (top) .. lower2: a tree split over the lowers, a big directory with whiteouts, files
	to stat, big data files (one per repetition, for copy-up), a tarball's source."""
	lowers = [os.path.join(root, f"lower{i}") for i in range(nlowers)]
	for d in lowers:
		os.makedirs(d)
	# tree: directory i lives in lower (i % nlowers); every third one also in the next lower
	for i in range(sz["tree_dirs"]):
		for k, lo in enumerate(lowers):
			if k != i % nlowers and not (i % 3 == 0 and k == (i + 1) % nlowers):
				continue
			d = os.path.join(lo, "tree", f"d{i // 50}", f"e{i}")
			os.makedirs(d, exist_ok=True)
			for j in range(sz["tree_files_per_dir"] // (2 if i % 3 == 0 else 1)):
				write_file(os.path.join(d, f"f{k}_{j}"), data=b"x" * (j % 7))
	# bigdir: spread over three lowers; the top lower whites out every 10th name of the others
	for j in range(sz["bigdir"]):
		lo = lowers[j % nlowers]
		os.makedirs(os.path.join(lo, "big"), exist_ok=True)
		write_file(os.path.join(lo, "big", f"n{j:07d}"))
		if j % 10 == 1 and j % nlowers != 0:
			os.mknod(os.path.join(lowers[0], "big", f"n{j:07d}"), 0o600 | 0o020000, 0)
	os.makedirs(os.path.join(lowers[1], "stat"))
	for j in range(sz["stat"]):
		write_file(os.path.join(lowers[1], "stat", f"s{j}"), data=b"s")
	os.makedirs(os.path.join(lowers[2], "data"))
	chunk = os.urandom(1 << 20)
	for r in range(reps):
		with open(os.path.join(lowers[2], "data", f"big{r}"), "wb") as f:
			for _ in range(sz["data_mib"]):
				f.write(chunk)
	# the untar source: a tree of small files, tarred once outside the layers
	src = os.path.join(root, "tarsrc", "t")
	for j in range(sz["untar"]):
		d = os.path.join(src, f"d{j // 100}")
		os.makedirs(d, exist_ok=True)
		write_file(os.path.join(d, f"f{j}"), data=b"y" * (j % 4096))
	run(["tar", "cf", os.path.join(root, "src.tar"), "-C", os.path.join(root, "tarsrc"), "t"])
	shutil.rmtree(os.path.join(root, "tarsrc"))
	return lowers


# --- targets ------------------------------------------------------------------------------------

class Target:
	"""A mounted view of the layers at self.mnt; self.pid is the daemon's, if any."""
	daemon = None

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
				raise RuntimeError(f"{self.name}: mount failed, see {self.logf.name}")
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


class Raw(Target):
	def mount(self):
		# The merged tree, as the kernel shows it, copied into a plain directory.
		k = Kernel("kernel-for-raw", os.path.join(self.root, "k"), self.lowers)
		k.mount()
		try:
			run(["cp", "-a", k.mnt + "/.", self.mnt])
		finally:
			k.umount()
		shutil.rmtree(k.root)


class Kernel(Target):
	def mount(self):
		run(["mount", "-t", "overlay", "overlay", "-o", self.opts(), self.mnt])


class FuseOverlayfs(Target):
	def mount(self):
		self.start_daemon(["fuse-overlayfs", "-f", "-o", self.opts(), self.mnt])


class Plyfs(Target):
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


# --- workloads ----------------------------------------------------------------------------------
# Each takes (target, rep, sizes) and returns seconds; setup outside the timed part.

def timed(fn):
	t0 = time.perf_counter()
	fn()
	return time.perf_counter() - t0


def w_create(t, rep, sz):
	d = os.path.join(t.mnt, f"create{rep}")
	os.mkdir(d)
	names = [os.path.join(d, f"c{j}") for j in range(sz["create"])]

	def go():
		for p in names:
			os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
	return timed(go)


def w_unlink(t, rep, sz):
	d = os.path.join(t.mnt, f"create{rep}")
	names = [os.path.join(d, f"c{j}") for j in range(sz["create"])]
	r = timed(lambda: [os.unlink(p) for p in names])
	os.rmdir(d)
	return r


def stat_names(t, sz):
	return [os.path.join(t.mnt, "stat", f"s{j}") for j in range(sz["stat"])]


def w_stat_warm(t, rep, sz):
	names = stat_names(t, sz)
	for p in names:
		os.lstat(p)
	return timed(lambda: [os.lstat(p) for p in names])


def w_stat_cold(t, rep, sz):
	names = stat_names(t, sz)
	drop_caches()
	return timed(lambda: [os.lstat(p) for p in names])


def find(t):
	run(["find", os.path.join(t.mnt, "tree")], stdout=subprocess.DEVNULL)


def w_find_warm(t, rep, sz):
	find(t)
	return timed(lambda: find(t))


def w_find_cold(t, rep, sz):
	drop_caches()
	return timed(lambda: find(t))


def statwalk(top):
	n = 0
	for dirpath, dirnames, filenames in os.walk(top):
		for x in dirnames + filenames:
			os.lstat(os.path.join(dirpath, x))
			n += 1
	return n


def w_statwalk_warm(t, rep, sz):
	top = os.path.join(t.mnt, "tree")
	statwalk(top)
	return timed(lambda: statwalk(top))


def w_two_walkers(t, rep, sz):
	"""Two processes stat-walking the whole tree at once (warm)."""
	top = os.path.join(t.mnt, "tree")
	statwalk(top)
	code = "import sys; sys.path.insert(0, sys.argv[1]); import bench; bench.statwalk(sys.argv[2])"
	argv = [sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), top]

	def go():
		ps = [subprocess.Popen(argv) for _ in range(2)]
		for p in ps:
			if p.wait(timeout=600) != 0:
				raise RuntimeError("walker failed")
	return timed(go)


def w_bigdir_present(t, rep, sz):
	p = os.path.join(t.mnt, "big", f"n{(sz['bigdir'] // 2 + rep * 3):07d}")
	drop_caches()
	return timed(lambda: os.lstat(p))


def w_bigdir_absent(t, rep, sz):
	p = os.path.join(t.mnt, "big", f"absent{rep}")
	drop_caches()

	def go():
		try:
			os.lstat(p)
		except FileNotFoundError:
			pass
	return timed(go)


def w_ls_l(t, rep, sz):
	d = os.path.join(t.mnt, "big")
	drop_caches()
	return timed(lambda: run(["ls", "-l", d], stdout=subprocess.DEVNULL))


def write_data(path, mib, sync):
	chunk = b"w" * (1 << 20)
	fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
	try:
		for _ in range(mib):
			os.write(fd, chunk)
		if sync:
			os.fsync(fd)
	finally:
		os.close(fd)


def w_write(t, rep, sz):
	p = os.path.join(t.mnt, f"w{rep}")
	r = timed(lambda: write_data(p, sz["data_mib"], False))
	os.unlink(p)
	return r


def w_write_fsync(t, rep, sz):
	p = os.path.join(t.mnt, f"w{rep}")
	r = timed(lambda: write_data(p, sz["data_mib"], True))
	os.unlink(p)
	return r


def w_copy_up(t, rep, sz):
	"""Open a lower file of data_mib MiB for writing, append a byte, fsync: the copy-up and the
	sync it owes. Each repetition uses its own lower file."""
	p = os.path.join(t.mnt, "data", f"big{rep}")

	def go():
		fd = os.open(p, os.O_WRONLY | os.O_APPEND)
		try:
			os.write(fd, b"!")
			os.fsync(fd)
		finally:
			os.close(fd)
	return timed(go)


def w_untar(t, rep, sz):
	d = os.path.join(t.mnt, f"untar{rep}")
	os.mkdir(d)
	tarball = os.path.join(os.path.dirname(t.root), "src.tar")
	return timed(lambda: run(["tar", "xf", tarball, "-C", d]))


def w_tar_c(t, rep, sz):
	d = os.path.join(t.mnt, f"untar{rep}")
	drop_caches()
	# GNU tar skips reading file data when the archive is /dev/null: write to a pipe.
	return timed(lambda: run(["sh", "-c", 'tar cf - -C "$1" . | cat >/dev/null', "sh", d]))


def w_rm_rf(t, rep, sz):
	d = os.path.join(t.mnt, f"untar{rep}")
	return timed(lambda: run(["rm", "-rf", d]))


def w_appends(t, rep, sz):
	p = os.path.join(t.mnt, f"app{rep}")
	fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)

	def go():
		for _ in range(sz["appends"]):
			os.write(fd, b"abc\n")
	try:
		r = timed(go)
	finally:
		os.close(fd)
	os.unlink(p)
	return r


# (name, function, unit of the size it works on) in the order they run: create before unlink,
# untar before tar c and rm -rf.
WORKLOADS = [
	("create", w_create), ("unlink", w_unlink),
	("stat warm", w_stat_warm), ("stat cold", w_stat_cold),
	("find warm", w_find_warm), ("find cold", w_find_cold),
	("stat-walk warm", w_statwalk_warm), ("two walkers warm", w_two_walkers),
	("bigdir lookup present", w_bigdir_present), ("bigdir lookup absent", w_bigdir_absent),
	("ls -l bigdir", w_ls_l),
	("write", w_write), ("write+fsync", w_write_fsync), ("copy-up", w_copy_up),
	("untar", w_untar), ("tar c", w_tar_c), ("rm -rf", w_rm_rf),
	("4-byte appends", w_appends),
]

# Goals of the performance issue, as (workload, limit of the ratio to kernel overlayfs).
# Every workload also has the goal "faster than fuse-overlayfs".
GOALS = {
	"stat warm": 1.3, "find warm": 1.3, "stat-walk warm": 1.3,
	"stat cold": 2.0, "find cold": 2.0, "bigdir lookup present": 2.0, "bigdir lookup absent": 2.0,
	"create": 5.0, "unlink": 5.0, "untar": 5.0, "ls -l bigdir": 2.0, "4-byte appends": 2.0,
	"write+fsync": 2.0, "write": 3.0, "copy-up": 1.0,
}
RSS_GOAL_MIB = 10
ARGS_SCRATCH = ["/var/tmp"]  # where the layers are, for the machine line


def bench_target(t, sz, reps, results):
	log(f"== {t.name}: mounting")
	t.mount()
	try:
		for name, fn in WORKLOADS:
			times = []
			for rep in range(reps):
				times.append(fn(t, rep, sz))
			results.setdefault(name, {})[t.name] = statistics.median(times)
			log(f"   {name:24s} {statistics.median(times):9.4f} s  {['%.4f' % x for x in times]}")
		# daemon memory once its caches are gone, after every walk above
		drop_caches()
		time.sleep(1)
		rss, cpu = daemon_usage(t.pid)
		results.setdefault("daemon RSS (MiB)", {})[t.name] = rss
		results.setdefault("daemon CPU (s)", {})[t.name] = cpu
	finally:
		t.umount()


def machine():
	model = "?"
	try:
		with open("/proc/cpuinfo") as f:
			model = next(line.split(":", 1)[1].strip() for line in f
				     if line.startswith("model name"))
	except (OSError, StopIteration):
		pass
	mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
	fs = subprocess.run(["findmnt", "-no", "FSTYPE", "-T", ARGS_SCRATCH[0]], capture_output=True,
			    text=True).stdout
	return (f"{os.cpu_count()} x {model}, {mem:.0f} GiB, Linux {platform.release()}, "
		f"layers on {fs.strip()}")


def fmt(v, unit=""):
	if v is None:
		return "—"
	if unit == "s":
		return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
	return f"{v:.1f}"


def report(results, order, out, args, sz, elapsed):
	lines = [f"# plyfs benchmark ({'quick' if args.quick else 'full'})", "",
		 f"Machine: {machine()}.  ",
		 f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; whole run "
		 f"{elapsed:.0f} s; each cell the median of {args.reps} runs; ratio = time / kernel "
		 "overlayfs' time (lower is better).  ",
		 "Sizes: " + ", ".join(f"{k}={v}" for k, v in sz.items()), ""]
	hdr = "| workload | " + " | ".join(order) + " | goal (plyfs) | met |"
	lines += [hdr, "|" + "---|" * (len(order) + 3)]
	for name, _ in WORKLOADS:
		row = results.get(name, {})
		k = row.get("kernel")
		cells = []
		for tn in order:
			v = row.get(tn)
			ratio = f" ({v / k:.2f}×)" if v is not None and k and tn != "kernel" else ""
			cells.append(fmt(v, "s") + ratio)
		p, fo = row.get("plyfs"), row.get("fuse-overlayfs")
		goal = GOALS.get(name)
		text = [f"≤ {goal}× kernel"] if goal else []
		met = True
		if goal and (p is None or not k or p / k > goal):
			met = False
		text.append("< fuse-overlayfs")
		if p is None or fo is None or p >= fo:
			met = False
		lines.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(text)} | "
			     f"{'met' if met else '**not met**'} |")
	for extra, goal in (("daemon RSS (MiB)", RSS_GOAL_MIB), ("daemon CPU (s)", None)):
		row = results.get(extra, {})
		cells = [fmt(row.get(tn)) for tn in order]
		p = row.get("plyfs")
		met = "" if goal is None else ("met" if p is not None and p <= goal else "**not met**")
		lines.append(f"| {extra} | " + " | ".join(cells) + f" | {'≤ %d MiB' % goal if goal else ''}"
			     f" | {met} |")
	lines += ["", "passthrough_hp (libfuse's example) is not packaged by Debian and is not a "
		  "target here.", ""]
	with open(os.path.join(out, "latest.md"), "w") as f:
		f.write("\n".join(lines))
	with open(os.path.join(out, "latest.json"), "w") as f:
		json.dump({"machine": machine(), "sizes": sz, "results": results}, f, indent=1)
	chart(results, order, out)
	print("\n".join(lines))


def chart(results, order, out):
	if not shutil.which("gnuplot"):
		log("gnuplot not installed: no chart")
		return
	others = [tn for tn in order if tn != "kernel"]
	dat = os.path.join(out, "latest.dat")
	with open(dat, "w") as f:
		f.write("workload " + " ".join(f'"{tn}"' for tn in others) + "\n")
		for name, _ in WORKLOADS:
			row = results.get(name, {})
			k = row.get("kernel")
			vals = [(row[tn] / k) if k and row.get(tn) else float("nan") for tn in others]
			f.write(f'"{name}" ' + " ".join(f"{v:.4f}" for v in vals) + "\n")
	script = f"""
set terminal svg size 1200,600 dynamic font 'sans,11'
set output '{os.path.join(out, "latest.svg")}'
set title 'time relative to kernel overlayfs (1 = kernel; log scale; lower is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid border -1
set logscale y
set yrange [0.1:*]
set xtics rotate by -35
set key outside right top
set grid ytics
plot for [i=2:{len(others) + 1}] '{dat}' using i:xtic(1) title columnheader(i), 1 notitle lw 2 lc rgb 'black'
"""
	subprocess.run(["gnuplot"], input=script, text=True, check=False, timeout=60)
	os.unlink(dat)


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("--plyfs", required=True)
	ap.add_argument("--previous")
	ap.add_argument("--quick", action="store_true")
	ap.add_argument("--reps", type=int, default=3)
	ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
	ap.add_argument("--scratch", default="/var/tmp")
	ap.add_argument("--only", help="comma-separated target names")
	args = ap.parse_args()
	args.reps = max(3, args.reps)
	ARGS_SCRATCH[0] = args.scratch
	sz = {k: v[0 if args.quick else 1] for k, v in SIZES.items()}
	Plyfs.binary = os.path.abspath(args.plyfs)
	os.makedirs(args.out, exist_ok=True)
	t0 = time.monotonic()
	root = tempfile.mkdtemp(prefix="plyfs-bench.", dir=args.scratch)
	try:
		log(f"building layers in {root}")
		lowers = build_layers(root, sz, args.reps)
		targets = [Raw("raw", os.path.join(root, "raw"), lowers),
			   Kernel("kernel", os.path.join(root, "kernel"), lowers)]
		if shutil.which("fuse-overlayfs"):
			targets.append(FuseOverlayfs("fuse-overlayfs", os.path.join(root, "fo"), lowers))
		targets.append(Plyfs("plyfs", os.path.join(root, "plyfs"), lowers))
		if args.previous:
			prev = Plyfs("plyfs-prev", os.path.join(root, "prev"), lowers)
			prev.binary = os.path.abspath(args.previous)
			targets.append(prev)
		if args.only:
			keep = set(args.only.split(",")) | {"kernel"}
			targets = [t for t in targets if t.name in keep]
		results = {}
		for t in targets:
			bench_target(t, sz, args.reps, results)
		report(results, [t.name for t in targets], args.out, args, sz, time.monotonic() - t0)
	finally:
		for d in os.listdir(root):
			mp = os.path.join(root, d, "mnt")
			if os.path.ismount(mp):
				subprocess.run(["umount", "-l", mp], check=False, timeout=60)
		shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
	main()
