// The VM-backed sandbox behind the task service (docs/shim.md). The first container boots the VM
// (configuration: RuntimeConfig), connects to the agent and creates the sandbox in it; each task
// call becomes agent calls (VMSandbox+Processes.swift); Shutdown destroys the sandbox, stops the
// VM and removes `<sandbox_dir>/<sandbox-id>/`. A VM that dies on its own ends every process with
// status 255, so containerd is never left waiting.

import AgentAPI
import Hypervisor
import Logging
import OCI
import Shim
import SystemSupport
import TTRPC
#if canImport(Glibc)
import Glibc
#endif

/// The production sandbox: one VM per shim (its `PodVM`), booted by the pod's first task.
public actor VMSandbox: Sandbox {
    enum VMState {
        case none
        /// Booted ahead of demand, agent ready, no sandbox created in the guest yet (WarmDaemon).
        case warm(PodVM)
        case booting(Task<PodVM, any Error>)
        case ready(PodVM)
        /// The VM ended on its own; the description and console tail explain it.
        case dead(state: String, consoleTail: String)
        case shutDown
    }

    struct Key: Hashable {
        var containerID: String
        var execID: String
    }

    struct Container {
        var spec: OCISpec
    }

    /// The pod's id (a warm sandbox's own until a pod adopts it).
    var sandboxID: String
    let environment: [String: String]
    var logger: Logger
    var vmState: VMState = .none
    var containers: [String: Container] = [:]
    var processes: [Key: GuestProcess] = [:]
    /// The per-sandbox directory, once a VM was booted.
    var paths: SandboxPaths?
    /// A warm VM's NIC wired to the adopting pod's network, for the guest's side at CreateSandbox.
    var adoptedNetwork: PodNetworking?
    /// The first container's start, step by step (logged once it runs).
    let startPath = StartPath()

    /// `sandboxID` names the per-sandbox directory; `environment` is where KATA_CONF_FILE is read.
    public init(sandboxID: String, environment: [String: String], logger: Logger) {
        self.sandboxID = sandboxID
        self.environment = environment
        self.logger = logger
    }

    /// The running VM, booting it first if needed (once; concurrent callers share the boot).
    /// `networkNamespace` is the pod's (the first container's spec: CRI's sandbox container).
    /// `annotations` are the pod's (io.katacontainers.config.*, KataAnnotations).
    func readyVM(
        configPath: String?, hostname: String, networkNamespace: String?, annotations: [String: String]? = nil,
        resources: OCIResources? = nil
    ) async throws(RuntimeError) -> PodVM
    {
        switch vmState {
        case .ready(let vm): return vm
        case .dead(let state, let tail): throw .vmGone(state: state, consoleTail: tail)
        case .shutDown: throw .shutDown
        case .booting(let task): return try await Self.value(of: task)
        case .warm(let vm):
            // `start` gives a pod a warm sandbox only when it needs no other size or settings
            // (VMSandbox.warmPoolPlan); its network was wired at adoption.
            let (sandboxID, startPath, network) = (self.sandboxID, self.startPath, adoptedNetwork)
            startPath.mark("first container's Create received")
            vmState = .booting(Task { () async throws -> PodVM in
                try await Self.createSandbox(in: vm, sandboxID: sandboxID, hostname: hostname, network: network, startPath: startPath)
                return vm
            })
            return try await finishBoot()
        case .none: break
        }
        let (configured, source, warnings) = try Self.loadConfig(
            configPath: configPath, environment: environment, annotations: annotations)
        // Sized once, for the first container (CRI: the pod's sandbox container, usually unlimited).
        let config = configured.sized(for: resources)
        // The configuration's level, unless the shim already logs more (containerd's -debug).
        if let level = Logger.Level(rawValue: config.logLevel), level < logger.logLevel { logger.logLevel = level }
        logger.info("sandbox \(sandboxID): configuration from \(source); backend \(config.backend), kernel \(config.kernel), \(config.vcpus) vCPU(s), \(config.memoryMiB) MiB")
        for warning in warnings { logger.warning("sandbox \(sandboxID): \(warning)") }
        let sandboxID = self.sandboxID
        let logger = self.logger
        let startPath = self.startPath
        startPath.mark("configuration read")
        let task = Task { () async throws -> PodVM in
            var network: PodNetworking?
            if let path = networkNamespace { network = try await PodNetworking.scan(namespacePath: path) }
            let vm = try await PodVM.boot(
                sandboxID: sandboxID, config: config, network: network, networkNamespace: networkNamespace,
                startPath: startPath, logger: logger)
            try await Self.createSandbox(in: vm, sandboxID: sandboxID, hostname: hostname, network: network, startPath: startPath)
            return vm
        }
        vmState = .booting(task)
        return try await finishBoot()
    }

    /// Waits for the boot in `vmState` and makes its VM the sandbox's.
    private func finishBoot() async throws(RuntimeError) -> PodVM {
        guard case .booting(let task) = vmState else { throw .shutDown }
        do throws(RuntimeError) {
            let vm = try await Self.value(of: task)
            guard case .booting = vmState else {
                // Shut down while booting.
                await vm.shutdown(destroySandbox: true)
                throw RuntimeError.shutDown
            }
            vmState = .ready(vm)
            paths = vm.paths
            watch(vm)
            return vm
        } catch {
            if case .booting = vmState { vmState = .none }
            throw error
        }
    }

    /// Creates the sandbox in the guest (the shared directory, the pod's /dev/shm, its network);
    /// on failure the VM is shut down.
    static func createSandbox(
        in vm: PodVM, sandboxID: String, hostname: String, network: PodNetworking?, startPath: StartPath
    ) async throws {
        do {
            _ = try await vm.agent.createSandbox(.with {
                $0.sandboxID = sandboxID
                $0.hostname = hostname
                $0.storages = [.with {
                    $0.driver = "virtio-fs"
                    $0.source = PodVM.sharedTag
                    $0.fstype = "virtiofs"
                    $0.mountPoint = PodVM.guestSharedPath
                }, .with {
                    // The pod's /dev/shm (CRI containers bind it, GuestSpec), in guest memory.
                    $0.driver = "local"
                    $0.source = "shm"
                    $0.fstype = "tmpfs"
                    $0.options = ["nosuid", "nodev", "noexec", "mode=1777", "size=\(Self.podShmBytes)"]
                    $0.mountPoint = GuestSpec.guestPodShm
                }]
            }, options: TTRPCCallOptions(timeout: .seconds(30)))
            try await network?.configureGuest(vm.agent)
            startPath.mark("sandbox created")
        } catch {
            let tail = vm.hypervisor.consoleTail
            await vm.shutdown(destroySandbox: false)
            if let error = error as? RuntimeError { throw error }
            if let error = error as? TTRPCError {
                throw RuntimeError.agentCall(operation: "CreateSandbox", error)
            }
            throw RuntimeError.agentUnreachable(reason: "CreateSandbox: \(error)", consoleTail: tail)
        }
    }

    static func value(of task: Task<PodVM, any Error>) async throws(RuntimeError) -> PodVM {
        do {
            return try await task.value
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw .boot(reason: "\(error)", consoleTail: "")
        }
    }

    /// The configuration with the pod's annotations applied, and what in either had no effect.
    static func loadConfig(configPath: String?, environment: [String: String], annotations: [String: String]?) throws(RuntimeError)
        -> (RuntimeConfig, RuntimeConfig.Source, [String])
    {
        do {
            var fileWarnings: [ConfigWarning] = []
            let (config, source) = try RuntimeConfig.load(configPath: configPath, environment: environment, warnings: &fileWarnings)
            var warnings = fileWarnings.map(\.description)
            let annotated = try KataAnnotations.apply(annotations ?? [:], to: config, warnings: &warnings)
            return (annotated, source, warnings)
        } catch {
            throw .config(error)
        }
    }

    // MARK: warm sandboxes (docs/warm-sandboxes.md)

    /// Boots the VM to agent ready with the configuration as it is (no pod's annotations, limits
    /// or network), under this sandbox's own (warm) id. `onEnd` runs if the VM ends while warm.
    public func warmUp(configPath: String?, onEnd: @escaping @Sendable () -> Void) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard case .none = vmState else { throw .alreadyExists("sandbox \(sandboxID) has a VM") }
            let (config, source, warnings) = try Self.loadConfig(configPath: configPath, environment: environment, annotations: nil)
            if let level = Logger.Level(rawValue: config.logLevel), level < logger.logLevel { logger.logLevel = level }
            logger.info("warm sandbox \(sandboxID): configuration from \(source); backend \(config.backend), \(config.vcpus) vCPU(s), \(config.memoryMiB) MiB")
            for warning in warnings { logger.warning("warm sandbox \(sandboxID): \(warning)") }
            let vm = try await PodVM.boot(sandboxID: sandboxID, config: config, warmNIC: true, logger: logger)
            guard case .none = vmState else {
                await vm.shutdown(destroySandbox: false)
                throw .shutDown
            }
            vmState = .warm(vm)
            Task { [weak self] in
                _ = await vm.hypervisor.waitForExit()
                if await self?.isWarm(vm) == true { onEnd() }
            }
            // The member is offered only after this (its claim socket comes when warmUp returns);
            // a stop meanwhile ends the VM and the warm-up's calls fail harmlessly.
            await GuestWarmUp.run(vm.agent, for: "warm sandbox \(sandboxID)", logger: logger)
            Heap.trimSoon()  // the member idles from here: what its boot freed goes back
            guard isWarm(vm) else { throw .shutDown }
        }
    }

    private func isWarm(_ vm: PodVM) -> Bool {
        if case .warm(let current) = vmState { return current === vm }
        return false
    }

    /// The warm VM becomes pod `sandboxID`'s: the pod's network (its spec in `bundle` names the
    /// namespace) is wired to the warm NIC, then the directory takes the pod's id. Throws, with
    /// nothing of the pod's touched, when the warm VM cannot serve this pod.
    public func adopt(sandboxID: String, bundle: String) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard case .warm(let vm) = vmState else { throw .vmGone(state: "not warm", consoleTail: "") }
            guard vm.isAlive else { throw .vmGone(state: vm.hypervisor.state.description, consoleTail: vm.hypervisor.consoleTail) }
            let spec: OCISpec
            do {
                spec = try BundleDirectory(path: bundle).readSpec()
            } catch {
                throw .network(operation: "read the pod's spec in \(bundle)", reason: "\(error)")
            }
            if let namespace = spec.networkNamespacePath {
                adoptedNetwork = try await vm.attachNetwork(namespace: namespace)
            }
            try vm.adopt(as: sandboxID)
            logger.info("warm sandbox \(self.sandboxID) is now sandbox \(sandboxID)")
            self.sandboxID = sandboxID
            logger[metadataKey: "id"] = "\(sandboxID)"
            startPath.restart(at: "warm sandbox claimed")
        }
    }

    /// Whether containerd's `start` finds a warm pool for this pod, and where (nil: the
    /// configuration asks for none). A pod takes a warm sandbox only when the warm one is what it
    /// would have booted: no Kata annotations, no limits that size the VM. (Its network is checked
    /// by the warm sandbox at adoption: one interface, an MTU the warm NIC offers.) The pool is
    /// per containerd and per configuration file (path and contents), so a changed file never
    /// hands out a VM booted with the old one.
    public static let warmPoolPlan: WarmPoolLookup = { spec, configPath, environment, containerdAddress in
        var fileWarnings: [ConfigWarning] = []
        guard let (config, source) = try? RuntimeConfig.load(configPath: configPath, environment: environment, warnings: &fileWarnings),
              config.warmSandboxes > 0
        else { return nil }
        let contents = source.path.flatMap { try? readWholeFile($0) } ?? []
        let key = SHA256.hexDigest("\(containerdAddress)\n\(source.path ?? "")\n" + String(decoding: contents, as: UTF8.self)).prefix(16)
        let pool = WarmPool(directory: config.warmPoolsDirectory + "/" + key, size: config.warmSandboxes)
        var ineligible: String?
        if let annotation = spec.annotations?.keys.sorted().first(where: { $0.hasPrefix("io.katacontainers.config.") }) {
            ineligible = "annotation \(annotation)"
        } else if config.sized(for: spec.linux?.resources) != config {
            ineligible = "its resource limits size the VM"
        }
        return WarmPoolPlan(pool: pool, ineligible: ineligible, configPath: source.path)
    }

    /// Waits for the VM to end; if nobody asked for it, every process exits with status 255.
    private func watch(_ vm: PodVM) {
        Task { [weak self] in
            let final = await vm.hypervisor.waitForExit()
            await self?.vmExited(vm, final: final)
        }
    }

    private func vmExited(_ vm: PodVM, final: HypervisorState) async {
        guard case .ready(let current) = vmState, current === vm else { return }
        let tail = vm.hypervisor.consoleTail
        logger.error("sandbox \(sandboxID): the VM ended unexpectedly (\(final))\(RuntimeError.tail(tail))")
        vmState = .dead(state: final.description, consoleTail: tail)
        // Pending agent calls fail now; their processes report status 255.
        await vm.client.close()
        for process in processes.values where process.exitStatus == nil && !process.started {
            finish(process, status: vmGoneExitStatus)
        }
        await vm.shutdown(destroySandbox: false)
    }

    /// The VM for a call on an existing sandbox.
    func currentVM() throws(RuntimeError) -> PodVM {
        switch vmState {
        case .ready(let vm): return vm
        case .dead(let state, let tail): throw .vmGone(state: state, consoleTail: tail)
        case .shutDown: throw .shutDown
        case .none, .warm, .booting: throw .vmGone(state: "not started", consoleTail: "")
        }
    }

    /// Runs an agent call, naming it in the error; a dead VM is reported as such.
    /// `vm` defaults to the current one (Create passes the VM it just got, which may still be
    /// finishing its boot for another caller).
    func call<T: Sendable>(
        _ operation: String, vm given: PodVM? = nil,
        _ body: @escaping @Sendable (Kata_Agent_V1_AgentServiceClient) async throws -> T
    ) async throws(RuntimeError) -> T {
        let vm: PodVM
        if let given { vm = given } else { vm = try currentVM() }
        do {
            return try await Self.withDeadline(Self.callTimeout, operation: operation, vm: vm) { try await body(vm.agent) }
        } catch let error as RuntimeError {
            throw error
        } catch {
            if let error = error as? TTRPCError, error.code == .unavailable {
                // A dropped connection usually means the VM just died: give the VMM's exit a
                // moment to be seen, so the error says so.
                for _ in 0..<60 where vm.isAlive { try? await Task.sleep(for: .milliseconds(50)) }
            }
            if case .dead(let state, let tail) = vmState { throw .vmGone(state: state, consoleTail: tail) }
            if !vm.isAlive { throw .vmGone(state: vm.hypervisor.state.description, consoleTail: vm.hypervisor.consoleTail) }
            if let error = error as? TTRPCError { throw .agentCall(operation: operation, error) }
            throw .agentCall(operation: operation, TTRPCError(.unknown, "\(error)"))
        }
    }

    /// The size of a pod's /dev/shm: containerd's default for a CRI sandbox (64 MiB).
    static let podShmBytes = 64 << 20

    /// How long a bounded agent call (everything but the stdio long-polls and WaitProcess) may take.
    static let callTimeout: Duration = .seconds(60)

    /// Runs `body`, or fails with the agent's silence (and the console tail) after `timeout`.
    static func withDeadline<T: Sendable>(
        _ timeout: Duration, operation: String, vm: PodVM, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw RuntimeError.agentUnreachable(
                    reason: "\(operation) got no answer within \(timeout.components.seconds) s", consoleTail: vm.hypervisor.consoleTail)
            }
            return value
        }
    }

    /// Maps any failure to the shim's TaskError.
    func mapped<T: Sendable>(_ body: () async throws(RuntimeError) -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw error.taskError
        }
    }

    // MARK: containers

    public func createContainer(_ config: ContainerConfig) async throws -> UInt32 {
        try await mapped { () async throws(RuntimeError) -> UInt32 in
            guard containers[config.id] == nil else { throw .alreadyExists("container \(config.id)") }
            let vm = try await readyVM(
                configPath: config.configPath, hostname: config.spec.hostname ?? "",
                networkNamespace: config.spec.networkNamespacePath, annotations: config.spec.annotations,
                resources: config.spec.linux?.resources)
            guard containers[config.id] == nil else { throw .alreadyExists("container \(config.id)") }
            // Shared writable, as runc finds it: the guest creates the mount points first and
            // makes the root read-only last when the spec asks (root.readonly).
            try vm.paths.shareRootfs(containerID: config.id, from: config.rootfs, readOnly: false)
            startPath.mark("rootfs shared")
            do throws(RuntimeError) {
                let spec = try GuestSpec.encode(GuestSpec.rewrite(
                    config.spec, containerID: config.id, paths: vm.paths, pod: pod(of: config.spec), logger: logger))
                _ = try await call("CreateContainer", vm: vm) { agent in
                    try await agent.createContainer(.with {
                        $0.containerID = config.id
                        $0.ociSpecJson = .init(spec)
                    })
                }
            } catch {
                vm.paths.unshareRootfs(containerID: config.id)
                throw error
            }
            containers[config.id] = Container(spec: config.spec)
            processes[Key(containerID: config.id, execID: "")] = GuestProcess(
                containerID: config.id, execID: "", stdio: config.stdio, execJSON: nil)
            startPath.mark("container created")
            logger.info("container \(config.id) created in sandbox \(sandboxID)")
            return UInt32(getpid())
        }
    }

    /// The CRI pod a container belongs to: its sandbox container's guest pid, once started.
    func pod(of spec: OCISpec) -> GuestSpec.Pod {
        switch spec.criRole {
        case .single: return GuestSpec.Pod(sandboxGuestPID: nil, isCRI: false)
        case .sandbox: return GuestSpec.Pod(sandboxGuestPID: nil, isCRI: true)
        case .container(let sandboxID):
            let initProcess = processes[Key(containerID: sandboxID, execID: "")]
            let pid = initProcess.flatMap { $0.started && $0.exitStatus == nil && $0.guestPID > 0 ? Int32($0.guestPID) : nil }
            return GuestSpec.Pod(sandboxGuestPID: pid, isCRI: true)
        }
    }

    public func removeContainer(containerID: String) async throws {
        try await mapped { () async throws(RuntimeError) in
            guard containers[containerID] != nil else { throw .noSuchContainer(containerID) }
            if case .ready = vmState {
                do throws(RuntimeError) {
                    _ = try await call("RemoveContainer") { agent in
                        try await agent.removeContainer(.with { $0.containerID = containerID })
                    }
                } catch {
                    // A VM that died meanwhile holds nothing to remove: the host side still goes.
                    guard case .vmGone = error else { throw error }
                }
            }
            for (key, process) in processes where key.containerID == containerID {
                process.stdinPump?.cancel()
                if process.exitStatus == nil { finish(process, status: 128 + UInt32(SIGKILL)) }
                await process.stdio.closeAll()
                processes[key] = nil
            }
            containers[containerID] = nil
            paths?.unshareRootfs(containerID: containerID)
        }
    }

    public func shutdown() async {
        let previous = vmState
        vmState = .shutDown
        for process in processes.values where process.exitStatus == nil {
            process.stdinPump?.cancel()
            finish(process, status: 128 + UInt32(SIGKILL))
        }
        switch previous {
        case .ready(let vm):
            await vm.shutdown(destroySandbox: true)
            logger.info("sandbox \(sandboxID): VM stopped, \(vm.paths.root) removed")
        case .booting(let task):
            if let vm = try? await task.value { await vm.shutdown(destroySandbox: true) }
        case .warm(let vm):
            await vm.shutdown(destroySandbox: false)
            logger.info("sandbox \(sandboxID): warm VM stopped, \(vm.paths.root) removed")
        case .none, .dead, .shutDown: break
        }
    }

    /// GetOOMEvent, a long poll without a deadline: the agent answers when a container's cgroup
    /// counts a new OOM kill. A dead or shut-down VM ends it with `.unavailable` or
    /// `.failedPrecondition` (RuntimeError.taskError).
    public func nextOOMEvent() async throws -> String {
        try await mapped { () async throws(RuntimeError) -> String in
            let vm = try currentVM()
            do {
                return try await vm.agent.getOOMEvent(.init()).containerID
            } catch let error as TTRPCError {
                if case .ready = vmState, vm.isAlive { throw .agentCall(operation: "GetOOMEvent", error) }
                throw .vmGone(state: vm.hypervisor.state.description, consoleTail: "")
            } catch {
                throw .agentCall(operation: "GetOOMEvent", TTRPCError(.unknown, "\(error)"))
            }
        }
    }

    /// Removes the sandbox directory a dead shim left (`delete` after a crash or SIGKILL): the
    /// share's bind mounts and the directory. The VM died with the shim (our VMM runs in it; QEMU
    /// has PR_SET_PDEATHSIG). Reads the configuration the way the shim did (KATA_CONF_FILE, else
    /// the default paths) to find `sandbox_dir`.
    public static let cleanUpAfterDeadShim: SandboxCleanup = { sandboxID, environment in
        guard let (config, _) = try? RuntimeConfig.load(configPath: nil, environment: environment),
              let paths = try? SandboxPaths(sandboxDirectory: config.sandboxDirectory, sandboxID: sandboxID)
        else { return nil }
        var st = stat()
        guard lstat(paths.root, &st) == 0 else { return nil }
        let mounts = SandboxPaths.mountPoints(below: paths.root).count
        paths.remove(logger: Logger(label: "kata-swift.delete"))
        return "the shim of sandbox \(sandboxID) is gone: removed \(paths.root) and \(mounts) mount(s) below it"
    }

    /// Records an exit and wakes every waiter.
    func finish(_ process: GuestProcess, status: UInt32) {
        guard process.exitStatus == nil else { return }
        process.exitStatus = status
        for waiter in process.waiters { waiter.resume(returning: status) }
        process.waiters = []
    }
}
