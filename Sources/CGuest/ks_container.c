// ks_container: the clone-to-execve path of a container process. See include/ks_container.h.
// The child side (everything under "child") makes only raw system calls: no malloc, no locks,
// no stdio, because the parent is multithreaded.
#define _GNU_SOURCE
#include "ks_container.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/nsfs.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

const uint64_t ks_ctr_clone_newns = CLONE_NEWNS, ks_ctr_clone_newpid = CLONE_NEWPID,
               ks_ctr_clone_newuts = CLONE_NEWUTS, ks_ctr_clone_newipc = CLONE_NEWIPC,
               ks_ctr_clone_newnet = CLONE_NEWNET, ks_ctr_clone_newcgroup = CLONE_NEWCGROUP,
               ks_ctr_clone_newuser = CLONE_NEWUSER;

static const char *const step_names[] = {
    "none", "sync", "setns", "clone", "setsid", "controlling terminal", "stdio",
    "make mounts private", "bind rootfs", "mkdir", "mount", "remount", "mount propagation",
    "device node", "device symlink", "pivot_root", "detach old root", "mask path",
    "readonly path", "readonly root", "sethostname", "setrlimit", "umask", "drop bounding set",
    "keep capabilities", "setgroups", "setgid", "setuid", "capset", "ambient capabilities",
    "no_new_privs", "chdir", "seccomp", "execve",
};

const char *ks_ctr_step_name(int step) {
    if (step < 0 || step >= (int)(sizeof(step_names) / sizeof(step_names[0]))) return "unknown step";
    return step_names[step];
}

// One message on the socket pair, child -> parent.
enum { MSG_READY = 1, MSG_FAIL = 2, MSG_PID = 3, MSG_PTY = 4 };
struct report { int32_t kind, step, err, value; };

// clone3 without CLONE_VM behaves like fork: the child returns 0 on a copy of our stack.
// With a cgroup fd (Linux 5.7, CLONE_INTO_CGROUP) the child is born in that cgroup: moving it
// there afterwards (cgroup.procs) takes the cgroup threadgroup lock for writing, which waits for
// an RCU grace period (about 19 ms per container under TCG, docs/performance.md); crun clones
// into the cgroup for the same reason.
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
struct ks_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};
static pid_t clone3_fork(uint64_t flags, int cgroup_fd) {
    struct ks_clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    a.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    if (cgroup_fd >= 0) {
        a.flags |= CLONE_INTO_CGROUP;
        a.cgroup = (uint64_t)cgroup_fd;
    }
    return (pid_t)syscall(SYS_clone3, &a, sizeof a);
}

// ---------------------------------------------------------------- child

static void send_report(int fd, int kind, int step, int err, int value) {
    struct report r = {kind, step, err, value};
    (void)send(fd, &r, sizeof r, MSG_NOSIGNAL);
}

// Reports (step, errno, index) and exits. Never returns.
static void fail(int fd, int step, int index) {
    send_report(fd, MSG_FAIL, step, errno, index);
    _exit(127);
}

static int wait_barrier(int fd) {
    char b;
    ssize_t n;
    do { n = recv(fd, &b, 1, 0); } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

// Joins a and b into buf; -1 with ENAMETOOLONG when it does not fit.
static int join_path(char *buf, size_t size, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 2 > size) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, a, la);
    size_t at = la;
    if (b[0] != '/') buf[at++] = '/';
    memcpy(buf + at, b, lb + 1);
    return 0;
}

// mkdir -p on a stack copy of path.
static int mkdir_all(const char *path, mode_t mode) {
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
        buf[i] = saved;
    }
    return 0;
}

// Creates the parent directories of path and an empty file at path (mount point for a file bind).
static int make_file(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, path, len + 1);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = '\0';
        if (mkdir_all(buf, 0755) < 0) return -1;
    }
    if (mknod(path, S_IFREG | 0644, 0) < 0 && errno != EEXIST) return -1;
    return 0;
}

static void do_mount(int fd, const struct ks_ctr_mount *m, int index) {
    struct stat st;
    int source_is_dir = 1;
    if (m->bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode)) source_is_dir = 0;
    if ((source_is_dir ? mkdir_all(m->target, 0755) : make_file(m->target)) < 0) fail(fd, KS_CTR_STEP_MKDIR, index);
    if (m->bind) {
        unsigned long f = MS_BIND | (m->recursive ? MS_REC : 0);
        if (mount(m->source, m->target, NULL, f, NULL) < 0) fail(fd, KS_CTR_STEP_MOUNT, index);
        if (m->flags && mount(m->source, m->target, NULL, MS_BIND | MS_REMOUNT | m->flags, NULL) < 0)
            fail(fd, KS_CTR_STEP_MOUNT_REMOUNT, index);
    } else if (mount(m->source, m->target, m->fstype, m->flags, m->data) < 0) {
        fail(fd, KS_CTR_STEP_MOUNT, index);
    }
    if (m->propagation && mount(NULL, m->target, NULL, m->propagation, NULL) < 0)
        fail(fd, KS_CTR_STEP_MOUNT_PROPAGATION, index);
}

static void setup_dev(int fd, const char *rootfs) {
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {
        {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
    };
    char dev[4096], path[4096], host[64];
    if (join_path(dev, sizeof dev, rootfs, "/dev") < 0 || mkdir_all(dev, 0755) < 0) fail(fd, KS_CTR_STEP_DEV_NODE, -1);
    for (int i = 0; i < 6; i++) {
        if (join_path(path, sizeof path, dev, nodes[i]) < 0 || join_path(host, sizeof host, "/dev", nodes[i]) < 0)
            fail(fd, KS_CTR_STEP_DEV_NODE, i);
        if (make_file(path) < 0 || mount(host, path, NULL, MS_BIND, NULL) < 0) fail(fd, KS_CTR_STEP_DEV_NODE, i);
    }
    for (int i = 0; i < 5; i++) {
        if (join_path(path, sizeof path, dev, links[i][1]) < 0) fail(fd, KS_CTR_STEP_DEV_LINK, i);
        if (symlink(links[i][0], path) < 0 && errno != EEXIST) fail(fd, KS_CTR_STEP_DEV_LINK, i);
    }
}

static void setup_rootfs(int fd, const struct ks_ctr_config *c) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(fd, KS_CTR_STEP_MOUNT_PRIVATE, -1);
    if (mount(c->rootfs, c->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) fail(fd, KS_CTR_STEP_ROOTFS_BIND, -1);
    for (int i = 0; i < c->mount_count; i++) do_mount(fd, &c->mounts[i], i);
    if (c->setup_dev) setup_dev(fd, c->rootfs);
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." drops it.
    if (chdir(c->rootfs) < 0) fail(fd, KS_CTR_STEP_PIVOT_ROOT, -1);
    if (syscall(SYS_pivot_root, ".", ".") < 0) fail(fd, KS_CTR_STEP_PIVOT_ROOT, -1);
    if (umount2(".", MNT_DETACH) < 0) fail(fd, KS_CTR_STEP_UMOUNT_OLD_ROOT, -1);
    if (chdir("/") < 0) fail(fd, KS_CTR_STEP_PIVOT_ROOT, -1);
    for (int i = 0; i < c->masked_count; i++) {
        struct stat st;
        const char *p = c->masked_paths[i];
        if (stat(p, &st) < 0) {
            if (errno == ENOENT) continue;
            fail(fd, KS_CTR_STEP_MASK_PATH, i);
        }
        int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL)
                                    : mount("/dev/null", p, NULL, MS_BIND, NULL);
        if (r < 0) fail(fd, KS_CTR_STEP_MASK_PATH, i);
    }
    for (int i = 0; i < c->readonly_count; i++) {
        const char *p = c->readonly_paths[i];
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT) continue;
            fail(fd, KS_CTR_STEP_READONLY_PATH, i);
        }
        if (mount(p, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            fail(fd, KS_CTR_STEP_READONLY_PATH, i);
    }
    if (c->root_readonly && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
        fail(fd, KS_CTR_STEP_ROOT_READONLY, -1);
}

// Makes src[0..2] the standard streams; a negative source means /dev/null.
static void install_stdio(int fd, const int src_in[3]) {
    // Move every source above 2 first, so a source that is itself 0-2 is not overwritten.
    int high[3];
    for (int i = 0; i < 3; i++) {
        high[i] = src_in[i] >= 0 ? fcntl(src_in[i], F_DUPFD_CLOEXEC, 3) : open("/dev/null", O_RDWR | O_CLOEXEC);
        if (high[i] < 0 || (high[i] < 3 && (high[i] = fcntl(high[i], F_DUPFD_CLOEXEC, 3)) < 0)) fail(fd, KS_CTR_STEP_STDIO, i);
    }
    for (int i = 0; i < 3; i++)
        if (dup2(high[i], i) < 0) fail(fd, KS_CTR_STEP_STDIO, i);
}

// Writes the decimal n after prefix into buf (no snprintf in the child).
static void format_pts(char *buf, const char *prefix, unsigned n) {
    size_t at = strlen(prefix);
    memcpy(buf, prefix, at);
    char digits[12];
    int k = 0;
    do { digits[k++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (k) buf[at++] = digits[--k];
    buf[at] = '\0';
}

// A pty from the container's own devpts (so ttyname works inside): the master goes to the
// parent with SCM_RIGHTS, the slave becomes the controlling terminal and fds 0-2.
static void setup_terminal(int fd) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail(fd, KS_CTR_STEP_CTTY, -1);
    int unlock = 0;
    unsigned n = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0) fail(fd, KS_CTR_STEP_CTTY, -1);
    char path[32];
    format_pts(path, "/dev/pts/", n);
    int slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) fail(fd, KS_CTR_STEP_CTTY, -1);
    struct report r = {MSG_PTY, 0, 0, 0};
    struct iovec iov = {&r, sizeof r};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof(int));
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) fail(fd, KS_CTR_STEP_CTTY, -1);
    close(master);
    if (ioctl(slave, TIOCSCTTY, 0) < 0) fail(fd, KS_CTR_STEP_CTTY, -1);
    int src[3] = {slave, slave, slave};
    install_stdio(fd, src);
    close(slave);
}

static void setup_stdio(int fd, const struct ks_ctr_config *c) {
    if (setsid() < 0) fail(fd, KS_CTR_STEP_SETSID, -1);
    if (!c->terminal) {
        int src[3] = {c->stdin_fd, c->stdout_fd, c->stderr_fd};
        install_stdio(fd, src);
    }
    // Nothing but 0-2 and the sync socket stays open: a child that waits at the start barrier
    // must not hold copies of other processes' pipe ends (the agent's stdin write ends, a
    // concurrent spawn's stdout) open, or their readers would not see EOF until it execs.
    unsigned lo = 3, hi = (unsigned)fd;
    if ((hi > lo && syscall(SYS_close_range, lo, hi - 1, 0U) < 0) ||
        syscall(SYS_close_range, hi + 1, ~0U, 0U) < 0) {
        for (int i = 3; i < 4096; i++)
            if (i != fd) (void)close(i);
    }
}

static void setup_identity(int fd, const struct ks_ctr_config *c) {
    for (int i = 0; i < c->rlimit_count; i++) {
        struct rlimit rl = {(rlim_t)c->rlimits[i].soft, (rlim_t)c->rlimits[i].hard};
        if (setrlimit(c->rlimits[i].resource, &rl) < 0) fail(fd, KS_CTR_STEP_RLIMIT, i);
    }
    if (c->umask_value >= 0) umask((mode_t)c->umask_value);
    if (c->set_caps) {
        for (int cap = 0; cap <= c->cap_last; cap++) {
            if (c->cap_bounding & (1ULL << cap)) continue;
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) fail(fd, KS_CTR_STEP_BOUNDING_SET, cap);
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(fd, KS_CTR_STEP_KEEPCAPS, -1);
    }
    if (syscall(SYS_setgroups, (size_t)c->group_count, (const gid_t *)c->groups) < 0) fail(fd, KS_CTR_STEP_SETGROUPS, -1);
    // Raw system calls: glibc's setuid wrappers broadcast to all threads with signals.
    if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0) fail(fd, KS_CTR_STEP_SETGID, -1);
    if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0) fail(fd, KS_CTR_STEP_SETUID, -1);
    if (c->set_caps) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail(fd, KS_CTR_STEP_KEEPCAPS, -1);
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2];
        d[0].effective = (uint32_t)c->cap_effective;
        d[1].effective = (uint32_t)(c->cap_effective >> 32);
        d[0].permitted = (uint32_t)c->cap_permitted;
        d[1].permitted = (uint32_t)(c->cap_permitted >> 32);
        d[0].inheritable = (uint32_t)c->cap_inheritable;
        d[1].inheritable = (uint32_t)(c->cap_inheritable >> 32);
        if (syscall(SYS_capset, &h, d) < 0) fail(fd, KS_CTR_STEP_CAPSET, -1);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail(fd, KS_CTR_STEP_AMBIENT, -1);
        for (int cap = 0; cap <= c->cap_last; cap++) {
            if (!(c->cap_ambient & (1ULL << cap))) continue;
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) fail(fd, KS_CTR_STEP_AMBIENT, cap);
        }
    }
    if (c->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(fd, KS_CTR_STEP_NO_NEW_PRIVS, -1);
}

// execve, looking argv[0] up in PATH when it has no '/', like execvpe but without allocation.
static void exec_path(int fd, const struct ks_ctr_config *c) {
    const char *file = c->argv[0];
    char *const *argv = (char *const *)c->argv;
    char *const *envp = (char *const *)c->envp;
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        fail(fd, KS_CTR_STEP_EXEC, -1);
    }
    const char *p = c->path_env ? c->path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int saved = ENOENT;
    char buf[4096];
    size_t flen = strlen(file);
    while (1) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        if (dlen + flen + 2 <= sizeof buf) {
            memcpy(buf, p, dlen);
            size_t at = dlen;
            if (dlen == 0) buf[at++] = '.';
            buf[at++] = '/';
            memcpy(buf + at, file, flen + 1);
            execve(buf, argv, envp);
            if (errno == EACCES) saved = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        }
        if (!end) break;
        p = end + 1;
    }
    errno = saved;
    fail(fd, KS_CTR_STEP_EXEC, -1);
}

static void load_seccomp(int fd, const struct ks_ctr_config *c) {
    if (!c->seccomp_prog) return;
    struct sock_fprog prog = {(unsigned short)c->seccomp_insns, (struct sock_filter *)c->seccomp_prog};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) fail(fd, KS_CTR_STEP_SECCOMP, -1);
}

// The agent blocks signals in its threads (the signal loop, libdispatch workers) and ignores
// SIGPIPE; a container process must start with none blocked and every disposition default
// (an ignored signal survives execve). Errors are ignored: 32/33 belong to the C library.
static void reset_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) (void)sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

static void child_main(int fd, const struct ks_ctr_config *c) {
    reset_signals();
    if (wait_barrier(fd) < 0) _exit(126);   // barrier 1: we are in the cgroup (cloned into it, or moved)
    setup_stdio(fd, c);
    if (c->rootfs) setup_rootfs(fd, c);
    if (c->terminal) setup_terminal(fd);
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0) fail(fd, KS_CTR_STEP_HOSTNAME, -1);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the capability drop may
    // remove: then the filter goes in first (as runc does) and also covers the remaining setup.
    if (!c->no_new_privs) load_seccomp(fd, c);
    setup_identity(fd, c);
    if (c->cwd && chdir(c->cwd) < 0) fail(fd, KS_CTR_STEP_CHDIR, -1);
    send_report(fd, MSG_READY, 0, 0, 0);
    if (wait_barrier(fd) < 0) _exit(126);   // barrier 2: start
    if (c->no_new_privs) load_seccomp(fd, c);
    exec_path(fd, c);
}

// ---------------------------------------------------------------- parent

static ssize_t recv_report(int fd, struct report *r) {
    ssize_t n;
    do { n = recv(fd, r, sizeof *r, 0); } while (n < 0 && errno == EINTR);
    return n;
}

int ks_ctr_spawn(const struct ks_ctr_config *cfg, struct ks_ctr_child *out, struct ks_ctr_failure *failure) {
    int sv[2];
    out->pid = out->pidfd = out->control_fd = out->pty_master = -1;
    failure->step = KS_CTR_STEP_NONE;
    failure->err = 0;
    failure->index = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    pid_t pid;
    int cgroup_fd = cfg->into_cgroup ? cfg->cgroup_fd : -1;
    if (cfg->ns_count == 0) {
        pid = clone3_fork(cfg->clone_flags, cgroup_fd);
        if (pid == 0) { close(sv[0]); child_main(sv[1], cfg); _exit(127); }
        if (pid < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
        close(sv[1]);
    } else {
        // setns(CLONE_NEWPID) affects only later children, and a multithreaded process cannot
        // join a mount namespace: an intermediate child joins, then clones with CLONE_PARENT
        // (and the new namespaces a container asks for besides the ones it joins).
        pid_t mid = clone3_fork(0, -1);
        if (mid == 0) {
            close(sv[0]);
            for (int i = 0; i < cfg->ns_count; i++)
                if (setns(cfg->ns_fds[i], 0) < 0) fail(sv[1], KS_CTR_STEP_SETNS, i);
            pid_t g = clone3_fork(CLONE_PARENT | cfg->clone_flags, cgroup_fd);
            if (g == 0) child_main(sv[1], cfg);
            if (g < 0) fail(sv[1], KS_CTR_STEP_CLONE, -1);
            send_report(sv[1], MSG_PID, 0, 0, g);
            _exit(0);
        }
        if (mid < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
        close(sv[1]);
        int st;
        while (waitpid(mid, &st, __WALL) < 0 && errno == EINTR) {}
        struct report r;
        ssize_t n = recv_report(sv[0], &r);
        if (n != (ssize_t)sizeof r || r.kind != MSG_PID) {
            if (n == (ssize_t)sizeof r && r.kind == MSG_FAIL) {
                failure->step = r.step; failure->err = r.err; failure->index = r.value;
                close(sv[0]);
                return -EPROTO;
            }
            close(sv[0]);
            return -ECHILD;
        }
        pid = r.value;
    }
    out->pid = pid;
    out->control_fd = sv[0];
    out->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (out->pidfd < 0) { int e = errno; ks_ctr_abort(out); return -e; }
    return 0;
}

// Receives one report; a passed descriptor (the pty master) lands in *passed_fd.
static ssize_t recv_report_fd(int fd, struct report *r, int *passed_fd) {
    struct iovec iov = {r, sizeof *r};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    ssize_t n;
    do { n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int))) {
            int got;
            memcpy(&got, CMSG_DATA(cm), sizeof got);
            if (*passed_fd >= 0) close(*passed_fd);
            *passed_fd = got;
        }
    }
    return n;
}

int ks_ctr_advance(struct ks_ctr_child *child, struct ks_ctr_failure *failure) {
    char go = 1;
    ssize_t n;
    do { n = send(child->control_fd, &go, 1, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EPIPE && errno != ECONNRESET) return -errno;
    struct report r;
    do { n = recv_report_fd(child->control_fd, &r, &child->pty_master); } while (n == (ssize_t)sizeof r && r.kind == MSG_PTY);
    if (n < 0) return errno == ECONNRESET ? 0 : -errno;
    if (n == 0) return 0;
    if (n != (ssize_t)sizeof r) return -EPROTO;
    if (r.kind == MSG_READY) return 1;
    failure->step = r.step;
    failure->err = r.err;
    failure->index = r.value;
    return -EPROTO;
}

void ks_ctr_abort(struct ks_ctr_child *child) {
    if (child->pidfd >= 0) {
        (void)syscall(SYS_pidfd_send_signal, child->pidfd, SIGKILL, NULL, 0);
    } else if (child->pid > 0) {
        (void)kill(child->pid, SIGKILL);
    }
    if (child->pid > 0) {
        int st;
        while (waitpid(child->pid, &st, __WALL) < 0 && errno == EINTR) {}
    }
    if (child->pidfd >= 0) close(child->pidfd);
    if (child->control_fd >= 0) close(child->control_fd);
    if (child->pty_master >= 0) close(child->pty_master);
    child->pid = child->pidfd = child->control_fd = child->pty_master = -1;
}

int ks_ctr_signal(int pidfd, int signo) {
    return syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0 ? -errno : 0;
}

int ks_ctr_wait(int pidfd, int nohang, int *status) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do { r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL | (nohang ? WNOHANG : 0)); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (si.si_pid == 0) return -EAGAIN;
    *status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    return 0;
}

int ks_ctr_set_winsize(int fd, uint16_t rows, uint16_t cols) {
    struct winsize ws = {rows, cols, 0, 0};
    return ioctl(fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

int ks_ctr_open_ns_path(const char *path, const char *type) {
    int want = !strcmp(type, "ipc") ? CLONE_NEWIPC : !strcmp(type, "uts") ? CLONE_NEWUTS
             : !strcmp(type, "pid") ? CLONE_NEWPID : !strcmp(type, "mnt") ? CLONE_NEWNS : 0;
    if (!want) return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int got = ioctl(fd, NS_GET_NSTYPE);
    if (got != want) { close(fd); return -EINVAL; }
    return fd;
}

int ks_ctr_open_ns(int pid, const char *name) {
    char path[64];
    if (pid <= 0 || strlen(name) > 16) return -EINVAL;
    snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

// ---------------------------------------------------------------- seccomp (parent)

int ks_seccomp_export(uint32_t default_action, const char *const *archs, int arch_count,
                      const struct ks_seccomp_rule *rules, int rule_count,
                      void **prog, int *insns, int *bad_arch, int *bad_rule) {
    *prog = NULL;
    *insns = 0;
    *bad_arch = *bad_rule = -1;
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) return -EINVAL;
    int rc = 0, mfd = -1;
    for (int i = 0; i < arch_count; i++) {
        uint32_t arch = seccomp_arch_resolve_name(archs[i]);
        if (arch == 0) { *bad_arch = i; rc = -EINVAL; goto out; }
        rc = seccomp_arch_add(ctx, arch);
        if (rc == -EEXIST) rc = 0;
        if (rc < 0) { *bad_arch = i; goto out; }
    }
    for (int i = 0; i < rule_count; i++) {
        int nr = seccomp_syscall_resolve_name(rules[i].name);
        if (nr == __NR_SCMP_ERROR) continue;             // unknown to this libseccomp: skipped, as runc does
        if (rules[i].action == default_action) continue; // libseccomp refuses rules equal to the default
        struct scmp_arg_cmp cmp[6];
        if (rules[i].arg_count > 6) { *bad_rule = i; rc = -E2BIG; goto out; }
        for (int a = 0; a < rules[i].arg_count; a++) {
            cmp[a].arg = rules[i].args[a].index;
            cmp[a].op = (enum scmp_compare)rules[i].args[a].op;
            cmp[a].datum_a = rules[i].args[a].value;
            cmp[a].datum_b = rules[i].args[a].value_two;
        }
        rc = seccomp_rule_add_array(ctx, rules[i].action, nr, (unsigned)rules[i].arg_count, cmp);
        if (rc < 0) { *bad_rule = i; goto out; }
    }
    mfd = memfd_create("ks-seccomp", MFD_CLOEXEC);
    if (mfd < 0) { rc = -errno; goto out; }
    if ((rc = seccomp_export_bpf(ctx, mfd)) < 0) goto out;
    off_t size = lseek(mfd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 || size > 65536 * 8) { rc = -EINVAL; goto out; }
    void *buf = malloc((size_t)size);
    if (!buf) { rc = -ENOMEM; goto out; }
    if (pread(mfd, buf, (size_t)size, 0) != size) { rc = -EIO; free(buf); goto out; }
    *prog = buf;
    *insns = (int)(size / (off_t)sizeof(struct sock_filter));
    rc = 0;
out:
    if (mfd >= 0) close(mfd);
    seccomp_release(ctx);
    return rc;
}
