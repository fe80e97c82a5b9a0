#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# bad_options.sh - only the bad-invocation cases of the integration run: BINARY [run.sh options].
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
	echo "usage: $0 BINARY [--sanitizer] [-k PATTERN]..." >&2
	exit 2
fi
bin=$1
shift
exec "$here/run.sh" "$bin" -k 'bad_options/' "$@"
