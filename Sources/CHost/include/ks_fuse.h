// ks_fuse: system calls the FUSE server (Sources/FUSE) needs and Swift's Glibc module does not
// offer: openat2 and renameat2 have no glibc wrapper we can see, getdents64 is only reachable
// through variadic syscall(2), the xattr and fallocate prototypes and the O_PATH / AT_EMPTY_PATH /
// RESOLVE_* constants sit behind _GNU_SOURCE or in kernel headers Swift does not import.
// Every function returns its result (>= 0) or -errno; none of them keeps state.
#ifndef KATA_SWIFT_KS_FUSE_H
#define KATA_SWIFT_KS_FUSE_H

#include <stddef.h>
#include <stdint.h>

// Flag values for the calls below, taken from the C headers at build time.
extern const int ks_fuse_o_tmpfile;
extern const int ks_fuse_o_direct;
extern const int ks_fuse_o_noatime;
extern const int ks_fuse_at_empty_path;
extern const long ks_fuse_utime_now;
extern const long ks_fuse_utime_omit;
extern const int ks_fuse_seek_data;
extern const int ks_fuse_seek_hole;
extern const unsigned ks_fuse_rename_noreplace;
extern const unsigned ks_fuse_rename_exchange;
extern const unsigned ks_fuse_rename_whiteout;
extern const uint64_t ks_fuse_resolve_beneath;
extern const uint64_t ks_fuse_resolve_no_magiclinks;
extern const uint64_t ks_fuse_resolve_no_symlinks;
extern const int ks_fuse_xattr_create;
extern const int ks_fuse_xattr_replace;

/// Sizes and offsets of the kernel's FUSE structures (linux/fuse.h as installed), so the tests can
/// check the Swift encoders and decoders against the real header instead of against themselves.
struct ks_fuse_abi {
    uint32_t in_header, out_header, init_in, init_out, entry_out, attr_out, attr, open_out, write_out,
        statfs_out, getxattr_out, lseek_out, dirent, direntplus, setattr_in, read_in, write_in,
        create_in, mknod_in, mkdir_in, rename2_in, link_in, release_in, flush_in, fsync_in,
        setxattr_in_compat, getxattr_in, access_in, fallocate_in, lseek_in, getattr_in, open_in,
        batch_forget_in, forget_one;
    uint32_t entry_out_attr, attr_mode, attr_rdev, setattr_in_mode, setattr_in_uid, init_out_max_write,
        init_out_max_pages, init_out_flags2, kstatfs_namelen;
};
extern const struct ks_fuse_abi ks_fuse_abi;

/// openat2(2) with a struct open_how built from the arguments. Returns the new fd or -errno.
int ks_fuse_openat2(int dirfd, const char *name, uint64_t flags, uint64_t mode, uint64_t resolve);

/// renameat2(2). Returns 0 or -errno.
int ks_fuse_renameat2(int olddirfd, const char *oldname, int newdirfd, const char *newname,
                      unsigned flags);

/// getdents64(2) into buf. Returns the number of bytes filled (0 at the end) or -errno.
long ks_fuse_getdents64(int fd, void *buf, size_t size);

/// xattr calls on the inode behind one of the server's O_PATH fds, named `fd_name` ("N") below
/// `proc_fd` (its O_PATH descriptor of /proc/self/fd): opened read-only and non-blocking, so only
/// for regular files and directories (the server checks), then f*xattr.
long ks_fuse_getxattr(int proc_fd, const char *fd_name, const char *name, void *value, size_t size);
long ks_fuse_listxattr(int proc_fd, const char *fd_name, char *list, size_t size);
int ks_fuse_setxattr(int proc_fd, const char *fd_name, const char *name, const void *value, size_t size, int flags);
int ks_fuse_removexattr(int proc_fd, const char *fd_name, const char *name);

/// fstatfs(2)'s f_type (the file system magic number) for fd, or -errno.
int64_t ks_fuse_fstatfs_type(int fd);

/// fallocate(2). Returns 0 or -errno.
int ks_fuse_fallocate(int fd, int mode, int64_t offset, int64_t length);

#endif
