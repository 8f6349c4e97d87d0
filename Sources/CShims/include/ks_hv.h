// ks_hv: process spawning and Unix-socket calls for the hypervisor backends (QEMU, vhost-user,
// hybrid vsock).
//
// Why: posix_spawn file actions and attributes, sockaddr_un, and recvmsg/SCM_RIGHTS control
// messages (CMSG_* macros) are awkward or unavailable from Swift; send must use MSG_NOSIGNAL so a
// peer that went away gives EPIPE instead of killing the process.
#ifndef KS_HV_H
#define KS_HV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Spawns `path` with `argv` (NULL-terminated) and `envp` (NULL-terminated) in a new process
/// group of its own (pgid = pid), stdin from /dev/null, stdout and stderr onto `out_fd`, the
/// signal mask cleared and every signal at its default. Stores the pid. 0 or -errno.
int ks_hv_spawn(const char *path, char *const argv[], char *const envp[], int out_fd, pid_t *pid);

/// What a guard reports to its caller: an errno, or the VMM's pid.
struct ks_hv_spawn_report {
    int error;
    int pid;
};

/// Starts a VMM under a guard process, as a jailer would, for VMMs that drop their own privileges
/// (QEMU's -runas clears PR_SET_PDEATHSIG, which would let the VMM outlive a killed shim).
/// The guard is a fork of the caller: PR_SET_PDEATHSIG(SIGUSR2) ties it to the *calling thread*
/// (call it from a thread that lives as long as the VMM, e.g. its reaper); it closes every fd but
/// 0-2 (stdin /dev/null, stdout and stderr onto `out_fd`), forks the VMM into a process group of
/// its own (pgid = pid, signal mask cleared, every signal at its default, PR_SET_PDEATHSIG(SIGKILL)
/// towards the guard), and waits: when the VMM ends, the guard exits with its status (128 + signal
/// when killed); when the calling thread dies, the guard SIGKILLs the VMM's group first. So the
/// VMM holds exactly fds 0-2 of ours, and waiting for the guard is waiting for the VMM.
/// Stores both pids. 0 or -errno (also the VMM's exec failure).
int ks_hv_spawn_guarded(const char *path, char *const argv[], char *const envp[], int out_fd, pid_t *guard,
                        pid_t *vmm);

/// waitpid(pid, &status, nohang ? WNOHANG : 0), retrying EINTR. Returns the pid (0 when nohang
/// and still running) or -errno. `*exit_code` is the exit status, or 128 + signal when killed.
int ks_hv_wait(pid_t pid, int nohang, int *exit_code);

/// kill(-pgid, signo): signals a whole process group. 0 or -errno.
int ks_hv_kill_group(pid_t pgid, int signo);

/// A listening SOCK_STREAM Unix socket bound to `path` (CLOEXEC, non-blocking if asked). fd or -errno;
/// -ENAMETOOLONG when the path does not fit sockaddr_un.
int ks_hv_unix_listen(const char *path, int backlog, int nonblocking);

/// A SOCK_STREAM Unix socket connected to `path` (CLOEXEC, blocking). fd or -errno.
int ks_hv_unix_connect(const char *path);

/// accept4(fd, CLOEXEC [| NONBLOCK]). fd or -errno (-EAGAIN when nothing is pending).
int ks_hv_accept(int fd, int nonblocking);

/// socketpair(AF_UNIX, SOCK_STREAM | CLOEXEC). 0 or -errno.
int ks_hv_socketpair(int fds[2]);

/// recvmsg of up to `len` bytes with up to `max_fds` SCM_RIGHTS descriptors (received CLOEXEC).
/// Returns the byte count (0 at end of stream) or -errno; `*nfds` gets the number of fds stored.
/// Descriptors beyond `max_fds`, or a truncated control message, are closed and give -EMSGSIZE.
ssize_t ks_hv_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds);

/// send(fd, buf, len, MSG_NOSIGNAL). Byte count or -errno.
ssize_t ks_hv_send(int fd, const void *buf, size_t len);

/// mmap(NULL, size, READ|WRITE, MAP_SHARED, fd, offset). 0 or -errno; `*out` gets the address.
int ks_hv_mmap_shared(int fd, uint64_t size, uint64_t offset, void **out);

/// shutdown(fd, how) with how 0 = read, 1 = write, 2 = both. 0 or -errno.
int ks_hv_shutdown(int fd, int how);

/// pipe2(fds, O_CLOEXEC) (pipe2 is a GNU extension Swift's Glibc module does not show). 0 or -errno.
int ks_hv_pipe(int fds[2]);

#endif
