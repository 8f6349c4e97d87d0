// Work inside another network namespace (a pod's, named by the path CRI put in the OCI spec,
// e.g. /var/run/netns/cni-...). setns(CLONE_NEWNET) changes only the calling thread, so every
// entry gets a thread of its own, created for it and ended after it: the caller's thread, and
// above all the threads of the Swift concurrency pool, never change namespace.
//
// Sockets (netlink, and a tap's /dev/net/tun descriptor) belong to the namespace of the thread
// that created them for their whole life: open them inside, use them from anywhere.
import CShims
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

public enum NetworkNamespace {
    /// Runs `body` on a new thread inside the network namespace at `path` and blocks the calling
    /// thread until it returns. From async code use the async overload.
    public static func run<T: Sendable>(path: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let namespace = try open(path)
        let result = Mutex<Result<T, any Error>?>(nil)
        let thread: WorkerThread
        do {
            thread = try WorkerThread(name: "netns") {
                let outcome = Result { () throws -> T in
                    try enter(namespace, path: path)
                    return try body()
                }
                result.withLock { $0 = outcome }
            }
        } catch {
            throw NetlinkError.system(operation: "pthread_create", errno: error)
        }
        thread.join()
        guard let outcome = result.withLock({ $0 }) else { preconditionFailure("NetworkNamespace.run: no result") }
        return try outcome.get()
    }

    /// Runs `body` on a new thread inside the network namespace at `path`; the calling task
    /// suspends without holding a thread of the pool.
    public static func run<T: Sendable>(path: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let namespace = try open(path)
        let outcome: Result<T, any Error>
        do {
            outcome = try await WorkerThread.run(name: "netns") {
                Result { () throws -> T in
                    try enter(namespace, path: path)
                    return try body()
                }
            }
        } catch {
            throw NetlinkError.system(operation: "pthread_create", errno: error)
        }
        return try outcome.get()
    }

    /// A route netlink socket opened inside the namespace at `path`, usable from any thread.
    public static func routeNetlink(path: String) throws -> RouteNetlink {
        try run(path: path) { try RouteNetlink() }
    }

    private static func open(_ path: String) throws(NetlinkError) -> FileDescriptor {
        do {
            return try FileDescriptor.open(path, O_RDONLY)
        } catch {
            throw .system(operation: "open network namespace \(path)", errno: error)
        }
    }

    private static func enter(_ namespace: FileDescriptor, path: String) throws(NetlinkError) {
        let rc = ks_setns_net(namespace.rawValue)
        guard rc == 0 else { throw .system(operation: "setns(\(path), CLONE_NEWNET)", errno: Errno(rawValue: -rc)) }
    }
}
