// SPDX-License-Identifier: GPL-2.0-or-later
/* log.c - the one log sink: stderr in the foreground, syslog once daemonized. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

static atomic_bool debug_on;
static atomic_bool use_syslog;

void log_set_debug(bool on)
{
	debug_on = on;
}

bool log_debug_enabled(void)
{
	return debug_on;
}

void log_to_syslog(void)
{
	openlog("plyfs", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

static void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (use_syslog) {
		vsyslog(level, fmt, ap);
		return;
	}
	/* One fprintf per line so lines from different threads do not interleave. */
	char buf[1024];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	fprintf(stderr, "plyfs: %s\n", buf);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* At most RATE_MAX messages per second; the count of dropped ones is reported with the next one
 * printed, so the operator knows the log is incomplete. */
#define RATE_MAX 10
static atomic_long rate_second;
static atomic_int rate_count;
static atomic_long rate_dropped;

void log_ratelimited(int level, const char *fmt, ...)
{
	long now = (long)time(NULL);
	long prev = atomic_exchange(&rate_second, now);
	if (prev != now)
		atomic_store(&rate_count, 0);
	if (atomic_fetch_add(&rate_count, 1) >= RATE_MAX) {
		atomic_fetch_add(&rate_dropped, 1);
		return;
	}
	long dropped = atomic_exchange(&rate_dropped, 0);
	if (dropped)
		log_msg(level, "(%ld similar messages suppressed)", dropped);
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
