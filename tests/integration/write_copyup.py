# SPDX-License-Identifier: GPL-2.0-or-later
"""write_copyup.py - every copy-up trigger, on kernel overlayfs and on the binary.

Each test records a lower-only entry's metadata through the mount (mode, owner, times, st_ino,
nlink, all non-overlay xattrs, data), triggers a copy-up, and records it again: for each field the
outcome is "kept" or the new value (for times that the trigger sets to "now": "changed"), and the
two mounts must agree. So the copied file must keep mode, owner, times, xattrs, data and st_ino
wherever the kernel (redirect_dir=on,index=on, all layers on one tmpfs) keeps them. Then the
binary's raw upper layer is checked directly: the file is there, with the lower's owner, mode and
xattrs, and so are all its ancestors (mode, owner, mtime, xattrs of the lower directories).
"""

import os
import stat

from layerspec import D, DEV, F, FIFO, H, L
from write_env import P, T0, read_file, std_layers, wtest

RICH_XATTRS = {"user.a": "1", "user.b": "2" * 300, "trusted.t": "t", "security.s": "s"}
NOW_FIELDS = ("atime_ns", "mtime_ns")


def copyup_layers():
	lowers, upper = std_layers()
	bottom = lowers[1]
	bottom.update({
		"rich": F("rich data\n" * 1000, mode=0o2750, uid=1234, gid=2345, xattrs=RICH_XATTRS),
		"deep": D(mode=0o751, uid=11, gid=12, xattrs={"user.lvl": "0"}),
		"deep/a": D(mode=0o705, uid=21, gid=22, xattrs={"user.lvl": "1", "trusted.t": "1"}),
		"deep/a/b": D(mode=0o1777, uid=31, gid=32),
		"deep/a/b/c": D(mode=0o2775, uid=41, gid=42, xattrs={"user.lvl": "3"}),
		"deep/a/b/c/f": F("deep file\n", mode=0o604, uid=51, gid=52, xattrs={"user.f": "f"}),
		"fifo": FIFO(0o620, uid=5, gid=6),
		"chr": DEV(1, 3, 0o640, "c", uid=7, gid=8),
		"sym": L("rich", uid=9, gid=10),
		"h1": F("hard linked\n", mode=0o640, uid=3, gid=4, xattrs={"user.h": "h"}),
		"h2": H("h1"),
	})
	return lowers, upper


def all_xattrs(path):
	out = {}
	for n in os.listxattr(path, follow_symlinks=False):
		if not n.startswith(("trusted.overlay.", "user.overlay.")):
			out[n] = os.getxattr(path, n, follow_symlinks=False)
	return out


def meta(path):
	st = os.stat(path, follow_symlinks=False)
	m = {"mode": "0%o" % st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
	     "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
	     "xattrs": all_xattrs(path)}
	if not stat.S_ISDIR(st.st_mode):	# directories: the tree compare checks nlink
		m["nlink"], m["size"] = st.st_nlink, st.st_size
	if stat.S_ISREG(st.st_mode):
		m["data"] = read_file(path)
	elif stat.S_ISLNK(st.st_mode):
		m["target"] = os.readlink(path)
	elif stat.S_ISDIR(st.st_mode):
		m["list"] = sorted(os.listdir(path))
	return m


def delta(before, after):
	"""{field: "kept" | new value | "changed" (times set to now)}."""
	out = {}
	for k in before:
		if after.get(k) == before[k]:
			out[k] = "kept"
		elif k in NOW_FIELDS or k == "data" and len(after.get(k) or b"") > 200:
			out[k] = "changed"
		else:
			out[k] = after.get(k)
	return out


def _trigger_and_delta(r, rel, trigger, new_rel=None):
	before = meta(P(r, rel))
	res = trigger(r, rel)
	after = meta(P(r, new_rel or rel))
	d = delta(before, after)
	d["trigger result"] = res
	return d


def _user_xattrs(path):
	return {k: v for k, v in all_xattrs(path).items() if k.startswith("user.")
		and not k.startswith(("user.plyfs.", "user.fuseoverlayfs."))}


def check_raw_upper(env, rel, lower_rel=None, parent_mtime=True):
	"""Checks the binary's raw upper after a copy-up of `rel` (from `lower_rel` if renamed):
	the entry is there with the owner, mode and user xattrs the mount shows; each ancestor is
	there with the lower directory's mode, owner, user xattrs and mtime (not the direct
	parent's when parent_mtime is False: the trigger added an entry to it)."""
	lower_rel = lower_rel or rel
	parts, lparts = rel.split("/"), lower_rel.split("/")
	for i in range(1, len(parts) + 1):
		sub = "/".join(parts[:i])
		up, what = env.up(sub), "binary's upper %s" % sub
		if not env.check(os.path.lexists(up), "%s is missing after copy-up" % what):
			return
		su = os.stat(up, follow_symlinks=False)
		if i == len(parts):
			ref, whose = P(env.pm, rel), "the mount shows"
		else:
			ref = next((P(layer, "/".join(lparts[:i])) for layer in env.lowers(env.p)
				    if os.path.lexists(P(layer, "/".join(lparts[:i])))), None)
			whose = "the lower has"
			if ref is None:
				continue
		sr = os.stat(ref, follow_symlinks=False)
		for field, a, b in (("owner", (su.st_uid, su.st_gid), (sr.st_uid, sr.st_gid)),
				    ("mode", "0%o" % su.st_mode, "0%o" % sr.st_mode)):
			env.check(a == b, "%s: %s %s, %s %s" % (what, field, a, whose, b))
		if i < len(parts) and (parent_mtime or i < len(parts) - 1):
			env.check(su.st_mtime_ns == sr.st_mtime_ns, "%s: mtime %d, %s %d"
				  % (what, su.st_mtime_ns, whose, sr.st_mtime_ns))
		if not stat.S_ISLNK(su.st_mode):
			ux, rx = _user_xattrs(up), _user_xattrs(ref)
			env.check(ux == rx, "%s: user xattrs %r, %s %r" % (what, ux, whose, rx))


def _copyup_test(name, trigger, rels=("rich", "deep/a/b/c/f"), new_rel=None, parent_mtime=True):
	@wtest("copyup/" + name, layers=copyup_layers)
	def fn(env):
		for rel in rels:
			nr = new_rel(rel) if new_rel else None
			env.same("%s on %s" % (name, rel), _trigger_and_delta, rel, trigger, nr)
			check_raw_upper(env, nr or rel, rel, parent_mtime)
	fn.__name__ = "t_copyup_" + name
	return fn


def _open(flags):
	def trig(r, rel):
		os.close(os.open(P(r, rel), flags))
	return trig


def _write(r, rel):
	fd = os.open(P(r, rel), os.O_WRONLY)
	try:
		return os.pwrite(fd, b"WRITTEN", 3)
	finally:
		os.close(fd)


def _link(r, rel):
	os.link(P(r, rel), P(r, rel + ".link"))
	return os.stat(P(r, rel)).st_ino == os.stat(P(r, rel + ".link")).st_ino


def _rename(r, rel):
	os.rename(P(r, rel), P(r, rel + ".renamed"))


def _setx(r, rel):
	os.setxattr(P(r, rel), "user.added", b"added", follow_symlinks=False)


def _rmx(r, rel):
	name = "user.a" if rel == "rich" else "user.f"
	os.removexattr(P(r, rel), name, follow_symlinks=False)


_copyup_test("open_wronly", _open(os.O_WRONLY))
_copyup_test("open_rdwr", _open(os.O_RDWR))
_copyup_test("open_trunc", _open(os.O_WRONLY | os.O_TRUNC))
_copyup_test("write", _write)
_copyup_test("chmod", lambda r, rel: os.chmod(P(r, rel), 0o640))
_copyup_test("chown", lambda r, rel: os.chown(P(r, rel), 4321, -1))
_copyup_test("utime", lambda r, rel: os.utime(P(r, rel), ns=(T0 + 7, T0 + 9)))
_copyup_test("truncate", lambda r, rel: os.truncate(P(r, rel), 5))
_copyup_test("setxattr", _setx)
_copyup_test("removexattr", _rmx)
_copyup_test("link", _link, parent_mtime=False)
_copyup_test("rename", _rename, new_rel=lambda rel: rel + ".renamed", parent_mtime=False)
_copyup_test("special_files_lchown", lambda r, rel: os.chown(P(r, rel), 99, 98,
							      follow_symlinks=False),
	     rels=("fifo", "chr", "sym"))
_copyup_test("dir_chmod", lambda r, rel: os.chmod(P(r, rel), 0o700), rels=("deep/a", "ldir"))
_copyup_test("dir_setxattr", _setx, rels=("deep/a/b", "ldir/sub"))


@wtest("copyup/parents_of_new_entry", layers=copyup_layers)
def t_parents(env):
	"""Creating inside lower-only directories copies the whole chain up first, each with the
	lower's mode, owner, times and xattrs (the direct parent's mtime moves: a new entry)."""
	def create(r, rel):
		before = {d: meta(P(r, d)) for d in ("deep", "deep/a", "deep/a/b", "deep/a/b/c")}
		fd = os.open(P(r, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
		os.close(fd)
		return {d: delta(b, meta(P(r, d))) for d, b in before.items()}
	env.same("create deep/a/b/c/new", create, "deep/a/b/c/new")
	check_raw_upper(env, "deep/a/b/c/new", parent_mtime=False)
	env.same("mkdir ldir/sub/nd", lambda r: delta(meta(P(r, "ldir")),
						      (os.mkdir(P(r, "ldir/sub/nd")),
						       meta(P(r, "ldir")))[1]))
	check_raw_upper(env, "ldir/sub/nd", parent_mtime=False)


# readback=False: this read-back copies both uppers and mounts them over the kernel's copy of the
# lowers with a fresh workdir, so the origin file handles and the index (workdir/index) that keep
# a copied-up hard link one file cannot match there. The differential test (diff.sh, full mix)
# reads plyfs' own upper, workdir and lowers back and covers it.
@wtest("copyup/hardlinked_lower", layers=copyup_layers, readback=False)
def t_hardlinked_lower(env):
	"""Two lower names of one inode: writing through one is seen through the other after copy-up
	(kernel overlayfs with index=on keeps the link)."""
	def go(r):
		before = (os.stat(P(r, "h1")).st_ino, os.stat(P(r, "h2")).st_ino)
		fd = os.open(P(r, "h1"), os.O_WRONLY)
		os.write(fd, b"HARD")
		os.close(fd)
		after = (os.stat(P(r, "h1")), os.stat(P(r, "h2")))
		return {"same ino before": before[0] == before[1],
			"same ino after": after[0].st_ino == after[1].st_ino,
			"ino kept": after[0].st_ino == before[0],
			"nlink": (after[0].st_nlink, after[1].st_nlink),
			"h2 data": read_file(P(r, "h2"))}
	env.same("write h1, read h2", go)
	env.same("chmod h2 shows on h1", lambda r: (os.chmod(P(r, "h2"), 0o600),
						   "0%o" % os.stat(P(r, "h1")).st_mode)[1])


@wtest("copyup/ino_stable_and_unique", layers=copyup_layers)
def t_ino_stable(env):
	"""st_ino of every lower file is the same before and after its copy-up, and stays distinct
	from every other file's."""
	names = ("lo", "lo2", "mid", "rich", "ldir/a", "ldir/sub/c", "deep/a/b/c/f", "sym", "fifo")

	def go(r):
		before = {n: os.stat(P(r, n), follow_symlinks=False).st_ino for n in names}
		for n in names:
			os.chown(P(r, n), 1, 1, follow_symlinks=False)
		after = {n: os.stat(P(r, n), follow_symlinks=False).st_ino for n in names}
		return {"kept": sorted(n for n in names if before[n] == after[n]),
			"distinct after": len(set(after.values())) == len(names)}
	env.same("chown all", go)
