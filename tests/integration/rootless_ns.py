# SPDX-License-Identifier: GPL-2.0-or-later
"""rootless_ns.py - runs a command as root of a new user namespace whose ids are unprivileged outside:
inner ids 0..COUNT-1 are outer OUTER..OUTER+COUNT-1 (root writes the maps itself, so no
/etc/subuid entry is needed), with a mount namespace of its own owned by it. Inside, the command
can mount tmpfs, FUSE and overlay (userxattr), but has no privilege over anything outside the
range: what an unprivileged user who was given those ids has (rootless podman's setup).

    python3 rootless_ns.py OUTER COUNT -- ARGV...      (as root; exits with the command's status)
"""

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _fail(what):
	e = ctypes.get_errno()
	os.write(2, ("rootless_ns.py: %s: %s\n" % (what, os.strerror(e))).encode())
	os._exit(125)


def run(outer, count, argv, stdout_path=None):
	"""Forks; the child enters the namespaces, becomes root there and execs argv, its stdout
	into `stdout_path` if given (created by root, before the namespace). Returns the child's
	exit status (as os.waitstatus_to_exitcode)."""
	ready_r, ready_w = os.pipe()
	go_r, go_w = os.pipe()
	pid = os.fork()
	if pid == 0:
		os.close(ready_r)
		os.close(go_w)
		if stdout_path:
			fd = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
			os.dup2(fd, 1)
			os.close(fd)
		if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
			_fail("unshare")
		os.write(ready_w, b"1")
		if os.read(go_r, 1) != b"1":
			os._exit(125)
		os.setgroups([])
		os.setresgid(0, 0, 0)
		os.setresuid(0, 0, 0)
		if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
			_fail("mount --make-rprivate /")
		try:
			os.execvp(argv[0], argv)
		except OSError as e:
			os.write(2, ("rootless_ns.py: exec %s: %s\n" % (argv[0], e)).encode())
			os._exit(127)
	os.close(ready_w)
	os.close(go_r)
	ok = os.read(ready_r, 1) == b"1"
	if ok:
		for name in ("uid_map", "gid_map"):
			with open("/proc/%d/%s" % (pid, name), "w") as f:
				f.write("0 %d %d\n" % (outer, count))
		os.write(go_w, b"1")
	os.close(go_w)
	os.close(ready_r)
	_, st = os.waitpid(pid, 0)
	return os.waitstatus_to_exitcode(st)


if __name__ == "__main__":
	if len(sys.argv) < 5 or sys.argv[3] != "--":
		print(__doc__, file=sys.stderr)
		sys.exit(2)
	sys.exit(run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[4:]))
