// SPDX-License-Identifier: GPL-2.0-or-later
/* request.c - the request in progress on this thread (see request.h). */
#include <stddef.h>

#include "request.h"

#define REQ_OP_NAME(id, name) [REQ_OP_##id] = name,
static const char *const op_names[REQ_OP_N] = {[REQ_OP_NONE] = "-", REQ_OPS(REQ_OP_NAME)};
#undef REQ_OP_NAME

static __thread struct req_ctx *current;

const char *req_op_name(enum req_op op)
{
	if ((unsigned)op >= REQ_OP_N || !op_names[op])
		return "-";
	return op_names[op];
}

void req_enter(struct req_ctx *c, atomic_ulong *counts)
{
	if (counts && (unsigned)c->op < REQ_OP_N)
		atomic_fetch_add_explicit(&counts[c->op], 1, memory_order_relaxed);
	current = c;
}

void req_leave(struct req_ctx *c)
{
	if (current == c)
		current = NULL;
}

const struct req_ctx *req_current(void)
{
	return current;
}
