# SPDX-License-Identifier: GPL-2.0-or-later
"""userns.py - the overlay xattr format decided at mount (fs.h), user namespaces, rootless users,
failed metadata writes, and device nodes (nodev by default).

- root_in_userns: plyfs mounted by uid 0 of a user namespace (`unshare -Urm`, rootless podman's
  setup): the kernel refuses it trusted.* there, so plyfs must write user.overlay.*. `mv` of a
  lower directory works (rename(2) gives EXDEV as kernel overlayfs' userxattr does, and mv
  copies), files are created and removed, and kernel overlayfs mounted in the same namespace with
  `userxattr` on the same layers shows the same merged tree.
- rootless_user: the same as a created user with subuid/subgid ranges, plyfs mounted through
  fusermount3 (a 0666 node of /dev/fuse bound over it in this run's namespace only), the kernel
  readback in the user's own namespace.
- userxattr_option: -o userxattr as root writes user.overlay.* (an opaque directory), a lower
  directory's rename gives EXDEV (kernel: same), and the kernel with userxattr reads it back.
- noxattr_upper: upper and workdir on ramfs, which takes no xattrs: the copy-up's origin is not
  recorded, as the kernel goes on without it, but the status query counts it under `metadata`
  and the log says so; the chosen format is logged.
- device_nodes: a character device of a lower layer cannot be opened through a
  root mount (EACCES, as kernel overlayfs mounted nodev answers) unless -o dev is given.

The namespace parts run this file as `--inner MODE DIR BINARY` inside `unshare` (or as the user),
with --fork --pid --kill-child where a namespace is made: whatever the inner run leaves (its
daemon, its mounts) dies with it, and every wait is bounded.
"""

import errno
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import handles  # noqa: E402
import lifecycle  # noqa: E402
import mounts  # noqa: E402
from mounts import Failure, t  # noqa: E402

USER = "plyfs-rootless"
SUBIDS = "400000-465535"
STATUS_XATTR = "user.plyfs.status"
# The inner run needs only the standard library; the system's python is reachable by the user
# (a python under /root may not be, nor inside the user's namespace).
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


class Ctx(lifecycle.Ctx):
	GROUP = "userns"


# --- the layers and what is done to them ----------------------------------------------------------

def write(path, data):
	os.makedirs(os.path.dirname(path), exist_ok=True)
	with open(path, "w") as f:
		f.write(data)


def build_lower(d):
	write(os.path.join(d, "d/f"), "f in d")
	write(os.path.join(d, "d/sub/g"), "g in d/sub")
	write(os.path.join(d, "e/x"), "x in e")
	write(os.path.join(d, "file"), "a lower file")
	write(os.path.join(d, "keep"), "unchanged")
	write(os.path.join(d, "moved"), "renamed and unlinked while open")
	write(os.path.join(d, "linked"), "linked to another name")
	write(os.path.join(d, "hl"), "a lower hard link")
	os.link(os.path.join(d, "hl"), os.path.join(d, "hl2"))
	os.symlink("file", os.path.join(d, "sym"))


def walk(root):
	"""{relative path: description} of a merged tree, never following a symlink."""
	out = {}
	for dirpath, dirs, files in os.walk(root):
		for n in dirs + files:
			p = os.path.join(dirpath, n)
			rel = os.path.relpath(p, root)
			try:
				st = os.lstat(p)
			except OSError as e:	# the kernel refusing a redirect: EPERM
				out[rel] = "error %s" % errno.errorcode.get(e.errno, e.errno)
				continue
			if stat.S_ISDIR(st.st_mode):
				out[rel] = "dir %o" % stat.S_IMODE(st.st_mode)
			elif stat.S_ISLNK(st.st_mode):
				out[rel] = "symlink -> %s" % os.readlink(p)
			elif stat.S_ISREG(st.st_mode):
				with open(p, "rb") as f:
					out[rel] = "file %o %s" % (stat.S_IMODE(st.st_mode),
								   hashlib.sha256(f.read()).hexdigest()[:16])
			else:
				out[rel] = "other %o" % st.st_mode
	return out


def rename_errno(old, new):
	try:
		os.rename(old, new)
		return 0
	except OSError as e:
		return e.errno


def do_work(m):
	"""The changes every mount here gets; returns what they answered (a failed step is
	recorded in "failed", and the rest still run)."""
	res = {"failed": []}
	cp = subprocess.run(["mv", os.path.join(m, "d"), os.path.join(m, "d2")],
			    capture_output=True, timeout=60)
	res["mv"] = [cp.returncode, cp.stderr.decode(errors="replace").strip()]
	res["rename_errno"] = rename_errno(os.path.join(m, "e"), os.path.join(m, "e2"))

	def append(p):
		with open(p, "a") as f:
			f.write(" appended")
	steps = [
		("unlink file", lambda: os.unlink(os.path.join(m, "file"))),
		("unlink e/x", lambda: os.unlink(os.path.join(m, "e/x"))),
		("create new/inner", lambda: write(os.path.join(m, "new/inner"), "created")),
		("append to d2/f", lambda: append(os.path.join(m, "d2/f"))),
		("chmod keep", lambda: os.chmod(os.path.join(m, "keep"), 0o600)),	# a copy-up
		("rmdir e", lambda: os.rmdir(os.path.join(m, "e"))),
		("mkdir e", lambda: os.mkdir(os.path.join(m, "e"))),	# over a whiteout: opaque
	]
	for what, fn in steps:
		try:
			fn()
		except OSError as e:
			res["failed"].append("%s: %s" % (what, e.strerror))
	res.update(renamed_copies(m))
	return res


def renamed_copies(m):
	"""A file copied up, then renamed or linked to a name whose lower entry is not it: rootless,
	its origin cannot be verified by name then, and it must stay one file (one node): fstat of
	an fd of it still works after its new name is unlinked, and both names of a link show 2."""
	out = {}
	fd = os.open(os.path.join(m, "moved"), os.O_RDWR)
	try:
		os.rename(os.path.join(m, "moved"), os.path.join(m, "moved2"))
		os.unlink(os.path.join(m, "moved2"))
		try:
			os.fstat(fd)
			out["fstat_after_unlink"] = 0
		except OSError as e:
			out["fstat_after_unlink"] = e.errno
	finally:
		os.close(fd)
	os.link(os.path.join(m, "linked"), os.path.join(m, "linked2"))
	out["link_nlink"] = [os.lstat(os.path.join(m, x)).st_nlink for x in ("linked", "linked2")]
	os.unlink(os.path.join(m, "linked2"))
	# No index rootless: the name copied up is its own file, with one link (index.h).
	out["split_nlink"] = [os.lstat(os.path.join(m, "hl")).st_nlink]
	fd = os.open(os.path.join(m, "hl"), os.O_RDWR)
	os.close(fd)
	out["split_nlink"] += [os.lstat(os.path.join(m, x)).st_nlink for x in ("hl", "hl2")]
	return out


# --- the inner run (in a namespace, or as the user) -----------------------------------------------

def wait_for(cond, seconds):
	end = time.monotonic() + seconds
	while time.monotonic() < end:
		if cond():
			return True
		time.sleep(0.05)
	return cond()


def ismount(m):
	return mounts.mounted_at(m)


def inner_plyfs(d, binary, extra):
	"""Mounts BINARY -f on d/m, works, walks, unmounts; the result as a dict."""
	m = os.path.join(d, "m")
	o = "lowerdir=%s,upperdir=%s,workdir=%s" % (os.path.join(d, "l"), os.path.join(d, "u"),
						   os.path.join(d, "w")) + extra
	log = open(os.path.join(d, "daemon.log"), "ab")
	p = subprocess.Popen([binary, "-f", "-o", o, m], stdin=subprocess.DEVNULL, stdout=log,
			     stderr=log)
	res = {}
	try:
		if not wait_for(lambda: ismount(m) or p.poll() is not None, 15) or p.poll() is not None:
			raise RuntimeError("plyfs did not mount (exit %r)" % p.poll())
		res.update(do_work(m))
		res["tree"] = walk(m)
	finally:
		if ismount(m):
			um = ["umount", m] if os.geteuid() == 0 else ["fusermount3", "-u", m]
			subprocess.run(um, capture_output=True, timeout=30)
		try:
			res["exit"] = p.wait(timeout=15)
		except subprocess.TimeoutExpired:
			p.kill()
			p.wait()
			res["exit"] = "killed"
	return res


def inner_kernel(d):
	"""Kernel overlayfs with userxattr on the same layers (a fresh workdir): its tree."""
	km, w2 = os.path.join(d, "km"), os.path.join(d, "kw")
	for x in (km, w2):
		os.makedirs(x, exist_ok=True)
	o = "lowerdir=%s,upperdir=%s,workdir=%s,userxattr" % (os.path.join(d, "l"),
							       os.path.join(d, "u"), w2)
	cp = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", o, km], capture_output=True,
			    timeout=30)
	if cp.returncode != 0:
		return {"kernel_error": cp.stderr.decode(errors="replace").strip()}
	try:
		return {"kernel_tree": walk(km)}
	finally:
		subprocess.run(["umount", km], capture_output=True, timeout=30)


def inner(mode, d, binary, extra=""):
	res = {}
	if mode in ("plyfs", "both"):
		res.update(inner_plyfs(d, binary, extra))
	if mode in ("kernel", "both"):
		res.update(inner_kernel(d))
	print(json.dumps(res))
	return 0


# --- the outer side -------------------------------------------------------------------------------

def run_inner(ctx, prefix, mode, extra=""):
	"""Runs the inner part under `prefix` (unshare ..., setpriv ...); its JSON result."""
	src = ctx.path("py")
	if not os.path.isdir(src):	# the checkout may be unreadable to the user
		os.makedirs(src)
		for n in os.listdir(HERE):
			if n.endswith(".py"):
				shutil.copy(os.path.join(HERE, n), src)
		os.chmod(ctx.dir, 0o755)
	argv = list(prefix) + [PYTHON, "-B", os.path.join(src, "userns.py"), "--inner",
			       mode, ctx.path("t"), ctx.opts.binary, extra]
	try:
		cp = subprocess.run(argv, capture_output=True, timeout=t(120), env=ctx.env())
	except subprocess.TimeoutExpired:
		raise Failure("%s timed out" % " ".join(argv[:8]))
	if cp.returncode != 0:
		raise Failure("inner %s exited %d: %s" % (mode, cp.returncode,
							  cp.stderr.decode(errors="replace")[-1500:]))
	return json.loads(cp.stdout.decode().strip().splitlines()[-1])


def layers(ctx, owner=None):
	d = ctx.path("t")
	build_lower(os.path.join(d, "l"))
	for x in ("u", "w", "m"):
		os.makedirs(os.path.join(d, x))
	if owner is not None:
		for root, dirs, files in os.walk(d):
			for n in [root] + [os.path.join(root, x) for x in dirs + files]:
				os.lchown(n, owner, owner)
		for p in (ctx.dir, os.path.dirname(ctx.dir)):
			os.chmod(p, 0o755)
	return d


def expected_tree():
	return {"d2": "dir 755", "d2/f": None, "d2/sub": "dir 755", "d2/sub/g": None,
		"e": "dir 755", "hl": None, "hl2": None, "keep": None, "linked": None, "new": "dir 755", "new/inner": None,
		"sym": "symlink -> file"}


def check_tree(res, what):
	errs = []
	tree = res.get("tree", {})
	exp = expected_tree()
	if sorted(tree) != sorted(exp):
		errs.append("%s: merged tree %s, expected the names %s" % (what, sorted(tree),
									  sorted(exp)))
	for k, v in exp.items():
		if v and tree.get(k) != v:
			errs.append("%s: %s is %r, expected %r" % (what, k, tree.get(k), v))
	return errs


def check_common(res, daemon_log, want_prefix):
	errs = []
	if res["mv"][0] != 0:
		errs.append("mv of a lower directory failed: %s" % res["mv"][1])
	if res["rename_errno"] != errno.EXDEV:
		errs.append("rename(2) of a lower directory: %s, kernel overlayfs with userxattr "
			    "(and fuse-overlayfs): EXDEV" % (os.strerror(res["rename_errno"])
							     if res["rename_errno"] else "success"))
	errs += ["through plyfs, " + x for x in res.get("failed", [])]
	if res.get("fstat_after_unlink"):
		errs.append("fstat of an open file copied up, renamed and unlinked: %s (kernel "
			    "overlayfs: success)" % os.strerror(res["fstat_after_unlink"]))
	if res.get("split_nlink") != [2, 1, 2]:
		errs.append("st_nlink of a lower hard link before, after its copy-up, and of its "
			    "other name: %s (kernel overlayfs, userxattr: [2, 1, 2])"
			    % res.get("split_nlink"))
	if res.get("link_nlink") != [2, 2]:
		errs.append("st_nlink of a copied-up file and its new link: %s (kernel overlayfs: "
			    "[2, 2])" % res.get("link_nlink"))
	errs += check_tree(res, "plyfs")
	if res.get("exit") != 0:
		errs.append("the daemon exited %r after umount" % res.get("exit"))
	if "kernel_error" in res:
		errs.append("kernel overlayfs (userxattr) did not mount plyfs' upper: %s"
			    % res["kernel_error"])
	elif res.get("kernel_tree") != res.get("tree"):
		k, p = res.get("kernel_tree", {}), res.get("tree", {})
		for n in sorted(set(k) | set(p)):
			if k.get(n) != p.get(n):
				errs.append("kernel (userxattr) readback differs at %s: kernel %r, "
					    "plyfs %r" % (n, k.get(n), p.get(n)))
	if want_prefix and ("overlay xattrs: %s" % want_prefix) not in daemon_log:
		errs.append("the daemon did not log the format %s: %s" % (want_prefix,
									    daemon_log[-600:]))
	return errs


def upper_xattrs(d):
	"""Every xattr name on the upper layer's entries (as root)."""
	names = set()
	for root, dirs, files in os.walk(os.path.join(d, "u")):
		for n in dirs + files:
			try:
				names.update(os.listxattr(os.path.join(root, n), follow_symlinks=False))
			except OSError:
				pass
	return names


def read_log(d):
	try:
		with open(os.path.join(d, "daemon.log"), errors="replace") as f:
			return f.read()
	except OSError:
		return ""


# --mount-proc: the daemon's LeakSanitizer reads /proc/self/task by its pid in the new namespace.
UNSHARE_NS = ["unshare", "-Urm", "--propagation", "private", "--fork", "--pid", "--kill-child",
	      "--mount-proc"]


def root_in_userns(ctx):
	d = layers(ctx)
	res = run_inner(ctx, UNSHARE_NS, "both")
	errs = check_common(res, read_log(d), "user.overlay.")
	trusted = [x for x in upper_xattrs(d) if x.startswith("trusted.")]
	if trusted:
		errs.append("trusted.* xattrs in the upper layer: %s" % trusted)
	if "user.overlay.opaque" not in upper_xattrs(d):
		errs.append("no user.overlay.opaque in the upper layer (e was recreated)")
	return errs


def ensure_user():
	"""The test user with subuid/subgid ranges (created once, kept: useradd is slow)."""
	try:
		pw = pwd.getpwnam(USER)
	except KeyError:
		mounts.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
			    USER], t(60))
		pw = pwd.getpwnam(USER)
	for f, opt in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
		try:
			with open(f) as fh:
				have = any(line.split(":")[0] == USER for line in fh)
		except OSError:
			have = False
		if not have:
			mounts.run(["usermod", opt, SUBIDS, USER], t(60))
	return pw


def rootless_user(ctx):
	pw = ensure_user()
	d = layers(ctx, owner=pw.pw_uid)
	os.chmod(ctx.logdir, 0o777)	# sanitizer reports of the user's daemon
	handles.user_fuse_device(ctx)
	ctx.track(mounts.BindMount(os.path.join(d, "m")))	# unmounted if the inner run dies
	as_user = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
		   "--clear-groups", "--reset-env"]
	res = run_inner(ctx, as_user, "plyfs")
	res.update(run_inner(ctx, as_user + UNSHARE_NS, "kernel"))
	errs = check_common(res, read_log(d), "user.overlay.")
	# -o dev is root's: a user's FUSE mount is nodev whatever it asks (fusermount3).
	o = "lowerdir=%s,dev" % os.path.join(d, "l")
	cp = subprocess.run(as_user + [ctx.opts.binary, "-o", o, os.path.join(d, "m")],
			    capture_output=True, timeout=t(30), env=ctx.env())
	if mounts.mounted_at(os.path.join(d, "m")):
		mounts.run(["umount", os.path.join(d, "m")], t(30), check=False)
	msg = cp.stderr.decode(errors="replace")
	if cp.returncode != 1 or "'dev'" not in msg:
		errs.append("-o dev as a user: exit %d, %r; expected exit 1 naming the option"
			    % (cp.returncode, msg.strip()[-300:]))
	return errs


def userxattr_option(ctx):
	d = layers(ctx)
	res = run_inner(ctx, ["unshare", "-m", "--propagation", "private", "--fork", "--pid",
			      "--kill-child", "--mount-proc"], "both", ",userxattr")
	errs = check_common(res, read_log(d), "user.overlay.")
	names = upper_xattrs(d)
	if "user.overlay.opaque" not in names:
		errs.append("-o userxattr as root: no user.overlay.opaque in the upper layer")
	if any(x.startswith("trusted.") for x in names):
		errs.append("-o userxattr as root: trusted.* xattrs written: %s" % sorted(names))
	return errs


def status_text(mnt):
	return os.getxattr(mnt, STATUS_XATTR).decode(errors="replace")


def noxattr_upper(ctx):
	"""ramfs takes no xattrs at all: neither format works there."""
	lifecycle.two_lowers(ctx)
	os.makedirs(ctx.path("ram"))
	mounts.run(["mount", "-t", "ramfs", "ramfs", ctx.path("ram")], t(10))
	ctx.track(mounts.BindMount(ctx.path("ram")))
	for x in ("u", "w"):
		os.makedirs(ctx.path("ram/" + x))
	mnt = ctx.path("mnt")
	o = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (ctx.path("l0"), ctx.path("l1"),
							ctx.path("ram/u"), ctx.path("ram/w"))
	h = lifecycle.start_foreground(ctx, ["-o", o, mnt], mnt)
	errs = []
	with mounts.Watchdog(t(60), [h]):
		os.chmod(os.path.join(mnt, "f"), 0o600)	# copy-up: the origin is refused
		st = status_text(mnt)
		count = [line for line in st.splitlines() if line.startswith("errors.metadata.count")]
		if not count or count[0].split()[-1] == "0":
			errs.append("a refused origin xattr is not counted: %s" % (count or st[:400]))
		elif "setxattr" not in st:
			errs.append("the metadata record does not name setxattr: %s" % st[:800])
		e = rename_errno(os.path.join(mnt, "d"), os.path.join(mnt, "d2"))
		if e != errno.EXDEV:
			errs.append("renaming a lower directory without xattrs: %s, kernel overlayfs "
				    "(no xattrs: redirect_dir=nofollow): EXDEV"
				    % (os.strerror(e) if e else "success"))
		with open(os.path.join(mnt, "f")) as f:
			if f.read() != "top":
				errs.append("the copied-up file lost its data")
		handles.unmount_clean(h)
	with open(os.path.join(ctx.logdir, "daemon.log"), errors="replace") as f:
		log = f.read()
	if "overlay xattrs: user.overlay.*" not in log or "refuses user.overlay.* too" not in log:
		errs.append("the log does not say which format was chosen and why: %s" % log[-600:])
	if "metadata error: setxattr" not in log:
		errs.append("the refused origin is not logged: %s" % log[-600:])
	return errs


def device_layers(ctx):
	lifecycle.two_lowers(ctx)
	null = os.stat("/dev/null")
	os.mknod(ctx.path("l1/null"), stat.S_IFCHR | 0o666, null.st_rdev)
	os.chmod(ctx.path("l1/null"), 0o666)


def open_errno(path):
	try:
		fd = os.open(path, os.O_WRONLY)
		os.write(fd, b"x")
		os.close(fd)
		return 0
	except OSError as e:
		return e.errno


def open_device(ctx, extra):
	mnt = ctx.path("mnt")
	o = "lowerdir=%s:%s,upperdir=%s,workdir=%s%s" % (ctx.path("l0"), ctx.path("l1"),
							  ctx.path("u"), ctx.path("w"), extra)
	h = lifecycle.start_foreground(ctx, ["-o", o, mnt], mnt)
	with mounts.Watchdog(t(30), [h]):
		e = open_errno(os.path.join(mnt, "null"))
		handles.unmount_clean(h)
	return e


def kernel_device_errno(ctx, nodev):
	km = ctx.path("km")
	os.makedirs(km, exist_ok=True)
	for x in ("ku", "kw"):
		os.makedirs(ctx.path(x), exist_ok=True)
	o = "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (ctx.path("l0"), ctx.path("l1"),
							ctx.path("ku"), ctx.path("kw"))
	mounts.run(["mount", "-t", "overlay", "overlay", "-o", o + (",nodev" if nodev else ""), km],
		   t(30))
	ctx.track(mounts.BindMount(km))
	try:
		return open_errno(os.path.join(km, "null"))
	finally:
		mounts.umount(km)


def device_nodes(ctx):
	"""Default nodev (EACCES, as kernel overlayfs mounted nodev), -o dev opens the node."""
	device_layers(ctx)
	errs = []
	e = open_device(ctx, "")
	k = kernel_device_errno(ctx, True)
	if e != k or e != errno.EACCES:
		errs.append("a lower device node opened through a default root mount: %s; kernel "
			    "overlayfs mounted nodev (as containers-storage does): %s"
			    % (os.strerror(e) if e else "opened", os.strerror(k) if k else "opened"))
	shutil.rmtree(ctx.path("u"))
	shutil.rmtree(ctx.path("w"))
	os.makedirs(ctx.path("u"))
	os.makedirs(ctx.path("w"))
	e = open_device(ctx, ",dev")
	k = kernel_device_errno(ctx, False)
	if e != 0 or k != 0:
		errs.append("with -o dev the device node does not open: %s (kernel overlayfs, dev: "
			    "%s)" % (os.strerror(e) if e else "opened", os.strerror(k) if k else "opened"))
	return errs


TESTS = [
	("root_in_userns", root_in_userns),
	("rootless_user", rootless_user),
	("userxattr_option", userxattr_option),
	("noxattr_upper", noxattr_upper),
	("device_nodes", device_nodes),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("userns", TESTS, Ctx)


if __name__ == "__main__":
	if len(sys.argv) >= 5 and sys.argv[1] == "--inner":
		sys.exit(inner(sys.argv[2], sys.argv[3], sys.argv[4], *sys.argv[5:6]))
	print("userns.py: a module of harness.py (or: --inner MODE DIR BINARY [EXTRA])",
	      file=sys.stderr)
	sys.exit(2)
