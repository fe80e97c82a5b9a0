#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# write.sh - mount-level tests of the write path: BINARY (plyfs, or fuse-overlayfs) against kernel
# overlayfs (modeled on run.sh).
#
#   tests/integration/write.sh BINARY [--sanitizer] [-k PATTERN]... [--list] [-v] [--relax LIST]
#
# Re-executes itself under `timeout` (the whole run is bounded: PLYFS_IT_TIMEOUT seconds, 900 by
# default) and `unshare` in a private mount namespace, and where the kernel allows it also a PID
# namespace, so that every mount and every daemon the tests make dies with the run. The logic is in
# write_harness.py (python3, stdlib only; the tests are in write_*.py). Prints "PASS name" /
# "FAIL name: reason" per test and ends with "N passed, N failed"; exits 0 iff nothing failed.
# Needs root.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${PLYFS_IT_NS:-}" != 1 ]; then
	if [ $# -lt 1 ]; then
		echo "usage: $0 BINARY [--sanitizer] [-k PATTERN]... [--list] [-v] [--relax LIST]" >&2
		exit 2
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "$0: the integration tests mount filesystems and need root" >&2
		exit 2
	fi
	export PLYFS_IT_NS=1
	export PLYFS_IT_TIMEOUT=${PLYFS_IT_TIMEOUT:-900}
	ns=(unshare -m --propagation private)
	if unshare -m -p -f --kill-child --mount-proc --propagation private true 2>/dev/null; then
		ns=(unshare -m -p -f --kill-child --mount-proc --propagation private)
	fi
	exec timeout --kill-after=30 "$PLYFS_IT_TIMEOUT" "${ns[@]}" -- "$here/write.sh" "$@"
fi

exec python3 -B "$here/write_harness.py" "$@"
