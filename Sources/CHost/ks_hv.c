// ks_hv: see include/ks_hv.h.
#define _GNU_SOURCE
#include "ks_hv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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

int ks_hv_mmap_shared(int fd, uint64_t size, uint64_t offset, void **out) {
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    if (p == MAP_FAILED) return -errno;
    *out = p;
    return 0;
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
