// Blocking system calls (waiting for a process, writing into a full pipe, reading a stream) run
// on threads of their own (SystemSupport's WorkerThread), never on the two threads of the
// cooperative pool; a thread that cannot be created is the agent's error.
import SystemSupport

enum BlockingThread {
    /// Starts `body` on a new detached thread. Throws when the thread cannot be created.
    static func start(_ body: @escaping @Sendable () -> Void) throws(AgentError) {
        do {
            try WorkerThread.detach(name: "agent-io", body)
        } catch {
            throw .system(operation: "pthread_create", errno: error.rawValue)
        }
    }

    /// Runs `body` on a new thread and suspends (without holding a pool thread) until it returns.
    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(AgentError) -> T {
        do {
            return try await WorkerThread.run(name: "agent-blocking", body)
        } catch {
            switch error {
            case .noThread(let errno): throw .system(operation: "pthread_create", errno: errno.rawValue)
            case .failed(let never): switch never {}
            }
        }
    }

    /// Runs `body` on a new thread and suspends (without holding a pool thread) until it returns;
    /// rethrows what `body` threw, or throws `AgentError.system` when no thread could be created.
    static func run<T: Sendable, Failure: Error>(_ body: @escaping @Sendable () throws(Failure) -> T) async throws -> T {
        do {
            return try await WorkerThread.run(name: "agent-blocking", body)
        } catch {
            switch error {
            case .noThread(let errno): throw AgentError.system(operation: "pthread_create", errno: errno.rawValue)
            case .failed(let failure): throw failure
            }
        }
    }
}
