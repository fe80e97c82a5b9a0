# SPDX-License-Identifier: GPL-2.0-or-later
"""containers_tests.py - real containers on plyfs: podman and buildah as root.

Each test gets a Ctx: the Engine (containers_env.py) whose storage has the images BASE (the
Debian tarball imported) and FIXTURE (BASE plus containers_scenario.FIXTURE), the package to
install and its version. A test returns a list of errors; it removes its containers itself,
and the harness then checks that no container, mount or plyfs daemon of the engine is left.
"""

import errno
import os

import containers_env
import containers_scenario as sc
from mounts import Failure

BASE = "localhost/plyfs-ci/base:latest"
FIXTURE = "localhost/plyfs-ci/fixture:latest"


class Ctx:
	def __init__(self, engine, deb, version, work):
		self.e, self.deb, self.version, self.work = engine, deb, version, work
		self.notes = []


def make_images(e, rootfs):
	"""Imports the tarball as BASE and commits FIXTURE on it."""
	e.podman("import", rootfs, BASE)
	e.start("fixture", BASE, sc.FIXTURE)
	rc = e.wait_exit("fixture")
	if rc != 0:
		raise Failure("fixture container exited %d:\n%s" % (rc, e.logs("fixture")))
	e.podman("commit", "fixture", FIXTURE)
	e.remove("fixture")


def served_by_plyfs(e, merged):
	"""Errors unless one running plyfs daemon of the engine has mount point `merged` (and, as
	root, `merged` is a fuse.plyfs mount here)."""
	errs = []
	pids = [p for p, (_, mp) in e.daemons().items() if mp == merged]
	if len(pids) != 1:
		errs.append("%d plyfs daemons serve %s, expected 1" % (len(pids), merged))
	if not e.user and merged not in e.fuse_mounts():
		errs.append("%s is not a fuse.plyfs mount: %r" % (merged, e.fuse_mounts()))
	return errs


def run_checked(e, name, image, script, opts=()):
	"""Runs `script` detached to its end; its log, or Failure unless it exited 0."""
	e.start(name, image, script, opts)
	rc = e.wait_exit(name)
	out = e.logs(name)
	e.remove(name)
	if rc != 0:
		raise Failure("container %s exited %d:\n%s" % (name, rc, containers_env.tail(out)))
	return out


def podman_commit(ctx):
	"""The scenario in a podman container, `podman commit`, and the committed image run: every
	change survived."""
	e = ctx.e
	e.podman("create", "--name", "changes", FIXTURE, "sh", "-c", sc.CHANGES + sc.WAIT)
	e.podman("cp", ctx.deb, "changes:/tmp/hello.deb")
	e.podman("start", "changes")
	live = e.wait_ready("changes")
	errs = served_by_plyfs(e, e.inspect("changes", "{{.GraphDriver.Data.MergedDir}}"))
	e.stop("changes")
	errs += sc.check_live(live, ctx.version)
	e.podman("commit", "changes", "localhost/plyfs-ci/changed")
	e.remove("changes")
	committed = run_checked(e, "check", "localhost/plyfs-ci/changed", sc.CHECK)
	return errs + sc.check_same(live, committed)


def buildah_commit(ctx):
	"""The same through buildah from / copy / run / commit, checked in a buildah container of
	the committed image."""
	e = ctx.e
	c = e.buildah("from", "--name", "bchanges", FIXTURE).stdout.strip()
	merged = e.buildah("mount", c).stdout.strip()
	errs = served_by_plyfs(e, merged)
	e.buildah("umount", c)
	e.buildah("copy", c, ctx.deb, "/tmp/hello.deb")
	live = e.buildah("run", "--network", "none", c, "--", "sh", "-c", sc.CHANGES).stdout
	errs += sc.check_live(live, ctx.version)
	e.buildah("commit", c, "localhost/plyfs-ci/bchanged")
	e.buildah("rm", c)
	c = e.buildah("from", "--name", "bcheck", "localhost/plyfs-ci/bchanged").stdout.strip()
	committed = e.buildah("run", "--network", "none", c, "--", "sh", "-c", sc.CHECK).stdout
	e.buildah("rm", c)
	return errs + sc.check_same(live, committed)


# Ten steps: FROM and nine RUNs, each a container mounted, changed, unmounted, committed and
# removed (containers-storage removes its directories as soon as umount(2) returns: issue 11
# item 1's "directory not empty").
CONTAINERFILE = """FROM %s
RUN echo 1 > /step1
RUN echo appended >> /fixture/appendme
RUN rm /etc/issue.net
RUN mv /fixture/renameme /fixture/renamed
RUN mkdir /many && i=0 && while [ $i -lt 200 ]; do echo $i > /many/f$i; i=$((i + 1)); done
RUN rm -r /fixture/deldir
RUN cp -a /etc/apt /etc/apt.copy
RUN echo appended >> /fixture/appendme
RUN ls /many | wc -l > /listing
""" % FIXTURE

LAYERS_CHECK = """set -eu
cat /step1 /fixture/appendme /listing /fixture/renamed/sub/r2
ls /fixture
ls /many | wc -l
test ! -e /etc/issue.net && echo no-issue.net
diff -r /etc/apt /etc/apt.copy && echo same-apt
"""
LAYERS_WANT = ["1", "line1", "appended", "appended", "200", "r2", "appendme", "delfile",
	       "renamed", "200", "no-issue.net", "same-apt"]
ROUNDS = int(os.environ.get("PLYFS_CTR_LAYER_ROUNDS", "5"))  # the issue asks for 5


def buildah_layers(ctx):
	"""`buildah build --layers` (no cache, so every step runs) of CONTAINERFILE, ROUNDS times:
	every build succeeds and its image holds what the steps did."""
	e, errs = ctx.e, []
	d = os.path.join(ctx.work, "layers-ctx")
	os.makedirs(d, exist_ok=True)
	with open(os.path.join(d, "Containerfile"), "w") as f:
		f.write(CONTAINERFILE)
	base = int(e.podman("image", "inspect", "--format", "{{len .RootFS.Layers}}",
			    FIXTURE).stdout)
	for i in range(ROUNDS):
		tag = "localhost/plyfs-ci/layers:%d" % i
		cp = e.buildah("build", "--layers", "--no-cache", "--network", "none", "-t", tag,
			       "-f", os.path.join(d, "Containerfile"), d, check=False)
		if cp.returncode != 0 or "not empty" in cp.stderr:
			errs.append("build %d of %d failed (%d): %s" % (
				i + 1, ROUNDS, cp.returncode, cp.stderr.strip()[-1500:]))
			continue
		n = int(e.podman("image", "inspect", "--format", "{{len .RootFS.Layers}}",
				 tag).stdout)
		if n != base + 9:
			errs.append("build %d: %d layers, expected %d + 9" % (i + 1, n, base))
		out = run_checked(e, "layers%d" % i, tag, LAYERS_CHECK).split()
		if out != LAYERS_WANT:
			errs.append("build %d: the image holds %r, expected %r" % (i + 1, out, LAYERS_WANT))
	left = e.buildah("containers", "--quiet").stdout.split()
	if left:
		errs.append("buildah containers left after the builds: %r" % left)
	ctx.notes.append("%d builds of %d layers each" % (ROUNDS, 9))
	return errs


def image_mount(ctx):
	"""`podman image mount`: the image's plyfs mount shows its files, refuses writes (EROFS),
	and its daemon is gone after `podman image unmount`."""
	e, errs = ctx.e, []
	path = e.podman("image", "mount", FIXTURE).stdout.strip()
	errs += served_by_plyfs(e, path)
	daemons = {p: v for p, v in e.daemons().items() if v[1] == path}
	try:
		with open(os.path.join(path, "fixture/appendme")) as f:
			if f.read() != "line1\n":
				errs.append("fixture/appendme reads wrong")
		if not os.path.isfile(os.path.join(path, "etc/debian_version")):
			errs.append("etc/debian_version missing in the image mount")
		for what, fn in (("create", lambda: os.close(os.open(
					os.path.join(path, "new"), os.O_CREAT | os.O_WRONLY, 0o644))),
				 ("mkdir", lambda: os.mkdir(os.path.join(path, "newdir"))),
				 ("unlink", lambda: os.unlink(os.path.join(path, "fixture/delfile"))),
				 ("append", lambda: os.close(os.open(
					 os.path.join(path, "fixture/appendme"), os.O_WRONLY | os.O_APPEND)))):
			try:
				fn()
				errs.append("%s in the read-only image mount succeeded" % what)
			except OSError as ex:
				if ex.errno != errno.EROFS:
					errs.append("%s in the image mount: %s, expected EROFS" % (what, ex))
	finally:
		e.podman("image", "unmount", FIXTURE)
	left = e.wait_gone(daemons)
	if left:
		errs.append("plyfs daemons %r still running after podman image unmount" % left)
	if path in e.fuse_mounts():
		errs.append("%s still mounted after podman image unmount" % path)
	return errs


UIDMAP_SCRIPT = """set -eu
echo "== ids"
id -u
id -g
echo new > /newfile
mkdir /newdir
echo x > /newdir/f
chown 1000:1000 /newdir/f
echo appended >> /fixture/appendme
echo "== owners"
stat -c '%u:%g %n' /newfile /newdir /newdir/f /fixture/appendme /etc/passwd /
echo "== end"
""" + sc.WAIT
UIDMAP_WANT = ["0:0 /newfile", "0:0 /newdir", "1000:1000 /newdir/f", "0:0 /fixture/appendme",
	       "0:0 /etc/passwd", "0:0 /"]
HOST_ID = 100000


def _owner(path):
	st = os.lstat(path)
	return st.st_uid, st.st_gid


def _check_mapped(e, name, uid_base, gid_base):
	"""The container `name` ran UIDMAP_SCRIPT with its ids 0.. shifted to uid_base/gid_base..:
	the host sees them shifted through the mount and finds them stored unshifted in the upper
	layer; the committed image, run without a mapping, shows the owners seen inside. Stops,
	commits and removes the container."""
	errs = []
	merged = e.inspect(name, "{{.GraphDriver.Data.MergedDir}}")
	upper = e.inspect(name, "{{.GraphDriver.Data.UpperDir}}")
	errs += served_by_plyfs(e, merged)
	for pid, (_, mp) in e.daemons().items():
		if mp == merged and b"uidmapping=" not in open("/proc/%d/cmdline" % pid, "rb").read():
			errs.append("the daemon of %s got no uidmapping= option" % merged)
	for rel, shown, stored in (("newfile", 0, 0), ("newdir/f", 1000, 1000),
				   ("fixture/appendme", 0, 0), ("etc/passwd", 0, None), ("", 0, None)):
		want = (uid_base + shown, gid_base + shown)
		got = _owner(os.path.join(merged, rel))
		if got != want:
			errs.append("/%s through the mount on the host: %d:%d, expected %d:%d" % (
				(rel,) + got + want))
		if stored is not None:
			got = _owner(os.path.join(upper, rel))
			if got != (stored, stored):
				errs.append("/%s stored in the upper layer as %d:%d, expected %d:%d" % (
					(rel,) + got + (stored, stored)))
	e.stop(name)
	image = "localhost/plyfs-ci/" + name
	e.podman("commit", name, image)
	e.remove(name)
	out = run_checked(e, "unmapped", image,
			  "stat -c '%u:%g %n' /newfile /newdir /newdir/f /fixture/appendme /etc/passwd /"
			  " && cat /fixture/appendme")
	want = UIDMAP_WANT + ["line1", "appended"]
	if out.splitlines() != want:
		errs.append("committed image without a mapping: %r, expected %r" % (out.splitlines(),
											  want))
	return errs


def uidmap(ctx):
	"""`podman run --uidmap 0:100000:65536 --gidmap 0:100000:65536`: containers-storage passes
	uidmapping=:0:100000:65536 in fuse-overlayfs' meaning (ids stored in the layers 0.. are
	shown as 100000..). Inside, root owns the image's and its own files; the host sees them
	through the mount as 100000 and finds them stored as 0 in the upper layer; the committed
	image, run without a mapping, shows the same owners as inside."""
	e, errs = ctx.e, []
	maps = ["--uidmap", "0:%d:65536" % HOST_ID, "--gidmap", "0:%d:65536" % HOST_ID]
	e.start("mapped", FIXTURE, UIDMAP_SCRIPT, maps)
	s = sc.sections(e.wait_ready("mapped"))
	if s["ids"] != ["0", "0"]:
		errs.append("ids inside: %r, expected 0 0" % s["ids"])
	if s["owners"] != UIDMAP_WANT:
		errs.append("owners inside: %r, expected %r" % (s["owners"], UIDMAP_WANT))
	return errs + _check_mapped(e, "mapped", HOST_ID, HOST_ID)


AUTO_RANGE = 131072  # the subordinate ranges of containers_env.AUTO_USER: room for 2 containers


def _id_map(path):
	"""The one line of /proc/PID/uid_map or gid_map as (inside, outside, count), or None."""
	lines = [tuple(int(x) for x in line.split()) for line in open(path).read().splitlines()]
	return lines[0] if len(lines) == 1 and len(lines[0]) == 3 else None


def userns_auto(ctx):
	"""`podman run --userns=auto` as root: podman picks a free range of the subordinate ids of
	containers_env.AUTO_USER and passes it to plyfs as uidmapping=/gidmapping=. Inside, root owns
	the image's and its own files; the host sees them through the mount shifted by the range
	read from the container process's uid_map and gid_map, and finds them stored unshifted in
	the upper layer; the committed image, run without a mapping, shows the same owners."""
	import containers_rootless
	e, errs = ctx.e, []
	containers_rootless.ensure_user(ctx.notes, containers_env.AUTO_USER, AUTO_RANGE)
	e.start("auto", FIXTURE, UIDMAP_SCRIPT, ["--userns=auto"])
	s = sc.sections(e.wait_ready("auto"))
	if s["ids"] != ["0", "0"]:
		errs.append("ids inside: %r, expected 0 0" % s["ids"])
	if s["owners"] != UIDMAP_WANT:
		errs.append("owners inside: %r, expected %r" % (s["owners"], UIDMAP_WANT))
	pid = int(e.inspect("auto", "{{.State.Pid}}"))
	umap = _id_map("/proc/%d/uid_map" % pid)
	gmap = _id_map("/proc/%d/gid_map" % pid)
	ctx.notes.append("uid_map %r gid_map %r" % (umap, gmap))
	if umap is None or gmap is None or umap[0] != 0 or gmap[0] != 0 or umap[1] == 0 \
	   or gmap[1] == 0 or min(umap[2], gmap[2]) <= 1000:
		e.stop("auto")
		e.remove("auto")
		return errs + ["not one shifted range from 0 over 1000 ids: uid_map %r gid_map %r" % (
			umap, gmap)]
	return errs + _check_mapped(e, "auto", umap[1], gmap[1])


TEN = 10


def ten_detached(ctx):
	"""TEN detached containers at once, each writing through its own plyfs mount, then stopped
	and removed: every daemon that served them is gone afterwards (checked by PID)."""
	e, errs = ctx.e, []
	names = ["d%d" % i for i in range(TEN)]
	for n in names:
		e.start(n, FIXTURE, "echo %s > /who && echo more >> /fixture/appendme" % n + sc.WAIT)
	for n in names:
		e.wait_ready(n)
	daemons = e.daemons()
	for n in names:
		merged = e.inspect(n, "{{.GraphDriver.Data.MergedDir}}")
		errs += served_by_plyfs(e, merged)
		try:
			with open(os.path.join(merged, "who")) as f:
				if f.read() != n + "\n":
					errs.append("%s/who has the wrong content" % merged)
		except OSError as ex:
			errs.append("%s/who: %s" % (merged, ex))
	if len(daemons) != TEN:
		errs.append("%d plyfs daemons for %d containers" % (len(daemons), TEN))
	e.podman("stop", "-t", "120", *names)
	for n in names:
		rc = e.wait_exit(n)
		if rc != 0:
			errs.append("container %s exited %d" % (n, rc))
	e.remove(*names)
	left = e.wait_gone(daemons)
	if left:
		errs.append("plyfs daemons still running after podman rm: %r" % left)
	if e.fuse_mounts():
		errs.append("plyfs mounts left after podman rm: %r" % e.fuse_mounts())
	ctx.notes.append("%d daemons seen, all gone after podman rm" % len(daemons))
	return errs


TESTS = [
	("containers/podman_commit", podman_commit),
	("containers/buildah_commit", buildah_commit),
	("containers/buildah_layers", buildah_layers),
	("containers/image_mount", image_mount),
	("containers/uidmap", uidmap),
	("containers/userns_auto", userns_auto),
	("containers/ten_detached", ten_detached),
]
