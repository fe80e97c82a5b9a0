// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuzz_idmap.c - libFuzzer target: the uidmapping=/gidmapping= parser (idmap.c).
 *
 * The input (up to its first NUL) is a mapping spec. A refusal must carry a message and leave the
 * map empty; an accepted map must map both ends of every range, in both directions, to the same
 * range (ranges do not overlap, so no other range may answer), and an id just outside a range
 * must not map into it. A failed check aborts: a crash for the fuzzer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>

#include "idmap.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_idmap: %s\n", what);
		abort();
	}
}

/* `c` .. `c + k` is container id c+k of range r, stored as host id h+k, both ways. */
static void check_id(const struct idmap *m, const struct idmap_range *r, uint32_t k)
{
	uint32_t host = 0;

	check(idmap_to_host(m, r->container + k, &host) == 0, "a mapped container id is refused");
	check(host == r->host + k, "a container id maps to the wrong host id");
	check(idmap_to_container(m, r->host + k) == r->container + k,
	      "a host id maps to the wrong container id");
}

/* The id just before or after a range, if any, maps outside it. */
static void check_outside(const struct idmap *m, const struct idmap_range *r)
{
	uint32_t host;

	if (r->container > 0 && idmap_to_host(m, r->container - 1, &host) == 0)
		check(host < r->host || host - r->host >= r->count, "container id - 1 maps inside");
	if ((uint64_t)r->container + r->count <= UINT32_MAX &&
	    idmap_to_host(m, r->container + r->count, &host) == 0)
		check(host < r->host || host - r->host >= r->count, "container end maps inside");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *spec = g_strndup((const char *)data, size);
	g_autofree char *err = NULL;
	struct idmap m = {0};

	if (idmap_parse(spec, &m, &err) < 0) {
		check(err && *err, "refused without a message");
		check(m.n == 0 && m.ranges == NULL, "a refused map is not empty");
		return 0;
	}
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
