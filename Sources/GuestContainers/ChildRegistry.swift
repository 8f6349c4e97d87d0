// The engine's children and a PID 1 reaper share one process: a reaper calling waitpid(-1)
// would take the exit status of a container process before the engine's pidfd wait sees it.
// Every spawn and every reap of an engine child happens under this one lock; the agent's
// reaper (`reapExited`) reaps under it too and files an engine child's status here, where
// `ContainerProcess` finds it.
import CGuest
import Glibc
import Synchronization

public enum ChildRegistry {
    private struct State: ~Copyable {
        /// Pids of engine children not reaped yet.
        var owned: Set<Int32> = []
        /// Statuses the reaper took for engine children, until their process object asks.
        var exited: [Int32: Int32] = [:]
    }
    private static let state = Mutex(State())

    /// Runs `spawn` (which clones and returns the new pid, or nil) with the lock held, so the
    /// reaper cannot see the child before it is registered.
    static func spawning<T>(_ spawn: () -> (T, Int32?)) -> T {
        state.withLock { s in
            let (value, pid) = spawn()
            if let pid, pid > 0 {
                s.owned.insert(pid)
                s.exited[pid] = nil
            }
            return value
        }
    }

    /// Reaps `pid` through `wait` (non-blocking pidfd wait: its status, nil while running) with
    /// the lock held; when the reaper took the status first, returns that.
    static func reap(pid: Int32, _ wait: () -> Int32??) -> Int32? {
        state.withLock { s in
            if let code = s.exited.removeValue(forKey: pid) {
                s.owned.remove(pid)
                return code
            }
            guard let result = wait() else { return nil }
            s.owned.remove(pid)
            return result ?? 255  // reaped by someone outside this registry: status lost
        }
    }

    /// Forgets a child the engine reaped itself (aborted spawns).
    static func forget(pid: Int32) {
        state.withLock { s in
            s.owned.remove(pid)
            s.exited[pid] = nil
        }
    }

    /// For a PID 1 / subreaper: reaps every exited child without blocking. Engine children's
    /// statuses are kept for the engine; every other child is reported to `onOther` (pid, exit
    /// code). Returns how many children were reaped.
    @discardableResult
    public static func reapExited(onOther: (Int32, Int32) -> Void) -> Int {
        var count = 0
        while true {
            let (pid, code, other): (Int32, Int32, Bool) = state.withLock { s in
                let pid = ks_reaper_peek_exited()
                guard pid > 0 else { return (pid, 0, false) }
                var code: Int32 = 0
                let rc = ks_reaper_reap(pid, &code)
                guard rc == 1 else { return (0, 0, false) }
                if s.owned.contains(pid) {
                    s.exited[pid] = code
                    return (pid, code, false)
                }
                return (pid, code, true)
            }
            if pid <= 0 { return count }
            count += 1
            if other { onOther(pid, code) }
        }
    }

    /// Whether `pid` is an engine child not reaped yet (tests, diagnostics).
    public static func owns(pid: Int32) -> Bool {
        state.withLock { $0.owned.contains(pid) }
    }
}
