/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ops.h - the fuse_lowlevel_ops table: the only place that replies to the kernel.
 *
 * Every handler resolves its nodeid with node_table_get() (an unknown or freed nodeid is answered
 * -ESTALE, never a crash), calls a concept module that returns 0/-errno, drops its request
 * reference, and replies exactly once. No node lock is held while replying.
 */
#ifndef PLYFS_OPS_H
#define PLYFS_OPS_H

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops plyfs_ops;

#endif
