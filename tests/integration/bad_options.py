# SPDX-License-Identifier: GPL-2.0-or-later
"""bad_options.py - invocations the binary must refuse: non-zero exit, a message on stderr that
names the offending path or option, a bounded run time, and no mount left behind.

Each case lists needle groups; every group must have one of its alternatives in stderr (compared
without regard to case). The
needle check is strict for plyfs and advisory for other binaries (fuse-overlayfs words its
messages differently), see Opts.strict_messages.
"""

import os
import signal
import subprocess

import mounts
from mounts import t

# (name, argv after the binary, needle groups). {X} are replaced by the paths set up below.
CASES = [
	("unknown_option", ["-o", "lowerdir={L1},frobnicate", "{M}"], [("frobnicate",)]),
	("unknown_option_with_value", ["-o", "lowerdir={L1},bogus=1", "{M}"], [("bogus",)]),
	("unknown_flag", ["-Z", "-o", "lowerdir={L1}", "{M}"], [("-Z", "Z")]),
	("missing_lowerdir", ["-o", "upperdir={U},workdir={W}", "{M}"], [("lowerdir",)]),
	("no_options_at_all", ["{M}"], [("lowerdir",)]),
	("missing_mountpoint", ["-o", "lowerdir={L1}"], [("mountpoint",)]),
	("too_many_arguments", ["-o", "lowerdir={L1}", "src", "{M}", "extra-arg"], [("extra-arg",)]),
	("nonexistent_lowerdir", ["-o", "lowerdir={NX}", "{M}"], [("{NX}",)]),
	("nonexistent_second_lowerdir", ["-o", "lowerdir={L1}:{NX}", "{M}"], [("{NX}",)]),
	("lowerdir_is_a_file", ["-o", "lowerdir={FILE}", "{M}"], [("{FILE}",)]),
	("empty_lowerdir", ["-o", "lowerdir=", "{M}"], [("lowerdir",)]),
	("empty_lowerdir_element", ["-o", "lowerdir={L1}::{L2}", "{M}"], [("lowerdir",)]),
	("trailing_colon_in_lowerdir", ["-o", "lowerdir={L1}:", "{M}"], [("lowerdir",)]),
	("upperdir_without_workdir", ["-o", "lowerdir={L1},upperdir={U}", "{M}"], [("workdir",)]),
	("workdir_without_upperdir", ["-o", "lowerdir={L1},workdir={W}", "{M}"], [("upperdir",)]),
	("nonexistent_upperdir", ["-o", "lowerdir={L1},upperdir={NX},workdir={W}", "{M}"],
	 [("{NX}",)]),
	("upperdir_is_a_file", ["-o", "lowerdir={L1},upperdir={FILE},workdir={W}", "{M}"],
	 [("{FILE}",)]),
	("nonexistent_workdir", ["-o", "lowerdir={L1},upperdir={U},workdir={NX}", "{M}"], [("{NX}",)]),
	("workdir_inside_upperdir", ["-o", "lowerdir={L1},upperdir={U},workdir={U}/w", "{M}"],
	 [("{U}/w",)]),
	("workdir_equals_upperdir", ["-o", "lowerdir={L1},upperdir={U},workdir={U}", "{M}"],
	 [("{U}",)]),
	("upperdir_inside_lowerdir", ["-o", "lowerdir={L1},upperdir={L1}/u,workdir={W}", "{M}"],
	 [("{L1}/u",)]),
	("lowerdir_inside_upperdir", ["-o", "lowerdir={U}/l,upperdir={U},workdir={W}", "{M}"],
	 [("{U}/l",)]),
	("upperdir_equals_lowerdir", ["-o", "lowerdir={L1},upperdir={L1},workdir={W}", "{M}"],
	 [("{L1}",)]),
	("mountpoint_inside_a_layer", ["-o", "lowerdir={L1}:{L2}", "{L2}/m"], [("{L2}/m", "{L2}")]),
	("workdir_on_another_filesystem", ["-o", "lowerdir={L1},upperdir={U},workdir={T}/w", "{M}"],
	 [("{T}/w", "{T}")]),
	("nonexistent_mountpoint", ["-o", "lowerdir={L1}", "{NX}"], [("{NX}",)]),
	("bad_uidmapping", ["-o", "lowerdir={L1},uidmapping=0:1000", "{M}"], [("uidmapping",)]),
	("bad_gidmapping", ["-o", "lowerdir={L1},gidmapping=a:b:c", "{M}"], [("gidmapping",)]),
	("bad_squash_to_uid", ["-o", "lowerdir={L1},squash_to_uid=abc", "{M}"], [("squash_to_uid",)]),
	("negative_timeout", ["-o", "lowerdir={L1},timeout=-1", "{M}"], [("timeout",)]),
	("bad_noxattrs", ["-o", "lowerdir={L1},noxattrs=7", "{M}"], [("noxattrs",)]),
	# Kernel overlayfs' options: a word the kernel does not know, and what plyfs cannot honour
	# (metacopy=on; xino=off with layers on two filesystems, {T} being another tmpfs).
	("bad_redirect_dir", ["-o", "lowerdir={L1},redirect_dir=yes", "{M}"],
	 [("redirect_dir=yes",), ("nofollow",)]),
	("bad_xino", ["-o", "lowerdir={L1},xino=maybe", "{M}"], [("xino=maybe",), ("auto",)]),
	("bad_nfs_export", ["-o", "lowerdir={L1},nfs_export=1", "{M}"],
	 [("nfs_export=1",), ("on or off",)]),
	("metacopy_on", ["-o", "lowerdir={L1},metacopy=on", "{M}"],
	 [("metacopy=on",), ("not supported",)]),
	("xino_off_across_filesystems", ["-o", "lowerdir={L1}:{T},xino=off", "{M}"],
	 [("xino=off",), ("filesystems",)]),
	# A layer given twice (kernel: ELOOP, "conflicting lowerdir path"), also through a symlink
	# or a bind mount: the message names the second path.
	("same_lowerdir_twice", ["-o", "lowerdir={L1}:{L1}", "{M}"], [("{L1}",), ("only once",)]),
	("same_lowerdir_through_symlink", ["-o", "lowerdir={L1}:{L2}:{LINK}", "{M}"],
	 [("{LINK}",), ("only once",)]),
	("same_lowerdir_through_bind_mount", ["-o", "lowerdir={BIND}:{L1}", "{M}"],
	 [("{L1}",), ("only once",)]),
	("upperdir_is_a_lowerdir_through_bind_mount",
	 ["-o", "lowerdir={BIND},upperdir={L1},workdir={W}", "{M}"], [("{BIND}",), ("only once",)]),
	# A layer option given twice: refused, whatever the values (the last one wins elsewhere).
	("lowerdir_given_twice", ["-o", "lowerdir={L1},lowerdir={L2}", "{M}"],
	 [("lowerdir={L2}",), ("given already",)]),
	("lowerdir_given_twice_in_two_o", ["-o", "lowerdir={L1}", "-o", "lowerdir={L1}", "{M}"],
	 [("lowerdir",), ("given already",)]),
	("upperdir_given_twice", ["-o", "lowerdir={L1},upperdir={U},workdir={W},upperdir={U}", "{M}"],
	 [("upperdir",), ("given already",)]),
	("workdir_given_twice", ["-o", "lowerdir={L1},upperdir={U},workdir={W},workdir={T}/w", "{M}"],
	 [("workdir",), ("given already",)]),
	# Numbers out of range name the option.
	("timeout_out_of_range", ["-o", "lowerdir={L1},timeout=99999999999999999999", "{M}"],
	 [("timeout=99999999999999999999",)]),
	("squash_to_uid_out_of_range", ["-o", "lowerdir={L1},squash_to_uid=4294967295", "{M}"],
	 [("squash_to_uid",)]),
	("forgotten_records_out_of_range",
	 ["-o", "lowerdir={L1},forgotten_records=99999999999999999999", "{M}"],
	 [("forgotten_records",)]),
	("max_read_out_of_range", ["-o", "lowerdir={L1},max_read=4294967296", "{M}"], [("max_read",)]),
	# Longer than the kernel takes as a mount's source or type: plyfs names the option and the
	# limit (libfuse's own message named neither).
	("fsname_10k", ["-o", "lowerdir={L1},fsname=" + "f" * 10240, "{M}"],
	 [("fsname",), ("4095",)]),
	("subtype_5k", ["-o", "lowerdir={L1},subtype=" + "s" * 5000, "{M}"],
	 [("subtype",), ("4087",)]),
	("source_10k", ["s" * 10240, "{M}", "-o", "lowerdir={L1}"], [("source",), ("4095",)]),
]

# What plyfs answers every refused invocation with (man page, EXIT STATUS); checked with
# strict_messages, as other binaries may use other codes.
EXIT_REFUSED = 1


class Setup:
	"""The paths the cases refer to, in one temp dir, with a tmpfs for the other-filesystem case."""

	def __init__(self, base):
		self.base = base
		p = {k: os.path.join(base, k.lower()) for k in ("L1", "L2", "U", "W", "T")}
		for d in p.values():
			os.makedirs(d)
		for d in ("L1/u", "L2/m", "U/w", "U/l"):
			os.makedirs(os.path.join(base, d.split("/")[0].lower(), d.split("/")[1]))
		p["FILE"] = os.path.join(base, "a_file")
		with open(p["FILE"], "w") as f:
			f.write("not a directory\n")
		p["NX"] = os.path.join(base, "does-not-exist")
		mounts.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", p["T"]], 30)
		os.makedirs(os.path.join(p["T"], "w"))
		# L1 again, under other paths: a symlink and a bind mount.
		p["LINK"] = os.path.join(base, "l1-link")
		os.symlink(p["L1"], p["LINK"])
		p["BIND"] = os.path.join(base, "l1-bind")
		os.makedirs(p["BIND"])
		mounts.run(["mount", "--bind", p["L1"], p["BIND"]], 30)
		self.paths = p

	def subst(self, s, mnt):
		for k, v in sorted(self.paths.items(), key=lambda kv: -len(kv[0])):
			s = s.replace("{%s}" % k, v)
		return s.replace("{M}", mnt)

	def close(self):
		mounts.umount(self.paths["BIND"])
		mounts.umount(self.paths["T"])


def run_case(opts, setup, case):
	"""Returns (problems, notes)."""
	name, argv, needles = case
	mnt = os.path.join(setup.base, "mnt_" + name)
	os.makedirs(mnt)
	logdir = os.path.join(setup.base, "log_" + name)
	os.makedirs(logdir)
	args = [opts.binary] + [setup.subst(a, mnt) for a in argv]
	env = dict(os.environ)
	if opts.sanitizer:
		env["ASAN_OPTIONS"] = "log_path=%s/asan:detect_leaks=1" % logdir
		env["UBSAN_OPTIONS"] = "log_path=%s/ubsan:print_stacktrace=1:halt_on_error=0" % logdir
	before = set(mounts.mounts())
	errs, notes = [], []
	proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
				stderr=subprocess.PIPE, env=env)
	try:
		out, err = proc.communicate(timeout=t(10))
	except subprocess.TimeoutExpired:
		proc.kill()
		out, err = proc.communicate()
		errs.append("did not return within %.0fs" % t(10))
	errs += _leftovers(before, args)
	stderr = err.decode(errors="replace").strip()
	if proc.returncode == 0:
		errs.append("exit status 0")
	elif proc.returncode < 0:
		errs.append("killed by signal %d" % -proc.returncode)
	elif opts.strict_messages and proc.returncode != EXIT_REFUSED:
		errs.append("exit status %d, documented %d" % (proc.returncode, EXIT_REFUSED))
	if not stderr:
		errs.append("nothing on stderr")
	low = stderr.lower()
	missing = [g for g in needles if not any(setup.subst(n, mnt).lower() in low for n in g)]
	if missing:
		msg = "stderr %r does not mention %s" % (
			stderr[:300], " and ".join("/".join(setup.subst(n, mnt) for n in g) for g in missing))
		(errs if opts.strict_messages else notes).append(msg)
	if opts.sanitizer:
		for n in sorted(os.listdir(logdir)):
			with open(os.path.join(logdir, n), "rb") as f:
				errs.append("sanitizer report %s:\n%s" % (n, f.read()[:6000].decode(errors="replace")))
	return errs, notes


def _leftovers(before, args):
	"""A refused invocation must leave no mount and no process behind; undo what it left."""
	errs = []
	for m, fs in sorted(set(mounts.mounts()) - before):
		errs.append("left a %s mount on %s" % (fs, os.fsdecode(m)))
		mounts.umount(m)
	for a in args[1:]:
		if os.path.isabs(a):
			for pid in mounts.pids_with_arg(a):
				# A daemon whose mount we just removed gets a moment to exit by itself.
				if mounts.wait_pid_exit(pid, t(5)):
					continue
				errs.append("left process %d running" % pid)
				os.kill(pid, signal.SIGKILL)
				mounts.wait_pid_exit(pid, 5)
	return errs
