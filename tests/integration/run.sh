#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# run.sh - mount-level tests: compares BINARY (plyfs, or fuse-overlayfs) with kernel overlayfs
# (read path, bad options, process lifecycle). The logic is in harness.py; in-namespace.sh bounds
# the run (PLYFS_IT_TIMEOUT, 1800 s by default) and gives it its own mount namespace. Prints
# "PASS name" / "FAIL name: reason" per test and ends with "N passed, N failed"; exits 0 iff
# nothing failed. Needs root.
exec "$(dirname "${BASH_SOURCE[0]}")/in-namespace.sh" harness.py 1800 \
	"$0 BINARY [--sanitizer] [-k PATTERN]... [--keep] [--list] [-v]" "$@"
