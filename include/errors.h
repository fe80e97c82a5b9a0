/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * errors.h - the error slot: errors that come from the layers, counted and remembered.
 *
 * WHAT IS NOTED
 * Errors the layers cause, not the user (the FAN_FS_ERROR lesson: an admin must learn that a disk
 * fills or a lower mount died without reading every client's errno):
 *   io         EIO, EUCLEAN (EFSCORRUPTED), EBADMSG (EFSBADCRC)
 *   nospc      ENOSPC              dquot      EDQUOT
 *   rofs       EROFS (a layer's filesystem went read-only; plyfs' own EROFS of a read-only mount
 *              never reaches a layer, so it is not noted)
 *   stale      ESTALE of a layer fd
 *   notconn    ENOTCONN, ECONNABORTED (a lower that is a dead FUSE mount)
 *   resources  ENOMEM, EMFILE, ENFILE (the daemon ran out)
 *   metadata   invalid overlay metadata read from a layer (errors_note_metadata: the xattr
 * decoders), and overlay metadata the upper layer would not store where kernel overlayfs goes on
 * without it (errors_note_metadata_write)
 * copy_up    a failed copy-up, whatever its errno (errors_note_copy_up; its cause, when a
 * layer syscall failed, is noted under that syscall's kind as well) Not noted: ENOENT, EEXIST,
 * EACCES, EPERM, ENOTEMPTY, EXDEV, ELOOP, ENODATA, ERANGE, ... (the answers to what the user
 * asked), and anything plyfs answers without a layer syscall.
 *
 * WHERE THEY ARE CAUGHT
 * layer.c's traced() sees every raw layer syscall and its result: a failure goes to
 * errors_note_call() with the syscall's name, its fd and its name argument. The few layer I/O
 * paths that libfuse performs itself are noted by ops.c (WRITE: fuse_buf_copy into the layer fd).
 * A READ is made by ops.c through layer_pread() (not spliced by libfuse, which would answer a
 * failed read itself), so a layer's EIO on an open file is counted too. The operation and the nodeid come from this thread's request
 * (request.h); outside a request they are "-" and 0 and the default slot is used.
 *
 * WHAT A RECORD HOLDS (struct err_record)
 * errno, the FUSE operation, the failed syscall, the layer (its index in fs->layers, or the
 * workdir), the path inside that layer (the fd's path from /proc/self/fd, the layer root cut off,
 * plus the name argument), the nodeid of the request, the wall-clock time, and the note's
 * sequence number among all notes of the slot. Outside a redirected directory and the workdir,
 * the path inside the layer is the path inside the mount. Layers that nest (lowers may) are told
 * apart by the longest matching root.
 *
 * LIFETIME RULES
 * The slot:
 *   ALLOCATED  err_slot_new() at mount, before the session starts (main.c): every byte a note
 *              writes exists from then on. Records are fixed-size arrays inside the slot; a path
 *              longer than ERR_PATH_MAX-1 keeps its last bytes behind a "..." marker and sets
 *              `truncated`. The note path allocates nothing (a test counts mallocs): the /proc
 *              readlink goes to a stack buffer, the log line to a 1 KiB stack buffer (syslog(3),
 *              once daemonized, may allocate inside libc; if it fails only the line is lost).
 *   ACTIVE     any number of request threads note errors while any number read (the status
 *              query). Nothing in it ever blocks a note.
 *   FREED      err_slot_free() at unmount, after the session loop has returned (no request in
 *              flight) and after err_slot_set_default(NULL).
 * It is reset only by being allocated: a new mount starts at zero. Reading never resets it.
 *
 * Per kind, when errors arrive faster than they are read:
 *   count      an atomic increment, the first thing a note does: never lost, exact as soon as the
 *              notes in flight have returned.
 *   first      EMPTY --a note wins the claim (CAS)--> WRITING --record copied, release store-->
 *              SET. Written once, never changed afterwards. A reader that meets WRITING reports the
 *              record as pending (the count already includes it).
 *   last       EMPTY --first note--> SET --newer note--> SET. Replaced under a try-lock, and only
 *              by a note with a higher sequence number than the record it replaces (so it never
 *              goes back in time). A note that finds the lock taken (another note writing the
 *              record, which it then shows) leaves the record as it is and adds 1 to
 *              `records_missed`: its error is still counted and logged; it just is not the record
 *              shown. Readers never take that lock, so a reader stopped mid-copy (preempted)
 *              makes no note miss: after a quiet moment `last` is the newest note of its kind.
 *   log        at most ERR_LOG_PER_SECOND lines per kind per second; the next line printed says how
 *              many were dropped. One kind's flood does not silence another. (metadata: logged
 *              by its caller, once per entry, see errors_note_metadata().)
 * A reader copies the counts (relaxed loads: each is exact, the set is not a snapshot of one
 * instant), the first record once SET (acquire), and the last record as a seqlock reader: a
 * version, odd while a note writes the record, says when to copy it again (waiting with
 * sched_yield while it is odd: a note writes it with one memcpy).
 */
#ifndef PLYFS_ERRORS_H
#define PLYFS_ERRORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "request.h"

enum err_kind {
	ERR_IO,
	ERR_NOSPC,
	ERR_DQUOT,
	ERR_ROFS,
	ERR_STALE,
	ERR_NOTCONN,
	ERR_RESOURCES,
	ERR_METADATA,
	ERR_COPY_UP,
	ERR_KIND_N
};

#define ERR_PATH_MAX	   512 /* bytes kept of a record's path, NUL included */
#define ERR_LOG_PER_SECOND 5

/* Layer of a record when it is not an index of fs->layers. */
#define ERR_LAYER_UNKNOWN -1
#define ERR_LAYER_WORKDIR -2
#define ERR_LAYER_FROM_FD -3 /* errors_note(): find it from the fd */

struct err_record {
	uint64_t seq; /* 1 for the slot's first note, counting all kinds */
	int err;      /* positive errno */
	enum req_op op;
	int layer;	      /* index in fs->layers, ERR_LAYER_WORKDIR or ERR_LAYER_UNKNOWN */
	uint64_t nodeid;      /* of the request; 0 outside one */
	struct timespec time; /* CLOCK_REALTIME */
	bool truncated;	      /* path lost its head: it starts with "..." */
	char call[24];	      /* the failed syscall ("pwrite"), or what was invalid ("redirect") */
	char arg[64];	      /* an xattr call's attribute name, else empty */
	char path[ERR_PATH_MAX];
};

/* Where an error happened, for errors_note(). */
struct err_site {
	const char *call; /* syscall name, or what was invalid */
	int fd;		  /* a layer fd, or -1 */
	const char *name; /* relative to fd (joined to its path), or NULL */
	int layer;	  /* index in fs->layers, or ERR_LAYER_FROM_FD */
	uint64_t nodeid;  /* 0: the request's */
	bool quiet;	  /* the caller logs it itself: count and record only */
};

struct err_slot;

/* ALLOCATED: layer_paths[i] is the canonical root of fs->layers[i]; upper: whether layer 0 is
 * the upper layer (for names in messages); workdir may be NULL. The strings are copied. */
struct err_slot *err_slot_new(const char *const *layer_paths, size_t n_layers, bool upper,
			      const char *workdir);
void err_slot_free(struct err_slot *slot);
/* The slot noted into outside a request scope (and inside one whose slot is NULL). */
void err_slot_set_default(struct err_slot *slot);

/* The kind of an errno coming from a layer syscall, or -1 when the user caused it. */
int err_kind_of(int err);
const char *err_kind_name(enum err_kind kind); /* "io", "nospc", ... */
/* "upper", "lower0" (top lower), ..., "workdir", "?", into buf (16 bytes). */
const char *err_layer_name(const struct err_slot *slot, int layer, char *buf);
const char *err_layer_path(const struct err_slot *slot, int layer); /* NULL if unknown */

/* The one entry point: counts `err` under `kind` in `slot` (NULL: the request's, else the
 * default; none: nothing happens), updates the records, logs rate-limited. err > 0. */
void errors_note(struct err_slot *slot, enum err_kind kind, int err, const struct err_site *site);
/* traced(): a failed layer syscall; noted only if err_kind_of(err) >= 0. */
void errors_note_call(int err, const char *call, int fd, const char *arg);
/* Invalid overlay metadata: `what` names it ("redirect", "origin"...), (fd, name) the entry that
 * carries it (fd -1: name is its path inside `layer`, "" for the root), layer its layer when fd
 * is -1 (else ERR_LAYER_FROM_FD); err the errno answered (> 0). Counted and recorded at every
 * call, not logged: the one report of invalid metadata (the xattr decoders') logs it, once per
 * entry; it calls this before deciding whether to log. */
void errors_note_metadata(int err, const char *what, int layer, int fd, const char *name);
/* An overlay xattr `xname` the upper layer refused to store on (fd) where kernel overlayfs goes
 * on without it (an upper filesystem without xattrs: EOPNOTSUPP, ENOTSUP). Counted and recorded
 * under `metadata`, logged rate-limited. Every other failed metadata write fails its operation. */
void errors_note_metadata_write(int err, const char *xname, int fd);
/* A copy-up that failed with err, of node `nodeid` named `name` in its parent. */
void errors_note_copy_up(int err, uint64_t nodeid, const char *name);

/* What a reader gets. */
struct err_kind_snapshot {
	uint64_t count;
	bool first_set, first_pending, last_set;
	struct err_record first, last;
};
struct err_snapshot {
	uint64_t notes;		 /* all notes, all kinds */
	uint64_t records_missed; /* notes that found the last record busy */
	struct err_kind_snapshot kind[ERR_KIND_N];
};
/* Copies the slot (see LIFETIME RULES for what is consistent); never changes it. */
void err_slot_read(struct err_slot *slot, struct err_snapshot *out);

#endif
