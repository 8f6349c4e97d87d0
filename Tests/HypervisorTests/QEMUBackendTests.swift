import SystemSupport
import Testing

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// Real QEMU/TCG boots of our kernel with the vsock-echo init, vsock served by our device model
/// over our vhost-user server. Serialized: each boot takes both shared cores for a few seconds.
@Suite(.serialized) struct QEMUBackendTests {
    static let echoPort: UInt32 = 1024
    static let stopPort: UInt32 = 1025

    /// Connects to the echo port; on failure the console tail goes into the test log.
    static func connect(_ vm: QEMUHypervisor) async throws -> FileDescriptor {
        do {
            return try await vm.connectVsock(port: echoPort, timeoutSeconds: 30)
        } catch {
            Issue.record("console tail:\n\(vm.consoleTail)")
            throw error
        }
    }

    @Test func echoInProcessHybridAndGuestInitiatedThenGuestReboot() async throws {
        let config = try GuestFixture.config(name: "echo", extras: ["KS_DIAL=5000"], hybrid: true)
        let vm = QEMUHypervisor(config: config)
        try await vm.start()
        let pid = try #require(vm.pid)
        #expect(vm.state == .running)

        // Guest-initiated: the init dials host port 5000 once it is up.
        let incoming = try vm.listenVsock(port: 5000)

        // In-process API.
        let fd = try await Self.connect(vm)
        let message = Array("hello through vhost-user\n".utf8)
        try fd.writeAll(message)
        #expect(try TestIO.read(fd, count: message.count) == message)
        // A larger transfer crosses many packets (the guest's RX buffers are 4 KiB) and exceeds the
        // muxer's 256 KiB send buffer: a 300 KB echo used to stall once the bridge was refused room.
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let writer = Task.detached { try fd.writeAll(big) }
        do {
            #expect(try TestIO.read(fd, count: big.count, seconds: 60) == big)
        } catch {
            Issue.record("echo stalled: \(vm.vsockMuxer?.diagnostics ?? "no muxer")")
            throw error
        }
        try await writer.value

        // Hybrid socket: CONNECT <port> -> OK <hostport>, then raw bytes.
        let hybridPath = try #require(config.hybridVsockPath)
        let client = try TestIO.connectUnix(hybridPath)
        try client.writeAll(Array("CONNECT \(Self.echoPort)\n".utf8))
        let ok = try TestIO.readLine(client)
        #expect(ok.hasPrefix("OK "), "hybrid answer: \(ok)")
        try client.writeAll(Array("via hybrid".utf8))
        #expect(try TestIO.read(client, count: 10) == Array("via hybrid".utf8))

        // A bad hybrid request is closed without an answer.
        let bad = try TestIO.connectUnix(hybridPath)
        try bad.writeAll(Array("HELLO 1\n".utf8))
        #expect(try TestIO.read(bad, count: 1).isEmpty)

        var iterator = incoming.makeAsyncIterator()
        let guestConnection = try #require(await iterator.next())
        #expect(try TestIO.readLine(guestConnection) == "hello from guest\n")
        try guestConnection.writeAll(Array("back".utf8))
        #expect(try TestIO.read(guestConnection, count: 4) == Array("back".utf8))

        // Clean stop from inside: port 1025 makes the init reboot; reboot=t + -no-reboot ends QEMU.
        // The guest may reboot before our side sees the connection established: either is fine.
        let stopper = try? await vm.connectVsock(port: Self.stopPort)
        let final = await vm.waitForExit()
        #expect(final == .stopped(exitCode: 0, requested: false))
        #expect(vm.consoleTail.contains("vsock-echo: stop requested"))

        // The host ends of every connection see the end.
        #expect(try TestIO.read(fd, count: 1).isEmpty)
        #expect(try TestIO.read(client, count: 1).isEmpty)
        #expect(!HostState.processExists(pid))
        #expect(!HostState.fileExists(vm.vhostSocketPath))
        #expect(!HostState.fileExists(hybridPath))
        #expect(!HostState.fileExists(config.runtimeDirectory))
        await vm.stop()
        withExtendedLifetime([guestConnection, client, bad, fd]) {}
        withExtendedLifetime(stopper) {}
        iterator = incoming.makeAsyncIterator()
    }

    @Test func fdsAreReleasedAfterStop() async throws {
        let config = try GuestFixture.config(name: "fds", hybrid: true)
        let fdsBefore = HostState.openFDCount()
        let listBefore = HostState.openFDs()
        do {
            let vm = QEMUHypervisor(config: config)
            try await vm.start()
            let fd = try await Self.connect(vm)
            try fd.writeAll(Array("x".utf8))
            #expect(try TestIO.read(fd, count: 1) == Array("x".utf8))
            await vm.stop()
            // QEMU handles SIGTERM and exits on its own ("terminating on signal 15").
            guard case .stopped(_, requested: true) = vm.state else {
                Issue.record("state after stop: \(vm.state)")
                return
            }
            #expect(try TestIO.read(fd, count: 1).isEmpty)
        }
        #expect(HostState.openFDCount() == fdsBefore, "before: \(listBefore)\nafter: \(HostState.openFDs())")
    }

    @Test func qemuKilledMidConnectionSurfacesAndCleansUp() async throws {
        let config = try GuestFixture.config(name: "kill")
        let vm = QEMUHypervisor(config: config)
        try await vm.start()
        let pid = try #require(vm.pid)
        let fd = try await Self.connect(vm)
        try fd.writeAll(Array("before".utf8))
        #expect(try TestIO.read(fd, count: 6) == Array("before".utf8))

        kill(pid, SIGKILL)
        let final = await vm.waitForExit()
        #expect(final == .stopped(exitCode: 128 + SIGKILL, requested: false))
        // The connection ends (EOF or reset), it does not hang.
        let rest = try? TestIO.read(fd, count: 1)
        #expect(rest?.isEmpty ?? true)
        await #expect(throws: HypervisorError.self) { _ = try await vm.connectVsock(port: Self.echoPort, timeoutSeconds: 1) }
        #expect(!HostState.processExists(pid))
        #expect(!HostState.fileExists(vm.vhostSocketPath))
    }

    @Test func pauseStopsTheGuestAndResumeContinues() async throws {
        let vm = QEMUHypervisor(config: try GuestFixture.config(name: "pause"))
        try await vm.start()
        let fd = try await Self.connect(vm)
        try await vm.pause()
        #expect(vm.state == .paused)
        try fd.writeAll(Array("zz".utf8))
        #expect(throws: TestIO.Timeout.self) { try TestIO.read(fd, count: 2, seconds: 1) }
        try await vm.resume()
        #expect(vm.state == .running)
        #expect(try TestIO.read(fd, count: 2) == Array("zz".utf8))
        await #expect(throws: HypervisorError.self) { try await vm.resume() }
        await vm.stop()
    }

    @Test func startFailuresLeaveNothingBehind() async throws {
        let fdsBefore = HostState.openFDCount()
        var config = try GuestFixture.config(name: "bad")
        config.kernelPath = "/nonexistent/vmlinux"
        let missing = QEMUHypervisor(config: config)
        await #expect(throws: HypervisorError.self) { try await missing.start() }

        // A kernel QEMU cannot load: QEMU exits during start; the error carries its message.
        let garbage = "/tmp/ks-hv-garbage-kernel-\(getpid())"
        let f = fopen(garbage, "w")
        fputs("not a kernel", f)
        fclose(f)
        defer { unlink(garbage) }
        config.kernelPath = garbage
        let broken = QEMUHypervisor(config: config)
        do {
            try await broken.start()
            Issue.record("start with a garbage kernel succeeded")
        } catch {
            guard case .exitedEarly(let code, let tail) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(code != 0)
            #expect(!tail.isEmpty)
        }
        #expect(!HostState.fileExists(config.runtimeDirectory))
        #expect(HostState.openFDCount() == fdsBefore)
    }
}
