#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# setup-demo.sh - installs what plyfs needs, builds it and mounts a small demo overlay.
#
#	bash contrib/setup-demo.sh [DIR]	(as root on Debian bookworm; DIR: /tmp/plyfs-demo)
#
# Steps: apt-get install the build dependencies, meson/ninja build into build/, build the demo
# layers DIR/{upper,lower1,lower2,work} with contrib/demo/make-layers.sh, mount them at DIR/merged
# with build/plyfs, print the merged tree and explain every lower entry it hides.
#
# Run it again to start over: it unmounts its own previous demo mount (exactly DIR/merged, looked
# up in /proc/self/mountinfo, nothing else) and rebuilds the layers. PLYFS_SKIP_INSTALL=1 skips the
# apt-get step (for developers who have the packages).
set -eEuo pipefail
export LC_ALL=C

prog=setup-demo.sh
repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
packages=(libfuse3-dev fuse3 libglib2.0-dev check meson ninja-build pkg-config gcc attr)

die() {
	echo "$prog: error: $*" >&2
	exit 1
}
trap 'echo "$prog: error: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

step() {
	printf '\n==> %s\n' "$*"
}

# /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes.
mountinfo_escape() {
	local s=$1
	s=${s//\\/\\134}
	s=${s// /\\040}
	s=${s//$'\t'/\\011}
	s=${s//$'\n'/\\012}
	printf '%s' "$s"
}

# Is something mounted exactly at $1?
is_mounted() {
	MP=$(mountinfo_escape "$1") awk '$5 == ENVIRON["MP"] { found = 1 } END { exit !found }' \
		/proc/self/mountinfo
}

# Prints the mount points strictly below directory $1.
mounts_below() {
	PFX=$(mountinfo_escape "$1/") awk 'index($5, ENVIRON["PFX"]) == 1 { print $5 }' \
		/proc/self/mountinfo
}

install_packages() {
	if [[ ${PLYFS_SKIP_INSTALL:-0} == 1 ]]; then
		step "skipping the package installation (PLYFS_SKIP_INSTALL=1)"
		return
	fi
	step "installing the packages: ${packages[*]}"
	[[ $(id -u) == 0 ]] ||
		die "installing packages needs root: run 'sudo bash contrib/setup-demo.sh', or install" \
			"${packages[*]} yourself and run with PLYFS_SKIP_INSTALL=1"
	command -v apt-get >/dev/null ||
		die "apt-get not found (this script expects Debian bookworm): install ${packages[*]}" \
			"yourself and run with PLYFS_SKIP_INSTALL=1"
	export DEBIAN_FRONTEND=noninteractive
	timeout 900 apt-get update </dev/null || die "apt-get update failed (exit $?)"
	timeout 1800 apt-get install -y "${packages[@]}" </dev/null ||
		die "apt-get install failed (exit $?)"
}

build() {
	step "building plyfs (meson + ninja, in $repo/build)"
	cd "$repo"
	if [[ ! -f build/meson-private/coredata.dat ]]; then
		timeout 600 meson setup build || die "meson setup build failed (exit $?)"
	fi
	timeout 1800 ninja -C build || die "the build failed: ninja -C build (exit $?)"
	[[ -x build/plyfs ]] || die "the build did not produce build/plyfs"
}

# Removes the previous demo: only its own mount and only the directories make-layers.sh creates.
clean_previous() {
	local i
	for i in 1 2 3 4 5; do
		is_mounted "$merged" || break
		step "unmounting the previous demo at $merged (round $i)"
		timeout 30 umount "$merged" 2>/dev/null || timeout 30 fusermount3 -u "$merged" || true
	done
	! is_mounted "$merged" ||
		die "cannot unmount $merged (busy? a shell inside it?); unmount it by hand and rerun"
	local others
	others=$(mounts_below "$dir")
	[[ -z $others ]] || die "other mounts below $dir, refusing to delete anything there: $others"
	if [[ -e $dir ]]; then
		step "removing the previous demo layers in $dir"
		rm -rf --one-file-system -- "$dir/upper" "$dir/lower1" "$dir/lower2" "$dir/work" \
			"$dir/merged"
	fi
}

mount_demo() {
	step "mounting: build/plyfs -o $opts $merged"
	mkdir -p -- "$merged"
	timeout 60 "$repo/build/plyfs" -o "$opts" "$merged" ||
		die "plyfs failed to mount (exit $?); to see why, run it in the foreground:" \
			"$repo/build/plyfs -f -d -o $opts $merged"
	is_mounted "$merged" || die "plyfs exited 0 but nothing is mounted at $merged"
}

# Prints why lower entry $2 (a path relative to the layer roots) of layer number $1 is not visible:
# the whiteout or opaque directory above it that hides it.
explain_hidden() {
	local i=$1 path=$2 j q up pdir base
	for ((j = i - 1; j >= 0; j--)); do
		up=$dir/${layers[j]}
		q=$path
		while :; do
			base=${q##*/} pdir=""
			[[ $q == */* ]] && pdir=${q%/*}/
			if [[ -c $up/$q && $(stat -c %t:%T -- "$up/$q") == 0:0 ]]; then
				echo "whiteout ${layers[j]}/$q (character device 0/0)"
				return
			elif [[ -e $up/$pdir.wh.$base ]]; then
				echo "whiteout ${layers[j]}/$pdir.wh.$base"
				return
			elif [[ $q != "$path" ]] && [[ -L $up/$q || -e $up/$q && ! -d $up/$q ]]; then
				echo "${layers[j]}/$q, a non-directory over the directory"
				return
			elif [[ $q != "$path" && -d $up/$q ]]; then
				if [[ -e $up/$q/.wh..wh..opq ]]; then
					echo "${layers[j]}/$q/ being opaque (it holds .wh..wh..opq)"
					return
				elif [[ $(getfattr --only-values -n trusted.overlay.opaque \
					-- "$up/$q" 2>/dev/null) == y ]]; then
					echo "${layers[j]}/$q/ being opaque (trusted.overlay.opaque=y)"
					return
				elif [[ $(getfattr --only-values -n user.overlay.opaque \
					-- "$up/$q" 2>/dev/null) == y ]]; then
					echo "${layers[j]}/$q/ being opaque (user.overlay.opaque=y)"
					return
				fi
			fi
			[[ -n $pdir ]] || break
			q=${q%/*}
		done
	done
	echo "NOTHING: plyfs should show it"
}

# Lists every lower entry that the merged tree does not show, with the reason.
show_hidden() {
	local i path
	for ((i = 1; i < ${#layers[@]}; i++)); do
		while IFS= read -r path; do
			path=${path#./}
			# The markers themselves are bookkeeping, never shown.
			[[ ${path##*/} == .wh.* ]] && continue
			[[ -c $dir/${layers[i]}/$path ]] && continue
			[[ -e $merged/$path || -L $merged/$path ]] && continue
			printf '  %-28s hidden by %s\n' "${layers[i]}/$path" \
				"$(explain_hidden "$i" "$path")"
		done < <(cd "$dir/${layers[i]}" && find . -mindepth 1 | sort)
	done
}

# Lists every merged non-directory that exists in more than one layer, and which one is shown.
show_shadowed() {
	local path i first below
	while IFS= read -r path; do
		path=${path#./}
		first="" below=""
		for ((i = 0; i < ${#layers[@]}; i++)); do
			[[ -e $dir/${layers[i]}/$path || -L $dir/${layers[i]}/$path ]] || continue
			if [[ -z $first ]]; then
				first=${layers[i]}
			else
				below+=" ${layers[i]}/$path"
			fi
		done
		[[ -n $below ]] || continue
		printf '  %-28s shown from %s, shadows%s\n' "$path" "$first/$path" "$below"
	done < <(cd "$merged" && find . -mindepth 1 ! -type d | sort)
}

show_demo() {
	step "the merged tree: find $merged | sort"
	find "$merged" | sort

	local f
	for f in etc/motd motd etc/hostname cache/fresh.tmp docs/manual.txt; do
		step "cat $merged/$f"
		cat -- "$merged/$f"
	done

	step "lower entries the merged tree hides, and why"
	show_hidden
	step "files present in several layers: the topmost one is shown"
	show_shadowed

	step "checking the merged tree against contrib/demo/expected.txt"
	if ! diff -u <(grep -v '^#' "$repo/contrib/demo/expected.txt") \
		<(cd "$merged" && find . -mindepth 1 | sed 's|^\./||' | sort); then
		die "the merged tree differs from contrib/demo/expected.txt (diff above); the demo stays" \
			"mounted for a look: umount $merged"
	fi
	echo "ok: the merged tree is as expected"
}

main() {
	[[ $# -le 1 ]] || die "usage: bash contrib/setup-demo.sh [DIR]   (default /tmp/plyfs-demo)"
	dir=$(readlink -m -- "${1:-/tmp/plyfs-demo}")
	[[ $dir != / ]] || die "refusing to use / as the demo directory"
	# lowerdir= separates layers with ':' and -o separates options with ','.
	[[ $dir != *[:,\\]* && $dir != *$'\n'* ]] ||
		die "the demo directory must not contain ':', ',', '\\' or a newline: $dir"
	merged=$dir/merged
	layers=(upper lower1 lower2) # top first, as the mount stacks them
	opts="lowerdir=$dir/lower1:$dir/lower2,upperdir=$dir/upper,workdir=$dir/work"

	install_packages
	build
	clean_previous
	step "building the demo layers: contrib/demo/make-layers.sh $dir"
	"$repo/contrib/demo/make-layers.sh" "$dir" || die "make-layers.sh failed (exit $?)"
	mount_demo
	show_demo

	cat <<EOF

==> done
The demo overlay is mounted at $merged
  upper:  $dir/upper   (writable layer: changes made in the merged tree land here)
  lowers: $dir/lower1 (top) and $dir/lower2 (bottom), read-only
Look around:   ls -la $merged; getfattr -d -m - $dir/lower1/cache; stat $dir/lower1/etc/old.conf
Unmount with:  umount $merged      (or: fusermount3 -u $merged)
Run this script again to start over.
EOF
}

main "$@"
