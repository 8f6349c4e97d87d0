import CShims
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A POSIX thread that can be kicked out of a blocking KVM_RUN with a signal.
///
/// `kick()` may be called from any thread at any time: the thread marks itself exited (under the
/// lock) as its last action, so a kick never signals a thread that is gone.
/// With a `ThreadConfinement`, the thread loads its seccomp filter before it runs `body`, and
/// `start` returns only once it has (or throws why it could not: the body never runs unfiltered).
final class VcpuThread: Sendable {
    private struct State {
        var thread = pthread_t()
        var running = false
        var exited = false
        var joined = false
    }

    private let state = Mutex(State())

    /// The signal used to interrupt KVM_RUN (a real-time signal with an empty handler).
    static let kickSignal: Int32 = ks_sigrtmin() + 2
    private static let installHandler: Int32 = ks_install_kick_handler(kickSignal)

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    init() {}

    func start(
        name: String, confinement: ThreadConfinement? = nil, _ body: @escaping @Sendable () -> Void
    ) throws(Errno) {
        _ = try shimResult(Self.installHandler)
        let confinement = confinement ?? ThreadConfinement.forThread(named: name)
        // 0: not yet; 1: filtered (or none asked); -errno: the filter failed and body will not run.
        let filtered = FilterOutcome()
        let box = Unmanaged.passRetained(Box { [self] in
            _ = ks_set_thread_name(String(name.prefix(15)))
            _ = ks_unblock_signal(VcpuThread.kickSignal)
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
            state.withLock { $0.exited = true }
        }).toOpaque()
        var thread = pthread_t()
        // Hold the lock while creating so `kick` cannot see a half-written handle.
        let rc = state.withLock { s -> Int32 in
            let rc = pthread_create(&thread, nil, { arg in
                guard let arg else { return nil }
                Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
                return nil
            }, box)
            if rc == 0 {
                s.thread = thread
                s.running = true
            }
            return rc
        }
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw Errno(rawValue: rc)
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
        state.withLock { s in
            if s.running && !s.exited { pthread_kill(s.thread, Self.kickSignal) }
        }
    }

    /// Waits for the thread to end. Call from one thread only.
    func join() {
        let (thread, running) = state.withLock { s -> (pthread_t, Bool) in
            let r = s.running && !s.joined
            s.joined = true
            return (s.thread, r)
        }
        if running { pthread_join(thread, nil) }
    }
}
