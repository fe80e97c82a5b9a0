// SPDX-License-Identifier: GPL-2.0-or-later
/* atime.c - the mount's atime policy, applied by the daemon (see atime.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <unistd.h>

#include "atime.h"
#include "autofd.h"
#include "dir.h"
#include "log.h"
#include "mount_flags.h"

/* relatime's bound: an atime older than this is updated anyway (the kernel's 24 hours). */
#define RELATIME_MAX_AGE (24 * 60 * 60)

struct atime_watch {
	GThread *thread;
	int stop[2]; /* a pipe: a byte (or its closing) ends the thread */
};

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

bool atime_needs_update(unsigned long flags, bool dir, const struct stat *st,
			const struct timespec *now)
{
	if (flags == 0 || (flags & MS_NOATIME) || (dir && (flags & MS_NODIRATIME)))
		return false;
	if (flags & MS_RELATIME) {
		if (ts_cmp(&st->st_mtim, &st->st_atim) >= 0 ||
		    ts_cmp(&st->st_ctim, &st->st_atim) >= 0)
			return true;
		return now->tv_sec - st->st_atim.tv_sec >= RELATIME_MAX_AGE;
	}
	return ts_cmp(&st->st_atim, now) != 0;
}

/* Reads the flags of our mount; 0 when it is not (or no longer) in mountinfo. */
static unsigned long read_flags(struct plyfs *fs)
{
	unsigned long fl = 0;
	int id = -1;
	bool fuse;
	if (mount_flags_read(fs->params->mountpoint, fs->mount_id, &id, &fl, &fuse) < 0)
		return 0;
	fs->mount_id = id;
	fl &= MOUNT_FLAGS_ATIME_MASK;
	return fl & (MS_NOATIME | MS_RELATIME) ? fl : fl | MS_STRICTATIME; /* never 0: known */
}

void atime_init(struct plyfs *fs)
{
	fs->mount_id = -1;
	unsigned long fl = read_flags(fs);
	if (fl == 0) { /* not visible (another mount namespace?): the options say it */
		fl = mount_flags_apply(&fs->params->mflags, MS_RELATIME) & MOUNT_FLAGS_ATIME_MASK;
		if (fl & MS_STRICTATIME)
			fl &= ~(MS_NOATIME | MS_RELATIME); /* mount(2)'s order */
		else if (fl & MS_NOATIME)
			fl &= ~MS_RELATIME;
	}
	atomic_store(&fs->atime_flags, fl);
}

/* The thread: mountinfo polls readable with POLLPRI|POLLERR whenever the mount table of our
 * namespace changes; then our mount's flags are read again. Ends on the stop pipe. */
static gpointer watch(gpointer data)
{
	struct plyfs *fs = data;
	autofd int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLPRI},
				      {.fd = fs->atime_watch->stop[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & (POLLPRI | POLLERR)))
			continue;
		/* The event is cleared by reading the file from its start. */
		char buf[4096];
		lseek(fd, 0, SEEK_SET);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		unsigned long fl = read_flags(fs);
		if (fl && fl != atomic_exchange(&fs->atime_flags, fl)) {
			log_debug("atime flags of the mount now %#lx", fl);
			dir_listings_stale_all(fs);
		}
	}
}

void atime_start(struct plyfs *fs)
{
	struct atime_watch *w = g_new0(struct atime_watch, 1);
	if (pipe2(w->stop, O_CLOEXEC) < 0) {
		g_free(w);
		return;
	}
	fs->atime_watch = w;
	w->thread = g_thread_new("atime", watch, fs);
}

void atime_stop(struct plyfs *fs)
{
	struct atime_watch *w = fs->atime_watch;
	if (!w)
		return;
	close(w->stop[1]);
	g_thread_join(w->thread);
	close(w->stop[0]);
	g_free(w);
	fs->atime_watch = NULL;
}

bool atime_due(struct plyfs *fs, int fd, bool dir)
{
	unsigned long fl = atomic_load(&fs->atime_flags);
	if (fl == 0 || (fl & MS_NOATIME) || (dir && (fl & MS_NODIRATIME)))
		return false; /* no syscall at all in the common noatime case */
	struct stat st;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	return layer_fstat(fd, &st) == 0 && atime_needs_update(fl, dir, &st, &now);
}

void atime_accessed(struct plyfs *fs, int fd, bool dir)
{
	if (atime_due(fs, fd, dir))
		layer_touch_atime(fd, dir);
}

bool atime_stays(struct plyfs *fs, int fd, bool dir)
{
	unsigned long fl = atomic_load(&fs->atime_flags);
	if (fl == 0 || (fl & MS_NOATIME) || (dir && (fl & MS_NODIRATIME)))
		return true;
	if (!(fl & MS_RELATIME))
		return false; /* strictatime: every later read moves it */
	return !atime_due(fs, fd, dir);
}
