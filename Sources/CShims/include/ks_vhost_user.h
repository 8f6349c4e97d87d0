// Unix-socket plumbing for the vhost-user backend: the frontend (QEMU) passes memory and
// eventfds as SCM_RIGHTS ancillary data, whose CMSG_* macros Swift cannot import, and
// sockaddr_un is simpler to fill in C. Each returns -errno on failure.
#ifndef KATA_SWIFT_KS_VHOST_USER_H
#define KATA_SWIFT_KS_VHOST_USER_H
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/eventfd.h>
#include <unistd.h>

/// A listening SOCK_STREAM Unix socket bound at path (close-on-exec), or -errno.
static inline int ks_vu_listen(const char *path) {
    struct sockaddr_un addr;
    if (strlen(path) >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/// accept, then close-on-exec (accept4 needs _GNU_SOURCE, which a shared header cannot set), or -errno.
static inline int ks_vu_accept(int fd) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) return -errno;
    fcntl(c, F_SETFD, FD_CLOEXEC);
    return c;
}

/// Receives up to len bytes and up to max_fds descriptors (stored in fds, count in *n_fds).
/// Returns the byte count (0 at end of stream) or -errno. Received fds are close-on-exec;
/// if more than max_fds arrived the extra ones are closed and -EMSGSIZE returned.
static inline ssize_t ks_vu_recv(int fd, void *buf, size_t len, int *fds, int max_fds, int *n_fds) {
    char control[CMSG_SPACE(sizeof(int) * 16)];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    *n_fds = 0;
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    int overflow = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*n_fds < max_fds) fds[(*n_fds)++] = received[i];
            else { close(received[i]); overflow = 1; }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) overflow = 1;
    return overflow ? -EMSGSIZE : n;
}

/// Sends all len bytes, or -errno.
static inline ssize_t ks_vu_send_all(int fd, const void *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/// A non-blocking, close-on-exec eventfd for waking the backend's loop, or -errno.
static inline int ks_vu_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}
#endif
