// A real server on a real Unix socket in a fresh directory, with a test service.
import Foundation
import SwiftProtobuf
import Synchronization
import Testing

@testable import TTRPC

/// What the test service's handlers observed.
final class Probe: Sendable {
    let cancelled = Mutex(0)
    let started = Mutex(0)
    let gateOpen = Mutex(false)

    /// Waits until the gate opens; throws CancellationError (and counts it) if cancelled first.
    func waitForGate() async throws {
        started.withLock { $0 += 1 }
        do {
            while !gateOpen.withLock({ $0 }) {
                try await Task.sleep(for: .milliseconds(2))
            }
        } catch {
            cancelled.withLock { $0 += 1 }
            throw error
        }
    }

    func waitUntil(_ what: String, timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < end else {
                throw TTRPCError(.deadlineExceeded, "timed out waiting for \(what)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

struct PlainError: Error, CustomStringConvertible {
    var description: String { "plain failure" }
}

typealias StringValue = Google_Protobuf_StringValue

func string(_ value: String) -> StringValue {
    StringValue(value)
}

/// The service every socket test talks to: `test.Echo`.
func testService(_ probe: Probe) -> TTRPCService {
    var service = TTRPCService(name: "test.Echo")
    service.addMethod("Echo") { (request: StringValue, _) in request }
    service.addMethod("Block") { (request: StringValue, _) in
        try await probe.waitForGate()
        return request
    }
    service.addMethod("Fail") { (request: StringValue, _) -> StringValue in
        let code = TTRPCStatusCode(rawValue: Int32(request.value) ?? 2)
        throw TTRPCError(code, "failed with \(code.rawValue)")
    }
    service.addMethod("Crash") { (_: StringValue, _) -> StringValue in throw PlainError() }
    service.addMethod("Metadata") { (_: StringValue, context) in
        string(context.metadata.entries.map { "\($0.key)=\($0.value)" }.joined(separator: ";"))
    }
    service.addMethod("Deadline") { (_: StringValue, context) in
        guard let deadline = context.deadline else { return string("none") }
        return string("\((deadline - ContinuousClock.now).components.seconds)")
    }
    service.addMethod("Raw") { payload, _ in payload.reversed() }
    return service
}

final class Fixture: Sendable {
    let directory: String
    let path: String
    let server: TTRPCServer
    let probe = Probe()

    init() async throws {
        directory = try makeTemporaryDirectory()
        path = directory + "/ttrpc.sock"
        server = TTRPCServer()
        server.register(testService(probe))
        try await server.listen(unixSocketPath: path)
    }

    func client() async throws -> TTRPCClient {
        try await TTRPCClient.connect(unixSocketPath: path)
    }

    func raw() async throws -> RawPeer {
        try await RawPeer(path: path)
    }

    /// Server-side sockets bound to our path (listener and accepted connections), from /proc/net/unix.
    func serverSockets() throws -> Int {
        try String(contentsOfFile: "/proc/net/unix", encoding: .utf8)
            .split(separator: "\n").filter { $0.hasSuffix(" " + path) }.count
    }

    func stop() async {
        await server.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/ttrpc-test-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw TTRPCError(.internal, "mkdtemp failed")
    }
    return String(cString: made)
}

/// Open descriptors of this process.
func openDescriptorCount() throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
}

/// The code a call failed with; records an issue if it succeeded or threw something else.
func failureCode(_ body: () async throws -> some Any) async -> TTRPCStatusCode? {
    do {
        _ = try await body()
        Issue.record("call succeeded but was expected to fail")
        return nil
    } catch let error as TTRPCError {
        return error.code
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}
