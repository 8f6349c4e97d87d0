import Devices
import SystemSupport
import Testing
import VirtIO

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// The in-process KVM backend with our kernel. On our CI hosts its KVM cannot run a guest
/// userspace (the kernel boots for minutes, emulated), so these tests cover the lifecycle, the
/// devices it carries and its errors; the agent channel over it runs in AgentChannelTests where
/// `kata-ctl check` says it can.
@Suite(.serialized) struct KVMBackendTests {
    @Test(.timeLimit(.minutes(3)))
    func lifecyclePauseResumeStopReleasesEverything() async throws {
        var config = try GuestFixture.config(name: "kvm", hybrid: true)
        config.backend = .kvm
        // The concurrency runtime opens its timer descriptors on the first Task.sleep, for good.
        try await Task.sleep(for: .milliseconds(1))
        let fdsBefore = HostState.openFDCount()
        let listBefore = HostState.openFDs()
        let vm = KVMHypervisor(config: config)
        #expect(vm.state == .created)
        await #expect(throws: HypervisorError.self) { try await vm.pause() }
        let t0 = ContinuousClock.now
        try await vm.start()
        print("BENCH kvm-backend: start() (images read, guest defaults probed, VM built, vCPU and device threads running) in \(ContinuousClock.now - t0)")
        #expect(vm.state == .running)
        await #expect(throws: HypervisorError.self) { try await vm.start() }
        // Looked at through a weak reference: the test must not keep the VM (and its fds) alive.
        weak var machine = vm.virtualMachine
        #expect(machine?.virtioSlots.map(\.cmdlineEntry) == [
            "virtio_mmio.device=4K@0xd0000000:5", "virtio_mmio.device=4K@0xd0001000:6",
        ])
        let hybrid = try #require(config.hybridVsockPath)
        #expect(HostState.fileExists(hybrid))

        try await vm.pause()
        #expect(vm.state == .paused && machine?.isPaused == true)
        await #expect(throws: HypervisorError.self) { try await vm.pause() }
        try await vm.resume()
        #expect(vm.state == .running && machine?.isPaused == false)

        // The guest is still booting (minutes here): a connection is refused or unanswered, and
        // the error says which port.
        do {
            let fd = try await vm.connectVsock(port: 1024, timeoutSeconds: 1)
            _ = fd  // a host whose KVM runs the guest fast may already answer
        } catch {
            guard case .vsockConnect(1024, _) = error else { throw error }
        }

        // Two watchers (a warm sandbox's and its pod's): neither may return while the VM runs.
        actor Finals {
            var values: [HypervisorState] = []
            func add(_ state: HypervisorState) { values.append(state) }
        }
        let finals = Finals()
        let watchers = (0..<2).map { _ in
            Task { await finals.add(await vm.waitForExit()) }
        }
        try await Task.sleep(for: .milliseconds(300))
        let early = await finals.values
        #expect(early.isEmpty, "waitForExit returned while the VM runs: \(early)")
        #expect(vm.state == .running)

        let t1 = ContinuousClock.now
        await vm.stop()
        for watcher in watchers { await watcher.value }
        let late = await finals.values
        #expect(late == [.stopped(exitCode: 0, requested: true), .stopped(exitCode: 0, requested: true)])
        print("BENCH kvm-backend: stop() (vCPUs and device thread joined, vsock host closed) in \(ContinuousClock.now - t1)")
        #expect(vm.state == .stopped(exitCode: 0, requested: true))
        #expect(machine == nil, "the stopped VM was released")
        #expect(!HostState.fileExists(hybrid))
        #expect(!HostState.fileExists(config.runtimeDirectory))
        await #expect(throws: HypervisorError.self) { _ = try await vm.connectVsock(port: 1024, timeoutSeconds: 1) }
        await #expect(throws: HypervisorError.self) { try await vm.resume() }
        await vm.stop()  // idempotent
        #expect(await vm.waitForExit() == .stopped(exitCode: 0, requested: true))
        #expect(HostState.openFDCount() <= fdsBefore, "before: \(listBefore)\nafter: \(HostState.openFDs())")
    }

    @Test func badSharesAreRefusedBeforeTheVMIsBuilt() async throws {
        // The same checks as the QEMU backend's (HypervisorLifecycle, VirtioFsGuestTests).
        let fdsBefore = HostState.openFDCount()
        var config = try GuestFixture.config(name: "kvm-fs")
        for (shares, refused) in [
            ([SharedDirectory(tag: String(repeating: "t", count: 37), hostPath: "/tmp")], "tag"),
            ([SharedDirectory(tag: "x", hostPath: "/tmp"), SharedDirectory(tag: "x", hostPath: "/tmp")], "unique"),
            ([SharedDirectory(tag: "kataShared", hostPath: "/nonexistent/share")], "not a directory"),
        ] {
            config.sharedDirectories = shares
            let vm = KVMHypervisor(config: config)
            do {
                try await vm.start()
                Issue.record("start with shares \(shares) succeeded")
                await vm.stop()
            } catch {
                guard case .invalidConfig(let what) = error else { throw error }
                #expect(what.contains(refused), "\(what)")
            }
            #expect(vm.state == .stopped(exitCode: -1, requested: false))
            #expect(!HostState.fileExists(config.runtimeDirectory))
        }
        #expect(HostState.openFDCount() <= fdsBefore)
    }

    @Test func sharedDirectoriesGetOurVirtioFsDevice() async throws {
        let share = "/tmp/ks-kvm-share-\(getpid())"
        mkdir(share, 0o755)
        defer { rmdir(share) }
        let fdsBefore = HostState.openFDCount()
        var config = try GuestFixture.config(name: "kvm-fs-ok")
        config.sharedDirectories = [SharedDirectory(tag: "kataShared", hostPath: share)]
        let vm = KVMHypervisor(config: config)
        try await vm.start()
        #expect(vm.state == .running)
        // vsock, rng, then the share's virtio-fs.
        #expect(vm.virtualMachine?.virtioSlots.count == 3)
        await vm.stop()
        #expect(await vm.waitForExit() == .stopped(exitCode: 0, requested: true))
        #expect(HostState.openFDCount() <= fdsBefore, "the FUSE server's root descriptor was released")

        // A missing shared directory fails the start and leaves nothing.
        config = try GuestFixture.config(name: "kvm-fs-bad")
        config.sharedDirectories = [SharedDirectory(tag: "kataShared", hostPath: share + "/missing")]
        let bad = KVMHypervisor(config: config)
        do {
            try await bad.start()
            Issue.record("start with a missing shared directory succeeded")
            await bad.stop()
        } catch {
            guard case .invalidConfig(let what) = error else { throw error }
            #expect(what.contains("missing"))
        }
        #expect(!HostState.fileExists(config.runtimeDirectory))
    }

    @Test func garbageKernelIsRefusedAndLeavesNothing() async throws {
        let bad = "/tmp/ks-kvm-bad-kernel-\(getpid())"
        let fd = try FileDescriptor.open(bad, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        try fd.writeAll([UInt8](repeating: 0x5a, count: 8192))
        defer { unlink(bad) }
        var config = try GuestFixture.config(name: "kvm-bad", hybrid: true)
        config.kernelPath = bad
        let vm = KVMHypervisor(config: config)
        await #expect(throws: HypervisorError.self) { try await vm.start() }
        #expect(vm.state == .stopped(exitCode: -1, requested: false))
        #expect(!HostState.fileExists(config.hybridVsockPath ?? ""))
        #expect(!HostState.fileExists(config.runtimeDirectory))
    }

    @Test func factorySelectsKVMOnlyWhereItRunsAUserspace() throws {
        var config = try GuestFixture.config(name: "kvm-factory")
        config.backend = .kvm
        let verdict = BackendProbe.verdict()
        if verdict.kvmUserspace {
            #expect(try HypervisorFactory.make(config).kind == .kvm)
        } else {
            #expect {
                _ = try HypervisorFactory.make(config)
            } throws: { error in
                "\(error)".contains("kvm: \(verdict.kvmReason)")
            }
        }
        config.backend = .auto
        #expect(try HypervisorFactory.make(config).kind == (verdict.kvmUserspace ? .kvm : .qemu))
    }
}
