// Signals and zombie reaping. The agent blocks SIGCHLD, SIGTERM and SIGINT in its first thread
// before any other thread exists, so every thread inherits the mask and only the signal loop
// (the main thread, which has nothing else to do once the server runs) ever receives them. The
// ttrpc server runs on its own event-loop threads and is never blocked by reaping.

import CGuest
import GuestContainers
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Collects exited children: every orphan in the guest is reparented to PID 1 (and, on the host,
/// to the agent as a child subreaper), so each must be waited for or it stays a zombie.
public final class Reaper: Sendable {
    /// Called for every reaped child with its exit code (0-255, or 128+signal); the container
    /// engine will hook its process table in here.
    public typealias ExitHandler = @Sendable (_ pid: Int32, _ exitCode: Int32) -> Void

    private let handler: Mutex<ExitHandler?>
    private let log: AgentLog

    public init(log: AgentLog, onExit: ExitHandler? = nil) {
        self.log = log
        self.handler = Mutex(onExit)
    }

    public func setExitHandler(_ onExit: ExitHandler?) {
        handler.withLock { $0 = onExit }
    }

    /// Waits for every child that has exited, without blocking. Returns how many were reaped.
    /// The container engine's children are reaped under its lock and their statuses kept for
    /// it (ChildRegistry); only the others reach the exit handler.
    @discardableResult
    public func reapExited() -> Int {
        ChildRegistry.reapExited { pid, code in
            log.debug("reaped pid \(pid), exit code \(code)")
            let onExit = handler.withLock { $0 }
            onExit?(pid, code)
        }
    }
}

/// Why the signal loop ended.
public enum SignalLoopExit: Equatable, Sendable {
    case terminate(signal: Int32)
}

public enum SignalLoop {
    /// The signals the loop owns.
    static let handled: [Int32] = [SIGCHLD, SIGTERM, SIGINT]

    /// Blocks the loop's signals in the calling thread; call before creating any thread.
    /// SIGPIPE is ignored: a peer closing its socket is an error return, not a death.
    public static func blockSignals() throws(SystemCallError) {
        signal(SIGPIPE, SIG_IGN)
        let rc = handled.withUnsafeBufferPointer { ks_block_signals($0.baseAddress, Int32($0.count)) }
        guard rc == 0 else { throw SystemCallError("pthread_sigmask", "SIG_BLOCK", errno: -rc) }
    }

    /// Runs until SIGTERM or SIGINT arrives, reaping children on every SIGCHLD. Reaps once before
    /// waiting, in case children exited before the signals were blocked.
    public static func run(reaper: Reaper, log: AgentLog) -> SignalLoopExit {
        reaper.reapExited()
        while true {
            let signo = handled.withUnsafeBufferPointer { ks_wait_signal($0.baseAddress, Int32($0.count)) }
            switch signo {
            case SIGCHLD:
                reaper.reapExited()
            case SIGTERM, SIGINT:
                log.info("received signal \(signo), shutting down")
                return .terminate(signal: signo)
            default:
                // sigwaitinfo failed: nothing sensible to retry with; a tight loop would spin.
                log.error("sigwaitinfo: \(Errno(-signo))")
                return .terminate(signal: 0)
            }
        }
    }
}
