// ks_hv: see include/ks_hv.h.
#define _GNU_SOURCE
#include "ks_hv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int ks_hv_spawn(const char *path, char *const argv[], char *const envp[], int out_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return -rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return -rc;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 1)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 2)) == 0 &&
        (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF)) == 0 &&
        (rc = posix_spawnattr_setpgroup(&attr, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&attr, &all)) == 0) {
        rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return -rc;
}

int ks_hv_wait(pid_t pid, int nohang, int *exit_code) {
    int status = 0;
    pid_t r;
    do {
        r = waitpid(pid, &status, nohang ? WNOHANG : 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (r > 0) *exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    return r;
}

int ks_hv_kill_group(pid_t pgid, int signo) {
    if (pgid <= 1) return -EINVAL;
    return kill(-pgid, signo) == 0 ? 0 : -errno;
}

static int fill_addr(struct sockaddr_un *addr, const char *path) {
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr->sun_path) return -ENAMETOOLONG;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n + 1);
    return 0;
}

int ks_hv_unix_listen(const char *path, int backlog, int nonblocking) {
    struct sockaddr_un addr;
    int rc = fill_addr(&addr, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int ks_hv_unix_connect(const char *path) {
    struct sockaddr_un addr;
    int rc = fill_addr(&addr, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int ks_hv_accept(int fd, int nonblocking) {
    int c;
    do {
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
    } while (c < 0 && errno == EINTR);
    return c < 0 ? -errno : c;
}

int ks_hv_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

ssize_t ks_hv_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds) {
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * 16)];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                         .msg_controllen = sizeof control.bytes};
    *nfds = 0;
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    int overflow = (msg.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *received = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            int r;
            memcpy(&r, received + i, sizeof r);
            if (*nfds < max_fds) fds[(*nfds)++] = r;
            else {
                close(r);
                overflow = 1;
            }
        }
    }
    if (overflow) {
        for (int i = 0; i < *nfds; i++) close(fds[i]);
        *nfds = 0;
        return -EMSGSIZE;
    }
    return n;
}

ssize_t ks_hv_send(int fd, const void *buf, size_t len) {
    ssize_t n;
    do {
        n = send(fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int ks_hv_mmap_shared(int fd, uint64_t size, uint64_t offset, void **out) {
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    if (p == MAP_FAILED) return -errno;
    *out = p;
    return 0;
}

int ks_hv_shutdown(int fd, int how) {
    return shutdown(fd, how == 0 ? SHUT_RD : how == 1 ? SHUT_WR : SHUT_RDWR) == 0 ? 0 : -errno;
}

int ks_hv_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

// The guard: a forked copy of the caller that keeps only what it needs, starts the VMM and waits
// for it. Runs only async-signal-safe calls (it is a child of a multithreaded process).
static void close_from(int lowest) {
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
    struct rlimit limit;
    long top = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536 ? (long)limit.rlim_cur : 65536;
    for (long fd = lowest; fd < top; fd++) close((int)fd);
}

// Replaces the guard's command line (which is still the caller's) and name, as setproctitle does:
// the guard is not the shim, and nothing that looks for shim or VMM processes should count it.
// arg_start and arg_end are fields 48 and 49 of /proc/self/stat.
static void retitle(const char *title) {
    char stat[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0) return;
    stat[n] = 0;
    char *p = strrchr(stat, ')');
    if (!p) return;
    unsigned long arg_start = 0, arg_end = 0;
    for (int field = 2; *p && field < 49;) {
        if (*p++ != ' ') continue;
        field++;
        unsigned long value = 0;
        while (*p >= '0' && *p <= '9') value = value * 10 + (unsigned long)(*p++ - '0');
        if (field == 48) arg_start = value;
        if (field == 49) arg_end = value;
    }
    prctl(PR_SET_NAME, "vmm-guard");
    if (arg_start == 0 || arg_end <= arg_start) return;
    char *args = (char *)arg_start;
    size_t length = arg_end - arg_start;
    memset(args, 0, length);
    size_t title_length = strlen(title);
    memcpy(args, title, title_length < length - 1 ? title_length : length - 1);
}

static int exit_code_of(int status) {
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void guard_main(pid_t parent, const char *path, char *const argv[], char *const envp[], int out_fd,
                       int report_fd) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGUSR2) != 0 || getppid() != parent) _exit(127);
    retitle("kata-swift vmm-guard");
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0 ||
        dup2(report_fd, 3) < 0)
        _exit(127);
    // Everything else the caller had open (sockets, listeners, guest memory, other VMs' fds) goes.
    close_from(4);
    struct ks_hv_spawn_report report = {0, 0};
    int exec_status[2];
    if (pipe2(exec_status, O_CLOEXEC) != 0) {
        report.error = errno;
        (void)!write(3, &report, sizeof report);
        _exit(127);
    }
    pid_t vmm = fork();
    if (vmm < 0) {
        report.error = errno;
        (void)!write(3, &report, sizeof report);
        _exit(127);
    }
    if (vmm == 0) {
        // The VMM: its own process group, every signal at its default, dies with the guard.
        close(3);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < 65; s++) sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp);
        int err = errno;
        (void)!write(exec_status[1], &err, sizeof err);
        _exit(127);
    }
    close(exec_status[1]);
    setpgid(vmm, vmm);
    int err = 0;
    ssize_t n;
    do {
        n = read(exec_status[0], &err, sizeof err);
    } while (n < 0 && errno == EINTR);
    close(exec_status[0]);
    if (n == sizeof err) {
        int status;
        while (waitpid(vmm, &status, 0) < 0 && errno == EINTR) {}
        report.error = err;
        (void)!write(3, &report, sizeof report);
        _exit(127);
    }
    report.pid = vmm;
    (void)!write(3, &report, sizeof report);
    close(3);
    for (;;) {
        siginfo_t info;
        int signo = sigwaitinfo(&all, &info);
        if (signo == SIGUSR2) kill(-vmm, SIGKILL);  // the caller's thread is gone: so is the VMM
        int status;
        pid_t r = waitpid(vmm, &status, WNOHANG);
        if (r == vmm) _exit(exit_code_of(status));
        if (r < 0 && errno == ECHILD) _exit(127);
    }
}

int ks_hv_spawn_guarded(const char *path, char *const argv[], char *const envp[], int out_fd, pid_t *guard,
                        pid_t *vmm) {
    int report_pipe[2];
    if (pipe2(report_pipe, O_CLOEXEC) != 0) return -errno;
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(report_pipe[0]);
        close(report_pipe[1]);
        return -e;
    }
    if (child == 0) guard_main(parent, path, argv, envp, out_fd, report_pipe[1]);
    close(report_pipe[1]);
    struct ks_hv_spawn_report report = {EIO, 0};
    ssize_t n;
    do {
        n = read(report_pipe[0], &report, sizeof report);
    } while (n < 0 && errno == EINTR);
    close(report_pipe[0]);
    if (n != sizeof report || report.error != 0 || report.pid <= 0) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return n == sizeof report && report.error != 0 ? -report.error : -EIO;
    }
    *guard = child;
    *vmm = report.pid;
    return 0;
}
