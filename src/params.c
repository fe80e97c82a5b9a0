// SPDX-License-Identifier: GPL-2.0-or-later
/* params.c - the command line: one fuse_opt table, its key handler, and validation. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <fuse_opt.h>

#include "mount_flags.h"
#include "node.h"
#include "params.h"

/*
 * How an option is applied. Each fuse_opt entry's key is `kind | (field offset << 8)`, so the
 * table below is the whole description of an option: its spelling, how its value is checked,
 * and which member of struct plyfs_params it sets.
 */
enum opt_kind {
	K_TRUE,	    /* bare word: sets a bool member */
	K_DEBUG,    /* -d, debug: debug output, implies -f as in libfuse */
	K_BOOL01,   /* NAME=0|1 into a bool member */
	K_INT012,   /* NAME=0|1|2 into an int-sized member */
	K_UUID,	    /* uuid=off|null|auto|on into an enum uuid_mode member */
	K_ID,	    /* NAME=N, a uid/gid (0..2^32-2) into a long member */
	K_COUNT,    /* NAME=N, a count (0..2^32-1) into a long member */
	K_TIMEOUT,  /* NAME=SECONDS (float) into a double member */
	K_PATH,	    /* NAME=PATH (unescaped, not empty) into a char * member */
	K_LOWERDIR, /* lowerdir=A:B:C */
	K_IDMAP,    /* NAME=A:B:N... into a struct idmap member */
	K_GENERIC,  /* understood by libfuse's fuse_session_new(): forwarded as written */
	K_MAX_READ, /* max_read=N: checked here, then forwarded */
	K_RO,	    /* ro, dev: forwarded, and sets the member (read_only, dev) */
	K_RW,	    /* rw, nodev: forwarded, and clears it */
	K_FSNAME,   /* fsname=: the last one is forwarded, instead of the default fsname */
	K_SUBTYPE,  /* subtype=: the last one is forwarded, instead of the default subtype */
	K_ONOFF,    /* NAME=on|off into a bool member (kernel overlayfs' spelling) */
	K_OFFON,    /* NAME=on|off into a bool member that is true for off */
	K_REDIRECT, /* redirect_dir=on|follow|nofollow|off into an enum redirect_mode member */
	K_XINO,	    /* xino=on|auto|off into an enum xino_mode member */
	K_FLAG,	    /* a mount flag libfuse does not take: recorded in mflags only */
	K_MOUNTED,  /* what mountinfo shows of a live FUSE mount: accepted with remount only */
	K_DROP,	    /* accepted without effect here (mount(8)-only, compat, or always set) */
};

/* The words of an option that takes one of a few, and what each one stores. */
struct choice {
	const char *word;
	int value;
};

static const struct choice onoff_choices[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const struct choice offon_choices[] = {{"on", 0}, {"off", 1}, {NULL, 0}};
/* "off" is "follow": see enum redirect_mode. */
static const struct choice redirect_choices[] = {{"on", REDIRECT_ON},
						 {"follow", REDIRECT_FOLLOW},
						 {"nofollow", REDIRECT_NOFOLLOW},
						 {"off", REDIRECT_FOLLOW},
						 {NULL, 0}};
static const struct choice xino_choices[] = {
	{"on", XINO_ON}, {"auto", XINO_AUTO}, {"off", XINO_OFF}, {NULL, 0}};
/* uuid=: the kernel's four words (params.h, enum uuid_mode). */
static const struct choice uuid_choices[] = {
	{"null", UUID_NULL}, {"off", UUID_OFF}, {"on", UUID_ON}, {"auto", UUID_AUTO}, {NULL, 0}};

#define KIND_BITS		 8
#define FIELD(m)		 ((int)(offsetof(struct plyfs_params, m) << KIND_BITS))
#define OPT(templ, kind, member) FUSE_OPT_KEY(templ, (kind) | FIELD(member))
#define OPT_NF(templ, kind)	 FUSE_OPT_KEY(templ, kind)

/* K_INT012 writes an int through the member's address. */
_Static_assert(sizeof(enum xattr_mode) == sizeof(int), "noxattrs must be int-sized");
/* K_REDIRECT and K_XINO too. */
_Static_assert(sizeof(enum redirect_mode) == sizeof(int), "redirect_dir must be int-sized");
_Static_assert(sizeof(enum xino_mode) == sizeof(int), "xino must be int-sized");
_Static_assert(sizeof(enum uuid_mode) == sizeof(int), "uuid must be int-sized");

/*
 * Every spelling plyfs accepts. A template ending in '=' matches any value. The generic group
 * is exactly what libfuse 3.14's fuse_session_new() was found to accept; the dropped group is
 * what mount(8)/fstab users pass but fuse_session_new() would reject.
 */
static const struct fuse_opt plyfs_opts[] = {
	/* plyfs' own, fuse-overlayfs compatible */
	OPT_NF("lowerdir=", K_LOWERDIR),
	OPT("upperdir=", K_PATH, upperdir),
	OPT("workdir=", K_PATH, workdir),
	OPT("uidmapping=", K_IDMAP, uidmap),
	OPT("gidmapping=", K_IDMAP, gidmap),
	OPT("squash_to_root", K_TRUE, squash_to_root),
	OPT("squash_to_uid=", K_ID, squash_to_uid),
	OPT("squash_to_gid=", K_ID, squash_to_gid),
	OPT("static_nlink", K_TRUE, static_nlink),
	OPT("noacl", K_TRUE, noacl),
	OPT("fsync=", K_BOOL01, fsync),
	OPT("writeback=", K_BOOL01, writeback),
	OPT("volatile", K_TRUE, volatile_),
	OPT("timeout=", K_TIMEOUT, timeout),
	OPT("xattr_permissions=", K_INT012, xattr_permissions),
	OPT("noxattrs=", K_INT012, noxattrs),
	OPT("ino32_t", K_TRUE, ino32),
	OPT("forgotten_records=", K_COUNT, forgotten_records),
	OPT("handles_interval=", K_COUNT, handles_interval),
	OPT("userxattr", K_TRUE, userxattr),
	/* kernel overlayfs' own */
	OPT("uuid=", K_UUID, uuid),
	OPT_NF("debug", K_DEBUG),
	/* kernel overlayfs' options, with its meaning (params.h) */
	OPT("redirect_dir=", K_REDIRECT, redirect_dir),
	OPT("nfs_export=", K_OFFON, nfs_export_off),
	OPT("xino=", K_XINO, xino),
	OPT("metacopy=", K_ONOFF, metacopy),
	OPT("index=", K_OFFON, index_off),
	/* accepted and ignored: SELinux label (fuse-overlayfs ignores it too) and the
	 * fuse-overlayfs tuning options that have no meaning in plyfs */
	OPT_NF("context=", K_DROP),
	OPT_NF("threaded=", K_DROP),
	OPT_NF("fast_ino=", K_DROP),
	OPT_NF("plugins=", K_DROP),

	/* command line flags */
	OPT("-f", K_TRUE, foreground),
	OPT_NF("-d", K_DEBUG),
	OPT("-s", K_TRUE, single_thread),
	OPT("-h", K_TRUE, show_help),
	OPT("--help", K_TRUE, show_help),
	OPT("-V", K_TRUE, show_version),
	OPT("--version", K_TRUE, show_version),

	/* generic options fuse_session_new() accepts: handed to it */
	OPT("ro", K_RO, read_only),
	OPT("rw", K_RW, read_only),
	OPT("dev", K_RO, dev),
	OPT("nodev", K_RW, dev),
	OPT_NF("suid", K_GENERIC),
	OPT_NF("nosuid", K_GENERIC),
	OPT_NF("exec", K_GENERIC),
	OPT_NF("noexec", K_GENERIC),
	OPT_NF("atime", K_GENERIC),
	OPT_NF("noatime", K_GENERIC),
	OPT_NF("sync", K_GENERIC),
	OPT_NF("async", K_GENERIC),
	OPT_NF("dirsync", K_GENERIC),
	OPT_NF("allow_other", K_GENERIC),
	OPT_NF("allow_root", K_GENERIC),
	OPT_NF("blkdev", K_GENERIC),
	OPT_NF("auto_unmount", K_GENERIC),
	OPT_NF("max_read=", K_MAX_READ),
	OPT_NF("fsname=", K_FSNAME),
	OPT_NF("subtype=", K_SUBTYPE),
	OPT_NF("default_permissions", K_DROP), /* always forwarded anyway */

	/* generic options fuse_session_new() rejects: set on the mount by plyfs (mount_flags.h) */
	OPT_NF("diratime", K_FLAG),
	OPT_NF("nodiratime", K_FLAG),
	OPT_NF("relatime", K_FLAG),
	OPT_NF("norelatime", K_FLAG),
	OPT_NF("strictatime", K_FLAG),
	OPT_NF("nostrictatime", K_FLAG),
	OPT_NF("lazytime", K_FLAG),
	OPT_NF("nolazytime", K_FLAG),
	/* mount -o remount: mount(8) passes the live mount's options back (mount_flags.h) */
	OPT("remount", K_TRUE, remount),
	OPT_NF("user_id=", K_MOUNTED),
	OPT_NF("group_id=", K_MOUNTED),
	OPT_NF("rootmode=", K_MOUNTED),
	OPT_NF("fd=", K_MOUNTED),
	OPT_NF("blksize=", K_MOUNTED),
	/* only meaningful to mount(8)/fstab; "x-*" is matched in unknown_option() because a
	 * fuse_opt template can only end in '=' */
	OPT_NF("defaults", K_DROP),
	OPT_NF("auto", K_DROP),
	OPT_NF("noauto", K_DROP),
	OPT_NF("user", K_DROP),
	OPT_NF("user=", K_DROP),
	OPT_NF("users", K_DROP),
	OPT_NF("nouser", K_DROP),
	OPT_NF("owner", K_DROP),
	OPT_NF("group", K_DROP),
	OPT_NF("nofail", K_DROP),
	OPT_NF("_netdev", K_DROP),
	OPT_NF("comment=", K_DROP),
	FUSE_OPT_END,
};

struct parse_ctx {
	struct plyfs_params *p;
	GString *fuse_opts; /* generic options for libfuse, comma-separated, still escaped */
	char *fsname;	    /* the last "fsname=..." as written (escaped), or NULL */
	char *subtype;	    /* the last "subtype=..." as written, or NULL */
	char *positional[2]; /* SOURCE and MOUNTPOINT, or just MOUNTPOINT */
	char *mounted_opt;   /* the first K_MOUNTED option, refused without remount */
	int n_positional;
	char *err;
};

/*
 * If s[i] opens a double-quoted value (right after '=', closed before ',' or the end, as
 * podman's context="...:s0:c1,c2" is), returns the index of the closing quote, else 0.
 */
static size_t quoted_value_end(const char *s, size_t i)
{
	const char *close;

	if (s[i] != '"' || i == 0 || s[i - 1] != '=')
		return 0;
	close = strchr(s + i + 1, '"');
	if (!close || (close[1] != ',' && close[1] != '\0'))
		return 0;
	return (size_t)(close - s);
}

/*
 * libfuse's option splitter turns "\X" into X and "\NNN" into a byte. Doubling every backslash,
 * and turning "\," into "\\\,", makes it hand back exactly what the user typed (with "\," still
 * keeping a comma inside its option); the escapes are then interpreted here, per option.
 * A comma inside a quoted value comes back as "\," too; the quotes themselves stay.
 */
static char *escape_for_fuse_opt(const char *s)
{
	GString *out = g_string_sized_new(strlen(s) + 16);
	size_t quote_end = 0;

	for (size_t i = 0; s[i]; i++) {
		if (i >= quote_end)
			quote_end = quoted_value_end(s, i);
		if (s[i] == ',' && i < quote_end) {
			g_string_append(out, "\\\\\\,");
			continue;
		}
		if (s[i] != '\\') {
			g_string_append_c(out, s[i]);
			continue;
		}
		g_string_append(out, "\\\\");
		if (s[i + 1] == ',' || s[i + 1] == '\\') {
			g_string_append_c(out, '\\');
			g_string_append_c(out, s[++i]);
		}
	}
	return g_string_free(out, FALSE);
}

/* "\X" becomes X; a lone trailing backslash stays. */
static char *unescape(const char *s)
{
	GString *out = g_string_sized_new(strlen(s));

	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1])
			i++;
		g_string_append_c(out, s[i]);
	}
	return g_string_free(out, FALSE);
}

/* Escapes a value so that libfuse's splitter reads it back unchanged as one option. */
static char *escape_opt_value(const char *s)
{
	GString *out = g_string_sized_new(strlen(s) + 8);

	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' || s[i] == ',')
			g_string_append_c(out, '\\');
		g_string_append_c(out, s[i]);
	}
	return g_string_free(out, FALSE);
}

/* Closes one lowerdir element; an empty one is an error (1-based position in the message). */
static int push_layer(GPtrArray *layers, GString *cur, char **err)
{
	if (cur->len == 0) {
		*err = g_strdup_printf("lowerdir= has an empty layer path (layer %u)",
				       layers->len + 1);
		return -EINVAL;
	}
	g_ptr_array_add(layers, g_strndup(cur->str, cur->len));
	g_string_truncate(cur, 0);
	return 0;
}

char **params_split_lowerdir(const char *value, char **err)
{
	g_autoptr(GPtrArray) layers = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) cur = g_string_new(NULL);

	if (!value || !*value) {
		*err = g_strdup("lowerdir= is empty");
		return NULL;
	}
	for (size_t i = 0; value[i]; i++) {
		if (value[i] == '\\' && value[i + 1]) {
			g_string_append_c(cur, value[++i]);
		} else if (value[i] == ':') {
			if (push_layer(layers, cur, err) < 0)
				return NULL;
		} else {
			g_string_append_c(cur, value[i]);
		}
	}
	if (push_layer(layers, cur, err) < 0)
		return NULL;
	g_ptr_array_add(layers, NULL);
	return (char **)g_ptr_array_free(g_steal_pointer(&layers), FALSE);
}

/* Message for a value that does not fit its option; `arg` is the option as written. */
static int bad_value(struct parse_ctx *c, const char *arg, const char *expected)
{
	c->err = g_strdup_printf("invalid value in option '%s': expected %s", arg, expected);
	return -EINVAL;
}

static int parse_uint(struct parse_ctx *c, const char *arg, const char *val, guint64 max,
		      const char *expected, guint64 *out)
{
	if (!g_ascii_string_to_unsigned(val, 10, 0, max, out, NULL))
		return bad_value(c, arg, expected);
	return 0;
}

static int parse_timeout(struct parse_ctx *c, const char *arg, const char *val, double *out)
{
	char *end = NULL;
	double d;

	errno = 0;
	d = g_ascii_strtod(val, &end);
	if (!*val || *end || errno || !isfinite(d) || d < 0 || d > PARAMS_MAX_TIMEOUT)
		return bad_value(c, arg, "a number of seconds from 0 to 4294967295");
	*out = d;
	return 0;
}

/* A layer option given again would silently drop a layer (mount(8) merges the options of fstab
 * and of the command line): refused, unlike the other options, where the last one wins. */
static int layer_given_twice(struct parse_ctx *c, const char *arg)
{
	size_t n = (size_t)(strchr(arg, '=') - arg);

	c->err =
		g_strdup_printf("option '%s': %.*s= was given already; a layer option may be given "
				"only once",
				arg, (int)n, arg);
	return -EINVAL;
}

static int set_lowerdir(struct parse_ctx *c, const char *arg, const char *raw)
{
	if (c->p->lowerdirs)
		return layer_given_twice(c, arg);
	char **layers = params_split_lowerdir(raw, &c->err);

	if (!layers)
		return -EINVAL;
	c->p->lowerdirs = layers;
	c->p->n_lower = g_strv_length(layers);
	return 0;
}

static int set_path(struct parse_ctx *c, const char *arg, char *val, char **member)
{
	if (!*val)
		return bad_value(c, arg, "a path");
	if (*member)
		return layer_given_twice(c, arg);
	*member = g_strdup(val);
	return 0;
}

static int set_idmap(struct parse_ctx *c, const char *arg, const char *val, struct idmap *map)
{
	g_autofree char *why = NULL;

	idmap_clear(map);
	if (idmap_parse(val, map, &why) < 0) {
		c->err = g_strdup_printf("invalid option '%s': %s", arg, why);
		return -EINVAL;
	}
	return 0;
}

/* Appends one option, as the user wrote it, to the list handed to fuse_session_new(). */
static int forward(struct parse_ctx *c, const char *arg)
{
	g_string_append_c(c->fuse_opts, ',');
	g_string_append(c->fuse_opts, arg);
	return 0;
}

/*
 * fsname= and subtype= end up as strings of the mount(2) call (the source, and the type
 * "fuse.TYPE" or "fuseblk.TYPE"), which the kernel takes shorter than PATH_MAX only: checked here
 * so that the message names the option, not libfuse's "mount failed: Invalid argument". Keeps the
 * option as written in *slot: the last one wins.
 */
static int set_name(struct parse_ctx *c, const char *arg, const char *val, size_t max, char **slot)
{
	size_t len = strlen(val);

	if (len > max) {
		c->err = g_strdup_printf("option '%.*s...' is %zu bytes long: at most %zu allowed",
					 (int)(strchr(arg, '=') - arg + 1 + 16), arg, len, max);
		return -EINVAL;
	}
	g_free(*slot);
	*slot = g_strdup(arg);
	return 0;
}

/* Forwards NAME=N as checked: the text as written would be read by libfuse's own splitter, where
 * "\NNN" is an octal byte, not the digits plyfs checked (found by tests/fuzz/fuzz_params). */
static int forward_number(struct parse_ctx *c, const char *name, guint64 n)
{
	g_string_append_printf(c->fuse_opts, ",%s=%" G_GUINT64_FORMAT, name, n);
	return 0;
}

/* Stores the value of the word `val` names among `ch` (an int member, or a bool for on/off). */
static int set_choice(struct parse_ctx *c, const char *arg, const char *val,
		      const struct choice *ch, void *member, bool is_bool)
{
	g_autoptr(GString) words = g_string_new(NULL);

	for (size_t i = 0; ch[i].word; i++) {
		if (strcmp(val, ch[i].word) == 0) {
			if (is_bool)
				*(bool *)member = ch[i].value;
			else
				*(int *)member = ch[i].value;
			return 0;
		}
		g_string_append_printf(words, "%s%s", i ? (ch[i + 1].word ? ", " : " or ") : "",
				       ch[i].word);
	}
	return bad_value(c, arg, words->str);
}

/* Applies a matched option. `raw` is the text after '=' with the user's escapes still in. */
static int apply_option(struct parse_ctx *c, const char *arg, enum opt_kind kind, void *member)
{
	const char *eq = strchr(arg, '=');
	const char *raw = eq ? eq + 1 : "";
	g_autofree char *val = unescape(raw);
	guint64 u;
	int ret;

	switch (kind) {
	case K_TRUE:
		*(bool *)member = true;
		return 0;
	case K_DEBUG:
		c->p->debug = c->p->foreground = true;
		return 0;
	case K_BOOL01:
		ret = parse_uint(c, arg, val, 1, "0 or 1", &u);
		if (ret == 0)
			*(bool *)member = u;
		return ret;
	case K_INT012:
		ret = parse_uint(c, arg, val, 2, "0, 1 or 2", &u);
		if (ret == 0)
			*(int *)member = (int)u;
		return ret;
	case K_UUID:
		return set_choice(c, arg, val, uuid_choices, member, false);
	case K_ID:
		ret = parse_uint(c, arg, val, UINT32_MAX - 1, "an id from 0 to 4294967294", &u);
		if (ret == 0)
			*(long *)member = (long)u;
		return ret;
	case K_COUNT:
		ret = parse_uint(c, arg, val, UINT32_MAX, "a count from 0 to 4294967295", &u);
		if (ret == 0)
			*(long *)member = (long)u;
		return ret;
	case K_TIMEOUT:
		return parse_timeout(c, arg, val, member);
	case K_PATH:
		return set_path(c, arg, val, member);
	case K_LOWERDIR:
		return set_lowerdir(c, arg, raw);
	case K_IDMAP:
		return set_idmap(c, arg, val, member);
	case K_MAX_READ:
		ret = parse_uint(c, arg, val, UINT_MAX, "a number of bytes", &u);
		return ret < 0 ? ret : forward_number(c, "max_read", u);
	case K_RO:
	case K_RW:
		*(bool *)member = kind == K_RO;
		mount_flags_note(&c->p->mflags, arg);
		return forward(c, arg);
	case K_FSNAME:
		return set_name(c, arg, val, PARAMS_MAX_FSNAME, &c->fsname);
	case K_SUBTYPE:
		return set_name(c, arg, val, PARAMS_MAX_SUBTYPE, &c->subtype);
	case K_GENERIC:
		mount_flags_note(&c->p->mflags, arg);
		return forward(c, arg);
	case K_ONOFF:
		return set_choice(c, arg, val, onoff_choices, member, true);
	case K_OFFON:
		return set_choice(c, arg, val, offon_choices, member, true);
	case K_REDIRECT:
		return set_choice(c, arg, val, redirect_choices, member, false);
	case K_XINO:
		return set_choice(c, arg, val, xino_choices, member, false);
	case K_FLAG:
		mount_flags_note(&c->p->mflags, arg);
		return 0;
	case K_MOUNTED:
		if (!c->mounted_opt)
			c->mounted_opt = g_strdup(arg);
		return 0;
	case K_DROP:
		return 0;
	}
	return bad_value(c, arg, "a known option kind"); /* unreachable: every kind is handled */
}

static int unknown_option(struct parse_ctx *c, const char *arg)
{
	/* ",," in an option string, and fstab's x-* (x-systemd.automount, ...) */
	if (!*arg || g_str_has_prefix(arg, "x-"))
		return 0;
	c->err = g_strdup_printf("unknown option '%s'", arg);
	return -EINVAL;
}

static int add_positional(struct parse_ctx *c, const char *arg)
{
	if (c->n_positional == 2) {
		c->err =
			g_strdup_printf("unexpected argument '%s': SOURCE '%s' and MOUNTPOINT '%s' "
					"were already given",
					arg, c->positional[0], c->positional[1]);
		return -EINVAL;
	}
	c->positional[c->n_positional++] = g_strdup(arg);
	return 0;
}

/* The fuse_opt_parse() callback: every argument and every -o item comes through here once. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_ctx *c = data;
	int ret;

	if (key == FUSE_OPT_KEY_NONOPT)
		ret = add_positional(c, arg);
	else if (key == FUSE_OPT_KEY_OPT)
		ret = unknown_option(c, arg);
	else
		ret = apply_option(c, arg, key & ((1 << KIND_BITS) - 1),
				   (char *)c->p + (key >> KIND_BITS));
	return ret < 0 ? -1 : 0; /* 0: nothing is kept in fuse_opt's output argv */
}

/*
 * Copies argv, escaping the value of every -o (see escape_for_fuse_opt) the way fuse_opt_parse
 * will find it: "-o VALUE", glued "-oVALUE", nothing after "--".
 */
static int escape_argv(int argc, char **argv, GPtrArray *out, char **err)
{
	bool only_positional = false;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (i == 0 || only_positional || a[0] != '-' || a[1] != 'o') {
			only_positional |= i > 0 && strcmp(a, "--") == 0;
			g_ptr_array_add(out, g_strdup(a));
		} else if (a[2]) {
			g_autofree char *value = escape_for_fuse_opt(a + 2);

			g_ptr_array_add(out, g_strconcat("-o", value, NULL));
		} else if (i + 1 < argc) {
			g_ptr_array_add(out, g_strdup("-o"));
			g_ptr_array_add(out, escape_for_fuse_opt(argv[++i]));
		} else {
			*err = g_strdup("missing argument after '-o'");
			return -EINVAL;
		}
	}
	return 0;
}

static void params_init(struct plyfs_params *p)
{
	memset(p, 0, sizeof(*p));
	p->squash_to_uid = -1;
	p->squash_to_gid = -1;
	p->fsync = true;
	p->timeout = PARAMS_DEFAULT_TIMEOUT;
	p->forgotten_records = NODE_RECORD_MAX_DEFAULT;
	p->handles_interval = PARAMS_DEFAULT_HANDLES_INTERVAL;
	p->redirect_dir = REDIRECT_ON;
	p->xino = XINO_AUTO;
	p->uuid = UUID_AUTO; /* the kernel's default */
	p->fuse_args = g_ptr_array_new_with_free_func(g_free);
}

/* Builds fuse_args: argv[0] "-o" "default_permissions,<generic>,fsname=..,subtype=..". */
static void build_fuse_args(struct parse_ctx *c, const char *argv0)
{
	GString *o = g_string_new("default_permissions");

	g_string_append_len(o, c->fuse_opts->str, c->fuse_opts->len);
	if (c->fsname) {
		g_string_append_printf(o, ",%s", c->fsname);
	} else {
		g_autofree char *name = escape_opt_value(c->p->source ? c->p->source : "plyfs");

		g_string_append_printf(o, ",fsname=%s", name);
	}
	g_string_append_printf(o, ",%s", c->subtype ? c->subtype : "subtype=plyfs");
	g_ptr_array_add(c->p->fuse_args, g_strdup(argv0));
	g_ptr_array_add(c->p->fuse_args, g_strdup("-o"));
	g_ptr_array_add(c->p->fuse_args, g_string_free(o, FALSE));
}

int params_parse(int argc, char **argv, struct plyfs_params *p, char **err)
{
	g_autoptr(GPtrArray) escaped = g_ptr_array_new_with_free_func(g_free);
	struct parse_ctx c = {.p = p, .fuse_opts = g_string_new(NULL)};
	const char *argv0 = argc > 0 ? argv[0] : "plyfs";
	int ret;

	params_init(p);
	ret = escape_argv(argc, argv, escaped, &c.err);
	if (ret == 0) {
		struct fuse_args args = FUSE_ARGS_INIT((int)escaped->len, (char **)escaped->pdata);

		if (fuse_opt_parse(&args, &c, plyfs_opts, opt_proc) < 0)
			ret = -EINVAL;
		fuse_opt_free_args(&args);
	}
	if (ret == 0 && c.n_positional > 0) {
		p->mountpoint = g_steal_pointer(&c.positional[c.n_positional - 1]);
		if (c.n_positional == 2)
			p->source = g_steal_pointer(&c.positional[0]);
	}
	if (ret == 0 && !c.fsname && p->source && strlen(p->source) > PARAMS_MAX_FSNAME) {
		c.err = g_strdup_printf("SOURCE '%.16s...' is %zu bytes long: at most %d allowed "
					"(it is the filesystem name)",
					p->source, strlen(p->source), PARAMS_MAX_FSNAME);
		ret = -EINVAL;
	}
	if (ret == 0 && c.mounted_opt && !p->remount) {
		c.err = g_strdup_printf("option '%s' is accepted only with remount", c.mounted_opt);
		ret = -EINVAL;
	}
	if (ret == 0)
		build_fuse_args(&c, argv0);
	g_free(c.mounted_opt);
	g_free(c.positional[0]);
	g_free(c.positional[1]);
	g_free(c.fsname);
	g_free(c.subtype);
	g_string_free(c.fuse_opts, TRUE);
	if (ret < 0)
		*err = c.err ? c.err : g_strdup("cannot parse the command line");
	return ret;
}

/* Without an upper layer nothing can be written: the kernel mount is made read-only too. */
static void force_read_only(struct plyfs_params *p)
{
	p->read_only = true;
	if (p->fuse_args && p->fuse_args->len >= 3) {
		char *o = p->fuse_args->pdata[2];

		p->fuse_args->pdata[2] = g_strconcat(o, ",ro", NULL);
		g_free(o);
	}
}

static int invalid(char **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int invalid(char **err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*err = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool id_ok(long id)
{
	return id == -1 || (id >= 0 && id <= (long)UINT32_MAX - 1);
}

int params_validate(struct plyfs_params *p, char **err)
{
	if (p->show_help || p->show_version)
		return 0;
	if (!p->mountpoint || !*p->mountpoint)
		return invalid(err, "missing MOUNTPOINT");
	if (p->remount)
		return 0; /* the layers are the live mount's: nothing else is used */
	if (!p->lowerdirs || p->n_lower == 0)
		return invalid(err, "missing lowerdir= (at least one lower layer is required)");
	for (size_t i = 0; i < p->n_lower; i++) {
		if (!p->lowerdirs[i] || !*p->lowerdirs[i])
			return invalid(err, "lowerdir= has an empty layer path (layer %zu)", i + 1);
	}
	if (p->upperdir && !p->workdir)
		return invalid(err, "upperdir= needs workdir=");
	if (p->workdir && !p->upperdir)
		return invalid(err, "workdir= needs upperdir=");
	if ((p->upperdir && !*p->upperdir) || (p->workdir && !*p->workdir))
		return invalid(err, "upperdir= and workdir= must not be empty");
	if (!id_ok(p->squash_to_uid))
		return invalid(err, "squash_to_uid=%ld is out of range", p->squash_to_uid);
	if (!id_ok(p->squash_to_gid))
		return invalid(err, "squash_to_gid=%ld is out of range", p->squash_to_gid);
	if (!isfinite(p->timeout) || p->timeout < 0 || p->timeout > PARAMS_MAX_TIMEOUT)
		return invalid(err, "timeout=%g must be a number of seconds from 0 to 4294967295",
			       p->timeout);
	if (p->xattr_permissions < 0 || p->xattr_permissions > 2)
		return invalid(err, "xattr_permissions=%d must be 0, 1 or 2", p->xattr_permissions);
	if ((int)p->noxattrs < 0 || (int)p->noxattrs > 2)
		return invalid(err, "noxattrs=%d must be 0, 1 or 2", (int)p->noxattrs);
	if (p->metacopy)
		return invalid(err,
			       "metacopy=on is not supported: plyfs copies a file's data up with "
			       "its metadata (metacopy=off)");
	if (!p->upperdir)
		force_read_only(p);
	return 0;
}

char **params_fuse_argv(struct plyfs_params *p, int *argc_out)
{
	GPtrArray *a = p->fuse_args;

	if (a->len == 0 || a->pdata[a->len - 1] != NULL)
		g_ptr_array_add(a, NULL);
	*argc_out = (int)a->len - 1;
	return (char **)a->pdata;
}

void params_usage(FILE *out, const char *progname)
{
	fprintf(out,
		"usage: %1$s [-f] [-d] [-s] -o lowerdir=DIR[:DIR...][,OPTS] MOUNTPOINT\n"
		"       %1$s SOURCE MOUNTPOINT -o lowerdir=...[,OPTS]   (mount.fuse3, fstab)\n"
		"       %1$s status [--json] MOUNTPOINT   counters and layer errors of a live mount\n"
		"\n"
		"  -f                     stay in the foreground\n"
		"  -d, -o debug           debug output (implies -f)\n"
		"  -s                     single-threaded\n"
		"  -h, --help             this text\n"
		"  -V, --version          print the version\n"
		"  -o lowerdir=A:B:...    lower layers, top first (\\: \\, \\\\ escape : , \\)\n"
		"  -o upperdir=DIR        writable upper layer (needs workdir; without it: "
		"read-only)\n"
		"  -o workdir=DIR         work directory on the upper layer's filesystem\n"
		"  -o uidmapping=A:B:N[:A:B:N...]  uids A.. in the layers shown as B..\n"
		"  -o gidmapping=A:B:N[:A:B:N...]  gids A.. in the layers shown as B..\n"
		"  -o squash_to_root      show every file as owned by root\n"
		"  -o squash_to_uid=N     show every file as owned by uid N\n"
		"  -o squash_to_gid=N     show every file as owned by gid N\n"
		"  -o static_nlink        report st_nlink 1 for directories\n"
		"  -o noacl               no POSIX ACL support\n"
		"  -o index=on|off        hard-link index (default on, as root); off: the names\n"
		"                         of a lower hard link split at copy-up\n"
		"  -o fsync=0|1           0: skip fsync of copied-up files (default 1)\n"
		"  -o writeback=0|1       the kernel's writeback cache: write(2) fills pages,\n"
		"                         sent in large WRITEs later (default 0)\n"
		"  -o volatile            never fsync, like overlayfs' volatile\n"
		"  -o timeout=SECONDS     entry/attribute cache timeout (default %2$g)\n"
		"  -o xattr_permissions=0|1|2  owner/mode/type in an override_stat xattr\n"
		"  -o noxattrs=0|1|2      1: xattrs fail with ENOTSUP, 2: ignored\n"
		"  -o ino32_t             fold inode numbers into 32 bits\n"
		"  -o forgotten_records=N forgotten files kept resolvable for file handles\n"
		"  -o handles_interval=SECONDS  how often the handle store is updated while\n"
		"                         mounted (default %3$d; 0: at unmount only)\n"
		"  -o userxattr           user.overlay.* xattrs even as root (kernel overlayfs'\n"
		"                         userxattr: no redirects, a lower directory's rename is "
		"EXDEV)\n"
		"  -o redirect_dir=on|follow|nofollow|off\n"
		"                         renaming a lower directory: on (default) writes a\n"
		"                         redirect, else EXDEV; nofollow: redirects on disk are\n"
		"                         not followed (EPERM); off means follow\n"
		"  -o nfs_export=on|off   file handles that outlive the kernel's cache and the\n"
		"                         mount (default on)\n"
		"  -o xino=on|auto|off    layers on several filesystems: the fsid in the high\n"
		"                         bits of st_ino (on, auto: default); off: one filesystem\n"
		"  -o metacopy=off        accepted (metacopy=on is refused)\n"
		"  -o uuid=null|off|on|auto  kernel overlayfs' meaning (default auto)\n"
		"  -o context=..., threaded=, fast_ino=, plugins=\n"
		"                         accepted for fuse-overlayfs compatibility, no effect\n"
		"  -o ro,rw,[no]dev,[no]suid,[no]exec,[no]atime,sync,async,dirsync,allow_other,\n"
		"     allow_root,fsname=,subtype=,max_read=,blkdev,auto_unmount\n"
		"                         generic mount options, passed to libfuse\n"
		"  -o [no]diratime,[no]relatime,[no]strictatime,[no]lazytime\n"
		"                         set on the mount; reads update atime by them\n"
		"  -o remount             apply the generic flags to the live mount MOUNTPOINT\n"
		"                         (what mount -o remount,... runs), then exit\n"
		"  -o defaults,[no]auto,user,users,nouser,owner,group,nofail,_netdev,x-*,\n"
		"     comment=            accepted for mount(8)/fstab, no effect\n",
		progname, PARAMS_DEFAULT_TIMEOUT, PARAMS_DEFAULT_HANDLES_INTERVAL);
}

void params_clear(struct plyfs_params *p)
{
	g_strfreev(p->lowerdirs);
	g_free(p->upperdir);
	g_free(p->workdir);
	g_free(p->mountpoint);
	g_free(p->source);
	idmap_clear(&p->uidmap);
	idmap_clear(&p->gidmap);
	if (p->fuse_args)
		g_ptr_array_unref(p->fuse_args);
	memset(p, 0, sizeof(*p));
}
