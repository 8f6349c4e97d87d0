// ks_console: the debug console's shell on a pty, and kata-ctl's raw terminal. See include/ks_console.h.
#define _GNU_SOURCE
#include "ks_console.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

// clone3's argument block (linux/sched.h, CLONE_ARGS_SIZE_VER0).
struct console_clone_args { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

// ---------------------------------------------------------------- child (async-signal-safe only)

__attribute__((noreturn)) static void child_fail(int errfd) {
    int e = errno;
    ssize_t n;
    do { n = write(errfd, &e, sizeof e); } while (n < 0 && errno == EINTR);
    _exit(127);
}

__attribute__((noreturn)) static void child_main(int slave, int errfd, const char *path, char *const argv[], char *const envp[]) {
    // The agent blocks SIGCHLD/SIGTERM/SIGINT and ignores SIGPIPE; a shell wants none of that.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) (void)sigaction(s, &dfl, NULL);  // SIGKILL/SIGSTOP refuse: fine
    uint64_t none = 0;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none) < 0) child_fail(errfd);

    if (setsid() < 0) child_fail(errfd);
    if (ioctl(slave, TIOCSCTTY, 0) < 0) child_fail(errfd);
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0) child_fail(errfd);  // dup2 clears FD_CLOEXEC on the copy
    if (slave > 2) close(slave);
    if (chdir("/") < 0) child_fail(errfd);
    // Nothing but 0-2 survives execve; errfd is already O_CLOEXEC and tells the parent about it.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 4096; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl >= 0) (void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        }
    }
    execve(path, argv, envp);
    child_fail(errfd);
}

// ---------------------------------------------------------------- parent

// For error paths: the child is ours alone (pidfd), so waiting for it cannot take anyone else's.
static void kill_and_reap(int pidfd) {
    (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    siginfo_t si;
    int r;
    do { r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED); } while (r < 0 && errno == EINTR);
}

static int open_slave(int master) {
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave >= 0) return slave;
    char name[64];
    int r = ptsname_r(master, name, sizeof name);
    if (r != 0) { errno = r; return -1; }
    return open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
}

int ks_console_openpty(uint16_t rows, uint16_t cols, int *master_out, int *slave_out) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -errno;
    if (unlockpt(master) < 0) { int e = errno; close(master); return -e; }
    if (rows > 0 && cols > 0) {
        struct winsize ws = {rows, cols, 0, 0};
        if (ioctl(master, TIOCSWINSZ, &ws) < 0) { int e = errno; close(master); return -e; }
    }
    int slave = open_slave(master);
    if (slave < 0) { int e = errno; close(master); return -e; }
    *master_out = master;
    *slave_out = slave;
    return 0;
}

int ks_console_spawn(const char *path, char *const argv[], char *const envp[],
                     uint16_t rows, uint16_t cols, struct ks_console_shell *out) {
    out->pid = out->pidfd = out->master = -1;
    int master, slave;
    int rc = ks_console_openpty(rows, cols, &master, &slave);
    if (rc < 0) return rc;
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0) { int e = errno; close(slave); close(master); return -e; }

    int pidfd = -1;
    struct console_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    // clone3 without CLONE_VM behaves like fork (no atfork handlers run: the child only makes
    // async-signal-safe calls before execve).
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        close(errpipe[0]);
        child_main(slave, errpipe[1], path, argv, envp);
    }
    int clone_errno = errno;
    close(slave);
    close(errpipe[1]);
    if (pid < 0) { close(errpipe[0]); close(master); return -clone_errno; }

    // EOF on the pipe: execve succeeded (O_CLOEXEC closed the child's end). An int: it failed.
    int child_errno = 0;
    ssize_t n;
    do { n = read(errpipe[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    int err = 0;
    if (n == (ssize_t)sizeof child_errno) {
        err = child_errno > 0 ? child_errno : EIO;
    } else {
        int fl = fcntl(master, F_GETFL);
        if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) < 0) err = errno;
    }
    if (err != 0) {
        kill_and_reap(pidfd);
        close(pidfd);
        close(master);
        return -err;
    }
    out->pid = pid;
    out->pidfd = pidfd;
    out->master = master;
    return 0;
}

int ks_console_signal(int pidfd, int signo) {
    return syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0 ? -errno : 0;
}

int ks_console_reap(int pidfd, int *exit_code) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do { r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (si.si_pid == 0) return 0;
    *exit_code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    return 1;
}

// ---------------------------------------------------------------- kata-ctl's terminal

static const int restore_signals[] = {SIGTERM, SIGHUP, SIGQUIT, SIGINT};
#define RESTORE_SIGNAL_COUNT ((int)(sizeof restore_signals / sizeof restore_signals[0]))
static struct termios saved_termios;
static struct sigaction saved_actions[RESTORE_SIGNAL_COUNT];
static int saved_fd = -1;
static volatile sig_atomic_t raw_active = 0;

static void restore_and_die(int signo) {
    if (raw_active) {
        (void)tcsetattr(saved_fd, TCSANOW, &saved_termios);
        raw_active = 0;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    (void)sigaction(signo, &dfl, NULL);
    (void)raise(signo);  // blocked while this handler runs; delivered (fatal) when it returns
}

int ks_console_tty_raw(int fd) {
    if (raw_active) return -EBUSY;
    struct termios t;
    if (tcgetattr(fd, &t) < 0) return -errno;
    saved_termios = t;
    saved_fd = fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_and_die;
    sigemptyset(&sa.sa_mask);
    sigset_t handled;
    sigemptyset(&handled);
    for (int i = 0; i < RESTORE_SIGNAL_COUNT; i++) {
        (void)sigaction(restore_signals[i], &sa, &saved_actions[i]);
        sigaddset(&handled, restore_signals[i]);
    }
    // A mask inherited from the parent would keep them pending forever (and the process alive).
    (void)pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
    raw_active = 1;
    cfmakeraw(&t);
    if (tcsetattr(fd, TCSANOW, &t) < 0) {
        int e = errno;
        ks_console_tty_restore();
        return -e;
    }
    return 0;
}

void ks_console_tty_restore(void) {
    if (!raw_active) return;
    (void)tcsetattr(saved_fd, TCSADRAIN, &saved_termios);
    raw_active = 0;
    for (int i = 0; i < RESTORE_SIGNAL_COUNT; i++) (void)sigaction(restore_signals[i], &saved_actions[i], NULL);
}

int ks_console_tty_size(int fd, uint16_t *rows, uint16_t *cols) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return -errno;
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return 0;
}
