// ks_hv: process spawning and shared memory for the hypervisor backends (QEMU, vhost-user).
// Their Unix sockets are ks_unix.h.
//
// Why: fork with an async-signal-safe child (the guard), waitpid status macros, and mmap's
// MAP_FAILED are awkward or unavailable from Swift.
#ifndef KS_HV_H
#define KS_HV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/// mmap(NULL, size, READ|WRITE, MAP_SHARED, fd, offset). 0 or -errno; `*out` gets the address.
int ks_hv_mmap_shared(int fd, uint64_t size, uint64_t offset, void **out);

#endif
