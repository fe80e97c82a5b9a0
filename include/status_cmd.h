/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status_cmd.h - `plyfs status [--json] MOUNTPOINT`: prints a live mount's status query.
 *
 * Reads the status xattr of MOUNTPOINT (status.h: the xattr is the transport, the daemon needs no
 * socket) and prints it as text for people, or with --json as one JSON object (the xattr's dotted
 * names as nested objects; numbers as numbers; each record's time also as "time_utc", its errno
 * also as "errno_name"). Fails with exit status 1 and one line on stderr naming the path when it
 * is not the root of a live plyfs mount (not FUSE, no status xattr, the daemon gone); 2 for a bad
 * command line.
 *
 * `plyfs status ...` is the subcommand only without any -o option: `plyfs status MNT -o ...` is
 * the mount.fuse3 form with a source named "status", and mounts as before.
 */
#ifndef PLYFS_STATUS_CMD_H
#define PLYFS_STATUS_CMD_H

#include <stdbool.h>

/* true when argv asks for the status subcommand. */
bool status_cmd_wanted(int argc, char **argv);
/* Runs it; returns the exit status. */
int status_cmd(int argc, char **argv);

#endif
