// ks_agent: what the guest agent (kata-agent, PID 1) needs from C.
//
// Why C: AF_VSOCK's sockaddr_vm and prctl are not in Swift's Glibc module; the W* status macros
// are function-like macros Swift cannot import; and the early /proc mount must run before the
// Swift runtime's own initialisers (a -static-executable Swift binary reads /proc/self/exe
// before main). Every function returns -errno on failure, never sets errno for Swift to read.
#ifndef KATA_SWIFT_KS_AGENT_H
#define KATA_SWIFT_KS_AGENT_H

#include <stdint.h>
#include <sys/types.h>

/// What the early constructor did about /proc: 0 nothing needed (not PID 1, or /proc/self/exe
/// present), 1 it mounted /proc, -errno the mount failed (the Swift runtime will then abort).
int ks_agent_early_proc_mount_result(void);

/// VMADDR_CID_ANY (bind to any context id).
extern const uint32_t ks_vmaddr_cid_any;

/// socket(AF_VSOCK, SOCK_STREAM|SOCK_CLOEXEC), bind to (cid, port), listen(backlog).
/// Returns the listening fd, or -errno.
int ks_vsock_listen(uint32_t cid, uint32_t port, int backlog);

/// Connects a new AF_VSOCK stream socket to (cid, port). Returns the fd, or -errno.
int ks_vsock_connect(uint32_t cid, uint32_t port);

/// The (cid, port) a vsock socket is bound to. Returns 0, or -errno.
int ks_vsock_local_address(int fd, uint32_t *cid, uint32_t *port);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to us. 0 or -errno.
int ks_set_child_subreaper(void);

/// Blocks the given signals in the calling thread (threads created later inherit the mask).
/// 0 or -errno.
int ks_block_signals(const int *signals, int count);

/// Waits for one of the given (blocked) signals. Returns its number, or -errno (-EINTR retried
/// inside).
int ks_wait_signal(const int *signals, int count);

/// waitpid(-1, WNOHANG) once. Returns the pid reaped (> 0) and stores its status as an exit code
/// (0-255, or 128+signal for a killed process) in *exit_code; 0 when children exist but none has
/// exited; -ECHILD when there are no children; other -errno.
pid_t ks_reap_one(int *exit_code);

/// sync(), then reboot(RB_AUTOBOOT). The agent's way to end the guest: without ACPI,
/// RB_POWER_OFF only halts; with the kernel argument reboot=t the restart is a triple fault that
/// the VMM (QEMU -no-reboot, ours) sees as the end. In a child PID namespace it ends the namespace.
/// Does not return on success; returns -errno if the kernel refused.
int ks_reboot_restart(void);

/// Mixes `length` bytes into the kernel's input pool, crediting them as entropy
/// (RNDADDENTROPY on `random_fd`, an open /dev/random), then forces the CRNG to reseed
/// (RNDRESEEDCRNG) so the next read no longer follows from the state it had. Needs
/// CAP_SYS_ADMIN. 0, or -errno (-EINVAL for a length outside 1...4096).
int ks_reseed_random(int random_fd, const uint8_t *bytes, int length);

#endif
