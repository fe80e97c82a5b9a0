#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# run-all.sh - installs what the tests need, builds plyfs twice and runs every test suite.
#
#	bash tests/run-all.sh		(as root on Debian bookworm; CI runs it through .ci/run)
#
# Stages, in order:
#   install           apt-get the build and test packages (skip with PLYFS_SKIP_INSTALL=1)
#   build             build/ (debugoptimized), build-asan/ (ASan + UBSan) and build-fuzz/ (clang,
#                     -Dfuzz=enabled: the libFuzzer targets); a failure stops here
#   unit              meson test -C build
#   unit-asan         meson test -C build-asan (leaks detected, UBSan fatal)
#                     (for both, the summary names the failed tests and check's failure lines)
#   integration       tests/integration/run.sh build/plyfs
#   integration-asan  tests/integration/run.sh build-asan/plyfs --sanitizer
#   write             tests/integration/write.sh build/plyfs (the write path, vs kernel overlayfs)
#   write-asan        the same with the sanitizer build
#   differential      tests/integration/diff.sh: 120 seeds x 200 random ops vs kernel overlayfs,
#                     20 on each of tmpfs / ext4 / ext4 with a zero uuid, as root and rootless
#   differential-asan 24 of those seeds with the sanitizer build
#   stress-asan       tests/integration/stress.sh: 8 workers for 120 s on the sanitizer build
#   containers        tests/integration/containers.sh build/plyfs: podman, buildah (root and
#                     rootless) with plyfs as the mount program, on a Debian image debootstrapped
#                     once and cached in /var/cache/plyfs-ci (outside the clone)
#   fuzz              tests/fuzz/run.sh build-fuzz 60: every fuzz target for 60 s, two at a time
# Every stage is bounded by timeout(1). The test stages all run even when one fails, so the summary
# is complete. The last line of output is "N passed, N failed" (tests summed over the test stages)
# and the exit status is 0 iff every stage passed. Runs from any directory, needs no stdin.
set -uo pipefail
export LC_ALL=C
# mkfs.ext4 and friends live in sbin, which a non-root PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

prog=run-all.sh
repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd) || exit 2
cd "$repo" || exit 2

# clang and libclang-rt-14-dev (libFuzzer's runtime, libclang_rt.fuzzer) build the fuzz targets.
build_packages=(libfuse3-dev fuse3 libglib2.0-dev check meson ninja-build pkg-config gcc attr clang
	libclang-rt-14-dev)
test_packages=(fuse-overlayfs acl python3 util-linux e2fsprogs passwd # attr is in the list above
	podman buildah runc debootstrap uidmap strace)
# passwd: useradd/usermod for the rootless users of tests/integration/userns.py and
# containers_rootless.py; podman ... uidmap: the containers stage (crun cannot run here: runc);
# strace: write_io.py's io/splice_write watches the daemon splice.
# What the stages run, to tell whether the packages are there when they cannot be installed.
needed_cmds=(meson ninja pkg-config gcc clang fusermount3 getfattr setfacl fuse-overlayfs python3
	unshare mkfs.ext4 tune2fs timeout setpriv useradd usermod podman buildah runc debootstrap
	newuidmap strace)
needed_pkgconfig=(fuse3 glib-2.0 check)

# Per-stage timeouts in seconds.
: "${PLYFS_TIMEOUT_INSTALL:=1800}" "${PLYFS_TIMEOUT_BUILD:=1800}"
: "${PLYFS_TIMEOUT_UNIT:=1200}" "${PLYFS_TIMEOUT_INTEGRATION:=2400}"
: "${PLYFS_TIMEOUT_FUZZ:=900}" "${PLYFS_TIMEOUT_CONTAINERS:=2400}"

logdir=$(mktemp -d -t plyfs-run-all.XXXXXX) || exit 2
trap 'rm -rf -- "$logdir"' EXIT

total_passed=0
total_failed=0
stage_lines=()

say() {
	printf '\n==> %s\n' "$*"
}

record() { # record STAGE PASSED FAILED NOTE [SECONDS]
	total_passed=$((total_passed + $2))
	total_failed=$((total_failed + $3))
	stage_lines+=("$(printf '%-17s %4d passed, %4d failed%s%s' "$1" "$2" "$3" \
		"${5:+  ${5}s}" "${4:+  ($4)}")")
}

summary() {
	say "summary"
	local line
	for line in "${stage_lines[@]}"; do
		echo "  $line"
	done
	echo "$total_passed passed, $total_failed failed"
}

# Prints the summary and exits: non-zero when a stage failed or `$1` says so.
finish() {
	summary
	if [[ $total_failed -gt 0 || ${1:-0} -ne 0 ]]; then
		exit 1
	fi
	exit 0
}

have_everything() {
	local c missing=()
	for c in "${needed_cmds[@]}"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	for c in "${needed_pkgconfig[@]}"; do
		pkg-config --exists "$c" 2>/dev/null || missing+=("pkg-config:$c")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		echo "$prog: missing: ${missing[*]}" >&2
		return 1
	fi
}

install_packages() {
	local pkgs=("${build_packages[@]}" "${test_packages[@]}") why=""
	if [[ ${PLYFS_SKIP_INSTALL:-0} == 1 ]]; then
		say "install: skipped (PLYFS_SKIP_INSTALL=1)"
		return 0
	fi
	[[ $(id -u) == 0 ]] || why="not running as root"
	command -v apt-get >/dev/null 2>&1 || why="apt-get is not available (not Debian?)"
	if [[ -n $why ]]; then
		echo "$prog: cannot install the packages: $why." >&2
		echo "$prog: they are: ${pkgs[*]}" >&2
		if have_everything; then
			echo "$prog: every tool the tests need is present; going on without installing." >&2
			return 0
		fi
		echo "$prog: run me as root on Debian bookworm, or install them and set" \
			"PLYFS_SKIP_INSTALL=1." >&2
		return 1
	fi
	say "install: apt-get install -y ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout --kill-after=30 "$PLYFS_TIMEOUT_INSTALL" apt-get update </dev/null ||
		{ echo "$prog: apt-get update failed" >&2; return 1; }
	timeout --kill-after=30 "$PLYFS_TIMEOUT_INSTALL" apt-get install -y "${pkgs[@]}" </dev/null ||
		{ echo "$prog: apt-get install failed" >&2; return 1; }
}

# setup_build DIR [MESON OPTIONS...]: configures DIR (or re-applies the options) and builds it.
setup_build() {
	local dir=$1
	shift
	say "build: $dir ($*)"
	if [[ -f $dir/meson-private/coredata.dat ]]; then
		timeout "$PLYFS_TIMEOUT_BUILD" meson configure "$dir" "$@" </dev/null || return 1
	else
		timeout "$PLYFS_TIMEOUT_BUILD" meson setup "$dir" "$@" </dev/null || return 1
	fi
	timeout "$PLYFS_TIMEOUT_BUILD" ninja -C "$dir" </dev/null
}

# Counts from a meson test log: prints "PASSED FAILED", fails when there is no summary.
parse_meson() {
	awk '/^Ok:/ { ok = $2; seen = 1 }
	     /^Expected Fail:/ { ok += $3 }
	     /^Fail:/ || /^Timeout:/ { bad += $2 }
	     /^Unexpected Pass:/ { bad += $3 }
	     END { if (!seen) exit 1; print ok + 0, bad + 0 }' "$1"
}

# The failed tests of a meson test log, "name name ...", and check's failure lines (at most 5,
# indented): printed in the summary, the tail of CI's output.
meson_failures() {
	awk '/^ *[0-9]+\/[0-9]+ +[^ ]+ +(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)( |$)/ && !seen[$2]++ {
		names = names (names ? " " : "") $2 }
	     END { print names ? names : "(no test named)" }' "$1"
	grep -E '^[^ ]+:[0-9]+:[EF]:[^:]+:[^:]+:[0-9]+:' "$1" | sort -u | head -n 5 | cut -c 1-200 |
		sed 's/^/    /'
}

# Counts from an integration log: its last "N passed, N failed" line.
parse_integration() {
	awk '/^[0-9]+ passed, [0-9]+ failed$/ { p = $1; f = $3; seen = 1 }
	     END { if (!seen) exit 1; print p + 0, f + 0 }' "$1"
}

# The stage command running in the background, to stop it on Ctrl-C or SIGTERM: timeout(1) runs it
# in a process group of its own, which a terminal's signals do not reach.
stage_pid=""
tail_pid=""
# shellcheck disable=SC2317 # called by the trap below
on_signal() {
	[[ -n $stage_pid ]] && kill -TERM "$stage_pid" 2>/dev/null
	[[ -n $tail_pid ]] && kill -TERM "$tail_pid" 2>/dev/null
	echo "$prog: interrupted" >&2
	exit 130
}
trap on_signal INT TERM

# run_stage NAME LIMIT PARSER COMMAND...: runs COMMAND (output shown and kept), then records the
# counts parse_PARSER (meson or integration) finds. No summary in the output, or a non-zero exit
# with no failure counted, is counted as one failure of the stage.
run_stage() {
	local name=$1 limit=$2 parser=$3 log=$logdir/$1.log rc counts p f note="" start=$SECONDS
	shift 3
	say "$name: $*"
	# The command writes the log itself and tail shows it: the log is complete once it exits.
	: >"$log"
	timeout --kill-after=30 "$limit" "$@" </dev/null >>"$log" 2>&1 &
	stage_pid=$!
	tail -n +1 -f --pid="$stage_pid" "$log" &
	tail_pid=$!
	wait "$stage_pid"
	rc=$?
	wait "$tail_pid"
	stage_pid="" tail_pid=""

	case $parser in
	meson) counts=$(parse_meson "$log") ;;
	*) counts=$(parse_integration "$log") ;;
	esac
	if [[ -n $counts ]]; then
		read -r p f <<<"$counts"
	else
		p=0 f=0 note="no test summary in its output"
	fi
	if [[ $rc -eq 124 || $rc -eq 137 ]]; then
		note="timed out after ${limit}s"
	elif [[ $rc -ne 0 && -z $note ]]; then
		note="exit status $rc"
	fi
	# A stage that broke without counting a failure still failed.
	[[ -n $note && $f -eq 0 ]] && f=1
	local failures=""
	[[ $parser == meson && $f -gt 0 ]] && failures=$(meson_failures "$log")
	[[ -n $failures ]] && note="${note:+$note; }failed: ${failures%%$'\n'*}"
	record "$name" "$p" "$f" "$note" $((SECONDS - start))
	if [[ $failures == *$'\n'* ]]; then
		mapfile -t -O "${#stage_lines[@]}" stage_lines <<<"${failures#*$'\n'}"
	fi
}

main() {
	if ! install_packages; then
		record install 0 1 "packages missing"
		finish 1
	fi

	if ! setup_build build --buildtype=debugoptimized -Dtests=enabled; then
		record build 0 1 "build/ failed to build"
		finish 1
	fi
	if ! setup_build build-asan -Dtests=enabled -Db_sanitize=address,undefined \
		-Db_lundef=false; then
		record build 0 1 "build-asan/ failed to build"
		finish 1
	fi
	# CC is read when the directory is first configured; -Dfuzz=enabled adds the sanitizers.
	if ! CC=clang setup_build build-fuzz -Dfuzz=enabled -Dtests=disabled; then
		record build 0 1 "build-fuzz/ failed to build"
		finish 1
	fi

	export ASAN_OPTIONS=detect_leaks=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

	run_stage unit "$PLYFS_TIMEOUT_UNIT" meson meson test -C build --print-errorlogs
	run_stage unit-asan "$PLYFS_TIMEOUT_UNIT" meson \
		meson test -C build-asan --print-errorlogs

	local suite=tests/integration/run.sh
	if [[ -f $suite ]]; then
		run_stage integration "$PLYFS_TIMEOUT_INTEGRATION" integration \
			bash "$suite" build/plyfs
		run_stage integration-asan "$PLYFS_TIMEOUT_INTEGRATION" integration \
			bash "$suite" build-asan/plyfs --sanitizer
	else
		record integration 0 1 "$suite is missing"
	fi
	# The write path: targeted tests, each compared with kernel overlayfs and read back.
	run_stage write "$PLYFS_TIMEOUT_INTEGRATION" integration \
		bash tests/integration/write.sh build/plyfs
	run_stage write-asan "$PLYFS_TIMEOUT_INTEGRATION" integration \
		bash tests/integration/write.sh build-asan/plyfs --sanitizer
	# Random operation sequences in lockstep with kernel overlayfs (fixed seeds; more seeds:
	# see tests/integration/README.md).
	run_stage differential "$PLYFS_TIMEOUT_INTEGRATION" integration \
		bash tests/integration/diff.sh build/plyfs --seeds 120 --ops 200 --fs all --users all
	run_stage differential-asan "$PLYFS_TIMEOUT_INTEGRATION" integration \
		bash tests/integration/diff.sh build-asan/plyfs --sanitizer --seeds 24 --ops 200 \
		--fs all --users all
	# 8 workers at random on one mount for 2 minutes while the caches drop, then the view
	# compared with kernel overlayfs (the 10-minute run: see tests/integration/README.md).
	run_stage stress-asan "$PLYFS_TIMEOUT_INTEGRATION" integration \
		bash tests/integration/stress.sh build-asan/plyfs --sanitizer --seconds 120
	# Real containers: podman and buildah on plyfs as root and rootless; the Debian image is
	# debootstrapped from the machine's apt mirror once and cached in /var/cache/plyfs-ci.
	run_stage containers "$PLYFS_TIMEOUT_CONTAINERS" integration \
		env PLYFS_IT_TIMEOUT=$((PLYFS_TIMEOUT_CONTAINERS - 120)) \
		bash tests/integration/containers.sh build/plyfs
	# Each target 60 s on a copy of its seed corpus; two at a time on CI's two cores. The long
	# run is in README.md ("Fuzzing").
	run_stage fuzz "$PLYFS_TIMEOUT_FUZZ" integration \
		env PLYFS_FUZZ_PARALLEL=2 bash tests/fuzz/run.sh build-fuzz 60
	finish 0
}

main
