// ks_thread_filter: see include/ks_thread_filter.h.
#define _GNU_SOURCE
#include "ks_thread_filter.h"

#include <errno.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <linux/if_tun.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// Every thread of ours: memory, futexes, signals, time, reads and writes on descriptors it was
// handed (eventfds, pipes, sockets, files), epoll, thread exit. fstat is newfstatat in glibc 2.36.
static const char *const common_allowed[] = {
    "read", "readv", "write", "writev", "pread64", "pwrite64", "preadv", "pwritev", "close", "lseek",
    "fstat", "newfstatat", "statx", "fcntl", "futex", "futex_waitv", "sched_yield", "sched_getaffinity",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "getpid", "gettid",
    "getuid", "geteuid", "getgid", "getegid", "tgkill", "rt_sigreturn", "rt_sigprocmask", "sigaltstack",
    "restart_syscall", "exit", "exit_group", "mmap", "munmap", "mremap", "madvise", "brk", "mprotect",
    "membarrier", "rseq", "set_robust_list", "getrandom", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "poll", "ppoll", "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "prctl",
};

// The device thread, in addition: the FUSE server's calls, always relative to descriptors below
// the share (openat2 with RESOLVE_BENEATH), and the vsock muxer's calls on Unix sockets.
static const char *const device_allowed[] = {
    "openat", "openat2", "getdents64", "mkdirat", "unlinkat", "renameat", "renameat2", "symlinkat",
    "linkat", "readlinkat", "fchownat", "fchown", "fchmod", "fchmodat", "utimensat", "mknodat",
    "fallocate", "fsync", "fdatasync", "ftruncate", "fstatfs", "statfs", "fgetxattr", "fsetxattr",
    "flistxattr", "fremovexattr", "lgetxattr", "lsetxattr", "llistxattr", "lremovexattr", "getxattr",
    "listxattr", "copy_file_range", "flock", "faccessat", "faccessat2", "dup", "dup3", "pipe2",
    "epoll_create1", "sendmsg", "recvmsg", "sendto", "recvfrom", "shutdown", "getsockopt", "setsockopt",
    "getsockname", "getpeername", "accept4", "connect", "socketpair",
};

// Never, on any of these threads: the whole process dies (SIGSYS), as Firecracker's filters do.
static const char *const always_killed[] = {
    "execve", "execveat", "fork", "vfork", "clone", "clone3", "ptrace", "process_vm_readv",
    "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "setns", "unshare", "init_module",
    "finit_module", "delete_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "setuid",
    "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    "capset", "personality", "keyctl", "add_key", "request_key", "userfaultfd", "reboot", "swapon",
    "swapoff", "syslog", "acct", "quotactl", "iopl", "ioperm", "modify_ldt", "open_by_handle_at",
    "name_to_handle_at", "move_mount", "fsopen", "fsmount", "fsconfig", "open_tree", "io_uring_setup",
    "pidfd_getfd", "seccomp",
};

// vCPU threads, in addition: nothing that reaches a path or the network.
static const char *const vcpu_killed[] = {
    "open", "openat", "openat2", "creat", "socket", "socketpair", "connect", "bind", "listen", "accept",
    "accept4", "sendmsg", "sendto", "memfd_create", "mknod", "mknodat", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "symlink", "symlinkat", "link", "linkat", "mkdir", "mkdirat", "chmod",
    "fchmodat", "chown", "fchownat", "truncate", "ftruncate",
};

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

static int add_all(scmp_filter_ctx ctx, uint32_t action, const char *const *names, int count) {
    for (int i = 0; i < count; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
        int rc = seccomp_rule_add(ctx, action, nr, 0);
        if (rc < 0) return rc;
    }
    return 0;
}

static int build(scmp_filter_ctx ctx, int kind) {
    int rc;
    if ((rc = add_all(ctx, SCMP_ACT_ALLOW, common_allowed, COUNT(common_allowed))) < 0) return rc;
    if ((rc = add_all(ctx, SCMP_ACT_KILL_PROCESS, always_killed, COUNT(always_killed))) < 0) return rc;
    // ioctl: KVM's (type 0xAE: KVM_RUN, KVM_IRQ_LINE, register access for dumps) on every thread.
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, 0xae00))) < 0)
        return rc;
    // TUNSETOFFLOAD on a tap the hypervisor opened: virtio-net sets the offloads the guest
    // accepted when the driver sets DRIVER_OK, on the vCPU thread that took the MMIO write in our
    // VMM, on the vhost-user thread under QEMU.
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TUNSETOFFLOAD))) < 0) return rc;
    if (kind == KS_THREAD_VCPU) {
        if ((rc = add_all(ctx, SCMP_ACT_KILL_PROCESS, vcpu_killed, COUNT(vcpu_killed))) < 0) return rc;
        return 0;
    }
    if ((rc = add_all(ctx, SCMP_ACT_ALLOW, device_allowed, COUNT(device_allowed))) < 0) return rc;
    // Unix sockets only (the vsock muxer's host side); FIONREAD and FIONBIO on them.
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX))) < 0) return rc;
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, 0x541B))) < 0) return rc;
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, 0x5421))) < 0) return rc;
    return 0;
}

int ks_thread_filter_install(int kind) {
    if (kind != KS_THREAD_VCPU && kind != KS_THREAD_DEVICE) return -EINVAL;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    // The caller (ThreadConfinement.install, Swift) has called strerror once already, so glibc's
    // message catalogues are loaded and an error message formatted here later opens no file.
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) return -ENOMEM;
    int rc = build(ctx, kind);
    if (rc == 0) rc = seccomp_load(ctx);  // this thread only: libseccomp sets no TSYNC by default
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}

int ks_thread_enter_directory(const char *dir) {
    if (unshare(CLONE_FS | CLONE_NEWNS) != 0) return -errno;
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) return -errno;
    // pivot_root needs a mount point: `dir` bound onto itself in the new namespace. A bind of a
    // slave is a slave of the same master, so what the caller's namespace mounts below `dir`
    // later still arrives here when `dir` is a shared mount there (SandboxPaths makes the share one).
    if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) != 0) return -errno;
    // pivot_root(".", "."): the old root ends up stacked on the new one, and is detached at once.
    if (chdir(dir) != 0) return -errno;
    if (syscall(SYS_pivot_root, ".", ".") != 0) return -errno;
    if (umount2(".", MNT_DETACH) != 0) return -errno;
    if (chdir("/") != 0) return -errno;
    return 0;
}

int ks_thread_filter_allowed_count(int kind) {
    int n = COUNT(common_allowed) + 1;  // + ioctl (KVM's, and TUNSETOFFLOAD)
    if (kind == KS_THREAD_DEVICE) n += COUNT(device_allowed) + 1;  // + socket
    return n;
}

int ks_thread_filter_probe(int kind, long nr, long a0, long a1, long a2) {
    pid_t child = fork();
    if (child < 0) return -errno;
    if (child == 0) {
        if (ks_thread_filter_install(kind) != 0) _exit(100);
        long r = syscall(nr, a0, a1, a2, 0, 0, 0);
        _exit(r < 0 && errno == EPERM ? 101 : r < 0 ? 102 : 0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -errno;
    }
    return status;
}
