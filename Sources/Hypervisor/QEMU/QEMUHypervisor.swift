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
///
/// The lifecycle (states, checks, runtime directory, stop) is `HypervisorLifecycle`'s; this
/// class supplies the steps of QEMU and its vhost-user servers.
public final class QEMUHypervisor: Hypervisor, HypervisorBackendSteps {
    public let kind = HypervisorBackendKind.qemu
    public let capabilities = HypervisorCapabilities(pauseResume: true, hybridVsock: true)
    public var config: HypervisorConfig { lifecycle.config }
    let accelerator: QEMUAccelerator
    private let logger: Logger

    /// Seconds to wait for QEMU to connect to the vhost-user socket after spawning.
    static let frontendTimeout = 20.0

    struct Running: Sendable {
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

    private let lifecycle: HypervisorLifecycle<Running>

    public init(config: HypervisorConfig, accelerator: QEMUAccelerator = .tcg, logger: Logger = Logger(label: "kata-swift.qemu")) {
        lifecycle = HypervisorLifecycle(config: config)
        self.accelerator = accelerator
        var logger = logger
        if config.debug { logger.logLevel = .trace }
        self.logger = logger
    }

    deinit {
        // A VM dropped without stop(): no process may outlive it.
        if let running = lifecycle.live {
            running.process.signal(SIGKILL)
            running.stopServers()
        }
    }

    public var state: HypervisorState { lifecycle.phase }

    public var processID: Int32? { lifecycle.live?.process.pid }

    var vhostSocketPath: String { config.runtimeDirectory + "/vhost-vsock.sock" }
    var qmpSocketPath: String { config.runtimeDirectory + "/qmp.sock" }
    /// The vhost-user socket of each shared directory, in `config.sharedDirectories` order.
    var virtioFsSocketPaths: [String] { config.sharedDirectories.indices.map { config.runtimeDirectory + "/vhost-fs\($0).sock" } }
    /// The vhost-user socket of each network interface, in `config.networkInterfaces` order.
    var netSocketPaths: [String] { config.networkInterfaces.indices.map { config.runtimeDirectory + "/vhost-net\($0).sock" } }
    /// The vhost-user socket of the root disk.
    var diskSocketPath: String { config.runtimeDirectory + "/vhost-blk.sock" }

    /// The vsock muxer (in-process host API: `connect(port:)`, `listenVsock(port:)`), while running.
    public var vsockMuxer: VsockMuxer? { lifecycle.live?.vsock.muxer }
    /// The QEMU process id, while running.
    public var pid: Int32? { lifecycle.live?.process.pid }
    /// Joined vsock connections (for tests: closed connections must go away).
    var activeBridgedConnections: Int { lifecycle.live?.vsock.bridge.activePairs ?? 0 }
    var frontendState: VhostUserServer.FrontendState? { lifecycle.live?.server.frontendState }

    public var consoleTail: String { lifecycle.live?.process.outputTail ?? lastConsoleTail.withLock { $0 } }
    private let lastConsoleTail = Mutex("")

    // MARK: the lifecycle

    public func start() async throws(HypervisorError) { try await lifecycle.start(self) }
    public func stop(graceSeconds: Double) async { await lifecycle.stop(self, graceSeconds: graceSeconds) }
    public func waitForExit() async -> HypervisorState { await lifecycle.waitForExit(self) }

    /// Freezes the VM by stopping QEMU's process group (SIGSTOP). QMP `stop` would also stop
    /// the vhost-user device (GET_VRING_BASE), and our session resets the vsock device then,
    /// which would drop every connection; a stopped process keeps them, and our backend simply
    /// sees no kicks until `resume`.
    public func pause() async throws(HypervisorError) { try await lifecycle.pause(self) }
    public func resume() async throws(HypervisorError) { try await lifecycle.resume(self) }

    public func connectVsock(port: UInt32, timeoutSeconds: Double) async throws(HypervisorError) -> FileDescriptor {
        try await lifecycle.connectVsock(self, port: port, timeoutSeconds: timeoutSeconds)
    }

    public func listenVsock(port: UInt32) throws(HypervisorError) -> AsyncStream<FileDescriptor> {
        try lifecycle.listenVsock(self, port: port)
    }

    // MARK: QEMU's steps

    /// The user QEMU runs as after setup, resolved by `validateBackend`.
    private let runAs = Mutex<QEMUUser?>(nil)
    /// This sandbox's own uid, held until QEMU has ended (`removeFiles`).
    private let userClaim = Mutex<QEMUUserClaim?>(nil)

    /// QEMU's user, its entropy source and binary, and socket paths that fit `sun_path`.
    func validateBackend() throws(HypervisorError) {
        if config.restoreFrom != nil { throw .invalidConfig("restoring a saved VM needs the in-process kvm backend") }
        if let source = config.qemuEntropySource, access(source, R_OK) != 0 {
            throw .invalidConfig("entropy_source \(source) is not readable")
        }
        guard access(config.qemuBinary, X_OK) == 0 else {
            throw .backendUnavailable("\(config.qemuBinary) is not executable (install qemu-system-x86)")
        }
        guard ([vhostSocketPath, qmpSocketPath, diskSocketPath] + virtioFsSocketPaths + netSocketPaths).allSatisfy({ $0.utf8.count < 108 }) else {
            throw .invalidConfig("runtime directory \(config.runtimeDirectory) is too long for Unix sockets")
        }
        if let pool = config.qemuUserPool {
            let claim = try pool.claim()
            userClaim.withLock { $0 = claim }
            runAs.withLock { $0 = claim.user }
        } else if let name = config.qemuUser {
            let user = try QEMUUser.resolve(name)
            runAs.withLock { $0 = user }
        }
    }

    /// Waits until QEMU has connected to the vsock socket and its monitor answers.
    func awaitReady(_ running: Running) async throws(HypervisorError) {
        try await waitForFrontend(running)
        try await waitForMachine(running)
    }

    func halt(_ running: Running, graceSeconds: Double) async {
        _ = await running.process.terminate(graceSeconds: graceSeconds)
    }

    func join(_ running: Running) async {
        _ = await running.process.waitForExit()
        await onOwnThread("qemu-join") { running.process.joinThreads() }
    }

    /// Keeps the console's last bytes, then stops the vhost-user servers and the vsock host.
    func release(_ running: Running) {
        let tail = running.process.outputTail
        lastConsoleTail.withLock { $0 = tail }
        running.stopServers()
    }

    func removeFiles() {
        userClaim.withLock { $0 = nil }  // QEMU has ended (or never started): its uid is free again
        unlink(vhostSocketPath)
        unlink(qmpSocketPath)
        virtioFsSocketPaths.forEach { unlink($0) }
    }

    func pause(_ running: Running) async throws(HypervisorError) { running.process.signal(SIGSTOP) }

    func resume(_ running: Running) async throws(HypervisorError) { running.process.signal(SIGCONT) }

    func vsockHost(of running: Running) -> VsockHost { running.vsock }

    /// Starts the vhost-user servers (vsock, one per share, net and disk), then QEMU connected to
    /// them; on failure stops what it started.
    func launch() throws(HypervisorError) -> Running {
        let vsock = try VsockHost(hybridPath: config.hybridVsockPath, forwardedPorts: config.hybridForwardedPorts, logger: logger)
        let device = VsockDevice(guestCID: UInt64(config.guestCID), backend: vsock.muxer, traffic: config.traffic.vsock, logger: logger)
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
                shares.append(try VirtioFsShare(share, socketPath: path, traffic: config.traffic.sharedDirectories, logger: logger))
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
            // From here on QEMU's end is reported (`finished`), also before `launch` returns.
            process.onExit { [weak self] code in self?.finished(code) }
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
        running.process.onExit { code in
            continuation.yield(.failure(.exitedEarly(code: code, consoleTail: lastLines(process.outputTail))))
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
            try await onOwnThread("qmp-start") { () throws(HypervisorError) in
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

    /// QEMU ended: the lifecycle releases and records it (on the reaper thread).
    private func finished(_ code: Int32) {
        lifecycle.ended(exitCode: code, backend: self)
    }

    /// The start of a /proc file (whose size fstat reports as 0), at most `limit` bytes.
    static func readProcFile(_ path: String, limit: Int) -> String {
        (try? readWholeTextFile(path, limit: limit)) ?? ""
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
    var networkDevicesActive: [Bool] { lifecycle.live?.nets.map(\.server.isActive) ?? [] }
}
