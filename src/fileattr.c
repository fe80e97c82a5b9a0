// SPDX-License-Identifier: GPL-2.0-or-later
/* fileattr.c - chattr/lsattr through the mount and the +i/+a protection flags (see fileattr.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autofd.h"
#include "copy_up.h"
#include "fileattr.h"
#include "inode.h"
#include "ovl_names.h"

#define PROT_FLAGS     (FS_APPEND_FL | FS_IMMUTABLE_FL)
#define PROT_XFLAGS    (FS_XFLAG_APPEND | FS_XFLAG_IMMUTABLE)
#define COPY_FLAGS     (FS_SYNC_FL | FS_NOATIME_FL) /* the kernel's OVL_COPY_FS_FLAGS_MASK */
#define FILEATTR_KNOWN (1u << 31)		    /* in node.prot: the flags were read */
#define PROTATTR_MAX   32			    /* the kernel's OVL_PROTATTR_MAX */

static char *protattr_name(const struct plyfs *fs)
{
	return g_strconcat(fs->xattr_prefix, OVL_XATTR_PROTATTR_SUFFIX, NULL);
}

/* The flags recorded in protattr at (dirfd, name); 0 for none or an invalid value (the kernel
 * ignores one it cannot parse: only 'a' and 'i'). */
static unsigned read_protattr(const struct plyfs *fs, int dirfd, const char *name)
{
	g_autofree char *xname = protattr_name(fs);
	char buf[PROTATTR_MAX];
	ssize_t len = layer_getxattr(dirfd, name, xname, buf, sizeof(buf));
	unsigned flags = 0;
	for (ssize_t i = 0; i < len; i++) {
		if (buf[i] == 'a')
			flags |= FS_APPEND_FL;
		else if (buf[i] == 'i')
			flags |= FS_IMMUTABLE_FL;
		else
			return 0;
	}
	return flags;
}

/* Records the protection flags of `flags` at (dirfd, name), or removes the record when there are
 * none and `had` some (the kernel's ovl_set_protattr()). */
static int write_protattr(const struct plyfs *fs, int dirfd, const char *name, unsigned flags,
			  bool had)
{
	g_autofree char *xname = protattr_name(fs);
	char buf[2];
	size_t len = 0;
	if (flags & FS_APPEND_FL)
		buf[len++] = 'a';
	if (flags & FS_IMMUTABLE_FL)
		buf[len++] = 'i';
	if (len)
		return layer_setxattr(dirfd, name, xname, buf, len, 0);
	if (!had)
		return 0;
	int r = layer_removexattr(dirfd, name, xname);
	return r == -ENODATA || r == -EOPNOTSUPP ? 0 : r;
}

/* Opens the entry (dirfd, name) (name NULL: dirfd itself) for the fileattr ioctls. */
static int open_entry(int dirfd, const char *name, mode_t mode)
{
	int flags = O_RDONLY | O_NONBLOCK | (S_ISDIR(mode) ? O_DIRECTORY : 0);
	/* A reopen goes through the fd's magic link, which O_NOFOLLOW would refuse. */
	return name ? layer_openat(dirfd, name, flags | O_NOFOLLOW, 0) : layer_reopen(dirfd, flags);
}

static unsigned read_prot(struct plyfs *fs, struct node *n, const struct lfd *loc)
{
	uint64_t attrs = 0;
	unsigned flags = 0;
	if (layer_statx_attributes(loc->fd, loc->name, &attrs) == 0) {
		if (attrs & STATX_ATTR_APPEND)
			flags |= FS_APPEND_FL;
		if (attrs & STATX_ATTR_IMMUTABLE)
			flags |= FS_IMMUTABLE_FL;
	}
	if (inode_has_upper(fs, n))
		flags |= read_protattr(fs, loc->fd, loc->name);
	return flags;
}

/* n's +i/+a flags, read once. Unreadable: none (the operation then meets the layer's own). */
static unsigned node_prot(struct plyfs *fs, struct node *n)
{
	unsigned p = __atomic_load_n(&n->prot, __ATOMIC_ACQUIRE);
	if (p & FILEATTR_KNOWN)
		return p & PROT_FLAGS;
	auto_lfd struct lfd loc = LFD_INIT;
	if (inode_locate(fs, n, &loc) < 0)
		return 0;
	p = read_prot(fs, n, &loc);
	__atomic_store_n(&n->prot, p | FILEATTR_KNOWN, __ATOMIC_RELEASE);
	return p;
}

void fileattr_note_new(struct node *n)
{
	unsigned unknown = 0;
	__atomic_compare_exchange_n(&n->prot, &unknown, FILEATTR_KNOWN, false, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
}

int fileattr_check(struct plyfs *fs, struct node *n, enum fileattr_use use)
{
	unsigned deny = PROT_FLAGS; /* most uses: either flag forbids them */
	if (use == FA_DIR_ADD || use == FA_TOUCH || use == FA_APPEND_OPEN)
		deny = FS_IMMUTABLE_FL;
	return (node_prot(fs, n) & deny) ? -EPERM : 0;
}

/* GETFLAGS/FSGETXATTR: the top entry's own flags plus n's protection flags. */
static int get_attrs(struct plyfs *fs, struct node *n, unsigned cmd, void *out)
{
	auto_lfd struct lfd loc = LFD_INIT;
	int r = inode_locate(fs, n, &loc);
	autofd int fd = r < 0 ? r : open_entry(loc.fd, loc.name, n->type);
	if (fd < 0)
		return fd;
	r = layer_fileattr(fd, cmd, out);
	if (r < 0)
		return r;
	unsigned prot = node_prot(fs, n);
	if (cmd == FS_IOC_GETFLAGS) {
		*(unsigned *)out |= prot;
	} else {
		struct fsxattr *fa = out;
		fa->fsx_xflags |= (prot & FS_APPEND_FL ? FS_XFLAG_APPEND : 0) |
				  (prot & FS_IMMUTABLE_FL ? FS_XFLAG_IMMUTABLE : 0);
	}
	return 0;
}

/* SETFLAGS/FSSETXATTR: copy-up, the protection flags into protattr, the rest onto the upper
 * inode (the kernel's ovl_fileattr_set()). */
static int set_attrs(struct plyfs *fs, struct node *n, unsigned cmd, const void *in)
{
	unsigned flags = 0;
	struct fsxattr fa;
	unsigned prot;
	if (cmd == FS_IOC_SETFLAGS) {
		memcpy(&flags, in, sizeof(flags));
		prot = flags & PROT_FLAGS;
		flags &= ~PROT_FLAGS;
	} else {
		memcpy(&fa, in, sizeof(fa));
		prot = (fa.fsx_xflags & FS_XFLAG_APPEND ? FS_APPEND_FL : 0) |
		       (fa.fsx_xflags & FS_XFLAG_IMMUTABLE ? FS_IMMUTABLE_FL : 0);
		fa.fsx_xflags &= ~PROT_XFLAGS;
	}
	bool had = node_prot(fs, n) != 0;
	int r = copy_up(fs, n, true);
	auto_lfd struct lfd loc = LFD_INIT;
	if (r == 0)
		r = inode_locate(fs, n, &loc);
	if (r == 0)
		r = write_protattr(fs, loc.fd, loc.name, prot, had);
	if (r < 0)
		return r;
	__atomic_store_n(&n->prot, prot | FILEATTR_KNOWN, __ATOMIC_RELEASE);
	autofd int fd = open_entry(loc.fd, loc.name, n->type);
	if (fd < 0)
		return fd;
	return layer_fileattr(fd, cmd, cmd == FS_IOC_SETFLAGS ? (void *)&flags : (void *)&fa);
}

int fileattr_ioctl(struct plyfs *fs, struct node *n, unsigned cmd, const void *in, size_t in_size,
		   void *out, size_t out_size, size_t *out_len)
{
	*out_len = 0;
	if (!S_ISREG(n->type) && !S_ISDIR(n->type))
		return -ENOTTY;
	int r;
	switch (cmd) {
	case FS_IOC_GETFLAGS:
		if (out_size < sizeof(unsigned))
			return -EINVAL;
		r = get_attrs(fs, n, FS_IOC_GETFLAGS, out);
		*out_len = r == 0 ? sizeof(unsigned) : 0;
		return r;
	case FS_IOC_FSGETXATTR:
		if (out_size < sizeof(struct fsxattr))
			return -EINVAL;
		r = get_attrs(fs, n, cmd, out);
		*out_len = r == 0 ? sizeof(struct fsxattr) : 0;
		return r;
	case FS_IOC_SETFLAGS:
		if (in_size < sizeof(unsigned))
			return -EINVAL;
		return set_attrs(fs, n, FS_IOC_SETFLAGS, in);
	case FS_IOC_FSSETXATTR:
		if (in_size < sizeof(struct fsxattr))
			return -EINVAL;
		return set_attrs(fs, n, cmd, in);
	default:
		return -ENOTTY;
	}
}

int fileattr_copy_up(struct plyfs *fs, int src, int sdir, const char *sname, int dst, int ddir,
		     const char *dname, mode_t mode)
{
	if (!S_ISREG(mode) && !S_ISDIR(mode))
		return 0;
	autofd int own_src = src >= 0 ? -1 : open_entry(sdir, sname, mode);
	if (src < 0 && own_src < 0)
		return own_src;
	unsigned flags = 0;
	int r = layer_fileattr(src >= 0 ? src : own_src, FS_IOC_GETFLAGS, &flags);
	if (r == -ENOTTY || r == -EINVAL || r == -EOPNOTSUPP)
		return 0; /* no file attributes on the lower filesystem */
	if (r < 0)
		return r;
	if (flags & PROT_FLAGS) {
		r = dst >= 0 ? write_protattr(fs, dst, NULL, flags, false)
			     : write_protattr(fs, ddir, dname, flags, false);
		if (r < 0)
			return r;
	}
	if (!(flags & COPY_FLAGS))
		return 0;
	autofd int own_dst = dst >= 0 ? -1 : open_entry(ddir, dname, mode);
	int fd = dst >= 0 ? dst : own_dst;
	unsigned up = 0;
	r = fd < 0 ? fd : layer_fileattr(fd, FS_IOC_GETFLAGS, &up);
	if (r == -ENOTTY || r == -EINVAL || r == -EOPNOTSUPP)
		return 0; /* the kernel, too, goes on without them */
	if (r < 0)
		return r;
	up = (up & ~COPY_FLAGS) | (flags & COPY_FLAGS);
	return layer_fileattr(fd, FS_IOC_SETFLAGS, &up);
}
