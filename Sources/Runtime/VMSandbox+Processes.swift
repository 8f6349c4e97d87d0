// Task calls on processes and containers, each mapped onto agent calls (docs/shim.md):
// start → StartContainer / ExecProcess, signal → SignalProcess, wait → WaitProcess + stdio EOF,
// resize → TtyWinResize, close stdin → the host reader's end then CloseStdin, pids →
// ListProcesses, stats → StatsContainer (as cgroups v1 Metrics), pause/resume, update.
// The host pid reported for every process is the shim's own (guest pids appear only in Pids).

import AgentAPI
import OCI
import Shim
#if canImport(Glibc)
import Glibc
#endif

extension VMSandbox {
    func process(_ containerID: String, _ execID: String?) throws(RuntimeError) -> GuestProcess {
        guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
        guard let process = processes[Key(containerID: containerID, execID: execID ?? "")] else {
            throw .noSuchProcess(containerID: containerID, execID: execID ?? "")
        }
        return process
    }

    public func addProcess(containerID: String, execID: String, spec: OCIProcess, stdio: ProcessStdio) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard let container = containers[containerID] else { throw .noSuchContainer(containerID) }
            guard !execID.isEmpty else { throw .invalidSpec("exec id is empty") }
            let key = Key(containerID: containerID, execID: execID)
            guard processes[key] == nil else { throw .alreadyExists("exec \(execID) in container \(containerID)") }
            let json = try GuestSpec.encode(GuestSpec.execProcess(spec, containerSpec: container.spec))
            processes[key] = GuestProcess(containerID: containerID, execID: execID, stdio: stdio, execJSON: json)
        }
    }

    public func startProcess(containerID: String, execID: String?) async throws -> UInt32 {
        try await mapped { () async throws(RuntimeError) -> UInt32 in
            let process = try process(containerID, execID)
            guard !process.started, process.exitStatus == nil else {
                throw .invalidSpec("\(process.name) was already started")
            }
            process.started = true
            do throws(RuntimeError) {
                if let json = process.execJSON {
                    process.guestPID = try await call("ExecProcess") { agent in
                        try await agent.execProcess(.with {
                            $0.containerID = containerID
                            $0.execID = process.execID
                            $0.processJson = .init(json)
                        }).pid
                    }
                } else {
                    process.guestPID = try await call("StartContainer") { agent in
                        try await agent.startContainer(.with { $0.containerID = containerID }).pid
                    }
                    startPath.mark("container started")
                    if let line = startPath.reportOnce() { logger.info("sandbox \(sandboxID): \(line)") }
                }
            } catch {
                process.started = false
                throw error
            }
            let vm = try currentVM()
            if let stdin = process.stdio.stdin {
                let agent = vm.agent
                let logger = self.logger
                process.stdinPump = Task { await ProcessIO.pumpInput(agent: agent, process: process, reader: stdin, logger: logger) }
            }
            runProcess(process, agent: vm.agent)
            logger.info("\(process.name) started (guest pid \(process.guestPID))")
            return UInt32(getpid())
        }
    }

    /// Runs the process's output pumps and WaitProcess in the background; records the exit.
    private func runProcess(_ process: GuestProcess, agent: Kata_Agent_V1_AgentServiceClient) {
        let logger = self.logger
        Task {
            let status = await ProcessIO.run(agent: agent, process: process, logger: logger)
            await self.exited(process, status: status)
        }
    }

    private func exited(_ process: GuestProcess, status: UInt32) async {
        // Stdin has no reader left in the guest; stop copying into it.
        process.stdinPump?.cancel()
        await process.stdio.stdin?.close()
        var final = status
        if case .dead = vmState { final = vmGoneExitStatus }
        logger.info("\(process.name) exited with status \(final)")
        finish(process, status: final)
    }

    public func waitProcess(containerID: String, execID: String?) async throws -> UInt32 {
        let found = try await mapped { () async throws(RuntimeError) -> GuestProcess in try process(containerID, execID) }
        if let status = found.exitStatus { return status }
        return await withCheckedContinuation { found.waiters.append($0) }
    }

    public func signalProcess(containerID: String, execID: String?, signal: UInt32, all: Bool) async throws {
        try await mapped { () async throws(RuntimeError) in
            let process = try process(containerID, execID)
            if process.exitStatus != nil && !all { return }
            if !process.started && process.execJSON != nil {
                // An exec never started exists only on the host: the signal ends it here.
                finish(process, status: 128 + signal)
                await process.stdio.closeAll()
                return
            }
            // A container that has stopped in the guest (its exit may still be on its way to us)
            // answers NotFound, "process already finished", as runc does.
            _ = try await call("SignalProcess") { agent in
                try await agent.signalProcess(.with {
                    $0.containerID = containerID
                    $0.execID = execID ?? ""
                    $0.signal = signal
                    $0.all = all
                })
            }
        }
    }

    public func resizePty(containerID: String, execID: String?, width: UInt32, height: UInt32) async throws {
        try await mapped { () async throws(RuntimeError) in
            _ = try process(containerID, execID)
            _ = try await call("TtyWinResize") { agent in
                try await agent.ttyWinResize(.with {
                    $0.containerID = containerID
                    $0.execID = execID ?? ""
                    $0.row = height
                    $0.column = width
                })
            }
        }
    }

    public func closeStdin(containerID: String, execID: String?) async throws {
        try await mapped { () async throws(RuntimeError) in
            let process = try process(containerID, execID)
            if let stdin = process.stdio.stdin {
                // The pump delivers what is buffered, sees the end and sends CloseStdin.
                await stdin.finish()
                return
            }
            guard process.started else { return }
            _ = try await call("CloseStdin") { agent in
                try await agent.closeStdin(.with {
                    $0.containerID = containerID
                    $0.execID = execID ?? ""
                })
            }
        }
    }

    public func pids(containerID: String) async throws -> [UInt32] {
        try await mapped { () async throws(RuntimeError) -> [UInt32] in
            guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
            return try await call("ListProcesses") { agent in
                try await agent.listProcesses(.with { $0.containerID = containerID }).pids
            }
        }
    }

    public func stats(containerID: String) async throws -> EncodedMetrics {
        try await mapped { () async throws(RuntimeError) -> EncodedMetrics in
            guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
            let stats = try await call("StatsContainer") { agent in
                try await agent.statsContainer(.with { $0.containerID = containerID })
            }
            return try MetricsConversion.encoded(stats)
        }
    }

    public func pause(containerID: String) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
            _ = try await call("PauseContainer") { agent in
                try await agent.pauseContainer(.with { $0.containerID = containerID })
            }
        }
    }

    public func resume(containerID: String) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
            _ = try await call("ResumeContainer") { agent in
                try await agent.resumeContainer(.with { $0.containerID = containerID })
            }
        }
    }

    public func update(containerID: String, resources: [UInt8], annotations: [String: String]) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
            _ = try await call("UpdateContainer") { agent in
                try await agent.updateContainer(.with {
                    $0.containerID = containerID
                    $0.resourcesJson = .init(resources)
                })
            }
        }
    }

    public func removeProcess(containerID: String, execID: String) async throws {
        try await mapped { () async throws(RuntimeError) in
            let process = try process(containerID, execID)
            if process.started && process.exitStatus == nil {
                _ = try? await call("SignalProcess") { agent in
                    try await agent.signalProcess(.with {
                        $0.containerID = containerID
                        $0.execID = execID
                        $0.signal = UInt32(SIGKILL)
                    })
                }
            }
            process.stdinPump?.cancel()
            if process.exitStatus == nil { finish(process, status: 128 + UInt32(SIGKILL)) }
            await process.stdio.closeAll()
            processes[Key(containerID: containerID, execID: execID)] = nil
        }
    }
}
