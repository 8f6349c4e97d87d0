// Blocking system calls (waiting for a process, writing into a full pipe, reading a stream) run
// on their own detached threads, never on the two threads of the cooperative pool.
import Glibc

enum BlockingThread {
    /// Starts `body` on a new detached thread. Throws when the thread cannot be created.
    static func start(_ body: @escaping @Sendable () -> Void) throws(AgentError) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                // SAFETY: raw is the retained Body passed below; taken back exactly once here.
                guard let raw else { return nil }
                Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().run()
                return nil
            }, box)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            throw .system(operation: "pthread_create", errno: rc)
        }
        pthread_detach(thread)
    }

    /// Runs `body` on a new thread and suspends (without holding a pool thread) until it returns.
    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(AgentError) -> T {
        let result: Result<T, AgentError> = await withCheckedContinuation { continuation in
            do throws(AgentError) {
                try start { continuation.resume(returning: .success(body())) }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}
