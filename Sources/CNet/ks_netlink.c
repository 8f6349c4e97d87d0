#define _GNU_SOURCE
#include "ks_netlink.h"

#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

int ks_netlink_open(int protocol, uint32_t *port_id) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof addr);
    addr.nl_family = AF_NETLINK;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) goto fail;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) goto fail;
    *port_id = addr.nl_pid;
    int one = 1;
    // Optional: older kernels lack them, and the codec works either way.
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    int rcvbuf = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // rtnetlink answers while the request is sent or the reply read; a reply that never comes
    // is a bug, and a bounded wait turns it into EAGAIN instead of a hung thread.
    struct timeval timeout = {.tv_sec = 10, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0) goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    return -saved;
}

int ks_setns_net(int fd) {
    return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

int ks_unshare_net(void) {
    return unshare(CLONE_NEWNET) < 0 ? -errno : 0;
}
