# SPDX-License-Identifier: GPL-2.0-or-later
"""hostile.py - layers holding hostile or corrupt overlay metadata (issue 8, found 1 and 2): the
binary must answer what kernel overlayfs answers on the same layers, never show a file from
outside the layers, report each bad value once in its log, and unmount cleanly.

Each test builds its layers twice from one description (p/ for the binary, k/ for the kernel, the
same depth below the test's directory), mounts both, probes the same paths on both (lstat, then
listdir or read: the result or the errno), compares, probes again (a repeated lookup must not log
again), unmounts (a plain umount must work: the daemon must not hold its own mount point) and
reads the daemon's log. A file SECRET with a unique content lies next to the layers: no probe
result may contain it.
"""

import errno
import os
import re
import time
import uuid

import lifecycle
import mounts
from mounts import Failure, t

REDIRECT = "trusted.overlay.redirect"


class Ctx(lifecycle.Ctx):
	GROUP = "hostile"


def setx(path, name, value):
	os.setxattr(path, name, value if isinstance(value, bytes) else value.encode(),
		    follow_symlinks=False)


def mkdirs(*paths):
	for p in paths:
		os.makedirs(p, exist_ok=True)


def write(path, data):
	with open(path, "wb") as f:
		f.write(data)


def probe(root, rel):
	"""('err', errno name) or ('dir', names) / ('file', bytes) / ('other', mode)."""
	p = os.path.join(root, rel)
	try:
		st = os.lstat(p)
		if os.path.isdir(p) and not os.path.islink(p):
			return ("dir", tuple(sorted(os.listdir(p))))
		if os.path.isfile(p) and not os.path.islink(p):
			with open(p, "rb") as f:
				return ("file", f.read(4096))
		return ("other", st.st_mode >> 12)
	except OSError as e:
		return ("err", errno.errorcode.get(e.errno, str(e.errno)))


def shown(result):
	"""A probe result for a report: never a file's content (it may be the host's)."""
	if result[0] == "file":
		return "a file of %d bytes" % len(result[1])
	if result[0] == "dir":
		return "a directory of %d entries %r" % (len(result[1]), result[1][:6])
	return repr(result)


class Pair:
	"""Kernel overlayfs and the binary on two copies of the same layers, both unmounted by
	cleanup() (which returns the problems: a failed plain umount among them)."""

	def __init__(self, ctx, build, n_lower=2, upper=True):
		self.ctx, self.kernel, self.daemon = ctx, None, None
		self.secret = ("host secret %s\n" % uuid.uuid4()).encode()
		for side in ("p", "k"):
			root = ctx.path(side)
			lowers = [os.path.join(root, "l%d" % i) for i in range(n_lower)]
			up = os.path.join(root, "u") if upper else None
			wk = os.path.join(root, "w") if upper else None
			mkdirs(*(lowers + ([up, wk] if upper else [])), ctx.path(side + "m"))
			write(os.path.join(root, "SECRET"), self.secret)
			build(lowers, up)
			if side == "k":
				self.kernel = mounts.KernelMount(ctx.path("km"), lowers, up, wk)
				self.kernel.mount()
			else:
				self.p_layers = (lowers, up, wk)
		self.daemon = mounts.Daemon(ctx.opts.binary, ctx.path("pm"), *self.p_layers,
					    logdir=ctx.logdir, sanitizer=ctx.opts.sanitizer)
		self.daemon.start()

	def compare(self, paths, label="", pace=0):
		"""`pace`: seconds between paths, so that first reports stay below the log's rate
		limit (10 a second) and each can be checked."""
		errs = []
		with mounts.Watchdog(t(60) + pace * len(paths), [self.daemon]):
			for rel in paths:
				time.sleep(pace)
				k = probe(self.ctx.path("km"), rel)
				p = probe(self.ctx.path("pm"), rel)
				if (p[0] == "file" and self.secret in p[1]) or \
				   (p[0] == "dir" and "SECRET" in p[1]):
					errs.append("%s%s: shows what lies outside the layers: %r"
						    % (label, rel, p[1][:8]))
				if k != p:
					errs.append("%s%s: kernel %s, binary %s"
						    % (label, rel, shown(k), shown(p)))
		return errs

	def cleanup(self):
		problems = []
		if self.daemon:
			problems += self.daemon.cleanup()
		if self.kernel:
			msg = self.kernel.cleanup()
			if msg:
				problems.append("kernel: " + msg)
		return problems

	def log(self):
		return self.daemon.log_tail(1 << 20)


def logged_once(pair, needles):
	"""Each needle (a path inside a layer) is named by exactly one "invalid overlay" line."""
	where = [m.group(1) for m in re.finditer(r"invalid overlay \S+ on (\S+?)(?: \(layer \d+\))?: ",
						 pair.log())]
	errs = []
	for n in needles:
		hits = [w for w in where if w.endswith("/" + n)]
		if len(hits) != 1:
			errs.append("log: %d lines for %s (want 1): %r" % (len(hits), n, hits[:3]))
	return errs


def run_pair(ctx, build, paths, log_needles=(), rounds=2, **kw):
	pair = None
	errs = []
	try:
		pair = Pair(ctx, build, **kw)
		for i in range(rounds):
			errs += pair.compare(paths, "round %d: " % (i + 1), pace=0.15 if i == 0 else 0)
	finally:
		if pair:
			errs = pair.cleanup() + errs  # first: a failed umount must not hide in the list
	if pair and log_needles:
		errs += logged_once(pair, log_needles)
	return errs


# --- the `..` escape (found 1) ---------------------------------------------------------------

def depth_to_root(path):
	return len([c for c in os.path.abspath(path).split("/") if c])


def escape_chain(ctx, where):
	"""`esc` with redirect "..", and below it a/, a/a/, ... each with the same redirect, one level
	per directory between the layers and "/": unfixed, esc is the directory holding the layers,
	esc/a the test's directory (SECRET, the mount points), and the chain ends at "/"."""
	depth = depth_to_root(ctx.path("p")) + 1

	def build(lowers, upper):
		top = upper if where == "upper" else lowers[0]
		d = os.path.join(top, "esc")
		os.mkdir(d)
		setx(d, REDIRECT, "..")
		for _ in range(depth):
			d = os.path.join(d, "a")
			os.mkdir(d)
			setx(d, REDIRECT, "..")
		mkdirs(os.path.join(lowers[-1], "esc", "sub"))
		write(os.path.join(lowers[-1], "ok"), b"ok\n")

	chain = "esc/" + "a/" * (depth - 1)
	paths = ["ok", "esc", "esc/SECRET", "esc/a", "esc/a/pm", "esc/a/km", "esc/sub",
		 chain + "etc", chain + "etc/shadow", chain + "etc/hostname", "ok"]
	return run_pair(ctx, build, paths, log_needles=["esc"])


def test_escape_lower(ctx):
	return escape_chain(ctx, "lower")


def test_escape_upper(ctx):
	return escape_chain(ctx, "upper")


# --- other invalid redirects (found 2) -------------------------------------------------------

REDIRECT_VALUES = [
	(".", "dot"), ("/", "slash"), ("////", "slashes"), ("", "empty"), ("../x", "dotdot_x"),
	("\0", "nul"), ("/..", "abs_dotdot"), ("/a/../x", "abs_mid_dotdot"), ("/./x", "abs_dot"),
	("/x/", "trailing_slash"), ("/a//x", "double_slash"), ("/" + "a" * 3999, "long4000"),
	("/a" * 2100, "deep4200"), ("b" * 300, "rel300"),
	# valid ones beside them, so a fix that breaks redirects shows too
	("x", "valid_rel"), ("/a/x", "valid_abs"),
]


def redirect_values(ctx, where):
	def build(lowers, upper):
		top = upper if where == "upper" else lowers[0]
		bottom = lowers[-1]
		mkdirs(os.path.join(bottom, "x", "in_x"), os.path.join(bottom, "a", "x", "in_a_x"),
		       os.path.join(bottom, "a" * 200))
		write(os.path.join(bottom, "rootfile"), b"root\n")
		for val, name in REDIRECT_VALUES:
			d = os.path.join(top, name)
			os.mkdir(d)
			write(os.path.join(d, "own"), b"own\n")
			setx(d, REDIRECT, val)
			mkdirs(os.path.join(bottom, name, "below"))
		# An opaque directory's redirect is never read (the kernel's order): no error.
		d = os.path.join(top, "opaque_dotdot")
		mkdirs(d, os.path.join(bottom, "opaque_dotdot", "below"))
		setx(d, "trusted.overlay.opaque", "y")
		setx(d, REDIRECT, "..")

	paths = [name for _, name in REDIRECT_VALUES] + [name + "/own" for _, name in REDIRECT_VALUES]
	paths += ["opaque_dotdot", "opaque_dotdot/below"]
	invalid = [name for _, name in REDIRECT_VALUES if not name.startswith("valid")]
	return run_pair(ctx, build, paths, log_needles=invalid)


def test_redirects_lower(ctx):
	return redirect_values(ctx, "lower")


def test_redirects_upper(ctx):
	return redirect_values(ctx, "upper")


# --- metacopy, opaque values, corrupt origin and nlink -----------------------------------------

def test_metacopy(ctx):
	"""plyfs has no metacopy: a file marked metacopy answers what the kernel with metacopy=off
	answers (EPERM; EIO for a value of 1..3 bytes); a directory's mark is ignored."""
	def build(lowers, upper):
		for name, where, val in (("up", upper, b""), ("up_short", upper, b"\0"),
					 ("up_big", upper, b"\0" * 100), ("low", lowers[0], b""),
					 ("bottom", lowers[-1], b"\0\4\0\0")):
			write(os.path.join(where, name), b"meta\n")
			setx(os.path.join(where, name), "trusted.overlay.metacopy", val)
			write(os.path.join(lowers[-1], name + "_plain"), b"plain\n")
		write(os.path.join(lowers[-1], "up"), b"lower data\n")
		d = os.path.join(upper, "dir")
		os.mkdir(d)
		setx(d, "trusted.overlay.metacopy", b"")
		mkdirs(os.path.join(lowers[-1], "dir", "below"))
	paths = ["up", "up_short", "up_big", "low", "bottom", "dir", "up_plain"]
	return run_pair(ctx, build, paths, log_needles=["up", "up_short", "low", "bottom"])


def test_opaque_values(ctx):
	"""Only "y" is opaque; "yes", "Y", "x", "" are not (the kernel reads one byte)."""
	vals = [("y", "y"), ("yes", "yes"), ("Y", "Y"), ("x", "x"), ("", "empty"), ("n", "n")]

	def build(lowers, upper):
		for val, name in vals:
			d = os.path.join(lowers[0], name)
			mkdirs(os.path.join(d, "above"), os.path.join(lowers[1], name, "below"))
			setx(d, "trusted.overlay.opaque", val)
	return run_pair(ctx, build, [n for _, n in vals], log_needles=["yes", "Y", "n"])


def test_plyfs_origin(ctx):
	"""plyfs' own origin xattr on an upper file, corrupt or forged to name another file: the
	file keeps its own identity (the kernel ignores the xattr): two files never share an inode
	number, and the corrupt value is logged once."""
	def build(lowers, upper):
		write(os.path.join(lowers[0], "lowfile"), b"lower\n")
		st = os.stat(os.path.join(lowers[0], "lowfile"))
		forged = ("%x:%x" % (st.st_dev, st.st_ino)).encode()
		for name, val in (("garbage", b"garbage"), ("spaces", b" 1: 2"),
				  ("trailing", forged + b"\n"), ("long", b"1" * 100)):
			write(os.path.join(upper, name), name.encode() + b"\n")
			setx(os.path.join(upper, name), "trusted.plyfs.origin", val)
	names = ["lowfile", "garbage", "spaces", "trailing", "long"]
	errs = []
	pair = None
	try:
		pair = Pair(ctx, build)
		errs += pair.compare(names)
		inos = {}
		for n in names:
			ino = os.lstat(os.path.join(ctx.path("pm"), n)).st_ino
			if ino in inos:
				errs.append("%s and %s share inode number %d" % (inos[ino], n, ino))
			inos[ino] = n
	finally:
		if pair:
			errs += pair.cleanup()
	if pair:
		errs += logged_once(pair, ["garbage", "spaces", "trailing", "long"])
	return errs


NLINK_VALUES = [
	"L+0", "U-1", "U+3\n", "U+ 3", "U+3 ", " U+3", "U-9", "X+1", "U+0x3", "U+2147483648",
	"U+000000000001", "",
]


def test_nlink(ctx):
	"""trusted.overlay.nlink of an upper file of the hard-link index, corrupted: the link count
	shown is the kernel's (index=on, on the very same layers: the origin file handle must
	decode), and each invalid value is logged once."""
	lowers = [ctx.path("l0")]
	up, wk = ctx.path("u"), ctx.path("w")
	mkdirs(lowers[0], up, wk, ctx.path("pm"), ctx.path("km"))
	write(os.path.join(lowers[0], "h1"), b"hard\n")
	os.link(os.path.join(lowers[0], "h1"), os.path.join(lowers[0], "h2"))
	errs = []

	def binary_mount(logdir):
		return mounts.Daemon(ctx.opts.binary, ctx.path("pm"), lowers, up, wk, logdir=logdir,
				     sanitizer=ctx.opts.sanitizer)

	def stat_twice(d, mnt):
		with mounts.Watchdog(t(30), [d] if d else []):
			a = probe_nlink(mnt, "h1")
			return a if a == probe_nlink(mnt, "h1") else ("unstable", a)

	# Copy h1 up through the binary: it lands in workdir/index with origin and nlink.
	d = binary_mount(ctx.path("log/setup"))
	try:
		d.start()
		with mounts.Watchdog(t(30), [d]):
			with open(os.path.join(ctx.path("pm"), "h1"), "ab") as f:
				f.write(b"more\n")
	finally:
		errs += d.cleanup()
	try:
		os.getxattr(os.path.join(up, "h1"), "trusted.overlay.origin")
	except OSError as e:
		return errs + ["setup: the copy-up left no trusted.overlay.origin (%s): no index here?"
			       % e]
	for i, val in enumerate(NLINK_VALUES):
		setx(os.path.join(up, "h1"), "trusted.overlay.nlink", val)
		km = mounts.KernelMount(ctx.path("km"), lowers, up, wk)
		km.opts += ",index=on,redirect_dir=on"
		km.mount()
		try:
			k = stat_twice(None, ctx.path("km"))
		finally:
			msg = km.cleanup()
			if msg:
				errs.append(msg)
		logdir = ctx.path("log/%d" % i)
		d = binary_mount(logdir)
		try:
			d.start()
			p = stat_twice(d, ctx.path("pm"))
		finally:
			errs += d.cleanup()
		if k != p:
			errs.append("nlink %r: kernel %r, binary %r" % (val, k, p))
		valid = val in ("L+0", "U-1", "U+3\n")
		n = len(re.findall(r"invalid overlay nlink on \S*/u/h1:", d.log_tail(1 << 20)))
		if n != (0 if valid else 1):
			errs.append("nlink %r: %d log lines, want %d" % (val, n, 0 if valid else 1))
	return errs


def probe_nlink(mnt, rel):
	try:
		return os.lstat(os.path.join(mnt, rel)).st_nlink
	except OSError as e:
		return errno.errorcode.get(e.errno, str(e.errno))


TESTS = [
	("escape_dotdot_lower", test_escape_lower),
	("escape_dotdot_upper", test_escape_upper),
	("redirect_values_lower", test_redirects_lower),
	("redirect_values_upper", test_redirects_upper),
	("metacopy", test_metacopy),
	("opaque_values", test_opaque_values),
	("plyfs_origin", test_plyfs_origin),
	("nlink", test_nlink),
]


def tests():
	"""[(name, fn(opts, base) -> (problems, notes))] for harness.py."""
	return lifecycle.tests_of("hostile", TESTS, Ctx)
