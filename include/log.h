/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.h - the one log sink of the daemon.
 *
 * Messages go to stderr while in the foreground and to syslog once daemonized
 * (log_to_syslog()). LOG_DEBUG lines are printed only with -d (log_set_debug()).
 * log_ratelimited() drops a message when more than 10 were printed in the current second,
 * so a corrupt layer cannot flood the log. A source of messages that must not eat the budget of
 * the others (the error slot: one per kind of error, errors.h) keeps its own struct log_rate and
 * logs through log_rate_allow(): the first message printed after some were dropped says how many.
 * Lines are formatted into a stack buffer (1 KiB, longer ones cut): printing to stderr allocates
 * nothing; syslog(3) may.
 */
#ifndef PLYFS_LOG_H
#define PLYFS_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <syslog.h>

/* A message budget: at most `max` messages per second (CLOCK_MONOTONIC seconds). Zero-initialised
 * with LOG_RATE_INIT(max); lock-free, safe from any thread. */
struct log_rate {
	int max;
	atomic_long second;
	atomic_int count;
	atomic_long dropped; /* messages refused since the last one printed */
};
#define LOG_RATE_INIT(n)                                                                           \
	{                                                                                          \
		.max = (n)                                                                         \
	}

/* true when one more message fits in r's budget for this second; then *dropped is the number
 * refused since the last one allowed (to be reported with it). */
bool log_rate_allow(struct log_rate *r, long *dropped);

void log_set_debug(bool on);
bool log_debug_enabled(void);
void log_to_syslog(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_ratelimited(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_debug_enabled())                                                           \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

#endif
