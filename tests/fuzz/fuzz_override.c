// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuzz_override.c - libFuzzer target: the xattr_permissions value decoder (override.c).
 *
 * The input is an override_stat value as a layer may hold it (any bytes). An accepted value must
 * encode to a value that decodes to the same owner, permission bits and type (a value without a
 * type encodes as "file"), and device numbers of a device type; override_to_stat must keep a
 * directory one. A failed check aborts: a crash for the fuzzer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "override.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_override: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct override o, back;
	char buf[OVERRIDE_VALUE_MAX];

	if (override_decode((const char *)data, size, &o) < 0)
		return 0;
	size_t len = override_encode(&o, buf);
	check(len > 0 && len < OVERRIDE_VALUE_MAX, "encoded length out of bounds");
	check(override_decode(buf, len, &back) == 0, "an encoded value does not decode");
	check(back.uid == o.uid && back.gid == o.gid, "owner changed in a round trip");
	check((back.mode & 07777) == (o.mode & 07777), "permission bits changed in a round trip");
	mode_t type = (o.mode & S_IFMT) ? (o.mode & S_IFMT) : S_IFREG;
	check((back.mode & S_IFMT) == type, "type changed in a round trip");
	if (S_ISCHR(type) || S_ISBLK(type))
		check(back.rdev == o.rdev, "device changed in a round trip");
	struct stat st = {.st_mode = S_IFDIR | 0700};
	override_to_stat(&o, &st);
	check(S_ISDIR(st.st_mode), "a directory turned into something else");
	return 0;
}
