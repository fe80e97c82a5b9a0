# SPDX-License-Identifier: GPL-2.0-or-later
"""scenarios.py - the layer setups compared between the binary and kernel overlayfs.

Layer lists are top first: lowers[0] is lower0, the top lower. `upper=None` means a read-only
mount of lowers only. See layerspec.py for the entry kinds.
"""

import os
import random
import uuid

import probes
from layerspec import D, DEEP, DEV, F, FIFO, GEN, H, L, SOCK, WH, WHF
from scenario import Scenario


def rnd(n, seed):
	return random.Random(seed).randbytes(n)


# --- shared shapes ------------------------------------------------------------------------------

def whiteout_shapes(wh):
	"""(lowers, upper) hiding files and directories with the whiteout kind `wh` (WH or WHF):
	in the upper, and in a middle lower with a name re-created above it."""
	bottom = {"a": "a bottom", "b": "b bottom", "d/x": "x", "d/y": "y", "e/z": "z",
		  "gone": "g", "gonedir/a": "a", "gonedir/sub/b": "b", "dir/gone": "x", "dir/keep": "k"}
	middle = {"a": wh(), "d/x": wh(), "e": wh(), "mid": "m", "b": wh()}
	top = {"a": "a recreated on top", "e/new": "new", "d/w": "w"}
	upper = {"gone": wh(), "gonedir": wh(), "dir/gone": wh(), "notbelow": wh(), "mid": wh(),
		 "u": "u"}
	return [top, middle, bottom], upper


def opaque_shapes(kind):
	bottom = {"o/a": "a", "o/b": "b", "m/x": "x", "n/hidden": "h", "p/deep/f": "f"}
	middle = {"o": D(opaque=kind), "o/c": "c", "m/y": "y", "n/mid": "mid", "p/deep/g": "g"}
	top = {"t": "t", "p": D(opaque=kind), "p/top": "top"}
	upper = {"m": D(opaque=kind), "m/z": "z", "n": D(opaque=kind), "n/q": "q", "o/u": "u"}
	return [top, middle, bottom], upper


def deep_path(levels, d=DEEP()):
	return b"/".join([b"deep"] + [d.name(i) for i in range(levels)])


# --- checks ---------------------------------------------------------------------------------------

def check_rofs(ctx):
	return probes.rofs(ctx.km, ctx.pm)


def check_hardlinks(ctx):
	p = ctx.state["walk_p"]
	errs = []
	for group, nlink in (([b"a", b"b", b"dir/c"], 3), ([b"x2"], 2), ([b"u", b"u2"], 2)):
		inos = {p[x].ino for x in group}
		if len(inos) != 1:
			errs.append("hard links %r have st_ino %r, expected one" % (group, sorted(inos)))
		for x in group:
			if p[x].nlink != nlink:
				errs.append("%r: st_nlink %d, expected %d" % (x, p[x].nlink, nlink))
	return errs


def check_readdir_sets(ctx, rel="m"):
	ek, nk = probes.scandir_sets(os.path.join(ctx.km, rel))
	ep, np_ = probes.scandir_sets(os.path.join(ctx.pm, rel))
	errs = ek + ep
	if nk != np_:
		errs.append("names of %s differ: only kernel %r, only binary %r"
			    % (rel, sorted(set(nk) - set(np_))[:5], sorted(set(np_) - set(nk))[:5]))
	return errs


def check_dirstream(ctx, rel="m"):
	ek, nk = probes.dirstream(os.path.join(ctx.km, rel))
	ep, np_ = probes.dirstream(os.path.join(ctx.pm, rel))
	errs = ["oracle: " + e for e in ek] + ep
	if nk != np_:
		errs.append("readdir names of %s differ: only kernel %r, only binary %r"
			    % (rel, sorted(set(nk) - set(np_))[:5], sorted(set(np_) - set(nk))[:5]))
	return errs


def check_ls_l(ctx):
	return probes.ls_l(ctx.km, ctx.pm, "big")


def check_files_in_different_layers(ctx):
	"""Same-shaped trees on fresh tmpfs instances: their inode numbers collide on disk, yet no two
	entries of the mount (there are no hard links here) may share an st_ino."""
	p = ctx.state["walk_p"]
	seen, errs = {}, []
	for path, r in sorted(p.items()):
		if r.ino in seen:
			errs.append("%r and %r share st_ino %d" % (seen[r.ino], path, r.ino))
		seen.setdefault(r.ino, path)
	return errs


# --- the sentinel: symlinks in layers must be data, never followed by the daemon ------------------

def escape_layers(ctx):
	s = ctx.sentinel
	marker = "MARKER-" + uuid.uuid4().hex
	os.makedirs(os.path.join(s, "sub"))
	for rel in (marker, "sub/" + marker):
		with open(os.path.join(s, rel), "w") as f:
			f.write(marker)
	ctx.state["marker"] = marker
	lower1 = {"dd": L(s), "nest": L(s), "tree": L(s + "/sub"), "plain": "p"}
	lower0 = {"esc": L(s), "tosent": L(s), "etc": L("/etc"), "root": L("/"), "up": L("../../.."),
		  "rel": L("../../sentinel"), "dd/own": "own", "nest/sub/own": "own",
		  "tree/own": D(), "deep": L(s + "/sub")}
	upper = {"esc/own": "upper own", "root/own": "r", "up/own": "u", "deep/x": "x"}
	return [lower0, lower1], upper


def escape_before(ctx):
	s = ctx.sentinel
	m = ctx.state["marker"]
	ctx.state["inotify"] = probes.Inotify([s, os.path.join(s, m), os.path.join(s, "sub"),
					       os.path.join(s, "sub", m)])
	return []


def escape_checks(ctx):
	errs = []
	m, pm = ctx.state["marker"], ctx.pm
	ino = ctx.state.pop("inotify")
	try:
		# Operations the daemon serves itself: lookups and readdir of the shadowing dirs.
		for d in ("esc", "dd", "nest", "nest/sub", "root", "up", "deep", "tree"):
			names = os.listdir(os.path.join(pm, d))
			if m in names:
				errs.append("(a) the sentinel's marker is visible in %s/" % d)
			for probe in (m, "sub"):
				try:
					os.lstat(os.path.join(pm, d, probe))
					if not (d == "nest" and probe == "sub"):
						errs.append("(a) %s/%s resolves through a shadowed symlink" % (d, probe))
				except FileNotFoundError:
					pass
			os.listxattr(os.path.join(pm, d), follow_symlinks=False)
		for link in ("tosent", "etc", "rel"):
			os.readlink(os.path.join(pm, link))
			os.lstat(os.path.join(pm, link))
		with open(os.path.join(pm, "esc", "own")) as f:
			if f.read() != "upper own":
				errs.append("esc/own has the wrong content")
		ev = ino.events()
		if ev:
			errs.append("(c) inotify saw the daemon touch the sentinel: %r" % ev[:5])
		# Positive control: the client following `tosent` itself must be seen by the watch.
		with open(os.path.join(pm, "tosent", m)) as f:
			f.read()
		if not any(e[1] & probes.IN_OPEN for e in ino.events()):
			errs.append("(c) inotify control: opening the marker produced no IN_OPEN event")
	finally:
		ino.close()
	# (b) Through a visible symlink the client's kernel follows the link itself: expected.
	for mnt in (ctx.km, pm):
		try:
			with open(os.path.join(mnt, "tosent", m)) as f:
				if f.read() != m:
					errs.append("(b) tosent/%s has the wrong content on %s" % (m, mnt))
		except OSError as e:
			errs.append("(b) tosent/marker on %s: %s" % (mnt, e))
	if os.readlink(os.path.join(pm, "etc")) != "/etc":
		errs.append("readlink etc != /etc")
	return errs


# --- the scenarios --------------------------------------------------------------------------------

def scenarios():
	odd = [b"with space", b"new\nline", b"tab\there", b"\xff\xfe non-utf8", b"\x80", b"n" * 255,
	       "é unicode".encode(), b"-dash", b"back\\slash", b"colon:name", b"comma,name",
	       b"*?[glob", b"trailing space ", b".hidden", b"...", b".wh"]
	odd_lower = {x: x for x in odd}
	odd_lower.update({b"dir " + b"d" * 251 + b"/" + b"f" * 255: "long", b"hide\nme": "h",
			  b"\xffhide": "h", b"lnk\n": L(b"target\nwith newline")})
	sizes = {"s%d" % n: rnd(n, n) for n in (0, 1, 4095, 4096, 4097, 65536, (1 << 20) + 1)}
	sizes["sparse100m"] = F(size=100 << 20, chunks=[(0, b"head"), (50 << 20, rnd(5000, 7)),
						       ((100 << 20) - 3, b"end")])
	sizes["sparse_all_holes"] = F(size=3 << 20)
	fives = [{"merged/f%d" % i: "f%d" % i, "shadow": "layer %d" % i, "chain/l%d/x" % i: "x"}
		 for i in range(5)]
	fives[3].update({"hidden_by_3": WH(), "gone4": WH()})
	fives[4].update({"hidden_by_3": "h", "gone4": "g", "dir4/a": "a"})
	fives[2].update({"dir4": WH()})
	fives[1].update({"dir4/new": "n", "gone4": "back"})
	wh_char, wh_char_upper = whiteout_shapes(WH)
	wh_file, wh_file_upper = whiteout_shapes(WHF)
	big = [
		{"big": [GEN(30000, start=80000), GEN(2000, kind="wh", start=1, step=20)]},
		{"big": [GEN(40000, start=40000), GEN(1000, kind="whf", start=3, step=37)]},
		{"big": GEN(50000, start=0), "other": "o"},
	]
	return [
		Scenario("single_lower", [{
			"file": "hello\n", "dir/sub/f": "x", "dir/empty": D(), "link": L("file"),
			"dlink": L("dir"), "broken": L("nowhere"), "exec": F("#!/bin/sh\n", mode=0o755)}]),
		Scenario("two_lowers", [
			{"a": "top a", "dir/top": "t", "dir/shared": "from top", "only0": D()},
			{"a": "bottom a", "dir/bottom": "b", "dir/shared": "from bottom", "only1/x": "x",
			 "b": "bottom b"}]),
		Scenario("five_lowers", fives),
		Scenario("lowers_only_erofs", [
			{"file": F("data", xattrs={"user.k": "v"}), "dir/empty": D()},
			{"file": "below", "dir/b": "b"}], checks=[check_rofs]),
		Scenario("upper_lower", [
			{"shared": "lower", "dir/l": "l", "dir/shared": "lower", "l": "lower only"}],
			upper={"u": "upper only", "dir/u": "u", "shared": "upper wins",
			       "dir/shared": "upper"}),
		Scenario("whiteout_chardev", wh_char, upper=wh_char_upper),
		Scenario("whiteout_whfile", wh_file, upper=wh_file_upper),
		Scenario("opaque_trusted_xattr", *opaque_shapes("trusted")),
		Scenario("opaque_user_xattr", *opaque_shapes("user"), userxattr=True),
		Scenario("opaque_whopq", *opaque_shapes("wh")),
		Scenario("file_over_dir", [{"x": "I am a file", "y/c": "c"}, {"x/a": "a", "x/sub/b": "b"}],
			 upper={"y": "file over a lower dir"}),
		Scenario("dir_over_file", [{"x/a": "a", "y": "file"}, {"x": "file below"}],
			 upper={"y/b": "dir over a lower file"}),
		Scenario("symlink_over_dir", [{"s": L("target"), "target/t": "t", "u/x": "x"},
					      {"s/a": "a", "s/sub/b": "b"}],
			 upper={"u": L("s")}),
		Scenario("deep_tree", [{"deep": DEEP(100, 40, "mid0")}, {"deep": DEEP(150, 40, "bottom1")}],
			 upper={deep_path(149) + b"/leaf": WH(), deep_path(120) + b"/extra": "x",
				deep_path(60) + b"/leaf": "upper leaf"}, walk_timeout=300),
		Scenario("big_dir_100k", big, light=["big"], walk_timeout=400),
		Scenario("odd_names", [odd_lower, {b"\xffbelow": "b", b"hide\nme": "x"}],
			 upper={b"hide\nme": WHF(), b"\xffhide": WH(), b"n" * 255: "upper wins"}),
		Scenario("readdir_sets", [
			{"m": GEN(500, "top%04d", start=0)},
			{"m": [GEN(500, "top%04d", start=250), GEN(100, "top%04d", kind="wh", start=0)]},
			{"m": GEN(800, "bottom%04d")}], checks=[check_readdir_sets]),
		Scenario("hard_links", [{"x": "shadow"}, {"a": "data", "b": H("a"), "dir/c": H("a"),
							  "x": "x", "x2": H("x")}],
			 upper={"u": "u", "u2": H("u")}, checks=[check_hardlinks]),
		Scenario("special_files", [{"fifo": FIFO(), "null": DEV(1, 3), "blk": DEV(7, 0, 0o660, "b"),
					    "sock": SOCK(), "dir/fifo2": FIFO(0o600, uid=5)},
					   {"null": "shadowed", "zero": DEV(1, 5)}]),
		Scenario("user_xattrs", [
			{"d": D(xattrs={"user.top": "t"}), "d/top": "t"},
			{"f": F("x", xattrs={"user.a": "1", "user.empty": "", "user.bin": b"\x00\xff\n",
					     "user.long": "v" * 4000}),
			 "d": D(xattrs={"user.dir": "yes"}), "d/f2": F("y", xattrs={"user.q": "q"}),
			 "plain": D(xattrs={"user.plain": "p"})}],
			upper={"uf": F("u", xattrs={"user.u": "u"}), "ud": D(xattrs={"user.ud": "d"})}),
		Scenario("file_sizes", [sizes, {"s4096": "shadowed", "below": rnd(10000, 1)}],
			 upper={"s1": "upper one", "u_sparse": F(size=5 << 20, chunks=[(1 << 20, b"x")])},
			 walk_timeout=300),
		Scenario("owners_modes", [{
			"u1000": F("a", 0o640, 1000, 1000), "setuid": F("s", 0o4755), "setgid": F("g", 0o2755),
			"both": F("b", 0o6711, 7, 8), "sticky": D(0o1777), "mode0": F("z", 0),
			"all": F("a", 0o777), "private": D(0o700, 1234, 4321), "private/f": "f",
			"ownlink": L("u1000", uid=42, gid=43), "bigid": F("b", 0o600, 100000, 200000),
			"nobody": F("n", 0o644, 65534, 65534), "fifo": FIFO(0o620, uid=3, gid=4),
			"noaccess": D(0o000), "sgdir": D(0o2775, 10, 20)}],
			upper={"up_owned": F("u", 0o4750, 500, 600), "sticky/x": F("x", 0o1644)}),
		Scenario("symlinks_escape", escape_layers, before=[escape_before], checks=[escape_checks]),
		Scenario("seekdir_telldir", [
			{"m": [GEN(1500, "t" * 100 + "%05d"), GEN(200, "b" * 100 + "%05d", kind="whf")]},
			{"m": GEN(1500, "b" * 100 + "%05d")}], checks=[check_dirstream]),
		Scenario("ls_l_big_dir", [
			{"big": [GEN(15000, start=0, data="x"), GEN(500, kind="symlink", start=20000)]},
			{"big": [GEN(20000, start=10000), GEN(1000, "d%05d", kind="dir")]}],
			light=["big"], checks=[check_ls_l], walk_timeout=400),
		Scenario("multi_fs_lowers", [
			{"a/x": "x0", "b": "b0", "c": "c0", "d": D()},
			{"e/y": "y1", "f": "f1", "g": "g1", "h": D()},
			{"i/z": "z2", "j": "j2", "k": "k2"}],
			upper={"u": "u"}, tmpfs=("lower0", "lower1", "lower2"),
			checks=[check_files_in_different_layers]),
		Scenario("daemonize", [{"f": "daemonized", "d/x": "x"}], upper={"u": "u"}, daemonize=True),
	]
