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

/// Gives the calling thread a mount namespace of its own whose root is `dir`, as virtiofsd does
/// for its whole process: the thread unshares its file system attributes and mount namespace,
/// makes every mount a slave (nothing it does propagates back), binds `dir` onto itself there,
/// pivots into it and detaches the old root. Mounts made below `dir` later in the caller's
/// namespace reach the thread if `dir` is a shared mount point there (the sandbox's share is). Afterwards
/// no path the thread resolves reaches a host file outside `dir`; descriptors it held before
/// still work. Must run before the thread's seccomp filter (which forbids these calls). 0 or
/// -errno; on failure after the unshare the thread's view is undefined and it must not serve.
int ks_thread_enter_directory(const char *dir);

/// The number of system calls `kind` allows (for tests and docs).
int ks_thread_filter_allowed_count(int kind);

/// For tests: forks; the child installs `kind` and makes system call `nr` (up to three arguments),
/// then exits 0 (allowed), 101 (EPERM), 102 (another error) or 100 (the filter did not load).
/// Returns the child's wait status (WIFSIGNALED with SIGSYS when the call kills), or -errno.
int ks_thread_filter_probe(int kind, long nr, long a0, long a1, long a2);

#endif
