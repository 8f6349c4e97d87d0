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

    /// QEMU confined: its seccomp filter is on (Seccomp 2, no_new_privs), it runs as the
    /// unprivileged user with no capability once the guest runs, and it holds none of our
    /// descriptors (a file we keep open without CLOEXEC does not reach it; 0 is /dev/null).
    @Test func qemuRunsFilteredUnprivilegedAndWithoutOurDescriptors() async throws {
        var config = try GuestFixture.config(name: "confined")
        config.qemuUser = "65533:65533"
        let sentinelPath = "/tmp/ks-hv-sentinel-\(getpid())"
        let sentinel = open(sentinelPath, O_RDWR | O_CREAT, 0o600)  // no O_CLOEXEC: fork would keep it
        try #require(sentinel >= 0)
        defer {
            close(sentinel)
            unlink(sentinelPath)
        }
        let vm = QEMUHypervisor(config: config)
        try await vm.start()
        let pid = try #require(vm.pid)
        let fd = try await Self.connect(vm)  // the guest runs: QEMU has dropped to the user by now
        try fd.writeAll(Array("y".utf8))
        #expect(try TestIO.read(fd, count: 1) == Array("y".utf8))
        let status = QEMUHypervisor.readProcFile("/proc/\(pid)/status", limit: 8192)
        let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " "))
        }, uniquingKeysWith: { a, _ in a })
        #expect(fields["Seccomp"] == "2", "status:\n\(status)")
        #expect(fields["NoNewPrivs"] == "1")
        #expect(fields["Uid"] == "65533 65533 65533 65533")
        #expect(fields["Gid"] == "65533 65533 65533 65533")
        #expect(fields["CapEff"] == "0000000000000000" && fields["CapPrm"] == "0000000000000000")
        let fds = HostState.descriptorTargets(of: pid)
        #expect(fds[0] == "/dev/null")
        #expect(!fds.values.contains(sentinelPath), "QEMU's fds: \(fds)")
        // What QEMU holds is its own: pipes to us (1, 2), its sockets, memfd, eventfds, anon inodes.
        let ours = Set(HostState.descriptorTargets(of: getpid()).values.filter { $0.hasPrefix("/") && $0 != "/dev/null" })
        #expect(Set(fds.values).intersection(ours).isEmpty, "QEMU's fds: \(fds)")
        // Its parent is the guard: our child, titled as itself, holding 0-2 only.
        let stat = QEMUHypervisor.readProcFile("/proc/\(pid)/stat", limit: 1024)
        let afterName = stat.split(separator: ")").last.map { $0.split(separator: " ") } ?? []
        let guardPID = try #require(afterName.count > 1 ? Int32(afterName[1]) : nil)
        let guardStat = QEMUHypervisor.readProcFile("/proc/\(guardPID)/stat", limit: 1024)
        #expect(guardStat.split(separator: ")").last?.split(separator: " ").dropFirst().first == "\(getpid())")
        let title = QEMUHypervisor.readProcFile("/proc/\(guardPID)/cmdline", limit: 4096)
        #expect(title.hasPrefix("kata-swift vmm-guard\0"), "guard cmdline: \(title.prefix(80))")
        #expect(HostState.descriptorTargets(of: guardPID).keys.sorted() == [0, 1, 2])
        // Our side: the vhost-user server thread that serves the guest's rings is filtered.
        let servers = HostState.threads(named: "vhost-user")
        #expect(!servers.isEmpty)
        for tid in servers {
            let threadStatus = QEMUHypervisor.readProcFile("/proc/self/task/\(tid)/status", limit: 8192)
            #expect(threadStatus.contains("Seccomp:\t2") && threadStatus.contains("NoNewPrivs:\t1"), "\(threadStatus)")
        }
        await vm.stop()
        #expect(!HostState.processExists(pid))
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
