// ks_unix: Unix stream sockets, the one copy for every module (shim socket, hypervisor backends,
// vhost-user, hybrid vsock, the agent's debug console, kata-ctl).
//
// Why: sockaddr_un, recvmsg/SCM_RIGHTS control messages (CMSG_* macros) and accept4 are awkward
// or unavailable from Swift; send must use MSG_NOSIGNAL so a peer that went away gives EPIPE
// instead of killing the process. Every function returns 0, a descriptor or a byte count on
// success and -errno on failure; every descriptor it makes is close-on-exec.
#ifndef KS_UNIX_H
#define KS_UNIX_H

#include <stddef.h>
#include <sys/types.h>

/// A listening SOCK_STREAM Unix socket bound to `path`, non-blocking if asked. With `owner_only`
/// the socket file is created with mode 0600: the socket is fchmod'ed before bind, and Linux
/// gives the new file the socket inode's mode (less the umask), so there is no moment at which
/// others may connect. -EINVAL for an empty path, -ENAMETOOLONG when it does not fit
/// sockaddr_un.sun_path.
int ks_unix_listen(const char *path, int backlog, int nonblocking, int owner_only);

/// A SOCK_STREAM Unix socket connected to `path` (blocking; connect retried on EINTR).
int ks_unix_connect(const char *path);

/// accept4(fd, CLOEXEC [| NONBLOCK]), retried on EINTR (-EAGAIN when nothing is pending).
int ks_unix_accept(int fd, int nonblocking);

/// socketpair(AF_UNIX, SOCK_STREAM | CLOEXEC).
int ks_unix_socketpair(int fds[2]);

/// Writes the filesystem path a bound Unix socket `fd` listens on into `buf` (NUL-terminated).
int ks_unix_socket_path(int fd, char *buf, int buf_len);

/// recvmsg of up to `len` bytes with up to `max_fds` SCM_RIGHTS descriptors (received CLOEXEC).
/// Returns the byte count (0 at end of stream) or -errno; `*nfds` gets the number of fds stored.
/// Descriptors beyond `max_fds`, or a truncated control message, are closed and give -EMSGSIZE.
ssize_t ks_unix_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds);

/// send(fd, buf, len, MSG_NOSIGNAL), retried on EINTR. Byte count or -errno.
ssize_t ks_unix_send(int fd, const void *buf, size_t len);

/// sendmsg of `len` bytes (at least 1) with `nfds` descriptors (at most 16) as SCM_RIGHTS, with
/// MSG_NOSIGNAL, retried on EINTR. The descriptors ride with the first byte; the rest of `buf`
/// is sent with plain send until done. Byte count or -errno.
ssize_t ks_unix_send_with_fds(int fd, const void *buf, size_t len, const int *fds, int nfds);

/// shutdown(fd, how) with how 0 = read, 1 = write, 2 = both.
int ks_unix_shutdown(int fd, int how);

#endif
