# SPDX-License-Identifier: GPL-2.0-or-later
"""write_race.py - requests on a name while another process unlinks or replaces it.

A node found by a lookup is reached again by (parent, name) for each request on it; meanwhile the
name can be unlinked (an upper name over a lower file leaves a whiteout) or replaced (unlink +
create, rename over). Kernel overlayfs answers such a request with the file it was sent for (its
dentry holds the upper entry) or ENOENT; it never shows the whiteout (ENXIO on open, EIO once FUSE
sees the inode change type) nor another file under the old inode (a read cut to the old size).

Each test runs the race for a bounded time on kernel overlayfs (the oracle: only ok and ENOENT)
and on the binary, in a child process (two readers, one writer, RACE_SECONDS each) whose result
is a count per outcome, and asserts the binary's outcomes are among the oracle's:
  race/open_while_recreated  loop unlink + O_EXCL create of a/f2 (lower and upper) vs two
                             processes opening it O_RDONLY|O_NONBLOCK: ok or ENOENT
  race/stat_while_recreated  the same with stat(): ok or ENOENT
  race/read_while_renamed_over  write d/tmp, rename it over d/f (in the lower), vs two readers
                             that open, fstat and read d/f: every read is one complete version
                             (its header names its length) and fstat agrees with it
The final state is then made the same on both mounts, so the harness' tree comparison holds.
"""

import json

import mounts
from mounts import Failure, t
from write_env import P, write_file, wtest

RACE_SECONDS = 5
KERNEL_SECONDS = 3

# argv: mount root, seconds, mode (open, stat, read). Prints {"readers": {outcome: count},
# "writer": iterations, "example": first bad read or null} as JSON.
WORKER = r'''
import errno, json, multiprocessing as mp, os, sys, time
root, secs, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]

def content(i):
	return b"%d:" % i + b"x" * (i % 5000)

def churn(end, q):
	p, n = os.path.join(root, "a/f2"), 0
	while time.monotonic() < end:
		try:
			os.unlink(p)
		except OSError:
			pass
		try:
			fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
			os.write(fd, b"new")
			os.close(fd)
		except OSError:
			pass
		n += 1
	q.put(("writer", n))

def rename_over(end, q):
	f, tmp, i = os.path.join(root, "d/f"), os.path.join(root, "d/tmp"), 0
	while time.monotonic() < end:
		i += 1
		fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
		os.write(fd, content(i))
		os.close(fd)
		os.rename(tmp, f)
	q.put(("writer", i))

def read_one(f):
	fd = os.open(f, os.O_RDONLY)
	try:
		size = os.fstat(fd).st_size
		data = os.read(fd, 1 << 20)
	finally:
		os.close(fd)
	if data == b"low\n":
		return "ok", None	# the lower file, before the first rename
	try:
		i = int(data.split(b":", 1)[0])
	except ValueError:
		return "GARBAGE", "read %r" % data[:40]
	if data == content(i) and size == len(data):
		return "ok", None
	return "MISMATCH", ("read %d bytes with header %d (that version has %d), fstat size %d"
			    % (len(data), i, len(content(i)), size))

def reader(end, q):
	res, example = {}, None
	a, d = os.path.join(root, "a/f2"), os.path.join(root, "d/f")
	while time.monotonic() < end:
		bad = None
		try:
			if mode == "open":
				os.close(os.open(a, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW))
				r = "ok"
			elif mode == "stat":
				os.stat(a)
				r = "ok"
			else:
				r, bad = read_one(d)
		except OSError as e:
			r = errno.errorcode.get(e.errno, str(e.errno))
		res[r] = res.get(r, 0) + 1
		example = example or bad
	q.put(("reader", (res, example)))

end = time.monotonic() + secs
q = mp.Queue()
writer = rename_over if mode == "read" else churn
ps = [mp.Process(target=reader, args=(end, q)) for _ in range(2)]
ps.append(mp.Process(target=writer, args=(end, q)))
for p in ps:
	p.start()
out = {"readers": {}, "writer": 0, "example": None}
for _ in ps:
	kind, v = q.get(timeout=secs + 60)
	if kind == "writer":
		out["writer"] = v
	else:
		for k, n in v[0].items():
			out["readers"][k] = out["readers"].get(k, 0) + n
		out["example"] = out["example"] or v[1]
for p in ps:
	p.join(30)
print(json.dumps(out))
'''


def _run(root, secs, mode):
	cp = mounts.run(["python3", "-c", WORKER, root, str(secs), mode], t(secs + 120), check=False)
	if cp.returncode != 0:
		raise Failure("race worker failed (rc %d): %s"
			      % (cp.returncode, cp.stderr.decode(errors="replace")[-800:]))
	return json.loads(cp.stdout.decode())


def _race(env, mode, allowed):
	k = _run(env.km, KERNEL_SECONDS, mode)
	p = _run(env.pm, RACE_SECONDS, mode)
	env.notes.append("kernel: %s, %d writer loops; binary: %s, %d writer loops"
			 % (k["readers"], k["writer"], p["readers"], p["writer"]))
	env.check(set(k["readers"]) <= allowed, "the oracle answered %s (the test expects only %s)"
		  % (k["readers"], sorted(allowed)))
	bad = {x: n for x, n in p["readers"].items() if x not in allowed}
	env.check(not bad, "binary answered %s (kernel overlayfs only %s)%s"
		  % (bad, sorted(allowed), "; first bad read: " + p["example"] if p["example"] else ""))
	env.check(p["readers"].get("ok", 0) > 0 and p["writer"] > 0,
		  "the race did not run on the binary: %s" % p)


def recreate_layers():
	return [{"a/f2": "low\n"}], {}


def _recreate(env, mode):
	# An upper file over a lower one: its unlink leaves a whiteout.
	env.same("copy up a/f2", lambda r: write_file(P(r, "a/f2"), b"up\n"))
	_race(env, mode, {"ok", "ENOENT"})
	for root in (env.km, env.pm):
		write_file(P(root, "a/f2"), b"final\n")


@wtest("race/open_while_recreated", layers=recreate_layers, readback=False, timeout=180)
def t_open_while_recreated(env):
	_recreate(env, "open")


@wtest("race/stat_while_recreated", layers=recreate_layers, readback=False, timeout=180)
def t_stat_while_recreated(env):
	_recreate(env, "stat")


@wtest("race/read_while_renamed_over", layers=lambda: ([{"d/f": "low\n"}], {}), readback=False,
       timeout=180)
def t_read_while_renamed_over(env):
	_race(env, "read", {"ok"})
	for root in (env.km, env.pm):
		write_file(P(root, "d/f"), b"final\n")
