// One process of a container (its init, or an exec): created -> running -> exited.
// Signals and waits go through a pidfd, so a recycled pid can never be hit.
import CGuest
import Glibc
import Synchronization

public final class ContainerProcess: Sendable {
    public enum Status: Sendable, Equatable, CustomStringConvertible {
        case created, running, exited(Int32)
        public var description: String {
            switch self {
            case .created: "created"
            case .running: "running"
            case .exited(let s): "exited (\(s))"
            }
        }
    }

    public let containerID: String
    /// nil for the container's init process.
    public let execID: String?
    /// The pid in the engine's (agent's) pid namespace.
    public let pid: Int32
    /// The pty master when the process was started with `.terminal`; owned by this object.
    public let terminalMaster: Int32?
    private let pidfd: Int32

    private struct State: ~Copyable {
        var status: Status
        var pending: PendingChild?  // set while created: the child waits at the start barrier
    }
    private let state: Mutex<State>

    init(containerID: String, execID: String?, pending: PendingChild) {
        self.containerID = containerID
        self.execID = execID
        self.pid = pending.child.pid
        self.pidfd = pending.child.pidfd
        self.terminalMaster = pending.ptyMaster
        self.state = Mutex(State(status: .created, pending: pending))
    }

    deinit {
        state.withLock { s in
            if let p = s.pending { close(p.child.control_fd) }  // the child sees EOF and exits
        }
        close(pidfd)
        if let m = terminalMaster { close(m) }
    }

    public var status: Status {
        refresh()
        return state.withLock { $0.status }
    }

    /// Releases the process to execve. Throws when it is not created, or when seccomp / execve fail.
    func start() throws(ContainerError) {
        var pending: PendingChild = try state.withLock { s throws(ContainerError) in
            guard case .created = s.status, let p = s.pending else {
                throw .invalidTransition(id: containerID, from: s.status.description, operation: "start")
            }
            return p
        }
        defer {
            state.withLock { s in
                close(pending.child.control_fd)
                s.pending = nil
            }
        }
        try Launcher.advance(id: containerID, &pending, expectReady: false, root: nil)
        state.withLock { s in
            if case .created = s.status { s.status = .running }
        }
    }

    public func signal(_ signo: Int32) throws(ContainerError) {
        if case .exited = status {
            throw .invalidTransition(id: containerID, from: "exited", operation: "signal")
        }
        let rc = ks_ctr_signal(pidfd, signo)
        if rc != 0 && rc != -ESRCH { throw .system(id: containerID, operation: "signal \(signo)", errno: -rc) }
    }

    /// Blocks until the process exits; its exit code, or 128+signal. Several callers may wait.
    public func wait() -> Int32 {
        while true {
            if case .exited(let s) = status { return s }
            var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, -1)
            if r < 0 && errno != EINTR { usleep(10_000) }
        }
    }

    /// Waits at most `timeoutMillis` for the process to exit; its status, or nil if still running.
    public func wait(timeoutMillis: Int32) -> Int32? {
        if case .exited(let s) = status { return s }
        var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, timeoutMillis)
        if case .exited(let s) = status { return s }
        return nil
    }

    public func resizeTerminal(rows: UInt16, cols: UInt16) throws(ContainerError) {
        guard let m = terminalMaster else {
            throw .invalidTransition(id: containerID, from: "without a terminal", operation: "resize the terminal")
        }
        let rc = ks_ctr_set_winsize(m, rows, cols)
        if rc != 0 { throw .system(id: containerID, operation: "TIOCSWINSZ", errno: -rc) }
    }

    /// Reaps the process if it has exited (non-blocking) and records the status.
    private func refresh() {
        state.withLock { s in
            if case .exited = s.status { return }
            let pidfd = self.pidfd
            let code = ChildRegistry.reap(pid: pid) { () -> Int32?? in
                var code: Int32 = 0
                let rc = ks_ctr_wait(pidfd, 1, &code)
                if rc == 0 { return .some(code) }
                // Someone outside the registry reaped it: the status is lost.
                return rc == -ECHILD ? .some(nil) : nil
            }
            if let code { s.status = .exited(code) }
        }
    }

    /// Kills a process that never started and reaps it (create/exec error paths, delete).
    func kill() {
        _ = ks_ctr_signal(pidfd, SIGKILL)
        _ = wait()
    }
}
