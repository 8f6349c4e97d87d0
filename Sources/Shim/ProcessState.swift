// The lifecycle of one process (a container's init or an exec), as containerd's runc shim keeps it
// (pkg/process/*_state.go): created -> running <-> paused, any live state -> stopped -> deleted.
// Every request is checked here first; an invalid one throws and changes nothing.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a process ended.
public struct ExitStatus: Equatable, Sendable {
    /// The exit code, or 128 + signal number for a process killed by a signal.
    public var code: UInt32
    public var exitedAt: Date

    public init(code: UInt32, exitedAt: Date = Date()) {
        self.code = code
        self.exitedAt = exitedAt
    }
}

/// The state of a process.
public enum ProcessState: Equatable, Sendable {
    case created
    case running
    case paused
    case stopped(ExitStatus)
    case deleted(ExitStatus?)

    /// The name containerd's runc shim uses in its transition errors.
    public var name: String {
        switch self {
        case .created: "created"
        case .running: "running"
        case .paused: "paused"
        case .stopped: "stopped"
        case .deleted: "deleted"
        }
    }

    /// The exit status once the process has stopped.
    public var exitStatus: ExitStatus? {
        switch self {
        case .stopped(let status): status
        case .deleted(let status): status
        default: nil
        }
    }

    public var isLive: Bool {
        switch self {
        case .created, .running, .paused: true
        case .stopped, .deleted: false
        }
    }
}

/// What can happen to a process.
public enum ProcessEvent: Equatable, Sendable {
    case start, pause, resume, exit(ExitStatus), delete

    var name: String {
        switch self {
        case .start: "start"
        case .pause: "pause"
        case .resume: "resume"
        case .exit: "exit"
        case .delete: "delete"
        }
    }
}

/// A request the process's current state does not allow.
public struct ProcessStateError: Error, Equatable, CustomStringConvertible, Sendable {
    public var state: String
    public var event: String

    public var description: String {
        switch (event, state) {
        case ("delete", _): "cannot delete a \(state) process"
        case ("start", _): "cannot start a \(state) process"
        case ("pause", _): "cannot pause a \(state) process"
        case ("resume", _): "cannot resume a \(state) process"
        default: "invalid state transition: \(event) in state \(state)"
        }
    }
}

extension ProcessState {
    /// The state after `event`, or the reason it is not allowed.
    public func applying(_ event: ProcessEvent) throws(ProcessStateError) -> ProcessState {
        switch (self, event) {
        case (.created, .start): return .running
        case (.running, .pause): return .paused
        case (.paused, .resume): return .running
        case (.created, .exit(let status)), (.running, .exit(let status)), (.paused, .exit(let status)):
            return .stopped(status)
        case (.created, .delete): return .deleted(nil)
        case (.stopped(let status), .delete): return .deleted(status)
        default: throw ProcessStateError(state: name, event: event.name)
        }
    }
}
