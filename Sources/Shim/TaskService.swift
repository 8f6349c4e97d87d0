// The task service's logic (containerd.task.v2.Task) on domain types: containers, execs, their
// state machines, events and the sandbox. TaskRPCService maps the wire messages onto it and maps its
// errors to ttrpc codes. Lifecycle requests (Create, Start, Kill, Delete, ...) and exits run on this
// actor; Wait parks on the process record, so a blocked Wait never holds anything up.

import Logging
import OCI
import SystemSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The task service.
public actor TaskService {
    let sandbox: any Sandbox
    let events: any EventPublisher
    let namespace: String
    let logger: Logger
    /// Held across Start and around exit handling, so TaskStart is queued before TaskExit.
    let lifecycle = AsyncLock()
    /// Containers by id.
    var containers: [String: TaskContainer] = [:]
    /// Called once Shutdown finds no containers left (the daemon exits).
    let onShutdown: @Sendable () -> Void
    var shuttingDown = false
    /// Publishes TaskOOM for the sandbox's OOM kills, from the first Create to Shutdown.
    var oomWatcher: Task<Void, Never>?

    public init(sandbox: any Sandbox, events: any EventPublisher, namespace: String,
                logger: Logger = Logger(label: "kata-swift.task"), onShutdown: @escaping @Sendable () -> Void = {}) {
        self.sandbox = sandbox
        self.events = events
        self.namespace = namespace
        self.logger = logger
        self.onShutdown = onShutdown
    }

    /// The request fields of Create, in domain types.
    public struct CreateRequest: Sendable {
        public var id: String
        public var bundle: String
        public var rootfs: [RootfsMount]
        public var stdio: StdioRequest
        public var checkpoint: String
        public var configPath: String?

        public init(id: String, bundle: String, rootfs: [RootfsMount] = [], stdio: StdioRequest = StdioRequest(),
                    checkpoint: String = "", configPath: String? = nil) {
            self.id = id
            self.bundle = bundle
            self.rootfs = rootfs
            self.stdio = stdio
            self.checkpoint = checkpoint
            self.configPath = configPath
        }
    }

    // MARK: lookup

    func container(_ id: String) throws(TaskError) -> TaskContainer {
        guard let container = containers[id] else { throw .notFound("container \(id) not found") }
        return container
    }

    func process(_ key: ProcessKey) throws(TaskError) -> TaskProcess {
        let container = try container(key.containerID)
        guard let execID = key.execID else { return container.initProcess }
        guard let process = container.execs[execID] else {
            throw .notFound("exec \(execID) of container \(key.containerID) not found")
        }
        return process
    }

    // MARK: Create

    public func create(_ request: CreateRequest) async throws -> UInt32 {
        guard !request.id.isEmpty else { throw TaskError.invalidArgument("container id is empty") }
        guard Identifier.isValid(request.id) else {
            throw TaskError.invalidArgument(Identifier.problem("container id", request.id))
        }
        guard containers[request.id] == nil else { throw TaskError.alreadyExists("container \(request.id) already exists") }
        guard request.checkpoint.isEmpty else {
            throw TaskError.unimplemented("kata-swift: restoring from a checkpoint is not supported")
        }
        guard !shuttingDown else { throw TaskError.failedPrecondition("shim is shutting down") }
        let bundle = BundleDirectory(path: request.bundle)
        let spec: OCISpec
        do {
            spec = try bundle.readSpec()
        } catch {
            throw TaskError.invalidArgument(error.description)
        }
        var rootfs = bundle.rootfsPath
        if request.rootfs.isEmpty {
            if let path = spec.root?.path, !path.isEmpty { rootfs = path.hasPrefix("/") ? path : bundle.path + "/" + path }
        } else {
            try RootfsMounts.mount(request.rootfs, on: bundle.rootfsPath)
        }
        let mounted = !request.rootfs.isEmpty
        let stdio: ProcessStdio
        do {
            stdio = try StdioEndpoints.open(request.stdio, containerID: request.id, namespace: namespace)
        } catch {
            if mounted { try? RootfsMounts.unmountAll(bundle.rootfsPath) }
            throw error
        }
        let config = ContainerConfig(id: request.id, bundle: bundle.path, rootfs: rootfs, spec: spec, stdio: stdio,
                                     configPath: request.configPath)
        let record = TaskProcess(key: ProcessKey(containerID: request.id, execID: nil), stdioRequest: request.stdio,
                                   stdio: stdio)
        // Claim the id before suspending, so a concurrent Create of the same id gets AlreadyExists.
        let container = TaskContainer(id: request.id, bundle: bundle, initProcess: record, mountedRootfs: mounted)
        containers[request.id] = container
        do {
            record.pid = try await sandbox.createContainer(config)
        } catch {
            containers[request.id] = nil
            await record.stdio.closeAll()
            if mounted { try? RootfsMounts.unmountAll(bundle.rootfsPath) }
            logger.error("create \(request.id) failed: \(error)")
            throw error
        }
        events.publish(.create(containerID: request.id, bundle: bundle.path, rootfs: request.rootfs,
                               stdio: request.stdio, pid: record.pid))
        watchExit(of: record)
        watchOOM()
        return record.pid
    }

    /// Starts the OOM watcher once: each OOM kill in the sandbox becomes a TaskOOM event (CRI
    /// reports the container's exit reason as OOMKilled from it).
    func watchOOM() {
        guard oomWatcher == nil else { return }
        let sandbox = self.sandbox, events = self.events, logger = self.logger
        oomWatcher = Task {
            while !Task.isCancelled {
                do {
                    let containerID = try await sandbox.nextOOMEvent()
                    logger.info("container \(containerID): a process was OOM-killed")
                    events.publish(.oom(containerID: containerID))
                } catch let error as TaskError where error.code == .unavailable || error.code == .failedPrecondition {
                    return  // the sandbox is gone or shut down
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("OOM events: \(error); retrying in 1 s")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    // MARK: Start

    public func start(_ key: ProcessKey) async throws -> UInt32 {
        let container = try container(key.containerID)
        let process = try process(key)
        if key.execID != nil && container.initProcess.state != .running {
            throw TaskError.failedPrecondition(
                "cannot start exec \(key.execID ?? "") in container \(key.containerID): container is \(container.initProcess.state.name)")
        }
        await lifecycle.lock()
        defer { lifecycle.unlock() }
        _ = try process.state.applying(.start)
        let pid = try await sandbox.startProcess(containerID: key.containerID, execID: key.execID)
        guard case .created = process.state else {
            // The process stopped (or was deleted) while the sandbox started it.
            throw TaskError.failedPrecondition("\(key) is \(process.state.name)")
        }
        process.pid = pid
        try process.apply(.start)
        if let execID = key.execID {
            events.publish(.execStarted(containerID: key.containerID, execID: execID, pid: pid))
            watchExit(of: process)
        } else {
            events.publish(.start(containerID: key.containerID, pid: pid))
        }
        // What the sandbox's start allocated and freed (the boot's buffers) goes back to the kernel.
        Heap.trimSoon()
        return pid
    }

    // MARK: exits

    /// Waits in the background for `process` to exit, then records the exit and publishes TaskExit.
    private func watchExit(of process: TaskProcess) {
        let key = process.key
        let sandbox = self.sandbox
        Task {
            let code: UInt32
            do {
                code = try await sandbox.waitProcess(containerID: key.containerID, execID: key.execID)
            } catch {
                logger.error("wait for \(key) failed: \(error); reporting it as killed")
                code = 128 + UInt32(SIGKILL)
            }
            await self.processExited(process, code: code)
        }
    }

    private func processExited(_ process: TaskProcess, code: UInt32) async {
        await lifecycle.lock()
        defer { lifecycle.unlock() }
        guard process.state.isLive else { return }
        let status = ExitStatus(code: code)
        do {
            try process.apply(.exit(status))
        } catch {
            logger.error("exit of \(process.key): \(error)")
            return
        }
        await process.stdio.stdin?.close()
        events.publish(.exit(containerID: process.key.containerID, id: process.key.execID ?? process.key.containerID,
                             pid: process.pid, status: status))
    }

    // MARK: Wait

    /// Blocks until the process stops; several callers may wait at once, before or after Start.
    public func wait(_ key: ProcessKey) async throws -> ExitStatus {
        let process = try process(key)
        return await withCheckedContinuation { process.addWaiter($0) }
    }
}
