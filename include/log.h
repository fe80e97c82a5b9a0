/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.h - the one log sink of the daemon.
 *
 * Messages go to stderr while in the foreground and to syslog once daemonized
 * (log_to_syslog()). LOG_DEBUG lines are printed only with -d (log_set_debug()).
 * log_ratelimited() drops a message when more than 10 were printed in the current second,
 * so a corrupt layer cannot flood the log.
 */
#ifndef PLYFS_LOG_H
#define PLYFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_set_debug(bool on);
bool log_debug_enabled(void);
void log_to_syslog(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_ratelimited(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                          \
	do {                                    \
		if (log_debug_enabled())        \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
