// Task service: signals, execs, delete, pause/resume, and the other per-process requests.

import OCI
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension TaskService {
    // MARK: Kill

    /// Signals a process. A process that has stopped answers NotFound ("process already finished"),
    /// an exec that was never started FailedPrecondition, as containerd's runc shim does.
    public func kill(_ key: ProcessKey, signal: UInt32, all: Bool) async throws {
        let process = try process(key)
        switch process.state {
        case .stopped, .deleted: throw TaskError.notFound("\(key): process already finished")
        case .created where key.execID != nil: throw TaskError.failedPrecondition("\(key): process not created")
        case .created, .running, .paused: break
        }
        guard signal > 0 && signal < 65 else { throw TaskError.invalidArgument("invalid signal \(signal)") }
        try await sandbox.signalProcess(containerID: key.containerID, execID: key.execID, signal: signal,
                                        all: all && key.execID == nil)
    }

    // MARK: Exec

    /// Adds an exec process (not started); `specJSON` is the OCI process containerd sent.
    public func exec(_ key: ProcessKey, specJSON: [UInt8], stdio request: StdioRequest) async throws {
        guard let execID = key.execID else { throw TaskError.invalidArgument("exec id is empty") }
        guard Identifier.isValid(execID) else { throw TaskError.invalidArgument(Identifier.problem("exec id", execID)) }
        let container = try container(key.containerID)
        guard container.execs[execID] == nil else {
            throw TaskError.alreadyExists("exec \(execID) already exists in container \(key.containerID)")
        }
        switch container.initProcess.state {
        case .created, .running: break
        case let state:
            throw TaskError.failedPrecondition("cannot exec in container \(key.containerID): it is \(state.name)")
        }
        let spec = try OCIProcess.decode(json: specJSON)
        guard let args = spec.args, !args.isEmpty else { throw TaskError.invalidArgument("exec \(execID): args are empty") }
        let stdio = try StdioEndpoints.open(request, containerID: key.containerID, namespace: namespace)
        let process = TaskProcess(key: key, stdioRequest: request, stdio: stdio)
        container.execs[execID] = process
        do {
            try await sandbox.addProcess(containerID: key.containerID, execID: execID, spec: spec, stdio: stdio)
        } catch {
            container.execs[execID] = nil
            await process.stdio.closeAll()
            throw error
        }
        events.publish(.execAdded(containerID: key.containerID, execID: execID))
    }

    // MARK: Delete

    /// Deletes a stopped (or never started) process; deleting the init removes the container.
    public func delete(_ key: ProcessKey) async throws -> (pid: UInt32, status: ExitStatus) {
        let container = try container(key.containerID)
        let process = try process(key)
        if key.execID == nil, let live = container.execs.values.first(where: { $0.state.isLive }) {
            throw TaskError.failedPrecondition("cannot delete container \(key.containerID): \(live.key) is \(live.state.name)")
        }
        await lifecycle.lock()
        defer { lifecycle.unlock() }
        _ = try process.state.applying(.delete)
        if case .created = process.state {
            // A process that never ran is killed by its removal, as `runc delete --force` does.
            try process.apply(.exit(ExitStatus(code: 128 + UInt32(SIGKILL))))
        }
        let status = process.state.exitStatus ?? ExitStatus(code: 128 + UInt32(SIGKILL))
        if let execID = key.execID {
            try await sandbox.removeProcess(containerID: key.containerID, execID: execID)
            try process.apply(.delete)
            container.execs[execID] = nil
            await process.stdio.closeAll()
            return (process.pid, status)
        }
        try await sandbox.removeContainer(containerID: key.containerID)
        try process.apply(.delete)
        containers[key.containerID] = nil
        await process.stdio.closeAll()
        for exec in container.execs.values { await exec.stdio.closeAll() }
        if container.mountedRootfs { try RootfsMounts.unmountAll(container.bundle.rootfsPath) }
        events.publish(.delete(containerID: key.containerID, pid: process.pid, status: status))
        return (process.pid, status)
    }

    // MARK: Pause, Resume

    public func pause(_ containerID: String) async throws {
        let process = try container(containerID).initProcess
        _ = try process.state.applying(.pause)
        try await sandbox.pause(containerID: containerID)
        try process.apply(.pause)
        events.publish(.paused(containerID: containerID))
    }

    public func resume(_ containerID: String) async throws {
        let process = try container(containerID).initProcess
        _ = try process.state.applying(.resume)
        try await sandbox.resume(containerID: containerID)
        try process.apply(.resume)
        events.publish(.resumed(containerID: containerID))
    }

    // MARK: Pids, Stats, Update

    public func pids(_ containerID: String) async throws -> [UInt32] {
        _ = try container(containerID)
        return try await sandbox.pids(containerID: containerID)
    }

    public func stats(_ containerID: String) async throws -> EncodedMetrics {
        let process = try container(containerID).initProcess
        guard process.state.isLive else { throw TaskError.failedPrecondition("container \(containerID) is \(process.state.name)") }
        return try await sandbox.stats(containerID: containerID)
    }

    /// `resources` is an OCI LinuxResources in JSON (containerd's Update sends it in an Any).
    public func update(_ containerID: String, resources: [UInt8], annotations: [String: String]) async throws {
        let process = try container(containerID).initProcess
        guard process.state.isLive else { throw TaskError.failedPrecondition("container \(containerID) is \(process.state.name)") }
        if !resources.isEmpty {
            guard (try? JSONDecoder().decode(AnyJSONObject.self, from: Data(resources))) != nil else {
                throw TaskError.invalidArgument("update of \(containerID): resources are not a JSON object")
            }
        }
        try await sandbox.update(containerID: containerID, resources: resources, annotations: annotations)
    }

    // MARK: ResizePty, CloseIO

    public func resizePty(_ key: ProcessKey, width: UInt32, height: UInt32) async throws {
        let process = try process(key)
        guard process.stdioRequest.terminal else { throw TaskError.failedPrecondition("\(key) has no terminal") }
        guard process.state.isLive else { return }
        try await sandbox.resizePty(containerID: key.containerID, execID: key.execID, width: width, height: height)
    }

    public func closeIO(_ key: ProcessKey, stdin: Bool) async throws {
        let process = try process(key)
        guard stdin, process.stdio.stdin != nil, process.state.isLive else { return }
        try await sandbox.closeStdin(containerID: key.containerID, execID: key.execID)
    }

    // MARK: State, Connect, Shutdown

    public func state(_ key: ProcessKey) throws -> ProcessSnapshot {
        let container = try container(key.containerID)
        let process = try process(key)
        return ProcessSnapshot(key: key, bundle: container.bundle.path, pid: process.pid, state: process.state,
                               stdio: process.stdioRequest)
    }

    /// The shim's pid and the task's (0 when the task is unknown, as runc answers).
    public func connect(_ containerID: String) -> (shimPID: UInt32, taskPID: UInt32) {
        (UInt32(getpid()), containers[containerID]?.initProcess.pid ?? 0)
    }

    /// Ends the shim once no containers are left; otherwise does nothing (containers of the same
    /// pod still run here).
    public func shutdown(now: Bool) async {
        guard containers.isEmpty, !shuttingDown else { return }
        shuttingDown = true
        oomWatcher?.cancel()
        await sandbox.shutdown()
        onShutdown()
    }

    /// Ends everything (SIGTERM): kills and removes every container, then the sandbox.
    public func terminateAll() async {
        shuttingDown = true
        for container in containers.values {
            try? await sandbox.signalProcess(containerID: container.id, execID: nil, signal: UInt32(SIGKILL), all: true)
            try? await sandbox.removeContainer(containerID: container.id)
            await container.initProcess.stdio.closeAll()
            for exec in container.execs.values { await exec.stdio.closeAll() }
            if container.mountedRootfs { try? RootfsMounts.unmountAll(container.bundle.rootfsPath) }
        }
        containers = [:]
        oomWatcher?.cancel()
        await sandbox.shutdown()
    }
}

/// Decodes from any JSON object (and from nothing else).
private struct AnyJSONObject: Decodable {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        _ = try decoder.container(keyedBy: AnyKey.self)
    }
}
