// Every method of containerd.task.v2.Task, called over the real socket of the real daemon (started
// by `start`, scripted test backend), with real FIFOs for stdio and a fake events service.

import ContainerdAPI
import Foundation
import OCI
import Synchronization
import SwiftProtobuf
import Testing
import TTRPC
@testable import Shim

@Suite(.serialized) struct ShimTaskRPCTests {
    /// Reads a FIFO to EOF on a thread, as ctr's copy loop does.
    final class FIFOReader: Sendable {
        private let result = Mutex<[UInt8]?>(nil)

        init(_ path: String) {
            Thread.detachNewThread { [self] in
                let fd = open(path, O_RDONLY)
                var data: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while fd >= 0 {
                    let n = read(fd, &buffer, buffer.count)
                    if n <= 0 { break }
                    data += buffer[0..<n]
                }
                close(fd)
                self.result.withLock { $0 = data }
            }
        }

        var text: String? { result.withLock { $0.map { String(decoding: $0, as: UTF8.self) } } }
    }

    func fifo(_ shim: RunningShim, _ name: String) -> String {
        let path = shim.directory.path + "/" + name
        mkfifo(path, 0o600)
        return path
    }

    func execSpec(_ args: [String], terminal: Bool = false) throws -> Google_Protobuf_Any {
        var any = Google_Protobuf_Any()
        any.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
        any.value = try JSONEncoder().encode(OCIProcess(terminal: terminal, args: args, cwd: "/"))
        return any
    }

    @Test func everyTaskMethodAndErrorCode() async throws {
        try await withShim("rpc") { shim in
            let bundle = try shim.bundle("c1", args: ["sleep"])
            let started = try shim.start("c1", bundle: bundle)
            #expect(started.status == 0)
            shim.address = started.output
            let task = try await shim.connect(started.output)

            // Create: rootfs mount (tmpfs) onto <bundle>/rootfs, stdio FIFOs, runtime options.
            let stdout = fifo(shim, "c1-stdout"), stderr = fifo(shim, "c1-stderr")
            let created = try await task.create(.with {
                $0.id = "c1"
                $0.bundle = bundle.path
                $0.rootfs = [.with { $0.type = "tmpfs"; $0.source = "tmpfs"; $0.options = ["nodev", "size=1m"] }]
                $0.stdout = stdout
                $0.stderr = stderr
                $0.options = .with {
                    $0.typeURL = "runtimeoptions.v1.Options"
                    $0.value = try! Runtimeoptions_V1_Options.with { $0.configPath = "/etc/kata.toml" }.serializedData()
                }
            })
            #expect(created.pid > 0)
            #expect(RootfsMounts.isMountPoint(bundle.rootfsPath))
            let connected = try await task.connect(.with { $0.id = "c1" })
            #expect(connected.taskPid == created.pid)
            #expect(connected.shimPid == UInt32(shim.daemonPID() ?? 0))
            #expect(connected.version.contains("kata-swift"))
            var state = try await task.state(.with { $0.id = "c1" })
            #expect(state.status == .created && state.bundle == bundle.path && state.stdout == stdout)

            // Wait before Start (ctr run does this); it blocks while everything else goes on.
            let initWait = Task { try await task.wait(.with { $0.id = "c1" }) }
            let started1 = try await task.start(.with { $0.id = "c1" })
            #expect(started1.pid > 0)
            state = try await task.state(.with { $0.id = "c1" })
            #expect(state.status == .running)
            #expect(try await task.pids(.with { $0.id = "c1" }).processes.map(\.pid) == [started1.pid])
            let stats = try await task.stats(.with { $0.id = "c1" })
            #expect(stats.stats.typeURL == "io.containerd.cgroups.v1.Metrics")
            _ = try await task.update(.with {
                $0.id = "c1"
                $0.resources = .with {
                    $0.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
                    $0.value = Data(#"{"cpu":{"shares":512}}"#.utf8)
                }
            })
            _ = try await task.pause(.with { $0.id = "c1" })
            #expect(try await task.state(.with { $0.id = "c1" }).status == .paused)
            _ = try await task.resume(.with { $0.id = "c1" })
            #expect(try await task.state(.with { $0.id = "c1" }).status == .running)

            // Exec with stdin -> stdout through FIFOs (cat), CloseIO ends it.
            let execIn = fifo(shim, "e1-stdin"), execOut = fifo(shim, "e1-stdout")
            let execOutput = FIFOReader(execOut)
            _ = try await task.exec(.with {
                $0.id = "c1"; $0.execID = "e1"; $0.stdin = execIn; $0.stdout = execOut
                $0.spec = try! execSpec(["cat"])
            })
            #expect(try await task.state(.with { $0.id = "c1"; $0.execID = "e1" }).status == .created)
            let execWait = Task { try await task.wait(.with { $0.id = "c1"; $0.execID = "e1" }) }
            _ = try await task.start(.with { $0.id = "c1"; $0.execID = "e1" })
            let writer = open(execIn, O_WRONLY)
            #expect(write(writer, "ping\n", 5) == 5)
            close(writer)
            _ = try await task.closeIO(.with { $0.id = "c1"; $0.execID = "e1"; $0.stdin = true })
            #expect(try await execWait.value.exitStatus == 0)
            #expect(await eventually { execOutput.text == "ping\n" })
            let execDeleted = try await task.delete(.with { $0.id = "c1"; $0.execID = "e1" })
            #expect(execDeleted.exitStatus == 0)

            // A terminal exec: ResizePty reaches the sandbox.
            _ = try await task.exec(.with { $0.id = "c1"; $0.execID = "tty"; $0.terminal = true; $0.spec = try! execSpec(["sh"], terminal: true) })
            _ = try await task.start(.with { $0.id = "c1"; $0.execID = "tty" })
            _ = try await task.resizePty(.with { $0.id = "c1"; $0.execID = "tty"; $0.width = 120; $0.height = 40 })
            _ = try await task.kill(.with { $0.id = "c1"; $0.execID = "tty"; $0.signal = 15 })
            #expect(try await task.wait(.with { $0.id = "c1"; $0.execID = "tty" }).exitStatus == 143)

            // Error codes, each from a real request.
            #expect(await statusCode { _ = try await task.state(.with { $0.id = "nope" }) } == 5)
            #expect(await statusCode { _ = try await task.state(.with { $0.id = "c1"; $0.execID = "nope" }) } == 5)
            #expect(await statusCode { _ = try await task.exec(.with { $0.id = "c1"; $0.execID = "tty"; $0.spec = try! execSpec(["sh"]) }) } == 6)
            #expect(await statusCode { _ = try await task.create(.with { $0.id = "c1"; $0.bundle = bundle.path }) } == 6)
            #expect(await statusCode { _ = try await task.start(.with { $0.id = "c1" }) } == 9)
            #expect(await statusCode { _ = try await task.delete(.with { $0.id = "c1" }) } == 9)
            #expect(await statusCode { _ = try await task.resume(.with { $0.id = "c1" }) } == 9)
            #expect(await statusCode { _ = try await task.kill(.with { $0.id = "c1"; $0.execID = "tty"; $0.signal = 9 }) } == 5)
            var badSpec = Google_Protobuf_Any()
            badSpec.value = Data("not json".utf8)
            #expect(await statusCode { _ = try await task.exec(.with { $0.id = "c1"; $0.execID = "e9"; $0.spec = badSpec }) } == 3)
            #expect(await statusCode { _ = try await task.checkpoint(.with { $0.id = "c1"; $0.path = "/tmp/cp" }) } == 12)
            do {
                _ = try await task.checkpoint(.with { $0.id = "c1" })
            } catch let error as TTRPCError {
                #expect(error.message.contains("checkpoint"))
            }
            // Unknown method on the service: Unimplemented from the server.
            let raw = try #require(shim.connection)
            #expect(await statusCode { _ = try await raw.call(service: "containerd.task.v2.Task", method: "Nope", payload: []) } == 12)

            // Shutdown with a task left does not end the shim.
            _ = try await task.shutdown(.with { $0.id = "c1" })
            #expect(try await task.connect(.with { $0.id = "c1" }).taskPid == created.pid)

            // Kill the init: the blocked Wait returns 128+9; then Delete; events in order.
            _ = try await task.kill(.with { $0.id = "c1"; $0.signal = 9; $0.all = true })
            let exit = try await initWait.value
            #expect(exit.exitStatus == 137)
            #expect(await statusCode { _ = try await task.kill(.with { $0.id = "c1"; $0.signal = 9 }) } == 5)
            let deleted = try await task.delete(.with { $0.id = "c1" })
            #expect(deleted.exitStatus == 137 && deleted.pid == started1.pid)
            #expect(!RootfsMounts.isMountPoint(bundle.rootfsPath))
            #expect(await statusCode { _ = try await task.state(.with { $0.id = "c1" }) } == 5)

            #expect(await eventually { shim.events.topics.contains("/tasks/delete") })
            let topics = shim.events.topics
            #expect(topics.first == "/tasks/create")
            #expect(topics.firstIndex(of: "/tasks/start")! < topics.lastIndex(of: "/tasks/exit")!)
            #expect(topics.last == "/tasks/delete")
            #expect(topics.contains("/tasks/exec-added") && topics.contains("/tasks/exec-started"))
            #expect(topics.contains("/tasks/paused") && topics.contains("/tasks/resumed"))
            for envelope in shim.events.envelopes {
                #expect(envelope.namespace == "testns")
                #expect(envelope.event.typeURL.hasPrefix("containerd.events.Task"))  // bare names
            }
            let initExit = try #require(shim.events.envelopes.last { $0.topic == "/tasks/exit" })
            let decoded = try Containerd_Events_TaskExit(serializedBytes: initExit.event.value)
            #expect(decoded.containerID == "c1" && decoded.id == "c1" && decoded.exitStatus == 137)

            // Shutdown with nothing left ends the daemon, which removes its socket.
            _ = try? await task.shutdown(.with { $0.id = "c1" })
            #expect(await eventually { shim.daemonPID() == nil })
            #expect(!FileManager.default.fileExists(atPath: try ShimSocket(address: started.output).path))
        }
    }

    @Test func blockedWaitDoesNotStallOtherCalls() async throws {
        try await withShim("concurrency") { shim in
            let bundle = try shim.bundle("w1", args: ["sleep"])
            let started = try shim.start("w1", bundle: bundle)
            shim.address = started.output
            let task = try await shim.connect(started.output)
            _ = try await task.create(.with { $0.id = "w1"; $0.bundle = bundle.path })
            _ = try await task.start(.with { $0.id = "w1" })
            // Eight Waits parked on one connection...
            let waits = (0..<8).map { _ in Task { try await task.wait(.with { $0.id = "w1" }).exitStatus } }
            try await Task.sleep(for: .milliseconds(100))
            // ...and 50 other calls still answer promptly on the same connection.
            let clock = ContinuousClock()
            let began = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<50 { group.addTask { _ = try await task.state(.with { $0.id = "w1" }) } }
                try await group.waitForAll()
            }
            #expect(clock.now - began < .seconds(3))
            for wait in waits { #expect(!wait.isCancelled) }
            _ = try await task.kill(.with { $0.id = "w1"; $0.signal = 15 })
            for wait in waits { #expect(try await wait.value == 143) }
            _ = try await task.delete(.with { $0.id = "w1" })
            _ = try? await task.shutdown(.with { $0.id = "w1" })
            #expect(await eventually { shim.daemonPID() == nil })
        }
    }

    @Test func outputIsDeliveredBeforeTheExitAndCreateFailuresLeaveNothing() async throws {
        try await withShim("output") { shim in
            let bundle = try shim.bundle("o1", args: ["echo", "hello", "world"])
            let started = try shim.start("o1", bundle: bundle)
            shim.address = started.output
            let task = try await shim.connect(started.output)
            let out = fifo(shim, "o1-stdout")
            let reader = FIFOReader(out)
            _ = try await task.create(.with { $0.id = "o1"; $0.bundle = bundle.path; $0.stdout = out })
            let wait = Task { try await task.wait(.with { $0.id = "o1" }) }
            _ = try await task.start(.with { $0.id = "o1" })
            #expect(try await wait.value.exitStatus == 0)
            #expect(await eventually { reader.text == "hello world\n" })
            _ = try await task.delete(.with { $0.id = "o1" })

            // A sandbox that refuses the container: error text comes through, the mount is gone.
            let refused = try shim.bundle("o2", args: ["fail-create"])
            let failure = await statusCode {
                _ = try await task.create(.with {
                    $0.id = "o2"; $0.bundle = refused.path
                    $0.rootfs = [.with { $0.type = "tmpfs"; $0.source = "tmpfs" }]
                })
            }
            #expect(failure == 2)
            #expect(!RootfsMounts.isMountPoint(refused.rootfsPath))
            #expect(await statusCode { _ = try await task.delete(.with { $0.id = "o2" }) } == 5)
            _ = try? await task.shutdown(.with { $0.id = "o2" })
            #expect(await eventually { shim.daemonPID() == nil })
        }
    }
}
