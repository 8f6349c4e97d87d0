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
        let thread = try Self.spawn(name: name, body)
        state.withLock { $0.thread = thread }
    }

    /// Starts `body` on a new detached thread named `name`: nobody joins it; it ends with `body`.
    public static func detach(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        pthread_detach(try spawn(name: name, body))
    }

    /// Runs blocking `body` on a thread of its own and suspends, without holding a thread of the
    /// concurrency pool, until it returns; the thread is joined before its result is handed back.
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async throws(Errno) -> T {
        let result = Mutex<T?>(nil)
        let (done, finished) = AsyncStream<Void>.makeStream()
        let thread = try WorkerThread(name: name) {
            let value = body()
            result.withLock { $0 = value }
            finished.finish()
        }
        for await _ in done {}
        thread.join()  // also when a cancelled task left the loop early: `body` has then returned
        guard let value = result.withLock({ $0 }) else { preconditionFailure("WorkerThread.run: \(name) returned no value") }
        return value
    }

    private static func spawn(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) -> pthread_t {
        let box = Unmanaged.passRetained(Box {
            _ = ks_set_thread_name(String(name.prefix(15)))
            body()
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            // SAFETY: arg is the retained Box passed below; taken back exactly once here.
            guard let arg else { return nil }
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw Errno(rawValue: rc)
        }
        return thread
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
