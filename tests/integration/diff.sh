#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# diff.sh - the differential random-operation test: BINARY against kernel overlayfs.
#
#   tests/integration/diff.sh BINARY [--seeds N] [--start S] [--ops K] [--seed S]
#                             [--kernel-self-check] [--sanitizer] [--replay FILE] [-v]
#
# Like run.sh: re-executes itself under `timeout` (PLYFS_IT_TIMEOUT seconds, 1800 by default) and
# `unshare` in a private mount namespace (plus a PID namespace where the kernel allows it), so every
# mount and daemon of the run dies with it. The logic is in differential.py (python3, stdlib only).
# Prints "PASS diff/seed-N" / "FAIL diff/seed-N: ..." and ends with "N passed, N failed"; exits 0
# iff nothing failed. Needs root.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${PLYFS_IT_NS:-}" != 1 ]; then
	if [ $# -lt 1 ]; then
		echo "usage: $0 BINARY [--seeds N] [--start S] [--ops K] [--seed S]" \
			"[--kernel-self-check] [--sanitizer] [--replay FILE] [-v]" >&2
		exit 2
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "$0: the differential test mounts filesystems and needs root" >&2
		exit 2
	fi
	export PLYFS_IT_NS=1
	export PLYFS_IT_TIMEOUT=${PLYFS_IT_TIMEOUT:-1800}
	ns=(unshare -m --propagation private)
	if unshare -m -p -f --kill-child --mount-proc --propagation private true 2>/dev/null; then
		ns=(unshare -m -p -f --kill-child --mount-proc --propagation private)
	fi
	exec timeout --kill-after=30 "$PLYFS_IT_TIMEOUT" "${ns[@]}" -- "$here/diff.sh" "$@"
fi

exec python3 -B "$here/differential.py" "$@"
