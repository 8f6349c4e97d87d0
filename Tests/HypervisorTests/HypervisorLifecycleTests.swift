import Synchronization
import SystemSupport
import Testing

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// The lifecycle both backends share, over a backend that only records its steps: the order of
/// the steps, the checks, the runtime directory, and a stop or an end at every point.
@Suite struct HypervisorLifecycleTests {
    /// Records each step; its "VMM" ends when halted (status 0) or when a test says so.
    final class RecordingBackend: HypervisorBackendSteps {
        struct Running: Sendable { let id: Int }
        enum Trouble: Sendable { case none, launchFails, notReady, endsDuringLaunch, stopDuringLaunch }

        let lifecycle: HypervisorLifecycle<Running>
        let trouble: Trouble
        private let recorded = Mutex<[String]>([])

        init(_ config: HypervisorConfig, trouble: Trouble = .none) {
            lifecycle = HypervisorLifecycle(config: config)
            self.trouble = trouble
        }

        var steps: [String] { recorded.withLock { $0 } }
        private func record(_ step: String) { recorded.withLock { $0.append(step) } }

        func validateBackend() throws(HypervisorError) { record("validate") }

        func launch() async throws(HypervisorError) -> Running {
            record("launch")
            switch trouble {
            case .launchFails: throw .backendUnavailable("no VMM here")
            case .endsDuringLaunch: lifecycle.ended(exitCode: 1, backend: self)
            case .stopDuringLaunch: await lifecycle.stop(self, graceSeconds: 1)
            case .none, .notReady: break
            }
            return Running(id: 1)
        }

        func awaitReady(_ running: Running) async throws(HypervisorError) {
            record("ready?")
            if trouble == .notReady { throw .timeout("waiting for the fake VMM") }
        }

        func halt(_ running: Running, graceSeconds: Double) async {
            record("halt \(graceSeconds)")
            lifecycle.ended(exitCode: 0, backend: self)
        }

        func join(_ running: Running) async { record("join") }
        func release(_ running: Running) { record("release") }
        func removeFiles() { record("removeFiles") }
        func pause(_ running: Running) async throws(HypervisorError) { record("pause") }
        func resume(_ running: Running) async throws(HypervisorError) { record("resume") }
        func vsockHost(of running: Running) -> VsockHost { fatalError("no vsock in the recording backend") }
        var consoleTail: String { "" }
    }

    static func config(_ name: String) -> HypervisorConfig {
        HypervisorConfig(kernelPath: "/bin/sh", runtimeDirectory: "/tmp/ks-lifecycle-\(getpid())-\(name)")
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    @Test func startPauseResumeStopInOrderAndTheDirectoryGoes() async throws {
        let vm = RecordingBackend(Self.config("ok"))
        let lifecycle = vm.lifecycle
        await #expect(throws: HypervisorError.self) { try await lifecycle.pause(vm) }
        try await lifecycle.start(vm)
        #expect(lifecycle.phase == .running)
        #expect(Self.exists(vm.lifecycle.config.runtimeDirectory))
        await #expect(throws: HypervisorError.self) { try await lifecycle.start(vm) }
        await #expect(throws: HypervisorError.self) { try await lifecycle.resume(vm) }
        try await lifecycle.pause(vm)
        #expect(lifecycle.phase == .paused)
        try await lifecycle.resume(vm)
        #expect(lifecycle.phase == .running)
        await lifecycle.stop(vm, graceSeconds: 2)
        #expect(lifecycle.phase == .stopped(exitCode: 0, requested: true))
        #expect(lifecycle.held == nil)
        #expect(!Self.exists(vm.lifecycle.config.runtimeDirectory))
        await lifecycle.stop(vm, graceSeconds: 2)  // idempotent: nothing more happens
        #expect(await lifecycle.waitForExit(vm) == .stopped(exitCode: 0, requested: true))
        #expect(vm.steps == ["validate", "launch", "ready?", "pause", "resume", "halt 2.0", "release", "removeFiles", "join"])
    }

    @Test func aCreatedVMStopsWithoutStarting() async throws {
        let vm = RecordingBackend(Self.config("created"))
        await vm.lifecycle.stop(vm, graceSeconds: 1)
        #expect(vm.lifecycle.phase == .stopped(exitCode: 0, requested: true))
        await #expect(throws: HypervisorError.self) { try await vm.lifecycle.start(vm) }
        #expect(vm.steps.isEmpty)
    }

    @Test func failedChecksAndLaunchesLeaveNothing() async throws {
        var config = Self.config("bad")
        config.vcpus = 0
        let refused = RecordingBackend(config)
        await #expect(throws: HypervisorError.self) { try await refused.lifecycle.start(refused) }
        // The shared checks come first; what a backend claims goes back all the same.
        #expect(refused.steps == ["removeFiles"])
        #expect(refused.lifecycle.phase == .stopped(exitCode: -1, requested: false))
        #expect(!Self.exists(config.runtimeDirectory))

        let failing = RecordingBackend(Self.config("launch"), trouble: .launchFails)
        await #expect(throws: HypervisorError.self) { try await failing.lifecycle.start(failing) }
        #expect(failing.steps == ["validate", "launch", "removeFiles"])
        #expect(failing.lifecycle.phase == .stopped(exitCode: -1, requested: false))
        #expect(!Self.exists(failing.lifecycle.config.runtimeDirectory))
    }

    @Test func aVMMThatNeverGetsReadyIsHaltedAndJoined() async throws {
        let vm = RecordingBackend(Self.config("ready"), trouble: .notReady)
        await #expect(throws: HypervisorError.self) { try await vm.lifecycle.start(vm) }
        #expect(vm.steps == ["validate", "launch", "ready?", "halt 0.0", "release", "removeFiles", "join"])
        #expect(vm.lifecycle.phase == .stopped(exitCode: 0, requested: false))
        #expect(vm.lifecycle.held == nil)
        #expect(!Self.exists(vm.lifecycle.config.runtimeDirectory))
    }

    @Test func aStopDuringStartStopsTheVMOnceItIsUp() async throws {
        let vm = RecordingBackend(Self.config("stop-early"), trouble: .stopDuringLaunch)
        try await vm.lifecycle.start(vm)
        #expect(vm.lifecycle.phase == .stopped(exitCode: 0, requested: true))
        // Not waited for: it is stopped at once.
        #expect(vm.steps == ["validate", "launch", "halt 5.0", "release", "removeFiles", "join"])
    }

    @Test func aVMMThatEndsOnItsOwnIsReleasedOnce() async throws {
        let vm = RecordingBackend(Self.config("ends"))
        try await vm.lifecycle.start(vm)
        vm.lifecycle.ended(exitCode: 1, backend: vm)
        #expect(vm.lifecycle.phase == .stopped(exitCode: 1, requested: false))
        #expect(vm.lifecycle.live == nil)
        #expect(!Self.exists(vm.lifecycle.config.runtimeDirectory))
        await #expect(throws: HypervisorError.self) { try await vm.lifecycle.pause(vm) }
        do {
            _ = try await vm.lifecycle.connectVsock(vm, port: 1024, timeoutSeconds: 1)
            Issue.record("connected to a stopped VM")
        } catch {
            guard case .vsockConnect(1024, _) = error else { throw error }
        }
        // stop after the end only joins.
        await vm.lifecycle.stop(vm, graceSeconds: 1)
        #expect(vm.lifecycle.phase == .stopped(exitCode: 1, requested: false))
        #expect(vm.steps == ["validate", "launch", "ready?", "release", "removeFiles", "join"])

        // The VMM may end before `launch` returns: what it held is released once it is recorded.
        let early = RecordingBackend(Self.config("ends-early"), trouble: .endsDuringLaunch)
        try await early.lifecycle.start(early)
        #expect(early.lifecycle.phase == .stopped(exitCode: 1, requested: false))
        #expect(early.steps == ["validate", "launch", "removeFiles", "release", "ready?"])
    }

    @Test func theSharedChecksRefuseBadSharesAndInterfacesOnEveryBackend() throws {
        var config = Self.config("checks")
        config.sharedDirectories = [SharedDirectory(tag: "kataShared", hostPath: "/tmp")]
        try config.validate()
        for (shares, why) in [
            ([SharedDirectory(tag: "", hostPath: "/tmp")], "bytes"),
            ([SharedDirectory(tag: String(repeating: "t", count: 37), hostPath: "/tmp")], "bytes"),
            ([SharedDirectory(tag: "a\0b", hostPath: "/tmp")], "bytes"),
            ([SharedDirectory(tag: "x", hostPath: "/tmp"), SharedDirectory(tag: "x", hostPath: "/tmp")], "unique"),
            ([SharedDirectory(tag: "x", hostPath: "/bin/sh")], "not a directory"),
            ([SharedDirectory(tag: "x", hostPath: "/nonexistent")], "not a directory"),
        ] {
            config.sharedDirectories = shares
            #expect {
                try config.validate()
            } throws: { error in
                guard case .invalidConfig(let what) = error as? HypervisorError else { return false }
                return what.contains(why)
            }
        }
        config.sharedDirectories = []
        config.networkInterfaces = [NetworkInterface(tapName: "t0", mac: [2, 0, 0], mtu: 1500)]
        #expect(throws: HypervisorError.self) { try config.validate() }
        config.networkInterfaces = [NetworkInterface(tapName: "t0", mac: [2, 0, 0, 0, 0, 1], mtu: 67)]
        #expect(throws: HypervisorError.self) { try config.validate() }
        config.networkInterfaces = []
        config.guestCID = 2
        #expect(throws: HypervisorError.self) { try config.validate() }
    }
}
