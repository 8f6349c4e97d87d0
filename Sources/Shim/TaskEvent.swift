// The events a shim publishes (cd runtime/events.go topics), in the order containerd expects:
// create, start, exit, delete for a task; exec-added, exec-started, exit for an exec.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One task event, before it is encoded for containerd.
public enum TaskEvent: Equatable, Sendable {
    case create(containerID: String, bundle: String, rootfs: [RootfsMount], stdio: StdioRequest, pid: UInt32)
    case start(containerID: String, pid: UInt32)
    /// `id` is the container id for the init process, else the exec id.
    case exit(containerID: String, id: String, pid: UInt32, status: ExitStatus)
    case delete(containerID: String, pid: UInt32, status: ExitStatus)
    case execAdded(containerID: String, execID: String)
    case execStarted(containerID: String, execID: String, pid: UInt32)
    case paused(containerID: String)
    case resumed(containerID: String)
    case oom(containerID: String)

    /// The topic containerd files the event under.
    public var topic: String {
        switch self {
        case .create: "/tasks/create"
        case .start: "/tasks/start"
        case .exit: "/tasks/exit"
        case .delete: "/tasks/delete"
        case .execAdded: "/tasks/exec-added"
        case .execStarted: "/tasks/exec-started"
        case .paused: "/tasks/paused"
        case .resumed: "/tasks/resumed"
        case .oom: "/tasks/oom"
        }
    }
}

/// Sends one event to containerd; throws when it could not be delivered (the queue retries).
public protocol EventSink: Sendable {
    func send(_ event: TaskEvent, namespace: String, timestamp: Date) async throws
}

/// Where the task service puts events: `publish` never blocks and keeps order.
public protocol EventPublisher: Sendable {
    func publish(_ event: TaskEvent)
}
