// SPDX-License-Identifier: GPL-2.0-or-later
/* ovl_xattr.c - pure decoders of the overlay metadata a layer holds (see ovl_xattr.h). Nothing
 * here makes a syscall or allocates: the fuzz target links this file alone. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "ovl_names.h"
#include "ovl_xattr.h"

/* The value as the kernel sees it: cut at the first NUL (it reads into a zeroed buffer and
 * treats it as a C string). A negative length is no value at all. */
static size_t c_len(const char *value, ssize_t len)
{
	if (!value || len <= 0)
		return 0;
	const char *nul = memchr(value, '\0', (size_t)len);
	return nul ? (size_t)(nul - value) : (size_t)len;
}

static bool is_dot_name(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

/* The kernel's lookup of one component: "." and ".." and an empty name are EACCES
 * (lookup_one_common), a long one is ENAMETOOLONG (then "not found"). */
static int check_component(const char *s, size_t n)
{
	if (n == 0 || is_dot_name(s, n))
		return -EACCES;
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static int redirect_absolute(const char *v, size_t n, struct ovl_redirect *out)
{
	/* First the kernel's own check of the value: every '/' is followed by a non-empty
	 * component (so "/", "////", "/a/" and "/a//b" are invalid). */
	for (size_t i = 0; i < n; i++)
		if (v[i] == '/' && (i + 1 == n || v[i + 1] == '/'))
			return -EINVAL;
	/* Then what the component-by-component lookup meets first. */
	for (size_t i = 1; i < n;) {
		const char *end = memchr(v + i, '/', n - i);
		size_t clen = end ? (size_t)(end - (v + i)) : n - i;
		int r = check_component(v + i, clen);
		if (r < 0)
			return r;
		i += clen + 1;
	}
	if (n >= PATH_MAX)
		return -ENAMETOOLONG;
	*out = (struct ovl_redirect){.absolute = true, .path = v + 1, .len = n - 1};
	return 0;
}

int ovl_redirect_decode(const char *value, ssize_t len, struct ovl_redirect *out)
{
	if (!value || len <= 0)
		return -EINVAL; /* "invalid redirect ((null))" */
	size_t n = c_len(value, len);
	if (n > 0 && value[0] == '/')
		return redirect_absolute(value, n, out);
	if (memchr(value, '/', n))
		return -EINVAL;
	int r = check_component(value, n);
	if (r < 0)
		return r;
	*out = (struct ovl_redirect){.absolute = false, .path = value, .len = n};
	return 0;
}

int ovl_origin_decode(const void *value, ssize_t len, struct ovl_fb_info *out)
{
	const unsigned char *fb = value;
	if (!value || len <= 0)
		return -ENODATA; /* "copied up but origin unknown" */
	if ((size_t)len < OVL_FB_HEADER_LEN || (size_t)len < fb[2])
		return -EINVAL;
	if (fb[1] != OVL_FB_MAGIC)
		return -EINVAL;
	/* A newer version or unknown flags: "origin unknown", without a warning. */
	if (fb[0] > OVL_FB_VERSION || (fb[3] & ~OVL_FB_FLAG_ALL))
		return -ENODATA;
	bool big = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__;
	if (!(fb[3] & OVL_FB_FLAG_ANY_ENDIAN) && !!(fb[3] & OVL_FB_FLAG_BIG_ENDIAN) != big)
		return -ENODATA;
	/* The kernel then decodes fb[2] - 21 bytes of handle: a len field below the header would
	 * be a negative handle length. */
	if (fb[2] < OVL_FB_HEADER_LEN)
		return -EINVAL;
	*out = (struct ovl_fb_info){
		.version = fb[0],
		.flags = fb[3],
		.type = fb[4],
		.uuid = fb + 5,
		.fid = fb + OVL_FB_HEADER_LEN,
		.fid_len = (size_t)fb[2] - OVL_FB_HEADER_LEN,
	};
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 1..16 hex digits from *p up to `end` or `stop`; advances *p. */
static int parse_hex64(const char **p, const char *end, char stop, uint64_t *out)
{
	uint64_t x = 0;
	int digits = 0;
	for (; *p < end && **p != stop; (*p)++, digits++) {
		int d = hex_digit(**p);
		if (d < 0 || digits == 16)
			return -EINVAL;
		x = (x << 4) | (uint64_t)d;
	}
	if (digits == 0)
		return -EINVAL;
	*out = x;
	return 0;
}

int ovl_plyfs_origin_decode(const char *value, ssize_t len, uint64_t *dev, uint64_t *ino)
{
	if (!value || len <= 0)
		return -EINVAL;
	const char *p = value, *end = value + len;
	if (parse_hex64(&p, end, ':', dev) < 0 || p == end)
		return -EINVAL;
	p++; /* the ':' */
	return parse_hex64(&p, end, ':', ino) < 0 || p != end ? -EINVAL : 0;
}

int ovl_flag_decode(const char *value, ssize_t len)
{
	if (!value || len <= 0)
		return OVL_FLAG_NO;
	/* The kernel asks for one byte: a longer value fails with ERANGE, which is "not set". */
	if (len == 1 && value[0] == OVL_XATTR_YES[0])
		return OVL_FLAG_YES;
	if (len == 1 && value[0] == 'x')
		return OVL_FLAG_X;
	return -EINVAL;
}

/* kstrtoint(s, 10): optional sign, decimal digits, one optional '\n', nothing else; int range. */
static int kstrtoint10(const char *s, size_t n, int *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	long long x = 0;
	size_t start = i;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		x = x * 10 + (s[i] - '0');
		if (x > (long long)INT_MAX + 1)
			return -ERANGE;
	}
	if (i == start)
		return -EINVAL;
	if (i < n && s[i] == '\n')
		i++;
	if (i != n)
		return -EINVAL;
	if (neg)
		x = -x;
	if (x > INT_MAX || x < INT_MIN)
		return -ERANGE;
	*out = (int)x;
	return 0;
}

#define NLINK_VALUE_MAX 12 /* the kernel reads into char[13] with room for the NUL */

int ovl_nlink_decode(const char *value, ssize_t len, char *base, int *diff)
{
	if (!value || len <= 0)
		return -EINVAL;
	if (len > NLINK_VALUE_MAX)
		return -ERANGE;
	size_t n = c_len(value, len);
	if (n < 2 || (value[0] != 'L' && value[0] != 'U') || (value[1] != '+' && value[1] != '-'))
		return -EINVAL;
	int r = kstrtoint10(value + 1, n - 1, diff);
	if (r == 0)
		*base = value[0];
	return r;
}

int ovl_nlink_apply(char base, int diff, unsigned long lower, unsigned long upper,
		    unsigned long *out)
{
	long long n = (long long)(base == 'L' ? lower : upper) + diff;
	if (n <= 0 || (unsigned long long)n > UINT_MAX)
		return -EINVAL;
	*out = (unsigned long)n;
	return 0;
}

#define OVL_METACOPY_MIN_SIZE 4 /* version, len, flags, digest_algo */

int ovl_metacopy_decode(const char *value, ssize_t len)
{
	if (len > 0 && len < OVL_METACOPY_MIN_SIZE)
		return -EIO;
	return 1;
}

enum ovl_wh_kind ovl_wh_decode(const char *name, size_t len, const char **target)
{
	if (len < OVL_WH_PREFIX_LEN || memcmp(name, OVL_WH_PREFIX, OVL_WH_PREFIX_LEN) != 0)
		return OVL_WH_NONE;
	const char *t = name + OVL_WH_PREFIX_LEN;
	size_t tlen = len - OVL_WH_PREFIX_LEN;
	if (len == strlen(OVL_OPQ_NAME) && memcmp(name, OVL_OPQ_NAME, len) == 0)
		return OVL_WH_OPQ;
	/* "." and ".." are never real entries; an empty or '/'-holding target names none. */
	if (tlen == 0 || is_dot_name(t, tlen) || memchr(t, '/', tlen) || memchr(t, '\0', tlen))
		return OVL_WH_INVALID;
	if (target)
		*target = t;
	return OVL_WH_WHITEOUT;
}
