// Work inside another network namespace (a pod's, named by the path CRI put in the OCI spec,
// e.g. /var/run/netns/cni-...). setns(CLONE_NEWNET) changes only the calling thread, so every
// entry gets a thread of its own, created for it and ended after it: the caller's thread, and
// above all the threads of the Swift concurrency pool, never change namespace.
//
// Sockets (netlink, and a tap's /dev/net/tun descriptor) belong to the namespace of the thread
// that created them for their whole life: open them inside, use them from anywhere.
import CNet
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

public enum NetworkNamespace {
    /// Runs `body` on a new thread inside the network namespace at `path` and blocks the calling
    /// thread until it returns. From async code use the async overload.
    public static func run<T: Sendable>(path: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let namespace = try open(path)
        do {
            return try WorkerThread.runAndWait(name: "netns") {
                try enter(namespace, path: path)
                return try body()
            }
        } catch {
            throw unwrapped(error)
        }
    }

    /// Runs `body` on a new thread inside the network namespace at `path`; the calling task
    /// suspends without holding a thread of the pool.
    public static func run<T: Sendable>(path: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let namespace = try open(path)
        do {
            return try await WorkerThread.run(name: "netns") {
                try enter(namespace, path: path)
                return try body()
            }
        } catch {
            throw unwrapped(error)
        }
    }

    /// The error of `body` as it threw it, or why no thread could run it.
    private static func unwrapped<Failure: Error>(_ error: WorkerThread.RunError<Failure>) -> any Error {
        switch error {
        case .noThread(let errno): NetlinkError.system(operation: "pthread_create", errno: errno)
        case .failed(let error): error
        }
    }

    /// Makes a new, empty network namespace and pins it at `path` (a bind mount onto a new file,
    /// as `ip netns add` does), from a thread of its own that ends afterwards.
    public static func create(at path: String) throws {
        let file = Glibc.open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw NetlinkError.system(operation: "create \(path)", errno: .current) }
        close(file)
        do {
            try WorkerThread.runAndWait(name: "netns-new") { () throws(NetlinkError) in
                let rc = ks_unshare_net()
                guard rc == 0 else { throw .system(operation: "unshare(CLONE_NEWNET)", errno: Errno(rawValue: -rc)) }
                guard mount("/proc/thread-self/ns/net", path, nil, UInt(MS_BIND), nil) == 0 else {
                    throw .system(operation: "bind-mount a new network namespace on \(path)", errno: .current)
                }
            }
        } catch {
            unlink(path)
            throw unwrapped(error)
        }
    }

    /// Unpins the namespace at `path` and removes the file (the namespace ends with its last user).
    public static func remove(at path: String) {
        _ = umount2(path, Int32(MNT_DETACH))
        unlink(path)
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
