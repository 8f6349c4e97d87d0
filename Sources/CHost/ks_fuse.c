// See include/ks_fuse.h for why these exist.
#define _GNU_SOURCE
#include "ks_fuse.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

const int ks_fuse_o_tmpfile = O_TMPFILE;
const int ks_fuse_o_direct = O_DIRECT;
const int ks_fuse_o_noatime = O_NOATIME;
const int ks_fuse_at_empty_path = AT_EMPTY_PATH;
const long ks_fuse_utime_now = UTIME_NOW;
const long ks_fuse_utime_omit = UTIME_OMIT;
const int ks_fuse_seek_data = SEEK_DATA;
const int ks_fuse_seek_hole = SEEK_HOLE;
const unsigned ks_fuse_rename_noreplace = RENAME_NOREPLACE;
const unsigned ks_fuse_rename_exchange = RENAME_EXCHANGE;
const unsigned ks_fuse_rename_whiteout = RENAME_WHITEOUT;
const uint64_t ks_fuse_resolve_beneath = RESOLVE_BENEATH;
const uint64_t ks_fuse_resolve_no_magiclinks = RESOLVE_NO_MAGICLINKS;
const uint64_t ks_fuse_resolve_no_symlinks = RESOLVE_NO_SYMLINKS;
const int ks_fuse_xattr_create = XATTR_CREATE;
const int ks_fuse_xattr_replace = XATTR_REPLACE;

const struct ks_fuse_abi ks_fuse_abi = {
    .in_header = sizeof(struct fuse_in_header),
    .out_header = sizeof(struct fuse_out_header),
    .init_in = sizeof(struct fuse_init_in),
    .init_out = sizeof(struct fuse_init_out),
    .entry_out = sizeof(struct fuse_entry_out),
    .attr_out = sizeof(struct fuse_attr_out),
    .attr = sizeof(struct fuse_attr),
    .open_out = sizeof(struct fuse_open_out),
    .write_out = sizeof(struct fuse_write_out),
    .statfs_out = sizeof(struct fuse_statfs_out),
    .getxattr_out = sizeof(struct fuse_getxattr_out),
    .lseek_out = sizeof(struct fuse_lseek_out),
    .dirent = FUSE_NAME_OFFSET,
    .direntplus = FUSE_NAME_OFFSET_DIRENTPLUS,
    .setattr_in = sizeof(struct fuse_setattr_in),
    .read_in = sizeof(struct fuse_read_in),
    .write_in = sizeof(struct fuse_write_in),
    .create_in = sizeof(struct fuse_create_in),
    .mknod_in = sizeof(struct fuse_mknod_in),
    .mkdir_in = sizeof(struct fuse_mkdir_in),
    .rename2_in = sizeof(struct fuse_rename2_in),
    .link_in = sizeof(struct fuse_link_in),
    .release_in = sizeof(struct fuse_release_in),
    .flush_in = sizeof(struct fuse_flush_in),
    .fsync_in = sizeof(struct fuse_fsync_in),
    .setxattr_in_compat = FUSE_COMPAT_SETXATTR_IN_SIZE,
    .getxattr_in = sizeof(struct fuse_getxattr_in),
    .access_in = sizeof(struct fuse_access_in),
    .fallocate_in = sizeof(struct fuse_fallocate_in),
    .lseek_in = sizeof(struct fuse_lseek_in),
    .getattr_in = sizeof(struct fuse_getattr_in),
    .open_in = sizeof(struct fuse_open_in),
    .batch_forget_in = sizeof(struct fuse_batch_forget_in),
    .forget_one = sizeof(struct fuse_forget_one),
    .entry_out_attr = offsetof(struct fuse_entry_out, attr),
    .attr_mode = offsetof(struct fuse_attr, mode),
    .attr_rdev = offsetof(struct fuse_attr, rdev),
    .setattr_in_mode = offsetof(struct fuse_setattr_in, mode),
    .setattr_in_uid = offsetof(struct fuse_setattr_in, uid),
    .init_out_max_write = offsetof(struct fuse_init_out, max_write),
    .init_out_max_pages = offsetof(struct fuse_init_out, max_pages),
    .init_out_flags2 = offsetof(struct fuse_init_out, flags2),
    .kstatfs_namelen = offsetof(struct fuse_kstatfs, namelen),
};

static long result(long rc) { return rc < 0 ? -errno : rc; }

int ks_fuse_openat2(int dirfd, const char *name, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return (int)result(syscall(SYS_openat2, dirfd, name, &how, sizeof(how)));
}

int ks_fuse_renameat2(int olddirfd, const char *oldname, int newdirfd, const char *newname,
                      unsigned flags) {
    return (int)result(syscall(SYS_renameat2, olddirfd, oldname, newdirfd, newname, flags));
}

long ks_fuse_getdents64(int fd, void *buf, size_t size) {
    return result(syscall(SYS_getdents64, fd, buf, size));
}

// A readable descriptor of the inode behind fd `fd_name` of `proc_fd` (/proc/self/fd): the f*xattr
// calls refuse O_PATH descriptors, and a path through /proc would need /proc in the thread's root.
static int open_for_xattr(int proc_fd, const char *fd_name) {
    return openat(proc_fd, fd_name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}

long ks_fuse_getxattr(int proc_fd, const char *fd_name, const char *name, void *value, size_t size) {
    int fd = open_for_xattr(proc_fd, fd_name);
    if (fd < 0) return -errno;
    long r = result(fgetxattr(fd, name, value, size));
    close(fd);
    return r;
}

long ks_fuse_listxattr(int proc_fd, const char *fd_name, char *list, size_t size) {
    int fd = open_for_xattr(proc_fd, fd_name);
    if (fd < 0) return -errno;
    long r = result(flistxattr(fd, list, size));
    close(fd);
    return r;
}

int ks_fuse_setxattr(int proc_fd, const char *fd_name, const char *name, const void *value, size_t size, int flags) {
    int fd = open_for_xattr(proc_fd, fd_name);
    if (fd < 0) return -errno;
    int r = (int)result(fsetxattr(fd, name, value, size, flags));
    close(fd);
    return r;
}

int ks_fuse_removexattr(int proc_fd, const char *fd_name, const char *name) {
    int fd = open_for_xattr(proc_fd, fd_name);
    if (fd < 0) return -errno;
    int r = (int)result(fremovexattr(fd, name));
    close(fd);
    return r;
}

int64_t ks_fuse_fstatfs_type(int fd) {
    struct statfs st;
    if (fstatfs(fd, &st) < 0) return -errno;
    return (int64_t)st.f_type;
}

int ks_fuse_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return (int)result(fallocate(fd, mode, offset, length));
}
