// Events forwarded through our client reach a real containerd 1.6 and decode on the other side:
// `ctr events` prints an event only when typeurl can unmarshal its Any (bare type URL).
import ContainerdAPI
import Foundation
import SwiftProtobuf
import Synchronization
import TTRPC
import Testing

/// A containerd of our own in a temporary directory, stopped by its pid.
final class OwnContainerd {
    let directory: String
    let socket: String
    private let process = Process()

    init() throws {
        (directory, _) = try temporarySocketPath()
        socket = directory + "/c.sock"
        let config = """
            version = 2
            root = "\(directory)/root"
            state = "\(directory)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            """
        try config.write(toFile: directory + "/config.toml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/containerd")
        process.arguments = ["--config", directory + "/config.toml"]
        _ = FileManager.default.createFile(atPath: directory + "/containerd.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/containerd.log"))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
    }

    /// Waits until containerd's ttrpc socket accepts connections.
    func ttrpcClient() async throws -> TTRPCClient {
        let end = ContinuousClock.now + .seconds(20)
        while true {
            if let client = try? await TTRPCClient.connect(unixSocketPath: socket + ".ttrpc") { return client }
            guard ContinuousClock.now < end, process.isRunning else {
                let log = (try? String(contentsOfFile: directory + "/containerd.log", encoding: .utf8)) ?? ""
                throw TTRPCError(.unavailable, "containerd did not come up: \(log.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A long-running child whose output is collected as it comes.
final class Collected: Sendable {
    let text = Mutex("")
}

@Suite(.serialized) struct ContainerdEventsInteropTests {
    static let present = FileManager.default.isExecutableFile(atPath: "/usr/bin/containerd")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/ctr")

    @Test(.enabled(if: present, "containerd and ctr (Debian package containerd) are not installed"))
    func forwardedEventsReachContainerdSubscribers() async throws {
        let containerd = try OwnContainerd()
        defer { containerd.stop() }
        let events = Containerd_Services_Events_Ttrpc_V1_EventsClient(try await containerd.ttrpcClient())

        let subscriber = Process()
        subscriber.executableURL = URL(fileURLWithPath: "/usr/bin/ctr")
        subscriber.arguments = ["-a", containerd.socket, "events"]
        let pipe = Pipe()
        subscriber.standardOutput = pipe
        subscriber.standardError = pipe
        let collected = Collected()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            collected.text.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
        }
        try subscriber.run()
        defer {
            if subscriber.isRunning {
                kill(subscriber.processIdentifier, SIGTERM)
                subscriber.waitUntilExit()
            }
            pipe.fileHandleForReading.readabilityHandler = nil
            try? pipe.fileHandleForReading.close()
        }

        var exit = Containerd_Events_TaskExit()
        exit.containerID = "interop1"
        exit.id = "interop1"
        exit.pid = 4242
        exit.exitStatus = 137
        exit.exitedAt = Google_Protobuf_Timestamp(date: Date())
        let request = try Containerd_Services_Events_Ttrpc_V1_ForwardRequest(event: exit, namespace: "default")
        // The subscriber may not be subscribed yet: forward until it prints the event.
        let end = ContinuousClock.now + .seconds(15)
        while !collected.text.withLock({ $0.contains("\"container_id\":\"interop1\"") }), ContinuousClock.now < end {
            _ = try await events.forward(request, options: TTRPCCallOptions(timeout: .seconds(5)))
            try await Task.sleep(for: .milliseconds(200))
        }
        let output = collected.text.withLock { $0 }
        #expect(output.contains("default /tasks/exit"), "ctr events printed: \(output)")
        #expect(output.contains("\"pid\":4242"), "ctr events printed: \(output)")
        #expect(output.contains("\"exit_status\":137"), "ctr events printed: \(output)")
        #expect(!output.contains("cannot unmarshal"), "ctr events printed: \(output)")

        // containerd validates envelopes: a bad topic is refused with a status we can read.
        var bad = request
        bad.envelope.topic = "no-leading-slash"
        do {
            _ = try await events.forward(bad, options: TTRPCCallOptions(timeout: .seconds(5)))
            Issue.record("containerd accepted an invalid topic")
        } catch let error as TTRPCError {
            #expect(error.code != .ok && error.code != .unavailable, "\(error)")
        }
        await events.connection.close()
    }
}
