// The shim's bookkeeping for one process and one container. Only the TaskService actor touches them.

/// Identifies a process: a container's init (`execID == nil`) or one of its execs.
public struct ProcessKey: Hashable, Sendable, CustomStringConvertible {
    public var containerID: String
    public var execID: String?

    public init(containerID: String, execID: String?) {
        self.containerID = containerID
        self.execID = execID.flatMap { $0.isEmpty ? nil : $0 }
    }

    public var description: String {
        if let execID { "exec \(execID) of container \(containerID)" } else { "container \(containerID)" }
    }
}

/// A snapshot of a process for State.
public struct ProcessSnapshot: Equatable, Sendable {
    public var key: ProcessKey
    public var bundle: String
    public var pid: UInt32
    public var state: ProcessState
    public var stdio: StdioRequest
}

/// One process: its state machine, stdio and waiters.
final class TaskProcess {
    let key: ProcessKey
    let stdioRequest: StdioRequest
    let stdio: ProcessStdio
    var pid: UInt32 = 0
    private(set) var state: ProcessState = .created
    /// Wait calls parked until the process stops.
    private var waiters: [CheckedContinuation<ExitStatus, Never>] = []

    init(key: ProcessKey, stdioRequest: StdioRequest, stdio: ProcessStdio) {
        self.key = key
        self.stdioRequest = stdioRequest
        self.stdio = stdio
    }

    /// Applies `event`, or throws without changing anything. Stopping wakes every waiter.
    func apply(_ event: ProcessEvent) throws(ProcessStateError) {
        state = try state.applying(event)
        if let status = state.exitStatus {
            let parked = waiters
            waiters = []
            for waiter in parked { waiter.resume(returning: status) }
        }
    }

    /// Parks a waiter; it is resumed right away if the process has already stopped.
    func addWaiter(_ waiter: CheckedContinuation<ExitStatus, Never>) {
        if let status = state.exitStatus {
            waiter.resume(returning: status)
        } else {
            waiters.append(waiter)
        }
    }

}

/// One container: its init process, its execs and its rootfs.
final class TaskContainer {
    let id: String
    let bundle: BundleDirectory
    let initProcess: TaskProcess
    var execs: [String: TaskProcess] = [:]
    /// Whether the shim mounted containerd's rootfs on `<bundle>/rootfs` (and must unmount it).
    let mountedRootfs: Bool

    init(id: String, bundle: BundleDirectory, initProcess: TaskProcess, mountedRootfs: Bool) {
        self.id = id
        self.bundle = bundle
        self.initProcess = initProcess
        self.mountedRootfs = mountedRootfs
    }
}
