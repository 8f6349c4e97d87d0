// Errors of the container engine. Each case names the operation; `description` is what the
// agent puts on the wire ("container c1: pivot_root: Invalid argument").
import Glibc
import SystemSupport

public enum ContainerError: Error, Equatable, CustomStringConvertible {
    /// The spec (or a Process / Resources JSON) is malformed or asks for something unsupported.
    case invalidSpec(field: String, reason: String)
    /// A step of the child's setup between clone and execve failed.
    case setup(id: String, step: String, detail: String?, errno: Int32)
    /// A system call in the engine (parent side) failed.
    case system(id: String, operation: String, errno: Int32)
    /// A cgroup file could not be created, written or read.
    case cgroup(id: String, path: String, operation: String, errno: Int32)
    /// The operation is not allowed in the container's (or process's) current state.
    case invalidTransition(id: String, from: String, operation: String)
    /// A signal for a container that has stopped: runc's "process already finished" (the agent
    /// answers NotFound, which containerd ignores when it stops a pod).
    case processFinished(id: String)
    /// The child died before it reported (e.g. killed during setup).
    case childVanished(id: String, phase: String)
    /// No exec process with that id exists / it already exists.
    case unknownProcess(id: String, execID: String)
    case duplicateProcess(id: String, execID: String)

    public var description: String {
        switch self {
        case .invalidSpec(let field, let reason):
            return "invalid OCI spec: \(field): \(reason)"
        case .setup(let id, let step, let detail, let e):
            let what = detail.map { "\(step) \($0)" } ?? step
            return "container \(id): \(what): \(Errno(e).message)"
        case .system(let id, let op, let e):
            return "container \(id): \(op): \(Errno(e).message)"
        case .cgroup(let id, let path, let op, let e):
            return "container \(id): cgroup \(op) \(path): \(Errno(e).message)"
        case .invalidTransition(let id, let from, let op):
            return "container \(id): cannot \(op) while \(from)"
        case .processFinished(let id):
            return "container \(id): process already finished"
        case .childVanished(let id, let phase):
            return "container \(id): the process exited during \(phase)"
        case .unknownProcess(let id, let exec):
            return "container \(id): no process \(exec)"
        case .duplicateProcess(let id, let exec):
            return "container \(id): process \(exec) already exists"
        }
    }
}
