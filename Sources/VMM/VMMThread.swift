import CSupport
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A thread of the VMM (each vCPU, and the device thread): SystemSupport's WorkerThread with its
/// seccomp filter loaded before its body, that can be kicked out of a blocking call (KVM_RUN)
/// with a signal.
///
/// `kick()` may be called from any thread at any time: the worker marks itself exited (under its
/// lock) as its last action, so a kick never signals a thread that is gone.
/// With a `ThreadConfinement`, the thread loads its seccomp filter before it runs `body`, and
/// `start` returns only once it has (or throws why it could not: the body never runs unfiltered).
final class VMMThread: Sendable {
    private struct State {
        var worker: WorkerThread?
        var joined = false
    }

    private let state = Mutex(State())

    /// The signal used to interrupt KVM_RUN (a real-time signal with an empty handler).
    static let kickSignal: Int32 = ks_sigrtmin() + 2
    private static let installHandler: Int32 = ks_install_kick_handler(kickSignal)

    init() {}

    func start(
        name: String, confinement: ThreadConfinement? = nil, _ body: @escaping @Sendable () -> Void
    ) throws(Errno) {
        _ = try shimResult(Self.installHandler)
        let confinement = confinement ?? ThreadConfinement.forThread(named: name)
        // 0: not yet; 1: filtered (or none asked); -errno: the filter failed and body will not run.
        let filtered = FilterOutcome()
        // Hold the lock while creating so `kick` and `join` see the worker or nothing.
        try state.withLock { (s) throws(Errno) in
            s.worker = try WorkerThread(name: name) {
                _ = ks_unblock_signal(VMMThread.kickSignal)
                var outcome: Int32 = 1
                if let confinement {
                    do throws(Errno) {
                        try confinement.install()
                    } catch {
                        outcome = -error.rawValue
                    }
                }
                filtered.value.store(outcome, ordering: .releasing)
                if outcome == 1 { body() }
            }
        }
        var outcome = filtered.value.load(ordering: .acquiring)
        while outcome == 0 {
            usleep(100)
            outcome = filtered.value.load(ordering: .acquiring)
        }
        if outcome < 0 {
            join()
            throw Errno(rawValue: -outcome)
        }
    }

    private final class FilterOutcome: Sendable {
        let value = Atomic<Int32>(0)
    }

    /// Interrupts a blocking call in the thread (KVM_RUN returns EINTR).
    func kick() {
        state.withLock { $0.worker?.signal(Self.kickSignal) }
    }

    /// Waits for the thread to end. Call from one thread only.
    func join() {
        let worker = state.withLock { s -> WorkerThread? in
            defer { s.joined = true }
            return s.joined ? nil : s.worker
        }
        worker?.join()
    }
}
