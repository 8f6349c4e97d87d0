// ks_net: tap devices for virtio-net.
//
// Why C: struct ifreq is a union Swift imports awkwardly, the TUN* request numbers are _IOW
// macros Swift cannot import, and creating a tap inside another network namespace needs setns
// on a thread of its own: that thread is made and ended here, so no thread of the caller (and no
// Swift code) ever runs in the other namespace.
#ifndef KS_NET_H
#define KS_NET_H

/// TUNSETOFFLOAD bits: what the reader of the tap (the guest) accepts.
extern const unsigned int ks_tun_f_csum;
extern const unsigned int ks_tun_f_tso4;
extern const unsigned int ks_tun_f_tso6;
extern const unsigned int ks_tun_f_tso_ecn;
/// IFNAMSIZ, the size of an interface name buffer including the NUL.
extern const int ks_ifnamsiz;

/// Opens /dev/net/tun and attaches it to the tap `name` (created if absent; a template such as
/// "tap%d" lets the kernel choose) with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, then sets the vnet
/// header size to `vnet_hdr_size` and makes the descriptor non-blocking and close-on-exec.
/// The tap lives in the calling thread's network namespace (TapBackend enters another one on a
/// short-lived thread of its own first). Copies the interface's name into `name_out`
/// (ks_ifnamsiz bytes). Returns the fd or -errno.
int ks_tap_open(const char *name, char *name_out, int vnet_hdr_size);

/// TUNSETOFFLOAD(fd, flags) with ks_tun_f_* bits. 0 or -errno.
int ks_tap_set_offload(int fd, unsigned int flags);

#endif
