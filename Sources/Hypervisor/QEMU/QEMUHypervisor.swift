import Devices
import Logging
import VhostUser
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The QEMU backend: qemu-system-x86_64 -M microvm as a child process, whose vsock device is our
/// own `VsockDevice` and whose virtio-fs devices (one per `sharedDirectories` entry) are our own
/// `VirtioFsDevice` over our FUSE server, each served over vhost-user from this process, with
/// guest RAM in a shared memfd.
public final class QEMUHypervisor: Hypervisor {
    public let kind = HypervisorBackendKind.qemu
    public let capabilities = HypervisorCapabilities(pauseResume: true, hybridVsock: true)
    public let config: HypervisorConfig
    let accelerator: QEMUAccelerator
    private let logger: Logger

    /// Seconds to wait for QEMU to connect to the vhost-user socket after spawning.
    static let frontendTimeout = 20.0

    private struct Running {
        let process: ChildProcess
        let server: VhostUserServer
        let vsock: VsockHost
        let shares: [VirtioFsShare]
        let nets: [VhostUserNet]
        /// The root disk (`imagePath`): our BlkDevice over vhost-user.
        let disk: VhostUserBlk?

        /// Stops every vhost-user server (threads joined, sockets removed) and the vsock host.
        func stopServers() {
            server.stop()
            shares.forEach { $0.stop() }
            nets.forEach { $0.stop() }
            disk?.stop()
            vsock.stop()
        }
    }

    private struct State {
        var phase: HypervisorState = .created
        var running: Running?
        var stopRequested = false
        var createdDirectory = false
    }

    private let locked = Mutex(State())

    public init(config: HypervisorConfig, accelerator: QEMUAccelerator = .tcg, logger: Logger = Logger(label: "kata-swift.qemu")) {
        self.config = config
        self.accelerator = accelerator
        var logger = logger
        if config.debug { logger.logLevel = .trace }
        self.logger = logger
    }

    deinit {
        // A VM dropped without stop(): no process may outlive it.
        if let running = locked.withLock({ $0.running }) {
            running.process.signal(SIGKILL)
            running.stopServers()
        }
    }

    public var state: HypervisorState { locked.withLock { $0.phase } }

    var vhostSocketPath: String { config.runtimeDirectory + "/vhost-vsock.sock" }
    var qmpSocketPath: String { config.runtimeDirectory + "/qmp.sock" }
    /// The vhost-user socket of each shared directory, in `config.sharedDirectories` order.
    var virtioFsSocketPaths: [String] { config.sharedDirectories.indices.map { config.runtimeDirectory + "/vhost-fs\($0).sock" } }
    /// The vhost-user socket of each network interface, in `config.networkInterfaces` order.
    var netSocketPaths: [String] { config.networkInterfaces.indices.map { config.runtimeDirectory + "/vhost-net\($0).sock" } }
    /// The vhost-user socket of the root disk.
    var diskSocketPath: String { config.runtimeDirectory + "/vhost-blk.sock" }

    /// The vsock muxer (in-process host API: `connect(port:)`, `listen(port:)`), while running.
    public var vsockMuxer: VsockMuxer? { locked.withLock { $0.running?.vsock.muxer } }
    /// The QEMU process id, while running.
    public var pid: Int32? { locked.withLock { $0.running?.process.pid } }
    /// Joined vsock connections (for tests: closed connections must go away).
    var activeBridgedConnections: Int { locked.withLock { $0.running?.vsock.bridge.activePairs } ?? 0 }
    var frontendState: VhostUserServer.FrontendState? { locked.withLock { $0.running?.server.frontendState } }

    public var consoleTail: String { locked.withLock { $0.running?.process.outputTail } ?? lastConsoleTail.withLock { $0 } }
    private let lastConsoleTail = Mutex("")

    public func start() async throws(HypervisorError) {
        try locked.withLock { (s) throws(HypervisorError) in
            guard s.phase == .created else { throw .invalidState(operation: "start", state: "\(s.phase)") }
            s.phase = .running  // claimed; set back on failure below
        }
        do {
            try validate()
            let created = try makeRuntimeDirectory()
            locked.withLock { $0.createdDirectory = created }
            let running = try launch()
            locked.withLock { $0.running = running }
            running.process.onExit { [weak self] code in self?.finished(code) }
            try await waitForFrontend(running)
            try await waitForMachine(running)
        } catch {
            let running = locked.withLock { $0.running }
            if let running {
                _ = await running.process.terminate(graceSeconds: 0)
                running.process.joinThreads()
            } else {
                removeRuntimeFiles()
                locked.withLock { $0.phase = .stopped(exitCode: -1, requested: false) }
            }
            throw error
        }
    }

    /// The user QEMU runs as after setup, resolved by `validate`.
    private let runAs = Mutex<QEMUUser?>(nil)
    /// This sandbox's own uid, held until QEMU has ended (`finished`).
    private let userClaim = Mutex<QEMUUserClaim?>(nil)

    private func validate() throws(HypervisorError) {
        if let pool = config.qemuUserPool {
            let claim = try pool.claim()
            userClaim.withLock { $0 = claim }
            runAs.withLock { $0 = claim.user }
        } else if let name = config.qemuUser {
            let user = try QEMUUser.resolve(name)
            runAs.withLock { $0 = user }
        }
        guard access(config.kernelPath, R_OK) == 0 else { throw .invalidConfig("kernel \(config.kernelPath) is not readable") }
        if let initrd = config.initrdPath, access(initrd, R_OK) != 0 {
            throw .invalidConfig("initrd \(initrd) is not readable")
        }
        if let image = config.imagePath, access(image, R_OK) != 0 {
            throw .invalidConfig("image \(image) is not readable")
        }
        if let source = config.qemuEntropySource, access(source, R_OK) != 0 {
            throw .invalidConfig("entropy_source \(source) is not readable")
        }
        guard access(config.qemuBinary, X_OK) == 0 else {
            throw .backendUnavailable("\(config.qemuBinary) is not executable (install qemu-system-x86)")
        }
        guard (1...64).contains(config.vcpus) else { throw .invalidConfig("vcpus \(config.vcpus) not in 1...64") }
        guard (32...65536).contains(config.memoryMiB) else { throw .invalidConfig("memory \(config.memoryMiB) MiB not in 32...65536") }
        guard config.guestCID >= 3 else { throw .invalidConfig("guest CID \(config.guestCID) must be 3 or more") }
        for interface in config.networkInterfaces {
            guard interface.mac.count == 6, interface.mtu >= 68 else {
                throw .invalidConfig("network interface \(interface.tapName): MAC of 6 bytes and MTU of at least 68 needed")
            }
        }
        guard ([vhostSocketPath, qmpSocketPath, diskSocketPath] + virtioFsSocketPaths + netSocketPaths).allSatisfy({ $0.utf8.count < 108 }) else {
            throw .invalidConfig("runtime directory \(config.runtimeDirectory) is too long for Unix sockets")
        }
        var tags: Set<String> = []
        for share in config.sharedDirectories {
            let bytes = share.tag.utf8.count
            guard (1...VirtioFsDevice.tagSize).contains(bytes), !share.tag.contains("\0"), tags.insert(share.tag).inserted else {
                throw .invalidConfig("virtio-fs tag \"\(share.tag)\" must be 1...\(VirtioFsDevice.tagSize) bytes and unique")
            }
            var st = stat()
            guard stat(share.hostPath, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw .invalidConfig("shared directory \(share.hostPath) (tag \(share.tag)) is not a directory")
            }
        }
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

    private func launch() throws(HypervisorError) -> Running {
        let vsock = try VsockHost(hybridPath: config.hybridVsockPath, forwardedPorts: config.hybridForwardedPorts, logger: logger)
        let device = VsockDevice(guestCID: UInt64(config.guestCID), backend: vsock.muxer, logger: logger)
        let server: VhostUserServer
        do {
            server = try VhostUserServer(
                path: vhostSocketPath, device: device, queueCount: 2, backendWork: { device.processBackend() },
                logger: logger)
        } catch {
            vsock.stop()
            throw .vhostUser("\(error)")
        }
        // Weak: the muxer belongs to the device the server holds.
        vsock.muxer.setWakeHandler { [weak server] in server?.wake() }
        var shares: [VirtioFsShare] = []
        var nets: [VhostUserNet] = []
        var disk: VhostUserBlk?
        do {
            for (share, path) in zip(config.sharedDirectories, virtioFsSocketPaths) {
                shares.append(try VirtioFsShare(share, socketPath: path, logger: logger))
            }
            for (interface, path) in zip(config.networkInterfaces, netSocketPaths) {
                nets.append(try VhostUserNet(interface, socketPath: path, logger: logger))
            }
            if let image = config.imagePath { disk = try VhostUserBlk(imagePath: image, socketPath: diskSocketPath, logger: logger) }
        } catch {
            server.stop()
            shares.forEach { $0.stop() }
            nets.forEach { $0.stop() }
            vsock.stop()
            throw error
        }
        let cpuinfo = Self.readProcFile("/proc/cpuinfo", limit: 16384)
        let command = QEMUCommand(
            config: config, accelerator: accelerator, vhostVsockSocket: vhostSocketPath,
            virtioFs: shares.map { QEMUCommand.VirtioFs(tag: $0.tag, socket: $0.socketPath) },
            networks: nets.map { QEMUCommand.Network(socket: $0.socketPath, mac: $0.macText, mtu: $0.interface.mtu) },
            diskSocket: disk?.socketPath,
            qmpSocket: qmpSocketPath,
            tscKHz: QEMUCommand.tscKHz(cpuinfo: cpuinfo), runAs: runAs.withLock { $0 })
        logger.debug("qemu: \(command.arguments.joined(separator: " "))")
        do {
            let process = try ChildProcess(arguments: command.arguments, output: config.consoleOutput)
            return Running(process: process, server: server, vsock: vsock, shares: shares, nets: nets, disk: disk)
        } catch {
            server.stop()
            shares.forEach { $0.stop() }
            nets.forEach { $0.stop() }
            disk?.stop()
            vsock.stop()
            throw error
        }
    }

    private func waitForFrontend(_ running: Running) async throws(HypervisorError) {
        let (events, continuation) = AsyncStream<Result<Void, HypervisorError>>.makeStream()
        running.server.onFrontendChange { change in
            switch change {
            case .connected: continuation.yield(.success(()))
            case .disconnected(let why): continuation.yield(.failure(.vhostUser("frontend left during start: \(why)")))
            case .waiting: break
            }
        }
        let process = running.process
        running.process.onExit { [weak self] code in
            let tail = self?.lastLines(process.outputTail) ?? ""
            continuation.yield(.failure(.exitedEarly(code: code, consoleTail: tail)))
        }
        let timer = Task {
            try await Task.sleep(for: .milliseconds(Int(Self.frontendTimeout * 1000)))
            continuation.yield(.failure(.timeout("waiting \(Self.frontendTimeout) s for QEMU to connect to \(vhostSocketPath)")))
        }
        defer { timer.cancel() }
        for await event in events {
            try event.get()
            return
        }
    }

    /// Waits until QEMU's monitor answers, i.e. machine and devices are set up and the kernel is
    /// loaded; a QEMU that fails on the way (bad kernel, device error) exits before that.
    private func waitForMachine(_ running: Running) async throws(HypervisorError) {
        let path = qmpSocketPath
        let process = running.process
        do {
            try await runBlocking("qmp-start") { () throws(HypervisorError) in
                let deadline = ContinuousClock.now + .seconds(Int(Self.frontendTimeout))
                var last = HypervisorError.timeout("waiting for QEMU's monitor")
                while ContinuousClock.now < deadline, process.exitCode == nil {
                    do throws(HypervisorError) {
                        var client = try QMPClient(path: path)
                        try client.execute("query-status")
                        return
                    } catch {
                        last = error
                        usleep(20_000)
                    }
                }
                throw last
            }
        } catch {
            if let code = await exitCode(of: process, within: .seconds(2)) {
                throw .exitedEarly(code: code, consoleTail: lastLines(process.outputTail))
            }
            throw error
        }
    }

    /// The exit status if `process` ends within `limit`.
    private func exitCode(of process: ChildProcess, within limit: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let code = process.exitCode { return code }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.exitCode
    }

    /// QEMU ended: release everything (on the reaper thread) and record how it ended.
    private func finished(_ code: Int32) {
        let running = locked.withLock { $0.running }
        running?.stopServers()
        removeRuntimeFiles()
        locked.withLock { s in
            if let tail = s.running?.process.outputTail { lastConsoleTail.withLock { $0 = tail } }
            s.phase = .stopped(exitCode: code, requested: s.stopRequested)
            s.running = nil
        }
    }

    private func removeRuntimeFiles() {
        userClaim.withLock { $0 = nil }  // QEMU has ended (or never started): its uid is free again
        unlink(vhostSocketPath)
        unlink(qmpSocketPath)
        virtioFsSocketPaths.forEach { unlink($0) }
        if locked.withLock({ $0.createdDirectory }) { rmdir(config.runtimeDirectory) }
    }

    public func stop(graceSeconds: Double) async {
        let running = locked.withLock { s -> Running? in
            if s.phase == .created { s.phase = .stopped(exitCode: 0, requested: true) }
            s.stopRequested = true
            return s.running
        }
        guard let running else { return }
        _ = await running.process.terminate(graceSeconds: graceSeconds)
        await runBlocking("qemu-join") { running.process.joinThreads() }
    }

    public func waitForExit() async -> HypervisorState {
        guard let running = locked.withLock({ $0.running }) else { return locked.withLock { $0.phase } }
        _ = await running.process.waitForExit()
        await runBlocking("qemu-join") { running.process.joinThreads() }
        return locked.withLock { $0.phase }
    }

    /// Freezes the VM by stopping QEMU's process group (SIGSTOP). QMP `stop` would also stop
    /// the vhost-user device (GET_VRING_BASE), and our session resets the vsock device then,
    /// which would drop every connection; a stopped process keeps them, and our backend simply
    /// sees no kicks until `resume`.
    public func pause() async throws(HypervisorError) {
        try transition(from: .running, to: .paused, signal: SIGSTOP)
    }

    public func resume() async throws(HypervisorError) {
        try transition(from: .paused, to: .running, signal: SIGCONT)
    }

    private func transition(from: HypervisorState, to: HypervisorState, signal: Int32) throws(HypervisorError) {
        try locked.withLock { (s) throws(HypervisorError) in
            guard s.phase == from, let running = s.running else {
                throw .invalidState(operation: to == .paused ? "pause" : "resume", state: "\(s.phase)")
            }
            running.process.signal(signal)
            s.phase = to
        }
    }

    public func connectVsock(port: UInt32, timeoutSeconds: Double) async throws(HypervisorError) -> FileDescriptor {
        guard let vsock = locked.withLock({ $0.running?.vsock }) else {
            throw .vsockConnect(port: port, reason: "the VM is not running (\(state))")
        }
        do {
            return try await vsock.connect(port: port, timeoutSeconds: timeoutSeconds) { [weak self] in
                guard let self else { return false }
                return self.locked.withLock { $0.running != nil }
            }
        } catch {
            if case .stopped = state {
                throw .vsockConnect(port: port, reason: "the VM stopped (\(state)); console tail:\n\(lastLines(consoleTail))")
            }
            throw error
        }
    }

    public func listenVsock(port: UInt32) throws(HypervisorError) -> AsyncStream<FileDescriptor> {
        guard let vsock = locked.withLock({ $0.running?.vsock }) else {
            throw .invalidState(operation: "listenVsock", state: "\(locked.withLock { $0.phase })")
        }
        return try vsock.listen(port: port)
    }

    /// The start of a /proc file (whose size fstat reports as 0), at most `limit` bytes.
    static func readProcFile(_ path: String, limit: Int) -> String {
        (try? readWholeTextFile(path, limit: limit)) ?? ""
    }

    private func lastLines(_ text: String, count: Int = 20) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }
}

/// How QEMU executes guest code.
public enum QEMUAccelerator: String, Sendable {
    /// Software emulation: slow, but runs a guest userspace on any host.
    case tcg
    /// Hardware virtualization through /dev/kvm.
    case kvm
}

extension QEMUHypervisor {
    /// Whether each network interface's vhost-user device is running (the guest's driver set
    /// DRIVER_OK and QEMU started the rings); empty when not running. For tests.
    var networkDevicesActive: [Bool] { locked.withLock { $0.running?.nets.map(\.server.isActive) ?? [] } }
}
