// ks_thread_filter: seccomp allowlists for the threads of our in-process VMM (docs/security.md,
// "The seccomp policy per thread"). Built with libseccomp in C because its API is variadic.
#ifndef KS_THREAD_FILTER_H
#define KS_THREAD_FILTER_H

/// Which policy a thread gets.
enum ks_thread_kind {
    /// A vCPU thread: KVM_RUN and the few calls its exit handling makes (KVM ioctls, futexes,
    /// memory, eventfd writes to wake the device thread, kicks of the other vCPUs).
    KS_THREAD_VCPU = 0,
    /// The virtio device thread: the vCPU set plus the FUSE server's file calls below the share
    /// and the vsock muxer's calls on Unix sockets.
    KS_THREAD_DEVICE = 1,
};

/// Sets no_new_privs and loads the policy for `kind` on the calling thread only (no TSYNC; threads
/// it creates later inherit it). Calls outside the allowlist fail with EPERM; the calls an
/// attacker wants (exec, fork, ptrace, mount, namespaces, modules, set*id, and for vCPU threads
/// any open or socket) kill the whole process with SIGSYS. 0 or -errno.
int ks_thread_filter_install(int kind);

/// The number of system calls `kind` allows (for tests and docs).
int ks_thread_filter_allowed_count(int kind);

/// For tests: forks; the child installs `kind` and makes system call `nr` (up to three arguments),
/// then exits 0 (allowed), 101 (EPERM), 102 (another error) or 100 (the filter did not load).
/// Returns the child's wait status (WIFSIGNALED with SIGSYS when the call kills), or -errno.
int ks_thread_filter_probe(int kind, long nr, long a0, long a1, long a2);

#endif
