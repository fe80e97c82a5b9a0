#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# stress.sh - the stress test: WORKERS processes at random on one BINARY mount for SECONDS while the
# caches are dropped every second, then the merged view (live, after a cache drop, after a remount)
# compared with kernel overlayfs on the same layers. The logic is in stress.py; in-namespace.sh
# bounds the run (PLYFS_IT_TIMEOUT, by default SECONDS + 900) and gives it its own mount (and PID)
# namespace. Prints a PASS/FAIL line per check and ends with "N passed, N failed"; exits 0 iff
# nothing failed. Needs root.
seconds=120
args=("$@")
for i in "${!args[@]}"; do
	if [ "${args[$i]}" = --seconds ] && [ -n "${args[$((i + 1))]:-}" ]; then
		seconds=${args[$((i + 1))]}
	fi
done
case $seconds in
'' | *[!0-9]*) seconds=120 ;; # stress.py rejects it with a message
esac
exec "$(dirname "${BASH_SOURCE[0]}")/in-namespace.sh" stress.py $((seconds + 900)) \
	"$0 BINARY [--seconds N] [--workers N] [--seed S] [--sanitizer] [--kernel-opts OPTS]" "$@"
