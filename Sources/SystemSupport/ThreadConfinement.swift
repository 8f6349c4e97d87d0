import CSupport

/// The seccomp policy a VMM thread runs under (ks_thread_filter.c; docs/security.md, "The
/// seccomp policy per thread"). Installed by the thread itself, on itself only.
public enum ThreadConfinement: Sendable {
    /// vCPU threads: KVM ioctls, futexes, memory, eventfd writes; never a path or a socket.
    case vcpu
    /// A device thread (our VMM's virtio thread, a vhost-user server's thread): the vCPU set plus
    /// the FUSE server's file calls, Unix sockets and fd passing.
    case device

    public var kind: Int32 {
        switch self {
        case .vcpu: Int32(KS_THREAD_VCPU.rawValue)
        case .device: Int32(KS_THREAD_DEVICE.rawValue)
        }
    }

    /// The policy for a thread started by name: the device event loop's thread is "virtio-devices"
    /// (Sources/VMM/Virtio starts it without saying its kind).
    public static func forThread(named name: String) -> ThreadConfinement? {
        name == "virtio-devices" ? .device : nil
    }

    /// Gives the calling thread a mount namespace of its own whose root is `directory`
    /// (ks_thread_enter_directory): the FUSE server's thread, before its filter. Needs
    /// CAP_SYS_ADMIN. Irreversible for the thread; on failure it must not serve.
    public static func enterDirectory(_ directory: String) throws(Errno) {
        _ = try shimResult(ks_thread_enter_directory(directory))
    }

    /// Installs the policy on the calling thread (no_new_privs first). Only that thread and the
    /// threads it creates afterwards are filtered.
    public func install() throws(Errno) {
        // glibc opens its message catalogues (openat, killed on vCPU threads) at the first
        // strerror of the process and remembers even a miss: done here, an error message
        // formatted on this thread later touches no file.
        _ = Errno.permissionDenied.message
        _ = try shimResult(ks_thread_filter_install(kind))
    }
}
