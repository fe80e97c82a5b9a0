// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuzz_idmap.c - libFuzzer target: the uidmapping=/gidmapping= parser (idmap.c).
 *
 * The input (up to its first NUL) is a mapping spec "stored:shown:count..." (empty fields skipped).
 * A refusal must carry a message and leave the map empty; an accepted map must map both ends of
 * every range, in both directions, to the same range (ranges do not overlap, so no other range may
 * answer), and an id just outside a range must not map into it. The same input is also read as a
 * POSIX ACL xattr value and mapped there and back. A failed check aborts: a crash for the fuzzer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "idmap.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_idmap: %s\n", what);
		abort();
	}
}

/* Stored id a+k of range r shows as b+k, and back. */
static void check_id(const struct idmap *m, const struct idmap_range *r, uint32_t k)
{
	uint32_t stored = 0;

	check(idmap_to_stored(m, r->shown + k, &stored) == 0, "a mapped shown id is refused");
	check(stored == r->stored + k, "a shown id maps to the wrong stored id");
	check(idmap_new_owner(m, r->shown + k) == r->stored + k, "a new owner is not mapped");
	check(idmap_to_shown(m, r->stored + k) == r->shown + k,
	      "a stored id maps to the wrong shown id");
}

/* The id just before or after a range, if any, maps outside it. */
static void check_outside(const struct idmap *m, const struct idmap_range *r)
{
	uint32_t stored;

	if (r->shown > 0 && idmap_to_stored(m, r->shown - 1, &stored) == 0)
		check(stored < r->stored || stored - r->stored >= r->count,
		      "shown id - 1 maps inside");
	if ((uint64_t)r->shown + r->count <= UINT32_MAX &&
	    idmap_to_stored(m, r->shown + r->count, &stored) == 0)
		check(stored < r->stored || stored - r->stored >= r->count,
		      "shown end maps inside");
}

/* The input as an ACL value: mapped to shown ids and back, every id that came back mapped is the
 * one stored before; nothing outside the value is touched (ASan watches the copy's bounds). */
static void check_acl(const struct idmap *m, const uint8_t *data, size_t size)
{
	g_autofree uint8_t *v = g_memdup2(data, size);
	g_autofree uint8_t *back = NULL;

	check(idmap_acl(m, m, v, size, 1) == 0, "mapping an ACL to shown ids failed");
	back = g_memdup2(v, size);
	if (idmap_acl(m, m, back, size, 0) == 0 && m->n > 0 && size >= 4 && (size - 4) % 8 == 0 &&
	    data[0] == 2 && !data[1] && !data[2] && !data[3]) {
		for (size_t off = 4; off < size; off += 8) {
			uint32_t before, after;

			memcpy(&before, data + off + 4, 4);
			memcpy(&after, back + off + 4, 4);
			if (idmap_to_shown(m, GUINT32_FROM_LE(before)) != m->overflow)
				check(before == after, "an ACL id does not come back");
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *spec = g_strndup((const char *)data, size);
	g_autofree char *err = NULL;
	struct idmap m = {0};

	if (idmap_parse(spec, &m, &err) < 0) {
		check(err && *err, "refused without a message");
		check(m.n == 0 && m.ranges == NULL, "a refused map is not empty");
		check_acl(&m, data, size);
		return 0;
	}
	check_acl(&m, data, size);
	check(err == NULL, "accepted with a message");
	check(m.n > 0 && m.ranges, "an accepted map is empty");
	for (size_t i = 0; i < m.n; i++) {
		const struct idmap_range *r = &m.ranges[i];

		check(r->count > 0, "a range of 0 ids");
		check_id(&m, r, 0);
		check_id(&m, r, r->count - 1);
		check_id(&m, r, r->count / 2);
		check_outside(&m, r);
	}
	idmap_clear(&m);
	check(m.n == 0 && m.ranges == NULL, "idmap_clear left ranges");
	return 0;
}
