// See include/ks_fuse.h for why these exist.
#define _GNU_SOURCE
#include "ks_fuse.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

const int ks_fuse_o_path = O_PATH;
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

long ks_fuse_getxattr(const char *path, const char *name, void *value, size_t size) {
    return result(getxattr(path, name, value, size));
}

long ks_fuse_listxattr(const char *path, char *list, size_t size) {
    return result(listxattr(path, list, size));
}

int ks_fuse_setxattr(const char *path, const char *name, const void *value, size_t size, int flags) {
    return (int)result(setxattr(path, name, value, size, flags));
}

int ks_fuse_removexattr(const char *path, const char *name) {
    return (int)result(removexattr(path, name));
}

int64_t ks_fuse_fstatfs_type(int fd) {
    struct statfs st;
    if (fstatfs(fd, &st) < 0) return -errno;
    return (int64_t)st.f_type;
}

int ks_fuse_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return (int)result(fallocate(fd, mode, offset, length));
}
