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
