// CreateContainer, StartContainer, RemoveContainer, Update, Stats, Pause, Resume, GetOOMEvent.
import AgentAPI
import Glibc
import GuestContainers
import OCI
import SwiftProtobuf
import TTRPC

extension AgentService {
    func createContainer(_ request: Kata_Agent_V1_CreateContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            let id = request.containerID
            try Self.checkID(id, field: "container_id")
            guard request.execID.isEmpty else {
                throw AgentError.invalidRequest(field: "exec_id", reason: "must be empty for a container's init process")
            }
            try await engine.registry.reserve(id)
            do {
                let record = try await makeContainer(id: id, request: request)
                await engine.oom.watch(id, count: record.container.cgroup?.oomKillCount() ?? 0)
                await engine.registry.publish(id, record)
                log.info("container \(id) created, init pid \(record.container.initProcess.pid)")
            } catch {
                await engine.registry.publish(id, nil)
                throw error
            }
            return Google_Protobuf_Empty()
        }
    }

    private func makeContainer(id: String, request: Kata_Agent_V1_CreateContainerRequest) async throws -> ContainerRecord {
        let started = ContinuousClock.now
        let spec = try OCISpec.decode(Array(request.ociSpecJson))
        guard let rootfs = spec.root?.path, rootfs.hasPrefix("/") else {
            throw AgentError.invalidRequest(
                field: "oci_spec_json root.path", reason: "must be the container's absolute guest path, got \"\(spec.root?.path ?? "")\"")
        }
        let mounts = try StorageMounts.mountAll(request.storages, field: "storages")
        log.debug("container \(id): spec decoded, \(mounts.count) storage(s) mounted after \(started.duration(to: .now))")
        do {
            let streams = try PendingStreams()
            let stdio = streams.childStdio
            let options = engine.options.containers
            let container = try await BlockingThread.run { () throws(ContainerError) in
                try Container.create(id: id, spec: spec, rootfs: rootfs, stdio: stdio, options: options)
            }
            log.debug("container \(id): created (namespaces, cgroup, mounts, launcher waiting) after \(started.duration(to: .now)): \(container.creationSteps)")
            do {
                guard let s = try streams.finish(container.initProcess) else { throw AgentError.invalidState("no streams") }
                let initRecord = ProcessRecord(execID: "", process: container.initProcess, streams: s)
                return ContainerRecord(id: id, container: container, initRecord: initRecord, storageMounts: mounts)
            } catch {
                _ = try? await BlockingThread.run { try? container.delete(force: true) }
                throw error
            }
        } catch {
            StorageMounts.unmountAll(mounts)
            throw error
        }
    }

    func startContainer(_ request: Kata_Agent_V1_StartContainerRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_StartContainerResponse
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            let c = record.container
            let started = ContinuousClock.now
            try await BlockingThread.run { () throws(ContainerError) in try c.start() }
            log.debug("container \(request.containerID): started (execve) in \(started.duration(to: .now))")
            var response = Kata_Agent_V1_StartContainerResponse()
            response.pid = UInt32(c.initProcess.pid)
            return response
        }
    }

    func removeContainer(_ request: Kata_Agent_V1_RemoveContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            try await removeContainer(id: request.containerID, timeoutSeconds: request.timeoutSeconds)
            return Google_Protobuf_Empty()
        }
    }

    /// SIGTERM and up to `timeoutSeconds` for the init to exit (0: none), then SIGKILL to every
    /// process; the cgroup and storages go, and the container is forgotten.
    func removeContainer(id: String, timeoutSeconds: UInt32) async throws {
        let record = try await engine.registry.beginRemoval(id)
        let started = ContinuousClock.now
        let c = record.container
        if timeoutSeconds > 0, c.status == .running {
            try? c.signalAll(SIGTERM)
            let deadline = ContinuousClock.now + .seconds(Int(timeoutSeconds))
            while c.status != .stopped, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        // An OOM kill that ended the container is often still unreported here (CRI deletes the
        // task as soon as it exits): read the counter once more before the cgroup goes.
        let finalOOMCount = c.cgroup?.oomKillCount()
        var deleteError: (any Error)?
        do {
            try await BlockingThread.run { () throws(ContainerError) in
                if c.status != .stopped && c.status != .created { try? c.signalAll(SIGKILL) }
                try c.delete(force: true)
            }
        } catch let error as ContainerError {
            deleteError = error
        } catch {}  // no thread for the delete: nothing to report, as before
        for p in record.allProcesses() { await p.streams.stdin.close() }
        StorageMounts.unmountAll(record.storageMounts)
        await engine.oom.forget(id, finalCount: finalOOMCount)
        await engine.registry.finishRemoval(id)
        log.info("container \(id) removed in \(started.duration(to: .now))")
        if let deleteError { throw deleteError }
    }

    func updateContainer(_ request: Kata_Agent_V1_UpdateContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            let resources = try OCIResources.decode(Array(request.resourcesJson))
            try record.container.update(resources)
            return Google_Protobuf_Empty()
        }
    }

    func statsContainer(_ request: Kata_Agent_V1_StatsContainerRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_StatsContainerResponse
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            let s = try record.container.stats()
            var r = Kata_Agent_V1_StatsContainerResponse()
            r.cpuUsageNs = (s.cpuUsageMicros ?? 0) &* 1000
            r.memoryUsageBytes = s.memoryCurrent ?? 0
            r.memoryLimitBytes = s.memoryMax ?? 0
            r.pidsCurrent = s.pidsCurrent ?? 0
            r.oomKills = s.oomKills ?? 0
            return r
        }
    }

    func pauseContainer(_ request: Kata_Agent_V1_PauseContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            try await freeze(request.containerID, true)
            return Google_Protobuf_Empty()
        }
    }

    func resumeContainer(_ request: Kata_Agent_V1_ResumeContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            try await freeze(request.containerID, false)
            return Google_Protobuf_Empty()
        }
    }

    /// The freezer waits for the cgroup to report the new state: on its own thread.
    private func freeze(_ id: String, _ frozen: Bool) async throws {
        let c = try await engine.registry.container(id).container
        try await BlockingThread.run { () throws(ContainerError) in try frozen ? c.pause() : c.resume() }
    }

    func getOOMEvent(_ request: Kata_Agent_V1_GetOOMEventRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_OOMEvent
    {
        try await rpc(context) {
            var event = Kata_Agent_V1_OOMEvent()
            event.containerID = try await engine.oom.next(engine.registry)
            return event
        }
    }

    /// Container and exec ids become cgroup and file names: keep them plain.
    static func checkID(_ id: String, field: String) throws(AgentError) {
        let ok = !id.isEmpty && id.utf8.count <= 128 && id != "." && id != ".."
            && id.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F || c == 0x2E
            }
        guard ok else {
            throw .invalidRequest(field: field, reason: "must be 1 to 128 characters of [A-Za-z0-9._-], got \"\(id)\"")
        }
    }
}
