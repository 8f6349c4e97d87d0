import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A joinable OS thread for a loop that blocks in the kernel (epoll_wait, waitpid, read, KVM_RUN),
/// so the Swift concurrency pool is never blocked. The project's one thread trampoline: every
/// thread of ours starts here (the source check in SystemSupportTests keeps it so).
public final class WorkerThread: Sendable {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private struct State {
        var thread: pthread_t?
        /// Set by the thread, under the lock, as its last action: after it nothing signals it.
        var exited = false
        var joined = false
    }

    /// Shared with the thread itself, which marks its end in it.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared: Shared

    /// Starts `body` on a new thread named `name` (at most 15 characters are kept).
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        shared = Shared()
        try Self.spawn(name: name, shared, body)
    }

    /// Starts `body` on a new detached thread named `name`: nobody joins it; it ends with `body`.
    public static func detach(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        let shared = Shared()
        try spawn(name: name, shared, body)
        shared.state.withLock { s in
            if let thread = s.thread { pthread_detach(thread) }
            s.joined = true
        }
    }

    /// Why `run` or `runAndWait` did not return a value: no thread could be created, or `body`
    /// threw.
    public enum RunError<Failure: Error>: Error, CustomStringConvertible {
        case noThread(Errno)
        case failed(Failure)

        public var description: String {
            switch self {
            case .noThread(let error): "cannot create a thread: \(error)"
            case .failed(let error): "\(error)"
            }
        }
    }

    /// Runs blocking `body` on a thread of its own and suspends, without holding a thread of the
    /// concurrency pool, until it returns or throws; the thread is joined before its result is
    /// handed back.
    public static func run<T: Sendable, Failure: Error>(
        name: String, _ body: @escaping @Sendable () throws(Failure) -> T
    ) async throws(RunError<Failure>) -> T {
        let result = Mutex<Result<T, Failure>?>(nil)
        let (done, finished) = AsyncStream<Void>.makeStream()
        let thread: WorkerThread
        do {
            thread = try WorkerThread(name: name) {
                let outcome = Result { () throws(Failure) -> T in try body() }
                result.withLock { $0 = outcome }
                finished.finish()
            }
        } catch {
            throw .noThread(error)
        }
        for await _ in done {}
        thread.join()  // also when a cancelled task left the loop early: `body` has then returned
        guard let outcome = result.withLock({ $0 }) else { preconditionFailure("WorkerThread.run: \(name) returned no value") }
        do {
            return try outcome.get()
        } catch {
            throw .failed(error)
        }
    }

    /// Runs `body` on a new thread and blocks the calling thread until it returns or throws (for
    /// work that must not happen on the caller's thread, e.g. entering a namespace).
    public static func runAndWait<T: Sendable, Failure: Error>(
        name: String, _ body: @escaping @Sendable () throws(Failure) -> T
    ) throws(RunError<Failure>) -> T {
        let result = Mutex<Result<T, Failure>?>(nil)
        let thread: WorkerThread
        do {
            thread = try WorkerThread(name: name) {
                let outcome = Result { () throws(Failure) -> T in try body() }
                result.withLock { $0 = outcome }
            }
        } catch {
            throw .noThread(error)
        }
        thread.join()
        guard let outcome = result.withLock({ $0 }) else { preconditionFailure("WorkerThread.runAndWait: \(name) returned no value") }
        do {
            return try outcome.get()
        } catch {
            throw .failed(error)
        }
    }

    private static func spawn(name: String, _ shared: Shared, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        let box = Unmanaged.passRetained(Box {
            _ = ks_set_thread_name(String(name.prefix(15)))
            body()
            shared.state.withLock { $0.exited = true }
        }).toOpaque()
        // Hold the lock while creating, so `signal` never sees a half-written handle.
        let rc = shared.state.withLock { s -> Int32 in
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                // SAFETY: arg is the retained Box passed below; taken back exactly once here.
                guard let arg else { return nil }
                Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
                return nil
            }, box)
            if rc == 0 { s.thread = thread }
            return rc
        }
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw Errno(rawValue: rc)
        }
    }

    /// Sends `signo` to the thread while it is still running its body (pthread_kill), e.g. to
    /// interrupt a blocking call; once the body has returned it does nothing, so a signal never
    /// reaches a thread that is gone. Callable from any thread.
    public func signal(_ signo: Int32) {
        shared.state.withLock { s in
            if let thread = s.thread, !s.exited { pthread_kill(thread, signo) }
        }
    }

    /// Waits for the thread to end; later calls return at once. Never call from the thread itself.
    public func join() {
        let thread = shared.state.withLock { s -> pthread_t? in
            defer { s.joined = true }
            return s.joined ? nil : s.thread
        }
        if let thread { pthread_join(thread, nil) }
    }

    /// Whether the calling thread is this one.
    public var isCurrent: Bool {
        shared.state.withLock { $0.thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }
}
