#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# run.sh - runs every fuzz target for a while, each on a copy of its committed seed corpus.
#
#	tests/fuzz/run.sh BUILD_DIR [SECONDS] [LIBFUZZER_FLAG...]
#
# BUILD_DIR is a build configured with CC=clang and -Dfuzz=enabled (README.md, "Fuzzing").
# Every tests/fuzz/fuzz_NAME.c is a target: BUILD_DIR/tests/fuzz/fuzz_NAME runs for SECONDS
# (default 60) on BUILD_DIR/fuzz-run/NAME/corpus, a fresh copy of tests/fuzz/corpus/NAME (the
# committed corpus is never written), with tests/fuzz/NAME.dict as dictionary if there is one.
# The flags are handed to every target (-fork=2, -max_len=..., see libFuzzer's -help=1).
# PLYFS_FUZZ_PARALLEL=N runs N targets at once (default 1).
#
# A target passes when libFuzzer exits 0 and its log holds no sanitizer report. It fails on a
# crash, a leak, a sanitizer report, an input slower than 30 s (-timeout), a target that is not
# built or has no seeds. The input that failed is kept in BUILD_DIR/fuzz-run/NAME/artifacts/ and
# the log in BUILD_DIR/fuzz-run/NAME/log; what a long run added to the corpus stays in
# BUILD_DIR/fuzz-run/NAME/corpus until the next run. The last line is "N passed, N failed" (one
# test per target) and the exit status is 0 iff none failed.
set -uo pipefail
export LC_ALL=C

prog=run.sh
usage() {
	echo "usage: $prog BUILD_DIR [SECONDS] [LIBFUZZER_FLAG...]" >&2
	exit 2
}
[[ $# -ge 1 ]] || usage
build=$(readlink -f "$1") || usage
shift
seconds=60
if [[ $# -ge 1 && $1 != -* ]]; then
	seconds=$1
	shift
fi
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || usage
parallel=${PLYFS_FUZZ_PARALLEL:-1}
[[ $parallel =~ ^[1-9][0-9]*$ ]] || { echo "$prog: PLYFS_FUZZ_PARALLEL must be >= 1" >&2; exit 2; }
flags=("$@")
src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd) || exit 2
[[ -d $build/tests/fuzz ]] || {
	echo "$prog: $build/tests/fuzz does not exist: configure $build with CC=clang" \
		"-Dfuzz=enabled and build it" >&2
	exit 2
}

# Sanitizer reports go to the log; leaks are checked after every input (libFuzzer's default).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

targets=()
for f in "$src"/fuzz_*.c; do
	[[ -e $f ]] || continue
	t=${f##*/fuzz_}
	targets+=("${t%.c}")
done
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "$prog: no fuzz_*.c in $src" >&2
	exit 2
fi

# A sanitizer or libFuzzer report in a log: a failure even when the exit status says otherwise.
report_re='ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|SUMMARY: [A-Za-z]*Sanitizer|==[0-9]+== ?ERROR'

# The counters of a finished run, from its log: runs, exec/s, cov, ft, corpus before and after.
stats_of() { # stats_of LOG SEEDS
	awk -v seeds="$2" '
	/^#[0-9]+[ \t]+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)/ {
		for (i = 1; i <= NF; i++) {
			if ($i == "cov:") cov = $(i + 1)
			if ($i == "ft:") ft = $(i + 1)
			if ($i == "corp:") corp = $(i + 1)
		}
	}
	/^stat::number_of_executed_units:/ { runs = $2 }
	/^stat::average_exec_per_sec:/ { eps = $2 }
	END {
		sub(/\/.*/, "", corp)
		printf "%s runs, %s exec/s, cov %s, ft %s, corpus %s seeds -> %s inputs",
			runs + 0, eps + 0, cov == "" ? "?" : cov, ft == "" ? "?" : ft, seeds,
			corp == "" ? "?" : corp
	}' "$1"
}

# run_target NAME: writes "PASS|FAIL NAME: ..." to BUILD_DIR/fuzz-run/NAME/result.
run_target() {
	local name=$1 bin=$build/tests/fuzz/fuzz_$1 work=$build/fuzz-run/$1 seeds rc dict=() pid
	local limit=$((seconds * 2 + 120)) # bounded even if -max_total_time is not honoured
	rm -rf -- "$work"
	mkdir -p "$work/corpus" "$work/artifacts" || return 1
	if [[ ! -x $bin ]]; then
		echo "FAIL $name: $bin is not built (is '$name' in tests/fuzz/meson.build's list?)" \
			>"$work/result"
		return 0
	fi
	seeds=$(find "$src/corpus/$name" -maxdepth 1 -type f 2>/dev/null | wc -l)
	if [[ $seeds -eq 0 ]]; then
		echo "FAIL $name: no seed corpus in $src/corpus/$name" >"$work/result"
		return 0
	fi
	cp -- "$src/corpus/$name"/* "$work/corpus/" || return 1
	[[ -f $src/$name.dict ]] && dict=("-dict=$src/$name.dict")
	# In $work: -jobs writes its fuzz-N.log files into the current directory.
	(cd "$work" && exec timeout --kill-after=10 "$limit" "$bin" -max_total_time="$seconds" \
		-timeout=30 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
		"${dict[@]}" "${flags[@]}" "$work/corpus" </dev/null >"$work/log" 2>&1) &
	pid=$!
	echo "$pid" >"$work/pid"
	wait "$pid"
	rc=$?
	rm -f -- "$work/pid"
	cat "$work"/fuzz-*.log >>"$work/log" 2>/dev/null
	local stats verdict=PASS why=""
	stats=$(stats_of "$work/log" "$seeds")
	if [[ $rc -eq 124 || $rc -eq 137 ]]; then
		verdict=FAIL why="killed after ${limit}s; "
	elif [[ $rc -ne 0 ]]; then
		verdict=FAIL why="exit status $rc; "
	fi
	if grep -Eq "$report_re" "$work/log"; then
		verdict=FAIL why+="sanitizer or libFuzzer report; "
	fi
	if [[ -n $(ls -A "$work/artifacts") ]]; then
		verdict=FAIL why+="inputs kept in $work/artifacts/; "
	fi
	echo "$verdict $name: $why$stats" >"$work/result"
}

running=()
# shellcheck disable=SC2317 # called by the trap
on_signal() {
	local t p
	for t in "${targets[@]}"; do
		p=$(cat "$build/fuzz-run/$t/pid" 2>/dev/null) && kill -TERM "$p" 2>/dev/null
	done
	echo "$prog: interrupted" >&2
	exit 130
}
trap on_signal INT TERM

echo "$prog: ${#targets[@]} targets (${targets[*]}), ${seconds}s each, $parallel at a time"
for t in "${targets[@]}"; do
	while [[ ${#running[@]} -ge $parallel ]]; do
		wait -n
		still=()
		for p in "${running[@]}"; do
			kill -0 "$p" 2>/dev/null && still+=("$p")
		done
		running=("${still[@]}")
	done
	echo "$prog: $t: started (log: $build/fuzz-run/$t/log)"
	run_target "$t" &
	running+=($!)
done
wait

passed=0 failed=0
for t in "${targets[@]}"; do
	result=$(cat "$build/fuzz-run/$t/result" 2>/dev/null) || result="FAIL $t: no result"
	echo "$result"
	if [[ $result == PASS* ]]; then
		passed=$((passed + 1))
		continue
	fi
	failed=$((failed + 1))
	if [[ -f $build/fuzz-run/$t/log ]]; then
		echo "--- last lines of $build/fuzz-run/$t/log:"
		grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$build/fuzz-run/$t/log" | tail -n 40
		echo "---"
	fi
	for a in "$build/fuzz-run/$t/artifacts"/*; do
		[[ -e $a ]] || continue
		echo "  replay: $build/tests/fuzz/fuzz_$t $a"
		echo "  once fixed, keep it: cp $a $src/corpus/$t/<what-it-found>"
	done
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
