#define _GNU_SOURCE
#include "ks_sys.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

const int ks_o_path = O_PATH;

int ks_eventfd(unsigned int initval, int nonblocking) {
    int fd = eventfd(initval, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
    return fd < 0 ? -errno : fd;
}

int ks_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ks_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int ks_epoll_wait(int epfd, uint32_t *events, uint64_t *tokens, int max, int timeout_ms) {
    if (max <= 0 || max > 256) return -EINVAL;
    struct epoll_event evs[256];
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        events[i] = evs[i].events;
        tokens[i] = evs[i].data.u64;
    }
    return n;
}

static void ks_kick_handler(int signo) { (void)signo; }

int ks_install_kick_handler(int signo) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ks_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the interrupted ioctl must return EINTR
    return sigaction(signo, &sa, NULL) < 0 ? -errno : 0;
}

int ks_unblock_signal(int signo) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    int rc = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return rc == 0 ? 0 : -rc;
}

int ks_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0) < 0 ? -errno : 0;
}

int ks_sigrtmin(void) { return SIGRTMIN; }

int ks_heap_trim(void) { return malloc_trim(0); }

int ks_pidfd_open(int pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
}

int ks_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}
