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

bool log_rate_allow(struct log_rate *r, long *dropped)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long now = (long)ts.tv_sec;
	long prev = atomic_load(&r->second);
	/* One thread wins the move to a new second and resets the count; the others just count. */
	if (prev != now && atomic_compare_exchange_strong(&r->second, &prev, now))
		atomic_store(&r->count, 0);
	if (atomic_fetch_add(&r->count, 1) >= r->max) {
		atomic_fetch_add(&r->dropped, 1);
		return false;
	}
	*dropped = atomic_exchange(&r->dropped, 0);
	return true;
}

/* At most 10 messages per second for everything without a budget of its own; the count of dropped
 * ones is reported with the next one printed, so the operator knows the log is incomplete. */
static struct log_rate shared_rate = LOG_RATE_INIT(10);

void log_ratelimited(int level, const char *fmt, ...)
{
	long dropped;
	if (!log_rate_allow(&shared_rate, &dropped))
		return;
	if (dropped)
		log_msg(level, "(%ld similar messages suppressed)", dropped);
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
