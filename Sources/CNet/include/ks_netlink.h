// ks_netlink: the two calls of the Netlink module that Swift cannot make on its own.
//
// Why: Glibc's Swift module imports neither <linux/netlink.h> (struct sockaddr_nl, the socket
// options) nor setns(2) and CLONE_NEWNET (_GNU_SOURCE parts of <sched.h>).
#ifndef KS_NETLINK_H
#define KS_NETLINK_H

#include <stdint.h>

/// socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol), bound with a kernel-assigned port id
/// (stored in *port_id), with extended acks (the kernel's error text) and capped acks (an error
/// does not echo the whole request) turned on where the kernel has them, a 1 MiB receive
/// buffer and a 10 s receive timeout (EAGAIN). The socket belongs to the calling thread's
/// network namespace for its whole life.
/// Returns the fd or -errno.
int ks_netlink_open(int protocol, uint32_t *port_id);

/// setns(fd, CLONE_NEWNET): moves the calling thread into the network namespace of `fd` (the
/// kernel checks that it is one: EINVAL otherwise). 0 or -errno.
int ks_setns_net(int fd);

/// unshare(CLONE_NEWNET): the calling thread gets a new, empty network namespace. 0 or -errno.
int ks_unshare_net(void);

#endif
