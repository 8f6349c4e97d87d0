// One sandbox's VM and its agent connection: the per-sandbox directory
// (`<sandbox_dir>/<sandbox-id>/` with `shared/` and, with the debug console, `hvsock`), the
// hypervisor the configuration picks, the ttrpc connection to the agent on vsock port 1024
// (dialled with a deadline, then health-checked with retries), and the teardown that leaves
// nothing behind.

import AgentAPI
import Hypervisor
import Logging
import Monitoring
import Netlink
import Shim
import Synchronization
import SystemSupport
import TTRPC
#if canImport(Glibc)
import Glibc
#endif

/// A running pod VM with a healthy agent. `VMSandbox` (the `Sandbox` the shim drives) boots one
/// for its pod and turns task calls into calls to its agent.
public final class PodVM: Sendable {
    public static let agentPort: UInt32 = 1024
    public static let debugConsolePort: UInt32 = 1026
    /// The virtio-fs tag of the sandbox's shared directory and where the guest mounts it.
    public static let sharedTag = "kataShared"
    public static let guestSharedPath = "/run/kata-containers/shared"

    /// What a pod adopting a warm sandbox changes (`adopt(as:)`, `attachNetwork`).
    private struct Identity {
        var sandboxID: String
        var paths: SandboxPaths
        var network: PodNetworking?
        var portForwarder: PortForwarder?
    }

    private let identity: Mutex<Identity>
    public var sandboxID: String { identity.withLock { $0.sandboxID } }
    public var paths: SandboxPaths { identity.withLock { $0.paths } }
    public let hypervisor: any Hypervisor
    public let client: TTRPCClient
    /// The pod's network wired to the VM, if the sandbox has one.
    var network: PodNetworking? { identity.withLock { $0.network } }
    /// CRI port forwarding into the VM, for a sandbox with a network namespace.
    var portForwarder: PortForwarder? { identity.withLock { $0.portForwarder } }
    public var agent: Kata_Agent_V1_AgentServiceClient { Kata_Agent_V1_AgentServiceClient(client) }
    public var health: Kata_Agent_V1_HealthClient { Kata_Agent_V1_HealthClient(client) }
    let logger: Logger
    /// Drains the guest console into the shim's log (hypervisor `enable_debug`, GuestConsoleLog).
    let consoleDrain: Task<Void, Never>?
    /// What kata-ctl monitor scrapes, and the endpoint serving it on `paths.monitorSocket`.
    let metrics: SandboxMetrics
    private let metricsEndpoint = Mutex<MetricsEndpoint?>(nil)

    private init(
        sandboxID: String, paths: SandboxPaths, hypervisor: any Hypervisor, client: TTRPCClient, network: PodNetworking?,
        portForwarder: PortForwarder?, consoleDrain: Task<Void, Never>?, metrics: SandboxMetrics, logger: Logger
    ) {
        self.consoleDrain = consoleDrain
        self.metrics = metrics
        self.identity = Mutex(Identity(sandboxID: sandboxID, paths: paths, network: network, portForwarder: portForwarder))
        self.hypervisor = hypervisor
        self.client = client
        self.logger = logger
    }

    /// The hypervisor configuration for this sandbox.
    static func hypervisorConfig(_ config: RuntimeConfig, paths: SandboxPaths, network: PodNetworking? = nil) -> HypervisorConfig {
        var extras = config.kernelParams + ["agent.log=\(config.agentLogLevel)"]
        if config.debugConsole { extras.append("agent.debug_console") }
        return HypervisorConfig(
            kernelPath: config.kernel, initrdPath: config.image == nil ? config.initrd : nil, imagePath: config.image,
            reclaimFreedMemory: config.reclaimFreedMemory, cmdlineExtras: extras, vcpus: config.vcpus,
            memoryMiB: config.memoryMiB, backend: config.backend,
            debug: config.hypervisorDebug || config.logLevel == "debug" || config.logLevel == "trace",
            runtimeDirectory: paths.vmDirectory, hybridVsockPath: config.debugConsole ? paths.hybridVsock : nil,
            qemuBinary: config.qemuPath,
            sharedDirectories: [SharedDirectory(tag: sharedTag, hostPath: paths.shared)],
            networkInterfaces: network?.interfaces ?? [],
            qemuSandbox: config.qemuSandbox, qemuUser: config.qemuUser,
            // qemu_user = "" keeps QEMU root; otherwise each sandbox gets a uid of its own.
            qemuUserPool: config.qemuUser == nil || config.qemuUIDCount == 0 ? nil
                : QEMUUserPool(base: UInt32(config.qemuUIDBase), count: UInt32(config.qemuUIDCount),
                               directory: RuntimeConfig.qemuUIDLockDirectory),
            qemuEntropySource: config.entropySource.isEmpty ? nil : config.entropySource)
    }

    /// Boots the VM and waits for a healthy agent. On failure everything started is torn down.
    /// With `network`, the VM gets its NICs and the taps their redirects before the agent is dialled.
    /// With `networkNamespace` (the pod's), connections to 127.0.0.1 there reach the guest's
    /// loopback (PortForwarder), as containerd's port forwarding expects.
    /// With `warmNIC` (a warm sandbox, no pod known yet), the VM gets one NIC on a tap in a
    /// holding namespace of its own instead (WarmNetwork), for the pod that adopts it.
    static func boot(
        sandboxID: String, config: RuntimeConfig, network: PodNetworking? = nil, networkNamespace: String? = nil,
        warmNIC: Bool = false, startPath: StartPath? = nil, logger: Logger
    ) async throws(RuntimeError)
        -> PodVM
    {
        let paths = try SandboxPaths(sandboxDirectory: config.sandboxDirectory, sandboxID: sandboxID)
        try paths.create()
        let hypervisor: any Hypervisor
        var vmConfig = hypervisorConfig(config, paths: paths, network: network)
        if warmNIC {
            do {
                try NetworkNamespace.create(at: paths.holdingNamespace)
            } catch {
                paths.remove(logger: logger)
                throw .network(operation: "create the warm NIC's namespace \(paths.holdingNamespace)", reason: "\(error)")
            }
            vmConfig.networkInterfaces = [WarmNetwork.interface(holdingNamespace: paths.holdingNamespace)]
        }
        let consoleLog = config.hypervisorDebug ? GuestConsoleLog(logger: logger, sandboxID: sandboxID) : nil
        if let consoleLog { vmConfig.consoleOutput = { consoleLog.append($0) } }
        let consoleDrain = consoleLog.map { log in
            Task {
                while !Task.isCancelled {
                    log.drain()
                    try? await Task.sleep(for: .milliseconds(200))
                }
                log.drain(flush: true)
            }
        }
        let metrics = SandboxMetrics(traffic: vmConfig.traffic)
        let bootStarted = ContinuousClock.now
        // Where our VMM runs, a VM may start from a saved template (docs/snapshots.md,
        // "Templates"); one that does not restore is discarded, and the VM boots. At most one
        // NIC: a restored guest's NICs have the template's MACs, and the agent can tell which
        // is which only when there is one.
        let template = config.templates && vmConfig.networkInterfaces.count <= 1
            && (try? BackendProbe.resolve(config.backend, qemuBinary: config.qemuPath)) == .kvm
            ? VMTemplate(for: vmConfig, directory: config.templateDirectory) : nil
        var restored = false
        do {
            startPath?.mark("VM starting")
            if let template, template.exists {
                var restoring = vmConfig
                restoring.restoreFrom = template.path
                let candidate = try HypervisorFactory.make(restoring, logger: logger)
                do {
                    try await candidate.start()
                    restored = true
                    logger.info("sandbox \(sandboxID): VM restored from template \(template.key) in \(Int((ContinuousClock.now - bootStarted).milliseconds)) ms")
                } catch {
                    logger.warning("sandbox \(sandboxID): template \(template.path) did not restore (\(error)); discarded, booting")
                    template.discard()
                }
                hypervisor = restored ? candidate : try HypervisorFactory.make(vmConfig, logger: logger)
            } else {
                hypervisor = try HypervisorFactory.make(vmConfig, logger: logger)
            }
            if !restored { try await hypervisor.start() }
            startPath?.mark(restored ? "VM restored from a template" : "VM running")
        } catch {
            consoleDrain?.cancel()
            paths.remove(logger: logger)
            throw .boot(reason: error.description, consoleTail: "")
        }
        if let network {
            do throws(RuntimeError) {
                try await network.connect()
            } catch {
                await hypervisor.stop(graceSeconds: 1)
                consoleDrain?.cancel()
                paths.remove(logger: logger)
                throw error
            }
            logger.info("sandbox \(sandboxID): pod network \(network.pairs.map { "\($0.veth) <-> \($0.tap)" }.joined(separator: ", ")) in \(network.namespacePath)")
        }
        logger.info("sandbox \(sandboxID): VM started, hypervisor backend: \(hypervisor.backendSummary) (configured: \(config.backend)), waiting for the agent")
        let record = SandboxRecord(
            shimPID: getpid(), backend: hypervisor.backendSummary, vcpus: config.vcpus, memoryMiB: config.memoryMiB,
            kernel: config.kernel, started: time(nil), monitorSocket: paths.monitorSocket)
        do throws(RuntimeError) {
            try record.write(to: paths)
        } catch {
            logger.warning("sandbox \(sandboxID): \(error) (kata-ctl list will not show it)")
        }
        do throws(RuntimeError) {
            let client = try await connectAgent(
                hypervisor, timeoutSeconds: Double(config.agentDialTimeoutSeconds), observer: metrics.agentCallObserver, logger: logger)
            if restored {
                do {
                    try await VMTemplate.refresh(Kata_Agent_V1_AgentServiceClient(client))
                } catch {
                    await client.close()
                    throw .boot(reason: "a VM restored from a template took no fresh entropy or time: \(error)", consoleTail: "")
                }
            }
            startPath?.mark("agent ready")
            let booted = ContinuousClock.now - bootStarted
            metrics.recordBoot(seconds: Double(booted.components.seconds) + Double(booted.components.attoseconds) / 1e18)
            startPath?.recordGuest(console: hypervisor.consoleTail)
            let portForwarder = networkNamespace.flatMap { startPortForwarding($0, hypervisor: hypervisor, logger: logger) }
            let vm = PodVM(
                sandboxID: sandboxID, paths: paths, hypervisor: hypervisor, client: client, network: network,
                portForwarder: portForwarder, consoleDrain: consoleDrain, metrics: metrics, logger: logger)
            await vm.serveMetrics()
            if let template, !restored, !template.exists {
                // Saved once per configuration, by this shim after its pod is up (BackgroundWork).
                var makerConfig = vmConfig
                makerConfig.consoleOutput = nil
                let timeout = Double(config.agentDialTimeoutSeconds)
                BackgroundWork.keep(Task.detached { await template.make(from: makerConfig, agentTimeoutSeconds: timeout, logger: logger) })
            }
            return vm
        } catch {
            await hypervisor.stop(graceSeconds: 1)
            consoleDrain?.cancel()
            await network?.disconnect(logger: logger)
            paths.remove(logger: logger)
            throw error
        }
    }

    /// Port forwarding for the pod's namespace; without it (a host whose kernel refuses the BPF
    /// program) the pod runs on and port forwards fail as they would with Kata.
    static func startPortForwarding(_ path: String, hypervisor: any Hypervisor, logger: Logger) -> PortForwarder? {
        do {
            let forwarder = try PortForwarder(namespacePath: path, logger: logger) {
                try await hypervisor.connectVsock(port: PortForwardWire.vsockPort, timeoutSeconds: 5)
            }
            logger.debug("port forwarding: 127.0.0.1 in \(path) reaches the guest")
            return forwarder
        } catch {
            logger.warning("port forwarding into the VM is off: \(error)")
            return nil
        }
    }

    /// Dials vsock port 1024 until `timeoutSeconds`, then health-checks (retrying on a fresh
    /// connection) until the agent says SERVING or the same deadline passes.
    static func connectAgent(
        _ hypervisor: any Hypervisor, timeoutSeconds: Double, observer: TTRPCCallObserver? = nil, logger: Logger
    ) async throws(RuntimeError) -> TTRPCClient
    {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeoutSeconds * 1000))
        var lastError = "no attempt"
        var attempt = 0
        while ContinuousClock.now < deadline {
            attempt += 1
            if case .stopped = hypervisor.state {
                throw .agentUnreachable(reason: "the VM stopped (\(hypervisor.state))", consoleTail: hypervisor.consoleTail)
            }
            let left = Double((deadline - ContinuousClock.now).components.seconds) + 0.5
            do {
                let stream = try await hypervisor.connectVsock(port: agentPort, timeoutSeconds: max(left, 0.5))
                let fd = dup(stream.rawValue)
                guard fd >= 0 else { throw RuntimeError.system(operation: "dup vsock stream", errno: errno) }
                let client = try await TTRPCClient.connect(connectedDescriptor: fd, observer: observer)
                do {
                    let reply = try await Kata_Agent_V1_HealthClient(client).check(
                        .init(), options: TTRPCCallOptions(timeout: .seconds(5)))
                    if reply.status == .serving {
                        logger.info("agent healthy after \(attempt) attempt(s)")
                        return client
                    }
                    lastError = "health check answered \(reply.status)"
                } catch {
                    lastError = "health check: \(error)"
                }
                await client.close()
            } catch {
                lastError = "\(error)"
            }
            logger.debug("agent not ready (attempt \(attempt)): \(lastError)")
            try? await Task.sleep(for: .milliseconds(200))
        }
        throw .agentUnreachable(
            reason: "no healthy answer on vsock port \(agentPort) within \(Int(timeoutSeconds)) s (\(attempt) attempts; last: \(lastError))",
            consoleTail: hypervisor.consoleTail)
    }

    /// Serves the metrics on `paths.monitorSocket`; without it (logged) the sandbox runs on unmonitored.
    func serveMetrics() async {
        let path = paths.monitorSocket
        do {
            let endpoint = try await MetricsEndpoint.serve(unixSocket: path) { [weak self] in
                await self?.renderMetrics() ?? ""
            }
            metricsEndpoint.withLock { $0 = endpoint }
            logger.debug("sandbox \(sandboxID): metrics at \(path)")
        } catch {
            logger.warning("sandbox \(sandboxID): no metrics endpoint at \(path): \(error)")
        }
    }

    /// One scrape: the host side now, and the guest's numbers if the agent answers within 3 s.
    func renderMetrics() async -> String {
        await metrics.render(hypervisorPID: hypervisor.processID) { [self] in
            guard isAlive else { return nil }
            return try? await agent.getMetrics(.init(), options: TTRPCCallOptions(timeout: .seconds(3)))
        }
    }

    /// A warm sandbox becomes pod `sandboxID`'s: its directory is renamed (the VM's sockets and the
    /// shared directory's mount move with it; every server holds its descriptors, not the paths),
    /// and the record kata-ctl reads says where the metrics endpoint now is.
    func adopt(as sandboxID: String) throws(RuntimeError) {
        let old = paths
        let renamed = try old.renamed(to: sandboxID)
        guard rename(old.root, renamed.root) == 0 else {
            throw .system(operation: "rename \(old.root) to \(renamed.root)", errno: errno)
        }
        identity.withLock {
            $0.sandboxID = sandboxID
            $0.paths = renamed
        }
        if var record = SandboxRecord.read(sandboxRoot: renamed.root) {
            record.monitorSocket = renamed.monitorSocket
            do throws(RuntimeError) {
                try record.write(to: renamed)
            } catch {
                logger.warning("sandbox \(sandboxID): \(error) (kata-ctl list will not show it)")
            }
        }
    }

    /// Wires the pod's network namespace at `path` to a warm VM's NIC (WarmNetwork) and starts
    /// port forwarding into it; returns the network for the guest's side (nil: the namespace has
    /// only loopback, and the NIC stays unused). Throws, leaving the VM as it was, when the NIC
    /// cannot serve the pod.
    func attachNetwork(namespace path: String) async throws(RuntimeError) -> PodNetworking? {
        // Without interfaces the tap stays in the holding namespace (removed with the directory):
        // a namespace that ends under a tap takes the tap down with it.
        let network = try await PodNetworking.scan(namespacePath: path)
        if let network {
            try await WarmNetwork.attach(network, holdingNamespace: paths.holdingNamespace)
            logger.info("sandbox \(sandboxID): pod network \(network.pairs.map { "\($0.veth) <-> \($0.tap)" }.joined(separator: ", ")) in \(path) (the warm NIC)")
        }
        let forwarder = Self.startPortForwarding(path, hypervisor: hypervisor, logger: logger)
        identity.withLock {
            $0.network = network
            $0.portForwarder = forwarder
        }
        return network
    }

    /// True while the VM runs (or is paused).
    public var isAlive: Bool {
        if case .stopped = hypervisor.state { return false }
        return true
    }

    /// Asks the agent to destroy the sandbox, stops the VM and removes the per-sandbox directory.
    /// Idempotent; never throws (what fails is logged).
    public func shutdown(destroySandbox: Bool) async {
        let clock = ContinuousClock()
        let started = clock.now
        // Once the guest has destroyed its sandbox (every container gone, the shares unmounted and
        // so flushed), nothing in the VM is worth an orderly exit: the VMM is stopped at once.
        // QEMU's own exit on SIGTERM stops each vhost-user device first, a round trip each to our
        // servers (docs/performance.md, "Warm sandboxes").
        var grace = 3.0
        if destroySandbox && isAlive {
            do {
                _ = try await agent.destroySandbox(.init(), options: TTRPCCallOptions(timeout: .seconds(10)))
                grace = 0
            } catch {
                logger.warning("sandbox \(sandboxID): DestroySandbox: \(error)")
            }
        }
        await portForwarder?.stop()
        if let endpoint = metricsEndpoint.withLock({ endpoint in defer { endpoint = nil }; return endpoint }) {
            await endpoint.close()
            unlink(paths.monitorSocket)
        }
        await client.close()
        let stopping = clock.now
        await hypervisor.stop(graceSeconds: grace)
        let stopped = clock.now
        consoleDrain?.cancel()
        await consoleDrain?.value
        await network?.disconnect(logger: logger)
        paths.remove(logger: logger)
        logger.info("sandbox \(sandboxID): shut down in \(Self.ms(started, clock.now)) ms (guest and endpoints \(Self.ms(started, stopping)), VM stop \(Self.ms(stopping, stopped)), host cleanup \(Self.ms(stopped, clock.now)))")
    }

    private static func ms(_ from: ContinuousClock.Instant, _ to: ContinuousClock.Instant) -> Int64 {
        let d = from.duration(to: to).components
        return d.seconds * 1000 + d.attoseconds / 1_000_000_000_000_000
    }
}
