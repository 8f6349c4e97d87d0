// Errors of the VM sandbox; each case names the operation. `taskError` maps them onto the shim's
// TaskError classes once, where VMSandbox hands them back to the task service.

import SystemSupport
import Shim
import TTRPC
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the VM sandbox.
public enum RuntimeError: Error, CustomStringConvertible {
    case config(ConfigError)
    /// The VM could not be started.
    case boot(reason: String, consoleTail: String)
    /// The agent never answered (connect or health check) before the deadline.
    case agentUnreachable(reason: String, consoleTail: String)
    /// An agent call failed; `operation` is the RPC.
    case agentCall(operation: String, TTRPCError)
    /// The VM ended while the sandbox still needed it.
    case vmGone(state: String, consoleTail: String)
    case noSuchContainer(String)
    case noSuchProcess(containerID: String, execID: String)
    case alreadyExists(String)
    case invalidSpec(String)
    /// A sandbox or container ID that must not name a path (containerd's identifier rule).
    case invalidIdentifier(String)
    case shutDown
    case system(operation: String, errno: Int32)
    /// The pod's network could not be read, wired to the VM, or set up in the guest.
    case network(operation: String, reason: String)

    public var description: String {
        switch self {
        case .config(let error): "kata-swift: \(error)"
        case .boot(let reason, let tail): "kata-swift: cannot start the sandbox VM: \(reason)\(Self.tail(tail))"
        case .agentUnreachable(let reason, let tail):
            "kata-swift: the guest agent did not answer: \(reason)\(Self.tail(tail))"
        case .agentCall(let operation, let error): "kata-swift: agent \(operation): \(error.message) (\(error.code))"
        case .vmGone(let state, let tail): "kata-swift: the sandbox VM is gone (\(state))\(Self.tail(tail))"
        case .noSuchContainer(let id): "kata-swift: sandbox has no container \(id)"
        case .noSuchProcess(let id, let exec): "kata-swift: container \(id) has no exec process \(exec)"
        case .alreadyExists(let what): "kata-swift: \(what) already exists"
        case .invalidSpec(let why): "kata-swift: container spec: \(why)"
        case .invalidIdentifier(let message): "kata-swift: \(message)"
        case .shutDown: "kata-swift: the sandbox is shut down"
        case .system(let operation, let code): "kata-swift: \(operation): \(Errno(code).message)"
        case .network(let operation, let reason): "kata-swift: pod network: \(operation): \(reason)"
        }
    }

    /// The last console lines, indented, or nothing.
    static func tail(_ text: String, lines: Int = 25) -> String {
        let kept = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
        let body = kept.joined(separator: "\n").trimmingTrailingNewlines()
        return body.isEmpty ? "" : "\nguest console (last lines):\n" + body
    }

    /// The shim's error class for this failure.
    public var taskError: TaskError {
        switch self {
        case .noSuchContainer, .noSuchProcess: TaskError(.notFound, description)
        case .alreadyExists: TaskError(.alreadyExists, description)
        case .invalidSpec, .invalidIdentifier, .config: TaskError(.invalidArgument, description)
        case .shutDown: TaskError(.failedPrecondition, description)
        case .boot, .agentUnreachable, .vmGone, .network: TaskError(.unavailable, description)
        case .agentCall(_, let error):
            switch error.code {
            case .notFound: TaskError(.notFound, description)
            case .alreadyExists: TaskError(.alreadyExists, description)
            case .invalidArgument: TaskError(.invalidArgument, description)
            case .failedPrecondition: TaskError(.failedPrecondition, description)
            case .unimplemented: TaskError(.unimplemented, description)
            case .unavailable: TaskError(.unavailable, description)
            default: TaskError(.unknown, description)
            }
        case .system: TaskError(.unknown, description)
        }
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = self
        while s.last == "\n" || s.last == "\r" { s.removeLast() }
        return s
    }
}
