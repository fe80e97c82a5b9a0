#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make-layers.sh - builds the demo layers described in layers.txt under a directory.
#
#	contrib/demo/make-layers.sh DIR [DESCRIPTION]
#
# Creates DIR/<layer> for every layer named in DESCRIPTION (default: layers.txt next to this
# script) and an empty DIR/work. None of them may exist yet: the script never deletes anything.
# Whiteouts and opaque directories are written in the kernel overlayfs format (a 0/0 character
# device; trusted.overlay.opaque=y), which needs root; without it the script falls back to the
# forms a rootless overlay writes (.wh.NAME; user.overlay.opaque=y) and says so.
set -euo pipefail

prog=${0##*/}

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

note() {
	echo "$prog: $*"
}

usage() {
	echo "usage: $prog DIR [DESCRIPTION]" >&2
	exit 2
}

[[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage
dir=$1
desc=${2:-$(dirname "$(readlink -f "$0")")/layers.txt}
[[ -r $desc ]] || die "cannot read the layer description $desc"

# A PATH must stay inside its layer: relative, no empty, "." or ".." component.
check_path() {
	local path=$1 lineno=$2 comp
	[[ -n $path && $path != /* ]] || die "$desc:$lineno: path '$path' must be relative"
	local IFS=/
	for comp in $path; do
		[[ -n $comp && $comp != . && $comp != .. ]] ||
			die "$desc:$lineno: path '$path' has an empty, '.' or '..' component"
	done
}

# Every layer named in the description, in order of first appearance.
list_layers() {
	local layer _
	while read -r layer _; do
		[[ -z $layer || $layer == \#* ]] && continue
		[[ $layer =~ ^[A-Za-z0-9_-]+$ ]] || die "$desc: bad layer name '$layer'"
		echo "$layer"
	done <"$desc" | awk '!seen[$0]++'
}

make_whiteout() {
	local target=$1
	if mknod "$target" c 0 0 2>/dev/null; then
		note "  whiteout      ${target#"$dir"/} (character device 0/0)"
	else
		# Without CAP_MKNOD: the form rootless overlays write. plyfs reads both.
		: >"$(dirname "$target")/.wh.$(basename "$target")"
		note "  whiteout      ${target#"$dir"/} (mknod not permitted: wrote .wh.$(basename "$target"))"
	fi
}

make_opaque_xattr() {
	local target=$1
	mkdir -p -- "$target"
	if setfattr -n trusted.overlay.opaque -v y -- "$target" 2>/dev/null; then
		note "  opaque        ${target#"$dir"/}/ (trusted.overlay.opaque=y)"
	elif setfattr -n user.overlay.opaque -v y -- "$target"; then
		note "  opaque        ${target#"$dir"/}/ (user.overlay.opaque=y: trusted.* needs root)"
	else
		die "cannot set an opaque xattr on $target (does this filesystem support xattrs?)"
	fi
}

# Creates one entry; runs with the layer directory already made.
make_entry() {
	local layer=$1 kind=$2 path=$3 arg=$4 lineno=$5
	local target=$dir/$layer/$path
	check_path "$path" "$lineno"
	mkdir -p -- "$(dirname "$target")"
	case $kind in
	dir)
		mkdir -p -- "$target"
		;;
	file)
		printf '%s\n' "$arg" >"$target"
		;;
	symlink)
		[[ -n $arg ]] || die "$desc:$lineno: symlink $path needs a target"
		ln -s -- "$arg" "$target"
		;;
	whiteout)
		make_whiteout "$target"
		;;
	wh-file)
		: >"$(dirname "$target")/.wh.$(basename "$target")"
		note "  whiteout      $layer/$path (file .wh.$(basename "$target"))"
		;;
	opaque-xattr)
		make_opaque_xattr "$target"
		;;
	opaque-file)
		mkdir -p -- "$target"
		: >"$target/.wh..wh..opq"
		note "  opaque        $layer/$path/ (file .wh..wh..opq)"
		;;
	*)
		die "$desc:$lineno: unknown kind '$kind'"
		;;
	esac
}

main() {
	local layers layer kind path arg lineno=0
	layers=$(list_layers)
	[[ -n $layers ]] || die "$desc describes no layer"

	mkdir -p -- "$dir"
	dir=$(readlink -f -- "$dir")
	for layer in $layers work; do
		[[ ! -e $dir/$layer && ! -L $dir/$layer ]] ||
			die "$dir/$layer already exists; remove it first (this script never deletes)"
	done
	for layer in $layers work; do
		mkdir -- "$dir/$layer"
	done

	note "building the demo layers in $dir from $desc"
	while read -r layer kind path arg; do
		lineno=$((lineno + 1))
		[[ -z $layer || $layer == \#* ]] && continue
		[[ -n ${kind:-} && -n ${path:-} ]] || die "$desc:$lineno: expected LAYER KIND PATH"
		make_entry "$layer" "$kind" "$path" "${arg:-}" "$lineno"
	done <"$desc"
	note "done: layers $(echo "$layers" | tr '\n' ' ')and an empty work/"
}

main
