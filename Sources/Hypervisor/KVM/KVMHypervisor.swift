import Boot
import Devices
import HostProbes
import Logging
import Synchronization
import SystemSupport
import VMM
import VirtIO
#if canImport(Glibc)
import Glibc
#endif

/// The in-process backend: our VMM (`VirtualMachine`) in this process, with virtio-mmio vsock
/// (the same `VsockDevice` + `VsockHost` the QEMU backend serves over vhost-user, so
/// `connectVsock`, `listenVsock` and the hybrid socket behave identically), virtio-rng, and
/// virtio-fs for `sharedDirectories` (the device model QEMU gets over vhost-user).
///
/// The lifecycle (states, checks, runtime directory, stop) is `HypervisorLifecycle`'s; this
/// class supplies the steps of our VMM.
///
/// Threads: one per vCPU and one device event loop (inside the VMM), one waiter that records how
/// the VM ended and releases everything, plus the vsock bridge (and hybrid server).
public final class KVMHypervisor: Hypervisor, HypervisorBackendSteps {
    public let kind = HypervisorBackendKind.kvm
    public let capabilities = HypervisorCapabilities(pauseResume: true, hybridVsock: true)
    public var config: HypervisorConfig { lifecycle.config }
    private let logger: Logger
    private let console = ConsoleTail()

    struct Running: Sendable {
        let vm: VirtualMachine
        let vsock: VsockHost
        let waiter: WorkerThread
    }

    private let lifecycle: HypervisorLifecycle<Running>

    public init(config: HypervisorConfig, logger: Logger = Logger(label: "kata-swift.kvm")) {
        lifecycle = HypervisorLifecycle(config: config)
        var logger = logger
        if config.debug { logger.logLevel = .trace }
        self.logger = logger
    }

    deinit {
        // Dropped without stop(): no vCPU may outlive the object that owns its sockets.
        if let running = lifecycle.held {
            running.vm.stop()
            running.vsock.stop()
        }
    }

    public var state: HypervisorState { lifecycle.phase }
    public var consoleTail: String { console.text }
    /// The vsock muxer (in-process host API), while running.
    public var vsockMuxer: VsockMuxer? { lifecycle.held?.vsock.muxer }
    /// The VM, while running (tests look at its virtio slots).
    public var virtualMachine: VirtualMachine? { lifecycle.held?.vm }

    // MARK: the lifecycle

    public func start() async throws(HypervisorError) { try await lifecycle.start(self) }

    /// Our VMM has no polite shutdown channel (no ACPI): the vCPUs are stopped at once, then
    /// every thread is joined and every descriptor closed. `graceSeconds` is not needed.
    public func stop(graceSeconds: Double) async { await lifecycle.stop(self, graceSeconds: graceSeconds) }
    public func waitForExit() async -> HypervisorState { await lifecycle.waitForExit(self) }
    public func pause() async throws(HypervisorError) { try await lifecycle.pause(self) }
    public func resume() async throws(HypervisorError) { try await lifecycle.resume(self) }

    public func connectVsock(port: UInt32, timeoutSeconds: Double) async throws(HypervisorError) -> FileDescriptor {
        try await lifecycle.connectVsock(self, port: port, timeoutSeconds: timeoutSeconds)
    }

    public func listenVsock(port: UInt32) throws(HypervisorError) -> AsyncStream<FileDescriptor> {
        try lifecycle.listenVsock(self, port: port)
    }

    // MARK: our VMM's steps

    /// Nothing beyond the shared checks (every configured device is one our VMM has), and a
    /// saved VM to restore must be readable.
    func validateBackend() throws(HypervisorError) {
        if let path = config.restoreFrom, access(path, R_OK) != 0 { throw .invalidConfig("saved VM \(path) is not readable") }
    }

    /// Pauses the running VM and saves it to `path` (docs/snapshots.md): a template that
    /// `HypervisorConfig.restoreFrom` starts VMs from. The VM stays paused; stop it, or resume it.
    /// Vsock connections still closing get up to 5 s to end first (the guest answers their
    /// shutdown while it runs). Refused, with the VM left paused and nothing written, while a
    /// device holds what a save cannot carry (a vsock connection open, virtio-fs mounted, a
    /// network interface).
    public func saveTemplate(to path: String) async throws(HypervisorError) {
        guard let running = lifecycle.held else { throw .invalidState(operation: "save", state: "\(state)") }
        if !running.vm.isPaused {
            for _ in 0..<500 where running.vsock.muxer.connectionCount > 0 { try? await Task.sleep(for: .milliseconds(10)) }
            try await pause()
        }
        try await vmCall("save", "kvm-save") { () throws(VMMError) in try running.vm.saveSnapshot(to: path) }
    }

    func launch() async throws(HypervisorError) -> Running {
        try await onOwnThread("kvm-start") { () throws(HypervisorError) in try self.launchBlocking() }
    }

    /// Blocking: reads the images, probes the guest defaults, builds and starts the VM.
    private func launchBlocking() throws(HypervisorError) -> Running {
        let kernel: [UInt8]
        let initrd: [UInt8]?
        let saved = try config.restoreFrom.map { (path) throws(HypervisorError) in
            do { return try SnapshotFile.read(from: path) } catch { throw .invalidConfig("saved VM \(path): \(error)") }
        }
        do {
            kernel = saved == nil ? try readWholeFile(config.kernelPath) : []
            // With a root disk image the guest needs no initramfs (QEMUCommand does the same).
            initrd = try (config.imagePath == nil && saved == nil ? config.initrdPath : nil).map { (path) throws(Errno) in try readWholeFile(path) }
        } catch {
            throw .system(operation: "reading the kernel or initrd", error)
        }
        let defaults: GuestDefaults
        let cmdline: Cmdline
        do {
            defaults = try Self.guestDefaults()
            let root = config.imagePath == nil ? [] : HypervisorConfig.imageRootArguments
            cmdline = try Cmdline(([defaults.cmdline] + root + (config.debug ? [] : ["quiet"]) + config.cmdlineExtras).joined(separator: " "))
        } catch let error as VMMError {
            throw .backendUnavailable("kvm: probing guest defaults: \(error)")
        } catch {
            throw .invalidConfig("kernel command line: \(error)")
        }
        // Our virtio-fs device model over our FUSE server, one per share, on a virtio-mmio slot.
        let shares = try config.sharedDirectories.map { (share) throws(HypervisorError) in
            VirtioDeviceSpec(device: try makeVirtioFsDevice(share, traffic: config.traffic.sharedDirectories, logger: logger))
        }
        let vsock = try VsockHost(hybridPath: config.hybridVsockPath, forwardedPorts: config.hybridForwardedPorts, logger: logger)
        let vsockDevice = VsockDevice(guestCID: UInt64(config.guestCID), backend: vsock.muxer, traffic: config.traffic.vsock, logger: logger)
        var devices: [VirtioDeviceSpec] = [.vsock(vsockDevice, muxer: vsock.muxer), .rng()] + shares
        if config.reclaimFreedMemory { devices.append(.balloon(BalloonDevice(logger: logger))) }
        if let image = config.imagePath {
            do {
                devices.append(.blk(BlkDevice(backend: try FileBlockBackend(path: image), logger: logger)))
            } catch {
                vsock.stop()
                throw .invalidConfig("image \(image): \(error)")
            }
        }
        do {
            devices += try config.networkInterfaces.map { (interface) throws(Errno) in
                let tap = try TapBackend(name: interface.tapName, netnsPath: interface.netnsPath)
                return .net(NetDevice(mac: interface.mac, mtu: interface.mtu, backend: tap, logger: logger))
            }
        } catch {
            vsock.stop()
            throw .system(operation: "opening the network interfaces' taps", error)
        }
        let console = self.console
        let output = config.consoleOutput
        let vm: VirtualMachine
        do {
            vm = try VirtualMachine(config: VMConfig(
                memorySize: UInt64(config.memoryMiB) << 20, vcpus: config.vcpus,
                payload: saved.map { .snapshot($0.0, file: $0.1) } ?? .linux(kernel: kernel, initrd: initrd, cmdline: cmdline),
                cpuTemplate: defaults.template,
                consoleOutput: { bytes in
                    console.append(bytes)
                    output?(bytes)
                }, virtioDevices: devices))
            try vm.start()
        } catch {
            vsock.stop()
            throw .backendUnavailable("kvm: \(error)")
        }
        if let path = config.restoreFrom {
            logger.debug("kvm: restored from \(path)")
        } else {
            logger.debug("kvm: started, cmdline '\(cmdline)'")
        }
        do {
            let waiter = try WorkerThread(name: "kvm-waiter") { [weak self] in
                let reason = vm.wait()
                self?.finished(reason)
            }
            return Running(vm: vm, vsock: vsock, waiter: waiter)
        } catch {
            vm.stop()
            _ = vm.wait()
            vsock.stop()
            throw .system(operation: "kvm waiter thread", error)
        }
    }

    private static let probedDefaults = Mutex<GuestDefaults?>(nil)

    /// The host's guest defaults (CPU template, `clearcpuid=`), probed with tiny guests once per
    /// process: they depend only on the host's KVM.
    static func guestDefaults() throws(VMMError) -> GuestDefaults {
        if let known = probedDefaults.withLock({ $0 }) { return known }
        let probed = try GuestDefaults.probe()
        probedDefaults.withLock { $0 = probed }
        return probed
    }

    /// The VM ended (every vCPU and device thread joined): the lifecycle releases and records
    /// it. Runs on the waiter thread.
    private func finished(_ reason: StopReason) {
        lifecycle.ended(exitCode: Self.exitCode(reason), backend: self)
        if Self.exitCode(reason) == 0 {
            logger.debug("kvm: VM ended: \(reason)")
        } else {
            logger.error("kvm: VM ended: \(reason)")
        }
    }

    /// Like a VMM process's status: 0 for a guest reboot/poweroff or a requested stop, 1 otherwise
    /// (a panic, a triple fault, a KVM failure).
    static func exitCode(_ reason: StopReason) -> Int32 {
        switch reason {
        case .reset, .stopRequested, .systemEvent(1), .systemEvent(2): 0
        default: 1
        }
    }

    func halt(_ running: Running, graceSeconds: Double) async { running.vm.stop(.stopRequested) }

    func join(_ running: Running) async { await onOwnThread("kvm-join") { running.waiter.join() } }

    /// The vsock host side; the VM's own threads are joined already.
    func release(_ running: Running) { running.vsock.stop() }

    func pause(_ running: Running) async throws(HypervisorError) { try await freeze(running.vm, pausing: true) }

    func resume(_ running: Running) async throws(HypervisorError) { try await freeze(running.vm, pausing: false) }

    private func freeze(_ vm: VirtualMachine, pausing: Bool) async throws(HypervisorError) {
        let name = pausing ? "pause" : "resume"
        try await vmCall(name, "kvm-\(name)") { () throws(VMMError) in
            if pausing { try vm.pause() } else { try vm.resume() }
        }
    }

    /// Runs a blocking VMM call on a thread of its own; its error becomes `.invalidState`.
    private func vmCall(
        _ operation: String, _ thread: String, _ body: @escaping @Sendable () throws(VMMError) -> Void
    ) async throws(HypervisorError) {
        let result = await onOwnThread(thread) { () -> String? in
            do throws(VMMError) {
                try body()
                return nil
            } catch {
                return "\(error)"
            }
        }
        if let error = result { throw .invalidState(operation: operation, state: error) }
    }

    func vsockHost(of running: Running) -> VsockHost { running.vsock }
}

/// The last 64 KiB of console output.
final class ConsoleTail: Sendable {
    static let limit = 64 * 1024
    private let bytes = Mutex<[UInt8]>([])

    func append(_ new: [UInt8]) {
        bytes.withLock { b in
            b += new
            if b.count > Self.limit { b.removeFirst(b.count - Self.limit) }
        }
    }

    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
}
