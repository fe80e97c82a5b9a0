# SPDX-License-Identifier: GPL-2.0-or-later
"""containers_scenario.py - what a container does to its plyfs root filesystem, and how the
result is checked, shared by the podman, buildah and rootless tests.

The image is the Debian base plus a fixture layer (FIXTURE), so the container's lower layers
are two: /etc/apt is a directory merged from both, /fixture comes from the second. CHANGES,
run in a container of that image: creates files, a directory tree, a symlink and a hard link;
deletes a lower file of each layer and a lower directory tree; appends to a lower file of each
layer; renames a lower directory of each kind (merged from two layers, and from one); installs
the `hello` package with `dpkg -i`. It prints a snapshot of the affected trees before and after
(`snap`: type, mode, owner, size, link count, symlink target and sha256 of every entry).

check_live() compares the "after" snapshot with what the "before" snapshot and the changes
imply; check_same() compares it with the snapshot a container of the committed image prints
(CHECK): every change must survive the commit.
"""

import hashlib

import containers_env

from mounts import Failure

ROOTS = "/new /fixture /etc/apt /etc/apt.renamed /etc/issue /etc/debian_version " \
	"/usr/bin/hello /usr/share/doc/hello"

FIXTURE = r"""set -eu
mkdir -p /fixture/deldir/sub /fixture/renameme/sub
echo delete-me > /fixture/delfile
echo line1 > /fixture/appendme
for i in 1 2 3; do echo $i > /fixture/deldir/sub/f$i; echo r$i > /fixture/renameme/sub/r$i; done
ln -s sub/r1 /fixture/renameme/link
echo fixture > /etc/apt/apt.conf.d/99plyfs-fixture
"""

# `snap ROOTS...`: one line per entry (absent roots said so), then the sha256 of every file.
SNAP = r"""snap() {
	for r in "$@"; do
		if [ -e "$r" ] || [ -L "$r" ]; then
			find "$r" \( -type d -printf 'd %m %U:%G %p\n' \) \
				-o \( -type l -printf 'l %U:%G %p -> %l\n' \) \
				-o -printf '%y %m %U:%G %s %n %p\n'
		else
			echo "absent $r"
		fi
	done | sort
	for r in "$@"; do
		if [ -d "$r" ] || [ -f "$r" ]; then find "$r" -type f -exec sha256sum {} +; fi
	done | sort -k 2
}
"""

CHANGES = r"""set -eu
export LC_ALL=C
""" + SNAP + r"""
echo "== before"
snap /etc/apt /fixture/renameme
echo "== version"
cat /etc/debian_version
mkdir -p /new/d1/d2
echo created > /new/file
i=0
while [ $i -lt 50 ]; do echo $i > /new/d1/f$i; i=$((i + 1)); done
ln -s file /new/link
ln /new/file /new/hardlink
rm /etc/issue /fixture/delfile
rm -r /fixture/deldir
echo appended >> /fixture/appendme
echo appended >> /etc/debian_version
mv /etc/apt /etc/apt.renamed
mv /fixture/renameme /fixture/renamed
dpkg -i /tmp/hello.deb >/dev/null
rm /tmp/hello.deb
echo "== after"
snap """ + ROOTS + r"""
echo "== hello"
hello
dpkg-query -W -f '${Status} ${Version}\n' hello
echo "== end"
"""

CHECK = r"""set -eu
export LC_ALL=C
""" + SNAP + r"""
echo "== after"
snap """ + ROOTS + r"""
echo "== hello"
hello
dpkg-query -W -f '${Status} ${Version}\n' hello
echo "== end"
"""

# Keeps a container running after its script until `podman stop` (sh as PID 1 needs the trap).
WAIT = "\necho READY\ntrap 'exit 0' TERM\nwhile :; do sleep 1; done\n"


def sections(log):
	"""{name: [lines]} of the "== name" sections of a script's output."""
	out, cur = {}, None
	for line in log.splitlines():
		if line.startswith("== "):
			cur = out.setdefault(line[3:].strip(), [])
		elif cur is not None:
			cur.append(line)
	if "end" not in out:
		raise Failure("the script did not finish:\n" + containers_env.tail(log))
	return out


def parse_snap(lines):
	"""{path: description} (sha256 lines merged into their file's description)."""
	out = {}
	for line in lines:
		w = line.split()
		if w[0] == "absent":
			out[w[1]] = "absent"
		elif w[0] == "d":
			out[w[3]] = " ".join(w[:3])
		elif w[0] == "l":
			out[w[2]] = " ".join([w[0], w[1]] + w[3:])
		elif len(w) == 2 and len(w[0]) == 64:
			out[w[1]] = out.get(w[1], "?") + " sha " + w[0]
		else:
			out[w[5]] = " ".join(w[:5])
	return out


def _subtree(snap, root):
	return {p[len(root):]: v for p, v in snap.items() if p == root or p.startswith(root + "/")}


def _sha(data):
	return hashlib.sha256(data.encode()).hexdigest()


def check_live(log, version):
	"""Errors in the "after" snapshot of CHANGES' output; `version` is the dpkg version of the
	package installed."""
	s = sections(log)
	before, after = parse_snap(s["before"]), parse_snap(s["after"])
	errs = []

	def expect(path, want):
		got = after.get(path)
		if got is None or (want not in got if want != "absent" else got != "absent"):
			errs.append("%s: %r, expected %r" % (path, got, want))

	for p in ("/etc/apt", "/etc/issue"):
		expect(p, "absent")
	for p in after:
		if p.startswith(("/fixture/delfile", "/fixture/deldir", "/fixture/renameme")):
			errs.append("%s: still there after its removal or rename (%s)" % (p, after[p]))
	for old, new in (("/etc/apt", "/etc/apt.renamed"), ("/fixture/renameme", "/fixture/renamed")):
		want, got = _subtree(before, old), _subtree(after, new)
		if not want or want != got:
			gone = sorted(set(want.items()) - set(got.items()))
			extra = sorted(set(got.items()) - set(want.items()))
			errs.append("%s renamed to %s: differs: missing %r, unexpected %r" % (
				old, new, gone[:8], extra[:8]))
	expect("/fixture/appendme", "sha " + _sha("line1\nappended\n"))
	expect("/etc/debian_version", "sha " + _sha("\n".join(s["version"]) + "\nappended\n"))
	expect("/new/file", "f 644 0:0 8 2 sha " + _sha("created\n"))
	expect("/new/hardlink", "f 644 0:0 8 2 sha " + _sha("created\n"))
	expect("/new/link", "l 0:0 -> file")
	expect("/new/d1/d2", "d 755 0:0")
	for i in range(50):
		expect("/new/d1/f%d" % i, "sha " + _sha("%d\n" % i))
	expect("/usr/bin/hello", "f 755 0:0")
	expect("/usr/share/doc/hello/copyright", "f 644 0:0")
	hello = s["hello"]
	if hello != ["Hello, world!", "install ok installed %s" % version]:
		errs.append("hello package: %r" % hello)
	return errs


def check_same(live_log, committed_log):
	"""Errors where the committed image's snapshot differs from the live container's."""
	a, b = sections(live_log), sections(committed_log)
	sa, sb = parse_snap(a["after"]), parse_snap(b["after"])
	errs = []
	for p in sorted(set(sa) | set(sb)):
		if sa.get(p) != sb.get(p):
			errs.append("after commit %s: %r, in the container %r" % (p, sb.get(p), sa.get(p)))
	if a["hello"] != b["hello"]:
		errs.append("after commit hello: %r, in the container %r" % (b["hello"], a["hello"]))
	return errs
