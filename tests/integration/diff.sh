#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# diff.sh - the differential random-operation test: BINARY against kernel overlayfs. The logic is
# in differential.py (ops and layers in diffops.py); in-namespace.sh bounds the run
# (PLYFS_IT_TIMEOUT, 1800 s by default) and gives it its own mount namespace. Prints
# "PASS diff/seed-N" / "FAIL diff/seed-N: ..." and ends with "N passed, N failed"; exits 0 iff
# nothing failed. Needs root.
exec "$(dirname "${BASH_SOURCE[0]}")/in-namespace.sh" differential.py 1800 \
	"$0 BINARY [--seeds N] [--start S] [--ops K] [--seed S] [--kernel-self-check] [--sanitizer] [--replay FILE] [--no-lower-hardlinks] [-v]" "$@"
