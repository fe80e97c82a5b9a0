// SPDX-License-Identifier: GPL-2.0-or-later
/* namei.c - LOOKUP across the layers (see namei.h for the rules). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include <limits.h>
#include <unistd.h>

#include "autofd.h"
#include "index.h"
#include "inode.h"
#include "override.h"
#include "namei.h"
#include "origin.h"
#include "ovl_names.h"
#include "ovl_xattr.h"
#include "whiteout.h"

#define NAME_MAX_BYTES 255

/* One lookup in progress. */
struct scan {
	struct plyfs *fs;
	struct node *parent;
	const struct node_stack *ps; /* the parent's stack, read once */
	const char *name;
	/* A directory found above carried a redirect: lower layers are searched at `redirect`
	 * (absolute: from the layer root; else a name in the parent) instead of at `name`. */
	char *redirect;
	bool redirect_abs;
	/* A redirect that can name nothing (too long): nothing below merges. */
	bool redirect_dead;

	struct stat top;     /* stat of the topmost entry */
	GArray *stack;	     /* of struct node_layer, top first */
	struct node_key key; /* identity */
	bool have_lower_key; /* key already taken from a lower layer */

	/* A file whose upper inode keeps the merged link count (index.h): a lower name of a
	 * hard-linked file found in the index, or an upper file with trusted.overlay.nlink. */
	bool indexed;
	char *index_hex; /* its index entry, for a lower name */
	int lower_nlink;
	bool split; /* one name of a hard link no index keeps together (index.h) */
	/* The entry was just made in the upper layer by this request (namei_lookup_made()). */
	bool made;
	/* Lower layers a listing just read without the name (namei_lookup_listed()), or NULL. */
	const struct namei_listed *listed;
};

/* A lower layer the listing read without the name nor a whiteout of it: lower layers do not
 * change while mounted, so the scan need not look there again (an upper layer may have changed
 * since: it is always looked at). Only above the first layer that has the name. */
static bool listed_absent(const struct scan *sc, int layer)
{
	if (!sc->listed || sc->stack->len > 0 || sc->fs->layers[layer].upper)
		return false;
	for (unsigned i = 0; i < sc->listed->n_absent; i++)
		if (sc->listed->absent[i] == layer)
			return true;
	return false;
}

static void scan_add(struct scan *sc, int layer, const struct stat *st, int fd, char *path)
{
	struct node_layer nl = {
		.layer = layer, .fd = fd, .path = path, .dev = st->st_dev, .ino = st->st_ino};
	if (sc->stack->len == 0) {
		sc->top = *st;
		sc->key = (struct node_key){.dev = st->st_dev, .ino = st->st_ino};
	}
	/* Identity of a merged directory: the topmost *lower* entry, so that it stays the same when
	 * the directory is later copied up (kernel overlayfs records that one as the origin). */
	if (!sc->fs->layers[layer].upper && !sc->have_lower_key) {
		sc->key = (struct node_key){.dev = st->st_dev, .ino = st->st_ino};
		sc->have_lower_key = true;
	}
	g_array_append_val(sc->stack, nl);
}

/* Where an entry is inside its layer, for a report: the redirect path that found it, else the
 * parent's path there plus the name. Only computed on the error path. */
static char *entry_path(struct scan *sc, int layer, const char *name, const char *path)
{
	if (path)
		return g_strdup(path);
	g_autofree char *ppath = inode_layer_path(sc->fs, sc->parent, layer);
	return *ppath ? g_strconcat(ppath, "/", name, NULL) : g_strdup(name);
}

static void report(struct scan *sc, const char *what, int layer, const char *name, const char *path,
		   int err)
{
	g_autofree char *where = entry_path(sc, layer, name, path);
	ovl_xattr_report_invalid(sc->fs, what, layer, where, err);
}

/* Reads the redirect of directory `fd` (found in `layer` at name/path) through the decoder. An
 * invalid one fails the lookup with the kernel's errno (EINVAL, EACCES); one that can name nothing
 * (ENAMETOOLONG) stops the merge, as the kernel's lookup of it finds nothing below. */
static int read_redirect(struct scan *sc, int fd, int layer, const char *name, const char *path)
{
	char buf[PATH_MAX + 1];
	g_autofree char *xname = g_strconcat(sc->fs->xattr_prefix, OVL_XATTR_REDIRECT_SUFFIX, NULL);
	ssize_t len = layer_getxattr(fd, NULL, xname, buf, sizeof(buf));
	if (len == -ENODATA || len == -ENOTSUP || len == -EOPNOTSUPP)
		return 0;
	if (len < 0 && len != -ERANGE)
		return (int)len; /* the layer failed, not its data */
	struct ovl_redirect rd;
	int r = len == -ERANGE ? -ENAMETOOLONG : ovl_redirect_decode(buf, len, &rd);
	if (r < 0)
		report(sc, "redirect", layer, name, path, r);
	if (r == -ENAMETOOLONG) {
		sc->redirect_dead = true;
		return 0;
	}
	if (r < 0)
		return r;
	/* redirect_dir=nofollow: a redirect would lead into the lower layers without the
	 * permission checks of the path it names; the kernel refuses the lookup (EPERM). */
	if (sc->fs->params->redirect_dir == REDIRECT_NOFOLLOW)
		return -EPERM;
	g_free(sc->redirect);
	sc->redirect = g_strndup(rd.path, rd.len);
	sc->redirect_abs = rd.absolute;
	return 0;
}

/* A directory found in a layer: tells whether it stops the merge and, if not, reads its redirect
 * (the kernel's order: an opaque directory's redirect is never read). Returns 1 opaque, 0 not,
 * -errno. */
static int examine_dir(struct scan *sc, int fd, bool more_below, int layer, const char *name,
		       const char *path)
{
	if (!more_below)
		return 0; /* opaqueness and redirects only matter when there is something below */
	int opaque = whiteout_dir_is_opaque(fd, sc->fs->is_root);
	if (opaque != 0)
		return opaque;
	int r = read_redirect(sc, fd, layer, name, path);
	return r < 0 ? r : 0;
}

/* A regular file carrying a metacopy xattr: plyfs has no metacopy, and answers what the kernel
 * with metacopy=off does (EPERM; EIO for a value too short). 0 for any other file. */
static int check_metacopy(struct scan *sc, int dirfd, int layer, const char *name, const char *path)
{
	char buf[72]; /* the kernel writes at most 4 + 64 (a digest); longer is still a metacopy */
	g_autofree char *xname = g_strconcat(sc->fs->xattr_prefix, OVL_XATTR_METACOPY_SUFFIX, NULL);
	ssize_t len = layer_getxattr(dirfd, name, xname, buf, sizeof(buf));
	if (len == -ENODATA || len == -ENOTSUP || len == -EOPNOTSUPP ||
	    (len == -EACCES && !sc->fs->is_root))
		return 0;
	if (len < 0 && len != -ERANGE)
		return (int)len;
	int r = len == -ERANGE ? 1 : ovl_metacopy_decode(buf, len);
	r = r < 0 ? r : -EPERM;
	report(sc, "metacopy", layer, name, path, r);
	return r;
}

/* Finds where the entry would be in one layer: (dirfd, name) or, for an absolute redirect, an
 * fd of the entry itself (name then NULL). */
static int place_in_layer(struct scan *sc, int layer, struct lfd *dir, const char **name,
			  char **path)
{
	*path = NULL;
	if (sc->redirect && sc->redirect_abs) {
		int fd = layer_open_beneath(sc->fs->layers[layer].root_fd, sc->redirect,
					    O_PATH | O_DIRECTORY);
		*dir = (struct lfd){.fd = fd, .owned = true};
		*name = NULL;
		*path = g_strdup(sc->redirect);
		return fd < 0 ? fd : 0;
	}
	*name = sc->redirect ? sc->redirect : sc->name;
	if (sc->redirect) {
		g_autofree char *ppath = inode_layer_path(sc->fs, sc->parent, layer);
		*path = *ppath ? g_strconcat(ppath, "/", sc->redirect, NULL)
			       : g_strdup(sc->redirect);
	}
	return inode_dirfd(sc->fs, sc->parent, layer, dir);
}

/* A lower file with several names: was it copied up through another one (index.h), or does it
 * split into one node per name (no index for it)? */
static void find_in_index(struct scan *sc, int layer, int dirfd, const char *name,
			  const struct stat *st)
{
	/* Without an upper layer nothing is copied up: one file, one node, as the kernel's. */
	if (!S_ISREG(st->st_mode) || st->st_nlink < 2 || !sc->fs->has_upper)
		return;
	char *hex = NULL;
	sc->lower_nlink = (int)st->st_nlink;
	switch (index_lookup_lower(sc->fs, layer, dirfd, name, &hex)) {
	case INDEX_FOUND:
		sc->index_hex = hex;
		sc->indexed = true;
		break;
	case INDEX_SPLIT:
		sc->lower_nlink = 0; /* nothing keeps a merged count: the lower's is shown */
		sc->split = true;
		sc->key = index_split_key(st, sc->parent->key, name);
		break;
	case INDEX_PENDING:
		break;
	}
}

/* Is the origin `fh` of an upper non-directory the entry of the same name in one of the parent's
 * lower layers? Then that is its identity. */
static bool origin_by_name(struct scan *sc, const struct origin_fh *fh, const char *name,
			   const struct stat *up, struct node_key *key)
{
	for (unsigned slot = 0; slot < sc->ps->n; slot++) {
		int layer = sc->ps->l[slot].layer;
		auto_lfd struct lfd d = LFD_INIT;
		struct stat st;
		if (sc->fs->layers[layer].upper || inode_dirfd(sc->fs, sc->parent, layer, &d) < 0 ||
		    layer_fstatat(d.fd, name, &st) < 0)
			continue;
		if (((st.st_mode ^ up->st_mode) & S_IFMT) == 0 &&
		    origin_matches(sc->fs, fh, layer, d.fd, name)) {
			*key = (struct node_key){.dev = st.st_dev, .ino = st.st_ino};
			return true;
		}
		return false; /* the name below is another file: the origin lies elsewhere */
	}
	return false;
}

/* The lower file upper non-directory (dirfd, name) was copied up from (origin.h), whose identity
 * (and st_ino) it keeps: 0 and *key, or -ENODATA (none, or one that does not verify: the file is
 * its own). An invalid value is reported. */
static int find_origin(struct scan *sc, int dirfd, const char *name, const struct stat *st,
		       int layer, struct node_key *key)
{
	struct origin_fh fh;
	int r = origin_get(sc->fs, dirfd, name, &fh);
	if (r == -ENODATA) {
		/* None: maybe a layer written by an older plyfs, with its own origin. */
		r = origin_legacy_get(sc->fs, dirfd, name, key);
		if (r == -EINVAL)
			report(sc, "plyfs.origin", layer, name, NULL, r);
		if (r == 0)
			return 0;
		/* Or none could be written (user.* on a symlink or a fifo), see below. */
		return node_table_upper_key(sc->fs->nodes, st->st_dev, st->st_ino, st->st_mode, key)
			       ? 0
			       : -ENODATA;
	}
	if (r == -EINVAL)
		report(sc, "origin", layer, name, NULL, r);
	if (r < 0 && r != -ESTALE)
		return -ENODATA;
	if (r == 0 && origin_by_name(sc, &fh, name, st, key))
		return 0;
	if (r == 0 && origin_decode(sc->fs, &fh, st->st_mode & S_IFMT, key) == 0)
		return 0;
	/* Unverifiable (rootless, renamed or linked since): the node this mount has for that upper
	 * inode, if any, so that one file never has two nodes (node.h, IDENTITY). */
	return node_table_upper_key(sc->fs->nodes, st->st_dev, st->st_ino, st->st_mode, key)
		       ? 0
		       : -ENODATA;
}

/* An upper directory found merging with lower directory `lower` (of `layer`) and carrying no
 * origin gets that one's, and its parent is marked impure: the kernel's ovl_fix_origin(). */
static int fix_origin(struct scan *sc, int lower, int layer)
{
	struct plyfs *fs = sc->fs;
	const struct node_layer *top = &g_array_index(sc->stack, struct node_layer, 0);
	if (sc->stack->len != 1 || !fs->layers[top->layer].upper || fs->params->read_only)
		return 0;
	struct origin_fh fh;
	int r = origin_get(fs, top->fd, NULL, &fh);
	if (r != -ENODATA)
		return 0; /* it has one (valid or not, the kernel keeps it) */
	r = origin_encode(fs, layer, lower, NULL, &fh);
	if (r == 0)
		r = origin_set(fs, top->fd, NULL, S_IFDIR, &fh);
	auto_lfd struct lfd pdir = LFD_INIT;
	if (r == 0)
		r = inode_dirfd(fs, sc->parent, 0, &pdir);
	return r < 0 ? r : origin_set_impure(fs, pdir.fd);
}

/* A non-directory this mount already has a node for (node.h, IDENTITY): what the scan would read
 * from it (metacopy, origin, the handle check) was read when that node was made, and plyfs
 * writes none of them on an existing inode; so its identity is the node's, and those syscalls
 * (up to four, and the origin's verification against the lower layers) are saved on every later
 * lookup of it: an UNLINK's, a RENAME's, a LINK's. A lower file with several names is left to
 * the index rules (find_in_index()). */
static bool known_node(struct scan *sc, int layer, const char *name, const struct stat *st)
{
	struct node_key key;
	bool indexed;
	bool upper = sc->fs->layers[layer].upper;
	if (!name || (!upper && st->st_nlink > 1) ||
	    !node_table_known(sc->fs->nodes, st->st_dev, st->st_ino, st->st_mode, upper, &key,
			      &indexed))
		return false;
	scan_add(sc, layer, st, -1, NULL);
	sc->key = key;
	sc->indexed = upper && indexed; /* what index_upper_keeps_nlink() found for it */
	return true;
}

enum scan_step { SCAN_NEXT, SCAN_STOP };

/* Examines one layer of the parent. Returns SCAN_NEXT / SCAN_STOP, or -errno. */
static int scan_layer(struct scan *sc, unsigned slot)
{
	auto_lfd struct lfd dir = LFD_INIT;
	const char *name;
	g_autofree char *path = NULL;
	int layer = sc->ps->l[slot].layer;
	bool more_below = slot + 1 < sc->ps->n;
	/* A redirect or opaque marker matters as long as any layer lies below: an absolute
	 * redirect continues the search from the layer roots, beyond the parent's layers. */
	bool layers_below = (size_t)layer + 1 < sc->fs->n_layers;
	if (sc->redirect_dead)
		return SCAN_STOP;
	if (listed_absent(sc, layer))
		return more_below ? SCAN_NEXT : SCAN_STOP;
	int r = place_in_layer(sc, layer, &dir, &name, &path);
	/* A redirect target absent here, or with a symlink or a file on its way, or a name too
	 * long to exist: not here. */
	if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP || r == -ENAMETOOLONG)
		return more_below ? SCAN_NEXT : SCAN_STOP;
	if (r < 0)
		return r;

	struct stat st;
	r = name ? layer_fstatat(dir.fd, name, &st) : layer_fstat(dir.fd, &st);
	if (r == -ENOENT) {
		if (!more_below)
			return SCAN_STOP;
		r = whiteout_wh_exists(dir.fd, name);
		return r < 0 ? r : (r ? SCAN_STOP : SCAN_NEXT);
	}
	if (r < 0)
		return r;
	if (whiteout_is_chardev(&st))
		return SCAN_STOP;
	if (sc->stack->len > 0 && !S_ISDIR(st.st_mode))
		return SCAN_STOP; /* a lower non-directory under a directory: not merged */
	if (!S_ISDIR(st.st_mode) && known_node(sc, layer, name, &st))
		return SCAN_STOP;
	if (!S_ISDIR(st.st_mode) && sc->made && sc->fs->layers[layer].upper && name) {
		/* A new inode: no metacopy, no origin to read (namei_lookup_made()). */
		scan_add(sc, layer, &st, -1, NULL);
		sc->key.check = layer_handle_check(dir.fd, name);
		return SCAN_STOP;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (S_ISREG(st.st_mode) && (r = check_metacopy(sc, dir.fd, layer, name, path)) < 0)
			return r;
		scan_add(sc, layer, &st, -1, NULL);
		/* A copied-up file keeps the identity (and st_ino) of the file it came from. */
		struct node_key origin;
		int orig = sc->fs->layers[layer].upper && name
				   ? find_origin(sc, dir.fd, name, &st, layer, &origin)
				   : -ENODATA;
		if (orig == 0) {
			sc->key = origin;
			sc->indexed = index_upper_keeps_nlink(sc->fs, dir.fd, name, &st);
		} else if (!sc->fs->layers[layer].upper && name) {
			find_in_index(sc, layer, dir.fd, name, &st);
		} else if (name) {
			/* An upper-only file: its identity is its own inode, which a later file
			 * may reuse (store across mounts, export_store.h): mark the inode. */
			sc->key.check = layer_handle_check(dir.fd, name);
		}
		return SCAN_STOP;
	}
	int fd = name ? layer_openat(dir.fd, name, O_PATH | O_DIRECTORY, 0) : dup(dir.fd);
	if (fd < 0)
		return name ? fd : -errno;
	int opaque = examine_dir(sc, fd, layers_below, layer, name, path);
	/* Best effort: a failure changes nothing shown (the kernel fails the lookup). */
	if (opaque >= 0 && sc->stack->len == 1 && !sc->fs->layers[layer].upper)
		fix_origin(sc, fd, layer);
	if (opaque < 0) {
		close(fd);
		return opaque;
	}
	scan_add(sc, layer, &st, fd, g_steal_pointer(&path));
	return opaque ? SCAN_STOP : SCAN_NEXT;
}

static int check_name(const char *name)
{
	size_t len = strlen(name);
	/* The FUSE module passes names up to 1024 bytes: the filesystem must refuse long ones. */
	if (len > NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	if (len == 0 || strchr(name, '/'))
		return -EINVAL;
	return 0;
}

int namei_check_request_name(const char *name, int dot, int dotdot)
{
	int r = check_name(name);
	if (r == 0 && strcmp(name, ".") == 0)
		r = -dot;
	else if (r == 0 && strcmp(name, "..") == 0)
		r = -dotdot;
	return r;
}

/* Closes the fds a scan still owns and frees it. */
static void scan_clear(struct scan *sc)
{
	for (guint i = 0; i < sc->stack->len; i++) {
		struct node_layer *nl = &g_array_index(sc->stack, struct node_layer, i);
		if (nl->fd >= 0)
			close(nl->fd);
		g_free(nl->path);
	}
	g_array_free(sc->stack, TRUE);
	g_free(sc->redirect);
	g_free(sc->index_hex);
}

/* Builds the candidate node from a scan; its fds are offered to the fd cache, its paths moved. */
static struct node *node_from_scan(struct scan *sc)
{
	struct node *n = node_new(sc->name, sc->top.st_mode & S_IFMT, sc->key);
	struct node_stack *s = inode_stack_new(sc->stack->len);
	for (unsigned i = 0; i < s->n; i++) {
		struct node_layer *src = &g_array_index(sc->stack, struct node_layer, i);
		s->l[i].layer = src->layer;
		s->l[i].path = g_steal_pointer(&src->path);
		s->l[i].dev = src->dev;
		s->l[i].ino = src->ino;
		if (src->fd >= 0)
			inode_offer_dirfd(sc->fs, s, i, src->fd);
		src->fd = -1;
	}
	s->merged = S_ISDIR(n->type) && s->n > 1;
	inode_stack_publish(n, s);
	n->indexed = sc->indexed;
	n->lower_nlink = sc->lower_nlink;
	n->split = sc->split;
	n->index_name = g_steal_pointer(&sc->index_hex);
	return n;
}

static int scan(struct plyfs *fs, struct node *parent, const char *name, bool made,
		const struct namei_listed *listed, struct node **fresh, struct stat *st)
{
	int r = check_name(name);
	if (r < 0)
		return r;
	if (!S_ISDIR(parent->type))
		return -ENOTDIR;

	struct scan sc = {
		.fs = fs,
		.parent = parent,
		.ps = node_stack(parent),
		.name = name,
		.stack = g_array_new(FALSE, FALSE, sizeof(struct node_layer)),
		.made = made,
		.listed = listed,
	};
	const struct node_stack *root = node_stack(node_table_root(fs->nodes));
	for (unsigned slot = 0; slot < sc.ps->n; slot++) {
		r = scan_layer(&sc, slot);
		if (r != SCAN_NEXT)
			break;
		if (sc.redirect && sc.redirect_abs && sc.ps != root) {
			/* Continue in the layers below this one, all of them: the root's stack
			 * holds every layer, slot i being layer i. */
			slot = (unsigned)sc.ps->l[slot].layer;
			sc.ps = root;
		}
	}
	if (r >= 0 && sc.stack->len > 0) {
		/* A directory identified by its upper inode (no lower part took the identity over):
		 * mark the inode, as for an upper-only file. Only now, once the scan is complete,
		 * so that a merged directory costs no name_to_handle_at. */
		const struct node_layer *top = &g_array_index(sc.stack, struct node_layer, 0);
		if (S_ISDIR(sc.top.st_mode) && fs->layers[top->layer].upper && !sc.have_lower_key)
			sc.key.check = layer_handle_check(top->fd, NULL);
		*fresh = node_from_scan(&sc);
		*st = sc.top;
	}
	r = r < 0 ? r : (sc.stack->len ? 0 : -ENOENT);
	scan_clear(&sc);
	return r;
}

int namei_scan(struct plyfs *fs, struct node *parent, const char *name, struct node **fresh,
	       struct stat *st)
{
	return scan(fs, parent, name, false, NULL, fresh, st);
}

static int lookup(struct plyfs *fs, struct node *parent, const char *name, bool made,
		  const struct namei_listed *listed, struct node **out, struct stat *st)
{
	struct node *fresh;
	int r = scan(fs, parent, name, made, listed, &fresh, st);
	if (r < 0)
		return r;
	/* `st` is the top entry's, in the layer on top of the stack the scan built. */
	int layer = inode_top_layer(fresh);
	bool idmapped = fs->layers[layer].idmapped;
	*out = node_table_insert_lookup(fs->nodes, parent, fresh);
	if (!*out)
		return -ENOSPC; /* no nodeid left (node.h, NODE_ID_LIMIT) */
	/* Another name of a hard-linked file: the one a copy-up takes next (index.h). */
	index_note_name(fs, *out, parent, name, layer);
	/* A copied-up file keyed by its origin: found by its upper inode too (node.h, IDENTITY). */
	const struct node_layer *top = &node_stack(*out)->l[0];
	if (!S_ISDIR((*out)->type) && fs->layers[top->layer].upper && top->ino)
		node_table_set_upper(fs->nodes, *out, top->dev, top->ino);
	/* A file in the index shows the index copy and the merged link count, not the lower; with
	 * xattr_permissions the attributes come from the top entry's xattr (override.h). */
	if (__atomic_load_n(&(*out)->indexed, __ATOMIC_ACQUIRE) || override_on(fs)) {
		int r = inode_getattr(fs, *out, st);
		if (r < 0) {
			node_table_forget(fs->nodes, (*out)->nodeid, 1);
			*out = node_put(fs->nodes, *out);
		}
		return r;
	}
	inode_fill_attr(fs, *out, st, idmapped);
	return 0;
}

int namei_lookup(struct plyfs *fs, struct node *parent, const char *name, struct node **out,
		 struct stat *st)
{
	return lookup(fs, parent, name, false, NULL, out, st);
}

int namei_lookup_listed(struct plyfs *fs, struct node *parent, const char *name,
			const struct namei_listed *listed, struct node **out, struct stat *st)
{
	return lookup(fs, parent, name, false, listed, out, st);
}

int namei_lookup_made(struct plyfs *fs, struct node *parent, const char *name, struct node **out,
		      struct stat *st)
{
	return lookup(fs, parent, name, true, NULL, out, st);
}

int namei_lookup_dot(struct plyfs *fs, struct node *dir, const char *name, struct node **out,
		     struct stat *st)
{
	struct node *n;
	if (strcmp(name, ".") == 0) {
		n = node_ref(fs->nodes, dir);
	} else {
		n = node_parent_name(fs->nodes, dir, NULL);
		if (!n)
			n = node_ref(fs->nodes, dir); /* the root's parent is the root */
	}
	int r = inode_getattr(fs, n, st);
	if (r < 0) {
		node_put(fs->nodes, n);
		return r;
	}
	node_table_add_lookup(fs->nodes, n);
	*out = n;
	return 0;
}
