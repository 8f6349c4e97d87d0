import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A joinable OS thread for a loop that blocks in the kernel (epoll_wait, waitpid, read), so
/// the Swift concurrency pool is never blocked.
public final class WorkerThread: Sendable {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private struct State {
        var thread: pthread_t?
        var joined = false
    }

    private let state = Mutex(State())

    /// Starts `body` on a new thread named `name` (at most 15 characters are kept).
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        let box = Unmanaged.passRetained(Box {
            _ = ks_set_thread_name(String(name.prefix(15)))
            body()
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw Errno(rawValue: rc)
        }
        state.withLock { $0.thread = thread }
    }

    /// Waits for the thread to end; later calls return at once. Never call from the thread itself.
    public func join() {
        let thread = state.withLock { s -> pthread_t? in
            defer { s.joined = true }
            return s.joined ? nil : s.thread
        }
        if let thread { pthread_join(thread, nil) }
    }

    /// Whether the calling thread is this one.
    public var isCurrent: Bool {
        state.withLock { $0.thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }
}
