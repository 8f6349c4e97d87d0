import SystemSupport

/// Errors of the hypervisor layer; each case names the operation that failed.
public enum HypervisorError: Error, Sendable, CustomStringConvertible {
    /// The configuration cannot work (missing kernel, bad sizes, path too long...).
    case invalidConfig(String)
    /// The chosen backend cannot run on this host (see `kata-ctl check`).
    case backendUnavailable(String)
    /// A call that is not valid in the VM's current state.
    case invalidState(operation: String, state: String)
    /// This backend does not offer the operation.
    case unsupported(String)
    /// Spawning or signalling the VMM process failed.
    case process(operation: String, Errno)
    /// The VMM process exited before it was asked to; its last console lines are attached.
    case exitedEarly(code: Int32, consoleTail: String)
    /// The vhost-user frontend did not connect, or broke the protocol.
    case vhostUser(String)
    /// A system call of the named operation failed.
    case system(operation: String, Errno)
    /// Connecting to a guest vsock port failed (refused until the deadline, reset, VM gone).
    case vsockConnect(port: UInt32, reason: String)
    /// A wait ran past its deadline.
    case timeout(String)
    /// QMP (QEMU's control socket) failed or refused a command.
    case qmp(String)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "hypervisor config: \(why)"
        case .backendUnavailable(let why): "hypervisor backend unavailable: \(why)"
        case .invalidState(let op, let state): "hypervisor \(op): not valid while \(state)"
        case .unsupported(let what): "hypervisor: \(what) is not supported by this backend"
        case .process(let op, let e): "hypervisor process \(op): \(e)"
        case .exitedEarly(let code, let tail): "hypervisor: VMM exited with status \(code); console tail:\n\(tail)"
        case .vhostUser(let why): "vhost-user: \(why)"
        case .system(let op, let e): "hypervisor \(op): \(e)"
        case .vsockConnect(let port, let why): "vsock connect to guest port \(port): \(why)"
        case .timeout(let what): "hypervisor: timed out \(what)"
        case .qmp(let why): "qmp: \(why)"
        }
    }
}
