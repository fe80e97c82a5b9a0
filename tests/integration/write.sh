#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# write.sh - mount-level tests of the write path: BINARY (plyfs, or fuse-overlayfs) against kernel
# overlayfs, and the binary's upper read back under kernel overlayfs. The logic is in
# write_harness.py (tests in write_*.py); in-namespace.sh bounds the run (PLYFS_IT_TIMEOUT, 900 s by
# default) and gives it its own mount namespace. Prints "PASS name" / "FAIL name: reason" per test
# and ends with "N passed, N failed"; exits 0 iff nothing failed. Needs root.
exec "$(dirname "${BASH_SOURCE[0]}")/in-namespace.sh" write_harness.py 900 \
	"$0 BINARY [--sanitizer] [-k PATTERN]... [--list] [-v] [--relax LIST]" "$@"
