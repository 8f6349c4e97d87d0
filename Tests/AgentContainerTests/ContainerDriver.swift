// Drives containers through the agent API as the shim does: create, start, two pending reads per
// process, stdin writes + CloseStdin, wait. Used against the in-process agent on the host and
// against the real agent in a QEMU guest.
import AgentAPI
import Foundation
import GuestContainers
import OCI
import TTRPC

struct RunResult {
    var status: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

struct ContainerDriver: Sendable {
    let agent: Kata_Agent_V1_AgentServiceClient
    /// `len` of each ReadStdout/ReadStderr.
    var readLength: UInt32 = 256 << 10

    func create(_ id: String, _ spec: OCISpec) async throws {
        var r = Kata_Agent_V1_CreateContainerRequest()
        r.containerID = id
        r.ociSpecJson = try BusyboxRootfs.json(spec)
        _ = try await agent.createContainer(r)
    }

    @discardableResult
    func start(_ id: String) async throws -> UInt32 {
        var r = Kata_Agent_V1_StartContainerRequest()
        r.containerID = id
        return try await agent.startContainer(r).pid
    }

    func remove(_ id: String, timeout: UInt32 = 0) async throws {
        var r = Kata_Agent_V1_RemoveContainerRequest()
        r.containerID = id
        r.timeoutSeconds = timeout
        _ = try await agent.removeContainer(r)
    }

    func wait(_ id: String, exec: String = "") async throws -> Int32 {
        var r = Kata_Agent_V1_WaitProcessRequest()
        r.containerID = id
        r.execID = exec
        return try await agent.waitProcess(r).status
    }

    func signal(_ id: String, exec: String = "", _ signo: Int32, all: Bool = false) async throws {
        var r = Kata_Agent_V1_SignalProcessRequest()
        r.containerID = id
        r.execID = exec
        r.signal = UInt32(signo)
        r.all = all
        _ = try await agent.signalProcess(r)
    }

    func write(_ id: String, exec: String = "", _ bytes: [UInt8]) async throws -> UInt32 {
        var r = Kata_Agent_V1_WriteStreamRequest()
        r.containerID = id
        r.execID = exec
        r.data = Data(bytes)
        return try await agent.writeStdin(r).len
    }

    func closeStdin(_ id: String, exec: String = "") async throws {
        var r = Kata_Agent_V1_CloseStdinRequest()
        r.containerID = id
        r.execID = exec
        _ = try await agent.closeStdin(r)
    }

    /// Reads a stream until EOF (an empty reply).
    func drain(_ id: String, exec: String = "", stderr: Bool = false) async throws -> [UInt8] {
        var out: [UInt8] = []
        while true {
            var r = Kata_Agent_V1_ReadStreamRequest()
            r.containerID = id
            r.execID = exec
            r.len = readLength
            let data = stderr ? try await agent.readStderr(r).data : try await agent.readStdout(r).data
            if data.isEmpty { return out }
            out += data
        }
    }

    /// Both output streams to EOF and the exit status, with `input` then EOF on stdin.
    func collect(_ id: String, exec: String = "", input: [UInt8]? = nil) async throws -> RunResult {
        async let out = drain(id, exec: exec)
        async let err = drain(id, exec: exec, stderr: true)
        if let input {
            if !input.isEmpty { _ = try await write(id, exec: exec, input) }
            try await closeStdin(id, exec: exec)
        }
        let status = try await wait(id, exec: exec)
        return RunResult(status: status, stdout: try await out, stderr: try await err)
    }

    /// create + start + collect + remove.
    func run(_ id: String, _ spec: OCISpec, input: [UInt8]? = nil) async throws -> RunResult {
        try await create(id, spec)
        do {
            try await start(id)
            let r = try await collect(id, input: input)
            try await remove(id)
            return r
        } catch {
            try? await remove(id)
            throw error
        }
    }
}
