#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# in-namespace.sh - what run.sh, write.sh and diff.sh share: run a python test driver as root,
# bounded, in a mount namespace of its own.
#
#   in-namespace.sh DRIVER.py DEFAULT_TIMEOUT USAGE BINARY [ARGS]...
#
# Re-executes itself under `timeout` (the whole run is bounded: PLYFS_IT_TIMEOUT seconds, else
# DEFAULT_TIMEOUT) and `unshare` in a private mount namespace, and where the kernel allows it also a
# PID namespace, so that every mount and every daemon the tests make dies with the run. Then runs
# DRIVER.py (python3, stdlib only) with BINARY and ARGS.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
driver=$1 default_timeout=$2 usage=$3
shift 3

if [ "${PLYFS_IT_NS:-}" != 1 ]; then
	if [ $# -lt 1 ]; then
		echo "usage: $usage" >&2
		exit 2
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "$driver: the mount-level tests mount filesystems and need root" >&2
		exit 2
	fi
	export PLYFS_IT_NS=1
	export PLYFS_IT_TIMEOUT=${PLYFS_IT_TIMEOUT:-$default_timeout}
	ns=(unshare -m --propagation private)
	if unshare -m -p -f --kill-child --mount-proc --propagation private true 2>/dev/null; then
		ns=(unshare -m -p -f --kill-child --mount-proc --propagation private)
	fi
	exec timeout --kill-after=30 "$PLYFS_IT_TIMEOUT" "${ns[@]}" -- \
		"$here/in-namespace.sh" "$driver" "$default_timeout" "$usage" "$@"
fi

exec python3 -B "$here/$driver" "$@"
