#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# containers.sh - real containers on plyfs: podman and buildah (root and rootless) with BINARY as
# the overlay mount program, on a Debian image made with debootstrap (cached in
# /var/cache/plyfs-ci). The logic is in containers_harness.py (tests in containers_tests.py and
# containers_rootless.py); in-namespace.sh bounds the run (PLYFS_IT_TIMEOUT, 1800 s by default)
# and gives it its own mount namespace. Prints "PASS name" / "FAIL name: reason" per test and
# ends with "N passed, N failed"; exits 0 iff nothing failed. Needs root, podman, buildah, runc,
# debootstrap, uidmap.
exec "$(dirname "${BASH_SOURCE[0]}")/in-namespace.sh" containers_harness.py 1800 \
	"$0 BINARY [-k PATTERN]... [--list] [--tmpfs]" "$@"
