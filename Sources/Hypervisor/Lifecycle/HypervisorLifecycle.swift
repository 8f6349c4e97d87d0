import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The steps of a VM's life that only one backend knows. `HypervisorLifecycle` drives them: it
/// owns the state machine, the checks every backend shares, the runtime directory and the order
/// of start, stop, pause and the end; the backend builds and tears down its VMM.
protocol HypervisorBackendSteps<Running>: AnyObject, Sendable {
    /// What a started VM holds: the VMM (process or in-process VM), its device servers, the
    /// vsock host.
    associatedtype Running: Sendable

    /// Checks (and claims) what only this backend needs, after the shared checks
    /// (`HypervisorConfig.validate()`) passed. What it claims, `removeFiles` gives back.
    func validateBackend() throws(HypervisorError)
    /// Builds the devices and starts the VMM; the runtime directory exists. Once the VMM ends
    /// (on its own, stopped, or failed to come up) the backend reports it with
    /// `HypervisorLifecycle.ended(exitCode:backend:)`, exactly once. On failure it has released
    /// everything it made and the VMM never ran.
    func launch() async throws(HypervisorError) -> Running
    /// Once `running` is recorded: waits until the VMM serves its devices. A failure here halts
    /// and joins the VMM. Skipped when a stop came during `launch`.
    func awaitReady(_ running: Running) async throws(HypervisorError)
    /// Asks the VMM to end (politely, by force after `graceSeconds`); returns without waiting
    /// for its threads.
    func halt(_ running: Running, graceSeconds: Double) async
    /// Waits until the VMM has ended, its end was reported, and its threads are joined.
    func join(_ running: Running) async
    /// Releases what the running VM held besides the VMM (device servers, the vsock host), after
    /// the VMM ended. Runs on whatever thread reports the end.
    func release(_ running: Running)
    /// Removes what the backend keeps in the runtime directory and gives back what
    /// `validateBackend` claimed; the VMM has ended or never started.
    func removeFiles()
    func pause(_ running: Running) async throws(HypervisorError)
    func resume(_ running: Running) async throws(HypervisorError)
    /// The vsock host of a running VM (`connectVsock`, `listenVsock`).
    func vsockHost(of running: Running) -> VsockHost
    /// The last console lines, attached to errors of a VM that stopped.
    var consoleTail: String { get }
}

extension HypervisorBackendSteps {
    func awaitReady(_ running: Running) async throws(HypervisorError) {}
    func removeFiles() {}
}

/// One VM's lifecycle, the same for every backend: created → running ⇄ paused → stopped, with a
/// `stop` that may come at any time (also during `start`) and a VMM that may end on its own.
///
/// The backend owns one and hands itself to each call for its own steps (composition, no base
/// class). Every method is safe to call from any thread.
final class HypervisorLifecycle<Running: Sendable>: Sendable {
    let config: HypervisorConfig

    private struct State {
        var phase: HypervisorState = .created
        /// The started VM, kept until `stop` or `waitForExit` joined it.
        var running: Running?
        var stopRequested = false
        /// The backend reported the VMM's end (`ended`); `phase` becomes stopped once released.
        var vmmEnded = false
        /// We created the runtime directory (and remove it at the end).
        var createdDirectory = false
    }

    private let locked = Mutex(State())
    /// The one join of the VMM: the first of `stop` and `waitForExit` starts it, and every caller
    /// awaits that same join. (A second joiner of a thread would return at once, while the VMM
    /// still runs: a watcher would take a live VM for dead.)
    private let joining = Mutex<Task<Void, Never>?>(nil)

    init(config: HypervisorConfig) {
        self.config = config
    }

    var phase: HypervisorState { locked.withLock { $0.phase } }

    /// The started VM until `stop` or `waitForExit` joined it (also after the VMM ended).
    var held: Running? { locked.withLock { $0.running } }

    /// The started VM while its VMM has not ended.
    var live: Running? {
        locked.withLock { s in
            if case .stopped = s.phase { return nil }
            return s.running
        }
    }

    // MARK: start

    /// Claims the VM (only a created one starts), checks the configuration, creates the runtime
    /// directory, launches the VMM and waits until it is ready. On failure nothing is left: the
    /// VM is stopped with status -1 (never ran) or the VMM's own status.
    func start(_ backend: some HypervisorBackendSteps<Running>) async throws(HypervisorError) {
        try locked.withLock { (s) throws(HypervisorError) in
            guard s.phase == .created else { throw .invalidState(operation: "start", state: "\(s.phase)") }
            s.phase = .running  // claimed; stopped on failure below
        }
        let running: Running
        do {
            try config.validate()
            try backend.validateBackend()
            try makeRuntimeDirectory()
            running = try await backend.launch()
        } catch {
            removeRuntimeFiles(backend)
            locked.withLock { $0.phase = .stopped(exitCode: -1, requested: false) }
            throw error
        }
        let (endedAlready, stopNow) = locked.withLock { s in
            s.running = running
            return (s.vmmEnded, s.stopRequested)
        }
        // The VMM ended before it was recorded: `ended` found nothing to release.
        if endedAlready { backend.release(running) }
        if stopNow {
            // stop() came while we were starting: no need to wait for a VM that is going.
            await stop(backend, graceSeconds: 5)
            return
        }
        do {
            try await backend.awaitReady(running)
        } catch {
            await backend.halt(running, graceSeconds: 0)
            await joinAndDrop(running, backend)
            throw error
        }
    }

    /// Creates the runtime directory (mode 0700) unless it exists, and remembers whether we did.
    private func makeRuntimeDirectory() throws(HypervisorError) {
        var st = stat()
        if stat(config.runtimeDirectory, &st) == 0 { return }
        guard mkdir(config.runtimeDirectory, 0o700) == 0 else {
            throw .system(operation: "mkdir \(config.runtimeDirectory)", .current)
        }
        locked.withLock { $0.createdDirectory = true }
    }

    /// The backend's files, then the runtime directory if we created it.
    private func removeRuntimeFiles(_ backend: some HypervisorBackendSteps<Running>) {
        backend.removeFiles()
        if locked.withLock({ $0.createdDirectory }) { rmdir(config.runtimeDirectory) }
    }

    // MARK: the end

    /// The backend reports that its VMM ended with `exitCode` (its status; 128 + signal when
    /// killed): what the VM held is released, the runtime files removed, and the VM is stopped.
    func ended(exitCode: Int32, backend: some HypervisorBackendSteps<Running>) {
        let running = locked.withLock { s -> Running? in
            s.vmmEnded = true
            return s.running
        }
        if let running { backend.release(running) }
        removeRuntimeFiles(backend)
        locked.withLock { s in s.phase = .stopped(exitCode: exitCode, requested: s.stopRequested) }
    }

    /// Stops the VM: a created one never starts; a running or paused one is halted (politely,
    /// by force after `graceSeconds`) and joined. Idempotent; a start in progress stops itself
    /// once its VMM is up.
    func stop(_ backend: some HypervisorBackendSteps<Running>, graceSeconds: Double) async {
        let (running, endedAlready) = locked.withLock { s -> (Running?, Bool) in
            if s.phase == .created { s.phase = .stopped(exitCode: 0, requested: true) }
            s.stopRequested = true
            return (s.running, s.vmmEnded)
        }
        guard let running else { return }
        if !endedAlready { await backend.halt(running, graceSeconds: graceSeconds) }
        await joinAndDrop(running, backend)
    }

    /// Waits until the VMM ends (on its own or by `stop`) and returns the final state.
    func waitForExit(_ backend: some HypervisorBackendSteps<Running>) async -> HypervisorState {
        if let running = held { await joinAndDrop(running, backend) }
        return phase
    }

    /// Joins the VMM, then forgets it: its descriptors go with it. Concurrent callers share one
    /// join and all return once it is done.
    private func joinAndDrop(_ running: Running, _ backend: some HypervisorBackendSteps<Running>) async {
        let join = joining.withLock { current -> Task<Void, Never> in
            if let current { return current }
            let task = Task {
                await backend.join(running)
                self.locked.withLock { $0.running = nil }
            }
            current = task
            return task
        }
        await join.value
    }

    // MARK: pause, resume

    func pause(_ backend: some HypervisorBackendSteps<Running>) async throws(HypervisorError) {
        let running = try claimTransition("pause", from: .running)
        try await backend.pause(running)
        locked.withLock { s in if s.phase == .running { s.phase = .paused } }
    }

    func resume(_ backend: some HypervisorBackendSteps<Running>) async throws(HypervisorError) {
        let running = try claimTransition("resume", from: .paused)
        try await backend.resume(running)
        locked.withLock { s in if s.phase == .paused { s.phase = .running } }
    }

    private func claimTransition(_ operation: String, from: HypervisorState) throws(HypervisorError) -> Running {
        try locked.withLock { (s) throws(HypervisorError) -> Running in
            guard s.phase == from, let running = s.running else { throw .invalidState(operation: operation, state: "\(s.phase)") }
            return running
        }
    }

    // MARK: vsock

    /// A connection to guest port `port`, retried while the guest refuses and the VM runs; a VM
    /// that stops on the way fails it with its last console lines.
    func connectVsock(
        _ backend: some HypervisorBackendSteps<Running>, port: UInt32, timeoutSeconds: Double
    ) async throws(HypervisorError) -> FileDescriptor {
        guard let running = live else {
            throw .vsockConnect(port: port, reason: "the VM is not running (\(phase))")
        }
        do {
            return try await backend.vsockHost(of: running).connect(port: port, timeoutSeconds: timeoutSeconds) { [weak self] in
                self?.live != nil
            }
        } catch {
            if case .stopped = phase {
                throw .vsockConnect(port: port, reason: "the VM stopped (\(phase)); console tail:\n\(lastLines(backend.consoleTail))")
            }
            throw error
        }
    }

    /// Guest-initiated connections to host port `port`, while the VM runs.
    func listenVsock(_ backend: some HypervisorBackendSteps<Running>, port: UInt32) throws(HypervisorError)
        -> AsyncStream<FileDescriptor>
    {
        guard let running = live else { throw .invalidState(operation: "listenVsock", state: "\(phase)") }
        return try backend.vsockHost(of: running).listen(port: port)
    }
}

/// The last `count` lines of `text` (console output attached to errors).
func lastLines(_ text: String, count: Int = 20) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
}
