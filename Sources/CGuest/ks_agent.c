// ks_agent: C helpers for the guest agent. See include/ks_agent.h for why each exists.
#define _GNU_SOURCE
#include "ks_agent.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/random.h>
#include <linux/vm_sockets.h>
#include <stdlib.h>
#include <sys/ioctl.h>

const uint32_t ks_vmaddr_cid_any = VMADDR_CID_ANY;

static int early_proc_mount_result = 0;

// Runs before the Swift runtime's initialisers (which use the default priority, 65535). A fully
// static Swift binary finds its own path through readlink("/proc/self/exe") and aborts with
// "Unable to obtain Swift runtime path" if that fails, so PID 1 must mount /proc first.
// Only async-signal-safe system calls here: no Swift, no allocation.
__attribute__((constructor(101))) static void ks_agent_early_proc_mount(void) {
    if (getpid() != 1) return;
    if (access("/proc/self/exe", F_OK) == 0) return;
    if (mkdir("/proc", 0555) != 0 && errno != EEXIST) {
        early_proc_mount_result = -errno;
        return;
    }
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
        early_proc_mount_result = -errno;
        return;
    }
    early_proc_mount_result = 1;
}

int ks_agent_early_proc_mount_result(void) { return early_proc_mount_result; }

static void fill_vm(struct sockaddr_vm *addr, uint32_t cid, uint32_t port) {
    memset(addr, 0, sizeof(*addr));
    addr->svm_family = AF_VSOCK;
    addr->svm_cid = cid;
    addr->svm_port = port;
}

int ks_vsock_listen(uint32_t cid, uint32_t port, int backlog) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_vm addr;
    fill_vm(&addr, cid, port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, backlog) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int ks_vsock_connect(uint32_t cid, uint32_t port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_vm addr;
    fill_vm(&addr, cid, port);
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int ks_vsock_local_address(int fd, uint32_t *cid, uint32_t *port) {
    struct sockaddr_vm addr;
    socklen_t len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) return -errno;
    if (addr.svm_family != AF_VSOCK) return -EAFNOSUPPORT;
    *cid = addr.svm_cid;
    *port = addr.svm_port;
    return 0;
}

int ks_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

static int fill_set(sigset_t *set, const int *signals, int count) {
    if (sigemptyset(set) != 0) return -errno;
    for (int i = 0; i < count; i++) {
        if (sigaddset(set, signals[i]) != 0) return -errno;
    }
    return 0;
}

int ks_block_signals(const int *signals, int count) {
    sigset_t set;
    int rc = fill_set(&set, signals, count);
    if (rc != 0) return rc;
    rc = pthread_sigmask(SIG_BLOCK, &set, NULL);  // returns the error number, not -1
    return rc == 0 ? 0 : -rc;
}

int ks_wait_signal(const int *signals, int count) {
    sigset_t set;
    int rc = fill_set(&set, signals, count);
    if (rc != 0) return rc;
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig > 0) return sig;
        if (errno != EINTR) return -errno;
    }
}

pid_t ks_reap_one(int *exit_code) {
    int status = 0;
    pid_t pid;
    do {
        pid = waitpid(-1, &status, WNOHANG);
    } while (pid < 0 && errno == EINTR);
    if (pid < 0) return -errno;
    if (pid == 0) return 0;
    if (WIFEXITED(status)) *exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) *exit_code = 128 + WTERMSIG(status);
    else *exit_code = 255;  // stopped/continued are not reported with these flags
    return pid;
}

int ks_reboot_restart(void) {
    sync();
    return reboot(RB_AUTOBOOT) == 0 ? 0 : -errno;
}

int ks_reseed_random(int random_fd, const uint8_t *bytes, int length) {
    if (length <= 0 || length > 4096) return -EINVAL;
    struct rand_pool_info *info = malloc(sizeof(*info) + (size_t)length);
    if (info == NULL) return -ENOMEM;
    info->entropy_count = length * 8;
    info->buf_size = length;
    memcpy(info->buf, bytes, (size_t)length);
    int rc = ioctl(random_fd, RNDADDENTROPY, info);
    int saved = errno;
    explicit_bzero(info, sizeof(*info) + (size_t)length);
    free(info);
    if (rc != 0) return -saved;
    if (ioctl(random_fd, RNDRESEEDCRNG) != 0) return -errno;
    return 0;
}
