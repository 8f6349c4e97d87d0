import Logging
import Synchronization

/// Work a sandbox leaves running past its pod's end (a VM template being saved, Runtime's
/// VMTemplate). The daemon waits for it once its socket is gone and the Shutdown reply is out,
/// so containerd is not kept waiting and the work is not cut off by the shim's exit.
public enum BackgroundWork {
    private static let tasks = Mutex<[Task<Void, Never>]>([])

    /// Keeps `task` running until it ends or the shim's wait for it runs out.
    public static func keep(_ task: Task<Void, Never>) {
        tasks.withLock { $0.append(task) }
    }

    /// Waits for every kept task, at most `limit`; what is still running then is cancelled and
    /// ends with the process.
    static func finish(within limit: Duration, logger: Logger) async {
        let pending = tasks.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        guard !pending.isEmpty else { return }
        logger.info("kata-swift shim: waiting for \(pending.count) background task(s), at most \(limit)")
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for task in pending { await task.value } }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
            pending.forEach { $0.cancel() }
        }
    }
}
