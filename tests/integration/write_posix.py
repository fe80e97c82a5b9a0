# SPDX-License-Identifier: GPL-2.0-or-later
"""write_posix.py - POSIX details of issue 9 item 3, each compared with kernel overlayfs on the same
layers (write_env.py explains the fixture): d_ino of readdir (also "." and "..", from offset 0 and
after a seek), chown(-1, -1) moving ctime, mknod of a 0/0 character device, O_DIRECT on a file
the open creates; the mount's atime flags (noatime, relatime, strictatime, nodiratime, at mount
and after a remount) and remount,ro/rw.

Names from write_env.std_layers() (see write_ops.py).
"""

import ctypes
import mmap
import os
import stat
import subprocess
import time

import mounts
from mounts import t
from write_env import P, drop_caches, libc, read_file, statd, wtest

SYS_GETDENTS64 = 217 if os.uname().machine == "x86_64" else 61  # x86_64, else the generic table


def getdents(fd, size=65536):
	"""[(d_ino, d_off, name)] of one getdents64 call on fd (size bytes of buffer)."""
	buf = ctypes.create_string_buffer(size)
	n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
	if n < 0:
		e = ctypes.get_errno()
		raise OSError(e, os.strerror(e))
	out, pos, raw = [], 0, buf.raw[:n]
	while pos < n:
		ino = int.from_bytes(raw[pos:pos + 8], "little")
		off = int.from_bytes(raw[pos + 8:pos + 16], "little", signed=True)
		reclen = int.from_bytes(raw[pos + 16:pos + 18], "little")
		name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode()
		out.append((ino, off, name))
		pos += reclen
	return out


def read_all(fd):
	out = []
	while True:
		batch = getdents(fd)
		if not batch:
			return out
		out += batch


def _expected_ino(root, rel, name):
	"""st_ino the entry `name` of directory rel must have as d_ino: ".." of the root is the
	root (the mount point's own parent lies outside the overlay)."""
	if name == "..":
		return os.lstat(P(root, os.path.dirname(rel)) if rel else root).st_ino
	return os.lstat(P(root, rel, name) if name != "." else P(root, rel)).st_ino


def _dino_mismatches(root, rel):
	"""The entries of rel whose d_ino is not their st_ino, read three ways: one getdents from
	offset 0 (READDIRPLUS), after a seek to the position just past "." (plain READDIR), and
	from offset 0 again with a one-entry buffer (one entry per request)."""
	path = P(root, rel) if rel else root
	bad = []
	fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
	try:
		whole = read_all(fd)
		after_dot = dict((n, off) for _, off, n in whole)["."]
		os.lseek(fd, after_dot, os.SEEK_SET)
		sought = read_all(fd)
		os.lseek(fd, 0, os.SEEK_SET)
		small = []
		while True:
			b = getdents(fd, 64)
			if not b:
				break
			small += b
	finally:
		os.close(fd)
	for how, ents in (("offset 0", whole), ("after seek", sought), ("one by one", small)):
		for ino, _, name in ents:
			if ino != _expected_ino(root, rel, name):
				bad.append("%s %s" % (how, name))
	if not any(n == ".." for _, _, n in sought):
		bad.append("after seek: no ..")
	return sorted(bad)


def _copy_ups(r):
	"""Entries of every kind: copied up files (in the root, a merged dir, a nested lower dir),
	lower dirs copied up by a creation inside, a lower file renamed into an upper-only dir."""
	os.chmod(P(r, "lo"), 0o644)
	os.chmod(P(r, "bdir/x"), 0o600)
	os.chmod(P(r, "ldir/sub/c"), 0o640)
	os.mkdir(P(r, "ldir/newdir"))
	os.rename(P(r, "lo2"), P(r, "udir/lo2"))
	os.rename(P(r, "mid"), P(r, "bdir/mid"))
	with open(P(r, "udir/new"), "w") as f:
		f.write("new\n")


DIRS = ("", "ldir", "ldir/sub", "ldir/newdir", "bdir", "udir", "emptyl", "uempty")


def _dino_check(env, label, rel):
	"""The binary: d_ino == st_ino for every entry. The kernel agrees except for "..", where it
	reports the layer's own ".." in the root and in a directory merged from lowers only (a
	quirk of kernel overlayfs, printed as a note): entries other than ".." are compared."""
	what = "%s: d_ino of %s" % (label, rel or "/")
	env.expect(what, _dino_mismatches, [], rel)
	if env.kmount:
		env.same(what + " (without ..)",
			 lambda r, x: [b for b in _dino_mismatches(r, x) if not b.endswith(" ..")], rel)
		k = _dino_mismatches(env.km, rel)
		if k:
			env.notes.append("kernel overlayfs, %s: d_ino != st_ino for %s" % (what, k))


@wtest("posix/readdir_dino")
def t_readdir_dino(env):
	env.same("copy-ups", _copy_ups)
	for rel in DIRS:
		_dino_check(env, "after copy-up", rel)
	drop_caches()
	for rel in DIRS:
		_dino_check(env, "caches dropped", rel)


def _chown_ctime(r, rel):
	"""chown(rel, -1, -1): does ctime move (and nothing else)?"""
	before = os.lstat(P(r, rel))
	time.sleep(0.05)
	os.chown(P(r, rel), -1, -1, follow_symlinks=False)
	after = os.lstat(P(r, rel))
	d = statd(P(r, rel))
	d["ctime_moved"] = after.st_ctime_ns > before.st_ctime_ns
	d["mtime_kept"] = after.st_mtime_ns == before.st_mtime_ns
	return d


@wtest("posix/chown_ctime")
def t_chown_ctime(env):
	for rel in ("lo", "up", "both", "ldir", "bdir", "udir", "lsym", "ldir/sub/c"):
		env.same("chown -1 -1 %s" % rel, _chown_ctime, rel)
		env.same_expect("chown -1 -1 %s moves ctime" % rel,
				lambda r, x: _chown_ctime(r, x)["ctime_moved"], True, rel)


def _mknod_whiteout(r, rel):
	try:
		os.mknod(P(r, rel), stat.S_IFCHR | 0o644, os.makedev(0, 0))
	finally:
		present = os.path.lexists(P(r, rel))
	return present


@wtest("posix/mknod_whiteout")
def t_mknod_whiteout(env):
	for rel in ("new", "ldir/new", "bdir/new", "udir/new", "gone", "lo"):
		env.same("mknod c 0 0 %s" % rel, _mknod_whiteout, rel)
	env.same_expect("mknod c 0 0 new (EPERM)", _mknod_whiteout, "EPERM", "new2")
	env.same("mknod c 1 3 still works", lambda r: os.mknod(
		P(r, "null"), stat.S_IFCHR | 0o600, os.makedev(1, 3)) or statd(P(r, "null")))
	# Nothing written: a whiteout made in the upper would hide these names after a remount.
	for rel in ("new", "ldir/new", "bdir/new", "udir/new"):
		env.check(not os.path.lexists(env.up(rel)),
			  "mknod c 0 0 %s left %s in the upper" % (rel, rel))


def _odirect_create(r, rel, flags=0):
	"""open(O_CREAT|O_DIRECT|O_WRONLY|flags), one aligned 4 KiB write, the size and data after."""
	buf = mmap.mmap(-1, 4096)  # page aligned
	buf.write(b"d" * 4096)
	fd = os.open(P(r, rel), os.O_CREAT | os.O_DIRECT | os.O_WRONLY | flags, 0o644)
	try:
		n = os.write(fd, buf)
	finally:
		os.close(fd)
	with open(P(r, rel), "rb") as f:
		data = f.read()
	return {"written": n, "size": os.lstat(P(r, rel)).st_size, "data_ok": data == b"d" * 4096}


def odirect_cases(env):
	for rel in ("dnew", "ldir/dnew", "bdir/dnew", "udir/dnew", "gone"):
		env.same_expect("O_CREAT|O_DIRECT write %s" % rel, _odirect_create,
				{"written": 4096, "size": 4096, "data_ok": True}, rel)
	# The same on files that exist (the open path): lower, upper, and just created.
	for rel in ("lo", "up", "dnew"):
		env.same("O_DIRECT write %s" % rel, _odirect_create, rel, os.O_TRUNC)


@wtest("posix/odirect_create")
def t_odirect_create(env):
	odirect_cases(env)


def relocate(env, mount_argv):
	"""Moves both sides' layers onto the filesystem `mount_argv + [dir]` mounts: copied with
	their xattrs and times, then bind-mounted over p/ and k/."""
	ext = P(env.base, "layerfs")
	os.mkdir(ext)
	mounts.run(mount_argv + [ext], t(30))
	mounts.ACTIVE.append(mounts.BindMount(ext))
	for side in (env.p, env.k):
		dst = P(ext, os.path.basename(side))
		mounts.run(["cp", "-a", side, dst], t(60))
		mounts.run(["mount", "--bind", dst, side], t(30))
		mounts.ACTIVE.append(mounts.BindMount(side))


def on_ext4(env):
	"""prepare: the layers on an ext4 image (loop device), which honours O_DIRECT (tmpfs takes
	unaligned O_DIRECT writes and hid the bug)."""
	img = P(env.base, "ext4.img")
	with open(img, "wb") as f:
		f.truncate(64 << 20)
	mounts.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", img], t(60))
	relocate(env, ["mount", "-o", "loop", img])


@wtest("posix/odirect_create_ext4", prepare=on_ext4)
def t_odirect_create_ext4(env):
	odirect_cases(env)


# --- atime ----------------------------------------------------------------------------------------

def strictatime_layers(env):
	"""prepare: the layers on a tmpfs mounted strictatime, so that the layer filesystem's own
	mount lets every access through and what moves is decided by the overlay mount's flags
	(the fixture's tmpfs is noatime, under which kernel overlayfs never moves an atime)."""
	relocate(env, ["mount", "-t", "tmpfs", "-o", "strictatime,size=256m", "posix-atime"])


DAY = 86400 * 10**9

# (name, kind, atime, mtime relative to now): "fresh" has atime after mtime and ctime (relatime
# keeps it), "old" has ctime after atime (relatime moves it).
ATIME_CASES = (("up", "f", 100 * 10**9, -100 * 10**9), ("both", "f", -2 * DAY, -3 * DAY),
	       ("udir", "d", 100 * 10**9, -100 * 10**9), ("uempty", "d", -2 * DAY, -3 * DAY))
ATIME_LOWER = (("lo2", "f"), ("mid", "f"), ("ldir", "d"), ("emptyl", "d"))


def _set_times(r):
	now = time.time_ns()
	for rel, _, a, m in ATIME_CASES:
		os.utime(P(r, rel), ns=(now + a, now + m))


def _access(path, kind):
	if kind == "d":
		os.listdir(path)
	else:
		with open(path, "rb") as f:
			f.read()


def _atime_moves(r):
	"""{name: (atime moved, ctime kept)} for a read of every file and a listing of every
	directory (caches dropped first, so that each read reaches the filesystem)."""
	names = [(rel, kind) for rel, kind, _, _ in ATIME_CASES] + list(ATIME_LOWER)
	before = {rel: os.lstat(P(r, rel)) for rel, _ in names}
	drop_caches()
	for rel, kind in names:
		_access(P(r, rel), kind)
	out = {}
	for rel, _ in names:
		st = os.lstat(P(r, rel))
		out[rel] = (st.st_atime_ns != before[rel].st_atime_ns,
			    st.st_ctime_ns == before[rel].st_ctime_ns)
	return out


# What kernel overlayfs does, per flag (also asserted, so that the oracle is checked too).
ATIME_EXPECT = {
	"noatime": {"up": False, "both": False, "udir": False, "uempty": False},
	"relatime": {"up": False, "both": True, "udir": False, "uempty": True},
	"strictatime": {"up": True, "both": True, "udir": True, "uempty": True},
	"nodiratime": {"up": False, "both": True, "udir": False, "uempty": False},
}


def _expected(flag):
	want = {rel: (moved, True) for rel, moved in ATIME_EXPECT[flag].items()}
	want.update({rel: (False, True) for rel, _ in ATIME_LOWER})
	return want


def atime_round(env, flag, label):
	env.same("%s: set times" % label, _set_times)
	time.sleep(0.05)
	env.same_expect("%s: atime after reads" % label, _atime_moves, _expected(flag))


def remount_both(env, opt):
	"""mount -o remount,OPT on the kernel's mount; the binary's through mount(8), which runs
	mount.fuse3 and it (`plyfs SOURCE MNT -o OPT,remount,...`) from a PATH holding it."""
	mounts.run(["mount", "-o", "remount," + opt, env.km], t(30))
	remount_binary(env, opt)


def remount_binary(env, opt):
	"""mount(8) on a fuse.plyfs mount runs mount.fuse3, which runs `plyfs` from a fixed PATH:
	a directory holding the binary is bind-mounted on /usr/local/bin (in this run's own mount
	namespace only, and unmounted with the test's other mounts)."""
	bindir = P(env.base, "bin")
	if not os.path.isdir(bindir):
		os.mkdir(bindir)
		os.symlink(env.opts.binary, P(bindir, "plyfs"))
		mounts.run(["mount", "--bind", bindir, "/usr/local/bin"], t(30))
		mounts.ACTIVE.append(mounts.BindMount("/usr/local/bin"))
	cp = subprocess.run(["mount", "-o", "remount," + opt, env.pm], capture_output=True,
			    timeout=t(30))
	if cp.returncode != 0:
		raise mounts.Failure("mount -o remount,%s %s exited %d: %s" % (
			opt, env.pm, cp.returncode, cp.stderr.decode(errors="replace")[-500:]))


def mount_opts_of(path):
	"""The per-mount options of the mount on path (mountinfo field 6)."""
	with open("/proc/self/mountinfo") as f:
		lines = [ln.split() for ln in f]
	mine = [ln for ln in lines if ln[4] == path]
	return set(mine[-1][5].split(",")) if mine else set()


def shows_flag(r, flag):
	"""mountinfo shows the flag (strictatime: as neither noatime nor relatime)."""
	opts = mount_opts_of(r)
	if flag == "strictatime":
		return not opts & {"noatime", "relatime"}
	return flag in opts


def wait_flag(r, flag, seconds=10):
	"""In the foreground (-f) the binary sets nodiratime/strictatime on its mount right after
	mounting, a moment after the mount shows (the daemonizing form returns only after it)."""
	deadline = time.monotonic() + t(seconds)
	while not shows_flag(r, flag) and time.monotonic() < deadline:
		time.sleep(0.05)


for _flag in ATIME_EXPECT:
	def _t(env, flag=_flag):
		wait_flag(env.pm, flag)
		env.same_expect("mount flag %s in mountinfo" % flag, shows_flag, True, flag)
		atime_round(env, flag, flag)
	wtest("posix/atime_%s" % _flag, prepare=strictatime_layers, mount_opts=_flag)(_t)


@wtest("posix/atime_remount", prepare=strictatime_layers, mount_opts="strictatime")
def t_atime_remount(env):
	"""The daemon follows remounts: strictatime, then noatime, strictatime, relatime and
	nodiratime (mount(8) keeps the current options: relatime alone would not clear noatime,
	for kernel overlayfs as for plyfs)."""
	wait_flag(env.pm, "strictatime")
	atime_round(env, "strictatime", "strictatime at mount")
	for opt, flag in (("noatime", "noatime"), ("strictatime", "strictatime"),
			  ("relatime", "relatime"), ("nodiratime", "nodiratime")):
		remount_both(env, opt)
		env.same_expect("remount,%s: in mountinfo" % opt, shows_flag, True, opt)
		time.sleep(0.2)  # the daemon's thread reads mountinfo again
		atime_round(env, flag, "after remount," + opt)


# --- remount ro/rw ----------------------------------------------------------------------------------

def _try_write(r, rel):
	with open(P(r, rel), "w") as f:
		f.write("x")
	return True


@wtest("posix/remount_ro_rw")
def t_remount_ro_rw(env):
	"""mount -o remount,ro: writes fail EROFS (reads work), remount,rw: writable again; through
	mount(8) (mount.fuse3 runs plyfs with remount) and plyfs -o remount,... run directly. The
	other per-mount flags (plyfs' default nodev) stay."""
	def others(r):
		return sorted(mount_opts_of(r) & {"nosuid", "nodev", "noexec"})
	keep = {side: others(side) for side in (env.km, env.pm)}
	for how in ("mount(8)", "direct"):
		if how == "mount(8)":
			remount_both(env, "ro")
		else:
			mounts.run(["mount", "-o", "remount,ro", env.km], t(30))
			mounts.run([env.opts.binary, "-o", "remount,ro", env.pm], t(30))
		env.same_expect("%s remount,ro: in mountinfo" % how,
				lambda r: "ro" in mount_opts_of(r), True)
		env.same_expect("%s remount,ro: write a new file" % how, _try_write, "EROFS",
				"new_" + how[:6])
		env.same_expect("%s remount,ro: write a lower file" % how, _try_write, "EROFS",
				"lo")
		env.same_expect("%s remount,ro: mkdir" % how, lambda r: os.mkdir(P(r, "d")),
				"EROFS")
		env.same("%s remount,ro: read" % how, lambda r: read_file(P(r, "ldir/a")))
		if how == "mount(8)":
			remount_both(env, "rw")
		else:
			mounts.run(["mount", "-o", "remount,rw", env.km], t(30))
			mounts.run([env.opts.binary, "plyfs", env.pm, "-o", "remount,rw"], t(30))
		env.same_expect("%s remount,rw: in mountinfo" % how,
				lambda r: "rw" in mount_opts_of(r), True)
		env.same_expect("%s remount,rw: write" % how, _try_write, True,
				"new_" + how[:6])
		env.same_expect("%s remount,rw: copy-up write" % how, _try_write, True, "lo2")
		env.same_expect("%s: other flags kept" % how, lambda r: others(r) == keep[r], True)
