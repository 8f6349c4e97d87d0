#define _GNU_SOURCE
#include "ks_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

const unsigned int ks_tun_f_csum = TUN_F_CSUM;
const unsigned int ks_tun_f_tso4 = TUN_F_TSO4;
const unsigned int ks_tun_f_tso6 = TUN_F_TSO6;
const unsigned int ks_tun_f_tso_ecn = TUN_F_TSO_ECN;
const int ks_ifnamsiz = IFNAMSIZ;

int ks_tap_open(const char *name, char *name_out, int vnet_hdr_size) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
    if (ioctl(fd, TUNSETVNETHDRSZ, &vnet_hdr_size) < 0) goto fail;
    // No offloads until the guest's features are known: the tap segments and checksums for us.
    if (ioctl(fd, TUNSETOFFLOAD, 0UL) < 0) goto fail;
    memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
    name_out[IFNAMSIZ - 1] = 0;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    return -saved;
}

int ks_tap_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}
