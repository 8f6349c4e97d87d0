#define _GNU_SOURCE
#include "ks_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

const unsigned int ks_tun_f_csum = TUN_F_CSUM;
const unsigned int ks_tun_f_tso4 = TUN_F_TSO4;
const unsigned int ks_tun_f_tso6 = TUN_F_TSO6;
const unsigned int ks_tun_f_tso_ecn = TUN_F_TSO_ECN;
const int ks_ifnamsiz = IFNAMSIZ;

struct ks_tap_request {
    const char *netns_path;
    const char *name;
    char *name_out;
    int vnet_hdr_size;
    int result;
};

static int ks_tap_open_here(const char *name, char *name_out, int vnet_hdr_size) {
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

static void *ks_tap_thread(void *arg) {
    struct ks_tap_request *request = arg;
    int ns = open(request->netns_path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
        request->result = -errno;
        return NULL;
    }
    // Only this thread changes namespace; it ends right after, taking the change with it.
    int rc = setns(ns, CLONE_NEWNET);
    int saved = errno;
    close(ns);
    if (rc < 0) {
        request->result = -saved;
        return NULL;
    }
    request->result = ks_tap_open_here(request->name, request->name_out, request->vnet_hdr_size);
    return NULL;
}

int ks_tap_open(const char *netns_path, const char *name, char *name_out, int vnet_hdr_size) {
    if (netns_path == NULL) return ks_tap_open_here(name, name_out, vnet_hdr_size);
    struct ks_tap_request request = {netns_path, name, name_out, vnet_hdr_size, -EINVAL};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, ks_tap_thread, &request);
    if (rc != 0) return -rc;
    rc = pthread_join(thread, NULL);
    if (rc != 0) return -rc;
    return request.result;
}

int ks_tap_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}
