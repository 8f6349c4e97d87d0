// What the agent keeps per container process: the engine's process and its streams.
import GuestContainers
import Synchronization

final class ProcessRecord: Sendable {
    /// "" for the container's init process.
    let execID: String
    let process: ContainerProcess
    let streams: ProcessStreams

    init(execID: String, process: ContainerProcess, streams: ProcessStreams) {
        self.execID = execID
        self.process = process
        self.streams = streams
    }

    /// What must happen before an exec process is forgotten: the shim's WaitProcess answered and
    /// both outputs read to their end. Until then its record (and pidfd) must stay.
    enum Milestone: Sendable {
        case waited, stdoutDrained, stderrDrained
    }

    private struct Milestones {
        var waited = false
        var stdoutDrained = false
        var stderrDrained = false
    }

    private let milestones = Mutex(Milestones())

    /// Records `milestone`; true (once) when all three have been reached.
    func reach(_ milestone: Milestone) -> Bool {
        milestones.withLock { m in
            let before = m.waited && m.stdoutDrained && m.stderrDrained
            switch milestone {
            case .waited: m.waited = true
            case .stdoutDrained: m.stdoutDrained = true
            case .stderrDrained: m.stderrDrained = true
            }
            return !before && m.waited && m.stdoutDrained && m.stderrDrained
        }
    }

    /// Blocks a dedicated thread (never a pool thread) until the process exits.
    func wait() async throws(AgentError) -> Int32 {
        if case .exited(let code) = process.status { return code }
        let p = process
        return try await BlockingThread.run { p.wait() }
    }
}

/// A container and its processes. Exec ids are reserved before the (slow) spawn, so a
/// duplicate is refused at once and a concurrent one never races.
final class ContainerRecord: Sendable {
    enum ExecSlot: Sendable {
        case starting
        case ready(ProcessRecord)
    }

    let id: String
    let container: Container
    let initRecord: ProcessRecord
    /// Mount points of this container's own storages, unmounted on removal.
    let storageMounts: [String]
    private let execs = Mutex<[String: ExecSlot]>([:])

    init(id: String, container: Container, initRecord: ProcessRecord, storageMounts: [String]) {
        self.id = id
        self.container = container
        self.initRecord = initRecord
        self.storageMounts = storageMounts
    }

    func reserveExec(_ execID: String) throws(AgentError) {
        try execs.withLock { e throws(AgentError) in
            guard e[execID] == nil else { throw .duplicateProcess(container: id, execID: execID) }
            e[execID] = .starting
        }
    }

    func publishExec(_ record: ProcessRecord?, for execID: String) {
        execs.withLock { e in e[execID] = record.map { .ready($0) } }
    }

    /// Forgets the exec process of `record` once it reached `milestone` and every other one
    /// (ProcessRecord.reach): the agent and the engine drop it, and its descriptors close.
    func retire(_ record: ProcessRecord, at milestone: ProcessRecord.Milestone) {
        guard !record.execID.isEmpty, record.reach(milestone) else { return }
        execs.withLock { e in
            if case .ready(let r) = e[record.execID], r === record { e[record.execID] = nil }
        }
        container.forgetExec(record.execID)
    }

    /// The init and every started exec process.
    func allProcesses() -> [ProcessRecord] {
        [initRecord] + execs.withLock { e in e.values.compactMap { if case .ready(let r) = $0 { r } else { nil } } }
    }

    /// The init process for "", else the exec process.
    func process(_ execID: String) throws(AgentError) -> ProcessRecord {
        if execID.isEmpty { return initRecord }
        guard case .ready(let r) = execs.withLock({ $0[execID] }) else {
            throw .unknownProcess(container: id, execID: execID)
        }
        return r
    }
}
