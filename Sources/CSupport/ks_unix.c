// ks_unix: see include/ks_unix.h.
#define _GNU_SOURCE
#include "ks_unix.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_address(struct sockaddr_un *address, const char *path) {
    size_t length = strlen(path);
    if (length == 0) return -EINVAL;
    if (length >= sizeof(address->sun_path)) return -ENAMETOOLONG;
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    memcpy(address->sun_path, path, length);
    return 0;
}

int ks_unix_listen(const char *path, int backlog, int nonblocking, int owner_only) {
    struct sockaddr_un address;
    int rc = fill_address(&address, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -errno;
    if ((owner_only && fchmod(fd, 0600) < 0) || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        return -saved;
    }
    return fd;
}

int ks_unix_connect(const char *path) {
    struct sockaddr_un address;
    int rc = fill_address(&address, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    while (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        if (errno == EINTR) continue;
        int saved = errno;
        close(fd);
        return -saved;
    }
    return fd;
}

int ks_unix_accept(int fd, int nonblocking) {
    int c;
    do {
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
    } while (c < 0 && errno == EINTR);
    return c < 0 ? -errno : c;
}

int ks_unix_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

int ks_unix_socket_path(int fd, char *buf, int buf_len) {
    struct sockaddr_un address;
    socklen_t length = sizeof(address);
    memset(&address, 0, sizeof(address));
    if (getsockname(fd, (struct sockaddr *)&address, &length) < 0) return -errno;
    if (address.sun_family != AF_UNIX || address.sun_path[0] == '\0') return -EINVAL;
    size_t path_length = strnlen(address.sun_path, sizeof(address.sun_path));
    if (buf_len <= 0 || path_length >= (size_t)buf_len) return -ENAMETOOLONG;
    memcpy(buf, address.sun_path, path_length);
    buf[path_length] = '\0';
    return 0;
}

ssize_t ks_unix_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds) {
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

ssize_t ks_unix_send(int fd, const void *buf, size_t len) {
    ssize_t n;
    do {
        n = send(fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t ks_unix_send_with_fds(int fd, const void *buf, size_t len, const int *fds, int nfds) {
    if (len == 0 || nfds < 0 || nfds > 16) return -EINVAL;
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * 16)];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    size_t sent = (size_t)n;
    while (sent < len) {
        ssize_t more = ks_unix_send(fd, (const char *)buf + sent, len - sent);
        if (more < 0) return more;
        sent += (size_t)more;
    }
    return (ssize_t)sent;
}

int ks_unix_shutdown(int fd, int how) {
    return shutdown(fd, how == 0 ? SHUT_RD : how == 1 ? SHUT_WR : SHUT_RDWR) == 0 ? 0 : -errno;
}
