// ks_portfwd: CRI port forwarding into the VM (docs/kubernetes.md, "Port forwarding").
//
// containerd serves `kubectl port-forward` by dialling localhost:PORT inside the pod's network
// namespace on the host; with the pod's network in a VM nothing listens there. The shim steers
// every TCP connection to 127.0.0.1 in that namespace to one listening socket of its own, with a
// BPF sk_lookup program (the connection keeps its original destination port, which accept's
// getsockname reports), and relays it over vsock to the agent, which dials the same port on the
// guest's loopback.
//
// Why C: the BPF program is a handful of instructions built from the kernel's uapi structures
// (offsets of struct bpf_sk_lookup, helper numbers), and the bpf(2) attributes are unions; the
// relay is a poll loop over raw descriptors that both the shim and the agent run on threads of
// their own. Every function returns -errno on failure.
#ifndef KATA_SWIFT_KS_PORTFWD_H
#define KATA_SWIFT_KS_PORTFWD_H

#include <stdint.h>

/// A TCP listener on 127.0.0.1 (port chosen by the kernel) in the calling thread's network
/// namespace, close-on-exec. Returns the listening fd, or -errno.
int ks_portfwd_listen_loopback(void);

/// Attaches to the network namespace `netns_fd` an sk_lookup program that hands every TCP
/// connection to 127.0.0.1 (any port) to `listener_fd`. The program stays attached while the
/// returned link fd is open. Returns the link fd (close-on-exec), or -errno.
int ks_portfwd_attach(int netns_fd, int listener_fd);

/// The local port of a connected TCP socket (the port the peer dialled). Returns it, or -errno.
int ks_portfwd_local_port(int fd);

/// Connects a TCP socket to the loopback address (127.0.0.1 for family 4, ::1 for 6) on `port`.
/// Returns the fd (close-on-exec), or -errno.
int ks_portfwd_dial_loopback(int family, uint16_t port);

/// Copies bytes both ways between the sockets `a` and `b` until both directions reached end of
/// file (each end of file is passed on as shutdown(SHUT_WR) once its data is written), an error,
/// or `stop_fd` becoming readable. Both sockets are made non-blocking. Returns 0, or -errno.
int ks_relay(int a, int b, int stop_fd);

#endif
