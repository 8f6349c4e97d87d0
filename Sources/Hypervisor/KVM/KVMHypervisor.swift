import Boot
import Devices
import Logging
import Synchronization
import SystemSupport
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// The in-process backend: our VMM (`VirtualMachine`) in this process, with virtio-mmio vsock
/// (the same `VsockDevice` + `VsockHost` the QEMU backend serves over vhost-user, so
/// `connectVsock`, `listenVsock` and the hybrid socket behave identically), virtio-rng, and
/// virtio-fs for `sharedDirectories` once a device for them is plugged in.
///
/// Threads: one per vCPU and one device event loop (inside the VMM), one waiter that records how
/// the VM ended and releases everything, plus the vsock bridge (and hybrid server).
public final class KVMHypervisor: Hypervisor {
    /// Makes the virtio device serving one shared directory (virtio-fs). Nil: shares are refused.
    public typealias SharedDirectoryDevice = @Sendable (SharedDirectory) throws(HypervisorError) -> VirtioDeviceSpec

    public let kind = HypervisorBackendKind.kvm
    public let capabilities = HypervisorCapabilities(pauseResume: true, hybridVsock: true)
    public let config: HypervisorConfig
    private let sharedDirectoryDevice: SharedDirectoryDevice?
    private let logger: Logger
    private let console = ConsoleTail()

    private struct Running: Sendable {
        let vm: VirtualMachine
        let vsock: VsockHost
        let waiter: WorkerThread
    }

    private struct State {
        var phase: HypervisorState = .created
        var running: Running?
        var stopRequested = false
        var createdDirectory = false
    }

    private let locked = Mutex(State())

    public init(
        config: HypervisorConfig, sharedDirectoryDevice: SharedDirectoryDevice? = nil,
        logger: Logger = Logger(label: "kata-swift.kvm")
    ) {
        self.config = config
        self.sharedDirectoryDevice = sharedDirectoryDevice
        var logger = logger
        if config.debug { logger.logLevel = .trace }
        self.logger = logger
    }

    deinit {
        // Dropped without stop(): no vCPU may outlive the object that owns its sockets.
        if let running = locked.withLock({ $0.running }) {
            running.vm.stop()
            running.vsock.stop()
        }
    }

    public var state: HypervisorState { locked.withLock { $0.phase } }
    public var consoleTail: String { console.text }
    /// The vsock muxer (in-process host API), while running.
    public var vsockMuxer: VsockMuxer? { locked.withLock { $0.running?.vsock.muxer } }
    /// The VM, while running (tests look at its virtio slots).
    public var virtualMachine: VirtualMachine? { locked.withLock { $0.running?.vm } }

    // MARK: start

    public func start() async throws(HypervisorError) {
        try locked.withLock { (s) throws(HypervisorError) in
            guard s.phase == .created else { throw .invalidState(operation: "start", state: "\(s.phase)") }
            s.phase = .running  // claimed; set to stopped on failure below
        }
        let running: Running
        do {
            running = try await runBlocking("kvm-start") { () throws(HypervisorError) in try self.launch() }
        } catch {
            removeRuntimeFiles()
            locked.withLock { $0.phase = .stopped(exitCode: -1, requested: false) }
            throw error
        }
        let stopNow = locked.withLock { s -> Bool in
            s.running = running
            return s.stopRequested
        }
        if stopNow { await stop() }  // stop() came while we were starting
    }

    private func validate() throws(HypervisorError) {
        guard access(config.kernelPath, R_OK) == 0 else { throw .invalidConfig("kernel \(config.kernelPath) is not readable") }
        if let initrd = config.initrdPath, access(initrd, R_OK) != 0 {
            throw .invalidConfig("initrd \(initrd) is not readable")
        }
        if let image = config.imagePath, access(image, R_OK) != 0 {
            throw .invalidConfig("image \(image) is not readable")
        }
        guard (1...64).contains(config.vcpus) else { throw .invalidConfig("vcpus \(config.vcpus) not in 1...64") }
        guard (32...65536).contains(config.memoryMiB) else { throw .invalidConfig("memory \(config.memoryMiB) MiB not in 32...65536") }
        guard config.guestCID >= 3 else { throw .invalidConfig("guest CID \(config.guestCID) must be 3 or more") }
        for interface in config.networkInterfaces {
            guard interface.mac.count == 6 else {
                throw .invalidConfig("network interface \(interface.tapName): a MAC address has 6 bytes")
            }
            // The spec's floor for VIRTIO_NET_F_MTU (the IPv4 minimum).
            guard interface.mtu >= 68 else {
                throw .invalidConfig("network interface \(interface.tapName): MTU \(interface.mtu) below 68")
            }
        }
        if !config.sharedDirectories.isEmpty, sharedDirectoryDevice == nil {
            throw .unsupported(
                "virtio-fs shares (\(config.sharedDirectories.map(\.tag).joined(separator: ", "))) on the kvm backend: "
                    + "this build has no virtio-fs device for the in-process VMM")
        }
    }

    /// Blocking: reads the images, probes the guest defaults, builds and starts the VM.
    private func launch() throws(HypervisorError) -> Running {
        try validate()
        let created = try makeRuntimeDirectory()
        locked.withLock { $0.createdDirectory = created }
        let kernel: [UInt8]
        let initrd: [UInt8]?
        do {
            kernel = try readWholeFile(config.kernelPath)
            // With a root disk image the guest needs no initramfs (QEMUCommand does the same).
            initrd = try (config.imagePath == nil ? config.initrdPath : nil).map { (path) throws(Errno) in try readWholeFile(path) }
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
        var devices: [VirtioDeviceSpec] = []
        for share in config.sharedDirectories {
            guard let make = sharedDirectoryDevice else { break }
            devices.append(try make(share))
        }
        let vsock = try VsockHost(hybridPath: config.hybridVsockPath, forwardedPorts: config.hybridForwardedPorts, logger: logger)
        let vsockDevice = VsockDevice(guestCID: UInt64(config.guestCID), backend: vsock.muxer, logger: logger)
        devices = [.vsock(vsockDevice, muxer: vsock.muxer), .rng()] + devices
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
                payload: .linux(kernel: kernel, initrd: initrd, cmdline: cmdline), cpuTemplate: defaults.template,
                consoleOutput: { bytes in
                    console.append(bytes)
                    output?(bytes)
                }, virtioDevices: devices))
            try vm.start()
        } catch {
            vsock.stop()
            throw .backendUnavailable("kvm: \(error)")
        }
        logger.debug("kvm: started, cmdline '\(cmdline)'")
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

    /// Creates the runtime directory (mode 0700) if needed; true when we created it.
    private func makeRuntimeDirectory() throws(HypervisorError) -> Bool {
        var st = stat()
        if stat(config.runtimeDirectory, &st) == 0 { return false }
        guard mkdir(config.runtimeDirectory, 0o700) == 0 else {
            throw .system(operation: "mkdir \(config.runtimeDirectory)", .current)
        }
        return true
    }

    /// The VM ended (every vCPU and device thread joined): release the vsock host side and
    /// record how it ended. Runs on the waiter thread.
    private func finished(_ reason: StopReason) {
        let running = locked.withLock { $0.running }
        running?.vsock.stop()
        removeRuntimeFiles()
        locked.withLock { s in
            s.phase = .stopped(exitCode: Self.exitCode(reason), requested: s.stopRequested)
        }
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

    private func removeRuntimeFiles() {
        if locked.withLock({ $0.createdDirectory }) { rmdir(config.runtimeDirectory) }
    }

    // MARK: stop, wait, pause

    /// Our VMM has no polite shutdown channel (no ACPI): the vCPUs are stopped at once, then
    /// every thread is joined and every descriptor closed. `graceSeconds` is not needed.
    public func stop(graceSeconds: Double) async {
        let running = locked.withLock { s -> Running? in
            if s.phase == .created { s.phase = .stopped(exitCode: 0, requested: true) }
            s.stopRequested = true
            return s.running
        }
        guard let running else { return }
        running.vm.stop(.stopRequested)
        await runBlocking("kvm-join") { running.waiter.join() }
        locked.withLock { $0.running = nil }
    }

    public func waitForExit() async -> HypervisorState {
        guard let running = locked.withLock({ $0.running }) else { return state }
        await runBlocking("kvm-join") { running.waiter.join() }
        locked.withLock { $0.running = nil }  // the VM's descriptors go with it
        return state
    }

    public func pause() async throws(HypervisorError) {
        try await transition(to: .paused)
    }

    public func resume() async throws(HypervisorError) {
        try await transition(to: .running)
    }

    private func transition(to target: HypervisorState) async throws(HypervisorError) {
        let from: HypervisorState = target == .paused ? .running : .paused
        let name = target == .paused ? "pause" : "resume"
        let vm = try locked.withLock { (s) throws(HypervisorError) -> VirtualMachine in
            guard s.phase == from, let running = s.running else { throw .invalidState(operation: name, state: "\(s.phase)") }
            return running.vm
        }
        let result = await runBlocking("kvm-\(name)") { () -> String? in
            do throws(VMMError) {
                if target == .paused { try vm.pause() } else { try vm.resume() }
                return nil
            } catch {
                return "\(error)"
            }
        }
        if let error = result { throw .invalidState(operation: name, state: error) }
        locked.withLock { s in if s.phase == from { s.phase = target } }
    }

    // MARK: vsock

    public func connectVsock(port: UInt32, timeoutSeconds: Double) async throws(HypervisorError) -> FileDescriptor {
        guard let vsock = locked.withLock({ s -> VsockHost? in
            if case .stopped = s.phase { return nil }
            return s.running?.vsock
        }) else {
            throw .vsockConnect(port: port, reason: "the VM is not running (\(state))")
        }
        return try await vsock.connect(port: port, timeoutSeconds: timeoutSeconds) { [weak self] in
            guard let self else { return false }
            return self.locked.withLock { if case .stopped = $0.phase { false } else { $0.running != nil } }
        }
    }

    public func listenVsock(port: UInt32) throws(HypervisorError) -> AsyncStream<FileDescriptor> {
        guard let vsock = locked.withLock({ $0.running?.vsock }) else {
            throw .invalidState(operation: "listenVsock", state: "\(state)")
        }
        return try vsock.listen(port: port)
    }
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
