# SPDX-License-Identifier: GPL-2.0-or-later
"""containers_image.py - the inputs of the container tests, made without a registry and cached
outside the clone (CI runs in a fresh clone on the same machine):

- a small Debian root filesystem: `debootstrap --variant=minbase` of the machine's own release
  from the machine's configured apt mirror (the first active `URIs:`/`deb` line of its apt
  sources that carries that release; a comment there may name an archive that cannot be
  reached, so comments are never read), with the apt lists, docs, man pages and locales removed,
  as an uncompressed tarball that `podman import` takes;
- a real package to install with `dpkg -i`: `hello`, fetched with `apt-get download`.

Both live in CACHE/<key>/ (CACHE is /var/cache/plyfs-ci, or $PLYFS_CI_CACHE), the key a hash of
the mirror, the release, the architecture and the recipe version, so a different mirror or
release never reuses another's tarball. Files appear there only complete (written under a temp
name, then renamed), under an exclusive lock, so two runs at once build them once.
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import time

from mounts import Failure

RECIPE = "minbase-trimmed-2"  # bump when the tarball's recipe changes
PACKAGE = "hello"
CACHE = os.environ.get("PLYFS_CI_CACHE", "/var/cache/plyfs-ci")
# Trimmed from the root filesystem (4089 entries -> about 2500): not needed to run a shell and
# dpkg, and every commit walks the whole tree twice through the mount (containers-storage's
# naive diff, used with a mount program), so each entry costs in every build step.
TRIM = ["var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
	"usr/share/locale", "usr/share/info", "usr/share/zoneinfo",
	"usr/lib/x86_64-linux-gnu/gconv"]


def _run(cmd, timeout, cwd=None):
	try:
		cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
				    timeout=timeout, cwd=cwd)
	except subprocess.TimeoutExpired:
		raise Failure("%s timed out after %ds" % (" ".join(cmd), timeout))
	if cp.returncode != 0:
		tail = (cp.stdout + cp.stderr).strip().splitlines()[-15:]
		raise Failure("%s failed (%d):\n%s" % (" ".join(cmd), cp.returncode, "\n".join(tail)))
	return cp.stdout


def os_codename():
	with open("/etc/os-release") as f:
		for line in f:
			k, _, v = line.strip().partition("=")
			if k == "VERSION_CODENAME" and v:
				return v.strip('"')
	raise Failure("/etc/os-release names no VERSION_CODENAME")


def _deb822_stanzas(text):
	"""The stanzas of a .sources file as dicts; comment lines are skipped."""
	out, cur, key = [], {}, None
	for line in text.splitlines() + [""]:
		if line.startswith("#"):
			continue
		if not line.strip():
			if cur:
				out.append(cur)
			cur, key = {}, None
		elif line[0] in " \t" and key:
			cur[key] += " " + line.strip()
		else:
			key, _, val = line.partition(":")
			key = key.strip().lower()
			cur[key] = val.strip()
	return out


def apt_sources():
	"""[(uri, [suites])] of the machine's active `deb` sources, in apt's reading order."""
	out = []
	lists = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
	for path in lists:
		try:
			text = open(path).read()
		except OSError:
			continue
		for line in text.splitlines():
			words = line.split("#", 1)[0].split()
			if len(words) >= 3 and words[0] == "deb":
				words = [w for w in words[1:] if not (w.startswith("[") or w.endswith("]"))]
				if len(words) >= 2:
					out.append((words[0], [words[1]]))
	for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
		try:
			stanzas = _deb822_stanzas(open(path).read())
		except OSError:
			continue
		for st in stanzas:
			if st.get("enabled", "yes").lower() == "no":
				continue
			if "deb" not in st.get("types", "").split() or not st.get("uris"):
				continue
			for uri in st["uris"].split():
				out.append((uri, st.get("suites", "").split()))
	return out


def mirror_and_suite():
	"""The mirror (first active source carrying this machine's release) and that release."""
	suite = os.environ.get("PLYFS_CI_SUITE") or os_codename()
	mirror = os.environ.get("PLYFS_CI_MIRROR")
	if mirror:
		return mirror, suite
	for uri, suites in apt_sources():
		if suite in suites and uri.startswith(("http://", "https://", "file:/")):
			return uri, suite
	raise Failure("no active apt source carries %s (set PLYFS_CI_MIRROR)" % suite)


def _arch():
	return _run(["dpkg", "--print-architecture"], 60).strip()


class Inputs:
	"""The tarball and the .deb, with what it took to get them (for the report)."""

	def __init__(self):
		self.rootfs = self.deb = None
		self.notes = []


def _locked(cache_dir, timeout):
	"""An exclusive lock on CACHE/<key>/lock, waited for at most `timeout` seconds."""
	fd = os.open(os.path.join(cache_dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
	deadline = time.monotonic() + timeout
	while True:
		try:
			fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
			return fd
		except BlockingIOError:
			if time.monotonic() > deadline:
				os.close(fd)
				raise Failure("%s/lock is held by another run for %ds" % (cache_dir, timeout))
			time.sleep(1)


def _build_rootfs(mirror, suite, arch, work, final):
	root = os.path.join(work, "rootfs")
	_run(["debootstrap", "--variant=minbase", "--arch=" + arch, suite, root, mirror], 1500)
	for rel in TRIM:
		d = os.path.join(root, rel)
		if os.path.isdir(d):
			for name in os.listdir(d):
				p = os.path.join(d, name)
				if os.path.isdir(p) and not os.path.islink(p):
					shutil.rmtree(p)
				else:
					os.unlink(p)
	tmp = final + ".tmp.%d" % os.getpid()
	_run(["tar", "--numeric-owner", "-C", root, "-cf", tmp, "."], 600)
	os.chmod(tmp, 0o644)
	os.rename(tmp, final)
	shutil.rmtree(root, ignore_errors=True)


def _fetch_deb(cache_dir):
	tmp = os.path.join(cache_dir, "download.%d" % os.getpid())
	os.makedirs(tmp, exist_ok=True)
	try:
		_run(["apt-get", "download", PACKAGE], 600, cwd=tmp)
		debs = glob.glob(os.path.join(tmp, PACKAGE + "_*.deb"))
		if len(debs) != 1:
			raise Failure("apt-get download %s left %r" % (PACKAGE, debs))
		os.chmod(debs[0], 0o644)
		final = os.path.join(cache_dir, os.path.basename(debs[0]))
		os.rename(debs[0], final)
		return final
	finally:
		shutil.rmtree(tmp, ignore_errors=True)


def prepare(work):
	"""Returns Inputs, building what the cache lacks (debootstrap needs `work`, a scratch dir
	that allows device nodes)."""
	inp = Inputs()
	mirror, suite = mirror_and_suite()
	arch = _arch()
	key = hashlib.sha256(("%s\n%s\n%s\n%s" % (mirror, suite, arch, RECIPE)).encode()).hexdigest()
	cache_dir = os.path.join(CACHE, "debian-%s-%s-%s" % (suite, arch, key[:12]))
	os.makedirs(cache_dir, mode=0o755, exist_ok=True)
	os.chmod(CACHE, 0o755)
	lock = _locked(cache_dir, 1800)
	try:
		with open(os.path.join(cache_dir, "KEY"), "w") as f:
			f.write("mirror %s\nsuite %s\narch %s\nrecipe %s\n" % (mirror, suite, arch, RECIPE))
		inp.rootfs = os.path.join(cache_dir, "rootfs.tar")
		if os.path.exists(inp.rootfs):
			inp.notes.append("rootfs: cached %s (%d MB; debootstrap --variant=minbase %s "
					 "from %s)" % (inp.rootfs, os.path.getsize(inp.rootfs) >> 20,
						       suite, mirror))
		else:
			t0 = time.monotonic()
			_build_rootfs(mirror, suite, arch, work, inp.rootfs)
			inp.notes.append("rootfs: built %s in %.0fs (%d MB; debootstrap --variant=minbase "
					 "%s from %s), cached for the next runs" % (
						 inp.rootfs, time.monotonic() - t0,
						 os.path.getsize(inp.rootfs) >> 20, suite, mirror))
		debs = sorted(glob.glob(os.path.join(cache_dir, PACKAGE + "_*.deb")))
		if debs:
			inp.deb = debs[-1]
			inp.notes.append("package: cached %s" % inp.deb)
		else:
			t0 = time.monotonic()
			inp.deb = _fetch_deb(cache_dir)
			inp.notes.append("package: apt-get download %s in %.0fs -> %s, cached" % (
				PACKAGE, time.monotonic() - t0, inp.deb))
	finally:
		os.close(lock)
	return inp


def deb_field(deb, field):
	return _run(["dpkg-deb", "-f", deb, field], 60).strip()
