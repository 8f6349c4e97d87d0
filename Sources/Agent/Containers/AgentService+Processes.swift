// ExecProcess, SignalProcess, WaitProcess, ListProcesses and the process I/O calls.
import AgentAPI
import FoundationEssentials
import Glibc
import GuestContainers
import OCI
import SwiftProtobuf
import TTRPC

extension AgentService {
    /// Largest ReadStdout/ReadStderr reply (well below ttrpc's 4 MiB frame cap).
    static let maxReadLength = 1 << 20

    func execProcess(_ request: Kata_Agent_V1_ExecProcessRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ExecProcessResponse
    {
        try await rpc(context) {
            try Self.checkID(request.execID, field: "exec_id")
            let record = try await engine.registry.container(request.containerID)
            let process = try OCIProcess.decode(Array(request.processJson))
            try record.reserveExec(request.execID)
            var published: ProcessRecord?
            defer { record.publishExec(published, for: request.execID) }
            let streams = try PendingStreams()
            let stdio = streams.childStdio
            let c = record.container
            let execID = request.execID
            let proc = try await BlockingThread.run { () throws(ContainerError) in
                try c.exec(id: execID, process: process, stdio: stdio)
            }
            guard let s = try streams.finish(proc) else { throw AgentError.invalidState("no streams") }
            published = ProcessRecord(execID: execID, process: proc, streams: s)
            var response = Kata_Agent_V1_ExecProcessResponse()
            response.pid = UInt32(proc.pid)
            return response
        }
    }

    func signalProcess(_ request: Kata_Agent_V1_SignalProcessRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            guard request.signal >= 1, request.signal <= 64 else {
                throw AgentError.invalidRequest(field: "signal", reason: "must be 1 to 64, got \(request.signal)")
            }
            let signo = Int32(request.signal)
            let record = try await engine.registry.container(request.containerID)
            if request.all {
                try record.container.signalAll(signo)
            } else if request.execID.isEmpty {
                try record.container.signal(signo)
            } else {
                try record.process(request.execID).process.signal(signo)
            }
            return Google_Protobuf_Empty()
        }
    }

    func waitProcess(_ request: Kata_Agent_V1_WaitProcessRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_WaitProcessResponse
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            var response = Kata_Agent_V1_WaitProcessResponse()
            if request.execID.isEmpty {
                let c = record.container
                response.status = try await BlockingThread.run { c.wait() }
                log.debug("container \(request.containerID): init exited with status \(response.status)")
            } else {
                let process = try record.process(request.execID)
                response.status = try await process.wait()
                record.retire(process, at: .waited)
            }
            return response
        }
    }

    func listProcesses(_ request: Kata_Agent_V1_ListProcessesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ListProcessesResponse
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            var response = Kata_Agent_V1_ListProcessesResponse()
            response.pids = record.container.processIDs().map { UInt32($0) }
            return response
        }
    }

    // MARK: I/O

    func writeStdin(_ request: Kata_Agent_V1_WriteStreamRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_WriteStreamResponse
    {
        try await rpc(context) {
            let p = try await process(request.containerID, request.execID)
            var response = Kata_Agent_V1_WriteStreamResponse()
            response.len = UInt32(try await p.streams.stdin.write(Array(request.data)))
            return response
        }
    }

    func readStdout(_ request: Kata_Agent_V1_ReadStreamRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ReadStreamResponse
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            let p = try record.process(request.execID)
            let response = try await Self.read(p.streams.stdout, request.len)
            if response.data.isEmpty { record.retire(p, at: .stdoutDrained) }
            return response
        }
    }

    func readStderr(_ request: Kata_Agent_V1_ReadStreamRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ReadStreamResponse
    {
        try await rpc(context) {
            let record = try await engine.registry.container(request.containerID)
            let p = try record.process(request.execID)
            let response = try await Self.read(p.streams.stderr, request.len)
            if response.data.isEmpty { record.retire(p, at: .stderrDrained) }
            return response
        }
    }

    func closeStdin(_ request: Kata_Agent_V1_CloseStdinRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            try await process(request.containerID, request.execID).streams.stdin.close()
            return Google_Protobuf_Empty()
        }
    }

    func ttyWinResize(_ request: Kata_Agent_V1_TtyWinResizeRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            guard request.row <= UInt32(UInt16.max), request.column <= UInt32(UInt16.max) else {
                throw AgentError.invalidRequest(field: "row/column", reason: "must fit in 16 bits")
            }
            let p = try await process(request.containerID, request.execID)
            try p.process.resizeTerminal(rows: UInt16(request.row), cols: UInt16(request.column))
            return Google_Protobuf_Empty()
        }
    }

    private func process(_ containerID: String, _ execID: String) async throws(AgentError) -> ProcessRecord {
        try await engine.registry.container(containerID).process(execID)
    }

    private static func read(_ buffer: OutputBuffer, _ len: UInt32) async throws -> Kata_Agent_V1_ReadStreamResponse {
        let max = len == 0 ? 64 << 10 : min(Int(len), maxReadLength)
        var response = Kata_Agent_V1_ReadStreamResponse()
        response.data = Data(await buffer.read(max: max))
        return response
    }
}
