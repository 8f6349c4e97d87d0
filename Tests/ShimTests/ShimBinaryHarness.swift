// Drives the real containerd-shim-kata-v2 binary as containerd does: `start` in the bundle with
// stdout+stderr merged into one pipe, then a ttrpc connection to the printed address; a fake
// containerd events service records what the shim forwards.

import ContainerdAPI
import Foundation
import SwiftProtobuf
import Synchronization
import TTRPC
@testable import Shim

/// The scripted test shim built next to the test bundle: the same shim protocol (ShimMain) as
/// containerd-shim-kata-v2, over ScriptedSandbox instead of a VM.
func shimBinary() throws -> String {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("containerd-shim-kata-scripted-v2").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw HarnessFailure(description: "containerd-shim-kata-scripted-v2 not built next to \(CommandLine.arguments[0])")
}

struct HarnessFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs the shim binary with `arguments` in `directory`, stdout and stderr merged (as containerd's
/// CombinedOutput); waits for EOF on that pipe, which also proves no daemon kept it open.
func runShim(_ arguments: [String], in directory: String, environment: [String: String],
             separateStderr: Bool = false) throws -> (status: Int32, output: Data, stderr: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try shimBinary())
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.environment = environment
    let output = Pipe()
    let errors = separateStderr ? Pipe() : output
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let stderr = separateStderr ? errors.fileHandleForReading.readDataToEndOfFile() : Data()
    process.waitUntilExit()
    return (process.terminationStatus, data, stderr)
}

/// Records what the shim forwards to containerd's events service.
final class FakeEventsService: Containerd_Services_Events_Ttrpc_V1_EventsProvider {
    private let received = Mutex<[Containerd_Services_Events_Ttrpc_V1_Envelope]>([])

    func forward(_ request: Containerd_Services_Events_Ttrpc_V1_ForwardRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        received.withLock { $0.append(request.envelope) }
        return Google_Protobuf_Empty()
    }

    var envelopes: [Containerd_Services_Events_Ttrpc_V1_Envelope] { received.withLock { $0 } }
    var topics: [String] { envelopes.map(\.topic) }
}

/// One shim started by `start`, plus its events server and a client.
final class RunningShim {
    let directory: TemporaryDirectory
    let containerdAddress: String
    let eventsPath: String
    let events = FakeEventsService()
    let eventsServer = TTRPCServer()
    var environment: [String: String]
    var address = ""
    var client: Containerd_Task_V2_TaskClient?
    var connection: TTRPCClient?
    /// Tells the log copier threads to stop.
    let logCopiersStop = LogCopierStop()

    init(name: String) async throws {
        directory = try TemporaryDirectory(name)
        containerdAddress = directory.path + "/containerd.sock"
        eventsPath = directory.path + "/containerd.sock.ttrpc"
        eventsServer.register(events)
        try await eventsServer.listen(unixSocketPath: eventsPath)
        environment = ProcessInfo.processInfo.environment
        environment["TTRPC_ADDRESS"] = eventsPath
    }

    /// A bundle for `id` with a `log` FIFO drained into `<bundle>.log`, as containerd prepares it.
    func bundle(_ id: String, args: [String] = ["sleep"], annotations: [String: String] = [:]) throws -> BundleDirectory {
        let bundle = try makeBundle(in: directory.path, id: id, args: args, annotations: annotations)
        mkfifo(bundle.logPath, 0o600)
        let logCopy = directory.path + "/\(id).log"
        // Like containerd: opened O_RDWR before the shim starts (never blocks), then copied out.
        let fd = open(bundle.logPath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessFailure(description: "open \(bundle.logPath): errno \(errno)") }
        let stop = logCopiersStop
        Thread.detachNewThread {
            let out = open(logCopy, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !stop.withLock({ $0 }) {
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, 50) > 0 else { continue }
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                _ = write(out, buffer, n)
            }
            close(out)
            close(fd)
        }
        return bundle
    }

    func flags(_ id: String, _ action: String, bundle: String? = nil) -> [String] {
        var flags = ["-namespace", "testns", "-address", containerdAddress, "-publish-binary", "/usr/bin/containerd",
                     "-id", id]
        if let bundle { flags += ["-bundle", bundle] }
        return flags + [action]
    }

    /// Runs `start` for `id`; returns the printed address (exactly what containerd would read).
    func start(_ id: String, bundle: BundleDirectory) throws -> (status: Int32, output: String) {
        let result = try runShim(flags(id, "start"), in: bundle.path, environment: environment)
        return (result.status, String(decoding: result.output, as: UTF8.self))
    }

    /// Connects a task client to `address`.
    func connect(_ address: String) async throws -> Containerd_Task_V2_TaskClient {
        let socket = try ShimSocket(address: address)
        let connection = try await TTRPCClient.connect(unixSocketPath: socket.path)
        self.connection = connection
        return Containerd_Task_V2_TaskClient(connection)
    }

    /// Pid of the daemon listening on `address`, from /proc (the process whose fd 3 is that socket).
    func daemonPID() -> Int32? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let binary = (try? shimBinary()).map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
        for pid in entries.compactMap({ Int32($0) }) {
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"), exe == binary,
                  let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                  cmdline.contains(containerdAddress)
            else { continue }
            return pid
        }
        return nil
    }

    func log(_ id: String) -> String {
        (try? String(contentsOfFile: directory.path + "/\(id).log", encoding: .utf8)) ?? ""
    }

    /// Kills a daemon still running (a failed test), removes its socket and the directory.
    func cleanUp() async {
        await connection?.close()
        if let pid = daemonPID() { kill(pid, SIGKILL) }
        if !address.isEmpty, let socket = try? ShimSocket(address: address) { socket.remove() }
        await eventsServer.close()
        logCopiersStop.withLock { $0 = true }
        directory.remove()
    }
}

/// The ttrpc status code of a failed call, or nil when it succeeded.
func statusCode(_ body: () async throws -> Void) async -> Int32? {
    do {
        try await body()
        return nil
    } catch let error as TTRPCError {
        return error.code.rawValue
    } catch {
        return -1
    }
}

/// Runs `body` with a fresh RunningShim and always cleans up after it.
func withShim(_ name: String, _ body: (RunningShim) async throws -> Void) async throws {
    let shim = try await RunningShim(name: name)
    do {
        try await body(shim)
    } catch {
        await shim.cleanUp()
        throw error
    }
    await shim.cleanUp()
}

/// A flag shared with the log copier threads.
final class LogCopierStop: Sendable {
    private let flag = Mutex(false)

    func withLock<T>(_ body: (inout Bool) -> T) -> T { flag.withLock { body(&$0) } }
}
