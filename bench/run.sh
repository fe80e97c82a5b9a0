#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# bench/run.sh - installs what the benchmark needs, builds plyfs (release) and runs bench.py in a
# private mount namespace, so every mount it makes dies with it.
#
#	bash bench/run.sh [--quick] [--previous OLD_PLYFS_BINARY] [--reps N] [--only TARGET,...]
#	                  [--rows ROW,...] [--out DIR]
#
# Results: bench/results/latest.md (table, goals met or not), latest.json, latest.svg (chart).
# The full run takes at most 10 minutes on 2 quiet cores, --quick at most 3. Run it as root on
# Debian. libfuse3-dev brings the passthrough_ll example (built in the scratch directory, not
# kept), gnuplot the chart. PLYFS_SKIP_INSTALL=1 skips apt-get.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$repo"
if [[ ${PLYFS_SKIP_INSTALL:-0} != 1 ]]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update </dev/null
	apt-get install -y libfuse3-dev fuse3 libglib2.0-dev meson ninja-build pkg-config gcc \
		fuse-overlayfs gnuplot-nox python3 tar strace valgrind </dev/null
fi
if [[ -f build-release/meson-private/coredata.dat ]]; then
	meson configure build-release --buildtype=release -Dtests=disabled
else
	meson setup build-release --buildtype=release -Dtests=disabled
fi
ninja -C build-release
start=$SECONDS
rc=0
timeout --kill-after=60 1800 unshare -m --propagation private \
	python3 bench/bench.py --plyfs build-release/plyfs "$@" || rc=$?
echo "bench/run.sh: bench.py took $((SECONDS - start)) s (exit $rc)" >&2
exit $rc
