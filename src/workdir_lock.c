// SPDX-License-Identifier: GPL-2.0-or-later
/* workdir_lock.c - one mount per workdir: the lock on W/plyfs-lock (see workdir.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "autofd.h"
#include "layer.h"
#include "log.h"
#include "ovl_names.h"
#include "workdir.h"

/* What the lock file says about its holder: "PID STATE DEV MOUNTPOINT\n", DEV the "major:minor"
 * of its FUSE mount once it is live ("-" before). */
struct holder {
	long pid;
	char state[16];
	char dev[32];
	char mountpoint[PATH_MAX];
};

/* Reads the holder's record; false when the file holds none, or one of a process that is gone
 * (the holder took the lock and has not written its record yet, or has just forked). */
static bool read_holder(int fd, struct holder *h)
{
	char buf[PATH_MAX + 128];
	ssize_t n = layer_pread(fd, buf, sizeof(buf) - 1, 0);
	int used = 0;
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (sscanf(buf, "%ld %15s %31s %n", &h->pid, h->state, h->dev, &used) != 3 || used == 0 ||
	    buf[n - 1] != '\n')
		return false;
	buf[n - 1] = '\0';
	g_strlcpy(h->mountpoint, buf + used, sizeof(h->mountpoint));
	return h->pid > 0 && h->pid <= INT_MAX && (kill((pid_t)h->pid, 0) == 0 || errno == EPERM);
}

/* Unescapes a mountinfo field in place (" " is "\040", and so on). */
static void unescape_octal(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * In /proc/PID/mountinfo: with `dev`, whether a mount of that device is there (-1: unreadable);
 * with `mountpoint`, the device of the last FUSE mount on it, into `found` (0 when there is none).
 */
static int scan_mountinfo(long pid, const char *dev, const char *mountpoint, char *found,
			  size_t found_len)
{
	g_autofree char *path = pid ? g_strdup_printf("/proc/%ld/mountinfo", pid)
				    : g_strdup("/proc/self/mountinfo");
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int present = 0;
	while (getline(&line, &cap, f) > 0) {
		char d[32], mnt[PATH_MAX], *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %31s %*s %4095s", d, mnt) != 2)
			continue;
		if (dev && strcmp(d, dev) == 0)
			present = 1;
		unescape_octal(mnt);
		if (mountpoint && strcmp(mnt, mountpoint) == 0 && strncmp(sep + 3, "fuse", 4) == 0)
			g_strlcpy(found, d, found_len);
	}
	free(line);
	fclose(f);
	return present;
}

/* A holder whose record says mounted but whose mount is gone from its own mount namespace has
 * been unmounted and is about to stop (it records "stopping" once its loop has ended). */
static bool unmounted(const struct holder *h)
{
	return strcmp(h->state, "mounted") == 0 && strcmp(h->dev, "-") != 0 &&
	       scan_mountinfo(h->pid, h->dev, NULL, NULL, 0) == 0;
}

static void write_holder(int fd, const char *state, const char *dev, const char *mountpoint)
{
	g_autofree char *line =
		g_strdup_printf("%ld %s %s %s\n", (long)getpid(), state, dev, mountpoint);
	size_t len = strlen(line);
	/* Written over the old record, then cut: a reader never sees an empty file in between. */
	if (layer_pwrite(fd, line, len, 0) != (ssize_t)len || layer_ftruncate(fd, (off_t)len) < 0)
		log_msg(LOG_WARNING,
			"cannot record this mount in %s: a mount refused for this workdir will not "
			"name it",
			PLYFS_LOCK_NAME);
}

static int busy(struct plyfs *fs, const struct holder *h, bool known, char **err)
{
	if (!known)
		*err = g_strdup_printf("workdir '%s' is in use by another plyfs mount (its %s "
				       "names none): one workdir serves one mount at a time",
				       fs->params->workdir, PLYFS_LOCK_NAME);
	else if (strcmp(h->state, "stopping") == 0 || unmounted(h))
		*err = g_strdup_printf("workdir '%s' is still in use by the plyfs mount that was "
				       "on '%s' (pid %ld), unmounted but not stopped after %d s",
				       fs->params->workdir, h->mountpoint, h->pid,
				       WORKDIR_STOPPING_WAIT);
	else
		*err = g_strdup_printf(
			"workdir '%s' is in use by the plyfs mount on '%s' (pid %ld, "
			"%s): one workdir serves one mount at a time",
			fs->params->workdir, h->mountpoint, h->pid, h->state);
	return -EBUSY;
}

/* flock(LOCK_EX|LOCK_NB) on the lock file: 0, -EWOULDBLOCK when held, or -errno. */
static int try_lock(int fd)
{
	int r;
	do
		r = flock(fd, LOCK_EX | LOCK_NB);
	while (r < 0 && errno == EINTR);
	r = r < 0 ? -errno : 0;
	log_debug("flock(%d, LOCK_EX|LOCK_NB) = %d", fd, r);
	return r;
}

/*
 * Tries the lock until it is free or the holder is known to stay: a holder that has not written
 * its record yet gets a second, one that was unmounted and is stopping WORKDIR_STOPPING_WAIT
 * seconds. 0, -EBUSY with *err naming the holder, or another -errno of flock.
 */
static int lock_or_wait(struct plyfs *fs, int fd, char **err)
{
	struct timespec pause = {.tv_nsec = 50 * 1000 * 1000};
	for (unsigned waited = 0;; waited++) {
		int r = try_lock(fd);
		if (r != -EWOULDBLOCK)
			return r;
		struct holder h;
		bool known = read_holder(fd, &h);
		bool wait = known ? strcmp(h.state, "stopping") == 0 || unmounted(&h) : waited < 20;
		if (!wait || waited >= WORKDIR_STOPPING_WAIT * 20u)
			return busy(fs, &h, known, err);
		nanosleep(&pause, NULL);
	}
}

int workdir_lock(struct plyfs *fs, char **err)
{
	autofd int fd =
		layer_openat(fs->work_fd, PLYFS_LOCK_NAME, O_RDWR | O_CREAT | O_NONBLOCK, 0644);
	struct stat st;
	int r = fd < 0 ? fd : layer_fstat(fd, &st);
	if (r == 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	if (r < 0) {
		*err = g_strdup_printf("workdir '%s': cannot open '%s': %s", fs->params->workdir,
				       PLYFS_LOCK_NAME, g_strerror(-r));
		return r;
	}
	r = lock_or_wait(fs, fd, err);
	if (r == -ENOLCK || r == -EOPNOTSUPP || r == -EINVAL) {
		log_msg(LOG_WARNING,
			"workdir '%s': cannot lock '%s' (%s): a second mount of this workdir "
			"would not be refused",
			fs->params->workdir, PLYFS_LOCK_NAME, g_strerror(-r));
		return 0;
	}
	if (r == -EBUSY)
		return r;
	if (r < 0) {
		*err = g_strdup_printf("workdir '%s': cannot lock '%s': %s", fs->params->workdir,
				       PLYFS_LOCK_NAME, g_strerror(-r));
		return r;
	}
	fs->lock_fd = steal_fd(&fd);
	workdir_lock_record(fs, "mounting");
	return 0;
}

void workdir_lock_record(struct plyfs *fs, const char *state)
{
	if (fs->lock_fd < 0)
		return;
	char dev[32] = "-";
	if (strcmp(state, "mounted") == 0)
		scan_mountinfo(0, NULL, fs->params->mountpoint, dev, sizeof(dev));
	write_holder(fs->lock_fd, state, dev, fs->params->mountpoint);
}
