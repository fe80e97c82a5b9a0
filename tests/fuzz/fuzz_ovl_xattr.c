// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuzz_ovl_xattr.c - libFuzzer target: every decoder of overlay metadata (ovl_xattr.h).
 *
 * The first input byte picks the decoder (modulo their number), the rest is the value, copied into
 * a buffer of exactly its size so that AddressSanitizer sees any read past it. Each decoder's
 * contract is checked on its result: the errno is one it may answer, and what it accepts holds
 * what the header promises (a redirect never has a "." or ".." component, never an empty one, a
 * relative one no '/'; decoded pointers stay inside the value; numbers survive a round trip). A
 * failed check aborts: a crash for the fuzzer.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ovl_xattr.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_ovl_xattr: %s\n", what);
		abort();
	}
}

static bool inside(const void *p, size_t n, const char *v, size_t len)
{
	return (const char *)p >= v && (const char *)p + n <= v + len;
}

static void fuzz_redirect(const char *v, size_t len)
{
	struct ovl_redirect rd;
	int r = ovl_redirect_decode(v, (ssize_t)len, &rd);
	check(r == 0 || r == -EINVAL || r == -EACCES || r == -ENAMETOOLONG, "redirect: errno");
	if (r < 0)
		return;
	check(inside(rd.path, rd.len, v, len), "redirect: path outside the value");
	check(rd.len > 0 && rd.len < PATH_MAX, "redirect: length");
	check(!memchr(rd.path, '\0', rd.len), "redirect: NUL inside");
	check(rd.absolute || !memchr(rd.path, '/', rd.len), "redirect: '/' in a relative one");
	check(rd.path[0] != '/' && rd.path[rd.len - 1] != '/', "redirect: empty end component");
	for (size_t i = 0; i < rd.len;) {
		const char *end = memchr(rd.path + i, '/', rd.len - i);
		size_t n = end ? (size_t)(end - (rd.path + i)) : rd.len - i;
		check(n > 0 && n <= NAME_MAX, "redirect: empty or long component");
		check(!(n == 1 && rd.path[i] == '.') &&
			      !(n == 2 && rd.path[i] == '.' && rd.path[i + 1] == '.'),
		      "redirect: a dot component");
		i += n + 1;
	}
}

static void fuzz_origin(const char *v, size_t len)
{
	struct ovl_fb_info fb;
	int r = ovl_origin_decode(v, (ssize_t)len, &fb);
	check(r == 0 || r == -EINVAL || r == -ENODATA, "origin: errno");
	if (r < 0)
		return;
	check(inside(fb.uuid, 16, v, len), "origin: uuid outside the value");
	check(inside(fb.fid, fb.fid_len, v, len), "origin: handle outside the value");
	check(fb.fid_len + OVL_FB_HEADER_LEN == (unsigned char)v[2], "origin: handle length");
	check(fb.version == OVL_FB_VERSION && !(fb.flags & ~OVL_FB_FLAG_ALL), "origin: header");
}

static void fuzz_plyfs_origin(const char *v, size_t len)
{
	uint64_t dev, ino, dev2, ino2;
	int r = ovl_plyfs_origin_decode(v, (ssize_t)len, &dev, &ino);
	check(r == 0 || r == -EINVAL, "plyfs origin: errno");
	if (r < 0)
		return;
	char again[64];
	int n = snprintf(again, sizeof(again), "%" PRIx64 ":%" PRIx64, dev, ino);
	check(ovl_plyfs_origin_decode(again, n, &dev2, &ino2) == 0 && dev2 == dev && ino2 == ino,
	      "plyfs origin: round trip");
}

static void fuzz_flag(const char *v, size_t len)
{
	int r = ovl_flag_decode(v, (ssize_t)len);
	check(r == OVL_FLAG_NO || r == OVL_FLAG_YES || r == OVL_FLAG_X || r == -EINVAL,
	      "flag: result");
	check(r != OVL_FLAG_YES || (len == 1 && v[0] == 'y'), "flag: yes for another value");
}

static void fuzz_nlink(const char *v, size_t len)
{
	char base, base2;
	int diff, diff2;
	int r = ovl_nlink_decode(v, (ssize_t)len, &base, &diff);
	check(r == 0 || r == -EINVAL || r == -ERANGE, "nlink: errno");
	if (r < 0)
		return;
	check(base == 'L' || base == 'U', "nlink: base");
	char again[16];
	int n = snprintf(again, sizeof(again), "%c%+d", base, diff);
	check(ovl_nlink_decode(again, n, &base2, &diff2) == 0 && base2 == base && diff2 == diff,
	      "nlink: round trip");
	unsigned long out;
	if (ovl_nlink_apply(base, diff, 2, 3, &out) == 0)
		check(out > 0 && out <= UINT_MAX, "nlink: applied count");
}

static void fuzz_metacopy(const char *v, size_t len)
{
	int r = ovl_metacopy_decode(v, (ssize_t)len);
	check(r == 1 || (r == -EIO && len > 0 && len < 4), "metacopy: result");
}

static void fuzz_wh(const char *v, size_t len)
{
	const char *target = NULL;
	enum ovl_wh_kind k = ovl_wh_decode(v, len, &target);
	check(k == OVL_WH_NONE || k == OVL_WH_WHITEOUT || k == OVL_WH_OPQ || k == OVL_WH_INVALID,
	      "wh: kind");
	check((k == OVL_WH_NONE) == !(len >= 4 && memcmp(v, ".wh.", 4) == 0), "wh: prefix");
	if (k != OVL_WH_WHITEOUT)
		return;
	size_t n = len - (size_t)(target - v);
	check(inside(target, n, v, len) && n > 0, "wh: target");
	check(!memchr(target, '/', n) && !memchr(target, '\0', n), "wh: target is no name");
	check(!(n == 1 && target[0] == '.') && !(n == 2 && !memcmp(target, "..", 2)),
	      "wh: a dot target");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void (*const decoders[])(const char *, size_t) = {
		fuzz_redirect, fuzz_origin,   fuzz_plyfs_origin, fuzz_flag,
		fuzz_nlink,    fuzz_metacopy, fuzz_wh,
	};
	if (size == 0)
		return 0;
	size_t len = size - 1;
	char *v = malloc(len ? len : 1); /* exactly the value: a read past it is caught */
	if (!v)
		return 0;
	memcpy(v, data + 1, len);
	decoders[data[0] % (sizeof(decoders) / sizeof(decoders[0]))](v, len);
	free(v);
	return 0;
}
